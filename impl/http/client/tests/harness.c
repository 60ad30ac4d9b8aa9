/* harness.c — the three worlds of the client contract tests: kz_uv + stream backend, simulator + stream backend, libuv + curl backend. */
#include "harness.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "kz/error.h"
#include "kz/http_curl.h"
#include "kz/mem.h"
#include "kz/sim.h"
#include "kz/uv_env.h"

#define MS UINT64_C(1000000)

struct th_impl {
  /* uv worlds */
  uv_loop_t loop;
  uv_timer_t watchdog;
  bool expired;
  struct kz_uv_env *srv_uv, *cli_uv;
  /* sim world */
  struct kz_sim *sim;
  struct kz_sim_proc *srv_proc, *cli_proc;
  struct kz_addr listen;
  struct kz_http_client_cfg cfg;
  bool has_cfg;
};

const char *th_kind_name(enum th_kind k) {
  switch (k) {
    case TH_STREAM_UV: return "stream/uv";
    case TH_STREAM_SIM: return "stream/sim";
    case TH_CURL_UV: return "curl/uv";
    default: return "?";
  }
}

static void quiet_log(void *arg, int level, const char *line, size_t len) {
  if (getenv("KZ_TEST_VERBOSE")) fprintf(stderr, "%.*s\n", (int)len, line);
}

static int cli_app_start(struct kz_env *env, const void *cfg, void **instance) {
  const struct th_impl *im = cfg;
  struct kz_http_client *c = NULL;
  int rc = kz_http_client_stream_new(&c, env, im->has_cfg ? &im->cfg : NULL);
  if (!rc) *instance = c;
  return rc;
}

static void cli_app_stop(void *instance) { kz_http_client_free(instance); }

static const struct kz_sim_app cli_app = {"http-client", cli_app_start, cli_app_stop};
static const struct kz_sim_app srv_app = {"http-server", tsrv_app_start, tsrv_app_stop};

static void set_base(struct th *t, struct kz_addr a) {
  char ip[KZ_ADDR_STRLEN];
  kz_addr_format_ip(&a, ip, sizeof(ip));
  snprintf(t->host, sizeof(t->host), "%s:%u", ip, (unsigned)a.port);
  snprintf(t->base, sizeof(t->base), "http://%s", t->host);
}

void th_open(struct th *t, enum th_kind kind, const struct kz_http_client_cfg *cfg) {
  memset(t, 0, sizeof(*t));
  t->kind = kind;
  struct th_impl *im = calloc(1, sizeof(*im));
  ck_assert_ptr_nonnull(im);
  t->impl = im;
  if (cfg) {
    im->cfg = *cfg;
    im->has_cfg = true;
  }
  if (kind == TH_STREAM_SIM) {
    ck_assert_int_eq(kz_sim_new(&im->sim, 42), 0);
    struct kz_sim_host *hs = NULL, *hc = NULL;
    struct kz_addr as = kz_addr_v4(0x0a000001u, 0), ac = kz_addr_v4(0x0a000002u, 0);
    ck_assert_int_eq(kz_sim_host_add(im->sim, "srv", &as, &hs), 0);
    ck_assert_int_eq(kz_sim_host_add(im->sim, "cli", &ac, &hc), 0);
    im->listen = kz_addr_v4(0x0a000001u, 80);
    ck_assert_int_eq(kz_sim_proc_add(hs, "srv", &srv_app, &im->listen, &im->srv_proc), 0);
    ck_assert_int_eq(kz_sim_proc_add(hc, "cli", &cli_app, im, &im->cli_proc), 0);
    t->srv = kz_sim_proc_instance(im->srv_proc);
    t->client = kz_sim_proc_instance(im->cli_proc);
    set_base(t, tsrv_addr(t->srv));
    return;
  }
  ck_assert_int_eq(uv_loop_init(&im->loop), 0);
  ck_assert_int_eq(uv_timer_init(&im->loop, &im->watchdog), 0);
  im->watchdog.data = im;
  ck_assert_int_eq(kz_uv_env_new(&im->srv_uv, &im->loop, "srv", 1, NULL), 0);
  kz_uv_env_set_log_sink(im->srv_uv, quiet_log, NULL);
  struct kz_addr lo = kz_addr_v4(0x7f000001u, 0);
  ck_assert_int_eq(tsrv_new(&t->srv, kz_uv_env_get(im->srv_uv), &lo), 0);
  set_base(t, tsrv_addr(t->srv));
  if (kind == TH_STREAM_UV) {
    ck_assert_int_eq(kz_uv_env_new(&im->cli_uv, &im->loop, "cli", 2, NULL), 0);
    kz_uv_env_set_log_sink(im->cli_uv, quiet_log, NULL);
    ck_assert_int_eq(kz_http_client_stream_new(&t->client, kz_uv_env_get(im->cli_uv), cfg), 0);
  } else {
    ck_assert_int_eq(kz_http_curl_new(&t->client, &im->loop, cfg), 0);
  }
}

static void watchdog_cb(uv_timer_t *w) {
  struct th_impl *im = w->data;
  im->expired = true;
  uv_stop(w->loop);
}

