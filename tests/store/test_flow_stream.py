"""Options flow in Redis, against a real redis-server: every event of a flush is
one entry of ``ff:{P}:flow`` and the flush's events one message on
``ff:{P}:flowlive``, written in the flush's own pipeline; the stream is
trimmed by time and by bytes; a consumer group reads it; events of flushes
dropped while the writer was full are written later, not lost."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import msgpack
import redis

from fastflow.analytics import flow
from fastflow.config import FlowSection
from fastflow.hotpath import KiteDecoder, MarketState
from fastflow.instruments import Instruments
from fastflow.sim.market import KiteMarket
from fastflow.sim.universe import kite_universe
from fastflow.store.embedded import EmbeddedRedis
from fastflow.store.keys import Keys
from fastflow.store.target import RedisTarget
from fastflow.store.writer import RedisWriter

from ..waiting import DEADLINE, until

#: Thresholds low enough that the simulated market makes events in every few flushes.
LOOSE = FlowSection(premium_floor=0.0, premium_floors=(), z_min_samples=5, voi_min_lots=1, repeat_hits=2,
                    sweep_min_lots=0)


class FlowFeed:
    """The small Kite market through the decoder into a state that detects flow."""

    def __init__(self, seed: int = 2) -> None:
        rows = kite_universe()
        self.market = KiteMarket.from_rows(rows, seed=seed)
        self.state = MarketState(Instruments.from_kite_rows(rows))
        flow.enable(self.state, LOOSE)
        self.decoder = KiteDecoder(self.state)
        self.events: list[dict[str, Any]] = []

    def flush(self) -> Any:
        self.decoder.feed(self.market.step(300, "full"))
        batch = self.state.flush()
        self.events += flow.decode(batch.flow)
        return batch


def run(test: Any, **options: Any) -> None:
    with EmbeddedRedis() as server:
        feed = FlowFeed()
        writer = RedisWriter(feed.state, RedisTarget.parse(f"unix://{server.unix_socket}"), Keys("kite"),
                             rng=random.Random(1), **options)
        client = redis.Redis(unix_socket_path=server.unix_socket)

        async def main() -> None:
            task = asyncio.create_task(writer.run())
            try:
                await until(lambda: writer.state_name == "connected", "connected")
                await test(writer, feed, client)
            finally:
                writer.stop()
                await asyncio.wait_for(task, DEADLINE)

        asyncio.run(main())


async def write_some(writer: RedisWriter, feed: FlowFeed, flushes: int) -> None:
    for _ in range(flushes):
        await until(lambda: writer.ready, "room in the writer")
        writer.on_flush(feed.flush())
    await writer.drain()


def test_every_event_is_one_stream_entry_and_each_flush_one_live_message() -> None:
    async def test(writer: RedisWriter, feed: FlowFeed, client: redis.Redis) -> None:
        keys = writer.keys
        pubsub = client.pubsub()
        pubsub.subscribe(keys.flowlive)
        assert pubsub.get_message(timeout=DEADLINE)["type"] == "subscribe"  # type: ignore[index]
        await write_some(writer, feed, 40)
        assert len(feed.events) > 20, "the market made too few events to test with"
        entries = client.xrange(keys.flow)
        assert [msgpack.unpackb(fields[b"e"]) for _, fields in entries] == feed.events
        assert writer.counters["flow_events"] == len(feed.events) and writer.counters["errors"] == 0
        live: list[dict[str, Any]] = []
        deadline = time.monotonic() + DEADLINE
        while len(live) < len(feed.events) and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.5)
            if message is not None and message["type"] == "message":
                live += msgpack.unpackb(message["data"])
        assert live == feed.events
        pubsub.close()

    run(test)


def test_a_consumer_group_reads_the_flow_stream() -> None:
    async def test(writer: RedisWriter, feed: FlowFeed, client: redis.Redis) -> None:
        keys = writer.keys
        client.xgroup_create(keys.flow, "tape", id="0", mkstream=True)
        await write_some(writer, feed, 30)
        read = client.xreadgroup("tape", "c1", {keys.flow: ">"}, count=100_000)
        [(_, entries)] = read
        assert [msgpack.unpackb(f[b"e"]) for _, f in entries] == feed.events
        assert client.xack(keys.flow, "tape", *[entry_id for entry_id, _ in entries]) == len(entries)
        assert client.xpending(keys.flow, "tape")["pending"] == 0

    run(test)


def test_the_stream_keeps_the_retention_and_the_byte_bound() -> None:
    async def retention(writer: RedisWriter, feed: FlowFeed, client: redis.Redis) -> None:
        await write_some(writer, feed, 40)
        first = client.xlen(writer.keys.flow)
        assert first > 200  # several stream nodes (100 entries each): MINID ~ trims whole nodes
        ended_ms = int(time.time() * 1000)
        await asyncio.sleep(1.5)  # past the retention: every entry so far is older than it
        await write_some(writer, feed, 40)
        ids = [int(entry_id.split(b"-")[0]) for entry_id, _ in client.xrange(writer.keys.flow)]
        kept = sum(1 for ms in ids if ms <= ended_ms)
        assert kept < 100, f"{kept} of the first {first} entries outlived the retention"
        assert len(ids) == len(feed.events) - (first - kept)

    run(retention, flow_retention=1.0)

    async def bytes_bound(writer: RedisWriter, feed: FlowFeed, client: redis.Redis) -> None:
        for _ in range(3):  # the bound is applied once a second, from the mean event size
            await write_some(writer, feed, 30)
            await asyncio.sleep(1.05)
        await write_some(writer, feed, 1)
        size = sum(len(f[b"e"]) for _, f in client.xrange(writer.keys.flow))
        assert size <= 200_000 + 100 * 2_000, size  # MAXLEN ~ keeps up to a node more
        assert client.xlen(writer.keys.flow) < len(feed.events)

    run(bytes_bound, flow_max_bytes=200_000)


def test_events_of_flushes_dropped_while_full_are_written_with_the_next_flush() -> None:
    async def test(writer: RedisWriter, feed: FlowFeed, client: redis.Redis) -> None:
        await write_some(writer, feed, 5)
        writer.max_in_flight = 0  # every flush now finds the writer full
        dropped = [feed.flush() for _ in range(20)]
        for batch in dropped:
            writer.on_flush(batch)
        assert writer.counters["dropped"] == 20 and sum(b.flow_count for b in dropped) > 0
        writer.max_in_flight = 8
        await write_some(writer, feed, 1)
        entries = client.xrange(writer.keys.flow)
        assert [msgpack.unpackb(f[b"e"]) for _, f in entries] == feed.events  # all, in order
        assert writer.counters["flow_dropped"] == 0

    run(test)
