/* test_error.c — error code names and texts. */
#include <string.h>

#include "core_tests.h"
#include "kz/error.h"

START_TEST(error_names_and_texts) {
  ck_assert_str_eq(kz_err_name(0), "KZ_OK");
  ck_assert_str_eq(kz_strerror(0), "success");
  ck_assert_str_eq(kz_err_name(KZ_ENOMEM), "KZ_ENOMEM");
  ck_assert_str_eq(kz_strerror(KZ_ENOMEM), "out of memory");
  ck_assert_str_eq(kz_err_name(KZ_EINVAL), "KZ_EINVAL");
  ck_assert_str_eq(kz_strerror(KZ_ETIMEDOUT), "timed out");
  ck_assert_str_eq(kz_err_name(KZ_EHOSTDOWN), "KZ_EHOSTDOWN");
  ck_assert_str_eq(kz_strerror(KZ_EHOSTDOWN), "host is down");
  ck_assert_str_eq(kz_err_name(-9999), "KZ_UNKNOWN");
  ck_assert_str_eq(kz_strerror(-9999), "unknown error");
  ck_assert_str_eq(kz_err_name(5), "KZ_UNKNOWN");
  ck_assert_str_eq(kz_strerror(5), "unknown error");
}
END_TEST

/* Every code of the table has a distinct name and a real text. */
START_TEST(error_table_complete) {
  static const int codes[] = {
#define X_(name, code, text) KZ_##name,
      KZ_ERRNO_MAP(X_)
#undef X_
  };
  size_t n = sizeof(codes) / sizeof(codes[0]);
  ck_assert_uint_eq(n, 24);
  for (size_t i = 0; i < n; i++) {
    ck_assert_int_lt(codes[i], 0);
    ck_assert_str_ne(kz_err_name(codes[i]), "KZ_UNKNOWN");
    ck_assert_str_ne(kz_strerror(codes[i]), "unknown error");
    ck_assert_int_eq(strncmp(kz_err_name(codes[i]), "KZ_E", 4), 0);
    for (size_t j = 0; j < i; j++) {
      ck_assert_int_ne(codes[i], codes[j]);
      ck_assert_str_ne(kz_err_name(codes[i]), kz_err_name(codes[j]));
    }
  }
}
END_TEST

void kz_core_test_error(Suite *s) {
  TCase *tc = kz_tcase(s, "error", 10);
  tcase_add_test(tc, error_names_and_texts);
  tcase_add_test(tc, error_table_complete);
}
