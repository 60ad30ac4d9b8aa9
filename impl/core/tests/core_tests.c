/* core_tests.c — main() of the kz_core Check suite. */
#include "core_tests.h"

int main(void) {
  Suite *s = suite_create("core");
  kz_core_test_error(s);
  kz_core_test_mem(s);
  kz_core_test_buf(s);
  kz_core_test_prng(s);
  kz_core_test_heap(s);
  kz_core_test_map(s);
  kz_core_test_addr(s);
  kz_core_test_bytes(s);
  kz_core_test_list(s);
  kz_core_test_env(s);
  kz_core_test_log(s);
  return kz_run_suite(s);
}
