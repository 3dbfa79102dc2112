"""The Upstox V3 encoder (``fastflow.sim.wire.upstox``) against the official
protobuf classes, generated from the schema by ``tests/upstox_pb.py``.

Every message is described once as a plain "spec" (dicts and tuples), then
built twice: with the encoder and with the official classes. The encoder's
bytes must equal ``SerializeToString()`` and parse back to the same message.

Map order: upb writes map entries in hash-table order, not insertion order, so
with two or more entries the comparison is against
``SerializeToString(deterministic=True)`` and the encoder is given the entries
in that order. For upb (:func:`upb_order`) that is bytewise ascending, except
that a key comes *after* every key it is a proper prefix of; the pure-Python
backend sorts plain bytewise.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.internal import api_implementation
from hypothesis import given, settings
from hypothesis import strategies as st

from fastflow.sim.wire import upstox as uw

from .. import upstox_pb

Spec = dict[str, Any]


def upb_order(key: str) -> tuple[int, ...]:
    """Sort key of upb's deterministic map order for string keys.

    ``_upb_mapsorter_cmpstr`` sorts by negated ``memcmp`` with an ascending-size
    tie-break, and the backward-building encoder then emits the sorted entries
    reversed: ascending bytes, but "ab" before "a" (end-of-key ranks above every byte).
    """
    return (*key.encode(), 256)


def plain_order(key: str) -> bytes:
    """Sort key of the pure-Python and C++ backends' deterministic order: plain bytewise."""
    return key.encode()


OrderKey = Callable[[str], Any]


def deterministic_order(pb: Any) -> OrderKey:
    """The runtime's deterministic map order, probed on ``{"a", "ab"}``."""
    mi = pb.MarketInfo()
    mi.segmentStatus["a"] = mi.segmentStatus["ab"] = 0
    prefix_last = mi.SerializeToString(deterministic=True) != uw.market_info([("a", 0), ("ab", 0)])
    return upb_order if prefix_last else plain_order


def ordered(entries: dict[str, Any], order: OrderKey) -> list[tuple[str, Any]]:
    return sorted(entries.items(), key=lambda kv: order(kv[0]))


# --- the two builders ----------------------------------------------------------------------------


def _opt(fn: Any, value: Any) -> Any:
    return None if value is None else fn(value)


def enc_ltpc(s: Spec) -> bytes:
    return uw.ltpc(s["ltp"], s["ltt"], s["ltq"], s["cp"], iep=s.get("iep"))


def enc_quotes(levels: list[tuple[Any, ...]]) -> list[bytes]:
    return [uw.quote(*q) for q in levels]


def enc_ohlcs(ohlcs: list[tuple[Any, ...]]) -> list[bytes]:
    return [uw.ohlc(*o) for o in ohlcs]


def enc_greeks(g: tuple[float, ...]) -> bytes:
    return uw.greeks(*g)


AUCTION = {
    "iep": "iep",
    "rp": "rp",
    "ieq": "ieq",
    "iiq_total": "iiqTotal",
    "iiq_m": "iiqM",
    "cas_eligible": "casEligible",
}


def enc_payload(kind: str, s: Spec) -> bytes:
    if kind == "ltpc":
        return enc_ltpc(s)
    if kind == "market":
        return uw.market_full_feed(
            _opt(enc_ltpc, s["ltpc"]),
            _opt(enc_quotes, s["levels"]),
            _opt(enc_greeks, s["greeks"]),
            _opt(enc_ohlcs, s["ohlcs"]),
            s["atp"],
            s["vtt"],
            s["oi"],
            s["iv"],
            s["tbq"],
            s["tsq"],
            **s.get("auction", {}),
        )
    if kind == "index":
        return uw.index_full_feed(_opt(enc_ltpc, s["ltpc"]), _opt(enc_ohlcs, s["ohlcs"]))
    assert kind == "first"
    return uw.first_level_with_greeks(
        _opt(enc_ltpc, s["ltpc"]),
        _opt(lambda q: uw.quote(*q), s["first_depth"]),
        _opt(enc_greeks, s["greeks"]),
        s["vtt"],
        s["oi"],
        s["iv"],
    )


def enc_feed(s: Spec) -> bytes:
    arg = {"ltpc": "ltpc", "market": "full_market", "index": "full_index", "first": "first_level"}[s["kind"]]
    return uw.feed(**{arg: enc_payload(s["kind"], s["payload"])}, request_mode=s["request_mode"])


