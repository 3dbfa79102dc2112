"""The Redis write path's per-flush outputs: ``TickBatch.resp_hset(key)`` (one
RESP2 ``HSET key symbol blob ...`` command built from the batch) and
``MarketState.snapshot()`` (the latest tick of every updated instrument),
checked with hiredis' parser, redis-py's own command packer and a real
redis-server, for both implementations."""

from __future__ import annotations

import gc
import random
import socket
import types
import weakref
from collections.abc import Iterator
from typing import Any

import hiredis
import msgpack
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.connection import Connection

from fastflow import _hotpath as compiled
from fastflow import reference
from fastflow.brokers.upstox.constants import MODES
from fastflow.instruments import Instruments
from fastflow.sim.market import KiteMarket
from fastflow.sim.market.upstox import UpstoxMarket, upstox_pairs
from fastflow.sim.universe import kite_universe
from fastflow.sim.wire import kite as kw
from fastflow.store.embedded import EmbeddedRedis

from .. import kite_frames as kf
from ..conftest import INFY, KITE_ROWS, NIFTY50, RELIANCE, USDINR, kite_row

KEY = b"fastflow:ticks"


# -- helpers ---------------------------------------------------------------------


def parse(out: bytes) -> Any:
    """The one RESP value in ``out`` (and nothing after it)."""
    reader = hiredis.Reader()
    reader.feed(out)
    value = reader.gets()
    assert value is not False, "incomplete RESP"
    assert reader.gets() is False, "more than one RESP value"
    return value


def redis_py_hset(key: bytes, symbols: list[str], blobs: list[bytes]) -> bytes:
    """The same command packed by redis-py (an independent encoder)."""
    flat: list[bytes | str] = []
    for symbol, blob in zip(symbols, blobs, strict=True):
        flat += [symbol, blob]
    return b"".join(Connection().pack_command("HSET", key, *flat))


def check_hset(state: Any, batch: Any, key: bytes = KEY) -> bytes:
    """resp_hset(key) is exactly HSET key sym_i blob_i for every tick of the batch."""
    out: bytes = batch.resp_hset(key)
    symbols = [state.tick_at(int(slot))["symbol"] for slot in batch.slots]
    assert batch.symbols() == symbols
    if len(batch) == 0:
        assert out == b""
        return out
    expected = [b"HSET", key]
    for symbol, blob in zip(symbols, batch, strict=True):
        expected += [symbol.encode("utf-8"), blob]
    assert parse(out) == expected
    assert out == redis_py_hset(key, symbols, list(batch))
    return out


def kite_universe_state(hp: types.ModuleType, seed: int = 1) -> tuple[Any, Any, KiteMarket]:
    rows = kite_universe()
    state = hp.MarketState(Instruments.from_kite_rows(rows))
    return state, hp.KiteDecoder(state), KiteMarket.from_rows(rows, seed=seed)


def upstox_state(hp: types.ModuleType) -> tuple[Any, Any]:
    state = hp.MarketState(Instruments.from_upstox_rows(upstox_pairs()[1]))
    return state, hp.UpstoxDecoder(state)


def upstox_frames(seed: int, count: int, per_frame: int) -> list[bytes]:
    market = UpstoxMarket.from_universe(seed=seed)
    rnd = random.Random(seed)
    return [market.live({k: rnd.choice(MODES) for k in rnd.sample(market.keys, per_frame)}) for _ in range(count)]


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as srv:
        yield srv


@pytest.fixture
def client(server: EmbeddedRedis) -> Iterator[redis.Redis]:
    conn = redis.Redis(unix_socket_path=server.unix_socket)
    conn.flushall()
    yield conn
    conn.close()


