/* cmd_run.c — `kz run ROLE --config FILE`: runs one role (db, proxy) for real under the libuv driver until SIGINT/SIGTERM. */
#include "cli.h"
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "kz/bus_amqp.h"
#include "kz/db.h"
#include "kz/error.h"
#include "kz/proxy.h"
#include "kz/uv_env.h"

/* The db role's configuration file (JSON):
 *   {"listen": "127.0.0.1:5984",     stream address (port 0 picks one)
 *    "data_dir": "/var/lib/kz/db",   required; created when missing
 *    "seed": 1,                      PRNG root (uuids, generated ids); default:
 *                                    fresh entropy every start, so a restart
 *                                    over the same data_dir never redraws an id
 *    "name": "db",                   instance name in logs
 *    "log_level": "info",            error|warn|info|debug|trace
 *    "file": "kzdb.sqlite",          SQLite file inside data_dir
 *    "max_body": 67108864,           largest request body in bytes
 *    "max_docid": 512,
 *    "changes_timeout_ms": 60000,    default longpoll timeout
 *    "idle_timeout_ms": 300000,      keep-alive idle limit
 *    "peers": ["http://10.0.0.12:5984"],  other db servers kept current both ways
 *    "peer_scan_ms": 5000}           how often their database lists are read */
#define RUN_DB_MAX_PEERS 16
struct run_db_cfg {
  char listen[128];
  char data_dir[1024];
  char name[64];
  char file[256];
  uint64_t seed;
  int log_level;
  char peer_urls[RUN_DB_MAX_PEERS][256];
  const char *peers[RUN_DB_MAX_PEERS];
  struct kz_db_cfg db;
};

static int level_from(const char *s) {
  static const char *const names[] = {"error", "warn", "info", "debug", "trace"};
  for (int i = 0; i < 5; i++)
    if (!strcmp(s, names[i])) return i;
  return -1;
}

/* Reads FILE into cfg.  Errors name the file (and line/column for JSON
 * syntax errors) on stderr; returns 0 or 2. */
