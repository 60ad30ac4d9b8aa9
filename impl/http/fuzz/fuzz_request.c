/* fuzz_request.c — libFuzzer target for the HTTP request parser: whole vs chunked feeding must agree; messages round-trip through the writer; URL helpers run on every target. */
#include "fuzz_common.h"

/* Exercises the URL helpers on a parsed target (they must never crash,
 * and decoded strings must be NUL-free). */
static void on_request(const struct kz_http_msg *m, const struct kz_http_limits *lim, int head_flag) {
  struct kz_slice path, query;
  if (kz_http_target_split(m->target, &path, &query, NULL) == 0) {
    struct kz_http_strlist segs;
    if (kz_http_path_segments(path, &segs, NULL) == 0) {
      for (size_t i = 0; i < segs.n; i++) KZ_FUZZ_CHECK(strlen(segs.items[i].p) == segs.items[i].len);
      kz_http_strlist_free(&segs);
    }
    struct kz_http_query q;
    if (query.p && kz_http_query_parse(query, &q, NULL) == 0) {
      KZ_FUZZ_CHECK(q.keys.n == q.values.n);
      for (size_t i = 0; i < q.keys.n; i++) KZ_FUZZ_CHECK(strlen(q.keys.items[i].p) == q.keys.items[i].len);
      kz_http_query_free(&q);
    }
  }
  (void)kz_http_msg_header_has_token(m, "connection", "close");
  fz_roundtrip(m, lim, head_flag);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  /* Byte 0 picks the chunking seed and whether limits are tight. */
  uint8_t ctl = data[0];
  data++;
  size--;
  struct kz_http_limits lim = {.max_start_line = 512, .max_header_bytes = 2048, .max_headers = 24,
                               .max_body = 1u << 16};
  if (ctl & 0x80) {
    lim = (struct kz_http_limits){.max_start_line = 24, .max_header_bytes = 64, .max_headers = 3,
                                  .max_body = 16};
  }
  struct fz_result whole, cut;
  fz_run(KZ_HTTP_REQUEST, &lim, data, size, 0, 0, on_request, &whole);
  fz_run(KZ_HTTP_REQUEST, &lim, data, size, (uint32_t)(ctl & 0x7f) * 2654435761u + 1u, 0, NULL, &cut);
  fz_same(&whole, &cut);
  return 0;
}
