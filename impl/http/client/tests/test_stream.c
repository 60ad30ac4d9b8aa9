/* test_stream.c — stream-backend specifics in the simulator: no resend of non-idempotent requests, FIFO pool, idle close, resolver, auth, bad responses, allocation failures. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz_test.h"
#include "tests.h"

START_TEST(non_idempotent_not_resent) {
  struct th t;
  th_open(&t, TH_STREAM_SIM, NULL);
  struct th_res r = {0};
  th_do(&t, &r, "GET", "/close-next", NULL, 0, 0);
  ck_assert_int_eq(r.rc, 200);
  th_do(&t, &r, "POST", "/echo", "x", 1, 0);
  ck_assert_int_eq(r.rc, KZ_ECONNRESET);
  ck_assert_uint_eq(tsrv_stats(t.srv)->requests, 2);
  ck_assert_uint_eq(kz_http_client_stream_stats(t.client)->retries, 0);
  /* GET with no_retry: the same. */
  th_do(&t, &r, "GET", "/close-next", NULL, 0, 0);
  char url[128];
  snprintf(url, sizeof(url), "%s/echo", t.base);
  struct kz_http_client_req req = {.method = "GET", .url = url, .no_retry = true};
  th_res_free(&r);
  memset(&r, 0, sizeof(r));
  ck_assert_int_eq(kz_http_client_request(t.client, &req, th_res_cb, &r, NULL), 0);
  ck_assert(th_run(&t, th_res_done, &r, 5000));
  ck_assert_int_eq(r.rc, KZ_ECONNRESET);
  ck_assert_uint_eq(tsrv_stats(t.srv)->requests, 4);
  th_close(&t);
}
END_TEST

struct order {
  int seen[8];
  int n;
};
struct order_arg {
  struct order *o;
  int i;
};

static void order_cb(void *arg, int rc, struct kz_http_client_resp *resp) {
  struct order_arg *a = arg;
  ck_assert_int_eq(rc, 200);
  a->o->seen[a->o->n++] = a->i;
}

static bool order_done(void *arg) { return ((struct order *)arg)->n == 5; }

START_TEST(pool_of_one_is_fifo) {
  struct kz_http_client_cfg cfg = {.max_conns_per_host = 1};
  struct th t;
  th_open(&t, TH_STREAM_SIM, &cfg);
  struct order o = {0};
  struct order_arg a[5];
  char url[5][128];
  for (int i = 0; i < 5; i++) {
    a[i] = (struct order_arg){&o, i};
    /* Later requests are faster: only a FIFO keeps the order. */
    snprintf(url[i], sizeof(url[i]), "%s/delay/%d", t.base, 50 - i * 10);
    struct kz_http_client_req req = {.method = "GET", .url = url[i]};
    ck_assert_int_eq(kz_http_client_request(t.client, &req, order_cb, &a[i], NULL), 0);
  }
  ck_assert(th_run(&t, order_done, &o, 5000));
  for (int i = 0; i < 5; i++) ck_assert_int_eq(o.seen[i], i);
  ck_assert_uint_eq(tsrv_stats(t.srv)->accepted, 1);
  ck_assert_uint_eq(tsrv_stats(t.srv)->max_open, 1);
  th_close(&t);
}
END_TEST

START_TEST(idle_connections_close) {
  struct kz_http_client_cfg cfg = {.idle_timeout_ns = UINT64_C(100000000)};
  struct th t;
  th_open(&t, TH_STREAM_SIM, &cfg);
  struct th_res r = {0};
  th_do(&t, &r, "GET", "/echo", NULL, 0, 0);
  ck_assert_uint_eq(tsrv_stats(t.srv)->open, 1);
  th_run(&t, NULL, NULL, 50);
  ck_assert_uint_eq(tsrv_stats(t.srv)->open, 1);
  th_run(&t, NULL, NULL, 100);
  ck_assert_uint_eq(tsrv_stats(t.srv)->open, 0);
  ck_assert_uint_eq(tsrv_stats(t.srv)->closed_by_peer, 1);
  th_do(&t, &r, "GET", "/echo", NULL, 0, 0);
  ck_assert_int_eq(r.rc, 200);
  ck_assert_str_eq(r.x_conn, "2");
  th_res_free(&r);
  th_close(&t);
}
END_TEST

