/* test_json.c — Check suite for kz/json.h: the reader's flags, depth and give-ups, the writer's flags and refusals, against jansson. */
#include <check.h>
#include <string.h>

#include "kz/error.h"
#include "kz/json.h"
#include "kz_test.h"

static json_t *parse(const char *text, unsigned flags, size_t depth, int want_rc) {
  json_t *v = NULL;
  ck_assert_int_eq(kz_json_parse(text, strlen(text), flags, depth, &v), want_rc);
  ck_assert((v != NULL) == (want_rc == 0));
  return v;
}

/* What it accepts equals json_loadb's value and json_dumps' text. */
static void same_as_jansson(const char *text, unsigned flags, size_t jflags) {
  json_t *got = parse(text, flags, 64, 0);
  json_t *want = json_loadb(text, strlen(text), jflags, NULL);
  ck_assert_ptr_nonnull(want);
  ck_assert(json_equal(got, want));
  struct kz_buf b = {0};
  ck_assert_int_eq(kz_json_write(&b, got, KZ_JSON_ENCODE_ANY), 0);
  char *d = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);
  ck_assert_str_eq((const char *)b.data, d);
  free(d);
  kz_buf_free(&b);
  json_decref(got);
  json_decref(want);
}

START_TEST(reader_flags) {
  same_as_jansson("{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"\\u00e9\\n\"},\"e\":-12.5e3}", 0, 0);
  same_as_jansson("[1,\"x\"]", 0, JSON_DECODE_ANY);
  same_as_jansson("  \"only a string\" ", 0, JSON_DECODE_ANY);
  /* Objects only: a top-level array or scalar is left to jansson. */
  json_decref(parse("[1]", KZ_JSON_OBJECT_ONLY, 64, KZ_EPROTO));
  json_decref(parse("7", KZ_JSON_OBJECT_ONLY, 64, KZ_EPROTO));
  /* A repeated member: jansson's last-wins, or a give-up under the flag. */
  json_t *v = parse("{\"k\":1,\"k\":2}", 0, 64, 0);
  ck_assert_int_eq(json_integer_value(json_object_get(v, "k")), 2);
  ck_assert_uint_eq(json_object_size(v), 1);
  json_decref(v);
  json_decref(parse("{\"k\":1,\"k\":2}", KZ_JSON_REJECT_DUPLICATES, 64, KZ_EPROTO));
  /* \u0000: in a value with the flag; never in a member name. */
  v = parse("{\"k\":\"a\\u0000b\"}", KZ_JSON_ALLOW_NUL, 64, 0);
  ck_assert_uint_eq(json_string_length(json_object_get(v, "k")), 3);
  json_decref(v);
  json_decref(parse("{\"k\":\"a\\u0000b\"}", 0, 64, KZ_EPROTO));
  json_decref(parse("{\"a\\u0000\":1}", KZ_JSON_ALLOW_NUL, 64, KZ_EPROTO));
  /* Depth: containers up to max_depth levels. */
  json_decref(parse("[[[1]]]", 0, 3, 0));
  json_decref(parse("[[[1]]]", 0, 2, KZ_EPROTO));
  /* Give-ups on invalid input (jansson then says why). */
  static const char *const bad[] = {"", "{", "{\"a\" 1}", "[1,]", "01", "\"\\ud800\"", "\"\xc0\xaf\"",
                                    "{\"a\":1} x", "tru", "123456789012345678901"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) json_decref(parse(bad[i], 0, 64, KZ_EPROTO));
}
END_TEST

