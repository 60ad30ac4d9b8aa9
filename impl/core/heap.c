/* heap.c — binary min-heap of intrusive nodes ordered by (key, push sequence). */
#include "kz/heap.h"

#include <assert.h>

#include "kz/error.h"
#include "kz/mem.h"

static bool key_less(struct kz_heap_key a, struct kz_heap_key b) {
  return a.key < b.key || (a.key == b.key && a.seq < b.seq);
}

static void place(struct kz_heap *h, size_t i, struct kz_heap_node *n, struct kz_heap_key k) {
  h->items[i] = n;
  h->keys[i] = k;
  n->index = i;
}

static void sift_up(struct kz_heap *h, size_t i) {
  struct kz_heap_node *n = h->items[i];
  struct kz_heap_key k = h->keys[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!key_less(k, h->keys[parent])) break;
    place(h, i, h->items[parent], h->keys[parent]);
    i = parent;
  }
  place(h, i, n, k);
}

static void sift_down(struct kz_heap *h, size_t i) {
  struct kz_heap_node *n = h->items[i];
  struct kz_heap_key k = h->keys[i];
  for (;;) {
    size_t l = 2 * i + 1;
    if (l >= h->len) break;
    size_t m = l;
    if (l + 1 < h->len && key_less(h->keys[l + 1], h->keys[l])) m = l + 1;
    if (!key_less(h->keys[m], k)) break;
    place(h, i, h->items[m], h->keys[m]);
    i = m;
  }
  place(h, i, n, k);
}

void kz_heap_init(struct kz_heap *h) {
  h->items = NULL;
  h->keys = NULL;
  h->len = 0;
  h->cap = 0;
  h->next_seq = 0;
}

void kz_heap_free(struct kz_heap *h) {
  /* Nodes still queued are not touched: their owners may already be
   * gone (kz_env_deinit after a simulated crash frees the heap last). */
  kz_free(h->items);
  kz_free(h->keys);
  h->items = NULL;
  h->keys = NULL;
  h->len = h->cap = 0;
}

void kz_heap_node_init(struct kz_heap_node *n) {
  n->key = 0;
  n->seq = 0;
  n->index = SIZE_MAX;
}

bool kz_heap_node_queued(const struct kz_heap_node *n) { return n->index != SIZE_MAX; }

int kz_heap_push(struct kz_heap *h, struct kz_heap_node *n, uint64_t key) {
  assert(n->index == SIZE_MAX && "kz_heap_push of a queued node");
  if (h->len == h->cap) {
    size_t ncap = h->cap ? h->cap * 2 : 16;
    if (ncap > SIZE_MAX / sizeof(*h->keys)) return KZ_ENOMEM;
    /* Both arrays grow before anything changes; a failure leaves the heap
     * as it was (a larger items array alone is harmless). */
    struct kz_heap_node **ni = kz_realloc(h->items, ncap * sizeof(*ni));
    if (!ni) return KZ_ENOMEM;
    h->items = ni;
    struct kz_heap_key *nk = kz_realloc(h->keys, ncap * sizeof(*nk));
    if (!nk) return KZ_ENOMEM;
    h->keys = nk;
    h->cap = ncap;
  }
  n->key = key;
  n->seq = h->next_seq++;
  h->items[h->len] = n;
  h->keys[h->len] = (struct kz_heap_key){n->key, n->seq};
  h->len++;
  sift_up(h, h->len - 1);
  return 0;
}

struct kz_heap_node *kz_heap_peek(const struct kz_heap *h) { return h->len ? h->items[0] : NULL; }

static void remove_at(struct kz_heap *h, size_t i) {
  struct kz_heap_node *n = h->items[i];
  struct kz_heap_node *last = h->items[--h->len];
  struct kz_heap_key lk = h->keys[h->len];
  n->index = SIZE_MAX;
  if (i == h->len) return;
  place(h, i, last, lk);
  if (i > 0 && key_less(lk, h->keys[(i - 1) / 2])) {
    sift_up(h, i);
  } else {
    sift_down(h, i);
  }
}

struct kz_heap_node *kz_heap_pop(struct kz_heap *h) {
  if (!h->len) return NULL;
  struct kz_heap_node *n = h->items[0];
  remove_at(h, 0);
  return n;
}

void kz_heap_remove(struct kz_heap *h, struct kz_heap_node *n) {
  if (n->index == SIZE_MAX) return;
  assert(n->index < h->len && h->items[n->index] == n && "node queued in another heap");
  remove_at(h, n->index);
}

size_t kz_heap_len(const struct kz_heap *h) { return h->len; }
