"""A deterministic synthetic Zerodha Kite instrument universe.

:func:`kite_universe` returns rows shaped like Kite's daily instruments dump
(``GET /instruments``, see ``broker-formats.md`` §1.9): the NIFTY 50
constituents on NSE, the NIFTY 50 / NIFTY BANK / SENSEX indices, NIFTY and
BANKNIFTY futures and options on NFO, and a handful of currency (CDS, BCD) and
commodity (NCO, MCX) futures and options so that every price-divisor rule of
the binary feed is exercised. :func:`write_kite_csv` writes the rows as the
(optionally gzipped) CSV that Kite serves. :data:`INDEX_CONSTITUENTS` lists
each index's constituents with approximate weights, which
:class:`fastflow.sim.market.KiteMarket` uses to derive index levels.

Conventions (as in Kite's dump):

* ``instrument_token = exchange_token * 256 + segment_id``; the real tokens of
  INFY (408065), RELIANCE (738561), NIFTY 50 (256265), NIFTY BANK (260105) and
  SENSEX (265) are used, every other exchange token is synthetic.
* Monthly contracts are named ``<UNDERLYING><YY><MON>FUT`` and
  ``<UNDERLYING><YY><MON><STRIKE><CE|PE>`` (``NIFTY26NOVFUT``,
  ``NIFTY26NOV26000CE``); weekly options ``<UNDERLYING><YY><M><DD><STRIKE><CE|PE>``
  with ``M`` = ``1``..``9``, ``O``, ``N``, ``D`` (``NIFTY26D0126000CE``). A
  weekly series expiring on the monthly expiry day uses the monthly name.
* NSE index derivatives expire on Tuesdays (monthly: last Tuesday of the
  month); currency futures two weekdays before the month's last weekday;
  MCX/NCO crude-style contracts on the 19th (or the weekday before). Exchange
  holidays are ignored.

Everything depends only on ``today``, so the universe is reproducible.

:func:`upstox_universe` expresses the same instruments as Upstox's JSON
instruments file (``broker-formats.md`` §2.5; fields as in Upstox's published
sample objects) and :func:`write_upstox_json` writes it, optionally gzipped:

* instrument keys: ``NSE_EQ|<ISIN>`` for equities (the real ISINs of INFY
  ``INE009A01021`` and RELIANCE ``INE002A01018``; the others are synthetic
  but ISIN-shaped, ``INEZ<nn>Z0101`` plus a valid check digit),
  ``NSE_INDEX|Nifty 50``, ``NSE_INDEX|Nifty Bank``, ``BSE_INDEX|SENSEX``, and
  ``<SEGMENT>|<exchange_token>`` for derivatives: NFO -> ``NSE_FO``, CDS ->
  ``NCD_FO`` (exchange ``NSE``), BCD -> ``BCD_FO`` (exchange ``BSE``), MCX
  -> ``MCX_FO``.  Exchange tokens are the Kite universe's, as strings.
* NCO (NSE commodity) contracts are **dropped**: Upstox lists them under its
  own ``NSE_COM`` segment, whose file format is unverified, and mapping them
  to ``MCX_FO`` would turn them into MCX contracts with the same trading
  symbols as the real MCX ones.
* trading symbols follow Upstox: ``NIFTY 26000 CE 01 DEC 26``,
  ``CRUDEOIL FUT 18 DEC 26`` (``<UNDERLYING> [<STRIKE> <CE|PE>|FUT]
  <DD MON YY>``); equities and indices keep Kite's (``INFY``, ``NIFTY 50``).
* ``expiry`` is epoch milliseconds at 15:30 IST of the expiry date.
* ``tick_size`` is in paise, as in Upstox's files (0.05 rupees -> ``5.0``,
  0.0025 -> ``0.25``); ``last_price`` (not in Upstox's files, read by
  :meth:`fastflow.instruments.Instruments.from_upstox`) is in rupees.
"""

from __future__ import annotations

import datetime
import gzip
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping

from fastflow.instruments import KITE_COLUMNS

__all__ = [
    "COLUMNS",
    "INDEX_CONSTITUENTS",
    "isin_check_digit",
    "kite_universe",
    "upstox_universe",
    "write_kite_csv",
    "write_upstox_json",
]

#: The instruments-dump columns, in Kite's order.
COLUMNS: tuple[str, ...] = KITE_COLUMNS

Row = dict[str, object]
#: ``(year, month) -> expiry date`` of a monthly contract.
ExpiryRule = Callable[[int, int], datetime.date]

