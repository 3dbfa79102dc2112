"""Fair values: the continuous price process under the printed, tick-rounded prices.

Every root (:mod:`~fastflow.sim.market.derivatives`) carries a fair value that
moves in market time: over ``dt`` seconds its log takes a step of
``beta * dm + idio * sqrt(v) * z``, where ``v = dt / TRADING_SECONDS_PER_YEAR
* intraday_shape(t)**2`` and ``dm = MARKET_VOLATILITY * sqrt(v) * z_m`` is the
one market factor shared by all cash equities (so stocks move together and
their index with them). Annual volatilities by class: cash equities
:data:`EQUITY_VOLATILITY` (drawn per stock), currency :data:`CURRENCY_VOLATILITY`,
commodities :data:`COMMODITY_VOLATILITY`, an index without constituents
:data:`INDEX_VOLATILITY`. Linked indices, futures and options have no walk of
their own: their value is computed from their driver when asked
(:meth:`FairValues.values`); a linked index's derivatives are priced on the
level its constituents' last prices give (what a client sees). Values are raw
(x the instrument's divisor), as floats.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fastflow.reference.broker_wire import KITE_SEGMENT_BCD, KITE_SEGMENT_CDS
from fastflow.sim.market.clock import CALENDAR_SECONDS_PER_YEAR, TRADING_SECONDS_PER_YEAR, intraday_shape
from fastflow.sim.market.derivatives import (
    BASIS_HALF_LIFE_S,
    BASIS_VOLATILITY,
    CARRY,
    FUTURE,
    OPTION,
    ROOT,
    Contracts,
    black76,
    smile,
)
from fastflow.sim.market.indices import IndexLinks
from fastflow.sim.market.listing import CASH_SEGMENTS, Listing

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: The market factor's annual volatility.
MARKET_VOLATILITY = 0.12
#: Cash equities: annual volatility drawn uniformly from this range, beta from BETA.
EQUITY_VOLATILITY = (0.18, 0.38)
BETA = (0.7, 1.3)
#: Currency futures (CDS, BCD) and commodities (MCX, NCO): annual volatility.
CURRENCY_VOLATILITY = 0.05
COMMODITY_VOLATILITY = 0.30
#: An index without constituents (beta 1 to the market factor, little of its own).
INDEX_VOLATILITY = 0.13

_COMMODITY_SEGMENTS = (7, 10)  # MCX, NCO (Kite segment ids)


class FairValues:
    """Fair values of every position (module docstring); ``opening`` raw prices set the roots'."""

    def __init__(
        self, listing: Listing, contracts: Contracts, links: IndexLinks, rng: np.random.Generator, time: float
    ) -> None:
        n = listing.size
        self._listing, self._contracts, self._links = listing, contracts, links
        segment = (listing.tokens & 0xFF).astype(np.int64)
        equity = np.isin(segment, CASH_SEGMENTS)
        roots = contracts.kind == ROOT
        linked = np.zeros(n, bool)
        linked[links.positions] = True
        self._roots: IntArray = np.flatnonzero(roots & ~linked).astype(np.int64)
        sigma = np.full(n, INDEX_VOLATILITY)
        beta = np.zeros(n)
        sigma[equity] = rng.uniform(*EQUITY_VOLATILITY, int(equity.sum()))
        beta[equity] = rng.uniform(*BETA, int(equity.sum()))
        beta[listing.is_index & ~linked] = 1.0
        sigma[np.isin(segment, (KITE_SEGMENT_CDS, KITE_SEGMENT_BCD))] = CURRENCY_VOLATILITY
        sigma[np.isin(segment, _COMMODITY_SEGMENTS)] = COMMODITY_VOLATILITY
        #: Annual volatility of each position's own walk (roots), and of what it follows otherwise.
        self.sigma: FloatArray = sigma
        idio = np.sqrt(np.maximum(sigma**2 - (beta * MARKET_VOLATILITY) ** 2, (0.2 * sigma) ** 2))
        self._beta, self._idio = beta[self._roots], idio[self._roots]
        self.fair: FloatArray = listing.close.astype(np.float64)
        self.basis: FloatArray = np.zeros(n)
        self.time = float(time)
        self._prints: IntArray | None = None
        # The at-the-money volatility of each option: its underlying's (an index's: INDEX_VOLATILITY).
        options = contracts.options
        under = contracts.underlying[options]
        self._atm: FloatArray = np.where(listing.is_index[under], INDEX_VOLATILITY, sigma[under])
        self._option_index = np.full(n, -1, np.int64)
        self._option_index[options] = np.arange(options.size)

    def follow_prints(self, ltp: IntArray) -> None:
        """Price derivatives on a linked index from the level its constituents' last
        prices give (``ltp``, updated in place by the market), as a client computing
        the index would, rather than from their fair values."""
        self._prints = ltp

    def open(self, opening: IntArray) -> None:
        """The roots' fair values at the open."""
        self.fair[self._roots] = opening[self._roots]

    def evolve(self, time: float, rng: np.random.Generator) -> None:
        """Move every root's fair value (and every future's basis) to market time ``time``."""
        dt = time - self.time
        if dt <= 0:
            return
        self.time = time
        variance = dt / TRADING_SECONDS_PER_YEAR * intraday_shape(time) ** 2
        sd = np.sqrt(variance)
        z = rng.standard_normal(self._roots.size + 1)
        steps = self._beta * (MARKET_VOLATILITY * sd * z[0]) + self._idio * sd * z[1:]
        steps -= 0.5 * (self._beta**2 * MARKET_VOLATILITY**2 + self._idio**2) * variance  # a martingale
        fair = self.fair[self._roots] * np.exp(steps)
        self.fair[self._roots] = np.clip(fair, self._listing.lo_band[self._roots], self._listing.hi_band[self._roots])
        futures = self._contracts.futures
        if futures.size:
            keep = 0.5 ** (dt / BASIS_HALF_LIFE_S)
            noise = BASIS_VOLATILITY * np.sqrt(1.0 - keep * keep)
            self.basis[futures] = self.basis[futures] * keep + noise * rng.standard_normal(futures.size)

    def values(self, idx: IntArray, time: float | None = None) -> FloatArray:
        """Fair values (raw, float) of positions ``idx`` at market time ``time``
        (default: the latest :meth:`evolve`): derived positions are priced now."""
        t = self.time if time is None else time
        listing, c = self._listing, self._contracts
        out: FloatArray = self.fair[idx].copy()
        kind = c.kind[idx]
        linked = self._links.group_of[idx] >= 0
        if np.any(linked):
            out[linked] = self._spot(idx[linked])
        for wanted in (FUTURE, OPTION):
            rows = np.flatnonzero(kind == wanted)
            if not rows.size:
                continue
            pos = idx[rows]
            under = c.underlying[pos]
            spot = self._spot(under) / listing.divisor[under]  # rupees
            years = np.maximum(c.expiry[pos] - t, 0.0) / CALENDAR_SECONDS_PER_YEAR
            if wanted == FUTURE:
                rupees = spot * np.exp(CARRY * years + self.basis[pos])
            else:
                forward = np.where(c.on_future[pos], spot, spot * np.exp(CARRY * years))
                atm = self._atm[self._option_index[pos]]
                vol = smile(atm, forward, c.strike[pos], np.maximum(years, 1e-6))
                rupees = black76(forward, c.strike[pos], years, vol, c.call[pos])
            out[rows] = rupees * listing.divisor[pos]
        self.fair[idx] = out
        return out

    def implied_vol(self, idx: IntArray, time: float | None = None) -> FloatArray:
        """The smile's volatility of options ``idx`` (the model's truth; NaN for non-options)."""
        t = self.time if time is None else time
        c = self._contracts
        out = np.full(idx.size, np.nan)
        rows = np.flatnonzero(c.kind[idx] == OPTION)
        if rows.size:
            pos = idx[rows]
            under = c.underlying[pos]
            spot = self._spot(under) / self._listing.divisor[under]
            years = np.maximum(np.maximum(c.expiry[pos] - t, 0.0) / CALENDAR_SECONDS_PER_YEAR, 1e-6)
            forward = np.where(c.on_future[pos], spot, spot * np.exp(CARRY * years))
            out[rows] = smile(self._atm[self._option_index[pos]], forward, c.strike[pos], years)
        return out

    def _spot(self, under: IntArray) -> FloatArray:
        """Raw values of underlying positions (roots or linked indices)."""
        spot: FloatArray = self.fair[under].copy()
        linked = self._links.group_of[under] >= 0
        if np.any(linked):
            levels = self._links.values(self.fair if self._prints is None else self._prints)
            spot[linked] = levels[self._links.group_of[under[linked]]]
        return spot
