/* txn_tests.h — the kz_sip_txn Check suite's parts: builders, transactions, dialogs, and shared helpers. */
#ifndef KZ_TXN_TESTS_H
#define KZ_TXN_TESTS_H

#include <check.h>
#include <stdint.h>

#include "kz/buf.h"
#include "kz/sip_msg.h"

void txn_tests_build(Suite *s);
void txn_tests_txn(Suite *s);
void txn_tests_dialog(Suite *s);

/* Parses b (copying the bytes); fails the test when it does not parse. */
struct kz_sip_msg *tt_parse(const void *data, size_t len);
/* Number of header lines with this id. */
size_t tt_count_hdr(const struct kz_sip_msg *m, enum kz_sip_hdr_id id);
/* The unfolded value of the first header with this id as a slice in b. */
struct kz_slice tt_hdr_value(const struct kz_sip_msg *m, enum kz_sip_hdr_id id, struct kz_buf *b);

#endif /* KZ_TXN_TESTS_H */
