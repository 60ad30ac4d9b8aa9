/* changes.c — the _changes feed: normal and longpoll (with timeout and heartbeat on kz_env timers). */
#include <stdlib.h>
#include <string.h>

#include "db_int.h"
#include "kz/error.h"
#include "kz/mem.h"

struct changes_opts {
  int64_t since;
  uint64_t limit;
  bool include_docs, all_docs_style, descending, conflicts, attachments;
  bool design_only;
  json_t *doc_ids; /* filter=_doc_ids: array of strings, or NULL */
};

struct kz_db_waiter {
  struct kz_db *db;
  struct kz_db_waiter *prev, *next;
  struct kz_db_conn *conn;
  int64_t dbid;
  struct changes_opts o;
  uint64_t heartbeat_ns;
  struct kz_timer timeout, heartbeat, wake;
};

static bool id_wanted(const struct changes_opts *o, const char *id) {
  if (o->design_only && strncmp(id, "_design/", 8)) return false;
  if (!o->doc_ids) return true;
  size_t i;
  json_t *v;
  json_array_foreach(o->doc_ids, i, v) if (json_is_string(v) && !strcmp(json_string_value(v), id)) return true;
  return false;
}

/* Builds {"results":[...],"last_seq":N,"pending":M}; *count = rows. */
static int changes_build(struct kz_db *db, int64_t dbid, const struct changes_opts *o, json_t **out,
                         size_t *count) {
  *count = 0;
  json_t *results = json_array();
  if (!results) return KZ_ENOMEM;
  sqlite3_stmt *st = kz_db_sql(db, o->descending
                                       ? "SELECT id, seq, rev, deleted FROM docs WHERE db=? AND seq>? ORDER BY seq DESC"
                                       : "SELECT id, seq, rev, deleted FROM docs WHERE db=? AND seq>? ORDER BY seq");
  if (!st) {
    json_decref(results);
    return KZ_EIO;
  }
  sqlite3_bind_int64(st, 1, dbid);
  sqlite3_bind_int64(st, 2, o->descending ? 0 : o->since);
  int64_t last = o->since;
  int64_t pending = 0;
  int rc = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *id = (const char *)sqlite3_column_text(st, 0);
    if (!id_wanted(o, id)) continue;
    if (*count >= o->limit) {
      pending++;
      continue;
    }
    int64_t seq = sqlite3_column_int64(st, 1);
    bool deleted = sqlite3_column_int(st, 3) != 0;
    json_t *changes = json_array();
    struct kz_db_tree t = {0};
    bool need_tree = o->all_docs_style || o->include_docs;
    if (need_tree && (rc = kz_db_store_tree(db, dbid, id, &t))) {
      json_decref(changes);
      break;
    }
    if (o->all_docs_style && t.n) {
      int *idx = kz_calloc(t.n, sizeof *idx);
      size_t nl = idx ? kz_db_tree_leaves(&t, idx) : 0;
      for (size_t k = 0; k < nl; k++) {
        char b[96];
        kz_db_rev_format(&t.nodes[idx[k]].rev, b, sizeof b);
        json_array_append_new(changes, json_pack("{s:s}", "rev", b));
      }
      kz_free(idx);
    } else {
      json_array_append_new(changes, json_pack("{s:s}", "rev", (const char *)sqlite3_column_text(st, 2)));
    }
    json_t *row = json_pack("{s:I,s:s,s:o}", "seq", (json_int_t)seq, "id", id, "changes", changes);
    if (deleted) json_object_set_new(row, "deleted", json_true());
    if (o->include_docs) {
      int w = kz_db_tree_winner(&t);
      json_t *d = NULL;
      struct kz_db_read_opts ro = {.conflicts = o->conflicts, .attachments = o->attachments};
      if (w >= 0 && t.nodes[w].has_body && kz_db_doc_json(db, dbid, id, &t, w, &ro, &d) == 0)
        json_object_set_new(row, "doc", d);
    }
    kz_db_tree_free(&t);
    json_array_append_new(results, row);
    (*count)++;
    last = seq;
  }
  kz_db_sql_done(db, st);
  if (rc) {
    json_decref(results);
    return rc;
  }
  *out = json_pack("{s:o,s:I,s:I}", "results", results, "last_seq", (json_int_t)last, "pending",
                   (json_int_t)pending);
  return *out ? 0 : KZ_ENOMEM;
}

