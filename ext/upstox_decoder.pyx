# UpstoxDecoder: Upstox Market Data Feed V3 (protobuf FeedResponse) ->
# MarketState. The schema is in docs/wire-format.md. Instrument keys are
# resolved from the frame's bytes through KeyIndex; prices (doubles) become
# fixed-point with the slot's divisor.
#
# Each Feed is decoded into a reused C record (upx_feed) and applied to its
# slot only once the whole feed has parsed, so an instrument is never left
# half-updated. Protobuf semantics are kept: absent scalars are 0 (proto3), a
# repeated singular sub-message merges, the last oneof member wins, repeated
# fields append, unknown fields are skipped.

cdef enum:
    UPX_NONE = 0
    UPX_LTPC = 1
    UPX_MARKET = 2
    UPX_INDEX = 3
    UPX_FIRST_LEVEL = 4

    # RequestMode and Type enums of the schema
    UPX_REQUEST_FULL_D30 = 3
    UPX_TYPE_INITIAL = 0
    UPX_TYPE_LIVE = 1
    UPX_TYPE_MARKET_INFO = 2


cdef struct upx_ohlc:
    double open
    double high
    double low
    double close
    int64_t vol
    int64_t ts


cdef struct upx_scalars:
    int kind
    int64_t request_mode          # -1 when absent
    bint has_ltpc                 # the payload carried an LTPC sub-message
    bint has_levels               # ... a MarketLevel (or a firstDepth)
    double ltp
    int64_t ltt
    int64_t ltq
    double cp
    double atp
    int64_t vtt
    double oi
    double iv
    double tbq
    double tsq
    bint has_greeks
    double delta
    double theta
    double gamma
    double vega
    double rho
    bint has_day
    bint has_minute
    upx_ohlc day
    upx_ohlc minute
    int n_levels
    uint64_t dropped_levels


cdef struct upx_feed:
    upx_scalars sc
    int64_t bid_q[FF_DEPTH]
    double bid_p[FF_DEPTH]
    int64_t ask_q[FF_DEPTH]
    double ask_p[FF_DEPTH]


cdef inline void upx_reset(upx_feed *f) noexcept nogil:
    memset(&f.sc, 0, sizeof(upx_scalars))
    f.sc.request_mode = -1


cdef inline void upx_clear_payload(upx_feed *f) noexcept nogil:
    """A different oneof member starts: forget the previous one."""
    cdef int64_t mode = f.sc.request_mode
    upx_reset(f)
    f.sc.request_mode = mode


# -- message decoders: each reads one (sub)message span into the record -------

cdef inline int upx_sub(pb_span *s, uint32_t field, uint32_t wt, pb_span *sub, pb_error *e,
                        const char *M) noexcept nogil:
    if pb_expect(s, field, wt, WT_LEN, e, M) < 0:
        return -1
    return pb_len(s, sub, e, M)


cdef int upx_double_value(pb_span s, pb_error *e) noexcept nogil:
    """google.protobuf.DoubleValue: checked, not kept."""
    cdef uint32_t field, wt
    cdef double ignored
    cdef const char *M = "DoubleValue"
    while s.p < s.end:
        if pb_tag(&s, &field, &wt, e, M) < 0:
            return -1
        if field == 1:
            if pb_expect(&s, field, wt, WT_FIXED64, e, M) < 0 or pb_double(&s, &ignored, e, M) < 0:
                return -1
        elif pb_skip(&s, wt, e, M) < 0:
            return -1
    return 0


