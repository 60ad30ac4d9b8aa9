/* roles.c — THE table of roles this kz can run in the simulator: topology role -> kz_sim_app + config builder. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sim_run.h"
#include "kz/sipp_sim.h"

/* KZ_SIM_RUN_ROLES is defined by sim/run/CMakeLists.txt when the role
 * libraries (proxy, apps, db, broker, bus wire) are all in the build;
 * without them the table lists those roles as missing. */
#ifdef KZ_SIM_RUN_ROLES
#include <jansson.h>

#include "kz/apps.h"
#include "kz/apps_seed.h"
#include "kz/bus_wire.h"
#include "kz/db.h"
#include "kz/dbclient.h"
#include "kz/http_client.h"
#include "kz/proxy.h"
#include "kz/sim_broker.h"
#endif

/* Like the rest of the runner this file is an OS-facing front end: the
 * builders read the proxy's side-car configuration and the seed file.
 * What they read only shapes the configuration, fixed before the run
 * starts, so it reaches the trace like any other topology input.
 *
 * Ports: every host uses the standard port of each role it runs (SIP
 * 5060, bus 5672, db 5984), so a role finds its peers from the topology
 * alone. */

#define SIP_PORT 5060
#define DB_PORT 5984
#define MAX_BROKERS 16
#define SEED_RETRY_NS UINT64_C(500000000)

#ifndef KZ_SOURCE_DIR
#define KZ_SOURCE_DIR "."
#endif

#ifdef KZ_SIM_RUN_ROLES
/* ------------------------------------------------------------------ */
/* The bus: every role reaches the topology's broker hosts through the
 * wire backend, its own host's broker first. */

struct bus_peers {
  struct kz_addr brokers[MAX_BROKERS];
  size_t n;
};

static void find_brokers(const struct kz_sim_run_role_ctx *ctx, struct bus_peers *b) {
  const struct kz_topo *t = ctx->topo;
  b->n = 0;
  if (t->hosts[ctx->host].roles & (1u << KZ_TOPO_BROKER)) {
    b->brokers[b->n] = t->hosts[ctx->host].addr;
    b->brokers[b->n++].port = KZ_BUS_WIRE_PORT;
  }
  for (size_t h = 0; h < t->nhosts && b->n < MAX_BROKERS; h++) {
    if (h == ctx->host || !(t->hosts[h].roles & (1u << KZ_TOPO_BROKER))) continue;
    b->brokers[b->n] = t->hosts[h].addr;
    b->brokers[b->n++].port = KZ_BUS_WIRE_PORT;
  }
}

static int wire_factory(void *arg, struct kz_env *env, struct kz_bus_backend *out) {
  const struct bus_peers *b = arg;
  if (!b->n) return KZ_EHOSTUNREACH; /* no broker host: the role runs without a bus */
  struct kz_bus_wire_cfg c = {.brokers = b->brokers, .n_brokers = b->n};
  return kz_bus_wire_new(out, env, &c);
}

/* ------------------------------------------------------------------ */
/* broker: the broker model (sim/broker) on port 5672. */

static int broker_build(const struct kz_sim_run_role_ctx *ctx, void **cfg) {
  struct kz_sim_broker_cfg *c = kz_calloc(1, sizeof *c);
  if (!c) return KZ_ENOMEM;
  c->listen = ctx->topo->hosts[ctx->host].addr;
  c->listen.port = KZ_BUS_WIRE_PORT;
  *cfg = c;
  return 0;
}

/* ------------------------------------------------------------------ */
/* db: the CouchDB-compatible server on port 5984, storage on the host. */

/* The db's configuration and the URLs of its peers, in one allocation
 * (cfg first: the app receives a pointer to it).  Every other db host
 * of the topology is a peer: the dbs keep each other current, as the
 * CouchDB cluster of Kazoo's servers does. */
struct db_sim_cfg {
  struct kz_db_cfg cfg;
  char urls[MAX_BROKERS][32];
  const char *peers[MAX_BROKERS];
};

