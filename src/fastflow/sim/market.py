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

At construction the day opens with a small Gaussian gap from the close and a
pre-open auction trade (volume > 0, ATP = open); derivatives start with some
open interest, equities and indices have none. The index packets' ``change``
field carries ``LTP - close`` (raw, signed).

Invariants: low <= open, LTP, ATP <= high; volume never decreases (it
saturates at 2**32 - 1); every price is a positive raw int below 2**31; the
close (previous day's close) never changes.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import TypedDict

import numpy as np
import numpy.typing as npt

from fastflow.sim import kite_wire

__all__ = [
    "DEFAULT_PRICE",
    "MODES",
    "KiteMarket",
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


class KiteMarket:
    """A seeded random-walk market over a fixed universe; see the module docstring.

    Parameters are parallel 1-D arrays: ``tokens`` (uint32 instrument tokens,
    unique), ``last_price`` (float rupees, the previous close; 0 ->
    :data:`DEFAULT_PRICE`), ``tick_size`` (float rupees; 0 -> 0.05) and the
    optional ``lot_size`` (quantities are multiples of it; default 1).
    ``start_time`` (epoch seconds) defaults to 09:15 IST today.

    Raises ``ValueError`` for mismatched or non-1-D arrays, duplicate tokens,
    a price too large for a signed 32-bit raw value, or a ``start_time``
    outside the u32 range.
    """

    def __init__(
        self,
        tokens: npt.ArrayLike,
        last_price: npt.ArrayLike,
        tick_size: npt.ArrayLike,
        seed: int = 0,
        start_time: int | None = None,
        lot_size: npt.ArrayLike | None = None,
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

        rng = self._rng
        gap = np.rint(rng.standard_normal(n) * OPEN_GAP_VOLATILITY * close_ticks).astype(np.int64)
        opening = np.clip(self._close + gap * self._tick, self._lo_band, self._hi_band)
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

    # ------------------------------------------------------------------ creation

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[Mapping[str, object]],
        seed: int = 0,
        start_time: int | None = None,
    ) -> KiteMarket:
        """A market over instruments-dump rows (e.g. :func:`fastflow.sim.universe.kite_universe`)."""
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
        one message never holds the same instrument twice.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not 0 <= n <= self._size:
            raise ValueError(f"n must be between 0 and the universe size {self._size}, got {n}")
        if n > 0xFFFF:
            raise ValueError("a Kite message holds at most 65535 packets")
        self._clock = _check_time(self._clock + 1 if now is None else max(self._clock, int(now)))
        idx = self._rng.choice(self._size, size=n, replace=False).astype(np.int64)
        self._advance(idx)
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
        if self._positions is None:
            self._positions = {int(t): i for i, t in enumerate(self._tokens)}
        positions = self._positions
        idx = np.fromiter((positions[int(t)] for t in tokens), dtype=np.int64)
        if np.unique(idx).size != idx.size:
            raise ValueError("tokens must be distinct")
        return idx

    def advance(self, idx: IntArray, now: int | None = None) -> None:
        """Move the clock (like :meth:`step`) and advance the instruments at
        positions ``idx`` without encoding them (other encoders read
        :meth:`columns` afterwards)."""
        self._clock = _check_time(self._clock + 1 if now is None else max(self._clock, int(now)))
        self._advance(idx)

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

    def _advance(self, idx: IntArray) -> None:
        rng = self._rng
        m = idx.size
        clock = self._clock
        tick = self._tick[idx]
        ltp = self._ltp[idx]
        is_index = self._is_index[idx]
        traded = is_index | (rng.random(m) < TRADE_PROBABILITY)
        z = rng.standard_normal((3, m))

        # Price: a Gaussian move on the tick grid, clipped into the band.
        moves = np.rint(z[0] * STEP_VOLATILITY * (ltp / tick)).astype(np.int64) * tick
        new = np.clip(ltp + np.where(traded, moves, 0), self._lo_band[idx], self._hi_band[idx])
        high = np.maximum(self._high[idx], new)
        low = np.minimum(self._low[idx], new)
        self._ltp[idx] = new
        self._high[idx] = high
        self._low[idx] = low

        # Trade quantity, volume (saturating u32), ATP and last trade qty/time.
        lot = self._lot[idx]
        qty = np.where(traded, lot * rng.integers(1, 20, m), 0)
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
