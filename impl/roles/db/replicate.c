/* replicate.c — POST /_replicate: CouchDB's replication protocol as a state machine over kz_http_client (remote ends) and in-process requests (local ends). */
#include <stdlib.h>
#include <string.h>

#include "db_int.h"
#include "kz/error.h"
#include "kz/http_client.h"
#include "kz/mem.h"

/* The algorithm is CouchDB's replicator, one batch at a time:
 *   1. check both databases exist (create the target if asked);
 *   2. read the checkpoint _local/<replication id> on both sides and
 *      start from its source_last_seq when they agree (the smaller when
 *      both are integers and differ, 0 otherwise);
 *   3. GET source/_changes?style=all_docs&since=S&limit=BATCH;
 *   4. POST target/_revs_diff with every leaf revision listed;
 *   5. POST source/_bulk_get?revs=true&attachments=true&latest=true for
 *      the missing ones (attachments travel inline, base64);
 *   6. POST target/_bulk_docs with new_edits=false, which grafts the
 *      revisions into the target's trees: both sides then hold the same
 *      tree and pick the same winner (CouchDB's deterministic rule), the
 *      losers staying as conflicts;
 *   7. record the checkpoint on target then source, and loop from 3.
 * A one-shot replication answers its HTTP request when the source has
 * no more changes; a continuous one answers at once, then follows the
 * source with longpoll _changes (remote) or the database's change
 * notifications (local) until cancelled.  Any failure (connection
 * refused, timeout, 5xx) restarts from step 1 after an exponential
 * backoff (100 ms doubling to 5 s), so a partition or a restart of
 * either end only delays it, and it resumes from the last checkpoint.
 * One-shot replications give up after REPL_MAX_FAILURES consecutive
 * failures.  Replications live in memory: like CouchDB's /_replicate
 * (as opposed to the _replicator database), they do not survive a
 * restart of the host that runs them.
 *
 * Local ends are reached without the network: a request is built, parsed
 * by kz_http and dispatched exactly like one that came from a socket
 * (same code paths, same answers), and its answer is delivered from a
 * fresh timer callback, never from inside the call. */

#define REPL_BATCH 100
#define REPL_MAX_FAILURES 10
#define REPL_BACKOFF_MIN (100 * UINT64_C(1000000))
#define REPL_BACKOFF_MAX (5000 * UINT64_C(1000000))
#define REPL_TIMEOUT (10000 * UINT64_C(1000000))
#define REPL_LONGPOLL_MS 10000

struct kz_db_repl;
typedef void step_fn(struct kz_db_repl *r, int status, json_t *body);

struct ep {
  bool local;
  char *name;    /* local: the database name */
  char *url;     /* remote: base URL of the database, no trailing '/' */
  char *display; /* as given: part of the replication id */
};

struct kz_db_repl {
  struct kz_db *db;
  struct kz_db_repl *next;
  char id[40];          /* md5 hex of source, target and options */
  char local_id[64];    /* id + "+continuous" when continuous */
  char session[33];
  struct ep src, tgt;
  bool continuous, create_target;
  json_t *doc_ids;      /* optional filter (array of ids) */
  json_t *since;        /* where the next _changes starts */
  json_t *batch_seq;    /* last_seq of the batch being copied */
  char src_lrev[64], tgt_lrev[64]; /* checkpoint revisions ("" none) */
  json_t *src_ckpt;     /* the source's checkpoint body while reading */
  json_t *changes;      /* the batch's results */
  json_t *docs;         /* revisions fetched for the target */
  bool waiting;         /* continuous, caught up, waiting for changes */
  bool dirty;           /* the local source changed since _changes was read */
  /* One operation in flight at a time. */
  struct kz_http_call *call;
  step_fn *next_step;
  struct kz_timer deliver; /* answers of local calls */
  int pend_status;
  json_t *pend_body;
  struct kz_timer retry;
  uint64_t backoff;
  unsigned failures;
  bool batches; /* a batch was copied in this session */
  /* Counters (CouchDB's history entry). */
  uint64_t docs_read, docs_written, doc_write_failures, missing_checked, missing_found;
  /* One-shot: the request that waits for the end. */
  struct kz_db_conn *conn;
};

static void ep_free(struct ep *e) {
  kz_free(e->name);
  kz_free(e->url);
  kz_free(e->display);
}

