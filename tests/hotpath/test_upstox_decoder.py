"""UpstoxDecoder: golden vectors, every payload, protobuf semantics, malformed
frames, and a differential test against the official generated classes."""

from __future__ import annotations

import math
import os
import types
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastflow.errors import FrameError
from fastflow.sim.wire import upstox as uw

from ..conftest import UPSTOX_KEYS, UpstoxInstruments

OPT, OPT2, INFY, RELIANCE, NIFTY, BANKNIFTY, USDINR, CRUDE = UPSTOX_KEYS
EXTRAS = {"symbol", "seq", "receive_time_ns"}


def make(hp: types.ModuleType, instruments: UpstoxInstruments) -> tuple[Any, Any]:
    state = hp.MarketState(instruments)
    return state, hp.UpstoxDecoder(state)


def full_feed(ltp: float = 101.55, levels: int = 5, greeks: bool = True, mode: int | None = uw.FULL_D5) -> bytes:
    quotes = [uw.quote(100 + i, round(ltp - 0.05 * (i + 1), 2), 200 + i, round(ltp + 0.05 * (i + 1), 2))
              for i in range(levels)]
    market = uw.market_full_feed(
        ltpc=uw.ltpc(ltp, 1_763_700_000_123, 75, 98.0),
        levels=quotes,
        greeks=uw.greeks(0.51, -12.3, 0.0012, 8.7, 1.2) if greeks else None,
        ohlcs=[uw.ohlc("1d", 99.0, 102.0, 97.5, ltp, 12_345, 1_763_650_000_000),
               uw.ohlc("I1", 101.0, 101.6, 100.9, ltp, 100, 1_763_699_940_000)],
        atp=100.25, vtt=123_456, oi=5_000.0, iv=0.1432, tbq=1_000.0, tsq=2_000.0,
    )
    return uw.feed(full_market=market, request_mode=mode)


# -- golden vectors and payloads ---------------------------------------------------


def test_golden_vectors(hp: types.ModuleType) -> None:
    """broker-formats.md 2.2: {"X|1": {ltpc: {ltp: 1.0}}} as initial_feed and live_feed."""
    from ..conftest import make_upstox_instruments

    state, dec = make(hp, make_upstox_instruments(["X|1"], ["X:ONE"]))
    initial = bytes.fromhex("12120a03587c31120b0a0909000000000000f03f")
    assert dec.feed(initial, 5) == 1
    assert dec.feed(bytes.fromhex("0801") + initial, 6) == 1
    tick = state.tick("X|1")
    assert tick["last_price"] == 1.0 and tick["mode"] == "ltpc" and tick["seq"] == 2
    assert tick["instrument_key"] == "X|1" and tick["receive_time_ns"] == 6
    stats = dec.stats()
    assert stats["initial_frames"] == 1 and stats["live_frames"] == 1 and stats["feeds"] == 2


def test_full_feed(hp: types.ModuleType, upstox_instruments: UpstoxInstruments) -> None:
    state, dec = make(hp, upstox_instruments)
    frame = uw.feed_response([(OPT, full_feed())], type=uw.LIVE_FEED, current_ts=1_763_700_000_500)
    assert dec.feed(frame, 1) == 1
    t = state.tick(OPT)
    assert t == {
        "tradable": True, "mode": "full", "instrument_key": OPT,
        "last_price": 101.55, "last_traded_quantity": 75, "average_traded_price": 100.25,
        "volume_traded": 123_456, "total_buy_quantity": 1_000, "total_sell_quantity": 2_000,
        "ohlc": {"open": 99.0, "high": 102.0, "low": 97.5, "close": 98.0},
        "change": (101.55 - 98.0) * 100.0 / 98.0,
        "last_trade_time": 1_763_700_000, "oi": 5_000, "exchange_timestamp": 1_763_700_000,
        "depth": {
            "buy": [{"quantity": 100 + i, "price": round(101.55 - 0.05 * (i + 1), 2)} for i in range(5)],
            "sell": [{"quantity": 200 + i, "price": round(101.55 + 0.05 * (i + 1), 2)} for i in range(5)],
        },
        "greeks": {"delta": 0.51, "theta": -12.3, "gamma": 0.0012, "vega": 8.7, "rho": 1.2},
        "iv": 0.1432,
        "symbol": "NFO:NIFTY26NOV24000CE", "seq": 1, "receive_time_ns": 1,
    }  # fmt: skip
    arr = state.array
    slot = state.slot(OPT)
    assert arr["depth_levels"][slot] == 5 and arr["depth"].shape[1] == 30
    assert arr["last_trade_time"][slot] == 1_763_700_000_123  # ms kept in the state
    assert (arr["bar_open"][slot], arr["bar_volume"][slot], arr["bar_ts"][slot]) == (1_010_000, 100, 1_763_699_940_000)
    assert msgpack.packb(t) == state.encode(OPT)


