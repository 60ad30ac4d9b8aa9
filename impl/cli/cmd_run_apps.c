/* cmd_run_apps.c — `kz run apps --config FILE`: runs the registrar app for real (libuv driver, AMQP bus, libcurl to the db) until SIGINT/SIGTERM. */
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "cli.h"

#include "kz/apps.h"
#include "kz/bus_amqp.h"
#include "kz/error.h"
#include "kz/http_curl.h"
#include "kz/uv_env.h"

/* Declared in cli.h once the command is wired in; repeated here so the
 * file also builds into impl/roles/apps/tests. */
int kz_cli_run_apps(int argc, char **argv);

#define RA_MAX_URIS 8

/* The configuration file (JSON; every key but db_url and amqp_uris is
 * optional):
 *   {"amqp_uris": ["amqp://guest:guest@127.0.0.1:5672/"],  brokers, in failover order
 *    "db_url": "http://127.0.0.1:5984",   the db role or a CouchDB
 *    "name": "apps",                      instance name in logs
 *    "node": "registrar@host",            Node in bus envelopes
 *    "seed": 1,                           PRNG root (Server-ID, Msg-IDs); default:
 *                                         fresh entropy per process
 *    "log_level": "info",                 error|warn|info|debug|trace
 *    "queue": "registrar_authn",          shared authn queue
 *    "cache_ttl_ms": 60000, "cache_max": 10000, "no_cache": false,
 *    "db_timeout_ms": 2000} */
struct run_apps_cfg {
  char uris[RA_MAX_URIS][512];
  const char *uri_ptrs[RA_MAX_URIS];
  size_t n_uris;
  char db_url[512];
  char name[64];
  char node[128];
  char queue[128];
  uint64_t seed;
  int log_level;
  struct kz_apps_registrar_cfg reg;
  uv_loop_t *loop;
};

static int ra_level(const char *s) {
  static const char *const names[] = {"error", "warn", "info", "debug", "trace"};
  for (int i = 0; i < 5; i++)
    if (!strcmp(s, names[i])) return i;
  return -1;
}

static bool copy_str(char *dst, size_t n, const json_t *v) {
  return json_is_string(v) && json_string_length(v) > 0 &&
         (size_t)snprintf(dst, n, "%s", json_string_value(v)) < n;
}

/* Reads FILE into cfg; errors name the file (and line/column for JSON
 * syntax errors) on stderr.  Returns 0 or 2. */
static int load_cfg(const char *path, struct run_apps_cfg *cfg) {
  memset(cfg, 0, sizeof *cfg);
  snprintf(cfg->name, sizeof cfg->name, "apps");
  /* The seed draws the Server-ID, which names the exclusive reply
   * queue: two processes with one seed on one broker collide. */
  cfg->seed = kz_cli_default_seed();
  cfg->log_level = KZ_LOG_INFO;
  json_error_t je;
  json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
  if (!j) {
    if (je.line > 0) fprintf(stderr, "kz run apps: %s:%d:%d: %s\n", path, je.line, je.column, je.text);
    else fprintf(stderr, "kz run apps: %s: %s\n", path, je.text);
    return 2;
  }
  int rc = 2;
  if (!json_is_object(j)) {
    fprintf(stderr, "kz run apps: %s: the configuration must be a JSON object\n", path);
    goto out;
  }
  const char *k;
  json_t *v;
  json_object_foreach(j, k, v) {
    bool ok;
    if (!strcmp(k, "amqp_uris")) {
      ok = json_is_array(v) && json_array_size(v) > 0 && json_array_size(v) <= RA_MAX_URIS;
      for (size_t i = 0; ok && i < json_array_size(v); i++) {
        ok = copy_str(cfg->uris[i], sizeof cfg->uris[i], json_array_get(v, i));
        cfg->uri_ptrs[i] = cfg->uris[i];
      }
      cfg->n_uris = ok ? json_array_size(v) : 0;
    } else if (!strcmp(k, "db_url")) {
      ok = copy_str(cfg->db_url, sizeof cfg->db_url, v) && !strncmp(cfg->db_url, "http://", 7);
    } else if (!strcmp(k, "name")) {
      ok = copy_str(cfg->name, sizeof cfg->name, v);
    } else if (!strcmp(k, "node")) {
      ok = copy_str(cfg->node, sizeof cfg->node, v);
    } else if (!strcmp(k, "queue")) {
      ok = copy_str(cfg->queue, sizeof cfg->queue, v);
    } else if (!strcmp(k, "log_level")) {
      ok = json_is_string(v) && (cfg->log_level = ra_level(json_string_value(v))) >= 0;
    } else if (!strcmp(k, "no_cache")) {
      ok = json_is_boolean(v);
      cfg->reg.no_cache = json_is_true(v);
    } else if (!strcmp(k, "seed") || !strcmp(k, "cache_ttl_ms") || !strcmp(k, "cache_max") ||
               !strcmp(k, "db_timeout_ms")) {
      ok = json_is_integer(v) && json_integer_value(v) >= 0;
      uint64_t x = ok ? (uint64_t)json_integer_value(v) : 0;
      if (!strcmp(k, "seed")) cfg->seed = x;
      else if (!strcmp(k, "cache_ttl_ms")) cfg->reg.cache_ttl_ns = x * 1000000u;
      else if (!strcmp(k, "cache_max")) cfg->reg.cache_max = (size_t)x;
      else cfg->reg.db_timeout_ns = x * 1000000u;
    } else {
      fprintf(stderr, "kz run apps: %s: unknown setting \"%s\"\n", path, k);
      goto out;
    }
    if (!ok) {
      fprintf(stderr, "kz run apps: %s: bad value for \"%s\"\n", path, k);
      goto out;
    }
  }
  if (!cfg->n_uris) {
    fprintf(stderr, "kz run apps: %s: \"amqp_uris\" is required (an array of amqp:// URIs)\n", path);
    goto out;
  }
  if (!cfg->db_url[0]) {
    fprintf(stderr, "kz run apps: %s: \"db_url\" is required (http://host:port)\n", path);
    goto out;
  }
  rc = 0;
out:
  json_decref(j);
  return rc;
}

