/* test_views.c — the native Kazoo views through the simulator: collation, each view's rows for Kazoo-shaped documents, query parameters, reduce, index durability. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "../db_int.h"
#include "db_harness.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz_test.h"

#define MS UINT64_C(1000000)

static struct th T;

static void setup(void) { th_init(&T, 7, NULL); }
static void teardown(void) { th_free(&T); }

static struct th_resp *req_ok(int status, const char *method, const char *target, const char *body) {
  struct th_resp *r = th_req(&T, method, target, body);
  ck_assert_ptr_nonnull(r);
  ck_assert_msg(r->status == status, "%s %s: status %d, want %d: %.*s", method, target, r->status,
                status, (int)r->body.len, r->body.data ? (const char *)r->body.data : "");
  return r;
}

/* GET <path>?<query> where query is given unencoded ("key=\"a b\"");
 * the JSON is percent-encoded here. */
static struct th_resp *view(int status, const char *path, const char *query) {
  char target[2048];
  size_t n = (size_t)snprintf(target, sizeof target, "%s%s", path, query ? "?" : "");
  for (const char *p = query; p && *p && n + 4 < sizeof target; p++) {
    unsigned char c = (unsigned char)*p;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-_.&=", c))
      target[n++] = (char)c;
    else n += (size_t)snprintf(target + n, sizeof target - n, "%%%02X", c);
  }
  target[n] = 0;
  return req_ok(status, "GET", target, NULL);
}

static json_t *rows(struct th_resp *r) {
  json_t *a = json_object_get(r->json, "rows");
  ck_assert_ptr_nonnull(a);
  return a;
}

static const char *row_str(struct th_resp *r, size_t i, const char *field) {
  json_t *v = json_object_get(json_array_get(rows(r), i), field);
  ck_assert_msg(json_is_string(v), "row %zu has no string %s", i, field);
  return json_string_value(v);
}

static void put(const char *target, const char *body) { req_ok(201, "PUT", target, body); }

/* ------------------------------------------------------------------ */

/* The order of CouchDB's "Views Collation" document, and its ASCII
 * table, must come out of both the comparison and the sort keys. */
START_TEST(test_collation_order) {
  static const char *const ordered[] = {
      "null", "false", "true", "1", "2", "3.0", "4", "\" \"", "\"^\"", "\"_\"", "\"-\"", "\",\"",
      "\";\"", "\":\"", "\"!\"", "\"?\"", "\".\"", "\"'\"", "\"(\"", "\")\"", "\"[\"", "\"]\"",
      "\"{\"", "\"}\"", "\"@\"", "\"*\"", "\"/\"", "\"\\\\\"", "\"&\"", "\"#\"", "\"%\"", "\"`\"",
      "\"+\"", "\"<\"", "\"=\"", "\">\"", "\"|\"", "\"~\"", "\"$\"", "\"0\"", "\"9\"", "\"a\"",
      "\"A\"", "\"aa\"", "\"b\"", "\"B\"", "\"ba\"", "\"bb\"", "\"z\"", "\"Z\"", "\"\\u00e9\"",
      "[\"a\"]", "[\"b\"]", "[\"b\",\"c\"]", "[\"b\",\"c\",\"a\"]", "[\"b\",\"d\"]",
      "[\"b\",\"d\",\"e\"]", "{\"a\":1}", "{\"a\":2}", "{\"b\":1}", "{\"b\":2}", "{\"b\":2,\"a\":1}",
      "{\"b\":2,\"c\":2}"};
  size_t n = sizeof ordered / sizeof ordered[0];
  for (size_t i = 0; i + 1 < n; i++) {
    json_t *a = json_loads(ordered[i], JSON_DECODE_ANY, NULL), *b = json_loads(ordered[i + 1], JSON_DECODE_ANY, NULL);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_msg(kz_db_collate(a, b) < 0, "%s < %s", ordered[i], ordered[i + 1]);
    ck_assert_msg(kz_db_collate(b, a) > 0, "%s > %s", ordered[i + 1], ordered[i]);
    ck_assert_int_eq(kz_db_collate(a, a), 0);
    struct kz_buf ka = {0}, kb = {0};
    ck_assert_int_eq(kz_db_collate_key(&ka, a), 0);
    ck_assert_int_eq(kz_db_collate_key(&kb, b), 0);
    size_t m = ka.len < kb.len ? ka.len : kb.len;
    int c = memcmp(ka.data, kb.data, m);
    ck_assert_msg(c < 0 || (c == 0 && ka.len < kb.len), "key(%s) < key(%s)", ordered[i], ordered[i + 1]);
    kz_buf_free(&ka);
    kz_buf_free(&kb);
    json_decref(a);
    json_decref(b);
  }
  /* Integers and reals are one number line; -0 equals 0. */
  json_t *x = json_integer(3), *y = json_real(3.0), *z = json_real(-0.0), *w = json_integer(0);
  ck_assert_int_eq(kz_db_collate(x, y), 0);
  ck_assert_int_eq(kz_db_collate(z, w), 0);
  json_decref(x);
  json_decref(y);
  json_decref(z);
  json_decref(w);
}
END_TEST

