"""Instrument masters ("instruments dumps") for Zerodha Kite and Upstox.

Kite publishes the tradable universe as a CSV file, frequently served gzipped,
with exactly these twelve columns::

    instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,
    strike,tick_size,lot_size,instrument_type,segment,exchange

for example::

    408065,1594,INFY,INFOSYS,0.0,,0.0,0.05,1,EQ,NSE,NSE
    256265,1001,NIFTY 50,NIFTY 50,0.0,,0.0,0.0,0,EQ,INDICES,NSE
    5720578,22346,NIFTY159500CE,,23.0,2015-12-31,9500.0,0.05,75,CE,NFO-OPT,NFO

Field semantics:

* ``instrument_token`` is the unsigned 32-bit id used on the streaming
  websocket.  It is ``exchange_token * 256 + segment_id``; the low byte
  (``token & 0xff``) is the *segment id*, which decides the price divisor of
  the binary tick packets: 3 (CDS) uses 10,000,000, 6 (BCD) and 12 (NCO) use
  10,000 and every other segment uses 100.  Segment id 9 holds the indices,
  which stream values but are not tradable.
* ``last_price``, ``strike`` and ``tick_size`` are decimal numbers,
  ``lot_size`` and ``exchange_token`` integers.
* ``expiry`` is ``YYYY-MM-DD`` or empty (equities, indices); ``name`` may be
  empty; ``tradingsymbol`` may contain spaces (``NIFTY 50``).  Fields follow
  the usual CSV quoting rules; surrounding whitespace is stripped.

Symbol convention: an instrument is named by ``"EXCHANGE:TRADINGSYMBOL"``,
exactly as in Kite's REST API, e.g. ``"NSE:INFY"``, ``"NSE:NIFTY 50"`` or
``"NFO:NIFTY159500CE"``.  Both the token and the symbol are unique within one
dump, and either can be used to look an instrument up.

:class:`Instruments` stores the dump column-wise in read-only numpy arrays,
one entry per *slot* (the 0-based row index in file order), plus dict indexes
for token and symbol lookups.  Every malformed input raises
:class:`InstrumentError`, which names the file, the physical line number
(the header is line 1) and the column where that is known.

Upstox (:meth:`Instruments.from_upstox`) publishes its instrument master as a
JSON array of objects, usually gzipped, and formerly as a CSV file with the
columns of :data:`UPSTOX_CSV_COLUMNS`.  Instruments are identified by an
*instrument key* ``SEGMENT|IDENTIFIER``: the ISIN for equities
(``NSE_EQ|INE009A01021``), the index name for indices
(``NSE_INDEX|Nifty 50``) and the exchange token for derivatives
(``NSE_FO|45450``).  The exchange token is not unique (exchanges reuse it
after an expiry), so Upstox instruments are looked up by instrument key or by
``"EXCHANGE:TRADING_SYMBOL"`` only.  Upstox streams prices as doubles; the
segment decides the fixed-point divisor fastflow stores them with
(:func:`upstox_price_divisor`).
"""

from __future__ import annotations

import csv
import datetime as _dt
import functools
import gzip
import io
import json
import math
import os
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Final, cast

import numpy as np
import numpy.typing as npt

