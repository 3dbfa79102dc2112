"""The simulated market: a seeded random walk over the synthetic universe.

* :mod:`~fastflow.sim.market.model`: :class:`KiteMarket`, which composes
  :mod:`~fastflow.sim.market.listing` (fixed facts per instrument),
  :mod:`~fastflow.sim.market.walk` (price walk and day state),
  :mod:`~fastflow.sim.market.book` (5-level books),
  :mod:`~fastflow.sim.market.indices` (index levels from constituents) and
  :mod:`~fastflow.sim.market.events` (block / sweep / burst events), and
  emits Kite binary messages;
* :mod:`~fastflow.sim.market.upstox`: :class:`UpstoxMarket`, the same model
  as Upstox V3 ``FeedResponse`` frames (candles, greeks, 30-level books).
"""

from __future__ import annotations

from fastflow.sim.market.events import MarketEvent
from fastflow.sim.market.model import MODES, KiteMarket, RawSnapshot
from fastflow.sim.market.upstox import UpstoxMarket, upstox_pairs

__all__ = ["MODES", "KiteMarket", "MarketEvent", "RawSnapshot", "UpstoxMarket", "upstox_pairs"]
