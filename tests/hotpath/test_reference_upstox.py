"""Differential tests of the Upstox path: the compiled ``UpstoxDecoder`` and
``MarketState`` (``fastflow._hotpath``) against their pure-Python twins
(``fastflow.reference``).

Both get the same Upstox instruments and the same sequence of ``FeedResponse``
frames, built with :mod:`fastflow.sim.wire.upstox` (every payload kind, 0-35
depth levels, greeks present or absent, "1d"/"I1"/other OHLC intervals,
unknown and duplicate keys, empty feeds, merged messages, market_info,
unknown fields), plus mutated, truncated and random bytes, with the same
explicit receive times. After every frame they must agree: return value or
FrameError (reason and offset), state bytes, flushed output, tick dicts,
counters and market_status.
"""

from __future__ import annotations

import math
import struct
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
from fastflow.reference.upstox_decoder import llround
from fastflow.sim.wire import upstox as uw

from .test_reference_differential import canon, outcome

# -- a small Upstox universe -------------------------------------------------------------------

# (instrument_key, symbol, segment_id, tradable, price_divisor)
UNIVERSE = [
    ("NSE_EQ|INE009A01021", "NSE:INFY", 1, True, 10_000),
    ("NSE_FO|45450", "NFO:NIFTY26NOV24000CE", 2, True, 10_000),
    ("NCD_FO|12345", "CDS:USDINR26NOVFUT", 3, True, 10_000_000),  # currency: 1e7
    ("NSE_INDEX|Nifty 50", "NSE:NIFTY 50", 9, False, 10_000),
    ("BSE_EQ|INE002A01018", "BSE:RELIANCE", 4, True, 10_000),
    ("MCX_FO|SILVERMÏC", "MCX:SILVERMÏC", 7, True, 10_000),  # non-ASCII: UTF-8 bytes on the wire
    ("NSE_FO|" + "9" * 40, "NFO:BANKNIFTY26NOV59500CE_WITH_A_LONG_NAME", 2, True, 10_000),  # str8 headers
    ("", "X:EMPTYKEY", 0, True, 10_000),  # reached by a map entry without a key (proto3 default "")
]
KEYS = [key for key, *_ in UNIVERSE]
SYMBOLS = [symbol for _, symbol, *_ in UNIVERSE]
UNKNOWN_KEYS = [
    "NSE_EQ|NOPE",
    "NSE_EQ|INE009A0102",
    "NSE_EQ|INE009A010211",
    "nse_eq|ine009a01021",
    "|",
    "\x00",
]


def make_instruments() -> types.SimpleNamespace:
    by_key = {key: slot for slot, key in enumerate(KEYS)}
    by_symbol = {symbol: slot for slot, symbol in enumerate(SYMBOLS)}

    def slot(key: str) -> int:
        return by_key[key] if "|" in key else by_symbol[key]  # KeyError when unknown

    return types.SimpleNamespace(
        broker="upstox",
        token=np.zeros(len(UNIVERSE), dtype=np.uint32),
        price_divisor=np.array([div for *_, div in UNIVERSE], dtype=np.int64),
        symbol=np.array(SYMBOLS, dtype=object),
        segment_id=np.array([seg for _, _, seg, _, _ in UNIVERSE], dtype=np.uint8),
        tradable=np.array([t for _, _, _, t, _ in UNIVERSE], dtype=bool),
        instrument_key=np.array(KEYS, dtype=object),
        slot=slot,
    )


INSTRUMENTS = make_instruments()


class Pair:
    """A compiled and a reference Upstox state/decoder on the same instruments."""

    def __init__(self) -> None:
        self.c_state = compiled.MarketState(INSTRUMENTS)
        self.r_state = reference.MarketState(INSTRUMENTS)
        self.c_dec = compiled.UpstoxDecoder(self.c_state)
        self.r_dec = reference.UpstoxDecoder(self.r_state)


def assert_same_state(p: Pair) -> None:
    c_arr, r_arr = p.c_state.array, p.r_state.array
    assert r_arr.dtype == c_arr.dtype == compiled.slot_dtype("upstox")
    assert r_arr.shape == c_arr.shape
    assert r_arr.tobytes() == c_arr.tobytes()
    assert p.r_state.dirty_count == p.c_state.dirty_count
    assert p.r_state.stats() == p.c_state.stats()
    assert p.r_dec.stats() == p.c_dec.stats()
    assert p.r_dec.market_status == p.c_dec.market_status
    for slot, (key, symbol) in enumerate(zip(KEYS, SYMBOLS, strict=True)):
        c_tick = p.c_state.tick_at(slot)
        assert canon(p.r_state.tick_at(slot)) == canon(c_tick)
        assert canon(p.r_state.tick(symbol)) == canon(c_tick)
        blob = p.c_state.encode(symbol)
        assert p.r_state.encode(symbol) == blob
        assert msgpack.packb(c_tick) == blob
        if "|" in key:
            assert canon(p.r_state.tick(key)) == canon(c_tick)


