"""Differential tests: the compiled hot path (``fastflow._hotpath``) against its
pure-Python twin (``fastflow.reference``).

Both get the same instruments and the same sequence of Kite messages (valid
ones of every mode and segment rule, unknown tokens, heartbeats, mutated,
truncated and random bytes) with the same explicit receive times, and must
agree after every message: return value or FrameError (reason and offset),
state bytes, flushed output, tick dicts and counters.
"""

from __future__ import annotations

import functools
import math
import struct
import time
import types
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastflow import _hotpath as compiled
from fastflow import reference
from fastflow.errors import FrameError
from fastflow.sim.wire import kite as kw

from ..conftest import (
    BCD_FUT,
    CRUDE,
    INFY,
    MCXSX,
    NCO_FUT,
    NIFTY50,
    NIFTY_FUT,
    NIFTYBANK,
    SBIN_BSE,
    SENSEX_FUT,
    USDINR,
)

# -- a small universe: every Kite segment rule, plus edge tokens ----------------

TOKEN_ZERO = 0  # segment 0, and the empty-bucket key of the C hash table
TOKEN_MAX = 0xFFFFFFFF  # segment 255

UNIVERSE = [
    (INFY, "NSE:INFY"),
    (NIFTY_FUT, "NFO:NIFTY26NOVFUT"),
    (USDINR, "CDS:USDINR26NOVFUT"),
    (SBIN_BSE, "BSE:SBIN"),
    (SENSEX_FUT, "BFO:SENSEX26NOVFUT"),
    (BCD_FUT, "BCD:EURINR26NOVFUT"),
    (CRUDE, "MCX:CRUDEOIL26DECFUT"),
    (MCXSX, "MCXSX:USDINR26DECFUT"),
    (NIFTY50, "NSE:NIFTY 50"),
    (NIFTYBANK, "NSE:NIFTY BANK"),
    (NCO_FUT, "NCO:GOLD26DECFUT"),
    (TOKEN_ZERO, "NFO:BANKNIFTY26NOV59500CE_WITH_A_LONG_NAME"),  # > 31 bytes: str8 header
    (TOKEN_MAX, "MCX:SILVERMÏC"),  # non-ASCII: header counts UTF-8 bytes
]
TOKENS = [token for token, _ in UNIVERSE]
SYMBOLS = [symbol for _, symbol in UNIVERSE]
TOKEN_SET = frozenset(TOKENS)
INDEX_TOKENS = [NIFTY50, NIFTYBANK]
UNKNOWN_TOKENS = [(999_999 << 8) | 1, (77 << 8) | 9, (88 << 8) | 3, INFY + 256, 1, 0xFFFFFFFE]


def make_instruments() -> types.SimpleNamespace:
    by_symbol = {symbol: slot for slot, symbol in enumerate(SYMBOLS)}

    def slot(key: str) -> int:
        return by_symbol[key]  # KeyError for an unknown symbol

    return types.SimpleNamespace(
        token=np.array(TOKENS, dtype=np.uint32),
        price_divisor=np.array([kw.price_divisor(t) for t in TOKENS], dtype=np.int64),
        symbol=np.array(SYMBOLS, dtype=object),
        slot=slot,
    )


INSTRUMENTS = make_instruments()


class Pair:
    """A compiled and a reference state/decoder on the same instruments."""

    def __init__(self) -> None:
        self.c_state = compiled.MarketState(INSTRUMENTS)
        self.r_state = reference.MarketState(INSTRUMENTS)
        self.c_dec = compiled.KiteDecoder(self.c_state)
        self.r_dec = reference.KiteDecoder(self.r_state)


# -- comparison helpers ------------------------------------------------------------


