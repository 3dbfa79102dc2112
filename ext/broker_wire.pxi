# Broker wire constants (cf. asyncpg consts.pxi). Offsets: docs/wire-format.md.

cdef enum:
    # Kite packet lengths; the length alone selects the layout.
    KITE_LTP_LEN = 8
    KITE_INDEX_QUOTE_LEN = 28
    KITE_INDEX_FULL_LEN = 32
    KITE_QUOTE_LEN = 44
    KITE_FULL_LEN = 184
    KITE_DEPTH_OFFSET = 64
    KITE_DEPTH_ENTRY_LEN = 12
    KITE_ASK_OFFSET = 124

    # Kite segment ids (instrument_token & 0xff) with a non-default divisor.
    KITE_SEGMENT_CDS = 3
    KITE_SEGMENT_BCD = 6
    KITE_SEGMENT_INDICES = 9
    KITE_SEGMENT_NCO = 12


cdef inline int64_t kite_price_divisor(uint32_t segment) noexcept nogil:
    if segment == KITE_SEGMENT_CDS:
        return 10000000
    if segment == KITE_SEGMENT_BCD or segment == KITE_SEGMENT_NCO:
        return 10000
    return 100


def price_divisor(token):
    """The divisor that turns a raw Kite price of ``token`` into rupees."""
    return kite_price_divisor(<uint32_t>(token & 0xFF))


def wire_constants():
    """The constants above as a dict (name -> value), to check them against the reference's."""
    return {
        "KITE_LTP_LEN": KITE_LTP_LEN, "KITE_INDEX_QUOTE_LEN": KITE_INDEX_QUOTE_LEN,
        "KITE_INDEX_FULL_LEN": KITE_INDEX_FULL_LEN, "KITE_QUOTE_LEN": KITE_QUOTE_LEN,
        "KITE_FULL_LEN": KITE_FULL_LEN, "KITE_DEPTH_OFFSET": KITE_DEPTH_OFFSET,
        "KITE_DEPTH_ENTRY_LEN": KITE_DEPTH_ENTRY_LEN, "KITE_ASK_OFFSET": KITE_ASK_OFFSET,
        "KITE_SEGMENT_CDS": KITE_SEGMENT_CDS, "KITE_SEGMENT_BCD": KITE_SEGMENT_BCD,
        "KITE_SEGMENT_INDICES": KITE_SEGMENT_INDICES, "KITE_SEGMENT_NCO": KITE_SEGMENT_NCO,
    }