__all__ = [
    "INDICES_SEGMENT_ID",
    "KITE_COLUMNS",
    "UPSTOX_CSV_COLUMNS",
    "UPSTOX_SEGMENT_IDS",
    "InstrumentError",
    "Instruments",
    "kite_price_divisor",
    "upstox_price_divisor",
    "upstox_segment_id",
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

INDICES_SEGMENT_ID: Final = 9
"""Segment id (``token & 0xff``) of indices; they are not tradable."""

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

_COLUMN_SET: Final = frozenset(KITE_COLUMNS)
_EXPECTED_HEADER: Final = ",".join(KITE_COLUMNS)
_MAX_TOKEN: Final = 0xFFFFFFFF
_MAX_INT64: Final = 2**63 - 1
_NAT: Final = int(np.iinfo(np.int64).min)  # datetime64 NaT as int64
_EPOCH_ORDINAL: Final = _dt.date(1970, 1, 1).toordinal()
_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_GZIP_MAGIC: Final = b"\x1f\x8b"
_MIN_EXPIRY_DAYS: Final = _dt.date.min.toordinal() - _EPOCH_ORDINAL
_MAX_EXPIRY_DAYS: Final = _dt.date.max.toordinal() - _EPOCH_ORDINAL


def _build_divisor_table() -> npt.NDArray[np.int64]:
    table = np.full(256, 100, dtype=np.int64)
    table[3] = 10_000_000  # cds
    table[6] = 10_000  # bcd
    table[12] = 10_000  # nco
    table.flags.writeable = False
    return table


_PRICE_DIVISOR_BY_SEGMENT: Final = _build_divisor_table()


def kite_price_divisor(token: int) -> int:
    """The divisor that turns a raw Kite price of ``token`` into rupees
    (segment id = token & 0xff: CDS 1e7; BCD and NCO 1e4; others 100)."""
    return int(_PRICE_DIVISOR_BY_SEGMENT[token & 0xFF])


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


class InstrumentError(ValueError):
    """Bad instrument master input.

    Attributes:
        path: the file the data came from, or ``None`` (e.g. for
            :meth:`Instruments.from_kite_rows`).
        line: 1-based physical line number in the file (the header is
            line 1), or ``None`` when the problem is not tied to a line.
            When ``unit`` is ``"record"`` it is instead the 1-based index of
            an object in a JSON array (or in the rows given to
            :meth:`Instruments.from_upstox_rows`).
        column: the column name involved (for JSON records: the field
            name), or ``None``.
        reason: the message without the location prefix.
        unit: ``"line"`` or ``"record"``: what ``line`` counts.  The message
            reads ``path:LINE: column 'c': ...`` for lines and
            ``path: record N: field 'f': ...`` for records.
    """

    def __init__(
        self,
        reason: str,
        path: str | None = None,
        line: int | None = None,
        column: str | None = None,
        unit: str = "line",
    ) -> None:
        if unit not in ("line", "record"):
            raise ValueError(f"unit must be 'line' or 'record', not {unit!r}")
        self.reason = reason
        self.path = path
        self.line = line
        self.column = column
        self.unit = unit
        super().__init__(_format_error(reason, path, line, column, unit))

    def __reduce__(
        self,
    ) -> tuple[type[InstrumentError], tuple[str, str | None, int | None, str | None, str]]:
        return (type(self), (self.reason, self.path, self.line, self.column, self.unit))


def _format_error(reason: str, path: str | None, line: int | None, column: str | None, unit: str) -> str:
    if unit == "record":
        place = "" if line is None else f"record {line}: "
        prefix = place if path is None else f"{path}: {place}"
        if column is not None:
            prefix += f"field {column!r}: "
        return prefix + reason
    if path is not None and line is not None:
        prefix = f"{path}:{line}: "
    elif path is not None:
        prefix = f"{path}: "
    elif line is not None:
        prefix = f"line {line}: "
    else:
        prefix = ""
    if column is not None:
        prefix += f"column {column!r}: "
    return prefix + reason


# --------------------------------------------------------------------------
# Field converters.  They accept the raw CSV strings as well as the already
# typed values kiteconnect returns, and raise _FieldError with a reason; the
# caller adds path, line and column.


class _FieldError(Exception):
    pass


def _describe(value: object) -> str:
    return f"{type(value).__name__} {value!r}"


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


def _parse_token(value: object) -> int:
    token = _parse_int(value)
    if token == 0:
        raise _FieldError("instrument_token must not be 0")
    if token < 0:
        raise _FieldError(f"instrument_token {token} is negative")
    if token > _MAX_TOKEN:
        raise _FieldError(f"instrument_token {token} does not fit in 32 bits (max {_MAX_TOKEN})")
    return token


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


_CONVERTERS: Final[Mapping[str, Callable[[object], object]]] = {
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


# Upstox field converters.  Upstox JSON values are already typed (numbers,
# strings, null); the deprecated CSV gives strings, empty for absent values.


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


def _key_segment(key: str) -> str | None:
    """The SEGMENT of a well-formed ``SEGMENT|IDENTIFIER`` key, else ``None``."""
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


def _parse_upstox_exchange_token(value: object) -> int:
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


def _parse_upstox_count(value: object) -> int:
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


def _optional(convert: Callable[[object], object], default: object) -> Callable[[object], object]:
    """``convert``, except that null and blank strings give ``default``."""

    def parse(value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return default
        return convert(value)

    return parse


_UPSTOX_COLUMNS: Final[tuple[str, ...]] = (
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

_UPSTOX_JSON_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {"tradingsymbol": "trading_symbol", "strike": "strike_price"}
)
"""Internal name -> JSON field name, where they differ."""

_UPSTOX_JSON_FIELDS: Final[tuple[tuple[str, str], ...]] = tuple(
    (column, _UPSTOX_JSON_NAMES.get(column, column)) for column in _UPSTOX_COLUMNS
)
_UPSTOX_REQUIRED: Final[tuple[str, ...]] = ("instrument_key", "exchange", "trading_symbol")
"""JSON fields every record must have (not null)."""

_UPSTOX_CONVERTERS: Final[Mapping[str, Callable[[object], object]]] = {
    "instrument_key": _parse_instrument_key,
    "segment": _parse_segment,
    "exchange": _parse_required_str,
    "tradingsymbol": _parse_required_str,
    "name": _parse_str,
    "exchange_token": _parse_upstox_exchange_token,
    "expiry": _parse_epoch_ms,
    "strike": _optional(_parse_float, 0.0),
    "tick_size": _optional(_parse_nonnegative_float, 0.0),
    "lot_size": _optional(_parse_upstox_count, 0),
    "instrument_type": _parse_str,
    "last_price": _optional(_parse_float, 0.0),
}
_UPSTOX_CSV_CONVERTERS: Final[Mapping[str, Callable[[object], object]]] = {
    **_UPSTOX_CONVERTERS,
    "expiry": _parse_expiry,  # YYYY-MM-DD or empty
}


class _Fallback(Exception):
    """A fast column converter declined; use the per-field converter instead."""


def _value_types(values: Sequence[object]) -> set[type]:
    return set(map(type, values))


def _plain_texts(values: Sequence[object]) -> Sequence[str]:
    """``values`` if they are all ASCII strings without ``_``, else _Fallback."""
    if _value_types(values) != {str}:
        raise _Fallback
    texts = cast("Sequence[str]", values)
    joined = "".join(texts)
    if not joined.isascii() or "_" in joined:
        raise _Fallback
    return texts


def _fast_ints(values: Sequence[object], low: int, high: int) -> list[object]:
    numbers: list[int]
    if _value_types(values) <= {int}:
        numbers = cast("list[int]", list(values))
    else:
        try:
            numbers = [int(text) for text in _plain_texts(values)]
        except ValueError:
            raise _Fallback from None
    if numbers and (min(numbers) < low or max(numbers) > high):
        raise _Fallback
    return list(numbers)


def _fast_floats(values: Sequence[object], nonnegative: bool) -> list[object]:
    numbers: list[float]
    if _value_types(values) <= {float, int}:
        try:
            numbers = [float(cast("float", value)) for value in values]
        except OverflowError:
            raise _Fallback from None
    else:
        try:
            numbers = [float(text) for text in _plain_texts(values)]
        except ValueError:
            raise _Fallback from None
    array = np.array(numbers, dtype=np.float64)
    if not np.isfinite(array).all() or (nonnegative and (array < 0).any()):
        raise _Fallback
    return list(numbers)


def _fast_texts(values: Sequence[object], required: bool) -> list[object]:
    if _value_types(values) != {str}:
        raise _Fallback
    texts = [text.strip() for text in cast("Sequence[str]", values)]
    if required and "" in texts:
        raise _Fallback
    return list(texts)


def _fast_dates(values: Sequence[object]) -> list[object]:
    if _value_types(values) != {str}:
        raise _Fallback
    try:
        return [_parse_date_text(text) for text in cast("Sequence[str]", values)]
    except _FieldError:
        raise _Fallback from None


_FAST_CONVERTERS: Final[Mapping[str, Callable[[Sequence[object]], list[object]]]] = {
    "instrument_token": functools.partial(_fast_ints, low=1, high=_MAX_TOKEN),
    "exchange_token": functools.partial(_fast_ints, low=0, high=_MAX_INT64),
    "tradingsymbol": functools.partial(_fast_texts, required=True),
    "name": functools.partial(_fast_texts, required=False),
    "last_price": functools.partial(_fast_floats, nonnegative=False),
    "expiry": _fast_dates,
    "strike": functools.partial(_fast_floats, nonnegative=False),
    "tick_size": functools.partial(_fast_floats, nonnegative=True),
    "lot_size": functools.partial(_fast_ints, low=0, high=_MAX_INT64),
    "instrument_type": functools.partial(_fast_texts, required=False),
    "segment": functools.partial(_fast_texts, required=False),
    "exchange": functools.partial(_fast_texts, required=True),
}


def _fast_instrument_keys(values: Sequence[object]) -> list[object]:
    texts = _fast_texts(values, required=True)
    if None in map(_key_segment, cast("list[str]", texts)):
        raise _Fallback
    return texts


_NONE_TYPE: Final = type(None)


def _fast_optional_floats(values: Sequence[object], nonnegative: bool) -> list[object]:
    """JSON numbers or null (-> 0.0)."""
    if not _value_types(values) <= {float, int, _NONE_TYPE}:
        raise _Fallback
    return _fast_floats([0.0 if value is None else value for value in values], nonnegative)


def _fast_optional_counts(values: Sequence[object]) -> list[object]:
    """JSON ints or null (-> 0), within 0..2**63-1."""
    if not _value_types(values) <= {int, _NONE_TYPE}:
        raise _Fallback
    return _fast_ints([0 if value is None else value for value in values], 0, _MAX_INT64)


def _fast_exchange_tokens(values: Sequence[object]) -> list[object]:
    """Exchange tokens that are all ASCII digit strings (as in Upstox's files)."""
    if _value_types(values) != {str}:
        raise _Fallback
    texts = cast("Sequence[str]", values)
    if not "".join(texts).isascii() or not all(text.isdigit() and len(text) <= 19 for text in texts):
        raise _Fallback
    return _fast_ints([int(text) for text in texts], 0, _MAX_INT64)


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


_UPSTOX_FAST_CONVERTERS: Final[Mapping[str, Callable[[Sequence[object]], list[object]]]] = {
    "instrument_key": _fast_instrument_keys,
    "exchange_token": _fast_exchange_tokens,
    "expiry": _fast_epoch_ms,
    "strike": functools.partial(_fast_optional_floats, nonnegative=False),
    "tick_size": functools.partial(_fast_optional_floats, nonnegative=True),
    "lot_size": _fast_optional_counts,
    "last_price": functools.partial(_fast_optional_floats, nonnegative=False),
    "exchange": functools.partial(_fast_texts, required=True),
    "tradingsymbol": functools.partial(_fast_texts, required=True),
    "name": functools.partial(_fast_texts, required=False),
    "instrument_type": functools.partial(_fast_texts, required=False),
}


class _ColumnError(Exception):
    """A field failed conversion: 0-based index, column name and reason."""

    def __init__(self, index: int, column: str, reason: str) -> None:
        super().__init__(index, column, reason)
        self.index = index
        self.column = column
        self.reason = reason


def _convert_columns(
    raw: Mapping[str, Sequence[object]],
    lines: Sequence[int],
    path: str | None,
    columns: Sequence[str] = KITE_COLUMNS,
    converters: Mapping[str, Callable[[object], object]] = _CONVERTERS,
    fast_converters: Mapping[str, Callable[[Sequence[object]], list[object]]] = _FAST_CONVERTERS,
) -> dict[str, list[object]]:
    """Convert every raw column; on failure report the earliest bad line."""
    try:
        return _convert_raw(raw, columns, converters, fast_converters)
    except _ColumnError as exc:
        raise InstrumentError(exc.reason, path, lines[exc.index], exc.column) from None


def _convert_raw(
    raw: Mapping[str, Sequence[object]],
    columns: Sequence[str],
    converters: Mapping[str, Callable[[object], object]],
    fast_converters: Mapping[str, Callable[[Sequence[object]], list[object]]],
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
    columns: Sequence[str] = KITE_COLUMNS,
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


def _int_column(values: npt.ArrayLike, column: str) -> npt.NDArray[np.int64]:
    array = np.asarray(values)
    if array.size == 0:
        return np.zeros(array.shape, dtype=np.int64)
    if array.dtype.kind not in "iu":
        raise InstrumentError(f"expected integers, got dtype {array.dtype}", column=column)
    if array.dtype.kind == "u" and array.dtype.itemsize >= 8 and int(array.max()) > _MAX_INT64:
        raise InstrumentError(f"value {int(array.max())} is too large", column=column)
    return np.array(array, dtype=np.int64)


def _float_column(values: npt.ArrayLike, column: str) -> npt.NDArray[np.float64]:
    array = np.asarray(values)
    if array.size == 0:
        return np.zeros(array.shape, dtype=np.float64)
    if array.dtype.kind not in "iuf":
        raise InstrumentError(f"expected numbers, got dtype {array.dtype}", column=column)
    return np.array(array, dtype=np.float64)


def _date_column(values: npt.ArrayLike, column: str) -> npt.NDArray[np.datetime64]:
    try:
        return np.array(values, dtype="datetime64[D]")
    except (TypeError, ValueError) as exc:
        raise InstrumentError(f"expected dates: {exc}", column=column) from None


def _str_column(values: npt.ArrayLike, column: str) -> npt.NDArray[np.object_]:
    array = np.array(values, dtype=object)
    items = array.ravel().tolist()
    if not _value_types(items) <= {str}:
        for item in items:
            if not isinstance(item, str):
                raise InstrumentError(f"expected strings, got {_describe(item)}", column=column)
    return array


def _object_array(values: Sequence[object]) -> npt.NDArray[np.object_]:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _first_true(mask: npt.NDArray[np.bool_]) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _readonly(array: npt.NDArray[np.generic]) -> None:
    array.flags.writeable = False


class _Where:
    """Where each slot's data came from, for error messages.

    ``lines[i]`` is the physical line (``unit == "line"``) or the 1-based
    record number (``unit == "record"``) of slot ``i``; ``names`` maps
    internal column names to the names used in the source (JSON field names).
    """

    __slots__ = ("lines", "names", "path", "unit")

    def __init__(
        self,
        path: str | None,
        lines: Sequence[int],
        unit: str = "line",
        names: Mapping[str, str] | None = None,
    ) -> None:
        self.path = path
        self.lines = lines
        self.unit = unit
        self.names: Mapping[str, str] = names or {}

    def name(self, column: str) -> str:
        return self.names.get(column, column)

    def error(self, reason: str, index: int | None = None, column: str | None = None) -> InstrumentError:
        line = None if index is None else self.lines[index]
        name = None if column is None else self.name(column)
        return InstrumentError(reason, self.path, line, name, self.unit)

    def pair(self, first: int, second: int) -> str:
        """``"lines 3 and 7"`` / ``"records 3 and 7"``."""
        return f"{self.unit}s {self.lines[first]} and {self.lines[second]}"


class Instruments:
    """Column-wise, read-only view of one broker's instrument master.

    Each column is a 1-D numpy array with one entry per slot; the slot of an
    instrument is its 0-based row index in file order.  Build instances with
    :meth:`from_kite_csv`, :meth:`from_kite_rows`, :meth:`from_upstox` or
    :meth:`from_upstox_rows`; the keyword constructor takes the twelve Kite
    columns as array-likes (plus optional ``path`` and per-slot ``lines`` used
    in error messages) and validates them.

    ``broker`` is ``"kite"`` or ``"upstox"``; it decides the meaning of the
    derived columns and how instruments are looked up:

    * Kite: ``token`` is the unique ``instrument_token`` and the low byte of
      it is ``segment_id``; ``instrument_key`` is ``str(instrument_token)``.
      Look-ups take an int token or a ``"EXCHANGE:TRADINGSYMBOL"`` str.
    * Upstox: ``instrument_key`` (``"NSE_FO|45450"``) is the unique id;
      ``token`` is the numeric exchange token (0 when it is not numeric or
      does not fit 32 bits), neither unique nor used for look-ups;
      ``segment_id`` comes from :data:`UPSTOX_SEGMENT_IDS`, ``price_divisor``
      from :func:`upstox_price_divisor` and segments ending in ``_INDEX`` are
      not tradable.  Look-ups take an instrument key (a str containing
      ``|``) or a ``"EXCHANGE:TRADING_SYMBOL"`` str.
    """

    broker: str
    token: npt.NDArray[np.uint32]
    exchange_token: npt.NDArray[np.int64]
    tradingsymbol: npt.NDArray[np.object_]
    name: npt.NDArray[np.object_]
    last_price: npt.NDArray[np.float64]
    expiry: npt.NDArray[np.datetime64]
    strike: npt.NDArray[np.float64]
    tick_size: npt.NDArray[np.float64]
    lot_size: npt.NDArray[np.int64]
    instrument_type: npt.NDArray[np.object_]
    segment: npt.NDArray[np.object_]
    exchange: npt.NDArray[np.object_]
    instrument_key: npt.NDArray[np.object_]
    symbol: npt.NDArray[np.object_]
    segment_id: npt.NDArray[np.uint8]
    price_divisor: npt.NDArray[np.int64]
    tradable: npt.NDArray[np.bool_]

    def __init__(
        self,
        *,
        instrument_token: npt.ArrayLike,
        exchange_token: npt.ArrayLike,
        tradingsymbol: npt.ArrayLike,
        name: npt.ArrayLike,
        last_price: npt.ArrayLike,
        expiry: npt.ArrayLike,
        strike: npt.ArrayLike,
        tick_size: npt.ArrayLike,
        lot_size: npt.ArrayLike,
        instrument_type: npt.ArrayLike,
        segment: npt.ArrayLike,
        exchange: npt.ArrayLike,
        broker: str = "kite",
        path: str | None = None,
        lines: Sequence[int] | None = None,
        instrument_key: npt.ArrayLike | None = None,
    ) -> None:
        """Validate and store the columns.

        For ``broker="upstox"`` also pass ``instrument_key`` (``SEGMENT|ID``
        strings; ``segment`` must equal each key's SEGMENT part) and give the
        numeric exchange token or 0 as ``instrument_token``.  For any other
        broker the Kite rules apply and ``instrument_key`` must be omitted.
        ``lines`` default to ``2, 3, ...`` (as if a header preceded row 0).
        """
        count = int(np.size(instrument_token))
        line_of: Sequence[int] = lines if lines is not None else range(2, count + 2)
        self._init(
            instrument_token=instrument_token,
            exchange_token=exchange_token,
            tradingsymbol=tradingsymbol,
            name=name,
            last_price=last_price,
            expiry=expiry,
            strike=strike,
            tick_size=tick_size,
            lot_size=lot_size,
            instrument_type=instrument_type,
            segment=segment,
            exchange=exchange,
            instrument_key=instrument_key,
            broker=broker,
            where=_Where(path, line_of),
            check_lines=lines is not None,
        )

    def _init(
        self,
        *,
        instrument_token: npt.ArrayLike,
        exchange_token: npt.ArrayLike,
        tradingsymbol: npt.ArrayLike,
        name: npt.ArrayLike,
        last_price: npt.ArrayLike,
        expiry: npt.ArrayLike,
        strike: npt.ArrayLike,
        tick_size: npt.ArrayLike,
        lot_size: npt.ArrayLike,
        instrument_type: npt.ArrayLike,
        segment: npt.ArrayLike,
        exchange: npt.ArrayLike,
        instrument_key: npt.ArrayLike | None,
        broker: str,
        where: _Where,
        check_lines: bool = False,
    ) -> None:
        path = where.path
        upstox = broker == "upstox"
        token64 = _int_column(instrument_token, "instrument_token")
        self.broker = broker
        self.exchange_token = _int_column(exchange_token, "exchange_token")
        self.tradingsymbol = _str_column(tradingsymbol, "tradingsymbol")
        self.name = _str_column(name, "name")
        self.last_price = _float_column(last_price, "last_price")
        self.expiry = _date_column(expiry, "expiry")
        self.strike = _float_column(strike, "strike")
        self.tick_size = _float_column(tick_size, "tick_size")
        self.lot_size = _int_column(lot_size, "lot_size")
        self.instrument_type = _str_column(instrument_type, "instrument_type")
        self.segment = _str_column(segment, "segment")
        self.exchange = _str_column(exchange, "exchange")

        columns: dict[str, npt.NDArray[np.generic]] = {
            "instrument_token": token64,
            "exchange_token": self.exchange_token,
            "tradingsymbol": self.tradingsymbol,
            "name": self.name,
            "last_price": self.last_price,
            "expiry": self.expiry,
            "strike": self.strike,
            "tick_size": self.tick_size,
            "lot_size": self.lot_size,
            "instrument_type": self.instrument_type,
            "segment": self.segment,
            "exchange": self.exchange,
        }
        keys: npt.NDArray[np.object_] | None = None
        if upstox:
            if instrument_key is None:
                raise InstrumentError(
                    "broker 'upstox' needs the instrument_key column", path, column="instrument_key"
                )
            keys = _str_column(instrument_key, "instrument_key")
            columns["instrument_key"] = keys
        elif instrument_key is not None:
            raise InstrumentError(
                f"instrument_key is only given for broker 'upstox'; for broker {broker!r} it is "
                "str(instrument_token)",
                path,
                column="instrument_key",
            )
        count = len(token64) if token64.ndim == 1 else -1
        for column, array in columns.items():
            if array.ndim != 1:
                raise InstrumentError(f"expected a 1-D column, got shape {array.shape}", path, column=column)
            if len(array) != count:
                raise InstrumentError(
                    f"column lengths differ: 'instrument_token' has {count} entries, {column!r} has {len(array)}",
                    path,
                    column=column,
                )
        if check_lines and len(where.lines) != count:
            raise InstrumentError(f"got {len(where.lines)} line numbers for {count} instruments", path)

        self._check_values(token64, where, keys)
        self.token = token64.astype(np.uint32)

        symbols: list[str] = [
            f"{exchange_name}:{symbol_name}"
            for exchange_name, symbol_name in zip(
                self.exchange.tolist(), self.tradingsymbol.tolist(), strict=True
            )
        ]
        self.symbol = _object_array(symbols)
        self._by_token: dict[int, int] = {}
        self._by_key: dict[str, int] = {}
        if keys is None:
            self.segment_id = (self.token & np.uint32(0xFF)).astype(np.uint8, copy=False)
            self.price_divisor = _PRICE_DIVISOR_BY_SEGMENT[self.segment_id]
            self.tradable = self.segment_id != INDICES_SEGMENT_ID
            tokens: list[int] = self.token.tolist()
            self.instrument_key = _object_array([str(token) for token in tokens])
            self._by_token = dict(zip(tokens, range(count), strict=True))
            if len(self._by_token) != count:
                first, second = _first_duplicate(tokens)
                raise where.error(
                    f"duplicate instrument_token {tokens[second]} on {where.pair(first, second)}",
                    second,
                    "instrument_token",
                )
        else:
            segments: list[str] = self.segment.tolist()
            self.segment_id = np.array([upstox_segment_id(seg) for seg in segments], dtype=np.uint8)
            self.price_divisor = np.array([upstox_price_divisor(seg) for seg in segments], dtype=np.int64)
            self.tradable = np.array([not seg.endswith("_INDEX") for seg in segments], dtype=np.bool_)
            key_list: list[str] = keys.tolist()
            self.instrument_key = keys
            self._by_key = dict(zip(key_list, range(count), strict=True))
            if len(self._by_key) != count:
                first, second = _first_duplicate(key_list)
                raise where.error(
                    f"duplicate instrument_key {key_list[second]!r} on {where.pair(first, second)}",
                    second,
                    "instrument_key",
                )
        self._by_symbol: dict[str, int] = dict(zip(symbols, range(count), strict=True))
        if len(self._by_symbol) != count:
            first, second = _first_duplicate(symbols)
            raise where.error(
                f"duplicate symbol {symbols[second]!r} on {where.pair(first, second)}",
                second,
                "tradingsymbol",
            )

        for array in (
            self.token,
            self.exchange_token,
            self.tradingsymbol,
            self.name,
            self.last_price,
            self.expiry,
            self.strike,
            self.tick_size,
            self.lot_size,
            self.instrument_type,
            self.segment,
            self.exchange,
            self.instrument_key,
            self.symbol,
            self.segment_id,
            self.price_divisor,
            self.tradable,
        ):
            _readonly(array)

    def _check_values(
        self, token: npt.NDArray[np.int64], where: _Where, keys: npt.NDArray[np.object_] | None
    ) -> None:
        """Value checks for the keyword constructor (the loaders check per field first)."""
        checks: list[tuple[str, npt.NDArray[np.bool_], str]] = []
        if keys is None:
            checks += [
                ("instrument_token", token == 0, "instrument_token must not be 0"),
                (
                    "instrument_token",
                    (token < 0) | (token > _MAX_TOKEN),
                    "instrument_token out of range 1..0xFFFFFFFF",
                ),
            ]
        else:
            checks.append(
                (
                    "instrument_token",
                    (token < 0) | (token > _MAX_TOKEN),
                    "instrument_token (the exchange token or 0) out of range 0..0xFFFFFFFF",
                )
            )
        checks += [
            ("exchange_token", self.exchange_token < 0, "must not be negative"),
            ("lot_size", self.lot_size < 0, "must not be negative"),
            ("tick_size", ~(self.tick_size >= 0), "must be a non-negative number"),
        ]
        for column, floats in (
            ("last_price", self.last_price),
            ("strike", self.strike),
            ("tick_size", self.tick_size),
        ):
            checks.append((column, ~np.isfinite(floats), "must be a finite number"))
        for column, strings in (("tradingsymbol", self.tradingsymbol), ("exchange", self.exchange)):
            texts = strings.tolist()
            empty = np.zeros(len(texts), dtype=np.bool_)
            if "" in texts:
                empty[texts.index("")] = True
            checks.append((column, empty, "must not be empty"))
        if keys is not None:
            key_segments = [_key_segment(key) for key in keys.tolist()]
            bad_key = np.array([segment is None for segment in key_segments], dtype=np.bool_)
            checks.append(("instrument_key", bad_key, "must be 'SEGMENT|IDENTIFIER' with exactly one '|'"))
            mismatch = np.array(
                [
                    key_segment not in (None, segment)
                    for key_segment, segment in zip(key_segments, self.segment.tolist(), strict=True)
                ],
                dtype=np.bool_,
            )
            checks.append(("segment", mismatch, "does not match the SEGMENT part of the instrument_key"))
        worst: tuple[int, int, str, str] | None = None
        for order, (column, mask, reason) in enumerate(checks):
            index = _first_true(mask.reshape(-1))
            if index is not None and (worst is None or (index, order) < worst[:2]):
                worst = (index, order, column, reason)
        if worst is not None:
            index, _, column, reason = worst
            raise where.error(reason, index, column)

    # ------------------------------------------------------------------
    # loaders

    @classmethod
    def from_kite_csv(cls, path: str | os.PathLike[str]) -> Instruments:
        """Load a Kite instruments dump, plain or gzipped.

        Compression is detected from the gzip magic bytes (``1f 8b``), not from
        the file name.  Accepts a UTF-8 BOM, ``\\n`` or ``\\r\\n`` line endings
        and blank trailing lines; the header may list the twelve columns in any
        order.  Raises :class:`InstrumentError` for malformed content (a
        missing file raises the usual :class:`OSError`).
        """
        display = os.fspath(path)
        with open(path, "rb") as handle:
            data = handle.read()
        if data[:2] == _GZIP_MAGIC:
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError, zlib.error) as exc:
                raise InstrumentError(f"corrupt gzip data: {exc}", display) from None
        return cls._from_text(_decode(data, display), display)

    @classmethod
    def _from_text(cls, text: str, path: str | None) -> Instruments:
        if not text.strip():
            raise InstrumentError("the instruments file is empty (no bytes or only whitespace)", path)
        raw, row_lines = _csv_columns(text, path, KITE_COLUMNS)
        return cls._from_raw(raw, row_lines, path)

    @classmethod
    def from_kite_rows(cls, rows: Iterable[Mapping[str, object]]) -> Instruments:
        """Build from row mappings keyed by the twelve Kite column names.

        Values may be strings (as from :class:`csv.DictReader`) or already
        typed, as returned by ``kiteconnect.KiteConnect.instruments()``:
        ``int`` tokens, ``float`` prices, ``datetime.date`` or ``None``/``''``
        expiry.  Validation matches :meth:`from_kite_csv`; the line reported
        for row ``i`` (0-based) is ``i + 2``, as if a header preceded it.
        """
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
        return cls._from_raw(raw, range(2, count + 2), None)

    @classmethod
    def _from_raw(
        cls, raw: Mapping[str, Sequence[object]], lines: Sequence[int], path: str | None
    ) -> Instruments:
        values = _convert_columns(raw, lines, path)
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

    @classmethod
    def from_upstox(cls, path: str | os.PathLike[str]) -> Instruments:
        """Load an Upstox instruments file: JSON, gzipped JSON or the older CSV.

        Compression is detected from the gzip magic bytes, not from the name.
        After an optional UTF-8 BOM and whitespace, a file starting with
        ``[`` is read as a JSON array of instrument objects (see
        :meth:`from_upstox_rows` for the fields; one starting with ``{`` is
        rejected as not an array); anything else as the
        deprecated CSV with the columns of :data:`UPSTOX_CSV_COLUMNS` in any
        order (``expiry`` ``YYYY-MM-DD`` or empty, empty numbers read as 0,
        the segment taken from the key, ``option_type`` ignored; the CSV's
        ``exchange`` column holds the segment, e.g. ``NSE_EQ``, which is
        reduced to the exchange: ``NSE``, with ``NCD_FO`` -> ``NSE`` and
        ``BCD_FO`` -> ``BSE`` as in the JSON files).

        Error locations (:class:`InstrumentError`): for JSON records,
        ``line`` is the record's 0-based index in the array + 1 and
        ``unit`` is ``"record"`` (the message says ``record N``), and
        ``column`` is the JSON field name (e.g. ``'strike_price'``); a JSON
        syntax error reports the physical line in ``line`` and names line and
        column in the message.  For CSV, ``line`` is the physical line (the
        header is line 1) and ``column`` the CSV column, as for Kite.  A
        missing file raises the usual :class:`OSError`.
        """
        display = os.fspath(path)
        with open(path, "rb") as handle:
            data = handle.read()
        if data[:2] == _GZIP_MAGIC:
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError, zlib.error) as exc:
                raise InstrumentError(f"corrupt gzip data: {exc}", display) from None
        text = _decode(data, display)
        start = text.lstrip()[:1]
        if not start:
            raise InstrumentError("the instruments file is empty (no bytes or only whitespace)", display)
        if start in "[{":
            return cls._from_upstox_json(text, display)
        return cls._from_upstox_csv(text, display)

    @classmethod
    def from_upstox_rows(cls, rows: Iterable[Mapping[str, object]]) -> Instruments:
        """Build from Upstox instrument objects, e.g. the decoded JSON file.

        Fields read (all others are ignored):

        * required, not null: ``instrument_key`` (``SEGMENT|IDENTIFIER``,
          exactly one ``|``, both parts non-empty), ``exchange`` and
          ``trading_symbol`` (strings);
        * ``segment``: optional; when present it must equal the key's
          SEGMENT part, which is used as the segment either way;
        * ``exchange_token``: a string or an int; a non-numeric string,
          null or absence give 0;
        * ``expiry``: epoch milliseconds, converted to the date in IST
          (UTC+05:30); null or absent -> NaT;
        * ``strike_price``, ``tick_size`` (>= 0), ``last_price``: numbers,
          default 0.0; ``lot_size``: a non-negative integer (an integral
          float such as ``75.0`` is accepted), default 0; ``name`` and
          ``instrument_type``: strings, default ``""``.  ``tick_size`` is
          given in paise in Upstox's JSON files and stored in rupees (/ 100),
          like Kite's, so the column means the same for both brokers; the old
          CSV already states rupees.

        ``symbol`` is ``"EXCHANGE:TRADING_SYMBOL"``.  The ``line`` of an
        :class:`InstrumentError` is the record's index + 1 with ``unit ==
        "record"``, and ``column`` the JSON field name.
        """
        if isinstance(rows, Mapping):
            raise InstrumentError("expected an iterable of instrument objects, got a single mapping")
        records = list(rows)
        if not records:
            raise InstrumentError("no instruments: no rows given")
        return cls._from_upstox_records(records, None)

    @classmethod
    def _from_upstox_json(cls, text: str, path: str) -> Instruments:
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
        return cls._from_upstox_records(document, path)

    @classmethod
    def _from_upstox_records(cls, records: Sequence[object], path: str | None) -> Instruments:
        where = _Where(path, range(1, len(records) + 1), "record", _UPSTOX_JSON_NAMES)
        for index, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise where.error(
                    f"expected an object (field name -> value), got {_describe_short(record)}", index
                )
            for field in _UPSTOX_REQUIRED:
                if record.get(field) is None:
                    state = "is null" if field in record else "is missing"
                    raise where.error(f"required field {field!r} {state}", index, field)
        mappings = cast("Sequence[Mapping[str, object]]", records)
        raw = {column: [record.get(field) for record in mappings] for column, field in _UPSTOX_JSON_FIELDS}
        return cls._from_upstox_raw(raw, where, _UPSTOX_CONVERTERS, csv_exchange=False)

    @classmethod
    def _from_upstox_csv(cls, text: str, path: str) -> Instruments:
        raw_csv, lines = _csv_columns(
            text,
            path,
            UPSTOX_CSV_COLUMNS,
            no_header="not a JSON array (that would start with '[') and the CSV header row is missing",
        )
        raw: dict[str, Sequence[object]] = {
            column: raw_csv[column] for column in _UPSTOX_COLUMNS if column != "segment"
        }
        raw["segment"] = [None] * len(lines)
        return cls._from_upstox_raw(raw, _Where(path, lines), _UPSTOX_CSV_CONVERTERS, csv_exchange=True)

    @classmethod
    def _from_upstox_raw(
        cls,
        raw: Mapping[str, Sequence[object]],
        where: _Where,
        converters: Mapping[str, Callable[[object], object]],
        *,
        csv_exchange: bool,
    ) -> Instruments:
        try:
            values = _convert_raw(raw, _UPSTOX_COLUMNS, converters, _UPSTOX_FAST_CONVERTERS)
        except _ColumnError as exc:
            raise where.error(exc.reason, exc.index, exc.column) from None
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
        )
        return instruments

    # ------------------------------------------------------------------
    # lookups

    def __len__(self) -> int:
        return len(self.token)

    def __repr__(self) -> str:
        return f"<Instruments broker={self.broker!r} count={len(self)}>"

    @property
    def _upstox(self) -> bool:
        return self.broker == "upstox"

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            if self._upstox and "|" in key and key in self._by_key:
                return True
            return key in self._by_symbol
        if isinstance(key, (bool, np.bool_)):
            return False
        if isinstance(key, (int, np.integer)):
            return int(key) in self._by_token
        return False

    def slot(self, key: int | str) -> int:
        """Slot of an instrument.

        Kite: ``key`` is the int token or ``"EXCHANGE:TRADINGSYMBOL"``.
        Upstox: a str containing ``|`` is an instrument_key (if no instrument
        has that key it is tried as a symbol), any other str a symbol; an
        int raises :class:`KeyError`, since Upstox exchange tokens are not
        unique.  Raises :class:`KeyError` for unknown keys and
        :class:`TypeError` for other key types (including ``bool``).
        """
        if isinstance(key, str):
            if self._upstox and "|" in key:
                found = self._by_key.get(key)
                if found is None:
                    found = self._by_symbol.get(key)
                if found is None:
                    raise KeyError(f"unknown instrument_key {key!r}")
                return found
            found = self._by_symbol.get(key)
            if found is None:
                if ":" in key:
                    hint = ""
                elif self._upstox:
                    hint = (
                        " (Upstox instruments are looked up by instrument_key 'SEGMENT|IDENTIFIER', "
                        "e.g. 'NSE_EQ|INE009A01021', or by symbol 'EXCHANGE:TRADING_SYMBOL', e.g. 'NSE:INFY')"
                    )
                else:
                    hint = " (symbols are 'EXCHANGE:TRADINGSYMBOL', e.g. 'NSE:INFY')"
                raise KeyError(f"unknown instrument symbol {key!r}{hint}")
            return found
        if isinstance(key, (bool, np.bool_)):
            raise TypeError("instrument key must be an int token or a str symbol, not bool")
        if isinstance(key, (int, np.integer)):
            token = int(key)
            if self._upstox:
                raise KeyError(
                    f"Upstox instruments are looked up by instrument_key (e.g. 'NSE_FO|45450') or symbol "
                    f"(e.g. 'NSE:INFY'), not by an int token ({token}): exchange tokens are not unique"
                )
            found = self._by_token.get(token)
            if found is None:
                raise KeyError(f"unknown instrument token {token}")
            return found
        raise TypeError(f"instrument key must be an int token or a str symbol, not {type(key).__name__}")

    def slots(self, keys: Iterable[int | str]) -> npt.NDArray[np.int32]:
        """Slots for many keys, as an int32 array; KeyError on the first unknown key."""
        if isinstance(keys, (str, bytes)):
            raise TypeError("slots() takes an iterable of keys, not a single str")
        if isinstance(keys, np.ndarray):
            keys = keys.tolist()
        slot = self.slot
        return np.array([slot(key) for key in keys], dtype=np.int32)

    def token_of(self, key: int | str) -> int:
        """instrument_token of a symbol or token (Kite); the exchange_token (Upstox)."""
        index = self.slot(key)
        if self._upstox:
            return int(self.exchange_token[index])
        return int(self.token[index])

    def symbol_of(self, key: int | str) -> str:
        """``"EXCHANGE:TRADINGSYMBOL"`` of a token or symbol (Upstox: of an instrument_key or symbol)."""
        return str(self.symbol[self.slot(key)])

    def key_of(self, key: int | str) -> str:
        """``instrument_key`` of an instrument (Upstox: ``"NSE_EQ|INE009A01021"``; Kite: ``str(token)``)."""
        return str(self.instrument_key[self.slot(key)])

    def row(self, key: int | str) -> dict[str, object]:
        """The twelve Kite columns plus ``symbol`` for one instrument, as Python scalars.

        ``expiry`` is a :class:`datetime.date` or ``None``.  Upstox rows also
        hold ``instrument_key`` (last); their ``instrument_token`` is the
        ``token`` column (the numeric exchange token or 0).
        """
        index = self.slot(key)
        days = int(self.expiry.view(np.int64)[index])
        expiry = None if days == _NAT else _dt.date.fromordinal(days + _EPOCH_ORDINAL)
        row: dict[str, object] = {
            "instrument_token": int(self.token[index]),
            "exchange_token": int(self.exchange_token[index]),
            "tradingsymbol": str(self.tradingsymbol[index]),
            "name": str(self.name[index]),
            "last_price": float(self.last_price[index]),
            "expiry": expiry,
            "strike": float(self.strike[index]),
            "tick_size": float(self.tick_size[index]),
            "lot_size": int(self.lot_size[index]),
            "instrument_type": str(self.instrument_type[index]),
            "segment": str(self.segment[index]),
            "exchange": str(self.exchange[index]),
            "symbol": str(self.symbol[index]),
        }
        if self._upstox:
            row["instrument_key"] = str(self.instrument_key[index])
        return row


def _first_duplicate(values: Sequence[object]) -> tuple[int, int]:
    """Indexes of the first value seen twice (first and second occurrence)."""
    seen: dict[object, int] = {}
    for index, value in enumerate(values):
        first = seen.setdefault(value, index)
        if first != index:
            return first, index
    raise AssertionError("no duplicate found")  # pragma: no cover
