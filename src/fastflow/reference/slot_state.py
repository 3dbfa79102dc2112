"""The market state of one instrument (the twin of ``ext/slot_state.h``).

One numpy record per instrument; :func:`slot_dtype` lays the fields out
exactly as the C compiler lays out ``struct ff_slot`` and what follows it
(natural alignment, no reordering), so the reference state and the compiled
state are byte for byte comparable.

A slot is a fixed header, then ``depth_capacity`` depth levels (``ff_level``:
5 for a Kite state, 30 for an Upstox state) and, for Upstox states only, an
``ff_ext`` block (greeks, iv, the latest 1-minute bar).

Prices are fixed-point: rupees = value / price_divisor (Kite: the segment's
divisor; Upstox: 1e4, or 1e7 for currency). Quantities are plain integers.
Times are epoch milliseconds, except recv_ns (epoch ns).
"""

from __future__ import annotations

import functools
from typing import Any, Final

import numpy as np

FF_DEPTH: Final = 30  # most levels kept per side (Upstox full_d30)
FF_KITE_DEPTH: Final = 5  # levels in a Kite full packet

# broker
FF_BROKER_KITE: Final = 1
FF_BROKER_UPSTOX: Final = 2

# mode: the mode of the last update applied to the slot.
FF_MODE_NONE: Final = 0
FF_MODE_LTP: Final = 1  # Kite ltp
FF_MODE_QUOTE: Final = 2  # Kite quote / index quote
FF_MODE_FULL: Final = 3  # Kite full / index full; Upstox full (5 levels)
FF_MODE_LTPC: Final = 4  # Upstox ltpc
FF_MODE_OPTION_GREEKS: Final = 5  # Upstox option_greeks
FF_MODE_FULL_D30: Final = 6  # Upstox full_d30

# have: which tick keys have been received since clear().
FF_HAVE_LTP: Final = 0x0001  # last_price
FF_HAVE_LTQ: Final = 0x0002  # last_traded_quantity
FF_HAVE_ATP: Final = 0x0004  # average_traded_price
FF_HAVE_VOLUME: Final = 0x0008  # volume_traded
FF_HAVE_TOTALS: Final = 0x0010  # total_buy_quantity, total_sell_quantity
FF_HAVE_OHLC: Final = 0x0020  # ohlc: open/high/low (today) + close (previous day)
FF_HAVE_CHANGE: Final = 0x0040  # change (percent vs close)
FF_HAVE_LTT: Final = 0x0080  # last_trade_time
FF_HAVE_OI: Final = 0x0100  # oi
FF_HAVE_OI_RANGE: Final = 0x0200  # oi_day_high, oi_day_low
FF_HAVE_EXCH_TS: Final = 0x0400  # exchange_timestamp
FF_HAVE_DEPTH: Final = 0x0800  # depth (depth_levels levels)
FF_HAVE_DEPTH_ORDERS: Final = 0x1000  # depth levels carry order counts (Kite)
FF_HAVE_GREEKS: Final = 0x2000  # greeks
FF_HAVE_IV: Final = 0x4000  # iv
FF_HAVE_BAR: Final = 0x8000  # the latest 1-minute bar (state only)

# (name, numpy kind, item size in bytes), in struct order.
SLOT_FIELDS: Final[tuple[tuple[str, str, int], ...]] = (
    # identity, set once from the instrument master
    ("token", "u", 4),
    ("segment", "u", 1),
    ("tradable", "u", 1),
    ("broker", "u", 1),
    ("mode", "u", 1),
    ("have", "u", 4),
    ("depth_levels", "u", 1),  # levels valid in depth[]
    ("depth_capacity", "u", 1),  # levels allocated in depth[] (5 or 30)
    ("has_ext", "u", 1),  # an ff_ext block follows depth[]
    # (one pad byte, not a field)
    ("price_divisor", "i", 8),
    # bookkeeping
    ("seq", "u", 8),  # updates applied to this instrument
    ("recv_ns", "i", 8),  # receive time of the frame that last updated it
    # prices, fixed-point
    ("last_price", "i", 8),
    ("average_price", "i", 8),
    ("open", "i", 8),
    ("high", "i", 8),
    ("low", "i", 8),
    ("close", "i", 8),  # previous day's close (Upstox: cp)
    ("net_change", "i", 8),  # Kite index packets' own "price change" field, raw
    ("change", "f", 8),  # percent vs close, as kiteconnect computes it
    # quantities
    ("last_quantity", "i", 8),
    ("volume", "i", 8),
    ("total_buy_quantity", "i", 8),
    ("total_sell_quantity", "i", 8),
    ("oi", "i", 8),
    ("oi_day_high", "i", 8),
    ("oi_day_low", "i", 8),
    # times, epoch milliseconds
    ("last_trade_time", "i", 8),
    ("exchange_timestamp", "i", 8),
    # then the flexible array member: ff_level depth[]
)