START_TEST(writer_flags) {
  struct kz_buf b = {0};
  json_t *doc = json_pack("{s:s,s:i,s:s,s:[i,s]}", "_id", "x", "n", 1, "_rev", "1-a", "l", 2, "\x01/\"");
  ck_assert_int_eq(kz_json_write(&b, doc, KZ_JSON_SKIP_PRIVATE), 0);
  ck_assert_str_eq((const char *)b.data, "{\"n\":1,\"l\":[2,\"\\u0001/\\\"\"]}");
  kz_buf_reset(&b);
  ck_assert_int_eq(kz_json_write(&b, doc, 0), 0);
  ck_assert_str_eq((const char *)b.data, "{\"_id\":\"x\",\"n\":1,\"_rev\":\"1-a\",\"l\":[2,\"\\u0001/\\\"\"]}");
  /* Scalars only with KZ_JSON_ENCODE_ANY; refusals leave out as it was. */
  size_t len = b.len;
  json_t *s = json_string("plain");
  ck_assert_int_eq(kz_json_write(&b, s, 0), KZ_EINVAL);
  ck_assert_uint_eq(b.len, len);
  ck_assert_int_eq(kz_json_write(&b, s, KZ_JSON_ENCODE_ANY), 0);
  json_decref(s);
  /* Invalid UTF-8 (made without jansson's check) and a container inside itself. */
  json_t *bad = json_pack("{s:o}", "k", json_stringn_nocheck("\xff", 1));
  len = b.len;
  ck_assert_int_eq(kz_json_write(&b, bad, 0), KZ_EINVAL);
  ck_assert_uint_eq(b.len, len);
  json_decref(bad);
  json_t *outer = json_array(), *inner = json_array(); /* outer = [inner], inner = [outer] */
  ck_assert_int_eq(json_array_append(outer, inner), 0);
  ck_assert_int_eq(json_array_append(inner, outer), 0);
  ck_assert_int_eq(kz_json_write(&b, outer, 0), KZ_EINVAL);
  json_array_clear(inner); /* break the cycle so both can go */
  json_decref(inner);
  json_decref(outer);
  ck_assert_int_eq(kz_json_write_str(&b, "\xe2\x82\xac", 3), 0); /* € kept as it is */
  ck_assert_int_eq(memcmp(b.data + b.len - 5, "\"\xe2\x82\xac\"", 5), 0);
  json_decref(doc);
  kz_buf_free(&b);
  /* UTF-8 by jansson's rules. */
  ck_assert_uint_eq(kz_json_utf8_seq((const uint8_t *)"\xf0\x9f\x98\x80", 4), 4);
  ck_assert_uint_eq(kz_json_utf8_seq((const uint8_t *)"\xed\xa0\x80", 3), 0); /* a surrogate */
  ck_assert_uint_eq(kz_json_utf8_seq((const uint8_t *)"\xe0\x80\xaf", 3), 0); /* overlong */
  ck_assert_uint_eq(kz_json_utf8_seq((const uint8_t *)"\xc3", 1), 0);         /* cut short */
}
END_TEST

/* The '_' members kz_json_recode hands over, as "name=value;" text. */
static int collect(void *ctx, const char *name, size_t nlen, const char *value, size_t vlen) {
  struct kz_buf *b = ctx;
  if (nlen == 7 && !memcmp(name, "_giveup", 7)) return 1;
  ck_assert_int_eq(kz_buf_append(b, name, nlen), 0);
  ck_assert_int_eq(kz_buf_append_byte(b, '='), 0);
  ck_assert_int_eq(kz_buf_append(b, value, vlen), 0);
  ck_assert_int_eq(kz_buf_append_byte(b, ';'), 0);
  return 0;
}

/* Recoded text is the writer's text of the reader's value, with and
 * without private members. */
static void recodes_as_writer(const char *text) {
  json_t *v = parse(text, KZ_JSON_ALLOW_NUL, 64, 0);
  struct kz_buf want = {0}, got = {0}, priv = {0};
  ck_assert_int_eq(kz_json_write(&want, v, KZ_JSON_ENCODE_ANY), 0);
  ck_assert_int_eq(kz_json_recode(&got, text, strlen(text), KZ_JSON_ALLOW_NUL, 64, NULL, NULL, NULL), 0);
  ck_assert_uint_eq(got.len, want.len);
  ck_assert_int_eq(memcmp(got.data, want.data, got.len), 0);
  if (json_is_object(v)) {
    kz_buf_reset(&want);
    kz_buf_reset(&got);
    ck_assert_int_eq(kz_json_write(&want, v, KZ_JSON_SKIP_PRIVATE), 0);
    ck_assert_int_eq(kz_json_recode(&got, text, strlen(text), KZ_JSON_ALLOW_NUL, 64, collect, &priv, NULL), 0);
    ck_assert_uint_eq(got.len, want.len);
    ck_assert_int_eq(memcmp(got.data, want.data, got.len), 0);
  }
  kz_buf_free(&want);
  kz_buf_free(&got);
  kz_buf_free(&priv);
  json_decref(v);
}

