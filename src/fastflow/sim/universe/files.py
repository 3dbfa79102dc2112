"""The universe as the files the brokers serve: Kite's instruments CSV and
Upstox's instruments JSON, each optionally gzipped (reproducibly: mtime 0)."""

from __future__ import annotations

import datetime
import gzip
import json
import math
import os
from collections.abc import Iterable, Mapping

from fastflow.instruments import KITE_COLUMNS

__all__ = ["COLUMNS", "kite_csv_bytes", "upstox_json_bytes", "write_kite_csv", "write_upstox_json"]

#: The instruments-dump columns, in Kite's order.
COLUMNS: tuple[str, ...] = KITE_COLUMNS


def _format_number(value: object) -> str:
    """Kite style: integral floats without a fraction (``0``, ``26000``), else shortest repr."""
    if isinstance(value, bool):
        raise TypeError("boolean is not a dump value")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"non-finite number {value!r}")
        return str(int(value)) if value.is_integer() else repr(value)
    raise TypeError(f"expected a number, got {value!r}")


def _format_expiry(value: object) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, datetime.date):
        return value.isoformat()
    raise TypeError(f"expiry must be a date or None, got {value!r}")


def _plain(value: object, column: str) -> str:
    text = str(value)
    if any(c in text for c in ',"\r\n'):
        raise ValueError(f"{column} {text!r} contains a CSV delimiter or quote")
    return text


def _quoted(value: object) -> str:
    return '"' + str(value).replace('"', '""') + '"'


def _csv_text(rows: Iterable[Mapping[str, object]]) -> str:
    lines = [",".join(COLUMNS)]
    for row in rows:
        fields = (
            _format_number(row["instrument_token"]),
            _format_number(row["exchange_token"]),
            _plain(row["tradingsymbol"], "tradingsymbol"),
            _quoted(row["name"]),
            _format_number(row["last_price"]),
            _format_expiry(row["expiry"]),
            _format_number(row["strike"]),
            _format_number(row["tick_size"]),
            _format_number(row["lot_size"]),
            _plain(row["instrument_type"], "instrument_type"),
            _plain(row["segment"], "segment"),
            _plain(row["exchange"], "exchange"),
        )
        lines.append(",".join(fields))
    return "\n".join(lines) + "\n"


def write_kite_csv(rows: Iterable[Mapping[str, object]], path: str | os.PathLike[str]) -> None:
    """Write ``rows`` as Kite's instruments CSV; gzip it when ``path`` ends with ``.gz``.

    The header is Kite's column line and ``name`` is always double-quoted,
    as in Kite's dump; numbers are written so that
    ``KiteConnect._parse_instruments`` reads back the same values (integral
    floats as ``0``/``26000``, others in shortest round-trip form); ``expiry``
    is ``YYYY-MM-DD`` or empty. The gzip stream has a zero mtime, so equal
    rows give byte-identical files.
    """
    data = _csv_text(rows).encode("utf-8")
    _write(data, path)



def _json_text(rows: Iterable[Mapping[str, object]]) -> str:
    lines = [
        json.dumps(dict(row), ensure_ascii=False, separators=(",", ":"), allow_nan=False) for row in rows
    ]
    if not lines:
        return "[]\n"
    return "[\n" + ",\n".join(lines) + "\n]\n"


def write_upstox_json(rows: Iterable[Mapping[str, object]], path: str | os.PathLike[str]) -> None:
    """Write ``rows`` as an Upstox instruments JSON array; gzip it when ``path`` ends with ``.gz``.

    One object per line (so a JSON syntax error's line is the record's
    line + 1), compact separators, UTF-8, fields in the given order;
    non-finite numbers and non-JSON values raise :class:`ValueError` /
    :class:`TypeError`.  The gzip stream has a zero mtime and no file name,
    so equal rows give byte-identical files.
    """
    data = _json_text(rows).encode("utf-8")
    _write(data, path)


def _write(data: bytes, path: str | os.PathLike[str]) -> None:
    """Write ``data`` to ``path``, gzipped (mtime 0: reproducible) when it ends in .gz."""
    target = os.fspath(path)
    if target.endswith(".gz"):
        with (
            open(target, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        ):
            gz.write(data)
    else:
        with open(target, "wb") as fh:
            fh.write(data)


def kite_csv_bytes(rows: Iterable[Mapping[str, object]], *, gz: bool = True) -> bytes:
    """``rows`` as the bytes of Kite's instruments CSV (what :func:`write_kite_csv`
    writes), gzipped (mtime 0) by default: the body the simulator's ``GET /instruments`` serves."""
    data = _csv_text(rows).encode("utf-8")
    return gzip.compress(data, mtime=0) if gz else data


def upstox_json_bytes(rows: Iterable[Mapping[str, object]], *, gz: bool = True) -> bytes:
    """``rows`` as the bytes of an Upstox instruments JSON (what :func:`write_upstox_json`
    writes), gzipped (mtime 0) by default: the simulator's ``complete.json.gz``."""
    data = _json_text(rows).encode("utf-8")
    return gzip.compress(data, mtime=0) if gz else data
