/* test_registrar.c — Check suite for the registrar app and the seed planner/applier in the simulator: broker, fake CouchDB, registrar, bus clients, the proxy and SIP phones. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_couch.h"
#include "kz/apps.h"
#include "kz/apps_seed.h"
#include "kz/bus_wire.h"
#include "kz/dbclient.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/proxy.h"
#include "kz/sim.h"
#include "kz/sim_broker.h"
#include "kz/sip_digest.h"
#include "kz/sip_msg.h"
#include "kz_test.h"

#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)

#define BROKER_IP "10.0.0.10"
#define DB_IP "10.0.0.20"
#define APPS_IP "10.0.0.30"
#define CLIENT_IP "10.0.0.40"
#define PROXY_IP "10.0.0.1"
#define PHONE_IP "192.0.2.10"

#define ACME "acme.sip.example.com"
#define ACME_ID "3c3f9a0b1d2e4f5061728394a5b6c7d8"
#define ACME_DB "account/3c/3f/9a0b1d2e4f5061728394a5b6c7d8"
#define BETA "beta.sip.example.com"
#define ALICE_ID "77ab0000000000000000000000000001"
#define DEV1001_ID "9d1e0000000000000000000000000001"

/* ------------------------------------------------------------------ */
/* Bus over the wire to the simulated broker                           */

static int wire_factory(void *arg, struct kz_env *env, struct kz_bus_backend *out) {
  struct kz_addr b;
  kz_addr_parse(&b, BROKER_IP ":5672");
  struct kz_bus_wire_cfg c = {.brokers = &b, .n_brokers = 1};
  return kz_bus_wire_new(out, env, &c);
}

/* A bus client app the test drives: sends authn_req and document
 * notices, keeps the last reply. */
struct client {
  struct kz_env *env;
  struct kz_bus *bus;
  struct kz_prng prng;
  int replies, timeouts;
  int last_status;
  json_t *last; /* last reply (one reference) */
};

static int client_start(struct kz_env *env, const void *cfg, void **inst) {
  struct client *c = kz_calloc(1, sizeof *c);
  c->env = env;
  kz_env_prng(env, "client", &c->prng);
  struct kz_bus_backend be;
  int rc = wire_factory(NULL, env, &be);
  struct kz_bus_cfg bc = {.node = "client@test", .app_name = "test", .app_version = "1"};
  if (!rc) rc = kz_bus_new(&c->bus, env, &be, &bc);
  if (!rc) rc = kz_bus_declare_kazoo_exchanges(c->bus);
  if (rc) {
    kz_free(c);
    return rc;
  }
  *inst = c;
  return 0;
}

static void client_stop(void *inst) {
  struct client *c = inst;
  kz_bus_free(c->bus);
  json_decref(c->last);
  kz_free(c);
}

static const struct kz_sim_app client_app = {"client", client_start, client_stop};
static const struct kz_sim_app registrar_app = {"apps", kz_apps_registrar_start, kz_apps_registrar_stop};
static const struct kz_sim_app couch_app = {"db", fc_start, fc_stop};
static const struct kz_sim_app proxy_app = {"proxy", kz_proxy_start, kz_proxy_stop};

static void on_reply(void *arg, struct kz_bus *bus, int status, const json_t *reply) {
  struct client *c = arg;
  c->last_status = status;
  json_decref(c->last);
  c->last = reply ? json_deep_copy(reply) : NULL;
  if (status == 0) c->replies++;
  else c->timeouts++;
}

/* ------------------------------------------------------------------ */
/* The world                                                           */

struct world {
  struct kz_sim *sim;
  struct fc_store store;
  struct kz_apps_registrar_cfg rcfg;
  struct kz_sim_proc *broker, *db, *apps, *client, *proxy, *phone;
  struct kz_proxy_config pcfg;
};

/* Loads fixtures/seed/basic.json into the fake db through the planner. */
static void seed_store(struct fc_store *s) {
  char path[1024];
  kz_test_source_path(path, sizeof path, "fixtures/seed/basic.json");
  json_error_t je;
  json_t *seed = json_load_file(path, 0, &je);
  ck_assert_msg(seed, "%s:%d: %s", path, je.line, je.text);
  struct kz_apps_seed_plan plan;
  char err[256];
  ck_assert_int_eq(kz_apps_seed_plan(seed, 63900000000, &plan, err, sizeof err), 0);
  for (size_t i = 0; i < plan.ndocs; i++)
    fc_put(s, plan.docs[i].db, plan.docs[i].id, json_deep_copy(plan.docs[i].doc));
  kz_apps_seed_plan_free(&plan);
  json_decref(seed);
}

static struct kz_sim_proc *add_proc(struct world *w, const char *name, const char *ip,
                                    const struct kz_sim_app *app, const void *cfg) {
  struct kz_addr a;
  struct kz_sim_host *h;
  struct kz_sim_proc *p;
  kz_addr_parse(&a, ip);
  ck_assert_int_eq(kz_sim_host_add(w->sim, name, &a, &h), 0);
  ck_assert_int_eq(kz_sim_proc_add(h, name, app, cfg, &p), 0);
  return p;
}

static void run(struct world *w, uint64_t ns) { ck_assert_int_eq(kz_sim_run_for(w->sim, ns), 0); }