def assert_same_flush(p: Pair) -> None:
    c_batch, r_batch = p.c_state.flush(), p.r_state.flush()
    assert r_batch.data == c_batch.data
    assert r_batch.slots.tolist() == c_batch.slots.tolist()
    assert r_batch.offsets.tolist() == c_batch.offsets.tolist()
    assert r_batch.frame() == c_batch.frame()
    assert list(r_batch) == list(c_batch)
    assert p.r_state.dirty_count == p.c_state.dirty_count == 0


def feed_both(p: Pair, frame: bytes, recv_ns: int, wrap: Callable[[bytes], Any] = bytes) -> Any:
    c_result = outcome(lambda: p.c_dec.feed(wrap(frame), recv_ns))
    r_result = outcome(lambda: p.r_dec.feed(wrap(frame), recv_ns))
    assert r_result == c_result, frame.hex()
    return c_result


# -- hypothesis strategies: Upstox frames -------------------------------------------------------

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
int64s = st.one_of(
    st.integers(0, 10**7),
    st.integers(I64_MIN, I64_MAX),
    st.sampled_from([0, 1, -1, 999, -999, -1000, -1001, I64_MIN, I64_MAX, 1_732_089_600_123]),
)
# Times (ltt, currentTs) span the whole int64 range, INT64_MIN included (where
# the compiled ms_to_s once overflowed; see test_compiled_ms_to_s_near_int64_min).
TIME_MIN = I64_MIN
epoch_ms = st.one_of(
    st.integers(1_700_000_000_000, 1_800_000_000_000),
    int64s.filter(lambda v: v >= TIME_MIN),
    st.sampled_from([TIME_MIN, TIME_MIN + 1, -1, -999, -1000, -1001]),
)


def _bits_to_double(bits: int) -> float:
    (value,) = struct.unpack("<d", struct.pack("<Q", bits))
    return float(value)