static int load_db_cfg(const char *path, struct run_db_cfg *cfg) {
  memset(cfg, 0, sizeof *cfg);
  snprintf(cfg->listen, sizeof cfg->listen, "127.0.0.1:5984");
  snprintf(cfg->name, sizeof cfg->name, "db");
  snprintf(cfg->file, sizeof cfg->file, "kzdb.sqlite");
  cfg->seed = kz_cli_default_seed();
  cfg->log_level = KZ_LOG_INFO;
  json_error_t err;
  json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
  if (!j) {
    if (err.line > 0)
      fprintf(stderr, "kz run db: %s:%d:%d: %s\n", path, err.line, err.column, err.text);
    else
      fprintf(stderr, "kz run db: %s: %s\n", path, err.text);
    return 2;
  }
  int rc = 2;
  if (!json_is_object(j)) {
    fprintf(stderr, "kz run db: %s: the configuration must be a JSON object\n", path);
    goto out;
  }
  const char *k;
  json_t *v;
  json_object_foreach(j, k, v) {
    bool ok = true;
    if (!strcmp(k, "listen") || !strcmp(k, "data_dir") || !strcmp(k, "name") || !strcmp(k, "file") ||
        !strcmp(k, "log_level")) {
      ok = json_is_string(v);
      const char *s = json_string_value(v);
      if (ok && !strcmp(k, "listen")) ok = snprintf(cfg->listen, sizeof cfg->listen, "%s", s) < (int)sizeof cfg->listen;
      if (ok && !strcmp(k, "data_dir")) ok = *s && snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", s) < (int)sizeof cfg->data_dir;
      if (ok && !strcmp(k, "name")) ok = *s && snprintf(cfg->name, sizeof cfg->name, "%s", s) < (int)sizeof cfg->name;
      if (ok && !strcmp(k, "file")) ok = snprintf(cfg->file, sizeof cfg->file, "%s", s) < (int)sizeof cfg->file;
      if (ok && !strcmp(k, "log_level")) ok = (cfg->log_level = level_from(s)) >= 0;
    } else if (!strcmp(k, "peers")) {
      size_t i;
      json_t *u;
      ok = json_is_array(v) && json_array_size(v) <= RUN_DB_MAX_PEERS;
      json_array_foreach(ok ? v : NULL, i, u) {
        const char *url = json_string_value(u);
        ok = ok && url && !strncmp(url, "http://", 7) &&
             snprintf(cfg->peer_urls[i], sizeof cfg->peer_urls[i], "%s", url) < (int)sizeof cfg->peer_urls[i];
        cfg->peers[i] = cfg->peer_urls[i];
      }
      cfg->db.npeers = ok ? json_array_size(v) : 0;
      cfg->db.peers = cfg->peers;
    } else if (!strcmp(k, "seed") || !strcmp(k, "max_body") || !strcmp(k, "max_docid") ||
               !strcmp(k, "changes_timeout_ms") || !strcmp(k, "idle_timeout_ms") || !strcmp(k, "peer_scan_ms")) {
      ok = json_is_integer(v) && json_integer_value(v) >= 0;
      uint64_t x = ok ? (uint64_t)json_integer_value(v) : 0;
      if (!strcmp(k, "seed")) cfg->seed = x;
      else if (!strcmp(k, "max_body")) cfg->db.max_body = x;
      else if (!strcmp(k, "max_docid")) cfg->db.max_docid = (size_t)x;
      else if (!strcmp(k, "changes_timeout_ms")) cfg->db.changes_timeout_ns = x * 1000000u;
      else if (!strcmp(k, "peer_scan_ms")) cfg->db.peer_scan_ns = x * 1000000u;
      else cfg->db.idle_timeout_ns = x * 1000000u;
    } else {
      fprintf(stderr, "kz run db: %s: unknown setting \"%s\"\n", path, k);
      goto out;
    }
    if (!ok) {
      fprintf(stderr, "kz run db: %s: bad value for \"%s\"\n", path, k);
      goto out;
    }
  }
  if (!cfg->data_dir[0]) {
    fprintf(stderr, "kz run db: %s: \"data_dir\" is required\n", path);
    goto out;
  }
  if (kz_addr_parse(&cfg->db.listen, cfg->listen)) {
    fprintf(stderr, "kz run db: %s: bad \"listen\" address \"%s\"\n", path, cfg->listen);
    goto out;
  }
  if (!kz_fs_path_valid(cfg->file)) {
    fprintf(stderr, "kz run db: %s: bad \"file\" name \"%s\"\n", path, cfg->file);
    goto out;
  }
  cfg->db.path = cfg->file;
  rc = 0;
out:
  json_decref(j);
  return rc;
}

struct run_state {
  struct kz_uv_env *drv;
  struct kz_db *db;
  uv_signal_t sigint, sigterm;
  int signo;
};

static void on_signal(uv_signal_t *h, int signo) {
  struct run_state *st = h->data;
  if (st->signo) return;
  st->signo = signo;
  fprintf(stderr, "kz run db: signal %d, stopping\n", signo);
  kz_db_free(st->db);
  st->db = NULL;
  kz_uv_env_free(st->drv);
  st->drv = NULL;
  uv_close((uv_handle_t *)&st->sigint, NULL);
  uv_close((uv_handle_t *)&st->sigterm, NULL);
}

static int run_db(const char *cfg_path) {
  struct run_db_cfg cfg;
  if (load_db_cfg(cfg_path, &cfg)) return 2;
  uv_loop_t loop;
  if (uv_loop_init(&loop)) {
    fprintf(stderr, "kz run db: cannot create the event loop\n");
    return 2;
  }
  struct run_state st = {0};
  int rc = kz_uv_env_new(&st.drv, &loop, cfg.name, cfg.seed, cfg.data_dir);
  if (rc) {
    fprintf(stderr, "kz run db: %s: data_dir \"%s\": %s\n", cfg_path, cfg.data_dir, kz_strerror(rc));
    uv_loop_close(&loop);
    return 2;
  }
  struct kz_env *env = kz_uv_env_get(st.drv);
  env->log_level = cfg.log_level;
  rc = kz_db_new(&st.db, env, &cfg.db);
  if (rc) {
    fprintf(stderr, "kz run db: cannot start on %s with %s/%s: %s\n", cfg.listen, cfg.data_dir, cfg.file,
            kz_strerror(rc));
    kz_uv_env_free(st.drv);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 2;
  }
  struct kz_addr a = kz_db_addr(st.db);
  char as[KZ_ADDR_STRLEN];
  kz_addr_format(&a, as, sizeof as);
  fprintf(stderr, "kz run db: listening on %s, data in %s\n", as, cfg.data_dir);
  uv_signal_init(&loop, &st.sigint);
  uv_signal_init(&loop, &st.sigterm);
  st.sigint.data = st.sigterm.data = &st;
  uv_signal_start(&st.sigint, on_signal, SIGINT);
  uv_signal_start(&st.sigterm, on_signal, SIGTERM);
  uv_run(&loop, UV_RUN_DEFAULT);
  int crc = uv_loop_close(&loop);
  if (crc) fprintf(stderr, "kz run db: loop closed with handles left (%s)\n", uv_strerror(crc));
  return 0;
}

