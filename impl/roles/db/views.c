/* views.c — the view index (maintained in each write's transaction) and CouchDB's view query API over the native views. */
#include <stdlib.h>
#include <string.h>

#include "db_int.h"
#include "kz/error.h"
#include "kz/mem.h"

/* Index layout: table vrows holds one row per emitted (key, value) of
 * every native view, for the winning revision of every live document:
 *   db, view ("ddoc/view"), k (kz_db_collate_key of the key: memcmp
 *   order = CouchDB collation), doc (document id), n (emission index),
 *   key and value (JSON text as emitted).
 * Its unique index vrows_order (db, view, k, doc, n) is the order
 * CouchDB returns rows in: by key, then by document id (raw byte order,
 * as CouchDB's couch_view:less_json_ids does), then in emission order.
 * A second index (db, doc) finds a document's rows when it changes.
 * vrows is a rowid table, not WITHOUT ROWID clustered on that key:
 * rows land at the end of the table in write order and only the narrow
 * index entries go in key order, so a bulk write whose keys scatter
 * over a view (credentials/lookup: by realm) dirties a few index pages
 * instead of splitting pages full of wide values (the clustered layout
 * cost about half of a bulk write's SQLite time).
 *
 * The index is brought up to date when a view is read, as CouchDB
 * does, not in each write's transaction: table vstate keeps, per
 * database, the update sequence the index covers, and a query first
 * re-maps the documents changed since (found through docs_by_seq), in
 * transactions of their own that also advance vstate, so a crash can
 * leave the index behind the documents but never inconsistent with
 * vstate.  Writes then cost no mapping and no index rows: a bulk write
 * of devices spent a third of its time on them.  A query with
 * stale=ok or update=false reads the index as it is; stale=update_after
 * or update=lazy answers first and updates after.  Design and _local
 * documents are not mapped, as in CouchDB.
 *
 * Table vcounts keeps each view's row count per database (CouchDB's
 * total_rows), changed with the rows in the same transaction: counting
 * the rows of a view per query grew with the database.  Deltas are
 * summed in memory over a transaction (db->txn_vcount) and written
 * once, before COMMIT.
 *
 * When the set of native views (or a map function) changes, bump
 * VIEWS_VERSION: the next open rebuilds the whole index. */

#define VIEWS_VERSION "4" /* 3: vrows a rowid table with a unique order index; 4: built at query time */

/* Multi-line statements are parenthesised: one array element each.
 * vrows and its indexes come after the version check (see
 * kz_db_views_init): an index built under another version is dropped
 * whole, so its layout may change between versions. */
static const char *const views_schema[] = {
    "CREATE TABLE IF NOT EXISTS kv(name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    ("CREATE TABLE IF NOT EXISTS vcounts(db INTEGER NOT NULL, view TEXT NOT NULL, n INTEGER NOT NULL,"
     " PRIMARY KEY(db, view)) WITHOUT ROWID"),
    "CREATE TABLE IF NOT EXISTS vstate(db INTEGER PRIMARY KEY, seq INTEGER NOT NULL)",
};

static const char *const vrows_schema[] = {
    ("CREATE TABLE IF NOT EXISTS vrows(db INTEGER NOT NULL, view TEXT NOT NULL, k BLOB NOT NULL,"
     " doc TEXT NOT NULL, n INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL)"),
    "CREATE UNIQUE INDEX IF NOT EXISTS vrows_order ON vrows(db, view, k, doc, n)",
    "CREATE INDEX IF NOT EXISTS vrows_by_doc ON vrows(db, doc)",
};

/* "ddoc/view" of native view i into buf. */
static void view_name(size_t i, char *buf, size_t len) {
  snprintf(buf, len, "%s/%s", kz_db_native_views[i].ddoc, kz_db_native_views[i].view);
}

/* Index of the native view named "ddoc/view", or -1. */
static int view_index(const char *name) {
  for (size_t i = 0; i < kz_db_native_views_n; i++) {
    const struct kz_db_native_view *v = &kz_db_native_views[i];
    size_t dl = strlen(v->ddoc);
    if (!strncmp(name, v->ddoc, dl) && name[dl] == '/' && !strcmp(name + dl + 1, v->view)) return (int)i;
  }
  return -1;
}

int kz_db_views_flush_counts(struct kz_db *db) {
  if (!db->txn_vcount_dirty || !db->txn_dbid) return 0;
  sqlite3_stmt *st = NULL;
  for (size_t i = 0; i < kz_db_native_views_n; i++) {
    if (!db->txn_vcount[i]) continue;
    char name[128];
    view_name(i, name, sizeof name);
    st = kz_db_sql(db, "INSERT INTO vcounts(db, view, n) VALUES(?,?,?)"
                       " ON CONFLICT(db, view) DO UPDATE SET n=n+excluded.n");
    if (!st) return KZ_EIO;
    sqlite3_bind_int64(st, 1, db->txn_dbid);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, db->txn_vcount[i]);
    int rc = sqlite3_step(st);
    kz_db_sql_done(db, st);
    if (rc != SQLITE_DONE) return KZ_EIO;
    db->txn_vcount[i] = 0;
  }
  db->txn_vcount_dirty = false;
  return 0;
}

/* The version string stored with the index: VIEWS_VERSION and the
 * names of the views, so adding a view also triggers a rebuild. */
