"""FanOut: published tick frames -> per-client frames of the watched ticks
(compiled and reference, via ``hp``)."""

from __future__ import annotations

import gc
import random
import types
from collections.abc import Iterable, Sequence
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastflow import _hotpath as compiled_module
from fastflow import reference
from fastflow.errors import FrameError
from fastflow.instruments import Instruments
from fastflow.sim.market import KiteMarket
from fastflow.sim.market.upstox import UpstoxMarket, upstox_pairs
from fastflow.sim.universe import kite_universe

UPSTOX_MODES = ("full", "ltpc", "option_greeks", "full_d30")


# -- fixtures: real frames from the plant's pipeline --------------------------


@pytest.fixture(scope="module")
def kite_rows() -> list[dict[str, object]]:
    return kite_universe()


@pytest.fixture(scope="module")
def kite_inst(kite_rows: list[dict[str, object]]) -> Instruments:
    return Instruments.from_kite_rows(kite_rows)


@pytest.fixture(scope="module")
def upstox_inst() -> Instruments:
    return Instruments.from_upstox_rows(upstox_pairs()[1])


def kite_frames(module: Any, inst: Instruments, rows: Any, count: int, per_frame: int, seed: int = 1,
                modes: Sequence[str] = ("full",)) -> list[bytes]:
    """``count`` frames as the plant publishes them: KiteMarket -> KiteDecoder
    -> MarketState.flush().frame()."""
    market = KiteMarket.from_rows(rows, seed=seed)
    state = module.MarketState(inst)
    dec = module.KiteDecoder(state)
    frames = []
    for i in range(count):
        dec.feed(market.step(per_frame, modes[i % len(modes)]), 1_763_700_000_000_000_000 + i)
        frames.append(state.flush().frame())
    return frames


def upstox_frames(module: Any, inst: Instruments, count: int, per_frame: int, seed: int = 3) -> list[bytes]:
    market = UpstoxMarket.from_universe(seed=seed)
    state = module.MarketState(inst)
    dec = module.UpstoxDecoder(state)
    rnd = random.Random(seed)
    frames = []
    for i in range(count):
        keys = rnd.sample(market.keys, per_frame)
        dec.feed(market.live({k: rnd.choice(UPSTOX_MODES) for k in keys}), 1_763_700_000_000_000_000 + i)
        frames.append(state.flush().frame())
    return frames


@pytest.fixture(scope="module")
def kframes(kite_inst: Instruments, kite_rows: Any) -> list[bytes]:
    """10 frames of 200 ticks (full, quote, ltp), built by the compiled pipeline."""
    return kite_frames(compiled_module, kite_inst, kite_rows, 10, 200, modes=("full", "quote", "ltp"))


def slot_of(inst: Instruments) -> dict[str, int]:
    return {str(sym): i for i, sym in enumerate(inst.symbol)}


def expected_frame(kind: str, ticks: Iterable[Any]) -> bytes:
    out: bytes = msgpack.packb({"type": kind, "ticks": list(ticks)})
    return out


def latest_by_slot(frames: Iterable[bytes], slots: dict[str, int]) -> dict[int, Any]:
    """Decode frames in Python: the latest tick dict of every instrument."""
    latest: dict[int, Any] = {}
    for frame in frames:
        for tick in msgpack.unpackb(frame):
            latest[slots[tick["symbol"]]] = tick
    return latest


def observe(fan: Any) -> tuple[Any, ...]:
    """Everything observable about a FanOut without changing it."""
    stats = fan.stats()
    del stats["frame_errors"]
    return (stats, [fan.latest(s) for s in range(len(fan))], fan.changed_clients(), fan.last_receive_ns)


# -- delivery ---------------------------------------------------------------------