doubles = st.one_of(
    st.floats(0, 100_000).map(lambda x: round(x, 2)),  # plausible prices
    st.integers(-(10**9), 10**9).map(lambda n: (n + 0.5) / 10_000),  # halfway cases (near them)
    st.integers(-(10**9), 10**9).map(lambda n: (n + 0.5) / 10_000_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(0, 2**64 - 1).map(_bits_to_double),  # NaN payloads, subnormals, anything
    st.sampled_from([0.0, -0.0, 0.5, -0.5, 1.5, -2.5, 9.0e14, -9.0e14, 8.99e14, 9.0e11, 9.22e18, 1e300]),
)

intervals = st.sampled_from(["1d", "I1", "1d", "I1", "I30", "1w", "", "I", "1dd", "d1"])
ltpcs = st.builds(uw.ltpc, doubles, epoch_ms, int64s, doubles, iep=st.one_of(st.none(), doubles))
quotes = st.builds(uw.quote, int64s, doubles, int64s, doubles)
ohlcs = st.builds(uw.ohlc, intervals, doubles, doubles, doubles, doubles, int64s, epoch_ms)
greeks = st.builds(uw.greeks, doubles, doubles, doubles, doubles, doubles)
maybe = st.none  # shorthand: st.one_of(maybe(), x) is "absent or x"

market_full = st.builds(
    uw.market_full_feed,
    st.one_of(maybe(), ltpcs),
    st.one_of(maybe(), st.lists(quotes, max_size=35), st.lists(quotes, min_size=28, max_size=35)),
    st.one_of(maybe(), greeks),
    st.one_of(maybe(), st.lists(ohlcs, max_size=4)),
    doubles,
    int64s,
    doubles,
    st.one_of(st.just(0.0), doubles),
    doubles,
    doubles,
    iep=doubles,
    rp=doubles,
    ieq=int64s,
    iiq_total=int64s,
    iiq_m=int64s,
    cas_eligible=st.booleans(),
)
index_full = st.builds(
    uw.index_full_feed, st.one_of(maybe(), ltpcs), st.one_of(maybe(), st.lists(ohlcs, max_size=4))
)
first_level = st.builds(
    uw.first_level_with_greeks,
    st.one_of(maybe(), ltpcs),
    st.one_of(maybe(), quotes),
    st.one_of(maybe(), greeks),
    int64s,
    doubles,
    st.one_of(st.just(0.0), doubles),
)
request_modes = st.one_of(st.none(), st.sampled_from([0, 1, 2, 3, 4, -1]), int64s)

single_feeds = st.one_of(
    st.builds(lambda m, r: uw.feed(ltpc=m, request_mode=r), ltpcs, request_modes),
    st.builds(lambda m, r: uw.feed(full_market=m, request_mode=r), market_full, request_modes),
    st.builds(lambda m, r: uw.feed(full_index=m, request_mode=r), index_full, request_modes),
    st.builds(lambda m, r: uw.feed(first_level=m, request_mode=r), first_level, request_modes),
    st.just(b""),  # an empty Feed
    request_modes.map(lambda r: uw.int64_field(4, r or 0)),  # requestMode only
    st.just(uw.length_delimited(2, b"")),  # an empty fullFeed
    st.just(uw.length_delimited(2, uw.length_delimited(1, b""))),  # an empty marketFF
)

# Unknown fields of every wire type (field numbers no message here uses).
unknown_fields = st.one_of(
    st.builds(
        lambda n, v: uw.tag(n, uw.VARINT) + uw.varint(v), st.integers(17, 200), st.integers(0, 2**64 - 1)
    ),
    st.builds(lambda n, b: uw.tag(n, uw.I64) + b, st.integers(17, 200), st.binary(min_size=8, max_size=8)),
    st.builds(lambda n, b: uw.tag(n, uw.I32) + b, st.integers(17, 200), st.binary(min_size=4, max_size=4)),
    st.builds(uw.length_delimited, st.integers(17, 2**29 - 1), st.binary(max_size=12)),
)


@st.composite
def feeds(draw: st.DrawFn) -> bytes:
    """A Feed: one payload, or several concatenated (a parser merges them:
    the last oneof member wins, sub-messages merge, repeated fields append),
    with unknown fields around."""
    parts = draw(st.lists(single_feeds, min_size=1, max_size=3 if draw(st.booleans()) else 1))
    if draw(st.integers(0, 4)) == 0:
        parts.insert(draw(st.integers(0, len(parts))), draw(unknown_fields))
    return b"".join(parts)


keys = st.one_of(
    st.sampled_from(KEYS), st.sampled_from(KEYS), st.sampled_from(UNKNOWN_KEYS), st.text(max_size=12)
)


@st.composite
def map_entries(draw: st.DrawFn) -> bytes:
    """One feeds map entry: usually key + value, sometimes without either, with
    the value twice (merged), the key twice (last wins) or an unknown field."""
    key, value = draw(keys), draw(feeds())
    shape = draw(
        st.sampled_from(["normal"] * 6 + ["no key", "no value", "two values", "two keys", "unknown"])
    )
    key_field = uw.length_delimited(1, key.encode())
    value_field = uw.length_delimited(2, value)
    if shape == "no key":
        body = value_field
    elif shape == "no value":
        body = key_field
    elif shape == "two values":
        body = key_field + value_field + uw.length_delimited(2, draw(feeds()))
    elif shape == "two keys":
        body = uw.length_delimited(1, draw(keys).encode()) + value_field + key_field
    elif shape == "unknown":
        body = draw(unknown_fields) + key_field + value_field
    else:
        body = key_field + value_field
    return uw.length_delimited(2, body)


statuses = st.one_of(st.integers(0, 6), st.sampled_from([7, 100, -1, I64_MAX, I64_MIN]))
market_infos = st.builds(
    uw.market_info,
    st.lists(
        st.tuples(st.sampled_from(["NSE_EQ", "NSE_FO", "BSE_EQ", "MCX_FO", "", "NCD_FO"]), statuses),
        max_size=4,
    ),
    cas_market_status=st.lists(
        st.tuples(
            st.sampled_from(["NSE_EQ", "BSE_EQ"]), st.builds(uw.status_info, st.text(max_size=5), int64s)
        ),
        max_size=2,
    ),
)
frame_types = st.one_of(st.sampled_from([0, 1, 1, 1, 2]), st.sampled_from([3, -1, 2**40]))


@st.composite
def valid_frames(draw: st.DrawFn) -> bytes:
    """A FeedResponse: type, the feeds map (duplicates and all), currentTs and
    marketInfo, sometimes with unknown fields, or as two messages concatenated."""
    entries = draw(st.lists(map_entries(), max_size=5))
    if draw(st.booleans()) and entries:  # the same entries again: duplicate keys
        entries += draw(st.lists(st.sampled_from(entries), min_size=1, max_size=2))
    frame_type = draw(frame_types)
    current_ts = draw(st.one_of(st.just(0), epoch_ms))
    info = draw(st.one_of(st.none(), st.none(), market_infos))
    parts = [
        uw.int64_field(1, frame_type),
        *entries,
        uw.int64_field(3, current_ts),
        uw.message_field(4, info),
    ]
    if draw(st.integers(0, 3)) == 0:
        parts.insert(draw(st.integers(0, len(parts))), draw(unknown_fields))
    if draw(st.integers(0, 3)) == 0:  # fields in any order: parsers must not care
        parts = draw(st.permutations(parts))
    frame = b"".join(parts)
    if draw(st.integers(0, 5)) == 0:  # two messages back to back parse as one, merged
        frame += uw.feed_response([(draw(st.sampled_from(KEYS)), draw(feeds()))], type=draw(frame_types))
    return frame


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(valid_frames()))
    kind = draw(st.sampled_from(["truncate", "extend", "flip", "insert", "delete", "set"]))
    if kind == "truncate" and frame:
        del frame[draw(st.integers(0, len(frame) - 1)) :]
    elif kind == "extend":
        frame += draw(st.binary(min_size=1, max_size=12))
    elif kind == "flip" and frame:
        for _ in range(draw(st.integers(1, 3))):
            frame[draw(st.integers(0, len(frame) - 1))] ^= draw(st.integers(1, 255))
    elif kind == "insert":
        at = draw(st.integers(0, len(frame)))
        frame[at:at] = draw(st.binary(min_size=1, max_size=8))
    elif kind == "delete" and frame:
        at = draw(st.integers(0, len(frame) - 1))
        del frame[at : at + draw(st.integers(1, 8))]
    elif kind == "set" and frame:  # a tag, length or value byte set to a telling value
        frame[draw(st.integers(0, len(frame) - 1))] = draw(
            st.sampled_from([0x00, 0x07, 0x0B, 0x0C, 0x80, 0xFF])
        )
    return bytes(frame)


