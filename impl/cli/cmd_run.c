/* cmd_run.c — `kz run ROLE --config FILE`: runs one role for real under the libuv driver until SIGINT/SIGTERM. */
#include "cli.h"
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "kz/db.h"
#include "kz/error.h"
#include "kz/uv_env.h"

/* The db role's configuration file (JSON):
 *   {"listen": "127.0.0.1:5984",     stream address (port 0 picks one)
 *    "data_dir": "/var/lib/kz/db",   required; created when missing
 *    "seed": 1,                      PRNG root (uuids, generated ids)
 *    "name": "db",                   instance name in logs
 *    "log_level": "info",            error|warn|info|debug|trace
 *    "file": "kzdb.sqlite",          SQLite file inside data_dir
 *    "max_body": 67108864,           largest request body in bytes
 *    "max_docid": 512,
 *    "changes_timeout_ms": 60000,    default longpoll timeout
 *    "idle_timeout_ms": 300000}      keep-alive idle limit */
struct run_db_cfg {
  char listen[128];
  char data_dir[1024];
  char name[64];
  char file[256];
  uint64_t seed;
  int log_level;
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
  cfg->seed = 1;
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
    } else if (!strcmp(k, "seed") || !strcmp(k, "max_body") || !strcmp(k, "max_docid") ||
               !strcmp(k, "changes_timeout_ms") || !strcmp(k, "idle_timeout_ms")) {
      ok = json_is_integer(v) && json_integer_value(v) >= 0;
      uint64_t x = ok ? (uint64_t)json_integer_value(v) : 0;
      if (!strcmp(k, "seed")) cfg->seed = x;
      else if (!strcmp(k, "max_body")) cfg->db.max_body = x;
      else if (!strcmp(k, "max_docid")) cfg->db.max_docid = (size_t)x;
      else if (!strcmp(k, "changes_timeout_ms")) cfg->db.changes_timeout_ns = x * 1000000u;
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

static void run_usage(FILE *out) {
  fprintf(out, "usage: kz run ROLE --config FILE\n\nroles:\n  db       the CouchDB-compatible document server\n");
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
#ifdef KZ_CLI_HAVE_RUN_APPS
  if (!strcmp(role, "apps")) return kz_cli_run_apps(argc, argv);
#endif
  fprintf(stderr, "kz run: unknown role '%s'\n", role);
  run_usage(stderr);
  return 2;
}