@pytest.mark.parametrize("broker", ["kite", "upstox"])
def test_each_client_collects_exactly_its_instruments(
    hp: types.ModuleType, broker: str, kite_inst: Instruments, kite_rows: Any, upstox_inst: Instruments
) -> None:
    if broker == "kite":
        inst = kite_inst
        frames = kite_frames(hp, inst, kite_rows, 3, 150, seed=7, modes=("full", "ltp", "quote"))
    else:
        inst = upstox_inst
        frames = upstox_frames(hp, inst, 3, 120)
    slots = slot_of(inst)
    n = len(inst)
    rnd = random.Random(5)
    fan = hp.FanOut(inst)
    watch: dict[int, list[int]] = {}
    for _ in range(40):
        cid = fan.add_client()
        size = rnd.choice([0, 1, 5, 50, 200, n])
        wl = rnd.sample(range(n), size)
        assert fan.subscribe(cid, wl) == size
        watch[cid] = sorted(wl)
        assert fan.watchlist(cid) == watch[cid]
    for frame in frames:
        decoded = msgpack.unpackb(frame)
        assert fan.feed(frame) == len(decoded)
        by_slot = {slots[t["symbol"]]: t for t in decoded}
        want = {cid: [by_slot[s] for s in wl if s in by_slot] for cid, wl in watch.items()}
        assert fan.changed_clients() == sorted(cid for cid, ticks in want.items() if ticks)
        for cid, ticks in want.items():
            out = fan.collect(cid)
            if not ticks:
                assert out == b""
                continue
            assert out == expected_frame("ticks", ticks)  # byte for byte
            assert msgpack.unpackb(out)["ticks"] == ticks
            assert fan.collect(cid) == b""  # cleared
        assert fan.changed_clients() == []
    total = sum(len(msgpack.unpackb(f)) for f in frames)
    stats = fan.stats()
    assert (stats["frames"], stats["ticks"], stats["unknown_symbols"], stats["clients"]) == (3, total, 0, 40)
    delivered = sum(len(set(wl) & {slots[t["symbol"]] for t in msgpack.unpackb(f)})
                    for f in frames for wl in watch.values())
    assert stats["deliveries"] == delivered


def test_pipeline_frames_of_both_implementations(hp: types.ModuleType, kite_inst: Instruments,
                                                 kite_rows: Any, kframes: list[bytes]) -> None:
    """The frames hp's own pipeline publishes are the compiled pipeline's, and
    every blob FanOut stores is the tick's exact bytes."""
    frames = kite_frames(hp, kite_inst, kite_rows, 10, 200, modes=("full", "quote", "ltp"))
    assert frames == kframes
    fan = hp.FanOut(kite_inst)
    for frame in frames:
        fan.feed(frame)
    latest = latest_by_slot(frames, slot_of(kite_inst))
    for s in range(len(kite_inst)):
        blob = fan.latest(s)
        assert (blob is None) == (s not in latest)
        if blob is not None:
            assert blob == msgpack.packb(latest[s])


def test_conflation_keeps_the_latest_tick(hp: types.ModuleType, kite_inst: Instruments,
                                          kframes: list[bytes]) -> None:
    slots = slot_of(kite_inst)
    fan = hp.FanOut(kite_inst)
    slow, fast = fan.add_client(), fan.add_client()
    everything = range(len(kite_inst))
    fan.subscribe(slow, everything)
    fan.subscribe(fast, everything)
    for frame in kframes:  # 10 frames, slow never collects
        fan.feed(frame)
        assert fan.collect(fast) != b""
    assert fan.changed_clients() == [slow]
    out = msgpack.unpackb(fan.collect(slow))
    latest = latest_by_slot(kframes, slots)
    assert [slots[t["symbol"]] for t in out["ticks"]] == sorted(latest)  # one per instrument, slot order
    seqs: dict[int, int] = {}
    for frame in kframes:
        for t in msgpack.unpackb(frame):
            seqs[slots[t["symbol"]]] = max(seqs.get(slots[t["symbol"]], 0), t["seq"])
    for t in out["ticks"]:
        assert t == latest[slots[t["symbol"]]]
        assert t["seq"] == seqs[slots[t["symbol"]]]  # the highest seq
    assert fan.collect(slow) == b""


def test_snapshot(hp: types.ModuleType, kite_inst: Instruments, kframes: list[bytes]) -> None:
    slots = slot_of(kite_inst)
    fan = hp.FanOut(kite_inst)
    cid = fan.add_client()
    assert fan.snapshot(cid) == expected_frame("snapshot", [])
    wl = list(range(0, len(kite_inst), 3))
    fan.subscribe(cid, wl)
    assert fan.snapshot(cid) == expected_frame("snapshot", [])  # nothing fed yet
    fan.feed(kframes[0])
    fan.feed(kframes[1])
    latest = latest_by_slot(kframes[:2], slots)
    assert fan.snapshot(cid) == expected_frame("snapshot", [latest[s] for s in wl if s in latest])
    some = [403, 0, 17, 17, 5, 200]
    assert fan.snapshot(cid, some) == expected_frame(
        "snapshot", [latest[s] for s in sorted(set(some)) if s in latest])
    assert fan.snapshot(cid, []) == expected_frame("snapshot", [])
    # The changed set is left alone.
    assert fan.changed_clients() == [cid]
    assert msgpack.unpackb(fan.collect(cid))["ticks"] == [latest[s] for s in wl if s in latest]
    with pytest.raises(IndexError):
        fan.snapshot(cid, [len(kite_inst)])


