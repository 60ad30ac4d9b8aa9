/* fuzz_topology.c — libFuzzer target for the topology loader: any bytes load or give a "file:line:col: why" error, never a crash or a leak. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz_fuzz.h"

#include "kz/error.h"
#include "kz/topology.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct kz_topo *t = NULL;
  struct kz_topo_err err;
  memset(&err, 0x5a, sizeof err); /* a message that is not written shows */
  int rc = kz_topo_load(&t, "fuzz.yaml", data, size, &err);
  if (rc) {
    KZ_FUZZ_CHECK(t == NULL);
    KZ_FUZZ_CHECK(rc == KZ_EPROTO || rc == KZ_ENOMEM);
    KZ_FUZZ_CHECK(memchr(err.text, '\0', sizeof err.text) != NULL);
    KZ_FUZZ_CHECK(strncmp(err.text, "fuzz.yaml:", 10) == 0); /* every refusal names the file */
    KZ_FUZZ_CHECK(strlen(err.text) > 10);
    return 0;
  }
  /* A loaded topology is usable: every host is named and addressed, every
   * reference is in range, and every path has a configuration. */
  KZ_FUZZ_CHECK(t != NULL);
  for (size_t i = 0; i < t->nhosts; i++) {
    KZ_FUZZ_CHECK(t->hosts[i].name[0] != '\0');
    KZ_FUZZ_CHECK(kz_topo_host_index(t, t->hosts[i].name) == (long)i);
  }
  for (size_t i = 0; i < t->npaths; i++) KZ_FUZZ_CHECK(t->paths[i].from < t->nhosts && t->paths[i].to < t->nhosts);
  for (size_t i = 0; i < t->nfaults; i++) {
    const struct kz_topo_fault *f = &t->faults[i];
    KZ_FUZZ_CHECK((int)f->kind >= 0 && (int)f->kind < KZ_TOPO_FAULT_KINDS);
    if (f->kind == KZ_TOPO_FAULT_PARTITION) {
      for (size_t a = 0; a < f->na; a++) KZ_FUZZ_CHECK(f->side_a[a] < t->nhosts);
      for (size_t b = 0; b < f->nb; b++) KZ_FUZZ_CHECK(f->side_b[b] < t->nhosts);
    } else {
      KZ_FUZZ_CHECK(f->host < t->nhosts);
    }
    KZ_FUZZ_CHECK(f->until_ns > f->at_ns || f->kind == KZ_TOPO_FAULT_SKEW || f->kind == KZ_TOPO_FAULT_RESTART);
  }
  for (size_t a = 0; a < t->nhosts && a < 16; a++)
    for (size_t b = 0; b < t->nhosts && b < 16; b++) {
      struct kz_topo_link l;
      kz_topo_path_link(t, a, b, &l);
    }
  kz_topo_free(t);
  return 0;
}