random_frames = st.one_of(
    st.binary(max_size=40),
    st.builds(lambda b: b"\x12" + b, st.binary(max_size=40)),  # starts like a feeds entry
)
frames = st.one_of(
    valid_frames(), valid_frames(), valid_frames(), mutated_frames(), mutated_frames(), random_frames
)
recv_times = st.one_of(
    st.integers(1_700_000_000_000_000_000, 1_800_000_000_000_000_000),
    st.integers(1, I64_MAX),
    st.integers(I64_MIN, -1),
)
wrappers = st.sampled_from([bytes, bytearray, memoryview])


HYPOTHESIS = settings(max_examples=450, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HYPOTHESIS
@given(st.lists(st.tuples(frames, recv_times, wrappers), min_size=1, max_size=6))
def test_differential_flush_after_every_frame(steps: list[tuple[bytes, int, Any]]) -> None:
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
        max_size=8,
    )
)
def test_differential_dirty_set_across_frames(steps: list[tuple[bytes, int, str]]) -> None:
    """State and dirty sets that accumulate over several frames, flushes and clears."""
    p = Pair()
    for frame, recv_ns, action in steps:
        feed_both(p, frame, recv_ns)
        if action == "flush":
            assert_same_flush(p)
        elif action == "clear":
            p.c_state.clear()
            p.r_state.clear()
        assert_same_state(p)
    assert_same_flush(p)


# -- fixed frames: every split, each error kind ------------------------------------------------

FULL_D30 = uw.feed(
    full_market=uw.market_full_feed(
        uw.ltpc(1234.55, 1_732_089_600_123, 75, 1200.0),
        [uw.quote(10 + i, 1234.5 - i * 0.05, 20 + i, 1234.6 + i * 0.05) for i in range(33)],
        uw.greeks(0.5, -1.25, 0.001, 2.5, 0.1),
        [uw.ohlc("1d", 1200.5, 1250.0, 1190.25, 1210.0, 123456, 1_732_000_000_000),
         uw.ohlc("I1", 1234.0, 1235.0, 1233.0, 1234.5, 789, 1_732_089_600_000)],
        1230.125, 4_000_000_000, 12345.0, 0.25, 1e6, 2.5e6,
    ),
    request_mode=uw.FULL_D30,
)  # fmt: skip
GOOD = uw.feed_response(
    [
        ("NSE_FO|45450", FULL_D30),
        ("NSE_EQ|INE009A01021", uw.feed(ltpc=uw.ltpc(1500.25, 1_732_089_600_999, 3, 1495.0))),
        (
            "NSE_INDEX|Nifty 50",
            uw.feed(full_index=uw.index_full_feed(uw.ltpc(24000.5), [uw.ohlc("1d", 1, 2, 3, 4)])),
        ),
        (
            "NCD_FO|12345",
            uw.feed(first_level=uw.first_level_with_greeks(uw.ltpc(83.12345), uw.quote(1, 83.1))),
        ),
        ("NSE_EQ|NOPE", uw.feed(ltpc=uw.ltpc(1.0))),
        ("BSE_EQ|INE002A01018", b""),
    ],
    current_ts=1_732_089_601_500,
    market_info=uw.market_info([("NSE_EQ", uw.NORMAL_OPEN), ("NSE_FO", 9)]),
)


def test_every_split_clear_and_wrapper_agree() -> None:
    p = Pair()
    for cut in range(len(GOOD) + 1):
        feed_both(p, GOOD[:cut], 1000 + cut, memoryview if cut % 2 else bytes)
        assert_same_state(p)
    assert_same_flush(p)
    p.c_state.clear()
    p.r_state.clear()
    assert_same_state(p)
    assert_same_flush(p)


