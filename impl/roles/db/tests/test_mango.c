/* test_mango.c — Mango queries through the simulator: every selector operator, fields, sort with json indexes, paging by bookmark, _index management. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "db_harness.h"
#include "kz/mem.h"
#include "kz_test.h"

static struct th T;

/* Kazoo-shaped documents: devices, users, callflows. */
static const char *const seed_docs =
    "{\"docs\":["
    "{\"_id\":\"d1\",\"pvt_type\":\"device\",\"name\":\"Desk 1\",\"enabled\":true,\"sip\":{\"username\":\"u1\",\"realm\":\"a.com\"},"
    "\"codecs\":[\"PCMU\",\"PCMA\"],\"weight\":10},"
    "{\"_id\":\"d2\",\"pvt_type\":\"device\",\"name\":\"desk 2\",\"enabled\":false,\"sip\":{\"username\":\"u2\",\"realm\":\"b.com\"},"
    "\"codecs\":[\"OPUS\"],\"weight\":25},"
    "{\"_id\":\"d3\",\"pvt_type\":\"device\",\"name\":\"Phone\",\"sip\":{\"username\":\"u3\",\"realm\":\"a.com\"},\"weight\":-7},"
    "{\"_id\":\"u1\",\"pvt_type\":\"user\",\"first_name\":\"Ann\",\"tags\":[{\"k\":\"vip\",\"n\":3},{\"k\":\"x\",\"n\":1}],\"weight\":3.5},"
    "{\"_id\":\"cf1\",\"pvt_type\":\"callflow\",\"numbers\":[\"1001\",\"1002\"],\"dot.key\":1},"
    "{\"_id\":\"n1\",\"pvt_type\":null}"
    "]}";

static void setup(void) {
  th_init(&T, 11, NULL);
  ck_assert_int_eq(th_req(&T, "PUT", "/m", NULL)->status, 201);
  ck_assert_int_eq(th_req(&T, "POST", "/m/_bulk_docs", seed_docs)->status, 201);
}
static void teardown(void) { th_free(&T); }

static struct th_resp *find(int status, const char *body) {
  struct th_resp *r = th_req(&T, "POST", "/m/_find", body);
  ck_assert_ptr_nonnull(r);
  ck_assert_msg(r->status == status, "_find %s: %d %.*s", body, r->status, (int)r->body.len, (const char *)r->body.data);
  return r;
}

/* The ids _find returns, comma-joined. */
static const char *ids(const char *selector_and_opts) {
  static char out[512];
  char body[1024];
  snprintf(body, sizeof body, "{%s}", selector_and_opts);
  struct th_resp *r = find(200, body);
  json_t *docs = json_object_get(r->json, "docs");
  out[0] = 0;
  size_t i;
  json_t *d;
  json_array_foreach(docs, i, d) {
    if (i) strcat(out, ",");
    const char *id = json_string_value(json_object_get(d, "_id"));
    strncat(out, id ? id : "?", sizeof out - strlen(out) - 2);
  }
  return out;
}

