/* A growable output buffer and the msgpack primitives the tick encoder needs.
 *
 * Callers reserve the worst-case size of what they are about to write
 * (ff_buf_reserve) and then use the unchecked ff_mp_* writers; this keeps one
 * capacity check per encoded tick instead of one per byte. In debug builds
 * every writer asserts that it stays within the reservation.
 *
 * Integer and string encodings are the minimal forms chosen by
 * msgpack-python's Packer (use_bin_type=True, use_single_float=False), so the
 * output is byte-identical to msgpack.packb() of the same Python object. */
#ifndef FF_MSGPACK_WRITER_H
#define FF_MSGPACK_WRITER_H

#include <Python.h>
#include <assert.h>
#include <stdint.h>
#include <string.h>
#include "byteorder.h"
#include "ff_debug.h"

/* The writers are tiny and called with literal arguments: force inlining so a
 * key's strlen folds to a constant (gcc stops inlining on its own once the
 * caller, encode_tick, is large). */
#if defined(__GNUC__) || defined(__clang__)
#  define FF_INLINE static inline __attribute__((always_inline))
#else
#  define FF_INLINE static inline
#endif

typedef struct ff_buf {
    unsigned char *data;
    size_t len;
    size_t cap;
} ff_buf;

#if FASTFLOW_DEBUG
#  define FF_CHECK_ROOM(b, n) do { if ((b)->len + (size_t)(n) > (b)->cap) { \
       fprintf(stderr, "fastflow: msgpack writer overflow\n"); abort(); } } while (0)
#else
#  define FF_CHECK_ROOM(b, n) ((void)0)
#endif

static void ff_buf_free(ff_buf *b) {
    PyMem_Free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Make room for `extra` more bytes. Returns 0, or -1 with MemoryError set
 * (the buffer is then left empty, as pgproto's WriteBuffer does). */
static int ff_buf_reserve(ff_buf *b, size_t extra) {
    if (extra > PY_SSIZE_T_MAX - b->len) {   /* the result must fit a Py_ssize_t */
        PyErr_NoMemory();
        return -1;
    }
    size_t need = b->len + extra;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need) cap = (cap > (size_t)PY_SSIZE_T_MAX / 2) ? need : cap * 2;
    unsigned char *p = (unsigned char *)PyMem_Realloc(b->data, cap);
    if (p == NULL) {
        ff_buf_free(b);
        PyErr_NoMemory();
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

FF_INLINE void ff_mp_byte(ff_buf *b, unsigned char c) {
    FF_CHECK_ROOM(b, 1);
    b->data[b->len++] = c;
}

FF_INLINE void ff_mp_raw(ff_buf *b, const void *src, size_t n) {
    FF_CHECK_ROOM(b, n);
    memcpy(b->data + b->len, src, n);
    b->len += n;
}

FF_INLINE void ff_mp_nil(ff_buf *b) { ff_mp_byte(b, 0xc0); }
FF_INLINE void ff_mp_bool(ff_buf *b, int v) { ff_mp_byte(b, v ? 0xc3 : 0xc2); }

FF_INLINE void ff_mp_uint(ff_buf *b, uint64_t v) {
    FF_CHECK_ROOM(b, 9);
    unsigned char *p = b->data + b->len;
    if (v < 0x80u) { p[0] = (unsigned char)v; b->len += 1; }
    else if (v <= 0xffu) { p[0] = 0xcc; p[1] = (unsigned char)v; b->len += 2; }
    else if (v <= 0xffffu) { p[0] = 0xcd; ff_store_be16(p + 1, (uint16_t)v); b->len += 3; }
    else if (v <= 0xffffffffu) { p[0] = 0xce; ff_store_be32(p + 1, (uint32_t)v); b->len += 5; }
    else { p[0] = 0xcf; ff_store_be64(p + 1, v); b->len += 9; }
}

FF_INLINE void ff_mp_int(ff_buf *b, int64_t v) {
    if (v >= 0) { ff_mp_uint(b, (uint64_t)v); return; }
    FF_CHECK_ROOM(b, 9);
    unsigned char *p = b->data + b->len;
    if (v >= -32) { p[0] = (unsigned char)(int8_t)v; b->len += 1; }
    else if (v >= INT8_MIN) { p[0] = 0xd0; p[1] = (unsigned char)(int8_t)v; b->len += 2; }
    else if (v >= INT16_MIN) { p[0] = 0xd1; ff_store_be16(p + 1, (uint16_t)(int16_t)v); b->len += 3; }
    else if (v >= INT32_MIN) { p[0] = 0xd2; ff_store_be32(p + 1, (uint32_t)(int32_t)v); b->len += 5; }
    else { p[0] = 0xd3; ff_store_be64(p + 1, (uint64_t)v); b->len += 9; }
}

FF_INLINE void ff_mp_double(ff_buf *b, double v) {
    FF_CHECK_ROOM(b, 9);
    uint64_t bits;
    memcpy(&bits, &v, 8);
    b->data[b->len] = 0xcb;
    ff_store_be64(b->data + b->len + 1, bits);
    b->len += 9;
}

/* Header of a str of n bytes; the caller copies the bytes. */
FF_INLINE void ff_mp_str_header(ff_buf *b, size_t n) {
    FF_CHECK_ROOM(b, 5);
    unsigned char *p = b->data + b->len;
    if (n <= 31) { p[0] = (unsigned char)(0xa0 | n); b->len += 1; }
    else if (n <= 0xff) { p[0] = 0xd9; p[1] = (unsigned char)n; b->len += 2; }
    else if (n <= 0xffff) { p[0] = 0xda; ff_store_be16(p + 1, (uint16_t)n); b->len += 3; }
    else { p[0] = 0xdb; ff_store_be32(p + 1, (uint32_t)n); b->len += 5; }
}

FF_INLINE void ff_mp_map_header(ff_buf *b, size_t n) {
    FF_CHECK_ROOM(b, 5);
    unsigned char *p = b->data + b->len;
    if (n <= 15) { p[0] = (unsigned char)(0x80 | n); b->len += 1; }
    else if (n <= 0xffff) { p[0] = 0xde; ff_store_be16(p + 1, (uint16_t)n); b->len += 3; }
    else { p[0] = 0xdf; ff_store_be32(p + 1, (uint32_t)n); b->len += 5; }
}

FF_INLINE void ff_mp_array_header(ff_buf *b, size_t n) {
    FF_CHECK_ROOM(b, 5);
    unsigned char *p = b->data + b->len;
    if (n <= 15) { p[0] = (unsigned char)(0x90 | n); b->len += 1; }
    else if (n <= 0xffff) { p[0] = 0xdc; ff_store_be16(p + 1, (uint16_t)n); b->len += 3; }
    else { p[0] = 0xdd; ff_store_be32(p + 1, (uint32_t)n); b->len += 5; }
}

/* A str from a NUL-terminated C string (map keys, mode names). Inlined with a
 * literal argument, the strlen folds to a constant. */
FF_INLINE void ff_mp_cstr(ff_buf *b, const char *s) {
    size_t n = strlen(s);
    ff_mp_str_header(b, n);
    ff_mp_raw(b, s, n);
}

#endif
