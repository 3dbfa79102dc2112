# The msgpack encoding of one instrument's tick, written in C into a buffer.
# Keys and values are those of MarketState.tick() (and of kiteconnect's tick
# dicts), in the same order, so msgpack.packb(state.tick(t)) == the blob.
#
# Key order, each present when its FF_HAVE_* bit is set (docs/state.md):
#   tradable, mode, instrument_token (Kite) | instrument_key (Upstox),
#   last_price, last_traded_quantity, average_traded_price, volume_traded,
#   total_buy_quantity, total_sell_quantity, ohlc, change, last_trade_time,
#   oi, oi_day_high, oi_day_low, exchange_timestamp, depth, greeks, iv,
#   symbol, seq, receive_time_ns

cdef enum:
    # Upper bound of one encoded tick, identity and symbol excluded (about
    # 4 KiB with 30 depth levels); flush() reserves this much per tick.
    TICK_MAX_BYTES = 8192


cdef inline const char *mode_name(uint8_t mode) noexcept nogil:
    if mode == FF_MODE_LTP:
        return "ltp"
    if mode == FF_MODE_QUOTE:
        return "quote"
    if mode == FF_MODE_FULL:
        return "full"
    if mode == FF_MODE_LTPC:
        return "ltpc"
    if mode == FF_MODE_OPTION_GREEKS:
        return "option_greeks"
    if mode == FF_MODE_FULL_D30:
        return "full_d30"
    return NULL


cdef inline int64_t ms_to_s(int64_t ms) noexcept nogil:
    # Floor division: epoch seconds of a millisecond time, also before 1970
    # (C division truncates; step down for a negative remainder; no overflow).
    cdef int64_t q = ms // 1000
    if ms % 1000 < 0:
        q -= 1
    return q


cdef inline void encode_price(ff_buf *b, int64_t raw, double div) noexcept nogil:
    ff_mp_double(b, <double>raw / div)


cdef inline void encode_depth_side(ff_buf *b, const ff_slot *s, bint ask, double div) noexcept nogil:
    cdef int i
    cdef int n = s.depth_levels
    cdef bint orders = (s.have & FF_HAVE_DEPTH_ORDERS) != 0
    cdef const ff_level *lv
    ff_mp_array_header(b, <size_t>n)
    for i in range(n):
        lv = &s.depth[i]
        ff_mp_map_header(b, 3 if orders else 2)
        ff_mp_cstr(b, "quantity")
        ff_mp_int(b, lv.ask_quantity if ask else lv.bid_quantity)
        ff_mp_cstr(b, "price")
        encode_price(b, lv.ask_price if ask else lv.bid_price, div)
        if orders:
            ff_mp_cstr(b, "orders")
            ff_mp_int(b, lv.ask_orders if ask else lv.bid_orders)


cdef inline int popcount_keys(uint32_t have) noexcept nogil:
    """Number of top-level map entries the FF_HAVE_* bits add."""
    cdef int n = 0
    if have & FF_HAVE_LTP:
        n += 1
    if have & FF_HAVE_LTQ:
        n += 1
    if have & FF_HAVE_ATP:
        n += 1
    if have & FF_HAVE_VOLUME:
        n += 1
    if have & FF_HAVE_TOTALS:
        n += 2
    if have & FF_HAVE_OHLC:
        n += 1
    if have & FF_HAVE_CHANGE:
        n += 1
    if have & FF_HAVE_LTT:
        n += 1
    if have & FF_HAVE_OI:
        n += 1
    if have & FF_HAVE_OI_RANGE:
        n += 2
    if have & FF_HAVE_EXCH_TS:
        n += 1
    if have & FF_HAVE_DEPTH:
        n += 1
    if have & FF_HAVE_GREEKS:
        n += 1
    if have & FF_HAVE_IV:
        n += 1
    return n