# struct ff_level: one depth level, both sides.
LEVEL_FIELDS: Final[tuple[tuple[str, str, int], ...]] = (
    ("bid_quantity", "i", 8),
    ("bid_price", "i", 8),
    ("bid_orders", "i", 8),
    ("ask_quantity", "i", 8),
    ("ask_price", "i", 8),
    ("ask_orders", "i", 8),
)

# struct ff_ext: option analytics and the latest 1-minute bar (Upstox states only).
EXT_FIELDS: Final[tuple[tuple[str, str, int], ...]] = (
    ("delta", "f", 8),
    ("theta", "f", 8),
    ("gamma", "f", 8),
    ("vega", "f", 8),
    ("rho", "f", 8),
    ("iv", "f", 8),
    ("bar_open", "i", 8),  # the latest 1-minute bar (OHLC interval "I1")
    ("bar_high", "i", 8),
    ("bar_low", "i", 8),
    ("bar_close", "i", 8),
    ("bar_volume", "i", 8),
    ("bar_ts", "i", 8),  # epoch ms
)

# The fields that belong to the instrument's identity: clear() keeps them.
IDENTITY_FIELDS: Final = (
    "token",
    "segment",
    "tradable",
    "broker",
    "price_divisor",
    "depth_capacity",
    "has_ext",
)

BROKERS: Final = ("kite", "upstox")


def _align(offset: int, alignment: int) -> int:
    return (offset + alignment - 1) // alignment * alignment


def _layout(fields: tuple[tuple[str, str, int], ...]) -> tuple[list[str], list[str], list[int], int]:
    """names, numpy formats, C offsets and sizeof() of a struct of ``fields``:
    each field aligned to its own size (as on every ABI fastflow supports),
    the struct padded to a multiple of its largest member."""
    names: list[str] = []
    formats: list[str] = []
    offsets: list[int] = []
    offset = 0
    for name, kind, size in fields:
        offset = _align(offset, size)
        names.append(name)
        formats.append(f"={kind}{size}")
        offsets.append(offset)
        offset += size
    return names, formats, offsets, _align(offset, max(size for _, _, size in fields))


def depth_capacity(broker: str) -> int:
    """Levels per slot of a ``broker`` state."""
    return FF_KITE_DEPTH if broker == "kite" else FF_DEPTH


def slot_dtype(broker: Any = "kite") -> np.dtype[np.void]:
    """The numpy dtype of one slot of a ``broker`` state ("kite": 5 depth
    levels; "upstox": 30 levels plus greeks, iv and the 1-minute bar)."""
    if broker not in BROKERS:
        raise ValueError(f"unknown broker {broker!r} (expected 'kite' or 'upstox')")
    return _slot_dtype(depth_capacity(broker), broker == "upstox")


@functools.cache
def _slot_dtype(capacity: int, has_ext: bool) -> np.dtype[np.void]:
    # Typed as Any: numpy's stubs for the dict form of np.dtype() vary between releases.
    level_names, level_formats, level_offsets, level_size = _layout(LEVEL_FIELDS)
    level_spec: Any = {
        "names": level_names,
        "formats": level_formats,
        "offsets": level_offsets,
        "itemsize": level_size,
    }
    level = np.dtype(level_spec)

    names, header_formats, offsets, header_size = _layout(SLOT_FIELDS)  # sizeof(ff_slot)
    formats: list[Any] = list(header_formats)
    names.append("depth")
    formats.append((level, (capacity,)))
    offsets.append(header_size)
    stride = header_size + capacity * level_size  # ff_slot_stride()
    if has_ext:
        ext_names, ext_formats, ext_offsets, ext_size = _layout(EXT_FIELDS)
        names += ext_names
        formats += ext_formats
        offsets += [stride + offset for offset in ext_offsets]
        stride += ext_size
    spec: Any = {"names": names, "formats": formats, "offsets": offsets, "itemsize": stride}
    dtype: np.dtype[np.void] = np.dtype(spec)
    return dtype
