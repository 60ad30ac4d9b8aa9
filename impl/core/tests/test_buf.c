/* test_buf.c — slices and growable buffers, with allocation-failure sweeps. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core_tests.h"
#include "kz/buf.h"
#include "kz/error.h"
#include "kz/mem.h"

START_TEST(slice_basics) {
  struct kz_slice a = KZ_SLICE_LIT("Hello");
  ck_assert_uint_eq(a.len, 5);
  ck_assert(kz_slice_eq(a, kz_slice_cstr("Hello")));
  ck_assert(!kz_slice_eq(a, kz_slice_cstr("hello")));
  ck_assert(kz_slice_caseeq(a, kz_slice_cstr("hELLO")));
  ck_assert(!kz_slice_caseeq(a, kz_slice_cstr("hELL")));
  ck_assert(kz_slice_caseeq_cstr(a, "HELLO"));
  ck_assert(kz_slice_eq_cstr(a, "Hello"));
  /* Only ASCII letters fold: '@' (0x40) and '`' (0x60) differ by the case bit. */
  ck_assert(!kz_slice_caseeq_cstr(KZ_SLICE_LIT("@"), "`"));
  ck_assert(!kz_slice_caseeq_cstr(KZ_SLICE_LIT("["), "{"));
  ck_assert(kz_slice_eq(KZ_SLICE_NULL, kz_slice_make(NULL, 0)));
  ck_assert(kz_slice_eq(KZ_SLICE_NULL, kz_slice_cstr("")));
  ck_assert_uint_eq(kz_slice_cstr(NULL).len, 0);

  ck_assert_int_eq(kz_slice_cmp(KZ_SLICE_LIT("abc"), KZ_SLICE_LIT("abd")), -1);
  ck_assert_int_eq(kz_slice_cmp(KZ_SLICE_LIT("abd"), KZ_SLICE_LIT("abc")), 1);
  ck_assert_int_eq(kz_slice_cmp(KZ_SLICE_LIT("ab"), KZ_SLICE_LIT("abc")), -1);
  ck_assert_int_eq(kz_slice_cmp(KZ_SLICE_LIT("abc"), KZ_SLICE_LIT("ab")), 1);
  ck_assert_int_eq(kz_slice_cmp(KZ_SLICE_LIT("abc"), KZ_SLICE_LIT("abc")), 0);
  ck_assert_int_eq(kz_slice_cmp(KZ_SLICE_NULL, KZ_SLICE_NULL), 0);

  ck_assert_int_eq(kz_slice_find_char(a, 'l'), 2);
  ck_assert_int_eq(kz_slice_find_char(a, 'z'), -1);
  ck_assert_int_eq(kz_slice_find_char(KZ_SLICE_NULL, 'z'), -1);

  struct kz_slice sub = kz_slice_sub(a, 1, 3);
  ck_assert(kz_slice_eq_cstr(sub, "ell"));
  ck_assert(kz_slice_eq_cstr(kz_slice_sub(a, 3, 100), "lo"));
  ck_assert_uint_eq(kz_slice_sub(a, 5, 1).len, 0);
  ck_assert_uint_eq(kz_slice_sub(a, 99, 1).len, 0);

  char *d = kz_slice_dup(sub);
  ck_assert_str_eq(d, "ell");
  kz_free(d);
  d = kz_slice_dup(KZ_SLICE_NULL);
  ck_assert_str_eq(d, "");
  kz_free(d);
}
END_TEST

START_TEST(slice_trim) {
  ck_assert(kz_slice_eq_cstr(kz_slice_trim(KZ_SLICE_LIT(" \t\r\nabc d\r\n \t")), "abc d"));
  ck_assert(kz_slice_eq_cstr(kz_slice_trim(KZ_SLICE_LIT("abc")), "abc"));
  ck_assert_uint_eq(kz_slice_trim(KZ_SLICE_LIT(" \t \r\n")).len, 0);
  ck_assert_uint_eq(kz_slice_trim(KZ_SLICE_NULL).len, 0);
  /* Other control characters are content. */
  ck_assert(kz_slice_eq_cstr(kz_slice_trim(KZ_SLICE_LIT("\v x \f")), "\v x \f"));
}
END_TEST

/* Decimal text of every edge of int64_t, as printf writes it. */
START_TEST(i64_to_dec) {
  static const int64_t vals[] = {0, 1, -1, 9, 10, -10, 99, 100, 1234567890123LL, INT64_MAX, INT64_MIN, INT64_MIN + 1};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    char got[KZ_I64_DEC_MAX + 1], want[32];
    size_t n = kz_i64_to_dec(vals[i], got);
    got[n] = 0;
    snprintf(want, sizeof want, "%lld", (long long)vals[i]);
    ck_assert_str_eq(got, want);
  }
}
END_TEST

