/* fuzz_sdp.c — libFuzzer target: parse arbitrary bytes; print, re-parse and answer what parses; rewrite and bump. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/buf.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sdp.h"

static const struct kz_sdp_codec codecs[] = {
    {NULL, "PCMU", 8000, 0, NULL},           {NULL, "PCMA", 8000, 0, NULL},
    {NULL, "G722", 8000, 0, NULL},           {NULL, "telephone-event", 8000, 0, "0-16"},
    {"audio", "opus", 48000, 2, NULL},       {"video", "H264", 90000, 0, NULL},
};

static void check(int cond, const char *what) {
  if (!cond) {
    fprintf(stderr, "fuzz_sdp invariant broken: %s\n", what);
    abort();
  }
}

static void print_twice(const struct kz_sdp *sdp) {
  struct kz_buf a, b;
  kz_buf_init(&a);
  kz_buf_init(&b);
  check(kz_sdp_print(sdp, &a) == 0, "print");
  struct kz_sdp *again = NULL;
  struct kz_sdp_error err;
  int rc = kz_sdp_parse(&again, a.data, a.len, NULL, &err);
  if (rc) fprintf(stderr, "reparse: %s\n%s\n", err.reason, (const char *)a.data);
  check(rc == 0, "printed text parses");
  check(again->nmedia == sdp->nmedia, "same media count");
  check(kz_sdp_print(again, &b) == 0, "print again");
  check(a.len == b.len && memcmp(a.data, b.data, a.len) == 0, "print is a fixed point");
  kz_deref(again);
  kz_buf_free(&a);
  kz_buf_free(&b);
}

static void answer(const struct kz_sdp *sdp, int local_order) {
  uint16_t ports[KZ_SDP_DEFAULT_MAX_MEDIA];
  for (size_t i = 0; i < KZ_SDP_DEFAULT_MAX_MEDIA; i++) ports[i] = (uint16_t)(10000 + 2 * i);
  struct kz_sdp_answer_params p = {
      .codecs = codecs, .ncodecs = sizeof(codecs) / sizeof(codecs[0]), .local_order = local_order,
      .username = KZ_SLICE_LIT("kz"), .sess_id = 1, .sess_version = 1,
      .addr = KZ_SLICE_LIT("192.0.2.1"), .ports = ports, .nports = KZ_SDP_DEFAULT_MAX_MEDIA,
      .ptime = 20};
  struct kz_buf out;
  kz_buf_init(&out);
  check(kz_sdp_answer(sdp, &p, &out) == 0, "answer");
  struct kz_sdp *ans = NULL;
  struct kz_sdp_error err;
  int rc = kz_sdp_parse(&ans, out.data, out.len, NULL, &err);
  if (rc) fprintf(stderr, "answer reparse: %s\n%s\n", err.reason, (const char *)out.data);
  check(rc == 0, "answer parses");
  check(ans->nmedia == sdp->nmedia, "answer has one m= per offered stream");
  kz_deref(ans);
  kz_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct kz_sdp *sdp = NULL;
  struct kz_sdp_error err;
  int rc = kz_sdp_parse(&sdp, data, size, NULL, &err);
  check(rc == 0 || rc == KZ_EPROTO || rc == KZ_EMSGSIZE, "parse result");
  if (rc) {
    check(strncmp(err.reason, "line ", 5) == 0, "reason names a line");
    return 0;
  }
  print_twice(sdp);
  answer(sdp, 0);
  answer(sdp, 1);
  for (size_t i = 0; i < sdp->nmedia; i++) {
    (void)kz_sdp_media_on_hold(sdp, i);
    (void)kz_sdp_media_conn(sdp, i);
  }
  (void)kz_sdp_on_hold(sdp);

  uint16_t ports[3] = {20000, 0, 20004};
  struct kz_sdp_relay r = {.addr = KZ_SLICE_LIT("2001:db8::1"), .ports = ports, .nports = 3,
                           .origin = size & 1};
  struct kz_buf out;
  kz_buf_init(&out);
  check(kz_sdp_rewrite(data, size, &r, &out, NULL) == 0, "rewrite");
  struct kz_sdp *rw = NULL;
  check(kz_sdp_parse(&rw, out.data, out.len, NULL, NULL) == 0, "rewritten parses");
  check(rw->nmedia == sdp->nmedia, "rewrite keeps streams");
  kz_deref(rw);
  kz_buf_reset(&out);
  rc = kz_sdp_bump_version(data, size, &out, NULL);
  check(rc == 0 || (rc == KZ_ERANGE && sdp->origin.sess_version == UINT64_MAX), "bump");
  kz_buf_free(&out);
  kz_deref(sdp);
  return 0;
}
