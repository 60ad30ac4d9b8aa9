/* test_cli.c — Check suite for `kz seed` and `kz run apps` (impl/cli/cmd_seed.c, cmd_run_apps.c) against a fake CouchDB on real loopback TCP. */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "fake_couch.h"
#include "kz/mem.h"
#include "kz/uv_env.h"
#include "kz_test.h"

int kz_cli_seed(int argc, char **argv);
int kz_cli_run_apps(int argc, char **argv);

#define ACME_DB "account/3c/3f/9a0b1d2e4f5061728394a5b6c7d8"
#define DEV1001_ID "9d1e0000000000000000000000000001"

/* ------------------------------------------------------------------ */
/* The fake db on a libuv loop in a thread                              */

struct server {
  struct fc_store *store;
  pthread_t th;
  uv_loop_t loop;
  uv_async_t stop;
  struct kz_uv_env *drv;
  void *fc;
  unsigned port;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool ready;
};

static void on_stop(uv_async_t *a) {
  struct server *s = a->data;
  fc_stop(s->fc);
  kz_uv_env_free(s->drv);
  uv_close((uv_handle_t *)&s->stop, NULL);
}

static void *server_main(void *arg) {
  struct server *s = arg;
  uv_loop_init(&s->loop);
  uv_async_init(&s->loop, &s->stop, on_stop);
  s->stop.data = s;
  ck_assert_int_eq(kz_uv_env_new(&s->drv, &s->loop, "db", 1, NULL), 0);
  kz_addr_parse(&s->store->listen, "127.0.0.1:0");
  ck_assert_int_eq(fc_start(kz_uv_env_get(s->drv), s->store, &s->fc), 0);
  pthread_mutex_lock(&s->mu);
  s->port = fc_port(s->fc);
  s->ready = true;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  uv_loop_close(&s->loop);
  return NULL;
}

static void server_start(struct server *s, struct fc_store *store) {
  memset(s, 0, sizeof *s);
  s->store = store;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  pthread_create(&s->th, NULL, server_main, s);
  pthread_mutex_lock(&s->mu);
  while (!s->ready) pthread_cond_wait(&s->cv, &s->mu);
  pthread_mutex_unlock(&s->mu);
}

static void server_stop(struct server *s) {
  uv_async_send(&s->stop);
  pthread_join(s->th, NULL);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
}

/* Runs a CLI function with stdout and stderr captured (stdout to
 * /dev/null-like file, stderr kept in `err`). */
static int run_cli(int (*fn)(int, char **), int argc, char **argv, char *err, size_t errlen) {
  fflush(stdout);
  fflush(stderr);
  char tmpl[] = "/tmp/kz-apps-cli-XXXXXX";
  int fd = mkstemp(tmpl);
  ck_assert_int_ge(fd, 0);
  int saved_err = dup(2), saved_out = dup(1);
  dup2(fd, 2);
  dup2(fd, 1);
  int rc = fn(argc, argv);
  fflush(stdout);
  fflush(stderr);
  dup2(saved_err, 2);
  dup2(saved_out, 1);
  close(saved_err);
  close(saved_out);
  lseek(fd, 0, SEEK_SET);
  ssize_t n = read(fd, err, errlen - 1);
  err[n > 0 ? n : 0] = 0;
  close(fd);
  unlink(tmpl);
  return rc;
}

static void write_file(char *path, size_t n, const char *content) {
  snprintf(path, n, "/tmp/kz-apps-seed-XXXXXX");
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
  close(fd);
}

/* ------------------------------------------------------------------ */

