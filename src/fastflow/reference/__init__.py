"""fastflow.reference: the slow, obviously correct pure-Python twin of the
compiled hot path (``fastflow._hotpath``).

Same classes, signatures, state layout, encoded bytes and errors as the
compiled module; the differential tests feed both the same input and demand
identical results. Selected at run time with ``FASTFLOW_PUREPYTHON=1`` (see
:mod:`fastflow.hotpath`). Nothing here is optimised: clarity first.
"""

from __future__ import annotations

from fastflow.errors import FrameError
from fastflow.reference.broker_wire import price_divisor
from fastflow.reference.fanout import FanOut
from fastflow.reference.kite_decoder import KiteDecoder
from fastflow.reference.market_state import MarketState, TickBatch, slot_dtype
from fastflow.reference.token_index import KeyIndex, TokenIndex
from fastflow.reference.upstox_decoder import UpstoxDecoder

__all__ = [
    "FanOut",
    "FrameError",
    "KeyIndex",
    "KiteDecoder",
    "MarketState",
    "TickBatch",
    "TokenIndex",
    "UpstoxDecoder",
    "price_divisor",
    "slot_dtype",
]
