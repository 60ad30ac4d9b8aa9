/* bulk.c — multi-document endpoints: _bulk_docs, _all_docs, _revs_diff and _bulk_get. */
#include <string.h>

#include "db_int.h"
#include "kz/error.h"
#include "kz/mem.h"

/* ------------------------------------------------------------------ */
/* _bulk_docs                                                          */

/* The happy path reads a request's documents one at a time, each
 * written and forgotten before the next: a request's memory is then one
 * document's, not a thousand documents' trees alive at once.  Plain
 * documents are written from their text (kz_db_doc_update_text), the
 * others parsed one by one.  A pass over the top-level members checks
 * the body's shape; when the body holds the bytes "new_edits" nowhere,
 * the request means new_edits=true whatever the rest says, and that
 * same pass writes the documents as it meets them (one walk over the
 * body); otherwise the pass runs first, to find new_edits (PouchDB
 * sends it after the documents), and the documents are written in a
 * second walk.  Any shape the pass is not sure of — an escape or a
 * non-ASCII byte in a member name, a member given twice, "docs" not an
 * array, "new_edits" not a boolean — goes the general way (the whole
 * body parsed first; whatever one pass wrote is rolled back), which
 * answers every such request as before; a document that is not JSON
 * refuses the whole request (the transaction is rolled back). */

static size_t ws(const char *p, size_t i, size_t n) {
  while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) i++;
  return i;
}

/* The end of the JSON value at p[i] (strings by their quotes and
 * escapes, containers by their brackets), or 0 when the text ends
 * first.  It finds boundaries only: the parser validates the value. */
static size_t skip_value(const char *p, size_t i, size_t n) {
  size_t depth = 0;
  while (i < n) {
    char c = p[i];
    if (c == '"') {
      /* To the next quote not escaped (memchr: most of a document is
       * inside strings). */
      for (i++;; i++) {
        const char *q = memchr(p + i, '"', n - i);
        if (!q) return 0;
        i = (size_t)(q - p);
        size_t bs = 0;
        while (p[i - 1 - bs] == '\\') bs++;
        if (bs % 2 == 0) break;
      }
      i++;
    } else if (c == '{' || c == '[') {
      depth++;
      i++;
    } else if (c == '}' || c == ']') {
      if (depth == 0) return i; /* the end of an enclosing container */
      depth--;
      i++;
    } else if (depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
      return i;
    } else {
      i++;
    }
    if (depth == 0 && (c == '"' || c == '}' || c == ']')) return i;
  }
  return depth == 0 ? i : 0;
}

/* Whether the bytes "new_edits" occur in p[0..n) (found by its rarer
 * 'w', memmem being a GNU extension). */
static bool mentions_new_edits(const char *p, size_t n) {
  for (size_t i = 2; i + 7 <= n;) {
    const char *w = memchr(p + i, 'w', n - i - 6);
    if (!w) return false;
    i = (size_t)(w - p);
    if (!memcmp(w - 2, "new_edits", 9)) return true;
    i++;
  }
  return false;
}

/* One request's writing: where results go and what happened. */
struct bulk_run {
  struct kz_db *db;
  const struct kz_db_update_opts *o;
  struct kz_buf *ok, *out;
  bool first, changed;
  bool bad; /* a document is not JSON: the request is refused */
};

/* Appends one document's result to the reply's array: successes as the
 * text in ok, failures from their error objects (replication,
 * new_edits=false, only hears about failures). */
static int bulk_result(struct bulk_run *w, json_t *res, int status) {
  int rc = 0;
  if (res || w->ok->len) {
    if (!w->first) rc = kz_buf_append_byte(w->out, ',');
    if (!rc) rc = res ? kz_json_write(w->out, res, KZ_JSON_ENCODE_ANY) : kz_buf_append(w->out, w->ok->data, w->ok->len);
    w->first = false;
  }
  json_decref(res);
  if (!rc && status < 300) w->changed = true;
  return rc;
}

/* One parsed document of a request: written, its result appended. */
static int bulk_one(struct bulk_run *w, json_t *doc) {
  json_t *res = NULL;
  int status = 0;
  kz_buf_reset(w->ok);
  int rc = kz_db_doc_update(w->db, w->o, doc, &res, &status);
  if (rc) {
    json_decref(res);
    return rc;
  }
  return bulk_result(w, res, status);
}

