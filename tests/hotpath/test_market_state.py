"""MarketState: the zero-copy numpy view, tick lookups and per-flush output."""

from __future__ import annotations

import types

import msgpack
import numpy as np
import pytest

from fastflow.instruments import Instruments
from fastflow.sim.wire import kite as kw

from .. import kite_frames as kf
from ..conftest import INFY, NIFTY50, RELIANCE, TOKENS, USDINR


def make(hp: types.ModuleType, instruments: Instruments) -> tuple[object, object]:
    state = hp.MarketState(instruments)
    return state, hp.KiteDecoder(state)


def test_array_is_a_live_read_only_view(hp: types.ModuleType, instruments: Instruments) -> None:
    state, dec = make(hp, instruments)
    arr = state.array
    assert arr.dtype == hp.slot_dtype()
    assert len(arr) == len(state) == len(instruments)
    assert list(arr["token"]) == TOKENS
    assert not arr.flags.writeable
    with pytest.raises(ValueError):
        arr["last_price"][0] = 1
    dec.feed(kw.message([kf.full(INFY, 150_025)]))
    slot = state.slot(INFY)
    assert arr["last_price"][slot] == 150_025  # same memory, no re-fetch
    assert arr["seq"][slot] == 1
    assert arr["depth"][slot].shape == (5,)  # a Kite state keeps 5 levels (Upstox: 30)
    assert arr["depth_levels"][slot] == 5
    assert arr["depth"]["bid_price"][slot][0] == 150_025 - 5
    assert arr["last_trade_time"][slot] % 1000 == 0  # epoch ms
    assert np.shares_memory(arr, state.array)


def test_compiled_array_shares_memory(compiled: types.ModuleType, instruments: Instruments) -> None:
    state = compiled.MarketState(instruments)
    a, b = state.array, np.frombuffer(state, dtype=compiled.slot_dtype())
    assert np.shares_memory(a, b)
    assert a.dtype.itemsize * len(state) == memoryview(state).nbytes
    assert memoryview(state).readonly
    with pytest.raises(TypeError):
        memoryview(state)[0:1] = b"x"


def test_dtype_matches_between_implementations() -> None:
    from fastflow import _hotpath, reference

    assert _hotpath.slot_dtype() == reference.slot_dtype()


def test_tick_lookup_by_token_and_symbol(hp: types.ModuleType, instruments: Instruments) -> None:
    state, dec = make(hp, instruments)
    dec.feed(kw.message([kf.ltp(INFY, 150_025)]))
    assert state.tick(INFY) == state.tick("NSE:INFY") == state.tick_at(state.slot(INFY))
    with pytest.raises(KeyError, match="123"):
        state.tick(123)
    with pytest.raises(KeyError, match="NSE:NOPE"):
        state.tick("NSE:NOPE")
    with pytest.raises(TypeError):
        state.tick(1.5)
    with pytest.raises(TypeError):
        state.tick(True)
    with pytest.raises(IndexError):
        state.tick_at(len(state))
    assert state.tick(np.uint32(INFY)) == state.tick(INFY)  # numpy scalars from instruments.token
    assert state.tick(instruments.token[state.slot(INFY)]) == state.tick(INFY)


def test_reading_the_array_does_not_keep_the_state_alive(hp: types.ModuleType, instruments: Instruments) -> None:
    import gc
    import weakref

    state = hp.MarketState(instruments)
    arr = state.array
    ref = weakref.ref(state)
    del state
    gc.collect()
    assert arr["token"][0] == instruments.token[0]  # the view keeps its memory valid
    del arr
    gc.collect()
    assert ref() is None  # and nothing keeps the state alive once the view is gone


def test_flush_returns_changed_ticks_once(hp: types.ModuleType, instruments: Instruments) -> None:
    state, dec = make(hp, instruments)
    dec.feed(kw.message([kf.ltp(RELIANCE, 1), kf.full(INFY), kf.ltp(RELIANCE, 2)]), 5)
    dec.feed(kw.message([kf.index_full(NIFTY50)]), 6)
    assert state.dirty_count == 3
    batch = state.flush()
    assert len(batch) == 3 and state.dirty_count == 0
    assert [int(s) for s in batch.slots] == [state.slot(RELIANCE), state.slot(INFY), state.slot(NIFTY50)]
    offsets = batch.offsets
    assert offsets[0] == 0 and offsets[-1] == len(batch.data) and len(offsets) == 4
    for i, blob in enumerate(batch):
        assert blob == batch.data[offsets[i] : offsets[i + 1]] == batch[i]
        tick = state.tick_at(int(batch.slots[i]))
        assert msgpack.unpackb(blob) == tick
        assert msgpack.packb(tick) == blob  # byte-identical to msgpack-python
    assert batch[-1] == batch[2]
    with pytest.raises(IndexError):
        batch[3]
    assert msgpack.unpackb(batch.frame()) == [msgpack.unpackb(b) for b in batch]
    empty = state.flush()
    assert len(empty) == 0 and empty.data == b"" and msgpack.unpackb(empty.frame()) == []


