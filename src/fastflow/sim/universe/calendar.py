"""Expiry dates and Kite trading symbols of the synthetic derivatives.

NSE index derivatives expire on Tuesdays (monthly: the last Tuesday of the
month); currency futures two weekdays before the month's last weekday;
MCX/NCO crude-style contracts on the 19th (or the weekday before). Exchange
holidays are ignored. Symbols follow Kite: ``NIFTY26NOVFUT``,
``NIFTY26NOV26000CE`` (monthly), ``NIFTY26D0126000CE`` (weekly).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

#: ``(year, month) -> expiry date`` of a monthly contract.
ExpiryRule = Callable[[int, int], datetime.date]

MONTHS = (
    "JAN",
    "FEB",
    "MAR",
    "APR",
    "MAY",
    "JUN",
    "JUL",
    "AUG",
    "SEP",
    "OCT",
    "NOV",
    "DEC",
)
_WEEKLY_MONTH = "123456789OND"
TUESDAY = 1


def _last_weekday_of_month(year: int, month: int, weekday: int) -> datetime.date:
    first_next = datetime.date(year + month // 12, month % 12 + 1, 1)
    last = first_next - datetime.timedelta(days=1)
    return last - datetime.timedelta(days=(last.weekday() - weekday) % 7)


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def monthly_expiries(today: datetime.date, count: int, rule: ExpiryRule) -> list[datetime.date]:
    """The next ``count`` monthly expiries on or after ``today`` under ``rule``."""
    year, month = today.year, today.month
    out: list[datetime.date] = []
    while len(out) < count:
        expiry = rule(year, month)
        if expiry >= today:
            out.append(expiry)
        year, month = _next_month(year, month)
    return out


def weekly_expiries(today: datetime.date, count: int, weekday: int) -> list[datetime.date]:
    first = today + datetime.timedelta(days=(weekday - today.weekday()) % 7)
    return [first + datetime.timedelta(weeks=i) for i in range(count)]


def index_monthly(year: int, month: int) -> datetime.date:
    """NSE index derivatives: the last Tuesday of the month."""
    return _last_weekday_of_month(year, month, TUESDAY)


def _previous_weekday(day: datetime.date) -> datetime.date:
    while day.weekday() >= 5:
        day -= datetime.timedelta(days=1)
    return day


def currency_monthly(year: int, month: int) -> datetime.date:
    """Currency futures: two weekdays before the last weekday of the month."""
    first_next = datetime.date(year + month // 12, month % 12 + 1, 1)
    day = _previous_weekday(first_next - datetime.timedelta(days=1))
    for _ in range(2):
        day = _previous_weekday(day - datetime.timedelta(days=1))
    return day


def crude_monthly(year: int, month: int) -> datetime.date:
    """Crude-style commodity futures: the 19th, or the weekday before it."""
    return _previous_weekday(datetime.date(year, month, 19))


# ------------------------------------------------------------------------ symbols


def strike_text(strike: float) -> str:
    return str(int(strike)) if float(strike).is_integer() else f"{strike:g}"


def future_symbol(underlying: str, expiry: datetime.date) -> str:
    """Kite's futures name, e.g. ``NIFTY26NOVFUT``."""
    return f"{underlying}{expiry:%y}{MONTHS[expiry.month - 1]}FUT"


def option_symbol(underlying: str, expiry: datetime.date, strike: float, kind: str, *, monthly: bool) -> str:
    """Kite's option name: ``NIFTY26NOV26000CE`` (monthly), ``NIFTY26D0126000CE`` (weekly)."""
    if monthly:
        stem = f"{underlying}{expiry:%y}{MONTHS[expiry.month - 1]}"
    else:
        stem = f"{underlying}{expiry:%y}{_WEEKLY_MONTH[expiry.month - 1]}{expiry.day:02d}"
    return f"{stem}{strike_text(strike)}{kind}"