def test_subscribe_and_unsubscribe(hp: types.ModuleType, kite_inst: Instruments, kframes: list[bytes]) -> None:
    fan = hp.FanOut(kite_inst)
    a, b = fan.add_client(), fan.add_client()
    assert fan.subscribe(a, [5, 3, 5, 9]) == 3
    assert fan.subscribe(a, iter([3, 9, 11])) == 1  # idempotent
    assert fan.watchlist(a) == [3, 5, 9, 11]
    assert fan.subscribe(b, (9,)) == 1
    assert fan.subscribers(9) == [a, b]
    assert fan.subscribers(5) == [a]
    assert fan.subscribers(0) == []
    assert fan.unsubscribe(a, [9, 100, 9]) == 1
    assert fan.unsubscribe(a, [9]) == 0
    assert fan.watchlist(a) == [3, 5, 11]
    assert fan.subscribers(9) == [b]
    # Unsubscribing drops the slot's pending change too.
    everything = list(range(len(kite_inst)))
    fan.subscribe(a, everything)
    fan.feed(kframes[0])
    changed = [t["symbol"] for t in msgpack.unpackb(kframes[0])]
    slots = slot_of(kite_inst)
    gone = sorted(slots[s] for s in changed[:50])
    assert fan.unsubscribe(a, gone) == 50
    got = [slots[t["symbol"]] for t in msgpack.unpackb(fan.collect(a))["ticks"]]
    assert got == sorted(slots[s] for s in changed[50:])
    assert fan.unsubscribe(a, everything) == len(everything) - 50
    assert fan.watchlist(a) == []
    fan.feed(kframes[1])
    assert fan.collect(a) == b""
    # Bad arguments.
    with pytest.raises(IndexError):
        fan.subscribe(a, [len(kite_inst)])
    with pytest.raises(IndexError):
        fan.subscribe(a, [-1])
    with pytest.raises(TypeError):
        fan.subscribe(a, [1.0])
    with pytest.raises(TypeError):
        fan.subscribe(a, 3)
    with pytest.raises(KeyError):
        fan.subscribe(7, [1])
    with pytest.raises(KeyError):
        fan.collect(-1)
    assert fan.watchlist(a) == []  # a failed subscribe adds nothing
    fan.subscribe(a, [1, 2])
    with pytest.raises(IndexError):
        fan.subscribe(a, [3, len(kite_inst)])
    assert fan.watchlist(a) == [1, 2]


def test_client_ids_are_reused(hp: types.ModuleType, kite_inst: Instruments, kframes: list[bytes]) -> None:
    fan = hp.FanOut(kite_inst)
    ids = [fan.add_client() for _ in range(4)]
    assert ids == [0, 1, 2, 3]
    for cid in ids:
        fan.subscribe(cid, range(len(kite_inst)))
    fan.feed(kframes[0])
    assert fan.changed_clients() == ids
    fan.remove_client(1)
    fan.remove_client(2)
    assert fan.changed_clients() == [0, 3]
    assert fan.stats()["clients"] == 2
    assert fan.subscribers(0) == [0, 3]
    with pytest.raises(KeyError):
        fan.collect(1)
    with pytest.raises(KeyError):
        fan.remove_client(1)
    assert fan.add_client() == 1
    assert fan.watchlist(1) == [] and fan.collect(1) == b""  # a fresh client
    assert fan.changed_clients() == [0, 3]
    assert fan.add_client() == 2
    assert fan.add_client() == 4
    fan.subscribe(2, [0])
    fan.remove_client(0)
    fan.feed(kframes[1])
    assert 0 not in fan.subscribers(0)
    assert fan.changed_clients() == sorted([3] + ([2] if b"NSE:NIFTY 50" in kframes[1] else []))
    assert fan.stats()["clients"] == 4


def test_unknown_symbols_are_counted_and_skipped(hp: types.ModuleType, kite_rows: Any,
                                                 kframes: list[bytes]) -> None:
    part = Instruments.from_kite_rows(kite_rows[:100])
    slots = slot_of(part)
    fan = hp.FanOut(part)
    cid = fan.add_client()
    fan.subscribe(cid, range(100))
    ticks = msgpack.unpackb(kframes[0])
    known = [t for t in ticks if t["symbol"] in slots]
    assert 0 < len(known) < len(ticks)
    assert fan.feed(kframes[0]) == len(known)
    assert fan.stats()["unknown_symbols"] == len(ticks) - len(known)
    assert fan.stats()["ticks"] == len(known)
    assert msgpack.unpackb(fan.collect(cid))["ticks"] == sorted(known, key=lambda t: slots[t["symbol"]])


