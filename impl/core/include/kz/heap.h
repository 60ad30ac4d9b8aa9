/* kz/heap.h — a min-heap ordered by (key, insertion sequence) with intrusive nodes. */
#ifndef KZ_HEAP_H
#define KZ_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Embed a kz_heap_node in the owning struct and recover the owner with
 * KZ_CONTAINER_OF.  Equal keys pop in the order they were pushed: ties
 * break on a per-heap counter, never on a pointer (libuv's start_id). */
struct kz_heap_node {
  uint64_t key;
  uint64_t seq;
  size_t index; /* position in the heap array; SIZE_MAX when not queued */
};

/* The ordering of the node at the same position of `items`, copied into
 * the heap's own array: sifting compares these without touching the
 * nodes, which live all over memory (a cache miss each in a big heap). */
struct kz_heap_key {
  uint64_t key;
  uint64_t seq;
};

struct kz_heap {
  struct kz_heap_node **items;
  struct kz_heap_key *keys; /* keys[i] is items[i]'s (key, seq) */
  size_t len;
  size_t cap;
  uint64_t next_seq;
};

#define KZ_CONTAINER_OF(ptr, type, member)                                 \
  ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

void kz_heap_init(struct kz_heap *h);
/* Frees the array; the nodes belong to their owners. */
void kz_heap_free(struct kz_heap *h);
void kz_heap_node_init(struct kz_heap_node *n);
bool kz_heap_node_queued(const struct kz_heap_node *n);
/* Queues n with `key`.  n must not be queued already.
 * Returns 0 or KZ_ENOMEM. */
int kz_heap_push(struct kz_heap *h, struct kz_heap_node *n, uint64_t key);
/* The smallest node, or NULL when empty. */
struct kz_heap_node *kz_heap_peek(const struct kz_heap *h);
/* Removes and returns the smallest node, or NULL when empty. */
struct kz_heap_node *kz_heap_pop(struct kz_heap *h);
/* Removes n if it is queued; no-op otherwise. */
void kz_heap_remove(struct kz_heap *h, struct kz_heap_node *n);
size_t kz_heap_len(const struct kz_heap *h);

#endif /* KZ_HEAP_H */
