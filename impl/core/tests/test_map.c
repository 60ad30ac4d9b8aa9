/* test_map.c — insertion-ordered hash map: CRUD, iteration with holes, nocase, growth, ENOMEM sweep. */
#include <stdio.h>
#include <string.h>

#include "core_tests.h"
#include "kz/error.h"
#include "kz/map.h"
#include "kz/mem.h"

static void *V(uintptr_t x) { return (void *)x; }

START_TEST(map_put_get_del) {
  struct kz_map m;
  kz_map_init(&m, 1, false);
  bool found = true;
  ck_assert_ptr_null(kz_map_get(&m, "a", 1, &found));
  ck_assert(!found);
  ck_assert_ptr_null(kz_map_del(&m, "a", 1, &found));
  ck_assert(!found);

  void *old = V(99);
  ck_assert_int_eq(kz_map_put(&m, "a", 1, V(1), &old), 0);
  ck_assert_ptr_null(old);
  ck_assert_int_eq(kz_map_put_str(&m, "b", V(2), NULL), 0);
  ck_assert_int_eq(kz_map_put(&m, "", 0, V(3), NULL), 0); /* empty key is a key */
  ck_assert_int_eq(kz_map_put(&m, "a\0b", 3, V(4), NULL), 0); /* bytes, not C strings */
  ck_assert_uint_eq(kz_map_count(&m), 4);
  ck_assert_ptr_eq(kz_map_get_str(&m, "a"), V(1));
  ck_assert_ptr_eq(kz_map_get_str(&m, "b"), V(2));
  ck_assert_ptr_eq(kz_map_get(&m, "", 0, NULL), V(3));
  ck_assert_ptr_eq(kz_map_get(&m, "a\0b", 3, NULL), V(4));
  ck_assert_ptr_null(kz_map_get_str(&m, "A"));

  /* Replace keeps one entry and reports the old value. */
  ck_assert_int_eq(kz_map_put_str(&m, "a", V(10), &old), 0);
  ck_assert_ptr_eq(old, V(1));
  ck_assert_uint_eq(kz_map_count(&m), 4);
  ck_assert_ptr_eq(kz_map_get_str(&m, "a"), V(10));

  /* NULL values are told apart by `found`. */
  ck_assert_int_eq(kz_map_put_str(&m, "n", NULL, NULL), 0);
  ck_assert_ptr_null(kz_map_get(&m, "n", 1, &found));
  ck_assert(found);

  /* The key is copied. */
  char key[] = "temp";
  ck_assert_int_eq(kz_map_put_str(&m, key, V(5), NULL), 0);
  key[0] = 'X';
  ck_assert_ptr_eq(kz_map_get_str(&m, "temp"), V(5));

  ck_assert_ptr_eq(kz_map_del(&m, "b", 1, &found), V(2));
  ck_assert(found);
  ck_assert_ptr_null(kz_map_get_str(&m, "b"));
  ck_assert_ptr_null(kz_map_del_str(&m, "b"));
  ck_assert_uint_eq(kz_map_count(&m), 5);
  /* Re-adding a deleted key works. */
  ck_assert_int_eq(kz_map_put_str(&m, "b", V(22), &old), 0);
  ck_assert_ptr_null(old);
  ck_assert_ptr_eq(kz_map_get_str(&m, "b"), V(22));
  kz_map_free(&m);
  ck_assert_uint_eq(kz_map_count(&m), 0);
  kz_map_free(&m); /* twice is harmless */
}
END_TEST

/* Collects the iteration order as a string of single-char keys. */
static void order(const struct kz_map *m, char *out) {
  size_t pos = 0, klen;
  const void *k;
  void *v;
  while (kz_map_next(m, &pos, &k, &klen, &v)) {
    ck_assert_uint_eq(klen, 1);
    ck_assert_int_eq(((const char *)k)[1], 0); /* stored NUL-terminated */
    *out++ = *(const char *)k;
  }
  *out = 0;
}

