/* fuzz_frame.c — libFuzzer target: decode arbitrary bytes as a stream of bus wire frames; every frame decoded must re-encode to the very bytes it came from. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kz_fuzz.h"
#include "kz/bus_wire.h"
#include "kz/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t off = 0;
  while (off < size) {
    struct kz_bus_wire_frame f;
    size_t used = 0;
    int rc = kz_bus_wire_decode(data + off, size - off, &f, &used);
    if (rc) {
      KZ_FUZZ_CHECK(rc == KZ_EAGAIN || rc == KZ_EPROTO || rc == KZ_EMSGSIZE);
      break;
    }
    KZ_FUZZ_CHECK(used >= 5 && used <= size - off);
    KZ_FUZZ_CHECK(strcmp(kz_bus_wire_op_name((int)f.op), "?") != 0);
    /* The encoding is canonical: one frame, one byte string. */
    struct kz_buf b;
    kz_buf_init(&b);
    KZ_FUZZ_CHECK(kz_bus_wire_encode(&b, &f) == 0);
    KZ_FUZZ_CHECK(b.len == used && memcmp(b.data, data + off, used) == 0);
    kz_buf_free(&b);
    off += used;
  }
  return 0;
}