START_TEST(test_selector_operators) {
  ck_assert_str_eq(ids("\"selector\":{\"pvt_type\":\"device\"}"), "d1,d2,d3");
  ck_assert_str_eq(ids("\"selector\":{\"pvt_type\":{\"$eq\":\"device\"},\"enabled\":true}"), "d1");
  ck_assert_str_eq(ids("\"selector\":{\"pvt_type\":{\"$ne\":\"device\"}}"), "cf1,n1,u1");
  ck_assert_str_eq(ids("\"selector\":{\"weight\":{\"$gt\":3.5}}"), "d1,d2");
  ck_assert_str_eq(ids("\"selector\":{\"weight\":{\"$gte\":3.5}}"), "d1,d2,u1");
  ck_assert_str_eq(ids("\"selector\":{\"weight\":{\"$lt\":10}}"), "d3,u1");
  ck_assert_str_eq(ids("\"selector\":{\"weight\":{\"$lte\":10,\"$gt\":0}}"), "d1,u1");
  ck_assert_str_eq(ids("\"selector\":{\"sip.realm\":{\"$in\":[\"b.com\",\"c.com\"]}}"), "d2");
  ck_assert_str_eq(ids("\"selector\":{\"codecs\":{\"$in\":[\"PCMA\"]}}"), "d1");
  ck_assert_str_eq(ids("\"selector\":{\"pvt_type\":\"device\",\"sip.realm\":{\"$nin\":[\"a.com\"]}}"), "d2");
  ck_assert_str_eq(ids("\"selector\":{\"enabled\":{\"$exists\":true}}"), "d1,d2");
  ck_assert_str_eq(ids("\"selector\":{\"pvt_type\":\"device\",\"enabled\":{\"$exists\":false}}"), "d3");
  ck_assert_str_eq(ids("\"selector\":{\"pvt_type\":{\"$type\":\"null\"}}"), "n1");
  ck_assert_str_eq(ids("\"selector\":{\"weight\":{\"$type\":\"number\"}}"), "d1,d2,d3,u1");
  ck_assert_str_eq(ids("\"selector\":{\"$and\":[{\"pvt_type\":\"device\"},{\"weight\":{\"$gt\":0}}]}"), "d1,d2");
  ck_assert_str_eq(ids("\"selector\":{\"$or\":[{\"_id\":\"u1\"},{\"numbers\":{\"$size\":2}}]}"), "cf1,u1");
  ck_assert_str_eq(ids("\"selector\":{\"$nor\":[{\"pvt_type\":\"device\"},{\"pvt_type\":\"user\"}]}"), "cf1,n1");
  ck_assert_str_eq(ids("\"selector\":{\"pvt_type\":\"device\",\"$not\":{\"enabled\":true}}"), "d2,d3");
  ck_assert_str_eq(ids("\"selector\":{\"codecs\":{\"$all\":[\"PCMA\",\"PCMU\"]}}"), "d1");
  ck_assert_str_eq(ids("\"selector\":{\"codecs\":{\"$all\":[\"PCMA\",\"OPUS\"]}}"), "");
  ck_assert_str_eq(ids("\"selector\":{\"tags\":{\"$elemMatch\":{\"k\":\"vip\",\"n\":{\"$gte\":2}}}}"), "u1");
  ck_assert_str_eq(ids("\"selector\":{\"codecs\":{\"$elemMatch\":{\"$eq\":\"OPUS\"}}}"), "d2");
  ck_assert_str_eq(ids("\"selector\":{\"tags\":{\"$allMatch\":{\"n\":{\"$gt\":0}}}}"), "u1");
  ck_assert_str_eq(ids("\"selector\":{\"name\":{\"$regex\":\"^[Dd]esk [0-9]$\"}}"), "d1,d2");
  ck_assert_str_eq(ids("\"selector\":{\"name\":{\"$regex\":\"^\\\\w+\\\\s\\\\d$\"}}"), "d1,d2");
  ck_assert_str_eq(ids("\"selector\":{\"sip.username\":{\"$regex\":\"[\\\\d]$\"}}"), "d1,d2,d3");
  ck_assert_str_eq(ids("\"selector\":{\"weight\":{\"$mod\":[5,0]}}"), "d1,d2");
  ck_assert_str_eq(ids("\"selector\":{\"weight\":{\"$mod\":[5,-2]}}"), "d3");
  ck_assert_str_eq(ids("\"selector\":{\"numbers\":{\"$size\":2}}"), "cf1");
  /* Implicit nesting, escaped dots, $beginsWith. */
  ck_assert_str_eq(ids("\"selector\":{\"sip\":{\"realm\":\"a.com\"}}"), "d1,d3");
  ck_assert_str_eq(ids("\"selector\":{\"dot\\\\.key\":1}"), "cf1");
  ck_assert_str_eq(ids("\"selector\":{\"sip.username\":{\"$beginsWith\":\"u\"},\"sip.realm\":\"a.com\"}"), "d1,d3");
  /* Collation: "desk 2" sorts after "Desk 1" (case is a tie-breaker). */
  ck_assert_str_eq(ids("\"selector\":{\"name\":{\"$gt\":\"Desk 1\"}}"), "d2,d3");
  ck_assert_str_eq(ids("\"selector\":{\"_id\":{\"$gt\":null}}"), "cf1,d1,d2,d3,n1,u1");
}
END_TEST

