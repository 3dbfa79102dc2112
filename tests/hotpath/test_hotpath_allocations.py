"""No Python object per packet: allocated blocks stay flat over 100k packets."""

from __future__ import annotations

import gc
import random
import sys
import types

from fastflow.instruments import Instruments
from fastflow.sim.wire import kite as kw

from .. import kite_frames as kf
from ..conftest import TOKENS


def _messages(n_messages: int, per_message: int) -> list[bytes]:
    rnd = random.Random(1)
    msgs = []
    for _ in range(n_messages):
        packets = []
        for _ in range(per_message):
            token = rnd.choice(TOKENS)
            if token & 0xFF == 9:
                packets.append(rnd.choice([kf.index_full(token), kf.index_quote(token), kf.ltp(token)]))
            else:
                packets.append(rnd.choice([kf.full(token, rnd.randint(1, 10**6), rnd), kf.quote(token), kf.ltp(token)]))
        msgs.append(kw.message(packets))
    return msgs


def test_feed_allocates_nothing_per_packet(compiled: types.ModuleType, instruments: Instruments) -> None:
    msgs = _messages(100, 200)  # 20,000 packets a pass
    state = compiled.MarketState(instruments)
    dec = compiled.KiteDecoder(state)
    for m in msgs:  # warm-up: caches, first-use allocations
        dec.feed(m, 1)
    gc.collect()
    gc.disable()
    try:
        before = sys.getallocatedblocks()
        for _ in range(5):  # 100,000 packets
            for m in msgs:
                dec.feed(m, 1)
        after = sys.getallocatedblocks()
    finally:
        gc.enable()
    assert dec.stats()["packets"] == 6 * 20_000
    assert after - before <= 2, f"{after - before} blocks allocated over 100k packets"


def test_flush_allocates_per_flush_not_per_tick(compiled: types.ModuleType, instruments: Instruments) -> None:
    msgs = _messages(50, 200)
    state = compiled.MarketState(instruments)
    dec = compiled.KiteDecoder(state)
    for m in msgs:
        dec.feed(m, 1)
        state.flush()
    gc.collect()
    gc.disable()
    try:
        before = sys.getallocatedblocks()
        for _ in range(10):
            for m in msgs:
                dec.feed(m, 1)
                batch = state.flush()
                assert len(batch) == len(TOKENS)
                del batch
        after = sys.getallocatedblocks()
    finally:
        gc.enable()
    assert after - before <= 2, f"{after - before} blocks leaked over 500 flushes"


def test_feed_allocates_nothing_even_transiently(compiled: types.ModuleType, instruments: Instruments) -> None:
    """getallocatedblocks() only sees objects that survive; tracemalloc's peak
    also sees an object created and freed at once, so with a loop that itself
    allocates nothing, any Python object made while decoding shows up."""
    import tracemalloc

    msgs = _messages(20, 200)
    state = compiled.MarketState(instruments)
    dec = compiled.KiteDecoder(state)
    feed = dec.feed
    for m in msgs:
        feed(m, 1)
    tracemalloc.start()
    try:
        current, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        i = 0
        while i < 20:  # 4,000 packets; no iterator object, small ints are cached
            feed(msgs[i], 1)
            i += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - current == 0, f"feed allocated {peak - current} bytes transiently"


def test_transient_allocation_probe_can_fail(instruments: Instruments) -> None:
    """The probe above detects a decoder that makes one small object per packet."""
    import struct
    import tracemalloc

    msgs = _messages(2, 200)
    unpack = struct.Struct(">I").unpack_from
    tracemalloc.start()
    try:
        current, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        i = 0
        while i < 2:
            unpack(msgs[i], 4)  # one tuple and one int, freed at once
            i += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - current > 0
