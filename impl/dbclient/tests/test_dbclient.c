/* test_dbclient.c — kz_dbclient against a fake CouchDB: a scripted kz_http_client that records the exact requests and answers canned responses; plus one run over the wire in the simulator. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/dbclient.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sim.h"
#include "kz_test.h"
#include "testsrv.h"

/* ------------------------------------------------------------------ */
/* The fake: a kz_http_client backend whose "server" is the test.       */

#define FAKE_MAX 16

struct fake_req {
  char method[16];
  char url[1024];
  char headers[512]; /* "Name: value\n"... */
  struct kz_buf body;
  kz_http_client_done_fn *cb;
  void *arg;
  bool cancelled, answered;
};

struct fake {
  struct kz_http_client base;
  struct fake_req reqs[FAKE_MAX];
  size_t n;
};

static int fake_request(struct kz_http_client *c, const struct kz_http_client_req *req,
                        kz_http_client_done_fn *cb, void *arg, struct kz_http_call **out) {
  struct fake *f = (struct fake *)c;
  ck_assert_uint_lt(f->n, FAKE_MAX);
  ck_assert_ptr_nonnull(req->url);
  struct fake_req *r = &f->reqs[f->n++];
  memset(r, 0, sizeof(*r));
  snprintf(r->method, sizeof(r->method), "%s", req->method);
  snprintf(r->url, sizeof(r->url), "%s", req->url);
  size_t off = 0;
  for (size_t i = 0; i < req->nheaders; i++) {
    off += (size_t)snprintf(r->headers + off, sizeof(r->headers) - off, "%.*s: %.*s\n",
                            (int)req->headers[i].name.len, req->headers[i].name.p,
                            (int)req->headers[i].value.len, req->headers[i].value.p);
  }
  if (req->body_len) ck_assert_int_eq(kz_buf_append(&r->body, req->body, req->body_len), 0);
  r->cb = cb;
  r->arg = arg;
  if (out) *out = (struct kz_http_call *)(void *)r;
  return 0;
}

static void fake_cancel(struct kz_http_client *c, struct kz_http_call *call) {
  ((struct fake_req *)(void *)call)->cancelled = true;
}

static void fake_destroy(struct kz_http_client *c) {}

static const struct kz_http_client_ops fake_ops = {fake_request, fake_cancel, fake_destroy};

static void fake_init(struct fake *f) {
  memset(f, 0, sizeof(*f));
  f->base.ops = &fake_ops;
}

static void fake_fini(struct fake *f) {
  for (size_t i = 0; i < f->n; i++) kz_buf_free(&f->reqs[i].body);
}

static struct fake_req *fake_last(struct fake *f) {
  ck_assert_uint_gt(f->n, 0);
  return &f->reqs[f->n - 1];
}

/* Answers the last request with a status and body (or a transport error
 * when status < 0). */
static void fake_reply(struct fake *f, int status, const char *ctype, const char *body) {
  struct fake_req *r = fake_last(f);
  ck_assert(!r->answered && !r->cancelled);
  r->answered = true;
  if (status < 0) {
    r->cb(r->arg, status, NULL);
    return;
  }
  struct kz_http_header h[1] = {{KZ_SLICE_LIT("Content-Type"), kz_slice_cstr(ctype)}};
  struct kz_http_client_resp resp = {.status = status, .headers = h, .nheaders = ctype ? 1 : 0};
  if (body) ck_assert_int_eq(kz_buf_append_cstr(&resp.body, body), 0);
  r->cb(r->arg, status, &resp);
  kz_buf_free(&resp.body);
}

static void reply_json(struct fake *f, int status, const char *body) {
  fake_reply(f, status, "application/json", body);
}

/* ------------------------------------------------------------------ */
/* What the callback saw.                                               */

struct got {
  int calls;
  int err, status;
  char error[64], reason[128], id[64], rev[64], ctype[64];
  char *json; /* compact dump */
  struct kz_buf data;
};

static void cpy(char *dst, size_t n, const char *s) { snprintf(dst, n, "%s", s ? s : ""); }

