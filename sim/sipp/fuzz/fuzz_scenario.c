/* fuzz_scenario.c — libFuzzer target for the SIPp XML scenario reader: any bytes load or give a "file:line: why" error, never a crash or a leak. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/buf.h"
#include "kz/error.h"
#include "kz/sipp.h"

#define FZ_CHECK(cond)                                                            \
  do {                                                                            \
    if (!(cond)) {                                                                \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);    \
      abort();                                                                    \
    }                                                                             \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* The keys SIPp's -key would give: their substitution runs on every input. */
  static const struct kz_sipp_key keys[] = {{"user", "alice"}, {"domain", "example.com"}};
  struct kz_sipp_load_opts opts = {keys, 2};
  struct kz_sipp_scenario *s = NULL;
  struct kz_sipp_load_err err;
  memset(&err, 0x5a, sizeof err); /* a message that is not written shows */
  int rc = kz_sipp_scenario_load(&s, "fuzz.xml", data, size, &opts, &err);
  if (rc) {
    FZ_CHECK(s == NULL);
    FZ_CHECK(rc == KZ_EPROTO || rc == KZ_ENOTSUP || rc == KZ_ENOMEM);
    FZ_CHECK(memchr(err.text, '\0', sizeof err.text) != NULL);
    FZ_CHECK(rc == KZ_ENOMEM || strlen(err.text) > 0);
    FZ_CHECK(err.unsupported == (rc == KZ_ENOTSUP));
    return 0;
  }
  FZ_CHECK(s != NULL);
  (void)kz_sipp_scenario_name(s);
  (void)kz_sipp_scenario_len(s);
  for (size_t i = 0; i < kz_sipp_scenario_warning_count(s); i++)
    FZ_CHECK(kz_sipp_scenario_warning(s, i) != NULL);
  struct kz_buf out;
  kz_buf_init(&out);
  FZ_CHECK(kz_sipp_scenario_describe(s, &out) == 0);
  kz_buf_free(&out);
  kz_sipp_scenario_free(s);
  return 0;
}
