/* ff_slot: the market state of one instrument. One contiguous array of these
 * is the whole market (MarketState). The layout is exported to numpy through
 * ff_slot_fields, so the Python view can never disagree with the C struct.
 *
 * Prices are fixed-point: rupees = value / price_divisor. Quantities are
 * plain integers. Times are epoch seconds, except recv_ns (epoch ns). */
#ifndef FF_SLOT_STATE_H
#define FF_SLOT_STATE_H

#include <stddef.h>
#include <stdint.h>

#define FF_DEPTH 5

/* ff_slot.mode: the mode of the last packet applied to the slot. */
#define FF_MODE_NONE  0
#define FF_MODE_LTP   1
#define FF_MODE_QUOTE 2
#define FF_MODE_FULL  3

/* ff_slot.have: which field groups have been received since clear(). */
#define FF_HAVE_LTP    0x01u  /* last_price */
#define FF_HAVE_OHLC   0x02u  /* open/high/low/close, change */
#define FF_HAVE_TRADE  0x04u  /* last qty, average price, volume, total buy/sell qty */
#define FF_HAVE_OI     0x08u  /* last trade time, oi, oi day high/low */
#define FF_HAVE_EXCH_TS 0x10u /* exchange timestamp */
#define FF_HAVE_DEPTH  0x20u  /* bid/ask levels */

typedef struct ff_slot {
    /* identity, set once from the instrument master */
    uint32_t token;
    uint8_t  segment;
    uint8_t  tradable;
    uint8_t  mode;
    uint8_t  have;
    int64_t  price_divisor;
    /* bookkeeping */
    uint64_t seq;                 /* packets applied to this instrument */
    int64_t  recv_ns;             /* receive time of the frame that last updated it */
    /* prices, fixed-point */
    int64_t  last_price;
    int64_t  average_price;
    int64_t  open;
    int64_t  high;
    int64_t  low;
    int64_t  close;               /* previous day's close */
    int64_t  net_change;          /* index packets' own "price change" field, raw */
    double   change;              /* percent vs close, as kiteconnect computes it */
    /* quantities */
    int64_t  last_quantity;
    int64_t  volume;
    int64_t  total_buy_quantity;
    int64_t  total_sell_quantity;
    int64_t  oi;
    int64_t  oi_day_high;
    int64_t  oi_day_low;
    /* times, epoch seconds */
    int64_t  last_trade_time;
    int64_t  exchange_timestamp;
    /* depth, best level first */
    int64_t  bid_quantity[FF_DEPTH];
    int64_t  bid_price[FF_DEPTH];
    int64_t  bid_orders[FF_DEPTH];
    int64_t  ask_quantity[FF_DEPTH];
    int64_t  ask_price[FF_DEPTH];
    int64_t  ask_orders[FF_DEPTH];
} ff_slot;

/* One row per field: name, offset, numpy kind ('u', 'i', 'f'), item size, count. */
typedef struct ff_field {
    const char *name;
    size_t offset;
    char kind;
    int size;
    int count;
} ff_field;

#define FF_FIELD(name, kind, count) \
    {#name, offsetof(ff_slot, name), kind, (int)sizeof(((ff_slot *)0)->name) / (count), count}

static const ff_field ff_slot_fields[] = {
    FF_FIELD(token, 'u', 1),
    FF_FIELD(segment, 'u', 1),
    FF_FIELD(tradable, 'u', 1),
    FF_FIELD(mode, 'u', 1),
    FF_FIELD(have, 'u', 1),
    FF_FIELD(price_divisor, 'i', 1),
    FF_FIELD(seq, 'u', 1),
    FF_FIELD(recv_ns, 'i', 1),
    FF_FIELD(last_price, 'i', 1),
    FF_FIELD(average_price, 'i', 1),
    FF_FIELD(open, 'i', 1),
    FF_FIELD(high, 'i', 1),
    FF_FIELD(low, 'i', 1),
    FF_FIELD(close, 'i', 1),
    FF_FIELD(net_change, 'i', 1),
    FF_FIELD(change, 'f', 1),
    FF_FIELD(last_quantity, 'i', 1),
    FF_FIELD(volume, 'i', 1),
    FF_FIELD(total_buy_quantity, 'i', 1),
    FF_FIELD(total_sell_quantity, 'i', 1),
    FF_FIELD(oi, 'i', 1),
    FF_FIELD(oi_day_high, 'i', 1),
    FF_FIELD(oi_day_low, 'i', 1),
    FF_FIELD(last_trade_time, 'i', 1),
    FF_FIELD(exchange_timestamp, 'i', 1),
    FF_FIELD(bid_quantity, 'i', FF_DEPTH),
    FF_FIELD(bid_price, 'i', FF_DEPTH),
    FF_FIELD(bid_orders, 'i', FF_DEPTH),
    FF_FIELD(ask_quantity, 'i', FF_DEPTH),
    FF_FIELD(ask_price, 'i', FF_DEPTH),
    FF_FIELD(ask_orders, 'i', FF_DEPTH),
};

#define FF_N_SLOT_FIELDS (sizeof(ff_slot_fields) / sizeof(ff_slot_fields[0]))

#endif