def _at(feed: bytes) -> bytes:
    """A frame of one feeds entry (for NSE:INFY) whose value is ``feed``."""
    return uw.length_delimited(
        2, uw.length_delimited(1, b"NSE_EQ|INE009A01021") + uw.length_delimited(2, feed)
    )


def _market_levels(body: bytes) -> bytes:
    """A Feed whose fullFeed.marketFF.marketLevel is ``body``."""
    return uw.length_delimited(2, uw.length_delimited(1, uw.length_delimited(2, body)))


ERROR_FRAMES = {
    "truncated varint": b"\x08",
    "field number 2**29": uw.varint((2**29 << 3) | 0) + b"\x01",
    "field number above 2**32": uw.varint(((2**32 + 3) << 3) | 0) + uw.varint(1_732_089_600_000),
    "long varint": b"\x08" + b"\xff" * 10 + b"\x01",
    "ten-byte varint then end": b"\x08" + b"\xff" * 10,
    "field zero": b"\x00\x01",
    "field zero, group wire type": b"\x03",
    "group": b"\x0b",
    "wire type 7": b"\x0f",
    "wrong wire type top": b"\x09" + bytes(8),
    "length past end": b"\x12\x05abc",
    "length varint huge": b"\x12" + b"\xff" * 9 + b"\x01",
    "truncated fixed64 skip": b"\xf9\x01" + bytes(7),
    "truncated fixed32 skip": b"\xfd\x01" + bytes(3),
    "wrong wire type in entry": uw.length_delimited(2, b"\x08\x01"),
    "LTPC double truncated": _at(uw.length_delimited(1, b"\x09" + bytes(4))),
    "LTPC wrong wire type": _at(uw.length_delimited(1, b"\x11" + bytes(8))),
    "Quote bad": _at(uw.length_delimited(3, uw.length_delimited(2, b"\x11\x01"))),
    "MarketLevel bad": _at(_market_levels(uw.length_delimited(1, b"\x08"))),
    "dropped level bad": _at(
        _market_levels(
            b"".join(uw.length_delimited(1, uw.quote(i)) for i in range(31)) + uw.length_delimited(1, b"\x10")
        )
    ),
    "OHLC interval wire type": _at(
        uw.length_delimited(
            2, uw.length_delimited(2, uw.length_delimited(2, uw.length_delimited(1, b"\x08\x01")))
        )
    ),
    "greeks bad": _at(uw.length_delimited(3, uw.length_delimited(3, b"\x08\x01"))),
    "requestMode wire type": _at(b"\x22\x00"),
    "market_info bad": uw.feed_response(
        [("NSE_EQ|INE009A01021", uw.feed(ltpc=uw.ltpc(1.0)))],
        market_info=uw.market_info([("NSE_EQ", 2)]) + b"\x0a\x02\x10",
    ),
    "market_info status wire type": uw.message_field(4, uw.length_delimited(1, b"\x11" + bytes(8))),
    "second entry bad after a good one": uw.feed_response([("NSE_FO|45450", FULL_D30)]) + _at(b"\x0a\x05"),
}


@pytest.mark.parametrize("frame", ERROR_FRAMES.values(), ids=list(ERROR_FRAMES))
def test_frame_errors_agree(frame: bytes) -> None:
    p = Pair()
    result = feed_both(p, frame, 5)
    assert result[0] == "FrameError", result
    assert_same_state(p)
    assert_same_flush(p)


