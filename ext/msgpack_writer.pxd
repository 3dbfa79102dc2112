# Header-only msgpack primitives over a growable buffer (see msgpack_writer.h).
from libc.stdint cimport int64_t, uint64_t

cdef extern from "msgpack_writer.h" nogil:
    ctypedef struct ff_buf:
        unsigned char *data
        size_t len
        size_t cap

    void ff_buf_free(ff_buf *b)
    int ff_buf_reserve(ff_buf *b, size_t extra) except -1 with gil
    void ff_mp_byte(ff_buf *b, unsigned char c)
    void ff_mp_raw(ff_buf *b, const void *src, size_t n)
    void ff_mp_nil(ff_buf *b)
    void ff_mp_bool(ff_buf *b, int v)
    void ff_mp_uint(ff_buf *b, uint64_t v)
    void ff_mp_int(ff_buf *b, int64_t v)
    void ff_mp_double(ff_buf *b, double v)
    void ff_mp_str_header(ff_buf *b, size_t n)
    void ff_mp_map_header(ff_buf *b, size_t n)
    void ff_mp_array_header(ff_buf *b, size_t n)
    void ff_mp_cstr(ff_buf *b, const char *s)
