"""The 5-level order book of every instrument, rebuilt around the last price.

Each rebuild draws a spread of 1-3 ticks with the LTP inside it (best bid <=
LTP <= best ask, best bid < best ask), then 1-2 tick gaps outwards, so bids
strictly descend and asks strictly ascend on the tick grid; quantities are
positive multiples of the instrument's ``qty_unit`` and 1 <= orders <= quantity.
A ``wide`` factor per instrument multiplies the spread and the gaps (an
expensive option quotes several ticks wide). A bid level that would sit below
one tick is empty (price, quantity and orders 0), as Kite sends an empty level:
a 5-paise option has no bids under it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]

#: Levels per side.
LEVELS = 5
#: Most ticks a book level can sit away from the LTP (spread 3 + 4 gaps of 2).
MAX_BOOK_TICKS = 11

DepthLevel = tuple[int, int, int]  # (quantity, raw price, orders)


class Book:
    """Bids and asks of ``size`` instruments as ``(size, 5)`` arrays, best level first."""

    def __init__(self, size: int) -> None:
        self.bid_px: IntArray = np.zeros((size, LEVELS), np.int64)
        self.bid_qty: IntArray = np.zeros((size, LEVELS), np.int64)
        self.bid_ord: IntArray = np.zeros((size, LEVELS), np.int64)
        self.ask_px: IntArray = np.zeros((size, LEVELS), np.int64)
        self.ask_qty: IntArray = np.zeros((size, LEVELS), np.int64)
        self.ask_ord: IntArray = np.zeros((size, LEVELS), np.int64)

    def rebuild(
        self, idx: IntArray, ltp: IntArray, tick: IntArray, qty_unit: IntArray, rng: np.random.Generator,
        wide: IntArray | None = None,
    ) -> None:
        """Fresh levels for positions ``idx`` around their ``ltp`` (the other
        arguments are per row of ``idx``, like ``ltp``; ``wide`` >= 1 scales
        the spread and gaps in ticks, default 1)."""
        m = idx.size
        step = tick if wide is None else tick * wide
        tick_col = step[:, None]
        ltp_col = ltp[:, None]
        spread = rng.integers(1, 4, (m, 1))  # best ask - best bid, in ticks
        below = rng.integers(0, spread + 1)  # LTP - best bid, in ticks
        best_bid = ltp_col - below * tick_col
        best_ask = best_bid + spread * tick_col
        gaps = rng.integers(1, 3, (m, 2, LEVELS))
        gaps[:, :, 0] = 0
        offsets = np.cumsum(gaps, axis=2)
        bids = best_bid - offsets[:, 0] * tick_col
        self.ask_px[idx] = best_ask + offsets[:, 1] * tick_col
        unit = qty_unit[:, None]
        qty = unit * rng.integers(1, 50, (m, 2 * LEVELS))
        orders = np.minimum(rng.integers(1, 25, (m, 2 * LEVELS)), qty)
        empty = bids < tick[:, None]
        self.bid_px[idx] = np.where(empty, 0, bids)
        self.bid_qty[idx] = np.where(empty, 0, qty[:, :LEVELS])
        self.ask_qty[idx] = qty[:, LEVELS:]
        self.bid_ord[idx] = np.where(empty, 0, orders[:, :LEVELS])
        self.ask_ord[idx] = orders[:, LEVELS:]

    def touch(self, pos: IntArray, buy: bool) -> IntArray:
        """The best ask (``buy``: what an aggressive buyer takes) or best bid of positions ``pos``."""
        touch: IntArray = self.ask_px[pos, 0] if buy else self.bid_px[pos, 0]
        return touch

    def side(self, position: int, buy: bool) -> tuple[IntArray, IntArray]:
        """Prices and quantities of the levels an aggressive buyer (asks) or seller (bids) takes."""
        if buy:
            return self.ask_px[position], self.ask_qty[position]
        return self.bid_px[position], self.bid_qty[position]

    def levels(self, position: int) -> tuple[list[DepthLevel], list[DepthLevel]]:
        """``(bids, asks)`` of one position as ``(quantity, price, orders)`` tuples."""

        def side(px: IntArray, qty: IntArray, orders: IntArray) -> list[DepthLevel]:
            return [(int(qty[position, k]), int(px[position, k]), int(orders[position, k])) for k in range(LEVELS)]

        return side(self.bid_px, self.bid_qty, self.bid_ord), side(self.ask_px, self.ask_qty, self.ask_ord)