def test_full_d30_and_deeper_books(hp: types.ModuleType, upstox_instruments: UpstoxInstruments) -> None:
    state, dec = make(hp, upstox_instruments)
    dec.feed(uw.feed_response([(OPT, full_feed(levels=30, mode=uw.FULL_D30))]))
    t = state.tick(OPT)
    assert t["mode"] == "full_d30" and len(t["depth"]["buy"]) == len(t["depth"]["sell"]) == 30
    dec.feed(uw.feed_response([(OPT, full_feed(levels=33, mode=uw.FULL_D30))]))
    assert len(state.tick(OPT)["depth"]["sell"]) == 30
    assert dec.stats()["dropped_levels"] == 3
    dec.feed(uw.feed_response([(OPT, full_feed(levels=2))]))
    assert len(state.tick(OPT)["depth"]["buy"]) == 2 and state.tick(OPT)["mode"] == "full"


def test_ltpc_index_and_option_greeks(hp: types.ModuleType, upstox_instruments: UpstoxInstruments) -> None:
    state, dec = make(hp, upstox_instruments)
    index = uw.index_full_feed(uw.ltpc(24_000.5, 1_763_700_000_000, 0, 23_900.0),
                               [uw.ohlc("1d", 23_950.0, 24_100.0, 23_900.0, 24_000.5, 0, 0)])
    first = uw.first_level_with_greeks(uw.ltpc(12.5, 1_763_700_000_000, 50, 10.0), uw.quote(75, 12.45, 150, 12.55),
                                       uw.greeks(0.2, -3.0, 0.01, 2.0, 0.1), 9_999, 123_456.0, 0.21)
    frame = uw.feed_response([
        (INFY, uw.feed(ltpc=uw.ltpc(1_550.5, 1_763_700_000_000, 10, 1_540.0))),
        (NIFTY, uw.feed(full_index=index)),
        (OPT2, uw.feed(first_level=first, request_mode=uw.OPTION_GREEKS)),
    ])  # fmt: skip
    assert dec.feed(frame) == 3
    ltpc = state.tick("NSE:INFY")
    assert {k for k in ltpc if k not in EXTRAS} == {
        "tradable", "mode", "instrument_key", "last_price", "last_traded_quantity", "change", "last_trade_time"}
    assert ltpc["mode"] == "ltpc" and ltpc["change"] == (1_550.5 - 1_540.0) * 100.0 / 1_540.0
    nifty = state.tick(NIFTY)
    assert nifty["tradable"] is False and nifty["mode"] == "full"
    assert nifty["ohlc"] == {"open": 23_950.0, "high": 24_100.0, "low": 23_900.0, "close": 23_900.0}
    opt = state.tick(OPT2)
    assert opt["mode"] == "option_greeks"
    assert opt["depth"] == {"buy": [{"quantity": 75, "price": 12.45}], "sell": [{"quantity": 150, "price": 12.55}]}
    assert opt["greeks"]["delta"] == 0.2 and opt["iv"] == 0.21
    assert (opt["volume_traded"], opt["oi"]) == (9_999, 123_456)


