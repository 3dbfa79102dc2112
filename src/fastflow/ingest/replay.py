"""Drive the hot path from a capture file (``fastflow replay``).

Frames go through the same decoder as live ones, with their recorded receive
times, so a replay reproduces the live run's final state exactly. ``speed``
None replays as fast as possible (how throughput is measured without a
network); otherwise the recorded gaps are slept, divided by ``speed``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable

from fastflow.hotpath import FrameError, KiteDecoder, MarketState, TickBatch, UpstoxDecoder
from fastflow.ingest.capture import CaptureReader
from fastflow.instruments import Instruments


@dataclasses.dataclass
class ReplayResult:
    frames: int = 0
    updates: int = 0
    frame_errors: int = 0
    flushes: int = 0
    seconds: float = 0.0
    torn_tail: int | None = None


def load_instruments(broker: str, source: str) -> Instruments:
    """The instrument master a capture names: a file path, or ``synthetic``
    (the built-in universe, as ``fastflow sim`` serves it)."""
    if source in ("", "synthetic"):
        from fastflow.sim.universe import kite_universe, upstox_universe

        rows = kite_universe() if broker == "kite" else upstox_universe()
        return Instruments.from_kite_rows(rows) if broker == "kite" else Instruments.from_upstox_rows(rows)
    return Instruments.from_kite_csv(source) if broker == "kite" else Instruments.from_upstox(source)


def replay(
    path: str | os.PathLike[str],
    state: MarketState,
    *,
    speed: float | None = None,
    on_flush: Callable[[TickBatch], None] | None = None,
) -> ReplayResult:
    reader = CaptureReader(path)
    if reader.broker != state.broker:
        raise ValueError(f"a {reader.broker} capture cannot drive a {state.broker} state")
    decoder: KiteDecoder | UpstoxDecoder = KiteDecoder(state) if state.broker == "kite" else UpstoxDecoder(state)
    result = ReplayResult()
    started = time.perf_counter()
    first_ns = 0
    for recv_ns, payload in reader:
        if speed is not None:
            if not first_ns:
                first_ns = recv_ns
            due = (recv_ns - first_ns) / 1e9 / speed - (time.perf_counter() - started)
            if due > 0:
                time.sleep(due)
        result.frames += 1
        try:
            result.updates += decoder.feed(payload, recv_ns)
        except FrameError:
            result.frame_errors += 1
            continue
        if state.dirty_count:
            batch = state.flush()
            result.flushes += 1
            if on_flush is not None:
                on_flush(batch)
    result.seconds = time.perf_counter() - started
    result.torn_tail = reader.torn_tail
    return result
