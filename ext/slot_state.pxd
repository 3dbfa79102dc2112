# Header-only declarations of the per-instrument C struct (see slot_state.h).
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

cdef extern from "slot_state.h" nogil:
    enum: FF_DEPTH, FF_KITE_DEPTH
    enum: FF_BROKER_KITE, FF_BROKER_UPSTOX
    enum: FF_MODE_NONE, FF_MODE_LTP, FF_MODE_QUOTE, FF_MODE_FULL, FF_MODE_LTPC
    enum: FF_MODE_OPTION_GREEKS, FF_MODE_FULL_D30
    enum: FF_HAVE_LTP, FF_HAVE_LTQ, FF_HAVE_ATP, FF_HAVE_VOLUME, FF_HAVE_TOTALS
    enum: FF_HAVE_OHLC, FF_HAVE_CHANGE, FF_HAVE_LTT, FF_HAVE_OI, FF_HAVE_OI_RANGE
    enum: FF_HAVE_EXCH_TS, FF_HAVE_DEPTH, FF_HAVE_DEPTH_ORDERS, FF_HAVE_GREEKS
    enum: FF_HAVE_IV, FF_HAVE_BAR

    ctypedef struct ff_level:
        int64_t bid_quantity
        int64_t bid_price
        int64_t bid_orders
        int64_t ask_quantity
        int64_t ask_price
        int64_t ask_orders

    ctypedef struct ff_slot:
        uint32_t token
        uint8_t segment
        uint8_t tradable
        uint8_t broker
        uint8_t mode
        uint32_t have
        uint8_t depth_levels
        uint8_t depth_capacity
        uint8_t has_ext
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
        ff_level depth[FF_DEPTH]   # flexible in C: depth_capacity levels

    ctypedef struct ff_ext:
        double delta
        double theta
        double gamma
        double vega
        double rho
        double iv
        int64_t bar_open
        int64_t bar_high
        int64_t bar_low
        int64_t bar_close
        int64_t bar_volume
        int64_t bar_ts

    size_t ff_slot_stride(int depth_capacity, int has_ext)
    ff_ext *ff_slot_ext(ff_slot *s)

    ctypedef struct ff_field:
        const char *name
        size_t offset
        char kind
        int size
        int count

    const ff_field ff_slot_fields[]
    const ff_field ff_level_fields[]
    const ff_field ff_ext_fields[]
    const size_t FF_N_SLOT_FIELDS
    const size_t FF_N_LEVEL_FIELDS
    const size_t FF_N_EXT_FIELDS
