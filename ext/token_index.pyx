# TokenIndex: instrument token -> slot, an open-addressing hash table in one
# C array. Built once from the instrument master, never mutated per tick.

cdef struct ff_index_entry:
    uint32_t key
    int32_t slot


@cython.final
cdef class TokenIndex:
    """Maps 32-bit broker tokens to state slots without Python objects."""

    cdef ff_index_entry *table
    cdef uint32_t mask
    cdef int shift
    cdef Py_ssize_t count

    def __cinit__(self, tokens):
        cdef Py_ssize_t n = len(tokens)
        cdef Py_ssize_t cap = 16
        cdef int bits = 4
        cdef Py_ssize_t i
        if n >= (1 << 30):
            raise ValueError("too many instruments for one index")
        while cap < 2 * n:
            cap <<= 1
            bits += 1
        self.table = <ff_index_entry *>PyMem_Malloc(cap * sizeof(ff_index_entry))
        if self.table == NULL:
            raise MemoryError()
        for i in range(cap):
            self.table[i].key = 0
            self.table[i].slot = -1
        self.mask = <uint32_t>(cap - 1)
        self.shift = 32 - bits
        for i, token in enumerate(tokens):
            if not 0 <= token <= 0xFFFFFFFF:
                raise ValueError(f"token {token} at slot {i} is not a 32-bit unsigned integer")
            if self._insert(<uint32_t>token, <int32_t>i) < 0:
                raise ValueError(f"duplicate token {token} at slot {i}")
        self.count = n

    def __dealloc__(self):
        PyMem_Free(self.table)

    cdef int _insert(self, uint32_t key, int32_t slot) noexcept:
        cdef uint32_t h = <uint32_t>(key * <uint32_t>2654435769U) >> self.shift
        while self.table[h].slot >= 0:
            if self.table[h].key == key:
                return -1
            h = (h + 1) & self.mask
        self.table[h].key = key
        self.table[h].slot = slot
        return 0

    cdef inline int32_t lookup(self, uint32_t key) noexcept nogil:
        cdef uint32_t h = <uint32_t>(key * <uint32_t>2654435769U) >> self.shift
        cdef const ff_index_entry *e
        while True:
            e = &self.table[h]
            if e.slot < 0 or e.key == key:
                return e.slot
            h = (h + 1) & self.mask

    def get(self, token):
        """The slot of ``token``, or -1."""
        if not 0 <= token <= 0xFFFFFFFF:
            return -1
        return self.lookup(<uint32_t>token)

    def __len__(self):
        return self.count


# KeyIndex: Upstox instrument_key bytes -> slot. Keys are stored back to back
# in one C buffer; the table holds (64-bit FNV-1a hash, slot) pairs and a
# lookup compares the bytes of the candidate. A key is resolved straight from
# the frame's bytes, without creating a Python string.

cdef struct ff_key_entry:
    uint64_t hash
    int32_t slot


cdef inline uint64_t fnv1a(const unsigned char *p, Py_ssize_t n) noexcept nogil:
    cdef uint64_t h = 14695981039346656037ULL
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ p[i]) * 1099511628211ULL
    return h


@cython.final
cdef class KeyIndex:
    """Maps instrument-key byte strings to state slots without Python objects."""

    cdef ff_key_entry *table
    cdef unsigned char *keys
    cdef int64_t *key_off        # n + 1 offsets into keys
    cdef uint64_t mask
    cdef Py_ssize_t count

    def __cinit__(self, keys):
        cdef Py_ssize_t n = len(keys)
        cdef Py_ssize_t cap = 16
        cdef Py_ssize_t i, total = 0
        cdef bytes raw
        encoded = [k.encode("utf-8") for k in keys]
        while cap < 2 * n:
            cap <<= 1
        self.table = <ff_key_entry *>PyMem_Malloc(cap * sizeof(ff_key_entry))
        self.key_off = <int64_t *>PyMem_Malloc((n + 1) * sizeof(int64_t))
        for raw in encoded:
            total += len(raw)
        self.keys = <unsigned char *>PyMem_Malloc(max(total, 1))
        if self.table == NULL or self.key_off == NULL or self.keys == NULL:
            raise MemoryError()
        self.mask = <uint64_t>(cap - 1)
        for i in range(cap):
            self.table[i].hash = 0
            self.table[i].slot = -1
        total = 0
        for i in range(n):
            raw = encoded[i]
            self.key_off[i] = total
            memcpy(self.keys + total, PyBytes_AS_STRING(raw), len(raw))
            total += len(raw)
        self.key_off[n] = total
        self.count = n
        for i in range(n):
            if self._insert(<int32_t>i) < 0:
                raise ValueError(f"duplicate instrument key {keys[i]!r} at slot {i}")

    def __dealloc__(self):
        PyMem_Free(self.table)
        PyMem_Free(self.keys)
        PyMem_Free(self.key_off)

    cdef int _insert(self, int32_t slot) noexcept:
        cdef const unsigned char *p = self.keys + self.key_off[slot]
        cdef Py_ssize_t n = <Py_ssize_t>(self.key_off[slot + 1] - self.key_off[slot])
        cdef uint64_t h = fnv1a(p, n)
        if self.lookup(p, n) >= 0:
            return -1
        cdef uint64_t i = h & self.mask
        while self.table[i].slot >= 0:
            i = (i + 1) & self.mask
        self.table[i].hash = h
        self.table[i].slot = slot
        return 0

    cdef inline int32_t lookup(self, const unsigned char *p, Py_ssize_t n) noexcept nogil:
        cdef uint64_t h = fnv1a(p, n)
        cdef uint64_t i = h & self.mask
        cdef const ff_key_entry *e
        cdef int32_t s
        while True:
            e = &self.table[i]
            s = e.slot
            if s < 0:
                return -1
            if (e.hash == h and self.key_off[s + 1] - self.key_off[s] == n
                    and memcmp(self.keys + self.key_off[s], p, <size_t>n) == 0):
                return s
            i = (i + 1) & self.mask

    def get(self, key):
        """The slot of ``key`` (str or bytes), or -1."""
        cdef bytes raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
        return self.lookup(<const unsigned char *>PyBytes_AS_STRING(raw), len(raw))

    def __len__(self):
        return self.count
