/* db_harness.c — the simulated client/server harness of the db role's tests. */
#include "db_harness.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"

#define MS UINT64_C(1000000)

/* The client process only lends its env to the test. */
struct th_client {
  struct kz_env *env;
};

static int client_start(struct kz_env *env, const void *cfg, void **instance) {
  (void)cfg;
  struct th_client *c = kz_calloc(1, sizeof *c);
  if (!c) return KZ_ENOMEM;
  c->env = env;
  *instance = c;
  return 0;
}

static void client_stop(void *instance) { kz_free(instance); }

static const struct kz_sim_app client_app = {"db-client", client_start, client_stop};
static const struct kz_sim_app db_app = {"db", kz_db_app_start, kz_db_app_stop};

void th_init(struct th *th, uint64_t seed, const struct kz_db_cfg *cfg) {
  memset(th, 0, sizeof *th);
  if (cfg) th->cfg = *cfg;
  if (!th->cfg.listen.family) th->cfg.listen = kz_addr_v4(0, TH_DB_PORT);
  ck_assert_int_eq(kz_sim_new(&th->sim, seed), 0);
  kz_sim_set_cost_zero(th->sim);
  kz_sim_set_connect_timeout(th->sim, 100 * MS);
  struct kz_addr dip = kz_addr_v4(TH_DB_IP, 0), cip = kz_addr_v4(TH_CLIENT_IP, 0);
  ck_assert_int_eq(kz_sim_host_add(th->sim, "db", &dip, &th->dbh), 0);
  ck_assert_int_eq(kz_sim_host_add(th->sim, "client", &cip, &th->clh), 0);
  ck_assert_int_eq(kz_sim_proc_add(th->dbh, "couch", &db_app, &th->cfg, &th->dbp), 0);
  ck_assert_int_eq(kz_sim_proc_add(th->clh, "cli", &client_app, NULL, &th->clp), 0);
}

struct kz_db *th_db(struct th *th) { return kz_sim_proc_instance(th->dbp); }

void th_crash_restart(struct th *th) {
  ck_assert_int_eq(kz_sim_host_crash(th->dbh), 0);
  kz_sim_run_for(th->sim, 10 * MS);
  ck_assert_int_eq(kz_sim_host_restart(th->dbh), 0);
  kz_sim_run_for(th->sim, 10 * MS);
}

void th_add_db2_cfg(struct th *th, const struct kz_db_cfg *cfg) {
  th->cfg2 = *cfg;
  if (!th->cfg2.listen.family) th->cfg2.listen = kz_addr_v4(0, TH_DB_PORT);
  struct kz_addr ip = kz_addr_v4(TH_DB2_IP, 0);
  ck_assert_int_eq(kz_sim_host_add(th->sim, "db2", &ip, &th->dbh2), 0);
  ck_assert_int_eq(kz_sim_proc_add(th->dbh2, "couch", &db_app, &th->cfg2, &th->dbp2), 0);
}

void th_add_db2(struct th *th) { th_add_db2_cfg(th, &th->cfg); }

void th_target(struct th *th, uint32_t ip) {
  th_conn_close(th->conn);
  th->conn = NULL;
  th->ip = ip;
}

void th_resp_free(struct th_resp *r) {
  kz_buf_free(&r->body);
  json_decref(r->json);
  memset(r, 0, sizeof *r);
}

static void conn_on_connect(void *arg, struct kz_stream *s) {
  (void)s;
  struct th_conn *c = arg;
  c->open = true;
}

static void copy_header(const struct kz_http_msg *m, const char *name, char *out, size_t len) {
  struct kz_slice v = kz_http_msg_header(m, name);
  out[0] = 0;
  if (v.p) snprintf(out, len, "%.*s", (int)v.len, v.p);
}

