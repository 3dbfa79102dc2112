"""A capture replayed through the plant into Redis at full speed: the whole write path
(decode, flush, HSET + XADD + PUBLISH per flush), with the replay waiting on the
writer's backpressure, so every flush is written and acknowledged.

    .venv/bin/fastflow sim --port 9311 --rate 200000 --duration 12 &
    .venv/bin/fastflow record --url ws://127.0.0.1:9311/ --symbols "$(all symbols)" --duration 5 --out /tmp/cap.ffcap
    .venv/bin/python bench/replay_redis.py /tmp/cap.ffcap

Prints ticks/s from the plant's start to the last acknowledgement (embedded Redis on a
unix socket, uvloop), three times.
"""

from __future__ import annotations

import sys
import time

import uvloop

from fastflow.ingest.capture import CaptureReader
from fastflow.services.plant import Plant
from fastflow.sim.universe import load as load_instruments
from fastflow.store.embedded import EmbeddedRedis
from fastflow.store.keys import Keys
from fastflow.store.target import RedisTarget
from fastflow.store.writer import RedisWriter


def main(path: str) -> None:
    reader = CaptureReader(path)
    instruments = load_instruments(reader.broker, str(reader.header.get("instruments", "")))
    with EmbeddedRedis() as server:
        for _ in range(3):
            plant = Plant(reader.broker, instruments, {}, replay=path)
            writer = RedisWriter(plant.state, RedisTarget.parse(server.url), Keys(reader.broker), maxlen=100_000)
            plant.attach_store(writer, writer.on_flush)
            started = time.perf_counter()
            uvloop.run(plant.run())
            elapsed = time.perf_counter() - started
            n = writer.counters
            print(f"{plant.ticks:,} ticks in {elapsed:.3f} s = {plant.ticks / elapsed:,.0f} ticks/s into Redis; "
                  f"flushes {plant.flushes}, written {n['written']}, acknowledged ticks {writer.tick_age.count:,}, "
                  f"dropped {n['dropped']}")


if __name__ == "__main__":
    main(sys.argv[1])
