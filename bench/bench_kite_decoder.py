"""Kite decode + state update: fastflow (compiled and reference) against
kiteconnect's own parser, on the same 200-packet messages.

The workload is 20 messages of 200 packets each, tokens drawn from a
10,000-instrument universe (so the token index is realistically large), for
each mode. One benchmark call decodes all 4,000 packets."""

from __future__ import annotations

import random
from typing import Any

import pytest
from kiteconnect import KiteTicker

from fastflow import _hotpath as compiled
from fastflow import reference
from fastflow.instruments import Instruments
from fastflow.sim.wire import kite as kw

N_INSTRUMENTS = 10_000
PER_MESSAGE = 200
N_MESSAGES = 20
PACKETS = PER_MESSAGE * N_MESSAGES


def _universe() -> Instruments:
    rows = [
        {"instrument_token": ((1000 + i) << 8) | 1, "exchange_token": 1000 + i, "tradingsymbol": f"SYM{i}",
         "name": "", "last_price": 0.0, "expiry": None, "strike": 0.0, "tick_size": 0.05, "lot_size": 1,
         "instrument_type": "EQ", "segment": "NSE", "exchange": "NSE"}
        for i in range(N_INSTRUMENTS)
    ]
    return Instruments.from_kite_rows(rows)


def _packet(mode: str, token: int, rnd: random.Random) -> bytes:
    ltp = 250_000 + rnd.randint(-500, 500)
    if mode == "ltp":
        return kw.ltp_packet(token, ltp)
    head = (ltp, rnd.randint(1, 500), ltp - 5, rnd.randint(1, 10**7), rnd.randint(1, 10**6),
            rnd.randint(1, 10**6), ltp - 100, ltp + 200, ltp - 300, ltp - 50)
    if mode == "quote":
        return kw.quote_packet(token, *head)
    bids = [(rnd.randint(1, 1000), ltp - 5 * (i + 1), rnd.randint(1, 50)) for i in range(5)]
    asks = [(rnd.randint(1, 1000), ltp + 5 * (i + 1), rnd.randint(1, 50)) for i in range(5)]
    return kw.full_packet(token, *head, 1_763_700_000, 12_345, 13_000, 12_000, 1_763_700_001, bids, asks)


@pytest.fixture(scope="module")
def universe() -> Instruments:
    return _universe()


def _messages(universe: Instruments, mode: str) -> list[bytes]:
    rnd = random.Random(42)
    tokens = [int(t) for t in universe.token]
    return [kw.message([_packet(mode, t, rnd) for t in rnd.sample(tokens, PER_MESSAGE)]) for _ in range(N_MESSAGES)]


def _fastflow(module: Any, universe: Instruments, msgs: list[bytes]) -> Any:
    state = module.MarketState(universe)
    feed = module.KiteDecoder(state).feed

    def run() -> None:
        for m in msgs:
            feed(m)

    return run


def _kiteconnect(msgs: list[bytes]) -> Any:
    parse = KiteTicker("api_key", "access_token")._parse_binary

    def run() -> None:
        for m in msgs:
            parse(m)

    return run


MODES = ["full", "quote", "ltp"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("impl", ["fastflow", "fastflow-reference", "kiteconnect"])
def bench_kite_decode(record: Any, universe: Instruments, mode: str, impl: str) -> None:
    msgs = _messages(universe, mode)
    if impl == "fastflow":
        fn = _fastflow(compiled, universe, msgs)
    elif impl == "fastflow-reference":
        fn = _fastflow(reference, universe, msgs)
    else:
        fn = _kiteconnect(msgs)
    record("kite decode", f"{mode} ({PER_MESSAGE} packets/message)", impl, PACKETS, "packets", fn,
           baseline="kiteconnect")


@pytest.mark.parametrize("impl", ["fastflow", "msgpack.packb(tick)"])
def bench_flush_encode(record: Any, universe: Instruments, impl: str) -> None:
    """Per-flush output: decode 200 full packets and encode the 200 changed
    instruments, against building kiteconnect-style dicts and msgpack.packb."""
    msgs = _messages(universe, "full")[:1]
    state = compiled.MarketState(universe)
    dec = compiled.KiteDecoder(state)
    dec.feed(msgs[0])
    slots = [int(s) for s in state.flush().slots]
    if impl == "fastflow":
        def fn() -> None:
            dec.feed(msgs[0])
            state.flush()
    else:
        import msgpack

        def fn() -> None:
            dec.feed(msgs[0])
            for s in slots:  # the dirty set is left alone: feed marks each slot once
                msgpack.packb(state.tick_at(s))
    record("tick encode", "flush of 200 full ticks", impl, PER_MESSAGE, "ticks", fn, baseline="msgpack.packb(tick)")
