"""UpstoxDecoder: Upstox Market Data Feed V3 (protobuf ``FeedResponse``) ->
MarketState (the twin of ``ext/upstox_decoder.pyx``).

A frame is read in two passes. Pass 1 checks the framing of every top-level
field and takes ``type`` and ``currentTs`` (which follows the feeds on the
wire). Pass 2 decodes the ``feeds`` map one entry at a time: each Feed is
decoded into a fresh :class:`FeedRecord` and applied to its slot only once
the whole entry has parsed. Protobuf semantics: absent scalars are 0
(proto3), a repeated singular sub-message merges, the last oneof member wins,
repeated fields append, unknown fields are skipped. Malformed protobuf raises
FrameError; the feeds before the bad one stay applied.

Prices (doubles, rupees) become fixed-point with the slot's divisor, rounded
half away from zero (C ``llround``); NaN, infinities and values beyond int64
become 0 and are counted (``stats()["bad_values"]``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Final, NoReturn

from fastflow.errors import FrameError
from fastflow.reference.kite_decoder import as_int64, frame_bytes, kite_change
from fastflow.reference.market_state import MarketState
from fastflow.reference.protobuf_reader import (
    WT_FIXED64,
    WT_LEN,
    WT_VARINT,
    PbError,
    Span,
    pb_reason,
    to_int64,
)
from fastflow.reference.slot_state import (
    FF_DEPTH,
    FF_HAVE_ATP,
    FF_HAVE_BAR,
    FF_HAVE_CHANGE,
    FF_HAVE_DEPTH,
    FF_HAVE_DEPTH_ORDERS,
    FF_HAVE_EXCH_TS,
    FF_HAVE_GREEKS,
    FF_HAVE_IV,
    FF_HAVE_LTP,
    FF_HAVE_LTQ,
    FF_HAVE_LTT,
    FF_HAVE_OHLC,
    FF_HAVE_OI,
    FF_HAVE_TOTALS,
    FF_HAVE_VOLUME,
    FF_MODE_FULL,
    FF_MODE_FULL_D30,
    FF_MODE_LTPC,
    FF_MODE_OPTION_GREEKS,
)

__all__ = ["UpstoxDecoder"]

# The payload (FeedUnion oneof member) a Feed carries.
UPX_NONE: Final = 0
UPX_LTPC: Final = 1
UPX_MARKET: Final = 2  # fullFeed.marketFF
UPX_INDEX: Final = 3  # fullFeed.indexFF
UPX_FIRST_LEVEL: Final = 4  # firstLevelWithGreeks

# RequestMode and Type enums of the schema.
UPX_REQUEST_FULL_D30: Final = 3
UPX_TYPE_INITIAL: Final = 0
UPX_TYPE_LIVE: Final = 1
UPX_TYPE_MARKET_INFO: Final = 2

MARKET_STATUS_NAMES: Final = (
    "PRE_OPEN_START",
    "PRE_OPEN_END",
    "NORMAL_OPEN",
    "NORMAL_CLOSE",
    "CLOSING_START",
    "CLOSING_END",
)

_FIXED_LIMIT: Final = 9.0e18  # |value * divisor| must stay below this to be kept


# -- the decoded Feed ------------------------------------------------------------------


@dataclass
class Quote:
    """One depth level, both sides (``Quote``)."""

    bid_q: int = 0
    bid_p: float = 0.0
    ask_q: int = 0
    ask_p: float = 0.0


@dataclass
class Ohlc:
    """One candle (``OHLC``), without its interval."""

    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    close: float = 0.0
    vol: int = 0
    ts: int = 0


@dataclass
class FeedRecord:
    """Everything of one Feed that is applied to the state."""

    kind: int = UPX_NONE
    request_mode: int = -1  # -1 when absent
    has_ltpc: bool = False  # the payload carried an LTPC sub-message
    has_levels: bool = False  # ... a MarketLevel (or a firstDepth)
    ltp: float = 0.0
    ltt: int = 0
    ltq: int = 0
    cp: float = 0.0
    atp: float = 0.0
    vtt: int = 0
    oi: float = 0.0
    iv: float = 0.0
    tbq: float = 0.0
    tsq: float = 0.0
    has_greeks: bool = False
    delta: float = 0.0
    theta: float = 0.0
    gamma: float = 0.0
    vega: float = 0.0
    rho: float = 0.0
    day: Ohlc | None = None  # the last "1d" candle
    minute: Ohlc | None = None  # the last "I1" candle
    levels: list[Quote] = field(default_factory=list)  # at most FF_DEPTH
    dropped_levels: int = 0  # levels beyond FF_DEPTH: parsed, counted, dropped

    def clear_payload(self) -> None:
        """A different oneof member starts: forget the previous one (all but requestMode)."""
        fresh = FeedRecord(request_mode=self.request_mode)
        self.__dict__.update(fresh.__dict__)


# -- message decoders: each reads one (sub)message span into the record ----------------


def to_int32(value: int) -> int:
    """An enum value as protobuf reads it: the low 32 bits, signed."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def read_double_value(s: Span) -> None:
    """google.protobuf.DoubleValue: checked, not kept."""
    m = "DoubleValue"
    while not s.at_end():
        num, wt = s.tag(m)
        if num == 1:
            s.expect(num, wt, WT_FIXED64, m)
            s.double(m)
        else:
            s.skip(wt, m)