def enc_market_info(s: Spec, order: OrderKey) -> bytes:
    return uw.market_info(
        ordered(s["segment_status"], order),
        cas_market_status=[(k, uw.status_info(*v)) for k, v in ordered(s["cas"], order)],
        pre_open_session_status=[(k, uw.status_info(*v)) for k, v in ordered(s["pre_open"], order)],
    )


def encode(s: Spec, order: OrderKey) -> bytes:
    """The encoder's frame for a FeedResponse spec, map entries sorted with ``order``."""
    return uw.feed_response(
        [(k, enc_feed(f)) for k, f in ordered(s["feeds"], order)],
        type=s["type"],
        current_ts=s["current_ts"],
        market_info=None if s["market_info"] is None else enc_market_info(s["market_info"], order),
    )


def fill_ltpc(m: Any, s: Spec) -> None:
    m.SetInParent()
    m.ltp, m.ltt, m.ltq, m.cp = s["ltp"], s["ltt"], s["ltq"], s["cp"]
    if s.get("iep") is not None:
        m.iep.SetInParent()
        m.iep.value = s["iep"]


def fill_quote(m: Any, q: tuple[Any, ...]) -> None:
    m.SetInParent()
    m.bidQ, m.bidP, m.askQ, m.askP = q


def fill_greeks(m: Any, g: tuple[float, ...]) -> None:
    m.SetInParent()
    m.delta, m.theta, m.gamma, m.vega, m.rho = g


def fill_ohlcs(m: Any, ohlcs: list[tuple[Any, ...]]) -> None:
    m.SetInParent()
    for o in ohlcs:
        e = m.ohlc.add()
        e.interval, e.open, e.high, e.low, e.close, e.vol, e.ts = o


def fill_payload(m: Any, kind: str, s: Spec) -> None:
    m.SetInParent()
    if kind == "ltpc":
        fill_ltpc(m, s)
        return
    if s["ltpc"] is not None:
        fill_ltpc(m.ltpc, s["ltpc"])
    if kind in ("market", "index") and s["ohlcs"] is not None:
        fill_ohlcs(m.marketOHLC, s["ohlcs"])
    if kind in ("market", "first") and s["greeks"] is not None:
        fill_greeks(m.optionGreeks, s["greeks"])
    if kind == "market":
        if s["levels"] is not None:
            m.marketLevel.SetInParent()
            for q in s["levels"]:
                fill_quote(m.marketLevel.bidAskQuote.add(), q)
        m.atp, m.vtt, m.oi, m.iv, m.tbq, m.tsq = s["atp"], s["vtt"], s["oi"], s["iv"], s["tbq"], s["tsq"]
        for ours, theirs in AUCTION.items():
            setattr(m, theirs, s.get("auction", {}).get(ours, 0))
    elif kind == "first":
        if s["first_depth"] is not None:
            fill_quote(m.firstDepth, s["first_depth"])
        m.vtt, m.oi, m.iv = s["vtt"], s["oi"], s["iv"]


def fill_feed(m: Any, s: Spec) -> None:
    target = {
        "ltpc": lambda: m.ltpc,
        "market": lambda: m.fullFeed.marketFF,
        "index": lambda: m.fullFeed.indexFF,
        "first": lambda: m.firstLevelWithGreeks,
    }[s["kind"]]()
    fill_payload(target, s["kind"], s["payload"])
    if s["request_mode"] is not None:
        m.requestMode = s["request_mode"]


def official(pb: Any, s: Spec) -> Any:
    """The same FeedResponse built with the official classes (feeds inserted in spec order)."""
    fr = pb.FeedResponse()
    fr.type = s["type"]
    fr.currentTs = s["current_ts"]
    for key, f in s["feeds"].items():
        fill_feed(fr.feeds[key], f)
    mi = s["market_info"]
    if mi is not None:
        fr.marketInfo.SetInParent()
        for k, v in mi["segment_status"].items():
            fr.marketInfo.segmentStatus[k] = v
        for field, entries in (("casMarketStatus", mi["cas"]), ("preOpenSessionStatus", mi["pre_open"])):
            for k, (status, updated) in entries.items():
                e = getattr(fr.marketInfo, field)[k]
                e.status, e.updatedTime = status, updated
    return fr


