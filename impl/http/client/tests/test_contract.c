/* test_contract.c — the HTTP client contract, written once and run against every backend (stream on uv, stream in the simulator, curl on uv). */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/prng.h"
#include "kz_test.h"
#include "tests.h"

static void assert_body(const struct th_res *r, const char *want) {
  ck_assert_msg(kz_slice_eq_cstr(kz_buf_slice(&r->body), want), "body \"%.*s\" want \"%s\"",
                (int)r->body.len, r->body.data ? (const char *)r->body.data : "", want);
}

START_TEST(methods_with_bodies) {
  struct th t;
  th_open(&t, _i, NULL);
  struct th_res r = {0};
  th_do(&t, &r, "GET", "/echo/a?x=1", NULL, 0, 0);
  ck_assert_int_eq(r.rc, 200);
  assert_body(&r, "GET /echo/a?x=1\n");
  ck_assert_str_eq(r.x_method, "GET");

  th_do(&t, &r, "PUT", "/echo/doc", "{\"a\":1}", 7, 0);
  ck_assert_int_eq(r.rc, 200);
  assert_body(&r, "PUT /echo/doc\n{\"a\":1}");

  th_do(&t, &r, "POST", "/echo", "hello", 5, 0);
  ck_assert_int_eq(r.rc, 200);
  assert_body(&r, "POST /echo\nhello");

  th_do(&t, &r, "DELETE", "/echo/doc?rev=1-abc", NULL, 0, 0);
  ck_assert_int_eq(r.rc, 200);
  assert_body(&r, "DELETE /echo/doc?rev=1-abc\n");

  /* An empty PUT still says Content-Length: 0. */
  th_do(&t, &r, "PUT", "/echo/empty", NULL, 0, 0);
  ck_assert_int_eq(r.rc, 200);
  const struct tsrv_req *q = tsrv_req(t.srv, 4);
  ck_assert_ptr_nonnull(q);
  ck_assert_str_eq(q->method, "PUT");
  ck_assert_ptr_nonnull(strstr(q->headers, "Content-Length: 0\n"));
  q = tsrv_req(t.srv, 1);
  ck_assert_ptr_nonnull(strstr(q->headers, "Content-Length: 7\n"));
  ck_assert_ptr_nonnull(strstr(q->headers, "Host: "));
  ck_assert_ptr_null(strstr(q->headers, "Expect:"));
  ck_assert_ptr_null(strstr(q->headers, "Content-Type:"));

  /* Statuses are responses, not errors; HEAD gets no body. */
  th_do(&t, &r, "GET", "/status/404", NULL, 0, 0);
  ck_assert_int_eq(r.rc, 404);
  assert_body(&r, "status 404");
  th_do(&t, &r, "GET", "/status/503", NULL, 0, 0);
  ck_assert_int_eq(r.rc, 503);
  th_do(&t, &r, "HEAD", "/status/200", NULL, 0, 0);
  ck_assert_int_eq(r.rc, 200);
  ck_assert_uint_eq(r.body.len, 0);
  ck_assert_str_eq(r.content_type, "text/plain");

  /* Extra headers reach the server; host + target works like a URL. */
  struct kz_http_header h[] = {{KZ_SLICE_LIT("X-Test"), KZ_SLICE_LIT("yes please")},
                               {KZ_SLICE_LIT("Accept"), KZ_SLICE_LIT("application/json")}};
  struct kz_http_client_req req = {.method = "GET", .host = t.host, .target = "/echo/h",
                                   .headers = h, .nheaders = 2};
  th_res_free(&r);
  memset(&r, 0, sizeof(r));
  ck_assert_int_eq(kz_http_client_request(t.client, &req, th_res_cb, &r, NULL), 0);
  ck_assert(th_run(&t, th_res_done, &r, 5000));
  ck_assert_int_eq(r.rc, 200);
  ck_assert_str_eq(r.x_seen_test, "yes please");
  q = tsrv_req(t.srv, tsrv_nreqs(t.srv) - 1);
  ck_assert_ptr_nonnull(strstr(q->headers, "Accept: application/json\n"));
  th_res_free(&r);
  th_close(&t);
}
END_TEST

