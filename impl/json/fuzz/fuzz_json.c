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

/* Each '_' member's value text, appended as "name\0value\0". */
static int collect(void *ctx, const char *name, size_t nlen, const char *value, size_t vlen) {
  struct kz_buf *b = ctx;
  KZ_FUZZ_CHECK(nlen && name[0] == '_');
  return kz_buf_append(b, name, nlen) || kz_buf_append_byte(b, 0) || kz_buf_append(b, value, vlen) ||
         kz_buf_append_byte(b, 0);
}

/* The recoder: when it takes a text, the reader takes it too and the
 * bytes are the writer's for the reader's value (the '_' members left
 * out and handed over, each one's text reading as its value). */
static void check_recode(const uint8_t *data, size_t size) {
  struct kz_buf b = {0}, w = {0}, priv = {0};
  int rc = kz_json_recode(&b, data, size, KZ_JSON_ALLOW_NUL, 256, NULL, NULL, NULL);
  KZ_FUZZ_CHECK(rc == 0 || rc == KZ_EPROTO || rc == KZ_ENOMEM);
  KZ_FUZZ_CHECK(rc == 0 || b.len == 0);
  if (rc == 0) {
    json_t *got = NULL;
    KZ_FUZZ_CHECK(kz_json_parse(data, size, KZ_JSON_ALLOW_NUL, 256, &got) == 0);
    KZ_FUZZ_CHECK(kz_json_write(&w, got, KZ_JSON_ENCODE_ANY) == 0);
    KZ_FUZZ_CHECK(w.len == b.len && !memcmp(w.data, b.data, b.len));
    if (json_is_object(got)) {
      kz_buf_reset(&b);
      kz_buf_reset(&w);
      KZ_FUZZ_CHECK(kz_json_recode(&b, data, size, KZ_JSON_ALLOW_NUL, 256, collect, &priv, NULL) == 0);
      KZ_FUZZ_CHECK(kz_json_write(&w, got, KZ_JSON_SKIP_PRIVATE) == 0);
      KZ_FUZZ_CHECK(w.len == b.len && !memcmp(w.data, b.data, b.len));
      for (size_t i = 0; i < priv.len;) {
        const char *name = (const char *)priv.data + i;
        const char *value = name + strlen(name) + 1;
        size_t vlen = strlen(value); /* a NUL inside would be escaped in the text */
        json_t *pv = NULL;
        KZ_FUZZ_CHECK(kz_json_parse(value, vlen, KZ_JSON_ALLOW_NUL, 256, &pv) == 0);
        KZ_FUZZ_CHECK(json_equal(pv, json_object_get(got, name)));
        json_decref(pv);
        i = (size_t)(value + vlen + 1 - (const char *)priv.data);
      }
    }
    json_decref(got);
  }
  /* Reading a prefix: what it takes, it takes alone too, to the byte. */
  size_t used = 0;
  kz_buf_reset(&b);
  kz_buf_reset(&w);
  if (kz_json_recode(&b, data, size, KZ_JSON_ALLOW_NUL, 256, NULL, NULL, &used) == 0) {
    KZ_FUZZ_CHECK(used > 0 && used <= size);
    KZ_FUZZ_CHECK(kz_json_recode(&w, data, used, KZ_JSON_ALLOW_NUL, 256, NULL, NULL, NULL) == 0);
    KZ_FUZZ_CHECK(w.len == b.len && !memcmp(w.data, b.data, b.len));
  }
  kz_buf_free(&b);
  kz_buf_free(&w);
  kz_buf_free(&priv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check_recode(data, size);
  check_read(data, size, KZ_JSON_ALLOW_NUL, JSON_DECODE_ANY | JSON_ALLOW_NUL);                    /* the db */
  check_read(data, size, KZ_JSON_REJECT_DUPLICATES | KZ_JSON_OBJECT_ONLY, JSON_REJECT_DUPLICATES); /* the bus */
  return 0;
}