def test_currency_divisor(hp: types.ModuleType, upstox_instruments: UpstoxInstruments) -> None:
    state, dec = make(hp, upstox_instruments)
    dec.feed(uw.feed_response([(USDINR, uw.feed(ltpc=uw.ltpc(83.1234567, 0, 0, 83.0)))]))
    assert state.tick(USDINR)["last_price"] == 83.1234567
    assert state.array["last_price"][state.slot(USDINR)] == 831_234_567


def test_market_info(hp: types.ModuleType, upstox_instruments: UpstoxInstruments) -> None:
    state, dec = make(hp, upstox_instruments)
    frame = uw.feed_response([], type=uw.MARKET_INFO, market_info=uw.market_info({"NSE_EQ": 2, "NSE_FO": 3, "X": 77}))
    assert dec.feed(frame) == 0
    assert dec.market_status == {"NSE_EQ": "NORMAL_OPEN", "NSE_FO": "NORMAL_CLOSE", "X": 77}
    dec.feed(uw.feed_response([], type=uw.MARKET_INFO, market_info=uw.market_info({"NSE_EQ": 3})))
    assert dec.market_status["NSE_EQ"] == "NORMAL_CLOSE"
    assert dec.stats()["market_info_frames"] == 2 and state.dirty_count == 0


def test_unknown_keys_empty_feeds_and_unknown_fields(hp: types.ModuleType, upstox_instruments: UpstoxInstruments) -> None:
    state, dec = make(hp, upstox_instruments)
    unknown_field = uw.tag(99, 0) + uw.varint(7) + uw.tag(98, 2) + uw.varint(3) + b"abc"
    frame = uw.feed_response([
        ("NSE_FO|1", uw.feed(ltpc=uw.ltpc(1.0))),
        (INFY, uw.feed(ltpc=uw.ltpc(1_550.5) + unknown_field) + unknown_field),
        (RELIANCE, b""),
    ]) + unknown_field  # fmt: skip
    assert dec.feed(frame) == 1
    stats = dec.stats()
    assert (stats["unknown_keys"], stats["empty_feeds"]) == (1, 1)
    assert state.tick(INFY)["last_price"] == 1_550.5


def test_bad_values_are_counted_not_fatal(hp: types.ModuleType, upstox_instruments: UpstoxInstruments) -> None:
    state, dec = make(hp, upstox_instruments)
    dec.feed(uw.feed_response([(INFY, uw.feed(ltpc=uw.ltpc(math.nan, 0, 0, math.inf)))]))
    assert state.tick(INFY)["last_price"] == 0.0
    assert dec.stats()["bad_values"] == 2


def test_protobuf_merge_and_oneof_rules(hp: types.ModuleType, upstox_instruments: UpstoxInstruments) -> None:
    """A repeated singular sub-message merges; the last oneof member wins;
    the entry's key may come after its value."""
    state, dec = make(hp, upstox_instruments)
    merged = uw.feed(ltpc=uw.ltpc(ltp=10.0, ltq=5)) + uw.message_field(1, uw.ltpc(cp=8.0))
    switched = uw.feed(full_market=uw.market_full_feed(ltpc=uw.ltpc(99.0), atp=98.0)) + uw.message_field(
        1, uw.ltpc(ltp=7.0))
    value_first = uw.message_field(2, uw.feed(ltpc=uw.ltpc(3.5))) + uw.string_field(1, RELIANCE)
    frame = uw.feed_response([(INFY, merged), (OPT, switched)]) + uw.message_field(2, value_first)
    assert dec.feed(frame) == 3
    infy = state.tick(INFY)
    assert (infy["last_price"], infy["last_traded_quantity"]) == (10.0, 5)
    assert infy["change"] == (10.0 - 8.0) * 100.0 / 8.0
    opt = state.tick(OPT)
    assert opt["mode"] == "ltpc" and opt["last_price"] == 7.0 and "average_traded_price" not in opt
    assert state.tick(RELIANCE)["last_price"] == 3.5


