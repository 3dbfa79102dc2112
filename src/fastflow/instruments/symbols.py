"""Kite-style derivative symbols: the one naming rule, and the cross-broker aliases.

Kite names a derivative ``<UNDERLYING><YY><MON>FUT`` (``NIFTY26DECFUT``), a monthly
option ``<UNDERLYING><YY><MON><STRIKE><CE|PE>`` (``NIFTY26DEC26000CE``) and a weekly
one ``<UNDERLYING><YY><M><DD><STRIKE><CE|PE>`` with ``M`` = ``1``..``9``, ``O``,
``N``, ``D`` (``NIFTY26D0826000CE``); a weekly series that expires on the month's
last expiry of its underlying takes the monthly name.  The synthetic universe
(:mod:`fastflow.sim.universe.calendar`) names its Kite rows with these functions.

Upstox names the same contracts ``NIFTY FUT 29 DEC 26`` / ``NIFTY 26000 CE 29 DEC 26``
under ``NSE_FO|<exchange token>``.  :func:`kite_aliases` gives each Upstox derivative
its Kite-style ``EXCHANGE:TRADINGSYMBOL`` (``NFO:NIFTY26DECFUT``), which
:class:`~fastflow.instruments.Instruments` accepts as a look-up key besides the
broker's own, so one symbol names one contract on both brokers:

* underlying: the first word of Upstox's ``trading_symbol`` (Kite's ``name`` of a
  derivative: ``NIFTY``, ``BANKNIFTY``, ``RELIANCE``, ``M&M``), else ``name``;
* exchange: Kite's for the Upstox segment (:data:`KITE_EXCHANGE_OF_SEGMENT`:
  ``NSE_FO`` -> ``NFO``, ``BSE_FO`` -> ``BFO``, ``NCD_FO`` -> ``CDS``, ...);
* expiry, strike and type from the record (``FUT``/``CE``/``PE``; the old CSV's
  ``FUTIDX``/``OPTSTK``... with the option type read from the trading symbol);
* monthly or weekly naming: Upstox's own ``weekly`` flag when the record has one,
  else the rule above: an option is monthly when its expiry is the last expiry
  (futures and options) of its underlying on that exchange in that month.

An alias that two instruments would share, or that is already a symbol, is left
out (a look-up never lands on the wrong contract).  Cold code: built once per
instrument master, on the first look-up that needs it.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping, Sequence
from typing import Final

__all__ = [
    "INDEX_OF_UNDERLYING",
    "KITE_EXCHANGE_OF_SEGMENT",
    "MONTHS",
    "WEEKLY_MONTH_CODES",
    "future_symbol",
    "kite_aliases",
    "option_symbol",
    "strike_text",
]

MONTHS: Final = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
#: The month letter of a weekly option's symbol, by month (January first).
WEEKLY_MONTH_CODES: Final = "123456789OND"
#: The index a derivative's ``name`` is on (Kite's ``name``, the first word of Upstox's
#: ``trading_symbol``) -> the index's symbol; any other name is a stock, ``NSE:<name>``.
INDEX_OF_UNDERLYING: Final[Mapping[str, str]] = {
    "NIFTY": "NSE:NIFTY 50",
    "BANKNIFTY": "NSE:NIFTY BANK",
    "FINNIFTY": "NSE:NIFTY FIN SERVICE",
    "MIDCPNIFTY": "NSE:NIFTY MID SELECT",
    "NIFTYNXT50": "NSE:NIFTY NEXT 50",
    "SENSEX": "BSE:SENSEX",
    "BANKEX": "BSE:BANKEX",
}


def underlying_symbol(name: str, exchange: str = "NFO") -> str:
    """The symbol of the index or stock a derivative named ``name`` (``NIFTY``,
    ``RELIANCE``) trades on: an index's symbol, else the equity on NSE (BSE for a
    BFO contract)."""
    name = name.strip().upper()
    return INDEX_OF_UNDERLYING.get(name) or f"{'BSE' if exchange.upper() in ('BFO', 'BSE') else 'NSE'}:{name}"

#: Upstox derivative segment -> Kite exchange.
KITE_EXCHANGE_OF_SEGMENT: Final[Mapping[str, str]] = {
    "NSE_FO": "NFO",
    "BSE_FO": "BFO",
    "NCD_FO": "CDS",
    "BCD_FO": "BCD",
    "MCX_FO": "MCX",
    "NSE_COM": "NCO",
}

#: ``<UNDERLYING> FUT <DD MON YY>`` / ``<UNDERLYING> <STRIKE> <CE|PE> <DD MON YY>``.
_UPSTOX_DERIVATIVE: Final = re.compile(
    r"(?P<underlying>\S+) (?:FUT|[0-9]+(?:\.[0-9]+)? (?P<kind>CE|PE)) [0-9]{2} [A-Z]{3} [0-9]{2}"
)


def strike_text(strike: float) -> str:
    """A strike as Kite writes it: ``26000``, ``172.5``."""
    return str(int(strike)) if float(strike).is_integer() else f"{strike:g}"


def future_symbol(underlying: str, expiry: _dt.date) -> str:
    """Kite's futures name, e.g. ``NIFTY26NOVFUT``."""
    return f"{underlying}{expiry:%y}{MONTHS[expiry.month - 1]}FUT"