START_TEST(bad_requests_refused_at_once) {
  struct th t;
  th_open(&t, _i, NULL);
  struct th_res r = {0};
  struct kz_http_client_req req = {.method = "GET", .url = "https://127.0.0.1/x"};
  ck_assert_int_eq(kz_http_client_request(t.client, &req, th_res_cb, &r, NULL), KZ_ENOTSUP);
  req.url = "http://127.0.0.1:99999/x";
  ck_assert_int_eq(kz_http_client_request(t.client, &req, th_res_cb, &r, NULL), KZ_EINVAL);
  req.url = "http://127.0.0.1/a b";
  ck_assert_int_eq(kz_http_client_request(t.client, &req, th_res_cb, &r, NULL), KZ_EINVAL);
  req.url = "http://127.0.0.1/x";
  req.method = "GE T";
  ck_assert_int_eq(kz_http_client_request(t.client, &req, th_res_cb, &r, NULL), KZ_EINVAL);
  req.method = "GET";
  struct kz_http_header h[] = {{KZ_SLICE_LIT("Content-Length"), KZ_SLICE_LIT("5")}};
  req.headers = h;
  req.nheaders = 1;
  ck_assert_int_eq(kz_http_client_request(t.client, &req, th_res_cb, &r, NULL), KZ_EINVAL);
  struct kz_http_header inj[] = {{KZ_SLICE_LIT("X-A"), KZ_SLICE_LIT("a\r\nX-Evil: 1")}};
  req.headers = inj;
  ck_assert_int_eq(kz_http_client_request(t.client, &req, th_res_cb, &r, NULL), KZ_EINVAL);
  ck_assert_int_eq(kz_http_client_request(t.client, &req, NULL, &r, NULL), KZ_EINVAL);
  th_run(&t, NULL, NULL, 20);
  ck_assert_int_eq(r.calls, 0);
  th_close(&t);
}
END_TEST

START_TEST(chunked_and_until_close_responses) {
  struct th t;
  th_open(&t, _i, NULL);
  struct th_res r = {0};
  th_do(&t, &r, "GET", "/chunked", NULL, 0, 0);
  ck_assert_int_eq(r.rc, 200);
  assert_body(&r, "hello chunked world");
  th_do(&t, &r, "GET", "/until-close", NULL, 0, 0);
  ck_assert_int_eq(r.rc, 200);
  assert_body(&r, "until close");
  th_do(&t, &r, "GET", "/conn-close", NULL, 0, 0);
  ck_assert_int_eq(r.rc, 200);
  assert_body(&r, "bye");
  /* The connection after a close is a new one. */
  th_do(&t, &r, "GET", "/echo", NULL, 0, 0);
  ck_assert_int_eq(r.rc, 200);
  ck_assert_uint_eq(tsrv_stats(t.srv)->accepted, 3);
  th_res_free(&r);
  th_close(&t);
}
END_TEST

START_TEST(keep_alive_reuse) {
  struct th t;
  th_open(&t, _i, NULL);
  struct th_res r = {0};
  for (int i = 0; i < 6; i++) {
    th_do(&t, &r, i % 2 ? "PUT" : "GET", "/echo/k", "x", i % 2, 0);
    ck_assert_int_eq(r.rc, 200);
    ck_assert_str_eq(r.x_conn, "1");
  }
  ck_assert_uint_eq(tsrv_stats(t.srv)->accepted, 1);
  ck_assert_uint_eq(tsrv_stats(t.srv)->requests, 6);
  if (t.kind != TH_CURL_UV) {
    const struct kz_http_client_stats *st = kz_http_client_stream_stats(t.client);
    ck_assert_uint_eq(st->connects, 1);
    ck_assert_uint_eq(st->reuses, 5);
  }
  th_res_free(&r);
  th_close(&t);
}
END_TEST

START_TEST(server_closes_early) {
  struct th t;
  th_open(&t, _i, NULL);
  struct th_res r = {0};
  /* On a fresh connection: an error, and no resend. */
  th_do(&t, &r, "GET", "/close-early", NULL, 0, 0);
  ck_assert_msg(r.rc == KZ_ECONNRESET, "got %s", kz_err_name(r.rc));
  ck_assert_uint_eq(tsrv_stats(t.srv)->requests, 1);
  th_do(&t, &r, "POST", "/close-early", "p", 1, 0);
  ck_assert_int_eq(r.rc, KZ_ECONNRESET);
  ck_assert_uint_eq(tsrv_stats(t.srv)->requests, 2);

  /* A kept-alive connection the server drops as the next request
   * arrives: the idempotent request is resent on a new connection. */
  th_do(&t, &r, "GET", "/close-next", NULL, 0, 0);
  ck_assert_int_eq(r.rc, 200);
  th_do(&t, &r, "GET", "/echo/after", NULL, 0, 0);
  ck_assert_int_eq(r.rc, 200);
  assert_body(&r, "GET /echo/after\n");
  ck_assert_uint_eq(tsrv_stats(t.srv)->requests, 5); /* the dropped one counts */
  ck_assert_str_eq(tsrv_req(t.srv, 3)->target, "/echo/after");
  ck_assert_str_eq(tsrv_req(t.srv, 4)->target, "/echo/after");
  ck_assert_uint_ne(tsrv_req(t.srv, 3)->conn, tsrv_req(t.srv, 4)->conn);
  if (t.kind != TH_CURL_UV) ck_assert_uint_eq(kz_http_client_stream_stats(t.client)->retries, 1);
  th_res_free(&r);
  th_close(&t);
}
END_TEST

