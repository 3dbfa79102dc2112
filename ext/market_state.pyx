# MarketState: one ff_slot per instrument in one C array, the dirty-slot list,
# and the per-flush output (TickBatch). Decoders write into it.

_SLOT_DTYPES = {}

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX

cdef extern from "resp_writer.h" nogil:
    size_t ff_resp_header_len(uint64_t v)
    size_t ff_resp_bulk_len(size_t n)
    char *ff_resp_put_header(char *p, const char *end, char type, uint64_t v)
    char *ff_resp_put_raw(char *p, const char *end, const void *src, size_t n)
    char *ff_resp_put_bulk(char *p, const char *end, const void *src, size_t n)


cdef tuple _field_table(const ff_field *fields, size_t count, size_t base):
    names, formats, offsets = [], [], []
    for i in range(count):
        names.append(fields[i].name.decode("ascii"))
        formats.append(f"={chr(fields[i].kind)}{fields[i].size}")
        offsets.append(base + fields[i].offset)
    return names, formats, offsets


def slot_dtype(broker="kite"):
    """The numpy dtype of one slot of a ``broker`` state ("kite": 5 depth
    levels; "upstox": 30 levels plus greeks, iv and the 1-minute bar), built
    from the C structs' own layout."""
    if broker not in ("kite", "upstox"):
        raise ValueError(f"unknown broker {broker!r} (expected 'kite' or 'upstox')")
    cached = _SLOT_DTYPES.get(broker)
    if cached is not None:
        return cached
    import numpy as np

    cdef int capacity = FF_KITE_DEPTH if broker == "kite" else FF_DEPTH
    cdef bint ext = broker == "upstox"
    level_names, level_formats, level_offsets = _field_table(ff_level_fields, FF_N_LEVEL_FIELDS, 0)
    level = np.dtype({"names": level_names, "formats": level_formats, "offsets": level_offsets,
                      "itemsize": sizeof(ff_level)})
    names, formats, offsets = _field_table(ff_slot_fields, FF_N_SLOT_FIELDS, 0)
    names.append("depth")
    formats.append((level, (capacity,)))
    offsets.append(sizeof(ff_slot))
    if ext:
        ext_names, ext_formats, ext_offsets = _field_table(
            ff_ext_fields, FF_N_EXT_FIELDS, sizeof(ff_slot) + capacity * sizeof(ff_level))
        names += ext_names
        formats += ext_formats
        offsets += ext_offsets
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets,
                      "itemsize": ff_slot_stride(capacity, ext)})
    _SLOT_DTYPES[broker] = dtype
    return dtype


