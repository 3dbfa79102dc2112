"""Replay throughput: a capture file of Kite frames driven through the hot
path at max speed (read, checksum, decode, flush per frame), against
kiteconnect's parser over the same frames, in the same run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kiteconnect import KiteTicker

from fastflow.hotpath import MarketState
from fastflow.ingest.capture import CaptureReader, CaptureWriter
from fastflow.ingest.replay import replay
from fastflow.instruments import Instruments
from fastflow.sim.market import KiteMarket
from fastflow.sim.universe import kite_universe

FRAMES = 200
PER_FRAME = 200


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = kite_universe()
    market = KiteMarket.from_rows(rows, seed=11)
    path = tmp_path_factory.mktemp("replay") / "bench.ffcap"
    with CaptureWriter(path, broker="kite", instruments="synthetic") as writer:
        for i in range(FRAMES):
            writer.append(1_763_700_000_000_000_000 + i * 1_000_000, market.step(PER_FRAME, "full"))
    return path


@pytest.mark.parametrize("impl", ["fastflow replay", "kiteconnect"])
def bench_replay(record: Any, capture: Path, impl: str) -> None:
    if impl == "fastflow replay":
        instruments = Instruments.from_kite_rows(kite_universe())

        def run() -> None:
            result = replay(capture, MarketState(instruments))
            assert result.updates == FRAMES * PER_FRAME
    else:
        parse = KiteTicker("api_key", "access_token")._parse_binary

        def run() -> None:
            for _, payload in CaptureReader(capture):
                parse(payload)

    record("replay", f"{FRAMES} full frames x {PER_FRAME} packets from a capture file", impl,
           FRAMES * PER_FRAME, "packets", run, baseline="kiteconnect")
