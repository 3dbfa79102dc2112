"""Injected events: block orders, sweeps and option-chain bursts.

Unless events are off, every step (each :meth:`~fastflow.sim.market.model.KiteMarket.step`,
``step_tokens`` or ``advance`` call) independently draws, among the
instruments it steps, with probabilities per second of market time (a step
one second after the previous one uses them as they are, a step 50 ms after
it a twentieth of them):

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
  one chain (same exchange, underlying ``name`` and ``expiry``) each trade
  ``lot x`` :data:`BURST_LOTS` at their touch, all on one side. ``step`` puts
  the legs into its message (replacing random picks, :meth:`EventInjector.step_legs`);
  ``step_tokens`` / ``advance`` use only chosen positions of one chain, and
  only if at least :data:`BURST_MIN_LEGS` of it are chosen.

An event trade replaces the instrument's random move of that step (as
:class:`Trades`) and is logged as a :class:`MarketEvent` in
:attr:`EventInjector.log`, the latest :data:`EVENT_LOG_SIZE`. The
probabilities are read when a step draws, so tests may patch them here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from fastflow.sim.market.book import Book
from fastflow.sim.market.listing import CASH_SEGMENTS, Listing

IntArray = npt.NDArray[np.int64]

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
#: A burst in ``KiteMarket.step`` has this many legs (inclusive range, capped by the chain and ``n``).
BURST_LEGS = (5, 20)
#: Fewest legs of a burst (the chain's chosen positions in ``step_tokens``/``advance``).
BURST_MIN_LEGS = 3
#: Each burst leg trades ``lot x`` this many lots (inclusive range).
BURST_LOTS = (40, 400)
#: Length of the event log (older events are dropped).
EVENT_LOG_SIZE = 10_000

EventKind = Literal["block", "sweep", "burst"]
Side = Literal["buy", "sell"]
#: Which event kinds a step draws: (block, sweep, burst).
Roll = tuple[bool, bool, bool]

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


class Trades(NamedTuple):
    """The event trades of one step: rows of the stepped positions, raw prices, quantities."""

    rows: IntArray
    prices: IntArray
    quantities: IntArray


NO_TRADES = Trades(_EMPTY, _EMPTY, _EMPTY)


def chains_from_rows(items: Iterable[Mapping[str, object]], tokens: Iterable[int]) -> list[list[int]]:
    """Option chains of instruments-dump rows: CE/PE tokens (not cash equities)
    grouped by ``(exchange, name, expiry)``."""
    chains: dict[tuple[str, str, str], list[int]] = {}
    for row, token in zip(items, tokens, strict=True):
        if token & 0xFF not in CASH_SEGMENTS and row.get("instrument_type") in ("CE", "PE"):
            key = (str(row.get("exchange", "")), str(row.get("name", "")), str(row.get("expiry", "")))
            chains.setdefault(key, []).append(token)
    return list(chains.values())


class EventInjector:
    """Draws, plans and logs the events of each step (module docstring).

    ``chains`` are groups of tradable tokens (each token in at most one group),
    the candidates for bursts; ``enabled=False`` makes every step event-free
    and draws nothing. Raises ``ValueError`` for invalid chains.
    """

    def __init__(self, listing: Listing, chains: Iterable[Iterable[int]], enabled: bool) -> None:
        self.enabled = bool(enabled)
        self.log: deque[MarketEvent] = deque(maxlen=EVENT_LOG_SIZE)
        self._listing = listing
        # chain_of maps a position to its chain (-1: none); burst_chains holds the
        # positions of every chain with at least BURST_MIN_LEGS legs.
        self._chain_of: IntArray = np.full(listing.size, -1, np.int64)
        self._burst_chains: list[IntArray] = []
        count = 0
        for chain in chains:
            legs = [listing.position(t, "chain token") for t in chain]
            if not legs:
                continue
            pos = np.array(legs, np.int64)
            if np.any(listing.is_index[pos]):
                raise ValueError("chains must hold tradable tokens, not indices")
            if np.unique(pos).size != pos.size or np.any(self._chain_of[pos] >= 0):
                raise ValueError("a token belongs to at most one chain, once")
            self._chain_of[pos] = count
            count += 1
            if pos.size >= BURST_MIN_LEGS:
                self._burst_chains.append(np.sort(pos))

    def roll(self, rng: np.random.Generator, seconds: float = 1.0) -> Roll | None:
        """Which event kinds this step injects (``None``: none, or events are off).
        The probabilities are per second of market time: a step over ``seconds``
        (the time since the previous step, at most 1) scales them."""
        if not self.enabled:
            return None
        u = rng.random(3)
        scale = min(max(seconds, 0.0), 1.0)
        roll = (bool(u[0] < BLOCK_PROBABILITY * scale), bool(u[1] < SWEEP_PROBABILITY * scale),
                bool(u[2] < BURST_PROBABILITY * scale))
        return roll if any(roll) else None

    def step_legs(self, roll: Roll | None, n: int, rng: np.random.Generator) -> IntArray | None:
        """The positions of the burst legs a ``step`` of ``n`` instruments puts
        into its message (``None``: no burst this step)."""
        if roll is None or not roll[2] or not self._burst_chains:
            return None
        chain = self._burst_chains[int(rng.integers(len(self._burst_chains)))]
        count = min(int(rng.integers(BURST_LEGS[0], BURST_LEGS[1] + 1)), chain.size, n)
        if count < BURST_MIN_LEGS:
            return None
        legs: IntArray = rng.choice(chain, size=count, replace=False).astype(np.int64)
        return legs

    def plan(
        self,
        idx: IntArray,
        roll: Roll,
        burst_rows: IntArray | None,
        rng: np.random.Generator,
        book: Book,
        clock: int,
    ) -> Trades:
        """Choose and log the events of ``roll`` among positions ``idx``.

        ``burst_rows`` are the rows of ``idx`` a ``step`` burst trades (else a
        burst picks chosen positions of one chain). Returns the rows of
        ``idx`` that print an event trade, with their raw prices and
        quantities. Prices come from the books before the step (the touch, or
        the swept level), always inside the band. Loops run per event, never
        per instrument.
        """
        listing = self._listing
        rows: list[IntArray] = []
        prices: list[IntArray] = []
        quantities: list[IntArray] = []
        taken = _EMPTY
        block, sweep, burst = roll
        if burst:
            legs = self._chosen_legs(idx, rng) if burst_rows is None else burst_rows
            if legs.size >= BURST_MIN_LEGS:
                pos = idx[legs]
                buy = bool(rng.random() < 0.5)
                price = self._touch(pos, buy, book)
                qty = listing.lot[pos] * rng.integers(BURST_LOTS[0], BURST_LOTS[1] + 1, legs.size)
                self._log("burst", clock, pos, qty, price, buy)
                rows.append(legs)
                prices.append(price)
                quantities.append(qty)
                taken = legs
        if block or sweep:
            candidates = np.flatnonzero(~listing.is_index[idx])
            if taken.size:
                candidates = np.setdiff1d(candidates, taken, assume_unique=True)
            if sweep and candidates.size:
                pick = int(rng.integers(candidates.size))
                row = int(candidates[pick])
                candidates = np.delete(candidates, pick)
                p = int(idx[row])
                buy = bool(rng.random() < 0.5)
                wanted = int(rng.integers(SWEEP_LEVELS[0], SWEEP_LEVELS[1] + 1))
                level_px, level_qty = book.side(p, buy)
                if buy:
                    inside = int(np.count_nonzero(level_px <= listing.hi_band[p]))
                else:
                    inside = int(np.count_nonzero(level_px >= listing.lo_band[p]))
                levels = min(wanted, inside)  # the levels are monotone: the inside ones lead
                if levels >= 2:
                    price = level_px[levels - 1 : levels].copy()
                    qty = np.array([level_qty[:levels].sum()], np.int64)
                    self._log("sweep", clock, idx[row : row + 1], qty, price, buy, levels)
                    rows.append(np.array([row], np.int64))
                    prices.append(price)
                    quantities.append(qty)
            if block and candidates.size:
                row = int(candidates[int(rng.integers(candidates.size))])
                pos = idx[row : row + 1]
                buy = bool(rng.random() < 0.5)
                price = self._touch(pos, buy, book)
                qty = listing.lot[pos] * rng.integers(BLOCK_LOTS[0], BLOCK_LOTS[1] + 1, 1)
                self._log("block", clock, pos, qty, price, buy)
                rows.append(np.array([row], np.int64))
                prices.append(price)
                quantities.append(qty)
        if not rows:
            return NO_TRADES
        return Trades(np.concatenate(rows), np.concatenate(prices), np.concatenate(quantities))

    def _chosen_legs(self, idx: IntArray, rng: np.random.Generator) -> IntArray:
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
        chosen = eligible[int(rng.integers(eligible.size))]
        rows = members[chain[members] == chosen]
        count = min(int(rng.integers(BURST_LEGS[0], BURST_LEGS[1] + 1)), rows.size)
        picked: IntArray = np.sort(rng.choice(rows, size=count, replace=False)).astype(np.int64)
        return picked

    def _touch(self, pos: IntArray, buy: bool, book: Book) -> IntArray:
        """The touch of positions ``pos`` (:meth:`Book.touch`), clipped into the band."""
        clipped: IntArray = np.clip(book.touch(pos, buy), self._listing.lo_band[pos], self._listing.hi_band[pos])
        return clipped

    def _log(
        self, kind: EventKind, clock: int, pos: IntArray, qty: IntArray, price: IntArray, buy: bool, levels: int = 0
    ) -> None:
        self.log.append(
            MarketEvent(
                kind=kind,
                time=clock,
                tokens=tuple(int(t) for t in self._listing.tokens[pos]),
                quantities=tuple(int(q) for q in qty),
                prices=tuple(int(p) for p in price),
                side="buy" if buy else "sell",
                levels=levels,
            )
        )
