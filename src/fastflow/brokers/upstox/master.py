"""Upstox's instrument master -> :class:`~fastflow.instruments.Instruments`.

Upstox publishes its instruments as a JSON array of objects, usually
gzipped, and formerly as a CSV file with the columns of
:data:`UPSTOX_CSV_COLUMNS`.  Instruments are identified by an *instrument
key* ``SEGMENT|IDENTIFIER``: the ISIN for equities (``NSE_EQ|INE009A01021``),
the index name for indices (``NSE_INDEX|Nifty 50``), the exchange token for
derivatives (``NSE_FO|45450``).  Exchange tokens are reused after expiries,
so look-ups go by instrument key or ``"EXCHANGE:TRADING_SYMBOL"`` only.
Prices stream as doubles; the segment decides the fixed-point divisor
fastflow stores them with (:func:`upstox_price_divisor`) and its
``segment_id`` (:data:`UPSTOX_SEGMENT_IDS`).  :func:`load` reads a file,
:func:`from_rows` takes decoded JSON objects; both raise
:class:`~fastflow.instruments.InstrumentError` naming the record (JSON) or
line (CSV) and the field.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Final, cast

import numpy as np
import numpy.typing as npt

from fastflow.brokers.kite.master import INDICES_SEGMENT_ID
from fastflow.instruments.errors import InstrumentError, _Where
from fastflow.instruments.files import _csv_columns, _read_text
from fastflow.instruments.model import Instruments, _object_array
from fastflow.instruments.parse import (
    _EPOCH_ORDINAL,
    _MAX_INT64,
    _MAX_TOKEN,
    _NAT,
    Converter,
    FastConverter,
    _convert_columns,
    _describe,
    _Fallback,
    _FieldError,
    _key_segment,
    _parse_count,
    _parse_expiry,
    _parse_float,
    _parse_nonnegative_float,
    _parse_required_str,
    _parse_str,
    _value_types,
)

__all__ = [
    "UPSTOX_CSV_COLUMNS",
    "UPSTOX_SEGMENT_IDS",
    "from_rows",
    "load",
    "segment_columns",
    "upstox_price_divisor",
    "upstox_segment_id",
]

UPSTOX_CSV_COLUMNS: Final[tuple[str, ...]] = (
    "instrument_key",
    "exchange_token",
    "tradingsymbol",
    "name",
    "last_price",
    "expiry",
    "strike",
    "tick_size",
    "lot_size",
    "instrument_type",
    "option_type",
    "exchange",
)
"""The twelve columns of Upstox's (deprecated) instruments CSV, in Upstox's order."""

UPSTOX_SEGMENT_IDS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "NSE_EQ": 1,
        "NSE_FO": 2,
        "NCD_FO": 3,
        "BSE_EQ": 4,
        "BSE_FO": 5,
        "BCD_FO": 6,
        "MCX_FO": 7,
        "NSE_INDEX": INDICES_SEGMENT_ID,
        "BSE_INDEX": INDICES_SEGMENT_ID,
        "MCX_INDEX": INDICES_SEGMENT_ID,
        "NSE_COM": 10,
    }
)
"""``segment_id`` of each Upstox segment, equal to Kite's id where the meaning
matches (NSE equity 1, NSE F&O 2, NSE currency 3, ..., indices 9); any other
segment gets 0."""

_UPSTOX_CURRENCY_SEGMENTS: Final = frozenset({"NCD_FO", "BCD_FO"})
_UPSTOX_CURRENCY_DIVISOR: Final = 10_000_000
_UPSTOX_DEFAULT_DIVISOR: Final = 10_000
#: Exchange of the segments whose name does not start with it (CSV only).
_UPSTOX_SEGMENT_EXCHANGE: Final[Mapping[str, str]] = MappingProxyType({"NCD_FO": "NSE", "BCD_FO": "BSE"})
_IST_OFFSET_MS: Final = (5 * 60 + 30) * 60 * 1000
_MS_PER_DAY: Final = 86_400_000
_MIN_EXPIRY_DAYS: Final = _dt.date.min.toordinal() - _EPOCH_ORDINAL
_MAX_EXPIRY_DAYS: Final = _dt.date.max.toordinal() - _EPOCH_ORDINAL
_NONE_TYPE: Final = type(None)


def upstox_segment_id(segment: str) -> int:
    """fastflow's ``segment_id`` for an Upstox segment (:data:`UPSTOX_SEGMENT_IDS`; unknown -> 0)."""
    return UPSTOX_SEGMENT_IDS.get(segment, 0)


def upstox_price_divisor(segment: str) -> int:
    """The fixed-point divisor fastflow uses for prices of an Upstox segment.

    Upstox sends prices as doubles; fastflow stores them as integers with 7
    decimals for the currency segments (``NCD_FO``, ``BCD_FO``: 10,000,000)
    and 4 decimals for everything else (10,000).
    """
    return _UPSTOX_CURRENCY_DIVISOR if segment in _UPSTOX_CURRENCY_SEGMENTS else _UPSTOX_DEFAULT_DIVISOR


