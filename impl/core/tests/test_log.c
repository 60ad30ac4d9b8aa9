/* test_log.c — log line format, level filtering and the 2 KiB cut. */
#include <string.h>

#include "core_tests.h"
#include "fake_driver.h"
#include "kz/env.h"

START_TEST(log_format) {
  struct kz_env env;
  struct fake_driver d;
  memset(&d, 0, sizeof(d));
  ck_assert_int_eq(kz_env_init(&env, &kz_core_fake_ops, &d, "proxy-1", 1), 0);
  d.now = 12000000345ull; /* 12 s + 345 ns */
  kz_log(&env, KZ_LOG_WARN, "sip", "bad %s: %d", "via", 400);
  ck_assert_int_eq(d.n_logs, 1);
  ck_assert_str_eq(d.log_line, "12.000000345 WARN proxy-1/sip: bad via: 400");
  ck_assert_uint_eq(d.log_len, strlen(d.log_line));
  ck_assert_int_eq(d.log_level, KZ_LOG_WARN);
  d.now = 0;
  kz_log(&env, KZ_LOG_ERROR, NULL, "x");
  ck_assert_str_eq(d.log_line, "0.000000000 ERROR proxy-1/-: x");
  d.now = UINT64_MAX;
  kz_log(&env, KZ_LOG_INFO, "c", "%s", "");
  ck_assert_str_eq(d.log_line, "18446744073.709551615 INFO proxy-1/c: ");
  kz_env_deinit(&env);
}
END_TEST

START_TEST(log_levels) {
  struct kz_env env;
  struct fake_driver d;
  memset(&d, 0, sizeof(d));
  ck_assert_int_eq(kz_env_init(&env, &kz_core_fake_ops, &d, "h", 1), 0);
  ck_assert_int_eq(env.log_level, KZ_LOG_INFO); /* default */
  kz_log(&env, KZ_LOG_DEBUG, "c", "dropped");
  kz_log(&env, KZ_LOG_TRACE, "c", "dropped");
  ck_assert_int_eq(d.n_logs, 0);
  kz_log(&env, KZ_LOG_INFO, "c", "kept");
  ck_assert_int_eq(d.n_logs, 1);
  env.log_level = KZ_LOG_TRACE;
  kz_log(&env, KZ_LOG_TRACE, "c", "now kept");
  ck_assert_int_eq(d.n_logs, 2);
  ck_assert_str_eq(d.log_line, "0.000000000 TRACE h/c: now kept");
  env.log_level = KZ_LOG_ERROR;
  kz_log(&env, KZ_LOG_WARN, "c", "dropped");
  kz_log(&env, KZ_LOG_ERROR, "c", "kept");
  ck_assert_int_eq(d.n_logs, 3);

  ck_assert_str_eq(kz_log_level_name(KZ_LOG_ERROR), "ERROR");
  ck_assert_str_eq(kz_log_level_name(KZ_LOG_WARN), "WARN");
  ck_assert_str_eq(kz_log_level_name(KZ_LOG_INFO), "INFO");
  ck_assert_str_eq(kz_log_level_name(KZ_LOG_DEBUG), "DEBUG");
  ck_assert_str_eq(kz_log_level_name(KZ_LOG_TRACE), "TRACE");
  ck_assert_str_eq(kz_log_level_name(99), "LOG");

  /* No log_write: logging is a no-op, not a crash. */
  struct kz_env_ops quiet = kz_core_fake_ops;
  quiet.log_write = NULL;
  env.ops = &quiet;
  kz_log(&env, KZ_LOG_ERROR, "c", "nowhere");
  ck_assert_int_eq(d.n_logs, 3);
  kz_env_deinit(&env);
}
END_TEST

START_TEST(log_cut) {
  struct kz_env env;
  struct fake_driver d;
  memset(&d, 0, sizeof(d));
  ck_assert_int_eq(kz_env_init(&env, &kz_core_fake_ops, &d, "h", 1), 0);
  char big[3000];
  memset(big, 'z', sizeof(big) - 1);
  big[sizeof(big) - 1] = 0;
  kz_log(&env, KZ_LOG_ERROR, "c", "%s", big);
  ck_assert_uint_eq(d.log_len, 2047);
  ck_assert_int_eq(strncmp(d.log_line, "0.000000000 ERROR h/c: zzz", 26), 0);
  ck_assert_int_eq(d.log_line[2046], 'z');
  /* Exactly at the limit is not cut. */
  size_t prefix = strlen("0.000000000 ERROR h/c: ");
  big[2047 - prefix] = 0;
  kz_log(&env, KZ_LOG_ERROR, "c", "%s", big);
  ck_assert_uint_eq(d.log_len, 2047);
  kz_env_deinit(&env);
}
END_TEST

void kz_core_test_log(Suite *s) {
  TCase *tc = kz_tcase(s, "log", 10);
  tcase_add_test(tc, log_format);
  tcase_add_test(tc, log_levels);
  tcase_add_test(tc, log_cut);
}
