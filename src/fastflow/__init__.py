"""fastflow: a real-time market-data tick plant for Indian brokers.

The public names are resolved lazily (PEP 562) so that ``import fastflow``
has no side effects and cold modules such as :mod:`fastflow.instruments`
can be imported without loading the compiled hot path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "FrameError",
    "InstrumentError",
    "Instruments",
    "KiteDecoder",
    "MarketState",
    "TickBatch",
    "UpstoxDecoder",
    "__version__",
]

_HOTPATH_NAMES = {"FrameError", "KiteDecoder", "MarketState", "TickBatch", "UpstoxDecoder"}
_INSTRUMENT_NAMES = {"Instruments", "InstrumentError"}

if TYPE_CHECKING:  # pragma: no cover
    from fastflow.hotpath import FrameError, KiteDecoder, MarketState, TickBatch, UpstoxDecoder
    from fastflow.instruments import InstrumentError, Instruments


def __getattr__(name: str) -> Any:
    if name in _HOTPATH_NAMES:
        from fastflow import hotpath

        return getattr(hotpath, name)
    if name in _INSTRUMENT_NAMES:
        from fastflow import instruments

        return getattr(instruments, name)
    raise AttributeError(f"module 'fastflow' has no attribute {name!r}")
