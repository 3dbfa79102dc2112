"""Redis write throughput, same run, against the embedded redis-server over a
unix socket: ticks/s made durable as latest state + stream + live message.

* fastflow: :class:`~fastflow.store.writer.RedisWriter`, one pipelined write
  per flush (HSET of every changed instrument built in C, XADD and PUBLISH of
  the flush's msgpack array), replies parsed with hiredis, up to 64 flushes in
  flight;
* redis-py pipeline (baseline): what a home-made plant does, three commands
  per tick (HSET latest, XADD, PUBLISH), one pipeline per flush;
* raw socket, pre-packed: the same three commands per tick, packed before the
  clock starts and written on a plain socket, replies read with hiredis: the
  server's ceiling for the per-tick design.

Also reports Redis memory after a long run (the stream is MAXLEN ~ bounded).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import hiredis
import pytest
import redis

from fastflow.hotpath import KiteDecoder, MarketState, TickBatch
from fastflow.instruments import Instruments
from fastflow.sim.market import KiteMarket
from fastflow.sim.universe import kite_universe
from fastflow.store.embedded import EmbeddedRedis
from fastflow.store.keys import Keys
from fastflow.store.resp import command
from fastflow.store.target import RedisTarget
from fastflow.store.writer import RedisWriter

FLUSHES = 50
PER_FLUSH = 200
MAXLEN = 10_000


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as embedded:
        yield embedded


@pytest.fixture(scope="module")
def batches() -> tuple[MarketState, list[TickBatch]]:
    rows = kite_universe()
    market = KiteMarket.from_rows(rows, seed=5)
    state = MarketState(Instruments.from_kite_rows(rows))
    decoder = KiteDecoder(state)
    out = []
    for _ in range(FLUSHES):
        decoder.feed(market.step(PER_FLUSH, "full"))
        out.append(state.flush())
    return state, out


def per_tick_commands(keys: Keys, batch: TickBatch) -> list[tuple[Any, ...]]:
    symbols = batch.symbols()
    return [c for i, symbol in enumerate(symbols) for c in (
        ("HSET", keys.latest, symbol, batch[i]),
        ("XADD", keys.ticks, "MAXLEN", "~", MAXLEN, "*", "t", batch[i]),
        ("PUBLISH", keys.live, batch[i]),
    )]


@pytest.mark.parametrize("impl", ["fastflow writer", "raw socket, pre-packed per tick", "redis-py pipeline"])
def bench_redis_write(record: Any, server: EmbeddedRedis, batches: tuple[MarketState, list[TickBatch]],
                      impl: str) -> None:
    state, flushes = batches
    keys = Keys("bench", prefix=impl.split()[0].replace("-", ""))
    if impl == "fastflow writer":
        loop = asyncio.new_event_loop()
        writer = RedisWriter(state, RedisTarget.parse(server.url), keys, maxlen=MAXLEN, max_in_flight=64)
        task = loop.create_task(writer.run())

        async def connected() -> None:
            while writer.state_name != "connected":
                await asyncio.sleep(0.001)
            await writer.drain()

        loop.run_until_complete(connected())

        async def write_all() -> None:
            for batch in flushes:
                while not writer.ready:
                    await asyncio.sleep(0)
                writer.on_flush(batch)
            await writer.drain()

        def run() -> None:
            loop.run_until_complete(write_all())

        try:
            record("redis write", f"{FLUSHES} flushes x {PER_FLUSH} full ticks, unix socket", impl,
                   FLUSHES * PER_FLUSH, "ticks", run, baseline="redis-py pipeline")
            assert writer.counters["dropped"] == 0 and writer.counters["errors"] == 0
        finally:
            writer.stop()
            loop.run_until_complete(task)
            loop.close()
    elif impl == "redis-py pipeline":
        client = redis.Redis(unix_socket_path=server.unix_socket)
        commands = [per_tick_commands(keys, batch) for batch in flushes]

        def run() -> None:
            for flush in commands:
                pipe = client.pipeline(transaction=False)
                for args in flush:
                    pipe.execute_command(*args)
                pipe.execute()

        record("redis write", f"{FLUSHES} flushes x {PER_FLUSH} full ticks, unix socket", impl,
               FLUSHES * PER_FLUSH, "ticks", run, baseline="redis-py pipeline")
    else:
        packed = [b"".join(command(*args) for args in per_tick_commands(keys, batch)) for batch in flushes]
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(server.unix_socket)
        replies_per_flush = 3 * PER_FLUSH

        def run() -> None:
            reader = hiredis.Reader()
            for payload in packed:
                sock.sendall(payload)
                got = 0
                while got < replies_per_flush:
                    reader.feed(sock.recv(1 << 20))
                    while reader.gets() is not False:
                        got += 1

        try:
            record("redis write", f"{FLUSHES} flushes x {PER_FLUSH} full ticks, unix socket", impl,
                   FLUSHES * PER_FLUSH, "ticks", run, baseline="redis-py pipeline")
        finally:
            sock.close()


def bench_redis_memory_stays_bounded(server: EmbeddedRedis, batches: tuple[MarketState, list[TickBatch]],
                                     benchmark: Any) -> None:
    """Write 40x the stream bound in flushes; the stream stays at MAXLEN ~ entries."""
    state, flushes = batches
    keys = Keys("memory")
    maxlen = 500
    rounds = 40 * maxlen // FLUSHES

    async def main() -> RedisWriter:
        writer = RedisWriter(state, RedisTarget.parse(server.url), keys, maxlen=maxlen, max_in_flight=64)
        task = asyncio.create_task(writer.run())
        while writer.state_name != "connected":
            await asyncio.sleep(0.001)
        for _ in range(rounds):
            for batch in flushes:
                while not writer.ready:
                    await asyncio.sleep(0)
                writer.on_flush(batch)
        await writer.drain()
        writer.stop()
        await task
        return writer

    client = redis.Redis(unix_socket_path=server.unix_socket)
    client.flushall()  # the throughput runs above kept their own streams
    writer = benchmark.pedantic(lambda: asyncio.run(main()), rounds=1, iterations=1)
    length = client.xlen(keys.ticks)
    memory = client.info("memory")["used_memory"]
    benchmark.extra_info.update({"flushes": writer.counters["written"], "stream_entries": length,
                                 "used_memory_mb": round(memory / 2**20, 1)})
    print(f"\nredis memory after {writer.counters['written']:,} flushes of {PER_FLUSH} full ticks "
          f"(stream MAXLEN ~ {maxlen}): {length} stream entries, used_memory {memory / 2**20:.1f} MiB")
    assert writer.counters["written"] == rounds * FLUSHES
    assert length <= maxlen + 100