cdef int upx_ltpc(pb_span s, upx_feed *f, pb_error *e) noexcept nogil:
    cdef uint32_t field, wt
    cdef pb_span sub
    cdef const char *M = "LTPC"
    f.sc.has_ltpc = True
    while s.p < s.end:
        if pb_tag(&s, &field, &wt, e, M) < 0:
            return -1
        if field == 1:
            if pb_expect(&s, field, wt, WT_FIXED64, e, M) < 0 or pb_double(&s, &f.sc.ltp, e, M) < 0:
                return -1
        elif field == 2:
            if pb_expect(&s, field, wt, WT_VARINT, e, M) < 0 or pb_int64(&s, &f.sc.ltt, e, M) < 0:
                return -1
        elif field == 3:
            if pb_expect(&s, field, wt, WT_VARINT, e, M) < 0 or pb_int64(&s, &f.sc.ltq, e, M) < 0:
                return -1
        elif field == 4:
            if pb_expect(&s, field, wt, WT_FIXED64, e, M) < 0 or pb_double(&s, &f.sc.cp, e, M) < 0:
                return -1
        elif field == 5:  # iep (google.protobuf.DoubleValue): checked, not kept
            if upx_sub(&s, field, wt, &sub, e, M) < 0 or upx_double_value(sub, e) < 0:
                return -1
        elif pb_skip(&s, wt, e, M) < 0:
            return -1
    return 0


cdef int upx_quote(pb_span s, int64_t *bid_q, double *bid_p, int64_t *ask_q, double *ask_p,
                   pb_error *e) noexcept nogil:
    cdef uint32_t field, wt
    cdef const char *M = "Quote"
    while s.p < s.end:
        if pb_tag(&s, &field, &wt, e, M) < 0:
            return -1
        if field == 1:
            if pb_expect(&s, field, wt, WT_VARINT, e, M) < 0 or pb_int64(&s, bid_q, e, M) < 0:
                return -1
        elif field == 2:
            if pb_expect(&s, field, wt, WT_FIXED64, e, M) < 0 or pb_double(&s, bid_p, e, M) < 0:
                return -1
        elif field == 3:
            if pb_expect(&s, field, wt, WT_VARINT, e, M) < 0 or pb_int64(&s, ask_q, e, M) < 0:
                return -1
        elif field == 4:
            if pb_expect(&s, field, wt, WT_FIXED64, e, M) < 0 or pb_double(&s, ask_p, e, M) < 0:
                return -1
        elif pb_skip(&s, wt, e, M) < 0:
            return -1
    return 0


cdef int upx_market_level(pb_span s, upx_feed *f, pb_error *e) noexcept nogil:
    cdef uint32_t field, wt
    cdef pb_span sub
    cdef int64_t q0, q1
    cdef double p0, p1
    cdef int n
    cdef const char *M = "MarketLevel"
    f.sc.has_levels = True
    while s.p < s.end:
        if pb_tag(&s, &field, &wt, e, M) < 0:
            return -1
        if field == 1:
            if pb_expect(&s, field, wt, WT_LEN, e, M) < 0 or pb_len(&s, &sub, e, M) < 0:
                return -1
            n = f.sc.n_levels
            if n < FF_DEPTH:
                f.bid_q[n] = 0
                f.bid_p[n] = 0.0
                f.ask_q[n] = 0
                f.ask_p[n] = 0.0
                if upx_quote(sub, &f.bid_q[n], &f.bid_p[n], &f.ask_q[n], &f.ask_p[n], e) < 0:
                    return -1
                f.sc.n_levels = n + 1
            else:  # deeper than the state keeps: checked, counted, dropped
                q0 = q1 = 0
                p0 = p1 = 0.0
                if upx_quote(sub, &q0, &p0, &q1, &p1, e) < 0:
                    return -1
                f.sc.dropped_levels += 1
        elif pb_skip(&s, wt, e, M) < 0:
            return -1
    return 0


