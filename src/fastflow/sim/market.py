"""A deterministic, vectorised random-walk Kite market that emits binary frames.

:class:`KiteMarket` keeps the state of every instrument of a universe in numpy
arrays of raw fixed-point integers (rupees x the instrument's divisor from
:func:`fastflow.sim.kite_wire.price_divisor`) and, on every :meth:`KiteMarket.step`,
moves a random subset of instruments and encodes them as ONE Kite binary
WebSocket message. The packets are built with big-endian numpy structured
dtypes and ``tobytes()``; their layout is byte-identical to the
:mod:`fastflow.sim.kite_wire` encoders (which the tests check).

Model (per stepped instrument; all randomness from one seeded
``numpy.random.Generator``, so a given seed and call sequence always yields
the same bytes):

* the simulated clock advances by one second per step (or jumps to ``now``;
  it never goes back) and becomes the instrument's exchange timestamp;
* with probability :data:`TRADE_PROBABILITY` (always for indices) a trade
  happens: the last price takes a Gaussian step of about
  :data:`STEP_VOLATILITY` of the price, rounded to the tick grid and kept
  inside a +-:data:`PRICE_BAND` band around the previous close; day high/low,
  cumulative volume, average traded price, last traded quantity / time and,
  for derivatives, open interest (with its day high/low) follow;
* without a trade only the book and the total buy/sell quantities change;
* the 5-level book is rebuilt around the last price: best bid <= LTP <= best
  ask, best bid < best ask, strictly descending bids and ascending asks on the
  tick grid, positive quantities (multiples of the lot) and 1 <= orders <= qty.

Linked indices. An index (segment 9) may be *linked* to constituents
(``indices=`` of the constructor; :meth:`KiteMarket.from_rows` links NIFTY
50, NIFTY BANK and SENSEX by ``tradingsymbol`` through
:data:`fastflow.sim.universe.INDEX_CONSTITUENTS`). Whenever a linked index is
stepped, its level is recomputed from the constituents' *current* last
prices (whether or not they were in the same step)::

    level = index_close * sum(w_i * ltp_i / close_i)      (sum(w_i) = 1)

rounded to the index's tick grid and clipped into its price band; high and
low follow, and the open is the same formula over the constituents' opens.
An index that is not stepped keeps its last published level (like a feed
that has not sent it). Unlinked indices random-walk as before.

Injected events. Unless ``events=False``, every step (each :meth:`step`,
:meth:`step_tokens` or :meth:`advance` call) independently draws, among the
instruments it steps:

* a **block** order (:data:`BLOCK_PROBABILITY`): one tradable instrument
  trades ``lot x`` :data:`BLOCK_LOTS` (far above the normal ``lot x 1..19``)
  at its touch (the best ask of the book before the step for a buy, the best
  bid for a sell, clipped into the band);
* a **sweep** (:data:`SWEEP_PROBABILITY`): an aggressive buy (sell) takes
  out ask (bid) levels ``1..k`` (``k`` in :data:`SWEEP_LEVELS`, fewer if the
  deeper levels lie outside the band; no sweep if fewer than 2 remain) of the
  book before the step: the traded quantity is the sum of those levels'
  quantities and the last price becomes level ``k``'s price;
* a **burst** (:data:`BURST_PROBABILITY`): :data:`BURST_LEGS` options of
  one chain (same exchange, underlying ``name`` and ``expiry``; ``chains=``
  of the constructor) each trade ``lot x`` :data:`BURST_LOTS` at their touch,
  all on one side. :meth:`step` puts the legs into its message (replacing
  random picks); :meth:`step_tokens` / :meth:`advance` use only chosen
  positions of one chain, and only if at least :data:`BURST_MIN_LEGS` of it
  are chosen.

An event trade replaces the instrument's random move of that step (its book
is rebuilt around the new price as usual, so it never crosses) and is logged
in :attr:`KiteMarket.events`, a deque of the latest :data:`EVENT_LOG_SIZE`
:class:`MarketEvent` records (kind, market clock, tokens, quantities, raw
prices, side, swept levels). ``last_traded_quantity`` of an event instrument
is the event quantity (unless the u32 volume saturates) and its volume grows
by it.

At construction the day opens with a small Gaussian gap from the close and a
pre-open auction trade (volume > 0, ATP = open); derivatives start with some
open interest, equities and indices have none. The index packets' ``change``
field carries ``LTP - close`` (raw, signed).

Invariants (events included): low <= open, LTP, ATP <= high; LTP, open,
high and low stay inside the band; volume never decreases (it saturates at
2**32 - 1); every price, book levels included, is a positive raw int below
2**31; open interest of derivatives is positive and within its day range;
the close (previous day's close) never changes.
"""

from __future__ import annotations

import datetime
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, TypedDict

import numpy as np
import numpy.typing as npt

from fastflow.sim import kite_wire
from fastflow.sim.universe import INDEX_CONSTITUENTS