static int64_t parse_since(struct kz_slice v, int64_t now_seq, bool *ok) {
  *ok = true;
  if (kz_slice_eq_cstr(v, "now")) return now_seq;
  /* Accept 12, "12" and "12-opaque" (what other servers hand out). */
  if (v.len && v.p[0] == '"') v = kz_slice_sub(v, 1, v.len >= 2 ? v.len - 2 : 0);
  size_t n = 0;
  int64_t x = 0;
  while (n < v.len && v.p[n] >= '0' && v.p[n] <= '9' && n < 18) x = x * 10 + (v.p[n++] - '0');
  if (n == 0 || (n < v.len && v.p[n] != '-')) *ok = false;
  return x;
}

/* ------------------------------------------------------------------ */
/* Waiters                                                             */

static void waiter_unlink(struct kz_db_waiter *w) {
  struct kz_db *db = w->db;
  kz_timer_stop(&w->timeout);
  kz_timer_stop(&w->heartbeat);
  kz_timer_stop(&w->wake);
  if (w->prev) w->prev->next = w->next;
  else db->waiters = w->next;
  if (w->next) w->next->prev = w->prev;
  json_decref(w->o.doc_ids);
  kz_free(w);
}

void kz_db_waiter_cancel(struct kz_db_waiter *w) { waiter_unlink(w); }

void kz_db_waiters_free(struct kz_db *db) {
  while (db->waiters) {
    struct kz_db_waiter *w = db->waiters;
    if (w->conn) kz_db_conn_set_waiter(w->conn, NULL);
    waiter_unlink(w);
  }
}

/* Sends `j` as the body of the parked response and releases the
 * connection.  Takes j. */
static void waiter_answer(struct kz_db_waiter *w, json_t *j) {
  struct kz_db_conn *c = w->conn;
  struct kz_buf b = {0};
  if (!j || kz_db_json_dump(&b, j, 0) || kz_buf_append_byte(&b, '\n')) {
    kz_buf_reset(&b);
    (void)kz_buf_append_cstr(&b, "{\"error\":\"internal_server_error\",\"reason\":\"out of memory\"}\n");
  }
  json_decref(j);
  (void)kz_db_conn_chunk(c, b.data, b.len);
  kz_buf_free(&b);
  kz_db_conn_set_waiter(c, NULL);
  waiter_unlink(w);
  kz_db_conn_finish(c);
}

static void on_wake(void *arg) {
  struct kz_db_waiter *w = arg;
  json_t *res = NULL;
  size_t count = 0;
  int rc = changes_build(w->db, w->dbid, &w->o, &res, &count);
  if (rc) return waiter_answer(w, json_pack("{s:s,s:s}", "error", "internal_server_error", "reason", "the store failed"));
  if (count == 0) {
    /* The database may be gone: then answer what we have. */
    sqlite3_stmt *st = kz_db_sql(w->db, "SELECT 1 FROM dbs WHERE id=?");
    bool exists = false;
    if (st) {
      sqlite3_bind_int64(st, 1, w->dbid);
      exists = sqlite3_step(st) == SQLITE_ROW;
      kz_db_sql_done(w->db, st);
    }
    if (exists) {
      json_decref(res);
      return;
    }
  }
  waiter_answer(w, res);
}

static void on_timeout(void *arg) {
  struct kz_db_waiter *w = arg;
  waiter_answer(w, json_pack("{s:[],s:I,s:i}", "results", "last_seq", (json_int_t)w->o.since, "pending", 0));
}

static void on_heartbeat(void *arg) {
  struct kz_db_waiter *w = arg;
  (void)kz_db_conn_chunk(w->conn, "\n", 1);
  (void)kz_timer_start(&w->heartbeat, w->heartbeat_ns);
}

void kz_db_changes_notify(struct kz_db *db, int64_t dbid) {
  kz_db_repl_notify(db, dbid);
  for (struct kz_db_waiter *w = db->waiters; w; w = w->next)
    if (w->dbid == dbid && !kz_timer_active(&w->wake)) (void)kz_timer_start(&w->wake, 0);
}

/* ------------------------------------------------------------------ */
/* The endpoint                                                        */