START_TEST(slice_to_u64) {
  uint64_t v = 7;
  ck_assert_int_eq(kz_slice_to_u64(KZ_SLICE_LIT("0"), UINT64_MAX, &v), 0);
  ck_assert_uint_eq(v, 0);
  ck_assert_int_eq(kz_slice_to_u64(KZ_SLICE_LIT("65535"), 65535, &v), 0);
  ck_assert_uint_eq(v, 65535);
  ck_assert_int_eq(kz_slice_to_u64(KZ_SLICE_LIT("65536"), 65535, &v), KZ_ERANGE);
  ck_assert_int_eq(kz_slice_to_u64(KZ_SLICE_LIT("18446744073709551615"), UINT64_MAX, &v), 0);
  ck_assert_uint_eq(v, UINT64_MAX);
  v = 7;
  ck_assert_int_eq(kz_slice_to_u64(KZ_SLICE_LIT("18446744073709551616"), UINT64_MAX, &v),
                   KZ_ERANGE);
  ck_assert_int_eq(kz_slice_to_u64(KZ_SLICE_LIT("99999999999999999999999"), UINT64_MAX, &v),
                   KZ_ERANGE);
  ck_assert_uint_eq(v, 7); /* untouched on error */
  ck_assert_int_eq(kz_slice_to_u64(KZ_SLICE_LIT(""), UINT64_MAX, &v), KZ_EPROTO);
  ck_assert_int_eq(kz_slice_to_u64(KZ_SLICE_LIT("12a"), UINT64_MAX, &v), KZ_EPROTO);
  ck_assert_int_eq(kz_slice_to_u64(KZ_SLICE_LIT("-1"), UINT64_MAX, &v), KZ_EPROTO);
  ck_assert_int_eq(kz_slice_to_u64(KZ_SLICE_LIT("+1"), UINT64_MAX, &v), KZ_EPROTO);
  ck_assert_int_eq(kz_slice_to_u64(KZ_SLICE_LIT(" 1"), UINT64_MAX, &v), KZ_EPROTO);
  ck_assert_int_eq(kz_slice_to_u64(KZ_SLICE_LIT("99999999999999999999999x"), UINT64_MAX, &v),
                   KZ_EPROTO);
  ck_assert_uint_eq(v, 7);
  /* The slice bounds the number, not a NUL. */
  ck_assert_int_eq(kz_slice_to_u64(kz_slice_make("123456", 3), UINT64_MAX, &v), 0);
  ck_assert_uint_eq(v, 123);
}
END_TEST

START_TEST(buf_append) {
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_buf_append_cstr(&b, "abc"), 0);
  ck_assert_int_eq(kz_buf_append_byte(&b, 'd'), 0);
  ck_assert_int_eq(kz_buf_append_slice(&b, KZ_SLICE_LIT("ef")), 0);
  ck_assert_int_eq(kz_buf_append(&b, "ghXX", 2), 0);
  ck_assert_uint_eq(b.len, 8);
  ck_assert_str_eq((char *)b.data, "abcdefgh");
  ck_assert(kz_slice_eq_cstr(kz_buf_slice(&b), "abcdefgh"));
  /* Appending nothing still leaves a printable string. */
  struct kz_buf e = {0};
  ck_assert_int_eq(kz_buf_append(&e, NULL, 0), 0);
  ck_assert_ptr_nonnull(e.data);
  ck_assert_str_eq((char *)e.data, "");
  kz_buf_free(&e);
  /* Large appends keep the NUL. */
  char big[5000];
  memset(big, 'x', sizeof(big));
  ck_assert_int_eq(kz_buf_append(&b, big, sizeof(big)), 0);
  ck_assert_uint_eq(b.len, 5008);
  ck_assert_uint_ge(b.cap, 5009);
  ck_assert_int_eq(b.data[b.len], 0);
  kz_buf_reset(&b);
  ck_assert_uint_eq(b.len, 0);
  ck_assert_str_eq((char *)b.data, "");
  kz_buf_free(&b);
  ck_assert_ptr_null(b.data);
  ck_assert_uint_eq(b.cap, 0);
  kz_buf_free(&b); /* twice is harmless */
}
END_TEST

START_TEST(buf_printf) {
  struct kz_buf b = {0};
  ck_assert_int_eq(kz_buf_printf(&b, "%d-%s", 42, "x"), 0);
  ck_assert_str_eq((char *)b.data, "42-x");
  char big[1000];
  memset(big, 'y', sizeof(big) - 1);
  big[sizeof(big) - 1] = 0;
  /* Longer than the internal scratch buffer. */
  ck_assert_int_eq(kz_buf_printf(&b, "[%s]", big), 0);
  ck_assert_uint_eq(b.len, 4 + 2 + 999);
  ck_assert_int_eq(b.data[4], '[');
  ck_assert_int_eq(b.data[b.len - 1], ']');
  ck_assert_int_eq(b.data[b.len], 0);
  ck_assert_int_eq(kz_buf_printf(&b, "%s", ""), 0);
  ck_assert_uint_eq(b.len, 1005);
  kz_buf_free(&b);
}
END_TEST

