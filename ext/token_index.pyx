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
