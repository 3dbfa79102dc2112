"""A deterministic, vectorised random-walk market that emits Kite binary messages.

:class:`KiteMarket` keeps the state of every instrument of a universe in numpy
arrays of raw fixed-point integers (rupees x the instrument's divisor, the
rule of :func:`fastflow.reference.broker_wire.price_divisor`) and, on every
:meth:`KiteMarket.step`, moves a random subset of instruments and encodes them
as ONE Kite binary WebSocket message with the block encoder of
:mod:`fastflow.sim.wire.kite`.

The market is composed of one part per concern, each in its own module:

* :class:`~fastflow.sim.market.listing.Listing`: the fixed facts (token,
  divisor, tick, lot, close, price band);
* :class:`~fastflow.sim.market.fair.FairValues`: the continuous price process
  in market time (a market factor, per-stock volatility, intraday shape);
* :class:`~fastflow.sim.market.derivatives.Contracts`: futures priced from
  their spot with carry, options by Black-76 on a smile (``contracts``);
* :class:`~fastflow.sim.market.walk.Quotes`: the day's trading state (the
  open, the printed price, volume/ATP/OI, total quantities);
* :class:`~fastflow.sim.market.book.Book`: the 5-level books, rebuilt
  around the last price;
* :class:`~fastflow.sim.market.indices.IndexLinks`: index levels derived
  from their constituents;
* :class:`~fastflow.sim.market.events.EventInjector`: block orders, sweeps
  and option-chain bursts, logged as :class:`~fastflow.sim.market.events.MarketEvent`.

All randomness comes from one seeded ``numpy.random.Generator``, drawn in a
fixed order, so a given seed and call sequence always yields the same bytes.
The simulated clock advances by one second per step (or jumps to ``now``, a
float; it never goes back) and becomes the stepped instruments' exchange
timestamp (whole seconds). Volatility is per unit of market time, so how far
prices travel depends on the time that passes, not on how often they are
stepped (:mod:`~fastflow.sim.market.clock`). One step:

1. the roots' fair values move to the step's time; the events of the step are
   drawn (per second of market time) and planned from the books before it;
2. the last prices print at the fair values of the stepped instruments
   (derivatives priced from their underlying now; event trades print their own price);
3. linked indices stepped in it take their levels from their constituents;
4. range, volume, ATP, last trade and open interest follow;
5. the books are rebuilt around the new prices, and the total buy/sell
   quantities walk, never below the books.

Invariants (events included): low <= open, LTP, ATP <= high; LTP, open,
high and low stay inside the band; volume never decreases (it saturates at
2**32 - 1); every price is a positive raw int below 2**31, book levels
included except empty bid levels (all zero) where a bid would be below one tick; open interest of derivatives is positive and within its day range;
the close (previous day's close) never changes; the book never crosses
(best bid <= LTP <= best ask, best bid < best ask). The index packets'
``change`` field carries ``LTP - close`` (raw, signed).
"""

from __future__ import annotations

import datetime
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TypedDict

import numpy as np
import numpy.typing as npt

from fastflow.sim.market.book import Book, DepthLevel
from fastflow.sim.market.clock import CLOSE_S, seconds_of_day
from fastflow.sim.market.derivatives import FUTURE, OPTION, ROOT, Contracts, contracts_from_rows
from fastflow.sim.market.events import NO_TRADES, EventInjector, MarketEvent, Roll, chains_from_rows
from fastflow.sim.market.fair import FairValues
from fastflow.sim.market.indices import IndexLinks, links_from_rows
from fastflow.sim.market.listing import INT32_MAX, Listing
from fastflow.sim.market.walk import Quotes
from fastflow.sim.wire import kite as kite_wire