def test_generic_msgpack_values_and_buffers(hp: types.ModuleType, kite_inst: Instruments) -> None:
    """Ticks are split generically: any msgpack value, any encoding of the
    symbol key and value, nested containers; any contiguous buffer."""
    sym = str(kite_inst.symbol[7])
    ticks = [
        {"a": b"\x00" * 300, "b": [1.5, None, True, False, -33, 2**64 - 1, -(2**63)], "symbol": sym},
        {"x": {"y": [{"z": "w" * 70000}]}, "seq": 3, "symbol": sym, "e": msgpack.ExtType(5, b"123")},
        {"symbol": sym, "f": msgpack.ExtType(1, b"1234" * 4), "g": msgpack.ExtType(2, b"q" * 300)},
    ]
    frame = msgpack.packb(ticks)
    fan = hp.FanOut(kite_inst)
    cid = fan.add_client()
    fan.subscribe(cid, [7])
    for buf in (frame, bytearray(frame), memoryview(frame)):
        assert fan.feed(buf) == 3
    assert fan.latest(7) == msgpack.packb(ticks[2])
    assert fan.collect(cid) == expected_frame("ticks", [ticks[2]])
    # A str8 "symbol" key and a str16 symbol value; a duplicate key: the last wins.
    raw = b"\x91\x83\xd9\x06symbol\xa1x\xa3seq\x01\xa6symbol\xda" + len(sym).to_bytes(2, "big") + sym.encode()
    assert fan.feed(raw) == 1
    assert fan.latest(7) == raw[1:]
    # A map key that is itself a map, and an array16 / map16 container.
    odd = b"\xdc\x00\x01\xde\x00\x02\x81\x01\x02\x03\xa6symbol\xa1?"
    assert fan.feed(odd) == 0 and fan.stats()["unknown_symbols"] == 1
    with pytest.raises(TypeError):
        fan.feed("not bytes")


@pytest.mark.parametrize(
    ("frame", "reason", "offset"),
    [
        (b"", "truncated msgpack value", 0),
        (b"\x80", "frame is not a msgpack array", 0),
        (b"\xc1", "frame is not a msgpack array", 0),
        (b"\xdc\x00", "truncated msgpack value", 0),
        (b"\x92\x80", "truncated msgpack value", 0),
        (b"\xdd\xff\xff\xff\xff\x80", "truncated msgpack value", 0),
        (b"\x91\x01", "tick is not a msgpack map", 1),
        (b"\x91\x80", "tick has no symbol", 1),
        (b"\x91\x81\xa6symbol\x01", "tick symbol is not a msgpack str", 9),
        (b"\x91\x81\xa6symbol\xc4\x01x", "tick symbol is not a msgpack str", 9),
        (b"\x91\x81\xa6symbol\xa3ab", "truncated msgpack value", 9),
        (b"\x91\x81\xa6symbol\xa1x\x00", "trailing bytes after the frame's array", 11),
        (b"\x91\x81\xc1\xa1x", "invalid msgpack type byte 0xc1", 2),
        (b"\x91\x81\xa1k\x91\xc1", "invalid msgpack type byte 0xc1", 5),
        (b"\x91\x81\xa1k\xdf\xff\xff\xff\xff", "truncated msgpack value", 4),
        (b"\x91\x81\xa1k\xcb\x00\x00", "truncated msgpack value", 4),
        (b"\x91\x81\xa1k\xd8\x01" + b"\x00" * 15, "truncated msgpack value", 4),
        (b"\x91\x81\xa1k\xc9\x00\x00\x00\x05\x01abcd", "truncated msgpack value", 4),
        (b"\x91\x81\xa1k\xdb\x00\x00\x00", "truncated msgpack value", 4),
        (b"\x91\x82\xa1k\x01", "truncated msgpack value", 1),
        (b"\x91\x82\xa1k\x01\xa1j", "truncated msgpack value", 7),
    ],
)
def test_malformed_frames_raise_frame_error(hp: types.ModuleType, kite_inst: Instruments,
                                            frame: bytes, reason: str, offset: int) -> None:
    fan = hp.FanOut(kite_inst)
    with pytest.raises(FrameError) as info:
        fan.feed(frame)
    assert (info.value.reason, info.value.offset) == (reason, offset)
    assert fan.stats()["frame_errors"] == 1


