/* test_kzdb.c — Check suite: the seed applier and the registrar app against kz's real db role (kz_db, native Kazoo views) in the simulator. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/apps.h"
#include "kz/apps_seed.h"
#include "kz/bus_wire.h"
#include "kz/db.h"
#include "kz/dbclient.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sim.h"
#include "kz/sim_broker.h"
#include "kz_test.h"

#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)
#define BROKER_IP "10.0.0.10"
#define DB_IP "10.0.0.20"
#define ACME "acme.sip.example.com"
#define ACME_DB "account/3c/3f/9a0b1d2e4f5061728394a5b6c7d8"

static int wire_factory(void *arg, struct kz_env *env, struct kz_bus_backend *out) {
  struct kz_addr b;
  kz_addr_parse(&b, BROKER_IP ":5672");
  struct kz_bus_wire_cfg c = {.brokers = &b, .n_brokers = 1};
  return kz_bus_wire_new(out, env, &c);
}

/* One process that seeds the db, then (optionally) reads a document. */
struct job {
  struct kz_apps_seed_plan plan;
  bool done;
  int err;
  char msg[512];
  struct kz_apps_seed_stats st;
};

struct seeder {
  struct kz_http_client *http;
  struct kz_dbclient *db;
  struct kz_apps_seed_run *run;
};

static void on_done(void *arg, int err, const char *msg, const struct kz_apps_seed_stats *st) {
  struct job *j = arg;
  j->done = true;
  j->err = err;
  j->st = *st;
  snprintf(j->msg, sizeof j->msg, "%s", msg);
}

static int seeder_start(struct kz_env *env, const void *cfg, void **inst) {
  struct seeder *s = kz_calloc(1, sizeof *s);
  struct kz_dbclient_cfg dc = {.url = "http://" DB_IP ":5984"};
  int rc = kz_http_client_stream_new(&s->http, env, NULL);
  if (!rc) rc = kz_dbclient_new(&s->db, s->http, &dc);
  if (!rc) rc = kz_apps_seed_apply(&s->run, s->db, &((struct job *)cfg)->plan, NULL, on_done, (void *)cfg);
  ck_assert_int_eq(rc, 0);
  *inst = s;
  return 0;
}

static void seeder_stop(void *inst) {
  struct seeder *s = inst;
  kz_dbclient_free(s->db);
  kz_apps_seed_run_free(s->run);
  kz_http_client_free(s->http);
  kz_free(s);
}

struct client {
  struct kz_bus *bus;
  struct kz_prng prng;
  int n;
  int status;
  json_t *last;
};

static int client_start(struct kz_env *env, const void *cfg, void **inst) {
  struct client *c = kz_calloc(1, sizeof *c);
  kz_env_prng(env, "client", &c->prng);
  struct kz_bus_backend be;
  struct kz_bus_cfg bc = {.node = "client@test", .app_name = "test", .app_version = "1"};
  ck_assert_int_eq(wire_factory(NULL, env, &be), 0);
  ck_assert_int_eq(kz_bus_new(&c->bus, env, &be, &bc), 0);
  kz_bus_declare_kazoo_exchanges(c->bus);
  *inst = c;
  return 0;
}

static void client_stop(void *inst) {
  struct client *c = inst;
  kz_bus_free(c->bus);
  json_decref(c->last);
  kz_free(c);
}

static void on_reply(void *arg, struct kz_bus *bus, int status, const json_t *reply) {
  struct client *c = arg;
  c->n++;
  c->status = status;
  json_decref(c->last);
  c->last = reply ? json_deep_copy(reply) : NULL;
}

static const struct kz_sim_app seeder_app = {"seeder", seeder_start, seeder_stop};
static const struct kz_sim_app client_app = {"client", client_start, client_stop};
static const struct kz_sim_app db_app = {"db", kz_db_app_start, kz_db_app_stop};
static const struct kz_sim_app registrar_app = {"apps", kz_apps_registrar_start, kz_apps_registrar_stop};

struct world {
  struct kz_sim *sim;
  struct kz_db_cfg dbcfg;
  struct kz_apps_registrar_cfg rcfg;
  struct kz_sim_proc *client, *apps;
  json_t *seed;
};

static struct kz_sim_proc *add(struct world *w, const char *name, const char *ip, const struct kz_sim_app *app,
                               const void *cfg) {
  struct kz_addr a;
  struct kz_sim_host *h;
  struct kz_sim_proc *p;
  kz_addr_parse(&a, ip);
  ck_assert_int_eq(kz_sim_host_add(w->sim, name, &a, &h), 0);
  ck_assert_int_eq(kz_sim_proc_add(h, name, app, cfg, &p), 0);
  return p;
}

static void seed_run(struct world *w, const char *host, const char *ip, struct job *j) {
  ck_assert_int_eq(kz_apps_seed_plan(w->seed, 63900000000, &j->plan, NULL, 0), 0);
  add(w, host, ip, &seeder_app, j);
  ck_assert_int_eq(kz_sim_run_for(w->sim, 10 * SEC), 0);
  ck_assert_msg(j->done && j->err == 0, "seed: %d %s", j->err, j->msg);
}

