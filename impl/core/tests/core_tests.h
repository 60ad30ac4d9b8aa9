/* core_tests.h — each kz_core test file adds its test cases to the one core suite. */
#ifndef KZ_CORE_TESTS_H
#define KZ_CORE_TESTS_H

#include <check.h>

#include "kz_test.h"

void kz_core_test_error(Suite *s);
void kz_core_test_mem(Suite *s);
void kz_core_test_buf(Suite *s);
void kz_core_test_prng(Suite *s);
void kz_core_test_heap(Suite *s);
void kz_core_test_map(Suite *s);
void kz_core_test_addr(Suite *s);
void kz_core_test_bytes(Suite *s);
void kz_core_test_list(Suite *s);
void kz_core_test_env(Suite *s);
void kz_core_test_log(Suite *s);

#endif /* KZ_CORE_TESTS_H */
