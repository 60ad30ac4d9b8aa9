/* fuzz_json.c — libFuzzer target for kz/json.h: the reader never accepts what json_loadb refuses and builds exactly its values, under the db's flags and the bus's; the writer gives json_dumps' bytes, private members left out on request. */
#include <string.h>

#include "kz_fuzz.h"
#include "kz/buf.h"
#include "kz/error.h"
#include "kz/json.h"

/* One reader configuration against the jansson flags it stands for. */
static void check_read(const uint8_t *data, size_t size, unsigned flags, size_t jflags) {
  json_t *want = json_loadb((const char *)data, size, jflags, NULL);
  if (want && (flags & KZ_JSON_OBJECT_ONLY) && !json_is_object(want)) {
    json_decref(want); /* the bus refuses arrays after jansson */
    want = NULL;
  }
  json_t *got = NULL;
  int rc = kz_json_parse(data, size, flags, 256, &got);
  KZ_FUZZ_CHECK(rc == 0 || rc == KZ_EPROTO || rc == KZ_ENOMEM);
  KZ_FUZZ_CHECK((rc == 0) == (got != NULL));
  if (!want) KZ_FUZZ_CHECK(rc != 0); /* never accepts what jansson refuses */
  if (want && got) {
    KZ_FUZZ_CHECK(json_equal(want, got));
    char *a = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);
    struct kz_buf b = {0};
    KZ_FUZZ_CHECK(kz_json_write(&b, got, KZ_JSON_ENCODE_ANY) == 0); /* member order and text too */
    KZ_FUZZ_CHECK(a && b.len == strlen(a) && !memcmp(a, b.data, b.len));
    if (json_is_object(got)) {
      /* The db's stored body: the same text without '_' members. */
      kz_buf_reset(&b);
      KZ_FUZZ_CHECK(kz_json_write(&b, got, KZ_JSON_SKIP_PRIVATE) == 0);
      json_t *copy = json_object();
      const char *k;
      json_t *v;
      json_object_foreach(got, k, v) if (k[0] != '_') json_object_set(copy, k, v);
      char *c = json_dumps(copy, JSON_COMPACT);
      KZ_FUZZ_CHECK(c && b.len == strlen(c) && !memcmp(c, b.data, b.len));
      free(c);
      json_decref(copy);
    }
    kz_buf_free(&b);
    free(a);
  }
  json_decref(want);
  json_decref(got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check_read(data, size, KZ_JSON_ALLOW_NUL, JSON_DECODE_ANY | JSON_ALLOW_NUL);                    /* the db */
  check_read(data, size, KZ_JSON_REJECT_DUPLICATES | KZ_JSON_OBJECT_ONLY, JSON_REJECT_DUPLICATES); /* the bus */
  return 0;
}