def response(feeds: dict[str, Spec] | None = None, **kw: Any) -> Spec:
    s: Spec = {
        "feeds": feeds or {},
        "type": uw.LIVE_FEED,
        "current_ts": 1_732_089_600_123,
        "market_info": None,
    }
    s.update(kw)
    return s


#: upb keeps a double's bits through parse + serialize; the pure-Python backend's
#: parser replaces every NaN by the canonical ``math.nan`` (its payload and sign are lost).
BIT_EXACT_PARSE = api_implementation.Type() == "upb"


def check(pb: Any, s: Spec) -> bytes:
    """Encoder bytes == official bytes, and the encoder's bytes parse to the official message."""
    ours = encode(s, deterministic_order(pb))
    msg = official(pb, s)
    assert ours == msg.SerializeToString(deterministic=True)
    n_entries = len(s["feeds"]) + sum(len(v) for v in (s["market_info"] or {}).values())
    if n_entries <= 1:  # a single map entry: no ordering question, plain serialization matches too
        assert ours == msg.SerializeToString()
    parsed = pb.FeedResponse.FromString(ours)
    if BIT_EXACT_PARSE:
        assert (
            parsed.SerializeToString(deterministic=True) == ours
        )  # bit-exact round trip (NaN payloads, -0.0)
    assert json_format.MessageToDict(parsed) == json_format.MessageToDict(msg)  # NaN -> "NaN" compares equal
    return ours


# --- realistic specs --------------------------------------------------------------------------------

LTT = 1_732_089_600_000


def ltpc_spec(ltp: float = 1234.55, i: int = 0) -> Spec:
    return {"ltp": ltp, "ltt": LTT + i, "ltq": 75, "cp": ltp - 3.5}


def market_spec(depth: int, ltp: float = 1234.55) -> Spec:
    return {
        "ltpc": ltpc_spec(ltp),
        "levels": [
            (100 * (i + 1), ltp - 0.05 * (i + 1), 90 * (i + 1), ltp + 0.05 * (i + 1)) for i in range(depth)
        ],
        "greeks": (0.51, -12.3, 0.0012, 8.7, 1.2),
        "ohlcs": [
            ("1d", ltp - 10, ltp + 12, ltp - 15, ltp, 1_234_567, 1_732_041_000_000),
            ("I1", ltp - 1, ltp + 1.5, ltp - 2, ltp, 4_321, 1_732_089_540_000),
        ],
        "atp": ltp - 1.25,
        "vtt": 9_876_543,
        "oi": 123_450.0,
        "iv": 0.1432,
        "tbq": 456_789.0,
        "tsq": 398_765.0,
    }


def feed_spec(kind: str, payload: Spec, mode: int | None) -> Spec:
    return {"kind": kind, "payload": payload, "request_mode": mode}


@pytest.fixture(scope="module")
def pb() -> Any:
    return upstox_pb.load()


# --- golden vectors (broker-formats notes, section 2.2) -----------------------------------------

GOLDEN = bytes.fromhex("12120a03587c31120b0a0909000000000000f03f")


def test_golden_vectors(pb: Any) -> None:
    feeds = {"X|1": uw.feed(ltpc=uw.ltpc(ltp=1.0))}
    assert uw.feed_response(feeds, type=uw.INITIAL_FEED) == GOLDEN
    assert uw.feed_response(feeds, type=uw.LIVE_FEED) == bytes.fromhex("0801") + GOLDEN
    fr = pb.FeedResponse()
    fr.feeds["X|1"].ltpc.ltp = 1.0
    assert fr.SerializeToString() == GOLDEN
    fr.type = pb.live_feed
    assert fr.SerializeToString() == bytes.fromhex("0801") + GOLDEN
    assert pb.FeedResponse.FromString(GOLDEN).type == pb.initial_feed  # absent type = initial_feed


def test_enum_constants_match_schema(pb: Any) -> None:
    assert (pb.initial_feed, pb.live_feed, pb.market_info) == (uw.INITIAL_FEED, uw.LIVE_FEED, uw.MARKET_INFO)
    assert (pb.ltpc, pb.full_d5, pb.option_greeks, pb.full_d30) == (
        uw.LTPC,
        uw.FULL_D5,
        uw.OPTION_GREEKS,
        uw.FULL_D30,
    )
    names = ["PRE_OPEN_START", "PRE_OPEN_END", "NORMAL_OPEN", "NORMAL_CLOSE", "CLOSING_START", "CLOSING_END"]
    assert [getattr(uw, n) for n in names] == [pb.MarketStatus.Value(n) for n in names]
    assert uw.REQUEST_MODES["full"] == pb.full_d5


