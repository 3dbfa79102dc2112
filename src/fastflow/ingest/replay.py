"""Drive the hot path from a capture file: the one replay loop.

:class:`ReplayIngest` is a capture as an ingest (``fastflow plant --replay``):
frames go through the same decoder as live ones, with their recorded receive
times, one flush per frame, inside the event loop (so /healthz answers and
``stop()`` works). :func:`replay` runs the same loop to the end and returns
counts (``fastflow replay``, tests, benchmarks): a replay reproduces the live
run's final state exactly. ``speed`` None replays as fast as possible (how
throughput is measured without a network); otherwise the recorded gaps are
slept, divided by ``speed``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from fastflow.hotpath import FrameError, KiteDecoder, MarketState, TickBatch, UpstoxDecoder
from fastflow.ingest.capture import CaptureReader
from fastflow.obs.state import State

Decoder = KiteDecoder | UpstoxDecoder
#: What :meth:`ReplayIngest._frames` yields while the store is busy.
BUSY: float = -1.0


@dataclasses.dataclass
class ReplayResult:
    frames: int = 0
    updates: int = 0
    frame_errors: int = 0
    flushes: int = 0
    seconds: float = 0.0
    torn_tail: int | None = None


class ReplayIngest:
    """A capture file as an ingest. State: ``idle``, ``streaming`` while frames
    flow, then ``finished`` (or ``stopped``)."""

    YIELD_EVERY = 256  # frames between yields to the event loop at full speed

    def __init__(
        self,
        decoder: Decoder,
        path: str | os.PathLike[str],
        *,
        speed: float | None = None,
        on_flush: Callable[[TickBatch], None] | None = None,
    ) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.decoder = decoder
        self.path = os.fspath(path)
        self.reader = CaptureReader(self.path)
        if self.reader.broker != decoder.state.broker:
            raise ValueError(f"a {self.reader.broker} capture cannot drive a {decoder.state.broker} state")
        self.speed = speed
        self.on_flush = on_flush
        #: With a store attached (:meth:`wait_for`): True while it cannot take another
        #: flush, and how to wait until it can (the replay waits instead of making the
        #: store drop: a replay has all the time it needs).
        self.busy: Callable[[], bool] | None = None
        self._writable: Callable[[], Awaitable[None]] | None = None
        self.state = State.IDLE
        self.last_frame_ns = 0
        self.result = ReplayResult()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    def wait_for(self, busy: Callable[[], bool], writable: Callable[[], Awaitable[None]]) -> None:
        """Before each frame, while ``busy()``, await ``writable()`` (or :meth:`stop`)."""
        self.busy, self._writable = busy, writable

    def health(self) -> dict[str, Any]:
        age = None if not self.last_frame_ns else (time.time_ns() - self.last_frame_ns) / 1e9
        result = self.result
        connection = {"state": self.state, "source": self.path, "last_frame_age_s": age,
                      "torn_tail": self.reader.torn_tail, "frames": result.frames,
                      "frame_errors": result.frame_errors, "flushes": result.flushes}
        return {"state": self.state, "connections": [connection]}

    def _frames(self) -> Iterator[float]:
        """The one replay loop, without I/O: feeds each frame and flushes. Before a
        frame it yields how long its driver must wait first: the seconds until the
        frame is due (``speed`` set), ``0.0`` every :attr:`YIELD_EVERY` frames at
        full speed (a turn of the event loop), :data:`BUSY` while the attached store
        cannot take another flush. It returns when the capture ends."""
        result = self.result
        state = self.decoder.state
        feed = self.decoder.feed
        clock = time.monotonic
        started = clock()
        first_ns = 0
        try:
            for recv_ns, payload in self.reader:
                if self.speed is not None:
                    first_ns = first_ns or recv_ns
                    due = (recv_ns - first_ns) / 1e9 / self.speed - (clock() - started)
                    if due > 0:
                        yield due
                elif result.frames % self.YIELD_EVERY == 0:
                    yield 0.0
                busy = self.busy
                while busy is not None and busy():
                    yield BUSY
                result.frames += 1
                self.last_frame_ns = time.time_ns()
                try:
                    result.updates += feed(payload, recv_ns)
                except FrameError:
                    result.frame_errors += 1
                    continue
                if state.dirty_count:
                    result.flushes += 1
                    batch = state.flush()
                    if self.on_flush is not None:
                        self.on_flush(batch)
        finally:
            result.seconds = clock() - started
            result.torn_tail = self.reader.torn_tail

    async def run(self) -> None:
        """Replay on the event loop until the capture ends or :meth:`stop`."""
        self.state = State.STREAMING
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            for wait in self._frames():
                if self._stop.is_set():
                    break
                await self._wait(wait, stopped)
        finally:
            stopped.cancel()
        self.state = State.STOPPED if self._stop.is_set() else State.FINISHED

    async def _wait(self, wait: float, stopped: asyncio.Future[Any]) -> None:
        """What a yield of :meth:`_frames` asks: the store to become writable, a due time, a turn."""
        if wait < 0:  # BUSY
            assert self._writable is not None
            writable = asyncio.ensure_future(self._writable())
            await asyncio.wait({writable, stopped}, return_when=asyncio.FIRST_COMPLETED)
            writable.cancel()
        elif wait > 0:
            await asyncio.wait({stopped}, timeout=wait)
        else:
            await asyncio.sleep(0)

    def run_blocking(self) -> ReplayResult:
        """Replay in this thread, sleeping the recorded gaps (no event loop, no store)."""
        self.state = State.STREAMING
        for wait in self._frames():
            if wait:
                time.sleep(wait if wait > 0 else 0.001)
        self.state = State.FINISHED
        return self.result


def replay(
    path: str | os.PathLike[str],
    state: MarketState,
    *,
    speed: float | None = None,
    on_flush: Callable[[TickBatch], None] | None = None,
    decoder: Decoder | None = None,
) -> ReplayResult:
    """Replay ``path`` into ``state`` to the end, in this thread (``decoder``: the
    state's broker's, from the broker registry, unless given)."""
    if decoder is None:
        from fastflow.brokers import get

        decoder = get(state.broker).decoder(state)
    return ReplayIngest(decoder, path, speed=speed, on_flush=on_flush).run_blocking()
