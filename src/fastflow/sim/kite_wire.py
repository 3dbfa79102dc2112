"""Encoder for Zerodha Kite's binary WebSocket frames (the inverse of the decoder).

Layouts follow ``docs/wire-format.md`` (Kite Connect v3): every integer is
big-endian; a message is ``u16 n_packets`` followed by ``n`` times
``u16 length`` + packet. Prices are passed *raw*: the fixed-point integer the
exchange sends (rupees x divisor, see :func:`price_divisor`, the instrument master's rule).

This module is cold code for the simulator, tests and benchmarks; the hot path
never uses it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from fastflow.instruments import kite_price_divisor

#: A 1-byte binary message: Kite's idle heartbeat.
HEARTBEAT = b"\x00"

LTP_LEN = 8
INDEX_QUOTE_LEN = 28
INDEX_FULL_LEN = 32
QUOTE_LEN = 44
FULL_LEN = 184

SEGMENT_INDICES = 9

#: The divisor that turns a raw price of a token into rupees (the instrument master's rule).
price_divisor = kite_price_divisor

_U16 = struct.Struct(">H")
_LTP = struct.Struct(">Ii")
_INDEX = struct.Struct(">Iiiiiii")  # token, ltp, high, low, open, close, change
_QUOTE = struct.Struct(">IiIiIIIiiii")  # token, ltp, ltq, atp, vol, tbq, tsq, o, h, l, c
_FULL_EXT = struct.Struct(">IIIII")  # ltt, oi, oi_high, oi_low, exchange_ts
_DEPTH = struct.Struct(">IiHxx")  # quantity, price, orders, 2 pad bytes

DepthLevel = tuple[int, int, int]  # (quantity, raw price, orders)


def ltp_packet(token: int, last_price: int) -> bytes:
    return _LTP.pack(token, last_price)


def index_packet(
    token: int,
    last_price: int,
    high: int,
    low: int,
    open: int,
    close: int,
    change: int = 0,
    exchange_timestamp: int | None = None,
) -> bytes:
    """Index quote (28 bytes) or, with ``exchange_timestamp``, index full (32 bytes)."""
    body = _INDEX.pack(token, last_price, high, low, open, close, change)
    if exchange_timestamp is None:
        return body
    return body + struct.pack(">I", exchange_timestamp)


def quote_packet(
    token: int,
    last_price: int,
    last_traded_quantity: int,
    average_traded_price: int,
    volume_traded: int,
    total_buy_quantity: int,
    total_sell_quantity: int,
    open: int,
    high: int,
    low: int,
    close: int,
) -> bytes:
    return _QUOTE.pack(
        token,
        last_price,
        last_traded_quantity,
        average_traded_price,
        volume_traded,
        total_buy_quantity,
        total_sell_quantity,
        open,
        high,
        low,
        close,
    )


def full_packet(
    token: int,
    last_price: int,
    last_traded_quantity: int,
    average_traded_price: int,
    volume_traded: int,
    total_buy_quantity: int,
    total_sell_quantity: int,
    open: int,
    high: int,
    low: int,
    close: int,
    last_trade_time: int,
    oi: int,
    oi_day_high: int,
    oi_day_low: int,
    exchange_timestamp: int,
    bids: Sequence[DepthLevel],
    asks: Sequence[DepthLevel],
) -> bytes:
    """Full quote (184 bytes): quote fields, times, OI and 5+5 depth levels."""
    if len(bids) != 5 or len(asks) != 5:
        raise ValueError("a full packet carries exactly 5 bid and 5 ask levels")
    head = quote_packet(
        token,
        last_price,
        last_traded_quantity,
        average_traded_price,
        volume_traded,
        total_buy_quantity,
        total_sell_quantity,
        open,
        high,
        low,
        close,
    )
    ext = _FULL_EXT.pack(last_trade_time, oi, oi_day_high, oi_day_low, exchange_timestamp)
    depth = b"".join(_DEPTH.pack(q, p, o) for q, p, o in (*bids, *asks))
    return head + ext + depth


def message(packets: Iterable[bytes]) -> bytes:
    """One binary WebSocket message holding ``packets``."""
    items = list(packets)
    parts = [_U16.pack(len(items))]
    for packet in items:
        parts.append(_U16.pack(len(packet)))
        parts.append(packet)
    return b"".join(parts)