# --- each payload kind --------------------------------------------------------------------------


def test_ltpc_feed(pb: Any) -> None:
    check(pb, response({"NSE_EQ|INE848E01016": feed_spec("ltpc", ltpc_spec(), None)}))
    check(pb, response({"NSE_EQ|INE848E01016": feed_spec("ltpc", ltpc_spec(), uw.LTPC)}))


@pytest.mark.parametrize("iep", [101.25, 0.0, -0.0])
def test_ltpc_iep_wrapper(pb: Any, iep: float) -> None:
    ours = check(pb, response({"NSE_EQ|X": feed_spec("ltpc", {**ltpc_spec(), "iep": iep}, None)}))
    assert pb.FeedResponse.FromString(ours).feeds["NSE_EQ|X"].ltpc.HasField("iep")


@pytest.mark.parametrize(("depth", "mode"), [(5, uw.FULL_D5), (30, uw.FULL_D30)])
def test_market_full_feed(pb: Any, depth: int, mode: int) -> None:
    ours = check(pb, response({"NSE_FO|45450": feed_spec("market", market_spec(depth), mode)}))
    m = pb.FeedResponse.FromString(ours).feeds["NSE_FO|45450"].fullFeed.marketFF
    assert len(m.marketLevel.bidAskQuote) == depth
    assert [o.interval for o in m.marketOHLC.ohlc] == ["1d", "I1"]
    assert (m.vtt, m.oi, m.tsq) == (9_876_543, 123_450.0, 398_765.0)


def test_market_full_feed_auction_fields(pb: Any) -> None:
    auction = {
        "iep": 1234.5,
        "rp": 1230.0,
        "ieq": 5_000,
        "iiq_total": 12_000,
        "iiq_m": -7,
        "cas_eligible": True,
    }
    check(pb, response({"NSE_EQ|X": feed_spec("market", {**market_spec(5), "auction": auction}, uw.FULL_D5)}))


def test_market_full_feed_greeks_only_and_empty_containers(pb: Any) -> None:
    payload = {**market_spec(0), "ltpc": None, "ohlcs": [], "atp": 0.0, "vtt": 0, "oi": 0.0}
    ours = check(pb, response({"NSE_FO|1": feed_spec("market", payload, uw.FULL_D5)}))
    m = pb.FeedResponse.FromString(ours).feeds["NSE_FO|1"].fullFeed.marketFF
    assert m.HasField("marketLevel") and m.HasField("marketOHLC") and not m.HasField("ltpc")


def test_empty_market_full_feed_is_present(pb: Any) -> None:
    empty = {
        "ltpc": None,
        "levels": None,
        "greeks": None,
        "ohlcs": None,
        "atp": 0.0,
        "vtt": 0,
        "oi": 0.0,
        "iv": 0.0,
        "tbq": 0.0,
        "tsq": 0.0,
    }
    ours = check(pb, response({"NSE_FO|1": feed_spec("market", empty, None)}))
    assert pb.FeedResponse.FromString(ours).feeds["NSE_FO|1"].fullFeed.HasField("marketFF")
    assert uw.feed(full_market=uw.market_full_feed()) == bytes.fromhex("12020a00")


def test_index_full_feed(pb: Any) -> None:
    payload = {"ltpc": ltpc_spec(24_350.4), "ohlcs": market_spec(0, 24_350.4)["ohlcs"]}
    ours = check(pb, response({"NSE_INDEX|Nifty 50": feed_spec("index", payload, uw.FULL_D5)}))
    assert (
        pb.FeedResponse.FromString(ours).feeds["NSE_INDEX|Nifty 50"].fullFeed.WhichOneof("FullFeedUnion")
        == "indexFF"
    )


def test_first_level_with_greeks(pb: Any) -> None:
    payload = {
        "ltpc": ltpc_spec(88.4),
        "first_depth": (1500, 88.35, 2250, 88.45),
        "greeks": (-0.42, -3.1, 0.0021, 5.6, -0.8),
        "vtt": 1_200_000,
        "oi": 5_600_000.0,
        "iv": 0.1875,
    }
    check(pb, response({"NSE_FO|45451": feed_spec("first", payload, uw.OPTION_GREEKS)}))