def read_status_entry(s: Span) -> None:
    """A map<string, StatusInfo> entry of MarketInfo (fields 2, 3): checked."""
    m = "MarketInfo status entry"
    while not s.at_end():
        num, wt = s.tag(m)
        if num == 1:
            s.field_span(num, wt, m)
        elif num == 2:
            info = s.field_span(num, wt, m)
            while not info.at_end():
                inum, iwt = info.tag("StatusInfo")
                if inum == 1:
                    info.field_span(inum, iwt, "StatusInfo")
                elif inum == 2:
                    info.expect(inum, iwt, WT_VARINT, "StatusInfo")
                    info.int64("StatusInfo")
                else:
                    info.skip(iwt, "StatusInfo")
        else:
            s.skip(wt, m)


def read_ltpc(s: Span, f: FeedRecord) -> None:
    m = "LTPC"
    f.has_ltpc = True
    while not s.at_end():
        num, wt = s.tag(m)
        if num == 1:
            s.expect(num, wt, WT_FIXED64, m)
            f.ltp = s.double(m)
        elif num == 2:
            s.expect(num, wt, WT_VARINT, m)
            f.ltt = s.int64(m)
        elif num == 3:
            s.expect(num, wt, WT_VARINT, m)
            f.ltq = s.int64(m)
        elif num == 4:
            s.expect(num, wt, WT_FIXED64, m)
            f.cp = s.double(m)
        elif num == 5:  # iep (google.protobuf.DoubleValue): checked, not kept
            read_double_value(s.field_span(num, wt, m))
        else:
            s.skip(wt, m)


def read_quote(s: Span, q: Quote) -> None:
    m = "Quote"
    while not s.at_end():
        num, wt = s.tag(m)
        if num == 1:
            s.expect(num, wt, WT_VARINT, m)
            q.bid_q = s.int64(m)
        elif num == 2:
            s.expect(num, wt, WT_FIXED64, m)
            q.bid_p = s.double(m)
        elif num == 3:
            s.expect(num, wt, WT_VARINT, m)
            q.ask_q = s.int64(m)
        elif num == 4:
            s.expect(num, wt, WT_FIXED64, m)
            q.ask_p = s.double(m)
        else:
            s.skip(wt, m)


def read_market_level(s: Span, f: FeedRecord) -> None:
    m = "MarketLevel"
    f.has_levels = True
    while not s.at_end():
        num, wt = s.tag(m)
        if num == 1:  # repeated Quote bidAskQuote: append
            s.expect(num, wt, WT_LEN, m)
            sub = s.sub(m)
            level = Quote()
            read_quote(sub, level)
            if len(f.levels) < FF_DEPTH:
                f.levels.append(level)
            else:  # deeper than the state keeps: checked, counted, dropped
                f.dropped_levels += 1
        else:
            s.skip(wt, m)


def read_ohlc_entry(s: Span, f: FeedRecord) -> None:
    m = "OHLC"
    o = Ohlc()
    interval = b""  # only "1d" (the day) and "I1" (the 1-minute bar) are kept
    while not s.at_end():
        num, wt = s.tag(m)
        if num == 1:
            s.expect(num, wt, WT_LEN, m)
            sub = s.sub(m)
            interval = s.buf[sub.p : sub.end]
        elif 2 <= num <= 5:
            s.expect(num, wt, WT_FIXED64, m)
            value = s.double(m)
            if num == 2:
                o.open = value
            elif num == 3:
                o.high = value
            elif num == 4:
                o.low = value
            else:
                o.close = value
        elif num in (6, 7):
            s.expect(num, wt, WT_VARINT, m)
            if num == 6:
                o.vol = s.int64(m)
            else:
                o.ts = s.int64(m)
        else:
            s.skip(wt, m)
    if interval == b"1d":
        f.day = o
    elif interval == b"I1":
        f.minute = o


