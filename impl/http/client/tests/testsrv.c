/* testsrv.c — the canned HTTP/1.1 test server (routes and scripted responses) used by the HTTP client and dbclient suites. */
#include "testsrv.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/error.h"
#include "kz/http.h"
#include "kz/http_write.h"
#include "kz/mem.h"
#include "kz/prng.h"

struct canned {
  int status;
  char *headers;
  struct kz_buf body;
};

struct tconn {
  struct tsrv *srv;
  struct kz_stream *s;
  struct kz_http_parser *p;
  struct kz_timer delay;
  struct kz_buf pending; /* delayed response */
  uint64_t num;
  bool close_next;
  bool dead;
  struct tconn *next;
};

struct tsrv {
  struct kz_env *env;
  struct kz_listener *l;
  struct tconn *conns;
  struct tsrv_req *reqs;
  size_t nreqs, capreqs;
  struct canned *canned;
  size_t ncanned, capcanned, next_canned;
  struct tsrv_stats st;
};

static void conn_free(struct tconn *c) {
  struct tsrv *s = c->srv;
  for (struct tconn **pp = &s->conns; *pp; pp = &(*pp)->next) {
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  }
  kz_timer_stop(&c->delay);
  kz_stream_close(c->s);
  kz_http_parser_free(c->p);
  kz_buf_free(&c->pending);
  s->st.open--;
  kz_free(c);
}

static void send_buf(struct tconn *c, struct kz_buf *b) {
  kz_stream_write(c->s, b->data, b->len);
  kz_buf_free(b);
}

static void respond(struct tconn *c, int status, const char *ctype, const void *body, size_t len,
                    bool close) {
  struct kz_buf b = {0};
  char num[32];
  snprintf(num, sizeof(num), "%" PRIu64, c->num);
  struct kz_http_header h[2] = {{KZ_SLICE_LIT("X-Conn"), kz_slice_cstr(num)},
                                {KZ_SLICE_LIT("Content-Type"), kz_slice_cstr(ctype)}};
  kz_http_write_response(&b, status, h, 2, body, len, close);
  send_buf(c, &b);
}

static void delay_cb(void *arg) {
  struct tconn *c = arg;
  send_buf(c, &c->pending);
}

static void record(struct tconn *c, struct kz_http_msg *m) {
  struct tsrv *s = c->srv;
  if (s->nreqs == s->capreqs) {
    size_t cap = s->capreqs ? s->capreqs * 2 : 16;
    struct tsrv_req *n = kz_realloc(s->reqs, cap * sizeof(*n));
    if (!n) abort();
    s->reqs = n;
    s->capreqs = cap;
  }
  struct tsrv_req *r = &s->reqs[s->nreqs++];
  memset(r, 0, sizeof(*r));
  snprintf(r->method, sizeof(r->method), "%.*s", (int)m->method.len, m->method.p);
  snprintf(r->target, sizeof(r->target), "%.*s", (int)m->target.len, m->target.p);
  struct kz_buf h = {0};
  for (size_t i = 0; i < m->nheaders; i++) {
    kz_buf_printf(&h, "%.*s: %.*s\n", (int)m->headers[i].name.len, m->headers[i].name.p,
                  (int)m->headers[i].value.len, m->headers[i].value.p);
  }
  kz_buf_append_byte(&h, 0);
  r->headers = (char *)h.data;
  kz_http_msg_take_body(m, &r->body);
  r->conn = c->num;
  s->st.requests++;
}

