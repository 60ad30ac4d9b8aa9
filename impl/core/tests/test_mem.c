/* test_mem.c — counting allocator, failure injection, reference-counted objects. */
#include <signal.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core_tests.h"
#include "kz/mem.h"

START_TEST(mem_counters) {
  int64_t live = kz_mem_live_blocks();
  uint64_t count = kz_mem_alloc_count();
  char *a = kz_malloc(10);
  char *b = kz_calloc(4, 8);
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_nonnull(b);
  ck_assert_int_eq(kz_mem_live_blocks(), live + 2);
  ck_assert_uint_eq(kz_mem_alloc_count(), count + 2);
  for (int i = 0; i < 10; i++) ck_assert_int_eq(a[i], 0);
  for (int i = 0; i < 32; i++) ck_assert_int_eq(b[i], 0);
  /* 16-byte alignment, as malloc gives. */
  ck_assert_uint_eq((uintptr_t)a % alignof(max_align_t), 0);
  ck_assert_uint_eq((uintptr_t)b % 16, 0);
  kz_free(a);
  ck_assert_int_eq(kz_mem_live_blocks(), live + 1);
  kz_free(b);
  kz_free(NULL);
  ck_assert_int_eq(kz_mem_live_blocks(), live);
  /* calloc overflow */
  ck_assert_ptr_null(kz_calloc(SIZE_MAX / 2, 4));
  ck_assert_ptr_null(kz_malloc(SIZE_MAX));
  ck_assert_int_eq(kz_mem_live_blocks(), live);
}
END_TEST

START_TEST(mem_realloc) {
  int64_t live = kz_mem_live_blocks();
  char *p = kz_realloc(NULL, 4);
  ck_assert_ptr_nonnull(p);
  ck_assert_int_eq(kz_mem_live_blocks(), live + 1);
  memcpy(p, "abcd", 4);
  p = kz_realloc(p, 4096);
  ck_assert_ptr_nonnull(p);
  ck_assert_int_eq(kz_mem_live_blocks(), live + 1);
  ck_assert_int_eq(memcmp(p, "abcd", 4), 0);
  /* The grown tail is zeroed. */
  for (int i = 4; i < 4096; i++) ck_assert_int_eq(p[i], 0);
  ck_assert_uint_eq((uintptr_t)p % 16, 0);
  p = kz_realloc(p, 2);
  ck_assert_int_eq(memcmp(p, "ab", 2), 0);
  /* A failed realloc leaves the block alone. */
  kz_mem_fail_after(0);
  ck_assert_ptr_null(kz_realloc(p, 100));
  kz_mem_fail_after(-1);
  ck_assert_int_eq(memcmp(p, "ab", 2), 0);
  ck_assert_int_eq(kz_mem_live_blocks(), live + 1);
  kz_free(p);
  ck_assert_int_eq(kz_mem_live_blocks(), live);
}
END_TEST

START_TEST(mem_strdup) {
  char *s = kz_strdup("hello");
  ck_assert_str_eq(s, "hello");
  char *t = kz_strndup("hello", 3);
  ck_assert_str_eq(t, "hel");
  char *u = kz_strndup("hi", 10);
  ck_assert_str_eq(u, "hi");
  kz_free(s);
  kz_free(t);
  kz_free(u);
}
END_TEST

START_TEST(mem_fail_after) {
  int64_t live = kz_mem_live_blocks();
  kz_mem_fail_after(2);
  void *a = kz_malloc(1);
  void *b = kz_malloc(1);
  void *c = kz_malloc(1);
  void *d = kz_calloc(1, 1);
  void *e = kz_obj_alloc(8, NULL);
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_nonnull(b);
  ck_assert_ptr_null(c);
  ck_assert_ptr_null(d); /* every one after k fails too */
  ck_assert_ptr_null(e);
  kz_mem_fail_after(-1);
  void *f = kz_malloc(1);
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(kz_mem_live_blocks(), live + 3);
  kz_free(a);
  kz_free(b);
  kz_free(f);
  ck_assert_int_eq(kz_mem_live_blocks(), live);
}
END_TEST

struct obj_probe {
  int *dtor_calls;
  int payload;
};

static void probe_dtor(void *p) {
  struct obj_probe *o = p;
  ck_assert_int_eq(o->payload, 42); /* runs before the memory is freed */
  (*o->dtor_calls)++;
}

START_TEST(mem_obj_refcount) {
  int64_t live = kz_mem_live_blocks();
  int calls = 0;
  struct obj_probe *o = kz_obj_alloc(sizeof(*o), probe_dtor);
  ck_assert_ptr_nonnull(o);
  ck_assert_uint_eq((uintptr_t)o % 16, 0);
  ck_assert_ptr_null(o->dtor_calls); /* zeroed */
  o->dtor_calls = &calls;
  o->payload = 42;
  ck_assert_uint_eq(kz_refcount(o), 1);
  ck_assert_ptr_eq(kz_ref(o), o);
  ck_assert_uint_eq(kz_refcount(o), 2);
  ck_assert_ptr_null(kz_deref(o));
  ck_assert_int_eq(calls, 0);
  ck_assert_uint_eq(kz_refcount(o), 1);
  ck_assert_int_eq(kz_mem_live_blocks(), live + 1);
  o = kz_deref(o);
  ck_assert_ptr_null(o);
  ck_assert_int_eq(calls, 1);
  ck_assert_int_eq(kz_mem_live_blocks(), live);
  ck_assert_ptr_null(kz_deref(NULL));
  ck_assert_ptr_null(kz_ref(NULL));
  ck_assert_uint_eq(kz_refcount(NULL), 0);
  /* No destructor is fine too. */
  void *p = kz_obj_alloc(0, NULL);
  ck_assert_ptr_nonnull(p);
  kz_deref(p);
  ck_assert_int_eq(kz_mem_live_blocks(), live);
}
END_TEST

/* A destructor may release what the object holds, including other objects. */
struct obj_chain {
  void *child;
};

static void chain_dtor(void *p) {
  struct obj_chain *c = p;
  c->child = kz_deref(c->child);
}

START_TEST(mem_obj_nested) {
  int64_t live = kz_mem_live_blocks();
  struct obj_chain *a = kz_obj_alloc(sizeof(*a), chain_dtor);
  struct obj_chain *b = kz_obj_alloc(sizeof(*b), chain_dtor);
  a->child = b;
  b->child = kz_obj_alloc(3, NULL);
  ck_assert_int_eq(kz_mem_live_blocks(), live + 3);
  kz_deref(a);
  ck_assert_int_eq(kz_mem_live_blocks(), live);
}
END_TEST

/* Misuse is caught: a plain block is not an object. */
START_TEST(mem_ref_plain_block_aborts) {
  void *p = kz_malloc(8);
  kz_ref(p);
}
END_TEST

void kz_core_test_mem(Suite *s) {
  TCase *tc = kz_tcase(s, "mem", 10);
  tcase_add_test(tc, mem_counters);
  tcase_add_test(tc, mem_realloc);
  tcase_add_test(tc, mem_strdup);
  tcase_add_test(tc, mem_fail_after);
  tcase_add_test(tc, mem_obj_refcount);
  tcase_add_test(tc, mem_obj_nested);
  tcase_add_test_raise_signal(tc, mem_ref_plain_block_aborts, SIGABRT);
}
