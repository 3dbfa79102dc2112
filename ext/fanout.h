/* Small helpers for FanOut (ext/fanout.pyx): bit scanning over the per-client
 * changed-slot bitsets. */
#ifndef FF_FANOUT_H
#define FF_FANOUT_H

#include <stdint.h>

/* Index of the lowest set bit of x (x != 0). */
static inline int ff_ctz64(uint64_t x) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctzll(x);
#else
    int n = 0;
    while (!(x & 1u)) { x >>= 1; n++; }
    return n;
#endif
}

#endif
