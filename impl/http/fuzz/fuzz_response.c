/* fuzz_response.c — libFuzzer target for the HTTP response parser: whole vs chunked feeding must agree (with HEAD-request hints); messages round-trip through the writer. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  /* Byte 0: chunking seed and tight limits; byte 1: which responses
   * answer HEAD requests (bit i for message i, repeating). */
  uint8_t ctl = data[0];
  uint64_t head_mask = data[1] * 0x0101010101010101ull;
  data += 2;
  size -= 2;
  struct kz_http_limits lim = {.max_start_line = 512, .max_header_bytes = 2048, .max_headers = 24,
                               .max_body = 1u << 16};
  if (ctl & 0x80) {
    lim = (struct kz_http_limits){.max_start_line = 24, .max_header_bytes = 64, .max_headers = 3,
                                  .max_body = 16};
  }
  struct fz_result whole, cut;
  fz_run(KZ_HTTP_RESPONSE, &lim, data, size, 0, head_mask, fz_roundtrip, &whole);
  fz_run(KZ_HTTP_RESPONSE, &lim, data, size, (uint32_t)(ctl & 0x7f) * 2654435761u + 1u, head_mask,
         NULL, &cut);
  fz_same(&whole, &cut);
  return 0;
}
