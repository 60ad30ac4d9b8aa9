/* test_db.c — the db role's HTTP API through the simulator: server, databases, documents, revisions, bulk, changes, attachments, errors. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "../db_int.h" /* KZ_DB_JSON_DEPTH */
#include "db_harness.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/prng.h"
#include "kz_test.h"

#define MS UINT64_C(1000000)

static struct th T;

static void setup(void) { th_init(&T, 42, NULL); }
static void teardown(void) { th_free(&T); }

/* Asserts status and returns the response. */
static struct th_resp *req_ok(int status, const char *method, const char *target, const char *body) {
  struct th_resp *r = th_req(&T, method, target, body);
  ck_assert_ptr_nonnull(r);
  ck_assert_msg(r->status == status, "%s %s: status %d, want %d: %.*s", method, target, r->status,
                status, (int)r->body.len, r->body.data ? (const char *)r->body.data : "");
  return r;
}

static void assert_error(struct th_resp *r, const char *error, const char *reason) {
  ck_assert_ptr_nonnull(r->json);
  ck_assert_str_eq(th_str(r, "error"), error);
  if (reason) ck_assert_str_eq(th_str(r, "reason"), reason);
}

/* PUT a doc and return its rev (copied into buf). */
static const char *put_doc(const char *db, const char *id, const char *body, char *buf) {
  char target[512];
  snprintf(target, sizeof target, "/%s/%s", db, id);
  struct th_resp *r = req_ok(201, "PUT", target, body);
  ck_assert(json_is_true(json_object_get(r->json, "ok")));
  snprintf(buf, 128, "%s", th_str(r, "rev"));
  return buf;
}

/* ------------------------------------------------------------------ */

START_TEST(test_welcome_and_server) {
  struct th_resp *r = req_ok(200, "GET", "/", NULL);
  ck_assert_str_eq(th_str(r, "couchdb"), "Welcome");
  ck_assert_str_eq(th_str(r, "version"), "3.3.3-kz");
  ck_assert_str_eq(r->ctype, "application/json");
  r = req_ok(200, "GET", "/_up", NULL);
  ck_assert_str_eq(th_str(r, "status"), "ok");
  r = req_ok(200, "GET", "/_uuids?count=3", NULL);
  json_t *u = json_object_get(r->json, "uuids");
  ck_assert_int_eq(json_array_size(u), 3);
  ck_assert_int_eq(strlen(json_string_value(json_array_get(u, 0))), 32);
  ck_assert_str_ne(json_string_value(json_array_get(u, 0)), json_string_value(json_array_get(u, 1)));
  r = req_ok(400, "GET", "/_uuids?count=5000", NULL);
  assert_error(r, "bad_request", NULL);
  r = req_ok(405, "POST", "/", "{}");
  assert_error(r, "method_not_allowed", NULL);
}
END_TEST

START_TEST(test_db_lifecycle) {
  struct th_resp *r = req_ok(404, "GET", "/a", NULL);
  assert_error(r, "not_found", "Database does not exist.");
  req_ok(201, "PUT", "/a", NULL);
  r = req_ok(412, "PUT", "/a", NULL);
  assert_error(r, "file_exists", NULL);
  req_ok(201, "PUT", "/b", NULL);
  /* Kazoo's account database names: '/' travels as %2F. */
  req_ok(201, "PUT", "/account%2F3c%2F3f%2F9a12", NULL);
  r = req_ok(200, "GET", "/_all_dbs", NULL);
  ck_assert_int_eq(json_array_size(r->json), 3);
  ck_assert_str_eq(json_string_value(json_array_get(r->json, 0)), "a");
  ck_assert_str_eq(json_string_value(json_array_get(r->json, 1)), "account/3c/3f/9a12");
  r = req_ok(200, "GET", "/account%2F3c%2F3f%2F9a12", NULL);
  ck_assert_str_eq(th_str(r, "db_name"), "account/3c/3f/9a12");
  ck_assert_int_eq(th_int(r, "doc_count"), 0);
  ck_assert_int_eq(th_int(r, "update_seq"), 0);
  r = req_ok(200, "HEAD", "/a", NULL);
  ck_assert_int_eq(r->body.len, 0);
  req_ok(200, "DELETE", "/a", NULL);
  req_ok(404, "DELETE", "/a", NULL);
  req_ok(404, "GET", "/a", NULL);
  r = req_ok(200, "GET", "/_all_dbs", NULL);
  ck_assert_int_eq(json_array_size(r->json), 2);
}
END_TEST

/* A random JSON value from g: every escape class, integer extremes,
 * reals, nesting, empty containers. */
static json_t *rand_json(struct kz_prng *g, int depth) {
  static const char *const frags[] = {"a", "\"", "\\", "/", "\b", "\f", "\n", "\r", "\t", "\x01", "\x1f",
                                      "\x7f", "\xc3\xa9", "\xe2\x9c\x93", "\xf0\x9f\x93\x9e", " ", "u0000"};
  switch (kz_prng_below(g, depth > 3 ? 6 : 8)) {
  case 0: return json_null();
  case 1: return json_boolean(kz_prng_below(g, 2));
  case 2: {
    static const json_int_t ints[] = {0, 1, -1, 9, 10, -10, 123456789, INT64_MAX, INT64_MIN, 9007199254740993};
    return json_integer(ints[kz_prng_below(g, sizeof ints / sizeof ints[0])]);
  }
  case 3: {
    static const double reals[] = {1.5, -0.0, 0.1, 1e300, 3.0, 2.5e-7, 123456.789};
    return json_real(reals[kz_prng_below(g, sizeof reals / sizeof reals[0])]);
  }
  case 4:
  case 5: {
    char b[128] = "";
    size_t n = 0;
    for (int k = (int)kz_prng_below(g, 6); k > 0; k--) {
      const char *f = frags[kz_prng_below(g, sizeof frags / sizeof frags[0])];
      size_t fl = strlen(f);
      memcpy(b + n, f, fl);
      n += fl;
    }
    if (kz_prng_below(g, 4) == 0) b[n++] = 0; /* an embedded NUL */
    return json_stringn(b, n);
  }
  case 6: {
    json_t *a = json_array();
    for (int k = (int)kz_prng_below(g, 4); k > 0; k--) json_array_append_new(a, rand_json(g, depth + 1));
    return a;
  }
  default: {
    json_t *o = json_object();
    for (int k = (int)kz_prng_below(g, 5); k > 0; k--) {
      char key[16];
      snprintf(key, sizeof key, "%s%u", kz_prng_below(g, 3) ? "k" : "\"\t/\xc3\xa9", (unsigned)kz_prng_below(g, 8));
      json_object_set_new(o, key, rand_json(g, depth + 1));
    }
    return o;
  }
  }
}

/* The stored text of a document is hashed into its revision: the
 * writer must give json_dumps' bytes exactly. */
START_TEST(test_json_writer_matches_jansson) {
  struct kz_prng g;
  kz_prng_seed(&g, 77);
  for (int i = 0; i < 3000; i++) {
    json_t *j = rand_json(&g, 0);
    char *want = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    struct kz_buf got = {0};
    ck_assert_int_eq(kz_json_write(&got, j, KZ_JSON_ENCODE_ANY), 0);
    ck_assert_ptr_nonnull(want);
    ck_assert_msg(got.len == strlen(want) && !memcmp(got.data, want, got.len), "got %.*s want %s", (int)got.len,
                  (const char *)got.data, want);
    free(want);
    kz_buf_free(&got);
    json_decref(j);
  }
}
END_TEST

/* A stored body is the document without its '_' members, written as
 * json_dumps writes that copy. */
START_TEST(test_json_body_writer) {
  struct kz_prng g;
  kz_prng_seed(&g, 78);
  for (int i = 0; i < 1000; i++) {
    json_t *doc = json_object(), *copy = json_object();
    for (int k = (int)kz_prng_below(&g, 7); k > 0; k--) {
      char key[16];
      snprintf(key, sizeof key, "%s%u", kz_prng_below(&g, 3) ? "k" : "_", (unsigned)kz_prng_below(&g, 8));
      json_t *v = rand_json(&g, 1);
      json_object_set(doc, key, v);
      if (key[0] != '_') json_object_set(copy, key, v);
      json_decref(v);
    }
    char *want = json_dumps(copy, JSON_COMPACT);
    struct kz_buf got = {0};
    ck_assert_int_eq(kz_json_write(&got, doc, KZ_JSON_SKIP_PRIVATE), 0);
    ck_assert_msg(got.len == strlen(want) && !memcmp(got.data, want, got.len), "got %.*s want %s", (int)got.len,
                  (const char *)got.data, want);
    free(want);
    kz_buf_free(&got);
    json_decref(doc);
    json_decref(copy);
  }
  struct kz_buf b = {0};
  ck_assert_int_eq(kz_json_write(&b, json_null(), KZ_JSON_SKIP_PRIVATE), KZ_EINVAL);
  ck_assert_int_eq(kz_json_write_str(&b, "a\"\x01", 3), 0);
  ck_assert_str_eq((const char *)b.data, "\"a\\\"\\u0001\"");
  kz_buf_free(&b);
}
END_TEST

/* kz_json_parse against json_loadb on one text: when the direct
 * parser accepts, jansson accepts and gives equal values with members
 * in the same order; when jansson refuses, so does the direct parser. */
static void parse_same(const char *text, size_t len) {
  json_error_t err;
  json_t *want = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
  json_t *got = NULL;
  int rc = kz_json_parse(text, len, KZ_JSON_ALLOW_NUL, KZ_DB_JSON_DEPTH, &got);
  if (!want) {
    ck_assert_msg(rc != 0, "accepted what jansson refuses: [%.*s] (%s)", (int)len, text, err.text);
    ck_assert_ptr_null(got);
    return;
  }
  if (rc == 0) {
    ck_assert_msg(json_equal(want, got), "values differ on [%.*s]", (int)len, text);
    char *a = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY), *b = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
    ck_assert_msg(a && b && !strcmp(a, b), "texts differ on [%.*s]: %s vs %s", (int)len, text, a, b);
    free(a);
    free(b);
  } else {
    ck_assert_int_eq(rc, KZ_EPROTO);
    ck_assert_ptr_null(got);
  }
  json_decref(want);
  json_decref(got);
}