#define ACCT_DB "/account%2F3c%2F3f%2F9a12"

/* devices/sip_credentials in an account database, exactly as the apps
 * role queries it. */
START_TEST(test_sip_credentials) {
  put(ACCT_DB, NULL);
  put(ACCT_DB "/dev1", "{\"pvt_type\":\"device\",\"name\":\"Desk\",\"device_type\":\"sip_device\","
                       "\"sip\":{\"username\":\"User1001\",\"password\":\"pw1\",\"realm\":\"a.example.com\","
                       "\"method\":\"password\",\"invite_format\":\"username\"}}");
  put(ACCT_DB "/dev2", "{\"pvt_type\":\"device\",\"device_type\":\"mobile\",\"sip\":{\"username\":\"m1\",\"password\":\"pw2\"}}");
  put(ACCT_DB "/gone", "{\"pvt_type\":\"device\",\"pvt_deleted\":true,\"sip\":{\"username\":\"gone\"}}");
  /* No username: the JavaScript throws, the doc gets no row. */
  put(ACCT_DB "/bad", "{\"pvt_type\":\"device\",\"sip\":{\"password\":\"x\"}}");
  /* A user with sip credentials: the view does not look at pvt_type. */
  put(ACCT_DB "/user1", "{\"pvt_type\":\"user\",\"sip\":{\"username\":\"owner\",\"password\":\"pw3\"}}");
  put(ACCT_DB "/sys", "{\"pvt_type\":\"sys_info\",\"servers\":[{\"auth\":{\"auth_method\":\"Password\","
                      "\"auth_user\":\"Trunk1\",\"auth_password\":\"tp\"},\"options\":{}},"
                      "{\"auth\":{\"auth_method\":\"ip\"}}]}");
  const char *path = ACCT_DB "/_design/devices/_view/sip_credentials";
  struct th_resp *r = view(200, path, "key=\"user1001\"");
  ck_assert_int_eq(json_array_size(rows(r)), 1);
  ck_assert_str_eq(row_str(r, 0, "id"), "dev1");
  ck_assert_str_eq(row_str(r, 0, "key"), "user1001");
  json_t *v = json_object_get(json_array_get(rows(r), 0), "value");
  ck_assert_str_eq(json_string_value(json_object_get(v, "username")), "User1001");
  ck_assert_str_eq(json_string_value(json_object_get(v, "password")), "pw1");
  ck_assert_str_eq(json_string_value(json_object_get(v, "realm")), "a.example.com");
  ck_assert_str_eq(json_string_value(json_object_get(v, "invite_format")), "username");
  ck_assert_str_eq(json_string_value(json_object_get(v, "authorizing_id")), "dev1");
  ck_assert_str_eq(json_string_value(json_object_get(v, "authorizing_type")), "device");
  ck_assert_int_eq(th_int(r, "total_rows"), 4);
  /* Lowercased key: the uppercase query finds nothing. */
  r = view(200, path, "key=\"User1001\"");
  ck_assert_int_eq(json_array_size(rows(r)), 0);
  r = view(200, path, "key=\"m1\"");
  v = json_object_get(json_array_get(rows(r), 0), "value");
  ck_assert_str_eq(json_string_value(json_object_get(v, "authorizing_type")), "mobile");
  r = view(200, path, "key=\"owner\"");
  v = json_object_get(json_array_get(rows(r), 0), "value");
  ck_assert_str_eq(json_string_value(json_object_get(v, "authorizing_type")), "user");
  r = view(200, path, "key=\"trunk1\"");
  ck_assert_int_eq(json_array_size(rows(r)), 1);
  v = json_object_get(json_array_get(rows(r), 0), "value");
  ck_assert_str_eq(json_string_value(json_object_get(v, "password")), "tp");
  ck_assert_str_eq(json_string_value(json_object_get(v, "method")), "Password");
  ck_assert_str_eq(json_string_value(json_object_get(v, "invite_format")), "e164");
  ck_assert_str_eq(json_string_value(json_object_get(v, "authorizing_type")), "sys_info");
  /* Whole view in key order. */
  r = view(200, path, NULL);
  ck_assert_int_eq(json_array_size(rows(r)), 4);
  ck_assert_str_eq(row_str(r, 0, "key"), "m1");
  ck_assert_str_eq(row_str(r, 1, "key"), "owner");
  ck_assert_str_eq(row_str(r, 2, "key"), "trunk1");
  ck_assert_str_eq(row_str(r, 3, "key"), "user1001");
  /* An update moves the row; a delete removes it. */
  r = req_ok(200, "GET", ACCT_DB "/dev1", NULL);
  char rev[128];
  snprintf(rev, sizeof rev, "%s", th_str(r, "_rev"));
  char body[512];
  snprintf(body, sizeof body, "{\"_rev\":\"%s\",\"pvt_type\":\"device\",\"sip\":{\"username\":\"user2002\"}}", rev);
  r = req_ok(201, "PUT", ACCT_DB "/dev1", body);
  snprintf(rev, sizeof rev, "%s", th_str(r, "rev"));
  ck_assert_int_eq(json_array_size(rows(view(200, path, "key=\"user1001\""))), 0);
  ck_assert_int_eq(json_array_size(rows(view(200, path, "key=\"user2002\""))), 1);
  char target[256];
  snprintf(target, sizeof target, "%s/dev1?rev=%s", ACCT_DB, rev);
  req_ok(200, "DELETE", target, NULL);
  ck_assert_int_eq(json_array_size(rows(view(200, path, "key=\"user2002\""))), 0);
  r = view(200, path, "include_docs=true&key=\"m1\"");
  json_t *doc = json_object_get(json_array_get(rows(r), 0), "doc");
  ck_assert_str_eq(json_string_value(json_object_get(doc, "_id")), "dev2");
  ck_assert_str_eq(json_string_value(json_object_get(doc, "device_type")), "mobile");
}
END_TEST