def test_market_info(pb: Any) -> None:
    status = {
        "NSE_EQ": uw.NORMAL_OPEN,
        "NSE_FO": uw.NORMAL_OPEN,
        "NSE_INDEX": uw.PRE_OPEN_END,
        "MCX_FO": uw.PRE_OPEN_START,
        "BSE_EQ": uw.CLOSING_END,
    }
    mi = {
        "segment_status": status,
        "cas": {"NSE_EQ": ("OPEN", LTT)},
        "pre_open": {"NSE_EQ": ("CLOSED", LTT + 5)},
    }
    ours = check(pb, response(type=uw.MARKET_INFO, market_info=mi))
    assert dict(pb.FeedResponse.FromString(ours).marketInfo.segmentStatus) == status
    # one entry: plain (non-deterministic) serialization is byte-identical too
    check(
        pb,
        response(
            type=uw.MARKET_INFO, market_info={"segment_status": {"NSE_EQ": 2}, "cas": {}, "pre_open": {}}
        ),
    )


def test_map_entries_always_carry_key_and_value(pb: Any) -> None:
    mi = pb.MarketInfo()
    mi.segmentStatus[""] = pb.PRE_OPEN_START
    assert uw.market_info({"": uw.PRE_OPEN_START}) == mi.SerializeToString() == bytes.fromhex("0a040a001000")
    fr = pb.FeedResponse()
    fr.feeds[""].ltpc.SetInParent()
    assert uw.feed_response({"": uw.feed(ltpc=b"")}, type=uw.INITIAL_FEED) == fr.SerializeToString()


def test_many_feeds_mixed(pb: Any) -> None:
    feeds = {
        f"NSE_FO|{40000 + i}": feed_spec("market", market_spec(5, 100.0 + i), uw.FULL_D5) for i in range(20)
    }
    feeds["NSE_INDEX|Nifty Bank"] = feed_spec(
        "index", {"ltpc": ltpc_spec(51_000.0), "ohlcs": None}, uw.FULL_D5
    )
    feeds["NSE_EQ|INE002A01018"] = feed_spec("ltpc", ltpc_spec(2_950.1), None)
    check(pb, response(feeds))


def test_map_order_is_the_callers(pb: Any) -> None:
    """Entries come out in the given order; upb may serialize them in another, equally valid, order."""
    keys = [f"NSE_FO|{40000 + i}" for i in range(8)]
    frames = [
        uw.feed_response([(k, uw.feed(ltpc=uw.ltpc(100.0 + i))) for i, k in order])
        for order in (list(enumerate(keys)), list(enumerate(keys))[::-1])
    ]
    assert frames[0] != frames[1]
    a, b = (pb.FeedResponse.FromString(f) for f in frames)
    assert a == b
    assert a.SerializeToString(deterministic=True) == frames[0]  # sorted keys == ascending insertion


def test_upb_deterministic_order_puts_prefixes_last(pb: Any) -> None:
    if api_implementation.Type() != "upb":
        pytest.skip("upb's map order; the other backends sort plain bytewise")
    assert deterministic_order(pb) is upb_order
    mi = pb.MarketInfo()
    for k in ("a", "", "ab", "b", "NSE_EQ", "NSE"):
        mi.segmentStatus[k] = uw.NORMAL_OPEN
    order = ["NSE_EQ", "NSE", "ab", "a", "b", ""]
    assert sorted(mi.segmentStatus, key=upb_order) == order
    assert uw.market_info([(k, uw.NORMAL_OPEN) for k in order]) == mi.SerializeToString(deterministic=True)


# --- proto3 scalar rules ------------------------------------------------------------------------


def test_defaults_omitted_negative_zero_and_nan_written(pb: Any) -> None:
    assert uw.ltpc() == b"" == pb.LTPC().SerializeToString()
    assert uw.quote(0, 0.0, 0, 0.0) == b""
    assert uw.ohlc("", 0.0) == b""
    neg = uw.ltpc(ltp=-0.0)
    assert neg == bytes.fromhex("090000000000000080") == pb.LTPC(ltp=-0.0).SerializeToString()
    assert math.copysign(1.0, pb.LTPC.FromString(neg).ltp) == -1.0
    nan = uw.ltpc(ltp=math.nan)
    assert nan == pb.LTPC(ltp=math.nan).SerializeToString()
    assert math.isnan(pb.LTPC.FromString(nan).ltp)


