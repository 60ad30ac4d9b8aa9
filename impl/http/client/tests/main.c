/* main.c — the kz_http_client suite: the backend contract (stream on uv and in the simulator, curl on uv) and stream-backend specifics. */
#include "kz_test.h"
#include "tests.h"

int main(void) {
  Suite *s = suite_create("kz_http_client");
  add_contract_tests(s);
  add_stream_tests(s);
  return kz_run_suite(s);
}
