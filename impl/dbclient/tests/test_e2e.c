/* test_e2e.c — kz_dbclient end to end against the db role (kz_db) in the simulator: databases, documents, conflicts, save, bulk, all_docs, attachments, changes. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/db.h"
#include "kz/dbclient.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sim.h"
#include "kz_test.h"

struct got {
  int calls;
  int err, status;
  char reason[160], rev[64], ctype[64];
  json_t *json;
  struct kz_buf data;
};

static void got_cb(void *arg, const struct kz_dbclient_result *r) {
  struct got *g = arg;
  g->calls++;
  g->err = r->err;
  g->status = r->status;
  snprintf(g->reason, sizeof(g->reason), "%s", r->reason ? r->reason : "");
  snprintf(g->rev, sizeof(g->rev), "%s", r->rev ? r->rev : "");
  snprintf(g->ctype, sizeof(g->ctype), "%s", r->content_type ? r->content_type : "");
  if (g->json) json_decref(g->json);
  g->json = r->json ? json_incref(r->json) : NULL;
  kz_buf_reset(&g->data);
  if (r->len) kz_buf_append(&g->data, r->data, r->len);
}

struct app {
  struct kz_http_client *http;
  struct kz_dbclient *db;
};

static int app_start(struct kz_env *env, const void *cfg, void **instance) {
  struct app *a = kz_calloc(1, sizeof(*a));
  struct kz_dbclient_cfg dc = {.url = "http://10.0.0.1:5984"};
  if (!a || kz_http_client_stream_new(&a->http, env, NULL) || kz_dbclient_new(&a->db, a->http, &dc))
    return KZ_ENOMEM;
  *instance = a;
  return 0;
}

static void app_stop(void *instance) {
  struct app *a = instance;
  kz_dbclient_free(a->db);
  kz_http_client_free(a->http);
  kz_free(a);
}

struct e2e {
  struct kz_sim *sim;
  struct app *app;
  struct got g;
  struct kz_db_cfg dbcfg;
};

static void e2e_open(struct e2e *e) {
  static const struct kz_sim_app db_app = {"db", kz_db_app_start, kz_db_app_stop};
  static const struct kz_sim_app apps = {"apps", app_start, app_stop};
  memset(e, 0, sizeof(*e));
  ck_assert_int_eq(kz_sim_new(&e->sim, 11), 0);
  struct kz_addr ad = kz_addr_v4(0x0a000001u, 0), aa = kz_addr_v4(0x0a000002u, 0);
  struct kz_sim_host *hd, *ha;
  struct kz_sim_proc *pa;
  ck_assert_int_eq(kz_sim_host_add(e->sim, "db1", &ad, &hd), 0);
  ck_assert_int_eq(kz_sim_host_add(e->sim, "app1", &aa, &ha), 0);
  e->dbcfg.listen = kz_addr_v4(0x0a000001u, 5984);
  ck_assert_int_eq(kz_sim_proc_add(hd, "db", &db_app, &e->dbcfg, NULL), 0);
  ck_assert_int_eq(kz_sim_proc_add(ha, "apps", &apps, NULL, &pa), 0);
  e->app = kz_sim_proc_instance(pa);
}

/* Runs the simulator until the pending call answered. */
static void wait_done(struct e2e *e, int rc) {
  ck_assert_int_eq(rc, 0);
  int before = e->g.calls;
  for (int i = 0; i < 100000 && e->g.calls == before; i++) ck_assert_int_ge(kz_sim_step(e->sim), 0);
  ck_assert_int_eq(e->g.calls, before + 1);
}

static void e2e_close(struct e2e *e) {
  if (e->g.json) json_decref(e->g.json);
  kz_buf_free(&e->g.data);
  kz_sim_free(e->sim);
}

#define DB "account/ab/cd/0123456789"