START_TEST(test_json_parser_matches_jansson) {
  static const char *const cases[] = {
      "", " ", "{}", "[]", " { \"a\" : [ 1 , 2 ] , \"b\":{}}\r\n", "0", "-0", "01", "-01", "-", "1.", ".5", "1.5",
      "-1.25e-7", "1E400", "1e+2", "123456789012345678", "-123456789012345678", "1234567890123456789",
      "9223372036854775807", "9223372036854775808", "-9223372036854775808", "\"\\ud83d\\ude00\"", "\"\\ud83d\"",
      "\"\\ud83dx\"", "\"\\ude00\"", "\"\\ud83d\\u0041\"", "\"\\u0000\"", "\"a\\u0000b\"", "{\"a\\u0000\":1}",
      "{\"a\":1,\"a\":2,\"b\":3,\"a\":4}", "[1,]", "[1 2]", "{\"a\" 1}", "{\"a\":}", "{,}", "{\"a\":1,}",
      "\"\xc3\xa9\"", "\"\xc3\"", "\"\xc3(\"", "\"\xed\xa0\x80\"", "\"\xc0\x80\"", "\"\xf4\x90\x80\x80\"",
      "\"\xf0\x9f\x98\x80\"", "\"\x01\"", "\"\x7f\"", "true", "true ", "truex", "nul", "null", "false", "[true,false,null]",
      "\"\\/\\b\\f\\n\\r\\t\\\"\\\\\"", "\"\\x\"", "\"\\u12\"", "\"\\u12G4\"", "\"abc", "1 2", "\xef\xbb\xbf{}",
      "{\"docs\":[{\"_id\":\"a\",\"v\":1.0},{\"_id\":\"b\",\"n\":-3}],\"new_edits\":false}", "[\"\\u00e9\\u00E9\"]",
      "{\"\xc3\xa9\":\"\\u002F\"}", "[1e5,1E-5,-0.0,0.1]", "\t\n[]\t\n", "{\"a\":[[[]]]}", "[", "]", "{\"a\"",
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) parse_same(cases[i], strlen(cases[i]));
  /* Embedded NUL bytes (outside and inside strings). */
  parse_same("[1]\0", 4);
  parse_same("\"a\0b\"", 5);
  /* Nesting: below the direct parser's limit, past it (jansson takes
   * over), and past jansson's. */
  static char deep[5000];
  for (int depth = 200; depth <= 2400; depth += 1100) {
    for (int k = 0; k < depth; k++) deep[k] = '[', deep[depth + k] = ']';
    parse_same(deep, 2 * (size_t)depth);
  }
  /* Random documents in jansson's own text, compact and indented, then
   * the same texts with random bytes changed, dropped or added. */
  struct kz_prng g;
  kz_prng_seed(&g, 79);
  for (int i = 0; i < 4000; i++) {
    json_t *j = rand_json(&g, 0);
    char *t = json_dumps(j, JSON_ENCODE_ANY | (kz_prng_below(&g, 2) ? JSON_COMPACT : JSON_INDENT(1)));
    json_decref(j);
    ck_assert_ptr_nonnull(t);
    size_t n = strlen(t);
    parse_same(t, n);
    static const char bytes[] = "{}[]\",:\\u0123456789eE+-.tfn \xc3\xa9\x01";
    for (int m = (int)kz_prng_below(&g, 4); m > 0 && n > 0; m--) {
      size_t at = kz_prng_below(&g, n);
      switch (kz_prng_below(&g, 3)) {
      case 0: t[at] = bytes[kz_prng_below(&g, sizeof bytes - 1)]; break;
      case 1: memmove(t + at, t + at + 1, n - at), n--; break;
      default: t[at] = (char)kz_prng_below(&g, 256); break;
      }
    }
    parse_same(t, n);
    free(t);
  }
}
END_TEST

/* CouchDB answers "/db/" as "/db" (PouchDB asks with the slash). */
START_TEST(test_db_trailing_slash) {
  req_ok(404, "GET", "/s/", NULL);
  req_ok(201, "PUT", "/s/", NULL);
  req_ok(412, "PUT", "/s/", NULL);
  struct th_resp *r = req_ok(200, "GET", "/s/", NULL);
  ck_assert_str_eq(th_str(r, "db_name"), "s");
  r = req_ok(201, "POST", "/s/", "{\"_id\":\"x\"}");
  ck_assert_str_eq(th_str(r, "id"), "x");
  req_ok(200, "GET", "/s/x", NULL);
  req_ok(200, "DELETE", "/s/", NULL);
  req_ok(404, "GET", "/s", NULL);
  /* A document path still needs its id. */
  req_ok(201, "PUT", "/s", NULL);
  r = req_ok(400, "GET", "/s/_design/", NULL);
  assert_error(r, "illegal_docid", NULL);
}
END_TEST

/* Strings holding U+0000 are stored and served escaped, as CouchDB does;
 * views and _all_docs?include_docs read them back too. */
START_TEST(test_nul_in_strings) {
  req_ok(201, "PUT", "/n", NULL);
  req_ok(201, "PUT", "/n/nul", "{\"s\":\"a\\u0000b\",\"pvt_type\":\"device\",\"sip\":{\"username\":\"u\\u0000v\"}}");
  struct th_resp *r = req_ok(200, "GET", "/n/nul", NULL);
  json_t *s = json_object_get(r->json, "s");
  ck_assert_int_eq(json_string_length(s), 3);
  ck_assert_mem_eq(json_string_value(s), "a\0b", 3);
  bool escaped = false;
  for (size_t i = 0; i + 8 <= r->body.len && !escaped; i++) escaped = !memcmp(r->body.data + i, "a\\u0000b", 8);
  ck_assert_msg(escaped, "the reply holds the escape");
  r = req_ok(200, "GET", "/n/_all_docs?include_docs=true", NULL);
  json_t *doc = json_object_get(json_array_get(json_object_get(r->json, "rows"), 0), "doc");
  ck_assert_int_eq(json_string_length(json_object_get(doc, "s")), 3);
  r = req_ok(200, "GET", "/n/_design/devices/_view/sip_credentials", NULL);
  ck_assert_int_eq(th_int(r, "total_rows"), 1);
  json_t *row = json_array_get(json_object_get(r->json, "rows"), 0);
  ck_assert_int_eq(json_string_length(json_object_get(row, "key")), 3);
}
END_TEST

START_TEST(test_db_names) {
  static const char *const bad[] = {"/A", "/1abc", "/a%20b", "/a.b", "/_foo", "/a%2A"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct th_resp *r = req_ok(400, "PUT", bad[i], NULL);
    assert_error(r, "illegal_database_name", NULL);
  }
  req_ok(201, "PUT", "/a_b$c(d)e+f-g%2Fh", NULL);
  req_ok(201, "PUT", "/numbers%2F%2B1415", NULL); /* "numbers/+1415" */
  req_ok(201, "PUT", "/_users", NULL);
}
END_TEST

START_TEST(test_doc_crud) {
  char rev1[128], rev2[128];
  req_ok(201, "PUT", "/d", NULL);
  put_doc("d", "doc1", "{\"name\":\"alice\",\"n\":1}", rev1);
  ck_assert(!strncmp(rev1, "1-", 2));
  ck_assert_int_eq(strlen(rev1), 34);
  struct th_resp *r = req_ok(200, "GET", "/d/doc1", NULL);
  ck_assert_str_eq(th_str(r, "_id"), "doc1");
  ck_assert_str_eq(th_str(r, "_rev"), rev1);
  ck_assert_str_eq(th_str(r, "name"), "alice");
  char quoted[140];
  snprintf(quoted, sizeof quoted, "\"%s\"", rev1);
  ck_assert_str_eq(r->etag, quoted);
  /* Update without rev: conflict. */
  r = req_ok(409, "PUT", "/d/doc1", "{\"name\":\"bob\"}");
  assert_error(r, "conflict", "Document update conflict.");
  /* Wrong rev: conflict. */
  r = req_ok(409, "PUT", "/d/doc1", "{\"_rev\":\"1-00000000000000000000000000000000\",\"name\":\"bob\"}");
  assert_error(r, "conflict", "Document update conflict.");
  char body[256];
  snprintf(body, sizeof body, "{\"_rev\":\"%s\",\"name\":\"bob\"}", rev1);
  put_doc("d", "doc1", body, rev2);
  ck_assert(!strncmp(rev2, "2-", 2));
  /* The old rev is still readable by rev; the stale rev conflicts. */
  char target[256];
  snprintf(target, sizeof target, "/d/doc1?rev=%s", rev1);
  r = req_ok(200, "GET", target, NULL);
  ck_assert_str_eq(th_str(r, "name"), "alice");
  r = req_ok(409, "PUT", "/d/doc1", body);
  r = req_ok(200, "GET", "/d/doc1?revs=true", NULL);
  json_t *revs = json_object_get(r->json, "_revisions");
  ck_assert_int_eq(json_integer_value(json_object_get(revs, "start")), 2);
  ck_assert_int_eq(json_array_size(json_object_get(revs, "ids")), 2);
  ck_assert_str_eq(json_string_value(json_array_get(json_object_get(revs, "ids"), 1)), rev1 + 2);
  /* Deterministic revisions: the same edit on the same parent gives the same rev. */
  req_ok(201, "PUT", "/d2", NULL);
  char again[128];
  put_doc("d2", "doc1", "{\"name\":\"alice\",\"n\":1}", again);
  ck_assert_str_eq(again, rev1);
  /* Delete: rev required, tombstone, counts. */
  r = req_ok(409, "DELETE", "/d/doc1", NULL);
  snprintf(target, sizeof target, "/d/doc1?rev=%s", rev2);
  r = req_ok(200, "DELETE", target, NULL);
  ck_assert(!strncmp(th_str(r, "rev"), "3-", 2));
  char rev3[128];
  snprintf(rev3, sizeof rev3, "%s", th_str(r, "rev"));
  r = req_ok(404, "GET", "/d/doc1", NULL);
  assert_error(r, "not_found", "deleted");
  r = req_ok(404, "GET", "/d/nope", NULL);
  assert_error(r, "not_found", "missing");
  snprintf(target, sizeof target, "/d/doc1?rev=%s", rev3);
  r = req_ok(200, "GET", target, NULL);
  ck_assert(json_is_true(json_object_get(r->json, "_deleted")));
  r = req_ok(200, "GET", "/d", NULL);
  ck_assert_int_eq(th_int(r, "doc_count"), 0);
  ck_assert_int_eq(th_int(r, "doc_del_count"), 1);
  ck_assert_int_eq(th_int(r, "update_seq"), 3);
  /* Recreate a deleted doc without a rev: extends the tombstone. */
  char rev4[128];
  put_doc("d", "doc1", "{\"name\":\"carol\"}", rev4);
  ck_assert(!strncmp(rev4, "4-", 2));
}
END_TEST

