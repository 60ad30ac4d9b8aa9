/* docgen.h — the benchmark's documents: Kazoo-like device JSON, the same bytes for the HTTP client and the raw-SQLite writer. */
#ifndef KZ_BENCH_DB_DOCGEN_H
#define KZ_BENCH_DB_DOCGEN_H

#include <stdio.h>

/* Id of single-write document i ("dev000042") or bulk document i ("blk000042"). */
static inline void kz_bench_doc_id(char *out, size_t cap, const char *prefix, unsigned i) {
  snprintf(out, cap, "%s%06u", prefix, i);
}

/* Body of document i without _id (about 560 bytes), shaped like a Kazoo
 * device: a sip object (what devices/sip_credentials maps), caller id,
 * media settings and pvt_ fields.  Returns the length written (or the
 * length needed, as snprintf). */
static inline int kz_bench_doc_body(char *out, size_t cap, unsigned i) {
  return snprintf(out, cap,
                  "{\"pvt_type\":\"device\",\"pvt_account_id\":\"3c3f0a8e5d4c4b7aa1f2e3d4c5b6a7%02u\","
                  "\"pvt_account_db\":\"account%%2F3c%%2F3f%%2F0a8e5d4c4b7aa1f2e3d4c5b6a7%02u\","
                  "\"pvt_created\":%u,\"pvt_modified\":%u,\"pvt_vsn\":\"1\",\"name\":\"Desk phone %u\","
                  "\"device_type\":\"sip_device\",\"enabled\":true,\"owner_id\":\"user-%06u\","
                  "\"sip\":{\"username\":\"user%06u\",\"password\":\"pw%08x\",\"realm\":\"acct%u.kz.invalid\","
                  "\"method\":\"password\",\"invite_format\":\"username\",\"expire_seconds\":300},"
                  "\"caller_id\":{\"internal\":{\"name\":\"Ext %u\",\"number\":\"%u\"},"
                  "\"external\":{\"name\":\"Main line\",\"number\":\"+1415555%04u\"}},"
                  "\"media\":{\"audio\":{\"codecs\":[\"PCMU\",\"PCMA\",\"OPUS\"]},\"video\":{\"codecs\":[]},"
                  "\"encryption\":{\"enforce_security\":false,\"methods\":[]}},"
                  "\"call_forward\":{\"enabled\":false},\"music_on_hold\":{},\"contact_list\":{\"exclude\":false}}",
                  i % 100, i % 100, 1700000000u + i, 1700000000u + i, i, i, i, i * 2654435761u, i % 50, 1000 + i,
                  1000 + i, i % 10000);
}

#endif