def option_symbol(underlying: str, expiry: _dt.date, strike: float, kind: str, *, monthly: bool) -> str:
    """Kite's option name: ``NIFTY26NOV26000CE`` (monthly), ``NIFTY26D0126000CE`` (weekly)."""
    if monthly:
        stem = f"{underlying}{expiry:%y}{MONTHS[expiry.month - 1]}"
    else:
        stem = f"{underlying}{expiry:%y}{WEEKLY_MONTH_CODES[expiry.month - 1]}{expiry.day:02d}"
    return f"{stem}{strike_text(strike)}{kind}"


def _kind(instrument_type: str, match: re.Match[str] | None) -> str | None:
    """FUT, CE or PE (the old CSV's FUTIDX/OPTIDX... too), else None."""
    if instrument_type in ("FUT", "CE", "PE"):
        return instrument_type
    if instrument_type.startswith("FUT"):
        return "FUT"
    if instrument_type.startswith("OPT") and match is not None:
        return match.group("kind")
    return None


def kite_aliases(
    *,
    segment: Sequence[str],
    tradingsymbol: Sequence[str],
    name: Sequence[str],
    expiry: Sequence[_dt.date | None],
    strike: Sequence[float],
    instrument_type: Sequence[str],
    weekly: Sequence[bool | None] | None = None,
    taken: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Kite-style ``EXCHANGE:TRADINGSYMBOL`` -> slot for the derivatives of an Upstox
    instrument master given column-wise (see the module docstring); ``taken`` holds
    the master's own symbols, which an alias never shadows."""
    count = len(segment)
    # (slot, exchange, underlying, expiry, kind, strike, weekly flag)
    contracts: list[tuple[int, str, str, _dt.date, str, float, bool | None]] = []
    last: dict[tuple[str, str, int, int], _dt.date] = {}
    for slot in range(count):
        exchange = KITE_EXCHANGE_OF_SEGMENT.get(segment[slot])
        day = expiry[slot]
        if exchange is None or day is None:
            continue
        symbol = tradingsymbol[slot]
        match = _UPSTOX_DERIVATIVE.fullmatch(symbol)
        kind = _kind(instrument_type[slot], match)
        if kind is None:
            continue
        underlying = match.group("underlying") if match is not None else name[slot]
        if not underlying or any(c.isspace() for c in underlying):
            continue
        flag = weekly[slot] if weekly is not None else None
        contracts.append((slot, exchange, underlying, day, kind, float(strike[slot]), flag))
        month = (exchange, underlying, day.year, day.month)
        if month not in last or day > last[month]:
            last[month] = day
    aliases: dict[str, int] = {}
    shared: set[str] = set()
    for slot, exchange, underlying, day, kind, strike_price, flag in contracts:
        if kind == "FUT":
            text = future_symbol(underlying, day)
        else:
            monthly = (not flag) if isinstance(flag, bool) else day == last[(exchange, underlying, day.year, day.month)]
            text = option_symbol(underlying, day, strike_price, kind, monthly=monthly)
        alias = f"{exchange}:{text}"
        if alias in aliases:
            shared.add(alias)
        aliases[alias] = slot
    for alias in shared:
        del aliases[alias]
    if taken:
        for alias in [a for a in aliases if a in taken]:
            del aliases[alias]
    return aliases
