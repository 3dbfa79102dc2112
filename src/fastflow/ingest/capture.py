"""Raw frame captures: ``fastflow record`` writes them, ``fastflow replay`` reads them.

File format (all integers little-endian)::

    magic     8 bytes   b"FFCAP\\x00\\x01\\n"
    hlen      u32       length of the header
    header    hlen      UTF-8 JSON: {"broker": "<registry name>", "instruments": "<path or name>",
                                     "created_ns": <int>, ...}
    records   until the end of the file, each:
        length    u32   payload length
        recv_ns   i64   receive time of the frame (epoch ns)
        crc32     u32   zlib.crc32 of (recv_ns bytes + payload)
        payload   length bytes: one whole WebSocket message, as received

The file is append-only and flushed per record. A crash mid-write can leave a
**torn tail**: a record whose length, header or payload is incomplete, or
whose checksum does not match. The reader stops there, reports it
(``CaptureReader.torn_tail``, the byte offset) and yields every complete
record before it. A bad checksum anywhere else is corruption and raises
:class:`CaptureError`.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

from fastflow import brokers
from fastflow.errors import FastflowError

MAGIC = b"FFCAP\x00\x01\n"
_HLEN = struct.Struct("<I")
_RECORD = struct.Struct("<Iq I")  # length, recv_ns, crc32
MAX_RECORD = 64 * 1024 * 1024


class CaptureError(FastflowError, ValueError):
    """A capture file that is not one, or is corrupt before its tail."""


class CaptureWriter:
    """Appends frames to a capture file (created with its header if new)."""

    def __init__(self, path: str | os.PathLike[str], *, broker: str, instruments: str = "", **meta: Any) -> None:
        if broker not in brokers.NAMES:
            raise ValueError(f"unknown broker {broker!r}")
        self.path = os.fspath(path)
        exists = os.path.exists(self.path) and os.path.getsize(self.path) > 0
        if exists:
            with open(self.path, "rb") as f:
                header = _read_header(f, self.path)
            if header.get("broker") != broker:
                raise CaptureError(f"{self.path}: a {header.get('broker')} capture; cannot append {broker} frames")
        self._file: BinaryIO = open(self.path, "ab")  # noqa: SIM115 - closed by close()
        if not exists:
            head = json.dumps({"broker": broker, "instruments": instruments, "created_ns": time.time_ns(), **meta})
            raw = head.encode("utf-8")
            self._file.write(MAGIC + _HLEN.pack(len(raw)) + raw)
            self._file.flush()
        self.records = 0

    def append(self, recv_ns: int, payload: bytes) -> None:
        """One frame, written whole and flushed (a crash tears at most this record)."""
        if len(payload) > MAX_RECORD:
            raise ValueError(f"frame of {len(payload)} bytes is larger than {MAX_RECORD}")
        stamp = struct.pack("<q", recv_ns)
        crc = zlib.crc32(payload, zlib.crc32(stamp))
        self._file.write(_RECORD.pack(len(payload), recv_ns, crc) + payload)
        self._file.flush()
        self.records += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CaptureReader:
    """Iterates ``(recv_ns, payload)`` over a capture file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        with open(self.path, "rb") as f:
            self.header = _read_header(f, self.path)
            self._data_start = f.tell()
        self.broker: str = self.header["broker"]
        self.torn_tail: int | None = None  # byte offset of a torn last record, if any

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        with open(self.path, "rb") as f:
            data = f.read()
        pos = self._data_start
        end = len(data)
        while pos < end:
            if end - pos < _RECORD.size:
                self.torn_tail = pos
                return
            length, recv_ns, crc = _RECORD.unpack_from(data, pos)
            start = pos + _RECORD.size
            if length > MAX_RECORD or end - start < length:
                self.torn_tail = pos
                return
            payload = data[start : start + length]
            if zlib.crc32(payload, zlib.crc32(struct.pack("<q", recv_ns))) != crc:
                if start + length == end:  # the last record: torn mid-write
                    self.torn_tail = pos
                    return
                raise CaptureError(f"{self.path}: checksum mismatch in the record at byte {pos}")
            yield recv_ns, payload
            pos = start + length


def _read_header(f: BinaryIO, path: str) -> dict[str, Any]:
    magic = f.read(len(MAGIC))
    if magic != MAGIC:
        raise CaptureError(f"{path}: not a fastflow capture (bad magic)")
    raw_len = f.read(_HLEN.size)
    if len(raw_len) < _HLEN.size:
        raise CaptureError(f"{path}: truncated header")
    (n,) = _HLEN.unpack(raw_len)
    raw = f.read(n)
    if len(raw) < n:
        raise CaptureError(f"{path}: truncated header")
    try:
        header = json.loads(raw)
    except ValueError as exc:
        raise CaptureError(f"{path}: header is not JSON: {exc}") from None
    if not isinstance(header, dict) or header.get("broker") not in brokers.NAMES:
        raise CaptureError(f"{path}: header names no known broker")
    return header