static void conn_on_data(void *arg, struct kz_stream *s, const uint8_t *data, size_t len) {
  (void)s;
  struct th_conn *c = arg;
  ck_assert_int_eq(kz_buf_append(&c->raw, data, len), 0);
  size_t off = 0;
  for (;;) {
    if (c->expect_head) kz_http_parser_expect_head_response(c->p);
    size_t used = 0;
    int ev = kz_http_parser_feed(c->p, data + off, len - off, &used);
    off += used;
    ck_assert_msg(ev >= 0, "client parser failed: %d", ev);
    if (ev == KZ_HTTP_EV_MORE) break;
    if (ev == KZ_HTTP_EV_HEAD) continue;
    struct kz_http_msg *m = kz_http_parser_msg(c->p);
    if (m->status < 200) continue; /* 100 Continue */
    ck_assert_int_lt(c->nresp, 8);
    struct th_resp *r = &c->resp[c->nresp++];
    memset(r, 0, sizeof *r);
    r->status = m->status;
    r->chunked = m->chunked;
    kz_http_msg_take_body(m, &r->body);
    copy_header(m, "ETag", r->etag, sizeof r->etag);
    copy_header(m, "Content-Type", r->ctype, sizeof r->ctype);
    copy_header(m, "Location", r->location, sizeof r->location);
    if (!strncmp(r->ctype, "application/json", 16) && r->body.len)
      r->json = json_loadb((const char *)r->body.data, r->body.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    c->expect_head = false;
  }
}

static void conn_on_close(void *arg, struct kz_stream *s, int status) {
  (void)s;
  struct th_conn *c = arg;
  c->closed = true;
  c->close_status = status;
}

static const struct kz_stream_cbs conn_cbs = {conn_on_connect, conn_on_data, conn_on_close};

struct th_conn *th_conn_open(struct th *th) {
  struct kz_env *env = kz_sim_proc_env(th->clp);
  struct th_conn *c = kz_calloc(1, sizeof *c);
  ck_assert_ptr_nonnull(c);
  c->th = th;
  ck_assert_int_eq(kz_http_parser_new(&c->p, KZ_HTTP_RESPONSE, NULL), 0);
  struct kz_addr to = kz_addr_v4(th->ip ? th->ip : TH_DB_IP, th->cfg.listen.port ? th->cfg.listen.port : TH_DB_PORT);
  ck_assert_int_eq(kz_stream_connect(env, &to, &conn_cbs, c, &c->s), 0);
  uint64_t end = kz_sim_now(th->sim) + 500 * MS;
  while (!c->open && !c->closed && kz_sim_now(th->sim) < end)
    ck_assert_int_eq(kz_sim_run_for(th->sim, MS / 4), 0);
  if (!c->open) {
    th_conn_close(c);
    return NULL;
  }
  return c;
}

void th_conn_close(struct th_conn *c) {
  if (!c) return;
  kz_stream_close(c->s);
  kz_http_parser_free(c->p);
  for (int i = 0; i < c->nresp; i++) th_resp_free(&c->resp[i]);
  kz_buf_free(&c->raw);
  kz_free(c);
}

void th_send(struct th_conn *c, const void *data, size_t len) {
  ck_assert_int_eq(kz_stream_write(c->s, data, len), 0);
}

int th_wait(struct th_conn *c, uint64_t max_ns, struct th_resp *out) {
  struct th *th = c->th;
  uint64_t end = kz_sim_now(th->sim) + max_ns;
  while (c->nresp == 0 && !c->closed && kz_sim_now(th->sim) < end)
    ck_assert_int_eq(kz_sim_run_for(th->sim, MS / 4), 0);
  if (c->nresp == 0) return 0;
  *out = c->resp[0];
  memmove(&c->resp[0], &c->resp[1], (size_t)(c->nresp - 1) * sizeof c->resp[0]);
  c->nresp--;
  return 1;
}

struct th_resp *th_req_h(struct th *th, const char *method, const char *target, const char *headers,
                         const void *body, size_t len) {
  th_resp_free(&th->last);
  if (th->conn && th->conn->closed) {
    th_conn_close(th->conn);
    th->conn = NULL;
  }
  if (!th->conn) th->conn = th_conn_open(th);
  if (!th->conn) return NULL;
  struct kz_buf b = {0};
  kz_buf_printf(&b, "%s %s HTTP/1.1\r\nHost: db\r\n", method, target);
  if (headers) kz_buf_append_cstr(&b, headers);
  if (body) {
    if (!headers || !strstr(headers, "Content-Type")) kz_buf_append_cstr(&b, "Content-Type: application/json\r\n");
    kz_buf_printf(&b, "Content-Length: %zu\r\n", len);
  }
  kz_buf_append_cstr(&b, "\r\n");
  if (body) kz_buf_append(&b, body, len);
  th->conn->expect_head = !strcmp(method, "HEAD");
  th_send(th->conn, b.data, b.len);
  kz_buf_free(&b);
  if (!th_wait(th->conn, 30000 * MS, &th->last)) return NULL;
  return &th->last;
}

struct th_resp *th_req(struct th *th, const char *method, const char *target, const char *json_body) {
  return th_req_h(th, method, target, NULL, json_body, json_body ? strlen(json_body) : 0);
}

struct th_resp *th_reqf(struct th *th, const char *method, const char *target, const char *fmt, ...) {
  char buf[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return th_req(th, method, target, buf);
}

const char *th_str(const struct th_resp *r, const char *key) {
  return r && r->json ? json_string_value(json_object_get(r->json, key)) : NULL;
}

json_int_t th_int(const struct th_resp *r, const char *key) {
  return r && r->json ? json_integer_value(json_object_get(r->json, key)) : -1;
}

void th_free(struct th *th) {
  th_resp_free(&th->last);
  th_conn_close(th->conn);
  th->conn = NULL;
  kz_sim_free(th->sim);
}
