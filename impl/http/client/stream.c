/* stream.c — the stream backend of the HTTP client: HTTP/1.1 over kz_env streams with a bounded keep-alive pool per host:port. */
#include <stdio.h>
#include <string.h>

#include "kz/error.h"
#include "kz/http_client.h"
#include "kz/http_write.h"
#include "kz/list.h"
#include "kz/map.h"
#include "kz/mem.h"

/* Design notes.
 *  - One request per connection at a time (no pipelining): a connection
 *    is connecting, busy (carries a call), completing (its response is
 *    being handed to the user: not reusable until the callback returns,
 *    so a callback can never pull the connection from under the handler
 *    that is delivering on it) or idle (in the pool, idle timer running).
 *  - Calls wait in a FIFO per host:port until a connection is free or
 *    can be opened (at most max_conns_per_host connections).
 *  - Each call owns one kz timer: its deadline, or (pending_err set) a
 *    zero-delay timer that reports an error found while starting it, so
 *    callbacks never run inside kz_http_client_request.
 *  - Re-entrancy: every event handler brackets its work with enter/leave.
 *    Requests started inside a callback are only queued; the outermost
 *    leave dispatches them, once the handler has put its connection back
 *    in the pool (so a follow-up request reuses it).  A destroy inside a
 *    callback only marks the client dead; the handler returns at once and
 *    the outermost leave tears down.
 *  - Resend: only an idempotent request without no_retry whose reused
 *    connection closed before any response byte (the stale keep-alive
 *    race), as Go's net/http does (curl resends any method; the curl
 *    backend sidesteps that with fresh connections); a fresh connection
 *    failing is an answer. */

struct sclient;
struct shost;

struct sconn {
  struct kz_list link; /* in host->conns */
  struct shost *h;
  struct kz_stream *s;
  struct kz_http_parser *p;
  struct kz_http_call *call;
  struct kz_timer idle;
  bool open;       /* connected */
  bool completing; /* a response is being delivered */
  bool got_bytes;  /* bytes of the current call's response arrived */
  unsigned uses;   /* requests written on it */
};

struct shost {
  struct kz_list link; /* in client->hosts_list, creation order */
  struct sclient *c;
  struct kz_addr addr;
  struct kz_list conns;
  unsigned n_conns;
  struct kz_list queue;  /* waiting calls */
  struct kz_list failed; /* calls whose error is reported by their timer */
};

struct kz_http_call {
  struct kz_list link; /* in host->queue while waiting */
  struct sclient *c;
  struct shost *h;
  struct sconn *conn;
  struct kz_buf wire;
  kz_http_client_done_fn *cb;
  void *arg;
  struct kz_timer timer;
  uint64_t deadline; /* UINT64_MAX: none */
  int pending_err;
  unsigned retries_left;
  bool head;
};

struct sclient {
  struct kz_http_client base;
  struct kz_env *env;
  struct kz_http_client_cfg cfg;
  char *user_agent;
  struct kz_map hosts; /* "ip:port" -> struct shost */
  struct kz_list hosts_list;
  struct kz_http_client_stats stats;
  unsigned depth;
  bool dead;
};

#define CONN_OF(l) KZ_CONTAINER_OF(l, struct sconn, link)
#define CALL_OF(l) KZ_CONTAINER_OF(l, struct kz_http_call, link)
#define HOST_OF(l) KZ_CONTAINER_OF(l, struct shost, link)

static void teardown(struct sclient *c);
static void dispatch(struct shost *h);

static void enter(struct sclient *c) { c->depth++; }

/* Requests started (or connections freed) inside a callback are
 * dispatched here, once the handler is done with its connection, so a
 * callback's follow-up request can reuse the connection it came on. */
static void leave(struct sclient *c) {
  if (--c->depth) return;
  if (c->dead) {
    teardown(c);
    return;
  }
  c->depth++;
  struct kz_list *l;
  KZ_LIST_FOREACH(l, &c->hosts_list) dispatch(HOST_OF(l));
  c->depth--;
}

/* ------------------------------------------------------------------ */
/* Calls                                                                */

static void call_free(struct kz_http_call *call) {
  kz_timer_stop(&call->timer);
  kz_list_remove(&call->link);
  kz_buf_free(&call->wire);
  kz_free(call);
}

