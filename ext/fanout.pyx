# FanOut: one published frame of tick maps -> per-client frames of the ticks
# on each client's watchlist, spliced from the pre-encoded blobs.
#
# feed() checks the whole frame first (a generic, bounds-checked msgpack walk:
# pass 1), reserves every buffer it will write (pass 2), and only then stores
# the blobs and marks the subscribers (pass 3): a malformed frame raises
# FrameError and changes nothing. All state lives in C arrays: per slot the
# latest blob (a reused buffer) and the subscriber ids; per client two bitsets
# over the slots (watchlist, changed since the last collect) and the changed
# slots as a list. The reference twin (fastflow/reference/fanout.py) walks the
# frame with the very same rules, so both raise the same (reason, offset).
# Pass 1 also reads each tick's "receive_time_ns" int (last_receive_ns: the
# frame's oldest, for the gateway's latency accounting).

from cpython.mem cimport PyMem_Calloc, PyMem_Realloc
from libc.stdlib cimport qsort

cdef extern from "fanout.h" nogil:
    int ff_ctz64(uint64_t x)


cdef enum:
    MP_OTHER = 0
    MP_STR = 1
    MP_ARRAY = 2
    MP_MAP = 3

cdef enum:
    FAN_OK = 0
    FAN_TRUNCATED = 1
    FAN_INVALID = 2
    FAN_NOT_ARRAY = 3
    FAN_NOT_MAP = 4
    FAN_SYMBOL_TYPE = 5
    FAN_NO_SYMBOL = 6
    FAN_TRAILING = 7

# The FrameError reasons, by code (the reference twin uses the same strings).
_FAN_REASONS = (
    "",
    "truncated msgpack value",
    "invalid msgpack type byte 0xc1",
    "frame is not a msgpack array",
    "tick is not a msgpack map",
    "tick symbol is not a msgpack str",
    "tick has no symbol",
    "trailing bytes after the frame's array",
)


cdef enum:
    FAN_HEAD_MAX = 64   # {"type": "snapshot", "ticks": [ is at most 26 bytes


cdef struct mp_head:
    Py_ssize_t hlen       # header bytes (a str's payload starts here)
    Py_ssize_t plen       # payload bytes
    uint64_t children     # values that follow: n for an array, 2n for a map
    int kind


cdef inline int mp_read_head(const unsigned char *p, Py_ssize_t avail, mp_head *h) noexcept nogil:
    """Decode the header of the msgpack value at ``p`` (``avail`` >= 1 bytes
    to the end of the frame). FAN_TRUNCATED when the header or the payload
    runs past the end; FAN_INVALID for 0xc1."""
    cdef unsigned char b = p[0]
    cdef int lb = 0          # bytes of the length field
    cdef Py_ssize_t extra = 0  # an ext's type byte
    cdef uint64_t n
    h.hlen = 1
    h.plen = 0
    h.children = 0
    h.kind = MP_OTHER
    if b <= 0x7f or b >= 0xe0 or b == 0xc0 or b == 0xc2 or b == 0xc3:
        return FAN_OK
    if b <= 0x8f:
        h.kind = MP_MAP
        h.children = 2 * <uint64_t>(b & 0x0f)
        return FAN_OK
    if b <= 0x9f:
        h.kind = MP_ARRAY
        h.children = b & 0x0f
        return FAN_OK
    if b <= 0xbf:
        h.kind = MP_STR
        h.plen = b & 0x1f
        if h.plen > avail - 1:
            return FAN_TRUNCATED
        return FAN_OK
    if b == 0xc1:
        return FAN_INVALID
    if b == 0xca or b == 0xcb or 0xcc <= b <= 0xd3:
        # float32/64, uint8..64, int8..64: a fixed payload after the type byte
        if b == 0xca:
            h.plen = 4
        elif b == 0xcb:
            h.plen = 8
        else:
            h.plen = 1 << ((b - 0xcc) & 3)
        if h.plen > avail - 1:
            return FAN_TRUNCATED
        return FAN_OK
    if 0xd4 <= b <= 0xd8:  # fixext 1..16: type byte + data
        h.hlen = 2
        h.plen = 1 << (b - 0xd4)
        if h.plen + 2 > avail:
            return FAN_TRUNCATED
        return FAN_OK
    # Variable length: bin 8/16/32, ext 8/16/32, str 8/16/32, array 16/32, map 16/32.
    if b == 0xc4 or b == 0xc7 or b == 0xd9:
        lb = 1
    elif b == 0xc5 or b == 0xc8 or b == 0xda or b == 0xdc or b == 0xde:
        lb = 2
    else:
        lb = 4
    if b == 0xc7 or b == 0xc8 or b == 0xc9:
        extra = 1
    h.hlen = 1 + lb + extra
    if h.hlen > avail:
        return FAN_TRUNCATED
    if lb == 1:
        n = p[1]
    elif lb == 2:
        n = ff_load_be16(p + 1)
    else:
        n = ff_load_be32(p + 1)
    if b == 0xdc or b == 0xdd:
        h.kind = MP_ARRAY
        h.children = n
        return FAN_OK
    if b == 0xde or b == 0xdf:
        h.kind = MP_MAP
        h.children = 2 * n
        return FAN_OK
    if b == 0xd9 or b == 0xda or b == 0xdb:
        h.kind = MP_STR
    if n > <uint64_t>(avail - h.hlen):
        return FAN_TRUNCATED
    h.plen = <Py_ssize_t>n
    return FAN_OK