def test_upstox_state_rejects_int_keys(hp: types.ModuleType, upstox_instruments: UpstoxInstruments) -> None:
    state, _ = make(hp, upstox_instruments)
    with pytest.raises(KeyError, match="instrument_key"):
        state.tick(45450)
    assert state.tick("NSE:INFY") == state.tick(INFY)


# -- malformed frames -------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "reason", "offset"),
    [
        (b"\x08", "truncated varint in FeedResponse", 1),
        (b"\x08" + b"\xff" * 10 + b"\x01", "varint longer than 10 bytes in FeedResponse", 1),
        (b"\x12\x05\x0a\x03X", "length 5 runs past the end of FeedResponse (3 bytes left)", 1),
        (b"\x0b", "unsupported wire type 3 (field 1) in FeedResponse", 0),
        (b"\x00", "field number 0 in FeedResponse", 0),
        (b"\x12\x02\x08\x01", "field 1 of FeedResponse.feeds entry has wire type 0, expected 2", 3),
        (b"\x0a\x01\x00", "field 1 of FeedResponse has wire type 2, expected 0", 1),
        (b"\x19\x00", "field 3 of FeedResponse has wire type 1, expected 0", 1),
        (b"\x49\x00", "truncated fixed-size value in FeedResponse", 1),  # unknown field 9, fixed64
    ],
)
def test_malformed_frames(
    hp: types.ModuleType, upstox_instruments: UpstoxInstruments, frame: bytes, reason: str, offset: int
) -> None:
    state, dec = make(hp, upstox_instruments)
    with pytest.raises(FrameError) as info:
        dec.feed(frame)
    assert info.value.reason == reason and info.value.offset == offset
    assert dec.stats()["frame_errors"] == 1 and state.dirty_count == 0


def test_malformed_nested_feed_applies_earlier_feeds_only(
    hp: types.ModuleType, upstox_instruments: UpstoxInstruments
) -> None:
    """Each feed is applied whole or not at all: the feeds before a malformed
    one stay applied, the malformed one and those after it are not."""
    state, dec = make(hp, upstox_instruments)
    good = uw.feed_response([(INFY, uw.feed(ltpc=uw.ltpc(1_550.5)))])
    broken_value = uw.message_field(1, uw.ltpc(2.0) + b"\x19\x01")  # LTPC.ltq with wire type 1, truncated
    bad = uw.map_field(2, OPT, uw.message_field(2, broken_value))
    later = uw.feed_response([(RELIANCE, uw.feed(ltpc=uw.ltpc(3.0)))])
    with pytest.raises(FrameError) as info:
        dec.feed(good + bad + later)
    assert "LTPC" in info.value.reason
    assert state.tick(INFY)["last_price"] == 1_550.5
    assert state.tick(OPT)["mode"] is None and state.tick(RELIANCE)["mode"] is None


def test_every_truncation_leaves_each_instrument_whole(
    hp: types.ModuleType, upstox_instruments: UpstoxInstruments
) -> None:
    """Cut a frame anywhere: each instrument is either untouched or exactly as
    the complete frame leaves it (never half-updated). A cut that drops only
    the trailing currentTs is a valid frame without exchange_timestamp."""
    frame = uw.feed_response([(OPT, full_feed()), (INFY, uw.feed(ltpc=uw.ltpc(1_550.5)))], current_ts=5_000)
    whole, dec = make(hp, upstox_instruments)
    dec.feed(frame, 1)
    complete = {k: whole.tick(k) for k in (OPT, INFY)}
    for tick in complete.values():
        del tick["exchange_timestamp"]
    outcomes = set()
    for cut in range(len(frame)):
        state, dec = make(hp, upstox_instruments)
        try:
            dec.feed(frame[:cut], 1)
            outcomes.add("decoded")
        except FrameError as exc:
            assert 0 <= exc.offset <= cut
            outcomes.add("error")
        for key in (OPT, INFY):
            tick = state.tick(key)
            tick.pop("exchange_timestamp", None)
            assert tick["mode"] is None or tick == complete[key]
    assert outcomes == {"decoded", "error"}