/* Hands the outcome to the user and frees the call, which must already
 * be off any connection and queue.  The caller checks c->dead after. */
static void call_complete(struct kz_http_call *call, int result, struct kz_http_client_resp *resp) {
  struct sclient *c = call->c;
  kz_http_client_done_fn *cb = call->cb;
  void *arg = call->arg;
  if (result < 0) {
    c->stats.errors++;
    kz_log(c->env, KZ_LOG_DEBUG, "http-client", "request failed: %s", kz_err_name(result));
  } else {
    c->stats.responses++;
  }
  call_free(call);
  cb(arg, result, resp);
}

/* Fails a call from its timer at the next chance (never synchronously).
 * Without memory even for the timer the call stays parked until its
 * deadline, if it had one, or until the client goes. */
static void call_fail_later(struct kz_http_call *call, int err) {
  call->pending_err = err;
  kz_list_remove(&call->link);
  kz_list_insert_before(&call->h->failed, &call->link);
  (void)kz_timer_start(&call->timer, 0);
}

/* ------------------------------------------------------------------ */
/* Connections                                                          */

static void conn_idle_cb(void *arg);
static const struct kz_stream_cbs conn_cbs;

static void conn_free(struct sconn *k) {
  struct shost *h = k->h;
  kz_timer_stop(&k->idle);
  kz_stream_close(k->s);
  kz_http_parser_free(k->p);
  kz_list_remove(&k->link);
  h->n_conns--;
  kz_free(k);
}

static struct sconn *conn_new(struct shost *h, int *err) {
  struct sclient *c = h->c;
  struct sconn *k = kz_calloc(1, sizeof(*k));
  if (!k) {
    *err = KZ_ENOMEM;
    return NULL;
  }
  struct kz_http_limits lim = {.max_body = c->cfg.max_body};
  int rc = kz_http_parser_new(&k->p, KZ_HTTP_RESPONSE, &lim);
  if (!rc) rc = kz_stream_connect(c->env, &h->addr, &conn_cbs, k, &k->s);
  if (rc) {
    kz_http_parser_free(k->p);
    kz_free(k);
    *err = rc;
    return NULL;
  }
  k->h = h;
  kz_timer_init(&k->idle, c->env, conn_idle_cb, k);
  kz_list_init(&k->link);
  kz_list_insert_before(&h->conns, &k->link);
  h->n_conns++;
  c->stats.connects++;
  return k;
}

static bool conn_is_idle(const struct sconn *k) { return k->open && !k->call && !k->completing; }

/* Puts `call` on connection `k` and writes its request. */
static void conn_assign(struct sconn *k, struct kz_http_call *call) {
  struct sclient *c = k->h->c;
  kz_timer_stop(&k->idle);
  kz_list_remove(&call->link);
  k->call = call;
  k->got_bytes = false;
  call->conn = k;
  if (k->uses++) c->stats.reuses++;
  if (call->head) kz_http_parser_expect_head_response(k->p);
  int rc = kz_stream_write(k->s, call->wire.data, call->wire.len);
  if (rc) {
    k->call = NULL;
    call->conn = NULL;
    conn_free(k);
    call_fail_later(call, rc == KZ_ECLOSED ? KZ_ECONNRESET : rc);
  }
}

/* A connection whose call is done: back to the pool, or closed. */
static void conn_release(struct sconn *k, bool keep) {
  k->completing = false;
  if (!keep || !k->open) {
    conn_free(k);
    return;
  }
  if (kz_timer_start(&k->idle, k->h->c->cfg.idle_timeout_ns)) conn_free(k);
}

static void conn_idle_cb(void *arg) {
  struct sconn *k = arg;
  struct shost *h = k->h;
  struct sclient *c = h->c;
  enter(c);
  conn_free(k);
  leave(c);
}

static void conn_on_connect(void *arg, struct kz_stream *s) {
  struct sconn *k = arg;
  k->open = true;
}

/* Delivers the parser's current message as the call's response. */
static void deliver(struct sconn *k, struct kz_http_msg *m) {
  struct kz_http_call *call = k->call;
  k->call = NULL;
  call->conn = NULL;
  k->completing = true;
  struct kz_http_client_resp resp = {.status = m->status, .headers = m->headers, .nheaders = m->nheaders};
  kz_http_msg_take_body(m, &resp.body);
  call_complete(call, m->status, &resp);
  kz_buf_free(&resp.body);
}

