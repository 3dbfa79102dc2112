"""Live ingest throughput over loopback, with `fastflow sim` in its own process.

* ``ingest``: the plant (``KiteIngest``: every synthetic instrument split over 3
  connections, full or quote mode -> ``KiteDecoder`` -> one flush per message)
  receiving from ``fastflow sim --rate 2000000`` (far more than it can send:
  the connections' backlog decides), over the small universe (404 instruments)
  and the full one (8,239). One benchmark call waits for
  :data:`PACKETS` more packets to reach the state. The baseline, in the same
  run, is kiteconnect's ``KiteTicker._parse_binary`` over frames received in
  that run (parse only: no network, no state), so the ratio flatters
  kiteconnect.
* ``kite sim``: what the simulator itself sends, measured with 3 receivers
  that only count packets (no decoding), against a timer that runs at exactly
  the 200,000 packets/s target: the ratio is the margin over the target, and a
  simulator below the target fails the benchmark.

Short form (``make test``): a few rounds of 0.1-0.3 s each per case. The
plant's own frames/s and the simulator's packets/s as it counted them go to
each benchmark's ``extra_info``.
"""

from __future__ import annotations

import ast
import asyncio
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from kiteconnect import KiteTicker

from fastflow.brokers.kite.session import KiteIngest
from fastflow.hotpath import TickBatch
from fastflow.instruments import Instruments
from fastflow.services.plant import Plant
from fastflow.sim.universe import kite_universe

PACKETS = 50_000  # per benchmark call
TARGET = 200_000.0  # packets/s the simulator must reach
CONNECTIONS = 3
KEEP_FRAMES = 100  # received frames kept for the kiteconnect baseline
TIMER_PACKETS = 10_000  # per call of the target timer (50 ms)
DEADLINE = 30.0
MODES = ["full", "quote"]

_FRAMES: dict[tuple[str, str], list[bytes]] = {}  # (universe, mode) -> frames the plant received (for kiteconnect)
SIZES = ["small", "full"]  # the synthetic universes: 404 and 8,239 instruments


class Simulator:
    """`fastflow sim` as a subprocess on a free port; stopped with SIGTERM."""

    def __init__(self, rate: float = 2_000_000, universe: str = "small") -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fastflow", "sim", "--port", "0", "--rate", f"{rate:.0f}", "--duration", "600",
             "--universe", universe],
            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        banner = self.process.stdout.readline()
        self.port = int(banner.split("ws://127.0.0.1:")[1].split("/")[0])
        self.url = f"ws://127.0.0.1:{self.port}/"
        self.stats: dict[str, int] = {}

    def stop(self) -> None:
        """SIGTERM, wait, and read the simulator's own counters from its last line."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            out, _ = self.process.communicate(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        for line in out.splitlines():
            if "stopped; " in line:
                self.stats = ast.literal_eval(line.split("stopped; ", 1)[1])


class Counter:
    """Packets counted in one thread, waited for in another."""

    def __init__(self) -> None:
        self.packets = 0
        self.frames = 0
        self.target = math.inf
        self.reached = threading.Event()
        self.first_ns = 0

    def add(self, packets: int) -> None:
        if not self.first_ns:
            self.first_ns = time.perf_counter_ns()
        self.packets += packets
        self.frames += 1
        if self.packets >= self.target:
            self.reached.set()

    def wait_for(self, packets: int) -> None:
        self.target = math.inf
        self.reached.clear()
        self.target = self.packets + packets
        assert self.reached.wait(DEADLINE), f"{packets} packets did not arrive within {DEADLINE} s"


class Background:
    """An asyncio loop in a thread running ``main(self)`` until :meth:`stop`."""

    def __init__(self, main: Callable[[Background], Coroutine[Any, Any, None]]) -> None:
        self.stopping: asyncio.Event | None = None
        self.error: BaseException | None = None
        self.result: Any = None
        self.ready = threading.Event()
        self._main = main
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(DEADLINE), "the background loop did not start"
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        async def run() -> None:
            self.loop = asyncio.get_running_loop()
            self.stopping = asyncio.Event()
            await self._main(self)

        try:
            asyncio.run(run())
        except BaseException as exc:
            self.error = exc
        finally:
            self.ready.set()

    def stop(self) -> None:
        if self.stopping is not None:
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive(), "the background loop did not stop"
        if self.error is not None:
            raise self.error


def _live_plant(sim: Simulator, universe: Instruments, mode: str, counter: Counter, frames: list[bytes]) -> Background:
    """The plant in a background loop: every instrument over 3 connections in
    ``mode``; ``counter`` counts the packets of every flush; ``frames`` keeps
    the first received frames."""
    tokens = [int(t) for t in universe.token]

    def count(batch: TickBatch) -> None:
        counter.add(len(batch))

    def keep(_recv_ns: int, frame: bytes) -> None:
        if len(frames) < KEEP_FRAMES and len(frame) > 1:
            frames.append(frame)

    async def main(bg: Background) -> None:
        plant = Plant("kite", universe, dict.fromkeys(tokens, mode), on_flush=[count], ingest_options={
            "api_key": "fastflow", "access_token": "sim-token", "url": sim.url, "on_frame": keep,
            "tokens_per_connection": -(-len(tokens) // CONNECTIONS), "backoff_base": 0.05, "backoff_cap": 0.2,
        })
        assert isinstance(plant.ingest, KiteIngest) and len(plant.ingest.sessions) == CONNECTIONS
        bg.result = plant
        task = asyncio.create_task(plant.run())
        bg.ready.set()
        assert bg.stopping is not None
        await bg.stopping.wait()
        plant.stop()
        await task

    return Background(main)


@pytest.mark.parametrize("impl", ["fastflow plant (KiteIngest x3)", "kiteconnect _parse_binary"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", SIZES)
def bench_ingest(record: Any, size: str, mode: str, impl: str) -> None:
    universe = Instruments.from_kite_rows(kite_universe(size=size))
    workload = f"{mode}, {len(universe)} instruments over {CONNECTIONS} connections"
    baseline = "kiteconnect _parse_binary"
    if impl == baseline:
        frames = _FRAMES.get((size, mode)) or _receive_frames(universe, size, mode)
        packets = sum(int.from_bytes(f[:2], "big") for f in frames)
        parse = KiteTicker("api_key", "access_token")._parse_binary

        def run() -> None:
            for frame in frames:
                parse(frame)

        record("ingest", workload, impl, packets, "packets", run, baseline=baseline)
        return
    sim = Simulator(universe=size)
    counter = Counter()
    frames: list[bytes] = []
    background = None
    try:
        background = _live_plant(sim, universe, mode, counter, frames)
        counter.wait_for(PACKETS)  # connected and streaming
        started_ns, packets0, frames0 = time.perf_counter_ns(), counter.packets, counter.frames
        record("ingest", workload, impl, PACKETS, "packets", lambda: counter.wait_for(PACKETS), baseline=baseline)
        seconds = (time.perf_counter_ns() - started_ns) / 1e9
        frames1, packets1 = counter.frames, counter.packets
    finally:
        stopped_ns = time.perf_counter_ns()
        if background is not None:
            background.stop()
        sim.stop()
    _FRAMES[(size, mode)] = frames
    info = record.benchmark.extra_info
    info["frames_per_s"] = round((frames1 - frames0) / seconds)
    info["packets_per_frame"] = round((packets1 - packets0) / max(1, frames1 - frames0), 1)
    info["sim_packets_per_s_own_count"] = round(sim.stats.get("packets", 0) / ((stopped_ns - counter.first_ns) / 1e9))
    assert background.result.decoder.stats()["frame_errors"] == 0


def _receive_frames(universe: Instruments, size: str, mode: str) -> list[bytes]:
    """Frames for the kiteconnect baseline when it runs without the plant's case."""
    sim = Simulator(rate=500_000, universe=size)
    frames: list[bytes] = []
    counter = Counter()
    background = None
    try:
        background = _live_plant(sim, universe, mode, counter, frames)
        while len(frames) < KEEP_FRAMES:
            counter.wait_for(1)
    finally:
        sim.stop()
        if background is not None:
            background.stop()
    return frames