/* ------------------------------------------------------------------ */
/* kz run proxy --config FILE
 *
 * The file is one JSON object: every key of kz_proxy_config_parse
 * (docs/proxy.md: "listen", "media_servers", "min_expires_s", ...) plus
 * the process's own:
 *   "bus": {"uris": ["amqp://guest:guest@127.0.0.1:5672/"], AMQP brokers, tried in order
 *           "heartbeat_s": 5}                                 (optional)
 *   "name": "proxy", "log_level": "info",
 *   "seed": 1   PRNG root; it also names the bus reply queue, so two
 *               processes on one broker need different seeds (default:
 *               fresh entropy per process, kz_cli_default_seed)
 * Without "bus" the proxy runs without one (it then drops REGISTERs, as
 * Kazoo's Kamailio does without AMQP).  On SIGINT/SIGTERM it stops and
 * prints its counters as one line on stderr ("kz run proxy: stats
 * requests_in=... auth_cache_hits=..."), which tests read. */

#define RUN_PROXY_MAX_URIS 8

struct run_proxy {
  struct kz_proxy_config pc;
  char name[64];
  uint64_t seed;
  int log_level;
  char *uris[RUN_PROXY_MAX_URIS];
  size_t nuris;
  int heartbeat_s;
  uv_loop_t *loop;
  struct kz_uv_env *drv;
  void *proxy;
  uv_signal_t sigint, sigterm;
  int signo;
};

static int proxy_amqp_factory(void *arg, struct kz_env *env, struct kz_bus_backend *out) {
  struct run_proxy *rp = arg;
  (void)env;
  struct kz_bus_amqp_opts o = {.heartbeat_s = rp->heartbeat_s};
  return kz_bus_amqp_new(out, rp->loop, (const char *const *)rp->uris, rp->nuris, &o);
}

static void proxy_cfg_free(struct run_proxy *rp) {
  for (size_t i = 0; i < rp->nuris; i++) free(rp->uris[i]);
  rp->nuris = 0;
}

