/* kz/map.h — a hash map keyed by byte content, iterated in insertion order. */
#ifndef KZ_MAP_H
#define KZ_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Keys are copied into the map; values are opaque pointers the map never
 * frees.  Hashing uses kz_hash64 over the key bytes with a seed given at
 * init (from the env's PRNG or a constant), never an address, so
 * iteration (insertion order) and behaviour are deterministic.
 * With `nocase`, keys compare and hash ASCII case-insensitively. */
struct kz_map_entry;

struct kz_map {
  struct kz_map_entry *entries; /* insertion order, with holes */
  size_t n_entries;             /* used slots in entries, incl. holes */
  size_t cap_entries;
  size_t count;                 /* live entries */
  uint64_t *index;              /* open addressing: (entry idx + 1) in the low
                                   32 bits (0 empty), the key hash's high 32
                                   bits above, so a probe rejects other keys
                                   without touching their entries */
  size_t index_cap;             /* power of two */
  uint64_t seed;
  bool nocase;
};

void kz_map_init(struct kz_map *m, uint64_t seed, bool nocase);
/* Frees keys and tables; values are the caller's. */
void kz_map_free(struct kz_map *m);
size_t kz_map_count(const struct kz_map *m);
/* Inserts or replaces.  When the key existed and `old` is not NULL,
 * *old receives the previous value (else NULL).
 * Returns 0 or KZ_ENOMEM (map unchanged). */
int kz_map_put(struct kz_map *m, const void *key, size_t klen, void *val,
               void **old);
/* Returns the value or NULL; `found` (optional) tells NULL values apart. */
void *kz_map_get(const struct kz_map *m, const void *key, size_t klen,
                 bool *found);
/* Removes the key; returns its value or NULL. */
void *kz_map_del(struct kz_map *m, const void *key, size_t klen,
                 bool *found);

/* Iteration in insertion order.  Start with *pos = 0; returns false at
 * the end.  Deleting the current entry while iterating is allowed;
 * inserting is not. */
bool kz_map_next(const struct kz_map *m, size_t *pos, const void **key,
                 size_t *klen, void **val);

/* C-string key conveniences. */
int kz_map_put_str(struct kz_map *m, const char *key, void *val, void **old);
void *kz_map_get_str(const struct kz_map *m, const char *key);
void *kz_map_del_str(struct kz_map *m, const char *key);

#endif /* KZ_MAP_H */
