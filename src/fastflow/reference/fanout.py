"""FanOut: per-client frames of the ticks on each client's watchlist (the twin
of ``ext/fanout.pyx``).

The compiled FanOut keeps C arrays and bitsets; here a dict maps symbol bytes
to slots, each slot's latest blob is a ``bytes`` and each client has two
sets. The frame is walked with the same rules as the compiled walker (not
with ``msgpack.Unpacker``), so both raise the same ``FrameError(reason,
offset)`` for the same bad input.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Iterable
from typing import Any

import msgpack

from fastflow.errors import FrameError
from fastflow.reference.kite_decoder import frame_bytes

__all__ = ["FanOut", "ws_header"]

TRUNCATED = "truncated msgpack value"
INVALID = "invalid msgpack type byte 0xc1"
NOT_ARRAY = "frame is not a msgpack array"
NOT_MAP = "tick is not a msgpack map"
SYMBOL_TYPE = "tick symbol is not a msgpack str"
NO_SYMBOL = "tick has no symbol"
TRAILING = "trailing bytes after the frame's array"

OTHER, STR, ARRAY, MAP = range(4)

_LENGTH_BYTES = {
    0xC4: 1, 0xC5: 2, 0xC6: 4,  # bin 8/16/32
    0xC7: 1, 0xC8: 2, 0xC9: 4,  # ext 8/16/32 (then a type byte)
    0xD9: 1, 0xDA: 2, 0xDB: 4,  # str 8/16/32
    0xDC: 2, 0xDD: 4,  # array 16/32
    0xDE: 2, 0xDF: 4,  # map 16/32
}  # fmt: skip
_FIXED_PAYLOAD = {
    0xCA: 4, 0xCB: 8,  # float 32/64
    0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8,  # uint 8..64
    0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8,  # int 8..64
}  # fmt: skip
_FIXEXT_PAYLOAD = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}
_UNPACK = {1: struct.Struct(">B"), 2: struct.Struct(">H"), 4: struct.Struct(">I")}


class _Head:
    """A msgpack value's header: header bytes, payload bytes, the number of
    values that follow it (array: n, map: 2n) and its kind."""

    __slots__ = ("children", "hlen", "kind", "plen")

    def __init__(self, hlen: int = 1, plen: int = 0, children: int = 0, kind: int = OTHER) -> None:
        self.hlen = hlen
        self.plen = plen
        self.children = children
        self.kind = kind


class _Malformed(Exception):
    def __init__(self, reason: str, offset: int) -> None:
        self.reason = reason
        self.offset = offset


def _is_array_byte(b: int) -> bool:
    return 0x90 <= b <= 0x9F or b in (0xDC, 0xDD)


def _is_map_byte(b: int) -> bool:
    return 0x80 <= b <= 0x8F or b in (0xDE, 0xDF)


def read_head(buf: bytes, pos: int) -> _Head:
    """The header of the value at ``pos`` (< len(buf)); raises _Malformed when
    the header or the payload runs past the end of ``buf``."""
    b = buf[pos]
    avail = len(buf) - pos
    if b <= 0x7F or b >= 0xE0 or b in (0xC0, 0xC2, 0xC3):
        return _Head()
    if b <= 0x8F:
        return _Head(children=2 * (b & 0x0F), kind=MAP)
    if b <= 0x9F:
        return _Head(children=b & 0x0F, kind=ARRAY)
    if b <= 0xBF:
        head = _Head(plen=b & 0x1F, kind=STR)
    elif b == 0xC1:
        raise _Malformed(INVALID, pos)
    elif b in _FIXED_PAYLOAD:
        head = _Head(plen=_FIXED_PAYLOAD[b])
    elif b in _FIXEXT_PAYLOAD:
        head = _Head(hlen=2, plen=_FIXEXT_PAYLOAD[b])
    else:
        lb = _LENGTH_BYTES[b]
        hlen = 1 + lb + (1 if 0xC7 <= b <= 0xC9 else 0)
        if hlen > avail:
            raise _Malformed(TRUNCATED, pos)
        (n,) = _UNPACK[lb].unpack_from(buf, pos + 1)
        if b in (0xDC, 0xDD):
            return _Head(hlen=hlen, children=n, kind=ARRAY)
        if b in (0xDE, 0xDF):
            return _Head(hlen=hlen, children=2 * n, kind=MAP)
        head = _Head(hlen=hlen, plen=n, kind=STR if 0xD9 <= b <= 0xDB else OTHER)
    if head.hlen + head.plen > avail:
        raise _Malformed(TRUNCATED, pos)
    return head


def skip(buf: bytes, pos: int) -> int:
    """The offset just past the one complete value at ``pos``. A count of
    values still to skip, never more than the bytes left (each value takes at
    least one byte)."""
    pending = 1
    while pending:
        if pos >= len(buf):
            raise _Malformed(TRUNCATED, pos)
        head = read_head(buf, pos)
        start = pos
        pos += head.hlen + head.plen
        pending += head.children - 1
        if pending > len(buf) - pos:
            raise _Malformed(TRUNCATED, start)
    return pos


_INT_FORMATS = {
    0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",  # uint 8..64
    0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q",  # int 8..64
}  # fmt: skip
_INT64_MAX = 2**63 - 1


def receive_time(buf: bytes, pos: int) -> int:
    """The value of the whole msgpack value at ``pos`` when it is an int in
    1 .. 2**63 - 1, in any encoding; 0 for anything else."""
    b = buf[pos]
    if b <= 0x7F:
        return b
    fmt = _INT_FORMATS.get(b)
    if fmt is None:
        return 0
    (value,) = struct.unpack_from(fmt, buf, pos + 1)
    return int(value) if 0 < value <= _INT64_MAX else 0


def split_frame(buf: bytes) -> list[tuple[int, int, bytes, int]]:
    """The ticks of a frame as ``(start, end, symbol bytes, receive time)``
    (the tick's last ``"receive_time_ns"`` when a positive int64, else 0);
    raises _Malformed."""
    if not buf:
        raise _Malformed(TRUNCATED, 0)
    if not _is_array_byte(buf[0]):
        raise _Malformed(NOT_ARRAY, 0)
    head = read_head(buf, 0)
    pos = head.hlen
    if head.children > len(buf) - pos:
        raise _Malformed(TRUNCATED, 0)
    ticks = []
    for _ in range(head.children):
        if pos >= len(buf):
            raise _Malformed(TRUNCATED, pos)
        if not _is_map_byte(buf[pos]):
            raise _Malformed(NOT_MAP, pos)
        tick = read_head(buf, pos)
        start = pos
        pos += tick.hlen
        if tick.children > len(buf) - pos:
            raise _Malformed(TRUNCATED, start)
        symbol: bytes | None = None
        received = 0
        for _ in range(tick.children // 2):
            if pos >= len(buf):
                raise _Malformed(TRUNCATED, pos)
            key = read_head(buf, pos)
            name = buf[pos + key.hlen : pos + key.hlen + key.plen] if key.kind == STR else None
            is_symbol = name == b"symbol"
            pos = skip(buf, pos)
            if is_symbol:
                if pos >= len(buf):
                    raise _Malformed(TRUNCATED, pos)
                value = read_head(buf, pos)
                if value.kind != STR:
                    raise _Malformed(SYMBOL_TYPE, pos)
                symbol = buf[pos + value.hlen : pos + value.hlen + value.plen]
            value_at = pos
            pos = skip(buf, pos)
            if name == b"receive_time_ns":
                received = receive_time(buf, value_at)
        if symbol is None:
            raise _Malformed(NO_SYMBOL, start)
        ticks.append((start, pos, symbol, received))
    if pos != len(buf):
        raise _Malformed(TRAILING, pos)
    return ticks


def _index(value: Any) -> int:
    i: int = operator.index(value)
    return i


def _frame(kind: str, blobs: list[bytes]) -> bytes:
    head: bytes = msgpack.packb({"type": kind, "ticks": []})[:-1]  # without the empty array
    array: bytes = msgpack.Packer().pack_array_header(len(blobs))
    return head + array + b"".join(blobs)


class FanOut:
    """Splits published frames of tick maps and builds each client's frame of
    the ticks on its watchlist, splicing the encoded blobs."""

    def __init__(self, instruments: Any) -> None:
        symbols = [str(sym) for sym in instruments.symbol]
        if not symbols:
            raise ValueError("FanOut needs at least one instrument")
        if len(symbols) >= (1 << 30):
            raise ValueError("too many instruments")
        self._slots: dict[bytes, int] = {}
        for i, sym in enumerate(symbols):
            raw = sym.encode("utf-8")
            if raw in self._slots:
                raise ValueError(f"duplicate symbol {sym!r} at slot {i}")
            self._slots[raw] = i
        self._n = len(symbols)
        self._latest: list[bytes | None] = [None] * self._n
        self._subs: list[set[int]] = [set() for _ in range(self._n)]
        self._watch: dict[int, set[int]] = {}  # client id -> watched slots
        self._changed: dict[int, set[int]] = {}  # client id -> slots changed since collect
        self._frames = 0
        self._ticks = 0
        self._unknown = 0
        self._deliveries = 0
        self._frame_errors = 0
        self._last_receive_ns = 0

    def _client(self, cid: Any) -> int:
        i = _index(cid)
        if i not in self._watch:
            raise KeyError(f"unknown client {i}")
        return i

    def _slot_list(self, slots: Iterable[Any]) -> list[int]:
        result = set()
        for s in slots:
            i = _index(s)
            if not 0 <= i < self._n:
                raise IndexError(f"slot {i} out of range (0..{self._n - 1})")
            result.add(i)
        return sorted(result)

    def add_client(self) -> int:
        """A new client with an empty watchlist; returns its id (the lowest free one)."""
        cid = 0
        while cid in self._watch:
            cid += 1
        if cid >= (1 << 30):
            raise ValueError("too many clients")
        self._watch[cid] = set()
        self._changed[cid] = set()
        return cid

    def remove_client(self, cid: int) -> None:
        """Forget a client: its watchlist and pending changes."""
        i = self._client(cid)
        for s in self._watch.pop(i):
            self._subs[s].discard(i)
        del self._changed[i]

    def subscribe(self, cid: int, slots: Iterable[int]) -> int:
        """Add ``slots`` to the client's watchlist; returns how many were new."""
        i = self._client(cid)
        new = [s for s in self._slot_list(slots) if s not in self._watch[i]]
        for s in new:
            self._watch[i].add(s)
            self._subs[s].add(i)
        return len(new)

    def unsubscribe(self, cid: int, slots: Iterable[int]) -> int:
        """Remove ``slots`` from the client's watchlist and pending changes;
        returns how many were on it."""
        i = self._client(cid)
        removed = 0
        for s in self._slot_list(slots):
            if s in self._watch[i]:
                self._watch[i].discard(s)
                self._subs[s].discard(i)
                self._changed[i].discard(s)
                removed += 1
        return removed

    def watchlist(self, cid: int) -> list[int]:
        """The client's watched slots, ascending."""
        return sorted(self._watch[self._client(cid)])

    def subscribers(self, slot: int) -> list[int]:
        """The ids of the clients watching ``slot``, ascending."""
        return sorted(self._subs[self._slot_list((slot,))[0]])

    def latest(self, slot: int) -> bytes | None:
        """The latest blob of ``slot``, or None."""
        return self._latest[self._slot_list((slot,))[0]]

    def changed_clients(self) -> list[int]:
        """The ids of the clients with something to collect, ascending."""
        return sorted(cid for cid, changed in self._changed.items() if changed)

    @property
    def last_receive_ns(self) -> int:
        """The oldest positive ``receive_time_ns`` int among the ticks of the
        last frame fed (a tick's last such key counts); 0 when none had one."""
        return self._last_receive_ns

    def feed(self, frame: Any) -> int:
        """Store each tick of one published frame as its instrument's latest
        blob and mark it for the subscribers; returns the ticks stored. Sets
        :attr:`last_receive_ns`."""
        buf = frame_bytes(frame)
        try:
            ticks = split_frame(buf)
        except _Malformed as exc:
            self._frame_errors += 1
            raise FrameError(exc.reason, exc.offset) from None
        self._last_receive_ns = min((t[3] for t in ticks if t[3]), default=0)
        applied = 0
        for start, end, symbol, _ in ticks:
            slot = self._slots.get(symbol, -1)
            if slot < 0:
                self._unknown += 1
                continue
            self._latest[slot] = buf[start:end]
            for cid in self._subs[slot]:
                self._changed[cid].add(slot)
            applied += 1
        self._frames += 1
        self._ticks += applied
        return applied

    def collect(self, cid: int, websocket: bool = False) -> bytes:
        """``{"type": "ticks", "ticks": [...]}`` of the latest blob of every
        watched instrument changed since the previous collect (slot order);
        ``b""`` when nothing changed. ``websocket``: behind a WebSocket binary
        frame header."""
        i = self._client(cid)
        changed = sorted(self._changed[i])
        if not changed:
            return b""
        self._changed[i] = set()
        self._deliveries += len(changed)
        return _framed(_frame("ticks", [self._blob(s) for s in changed]), websocket)

    def _blob(self, slot: int) -> bytes:
        blob = self._latest[slot]
        assert blob is not None  # marked only once stored
        return blob

    def snapshot(self, cid: int, slots: Iterable[int] | None = None, websocket: bool = False) -> bytes:
        """``{"type": "snapshot", "ticks": [...]}`` of the latest blobs of the
        client's watchlist (or of ``slots``) that have one, in slot order."""
        i = self._client(cid)
        chosen = sorted(self._watch[i]) if slots is None else self._slot_list(slots)
        return _framed(_frame("snapshot", [self._blob(s) for s in chosen if self._latest[s] is not None]),
                       websocket)

    def __len__(self) -> int:
        return self._n

    def stats(self) -> dict[str, int]:
        """Counters."""
        return {
            "frames": self._frames,
            "ticks": self._ticks,
            "unknown_symbols": self._unknown,
            "deliveries": self._deliveries,
            "frame_errors": self._frame_errors,
            "clients": len(self._watch),
        }


def ws_header(n: int, opcode: int = 0x2, *, masked: bool = False) -> bytes:
    """The header of a final WebSocket frame of ``n`` payload bytes (RFC 6455 5.2):
    binary by default, 0x1 for text; ``masked`` sets the mask bit of a client's
    frame (the caller appends the 4-byte key). The one Python writer: the gateway's
    control frames, the load generator's client frames, and the reference FanOut
    (``ext/fanout.pyx`` writes the same server header in C, ``fan_ws_head``)."""
    b0 = 0x80 | opcode
    mask = 0x80 if masked else 0
    if n < 126:
        return bytes((b0, mask | n))
    if n < 1 << 16:
        return bytes((b0, mask | 126)) + n.to_bytes(2, "big")
    return bytes((b0, mask | 127)) + n.to_bytes(8, "big")


def _framed(payload: bytes, websocket: bool) -> bytes:
    return ws_header(len(payload)) + payload if websocket else payload
