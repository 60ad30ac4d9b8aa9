/* test_real.c — the db role under the libuv driver on 127.0.0.1 (port 0), driven with libcurl from another thread. */
#include <check.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "kz/db.h"
#include "kz/error.h"
#include "kz/uv_env.h"
#include "kz_test.h"

/* The server runs its own loop on a thread; the test thread talks to
 * it over real TCP with libcurl, as any CouchDB client would. */
struct server {
  pthread_t thread;
  uv_loop_t loop;
  uv_async_t stop;
  struct kz_uv_env *drv;
  struct kz_db *db;
  char dir[256];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int ready; /* 1 started, -1 failed */
  uint16_t port;
};

static void on_stop(uv_async_t *a) {
  struct server *s = a->data;
  kz_db_free(s->db);
  s->db = NULL;
  kz_uv_env_free(s->drv);
  s->drv = NULL;
  uv_close((uv_handle_t *)&s->stop, NULL);
}

static void *server_main(void *arg) {
  struct server *s = arg;
  int ready = -1;
  ck_assert_int_eq(uv_loop_init(&s->loop), 0);
  uv_async_init(&s->loop, &s->stop, on_stop);
  s->stop.data = s;
  if (kz_uv_env_new(&s->drv, &s->loop, "db", 5, s->dir) == 0) {
    struct kz_db_cfg cfg = {.listen = kz_addr_v4(0x7f000001, 0)};
    if (kz_db_new(&s->db, kz_uv_env_get(s->drv), &cfg) == 0) {
      s->port = kz_db_addr(s->db).port;
      ready = 1;
    }
  }
  pthread_mutex_lock(&s->mu);
  s->ready = ready;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
  if (ready < 0) {
    kz_uv_env_free(s->drv);
    uv_close((uv_handle_t *)&s->stop, NULL);
  }
  uv_run(&s->loop, UV_RUN_DEFAULT);
  uv_loop_close(&s->loop);
  return NULL;
}

static void server_start(struct server *s, const char *dir) {
  memset(s, 0, sizeof *s);
  snprintf(s->dir, sizeof s->dir, "%s", dir);
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  ck_assert_int_eq(pthread_create(&s->thread, NULL, server_main, s), 0);
  pthread_mutex_lock(&s->mu);
  while (!s->ready) pthread_cond_wait(&s->cv, &s->mu);
  pthread_mutex_unlock(&s->mu);
  ck_assert_int_eq(s->ready, 1);
  ck_assert_int_ne(s->port, 0);
}

static void server_stop(struct server *s) {
  uv_async_send(&s->stop);
  pthread_join(s->thread, NULL);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
}

struct body {
  char data[65536];
  size_t len;
};

static size_t on_write(char *p, size_t size, size_t n, void *arg) {
  struct body *b = arg;
  size_t len = size * n;
  if (b->len + len >= sizeof b->data) return 0;
  memcpy(b->data + b->len, p, len);
  b->len += len;
  b->data[b->len] = 0;
  return len;
}

/* One request; returns the status and fills out. */
static long http(CURL *c, const char *method, uint16_t port, const char *path, const char *body,
                 struct body *out) {
  char url[512];
  snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
  memset(out, 0, sizeof *out);
  struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
  if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(h);
  ck_assert_msg(rc == CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  return status;
}

START_TEST(test_real_put_get_restart) {
  char dir[] = "/tmp/kz-db-real-XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  struct server s;
  server_start(&s, dir);
  CURL *c = curl_easy_init();
  struct body b;
  ck_assert_int_eq(http(c, "GET", s.port, "/", NULL, &b), 200);
  ck_assert_ptr_nonnull(strstr(b.data, "\"couchdb\":\"Welcome\""));
  ck_assert_int_eq(http(c, "PUT", s.port, "/real", NULL, &b), 201);
  ck_assert_int_eq(http(c, "PUT", s.port, "/real/doc1", "{\"x\":\"y\"}", &b), 201);
  ck_assert_ptr_nonnull(strstr(b.data, "\"rev\":\"1-"));
  ck_assert_int_eq(http(c, "GET", s.port, "/real/doc1", NULL, &b), 200);
  ck_assert_ptr_nonnull(strstr(b.data, "\"x\":\"y\""));
  ck_assert_int_eq(http(c, "PUT", s.port, "/real/doc1", "{\"x\":\"z\"}", &b), 409);
  ck_assert_int_eq(http(c, "POST", s.port, "/real/_bulk_docs", "{\"docs\":[{\"_id\":\"a\"},{\"_id\":\"b\"}]}", &b), 201);
  ck_assert_int_eq(http(c, "GET", s.port, "/real/_all_docs", NULL, &b), 200);
  ck_assert_ptr_nonnull(strstr(b.data, "\"total_rows\":3"));
  server_stop(&s);
  /* A second server on the same directory sees the data. */
  server_start(&s, dir);
  ck_assert_int_eq(http(c, "GET", s.port, "/real/doc1", NULL, &b), 200);
  ck_assert_ptr_nonnull(strstr(b.data, "\"x\":\"y\""));
  ck_assert_int_eq(http(c, "GET", s.port, "/real", NULL, &b), 200);
  ck_assert_ptr_nonnull(strstr(b.data, "\"doc_count\":3"));
  curl_easy_cleanup(c);
  server_stop(&s);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static Suite *real_suite(void) {
  Suite *s = suite_create("db-real");
  TCase *tc = kz_tcase(s, "real", 60);
  tcase_add_test(tc, test_real_put_get_restart);
  return s;
}

int main(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = kz_run_suite(real_suite());
  curl_global_cleanup();
  return rc;
}