def read_market_ohlc(s: Span, f: FeedRecord) -> None:
    m = "MarketOHLC"
    while not s.at_end():
        num, wt = s.tag(m)
        if num == 1:  # repeated OHLC ohlc
            s.expect(num, wt, WT_LEN, m)
            read_ohlc_entry(s.sub(m), f)
        else:
            s.skip(wt, m)


def read_greeks(s: Span, f: FeedRecord) -> None:
    m = "OptionGreeks"
    f.has_greeks = True
    while not s.at_end():
        num, wt = s.tag(m)
        if 1 <= num <= 5:
            s.expect(num, wt, WT_FIXED64, m)
            value = s.double(m)
            if num == 1:
                f.delta = value
            elif num == 2:
                f.theta = value
            elif num == 3:
                f.gamma = value
            elif num == 4:
                f.vega = value
            else:
                f.rho = value
        else:
            s.skip(wt, m)


def read_market_full(s: Span, f: FeedRecord) -> None:
    m = "MarketFullFeed"
    while not s.at_end():
        num, wt = s.tag(m)
        if num == 1:
            read_ltpc(s.field_span(num, wt, m), f)
        elif num == 2:
            read_market_level(s.field_span(num, wt, m), f)
        elif num == 3:
            read_greeks(s.field_span(num, wt, m), f)
        elif num == 4:
            read_market_ohlc(s.field_span(num, wt, m), f)
        elif num in (5, 7, 8, 9, 10, 11, 12):  # atp, oi, iv, tbq, tsq; iep, rp (not kept)
            s.expect(num, wt, WT_FIXED64, m)
            value = s.double(m)
            if num == 5:
                f.atp = value
            elif num == 7:
                f.oi = value
            elif num == 8:
                f.iv = value
            elif num == 9:
                f.tbq = value
            elif num == 10:
                f.tsq = value
        elif num == 6 or 13 <= num <= 16:  # vtt; ieq, iiqTotal, iiqM, casEligible (not kept)
            s.expect(num, wt, WT_VARINT, m)
            value_i = s.int64(m)
            if num == 6:
                f.vtt = value_i
        else:
            s.skip(wt, m)


def read_index_full(s: Span, f: FeedRecord) -> None:
    m = "IndexFullFeed"
    while not s.at_end():
        num, wt = s.tag(m)
        if num == 1:
            read_ltpc(s.field_span(num, wt, m), f)
        elif num == 2:
            read_market_ohlc(s.field_span(num, wt, m), f)
        else:
            s.skip(wt, m)


def read_full_feed(s: Span, f: FeedRecord) -> None:
    m = "FullFeed"
    while not s.at_end():
        num, wt = s.tag(m)
        if num in (1, 2):  # oneof: marketFF | indexFF
            sub = s.field_span(num, wt, m)
            kind = UPX_MARKET if num == 1 else UPX_INDEX
            if f.kind != kind:
                f.clear_payload()
                f.kind = kind
            if kind == UPX_MARKET:
                read_market_full(sub, f)
            else:
                read_index_full(sub, f)
        else:
            s.skip(wt, m)


def read_first_level(s: Span, f: FeedRecord) -> None:
    m = "FirstLevelWithGreeks"
    while not s.at_end():
        num, wt = s.tag(m)
        if num == 1:
            read_ltpc(s.field_span(num, wt, m), f)
        elif num == 2:  # firstDepth: a singular Quote, merged when repeated
            sub = s.field_span(num, wt, m)
            f.has_levels = True
            if not f.levels:
                f.levels.append(Quote())
            read_quote(sub, f.levels[0])
            del f.levels[1:]
        elif num == 3:
            read_greeks(s.field_span(num, wt, m), f)
        elif num == 4:
            s.expect(num, wt, WT_VARINT, m)
            f.vtt = s.int64(m)
        elif num in (5, 6):
            s.expect(num, wt, WT_FIXED64, m)
            value = s.double(m)
            if num == 5:
                f.oi = value
            else:
                f.iv = value
        else:
            s.skip(wt, m)


