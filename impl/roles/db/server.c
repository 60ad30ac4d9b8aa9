/* server.c — the db role's instance and HTTP connections: accept, parse with kz_http, dispatch, reply. */
#include <string.h>

#include "db_int.h"
#include "kz/error.h"
#include "kz/http_write.h"
#include "kz/mem.h"

#define DEFAULT_MAX_BODY (64u * 1024u * 1024u)
#define DEFAULT_MAX_DOCID 512u
#define DEFAULT_CHANGES_TIMEOUT_NS UINT64_C(60000000000)
#define DEFAULT_IDLE_NS UINT64_C(300000000000)
#define SERVER_HEADER "CouchDB/" KZ_DB_VERSION " (Erlang OTP/kz)"

struct kz_db_conn {
  struct kz_db *db;
  struct kz_db_conn *prev, *next;
  struct kz_stream *s;
  struct kz_http_parser *parser;
  struct kz_buf pending;   /* received bytes not fed yet */
  struct kz_db_waiter *waiter;
  struct kz_db_repl *repl; /* a deferred _replicate waits on this */
  bool parked;             /* a longpoll holds the connection */
  bool close_after;        /* the parked request asked for Connection: close */
  struct kz_timer idle;    /* closes idle keep-alive connections */
  struct kz_timer resume;  /* feeds pending input after a longpoll ends */
};

static void conn_free(struct kz_db_conn *c);
static void conn_pump(struct kz_db_conn *c);

/* ------------------------------------------------------------------ */
/* Replies                                                             */

void kz_db_reply_json(struct kz_db_reply *r, int status, json_t *j) {
  kz_buf_reset(&r->body);
  if (!j || kz_db_json_dump(&r->body, j, 0)) {
    json_decref(j);
    kz_buf_reset(&r->body);
    r->status = 500;
    (void)kz_buf_append_cstr(&r->body, "{\"error\":\"internal_server_error\",\"reason\":\"out of memory\"}");
    return;
  }
  json_decref(j);
  r->status = status;
}

void kz_db_reply_error(struct kz_db_reply *r, int status, const char *error, const char *reason) {
  char clean[512];
  if (!reason) reason = "";
  if (!kz_db_utf8_valid(reason, strlen(reason))) {
    /* Reasons may quote client input; JSON needs valid UTF-8. */
    size_t i = 0;
    for (; reason[i] && i + 1 < sizeof clean; i++)
      clean[i] = (unsigned char)reason[i] < 0x80 ? reason[i] : '?';
    clean[i] = 0;
    reason = clean;
  }
  kz_db_reply_json(r, status, json_pack("{s:s,s:s}", "error", error, "reason", reason));
  r->etag[0] = 0;
}

void kz_db_reply_kzerr(struct kz_db_reply *r, int err) {
  switch (err) {
  case KZ_ENOMEM:
    kz_db_reply_error(r, 500, "internal_server_error", "out of memory");
    break;
  case KZ_ENOSPC:
    kz_db_reply_error(r, 500, "internal_server_error", "no space left on the store");
    break;
  default:
    kz_db_reply_error(r, 500, "internal_server_error", "the store failed");
    break;
  }
}