static int db_build(const struct kz_sim_run_role_ctx *ctx, void **cfg) {
  const struct kz_topo *t = ctx->topo;
  struct db_sim_cfg *c = kz_calloc(1, sizeof *c);
  if (!c) return KZ_ENOMEM;
  c->cfg.listen = t->hosts[ctx->host].addr;
  c->cfg.listen.port = DB_PORT;
  size_t n = 0;
  for (size_t h = 0; h < t->nhosts && n < MAX_BROKERS; h++) {
    if (h == ctx->host || !(t->hosts[h].roles & (1u << KZ_TOPO_DB))) continue;
    const uint8_t *ip = t->hosts[h].addr.ip;
    snprintf(c->urls[n], sizeof c->urls[n], "http://%u.%u.%u.%u:%d", ip[0], ip[1], ip[2], ip[3], DB_PORT);
    c->peers[n] = c->urls[n];
    n++;
  }
  c->cfg.peers = c->peers;
  c->cfg.npeers = n;
  *cfg = c;
  return 0;
}

/* ------------------------------------------------------------------ */
/* proxy: kz_proxy with Kazoo's defaults, overlaid with the topology's
 * side-car file "<topology>.proxy.json" when there is one (the same JSON
 * `kz run proxy --config` reads), then: listen on the host's SIP port,
 * dispatcher = the media hosts, or the sipp-uas hosts standing in for
 * media servers until the media role exists. */

struct proxy_sim_cfg {
  struct kz_proxy_config pc; /* first: the app receives a pointer to it */
  struct bus_peers bus;
};

/* "<dir>/<stem>.proxy.json" for topology "<dir>/<stem>.yaml". */
static void sidecar_path(const char *topology, const char *role, char *out, size_t len) {
  size_t n = strlen(topology);
  if (n > 5 && !strcmp(topology + n - 5, ".yaml")) n -= 5;
  else if (n > 4 && !strcmp(topology + n - 4, ".yml")) n -= 4;
  snprintf(out, len, "%.*s.%s.json", (int)n, topology, role);
}

/* Reads a whole file into a kz_malloc'ed NUL-terminated buffer.
 * Returns 0, KZ_ENOENT (no such file), KZ_EIO or KZ_ENOMEM. */
static int slurp(const char *path, char **out, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return errno == ENOENT ? KZ_ENOENT : KZ_EIO;
  struct kz_buf b;
  kz_buf_init(&b);
  char chunk[4096];
  size_t n;
  int rc = 0;
  while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0) rc = kz_buf_append(&b, chunk, n);
  if (!rc && ferror(f)) rc = KZ_EIO;
  fclose(f);
  if (!rc && !b.data) rc = kz_buf_reserve(&b, 1);
  if (rc) {
    kz_buf_free(&b);
    return rc;
  }
  *out = (char *)b.data;
  *len = b.len;
  return 0;
}