cdef inline int64_t mp_receive_time(const unsigned char *p) noexcept nogil:
    """The value of the complete msgpack value at ``p`` (bounds already
    checked by mp_skip) when it is an int in 1 .. 2**63 - 1 in any encoding
    (fixint, uint 8..64, int 8..64); 0 for anything else."""
    cdef unsigned char b = p[0]
    cdef uint64_t u
    cdef int64_t v
    if b <= 0x7f:
        return b
    if b == 0xcc:
        return p[1]
    if b == 0xcd:
        return ff_load_be16(p + 1)
    if b == 0xce:
        return ff_load_be32(p + 1)
    if b == 0xcf or b == 0xd3:  # uint64 above INT64_MAX reads negative: 0
        u = (<uint64_t>ff_load_be32(p + 1) << 32) | <uint64_t>ff_load_be32(p + 5)
        v = <int64_t>u
    elif b == 0xd0:
        v = <int64_t>p[1] - 256 if p[1] >= 0x80 else <int64_t>p[1]
    elif b == 0xd1:
        u = ff_load_be16(p + 1)
        v = <int64_t>u - 65536 if u >= 0x8000 else <int64_t>u
    elif b == 0xd2:
        v = ff_load_be_i32(p + 1)
    else:
        return 0
    return v if v > 0 else 0


cdef inline Py_ssize_t mp_skip(const unsigned char *buf, Py_ssize_t pos, Py_ssize_t end,
                               int *err, Py_ssize_t *err_at) noexcept nogil:
    """The offset just past the one complete value at ``pos`` (nested maps and
    arrays included), or -1 with ``err``/``err_at`` set. Iterative: a count
    of values still to skip, never more than the bytes left (each value takes
    at least one byte), so hostile nesting cannot recurse or overflow."""
    cdef uint64_t pending = 1
    cdef Py_ssize_t start
    cdef mp_head h
    cdef int r
    while pending:
        if pos >= end:
            err[0] = FAN_TRUNCATED
            err_at[0] = pos
            return -1
        r = mp_read_head(buf + pos, end - pos, &h)
        if r != FAN_OK:
            err[0] = r
            err_at[0] = pos
            return -1
        start = pos
        pos += h.hlen + h.plen
        pending = pending - 1 + h.children
        if pending > <uint64_t>(end - pos):
            err[0] = FAN_TRUNCATED
            err_at[0] = start
            return -1
    return pos


cdef struct fan_tick:
    Py_ssize_t start
    Py_ssize_t end
    int32_t slot           # -1: unknown symbol


cdef struct fan_slot:
    unsigned char *blob    # the latest tick of this slot (reused, grown)
    size_t blob_len        # 0: none yet
    size_t blob_cap
    int32_t *subs          # subscribed client ids (unordered)
    int32_t n_subs
    int32_t subs_cap


