/* kz_test.c — leak-check fixture and file helpers for every Check suite. */
#include "kz_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/mem.h"

/* Test processes are OS-facing drivers of the code under test: the
 * baseline below is the test runner's own state, not role state. */
static int64_t leak_baseline;

static void leak_setup(void) {
  kz_mem_fail_after(-1);
  leak_baseline = kz_mem_live_blocks();
}

static void leak_teardown(void) {
  kz_mem_fail_after(-1);
  int64_t live = kz_mem_live_blocks();
  ck_assert_msg(live == leak_baseline, "leak: %lld kz blocks live after the test, %lld before",
                (long long)live, (long long)leak_baseline);
}

TCase *kz_tcase(Suite *suite, const char *name, int timeout_s) {
  TCase *tc = tcase_create(name);
  tcase_add_checked_fixture(tc, leak_setup, leak_teardown);
  tcase_set_timeout(tc, timeout_s);
  suite_add_tcase(suite, tc);
  return tc;
}

int kz_run_suite(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}

static const char *join(char *out, size_t outlen, const char *env, const char *fallback,
                        const char *rel) {
  const char *base = getenv(env);
  if (!base || !*base) base = fallback;
  snprintf(out, outlen, "%s/%s", base, rel);
  return out;
}

const char *kz_test_source_path(char *out, size_t outlen, const char *rel) {
  return join(out, outlen, "KZ_SOURCE_DIR", ".", rel);
}

const char *kz_test_shared_path(char *out, size_t outlen, const char *rel) {
  return join(out, outlen, "KZ_SHARED_DIR", "../shared", rel);
}

uint8_t *kz_test_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0, r;
  uint8_t *buf = malloc(cap + 1);
  while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) {
      uint8_t *nb = realloc(buf, (cap *= 2) + 1);
      if (!nb) {
        free(buf);
        buf = NULL;
      } else {
        buf = nb;
      }
    }
  }
  fclose(f);
  if (!buf) return NULL;
  buf[n] = 0;
  *len = n;
  return buf;
}
