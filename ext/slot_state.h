/* ff_slot: the market state of one instrument, for every broker. One
 * contiguous array of these is the whole market (MarketState). The layout is
 * exported to numpy through ff_slot_fields / ff_level_fields, so the Python
 * view can never disagree with the C struct.
 *
 * Prices are fixed-point: rupees = value / price_divisor (Kite: the segment's
 * divisor; Upstox, which sends doubles: 1e4, or 1e7 for currency). Quantities
 * are integers. Times are epoch milliseconds, except recv_ns (epoch ns).
 *
 * Layout: a fixed header, then a flexible array of depth levels whose length
 * (depth_capacity) is chosen per MarketState: 5 for Kite, 30 for Upstox. An
 * Upstox state also has an ff_ext block (greeks, iv, the 1-minute bar) after
 * the levels. A Kite slot is therefore exactly header + 5 levels (416 bytes),
 * so the Kite path does not pay for Upstox's deeper book in cache footprint.
 * Slots are addressed with a runtime stride (ff_slot_stride). */
#ifndef FF_SLOT_STATE_H
#define FF_SLOT_STATE_H

#include <stddef.h>
#include <stdint.h>

#define FF_DEPTH 30          /* most levels kept per side (Upstox full_d30) */
#define FF_KITE_DEPTH 5      /* levels in a Kite full packet */

/* ff_slot.broker */
#define FF_BROKER_KITE   1
#define FF_BROKER_UPSTOX 2

/* ff_slot.mode: the mode of the last update applied to the slot. */
#define FF_MODE_NONE          0
#define FF_MODE_LTP           1  /* Kite ltp */
#define FF_MODE_QUOTE         2  /* Kite quote / index quote */
#define FF_MODE_FULL          3  /* Kite full / index full; Upstox full (5 levels) */
#define FF_MODE_LTPC          4  /* Upstox ltpc */
#define FF_MODE_OPTION_GREEKS 5  /* Upstox option_greeks */
#define FF_MODE_FULL_D30      6  /* Upstox full_d30 */

/* ff_slot.have: which tick keys have been received since clear(). */
#define FF_HAVE_LTP          0x0001u  /* last_price */
#define FF_HAVE_LTQ          0x0002u  /* last_traded_quantity */
#define FF_HAVE_ATP          0x0004u  /* average_traded_price */
#define FF_HAVE_VOLUME       0x0008u  /* volume_traded */
#define FF_HAVE_TOTALS       0x0010u  /* total_buy_quantity, total_sell_quantity */
#define FF_HAVE_OHLC         0x0020u  /* ohlc: open/high/low (today) + close (previous day) */
#define FF_HAVE_CHANGE       0x0040u  /* change (percent vs close) */
#define FF_HAVE_LTT          0x0080u  /* last_trade_time */
#define FF_HAVE_OI           0x0100u  /* oi */
#define FF_HAVE_OI_RANGE     0x0200u  /* oi_day_high, oi_day_low */
#define FF_HAVE_EXCH_TS      0x0400u  /* exchange_timestamp */
#define FF_HAVE_DEPTH        0x0800u  /* depth (depth_levels levels) */
#define FF_HAVE_DEPTH_ORDERS 0x1000u  /* depth levels carry order counts (Kite) */
#define FF_HAVE_GREEKS       0x2000u  /* greeks */
#define FF_HAVE_IV           0x4000u  /* iv */
#define FF_HAVE_BAR          0x8000u  /* the latest 1-minute bar (state only) */

typedef struct ff_level {
    int64_t bid_quantity;
    int64_t bid_price;
    int64_t bid_orders;
    int64_t ask_quantity;
    int64_t ask_price;
    int64_t ask_orders;
} ff_level;

typedef struct ff_slot {
    /* identity, set once from the instrument master */
    uint32_t token;
    uint8_t  segment;
    uint8_t  tradable;
    uint8_t  broker;
    uint8_t  mode;
    uint32_t have;
    uint8_t  depth_levels;        /* levels valid in depth[] */
    uint8_t  depth_capacity;      /* levels allocated in depth[] (5 or 30) */
    uint8_t  has_ext;             /* an ff_ext block follows depth[] */
    uint8_t  _pad;
    int64_t  price_divisor;
    /* bookkeeping */
    uint64_t seq;                 /* updates applied to this instrument */
    int64_t  recv_ns;             /* receive time of the frame that last updated it */
    /* prices, fixed-point */
    int64_t  last_price;
    int64_t  average_price;
    int64_t  open;
    int64_t  high;
    int64_t  low;
    int64_t  close;               /* previous day's close (Upstox: cp) */
    int64_t  net_change;          /* Kite index packets' own "price change" field, raw */
    double   change;              /* percent vs close, as kiteconnect computes it */
    /* quantities */
    int64_t  last_quantity;
    int64_t  volume;
    int64_t  total_buy_quantity;
    int64_t  total_sell_quantity;
    int64_t  oi;
    int64_t  oi_day_high;
    int64_t  oi_day_low;
    /* times, epoch milliseconds */
    int64_t  last_trade_time;
    int64_t  exchange_timestamp;
    /* depth, best level first: depth_capacity levels */
    ff_level depth[];
} ff_slot;