/* accounts/listing_by_realm in the accounts database. */
START_TEST(test_listing_by_realm) {
  put("/accounts", NULL);
  put("/accounts/3c3f9a12", "{\"pvt_type\":\"account\",\"name\":\"Acme Inc.\",\"realm\":\"Acme.Example.COM\","
                            "\"pvt_account_id\":\"3c3f9a12\",\"pvt_account_db\":\"account/3c/3f/9a12\"}");
  put("/accounts/77", "{\"pvt_type\":\"account\",\"name\":\"Old\",\"realm\":\"old.example.com\",\"pvt_deleted\":true}");
  put("/accounts/88", "{\"pvt_type\":\"account\",\"name\":\"No realm\"}");
  struct th_resp *r = view(200, "/accounts/_design/accounts/_view/listing_by_realm", "key=\"acme.example.com\"");
  ck_assert_int_eq(json_array_size(rows(r)), 1);
  ck_assert_str_eq(row_str(r, 0, "id"), "3c3f9a12");
  json_t *v = json_object_get(json_array_get(rows(r), 0), "value");
  ck_assert_str_eq(json_string_value(json_object_get(v, "account_id")), "3c3f9a12");
  ck_assert_str_eq(json_string_value(json_object_get(v, "account_db")), "account/3c/3f/9a12");
  ck_assert_int_eq(json_object_size(v), 2);
  ck_assert_int_eq(th_int(r, "total_rows"), 1);
  r = view(200, "/accounts/_design/accounts/_view/listing_by_realm", "key=\"old.example.com\"");
  ck_assert_int_eq(json_array_size(rows(r)), 0);
  r = view(200, "/accounts/_design/accounts/_view/listing_by_name", NULL);
  ck_assert_int_eq(json_array_size(rows(r)), 2);
  ck_assert_str_eq(row_str(r, 0, "key"), "acmeinc");
  ck_assert_str_eq(row_str(r, 1, "key"), "norealm");
  /* POST with keys. */
  r = req_ok(200, "POST", "/accounts/_design/accounts/_view/listing_by_realm",
             "{\"keys\":[\"nope\",\"acme.example.com\"]}");
  ck_assert_int_eq(json_array_size(rows(r)), 1);
}
END_TEST

