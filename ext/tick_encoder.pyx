# The msgpack encoding of one instrument's tick, written in C into a buffer.
# Keys and values are those of MarketState.tick() (and of kiteconnect's tick
# dicts), in the same order, so msgpack.packb(state.tick(t)) == the blob.

cdef enum:
    # Upper bound of one encoded tick, symbol excluded (about 1.5 KiB with
    # every group present); flush() reserves this much before each tick.
    TICK_MAX_BYTES = 2048


cdef inline const char *mode_name(uint8_t mode) noexcept nogil:
    if mode == FF_MODE_LTP:
        return "ltp"
    if mode == FF_MODE_QUOTE:
        return "quote"
    if mode == FF_MODE_FULL:
        return "full"
    return NULL


cdef inline void encode_price(ff_buf *b, int64_t raw, double div) noexcept nogil:
    ff_mp_double(b, <double>raw / div)


cdef inline void encode_depth_side(
    ff_buf *b, const int64_t *qty, const int64_t *price, const int64_t *orders, double div
) noexcept nogil:
    cdef int i
    ff_mp_array_header(b, FF_DEPTH)
    for i in range(FF_DEPTH):
        ff_mp_map_header(b, 3)
        ff_mp_cstr(b, "quantity")
        ff_mp_int(b, qty[i])
        ff_mp_cstr(b, "price")
        encode_price(b, price[i], div)
        ff_mp_cstr(b, "orders")
        ff_mp_int(b, orders[i])


cdef void encode_tick(
    ff_buf *b, const ff_slot *s, const unsigned char *symbol, size_t symbol_len
) noexcept nogil:
    """Append the tick of ``s`` to ``b``; the caller reserved TICK_MAX_BYTES +
    symbol_len. ``symbol`` is already msgpack-encoded (header included)."""
    cdef uint8_t have = s.have
    cdef double div = <double>s.price_divisor
    cdef const char *mode = mode_name(s.mode)
    cdef size_t n = 6
    if have & FF_HAVE_LTP:
        n += 1
    if have & FF_HAVE_TRADE:
        n += 5
    if have & FF_HAVE_OHLC:
        n += 2
    if have & FF_HAVE_OI:
        n += 4
    if have & FF_HAVE_EXCH_TS:
        n += 1
    if have & FF_HAVE_DEPTH:
        n += 1
    ff_mp_map_header(b, n)

    ff_mp_cstr(b, "tradable")
    ff_mp_bool(b, s.tradable)
    ff_mp_cstr(b, "mode")
    if mode == NULL:
        ff_mp_nil(b)
    else:
        ff_mp_cstr(b, mode)
    ff_mp_cstr(b, "instrument_token")
    ff_mp_uint(b, s.token)
    if have & FF_HAVE_LTP:
        ff_mp_cstr(b, "last_price")
        encode_price(b, s.last_price, div)
    if have & FF_HAVE_TRADE:
        ff_mp_cstr(b, "last_traded_quantity")
        ff_mp_int(b, s.last_quantity)
        ff_mp_cstr(b, "average_traded_price")
        encode_price(b, s.average_price, div)
        ff_mp_cstr(b, "volume_traded")
        ff_mp_int(b, s.volume)
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
        ff_mp_cstr(b, "change")
        ff_mp_double(b, s.change)
    if have & FF_HAVE_OI:
        ff_mp_cstr(b, "last_trade_time")
        ff_mp_int(b, s.last_trade_time)
        ff_mp_cstr(b, "oi")
        ff_mp_int(b, s.oi)
        ff_mp_cstr(b, "oi_day_high")
        ff_mp_int(b, s.oi_day_high)
        ff_mp_cstr(b, "oi_day_low")
        ff_mp_int(b, s.oi_day_low)
    if have & FF_HAVE_EXCH_TS:
        ff_mp_cstr(b, "exchange_timestamp")
        ff_mp_int(b, s.exchange_timestamp)
    if have & FF_HAVE_DEPTH:
        ff_mp_cstr(b, "depth")
        ff_mp_map_header(b, 2)
        ff_mp_cstr(b, "buy")
        encode_depth_side(b, s.bid_quantity, s.bid_price, s.bid_orders, div)
        ff_mp_cstr(b, "sell")
        encode_depth_side(b, s.ask_quantity, s.ask_price, s.ask_orders, div)
    ff_mp_cstr(b, "symbol")
    ff_mp_raw(b, symbol, symbol_len)
    ff_mp_cstr(b, "seq")
    ff_mp_uint(b, s.seq)
    ff_mp_cstr(b, "receive_time_ns")
    ff_mp_int(b, s.recv_ns)


cdef object tick_dict(const ff_slot *s, str symbol):
    """The tick of ``s`` as a dict: the cold twin of encode_tick."""
    cdef uint8_t have = s.have
    cdef double fdiv = <double>s.price_divisor
    cdef const char *mode = mode_name(s.mode)
    cdef int i
    d = {
        "tradable": bool(s.tradable),
        "mode": None if mode == NULL else mode.decode("ascii"),
        "instrument_token": s.token,
    }
    if have & FF_HAVE_LTP:
        d["last_price"] = <double>s.last_price / fdiv
    if have & FF_HAVE_TRADE:
        d["last_traded_quantity"] = s.last_quantity
        d["average_traded_price"] = <double>s.average_price / fdiv
        d["volume_traded"] = s.volume
        d["total_buy_quantity"] = s.total_buy_quantity
        d["total_sell_quantity"] = s.total_sell_quantity
    if have & FF_HAVE_OHLC:
        d["ohlc"] = {
            "open": <double>s.open / fdiv,
            "high": <double>s.high / fdiv,
            "low": <double>s.low / fdiv,
            "close": <double>s.close / fdiv,
        }
        d["change"] = s.change
    if have & FF_HAVE_OI:
        d["last_trade_time"] = s.last_trade_time
        d["oi"] = s.oi
        d["oi_day_high"] = s.oi_day_high
        d["oi_day_low"] = s.oi_day_low
    if have & FF_HAVE_EXCH_TS:
        d["exchange_timestamp"] = s.exchange_timestamp
    if have & FF_HAVE_DEPTH:
        d["depth"] = {
            "buy": [
                {"quantity": s.bid_quantity[i], "price": <double>s.bid_price[i] / fdiv, "orders": s.bid_orders[i]}
                for i in range(FF_DEPTH)
            ],
            "sell": [
                {"quantity": s.ask_quantity[i], "price": <double>s.ask_price[i] / fdiv, "orders": s.ask_orders[i]}
                for i in range(FF_DEPTH)
            ],
        }
    d["symbol"] = symbol
    d["seq"] = s.seq
    d["receive_time_ns"] = s.recv_ns
    return d
