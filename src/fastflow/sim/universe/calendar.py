"""Expiry dates and Kite trading symbols of the synthetic derivatives.

NSE index derivatives expire on Tuesdays (monthly: the last Tuesday of the
month); currency futures two weekdays before the month's last weekday;
MCX/NCO crude-style contracts on the 19th (or the weekday before). The small
universe ignores exchange holidays; the full one moves an NSE expiry that falls
on a holiday to the previous trading day (:func:`nse_index_monthly`,
:func:`nse_weekly_expiries`; holidays from :data:`fastflow.instruments.calendar.HOLIDAYS`,
weekdays only for years it does not list), as NSE does (2026-03-31 -> 03-30).
Symbols follow Kite (:mod:`fastflow.instruments.symbols`, re-exported here):
``NIFTY26NOVFUT``, ``NIFTY26NOV26000CE`` (monthly), ``NIFTY26D0126000CE`` (weekly).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from fastflow.instruments.calendar import HOLIDAYS
from fastflow.instruments.symbols import MONTHS, future_symbol, option_symbol, strike_text

__all__ = [
    "MONTHS",
    "TUESDAY",
    "crude_monthly",
    "currency_monthly",
    "future_symbol",
    "index_monthly",
    "monthly_expiries",
    "nse_index_monthly",
    "nse_weekly_expiries",
    "option_symbol",
    "strike_text",
    "trading_day_on_or_before",
    "weekly_expiries",
]

#: ``(year, month) -> expiry date`` of a monthly contract.
ExpiryRule = Callable[[int, int], datetime.date]

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


def trading_day_on_or_before(day: datetime.date) -> datetime.date:
    """``day``, or the trading day before it when it is a weekend or an NSE holiday."""
    while day.weekday() >= 5 or day in HOLIDAYS.get(day.year, frozenset()):
        day -= datetime.timedelta(days=1)
    return day


def nse_index_monthly(year: int, month: int) -> datetime.date:
    """NSE monthly derivatives (index and stock): the last Tuesday of the month, or
    the trading day before it when that Tuesday is a holiday."""
    return trading_day_on_or_before(index_monthly(year, month))


def nse_weekly_expiries(today: datetime.date, count: int) -> list[datetime.date]:
    """The next ``count`` NIFTY weekly expiries on or after ``today``: Tuesdays, each
    moved to the trading day before it when it is a holiday."""
    out: list[datetime.date] = []
    tuesday = today + datetime.timedelta(days=(TUESDAY - today.weekday()) % 7)
    while len(out) < count:
        expiry = trading_day_on_or_before(tuesday)
        if expiry >= today:
            out.append(expiry)
        tuesday += datetime.timedelta(weeks=1)
    return out