def test_a_bad_frame_changes_nothing(hp: types.ModuleType, kite_inst: Instruments, kframes: list[bytes]) -> None:
    fan = hp.FanOut(kite_inst)
    cid = fan.add_client()
    fan.subscribe(cid, range(0, len(kite_inst), 2))
    fan.feed(kframes[0])
    before = observe(fan)
    frame = kframes[1]
    ticks = msgpack.unpackb(frame)
    bad = [
        frame[:-1],
        frame[: len(frame) // 2],
        frame + b"\x00",
        frame + msgpack.packb({"symbol": "NSE:INFY"}),  # one tick more than the header says
        frame[:1] + msgpack.packb(ticks[0])[:-3] + frame[1:],
        msgpack.packb([*ticks[:-1], {"seq": 1}]),  # the last tick has no symbol
        msgpack.packb([*ticks[:-1], 7]),
    ]
    for b in bad:
        with pytest.raises(FrameError):
            fan.feed(b)
        assert observe(fan) == before
    assert fan.stats()["frame_errors"] == len(bad)
    assert fan.collect(cid) == expected_frame(
        "ticks", [t for t in sorted(msgpack.unpackb(kframes[0]), key=lambda t: slot_of(kite_inst)[t["symbol"]])
                  if slot_of(kite_inst)[t["symbol"]] % 2 == 0])


def test_every_truncation_of_a_real_frame_is_rejected(kite_inst: Instruments, kframes: list[bytes]) -> None:
    frame = msgpack.packb(msgpack.unpackb(kframes[2])[:6])
    fans = [compiled_module.FanOut(kite_inst), reference.FanOut(kite_inst)]
    for cut in range(len(frame)):
        errors = []
        for fan in fans:
            with pytest.raises(FrameError) as info:
                fan.feed(frame[:cut])
            errors.append((info.value.reason, info.value.offset))
        assert errors[0] == errors[1]
    assert [f.stats()["frames"] for f in fans] == [0, 0]


# -- fuzzing: compiled and reference agree, nothing crashes -----------------------


def _outcome(fan: Any, frame: bytes) -> tuple[Any, ...]:
    try:
        n = fan.feed(frame)
    except FrameError as exc:
        return ("error", exc.reason, exc.offset, observe(fan))
    return ("ok", n, observe(fan))


@pytest.fixture(scope="module")
def small_frames(kite_inst: Instruments, kite_rows: Any) -> list[bytes]:
    return kite_frames(compiled_module, kite_inst, kite_rows, 4, 8, seed=11, modes=("full", "ltp", "quote"))


def _pair(inst: Instruments) -> tuple[Any, Any]:
    fans = (compiled_module.FanOut(inst), reference.FanOut(inst))
    for fan in fans:
        fan.subscribe(fan.add_client(), range(len(inst)))
    return fans


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_fuzz_random_bytes(kite_inst: Instruments, data: bytes) -> None:
    a, b = _pair(kite_inst)
    for frame in (data, b"\x91" + data, b"\x91\x81\xa6symbol" + data):
        assert _outcome(a, frame) == _outcome(b, frame)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_mutated_real_frames(kite_inst: Instruments, small_frames: list[bytes], data: st.DataObject) -> None:
    frame = bytearray(data.draw(st.sampled_from(small_frames)))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        at = data.draw(st.integers(0, max(len(frame) - 1, 0)))
        if op == "flip" and frame:
            frame[at] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set" and frame:
            frame[at] = data.draw(st.sampled_from([0x00, 0x7F, 0x80, 0x90, 0xA0, 0xC1, 0xCB, 0xD9, 0xDB, 0xDC,
                                                   0xDD, 0xDE, 0xDF, 0xFF]))
        elif op == "cut":
            del frame[at:]
        elif op == "insert":
            frame[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del frame[at : at + data.draw(st.integers(1, 8))]
    a, b = _pair(kite_inst)
    assert _outcome(a, bytes(frame)) == _outcome(b, bytes(frame))
    assert a.collect(0) == b.collect(0)


_leaf = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
         | st.text(max_size=40) | st.binary(max_size=300)
         | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=20)))
_value = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.dictionaries(st.text(max_size=10), _value, max_size=5), st.integers(0, 420)),
                max_size=8))
def test_fuzz_generated_frames_split_exactly(kite_inst: Instruments,
                                             ticks: list[tuple[dict[str, Any], int]]) -> None:
    """Arbitrary msgpack tick maps: each blob is exactly the tick's packed bytes."""
    symbols = [str(s) for s in kite_inst.symbol]
    maps = []
    for fields, i in ticks:
        tick = dict(fields)
        tick["symbol"] = symbols[i] if i < len(symbols) else f"NOPE:{i}"
        maps.append(tick)
    frame = msgpack.packb(maps)
    a, b = _pair(kite_inst)
    assert _outcome(a, frame) == _outcome(b, frame)
    latest = {}
    for tick in maps:
        if tick["symbol"] in symbols:
            latest[symbols.index(tick["symbol"])] = tick
    assert a.collect(0) == b.collect(0) == (
        b"" if not latest else expected_frame("ticks", [latest[s] for s in sorted(latest)]))
    for s, tick in latest.items():
        assert a.latest(s) == msgpack.packb(tick)