cdef int upx_ohlc_entry(pb_span s, upx_feed *f, pb_error *e) noexcept nogil:
    cdef uint32_t field, wt
    cdef pb_span interval
    cdef upx_ohlc o
    cdef int which = 0      # 1: "1d", 2: "I1", 0: another interval (ignored)
    cdef const char *M = "OHLC"
    memset(&o, 0, sizeof(upx_ohlc))
    while s.p < s.end:
        if pb_tag(&s, &field, &wt, e, M) < 0:
            return -1
        if field == 1:
            if pb_expect(&s, field, wt, WT_LEN, e, M) < 0 or pb_len(&s, &interval, e, M) < 0:
                return -1
            which = 0
            if interval.end - interval.p == 2:
                if interval.p[0] == b"1"[0] and interval.p[1] == b"d"[0]:
                    which = 1
                elif interval.p[0] == b"I"[0] and interval.p[1] == b"1"[0]:
                    which = 2
        elif 2 <= field <= 5:
            if pb_expect(&s, field, wt, WT_FIXED64, e, M) < 0:
                return -1
            if pb_double(&s, &o.open if field == 2 else &o.high if field == 3
                         else &o.low if field == 4 else &o.close, e, M) < 0:
                return -1
        elif field == 6 or field == 7:
            if pb_expect(&s, field, wt, WT_VARINT, e, M) < 0:
                return -1
            if pb_int64(&s, &o.vol if field == 6 else &o.ts, e, M) < 0:
                return -1
        elif pb_skip(&s, wt, e, M) < 0:
            return -1
    if which == 1:
        f.sc.day = o
        f.sc.has_day = True
    elif which == 2:
        f.sc.minute = o
        f.sc.has_minute = True
    return 0


cdef int upx_market_ohlc(pb_span s, upx_feed *f, pb_error *e) noexcept nogil:
    cdef uint32_t field, wt
    cdef pb_span sub
    cdef const char *M = "MarketOHLC"
    while s.p < s.end:
        if pb_tag(&s, &field, &wt, e, M) < 0:
            return -1
        if field == 1:
            if (pb_expect(&s, field, wt, WT_LEN, e, M) < 0 or pb_len(&s, &sub, e, M) < 0
                    or upx_ohlc_entry(sub, f, e) < 0):
                return -1
        elif pb_skip(&s, wt, e, M) < 0:
            return -1
    return 0


cdef int upx_greeks(pb_span s, upx_feed *f, pb_error *e) noexcept nogil:
    cdef uint32_t field, wt
    cdef double *target
    cdef const char *M = "OptionGreeks"
    f.sc.has_greeks = True
    while s.p < s.end:
        if pb_tag(&s, &field, &wt, e, M) < 0:
            return -1
        if 1 <= field <= 5:
            target = (&f.sc.delta if field == 1 else &f.sc.theta if field == 2 else
                      &f.sc.gamma if field == 3 else &f.sc.vega if field == 4 else &f.sc.rho)
            if pb_expect(&s, field, wt, WT_FIXED64, e, M) < 0 or pb_double(&s, target, e, M) < 0:
                return -1
        elif pb_skip(&s, wt, e, M) < 0:
            return -1
    return 0


cdef int upx_market_full(pb_span s, upx_feed *f, pb_error *e) noexcept nogil:
    cdef uint32_t field, wt
    cdef pb_span sub
    cdef double ignored_d
    cdef int64_t ignored_i
    cdef const char *M = "MarketFullFeed"
    while s.p < s.end:
        if pb_tag(&s, &field, &wt, e, M) < 0:
            return -1
        if field == 1:
            if upx_sub(&s, field, wt, &sub, e, M) < 0 or upx_ltpc(sub, f, e) < 0:
                return -1
        elif field == 2:
            if upx_sub(&s, field, wt, &sub, e, M) < 0 or upx_market_level(sub, f, e) < 0:
                return -1
        elif field == 3:
            if upx_sub(&s, field, wt, &sub, e, M) < 0 or upx_greeks(sub, f, e) < 0:
                return -1
        elif field == 4:
            if upx_sub(&s, field, wt, &sub, e, M) < 0 or upx_market_ohlc(sub, f, e) < 0:
                return -1
        elif field == 5 or field == 7 or field == 8 or field == 9 or field == 10 or field == 11 or field == 12:
            if pb_expect(&s, field, wt, WT_FIXED64, e, M) < 0:
                return -1
            if pb_double(&s, &f.sc.atp if field == 5 else &f.sc.oi if field == 7 else
                         &f.sc.iv if field == 8 else &f.sc.tbq if field == 9 else
                         &f.sc.tsq if field == 10 else &ignored_d, e, M) < 0:
                return -1
        elif field == 6 or (13 <= field <= 16):  # vtt; ieq, iiqTotal, iiqM, casEligible (not kept)
            if pb_expect(&s, field, wt, WT_VARINT, e, M) < 0:
                return -1
            if pb_int64(&s, &f.sc.vtt if field == 6 else &ignored_i, e, M) < 0:
                return -1
        elif pb_skip(&s, wt, e, M) < 0:
            return -1
    return 0