START_TEST(test_find_errors) {
  struct th_resp *r = find(400, "{}");
  ck_assert_str_eq(th_str(r, "error"), "missing_required_key");
  r = find(400, "{\"selector\":{\"a\":{\"$bogus\":1}}}");
  ck_assert_str_eq(th_str(r, "error"), "invalid_operator");
  r = find(400, "{\"selector\":{\"a\":{\"$regex\":\"(\"}}}");
  ck_assert_str_eq(th_str(r, "error"), "bad_arg");
  r = find(400, "{\"selector\":{\"a\":{\"$in\":3}}}");
  ck_assert_str_eq(th_str(r, "error"), "bad_arg");
  r = find(400, "{\"selector\":{\"a\":{\"$mod\":[0,1]}}}");
  r = find(400, "{\"selector\":{\"$or\":{}}}");
  r = find(400, "{\"selector\":{},\"limit\":-1}");
  r = find(400, "{\"selector\":{},\"sort\":[\"name\"]}");
  ck_assert_str_eq(th_str(r, "error"), "no_usable_index");
  r = find(400, "{\"selector\":{},\"sort\":[{\"a\":\"asc\"},{\"b\":\"desc\"}]}");
  ck_assert_str_eq(th_str(r, "error"), "unsupported_mixed_sort");
  r = find(400, "{\"selector\":{},\"bookmark\":\"!!\"}");
  ck_assert_int_eq(th_req(&T, "GET", "/m/_find", NULL)->status, 405);
}
END_TEST

START_TEST(test_fields_paging_stats) {
  struct th_resp *r = find(200, "{\"selector\":{\"pvt_type\":\"device\"},\"fields\":[\"_id\",\"sip.realm\",\"nope\"]}");
  json_t *d0 = json_array_get(json_object_get(r->json, "docs"), 0);
  ck_assert_int_eq(json_object_size(d0), 2);
  ck_assert_str_eq(json_string_value(json_object_get(d0, "_id")), "d1");
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(d0, "sip"), "realm")), "a.com");
  ck_assert_ptr_nonnull(json_object_get(r->json, "warning"));
  /* Paging: limit 2, then follow the bookmark. */
  ck_assert_str_eq(ids("\"selector\":{},\"limit\":2,\"skip\":1"), "d1,d2");
  r = find(200, "{\"selector\":{},\"limit\":4}");
  ck_assert_int_eq(json_array_size(json_object_get(r->json, "docs")), 4);
  char body[256];
  snprintf(body, sizeof body, "{\"selector\":{},\"limit\":4,\"bookmark\":\"%s\",\"execution_stats\":true}",
           th_str(r, "bookmark"));
  r = find(200, body);
  json_t *docs = json_object_get(r->json, "docs");
  ck_assert_int_eq(json_array_size(docs), 2);
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(docs, 0), "_id")), "n1");
  json_t *st = json_object_get(r->json, "execution_stats");
  ck_assert_int_eq(json_integer_value(json_object_get(st, "total_docs_examined")), 6);
  ck_assert_int_eq(json_integer_value(json_object_get(st, "results_returned")), 2);
  /* Default limit 25; deleted docs and design docs never match. */
  ck_assert_int_eq(th_req(&T, "PUT", "/m/_design/x", "{\"views\":{}}")->status, 201);
  r = th_req(&T, "GET", "/m/n1", NULL);
  char target[256];
  snprintf(target, sizeof target, "/m/n1?rev=%s", th_str(r, "_rev"));
  ck_assert_int_eq(th_req(&T, "DELETE", target, NULL)->status, 200);
  ck_assert_str_eq(ids("\"selector\":{}"), "cf1,d1,d2,d3,u1");
  ck_assert_str_eq(ids("\"selector\":{},\"sort\":[{\"_id\":\"desc\"}],\"limit\":2"), "u1,d3");
}
END_TEST

