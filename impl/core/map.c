/* map.c — insertion-ordered hash map: an entries array plus an open-addressing index of positions. */
#include "kz/map.h"

#include <assert.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/prng.h"

struct kz_map_entry {
  char *key; /* kz_malloc'ed copy, NUL-terminated; NULL for a hole */
  size_t klen;
  uint64_t hash;
  void *val;
  bool live;
};

/* Entry positions are stored as uint32 (position + 1, 0 = empty slot). */
#define KZ_MAP_MAX_ENTRIES ((size_t)UINT32_MAX - 1)

static unsigned char lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static uint64_t key_hash(const struct kz_map *m, const void *key, size_t klen) {
  if (!m->nocase) return kz_hash64(key, klen, m->seed);
  /* FNV-1a over the lowercased key, seeded like kz_hash64, computed
   * without a copy so lookups never allocate; it only has to agree with
   * itself (case-insensitive maps never mix with kz_hash64 values). */
  const unsigned char *p = key;
  uint64_t h = 0xcbf29ce484222325ull ^ m->seed;
  for (size_t i = 0; i < klen; i++) {
    h ^= lower(p[i]);
    h *= 0x100000001b3ull;
  }
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

static bool key_eq(const struct kz_map *m, const struct kz_map_entry *e, const void *key,
                   size_t klen) {
  if (e->klen != klen) return false;
  if (!m->nocase) return klen == 0 || memcmp(e->key, key, klen) == 0;
  const unsigned char *a = (const unsigned char *)e->key, *b = key;
  for (size_t i = 0; i < klen; i++) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

/* An index slot: entry position + 1 below, hash tag above. */
#define SLOT_POS(v) ((size_t)(uint32_t)(v))
#define SLOT_TAG(h) ((h) & 0xffffffff00000000ull)

/* Index slot holding `key`, or SIZE_MAX. */
static size_t find_slot(const struct kz_map *m, const void *key, size_t klen, uint64_t h) {
  if (!m->index_cap) return SIZE_MAX;
  size_t mask = m->index_cap - 1;
  uint64_t tag = SLOT_TAG(h);
  for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
    uint64_t v = m->index[i];
    if (!v) return SIZE_MAX;
    if (SLOT_TAG(v) != tag) continue; /* another key: its entry stays cold */
    const struct kz_map_entry *e = &m->entries[SLOT_POS(v) - 1];
    if (e->hash == h && key_eq(m, e, key, klen)) return i;
  }
}

static void index_insert(uint64_t *index, size_t cap, uint64_t h, size_t pos) {
  size_t mask = cap - 1;
  size_t i = (size_t)h & mask;
  while (index[i]) i = (i + 1) & mask;
  index[i] = SLOT_TAG(h) | (uint64_t)(pos + 1);
}

static void index_rebuild(struct kz_map *m) {
  memset(m->index, 0, m->index_cap * sizeof(*m->index));
  for (size_t i = 0; i < m->n_entries; i++) {
    if (m->entries[i].live) index_insert(m->index, m->index_cap, m->entries[i].hash, i);
  }
}

/* Moves live entries to the front, closing the holes deletions left. */
static void compact(struct kz_map *m) {
  size_t w = 0;
  for (size_t r = 0; r < m->n_entries; r++) {
    if (m->entries[r].live) {
      if (w != r) m->entries[w] = m->entries[r];
      w++;
    }
  }
  memset(&m->entries[w], 0, (m->n_entries - w) * sizeof(*m->entries));
  m->n_entries = w;
}

void kz_map_init(struct kz_map *m, uint64_t seed, bool nocase) {
  memset(m, 0, sizeof(*m));
  m->seed = seed;
  m->nocase = nocase;
}

void kz_map_free(struct kz_map *m) {
  for (size_t i = 0; i < m->n_entries; i++) kz_free(m->entries[i].key);
  kz_free(m->entries);
  kz_free(m->index);
  kz_map_init(m, m->seed, m->nocase);
}

size_t kz_map_count(const struct kz_map *m) { return m->count; }

int kz_map_put(struct kz_map *m, const void *key, size_t klen, void *val, void **old) {
  uint64_t h = key_hash(m, key, klen);
  size_t slot = find_slot(m, key, klen, h);
  if (slot != SIZE_MAX) {
    struct kz_map_entry *e = &m->entries[SLOT_POS(m->index[slot]) - 1];
    if (old) *old = e->val;
    e->val = val;
    return 0;
  }
  if (old) *old = NULL;
  if (klen == SIZE_MAX) return KZ_ENOMEM;

  /* Every allocation happens before the map changes, so a failure leaves
   * it as it was (a larger entries array is invisible). */
  char *kcopy = kz_malloc(klen + 1);
  if (!kcopy) return KZ_ENOMEM;
  if (klen) memcpy(kcopy, key, klen);

  bool full = m->n_entries == m->cap_entries;
  if (full && (m->cap_entries == 0 || m->count + 1 > m->cap_entries / 4 * 3)) {
    size_t ncap = m->cap_entries ? m->cap_entries * 2 : 8;
    if (ncap > KZ_MAP_MAX_ENTRIES) ncap = KZ_MAP_MAX_ENTRIES;
    if (ncap <= m->n_entries) goto nomem;
    struct kz_map_entry *ne = kz_realloc(m->entries, ncap * sizeof(*ne));
    if (!ne) goto nomem;
    m->entries = ne;
    m->cap_entries = ncap;
  }
  size_t icap = m->index_cap ? m->index_cap : 16;
  while ((m->count + 1) > icap / 2) icap *= 2;
  if (icap != m->index_cap) {
    uint64_t *ni = kz_calloc(icap, sizeof(*ni));
    if (!ni) goto nomem;
    kz_free(m->index);
    m->index = ni;
    m->index_cap = icap;
    if (full) compact(m);
    index_rebuild(m);
  } else if (full) {
    compact(m);
    index_rebuild(m);
  }

  size_t pos = m->n_entries++;
  struct kz_map_entry *e = &m->entries[pos];
  e->key = kcopy;
  e->klen = klen;
  e->hash = h;
  e->val = val;
  e->live = true;
  m->count++;
  index_insert(m->index, m->index_cap, h, pos);
  return 0;

nomem:
  kz_free(kcopy);
  return KZ_ENOMEM;
}

void *kz_map_get(const struct kz_map *m, const void *key, size_t klen, bool *found) {
  size_t slot = find_slot(m, key, klen, key_hash(m, key, klen));
  if (found) *found = slot != SIZE_MAX;
  return slot == SIZE_MAX ? NULL : m->entries[SLOT_POS(m->index[slot]) - 1].val;
}

void *kz_map_del(struct kz_map *m, const void *key, size_t klen, bool *found) {
  size_t i = find_slot(m, key, klen, key_hash(m, key, klen));
  if (found) *found = i != SIZE_MAX;
  if (i == SIZE_MAX) return NULL;
  struct kz_map_entry *e = &m->entries[SLOT_POS(m->index[i]) - 1];
  void *val = e->val;
  kz_free(e->key);
  e->key = NULL;
  e->val = NULL;
  e->live = false;
  m->count--;

  /* Backward-shift deletion keeps linear probing free of tombstones:
   * later members of the probe run move up unless they already sit at or
   * after their home slot relative to the gap. */
  size_t mask = m->index_cap - 1;
  m->index[i] = 0;
  for (size_t j = (i + 1) & mask; m->index[j]; j = (j + 1) & mask) {
    size_t home = (size_t)m->entries[SLOT_POS(m->index[j]) - 1].hash & mask;
    bool stays = (i < j) ? (i < home && home <= j) : (i < home || home <= j);
    if (stays) continue;
    m->index[i] = m->index[j];
    m->index[j] = 0;
    i = j;
  }
  /* Trailing holes can simply be forgotten. */
  while (m->n_entries && !m->entries[m->n_entries - 1].live) m->n_entries--;
  return val;
}

bool kz_map_next(const struct kz_map *m, size_t *pos, const void **key, size_t *klen,
                 void **val) {
  for (size_t i = *pos; i < m->n_entries; i++) {
    const struct kz_map_entry *e = &m->entries[i];
    if (!e->live) continue;
    if (key) *key = e->key;
    if (klen) *klen = e->klen;
    if (val) *val = e->val;
    *pos = i + 1;
    return true;
  }
  *pos = m->n_entries;
  return false;
}

int kz_map_put_str(struct kz_map *m, const char *key, void *val, void **old) {
  return kz_map_put(m, key, strlen(key), val, old);
}

void *kz_map_get_str(const struct kz_map *m, const char *key) {
  return kz_map_get(m, key, strlen(key), NULL);
}

void *kz_map_del_str(struct kz_map *m, const char *key) {
  return kz_map_del(m, key, strlen(key), NULL);
}
