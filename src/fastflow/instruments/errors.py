"""The one error of instrument-master input, and where it points.

Every malformed input raises :class:`InstrumentError`, whose message names
the file, the physical line (the header is line 1) or the 1-based JSON record,
and the column or field where that is known.  :class:`_Where` carries that
location for the loaders and the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fastflow.errors import FastflowError

__all__ = ["InstrumentError"]


class InstrumentError(FastflowError, ValueError):
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
