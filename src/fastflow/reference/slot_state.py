"""The market state of one instrument (the twin of ``ext/slot_state.h``).

One numpy record per instrument; :func:`slot_dtype` lays the fields out
exactly as the C compiler lays out ``struct ff_slot`` (natural alignment, no
reordering), so the reference state and the compiled state are byte for byte
comparable.

Prices are fixed-point: rupees = value / price_divisor. Quantities are plain
integers. Times are epoch seconds, except recv_ns (epoch ns).
"""

from __future__ import annotations

import functools
from typing import Any, Final

import numpy as np

FF_DEPTH: Final = 5

# mode: the mode of the last packet applied to the slot.
FF_MODE_NONE: Final = 0
FF_MODE_LTP: Final = 1
FF_MODE_QUOTE: Final = 2
FF_MODE_FULL: Final = 3

# have: which field groups have been received since clear().
FF_HAVE_LTP: Final = 0x01  # last_price
FF_HAVE_OHLC: Final = 0x02  # open/high/low/close, change
FF_HAVE_TRADE: Final = 0x04  # last qty, average price, volume, total buy/sell qty
FF_HAVE_OI: Final = 0x08  # last trade time, oi, oi day high/low
FF_HAVE_EXCH_TS: Final = 0x10  # exchange timestamp
FF_HAVE_DEPTH: Final = 0x20  # bid/ask levels

# (name, numpy kind, item size in bytes, count), in struct ff_slot order.
SLOT_FIELDS: Final[tuple[tuple[str, str, int, int], ...]] = (
    # identity, set once from the instrument master
    ("token", "u", 4, 1),
    ("segment", "u", 1, 1),
    ("tradable", "u", 1, 1),
    ("mode", "u", 1, 1),
    ("have", "u", 1, 1),
    ("price_divisor", "i", 8, 1),
    # bookkeeping
    ("seq", "u", 8, 1),  # packets applied to this instrument
    ("recv_ns", "i", 8, 1),  # receive time of the frame that last updated it
    # prices, fixed-point
    ("last_price", "i", 8, 1),
    ("average_price", "i", 8, 1),
    ("open", "i", 8, 1),
    ("high", "i", 8, 1),
    ("low", "i", 8, 1),
    ("close", "i", 8, 1),  # previous day's close
    ("net_change", "i", 8, 1),  # index packets' own "price change" field, raw
    ("change", "f", 8, 1),  # percent vs close, as kiteconnect computes it
    # quantities
    ("last_quantity", "i", 8, 1),
    ("volume", "i", 8, 1),
    ("total_buy_quantity", "i", 8, 1),
    ("total_sell_quantity", "i", 8, 1),
    ("oi", "i", 8, 1),
    ("oi_day_high", "i", 8, 1),
    ("oi_day_low", "i", 8, 1),
    # times, epoch seconds
    ("last_trade_time", "i", 8, 1),
    ("exchange_timestamp", "i", 8, 1),
    # depth, best level first
    ("bid_quantity", "i", 8, FF_DEPTH),
    ("bid_price", "i", 8, FF_DEPTH),
    ("bid_orders", "i", 8, FF_DEPTH),
    ("ask_quantity", "i", 8, FF_DEPTH),
    ("ask_price", "i", 8, FF_DEPTH),
    ("ask_orders", "i", 8, FF_DEPTH),
)

# The fields that belong to the instrument's identity: clear() keeps them.
IDENTITY_FIELDS: Final = ("token", "segment", "tradable", "price_divisor")


def _align(offset: int, alignment: int) -> int:
    return (offset + alignment - 1) // alignment * alignment


@functools.cache
def slot_dtype() -> np.dtype[np.void]:
    """The numpy dtype of one ff_slot: each field at its C offset (aligned to
    its own size, as on every ABI fastflow supports), the struct padded to a
    multiple of its largest member."""
    names: list[str] = []
    formats: list[str | tuple[str, tuple[int]]] = []
    offsets: list[int] = []
    offset = 0
    for name, kind, size, count in SLOT_FIELDS:
        offset = _align(offset, size)
        base = f"={kind}{size}"
        names.append(name)
        formats.append(base if count == 1 else (base, (count,)))
        offsets.append(offset)
        offset += size * count
    itemsize = _align(offset, max(size for _, _, size, _ in SLOT_FIELDS))
    # Typed as Any: numpy's stubs for the dict form of np.dtype() vary between releases.
    spec: Any = {"names": names, "formats": formats, "offsets": offsets, "itemsize": itemsize}
    dtype: np.dtype[np.void] = np.dtype(spec)
    return dtype