def read_feed(s: Span, f: FeedRecord) -> None:
    m = "Feed"
    while not s.at_end():
        num, wt = s.tag(m)
        if 1 <= num <= 3:  # oneof FeedUnion: ltpc | fullFeed | firstLevelWithGreeks
            sub = s.field_span(num, wt, m)
            if num == 1:
                kind = UPX_LTPC
            elif num == 3:
                kind = UPX_FIRST_LEVEL
            else:  # fullFeed: its own oneof decides (read_full_feed)
                kind = f.kind if f.kind in (UPX_MARKET, UPX_INDEX) else UPX_NONE
            if f.kind != kind or kind == UPX_NONE:
                if not (num == 2 and f.kind in (UPX_MARKET, UPX_INDEX)):
                    f.clear_payload()
                f.kind = kind
            if num == 1:
                read_ltpc(sub, f)
            elif num == 2:
                read_full_feed(sub, f)
            else:
                read_first_level(sub, f)
        elif num == 4:
            s.expect(num, wt, WT_VARINT, m)
            f.request_mode = to_int32(s.int64(m))  # enums are int32 on the wire
        else:
            s.skip(wt, m)


# -- applying a decoded feed to a slot ---------------------------------------------------


def llround(v: float) -> int:
    """C ``llround``: the nearest integer, halfway cases away from zero (exact)."""
    exact = abs(Fraction(v))
    rounded = math.floor(exact + Fraction(1, 2))
    return rounded if v >= 0 else -rounded