START_TEST(test_callflows) {
  put(ACCT_DB, NULL);
  put(ACCT_DB "/cf1", "{\"pvt_type\":\"callflow\",\"name\":\"Main\",\"numbers\":[\"1001\",\"+14155551234\"],"
                      "\"flow\":{\"module\":\"device\",\"data\":{\"id\":\"dev1\"},\"children\":{\"_\":{\"module\":"
                      "\"voicemail\",\"data\":{}}}}}");
  put(ACCT_DB "/cf2", "{\"pvt_type\":\"callflow\",\"patterns\":[\"^\\\\*2([0-9]{2,})$\"],\"numbers\":[],"
                      "\"featurecode\":{\"name\":\"dynamic_cid\",\"number\":\"2\"},\"flow\":{\"module\":\"dynamic_cid\",\"data\":{}}}");
  put(ACCT_DB "/dev9", "{\"pvt_type\":\"device\",\"numbers\":[\"1001\"]}");
  const char *path = ACCT_DB "/_design/callflows/_view/listing_by_number";
  struct th_resp *r = view(200, path, "key=\"1001\"");
  ck_assert_int_eq(json_array_size(rows(r)), 1);
  ck_assert_str_eq(row_str(r, 0, "id"), "cf1");
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_array_get(rows(r), 0), "value"), "name")),
                   "Main");
  r = view(200, path, NULL);
  ck_assert_int_eq(json_array_size(rows(r)), 2);
  ck_assert_str_eq(row_str(r, 0, "key"), "+14155551234"); /* '+' before digits */
  r = view(200, ACCT_DB "/_design/callflows/_view/listing_by_pattern", NULL);
  ck_assert_int_eq(json_array_size(rows(r)), 1);
  ck_assert_str_eq(row_str(r, 0, "key"), "^\\*2([0-9]{2,})$");
  /* No name: the id stands in. */
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_array_get(rows(r), 0), "value"), "name")),
                   "cf2");
  r = view(200, ACCT_DB "/_design/callflows/_view/crossbar_listing", "key=\"cf1\"");
  json_t *v = json_object_get(json_array_get(rows(r), 0), "value");
  json_t *mods = json_object_get(v, "modules");
  ck_assert_int_eq(json_array_size(mods), 2);
  ck_assert_str_eq(json_string_value(json_array_get(mods, 0)), "device");
  ck_assert_str_eq(json_string_value(json_array_get(mods, 1)), "voicemail");
  ck_assert(json_is_false(json_object_get(v, "featurecode")));
  ck_assert_int_eq(json_array_size(json_object_get(v, "flags")), 0);
}
END_TEST