/* Each element of the "docs" array at p[at] ('['), taken alone: from
 * its text when it is a plain document, else parsed.  *end gets the
 * index after the ']'.  When one is not JSON, w->bad is set and
 * KZ_EPROTO returned. */
static int bulk_stream(struct bulk_run *w, const char *p, size_t n, size_t at, size_t *end) {
  size_t i = ws(p, at + 1, n);
  if (i < n && p[i] == ']') {
    *end = i + 1;
    return 0;
  }
  for (;;) {
    json_t *res = NULL;
    int status = 0;
    bool taken = false;
    size_t used = 0;
    kz_buf_reset(w->ok);
    int rc = kz_db_doc_update_text(w->db, w->o, p + i, n - i, &res, &status, &taken, &used);
    if (rc) {
      json_decref(res);
      return rc;
    }
    size_t e = used ? i + used : skip_value(p, i, n);
    if (taken) {
      rc = bulk_result(w, res, status);
    } else {
      json_t *doc = e > i ? kz_db_json_parse(p + i, e - i) : NULL;
      if (!doc) break;
      rc = bulk_one(w, doc);
      json_decref(doc);
    }
    if (rc) return rc;
    i = ws(p, e, n);
    if (i < n && p[i] == ']') {
      *end = i + 1;
      return 0;
    }
    if (i >= n || p[i] != ',') break;
    i = ws(p, i + 1, n);
  }
  w->bad = true;
  return KZ_EPROTO;
}

struct bulk_shape {
  size_t docs_at; /* the '[' of "docs" */
  bool new_edits;
};

enum { SHAPE_PLAIN = 0, SHAPE_ODD = 1 }; /* else a kz error (<0) */

/* The pass over the top-level members: SHAPE_PLAIN when the body is
 * one object whose members are plain, each named once, with "docs" an
 * array and "new_edits" (if any) a boolean; SHAPE_ODD when it is not.
 * With w set, the documents are written as "docs" is met (a document
 * that is not JSON: w->bad and KZ_EPROTO). */
static int bulk_shape(const char *p, size_t n, struct bulk_shape *sh, struct bulk_run *w) {
  bool have_docs = false, have_ne = false;
  sh->new_edits = true;
  size_t i = ws(p, 0, n);
  if (i >= n || p[i] != '{') return SHAPE_ODD;
  i = ws(p, i + 1, n);
  if (i < n && p[i] == '}') return SHAPE_ODD; /* no docs: the general way says so */
  for (;;) {
    if (i >= n || p[i] != '"') return SHAPE_ODD;
    size_t k = ++i;
    while (i < n && p[i] != '"' && p[i] != '\\' && (uint8_t)p[i] >= 0x20 && (uint8_t)p[i] < 0x80) i++;
    if (i >= n || p[i] != '"') return SHAPE_ODD;
    size_t klen = i - k;
    i = ws(p, i + 1, n);
    if (i >= n || p[i] != ':') return SHAPE_ODD;
    i = ws(p, i + 1, n);
    if (i >= n) return SHAPE_ODD;
    bool is_docs = klen == 4 && !memcmp(p + k, "docs", 4);
    size_t e = 0;
    if (is_docs && w && !have_docs && p[i] == '[') {
      int rc = bulk_stream(w, p, n, i, &e);
      if (rc) return rc;
    } else {
      e = skip_value(p, i, n);
    }
    if (!e || e == i) return SHAPE_ODD;
    if (is_docs) {
      if (have_docs || p[i] != '[') return SHAPE_ODD;
      have_docs = true;
      sh->docs_at = i;
    } else if (klen == 9 && !memcmp(p + k, "new_edits", 9)) {
      if (have_ne) return SHAPE_ODD;
      have_ne = true;
      if (e - i == 4 && !memcmp(p + i, "true", 4)) sh->new_edits = true;
      else if (e - i == 5 && !memcmp(p + i, "false", 5)) sh->new_edits = false;
      else return SHAPE_ODD;
    } else {
      /* Any other member must be JSON too (it is then ignored). */
      json_t *v = kz_db_json_parse(p + i, e - i);
      if (!v) return SHAPE_ODD;
      json_decref(v);
    }
    i = ws(p, e, n);
    if (i < n && p[i] == ',') {
      i = ws(p, i + 1, n);
      continue;
    }
    if (i < n && p[i] == '}') break;
    return SHAPE_ODD;
  }
  return have_docs && ws(p, i + 1, n) == n ? SHAPE_PLAIN : SHAPE_ODD;
}