__all__ = ["MODES", "KiteMarket", "RawSnapshot"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: Packet modes accepted by :meth:`KiteMarket.step`.
MODES: tuple[str, ...] = kite_wire.MODES

_UINT32_MAX = 2**32 - 1
#: An option quotes about this fraction of its premium wide (at least one tick).
OPTION_SPREAD = 0.002
#: Highest price of an option: its close plus this fraction of its underlying's close.
OPTION_BAND = 0.3
_IST = datetime.timezone(datetime.timedelta(hours=5, minutes=30), "IST")


class RawSnapshot(TypedDict):
    """One instrument's state in raw integers, named like the kite_wire arguments."""

    instrument_token: int
    last_price: int
    last_traded_quantity: int
    average_traded_price: int
    volume_traded: int
    total_buy_quantity: int
    total_sell_quantity: int
    open: int
    high: int
    low: int
    close: int
    change: int
    last_trade_time: int
    oi: int
    oi_day_high: int
    oi_day_low: int
    exchange_timestamp: int
    bids: list[DepthLevel]
    asks: list[DepthLevel]


def _number(value: object, column: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{column} must be a number, got {value!r}")
    return float(value)


def _check_time(value: int) -> int:
    """``value`` as an int, checked to fit the u32 epoch-seconds fields."""
    seconds = int(value)
    if not 0 <= seconds <= _UINT32_MAX:
        raise ValueError(f"epoch seconds must fit in 32 unsigned bits, got {value!r}")
    return seconds


def _default_start_time() -> int:
    """09:15:00 IST (the NSE open) of today's date."""
    opening = datetime.datetime.combine(datetime.date.today(), datetime.time(9, 15), tzinfo=_IST)
    return int(opening.timestamp())


class KiteMarket:
    """A seeded random-walk market over a fixed universe; see the module docstring.

    Parameters are parallel 1-D arrays: ``tokens`` (uint32 instrument tokens,
    unique), ``last_price`` (float rupees, the previous close; 0 ->
    :data:`~fastflow.sim.market.listing.DEFAULT_PRICE`), ``tick_size`` (float
    rupees; 0 -> 0.05) and the optional ``lot_size`` (quantities are multiples
    of it; default 1). ``start_time`` (epoch seconds) defaults to 09:15 IST today.

    Keyword-only: ``indices`` maps an index token (segment 9) to its
    constituents ``{token: weight}`` (tradable tokens of this universe,
    positive weights, normalised to sum 1): that index's level is derived from
    them (:mod:`~fastflow.sim.market.indices`); other indices random-walk.
    ``chains`` lists option chains as groups of tradable tokens (each token in
    at most one group), the candidates for bursts. ``events=False`` disables
    injected events (:mod:`~fastflow.sim.market.events`) and their random draws.
    ``contracts`` (:class:`~fastflow.sim.market.derivatives.Contracts`) ties
    futures and options to their underlying; their previous close is then the
    model's price at the previous day's close (the close given for them is
    not used), and an option's band is one tick to its close plus
    :data:`OPTION_BAND` of its underlying's close.

    Raises ``ValueError`` for mismatched or non-1-D arrays, duplicate tokens,
    a price too large for a signed 32-bit raw value, a ``start_time``
    outside the u32 range, or invalid ``indices`` / ``chains``.
    """

    def __init__(
        self,
        tokens: npt.ArrayLike,
        last_price: npt.ArrayLike,
        tick_size: npt.ArrayLike,
        seed: int = 0,
        start_time: int | None = None,
        lot_size: npt.ArrayLike | None = None,
        *,
        indices: Mapping[int, Mapping[int, float]] | None = None,
        chains: Iterable[Iterable[int]] | None = None,
        events: bool = True,
        contracts: Contracts | None = None,
    ) -> None:
        self._listing = listing = Listing.build(tokens, last_price, tick_size, lot_size)
        self._rng = rng = np.random.default_rng(seed)
        self._clock = _check_time(_default_start_time() if start_time is None else start_time)
        self._time = float(self._clock)
        self._links = IndexLinks(indices or {}, listing)
        self._contracts = contracts = contracts or Contracts.none(listing.size)
        if contracts.kind.size != listing.size:
            raise ValueError("contracts must describe every instrument")
        self._fair = FairValues(listing, contracts, self._links, rng, self._time)
        derived = np.flatnonzero(contracts.kind != ROOT).astype(np.int64)
        self._reprice_closes(derived)
        self._events = EventInjector(listing, chains or (), events)

        opening = Quotes.opening_gap(listing, rng)
        if self._links.positions.size:
            opening[self._links.positions] = self._links.levels(opening)
        self._fair.open(opening)
        if derived.size:
            opening[derived] = self._on_grid(derived, self._fair.values(derived, self._time))
        self._quotes = Quotes(opening, listing, rng, self._clock)
        self._fair.follow_prints(self._quotes.ltp)
        self._liquidity = self._initial_liquidity()
        #: How many times each position has been advanced (its snapshots so far).
        self.update_counts: IntArray = np.zeros(listing.size, np.int64)
        self._book = Book(listing.size)
        everything = np.arange(listing.size, dtype=np.int64)
        self._book.rebuild(everything, self._quotes.ltp, listing.tick, listing.qty_unit, rng, self._wide(everything))

    def _on_grid(self, idx: IntArray, values: npt.NDArray[np.float64]) -> IntArray:
        """Raw ``values`` of positions ``idx`` rounded to their tick grid, inside their band."""
        tick = self._listing.tick[idx]
        grid: IntArray = np.rint(values / tick).astype(np.int64) * tick
        clipped: IntArray = np.clip(grid, self._listing.lo_band[idx], self._listing.hi_band[idx])
        return clipped

    def _reprice_closes(self, derived: IntArray) -> None:
        """Derivatives' previous close: the model at the previous day's 15:30 over their
        underlying's close; options' bands widened (see the class docstring)."""
        if not derived.size:
            return
        listing = self._listing
        previous_close = self._time - seconds_of_day(self._time) + CLOSE_S - 86_400.0
        values = self._fair.values(derived, previous_close)
        tick = listing.tick[derived]
        close_ticks = np.maximum(np.rint(values / tick), 1)
        listing.close[derived] = close_ticks.astype(np.int64) * tick
        listing.close_ticks[derived] = close_ticks
        futures = derived[self._contracts.kind[derived] == FUTURE]
        listing.lo_band[futures] = np.ceil(listing.close_ticks[futures] * 0.8).astype(np.int64) * listing.tick[futures]
        listing.hi_band[futures] = np.floor(listing.close_ticks[futures] * 1.2).astype(np.int64) * listing.tick[futures]
        options = derived[self._contracts.kind[derived] == OPTION]
        under = self._contracts.underlying[options]
        reach = OPTION_BAND * listing.close[under] / listing.divisor[under] * listing.divisor[options]
        hi = np.floor((listing.close[options] + reach) / listing.tick[options]).astype(np.int64) * listing.tick[options]
        listing.lo_band[options] = listing.tick[options]
        listing.hi_band[options] = np.minimum(hi, INT32_MAX // 2)

    def _initial_liquidity(self) -> npt.NDArray[np.float64]:
        """How actively each position trades, in (0, 1]: options by their distance
        from the money at the open and their expiry's rank, futures by rank."""
        c = self._contracts
        liquidity = np.ones(self._listing.size)
        series = 1.0 / (1.0 + c.series)
        derived = c.kind != ROOT
        liquidity[derived] = series[derived]
        options = c.options
        if options.size:
            iv = self._fair.implied_vol(options, self._time)
            under = c.underlying[options]
            spot = self._fair.values(under, self._time) / self._listing.divisor[under]
            years = np.maximum(c.expiry[options] - self._time, 3600.0) / (365.0 * 86_400)
            x = np.log(c.strike[options] / spot) / (iv * np.sqrt(years))
            liquidity[options] = np.maximum(series[options] * np.exp(-x * x / 2.0), 0.03)
        return liquidity

    def _wide(self, idx: IntArray) -> IntArray:
        """Spread width in ticks per position: options about OPTION_SPREAD of their premium."""
        options = self._contracts.kind[idx] == OPTION
        wide: IntArray = np.where(
            options, np.maximum(np.rint(self._quotes.ltp[idx] * OPTION_SPREAD / self._listing.tick[idx]), 1), 1
        ).astype(np.int64)
        return wide

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[Mapping[str, object]],
        seed: int = 0,
        start_time: int | None = None,
        *,
        events: bool = True,
    ) -> KiteMarket:
        """A market over instruments-dump rows (e.g. :func:`fastflow.sim.universe.kite_universe`).

        Index rows (segment 9) named in
        :data:`fastflow.sim.universe.INDEX_CONSTITUENTS` are linked to the
        cash-equity rows (NSE/BSE) with the constituents' ``tradingsymbol``
        (preferring the index's ``exchange``), their weights renormalised over
        the constituents present; CE/PE rows are grouped into option chains
        by ``(exchange, name, expiry)``; futures and options are tied to their
        underlying (:func:`~fastflow.sim.market.derivatives.contracts_from_rows`).
        ``events`` as in the constructor.
        """
        items = list(rows)
        tokens = [int(_number(r["instrument_token"], "instrument_token")) for r in items]
        prices = [_number(r["last_price"], "last_price") for r in items]
        ticks = [_number(r["tick_size"], "tick_size") for r in items]
        lots = [int(_number(r["lot_size"], "lot_size")) for r in items]
        return cls(
            np.array(tokens, dtype=np.uint32),
            np.array(prices, dtype=np.float64),
            np.array(ticks, dtype=np.float64),
            seed=seed,
            start_time=start_time,
            lot_size=np.array(lots, dtype=np.int64),
            indices=links_from_rows(items, tokens),
            chains=chains_from_rows(items, tokens),
            events=events,
            contracts=contracts_from_rows(items, tokens),
        )

    # ---------------------------------------------------------------- inspection

    @property
    def size(self) -> int:
        """Number of instruments."""
        return self._listing.size

    @property
    def tokens(self) -> npt.NDArray[np.uint32]:
        """The instrument tokens (a read-only view)."""
        view: npt.NDArray[np.uint32] = self._listing.tokens.view()
        view.flags.writeable = False
        return view

    @property
    def clock(self) -> int:
        """The simulated exchange clock (epoch seconds) of the latest step."""
        return self._clock

    @property
    def time(self) -> float:
        """The market time (epoch seconds, with fractions) of the latest step."""
        return self._time

    @property
    def contracts(self) -> Contracts:
        """What drives each position's price (read-only by convention)."""
        return self._contracts

    def fair_values(self, idx: IntArray) -> npt.NDArray[np.float64]:
        """The model's fair values (raw, float) of positions ``idx`` now: what a
        future or an option is worth over its underlying (realism checks)."""
        return self._fair.values(np.asarray(idx, np.int64), self._time)

    def implied_vols(self, idx: IntArray) -> npt.NDArray[np.float64]:
        """The smile's volatility of options ``idx`` now (NaN for the others)."""
        return self._fair.implied_vol(np.asarray(idx, np.int64), self._time)

    def update_rates(self) -> npt.NDArray[np.float64]:
        """Each position's natural update rate (snapshots per real second):
        indices 1, cash equities 0.8-2 (drawn once per universe), futures 2 for
        the nearest expiry and less for later ones, options 2 x their liquidity
        (at least 0.05), other roots 1."""
        rng = np.random.default_rng(int(self._listing.tokens.sum()) % 2**32)
        listing, c = self._listing, self._contracts
        rates = np.ones(listing.size)
        equity = ~listing.is_index & (c.kind == ROOT) & ~listing.is_deriv
        rates[equity] = rng.uniform(0.8, 2.0, int(equity.sum()))
        derived = c.kind != ROOT
        rates[derived] = np.maximum(2.0 * self._liquidity[derived], 0.05)
        return rates

    @property
    def events(self) -> deque[MarketEvent]:
        """The log of injected events, oldest first: the latest
        :data:`~fastflow.sim.market.events.EVENT_LOG_SIZE` (the deque itself;
        consumers may pop or clear it)."""
        return self._events.log

    def band(self, idx: IntArray) -> tuple[IntArray, IntArray]:
        """The raw price band ``(lowest, highest)`` of positions ``idx``: every
        price of a position stays inside it (an option's: one tick to its close
        plus :data:`OPTION_BAND` of its underlying's close; else the close +-20%)."""
        return self._listing.lo_band[idx], self._listing.hi_band[idx]

    def divisor(self, token: int) -> int:
        """The raw-price divisor of ``token``."""
        return int(self._listing.divisor[self._listing.index_of(token)])

    def tick(self, token: int) -> int:
        """The raw tick size of ``token``."""
        return int(self._listing.tick[self._listing.index_of(token)])

    def snapshot(self, token: int) -> RawSnapshot:
        """The current raw state of ``token``, keyed like the kite_wire encoder arguments."""
        i = self._listing.index_of(token)
        q = self._quotes
        bids, asks = self._book.levels(i)
        return RawSnapshot(
            instrument_token=int(self._listing.tokens[i]),
            last_price=int(q.ltp[i]),
            last_traded_quantity=int(q.ltq[i]),
            average_traded_price=int(q.atp[i]),
            volume_traded=int(q.volume[i]),
            total_buy_quantity=int(q.tbq[i]),
            total_sell_quantity=int(q.tsq[i]),
            open=int(q.open[i]),
            high=int(q.high[i]),
            low=int(q.low[i]),
            close=int(self._listing.close[i]),
            change=int(q.ltp[i] - self._listing.close[i]),
            last_trade_time=int(q.ltt[i]),
            oi=int(q.oi[i]),
            oi_day_high=int(q.oi_high[i]),
            oi_day_low=int(q.oi_low[i]),
            exchange_timestamp=int(q.ts[i]),
            bids=bids,
            asks=asks,
        )

    def positions(self, tokens: Iterable[int]) -> IntArray:
        """Row positions of distinct ``tokens`` (``KeyError`` for one outside the universe)."""
        return self._listing.positions(tokens)

    def columns(self, idx: IntArray) -> dict[str, IntArray]:
        """Raw state of positions ``idx`` as arrays (prices x ``divisor``): the
        scalar fields named like :class:`RawSnapshot`, ``divisor``, ``lot``,
        ``is_index`` (0/1), and the book as ``bid_px``/``bid_qty``/``bid_ord``/
        ``ask_px``/``ask_qty``/``ask_ord`` of shape ``(len(idx), 5)``."""
        listing, q, book = self._listing, self._quotes, self._book
        return {
            "divisor": listing.divisor[idx],
            "lot": listing.lot[idx],
            "is_index": listing.is_index[idx].astype(np.int64),
            "last_price": q.ltp[idx],
            "last_traded_quantity": q.ltq[idx],
            "average_traded_price": q.atp[idx],
            "volume_traded": q.volume[idx],
            "total_buy_quantity": q.tbq[idx],
            "total_sell_quantity": q.tsq[idx],
            "open": q.open[idx],
            "high": q.high[idx],
            "low": q.low[idx],
            "close": listing.close[idx],
            "last_trade_time": q.ltt[idx],
            "oi": q.oi[idx],
            "oi_day_high": q.oi_high[idx],
            "oi_day_low": q.oi_low[idx],
            "exchange_timestamp": q.ts[idx],
            "bid_px": book.bid_px[idx],
            "bid_qty": book.bid_qty[idx],
            "bid_ord": book.bid_ord[idx],
            "ask_px": book.ask_px[idx],
            "ask_qty": book.ask_qty[idx],
            "ask_ord": book.ask_ord[idx],
        }

    # ------------------------------------------------------------------ stepping

    def step(self, n: int, mode: str = "full", now: float | None = None) -> bytes:
        """Advance ``n`` distinct random instruments; return them as one binary message.

        ``mode`` is ``"ltp"``, ``"quote"`` or ``"full"``. Tradable instruments
        come first in the message, then indices (which use the 28/32-byte index
        layouts in quote/full mode; everyone uses 8 bytes in ltp mode). ``now``
        (epoch seconds) sets the clock if it is later than the current one;
        without it the clock advances by one second.

        Raises ``ValueError`` for an unknown mode or when ``n`` is negative,
        larger than the universe, or larger than 65535 (the u16 packet count):
        one message never holds the same instrument twice. A burst event
        (:mod:`~fastflow.sim.market.events`) puts its legs into the message in
        place of some random picks.
        """
        size = self._listing.size
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not 0 <= n <= size:
            raise ValueError(f"n must be between 0 and the universe size {size}, got {n}")
        if n > 0xFFFF:
            raise ValueError("a Kite message holds at most 65535 packets")
        seconds = self._tick_clock(now)
        rng = self._rng
        self._fair.evolve(self._time, rng)
        roll = self._events.roll(rng, seconds)
        legs = self._events.step_legs(roll, n, rng)
        idx = rng.choice(size, size=n, replace=False).astype(np.int64)
        burst_rows: IntArray | None = None
        if legs is not None:
            rest = idx[~np.isin(idx, legs)][: n - legs.size]
            idx = np.concatenate((rest, legs))
            burst_rows = np.arange(rest.size, n, dtype=np.int64)
        self._advance(idx, roll, burst_rows)
        return self.encode(idx, mode)

    def step_tokens(self, tokens: Iterable[int], mode: str = "full", now: float | None = None) -> bytes:
        """Advance the given instruments (distinct tokens of this universe) and
        return them as one binary message, like :meth:`step`. Raises ``KeyError``
        for a token outside the universe."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        idx = self.positions(tokens)
        if idx.size > 0xFFFF:
            raise ValueError("a Kite message holds at most 65535 packets")
        self.advance(idx, now)
        return self.encode(idx, mode)

    def advance(self, idx: IntArray, now: float | None = None) -> None:
        """Move the clock (like :meth:`step`) and advance the instruments at
        positions ``idx`` without encoding them (other encoders read
        :meth:`columns` afterwards; :meth:`encode` makes the Kite message).
        Events involve only positions of ``idx``."""
        seconds = self._tick_clock(now)
        self._fair.evolve(self._time, self._rng)
        self._advance(idx, self._events.roll(self._rng, seconds), None)

    def messages(self, count: int, n: int, mode: str = "full") -> list[bytes]:
        """``count`` consecutive :meth:`step` messages of ``n`` packets each (for benchmarks)."""
        return [self.step(n, mode) for _ in range(count)]

    def encode(self, idx: IntArray, mode: str) -> bytes:
        """The current state of positions ``idx`` as one Kite message in ``mode``
        (nothing moves): tradables first, then indices, as :meth:`step` sends them."""
        listing, q = self._listing, self._quotes
        header = kite_wire.header(int(idx.size))
        if mode == "ltp":
            return header + kite_wire.ltp_block(listing.tokens[idx], q.ltp[idx])
        full = mode == "full"
        is_index = listing.is_index[idx]
        return header + self._tradable_block(idx[~is_index], full) + self._index_block(idx[is_index], full)

    def _tick_clock(self, now: float | None) -> float:
        """Move the clock; returns the market seconds that passed."""
        time = self._time + 1.0 if now is None else max(self._time, float(now))
        self._clock = _check_time(int(time))
        passed, self._time = time - self._time, time
        return passed

    def _advance(self, idx: IntArray, roll: Roll | None, burst_rows: IntArray | None) -> None:
        """Step positions ``idx`` (the order of the module docstring; ``burst_rows``
        are the rows of ``idx`` a :meth:`step` burst trades)."""
        listing, q, book, rng = self._listing, self._quotes, self._book, self._rng
        self.update_counts[idx] += 1
        trades = NO_TRADES if roll is None else self._events.plan(idx, roll, burst_rows, rng, book, self._clock)
        time = self._time

        def fair_of(positions: IntArray) -> FloatArray:
            return self._fair.values(positions, time)  # linked indices: from the prints so far

        traded, shocks = q.move(idx, listing, rng, trades, fair_of, self._contracts.kind[idx] != ROOT)
        self._links.follow(idx, q.ltp)
        q.fill(idx, traded, listing, rng, self._clock, trades, self._liquidity)
        book.rebuild(idx, q.ltp[idx], listing.tick[idx], listing.qty_unit[idx], rng, self._wide(idx))
        q.walk_totals(idx, listing, book, shocks)

    def _index_block(self, idx: IntArray, full: bool) -> bytes:
        if idx.size == 0:
            return b""
        q = self._quotes
        ltp = q.ltp[idx]
        close = self._listing.close[idx]
        return kite_wire.index_block(
            self._listing.tokens[idx], ltp, q.high[idx], q.low[idx], q.open[idx], close, ltp - close,
            q.ts[idx] if full else None,
        )

    def _tradable_block(self, idx: IntArray, full: bool) -> bytes:
        if idx.size == 0:
            return b""
        q = self._quotes
        quote = (
            self._listing.tokens[idx], q.ltp[idx], q.ltq[idx], q.atp[idx], q.volume[idx], q.tbq[idx], q.tsq[idx],
            q.open[idx], q.high[idx], q.low[idx], self._listing.close[idx],
        )
        if not full:
            return kite_wire.quote_block(*quote)
        book = self._book
        return kite_wire.full_block(
            *quote, q.ltt[idx], q.oi[idx], q.oi_high[idx], q.oi_low[idx], q.ts[idx],
            book.bid_qty[idx], book.bid_px[idx], book.bid_ord[idx],
            book.ask_qty[idx], book.ask_px[idx], book.ask_ord[idx],
        )