static int resolve_db(void *arg, const char *host, struct kz_addr *out) {
  if (strcmp(host, "db.sim")) return KZ_ENOENT;
  *out = kz_addr_v4(0x0a000001u, 0);
  return 0;
}

START_TEST(resolver_and_basic_auth) {
  struct kz_http_client_cfg cfg = {.resolve = resolve_db};
  struct th t;
  th_open(&t, TH_STREAM_SIM, &cfg);
  struct th_res r = {0};
  struct kz_http_client_req req = {.method = "GET", .url = "http://admin:s%40cret@db.sim:80/echo/x"};
  ck_assert_int_eq(kz_http_client_request(t.client, &req, th_res_cb, &r, NULL), 0);
  ck_assert(th_run(&t, th_res_done, &r, 5000));
  ck_assert_int_eq(r.rc, 200);
  const struct tsrv_req *q = tsrv_req(t.srv, 0);
  ck_assert_ptr_nonnull(strstr(q->headers, "Host: db.sim:80\n"));
  ck_assert_ptr_nonnull(strstr(q->headers, "Authorization: Basic YWRtaW46c0BjcmV0\n"));
  ck_assert_ptr_nonnull(strstr(q->headers, "User-Agent: kz\n"));
  req.url = "http://other.sim/echo";
  ck_assert_int_eq(kz_http_client_request(t.client, &req, th_res_cb, &r, NULL), KZ_ENOTSUP);
  th_res_free(&r);
  th_close(&t);
}
END_TEST

START_TEST(bad_responses) {
  struct kz_http_client_cfg cfg = {.max_body = 1000};
  struct th t;
  th_open(&t, TH_STREAM_SIM, &cfg);
  struct th_res r = {0};
  th_do(&t, &r, "GET", "/big", NULL, 0, 0);
  ck_assert_int_eq(r.rc, KZ_EMSGSIZE);
  ck_assert_int_eq(tsrv_push(t.srv, 200, "Bad header line\r\n", "x", 1), 0);
  ck_assert_int_eq(tsrv_push(t.srv, 201, "Location: /x\r\n", "made", 4), 0);
  th_do(&t, &r, "GET", "/any", NULL, 0, 0);
  ck_assert_int_eq(r.rc, KZ_EPROTO);
  th_do(&t, &r, "GET", "/any", NULL, 0, 0);
  ck_assert_int_eq(r.rc, 201);
  ck_assert_uint_eq(r.body.len, 4);
  th_res_free(&r);
  th_close(&t);
}
END_TEST

/* Every allocation of a request, failed in turn: the call either starts
 * and completes once, or is refused with KZ_ENOMEM and never calls back. */
START_TEST(allocation_failures) {
  for (int64_t k = 0; k < 40; k++) {
    struct th t;
    th_open(&t, TH_STREAM_SIM, NULL);
    struct th_res r = {0};
    char url[128];
    snprintf(url, sizeof(url), "%s/echo", t.base);
    struct kz_http_client_req req = {.method = "PUT", .url = url, .body = "abc", .body_len = 3};
    kz_mem_fail_after(k);
    int rc = kz_http_client_request(t.client, &req, th_res_cb, &r, NULL);
    kz_mem_fail_after(-1);
    if (rc) {
      ck_assert_int_eq(rc, KZ_ENOMEM);
    }
    t.expect_failure = true;
    th_run(&t, NULL, NULL, 1000);
    if (rc || !t.failed) ck_assert_int_eq(r.calls, rc ? 0 : 1);
    if (r.calls) ck_assert(r.rc == 200 || r.rc == KZ_ENOMEM);
    th_res_free(&r);
    th_close(&t);
  }
}
END_TEST

void add_stream_tests(Suite *s) {
  TCase *tc = kz_tcase(s, "stream", 60);
  tcase_add_test(tc, non_idempotent_not_resent);
  tcase_add_test(tc, pool_of_one_is_fifo);
  tcase_add_test(tc, idle_connections_close);
  tcase_add_test(tc, resolver_and_basic_auth);
  tcase_add_test(tc, bad_responses);
  tcase_add_test(tc, allocation_failures);
}