START_TEST(test_credentials_lookup) {
  put("/sip_auth", NULL);
  put("/sip_auth/d1", "{\"pvt_type\":\"device\",\"pvt_account_id\":\"acc1\",\"pvt_account_db\":\"account/ac/c1\","
                      "\"sip\":{\"username\":\"Alice\",\"password\":\"s\",\"realm\":\"Zone.Example\"}}");
  put("/sip_auth/d2", "{\"pvt_type\":\"device\",\"sip\":{\"username\":\"bob\",\"realm\":[\"r1\",\"R2\"]}}");
  struct th_resp *r = view(200, "/sip_auth/_design/credentials/_view/lookup", "key=[\"zone.example\",\"alice\"]");
  ck_assert_int_eq(json_array_size(rows(r)), 1);
  json_t *v = json_object_get(json_array_get(rows(r), 0), "value");
  ck_assert_str_eq(json_string_value(json_object_get(v, "id")), "d1");
  ck_assert_str_eq(json_string_value(json_object_get(v, "account_id")), "acc1");
  ck_assert_str_eq(json_string_value(json_object_get(v, "account_db")), "account/ac/c1");
  ck_assert_str_eq(json_string_value(json_object_get(v, "authorizing_type")), "device");
  ck_assert_str_eq(json_string_value(json_object_get(v, "password")), "s");
  r = view(200, "/sip_auth/_design/credentials/_view/lookup", "startkey=[\"r\"]&endkey=[\"r\",{}]");
  ck_assert_int_eq(json_array_size(rows(r)), 0);
  r = view(200, "/sip_auth/_design/credentials/_view/lookup", "startkey=[\"r1\"]&endkey=[\"r2\",{}]");
  ck_assert_int_eq(json_array_size(rows(r)), 2);
  ck_assert_ptr_null(json_object_get(json_object_get(json_array_get(rows(r), 0), "value"), "account_id"));
}
END_TEST

/* cdrs/crossbar_listing ranges: startkey/endkey, descending, limit,
 * skip, inclusive_end, *_docid, offset. */
START_TEST(test_query_params) {
  put("/modb", NULL);
  char body[256];
  for (int i = 0; i < 10; i++) {
    char target[64];
    snprintf(target, sizeof target, "/modb/cdr%02d", i);
    snprintf(body, sizeof body, "{\"pvt_type\":\"cdr\",\"pvt_created\":%lld,\"duration\":%d}",
             63800000000LL + i / 2, i);
    put(target, body);
  }
  const char *path = "/modb/_design/cdrs/_view/crossbar_listing";
  struct th_resp *r = view(200, path, NULL);
  ck_assert_int_eq(json_array_size(rows(r)), 10);
  ck_assert_int_eq(th_int(r, "total_rows"), 10);
  ck_assert_str_eq(row_str(r, 0, "id"), "cdr00");
  ck_assert_str_eq(row_str(r, 1, "id"), "cdr01"); /* same key: by id */
  r = view(200, path, "startkey=63800000001&endkey=63800000002");
  ck_assert_int_eq(json_array_size(rows(r)), 4);
  ck_assert_int_eq(th_int(r, "offset"), 2);
  ck_assert_str_eq(row_str(r, 0, "id"), "cdr02");
  r = view(200, path, "startkey=63800000001&endkey=63800000002&inclusive_end=false");
  ck_assert_int_eq(json_array_size(rows(r)), 2);
  r = view(200, path, "startkey=63800000001&endkey=63800000002&endkey_docid=cdr04");
  ck_assert_int_eq(json_array_size(rows(r)), 3);
  r = view(200, path, "startkey=63800000001&startkey_docid=cdr03&limit=2");
  ck_assert_int_eq(json_array_size(rows(r)), 2);
  ck_assert_str_eq(row_str(r, 0, "id"), "cdr03");
  ck_assert_str_eq(row_str(r, 1, "id"), "cdr04");
  r = view(200, path, "descending=true&limit=3&skip=1");
  ck_assert_int_eq(json_array_size(rows(r)), 3);
  ck_assert_str_eq(row_str(r, 0, "id"), "cdr08");
  ck_assert_int_eq(th_int(r, "offset"), 1);
  r = view(200, path, "descending=true&startkey=63800000001&endkey=63800000000");
  ck_assert_int_eq(json_array_size(rows(r)), 4);
  ck_assert_str_eq(row_str(r, 0, "id"), "cdr03");
  ck_assert_int_eq(th_int(r, "offset"), 6);
  r = view(200, path, "include_docs=true&limit=1&update_seq=true");
  json_t *doc = json_object_get(json_array_get(rows(r), 0), "doc");
  ck_assert_int_eq(json_integer_value(json_object_get(doc, "duration")), 0);
  ck_assert_int_eq(th_int(r, "update_seq"), 10);
  /* Wrong-way range and bad parameters. */
  view(400, path, "startkey=2&endkey=1");
  view(400, path, "limit=-1");
  view(400, path, "descending=maybe");
  view(400, path, "key=notjson");
  view(400, path, "reduce=true");
  view(400, path, "group=true");
  /* POST with the parameters in the body. */
  r = req_ok(200, "POST", path, "{\"keys\":[63800000004,63800000000],\"limit\":3}");
  ck_assert_int_eq(json_array_size(rows(r)), 3);
  ck_assert_str_eq(row_str(r, 0, "id"), "cdr08");
  ck_assert_str_eq(row_str(r, 2, "id"), "cdr00");
}
END_TEST