static int map_parse_err(int rc) {
  return rc == KZ_EMSGSIZE || rc == KZ_ENOMEM ? rc : KZ_EPROTO;
}

static void conn_on_data(void *arg, struct kz_stream *s, const uint8_t *data, size_t len) {
  struct sconn *k = arg;
  struct shost *h = k->h;
  struct sclient *c = h->c;
  enter(c);
  if (!k->call) {
    /* Bytes nobody asked for (pipelining is off): the connection is out
     * of step, so it cannot be trusted any more. */
    if (!k->completing) conn_free(k);
    leave(c);
    return;
  }
  if (len) k->got_bytes = true;
  size_t off = 0;
  for (;;) {
    size_t used = 0;
    int rc = kz_http_parser_feed(k->p, data + off, len - off, &used);
    off += used;
    if (rc < 0) {
      struct kz_http_call *call = k->call;
      k->call = NULL;
      call->conn = NULL;
      conn_free(k);
      call_complete(call, map_parse_err(rc), NULL);
      break;
    }
    if (rc == KZ_HTTP_EV_MORE) break;
    if (rc == KZ_HTTP_EV_HEAD) continue;
    struct kz_http_msg *m = kz_http_parser_msg(k->p);
    if (m->status < 200) continue; /* 100 Continue and friends */
    bool keep = m->keep_alive && off == len;
    deliver(k, m);
    if (c->dead) break;
    conn_release(k, keep);
    break;
  }
  leave(c);
}

static void conn_on_close(void *arg, struct kz_stream *s, int status) {
  struct sconn *k = arg;
  struct shost *h = k->h;
  struct sclient *c = h->c;
  enter(c);
  struct kz_http_call *call = k->call;
  if (!call) {
    /* An idle connection the server closed (or one being completed,
     * which cannot happen: delivery is synchronous). */
    conn_free(k);
    leave(c);
    return;
  }
  if (status == 0 && k->got_bytes) {
    /* A body delimited by the close completes now. */
    int rc = kz_http_parser_finish(k->p);
    if (rc == KZ_HTTP_EV_MSG) {
      struct kz_http_msg *m = kz_http_parser_msg(k->p);
      deliver(k, m);
      if (!c->dead) conn_release(k, false);
      leave(c);
      return;
    }
  }
  k->call = NULL;
  call->conn = NULL;
  bool was_open = k->open, got_bytes = k->got_bytes;
  unsigned uses = k->uses;
  conn_free(k);
  if (!got_bytes && was_open && uses > 1 && call->retries_left) {
    /* The stale keep-alive race: the server closed an idle connection
     * while our request was on its way.  Nothing was processed, so an
     * idempotent request goes again, first in line. */
    call->retries_left--;
    c->stats.retries++;
    kz_list_insert_before(h->queue.next, &call->link);
    leave(c);
    return;
  }
  int err = status;
  if (err == 0 || (was_open && err != KZ_ETIMEDOUT)) err = KZ_ECONNRESET;
  call_complete(call, err, NULL);
  leave(c);
}

static const struct kz_stream_cbs conn_cbs = {
    .on_connect = conn_on_connect,
    .on_data = conn_on_data,
    .on_close = conn_on_close,
};

/* ------------------------------------------------------------------ */
/* Hosts and dispatch                                                   */

static void dispatch(struct shost *h) {
  struct sclient *c = h->c;
  while (!kz_list_empty(&h->queue)) {
    struct sconn *k = NULL;
    struct kz_list *l;
    KZ_LIST_FOREACH(l, &h->conns) {
      if (conn_is_idle(CONN_OF(l))) {
        k = CONN_OF(l);
        break;
      }
    }
    struct kz_http_call *call = CALL_OF(h->queue.next);
    if (!k) {
      if (h->n_conns >= c->cfg.max_conns_per_host) break;
      int err = 0;
      k = conn_new(h, &err);
      if (!k) {
        kz_list_remove(&call->link);
        call_fail_later(call, err);
        continue;
      }
    }
    conn_assign(k, call);
  }
}

