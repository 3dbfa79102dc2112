"""The day's trading state of every instrument and its random walk.

:class:`Quotes` holds, per position, the raw last price, day OHLC, volume,
turnover and average price, last trade quantity and time, total buy/sell
quantity, open interest with its day range and the exchange timestamp.

* :meth:`Quotes.open_day`: the day opens with a small Gaussian gap from the
  close and a pre-open auction trade (volume > 0, ATP = open); derivatives
  start with some open interest, equities and indices have none.
* :meth:`Quotes.move`: with probability :data:`TRADE_PROBABILITY` (always for
  indices) an instrument trades: it prints at its fair value
  (:mod:`~fastflow.sim.market.fair`) rounded up to the tick grid for a buyer,
  down for a seller (an index: to the nearest tick), kept inside the band;
  event trades (:class:`~fastflow.sim.market.events.Trades`) print their own
  price instead.
* :meth:`Quotes.fill`: day high/low, cumulative volume (saturating at
  2**32 - 1), ATP, last traded quantity / time and, for derivatives, open
  interest follow the trade.
* :meth:`Quotes.walk_totals`: total buy/sell quantities take a multiplicative
  step and never fall below the (rebuilt) book's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from fastflow.sim.market.book import Book
from fastflow.sim.market.events import Trades
from fastflow.sim.market.listing import INT32_MAX, Listing

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Probability that a stepped tradable instrument trades.
TRADE_PROBABILITY = 0.85
#: Standard deviation of the opening gap, as a fraction of the close.
OPEN_GAP_VOLATILITY = 0.004

UINT32_MAX = 2**32 - 1


class Quotes:
    """Per-position trading state (raw integers, see the module docstring)."""

    def __init__(self, opening: IntArray, listing: Listing, rng: np.random.Generator, clock: int) -> None:
        """The state at the open: prices at ``opening``; the auction, totals and OI drawn from ``rng``."""
        n = listing.size
        lot, unit = listing.lot, listing.qty_unit
        self.open: IntArray = opening
        self.ltp: IntArray = opening.copy()
        self.high: IntArray = opening.copy()
        self.low: IntArray = opening.copy()
        # The pre-open call auction: one trade at the open price.
        self.volume: IntArray = lot * rng.integers(10, 500, n)
        self.turnover: FloatArray = self.volume.astype(np.float64) * opening
        self.atp: IntArray = opening.copy()
        self.ltq: IntArray = self.volume.copy()
        self.tbq: IntArray = unit * rng.integers(1_000, 50_000, n)
        self.tsq: IntArray = unit * rng.integers(1_000, 50_000, n)
        self.tbq[listing.is_index] = 0
        self.tsq[listing.is_index] = 0
        oi = np.where(listing.is_deriv, unit * rng.integers(1_000, 100_000, n), 0)
        self.oi: IntArray = oi.astype(np.int64)
        self.oi_high: IntArray = self.oi.copy()
        self.oi_low: IntArray = self.oi.copy()
        self.ltt: IntArray = np.full(n, clock, np.int64)
        self.ts: IntArray = np.full(n, clock, np.int64)

    @staticmethod
    def opening_gap(listing: Listing, rng: np.random.Generator) -> IntArray:
        """Opening prices: the close plus a Gaussian gap on the tick grid, inside the band."""
        n = listing.size
        gap = np.rint(rng.standard_normal(n) * OPEN_GAP_VOLATILITY * listing.close_ticks).astype(np.int64)
        opening: IntArray = np.clip(listing.close + gap * listing.tick, listing.lo_band, listing.hi_band)
        return opening

    def move(
        self,
        idx: IntArray,
        listing: Listing,
        rng: np.random.Generator,
        trades: Trades,
        fair_of: Callable[[IntArray], FloatArray],
        later: BoolArray,
    ) -> tuple[BoolArray, FloatArray]:
        """New last prices of positions ``idx`` from their fair values
        (``fair_of(positions)``, raw floats); the rows where ``later`` is true are
        priced after the others have printed (a derivative follows the prints of
        its underlying in the same step). Returns which rows trade (before the
        event trades) and the Gaussian shocks of this step (the sign of row 0 is
        the aggressor's side, rows 1-2 are for :meth:`walk_totals`)."""
        m = idx.size
        is_index = listing.is_index[idx]
        traded = is_index | (rng.random(m) < TRADE_PROBABILITY)
        shocks = rng.standard_normal((3, m))
        event = np.zeros(m, bool)
        event_price = np.zeros(m, np.int64)
        if trades.rows.size:
            event[trades.rows] = True
            event_price[trades.rows] = trades.prices
        for rows in (np.flatnonzero(~later), np.flatnonzero(later)):
            if not rows.size:
                continue
            pos = idx[rows]
            tick = listing.tick[pos]
            ticks = fair_of(pos) / tick
            up = shocks[0, rows] > 0
            grid = np.where(is_index[rows], np.rint(ticks), np.where(up, np.ceil(ticks), np.floor(ticks)))
            printed = np.clip(grid.astype(np.int64) * tick, listing.lo_band[pos], listing.hi_band[pos])
            self.ltp[pos] = np.where(event[rows], event_price[rows], np.where(traded[rows], printed, self.ltp[pos]))
        return traded, shocks

    def fill(
        self,
        idx: IntArray,
        traded: BoolArray,
        listing: Listing,
        rng: np.random.Generator,
        clock: int,
        trades: Trades,
        liquidity: FloatArray,
    ) -> None:
        """Everything that follows the new last prices of ``idx``: range, volume,
        ATP, last trade, timestamps and open interest (``traded`` as from
        :meth:`move`); a trade is ``lot x 1..(1 + 19 * liquidity)`` (``liquidity``
        in (0, 1] per position: options far from the money trade less)."""
        m = idx.size
        new = self.ltp[idx]
        high = np.maximum(self.high[idx], new)
        low = np.minimum(self.low[idx], new)
        self.high[idx] = high
        self.low[idx] = low

        # Trade quantity, volume (saturating u32), ATP and last trade qty/time.
        qty = np.where(traded, listing.lot[idx] * rng.integers(1, 1 + np.ceil(19 * liquidity[idx]).astype(np.int64)), 0)
        if trades.rows.size:
            qty[trades.rows] = trades.quantities
            traded[trades.rows] = True
        volume = self.volume[idx]
        new_volume = np.minimum(volume + qty, UINT32_MAX)
        filled = new_volume - volume
        turnover = self.turnover[idx] + filled * new.astype(np.float64)
        self.turnover[idx] = turnover
        self.volume[idx] = new_volume
        safe_volume = np.maximum(new_volume, 1)
        atp = np.where(new_volume > 0, np.rint(turnover / safe_volume), new).astype(np.int64)
        self.atp[idx] = np.clip(atp, low, high)
        self.ltq[idx] = np.where(filled > 0, filled, self.ltq[idx])
        self.ltt[idx] = np.where(traded, clock, self.ltt[idx])
        self.ts[idx] = clock

        # Open interest (derivatives only) with its day range.
        deriv = listing.is_deriv[idx] & traded
        unit = listing.qty_unit[idx]
        oi = self.oi[idx]
        oi = np.where(deriv, np.clip(oi + unit * rng.integers(-20, 21, m), unit, INT32_MAX), oi)
        self.oi[idx] = oi
        self.oi_high[idx] = np.maximum(self.oi_high[idx], oi)
        self.oi_low[idx] = np.minimum(self.oi_low[idx], oi)

    def walk_totals(self, idx: IntArray, listing: Listing, book: Book, shocks: FloatArray) -> None:
        """Total buy/sell quantity of tradables: a multiplicative walk, never below the book."""
        tradable = ~listing.is_index[idx]
        for total, side_qty, shock in ((self.tbq, book.bid_qty, shocks[1]), (self.tsq, book.ask_qty, shocks[2])):
            walked = np.rint(total[idx] * np.exp(0.03 * shock)).astype(np.int64)
            floor = side_qty[idx].sum(axis=1)
            total[idx] = np.where(tradable, np.clip(walked, floor, INT32_MAX), 0)