/* Counts the requests the server saw for `target`. */
static int seen(const struct th *t, const char *target) {
  int n = 0;
  for (size_t i = 0; i < tsrv_nreqs(t->srv); i++) n += !strcmp(tsrv_req(t->srv, i)->target, target);
  return n;
}

/* A request that may not be resent (POST; GET with no_retry) following a
 * response on a kept-alive connection the server drops as the next
 * request arrives: it reaches the server exactly once.  The stream
 * backend sends it on the kept-alive connection and reports the reset;
 * the curl backend (curl itself would resend any method on a dead reused
 * connection) gives it a connection of its own, so it is answered. */
START_TEST(non_idempotent_never_resent) {
  struct th t;
  th_open(&t, _i, NULL);
  struct th_res r = {0};
  for (int i = 0; i < 2; i++) {
    const char *target = i ? "/echo/noretry" : "/echo/post";
    th_do(&t, &r, "GET", "/close-next", NULL, 0, 0);
    ck_assert_int_eq(r.rc, 200);
    uint64_t kept = tsrv_req(t.srv, tsrv_nreqs(t.srv) - 1)->conn;
    char url[256];
    snprintf(url, sizeof(url), "%s%s", t.base, target);
    th_res_free(&r);
    memset(&r, 0, sizeof(r));
    r.t = &t;
    struct kz_http_client_req req = {.method = i ? "GET" : "POST", .url = url, .body = "p",
                                     .body_len = i ? 0 : 1, .no_retry = i == 1};
    ck_assert_int_eq(kz_http_client_request(t.client, &req, th_res_cb, &r, NULL), 0);
    ck_assert(th_run(&t, th_res_done, &r, 10000));
    ck_assert_int_eq(r.calls, 1);
    /* Let a resend, if any, reach the server. */
    th_run(&t, NULL, NULL, 50);
    ck_assert_msg(seen(&t, target) == 1, "%s seen %d times (%s)", target, seen(&t, target),
                  th_kind_name(t.kind));
    const struct tsrv_req *q = tsrv_req(t.srv, tsrv_nreqs(t.srv) - 1);
    ck_assert_str_eq(q->target, target);
    if (t.kind == TH_CURL_UV) {
      ck_assert_int_eq(r.rc, 200);
      ck_assert_uint_ne(q->conn, kept);
    } else {
      ck_assert_msg(r.rc == KZ_ECONNRESET, "got %s", kz_err_name(r.rc));
      ck_assert_uint_eq(q->conn, kept);
      ck_assert_uint_eq(kz_http_client_stream_stats(t.client)->retries, 0);
    }
  }
  th_res_free(&r);
  th_close(&t);
}
END_TEST

START_TEST(timeouts) {
  struct th t;
  th_open(&t, _i, NULL);
  struct th_res r = {0};
  uint64_t t0 = th_now_ms(&t);
  th_do(&t, &r, "GET", "/slow", NULL, 0, 200);
  ck_assert_int_eq(r.rc, KZ_ETIMEDOUT);
  ck_assert_uint_ge(r.t_done_ms - t0, 190);
  ck_assert_uint_lt(r.t_done_ms - t0, 3000);
  /* A slow answer inside the deadline is fine; the client recovers. */
  th_do(&t, &r, "GET", "/delay/50", NULL, 0, 2000);
  ck_assert_int_eq(r.rc, 200);
  assert_body(&r, "/delay/50");
  th_do(&t, &r, "GET", "/delay/400", NULL, 0, 100);
  ck_assert_int_eq(r.rc, KZ_ETIMEDOUT);
  th_do(&t, &r, "GET", "/echo", NULL, 0, 1000);
  ck_assert_int_eq(r.rc, 200);
  th_res_free(&r);
  th_close(&t);
}
END_TEST