static int version_string(struct kz_buf *b) {
  int rc = kz_buf_append_cstr(b, VIEWS_VERSION);
  for (size_t i = 0; i < kz_db_native_views_n && !rc; i++)
    rc = kz_buf_printf(b, " %s/%s", kz_db_native_views[i].ddoc, kz_db_native_views[i].view);
  if (!rc) rc = kz_buf_append_byte(b, 0);
  return rc;
}

static int vrows_create(struct kz_db *db) {
  for (size_t i = 0; i < sizeof vrows_schema / sizeof vrows_schema[0]; i++)
    if (kz_db_sql_exec(db, vrows_schema[i])) return KZ_EIO;
  return 0;
}

/* Empties the index: the next query of each database rebuilds it. */
static int rebuild(struct kz_db *db) {
  /* Dropped, not emptied: an older version's table may have another
   * layout. */
  if (kz_db_sql_exec(db, "DROP TABLE IF EXISTS vrows") || vrows_create(db) ||
      kz_db_sql_exec(db, "DELETE FROM vcounts") || kz_db_sql_exec(db, "DELETE FROM vstate"))
    return KZ_EIO;
  return 0;
}

int kz_db_views_init(struct kz_db *db) {
  for (size_t i = 0; i < sizeof views_schema / sizeof views_schema[0]; i++)
    if (kz_db_sql_exec(db, views_schema[i])) return KZ_EIO;
  struct kz_buf want = {0};
  if (version_string(&want)) {
    kz_buf_free(&want);
    return KZ_ENOMEM;
  }
  sqlite3_stmt *st = kz_db_sql(db, "SELECT value FROM kv WHERE name='views_version'");
  int rc = st ? 0 : KZ_EIO;
  bool same = false;
  if (st && sqlite3_step(st) == SQLITE_ROW)
    same = !strcmp((const char *)sqlite3_column_text(st, 0), (const char *)want.data);
  kz_db_sql_done(db, st);
  if (!rc && same) rc = vrows_create(db);
  if (!rc && !same) {
    kz_log(db->env, KZ_LOG_INFO, "db", "new view index (%s): rebuilt by the first queries", (const char *)want.data);
    rc = rebuild(db);
    st = rc ? NULL : kz_db_sql(db, "INSERT OR REPLACE INTO kv(name, value) VALUES('views_version', ?)");
    if (!rc && !st) rc = KZ_EIO;
    if (st) {
      sqlite3_bind_text(st, 1, (const char *)want.data, -1, SQLITE_STATIC);
      if (sqlite3_step(st) != SQLITE_DONE) rc = KZ_EIO;
      kz_db_sql_done(db, st);
    }
  }
  kz_buf_free(&want);
  return rc;
}

int kz_db_views_drop_db(struct kz_db *db, int64_t dbid) {
  static const char *const dels[] = {"DELETE FROM vrows WHERE db=?", "DELETE FROM vcounts WHERE db=?",
                                     "DELETE FROM vstate WHERE db=?"};
  for (size_t i = 0; i < sizeof dels / sizeof dels[0]; i++) {
    sqlite3_stmt *st = kz_db_sql(db, dels[i]);
    if (!st) return KZ_EIO;
    sqlite3_bind_int64(st, 1, dbid);
    int rc = sqlite3_step(st);
    kz_db_sql_done(db, st);
    if (rc != SQLITE_DONE) return KZ_EIO;
  }
  return 0;
}

static int insert_rows(struct kz_db *db, int64_t dbid, const char *docid, const char *view, json_t *rows) {
  sqlite3_stmt *st = kz_db_sql(db, "INSERT OR REPLACE INTO vrows(db, view, k, doc, n, key, value)"
                                   " VALUES(?,?,?,?,?,?,?)");
  if (!st) return KZ_EIO;
  int rc = 0;
  size_t i;
  json_t *row;
  struct kz_buf *k = &db->scratch_k, *kt = &db->scratch_kt, *vt = &db->scratch_vt;
  json_array_foreach(rows, i, row) {
    json_t *key = json_array_get(row, 0), *value = json_array_get(row, 1);
    kz_buf_reset(k);
    kz_buf_reset(kt);
    kz_buf_reset(vt);
    if (kz_json_write(kt, key ? key : json_null(), KZ_JSON_ENCODE_ANY) || kz_json_write(vt, value ? value : json_null(), KZ_JSON_ENCODE_ANY) ||
        kz_db_collate_key(k, key)) {
      rc = KZ_ENOMEM;
    } else {
      sqlite3_reset(st);
      sqlite3_bind_int64(st, 1, dbid);
      sqlite3_bind_text(st, 2, view, -1, SQLITE_STATIC);
      sqlite3_bind_blob(st, 3, k->len ? (const void *)k->data : "", (int)k->len, SQLITE_STATIC);
      sqlite3_bind_text(st, 4, docid, -1, SQLITE_STATIC);
      sqlite3_bind_int64(st, 5, (int64_t)i);
      sqlite3_bind_text(st, 6, (const char *)kt->data, (int)kt->len, SQLITE_STATIC);
      sqlite3_bind_text(st, 7, (const char *)vt->data, (int)vt->len, SQLITE_STATIC);
      if (sqlite3_step(st) != SQLITE_DONE) rc = KZ_EIO;
    }
    if (rc) break;
  }
  /* Unbinds the scratch buffers before anyone reuses them. */
  kz_db_sql_done(db, st);
  return rc;
}