int kz_db_api_bulk_docs(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info) {
  struct kz_db *db = q->db;
  if (kz_db_require_json(q, r)) return 0;
  enum { ONE_PASS, TWO_PASSES, PARSED } how = ONE_PASS;
  struct bulk_shape sh = {.new_edits = true};
  if (mentions_new_edits(q->body, q->body_len))
    how = bulk_shape(q->body, q->body_len, &sh, NULL) == SHAPE_PLAIN ? TWO_PASSES : PARSED;
  json_t *body = NULL, *docs = NULL;
  struct kz_buf ok = {0};
  int rc;
again:
  if (how == PARSED) {
    if (kz_db_body_json(q, r, false, &body)) goto done;
    docs = json_object_get(body, "docs");
    json_t *ne = json_object_get(body, "new_edits");
    if (!json_is_array(docs)) {
      kz_db_reply_error(r, 400, "bad_request", "POST body must include `docs` parameter.");
      goto done;
    }
    if (ne && !json_is_boolean(ne)) {
      kz_db_reply_error(r, 400, "bad_request", "`new_edits` parameter must be a boolean.");
      goto done;
    }
    sh.new_edits = !json_is_false(ne);
  }
  /* The reply's array is written as the documents go, straight into
   * the reply body. */
  struct kz_db_update_opts o = {.new_edits = sh.new_edits, .dbid = info->id};
  o.ok_out = o.new_edits ? &ok : NULL;
  o.ok_quiet = !o.new_edits;
  struct bulk_run w = {.db = db, .o = &o, .ok = &ok, .out = &r->body, .first = true};
  kz_buf_reset(w.out);
  /* About 80 bytes a result (a document is several times that): one
   * allocation instead of a dozen.  Replication hears of failures only. */
  size_t guess = !o.new_edits ? 64 : how != PARSED ? q->body_len / 4 : json_array_size(docs) * 80;
  rc = kz_buf_reserve(w.out, 2 + (guess < 8000000 ? guess : 8000000));
  if (!rc) rc = kz_buf_append_byte(w.out, '[');
  if (!rc) rc = kz_db_store_begin(db);
  if (!rc) {
    if (how == ONE_PASS) {
      rc = bulk_shape(q->body, q->body_len, &sh, &w);
      if (rc == SHAPE_ODD) {
        /* Not the plain shape after all: undo what the pass wrote and
         * read the body whole. */
        kz_db_store_rollback(db);
        how = PARSED;
        goto again;
      }
    } else if (how == TWO_PASSES) {
      size_t end;
      rc = bulk_stream(&w, q->body, q->body_len, sh.docs_at, &end);
    } else {
      size_t i;
      json_t *doc;
      json_array_foreach(docs, i, doc) {
        rc = bulk_one(&w, doc);
        if (rc) break;
        /* Done with it: free its tree now, while its memory is hot. */
        json_array_set_new(docs, i, json_null());
      }
    }
    if (!rc) rc = kz_buf_append_byte(w.out, ']');
    if (!rc) rc = kz_db_store_commit(db);
    else kz_db_store_rollback(db);
  }
  if (w.bad) {
    kz_db_reply_error(r, 400, "bad_request", "invalid UTF-8 JSON");
  } else if (rc) {
    kz_db_reply_kzerr(r, rc);
  } else {
    if (w.changed) kz_db_changes_notify(db, info->id);
    r->status = 201;
  }
done:
  kz_buf_free(&ok);
  json_decref(body);
  return 0;
}

/* ------------------------------------------------------------------ */
/* _all_docs                                                           */

/* Where a JSON key falls against document ids (strings) in CouchDB's
 * collation: null, booleans and numbers sort before every string,
 * arrays and objects after. */