EDGE_FRAMES = {
    "empty frame": b"",
    "largest field number 2**29 - 1 is unknown, skipped": uw.varint(((2**29 - 1) << 3) | 0) + b"\x01",
    "ten-byte varint, bits past 64 dropped": b"\x18" + b"\xff" * 9 + b"\x7f",
    "type out of range": uw.int64_field(1, 2**40),
    "negative type": uw.int64_field(1, -1),
    "status names and numbers": uw.message_field(4, uw.market_info([("A", 5), ("B", 6), ("C", -1), ("Ï", 0)])),
    "segment entry without key or status": uw.message_field(4, uw.length_delimited(1, b"")),
    "segment key not UTF-8": uw.message_field(4, uw.length_delimited(1, b"\x0a\x02\xff\xfe\x10\x02")),
    "entry without key": uw.length_delimited(2, uw.length_delimited(2, uw.feed(ltpc=uw.ltpc(1.5)))),
    "entry key not UTF-8": uw.length_delimited(2, b"\x0a\x01\xff" + uw.length_delimited(2, uw.feed(ltpc=uw.ltpc(1)))),
    "full_d30 by request mode only": uw.feed_response(
        [(KEYS[1], uw.feed(full_market=uw.market_full_feed(levels=[uw.quote(1, 2.0)]), request_mode=uw.FULL_D30))]
    ),
    "marketFF then indexFF in one fullFeed": uw.feed_response(
        [(KEYS[0], uw.length_delimited(2, uw.length_delimited(1, uw.market_full_feed(atp=5.0))
                                         + uw.length_delimited(2, uw.index_full_feed(uw.ltpc(3.0)))))]
    ),
    "firstDepth twice merges": uw.feed_response(
        [(KEYS[1], uw.feed(first_level=uw.first_level_with_greeks(uw.ltpc(1.0), uw.quote(1, 2.0)))
                   + uw.feed(first_level=uw.first_level_with_greeks(first_depth=uw.quote(0, 0.0, 3, 4.0))))]
    ),
    "levels appended across repeated marketLevel": uw.feed_response(
        [(KEYS[2], uw.feed(full_market=uw.market_full_feed(levels=[uw.quote(i, i / 3) for i in range(20)]))
                   + uw.feed(full_market=uw.market_full_feed(levels=[uw.quote(i, -i / 7) for i in range(20)])))]
    ),
    "out-of-range prices count as bad values": uw.feed_response(
        [(KEYS[0], uw.feed(full_market=uw.market_full_feed(uw.ltpc(9.0e14, 1, 2, math.nan), atp=-math.inf,
                                                            oi=9.3e18, tbq=-9.0e18, tsq=8.9e18)))]
    ),
}  # fmt: skip


@pytest.mark.parametrize("frame", EDGE_FRAMES.values(), ids=list(EDGE_FRAMES))
def test_edge_frames_agree(frame: bytes) -> None:
    p = Pair()
    for recv_ns in (5, 6):  # twice: merges into existing state too
        result = feed_both(p, frame, recv_ns)
        assert result[0] == "ok", result
        assert_same_state(p)
        assert_same_flush(p)


# -- API surface ---------------------------------------------------------------------------------


def _ops() -> list[tuple[str, Callable[[Any, Any, Any], Any]]]:
    return [
        ("broker", lambda hp, s, d: s.broker),
        ("slot key", lambda hp, s, d: s.slot("NSE_FO|45450")),
        ("slot symbol", lambda hp, s, d: s.slot("NSE:NIFTY 50")),
        ("slot unknown key", lambda hp, s, d: s.slot("NSE_EQ|NOPE")),
        ("slot int", lambda hp, s, d: s.slot(0)),
        ("slot numpy int", lambda hp, s, d: s.slot(np.uint32(7))),
        ("slot huge int", lambda hp, s, d: s.slot(2**70)),
        ("slot bool", lambda hp, s, d: s.slot(True)),
        ("slot float", lambda hp, s, d: s.slot(1.0)),
        ("tick int", lambda hp, s, d: s.tick(5)),
        ("encode int", lambda hp, s, d: s.encode(-1)),
        ("tick key", lambda hp, s, d: canon(s.tick("NSE_FO|45450"))),
        ("tick_at n", lambda hp, s, d: s.tick_at(len(KEYS))),
        ("market_status copy", lambda hp, s, d: (d.market_status.clear(), d.market_status)[1]),
        ("decoder state", lambda hp, s, d: d.state is s),
        ("feed str", lambda hp, s, d: d.feed("not bytes")),
        ("feed None", lambda hp, s, d: d.feed(None)),
        ("feed recv_ns None", lambda hp, s, d: d.feed(b"", None)),
        ("feed recv_ns float", lambda hp, s, d: d.feed(GOOD, 1.5)),
        ("feed recv_ns nan", lambda hp, s, d: d.feed(GOOD, math.nan)),
        ("feed recv_ns 2**63", lambda hp, s, d: d.feed(GOOD, 2**63)),
        (
            "feed recv_ns numpy",
            lambda hp, s, d: (d.feed(GOOD, np.int64(-5)), s.tick_at(1)["receive_time_ns"]),
        ),
        ("feed keywords", lambda hp, s, d: d.feed(frame=GOOD, recv_ns=9)),
        ("feed numpy", lambda hp, s, d: d.feed(np.frombuffer(GOOD, dtype=np.uint8), 3)),
        ("feed strided memoryview", lambda hp, s, d: d.feed(memoryview(GOOD + GOOD)[::2], 3)),
        ("feed empty frame", lambda hp, s, d: d.feed(b"", 3)),
        (
            "kite decoder on upstox state",
            lambda hp, s, d: hp.KiteDecoder(s).feed(b"\x00\x01\x00\x08" + bytes(8), 1),
        ),
        (
            "upstox decoder on kite state",
            lambda hp, s, d: hp.UpstoxDecoder(hp.MarketState(_kite_instruments())),
        ),
        ("upstox decoder None", lambda hp, s, d: type(_raises(lambda: hp.UpstoxDecoder(None)))),
        ("slot_dtype bad broker", lambda hp, s, d: hp.slot_dtype("zerodha")),
        ("slot_dtype list", lambda hp, s, d: hp.slot_dtype(["kite"])),
    ]