cdef void encode_tick(
    ff_buf *b, const ff_slot *s, const unsigned char *ident, size_t ident_len,
    const unsigned char *symbol, size_t symbol_len,
) noexcept nogil:
    """Append the tick of ``s`` to ``b``; the caller reserved TICK_MAX_BYTES +
    ident_len + symbol_len. ``ident`` is the pre-encoded identity pair
    (``instrument_token`` or ``instrument_key`` with its value); ``symbol``
    the pre-encoded symbol string."""
    cdef uint32_t have = s.have
    if not s.has_ext:
        have &= ~(<uint32_t>(FF_HAVE_GREEKS | FF_HAVE_IV))
    cdef double div = <double>s.price_divisor
    cdef const char *mode = mode_name(s.mode)
    ff_mp_map_header(b, <size_t>(6 + popcount_keys(have)))

    ff_mp_cstr(b, "tradable")
    ff_mp_bool(b, s.tradable)
    ff_mp_cstr(b, "mode")
    if mode == NULL:
        ff_mp_nil(b)
    else:
        ff_mp_cstr(b, mode)
    ff_mp_raw(b, ident, ident_len)
    if have & FF_HAVE_LTP:
        ff_mp_cstr(b, "last_price")
        encode_price(b, s.last_price, div)
    if have & FF_HAVE_LTQ:
        ff_mp_cstr(b, "last_traded_quantity")
        ff_mp_int(b, s.last_quantity)
    if have & FF_HAVE_ATP:
        ff_mp_cstr(b, "average_traded_price")
        encode_price(b, s.average_price, div)
    if have & FF_HAVE_VOLUME:
        ff_mp_cstr(b, "volume_traded")
        ff_mp_int(b, s.volume)
    if have & FF_HAVE_TOTALS:
        ff_mp_cstr(b, "total_buy_quantity")
        ff_mp_int(b, s.total_buy_quantity)
        ff_mp_cstr(b, "total_sell_quantity")
        ff_mp_int(b, s.total_sell_quantity)
    if have & FF_HAVE_OHLC:
        ff_mp_cstr(b, "ohlc")
        ff_mp_map_header(b, 4)
        ff_mp_cstr(b, "open")
        encode_price(b, s.open, div)
        ff_mp_cstr(b, "high")
        encode_price(b, s.high, div)
        ff_mp_cstr(b, "low")
        encode_price(b, s.low, div)
        ff_mp_cstr(b, "close")
        encode_price(b, s.close, div)
    if have & FF_HAVE_CHANGE:
        ff_mp_cstr(b, "change")
        ff_mp_double(b, s.change)
    if have & FF_HAVE_LTT:
        ff_mp_cstr(b, "last_trade_time")
        ff_mp_int(b, ms_to_s(s.last_trade_time))
    if have & FF_HAVE_OI:
        ff_mp_cstr(b, "oi")
        ff_mp_int(b, s.oi)
    if have & FF_HAVE_OI_RANGE:
        ff_mp_cstr(b, "oi_day_high")
        ff_mp_int(b, s.oi_day_high)
        ff_mp_cstr(b, "oi_day_low")
        ff_mp_int(b, s.oi_day_low)
    if have & FF_HAVE_EXCH_TS:
        ff_mp_cstr(b, "exchange_timestamp")
        ff_mp_int(b, ms_to_s(s.exchange_timestamp))
    if have & FF_HAVE_DEPTH:
        ff_mp_cstr(b, "depth")
        ff_mp_map_header(b, 2)
        ff_mp_cstr(b, "buy")
        encode_depth_side(b, s, False, div)
        ff_mp_cstr(b, "sell")
        encode_depth_side(b, s, True, div)
    cdef const ff_ext *x
    if s.has_ext:
        x = ff_slot_ext(<ff_slot *>s)
        if have & FF_HAVE_GREEKS:
            ff_mp_cstr(b, "greeks")
            ff_mp_map_header(b, 5)
            ff_mp_cstr(b, "delta")
            ff_mp_double(b, x.delta)
            ff_mp_cstr(b, "theta")
            ff_mp_double(b, x.theta)
            ff_mp_cstr(b, "gamma")
            ff_mp_double(b, x.gamma)
            ff_mp_cstr(b, "vega")
            ff_mp_double(b, x.vega)
            ff_mp_cstr(b, "rho")
            ff_mp_double(b, x.rho)
        if have & FF_HAVE_IV:
            ff_mp_cstr(b, "iv")
            ff_mp_double(b, x.iv)
    ff_mp_cstr(b, "symbol")
    ff_mp_raw(b, symbol, symbol_len)
    ff_mp_cstr(b, "seq")
    ff_mp_uint(b, s.seq)
    ff_mp_cstr(b, "receive_time_ns")
    ff_mp_int(b, s.recv_ns)


