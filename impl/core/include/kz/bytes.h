/* bytes.h — fixed-width integers to and from byte arrays in network (big-endian) and little-endian order, for wire formats and file formats; short copies for hot text builders. */
#ifndef KZ_BYTES_H
#define KZ_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Each put writes exactly the width's bytes at p; each get reads them.
 * Byte by byte, so p needs no alignment and the host's order never shows. */
static inline void kz_put_be16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline void kz_put_be32(uint8_t *p, uint32_t v) {
  kz_put_be16(p, (uint16_t)(v >> 16));
  kz_put_be16(p + 2, (uint16_t)v);
}
static inline void kz_put_be64(uint8_t *p, uint64_t v) {
  kz_put_be32(p, (uint32_t)(v >> 32));
  kz_put_be32(p + 4, (uint32_t)v);
}
static inline uint16_t kz_get_be16(const uint8_t *p) { return (uint16_t)((unsigned)p[0] << 8 | p[1]); }
static inline uint32_t kz_get_be32(const uint8_t *p) {
  return (uint32_t)kz_get_be16(p) << 16 | kz_get_be16(p + 2);
}
static inline uint64_t kz_get_be64(const uint8_t *p) {
  return (uint64_t)kz_get_be32(p) << 32 | kz_get_be32(p + 4);
}
static inline void kz_put_le16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static inline void kz_put_le32(uint8_t *p, uint32_t v) {
  kz_put_le16(p, (uint16_t)v);
  kz_put_le16(p + 2, (uint16_t)(v >> 16));
}

/* Copies n bytes to d and returns d + n.  The short pieces text builders
 * are made of (names, addresses, template parts) go through two
 * overlapping fixed-size moves instead of a memcpy call, which costs more
 * than such a copy; longer ones through memcpy. */
static inline uint8_t *kz_copy_small(uint8_t *d, const void *src, size_t n) {
  const uint8_t *s = src;
  if (n >= 8 && n <= 16) {
    memcpy(d, s, 8);
    memcpy(d + n - 8, s + n - 8, 8);
  } else if (n >= 4 && n < 8) {
    memcpy(d, s, 4);
    memcpy(d + n - 4, s + n - 4, 4);
  } else if (n < 4) {
    for (size_t i = 0; i < n; i++) d[i] = s[i];
  } else {
    memcpy(d, s, n);
  }
  return d + n;
}

#endif /* KZ_BYTES_H */