def test_absent_sub_messages_leave_fields_as_they_were(
    hp: types.ModuleType, upstox_instruments: UpstoxInstruments
) -> None:
    state, dec = make(hp, upstox_instruments)
    dec.feed(uw.feed_response([(OPT, full_feed())]), 1)
    before = state.tick(OPT)
    dec.feed(uw.feed_response([(OPT, uw.feed(full_market=uw.market_full_feed(atp=99.5, vtt=5)))]), 2)
    after = state.tick(OPT)
    assert after["average_traded_price"] == 99.5 and after["volume_traded"] == 5  # proto3 scalars
    assert after["oi"] == 0 and after["total_buy_quantity"] == 0
    for key in ("last_price", "change", "last_trade_time", "ohlc", "depth", "greeks"):
        assert after[key] == before[key], key  # LTPC, MarketLevel, greeks, 1d bar: not in the feed
    assert after["seq"] == 2


def test_skipped_sub_messages_are_checked(hp: types.ModuleType, upstox_instruments: UpstoxInstruments) -> None:
    """LTPC.iep and MarketInfo's status maps are not kept, but malformed ones are refused."""
    _, dec = make(hp, upstox_instruments)
    good_iep = uw.feed_response([(INFY, uw.feed(ltpc=uw.ltpc(1.0, iep=2.0)))])
    assert dec.feed(good_iep) == 1
    bad_iep = uw.feed_response([(INFY, uw.feed(ltpc=uw.ltpc(1.0) + uw.length_delimited(5, b"\x09\x00\x00")))])
    with pytest.raises(FrameError, match="DoubleValue"):
        dec.feed(bad_iep)
    good_info = uw.feed_response([], type=uw.MARKET_INFO, market_info=uw.market_info(
        {"NSE_EQ": 2}, cas_market_status={"NSE_EQ": uw.status_info("OPEN", 5)}))
    assert dec.feed(good_info) == 0
    bad_info = uw.message_field(4, uw.length_delimited(2, b"\x0a\x05ab"))
    with pytest.raises(FrameError, match="MarketInfo status entry"):
        dec.feed(bad_info)


def test_counters_after_a_mid_frame_error(hp: types.ModuleType, upstox_instruments: UpstoxInstruments) -> None:
    state, dec = make(hp, upstox_instruments)
    good = uw.feed_response([(INFY, uw.feed(ltpc=uw.ltpc(1_550.5)))])
    bad = uw.map_field(2, OPT, uw.message_field(2, uw.message_field(1, b"\x19\x01")))  # LTPC.ltq, fixed64 cut
    with pytest.raises(FrameError):
        dec.feed(good + bad)
    stats = dec.stats()
    assert (stats["feeds"], stats["frames"], stats["frame_errors"]) == (1, 0, 1)
    assert state.tick(INFY)["seq"] == 1


def test_enums_are_int32(hp: types.ModuleType, upstox_instruments: UpstoxInstruments) -> None:
    """Protobuf reads enum varints as int32: 2**32 + 3 is 3 (full_d30), and a
    negative status stays negative."""
    state, dec = make(hp, upstox_instruments)
    feed = uw.feed(full_market=uw.market_full_feed(ltpc=uw.ltpc(1.0))) + uw.int64_field(4, 2**32 + 3)
    dec.feed(uw.feed_response([(OPT, feed)]))
    assert state.tick(OPT)["mode"] == "full_d30"
    dec.feed(uw.feed_response([], type=uw.MARKET_INFO, market_info=uw.market_info({"NSE_EQ": -1})))
    assert dec.market_status == {"NSE_EQ": -1}


def test_decoders_check_the_broker_of_their_state(
    hp: types.ModuleType, upstox_instruments: UpstoxInstruments, instruments: Any
) -> None:
    with pytest.raises(ValueError, match="Kite"):
        hp.KiteDecoder(hp.MarketState(upstox_instruments))
    with pytest.raises(ValueError, match="Upstox"):
        hp.UpstoxDecoder(hp.MarketState(instruments))