/* Reads FILE into rp.  Errors name the file on stderr; returns 0 or 2. */
static int load_proxy_cfg(const char *path, struct run_proxy *rp) {
  kz_proxy_config_defaults(&rp->pc);
  snprintf(rp->name, sizeof rp->name, "proxy");
  /* The seed names the bus reply queue (an exclusive queue): two
   * processes with one seed on one broker lock each other out, so the
   * default differs from process to process. */
  rp->seed = kz_cli_default_seed();
  rp->log_level = KZ_LOG_INFO;
  json_error_t jerr;
  json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  if (!j) {
    if (jerr.line > 0) fprintf(stderr, "kz run proxy: %s:%d:%d: %s\n", path, jerr.line, jerr.column, jerr.text);
    else fprintf(stderr, "kz run proxy: %s: %s\n", path, jerr.text);
    return 2;
  }
  int rc = 2;
  char *rest = NULL;
  if (!json_is_object(j)) {
    fprintf(stderr, "kz run proxy: %s: the configuration must be a JSON object\n", path);
    goto out;
  }
  json_t *v;
  if ((v = json_object_get(j, "name"))) {
    if (!json_is_string(v) || !*json_string_value(v) || strlen(json_string_value(v)) >= sizeof rp->name) {
      fprintf(stderr, "kz run proxy: %s: bad value for \"name\"\n", path);
      goto out;
    }
    snprintf(rp->name, sizeof rp->name, "%s", json_string_value(v));
  }
  if ((v = json_object_get(j, "seed"))) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
      fprintf(stderr, "kz run proxy: %s: bad value for \"seed\"\n", path);
      goto out;
    }
    rp->seed = (uint64_t)json_integer_value(v);
  }
  if ((v = json_object_get(j, "log_level"))) {
    if (!json_is_string(v) || (rp->log_level = level_from(json_string_value(v))) < 0) {
      fprintf(stderr, "kz run proxy: %s: bad value for \"log_level\"\n", path);
      goto out;
    }
  }
  if ((v = json_object_get(j, "bus"))) {
    json_t *uris = json_is_object(v) ? json_object_get(v, "uris") : NULL;
    const char *k;
    json_t *x;
    bool ok = uris && json_is_array(uris) && json_array_size(uris) > 0 &&
              json_array_size(uris) <= RUN_PROXY_MAX_URIS;
    json_object_foreach(json_is_object(v) ? v : NULL, k, x) {
      if (strcmp(k, "uris") && strcmp(k, "heartbeat_s")) ok = false;
    }
    json_t *hb = json_is_object(v) ? json_object_get(v, "heartbeat_s") : NULL;
    if (hb && !json_is_integer(hb)) ok = false;
    if (hb) rp->heartbeat_s = (int)json_integer_value(hb);
    for (size_t i = 0; ok && i < json_array_size(uris); i++) {
      json_t *u = json_array_get(uris, i);
      if (!json_is_string(u) || !(rp->uris[rp->nuris] = strdup(json_string_value(u)))) ok = false;
      else rp->nuris++;
    }
    if (!ok) {
      fprintf(stderr, "kz run proxy: %s: \"bus\" must be {\"uris\": [\"amqp://...\", ...] (1 to %d), "
              "\"heartbeat_s\": N}\n", path, RUN_PROXY_MAX_URIS);
      goto out;
    }
  }
  json_object_del(j, "name");
  json_object_del(j, "seed");
  json_object_del(j, "log_level");
  json_object_del(j, "bus");
  rest = json_dumps(j, JSON_COMPACT);
  char err[256] = "";
  if (!rest || kz_proxy_config_parse(&rp->pc, rest, strlen(rest), err, sizeof err)) {
    fprintf(stderr, "kz run proxy: %s: %s\n", path, rest ? err : "out of memory");
    goto out;
  }
  if (kz_proxy_config_check(&rp->pc, err, sizeof err)) {
    fprintf(stderr, "kz run proxy: %s: %s\n", path, err);
    goto out;
  }
  if (rp->nuris) {
    rp->pc.bus_factory = proxy_amqp_factory;
    rp->pc.bus_arg = rp;
  }
  rc = 0;
out:
  free(rest);
  json_decref(j);
  if (rc) proxy_cfg_free(rp);
  return rc;
}

static void proxy_print_stats(const struct kz_proxy *p) {
  struct kz_proxy_stats s;
  kz_proxy_get_stats(p, &s);
  fprintf(stderr,
          "kz run proxy: stats requests_in=%" PRIu64 " responses_in=%" PRIu64 " malformed=%" PRIu64
          " replies_local=%" PRIu64 " forwarded=%" PRIu64 " registers_ok=%" PRIu64 " registers_challenged=%" PRIu64
          " registers_dropped=%" PRIu64 " authn_requests=%" PRIu64 " authn_timeouts=%" PRIu64
          " auth_cache_hits=%" PRIu64 " auth_failures=%" PRIu64 " failovers=%" PRIu64 " flood_dropped=%" PRIu64
          " auth_bans=%" PRIu64 " filtered=%" PRIu64 " nat_pings_sent=%" PRIu64 " nat_bindings_dropped=%" PRIu64
          " probes_sent=%" PRIu64 "\n",
          s.requests_in, s.responses_in, s.malformed, s.replies_local, s.forwarded, s.registers_ok,
          s.registers_challenged, s.registers_dropped, s.authn_requests, s.authn_timeouts, s.auth_cache_hits,
          s.auth_failures, s.failovers, s.flood_dropped, s.auth_bans, s.filtered, s.nat_pings_sent,
          s.nat_bindings_dropped, s.probes_sent);
}

