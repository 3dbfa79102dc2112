"""Capture files: record from the simulator, replay to the same state; torn
tails are detected and ignored; corruption and foreign files are refused."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from fastflow.brokers.kite.session import KiteSession
from fastflow.hotpath import KiteDecoder, MarketState
from fastflow.ingest.capture import CaptureError, CaptureReader, CaptureWriter
from fastflow.ingest.replay import replay
from fastflow.instruments import Instruments
from fastflow.sim.market import KiteMarket
from fastflow.sim.servers.kite import KiteSimConfig, KiteSimulator
from fastflow.sim.universe import kite_universe

DEADLINE = 10.0


def record_live(path: Path, frames: int) -> MarketState:
    """Run a live session against the simulator, recording every frame, until
    ``frames`` frames arrived; return the live state."""

    async def main() -> MarketState:
        rows = kite_universe()
        sim = KiteSimulator(KiteMarket.from_rows(rows, seed=5), KiteSimConfig(rate=5_000, heartbeat=0.1))
        await sim.start("127.0.0.1", 0)
        state = MarketState(Instruments.from_kite_rows(rows))
        writer = CaptureWriter(path, broker="kite", instruments="synthetic")
        tokens = [int(t) for t in state.instruments.token[:120]]
        session = KiteSession(
            KiteDecoder(state), api_key="fastflow", access_token="sim-token", url=f"ws://127.0.0.1:{sim.port}/",
            subscriptions={t: ("full", "quote", "ltp")[i % 3] for i, t in enumerate(tokens)},
            on_frame=writer.append, rng=random.Random(1),
        )
        task = asyncio.create_task(session.run())
        async with asyncio.timeout(DEADLINE):
            while writer.records < frames:
                await asyncio.sleep(0.01)
        session.stop()
        await task
        writer.close()
        await sim.stop()
        return state

    return asyncio.run(main())


def test_record_then_replay_reproduces_the_live_state(tmp_path: Path) -> None:
    path = tmp_path / "kite.ffcap"
    live = record_live(path, frames=40)
    reader = CaptureReader(path)
    assert reader.broker == "kite" and reader.header["instruments"] == "synthetic"
    records = list(reader)
    assert len(records) >= 40 and reader.torn_tail is None
    replayed = MarketState(Instruments.from_kite_rows(kite_universe()))
    result = replay(path, replayed)
    assert result.frames == len(records) and result.frame_errors == 0 and result.updates > 0
    assert replayed.array.tobytes() == live.array.tobytes()  # receive times included


def test_torn_tail_is_detected_and_ignored(tmp_path: Path) -> None:
    path = tmp_path / "torn.ffcap"
    with CaptureWriter(path, broker="kite") as writer:
        for i in range(5):
            writer.append(1_000 + i, bytes([i]) * (10 + i))
    whole = path.read_bytes()
    ends = []
    for _, payload in CaptureReader(path):
        ends.append(len(payload))
    for cut in range(len(whole) - 29, len(whole)):  # every cut inside the last (30-byte) record
        path.write_bytes(whole[:cut])
        reader = CaptureReader(path)
        got = list(reader)
        assert [p for _, p in got] == [bytes([i]) * (10 + i) for i in range(4)]
        assert reader.torn_tail is not None
    path.write_bytes(whole[:-1] + bytes([whole[-1] ^ 0xFF]))  # a torn write of the last byte
    reader = CaptureReader(path)
    assert len(list(reader)) == 4 and reader.torn_tail is not None


def test_corruption_and_foreign_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.ffcap"
    with CaptureWriter(path, broker="kite") as writer:
        for i in range(3):
            writer.append(i + 1, b"x" * 20)
    data = bytearray(path.read_bytes())
    data[-45] ^= 0x01  # inside the second record's payload
    path.write_bytes(bytes(data))
    with pytest.raises(CaptureError, match="checksum"):
        list(CaptureReader(path))
    other = tmp_path / "not.ffcap"
    other.write_bytes(b"hello world, not a capture")
    with pytest.raises(CaptureError, match="magic"):
        CaptureReader(other)
    CaptureWriter(tmp_path / "c2.ffcap", broker="kite").close()
    with pytest.raises(CaptureError, match="cannot append"):
        CaptureWriter(tmp_path / "c2.ffcap", broker="upstox")


def test_record_and_replay_commands(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    sim = subprocess.Popen([sys.executable, "-m", "fastflow", "sim", "--rate", "3000", "--duration", "60"],
                           stdout=subprocess.PIPE, text=True, env=env)
    out = tmp_path / "cli.ffcap"
    try:
        assert sim.stdout is not None
        port = int(sim.stdout.readline().split("ws://127.0.0.1:")[1].split("/")[0])
        record = subprocess.run(
            [sys.executable, "-m", "fastflow", "record", "--out", str(out), "--url", f"ws://127.0.0.1:{port}/",
             "--duration", "1.5"], capture_output=True, text=True, timeout=60, env=env)
    finally:
        sim.terminate()
        sim.wait(timeout=30)
    assert record.returncode == 0, record.stderr
    assert "frames to" in record.stdout
    result = subprocess.run(
        [sys.executable, "-m", "fastflow", "replay", str(out), "--watch", "NSE:INFY"],
        capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert "replayed" in result.stdout and "frame errors 0" in result.stdout
    assert "NSE:INFY: last_price" in result.stdout and "mode full" in result.stdout
    bad = subprocess.run([sys.executable, "-m", "fastflow", "replay", str(tmp_path / "missing.ffcap")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "fastflow replay:" in bad.stderr