SEG_NSE = 1
SEG_NFO = 2
SEG_CDS = 3
SEG_BSE = 4
SEG_BCD = 6
SEG_MCX = 7
SEG_INDICES = 9
SEG_NCO = 12

_MONTHS = (
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
_TUESDAY = 1

#: NIFTY 50 constituents (late 2025 / 2026 composition):
#: (tradingsymbol, name, plausible 2026 price in rupees).
NIFTY50: tuple[tuple[str, str, float], ...] = (
    ("ADANIENT", "ADANI ENTERPRISES", 2400.0),
    ("ADANIPORTS", "ADANI PORT & SEZ", 1480.0),
    ("APOLLOHOSP", "APOLLO HOSPITALS", 7600.0),
    ("ASIANPAINT", "ASIAN PAINTS", 2850.0),
    ("AXISBANK", "AXIS BANK", 1260.0),
    ("BAJAJ-AUTO", "BAJAJ AUTO", 9050.0),
    ("BAJFINANCE", "BAJAJ FINANCE", 1020.0),
    ("BAJAJFINSV", "BAJAJ FINSERV", 2060.0),
    ("BEL", "BHARAT ELECTRONICS", 420.0),
    ("BHARTIARTL", "BHARTI AIRTEL", 2110.0),
    ("CIPLA", "CIPLA", 1530.0),
    ("COALINDIA", "COAL INDIA", 385.0),
    ("DRREDDY", "DR. REDDY'S LABORATORIES", 1260.0),
    ("EICHERMOT", "EICHER MOTORS", 7000.0),
    ("ETERNAL", "ETERNAL", 305.0),
    ("GRASIM", "GRASIM INDUSTRIES", 2780.0),
    ("HCLTECH", "HCL TECHNOLOGIES", 1620.0),
    ("HDFCBANK", "HDFC BANK", 1005.0),
    ("HDFCLIFE", "HDFC LIFE INS CO", 765.0),
    ("HINDALCO", "HINDALCO INDUSTRIES", 820.0),
    ("HINDUNILVR", "HINDUSTAN UNILEVER", 2450.0),
    ("ICICIBANK", "ICICI BANK", 1390.0),
    ("INDIGO", "INTERGLOBE AVIATION", 5800.0),
    ("INFY", "INFOSYS", 1560.0),
    ("ITC", "ITC", 405.0),
    ("JIOFIN", "JIO FIN SERVICES", 305.0),
    ("JSWSTEEL", "JSW STEEL", 1160.0),
    ("KOTAKBANK", "KOTAK MAHINDRA BANK", 2120.0),
    ("LT", "LARSEN & TOUBRO", 4020.0),
    ("M&M", "MAHINDRA & MAHINDRA", 3720.0),
    ("MARUTI", "MARUTI SUZUKI INDIA", 16100.0),
    ("MAXHEALTH", "MAX HEALTHCARE INS", 1140.0),
    ("NESTLEIND", "NESTLE INDIA", 1270.0),
    ("NTPC", "NTPC", 330.0),
    ("ONGC", "OIL AND NATURAL GAS CORP", 248.5),
    ("POWERGRID", "POWER GRID CORP", 272.0),
    ("RELIANCE", "RELIANCE INDUSTRIES", 1540.0),
    ("SBILIFE", "SBI LIFE INSURANCE", 2010.0),
    ("SBIN", "STATE BANK OF INDIA", 960.0),
    ("SHRIRAMFIN", "SHRIRAM FINANCE", 820.0),
    ("SUNPHARMA", "SUN PHARMACEUTICAL IND", 1780.0),
    ("TATACONSUM", "TATA CONSUMER PRODUCTS", 1160.0),
    ("TMPV", "TATA MOTORS PASS VEH", 400.0),
    ("TATASTEEL", "TATA STEEL", 172.3),
    ("TCS", "TATA CONSULTANCY SERV", 3150.0),
    ("TECHM", "TECH MAHINDRA", 1520.0),
    ("TITAN", "TITAN COMPANY", 3850.0),
    ("TRENT", "TRENT", 4450.0),
    ("ULTRACEMCO", "ULTRATECH CEMENT", 11900.0),
    ("WIPRO", "WIPRO", 246.4),
)

def _normalised(percent: tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
    """``(symbol, percent)`` pairs as ``(symbol, weight)`` with the weights summing to 1."""
    total = sum(weight for _, weight in percent)
    return tuple((symbol, weight / total) for symbol, weight in percent)


#: Index tradingsymbol -> ``(constituent tradingsymbol, weight)`` pairs, the
#: weights summing to 1. They are APPROXIMATE free-float market-cap weights
#: (rounded, late 2025) for a synthetic market, not the official ones, and
#: only the constituents listed in :data:`NIFTY50` appear: NIFTY 50 is the
#: whole table; NIFTY BANK keeps the five NIFTY 50 banks (its smaller
#: constituents such as INDUSINDBK or BANKBARODA are not in the universe),
#: re-weighted over them; SENSEX is its 30 BSE constituents, all of which
#: are NIFTY 50 stocks. :meth:`fastflow.sim.market.KiteMarket.from_rows`
#: links each index row to these constituents by ``tradingsymbol``.
INDEX_CONSTITUENTS: dict[str, tuple[tuple[str, float], ...]] = {
    "NIFTY 50": _normalised(
        (
            ("HDFCBANK", 12.9),
            ("ICICIBANK", 8.6),
            ("RELIANCE", 8.4),
            ("INFY", 4.9),
            ("BHARTIARTL", 4.7),
            ("LT", 3.9),
            ("ITC", 3.4),
            ("SBIN", 3.2),
            ("AXISBANK", 3.0),
            ("TCS", 2.8),
            ("KOTAKBANK", 2.7),
            ("M&M", 2.5),
            ("BAJFINANCE", 2.3),
            ("HINDUNILVR", 1.9),
            ("MARUTI", 1.8),
            ("SUNPHARMA", 1.6),
            ("HCLTECH", 1.6),
            ("ETERNAL", 1.5),
            ("NTPC", 1.4),
            ("TITAN", 1.3),
            ("ULTRACEMCO", 1.2),
            ("TATASTEEL", 1.2),
            ("BEL", 1.2),
            ("POWERGRID", 1.1),
            ("INDIGO", 1.0),
            ("TRENT", 0.9),
            ("ONGC", 0.9),
            ("ASIANPAINT", 0.9),
            ("BAJAJFINSV", 0.9),
            ("ADANIPORTS", 0.9),
            ("JSWSTEEL", 0.9),
            ("HINDALCO", 0.9),
            ("TMPV", 0.8),
            ("GRASIM", 0.8),
            ("TECHM", 0.8),
            ("SHRIRAMFIN", 0.8),
            ("BAJAJ-AUTO", 0.8),
            ("EICHERMOT", 0.8),
            ("JIOFIN", 0.8),
            ("COALINDIA", 0.7),
            ("CIPLA", 0.7),
            ("SBILIFE", 0.7),
            ("HDFCLIFE", 0.7),
            ("NESTLEIND", 0.7),
            ("TATACONSUM", 0.6),
            ("DRREDDY", 0.6),
            ("APOLLOHOSP", 0.6),
            ("MAXHEALTH", 0.6),
            ("WIPRO", 0.6),
            ("ADANIENT", 0.5),
        )
    ),
    "NIFTY BANK": _normalised(
        (
            ("HDFCBANK", 28.5),
            ("ICICIBANK", 24.5),
            ("SBIN", 9.5),
            ("KOTAKBANK", 8.5),
            ("AXISBANK", 8.5),
        )
    ),
    "SENSEX": _normalised(
        (
            ("HDFCBANK", 15.5),
            ("ICICIBANK", 10.5),
            ("RELIANCE", 10.0),
            ("INFY", 5.5),
            ("BHARTIARTL", 5.5),
            ("LT", 4.5),
            ("ITC", 4.0),
            ("SBIN", 3.7),
            ("AXISBANK", 3.5),
            ("TCS", 3.3),
            ("KOTAKBANK", 3.2),
            ("M&M", 3.0),
            ("BAJFINANCE", 2.7),
            ("HINDUNILVR", 2.2),
            ("MARUTI", 2.1),
            ("SUNPHARMA", 1.9),
            ("HCLTECH", 1.9),
            ("ETERNAL", 1.7),
            ("NTPC", 1.6),
            ("TITAN", 1.5),
            ("ULTRACEMCO", 1.4),
            ("TATASTEEL", 1.4),
            ("BEL", 1.4),
            ("POWERGRID", 1.3),
            ("ASIANPAINT", 1.1),
            ("TRENT", 1.0),
            ("BAJAJFINSV", 1.0),
            ("ADANIPORTS", 1.0),
            ("TMPV", 0.9),
            ("TECHM", 0.9),
        )
    ),
}


#: Real exchange tokens (instrument_token = exchange_token * 256 + segment).
_REAL_EQ_TOKENS = {"INFY": 1594, "RELIANCE": 2885}

NIFTY_SPOT = 26_050.0
BANKNIFTY_SPOT = 59_120.0
SENSEX_SPOT = 85_300.0

NIFTY_LOT = 75
BANKNIFTY_LOT = 35
#: Strikes on each side of the at-the-money strike, per expiry.
OPTION_STRIKES_EACH_SIDE = 20

# Synthetic exchange-token ranges per segment (disjoint from the real ones).
_EQ_TOKEN_BASE = 50_001
_NFO_TOKEN_BASE = 35_001
_CDS_TOKEN_BASE = 1_001
_BCD_TOKEN_BASE = 2_001
_NCO_TOKEN_BASE = 501
_MCX_TOKEN_BASE = 450_001


def _row(
    exchange_token: int,
    segment_id: int,
    tradingsymbol: str,
    name: str,
    last_price: float,
    expiry: datetime.date | None,
    strike: float,
    tick_size: float,
    lot_size: int,
    instrument_type: str,
    segment: str,
    exchange: str,
) -> Row:
    return {
        "instrument_token": exchange_token * 256 + segment_id,
        "exchange_token": exchange_token,
        "tradingsymbol": tradingsymbol,
        "name": name,
        "last_price": last_price,
        "expiry": expiry,
        "strike": strike,
        "tick_size": tick_size,
        "lot_size": lot_size,
        "instrument_type": instrument_type,
        "segment": segment,
        "exchange": exchange,
    }


def _on_grid(price: float, tick: float) -> float:
    """``price`` rounded to the nearest multiple of ``tick`` (at least one tick)."""
    steps = max(1, round(price / tick))
    return round(steps * tick, 6)


# --------------------------------------------------------------------------- dates


def _last_weekday_of_month(year: int, month: int, weekday: int) -> datetime.date:
    first_next = datetime.date(year + month // 12, month % 12 + 1, 1)
    last = first_next - datetime.timedelta(days=1)
    return last - datetime.timedelta(days=(last.weekday() - weekday) % 7)


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def _monthly_expiries(today: datetime.date, count: int, rule: ExpiryRule) -> list[datetime.date]:
    """The next ``count`` monthly expiries on or after ``today`` under ``rule``."""
    year, month = today.year, today.month
    out: list[datetime.date] = []
    while len(out) < count:
        expiry = rule(year, month)
        if expiry >= today:
            out.append(expiry)
        year, month = _next_month(year, month)
    return out


def _weekly_expiries(today: datetime.date, count: int, weekday: int) -> list[datetime.date]:
    first = today + datetime.timedelta(days=(weekday - today.weekday()) % 7)
    return [first + datetime.timedelta(weeks=i) for i in range(count)]


def _index_monthly(year: int, month: int) -> datetime.date:
    """NSE index derivatives: the last Tuesday of the month."""
    return _last_weekday_of_month(year, month, _TUESDAY)


def _previous_weekday(day: datetime.date) -> datetime.date:
    while day.weekday() >= 5:
        day -= datetime.timedelta(days=1)
    return day


def _currency_monthly(year: int, month: int) -> datetime.date:
    """Currency futures: two weekdays before the last weekday of the month."""
    first_next = datetime.date(year + month // 12, month % 12 + 1, 1)
    day = _previous_weekday(first_next - datetime.timedelta(days=1))
    for _ in range(2):
        day = _previous_weekday(day - datetime.timedelta(days=1))
    return day


def _crude_monthly(year: int, month: int) -> datetime.date:
    """Crude-style commodity futures: the 19th, or the weekday before it."""
    return _previous_weekday(datetime.date(year, month, 19))


# ------------------------------------------------------------------------ symbols


def _strike_text(strike: float) -> str:
    return str(int(strike)) if float(strike).is_integer() else f"{strike:g}"


def future_symbol(underlying: str, expiry: datetime.date) -> str:
    """Kite's futures name, e.g. ``NIFTY26NOVFUT``."""
    return f"{underlying}{expiry:%y}{_MONTHS[expiry.month - 1]}FUT"


def option_symbol(underlying: str, expiry: datetime.date, strike: float, kind: str, *, monthly: bool) -> str:
    """Kite's option name: ``NIFTY26NOV26000CE`` (monthly), ``NIFTY26D0126000CE`` (weekly)."""
    if monthly:
        stem = f"{underlying}{expiry:%y}{_MONTHS[expiry.month - 1]}"
    else:
        stem = f"{underlying}{expiry:%y}{_WEEKLY_MONTH[expiry.month - 1]}{expiry.day:02d}"
    return f"{stem}{_strike_text(strike)}{kind}"


# ------------------------------------------------------------------------- prices


def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _option_price(spot: float, strike: float, days: int, vol: float, kind: str, tick: float) -> float:
    """Black-Scholes premium (r = 0) on the tick grid; at least one tick."""
    t = (days + 0.5) / 365.0
    sd = vol * math.sqrt(t)
    d1 = (math.log(spot / strike) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    call = spot * _norm_cdf(d1) - strike * _norm_cdf(d2)
    price = call if kind == "CE" else call - spot + strike
    return _on_grid(max(price, tick), tick)


def _future_price(spot: float, days: int, tick: float, carry: float = 0.065) -> float:
    return _on_grid(spot * (1.0 + carry * days / 365.0), tick)


# ----------------------------------------------------------------------- universe


class _Tokens:
    """Sequential synthetic exchange tokens for one segment."""

    def __init__(self, start: int) -> None:
        self._next = start

    def take(self) -> int:
        token = self._next
        self._next += 1
        return token


def _equities() -> list[Row]:
    rows: list[Row] = []
    tokens = _Tokens(_EQ_TOKEN_BASE)
    for symbol, name, price in NIFTY50:
        tick = 0.01 if price < 250.0 else 0.05  # NSE: 1 paisa ticks below Rs 250
        token = _REAL_EQ_TOKENS.get(symbol) or tokens.take()
        price = _on_grid(price, tick)
        rows.append(_row(token, SEG_NSE, symbol, name, price, None, 0.0, tick, 1, "EQ", "NSE", "NSE"))
    return rows


def _indices() -> list[Row]:
    table = (
        (1001, "NIFTY 50", NIFTY_SPOT, "NSE"),
        (1016, "NIFTY BANK", BANKNIFTY_SPOT, "NSE"),
        (1, "SENSEX", SENSEX_SPOT, "BSE"),
    )
    return [
        _row(token, SEG_INDICES, name, name, spot, None, 0.0, 0.0, 0, "EQ", "INDICES", exchange)
        for token, name, spot, exchange in table
    ]


def _futures(
    tokens: _Tokens,
    segment_id: int,
    exchange: str,
    expiry: datetime.date,
    today: datetime.date,
    table: Iterable[tuple[str, float, float, int]],
) -> list[Row]:
    """One future per ``(underlying, spot, tick, lot)``, priced with a small carry."""
    days = (expiry - today).days
    return [
        _row(
            tokens.take(),
            segment_id,
            future_symbol(underlying, expiry),
            underlying,
            _future_price(spot, days, tick),
            expiry,
            0.0,
            tick,
            lot,
            "FUT",
            f"{exchange}-FUT",
            exchange,
        )
        for underlying, spot, tick, lot in table
    ]


def _option_chain(
    tokens: _Tokens,
    underlying: str,
    spot: float,
    step: float,
    vol: float,
    lot: int,
    expiries: Iterable[datetime.date],
    monthly_days: set[datetime.date],
    today: datetime.date,
    *,
    segment_id: int = SEG_NFO,
    exchange: str = "NFO",
    tick: float = 0.05,
    each_side: int = OPTION_STRIKES_EACH_SIDE,
) -> list[Row]:
    """CE and PE for ``2 * each_side + 1`` strikes around the spot, per expiry."""
    rows: list[Row] = []
    atm = round(spot / step) * step
    for expiry in expiries:
        days = (expiry - today).days
        monthly = expiry in monthly_days
        for i in range(-each_side, each_side + 1):
            strike = round(atm + i * step, 6)
            for kind in ("CE", "PE"):
                symbol = option_symbol(underlying, expiry, strike, kind, monthly=monthly)
                price = _option_price(spot, strike, days, vol, kind, tick)
                rows.append(
                    _row(
                        tokens.take(),
                        segment_id,
                        symbol,
                        underlying,
                        price,
                        expiry,
                        strike,
                        tick,
                        lot,
                        kind,
                        f"{exchange}-OPT",
                        exchange,
                    )
                )
    return rows


def _nfo(today: datetime.date) -> list[Row]:
    tokens = _Tokens(_NFO_TOKEN_BASE)
    monthly = _monthly_expiries(today, 2, _index_monthly)
    month_days = set(monthly)
    index_futures = (("NIFTY", NIFTY_SPOT, 0.1, NIFTY_LOT), ("BANKNIFTY", BANKNIFTY_SPOT, 0.1, BANKNIFTY_LOT))
    rows = _futures(tokens, SEG_NFO, "NFO", monthly[0], today, index_futures)
    # NIFTY: the next two weekly (Tuesday) expiries. BANKNIFTY has had monthly
    # expiries only since November 2024, so its next two expiries are monthly.
    nifty_expiries = _weekly_expiries(today, 2, _TUESDAY)
    rows += _option_chain(
        tokens, "NIFTY", NIFTY_SPOT, 50.0, 0.12, NIFTY_LOT, nifty_expiries, month_days, today
    )
    rows += _option_chain(
        tokens, "BANKNIFTY", BANKNIFTY_SPOT, 100.0, 0.14, BANKNIFTY_LOT, monthly, month_days, today
    )
    return rows


def _currency(today: datetime.date) -> list[Row]:
    expiry = _monthly_expiries(today, 1, _currency_monthly)[0]
    pairs = (
        ("USDINR", 88.4325, 0.0025, 1),
        ("EURINR", 102.115, 0.0025, 1),
        ("GBPINR", 116.045, 0.0025, 1),
        ("JPYINR", 57.8825, 0.0025, 1),
    )
    cds = _Tokens(_CDS_TOKEN_BASE)
    rows = _futures(cds, SEG_CDS, "CDS", expiry, today, pairs)
    rows += _option_chain(
        cds,
        "USDINR",
        88.4325,
        0.25,
        0.05,
        1,
        [expiry],
        {expiry},
        today,
        segment_id=SEG_CDS,
        exchange="CDS",
        tick=0.0025,
        each_side=2,
    )
    rows += _futures(_Tokens(_BCD_TOKEN_BASE), SEG_BCD, "BCD", expiry, today, pairs[:2])
    return rows


def _commodities(today: datetime.date) -> list[Row]:
    expiry = _monthly_expiries(today, 1, _crude_monthly)[0]
    mcx = (
        ("CRUDEOIL", 5_640.0, 1.0, 100),
        ("NATURALGAS", 312.4, 0.1, 1250),
        ("GOLDM", 124_500.0, 1.0, 10),
    )
    nco = (("CRUDEOIL", 5_641.0, 1.0, 100), ("GOLDM", 124_520.0, 1.0, 10))
    rows = _futures(_Tokens(_MCX_TOKEN_BASE), SEG_MCX, "MCX", expiry, today, mcx)
    rows += _futures(_Tokens(_NCO_TOKEN_BASE), SEG_NCO, "NCO", expiry, today, nco)
    return rows


def kite_universe(today: datetime.date | None = None) -> list[dict[str, object]]:
    """The synthetic instruments dump as typed rows (see the module docstring).

    ``today`` (default: :meth:`datetime.date.today`) decides the expiries and
    therefore the derivative trading symbols and prices; nothing else varies,
    so equal ``today`` gives equal rows. About 400 rows: 3 indices, 50
    equities, 2 index futures, 328 index options and 20 currency/commodity
    contracts.
    """
    day = datetime.date.today() if today is None else today
    rows = _indices() + _equities() + _nfo(day) + _currency(day) + _commodities(day)
    tokens = {r["instrument_token"] for r in rows}
    keys = {f"{r['exchange']}:{r['tradingsymbol']}" for r in rows}
    if len(tokens) != len(rows) or len(keys) != len(rows):  # pragma: no cover - construction bug
        raise AssertionError("duplicate instrument_token or EXCHANGE:TRADINGSYMBOL")
    return rows


# ---------------------------------------------------------------------------- CSV


def _format_number(value: object) -> str:
    """Kite style: integral floats without a fraction (``0``, ``26000``), else shortest repr."""
    if isinstance(value, bool):
        raise TypeError("boolean is not a dump value")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"non-finite number {value!r}")
        return str(int(value)) if value.is_integer() else repr(value)
    raise TypeError(f"expected a number, got {value!r}")


def _format_expiry(value: object) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, datetime.date):
        return value.isoformat()
    raise TypeError(f"expiry must be a date or None, got {value!r}")


def _plain(value: object, column: str) -> str:
    text = str(value)
    if any(c in text for c in ',"\r\n'):
        raise ValueError(f"{column} {text!r} contains a CSV delimiter or quote")
    return text


def _quoted(value: object) -> str:
    return '"' + str(value).replace('"', '""') + '"'


def _csv_text(rows: Iterable[Mapping[str, object]]) -> str:
    lines = [",".join(COLUMNS)]
    for row in rows:
        fields = (
            _format_number(row["instrument_token"]),
            _format_number(row["exchange_token"]),
            _plain(row["tradingsymbol"], "tradingsymbol"),
            _quoted(row["name"]),
            _format_number(row["last_price"]),
            _format_expiry(row["expiry"]),
            _format_number(row["strike"]),
            _format_number(row["tick_size"]),
            _format_number(row["lot_size"]),
            _plain(row["instrument_type"], "instrument_type"),
            _plain(row["segment"], "segment"),
            _plain(row["exchange"], "exchange"),
        )
        lines.append(",".join(fields))
    return "\n".join(lines) + "\n"


def write_kite_csv(rows: Iterable[Mapping[str, object]], path: str | os.PathLike[str]) -> None:
    """Write ``rows`` as Kite's instruments CSV; gzip it when ``path`` ends with ``.gz``.

    The header is Kite's column line and ``name`` is always double-quoted,
    as in Kite's dump; numbers are written so that
    ``KiteConnect._parse_instruments`` reads back the same values (integral
    floats as ``0``/``26000``, others in shortest round-trip form); ``expiry``
    is ``YYYY-MM-DD`` or empty. The gzip stream has a zero mtime, so equal
    rows give byte-identical files.
    """
    data = _csv_text(rows).encode("utf-8")
    _write(data, path)


# ------------------------------------------------------------------------- Upstox

#: Real ISINs; the other equities get synthetic ones (:func:`_synthetic_isin`).
_REAL_ISINS = {"INFY": "INE009A01021", "RELIANCE": "INE002A01018"}
#: Kite index tradingsymbol -> Upstox instrument key.
_UPSTOX_INDEX_KEYS = {
    "NIFTY 50": "NSE_INDEX|Nifty 50",
    "NIFTY BANK": "NSE_INDEX|Nifty Bank",
    "SENSEX": "BSE_INDEX|SENSEX",
}
#: Kite exchange of a derivative -> (Upstox segment, Upstox exchange, underlying_type).
_UPSTOX_DERIVATIVE_SEGMENTS = {
    "NFO": ("NSE_FO", "NSE", "INDEX"),
    "CDS": ("NCD_FO", "NSE", "CUR"),
    "BCD": ("BCD_FO", "BSE", "CUR"),
    "MCX": ("MCX_FO", "MCX", "COM"),
}
_UPSTOX_UNDERLYING_KEYS = {"NIFTY": "NSE_INDEX|Nifty 50", "BANKNIFTY": "NSE_INDEX|Nifty Bank"}
_EPOCH = datetime.date(1970, 1, 1)
_ISIN_BODY = re.compile(r"[A-Z0-9]{11}")
#: 15:30 IST is 10:00 UTC.
_CLOSE_UTC_MS = 10 * 3600 * 1000


def isin_check_digit(body: str) -> str:
    """The ISIN check digit (Luhn over the letters-as-numbers expansion) of an 11-char ``body``."""
    if not _ISIN_BODY.fullmatch(body):
        raise ValueError(f"ISIN body must be 11 upper-case letters or digits, got {body!r}")
    digits = "".join(str(int(char, 36)) for char in body)
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value // 10 + value % 10
    return str((10 - total % 10) % 10)


def _synthetic_isin(index: int) -> str:
    body = f"INEZ{index:02d}Z0101"
    return body + isin_check_digit(body)


def _expiry_ms(expiry: datetime.date) -> int:
    """Epoch milliseconds of 15:30 IST on ``expiry``."""
    return (expiry - _EPOCH).days * 86_400_000 + _CLOSE_UTC_MS


def _upstox_date(expiry: datetime.date) -> str:
    return f"{expiry.day:02d} {_MONTHS[expiry.month - 1]} {expiry:%y}"


def _paise(tick: object) -> float:
    assert isinstance(tick, float)
    return round(tick * 100.0, 6)


def _upstox_equity(row: Mapping[str, object], index: int) -> Row:
    symbol = str(row["tradingsymbol"])
    isin = _REAL_ISINS.get(symbol) or _synthetic_isin(index)
    return {
        "segment": "NSE_EQ",
        "name": row["name"],
        "exchange": "NSE",
        "isin": isin,
        "instrument_type": "EQ",
        "instrument_key": f"NSE_EQ|{isin}",
        "lot_size": row["lot_size"],
        "exchange_token": str(row["exchange_token"]),
        "tick_size": _paise(row["tick_size"]),
        "trading_symbol": symbol,
        "last_price": row["last_price"],
    }


def _upstox_index(row: Mapping[str, object]) -> Row:
    key = _UPSTOX_INDEX_KEYS[str(row["tradingsymbol"])]
    segment, _, identifier = key.partition("|")
    return {
        "segment": segment,
        "name": identifier,
        "exchange": row["exchange"],
        "instrument_type": "INDEX",
        "instrument_key": key,
        "exchange_token": str(row["exchange_token"]),
        "trading_symbol": row["tradingsymbol"],
        "last_price": row["last_price"],
    }


def _upstox_derivative(row: Mapping[str, object]) -> Row:
    segment, exchange, underlying_type = _UPSTOX_DERIVATIVE_SEGMENTS[str(row["exchange"])]
    expiry = row["expiry"]
    assert isinstance(expiry, datetime.date)
    underlying = str(row["name"])
    kind = str(row["instrument_type"])
    strike = row["strike"]
    assert isinstance(strike, float)
    if kind == "FUT":
        symbol = f"{underlying} FUT {_upstox_date(expiry)}"
        weekly = False
    else:
        symbol = f"{underlying} {_strike_text(strike)} {kind} {_upstox_date(expiry)}"
        weekly = segment == "NSE_FO" and expiry != _index_monthly(expiry.year, expiry.month)
    record: Row = {
        "weekly": weekly,
        "segment": segment,
        "name": underlying,
        "exchange": exchange,
        "expiry": _expiry_ms(expiry),
        "instrument_type": kind,
        "underlying_symbol": underlying,
        "instrument_key": f"{segment}|{row['exchange_token']}",
        "lot_size": row["lot_size"],
        "exchange_token": str(row["exchange_token"]),
        "minimum_lot": row["lot_size"],
    }
    if underlying in _UPSTOX_UNDERLYING_KEYS:
        record["underlying_key"] = _UPSTOX_UNDERLYING_KEYS[underlying]
    record.update(
        {
            "tick_size": _paise(row["tick_size"]),
            "underlying_type": underlying_type,
            "trading_symbol": symbol,
            "strike_price": strike,
            "last_price": row["last_price"],
        }
    )
    return record


def upstox_universe(today: datetime.date | None = None) -> list[dict[str, object]]:
    """The instruments of :func:`kite_universe` as Upstox JSON records (see the module docstring).

    Same order as the Kite universe, minus its NCO contracts; every value is
    JSON-native (``expiry`` epoch ms, ``exchange_token`` a numeric string),
    so the records can be written with :func:`write_upstox_json` and loaded
    with :meth:`fastflow.instruments.Instruments.from_upstox`.  Equal
    ``today`` gives equal records.
    """
    records: list[Row] = []
    equities = 0
    for row in kite_universe(today):
        segment = row["segment"]
        if segment == "INDICES":
            records.append(_upstox_index(row))
        elif segment == "NSE":
            records.append(_upstox_equity(row, equities))
            equities += 1
        elif row["exchange"] == "NCO":
            continue
        else:
            records.append(_upstox_derivative(row))
    keys = {r["instrument_key"] for r in records}
    symbols = {f"{r['exchange']}:{r['trading_symbol']}" for r in records}
    if len(keys) != len(records) or len(symbols) != len(records):  # pragma: no cover - construction bug
        raise AssertionError("duplicate instrument_key or EXCHANGE:TRADING_SYMBOL")
    return records


def _json_text(rows: Iterable[Mapping[str, object]]) -> str:
    lines = [
        json.dumps(dict(row), ensure_ascii=False, separators=(",", ":"), allow_nan=False) for row in rows
    ]
    if not lines:
        return "[]\n"
    return "[\n" + ",\n".join(lines) + "\n]\n"


def write_upstox_json(rows: Iterable[Mapping[str, object]], path: str | os.PathLike[str]) -> None:
    """Write ``rows`` as an Upstox instruments JSON array; gzip it when ``path`` ends with ``.gz``.

    One object per line (so a JSON syntax error's line is the record's
    line + 1), compact separators, UTF-8, fields in the given order;
    non-finite numbers and non-JSON values raise :class:`ValueError` /
    :class:`TypeError`.  The gzip stream has a zero mtime and no file name,
    so equal rows give byte-identical files.
    """
    data = _json_text(rows).encode("utf-8")
    _write(data, path)


def _write(data: bytes, path: str | os.PathLike[str]) -> None:
    """Write ``data`` to ``path``, gzipped (mtime 0: reproducible) when it ends in .gz."""
    target = os.fspath(path)
    if target.endswith(".gz"):
        with (
            open(target, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        ):
            gz.write(data)
    else:
        with open(target, "wb") as fh:
            fh.write(data)