class UpstoxDecoder:
    """Decodes Upstox V3 ``FeedResponse`` frames into a :class:`MarketState`
    built from Upstox instruments.

    ``feed(frame)`` takes one whole binary WebSocket message and returns the
    number of feeds applied. Feeds whose instrument_key is not in the
    instrument master are counted (``stats()["unknown_keys"]``) and skipped.
    Malformed protobuf raises :class:`FrameError`; the feeds before the bad
    one stay applied (each feed is applied whole or not at all).
    ``market_status`` holds the latest segment status from ``market_info``.
    """

    def __init__(self, state: MarketState) -> None:
        if not isinstance(state, MarketState):
            raise TypeError(
                f"Argument 'state' has incorrect type (expected {MarketState.__module__}.MarketState, "
                f"got {type(state).__name__})"
            )
        if state._key_index is None:
            raise ValueError(
                "UpstoxDecoder needs a MarketState built from Upstox instruments (Instruments.from_upstox)"
            )
        self._state = state
        self._index = state._key_index
        self._market_status: dict[str, str | int] = {}
        self._frames = 0
        self._feeds = 0
        self._initial_frames = 0
        self._live_frames = 0
        self._market_info_frames = 0
        self._unknown_keys = 0
        self._empty_feeds = 0
        self._bad_values = 0
        self._dropped_levels = 0
        self._frame_errors = 0
        self._bytes = 0

    @property
    def state(self) -> MarketState:
        return self._state

    @property
    def market_status(self) -> dict[str, str | int]:
        """Segment -> status name (``"NORMAL_OPEN"`` ...) from the latest
        ``market_info`` frames; a copy."""
        return dict(self._market_status)

    def feed(self, frame: Any, recv_ns: int = 0) -> int:
        """Decode one message; ``recv_ns`` is its receive time (epoch ns,
        0: now). Returns the number of feeds applied."""
        recv_ns = as_int64(recv_ns)
        buf = frame_bytes(frame)
        self._bytes += len(buf)
        try:
            return self._feed(buf, recv_ns)
        except PbError as e:
            self._fail(e)

    def _feed(self, buf: bytes, recv_ns: int) -> int:
        m = "FeedResponse"
        # Pass 1, top level only: type and currentTs, and the framing of every field.
        frame_type = UPX_TYPE_INITIAL
        current_ts = 0
        has_info = False
        top = Span(buf, 0, len(buf))
        while not top.at_end():
            num, wt = top.tag(m)
            if num in (1, 3):
                top.expect(num, wt, WT_VARINT, m)
                value = to_int64(top.varint(m))
                if num == 1:
                    frame_type = to_int32(value)  # enums are int32 on the wire
                else:
                    current_ts = value
            elif num in (2, 4):
                top.field_span(num, wt, m)
                if num == 4:
                    has_info = True
            else:
                top.skip(wt, m)

        if recv_ns == 0:
            recv_ns = time.time_ns()
        # Pass 2: the feeds map, one entry at a time (framing checked in pass 1).
        applied = 0
        top = Span(buf, 0, len(buf))
        while not top.at_end():
            num, wt = top.tag(m)
            if num != 2:
                top.skip(wt, m)
                continue
            if self._feed_entry(top.sub(m), current_ts, recv_ns):
                applied += 1
                self._feeds += 1  # counted as applied, even if a later feed is malformed

        if has_info:
            self._market_info(buf)
        self._frames += 1
        if frame_type == UPX_TYPE_LIVE:
            self._live_frames += 1
        elif frame_type == UPX_TYPE_MARKET_INFO:
            self._market_info_frames += 1
        elif frame_type == UPX_TYPE_INITIAL:
            self._initial_frames += 1
        return applied

    def _feed_entry(self, entry: Span, current_ts: int, recv_ns: int) -> bool:
        """One ``map<string, Feed>`` entry; True if it was applied."""
        m = "FeedResponse.feeds entry"
        record = FeedRecord()
        key = b""  # proto3: an absent key is ""
        has_value = False
        while not entry.at_end():
            num, wt = entry.tag(m)
            if num == 1:
                sub = entry.field_span(num, wt, m)
                key = entry.buf[sub.p : sub.end]
            elif num == 2:
                read_feed(entry.field_span(num, wt, m), record)  # a repeated value merges
                has_value = True
            else:
                entry.skip(wt, m)
        slot = self._index.lookup(key)
        if slot < 0:
            self._unknown_keys += 1
            return False
        if not has_value or record.kind == UPX_NONE:
            self._empty_feeds += 1
            return False
        self._apply(slot, record, current_ts)
        self._dropped_levels += record.dropped_levels
        slots = self._state._slots
        slots["seq"][slot] = int(slots["seq"][slot]) + 1
        slots["recv_ns"][slot] = recv_ns
        self._state._updated(slot)
        return True

    def _fixed(self, x: float, divisor: float) -> int:
        """Rupees (double) -> fixed-point; NaN, inf and values beyond int64 become 0 and are counted."""
        v = x * divisor
        if not -_FIXED_LIMIT < v < _FIXED_LIMIT:
            self._bad_values += 1
            return 0
        return llround(v)

    def _apply(self, slot: int, f: FeedRecord, current_ts: int) -> None:
        s = self._state._slots
        div = float(int(s["price_divisor"][slot]))
        have = 0
        kind = f.kind
        # A sub-message the feed does not carry leaves its fields as they were.
        if f.has_ltpc:
            s["last_price"][slot] = self._fixed(f.ltp, div)
            s["last_trade_time"][slot] = f.ltt
            s["last_quantity"][slot] = f.ltq
            s["close"][slot] = self._fixed(f.cp, div)
            have |= FF_HAVE_LTP | FF_HAVE_LTQ | FF_HAVE_LTT | FF_HAVE_CHANGE
        if kind in (UPX_MARKET, UPX_INDEX) and f.day is not None:
            s["open"][slot] = self._fixed(f.day.open, div)
            s["high"][slot] = self._fixed(f.day.high, div)
            s["low"][slot] = self._fixed(f.day.low, div)
            have |= FF_HAVE_OHLC
        if kind in (UPX_MARKET, UPX_INDEX) and f.minute is not None:
            s["bar_open"][slot] = self._fixed(f.minute.open, div)
            s["bar_high"][slot] = self._fixed(f.minute.high, div)
            s["bar_low"][slot] = self._fixed(f.minute.low, div)
            s["bar_close"][slot] = self._fixed(f.minute.close, div)
            s["bar_volume"][slot] = f.minute.vol
            s["bar_ts"][slot] = f.minute.ts
            have |= FF_HAVE_BAR
        if kind in (UPX_MARKET, UPX_FIRST_LEVEL) and f.has_levels:
            levels = f.levels[: int(s["depth_capacity"][slot])]
            depth = s["depth"][slot]
            for i, q in enumerate(levels):  # deeper levels of earlier updates stay, unused
                bid_price = self._fixed(q.bid_p, div)
                ask_price = self._fixed(q.ask_p, div)
                depth[i] = (q.bid_q, bid_price, 0, q.ask_q, ask_price, 0)
            s["depth_levels"][slot] = len(levels)
            s["have"][slot] = int(s["have"][slot]) & ~FF_HAVE_DEPTH_ORDERS
            have |= FF_HAVE_DEPTH
        if kind in (UPX_MARKET, UPX_FIRST_LEVEL):
            s["volume"][slot] = f.vtt
            s["oi"][slot] = self._fixed(f.oi, 1.0)
            s["iv"][slot] = f.iv
            have |= FF_HAVE_VOLUME | FF_HAVE_OI
            if f.has_greeks:
                s["delta"][slot] = f.delta
                s["theta"][slot] = f.theta
                s["gamma"][slot] = f.gamma
                s["vega"][slot] = f.vega
                s["rho"][slot] = f.rho
                have |= FF_HAVE_GREEKS
            if f.has_greeks or f.iv != 0.0:
                have |= FF_HAVE_IV
        if kind == UPX_MARKET:
            s["average_price"][slot] = self._fixed(f.atp, div)
            s["total_buy_quantity"][slot] = self._fixed(f.tbq, 1.0)
            s["total_sell_quantity"][slot] = self._fixed(f.tsq, 1.0)
            have |= FF_HAVE_ATP | FF_HAVE_TOTALS
            full_d30 = f.request_mode == UPX_REQUEST_FULL_D30 or len(f.levels) > 5
            s["mode"][slot] = FF_MODE_FULL_D30 if full_d30 else FF_MODE_FULL
        elif kind == UPX_INDEX:
            s["mode"][slot] = FF_MODE_FULL
        elif kind == UPX_FIRST_LEVEL:
            s["mode"][slot] = FF_MODE_OPTION_GREEKS
        else:
            s["mode"][slot] = FF_MODE_LTPC
        if current_ts != 0:
            s["exchange_timestamp"][slot] = current_ts
            have |= FF_HAVE_EXCH_TS
        s["have"][slot] = int(s["have"][slot]) | have
        if int(s["have"][slot]) & FF_HAVE_CHANGE:
            s["change"][slot] = kite_change(
                int(s["last_price"][slot]), int(s["close"][slot]), int(s["price_divisor"][slot])
            )

    def _market_info(self, buf: bytes) -> None:
        """MarketInfo.segmentStatus of every top-level marketInfo -> market_status."""
        top = Span(buf, 0, len(buf))
        while not top.at_end():
            num, wt = top.tag("FeedResponse")  # checked in pass 1
            if num != 4:
                top.skip(wt, "FeedResponse")
                continue
            info = top.sub("FeedResponse")
            m = "MarketInfo"
            while not info.at_end():
                num, wt = info.tag(m)
                if num in (2, 3):  # map<string, StatusInfo>: checked, not kept
                    read_status_entry(info.field_span(num, wt, m))
                    continue
                if num != 1:
                    info.skip(wt, m)
                    continue
                entry = info.field_span(num, wt, m)
                e = "MarketInfo.segmentStatus entry"
                segment = b""
                status = 0
                while not entry.at_end():
                    num, wt = entry.tag(e)
                    if num == 1:
                        sub = entry.field_span(num, wt, e)
                        segment = entry.buf[sub.p : sub.end]
                    elif num == 2:
                        entry.expect(num, wt, WT_VARINT, e)
                        status = entry.varint(e)
                    else:
                        entry.skip(wt, e)
                name = segment.decode("utf-8", "replace")
                code = to_int32(status)  # enums are int32 on the wire
                self._market_status[name] = (
                    MARKET_STATUS_NAMES[code] if 0 <= code < len(MARKET_STATUS_NAMES) else code
                )

    def _fail(self, e: PbError) -> NoReturn:
        self._frame_errors += 1
        raise FrameError(pb_reason(e), e.at)

    def stats(self) -> dict[str, int]:
        """Counters."""
        return {
            "frames": self._frames,
            "feeds": self._feeds,
            "initial_frames": self._initial_frames,
            "live_frames": self._live_frames,
            "market_info_frames": self._market_info_frames,
            "unknown_keys": self._unknown_keys,
            "empty_feeds": self._empty_feeds,
            "bad_values": self._bad_values,
            "dropped_levels": self._dropped_levels,
            "frame_errors": self._frame_errors,
            "bytes": self._bytes,
        }
