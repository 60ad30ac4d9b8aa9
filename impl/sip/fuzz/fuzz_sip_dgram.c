/* fuzz_sip_dgram.c — libFuzzer target: datagram parse, then print → reparse must succeed and be equivalent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sip_msg.h"
#include "sip_equiv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct kz_sip_perr err;
  struct kz_sip_msg *m = NULL;
  int rc = kz_sip_msg_parse(&m, data, size, 0, &err);
  if (rc) {
    /* every refusal says why */
    if (rc == KZ_EPROTO && !err.reason[0]) abort();
    return 0;
  }
  /* lookups on whatever parsed */
  for (size_t i = 0; i < m->nhdrs; i++) {
    if (kz_sip_msg_hdr_by_name(m, m->hdrs[i].name) == NULL) abort();
    (void)kz_sip_param_get(m->hdrs[i].value, "tag", NULL);
  }
  kz_deref(m);
  char why[256];
  int parsed;
  if (kz_sip_test_roundtrip(data, size, &parsed, why, sizeof why) != 0 || !parsed) abort();
  return 0;
}
