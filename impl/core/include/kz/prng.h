/* kz/prng.h — deterministic PRNG: splitmix64 seeding xoshiro256**, with named sub-streams. */
#ifndef KZ_PRNG_H
#define KZ_PRNG_H

#include <stddef.h>
#include <stdint.h>

struct kz_prng {
  uint64_t s[4];
};

/* Seeds the generator from a 64-bit seed through splitmix64. */
void kz_prng_seed(struct kz_prng *g, uint64_t seed);

/* Seeds `child` as an independent sub-stream identified by (seed, name).
 * It does not draw from any other generator, so adding or removing one
 * component's draws never shifts another component's sequence.  A NULL
 * name is the same as "". */
void kz_prng_derive(struct kz_prng *child, uint64_t seed, const char *name);

/* Same as kz_prng_derive but the sub-stream is named by a number. */
void kz_prng_derive_id(struct kz_prng *child, uint64_t seed, uint64_t id);

uint64_t kz_prng_next(struct kz_prng *g);
/* Uniform integer in [0, bound), unbiased; 0 when bound is 0. */
uint64_t kz_prng_below(struct kz_prng *g, uint64_t bound);
/* Uniform integer in [lo, hi] inclusive. */
uint64_t kz_prng_range(struct kz_prng *g, uint64_t lo, uint64_t hi);
/* True with probability ppm / 1,000,000 (integers only: traces must not
 * depend on floating point).  How many values it draws does not depend on
 * ppm, so changing a probability does not shift the rest of the stream. */
int kz_prng_chance_ppm(struct kz_prng *g, uint32_t ppm);
void kz_prng_bytes(struct kz_prng *g, void *out, size_t len);
/* Writes `len` lowercase hex characters (no NUL). */
void kz_prng_hex(struct kz_prng *g, char *out, size_t len);

/* 64-bit content hash (XXH64 of the bytes with `seed`, little-endian reads),
 * stable across runs and builds; used for maps and names.  `data` may be
 * NULL when len is 0. */
uint64_t kz_hash64(const void *data, size_t len, uint64_t seed);

#endif /* KZ_PRNG_H */