cdef struct fan_client:
    uint64_t *watch        # bitset over the slots: the watchlist
    uint64_t *changed      # bitset: slots changed since the last collect
    int32_t *clist         # the changed slots as a list (unordered)
    int32_t n_changed
    int32_t clist_cap      # >= n_watch: marking never allocates
    int32_t n_watch
    uint8_t active
    uint8_t in_ready       # listed in FanOut.ready


cdef int fan_cmp_i32(const void *a, const void *b) noexcept nogil:
    cdef int32_t x = (<const int32_t *>a)[0]
    cdef int32_t y = (<const int32_t *>b)[0]
    return (x > y) - (x < y)


cdef inline void fan_sort_i32(int32_t *v, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef int32_t x
    if n > 24:
        qsort(v, <size_t>n, sizeof(int32_t), fan_cmp_i32)
        return
    for i in range(1, n):
        x = v[i]
        j = i - 1
        while j >= 0 and v[j] > x:
            v[j + 1] = v[j]
            j -= 1
        v[j + 1] = x


cdef inline size_t fan_head(unsigned char *dst, const char *kind, size_t k) noexcept nogil:
    """Write ``{"type": kind, "ticks": [`` with an array header of ``k`` items
    into ``dst`` (FAN_HEAD_MAX bytes); returns its length. The writers check
    room for their worst case, so they write into this scratch, not the
    exactly sized result."""
    cdef ff_buf b
    b.data = dst
    b.len = 0
    b.cap = FAN_HEAD_MAX
    ff_mp_map_header(&b, 2)
    ff_mp_cstr(&b, "type")
    ff_mp_cstr(&b, kind)
    ff_mp_cstr(&b, "ticks")
    ff_mp_array_header(&b, k)
    return b.len


cdef inline size_t fan_ws_head(unsigned char *dst, size_t n) noexcept nogil:
    """The header of a final, unmasked WebSocket binary frame of ``n`` payload
    bytes (RFC 6455 5.2) into ``dst`` (10 bytes); returns its length."""
    cdef int i
    dst[0] = 0x82
    if n < 126:
        dst[1] = <unsigned char>n
        return 2
    if n < 65536:
        dst[1] = 126
        dst[2] = <unsigned char>(n >> 8)
        dst[3] = <unsigned char>n
        return 4
    dst[1] = 127
    for i in range(8):
        dst[2 + i] = <unsigned char>(n >> (8 * (7 - i)))
    return 10


cdef int fan_grow(void **p, Py_ssize_t *cap, Py_ssize_t need, size_t item) except -1:
    """Grow the array ``*p`` of ``*cap`` items of ``item`` bytes to hold at
    least ``need`` items (content kept; unchanged on MemoryError)."""
    cdef Py_ssize_t c
    cdef void *q
    if need <= cap[0]:
        return 0
    c = cap[0] * 2 if cap[0] > 0 else 8
    if c < need:
        c = need
    if <size_t>c > <size_t>PY_SSIZE_T_MAX / item:
        raise MemoryError()
    q = PyMem_Realloc(p[0], <size_t>c * item)
    if q == NULL:
        raise MemoryError()
    p[0] = q
    cap[0] = c
    return 0


@cython.final
cdef class FanOut:
    """Splits published frames of tick maps and builds each WebSocket client's
    frame of the ticks on its watchlist, splicing the encoded blobs.

    ``FanOut(instruments)`` takes the instrument master of the plant's
    :class:`MarketState` (slots are the same). Clients are small int ids
    (:meth:`add_client`, reused after :meth:`remove_client`). :meth:`feed`
    stores every tick of a frame as its instrument's latest blob and marks it
    changed for the instrument's subscribers; :meth:`collect` returns one
    client's ``{"type": "ticks", "ticks": [...]}`` msgpack frame of the latest
    blob of every instrument changed since its previous collect (conflation:
    a slow client gets the latest tick per instrument, memory bounded by the
    instrument count). :attr:`last_receive_ns` is the oldest positive
    ``receive_time_ns`` int of the last frame fed (0: none), for latency
    accounting. See ``docs/state.md``.
    """

    cdef KeyIndex index              # symbol bytes -> slot
    cdef Py_ssize_t n                # slots
    cdef Py_ssize_t words            # uint64 words of a client bitset
    cdef fan_slot *slots
    cdef fan_client *clients
    cdef Py_ssize_t n_clients        # high-water mark of ids (active or not)
    cdef Py_ssize_t clients_cap
    cdef Py_ssize_t n_active
    cdef int32_t *ready              # clients that had a slot marked (lazily pruned)
    cdef Py_ssize_t n_ready
    cdef Py_ssize_t ready_cap
    cdef fan_tick *ticks             # feed's scratch: the ticks of one frame
    cdef Py_ssize_t ticks_cap
    cdef uint64_t frames
    cdef uint64_t fed_ticks
    cdef uint64_t unknown_symbols
    cdef uint64_t deliveries
    cdef uint64_t frame_errors
    # The oldest (smallest) positive "receive_time_ns" int among the ticks of
    # the last frame fed (a tick's last such key counts), 0 when none had one;
    # a malformed frame leaves it as it was.
    cdef readonly int64_t last_receive_ns

    def __cinit__(self, instruments):
        symbols = [str(sym) for sym in instruments.symbol]
        cdef Py_ssize_t n = len(symbols)
        if n == 0:
            raise ValueError("FanOut needs at least one instrument")
        if n >= (1 << 30):
            raise ValueError("too many instruments")
        seen = set()
        for i, sym in enumerate(symbols):
            if sym in seen:
                raise ValueError(f"duplicate symbol {sym!r} at slot {i}")
            seen.add(sym)
        self.index = KeyIndex(symbols)
        self.n = n
        self.words = (n + 63) // 64
        self.slots = <fan_slot *>PyMem_Calloc(<size_t>n, sizeof(fan_slot))
        if self.slots == NULL:
            raise MemoryError()

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.slots != NULL:
            for i in range(self.n):
                PyMem_Free(self.slots[i].blob)
                PyMem_Free(self.slots[i].subs)
            PyMem_Free(self.slots)
        if self.clients != NULL:
            for i in range(self.n_clients):
                PyMem_Free(self.clients[i].watch)
                PyMem_Free(self.clients[i].clist)
            PyMem_Free(self.clients)
        PyMem_Free(self.ready)
        PyMem_Free(self.ticks)

    # -- clients (cold) -------------------------------------------------------

    cdef fan_client *_client(self, cid) except NULL:
        cdef object i = PyNumber_Index(cid)
        if not 0 <= i < self.n_clients or not self.clients[<Py_ssize_t>i].active:
            raise KeyError(f"unknown client {i}")
        return &self.clients[<Py_ssize_t>i]

    cdef list _slot_list(self, slots):
        """Validated, de-duplicated slots in ascending order (cold)."""
        result = set()
        n = self.n
        for s in slots:
            i = PyNumber_Index(s)
            if not 0 <= i < n:
                raise IndexError(f"slot {i} out of range (0..{n - 1})")
            result.add(i)
        return sorted(result)

    def add_client(self):
        """A new client with an empty watchlist; returns its id (the lowest
        free one)."""
        cdef Py_ssize_t cid = 0
        while cid < self.n_clients and self.clients[cid].active:
            cid += 1
        if cid == self.n_clients:
            if self.n_clients >= (1 << 30):
                raise ValueError("too many clients")
            fan_grow(<void **>&self.clients, &self.clients_cap, cid + 1, sizeof(fan_client))
        fan_grow(<void **>&self.ready, &self.ready_cap, cid + 1, sizeof(int32_t))
        cdef uint64_t *bits = <uint64_t *>PyMem_Calloc(<size_t>(2 * self.words), sizeof(uint64_t))
        if bits == NULL:
            raise MemoryError()
        cdef fan_client *c = &self.clients[cid]
        memset(c, 0, sizeof(fan_client))
        c.watch = bits
        c.changed = bits + self.words
        c.active = 1
        if cid == self.n_clients:
            self.n_clients += 1
        self.n_active += 1
        return cid

    def remove_client(self, cid):
        """Forget a client: its watchlist and pending changes. Its id is free
        for reuse."""
        cdef fan_client *c = self._client(cid)
        cdef int32_t id_ = <int32_t>(c - self.clients)
        cdef Py_ssize_t s, i, j
        for s in range(self.n):
            if c.watch[s >> 6] & (1ULL << (s & 63)):
                self._drop_sub(s, id_)
        if c.in_ready:
            j = 0
            for i in range(self.n_ready):
                if self.ready[i] != id_:
                    self.ready[j] = self.ready[i]
                    j += 1
            self.n_ready = j
        PyMem_Free(c.watch)
        PyMem_Free(c.clist)
        memset(c, 0, sizeof(fan_client))
        self.n_active -= 1

    cdef void _drop_sub(self, Py_ssize_t s, int32_t cid) noexcept:
        cdef fan_slot *sl = &self.slots[s]
        cdef Py_ssize_t k
        for k in range(sl.n_subs):
            if sl.subs[k] == cid:
                sl.n_subs -= 1
                sl.subs[k] = sl.subs[sl.n_subs]
                break

    def subscribe(self, cid, slots):
        """Add ``slots`` (an iterable of slot ints) to the client's watchlist;
        returns how many were not on it. Idempotent. A newly watched
        instrument is sent on its next change (use :meth:`snapshot` for its
        current tick)."""
        cdef fan_client *c = self._client(cid)
        cdef int32_t id_ = <int32_t>(c - self.clients)
        wanted = self._slot_list(slots)
        new = [s for s in wanted if not (c.watch[<Py_ssize_t>s >> 6] & (1ULL << (<Py_ssize_t>s & 63)))]
        cdef Py_ssize_t s_, added = len(new)
        cdef fan_slot *sl
        cdef Py_ssize_t cap
        if added == 0:
            return 0
        # Reserve first, then change: a MemoryError leaves the watchlist as it was.
        cap = c.clist_cap
        fan_grow(<void **>&c.clist, &cap, c.n_watch + added, sizeof(int32_t))
        c.clist_cap = <int32_t>cap
        for s in new:
            sl = &self.slots[<Py_ssize_t>s]
            cap = sl.subs_cap
            fan_grow(<void **>&sl.subs, &cap, sl.n_subs + 1, sizeof(int32_t))
            sl.subs_cap = <int32_t>cap
        for s in new:
            s_ = s
            sl = &self.slots[s_]
            sl.subs[sl.n_subs] = id_
            sl.n_subs += 1
            c.watch[s_ >> 6] |= 1ULL << (s_ & 63)
        c.n_watch += <int32_t>added
        return added

    def unsubscribe(self, cid, slots):
        """Remove ``slots`` from the client's watchlist (and from its pending
        changes); returns how many were on it."""
        cdef fan_client *c = self._client(cid)
        cdef int32_t id_ = <int32_t>(c - self.clients)
        cdef Py_ssize_t s_, k, removed = 0
        cdef uint64_t bit
        for s in self._slot_list(slots):
            s_ = s
            bit = 1ULL << (s_ & 63)
            if not (c.watch[s_ >> 6] & bit):
                continue
            c.watch[s_ >> 6] &= ~bit
            self._drop_sub(s_, id_)
            if c.changed[s_ >> 6] & bit:
                c.changed[s_ >> 6] &= ~bit
                for k in range(c.n_changed):
                    if c.clist[k] == s_:
                        c.n_changed -= 1
                        c.clist[k] = c.clist[c.n_changed]
                        break
            removed += 1
        c.n_watch -= <int32_t>removed
        return removed

    def watchlist(self, cid):
        """The client's watched slots, ascending."""
        cdef fan_client *c = self._client(cid)
        cdef Py_ssize_t s
        return [s for s in range(self.n) if c.watch[s >> 6] & (1ULL << (s & 63))]

    def subscribers(self, slot):
        """The ids of the clients watching ``slot``, ascending (cold)."""
        cdef Py_ssize_t k, s = self._slot_list((slot,))[0]
        cdef fan_slot *sl = &self.slots[s]
        return sorted([sl.subs[k] for k in range(sl.n_subs)])

    def latest(self, slot):
        """The latest blob of ``slot``, or None (cold)."""
        cdef Py_ssize_t s = self._slot_list((slot,))[0]
        cdef fan_slot *sl = &self.slots[s]
        if sl.blob_len == 0:
            return None
        return PyBytes_FromStringAndSize(<char *>sl.blob, <Py_ssize_t>sl.blob_len)

    def changed_clients(self):
        """The ids of the clients with something to :meth:`collect`, ascending."""
        cdef Py_ssize_t i, j = 0
        cdef int32_t cid
        for i in range(self.n_ready):
            cid = self.ready[i]
            if self.clients[cid].n_changed > 0:
                self.ready[j] = cid
                j += 1
            else:
                self.clients[cid].in_ready = 0
        self.n_ready = j
        fan_sort_i32(self.ready, j)
        return [self.ready[i] for i in range(j)]

    # -- the hot path ---------------------------------------------------------

    def feed(self, frame):
        """Take one published frame (a msgpack array of tick maps; bytes or
        any contiguous buffer): store each tick as its instrument's latest
        blob and mark it changed for the instrument's subscribers. Returns
        the number of ticks stored; ticks of unknown symbols are counted
        (``stats()["unknown_symbols"]``) and skipped. Sets
        :attr:`last_receive_ns` to the oldest ``receive_time_ns`` of the
        frame's ticks (0: none). A malformed frame raises
        :class:`FrameError` and changes nothing."""
        cdef Py_buffer view
        if PyBytes_CheckExact(frame):
            return self._feed(<const unsigned char *>PyBytes_AS_STRING(frame), PyBytes_GET_SIZE(frame))
        PyObject_GetBuffer(frame, &view, PyBUF_SIMPLE)
        try:
            return self._feed(<const unsigned char *>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    cdef Py_ssize_t _feed(self, const unsigned char *buf, Py_ssize_t size) except -1:
        cdef Py_ssize_t end = size, pos, tick_start, sym_at = 0, sym_len = 0, n_ticks, i, k
        cdef Py_ssize_t pairs, j, blen, applied = 0, unknown = 0
        cdef Py_ssize_t err_at = 0, val_at
        cdef int err = FAN_OK
        cdef mp_head h
        cdef bint is_symbol, is_recv, have_symbol
        cdef int64_t tick_recv, oldest = 0
        cdef unsigned char b
        cdef fan_tick *t
        cdef fan_slot *sl
        cdef fan_client *c
        cdef int32_t s, cid
        cdef uint64_t bit
        cdef Py_ssize_t w, cap
        cdef void *q

        # Pass 1: the frame is one msgpack array of maps with a str "symbol".
        if size <= 0:
            return self._fail(FAN_TRUNCATED, 0)
        b = buf[0]
        if not (0x90 <= b <= 0x9f or b == 0xdc or b == 0xdd):
            return self._fail(FAN_NOT_ARRAY, 0)
        err = mp_read_head(buf, end, &h)
        if err != FAN_OK:
            return self._fail(err, 0)
        pos = h.hlen
        if h.children > <uint64_t>(end - pos):
            return self._fail(FAN_TRUNCATED, 0)
        n_ticks = <Py_ssize_t>h.children
        for i in range(n_ticks):
            if pos >= end:
                return self._fail(FAN_TRUNCATED, pos)
            b = buf[pos]
            if not (0x80 <= b <= 0x8f or b == 0xde or b == 0xdf):
                return self._fail(FAN_NOT_MAP, pos)
            err = mp_read_head(buf + pos, end - pos, &h)
            if err != FAN_OK:
                return self._fail(err, pos)
            tick_start = pos
            pos += h.hlen
            if h.children > <uint64_t>(end - pos):
                return self._fail(FAN_TRUNCATED, tick_start)
            pairs = <Py_ssize_t>(h.children // 2)
            have_symbol = False
            tick_recv = 0
            for j in range(pairs):
                if pos >= end:
                    return self._fail(FAN_TRUNCATED, pos)
                err = mp_read_head(buf + pos, end - pos, &h)
                if err != FAN_OK:
                    return self._fail(err, pos)
                is_symbol = (h.kind == MP_STR and h.plen == 6
                             and memcmp(buf + pos + h.hlen, b"symbol", 6) == 0)
                is_recv = (h.kind == MP_STR and h.plen == 15
                           and memcmp(buf + pos + h.hlen, b"receive_time_ns", 15) == 0)
                pos = mp_skip(buf, pos, end, &err, &err_at)
                if pos < 0:
                    return self._fail(err, err_at)
                if is_symbol:
                    if pos >= end:
                        return self._fail(FAN_TRUNCATED, pos)
                    err = mp_read_head(buf + pos, end - pos, &h)
                    if err != FAN_OK:
                        return self._fail(err, pos)
                    if h.kind != MP_STR:
                        return self._fail(FAN_SYMBOL_TYPE, pos)
                    have_symbol = True
                    sym_at = pos + h.hlen
                    sym_len = h.plen
                val_at = pos
                pos = mp_skip(buf, pos, end, &err, &err_at)
                if pos < 0:
                    return self._fail(err, err_at)
                if is_recv:  # the value is whole: mp_skip checked its bounds
                    tick_recv = mp_receive_time(buf + val_at)
            if not have_symbol:
                return self._fail(FAN_NO_SYMBOL, tick_start)
            if tick_recv and (oldest == 0 or tick_recv < oldest):
                oldest = tick_recv
            if i >= self.ticks_cap:
                fan_grow(<void **>&self.ticks, &self.ticks_cap, i + 1, sizeof(fan_tick))
            t = &self.ticks[i]
            t.start = tick_start
            t.end = pos
            t.slot = self.index.lookup(buf + sym_at, sym_len)
        if pos != end:
            return self._fail(FAN_TRAILING, pos)

        # Pass 2: reserve every blob buffer (content kept on MemoryError).
        for i in range(n_ticks):
            t = &self.ticks[i]
            if t.slot < 0:
                continue
            sl = &self.slots[t.slot]
            blen = t.end - t.start
            if <size_t>blen > sl.blob_cap:
                cap = blen + blen // 4 + 64   # slack: a tick's size drifts a little
                q = PyMem_Realloc(sl.blob, <size_t>cap)
                if q == NULL:
                    raise MemoryError()
                sl.blob = <unsigned char *>q
                sl.blob_cap = <size_t>cap

        # Pass 3: store and mark (cannot fail; nothing allocates).
        for i in range(n_ticks):
            t = &self.ticks[i]
            s = t.slot
            if s < 0:
                unknown += 1
                continue
            sl = &self.slots[s]
            blen = t.end - t.start
            memcpy(sl.blob, buf + t.start, <size_t>blen)
            sl.blob_len = <size_t>blen
            applied += 1
            w = s >> 6
            bit = 1ULL << (s & 63)
            for k in range(sl.n_subs):
                cid = sl.subs[k]
                c = &self.clients[cid]
                if not (c.changed[w] & bit):
                    c.changed[w] |= bit
                    c.clist[c.n_changed] = s
                    c.n_changed += 1
                    if not c.in_ready:
                        c.in_ready = 1
                        self.ready[self.n_ready] = cid
                        self.n_ready += 1
        self.frames += 1
        self.fed_ticks += <uint64_t>applied
        self.unknown_symbols += <uint64_t>unknown
        self.last_receive_ns = oldest
        return applied

    cdef int _fail(self, int code, Py_ssize_t offset) except -1:
        self.frame_errors += 1
        raise FrameError(_FAN_REASONS[code], offset)

    cdef Py_ssize_t _changed_in_order(self, fan_client *c) noexcept:
        """Put the client's changed slots in ascending order in ``clist``."""
        cdef Py_ssize_t k = c.n_changed, w, j = 0
        cdef uint64_t x
        if self.words <= 4 * k:  # dense: read them off the bitset
            for w in range(self.words):
                x = c.changed[w]
                while x:
                    c.clist[j] = <int32_t>(w * 64 + ff_ctz64(x))
                    j += 1
                    x &= x - 1
        else:
            fan_sort_i32(c.clist, k)
        return k

    def collect(self, cid, bint websocket=False):
        """The client's frame: the msgpack map ``{"type": "ticks", "ticks":
        [blob, ...]}`` with the latest blob of every watched instrument changed
        since its previous collect, in slot order; ``b""`` when nothing
        changed. Clears the client's changed set. With ``websocket`` the map
        comes behind the header of a WebSocket binary frame (server to client:
        final, unmasked), so one buffer goes to the socket as it is."""
        cdef fan_client *c = self._client(cid)
        cdef Py_ssize_t k = c.n_changed, i
        cdef size_t total, hlen, wlen = 0
        cdef const fan_slot *sl
        cdef unsigned char head[FAN_HEAD_MAX]
        cdef unsigned char wshead[10]
        cdef unsigned char *p
        cdef int32_t s
        if k == 0:
            return b""
        self._changed_in_order(c)
        # Pass 1: the exact size (bounded by existing blobs plus framing).
        hlen = fan_head(head, "ticks", <size_t>k)
        total = hlen
        for i in range(k):
            total += self.slots[c.clist[i]].blob_len
        if websocket:
            wlen = fan_ws_head(wshead, total)
        if total + wlen > <size_t>PY_SSIZE_T_MAX:
            raise MemoryError()
        # Pass 2: write into the bytes object.
        result = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>(total + wlen))
        p = <unsigned char *>PyBytes_AS_STRING(result)
        memcpy(p, wshead, wlen)
        p += wlen
        total += wlen
        memcpy(p, head, hlen)
        p += hlen
        for i in range(k):
            s = c.clist[i]
            sl = &self.slots[s]
            memcpy(p, sl.blob, sl.blob_len)
            p += sl.blob_len
            c.changed[s >> 6] &= ~(1ULL << (s & 63))
        c.n_changed = 0
        self.deliveries += <uint64_t>k
        if FASTFLOW_DEBUG:
            if p != <unsigned char *>PyBytes_AS_STRING(result) + total:
                raise AssertionError("collect wrote the wrong number of bytes")
        return result

    def snapshot(self, cid, slots=None, bint websocket=False):
        """``{"type": "snapshot", "ticks": [blob, ...]}``: the latest blob of
        every slot of the client's watchlist (or of ``slots``) that has one,
        in slot order. Leaves the client's changed set alone. ``websocket``
        as for :meth:`collect`."""
        cdef fan_client *c = self._client(cid)
        cdef Py_ssize_t s, k = 0
        cdef size_t total = 0, hlen, wlen = 0
        cdef unsigned char wshead[10]
        cdef unsigned char head[FAN_HEAD_MAX]
        cdef unsigned char *p
        cdef const fan_slot *sl
        if slots is None:
            chosen = [s for s in range(self.n)
                      if c.watch[s >> 6] & (1ULL << (s & 63)) and self.slots[s].blob_len > 0]
        else:
            chosen = [s for s in self._slot_list(slots) if self.slots[<Py_ssize_t>s].blob_len > 0]
        for s in chosen:
            total += self.slots[s].blob_len
            k += 1
        hlen = fan_head(head, "snapshot", <size_t>k)
        total += hlen
        if websocket:
            wlen = fan_ws_head(wshead, total)
        if total + wlen > <size_t>PY_SSIZE_T_MAX:
            raise MemoryError()
        result = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>(total + wlen))
        p = <unsigned char *>PyBytes_AS_STRING(result)
        memcpy(p, wshead, wlen)
        p += wlen
        total += wlen
        memcpy(p, head, hlen)
        p += hlen
        for s in chosen:
            sl = &self.slots[s]
            memcpy(p, sl.blob, sl.blob_len)
            p += sl.blob_len
        if FASTFLOW_DEBUG:
            if p != <unsigned char *>PyBytes_AS_STRING(result) + total:
                raise AssertionError("snapshot wrote the wrong number of bytes")
        return result

    def __len__(self):
        """The number of instruments (slots)."""
        return self.n

    def stats(self):
        """Counters (cold): frames and ticks stored, ticks of unknown symbols
        skipped, ticks placed in client frames by collect (deliveries),
        frames rejected, clients connected."""
        return {
            "frames": self.frames,
            "ticks": self.fed_ticks,
            "unknown_symbols": self.unknown_symbols,
            "deliveries": self.deliveries,
            "frame_errors": self.frame_errors,
            "clients": self.n_active,
        }