static int proxy_build(const struct kz_sim_run_role_ctx *ctx, void **cfg) {
  const struct kz_topo *t = ctx->topo;
  struct proxy_sim_cfg *c = kz_calloc(1, sizeof *c);
  if (!c) return KZ_ENOMEM;
  kz_proxy_config_defaults(&c->pc);
  const char *topo_path = ctx->opts->topology_path;
  if (topo_path) {
    char path[4096], *json = NULL, err[256] = "";
    size_t len = 0;
    sidecar_path(topo_path, "proxy", path, sizeof path);
    int rc = slurp(path, &json, &len);
    if (rc == 0) {
      rc = kz_proxy_config_parse(&c->pc, json, len, err, sizeof err);
      kz_free(json);
      if (rc) {
        fprintf(stderr, "kz sim: %s: %s\n", path, err);
        kz_free(c);
        return rc;
      }
    } else if (rc != KZ_ENOENT) {
      kz_free(c);
      return rc;
    }
  }
  char ip[KZ_ADDR_STRLEN];
  struct kz_addr listen = t->hosts[ctx->host].addr;
  listen.port = SIP_PORT;
  kz_addr_format(&listen, c->pc.listen, sizeof c->pc.listen);
  /* Media servers: the topology's, replacing whatever the side-car says
   * (its addresses belong to the real world). */
  c->pc.n_media_servers = 0;
  int media_role = KZ_TOPO_MEDIA;
  bool any_media = false;
  for (size_t h = 0; h < t->nhosts; h++) any_media |= (t->hosts[h].roles & (1u << KZ_TOPO_MEDIA)) != 0;
  if (!any_media) media_role = KZ_TOPO_SIPP_UAS;
  for (size_t h = 0; h < t->nhosts && c->pc.n_media_servers < KZ_PROXY_MAX_SERVERS; h++) {
    if (!(t->hosts[h].roles & (1u << media_role))) continue;
    struct kz_addr m = t->hosts[h].addr;
    m.port = SIP_PORT;
    kz_addr_format(&m, ip, sizeof ip);
    snprintf(c->pc.media_servers[c->pc.n_media_servers++], KZ_PROXY_URI_MAX, "sip:%s", ip);
  }
  find_brokers(ctx, &c->bus);
  c->pc.bus_factory = wire_factory;
  c->pc.bus_arg = &c->bus;
  char err[256];
  int rc = kz_proxy_config_check(&c->pc, err, sizeof err);
  if (rc) {
    fprintf(stderr, "kz sim: proxy on %s: %s\n", t->hosts[ctx->host].name, err);
    kz_free(c);
    return rc;
  }
  *cfg = c;
  return 0;
}

/* ------------------------------------------------------------------ */
/* apps: the registrar app, on the db of the topology (this host's when it
 * runs one, else the first db host).  Before the registrar starts, the
 * process seeds the db with fixtures/seed/basic.json through the db's
 * HTTP API (the same plan `kz seed` applies), so authn_req never meets
 * an empty db; a failed seed is retried every 500 ms (the db host may
 * still be booting). */

struct apps_sim_cfg {
  struct kz_apps_registrar_cfg rc;
  struct bus_peers bus;
  char db_url[96];
  char *seed_json; /* the seed file's text, or NULL: no seeding */
  size_t seed_len;
};

struct apps_sim {
  struct kz_env *env;
  const struct apps_sim_cfg *cfg;
  struct kz_http_client *http;
  struct kz_dbclient *db;
  struct kz_apps_seed_plan plan;
  bool have_plan;
  struct kz_apps_seed_run *run;
  int seed_err; /* outcome of the last seed run */
  struct kz_timer timer; /* next step, outside the seed run's callbacks */
  void *registrar;
};

static void apps_seed_cleanup(struct apps_sim *a) {
  /* Freeing the db client first cancels a pending request of the run. */
  kz_dbclient_free(a->db);
  a->db = NULL;
  kz_apps_seed_run_free(a->run);
  a->run = NULL;
  kz_http_client_free(a->http);
  a->http = NULL;
  if (a->have_plan) kz_apps_seed_plan_free(&a->plan);
  a->have_plan = false;
}

static void apps_seed_done(void *arg, int err, const char *msg, const struct kz_apps_seed_stats *st) {
  struct apps_sim *a = arg;
  a->seed_err = err ? err : 0;
  if (err)
    kz_log(a->env, KZ_LOG_WARN, "seed", "seeding failed (%s), retrying: %s", kz_strerror(err), msg ? msg : "");
  else
    kz_log(a->env, KZ_LOG_INFO, "seed", "seeded: %zu dbs created, %zu docs created, %zu updated, %zu unchanged",
           st->dbs_created, st->docs_created, st->docs_updated, st->docs_unchanged);
  /* The run may not be freed from inside its own callback: go on from a timer. */
  kz_timer_start(&a->timer, err ? SEED_RETRY_NS : 0);
}

/* Plans the seed (with the env's wall clock for Kazoo's timestamps) and
 * starts applying it.  Returns 0 or a KZ_E* code (nothing pending). */
