"""The WebSocket gateway's fan-out: one published frame of 200 ticks in, one
frame per client of the ticks on its watchlist out.

1,000 clients, each watching 50 random instruments of the 404-instrument
synthetic Kite universe (``fastflow.sim.universe.kite_universe``). The frames
come from the plant's own pipeline (KiteMarket -> KiteDecoder ->
``MarketState.flush().frame()``), 200 instruments each. One timed call takes
``FRAMES`` frames in turn; after each, every client with a change collects its
frame (every client is drained, so each call does the same work). The unit is
a *delivery*: one tick placed in one client's frame (~24,750 per frame).

* fastflow / fastflow-reference: ``FanOut.feed(frame)``, then
  ``FanOut.collect(cid)`` for each of ``FanOut.changed_clients()``.
* python msgpack (the baseline): ``msgpack.unpackb(frame)``, a slot -> tick
  dict, then per client ``msgpack.packb({"type": "ticks", "ticks": [...]})``
  of its ticks in slot order: the same bytes (checked).
"""

from __future__ import annotations

import random
from typing import Any

import msgpack
import pytest

from fastflow import _hotpath as compiled
from fastflow import reference
from fastflow.instruments import Instruments
from fastflow.sim.market import KiteMarket
from fastflow.sim.universe import kite_universe

CLIENTS = 1_000
WATCHLIST = 50
TICKS = 200
FRAMES = 5


@pytest.fixture(scope="module")
def setup() -> dict[str, Any]:
    rows = kite_universe()
    inst = Instruments.from_kite_rows(rows)
    rnd = random.Random(7)
    watchlists = [sorted(rnd.sample(range(len(inst)), WATCHLIST)) for _ in range(CLIENTS)]
    frames: dict[str, list[bytes]] = {}
    for mode in ("full", "ltp"):
        market = KiteMarket.from_rows(rows, seed=3)
        state = compiled.MarketState(inst)
        dec = compiled.KiteDecoder(state)
        frames[mode] = []
        for i in range(FRAMES):
            dec.feed(market.step(TICKS, mode), 1_763_700_000_000_000_000 + i)
            batch = state.flush()
            assert len(batch) == TICKS
            frames[mode].append(batch.frame())
    return {"inst": inst, "watchlists": watchlists, "frames": frames,
            "slots": {str(s): i for i, s in enumerate(inst.symbol)}}


def _fan(module: Any, setup: dict[str, Any]) -> Any:
    fan = module.FanOut(setup["inst"])
    for wl in setup["watchlists"]:
        fan.subscribe(fan.add_client(), wl)
    return fan


def _fastflow_round(fan: Any, frames: list[bytes]) -> list[bytes]:
    out = []
    for frame in frames:
        fan.feed(frame)
        for cid in fan.changed_clients():
            out.append(fan.collect(cid))
    return out


def _naive_round(frames: list[bytes], watchlists: list[list[int]], slots: dict[str, int]) -> list[bytes]:
    out = []
    for frame in frames:
        by_slot = {slots[t["symbol"]]: t for t in msgpack.unpackb(frame)}
        for wl in watchlists:
            ticks = [by_slot[s] for s in wl if s in by_slot]
            if ticks:
                out.append(msgpack.packb({"type": "ticks", "ticks": ticks}))
    return out


@pytest.mark.parametrize("mode", ["full", "ltp"])
@pytest.mark.parametrize("impl", ["fastflow", "fastflow-reference", "python msgpack"])
def bench_fanout(record: Any, setup: dict[str, Any], mode: str, impl: str) -> None:
    frames = setup["frames"][mode]
    watchlists, slots = setup["watchlists"], setup["slots"]
    expected = _naive_round(frames, watchlists, slots)
    deliveries = sum(len(msgpack.unpackb(f)["ticks"]) for f in expected)
    if impl == "python msgpack":
        def fn() -> None:
            _naive_round(frames, watchlists, slots)
    else:
        fan = _fan(compiled if impl == "fastflow" else reference, setup)
        assert _fastflow_round(fan, frames) == expected  # the same bytes
        assert fan.stats()["deliveries"] == deliveries

        def fn() -> None:
            _fastflow_round(fan, frames)
    record("fanout", f"{mode}: {CLIENTS} clients x {WATCHLIST} symbols, {TICKS} ticks/frame", impl,
           deliveries, "deliveries", fn, baseline="python msgpack")
