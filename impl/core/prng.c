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
  size_t len = name ? strlen(name) : 0;
  kz_prng_seed(child, seed ^ kz_hash64(name, len, 0));
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
  /* Always one draw, whatever ppm is, so changing a probability does not
   * shift the rest of the stream. */
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

uint64_t kz_hash64(const void *data, size_t len, uint64_t seed) {
  const uint8_t *p = data;
  uint64_t h = 0xcbf29ce484222325ull ^ seed;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  /* FNV-1a mixes its last bytes poorly into the high bits; the splitmix64
   * finaliser spreads them so masking to a table size is safe. */
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}