def test_negative_int64_is_ten_byte_varint(pb: Any) -> None:
    assert uw.ltpc(ltq=-1) == bytes.fromhex("18ffffffffffffffffff01") == pb.LTPC(ltq=-1).SerializeToString()
    lo, hi = -(2**63), 2**63 - 1
    assert uw.ltpc(ltt=lo, ltq=hi) == pb.LTPC(ltt=lo, ltq=hi).SerializeToString()


def test_low_level_helpers() -> None:
    assert uw.varint(0) == b"\x00"
    assert uw.varint(300) == bytes.fromhex("ac02")
    assert uw.tag(2, uw.LEN) == b"\x12"
    assert uw.tag(16, uw.VARINT) == bytes.fromhex("8001")
    assert uw.double_field(1, 1.0) == b"\x09" + struct.pack("<d", 1.0)
    assert uw.length_delimited(4, b"") == b"\x22\x00"
    assert uw.message_field(4, None) == b""
    assert uw.string_field(1, "") == b""
    assert uw.bool_field(16, True) == bytes.fromhex("800101")


def test_errors() -> None:
    with pytest.raises(ValueError, match="exactly one payload"):
        uw.feed()
    with pytest.raises(ValueError, match="exactly one payload"):
        uw.feed(ltpc=b"", first_level=b"")
    with pytest.raises(ValueError, match="int64"):
        uw.ltpc(ltt=2**63)
    with pytest.raises(ValueError, match="int64"):
        uw.market_info({"NSE_EQ": -(2**63) - 1})
    with pytest.raises(ValueError):
        uw.varint(2**64)


# --- property: random messages ------------------------------------------------------------------

doubles = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, math.nan, 1e308, -5e-324]
)
int64s = st.integers(-(2**63), 2**63 - 1) | st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63), 2**53 + 1])
texts = st.text(st.characters(codec="utf-8"), max_size=12)
maybe = st.none().__or__

ltpcs = st.fixed_dictionaries(
    {"ltp": doubles, "ltt": int64s, "ltq": int64s, "cp": doubles}, optional={"iep": st.none() | doubles}
)
quotes = st.tuples(int64s, doubles, int64s, doubles)
ohlcs = st.tuples(texts, doubles, doubles, doubles, doubles, int64s, int64s)
greeks_ = st.tuples(doubles, doubles, doubles, doubles, doubles)
auction = st.fixed_dictionaries(
    {
        "iep": doubles,
        "rp": doubles,
        "ieq": int64s,
        "iiq_total": int64s,
        "iiq_m": int64s,
        "cas_eligible": st.booleans(),
    }
)
payloads = {
    "ltpc": ltpcs,
    "market": st.fixed_dictionaries(
        {
            "ltpc": maybe(ltpcs),
            "levels": maybe(st.lists(quotes, max_size=30)),
            "greeks": maybe(greeks_),
            "ohlcs": maybe(st.lists(ohlcs, max_size=3)),
            "atp": doubles,
            "vtt": int64s,
            "oi": doubles,
            "iv": doubles,
            "tbq": doubles,
            "tsq": doubles,
        },
        optional={"auction": auction},
    ),
    "index": st.fixed_dictionaries({"ltpc": maybe(ltpcs), "ohlcs": maybe(st.lists(ohlcs, max_size=3))}),
    "first": st.fixed_dictionaries(
        {
            "ltpc": maybe(ltpcs),
            "first_depth": maybe(quotes),
            "greeks": maybe(greeks_),
            "vtt": int64s,
            "oi": doubles,
            "iv": doubles,
        }
    ),
}
feeds_ = st.sampled_from(sorted(payloads)).flatmap(
    lambda kind: st.builds(feed_spec, st.just(kind), payloads[kind], st.none() | st.integers(0, 3))
)
status_infos = st.tuples(texts, int64s)
market_infos = st.fixed_dictionaries(
    {
        "segment_status": st.dictionaries(texts, st.integers(0, 5), max_size=4),
        "cas": st.dictionaries(texts, status_infos, max_size=2),
        "pre_open": st.dictionaries(texts, status_infos, max_size=2),
    }
)
responses = st.fixed_dictionaries(
    {
        "feeds": st.dictionaries(texts, feeds_, max_size=4),
        "type": st.integers(0, 2),
        "current_ts": int64s,
        "market_info": maybe(market_infos),
    }
)


@settings(max_examples=300, deadline=None)
@given(responses)
def test_random_messages_match_official(pb: Any, spec: Spec) -> None:
    check(pb, spec)
