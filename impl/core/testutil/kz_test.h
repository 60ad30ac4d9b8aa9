/* kz_test.h — shared helpers for kz's Check suites: a leak check around every test, test vectors on disk. */
#ifndef KZ_TEST_H
#define KZ_TEST_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

/* Adds a test case named `name` to `suite` with a per-test timeout and
 * the leak-check fixture: the live kz allocation count after the test
 * must equal the count before it (libre's test_exec). */
TCase *kz_tcase(Suite *suite, const char *name, int timeout_s);

/* Runs a suite with CK_FORK as configured, prints Check's summary line and
 * returns the process exit status (0 when every test passed). */
int kz_run_suite(Suite *s);

/* Absolute path of a file in the source tree (KZ_SOURCE_DIR) or in
 * ../shared (KZ_SHARED_DIR).  Returned in a static buffer per call site
 * is not allowed here, so the caller passes one. */
const char *kz_test_source_path(char *out, size_t outlen, const char *rel);
const char *kz_test_shared_path(char *out, size_t outlen, const char *rel);

/* Reads a whole file into a malloc'ed (not kz_malloc'ed) buffer with a
 * NUL after the data.  Returns NULL when the file cannot be read. */
uint8_t *kz_test_read_file(const char *path, size_t *len);

#endif /* KZ_TEST_H */
