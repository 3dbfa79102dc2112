/* Unaligned big-endian loads (cf. asyncpg/pgproto hton.h).
 * memcpy into a local lets the compiler emit one load + bswap. */
#ifndef FF_BYTEORDER_H
#define FF_BYTEORDER_H

#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#  define FF_BSWAP16(x) __builtin_bswap16(x)
#  define FF_BSWAP32(x) __builtin_bswap32(x)
#  define FF_BSWAP64(x) __builtin_bswap64(x)
#else
static inline uint16_t FF_BSWAP16(uint16_t x) { return (uint16_t)((x >> 8) | (x << 8)); }
static inline uint32_t FF_BSWAP32(uint32_t x) {
    return ((x & 0xffu) << 24) | ((x & 0xff00u) << 8) | ((x >> 8) & 0xff00u) | (x >> 24);
}
static inline uint64_t FF_BSWAP64(uint64_t x) {
    return ((uint64_t)FF_BSWAP32((uint32_t)x) << 32) | FF_BSWAP32((uint32_t)(x >> 32));
}
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#  define FF_BE16(x) (x)
#  define FF_BE32(x) (x)
#  define FF_BE64(x) (x)
#else
#  define FF_BE16(x) FF_BSWAP16(x)
#  define FF_BE32(x) FF_BSWAP32(x)
#  define FF_BE64(x) FF_BSWAP64(x)
#endif

static inline uint16_t ff_load_be16(const unsigned char *p) {
    uint16_t v; memcpy(&v, p, 2); return FF_BE16(v);
}
static inline uint32_t ff_load_be32(const unsigned char *p) {
    uint32_t v; memcpy(&v, p, 4); return FF_BE32(v);
}
static inline int32_t ff_load_be_i32(const unsigned char *p) {
    return (int32_t)ff_load_be32(p);
}
/* Little-endian loads (protobuf fixed64 / fixed32). */
static inline uint64_t ff_load_le64(const unsigned char *p) {
    uint64_t v; memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = FF_BSWAP64(v);
#endif
    return v;
}
static inline double ff_load_le_double(const unsigned char *p) {
    uint64_t v = ff_load_le64(p); double d; memcpy(&d, &v, 8); return d;
}

static inline void ff_store_be16(unsigned char *p, uint16_t v) {
    v = FF_BE16(v); memcpy(p, &v, 2);
}
static inline void ff_store_be32(unsigned char *p, uint32_t v) {
    v = FF_BE32(v); memcpy(p, &v, 4);
}
static inline void ff_store_be64(unsigned char *p, uint64_t v) {
    v = FF_BE64(v); memcpy(p, &v, 8);
}

#endif