static int apps_try_seed(struct apps_sim *a) {
  int64_t greg = kz_env_wall(a->env) / 1000000000 + KZ_APPS_GREGORIAN_UNIX_OFFSET;
  json_error_t jerr;
  json_t *seed = json_loadb(a->cfg->seed_json, a->cfg->seed_len, 0, &jerr);
  if (!seed) {
    kz_log(a->env, KZ_LOG_ERROR, "seed", "seed file: line %d: %s", jerr.line, jerr.text);
    return KZ_EPROTO;
  }
  char err[256] = "";
  int rc = kz_apps_seed_plan(seed, greg, &a->plan, err, sizeof err);
  json_decref(seed);
  a->have_plan = true;
  if (rc) {
    kz_log(a->env, KZ_LOG_ERROR, "seed", "bad seed: %s", err);
    return rc;
  }
  struct kz_dbclient_cfg dc = {.url = a->cfg->db_url};
  if ((rc = kz_http_client_stream_new(&a->http, a->env, NULL)) || (rc = kz_dbclient_new(&a->db, a->http, &dc)))
    return rc;
  a->seed_err = KZ_EAGAIN;
  return kz_apps_seed_apply(&a->run, a->db, &a->plan, NULL, apps_seed_done, a);
}

static void apps_timer(void *arg) {
  struct apps_sim *a = arg;
  apps_seed_cleanup(a);
  if (a->seed_err) {
    int rc = apps_try_seed(a);
    if (rc) {
      apps_seed_cleanup(a);
      a->seed_err = rc;
      kz_timer_start(&a->timer, SEED_RETRY_NS);
    }
    return;
  }
  int rc = kz_apps_registrar_start(a->env, &a->cfg->rc, &a->registrar);
  if (rc) kz_log(a->env, KZ_LOG_ERROR, "apps", "registrar does not start: %s", kz_strerror(rc));
}

static int apps_start(struct kz_env *env, const void *cfgp, void **instance) {
  struct apps_sim *a = kz_calloc(1, sizeof *a);
  if (!a) return KZ_ENOMEM;
  a->env = env;
  a->cfg = cfgp;
  kz_timer_init(&a->timer, env, apps_timer, a);
  int rc = apps_try_seed(a);
  if (rc) {
    /* The db may be unreachable for now: try again shortly. */
    apps_seed_cleanup(a);
    a->seed_err = rc;
    if (rc == KZ_ENOMEM || (rc = kz_timer_start(&a->timer, SEED_RETRY_NS))) {
      kz_free(a);
      return rc ? rc : KZ_ENOMEM;
    }
  }
  *instance = a;
  return 0;
}

static void apps_stop(void *instance) {
  struct apps_sim *a = instance;
  if (!a) return;
  kz_timer_stop(&a->timer);
  apps_seed_cleanup(a);
  kz_apps_registrar_stop(a->registrar);
  kz_free(a);
}

static const struct kz_sim_app apps_app = {"apps", apps_start, apps_stop};

static void apps_free_cfg(void *p) {
  struct apps_sim_cfg *c = p;
  kz_free(c->seed_json);
  kz_free(c);
}

static int apps_build(const struct kz_sim_run_role_ctx *ctx, void **cfg) {
  const struct kz_topo *t = ctx->topo;
  long db = -1;
  if (t->hosts[ctx->host].roles & (1u << KZ_TOPO_DB)) db = (long)ctx->host;
  for (size_t h = 0; h < t->nhosts && db < 0; h++)
    if (t->hosts[h].roles & (1u << KZ_TOPO_DB)) db = (long)h;
  if (db < 0) {
    fprintf(stderr, "kz sim: apps on %s needs a db host in the topology\n", t->hosts[ctx->host].name);
    return KZ_EINVAL;
  }
  struct apps_sim_cfg *c = kz_calloc(1, sizeof *c);
  if (!c) return KZ_ENOMEM;
  char ip[KZ_ADDR_STRLEN];
  kz_addr_format_ip(&t->hosts[db].addr, ip, sizeof ip);
  snprintf(c->db_url, sizeof c->db_url, "http://%s:%d", ip, DB_PORT);
  int rc = slurp(KZ_SOURCE_DIR "/fixtures/seed/basic.json", &c->seed_json, &c->seed_len);
  if (rc) {
    fprintf(stderr, "kz sim: cannot read %s: %s\n", KZ_SOURCE_DIR "/fixtures/seed/basic.json", kz_strerror(rc));
    kz_free(c);
    return rc;
  }
  find_brokers(ctx, &c->bus);
  c->rc.db_url = c->db_url;
  c->rc.bus_factory = wire_factory;
  c->rc.bus_arg = &c->bus;
  *cfg = c;
  return 0;
}