static void got_cb(void *arg, const struct kz_dbclient_result *r) {
  struct got *g = arg;
  g->calls++;
  g->err = r->err;
  g->status = r->status;
  cpy(g->error, sizeof(g->error), r->error);
  cpy(g->reason, sizeof(g->reason), r->reason);
  cpy(g->id, sizeof(g->id), r->id);
  cpy(g->rev, sizeof(g->rev), r->rev);
  cpy(g->ctype, sizeof(g->ctype), r->content_type);
  free(g->json);
  g->json = r->json ? json_dumps(r->json, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  kz_buf_reset(&g->data);
  if (r->len) ck_assert_int_eq(kz_buf_append(&g->data, r->data, r->len), 0);
}

static void got_reset(struct got *g) {
  free(g->json);
  kz_buf_free(&g->data);
  memset(g, 0, sizeof(*g));
}

struct world {
  struct fake f;
  struct kz_dbclient *db;
  struct got g;
};

static void world_open(struct world *w, unsigned save_retries) {
  memset(w, 0, sizeof(*w));
  fake_init(&w->f);
  struct kz_dbclient_cfg cfg = {.url = "http://db.local:5984/", .save_retries = save_retries};
  ck_assert_int_eq(kz_dbclient_new(&w->db, &w->f.base, &cfg), 0);
}

static void world_close(struct world *w) {
  kz_dbclient_free(w->db);
  fake_fini(&w->f);
  got_reset(&w->g);
}

static void assert_req(struct world *w, const char *method, const char *url, const char *body) {
  struct fake_req *r = fake_last(&w->f);
  ck_assert_str_eq(r->method, method);
  ck_assert_str_eq(r->url, url);
  if (body) {
    ck_assert_msg(kz_slice_eq_cstr(kz_buf_slice(&r->body), body), "body %.*s\nwant %s",
                  (int)r->body.len, r->body.data ? (char *)r->body.data : "", body);
  } else {
    ck_assert_uint_eq(r->body.len, 0);
  }
}

/* ------------------------------------------------------------------ */

START_TEST(errno_mapping) {
  ck_assert_int_eq(kz_dbclient_errno(200, NULL), 0);
  ck_assert_int_eq(kz_dbclient_errno(201, NULL), 0);
  ck_assert_int_eq(kz_dbclient_errno(202, NULL), 0);
  ck_assert_int_eq(kz_dbclient_errno(409, "conflict"), KZ_ECONFLICT);
  ck_assert_int_eq(kz_dbclient_errno(409, NULL), KZ_ECONFLICT);
  ck_assert_int_eq(kz_dbclient_errno(404, "not_found"), KZ_ENOENT);
  ck_assert_int_eq(kz_dbclient_errno(412, "file_exists"), KZ_EEXIST);
  ck_assert_int_eq(kz_dbclient_errno(401, "unauthorized"), KZ_EPERM);
  ck_assert_int_eq(kz_dbclient_errno(403, "forbidden"), KZ_EPERM);
  ck_assert_int_eq(kz_dbclient_errno(400, "illegal_database_name"), KZ_EINVAL);
  ck_assert_int_eq(kz_dbclient_errno(400, "bad_request"), KZ_EINVAL);
  ck_assert_int_eq(kz_dbclient_errno(400, NULL), KZ_EINVAL);
  ck_assert_int_eq(kz_dbclient_errno(413, NULL), KZ_EMSGSIZE);
  ck_assert_int_eq(kz_dbclient_errno(415, NULL), KZ_ENOTSUP);
  ck_assert_int_eq(kz_dbclient_errno(417, NULL), KZ_EPROTO);
  ck_assert_int_eq(kz_dbclient_errno(500, "unknown_error"), KZ_EIO);
  ck_assert_int_eq(kz_dbclient_errno(503, NULL), KZ_EBUSY);
  ck_assert_int_eq(kz_dbclient_errno(501, "not_implemented"), KZ_ENOTSUP);
}
END_TEST

START_TEST(databases_and_name_encoding) {
  struct world w;
  world_open(&w, 0);
  ck_assert_int_eq(kz_dbclient_db_create(w.db, "account/xx/yy/rest", got_cb, &w.g), 0);
  ck_assert_int_eq(w.g.calls, 0);
  assert_req(&w, "PUT", "http://db.local:5984/account%2Fxx%2Fyy%2Frest", NULL);
  ck_assert_ptr_nonnull(strstr(fake_last(&w.f)->headers, "Accept: application/json\n"));
  reply_json(&w.f, 201, "{\"ok\":true}");
  ck_assert_int_eq(w.g.calls, 1);
  ck_assert_int_eq(w.g.err, 0);
  ck_assert_int_eq(w.g.status, 201);
  ck_assert_str_eq(w.g.json, "{\"ok\":true}");

  ck_assert_int_eq(kz_dbclient_db_create(w.db, "account/xx/yy/rest", got_cb, &w.g), 0);
  reply_json(&w.f, 412,
             "{\"error\":\"file_exists\",\"reason\":\"The database could not be created, the file "
             "already exists.\"}");
  ck_assert_int_eq(w.g.err, KZ_EEXIST);
  ck_assert_str_eq(w.g.error, "file_exists");
  ck_assert_str_eq(w.g.reason, "The database could not be created, the file already exists.");

  /* Characters CouchDB allows in names, and what needs escaping. */
  ck_assert_int_eq(kz_dbclient_db_info(w.db, "a$b(c)+d-e_f", got_cb, &w.g), 0);
  assert_req(&w, "GET", "http://db.local:5984/a%24b%28c%29%2Bd-e_f", NULL);
  reply_json(&w.f, 404, "{\"error\":\"not_found\",\"reason\":\"Database does not exist.\"}");
  ck_assert_int_eq(w.g.err, KZ_ENOENT);
  ck_assert_str_eq(w.g.reason, "Database does not exist.");

  ck_assert_int_eq(kz_dbclient_db_delete(w.db, "accounts", got_cb, &w.g), 0);
  assert_req(&w, "DELETE", "http://db.local:5984/accounts", NULL);
  reply_json(&w.f, 200, "{\"ok\":true}");
  ck_assert_int_eq(w.g.err, 0);

  ck_assert_int_eq(kz_dbclient_db_info(w.db, "", got_cb, &w.g), KZ_EINVAL);
  ck_assert_int_eq(kz_dbclient_db_info(w.db, NULL, got_cb, &w.g), KZ_EINVAL);
  ck_assert_int_eq(kz_dbclient_db_info(w.db, "x", NULL, &w.g), KZ_EINVAL);
  ck_assert_uint_eq(w.f.n, 4);
  world_close(&w);
}
END_TEST

START_TEST(get_documents) {
  struct world w;
  world_open(&w, 0);
  ck_assert_int_eq(kz_dbclient_doc_get(w.db, "account/ab/cd/ef", "device one+x", NULL, got_cb, &w.g), 0);
  assert_req(&w, "GET", "http://db.local:5984/account%2Fab%2Fcd%2Fef/device%20one%2Bx", NULL);
  reply_json(&w.f, 200, "{\"_id\":\"device one+x\",\"_rev\":\"1-a\",\"n\":1}");
  ck_assert_int_eq(w.g.err, 0);
  ck_assert_str_eq(w.g.json, "{\"_id\":\"device one+x\",\"_rev\":\"1-a\",\"n\":1}");

  struct kz_dbclient_get_opts o = {.rev = "2-b", .conflicts = true, .revs = true};
  ck_assert_int_eq(kz_dbclient_doc_get(w.db, "db", "_design/callflows", &o, got_cb, &w.g), 0);
  assert_req(&w, "GET", "http://db.local:5984/db/_design/callflows?conflicts=true&rev=2-b&revs=true",
             NULL);
  reply_json(&w.f, 404, "{\"error\":\"not_found\",\"reason\":\"missing\"}");
  ck_assert_int_eq(w.g.err, KZ_ENOENT);
  ck_assert_str_eq(w.g.reason, "missing");

  struct kz_dbclient_get_opts all = {.open_revs_all = true};
  ck_assert_int_eq(kz_dbclient_doc_get(w.db, "db", "a/b", &all, got_cb, &w.g), 0);
  assert_req(&w, "GET", "http://db.local:5984/db/a%2Fb?open_revs=all", NULL);
  reply_json(&w.f, 200, "[{\"ok\":{\"_id\":\"a/b\",\"_rev\":\"1-x\"}},{\"missing\":\"1-y\"}]");
  ck_assert_str_eq(w.g.json, "[{\"ok\":{\"_id\":\"a/b\",\"_rev\":\"1-x\"}},{\"missing\":\"1-y\"}]");

  json_t *revs = json_pack("[ss]", "1-x", "2-y");
  struct kz_dbclient_get_opts some = {.open_revs = revs};
  ck_assert_int_eq(kz_dbclient_doc_get(w.db, "db", "_local/ck", &some, got_cb, &w.g), 0);
  assert_req(&w, "GET", "http://db.local:5984/db/_local/ck?open_revs=%5B%221-x%22%2C%222-y%22%5D", NULL);
  json_decref(revs);
  reply_json(&w.f, 200, "[]");

  /* A 2xx whose body is not JSON is a protocol error. */
  ck_assert_int_eq(kz_dbclient_doc_get(w.db, "db", "d", NULL, got_cb, &w.g), 0);
  fake_reply(&w.f, 200, "text/html", "<html>");
  ck_assert_int_eq(w.g.err, KZ_EPROTO);
  /* Transport errors carry no status. */
  ck_assert_int_eq(kz_dbclient_doc_get(w.db, "db", "d", NULL, got_cb, &w.g), 0);
  fake_reply(&w.f, KZ_ECONNREFUSED, NULL, NULL);
  ck_assert_int_eq(w.g.err, KZ_ECONNREFUSED);
  ck_assert_int_eq(w.g.status, 0);
  ck_assert_str_eq(w.g.reason, "connection refused");
  ck_assert_int_eq(w.g.calls, 6);
  world_close(&w);
}
END_TEST

START_TEST(put_and_delete_documents) {
  struct world w;
  world_open(&w, 0);
  json_t *doc = json_pack("{s:s, s:s, s:{s:i}}", "_id", "user/1", "name", "Zoë", "cfg", "x", 1);
  ck_assert_int_eq(kz_dbclient_doc_put(w.db, "account/xx", doc, got_cb, &w.g), 0);
  assert_req(&w, "PUT", "http://db.local:5984/account%2Fxx/user%2F1",
             "{\"_id\":\"user/1\",\"name\":\"Zoë\",\"cfg\":{\"x\":1}}");
  ck_assert_ptr_nonnull(strstr(fake_last(&w.f)->headers, "Content-Type: application/json\n"));
  reply_json(&w.f, 201, "{\"ok\":true,\"id\":\"user/1\",\"rev\":\"1-abc\"}");
  ck_assert_int_eq(w.g.err, 0);
  ck_assert_str_eq(w.g.id, "user/1");
  ck_assert_str_eq(w.g.rev, "1-abc");

  ck_assert_int_eq(kz_dbclient_doc_put(w.db, "account/xx", doc, got_cb, &w.g), 0);
  reply_json(&w.f, 409, "{\"error\":\"conflict\",\"reason\":\"Document update conflict.\"}");
  ck_assert_int_eq(w.g.err, KZ_ECONFLICT);
  ck_assert_int_eq(w.g.status, 409);
  ck_assert_str_eq(w.g.error, "conflict");
  ck_assert_str_eq(w.g.reason, "Document update conflict.");
  ck_assert_str_eq(w.g.rev, "");

  json_t *noid = json_pack("{s:i}", "a", 1);
  ck_assert_int_eq(kz_dbclient_doc_put(w.db, "db", noid, got_cb, &w.g), KZ_EINVAL);
  json_decref(noid);

  ck_assert_int_eq(kz_dbclient_doc_delete(w.db, "db", "user/1", "1-abc", got_cb, &w.g), 0);
  assert_req(&w, "DELETE", "http://db.local:5984/db/user%2F1?rev=1-abc", NULL);
  reply_json(&w.f, 200, "{\"ok\":true,\"id\":\"user/1\",\"rev\":\"2-def\"}");
  ck_assert_str_eq(w.g.rev, "2-def");
  ck_assert_int_eq(kz_dbclient_doc_delete(w.db, "db", "user/1", NULL, got_cb, &w.g), KZ_EINVAL);
  json_decref(doc);
  world_close(&w);
}
END_TEST

START_TEST(save_with_latest_rev) {
  struct world w;
  world_open(&w, 2);
  json_t *doc = json_pack("{s:s, s:s, s:i}", "_id", "cf", "_rev", "1-old", "v", 7);
  ck_assert_int_eq(kz_dbclient_doc_save(w.db, "db", doc, got_cb, &w.g), 0);
  assert_req(&w, "PUT", "http://db.local:5984/db/cf", "{\"_id\":\"cf\",\"_rev\":\"1-old\",\"v\":7}");
  reply_json(&w.f, 409, "{\"error\":\"conflict\",\"reason\":\"Document update conflict.\"}");
  ck_assert_int_eq(w.g.calls, 0);
  assert_req(&w, "GET", "http://db.local:5984/db/cf", NULL);
  reply_json(&w.f, 200, "{\"_id\":\"cf\",\"_rev\":\"3-cur\",\"v\":1}");
  ck_assert_int_eq(w.g.calls, 0);
  assert_req(&w, "PUT", "http://db.local:5984/db/cf", "{\"_id\":\"cf\",\"_rev\":\"3-cur\",\"v\":7}");
  reply_json(&w.f, 201, "{\"ok\":true,\"id\":\"cf\",\"rev\":\"4-new\"}");
  ck_assert_int_eq(w.g.calls, 1);
  ck_assert_int_eq(w.g.err, 0);
  ck_assert_str_eq(w.g.rev, "4-new");
  /* The caller's document is untouched. */
  ck_assert_str_eq(json_string_value(json_object_get(doc, "_rev")), "1-old");

  /* Deleted meanwhile: saved again without a _rev. */
  ck_assert_int_eq(kz_dbclient_doc_save(w.db, "db", doc, got_cb, &w.g), 0);
  reply_json(&w.f, 409, "{\"error\":\"conflict\",\"reason\":\"Document update conflict.\"}");
  reply_json(&w.f, 404, "{\"error\":\"not_found\",\"reason\":\"deleted\"}");
  assert_req(&w, "PUT", "http://db.local:5984/db/cf", "{\"_id\":\"cf\",\"v\":7}");
  reply_json(&w.f, 201, "{\"ok\":true,\"id\":\"cf\",\"rev\":\"6-again\"}");
  ck_assert_int_eq(w.g.calls, 2);
  ck_assert_str_eq(w.g.rev, "6-again");

  /* Conflicts every time: gives up after save_retries (2) refetches. */
  ck_assert_int_eq(kz_dbclient_doc_save(w.db, "db", doc, got_cb, &w.g), 0);
  for (int i = 0; i < 2; i++) {
    reply_json(&w.f, 409, "{\"error\":\"conflict\",\"reason\":\"Document update conflict.\"}");
    reply_json(&w.f, 200, "{\"_id\":\"cf\",\"_rev\":\"9-x\"}");
  }
  ck_assert_int_eq(w.g.calls, 2);
  reply_json(&w.f, 409, "{\"error\":\"conflict\",\"reason\":\"Document update conflict.\"}");
  ck_assert_int_eq(w.g.calls, 3);
  ck_assert_int_eq(w.g.err, KZ_ECONFLICT);
  ck_assert_uint_eq(w.f.n, 3 + 3 + 5);

  /* Other failures of the refetch are reported as they are. */
  ck_assert_int_eq(kz_dbclient_doc_save(w.db, "db", doc, got_cb, &w.g), 0);
  reply_json(&w.f, 409, "{\"error\":\"conflict\",\"reason\":\"Document update conflict.\"}");
  fake_reply(&w.f, KZ_ETIMEDOUT, NULL, NULL);
  ck_assert_int_eq(w.g.calls, 4);
  ck_assert_int_eq(w.g.err, KZ_ETIMEDOUT);
  json_decref(doc);
  world_close(&w);
}
END_TEST

START_TEST(bulk_docs) {
  struct world w;
  world_open(&w, 0);
  json_t *docs = json_pack("[{s:s},{s:s,s:s}]", "_id", "a", "_id", "b", "_rev", "1-b");
  ck_assert_int_eq(kz_dbclient_bulk_docs(w.db, "account/x", docs, true, got_cb, &w.g), 0);
  assert_req(&w, "POST", "http://db.local:5984/account%2Fx/_bulk_docs",
             "{\"docs\":[{\"_id\":\"a\"},{\"_id\":\"b\",\"_rev\":\"1-b\"}]}");
  reply_json(&w.f, 201,
             "[{\"ok\":true,\"id\":\"a\",\"rev\":\"1-a\"},{\"id\":\"b\",\"error\":\"conflict\","
             "\"reason\":\"Document update conflict.\"}]");
  ck_assert_int_eq(w.g.err, 0);
  ck_assert_ptr_nonnull(strstr(w.g.json, "\"error\":\"conflict\""));
  ck_assert_int_eq(kz_dbclient_bulk_docs(w.db, "db", docs, false, got_cb, &w.g), 0);
  assert_req(&w, "POST", "http://db.local:5984/db/_bulk_docs",
             "{\"docs\":[{\"_id\":\"a\"},{\"_id\":\"b\",\"_rev\":\"1-b\"}],\"new_edits\":false}");
  reply_json(&w.f, 201, "[]");
  ck_assert_int_eq(json_object_size(json_array_get(docs, 0)), 1); /* untouched */
  json_decref(docs);
  world_close(&w);
}
END_TEST

START_TEST(all_docs_and_views) {
  struct world w;
  world_open(&w, 0);
  ck_assert_int_eq(kz_dbclient_all_docs(w.db, "db", NULL, got_cb, &w.g), 0);
  assert_req(&w, "GET", "http://db.local:5984/db/_all_docs", NULL);
  reply_json(&w.f, 200, "{\"total_rows\":0,\"offset\":0,\"rows\":[]}");
  ck_assert_int_eq(w.g.err, 0);

  json_t *sk = json_string("user/a"), *ek = json_pack("[s,{}]", "user");
  struct kz_dbclient_view_opts o = {.startkey = sk, .endkey = ek, .include_docs = true,
                                    .has_limit = true, .limit = 10, .skip = 5, .descending = true,
                                    .exclusive_end = true};
  ck_assert_int_eq(kz_dbclient_all_docs(w.db, "account/a1", &o, got_cb, &w.g), 0);
  assert_req(&w, "GET",
             "http://db.local:5984/account%2Fa1/_all_docs?descending=true&endkey=%5B%22user%22%2C%7B%7D%5D"
             "&include_docs=true&inclusive_end=false&limit=10&skip=5&startkey=%22user%2Fa%22",
             NULL);
  reply_json(&w.f, 200, "{\"rows\":[]}");

  json_t *keys = json_pack("[ss]", "a", "b/c");
  struct kz_dbclient_view_opts ko = {.keys = keys, .include_docs = true};
  ck_assert_int_eq(kz_dbclient_all_docs(w.db, "db", &ko, got_cb, &w.g), 0);
  assert_req(&w, "POST", "http://db.local:5984/db/_all_docs?include_docs=true",
             "{\"keys\":[\"a\",\"b/c\"]}");
  reply_json(&w.f, 200, "{\"rows\":[]}");

  json_t *key = json_pack("[si]", "acct", 3);
  struct kz_dbclient_view_opts vo = {.key = key, .reduce = KZ_DBCLIENT_FALSE, .stale = "ok",
                                     .update_seq = true, .conflicts = true};
  ck_assert_int_eq(kz_dbclient_view(w.db, "account/xx", "callflows", "listing_by_number", &vo,
                                    got_cb, &w.g), 0);
  assert_req(&w, "GET",
             "http://db.local:5984/account%2Fxx/_design/callflows/_view/listing_by_number"
             "?conflicts=true&key=%5B%22acct%22%2C3%5D&reduce=false&stale=ok&update_seq=true",
             NULL);
  reply_json(&w.f, 200, "{\"total_rows\":1,\"offset\":0,\"rows\":[{\"id\":\"x\",\"key\":[\"acct\",3],\"value\":null}]}");
  ck_assert_ptr_nonnull(strstr(w.g.json, "\"rows\":[{\"id\":\"x\""));

  struct kz_dbclient_view_opts go = {.group = true, .has_group_level = true, .group_level = 2,
                                     .reduce = KZ_DBCLIENT_TRUE, .startkey_docid = "a b",
                                     .endkey_docid = "z"};
  ck_assert_int_eq(kz_dbclient_view(w.db, "db", "cdrs", "crossbar_listing", &go, got_cb, &w.g), 0);
  assert_req(&w, "GET",
             "http://db.local:5984/db/_design/cdrs/_view/crossbar_listing?endkey_docid=z&group=true"
             "&group_level=2&reduce=true&startkey_docid=a%20b",
             NULL);
  reply_json(&w.f, 400, "{\"error\":\"query_parse_error\",\"reason\":\"bad group\"}");
  ck_assert_int_eq(w.g.err, KZ_EINVAL);
  ck_assert_str_eq(w.g.reason, "bad group");

  ck_assert_int_eq(kz_dbclient_view(w.db, "db", "d", "v", &ko, got_cb, &w.g), 0);
  assert_req(&w, "POST", "http://db.local:5984/db/_design/d/_view/v?include_docs=true",
             "{\"keys\":[\"a\",\"b/c\"]}");
  reply_json(&w.f, 200, "{\"rows\":[]}");
  struct kz_dbclient_view_opts bad = {.keys = sk};
  ck_assert_int_eq(kz_dbclient_view(w.db, "db", "d", "v", &bad, got_cb, &w.g), KZ_EINVAL);
  json_decref(sk);
  json_decref(ek);
  json_decref(keys);
  json_decref(key);
  world_close(&w);
}
END_TEST

START_TEST(attachments) {
  struct world w;
  world_open(&w, 0);
  const char wav[] = "RIFF\0\0\0\0WAVEfmt ";
  ck_assert_int_eq(kz_dbclient_att_put(w.db, "account/m", "media1", "1-a", "prompts/hello.wav",
                                       "audio/x-wav", wav, sizeof(wav) - 1, got_cb, &w.g), 0);
  struct fake_req *r = fake_last(&w.f);
  ck_assert_str_eq(r->method, "PUT");
  ck_assert_str_eq(r->url, "http://db.local:5984/account%2Fm/media1/prompts/hello.wav?rev=1-a");
  ck_assert_uint_eq(r->body.len, sizeof(wav) - 1);
  ck_assert_int_eq(memcmp(r->body.data, wav, sizeof(wav) - 1), 0);
  ck_assert_ptr_nonnull(strstr(r->headers, "Content-Type: audio/x-wav\n"));
  reply_json(&w.f, 201, "{\"ok\":true,\"id\":\"media1\",\"rev\":\"2-b\"}");
  ck_assert_str_eq(w.g.rev, "2-b");

  ck_assert_int_eq(kz_dbclient_att_get(w.db, "account/m", "media1", "prompts/hello.wav", got_cb, &w.g), 0);
  assert_req(&w, "GET", "http://db.local:5984/account%2Fm/media1/prompts/hello.wav", NULL);
  ck_assert_ptr_null(strstr(fake_last(&w.f)->headers, "Accept:"));
  fake_reply(&w.f, 200, "audio/x-wav", "RIFFdata");
  ck_assert_int_eq(w.g.err, 0);
  ck_assert_str_eq(w.g.ctype, "audio/x-wav");
  ck_assert(kz_slice_eq_cstr(kz_buf_slice(&w.g.data), "RIFFdata"));
  ck_assert_ptr_null(w.g.json);

  ck_assert_int_eq(kz_dbclient_att_get(w.db, "db", "d", "missing.mp3", got_cb, &w.g), 0);
  reply_json(&w.f, 404, "{\"error\":\"not_found\",\"reason\":\"Document is missing attachment\"}");
  ck_assert_int_eq(w.g.err, KZ_ENOENT);
  ck_assert_str_eq(w.g.reason, "Document is missing attachment");
  world_close(&w);
}
END_TEST

START_TEST(changes_feed) {
  struct world w;
  world_open(&w, 0);
  ck_assert_int_eq(kz_dbclient_changes(w.db, "account/c", NULL, got_cb, &w.g), 0);
  assert_req(&w, "GET", "http://db.local:5984/account%2Fc/_changes?feed=normal", NULL);
  reply_json(&w.f, 200, "{\"results\":[],\"last_seq\":0}");
  ck_assert_int_eq(w.g.err, 0);
  struct kz_dbclient_changes_opts o = {.since = "12-g1AAAA", .include_docs = true, .has_limit = true,
                                       .limit = 50, .all_revs = true};
  ck_assert_int_eq(kz_dbclient_changes(w.db, "db", &o, got_cb, &w.g), 0);
  assert_req(&w, "GET",
             "http://db.local:5984/db/_changes?feed=normal&include_docs=true&limit=50&since=12-g1AAAA"
             "&style=all_docs",
             NULL);
  reply_json(&w.f, 200,
             "{\"results\":[{\"seq\":13,\"id\":\"d\",\"changes\":[{\"rev\":\"1-a\"}],\"doc\":{\"_id\":\"d\"}}],"
             "\"last_seq\":13}");
  ck_assert_ptr_nonnull(strstr(w.g.json, "\"last_seq\":13"));
  world_close(&w);
}
END_TEST

static void free_in_cb(void *arg, const struct kz_dbclient_result *r) {
  struct kz_dbclient **db = arg;
  kz_dbclient_free(*db);
  *db = NULL;
}

START_TEST(free_cancels_in_flight) {
  struct world w;
  world_open(&w, 0);
  ck_assert_int_eq(kz_dbclient_db_info(w.db, "a", got_cb, &w.g), 0);
  json_t *doc = json_pack("{s:s}", "_id", "x");
  ck_assert_int_eq(kz_dbclient_doc_save(w.db, "b", doc, got_cb, &w.g), 0);
  kz_dbclient_free(w.db);
  w.db = NULL;
  ck_assert(w.f.reqs[0].cancelled && w.f.reqs[1].cancelled);
  ck_assert_int_eq(w.g.calls, 0);

  /* Freeing from inside a callback cancels the others. */
  struct kz_dbclient_cfg cfg = {.url = "http://db.local:5984"};
  ck_assert_int_eq(kz_dbclient_new(&w.db, &w.f.base, &cfg), 0);
  ck_assert_int_eq(kz_dbclient_db_info(w.db, "a", free_in_cb, &w.db), 0);
  ck_assert_int_eq(kz_dbclient_db_info(w.db, "b", got_cb, &w.g), 0);
  struct fake_req *first = &w.f.reqs[2];
  first->answered = true;
  struct kz_http_client_resp resp = {.status = 200};
  first->cb(first->arg, 200, &resp);
  ck_assert_ptr_null(w.db);
  ck_assert(w.f.reqs[3].cancelled);
  ck_assert_int_eq(w.g.calls, 0);
  ck_assert_int_eq(kz_dbclient_new(&w.db, &w.f.base, &(struct kz_dbclient_cfg){.url = "https://x"}),
                   KZ_EINVAL);
  json_decref(doc);
  world_close(&w);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Over the wire: the stream backend in the simulator, the canned server */

struct wire {
  struct kz_http_client *http;
  struct kz_dbclient *db;
};

static int wire_start(struct kz_env *env, const void *cfg, void **instance) {
  struct wire *w = kz_calloc(1, sizeof(*w));
  struct kz_dbclient_cfg dc = {.url = "http://admin:pw@10.0.0.1:5984"};
  if (!w || kz_http_client_stream_new(&w->http, env, NULL) || kz_dbclient_new(&w->db, w->http, &dc))
    return KZ_ENOMEM;
  *instance = w;
  return 0;
}

static void wire_stop(void *instance) {
  struct wire *w = instance;
  kz_dbclient_free(w->db);
  kz_http_client_free(w->http);
  kz_free(w);
}

static int push_json(struct tsrv *srv, int status, const char *body) {
  return tsrv_push(srv, status, "Content-Type: application/json\r\n", body, strlen(body));
}

START_TEST(over_the_wire_in_simulator) {
  static const struct kz_sim_app srv_app = {"couch-fake", tsrv_app_start, tsrv_app_stop};
  static const struct kz_sim_app cli_app = {"apps", wire_start, wire_stop};
  struct kz_sim *sim = NULL;
  ck_assert_int_eq(kz_sim_new(&sim, 7), 0);
  struct kz_addr as = kz_addr_v4(0x0a000001u, 0), ac = kz_addr_v4(0x0a000002u, 0);
  struct kz_addr listen = kz_addr_v4(0x0a000001u, 5984);
  struct kz_sim_host *hs, *hc;
  struct kz_sim_proc *ps, *pc;
  ck_assert_int_eq(kz_sim_host_add(sim, "db1", &as, &hs), 0);
  ck_assert_int_eq(kz_sim_host_add(sim, "app1", &ac, &hc), 0);
  ck_assert_int_eq(kz_sim_proc_add(hs, "couch", &srv_app, &listen, &ps), 0);
  ck_assert_int_eq(kz_sim_proc_add(hc, "apps", &cli_app, NULL, &pc), 0);
  struct tsrv *srv = kz_sim_proc_instance(ps);
  struct wire *w = kz_sim_proc_instance(pc);
  ck_assert_int_eq(push_json(srv, 409, "{\"error\":\"conflict\",\"reason\":\"Document update conflict.\"}"), 0);
  ck_assert_int_eq(push_json(srv, 200, "{\"_id\":\"user/1\",\"_rev\":\"2-b\"}"), 0);
  ck_assert_int_eq(push_json(srv, 201, "{\"ok\":true,\"id\":\"user/1\",\"rev\":\"3-c\"}"), 0);
  struct got g = {0};
  json_t *doc = json_pack("{s:s,s:i}", "_id", "user/1", "n", 1);
  ck_assert_int_eq(kz_dbclient_doc_save(w->db, "account/ab/cd/rest", doc, got_cb, &g), 0);
  for (int i = 0; i < 10000 && !g.calls; i++) ck_assert_int_ge(kz_sim_step(sim), 0);
  ck_assert_int_eq(g.calls, 1);
  ck_assert_int_eq(g.err, 0);
  ck_assert_str_eq(g.rev, "3-c");
  ck_assert_uint_eq(tsrv_nreqs(srv), 3);
  const struct tsrv_req *q = tsrv_req(srv, 0);
  ck_assert_str_eq(q->method, "PUT");
  ck_assert_str_eq(q->target, "/account%2Fab%2Fcd%2Frest/user%2F1");
  ck_assert(kz_slice_eq_cstr(kz_buf_slice(&q->body), "{\"_id\":\"user/1\",\"n\":1}"));
  ck_assert_ptr_nonnull(strstr(q->headers, "Host: 10.0.0.1:5984\n"));
  ck_assert_ptr_nonnull(strstr(q->headers, "Authorization: Basic YWRtaW46cHc=\n"));
  ck_assert_ptr_nonnull(strstr(q->headers, "Content-Type: application/json\n"));
  q = tsrv_req(srv, 1);
  ck_assert_str_eq(q->method, "GET");
  ck_assert_str_eq(q->target, "/account%2Fab%2Fcd%2Frest/user%2F1");
  q = tsrv_req(srv, 2);
  ck_assert(kz_slice_eq_cstr(kz_buf_slice(&q->body), "{\"_id\":\"user/1\",\"n\":1,\"_rev\":\"2-b\"}"));
  ck_assert_uint_eq(tsrv_stats(srv)->accepted, 1); /* one kept-alive connection */
  json_decref(doc);
  got_reset(&g);
  kz_sim_free(sim);
}
END_TEST

int main(void) {
  Suite *s = suite_create("kz_dbclient");
  TCase *tc = kz_tcase(s, "fake-couch", 30);
  tcase_add_test(tc, errno_mapping);
  tcase_add_test(tc, databases_and_name_encoding);
  tcase_add_test(tc, get_documents);
  tcase_add_test(tc, put_and_delete_documents);
  tcase_add_test(tc, save_with_latest_rev);
  tcase_add_test(tc, bulk_docs);
  tcase_add_test(tc, all_docs_and_views);
  tcase_add_test(tc, attachments);
  tcase_add_test(tc, changes_feed);
  tcase_add_test(tc, free_cancels_in_flight);
  tc = kz_tcase(s, "wire", 30);
  tcase_add_test(tc, over_the_wire_in_simulator);
  return kz_run_suite(s);
}