START_TEST(test_post_and_etag) {
  req_ok(201, "PUT", "/p", NULL);
  struct th_resp *r = req_ok(201, "POST", "/p", "{\"x\":1}");
  const char *id = th_str(r, "id");
  ck_assert_int_eq(strlen(id), 32);
  char target[256], rev[128], hdr[256];
  snprintf(target, sizeof target, "/p/%s", id);
  snprintf(rev, sizeof rev, "%s", th_str(r, "rev"));
  r = req_ok(201, "POST", "/p", "{\"_id\":\"given\",\"x\":2}");
  ck_assert_str_eq(th_str(r, "id"), "given");
  /* POST needs a JSON content type. */
  r = th_req_h(&T, "POST", "/p", "Content-Type: text/plain\r\n", "{}", 2);
  ck_assert_int_eq(r->status, 415);
  assert_error(r, "bad_content_type", NULL);
  snprintf(hdr, sizeof hdr, "If-None-Match: \"%s\"\r\n", rev);
  r = th_req_h(&T, "GET", target, hdr, NULL, 0);
  ck_assert_int_eq(r->status, 304);
  ck_assert_int_eq(r->body.len, 0);
  r = th_req_h(&T, "GET", target, "If-None-Match: \"1-abc\"\r\n", NULL, 0);
  ck_assert_int_eq(r->status, 200);
  r = req_ok(200, "HEAD", target, NULL);
  ck_assert_int_eq(r->body.len, 0);
  ck_assert(r->etag[0] == '"');
}
END_TEST

START_TEST(test_bad_input) {
  req_ok(201, "PUT", "/e", NULL);
  struct th_resp *r = req_ok(400, "PUT", "/e/x", "{\"a\":");
  assert_error(r, "bad_request", "invalid UTF-8 JSON");
  r = req_ok(400, "PUT", "/e/x", "[1,2]");
  assert_error(r, "bad_request", NULL);
  r = req_ok(400, "PUT", "/e/x", "{\"_rev\":\"garbage\"}");
  assert_error(r, "bad_request", "Invalid rev format");
  r = req_ok(400, "PUT", "/e/x", "{\"_bogus\":1}");
  assert_error(r, "doc_validation", NULL);
  r = req_ok(400, "PUT", "/e/_underscore", "{}");
  assert_error(r, "illegal_docid", NULL);
  r = req_ok(400, "GET", "/e/a%00b", NULL);
  assert_error(r, "bad_request", NULL);
  r = req_ok(400, "GET", "/e/a%zz", NULL);
  /* Dot segments are plain ids, not paths. */
  req_ok(404, "GET", "/e/../x", NULL);
  req_ok(201, "PUT", "/e/..", "{}");
  char longid[700];
  memset(longid, 'a', sizeof longid - 1);
  longid[0] = '/';
  longid[1] = 'e';
  longid[2] = '/';
  longid[sizeof longid - 1] = 0;
  r = req_ok(400, "PUT", longid, "{}");
  assert_error(r, "illegal_docid", "Document id is too long");
  r = req_ok(405, "PATCH", "/e/x", "{}");
  assert_error(r, "method_not_allowed", NULL);
  r = req_ok(400, "GET", "/e/_all_docs?limit=abc", NULL);
  r = req_ok(400, "GET", "/e/_all_docs?descending=maybe", NULL);
  r = req_ok(400, "GET", "/e/_all_docs?startkey=nojson", NULL);
  /* The server is still fine. */
  req_ok(200, "GET", "/e", NULL);
}
END_TEST

START_TEST(test_oversized_body) {
  th_free(&T);
  struct kz_db_cfg cfg = {.max_body = 1024};
  th_init(&T, 7, &cfg);
  req_ok(201, "PUT", "/big", NULL);
  char body[4096];
  memset(body, ' ', sizeof body);
  memcpy(body, "{\"a\":1}", 7);
  struct th_resp *r = th_req_h(&T, "PUT", "/big/x", NULL, body, sizeof body);
  ck_assert_ptr_nonnull(r);
  ck_assert_int_eq(r->status, 413);
  assert_error(r, "too_large", NULL);
  /* A new connection works. */
  req_ok(201, "PUT", "/big/y", "{\"a\":1}");
}
END_TEST

START_TEST(test_all_docs) {
  req_ok(201, "PUT", "/ad", NULL);
  char rev[128];
  static const char *const ids[] = {"b", "a", "c", "B", "_design/x", "aa", "\xc3\xa9t\xc3\xa9"};
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
    char body[256];
    snprintf(body, sizeof body, "{\"_id\":\"%s\",\"i\":%zu}", ids[i], i);
    req_ok(201, "POST", "/ad", body);
  }
  put_doc("ad", "gone", "{}", rev);
  char target[256];
  snprintf(target, sizeof target, "/ad/gone?rev=%s", rev);
  req_ok(200, "DELETE", target, NULL);
  struct th_resp *r = req_ok(200, "GET", "/ad/_all_docs", NULL);
  ck_assert_int_eq(th_int(r, "total_rows"), 7);
  json_t *rows = json_object_get(r->json, "rows");
  ck_assert_int_eq(json_array_size(rows), 7);
  /* Raw (code point) collation of ids. */
  static const char *const want[] = {"B", "_design/x", "a", "aa", "b", "c", "\xc3\xa9t\xc3\xa9"};
  for (size_t i = 0; i < 7; i++)
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(rows, i), "id")), want[i]);
  ck_assert_ptr_nonnull(json_object_get(json_object_get(json_array_get(rows, 0), "value"), "rev"));
  r = req_ok(200, "GET", "/ad/_all_docs?startkey=%22a%22&endkey=%22b%22&include_docs=true", NULL);
  rows = json_object_get(r->json, "rows");
  ck_assert_int_eq(json_array_size(rows), 3);
  ck_assert_int_eq(th_int(r, "offset"), 2);
  ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(json_array_get(rows, 0), "doc"), "i")), 1);
  r = req_ok(200, "GET", "/ad/_all_docs?start_key=%22a%22&end_key=%22b%22&inclusive_end=false", NULL);
  ck_assert_int_eq(json_array_size(json_object_get(r->json, "rows")), 2);
  r = req_ok(200, "GET", "/ad/_all_docs?descending=true&limit=2&skip=1", NULL);
  rows = json_object_get(r->json, "rows");
  ck_assert_int_eq(json_array_size(rows), 2);
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(rows, 0), "id")), "c");
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(rows, 1), "id")), "b");
  r = req_ok(200, "GET", "/ad/_all_docs?key=%22aa%22", NULL);
  ck_assert_int_eq(json_array_size(json_object_get(r->json, "rows")), 1);
  r = req_ok(200, "POST", "/ad/_all_docs?include_docs=true", "{\"keys\":[\"c\",\"nope\",\"gone\",\"a\"]}");
  rows = json_object_get(r->json, "rows");
  ck_assert_int_eq(json_array_size(rows), 4);
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(rows, 0), "id")), "c");
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(rows, 1), "error")), "not_found");
  json_t *gone = json_array_get(rows, 2);
  ck_assert(json_is_true(json_object_get(json_object_get(gone, "value"), "deleted")));
  ck_assert(json_is_null(json_object_get(gone, "doc")));
  r = req_ok(200, "GET", "/ad/_all_docs?keys=%5B%22b%22%5D", NULL);
  ck_assert_int_eq(json_array_size(json_object_get(r->json, "rows")), 1);
  /* endkey past every string (an object) includes everything. */
  r = req_ok(200, "GET", "/ad/_all_docs?startkey=%22b%22&endkey=%7B%7D", NULL);
  ck_assert_int_eq(json_array_size(json_object_get(r->json, "rows")), 3);
}
END_TEST