cdef int upx_index_full(pb_span s, upx_feed *f, pb_error *e) noexcept nogil:
    cdef uint32_t field, wt
    cdef pb_span sub
    cdef const char *M = "IndexFullFeed"
    while s.p < s.end:
        if pb_tag(&s, &field, &wt, e, M) < 0:
            return -1
        if field == 1:
            if upx_sub(&s, field, wt, &sub, e, M) < 0 or upx_ltpc(sub, f, e) < 0:
                return -1
        elif field == 2:
            if upx_sub(&s, field, wt, &sub, e, M) < 0 or upx_market_ohlc(sub, f, e) < 0:
                return -1
        elif pb_skip(&s, wt, e, M) < 0:
            return -1
    return 0


cdef int upx_full_feed(pb_span s, upx_feed *f, pb_error *e) noexcept nogil:
    cdef uint32_t field, wt
    cdef pb_span sub
    cdef int kind
    cdef const char *M = "FullFeed"
    while s.p < s.end:
        if pb_tag(&s, &field, &wt, e, M) < 0:
            return -1
        if field == 1 or field == 2:
            if upx_sub(&s, field, wt, &sub, e, M) < 0:
                return -1
            kind = UPX_MARKET if field == 1 else UPX_INDEX
            if f.sc.kind != kind:
                upx_clear_payload(f)
                f.sc.kind = kind
            if (upx_market_full(sub, f, e) if kind == UPX_MARKET else upx_index_full(sub, f, e)) < 0:
                return -1
        elif pb_skip(&s, wt, e, M) < 0:
            return -1
    return 0


cdef int upx_first_level(pb_span s, upx_feed *f, pb_error *e) noexcept nogil:
    cdef uint32_t field, wt
    cdef pb_span sub
    cdef const char *M = "FirstLevelWithGreeks"
    while s.p < s.end:
        if pb_tag(&s, &field, &wt, e, M) < 0:
            return -1
        if field == 1:
            if upx_sub(&s, field, wt, &sub, e, M) < 0 or upx_ltpc(sub, f, e) < 0:
                return -1
        elif field == 2:
            if upx_sub(&s, field, wt, &sub, e, M) < 0:
                return -1
            f.sc.has_levels = True
            if f.sc.n_levels == 0:  # first occurrence; a repeated firstDepth merges
                f.bid_q[0] = 0
                f.bid_p[0] = 0.0
                f.ask_q[0] = 0
                f.ask_p[0] = 0.0
            if upx_quote(sub, &f.bid_q[0], &f.bid_p[0], &f.ask_q[0], &f.ask_p[0], e) < 0:
                return -1
            f.sc.n_levels = 1
        elif field == 3:
            if upx_sub(&s, field, wt, &sub, e, M) < 0 or upx_greeks(sub, f, e) < 0:
                return -1
        elif field == 4:
            if pb_expect(&s, field, wt, WT_VARINT, e, M) < 0 or pb_int64(&s, &f.sc.vtt, e, M) < 0:
                return -1
        elif field == 5 or field == 6:
            if pb_expect(&s, field, wt, WT_FIXED64, e, M) < 0:
                return -1
            if pb_double(&s, &f.sc.oi if field == 5 else &f.sc.iv, e, M) < 0:
                return -1
        elif pb_skip(&s, wt, e, M) < 0:
            return -1
    return 0