static int amqp_factory(void *arg, struct kz_env *env, struct kz_bus_backend *out) {
  struct run_apps_cfg *cfg = arg;
  return kz_bus_amqp_new(out, cfg->loop, cfg->uri_ptrs, cfg->n_uris, NULL);
}

static int curl_factory(void *arg, struct kz_env *env, struct kz_http_client **out) {
  struct run_apps_cfg *cfg = arg;
  struct kz_http_client_cfg hc = {.user_agent = "kz-registrar"};
  return kz_http_curl_new(out, cfg->loop, &hc);
}

struct ra_state {
  struct kz_uv_env *drv;
  void *app;
  uv_signal_t sigint, sigterm;
  int signo;
};

static void ra_on_signal(uv_signal_t *h, int signo) {
  struct ra_state *st = h->data;
  if (st->signo) return;
  st->signo = signo;
  fprintf(stderr, "kz run apps: signal %d, stopping\n", signo);
  kz_apps_registrar_stop(st->app);
  st->app = NULL;
  kz_uv_env_free(st->drv);
  st->drv = NULL;
  uv_close((uv_handle_t *)&st->sigint, NULL);
  uv_close((uv_handle_t *)&st->sigterm, NULL);
}

static void ra_usage(FILE *out) {
  fprintf(out, "usage: kz run apps --config FILE\n\n"
               "Runs the registrar app: answers authn_req from the bus with device\n"
               "credentials from the db.  FILE is JSON:\n"
               "  {\"amqp_uris\": [\"amqp://guest:guest@127.0.0.1:5672/\"],\n"
               "   \"db_url\": \"http://127.0.0.1:5984\"}\n"
               "and optionally name, node, seed, log_level, queue, cache_ttl_ms,\n"
               "cache_max, no_cache, db_timeout_ms.\n");
}

int kz_cli_run_apps(int argc, char **argv) {
  const char *path = NULL;
  /* argv is `run apps --config FILE` or `apps --config FILE`. */
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      ra_usage(stdout);
      return 0;
    } else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
      path = argv[++i];
    } else if (!strncmp(argv[i], "--config=", 9)) {
      path = argv[i] + 9;
    } else if (strcmp(argv[i], "apps")) {
      fprintf(stderr, "kz run apps: unexpected argument '%s'\n", argv[i]);
      ra_usage(stderr);
      return 2;
    }
  }
  if (!path) {
    ra_usage(stderr);
    return 2;
  }
  struct run_apps_cfg cfg;
  if (load_cfg(path, &cfg)) return 2;
  uv_loop_t loop;
  if (uv_loop_init(&loop)) {
    fprintf(stderr, "kz run apps: cannot create the event loop\n");
    return 2;
  }
  cfg.loop = &loop;
  cfg.reg.db_url = cfg.db_url;
  cfg.reg.node = cfg.node[0] ? cfg.node : NULL;
  cfg.reg.queue = cfg.queue[0] ? cfg.queue : NULL;
  cfg.reg.bus_factory = amqp_factory;
  cfg.reg.bus_arg = &cfg;
  cfg.reg.http_factory = curl_factory;
  cfg.reg.http_arg = &cfg;

  struct ra_state st = {0};
  int rc = kz_uv_env_new(&st.drv, &loop, cfg.name, cfg.seed, NULL);
  if (rc) {
    fprintf(stderr, "kz run apps: cannot create the driver: %s\n", kz_strerror(rc));
    uv_loop_close(&loop);
    return 2;
  }
  struct kz_env *env = kz_uv_env_get(st.drv);
  env->log_level = cfg.log_level;
  rc = kz_apps_registrar_start(env, &cfg.reg, &st.app);
  if (rc) {
    fprintf(stderr, "kz run apps: %s: cannot start the registrar: %s\n", path, kz_strerror(rc));
    kz_uv_env_free(st.drv);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 2;
  }
  fprintf(stderr, "kz run apps: registrar running (bus %s%s, db %s)\n", cfg.uris[0],
          cfg.n_uris > 1 ? " and others" : "", cfg.db_url);
  uv_signal_init(&loop, &st.sigint);
  uv_signal_init(&loop, &st.sigterm);
  st.sigint.data = st.sigterm.data = &st;
  uv_signal_start(&st.sigint, ra_on_signal, SIGINT);
  uv_signal_start(&st.sigterm, ra_on_signal, SIGTERM);
  uv_run(&loop, UV_RUN_DEFAULT);
  int crc = uv_loop_close(&loop);
  if (crc) fprintf(stderr, "kz run apps: loop closed with handles left (%s)\n", uv_strerror(crc));
  return 0;
}