START_TEST(test_bulk_docs) {
  req_ok(201, "PUT", "/bd", NULL);
  struct th_resp *r = req_ok(201, "POST", "/bd/_bulk_docs",
                             "{\"docs\":[{\"_id\":\"a\",\"v\":1},{\"_id\":\"b\"},{\"v\":3},{\"_id\":\"a\"},"
                             "{\"_id\":\"_bad\"}]}");
  ck_assert(json_is_array(r->json));
  ck_assert_int_eq(json_array_size(r->json), 5);
  /* Written as text, byte for byte what json_dumps gave. */
  ck_assert_int_eq(strncmp((const char *)r->body.data, "[{\"ok\":true,\"id\":\"a\",\"rev\":\"1-", 30), 0);
  char *dumped = json_dumps(r->json, JSON_COMPACT);
  ck_assert_int_eq(r->body.len, strlen(dumped));
  ck_assert_int_eq(memcmp(r->body.data, dumped, r->body.len), 0);
  free(dumped);
  json_t *e0 = json_array_get(r->json, 0);
  ck_assert(json_is_true(json_object_get(e0, "ok")));
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(r->json, 2), "id")) ? "x" : "", "x");
  json_t *e3 = json_array_get(r->json, 3);
  ck_assert_str_eq(json_string_value(json_object_get(e3, "error")), "conflict");
  ck_assert_str_eq(json_string_value(json_object_get(e3, "id")), "a");
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(r->json, 4), "error")), "illegal_docid");
  char body[512];
  snprintf(body, sizeof body, "{\"docs\":[{\"_id\":\"a\",\"_rev\":\"%s\",\"_deleted\":true}]}",
           json_string_value(json_object_get(e0, "rev")));
  r = req_ok(201, "POST", "/bd/_bulk_docs", body);
  ck_assert(json_is_true(json_object_get(json_array_get(r->json, 0), "ok")));
  r = req_ok(200, "GET", "/bd", NULL);
  ck_assert_int_eq(th_int(r, "doc_count"), 2);
  ck_assert_int_eq(th_int(r, "doc_del_count"), 1);
  r = req_ok(400, "POST", "/bd/_bulk_docs", "{\"nodocs\":1}");
  assert_error(r, "bad_request", NULL);
}
END_TEST

/* _bulk_docs reads its documents one at a time when the body's shape
 * allows: whatever way a body is read, the answers are those of a body
 * parsed whole — a document that is not JSON, late in the array, refuses
 * the request and writes nothing; odd shapes answer as before. */
START_TEST(test_bulk_docs_streamed) {
  req_ok(201, "PUT", "/bs", NULL);
  static const char *const refused[] = {
      "{\"docs\":[{\"_id\":\"s1\"},{\"_id\":\"s2\"},{\"_id\":\"s3\",\"v\":tru}]}", /* bad value late */
      "{\"docs\":[{\"_id\":\"s1\"},{\"_id\":\"s2\"} {\"_id\":\"s3\"}]}",          /* missing comma */
      "{\"docs\":[{\"_id\":\"s1\"},]}",                                           /* trailing comma */
      "{\"docs\":[{\"_id\":\"s1\"}]} x",                                          /* trailing text */
      "{\"docs\":[{\"_id\":\"s1\"}],\"new_edits\":truex}",                         /* not a boolean word */
      "{\"docs\":[{\"_id\":\"s1\"}],\"other\":[1,}",                               /* another member broken */
      "{\"docs\":[{\"_id\":\"s1\"]}",                                              /* brackets crossed */
      "{\"docs\":[{\"_id\":\"s1\"},{\"_id\":\"s\001\"}]}",                       /* raw control character */
      "{\"docs\":[{\"_id\":\"s1\"}",                                              /* cut short */
  };
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    struct th_resp *r = th_req(&T, "POST", "/bs/_bulk_docs", refused[i]);
    ck_assert_msg(r->status == 400, "body %zu: %d", i, r->status);
  }
  struct th_resp *r = req_ok(200, "GET", "/bs", NULL);
  ck_assert_int_eq(th_int(r, "doc_count"), 0);
  ck_assert_int_eq(th_int(r, "update_seq"), 0);
  /* new_edits after docs (PouchDB's order), whitespace everywhere, other
   * members ignored. */
  r = req_ok(201, "POST", "/bs/_bulk_docs",
             " { \"docs\" : [ { \"_id\" : \"x\" , \"_rev\" : \"1-11111111111111111111111111111111\" } ] ,"
             " \"all_or_nothing\" : false , \"new_edits\" : false } \n");
  ck_assert_int_eq(json_array_size(r->json), 0);
  r = req_ok(200, "GET", "/bs/x", NULL);
  ck_assert_str_eq(json_string_value(json_object_get(r->json, "_rev")), "1-11111111111111111111111111111111");
  /* Shapes read the general way: an escaped member name, docs given
   * twice (the last one counts, as in jansson), an empty array. */
  r = req_ok(201, "POST", "/bs/_bulk_docs", "{\"\\u0064ocs\":[{\"_id\":\"esc\"}]}");
  ck_assert_int_eq(json_array_size(r->json), 1);
  r = req_ok(201, "POST", "/bs/_bulk_docs", "{\"docs\":[{\"_id\":\"first\"}],\"docs\":[{\"_id\":\"last\"}]}");
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(r->json, 0), "id")), "last");
  /* The one pass wrote "first" before it met the second "docs": undone. */
  req_ok(404, "GET", "/bs/first", NULL);
  /* new_edits spelled with an escape, after the documents: the one pass
   * (no "new_edits" bytes in the body) wrote them as new edits, then
   * met the odd name; the general way reads new_edits=false and
   * refuses a document without _rev. */
  r = req_ok(201, "POST", "/bs/_bulk_docs", "{\"docs\":[{\"_id\":\"opx\"}],\"\\u006eew_edits\":false}");
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(r->json, 0), "error")), "bad_request");
  req_ok(404, "GET", "/bs/opx", NULL);
  r = req_ok(201, "POST", "/bs/_bulk_docs", "{\"docs\":[]}");
  ck_assert_int_eq(json_array_size(r->json), 0);
  r = req_ok(400, "POST", "/bs/_bulk_docs", "{\"docs\":{}}");
  assert_error(r, "bad_request", NULL);
  r = req_ok(400, "POST", "/bs/_bulk_docs", "{\"docs\":[],\"new_edits\":1}");
  assert_error(r, "bad_request", NULL);
  /* Elements that are JSON but not documents fail one by one. */
  r = req_ok(201, "POST", "/bs/_bulk_docs", "{\"docs\":[1,\"s\",{\"_id\":\"ok\"},[],null]}");
  ck_assert_int_eq(json_array_size(r->json), 5);
  ck_assert(json_is_true(json_object_get(json_array_get(r->json, 2), "ok")));
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(r->json, 0), "error")), "bad_request");
  r = req_ok(200, "GET", "/bs", NULL);
  ck_assert_int_eq(th_int(r, "doc_count"), 4);
  ck_assert_int_eq(th_int(r, "update_seq"), 4); /* nothing rolled back left a sequence behind */
}
END_TEST

/* _bulk_docs writes plain documents straight from their text
 * (kz_db_doc_update_text); every answer and every stored byte must be
 * what the parsed way gives.  Each document goes through _bulk_docs
 * into /tp and through PUT (always parsed) into /tq: same status, same
 * revision (a hash of the stored text), same document read back. */
START_TEST(test_bulk_docs_text_path) {
  req_ok(201, "PUT", "/tp", NULL);
  req_ok(201, "PUT", "/tq", NULL);
  static const struct {
    const char *id, *doc;
  } cases[] = {
      {"plain", "{\"_id\":\"plain\",\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"x\"}}"},
      {"spaces", " { \"_id\" : \"spaces\" , \"a\" : [ 1 , 2 ] , \"o\" : { } } "},
      {"escapes", "{\"_id\":\"escapes\",\"s\":\"\\u00e9\\/\\n\\u0001\\\"\",\"z\":\"a\\u0000b\",\"n\":-0}"},
      {"utf8", "{\"_id\":\"utf8\",\"s\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}"},
      {"del", "{\"_id\":\"del\",\"_deleted\":true,\"x\":1}"},
      {"notdel", "{\"_id\":\"notdel\",\"_deleted\":1,\"x\":1}"},
      {"real", "{\"_id\":\"real\",\"r\":1.50,\"e\":1e3}"},                    /* parsed: reals */
      {"twice", "{\"_id\":\"twice\",\"k\":1,\"k\":2}"},                       /* parsed: a repeat */
      {"escname", "{\"_id\":\"escname\",\"\\u006b\":1}"},                     /* parsed: escaped name */
      {"withatt", "{\"_id\":\"withatt\",\"_attachments\":{\"a.txt\":{\"content_type\":\"text/plain\","
                  "\"data\":\"aGk=\"}}}"},
      {"badmember", "{\"_id\":\"badmember\",\"_other\":1}"},
      {"_bad", "{\"_id\":\"_bad\",\"x\":1}"},
      {"badrev", "{\"_id\":\"badrev\",\"_rev\":\"nope\"}"},
      {"missingrev", "{\"_id\":\"missingrev\",\"_rev\":\"1-abc\"}"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct th_resp *r = th_reqf(&T, "POST", "/tp/_bulk_docs", "{\"docs\":[%s]}", cases[i].doc);
    ck_assert_int_eq(r->status, 201);
    json_t *b = json_incref(json_array_get(r->json, 0));
    char target[128];
    snprintf(target, sizeof target, "/tq/%s", cases[i].id);
    r = th_req(&T, "PUT", target, cases[i].doc);
    bool ok = json_is_true(json_object_get(b, "ok"));
    ck_assert_msg(ok == (r->status == 201), "%s: bulk %s, PUT %d", cases[i].id, ok ? "ok" : "error", r->status);
    if (ok) {
      ck_assert_str_eq(json_string_value(json_object_get(b, "rev")), th_str(r, "rev"));
    } else {
      ck_assert_str_eq(json_string_value(json_object_get(b, "error")), th_str(r, "error"));
      ck_assert_str_eq(json_string_value(json_object_get(b, "reason")), th_str(r, "reason"));
    }
    json_decref(b);
    if (!ok) continue;
    snprintf(target, sizeof target, "/tp/%s?revs=true&attachments=true", cases[i].id);
    r = th_req(&T, "GET", target, NULL);
    int status = r->status;
    char *a = r->json ? json_dumps(r->json, JSON_COMPACT) : NULL;
    snprintf(target, sizeof target, "/tq/%s?revs=true&attachments=true", cases[i].id);
    r = th_req(&T, "GET", target, NULL);
    char *c = r->json ? json_dumps(r->json, JSON_COMPACT) : NULL;
    ck_assert_int_eq(status, r->status);
    ck_assert_msg(a && c && !strcmp(a, c), "%s: %s vs %s", cases[i].id, a ? a : "-", c ? c : "-");
    free(a);
    free(c);
  }
  /* Edits and conflicts on the text path: a second write without _rev
   * conflicts, with the current one it extends, a deleted document is
   * recreated on its tombstone. */
  struct th_resp *r = req_ok(201, "POST", "/tp/_bulk_docs", "{\"docs\":[{\"_id\":\"plain\",\"a\":2}]}");
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(r->json, 0), "error")), "conflict");
  r = req_ok(200, "GET", "/tp/plain", NULL);
  char body[256];
  snprintf(body, sizeof body, "{\"docs\":[{\"_id\":\"plain\",\"_rev\":\"%s\",\"a\":2},{\"_id\":\"del\",\"y\":1}]}",
           th_str(r, "_rev"));
  r = req_ok(201, "POST", "/tp/_bulk_docs", body);
  ck_assert_int_eq(strncmp(json_string_value(json_object_get(json_array_get(r->json, 0), "rev")), "2-", 2), 0);
  ck_assert_int_eq(strncmp(json_string_value(json_object_get(json_array_get(r->json, 1), "rev")), "2-", 2), 0);
  r = req_ok(200, "GET", "/tp/del", NULL);
  ck_assert_int_eq(th_int(r, "y"), 1);
}
END_TEST