START_TEST(buf_consume) {
  struct kz_buf b = {0};
  ck_assert_int_eq(kz_buf_append_cstr(&b, "hello world"), 0);
  kz_buf_consume(&b, 6);
  ck_assert_str_eq((char *)b.data, "world");
  ck_assert_uint_eq(b.len, 5);
  kz_buf_consume(&b, 0);
  ck_assert_str_eq((char *)b.data, "world");
  kz_buf_consume(&b, 100);
  ck_assert_uint_eq(b.len, 0);
  ck_assert_str_eq((char *)b.data, "");
  kz_buf_consume(&b, 1); /* on empty */
  ck_assert_uint_eq(b.len, 0);
  kz_buf_free(&b);
  struct kz_buf z = {0};
  kz_buf_consume(&z, 3); /* never allocated */
  kz_buf_reset(&z);
  ck_assert_ptr_null(z.data);
}
END_TEST

START_TEST(buf_truncate) {
  struct kz_buf b;
  kz_buf_init(&b);
  kz_buf_truncate(&b, 0); /* empty, no memory: a no-op */
  ck_assert_uint_eq(b.len, 0);
  ck_assert_int_eq(kz_buf_append_cstr(&b, "hello world"), 0);
  kz_buf_truncate(&b, 20); /* past the end: unchanged */
  ck_assert_str_eq((const char *)b.data, "hello world");
  kz_buf_truncate(&b, 5);
  ck_assert_uint_eq(b.len, 5);
  ck_assert_str_eq((const char *)b.data, "hello"); /* NUL kept after len */
  kz_buf_free(&b);
}
END_TEST

START_TEST(buf_reserve) {
  struct kz_buf b = {0};
  ck_assert_int_eq(kz_buf_reserve(&b, 100), 0);
  ck_assert_uint_ge(b.cap, 101);
  ck_assert_uint_eq(b.len, 0);
  uint8_t *data = b.data;
  /* Room already there: no reallocation. */
  for (int i = 0; i < 100; i++) ck_assert_int_eq(kz_buf_append_byte(&b, 'a'), 0);
  ck_assert_ptr_eq(b.data, data);
  ck_assert_int_eq(kz_buf_reserve(&b, SIZE_MAX), KZ_ENOMEM);
  ck_assert_int_eq(kz_buf_reserve(&b, SIZE_MAX - 50), KZ_ENOMEM);
  ck_assert_uint_eq(b.len, 100);
  kz_buf_free(&b);
}
END_TEST

/* Builds a buffer with several growth steps; a failure at any allocation
 * must leave the buffer exactly as it was before the failing call. */
static int build_sequence(struct kz_buf *b, int *step) {
  char chunk[300];
  memset(chunk, 'c', sizeof(chunk));
  for (*step = 0; *step < 12; (*step)++) {
    struct kz_buf before = *b;
    char snapshot[4096];
    ck_assert_uint_lt(b->len, sizeof(snapshot));
    if (b->len) memcpy(snapshot, b->data, b->len);
    int rc;
    switch (*step % 4) {
    case 0:
      rc = kz_buf_append(b, chunk, sizeof(chunk));
      break;
    case 1:
      rc = kz_buf_printf(b, "%0*d", 290, *step);
      break;
    case 2:
      rc = kz_buf_append_cstr(b, "tail");
      break;
    default:
      rc = kz_buf_reserve(b, 500);
      break;
    }
    if (rc) {
      ck_assert_int_eq(rc, KZ_ENOMEM);
      ck_assert_uint_eq(b->len, before.len);
      ck_assert_uint_eq(b->cap, before.cap);
      ck_assert_ptr_eq(b->data, before.data);
      if (b->len) ck_assert_int_eq(memcmp(snapshot, b->data, b->len), 0);
      if (b->cap) ck_assert_int_eq(b->data[b->len], 0);
      return rc;
    }
  }
  return 0;
}

START_TEST(buf_fail_sweep) {
  struct kz_buf ref = {0};
  int step;
  ck_assert_int_eq(build_sequence(&ref, &step), 0);
  int failures = 0;
  for (int64_t k = 0;; k++) {
    struct kz_buf b = {0};
    kz_mem_fail_after(k);
    int rc = build_sequence(&b, &step);
    kz_mem_fail_after(-1);
    if (rc == 0) {
      ck_assert_uint_eq(b.len, ref.len);
      ck_assert_int_eq(memcmp(b.data, ref.data, b.len), 0);
      kz_buf_free(&b);
      break;
    }
    failures++;
    kz_buf_free(&b);
    ck_assert_int_lt(k, 100);
  }
  ck_assert_int_ge(failures, 3); /* the sequence really grew several times */
  kz_buf_free(&ref);
}
END_TEST

void kz_core_test_buf(Suite *s) {
  TCase *tc = kz_tcase(s, "buf", 10);
  tcase_add_test(tc, slice_basics);
  tcase_add_test(tc, slice_trim);
  tcase_add_test(tc, slice_to_u64);
  tcase_add_test(tc, i64_to_dec);
  tcase_add_test(tc, buf_append);
  tcase_add_test(tc, buf_printf);
  tcase_add_test(tc, buf_consume);
  tcase_add_test(tc, buf_truncate);
  tcase_add_test(tc, buf_reserve);
  tcase_add_test(tc, buf_fail_sweep);
}