def segment_columns(
    segments: Sequence[str],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """``segment_id``, ``price_divisor`` and ``tradable`` of Upstox segments (``_INDEX`` ones are not)."""
    return (
        np.array([upstox_segment_id(seg) for seg in segments], dtype=np.uint8),
        np.array([upstox_price_divisor(seg) for seg in segments], dtype=np.int64),
        np.array([not seg.endswith("_INDEX") for seg in segments], dtype=np.bool_),
    )


# --------------------------------------------------------------------------
# Field converters.  Upstox JSON values are already typed (numbers, strings,
# null); the deprecated CSV gives strings, empty for absent values.


def _parse_instrument_key(value: object) -> str:
    if not isinstance(value, str):
        raise _FieldError(f"expected a string, got {_describe(value)}")
    key = value.strip()
    if not key:
        raise _FieldError("must not be empty")
    bars = key.count("|")
    if bars != 1:
        raise _FieldError(
            f"{value!r} is not an instrument key: expected 'SEGMENT|IDENTIFIER' with exactly one '|', "
            f"found {bars}"
        )
    segment, _, identifier = key.partition("|")
    for part, text in (("SEGMENT", segment), ("IDENTIFIER", identifier)):
        if not text.strip():
            raise _FieldError(f"{value!r} is not an instrument key: empty {part} in 'SEGMENT|IDENTIFIER'")
        if text != text.strip():
            raise _FieldError(f"{value!r} is not an instrument key: whitespace around '|'")
    return key


def _exchange_of_segment(value: str) -> str:
    """The exchange of an Upstox segment name (``NSE_EQ`` -> ``NSE``); other values unchanged."""
    if "_" not in value:
        return value
    return _UPSTOX_SEGMENT_EXCHANGE.get(value) or value.partition("_")[0]


def _json_kind(value: object) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _describe_short(value: object, limit: int = 60) -> str:
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(value).__name__} {text}"