/* A document written once keeps its single revision in its docs row
 * (an implied tree, no revs row); every read sees it as a tree of one,
 * and the second revision, a graft from replication or an attachment
 * moves it into revs with its body.  A file from before docs.body
 * (user_version 1) gets the column when opened and reads as before. */
START_TEST(test_implied_trees) {
  req_ok(201, "PUT", "/it", NULL);
  req_ok(201, "POST", "/it/_bulk_docs", "{\"docs\":[{\"_id\":\"a\",\"v\":1},{\"_id\":\"b\",\"v\":2},{\"_id\":\"c\",\"v\":3}]}");
  struct th_resp *r = req_ok(201, "PUT", "/it/d", "{\"v\":4}");
  char rev_d1[64];
  snprintf(rev_d1, sizeof rev_d1, "%s", th_str(r, "rev"));
  struct kz_db *db = th_db(&T);
  sqlite3_stmt *st = kz_db_sql(db, "SELECT COUNT(*) FROM revs");
  ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
  ck_assert_int_eq(sqlite3_column_int(st, 0), 0); /* all four implied */
  kz_db_sql_done(db, st);
  r = req_ok(200, "GET", "/it", NULL); /* their bodies count in the sizes */
  ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r->json, "sizes"), "external")),
                   4 * (int)strlen("{\"v\":1}"));
  r = req_ok(200, "GET", "/it/a?revs=true&revs_info=true&conflicts=true", NULL);
  ck_assert_int_eq(th_int(r, "v"), 1);
  ck_assert_int_eq(json_array_size(json_object_get(json_object_get(r->json, "_revisions"), "ids")), 1);
  char rev_a1[64];
  snprintf(rev_a1, sizeof rev_a1, "%s", th_str(r, "_rev"));
  /* A second revision of a: the first moves into revs and stays readable. */
  r = th_reqf(&T, "PUT", "/it/a", "{\"_rev\":\"%s\",\"v\":10}", rev_a1);
  ck_assert_int_eq(r->status, 201);
  char target[160];
  snprintf(target, sizeof target, "/it/a?rev=%s", rev_a1);
  r = req_ok(200, "GET", target, NULL);
  ck_assert_int_eq(th_int(r, "v"), 1);
  r = req_ok(200, "GET", "/it/a?revs=true", NULL);
  ck_assert_int_eq(th_int(r, "v"), 10);
  ck_assert_int_eq(json_array_size(json_object_get(json_object_get(r->json, "_revisions"), "ids")), 2);
  /* A graft on b (replication): a conflict between two leaves. */
  r = req_ok(200, "GET", "/it/b", NULL);
  char rev_b1[64];
  snprintf(rev_b1, sizeof rev_b1, "%s", th_str(r, "_rev"));
  r = th_reqf(&T, "POST", "/it/_bulk_docs",
              "{\"new_edits\":false,\"docs\":[{\"_id\":\"b\",\"_rev\":\"1-ffffffffffffffffffffffffffffffff\",\"v\":22}]}");
  ck_assert_int_eq(r->status, 201);
  r = req_ok(200, "GET", "/it/b?conflicts=true", NULL);
  ck_assert_str_eq(th_str(r, "_rev"), "1-ffffffffffffffffffffffffffffffff");
  ck_assert_int_eq(json_array_size(json_object_get(r->json, "_conflicts")), 1);
  ck_assert_str_eq(json_string_value(json_array_get(json_object_get(r->json, "_conflicts"), 0)), rev_b1);
  snprintf(target, sizeof target, "/it/b?rev=%s", rev_b1);
  r = req_ok(200, "GET", target, NULL);
  ck_assert_int_eq(th_int(r, "v"), 2);
  /* An attachment on c. */
  r = req_ok(200, "GET", "/it/c", NULL);
  snprintf(target, sizeof target, "/it/c/n.txt?rev=%s", th_str(r, "_rev"));
  r = th_req_h(&T, "PUT", target, "Content-Type: text/plain\r\n", "hello", 5);
  ck_assert_int_eq(r->status, 201);
  r = req_ok(200, "GET", "/it/c/n.txt", NULL);
  ck_assert_int_eq(r->body.len, 5);
  r = req_ok(200, "GET", "/it/c?revs=true", NULL);
  ck_assert_int_eq(th_int(r, "v"), 3);
  /* Deleting d, implied, and its changes. */
  snprintf(target, sizeof target, "/it/d?rev=%s", rev_d1);
  req_ok(200, "DELETE", target, NULL);
  req_ok(404, "GET", "/it/d", NULL);
  snprintf(target, sizeof target, "/it/d?rev=%s", rev_d1);
  r = req_ok(200, "GET", target, NULL);
  ck_assert_int_eq(th_int(r, "v"), 4);
  r = req_ok(200, "GET", "/it/_changes?style=all_docs", NULL);
  ck_assert_int_eq(json_array_size(json_object_get(r->json, "results")), 4);
  r = req_ok(200, "GET", "/it", NULL);
  ck_assert_int_eq(th_int(r, "doc_count"), 3);
  ck_assert_int_eq(th_int(r, "doc_del_count"), 1);
  /* An old file: no docs.body.  Implied rows cannot exist there; the
   * upgrade adds the column and the documents read as before. */
  ck_assert_int_eq(kz_db_sql_exec(db, "DELETE FROM docs WHERE body IS NOT NULL"), 0);
  ck_assert_int_eq(kz_db_sql_exec(db, "ALTER TABLE docs DROP COLUMN body"), 0);
  ck_assert_int_eq(kz_db_sql_exec(db, "PRAGMA user_version=1"), 0);
  th_crash_restart(&T);
  r = req_ok(200, "GET", "/it/a", NULL);
  ck_assert_int_eq(th_int(r, "v"), 10);
  req_ok(201, "PUT", "/it/e", "{\"v\":5}");
  r = req_ok(200, "GET", "/it/e", NULL);
  ck_assert_int_eq(th_int(r, "v"), 5);
}
END_TEST

/* Replication's write path: new_edits=false grafts given revisions,
 * which builds conflicts; the winner follows CouchDB's rule. */