/* Re-indexes one document whose winning revision changed (inside the
 * open transaction): winner is that revision, NULL when the document
 * is deleted (its rows just go); fresh says it has no rows to remove.
 * 0, KZ_EIO or KZ_ENOMEM. */
static int index_doc(struct kz_db *db, int64_t dbid, const char *docid, const struct kz_db_rev *winner,
                     bool fresh) {
  int rc = kz_db_store_txn_db(db, dbid);
  if (rc) return rc;
  if (!fresh) {
    /* The rows of the previous winner go; RETURNING names their views
     * so the counts follow. */
    sqlite3_stmt *st = kz_db_sql(db, "DELETE FROM vrows WHERE db=? AND doc=? RETURNING view");
    if (!st) return KZ_EIO;
    sqlite3_bind_int64(st, 1, dbid);
    sqlite3_bind_text(st, 2, docid, -1, SQLITE_STATIC);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
      int vi = view_index((const char *)sqlite3_column_text(st, 0));
      if (vi >= 0) {
        db->txn_vcount[vi]--;
        db->txn_vcount_dirty = true;
      }
    }
    kz_db_sql_done(db, st);
    if (s != SQLITE_DONE) return KZ_EIO;
  }
  if (docid[0] == '_' || !winner) return 0; /* design and _local documents are not mapped */
  json_t *body = NULL;
  rc = kz_db_store_rev_body(db, dbid, docid, winner, &body, NULL);
  if (rc == KZ_ENOENT) return 0;
  if (rc) return rc;
  for (size_t i = 0; i < kz_db_native_views_n && !rc; i++) {
    const struct kz_db_native_view *v = &kz_db_native_views[i];
    json_t *rows = NULL;
    rc = kz_db_map_run(v, docid, body, &rows);
    size_t n = json_array_size(rows);
    if (!rc && n) {
      char name[128];
      view_name(i, name, sizeof name);
      rc = insert_rows(db, dbid, docid, name, rows);
      if (!rc) {
        db->txn_vcount[i] += (int64_t)n;
        db->txn_vcount_dirty = true;
      }
    }
    json_decref(rows);
  }
  json_decref(body);
  return rc;
}

/* The update sequence the index of dbid covers (0: none).  -1 on error. */
static int64_t vstate_seq(struct kz_db *db, int64_t dbid) {
  sqlite3_stmt *st = kz_db_sql(db, "SELECT seq FROM vstate WHERE db=?");
  if (!st) return -1;
  sqlite3_bind_int64(st, 1, dbid);
  int s = sqlite3_step(st);
  int64_t seq = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : s == SQLITE_DONE ? 0 : -1;
  kz_db_sql_done(db, st);
  return seq;
}

static int vstate_set(struct kz_db *db, int64_t dbid, int64_t seq) {
  sqlite3_stmt *st = kz_db_sql(db, "INSERT OR REPLACE INTO vstate(db, seq) VALUES(?,?)");
  if (!st) return KZ_EIO;
  sqlite3_bind_int64(st, 1, dbid);
  sqlite3_bind_int64(st, 2, seq);
  int s = sqlite3_step(st);
  kz_db_sql_done(db, st);
  return s == SQLITE_DONE ? 0 : KZ_EIO;
}

/* Documents re-mapped per transaction while catching up: bounds the
 * WAL a catch-up grows and what a crash in it throws away. */
#define UPDATE_BATCH 5000

/* Re-maps, in one transaction, up to UPDATE_BATCH documents changed
 * after *from, and moves vstate (and *from) past them, to update_seq
 * when none are left.  Sets *done when the index is current. */
static int update_batch(struct kz_db *db, int64_t dbid, int64_t *from, bool *done) {
  int rc = kz_db_store_begin(db);
  if (rc) return rc;
  rc = kz_db_store_txn_db(db, dbid); /* loads the update sequence and the count deltas */
  int64_t update_seq = db->txn_seq, last = *from;
  bool fresh = *from == 0; /* nothing indexed yet: no rows to remove */
  sqlite3_stmt *st =
      rc ? NULL : kz_db_sql(db, "SELECT id, rev, deleted, seq FROM docs WHERE db=? AND seq>? ORDER BY seq");
  if (!rc && !st) rc = KZ_EIO;
  size_t n = 0;
  int s = SQLITE_DONE;
  if (st) {
    sqlite3_bind_int64(st, 1, dbid);
    sqlite3_bind_int64(st, 2, *from);
    while (!rc && n < UPDATE_BATCH && (s = sqlite3_step(st)) == SQLITE_ROW) {
      bool deleted = sqlite3_column_int(st, 2) != 0;
      struct kz_db_rev rev;
      last = sqlite3_column_int64(st, 3);
      n++;
      if (fresh && deleted) continue;
      if (kz_db_rev_parse(&rev, (const char *)sqlite3_column_text(st, 1))) continue;
      rc = index_doc(db, dbid, (const char *)sqlite3_column_text(st, 0), deleted ? NULL : &rev, fresh);
    }
    if (!rc && n < UPDATE_BATCH && s != SQLITE_DONE) rc = KZ_EIO;
    kz_db_sql_done(db, st);
  }
  *done = !rc && n < UPDATE_BATCH;
  if (*done) last = update_seq;
  if (!rc) rc = vstate_set(db, dbid, last);
  if (!rc) rc = kz_db_store_commit(db);
  else kz_db_store_rollback(db);
  if (!rc) *from = last;
  return rc;
}

