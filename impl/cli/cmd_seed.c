/* cmd_seed.c — `kz seed FILE`: creates Kazoo's databases and documents from a seed file through the db's CouchDB HTTP API (idempotent). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <uv.h>

#include "kz/apps_seed.h"
#include "kz/dbclient.h"
#include "kz/error.h"
#include "kz/http_curl.h"

/* Declared in cli.h once the command is wired into main.c; repeated
 * here so the file also builds into impl/roles/apps/tests. */
int kz_cli_seed(int argc, char **argv);

struct seed_cli {
  const char *file;
  const char *url;
  bool quiet;
  struct kz_http_client *http;
  struct kz_dbclient *db;
  struct kz_apps_seed_run *run;
  bool done;
  int err;
  char msg[600];
  struct kz_apps_seed_stats st;
};

static void seed_usage(FILE *out) {
  fprintf(out,
          "usage: kz seed [--url URL] [--dry-run] [--quiet] FILE\n\n"
          "Creates the databases and documents FILE describes (accounts, users,\n"
          "devices, callflows, media servers; see fixtures/seed/basic.json) through\n"
          "the CouchDB HTTP API of kz's db role or a real CouchDB.  Re-running is\n"
          "safe: unchanged documents are left alone, changed ones are updated.\n\n"
          "  --url URL   the db, http://[user:pass@]host:port (default http://127.0.0.1:5984)\n"
          "  --dry-run   print what would be written, contact nobody\n"
          "  --quiet     print only the summary\n");
}

static void on_progress(void *arg, const char *db, const char *id, const char *what) {
  struct seed_cli *c = arg;
  if (c->quiet) return;
  if (id) printf("  %-9s %s/%s\n", what, db, id);
  else printf("  %-9s database %s\n", what, db);
}

static void on_done(void *arg, int err, const char *msg, const struct kz_apps_seed_stats *st) {
  struct seed_cli *c = arg;
  c->done = true;
  c->err = err;
  c->st = *st;
  snprintf(c->msg, sizeof c->msg, "%s", msg);
  /* Freeing the clients closes curl's handles; the loop then runs dry. */
  kz_dbclient_free(c->db);
  c->db = NULL;
  kz_http_client_free(c->http);
  c->http = NULL;
}

static void dry_run(const struct kz_apps_seed_plan *p, const char *url) {
  printf("kz seed: dry run against %s (nothing is sent)\n", url);
  for (size_t i = 0; i < p->ndbs; i++) printf("  would create database %s\n", p->dbs[i]);
  for (size_t i = 0; i < p->ndocs; i++) {
    const char *t = json_string_value(json_object_get(p->docs[i].doc, "pvt_type"));
    printf("  would put %s/%s (%s)\n", p->docs[i].db, p->docs[i].id, t ? t : "design");
  }
  printf("kz seed: %zu databases, %zu documents\n", p->ndbs, p->ndocs);
}

static int apply(struct seed_cli *c, const struct kz_apps_seed_plan *plan) {
  uv_loop_t loop;
  if (uv_loop_init(&loop)) {
    fprintf(stderr, "kz seed: cannot create the event loop\n");
    return 2;
  }
  struct kz_http_client_cfg hc = {.max_conns_per_host = 1, .user_agent = "kz-seed"};
  struct kz_dbclient_cfg dc = {.url = c->url, .timeout_ns = UINT64_C(10000000000)};
  int rc = kz_http_curl_new(&c->http, &loop, &hc);
  if (!rc) rc = kz_dbclient_new(&c->db, c->http, &dc);
  if (!rc) rc = kz_apps_seed_apply(&c->run, c->db, plan, on_progress, on_done, c);
  if (rc) {
    fprintf(stderr, "kz seed: %s: %s\n", c->url, kz_strerror(rc));
    kz_dbclient_free(c->db);
    kz_http_client_free(c->http);
  } else {
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  kz_apps_seed_run_free(c->run);
  uv_run(&loop, UV_RUN_DEFAULT); /* close callbacks */
  uv_loop_close(&loop);
  if (rc) return 2;
  if (!c->done) {
    fprintf(stderr, "kz seed: %s: the loop ended before the seed did\n", c->url);
    return 2;
  }
  if (c->err) {
    fprintf(stderr, "kz seed: %s: %s: %s\n", c->file, c->url, c->msg);
    return 2;
  }
  printf("kz seed: %s -> %s: %zu databases (%zu created), %zu documents (%zu created, %zu updated, "
         "%zu unchanged)\n",
         c->file, c->url, c->st.dbs_created + c->st.dbs_existing, c->st.dbs_created,
         c->st.docs_created + c->st.docs_updated + c->st.docs_unchanged, c->st.docs_created, c->st.docs_updated,
         c->st.docs_unchanged);
  return 0;
}

int kz_cli_seed(int argc, char **argv) {
  struct seed_cli c = {.url = "http://127.0.0.1:5984"};
  bool dry = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      seed_usage(stdout);
      return 0;
    } else if (!strcmp(a, "--url") && i + 1 < argc) {
      c.url = argv[++i];
    } else if (!strncmp(a, "--url=", 6)) {
      c.url = a + 6;
    } else if (!strcmp(a, "--dry-run")) {
      dry = true;
    } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
      c.quiet = true;
    } else if (a[0] != '-' && !c.file) {
      c.file = a;
    } else {
      fprintf(stderr, "kz seed: unexpected argument '%s'\n", a);
      seed_usage(stderr);
      return 2;
    }
  }
  if (!c.file) {
    seed_usage(stderr);
    return 2;
  }
  if (strncmp(c.url, "http://", 7)) {
    fprintf(stderr, "kz seed: --url must be http://host:port, got '%s'\n", c.url);
    return 2;
  }
  /* A trailing '/' would double the one the client puts before names. */
  char url[1024];
  snprintf(url, sizeof url, "%s", c.url);
  size_t ul = strlen(url);
  while (ul > 7 && url[ul - 1] == '/') url[--ul] = 0;
  c.url = url;

  json_error_t je;
  json_t *seed = json_load_file(c.file, JSON_REJECT_DUPLICATES, &je);
  if (!seed) {
    if (je.line > 0) fprintf(stderr, "kz seed: %s:%d:%d: %s\n", c.file, je.line, je.column, je.text);
    else fprintf(stderr, "kz seed: %s: %s\n", c.file, je.text);
    return 2;
  }
  struct kz_apps_seed_plan plan;
  char err[512];
  int64_t now = (int64_t)time(NULL) + KZ_APPS_GREGORIAN_UNIX_OFFSET;
  int rc = kz_apps_seed_plan(seed, now, &plan, err, sizeof err);
  json_decref(seed);
  if (rc) {
    fprintf(stderr, "kz seed: %s: %s\n", c.file, rc == KZ_EPROTO ? err : kz_strerror(rc));
    kz_apps_seed_plan_free(&plan);
    return 2;
  }
  int status;
  if (dry) {
    dry_run(&plan, c.url);
    status = 0;
  } else {
    if (!c.quiet) printf("kz seed: %s -> %s\n", c.file, c.url);
    status = apply(&c, &plan);
  }
  kz_apps_seed_plan_free(&plan);
  return status;
}