START_TEST(test_new_edits_false_conflicts) {
  req_ok(201, "PUT", "/ne", NULL);
  const char *h1 = "11111111111111111111111111111111";
  const char *ha = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  const char *hb = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
  const char *hc = "cccccccccccccccccccccccccccccccc";
  struct th_resp *r = th_reqf(&T, "POST", "/ne/_bulk_docs",
                              "{\"new_edits\":false,\"docs\":["
                              "{\"_id\":\"x\",\"_rev\":\"2-%s\",\"v\":\"a\",\"_revisions\":{\"start\":2,\"ids\":[\"%s\",\"%s\"]}},"
                              "{\"_id\":\"x\",\"_rev\":\"2-%s\",\"v\":\"b\",\"_revisions\":{\"start\":2,\"ids\":[\"%s\",\"%s\"]}}]}",
                              ha, ha, h1, hb, hb, h1);
  ck_assert_int_eq(r->status, 201);
  ck_assert_int_eq(json_array_size(r->json), 0);
  /* Winner: same generation, higher hash. */
  r = req_ok(200, "GET", "/ne/x?conflicts=true", NULL);
  char wantb[64], wanta[64];
  snprintf(wantb, sizeof wantb, "2-%s", hb);
  snprintf(wanta, sizeof wanta, "2-%s", ha);
  ck_assert_str_eq(th_str(r, "_rev"), wantb);
  ck_assert_str_eq(th_str(r, "v"), "b");
  json_t *c = json_object_get(r->json, "_conflicts");
  ck_assert_int_eq(json_array_size(c), 1);
  ck_assert_str_eq(json_string_value(json_array_get(c, 0)), wanta);
  /* The ancestor 1-111 is known by id only. */
  char t[256];
  snprintf(t, sizeof t, "/ne/x?rev=1-%s", h1);
  req_ok(404, "GET", t, NULL);
  /* open_revs=all gives both leaves. */
  r = req_ok(200, "GET", "/ne/x?open_revs=all&revs=true", NULL);
  ck_assert_int_eq(json_array_size(r->json), 2);
  json_t *okdoc = json_object_get(json_array_get(r->json, 0), "ok");
  ck_assert_int_eq(json_array_size(json_object_get(json_object_get(okdoc, "_revisions"), "ids")), 2);
  snprintf(t, sizeof t, "/ne/x?open_revs=%%5B%%222-%s%%22,%%229-%s%%22%%5D", ha, hc);
  r = req_ok(200, "GET", t, NULL);
  ck_assert_int_eq(json_array_size(r->json), 2);
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_array_get(r->json, 0), "ok"), "v")), "a");
  ck_assert_ptr_nonnull(json_object_get(json_array_get(r->json, 1), "missing"));
  /* A longer branch wins even with a lower hash. */
  r = th_reqf(&T, "POST", "/ne/_bulk_docs",
              "{\"new_edits\":false,\"docs\":[{\"_id\":\"x\",\"_rev\":\"3-%s\",\"v\":\"a3\","
              "\"_revisions\":{\"start\":3,\"ids\":[\"%s\",\"%s\",\"%s\"]}}]}",
              h1, h1, ha, h1);
  ck_assert_int_eq(r->status, 201);
  r = req_ok(200, "GET", "/ne/x", NULL);
  ck_assert_str_eq(th_str(r, "v"), "a3");
  /* latest=true from 2-aaa leads to 3-111. */
  snprintf(t, sizeof t, "/ne/x?rev=2-%s&latest=true", ha);
  r = req_ok(200, "GET", t, NULL);
  ck_assert_str_eq(th_str(r, "v"), "a3");
  /* Deleting the winning branch: a live leaf beats a deleted one. */
  char del[128];
  snprintf(del, sizeof del, "/ne/x?rev=3-%s", h1);
  req_ok(200, "DELETE", del, NULL);
  r = req_ok(200, "GET", "/ne/x?deleted_conflicts=true", NULL);
  ck_assert_str_eq(th_str(r, "_rev"), wantb);
  ck_assert_int_eq(json_array_size(json_object_get(r->json, "_deleted_conflicts")), 1);
  /* Re-sending a known revision is a no-op. */
  r = th_reqf(&T, "POST", "/ne/_bulk_docs",
              "{\"new_edits\":false,\"docs\":[{\"_id\":\"x\",\"_rev\":\"2-%s\",\"v\":\"zzz\"}]}", ha);
  ck_assert_int_eq(r->status, 201);
  snprintf(t, sizeof t, "/ne/x?rev=2-%s", ha);
  r = req_ok(200, "GET", t, NULL);
  ck_assert_str_eq(th_str(r, "v"), "a");
  /* Updating a conflicting leaf by rev works (resolving a conflict). */
  r = th_reqf(&T, "PUT", "/ne/x", "{\"_rev\":\"2-%s\",\"_deleted\":true}", hb);
  ck_assert_int_eq(r->status, 201);
  /* Every leaf is a tombstone now: the document reads as deleted. */
  r = req_ok(404, "GET", "/ne/x", NULL);
  assert_error(r, "not_found", "deleted");
  r = req_ok(200, "GET", "/ne/x?open_revs=all", NULL);
  ck_assert_int_eq(json_array_size(r->json), 2);
  ck_assert(json_is_true(json_object_get(json_object_get(json_array_get(r->json, 0), "ok"), "_deleted")));
  r = req_ok(200, "GET", "/ne", NULL);
  ck_assert_int_eq(th_int(r, "doc_count"), 0);
  ck_assert_int_eq(th_int(r, "doc_del_count"), 1);
}
END_TEST

START_TEST(test_revs_diff_bulk_get) {
  req_ok(201, "PUT", "/rd", NULL);
  char rev[128];
  put_doc("rd", "a", "{\"v\":1}", rev);
  struct th_resp *r = th_reqf(&T, "POST", "/rd/_revs_diff",
                              "{\"a\":[\"%s\",\"2-ffffffffffffffffffffffffffffffff\"],\"b\":[\"1-00\"]}", rev);
  ck_assert_int_eq(r->status, 200);
  json_t *a = json_object_get(r->json, "a");
  ck_assert_int_eq(json_array_size(json_object_get(a, "missing")), 1);
  ck_assert_str_eq(json_string_value(json_array_get(json_object_get(a, "possible_ancestors"), 0)), rev);
  ck_assert_ptr_nonnull(json_object_get(r->json, "b"));
  r = th_reqf(&T, "POST", "/rd/_revs_diff", "{\"a\":[\"%s\"]}", rev);
  ck_assert_int_eq(json_object_size(r->json), 0);
  r = th_reqf(&T, "POST", "/rd/_bulk_get?revs=true",
              "{\"docs\":[{\"id\":\"a\",\"rev\":\"%s\"},{\"id\":\"a\"},{\"id\":\"zz\"}]}", rev);
  ck_assert_int_eq(r->status, 200);
  json_t *res = json_object_get(r->json, "results");
  ck_assert_int_eq(json_array_size(res), 3);
  json_t *d0 = json_object_get(json_array_get(json_object_get(json_array_get(res, 0), "docs"), 0), "ok");
  ck_assert_int_eq(json_integer_value(json_object_get(d0, "v")), 1);
  ck_assert_ptr_nonnull(json_object_get(d0, "_revisions"));
  json_t *e2 = json_object_get(json_array_get(json_object_get(json_array_get(res, 2), "docs"), 0), "error");
  ck_assert_str_eq(json_string_value(json_object_get(e2, "error")), "not_found");
}
END_TEST

START_TEST(test_local_docs) {
  req_ok(201, "PUT", "/lo", NULL);
  struct th_resp *r = req_ok(201, "PUT", "/lo/_local/ckpt", "{\"last_seq\":5}");
  ck_assert_str_eq(th_str(r, "rev"), "0-1");
  ck_assert_str_eq(th_str(r, "id"), "_local/ckpt");
  r = req_ok(200, "GET", "/lo/_local/ckpt", NULL);
  ck_assert_str_eq(th_str(r, "_id"), "_local/ckpt");
  ck_assert_int_eq(th_int(r, "last_seq"), 5);
  req_ok(409, "PUT", "/lo/_local/ckpt", "{\"last_seq\":6}");
  r = req_ok(201, "PUT", "/lo/_local/ckpt", "{\"_rev\":\"0-1\",\"last_seq\":6}");
  ck_assert_str_eq(th_str(r, "rev"), "0-2");
  /* Not in _all_docs, _changes or the counts. */
  r = req_ok(200, "GET", "/lo/_all_docs", NULL);
  ck_assert_int_eq(json_array_size(json_object_get(r->json, "rows")), 0);
  r = req_ok(200, "GET", "/lo/_changes", NULL);
  ck_assert_int_eq(json_array_size(json_object_get(r->json, "results")), 0);
  r = req_ok(200, "GET", "/lo", NULL);
  ck_assert_int_eq(th_int(r, "doc_count"), 0);
  ck_assert_int_eq(th_int(r, "update_seq"), 0);
  req_ok(200, "DELETE", "/lo/_local/ckpt?rev=0-2", NULL);
  req_ok(404, "GET", "/lo/_local/ckpt", NULL);
  /* Through _bulk_docs too. */
  r = req_ok(201, "POST", "/lo/_bulk_docs", "{\"docs\":[{\"_id\":\"_local/b\",\"x\":1}]}");
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(r->json, 0), "rev")), "0-1");
}
END_TEST

START_TEST(test_changes) {
  req_ok(201, "PUT", "/ch", NULL);
  char r1[128], r2[128];
  put_doc("ch", "a", "{}", r1);
  put_doc("ch", "b", "{}", r2);
  char body[256];
  snprintf(body, sizeof body, "{\"_rev\":\"%s\",\"v\":2}", r1);
  req_ok(201, "PUT", "/ch/a", body);
  struct th_resp *r = req_ok(200, "GET", "/ch/_changes", NULL);
  json_t *res = json_object_get(r->json, "results");
  /* One row per doc at its latest seq: b@2, a@3. */
  ck_assert_int_eq(json_array_size(res), 2);
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(res, 0), "id")), "b");
  ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(res, 1), "seq")), 3);
  ck_assert_int_eq(th_int(r, "last_seq"), 3);
  r = req_ok(200, "GET", "/ch/_changes?since=2&include_docs=true", NULL);
  res = json_object_get(r->json, "results");
  ck_assert_int_eq(json_array_size(res), 1);
  ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(json_array_get(res, 0), "doc"), "v")), 2);
  r = req_ok(200, "GET", "/ch/_changes?limit=1", NULL);
  ck_assert_int_eq(json_array_size(json_object_get(r->json, "results")), 1);
  ck_assert_int_eq(th_int(r, "last_seq"), 2);
  ck_assert_int_eq(th_int(r, "pending"), 1);
  r = req_ok(200, "GET", "/ch/_changes?descending=true&limit=1", NULL);
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(r->json, "results"), 0), "id")), "a");
  r = req_ok(200, "GET", "/ch/_changes?since=%223-g1AAAA%22", NULL);
  ck_assert_int_eq(json_array_size(json_object_get(r->json, "results")), 0);
  r = req_ok(400, "GET", "/ch/_changes?since=bogus", NULL);
  /* Deletions show up as deleted rows. */
  char t[256];
  snprintf(t, sizeof t, "/ch/b?rev=%s", r2);
  req_ok(200, "DELETE", t, NULL);
  r = req_ok(200, "GET", "/ch/_changes?since=3&style=all_docs", NULL);
  json_t *row = json_array_get(json_object_get(r->json, "results"), 0);
  ck_assert(json_is_true(json_object_get(row, "deleted")));
  r = req_ok(200, "GET", "/ch/_changes?filter=_doc_ids&doc_ids=%5B%22a%22%5D", NULL);
  ck_assert_int_eq(json_array_size(json_object_get(r->json, "results")), 1);
}
END_TEST

