# KiteDecoder: Zerodha Kite binary frames -> MarketState. Layouts and offsets
# are documented in docs/wire-format.md.
#
# A frame is checked whole before any packet is applied (framing pass), so a
# malformed frame raises FrameError and leaves the state untouched. The apply
# pass reads only inside packets whose length is one of the five layouts (and
# lies inside the frame), so every load is in bounds.


cdef inline int64_t now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef enum:
    # The tick keys each Kite packet layout carries.
    KITE_HAVE_INDEX_QUOTE = FF_HAVE_LTP | FF_HAVE_OHLC | FF_HAVE_CHANGE
    KITE_HAVE_INDEX_FULL = KITE_HAVE_INDEX_QUOTE | FF_HAVE_EXCH_TS
    KITE_HAVE_QUOTE = (FF_HAVE_LTP | FF_HAVE_LTQ | FF_HAVE_ATP | FF_HAVE_VOLUME | FF_HAVE_TOTALS
                       | FF_HAVE_OHLC | FF_HAVE_CHANGE)
    KITE_HAVE_FULL = (KITE_HAVE_QUOTE | FF_HAVE_LTT | FF_HAVE_OI | FF_HAVE_OI_RANGE | FF_HAVE_EXCH_TS
                      | FF_HAVE_DEPTH | FF_HAVE_DEPTH_ORDERS)


cdef inline void kite_change(ff_slot *s) noexcept nogil:
    # kiteconnect: (last_price - close) * 100 / close on rupee floats, 0 if close == 0.
    cdef double div, close
    if s.close == 0:
        s.change = 0.0
    else:
        div = <double>s.price_divisor
        close = <double>s.close / div
        s.change = (<double>s.last_price / div - close) * 100.0 / close


cdef inline void kite_depth(ff_slot *s, const unsigned char *p) noexcept nogil:
    cdef int i
    cdef const unsigned char *q
    cdef ff_level *lv
    for i in range(FF_KITE_DEPTH):
        lv = &s.depth[i]
        q = p + KITE_DEPTH_OFFSET + i * KITE_DEPTH_ENTRY_LEN
        lv.bid_quantity = ff_load_be32(q)
        lv.bid_price = ff_load_be_i32(q + 4)
        lv.bid_orders = ff_load_be16(q + 8)
        q = p + KITE_ASK_OFFSET + i * KITE_DEPTH_ENTRY_LEN
        lv.ask_quantity = ff_load_be32(q)
        lv.ask_price = ff_load_be_i32(q + 4)
        lv.ask_orders = ff_load_be16(q + 8)
    s.depth_levels = FF_KITE_DEPTH


cdef inline void kite_apply(ff_slot *s, const unsigned char *p, uint16_t length) noexcept nogil:
    """Apply one packet of a known-good ``length`` to ``s``."""
    s.last_price = ff_load_be_i32(p + 4)
    if length == KITE_LTP_LEN:
        s.mode = FF_MODE_LTP
        s.have |= FF_HAVE_LTP
    elif length >= KITE_QUOTE_LEN:  # 44 or 184: tradable layout
        s.last_quantity = ff_load_be32(p + 8)
        s.average_price = ff_load_be_i32(p + 12)
        s.volume = ff_load_be32(p + 16)
        s.total_buy_quantity = ff_load_be32(p + 20)
        s.total_sell_quantity = ff_load_be32(p + 24)
        s.open = ff_load_be_i32(p + 28)
        s.high = ff_load_be_i32(p + 32)
        s.low = ff_load_be_i32(p + 36)
        s.close = ff_load_be_i32(p + 40)
        if length == KITE_FULL_LEN:
            s.last_trade_time = <int64_t>ff_load_be32(p + 44) * 1000
            s.oi = ff_load_be32(p + 48)
            s.oi_day_high = ff_load_be32(p + 52)
            s.oi_day_low = ff_load_be32(p + 56)
            s.exchange_timestamp = <int64_t>ff_load_be32(p + 60) * 1000
            kite_depth(s, p)
            s.mode = FF_MODE_FULL
            s.have |= KITE_HAVE_FULL
        else:
            s.mode = FF_MODE_QUOTE
            s.have |= KITE_HAVE_QUOTE
    else:  # 28 or 32: index layout, high/low/open/close order
        s.high = ff_load_be_i32(p + 8)
        s.low = ff_load_be_i32(p + 12)
        s.open = ff_load_be_i32(p + 16)
        s.close = ff_load_be_i32(p + 20)
        s.net_change = ff_load_be_i32(p + 24)
        if length == KITE_INDEX_FULL_LEN:
            s.exchange_timestamp = <int64_t>ff_load_be32(p + 28) * 1000
            s.mode = FF_MODE_FULL
            s.have |= KITE_HAVE_INDEX_FULL
        else:
            s.mode = FF_MODE_QUOTE
            s.have |= KITE_HAVE_INDEX_QUOTE
    if s.have & FF_HAVE_CHANGE:
        kite_change(s)


cdef inline bint kite_known_length(uint16_t length) noexcept nogil:
    return (length == KITE_LTP_LEN or length == KITE_QUOTE_LEN or length == KITE_FULL_LEN
            or length == KITE_INDEX_QUOTE_LEN or length == KITE_INDEX_FULL_LEN)