static struct world *world_new(bool seed) {
  struct world *w = calloc(1, sizeof *w);
  ck_assert_int_eq(kz_sim_new(&w->sim, 7), 0);
  kz_sim_set_cost_zero(w->sim);
  kz_sim_set_log_level(w->sim, KZ_LOG_WARN);
  kz_addr_parse(&w->store.listen, DB_IP ":5984");
  if (seed) seed_store(&w->store);
  w->rcfg = (struct kz_apps_registrar_cfg){.db_url = "http://" DB_IP ":5984", .bus_factory = wire_factory};
  return w;
}

static void world_start(struct world *w) {
  w->broker = add_proc(w, "broker", BROKER_IP, &kz_sim_broker_app, NULL);
  w->db = add_proc(w, "db", DB_IP, &couch_app, &w->store);
  w->apps = add_proc(w, "apps", APPS_IP, &registrar_app, &w->rcfg);
  w->client = add_proc(w, "client", CLIENT_IP, &client_app, NULL);
  run(w, 100 * MS); /* buses up, topology declared */
}

static void world_free(struct world *w) {
  kz_sim_free(w->sim);
  fc_store_clear(&w->store);
  free(w);
}

static struct client *client_of(struct world *w) { return kz_sim_proc_instance(w->client); }
static struct kz_apps_registrar *registrar_of(struct world *w) { return kz_sim_proc_instance(w->apps); }

static struct kz_apps_registrar_stats rstats(struct world *w) {
  struct kz_apps_registrar_stats s;
  kz_apps_registrar_get_stats(registrar_of(w), &s);
  return s;
}

/* Sends an authn_req for user@realm and runs 500 ms; returns the
 * reply's Event-Name ("authn_resp", "authn_err") or "timeout". */
static const char *authn(struct world *w, const char *realm, const char *user) {
  struct client *c = client_of(w);
  struct kz_kapi_origin o = {"test", "1", "client@test", NULL};
  char from[256];
  snprintf(from, sizeof from, "sip:%s@%s", user, realm);
  json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "Method", "REGISTER", "Auth-Realm", realm,
                           "Auth-User", user, "From", from, "To", from, "Orig-IP", PHONE_IP);
  json_t *req = NULL;
  struct kz_kapi_error err;
  ck_assert_int_eq(kz_kapi_build(KZ_KAPI_AUTHN_REQ, &o, &c->prng, body, &req, &err), 0);
  char *rk = NULL;
  ck_assert_int_eq(kz_bus_rk_authn_req(&rk, realm), 0);
  int before = c->replies + c->timeouts;
  ck_assert_int_eq(kz_bus_request(c->bus, "callmgr", rk, req, 400 * MS, on_reply, c, NULL), 0);
  kz_free(rk);
  json_decref(req);
  json_decref(body);
  run(w, 500 * MS);
  ck_assert_int_eq(c->replies + c->timeouts, before + 1);
  if (c->last_status) return "timeout";
  return json_string_value(json_object_get(c->last, "Event-Name"));
}

static const char *reply_str(struct world *w, const char *key) {
  return json_string_value(json_object_get(client_of(w)->last, key));
}

static const char *ccv(struct world *w, const char *key) {
  return json_string_value(json_object_get(json_object_get(client_of(w)->last, "Custom-Channel-Vars"), key));
}

/* Publishes a document change notice as Kazoo's data layer would. */
static void doc_notice(struct world *w, const char *action, const char *db, const char *type, const char *id) {
  struct client *c = client_of(w);
  struct kz_kapi_origin o = {"test", "1", "client@test", NULL};
  char name[32];
  snprintf(name, sizeof name, "doc_%s", action);
  json_t *body = json_pack("{s:s, s:s, s:s, s:s}", "Event-Name", name, "ID", id, "Database", db, "Type", type);
  json_t *msg = NULL;
  struct kz_kapi_error err;
  ck_assert_int_eq(kz_kapi_build(KZ_KAPI_DOC_CHANGE, &o, &c->prng, body, &msg, &err), 0);
  char *rk = NULL;
  ck_assert_int_eq(kz_bus_rk_doc_change(&rk, action, db, type, id), 0);
  ck_assert_int_eq(kz_bus_publish_msg(c->bus, "configuration", rk, msg, NULL, NULL), 0);
  kz_free(rk);
  json_decref(msg);
  json_decref(body);
  run(w, 100 * MS);
}

/* ------------------------------------------------------------------ */
/* Registrar over the bus                                              */

