"""Chooses the hot-path implementation: compiled ``_hotpath`` by default.

``FASTFLOW_PUREPYTHON=1`` selects :mod:`fastflow.reference`, the slow,
obviously correct twin used to cross-check the compiled code. Unlike
msgpack's silent fallback, a failed import of the compiled module is an error:
a 100x slowdown must never ship unnoticed.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from fastflow.errors import FrameError
from fastflow.reference.fanout import ws_header  # the one Python WebSocket header writer

logger = logging.getLogger(__name__)

PUREPYTHON = os.environ.get("FASTFLOW_PUREPYTHON", "") not in ("", "0")

if TYPE_CHECKING:  # both implementations share the compiled module's stubs
    from fastflow._hotpath import (
        FanOut,
        KiteDecoder,
        MarketState,
        TickBatch,
        UpstoxDecoder,
        price_divisor,
        slot_dtype,
    )

    IMPLEMENTATION = "compiled"
elif PUREPYTHON:
    from fastflow.reference import (
        FanOut,
        KiteDecoder,
        MarketState,
        TickBatch,
        UpstoxDecoder,
        price_divisor,
        slot_dtype,
    )

    IMPLEMENTATION = "reference"
else:
    try:
        from fastflow._hotpath import (
            FanOut,
            KiteDecoder,
            MarketState,
            TickBatch,
            UpstoxDecoder,
            price_divisor,
            slot_dtype,
        )
    except ImportError as exc:  # pragma: no cover - build problem
        raise ImportError(
            "fastflow's compiled hot path (fastflow._hotpath) is not built: "
            "run `make compile` (or `pip install -e .`); set FASTFLOW_PUREPYTHON=1 "
            "to run the slow reference implementation deliberately"
        ) from exc

    IMPLEMENTATION = "compiled"

__all__ = [
    "IMPLEMENTATION",
    "FanOut",
    "FrameError",
    "KiteDecoder",
    "MarketState",
    "TickBatch",
    "UpstoxDecoder",
    "price_divisor",
    "slot_dtype",
    "ws_header",
]

