"""The fixed facts of a market's instruments: token, divisor, tick, lot, close and price band.

A :class:`Listing` is built once from the constructor's arrays and never
changes; every other part of the market indexes its parallel arrays by
*position* (the row of a token in the universe).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fastflow.reference.broker_wire import KITE_SEGMENT_INDICES, price_divisor
from fastflow.sim.market.book import MAX_BOOK_TICKS

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Starting price (rupees) used for instruments whose ``last_price`` is 0.
DEFAULT_PRICE = 100.0
#: Tick size (rupees) used when the given tick size is 0 (indices).
DEFAULT_TICK = 0.05
#: Prices stay within close * (1 +- PRICE_BAND).
PRICE_BAND = 0.2
#: Minimum close, in ticks, so that the whole book stays strictly positive.
MIN_CLOSE_TICKS = 20

#: Kite segment ids of cash equities (NSE, BSE): the index constituents.
CASH_SEGMENTS = (1, 4)

INT32_MAX = 2**31 - 1

#: Raw-price divisor by segment id (``token & 0xff``).
_DIVISOR_BY_SEGMENT: IntArray = np.array([price_divisor(seg) for seg in range(256)], np.int64)


@dataclass(frozen=True, eq=False)
class Listing:
    """Parallel arrays, one row per instrument position; prices are raw (x ``divisor``).

    ``tick`` is at least 1; ``lot`` is 0 for indices; ``qty_unit`` (= max(lot, 1))
    is what book and trade quantities are multiples of; ``close`` is on the tick
    grid, at least :data:`MIN_CLOSE_TICKS` ticks; ``lo_band``/``hi_band`` bound
    every price (a book :data:`~fastflow.sim.market.book.MAX_BOOK_TICKS` out
    included) to stay positive and below 2**31.
    """

    tokens: npt.NDArray[np.uint32]
    divisor: IntArray
    is_index: BoolArray
    is_deriv: BoolArray
    tick: IntArray
    lot: IntArray
    qty_unit: IntArray
    close: IntArray
    close_ticks: FloatArray
    lo_band: IntArray
    hi_band: IntArray

    @classmethod
    def build(
        cls,
        tokens: npt.ArrayLike,
        last_price: npt.ArrayLike,
        tick_size: npt.ArrayLike,
        lot_size: npt.ArrayLike | None,
    ) -> Listing:
        """Validate and derive (see :class:`~fastflow.sim.market.model.KiteMarket` for the
        arguments and the ``ValueError``\\ s)."""
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

        segment = (tok & 0xFF).astype(np.int64)
        div: IntArray = _DIVISOR_BY_SEGMENT[segment]
        is_index: BoolArray = segment == KITE_SEGMENT_INDICES
        is_deriv: BoolArray = ~np.isin(segment, (*CASH_SEGMENTS, KITE_SEGMENT_INDICES))

        tick_rupees = np.where(np.isfinite(tick_in) & (tick_in > 0), tick_in, DEFAULT_TICK)
        tick: IntArray = np.maximum(np.rint(tick_rupees * div), 1).astype(np.int64)
        lot: IntArray = np.where(is_index, 0, np.maximum(lots, 1)).astype(np.int64)

        rupees = np.where(np.isfinite(price) & (price > 0), price, DEFAULT_PRICE)
        close_ticks = np.maximum(np.rint(rupees * div / tick), MIN_CLOSE_TICKS)
        close: IntArray = close_ticks.astype(np.int64) * tick
        lo_ticks = np.maximum(np.ceil(close_ticks * (1 - PRICE_BAND)), MAX_BOOK_TICKS + 1)
        hi_ticks = np.floor(close_ticks * (1 + PRICE_BAND))
        lo_band: IntArray = lo_ticks.astype(np.int64) * tick
        hi_band: IntArray = hi_ticks.astype(np.int64) * tick
        too_big = hi_band + MAX_BOOK_TICKS * tick > INT32_MAX
        if np.any(too_big):
            bad = [int(t) for t in tok[too_big][:5]]
            raise ValueError(f"price too large for a 32-bit raw value: tokens {bad}")
        return cls(
            tokens=tok,
            divisor=div,
            is_index=is_index,
            is_deriv=is_deriv,
            tick=tick,
            lot=lot,
            qty_unit=np.maximum(lot, 1),
            close=close,
            close_ticks=close_ticks,
            lo_band=lo_band,
            hi_band=hi_band,
        )

    @property
    def size(self) -> int:
        return int(self.tokens.size)

    # -- token -> position ----------------------------------------------------------------

    @functools.cached_property
    def position_map(self) -> dict[int, int]:
        """Token -> position (built on first use)."""
        return {int(t): i for i, t in enumerate(self.tokens)}

    def position(self, token: int, what: str) -> int:
        """The position of ``token``; ``ValueError`` naming ``what`` if it is not listed."""
        position = self.position_map.get(int(token))
        if position is None:
            raise ValueError(f"{what} {token!r} is not in the universe")
        return position

    def positions(self, tokens: Iterable[int]) -> IntArray:
        """Positions of distinct ``tokens`` (``KeyError`` for one outside the universe)."""
        positions = self.position_map
        idx = np.fromiter((positions[int(t)] for t in tokens), dtype=np.int64)
        if np.unique(idx).size != idx.size:
            raise ValueError("tokens must be distinct")
        return idx

    def index_of(self, token: int) -> int:
        """The position of ``token`` (``KeyError`` if it is not listed)."""
        hits = np.flatnonzero(self.tokens == np.uint32(token))
        if hits.size == 0:
            raise KeyError(token)
        return int(hits[0])