START_TEST(test_authn_resp) {
  struct world *w = world_new(true);
  world_start(w);
  ck_assert_str_eq(authn(w, ACME, "dev1001"), "authn_resp");
  ck_assert_str_eq(reply_str(w, "Auth-Method"), "password");
  ck_assert_str_eq(reply_str(w, "Auth-Password"), "s3cret-1001");
  ck_assert_str_eq(reply_str(w, "Event-Category"), "directory");
  ck_assert_str_eq(reply_str(w, "App-Name"), "registrar");
  ck_assert_str_eq(ccv(w, "Account-ID"), ACME_ID);
  ck_assert_str_eq(ccv(w, "Account-Name"), "Acme");
  ck_assert_str_eq(ccv(w, "Account-Realm"), ACME);
  ck_assert_str_eq(ccv(w, "Realm"), ACME);
  ck_assert_str_eq(ccv(w, "Username"), "dev1001");
  ck_assert_str_eq(ccv(w, "Authorizing-ID"), DEV1001_ID);
  ck_assert_str_eq(ccv(w, "Authorizing-Type"), "device");
  ck_assert_str_eq(ccv(w, "Owner-ID"), ALICE_ID);
  /* Two views, with the account db percent-encoded in the URL. */
  ck_assert_int_eq(w->store.realm_views, 1);
  ck_assert_int_eq(w->store.device_views, 1);
  ck_assert_ptr_nonnull(strstr(w->store.last_view_target,
                               "/account%2F3c%2F3f%2F9a0b1d2e4f5061728394a5b6c7d8/_design/devices/_view/"
                               "sip_credentials?"));
  ck_assert_ptr_nonnull(strstr(w->store.last_view_target, "key=%22dev1001%22"));
  ck_assert_ptr_nonnull(strstr(w->store.last_view_target, "include_docs=true"));
  struct kz_apps_registrar_stats s = rstats(w);
  ck_assert_uint_eq(s.authn_reqs, 1);
  ck_assert_uint_eq(s.authn_resps, 1);
  ck_assert_uint_eq(s.db_requests, 2);
  /* The second account, a device without an owner is answered without
   * Owner-ID. */
  ck_assert_str_eq(authn(w, BETA, "dev2001"), "authn_resp");
  ck_assert_str_eq(reply_str(w, "Auth-Password"), "s3cret-2001");
  ck_assert_str_eq(ccv(w, "Account-ID"), "7f00aa11bb22cc33dd44ee55ff667788");
  world_free(w);
}
END_TEST

START_TEST(test_authn_errors) {
  struct world *w = world_new(true);
  world_start(w);
  ck_assert_str_eq(authn(w, ACME, "nobody"), "authn_err");
  ck_assert_str_eq(reply_str(w, "Event-Category"), "directory");
  ck_assert_str_eq(authn(w, "unknown.example.com", "dev1001"), "authn_err");
  /* The user exists, but in the other account. */
  ck_assert_str_eq(authn(w, BETA, "dev1001"), "authn_err");
  /* Disabled device. */
  ck_assert_str_eq(authn(w, BETA, "lobby"), "authn_err");
  /* A disabled account (pvt_enabled false): every device refused. */
  ck_assert_str_eq(authn(w, BETA, "dev2001"), "authn_resp");
  json_t *acct = json_deep_copy(fc_doc_find(&w->store, "accounts", "7f00aa11bb22cc33dd44ee55ff667788"));
  json_object_set_new(acct, "pvt_enabled", json_false());
  fc_put(&w->store, "accounts", "7f00aa11bb22cc33dd44ee55ff667788", acct);
  doc_notice(w, "edited", "accounts", "account", "7f00aa11bb22cc33dd44ee55ff667788");
  ck_assert_str_eq(authn(w, BETA, "dev2001"), "authn_err");
  struct kz_apps_registrar_stats s = rstats(w);
  ck_assert_uint_eq(s.authn_errs, 5);
  ck_assert_uint_eq(s.authn_resps, 1);
  world_free(w);
}
END_TEST

START_TEST(test_case_insensitive) {
  struct world *w = world_new(true);
  world_start(w);
  ck_assert_str_eq(authn(w, "ACME.sip.Example.COM", "Dev1001"), "authn_resp");
  ck_assert_str_eq(reply_str(w, "Auth-Password"), "s3cret-1001");
  ck_assert_str_eq(ccv(w, "Realm"), ACME);
  world_free(w);
}
END_TEST

START_TEST(test_cache_hit) {
  struct world *w = world_new(true);
  world_start(w);
  ck_assert_str_eq(authn(w, ACME, "dev1001"), "authn_resp");
  int views = w->store.view_requests;
  ck_assert_int_eq(views, 2);
  ck_assert_str_eq(authn(w, ACME, "dev1001"), "authn_resp");
  ck_assert_str_eq(reply_str(w, "Auth-Password"), "s3cret-1001");
  ck_assert_int_eq(w->store.view_requests, views); /* no second db request */
  struct kz_apps_registrar_stats s = rstats(w);
  ck_assert_uint_eq(s.cache_hits, 2);
  ck_assert_uint_eq(s.db_requests, 2);
  /* Another user of the same realm: only the device view runs. */
  ck_assert_str_eq(authn(w, ACME, "dev1002"), "authn_resp");
  ck_assert_int_eq(w->store.realm_views, 1);
  ck_assert_int_eq(w->store.device_views, 2);
  /* After the TTL (60 s by default) the db is asked again. */
  run(w, 61 * SEC);
  ck_assert_str_eq(authn(w, ACME, "dev1001"), "authn_resp");
  ck_assert_int_eq(w->store.realm_views, 2);
  ck_assert_int_eq(w->store.device_views, 3);
  world_free(w);
}
END_TEST

START_TEST(test_cache_invalidated_by_doc_change) {
  struct world *w = world_new(true);
  world_start(w);
  ck_assert_str_eq(authn(w, ACME, "dev1001"), "authn_resp");
  /* The password changes in the db; the cache still has the old one. */
  json_t *dev = json_deep_copy(fc_doc_find(&w->store, ACME_DB, DEV1001_ID));
  json_object_set_new(json_object_get(dev, "sip"), "password", json_string("n3w-pass"));
  fc_put(&w->store, ACME_DB, DEV1001_ID, dev);
  ck_assert_str_eq(authn(w, ACME, "dev1001"), "authn_resp");
  ck_assert_str_eq(reply_str(w, "Auth-Password"), "s3cret-1001");
  /* A notice for another device changes nothing. */
  doc_notice(w, "edited", ACME_DB, "device", "9d1e0000000000000000000000000003");
  ck_assert_uint_eq(rstats(w).invalidations, 0);
  doc_notice(w, "edited", ACME_DB, "device", DEV1001_ID);
  ck_assert_uint_eq(rstats(w).doc_notices, 2);
  ck_assert_uint_eq(rstats(w).invalidations, 1);
  ck_assert_str_eq(authn(w, ACME, "dev1001"), "authn_resp");
  ck_assert_str_eq(reply_str(w, "Auth-Password"), "n3w-pass");
  /* Deleting the account drops its realm entry too. */
  doc_notice(w, "deleted", "accounts", "account", ACME_ID);
  ck_assert_uint_eq(rstats(w).invalidations, 2);
  world_free(w);
}
END_TEST

