/* test_bus.h — the parts of kz_bus's Check suite, and helpers they share. */
#ifndef KZ_BUS_TEST_BUS_H
#define KZ_BUS_TEST_BUS_H

#include <check.h>
#include <jansson.h>

void kz_bus_test_add_kapi(Suite *s);
void kz_bus_test_add_keys(Suite *s);

/* Loads impl/bus/fuzz/corpus/<name> (the seed corpus doubles as the set
 * of valid example messages).  Fails the test when it cannot. */
json_t *kz_bus_test_load(const char *name);

#endif /* KZ_BUS_TEST_BUS_H */