def test_random_operations_agree(kite_inst: Instruments, kframes: list[bytes]) -> None:
    """The compiled FanOut and its twin give the same answers to a random
    sequence of operations."""
    rnd = random.Random(9)
    fans = (compiled_module.FanOut(kite_inst), reference.FanOut(kite_inst))
    n = len(kite_inst)
    live: list[int] = []
    for _ in range(600):
        op = rnd.choice(["add", "remove", "sub", "unsub", "feed", "collect", "snapshot", "ready"])
        if op == "add" or not live:
            results = [f.add_client() for f in fans]
            live.append(results[0])
        elif op == "remove":
            cid = live.pop(rnd.randrange(len(live)))
            results = [f.remove_client(cid) for f in fans]
        elif op in ("sub", "unsub"):
            cid = rnd.choice(live)
            slots = [rnd.randrange(n) for _ in range(rnd.choice([1, 10, 100]))]
            results = [(f.subscribe if op == "sub" else f.unsubscribe)(cid, slots) for f in fans]
        elif op == "feed":
            frame = rnd.choice(kframes)
            results = [f.feed(frame) for f in fans]
        elif op == "collect":
            cid = rnd.choice(live)
            results = [f.collect(cid) for f in fans]
        elif op == "snapshot":
            cid = rnd.choice(live)
            results = [f.snapshot(cid) for f in fans]
        else:
            results = [f.changed_clients() for f in fans]
        assert results[0] == results[1], op
    assert fans[0].stats() == fans[1].stats()
    for cid in live:
        assert fans[0].watchlist(cid) == fans[1].watchlist(cid)
    for s in range(n):
        assert fans[0].subscribers(s) == fans[1].subscribers(s)


def test_constructor_checks(hp: types.ModuleType) -> None:
    with pytest.raises(ValueError, match="at least one"):
        hp.FanOut(types.SimpleNamespace(symbol=[]))
    with pytest.raises(ValueError, match="duplicate symbol"):
        hp.FanOut(types.SimpleNamespace(symbol=["NSE:A", "NSE:B", "NSE:A"]))
    assert len(hp.FanOut(types.SimpleNamespace(symbol=["NSE:A"]))) == 1


# -- allocations (compiled) -------------------------------------------------------


def _bench_fan(inst: Instruments, frames: list[bytes], clients: int = 200) -> Any:
    rnd = random.Random(2)
    fan = compiled_module.FanOut(inst)
    for _ in range(clients):
        fan.subscribe(fan.add_client(), rnd.sample(range(len(inst)), 50))
    return fan


def test_feed_allocates_nothing(kite_inst: Instruments, kframes: list[bytes]) -> None:
    """tracemalloc's peak sees every Python object and PyMem block, even one
    freed at once: after a warm-up, feeding 10 frames of 200 ticks to 200
    clients allocates nothing."""
    import tracemalloc

    fan = _bench_fan(kite_inst, kframes)
    feed = fan.feed
    for frame in kframes:  # warm-up: blob buffers and scratch reach their size
        feed(frame)
    tracemalloc.start()
    try:
        current, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        i = 0
        while i < 10:
            feed(kframes[i])
            i += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - current == 0, f"feed allocated {peak - current} bytes transiently"


def test_collect_allocates_only_its_result(kite_inst: Instruments, kframes: list[bytes]) -> None:
    import sys
    import tracemalloc

    fan = _bench_fan(kite_inst, kframes)
    for frame in kframes:
        fan.feed(frame)
    ready = fan.changed_clients()
    collect = fan.collect
    assert len(ready) > 100
    gc.collect()
    tracemalloc.start()
    try:
        for cid in ready:
            current, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            out = collect(cid)
            _, peak = tracemalloc.get_traced_memory()
            # The result, plus the probe's own 2-tuple (56 bytes) and int; a
            # bytes object per tick would add 33+ bytes for each of ~25 ticks.
            assert sys.getsizeof(out) <= peak - current <= sys.getsizeof(out) + 128, (peak - current, len(out))
            del out
    finally:
        tracemalloc.stop()


def test_feed_and_collect_do_not_leak(kite_inst: Instruments, kframes: list[bytes]) -> None:
    import sys

    fan = _bench_fan(kite_inst, kframes)

    def round_trip() -> None:
        for frame in kframes:
            fan.feed(frame)
            for cid in fan.changed_clients():
                fan.collect(cid)

    round_trip()
    gc.collect()
    gc.disable()
    try:
        before = sys.getallocatedblocks()
        for _ in range(5):
            round_trip()
        after = sys.getallocatedblocks()
    finally:
        gc.enable()
    assert after - before <= 2