@cython.final
@cython.freelist(8)
cdef class TickBatch:
    """The ticks of every instrument that changed since the previous flush.

    ``data`` holds the msgpack maps back to back; tick ``i`` is
    ``data[offsets[i]:offsets[i + 1]]`` and belongs to state slot ``slots[i]``.
    :meth:`frame` turns the batch into one msgpack array without re-encoding;
    :meth:`resp_hset` into one Redis ``HSET`` command. ``receive_time_ns`` is
    the oldest positive receive time (epoch ns) of its ticks, 0 when none has
    one (for latency accounting: one int per batch, no object per tick).
    """

    cdef readonly bytes data
    cdef bytes _slots
    cdef bytes _offsets
    # The state's symbol table (shared, immutable): every slot's symbol as a
    # RESP bulk string, back to back, and the int64 offsets (slots + 1).
    # Only bytes members: a TickBatch stays untracked by the cyclic GC.
    cdef bytes _sym
    cdef bytes _sym_off
    cdef Py_ssize_t n
    cdef readonly int64_t receive_time_ns
    #: The flush's options-flow events as one msgpack array (b"" when none or flow is off).
    cdef readonly bytes flow
    cdef readonly Py_ssize_t flow_count
    cdef bytes _flow_offsets

    def __init__(self):
        raise TypeError("TickBatch objects are made by MarketState.flush()")

    @staticmethod
    cdef TickBatch _create(bytes data, bytes slots, bytes offsets, Py_ssize_t n, bytes sym, bytes sym_off,
                           int64_t receive_time_ns, bytes flow=b"", bytes flow_offsets=b"",
                           Py_ssize_t flow_count=0):
        cdef TickBatch batch = TickBatch.__new__(TickBatch)
        batch.flow = flow
        batch._flow_offsets = flow_offsets
        batch.flow_count = flow_count
        batch.data = data
        batch._slots = slots
        batch._offsets = offsets
        batch.n = n
        batch._sym = sym
        batch._sym_off = sym_off
        batch.receive_time_ns = receive_time_ns
        return batch

    def __len__(self):
        return self.n

    def flow_events(self):
        """The msgpack map of each flow event (a list of bytes, sliced from :attr:`flow`)."""
        if self.flow_count == 0:
            return []
        cdef const int64_t *offs = <const int64_t *>PyBytes_AS_STRING(self._flow_offsets)
        return [self.flow[offs[i]:offs[i + 1]] for i in range(self.flow_count)]

    @property
    def slots(self):
        """int32 numpy array: the state slot of each tick."""
        import numpy as np

        return np.frombuffer(self._slots, dtype=np.int32)

    @property
    def offsets(self):
        """int64 numpy array of n + 1 offsets into :attr:`data`."""
        import numpy as np

        return np.frombuffer(self._offsets, dtype=np.int64)

    def __getitem__(self, Py_ssize_t i):
        """The msgpack blob of tick ``i``."""
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError("TickBatch index out of range")
        cdef const int64_t *offs = <const int64_t *>PyBytes_AS_STRING(self._offsets)
        return self.data[offs[i]:offs[i + 1]]

    def __iter__(self):
        for i in range(self.n):
            yield self[i]

    def frame(self):
        """One msgpack array of all the ticks: an array header spliced before
        :attr:`data` (no re-encoding)."""
        cdef ff_buf head
        head.data = NULL
        head.len = head.cap = 0
        try:
            ff_buf_reserve(&head, 5)
            ff_mp_array_header(&head, <size_t>self.n)
            return PyBytes_FromStringAndSize(<char *>head.data, head.len) + self.data
        finally:
            ff_buf_free(&head)

    def resp_hset(self, bytes key not None):
        """``HSET key symbol_1 blob_1 ... symbol_n blob_n`` as one RESP2
        command (an array of bulk strings), ready to write to a Redis
        connection; ``b""`` for an empty batch. A symbol is the instrument's
        ``"EXCHANGE:TRADINGSYMBOL"`` (UTF-8), a blob its tick (``self[i]``).

        Built in C in two passes over the batch: the exact size, then the
        bytes, into one ``bytes`` object (no Python object per tick)."""
        cdef Py_ssize_t i, n = self.n
        if n == 0:
            return b""
        cdef const int64_t *offs = <const int64_t *>PyBytes_AS_STRING(self._offsets)
        cdef const int32_t *slots = <const int32_t *>PyBytes_AS_STRING(self._slots)
        cdef const int64_t *sym_off = <const int64_t *>PyBytes_AS_STRING(self._sym_off)
        cdef const char *sym = PyBytes_AS_STRING(self._sym)
        cdef const char *data = PyBytes_AS_STRING(self.data)
        cdef size_t key_len = <size_t>PyBytes_GET_SIZE(key)
        cdef int32_t s
        # Pass 1: the exact size. Every term is bounded by bytes that already
        # exist (the blobs, the symbol table, the key) plus 25 bytes of framing
        # per element, so the sum cannot overflow size_t.
        cdef size_t total = (ff_resp_header_len(<uint64_t>(2 + 2 * n)) + ff_resp_bulk_len(4)
                             + ff_resp_bulk_len(key_len))
        for i in range(n):
            s = slots[i]
            total += <size_t>(sym_off[s + 1] - sym_off[s])
            total += ff_resp_bulk_len(<size_t>(offs[i + 1] - offs[i]))
        if total > <size_t>PY_SSIZE_T_MAX:
            raise MemoryError()
        # Pass 2: write.
        cdef bytes out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>total)
        cdef char *p = PyBytes_AS_STRING(out)
        cdef const char *end = p + total
        p = ff_resp_put_header(p, end, b"*", <uint64_t>(2 + 2 * n))
        p = ff_resp_put_bulk(p, end, b"HSET", 4)
        p = ff_resp_put_bulk(p, end, PyBytes_AS_STRING(key), key_len)
        for i in range(n):
            s = slots[i]
            p = ff_resp_put_raw(p, end, sym + sym_off[s], <size_t>(sym_off[s + 1] - sym_off[s]))
            p = ff_resp_put_bulk(p, end, data + offs[i], <size_t>(offs[i + 1] - offs[i]))
        if FASTFLOW_DEBUG:
            if p != end:
                raise AssertionError(f"resp_hset wrote {p - (end - total)} of {total} bytes")
        return out

    def symbols(self):
        """The ``"EXCHANGE:TRADINGSYMBOL"`` of each tick, as a list (cold)."""
        cdef const int32_t *slots = <const int32_t *>PyBytes_AS_STRING(self._slots)
        cdef const int64_t *sym_off = <const int64_t *>PyBytes_AS_STRING(self._sym_off)
        result = []
        cdef Py_ssize_t i
        for i in range(self.n):
            bulk = self._sym[sym_off[slots[i]]:sym_off[slots[i] + 1]]  # b"$<len>\r\n<symbol>\r\n"
            result.append(bulk[bulk.index(b"\r\n") + 2:len(bulk) - 2].decode("utf-8"))
        return result

    def __repr__(self):
        return f"<TickBatch ticks={self.n} bytes={len(self.data)}>"


