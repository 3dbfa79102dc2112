/* RESP2 (the Redis protocol) writers for a buffer sized exactly beforehand.
 *
 * The caller sums the *_len() sizes of everything it will write, allocates
 * that once, then writes with the ff_resp_put_* functions, which take and
 * return the write position. `end` is only used by the FASTFLOW_DEBUG checks
 * (a write past it aborts), so release builds pay nothing for it. */
#ifndef FF_RESP_WRITER_H
#define FF_RESP_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ff_debug.h"
#include "msgpack_writer.h"   /* FF_INLINE */

#if FASTFLOW_DEBUG
#  define FF_RESP_CHECK(p, end, n) do { if ((size_t)((end) - (p)) < (size_t)(n)) { \
       fprintf(stderr, "fastflow: RESP writer overflow\n"); abort(); } } while (0)
#else
#  define FF_RESP_CHECK(p, end, n) ((void)(end))
#endif

/* Decimal digits of v (1..20). */
FF_INLINE size_t ff_resp_ndigits(uint64_t v) {
    size_t n = 1;
    for (;;) {
        if (v < 10u) return n;
        if (v < 100u) return n + 1;
        if (v < 1000u) return n + 2;
        if (v < 10000u) return n + 3;
        v /= 10000u;
        n += 4;
    }
}

/* Size of a "<type><v>\r\n" header (array "*", bulk string "$"). */
FF_INLINE size_t ff_resp_header_len(uint64_t v) { return 1 + ff_resp_ndigits(v) + 2; }

/* Size of a bulk string of n bytes: "$<n>\r\n<bytes>\r\n". */
FF_INLINE size_t ff_resp_bulk_len(size_t n) { return ff_resp_header_len((uint64_t)n) + n + 2; }

/* "<type><v>\r\n" */
FF_INLINE char *ff_resp_put_header(char *p, const char *end, char type, uint64_t v) {
    size_t nd = ff_resp_ndigits(v);
    FF_RESP_CHECK(p, end, nd + 3);
    *p++ = type;
    char *q = p + nd;
    do {
        *--q = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v);
    p += nd;
    p[0] = '\r';
    p[1] = '\n';
    return p + 2;
}

/* n bytes as they are (e.g. a bulk string encoded earlier). */
FF_INLINE char *ff_resp_put_raw(char *p, const char *end, const void *src, size_t n) {
    FF_RESP_CHECK(p, end, n);
    memcpy(p, src, n);
    return p + n;
}

/* "$<n>\r\n<bytes>\r\n" */
FF_INLINE char *ff_resp_put_bulk(char *p, const char *end, const void *src, size_t n) {
    p = ff_resp_put_header(p, end, '$', (uint64_t)n);
    FF_RESP_CHECK(p, end, n + 2);
    memcpy(p, src, n);
    p += n;
    p[0] = '\r';
    p[1] = '\n';
    return p + 2;
}

#endif