/* Answers one request; returns false when the connection was closed. */
static bool handle(struct tconn *c, struct kz_http_msg *m) {
  struct tsrv *s = c->srv;
  if (c->close_next) {
    record(c, m);
    conn_free(c);
    return false;
  }
  record(c, m);
  const struct tsrv_req *r = &s->reqs[s->nreqs - 1];
  const char *t = r->target;
  bool close = !m->keep_alive;
  if (s->ncanned) {
    struct kz_buf b = {0};
    if (s->next_canned < s->ncanned) {
      struct canned *k = &s->canned[s->next_canned++];
      kz_http_write_status_line(&b, k->status, NULL);
      kz_buf_append_cstr(&b, k->headers);
      kz_http_write_body(&b, k->body.data, k->body.len);
    } else {
      kz_http_write_response(&b, 500, NULL, 0, "no canned response", 18, false);
    }
    send_buf(c, &b);
  } else if (!strncmp(t, "/echo", 5)) {
    struct kz_buf b = {0}, body = {0};
    kz_buf_printf(&body, "%s %s\n", r->method, t);
    kz_buf_append(&body, r->body.data, r->body.len);
    kz_http_write_status_line(&b, 200, NULL);
    kz_http_write_header_cstr(&b, "X-Method", r->method);
    kz_http_write_header_u64(&b, "X-Body-Len", r->body.len);
    kz_http_write_header_u64(&b, "X-Conn", c->num);
    struct kz_slice xt = kz_http_msg_header(m, "X-Test");
    if (xt.p) kz_http_write_header(&b, "X-Seen-Test", xt);
    if (close) kz_http_write_header_cstr(&b, "Connection", "close");
    kz_http_write_body(&b, body.data, body.len);
    kz_buf_free(&body);
    send_buf(c, &b);
  } else if (!strncmp(t, "/status/", 8)) {
    int st = atoi(t + 8);
    char body[32];
    int n = snprintf(body, sizeof(body), "status %d", st);
    respond(c, st, "text/plain", body, (size_t)n, close);
  } else if (!strcmp(t, "/chunked")) {
    struct kz_buf b = {0};
    kz_http_write_status_line(&b, 200, NULL);
    kz_http_write_header_cstr(&b, "Transfer-Encoding", "chunked");
    kz_http_write_end_head(&b);
    kz_http_write_chunk(&b, "hello ", 6);
    send_buf(c, &b);
    kz_http_write_chunk(&b, "chunked ", 8);
    send_buf(c, &b);
    kz_http_write_chunk(&b, "world", 5);
    kz_http_write_last_chunk(&b);
    send_buf(c, &b);
  } else if (!strcmp(t, "/until-close")) {
    struct kz_buf b = {0};
    kz_http_write_status_line(&b, 200, NULL);
    kz_http_write_header_cstr(&b, "Connection", "close");
    kz_http_write_end_head(&b);
    kz_buf_append_cstr(&b, "until close");
    send_buf(c, &b);
    conn_free(c);
    return false;
  } else if (!strcmp(t, "/conn-close")) {
    respond(c, 200, "text/plain", "bye", 3, true);
    conn_free(c);
    return false;
  } else if (!strcmp(t, "/close-early")) {
    conn_free(c);
    return false;
  } else if (!strcmp(t, "/close-next")) {
    respond(c, 200, "text/plain", "ok", 2, false);
    c->close_next = true;
  } else if (!strcmp(t, "/slow")) {
    /* never answers */
  } else if (!strncmp(t, "/delay/", 7)) {
    uint64_t ms = strtoull(t + 7, NULL, 10);
    kz_http_write_response(&c->pending, 200, NULL, 0, t, strlen(t), close);
    kz_timer_start(&c->delay, ms * UINT64_C(1000000));
  } else if (!strcmp(t, "/big")) {
    uint8_t *big = malloc(TSRV_BIG);
    for (size_t i = 0; i < TSRV_BIG; i++) big[i] = (uint8_t)((i * 7 + 3) & 0xff);
    respond(c, 200, "application/octet-stream", big, TSRV_BIG, close);
    free(big);
  } else if (!strcmp(t, "/upload")) {
    char body[64];
    int n = snprintf(body, sizeof(body), "%zu %016" PRIx64, r->body.len,
                     kz_hash64(r->body.data, r->body.len, 0));
    respond(c, 200, "text/plain", body, (size_t)n, close);
  } else {
    respond(c, 404, "text/plain", "no route", 8, close);
  }
  if (close) {
    conn_free(c);
    return false;
  }
  return true;
}

