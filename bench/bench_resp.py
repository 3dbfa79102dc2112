"""The Redis write path's command: ``HSET key symbol_1 blob_1 ... symbol_200
blob_200`` for one 200-tick flush, built by fastflow's ``TickBatch.resp_hset``
(compiled and reference) against redis-py's ``Connection.pack_command`` on
the same symbols and blobs.

The batch is one flush of 200 instruments drawn from a 10,000-instrument Kite
universe (full ticks: ~700-byte blobs; ltp ticks: ~130 bytes). The baseline
gets its arguments ready-made outside the timed call (symbols already UTF-8
bytes, the flat ``[symbol, blob, ...]`` list built once), so it is timed on
packing alone; fastflow builds the command from the batch and the state's
symbol table each call."""

from __future__ import annotations

import random
from typing import Any

import pytest
from redis.connection import Connection

from fastflow import _hotpath as compiled
from fastflow import reference
from fastflow.instruments import Instruments
from fastflow.sim.wire import kite as kw

N_INSTRUMENTS = 10_000
TICKS = 200
KEY = b"fastflow:ticks"


def _universe() -> Instruments:
    rows = [
        {"instrument_token": ((1000 + i) << 8) | 1, "exchange_token": 1000 + i, "tradingsymbol": f"SYM{i}",
         "name": "", "last_price": 0.0, "expiry": None, "strike": 0.0, "tick_size": 0.05, "lot_size": 1,
         "instrument_type": "EQ", "segment": "NSE", "exchange": "NSE"}
        for i in range(N_INSTRUMENTS)
    ]
    return Instruments.from_kite_rows(rows)


@pytest.fixture(scope="module")
def universe() -> Instruments:
    return _universe()


def _packet(mode: str, token: int, rnd: random.Random) -> bytes:
    ltp = 250_000 + rnd.randint(-500, 500)
    if mode == "ltp":
        return kw.ltp_packet(token, ltp)
    head = (ltp, rnd.randint(1, 500), ltp - 5, rnd.randint(1, 10**7), rnd.randint(1, 10**6),
            rnd.randint(1, 10**6), ltp - 100, ltp + 200, ltp - 300, ltp - 50)
    bids = [(rnd.randint(1, 1000), ltp - 5 * (i + 1), rnd.randint(1, 50)) for i in range(5)]
    asks = [(rnd.randint(1, 1000), ltp + 5 * (i + 1), rnd.randint(1, 50)) for i in range(5)]
    return kw.full_packet(token, *head, 1_763_700_000, 12_345, 13_000, 12_000, 1_763_700_001, bids, asks)


def _batch(module: Any, universe: Instruments, mode: str) -> Any:
    rnd = random.Random(42)
    tokens = [int(t) for t in universe.token]
    state = module.MarketState(universe)
    module.KiteDecoder(state).feed(kw.message([_packet(mode, t, rnd) for t in rnd.sample(tokens, TICKS)]), 1)
    batch = state.flush()
    assert len(batch) == TICKS
    return batch


@pytest.mark.parametrize("mode", ["full", "ltp"])
@pytest.mark.parametrize("impl", ["fastflow", "fastflow-reference", "redis-py pack_command"])
def bench_resp_hset(record: Any, universe: Instruments, mode: str, impl: str) -> None:
    batch = _batch(compiled, universe, mode)
    expected = batch.resp_hset(KEY)
    if impl == "fastflow":
        resp_hset = batch.resp_hset

        def fn() -> None:
            resp_hset(KEY)
    elif impl == "fastflow-reference":
        ref = _batch(reference, universe, mode)
        assert ref.resp_hset(KEY) == expected
        resp_hset = ref.resp_hset

        def fn() -> None:
            resp_hset(KEY)
    else:
        flat: list[bytes] = []
        for symbol, blob in zip(batch.symbols(), batch, strict=True):
            flat += [symbol.encode("utf-8"), blob]
        pack = Connection().pack_command
        assert b"".join(pack("HSET", KEY, *flat)) == expected  # the same bytes

        def fn() -> None:
            pack("HSET", KEY, *flat)
    record("resp hset", f"{mode} ({TICKS} ticks/flush)", impl, TICKS, "ticks", fn,
           baseline="redis-py pack_command")