def test_flush_frame_headers_for_large_batches(hp: types.ModuleType) -> None:
    tokens = [((1000 + i) << 8) | 1 for i in range(70_000)]
    rows = [
        {"instrument_token": t, "exchange_token": t >> 8, "tradingsymbol": f"S{i}", "name": "", "last_price": 0.0,
         "expiry": None, "strike": 0.0, "tick_size": 0.05, "lot_size": 1, "instrument_type": "EQ",
         "segment": "NSE", "exchange": "NSE"}
        for i, t in enumerate(tokens)
    ]
    state, dec = make(hp, Instruments.from_kite_rows(rows))
    for n in (15, 16, 70_000):
        for start in range(0, n, 1000):
            dec.feed(kw.message([kf.ltp(t, 100 + i) for i, t in enumerate(tokens[start : min(n, start + 1000)])]))
        batch = state.flush()
        assert len(batch) == n
        decoded = msgpack.unpackb(batch.frame())
        assert len(decoded) == n and decoded[-1]["instrument_token"] == tokens[n - 1]


def test_encode_matches_flush(hp: types.ModuleType, instruments: Instruments) -> None:
    state, dec = make(hp, instruments)
    dec.feed(kw.message([kf.full(INFY), kf.quote(USDINR)]))
    batch = state.flush()
    assert state.encode(INFY) == batch[0]
    assert state.encode("CDS:USDINR26NOVFUT") == batch[1]
    assert msgpack.unpackb(state.encode(RELIANCE))["mode"] is None


def test_clear_forgets_market_data(hp: types.ModuleType, instruments: Instruments) -> None:
    state, dec = make(hp, instruments)
    fresh = state.array.tobytes()
    dec.feed(kw.message([kf.full(t) if (t & 0xFF) != 9 else kf.index_full(t) for t in TOKENS]))
    assert state.array.tobytes() != fresh
    state.clear()
    assert state.array.tobytes() == fresh
    assert state.dirty_count == 0 and len(state.flush()) == 0


def test_state_needs_instruments(hp: types.ModuleType) -> None:
    empty = types.SimpleNamespace(
        token=np.array([], np.uint32), price_divisor=np.array([], np.int64), symbol=np.array([], object)
    )
    with pytest.raises(ValueError):
        hp.MarketState(empty)


def test_tick_batch_cannot_be_built_directly(hp: types.ModuleType) -> None:
    with pytest.raises(TypeError):
        hp.TickBatch()


def test_batch_receive_time_is_the_oldest_of_its_ticks(hp: types.ModuleType, instruments: Instruments) -> None:
    """One int per batch for latency accounting: the smallest positive recv_ns
    of the flushed slots (a slot keeps the receive time of its last update)."""
    state, dec = make(hp, instruments)
    assert state.flush().receive_time_ns == 0  # an empty flush
    dec.feed(kw.message([kf.ltp(RELIANCE, 1), kf.full(INFY)]), 1_763_700_000_000_000_500)
    assert state.flush().receive_time_ns == 1_763_700_000_000_000_500
    dec.feed(kw.message([kf.ltp(RELIANCE, 2)]), 1_763_700_000_000_000_900)
    dec.feed(kw.message([kf.index_full(NIFTY50)]), 1_763_700_000_000_000_700)
    dec.feed(kw.message([kf.ltp(RELIANCE, 3)]), 1_763_700_000_000_001_000)  # RELIANCE's time moves on
    batch = state.flush()
    assert len(batch) == 2 and batch.receive_time_ns == 1_763_700_000_000_000_700
    # the snapshot: every instrument that has had an update, the oldest of them
    assert state.snapshot().receive_time_ns == 1_763_700_000_000_000_500
    state.clear()
    assert state.snapshot().receive_time_ns == 0
    with pytest.raises(AttributeError):
        batch.receive_time_ns = 1  # read-only
