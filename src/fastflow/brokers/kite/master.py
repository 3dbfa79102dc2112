"""Kite's instrument master ("instruments dump") -> :class:`~fastflow.instruments.Instruments`.

Kite publishes the tradable universe as a CSV file, frequently served
gzipped, with the twelve columns of :data:`KITE_COLUMNS` (any order), e.g.
``408065,1594,INFY,INFOSYS,0.0,,0.0,0.05,1,EQ,NSE,NSE``:

* ``instrument_token`` is the unsigned 32-bit id used on the ticker; it is
  ``exchange_token * 256 + segment_id``, and the segment id (the low byte)
  decides the price divisor of the binary packets (:func:`kite_price_divisor`);
  segment 9 (:data:`INDICES_SEGMENT_ID`) holds the indices, not tradable;
* ``last_price``, ``strike``, ``tick_size`` are decimals, ``lot_size`` and
  ``exchange_token`` integers, ``expiry`` ``YYYY-MM-DD`` or empty; ``name``
  may be empty; ``tradingsymbol`` may contain spaces (``NIFTY 50``).

An instrument is named ``"EXCHANGE:TRADINGSYMBOL"`` (``"NSE:INFY"``); token
and symbol are both unique.  :func:`load` reads a file, :func:`from_rows`
takes mappings (``kiteconnect``'s typed rows or CSV strings); both raise
:class:`~fastflow.instruments.InstrumentError` naming file, line and column.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from fastflow.instruments.errors import InstrumentError, _Where
from fastflow.instruments.files import _csv_columns, _read_text
from fastflow.instruments.model import Instruments, _object_array
from fastflow.instruments.parse import (
    _MAX_TOKEN,
    Converter,
    _convert_columns,
    _describe,
    _FieldError,
    _parse_count,
    _parse_expiry,
    _parse_float,
    _parse_int,
    _parse_nonnegative_float,
    _parse_required_str,
    _parse_str,
)
from fastflow.reference.broker_wire import KITE_SEGMENT_INDICES, price_divisor

__all__ = [
    "INDICES_SEGMENT_ID",
    "KITE_COLUMNS",
    "from_rows",
    "kite_price_divisor",
    "load",
    "segment_columns",
]

KITE_COLUMNS: Final[tuple[str, ...]] = (
    "instrument_token",
    "exchange_token",
    "tradingsymbol",
    "name",
    "last_price",
    "expiry",
    "strike",
    "tick_size",
    "lot_size",
    "instrument_type",
    "segment",
    "exchange",
)
"""The twelve columns of a Kite instruments dump, in Kite's order."""

INDICES_SEGMENT_ID: Final = KITE_SEGMENT_INDICES
"""Segment id (``token & 0xff``) of indices; they are not tradable."""

_COLUMN_SET: Final = frozenset(KITE_COLUMNS)
_EXPECTED_HEADER: Final = ",".join(KITE_COLUMNS)


def _build_divisor_table() -> npt.NDArray[np.int64]:
    """:func:`~fastflow.reference.broker_wire.price_divisor` (the twin of the hot
    path's) for each of the 256 segment ids, as one lookup array."""
    table = np.array([price_divisor(segment) for segment in range(256)], dtype=np.int64)
    table.flags.writeable = False
    return table


_PRICE_DIVISOR_BY_SEGMENT: Final = _build_divisor_table()


def kite_price_divisor(token: int) -> int:
    """The divisor that turns a raw Kite price of ``token`` into rupees
    (segment id = token & 0xff: CDS 1e7; BCD and NCO 1e4; others 100)."""
    return int(_PRICE_DIVISOR_BY_SEGMENT[token & 0xFF])