static void repl_free(struct kz_db_repl *r) {
  struct kz_db *db = r->db;
  for (struct kz_db_repl **pp = &db->repls; *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      break;
    }
  if (r->call) kz_http_client_cancel(db->http, r->call);
  if (r->conn) kz_db_conn_set_repl(r->conn, NULL);
  kz_timer_stop(&r->deliver);
  kz_timer_stop(&r->retry);
  json_decref(r->pend_body);
  json_decref(r->doc_ids);
  json_decref(r->since);
  json_decref(r->batch_seq);
  json_decref(r->src_ckpt);
  json_decref(r->changes);
  json_decref(r->docs);
  ep_free(&r->src);
  ep_free(&r->tgt);
  kz_free(r);
}

void kz_db_repls_free(struct kz_db *db) {
  while (db->repls) repl_free(db->repls);
  kz_http_client_free(db->http);
  db->http = NULL;
}

void kz_db_repl_conn_gone(struct kz_db_repl *r) {
  if (r) r->conn = NULL;
}

/* ------------------------------------------------------------------ */
/* Calls to either end                                                 */

int kz_db_enc_append(struct kz_buf *b, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  int rc = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p && !rc; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
      rc = kz_buf_append_byte(b, *p);
    } else {
      char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
      rc = kz_buf_append(b, e, 3);
    }
  }
  return rc;
}

