/* test_heap.c — min-heap order, FIFO ties, removal, and a randomised check against a reference. */
#include <stdlib.h>

#include "core_tests.h"
#include "kz/error.h"
#include "kz/heap.h"
#include "kz/mem.h"
#include "kz/prng.h"

struct item {
  int id;
  struct kz_heap_node node;
};

static int pop_id(struct kz_heap *h) {
  struct kz_heap_node *n = kz_heap_pop(h);
  ck_assert_ptr_nonnull(n);
  ck_assert_uint_eq(n->index, SIZE_MAX);
  return KZ_CONTAINER_OF(n, struct item, node)->id;
}

START_TEST(heap_order_and_ties) {
  struct kz_heap h;
  kz_heap_init(&h);
  ck_assert_ptr_null(kz_heap_peek(&h));
  ck_assert_ptr_null(kz_heap_pop(&h));
  struct item it[8];
  static const uint64_t keys[8] = {5, 3, 5, 1, 3, 5, 0, 3};
  for (int i = 0; i < 8; i++) {
    it[i].id = i;
    kz_heap_node_init(&it[i].node);
    ck_assert(!kz_heap_node_queued(&it[i].node));
    ck_assert_int_eq(kz_heap_push(&h, &it[i].node, keys[i]), 0);
    ck_assert(kz_heap_node_queued(&it[i].node));
  }
  ck_assert_uint_eq(kz_heap_len(&h), 8);
  ck_assert_ptr_eq(kz_heap_peek(&h), &it[6].node);
  /* Equal keys come out in push order. */
  static const int want[8] = {6, 3, 1, 4, 7, 0, 2, 5};
  for (int i = 0; i < 8; i++) ck_assert_int_eq(pop_id(&h), want[i]);
  ck_assert_uint_eq(kz_heap_len(&h), 0);
  kz_heap_free(&h);
}
END_TEST

START_TEST(heap_remove) {
  struct kz_heap h;
  kz_heap_init(&h);
  struct item it[20];
  for (int i = 0; i < 20; i++) {
    it[i].id = i;
    kz_heap_node_init(&it[i].node);
    ck_assert_int_eq(kz_heap_push(&h, &it[i].node, (uint64_t)(i * 7 % 20)), 0);
  }
  for (int i = 0; i < 20; i++) {
    ck_assert_uint_lt(it[i].node.index, 20);
    ck_assert_ptr_eq(h.items[it[i].node.index], &it[i].node);
  }
  /* Remove from the middle, the root and the last slot. */
  kz_heap_remove(&h, &it[9].node);
  kz_heap_remove(&h, &it[0].node); /* key 0: the root */
  kz_heap_remove(&h, h.items[h.len - 1]);
  ck_assert(!kz_heap_node_queued(&it[9].node));
  kz_heap_remove(&h, &it[9].node); /* not queued: no-op */
  ck_assert_uint_eq(kz_heap_len(&h), 17);
  uint64_t last = 0;
  while (kz_heap_len(&h)) {
    struct kz_heap_node *n = kz_heap_pop(&h);
    ck_assert_uint_ge(n->key, last);
    last = n->key;
  }
  /* A popped node can be pushed again. */
  ck_assert_int_eq(kz_heap_push(&h, &it[9].node, 1), 0);
  ck_assert_ptr_eq(kz_heap_pop(&h), &it[9].node);
  kz_heap_free(&h);
}
END_TEST

START_TEST(heap_push_enomem) {
  struct kz_heap h;
  kz_heap_init(&h);
  struct item a, b;
  kz_heap_node_init(&a.node);
  kz_heap_node_init(&b.node);
  kz_mem_fail_after(0);
  ck_assert_int_eq(kz_heap_push(&h, &a.node, 1), KZ_ENOMEM);
  kz_mem_fail_after(-1);
  ck_assert(!kz_heap_node_queued(&a.node));
  ck_assert_uint_eq(kz_heap_len(&h), 0);
  ck_assert_int_eq(kz_heap_push(&h, &a.node, 1), 0);
  ck_assert_int_eq(kz_heap_push(&h, &b.node, 1), 0);
  /* kz_heap_free leaves the nodes alone: they belong to their owners. */
  kz_heap_free(&h);
  ck_assert_uint_eq(kz_heap_len(&h), 0);
  ck_assert_ptr_null(kz_heap_peek(&h));
}
END_TEST

/* Randomised push / pop / remove, checked against a linear reference
 * that knows each node's (key, seq). */
#define NODES 512
START_TEST(heap_random_vs_reference) {
  struct kz_heap h;
  kz_heap_init(&h);
  struct item *it = calloc(NODES, sizeof(*it));
  ck_assert_ptr_nonnull(it);
  bool queued[NODES] = {false};
  uint64_t key[NODES], seq[NODES];
  uint64_t next_seq = 0;
  size_t nq = 0;
  struct kz_prng g;
  kz_prng_seed(&g, 2024);
  for (int i = 0; i < NODES; i++) {
    it[i].id = i;
    kz_heap_node_init(&it[i].node);
  }
  for (int op = 0; op < 10000; op++) {
    uint64_t r = kz_prng_below(&g, 10);
    if (r < 5) { /* push a free node */
      int i = (int)kz_prng_below(&g, NODES);
      if (queued[i]) continue;
      key[i] = kz_prng_below(&g, 50); /* many equal keys */
      seq[i] = next_seq++;
      ck_assert_int_eq(kz_heap_push(&h, &it[i].node, key[i]), 0);
      queued[i] = true;
      nq++;
    } else if (r < 8) { /* pop: must be the reference minimum */
      int best = -1;
      for (int i = 0; i < NODES; i++) {
        if (queued[i] && (best < 0 || key[i] < key[best] ||
                          (key[i] == key[best] && seq[i] < seq[best])))
          best = i;
      }
      struct kz_heap_node *n = kz_heap_pop(&h);
      if (best < 0) {
        ck_assert_ptr_null(n);
      } else {
        ck_assert_ptr_eq(n, &it[best].node);
        queued[best] = false;
        nq--;
      }
    } else { /* remove a random node, queued or not */
      int i = (int)kz_prng_below(&g, NODES);
      kz_heap_remove(&h, &it[i].node);
      if (queued[i]) nq--;
      queued[i] = false;
    }
    ck_assert_uint_eq(kz_heap_len(&h), nq);
    if (op % 97 == 0) {
      for (size_t j = 0; j < h.len; j++) {
        ck_assert_uint_eq(h.items[j]->index, j);
        if (j) {
          const struct kz_heap_node *p = h.items[(j - 1) / 2], *c = h.items[j];
          ck_assert(p->key < c->key || (p->key == c->key && p->seq < c->seq));
        }
      }
    }
  }
  kz_heap_free(&h);
  free(it);
}
END_TEST

void kz_core_test_heap(Suite *s) {
  TCase *tc = kz_tcase(s, "heap", 30);
  tcase_add_test(tc, heap_order_and_ties);
  tcase_add_test(tc, heap_remove);
  tcase_add_test(tc, heap_push_enomem);
  tcase_add_test(tc, heap_random_vs_reference);
}
