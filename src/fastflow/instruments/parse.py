"""Field converters shared by every broker's instrument-master loader.

A per-value converter takes a raw CSV string or an already typed value
(kiteconnect rows, decoded JSON) and returns the stored value or raises
:class:`_FieldError` with a reason; :func:`_convert_columns` runs a table of
them over whole columns and reports the earliest bad row through a
:class:`~fastflow.instruments.errors._Where`.  A loader may give a column a
bulk ("fast") converter: it must return exactly what the per-value
converter would, and raise :class:`_Fallback` for anything else.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Final

import numpy as np

from fastflow.instruments.errors import _Where

#: A per-value converter and a bulk (column) converter.
Converter = Callable[[object], object]
FastConverter = Callable[[Sequence[object]], list[object]]

_MAX_TOKEN: Final = 0xFFFFFFFF
_MAX_INT64: Final = 2**63 - 1
_NAT: Final = int(np.iinfo(np.int64).min)  # datetime64 NaT as int64
_EPOCH_ORDINAL: Final = _dt.date(1970, 1, 1).toordinal()
_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class _FieldError(Exception):
    """A value failed conversion; the caller adds path, line and column."""


class _Fallback(Exception):
    """A fast column converter declined; use the per-field converter instead."""


def _describe(value: object) -> str:
    return f"{type(value).__name__} {value!r}"


def _value_types(values: Sequence[object]) -> set[type]:
    return set(map(type, values))


def _parse_int(value: object) -> int:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise _FieldError("empty value, expected an integer")
        if text.isascii() and "_" not in text:
            try:
                return int(text)
            except ValueError:
                pass
        raise _FieldError(f"cannot parse {value!r} as an integer")
    if isinstance(value, (bool, np.bool_)):
        raise _FieldError(f"expected an integer, got {_describe(value)}")
    if isinstance(value, (int, np.integer)):
        return int(value)
    raise _FieldError(f"expected an integer, got {_describe(value)}")


def _parse_count(value: object) -> int:
    number = _parse_int(value)
    if number < 0:
        raise _FieldError(f"{number} is negative")
    if number > _MAX_INT64:
        raise _FieldError(f"{number} is too large")
    return number


def _parse_float(value: object) -> float:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise _FieldError("empty value, expected a number")
        try:
            if not text.isascii() or "_" in text:
                raise ValueError(text)
            number = float(text)
        except ValueError:
            raise _FieldError(f"cannot parse {value!r} as a number") from None
    elif isinstance(value, (bool, np.bool_)):
        raise _FieldError(f"expected a number, got {_describe(value)}")
    elif isinstance(value, (int, float, np.integer, np.floating)):
        try:
            number = float(value)
        except OverflowError:
            raise _FieldError("integer too large to convert to a number") from None
    else:
        raise _FieldError(f"expected a number, got {_describe(value)}")
    if not math.isfinite(number):
        raise _FieldError(f"{value!r} is not a finite number")
    return number


def _parse_nonnegative_float(value: object) -> float:
    number = _parse_float(value)
    if number < 0:
        raise _FieldError(f"{value!r} is negative")
    return number


@functools.lru_cache(maxsize=4096)
def _parse_date_text(text: str) -> int:
    stripped = text.strip()
    if not stripped:
        return _NAT
    if _DATE_RE.fullmatch(stripped):
        try:
            return _dt.date.fromisoformat(stripped).toordinal() - _EPOCH_ORDINAL
        except ValueError:
            pass
    raise _FieldError(f"cannot parse {text!r} as a date (expected YYYY-MM-DD)")


def _parse_expiry(value: object) -> int:
    """Return days since 1970-01-01, or the NaT sentinel for no expiry."""
    if isinstance(value, str):
        return _parse_date_text(value)
    if value is None:
        return _NAT
    if isinstance(value, _dt.datetime):
        value = value.date()
    if isinstance(value, _dt.date):
        return value.toordinal() - _EPOCH_ORDINAL
    raise _FieldError(f"expected a date, got {_describe(value)}")


def _parse_str(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if value is None:
        return ""
    raise _FieldError(f"expected a string, got {_describe(value)}")


def _parse_required_str(value: object) -> str:
    text = _parse_str(value)
    if not text:
        raise _FieldError("must not be empty")
    return text


def _key_segment(key: str) -> str | None:
    """The SEGMENT of a well-formed ``SEGMENT|IDENTIFIER`` instrument key, else ``None``."""
    segment, bar, identifier = key.partition("|")
    if (
        not bar
        or "|" in identifier
        or not segment
        or not identifier
        or segment != segment.strip()
        or identifier != identifier.strip()
    ):
        return None
    return segment


class _ColumnError(Exception):
    """A field failed conversion: 0-based index, column name and reason."""

    def __init__(self, index: int, column: str, reason: str) -> None:
        super().__init__(index, column, reason)
        self.index = index
        self.column = column
        self.reason = reason


def _convert_columns(
    raw: Mapping[str, Sequence[object]],
    columns: Sequence[str],
    converters: Mapping[str, Converter],
    where: _Where,
    fast_converters: Mapping[str, FastConverter] | None = None,
) -> dict[str, list[object]]:
    """Convert every raw column; raise ``where.error`` for the earliest bad row."""
    try:
        return _convert_raw(raw, columns, converters, fast_converters or {})
    except _ColumnError as exc:
        raise where.error(exc.reason, exc.index, exc.column) from None


def _convert_raw(
    raw: Mapping[str, Sequence[object]],
    columns: Sequence[str],
    converters: Mapping[str, Converter],
    fast_converters: Mapping[str, FastConverter],
) -> dict[str, list[object]]:
    """Convert every raw column; raise _ColumnError for the earliest bad row.

    Each column first goes through a bulk converter (if it has one) that only
    accepts input the per-field converter would accept with the same result;
    anything unusual (or wrong) is redone field by field for exact error
    reporting.  Among the bad fields of the earliest bad row, the first in
    ``columns`` order is reported.
    """
    converted: dict[str, list[object]] = {}
    failures: list[tuple[int, int, str, str]] = []
    for order, column in enumerate(columns):
        values = raw[column]
        fast = fast_converters.get(column)
        if fast is not None:
            try:
                converted[column] = fast(values)
                continue
            except _Fallback:
                pass
        convert = converters[column]
        try:
            converted[column] = [convert(value) for value in values]
        except _FieldError:
            for index, value in enumerate(values):
                try:
                    convert(value)
                except _FieldError as exc:
                    failures.append((index, order, column, str(exc)))
                    break
    if failures:
        index, _, column, reason = min(failures)
        raise _ColumnError(index, column, reason)
    return converted
