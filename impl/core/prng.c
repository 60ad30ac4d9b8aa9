/* prng.c — splitmix64-seeded xoshiro256** with named sub-streams, and the kz content hash. */
#include "kz/prng.h"

#include <string.h>

/* Hash seed for kz_prng_derive_id, so numbered sub-streams never collide
 * with a named one whose name happens to be the same 8 bytes. */
#define KZ_PRNG_ID_DOMAIN 0x6b7a2d69642d7374ull /* "kz-id-st" */

static uint64_t splitmix64_next(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void kz_prng_seed(struct kz_prng *g, uint64_t seed) {
  uint64_t x = seed;
  for (int i = 0; i < 4; i++) g->s[i] = splitmix64_next(&x);
  /* xoshiro must not start from the all-zero state; splitmix64 is a
   * bijection over four distinct inputs, so this cannot happen, but the
   * check is cheap. */
  if (!(g->s[0] | g->s[1] | g->s[2] | g->s[3])) g->s[0] = 1;
}

void kz_prng_derive(struct kz_prng *child, uint64_t seed, const char *name) {
  /* NULL names the same stream as "" (and never reaches the hash as a
   * null pointer). */
  if (!name) name = "";
  kz_prng_seed(child, seed ^ kz_hash64(name, strlen(name), 0));
}

void kz_prng_derive_id(struct kz_prng *child, uint64_t seed, uint64_t id) {
  uint8_t le[8];
  for (int i = 0; i < 8; i++) le[i] = (uint8_t)(id >> (8 * i));
  kz_prng_seed(child, seed ^ kz_hash64(le, sizeof(le), KZ_PRNG_ID_DOMAIN));
}

uint64_t kz_prng_next(struct kz_prng *g) {
  uint64_t *s = g->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

uint64_t kz_prng_below(struct kz_prng *g, uint64_t bound) {
  if (bound == 0) return 0;
  /* Rejection sampling: draws below `threshold` would over-represent the
   * low residues, so they are redrawn. threshold = 2^64 mod bound. */
  uint64_t threshold = (0 - bound) % bound;
  for (;;) {
    uint64_t r = kz_prng_next(g);
    if (r >= threshold) return r % bound;
  }
}

uint64_t kz_prng_range(struct kz_prng *g, uint64_t lo, uint64_t hi) {
  if (hi < lo) {
    uint64_t t = lo;
    lo = hi;
    hi = t;
  }
  if (lo == 0 && hi == UINT64_MAX) return kz_prng_next(g);
  return lo + kz_prng_below(g, hi - lo + 1);
}

int kz_prng_chance_ppm(struct kz_prng *g, uint32_t ppm) {
  /* The draws taken (one, or more when rejection sampling redraws) do not
   * depend on ppm, so changing a probability does not shift the rest of
   * the stream. */
  return kz_prng_below(g, 1000000) < ppm;
}

void kz_prng_bytes(struct kz_prng *g, void *out, size_t len) {
  uint8_t *o = out;
  while (len) {
    uint64_t r = kz_prng_next(g);
    for (int i = 0; i < 8 && len; i++, len--) {
      *o++ = (uint8_t)r;
      r >>= 8;
    }
  }
}

void kz_prng_hex(struct kz_prng *g, char *out, size_t len) {
  static const char digits[] = "0123456789abcdef";
  while (len) {
    uint64_t r = kz_prng_next(g);
    for (int i = 0; i < 16 && len; i++, len--) {
      *out++ = digits[r & 15];
      r >>= 4;
    }
  }
}

/* kz_hash64 is XXH64 (Yann Collet's xxHash, 64-bit variant), written here
 * from its specification: 8 bytes a step in four independent lanes for
 * long inputs, so it runs at several bytes a cycle where the byte-wise
 * FNV-1a it replaced ran at one byte every few cycles (it hashes every
 * simulated datagram).  Words are read little-endian explicitly, so the
 * value is the same on every host and build; the published XXH64 test
 * vectors pin it (impl/core/tests/test_prng.c). */
#define XXH_P1 0x9e3779b185ebca87ull
#define XXH_P2 0xc2b2ae3d27d4eb4full
#define XXH_P3 0x165667b19e3779f9ull
#define XXH_P4 0x85ebca77c2b2ae63ull
#define XXH_P5 0x27d4eb2f165667c5ull

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* One unaligned load on little-endian hosts. */
static inline uint64_t rd64le(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

static inline uint64_t rd32le(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
#else
static inline uint64_t rd64le(const uint8_t *p) {
  return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
         (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

static inline uint64_t rd32le(const uint8_t *p) {
  return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
}
#endif

static inline uint64_t xxh_round(uint64_t acc, uint64_t w) {
  acc += w * XXH_P2;
  acc = rotl(acc, 31);
  return acc * XXH_P1;
}

static inline uint64_t xxh_merge(uint64_t h, uint64_t v) {
  h ^= xxh_round(0, v);
  return h * XXH_P1 + XXH_P4;
}

uint64_t kz_hash64(const void *data, size_t len, uint64_t seed) {
  /* (NULL, 0) hashes like empty input; NULL + 0 below would be undefined
   * (clang's pointer-overflow check reports it). */
  const uint8_t *p = data ? data : (const void *)"";
  const uint8_t *end = p + len;
  uint64_t h;
  if (len >= 32) {
    uint64_t v1 = seed + XXH_P1 + XXH_P2, v2 = seed + XXH_P2, v3 = seed, v4 = seed - XXH_P1;
    const uint8_t *limit = end - 32;
    do {
      v1 = xxh_round(v1, rd64le(p));
      v2 = xxh_round(v2, rd64le(p + 8));
      v3 = xxh_round(v3, rd64le(p + 16));
      v4 = xxh_round(v4, rd64le(p + 24));
      p += 32;
    } while (p <= limit);
    h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
    h = xxh_merge(h, v1);
    h = xxh_merge(h, v2);
    h = xxh_merge(h, v3);
    h = xxh_merge(h, v4);
  } else {
    h = seed + XXH_P5;
  }
  h += (uint64_t)len;
  for (; end - p >= 8; p += 8) {
    h ^= xxh_round(0, rd64le(p));
    h = rotl(h, 27) * XXH_P1 + XXH_P4;
  }
  if (end - p >= 4) {
    h ^= rd32le(p) * XXH_P1;
    h = rotl(h, 23) * XXH_P2 + XXH_P3;
    p += 4;
  }
  for (; p < end; p++) {
    h ^= *p * XXH_P5;
    h = rotl(h, 11) * XXH_P1;
  }
  /* Avalanche: every input bit reaches every output bit, so masking the
   * hash to a table size is safe. */
  h ^= h >> 33;
  h *= XXH_P2;
  h ^= h >> 29;
  h *= XXH_P3;
  return h ^ (h >> 32);
}