def parse_ws_frame(data: bytes) -> bytes:
    """The payload of one final, unmasked WebSocket binary frame (RFC 6455 5.2), checked whole."""
    assert data[0] == 0x82 and data[1] & 0x80 == 0
    n, start = data[1], 2
    if n == 126:
        n, start = int.from_bytes(data[2:4], "big"), 4
    elif n == 127:
        n, start = int.from_bytes(data[2:10], "big"), 10
    assert len(data) == start + n
    return data[start:]


def test_websocket_framed_collect_and_snapshot(hp: types.ModuleType, kite_inst: Instruments,
                                               kframes: list[bytes]) -> None:
    """``websocket=True``: the same bytes behind a WebSocket frame header, in
    each of the three length forms (7-bit, 16-bit, 64-bit)."""
    fan = hp.FanOut(kite_inst)
    plain, framed = fan.add_client(), fan.add_client()
    for cid, slots in ((plain, [0]), (framed, [0])):
        fan.subscribe(cid, slots)
    sizes = set()
    for watch in ([0], list(range(40)), list(range(len(kite_inst)))):
        for cid in (plain, framed):
            fan.subscribe(cid, watch)
        for frame in kframes[:3]:
            fan.feed(frame)
            a, b = fan.collect(plain), fan.collect(framed, websocket=True)
            assert parse_ws_frame(b) == a if a else b == a
            if b:
                sizes.add(b[1] if b[1] >= 126 else 0)  # the length form
        assert parse_ws_frame(fan.snapshot(framed, websocket=True)) == fan.snapshot(plain)
        assert parse_ws_frame(fan.snapshot(framed, [0, 1], websocket=True)) == fan.snapshot(plain, [0, 1])
    assert sizes == {126, 127}  # 16- and 64-bit lengths; an empty snapshot has the 7-bit one:
    empty = fan.snapshot(framed, [], websocket=True)
    assert empty[1] < 126 and parse_ws_frame(empty) == fan.snapshot(plain, [])
    assert parse_ws_frame(b"\x82\x7f" + (70000).to_bytes(8, "big") + b"x" * 70000) == b"x" * 70000


# -- receive times (latency accounting) ---------------------------------------------


def tick_map(symbol: str, *pairs: tuple[bytes, bytes]) -> bytes:
    """A tick map with ``symbol`` and raw (packed key, packed value) pairs, so
    that any int encoding can be written (msgpack-python packs minimally)."""
    body = msgpack.packb("symbol") + msgpack.packb(symbol) + b"".join(k + v for k, v in pairs)
    return bytes((0x80 | (1 + len(pairs)),)) + body


RECV = msgpack.packb("receive_time_ns")


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"\x05", 5),  # positive fixint
        (b"\xcc\xc8", 200),  # uint8
        (b"\xcd\x12\x34", 0x1234),  # uint16
        (b"\xce\x80\x00\x00\x01", 0x80000001),  # uint32
        (b"\xcf" + (1_763_700_000_123_456_789).to_bytes(8, "big"), 1_763_700_000_123_456_789),  # uint64
        (b"\xcf" + (2**63 - 1).to_bytes(8, "big"), 2**63 - 1),
        (b"\xcf" + (2**63).to_bytes(8, "big"), 0),  # above int64: not a receive time
        (b"\xcf" + (2**64 - 1).to_bytes(8, "big"), 0),
        (b"\xd0\x05", 5),  # int8 .. int64 holding a positive value (not minimal, still valid)
        (b"\xd0\xfb", 0),  # int8 -5
        (b"\xd1\x7f\xff", 0x7FFF),
        (b"\xd1\x80\x00", 0),
        (b"\xd2\x7f\xff\xff\xff", 0x7FFFFFFF),
        (b"\xd2\xff\xff\xff\xff", 0),
        (b"\xd3" + (1_763_700_000_123_456_789).to_bytes(8, "big"), 1_763_700_000_123_456_789),  # int64
        (b"\xd3" + (-7).to_bytes(8, "big", signed=True), 0),
        (b"\x00", 0),  # zero
        (b"\xff", 0),  # negative fixint
        (msgpack.packb(1.7e18), 0),  # a float
        (msgpack.packb("1763700000000000000"), 0),  # a str
        (msgpack.packb(None), 0),
        (msgpack.packb([1, 2]), 0),
    ],
)
def test_last_receive_ns_reads_every_int_encoding(hp: types.ModuleType, kite_inst: Instruments,
                                                  raw: bytes, value: int) -> None:
    fan = hp.FanOut(kite_inst)
    sym = str(kite_inst.symbol[3])
    frame = b"\x91" + tick_map(sym, (RECV, raw), (msgpack.packb("seq"), b"\x01"))
    assert fan.feed(frame) == 1
    assert fan.last_receive_ns == value
    assert fan.latest(3) == frame[1:]  # the blob is untouched