/* Writes the reply as one HTTP response. */
static int reply_write(struct kz_db_conn *c, struct kz_db_reply *r, bool close) {
  struct kz_buf b = {0};
  /* One allocation for the whole response: growing by doubling up to a
   * bulk reply's size made glibc consolidate its free lists at every
   * large step (a quarter of a 1000-document _bulk_docs). */
  int rc = kz_buf_reserve(&b, 512 + r->extra.len + (r->head ? 0 : r->body.len));
  if (!rc) rc = kz_http_write_status_line(&b, r->status, NULL);
  if (!rc) rc = kz_http_write_header_cstr(&b, "Server", SERVER_HEADER);
  if (!rc && r->status != 304)
    rc = kz_http_write_header_cstr(&b, "Content-Type",
                                   r->ctype[0] ? r->ctype : "application/json");
  if (!rc) rc = kz_http_write_header_cstr(&b, "Cache-Control", "must-revalidate");
  if (!rc && r->etag[0]) {
    char tag[140];
    snprintf(tag, sizeof tag, "\"%s\"", r->etag);
    rc = kz_http_write_header_cstr(&b, "ETag", tag);
  }
  if (!rc && r->location[0]) rc = kz_http_write_header_cstr(&b, "Location", r->location);
  if (!rc && r->extra.len) rc = kz_buf_append(&b, r->extra.data, r->extra.len);
  if (!rc && close) rc = kz_http_write_header_cstr(&b, "Connection", "close");
  if (!rc) {
    if (r->status == 304 || r->status == 204) {
      rc = kz_http_write_end_head(&b);
    } else if (r->head) {
      rc = kz_http_write_header_u64(&b, "Content-Length", r->body.len);
      if (!rc) rc = kz_http_write_end_head(&b);
    } else {
      rc = kz_http_write_body(&b, r->body.data, r->body.len);
    }
  }
  if (!rc) rc = kz_stream_write(c->s, b.data, b.len);
  kz_buf_free(&b);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */

static void count_reply(struct kz_db *db, int status) {
  db->stats.requests++;
  if (status >= 500)
    db->stats.errors_5xx++;
  else if (status >= 400)
    db->stats.errors_4xx++;
}

/* Handles one complete message.  Returns 0 to keep going, 1 when the
 * connection parked (longpoll), -1 when it was closed and freed. */
static int conn_handle(struct kz_db_conn *c) {
  struct kz_db *db = c->db;
  struct kz_http_msg *m = kz_http_parser_msg(c->parser);
  struct kz_db_req q = {.db = db, .conn = c, .msg = m, .method = m->method};
  struct kz_db_reply r = {.status = 200};
  bool close = !m->keep_alive;
  q.body = (const char *)m->body.data;
  q.body_len = m->body.len;
  if (!q.body) q.body = "";

  struct kz_slice path, query;
  const char *why = NULL;
  int rc = kz_http_target_split(m->target, &path, &query, &why);
  if (!rc) rc = kz_http_path_segments(path, &q.seg, &why);
  if (!rc && query.p) rc = kz_http_query_parse(query, &q.query, &why);
  int parked = 0;
  if (rc == KZ_ENOMEM) {
    kz_db_reply_kzerr(&r, rc);
  } else if (rc) {
    kz_db_reply_error(&r, 400, "bad_request", why ? why : "bad request target");
  } else {
    r.head = kz_slice_eq_cstr(m->method, "HEAD");
    parked = kz_db_dispatch(&q, &r);
  }
  kz_http_strlist_free(&q.seg);
  kz_http_query_free(&q.query);
  if (parked == 2) {
    /* Deferred: kz_db_conn_reply answers it later. */
    c->parked = true;
    c->close_after = close;
    kz_buf_free(&r.body);
    kz_buf_free(&r.extra);
    return 1;
  }
  if (parked == 1) {
    c->parked = true;
    c->close_after = close;
    kz_buf_free(&r.body);
    kz_buf_free(&r.extra);
    db->stats.longpolls++;
    if (kz_db_conn_start_chunked(c)) {
      conn_free(c);
      return -1;
    }
    return 1;
  }
  count_reply(db, r.status);
  int wrc = reply_write(c, &r, close);
  kz_buf_free(&r.body);
  kz_buf_free(&r.extra);
  if (wrc || close) {
    conn_free(c);
    return -1;
  }
  return 0;
}

/* Answers a parse failure with CouchDB's error shape and closes. */
static void conn_fail(struct kz_db_conn *c) {
  const char *reason = NULL;
  int status = kz_http_parser_error(c->parser, &reason);
  struct kz_db_reply r = {0};
  if (status == 413)
    kz_db_reply_error(&r, 413, "too_large", "the request entity is too large");
  else if (status >= 400 && status < 500)
    kz_db_reply_error(&r, status, "bad_request", reason);
  else
    kz_db_reply_error(&r, status ? status : 400, status == 501 ? "not_implemented" : "bad_request",
                      reason);
  count_reply(c->db, r.status);
  (void)reply_write(c, &r, true);
  kz_buf_free(&r.body);
  conn_free(c);
}

static void conn_pump(struct kz_db_conn *c) {
  static const uint8_t empty[1] = {0};
  while (!c->parked) {
    size_t used = 0;
    const uint8_t *data = c->pending.len ? c->pending.data : empty;
    int ev = kz_http_parser_feed(c->parser, data, c->pending.len, &used);
    kz_buf_consume(&c->pending, used);
    if (ev < 0) {
      conn_fail(c);
      return;
    }
    if (ev == KZ_HTTP_EV_MORE) return;
    if (ev == KZ_HTTP_EV_HEAD) {
      struct kz_http_msg *m = kz_http_parser_msg(c->parser);
      if (m->expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (kz_stream_write(c->s, cont, sizeof cont - 1)) {
          conn_free(c);
          return;
        }
      }
      continue;
    }
    if (conn_handle(c) < 0) return;
  }
}

/* ------------------------------------------------------------------ */
/* Longpoll support                                                    */

int kz_db_conn_start_chunked(struct kz_db_conn *c) {
  struct kz_buf b = {0};
  int rc = kz_http_write_status_line(&b, 200, NULL);
  if (!rc) rc = kz_http_write_header_cstr(&b, "Server", SERVER_HEADER);
  if (!rc) rc = kz_http_write_header_cstr(&b, "Content-Type", "application/json");
  if (!rc) rc = kz_http_write_header_cstr(&b, "Cache-Control", "must-revalidate");
  if (!rc) rc = kz_http_write_header_cstr(&b, "Transfer-Encoding", "chunked");
  if (!rc && c->close_after) rc = kz_http_write_header_cstr(&b, "Connection", "close");
  if (!rc) rc = kz_http_write_end_head(&b);
  if (!rc) rc = kz_stream_write(c->s, b.data, b.len);
  kz_buf_free(&b);
  return rc;
}

int kz_db_conn_chunk(struct kz_db_conn *c, const void *data, size_t len) {
  struct kz_buf b = {0};
  int rc = kz_http_write_chunk(&b, data, len);
  if (!rc) rc = kz_stream_write(c->s, b.data, b.len);
  kz_buf_free(&b);
  return rc;
}

void kz_db_conn_set_waiter(struct kz_db_conn *c, struct kz_db_waiter *w) { c->waiter = w; }

void kz_db_conn_set_repl(struct kz_db_conn *c, struct kz_db_repl *r) { c->repl = r; }

void kz_db_conn_reply(struct kz_db_conn *c, struct kz_db_reply *r) {
  count_reply(c->db, r->status);
  int rc = reply_write(c, r, c->close_after);
  kz_buf_free(&r->body);
  kz_buf_free(&r->extra);
  c->repl = NULL;
  c->parked = false;
  if (rc || c->close_after) {
    conn_free(c);
    return;
  }
  if (kz_timer_start(&c->resume, 0)) conn_free(c);
}

static void conn_resume(void *arg) {
  struct kz_db_conn *c = arg;
  conn_pump(c);
}

void kz_db_conn_finish(struct kz_db_conn *c) {
  struct kz_buf b = {0};
  int rc = kz_http_write_last_chunk(&b);
  if (!rc) rc = kz_stream_write(c->s, b.data, b.len);
  kz_buf_free(&b);
  count_reply(c->db, 200);
  c->waiter = NULL;
  c->parked = false;
  if (rc || c->close_after) {
    conn_free(c);
    return;
  }
  /* Resume reading from a fresh callback, never inside another request. */
  if (kz_timer_start(&c->resume, 0)) conn_free(c);
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */

static void conn_free(struct kz_db_conn *c) {
  struct kz_db *db = c->db;
  if (c->waiter) kz_db_waiter_cancel(c->waiter);
  c->waiter = NULL;
  kz_db_repl_conn_gone(c->repl);
  c->repl = NULL;
  kz_timer_stop(&c->idle);
  kz_timer_stop(&c->resume);
  if (c->prev)
    c->prev->next = c->next;
  else
    db->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  kz_stream_close(c->s);
  kz_http_parser_free(c->parser);
  kz_buf_free(&c->pending);
  kz_free(c);
}

static void conn_idle(void *arg) {
  struct kz_db_conn *c = arg;
  if (c->parked) {
    (void)kz_timer_start(&c->idle, c->db->cfg.idle_timeout_ns);
    return;
  }
  conn_free(c);
}

static void on_data(void *arg, struct kz_stream *s, const uint8_t *data, size_t len) {
  (void)s;
  struct kz_db_conn *c = arg;
  if (kz_buf_append(&c->pending, data, len)) {
    conn_free(c);
    return;
  }
  (void)kz_timer_start(&c->idle, c->db->cfg.idle_timeout_ns);
  if (!c->parked) conn_pump(c);
}

static void on_close(void *arg, struct kz_stream *s, int status) {
  (void)s, (void)status;
  conn_free(arg);
}

static const struct kz_stream_cbs conn_cbs = {.on_data = on_data, .on_close = on_close};

static void on_accept(void *arg, struct kz_listener *l, struct kz_stream *s) {
  (void)l;
  struct kz_db *db = arg;
  struct kz_db_conn *c = kz_calloc(1, sizeof *c);
  struct kz_http_limits lim = {.max_body = db->cfg.max_body};
  if (!c || kz_http_parser_new(&c->parser, KZ_HTTP_REQUEST, &lim)) {
    kz_free(c);
    kz_stream_close(s);
    return;
  }
  c->db = db;
  c->s = s;
  kz_timer_init(&c->idle, db->env, conn_idle, c);
  kz_timer_init(&c->resume, db->env, conn_resume, c);
  c->next = db->conns;
  if (db->conns) db->conns->prev = c;
  db->conns = c;
  db->stats.connections++;
  kz_stream_set_cbs(s, &conn_cbs, c);
  (void)kz_timer_start(&c->idle, db->cfg.idle_timeout_ns);
}

/* ------------------------------------------------------------------ */
/* Instance                                                            */

int kz_db_new(struct kz_db **out, struct kz_env *env, const struct kz_db_cfg *cfg) {
  if (!out || !env || !cfg) return KZ_EINVAL;
  const char *path = cfg->path ? cfg->path : "kzdb.sqlite";
  if (!kz_fs_path_valid(path) || strlen(path) > 200) return KZ_EINVAL;
  /* jansson seeds its hash function from /dev/urandom on first use
   * unless told a seed; iteration is insertion-ordered either way, so a
   * constant seed only keeps the OS out. */
  json_object_seed(0x6b7a6462u);
  struct kz_db *db = kz_calloc(1, sizeof *db);
  if (!db) return KZ_ENOMEM;
  db->env = env;
  db->cfg = *cfg;
  if (!db->cfg.max_body) db->cfg.max_body = DEFAULT_MAX_BODY;
  if (!db->cfg.max_docid) db->cfg.max_docid = DEFAULT_MAX_DOCID;
  if (!db->cfg.changes_timeout_ns) db->cfg.changes_timeout_ns = DEFAULT_CHANGES_TIMEOUT_NS;
  if (!db->cfg.idle_timeout_ns) db->cfg.idle_timeout_ns = DEFAULT_IDLE_NS;
  db->path = kz_strdup(path);
  db->cfg.path = db->path;
  int rc = KZ_ENOMEM;
  if (!db->path) goto fail;
  kz_env_prng(env, "db", &db->prng);
  kz_db_uuid(db, db->uuid);
  rc = kz_db_store_open(db);
  if (rc) goto fail;
  rc = kz_stream_listen(env, &cfg->listen, on_accept, db, &db->listener);
  if (rc) goto fail;
  char a[KZ_ADDR_STRLEN];
  kz_addr_format(&db->listener->local, a, sizeof a);
  kz_log(env, KZ_LOG_INFO, "db", "listening on %s, store %s", a, db->path);
  rc = kz_db_peers_start(db);
  if (rc) goto fail;
  *out = db;
  return 0;
fail:
  kz_db_free(db);
  return rc;
}

void kz_db_free(struct kz_db *db) {
  if (!db) return;
  while (db->conns) conn_free(db->conns);
  kz_db_waiters_free(db);
  kz_db_peers_free(db); /* before the replicator's HTTP client goes */
  kz_db_repls_free(db);
  kz_listener_close(db->listener);
  kz_db_store_close(db);
  kz_free(db->path);
  kz_free(db);
}

struct kz_addr kz_db_addr(const struct kz_db *db) {
  return db->listener ? db->listener->local : (struct kz_addr){0};
}

const struct kz_db_stats *kz_db_stats(const struct kz_db *db) { return &db->stats; }

int kz_db_app_start(struct kz_env *env, const void *cfg, void **instance) {
  struct kz_db *db = NULL;
  int rc = kz_db_new(&db, env, cfg);
  if (rc == 0) *instance = db;
  return rc;
}

void kz_db_app_stop(void *instance) { kz_db_free(instance); }