enum bound { B_NONE, B_LOW, B_STR, B_HIGH };

static enum bound classify(const json_t *k) {
  if (!k) return B_NONE;
  if (json_is_string(k)) return B_STR;
  if (json_is_array(k) || json_is_object(k)) return B_HIGH;
  return B_LOW;
}

static json_t *row_for(struct kz_db *db, const struct kz_db_dbinfo *info, const char *id,
                       const char *rev, bool deleted, bool include_docs, const struct kz_db_read_opts *ro) {
  json_t *value = json_pack("{s:s}", "rev", rev);
  if (deleted) json_object_set_new(value, "deleted", json_true());
  json_t *row = json_pack("{s:s,s:s,s:o}", "id", id, "key", id, "value", value);
  if (!row || !include_docs) return row;
  if (deleted) {
    json_object_set_new(row, "doc", json_null());
    return row;
  }
  struct kz_db_tree t;
  if (kz_db_store_tree(db, info->id, id, &t) == 0) {
    int w = kz_db_tree_winner(&t);
    json_t *d = NULL;
    if (w >= 0 && kz_db_doc_json(db, info->id, id, &t, w, ro, &d) == 0)
      json_object_set_new(row, "doc", d);
    kz_db_tree_free(&t);
  }
  return row;
}

int kz_db_api_all_docs(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *cinfo) {
  struct kz_db *db = q->db;
  struct kz_db_dbinfo info = *cinfo;
  bool include_docs = false, desc = false, inclusive_end = true, update_seq = false;
  uint64_t limit = UINT64_C(1) << 53, skip = 0;
  struct kz_db_read_opts ro = {0};
  json_t *body = NULL, *keys = NULL, *key = NULL, *sk = NULL, *ek = NULL;
  json_t *rows = NULL;
  sqlite3_stmt *st = NULL;
  if (kz_db_q_bool(q, r, "include_docs", &include_docs) || kz_db_q_bool(q, r, "descending", &desc) ||
      kz_db_q_bool(q, r, "inclusive_end", &inclusive_end) ||
      kz_db_q_bool(q, r, "update_seq", &update_seq) || kz_db_q_bool(q, r, "conflicts", &ro.conflicts) ||
      kz_db_q_bool(q, r, "attachments", &ro.attachments) ||
      kz_db_q_u64(q, r, "limit", &limit, NULL) || kz_db_q_u64(q, r, "skip", &skip, NULL))
    return 0;
  if (kz_db_q_json(q, r, "keys", &keys) || kz_db_q_json(q, r, "key", &key)) goto out;
  if (kz_db_q_json(q, r, "startkey", &sk) || (!sk && kz_db_q_json(q, r, "start_key", &sk))) goto out;
  if (kz_db_q_json(q, r, "endkey", &ek) || (!ek && kz_db_q_json(q, r, "end_key", &ek))) goto out;
  if (kz_slice_eq_cstr(q->method, "POST")) {
    if (kz_db_require_json(q, r) || kz_db_body_json(q, r, false, &body)) goto out;
    json_t *bk = json_object_get(body, "keys");
    if (bk) {
      json_decref(keys);
      keys = json_incref(bk);
    }
  }
  if (keys && !json_is_array(keys)) {
    kz_db_reply_error(r, 400, "bad_request", "`keys` member must be an array.");
    goto out;
  }
  if (key && !keys) {
    keys = json_pack("[O]", key);
  }
  int rc = kz_db_store_db_counts(db, &info);
  if (rc) {
    kz_db_reply_kzerr(r, rc);
    goto out;
  }
  rows = json_array();
  uint64_t offset = skip;
  if (keys) {
    size_t n = json_array_size(keys);
    for (size_t k = skip < n ? (size_t)skip : n; k < n && json_array_size(rows) < limit; k++) {
      size_t i = desc ? n - 1 - k : k;
      json_t *jk = json_array_get(keys, i);
      const char *id = json_string_value(jk);
      st = id ? kz_db_sql(db, "SELECT rev, deleted FROM docs WHERE db=? AND id=?") : NULL;
      if (id && !st) {
        kz_db_reply_kzerr(r, KZ_EIO);
        goto out;
      }
      json_t *row = NULL;
      if (st) {
        sqlite3_bind_int64(st, 1, info.id);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
          row = row_for(db, &info, id, (const char *)sqlite3_column_text(st, 0),
                        sqlite3_column_int(st, 1) != 0, include_docs, &ro);
        kz_db_sql_done(db, st);
        st = NULL;
      }
      if (!row) row = json_pack("{s:O,s:s}", "key", jk, "error", "not_found");
      json_array_append_new(rows, row);
    }
  } else {
    enum bound sb = classify(sk), eb = classify(ek);
    /* Bounds that exclude every string empty the result; bounds that
     * include every string drop out. */
    bool empty = desc ? (sb == B_LOW || eb == B_HIGH) : (sb == B_HIGH || eb == B_LOW);
    if (empty) goto reply;
    bool use_s = sb == B_STR, use_e = eb == B_STR;
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT id, rev FROM docs WHERE db=?1 AND deleted=0%s%s ORDER BY id%s LIMIT ?4 OFFSET ?5",
             use_s ? (desc ? " AND id<=?2" : " AND id>=?2") : "",
             use_e ? (desc ? (inclusive_end ? " AND id>=?3" : " AND id>?3")
                           : (inclusive_end ? " AND id<=?3" : " AND id<?3"))
                   : "",
             desc ? " DESC" : "");
    st = kz_db_sql(db, sql);
    if (!st) {
      kz_db_reply_kzerr(r, KZ_EIO);
      goto out;
    }
    sqlite3_bind_int64(st, 1, info.id);
    if (use_s) sqlite3_bind_text(st, 2, json_string_value(sk), -1, SQLITE_STATIC);
    if (use_e) sqlite3_bind_text(st, 3, json_string_value(ek), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (int64_t)limit);
    sqlite3_bind_int64(st, 5, (int64_t)skip);
    while (sqlite3_step(st) == SQLITE_ROW) {
      json_t *row = row_for(db, &info, (const char *)sqlite3_column_text(st, 0),
                            (const char *)sqlite3_column_text(st, 1), false, include_docs, &ro);
      if (row) json_array_append_new(rows, row);
    }
    kz_db_sql_done(db, st);
    st = NULL;
    if (use_s) {
      st = kz_db_sql(db, desc ? "SELECT COUNT(*) FROM docs WHERE db=? AND deleted=0 AND id>?"
                              : "SELECT COUNT(*) FROM docs WHERE db=? AND deleted=0 AND id<?");
      if (st) {
        sqlite3_bind_int64(st, 1, info.id);
        sqlite3_bind_text(st, 2, json_string_value(sk), -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) offset += (uint64_t)sqlite3_column_int64(st, 0);
        kz_db_sql_done(db, st);
        st = NULL;
      }
    }
  }