def test_last_receive_ns_is_the_oldest_of_the_frame(hp: types.ModuleType, kite_inst: Instruments,
                                                    kframes: list[bytes]) -> None:
    fan = hp.FanOut(kite_inst)
    assert fan.last_receive_ns == 0  # nothing fed yet
    syms = [str(s) for s in kite_inst.symbol[:4]]
    ticks = [{"symbol": syms[0], "receive_time_ns": 1_763_700_000_000_000_900},
             {"symbol": syms[1], "receive_time_ns": 1_763_700_000_000_000_300},
             {"symbol": syms[2]},  # no receive time: does not count
             {"symbol": "NSE:NOPE", "receive_time_ns": 1_763_700_000_000_000_100},  # unknown symbol: counts
             {"symbol": syms[3], "receive_time_ns": 0}]
    assert fan.feed(msgpack.packb(ticks)) == 4
    assert fan.last_receive_ns == 1_763_700_000_000_000_100
    assert fan.feed(msgpack.packb(ticks[:3])) == 3
    assert fan.last_receive_ns == 1_763_700_000_000_000_300
    assert fan.feed(msgpack.packb([{"symbol": syms[0], "seq": 4}])) == 1  # a frame without any: 0
    assert fan.last_receive_ns == 0
    assert fan.feed(msgpack.packb([])) == 0
    assert fan.last_receive_ns == 0
    # a key written twice: the last one counts, as in a decoded dict
    twice = b"\x91" + tick_map(syms[0], (RECV, b"\x07"), (RECV, b"\xcd\x01\x00"))
    fan.feed(twice)
    assert fan.last_receive_ns == 256
    twice = b"\x91" + tick_map(syms[0], (RECV, b"\x07"), (RECV, msgpack.packb("late")))
    fan.feed(twice)
    assert fan.last_receive_ns == 0
    # a str8 key is the same key; a bin key or a longer name is not
    fan.feed(b"\x91" + tick_map(syms[0], (b"\xd9\x0freceive_time_ns", b"\x09")))
    assert fan.last_receive_ns == 9
    fan.feed(b"\x91" + tick_map(syms[0], (b"\xc4\x0freceive_time_ns", b"\x09")))
    assert fan.last_receive_ns == 0
    fan.feed(msgpack.packb([{"symbol": syms[0], "receive_time_nsx": 5, "xreceive_time_ns": 6}]))
    assert fan.last_receive_ns == 0
    # the plant's frames: every tick of one flush has the flush's receive time
    for i, frame in enumerate(kframes):
        fan.feed(frame)
        assert fan.last_receive_ns == 1_763_700_000_000_000_000 + i
    # a malformed frame changes nothing, this included
    with pytest.raises(FrameError):
        fan.feed(msgpack.packb([{"symbol": syms[0], "receive_time_ns": 1}, {"seq": 1}]))
    assert fan.last_receive_ns == 1_763_700_000_000_000_000 + len(kframes) - 1
    with pytest.raises(AttributeError):
        fan.last_receive_ns = 1  # read-only


def test_receive_times_agree_on_random_frames(kite_inst: Instruments) -> None:
    """Random ticks with receive times in random int encodings: both
    implementations find the same oldest one, the one msgpack decodes."""
    rnd = random.Random(4)
    fans = _pair(kite_inst)
    symbols = [str(s) for s in kite_inst.symbol]
    encoders = [
        lambda v: b"\xcf" + v.to_bytes(8, "big"),
        lambda v: b"\xd3" + v.to_bytes(8, "big", signed=True),
        lambda v: msgpack.packb(v),
    ]
    for _ in range(200):
        values = [rnd.choice([0, -1, rnd.randrange(1, 2**63), rnd.randrange(1, 2**31)]) for _ in range(rnd.randint(0, 6))]
        maps = []
        for v in values:
            encode = encoders[rnd.randrange(3)] if v > 0 else encoders[1]
            maps.append(tick_map(rnd.choice(symbols), (RECV, encode(v))))
        frame = bytes((0x90 | len(maps),)) + b"".join(maps)
        decoded = [t["receive_time_ns"] for t in msgpack.unpackb(frame)]
        expected = min((v for v in decoded if v > 0), default=0)
        assert [f.feed(frame) for f in fans] == [len(maps)] * 2
        assert [f.last_receive_ns for f in fans] == [expected] * 2