def _raises(fn: Callable[[], Any]) -> BaseException:
    try:
        fn()
    except Exception as exc:
        return exc
    raise AssertionError("no exception")


def _kite_instruments() -> types.SimpleNamespace:
    return types.SimpleNamespace(
        token=[256265], price_divisor=[100], symbol=["NSE:NIFTY 50"], slot=lambda k: 0
    )


@pytest.mark.parametrize(("name", "op"), _ops(), ids=[name for name, _ in _ops()])
def test_same_results_and_errors(name: str, op: Callable[[Any, Any, Any], Any]) -> None:
    p = Pair()
    feed_both(p, GOOD, 42)
    c_result = outcome(lambda: op(compiled, p.c_state, p.c_dec))
    r_result = outcome(lambda: op(reference, p.r_state, p.r_dec))
    assert r_result == c_result
    assert_same_state(p)


def _upstox(**columns: Any) -> types.SimpleNamespace:
    base = {
        "broker": "upstox",
        "token": [0, 0],
        "price_divisor": [10_000, 10_000],
        "symbol": ["NSE:A", "NSE:B"],
        "segment_id": [1, 2],
        "tradable": [True, False],
        "instrument_key": ["NSE_EQ|A", "NSE_EQ|B"],
        "slot": lambda key: 0,
    }
    base.update(columns)
    return types.SimpleNamespace(**base)