START_TEST(test_db_failure_unanswered) {
  struct world *w = world_new(true);
  w->store.fail_views = true;
  world_start(w);
  ck_assert_str_eq(authn(w, ACME, "dev1001"), "timeout");
  struct kz_apps_registrar_stats s = rstats(w);
  ck_assert_uint_eq(s.unanswered, 1);
  ck_assert_uint_eq(s.db_errors, 1);
  /* Failures are not cached: once the db works the same request passes. */
  w->store.fail_views = false;
  ck_assert_str_eq(authn(w, ACME, "dev1001"), "authn_resp");
  world_free(w);
}
END_TEST

START_TEST(test_db_silent_then_stop) {
  /* A db that never answers: the request stays pending until the db
   * client's deadline; stopping the app meanwhile frees it cleanly. */
  struct world *w = world_new(true);
  w->store.silent_views = true;
  world_start(w);
  ck_assert_str_eq(authn(w, ACME, "dev1001"), "timeout");
  ck_assert_uint_eq(rstats(w).unanswered, 0); /* still waiting for the db */
  run(w, 2 * SEC);
  ck_assert_uint_eq(rstats(w).unanswered, 1); /* db deadline passed */
  ck_assert_str_eq(authn(w, ACME, "dev1002"), "timeout");
  world_free(w); /* stops the app with a lookup in flight */
}
END_TEST

START_TEST(test_bad_message_refused) {
  struct world *w = world_new(true);
  world_start(w);
  struct client *c = client_of(w);
  const char *junk = "{\"Event-Category\":\"directory\",\"Event-Name\":\"authn_req\"}";
  ck_assert_int_eq(kz_bus_publish(c->bus, "callmgr", "authn.req.x", junk, strlen(junk), NULL, NULL), 0);
  run(w, 100 * MS);
  ck_assert_uint_eq(rstats(w).bad_msgs, 1);
  ck_assert_uint_eq(rstats(w).authn_reqs, 0);
  ck_assert_int_eq(w->store.requests, 0);
  world_free(w);
}
END_TEST

START_TEST(test_two_registrars_share_the_queue) {
  struct world *w = world_new(true);
  world_start(w);
  struct kz_sim_proc *apps2 = add_proc(w, "apps2", "10.0.0.31", &registrar_app, &w->rcfg);
  run(w, 100 * MS);
  for (int i = 0; i < 4; i++) ck_assert_str_eq(authn(w, ACME, "dev1001"), "authn_resp");
  struct kz_apps_registrar_stats s1 = rstats(w), s2;
  kz_apps_registrar_get_stats(kz_sim_proc_instance(apps2), &s2);
  ck_assert_uint_eq(s1.authn_reqs + s2.authn_reqs, 4);
  ck_assert_uint_ge(s1.authn_reqs, 1);
  ck_assert_uint_ge(s2.authn_reqs, 1);
  world_free(w);
}
END_TEST

START_TEST(test_start_errors) {
  struct world *w = world_new(false);
  void *inst = NULL;
  struct kz_apps_registrar_cfg bad = {.bus_factory = wire_factory};
  struct kz_addr a;
  kz_addr_parse(&a, APPS_IP);
  struct kz_sim_host *h;
  ck_assert_int_eq(kz_sim_host_add(w->sim, "apps", &a, &h), 0);
  ck_assert_int_eq(kz_sim_proc_add(h, "apps", &registrar_app, &bad, NULL), KZ_EINVAL);
  bad.db_url = "ftp://x";
  ck_assert_int_eq(kz_sim_proc_add(h, "apps", &registrar_app, &bad, NULL), KZ_EINVAL);
  ck_assert_int_eq(kz_apps_registrar_start(NULL, &bad, &inst), KZ_EINVAL);
  world_free(w);
}
END_TEST

/* ------------------------------------------------------------------ */
/* End to end: a phone registers through the proxy                     */

struct phone_log {
  int n;
  char msg[32][2048];
};

struct phone {
  struct kz_udp *udp;
  struct phone_log *log;
};

static void phone_recv(void *arg, struct kz_udp *u, const struct kz_addr *from, const uint8_t *d, size_t len) {
  struct phone *p = arg;
  if (p->log->n >= 32) return;
  size_t k = len < 2047 ? len : 2047;
  memcpy(p->log->msg[p->log->n], d, k);
  p->log->msg[p->log->n][k] = 0;
  p->log->n++;
}

static int phone_start(struct kz_env *env, const void *cfg, void **inst) {
  struct phone *p = kz_calloc(1, sizeof *p);
  p->log = (struct phone_log *)cfg;
  struct kz_addr a = kz_addr_v4(0, 5060);
  int rc = kz_udp_bind(env, &a, phone_recv, p, &p->udp);
  if (rc) {
    kz_free(p);
    return rc;
  }
  *inst = p;
  return 0;
}

