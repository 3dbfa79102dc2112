"""Fuzz: random bytes and mutated valid messages either decode or raise
FrameError; nothing else, no crash, and a rejected message changes nothing.

``FASTFLOW_FUZZ_EXAMPLES`` raises the example count (``make fuzz``)."""

from __future__ import annotations

import os
import types

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastflow.errors import FrameError
from fastflow.instruments import Instruments
from fastflow.sim.wire import kite as kw

from .. import kite_frames as kf
from ..conftest import TOKENS

EXAMPLES = int(os.environ.get("FASTFLOW_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def valid_message(seed: int) -> bytes:
    packets = []
    for i, token in enumerate(TOKENS):
        if (seed >> i) & 1:
            continue
        if token & 0xFF == 9:
            packets.append([kf.ltp(token), kf.index_quote(token), kf.index_full(token)][(seed + i) % 3])
        else:
            packets.append([kf.ltp(token), kf.quote(token), kf.full(token)][(seed + i) % 3])
    return kw.message(packets)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(valid_message(draw(st.integers(0, 2**12))))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "extend"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[pos:]
        elif op == "extend":
            data += draw(st.binary(max_size=200))
    return bytes(data)


def check(hp: types.ModuleType, instruments: Instruments, data: bytes) -> None:
    state = hp.MarketState(instruments)
    dec = hp.KiteDecoder(state)
    before = state.array.tobytes()
    try:
        applied = dec.feed(data, 1)
    except FrameError as exc:
        assert 0 <= exc.offset <= len(data)
        assert state.array.tobytes() == before
        assert state.dirty_count == 0
        return
    assert 0 <= applied <= max(0, (len(data) - 2) // 10)
    assert state.dirty_count <= applied
    batch = state.flush()  # whatever was decoded also encodes
    assert len(batch) == len({int(s) for s in batch.slots})


@FUZZ
@given(data=st.binary(max_size=600))
def test_random_bytes(hp: types.ModuleType, instruments: Instruments, data: bytes) -> None:
    check(hp, instruments, data)


@FUZZ
@given(data=mutated())
def test_mutated_messages(hp: types.ModuleType, instruments: Instruments, data: bytes) -> None:
    check(hp, instruments, data)


@FUZZ
@given(count=st.integers(0, 2**16 - 1), body=st.binary(max_size=400))
def test_lying_packet_counts(hp: types.ModuleType, instruments: Instruments, count: int, body: bytes) -> None:
    check(hp, instruments, count.to_bytes(2, "big") + body)
