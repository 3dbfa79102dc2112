"""Linked indices: index levels derived from their constituents' last prices.

An index (segment 9) may be *linked* to constituents ``{token: weight}``.
Whenever a linked index is stepped, its level is recomputed from the
constituents' *current* last prices (whether or not they were in the same step)::

    level = index_close * sum(w_i * ltp_i / close_i)      (sum(w_i) = 1)

rounded to the index's tick grid and clipped into its price band; the open is
the same formula over the constituents' opens. An index that is not stepped
keeps its last published level (like a feed that has not sent it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt

from fastflow.reference.broker_wire import KITE_SEGMENT_INDICES
from fastflow.sim.market.listing import CASH_SEGMENTS, Listing
from fastflow.sim.universe import INDEX_CONSTITUENTS

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class IndexLinks:
    """Validated links, stored flat (one entry per constituent).

    Raises ``ValueError`` when a key is not an index of ``listing``, is given
    twice or has no constituents, or a constituent is unknown, an index, or
    has a weight that is not positive and finite. Weights are normalised.
    """

    def __init__(self, indices: Mapping[int, Mapping[int, float]], listing: Listing) -> None:
        # _pos[g] is the position of linked index g; constituent e belongs to index
        # _group[e], sits at _member[e] and contributes _coef[e] * ltp
        # (index_close * w / close) to its level; group_of maps a position to its
        # index group (-1: not a linked index).
        link_pos: list[int] = []
        group: list[int] = []
        member: list[int] = []
        coef: list[float] = []
        for index_token, weights in indices.items():
            p = listing.position(index_token, "index token")
            if not listing.is_index[p]:
                raise ValueError(f"index token {index_token!r} is not an index (segment 9)")
            if p in link_pos:
                raise ValueError(f"index token {index_token!r} given twice")
            parts = [(listing.position(t, "constituent token"), float(w)) for t, w in weights.items()]
            if not parts:
                raise ValueError(f"index token {index_token!r} has no constituents")
            for (c, w), token in zip(parts, weights, strict=True):
                if listing.is_index[c]:
                    raise ValueError(f"constituent {token!r} of {index_token!r} is an index")
                if not (math.isfinite(w) and w > 0):
                    raise ValueError(f"weight of {token!r} in {index_token!r} must be positive, got {w!r}")
            total = sum(w for _, w in parts)
            close = float(listing.close[p])
            for c, w in parts:
                group.append(len(link_pos))
                member.append(c)
                coef.append(close * (w / total) / float(listing.close[c]))
            link_pos.append(p)
        self._pos: IntArray = np.array(link_pos, np.int64)
        self._group: IntArray = np.array(group, np.int64)
        self._member: IntArray = np.array(member, np.int64)
        self._coef: FloatArray = np.array(coef, np.float64)
        self._tick: IntArray = listing.tick[self._pos]
        self._lo_band: IntArray = listing.lo_band[self._pos]
        self._hi_band: IntArray = listing.hi_band[self._pos]
        self.group_of: IntArray = np.full(listing.size, -1, np.int64)
        self.group_of[self._pos] = np.arange(len(link_pos), dtype=np.int64)

    @property
    def positions(self) -> IntArray:
        """Positions of the linked indices."""
        return self._pos

    def values(self, prices: FloatArray | IntArray) -> FloatArray:
        """Unrounded levels of every linked index (:attr:`positions` order) from
        ``prices`` of the whole universe (fair values or last prices)."""
        weights = self._coef * np.asarray(prices, np.float64)[self._member]
        sums: FloatArray = np.bincount(self._group, weights=weights, minlength=self._pos.size).astype(np.float64)
        return sums

    def levels(self, prices: IntArray) -> IntArray:
        """Levels of every linked index (:attr:`positions` order) from ``prices``
        of the whole universe: on the index tick grid, clipped into the band."""
        level = np.rint(self.values(prices) / self._tick).astype(np.int64) * self._tick
        clipped: IntArray = np.clip(level, self._lo_band, self._hi_band)
        return clipped

    def follow(self, idx: IntArray, ltp: IntArray) -> None:
        """The linked indices among positions ``idx`` take their levels from ``ltp``
        (the whole universe's last prices, updated in place)."""
        if not self._pos.size:
            return
        group = self.group_of[idx]
        linked = np.flatnonzero(group >= 0)
        if linked.size:
            ltp[idx[linked]] = self.levels(ltp)[group[linked]]


def links_from_rows(items: Iterable[Mapping[str, object]], tokens: Iterable[int]) -> dict[int, dict[int, float]]:
    """The ``indices`` argument of the market for instruments-dump rows.

    Index rows (segment 9) named in :data:`~fastflow.sim.universe.INDEX_CONSTITUENTS`
    are linked to the cash-equity rows (NSE/BSE) with the constituents'
    ``tradingsymbol`` (preferring the index's ``exchange``), their weights
    renormalised (by :class:`IndexLinks`) over the constituents present.
    """
    rows = list(zip(items, tokens, strict=True))
    equities: dict[str, list[tuple[int, str]]] = {}
    for row, token in rows:
        if token & 0xFF in CASH_SEGMENTS:
            equities.setdefault(str(row.get("tradingsymbol", "")), []).append((token, str(row.get("exchange", ""))))
    indices: dict[int, dict[int, float]] = {}
    for row, token in rows:
        table = INDEX_CONSTITUENTS.get(str(row.get("tradingsymbol", "")))
        if token & 0xFF != KITE_SEGMENT_INDICES or table is None:
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
    return indices