static json_int_t jint(const json_t *o, const char *k) { return json_integer_value(json_object_get(o, k)); }
static const char *jstr(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

START_TEST(databases_documents_conflicts) {
  struct e2e e;
  e2e_open(&e);
  struct kz_dbclient *db = e.app->db;
  wait_done(&e, kz_dbclient_db_create(db, DB, got_cb, &e.g));
  ck_assert_msg(e.g.err == 0, "create: %s %s", kz_err_name(e.g.err), e.g.reason);
  wait_done(&e, kz_dbclient_db_create(db, DB, got_cb, &e.g));
  ck_assert_int_eq(e.g.err, KZ_EEXIST);
  ck_assert_int_eq(e.g.status, 412);
  wait_done(&e, kz_dbclient_db_info(db, DB, got_cb, &e.g));
  ck_assert_int_eq(e.g.err, 0);
  ck_assert_str_eq(jstr(e.g.json, "db_name"), DB);
  ck_assert_int_eq(jint(e.g.json, "doc_count"), 0);

  json_t *doc = json_pack("{s:s,s:i}", "_id", "user/1", "n", 1);
  wait_done(&e, kz_dbclient_doc_put(db, DB, doc, got_cb, &e.g));
  ck_assert_msg(e.g.err == 0, "put: %s %s", kz_err_name(e.g.err), e.g.reason);
  ck_assert_int_eq(strncmp(e.g.rev, "1-", 2), 0);
  char rev1[64];
  snprintf(rev1, sizeof(rev1), "%s", e.g.rev);
  /* The same document again without its _rev: a conflict. */
  wait_done(&e, kz_dbclient_doc_put(db, DB, doc, got_cb, &e.g));
  ck_assert_int_eq(e.g.err, KZ_ECONFLICT);
  ck_assert_int_eq(e.g.status, 409);
  ck_assert_str_ne(e.g.reason, "");
  wait_done(&e, kz_dbclient_doc_get(db, DB, "user/1", NULL, got_cb, &e.g));
  ck_assert_int_eq(e.g.err, 0);
  ck_assert_str_eq(jstr(e.g.json, "_rev"), rev1);
  ck_assert_int_eq(jint(e.g.json, "n"), 1);

  /* save with the latest rev: no _rev given, it still lands. */
  json_object_set_new(doc, "n", json_integer(2));
  wait_done(&e, kz_dbclient_doc_save(db, DB, doc, got_cb, &e.g));
  ck_assert_msg(e.g.err == 0, "save: %s %s", kz_err_name(e.g.err), e.g.reason);
  ck_assert_int_eq(strncmp(e.g.rev, "2-", 2), 0);
  char rev2[64];
  snprintf(rev2, sizeof(rev2), "%s", e.g.rev);
  struct kz_dbclient_get_opts o = {.rev = rev1};
  wait_done(&e, kz_dbclient_doc_get(db, DB, "user/1", &o, got_cb, &e.g));
  ck_assert_int_eq(e.g.err, 0);
  ck_assert_int_eq(jint(e.g.json, "n"), 1);
  struct kz_dbclient_get_opts all = {.open_revs_all = true};
  wait_done(&e, kz_dbclient_doc_get(db, DB, "user/1", &all, got_cb, &e.g));
  ck_assert_int_eq(e.g.err, 0);
  ck_assert(json_is_array(e.g.json));
  ck_assert_int_eq(json_array_size(e.g.json), 1);
  ck_assert_str_eq(jstr(json_object_get(json_array_get(e.g.json, 0), "ok"), "_rev"), rev2);
  struct kz_dbclient_get_opts cf = {.conflicts = true};
  wait_done(&e, kz_dbclient_doc_get(db, DB, "user/1", &cf, got_cb, &e.g));
  ck_assert_int_eq(e.g.err, 0);
  ck_assert_ptr_null(json_object_get(e.g.json, "_conflicts"));

  wait_done(&e, kz_dbclient_doc_delete(db, DB, "user/1", rev1, got_cb, &e.g));
  ck_assert_int_eq(e.g.err, KZ_ECONFLICT);
  wait_done(&e, kz_dbclient_doc_delete(db, DB, "user/1", rev2, got_cb, &e.g));
  ck_assert_int_eq(e.g.err, 0);
  ck_assert_int_eq(strncmp(e.g.rev, "3-", 2), 0);
  wait_done(&e, kz_dbclient_doc_get(db, DB, "user/1", NULL, got_cb, &e.g));
  ck_assert_int_eq(e.g.err, KZ_ENOENT);
  ck_assert_int_eq(e.g.status, 404);
  /* Saving over a deleted document recreates it. */
  wait_done(&e, kz_dbclient_doc_save(db, DB, doc, got_cb, &e.g));
  ck_assert_msg(e.g.err == 0, "save after delete: %s %s", kz_err_name(e.g.err), e.g.reason);
  json_decref(doc);

  wait_done(&e, kz_dbclient_db_delete(db, DB, got_cb, &e.g));
  ck_assert_int_eq(e.g.err, 0);
  wait_done(&e, kz_dbclient_db_info(db, DB, got_cb, &e.g));
  ck_assert_int_eq(e.g.err, KZ_ENOENT);
  wait_done(&e, kz_dbclient_db_delete(db, DB, got_cb, &e.g));
  ck_assert_int_eq(e.g.err, KZ_ENOENT);
  e2e_close(&e);
}
END_TEST

START_TEST(bulk_all_docs_attachments_changes) {
  struct e2e e;
  e2e_open(&e);
  struct kz_dbclient *db = e.app->db;
  wait_done(&e, kz_dbclient_db_create(db, DB, got_cb, &e.g));
  ck_assert_int_eq(e.g.err, 0);
  json_t *docs = json_pack("[{s:s,s:i},{s:s,s:i},{s:s,s:i},{s:s,s:i}]", "_id", "a", "v", 1, "_id",
                           "b", "v", 2, "_id", "c", "v", 3, "_id", "d/e", "v", 4);
  wait_done(&e, kz_dbclient_bulk_docs(db, DB, docs, true, got_cb, &e.g));
  ck_assert_msg(e.g.err == 0, "bulk: %s %s", kz_err_name(e.g.err), e.g.reason);
  ck_assert_int_eq(json_array_size(e.g.json), 4);
  for (size_t i = 0; i < 4; i++) ck_assert_ptr_nonnull(jstr(json_array_get(e.g.json, i), "rev"));
  /* Again: each one conflicts, the call itself succeeds. */
  wait_done(&e, kz_dbclient_bulk_docs(db, DB, docs, true, got_cb, &e.g));
  ck_assert_int_eq(e.g.err, 0);
  ck_assert_str_eq(jstr(json_array_get(e.g.json, 0), "error"), "conflict");
  json_decref(docs);

  wait_done(&e, kz_dbclient_all_docs(db, DB, NULL, got_cb, &e.g));
  ck_assert_int_eq(e.g.err, 0);
  ck_assert_int_eq(jint(e.g.json, "total_rows"), 4);
  json_t *sk = json_string("b");
  struct kz_dbclient_view_opts o = {.startkey = sk, .include_docs = true, .has_limit = true, .limit = 2};
  wait_done(&e, kz_dbclient_all_docs(db, DB, &o, got_cb, &e.g));
  ck_assert_int_eq(e.g.err, 0);
  json_t *rows = json_object_get(e.g.json, "rows");
  ck_assert_int_eq(json_array_size(rows), 2);
  ck_assert_str_eq(jstr(json_array_get(rows, 0), "id"), "b");
  ck_assert_int_eq(jint(json_object_get(json_array_get(rows, 1), "doc"), "v"), 3);
  struct kz_dbclient_view_opts desc = {.descending = true, .skip = 1};
  wait_done(&e, kz_dbclient_all_docs(db, DB, &desc, got_cb, &e.g));
  rows = json_object_get(e.g.json, "rows");
  ck_assert_int_eq(json_array_size(rows), 3);
  ck_assert_str_eq(jstr(json_array_get(rows, 0), "id"), "c");
  json_t *keys = json_pack("[ss]", "d/e", "a");
  struct kz_dbclient_view_opts ko = {.keys = keys};
  wait_done(&e, kz_dbclient_all_docs(db, DB, &ko, got_cb, &e.g));
  ck_assert_msg(e.g.err == 0, "keys: %s %s", kz_err_name(e.g.err), e.g.reason);
  rows = json_object_get(e.g.json, "rows");
  ck_assert_int_eq(json_array_size(rows), 2);
  ck_assert_str_eq(jstr(json_array_get(rows, 0), "id"), "d/e");
  json_decref(keys);
  json_decref(sk);

  /* A view on a design document that is not there (kz_db answers 501
   * while it has no view engine: both map to a clean error). */
  wait_done(&e, kz_dbclient_view(db, DB, "callflows", "listing", NULL, got_cb, &e.g));
  ck_assert_msg(e.g.err == KZ_ENOENT || e.g.err == KZ_ENOTSUP, "view: %s %d", kz_err_name(e.g.err),
                e.g.status);

  /* Attachments: a new document made by its first attachment. */
  const char wav[] = "RIFF....WAVEfmt \x10\x00\x00\x00";
  wait_done(&e, kz_dbclient_att_put(db, DB, "media1", NULL, "hello.wav", "audio/x-wav", wav,
                                    sizeof(wav) - 1, got_cb, &e.g));
  ck_assert_msg(e.g.err == 0, "att put: %s %s", kz_err_name(e.g.err), e.g.reason);
  ck_assert_int_eq(strncmp(e.g.rev, "1-", 2), 0);
  wait_done(&e, kz_dbclient_att_get(db, DB, "media1", "hello.wav", got_cb, &e.g));
  ck_assert_int_eq(e.g.err, 0);
  ck_assert_uint_eq(e.g.data.len, sizeof(wav) - 1);
  ck_assert_int_eq(memcmp(e.g.data.data, wav, sizeof(wav) - 1), 0);
  ck_assert_str_eq(e.g.ctype, "audio/x-wav");
  wait_done(&e, kz_dbclient_att_get(db, DB, "media1", "nope.wav", got_cb, &e.g));
  ck_assert_int_eq(e.g.err, KZ_ENOENT);

  /* Changes: everything, then since a point, with docs. */
  wait_done(&e, kz_dbclient_changes(db, DB, NULL, got_cb, &e.g));
  ck_assert_int_eq(e.g.err, 0);
  json_t *res = json_object_get(e.g.json, "results");
  ck_assert_int_eq(json_array_size(res), 5);
  json_t *seq = json_object_get(json_array_get(res, 2), "seq");
  char since[64];
  if (json_is_string(seq)) {
    snprintf(since, sizeof(since), "%s", json_string_value(seq));
  } else {
    snprintf(since, sizeof(since), "%lld", (long long)json_integer_value(seq));
  }
  struct kz_dbclient_changes_opts co = {.since = since, .include_docs = true};
  wait_done(&e, kz_dbclient_changes(db, DB, &co, got_cb, &e.g));
  ck_assert_int_eq(e.g.err, 0);
  res = json_object_get(e.g.json, "results");
  ck_assert_int_eq(json_array_size(res), 2);
  ck_assert_ptr_nonnull(json_object_get(json_array_get(res, 0), "doc"));
  ck_assert_str_eq(jstr(json_array_get(res, 1), "id"), "media1");
  e2e_close(&e);
}
END_TEST

int main(void) {
  Suite *s = suite_create("kz_dbclient_e2e");
  TCase *tc = kz_tcase(s, "kz_db", 120);
  tcase_add_test(tc, databases_documents_conflicts);
  tcase_add_test(tc, bulk_all_docs_attachments_changes);
  return kz_run_suite(s);
}