static int resolve(struct sclient *c, const struct kz_http_client_target *t, struct kz_addr *out) {
  char buf[300];
  if (strchr(t->host, ':')) {
    snprintf(buf, sizeof(buf), "[%s]:%u", t->host, (unsigned)t->port);
  } else {
    snprintf(buf, sizeof(buf), "%s:%u", !strcmp(t->host, "localhost") ? "127.0.0.1" : t->host,
             (unsigned)t->port);
  }
  if (kz_addr_parse(out, buf) == 0) return 0;
  if (!c->cfg.resolve || c->cfg.resolve(c->cfg.resolve_arg, t->host, out)) return KZ_ENOTSUP;
  out->port = t->port;
  return 0;
}

static struct shost *host_get(struct sclient *c, const struct kz_addr *addr) {
  char key[KZ_ADDR_STRLEN];
  size_t n = kz_addr_format(addr, key, sizeof(key));
  struct shost *h = kz_map_get(&c->hosts, key, n, NULL);
  if (h) return h;
  h = kz_calloc(1, sizeof(*h));
  if (!h) return NULL;
  if (kz_map_put(&c->hosts, key, n, h, NULL)) {
    kz_free(h);
    return NULL;
  }
  h->c = c;
  h->addr = *addr;
  kz_list_init(&h->conns);
  kz_list_init(&h->queue);
  kz_list_init(&h->failed);
  kz_list_init(&h->link);
  kz_list_insert_before(&c->hosts_list, &h->link);
  return h;
}

static bool has_header(const struct kz_http_client_req *req, const char *name) {
  for (size_t i = 0; i < req->nheaders; i++) {
    if (kz_slice_caseeq_cstr(req->headers[i].name, name)) return true;
  }
  return false;
}

static int build_wire(struct sclient *c, const struct kz_http_client_req *req,
                      const struct kz_http_client_target *t, struct kz_buf *b) {
  int rc = kz_http_write_request_line(b, req->method, kz_slice_cstr(t->path));
  if (!rc && !has_header(req, "Host")) rc = kz_http_write_header_cstr(b, "Host", t->authority);
  if (!rc && !has_header(req, "User-Agent"))
    rc = kz_http_write_header_cstr(b, "User-Agent", c->user_agent);
  if (!rc && t->userinfo[0] && !has_header(req, "Authorization"))
    rc = kz_http_client_write_basic_auth(b, t->userinfo);
  for (size_t i = 0; !rc && i < req->nheaders; i++) {
    char name[128];
    const struct kz_http_header *hd = &req->headers[i];
    if (hd->name.len >= sizeof(name)) return KZ_EINVAL;
    memcpy(name, hd->name.p, hd->name.len);
    name[hd->name.len] = 0;
    rc = kz_http_write_header(b, name, hd->value.p ? hd->value : KZ_SLICE_LIT(""));
  }
  if (rc) return rc;
  bool wants_length = req->body_len || !strcmp(req->method, "POST") ||
                      !strcmp(req->method, "PUT") || !strcmp(req->method, "PATCH");
  if (wants_length) return kz_http_write_body(b, req->body, req->body_len);
  return kz_http_write_end_head(b);
}

static void call_timer_cb(void *arg);

static int s_request(struct kz_http_client *base, const struct kz_http_client_req *req,
                     kz_http_client_done_fn *cb, void *arg, struct kz_http_call **out) {
  struct sclient *c = (struct sclient *)base;
  if (c->dead) return KZ_ECLOSED;
  struct kz_http_client_target t;
  int rc = kz_http_client_target_parse(req, &t);
  if (rc) return rc;
  struct kz_addr addr;
  rc = resolve(c, &t, &addr);
  if (rc) return rc;
  struct kz_http_call *call = kz_calloc(1, sizeof(*call));
  if (!call) return KZ_ENOMEM;
  rc = build_wire(c, req, &t, &call->wire);
  if (rc) {
    kz_buf_free(&call->wire);
    kz_free(call);
    return rc;
  }
  struct shost *h = host_get(c, &addr);
  if (!h) {
    kz_buf_free(&call->wire);
    kz_free(call);
    return KZ_ENOMEM;
  }
  call->c = c;
  call->h = h;
  call->cb = cb;
  call->arg = arg;
  call->head = !strcmp(req->method, "HEAD");
  call->retries_left =
      req->no_retry || !kz_http_client_method_idempotent(req->method) ? 0 : c->cfg.max_retries;
  kz_list_init(&call->link);
  kz_timer_init(&call->timer, c->env, call_timer_cb, call);
  uint64_t to = req->timeout_ns ? req->timeout_ns : c->cfg.default_timeout_ns;
  if (to != UINT64_MAX && kz_timer_start(&call->timer, to)) {
    kz_buf_free(&call->wire);
    kz_free(call);
    return KZ_ENOMEM;
  }
  kz_list_insert_before(&h->queue, &call->link);
  c->stats.requests++;
  if (out) *out = call;
  if (c->depth == 0) dispatch(h);
  return 0;
}