START_TEST(test_seed_cli_idempotent) {
  struct fc_store *store = calloc(1, sizeof *store);
  struct server srv;
  char basic[1024], url[64], out[8192];
  kz_test_source_path(basic, sizeof basic, "fixtures/seed/basic.json");

  server_start(&srv, store);
  snprintf(url, sizeof url, "http://127.0.0.1:%u/", srv.port);
  char *argv[] = {"seed", "--url", url, basic};
  int rc = run_cli(kz_cli_seed, 4, argv, out, sizeof out);
  server_stop(&srv);
  ck_assert_msg(rc == 0, "kz seed: %s", out);
  ck_assert_ptr_nonnull(strstr(out, "created   " ACME_DB "/" DEV1001_ID));
  ck_assert_ptr_nonnull(strstr(out, "4 databases (4 created)"));
  ck_assert_ptr_nonnull(fc_db_find(store, "accounts"));
  ck_assert_ptr_nonnull(fc_db_find(store, ACME_DB));
  ck_assert_ptr_nonnull(fc_db_find(store, "system_config"));
  json_t *dev = fc_doc_find(store, ACME_DB, DEV1001_ID);
  ck_assert_ptr_nonnull(dev);
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(dev, "sip"), "username")), "dev1001");
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(dev, "sip"), "realm")),
                   "acme.sip.example.com");
  ck_assert_ptr_nonnull(fc_doc_find(store, "accounts", "3c3f9a0b1d2e4f5061728394a5b6c7d8"));
  ck_assert_ptr_nonnull(fc_doc_find(store, "system_config", "ecallmgr"));
  int puts = store->puts;
  ck_assert_int_gt(puts, 20);

  /* Again: nothing is written. */
  server_start(&srv, store);
  snprintf(url, sizeof url, "http://127.0.0.1:%u", srv.port);
  char *argv2[] = {"seed", "--quiet", "--url", url, basic};
  rc = run_cli(kz_cli_seed, 5, argv2, out, sizeof out);
  server_stop(&srv);
  ck_assert_msg(rc == 0, "kz seed: %s", out);
  ck_assert_int_eq(store->puts, puts);
  ck_assert_ptr_nonnull(strstr(out, "0 created, 0 updated"));
  fc_store_clear(store);
  free(store);
}
END_TEST

START_TEST(test_seed_cli_dry_run) {
  char basic[1024], out[16384];
  kz_test_source_path(basic, sizeof basic, "fixtures/seed/basic.json");
  /* Nobody listens on port 1: a dry run does not care. */
  char *argv[] = {"seed", "--dry-run", "--url", "http://127.0.0.1:1", basic};
  ck_assert_int_eq(run_cli(kz_cli_seed, 5, argv, out, sizeof out), 0);
  ck_assert_ptr_nonnull(strstr(out, "would create database " ACME_DB));
  ck_assert_ptr_nonnull(strstr(out, "would put " ACME_DB "/" DEV1001_ID " (device)"));
  ck_assert_ptr_nonnull(strstr(out, "4 databases"));
}
END_TEST

START_TEST(test_seed_cli_errors) {
  char path[64], out[4096];
  /* JSON syntax error: file and line. */
  write_file(path, sizeof path, "{\n  \"accounts\": [\n    {,}\n  ]\n}\n");
  char *argv[] = {"seed", "--url", "http://127.0.0.1:1", path};
  ck_assert_int_eq(run_cli(kz_cli_seed, 4, argv, out, sizeof out), 2);
  char want[128];
  snprintf(want, sizeof want, "%s:3:", path);
  ck_assert_msg(strstr(out, want), "got: %s", out);
  unlink(path);
  /* Content error: file and where. */
  write_file(path, sizeof path, "{\"accounts\": [{\"name\": \"A\"}]}");
  ck_assert_int_eq(run_cli(kz_cli_seed, 4, argv, out, sizeof out), 2);
  ck_assert_msg(strstr(out, path) && strstr(out, "accounts[0]: \"realm\" is required"), "got: %s", out);
  /* Nobody at the URL. */
  unlink(path);
  write_file(path, sizeof path, "{\"accounts\": []}");
  ck_assert_int_eq(run_cli(kz_cli_seed, 4, argv, out, sizeof out), 2);
  ck_assert_msg(strstr(out, "http://127.0.0.1:1"), "got: %s", out);
  unlink(path);
  /* Usage. */
  char *argv2[] = {"seed"};
  ck_assert_int_eq(run_cli(kz_cli_seed, 1, argv2, out, sizeof out), 2);
  char *argv3[] = {"seed", "--url", "https://x", "f"};
  ck_assert_int_eq(run_cli(kz_cli_seed, 4, argv3, out, sizeof out), 2);
  char *argv4[] = {"seed", "/nonexistent/seed.json"};
  ck_assert_int_eq(run_cli(kz_cli_seed, 2, argv4, out, sizeof out), 2);
  ck_assert_ptr_nonnull(strstr(out, "/nonexistent/seed.json"));
}
END_TEST

