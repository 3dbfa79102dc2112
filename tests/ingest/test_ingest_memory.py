"""Memory stays bounded while the plant ingests: full-mode frames at a high rate
from the Kite simulator, through reconnects (drop faults), with the heap
traced by tracemalloc and counted by ``sys.getallocatedblocks``.

Every measurement is taken at a quiet point: the simulator's rate is cut to
zero, and once the session has received a heartbeat (sent only when nothing
else is pending for it, so every earlier message arrived and was decoded) the
heap is measured. No sleeps, no wall-clock assertions: every wait is on a
frame or heartbeat count, with a deadline.

What the bounds catch, over about 3,000 measured frames and 3 reconnects: one
object kept per frame (blocks), about 90 bytes kept per frame, or a
reconnect that keeps its old connection (tens of KB each). Measured here:
under 100 KB and a few hundred blocks, flat after the first checkpoints."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import sys
import tracemalloc

import pytest

from fastflow.brokers.kite.session import KiteIngest
from fastflow.hotpath import IMPLEMENTATION
from fastflow.instruments import Instruments
from fastflow.services.plant import Plant
from fastflow.sim.market import KiteMarket
from fastflow.sim.servers.kite import KiteSimConfig, KiteSimulator
from fastflow.sim.universe import kite_universe

from ..waiting import until

DEADLINE = 20.0
RATE = 100_000.0  # packets/s
TOKENS = 100  # full mode: 100-packet (18 KB) messages, several per interval
WARMUP = 150  # frames, before and after a first reconnect
GROWTH = 20  # then GROWTH x WARMUP more frames
DROPS_AT = (0.25, 0.5, 0.75)  # reconnects at these fractions of the run
BOUND_BYTES = 256 * 1024  # traced heap growth allowed over the baseline
BOUND_BLOCKS = 2_000  # sys.getallocatedblocks() growth allowed



@pytest.mark.skipif(IMPLEMENTATION == "reference", reason="measures the compiled hot path's heap; the reference "
                    "is too slow for this rate under tracemalloc (make test-pure)")
def test_memory_is_bounded_over_many_frames_and_reconnects(monkeypatch: pytest.MonkeyPatch) -> None:
    # pytest keeps every log record of a test, and a reconnect's record holds the
    # exception, its traceback and so the old connection: that would be pytest's
    # memory, not the plant's. The records go to a NullHandler here instead.
    # asyncio's debug mode (make test-debug) logs every slow callback: same story.
    for name in ("fastflow", "asyncio"):
        quiet = logging.getLogger(name)
        monkeypatch.setattr(quiet, "propagate", False)
        monkeypatch.setattr(quiet, "handlers", [logging.NullHandler()])

    async def main() -> list[tuple[int, int, int]]:
        rows = kite_universe()
        sim = KiteSimulator(KiteMarket.from_rows(rows, seed=13), KiteSimConfig(rate=RATE, heartbeat=0.05))
        await sim.start("127.0.0.1", 0)
        instruments = Instruments.from_kite_rows(rows)
        tokens = [int(t) for t in instruments.token[:TOKENS]]
        plant = Plant("kite", instruments, dict.fromkeys(tokens, "full"), ingest_options={
            "api_key": "fastflow", "access_token": "sim-token", "url": f"ws://127.0.0.1:{sim.port}/",
            "watchdog": 2.0, "backoff_base": 0.01, "backoff_cap": 0.02, "rng": random.Random(1),
        })
        plant.add_consumer(lambda batch: batch.frame())  # a consumer that builds the per-flush output
        assert isinstance(plant.ingest, KiteIngest)
        session = plant.ingest.sessions[0]
        task = asyncio.create_task(plant.run())

        def data_frames() -> int:
            return session.counters["frames"] - session.counters["heartbeats"]

        async def frames(n: int) -> None:
            await until(lambda: data_frames() >= n, f"{n} frames")

        async def reconnect() -> None:
            connects = session.counters["connects"]
            assert sim.drop() == 1
            await until(lambda: session.counters["connects"] > connects and session.state == "streaming",
                        "reconnected")

        async def quiet_heap() -> tuple[int, int]:
            sim.config.rate = 1e-9
            await until(lambda: not any(c.pending for c in sim._clients), "simulator idle")
            beats = session.counters["heartbeats"]
            await until(lambda: session.counters["heartbeats"] > beats, "a heartbeat after the last data")
            events = getattr(sim.market, "events", None)  # the simulator's (bounded) log of market events
            if events is not None:
                events.clear()  # is the simulator's memory, not the plant's
            gc.collect()
            heap = tracemalloc.get_traced_memory()[0], sys.getallocatedblocks()
            sim.config.rate = RATE
            return heap

        samples: list[tuple[int, int, int]] = []
        try:
            await frames(WARMUP)
            await reconnect()  # first-time allocations of a reconnect happen in the warm-up
            await frames(2 * WARMUP)
            tracemalloc.start()
            start = data_frames()
            base_bytes, base_blocks = await quiet_heap()
            end = start + GROWTH * WARMUP
            drops = [start + int(f * GROWTH * WARMUP) for f in DROPS_AT]
            checkpoints = sorted({*drops, *range(start, end + 1, 2 * WARMUP), end})
            for checkpoint in checkpoints[1:]:
                await frames(checkpoint)
                if checkpoint in drops:
                    await reconnect()
                heap_bytes, heap_blocks = await quiet_heap()
                samples.append((data_frames(), heap_bytes - base_bytes, heap_blocks - base_blocks))
        finally:
            tracemalloc.stop()
            plant.stop()
            await asyncio.wait_for(task, DEADLINE)
            await sim.stop()
        assert session.counters["connects"] == 2 + len(DROPS_AT)
        assert plant.decoder.stats()["frame_errors"] == 0
        assert data_frames() >= (GROWTH + 2) * WARMUP
        return samples

    # debug=False: asyncio debug mode (make test-debug) keeps a creation traceback per future and
    # task, and its caches grow with them; that is asyncio's bookkeeping, not the plant's memory.
    samples = asyncio.run(main(), debug=False)
    worst_bytes = max(s[1] for s in samples)
    worst_blocks = max(s[2] for s in samples)
    assert worst_bytes < BOUND_BYTES, f"traced heap grew by {worst_bytes} bytes: {samples}"
    assert worst_blocks < BOUND_BLOCKS, f"allocated blocks grew by {worst_blocks}: {samples}"