bool th_run(struct th *t, th_cond_fn *cond, void *arg, uint64_t ms) {
  struct th_impl *im = t->impl;
  if (t->kind == TH_STREAM_SIM) {
    uint64_t deadline = kz_sim_now(im->sim) + ms * MS;
    while (!(cond && cond(arg))) {
      uint64_t next = kz_sim_next_event_time(im->sim);
      if (next > deadline) {
        if (kz_sim_run_until(im->sim, deadline)) t->failed = true;
        break;
      }
      if (kz_sim_step(im->sim) < 0) {
        t->failed = true;
        break;
      }
    }
    ck_assert_msg(!t->failed || t->expect_failure, "simulator failed");
    return cond ? cond(arg) : true;
  }
  im->expired = false;
  uv_timer_start(&im->watchdog, watchdog_cb, ms, 0);
  while (!(cond && cond(arg)) && !im->expired) uv_run(&im->loop, UV_RUN_ONCE);
  uv_timer_stop(&im->watchdog);
  return cond ? cond(arg) : true;
}

uint64_t th_now_ms(struct th *t) {
  struct th_impl *im = t->impl;
  if (t->kind == TH_STREAM_SIM) return kz_sim_now(im->sim) / MS;
  uv_update_time(&im->loop);
  return uv_now(&im->loop);
}

static void no_accept(void *arg, struct kz_listener *l, struct kz_stream *s) {
  kz_stream_close(s);
}

void th_dead_url(struct th *t, char *out, size_t outlen) {
  struct th_impl *im = t->impl;
  if (t->kind == TH_STREAM_SIM) {
    snprintf(out, outlen, "http://10.0.0.1:81/echo");
    return;
  }
  /* A port that was free a moment ago and is closed now. */
  struct kz_listener *l = NULL;
  struct kz_addr lo = kz_addr_v4(0x7f000001u, 0);
  ck_assert_int_eq(kz_stream_listen(kz_uv_env_get(im->srv_uv), &lo, no_accept, NULL, &l), 0);
  unsigned port = l->local.port;
  kz_listener_close(l);
  th_run(t, NULL, NULL, 5);
  snprintf(out, outlen, "http://127.0.0.1:%u/echo", port);
}

void th_close(struct th *t) {
  struct th_impl *im = t->impl;
  if (t->kind == TH_STREAM_SIM) {
    kz_sim_free(im->sim);
    free(im);
    t->impl = NULL;
    return;
  }
  kz_http_client_free(t->client);
  t->client = NULL;
  if (im->cli_uv) {
    struct kz_env *e = kz_uv_env_get(im->cli_uv);
    ck_assert_int_eq(e->n_streams, 0); /* the client closed every stream */
  }
  tsrv_free(t->srv);
  t->srv = NULL;
  th_run(t, NULL, NULL, 5);
  kz_uv_env_free(im->srv_uv);
  kz_uv_env_free(im->cli_uv);
  uv_close((uv_handle_t *)&im->watchdog, NULL);
  uv_run(&im->loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&im->loop), 0);
  free(im);
  t->impl = NULL;
}

static void copy_header(const struct kz_http_client_resp *resp, const char *name, char *out,
                        size_t outlen) {
  struct kz_slice v = kz_http_client_resp_header(resp, name);
  snprintf(out, outlen, "%.*s", (int)v.len, v.p ? v.p : "");
}

void th_res_cb(void *arg, int rc, struct kz_http_client_resp *resp) {
  struct th_res *r = arg;
  r->calls++;
  r->done = true;
  r->rc = rc;
  if (r->t) r->t_done_ms = th_now_ms(r->t);
  if (rc > 0) {
    ck_assert_ptr_nonnull(resp);
    ck_assert_int_eq(resp->status, rc);
    kz_buf_free(&r->body);
    kz_http_client_resp_take_body(resp, &r->body);
    copy_header(resp, "X-Method", r->x_method, sizeof(r->x_method));
    copy_header(resp, "X-Conn", r->x_conn, sizeof(r->x_conn));
    copy_header(resp, "X-Seen-Test", r->x_seen_test, sizeof(r->x_seen_test));
    copy_header(resp, "Content-Type", r->content_type, sizeof(r->content_type));
  } else {
    ck_assert_ptr_null(resp);
  }
}

bool th_res_done(void *arg) { return ((struct th_res *)arg)->done; }

void th_start(struct th *t, struct th_res *r, const char *method, const char *path,
              const void *body, size_t len, uint64_t timeout_ms) {
  char url[256];
  snprintf(url, sizeof(url), "%s%s", t->base, path);
  kz_buf_free(&r->body);
  memset(r, 0, sizeof(*r));
  r->t = t;
  struct kz_http_client_req req = {
      .method = method, .url = url, .body = body, .body_len = len, .timeout_ns = timeout_ms * MS};
  ck_assert_int_eq(kz_http_client_request(t->client, &req, th_res_cb, r, NULL), 0);
  ck_assert(!r->done); /* never called back synchronously */
}

void th_do(struct th *t, struct th_res *r, const char *method, const char *path, const void *body,
           size_t len, uint64_t timeout_ms) {
  th_start(t, r, method, path, body, len, timeout_ms);
  ck_assert_msg(th_run(t, th_res_done, r, 10000), "%s %s did not complete (%s)", method, path,
                th_kind_name(t->kind));
  ck_assert_int_eq(r->calls, 1);
}

void th_res_free(struct th_res *r) { kz_buf_free(&r->body); }
