"""TickStore / AsyncTickStore against real servers: data written in the key
schema (keys.py) with plain redis-py, read back as snapshots, through consumer
groups with crash recovery, and by tailing; on an embedded redis-server and on
a three-master Redis Cluster (every key of a partition in one slot)."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import redis
import redis.cluster

from fastflow.store.consumer import AsyncTickStore, Entry, Pending, TickDecodeError, TickStore, decode_ticks
from fastflow.store.embedded import EmbeddedRedis
from fastflow.store.keys import Keys
from fastflow.store.target import RedisTarget

from ..redis_servers import RedisClusterNodes, wait_for

Client = redis.Redis | redis.cluster.RedisCluster
SYMBOLS = ["NSE:INFY", "NSE:RELIANCE", "NFO:NIFTY26NOVFUT", "NSE:NIFTY 50"]


def tick(symbol: str, seq: int, price: float = 1500.25) -> dict[str, Any]:
    """A tick map as the plant writes it (kiteconnect's keys plus ours)."""
    return {
        "symbol": symbol, "instrument_token": 408065, "tradable": True, "mode": "full",
        "last_price": price + seq, "last_traded_quantity": 10, "average_traded_price": 1499.5,
        "volume_traded": 1000 + seq, "total_buy_quantity": 500, "total_sell_quantity": 600,
        "ohlc": {"open": 1490.0, "high": 1510.0, "low": 1480.0, "close": 1495.0}, "change": 0.35,
        "exchange_timestamp": 1_763_000_000_000 + seq, "seq": seq, "receive_time_ns": 1_763_000_000_000_000_000 + seq,
        "depth": {"buy": [{"quantity": 5, "price": 1500.2, "orders": 2}], "sell": [{"quantity": 7, "price": 1500.3, "orders": 1}]},
    }


def flush(client: Client, keys: Keys, ticks: list[dict[str, Any]]) -> str:
    """One plant flush: latest blobs + one stream entry; returns the entry id."""
    client.hset(keys.latest, mapping={t["symbol"]: msgpack.packb(t) for t in ticks})
    return text(client.xadd(keys.ticks, {"t": msgpack.packb(ticks)}))


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def flushes(client: Client, keys: Keys, n: int, first_seq: int = 1) -> list[str]:
    return [flush(client, keys, [tick(SYMBOLS[i % 2], first_seq + i)]) for i in range(n)]


def ids(entries: list[Entry]) -> list[str]:
    return [entry.id for entry in entries]


def partition_of(request: pytest.FixtureRequest) -> Keys:
    """Keys of a partition named after the test: tests sharing a cluster never collide."""
    return Keys(re.sub(r"[^A-Za-z0-9_.:-]", "-", request.node.name)[-64:])


@pytest.fixture(params=["embedded", "cluster"])
def target(request: pytest.FixtureRequest) -> RedisTarget:
    """Where Redis is: a fresh embedded server, or the module's cluster."""
    if request.param == "embedded":
        server: EmbeddedRedis = request.getfixturevalue("redis_server")
        return RedisTarget.parse(server.url)
    cluster: RedisClusterNodes = request.getfixturevalue("redis_cluster")
    return cluster.target


@pytest.fixture
def keys(request: pytest.FixtureRequest) -> Keys:
    return partition_of(request)


@pytest.fixture
def client(target: RedisTarget) -> Iterator[Client]:
    client = target.client()
    yield client
    client.close()


@pytest.fixture
def store(client: Client, keys: Keys) -> TickStore:
    return TickStore(client, keys)


# -- snapshots -----------------------------------------------------------------


def test_snapshots_latest_watchlist_everything(client: Client, keys: Keys, store: TickStore) -> None:
    assert store.latest("NSE:INFY") is None and store.everything() == {}
    written = [tick(symbol, seq) for seq, symbol in enumerate(SYMBOLS, 1)]
    flush(client, keys, written)
    flush(client, keys, [tick("NSE:INFY", 9)])  # a later flush replaces INFY's blob
    assert store.latest("NSE:INFY") == tick("NSE:INFY", 9)
    assert store.latest("NSE:NIFTY 50") == written[3]
    assert store.watchlist(["NSE:RELIANCE", "NSE:UNKNOWN", "NSE:INFY", "NSE:RELIANCE"]) == {
        "NSE:RELIANCE": written[1], "NSE:UNKNOWN": None, "NSE:INFY": tick("NSE:INFY", 9)}
    assert store.watchlist([]) == {}
    assert store.everything() == {**{t["symbol"]: t for t in written}, "NSE:INFY": tick("NSE:INFY", 9)}


def test_everything_scans_a_big_hash_in_chunks(client: Client, keys: Keys) -> None:
    many = {f"NSE:S{i:04d}": tick(f"NSE:S{i:04d}", i) for i in range(600)}  # past listpack size: a real hashtable
    client.hset(keys.latest, mapping={symbol: msgpack.packb(t) for symbol, t in many.items()})
    assert TickStore(client, keys, chunk=50).everything() == many


def test_instruments_ids_and_meta(client: Client, keys: Keys, store: TickStore) -> None:
    row = {"instrument_token": 408065, "tradingsymbol": "INFY", "exchange": "NSE", "segment": "NSE",
           "tick_size": 0.05, "lot_size": 1, "expiry": None}
    client.hset(keys.instruments, "NSE:INFY", msgpack.packb(row))
    client.hset(keys.ids, mapping={"408065": "NSE:INFY", "NSE_EQ|INE009A01021": "NSE:INFY"})
    client.hset(keys.meta, mapping={"broker": "kite", "instruments": 1})
    assert store.instrument("NSE:INFY") == row and store.instrument("NSE:NOPE") is None
    assert store.instruments() == {"NSE:INFY": row}
    assert store.symbol_of(408065) == "NSE:INFY" == store.symbol_of("NSE_EQ|INE009A01021")
    assert store.symbol_of(1) is None
    assert store.meta() == {"broker": "kite", "instruments": "1"}


def test_a_bad_blob_raises_naming_it_or_is_skipped_and_counted(client: Client, keys: Keys) -> None:
    client.hset(keys.latest, mapping={"NSE:INFY": msgpack.packb(tick("NSE:INFY", 1)), "NSE:BAD": b"\xc1",
                                      "NSE:LIST": msgpack.packb([1, 2])})
    strict = TickStore(client, keys)
    with pytest.raises(TickDecodeError, match=rf"^{re.escape(keys.latest)} NSE:BAD: not valid msgpack") as raised:
        strict.latest("NSE:BAD")
    assert raised.value.key == keys.latest and raised.value.entry_id == "NSE:BAD"
    with pytest.raises(TickDecodeError, match="NSE:LIST: not a msgpack map"):
        strict.watchlist(["NSE:INFY", "NSE:LIST"])
    lenient = TickStore(client, keys, skip_bad=True)
    assert lenient.watchlist(["NSE:INFY", "NSE:BAD"]) == {"NSE:INFY": tick("NSE:INFY", 1), "NSE:BAD": None}
    assert lenient.everything() == {"NSE:INFY": tick("NSE:INFY", 1)}
    assert lenient.bad_entries == 3 and set(lenient.bad_ids) == {"NSE:BAD", "NSE:LIST"}


# -- consumer groups -------------------------------------------------------------


def test_a_crashed_consumers_entries_are_claimed_acked_and_pending_empties(
        client: Client, keys: Keys, store: TickStore) -> None:
    assert store.create_group("strategies") is True
    assert store.create_group("strategies") is False  # an existing group is fine
    written = flushes(client, keys, 8)
    got = store.read_group("strategies", "A", count=5)  # A reads five, then "crashes": never acks
    assert ids(got) == written[:5] and got[0].ticks == [tick(SYMBOLS[0], 1)]
    assert store.pending("strategies") == Pending(5, written[0], written[4], {"A": 5})
    assert store.claim_stale("strategies", "B", min_idle_ms=60_000) == []  # not idle long enough
    claimed = store.claim_stale("strategies", "B", min_idle_ms=0, count=10)
    assert ids(claimed) == written[:5] and [e.ticks for e in claimed] == [e.ticks for e in got]
    assert store.pending("strategies").consumers == {"B": 5}
    assert store.ack("strategies", *ids(claimed)) == 5
    assert store.ack("strategies", *ids(claimed)) == 0 and store.ack("strategies") == 0
    assert store.pending("strategies") == Pending(0, None, None, {})
    rest = store.read_group("strategies", "B", count=10)
    assert ids(rest) == written[5:]
    assert store.read_group("strategies", "B") == []  # nothing new


def test_claim_after_a_real_idle_period(client: Client, keys: Keys, store: TickStore) -> None:
    store.create_group("g")
    written = flushes(client, keys, 5)
    assert ids(store.read_group("g", "A", count=5)) == written
    claimed: dict[str, Entry] = {}

    def claim() -> bool:
        claimed.update((entry.id, entry) for entry in store.claim_stale("g", "B", min_idle_ms=50))
        return len(claimed) == 5

    wait_for(claim, "the entries to be idle for 50 ms", deadline=10)
    assert sorted(claimed) == sorted(written) and store.pending("g").consumers == {"B": 5}
    store.ack("g", *claimed)
    assert store.pending("g").count == 0


def test_claim_stale_counts_and_drops_entries_trimmed_while_pending(client: Client, keys: Keys,
                                                                    store: TickStore) -> None:
    store.create_group("g", start="0")
    written = flushes(client, keys, 6)
    assert ids(store.read_group("g", "A", count=5)) == written[:5]
    client.xdel(keys.ticks, written[1], written[3])  # as MAXLEN ~ trimming would
    claimed = store.claim_stale("g", "B", min_idle_ms=0, count=2)  # a trimmed one counts: two rounds
    assert ids(claimed) == [written[0], written[2]] and store.trimmed == 1
    assert store.ack("g", *ids(claimed)) == 2
    claimed = store.claim_stale("g", "B", min_idle_ms=0, count=10)
    assert ids(claimed) == [written[4]] and store.trimmed == 2
    assert store.ack("g", *ids(claimed)) == 1
    assert store.pending("g").count == 0  # the trimmed two left the group too
    assert ids(store.read_group("g", "B")) == written[5:]


def test_a_restarted_consumer_rereads_its_own_backlog(client: Client, keys: Keys, store: TickStore) -> None:
    store.create_group("g", start="0")
    written = flushes(client, keys, 4)
    store.read_group("g", "A", count=3)
    client.xdel(keys.ticks, written[0])
    backlog = store.read_group("g", "A", start="0")  # restarted under the same name
    assert ids(backlog) == written[1:3] and store.trimmed == 1
    assert store.pending("g").count == 2
    assert ids(store.read_group("g", "A")) == written[3:]


def test_a_bad_stream_entry_raises_naming_its_id_and_loses_nothing(client: Client, keys: Keys) -> None:
    store = TickStore(client, keys)
    store.create_group("g")
    good = flushes(client, keys, 1)
    bad = text(client.xadd(keys.ticks, {"t": b"\xc1not msgpack"}))
    bare = text(client.xadd(keys.ticks, {"x": b"1"}))
    later = flushes(client, keys, 1, first_seq=2)
    with pytest.raises(TickDecodeError, match=rf"^{re.escape(keys.ticks)} {bad}: not valid msgpack") as raised:
        store.read_group("g", "A")
    assert raised.value.entry_id == bad
    assert store.pending("g").count == 4  # all delivered entries are still pending
    lenient = TickStore(client, keys, skip_bad=True)
    backlog = lenient.read_group("g", "A", start="0")
    assert ids(backlog) == good + later
    assert list(lenient.bad_ids) == [bad, bare] and lenient.bad_entries == 2
    assert lenient.pending("g").count == 2  # the bad ones were acknowledged: they cannot come back
    with pytest.raises(TickDecodeError, match=f"{bad}: not valid msgpack"):
        store.tail("0")
    with pytest.raises(TickDecodeError, match=f"{bare}: no 't' field"):
        store.tail(bad)
    assert ids(lenient.tail("0")) == good + later


# -- tailing ---------------------------------------------------------------------


def test_tail_reads_after_an_id_and_waits_for_new_entries_after_dollar(
        client: Client, keys: Keys, store: TickStore) -> None:
    assert store.last_id() == "0-0"
    first = flushes(client, keys, 3)
    assert ids(store.tail("0", count=2)) == first[:2]
    assert store.last_id() == first[-1] and store.tail(first[-1]) == []
    with pytest.raises(ValueError, match="never returns anything"):
        store.tail("$")

    new: list[str] = []
    failed: list[BaseException] = []

    def write_once_the_reader_blocks() -> None:
        try:
            node = node_of(client, keys.ticks)
            wait_for(lambda: any(c["cmd"] == "xread" and "b" in c["flags"] for c in node.client_list()),
                     "the reader to block", deadline=3)
            new.extend(flushes(client, keys, 1, first_seq=10))
        except BaseException as exc:
            failed.append(exc)

    writer = threading.Thread(target=write_once_the_reader_blocks)
    writer.start()
    try:
        got = store.tail("$", block_ms=4000)  # returns as soon as the entry is written
    finally:
        writer.join()
    assert not failed, failed
    assert ids(got) == new and got[0].ticks == [tick(SYMBOLS[0], 10)]
    assert store.tail("$", block_ms=1) == []


def node_of(client: Client, key: str) -> redis.Redis:
    """A plain client of the server holding ``key`` (the only server, or its cluster node)."""
    if isinstance(client, redis.cluster.RedisCluster):
        node = client.get_node_from_key(key)  # type: ignore[no-untyped-call]
        return redis.Redis(host=node.host, port=node.port)
    return client


def test_blocking_longer_than_the_socket_timeout_is_refused(target: RedisTarget, keys: Keys) -> None:
    store = TickStore(dataclasses.replace(target, socket_timeout=1.0).client(), keys)
    store.create_group("g")
    with pytest.raises(ValueError, match="socket_timeout"):
        store.read_group("g", "A", block_ms=1000)
    with pytest.raises(ValueError, match="socket_timeout"):
        store.tail("$", block_ms=0)
    assert store.read_group("g", "A", block_ms=1) == []


def test_refuses_clients_that_decode_responses(target: RedisTarget) -> None:
    decoding = target.client(decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses=False"):
        TickStore(decoding)
    decoding.close()


def test_every_key_of_a_partition_is_in_one_slot(redis_cluster: RedisClusterNodes) -> None:
    client = redis_cluster.client()
    keys = Keys("kite", prefix="ff")
    slots = {client.cluster_keyslot(key) for key in [*keys.all(), keys.live]}
    assert len(slots) == 1
    assert Keys("upstox").latest == "ff:{upstox}:latest" and client.cluster_keyslot(Keys("upstox").latest) not in slots
    if redis_cluster.version >= (7, 0, 0):  # sharded pub/sub reaches the partition's node
        assert client.spublish(keys.live, msgpack.packb([tick("NSE:INFY", 1)])) == 0
    client.close()


def test_decode_ticks_is_what_live_subscribers_use() -> None:
    batch = [tick("NSE:INFY", 1), tick("NSE:RELIANCE", 2)]
    assert decode_ticks(msgpack.packb(batch)) == batch
    with pytest.raises(TickDecodeError, match="not a msgpack array of tick maps"):
        decode_ticks(msgpack.packb({"a": 1}), key="ff:{kite}:live", entry_id="message")


# -- the asyncio twin --------------------------------------------------------------


def test_async_twin_snapshots_and_crash_recovery(target: RedisTarget, keys: Keys, client: Client) -> None:
    written = [tick(symbol, seq) for seq, symbol in enumerate(SYMBOLS, 1)]
    flush(client, keys, written)

    async def main() -> None:
        aclient = target.async_client()
        try:
            store = AsyncTickStore(aclient, keys)
            assert await store.latest("NSE:INFY") == written[0]
            assert await store.watchlist(["NSE:INFY", "X:Y"]) == {"NSE:INFY": written[0], "X:Y": None}
            assert await store.everything() == {t["symbol"]: t for t in written}
            assert await store.create_group("g", start="0") is True
            assert await store.create_group("g") is False
            entry_ids = await asyncio.to_thread(flushes, client, keys, 4)
            got = await store.read_group("g", "A", count=3)
            assert len(got) == 3 and got[0].ticks == written
            await asyncio.to_thread(client.xdel, keys.ticks, entry_ids[0])
            claimed = await store.claim_stale("g", "B", min_idle_ms=0)
            assert ids(claimed) == [got[0].id, *entry_ids[1:2]] and store.trimmed == 1
            assert await store.ack("g", *ids(claimed)) == 2
            assert (await store.pending("g")).count == 0
            assert ids(await store.tail(got[0].id)) == entry_ids[1:]
            assert await store.last_id() == entry_ids[-1]
        finally:
            await aclient.aclose()

    asyncio.run(main())