reply: {
  json_t *res = json_pack("{s:I,s:I,s:o}", "total_rows", (json_int_t)info.doc_count, "offset",
                          (json_int_t)(keys ? 0 : offset), "rows", rows);
  rows = NULL;
  if (res && update_seq) json_object_set_new(res, "update_seq", json_integer(info.update_seq));
  kz_db_reply_json(r, 200, res);
}
out:
  kz_db_sql_done(db, st);
  json_decref(rows);
  json_decref(body);
  json_decref(keys);
  json_decref(key);
  json_decref(sk);
  json_decref(ek);
  return 0;
}

/* ------------------------------------------------------------------ */
/* _revs_diff                                                          */

int kz_db_api_revs_diff(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info) {
  json_t *body = NULL;
  if (kz_db_require_json(q, r) || kz_db_body_json(q, r, false, &body)) return 0;
  json_t *out = json_object();
  const char *id;
  json_t *revs;
  json_object_foreach(body, id, revs) {
    if (!json_is_array(revs)) {
      kz_db_reply_error(r, 400, "bad_request", "Revisions must be an array");
      goto fail;
    }
    struct kz_db_tree t;
    int rc = kz_db_store_tree(q->db, info->id, id, &t);
    if (rc) {
      kz_db_reply_kzerr(r, rc);
      goto fail;
    }
    json_t *missing = json_array();
    int64_t max_missing = 0;
    size_t i;
    json_t *jr;
    json_array_foreach(revs, i, jr) {
      struct kz_db_rev rv;
      const char *s = json_string_value(jr);
      if (!s || kz_db_rev_parse(&rv, s)) {
        json_decref(missing);
        kz_db_tree_free(&t);
        kz_db_reply_error(r, 400, "bad_request", "Invalid rev format");
        goto fail;
      }
      if (kz_db_tree_find(&t, &rv) < 0) {
        json_array_append(missing, jr);
        if (rv.gen > max_missing) max_missing = rv.gen;
      }
    }
    if (json_array_size(missing)) {
      json_t *entry = json_pack("{s:o}", "missing", missing);
      json_t *anc = json_array();
      for (size_t k = 0; k < t.n; k++)
        if (t.nodes[k].leaf && t.nodes[k].rev.gen < max_missing) {
          char b[96];
          kz_db_rev_format(&t.nodes[k].rev, b, sizeof b);
          json_array_append_new(anc, json_string(b));
        }
      if (json_array_size(anc)) json_object_set_new(entry, "possible_ancestors", anc);
      else json_decref(anc);
      json_object_set_new(out, id, entry);
    } else {
      json_decref(missing);
    }
    kz_db_tree_free(&t);
  }
  json_decref(body);
  kz_db_reply_json(r, 200, out);
  return 0;
fail:
  json_decref(body);
  json_decref(out);
  return 0;
}

