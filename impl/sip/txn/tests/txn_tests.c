/* txn_tests.c — main of the kz_sip_txn Check suite and helpers shared by its parts. */
#include "txn_tests.h"

#include "kz/mem.h"
#include "kz_test.h"

struct kz_sip_msg *tt_parse(const void *data, size_t len) {
  struct kz_sip_msg *m = NULL;
  struct kz_sip_perr err;
  int rc = kz_sip_msg_parse(&m, data, len, KZ_SIP_PARSE_COPY, &err);
  ck_assert_msg(rc == 0, "parse failed (%d): %s\n%.*s", rc, err.reason, (int)len,
                (const char *)data);
  return m;
}

size_t tt_count_hdr(const struct kz_sip_msg *m, enum kz_sip_hdr_id id) {
  size_t n = 0;
  for (const struct kz_sip_hdr *h = kz_sip_msg_hdr(m, id); h; h = kz_sip_msg_hdr_next(m, h)) n++;
  return n;
}

struct kz_slice tt_hdr_value(const struct kz_sip_msg *m, enum kz_sip_hdr_id id, struct kz_buf *b) {
  const struct kz_sip_hdr *h = kz_sip_msg_hdr(m, id);
  kz_buf_reset(b);
  if (!h) return KZ_SLICE_NULL;
  ck_assert_int_eq(kz_sip_unfold(b, h->value), 0);
  return kz_buf_slice(b);
}

int main(void) {
  Suite *s = suite_create("kz_sip_txn");
  txn_tests_build(s);
  txn_tests_txn(s);
  txn_tests_dialog(s);
  return kz_run_suite(s);
}