/* accounts/listing_by_descendants_count carries _count. */
START_TEST(test_reduce) {
  put("/accounts", NULL);
  put("/accounts/top", "{\"pvt_type\":\"account\",\"pvt_tree\":[]}");
  put("/accounts/a", "{\"pvt_type\":\"account\",\"pvt_tree\":[\"top\"]}");
  put("/accounts/b", "{\"pvt_type\":\"account\",\"pvt_tree\":[\"top\"]}");
  put("/accounts/c", "{\"pvt_type\":\"account\",\"pvt_tree\":[\"top\",\"a\"]}");
  const char *path = "/accounts/_design/accounts/_view/listing_by_descendants_count";
  struct th_resp *r = view(200, path, NULL);
  ck_assert_int_eq(json_array_size(rows(r)), 1);
  ck_assert(json_is_null(json_object_get(json_array_get(rows(r), 0), "key")));
  ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(rows(r), 0), "value")), 4);
  ck_assert_ptr_null(json_object_get(r->json, "total_rows"));
  r = view(200, path, "group=true");
  ck_assert_int_eq(json_array_size(rows(r)), 2);
  ck_assert_str_eq(row_str(r, 0, "key"), "a");
  ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(rows(r), 0), "value")), 1);
  ck_assert_str_eq(row_str(r, 1, "key"), "top");
  ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(rows(r), 1), "value")), 3);
  r = view(200, path, "key=\"top\"");
  ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(rows(r), 0), "value")), 3);
  r = view(200, path, "group_level=1&descending=true&limit=1");
  ck_assert_int_eq(json_array_size(rows(r)), 1);
  ck_assert_str_eq(row_str(r, 0, "key"), "top");
  r = view(200, path, "reduce=false");
  ck_assert_int_eq(json_array_size(rows(r)), 4);
  ck_assert_int_eq(th_int(r, "total_rows"), 4);
  r = req_ok(200, "POST", path, "{\"keys\":[\"top\",\"a\",\"zz\"],\"group\":true}");
  ck_assert_int_eq(json_array_size(rows(r)), 2);
  ck_assert_str_eq(row_str(r, 0, "key"), "top");
  view(400, path, "include_docs=true");
  req_ok(400, "POST", path, "{\"keys\":[\"top\",\"a\"]}");
}
END_TEST

START_TEST(test_missing_views) {
  put("/vdb", NULL);
  struct th_resp *r = view(404, "/vdb/_design/nosuch/_view/x", NULL);
  ck_assert_str_eq(th_str(r, "reason"), "missing");
  r = view(404, "/vdb/_design/devices/_view/nosuch", NULL);
  ck_assert_str_eq(th_str(r, "reason"), "missing_named_view");
  put("/vdb/_design/custom", "{\"language\":\"javascript\",\"views\":{\"by_x\":{\"map\":\"function(doc){emit(doc.x,null)}\"}}}");
  r = view(501, "/vdb/_design/custom/_view/by_x", NULL);
  ck_assert_str_eq(th_str(r, "error"), "not_implemented");
  r = view(404, "/vdb/_design/custom/_view/by_y", NULL);
  ck_assert_str_eq(th_str(r, "reason"), "missing_named_view");
  /* Design documents are not mapped into views. */
  put("/vdb/_design/withsip", "{\"sip\":{\"username\":\"ddoc\"}}");
  r = view(200, "/vdb/_design/devices/_view/sip_credentials", NULL);
  ck_assert_int_eq(json_array_size(rows(r)), 0);
  req_ok(405, "PUT", "/vdb/_design/devices/_view/sip_credentials", "{}");
}
END_TEST

