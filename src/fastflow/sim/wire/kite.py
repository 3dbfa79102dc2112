"""The Kite binary WebSocket encoder (the inverse of the decoder): the simulator's one.

Layouts follow ``docs/wire-format.md`` (Kite Connect v3): every integer is
big-endian; a message is ``u16 n_packets`` followed by ``n`` times
``u16 length`` + packet. Prices are passed *raw*: the fixed-point integer the
exchange sends (rupees x divisor, see :func:`price_divisor`). Packet lengths,
segment ids and the divisor rule are the ones of
:mod:`fastflow.reference.broker_wire`, the subscription modes those of
:mod:`fastflow.brokers.kite.session` (re-exported here under short names).

Each packet layout is defined once, as a field table below, and two encoders
are derived from it:

* per packet, with :mod:`struct` (:func:`ltp_packet`, :func:`index_packet`,
  :func:`quote_packet`, :func:`full_packet`, joined by :func:`message`): for
  tests, fuzzers and hand-built frames;
* per block of packets, with big-endian numpy structured arrays
  (:func:`ltp_block`, :func:`index_block`, :func:`quote_block`,
  :func:`full_block`, each a run of ``(u16 length, packet)`` pairs exactly as
  they sit in a message, after :func:`header`): for the market, which encodes
  thousands of packets per message with no Python work per packet.

Both give the same bytes for the same values (the tests check it). This module
is cold code for the simulator, tests and benchmarks; the hot path never uses it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from fastflow.brokers.kite.constants import MODES
from fastflow.reference.broker_wire import KITE_FULL_LEN as FULL_LEN
from fastflow.reference.broker_wire import KITE_INDEX_FULL_LEN as INDEX_FULL_LEN
from fastflow.reference.broker_wire import KITE_INDEX_QUOTE_LEN as INDEX_QUOTE_LEN
from fastflow.reference.broker_wire import KITE_LTP_LEN as LTP_LEN
from fastflow.reference.broker_wire import KITE_QUOTE_LEN as QUOTE_LEN
from fastflow.reference.broker_wire import KITE_SEGMENT_INDICES as SEGMENT_INDICES
from fastflow.reference.broker_wire import price_divisor

__all__ = [
    "FULL_LEN",
    "HEARTBEAT",
    "INDEX_FULL_LEN",
    "INDEX_QUOTE_LEN",
    "LTP_LEN",
    "MODES",
    "QUOTE_LEN",
    "SEGMENT_INDICES",
    "DepthLevel",
    "full_block",
    "full_packet",
    "header",
    "index_block",
    "index_packet",
    "ltp_block",
    "ltp_packet",
    "message",
    "price_divisor",
    "quote_block",
    "quote_packet",
]

#: A 1-byte binary message: Kite's idle heartbeat.
HEARTBEAT: Final = b"\x00"

DepthLevel = tuple[int, int, int]  # (quantity, raw price, orders)
IntArray = npt.NDArray[np.int64]
Fields = tuple[tuple[str, str], ...]

# --- the layouts: (field, big-endian type) in wire order ------------------------------------------

_LTP_FIELDS: Fields = (("token", "u4"), ("last_price", "i4"))
_INDEX_FIELDS: Fields = (
    ("token", "u4"),
    ("last_price", "i4"),
    ("high", "i4"),
    ("low", "i4"),
    ("open", "i4"),
    ("close", "i4"),
    ("change", "i4"),
)
_INDEX_FULL_EXT: Fields = (("exchange_timestamp", "u4"),)
_QUOTE_FIELDS: Fields = (
    ("token", "u4"),
    ("last_price", "i4"),
    ("last_traded_quantity", "u4"),
    ("average_traded_price", "i4"),
    ("volume_traded", "u4"),
    ("total_buy_quantity", "u4"),
    ("total_sell_quantity", "u4"),
    ("open", "i4"),
    ("high", "i4"),
    ("low", "i4"),
    ("close", "i4"),
)
_FULL_EXT: Fields = (
    ("last_trade_time", "u4"),
    ("oi", "u4"),
    ("oi_day_high", "u4"),
    ("oi_day_low", "u4"),
    ("exchange_timestamp", "u4"),
)
_DEPTH_FIELDS: Fields = (("quantity", "u4"), ("price", "i4"), ("orders", "u2"), ("pad", "u2"))
#: 5 bid levels, then 5 ask levels.
_DEPTH_LEVELS: Final = 10

_STRUCT_CODES: Final = {"u4": "I", "i4": "i", "u2": "H"}


def _struct(fields: Fields) -> struct.Struct:
    return struct.Struct(">" + "".join(_STRUCT_CODES[kind] for _, kind in fields))


def _dtype(fields: Fields) -> list[tuple[str, str]]:
    """Numpy fields of a length-prefixed record: the ``u16`` length, then ``fields``."""
    return [("length", ">u2"), *((name, ">" + kind) for name, kind in fields)]


_U16 = struct.Struct(">H")
_LTP = _struct(_LTP_FIELDS)
_INDEX = _struct(_INDEX_FIELDS)
_INDEX_EXT = _struct(_INDEX_FULL_EXT)
_QUOTE = _struct(_QUOTE_FIELDS)
_FULL_EXT_STRUCT = _struct(_FULL_EXT)
_DEPTH = _struct(_DEPTH_FIELDS)

_DEPTH_DT = np.dtype(_dtype(_DEPTH_FIELDS)[1:])
_LTP_DT = np.dtype(_dtype(_LTP_FIELDS))
_INDEX_QUOTE_DT = np.dtype(_dtype(_INDEX_FIELDS))
_INDEX_FULL_DT = np.dtype(_dtype(_INDEX_FIELDS + _INDEX_FULL_EXT))
_QUOTE_DT = np.dtype(_dtype(_QUOTE_FIELDS))
_FULL_DT = np.dtype([*_dtype(_QUOTE_FIELDS + _FULL_EXT), ("depth", _DEPTH_DT, (_DEPTH_LEVELS,))])

# The layouts have the lengths the decoder expects (each record carries its u16 length prefix).
assert _LTP.size == LTP_LEN and _LTP_DT.itemsize == 2 + LTP_LEN
assert _INDEX.size == INDEX_QUOTE_LEN and _INDEX_QUOTE_DT.itemsize == 2 + INDEX_QUOTE_LEN
assert _INDEX.size + _INDEX_EXT.size == INDEX_FULL_LEN and _INDEX_FULL_DT.itemsize == 2 + INDEX_FULL_LEN
assert _QUOTE.size == QUOTE_LEN and _QUOTE_DT.itemsize == 2 + QUOTE_LEN
assert _QUOTE.size + _FULL_EXT_STRUCT.size + _DEPTH_LEVELS * _DEPTH.size == FULL_LEN
assert _FULL_DT.itemsize == 2 + FULL_LEN


# --- per packet ---------------------------------------------------------------------------------


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
    return body + _INDEX_EXT.pack(exchange_timestamp)


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
    ext = _FULL_EXT_STRUCT.pack(last_trade_time, oi, oi_day_high, oi_day_low, exchange_timestamp)
    depth = b"".join(_DEPTH.pack(q, p, o, 0) for q, p, o in (*bids, *asks))
    return head + ext + depth


def message(packets: Iterable[bytes]) -> bytes:
    """One binary WebSocket message holding ``packets``."""
    items = list(packets)
    parts = [_U16.pack(len(items))]
    for packet in items:
        parts.append(_U16.pack(len(packet)))
        parts.append(packet)
    return b"".join(parts)


# --- per block ----------------------------------------------------------------------------------
# Arguments are parallel arrays (one entry per packet) named like the per-packet ones; the
# result is the packets with their u16 length prefixes, ready to follow a header().


def header(count: int) -> bytes:
    """The ``u16`` packet count that opens a message of ``count`` packets."""
    return _U16.pack(count)


def ltp_block(token: npt.ArrayLike, last_price: IntArray) -> bytes:
    rec = np.empty(last_price.size, _LTP_DT)
    rec["length"] = LTP_LEN
    rec["token"] = token
    rec["last_price"] = last_price
    return rec.tobytes()


def index_block(
    token: npt.ArrayLike,
    last_price: IntArray,
    high: IntArray,
    low: IntArray,
    open: IntArray,
    close: IntArray,
    change: IntArray,
    exchange_timestamp: IntArray | None = None,
) -> bytes:
    """Index quote packets or, with ``exchange_timestamp``, index full packets."""
    if last_price.size == 0:
        return b""
    full = exchange_timestamp is not None
    rec = np.empty(last_price.size, _INDEX_FULL_DT if full else _INDEX_QUOTE_DT)
    rec["length"] = INDEX_FULL_LEN if full else INDEX_QUOTE_LEN
    rec["token"] = token
    rec["last_price"] = last_price
    rec["high"] = high
    rec["low"] = low
    rec["open"] = open
    rec["close"] = close
    rec["change"] = change
    if exchange_timestamp is not None:
        rec["exchange_timestamp"] = exchange_timestamp
    return rec.tobytes()


def _quote_fields(rec: npt.NDArray[np.void], values: Sequence[npt.ArrayLike]) -> None:
    for (name, _), value in zip(_QUOTE_FIELDS, values, strict=True):
        rec[name] = value


def quote_block(
    token: npt.ArrayLike,
    last_price: IntArray,
    last_traded_quantity: IntArray,
    average_traded_price: IntArray,
    volume_traded: IntArray,
    total_buy_quantity: IntArray,
    total_sell_quantity: IntArray,
    open: IntArray,
    high: IntArray,
    low: IntArray,
    close: IntArray,
) -> bytes:
    if last_price.size == 0:
        return b""
    rec = np.empty(last_price.size, _QUOTE_DT)
    rec["length"] = QUOTE_LEN
    _quote_fields(
        rec,
        (token, last_price, last_traded_quantity, average_traded_price, volume_traded,
         total_buy_quantity, total_sell_quantity, open, high, low, close),
    )
    return rec.tobytes()


def full_block(
    token: npt.ArrayLike,
    last_price: IntArray,
    last_traded_quantity: IntArray,
    average_traded_price: IntArray,
    volume_traded: IntArray,
    total_buy_quantity: IntArray,
    total_sell_quantity: IntArray,
    open: IntArray,
    high: IntArray,
    low: IntArray,
    close: IntArray,
    last_trade_time: IntArray,
    oi: IntArray,
    oi_day_high: IntArray,
    oi_day_low: IntArray,
    exchange_timestamp: IntArray,
    bid_quantity: IntArray,
    bid_price: IntArray,
    bid_orders: IntArray,
    ask_quantity: IntArray,
    ask_price: IntArray,
    ask_orders: IntArray,
) -> bytes:
    """Full packets; the book arguments are ``(packets, 5)`` arrays, best level first."""
    if last_price.size == 0:
        return b""
    rec = np.empty(last_price.size, _FULL_DT)
    rec["length"] = FULL_LEN
    _quote_fields(
        rec,
        (token, last_price, last_traded_quantity, average_traded_price, volume_traded,
         total_buy_quantity, total_sell_quantity, open, high, low, close),
    )
    rec["last_trade_time"] = last_trade_time
    rec["oi"] = oi
    rec["oi_day_high"] = oi_day_high
    rec["oi_day_low"] = oi_day_low
    rec["exchange_timestamp"] = exchange_timestamp
    depth = rec["depth"]
    depth["quantity"] = np.concatenate((bid_quantity, ask_quantity), axis=1)
    depth["price"] = np.concatenate((bid_price, ask_price), axis=1)
    depth["orders"] = np.concatenate((bid_orders, ask_orders), axis=1)
    depth["pad"] = 0
    return rec.tobytes()