cdef int upx_feed_msg(pb_span s, upx_feed *f, pb_error *e) noexcept nogil:
    cdef uint32_t field, wt
    cdef pb_span sub
    cdef int kind
    cdef const char *M = "Feed"
    while s.p < s.end:
        if pb_tag(&s, &field, &wt, e, M) < 0:
            return -1
        if 1 <= field <= 3:
            if upx_sub(&s, field, wt, &sub, e, M) < 0:
                return -1
            if field == 1:
                kind = UPX_LTPC
            elif field == 3:
                kind = UPX_FIRST_LEVEL
            else:
                kind = f.sc.kind if f.sc.kind == UPX_MARKET or f.sc.kind == UPX_INDEX else UPX_NONE
            if f.sc.kind != kind or kind == UPX_NONE:
                if not (field == 2 and (f.sc.kind == UPX_MARKET or f.sc.kind == UPX_INDEX)):
                    upx_clear_payload(f)
                f.sc.kind = kind
            if field == 1:
                if upx_ltpc(sub, f, e) < 0:
                    return -1
            elif field == 2:
                if upx_full_feed(sub, f, e) < 0:
                    return -1
            elif upx_first_level(sub, f, e) < 0:
                return -1
        elif field == 4:
            if pb_expect(&s, field, wt, WT_VARINT, e, M) < 0 or pb_int64(&s, &f.sc.request_mode, e, M) < 0:
                return -1
            f.sc.request_mode = <int32_t>f.sc.request_mode  # enums are int32 on the wire
        elif pb_skip(&s, wt, e, M) < 0:
            return -1
    return 0


# -- applying a decoded feed to a slot ------------------------------------------

cdef inline int64_t upx_fixed(double x, double div, uint64_t *bad) noexcept nogil:
    """Rupees (double) -> fixed-point with ``div``; NaN, inf and values beyond
    int64 become 0 and are counted."""
    cdef double v = x * div
    if not (v > -9.0e18 and v < 9.0e18):
        bad[0] += 1
        return 0
    return llround(v)


cdef void upx_apply(ff_slot *s, const upx_feed *f, int64_t current_ts, uint64_t *bad) noexcept nogil:
    cdef double div = <double>s.price_divisor
    cdef uint32_t have = 0
    cdef ff_ext *x = ff_slot_ext(s)
    cdef int kind = f.sc.kind
    cdef int i, n
    cdef ff_level *lv
    # A sub-message the feed does not carry leaves its fields as they were
    # (LTPC, depth, greeks, the 1d and I1 bars); the scalars of the payload
    # message itself follow proto3 (absent = 0).
    if f.sc.has_ltpc:
        s.last_price = upx_fixed(f.sc.ltp, div, bad)
        s.last_trade_time = f.sc.ltt
        s.last_quantity = f.sc.ltq
        s.close = upx_fixed(f.sc.cp, div, bad)
        have |= FF_HAVE_LTP | FF_HAVE_LTQ | FF_HAVE_LTT | FF_HAVE_CHANGE
    if (kind == UPX_MARKET or kind == UPX_INDEX) and f.sc.has_day:
        s.open = upx_fixed(f.sc.day.open, div, bad)
        s.high = upx_fixed(f.sc.day.high, div, bad)
        s.low = upx_fixed(f.sc.day.low, div, bad)
        have |= FF_HAVE_OHLC
    if (kind == UPX_MARKET or kind == UPX_INDEX) and f.sc.has_minute:
        x.bar_open = upx_fixed(f.sc.minute.open, div, bad)
        x.bar_high = upx_fixed(f.sc.minute.high, div, bad)
        x.bar_low = upx_fixed(f.sc.minute.low, div, bad)
        x.bar_close = upx_fixed(f.sc.minute.close, div, bad)
        x.bar_volume = f.sc.minute.vol
        x.bar_ts = f.sc.minute.ts
        have |= FF_HAVE_BAR
    if (kind == UPX_MARKET or kind == UPX_FIRST_LEVEL) and f.sc.has_levels:
        n = f.sc.n_levels if f.sc.n_levels <= s.depth_capacity else s.depth_capacity
        for i in range(n):
            lv = &s.depth[i]
            lv.bid_quantity = f.bid_q[i]
            lv.bid_price = upx_fixed(f.bid_p[i], div, bad)
            lv.bid_orders = 0
            lv.ask_quantity = f.ask_q[i]
            lv.ask_price = upx_fixed(f.ask_p[i], div, bad)
            lv.ask_orders = 0
        s.depth_levels = <uint8_t>n
        s.have &= ~(<uint32_t>FF_HAVE_DEPTH_ORDERS)
        have |= FF_HAVE_DEPTH
    if kind == UPX_MARKET or kind == UPX_FIRST_LEVEL:
        s.volume = f.sc.vtt
        s.oi = upx_fixed(f.sc.oi, 1.0, bad)
        x.iv = f.sc.iv
        have |= FF_HAVE_VOLUME | FF_HAVE_OI
        if f.sc.has_greeks:
            x.delta = f.sc.delta
            x.theta = f.sc.theta
            x.gamma = f.sc.gamma
            x.vega = f.sc.vega
            x.rho = f.sc.rho
            have |= FF_HAVE_GREEKS
        if f.sc.has_greeks or f.sc.iv != 0.0:
            have |= FF_HAVE_IV
    if kind == UPX_MARKET:
        s.average_price = upx_fixed(f.sc.atp, div, bad)
        s.total_buy_quantity = upx_fixed(f.sc.tbq, 1.0, bad)
        s.total_sell_quantity = upx_fixed(f.sc.tsq, 1.0, bad)
        have |= FF_HAVE_ATP | FF_HAVE_TOTALS
        s.mode = (FF_MODE_FULL_D30 if f.sc.request_mode == UPX_REQUEST_FULL_D30 or f.sc.n_levels > 5
                  else FF_MODE_FULL)
    elif kind == UPX_INDEX:
        s.mode = FF_MODE_FULL
    elif kind == UPX_FIRST_LEVEL:
        s.mode = FF_MODE_OPTION_GREEKS
    else:
        s.mode = FF_MODE_LTPC
    if current_ts != 0:
        s.exchange_timestamp = current_ts
        have |= FF_HAVE_EXCH_TS
    s.have |= have
    if s.have & FF_HAVE_CHANGE:
        kite_change(s)