static void phone_stop(void *inst) {
  struct phone *p = inst;
  kz_udp_close(p->udp);
  kz_free(p);
}

static const struct kz_sim_app phone_app = {"phone", phone_start, phone_stop};

static void send_register(struct world *w, const char *user, int cseq, const char *auth) {
  char req[2048];
  snprintf(req, sizeof req,
           "REGISTER sip:" ACME " SIP/2.0\r\n"
           "Via: SIP/2.0/UDP " PHONE_IP ":5060;branch=z9hG4bK-reg-%d;rport\r\n"
           "Max-Forwards: 70\r\n"
           "From: <sip:%s@" ACME ">;tag=ft%d\r\n"
           "To: <sip:%s@" ACME ">\r\n"
           "Call-ID: reg-%s@phone\r\n"
           "CSeq: %d REGISTER\r\n"
           "Contact: <sip:%s@" PHONE_IP ":5060>\r\n"
           "Expires: 600\r\n"
           "%s%s%s"
           "Content-Length: 0\r\n\r\n",
           cseq, user, cseq, user, user, cseq, user, auth ? "Authorization: " : "", auth ? auth : "",
           auth ? "\r\n" : "");
  struct phone *p = kz_sim_proc_instance(w->phone);
  struct kz_addr to;
  kz_addr_parse(&to, PROXY_IP ":5060");
  ck_assert_int_eq(kz_udp_send(p->udp, &to, req, strlen(req)), 0);
}

/* REGISTER, answer the 401, REGISTER again: the final status. */
static int do_register(struct world *w, struct phone_log *log, const char *user, const char *password,
                       int *cseq) {
  int mark = log->n;
  send_register(w, user, (*cseq)++, NULL);
  run(w, 100 * MS);
  ck_assert_int_gt(log->n, mark);
  const char *r = log->msg[log->n - 1];
  ck_assert_msg(!strncmp(r, "SIP/2.0 401", 11), "expected a challenge, got %.40s", r);
  struct kz_sip_msg *m = NULL;
  ck_assert_int_eq(kz_sip_msg_parse(&m, r, strlen(r), 0, NULL), 0);
  const struct kz_sip_hdr *h = kz_sip_msg_hdr_by_name(m, KZ_SLICE_LIT("WWW-Authenticate"));
  ck_assert_ptr_nonnull(h);
  struct kz_slice ch = h->value;
  struct kz_sip_digest_client dc;
  kz_sip_digest_client_init(&dc);
  struct kz_prng g;
  kz_prng_seed(&g, 7);
  struct kz_buf b;
  kz_buf_init(&b);
  struct kz_sip_digest_answer_opts o = {.challenges = &ch, .nchallenges = 1, .username = kz_slice_cstr(user),
                                        .password = kz_slice_cstr(password), .method = KZ_SLICE_LIT("REGISTER"),
                                        .uri = KZ_SLICE_LIT("sip:" ACME), .prng = &g};
  ck_assert_int_eq(kz_sip_digest_answer(&dc, &b, &o, NULL, 0), 0);
  kz_deref(m);
  mark = log->n;
  send_register(w, user, (*cseq)++, (const char *)b.data);
  kz_buf_free(&b);
  run(w, 500 * MS);
  if (log->n == mark) return 0;
  return atoi(log->msg[log->n - 1] + 8);
}