def _parse_segment(value: object) -> str | None:
    """The optional ``segment`` field; ``None`` when absent (it is checked against the key later)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip()
    raise _FieldError(f"expected a string, got {_describe(value)}")


def _parse_exchange_token(value: object) -> int:
    """A numeric exchange token; null and non-numeric strings give 0."""
    if value is None:
        return 0
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()):
            return 0
        if len(text.lstrip("0")) > len(str(_MAX_INT64)) or int(text) > _MAX_INT64:
            raise _FieldError(f"{text[:30]}{'...' if len(text) > 30 else ''} is too large")
        return int(text)
    return _parse_count(value)


def _parse_lot_size(value: object) -> int:
    """A non-negative integer; JSON floats with an integral value (``75.0``) are accepted."""
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value) or not float(value).is_integer():
            raise _FieldError(f"{value!r} is not an integer")
        value = int(value)
    return _parse_count(value)


def _parse_epoch_ms(value: object) -> int:
    """Expiry in epoch milliseconds -> days since 1970-01-01 of that instant in IST (UTC+05:30)."""
    if value is None:
        return _NAT
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _FieldError(f"expected epoch milliseconds (a number) or null, got {_describe(value)}")
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise _FieldError(f"{value!r} is not a finite number")
        millis = math.floor(value)
    else:
        millis = int(value)
    days = (millis + _IST_OFFSET_MS) // _MS_PER_DAY
    if not _MIN_EXPIRY_DAYS <= days <= _MAX_EXPIRY_DAYS:
        raise _FieldError(f"{value!r} epoch milliseconds is out of range (years 1 to 9999)")
    return days


def _optional(convert: Converter, default: object) -> Converter:
    """``convert``, except that null and blank strings give ``default``."""

    def parse(value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return default
        return convert(value)

    return parse


_COLUMNS: Final[tuple[str, ...]] = (
    "instrument_key",
    "segment",
    "exchange",
    "tradingsymbol",
    "name",
    "exchange_token",
    "expiry",
    "strike",
    "tick_size",
    "lot_size",
    "instrument_type",
    "last_price",
)
"""Internal names of the Upstox fields fastflow reads (Kite's names where they exist)."""

_JSON_NAMES: Final[Mapping[str, str]] = MappingProxyType({"tradingsymbol": "trading_symbol", "strike": "strike_price"})
"""Internal name -> JSON field name, where they differ."""

_JSON_FIELDS: Final[tuple[tuple[str, str], ...]] = tuple(
    (column, _JSON_NAMES.get(column, column)) for column in _COLUMNS
)
_REQUIRED: Final[tuple[str, ...]] = ("instrument_key", "exchange", "trading_symbol")
"""JSON fields every record must have (not null)."""

_CONVERTERS: Final[Mapping[str, Converter]] = {
    "instrument_key": _parse_instrument_key,
    "segment": _parse_segment,
    "exchange": _parse_required_str,
    "tradingsymbol": _parse_required_str,
    "name": _parse_str,
    "exchange_token": _parse_exchange_token,
    "expiry": _parse_epoch_ms,
    "strike": _optional(_parse_float, 0.0),
    "tick_size": _optional(_parse_nonnegative_float, 0.0),
    "lot_size": _optional(_parse_lot_size, 0),
    "instrument_type": _parse_str,
    "last_price": _optional(_parse_float, 0.0),
}
_CSV_CONVERTERS: Final[Mapping[str, Converter]] = {
    **_CONVERTERS,
    "expiry": _parse_expiry,  # YYYY-MM-DD or empty
}


# --------------------------------------------------------------------------
# Fast twins: bulk versions of some converters above, for the columns where
# they pay off on real-sized files (numbers and keys; text columns do not).
# Each returns exactly what the per-value converter returns for every value,
# or raises _Fallback; tests/instruments/test_fast_converters.py checks that.


def _fast_instrument_keys(values: Sequence[object]) -> list[object]:
    """Instrument keys that are all strings of the form ``SEGMENT|IDENTIFIER``."""
    if _value_types(values) != {str}:
        raise _Fallback
    keys = [text.strip() for text in cast("Sequence[str]", values)]
    if None in map(_key_segment, keys):
        raise _Fallback
    return list(keys)


def _fast_optional_floats(values: Sequence[object], nonnegative: bool) -> list[object]:
    """JSON numbers (finite; >= 0 if ``nonnegative``) or null (-> 0.0)."""
    if not _value_types(values) <= {float, int, _NONE_TYPE}:
        raise _Fallback
    try:
        numbers = [0.0 if value is None else float(cast("float", value)) for value in values]
    except OverflowError:
        raise _Fallback from None
    array = np.array(numbers, dtype=np.float64)
    if not np.isfinite(array).all() or (nonnegative and (array < 0).any()):
        raise _Fallback
    return list(numbers)


def _fast_optional_counts(values: Sequence[object]) -> list[object]:
    """JSON ints or null (-> 0), within 0..2**63-1."""
    if not _value_types(values) <= {int, _NONE_TYPE}:
        raise _Fallback
    numbers = [0 if value is None else cast("int", value) for value in values]
    if numbers and (min(numbers) < 0 or max(numbers) > _MAX_INT64):
        raise _Fallback
    return list(numbers)


def _fast_epoch_ms(values: Sequence[object]) -> list[object]:
    """Expiries that are all JSON ints or null."""
    if not _value_types(values) <= {int, _NONE_TYPE}:
        raise _Fallback
    millis = [cast("int", value) for value in values if value is not None]
    if millis:
        low = (min(millis) + _IST_OFFSET_MS) // _MS_PER_DAY
        high = (max(millis) + _IST_OFFSET_MS) // _MS_PER_DAY
        if low < _MIN_EXPIRY_DAYS or high > _MAX_EXPIRY_DAYS:
            raise _Fallback
    return [
        _NAT if value is None else (cast("int", value) + _IST_OFFSET_MS) // _MS_PER_DAY for value in values
    ]


_FAST_CONVERTERS: Final[Mapping[str, FastConverter]] = {
    "instrument_key": _fast_instrument_keys,
    "expiry": _fast_epoch_ms,
    "strike": functools.partial(_fast_optional_floats, nonnegative=False),
    "tick_size": functools.partial(_fast_optional_floats, nonnegative=True),
    "lot_size": _fast_optional_counts,
    "last_price": functools.partial(_fast_optional_floats, nonnegative=False),
}
"""Fast twins of :data:`_CONVERTERS` (JSON records)."""

_CSV_FAST_CONVERTERS: Final[Mapping[str, FastConverter]] = {"instrument_key": _fast_instrument_keys}
"""Fast twins of :data:`_CSV_CONVERTERS` (the others only take JSON numbers)."""


# --------------------------------------------------------------------------
# loaders


def load(path: str | os.PathLike[str], cls: type[Instruments] = Instruments) -> Instruments:
    """Load an Upstox instruments file: JSON, gzipped JSON or the older CSV (see
    :meth:`Instruments.from_upstox <fastflow.instruments.Instruments.from_upstox>`)."""
    text, display = _read_text(path)
    if text.lstrip()[:1] in "[{":
        return _from_json(text, display, cls)
    return _from_csv(text, display, cls)


def from_rows(rows: Iterable[Mapping[str, object]], cls: type[Instruments] = Instruments) -> Instruments:
    """Build from Upstox instrument objects, e.g. the decoded JSON file (see
    :meth:`Instruments.from_upstox_rows <fastflow.instruments.Instruments.from_upstox_rows>`)."""
    if isinstance(rows, Mapping):
        raise InstrumentError("expected an iterable of instrument objects, got a single mapping")
    records = list(rows)
    if not records:
        raise InstrumentError("no instruments: no rows given")
    return _from_records(records, None, cls)


def _from_json(text: str, path: str, cls: type[Instruments]) -> Instruments:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InstrumentError(
            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", path, exc.lineno
        ) from None
    except (ValueError, RecursionError) as exc:  # e.g. too many digits, too deeply nested
        raise InstrumentError(f"invalid JSON: {exc}", path) from None
    if not isinstance(document, list):
        raise InstrumentError(
            f"not a JSON array: the file holds a JSON {_json_kind(document)}; "
            "expected a top-level array of instrument objects",
            path,
        )
    if not document:
        raise InstrumentError("no instruments: the JSON array is empty", path)
    return _from_records(document, path, cls)


def _from_records(records: Sequence[object], path: str | None, cls: type[Instruments]) -> Instruments:
    where = _Where(path, range(1, len(records) + 1), "record", _JSON_NAMES)
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise where.error(f"expected an object (field name -> value), got {_describe_short(record)}", index)
        for field in _REQUIRED:
            if record.get(field) is None:
                state = "is null" if field in record else "is missing"
                raise where.error(f"required field {field!r} {state}", index, field)
    mappings = cast("Sequence[Mapping[str, object]]", records)
    raw = {column: [record.get(field) for record in mappings] for column, field in _JSON_FIELDS}
    values = _convert_columns(raw, _COLUMNS, _CONVERTERS, where, _FAST_CONVERTERS)
    # Upstox's own weekly/monthly statement of an option, for its Kite-style alias
    # (fastflow.instruments.symbols); anything but a boolean counts as not given.
    weekly: list[bool | None] = [flag if isinstance(flag := record.get("weekly"), bool) else None
                                 for record in mappings]
    return _build(values, where, cls, csv_exchange=False,
                  weekly=weekly if any(flag is not None for flag in weekly) else None)


def _from_csv(text: str, path: str, cls: type[Instruments]) -> Instruments:
    raw_csv, lines = _csv_columns(
        text,
        path,
        UPSTOX_CSV_COLUMNS,
        no_header="not a JSON array (that would start with '[') and the CSV header row is missing",
    )
    raw: dict[str, Sequence[object]] = {column: raw_csv[column] for column in _COLUMNS if column != "segment"}
    raw["segment"] = [None] * len(lines)
    where = _Where(path, lines)
    values = _convert_columns(raw, _COLUMNS, _CSV_CONVERTERS, where, _CSV_FAST_CONVERTERS)
    return _build(values, where, cls, csv_exchange=True)


def _build(
    values: Mapping[str, list[object]], where: _Where, cls: type[Instruments], *, csv_exchange: bool,
    weekly: Sequence[bool | None] | None = None,
) -> Instruments:
    keys = cast("list[str]", values["instrument_key"])
    segments: list[str] = []
    for index, (key, segment) in enumerate(zip(keys, values["segment"], strict=True)):
        prefix = key.partition("|")[0]
        if segment is not None and segment != prefix:
            raise where.error(
                f"segment {segment!r} does not match the SEGMENT part {prefix!r} of instrument_key {key!r}",
                index,
                "segment",
            )
        segments.append(prefix)
    exchanges = cast("list[str]", values["exchange"])
    if csv_exchange:
        exchanges = [_exchange_of_segment(exchange) for exchange in exchanges]
    exchange_tokens = cast("list[int]", values["exchange_token"])
    tokens = [token if token <= _MAX_TOKEN else 0 for token in exchange_tokens]
    instruments = cls.__new__(cls)
    instruments._init(
        instrument_token=np.array(tokens, dtype=np.int64),
        exchange_token=np.array(exchange_tokens, dtype=np.int64),
        tradingsymbol=_object_array(values["tradingsymbol"]),
        name=_object_array(values["name"]),
        last_price=np.array(values["last_price"], dtype=np.float64),
        expiry=np.array(values["expiry"], dtype=np.int64).view("datetime64[D]"),
        strike=np.array(values["strike"], dtype=np.float64),
        # Upstox's JSON states tick_size in paise; the column is rupees for every broker.
        tick_size=np.array(values["tick_size"], dtype=np.float64) / (1.0 if csv_exchange else 100.0),
        lot_size=np.array(values["lot_size"], dtype=np.int64),
        instrument_type=_object_array(values["instrument_type"]),
        segment=_object_array(segments),
        exchange=_object_array(exchanges),
        instrument_key=_object_array(keys),
        broker="upstox",
        where=where,
        weekly=weekly,
    )
    return instruments