START_TEST(map_insertion_order) {
  struct kz_map m;
  kz_map_init(&m, 7, false);
  const char *keys = "qwertyuiopasdfghjklzxcvbnm";
  for (const char *k = keys; *k; k++) ck_assert_int_eq(kz_map_put(&m, k, 1, V((uintptr_t)*k), NULL), 0);
  char got[64];
  order(&m, got);
  ck_assert_str_eq(got, keys);
  /* Replace does not move an entry. */
  ck_assert_int_eq(kz_map_put(&m, "q", 1, V(0), NULL), 0);
  /* Deletions leave holes that iteration skips. */
  kz_map_del(&m, "w", 1, NULL);
  kz_map_del(&m, "m", 1, NULL); /* the last */
  kz_map_del(&m, "a", 1, NULL);
  order(&m, got);
  ck_assert_str_eq(got, "qertyuiopsdfghjklzxcvbn");
  /* New keys go to the end, also after compaction on growth. */
  for (char c = 'A'; c <= 'Z'; c++) ck_assert_int_eq(kz_map_put(&m, &c, 1, V(1), NULL), 0);
  order(&m, got);
  ck_assert_str_eq(got, "qertyuiopsdfghjklzxcvbnABCDEFGHIJKLMNOPQRSTUVWXYZ");
  ck_assert_ptr_eq(kz_map_get(&m, "q", 1, NULL), V(0));
  ck_assert_ptr_eq(kz_map_get(&m, "e", 1, NULL), V('e'));

  /* Deleting the current entry while iterating is allowed. */
  size_t pos = 0;
  const void *k;
  int n = 0;
  while (kz_map_next(&m, &pos, &k, NULL, NULL)) {
    char c = *(const char *)k;
    if (c >= 'A' && c <= 'Z') kz_map_del(&m, &c, 1, NULL);
    n++;
  }
  ck_assert_int_eq(n, 49);
  order(&m, got);
  ck_assert_str_eq(got, "qertyuiopsdfghjklzxcvbn");
  ck_assert_uint_eq(kz_map_count(&m), 23);
  kz_map_free(&m);
}
END_TEST

START_TEST(map_churn_compaction) {
  /* Many deletes and re-inserts: holes get compacted and everything
   * stays findable. */
  struct kz_map m;
  kz_map_init(&m, 3, false);
  char k[32];
  for (int round = 0; round < 50; round++) {
    for (int i = 0; i < 40; i++) {
      int len = snprintf(k, sizeof(k), "r%d-%d", round, i);
      ck_assert_int_eq(kz_map_put(&m, k, (size_t)len, V((uintptr_t)(round * 100 + i + 1)), NULL), 0);
    }
    if (round > 0) {
      for (int i = 0; i < 40; i++) {
        int len = snprintf(k, sizeof(k), "r%d-%d", round - 1, i);
        bool found;
        ck_assert_ptr_eq(kz_map_del(&m, k, (size_t)len, &found),
                         V((uintptr_t)((round - 1) * 100 + i + 1)));
        ck_assert(found);
      }
    }
    ck_assert_uint_eq(kz_map_count(&m), 40);
    ck_assert_uint_le(m.n_entries, m.cap_entries);
  }
  /* The entries array did not grow with the total number of inserts. */
  ck_assert_uint_le(m.cap_entries, 256);
  size_t pos = 0;
  const void *key;
  size_t klen;
  int i = 0;
  while (kz_map_next(&m, &pos, &key, &klen, NULL)) {
    int len = snprintf(k, sizeof(k), "r49-%d", i++);
    ck_assert_uint_eq(klen, (size_t)len);
    ck_assert_int_eq(memcmp(key, k, klen), 0);
  }
  ck_assert_int_eq(i, 40);
  kz_map_free(&m);
}
END_TEST

START_TEST(map_nocase) {
  struct kz_map m;
  kz_map_init(&m, 11, true);
  ck_assert_int_eq(kz_map_put_str(&m, "Content-Type", V(1), NULL), 0);
  ck_assert_ptr_eq(kz_map_get_str(&m, "content-type"), V(1));
  ck_assert_ptr_eq(kz_map_get_str(&m, "CONTENT-TYPE"), V(1));
  void *old;
  ck_assert_int_eq(kz_map_put_str(&m, "CONTENT-type", V(2), &old), 0);
  ck_assert_ptr_eq(old, V(1));
  ck_assert_uint_eq(kz_map_count(&m), 1);
  /* The first spelling is kept. */
  size_t pos = 0;
  const void *k;
  ck_assert(kz_map_next(&m, &pos, &k, NULL, NULL));
  ck_assert_str_eq(k, "Content-Type");
  /* Only ASCII letters fold. */
  ck_assert_int_eq(kz_map_put_str(&m, "@", V(3), NULL), 0);
  ck_assert_ptr_null(kz_map_get_str(&m, "`"));
  ck_assert_ptr_eq(kz_map_del_str(&m, "content-TYPE"), V(2));
  ck_assert_uint_eq(kz_map_count(&m), 1);
  kz_map_free(&m);

  /* Case-sensitive mode keeps them apart. */
  kz_map_init(&m, 11, false);
  ck_assert_int_eq(kz_map_put_str(&m, "Via", V(1), NULL), 0);
  ck_assert_int_eq(kz_map_put_str(&m, "via", V(2), NULL), 0);
  ck_assert_uint_eq(kz_map_count(&m), 2);
  ck_assert_ptr_eq(kz_map_get_str(&m, "Via"), V(1));
  kz_map_free(&m);
}
END_TEST