/* Option analytics and the latest 1-minute bar (Upstox states only). */
typedef struct ff_ext {
    double   delta;
    double   theta;
    double   gamma;
    double   vega;
    double   rho;
    double   iv;
    int64_t  bar_open;            /* the latest 1-minute bar (OHLC interval "I1") */
    int64_t  bar_high;
    int64_t  bar_low;
    int64_t  bar_close;
    int64_t  bar_volume;
    int64_t  bar_ts;              /* epoch ms */
} ff_ext;

static inline size_t ff_slot_stride(int depth_capacity, int has_ext) {
    return sizeof(ff_slot) + (size_t)depth_capacity * sizeof(ff_level) + (has_ext ? sizeof(ff_ext) : 0);
}

/* The ext block of a slot that has one. */
static inline ff_ext *ff_slot_ext(ff_slot *s) {
    return (ff_ext *)((char *)s + sizeof(ff_slot) + (size_t)s->depth_capacity * sizeof(ff_level));
}

/* One row per field: name, offset, numpy kind ('u', 'i', 'f'), item size, count. */
typedef struct ff_field {
    const char *name;
    size_t offset;
    char kind;
    int size;
    int count;
} ff_field;

#define FF_FIELD(type, name, kind, count) \
    {#name, offsetof(type, name), kind, (int)(sizeof(((type *)0)->name) / (count)), count}

static const ff_field ff_slot_fields[] = {
    FF_FIELD(ff_slot, token, 'u', 1),
    FF_FIELD(ff_slot, segment, 'u', 1),
    FF_FIELD(ff_slot, tradable, 'u', 1),
    FF_FIELD(ff_slot, broker, 'u', 1),
    FF_FIELD(ff_slot, mode, 'u', 1),
    FF_FIELD(ff_slot, have, 'u', 1),
    FF_FIELD(ff_slot, depth_levels, 'u', 1),
    FF_FIELD(ff_slot, depth_capacity, 'u', 1),
    FF_FIELD(ff_slot, has_ext, 'u', 1),
    FF_FIELD(ff_slot, price_divisor, 'i', 1),
    FF_FIELD(ff_slot, seq, 'u', 1),
    FF_FIELD(ff_slot, recv_ns, 'i', 1),
    FF_FIELD(ff_slot, last_price, 'i', 1),
    FF_FIELD(ff_slot, average_price, 'i', 1),
    FF_FIELD(ff_slot, open, 'i', 1),
    FF_FIELD(ff_slot, high, 'i', 1),
    FF_FIELD(ff_slot, low, 'i', 1),
    FF_FIELD(ff_slot, close, 'i', 1),
    FF_FIELD(ff_slot, net_change, 'i', 1),
    FF_FIELD(ff_slot, change, 'f', 1),
    FF_FIELD(ff_slot, last_quantity, 'i', 1),
    FF_FIELD(ff_slot, volume, 'i', 1),
    FF_FIELD(ff_slot, total_buy_quantity, 'i', 1),
    FF_FIELD(ff_slot, total_sell_quantity, 'i', 1),
    FF_FIELD(ff_slot, oi, 'i', 1),
    FF_FIELD(ff_slot, oi_day_high, 'i', 1),
    FF_FIELD(ff_slot, oi_day_low, 'i', 1),
    FF_FIELD(ff_slot, last_trade_time, 'i', 1),
    FF_FIELD(ff_slot, exchange_timestamp, 'i', 1),
};

static const ff_field ff_ext_fields[] = {
    FF_FIELD(ff_ext, delta, 'f', 1),
    FF_FIELD(ff_ext, theta, 'f', 1),
    FF_FIELD(ff_ext, gamma, 'f', 1),
    FF_FIELD(ff_ext, vega, 'f', 1),
    FF_FIELD(ff_ext, rho, 'f', 1),
    FF_FIELD(ff_ext, iv, 'f', 1),
    FF_FIELD(ff_ext, bar_open, 'i', 1),
    FF_FIELD(ff_ext, bar_high, 'i', 1),
    FF_FIELD(ff_ext, bar_low, 'i', 1),
    FF_FIELD(ff_ext, bar_close, 'i', 1),
    FF_FIELD(ff_ext, bar_volume, 'i', 1),
    FF_FIELD(ff_ext, bar_ts, 'i', 1),
};

static const ff_field ff_level_fields[] = {
    FF_FIELD(ff_level, bid_quantity, 'i', 1),
    FF_FIELD(ff_level, bid_price, 'i', 1),
    FF_FIELD(ff_level, bid_orders, 'i', 1),
    FF_FIELD(ff_level, ask_quantity, 'i', 1),
    FF_FIELD(ff_level, ask_price, 'i', 1),
    FF_FIELD(ff_level, ask_orders, 'i', 1),
};

#define FF_N_SLOT_FIELDS (sizeof(ff_slot_fields) / sizeof(ff_slot_fields[0]))
#define FF_N_LEVEL_FIELDS (sizeof(ff_level_fields) / sizeof(ff_level_fields[0]))
#define FF_N_EXT_FIELDS (sizeof(ff_ext_fields) / sizeof(ff_ext_fields[0]))

#endif