static void on_data(void *arg, struct kz_stream *st, const uint8_t *data, size_t len) {
  struct tconn *c = arg;
  size_t off = 0;
  for (;;) {
    size_t used = 0;
    int rc = kz_http_parser_feed(c->p, data + off, len - off, &used);
    off += used;
    if (rc < 0) {
      struct kz_buf b = {0};
      kz_http_write_response(&b, kz_http_parser_error(c->p, NULL), NULL, 0, NULL, 0, true);
      send_buf(c, &b);
      conn_free(c);
      return;
    }
    if (rc == KZ_HTTP_EV_MORE) return;
    if (rc == KZ_HTTP_EV_HEAD) continue;
    if (!handle(c, kz_http_parser_msg(c->p))) return;
  }
}

static void on_close(void *arg, struct kz_stream *st, int status) {
  struct tconn *c = arg;
  c->srv->st.closed_by_peer++;
  conn_free(c);
}

static const struct kz_stream_cbs conn_cbs = {.on_data = on_data, .on_close = on_close};

static void on_accept(void *arg, struct kz_listener *l, struct kz_stream *st) {
  struct tsrv *s = arg;
  struct tconn *c = kz_calloc(1, sizeof(*c));
  struct kz_http_limits lim = {.max_body = 8u * 1024u * 1024u};
  if (!c || kz_http_parser_new(&c->p, KZ_HTTP_REQUEST, &lim)) abort();
  c->srv = s;
  c->s = st;
  c->num = ++s->st.accepted;
  kz_timer_init(&c->delay, s->env, delay_cb, c);
  c->next = s->conns;
  s->conns = c;
  if (++s->st.open > s->st.max_open) s->st.max_open = s->st.open;
  kz_stream_set_cbs(st, &conn_cbs, c);
}

int tsrv_new(struct tsrv **out, struct kz_env *env, const struct kz_addr *local) {
  struct tsrv *s = kz_calloc(1, sizeof(*s));
  if (!s) return KZ_ENOMEM;
  s->env = env;
  int rc = kz_stream_listen(env, local, on_accept, s, &s->l);
  if (rc) {
    kz_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

void tsrv_free(struct tsrv *s) {
  if (!s) return;
  while (s->conns) conn_free(s->conns);
  kz_listener_close(s->l);
  for (size_t i = 0; i < s->nreqs; i++) {
    kz_free(s->reqs[i].headers);
    kz_buf_free(&s->reqs[i].body);
  }
  kz_free(s->reqs);
  for (size_t i = 0; i < s->ncanned; i++) {
    kz_free(s->canned[i].headers);
    kz_buf_free(&s->canned[i].body);
  }
  kz_free(s->canned);
  kz_free(s);
}

struct kz_addr tsrv_addr(const struct tsrv *s) { return s->l->local; }
const struct tsrv_stats *tsrv_stats(const struct tsrv *s) { return &s->st; }
size_t tsrv_nreqs(const struct tsrv *s) { return s->nreqs; }
const struct tsrv_req *tsrv_req(const struct tsrv *s, size_t i) {
  return i < s->nreqs ? &s->reqs[i] : NULL;
}

int tsrv_push(struct tsrv *s, int status, const char *headers, const char *body, size_t len) {
  if (s->ncanned == s->capcanned) {
    size_t cap = s->capcanned ? s->capcanned * 2 : 8;
    struct canned *n = kz_realloc(s->canned, cap * sizeof(*n));
    if (!n) return KZ_ENOMEM;
    s->canned = n;
    s->capcanned = cap;
  }
  struct canned *k = &s->canned[s->ncanned];
  memset(k, 0, sizeof(*k));
  k->status = status;
  k->headers = kz_strdup(headers ? headers : "");
  if (!k->headers || kz_buf_append(&k->body, body, len)) return KZ_ENOMEM;
  s->ncanned++;
  return 0;
}

int tsrv_app_start(struct kz_env *env, const void *cfg, void **instance) {
  struct tsrv *s = NULL;
  int rc = tsrv_new(&s, env, cfg);
  if (!rc) *instance = s;
  return rc;
}

void tsrv_app_stop(void *instance) { tsrv_free(instance); }
