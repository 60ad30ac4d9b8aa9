/* fuzz_kapi.c — libFuzzer target: parse+validate arbitrary bytes as every kapi type, kz's JSON reader and writer against jansson's, plus key escaping and topic matching. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kz/bus.h"
#include "kz/error.h"
#include "kz/kapi.h"
#include "kz/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) \
  do {           \
    if (!(c)) abort(); \
  } while (0)

/* A valid message must dump, decode back to an equal message of the
 * same type, and either give a routing key or refuse with a reason. */
static void check_valid(json_t *m, enum kz_kapi_type t) {
  struct kz_kapi_error err;
  CHECK(kz_kapi_validate(m, t, &err) == 0);
  CHECK(kz_kapi_identify_msg(m) == t);
  struct kz_buf b;
  kz_buf_init(&b);
  CHECK(kz_kapi_dump(m, &b) == 0);
  json_t *back = NULL;
  enum kz_kapi_type bt = KZ_KAPI_UNKNOWN;
  CHECK(kz_kapi_decode(b.data, b.len, NULL, KZ_KAPI_UNKNOWN, &back, &bt,
                       &err) == 0);
  CHECK(bt == t);
  CHECK(json_equal(m, back));
  json_decref(back);
  kz_buf_free(&b);
  char *key = NULL;
  int rc = kz_bus_routing_key(m, t, &key, &err);
  if (rc == 0) {
    /* A derived key routes to a binding made of itself. */
    CHECK(kz_bus_topic_match_cstr(key, key));
    kz_free(key);
  } else {
    CHECK(rc == KZ_EINVAL && key == NULL && err.reason[0]);
  }
}

/* kz_kapi_parse reads plain messages itself and kz_kapi_dump writes
 * them itself: both must agree with jansson exactly.  What jansson reads
 * (as kz_kapi_parse's fallback does), kz reads to an equal message
 * unless it nests too deep; what jansson refuses, kz refuses; and kz
 * writes the very bytes jansson's compact dump writes. */
static void check_against_jansson(const uint8_t *data, size_t size,
                                  const struct kz_kapi_limits *lim) {
  json_error_t jerr;
  json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES,
                         &jerr);
  json_t *m = NULL;
  struct kz_kapi_error err;
  int rc = kz_kapi_parse(data, size, lim, &m, &err);
  if (rc == 0) {
    CHECK(j && json_is_object(j) && json_equal(m, j));
  } else if (j && json_is_object(j)) {
    CHECK((rc == KZ_EMSGSIZE && size > lim->max_size) ||
          (rc == KZ_EPROTO &&
           strncmp(err.reason, "JSON nests deeper", 17) == 0));
  }
  if (j) {
    char *want = json_dumps(j, JSON_COMPACT);
    struct kz_buf b;
    kz_buf_init(&b);
    int drc = kz_kapi_dump(j, &b);
    CHECK(want ? drc == 0 && strlen(want) == b.len &&
                     memcmp(want, b.data, b.len) == 0
               : drc == KZ_ENOMEM);
    if (m) {
      /* Equal values, equal key order: the same bytes again. */
      kz_buf_reset(&b);
      CHECK(kz_kapi_dump(m, &b) == 0);
      CHECK(want && strlen(want) == b.len && memcmp(want, b.data, b.len) == 0);
    }
    kz_buf_free(&b);
    free(want);
    json_decref(j);
  }
  json_decref(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const struct kz_kapi_limits lim = {256 * 1024, 24};
  check_against_jansson(data, size, &lim);
  for (int t = KZ_KAPI_UNKNOWN; t < KZ_KAPI_TYPE_COUNT; t++) {
    json_t *m = NULL;
    enum kz_kapi_type got = KZ_KAPI_UNKNOWN;
    struct kz_kapi_error err;
    memset(&err, 0, sizeof err);
    int rc = kz_kapi_decode(data, size, &lim, (enum kz_kapi_type)t, &m, &got,
                            &err);
    if (rc == 0) {
      CHECK(m != NULL);
      CHECK(t == KZ_KAPI_UNKNOWN || got == (enum kz_kapi_type)t);
      check_valid(m, got);
      json_decref(m);
    } else {
      CHECK(m == NULL);
      CHECK(rc == KZ_EPROTO || rc == KZ_EMSGSIZE);
      CHECK(err.reason[0] != 0);
      CHECK(memchr(err.reason, 0, sizeof err.reason) != NULL);
    }
  }

  /* Escaping round-trips any bytes and never leaves a separator. */
  struct kz_buf e, d;
  kz_buf_init(&e);
  kz_buf_init(&d);
  CHECK(kz_bus_key_encode(&e, (const char *)data, size) == 0);
  CHECK(size == 1 || e.len == 0 || !memchr(e.data, '.', e.len));
  CHECK(kz_bus_key_decode(&d, (const char *)e.data, e.len) == 0);
  CHECK(d.len == size && (size == 0 || memcmp(d.data, data, size) == 0));
  kz_buf_free(&e);
  kz_buf_free(&d);
  /* Decoding arbitrary bytes either fails cleanly or succeeds. */
  kz_buf_init(&d);
  int rc = kz_bus_key_decode(&d, (const char *)data, size);
  CHECK(rc == 0 || (rc == KZ_EPROTO && d.len == 0));
  kz_buf_free(&d);

  /* Topic matching: pattern and key split at the first NUL.  A key with
   * no wildcard characters matches itself and "#". */
  const uint8_t *nul = memchr(data, 0, size);
  size_t plen = nul ? (size_t)(nul - data) : size;
  const char *key = nul ? (const char *)nul + 1 : "";
  size_t klen = nul ? size - plen - 1 : 0;
  (void)kz_bus_topic_match((const char *)data, plen, key, klen);
  CHECK(kz_bus_topic_match("#", 1, key, klen));
  if (!memchr(key, '*', klen) && !memchr(key, '#', klen))
    CHECK(kz_bus_topic_match(key, klen, key, klen));
  return 0;
}