cdef int upx_status_entry(pb_span s, pb_error *e) noexcept nogil:
    """A map<string, StatusInfo> entry of MarketInfo (fields 2, 3): checked."""
    cdef uint32_t field, wt
    cdef pb_span sub, info
    cdef int64_t ignored
    cdef const char *M = "MarketInfo status entry"
    cdef const char *S = "StatusInfo"
    while s.p < s.end:
        if pb_tag(&s, &field, &wt, e, M) < 0:
            return -1
        if field == 1:
            if upx_sub(&s, field, wt, &sub, e, M) < 0:
                return -1
        elif field == 2:
            if upx_sub(&s, field, wt, &info, e, M) < 0:
                return -1
            while info.p < info.end:
                if pb_tag(&info, &field, &wt, e, S) < 0:
                    return -1
                if field == 1:
                    if upx_sub(&info, field, wt, &sub, e, S) < 0:
                        return -1
                elif field == 2:
                    if pb_expect(&info, field, wt, WT_VARINT, e, S) < 0 or pb_int64(&info, &ignored, e, S) < 0:
                        return -1
                elif pb_skip(&info, wt, e, S) < 0:
                    return -1
        elif pb_skip(&s, wt, e, M) < 0:
            return -1
    return 0


_MARKET_STATUS_NAMES = ("PRE_OPEN_START", "PRE_OPEN_END", "NORMAL_OPEN", "NORMAL_CLOSE",
                        "CLOSING_START", "CLOSING_END")