def send(server: EmbeddedRedis, command: bytes) -> bytes:
    """Write raw RESP bytes to the server over a plain socket; the raw reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5.0)
        sock.connect(server.unix_socket)
        sock.sendall(command)
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            assert chunk, "connection closed"
            reply += chunk
        return reply


# -- the command bytes -------------------------------------------------------------


def test_resp_hset_of_a_kite_flush(hp: types.ModuleType) -> None:
    state, dec, market = kite_universe_state(hp)
    dec.feed(market.step(200, "full"), 7)
    batch = state.flush()
    assert len(batch) == 200
    out = check_hset(state, batch)
    assert out.startswith(b"*402\r\n$4\r\nHSET\r\n$14\r\nfastflow:ticks\r\n")
    for mode in ("quote", "ltp"):
        dec.feed(market.step(150, mode), 8)
        check_hset(state, state.flush())


def test_resp_hset_of_every_upstox_mode(hp: types.ModuleType) -> None:
    state, dec = upstox_state(hp)
    for frame in upstox_frames(seed=3, count=4, per_frame=60):
        dec.feed(frame, 9)
        batch = state.flush()
        out = check_hset(state, batch)
        assert len(batch) == 60 and len(out) > len(batch.data)
    assert max(len(b) for b in state.snapshot()) >= 1000  # full_d30 blobs: 4-digit lengths


def test_resp_hset_small_batch_layout(hp: types.ModuleType, instruments: Instruments) -> None:
    state = hp.MarketState(instruments)
    dec = hp.KiteDecoder(state)
    dec.feed(kw.message([kf.ltp(RELIANCE, 1), kf.ltp(INFY, 2)]), 5)
    batch = state.flush()
    out = batch.resp_hset(b"k")
    b0, b1 = batch[0], batch[1]
    assert out == (b"*6\r\n$4\r\nHSET\r\n$1\r\nk\r\n$12\r\nNSE:RELIANCE\r\n$%d\r\n%b\r\n$8\r\nNSE:INFY\r\n$%d\r\n%b\r\n"
                   % (len(b0), b0, len(b1), b1))


@pytest.mark.parametrize("key", [b"", b"k", b"a\r\nb\x00\xff", b"x" * 10_000, "t\u00fcck".encode()])
def test_any_binary_key(hp: types.ModuleType, instruments: Instruments, key: bytes) -> None:
    state = hp.MarketState(instruments)
    hp.KiteDecoder(state).feed(kw.message([kf.full(INFY), kf.index_full(NIFTY50), kf.quote(USDINR)]), 1)
    check_hset(state, state.flush(), key)


def test_empty_batch_and_bad_keys(hp: types.ModuleType, instruments: Instruments) -> None:
    state = hp.MarketState(instruments)
    empty = state.flush()
    assert empty.resp_hset(KEY) == b"" and empty.symbols() == []
    assert state.snapshot().resp_hset(KEY) == b"" and len(state.snapshot()) == 0
    hp.KiteDecoder(state).feed(kw.message([kf.ltp(INFY)]), 1)
    batch = state.flush()
    for bad in ("key", None, bytearray(b"key"), memoryview(b"key"), 1, type("B", (bytes,), {})(b"key")):
        with pytest.raises(TypeError, match="Argument 'key' has incorrect type"):
            batch.resp_hset(bad)
    with pytest.raises(TypeError, match="Argument 'key' has incorrect type"):
        empty.resp_hset("key")  # the type is checked before the empty case


def test_wrong_key_types_same_errors() -> None:
    import numpy as np

    batches = []
    for hp in (compiled, reference):
        state = hp.MarketState(Instruments.from_kite_rows(KITE_ROWS))
        hp.KiteDecoder(state).feed(kw.message([kf.ltp(INFY)]), 1)
        batches.append(state.flush())
    for bad in ("key", None, bytearray(b"k"), np.zeros(2), 1.5, type("B", (bytes,), {})(b"k")):
        messages = []
        for batch in batches:
            with pytest.raises(TypeError) as info:
                batch.resp_hset(bad)
            messages.append(str(info.value))
        assert messages[0] == messages[1], messages


def test_non_ascii_symbols(hp: types.ModuleType) -> None:
    rows = [
        kite_row(INFY, "INFY", "NSE", "NSE"),
        kite_row(RELIANCE, "R\u00c9LIANCE\u20ac", "NSE", "NSE"),  # 2- and 3-byte UTF-8
        kite_row(NIFTY50, "NIFTY \U0001f4c8 " + "\u00fc" * 40, "NSE", "INDICES"),  # 4-byte, > 31 bytes
    ]
    state = hp.MarketState(Instruments.from_kite_rows(rows))
    hp.KiteDecoder(state).feed(kw.message([kf.full(RELIANCE), kf.index_full(NIFTY50), kf.ltp(INFY)]), 3)
    batch = state.flush()
    assert batch.symbols() == ["NSE:R\u00c9LIANCE\u20ac", "NSE:NIFTY \U0001f4c8 " + "\u00fc" * 40, "NSE:INFY"]
    out = check_hset(state, batch)
    assert b"$16\r\nNSE:R\xc3\x89LIANCE\xe2\x82\xac\r\n" in out  # lengths in bytes, not characters
    assert check_hset(state, state.snapshot()) != out  # slot order


def test_batch_outlives_its_state_and_does_not_keep_it_alive(hp: types.ModuleType, instruments: Instruments) -> None:
    state = hp.MarketState(instruments)
    hp.KiteDecoder(state).feed(kw.message([kf.full(INFY), kf.ltp(RELIANCE)]), 1)
    batch = state.flush()
    expected = batch.resp_hset(KEY)
    ref = weakref.ref(state)
    del state
    gc.collect()
    assert ref() is None
    assert batch.resp_hset(KEY) == expected
    assert batch.symbols() == ["NSE:INFY", "NSE:RELIANCE"]


def test_compiled_batch_is_not_tracked_by_the_gc(compiled: types.ModuleType, instruments: Instruments) -> None:
    state = compiled.MarketState(instruments)
    assert not gc.is_tracked(state.flush())
    assert not gc.is_tracked(state.snapshot())


# -- snapshot() ----------------------------------------------------------------------


def test_snapshot_is_every_updated_instrument(hp: types.ModuleType) -> None:
    state, dec, market = kite_universe_state(hp, seed=2)
    assert len(state.snapshot()) == 0
    for _ in range(5):
        dec.feed(market.step(40, "full"), 11)
    dec.feed(market.step(30, "ltp"), 12)
    state.flush()
    dec.feed(market.step(25, "quote"), 13)
    dirty, stats = state.dirty_count, state.stats()
    assert 0 < dirty < len(state)
    snap = state.snapshot()
    updated = [slot for slot in range(len(state)) if state.array["seq"][slot] > 0]
    assert 0 < len(updated) < len(state)
    assert [int(s) for s in snap.slots] == updated  # slot order
    assert state.dirty_count == dirty and state.stats() == stats  # dirty set and counters untouched
    tokens = state.array["token"]
    for i, slot in enumerate(updated):
        assert snap[i] == state.encode(int(tokens[slot]))
        assert msgpack.unpackb(snap[i]) == state.tick_at(slot)
    offsets = snap.offsets
    assert offsets[0] == 0 and offsets[-1] == len(snap.data) == sum(len(b) for b in snap)
    check_hset(state, snap)
    # a flush after the snapshot still yields the dirty instruments, same blobs
    batch = state.flush()
    assert len(batch) == dirty and state.dirty_count == 0
    by_slot = dict(zip(updated, snap, strict=True))
    assert all(by_slot[int(slot)] == blob for slot, blob in zip(batch.slots, batch, strict=True))
    assert state.stats()["flushes"] == stats["flushes"] + 1
    assert len(state.snapshot()) == len(updated)  # a flush does not shrink the snapshot
    state.clear()
    assert len(state.snapshot()) == 0


def test_snapshot_of_an_upstox_state(hp: types.ModuleType) -> None:
    state, dec = upstox_state(hp)
    for frame in upstox_frames(seed=4, count=3, per_frame=50):
        dec.feed(frame, 21)
    dirty = state.dirty_count
    snap = state.snapshot()
    seq = state.array["seq"]
    assert [int(s) for s in snap.slots] == [i for i in range(len(state)) if seq[i] > 0]
    for slot, blob in zip(snap.slots, snap, strict=True):
        assert blob == state.encode(state.tick_at(int(slot))["symbol"])
    assert state.dirty_count == dirty
    check_hset(state, snap)


# -- compiled == reference -------------------------------------------------------------


def test_compiled_and_reference_bytes_agree() -> None:
    c_state, c_dec, market = kite_universe_state(compiled, seed=5)
    r_state, r_dec, _ = kite_universe_state(reference, seed=5)
    for i in range(6):
        msg = market.step(70, ("full", "quote", "ltp")[i % 3])
        c_dec.feed(msg, i + 1)  # (0 would be "now")
        r_dec.feed(msg, i + 1)
        c_batch, r_batch = c_state.flush(), r_state.flush()
        assert c_batch.resp_hset(KEY) == r_batch.resp_hset(KEY)
        assert c_batch.symbols() == r_batch.symbols()
        c_snap, r_snap = c_state.snapshot(), r_state.snapshot()
        assert c_snap.data == r_snap.data and c_snap.slots.tolist() == r_snap.slots.tolist()
        assert c_snap.resp_hset(KEY) == r_snap.resp_hset(KEY)
    cu, cd = upstox_state(compiled)
    ru, rd = upstox_state(reference)
    for frame in upstox_frames(seed=6, count=3, per_frame=40):
        cd.feed(frame, 1)
        rd.feed(frame, 1)
        assert cu.snapshot().resp_hset(KEY) == ru.snapshot().resp_hset(KEY)
        assert cu.flush().resp_hset(KEY) == ru.flush().resp_hset(KEY)


_HYP_UNIVERSE = [kite_row(((100 + i) << 8) | 1, f"S{i}" + "\u00e9" * (i % 3) * 7, "NSE", "NSE") for i in range(40)]
_HYP_INSTRUMENTS = Instruments.from_kite_rows(_HYP_UNIVERSE)
_HYP_TOKENS = [int(r["instrument_token"]) for r in _HYP_UNIVERSE]
_packet = st.builds(
    lambda kind, token, ltp: {"ltp": kf.ltp, "quote": kf.quote, "full": kf.full}[kind](token, ltp),
    st.sampled_from(["ltp", "quote", "full"]), st.sampled_from(_HYP_TOKENS), st.integers(1_000, 2**30),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(st.lists(_packet, min_size=1, max_size=30), max_size=4), key=st.binary(max_size=40))
def test_differential_hypothesis(messages: list[list[bytes]], key: bytes) -> None:
    c_state, r_state = compiled.MarketState(_HYP_INSTRUMENTS), reference.MarketState(_HYP_INSTRUMENTS)
    c_dec, r_dec = compiled.KiteDecoder(c_state), reference.KiteDecoder(r_state)
    for i, packets in enumerate(messages):
        msg = kw.message(packets)
        c_dec.feed(msg, i + 1)
        r_dec.feed(msg, i + 1)
        c_snap = c_state.snapshot().resp_hset(key)
        assert c_snap == r_state.snapshot().resp_hset(key)
        c_out = c_state.flush().resp_hset(key)
        assert c_out == r_state.flush().resp_hset(key)
        assert parse(c_out)[:2] == [b"HSET", key]


# -- a real redis-server ---------------------------------------------------------------


def hgetall(client: redis.Redis, key: bytes) -> dict[bytes, bytes]:
    result: dict[bytes, bytes] = client.hgetall(key)  # type: ignore[assignment]
    return result


def test_real_redis_hset_and_snapshot_after_restart(hp: types.ModuleType, server: EmbeddedRedis,
                                                   client: redis.Redis) -> None:
    state, dec, market = kite_universe_state(hp, seed=8)
    dec.feed(market.step(200, "full"), 1)
    batch = state.flush()
    assert send(server, batch.resp_hset(KEY)) == b":200\r\n"  # fields added
    assert hgetall(client, KEY) == {s.encode(): blob for s, blob in zip(batch.symbols(), batch, strict=True)}
    dec.feed(market.step(120, "ltp"), 2)
    second = state.flush()
    reply = send(server, second.resp_hset(KEY))
    new = len(set(second.symbols()) - set(batch.symbols()))
    assert reply == b":%d\r\n" % new  # existing fields are overwritten, not added
    snap = state.snapshot()
    latest = {s.encode(): blob for s, blob in zip(snap.symbols(), snap, strict=True)}
    assert hgetall(client, KEY) == latest  # the flushes left exactly the latest state
    # a Redis restart loses everything; the snapshot rewrites the full latest state
    server.kill()
    server.restart()
    client.connection_pool.disconnect()
    assert hgetall(client, KEY) == {}
    connection = client.connection_pool.get_connection()
    try:
        connection.send_packed_command([snap.resp_hset(KEY)])
        assert connection.read_response() == len(snap)
    finally:
        client.connection_pool.release(connection)
    assert hgetall(client, KEY) == latest
    assert {msgpack.unpackb(blob)["symbol"].encode() for blob in latest.values()} == set(latest)


def test_real_redis_upstox_and_non_ascii(hp: types.ModuleType, server: EmbeddedRedis, client: redis.Redis) -> None:
    state, dec = upstox_state(hp)
    frames = upstox_frames(seed=9, count=2, per_frame=80)
    for frame in frames:
        dec.feed(frame, 5)
    batch = state.flush()
    assert send(server, batch.resp_hset(b"upstox")) == b":%d\r\n" % len(batch)
    assert hgetall(client, b"upstox") == {s.encode(): b for s, b in zip(batch.symbols(), batch, strict=True)}
    rows = [kite_row(INFY, "INF\u00dd\u20ac", "NSE", "NSE"), kite_row(NIFTY50, "NIFTY \U0001f4c8", "NSE", "INDICES")]
    kite = hp.MarketState(Instruments.from_kite_rows(rows))
    hp.KiteDecoder(kite).feed(kw.message([kf.full(INFY), kf.index_full(NIFTY50)]), 1)
    assert send(server, kite.flush().resp_hset("cl\u00e9".encode())) == b":2\r\n"
    assert hgetall(client, "cl\u00e9".encode()) == {
        "NSE:INF\u00dd\u20ac".encode(): kite.encode(INFY),
        "NSE:NIFTY \U0001f4c8".encode(): kite.encode(NIFTY50),
    }


# -- allocations -------------------------------------------------------------------------


def test_resp_hset_allocates_only_its_output(compiled: types.ModuleType) -> None:
    import tracemalloc

    state, dec, market = kite_universe_state(compiled, seed=10)
    dec.feed(market.step(200, "full"), 1)
    batch = state.flush()
    assert len(batch) == 200
    resp_hset = batch.resp_hset
    resp_hset(KEY)  # warm-up
    for make in (lambda: batch, state.snapshot):
        target = make()
        resp_hset = target.resp_hset
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            out = resp_hset(KEY)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert len(out) > len(target.data)
        assert peak - before <= len(out) + 4096, f"{peak - before} bytes for a {len(out)}-byte command"


def test_allocation_probe_can_fail(compiled: types.ModuleType) -> None:
    """The bound above catches one object per tick (e.g. a bytes per symbol)."""
    import tracemalloc

    state, dec, market = kite_universe_state(compiled, seed=10)
    dec.feed(market.step(200, "full"), 1)
    batch = state.flush()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        parts = [s.encode() for s in batch.symbols()]
        out = b"".join(parts)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - before > len(out) + 4096
