"""Broker wire constants (the twin of ``ext/broker_wire.pxi``)."""

from __future__ import annotations

from typing import Final

# Kite packet lengths; the length alone selects the layout.
KITE_LTP_LEN: Final = 8
KITE_INDEX_QUOTE_LEN: Final = 28
KITE_INDEX_FULL_LEN: Final = 32
KITE_QUOTE_LEN: Final = 44
KITE_FULL_LEN: Final = 184
KITE_KNOWN_LENGTHS: Final = (
    KITE_LTP_LEN,
    KITE_QUOTE_LEN,
    KITE_FULL_LEN,
    KITE_INDEX_QUOTE_LEN,
    KITE_INDEX_FULL_LEN,
)

KITE_DEPTH_OFFSET: Final = 64
KITE_DEPTH_ENTRY_LEN: Final = 12
KITE_ASK_OFFSET: Final = 124

# Kite segment ids (instrument_token & 0xff) with a non-default divisor.
KITE_SEGMENT_CDS: Final = 3
KITE_SEGMENT_BCD: Final = 6
KITE_SEGMENT_INDICES: Final = 9
KITE_SEGMENT_NCO: Final = 12


def price_divisor(token: int) -> int:
    """The divisor that turns a raw Kite price of ``token`` into rupees."""
    segment = int(token & 0xFF)
    if segment == KITE_SEGMENT_CDS:
        return 10_000_000
    if segment in (KITE_SEGMENT_BCD, KITE_SEGMENT_NCO):
        return 10_000
    return 100


def wire_constants() -> dict[str, int]:
    """The ``KITE_*`` integer constants above (name -> value), the twin of ``ext``'s."""
    return {name: value for name, value in globals().items()
            if name.startswith("KITE_") and isinstance(value, int)}