int kz_db_local_exec(struct kz_db *db, const char *method, const char *target, const char *body, size_t blen,
                     int *status, json_t **out) {
  *out = NULL;
  struct kz_buf raw = {0};
  int rc = kz_buf_printf(&raw, "%s %s HTTP/1.1\r\nHost: local\r\nContent-Type: application/json\r\n"
                               "Content-Length: %zu\r\n\r\n", method, target, blen);
  if (!rc && blen) rc = kz_buf_append(&raw, body, blen);
  struct kz_http_parser *p = NULL;
  struct kz_http_limits lim = {.max_body = UINT64_MAX >> 1};
  if (!rc) rc = kz_http_parser_new(&p, KZ_HTTP_REQUEST, &lim);
  size_t off = 0;
  int ev = KZ_HTTP_EV_MORE;
  /* Feed until the message completes (a bodiless request completes on
   * a feed after its head, as in the server's pump). */
  while (!rc) {
    size_t used = 0;
    ev = kz_http_parser_feed(p, raw.data + off, raw.len - off, &used);
    off += used;
    if (ev < 0) rc = KZ_EPROTO;
    else if (ev == KZ_HTTP_EV_MSG) break;
    else if (ev == KZ_HTTP_EV_MORE && off >= raw.len) rc = KZ_EPROTO;
  }
  if (!rc && ev != KZ_HTTP_EV_MSG) rc = KZ_EPROTO;
  struct kz_db_reply rep = {.status = 200};
  if (!rc) {
    struct kz_http_msg *m = kz_http_parser_msg(p);
    struct kz_db_req q = {.db = db, .msg = m, .method = m->method};
    q.body = m->body.data ? (const char *)m->body.data : "";
    q.body_len = m->body.len;
    struct kz_slice path, query;
    const char *why = NULL;
    rc = kz_http_target_split(m->target, &path, &query, &why);
    if (!rc) rc = kz_http_path_segments(path, &q.seg, &why);
    if (!rc && query.p) rc = kz_http_query_parse(query, &q.query, &why);
    if (!rc && kz_db_dispatch(&q, &rep) != 0) rc = KZ_EPROTO; /* never parks: no longpoll locally */
    kz_http_strlist_free(&q.seg);
    kz_http_query_free(&q.query);
  }
  if (!rc) {
    *status = rep.status;
    if (rep.body.len) *out = json_loadb((const char *)rep.body.data, rep.body.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  }
  kz_buf_free(&rep.body);
  kz_buf_free(&rep.extra);
  kz_http_parser_free(p);
  kz_buf_free(&raw);
  return rc;
}

int kz_db_http(struct kz_db *db, struct kz_http_client **out) {
  if (!db->http) {
    struct kz_http_client_cfg cfg = {.default_timeout_ns = REPL_TIMEOUT, .user_agent = "kz-replicator"};
    int rc = kz_http_client_stream_new(&db->http, db->env, &cfg);
    if (rc) return rc;
  }
  *out = db->http;
  return 0;
}

static void on_deliver(void *arg) {
  struct kz_db_repl *r = arg;
  step_fn *fn = r->next_step;
  json_t *body = r->pend_body;
  r->pend_body = NULL;
  r->next_step = NULL;
  fn(r, r->pend_status, body); /* may free r */
  json_decref(body);
}

static void on_http(void *arg, int result, struct kz_http_client_resp *resp) {
  struct kz_db_repl *r = arg;
  r->call = NULL;
  json_t *body = NULL;
  if (result > 0 && resp && resp->body.len)
    body = json_loadb((const char *)resp->body.data, resp->body.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  step_fn *fn = r->next_step;
  r->next_step = NULL;
  fn(r, result, body); /* may free r */
  json_decref(body);
}

/* Sends method <end><suffix> with an optional JSON body; `fn` gets the
 * status (or a negative KZ_E* transport error) and the parsed body. */
static int call(struct kz_db_repl *r, struct ep *e, const char *method, const char *suffix, const json_t *body,
                uint64_t timeout_ns, step_fn *fn) {
  struct kz_db *db = r->db;
  char *btxt = body ? json_dumps(body, JSON_COMPACT) : NULL;
  if (body && !btxt) return KZ_ENOMEM;
  struct kz_buf target = {0};
  int rc;
  r->next_step = fn;
  if (e->local) {
    rc = kz_buf_append_byte(&target, '/');
    if (!rc) rc = kz_db_enc_append(&target, e->name);
    if (!rc) rc = kz_buf_append_cstr(&target, suffix);
    if (!rc) rc = kz_buf_append_byte(&target, 0);
    if (!rc) {
      json_decref(r->pend_body);
      r->pend_body = NULL;
      rc = kz_db_local_exec(db, method, (const char *)target.data, btxt ? btxt : "", btxt ? strlen(btxt) : 0,
                            &r->pend_status, &r->pend_body);
      if (rc == KZ_EPROTO) {
        r->pend_status = KZ_EIO;
        rc = 0;
      }
    }
    if (!rc) rc = kz_timer_start(&r->deliver, 0);
  } else {
    struct kz_http_client *http;
    rc = kz_db_http(db, &http);
    if (rc) goto out;
    rc = kz_buf_append_cstr(&target, e->url);
    if (!rc) rc = kz_buf_append_cstr(&target, suffix);
    if (!rc) rc = kz_buf_append_byte(&target, 0);
    struct kz_http_header hdrs[2] = {{KZ_SLICE_LIT("Content-Type"), KZ_SLICE_LIT("application/json")},
                                     {KZ_SLICE_LIT("Accept"), KZ_SLICE_LIT("application/json")}};
    struct kz_http_client_req req = {.method = method, .url = (const char *)target.data, .headers = hdrs,
                                     .nheaders = 2, .body = btxt, .body_len = btxt ? strlen(btxt) : 0,
                                     .timeout_ns = timeout_ns};
    if (!rc) rc = kz_http_client_request(db->http, &req, on_http, r, &r->call);
  }
out:
  free(btxt);
  kz_buf_free(&target);
  return rc;
}

/* ------------------------------------------------------------------ */
/* The state machine                                                   */

static void start(struct kz_db_repl *r);
static void read_changes(struct kz_db_repl *r);

static json_t *history(const struct kz_db_repl *r) {
  return json_pack("[{s:s,s:O,s:O,s:I,s:I,s:I,s:I,s:I}]", "session_id", r->session, "start_last_seq",
                   r->since ? r->since : json_null(), "recorded_seq", r->since ? r->since : json_null(),
                   "docs_read", (json_int_t)r->docs_read, "docs_written", (json_int_t)r->docs_written,
                   "doc_write_failures", (json_int_t)r->doc_write_failures, "missing_checked",
                   (json_int_t)r->missing_checked, "missing_found", (json_int_t)r->missing_found);
}

/* Ends the replication: answers the waiting request and frees it. */
static void finish(struct kz_db_repl *r, int status, const char *error, const char *reason) {
  if (r->conn) {
    struct kz_db_reply rep = {.status = 200};
    if (error) {
      kz_db_reply_error(&rep, status, error, reason);
    } else {
      json_t *j = json_pack("{s:b,s:s,s:O,s:i,s:o}", "ok", 1, "session_id", r->session, "source_last_seq",
                            r->since ? r->since : json_null(), "replication_id_version", 4, "history", history(r));
      if (j && !r->batches) json_object_set_new(j, "no_changes", json_true());
      kz_db_reply_json(&rep, 200, j);
    }
    struct kz_db_conn *c = r->conn;
    r->conn = NULL;
    kz_db_conn_set_repl(c, NULL);
    kz_db_conn_reply(c, &rep);
  }
  kz_log(r->db->env, error ? KZ_LOG_WARN : KZ_LOG_INFO, "db", "replication %s %s: %s", r->local_id,
         error ? "failed" : "done", error ? reason : "ok");
  repl_free(r);
}

/* A failed step: retry from the start after a backoff. */
static void fail(struct kz_db_repl *r, int status, const char *what) {
  r->failures++;
  kz_log(r->db->env, KZ_LOG_WARN, "db", "replication %s: %s failed (%d), retry %u", r->local_id, what, status,
         r->failures);
  if (!r->continuous && r->failures >= REPL_MAX_FAILURES) {
    char reason[200];
    snprintf(reason, sizeof reason, "%s failed (%d)", what, status);
    finish(r, 500, "replication_failed", reason);
    return;
  }
  r->backoff = r->backoff ? r->backoff * 2 : REPL_BACKOFF_MIN;
  if (r->backoff > REPL_BACKOFF_MAX) r->backoff = REPL_BACKOFF_MAX;
  if (kz_timer_start(&r->retry, r->backoff)) finish(r, 500, "replication_failed", "out of memory");
}

/* Issues a call or, when it cannot even be sent, fails the step. */
static void go(struct kz_db_repl *r, struct ep *e, const char *method, const char *suffix, const json_t *body,
               uint64_t timeout, step_fn *fn, const char *what) {
  int rc = call(r, e, method, suffix, body, timeout, fn);
  if (rc) fail(r, rc, what);
}

static bool ok2xx(int s) { return s >= 200 && s < 300; }

/* A JSON string's text, "" for anything else. */
static const char *sval(const json_t *j) { return json_is_string(j) ? json_string_value(j) : ""; }

static void on_retry(void *arg) { start(arg); }

/* --- checkpoints --- */

static void local_suffix(const struct kz_db_repl *r, char *out, size_t len) {
  snprintf(out, len, "/_local/%s", r->id);
}

static void ckpt_done_src(struct kz_db_repl *r, int status, json_t *body) {
  if (!ok2xx(status)) return fail(r, status, "checkpoint (source)");
  snprintf(r->src_lrev, sizeof r->src_lrev, "%s", sval(json_object_get(body, "rev")));
  r->failures = 0;
  r->backoff = 0;
  read_changes(r);
}

static json_t *ckpt_body(const struct kz_db_repl *r, const char *rev) {
  json_t *b = json_pack("{s:s,s:O,s:i,s:o}", "session_id", r->session, "source_last_seq",
                        r->since ? r->since : json_null(), "replication_id_version", 4, "history", history(r));
  if (b && rev[0]) json_object_set_new(b, "_rev", json_string(rev));
  return b;
}

static void ckpt_done_tgt(struct kz_db_repl *r, int status, json_t *body) {
  if (!ok2xx(status)) return fail(r, status, "checkpoint (target)");
  snprintf(r->tgt_lrev, sizeof r->tgt_lrev, "%s", sval(json_object_get(body, "rev")));
  char suffix[128];
  local_suffix(r, suffix, sizeof suffix);
  json_t *b = ckpt_body(r, r->src_lrev);
  go(r, &r->src, "PUT", suffix, b, 0, ckpt_done_src, "checkpoint (source)");
  json_decref(b);
}

/* The batch is on the target: move `since` on and record it. */
static void checkpoint(struct kz_db_repl *r) {
  json_decref(r->since);
  r->since = r->batch_seq;
  r->batch_seq = NULL;
  r->batches = true;
  json_decref(r->changes);
  r->changes = NULL;
  json_decref(r->docs);
  r->docs = NULL;
  char suffix[128];
  local_suffix(r, suffix, sizeof suffix);
  json_t *b = ckpt_body(r, r->tgt_lrev);
  go(r, &r->tgt, "PUT", suffix, b, 0, ckpt_done_tgt, "checkpoint (target)");
  json_decref(b);
}

/* --- copying a batch --- */

static void bulk_docs_done(struct kz_db_repl *r, int status, json_t *body) {
  if (!ok2xx(status)) return fail(r, status, "_bulk_docs");
  /* new_edits=false answers only with the failures. */
  size_t failed = json_is_array(body) ? json_array_size(body) : 0;
  size_t n = json_array_size(r->docs);
  r->doc_write_failures += failed;
  r->docs_written += n > failed ? n - failed : 0;
  checkpoint(r);
}

static void bulk_get_done(struct kz_db_repl *r, int status, json_t *body) {
  if (!ok2xx(status)) return fail(r, status, "_bulk_get");
  json_t *docs = json_array();
  size_t i, k;
  json_t *res, *d;
  json_array_foreach(json_object_get(body, "results"), i, res) {
    json_array_foreach(json_object_get(res, "docs"), k, d) {
      json_t *ok = json_object_get(d, "ok");
      if (json_is_object(ok)) json_array_append(docs, ok);
    }
  }
  r->docs_read += json_array_size(docs);
  json_decref(r->docs);
  r->docs = docs;
  if (!json_array_size(docs)) return checkpoint(r);
  json_t *b = json_pack("{s:O,s:b}", "docs", docs, "new_edits", 0);
  go(r, &r->tgt, "POST", "/_bulk_docs", b, 0, bulk_docs_done, "_bulk_docs");
  json_decref(b);
}

static void revs_diff_done(struct kz_db_repl *r, int status, json_t *body) {
  if (!ok2xx(status) || !json_is_object(body)) return fail(r, status, "_revs_diff");
  json_t *want = json_array();
  const char *id;
  json_t *v;
  json_object_foreach(body, id, v) {
    size_t i;
    json_t *rev;
    json_array_foreach(json_object_get(v, "missing"), i, rev) {
      json_array_append_new(want, json_pack("{s:s,s:O}", "id", id, "rev", rev));
      r->missing_found++;
    }
  }
  if (!json_array_size(want)) {
    json_decref(want);
    return checkpoint(r);
  }
  json_t *b = json_pack("{s:o}", "docs", want);
  go(r, &r->src, "POST", "/_bulk_get?revs=true&attachments=true&latest=true", b, 0, bulk_get_done, "_bulk_get");
  json_decref(b);
}

static bool wanted(const struct kz_db_repl *r, const char *id) {
  if (!r->doc_ids) return true;
  size_t i;
  json_t *x;
  json_array_foreach(r->doc_ids, i, x) if (json_is_string(x) && !strcmp(json_string_value(x), id)) return true;
  return false;
}

static void changes_done(struct kz_db_repl *r, int status, json_t *body) {
  if (!ok2xx(status) || !json_is_object(body)) return fail(r, status, "_changes");
  json_t *results = json_object_get(body, "results");
  json_t *last = json_object_get(body, "last_seq");
  if (!json_array_size(results)) {
    if (last && !json_is_null(last) && r->since && !json_equal(last, r->since) && !r->continuous) {
      /* Nothing to copy but the sequence moved: record it. */
      r->batch_seq = json_incref(last);
      return checkpoint(r);
    }
    if (!r->continuous) return finish(r, 200, NULL, NULL);
    r->waiting = true;
    /* A local write between the read and this answer already poked: look again. */
    if (!r->src.local || r->dirty) read_changes(r); /* remote: the next longpoll */
    return;
  }
  json_decref(r->batch_seq);
  r->batch_seq = json_incref(last ? last : json_object_get(json_array_get(results, json_array_size(results) - 1), "seq"));
  json_decref(r->changes);
  r->changes = json_incref(results);
  json_t *diff = json_object();
  size_t i, k;
  json_t *ch, *rv;
  json_array_foreach(results, i, ch) {
    const char *id = json_string_value(json_object_get(ch, "id"));
    if (!id || !wanted(r, id)) continue;
    json_t *revs = json_object_get(diff, id);
    if (!revs) {
      revs = json_array();
      json_object_set_new(diff, id, revs);
    }
    json_array_foreach(json_object_get(ch, "changes"), k, rv) {
      json_t *s = json_object_get(rv, "rev");
      if (json_is_string(s)) {
        json_array_append(revs, s);
        r->missing_checked++;
      }
    }
  }
  if (!json_object_size(diff)) {
    json_decref(diff);
    return checkpoint(r);
  }
  go(r, &r->tgt, "POST", "/_revs_diff", diff, 0, revs_diff_done, "_revs_diff");
  json_decref(diff);
}

static void read_changes(struct kz_db_repl *r) {
  struct kz_buf s = {0};
  int rc = kz_buf_printf(&s, "/_changes?style=all_docs&limit=%d", REPL_BATCH);
  if (!rc && r->since && !json_is_null(r->since)) {
    rc = kz_buf_append_cstr(&s, "&since=");
    if (!rc && json_is_integer(r->since)) rc = kz_buf_printf(&s, "%lld", (long long)json_integer_value(r->since));
    else if (!rc && json_is_string(r->since)) rc = kz_db_enc_append(&s, json_string_value(r->since));
    else if (!rc) rc = kz_buf_append_byte(&s, '0');
  }
  uint64_t timeout = 0;
  if (!rc && r->waiting && !r->src.local) {
    rc = kz_buf_printf(&s, "&feed=longpoll&timeout=%d", REPL_LONGPOLL_MS);
    timeout = REPL_TIMEOUT + (uint64_t)REPL_LONGPOLL_MS * 1000000u;
  }
  if (!rc) rc = kz_buf_append_byte(&s, 0);
  if (rc) {
    kz_buf_free(&s);
    return fail(r, rc, "_changes");
  }
  r->waiting = false;
  r->dirty = false;
  go(r, &r->src, "GET", (const char *)s.data, NULL, timeout, changes_done, "_changes");
  kz_buf_free(&s);
}

/* --- startup --- */

static json_t *ckpt_seq(const json_t *b) { return json_object_get(b, "source_last_seq"); }

static void tgt_ckpt_done(struct kz_db_repl *r, int status, json_t *body) {
  if (status != 404 && !ok2xx(status)) return fail(r, status, "checkpoint read (target)");
  const json_t *tb = ok2xx(status) ? body : NULL;
  snprintf(r->tgt_lrev, sizeof r->tgt_lrev, "%s", sval(json_object_get(tb, "_rev")));
  json_t *a = ckpt_seq(r->src_ckpt), *b = ckpt_seq(tb);
  json_t *since = NULL;
  if (a && b) {
    if (json_equal(a, b)) since = a;
    else if (json_is_integer(a) && json_is_integer(b))
      since = json_integer_value(a) < json_integer_value(b) ? a : b;
  }
  json_decref(r->since);
  r->since = since ? json_incref(since) : NULL;
  json_decref(r->src_ckpt);
  r->src_ckpt = NULL;
  read_changes(r);
}

static void src_ckpt_done(struct kz_db_repl *r, int status, json_t *body) {
  if (status != 404 && !ok2xx(status)) return fail(r, status, "checkpoint read (source)");
  json_decref(r->src_ckpt);
  r->src_ckpt = ok2xx(status) ? json_incref(body) : NULL;
  snprintf(r->src_lrev, sizeof r->src_lrev, "%s", sval(json_object_get(r->src_ckpt, "_rev")));
  char suffix[128];
  local_suffix(r, suffix, sizeof suffix);
  go(r, &r->tgt, "GET", suffix, NULL, 0, tgt_ckpt_done, "checkpoint read (target)");
}

static void read_checkpoints(struct kz_db_repl *r) {
  char suffix[128];
  local_suffix(r, suffix, sizeof suffix);
  go(r, &r->src, "GET", suffix, NULL, 0, src_ckpt_done, "checkpoint read (source)");
}

static void tgt_created(struct kz_db_repl *r, int status, json_t *body) {
  (void)body;
  if (!ok2xx(status) && status != 412) return fail(r, status, "create target");
  read_checkpoints(r);
}

static void tgt_info_done(struct kz_db_repl *r, int status, json_t *body) {
  (void)body;
  if (status == 404 && r->create_target) return go(r, &r->tgt, "PUT", "", NULL, 0, tgt_created, "create target");
  if (status == 404 && !r->failures)
    return finish(r, 404, "db_not_found", "could not open target database");
  if (!ok2xx(status)) return fail(r, status, "target info");
  read_checkpoints(r);
}

static void src_info_done(struct kz_db_repl *r, int status, json_t *body) {
  (void)body;
  if (status == 404 && !r->failures) return finish(r, 404, "db_not_found", "could not open source database");
  if (!ok2xx(status)) return fail(r, status, "source info");
  go(r, &r->tgt, "GET", "", NULL, 0, tgt_info_done, "target info");
}

static void start(struct kz_db_repl *r) {
  r->waiting = false;
  json_decref(r->batch_seq);
  r->batch_seq = NULL;
  go(r, &r->src, "GET", "", NULL, 0, src_info_done, "source info");
}

static void on_poke(struct kz_db_repl *r) {
  if (r->waiting && r->src.local && !r->next_step && !kz_timer_active(&r->retry)) {
    r->waiting = false;
    read_changes(r);
  }
}

void kz_db_repl_notify(struct kz_db *db, int64_t dbid) {
  /* Called from inside a write's request: only look, and let a timer
   * do the work (the retry timer doubles as the wake-up). */
  for (struct kz_db_repl *r = db->repls; r; r = r->next) {
    if (!r->continuous || !r->src.local) continue;
    struct kz_db_dbinfo info;
    if (kz_db_store_db_get(db, r->src.name, &info) || info.id != dbid) continue;
    r->dirty = true;
    if (r->waiting && !r->next_step && !kz_timer_active(&r->retry)) (void)kz_timer_start(&r->retry, 0);
  }
}

static void on_retry_or_poke(void *arg) {
  struct kz_db_repl *r = arg;
  if (r->waiting) on_poke(r);
  else on_retry(r);
}

/* ------------------------------------------------------------------ */
/* The endpoint                                                        */

static int ep_parse(struct kz_db_reply *rep, const json_t *v, struct ep *e, const char *which) {
  const char *s = json_string_value(v);
  if (!s && json_is_object(v)) s = json_string_value(json_object_get(v, "url"));
  char msg[160];
  if (!s || !*s) {
    snprintf(msg, sizeof msg, "`%s` must be a database name or URL", which);
    kz_db_reply_error(rep, 400, "bad_request", msg);
    return KZ_EPROTO;
  }
  e->display = kz_strdup(s);
  if (!strncmp(s, "http://", 7)) {
    size_t n = strlen(s);
    while (n > 7 && s[n - 1] == '/') n--;
    e->url = kz_malloc(n + 1);
    if (e->url) {
      memcpy(e->url, s, n);
      e->url[n] = 0;
    }
  } else if (strstr(s, "://")) {
    snprintf(msg, sizeof msg, "`%s`: only http:// URLs are supported", which);
    kz_db_reply_error(rep, 400, "bad_request", msg);
    return KZ_EPROTO;
  } else {
    if (!kz_db_name_valid(s)) {
      snprintf(msg, sizeof msg, "`%s`: invalid database name", which);
      kz_db_reply_error(rep, 400, "illegal_database_name", msg);
      return KZ_EPROTO;
    }
    e->local = true;
    e->name = kz_strdup(s);
  }
  if (!e->display || (!e->url && !e->name)) {
    kz_db_reply_kzerr(rep, KZ_ENOMEM);
    return KZ_ENOMEM;
  }
  return 0;
}

bool kz_db_repl_running(const struct kz_db *db, const char *source, const char *target) {
  for (const struct kz_db_repl *r = db->repls; r; r = r->next)
    if (r->continuous && !r->doc_ids && !strcmp(r->src.display, source) && !strcmp(r->tgt.display, target))
      return true;
  return false;
}

static struct kz_db_repl *repl_find(struct kz_db *db, const char *local_id) {
  for (struct kz_db_repl *r = db->repls; r; r = r->next)
    if (!strcmp(r->local_id, local_id)) return r;
  return NULL;
}

int kz_db_api_replicate(struct kz_db_req *q, struct kz_db_reply *rep) {
  struct kz_db *db = q->db;
  json_t *body = NULL;
  if (kz_db_require_json(q, rep) || kz_db_body_json(q, rep, false, &body)) return 0;
  bool cancel = json_is_true(json_object_get(body, "cancel"));
  const char *rid = json_string_value(json_object_get(body, "replication_id"));
  if (cancel && rid) {
    struct kz_db_repl *r = repl_find(db, rid);
    if (!r) kz_db_reply_error(rep, 404, "not_found", rid);
    else {
      kz_db_reply_json(rep, 200, json_pack("{s:b,s:s}", "ok", 1, "_local_id", r->local_id));
      if (r->conn) finish(r, 500, "replication_cancelled", "cancelled");
      else repl_free(r);
    }
    json_decref(body);
    return 0;
  }
  struct kz_db_repl *r = kz_calloc(1, sizeof *r);
  if (!r) {
    json_decref(body);
    kz_db_reply_kzerr(rep, KZ_ENOMEM);
    return 0;
  }
  r->db = db;
  kz_timer_init(&r->deliver, db->env, on_deliver, r);
  kz_timer_init(&r->retry, db->env, on_retry_or_poke, r);
  if (ep_parse(rep, json_object_get(body, "source"), &r->src, "source") ||
      ep_parse(rep, json_object_get(body, "target"), &r->tgt, "target"))
    goto drop;
  r->continuous = json_is_true(json_object_get(body, "continuous"));
  r->create_target = json_is_true(json_object_get(body, "create_target"));
  json_t *ids = json_object_get(body, "doc_ids");
  if (ids) {
    if (!json_is_array(ids)) {
      kz_db_reply_error(rep, 400, "bad_request", "`doc_ids` must be an array");
      goto drop;
    }
    r->doc_ids = json_incref(ids);
  }
  /* The id: a digest of what is replicated where.  CouchDB hashes its
   * node's persistent uuid in too; kz's server uuid is not persistent,
   * so it stays out and the id (hence the checkpoint) survives a
   * restart. */
  {
    char *idtxt = json_dumps(r->doc_ids ? r->doc_ids : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    struct kz_buf b = {0};
    kz_buf_printf(&b, "%s\n%s\n%s", r->src.display, r->tgt.display, idtxt ? idtxt : "");
    free(idtxt);
    uint8_t md[16];
    kz_db_md5(b.data ? (const void *)b.data : "", b.len, md);
    kz_buf_free(&b);
    for (int i = 0; i < 16; i++) snprintf(r->id + 2 * i, 3, "%02x", md[i]);
    snprintf(r->local_id, sizeof r->local_id, "%s%s", r->id, r->continuous ? "+continuous" : "");
  }
  struct kz_db_repl *old = repl_find(db, r->local_id);
  if (cancel) {
    if (!old) kz_db_reply_error(rep, 404, "not_found", r->local_id);
    else {
      kz_db_reply_json(rep, 200, json_pack("{s:b,s:s}", "ok", 1, "_local_id", old->local_id));
      if (old->conn) finish(old, 500, "replication_cancelled", "cancelled");
      else repl_free(old);
    }
    goto drop;
  }
  if (old) {
    if (r->continuous) kz_db_reply_json(rep, 202, json_pack("{s:b,s:s}", "ok", 1, "_local_id", old->local_id));
    else kz_db_reply_error(rep, 409, "conflict", "The same replication is already running");
    goto drop;
  }
  kz_db_uuid(db, r->session);
  r->next = db->repls;
  db->repls = r;
  json_decref(body);
  kz_log(db->env, KZ_LOG_INFO, "db", "replication %s: %s -> %s", r->local_id, r->src.display, r->tgt.display);
  start(r);
  /* start may already have failed and freed r (it never answers then). */
  bool alive = false;
  for (struct kz_db_repl *x = db->repls; x; x = x->next) alive = alive || x == r;
  if (!alive) {
    kz_db_reply_error(rep, 500, "replication_failed", "could not start");
    return 0;
  }
  if (r->continuous) {
    kz_db_reply_json(rep, 202, json_pack("{s:b,s:s}", "ok", 1, "_local_id", r->local_id));
    return 0;
  }
  /* One-shot: the answer comes when it ends. */
  if (!q->conn) {
    kz_db_reply_json(rep, 202, json_pack("{s:b,s:s}", "ok", 1, "_local_id", r->local_id));
    return 0;
  }
  r->conn = q->conn;
  kz_db_conn_set_repl(q->conn, r);
  return 2;
drop:
  json_decref(body);
  repl_free(r);
  return 0;
}

json_t *kz_db_repl_tasks(struct kz_db *db) {
  json_t *a = json_array();
  for (struct kz_db_repl *r = db->repls; r; r = r->next)
    json_array_append_new(
        a, json_pack("{s:s,s:s,s:s,s:s,s:b,s:I,s:I,s:I,s:I,s:O}", "type", "replication", "replication_id",
                     r->local_id, "source", r->src.display, "target", r->tgt.display, "continuous", r->continuous,
                     "docs_read", (json_int_t)r->docs_read, "docs_written", (json_int_t)r->docs_written,
                     "missing_revisions_found", (json_int_t)r->missing_found, "revisions_checked",
                     (json_int_t)r->missing_checked, "checkpointed_source_seq", r->since ? r->since : json_null()));
  return a;
}