__all__ = [
    "BLOCK_PROBABILITY",
    "BURST_PROBABILITY",
    "DEFAULT_PRICE",
    "MODES",
    "SWEEP_PROBABILITY",
    "KiteMarket",
    "MarketEvent",
    "RawSnapshot",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Packet modes accepted by :meth:`KiteMarket.step`.
MODES: tuple[str, ...] = ("ltp", "quote", "full")

#: Starting price (rupees) used for instruments whose ``last_price`` is 0.
DEFAULT_PRICE = 100.0
#: Tick size (rupees) used when the given tick size is 0 (indices).
DEFAULT_TICK = 0.05
#: Probability that a stepped tradable instrument trades.
TRADE_PROBABILITY = 0.85
#: Standard deviation of one price step, as a fraction of the price.
STEP_VOLATILITY = 0.0006
#: Standard deviation of the opening gap, as a fraction of the close.
OPEN_GAP_VOLATILITY = 0.004
#: Prices stay within close * (1 +- PRICE_BAND).
PRICE_BAND = 0.2
#: Minimum close, in ticks, so that the whole book stays strictly positive.
MIN_CLOSE_TICKS = 20
#: Most ticks a book level can sit away from the LTP (spread 3 + 4 gaps of 2).
_MAX_BOOK_TICKS = 11

#: Per-step probability of a block order (one instrument, see the module docstring).
BLOCK_PROBABILITY = 0.02
#: Per-step probability of a sweep through several levels of one book.
SWEEP_PROBABILITY = 0.03
#: Per-step probability of a burst of trades across the strikes of one option chain.
BURST_PROBABILITY = 0.01
#: A block trades ``lot x`` this many lots (inclusive range).
BLOCK_LOTS = (500, 5000)
#: A sweep takes out this many book levels (inclusive range, before the band limit).
SWEEP_LEVELS = (2, 5)
#: A burst in :meth:`KiteMarket.step` has this many legs (inclusive range, capped by the chain and ``n``).
BURST_LEGS = (5, 20)
#: Fewest legs of a burst (the chain's chosen positions in ``step_tokens``/``advance``).
BURST_MIN_LEGS = 3
#: Each burst leg trades ``lot x`` this many lots (inclusive range).
BURST_LOTS = (40, 400)
#: Length of the :attr:`KiteMarket.events` log (older events are dropped).
EVENT_LOG_SIZE = 10_000

#: Kite segment ids of cash equities (NSE, BSE): the index constituents.
_CASH_SEGMENTS = (1, 4)

_INT32_MAX = 2**31 - 1
_UINT32_MAX = 2**32 - 1
_IST = datetime.timezone(datetime.timedelta(hours=5, minutes=30), "IST")

_DEPTH_DT = np.dtype([("quantity", ">u4"), ("price", ">i4"), ("orders", ">u2"), ("pad", ">u2")])
_LTP_DT = np.dtype([("length", ">u2"), ("token", ">u4"), ("last_price", ">i4")])
_INDEX_FIELDS: list[tuple[str, str]] = [
    ("length", ">u2"),
    ("token", ">u4"),
    ("last_price", ">i4"),
    ("high", ">i4"),
    ("low", ">i4"),
    ("open", ">i4"),
    ("close", ">i4"),
    ("change", ">i4"),
]
_INDEX_QUOTE_DT = np.dtype(_INDEX_FIELDS)
_INDEX_FULL_DT = np.dtype([*_INDEX_FIELDS, ("exchange_timestamp", ">u4")])
_QUOTE_FIELDS: list[tuple[str, str]] = [
    ("length", ">u2"),
    ("token", ">u4"),
    ("last_price", ">i4"),
    ("last_traded_quantity", ">u4"),
    ("average_traded_price", ">i4"),
    ("volume_traded", ">u4"),
    ("total_buy_quantity", ">u4"),
    ("total_sell_quantity", ">u4"),
    ("open", ">i4"),
    ("high", ">i4"),
    ("low", ">i4"),
    ("close", ">i4"),
]
_QUOTE_DT = np.dtype(_QUOTE_FIELDS)
_FULL_DT = np.dtype(
    [
        *_QUOTE_FIELDS,
        ("last_trade_time", ">u4"),
        ("oi", ">u4"),
        ("oi_day_high", ">u4"),
        ("oi_day_low", ">u4"),
        ("exchange_timestamp", ">u4"),
        ("depth", _DEPTH_DT, (10,)),
    ]
)

# Each record carries its u16 length prefix, so a block of records is a run of
# (length, packet) pairs exactly as they appear in a message.
assert _LTP_DT.itemsize == 2 + kite_wire.LTP_LEN
assert _INDEX_QUOTE_DT.itemsize == 2 + kite_wire.INDEX_QUOTE_LEN
assert _INDEX_FULL_DT.itemsize == 2 + kite_wire.INDEX_FULL_LEN
assert _QUOTE_DT.itemsize == 2 + kite_wire.QUOTE_LEN
assert _FULL_DT.itemsize == 2 + kite_wire.FULL_LEN

DepthLevel = tuple[int, int, int]
EventKind = Literal["block", "sweep", "burst"]
Side = Literal["buy", "sell"]
#: Which event kinds a step draws: (block, sweep, burst).
_Roll = tuple[bool, bool, bool]
_EMPTY: IntArray = np.zeros(0, np.int64)


@dataclass(frozen=True, slots=True)
class MarketEvent:
    """One injected event (see the module docstring), as the market applied it.

    ``time`` is the market clock (epoch seconds, the packets' exchange
    timestamp); ``tokens``, ``quantities`` and ``prices`` (raw, x divisor) are
    parallel, one entry per instrument that traded (one for a block or a
    sweep, one per leg for a burst); ``side`` is the aggressor's side;
    ``levels`` is the number of book levels a sweep took out (0 otherwise).
    """

    kind: EventKind
    time: int
    tokens: tuple[int, ...]
    quantities: tuple[int, ...]
    prices: tuple[int, ...]
    side: Side
    levels: int = 0


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


#: Raw-price divisor by segment id (``token & 0xff``), from :func:`kite_wire.price_divisor`.
_DIVISOR_BY_SEGMENT: IntArray = np.array([kite_wire.price_divisor(seg) for seg in range(256)], np.int64)


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


def _links_from_rows(
    items: list[Mapping[str, object]], tokens: list[int]
) -> tuple[dict[int, dict[int, float]], list[list[int]]]:
    """The ``indices`` and ``chains`` arguments of :class:`KiteMarket` for dump rows."""
    equities: dict[str, list[tuple[int, str]]] = {}
    chains: dict[tuple[str, str, str], list[int]] = {}
    for row, token in zip(items, tokens, strict=True):
        exchange = str(row.get("exchange", ""))
        if token & 0xFF in _CASH_SEGMENTS:
            equities.setdefault(str(row.get("tradingsymbol", "")), []).append((token, exchange))
        elif row.get("instrument_type") in ("CE", "PE"):
            key = (exchange, str(row.get("name", "")), str(row.get("expiry", "")))
            chains.setdefault(key, []).append(token)
    indices: dict[int, dict[int, float]] = {}
    for row, token in zip(items, tokens, strict=True):
        table = INDEX_CONSTITUENTS.get(str(row.get("tradingsymbol", "")))
        if token & 0xFF != kite_wire.SEGMENT_INDICES or table is None:
            continue
        exchange = str(row.get("exchange", ""))
        links: dict[int, float] = {}
        for symbol, weight in table:
            listed = equities.get(symbol)
            if listed:
                chosen = next((t for t, e in listed if e == exchange), listed[0][0])
                links[chosen] = weight
        if links:
            indices[token] = links
    return indices, list(chains.values())


class KiteMarket:
    """A seeded random-walk market over a fixed universe; see the module docstring.

    Parameters are parallel 1-D arrays: ``tokens`` (uint32 instrument tokens,
    unique), ``last_price`` (float rupees, the previous close; 0 ->
    :data:`DEFAULT_PRICE`), ``tick_size`` (float rupees; 0 -> 0.05) and the
    optional ``lot_size`` (quantities are multiples of it; default 1).
    ``start_time`` (epoch seconds) defaults to 09:15 IST today.

    Keyword-only: ``indices`` maps an index token (segment 9) to its
    constituents ``{token: weight}`` (tradable tokens of this universe,
    positive weights, normalised to sum 1): that index's level is derived from
    them (module docstring); other indices random-walk. ``chains`` lists
    option chains as groups of tradable tokens (each token in at most one
    group), the candidates for bursts. ``events=False`` disables injected
    events (and their random draws).

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
    ) -> None:
        tok = np.asarray(tokens, dtype=np.uint32)
        price = np.asarray(last_price, dtype=np.float64)
        tick_in = np.asarray(tick_size, dtype=np.float64)
        lots = np.ones(tok.shape, np.int64) if lot_size is None else np.asarray(lot_size, np.int64)
        if tok.ndim != 1 or price.shape != tok.shape or tick_in.shape != tok.shape:
            raise ValueError("tokens, last_price and tick_size must be 1-D arrays of equal length")
        if lots.shape != tok.shape:
            raise ValueError("lot_size must have the same length as tokens")
        if np.unique(tok).size != tok.size:
            raise ValueError("tokens must be unique")

        self._rng = np.random.default_rng(seed)
        self._clock = _check_time(_default_start_time() if start_time is None else start_time)
        n = tok.size
        self._size = n
        self._positions: dict[int, int] | None = None
        self._tokens = tok
        segment = (tok & 0xFF).astype(np.int64)
        self._div: IntArray = _DIVISOR_BY_SEGMENT[segment]
        self._is_index: BoolArray = segment == kite_wire.SEGMENT_INDICES
        self._is_deriv: BoolArray = ~np.isin(segment, (1, 4, kite_wire.SEGMENT_INDICES))

        tick_rupees = np.where(np.isfinite(tick_in) & (tick_in > 0), tick_in, DEFAULT_TICK)
        self._tick: IntArray = np.maximum(np.rint(tick_rupees * self._div), 1).astype(np.int64)
        self._lot: IntArray = np.where(self._is_index, 0, np.maximum(lots, 1)).astype(np.int64)
        # Tradable book quantities are multiples of max(lot, 1).
        self._qty_unit: IntArray = np.maximum(self._lot, 1)

        rupees = np.where(np.isfinite(price) & (price > 0), price, DEFAULT_PRICE)
        close_ticks = np.maximum(np.rint(rupees * self._div / self._tick), MIN_CLOSE_TICKS)
        self._close: IntArray = close_ticks.astype(np.int64) * self._tick
        lo_ticks = np.maximum(np.ceil(close_ticks * (1 - PRICE_BAND)), _MAX_BOOK_TICKS + 1)
        hi_ticks = np.floor(close_ticks * (1 + PRICE_BAND))
        self._lo_band: IntArray = lo_ticks.astype(np.int64) * self._tick
        self._hi_band: IntArray = hi_ticks.astype(np.int64) * self._tick
        too_big = self._hi_band + _MAX_BOOK_TICKS * self._tick > _INT32_MAX
        if np.any(too_big):
            bad = [int(t) for t in tok[too_big][:5]]
            raise ValueError(f"price too large for a 32-bit raw value: tokens {bad}")

        self._events_on = bool(events)
        self._events: deque[MarketEvent] = deque(maxlen=EVENT_LOG_SIZE)
        self._link_indices(indices or {})
        self._link_chains(chains or ())

        rng = self._rng
        gap = np.rint(rng.standard_normal(n) * OPEN_GAP_VOLATILITY * close_ticks).astype(np.int64)
        opening = np.clip(self._close + gap * self._tick, self._lo_band, self._hi_band)
        if self._link_pos.size:
            opening[self._link_pos] = self._linked_levels(opening)
        self._open: IntArray = opening
        self._ltp: IntArray = opening.copy()
        self._high: IntArray = opening.copy()
        self._low: IntArray = opening.copy()
        # The pre-open call auction: one trade at the open price.
        self._volume: IntArray = self._lot * rng.integers(10, 500, n)
        self._turnover: FloatArray = self._volume.astype(np.float64) * opening
        self._atp: IntArray = opening.copy()
        self._ltq: IntArray = self._volume.copy()
        self._tbq: IntArray = self._qty_unit * rng.integers(1_000, 50_000, n)
        self._tsq: IntArray = self._qty_unit * rng.integers(1_000, 50_000, n)
        self._tbq[self._is_index] = 0
        self._tsq[self._is_index] = 0
        oi = np.where(self._is_deriv, self._qty_unit * rng.integers(1_000, 100_000, n), 0)
        self._oi: IntArray = oi.astype(np.int64)
        self._oi_high: IntArray = self._oi.copy()
        self._oi_low: IntArray = self._oi.copy()
        self._ltt: IntArray = np.full(n, self._clock, np.int64)
        self._ts: IntArray = np.full(n, self._clock, np.int64)
        self._bid_px: IntArray = np.zeros((n, 5), np.int64)
        self._bid_qty: IntArray = np.zeros((n, 5), np.int64)
        self._bid_ord: IntArray = np.zeros((n, 5), np.int64)
        self._ask_px: IntArray = np.zeros((n, 5), np.int64)
        self._ask_qty: IntArray = np.zeros((n, 5), np.int64)
        self._ask_ord: IntArray = np.zeros((n, 5), np.int64)
        self._rebuild_book(np.arange(n, dtype=np.int64))

    def _position_map(self) -> dict[int, int]:
        if self._positions is None:
            self._positions = {int(t): i for i, t in enumerate(self._tokens)}
        return self._positions

    def _position(self, token: int, what: str) -> int:
        position = self._position_map().get(int(token))
        if position is None:
            raise ValueError(f"{what} {token!r} is not in the universe")
        return position

    def _link_indices(self, indices: Mapping[int, Mapping[int, float]]) -> None:
        """Validate ``indices`` and store them as flat arrays (one entry per constituent).

        ``_link_pos[g]`` is the position of linked index ``g``; constituent
        ``e`` belongs to index ``_link_group[e]``, sits at ``_link_member[e]``
        and contributes ``_link_coef[e] * ltp`` (``index_close * w / close``)
        to its level; ``_link_group_of`` maps a position to its index group
        (-1: not a linked index).
        """
        link_pos: list[int] = []
        group: list[int] = []
        member: list[int] = []
        coef: list[float] = []
        for index_token, weights in indices.items():
            p = self._position(index_token, "index token")
            if not self._is_index[p]:
                raise ValueError(f"index token {index_token!r} is not an index (segment 9)")
            if p in link_pos:
                raise ValueError(f"index token {index_token!r} given twice")
            parts = [(self._position(t, "constituent token"), float(w)) for t, w in weights.items()]
            if not parts:
                raise ValueError(f"index token {index_token!r} has no constituents")
            for (c, w), token in zip(parts, weights, strict=True):
                if self._is_index[c]:
                    raise ValueError(f"constituent {token!r} of {index_token!r} is an index")
                if not (math.isfinite(w) and w > 0):
                    raise ValueError(f"weight of {token!r} in {index_token!r} must be positive, got {w!r}")
            total = sum(w for _, w in parts)
            close = float(self._close[p])
            for c, w in parts:
                group.append(len(link_pos))
                member.append(c)
                coef.append(close * (w / total) / float(self._close[c]))
            link_pos.append(p)
        self._link_pos: IntArray = np.array(link_pos, np.int64)
        self._link_group: IntArray = np.array(group, np.int64)
        self._link_member: IntArray = np.array(member, np.int64)
        self._link_coef: FloatArray = np.array(coef, np.float64)
        self._link_group_of: IntArray = np.full(self._size, -1, np.int64)
        self._link_group_of[self._link_pos] = np.arange(len(link_pos), dtype=np.int64)

    def _link_chains(self, chains: Iterable[Iterable[int]]) -> None:
        """Validate ``chains``: ``_chain_of`` maps a position to its chain (-1: none);
        ``_burst_chains`` holds the positions of every chain with at least
        :data:`BURST_MIN_LEGS` legs."""
        self._chain_of: IntArray = np.full(self._size, -1, np.int64)
        self._burst_chains: list[IntArray] = []
        count = 0
        for chain in chains:
            legs = [self._position(t, "chain token") for t in chain]
            if not legs:
                continue
            pos = np.array(legs, np.int64)
            if np.any(self._is_index[pos]):
                raise ValueError("chains must hold tradable tokens, not indices")
            if np.unique(pos).size != pos.size or np.any(self._chain_of[pos] >= 0):
                raise ValueError("a token belongs to at most one chain, once")
            self._chain_of[pos] = count
            count += 1
            if pos.size >= BURST_MIN_LEGS:
                self._burst_chains.append(np.sort(pos))

    def _linked_levels(self, prices: IntArray) -> IntArray:
        """Levels of every linked index (``_link_pos`` order) from ``prices`` of
        the whole universe: on the index tick grid, clipped into the band."""
        k = self._link_pos.size
        sums = np.bincount(self._link_group, weights=self._link_coef * prices[self._link_member], minlength=k)
        pos = self._link_pos
        tick = self._tick[pos]
        level = np.rint(sums / tick).astype(np.int64) * tick
        clipped: IntArray = np.clip(level, self._lo_band[pos], self._hi_band[pos])
        return clipped

    # ------------------------------------------------------------------ creation

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
        by ``(exchange, name, expiry)``. ``events`` as in the constructor.
        """
        items = list(rows)
        tokens = [int(_number(r["instrument_token"], "instrument_token")) for r in items]
        prices = [_number(r["last_price"], "last_price") for r in items]
        ticks = [_number(r["tick_size"], "tick_size") for r in items]
        lots = [int(_number(r["lot_size"], "lot_size")) for r in items]
        indices, chains = _links_from_rows(items, tokens)
        return cls(
            np.array(tokens, dtype=np.uint32),
            np.array(prices, dtype=np.float64),
            np.array(ticks, dtype=np.float64),
            seed=seed,
            start_time=start_time,
            lot_size=np.array(lots, dtype=np.int64),
            indices=indices,
            chains=chains,
            events=events,
        )

    # ---------------------------------------------------------------- inspection

    @property
    def size(self) -> int:
        """Number of instruments."""
        return self._size

    @property
    def tokens(self) -> npt.NDArray[np.uint32]:
        """The instrument tokens (a read-only view)."""
        view: npt.NDArray[np.uint32] = self._tokens.view()
        view.flags.writeable = False
        return view

    @property
    def clock(self) -> int:
        """The simulated exchange clock (epoch seconds) of the latest step."""
        return self._clock

    @property
    def events(self) -> deque[MarketEvent]:
        """The log of injected events, oldest first: the latest :data:`EVENT_LOG_SIZE`
        (the deque itself; consumers may pop or clear it)."""
        return self._events

    def divisor(self, token: int) -> int:
        """The raw-price divisor of ``token``."""
        return int(self._div[self._index_of(token)])

    def tick(self, token: int) -> int:
        """The raw tick size of ``token``."""
        return int(self._tick[self._index_of(token)])

    def _index_of(self, token: int) -> int:
        hits = np.flatnonzero(self._tokens == np.uint32(token))
        if hits.size == 0:
            raise KeyError(token)
        return int(hits[0])

    def snapshot(self, token: int) -> RawSnapshot:
        """The current raw state of ``token``, keyed like the kite_wire encoder arguments."""
        i = self._index_of(token)

        def levels(px: IntArray, qty: IntArray, orders: IntArray) -> list[DepthLevel]:
            return [(int(qty[i, k]), int(px[i, k]), int(orders[i, k])) for k in range(5)]

        return RawSnapshot(
            instrument_token=int(self._tokens[i]),
            last_price=int(self._ltp[i]),
            last_traded_quantity=int(self._ltq[i]),
            average_traded_price=int(self._atp[i]),
            volume_traded=int(self._volume[i]),
            total_buy_quantity=int(self._tbq[i]),
            total_sell_quantity=int(self._tsq[i]),
            open=int(self._open[i]),
            high=int(self._high[i]),
            low=int(self._low[i]),
            close=int(self._close[i]),
            change=int(self._ltp[i] - self._close[i]),
            last_trade_time=int(self._ltt[i]),
            oi=int(self._oi[i]),
            oi_day_high=int(self._oi_high[i]),
            oi_day_low=int(self._oi_low[i]),
            exchange_timestamp=int(self._ts[i]),
            bids=levels(self._bid_px, self._bid_qty, self._bid_ord),
            asks=levels(self._ask_px, self._ask_qty, self._ask_ord),
        )

    # ------------------------------------------------------------------ stepping

    def step(self, n: int, mode: str = "full", now: int | None = None) -> bytes:
        """Advance ``n`` distinct random instruments; return them as one binary message.

        ``mode`` is ``"ltp"``, ``"quote"`` or ``"full"``. Tradable instruments
        come first in the message, then indices (which use the 28/32-byte index
        layouts in quote/full mode; everyone uses 8 bytes in ltp mode). ``now``
        (epoch seconds) sets the clock if it is later than the current one;
        without it the clock advances by one second.

        Raises ``ValueError`` for an unknown mode or when ``n`` is negative,
        larger than the universe, or larger than 65535 (the u16 packet count):
        one message never holds the same instrument twice. A burst event
        (module docstring) puts its legs into the message in place of some
        random picks.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not 0 <= n <= self._size:
            raise ValueError(f"n must be between 0 and the universe size {self._size}, got {n}")
        if n > 0xFFFF:
            raise ValueError("a Kite message holds at most 65535 packets")
        self._clock = _check_time(self._clock + 1 if now is None else max(self._clock, int(now)))
        rng = self._rng
        roll = self._roll()
        legs: IntArray | None = None
        if roll is not None and roll[2] and self._burst_chains:
            chain = self._burst_chains[int(rng.integers(len(self._burst_chains)))]
            count = min(int(rng.integers(BURST_LEGS[0], BURST_LEGS[1] + 1)), chain.size, n)
            if count >= BURST_MIN_LEGS:
                legs = rng.choice(chain, size=count, replace=False).astype(np.int64)
        idx = rng.choice(self._size, size=n, replace=False).astype(np.int64)
        burst_rows: IntArray | None = None
        if legs is not None:
            rest = idx[~np.isin(idx, legs)][: n - legs.size]
            idx = np.concatenate((rest, legs))
            burst_rows = np.arange(rest.size, n, dtype=np.int64)
        self._advance(idx, roll, burst_rows)
        return self._encode(idx, mode)

    def step_tokens(self, tokens: Iterable[int], mode: str = "full", now: int | None = None) -> bytes:
        """Advance the given instruments (distinct tokens of this universe) and
        return them as one binary message, like :meth:`step`. Raises ``KeyError``
        for a token outside the universe."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        idx = self.positions(tokens)
        if idx.size > 0xFFFF:
            raise ValueError("a Kite message holds at most 65535 packets")
        self.advance(idx, now)
        return self._encode(idx, mode)

    def positions(self, tokens: Iterable[int]) -> IntArray:
        """Row positions of distinct ``tokens`` (``KeyError`` for one outside the universe)."""
        positions = self._position_map()
        idx = np.fromiter((positions[int(t)] for t in tokens), dtype=np.int64)
        if np.unique(idx).size != idx.size:
            raise ValueError("tokens must be distinct")
        return idx

    def advance(self, idx: IntArray, now: int | None = None) -> None:
        """Move the clock (like :meth:`step`) and advance the instruments at
        positions ``idx`` without encoding them (other encoders read
        :meth:`columns` afterwards). Events involve only positions of ``idx``."""
        self._clock = _check_time(self._clock + 1 if now is None else max(self._clock, int(now)))
        self._advance(idx, self._roll(), None)

    def columns(self, idx: IntArray) -> dict[str, IntArray]:
        """Raw state of positions ``idx`` as arrays (prices x ``divisor``): the
        scalar fields named like :class:`RawSnapshot`, ``divisor``, ``lot``,
        ``is_index`` (0/1), and the book as ``bid_px``/``bid_qty``/``bid_ord``/
        ``ask_px``/``ask_qty``/``ask_ord`` of shape ``(len(idx), 5)``."""
        return {
            "divisor": self._div[idx],
            "lot": self._lot[idx],
            "is_index": self._is_index[idx].astype(np.int64),
            "last_price": self._ltp[idx],
            "last_traded_quantity": self._ltq[idx],
            "average_traded_price": self._atp[idx],
            "volume_traded": self._volume[idx],
            "total_buy_quantity": self._tbq[idx],
            "total_sell_quantity": self._tsq[idx],
            "open": self._open[idx],
            "high": self._high[idx],
            "low": self._low[idx],
            "close": self._close[idx],
            "last_trade_time": self._ltt[idx],
            "oi": self._oi[idx],
            "oi_day_high": self._oi_high[idx],
            "oi_day_low": self._oi_low[idx],
            "exchange_timestamp": self._ts[idx],
            "bid_px": self._bid_px[idx],
            "bid_qty": self._bid_qty[idx],
            "bid_ord": self._bid_ord[idx],
            "ask_px": self._ask_px[idx],
            "ask_qty": self._ask_qty[idx],
            "ask_ord": self._ask_ord[idx],
        }

    def messages(self, count: int, n: int, mode: str = "full") -> list[bytes]:
        """``count`` consecutive :meth:`step` messages of ``n`` packets each (for benchmarks)."""
        return [self.step(n, mode) for _ in range(count)]

    def _roll(self) -> _Roll | None:
        """Which event kinds this step injects (``None``: none, or events are off)."""
        if not self._events_on:
            return None
        u = self._rng.random(3)
        roll = (bool(u[0] < BLOCK_PROBABILITY), bool(u[1] < SWEEP_PROBABILITY), bool(u[2] < BURST_PROBABILITY))
        return roll if any(roll) else None

    def _advance(self, idx: IntArray, roll: _Roll | None, burst_rows: IntArray | None) -> None:
        """Step positions ``idx``: events of ``roll`` first (their trades, from
        the books before the step, replace the random ones; ``burst_rows`` are
        the rows of ``idx`` a :meth:`step` burst trades), then the random walk
        of the others, then the levels of linked indices."""
        rng = self._rng
        ev_rows, ev_price, ev_qty = _EMPTY, _EMPTY, _EMPTY
        if roll is not None:
            ev_rows, ev_price, ev_qty = self._plan_events(idx, roll, burst_rows)
        m = idx.size
        clock = self._clock
        tick = self._tick[idx]
        ltp = self._ltp[idx]
        is_index = self._is_index[idx]
        traded = is_index | (rng.random(m) < TRADE_PROBABILITY)
        z = rng.standard_normal((3, m))

        # Price: a Gaussian move on the tick grid, clipped into the band; event
        # trades print their own price; linked indices follow their constituents.
        moves = np.rint(z[0] * STEP_VOLATILITY * (ltp / tick)).astype(np.int64) * tick
        new = np.clip(ltp + np.where(traded, moves, 0), self._lo_band[idx], self._hi_band[idx])
        if ev_rows.size:
            new[ev_rows] = ev_price
        self._ltp[idx] = new
        if self._link_pos.size:
            group = self._link_group_of[idx]
            linked = np.flatnonzero(group >= 0)
            if linked.size:
                new[linked] = self._linked_levels(self._ltp)[group[linked]]
                self._ltp[idx[linked]] = new[linked]
        high = np.maximum(self._high[idx], new)
        low = np.minimum(self._low[idx], new)
        self._high[idx] = high
        self._low[idx] = low

        # Trade quantity, volume (saturating u32), ATP and last trade qty/time.
        lot = self._lot[idx]
        qty = np.where(traded, lot * rng.integers(1, 20, m), 0)
        if ev_rows.size:
            qty[ev_rows] = ev_qty
            traded[ev_rows] = True
        volume = self._volume[idx]
        new_volume = np.minimum(volume + qty, _UINT32_MAX)
        filled = new_volume - volume
        turnover = self._turnover[idx] + filled * new.astype(np.float64)
        self._turnover[idx] = turnover
        self._volume[idx] = new_volume
        safe_volume = np.maximum(new_volume, 1)
        atp = np.where(new_volume > 0, np.rint(turnover / safe_volume), new).astype(np.int64)
        self._atp[idx] = np.clip(atp, low, high)
        self._ltq[idx] = np.where(filled > 0, filled, self._ltq[idx])
        self._ltt[idx] = np.where(traded, clock, self._ltt[idx])
        self._ts[idx] = clock

        # Open interest (derivatives only) with its day range.
        deriv = self._is_deriv[idx] & traded
        unit = self._qty_unit[idx]
        oi = self._oi[idx]
        oi = np.where(deriv, np.clip(oi + unit * rng.integers(-20, 21, m), unit, _INT32_MAX), oi)
        self._oi[idx] = oi
        self._oi_high[idx] = np.maximum(self._oi_high[idx], oi)
        self._oi_low[idx] = np.minimum(self._oi_low[idx], oi)

        self._rebuild_book(idx)

        # Total buy/sell quantity: a multiplicative walk, never below the book.
        tradable = ~is_index
        for total, side_qty, shock in ((self._tbq, self._bid_qty, z[1]), (self._tsq, self._ask_qty, z[2])):
            walked = np.rint(total[idx] * np.exp(0.03 * shock)).astype(np.int64)
            floor = side_qty[idx].sum(axis=1)
            total[idx] = np.where(tradable, np.clip(walked, floor, _INT32_MAX), 0)

    def _plan_events(
        self, idx: IntArray, roll: _Roll, burst_rows: IntArray | None
    ) -> tuple[IntArray, IntArray, IntArray]:
        """Choose and log the events of ``roll`` among positions ``idx``.

        Returns the rows of ``idx`` that print an event trade, with their raw
        prices and quantities. Prices come from the books before the step
        (the touch, or the swept level), always inside the band. Loops run
        per event, never per instrument.
        """
        rng = self._rng
        rows: list[IntArray] = []
        prices: list[IntArray] = []
        quantities: list[IntArray] = []
        taken = _EMPTY
        block, sweep, burst = roll
        if burst:
            legs = self._chosen_legs(idx) if burst_rows is None else burst_rows
            if legs.size >= BURST_MIN_LEGS:
                pos = idx[legs]
                buy = bool(rng.random() < 0.5)
                price = self._touch(pos, buy)
                qty = self._lot[pos] * rng.integers(BURST_LOTS[0], BURST_LOTS[1] + 1, legs.size)
                self._log("burst", pos, qty, price, buy)
                rows.append(legs)
                prices.append(price)
                quantities.append(qty)
                taken = legs
        if block or sweep:
            candidates = np.flatnonzero(~self._is_index[idx])
            if taken.size:
                candidates = np.setdiff1d(candidates, taken, assume_unique=True)
            if sweep and candidates.size:
                pick = int(rng.integers(candidates.size))
                row = int(candidates[pick])
                candidates = np.delete(candidates, pick)
                p = int(idx[row])
                buy = bool(rng.random() < 0.5)
                wanted = int(rng.integers(SWEEP_LEVELS[0], SWEEP_LEVELS[1] + 1))
                if buy:
                    level_px, level_qty = self._ask_px[p], self._ask_qty[p]
                    inside = int(np.count_nonzero(level_px <= self._hi_band[p]))
                else:
                    level_px, level_qty = self._bid_px[p], self._bid_qty[p]
                    inside = int(np.count_nonzero(level_px >= self._lo_band[p]))
                levels = min(wanted, inside)  # the levels are monotone: the inside ones lead
                if levels >= 2:
                    price = level_px[levels - 1 : levels].copy()
                    qty = np.array([level_qty[:levels].sum()], np.int64)
                    self._log("sweep", idx[row : row + 1], qty, price, buy, levels)
                    rows.append(np.array([row], np.int64))
                    prices.append(price)
                    quantities.append(qty)
            if block and candidates.size:
                row = int(candidates[int(rng.integers(candidates.size))])
                pos = idx[row : row + 1]
                buy = bool(rng.random() < 0.5)
                price = self._touch(pos, buy)
                qty = self._lot[pos] * rng.integers(BLOCK_LOTS[0], BLOCK_LOTS[1] + 1, 1)
                self._log("block", pos, qty, price, buy)
                rows.append(np.array([row], np.int64))
                prices.append(price)
                quantities.append(qty)
        if not rows:
            return _EMPTY, _EMPTY, _EMPTY
        return np.concatenate(rows), np.concatenate(prices), np.concatenate(quantities)

    def _chosen_legs(self, idx: IntArray) -> IntArray:
        """Rows of ``idx`` for a burst: :data:`BURST_LEGS` (capped) chosen
        positions of one random chain among those with at least
        :data:`BURST_MIN_LEGS` chosen positions (empty if there is none)."""
        if not self._burst_chains:
            return _EMPTY
        chain = self._chain_of[idx]
        members = np.flatnonzero(chain >= 0)
        if members.size < BURST_MIN_LEGS:
            return _EMPTY
        ids, counts = np.unique(chain[members], return_counts=True)
        eligible = ids[counts >= BURST_MIN_LEGS]
        if eligible.size == 0:
            return _EMPTY
        chosen = eligible[int(self._rng.integers(eligible.size))]
        rows = members[chain[members] == chosen]
        count = min(int(self._rng.integers(BURST_LEGS[0], BURST_LEGS[1] + 1)), rows.size)
        picked: IntArray = np.sort(self._rng.choice(rows, size=count, replace=False)).astype(np.int64)
        return picked

    def _touch(self, pos: IntArray, buy: bool) -> IntArray:
        """The best ask (``buy``) or bid of positions ``pos``, clipped into the band."""
        touch = self._ask_px[pos, 0] if buy else self._bid_px[pos, 0]
        clipped: IntArray = np.clip(touch, self._lo_band[pos], self._hi_band[pos])
        return clipped

    def _log(
        self, kind: EventKind, pos: IntArray, qty: IntArray, price: IntArray, buy: bool, levels: int = 0
    ) -> None:
        self._events.append(
            MarketEvent(
                kind=kind,
                time=self._clock,
                tokens=tuple(int(t) for t in self._tokens[pos]),
                quantities=tuple(int(q) for q in qty),
                prices=tuple(int(p) for p in price),
                side="buy" if buy else "sell",
                levels=levels,
            )
        )

    def _rebuild_book(self, idx: IntArray) -> None:
        """Fresh 5+5 levels around the LTP of ``idx`` (see the module docstring)."""
        rng = self._rng
        m = idx.size
        tick = self._tick[idx][:, None]
        ltp = self._ltp[idx][:, None]
        spread = rng.integers(1, 4, (m, 1))  # best ask - best bid, in ticks
        below = rng.integers(0, spread + 1)  # LTP - best bid, in ticks
        best_bid = ltp - below * tick
        best_ask = best_bid + spread * tick
        gaps = rng.integers(1, 3, (m, 2, 5))
        gaps[:, :, 0] = 0
        offsets = np.cumsum(gaps, axis=2)
        self._bid_px[idx] = best_bid - offsets[:, 0] * tick
        self._ask_px[idx] = best_ask + offsets[:, 1] * tick
        unit = self._qty_unit[idx][:, None]
        qty = unit * rng.integers(1, 50, (m, 10))
        orders = np.minimum(rng.integers(1, 25, (m, 10)), qty)
        self._bid_qty[idx] = qty[:, :5]
        self._ask_qty[idx] = qty[:, 5:]
        self._bid_ord[idx] = orders[:, :5]
        self._ask_ord[idx] = orders[:, 5:]

    # ------------------------------------------------------------------ encoding

    def _encode(self, idx: IntArray, mode: str) -> bytes:
        header = int(idx.size).to_bytes(2, "big")
        if mode == "ltp":
            rec = np.empty(idx.size, _LTP_DT)
            rec["length"] = kite_wire.LTP_LEN
            rec["token"] = self._tokens[idx]
            rec["last_price"] = self._ltp[idx]
            return header + rec.tobytes()
        full = mode == "full"
        is_index = self._is_index[idx]
        return header + self._tradable_block(idx[~is_index], full) + self._index_block(idx[is_index], full)

    def _index_block(self, idx: IntArray, full: bool) -> bytes:
        if idx.size == 0:
            return b""
        rec = np.empty(idx.size, _INDEX_FULL_DT if full else _INDEX_QUOTE_DT)
        rec["length"] = kite_wire.INDEX_FULL_LEN if full else kite_wire.INDEX_QUOTE_LEN
        rec["token"] = self._tokens[idx]
        ltp = self._ltp[idx]
        close = self._close[idx]
        rec["last_price"] = ltp
        rec["high"] = self._high[idx]
        rec["low"] = self._low[idx]
        rec["open"] = self._open[idx]
        rec["close"] = close
        rec["change"] = ltp - close
        if full:
            rec["exchange_timestamp"] = self._ts[idx]
        return rec.tobytes()

    def _tradable_block(self, idx: IntArray, full: bool) -> bytes:
        if idx.size == 0:
            return b""
        rec = np.empty(idx.size, _FULL_DT if full else _QUOTE_DT)
        rec["length"] = kite_wire.FULL_LEN if full else kite_wire.QUOTE_LEN
        rec["token"] = self._tokens[idx]
        rec["last_price"] = self._ltp[idx]
        rec["last_traded_quantity"] = self._ltq[idx]
        rec["average_traded_price"] = self._atp[idx]
        rec["volume_traded"] = self._volume[idx]
        rec["total_buy_quantity"] = self._tbq[idx]
        rec["total_sell_quantity"] = self._tsq[idx]
        rec["open"] = self._open[idx]
        rec["high"] = self._high[idx]
        rec["low"] = self._low[idx]
        rec["close"] = self._close[idx]
        if full:
            rec["last_trade_time"] = self._ltt[idx]
            rec["oi"] = self._oi[idx]
            rec["oi_day_high"] = self._oi_high[idx]
            rec["oi_day_low"] = self._oi_low[idx]
            rec["exchange_timestamp"] = self._ts[idx]
            depth = rec["depth"]
            depth["quantity"] = np.concatenate((self._bid_qty[idx], self._ask_qty[idx]), axis=1)
            depth["price"] = np.concatenate((self._bid_px[idx], self._ask_px[idx]), axis=1)
            depth["orders"] = np.concatenate((self._bid_ord[idx], self._ask_ord[idx]), axis=1)
            depth["pad"] = 0
        return rec.tobytes()