# -- the simulator's own rate ----------------------------------------------------------------


async def _count(url: str, tokens: list[int], mode: str, counter: Counter, stopping: asyncio.Event) -> None:
    """A receiver that only counts packets (the u16 at the start of each message)."""
    from websockets.asyncio.client import connect

    async with connect(f"{url}?api_key=fastflow&access_token=sim-token", max_size=2**22, compression=None) as ws:
        await ws.send(json.dumps({"a": "subscribe", "v": tokens}))
        await ws.send(json.dumps({"a": "mode", "v": [mode, tokens]}))
        while not stopping.is_set():
            message = await ws.recv()
            if len(message) > 1 and isinstance(message, bytes):
                counter.add(int.from_bytes(message[:2], "big"))


@pytest.mark.parametrize("impl", ["fastflow sim", "target: 200k packets/s (a timer)"])
@pytest.mark.parametrize("mode", MODES)
def bench_kite_sim(record: Any, mode: str, impl: str) -> None:
    tokens = [int(t) for t in Instruments.from_kite_rows(kite_universe()).token]
    workload = f"{mode}, {len(tokens)} instruments over {CONNECTIONS} connections, receivers only count"
    baseline = "target: 200k packets/s (a timer)"
    if impl.startswith("target"):
        record("kite sim", workload, impl, TIMER_PACKETS, "packets", lambda: time.sleep(TIMER_PACKETS / TARGET),
               baseline=baseline)
        return
    sim = Simulator()
    counter = Counter()
    per_connection = -(-len(tokens) // CONNECTIONS)

    async def main(bg: Background) -> None:
        assert bg.stopping is not None
        receivers = [asyncio.create_task(_count(sim.url, tokens[i : i + per_connection], mode, counter, bg.stopping))
                     for i in range(0, len(tokens), per_connection)]
        bg.ready.set()
        await bg.stopping.wait()
        for receiver in receivers:
            receiver.cancel()
        await asyncio.gather(*receivers, return_exceptions=True)

    background = None
    try:
        background = Background(main)
        counter.wait_for(PACKETS)
        record("kite sim", workload, impl, PACKETS, "packets", lambda: counter.wait_for(PACKETS), baseline=baseline)
    finally:
        sim.stop()
        if background is not None:
            background.stop()
    stats = record.benchmark.stats
    if stats is not None:
        rate = PACKETS / stats.stats.median
        record.benchmark.extra_info["vs_200k_target"] = round(rate / TARGET, 2)
        assert rate >= TARGET, f"the simulator sent {rate:,.0f} packets/s, under the {TARGET:,.0f} target"