/* The index commits with the documents: it survives a crash, and
 * replicated conflicts index the winner only. */
/* The index is built when a view is read: stale=ok and update=false
 * read it as it is, stale=update_after and update=lazy answer first
 * and catch up after, any other word is a 400; a catch-up longer than
 * one batch (5000 documents) covers them all, and deletions drop rows. */
START_TEST(test_index_at_query_time) {
  const char *path = "/lz/_design/devices/_view/sip_credentials";
  put("/lz", NULL);
  put("/lz/d1", "{\"pvt_type\":\"device\",\"sip\":{\"username\":\"alice\"}}");
  struct th_resp *r = view(200, path, "stale=ok");
  ck_assert_int_eq(json_array_size(rows(r)), 0);
  ck_assert_int_eq(th_int(r, "total_rows"), 0);
  r = view(200, path, NULL);
  ck_assert_int_eq(json_array_size(rows(r)), 1);
  ck_assert_str_eq(row_str(r, 0, "key"), "alice");
  struct th_resp *g = req_ok(200, "GET", "/lz/d1", NULL);
  char doc[256];
  snprintf(doc, sizeof doc, "{\"_rev\":\"%s\",\"pvt_type\":\"device\",\"sip\":{\"username\":\"bob\"}}",
           json_string_value(json_object_get(g->json, "_rev")));
  put("/lz/d1", doc);
  r = view(200, path, "update=false");
  ck_assert_str_eq(row_str(r, 0, "key"), "alice");
  r = view(200, path, "stale=update_after");
  ck_assert_str_eq(row_str(r, 0, "key"), "alice");
  r = view(200, path, "stale=ok");
  ck_assert_int_eq(json_array_size(rows(r)), 1);
  ck_assert_str_eq(row_str(r, 0, "key"), "bob");
  r = req_ok(200, "POST", path, "{\"update\":\"lazy\"}");
  ck_assert_str_eq(row_str(r, 0, "key"), "bob");
  r = view(400, path, "update=maybe");
  ck_assert_str_eq(th_str(r, "error"), "query_parse_error");
  r = view(400, path, "stale=later");
  ck_assert_str_eq(th_str(r, "reason"), "Invalid value for `stale`.");
  /* Deleted: its row goes at the next query. */
  g = req_ok(200, "GET", "/lz/d1", NULL);
  char target[128];
  snprintf(target, sizeof target, "/lz/d1?rev=%s", json_string_value(json_object_get(g->json, "_rev")));
  req_ok(200, "DELETE", target, NULL);
  r = view(200, path, NULL);
  ck_assert_int_eq(json_array_size(rows(r)), 0);
  ck_assert_int_eq(th_int(r, "total_rows"), 0);
  /* More than one batch of changes. */
  struct kz_buf b = {0};
  ck_assert_int_eq(kz_buf_append_cstr(&b, "{\"docs\":["), 0);
  for (int i = 0; i < 5003; i++)
    ck_assert_int_eq(kz_buf_printf(&b, "%s{\"_id\":\"m%04d\",\"sip\":{\"username\":\"u%04d\"}}", i ? "," : "",
                                   i, i),
                     0);
  ck_assert_int_eq(kz_buf_append_cstr(&b, "]}"), 0);
  ck_assert_int_eq(kz_buf_append_byte(&b, 0), 0);
  req_ok(201, "POST", "/lz/_bulk_docs", (const char *)b.data);
  kz_buf_free(&b);
  r = view(200, path, "key=\"u5002\"");
  ck_assert_int_eq(json_array_size(rows(r)), 1);
  ck_assert_str_eq(row_str(r, 0, "id"), "m5002");
  ck_assert_int_eq(th_int(r, "total_rows"), 5003);
  r = view(200, path, "key=\"u0000\"");
  ck_assert_int_eq(json_array_size(rows(r)), 1);
}
END_TEST