@cython.final
cdef class MarketState:
    """The live state of every instrument of an instrument master.

    One C struct per instrument (see ``docs/state.md`` for the fields), a
    dirty-slot list that decoders append to, and :meth:`flush`, which encodes
    the changed instruments in C. Exposes the buffer protocol (read-only) so
    :attr:`array` is a zero-copy numpy structured view.
    """

    cdef char *base               # n slots of `stride` bytes
    cdef Py_ssize_t stride
    cdef int depth_capacity
    cdef bint has_ext
    cdef object _dtype
    cdef Py_ssize_t n
    cdef uint8_t *dirty_flag
    cdef int32_t *dirty_list
    cdef Py_ssize_t n_dirty
    cdef TokenIndex index          # Kite: instrument_token -> slot
    cdef KeyIndex key_index        # Upstox: instrument_key bytes -> slot
    cdef readonly str broker
    cdef readonly object instruments
    cdef list _symbols
    cdef list _keys                # Upstox instrument keys, or None
    # Pre-encoded msgpack per slot, back to back: the identity pair
    # (instrument_token/instrument_key and its value) then the symbol string.
    cdef unsigned char *sym_data
    cdef int64_t *sym_off          # 2 * n + 1 offsets
    # The symbols again, as RESP bulk strings for TickBatch.resp_hset
    # ("$<len>\r\n<utf-8>\r\n" per slot, back to back) and their n + 1 int64
    # offsets: immutable bytes that every batch shares.
    cdef bytes _resp_sym
    cdef bytes _resp_sym_off
    cdef ff_buf out
    cdef FlowDetector flow         # None unless enable_flow()
    cdef uint64_t flushes
    cdef uint64_t flushed_ticks
    cdef Py_ssize_t _buf_shape[1]
    cdef object __weakref__

    def __cinit__(self, instruments):
        broker = str(getattr(instruments, "broker", "kite"))
        if broker not in ("kite", "upstox"):
            raise ValueError(f"unknown broker {broker!r} (expected 'kite' or 'upstox')")
        tokens = [int(t) for t in instruments.token]
        divisors = [int(d) for d in instruments.price_divisor]
        symbols = [str(sym) for sym in instruments.symbol]
        cdef Py_ssize_t n = len(tokens)
        if broker == "kite":
            segments = [t & 0xFF for t in tokens]
            tradable = [seg != KITE_SEGMENT_INDICES for seg in segments]
            keys = None
        else:
            segments = [int(seg) for seg in instruments.segment_id]
            tradable = [bool(t) for t in instruments.tradable]
            keys = [str(k) for k in instruments.instrument_key]
        cdef Py_ssize_t i, total = 0
        cdef bytes enc
        if n == 0:
            raise ValueError("MarketState needs at least one instrument")
        if (len(divisors) != n or len(symbols) != n or len(segments) != n or len(tradable) != n
                or (keys is not None and len(keys) != n)):
            raise ValueError("instrument columns have different lengths")
        if keys is None:
            self.index = TokenIndex(tokens)
        else:
            self.index = TokenIndex([])
            self.key_index = KeyIndex(keys)
        self.broker = broker
        self.n = n
        self.depth_capacity = FF_KITE_DEPTH if keys is None else FF_DEPTH
        self.has_ext = keys is not None
        self.stride = <Py_ssize_t>ff_slot_stride(self.depth_capacity, self.has_ext)
        self._dtype = slot_dtype(broker)
        self.base = <char *>PyMem_Malloc(n * self.stride)
        self.dirty_flag = <uint8_t *>PyMem_Malloc(n * sizeof(uint8_t))
        self.dirty_list = <int32_t *>PyMem_Malloc(n * sizeof(int32_t))
        self.sym_off = <int64_t *>PyMem_Malloc((2 * n + 1) * sizeof(int64_t))
        if self.base == NULL or self.dirty_flag == NULL or self.dirty_list == NULL or self.sym_off == NULL:
            raise MemoryError()
        memset(self.base, 0, n * self.stride)
        memset(self.dirty_flag, 0, n * sizeof(uint8_t))
        encoded = []
        cdef ff_slot *sp
        for i in range(n):
            if divisors[i] <= 0:
                raise ValueError(f"price divisor of slot {i} must be positive, got {divisors[i]}")
            if not 0 <= tokens[i] <= 0xFFFFFFFF:
                raise ValueError(f"token {tokens[i]} at slot {i} is not a 32-bit unsigned integer")
            sp = self.slot_ptr(i)
            sp.token = <uint32_t>tokens[i]
            sp.segment = <uint8_t>segments[i]
            sp.tradable = tradable[i]
            sp.broker = FF_BROKER_KITE if keys is None else FF_BROKER_UPSTOX
            sp.price_divisor = divisors[i]
            sp.depth_capacity = <uint8_t>self.depth_capacity
            sp.has_ext = self.has_ext
            if keys is None:
                enc = _msgpack_str("instrument_token") + _msgpack_uint(tokens[i])
            else:
                enc = _msgpack_str("instrument_key") + _msgpack_str(keys[i])
            encoded.append(enc)
            encoded.append(_msgpack_str(symbols[i]))
        for i in range(2 * n):
            self.sym_off[i] = total
            total += len(encoded[i])
        self.sym_off[2 * n] = total
        self.sym_data = <unsigned char *>PyMem_Malloc(max(total, 1))
        if self.sym_data == NULL:
            raise MemoryError()
        for i in range(2 * n):
            enc = encoded[i]
            memcpy(self.sym_data + self.sym_off[i], PyBytes_AS_STRING(enc), len(enc))
        bulks = []
        for sym in symbols:
            raw = (<str>sym).encode("utf-8")
            bulks.append(b"$%d\r\n%b\r\n" % (len(raw), raw))
        self._resp_sym = b"".join(bulks)
        self._resp_sym_off = PyBytes_FromStringAndSize(NULL, (n + 1) * sizeof(int64_t))
        cdef int64_t *resp_off = <int64_t *>PyBytes_AS_STRING(self._resp_sym_off)
        total = 0
        for i in range(n):
            resp_off[i] = total
            total += len(bulks[i])
        resp_off[n] = total
        self._symbols = symbols
        self._keys = keys
        self.instruments = instruments
        self.n_dirty = 0
        self._buf_shape[0] = n * self.stride

    def __dealloc__(self):
        PyMem_Free(self.base)
        PyMem_Free(self.dirty_flag)
        PyMem_Free(self.dirty_list)
        PyMem_Free(self.sym_off)
        PyMem_Free(self.sym_data)
        ff_buf_free(&self.out)

    # -- the buffer protocol: the raw slot array, read-only ------------------

    def __getbuffer__(self, Py_buffer *view, int flags):
        if flags & PyBUF_WRITABLE:
            raise BufferError("MarketState exports a read-only buffer")
        view.buf = <void *>self.base
        view.obj = self
        view.len = self._buf_shape[0]
        view.readonly = 1
        view.itemsize = 1
        view.format = "B"
        view.ndim = 1
        view.shape = self._buf_shape
        view.strides = NULL
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer *view):
        pass

    # -- hot-path helpers (C only) --------------------------------------------

    cdef inline ff_slot *slot_ptr(self, Py_ssize_t slot) noexcept nogil:
        return <ff_slot *>(self.base + slot * self.stride)

    cdef inline int updated(self, int32_t slot, ff_slot *s) except -1:
        """A decoder applied an update to ``slot``: mark it, and run flow detection."""
        self.mark_dirty(slot)
        if self.flow is not None:
            self.flow.update(slot, s, self.base, self.stride)
        return 0

    cdef inline void mark_dirty(self, int32_t slot) noexcept nogil:
        if not self.dirty_flag[slot]:
            self.dirty_flag[slot] = 1
            self.dirty_list[self.n_dirty] = slot
            self.n_dirty += 1

    # -- public, cold ---------------------------------------------------------

    def __len__(self):
        return self.n

    @property
    def array(self):
        """The whole state as a read-only numpy structured array (no copy).

        Each access makes a new view of the same memory. It is not cached:
        numpy arrays are not tracked by the garbage collector, so a cached
        view (whose base is this state) would keep the state alive forever."""
        import numpy as np

        return np.frombuffer(self, dtype=self._dtype)

    @property
    def dirty_count(self):
        """Instruments changed since the last flush."""
        return self.n_dirty

    def slot(self, key):
        """The slot of an instrument token (int) or symbol (``"NSE:INFY"``)."""
        cdef int32_t s
        if isinstance(key, bool):
            raise TypeError("an instrument key is an int token or a str symbol, not bool")
        if isinstance(key, str):
            slot = self.instruments.slot(key)
            if not 0 <= slot < self.n:
                raise IndexError(f"instruments.slot({key!r}) returned {slot}, outside 0..{self.n - 1}")
            return slot
        if not PyIndex_Check(key):  # ints and numpy integers
            raise TypeError(f"an instrument key is an int token or a str symbol, not {type(key).__name__}")
        key = PyNumber_Index(key)
        if self._keys is not None:
            raise KeyError(f"unknown instrument token {key}: Upstox instruments are looked up by "
                           f"instrument_key ('NSE_EQ|INE009A01021') or symbol ('NSE:INFY')")
        s = self.index.lookup(<uint32_t>key) if 0 <= key <= 0xFFFFFFFF else -1
        if s < 0:
            raise KeyError(f"unknown instrument token {key}")
        return s

    def tick(self, key):
        """The tick of one instrument as a dict with kiteconnect's keys.

        ``key`` is an instrument token or an ``EXCHANGE:TRADINGSYMBOL`` symbol.
        """
        return self.tick_at(self.slot(key))

    def tick_at(self, Py_ssize_t slot):
        """The tick of the instrument in ``slot``."""
        if not 0 <= slot < self.n:
            raise IndexError(f"slot {slot} out of range (0..{self.n - 1})")
        return tick_dict(self.slot_ptr(slot), self._symbols[slot],
                         None if self._keys is None else self._keys[slot])

    def encode(self, key):
        """The msgpack blob of one instrument's tick (as flush() would emit it)."""
        cdef Py_ssize_t slot = self.slot(key)
        cdef ff_buf b
        b.data = NULL
        b.len = b.cap = 0
        try:
            self._encode_slot(&b, <int32_t>slot)
            return PyBytes_FromStringAndSize(<char *>b.data, b.len)
        finally:
            ff_buf_free(&b)

    cdef int _encode_slot(self, ff_buf *b, int32_t slot) except -1:
        cdef int64_t ident = self.sym_off[2 * slot]
        cdef int64_t sym = self.sym_off[2 * slot + 1]
        cdef int64_t end = self.sym_off[2 * slot + 2]
        ff_buf_reserve(b, TICK_MAX_BYTES + <size_t>(end - ident))
        encode_tick(b, self.slot_ptr(slot), self.sym_data + ident, <size_t>(sym - ident),
                    self.sym_data + sym, <size_t>(end - sym))
        return 0

    def flush(self):
        """Encode every instrument changed since the last flush, clear the
        dirty set and return the encoded ticks as a :class:`TickBatch` (its
        ``receive_time_ns``: the oldest receive time of those ticks)."""
        cdef Py_ssize_t i, n = self.n_dirty
        cdef int32_t slot
        cdef int64_t recv, oldest = 0
        cdef bytes slots_b = PyBytes_FromStringAndSize(NULL, n * sizeof(int32_t))
        cdef bytes offsets_b = PyBytes_FromStringAndSize(NULL, (n + 1) * sizeof(int64_t))
        cdef int64_t *offs = <int64_t *>PyBytes_AS_STRING(offsets_b)
        self.out.len = 0
        offs[0] = 0
        for i in range(n):
            slot = self.dirty_list[i]
            self._encode_slot(&self.out, slot)
            offs[i + 1] = <int64_t>self.out.len
            recv = self.slot_ptr(slot).recv_ns
            if recv > 0 and (oldest == 0 or recv < oldest):
                oldest = recv
        for i in range(n):
            self.dirty_flag[self.dirty_list[i]] = 0
        if n:
            memcpy(PyBytes_AS_STRING(slots_b), self.dirty_list, n * sizeof(int32_t))
        data = PyBytes_FromStringAndSize(<char *>self.out.data, <Py_ssize_t>self.out.len)
        self.n_dirty = 0
        self.flushes += 1
        self.flushed_ticks += <uint64_t>n
        if self.flow is not None:
            flow, flow_offsets, count = self.flow.take()
            return TickBatch._create(data, slots_b, offsets_b, n, self._resp_sym, self._resp_sym_off, oldest,
                                     flow, flow_offsets, count)
        return TickBatch._create(data, slots_b, offsets_b, n, self._resp_sym, self._resp_sym_off, oldest)

    def snapshot(self):
        """Every instrument that has had at least one update (``seq`` > 0), in
        slot order, as a :class:`TickBatch` with the blobs :meth:`flush` would
        emit (``receive_time_ns``: the oldest of them). Leaves the dirty set
        and the flush counters alone (for rewriting the full latest state,
        e.g. into a restarted Redis)."""
        cdef Py_ssize_t i, k = 0, count = 0
        cdef int64_t recv, oldest = 0
        for i in range(self.n):
            if self.slot_ptr(i).seq:
                count += 1
                recv = self.slot_ptr(i).recv_ns
                if recv > 0 and (oldest == 0 or recv < oldest):
                    oldest = recv
        cdef bytes slots_b = PyBytes_FromStringAndSize(NULL, count * sizeof(int32_t))
        cdef bytes offsets_b = PyBytes_FromStringAndSize(NULL, (count + 1) * sizeof(int64_t))
        cdef int32_t *slots = <int32_t *>PyBytes_AS_STRING(slots_b)
        cdef int64_t *offs = <int64_t *>PyBytes_AS_STRING(offsets_b)
        # A buffer of its own: a snapshot of a large state must not leave the
        # per-flush buffer that large for the rest of the session.
        cdef ff_buf b
        b.data = NULL
        b.len = b.cap = 0
        offs[0] = 0
        try:
            for i in range(self.n):
                if not self.slot_ptr(i).seq:
                    continue
                slots[k] = <int32_t>i
                self._encode_slot(&b, <int32_t>i)
                k += 1
                offs[k] = <int64_t>b.len
            data = PyBytes_FromStringAndSize(<char *>b.data, <Py_ssize_t>b.len)
        finally:
            ff_buf_free(&b)
        return TickBatch._create(data, slots_b, offsets_b, count, self._resp_sym, self._resp_sym_off, oldest)

    def enable_flow(self, dict params not None, list statics not None, bytes ident not None,
                    bytes ident_off not None, uint64_t first_id=1):
        """Run options-flow detection on every update from now on (see
        ``fastflow.analytics.flow.enable``, which builds these columns from the
        instrument master and the ``[flow]`` configuration); each flush then carries
        its events in ``TickBatch.flow``."""
        self.flow = FlowDetector(self.n, params, statics, ident, ident_off, self._keys is not None, first_id)

    @property
    def flow_stats(self):
        """The flow detector's counters, or None when flow is off."""
        return None if self.flow is None else self.flow.stats()

    def clear(self):
        """Forget all market data (identity fields stay) and the dirty set."""
        cdef Py_ssize_t i
        cdef ff_slot keep
        cdef ff_slot *s
        for i in range(self.n):
            s = self.slot_ptr(i)
            memcpy(&keep, s, sizeof(ff_slot))  # the header only
            memset(s, 0, <size_t>self.stride)
            s.token = keep.token
            s.segment = keep.segment
            s.tradable = keep.tradable
            s.broker = keep.broker
            s.price_divisor = keep.price_divisor
            s.depth_capacity = keep.depth_capacity
            s.has_ext = keep.has_ext
            self.dirty_flag[i] = 0
        self.n_dirty = 0
        if self.flow is not None:
            self.flow.reset()

    def stats(self):
        """Counters (cold)."""
        return {
            "instruments": self.n,
            "dirty": self.n_dirty,
            "flushes": self.flushes,
            "flushed_ticks": self.flushed_ticks,
        }


cdef bytes _msgpack_uint(uint64_t v):
    cdef ff_buf b
    b.data = NULL
    b.len = b.cap = 0
    try:
        ff_buf_reserve(&b, 9)
        ff_mp_uint(&b, v)
        return PyBytes_FromStringAndSize(<char *>b.data, <Py_ssize_t>b.len)
    finally:
        ff_buf_free(&b)


cdef bytes _msgpack_str(str s):
    cdef bytes raw = s.encode("utf-8")
    cdef ff_buf b
    b.data = NULL
    b.len = b.cap = 0
    try:
        ff_buf_reserve(&b, 5 + len(raw))
        ff_mp_str_header(&b, <size_t>len(raw))
        ff_mp_raw(&b, PyBytes_AS_STRING(raw), <size_t>len(raw))
        return PyBytes_FromStringAndSize(<char *>b.data, <Py_ssize_t>b.len)
    finally:
        ff_buf_free(&b)