def test_frame_decoder_is_the_shared_base(compiled: types.ModuleType) -> None:
    assert issubclass(compiled.KiteDecoder, compiled.FrameDecoder)
    assert issubclass(compiled.UpstoxDecoder, compiled.FrameDecoder)
    with pytest.raises(TypeError, match="abstract"):
        compiled.FrameDecoder()


def test_no_python_object_per_feed(compiled: types.ModuleType, upstox_instruments: UpstoxInstruments) -> None:
    import tracemalloc

    _, dec = make(compiled, upstox_instruments)
    frame = uw.feed_response([(k, full_feed(levels=30)) for k in UPSTOX_KEYS], current_ts=7)
    feed = dec.feed
    feed(frame, 1)
    tracemalloc.start()
    try:
        current, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        i = 0
        while i < 200:  # 1,600 feeds
            feed(frame, 1)
            i += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - current == 0, f"feed allocated {peak - current} bytes transiently"


# -- differential test against the official generated classes ----------------------

GRID = st.integers(-(10**9), 10**9).map(lambda i: i / 10_000)  # prices on the 1e-4 grid: exact
QTY = st.integers(-(2**63), 2**63 - 1)
TS = st.integers(0, 2**62)
WHOLE = st.integers(0, 10**12).map(float)
REAL = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def upstox_frame(draw: st.DrawFn, pb: Any) -> bytes:
    fr = pb.FeedResponse()
    fr.type = draw(st.sampled_from([0, 1]))
    fr.currentTs = draw(st.one_of(st.just(0), TS))
    keys = draw(st.lists(st.sampled_from([k for k in UPSTOX_KEYS if not k.startswith("NCD")]), min_size=1, unique=True))
    for key in keys:
        feed = fr.feeds[key]
        kind = draw(st.sampled_from(["ltpc", "market", "index", "first"]))
        if kind == "ltpc":
            lt = feed.ltpc
        elif kind == "market":
            m = feed.fullFeed.marketFF
            lt = m.ltpc
            for _ in range(draw(st.integers(0, 32))):
                q = m.marketLevel.bidAskQuote.add()
                q.bidQ, q.bidP, q.askQ, q.askP = draw(QTY), draw(GRID), draw(QTY), draw(GRID)
            if draw(st.booleans()):
                g = m.optionGreeks
                g.delta, g.theta, g.gamma, g.vega, g.rho = (draw(REAL) for _ in range(5))
            for interval in draw(st.lists(st.sampled_from(["1d", "I1", "I30"]), max_size=3)):
                o = m.marketOHLC.ohlc.add()
                o.interval = interval
                o.open, o.high, o.low, o.close = (draw(GRID) for _ in range(4))
                o.vol, o.ts = draw(QTY), draw(TS)
            m.atp, m.vtt, m.oi, m.iv, m.tbq, m.tsq = draw(GRID), draw(QTY), draw(WHOLE), draw(REAL), draw(WHOLE), draw(WHOLE)
        elif kind == "index":
            ix = feed.fullFeed.indexFF
            lt = ix.ltpc
            if draw(st.booleans()):
                o = ix.marketOHLC.ohlc.add()
                o.interval = "1d"
                o.open, o.high, o.low, o.close = (draw(GRID) for _ in range(4))
        else:
            f1 = feed.firstLevelWithGreeks
            lt = f1.ltpc
            if draw(st.booleans()):
                d = f1.firstDepth
                d.bidQ, d.bidP, d.askQ, d.askP = draw(QTY), draw(GRID), draw(QTY), draw(GRID)
            if draw(st.booleans()):
                g = f1.optionGreeks
                g.delta, g.theta, g.gamma, g.vega, g.rho = (draw(REAL) for _ in range(5))
            f1.vtt, f1.oi, f1.iv = draw(QTY), draw(WHOLE), draw(REAL)
        if kind == "ltpc" or draw(st.integers(0, 5)):  # now and then a payload without LTPC
            lt.ltp, lt.ltt, lt.ltq, lt.cp = draw(GRID), draw(TS), draw(QTY), draw(GRID)
        feed.requestMode = draw(st.sampled_from([0, 1, 2, 3]))
    return bytes(fr.SerializeToString(deterministic=True))