int kz_db_views_update(struct kz_db *db, int64_t dbid, int64_t update_seq) {
  int64_t from = vstate_seq(db, dbid);
  if (from < 0) return KZ_EIO;
  bool done = from >= update_seq;
  while (!done) {
    int rc = update_batch(db, dbid, &from, &done);
    if (rc) return rc;
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Query parameters                                                    */

enum pkind { P_JSON, P_STR, P_BOOL, P_INT };

/* One view query parameter, from the POST body (which wins) or the
 * query string.  *out is a new reference or NULL when absent.  Returns
 * 0 or KZ_EPROTO with a 400 in the reply. */
static int param(struct kz_db_req *q, struct kz_db_reply *r, const json_t *body, const char *name,
                 enum pkind kind, json_t **out) {
  *out = NULL;
  char msg[200];
  json_t *v = body ? json_object_get(body, name) : NULL;
  if (v) {
    v = json_incref(v);
  } else {
    struct kz_slice s = kz_http_query_get(&q->query, name);
    if (!s.p) return 0;
    if (kind == P_STR) {
      v = json_stringn(s.p, s.len);
    } else {
      v = json_loadb(s.p, s.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
      if (!v) {
        snprintf(msg, sizeof msg, "Invalid value for %s: \"%.100s\"", name, s.p);
        kz_db_reply_error(r, 400, kind == P_JSON ? "bad_request" : "query_parse_error", msg);
        return KZ_EPROTO;
      }
    }
  }
  bool ok = kind == P_JSON || (kind == P_STR && json_is_string(v)) || (kind == P_BOOL && json_is_boolean(v)) ||
            (kind == P_INT && json_is_integer(v) && json_integer_value(v) >= 0);
  if (!ok) {
    snprintf(msg, sizeof msg, kind == P_BOOL ? "Invalid boolean parameter: %s"
                              : kind == P_INT ? "Invalid value for positive integer: %s"
                                              : "Invalid value for %s",
             name);
    json_decref(v);
    kz_db_reply_error(r, 400, "query_parse_error", msg);
    return KZ_EPROTO;
  }
  *out = v;
  return 0;
}

struct vq {
  json_t *key, *keys, *sk, *ek;
  char *skid, *ekid;
  bool desc, incl_end, include_docs, update_seq;
  int reduce; /* -1 unset, else 0/1 */
  bool group;
  int64_t group_level; /* -1 unset */
  uint64_t limit, skip;
  struct kz_db_read_opts ro;
  enum { UPDATE_BEFORE, UPDATE_NEVER, UPDATE_AFTER } update;
};

static void vq_free(struct vq *v) {
  json_decref(v->key);
  json_decref(v->keys);
  json_decref(v->sk);
  json_decref(v->ek);
  kz_free(v->skid);
  kz_free(v->ekid);
}

static char *dup_str(const json_t *s) {
  size_t n = json_string_length(s);
  char *d = kz_malloc(n + 1);
  if (d) {
    memcpy(d, json_string_value(s), n);
    d[n] = 0;
  }
  return d;
}

static int parse_bool(struct kz_db_req *q, struct kz_db_reply *r, const json_t *body, const char *name,
                      bool *out) {
  json_t *v;
  if (param(q, r, body, name, P_BOOL, &v)) return KZ_EPROTO;
  if (v) *out = json_is_true(v);
  json_decref(v);
  return 0;
}

static int parse_int(struct kz_db_req *q, struct kz_db_reply *r, const json_t *body, const char *name,
                     uint64_t *out, bool *present) {
  json_t *v;
  if (param(q, r, body, name, P_INT, &v)) return KZ_EPROTO;
  if (present) *present = v != NULL;
  if (v) *out = (uint64_t)json_integer_value(v);
  json_decref(v);
  return 0;
}

/* A JSON parameter under either of its two CouchDB spellings. */
static int parse_json2(struct kz_db_req *q, struct kz_db_reply *r, const json_t *body, const char *a,
                       const char *b, json_t **out) {
  if (param(q, r, body, a, P_JSON, out)) return KZ_EPROTO;
  if (!*out && b && param(q, r, body, b, P_JSON, out)) return KZ_EPROTO;
  return 0;
}

static int parse_str2(struct kz_db_req *q, struct kz_db_reply *r, const json_t *body, const char *a,
                      const char *b, char **out) {
  json_t *v = NULL;
  if (param(q, r, body, a, P_STR, &v)) return KZ_EPROTO;
  if (!v && param(q, r, body, b, P_STR, &v)) return KZ_EPROTO;
  if (v) {
    *out = dup_str(v);
    json_decref(v);
    if (!*out) {
      kz_db_reply_kzerr(r, KZ_ENOMEM);
      return KZ_ENOMEM;
    }
  }
  return 0;
}

/* CouchDB's update (true, false, "lazy") and its older spelling stale
 * ("ok", "update_after"), from the body or the query string. */
static int parse_update(struct kz_db_req *q, struct kz_db_reply *r, const json_t *body, struct vq *v) {
  static const struct {
    const char *param, *word;
    int update;
  } words[] = {{"update", "true", UPDATE_BEFORE},  {"update", "false", UPDATE_NEVER},
               {"update", "lazy", UPDATE_AFTER},   {"stale", "ok", UPDATE_NEVER},
               {"stale", "update_after", UPDATE_AFTER}};
  for (int pi = 0; pi < 2; pi++) {
    const char *name = pi ? "stale" : "update";
    const json_t *bv = body ? json_object_get(body, name) : NULL;
    char word[16] = "";
    bool present = bv != NULL;
    if (json_is_boolean(bv)) snprintf(word, sizeof word, "%s", json_is_true(bv) ? "true" : "false");
    else if (json_is_string(bv) && json_string_length(bv) < sizeof word) snprintf(word, sizeof word, "%s", json_string_value(bv));
    if (!bv) {
      struct kz_slice sl = kz_http_query_get(&q->query, name);
      present = sl.p != NULL;
      /* The query string's words may come quoted, as JSON strings. */
      if (present && sl.len >= 2 && sl.p[0] == '"' && sl.p[sl.len - 1] == '"') {
        sl.p++;
        sl.len -= 2;
      }
      if (present && sl.len < sizeof word) {
        memcpy(word, sl.p, sl.len);
        word[sl.len] = 0;
      }
    }
    if (!present) continue;
    bool known = false;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
      if (!strcmp(words[i].param, name) && !strcmp(words[i].word, word)) {
        v->update = words[i].update;
        known = true;
      }
    if (!known) {
      char msg[64];
      snprintf(msg, sizeof msg, "Invalid value for `%s`.", name);
      kz_db_reply_error(r, 400, "query_parse_error", msg);
      return KZ_EPROTO;
    }
  }
  return 0;
}

static int vq_parse(struct kz_db_req *q, struct kz_db_reply *r, const json_t *body, struct vq *v) {
  memset(v, 0, sizeof *v);
  v->incl_end = true;
  v->reduce = -1;
  v->group_level = -1;
  v->limit = UINT64_MAX;
  bool b, has_gl = false;
  uint64_t gl = 0;
  if (parse_json2(q, r, body, "key", NULL, &v->key) || parse_json2(q, r, body, "keys", NULL, &v->keys) ||
      parse_json2(q, r, body, "startkey", "start_key", &v->sk) ||
      parse_json2(q, r, body, "endkey", "end_key", &v->ek) ||
      parse_str2(q, r, body, "startkey_docid", "start_key_doc_id", &v->skid) ||
      parse_str2(q, r, body, "endkey_docid", "end_key_doc_id", &v->ekid) ||
      parse_bool(q, r, body, "descending", &v->desc) || parse_bool(q, r, body, "inclusive_end", &v->incl_end) ||
      parse_bool(q, r, body, "include_docs", &v->include_docs) ||
      parse_bool(q, r, body, "update_seq", &v->update_seq) || parse_bool(q, r, body, "group", &v->group) ||
      parse_bool(q, r, body, "conflicts", &v->ro.conflicts) ||
      parse_bool(q, r, body, "attachments", &v->ro.attachments) ||
      parse_int(q, r, body, "limit", &v->limit, NULL) || parse_int(q, r, body, "skip", &v->skip, NULL) ||
      parse_int(q, r, body, "group_level", &gl, &has_gl) || parse_update(q, r, body, v))
    return KZ_EPROTO;
  json_t *red = NULL;
  if (param(q, r, body, "reduce", P_BOOL, &red)) return KZ_EPROTO;
  if (red) v->reduce = json_is_true(red);
  json_decref(red);
  if (has_gl) v->group_level = (int64_t)(gl > 1000 ? 1000 : gl);
  (void)b;
  if (v->keys && !json_is_array(v->keys)) {
    kz_db_reply_error(r, 400, "bad_request", "`keys` member must be an array.");
    return KZ_EPROTO;
  }
  if (v->keys && (v->key || v->sk || v->ek)) {
    kz_db_reply_error(r, 400, "query_parse_error",
                      "`keys` is incompatible with `key`, `start_key` and `end_key`");
    return KZ_EPROTO;
  }
  if (v->key) {
    /* key=K is startkey=K&endkey=K, inclusive. */
    json_decref(v->sk);
    json_decref(v->ek);
    v->sk = json_incref(v->key);
    v->ek = json_incref(v->key);
    v->incl_end = true;
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Range scans                                                         */

struct bound {
  bool set;
  struct kz_buf k;
  const char *doc; /* NULL: every document of the key */
};

/* Calls fn for every index row of view in [lo, hi] walked in the
 * query's direction (lo is where the walk starts: the upper end when
 * descending).  fn returns 0 to go on, 1 to stop, <0 on error. */
typedef int (*row_fn)(void *ctx, const char *doc, const char *key, const char *value);

static int scan(struct kz_db *db, int64_t dbid, const char *view, const struct bound *lo,
                const struct bound *hi, bool desc, bool incl_end, row_fn fn, void *ctx) {
  char sql[512];
  const char *ge = desc ? "<=" : ">=";
  const char *le = desc ? (incl_end ? ">=" : ">") : (incl_end ? "<=" : "<");
  char c1[64] = "", c2[64] = "";
  if (lo->set) {
    if (lo->doc) snprintf(c1, sizeof c1, " AND (k, doc) %s (?3, ?4)", ge);
    else snprintf(c1, sizeof c1, " AND k %s ?3", ge);
  }
  if (hi->set) {
    if (hi->doc) snprintf(c2, sizeof c2, " AND (k, doc) %s (?5, ?6)", le);
    else snprintf(c2, sizeof c2, " AND k %s ?5", le);
  }
  snprintf(sql, sizeof sql,
           "SELECT doc, key, value FROM vrows WHERE db=?1 AND view=?2%s%s ORDER BY k%s, doc%s, n%s", c1, c2,
           desc ? " DESC" : "", desc ? " DESC" : "", desc ? " DESC" : "");
  sqlite3_stmt *st = kz_db_sql(db, sql);
  if (!st) return KZ_EIO;
  sqlite3_bind_int64(st, 1, dbid);
  sqlite3_bind_text(st, 2, view, -1, SQLITE_STATIC);
  if (lo->set) {
    sqlite3_bind_blob(st, 3, lo->k.data, (int)lo->k.len, SQLITE_STATIC);
    if (lo->doc) sqlite3_bind_text(st, 4, lo->doc, -1, SQLITE_STATIC);
  }
  if (hi->set) {
    sqlite3_bind_blob(st, 5, hi->k.data, (int)hi->k.len, SQLITE_STATIC);
    if (hi->doc) sqlite3_bind_text(st, 6, hi->doc, -1, SQLITE_STATIC);
  }
  int rc = 0, s;
  while ((s = sqlite3_step(st)) == SQLITE_ROW) {
    rc = fn(ctx, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
            (const char *)sqlite3_column_text(st, 2));
    if (rc) break;
  }
  if (!rc && s != SQLITE_DONE) rc = KZ_EIO;
  kz_db_sql_done(db, st);
  return rc < 0 ? rc : 0;
}

/* Rows of the whole view before the walk's start (CouchDB's offset). */
static int64_t count_before(struct kz_db *db, int64_t dbid, const char *view, const struct bound *lo,
                            bool desc) {
  char sql[256];
  const char *lt = desc ? ">" : "<";
  if (!lo->set) return 0;
  if (lo->doc)
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM vrows WHERE db=?1 AND view=?2 AND (k, doc) %s (?3, ?4)", lt);
  else
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM vrows WHERE db=?1 AND view=?2 AND k %s ?3", lt);
  sqlite3_stmt *st = kz_db_sql(db, sql);
  if (!st) return 0;
  sqlite3_bind_int64(st, 1, dbid);
  sqlite3_bind_text(st, 2, view, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 3, lo->k.data, (int)lo->k.len, SQLITE_STATIC);
  if (lo->doc) sqlite3_bind_text(st, 4, lo->doc, -1, SQLITE_STATIC);
  int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  kz_db_sql_done(db, st);
  return n;
}

static int64_t count_all(struct kz_db *db, int64_t dbid, const char *view) {
  sqlite3_stmt *st = kz_db_sql(db, "SELECT n FROM vcounts WHERE db=? AND view=?");
  if (!st) return 0;
  sqlite3_bind_int64(st, 1, dbid);
  sqlite3_bind_text(st, 2, view, -1, SQLITE_STATIC);
  int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  kz_db_sql_done(db, st);
  return n;
}

/* ------------------------------------------------------------------ */
/* Map output                                                          */

struct map_ctx {
  struct kz_db *db;
  int64_t dbid;
  const struct vq *v;
  uint64_t skipped, emitted;
  json_t *rows;
  int err;
};

/* The document include_docs attaches: the one a value names with
 * {"_id": .., "_rev": ..} (CouchDB's linked documents), else the
 * row's own, at its winning revision; JSON null when missing/deleted. */
static json_t *row_doc(struct kz_db *db, int64_t dbid, const char *docid, const json_t *value,
                       const struct kz_db_read_opts *ro) {
  const char *rev = NULL;
  if (json_is_object(value) && json_is_string(json_object_get(value, "_id"))) {
    docid = json_string_value(json_object_get(value, "_id"));
    rev = json_string_value(json_object_get(value, "_rev"));
  }
  struct kz_db_tree t;
  if (kz_db_store_tree(db, dbid, docid, &t)) return json_null();
  json_t *d = NULL;
  int node = kz_db_tree_winner(&t);
  struct kz_db_rev want;
  if (rev) node = kz_db_rev_parse(&want, rev) ? -1 : kz_db_tree_find(&t, &want);
  if (node >= 0 && t.nodes[node].has_body && (rev || !t.nodes[node].deleted))
    (void)kz_db_doc_json(db, dbid, docid, &t, node, ro, &d);
  kz_db_tree_free(&t);
  return d ? d : json_null();
}

static int map_row(void *vctx, const char *doc, const char *key, const char *value) {
  struct map_ctx *c = vctx;
  if (c->emitted >= c->v->limit) return 1;
  if (c->skipped < c->v->skip) {
    c->skipped++;
    return 0;
  }
  json_t *k = json_loads(key, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL), *val = json_loads(value, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  json_t *row = json_pack("{s:s,s:o?,s:o?}", "id", doc, "key", k, "value", val);
  if (!row) {
    c->err = KZ_ENOMEM;
    return KZ_ENOMEM;
  }
  if (c->v->include_docs)
    json_object_set_new(row, "doc", row_doc(c->db, c->dbid, doc, json_object_get(row, "value"), &c->v->ro));
  json_array_append_new(c->rows, row);
  c->emitted++;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Reduce output                                                       */

struct red_ctx {
  const struct vq *v;
  enum kz_db_reduce kind;
  int64_t level; /* -1: exact keys (group=true), 0: everything */
  json_t *gkey;  /* key of the group being accumulated, NULL before the first row */
  bool open;
  int64_t count;
  double sum, min, max, sumsqr;
  bool sum_int_only;
  int64_t isum;
  uint64_t skipped, emitted;
  json_t *rows;
  int err;
};

static json_t *group_key(const struct red_ctx *c, json_t *key) {
  if (c->level == 0) return json_null();
  if (c->level < 0 || !json_is_array(key)) return json_incref(key);
  json_t *g = json_array();
  for (size_t i = 0; i < json_array_size(key) && (int64_t)i < c->level; i++)
    json_array_append(g, json_array_get(key, i));
  return g;
}

static int red_flush(struct red_ctx *c) {
  if (!c->open) return 0;
  c->open = false;
  if (c->skipped < c->v->skip) {
    c->skipped++;
    return 0;
  }
  if (c->emitted >= c->v->limit) return 1;
  json_t *val;
  switch (c->kind) {
  case KZ_DB_REDUCE_SUM:
    val = c->sum_int_only ? json_integer(c->isum) : json_real(c->sum);
    break;
  case KZ_DB_REDUCE_STATS:
    val = json_pack("{s:f,s:I,s:f,s:f,s:f}", "sum", c->sum, "count", (json_int_t)c->count, "min", c->min,
                    "max", c->max, "sumsqr", c->sumsqr);
    break;
  default:
    val = json_integer(c->count);
  }
  json_t *row = json_pack("{s:O,s:o}", "key", c->gkey, "value", val);
  if (!row) return KZ_ENOMEM;
  json_array_append_new(c->rows, row);
  c->emitted++;
  return 0;
}

static int red_row(void *vctx, const char *doc, const char *key, const char *value) {
  (void)doc;
  struct red_ctx *c = vctx;
  json_t *k = json_loads(key, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  json_t *g = k ? group_key(c, k) : NULL;
  json_decref(k);
  if (!g) return KZ_ENOMEM;
  if (c->open && kz_db_collate(c->gkey, g) != 0) {
    int rc = red_flush(c);
    if (rc) {
      json_decref(g);
      return rc;
    }
  }
  if (!c->open) {
    json_decref(c->gkey);
    c->gkey = g;
    c->open = true;
    c->count = 0;
    c->sum = c->sumsqr = 0;
    c->isum = 0;
    c->sum_int_only = true;
  } else {
    json_decref(g);
  }
  if (c->kind != KZ_DB_REDUCE_COUNT) {
    json_t *v = json_loads(value, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!json_is_number(v)) {
      json_decref(v);
      c->err = KZ_EPROTO; /* _sum/_stats of a non-number: CouchDB's builtin_reduce_error */
      return KZ_EPROTO;
    }
    double d = json_number_value(v);
    if (!json_is_integer(v)) c->sum_int_only = false;
    else c->isum += json_integer_value(v);
    if (c->count == 0 || d < c->min) c->min = d;
    if (c->count == 0 || d > c->max) c->max = d;
    c->sum += d;
    c->sumsqr += d * d;
    json_decref(v);
  }
  c->count++;
  return 0;
}

/* ------------------------------------------------------------------ */
/* The endpoint                                                        */

/* Answers for a view that is not native: 404 missing when the design
 * doc does not exist, 404 missing_named_view when it has no such view,
 * 501 when it defines one kz cannot run (JavaScript). */
static void not_native(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info,
                       const char *ddoc, const char *view) {
  char id[600];
  snprintf(id, sizeof id, "_design/%s", ddoc);
  struct kz_db_tree t;
  json_t *body = NULL;
  if (kz_db_store_tree(q->db, info->id, id, &t) == 0) {
    int w = kz_db_tree_winner(&t);
    if (w >= 0 && !t.nodes[w].deleted)
      (void)kz_db_store_rev_body(q->db, info->id, id, &t.nodes[w].rev, &body, NULL);
    kz_db_tree_free(&t);
  }
  if (!body && !kz_db_native_view_find(ddoc, NULL)) {
    kz_db_reply_error(r, 404, "not_found", "missing");
  } else if (!json_object_get(json_object_get(body, "views"), view)) {
    kz_db_reply_error(r, 404, "not_found", "missing_named_view");
  } else {
    kz_db_reply_error(r, 501, "not_implemented",
                      "kz runs Kazoo's views natively; JavaScript views are not supported");
  }
  json_decref(body);
}

static int bound_set(struct bound *b, const json_t *key, const char *doc) {
  b->set = true;
  b->doc = doc;
  return kz_db_collate_key(&b->k, key);
}

int kz_db_api_view(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info,
                   const char *ddoc, const char *view) {
  struct kz_db *db = q->db;
  const struct kz_db_native_view *nv = kz_db_native_view_find(ddoc, view);
  if (!nv) {
    not_native(q, r, info, ddoc, view);
    return 0;
  }
  bool post = kz_slice_eq_cstr(q->method, "POST");
  json_t *body = NULL;
  if (post && (kz_db_require_json(q, r) || kz_db_body_json(q, r, false, &body))) return 0;
  struct vq v;
  struct bound lo = {0}, hi = {0};
  json_t *rows = NULL;
  if (vq_parse(q, r, body, &v)) goto out;
  char vname[128];
  snprintf(vname, sizeof vname, "%s/%s", nv->ddoc, nv->view);
  bool reduce = nv->reduce != KZ_DB_REDUCE_NONE && v.reduce != 0;
  if (v.reduce == 1 && nv->reduce == KZ_DB_REDUCE_NONE) {
    kz_db_reply_error(r, 400, "query_parse_error", "Reduce is invalid for map-only views.");
    goto out;
  }
  if (!reduce && (v.group || v.group_level >= 0) && nv->reduce == KZ_DB_REDUCE_NONE) {
    kz_db_reply_error(r, 400, "query_parse_error", "Invalid use of grouping on a map view.");
    goto out;
  }
  if (reduce && v.include_docs) {
    kz_db_reply_error(r, 400, "query_parse_error", "`include_docs` is invalid for reduce");
    goto out;
  }
  int64_t level = v.group ? -1 : v.group_level >= 0 ? v.group_level : 0;
  if (reduce && v.keys && level == 0 && json_array_size(v.keys) > 1) {
    kz_db_reply_error(r, 400, "query_parse_error", "Multi-key fetches for reduce views must use `group=true`");
    goto out;
  }
  if (!v.keys && v.sk && v.ek) {
    int c = kz_db_collate(v.sk, v.ek);
    if (!c && v.skid && v.ekid) c = strcmp(v.skid, v.ekid) < 0 ? -1 : strcmp(v.skid, v.ekid) > 0;
    if (v.desc ? c < 0 : c > 0) {
      kz_db_reply_error(r, 400, "query_parse_error",
                        v.desc ? "No rows can match your key range, reverse your start_key and end_key or "
                                 "set descending=false"
                               : "No rows can match your key range, reverse your start_key and end_key or "
                                 "set descending=true");
      goto out;
    }
  }
  int err = v.update == UPDATE_BEFORE ? kz_db_views_update(db, info->id, info->update_seq) : 0;
  if (err) {
    kz_db_reply_kzerr(r, err);
    goto out;
  }
  rows = json_array();
  if (!rows) {
    kz_db_reply_kzerr(r, KZ_ENOMEM);
    goto out;
  }
  struct map_ctx mc = {.db = db, .dbid = info->id, .v = &v, .rows = rows};
  struct red_ctx rc = {.v = &v, .kind = nv->reduce, .level = level, .rows = rows};
  row_fn fn = reduce ? red_row : map_row;
  void *ctx = reduce ? (void *)&rc : (void *)&mc;
  int64_t offset = 0;
  if (v.keys) {
    size_t i;
    json_t *k;
    json_array_foreach(v.keys, i, k) {
      struct bound a = {0}, b = {0};
      if (bound_set(&a, k, NULL) || bound_set(&b, k, NULL)) err = KZ_ENOMEM;
      if (!err) err = scan(db, info->id, vname, &a, &b, v.desc, true, fn, ctx);
      /* Each key is its own group, even when two keys collate equal. */
      if (!err && reduce) err = red_flush(&rc);
      kz_buf_free(&a.k);
      kz_buf_free(&b.k);
      if (err < 0) break;
      err = 0;
    }
  } else {
    if ((v.sk && bound_set(&lo, v.sk, v.skid)) || (v.ek && bound_set(&hi, v.ek, v.ekid))) err = KZ_ENOMEM;
    if (!err) err = scan(db, info->id, vname, &lo, &hi, v.desc, v.incl_end, fn, ctx);
    if (!err && reduce) err = red_flush(&rc);
    if (err > 0) err = 0;
    if (!reduce) offset = count_before(db, info->id, vname, &lo, v.desc) + (int64_t)mc.skipped;
  }
  if (!err) err = reduce ? rc.err : mc.err;
  json_decref(rc.gkey);
  if (err == KZ_EPROTO) {
    kz_db_reply_error(r, 500, "builtin_reduce_error", "The builtin reduce function needs numeric values");
    goto out;
  }
  if (err < 0) {
    kz_db_reply_kzerr(r, err);
    goto out;
  }
  json_t *res;
  if (reduce) {
    res = json_pack("{s:o}", "rows", rows);
  } else {
    int64_t total = count_all(db, info->id, vname);
    res = json_pack("{s:I,s:I,s:o}", "total_rows", (json_int_t)total, "offset",
                    (json_int_t)(offset > total ? total : offset), "rows", rows);
  }
  rows = NULL;
  if (res && v.update_seq) json_object_set_new(res, "update_seq", json_integer(info->update_seq));
  kz_db_reply_json(r, 200, res);
  /* The answer is made; a failure here shows at the next query. */
  if (v.update == UPDATE_AFTER && kz_db_views_update(db, info->id, info->update_seq))
    kz_log(db->env, KZ_LOG_WARN, "db", "view index update after a stale query failed");
out:
  json_decref(rows);
  kz_buf_free(&lo.k);
  kz_buf_free(&hi.k);
  vq_free(&v);
  json_decref(body);
  return 0;
}