START_TEST(connection_refused) {
  struct th t;
  th_open(&t, _i, NULL);
  char url[96];
  th_dead_url(&t, url, sizeof(url));
  struct th_res r = {0};
  r.t = &t;
  struct kz_http_client_req req = {.method = "GET", .url = url};
  ck_assert_int_eq(kz_http_client_request(t.client, &req, th_res_cb, &r, NULL), 0);
  ck_assert(!r.done);
  ck_assert(th_run(&t, th_res_done, &r, 5000));
  ck_assert_msg(r.rc == KZ_ECONNREFUSED, "got %s", kz_err_name(r.rc));
  ck_assert_int_eq(r.calls, 1);
  th_close(&t);
}
END_TEST

START_TEST(large_bodies) {
  struct th t;
  th_open(&t, _i, NULL);
  struct th_res r = {0};
  th_do(&t, &r, "GET", "/big", NULL, 0, 20000);
  ck_assert_int_eq(r.rc, 200);
  ck_assert_uint_eq(r.body.len, TSRV_BIG);
  for (size_t i = 0; i < TSRV_BIG; i++) {
    if (r.body.data[i] != (uint8_t)((i * 7 + 3) & 0xff)) ck_abort_msg("byte %zu differs", i);
  }
  uint8_t *up = malloc(TSRV_BIG);
  for (size_t i = 0; i < TSRV_BIG; i++) up[i] = (uint8_t)(i * 13 + (i >> 9));
  th_do(&t, &r, "PUT", "/upload", up, TSRV_BIG, 20000);
  ck_assert_int_eq(r.rc, 200);
  char want[64];
  snprintf(want, sizeof(want), "%u %016" PRIx64, TSRV_BIG, kz_hash64(up, TSRV_BIG, 0));
  assert_body(&r, want);
  free(up);
  th_res_free(&r);
  th_close(&t);
}
END_TEST

#define NCONC 60

START_TEST(many_concurrent_requests) {
  struct kz_http_client_cfg cfg = {.max_conns_per_host = 4};
  struct th t;
  th_open(&t, _i, &cfg);
  struct th_res *r = calloc(NCONC, sizeof(*r));
  char path[NCONC][32];
  for (int i = 0; i < NCONC; i++) {
    snprintf(path[i], sizeof(path[i]), "/delay/%d", 5 + (i % 7));
    th_start(&t, &r[i], i % 3 ? "GET" : "POST", path[i], "b", i % 3 ? 0 : 1, 10000);
  }
  int done = 0;
  for (int spins = 0; done < NCONC && spins < 2000; spins++) {
    th_run(&t, NULL, NULL, 5);
    done = 0;
    for (int i = 0; i < NCONC; i++) done += r[i].done;
  }
  ck_assert_int_eq(done, NCONC);
  for (int i = 0; i < NCONC; i++) {
    ck_assert_int_eq(r[i].rc, 200);
    ck_assert_int_eq(r[i].calls, 1);
    assert_body(&r[i], path[i]);
    th_res_free(&r[i]);
  }
  /* The pool bound held and connections were reused.  curl gives each
   * POST a connection of its own, closed after it (a POST is never resent
   * on a reused connection), which at the bound may first close an idle
   * one; the server notices closes a loop turn late, so it may see a few
   * more open at once. */
  const struct tsrv_stats *ss = tsrv_stats(t.srv);
  bool curl = t.kind == TH_CURL_UV;
  ck_assert_msg(ss->max_open <= (curl ? 8u : 4u), "max_open %" PRIu64 " accepted %" PRIu64 " (%s)",
                ss->max_open, ss->accepted, th_kind_name(t.kind));
  ck_assert_uint_le(ss->accepted, curl ? 8 + 2 * (NCONC / 3) : 8);
  ck_assert_uint_eq(ss->requests, NCONC);
  free(r);
  th_close(&t);
}
END_TEST

