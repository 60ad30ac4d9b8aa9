/* tests.h — the parts of the kz_http_client suite. */
#ifndef KZ_HTTP_CLIENT_TESTS_H
#define KZ_HTTP_CLIENT_TESTS_H

#include <check.h>

void add_contract_tests(Suite *s);
void add_stream_tests(Suite *s);

#endif /* KZ_HTTP_CLIENT_TESTS_H */