START_TEST(test_e2e_proxy_register) {
  struct world *w = world_new(true);
  world_start(w);
  kz_proxy_config_defaults(&w->pcfg);
  snprintf(w->pcfg.listen, sizeof w->pcfg.listen, PROXY_IP ":5060");
  w->pcfg.tcp = false;
  w->pcfg.bus_factory = wire_factory;
  w->proxy = add_proc(w, "proxy", PROXY_IP, &proxy_app, &w->pcfg);
  struct phone_log *log = calloc(1, sizeof *log);
  w->phone = add_proc(w, "phone", PHONE_IP, &phone_app, log);
  run(w, 200 * MS);
  int cseq = 1;
  ck_assert_int_eq(do_register(w, log, "dev1001", "s3cret-1001", &cseq), 200);
  ck_assert_uint_eq(kz_proxy_binding_count(kz_sim_proc_instance(w->proxy), "dev1001@" ACME), 1);
  ck_assert_uint_eq(rstats(w).authn_resps, 1);
  /* Wrong password: the proxy challenges again (or forbids). */
  int st = do_register(w, log, "dev1002", "WRONG", &cseq);
  ck_assert_msg(st == 401 || st == 403, "status %d", st);
  ck_assert_uint_eq(kz_proxy_binding_count(kz_sim_proc_instance(w->proxy), "dev1002@" ACME), 0);
  /* Unknown user: authn_err, challenged again. */
  st = do_register(w, log, "mallory", "x", &cseq);
  ck_assert_msg(st == 401 || st == 403, "status %d", st);
  ck_assert_uint_ge(rstats(w).authn_errs, 1);
  world_free(w);
  free(log);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Seed planner                                                        */

static json_t *load_basic(void) {
  char path[1024];
  kz_test_source_path(path, sizeof path, "fixtures/seed/basic.json");
  json_t *j = json_load_file(path, 0, NULL);
  ck_assert_ptr_nonnull(j);
  return j;
}

static const struct kz_apps_seed_doc *plan_doc(const struct kz_apps_seed_plan *p, const char *db, const char *id) {
  for (size_t i = 0; i < p->ndocs; i++)
    if (!strcmp(p->docs[i].db, db) && !strcmp(p->docs[i].id, id)) return &p->docs[i];
  return NULL;
}

START_TEST(test_seed_plan_basic) {
  json_t *seed = load_basic();
  struct kz_apps_seed_plan p;
  char err[256];
  ck_assert_int_eq(kz_apps_seed_plan(seed, 63900000000, &p, err, sizeof err), 0);
  ck_assert_uint_eq(p.ndbs, 4);
  ck_assert_str_eq(p.dbs[0], "accounts");
  ck_assert_str_eq(p.dbs[1], "system_config");
  ck_assert_str_eq(p.dbs[2], ACME_DB);
  size_t accounts = 0, users = 0, devices = 0, callflows = 0, design = 0;
  for (size_t i = 0; i < p.ndocs; i++) {
    const char *t = json_string_value(json_object_get(p.docs[i].doc, "pvt_type"));
    ck_assert_str_eq(json_string_value(json_object_get(p.docs[i].doc, "_id")), p.docs[i].id);
    if (!strncmp(p.docs[i].id, "_design/", 8)) design++;
    else if (t && !strcmp(t, "account")) accounts++;
    else if (t && !strcmp(t, "user")) users++;
    else if (t && !strcmp(t, "device")) devices++;
    else if (t && !strcmp(t, "callflow")) callflows++;
  }
  ck_assert_uint_eq(accounts, 4); /* each in accounts and in its own db */
  ck_assert_uint_eq(users, 3);
  ck_assert_uint_eq(devices, 5);
  ck_assert_uint_eq(callflows, 3);
  ck_assert_uint_eq(design, 5); /* accounts + 2 per account */
  const struct kz_apps_seed_doc *d = plan_doc(&p, ACME_DB, DEV1001_ID);
  ck_assert_ptr_nonnull(d);
  const json_t *sip = json_object_get(d->doc, "sip");
  ck_assert_str_eq(json_string_value(json_object_get(sip, "username")), "dev1001");
  ck_assert_str_eq(json_string_value(json_object_get(sip, "password")), "s3cret-1001");
  ck_assert_str_eq(json_string_value(json_object_get(sip, "realm")), ACME);
  ck_assert_str_eq(json_string_value(json_object_get(d->doc, "owner_id")), ALICE_ID);
  ck_assert_str_eq(json_string_value(json_object_get(d->doc, "pvt_account_db")), ACME_DB);
  ck_assert_int_eq(json_integer_value(json_object_get(d->doc, "pvt_created")), 63900000000);
  const struct kz_apps_seed_doc *a = plan_doc(&p, "accounts", ACME_ID);
  ck_assert_str_eq(json_string_value(json_object_get(a->doc, "realm")), ACME);
  ck_assert_ptr_nonnull(plan_doc(&p, "system_config", "ecallmgr"));
  ck_assert_ptr_nonnull(plan_doc(&p, "accounts", "_design/accounts"));
  ck_assert_ptr_nonnull(plan_doc(&p, ACME_DB, "_design/devices"));
  /* A callflow for 1001 pointing at alice. */
  bool found = false;
  for (size_t i = 0; i < p.ndocs; i++) {
    const json_t *nums = json_object_get(p.docs[i].doc, "numbers");
    if (json_is_array(nums) && !strcmp(json_string_value(json_array_get(nums, 0)), "1001")) {
      const json_t *flow = json_object_get(p.docs[i].doc, "flow");
      ck_assert_str_eq(json_string_value(json_object_get(flow, "module")), "user");
      ck_assert_str_eq(json_string_value(json_object_get(json_object_get(flow, "data"), "id")), ALICE_ID);
      found = true;
    }
  }
  ck_assert(found);
  /* Same input, same plan (derived ids are stable). */
  struct kz_apps_seed_plan p2;
  ck_assert_int_eq(kz_apps_seed_plan(seed, 63900000001, &p2, err, sizeof err), 0);
  ck_assert_uint_eq(p2.ndocs, p.ndocs);
  for (size_t i = 0; i < p.ndocs; i++) {
    ck_assert_str_eq(p.docs[i].id, p2.docs[i].id);
    ck_assert(kz_apps_seed_doc_same(p.docs[i].doc, p2.docs[i].doc));
  }
  kz_apps_seed_plan_free(&p2);
  kz_apps_seed_plan_free(&p);
  json_decref(seed);
}
END_TEST

static void plan_err(const char *json, const char *want) {
  json_t *j = json_loads(json, 0, NULL);
  ck_assert_ptr_nonnull(j);
  struct kz_apps_seed_plan p;
  char err[256];
  ck_assert_int_eq(kz_apps_seed_plan(j, 0, &p, err, sizeof err), KZ_EPROTO);
  ck_assert_msg(strstr(err, want), "error '%s' lacks '%s'", err, want);
  kz_apps_seed_plan_free(&p);
  json_decref(j);
}

START_TEST(test_seed_plan_errors) {
  plan_err("[]", "JSON object");
  plan_err("{\"acounts\":[]}", "unknown key \"acounts\"");
  plan_err("{\"accounts\":[{\"name\":\"A\"}]}", "accounts[0]: \"realm\" is required");
  plan_err("{\"accounts\":[{\"name\":\"A\",\"realm\":\"a.com\",\"id\":\"xyz\"}]}", "accounts[0]: \"id\" must be 32");
  plan_err("{\"accounts\":[{\"name\":\"A\",\"realm\":\"a.com\",\"users\":[{\"username\":\"u\",\"devices\":[{"
           "\"name\":\"d\",\"username\":\"x\"}]}]}]}",
           "accounts[0].users[0].devices[0]: \"password\" is required");
  plan_err("{\"accounts\":[{\"name\":\"A\",\"realm\":\"a.com\"},{\"name\":\"B\",\"realm\":\"a.com\"}]}",
           "accounts[1]: realm \"a.com\" is used by another account");
  plan_err("{\"media_servers\":[{\"name\":\"fs\",\"uri\":\"10.0.0.1\"}]}", "media_servers[0]: \"uri\" must be");
  /* Derived ids: an account without an id gets a stable 32-hex one. */
  json_t *j = json_loads("{\"accounts\":[{\"name\":\"A\",\"realm\":\"a.com\"}]}", 0, NULL);
  struct kz_apps_seed_plan p;
  ck_assert_int_eq(kz_apps_seed_plan(j, 0, &p, NULL, 0), 0);
  ck_assert_uint_eq(strlen(p.dbs[2]), 42);
  ck_assert(!strncmp(p.dbs[2], "account/", 8));
  kz_apps_seed_plan_free(&p);
  json_decref(j);
}
END_TEST

START_TEST(test_seed_plan_alloc_failures) {
  /* Fail the k-th kz allocation for every k: the planner reports
   * KZ_ENOMEM (or succeeds once k is past its last allocation) and
   * frees what it built either way (the leak check verifies). */
  json_t *seed = load_basic();
  bool succeeded = false;
  for (int64_t k = 0; k < 400 && !succeeded; k++) {
    struct kz_apps_seed_plan p;
    kz_mem_fail_after(k);
    int rc = kz_apps_seed_plan(seed, 0, &p, NULL, 0);
    kz_mem_fail_after(-1);
    ck_assert_msg(rc == 0 || rc == KZ_ENOMEM, "k=%lld rc=%d", (long long)k, rc);
    succeeded = rc == 0;
    kz_apps_seed_plan_free(&p);
  }
  ck_assert(succeeded);
  json_decref(seed);
}
END_TEST

START_TEST(test_account_db_name) {
  char db[KZ_APPS_ACCOUNT_DB_LEN];
  ck_assert_int_eq(kz_apps_account_db("3C3F9A0B1D2E4F5061728394A5B6C7D8", db), 0);
  ck_assert_str_eq(db, ACME_DB);
  ck_assert_int_eq(kz_apps_account_db("3c3f", db), KZ_EINVAL);
  ck_assert_int_eq(kz_apps_account_db("zz3f9a0b1d2e4f5061728394a5b6c7d8", db), KZ_EINVAL);
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_apps_url_escape(&b, ACME_DB), 0);
  ck_assert_str_eq((const char *)b.data, "account%2F3c%2F3f%2F9a0b1d2e4f5061728394a5b6c7d8");
  kz_buf_free(&b);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Seed applier: a seeder process writes the plan into the fake db      */

struct seeder {
  struct kz_http_client *http;
  struct kz_dbclient *db;
  struct kz_apps_seed_run *run;
};

struct seed_job {
  struct kz_apps_seed_plan plan;
  bool done;
  int err;
  char msg[512];
  struct kz_apps_seed_stats st;
  int progress;
};

static void seed_progress(void *arg, const char *db, const char *id, const char *what) {
  ((struct seed_job *)arg)->progress++;
}

static void seed_done(void *arg, int err, const char *msg, const struct kz_apps_seed_stats *st) {
  struct seed_job *j = arg;
  j->done = true;
  j->err = err;
  snprintf(j->msg, sizeof j->msg, "%s", msg);
  j->st = *st;
}

static int seeder_start(struct kz_env *env, const void *cfg, void **inst) {
  struct seed_job *job = (struct seed_job *)cfg;
  struct seeder *s = kz_calloc(1, sizeof *s);
  int rc = kz_http_client_stream_new(&s->http, env, NULL);
  struct kz_dbclient_cfg dc = {.url = "http://" DB_IP ":5984"};
  if (!rc) rc = kz_dbclient_new(&s->db, s->http, &dc);
  if (!rc) rc = kz_apps_seed_apply(&s->run, s->db, &job->plan, seed_progress, seed_done, job);
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

static const struct kz_sim_app seeder_app = {"seeder", seeder_start, seeder_stop};

START_TEST(test_seed_apply_idempotent) {
  struct world *w = world_new(false);
  w->db = add_proc(w, "db", DB_IP, &couch_app, &w->store);
  json_t *seed = load_basic();
  struct seed_job job = {0};
  char err[256];
  ck_assert_int_eq(kz_apps_seed_plan(seed, 63900000000, &job.plan, err, sizeof err), 0);
  add_proc(w, "seeder", "10.0.0.50", &seeder_app, &job);
  run(w, 5 * SEC);
  ck_assert_msg(job.done && job.err == 0, "seed: %d %s", job.err, job.msg);
  ck_assert_uint_eq(job.st.dbs_created, 4);
  ck_assert_uint_eq(job.st.docs_created, job.plan.ndocs);
  ck_assert_uint_eq(job.st.docs_updated, 0);
  /* The account db name went through as account%2F..: the fake db
   * decodes it back into one path segment. */
  ck_assert_ptr_nonnull(fc_db_find(&w->store, ACME_DB));
  json_t *dev = fc_doc_find(&w->store, ACME_DB, DEV1001_ID);
  ck_assert_ptr_nonnull(dev);
  ck_assert_str_eq(json_string_value(json_object_get(dev, "pvt_type")), "device");
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(dev, "sip"), "password")), "s3cret-1001");
  char rev1[64];
  snprintf(rev1, sizeof rev1, "%s", json_string_value(json_object_get(dev, "_rev")));
  ck_assert_ptr_nonnull(fc_doc_find(&w->store, "accounts", "_design/accounts"));
  int puts = w->store.puts;

  /* Second run, a second later: nothing changes. */
  struct seed_job job2 = {0};
  ck_assert_int_eq(kz_apps_seed_plan(seed, 63900000100, &job2.plan, err, sizeof err), 0);
  add_proc(w, "seeder2", "10.0.0.51", &seeder_app, &job2);
  run(w, 5 * SEC);
  ck_assert_msg(job2.done && job2.err == 0, "seed: %d %s", job2.err, job2.msg);
  ck_assert_uint_eq(job2.st.dbs_existing, 4);
  ck_assert_uint_eq(job2.st.docs_unchanged, job2.plan.ndocs);
  ck_assert_int_eq(w->store.puts, puts);
  ck_assert_str_eq(json_string_value(json_object_get(fc_doc_find(&w->store, ACME_DB, DEV1001_ID), "_rev")), rev1);

  /* Third run with a changed password: that one document is updated
   * with its latest revision (no 409), its creation time kept. */
  json_t *d = json_object_get(json_array_get(json_object_get(json_array_get(json_object_get(seed, "accounts"), 0),
                                                             "users"),
                                             0),
                              "devices");
  json_object_set_new(json_array_get(d, 0), "password", json_string("changed"));
  struct seed_job job3 = {0};
  ck_assert_int_eq(kz_apps_seed_plan(seed, 63900000200, &job3.plan, err, sizeof err), 0);
  add_proc(w, "seeder3", "10.0.0.52", &seeder_app, &job3);
  run(w, 5 * SEC);
  ck_assert_msg(job3.done && job3.err == 0, "seed: %d %s", job3.err, job3.msg);
  ck_assert_uint_eq(job3.st.docs_updated, 1);
  ck_assert_uint_eq(job3.st.docs_unchanged, job3.plan.ndocs - 1);
  dev = fc_doc_find(&w->store, ACME_DB, DEV1001_ID);
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(dev, "sip"), "password")), "changed");
  ck_assert(!strncmp(json_string_value(json_object_get(dev, "_rev")), "2-", 2));
  ck_assert_int_eq(json_integer_value(json_object_get(dev, "pvt_created")), 63900000000);
  ck_assert_int_eq(w->store.conflicts, 0);

  kz_sim_free(w->sim);
  w->sim = NULL;
  kz_apps_seed_plan_free(&job.plan);
  kz_apps_seed_plan_free(&job2.plan);
  kz_apps_seed_plan_free(&job3.plan);
  json_decref(seed);
  fc_store_clear(&w->store);
  free(w);
}
END_TEST