def change(ltp: float, cp: float) -> float:
    return 0.0 if cp == 0 else (ltp - cp) * 100.0 / cp


def expected_tick(fr: Any, key: str, feed: Any) -> dict[str, Any]:
    """The tick the official classes' values imply (docs/state.md): a
    sub-message the feed does not carry adds no keys (fresh state here)."""
    payload = feed.WhichOneof("FeedUnion")
    t: dict[str, Any] = {}
    has_ltpc = True
    if payload == "ltpc":
        lt, mode = feed.ltpc, "ltpc"
    elif payload == "fullFeed" and feed.fullFeed.WhichOneof("FullFeedUnion") == "marketFF":
        m = feed.fullFeed.marketFF
        lt, has_ltpc = m.ltpc, m.HasField("ltpc")
        levels = list(m.marketLevel.bidAskQuote)[:30]
        mode = "full_d30" if feed.requestMode == 3 or len(m.marketLevel.bidAskQuote) > 5 else "full"
        t.update(average_traded_price=m.atp, volume_traded=m.vtt, total_buy_quantity=int(m.tbq),
                 total_sell_quantity=int(m.tsq), oi=int(m.oi))
        if m.HasField("marketLevel"):
            t["depth"] = {"buy": [{"quantity": q.bidQ, "price": q.bidP} for q in levels],
                          "sell": [{"quantity": q.askQ, "price": q.askP} for q in levels]}
        day = [o for o in m.marketOHLC.ohlc if o.interval == "1d"]
        if day:
            t["ohlc"] = {"open": day[-1].open, "high": day[-1].high, "low": day[-1].low, "close": lt.cp}
        if m.HasField("optionGreeks"):
            g = m.optionGreeks
            t["greeks"] = {"delta": g.delta, "theta": g.theta, "gamma": g.gamma, "vega": g.vega, "rho": g.rho}
        if m.HasField("optionGreeks") or m.iv != 0:
            t["iv"] = m.iv
    elif payload == "fullFeed":
        ix = feed.fullFeed.indexFF
        lt, mode, has_ltpc = ix.ltpc, "full", ix.HasField("ltpc")
        day = [o for o in ix.marketOHLC.ohlc if o.interval == "1d"]
        if day:
            t["ohlc"] = {"open": day[-1].open, "high": day[-1].high, "low": day[-1].low, "close": lt.cp}
    else:
        f1 = feed.firstLevelWithGreeks
        lt, mode, has_ltpc = f1.ltpc, "option_greeks", f1.HasField("ltpc")
        if f1.HasField("firstDepth"):
            d = f1.firstDepth
            t["depth"] = {"buy": [{"quantity": d.bidQ, "price": d.bidP}],
                          "sell": [{"quantity": d.askQ, "price": d.askP}]}
        t.update(volume_traded=f1.vtt, oi=int(f1.oi))
        if f1.HasField("optionGreeks"):
            g = f1.optionGreeks
            t["greeks"] = {"delta": g.delta, "theta": g.theta, "gamma": g.gamma, "vega": g.vega, "rho": g.rho}
        if f1.HasField("optionGreeks") or f1.iv != 0:
            t["iv"] = f1.iv
    t.update(mode=mode, instrument_key=key)
    if has_ltpc:
        t.update(last_price=lt.ltp, last_traded_quantity=lt.ltq, last_trade_time=lt.ltt // 1000,
                 change=change(lt.ltp, lt.cp))
    if fr.currentTs:
        t["exchange_timestamp"] = fr.currentTs // 1000
    return t


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_ticks_equal_the_official_classes(
    hp: types.ModuleType, upstox_instruments: UpstoxInstruments, pb: Any, data: st.DataObject
) -> None:
    frame = data.draw(upstox_frame(pb))
    fr = pb.FeedResponse.FromString(frame)
    state, dec = make(hp, upstox_instruments)
    carried = {key: feed for key, feed in fr.feeds.items() if feed.WhichOneof("FeedUnion")}
    assert dec.feed(frame, 1) == len(carried)  # a Feed with no payload is counted, not applied
    assert dec.stats()["empty_feeds"] == len(fr.feeds) - len(carried)
    for key, feed in carried.items():
        ours = state.tick(key)
        expected = expected_tick(fr, key, feed)
        assert {k: v for k, v in ours.items() if k not in EXTRAS | {"tradable"}} == expected
        assert msgpack.packb(ours) == state.encode(key)