START_TEST(test_index_durable_and_conflicts) {
  put("/cx", NULL);
  put("/cx/d", "{\"pvt_type\":\"device\",\"sip\":{\"username\":\"one\"}}");
  /* A conflicting branch arriving by replication with a higher rev wins. */
  req_ok(201, "POST", "/cx/_bulk_docs",
         "{\"new_edits\":false,\"docs\":[{\"_id\":\"d\",\"_rev\":\"1-ffffffffffffffffffffffffffffffff\","
         "\"pvt_type\":\"device\",\"sip\":{\"username\":\"two\"}}]}");
  const char *path = "/cx/_design/devices/_view/sip_credentials";
  struct th_resp *r = view(200, path, NULL);
  ck_assert_int_eq(json_array_size(rows(r)), 1);
  ck_assert_str_eq(row_str(r, 0, "key"), "two");
  th_crash_restart(&T);
  r = view(200, path, NULL);
  ck_assert_int_eq(json_array_size(rows(r)), 1);
  ck_assert_str_eq(row_str(r, 0, "key"), "two");
  /* A stale index version is rebuilt at open. */
  ck_assert_int_eq(kz_db_sql_exec(th_db(&T), "UPDATE kv SET value='0' WHERE name='views_version'"), 0);
  ck_assert_int_eq(kz_db_sql_exec(th_db(&T), "DELETE FROM vrows"), 0);
  th_crash_restart(&T);
  r = view(200, path, NULL);
  ck_assert_int_eq(json_array_size(rows(r)), 1);
  /* An index in an older layout (version 2 clustered vrows WITHOUT
   * ROWID on its order) is dropped and rebuilt in the current one. */
  struct kz_db *db = th_db(&T);
  ck_assert_int_eq(kz_db_sql_exec(db, "DROP TABLE vrows"), 0);
  ck_assert_int_eq(kz_db_sql_exec(db, "CREATE TABLE vrows(db INTEGER NOT NULL, view TEXT NOT NULL,"
                                      " k BLOB NOT NULL, doc TEXT NOT NULL, n INTEGER NOT NULL,"
                                      " key TEXT NOT NULL, value TEXT NOT NULL,"
                                      " PRIMARY KEY(db, view, k, doc, n)) WITHOUT ROWID"),
                   0);
  ck_assert_int_eq(kz_db_sql_exec(db, "CREATE INDEX vrows_by_doc ON vrows(db, doc)"), 0);
  ck_assert_int_eq(kz_db_sql_exec(db, "UPDATE kv SET value='2' WHERE name='views_version'"), 0);
  th_crash_restart(&T);
  db = th_db(&T);
  sqlite3_stmt *st = kz_db_sql(db, "SELECT sql FROM sqlite_master WHERE name='vrows'");
  ck_assert_ptr_nonnull(st);
  ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
  ck_assert_ptr_null(strstr((const char *)sqlite3_column_text(st, 0), "WITHOUT ROWID"));
  kz_db_sql_done(db, st);
  st = kz_db_sql(db, "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('vrows_order', 'vrows_by_doc')");
  ck_assert_ptr_nonnull(st);
  ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
  ck_assert_int_eq(sqlite3_column_int(st, 0), 2);
  kz_db_sql_done(db, st);
  r = view(200, path, NULL);
  ck_assert_int_eq(json_array_size(rows(r)), 1);
  ck_assert_str_eq(row_str(r, 0, "key"), "two");
  /* Deleting the database drops its rows. */
  req_ok(200, "DELETE", "/cx", NULL);
  put("/cx", NULL);
  r = view(200, path, NULL);
  ck_assert_int_eq(json_array_size(rows(r)), 0);
}
END_TEST

static Suite *views_suite(void) {
  Suite *s = suite_create("db_views");
  TCase *tc = kz_tcase(s, "collation", 30);
  tcase_add_test(tc, test_collation_order);
  tc = kz_tcase(s, "views", 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_sip_credentials);
  tcase_add_test(tc, test_listing_by_realm);
  tcase_add_test(tc, test_callflows);
  tcase_add_test(tc, test_credentials_lookup);
  tcase_add_test(tc, test_query_params);
  tcase_add_test(tc, test_reduce);
  tcase_add_test(tc, test_missing_views);
  tcase_add_test(tc, test_index_durable_and_conflicts);
  tcase_add_test(tc, test_index_at_query_time);
  return s;
}

int main(void) { return kz_run_suite(views_suite()); }