static void recode_gives_up(const char *text, unsigned flags) {
  struct kz_buf b = {0}, priv = {0};
  ck_assert_int_eq(kz_buf_append(&b, "kept", 4), 0);
  ck_assert_int_eq(kz_json_recode(&b, text, strlen(text), flags, 64, collect, &priv, NULL), KZ_EPROTO);
  ck_assert_uint_eq(b.len, 4);
  kz_buf_free(&b);
  kz_buf_free(&priv);
}

START_TEST(recode) {
  recodes_as_writer("{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"\\u00e9\\n\\/\"},\"e\":-0}");
  recodes_as_writer(" { \"_id\" : \"x\" , \"n\" : [ ] , \"_rev\":\"1-a\", \"o\" : { } , \"s\":\"a\\u0000b\\u001f\" } ");
  recodes_as_writer("[\"\xe2\x82\xac\", 123456789012345678, -5, \"\\ud83d\\ude00\", \"\\\"\\\\\"]");
  recodes_as_writer("\"just a string\"");
  recodes_as_writer("{}");
  /* The private members, in order, as their text. */
  struct kz_buf out = {0}, priv = {0};
  const char *doc = "{\"_id\":\"d1\",\"x\":1,\"_deleted\" : true,\"_rev\":\"2-b\"}";
  ck_assert_int_eq(kz_json_recode(&out, doc, strlen(doc), 0, 64, collect, &priv, NULL), 0);
  ck_assert_int_eq(kz_buf_append_byte(&out, 0), 0);
  ck_assert_int_eq(kz_buf_append_byte(&priv, 0), 0);
  ck_assert_str_eq((const char *)out.data, "{\"x\":1}");
  ck_assert_str_eq((const char *)priv.data, "_id=\"d1\";_deleted=true;_rev=\"2-b\";");
  /* With used: a value followed by more text, as in an array. */
  kz_buf_reset(&out);
  size_t used = 0;
  const char *two = " {\"a\" : 1} ,{\"b\":2}]";
  ck_assert_int_eq(kz_json_recode(&out, two, strlen(two), 0, 64, NULL, NULL, &used), 0);
  ck_assert_uint_eq(used, 10);
  ck_assert_str_eq((const char *)out.data, "{\"a\":1}");
  kz_buf_free(&out);
  kz_buf_free(&priv);
  /* Give-ups: what the reader refuses, and what would take more than
   * copying (reals, escaped names, a member twice, nesting past 32,
   * objects past 64 members), and a callback that says no. */
  static const char *const bad[] = {"", "{", "[1,]", "01", "\"\\ud800\"", "{\"a\":1} x", "123456789012345678901",
                                    "{\"a\":1.5}", "{\"\\u0061\":1}", "{\"k\":1,\"k\":2}", "{\"a\":\"\x01\"}",
                                    "{\"_giveup\":1}", "{\"_id\":[1,]}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) recode_gives_up(bad[i], KZ_JSON_ALLOW_NUL);
  recode_gives_up("{\"k\":\"a\\u0000b\"}", 0);
  recode_gives_up("[1]", KZ_JSON_OBJECT_ONLY);
  char deep[80], wide[1024];
  memset(deep, '[', 33);
  memset(deep + 33, ']', 33);
  deep[66] = 0;
  recode_gives_up(deep, 0);
  deep[32] = 0;
  memset(deep + 32 - 32, '[', 32);
  memset(deep + 32, ']', 32);
  deep[64] = 0;
  recodes_as_writer(deep);
  size_t n = 0;
  wide[n++] = '{';
  for (int i = 0; i < 65; i++) n += (size_t)snprintf(wide + n, sizeof wide - n, "%s\"m%d\":%d", i ? "," : "", i, i);
  wide[n++] = '}';
  wide[n] = 0;
  recode_gives_up(wide, 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("json");
  TCase *tc = kz_tcase(s, "json", 30);
  tcase_add_test(tc, reader_flags);
  tcase_add_test(tc, writer_flags);
  tcase_add_test(tc, recode);
  return kz_run_suite(s);
}