# -- fuzz ----------------------------------------------------------------------------


@st.composite
def mutated_frame(draw: st.DrawFn) -> bytes:
    base = uw.feed_response(
        [(OPT, full_feed(levels=draw(st.integers(0, 31)))), (INFY, uw.feed(ltpc=uw.ltpc(1.5, 2, 3, 1.0)))],
        type=uw.LIVE_FEED, current_ts=1_763_700_000_000,
        market_info=uw.market_info({"NSE_EQ": 2}) if draw(st.booleans()) else None,
    )
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
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
    return bytes(data)


FUZZ = settings(
    max_examples=int(os.environ.get("FASTFLOW_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def fuzz_check(hp: types.ModuleType, instruments: UpstoxInstruments, data: bytes) -> None:
    state, dec = make(hp, instruments)
    try:
        applied = dec.feed(data, 1)
    except FrameError as exc:
        assert 0 <= exc.offset <= len(data)
        return
    assert 0 <= applied <= len(data)
    batch = state.flush()
    for blob in batch:
        msgpack.unpackb(blob)
    assert np.all(state.array["depth_levels"] <= 30)


@FUZZ
@given(data=st.binary(max_size=800))
def test_fuzz_random_bytes(hp: types.ModuleType, upstox_instruments: UpstoxInstruments, data: bytes) -> None:
    fuzz_check(hp, upstox_instruments, data)


@FUZZ
@given(data=mutated_frame())
def test_fuzz_mutated_frames(hp: types.ModuleType, upstox_instruments: UpstoxInstruments, data: bytes) -> None:
    fuzz_check(hp, upstox_instruments, data)


def test_real_instrument_master_end_to_end(hp: types.ModuleType, tmp_path: Any) -> None:
    """The synthetic universe as Upstox's gzipped JSON, loaded by
    Instruments.from_upstox, drives the decoder; lookups by key and symbol."""
    from fastflow.instruments import Instruments
    from fastflow.sim.universe import upstox_universe, write_upstox_json

    path = tmp_path / "complete.json.gz"
    write_upstox_json(upstox_universe(), path)
    instruments = Instruments.from_upstox(path)
    state, dec = make(hp, instruments)
    keys = [str(k) for k in instruments.instrument_key]
    currency = next(k for k in keys if k.startswith("NCD_FO|"))
    options = [(k, full_feed()) for k in keys if k.startswith("NSE_FO|")][:50]
    frame = uw.feed_response(
        [
            ("NSE_EQ|INE009A01021", uw.feed(ltpc=uw.ltpc(1_550.5, 1_763_700_000_000, 10, 1_540.0))),
            ("NSE_INDEX|Nifty 50", uw.feed(full_index=uw.index_full_feed(uw.ltpc(26_000.25)))),
            (currency, uw.feed(ltpc=uw.ltpc(88.1234567))),
            *options,
        ],
        type=uw.LIVE_FEED,
    )
    assert dec.feed(frame) == 53
    assert state.tick("NSE:INFY")["last_price"] == 1_550.5
    assert state.tick("NSE:NIFTY 50")["tradable"] is False
    assert state.tick(currency)["last_price"] == 88.1234567
    assert len(state.flush()) == 53
    assert dec.stats()["unknown_keys"] == 0