START_TEST(test_changes_longpoll) {
  req_ok(201, "PUT", "/lp", NULL);
  struct th_conn *w = th_conn_open(&T);
  ck_assert_ptr_nonnull(w);
  const char *lp = "GET /lp/_changes?feed=longpoll&since=0&heartbeat=1000 HTTP/1.1\r\nHost: x\r\n\r\n";
  th_send(w, lp, strlen(lp));
  struct th_resp got;
  ck_assert_int_eq(th_wait(w, 2500 * MS, &got), 0); /* nothing yet */
  /* Heartbeats arrived as blank lines inside the chunked body. */
  ck_assert_ptr_nonnull(strstr((const char *)w->raw.data, "Transfer-Encoding: chunked"));
  ck_assert_ptr_nonnull(strstr((const char *)w->raw.data, "1\r\n\n\r\n"));
  req_ok(201, "PUT", "/lp/new", "{\"k\":1}");
  ck_assert_int_eq(th_wait(w, 1000 * MS, &got), 1);
  ck_assert_int_eq(got.status, 200);
  json_t *j = json_loadb((const char *)got.body.data, got.body.len, 0, NULL);
  ck_assert_ptr_nonnull(j);
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "results"), 0), "id")), "new");
  json_decref(j);
  th_resp_free(&got);
  /* Keep-alive: the same connection serves the next request, which
   * times out with no results. */
  const char *lp2 = "GET /lp/_changes?feed=longpoll&since=1&timeout=500 HTTP/1.1\r\nHost: x\r\n\r\n";
  th_send(w, lp2, strlen(lp2));
  uint64_t t0 = kz_sim_now(T.sim);
  ck_assert_int_eq(th_wait(w, 2000 * MS, &got), 1);
  ck_assert_uint_ge(kz_sim_now(T.sim) - t0, 500 * MS);
  j = json_loadb((const char *)got.body.data, got.body.len, 0, NULL);
  ck_assert_int_eq(json_array_size(json_object_get(j, "results")), 0);
  ck_assert_int_eq(json_integer_value(json_object_get(j, "last_seq")), 1);
  json_decref(j);
  th_resp_free(&got);
  /* A longpoll with changes already waiting answers at once. */
  const char *lp3 = "GET /lp/_changes?feed=longpoll&since=0 HTTP/1.1\r\nHost: x\r\n\r\n";
  th_send(w, lp3, strlen(lp3));
  ck_assert_int_eq(th_wait(w, 100 * MS, &got), 1);
  th_resp_free(&got);
  th_conn_close(w);
}
END_TEST

START_TEST(test_attachments) {
  req_ok(201, "PUT", "/at", NULL);
  /* Inline: "hello" is aGVsbG8=. */
  struct th_resp *r = req_ok(201, "PUT", "/at/m",
                             "{\"name\":\"prompt\",\"_attachments\":{\"a.txt\":{\"content_type\":\"text/plain\",\"data\":\"aGVsbG8=\"}}}");
  char rev1[128];
  snprintf(rev1, sizeof rev1, "%s", th_str(r, "rev"));
  r = req_ok(200, "GET", "/at/m", NULL);
  json_t *a = json_object_get(json_object_get(r->json, "_attachments"), "a.txt");
  ck_assert(json_is_true(json_object_get(a, "stub")));
  ck_assert_int_eq(json_integer_value(json_object_get(a, "length")), 5);
  ck_assert_int_eq(json_integer_value(json_object_get(a, "revpos")), 1);
  ck_assert_str_eq(json_string_value(json_object_get(a, "digest")), "md5-XUFAKrxLKna5cZ2REBfFkg==");
  r = req_ok(200, "GET", "/at/m/a.txt", NULL);
  ck_assert_str_eq(r->ctype, "text/plain");
  ck_assert_int_eq(r->body.len, 5);
  ck_assert(!memcmp(r->body.data, "hello", 5));
  ck_assert_str_eq(r->etag, "\"md5-XUFAKrxLKna5cZ2REBfFkg==\"");
  r = th_req_h(&T, "GET", "/at/m/a.txt", "If-None-Match: \"md5-XUFAKrxLKna5cZ2REBfFkg==\"\r\n", NULL, 0);
  ck_assert_int_eq(r->status, 304);
  /* Standalone PUT of a binary attachment with a rev. */
  char t[256];
  snprintf(t, sizeof t, "/at/m/audio%%2Fvm.wav?rev=%s", rev1);
  static const uint8_t bin[] = {0, 1, 2, 255, 254, 'R', 'I', 'F', 'F'};
  r = th_req_h(&T, "PUT", t, "Content-Type: audio/x-wav\r\n", bin, sizeof bin);
  ck_assert_int_eq(r->status, 201);
  char rev2[128];
  snprintf(rev2, sizeof rev2, "%s", th_str(r, "rev"));
  ck_assert(!strncmp(rev2, "2-", 2));
  r = req_ok(200, "GET", "/at/m/audio%2Fvm.wav", NULL);
  ck_assert_str_eq(r->ctype, "audio/x-wav");
  ck_assert_int_eq(r->body.len, sizeof bin);
  ck_assert(!memcmp(r->body.data, bin, sizeof bin));
  /* Stale rev: conflict. */
  r = th_req_h(&T, "PUT", t, "Content-Type: audio/x-wav\r\n", bin, sizeof bin);
  ck_assert_int_eq(r->status, 409);
  /* attachments=true inlines base64. */
  r = req_ok(200, "GET", "/at/m?attachments=true", NULL);
  a = json_object_get(r->json, "_attachments");
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(a, "a.txt"), "data")), "aGVsbG8=");
  ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(a, "audio/vm.wav"), "revpos")), 2);
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(a, "audio/vm.wav"), "data")), "AAEC//5SSUZG");
  ck_assert_str_eq(th_str(r, "name"), "prompt");
  /* Update keeping the attachments as stubs. */
  r = th_reqf(&T, "PUT", "/at/m",
              "{\"_rev\":\"%s\",\"name\":\"p2\",\"_attachments\":{\"a.txt\":{\"stub\":true}}}", rev2);
  ck_assert_int_eq(r->status, 201);
  char rev3[128];
  snprintf(rev3, sizeof rev3, "%s", th_str(r, "rev"));
  r = req_ok(200, "GET", "/at/m", NULL);
  a = json_object_get(r->json, "_attachments");
  ck_assert_int_eq(json_object_size(a), 1);
  ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(a, "a.txt"), "revpos")), 1);
  /* A stub of an unknown attachment is refused. */
  r = th_reqf(&T, "PUT", "/at/m", "{\"_rev\":\"%s\",\"_attachments\":{\"zz\":{\"stub\":true}}}", rev3);
  ck_assert_int_eq(r->status, 412);
  assert_error(r, "missing_stub", NULL);
  r = th_reqf(&T, "PUT", "/at/m", "{\"_rev\":\"%s\",\"_attachments\":{\"x\":{\"data\":\"!!notb64\"}}}", rev3);
  ck_assert_int_eq(r->status, 400);
  /* Delete an attachment. */
  snprintf(t, sizeof t, "/at/m/a.txt?rev=%s", rev3);
  r = req_ok(200, "DELETE", t, NULL);
  r = req_ok(404, "GET", "/at/m/a.txt", NULL);
  assert_error(r, "not_found", "Document is missing attachment");
  /* PUT of an attachment to a new doc creates it. */
  r = th_req_h(&T, "PUT", "/at/fresh/f.bin", "Content-Type: application/octet-stream\r\n", "xyz", 3);
  ck_assert_int_eq(r->status, 201);
  r = req_ok(200, "GET", "/at/fresh/f.bin", NULL);
  ck_assert_int_eq(r->body.len, 3);
}
END_TEST

START_TEST(test_keepalive_pipelining_chunked) {
  req_ok(201, "PUT", "/ka", NULL);
  struct th_conn *c = th_conn_open(&T);
  ck_assert_ptr_nonnull(c);
  /* Two pipelined requests, the second chunked, sent byte by byte. */
  const char *two =
      "PUT /ka/x HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
      "PUT /ka/y HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"b\r\n4\r\n\":2}\r\n0\r\n\r\n";
  for (size_t i = 0; two[i]; i++) th_send(c, &two[i], 1);
  struct th_resp a, b;
  ck_assert_int_eq(th_wait(c, 1000 * MS, &a), 1);
  ck_assert_int_eq(th_wait(c, 1000 * MS, &b), 1);
  ck_assert_int_eq(a.status, 201);
  ck_assert_int_eq(b.status, 201);
  th_resp_free(&a);
  th_resp_free(&b);
  /* Connection: close is honoured. */
  const char *cl = "GET /ka/y HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
  th_send(c, cl, strlen(cl));
  ck_assert_int_eq(th_wait(c, 1000 * MS, &a), 1);
  ck_assert_int_eq(a.status, 200);
  th_resp_free(&a);
  kz_sim_run_for(T.sim, 100 * MS);
  ck_assert(c->closed);
  th_conn_close(c);
  /* Garbage gets a 400 and a close, and the server lives on. */
  c = th_conn_open(&T);
  const char *junk = "\x01\x02 nonsense\r\n\r\n";
  th_send(c, junk, strlen(junk));
  ck_assert_int_eq(th_wait(c, 1000 * MS, &a), 1);
  ck_assert_int_eq(a.status, 400);
  th_resp_free(&a);
  th_conn_close(c);
  req_ok(200, "GET", "/ka/x", NULL);
}
END_TEST

/* Everything survives a restart of the db host (clean, after commit). */
START_TEST(test_restart_keeps_data) {
  req_ok(201, "PUT", "/rs", NULL);
  char rev[128];
  put_doc("rs", "k", "{\"v\":42}", rev);
  req_ok(201, "PUT", "/rs/_local/l", "{\"x\":1}");
  th_crash_restart(&T);
  struct th_resp *r = req_ok(200, "GET", "/rs/k", NULL);
  ck_assert_str_eq(th_str(r, "_rev"), rev);
  ck_assert_int_eq(th_int(r, "v"), 42);
  req_ok(200, "GET", "/rs/_local/l", NULL);
  r = req_ok(200, "GET", "/rs", NULL);
  ck_assert_int_eq(th_int(r, "update_seq"), 1);
}
END_TEST


