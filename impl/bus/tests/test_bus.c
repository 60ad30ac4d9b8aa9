/* test_bus.c — entry point of kz_bus's Check suite. */
#include "kz_test.h"
#include "test_bus.h"

int main(void) {
  Suite *s = suite_create("bus");
  kz_bus_test_add_kapi(s);
  kz_bus_test_add_keys(s);
  return kz_run_suite(s);
}