@cython.final
cdef class UpstoxDecoder(FrameDecoder):
    """Decodes Upstox V3 ``FeedResponse`` frames into a :class:`MarketState`
    built from Upstox instruments.

    ``feed(frame)`` takes one whole binary WebSocket message and returns the
    number of feeds applied. Feeds whose instrument_key is not in the
    instrument master are counted (``stats()["unknown_keys"]``) and skipped.
    Malformed protobuf raises :class:`FrameError`; the feeds before the bad
    one stay applied (each feed is applied whole or not at all).
    ``market_status`` holds the latest segment status from ``market_info``.
    """

    cdef readonly MarketState state
    cdef KeyIndex index
    cdef upx_feed tmp
    cdef dict _market_status
    cdef int64_t last_current_ts
    cdef uint64_t frames
    cdef uint64_t feeds
    cdef uint64_t initial_frames
    cdef uint64_t live_frames
    cdef uint64_t market_info_frames
    cdef uint64_t unknown_keys
    cdef uint64_t empty_feeds
    cdef uint64_t bad_values
    cdef uint64_t dropped_levels
    cdef uint64_t frame_errors
    cdef uint64_t bytes_in

    def __cinit__(self, MarketState state not None):
        if state.key_index is None:
            raise ValueError("UpstoxDecoder needs a MarketState built from Upstox instruments "
                             "(Instruments.from_upstox)")
        self.state = state
        self.index = state.key_index
        self._market_status = {}

    cdef Py_ssize_t _feed(self, const unsigned char *buf, Py_ssize_t size, int64_t recv_ns) except -1:
        cdef pb_span top, sub, entry, key, value
        cdef pb_error e
        cdef uint32_t field = 0, wt = 0
        cdef uint64_t v
        cdef int64_t current_ts = 0
        cdef int64_t frame_type = UPX_TYPE_INITIAL
        cdef bint has_info = False
        cdef bint has_key, has_value
        cdef int32_t slot
        cdef Py_ssize_t applied = 0
        cdef MarketState state = self.state
        cdef ff_slot *s
        cdef const char *M = "FeedResponse"
        cdef const char *E = "FeedResponse.feeds entry"
        memset(&e, 0, sizeof(pb_error))
        self.bytes_in += <uint64_t>size

        # Pass 1, top level only: type and currentTs (which follows the feeds
        # on the wire), and the framing of every top-level field.
        top.p = buf
        top.end = buf + size
        while top.p < top.end:
            if pb_tag(&top, &field, &wt, &e, M) < 0:
                return self._fail(&e, buf)
            if field == 1 or field == 3:
                if pb_expect(&top, field, wt, WT_VARINT, &e, M) < 0 or pb_varint(&top, &v, &e, M) < 0:
                    return self._fail(&e, buf)
                if field == 1:
                    frame_type = <int32_t>v  # enums are int32 on the wire
                else:
                    current_ts = <int64_t>v
            elif field == 2 or field == 4:
                if upx_sub(&top, field, wt, &sub, &e, M) < 0:
                    return self._fail(&e, buf)
                if field == 4:
                    has_info = True
            elif pb_skip(&top, wt, &e, M) < 0:
                return self._fail(&e, buf)

        if recv_ns == 0:
            recv_ns = now_ns()
        # Pass 2: the feeds map, one entry at a time.
        top.p = buf
        while top.p < top.end:
            pb_tag(&top, &field, &wt, &e, M)  # checked in pass 1
            if field != 2:
                pb_skip(&top, wt, &e, M)
                continue
            pb_len(&top, &entry, &e, M)
            upx_reset(&self.tmp)
            has_key = has_value = False
            while entry.p < entry.end:
                if pb_tag(&entry, &field, &wt, &e, E) < 0:
                    return self._fail(&e, buf)
                if field == 1:
                    if upx_sub(&entry, field, wt, &key, &e, E) < 0:
                        return self._fail(&e, buf)
                    has_key = True
                elif field == 2:
                    if upx_sub(&entry, field, wt, &value, &e, E) < 0:
                        return self._fail(&e, buf)
                    if upx_feed_msg(value, &self.tmp, &e) < 0:
                        return self._fail(&e, buf)
                    has_value = True
                elif pb_skip(&entry, wt, &e, E) < 0:
                    return self._fail(&e, buf)
            slot = self.index.lookup(key.p, key.end - key.p) if has_key else self.index.lookup(buf, 0)
            if slot < 0:
                self.unknown_keys += 1
                continue
            if not has_value or self.tmp.sc.kind == UPX_NONE:
                self.empty_feeds += 1
                continue
            s = state.slot_ptr(slot)
            upx_apply(s, &self.tmp, current_ts, &self.bad_values)
            self.dropped_levels += self.tmp.sc.dropped_levels
            s.seq += 1
            s.recv_ns = recv_ns
            state.updated(slot, s)
            applied += 1
            self.feeds += 1  # counted as applied, even if a later feed is malformed

        if has_info:
            self._market_info(buf, size)
        self.frames += 1
        if current_ts != 0:
            self.last_current_ts = current_ts
        if frame_type == UPX_TYPE_LIVE:
            self.live_frames += 1
        elif frame_type == UPX_TYPE_MARKET_INFO:
            self.market_info_frames += 1
        elif frame_type == UPX_TYPE_INITIAL:
            self.initial_frames += 1
        return applied

    cdef int _market_info(self, const unsigned char *buf, Py_ssize_t size) except -1:
        """MarketInfo.segmentStatus -> market_status (cold: market_info frames)."""
        cdef pb_span top, info, entry, key
        cdef pb_error e
        cdef uint32_t field = 0, wt = 0
        cdef uint64_t status
        cdef bint has_status
        memset(&e, 0, sizeof(pb_error))
        top.p = buf
        top.end = buf + size
        while top.p < top.end:
            pb_tag(&top, &field, &wt, &e, "FeedResponse")  # checked in pass 1
            if field != 4:
                pb_skip(&top, wt, &e, "FeedResponse")
                continue
            pb_len(&top, &info, &e, "FeedResponse")
            while info.p < info.end:
                if pb_tag(&info, &field, &wt, &e, "MarketInfo") < 0:
                    return self._fail(&e, buf)
                if field == 2 or field == 3:  # map<string, StatusInfo>: checked, not kept
                    if (upx_sub(&info, field, wt, &entry, &e, "MarketInfo") < 0
                            or upx_status_entry(entry, &e) < 0):
                        return self._fail(&e, buf)
                    continue
                if field != 1:
                    if pb_skip(&info, wt, &e, "MarketInfo") < 0:
                        return self._fail(&e, buf)
                    continue
                if upx_sub(&info, field, wt, &entry, &e, "MarketInfo") < 0:
                    return self._fail(&e, buf)
                key.p = key.end = entry.p
                status = 0
                has_status = False
                while entry.p < entry.end:
                    if pb_tag(&entry, &field, &wt, &e, "MarketInfo.segmentStatus entry") < 0:
                        return self._fail(&e, buf)
                    if field == 1:
                        if upx_sub(&entry, field, wt, &key, &e, "MarketInfo.segmentStatus entry") < 0:
                            return self._fail(&e, buf)
                    elif field == 2:
                        if (pb_expect(&entry, field, wt, WT_VARINT, &e, "MarketInfo.segmentStatus entry") < 0
                                or pb_varint(&entry, &status, &e, "MarketInfo.segmentStatus entry") < 0):
                            return self._fail(&e, buf)
                        has_status = True
                    elif pb_skip(&entry, wt, &e, "MarketInfo.segmentStatus entry") < 0:
                        return self._fail(&e, buf)
                segment = PyBytes_FromStringAndSize(<const char *>key.p, key.end - key.p).decode(
                    "utf-8", "replace")
                code = <int32_t>status  # enums are int32 on the wire
                self._market_status[segment] = (
                    _MARKET_STATUS_NAMES[code] if 0 <= code < len(_MARKET_STATUS_NAMES) else code)
        return 0

    cdef int _fail(self, const pb_error *e, const unsigned char *buf) except -1:
        self.frame_errors += 1
        raise FrameError(pb_reason(e), <Py_ssize_t>(e.at - buf))

    @property
    def market_status(self):
        """Segment -> status name (``"NORMAL_OPEN"`` ...) from the latest
        ``market_info`` frames; a copy."""
        return dict(self._market_status)

    def stats(self):
        """Counters (cold)."""
        return {
            "frames": self.frames,
            "feeds": self.feeds,
            "initial_frames": self.initial_frames,
            "live_frames": self.live_frames,
            "market_info_frames": self.market_info_frames,
            "unknown_keys": self.unknown_keys,
            "empty_feeds": self.empty_feeds,
            "bad_values": self.bad_values,
            "dropped_levels": self.dropped_levels,
            "frame_errors": self.frame_errors,
            "bytes": self.bytes_in,
        }
