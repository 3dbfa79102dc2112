"""The synthetic Zerodha Kite instrument universe, as rows of Kite's instruments dump.

:func:`kite_universe` returns rows shaped like Kite's daily instruments dump
(``GET /instruments``, see ``broker-formats.md`` §1.9), in one of two sizes
(:data:`SIZES`):

* ``small`` (about 400 rows; what the tests use): the NIFTY 50 constituents on
  NSE, the NIFTY 50 / NIFTY BANK / SENSEX indices, NIFTY and BANKNIFTY futures
  and options on NFO, and a handful of currency (CDS, BCD) and commodity (NCO,
  MCX) futures and options so that every price-divisor rule of the binary feed
  is exercised;
* ``full`` (about 8,200-8,400 rows, within Kite's 9,000 tokens per api_key):
  the same stocks, five indices (NIFTY FIN SERVICE and INDIA VIX added), index
  futures for the next 3 months, NIFTY options over the next 4 weekly and 3
  monthly expiries (+-40 strikes of 50), BANKNIFTY (+-30 of 100) and FINNIFTY
  (+-30 of 50) options over 3 monthly expiries (monthly only since November
  2024), stock futures for 3 months and stock options over 3 monthly expiries
  (+-10 strikes) on all 50 stocks, and the same currency and commodity rows.
  Lot sizes, tick sizes and expiry days follow ``indian-market-facts.md``
  (§4: NIFTY 65, BANKNIFTY 30, FINNIFTY 60 from the January 2026 expiries;
  expiries on a holiday move to the trading day before); stock lots, strike
  steps and volatilities are plausible, not official (:func:`stock_lot`,
  :func:`stock_strike_step`). The small universe keeps its original figures
  (lots 75 and 35, 0.05 equity ticks, no holidays): tests depend on them.

Conventions (as in Kite's dump):

* ``instrument_token = exchange_token * 256 + segment_id``; the real tokens of
  INFY (408065), RELIANCE (738561), NIFTY 50 (256265), NIFTY BANK (260105),
  NIFTY FIN SERVICE (257801), INDIA VIX (264969) and SENSEX (265) are used,
  every other exchange token is synthetic.
* A derivative's ``name`` is its underlying (``NIFTY``, ``BANKNIFTY``,
  ``FINNIFTY``, ``RELIANCE``); :data:`~fastflow.sim.universe.UNDERLYING_INDEX`
  maps an index underlying to its index row's tradingsymbol.
* Monthly contracts are named ``<UNDERLYING><YY><MON>FUT`` and
  ``<UNDERLYING><YY><MON><STRIKE><CE|PE>`` (``NIFTY26NOVFUT``,
  ``NIFTY26NOV26000CE``); weekly options ``<UNDERLYING><YY><M><DD><STRIKE><CE|PE>``
  with ``M`` = ``1``..``9``, ``O``, ``N``, ``D`` (``NIFTY26D0126000CE``). A
  weekly series expiring on the monthly expiry day uses the monthly name.
* Expiries follow :mod:`fastflow.sim.universe.calendar`; day-one prices are
  Black-Scholes premiums and carried futures (:mod:`fastflow.sim.universe.pricing`).

Everything depends only on ``today`` and ``size``, so the universe is reproducible.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Iterable

from fastflow.reference.broker_wire import (
    KITE_SEGMENT_BCD,
    KITE_SEGMENT_CDS,
    KITE_SEGMENT_INDICES,
    KITE_SEGMENT_NCO,
)
from fastflow.sim.universe.calendar import (
    TUESDAY,
    crude_monthly,
    currency_monthly,
    future_symbol,
    index_monthly,
    monthly_expiries,
    nse_index_monthly,
    nse_weekly_expiries,
    option_symbol,
    weekly_expiries,
)
from fastflow.sim.universe.constituents import NIFTY50
from fastflow.sim.universe.pricing import future_price, on_grid, option_price

__all__ = [
    "SIZES",
    "equity_tick",
    "index_future_tick",
    "index_lot",
    "kite_universe",
    "stock_lot",
    "stock_option_tick",
    "stock_strike_step",
]

Row = dict[str, object]

# Kite segment ids (instrument_token & 0xff); the ones the wire's divisor rule
# names come from the one definition in fastflow.reference.broker_wire.
SEG_NSE = 1
SEG_NFO = 2
SEG_CDS = KITE_SEGMENT_CDS
SEG_BSE = 4
SEG_BCD = KITE_SEGMENT_BCD
SEG_MCX = 7
SEG_INDICES = KITE_SEGMENT_INDICES
SEG_NCO = KITE_SEGMENT_NCO

#: Real exchange tokens (instrument_token = exchange_token * 256 + segment).
_REAL_EQ_TOKENS = {"INFY": 1594, "RELIANCE": 2885}

NIFTY_SPOT = 26_050.0
BANKNIFTY_SPOT = 59_120.0
SENSEX_SPOT = 85_300.0

NIFTY_LOT = 75
BANKNIFTY_LOT = 35
#: Strikes on each side of the at-the-money strike, per expiry.
OPTION_STRIKES_EACH_SIDE = 20

#: The universe sizes :func:`kite_universe` builds.
SIZES = ("small", "full")

# -- the full universe's figures (indian-market-facts.md, dated; plausible otherwise)
FINNIFTY_SPOT = 27_600.0
INDIA_VIX = 11.85
#: Index lots (facts §4): for expiries before 2026 (the 2025-04-25 sizes), and from
#: the January 2026 expiries on (FAOP70616).
INDEX_LOTS: dict[str, tuple[int, int]] = {"NIFTY": (75, 65), "BANKNIFTY": (35, 30), "FINNIFTY": (65, 60)}
_LOTS_REVISED = datetime.date(2026, 1, 1)
#: ``(underlying, spot, strike step, volatility, strikes each side)`` of the index chains.
FULL_INDEX_OPTIONS: tuple[tuple[str, float, float, float, int], ...] = (
    ("NIFTY", NIFTY_SPOT, 50.0, 0.12, 40),
    ("BANKNIFTY", BANKNIFTY_SPOT, 100.0, 0.14, 30),
    ("FINNIFTY", FINNIFTY_SPOT, 50.0, 0.13, 30),
)
#: NIFTY weekly expiries listed (besides the monthly ones).
FULL_WEEKLY_EXPIRIES = 4
#: Monthly expiries of futures and of monthly-only options.
FULL_MONTHLY_EXPIRIES = 3
#: Strikes on each side of the at-the-money strike of a stock option chain.
FULL_STOCK_STRIKES_EACH_SIDE = 10
#: A stock lot is worth about this much (rupees) at the day's price.
STOCK_LOT_VALUE = 750_000.0

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


class _Tokens:
    """Sequential synthetic exchange tokens for one segment."""

    def __init__(self, start: int) -> None:
        self._next = start

    def take(self) -> int:
        token = self._next
        self._next += 1
        return token


def _small_equity_tick(price: float) -> float:
    return 0.01 if price < 250.0 else 0.05  # NSE: 1 paisa ticks below Rs 250


def _equities(tick_of: Callable[[float], float] = _small_equity_tick) -> list[Row]:
    rows: list[Row] = []
    tokens = _Tokens(_EQ_TOKEN_BASE)
    for symbol, name, price in NIFTY50:
        tick = tick_of(price)
        token = _REAL_EQ_TOKENS.get(symbol) or tokens.take()
        price = on_grid(price, tick)
        rows.append(_row(token, SEG_NSE, symbol, name, price, None, 0.0, tick, 1, "EQ", "NSE", "NSE"))
    return rows


def _indices(full: bool = False) -> list[Row]:
    table: tuple[tuple[int, str, float, str], ...] = (
        (1001, "NIFTY 50", NIFTY_SPOT, "NSE"),
        (1016, "NIFTY BANK", BANKNIFTY_SPOT, "NSE"),
        (1, "SENSEX", SENSEX_SPOT, "BSE"),
    )
    if full:
        table += ((1007, "NIFTY FIN SERVICE", FINNIFTY_SPOT, "NSE"), (1035, "INDIA VIX", INDIA_VIX, "NSE"))
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
            future_price(spot, days, tick),
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
                price = option_price(spot, strike, days, vol, kind, tick)
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
    monthly = monthly_expiries(today, 2, index_monthly)
    month_days = set(monthly)
    index_futures = (("NIFTY", NIFTY_SPOT, 0.1, NIFTY_LOT), ("BANKNIFTY", BANKNIFTY_SPOT, 0.1, BANKNIFTY_LOT))
    rows = _futures(tokens, SEG_NFO, "NFO", monthly[0], today, index_futures)
    # NIFTY: the next two weekly (Tuesday) expiries. BANKNIFTY has had monthly
    # expiries only since November 2024, so its next two expiries are monthly.
    nifty_expiries = weekly_expiries(today, 2, TUESDAY)
    rows += _option_chain(
        tokens, "NIFTY", NIFTY_SPOT, 50.0, 0.12, NIFTY_LOT, nifty_expiries, month_days, today
    )
    rows += _option_chain(
        tokens, "BANKNIFTY", BANKNIFTY_SPOT, 100.0, 0.14, BANKNIFTY_LOT, monthly, month_days, today
    )
    return rows


def _currency(today: datetime.date) -> list[Row]:
    expiry = monthly_expiries(today, 1, currency_monthly)[0]
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
    expiry = monthly_expiries(today, 1, crude_monthly)[0]
    mcx = (
        ("CRUDEOIL", 5_640.0, 1.0, 100),
        ("NATURALGAS", 312.4, 0.1, 1250),
        ("GOLDM", 124_500.0, 1.0, 10),
    )
    nco = (("CRUDEOIL", 5_641.0, 1.0, 100), ("GOLDM", 124_520.0, 1.0, 10))
    rows = _futures(_Tokens(_MCX_TOKEN_BASE), SEG_MCX, "MCX", expiry, today, mcx)
    rows += _futures(_Tokens(_NCO_TOKEN_BASE), SEG_NCO, "NCO", expiry, today, nco)
    return rows


# ------------------------------------------------------------------ the full universe


def equity_tick(price: float) -> float:
    """Stocks and stock futures (facts §4): 0.01 below Rs 250, then 0.05 / 0.10 /
    0.50 / 1 / 5 from the Rs 250 / 1k / 5k / 10k / 20k price bands."""
    for bound, tick in ((250.0, 0.01), (1_000.0, 0.05), (5_000.0, 0.10), (10_000.0, 0.50), (20_000.0, 1.0)):
        if price < bound:
            return tick
    return 5.0


def index_future_tick(price: float) -> float:
    """Index futures (facts §4, from 2025-04-15): 0.05 up to 15k, 0.10 up to 30k, 0.20 above."""
    return 0.05 if price <= 15_000.0 else 0.10 if price <= 30_000.0 else 0.20


def stock_option_tick(spot: float) -> float:
    """Options: 0.05; on stocks below Rs 250, 0.01 (since 2025-11-03, facts §4)."""
    return 0.01 if spot < 250.0 else 0.05


def stock_strike_step(price: float) -> float:
    """A plausible strike interval for a stock at ``price`` (NSE sets them by price
    band; these bands are an approximation, not NSE's table)."""
    for bound, step in ((100.0, 1.0), (250.0, 2.5), (500.0, 5.0), (1_000.0, 10.0), (2_500.0, 20.0),
                        (5_000.0, 50.0), (20_000.0, 100.0)):
        if price <= bound:
            return step
    return 250.0


def stock_lot(price: float) -> int:
    """A plausible lot: worth about :data:`STOCK_LOT_VALUE` at ``price``, rounded to a
    round number (multiples of 5 below 100 units, of a quarter of the power of ten
    above); NSE's real lots differ stock by stock."""
    raw = STOCK_LOT_VALUE / price
    magnitude = 10 ** math.floor(math.log10(raw))
    step = max(1, magnitude // 4 if magnitude >= 100 else magnitude // 2)
    return int(max(step, round(raw / step) * step))


def index_lot(underlying: str, expiry: datetime.date) -> int:
    """The lot of an index contract expiring on ``expiry`` (:data:`INDEX_LOTS`)."""
    before, after = INDEX_LOTS[underlying]
    return after if expiry >= _LOTS_REVISED else before


def _nfo_full(today: datetime.date) -> list[Row]:
    """Index futures, stock futures, index options, stock options (in that order, so
    that a capped subscription takes the futures and the nearest index chains first)."""
    tokens = _Tokens(_NFO_TOKEN_BASE)
    monthly = monthly_expiries(today, FULL_MONTHLY_EXPIRIES, nse_index_monthly)
    month_days = set(monthly)
    rows: list[Row] = []
    for underlying, spot, _, _, _ in FULL_INDEX_OPTIONS:
        for expiry in monthly:
            table = ((underlying, spot, index_future_tick(spot), index_lot(underlying, expiry)),)
            rows += _futures(tokens, SEG_NFO, "NFO", expiry, today, table)
    for symbol, _, price in NIFTY50:
        for expiry in monthly:
            table = ((symbol, price, equity_tick(price), stock_lot(price)),)
            rows += _futures(tokens, SEG_NFO, "NFO", expiry, today, table)
    # NIFTY: weekly (Tuesday) and monthly expiries; BANKNIFTY and FINNIFTY have had
    # monthly expiries only since November 2024.
    weekly = sorted(set(nse_weekly_expiries(today, FULL_WEEKLY_EXPIRIES)) | month_days)
    for underlying, spot, step, vol, each_side in FULL_INDEX_OPTIONS:
        for expiry in weekly if underlying == "NIFTY" else monthly:
            rows += _option_chain(tokens, underlying, spot, step, vol, index_lot(underlying, expiry), [expiry],
                                  month_days, today, each_side=each_side)
    for number, (symbol, _, price) in enumerate(NIFTY50):
        vol = 0.22 + 0.01 * (number % 11)
        for expiry in monthly:
            rows += _option_chain(tokens, symbol, price, stock_strike_step(price), vol, stock_lot(price), [expiry],
                                  month_days, today, tick=stock_option_tick(price),
                                  each_side=FULL_STOCK_STRIKES_EACH_SIDE)
    return rows


def _full(day: datetime.date) -> list[Row]:
    return _indices(full=True) + _equities(equity_tick) + _nfo_full(day) + _currency(day) + _commodities(day)


def kite_universe(today: datetime.date | None = None, size: str = "small") -> list[dict[str, object]]:
    """The synthetic instruments dump as typed rows (see the module docstring).

    ``today`` (default: :meth:`datetime.date.today`) decides the expiries and
    therefore the derivative trading symbols and prices; nothing else varies,
    so equal ``today`` and ``size`` give equal rows. ``size`` ``"small"``:
    about 400 rows (3 indices, 50 equities, 2 index futures, 328 index options
    and 20 currency/commodity contracts); ``"full"``: about 8,300 (see the
    module docstring); anything else is a :class:`ValueError`.
    """
    if size not in SIZES:
        raise ValueError(f"unknown universe size {size!r}; expected one of {', '.join(SIZES)}")
    day = datetime.date.today() if today is None else today
    if size == "full":
        rows = _full(day)
    else:
        rows = _indices() + _equities() + _nfo(day) + _currency(day) + _commodities(day)
    tokens = {r["instrument_token"] for r in rows}
    keys = {f"{r['exchange']}:{r['tradingsymbol']}" for r in rows}
    if len(tokens) != len(rows) or len(keys) != len(rows):  # pragma: no cover - construction bug
        raise AssertionError("duplicate instrument_token or EXCHANGE:TRADINGSYMBOL")
    return rows