cdef class FrameDecoder:
    """What every broker decoder shares: ``feed(frame, recv_ns=0)`` takes one
    whole WebSocket message (bytes, bytearray, memoryview or any contiguous
    buffer, read in place) and its receive time as an int of epoch
    nanoseconds (0 means now), and returns the number of updates applied.
    Subclasses implement ``_feed``; one virtual call per frame."""

    def __init__(self, *args, **kwargs):
        if type(self) is FrameDecoder:
            raise TypeError("FrameDecoder is abstract: use KiteDecoder or UpstoxDecoder")

    def feed(self, frame, recv_ns=0):
        """Decode one message; returns the number of updates applied."""
        cdef Py_buffer view
        cdef int64_t ns
        if not PyIndex_Check(recv_ns):  # a float here is almost surely seconds
            raise TypeError(f"recv_ns must be an int of epoch nanoseconds, not {type(recv_ns).__name__}")
        ns = PyNumber_Index(recv_ns)
        if PyBytes_CheckExact(frame):
            return self._feed(<const unsigned char *>PyBytes_AS_STRING(frame),
                              PyBytes_GET_SIZE(frame), ns)
        PyObject_GetBuffer(frame, &view, PyBUF_SIMPLE)
        try:
            return self._feed(<const unsigned char *>view.buf, view.len, ns)
        finally:
            PyBuffer_Release(&view)

    cdef Py_ssize_t _feed(self, const unsigned char *buf, Py_ssize_t size, int64_t recv_ns) except -1:
        raise NotImplementedError


@cython.final
cdef class KiteDecoder(FrameDecoder):
    """Decodes Kite binary WebSocket messages into a :class:`MarketState`.

    ``feed(frame)`` takes one whole message (bytes, bytearray, memoryview or
    any contiguous buffer) and returns the number of packets applied. A
    1-byte message is a heartbeat (returns 0). Packets whose token is not in
    the instrument master, or whose length is no known mode, are counted
    (``stats()["unknown_tokens"]``, ``stats()["unknown_packets"]``) and
    skipped. A malformed message (broken framing) raises :class:`FrameError`
    and applies nothing.
    """

    cdef readonly MarketState state
    cdef TokenIndex index
    cdef uint64_t frames
    cdef uint64_t packets
    cdef uint64_t heartbeats
    cdef uint64_t unknown_tokens
    cdef uint64_t unknown_packets
    cdef uint64_t frame_errors
    cdef uint64_t bytes_in

    def __cinit__(self, MarketState state not None):
        if state.key_index is not None:
            raise ValueError("KiteDecoder needs a MarketState built from Kite instruments "
                             "(Instruments.from_kite_csv)")
        self.state = state
        self.index = state.index

    cdef Py_ssize_t _feed(self, const unsigned char *buf, Py_ssize_t size, int64_t recv_ns) except -1:
        cdef Py_ssize_t count, i, pos
        cdef uint16_t length
        cdef int32_t slot
        cdef Py_ssize_t applied = 0
        cdef MarketState state = self.state
        cdef ff_slot *s

        self.bytes_in += <uint64_t>size
        if size == 1:
            self.heartbeats += 1
            return 0
        if size < 2:
            return self._fail("empty message", 0)
        count = ff_load_be16(buf)

        # Framing pass: every length header and packet lies inside the frame.
        pos = 2
        for i in range(count):
            if pos + 2 > size:
                return self._fail(
                    f"truncated: packet {i} of {count} has no length header "
                    f"(message is {size} bytes)", pos)
            length = ff_load_be16(buf + pos)
            if pos + 2 + length > size:
                return self._fail(
                    f"truncated: packet {i} declares {length} bytes but only "
                    f"{size - pos - 2} remain", pos)
            pos += 2 + length
        if pos != size:
            return self._fail(
                f"trailing bytes: {count} packets end at byte {pos} of a "
                f"{size}-byte message", pos)

        # Apply pass.
        if recv_ns == 0:
            recv_ns = now_ns()
        pos = 2
        for i in range(count):
            length = ff_load_be16(buf + pos)
            if not kite_known_length(length):
                # Framing is intact, so only this packet is unreadable (a
                # mode this decoder does not know): skip it, as kiteconnect does.
                self.unknown_packets += 1
                pos += 2 + length
                continue
            slot = self.index.lookup(ff_load_be32(buf + pos + 2))
            if slot >= 0:
                s = state.slot_ptr(slot)
                kite_apply(s, buf + pos + 2, length)
                s.seq += 1
                s.recv_ns = recv_ns
                state.updated(slot, s)
                applied += 1
            else:
                self.unknown_tokens += 1
            pos += 2 + length
        self.frames += 1
        self.packets += <uint64_t>applied
        return applied

    cdef int _fail(self, str reason, Py_ssize_t offset) except -1:
        self.frame_errors += 1
        raise FrameError(reason, offset)

    def stats(self):
        """Counters (cold): frames and packets applied, heartbeats, packets
        skipped for an unknown token or an unknown length, frames rejected,
        bytes fed."""
        return {
            "frames": self.frames,
            "packets": self.packets,
            "heartbeats": self.heartbeats,
            "unknown_tokens": self.unknown_tokens,
            "unknown_packets": self.unknown_packets,
            "frame_errors": self.frame_errors,
            "bytes": self.bytes_in,
        }
