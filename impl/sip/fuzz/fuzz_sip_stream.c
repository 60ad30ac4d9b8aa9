/* fuzz_sip_stream.c — libFuzzer target: stream framer fed in chunk sizes taken from the input; each message printed and reparsed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sip_msg.h"
#include "sip_equiv.h"

/* Input layout: byte 0 = number of chunk-size bytes n (mod 16); the next n
 * bytes are chunk sizes (cycled, 0 read as 1), the rest is the stream. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t n = data[0] % 16;
  if (size < 1 + n) return 0;
  const uint8_t *sizes = data + 1, *in = data + 1 + n;
  size_t len = size - 1 - n;
  struct kz_sip_framer *f;
  if (kz_sip_framer_new(&f, 4096) != 0) abort();
  size_t off = 0, k = 0;
  int fatal = 0;
  while (off < len && !fatal) {
    size_t c = n ? sizes[k++ % n] : len;
    if (c == 0) c = 1;
    if (c > len - off) c = len - off;
    if (kz_sip_framer_feed(f, in + off, c) != 0) abort();
    off += c;
    for (;;) {
      struct kz_sip_msg *m = NULL;
      struct kz_sip_perr err;
      int rc = kz_sip_framer_next(f, &m, &err);
      if (rc == KZ_EAGAIN) break;
      if (rc == KZ_EPROTO) {
        if (!err.reason[0]) abort();
        if (err.fatal) {
          fatal = 1;
          break;
        }
        continue;
      }
      if (rc != 0) abort();
      /* a framed message has exactly Content-Length body bytes */
      if (m->content_length < 0 || (size_t)m->content_length != m->body.len) abort();
      char why[256];
      int parsed;
      if (kz_sip_test_roundtrip(m->raw.p, m->raw.len, &parsed, why, sizeof why) != 0 || !parsed)
        abort();
      kz_deref(m);
    }
  }
  if (kz_sip_framer_pending(f) > len) abort();
  (void)kz_sip_framer_take_pings(f);
  kz_sip_framer_free(f);
  return 0;
}
