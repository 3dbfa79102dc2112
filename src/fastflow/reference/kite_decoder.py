"""KiteDecoder: Zerodha Kite binary messages -> MarketState (the twin of
``ext/kite_decoder.pyx``).

A message is ``u16 n_packets`` followed by ``n`` times ``u16 length`` +
packet, all big-endian. The message is checked whole first (framing pass), so
a malformed message raises FrameError and changes no instrument; then every
packet is applied (apply pass).
"""

from __future__ import annotations

import operator
import struct
import time
from typing import Any, NoReturn

from fastflow.errors import FrameError
from fastflow.reference.broker_wire import (
    KITE_ASK_OFFSET,
    KITE_DEPTH_ENTRY_LEN,
    KITE_DEPTH_OFFSET,
    KITE_FULL_LEN,
    KITE_INDEX_FULL_LEN,
    KITE_INDEX_QUOTE_LEN,
    KITE_KNOWN_LENGTHS,
    KITE_LTP_LEN,
    KITE_QUOTE_LEN,
)
from fastflow.reference.market_state import MarketState
from fastflow.reference.slot_state import (
    FF_HAVE_ATP,
    FF_HAVE_CHANGE,
    FF_HAVE_DEPTH,
    FF_HAVE_DEPTH_ORDERS,
    FF_HAVE_EXCH_TS,
    FF_HAVE_LTP,
    FF_HAVE_LTQ,
    FF_HAVE_LTT,
    FF_HAVE_OHLC,
    FF_HAVE_OI,
    FF_HAVE_OI_RANGE,
    FF_HAVE_TOTALS,
    FF_HAVE_VOLUME,
    FF_KITE_DEPTH,
    FF_MODE_FULL,
    FF_MODE_LTP,
    FF_MODE_QUOTE,
)

__all__ = ["KiteDecoder"]

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
# token, ltp, last qty, average price, volume, total buy qty, total sell qty, open, high, low, close
_QUOTE = struct.Struct(">IiIiIIIiiii")
# last trade time, oi, oi day high, oi day low, exchange timestamp (at byte 44 of a full packet)
_FULL_EXT = struct.Struct(">IIIII")
# token, ltp, high, low, open, close, net change (index packets)
_INDEX = struct.Struct(">Iiiiiii")
# one depth level: quantity, price, orders (2 pad bytes follow)
_DEPTH = struct.Struct(">IiH")

# The tick keys each Kite packet layout carries.
KITE_HAVE_INDEX_QUOTE = FF_HAVE_LTP | FF_HAVE_OHLC | FF_HAVE_CHANGE
KITE_HAVE_INDEX_FULL = KITE_HAVE_INDEX_QUOTE | FF_HAVE_EXCH_TS
KITE_HAVE_QUOTE = (
    FF_HAVE_LTP | FF_HAVE_LTQ | FF_HAVE_ATP | FF_HAVE_VOLUME | FF_HAVE_TOTALS | FF_HAVE_OHLC | FF_HAVE_CHANGE
)
KITE_HAVE_FULL = (
    KITE_HAVE_QUOTE
    | FF_HAVE_LTT
    | FF_HAVE_OI
    | FF_HAVE_OI_RANGE
    | FF_HAVE_EXCH_TS
    | FF_HAVE_DEPTH
    | FF_HAVE_DEPTH_ORDERS
)

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

# Slot fields of a packet (raw integers), and its depth levels as
# (bid_quantity, bid_price, bid_orders, ask_quantity, ask_price, ask_orders).
Fields = dict[str, int]
Levels = list[tuple[int, int, int, int, int, int]]


def as_int64(value: Any) -> int:
    """``value`` as an int64 receive time: ints and anything with ``__index__``
    (numpy integers); floats are refused (a float is almost surely seconds)."""
    if getattr(type(value), "__index__", None) is None:
        raise TypeError(f"recv_ns must be an int of epoch nanoseconds, not {type(value).__name__}")
    i = operator.index(value)
    if not _INT64_MIN <= i <= _INT64_MAX:
        raise OverflowError("Python int too large to convert to C long")
    return i