START_TEST(test_seed_then_registrar) {
  /* The whole path: seed the db over HTTP, then authenticate. */
  struct world *w = world_new(false);
  json_t *seed = load_basic();
  struct seed_job job = {0};
  ck_assert_int_eq(kz_apps_seed_plan(seed, 63900000000, &job.plan, NULL, 0), 0);
  world_start(w);
  add_proc(w, "seeder", "10.0.0.50", &seeder_app, &job);
  run(w, 5 * SEC);
  ck_assert(job.done && job.err == 0);
  ck_assert_str_eq(authn(w, BETA, "dev2001"), "authn_resp");
  ck_assert_str_eq(reply_str(w, "Auth-Password"), "s3cret-2001");
  ck_assert_str_eq(ccv(w, "Owner-ID"), "77ab0000000000000000000000000003");
  world_free(w);
  kz_apps_seed_plan_free(&job.plan);
  json_decref(seed);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("apps");
  TCase *tc = kz_tcase(s, "registrar", 60);
  tcase_add_test(tc, test_authn_resp);
  tcase_add_test(tc, test_authn_errors);
  tcase_add_test(tc, test_case_insensitive);
  tcase_add_test(tc, test_cache_hit);
  tcase_add_test(tc, test_cache_invalidated_by_doc_change);
  tcase_add_test(tc, test_db_failure_unanswered);
  tcase_add_test(tc, test_db_silent_then_stop);
  tcase_add_test(tc, test_bad_message_refused);
  tcase_add_test(tc, test_two_registrars_share_the_queue);
  tcase_add_test(tc, test_start_errors);
  tc = kz_tcase(s, "e2e", 60);
  tcase_add_test(tc, test_e2e_proxy_register);
  tcase_add_test(tc, test_seed_then_registrar);
  tc = kz_tcase(s, "seed", 60);
  tcase_add_test(tc, test_seed_plan_basic);
  tcase_add_test(tc, test_seed_plan_errors);
  tcase_add_test(tc, test_seed_plan_alloc_failures);
  tcase_add_test(tc, test_account_db_name);
  tcase_add_test(tc, test_seed_apply_idempotent);
  return s;
}

int main(void) { return kz_run_suite(suite()); }
