/* fuzz_json.c — libFuzzer target for the db role's direct JSON parser: it must never accept what json_loadb refuses, and what it accepts must equal json_loadb's values, member order and text included. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../db_int.h"
#include "kz/buf.h"
#include "kz/error.h"

#define FZ_CHECK(c)                                                       \
  do {                                                                    \
    if (!(c)) {                                                           \
      fprintf(stderr, "fuzz_json: check failed: %s (line %d)\n", #c, __LINE__); \
      abort();                                                            \
    }                                                                     \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  json_t *want = json_loadb(text, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  json_t *got = NULL;
  int rc = kz_db_json_parse(text, size, &got);
  FZ_CHECK(rc == 0 || rc == KZ_EPROTO || rc == KZ_ENOMEM);
  FZ_CHECK((rc == 0) == (got != NULL));
  if (!want) FZ_CHECK(rc != 0);
  if (want && got) {
    FZ_CHECK(json_equal(want, got));
    char *a = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);
    struct kz_buf b = {0};
    FZ_CHECK(kz_db_json_write(&b, got) == 0);
    FZ_CHECK(a && b.len == strlen(a) && !memcmp(a, b.data, b.len));
    if (json_is_object(got)) {
      /* The stored-body writer: the same text without '_' members. */
      kz_buf_reset(&b);
      FZ_CHECK(kz_db_json_write_body(&b, got) == 0);
      json_t *copy = json_object();
      const char *k;
      json_t *v;
      json_object_foreach(got, k, v) if (k[0] != '_') json_object_set(copy, k, v);
      char *c = json_dumps(copy, JSON_COMPACT);
      FZ_CHECK(c && b.len == strlen(c) && !memcmp(c, b.data, b.len));
      free(c);
      json_decref(copy);
    }
    kz_buf_free(&b);
    free(a);
  }
  json_decref(want);
  json_decref(got);
  return 0;
}