def frame_bytes(frame: Any) -> bytes:
    """The bytes of a whole message given as any contiguous buffer."""
    if type(frame) is bytes:
        return frame
    try:
        view = memoryview(frame)
    except TypeError:
        raise TypeError(f"a bytes-like object is required, not '{type(frame).__name__}'") from None
    with view:
        if not view.c_contiguous:
            raise BufferError("memoryview: underlying buffer is not C-contiguous")
        return view.tobytes()


def packet_fields(packet: bytes) -> tuple[int, int, Fields, Levels | None]:
    """The mode, the have-bits, the raw slot fields and the depth levels (full
    packets only) of one packet whose length is a known Kite length. The
    length alone selects the layout. Times become epoch milliseconds."""
    length = len(packet)
    (last_price,) = _I32.unpack_from(packet, 4)
    fields: Fields = {"last_price": last_price}
    if length == KITE_LTP_LEN:
        return FF_MODE_LTP, FF_HAVE_LTP, fields, None

    if length in (KITE_QUOTE_LEN, KITE_FULL_LEN):  # tradable layout
        _, _, ltq, atp, volume, tbq, tsq, open_, high, low, close = _QUOTE.unpack_from(packet, 0)
        fields.update(
            last_quantity=ltq,
            average_price=atp,
            volume=volume,
            total_buy_quantity=tbq,
            total_sell_quantity=tsq,
            open=open_,
            high=high,
            low=low,
            close=close,
        )
        if length == KITE_QUOTE_LEN:
            return FF_MODE_QUOTE, KITE_HAVE_QUOTE, fields, None
        ltt, oi, oi_high, oi_low, exchange_ts = _FULL_EXT.unpack_from(packet, 44)
        fields.update(
            last_trade_time=ltt * 1000,
            oi=oi,
            oi_day_high=oi_high,
            oi_day_low=oi_low,
            exchange_timestamp=exchange_ts * 1000,
        )
        levels: Levels = []
        for i in range(FF_KITE_DEPTH):
            bid = _DEPTH.unpack_from(packet, KITE_DEPTH_OFFSET + i * KITE_DEPTH_ENTRY_LEN)
            ask = _DEPTH.unpack_from(packet, KITE_ASK_OFFSET + i * KITE_DEPTH_ENTRY_LEN)
            levels.append((*bid, *ask))
        return FF_MODE_FULL, KITE_HAVE_FULL, fields, levels

    # 28 or 32 bytes: index layout, high/low/open/close order
    assert length in (KITE_INDEX_QUOTE_LEN, KITE_INDEX_FULL_LEN)
    _, _, high, low, open_, close, net_change = _INDEX.unpack_from(packet, 0)
    fields.update(high=high, low=low, open=open_, close=close, net_change=net_change)
    if length == KITE_INDEX_QUOTE_LEN:
        return FF_MODE_QUOTE, KITE_HAVE_INDEX_QUOTE, fields, None
    (exchange_ts,) = _U32.unpack_from(packet, 28)
    fields["exchange_timestamp"] = exchange_ts * 1000
    return FF_MODE_FULL, KITE_HAVE_INDEX_FULL, fields, None


def kite_change(last_price: int, close: int, divisor: int) -> float:
    """kiteconnect's change: (last_price - close) * 100 / close on rupee
    floats, 0 if close == 0 (the same double operations as the C code)."""
    if close == 0:
        return 0.0
    div = float(divisor)
    close_rupees = float(close) / div
    return (float(last_price) / div - close_rupees) * 100.0 / close_rupees