/* ------------------------------------------------------------------ */

/* One row per topology role, in enum kz_topo_role order.  A role is
 * "built" when its row has an app.  To add a role: give its row the
 * role's kz_sim_app, a build_cfg that turns the topology (ctx->topo,
 * ctx->host) into the role's config (peers' addresses come from the
 * topology's hosts), a free_cfg, and link the role's library into
 * kz_sim_run (sim/run/CMakeLists.txt).  Nothing else in the runner
 * changes.
 *
 * The SIPp endpoints are configured by the runner itself (their config
 * comes from the command line: scenario, rate, calls), hence no builder. */
static const struct kz_sim_app proxy_app = {"proxy", kz_proxy_start, kz_proxy_stop};
static const struct kz_sim_app db_app = {"db", kz_db_app_start, kz_db_app_stop};
#define ROW(role, app, build, free_cfg) {role, app, NULL, build, free_cfg}
#else
#define ROW(role, app, build, free_cfg)                                                                   \
  {role, NULL, "this kz was built without the role libraries (proxy, apps, db, broker, bus wire)", NULL, NULL}
#endif

static const struct kz_sim_run_role roles[KZ_TOPO_ROLE_COUNT] = {
    [KZ_TOPO_PROXY] = ROW(KZ_TOPO_PROXY, &proxy_app, proxy_build, kz_free),
    [KZ_TOPO_MEDIA] = {KZ_TOPO_MEDIA, NULL,
                       "the media role (impl/roles/media, FreeSWITCH's part) is not written yet", NULL, NULL},
    [KZ_TOPO_ECALLMGR] = {KZ_TOPO_ECALLMGR, NULL, "the ecallmgr role (impl/roles/ecallmgr) is not written yet",
                          NULL, NULL},
    [KZ_TOPO_APPS] = ROW(KZ_TOPO_APPS, &apps_app, apps_build, apps_free_cfg),
    [KZ_TOPO_DB] = ROW(KZ_TOPO_DB, &db_app, db_build, kz_free),
    [KZ_TOPO_BROKER] = ROW(KZ_TOPO_BROKER, &kz_sim_broker_app, broker_build, kz_free),
    [KZ_TOPO_SIPP_UAC] = {KZ_TOPO_SIPP_UAC, &kz_sipp_sim_app, NULL, NULL, NULL},
    [KZ_TOPO_SIPP_UAS] = {KZ_TOPO_SIPP_UAS, &kz_sipp_sim_app, NULL, NULL, NULL},
};

const struct kz_sim_run_role *kz_sim_run_role_get(enum kz_topo_role r) {
  return (unsigned)r < KZ_TOPO_ROLE_COUNT ? &roles[r] : NULL;
}

int kz_sim_run_check_roles(const struct kz_topo *t, struct kz_topo_err *err) {
  for (size_t h = 0; h < t->nhosts; h++)
    for (int r = 0; r < KZ_TOPO_ROLE_COUNT; r++) {
      if (!(t->hosts[h].roles & (1u << r)) || roles[r].app) continue;
      kz_topo_error_at(t, t->hosts[h].role_pos[r], err, "role '%s' is not built yet in this kz (%s)",
                       kz_topo_role_name((enum kz_topo_role)r), roles[r].missing);
      return KZ_ENOTSUP;
    }
  return 0;
}