START_TEST(test_design_and_misc) {
  req_ok(201, "PUT", "/ds", NULL);
  struct th_resp *r = req_ok(201, "PUT", "/ds/_design/cf", "{\"views\":{}}");
  ck_assert_str_eq(th_str(r, "id"), "_design/cf");
  r = req_ok(200, "GET", "/ds/_design/cf", NULL);
  ck_assert_str_eq(th_str(r, "_id"), "_design/cf");
  r = req_ok(200, "GET", "/ds/_design%2Fcf", NULL);
  ck_assert_str_eq(th_str(r, "_id"), "_design/cf");
  r = req_ok(404, "GET", "/ds/_design/cf/_view/listing", NULL);
  assert_error(r, "not_found", "missing_named_view");
  req_ok(200, "GET", "/ds/_security", NULL);
  req_ok(200, "PUT", "/ds/_security", "{}");
  req_ok(201, "POST", "/ds/_ensure_full_commit", "{}");
  r = req_ok(400, "DELETE", "/ds?rev=1-abc", NULL);
  assert_error(r, "bad_request", NULL);
  r = req_ok(400, "GET", "/ds/_unknown_thing", NULL);
  assert_error(r, "illegal_docid", NULL);
  /* Expect: 100-continue gets the interim response first. */
  struct th_conn *c = th_conn_open(&T);
  const char *head = "PUT /ds/ec HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
  th_send(c, head, strlen(head));
  kz_sim_run_for(T.sim, 20 * MS);
  ck_assert_ptr_nonnull(strstr((const char *)c->raw.data, "HTTP/1.1 100 Continue\r\n"));
  th_send(c, "{}", 2);
  struct th_resp got;
  ck_assert_int_eq(th_wait(c, 1000 * MS, &got), 1);
  ck_assert_int_eq(got.status, 201);
  th_resp_free(&got);
  th_conn_close(c);
  /* HTTP/1.0 without keep-alive: answered then closed. */
  c = th_conn_open(&T);
  const char *old = "GET / HTTP/1.0\r\n\r\n";
  th_send(c, old, strlen(old));
  ck_assert_int_eq(th_wait(c, 1000 * MS, &got), 1);
  ck_assert_int_eq(got.status, 200);
  th_resp_free(&got);
  kz_sim_run_for(T.sim, 50 * MS);
  ck_assert(c->closed);
  th_conn_close(c);
}
END_TEST

/* Same seed, same requests: same revisions, uuids and answers. */
START_TEST(test_deterministic) {
  char revs[2][128], ids[2][64];
  uint64_t hash[2];
  for (int run = 0; run < 2; run++) {
    struct th t2;
    th_init(&t2, 99, NULL);
    struct th_resp *r = th_req(&t2, "PUT", "/det", NULL);
    ck_assert_int_eq(r->status, 201);
    r = th_req(&t2, "POST", "/det", "{\"a\":[1,2,{\"b\":null}]}");
    ck_assert_int_eq(r->status, 201);
    snprintf(ids[run], sizeof ids[run], "%s", th_str(r, "id"));
    snprintf(revs[run], sizeof revs[run], "%s", th_str(r, "rev"));
    char target[400];
    snprintf(target, sizeof target, "/det/%s?rev=%s", ids[run], revs[run]);
    r = th_req(&t2, "DELETE", target, NULL);
    ck_assert_int_eq(r->status, 200);
    /* The trace covers every synced byte (SQLite's journal included). */
    hash[run] = kz_sim_trace_hash(t2.sim);
    th_free(&t2);
  }
  ck_assert_uint_eq(hash[0], hash[1]);
  ck_assert_str_eq(ids[0], ids[1]);
  ck_assert_str_eq(revs[0], revs[1]);
}
END_TEST

/* Allocation failures while the db process starts: an error, never a
 * crash or a leak. */
START_TEST(test_start_alloc_failures) {
  static const struct kz_sim_app app = {"db", kz_db_app_start, kz_db_app_stop};
  int ok = 0;
  for (int k = 0; k < 200; k++) {
    struct kz_sim *sim = NULL;
    ck_assert_int_eq(kz_sim_new(&sim, 5), 0);
    struct kz_addr ip = kz_addr_v4(TH_DB_IP, 0);
    struct kz_sim_host *h = NULL;
    ck_assert_int_eq(kz_sim_host_add(sim, "db", &ip, &h), 0);
    struct kz_db_cfg cfg = {.listen = kz_addr_v4(0, TH_DB_PORT)};
    kz_mem_fail_after(k);
    int rc = kz_sim_proc_add(h, "couch", &app, &cfg, NULL);
    kz_mem_fail_after(-1);
    if (rc == 0) ok++;
    else ck_assert_msg(rc == KZ_ENOMEM || rc == KZ_EIO, "k=%d rc=%d", k, rc);
    kz_sim_free(sim);
  }
  ck_assert_int_gt(ok, 0);
}
END_TEST

/* Random requests assembled from hostile fragments: every one gets an
 * answer (or a close for a broken request line), the server survives. */
START_TEST(test_random_requests) {
  static const char *const methods[] = {"GET", "PUT", "POST", "DELETE", "HEAD", "COPY", "PATCH"};
  static const char *const path[] = {"/", "r", "/r", "/r/", "d", "/_all_dbs", "/_uuids?count=2", "/r/_all_docs",
                                     "/r/_changes", "/r/_bulk_docs", "/r/_local/x", "/att", "%2F", "%00", "%",
                                     "..", "?", "&", "=", "rev=", "1-abc", "keys=", "%5B", "%22", "startkey=",
                                     "limit=-1", "open_revs=all", "feed=longpoll&timeout=10", "attachments=true",
                                     "_design/", "%FF", "/r/_revs_diff", "/r/_bulk_get", "revs=true", "latest=true",
                                     "conflicts=true", "since=now", "style=all_docs", "include_docs=true"};
  static const char *const body[] = {"{", "}", "\"_id\"", ":", "\"x\"", ",", "[", "]", "\"_rev\"", "\"docs\"",
                                     "\"_attachments\"", "{\"a\":{\"data\":\"AAA=\"}}", "true", "null",
                                     "\"new_edits\":false", "\"_revisions\"", "{\"start\":5,\"ids\":[\"a\"]}",
                                     "\"1-abc\"", "{\"stub\":true}", "\"keys\"", "\"_deleted\"", "0", "\"\\u00e9\""};
  req_ok(201, "PUT", "/r", NULL);
  struct kz_prng g;
  kz_prng_seed(&g, 2024);
  int answered = 0;
  for (int i = 0; i < 400; i++) {
    char target[512] = "", b[1024] = "";
    int np = 1 + (int)kz_prng_below(&g, 6);
    for (int k = 0; k < np; k++)
      strncat(target, path[kz_prng_below(&g, sizeof path / sizeof path[0])], sizeof target - strlen(target) - 1);
    if (target[0] != '/') {
      memmove(target + 1, target, strlen(target) + 1);
      target[0] = '/';
    }
    int nb = (int)kz_prng_below(&g, 10);
    for (int k = 0; k < nb; k++)
      strncat(b, body[kz_prng_below(&g, sizeof body / sizeof body[0])], sizeof b - strlen(b) - 1);
    const char *m = methods[kz_prng_below(&g, sizeof methods / sizeof methods[0])];
    struct th_resp *r = th_req_h(&T, m, target, NULL, nb ? b : NULL, strlen(b));
    if (r) {
      answered++;
      ck_assert_msg(r->status >= 200 && r->status < 600, "%s %s -> %d", m, target, r->status);
      ck_assert_msg(r->status < 500, "%s %s [%s] -> %d %.*s", m, target, b, r->status, (int)r->body.len,
                    (const char *)r->body.data);
      if (strcmp(m, "HEAD") && r->status != 304 && r->status != 200) ck_assert_ptr_nonnull(r->json);
    }
    if (T.conn && T.conn->nresp == 0 && !T.conn->closed) {
      /* A parked longpoll: drop the connection. */
      th_conn_close(T.conn);
      T.conn = NULL;
    }
  }
  ck_assert_int_gt(answered, 300);
  req_ok(200, "GET", "/", NULL);
  /* "DELETE /r/" is "DELETE /r": the database may be gone by now. */
  struct th_resp *r = th_req_h(&T, "GET", "/r", NULL, NULL, 0);
  ck_assert_ptr_nonnull(r);
  ck_assert_msg(r->status == 200 || r->status == 404, "GET /r -> %d", r->status);
}
END_TEST

static Suite *db_suite(void) {
  Suite *s = suite_create("db");
  TCase *tc = kz_tcase(s, "server", 30);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_welcome_and_server);
  tcase_add_test(tc, test_db_lifecycle);
  tcase_add_test(tc, test_db_names);
  tcase_add_test(tc, test_db_trailing_slash);
  tcase_add_test(tc, test_nul_in_strings);
  tcase_add_test(tc, test_json_writer_matches_jansson);
  tcase_add_test(tc, test_json_body_writer);
  tcase_add_test(tc, test_json_parser_matches_jansson);
  tcase_add_test(tc, test_design_and_misc);
  tcase_add_test(tc, test_deterministic);
  tcase_add_test(tc, test_start_alloc_failures);
  tc = kz_tcase(s, "docs", 30);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_doc_crud);
  tcase_add_test(tc, test_post_and_etag);
  tcase_add_test(tc, test_bad_input);
  tcase_add_test(tc, test_oversized_body);
  tcase_add_test(tc, test_local_docs);
  tcase_add_test(tc, test_restart_keeps_data);
  tc = kz_tcase(s, "bulk", 30);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_all_docs);
  tcase_add_test(tc, test_bulk_docs);
  tcase_add_test(tc, test_bulk_docs_streamed);
  tcase_add_test(tc, test_bulk_docs_text_path);
  tcase_add_test(tc, test_implied_trees);
  tcase_add_test(tc, test_new_edits_false_conflicts);
  tcase_add_test(tc, test_revs_diff_bulk_get);
  tc = kz_tcase(s, "changes", 30);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_changes);
  tcase_add_test(tc, test_changes_longpoll);
  tc = kz_tcase(s, "attachments", 30);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_attachments);
  tc = kz_tcase(s, "http", 30);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_keepalive_pipelining_chunked);
  tcase_add_test(tc, test_random_requests);
  return s;
}

int main(void) { return kz_run_suite(db_suite()); }