int kz_db_api_changes(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info) {
  struct kz_db *db = q->db;
  struct changes_opts o = {.limit = UINT64_C(1) << 53};
  bool present = false;
  uint64_t timeout_ms = 0, heartbeat_ms = 0;
  bool has_timeout = false, has_heartbeat = false;
  json_t *body = NULL;
  if (kz_db_q_bool(q, r, "include_docs", &o.include_docs) ||
      kz_db_q_bool(q, r, "descending", &o.descending) || kz_db_q_bool(q, r, "conflicts", &o.conflicts) ||
      kz_db_q_bool(q, r, "attachments", &o.attachments) ||
      kz_db_q_u64(q, r, "limit", &o.limit, &present) ||
      kz_db_q_u64(q, r, "timeout", &timeout_ms, &has_timeout))
    return 0;
  struct kz_slice hb = kz_http_query_get(&q->query, "heartbeat");
  if (hb.p && !kz_slice_eq_cstr(hb, "true")) {
    if (kz_db_q_u64(q, r, "heartbeat", &heartbeat_ms, &has_heartbeat)) return 0;
  } else if (hb.p) {
    heartbeat_ms = 60000;
    has_heartbeat = true;
  }
  if (present && o.limit == 0) o.limit = 1;
  struct kz_slice style = kz_http_query_get(&q->query, "style");
  if (style.p && kz_slice_eq_cstr(style, "all_docs")) o.all_docs_style = true;
  else if (style.p && !kz_slice_eq_cstr(style, "main_only")) {
    kz_db_reply_error(r, 400, "bad_request", "Invalid style parameter");
    return 0;
  }
  struct kz_slice since = kz_http_query_get(&q->query, "since");
  if (since.p) {
    bool ok;
    o.since = parse_since(since, info->update_seq, &ok);
    if (!ok) {
      kz_db_reply_error(r, 400, "bad_request", "Malformed sequence supplied in 'since' parameter.");
      return 0;
    }
  }
  struct kz_slice filter = kz_http_query_get(&q->query, "filter");
  if (filter.p) {
    if (kz_slice_eq_cstr(filter, "_doc_ids")) {
      if (kz_slice_eq_cstr(q->method, "POST")) {
        if (kz_db_body_json(q, r, false, &body)) return 0;
        o.doc_ids = json_incref(json_object_get(body, "doc_ids"));
      } else if (kz_db_q_json(q, r, "doc_ids", &o.doc_ids)) {
        return 0;
      }
      if (!json_is_array(o.doc_ids)) {
        json_decref(body);
        json_decref(o.doc_ids);
        kz_db_reply_error(r, 400, "bad_request", "`doc_ids` filter parameter is not a list of doc ids.");
        return 0;
      }
    } else if (kz_slice_eq_cstr(filter, "_design")) {
      o.design_only = true;
    } else {
      kz_db_reply_error(r, 400, "bad_request", "Only the _doc_ids and _design filters are implemented");
      return 0;
    }
  }
  json_decref(body);
  struct kz_slice feed = kz_http_query_get(&q->query, "feed");
  bool longpoll = feed.p && kz_slice_eq_cstr(feed, "longpoll");
  if (feed.p && !longpoll && !kz_slice_eq_cstr(feed, "normal")) {
    json_decref(o.doc_ids);
    kz_db_reply_error(r, 400, "bad_request", "Supported feeds: normal, longpoll");
    return 0;
  }
  json_t *res = NULL;
  size_t count = 0;
  int rc = changes_build(db, info->id, &o, &res, &count);
  if (rc) {
    json_decref(o.doc_ids);
    kz_db_reply_kzerr(r, rc);
    return 0;
  }
  if (!longpoll || count > 0 || o.descending) {
    json_decref(o.doc_ids);
    kz_db_reply_json(r, 200, res);
    /* CouchDB ends feed bodies with a newline. */
    if (r->status == 200) (void)kz_buf_append_byte(&r->body, '\n');
    return 0;
  }
  json_decref(res);
  struct kz_db_waiter *w = kz_calloc(1, sizeof *w);
  if (!w) {
    json_decref(o.doc_ids);
    kz_db_reply_kzerr(r, KZ_ENOMEM);
    return 0;
  }
  w->db = db;
  w->conn = q->conn;
  w->dbid = info->id;
  w->o = o;
  w->heartbeat_ns = has_heartbeat ? heartbeat_ms * 1000000u : 0;
  kz_timer_init(&w->timeout, db->env, on_timeout, w);
  kz_timer_init(&w->heartbeat, db->env, on_heartbeat, w);
  kz_timer_init(&w->wake, db->env, on_wake, w);
  /* Append: waiters are woken oldest first. */
  struct kz_db_waiter **pp = &db->waiters, *prev = NULL;
  while (*pp) {
    prev = *pp;
    pp = &(*pp)->next;
  }
  *pp = w;
  w->prev = prev;
  uint64_t tmo = has_timeout ? timeout_ms * 1000000u : db->cfg.changes_timeout_ns;
  if (kz_timer_start(&w->timeout, tmo) ||
      (w->heartbeat_ns && kz_timer_start(&w->heartbeat, w->heartbeat_ns))) {
    waiter_unlink(w);
    kz_db_reply_kzerr(r, KZ_ENOMEM);
    return 0;
  }
  kz_db_conn_set_waiter(q->conn, w);
  /* The head goes now so heartbeats can follow it; the body comes as
   * one chunk when a change arrives or the timeout passes. */
  return 1;
}
