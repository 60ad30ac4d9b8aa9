/* fuzz_scenario.c — libFuzzer target for the SIPp XML scenario reader: any bytes load or give a "file:line: why" error, never a crash or a leak. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz_fuzz.h"

#include "kz/buf.h"
#include "kz/error.h"
#include "kz/sipp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* The keys SIPp's -key would give: their substitution runs on every input. */
  static const struct kz_sipp_key keys[] = {{"user", "alice"}, {"domain", "example.com"}};
  struct kz_sipp_load_opts opts = {keys, 2};
  struct kz_sipp_scenario *s = NULL;
  struct kz_sipp_load_err err;
  memset(&err, 0x5a, sizeof err); /* a message that is not written shows */
  int rc = kz_sipp_scenario_load(&s, "fuzz.xml", data, size, &opts, &err);
  if (rc) {
    KZ_FUZZ_CHECK(s == NULL);
    KZ_FUZZ_CHECK(rc == KZ_EPROTO || rc == KZ_ENOTSUP || rc == KZ_ENOMEM);
    KZ_FUZZ_CHECK(memchr(err.text, '\0', sizeof err.text) != NULL);
    KZ_FUZZ_CHECK(rc == KZ_ENOMEM || strlen(err.text) > 0);
    KZ_FUZZ_CHECK(err.unsupported == (rc == KZ_ENOTSUP));
    return 0;
  }
  KZ_FUZZ_CHECK(s != NULL);
  (void)kz_sipp_scenario_name(s);
  (void)kz_sipp_scenario_len(s);
  for (size_t i = 0; i < kz_sipp_scenario_warning_count(s); i++)
    KZ_FUZZ_CHECK(kz_sipp_scenario_warning(s, i) != NULL);
  struct kz_buf out;
  kz_buf_init(&out);
  KZ_FUZZ_CHECK(kz_sipp_scenario_describe(s, &out) == 0);
  kz_buf_free(&out);
  kz_sipp_scenario_free(s);
  return 0;
}