static const char *authn(struct world *w, const char *realm, const char *user) {
  struct client *c = kz_sim_proc_instance(w->client);
  struct kz_kapi_origin o = {"test", "1", "client@test", NULL};
  char from[200];
  snprintf(from, sizeof from, "sip:%s@%s", user, realm);
  json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s}", "Method", "REGISTER", "Auth-Realm", realm, "Auth-User",
                           user, "From", from, "To", from);
  json_t *req = NULL;
  char *rk = NULL;
  ck_assert_int_eq(kz_kapi_build(KZ_KAPI_AUTHN_REQ, &o, &c->prng, body, &req, NULL), 0);
  ck_assert_int_eq(kz_bus_rk_authn_req(&rk, realm), 0);
  int n = c->n;
  ck_assert_int_eq(kz_bus_request(c->bus, "callmgr", rk, req, 2500 * MS, on_reply, c, NULL), 0);
  kz_free(rk);
  json_decref(req);
  json_decref(body);
  ck_assert_int_eq(kz_sim_run_for(w->sim, 3 * SEC), 0);
  ck_assert_int_eq(c->n, n + 1);
  return c->status ? "timeout" : json_string_value(json_object_get(c->last, "Event-Name"));
}

START_TEST(test_seed_and_authn_on_kz_db) {
  struct world *w = calloc(1, sizeof *w);
  ck_assert_int_eq(kz_sim_new(&w->sim, 11), 0);
  kz_sim_set_cost_zero(w->sim);
  kz_sim_set_log_level(w->sim, KZ_LOG_WARN);
  char path[1024];
  kz_test_source_path(path, sizeof path, "fixtures/seed/basic.json");
  w->seed = json_load_file(path, 0, NULL);
  ck_assert_ptr_nonnull(w->seed);
  kz_addr_parse(&w->dbcfg.listen, DB_IP ":5984");
  add(w, "broker", BROKER_IP, &kz_sim_broker_app, NULL);
  add(w, "db", DB_IP, &db_app, &w->dbcfg);

  /* Seed twice: the second run changes nothing. */
  struct job j1 = {0}, j2 = {0};
  seed_run(w, "seeder1", "10.0.0.51", &j1);
  ck_assert_uint_eq(j1.st.dbs_created, 4);
  ck_assert_uint_eq(j1.st.docs_created, j1.plan.ndocs);
  seed_run(w, "seeder2", "10.0.0.52", &j2);
  ck_assert_uint_eq(j2.st.dbs_existing, 4);
  ck_assert_uint_eq(j2.st.docs_unchanged, j2.plan.ndocs);
  ck_assert_uint_eq(j2.st.docs_created + j2.st.docs_updated, 0);

  /* The registrar against kz_db's native views. */
  w->rcfg = (struct kz_apps_registrar_cfg){.db_url = "http://" DB_IP ":5984", .bus_factory = wire_factory};
  w->apps = add(w, "apps", "10.0.0.30", &registrar_app, &w->rcfg);
  w->client = add(w, "client", "10.0.0.40", &client_app, NULL);
  ck_assert_int_eq(kz_sim_run_for(w->sim, 200 * MS), 0);
  struct client *c = kz_sim_proc_instance(w->client);
  ck_assert_str_eq(authn(w, ACME, "dev1001"), "authn_resp");
  ck_assert_str_eq(json_string_value(json_object_get(c->last, "Auth-Password")), "s3cret-1001");
  const json_t *ccv = json_object_get(c->last, "Custom-Channel-Vars");
  ck_assert_str_eq(json_string_value(json_object_get(ccv, "Account-ID")), "3c3f9a0b1d2e4f5061728394a5b6c7d8");
  ck_assert_str_eq(json_string_value(json_object_get(ccv, "Authorizing-ID")), "9d1e0000000000000000000000000001");
  ck_assert_str_eq(json_string_value(json_object_get(ccv, "Authorizing-Type")), "device");
  ck_assert_str_eq(json_string_value(json_object_get(ccv, "Owner-ID")), "77ab0000000000000000000000000001");
  ck_assert_str_eq(json_string_value(json_object_get(ccv, "Account-Name")), "Acme");
  ck_assert_str_eq(authn(w, ACME, "nobody"), "authn_err");
  ck_assert_str_eq(authn(w, "nowhere.example.com", "dev1001"), "authn_err");
  ck_assert_str_eq(authn(w, "beta.sip.example.com", "lobby"), "authn_err"); /* disabled */
  ck_assert_str_eq(authn(w, "beta.sip.example.com", "dev2001"), "authn_resp");

  kz_sim_free(w->sim);
  kz_apps_seed_plan_free(&j1.plan);
  kz_apps_seed_plan_free(&j2.plan);
  json_decref(w->seed);
  free(w);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("apps-kzdb");
  TCase *tc = kz_tcase(s, "kz_db", 120);
  tcase_add_test(tc, test_seed_and_authn_on_kz_db);
  return s;
}

int main(void) { return kz_run_suite(suite()); }