START_TEST(test_indexes_and_sort) {
  struct th_resp *r = th_req(&T, "POST", "/m/_index", "{\"index\":{\"fields\":[\"weight\"]},\"name\":\"by_weight\",\"ddoc\":\"w\"}");
  ck_assert_int_eq(r->status, 200);
  ck_assert_str_eq(th_str(r, "result"), "created");
  ck_assert_str_eq(th_str(r, "id"), "_design/w");
  r = th_req(&T, "POST", "/m/_index", "{\"index\":{\"fields\":[\"weight\"]},\"name\":\"by_weight\",\"ddoc\":\"w\"}");
  ck_assert_str_eq(th_str(r, "result"), "exists");
  r = th_req(&T, "POST", "/m/_index", "{\"index\":{\"fields\":[{\"name\":\"asc\"}]}}");
  ck_assert_str_eq(th_str(r, "result"), "created");
  char name_ddoc[128];
  snprintf(name_ddoc, sizeof name_ddoc, "%s", th_str(r, "id"));
  ck_assert_int_eq(th_req(&T, "POST", "/m/_index", "{\"index\":{\"fields\":[]}}")->status, 400);
  ck_assert_int_eq(th_req(&T, "POST", "/m/_index", "{\"index\":{},\"type\":\"text\"}")->status, 400);
  r = th_req(&T, "GET", "/m/_index", NULL);
  ck_assert_int_eq(r->status, 200);
  ck_assert_int_eq(th_int(r, "total_rows"), 3);
  json_t *ix = json_object_get(r->json, "indexes");
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(ix, 0), "name")), "_all_docs");
  /* The index is a design document, stored (and replicated) as such. */
  r = th_req(&T, "GET", "/m/_design/w", NULL);
  ck_assert_int_eq(r->status, 200);
  ck_assert_str_eq(th_str(r, "language"), "query");
  /* Sorting by an indexed field; docs without it are not in the index. */
  ck_assert_str_eq(ids("\"selector\":{\"weight\":{\"$gt\":null}},\"sort\":[\"weight\"]"), "d3,u1,d1,d2");
  ck_assert_str_eq(ids("\"selector\":{},\"sort\":[{\"weight\":\"desc\"}],\"limit\":2"), "d2,d1");
  ck_assert_str_eq(ids("\"selector\":{\"name\":{\"$gt\":null}},\"sort\":[\"name\"]"), "d1,d2,d3");
  /* A selection on the indexed field returns index order, no warning. */
  r = find(200, "{\"selector\":{\"weight\":{\"$lt\":20}}}");
  ck_assert_ptr_null(json_object_get(r->json, "warning"));
  ck_assert_str_eq(ids("\"selector\":{\"weight\":{\"$lt\":20}}"), "d3,u1,d1");
  r = th_req(&T, "POST", "/m/_explain", "{\"selector\":{\"weight\":{\"$lt\":20}}}");
  ck_assert_int_eq(r->status, 200);
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r->json, "index"), "name")), "by_weight");
  /* Deleting indexes. */
  ck_assert_int_eq(th_req(&T, "DELETE", "/m/_index/w/json/by_weight", NULL)->status, 200);
  ck_assert_int_eq(th_req(&T, "DELETE", "/m/_index/w/json/by_weight", NULL)->status, 404);
  ck_assert_int_eq(th_req(&T, "GET", "/m/_design/w", NULL)->status, 404);
  char target[256];
  ck_assert_int_lt(snprintf(target, sizeof target, "/m/_index/%s/json/%s", name_ddoc, name_ddoc + 8),
                   (int)sizeof target);
  ck_assert_int_eq(th_req(&T, "DELETE", target, NULL)->status, 200);
  r = th_req(&T, "GET", "/m/_index", NULL);
  ck_assert_int_eq(th_int(r, "total_rows"), 1);
  find(400, "{\"selector\":{},\"sort\":[\"weight\"]}");
}
END_TEST

static Suite *mango_suite(void) {
  Suite *s = suite_create("db_mango");
  TCase *tc = kz_tcase(s, "mango", 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_selector_operators);
  tcase_add_test(tc, test_find_errors);
  tcase_add_test(tc, test_fields_paging_stats);
  tcase_add_test(tc, test_indexes_and_sort);
  return s;
}

int main(void) { return kz_run_suite(mango_suite()); }