@pytest.mark.parametrize(
    "instruments",
    [
        _upstox(),
        _upstox(broker="zerodha"),
        _upstox(broker=None),
        _upstox(instrument_key=["NSE_EQ|A", "NSE_EQ|A"]),
        _upstox(instrument_key=["NSE_EQ|A"]),
        _upstox(instrument_key=["NSE_EQ|A", "\udc80"]),
        _upstox(instrument_key=[1, 2.5]),
        _upstox(segment_id=[1]),
        _upstox(segment_id=[1, 256]),
        _upstox(segment_id=[-1, 2]),
        _upstox(segment_id=["3", 4.9]),
        _upstox(tradable=[0, ""]),
        _upstox(token=[0, -1]),
        _upstox(token=[2**32, 0]),
        _upstox(token=[7, 7]),  # Upstox exchange tokens need not be unique
        _upstox(price_divisor=[10_000, 0]),
        _upstox(price_divisor=[10_000, 2**63]),
        _upstox(symbol=["a", "\udc80"]),
        _upstox(token=[], price_divisor=[], symbol=[], segment_id=[], tradable=[], instrument_key=[]),
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
    assert r_state.broker == c_state.broker
    assert r_state.array.tobytes() == c_state.array.tobytes()
    for slot in range(len(c_state)):
        assert canon(r_state.tick_at(slot)) == canon(c_state.tick_at(slot))


def test_slot_dtypes_match() -> None:
    for broker in ("kite", "upstox"):
        assert reference.slot_dtype(broker) == compiled.slot_dtype(broker)
        assert reference.slot_dtype(broker).descr == compiled.slot_dtype(broker).descr
        assert reference.slot_dtype(broker).itemsize == compiled.slot_dtype(broker).itemsize
    assert reference.slot_dtype() == compiled.slot_dtype("kite")
    assert reference.slot_dtype("upstox")["depth"].shape == (30,)
    assert reference.slot_dtype("kite")["depth"].shape == (5,)


# -- the reference alone -------------------------------------------------------------------------


def test_llround_rounds_half_away_from_zero() -> None:
    cases = {
        0.5: 1,
        -0.5: -1,
        1.5: 2,
        2.5: 3,
        -2.5: -3,
        0.49999999999999994: 0,
        -0.0: 0,
        4503599627370497.0: 4503599627370497,
    }
    for value, expected in cases.items():
        assert llround(value) == expected


def test_reference_golden_frame() -> None:
    state = reference.MarketState(INSTRUMENTS)
    dec = reference.UpstoxDecoder(state)
    assert dec.feed(GOOD, 77) == 4
    t = state.tick("NSE_FO|45450")
    assert t["mode"] == "full_d30" and t["instrument_key"] == "NSE_FO|45450"
    assert t["last_price"] == 1234.55 and t["last_traded_quantity"] == 75
    assert t["last_trade_time"] == 1_732_089_600 and t["exchange_timestamp"] == 1_732_089_601
    assert t["ohlc"] == {"open": 1200.5, "high": 1250.0, "low": 1190.25, "close": 1200.0}
    assert len(t["depth"]["buy"]) == 30 and t["depth"]["buy"][0] == {"quantity": 10, "price": 1234.5}
    assert t["greeks"] == {"delta": 0.5, "theta": -1.25, "gamma": 0.001, "vega": 2.5, "rho": 0.1}
    assert t["iv"] == 0.25 and t["volume_traded"] == 4_000_000_000 and t["oi"] == 12345
    assert (t["total_buy_quantity"], t["total_sell_quantity"]) == (1_000_000, 2_500_000)
    assert t["average_traded_price"] == 1230.125
    assert t["receive_time_ns"] == 77 and t["seq"] == 1
    arr = state.array[state.slot("NSE_FO|45450")]
    assert arr["bar_close"] == 12_345_000 and arr["bar_ts"] == 1_732_089_600_000
    assert arr["last_trade_time"] == 1_732_089_600_123  # the state keeps milliseconds
    assert state.tick("NCD_FO|12345")["last_price"] == 83.12345  # currency divisor 1e7
    assert state.tick("NCD_FO|12345")["mode"] == "option_greeks"
    assert state.tick("NSE:NIFTY 50")["mode"] == "full" and state.tick("NSE:NIFTY 50")["tradable"] is False
    assert state.tick("NSE:INFY")["mode"] == "ltpc"
    assert dec.market_status == {"NSE_EQ": "NORMAL_OPEN", "NSE_FO": 9}
    assert dec.stats() == {
        "frames": 1, "feeds": 4, "initial_frames": 0, "live_frames": 1, "market_info_frames": 0,
        "unknown_keys": 1, "empty_feeds": 1, "bad_values": 0, "dropped_levels": 3, "frame_errors": 0,
        "bytes": len(GOOD),
    }  # fmt: skip
    batch = state.flush()
    assert msgpack.unpackb(batch.frame()) == [state.tick_at(int(s)) for s in batch.slots]


def test_reference_frame_error_offsets() -> None:
    dec = reference.UpstoxDecoder(reference.MarketState(INSTRUMENTS))
    expected = {
        b"\x08": ("truncated varint in FeedResponse", 1),
        b"\x0b": ("unsupported wire type 3 (field 1) in FeedResponse", 0),
        b"\x09": ("field 1 of FeedResponse has wire type 1, expected 0", 1),
        b"\x12\x05abc": ("length 5 runs past the end of FeedResponse (3 bytes left)", 1),
        b"\x08" + b"\xff" * 10 + b"\x01": ("varint longer than 10 bytes in FeedResponse", 1),
        b"\x00": ("field number 0 in FeedResponse", 0),
        b"\x18\x01\xf9\x01\x00": ("truncated fixed-size value in FeedResponse", 4),
    }
    for frame, (reason, offset) in expected.items():
        with pytest.raises(FrameError) as info:
            dec.feed(frame, 1)
        assert (info.value.reason, info.value.offset) == (reason, offset)
    assert dec.stats()["frame_errors"] == len(expected)


@pytest.mark.parametrize("ms", [I64_MIN, I64_MIN + 1, I64_MIN + 999])
def test_compiled_ms_to_s_near_int64_min(ms: int) -> None:
    """Epoch seconds are floor(ms / 1000) for every int64 ms, also within 999
    of INT64_MIN (the compiled ms_to_s once overflowed there)."""
    p = Pair()
    frame = uw.feed_response([(KEYS[0], uw.feed(ltpc=uw.ltpc(1.0, ms)))], current_ts=ms)
    feed_both(p, frame, 1)
    tick = p.c_state.tick_at(0)
    assert (tick["last_trade_time"], tick["exchange_timestamp"]) == (ms // 1000, ms // 1000)


@pytest.mark.parametrize("tradable", [[True], [True, False, True]], ids=["short", "long"])
def test_reference_checks_the_tradable_column_length(tradable: list[bool]) -> None:
    with pytest.raises(ValueError, match="instrument columns have different lengths"):
        reference.MarketState(_upstox(tradable=tradable))


COMPILED_TRADABLE_LENGTH = """
import sys, types
from fastflow import _hotpath
n, t = 5, int(sys.argv[1])
columns = dict(broker="upstox", token=[0] * n, price_divisor=[10_000] * n, symbol=list("abcde"),
               segment_id=[1] * n, tradable=[True] * t, instrument_key=list("ABCDE"), slot=lambda key: 0)
try:
    _hotpath.MarketState(types.SimpleNamespace(**columns))
except ValueError as exc:
    print(exc)
"""


@pytest.mark.parametrize("length", [2, 6], ids=["short", "long"])
def test_compiled_checks_the_tradable_column_length(length: int) -> None:
    """The compiled constructor checks the tradable column's length too (it
    once read past the end of a short one). Run in a subprocess, so that a
    regression crashes the child, not the suite."""
    import subprocess
    import sys

    argv = [sys.executable, "-c", COMPILED_TRADABLE_LENGTH, str(length)]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stdout.strip()) == (0, "instrument columns have different lengths")
