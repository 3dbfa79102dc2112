"""Instrument masters: the broker-neutral model and its loaders' public names.

* :mod:`~fastflow.instruments.model`: :class:`Instruments`, one broker's
  instrument master as read-only columns with slot look-ups;
* :mod:`~fastflow.instruments.errors`: :class:`InstrumentError`, raised for
  every malformed input, with file, line/record and column;
* :mod:`~fastflow.instruments.parse` and :mod:`~fastflow.instruments.files`:
  the field converters and file reading (gzip, UTF-8, CSV) the loaders share.

The file formats are the brokers': :mod:`fastflow.brokers.kite.master` and
:mod:`fastflow.brokers.upstox.master`.  Their public names (``KITE_COLUMNS``,
``UPSTOX_SEGMENT_IDS``, ``upstox_price_divisor``, ...) stay importable from
here, resolved on first use (PEP 562), so importing this package never
imports :mod:`fastflow.brokers`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fastflow.instruments.errors import InstrumentError
from fastflow.instruments.model import Instruments

if TYPE_CHECKING:  # pragma: no cover
    from fastflow.brokers.kite.master import INDICES_SEGMENT_ID, KITE_COLUMNS, kite_price_divisor
    from fastflow.brokers.upstox.master import (
        UPSTOX_CSV_COLUMNS,
        UPSTOX_SEGMENT_IDS,
        upstox_price_divisor,
        upstox_segment_id,
    )

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

#: Names re-exported from the brokers' master modules -> the module holding them.
_BROKER_NAMES = {
    "INDICES_SEGMENT_ID": "fastflow.brokers.kite.master",
    "KITE_COLUMNS": "fastflow.brokers.kite.master",
    "kite_price_divisor": "fastflow.brokers.kite.master",
    "UPSTOX_CSV_COLUMNS": "fastflow.brokers.upstox.master",
    "UPSTOX_SEGMENT_IDS": "fastflow.brokers.upstox.master",
    "upstox_price_divisor": "fastflow.brokers.upstox.master",
    "upstox_segment_id": "fastflow.brokers.upstox.master",
}


def __getattr__(name: str) -> Any:
    module = _BROKER_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_BROKER_NAMES})
