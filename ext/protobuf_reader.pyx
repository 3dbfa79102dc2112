# A protobuf wire-format reader over a bounded span of bytes. No Python
# objects: errors are recorded in the cursor (code, byte offset, field,
# message name) and turned into one FrameError by the caller, once.
#
# Every read checks the span's end before the pointer moves; a length-
# delimited field yields a sub-span that is checked against its parent's end.

cdef enum:
    WT_VARINT = 0
    WT_FIXED64 = 1
    WT_LEN = 2
    WT_FIXED32 = 5

    PB_OK = 0
    PB_TRUNCATED_VARINT = 1
    PB_LONG_VARINT = 2
    PB_TRUNCATED_FIXED = 3
    PB_LENGTH_PAST_END = 4
    PB_BAD_WIRE_TYPE = 5       # groups (3, 4) and the undefined 6, 7
    PB_WRONG_WIRE_TYPE = 6     # a known field with another wire type
    PB_FIELD_ZERO = 7
    PB_FIELD_RANGE = 8         # above protobuf's largest field number, 2**29 - 1


cdef struct pb_span:
    const unsigned char *p
    const unsigned char *end


cdef struct pb_error:
    int code
    const unsigned char *at
    uint32_t field
    uint32_t wire_type
    uint32_t expected
    const char *message      # the protobuf message being read


cdef inline int pb_fail(pb_error *e, int code, const unsigned char *at, const char *message,
                        uint32_t field, uint32_t wt, uint32_t expected) noexcept nogil:
    e.code = code
    e.at = at
    e.message = message
    e.field = field
    e.wire_type = wt
    e.expected = expected
    return -1


cdef inline int pb_varint(pb_span *s, uint64_t *out, pb_error *e, const char *msg) noexcept nogil:
    cdef const unsigned char *p = s.p
    cdef uint64_t v = 0
    cdef int shift = 0
    cdef unsigned char b
    if p < s.end and p[0] < 0x80:  # one-byte fast path: most tags and small values
        out[0] = p[0]
        s.p = p + 1
        return 0
    while True:
        if p >= s.end:
            return pb_fail(e, PB_TRUNCATED_VARINT, s.p, msg, 0, 0, 0)
        if shift >= 70:
            return pb_fail(e, PB_LONG_VARINT, s.p, msg, 0, 0, 0)
        b = p[0]
        p += 1
        if shift < 64:
            v |= <uint64_t>(b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
    out[0] = v
    s.p = p
    return 0


cdef inline int pb_tag(pb_span *s, uint32_t *field, uint32_t *wt, pb_error *e, const char *msg) noexcept nogil:
    cdef uint64_t tag
    cdef const unsigned char *at = s.p
    if pb_varint(s, &tag, e, msg) < 0:
        return -1
    if (tag >> 3) > 0x1FFFFFFF:
        return pb_fail(e, PB_FIELD_RANGE, at, msg, 0, <uint32_t>(tag & 7), 0)
    field[0] = <uint32_t>(tag >> 3)
    wt[0] = <uint32_t>(tag & 7)
    if field[0] == 0:
        return pb_fail(e, PB_FIELD_ZERO, at, msg, 0, wt[0], 0)
    if wt[0] == 3 or wt[0] == 4 or wt[0] > 5:
        return pb_fail(e, PB_BAD_WIRE_TYPE, at, msg, field[0], wt[0], 0)
    return 0


cdef inline int pb_expect(pb_span *s, uint32_t field, uint32_t wt, uint32_t expected,
                          pb_error *e, const char *msg) noexcept nogil:
    if wt != expected:
        return pb_fail(e, PB_WRONG_WIRE_TYPE, s.p, msg, field, wt, expected)
    return 0


cdef inline int pb_double(pb_span *s, double *out, pb_error *e, const char *msg) noexcept nogil:
    if s.end - s.p < 8:
        return pb_fail(e, PB_TRUNCATED_FIXED, s.p, msg, 0, 1, 0)
    out[0] = ff_load_le_double(s.p)
    s.p += 8
    return 0


cdef inline int pb_int64(pb_span *s, int64_t *out, pb_error *e, const char *msg) noexcept nogil:
    cdef uint64_t v
    if pb_varint(s, &v, e, msg) < 0:
        return -1
    out[0] = <int64_t>v
    return 0


cdef inline int pb_len(pb_span *s, pb_span *sub, pb_error *e, const char *msg) noexcept nogil:
    """A length-delimited field: its bytes as ``sub``, checked against the end."""
    cdef uint64_t n
    cdef const unsigned char *at = s.p
    if pb_varint(s, &n, e, msg) < 0:
        return -1
    if n > <uint64_t>(s.end - s.p):
        return pb_fail(e, PB_LENGTH_PAST_END, at, msg, <uint32_t>min(n, 0xFFFFFFFFu), <uint32_t>(s.end - s.p), 0)
    sub.p = s.p
    sub.end = s.p + n
    s.p = sub.end
    return 0


cdef inline int pb_skip(pb_span *s, uint32_t wt, pb_error *e, const char *msg) noexcept nogil:
    """Skip one field value of wire type ``wt`` (unknown fields)."""
    cdef uint64_t v
    cdef pb_span sub
    if wt == WT_VARINT:
        return pb_varint(s, &v, e, msg)
    if wt == WT_FIXED64:
        if s.end - s.p < 8:
            return pb_fail(e, PB_TRUNCATED_FIXED, s.p, msg, 0, wt, 0)
        s.p += 8
        return 0
    if wt == WT_FIXED32:
        if s.end - s.p < 4:
            return pb_fail(e, PB_TRUNCATED_FIXED, s.p, msg, 0, wt, 0)
        s.p += 4
        return 0
    return pb_len(s, &sub, e, msg)


cdef str pb_reason(const pb_error *e):
    """The FrameError reason for a recorded error (cold)."""
    cdef str msg = e.message.decode("ascii") if e.message != NULL else "message"
    if e.code == PB_TRUNCATED_VARINT:
        return f"truncated varint in {msg}"
    if e.code == PB_LONG_VARINT:
        return f"varint longer than 10 bytes in {msg}"
    if e.code == PB_TRUNCATED_FIXED:
        return f"truncated fixed-size value in {msg}"
    if e.code == PB_LENGTH_PAST_END:
        return f"length {e.field} runs past the end of {msg} ({e.wire_type} bytes left)"
    if e.code == PB_BAD_WIRE_TYPE:
        return f"unsupported wire type {e.wire_type} (field {e.field}) in {msg}"
    if e.code == PB_WRONG_WIRE_TYPE:
        return f"field {e.field} of {msg} has wire type {e.wire_type}, expected {e.expected}"
    if e.code == PB_FIELD_ZERO:
        return f"field number 0 in {msg}"
    if e.code == PB_FIELD_RANGE:
        return f"field number above 536870911 in {msg}"
    return f"malformed protobuf in {msg}"