static void on_proxy_signal(uv_signal_t *h, int signo) {
  struct run_proxy *rp = h->data;
  if (rp->signo) return;
  rp->signo = signo;
  fprintf(stderr, "kz run proxy: signal %d, stopping\n", signo);
  proxy_print_stats(rp->proxy);
  kz_proxy_stop(rp->proxy);
  rp->proxy = NULL;
  kz_uv_env_free(rp->drv);
  rp->drv = NULL;
  uv_close((uv_handle_t *)&rp->sigint, NULL);
  uv_close((uv_handle_t *)&rp->sigterm, NULL);
}

static int run_proxy(const char *cfg_path) {
  struct run_proxy *rp = calloc(1, sizeof *rp);
  if (!rp) return 2;
  int status = 2;
  if (load_proxy_cfg(cfg_path, rp)) goto done;
  uv_loop_t loop;
  if (uv_loop_init(&loop)) {
    fprintf(stderr, "kz run proxy: cannot create the event loop\n");
    goto done;
  }
  rp->loop = &loop;
  int rc = kz_uv_env_new(&rp->drv, &loop, rp->name, rp->seed, NULL);
  if (rc) {
    fprintf(stderr, "kz run proxy: %s\n", kz_strerror(rc));
    uv_loop_close(&loop);
    goto done;
  }
  kz_uv_env_get(rp->drv)->log_level = rp->log_level;
  rc = kz_proxy_start(kz_uv_env_get(rp->drv), &rp->pc, &rp->proxy);
  if (rc) {
    fprintf(stderr, "kz run proxy: cannot start on %s: %s\n", rp->pc.listen, kz_strerror(rc));
    kz_uv_env_free(rp->drv);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    goto done;
  }
  fprintf(stderr, "kz run proxy: listening on %s (%zu media servers, bus: %s)\n", rp->pc.listen,
          rp->pc.n_media_servers, rp->nuris ? rp->uris[0] : "none");
  uv_signal_init(&loop, &rp->sigint);
  uv_signal_init(&loop, &rp->sigterm);
  rp->sigint.data = rp->sigterm.data = rp;
  uv_signal_start(&rp->sigint, on_proxy_signal, SIGINT);
  uv_signal_start(&rp->sigterm, on_proxy_signal, SIGTERM);
  uv_run(&loop, UV_RUN_DEFAULT);
  int crc = uv_loop_close(&loop);
  if (crc) fprintf(stderr, "kz run proxy: loop closed with handles left (%s)\n", uv_strerror(crc));
  status = 0;
done:
  proxy_cfg_free(rp);
  free(rp);
  return status;
}

static void run_usage(FILE *out) {
  fprintf(out, "usage: kz run ROLE --config FILE\n\nroles:\n  db       the CouchDB-compatible document server\n"
               "  proxy    the SIP proxy (Kamailio's part): registrar, dispatcher, anti-flood; AMQP bus\n");
#ifdef KZ_CLI_HAVE_RUN_APPS
  fprintf(out, "  apps     the registrar app: answers authn_req from device documents in the db\n");
#endif
}

int kz_cli_run(int argc, char **argv) {
  const char *role = NULL, *cfg = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      run_usage(stdout);
      return 0;
    }
    if (!strcmp(argv[i], "--config") && i + 1 < argc) {
      cfg = argv[++i];
    } else if (!strncmp(argv[i], "--config=", 9)) {
      cfg = argv[i] + 9;
    } else if (argv[i][0] != '-' && !role) {
      role = argv[i];
    } else {
      fprintf(stderr, "kz run: unexpected argument '%s'\n", argv[i]);
      run_usage(stderr);
      return 2;
    }
  }
  if (!role || !cfg) {
    run_usage(stderr);
    return 2;
  }
  if (!strcmp(role, "db")) return run_db(cfg);
  if (!strcmp(role, "proxy")) return run_proxy(cfg);
#ifdef KZ_CLI_HAVE_RUN_APPS
  if (!strcmp(role, "apps")) return kz_cli_run_apps(argc, argv);
#endif
  fprintf(stderr, "kz run: unknown role '%s'\n", role);
  run_usage(stderr);
  return 2;
}