class KiteDecoder:
    """Decodes Kite binary WebSocket messages into a :class:`MarketState`.

    ``feed(frame)`` takes one whole message and returns the number of
    packets applied. A 1-byte message is a heartbeat (returns 0). Packets
    whose token is not in the instrument master are counted and skipped. A
    malformed message raises :class:`FrameError` and applies nothing.
    """

    def __init__(self, state: MarketState) -> None:
        if not isinstance(state, MarketState):
            raise TypeError(
                f"Argument 'state' has incorrect type (expected {MarketState.__module__}.MarketState, "
                f"got {type(state).__name__})"
            )
        if state._key_index is not None:
            raise ValueError(
                "KiteDecoder needs a MarketState built from Kite instruments (Instruments.from_kite_csv)"
            )
        self._state = state
        self._frames = 0
        self._packets = 0
        self._heartbeats = 0
        self._unknown_tokens = 0
        self._unknown_packets = 0
        self._frame_errors = 0
        self._bytes = 0

    @property
    def state(self) -> MarketState:
        return self._state

    def feed(self, frame: Any, recv_ns: int = 0) -> int:
        """Decode one message; ``recv_ns`` is its receive time (epoch ns,
        0: now). Returns the number of packets applied."""
        recv_ns = as_int64(recv_ns)
        buf = frame_bytes(frame)
        size = len(buf)
        self._bytes += size
        if size == 1:
            self._heartbeats += 1
            return 0
        if size < 2:
            self._fail("empty message", 0)
        (count,) = _U16.unpack_from(buf, 0)

        # Framing pass: every length header and packet lies inside the message.
        packets: list[bytes] = []
        pos = 2
        for i in range(count):
            if pos + 2 > size:
                self._fail(
                    f"truncated: packet {i} of {count} has no length header (message is {size} bytes)", pos
                )
            (length,) = _U16.unpack_from(buf, pos)
            if pos + 2 + length > size:
                self._fail(
                    f"truncated: packet {i} declares {length} bytes but only {size - pos - 2} remain", pos
                )
            packets.append(buf[pos + 2 : pos + 2 + length])
            pos += 2 + length
        if pos != size:
            self._fail(f"trailing bytes: {count} packets end at byte {pos} of a {size}-byte message", pos)

        # Apply pass.
        if recv_ns == 0:
            recv_ns = time.time_ns()
        applied = 0
        for packet in packets:
            if len(packet) not in KITE_KNOWN_LENGTHS:  # intact framing, unknown mode: skip
                self._unknown_packets += 1
                continue
            (token,) = _U32.unpack_from(packet, 0)
            slot = self._state._index.get(token)
            if slot < 0:
                self._unknown_tokens += 1
                continue
            self._apply(slot, packet, recv_ns)
            applied += 1
        self._frames += 1
        self._packets += applied
        return applied

    def _apply(self, slot: int, packet: bytes, recv_ns: int) -> None:
        slots = self._state._slots
        mode, have, fields, levels = packet_fields(packet)
        for name, value in fields.items():
            slots[name][slot] = value
        if levels is not None:
            depth = slots["depth"][slot]
            for i, level in enumerate(levels):
                depth[i] = level
            slots["depth_levels"][slot] = len(levels)
        slots["mode"][slot] = mode
        slots["have"][slot] = int(slots["have"][slot]) | have
        if int(slots["have"][slot]) & FF_HAVE_CHANGE:
            slots["change"][slot] = kite_change(
                int(slots["last_price"][slot]), int(slots["close"][slot]), int(slots["price_divisor"][slot])
            )
        slots["seq"][slot] = int(slots["seq"][slot]) + 1
        slots["recv_ns"][slot] = recv_ns
        self._state._updated(slot)

    def _fail(self, reason: str, offset: int) -> NoReturn:
        self._frame_errors += 1
        raise FrameError(reason, offset)

    def stats(self) -> dict[str, int]:
        """Counters: frames and packets applied, heartbeats, unknown tokens
        skipped, frames rejected, bytes fed."""
        return {
            "frames": self._frames,
            "packets": self._packets,
            "heartbeats": self._heartbeats,
            "unknown_tokens": self._unknown_tokens,
            "unknown_packets": self._unknown_packets,
            "frame_errors": self._frame_errors,
            "bytes": self._bytes,
        }