/* ------------------------------------------------------------------ */
/* _bulk_get                                                           */

int kz_db_api_bulk_get(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info) {
  struct kz_db_read_opts ro = {0};
  bool latest = false;
  json_t *body = NULL;
  if (kz_db_q_bool(q, r, "revs", &ro.revs) || kz_db_q_bool(q, r, "attachments", &ro.attachments) ||
      kz_db_q_bool(q, r, "latest", &latest))
    return 0;
  if (kz_db_require_json(q, r) || kz_db_body_json(q, r, false, &body)) return 0;
  json_t *docs = json_object_get(body, "docs");
  if (!json_is_array(docs)) {
    json_decref(body);
    kz_db_reply_error(r, 400, "bad_request", "Missing JSON list of 'docs'.");
    return 0;
  }
  json_t *results = json_array();
  size_t i;
  json_t *want;
  json_array_foreach(docs, i, want) {
    const char *id = json_string_value(json_object_get(want, "id"));
    const char *rs = json_string_value(json_object_get(want, "rev"));
    json_t *list = json_array();
    json_t *d = NULL;
    const char *reason = "missing";
    if (!id || kz_db_docid_check(q->db, id, strlen(id))) {
      reason = "invalid id";
    } else {
      struct kz_db_tree t;
      if (kz_db_store_tree(q->db, info->id, id, &t) == 0) {
        int node = kz_db_tree_winner(&t);
        struct kz_db_rev rv;
        if (rs) node = kz_db_rev_parse(&rv, rs) ? -1 : kz_db_tree_find(&t, &rv);
        if (node >= 0 && rs && latest) {
          /* The best leaf that descends from the asked revision. */
          int *idx = kz_calloc(t.n, sizeof *idx);
          if (idx) {
            size_t nl = kz_db_tree_leaves(&t, idx);
            for (size_t k = 0; k < nl; k++) {
              int x = idx[k];
              while (x >= 0 && x != node) x = t.nodes[x].parent;
              if (x == node) {
                node = idx[k];
                break;
              }
            }
            kz_free(idx);
          }
        }
        if (node >= 0 && t.nodes[node].has_body)
          (void)kz_db_doc_json(q->db, info->id, id, &t, node, &ro, &d);
        kz_db_tree_free(&t);
      }
    }
    if (d)
      json_array_append_new(list, json_pack("{s:o}", "ok", d));
    else
      json_array_append_new(list, json_pack("{s:{s:s?,s:s?,s:s,s:s}}", "error", "id", id, "rev", rs,
                                             "error", "not_found", "reason", reason));
    json_array_append_new(results, json_pack("{s:s?,s:o}", "id", id, "docs", list));
  }
  json_decref(body);
  kz_db_reply_json(r, 200, json_pack("{s:o}", "results", results));
  return 0;
}