START_TEST(map_growth_100k) {
  struct kz_map m;
  kz_map_init(&m, 0x1234, false);
  char k[32];
  const int n = 100000;
  for (int i = 0; i < n; i++) {
    int len = snprintf(k, sizeof(k), "key%d", i);
    ck_assert_int_eq(kz_map_put(&m, k, (size_t)len, V((uintptr_t)i + 1), NULL), 0);
  }
  ck_assert_uint_eq(kz_map_count(&m), (size_t)n);
  for (int i = 0; i < n; i++) {
    int len = snprintf(k, sizeof(k), "key%d", i);
    ck_assert_ptr_eq(kz_map_get(&m, k, (size_t)len, NULL), V((uintptr_t)i + 1));
  }
  /* Delete every other key (backward-shift deletion), check the rest. */
  for (int i = 0; i < n; i += 2) {
    int len = snprintf(k, sizeof(k), "key%d", i);
    ck_assert_ptr_eq(kz_map_del(&m, k, (size_t)len, NULL), V((uintptr_t)i + 1));
  }
  ck_assert_uint_eq(kz_map_count(&m), (size_t)n / 2);
  for (int i = 0; i < n; i++) {
    int len = snprintf(k, sizeof(k), "key%d", i);
    bool found;
    void *v = kz_map_get(&m, k, (size_t)len, &found);
    ck_assert(found == (i % 2 == 1));
    ck_assert_ptr_eq(v, i % 2 ? V((uintptr_t)i + 1) : NULL);
  }
  size_t pos = 0;
  void *v;
  uintptr_t expect = 2;
  while (kz_map_next(&m, &pos, NULL, NULL, &v)) {
    ck_assert_ptr_eq(v, V(expect));
    expect += 2;
  }
  ck_assert_uint_eq(expect, (uintptr_t)n + 2);
  kz_map_free(&m);
}
END_TEST

/* Fills a map with `n` keys; stops at the first error. */
static int fill(struct kz_map *m, int n) {
  char k[16];
  for (int i = 0; i < n; i++) {
    int len = snprintf(k, sizeof(k), "k%d", i);
    size_t before = kz_map_count(m);
    int rc = kz_map_put(m, k, (size_t)len, V((uintptr_t)i + 1), NULL);
    if (rc) {
      ck_assert_int_eq(rc, KZ_ENOMEM);
      /* Unchanged: same count, the key absent, older keys intact. */
      ck_assert_uint_eq(kz_map_count(m), before);
      ck_assert_ptr_null(kz_map_get(m, k, (size_t)len, NULL));
      for (int j = 0; j < i; j++) {
        len = snprintf(k, sizeof(k), "k%d", j);
        ck_assert_ptr_eq(kz_map_get(m, k, (size_t)len, NULL), V((uintptr_t)j + 1));
      }
      return rc;
    }
  }
  return 0;
}

START_TEST(map_enomem_sweep) {
  int failures = 0;
  for (int64_t k = 0;; k++) {
    struct kz_map m;
    kz_map_init(&m, 5, false);
    /* Some holes first, so compaction is part of the sweep. */
    ck_assert_int_eq(fill(&m, 6), 0);
    kz_map_del_str(&m, "k1");
    kz_map_del_str(&m, "k3");
    kz_mem_fail_after(k);
    int rc = fill(&m, 70);
    kz_mem_fail_after(-1);
    if (rc == 0) {
      ck_assert_uint_eq(kz_map_count(&m), 70);
      kz_map_free(&m);
      break;
    }
    /* After a failure, the map keeps working. */
    ck_assert_int_eq(fill(&m, 70), 0);
    ck_assert_uint_eq(kz_map_count(&m), 70);
    kz_map_free(&m);
    failures++;
    ck_assert_int_lt(k, 500);
  }
  ck_assert_int_ge(failures, 70);
}
END_TEST

void kz_core_test_map(Suite *s) {
  TCase *tc = kz_tcase(s, "map", 60);
  tcase_add_test(tc, map_put_get_del);
  tcase_add_test(tc, map_insertion_order);
  tcase_add_test(tc, map_churn_compaction);
  tcase_add_test(tc, map_nocase);
  tcase_add_test(tc, map_growth_100k);
  tcase_add_test(tc, map_enomem_sweep);
}
