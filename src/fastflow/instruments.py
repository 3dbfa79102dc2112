"""Instrument master ("instruments dump") for Zerodha Kite.

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
"""

from __future__ import annotations

import csv
import datetime as _dt
import functools
import gzip
import io
import math
import os
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, cast

import numpy as np
import numpy.typing as npt

__all__ = [
    "INDICES_SEGMENT_ID",
    "KITE_COLUMNS",
    "InstrumentError",
    "Instruments",
    "kite_price_divisor",
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

_COLUMN_SET: Final = frozenset(KITE_COLUMNS)
_EXPECTED_HEADER: Final = ",".join(KITE_COLUMNS)
_MAX_TOKEN: Final = 0xFFFFFFFF
_MAX_INT64: Final = 2**63 - 1
_NAT: Final = int(np.iinfo(np.int64).min)  # datetime64 NaT as int64
_EPOCH_ORDINAL: Final = _dt.date(1970, 1, 1).toordinal()
_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_GZIP_MAGIC: Final = b"\x1f\x8b"


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


class InstrumentError(ValueError):
    """Bad instrument master input.

    Attributes:
        path: the file the data came from, or ``None`` (e.g. for
            :meth:`Instruments.from_kite_rows`).
        line: 1-based physical line number in the file (the header is
            line 1), or ``None`` when the problem is not tied to a line.
        column: the column name involved, or ``None``.
        reason: the message without the location prefix.
    """

    def __init__(
        self,
        reason: str,
        path: str | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.reason = reason
        self.path = path
        self.line = line
        self.column = column
        super().__init__(_format_error(reason, path, line, column))

    def __reduce__(
        self,
    ) -> tuple[type[InstrumentError], tuple[str, str | None, int | None, str | None]]:
        return (type(self), (self.reason, self.path, self.line, self.column))


def _format_error(reason: str, path: str | None, line: int | None, column: str | None) -> str:
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


def _convert_columns(
    raw: Mapping[str, Sequence[object]], lines: Sequence[int], path: str | None
) -> dict[str, list[object]]:
    """Convert every raw column; on failure report the earliest bad line.

    Each column first goes through a bulk converter that only accepts input
    the per-field converter would accept with the same result; anything
    unusual (or wrong) is redone field by field for exact error reporting.
    """
    converted: dict[str, list[object]] = {}
    failures: list[tuple[int, int, str, str]] = []
    for order, column in enumerate(KITE_COLUMNS):
        values = raw[column]
        try:
            converted[column] = _FAST_CONVERTERS[column](values)
            continue
        except _Fallback:
            pass
        convert = _CONVERTERS[column]
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
        raise InstrumentError(reason, path, lines[index], column)
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


def _column_positions(header: list[str], line: int, path: str | None) -> list[int]:
    """Map each of KITE_COLUMNS to its position in ``header``."""
    names = [field.strip() for field in header]
    expected = f"expected the columns {_EXPECTED_HEADER}"
    if not _COLUMN_SET.intersection(names):
        raise InstrumentError(
            f"the header row is missing: the first line must name the 12 columns {_EXPECTED_HEADER}",
            path,
            line,
        )
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InstrumentError(f"header names the column more than once; {expected}", path, line, name)
        seen.add(name)
    unknown = [name for name in names if name not in _COLUMN_SET]
    if unknown:
        listed = ", ".join(repr(name) for name in unknown)
        raise InstrumentError(f"unknown column(s) in header: {listed}; {expected}", path, line, unknown[0])
    missing = [name for name in KITE_COLUMNS if name not in seen]
    if missing:
        listed = ", ".join(repr(name) for name in missing)
        raise InstrumentError(f"header is missing column(s): {listed}; {expected}", path, line, missing[0])
    return [names.index(name) for name in KITE_COLUMNS]


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


class Instruments:
    """Column-wise, read-only view of one broker's instrument master.

    Each column is a 1-D numpy array with one entry per slot; the slot of an
    instrument is its 0-based row index in file order.  Build instances with
    :meth:`from_kite_csv` or :meth:`from_kite_rows`; the keyword constructor
    takes the twelve Kite columns as array-likes (plus optional ``path`` and
    per-slot ``lines`` used in error messages) and validates them.
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
    ) -> None:
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
        if lines is not None and len(lines) != count:
            raise InstrumentError(f"got {len(lines)} line numbers for {count} instruments", path)
        line_of: Sequence[int] = lines if lines is not None else range(2, count + 2)

        self._check_values(token64, path, line_of)
        self.token = token64.astype(np.uint32)

        symbols: list[str] = [
            f"{exchange_name}:{symbol_name}"
            for exchange_name, symbol_name in zip(
                self.exchange.tolist(), self.tradingsymbol.tolist(), strict=True
            )
        ]
        self.symbol = _object_array(symbols)
        self.segment_id = (self.token & np.uint32(0xFF)).astype(np.uint8, copy=False)
        self.price_divisor = _PRICE_DIVISOR_BY_SEGMENT[self.segment_id]
        self.tradable = self.segment_id != INDICES_SEGMENT_ID

        tokens: list[int] = self.token.tolist()
        self._by_token: dict[int, int] = dict(zip(tokens, range(count), strict=True))
        if len(self._by_token) != count:
            first, second = _first_duplicate(tokens)
            raise InstrumentError(
                f"duplicate instrument_token {tokens[second]} on lines {line_of[first]} and {line_of[second]}",
                path,
                line_of[second],
                "instrument_token",
            )
        self._by_symbol: dict[str, int] = dict(zip(symbols, range(count), strict=True))
        if len(self._by_symbol) != count:
            first, second = _first_duplicate(symbols)
            raise InstrumentError(
                f"duplicate symbol {symbols[second]!r} on lines {line_of[first]} and {line_of[second]}",
                path,
                line_of[second],
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
            self.symbol,
            self.segment_id,
            self.price_divisor,
            self.tradable,
        ):
            _readonly(array)

    def _check_values(self, token: npt.NDArray[np.int64], path: str | None, line_of: Sequence[int]) -> None:
        """Value checks for the keyword constructor (the loaders check per field first)."""
        checks: list[tuple[str, npt.NDArray[np.bool_], str]] = [
            ("instrument_token", token == 0, "instrument_token must not be 0"),
            (
                "instrument_token",
                (token < 0) | (token > _MAX_TOKEN),
                "instrument_token out of range 1..0xFFFFFFFF",
            ),
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
        worst: tuple[int, int, str, str] | None = None
        for order, (column, mask, reason) in enumerate(checks):
            index = _first_true(mask.reshape(-1))
            if index is not None and (worst is None or (index, order) < worst[:2]):
                worst = (index, order, column, reason)
        if worst is not None:
            index, _, column, reason = worst
            raise InstrumentError(reason, path, line_of[index], column)

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
        records, lines = _read_records(text, path)
        count = len(records)
        first = 0
        while _is_blank(records[first]):  # the text is not blank, so this stops
            first += 1
        positions = _column_positions(records[first], lines[first], path)
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
        transposed = list(zip(*rows, strict=True))
        raw = {column: transposed[position] for column, position in zip(KITE_COLUMNS, positions, strict=True)}
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

    # ------------------------------------------------------------------
    # lookups

    def __len__(self) -> int:
        return len(self.token)

    def __repr__(self) -> str:
        return f"<Instruments broker={self.broker!r} count={len(self)}>"

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            return key in self._by_symbol
        if isinstance(key, (bool, np.bool_)):
            return False
        if isinstance(key, (int, np.integer)):
            return int(key) in self._by_token
        return False

    def slot(self, key: int | str) -> int:
        """Slot of an instrument given its token (int) or ``"EXCHANGE:TRADINGSYMBOL"`` (str).

        Raises :class:`KeyError` for unknown keys and :class:`TypeError` for
        other key types (including ``bool``).
        """
        if isinstance(key, str):
            found = self._by_symbol.get(key)
            if found is None:
                hint = "" if ":" in key else " (symbols are 'EXCHANGE:TRADINGSYMBOL', e.g. 'NSE:INFY')"
                raise KeyError(f"unknown instrument symbol {key!r}{hint}")
            return found
        if isinstance(key, (bool, np.bool_)):
            raise TypeError("instrument key must be an int token or a str symbol, not bool")
        if isinstance(key, (int, np.integer)):
            token = int(key)
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
        """instrument_token of a symbol or token."""
        return int(self.token[self.slot(key)])

    def symbol_of(self, key: int | str) -> str:
        """``"EXCHANGE:TRADINGSYMBOL"`` of a token or symbol."""
        return str(self.symbol[self.slot(key)])

    def row(self, key: int | str) -> dict[str, object]:
        """The twelve Kite columns plus ``symbol`` for one instrument, as Python scalars.

        ``expiry`` is a :class:`datetime.date` or ``None``.
        """
        index = self.slot(key)
        days = int(self.expiry.view(np.int64)[index])
        expiry = None if days == _NAT else _dt.date.fromordinal(days + _EPOCH_ORDINAL)
        return {
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


def _first_duplicate(values: Sequence[object]) -> tuple[int, int]:
    """Indexes of the first value seen twice (first and second occurrence)."""
    seen: dict[object, int] = {}
    for index, value in enumerate(values):
        first = seen.setdefault(value, index)
        if first != index:
            return first, index
    raise AssertionError("no duplicate found")  # pragma: no cover