def canon(obj: Any) -> Any:
    """A NaN-safe, type- and order-exact canonical form of a tick dict."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return (type(obj).__name__, obj)
    if isinstance(obj, int):
        assert type(obj) is int, type(obj)
        return ("int", obj)
    if isinstance(obj, float):
        assert type(obj) is float, type(obj)
        return ("float", struct.pack(">d", obj))
    if isinstance(obj, dict):
        return ("dict", [(k, canon(v)) for k, v in obj.items()])
    if isinstance(obj, list):
        return ("list", [canon(v) for v in obj])
    raise AssertionError(f"unexpected value {obj!r} of type {type(obj).__name__}")


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", fn())
    except FrameError as exc:
        return ("FrameError", (exc.reason, exc.offset, str(exc)))
    except Exception as exc:
        return (type(exc).__name__, str(exc))


def assert_same_state(p: Pair) -> None:
    c_arr, r_arr = p.c_state.array, p.r_state.array
    assert r_arr.dtype == c_arr.dtype
    assert r_arr.shape == c_arr.shape
    assert r_arr.tobytes() == c_arr.tobytes()
    assert p.r_state.dirty_count == p.c_state.dirty_count
    assert p.r_state.stats() == p.c_state.stats()
    assert p.r_dec.stats() == p.c_dec.stats()
    for slot, (token, symbol) in enumerate(UNIVERSE):
        c_tick = p.c_state.tick(token)
        r_tick = p.r_state.tick(token)
        assert canon(r_tick) == canon(c_tick)
        assert canon(p.r_state.tick(symbol)) == canon(c_tick)
        assert canon(p.r_state.tick_at(slot)) == canon(c_tick)
        blob = p.c_state.encode(token)
        assert p.r_state.encode(token) == blob
        assert msgpack.packb(r_tick) == blob


def assert_same_flush(p: Pair) -> None:
    c_batch, r_batch = p.c_state.flush(), p.r_state.flush()
    assert r_batch.data == c_batch.data
    assert len(r_batch) == len(c_batch)
    assert r_batch.slots.dtype == c_batch.slots.dtype == np.int32
    assert r_batch.offsets.dtype == c_batch.offsets.dtype == np.int64
    assert r_batch.slots.tolist() == c_batch.slots.tolist()
    assert r_batch.offsets.tolist() == c_batch.offsets.tolist()
    assert r_batch.frame() == c_batch.frame()
    assert list(r_batch) == list(c_batch)
    assert repr(r_batch) == repr(c_batch)
    if len(c_batch):
        assert r_batch[-1] == c_batch[-1]
    assert p.r_state.dirty_count == p.c_state.dirty_count == 0


def feed_both(p: Pair, frame: bytes, recv_ns: int, wrap: Callable[[bytes], Any] = bytes) -> None:
    c_result = outcome(lambda: p.c_dec.feed(wrap(frame), recv_ns))
    r_result = outcome(lambda: p.r_dec.feed(wrap(frame), recv_ns))
    assert r_result == c_result, frame.hex()


# -- hypothesis strategies: Kite messages --------------------------------------------

i32 = st.integers(-(2**31), 2**31 - 1)
u32 = st.integers(0, 2**32 - 1)
u16 = st.integers(0, 2**16 - 1)

known_token = st.sampled_from(TOKENS)


def _not_in_universe(token: int) -> int:
    while token in TOKEN_SET:
        token = (token + 7919) % 2**32
    return token


unknown_token = st.one_of(st.sampled_from(UNKNOWN_TOKENS), u32.map(_not_in_universe))
any_token = st.one_of(known_token, known_token, known_token, unknown_token)
# Index layouts mostly on index tokens, sometimes on others (the length alone selects the layout).
index_token = st.one_of(st.sampled_from(INDEX_TOKENS), st.sampled_from(INDEX_TOKENS), any_token)

depth_level = st.tuples(u32, i32, u16)  # quantity, raw price, orders
depth_side = st.lists(depth_level, min_size=5, max_size=5)

ltp_packets = st.builds(kw.ltp_packet, any_token, i32)
quote_packets = st.builds(kw.quote_packet, any_token, i32, u32, i32, u32, u32, u32, i32, i32, i32, i32)
full_packets = st.builds(
    kw.full_packet,
    any_token, i32, u32, i32, u32, u32, u32, i32, i32, i32, i32,  # quote fields
    u32, u32, u32, u32, u32,  # last trade time, oi, oi day high/low, exchange timestamp
    depth_side, depth_side,
)  # fmt: skip
index_quote_packets = st.builds(kw.index_packet, index_token, i32, i32, i32, i32, i32, i32)
index_full_packets = st.builds(
    kw.index_packet, index_token, i32, i32, i32, i32, i32, i32, exchange_timestamp=u32
)
packets = st.one_of(ltp_packets, quote_packets, full_packets, index_quote_packets, index_full_packets)


@st.composite
def packet_lists(draw: st.DrawFn) -> list[bytes]:
    items = draw(st.lists(packets, max_size=8))
    if items and draw(st.booleans()):  # the same packets again, in any order
        items = draw(st.permutations(items + draw(st.lists(st.sampled_from(items), min_size=1, max_size=3))))
    return items


valid_messages = packet_lists().map(kw.message)


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    items = draw(packet_lists())
    msg = bytearray(kw.message(items))
    headers, pos = [], 2
    for packet in items:
        headers.append(pos)
        pos += 2 + len(packet)
    kind = draw(st.sampled_from(["truncate", "extend", "flip", "count", "length", "insert", "delete"]))
    if kind == "truncate":
        del msg[draw(st.integers(0, len(msg) - 1)) :]
    elif kind == "extend":
        msg += draw(st.binary(min_size=1, max_size=16))
    elif kind == "flip":
        msg[draw(st.integers(0, len(msg) - 1))] ^= draw(st.integers(1, 255))
    elif kind == "count":
        msg[0:2] = struct.pack(">H", draw(u16))
    elif kind == "length" and headers:
        at = draw(st.sampled_from(headers))
        msg[at : at + 2] = struct.pack(">H", draw(st.one_of(st.sampled_from([8, 28, 32, 44, 184]), u16)))
    elif kind == "insert":
        at = draw(st.integers(0, len(msg)))
        msg[at:at] = draw(st.binary(min_size=1, max_size=8))
    elif kind == "delete" and len(msg) > 2:
        at = draw(st.integers(0, len(msg) - 1))
        del msg[at : at + draw(st.integers(1, 8))]
    return bytes(msg)


random_messages = st.one_of(
    st.binary(max_size=64),
    st.tuples(u16, st.binary(max_size=200)).map(lambda t: struct.pack(">H", t[0]) + t[1]),
)
heartbeats = st.binary(min_size=1, max_size=1)
frames = st.one_of(
    valid_messages,
    valid_messages,
    valid_messages,
    mutated_messages(),
    mutated_messages(),
    random_messages,
    heartbeats,
    st.sampled_from([b"", b"\x00\x00"]),
)
recv_times = st.one_of(
    st.integers(1_700_000_000_000_000_000, 1_800_000_000_000_000_000),
    st.integers(1, 2**63 - 1),
    st.integers(-(2**63), -1),
)
wrappers = st.sampled_from([bytes, bytearray, memoryview])

HYPOTHESIS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HYPOTHESIS
@given(st.lists(st.tuples(frames, recv_times, wrappers), min_size=1, max_size=8))
def test_differential_flush_after_every_message(steps: list[tuple[bytes, int, Any]]) -> None:
    p = Pair()
    assert_same_state(p)
    for frame, recv_ns, wrap in steps:
        feed_both(p, frame, recv_ns, wrap)
        assert_same_state(p)
        assert_same_flush(p)
        assert_same_state(p)


@HYPOTHESIS
@given(
    st.lists(
        st.tuples(frames, recv_times, st.sampled_from(["keep", "keep", "flush", "clear"])),
        min_size=1,
        max_size=10,
    )
)
def test_differential_dirty_set_across_messages(steps: list[tuple[bytes, int, str]]) -> None:
    """Dirty sets that accumulate over several messages, flushes and clears."""
    p = Pair()
    for frame, recv_ns, action in steps:
        feed_both(p, frame, recv_ns)
        assert_same_state(p)
        if action == "flush":
            assert_same_flush(p)
        elif action == "clear":
            p.c_state.clear()
            p.r_state.clear()
        assert_same_state(p)
    assert_same_flush(p)


# -- differential: API surface, errors ---------------------------------------------


def test_slot_dtype_and_price_divisor_match() -> None:
    assert reference.slot_dtype() == compiled.slot_dtype()
    for broker in ("kite", "upstox"):
        assert reference.slot_dtype(broker) == compiled.slot_dtype(broker)
        assert reference.slot_dtype(broker).descr == compiled.slot_dtype(broker).descr
        assert reference.slot_dtype(broker).itemsize == compiled.slot_dtype(broker).itemsize
        assert reference.slot_dtype(broker)["depth"] == compiled.slot_dtype(broker)["depth"]
    assert reference.slot_dtype("kite")["depth"].shape == (5,)
    assert reference.slot_dtype("upstox")["depth"].shape == (30,)
    bad_brokers: list[Any] = ["KITE", "", None, ["kite"]]
    for bad in bad_brokers:
        assert outcome(functools.partial(reference.slot_dtype, bad)) == outcome(
            functools.partial(compiled.slot_dtype, bad)
        )
    for token in [*range(512), *TOKENS, *UNKNOWN_TOKENS, -1, -253, 2**40 + 3, np.uint32(6)]:
        assert reference.price_divisor(token) == compiled.price_divisor(token)
        assert reference.price_divisor(token) == kw.price_divisor(int(token))


GOOD = kw.message(
    [
        kw.ltp_packet(INFY, 150025),
        kw.index_packet(NIFTY50, 1, 2, 3, 4, 5, 6, 7),
        kw.full_packet(
            NIFTY_FUT, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
            1_763_700_001, 11, 12, 13, 1_763_700_002, [(1, 2, 3)] * 5, [(4, 5, 6)] * 5,
        ),
        kw.quote_packet(USDINR, -1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
    ]
)  # fmt: skip


def _ops() -> list[tuple[str, Callable[[Any, Any, Any], Any]]]:
    return [
        ("slot bool", lambda hp, s, d: s.slot(True)),
        ("slot numpy int", lambda hp, s, d: s.slot(np.int64(INFY))),
        ("slot negative", lambda hp, s, d: s.slot(-1)),
        ("slot too big", lambda hp, s, d: s.slot(2**40)),
        ("slot float", lambda hp, s, d: s.slot(1.0)),
        ("slot None", lambda hp, s, d: s.slot(None)),
        ("slot unknown symbol", lambda hp, s, d: s.slot("NSE:NOPE")),
        ("slot symbol", lambda hp, s, d: s.slot("NSE:NIFTY 50")),
        ("slot token", lambda hp, s, d: s.slot(TOKEN_MAX)),
        ("tick unknown", lambda hp, s, d: s.tick(12345)),
        ("tick bytes", lambda hp, s, d: s.tick(b"NSE:INFY")),
        ("tick_at -1", lambda hp, s, d: s.tick_at(-1)),
        ("tick_at n", lambda hp, s, d: s.tick_at(len(TOKENS))),
        ("tick_at float", lambda hp, s, d: s.tick_at(1.5)),
        ("tick_at str", lambda hp, s, d: s.tick_at("1")),
        ("tick_at huge", lambda hp, s, d: s.tick_at(2**70)),
        ("tick_at numpy", lambda hp, s, d: canon(s.tick_at(np.int32(1)))),
        ("tick_at bool", lambda hp, s, d: canon(s.tick_at(True))),
        ("encode unknown", lambda hp, s, d: s.encode(12345)),
        ("encode None", lambda hp, s, d: s.encode(None)),
        ("encode symbol", lambda hp, s, d: s.encode("NSE:INFY")),
        ("len", lambda hp, s, d: len(s)),
        ("broker", lambda hp, s, d: s.broker),
        ("depth levels", lambda hp, s, d: s.array["depth_levels"].tolist()),
        ("have bits", lambda hp, s, d: s.array["have"].tolist()),
        ("times in ms", lambda hp, s, d: s.array[["last_trade_time", "exchange_timestamp"]].tolist()),
        ("upstox decoder on kite state", lambda hp, s, d: hp.UpstoxDecoder(s)),
        ("instruments", lambda hp, s, d: s.instruments is INSTRUMENTS),
        ("decoder state", lambda hp, s, d: d.state is s),
        ("batch[len]", lambda hp, s, d: s.flush()[1]),
        ("batch[-2]", lambda hp, s, d: s.flush()[-2]),
        ("batch[str]", lambda hp, s, d: s.flush()["0"]),
        ("batch[huge]", lambda hp, s, d: s.flush()[2**70]),
        ("empty batch", lambda hp, s, d: (s.flush(), s.flush().frame())[1]),
        ("TickBatch()", lambda hp, s, d: hp.TickBatch()),
        ("feed str", lambda hp, s, d: d.feed("not bytes")),
        ("feed None", lambda hp, s, d: d.feed(None)),
        ("feed recv_ns None", lambda hp, s, d: d.feed(b"\x00", None)),
        ("feed recv_ns str", lambda hp, s, d: d.feed(b"\x00", "5")),
        ("feed recv_ns 2**63", lambda hp, s, d: d.feed(b"\x00", 2**63)),
        ("feed recv_ns -2**63-1", lambda hp, s, d: d.feed(b"\x00", -(2**63) - 1)),
        ("feed recv_ns nan", lambda hp, s, d: d.feed(b"\x00", math.nan)),
        ("feed recv_ns inf", lambda hp, s, d: d.feed(b"\x00", math.inf)),
        ("feed recv_ns float", lambda hp, s, d: (d.feed(GOOD, 1.7), s.tick(INFY)["receive_time_ns"])),
        (
            "feed recv_ns numpy",
            lambda hp, s, d: (d.feed(GOOD, np.int64(-5)), s.tick(INFY)["receive_time_ns"]),
        ),
        ("feed recv_ns bool", lambda hp, s, d: (d.feed(GOOD, True), s.tick(INFY)["receive_time_ns"])),
        ("feed keywords", lambda hp, s, d: d.feed(frame=GOOD, recv_ns=9)),
        ("feed numpy", lambda hp, s, d: d.feed(np.frombuffer(GOOD, dtype=np.uint8), 3)),
        ("feed numpy int16", lambda hp, s, d: d.feed(np.frombuffer(GOOD, dtype=np.int16), 3)),
        ("feed bytes subclass", lambda hp, s, d: d.feed(type("B", (bytes,), {})(GOOD), 3)),
        ("feed memoryview slice", lambda hp, s, d: d.feed(memoryview(b"xx" + GOOD)[2:], 3)),
        ("feed strided memoryview", lambda hp, s, d: d.feed(memoryview(GOOD + GOOD)[::2], 3)),
    ]


@pytest.mark.parametrize(("name", "op"), _ops(), ids=[name for name, _ in _ops()])
def test_same_results_and_errors(name: str, op: Callable[[Any, Any, Any], Any]) -> None:
    p = Pair()
    feed_both(p, GOOD, 42)
    c_result = outcome(lambda: op(compiled, p.c_state, p.c_dec))
    r_result = outcome(lambda: op(reference, p.r_state, p.r_dec))
    assert r_result == c_result
    assert_same_state(p)


def _instruments(tokens: list[Any], divisors: list[Any], symbols: list[Any]) -> types.SimpleNamespace:
    return types.SimpleNamespace(token=tokens, price_divisor=divisors, symbol=symbols, slot=lambda key: 0)


def _with_broker(instruments: types.SimpleNamespace, broker: str) -> types.SimpleNamespace:
    instruments.broker = broker
    return instruments


@pytest.mark.parametrize(
    "instruments",
    [
        _instruments([], [], []),
        _instruments([1], [], []),
        _instruments([1, 2], [100, 100], ["a"]),
        _instruments([1, 1], [100, 100], ["a", "b"]),
        _instruments([1, -1], [100, 100], ["a", "b"]),
        _instruments([1, 2**32], [100, 100], ["a", "b"]),
        _instruments([1, 2], [100, 0], ["a", "b"]),
        _instruments([1, 2], [100, -5], ["a", "b"]),
        _instruments([1, 2], [100, 2**63], ["a", "b"]),
        _instruments([1, 2], [100, 100], ["a", "\udc80"]),
        _instruments([1.9, "2"], [100.5, "100"], [3, None]),
        _instruments([1, "x"], [100, 100], ["a", "b"]),
        _instruments([0, 2**32 - 1, 9], [1, 2**63 - 1, 100], ["", "ü" * 40, "I:X"]),
        _with_broker(_instruments([1, 2], [100, 100], ["a", "b"]), "kite"),
        _with_broker(_instruments([1, 2], [100, 100], ["a", "b"]), "KITE"),
        _with_broker(_instruments([1, 2], [100, 100], ["a", "b"]), "upstox"),  # no Upstox columns
    ],
)
def test_same_constructor_behaviour(instruments: types.SimpleNamespace) -> None:
    c_result = outcome(lambda: compiled.MarketState(instruments))
    r_result = outcome(lambda: reference.MarketState(instruments))
    assert r_result[0] == c_result[0]
    if c_result[0] != "ok":
        assert r_result[1] == c_result[1]
        return
    c_state, r_state = c_result[1], r_result[1]
    assert r_state.broker == c_state.broker == "kite"
    assert r_state.array.dtype == c_state.array.dtype
    assert r_state.array.tobytes() == c_state.array.tobytes()
    for slot in range(len(c_state)):
        assert canon(r_state.tick_at(slot)) == canon(c_state.tick_at(slot))
        assert r_state.encode(int(c_state.array["token"][slot])) == c_state.encode(
            int(c_state.array["token"][slot])
        )


def test_wrong_argument_types() -> None:
    for hp in (compiled, reference):
        with pytest.raises(TypeError):
            hp.KiteDecoder(None)
        with pytest.raises(TypeError):
            hp.KiteDecoder(object())
        with pytest.raises(AttributeError):
            hp.MarketState(None)
    with pytest.raises(TypeError):  # a decoder only writes into its own kind of state
        reference.KiteDecoder(compiled.MarketState(INSTRUMENTS))


def test_every_split_and_clear_agree() -> None:
    p = Pair()
    rnd_packets = [
        kw.full_packet(INFY, 150025, 7, 149990, 4_000_000_000, 11, 12, 149000, 151000, 148000, 149500,
                       1, 2, 3, 4, 5, [(1, 2, 3)] * 5, [(4, -5, 65535)] * 5),
        kw.index_packet(NIFTY50, 2_400_000, 1, 2, 3, 0, -9, 1_763_700_200),
        kw.quote_packet(USDINR, -1, 2**32 - 1, 3, 4, 5, 6, 7, 8, 9, 10),
        kw.ltp_packet(NCO_FUT, 2**31 - 1),
        kw.ltp_packet(UNKNOWN_TOKENS[0], 1),
    ]  # fmt: skip
    msg = kw.message(rnd_packets)
    for cut in range(len(msg) + 1):
        feed_both(p, msg[:cut], 1000 + cut)
        assert_same_state(p)
    assert_same_flush(p)
    p.c_state.clear()
    p.r_state.clear()
    assert_same_state(p)
    assert_same_flush(p)


# -- the reference alone -----------------------------------------------------------


def test_reference_golden_vectors() -> None:
    state = reference.MarketState(INSTRUMENTS)
    dec = reference.KiteDecoder(state)
    assert dec.feed(bytes.fromhex("0001 0008 00063a01 00024a09"), 7) == 1
    tick = state.tick(408065)
    assert tick["instrument_token"] == 408065
    assert tick["last_price"] == 1500.25
    assert tick["mode"] == "ltp" and tick["tradable"] is True
    assert tick["receive_time_ns"] == 7 and tick["seq"] == 1 and tick["symbol"] == "NSE:INFY"
    assert dec.feed(bytes.fromhex("0001 0008 0004d203 318b9fd0"), 8) == 1
    tick = state.tick(315907)
    assert tick["instrument_token"] == 315907 == USDINR
    assert tick["last_price"] == 83.1234
    assert state.tick("CDS:USDINR26NOVFUT")["last_price"] == 83.1234
    batch = state.flush()
    assert batch.slots.tolist() == [0, 2]
    assert msgpack.unpackb(batch.frame()) == [state.tick(INFY), state.tick(USDINR)]


def test_reference_full_packet_and_change() -> None:
    state = reference.MarketState(INSTRUMENTS)
    dec = reference.KiteDecoder(state)
    bids = [(100 + i, 150_000 - 5 * i, 1 + i) for i in range(5)]
    asks = [(200 + i, 150_050 + 5 * i, 65_535 - i) for i in range(5)]
    packet = kw.full_packet(
        INFY, 150_025, 7, 149_990, 4_000_000_000, 11, 12, 149_000, 151_000, 148_000, 149_500,
        1_763_700_001, 13, 14, 15, 1_763_700_002, bids, asks,
    )  # fmt: skip
    assert dec.feed(kw.message([packet, kw.ltp_packet(INFY, -3_775)]), 99) == 2
    t = state.tick("NSE:INFY")
    assert t["mode"] == "ltp" and t["seq"] == 2
    assert t["last_price"] == -37.75
    assert t["volume_traded"] == 4_000_000_000
    assert t["ohlc"] == {"open": 1490.0, "high": 1510.0, "low": 1480.0, "close": 1495.0}
    assert t["change"] == (-37.75 - 1495.0) * 100 / 1495.0
    assert t["depth"]["sell"][4] == {"quantity": 204, "price": 1500.7, "orders": 65_531}
    assert list(t) == [
        "tradable", "mode", "instrument_token", "last_price", "last_traded_quantity", "average_traded_price",
        "volume_traded", "total_buy_quantity", "total_sell_quantity", "ohlc", "change", "last_trade_time",
        "oi", "oi_day_high", "oi_day_low", "exchange_timestamp", "depth", "symbol", "seq", "receive_time_ns",
    ]  # fmt: skip
    assert (t["last_trade_time"], t["exchange_timestamp"]) == (1_763_700_001, 1_763_700_002)  # seconds
    row = state.array[state.slot(INFY)]
    assert (row["last_trade_time"], row["exchange_timestamp"]) == (1_763_700_001_000, 1_763_700_002_000)  # ms
    assert row["depth_levels"] == row["depth_capacity"] == 5 and row["broker"] == 1 and row["has_ext"] == 0
    assert row["depth"][4]["ask_orders"] == 65_531
    assert state.encode(INFY) == msgpack.packb(t)
    assert dec.feed(kw.message([kw.index_packet(NIFTY50, 1, 2, 3, 4, 5, 6)]), 1) == 1
    index = state.tick(NIFTY50)
    assert list(index) == [
        "tradable", "mode", "instrument_token", "last_price", "ohlc", "change", "symbol", "seq", "receive_time_ns"
    ]  # fmt: skip


def test_reference_frame_errors_and_counters() -> None:
    state = reference.MarketState(INSTRUMENTS)
    dec = reference.KiteDecoder(state)
    with pytest.raises(FrameError) as info:
        dec.feed(b"\x00\x02\x00\x0c" + b"\x00" * 12, 1)
    assert info.value.reason == "truncated: packet 1 of 2 has no length header (message is 16 bytes)"
    assert info.value.offset == 16
    assert isinstance(info.value, reference.FrameError)
    assert dec.feed(b"\x00\x01\x00\x0c" + b"\x00" * 12, 1) == 0  # unknown length: skipped
    assert dec.feed(b"\x07", 1) == 0
    assert dec.feed(kw.message([kw.ltp_packet(UNKNOWN_TOKENS[0], 5)]), 1) == 0
    assert dec.stats() == {
        "frames": 2, "packets": 0, "heartbeats": 1, "unknown_tokens": 1, "unknown_packets": 1,
        "frame_errors": 1, "bytes": 16 + 16 + 1 + 12,
    }  # fmt: skip
    assert state.dirty_count == 0


def test_reference_array_is_a_live_read_only_view() -> None:
    state = reference.MarketState(INSTRUMENTS)
    dec = reference.KiteDecoder(state)
    arr = state.array
    assert np.shares_memory(arr, state.array)
    assert arr.dtype == reference.slot_dtype() and arr.shape == (len(TOKENS),)
    assert not arr.flags.writeable
    with pytest.raises(ValueError):
        arr["last_price"][0] = 1
    with pytest.raises(ValueError):
        arr.flags.writeable = True
    dec.feed(kw.message([kw.ltp_packet(INFY, 5)]), 1)
    assert arr["last_price"][0] == 5 and arr["seq"][0] == 1
    state.clear()
    assert arr["last_price"][0] == 0 and arr["token"][0] == INFY and arr["price_divisor"][2] == 10_000_000


def test_reference_receive_time_defaults_to_now() -> None:
    state = reference.MarketState(INSTRUMENTS)
    before = time.time_ns()
    reference.KiteDecoder(state).feed(kw.message([kw.ltp_packet(INFY, 5)]))
    assert before <= state.tick(INFY)["receive_time_ns"] <= time.time_ns()


def test_reference_tick_batch_cannot_be_made_directly() -> None:
    with pytest.raises(TypeError, match=r"made by MarketState\.flush"):
        reference.TickBatch()
    batch = reference.MarketState(INSTRUMENTS).flush()
    assert len(batch) == 0 and batch.data == b"" and batch.frame() == b"\x90"
    assert batch.offsets.tolist() == [0] and batch.slots.tolist() == []
    with pytest.raises(AttributeError):
        batch.data = b"x"  # type: ignore[misc]
