"""The plant's Redis write path against real redis-server processes: every
flush lands (latest hash, stream entry, live message), backpressure drops
stream entries but never the latest state, a Redis restart is survived with
the latest state complete, the stream stays bounded, AUTH works."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack
import pytest
import redis

from fastflow.hotpath import KiteDecoder, MarketState
from fastflow.instruments import Instruments
from fastflow.obs import metrics
from fastflow.sim.market import KiteMarket
from fastflow.sim.universe import kite_universe
from fastflow.store.embedded import EmbeddedRedis
from fastflow.store.keys import Keys
from fastflow.store.target import RedisTarget
from fastflow.store.writer import RedisWriter

from ..waiting import until

DEADLINE = 10.0


def where(server: EmbeddedRedis, password: str | None = None) -> RedisTarget:
    return RedisTarget.parse(f"unix://{server.unix_socket}" + (f"?password={password}" if password else ""))



async def write(writer: RedisWriter, batch: Any) -> None:
    """Hand ``batch`` over once the writer has room (so nothing is dropped)."""
    await until(lambda: writer.ready, "room in the writer")
    writer.on_flush(batch)


class Feed:
    """A Kite market through the real decoder into a state."""

    def __init__(self, seed: int = 1) -> None:
        rows = kite_universe()
        self.market = KiteMarket.from_rows(rows, seed=seed)
        self.state = MarketState(Instruments.from_kite_rows(rows))
        self.decoder = KiteDecoder(self.state)

    def flush(self, packets: int = 50) -> Any:
        self.decoder.feed(self.market.step(packets, "full"))
        return self.state.flush()

    def expected_latest(self) -> dict[bytes, bytes]:
        snapshot = self.state.snapshot()
        return {symbol.encode(): snapshot[i] for i, symbol in enumerate(snapshot.symbols())}


def with_writer(test: Callable[[EmbeddedRedis, RedisWriter, Feed, redis.Redis], Awaitable[None]],
                server_options: dict[str, Any] | None = None, **options: Any) -> None:
    server_options = dict(server_options or {})
    password = server_options.pop("password", None)
    with EmbeddedRedis(**server_options) as server:
        feed = Feed()
        keys = Keys("kite")
        writer = RedisWriter(feed.state, where(server, password), keys, rng=random.Random(1), **options)
        client = redis.Redis(unix_socket_path=server.unix_socket, password=password)

        async def main() -> None:
            task = asyncio.create_task(writer.run())
            try:
                await until(lambda: writer.state_name == "connected", "connected")
                await test(server, writer, feed, client)
            finally:
                writer.stop()
                await asyncio.wait_for(task, DEADLINE)
            assert writer.state_name == "stopped"

        asyncio.run(main())


def test_every_flush_lands_in_latest_stream_and_live() -> None:
    async def test(server: EmbeddedRedis, writer: RedisWriter, feed: Feed, client: redis.Redis) -> None:
        keys = writer.keys
        pubsub = client.pubsub()
        pubsub.subscribe(keys.live)
        assert pubsub.get_message(timeout=DEADLINE)["type"] == "subscribe"  # type: ignore[index]
        for _ in range(40):
            await write(writer, feed.flush())
        await writer.drain()
        assert writer.counters["written"] == 40 and writer.counters["dropped"] == 0
        assert client.hgetall(keys.latest) == feed.expected_latest()
        assert 0 < client.ttl(keys.latest) <= 86_400
        entries = client.xrange(keys.ticks)
        assert len(entries) == 40
        last = msgpack.unpackb(entries[-1][1][b"t"])
        assert isinstance(last, list) and len(last) == 50 and all("symbol" in t for t in last)
        messages = []
        while len(messages) < 40:
            message = await asyncio.to_thread(pubsub.get_message, timeout=DEADLINE)
            assert message is not None, "live messages missing"
            messages.append(message["data"])
        assert messages[-1] == entries[-1][1][b"t"]
        assert client.hlen(keys.instruments) == len(feed.state)
        infy = msgpack.unpackb(client.hget(keys.instruments, "NSE:INFY"))
        assert infy["tradingsymbol"] == "INFY"
        assert client.hget(keys.ids, "408065") == b"NSE:INFY"
        assert client.hget(keys.meta, "broker") == b"kite"

    with_writer(test)


def test_a_full_writer_drops_stream_entries_but_the_latest_state_converges() -> None:
    async def test(server: EmbeddedRedis, writer: RedisWriter, feed: Feed, client: redis.Redis) -> None:
        for _ in range(200):  # no yielding: replies cannot come back, the writer fills up
            writer.on_flush(feed.flush(20))
        assert writer.counters["dropped"] > 150
        await writer.drain()
        assert client.hgetall(writer.keys.latest) == feed.expected_latest()
        assert client.xlen(writer.keys.ticks) == writer.counters["written"]

    with_writer(test, max_in_flight=2)


def test_the_stream_stays_bounded() -> None:
    async def test(server: EmbeddedRedis, writer: RedisWriter, feed: Feed, client: redis.Redis) -> None:
        for _ in range(1500):
            await write(writer, feed.flush(5))
        await writer.drain()
        assert writer.counters["written"] == 1500
        assert 100 <= client.xlen(writer.keys.ticks) <= 100 + 100  # MAXLEN ~ trims whole nodes of 100

    with_writer(test, maxlen=100)


def test_the_stream_is_bounded_in_bytes_when_flushes_are_big() -> None:
    """At 1,000 entries the stream held 2.3 GB with 3,000 instruments a flush: the
    bound is in bytes too (here 1 MB of ~35 KB flushes)."""

    async def test(server: EmbeddedRedis, writer: RedisWriter, feed: Feed, client: redis.Redis) -> None:
        for _ in range(300):
            await write(writer, feed.flush(50))
        await writer.drain()
        sizes = [len(fields[b"t"]) for _, fields in client.xrange(writer.keys.ticks)]
        assert 10 <= writer.entries < 100 and writer.health()["stream_entries"] == writer.entries
        assert len(sizes) <= writer.entries + 2  # a big entry fills a stream node: ~ trims close to exact
        assert sum(sizes) <= 1_000_000 * 1.1, (len(sizes), sum(sizes))

    with_writer(test, maxlen=1_000, max_bytes=1_000_000)


def test_a_full_redis_is_reported_and_survived() -> None:
    """maxmemory 4 MB with noeviction (as the embedded Redis runs): writes get OOM;
    the writer says full, trims the stream, and once writes succeed again the
    latest hash is the exact state. Nothing was evicted."""

    async def test(server: EmbeddedRedis, writer: RedisWriter, feed: Feed, client: redis.Redis) -> None:
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        was_full = False
        for _ in range(150):
            await write(writer, feed.flush(100))
            was_full = was_full or writer.full
        assert was_full and writer.counters["oom"] > 0 and writer.entries < 1_000
        for _ in range(5):
            await write(writer, feed.flush(5))
        await writer.drain()
        await until(lambda: not writer.full, "writes accepted again")
        assert client.hgetall(writer.keys.latest) == feed.expected_latest()
        assert client.info("stats")["evicted_keys"] == 0
        assert "fastflow_redis_full 0" in metrics.render(writer.metrics()).decode()

    with_writer(test, server_options={"maxmemory": "4mb"}, maxlen=100_000, max_bytes=10**9)


def test_a_redis_restart_is_survived_with_the_latest_state_complete() -> None:
    async def test(server: EmbeddedRedis, writer: RedisWriter, feed: Feed, client: redis.Redis) -> None:
        for _ in range(10):
            await write(writer, feed.flush())
        await writer.drain()
        server.kill()  # a crash: the data is gone (no persistence)
        await until(lambda: writer.state_name != "connected", "connection loss noticed")
        for _ in range(10):  # the feed goes on while Redis is away
            writer.on_flush(feed.flush())
            await asyncio.sleep(0)
        assert writer.counters["dropped"] >= 10
        server.restart()
        await until(lambda: writer.state_name == "connected", "reconnected")
        writer.on_flush(feed.flush())
        await writer.drain()
        fresh = redis.Redis(unix_socket_path=server.unix_socket)
        assert fresh.hgetall(writer.keys.latest) == feed.expected_latest()
        assert fresh.hlen(writer.keys.instruments) == len(feed.state)
        assert writer.counters["connects"] == 2

    with_writer(test, backoff_cap=0.2)


def test_auth_with_a_password() -> None:
    async def test(server: EmbeddedRedis, writer: RedisWriter, feed: Feed, client: redis.Redis) -> None:
        writer.on_flush(feed.flush())
        await writer.drain()
        assert client.hgetall(writer.keys.latest) == feed.expected_latest()

    with_writer(test, {"extra": ("--requirepass", "s3cret"), "password": "s3cret"})


def test_a_wrong_password_is_a_clear_error_and_a_retry() -> None:
    with EmbeddedRedis(extra=("--requirepass", "right")) as server:
        feed = Feed()
        writer = RedisWriter(feed.state, where(server, "wrong"), Keys("kite"), backoff_cap=0.05)

        async def main() -> None:
            task = asyncio.create_task(writer.run())
            await until(lambda: writer.counters["reconnects"] >= 2, "retried")
            writer.stop()
            await asyncio.wait_for(task, DEADLINE)

        asyncio.run(main())
        assert "WRONGPASS" in writer.last_error or "invalid" in writer.last_error


def test_bad_settings_are_refused() -> None:
    feed = Feed()
    with pytest.raises(ValueError, match="maxlen"):
        RedisWriter(feed.state, RedisTarget.parse("redis://127.0.0.1:1"), Keys(), maxlen=0)
    with pytest.raises(ValueError, match="partition"):
        Keys("bad{tag}")


def test_the_writer_runs_on_a_redis_cluster(redis_cluster: Any) -> None:
    """Three masters; the partition's keys share one hash tag, so the writer
    talks to the one node that owns the slot; SPUBLISH on Redis >= 7."""
    feed = Feed()
    keys = Keys("kite", prefix="cl")
    writer = RedisWriter(feed.state, redis_cluster.target, keys, rng=random.Random(1))
    client = redis_cluster.client()

    async def main() -> None:
        task = asyncio.create_task(writer.run())
        try:
            await until(lambda: writer.state_name == "connected", "connected")
            for _ in range(20):
                await write(writer, feed.flush())
            await writer.drain()
        finally:
            writer.stop()
            await asyncio.wait_for(task, DEADLINE)

    asyncio.run(main())
    assert writer.counters["errors"] == 0, writer.last_error
    assert client.hgetall(keys.latest) == feed.expected_latest()
    assert client.xlen(keys.ticks) == 20
    assert len({client.keyslot(k) for k in keys.all()}) == 1


def test_acknowledged_flushes_are_observed_in_tick_age_and_dropped_ones_are_not() -> None:
    async def test(server: EmbeddedRedis, writer: RedisWriter, feed: Feed, client: redis.Redis) -> None:
        written = 0
        for i in range(120):  # no yielding: replies cannot come back, the writer fills up and drops
            batch = feed.flush(10 + i % 7)
            assert batch.receive_time_ns > 0
            before = writer.counters["written"]
            writer.on_flush(batch)
            if writer.counters["written"] > before:
                written += len(batch)
        assert writer.counters["dropped"] > 0 and writer.tick_age.count == 0  # nothing acknowledged yet
        await writer.drain()
        assert writer.tick_age.count == written and writer.tick_age.counts[-1] == 0  # none past 5 s
        assert writer.tick_age.sum > 0 and writer.health()["in_flight"] == 0
        text = metrics.render([*writer.metrics(), writer.tick_age.render()]).decode()
        series = metrics.parse(text)
        assert series["fastflow_redis_written_total"] == writer.counters["written"]
        assert series["fastflow_redis_dropped_total"] == writer.counters["dropped"]
        assert series["fastflow_redis_ticks_total"] == writer.counters["ticks"]
        assert series["fastflow_redis_connected"] == 1 and series["fastflow_redis_in_flight"] == 0
        assert series['fastflow_tick_age_seconds_count{stage="redis"}'] == written

    with_writer(test, max_in_flight=2)


def test_a_flush_with_an_error_reply_is_not_observed() -> None:
    async def test(server: EmbeddedRedis, writer: RedisWriter, feed: Feed, client: redis.Redis) -> None:
        await write(writer, feed.flush())
        await writer.drain()
        observed = writer.tick_age.count
        client.set(writer.keys.ticks, b"not a stream")  # XADD now fails with WRONGTYPE
        await write(writer, feed.flush())
        await writer.drain()
        assert writer.counters["errors"] == 1 and "WRONGTYPE" in writer.last_error
        assert writer.tick_age.count == observed
        client.delete(writer.keys.ticks)
        batch = feed.flush()
        await write(writer, batch)
        await writer.drain()
        assert writer.tick_age.count == observed + len(batch)

    with_writer(test)


def test_a_rollover_rewrites_the_master_and_deletes_the_expired_latest_entries() -> None:
    """RedisWriter.roll_over between two flushes: on the same connection, behind the
    flushes already written, the new master replaces the old (instruments and ids),
    the expired instruments' latest entries go, meta gets the day; the instruments
    that go on keep theirs, the stream is left alone, and the next flushes are the
    new state's."""
    import datetime as dt

    from fastflow.instruments.changes import master_change

    today, tomorrow = kite_universe(dt.date(2026, 3, 3)), kite_universe(dt.date(2026, 3, 4))

    async def test(server: EmbeddedRedis, writer: RedisWriter, feed: Feed, client: redis.Redis) -> None:
        keys = writer.keys
        old = MarketState(Instruments.from_kite_rows(today))
        writer.state = old  # the writer of today's state (as if it had started on it)
        market = KiteMarket.from_rows(today, seed=2)
        decoder = KiteDecoder(old)
        for _ in range(30):
            decoder.feed(market.step(200, "quote"))
            await write(writer, old.flush())
        new = MarketState(Instruments.from_kite_rows(tomorrow))
        change = master_change(old.instruments, new.instruments)
        ticked = {s.decode() for s in client.hkeys(keys.latest)} if False else set(old.snapshot().symbols())
        expired = sorted(set(change.expired) & ticked)
        going_on = sorted(ticked - set(change.expired))
        assert expired and going_on
        writer.roll_over(new, change.expired, {"day": "2026-03-04"})
        decoder = KiteDecoder(new)
        decoder.feed(market.step(20, "quote"))
        await write(writer, new.flush())
        await writer.drain()
        latest = {k.decode() for k in client.hkeys(keys.latest)}
        assert not latest & set(change.expired) and set(going_on) <= latest
        assert {k.decode() for k in client.hkeys(keys.instruments)} == {str(s) for s in new.instruments.symbol}
        token = int(change.reused[0])
        assert client.hget(keys.ids, str(token)).decode() == new.instruments.symbol_of(token)
        assert client.hget(keys.meta, "day") == b"2026-03-04"
        assert client.hget(keys.meta, "instruments") == str(len(new)).encode()
        assert client.xlen(keys.ticks) == 31 and writer.counters["errors"] == 0
        assert writer.expired == frozenset(change.expired) - {str(s) for s in new.instruments.symbol}
        # A reconnect's set-up does it again (a Redis that lost the rollover's writes).
        server.kill()
        server.restart()
        fresh = redis.Redis(unix_socket_path=server.unix_socket)
        fresh.hset(keys.latest, expired[0], b"stale")
        await until(lambda: writer.state_name == "connected" and writer.counters["connects"] == 2, "reconnected")
        await writer.drain()
        assert fresh.hget(keys.latest, expired[0]) is None
        assert fresh.hget(keys.meta, "day") == b"2026-03-04" and fresh.hlen(keys.instruments) == len(new)

    with_writer(test, backoff_cap=0.2)
