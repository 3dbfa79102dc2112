# Header-only: unaligned big-endian loads and stores (see byteorder.h).
from libc.stdint cimport int32_t, uint16_t, uint32_t, uint64_t

cdef extern from "byteorder.h" nogil:
    uint16_t ff_load_be16(const unsigned char *p)
    uint32_t ff_load_be32(const unsigned char *p)
    int32_t ff_load_be_i32(const unsigned char *p)
    uint64_t ff_load_le64(const unsigned char *p)
    double ff_load_le_double(const unsigned char *p)
    void ff_store_be16(unsigned char *p, uint16_t v)
    void ff_store_be32(unsigned char *p, uint32_t v)
    void ff_store_be64(unsigned char *p, uint64_t v)