START_TEST(cancel_and_destroy) {
  struct th t;
  th_open(&t, _i, NULL);
  struct th_res r = {0}, r2 = {0};
  char url[128];
  snprintf(url, sizeof(url), "%s/slow", t.base);
  /* The deadline is far enough that a loaded machine cannot reach it
   * before the cancel (a call whose callback fired is gone: cancelling it
   * then would be the caller's bug). */
  struct kz_http_client_req req = {.method = "GET", .url = url, .timeout_ns = UINT64_C(1000000000)};
  struct kz_http_call *call = NULL;
  ck_assert_int_eq(kz_http_client_request(t.client, &req, th_res_cb, &r, &call), 0);
  ck_assert_ptr_nonnull(call);
  th_run(&t, NULL, NULL, 30);
  ck_assert_uint_eq(tsrv_stats(t.srv)->requests, 1);
  ck_assert_int_eq(r.calls, 0);
  kz_http_client_cancel(t.client, call);
  th_run(&t, NULL, NULL, 1200); /* past the deadline: nothing fires */
  ck_assert_int_eq(r.calls, 0);
  ck_assert_uint_eq(tsrv_stats(t.srv)->open, 0); /* the connection went */
  th_do(&t, &r2, "GET", "/echo", NULL, 0, 0);
  ck_assert_int_eq(r2.rc, 200);
  /* Pending calls die silently with the client. */
  th_start(&t, &r, "GET", "/slow", NULL, 0, 100);
  th_start(&t, &r2, "GET", "/delay/10", NULL, 0, 100);
  if (t.kind != TH_STREAM_SIM) {
    kz_http_client_free(t.client);
    t.client = NULL;
    th_run(&t, NULL, NULL, 200);
    ck_assert_int_eq(r.calls + r2.calls, 0);
  }
  th_res_free(&r);
  th_res_free(&r2);
  th_close(&t);
}
END_TEST

/* A callback that destroys its client and one that starts another request. */
struct reenter {
  struct th *t;
  struct th_res next;
  int calls;
  bool destroy;
};

static void reenter_cb(void *arg, int rc, struct kz_http_client_resp *resp) {
  struct reenter *e = arg;
  e->calls++;
  ck_assert_int_eq(rc, 200);
  if (e->destroy) {
    kz_http_client_free(e->t->client);
    e->t->client = NULL;
    return;
  }
  char url[128];
  snprintf(url, sizeof(url), "%s/echo/second", e->t->base);
  struct kz_http_client_req req = {.method = "GET", .url = url};
  e->next.t = e->t;
  ck_assert_int_eq(kz_http_client_request(e->t->client, &req, th_res_cb, &e->next, NULL), 0);
  ck_assert(!e->next.done);
}

START_TEST(reentrant_callbacks) {
  struct th t;
  th_open(&t, _i, NULL);
  struct reenter e = {.t = &t};
  char url[128];
  snprintf(url, sizeof(url), "%s/echo/first", t.base);
  struct kz_http_client_req req = {.method = "GET", .url = url};
  ck_assert_int_eq(kz_http_client_request(t.client, &req, reenter_cb, &e, NULL), 0);
  ck_assert(th_run(&t, th_res_done, &e.next, 5000));
  ck_assert_int_eq(e.next.rc, 200);
  ck_assert_str_eq(e.next.x_conn, "1"); /* the same connection, reused */
  th_res_free(&e.next);
  if (t.kind != TH_STREAM_SIM) {
    struct th_res other = {0};
    e.destroy = true;
    e.calls = 0;
    ck_assert_int_eq(kz_http_client_request(t.client, &req, reenter_cb, &e, NULL), 0);
    th_start(&t, &other, "GET", "/slow", NULL, 0, 0);
    ck_assert(th_run(&t, NULL, NULL, 300));
    ck_assert_int_eq(e.calls, 1);
    ck_assert_ptr_null(t.client);
    ck_assert_int_eq(other.calls, 0);
  }
  th_close(&t);
}
END_TEST

void add_contract_tests(Suite *s) {
  TCase *tc = kz_tcase(s, "contract", 60);
  tcase_add_loop_test(tc, methods_with_bodies, 0, TH_KINDS);
  tcase_add_loop_test(tc, bad_requests_refused_at_once, 0, TH_KINDS);
  tcase_add_loop_test(tc, chunked_and_until_close_responses, 0, TH_KINDS);
  tcase_add_loop_test(tc, keep_alive_reuse, 0, TH_KINDS);
  tcase_add_loop_test(tc, server_closes_early, 0, TH_KINDS);
  tcase_add_loop_test(tc, non_idempotent_never_resent, 0, TH_KINDS);
  tcase_add_loop_test(tc, timeouts, 0, TH_KINDS);
  tcase_add_loop_test(tc, connection_refused, 0, TH_KINDS);
  tcase_add_loop_test(tc, large_bodies, 0, TH_KINDS);
  tcase_add_loop_test(tc, many_concurrent_requests, 0, TH_KINDS);
  tcase_add_loop_test(tc, cancel_and_destroy, 0, TH_KINDS);
  tcase_add_loop_test(tc, reentrant_callbacks, 0, TH_KINDS);
}