static void call_timer_cb(void *arg) {
  struct kz_http_call *call = arg;
  struct sclient *c = call->c;
  enter(c);
  int err = call->pending_err;
  if (!err) {
    err = KZ_ETIMEDOUT;
    c->stats.timeouts++;
    if (call->conn) {
      /* The response may still come: the connection is unusable. */
      struct sconn *k = call->conn;
      k->call = NULL;
      call->conn = NULL;
      conn_free(k);
    }
  }
  call_complete(call, err, NULL);
  leave(c);
}

static void s_cancel(struct kz_http_client *base, struct kz_http_call *call) {
  struct sclient *c = (struct sclient *)base;
  struct shost *h = call->h;
  if (call->conn) {
    struct sconn *k = call->conn;
    k->call = NULL;
    call->conn = NULL;
    conn_free(k);
  }
  call_free(call);
  if (c->depth == 0) dispatch(h);
}

static void teardown(struct sclient *c) {
  while (!kz_list_empty(&c->hosts_list)) {
    struct shost *h = HOST_OF(c->hosts_list.next);
    while (!kz_list_empty(&h->conns)) {
      struct sconn *k = CONN_OF(h->conns.next);
      if (k->call) call_free(k->call);
      conn_free(k);
    }
    while (!kz_list_empty(&h->queue)) call_free(CALL_OF(h->queue.next));
    while (!kz_list_empty(&h->failed)) call_free(CALL_OF(h->failed.next));
    kz_list_remove(&h->link);
    kz_free(h);
  }
  kz_map_free(&c->hosts);
  kz_free(c->user_agent);
  kz_free(c);
}

static void s_destroy(struct kz_http_client *base) {
  struct sclient *c = (struct sclient *)base;
  c->dead = true;
  if (c->depth == 0) teardown(c);
}

static const struct kz_http_client_ops stream_ops = {
    .request = s_request,
    .cancel = s_cancel,
    .destroy = s_destroy,
};

int kz_http_client_stream_new(struct kz_http_client **out, struct kz_env *env,
                              const struct kz_http_client_cfg *cfg) {
  if (!out || !env) return KZ_EINVAL;
  struct sclient *c = kz_calloc(1, sizeof(*c));
  if (!c) return KZ_ENOMEM;
  if (cfg) c->cfg = *cfg;
  if (!c->cfg.max_conns_per_host) c->cfg.max_conns_per_host = 8;
  if (!c->cfg.default_timeout_ns) c->cfg.default_timeout_ns = UINT64_C(30000000000);
  if (!c->cfg.idle_timeout_ns) c->cfg.idle_timeout_ns = UINT64_C(30000000000);
  if (!c->cfg.max_body) c->cfg.max_body = KZ_HTTP_DEFAULT_MAX_BODY;
  if (!c->cfg.max_retries) c->cfg.max_retries = 1;
  c->user_agent = kz_strdup(c->cfg.user_agent ? c->cfg.user_agent : "kz");
  if (!c->user_agent) {
    kz_free(c);
    return KZ_ENOMEM;
  }
  c->cfg.user_agent = NULL;
  c->base.ops = &stream_ops;
  c->env = env;
  kz_map_init(&c->hosts, UINT64_C(0x6b7a687474706331), false);
  kz_list_init(&c->hosts_list);
  *out = &c->base;
  return 0;
}

const struct kz_http_client_stats *kz_http_client_stream_stats(const struct kz_http_client *c) {
  if (!c || c->ops != &stream_ops) return NULL;
  return &((const struct sclient *)c)->stats;
}
