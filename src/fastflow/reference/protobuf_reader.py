"""A protobuf wire-format reader over a bounded span of bytes (the twin of
``ext/protobuf_reader.pyx``).

Every read checks the span's end before the position moves; a
length-delimited field yields a sub-span of the same buffer, checked against
its parent's end. Positions are absolute offsets into the whole frame, so an
error's offset is simply the position it was found at. Errors are raised as
:class:`PbError` and turned into one FrameError by the decoder, with the
reason text of :func:`pb_reason`.
"""

from __future__ import annotations

import struct
from typing import Final

from fastflow.errors import FastflowError

# Wire types.
WT_VARINT: Final = 0
WT_FIXED64: Final = 1
WT_LEN: Final = 2
WT_FIXED32: Final = 5

# Error kinds.
PB_TRUNCATED_VARINT: Final = 1
PB_LONG_VARINT: Final = 2
PB_TRUNCATED_FIXED: Final = 3
PB_LENGTH_PAST_END: Final = 4
PB_BAD_WIRE_TYPE: Final = 5  # groups (3, 4) and the undefined 6, 7
PB_WRONG_WIRE_TYPE: Final = 6  # a known field with another wire type
PB_FIELD_ZERO: Final = 7
PB_FIELD_RANGE: Final = 8  # above protobuf's largest field number, 2**29 - 1

_U32_MASK: Final = 0xFFFFFFFF
_U64_MASK: Final = (1 << 64) - 1
_DOUBLE: Final = struct.Struct("<d")


class PbError(FastflowError):
    """A malformed protobuf: what (``code``), where (``at``, an offset into the
    frame), in which message, and the details the reason text shows."""

    def __init__(
        self, code: int, at: int, message: str, field: int = 0, wire_type: int = 0, expected: int = 0
    ) -> None:
        super().__init__(code, at, message)
        self.code = code
        self.at = at
        self.message = message
        self.field = field
        self.wire_type = wire_type
        self.expected = expected


def pb_reason(e: PbError) -> str:
    """The FrameError reason for an error."""
    msg = e.message
    if e.code == PB_TRUNCATED_VARINT:
        return f"truncated varint in {msg}"
    if e.code == PB_LONG_VARINT:
        return f"varint longer than 10 bytes in {msg}"
    if e.code == PB_TRUNCATED_FIXED:
        return f"truncated fixed-size value in {msg}"
    if e.code == PB_LENGTH_PAST_END:
        return f"length {e.field} runs past the end of {msg} ({e.wire_type} bytes left)"
    if e.code == PB_BAD_WIRE_TYPE:
        return f"unsupported wire type {e.wire_type} (field {e.field}) in {msg}"
    if e.code == PB_WRONG_WIRE_TYPE:
        return f"field {e.field} of {msg} has wire type {e.wire_type}, expected {e.expected}"
    if e.code == PB_FIELD_ZERO:
        return f"field number 0 in {msg}"
    if e.code == PB_FIELD_RANGE:
        return f"field number above 536870911 in {msg}"
    return f"malformed protobuf in {msg}"


def to_int64(v: int) -> int:
    """A uint64 read off the wire as a two's-complement int64."""
    return v - (1 << 64) if v >= 1 << 63 else v


class Span:
    """The bytes ``buf[p:end]`` being read; ``p`` moves forward as fields are read."""

    __slots__ = ("buf", "end", "p")

    def __init__(self, buf: bytes, p: int, end: int) -> None:
        self.buf = buf
        self.p = p
        self.end = end

    def at_end(self) -> bool:
        return self.p >= self.end

    def varint(self, msg: str) -> int:
        """A base-128 varint as a uint64: at most 10 bytes; bits past 64 are dropped."""
        start = self.p
        value = 0
        shift = 0
        p = start
        while True:
            if p >= self.end:
                raise PbError(PB_TRUNCATED_VARINT, start, msg)
            if shift >= 70:
                raise PbError(PB_LONG_VARINT, start, msg)
            b = self.buf[p]
            p += 1
            if shift < 64:
                value |= ((b & 0x7F) << shift) & _U64_MASK
            if b < 0x80:
                break
            shift += 7
        self.p = p
        return value

    def tag(self, msg: str) -> tuple[int, int]:
        """A field key: (field number, wire type); field numbers run from 1
        to 2**29 - 1."""
        at = self.p
        key = self.varint(msg)
        wire_type = key & 7
        if key >> 3 > 0x1FFFFFFF:
            raise PbError(PB_FIELD_RANGE, at, msg, 0, wire_type)
        field = key >> 3
        if field == 0:
            raise PbError(PB_FIELD_ZERO, at, msg, 0, wire_type)
        if wire_type in (3, 4) or wire_type > 5:
            raise PbError(PB_BAD_WIRE_TYPE, at, msg, field, wire_type)
        return field, wire_type

    def expect(self, field: int, wire_type: int, expected: int, msg: str) -> None:
        """A known field must have its schema's wire type (error at the byte after the key)."""
        if wire_type != expected:
            raise PbError(PB_WRONG_WIRE_TYPE, self.p, msg, field, wire_type, expected)

    def double(self, msg: str) -> float:
        """A fixed64 little-endian double."""
        if self.end - self.p < 8:
            raise PbError(PB_TRUNCATED_FIXED, self.p, msg, 0, WT_FIXED64)
        (value,) = _DOUBLE.unpack_from(self.buf, self.p)
        self.p += 8
        return float(value)

    def int64(self, msg: str) -> int:
        """An int64 (varint, two's complement)."""
        return to_int64(self.varint(msg))

    def sub(self, msg: str) -> Span:
        """A length-delimited field: its bytes as a sub-span, checked against the end."""
        at = self.p
        n = self.varint(msg)
        left = self.end - self.p
        if n > left:
            raise PbError(PB_LENGTH_PAST_END, at, msg, min(n, _U32_MASK), left & _U32_MASK)
        sub = Span(self.buf, self.p, self.p + n)
        self.p += n
        return sub

    def skip(self, wire_type: int, msg: str) -> None:
        """Skip one field value of ``wire_type`` (unknown fields)."""
        if wire_type == WT_VARINT:
            self.varint(msg)
        elif wire_type in (WT_FIXED64, WT_FIXED32):
            size = 8 if wire_type == WT_FIXED64 else 4
            if self.end - self.p < size:
                raise PbError(PB_TRUNCATED_FIXED, self.p, msg, 0, wire_type)
            self.p += size
        else:
            self.sub(msg)

    def field_span(self, field: int, wire_type: int, msg: str) -> Span:
        """A sub-message field: wire type 2, then its bytes (``upx_sub``)."""
        self.expect(field, wire_type, WT_LEN, msg)
        return self.sub(msg)