cdef list depth_side(const ff_slot *s, bint ask, double fdiv):
    cdef int i
    cdef const ff_level *lv
    cdef bint orders = (s.have & FF_HAVE_DEPTH_ORDERS) != 0
    out = []
    for i in range(s.depth_levels):
        lv = &s.depth[i]
        level = {
            "quantity": lv.ask_quantity if ask else lv.bid_quantity,
            "price": <double>(lv.ask_price if ask else lv.bid_price) / fdiv,
        }
        if orders:
            level["orders"] = lv.ask_orders if ask else lv.bid_orders
        out.append(level)
    return out


cdef object tick_dict(const ff_slot *s, str symbol, str key):
    """The tick of ``s`` as a dict: the cold twin of encode_tick. ``key`` is
    the Upstox instrument_key, or None for Kite (instrument_token)."""
    cdef uint32_t have = s.have
    cdef double fdiv = <double>s.price_divisor
    cdef const char *mode = mode_name(s.mode)
    d = {
        "tradable": bool(s.tradable),
        "mode": None if mode == NULL else mode.decode("ascii"),
    }
    if key is None:
        d["instrument_token"] = s.token
    else:
        d["instrument_key"] = key
    if have & FF_HAVE_LTP:
        d["last_price"] = <double>s.last_price / fdiv
    if have & FF_HAVE_LTQ:
        d["last_traded_quantity"] = s.last_quantity
    if have & FF_HAVE_ATP:
        d["average_traded_price"] = <double>s.average_price / fdiv
    if have & FF_HAVE_VOLUME:
        d["volume_traded"] = s.volume
    if have & FF_HAVE_TOTALS:
        d["total_buy_quantity"] = s.total_buy_quantity
        d["total_sell_quantity"] = s.total_sell_quantity
    if have & FF_HAVE_OHLC:
        d["ohlc"] = {
            "open": <double>s.open / fdiv,
            "high": <double>s.high / fdiv,
            "low": <double>s.low / fdiv,
            "close": <double>s.close / fdiv,
        }
    if have & FF_HAVE_CHANGE:
        d["change"] = s.change
    if have & FF_HAVE_LTT:
        d["last_trade_time"] = ms_to_s(s.last_trade_time)
    if have & FF_HAVE_OI:
        d["oi"] = s.oi
    if have & FF_HAVE_OI_RANGE:
        d["oi_day_high"] = s.oi_day_high
        d["oi_day_low"] = s.oi_day_low
    if have & FF_HAVE_EXCH_TS:
        d["exchange_timestamp"] = ms_to_s(s.exchange_timestamp)
    if have & FF_HAVE_DEPTH:
        d["depth"] = {"buy": depth_side(s, False, fdiv), "sell": depth_side(s, True, fdiv)}
    cdef const ff_ext *x
    if s.has_ext:
        x = ff_slot_ext(<ff_slot *>s)
        if have & FF_HAVE_GREEKS:
            d["greeks"] = {"delta": x.delta, "theta": x.theta, "gamma": x.gamma, "vega": x.vega, "rho": x.rho}
        if have & FF_HAVE_IV:
            d["iv"] = x.iv
    d["symbol"] = symbol
    d["seq"] = s.seq
    d["receive_time_ns"] = s.recv_ns
    return d
