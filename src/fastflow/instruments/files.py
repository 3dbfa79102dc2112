"""Reading instrument-master files: bytes -> text -> CSV columns.

:func:`_read_text` reads a file, gunzips it when it starts with the gzip
magic bytes (whatever its name), decodes UTF-8 (dropping a BOM) and rejects
an empty file; :func:`_csv_columns` parses CSV text whose header names a
given set of columns in any order.  Errors are :class:`InstrumentError` with
the physical line (the header is line 1); a missing file raises
:class:`OSError`.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import zlib
from collections.abc import Sequence
from typing import Final

from fastflow.instruments.errors import InstrumentError

_GZIP_MAGIC: Final = b"\x1f\x8b"


def _read_text(path: str | os.PathLike[str]) -> tuple[str, str]:
    """The decoded text of an instruments file (plain or gzipped) and its display name."""
    display = os.fspath(path)
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise InstrumentError(f"corrupt gzip data: {exc}", display) from None
    text = _decode(data, display)
    if not text.strip():
        raise InstrumentError("the instruments file is empty (no bytes or only whitespace)", display)
    return text, display


def _line_of_offset(data: bytes, offset: int) -> int:
    """Physical line (1-based, \\n, \\r\\n or \\r endings) holding byte ``offset``."""
    prefix = data[:offset]
    return prefix.count(b"\n") + prefix.count(b"\r") - prefix.count(b"\r\n") + 1


def _decode(data: bytes, path: str | None) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.end]
        line = _line_of_offset(data, exc.start)
        raise InstrumentError(f"invalid UTF-8 byte sequence {bad!r}", path, line) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


def _read_records(text: str, path: str | None) -> tuple[list[list[str]], Sequence[int]]:
    """Parse CSV records and the physical line each one starts on (1-based)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        records = list(reader)
    except csv.Error:
        pass
    else:
        if reader.line_num == len(records):  # no record spans several lines
            return records, range(1, len(records) + 1)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records = []
    lines: list[int] = []
    previous = 0
    try:
        for record in reader:
            records.append(record)
            lines.append(previous + 1)
            previous = reader.line_num
    except csv.Error as exc:
        raise InstrumentError(f"malformed CSV: {exc}", path, previous + 1) from None
    return records, lines


def _is_blank(row: Sequence[str]) -> bool:
    return not row or (len(row) == 1 and not row[0].strip())


def _column_positions(
    header: list[str],
    line: int,
    path: str | None,
    columns: Sequence[str],
    no_header: str = "the header row is missing",
) -> list[int]:
    """Map each of ``columns`` to its position in ``header``."""
    names = [field.strip() for field in header]
    column_set = frozenset(columns)
    header_text = ",".join(columns)
    expected = f"expected the columns {header_text}"
    if not column_set.intersection(names):
        raise InstrumentError(
            f"{no_header}: the first line must name the {len(columns)} columns {header_text}",
            path,
            line,
        )
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InstrumentError(f"header names the column more than once; {expected}", path, line, name)
        seen.add(name)
    unknown = [name for name in names if name not in column_set]
    if unknown:
        listed = ", ".join(repr(name) for name in unknown)
        raise InstrumentError(f"unknown column(s) in header: {listed}; {expected}", path, line, unknown[0])
    missing = [name for name in columns if name not in seen]
    if missing:
        listed = ", ".join(repr(name) for name in missing)
        raise InstrumentError(f"header is missing column(s): {listed}; {expected}", path, line, missing[0])
    return [names.index(name) for name in columns]


def _csv_columns(
    text: str, path: str | None, columns: Sequence[str], no_header: str = "the header row is missing"
) -> tuple[dict[str, Sequence[str]], Sequence[int]]:
    """Parse CSV ``text`` (not blank) with a header naming ``columns`` in any order.

    Returns the raw string columns keyed by name and the physical line of
    every data row.
    """
    records, lines = _read_records(text, path)
    count = len(records)
    first = 0
    while _is_blank(records[first]):  # the text is not blank, so this stops
        first += 1
    positions = _column_positions(records[first], lines[first], path, columns, no_header)
    width = len(records[first])
    end = count
    while end > first + 1 and _is_blank(records[end - 1]):
        end -= 1
    rows = records[first + 1 : end]
    row_lines = lines[first + 1 : end]
    if not rows:
        raise InstrumentError(
            f"no instruments: the file has a header (line {lines[first]}) but no data rows", path
        )
    bad = next((index for index, row in enumerate(rows) if len(row) != width), None)
    if bad is not None:
        if _is_blank(rows[bad]):
            raise InstrumentError("blank line between data rows", path, row_lines[bad])
        raise InstrumentError(
            f"wrong number of fields: expected {width}, got {len(rows[bad])}", path, row_lines[bad]
        )
    transposed: list[tuple[str, ...]] = list(zip(*rows, strict=True))
    raw: dict[str, Sequence[str]] = {
        column: transposed[position] for column, position in zip(columns, positions, strict=True)
    }
    return raw, row_lines