START_TEST(test_run_apps_config_errors) {
  char path[64], out[4096];
  char *argv[] = {"run", "apps", "--config", path};
  write_file(path, sizeof path, "{\"db_url\": \"http://127.0.0.1:5984\"}");
  ck_assert_int_eq(run_cli(kz_cli_run_apps, 4, argv, out, sizeof out), 2);
  ck_assert_ptr_nonnull(strstr(out, "\"amqp_uris\" is required"));
  unlink(path);
  write_file(path, sizeof path, "{\"amqp_uris\": [\"amqp://127.0.0.1\"], \"db_url\": \"http://x\", \"bogus\": 1}");
  ck_assert_int_eq(run_cli(kz_cli_run_apps, 4, argv, out, sizeof out), 2);
  ck_assert_ptr_nonnull(strstr(out, "unknown setting \"bogus\""));
  unlink(path);
  write_file(path, sizeof path, "{\n\"amqp_uris\": [\n");
  ck_assert_int_eq(run_cli(kz_cli_run_apps, 4, argv, out, sizeof out), 2);
  ck_assert_msg(strstr(out, path) && strstr(out, ":3:"), "got: %s", out);
  unlink(path);
  char *argv2[] = {"run", "apps"};
  ck_assert_int_eq(run_cli(kz_cli_run_apps, 2, argv2, out, sizeof out), 2);
}
END_TEST

static void *send_sigterm(void *arg) {
  usleep(400 * 1000);
  kill(getpid(), SIGTERM);
  return NULL;
}

START_TEST(test_run_apps_until_signal) {
  /* No broker at the URI: the app starts, keeps trying to connect, and
   * stops cleanly on SIGTERM. */
  char path[64], out[8192];
  write_file(path, sizeof path,
             "{\"amqp_uris\": [\"amqp://guest:guest@127.0.0.1:1/\"], \"db_url\": \"http://127.0.0.1:1\","
             " \"log_level\": \"warn\", \"cache_ttl_ms\": 1000}");
  char *argv[] = {"apps", "--config", path};
  pthread_t th;
  pthread_create(&th, NULL, send_sigterm, NULL);
  int rc = run_cli(kz_cli_run_apps, 3, argv, out, sizeof out);
  pthread_join(th, NULL);
  unlink(path);
  ck_assert_msg(rc == 0, "got: %s", out);
  ck_assert_ptr_nonnull(strstr(out, "registrar running"));
  ck_assert_ptr_nonnull(strstr(out, "signal 15, stopping"));
  ck_assert_ptr_null(strstr(out, "handles left"));
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("apps-cli");
  TCase *tc = kz_tcase(s, "seed", 60);
  tcase_add_test(tc, test_seed_cli_idempotent);
  tcase_add_test(tc, test_seed_cli_dry_run);
  tcase_add_test(tc, test_seed_cli_errors);
  tc = kz_tcase(s, "run", 60);
  tcase_add_test(tc, test_run_apps_config_errors);
  tcase_add_test(tc, test_run_apps_until_signal);
  return s;
}

int main(void) { return kz_run_suite(suite()); }
