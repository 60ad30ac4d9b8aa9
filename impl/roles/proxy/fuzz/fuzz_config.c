/* fuzz_config.c — libFuzzer target for the proxy's JSON configuration: any bytes parse and check, or are refused with a message naming the field. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz_fuzz.h"

#include "kz/error.h"
#include "kz/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct kz_proxy_config c;
  kz_proxy_config_defaults(&c);
  char err[256];
  memset(err, 0x5a, sizeof err);
  int rc = kz_proxy_config_parse(&c, (const char *)data, size, err, sizeof err);
  if (rc) {
    KZ_FUZZ_CHECK(rc == KZ_EPROTO || rc == KZ_ENOMEM);
    KZ_FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
    return 0;
  }
  memset(err, 0x5a, sizeof err);
  rc = kz_proxy_config_check(&c, err, sizeof err);
  if (rc) {
    KZ_FUZZ_CHECK(rc == KZ_EINVAL);
    KZ_FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
  }
  /* A second parse over the result of the first must not depend on
   * leftovers: parsing the same bytes again gives the same config. */
  struct kz_proxy_config again;
  kz_proxy_config_defaults(&again);
  KZ_FUZZ_CHECK(kz_proxy_config_parse(&again, (const char *)data, size, NULL, 0) == 0);
  KZ_FUZZ_CHECK(memcmp(&again, &c, sizeof c) == 0);
  return 0;
}