def segment_columns(
    token: npt.NDArray[np.uint32],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """``segment_id``, ``price_divisor`` and ``tradable`` of Kite instrument tokens."""
    segment_id = (token & np.uint32(0xFF)).astype(np.uint8, copy=False)
    return segment_id, _PRICE_DIVISOR_BY_SEGMENT[segment_id], segment_id != INDICES_SEGMENT_ID


def _parse_token(value: object) -> int:
    token = _parse_int(value)
    if token == 0:
        raise _FieldError("instrument_token must not be 0")
    if token < 0:
        raise _FieldError(f"instrument_token {token} is negative")
    if token > _MAX_TOKEN:
        raise _FieldError(f"instrument_token {token} does not fit in 32 bits (max {_MAX_TOKEN})")
    return token


_CONVERTERS: Final[Mapping[str, Converter]] = {
    "instrument_token": _parse_token,
    "exchange_token": _parse_count,
    "tradingsymbol": _parse_required_str,
    "name": _parse_str,
    "last_price": _parse_float,
    "expiry": _parse_expiry,
    "strike": _parse_float,
    "tick_size": _parse_nonnegative_float,
    "lot_size": _parse_count,
    "instrument_type": _parse_str,
    "segment": _parse_str,
    "exchange": _parse_required_str,
}


def load(path: str | os.PathLike[str], cls: type[Instruments] = Instruments) -> Instruments:
    """Load a Kite instruments dump, plain or gzipped (see
    :meth:`Instruments.from_kite_csv <fastflow.instruments.Instruments.from_kite_csv>`)."""
    text, display = _read_text(path)
    raw, row_lines = _csv_columns(text, display, KITE_COLUMNS)
    return _from_raw(raw, row_lines, display, cls)


def from_rows(rows: Iterable[Mapping[str, object]], cls: type[Instruments] = Instruments) -> Instruments:
    """Build from row mappings keyed by the twelve Kite column names (see
    :meth:`Instruments.from_kite_rows <fastflow.instruments.Instruments.from_kite_rows>`)."""
    raw: dict[str, list[object]] = {column: [] for column in KITE_COLUMNS}
    appenders = [(column, raw[column].append) for column in KITE_COLUMNS]
    count = 0
    for index, row in enumerate(rows):
        line = index + 2
        if not isinstance(row, Mapping):
            raise InstrumentError(
                f"expected a mapping of column name to value, got {_describe(row)}", None, line
            )
        keys = row.keys()
        if keys != _COLUMN_SET:
            unknown = [key for key in keys if key not in _COLUMN_SET]
            if unknown:
                listed = ", ".join(repr(key) for key in unknown)
                raise InstrumentError(
                    f"unknown column(s): {listed}; expected the columns {_EXPECTED_HEADER}",
                    None,
                    line,
                    str(unknown[0]),
                )
            missing = [column for column in KITE_COLUMNS if column not in keys]
            listed = ", ".join(repr(column) for column in missing)
            raise InstrumentError(f"missing column(s): {listed}", None, line, missing[0])
        for column, append in appenders:
            append(row[column])
        count += 1
    if count == 0:
        raise InstrumentError("no instruments: no rows given")
    return _from_raw(raw, range(2, count + 2), None, cls)


def _from_raw(
    raw: Mapping[str, Sequence[object]], lines: Sequence[int], path: str | None, cls: type[Instruments]
) -> Instruments:
    values = _convert_columns(raw, KITE_COLUMNS, _CONVERTERS, _Where(path, lines))
    return cls(
        instrument_token=np.array(values["instrument_token"], dtype=np.int64),
        exchange_token=np.array(values["exchange_token"], dtype=np.int64),
        tradingsymbol=_object_array(values["tradingsymbol"]),
        name=_object_array(values["name"]),
        last_price=np.array(values["last_price"], dtype=np.float64),
        expiry=np.array(values["expiry"], dtype=np.int64).view("datetime64[D]"),
        strike=np.array(values["strike"], dtype=np.float64),
        tick_size=np.array(values["tick_size"], dtype=np.float64),
        lot_size=np.array(values["lot_size"], dtype=np.int64),
        instrument_type=_object_array(values["instrument_type"]),
        segment=_object_array(values["segment"]),
        exchange=_object_array(values["exchange"]),
        path=path,
        lines=lines,
    )
