# Header-only declarations of the per-instrument C struct (see slot_state.h).
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

cdef extern from "slot_state.h" nogil:
    enum: FF_DEPTH
    enum: FF_MODE_NONE, FF_MODE_LTP, FF_MODE_QUOTE, FF_MODE_FULL
    enum: FF_HAVE_LTP, FF_HAVE_OHLC, FF_HAVE_TRADE, FF_HAVE_OI, FF_HAVE_EXCH_TS, FF_HAVE_DEPTH

    ctypedef struct ff_slot:
        uint32_t token
        uint8_t segment
        uint8_t tradable
        uint8_t mode
        uint8_t have
        int64_t price_divisor
        uint64_t seq
        int64_t recv_ns
        int64_t last_price
        int64_t average_price
        int64_t open
        int64_t high
        int64_t low
        int64_t close
        int64_t net_change
        double change
        int64_t last_quantity
        int64_t volume
        int64_t total_buy_quantity
        int64_t total_sell_quantity
        int64_t oi
        int64_t oi_day_high
        int64_t oi_day_low
        int64_t last_trade_time
        int64_t exchange_timestamp
        int64_t bid_quantity[FF_DEPTH]
        int64_t bid_price[FF_DEPTH]
        int64_t bid_orders[FF_DEPTH]
        int64_t ask_quantity[FF_DEPTH]
        int64_t ask_price[FF_DEPTH]
        int64_t ask_orders[FF_DEPTH]

    ctypedef struct ff_field:
        const char *name
        size_t offset
        char kind
        int size
        int count

    const ff_field ff_slot_fields[]
    const size_t FF_N_SLOT_FIELDS
