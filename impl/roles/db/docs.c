/* docs.c — documents: updates into the revision tree (new_edits true and false), reads, attachments, _local docs. */
#include <stdlib.h>
#include <string.h>

#include "db_int.h"
#include "kz/error.h"
#include "kz/mem.h"

#define CONFLICT_REASON "Document update conflict."

const char *kz_db_docid_check(const struct kz_db *db, const char *id, size_t len) {
  if (len == 0) return "Document id must not be empty";
  if (len > db->cfg.max_docid) return "Document id is too long";
  if (!kz_db_utf8_valid(id, len)) return "Document id must be valid UTF-8";
  if (id[0] == '_') {
    if (len > 8 && !strncmp(id, "_design/", 8)) return NULL;
    if (len > 7 && !strncmp(id, "_local/", 7)) return NULL;
    return "Only reserved document ids may start with underscore.";
  }
  return NULL;
}

static json_t *err_obj(const char *id, const char *error, const char *reason) {
  return json_pack("{s:s?,s:s,s:s}", "id", id, "error", error, "reason", reason);
}

static bool is_special_allowed(const char *k) {
  static const char *const ok[] = {"_id", "_rev", "_attachments", "_deleted", "_revisions",
                                   "_revs_info", "_conflicts", "_deleted_conflicts", "_local_seq"};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    if (!strcmp(k, ok[i])) return true;
  return false;
}

/* ------------------------------------------------------------------ */
/* Tree helpers                                                        */

static int tree_add(struct kz_db_tree *t, const struct kz_db_rev *rev, int parent, bool deleted,
                    bool has_body, int64_t seq) {
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 8;
    struct kz_db_node *nn = kz_realloc(t->nodes, cap * sizeof *nn);
    if (!nn) return -1;
    t->nodes = nn;
    t->cap = cap;
  }
  struct kz_db_node *n = &t->nodes[t->n];
  memset(n, 0, sizeof *n);
  n->rev = *rev;
  n->parent = parent;
  n->deleted = deleted;
  n->has_body = has_body;
  n->seq = seq;
  t->n++;
  kz_db_tree_mark_leaves(t);
  return (int)t->n - 1;
}

static bool is_ancestor(const struct kz_db_tree *t, int anc, int node) {
  for (int i = node; i >= 0; i = t->nodes[i].parent)
    if (i == anc) return true;
  return false;
}

/* The best leaf descending from node (node itself when it is a leaf). */
static int latest_leaf(const struct kz_db_tree *t, int node) {
  int *idx = kz_calloc(t->n ? t->n : 1, sizeof *idx);
  if (!idx) return node;
  size_t n = kz_db_tree_leaves(t, idx);
  int best = node;
  for (size_t i = 0; i < n; i++)
    if (is_ancestor(t, node, idx[i])) {
      best = idx[i];
      break;
    }
  kz_free(idx);
  return best;
}

static int insert_rev_row(struct kz_db *db, int64_t dbid, const char *docid,
                          const struct kz_db_node *n, const struct kz_db_rev *parent,
                          const char *body, const char *atts) {
  sqlite3_stmt *st = kz_db_sql(db,
                               "INSERT OR IGNORE INTO revs(db, doc, gen, hash, pgen, phash, deleted,"
                               " body, atts, seq) VALUES(?,?,?,?,?,?,?,?,?,?)");
  if (!st) return KZ_EIO;
  sqlite3_bind_int64(st, 1, dbid);
  sqlite3_bind_text(st, 2, docid, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, n->rev.gen);
  sqlite3_bind_text(st, 4, n->rev.hash, -1, SQLITE_STATIC);
  if (parent) {
    sqlite3_bind_int64(st, 5, parent->gen);
    sqlite3_bind_text(st, 6, parent->hash, -1, SQLITE_STATIC);
  }
  sqlite3_bind_int(st, 7, n->deleted ? 1 : 0);
  if (body) sqlite3_bind_text(st, 8, body, -1, SQLITE_STATIC);
  if (atts) sqlite3_bind_text(st, 9, atts, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 10, n->seq);
  int rc = sqlite3_step(st);
  kz_db_sql_done(db, st);
  return rc == SQLITE_DONE ? 0 : KZ_EIO;
}

/* Moves an implied revision (node 0 of t, its body in the docs row)
 * into revs before the tree grows past it. */
static int materialize(struct kz_db *db, int64_t dbid, const char *docid, struct kz_db_tree *t) {
  if (!t->implied) return 0;
  const struct kz_db_node *n = &t->nodes[0];
  sqlite3_stmt *st = kz_db_sql(db,
                               "INSERT OR IGNORE INTO revs(db, doc, gen, hash, deleted, body, seq)"
                               " SELECT db, id, ?, ?, ?, body, ? FROM docs WHERE db=? AND id=? AND body IS NOT NULL");
  if (!st) return KZ_EIO;
  sqlite3_bind_int64(st, 1, n->rev.gen);
  sqlite3_bind_text(st, 2, n->rev.hash, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 3, n->deleted ? 1 : 0);
  sqlite3_bind_int64(st, 4, n->seq);
  sqlite3_bind_int64(st, 5, dbid);
  sqlite3_bind_text(st, 6, docid, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  kz_db_sql_done(db, st);
  if (rc != SQLITE_DONE) return KZ_EIO;
  t->implied = false;
  return 0;
}

/* Writes the docs row (winner, deleted, seq) after the tree changed;
 * its body column goes NULL (the tree is in revs now).  The view index
 * catches up with it at the next query (views.c). */
static int doc_row_update(struct kz_db *db, int64_t dbid, const char *docid, struct kz_db_tree *t,
                          int64_t seq) {
  int w = kz_db_tree_winner(t);
  if (w < 0) return KZ_EIO;
  int rc = materialize(db, dbid, docid, t);
  if (rc) return rc;
  char rev[96];
  kz_db_rev_format(&t->nodes[w].rev, rev, sizeof rev);
  sqlite3_stmt *st = kz_db_sql(db,
                               "INSERT INTO docs(db, id, seq, rev, deleted) VALUES(?,?,?,?,?)"
                               " ON CONFLICT(db, id) DO UPDATE SET seq=excluded.seq,"
                               " rev=excluded.rev, deleted=excluded.deleted, body=NULL");
  if (!st) return KZ_EIO;
  sqlite3_bind_int64(st, 1, dbid);
  sqlite3_bind_text(st, 2, docid, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, seq);
  sqlite3_bind_text(st, 4, rev, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 5, t->nodes[w].deleted ? 1 : 0);
  rc = sqlite3_step(st);
  kz_db_sql_done(db, st);
  return rc == SQLITE_DONE ? 0 : KZ_EIO;
}

static int blob_put(struct kz_db *db, int64_t dbid, const char *digest, const void *data, size_t len) {
  sqlite3_stmt *st = kz_db_sql(db, "INSERT OR IGNORE INTO atts(db, digest, data) VALUES(?,?,?)");
  if (!st) return KZ_EIO;
  sqlite3_bind_int64(st, 1, dbid);
  sqlite3_bind_text(st, 2, digest, -1, SQLITE_STATIC);
  sqlite3_bind_blob64(st, 3, len ? data : "", len, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  kz_db_sql_done(db, st);
  return rc == SQLITE_DONE ? 0 : KZ_EIO;
}

/* Reads an attachment body into out.  0, KZ_ENOENT or KZ_EIO. */
static int blob_get(struct kz_db *db, int64_t dbid, const char *digest, struct kz_buf *out) {
  sqlite3_stmt *st = kz_db_sql(db, "SELECT data FROM atts WHERE db=? AND digest=?");
  if (!st) return KZ_EIO;
  sqlite3_bind_int64(st, 1, dbid);
  sqlite3_bind_text(st, 2, digest, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    kz_db_sql_done(db, st);
    return rc == SQLITE_DONE ? KZ_ENOENT : KZ_EIO;
  }
  const void *d = sqlite3_column_blob(st, 0);
  int n = sqlite3_column_bytes(st, 0);
  rc = kz_buf_append(out, d, (size_t)n);
  kz_db_sql_done(db, st);
  return rc;
}

/* A content type fit for a header: visible ASCII and spaces only. */
static bool ctype_ok(const char *s) {
  if (!*s || strlen(s) > 255) return false;
  for (const char *p = s; *p; p++)
    if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) return false;
  return true;
}

/* The stored text of a document's body: compact JSON (the bytes
 * json_dumps gives, see kz_json_write) of its members but the '_'
 * ones, NUL-terminated, in the instance's scratch buffer: valid until
 * the next body_text.  NULL on ENOMEM. */
static const char *body_text(struct kz_db *db, const json_t *doc, size_t *len) {
  struct kz_buf *b = &db->scratch_body;
  kz_buf_reset(b);
  if (kz_json_write(b, doc, KZ_JSON_SKIP_PRIVATE) || kz_buf_reserve(b, 1)) return NULL;
  b->data[b->len] = 0; /* kz_buf keeps a NUL after its bytes */
  *len = b->len;
  return (const char *)b->data;
}

/* The first revision of a document the database has never seen, as
 * an implied tree: the docs row alone, with the body (see store.c).
 * *fresh false (nothing written) when the docs row exists, which its
 * primary key says without loading the tree first: then the tree
 * decides (a conflict, or a deleted document recreated). */
static int insert_fresh(struct kz_db *db, int64_t dbid, const char *docid, bool deleted, const char *btxt,
                        size_t blen, struct kz_db_rev *out, bool *fresh) {
  *fresh = false;
  struct kz_db_rev rev = {.gen = 1};
  kz_db_rev_hash(deleted, NULL, btxt, blen, NULL, 0, rev.hash);
  int64_t seq = 0;
  int rc = kz_db_store_next_seq(db, dbid, &seq);
  if (rc) return rc;
  char rbuf[96];
  kz_db_rev_format(&rev, rbuf, sizeof rbuf);
  sqlite3_stmt *st = kz_db_sql(db, "INSERT INTO docs(db, id, seq, rev, deleted, body) VALUES(?,?,?,?,?,?)");
  if (!st) return KZ_EIO;
  sqlite3_bind_int64(st, 1, dbid);
  sqlite3_bind_text(st, 2, docid, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, seq);
  sqlite3_bind_text(st, 4, rbuf, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 5, deleted ? 1 : 0);
  sqlite3_bind_text(st, 6, btxt, (int)blen, SQLITE_STATIC);
  int s = sqlite3_step(st);
  kz_db_sql_done(db, st);
  if (s == SQLITE_CONSTRAINT) {
    kz_db_store_unnext_seq(db, seq);
    return 0;
  }
  if (s != SQLITE_DONE) return KZ_EIO;
  *out = rev;
  *fresh = true;
  return 0;
}

/* Writes a new revision under `parent` (-1 for a first revision) with
 * the stored body text btxt (NUL-terminated, blen bytes: see body_text)
 * and attachment metadata (owned by the caller).  Returns 0 and
 * the new rev, KZ_ECONFLICT when that exact revision exists, KZ_EIO or
 * KZ_ENOMEM. */
static int write_new_rev(struct kz_db *db, int64_t dbid, const char *docid, struct kz_db_tree *t,
                         int parent, bool deleted, const char *btxt, size_t blen, const json_t *atts,
                         struct kz_db_rev *out) {
  char *atxt = atts && json_object_size(atts) ? json_dumps(atts, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  int rc = KZ_ENOMEM;
  if (!btxt || (atts && json_object_size(atts) && !atxt)) goto out;
  if (t->n == 0 && !atxt) {
    /* A new document without attachments: an implied tree. */
    bool fresh = false;
    rc = insert_fresh(db, dbid, docid, deleted, btxt, blen, out, &fresh);
    if (!rc && !fresh) rc = KZ_EIO; /* its docs row appeared since the tree was loaded */
    goto out;
  }
  struct kz_db_rev rev = {.gen = parent >= 0 ? t->nodes[parent].rev.gen + 1 : 1};
  /* A copy: tree_add may move the nodes. */
  struct kz_db_rev prev_copy = parent >= 0 ? t->nodes[parent].rev : (struct kz_db_rev){0};
  const struct kz_db_rev *prev = parent >= 0 ? &prev_copy : NULL;
  kz_db_rev_hash(deleted, prev, btxt, blen, atxt, atxt ? strlen(atxt) : 0, rev.hash);
  if (kz_db_tree_find(t, &rev) >= 0) {
    rc = KZ_ECONFLICT;
    goto out;
  }
  int64_t seq = 0;
  if ((rc = kz_db_store_next_seq(db, dbid, &seq))) goto out;
  int idx = tree_add(t, &rev, parent, deleted, true, seq);
  if (idx < 0) {
    rc = KZ_ENOMEM;
    goto out;
  }
  if ((rc = insert_rev_row(db, dbid, docid, &t->nodes[idx], prev, btxt, atxt))) goto out;
  if ((rc = doc_row_update(db, dbid, docid, t, seq))) goto out;
  *out = rev;
out:
  free(atxt);
  return rc;
}

/* The node a new_edits write extends: the leaf rev names, or without
 * rev the winner when it is a tombstone (recreating a deleted document
 * extends it), -1 for a new document; -2 when the write conflicts. */
static int edit_parent(const struct kz_db_tree *t, const struct kz_db_rev *rev) {
  if (rev) {
    int parent = kz_db_tree_find(t, rev);
    return parent < 0 || !t->nodes[parent].leaf ? -2 : parent;
  }
  int w = kz_db_tree_winner(t);
  if (w < 0) return -1;
  return t->nodes[w].deleted ? w : -2;
}

/* A success's result: {"ok":true,"id":..,"rev":..} as *result, or its
 * text appended to o->ok_out, or nothing with o->ok_quiet. */
static int ok_result(const struct kz_db_update_opts *o, const char *id, const struct kz_db_rev *rev,
                     json_t **result, int *status) {
  char rbuf[96];
  kz_db_rev_format(rev, rbuf, sizeof rbuf);
  *status = 201;
  if (o->ok_quiet) return 0;
  if (o->ok_out) {
    /* The bytes kz_json_write gives for the object below. */
    struct kz_buf *b = o->ok_out;
    size_t mark = b->len;
    if (kz_buf_append(b, "{\"ok\":true,\"id\":", 16) || kz_json_write_str(b, id, strlen(id)) ||
        kz_buf_append(b, ",\"rev\":", 7) || kz_json_write_str(b, rbuf, strlen(rbuf)) ||
        kz_buf_append_byte(b, '}')) {
      kz_buf_truncate(b, mark);
      return KZ_ENOMEM;
    }
    return 0;
  }
  *result = json_pack("{s:b,s:s,s:s}", "ok", 1, "id", id, "rev", rbuf);
  return *result ? 0 : KZ_ENOMEM;
}

/* ------------------------------------------------------------------ */
/* Attachments in document bodies                                      */

/* Builds the metadata object of a new revision from `in` (the
 * document's _attachments).  Stubs are resolved in `known` (name ->
 * metadata).  Inline data is decoded and stored.  On a client error
 * returns KZ_EPROTO with *status and *res set. */
static int atts_build(struct kz_db *db, int64_t dbid, const char *docid, json_t *in,
                      json_t *known, int64_t gen, json_t **out, int *status, json_t **res) {
  *out = json_object();
  if (!*out) return KZ_ENOMEM;
  if (!in) return 0;
  const char *name;
  json_t *v;
  char reason[300];
  json_object_foreach(in, name, v) {
    if (!json_is_object(v) || !*name) {
      *status = 400;
      *res = err_obj(docid, "bad_request", "Invalid attachment");
      goto proto;
    }
    json_t *stub = json_object_get(v, "stub");
    json_t *data = json_object_get(v, "data");
    if (json_is_true(stub)) {
      json_t *m = known ? json_object_get(known, name) : NULL;
      json_t *dg = json_object_get(v, "digest");
      if (m && json_is_string(dg) && !json_equal(dg, json_object_get(m, "digest"))) m = NULL;
      if (!m) {
        snprintf(reason, sizeof reason, "Invalid attachment stub in %.128s for %.128s", docid, name);
        *status = 412;
        *res = err_obj(docid, "missing_stub", reason);
        goto proto;
      }
      json_object_set(*out, name, m);
      continue;
    }
    if (!json_is_string(data)) {
      *status = 400;
      *res = err_obj(docid, "bad_request",
                     json_object_get(v, "follows") ? "Multipart attachments are not supported"
                                                   : "Attachment has no data");
      goto proto;
    }
    struct kz_buf raw = {0};
    int rc = kz_db_b64_decode(&raw, json_string_value(data), json_string_length(data));
    if (rc) {
      kz_buf_free(&raw);
      if (rc == KZ_ENOMEM) return rc;
      snprintf(reason, sizeof reason, "Invalid attachment data for %.200s", name);
      *status = 400;
      *res = err_obj(docid, "bad_request", reason);
      goto proto;
    }
    char digest[32];
    kz_db_md5_digest(raw.data ? (const void *)raw.data : "", raw.len, digest);
    rc = blob_put(db, dbid, digest, raw.data, raw.len);
    size_t len = raw.len;
    kz_buf_free(&raw);
    if (rc) return rc;
    const char *ct = json_string_value(json_object_get(v, "content_type"));
    if (!ct || !ctype_ok(ct)) ct = "application/octet-stream";
    json_object_set_new(*out, name,
                        json_pack("{s:s,s:s,s:I,s:I}", "content_type", ct, "digest", digest,
                                  "length", (json_int_t)len, "revpos", (json_int_t)gen));
  }
  return 0;
proto:
  json_decref(*out);
  *out = NULL;
  return KZ_EPROTO;
}

/* Every attachment known in any stored revision of the doc (for
 * replicated stubs). */
static json_t *atts_known_all(struct kz_db *db, int64_t dbid, const char *docid) {
  json_t *all = json_object();
  sqlite3_stmt *st = kz_db_sql(db, "SELECT atts FROM revs WHERE db=? AND doc=? AND atts IS NOT NULL");
  if (!st || !all) {
    kz_db_sql_done(db, st);
    return all;
  }
  sqlite3_bind_int64(st, 1, dbid);
  sqlite3_bind_text(st, 2, docid, -1, SQLITE_STATIC);
  while (sqlite3_step(st) == SQLITE_ROW) {
    json_t *a = json_loads((const char *)sqlite3_column_text(st, 0), JSON_ALLOW_NUL, NULL);
    if (json_is_object(a)) json_object_update(all, a);
    json_decref(a);
  }
  kz_db_sql_done(db, st);
  return all;
}

/* ------------------------------------------------------------------ */
/* _local documents                                                    */

static int local_get(struct kz_db *db, int64_t dbid, const char *id, int64_t *rev, json_t **body) {
  sqlite3_stmt *st = kz_db_sql(db, "SELECT rev, body FROM locals WHERE db=? AND id=?");
  if (!st) return KZ_EIO;
  sqlite3_bind_int64(st, 1, dbid);
  sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    kz_db_sql_done(db, st);
    return rc == SQLITE_DONE ? KZ_ENOENT : KZ_EIO;
  }
  *rev = sqlite3_column_int64(st, 0);
  if (body) *body = json_loads((const char *)sqlite3_column_text(st, 1), JSON_ALLOW_NUL, NULL);
  kz_db_sql_done(db, st);
  if (body && !*body) return KZ_EIO;
  return 0;
}

/* Local docs carry "0-N" revisions and no history; the rev given must
 * match the stored one. */
static int local_update(struct kz_db *db, int64_t dbid, const char *id, json_t *doc,
                        const char *rev_str, json_t **result, int *status) {
  int64_t cur = 0;
  int rc = local_get(db, dbid, id, &cur, NULL);
  if (rc && rc != KZ_ENOENT) return rc;
  bool exists = rc == 0;
  int64_t given = 0;
  if (rev_str) {
    struct kz_db_rev r;
    if (kz_db_rev_parse(&r, rev_str)) {
      *status = 400;
      *result = err_obj(id, "bad_request", "Invalid rev format");
      return 0;
    }
    given = strtoll(r.hash, NULL, 10);
  }
  if (exists ? (rev_str && given != cur) : (rev_str && given != 0)) {
    *status = 409;
    *result = err_obj(id, "conflict", CONFLICT_REASON);
    return 0;
  }
  if (exists && !rev_str) {
    *status = 409;
    *result = err_obj(id, "conflict", CONFLICT_REASON);
    return 0;
  }
  bool deleted = json_is_true(json_object_get(doc, "_deleted"));
  sqlite3_stmt *st;
  char revbuf[32];
  if (deleted) {
    if (!exists) {
      *status = 404;
      *result = err_obj(id, "not_found", "missing");
      return 0;
    }
    st = kz_db_sql(db, "DELETE FROM locals WHERE db=? AND id=?");
    if (!st) return KZ_EIO;
    sqlite3_bind_int64(st, 1, dbid);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    snprintf(revbuf, sizeof revbuf, "0-0");
  } else {
    json_t *body = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(doc, k, v) if (k[0] != '_') json_object_set(body, k, v);
    char *txt = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!txt) return KZ_ENOMEM;
    st = kz_db_sql(db, "INSERT INTO locals(db, id, rev, body) VALUES(?,?,?,?) ON CONFLICT(db, id)"
                       " DO UPDATE SET rev=excluded.rev, body=excluded.body");
    if (!st) {
      free(txt);
      return KZ_EIO;
    }
    sqlite3_bind_int64(st, 1, dbid);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, cur + 1);
    sqlite3_bind_text(st, 4, txt, -1, free);
    snprintf(revbuf, sizeof revbuf, "0-%lld", (long long)(cur + 1));
  }
  rc = sqlite3_step(st);
  kz_db_sql_done(db, st);
  if (rc != SQLITE_DONE) return KZ_EIO;
  *status = deleted ? 200 : 201;
  *result = json_pack("{s:b,s:s,s:s}", "ok", 1, "id", id, "rev", revbuf);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Updates                                                             */

/* Parses _revisions {start, ids} into a path newest first; checks it
 * agrees with rev.  Returns the path length, 0 when absent, -1 when
 * invalid. */
static int revisions_path(json_t *revs, const struct kz_db_rev *rev, struct kz_db_rev **out) {
  *out = NULL;
  if (!revs) return 0;
  json_t *start = json_object_get(revs, "start");
  json_t *ids = json_object_get(revs, "ids");
  if (!json_is_integer(start) || !json_is_array(ids) || json_array_size(ids) == 0) return -1;
  json_int_t s = json_integer_value(start);
  size_t n = json_array_size(ids);
  if (s != rev->gen || (json_int_t)n > s || n > 100000) return -1;
  struct kz_db_rev *p = kz_calloc(n, sizeof *p);
  if (!p) return -1;
  for (size_t i = 0; i < n; i++) {
    const char *h = json_string_value(json_array_get(ids, i));
    size_t hl = h ? strlen(h) : 0;
    if (!h || hl == 0 || hl > KZ_DB_REV_HASH_MAX || strchr(h, '"') || strchr(h, '\\')) {
      kz_free(p);
      return -1;
    }
    p[i].gen = s - (json_int_t)i;
    memcpy(p[i].hash, h, hl + 1);
  }
  if (strcmp(p[0].hash, rev->hash)) {
    kz_free(p);
    return -1;
  }
  *out = p;
  return (int)n;
}

int kz_db_doc_update(struct kz_db *db, const struct kz_db_update_opts *o, json_t *doc,
                     json_t **result, int *status) {
  *result = NULL;
  *status = 201;
  char genid[33];
  const char *id = o->docid;
  if (!json_is_object(doc)) {
    *status = 400;
    *result = err_obj(NULL, "bad_request", "Document must be a JSON object");
    return 0;
  }
  json_t *jid = json_object_get(doc, "_id");
  if (!id && jid) {
    if (!json_is_string(jid)) {
      *status = 400;
      *result = err_obj(NULL, "illegal_docid", "Document id must be a string");
      return 0;
    }
    id = json_string_value(jid);
  }
  if (!id) {
    if (!o->new_edits) {
      *status = 400;
      *result = err_obj(NULL, "bad_request", "Document id is required with new_edits=false");
      return 0;
    }
    kz_db_uuid(db, genid);
    id = genid;
  }
  const char *why = kz_db_docid_check(db, id, strlen(id));
  if (why) {
    *status = 400;
    *result = err_obj(id, "illegal_docid", why);
    return 0;
  }
  json_t *jrev = json_object_get(doc, "_rev");
  if (jrev && !json_is_string(jrev)) {
    *status = 400;
    *result = err_obj(id, "bad_request", "Invalid rev format");
    return 0;
  }
  const char *rev_str = json_string_value(jrev);
  if (!strncmp(id, "_local/", 7)) return local_update(db, o->dbid, id, doc, rev_str, result, status);

  struct kz_db_rev rev = {0};
  if (rev_str && kz_db_rev_parse(&rev, rev_str)) {
    *status = 400;
    *result = err_obj(id, "bad_request", "Invalid rev format");
    return 0;
  }
  json_t *jdel = json_object_get(doc, "_deleted");
  bool deleted = json_is_true(jdel);
  json_t *in_atts = json_object_get(doc, "_attachments");
  if (in_atts && !json_is_object(in_atts) && !json_is_null(in_atts)) {
    *status = 400;
    *result = err_obj(id, "bad_request", "_attachments must be an object");
    return 0;
  }
  if (json_is_null(in_atts)) in_atts = NULL;

  /* The body is doc without its '_' members: body_text skips them and
   * the maps never read them, so no copy is made. */
  const char *k;
  json_t *v;
  json_object_foreach(doc, k, v) {
    if (k[0] == '_' && !is_special_allowed(k)) {
      char reason[200];
      snprintf(reason, sizeof reason, "Bad special document member: %.150s", k);
      *status = 400;
      *result = err_obj(id, "doc_validation", reason);
      return 0;
    }
  }
  json_t *body = json_incref(doc);

  struct kz_db_tree t;
  int rc = kz_db_store_tree(db, o->dbid, id, &t);
  if (rc) {
    json_decref(body);
    return rc;
  }
  json_t *atts = NULL, *known = NULL;
  struct kz_db_rev *path = NULL;
  if (o->new_edits) {
    int parent = edit_parent(&t, rev_str ? &rev : NULL);
    if (parent == -2) goto conflict;
    if (in_atts && parent >= 0 && t.nodes[parent].has_body) {
      json_t *pb = NULL;
      rc = kz_db_store_rev_body(db, o->dbid, id, &t.nodes[parent].rev, &pb, &known);
      json_decref(pb);
      if (rc && rc != KZ_ENOENT) goto out;
    }
    int64_t gen = parent >= 0 ? t.nodes[parent].rev.gen + 1 : 1;
    rc = atts_build(db, o->dbid, id, in_atts, known, gen, &atts, status, result);
    if (rc == KZ_EPROTO) {
      rc = 0;
      goto out;
    }
    if (rc) goto out;
    struct kz_db_rev nrev;
    size_t blen = 0;
    const char *btxt = body_text(db, body, &blen);
    rc = write_new_rev(db, o->dbid, id, &t, parent, deleted, btxt, blen, atts, &nrev);
    if (rc == KZ_ECONFLICT) goto conflict;
    if (rc) goto out;
    rev = nrev;
  } else {
    if (!rev_str) {
      *status = 400;
      *result = err_obj(id, "bad_request", "Document rev is required with new_edits=false");
      goto out;
    }
    int plen = revisions_path(json_object_get(doc, "_revisions"), &rev, &path);
    if (plen < 0) {
      *status = 400;
      *result = err_obj(id, "bad_request", "Invalid _revisions");
      goto out;
    }
    if (kz_db_tree_find(&t, &rev) >= 0) goto ok; /* already known: nothing to do */
    if (in_atts) known = atts_known_all(db, o->dbid, id);
    rc = atts_build(db, o->dbid, id, in_atts, known, rev.gen, &atts, status, result);
    if (rc == KZ_EPROTO) {
      rc = 0;
      goto out;
    }
    if (rc) goto out;
    size_t blen = 0;
    const char *btxt = body_text(db, body, &blen);
    char *atxt = json_object_size(atts) ? json_dumps(atts, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    int64_t seq = 0;
    rc = btxt ? kz_db_store_next_seq(db, o->dbid, &seq) : KZ_ENOMEM;
    /* Insert the path oldest-first so each node finds its parent: the
     * oldest node either attaches to a known revision or starts a stem. */
    struct kz_db_rev one = rev;
    struct kz_db_rev *p = plen > 0 ? path : &one;
    int n = plen > 0 ? plen : 1;
    int first_new = n - 1;
    for (int i = 0; i < n; i++)
      if (kz_db_tree_find(&t, &p[i]) >= 0) {
        first_new = i - 1;
        break;
      }
    for (int i = first_new; i >= 0 && !rc; i--) {
      int parent = i + 1 < n ? kz_db_tree_find(&t, &p[i + 1]) : -1;
      bool leaf = i == 0;
      int idx = tree_add(&t, &p[i], parent, leaf && deleted, leaf, seq);
      if (idx < 0) {
        rc = KZ_ENOMEM;
        break;
      }
      rc = insert_rev_row(db, o->dbid, id, &t.nodes[idx], parent >= 0 ? &t.nodes[parent].rev : NULL,
                          leaf ? btxt : NULL, leaf ? atxt : NULL);
    }
    if (!rc) rc = doc_row_update(db, o->dbid, id, &t, seq);
    free(atxt);
    if (rc) goto out;
  }
ok:
  rc = ok_result(o, id, &rev, result, status);
  goto out;
conflict:
  *status = 409;
  *result = err_obj(id, "conflict", CONFLICT_REASON);
  rc = 0;
out:
  kz_free(path);
  json_decref(atts);
  json_decref(known);
  json_decref(body);
  kz_db_tree_free(&t);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Updates straight from a document's text                             */

/* The private members a plain document may have, as kz_json_recode
 * hands them over. */
struct plain_members {
  const char *id, *rev; /* inside the text, without quotes */
  size_t id_len, rev_len;
  bool deleted;
};

/* A string without escapes: "..." whose bytes are its value. */
static bool plain_string(const char *v, size_t n) {
  return n >= 2 && v[0] == '"' && v[n - 1] == '"' && !memchr(v + 1, '\\', n - 2);
}

static int take_member(void *ctx, const char *name, size_t nlen, const char *v, size_t vlen) {
  struct plain_members *m = ctx;
  if (nlen == 3 && !memcmp(name, "_id", 3) && plain_string(v, vlen)) {
    m->id = v + 1;
    m->id_len = vlen - 2;
    return 0;
  }
  if (nlen == 4 && !memcmp(name, "_rev", 4) && plain_string(v, vlen)) {
    m->rev = v + 1;
    m->rev_len = vlen - 2;
    return 0;
  }
  if (nlen == 8 && !memcmp(name, "_deleted", 8)) {
    m->deleted = vlen == 4 && !memcmp(v, "true", 4);
    return 0;
  }
  return 1; /* attachments, _revisions, a bad member...: the general way */
}

int kz_db_doc_update_text(struct kz_db *db, const struct kz_db_update_opts *o, const char *text, size_t len,
                          json_t **result, int *status, bool *taken, size_t *used) {
  *result = NULL;
  *status = 201;
  *taken = false;
  if (used) *used = 0;
  if (!o->new_edits) return 0;
  struct plain_members m = {0};
  struct kz_buf *b = &db->scratch_body;
  kz_buf_reset(b);
  int rc = kz_json_recode(b, text, len, KZ_JSON_ALLOW_NUL | KZ_JSON_OBJECT_ONLY, KZ_DB_JSON_DEPTH, take_member, &m,
                          used);
  if (rc) return rc == KZ_ENOMEM ? rc : 0; /* else b holds the stored text, NUL-terminated as any kz_buf */
  /* The id and rev as C strings (longer ones go the general way). */
  char idbuf[256], revbuf[KZ_DB_REV_HASH_MAX + 32];
  const char *id = o->docid;
  if (!id && m.id) {
    if (m.id_len >= sizeof idbuf) return 0;
    memcpy(idbuf, m.id, m.id_len);
    idbuf[m.id_len] = 0;
    id = idbuf;
  } else if (!id) {
    kz_db_uuid(db, idbuf);
    id = idbuf;
  }
  if (!strncmp(id, "_local/", 7)) return 0;
  if (m.rev) {
    if (m.rev_len >= sizeof revbuf) return 0;
    memcpy(revbuf, m.rev, m.rev_len);
    revbuf[m.rev_len] = 0;
  }
  *taken = true;
  const char *why = kz_db_docid_check(db, id, strlen(id));
  struct kz_db_rev rev = {0};
  if (why || (m.rev && kz_db_rev_parse(&rev, revbuf))) {
    *status = 400;
    *result = why ? err_obj(id, "illegal_docid", why) : err_obj(id, "bad_request", "Invalid rev format");
    return *result ? 0 : KZ_ENOMEM;
  }
  if (!m.rev) {
    bool fresh = false;
    rc = insert_fresh(db, o->dbid, id, m.deleted, (const char *)b->data, b->len, &rev, &fresh);
    if (rc || fresh) return rc ? rc : ok_result(o, id, &rev, result, status);
  }
  struct kz_db_tree t;
  if ((rc = kz_db_store_tree(db, o->dbid, id, &t))) return rc;
  int parent = edit_parent(&t, m.rev ? &rev : NULL);
  if (parent != -2) rc = write_new_rev(db, o->dbid, id, &t, parent, m.deleted, (const char *)b->data, b->len, NULL, &rev);
  kz_db_tree_free(&t);
  if (parent == -2 || rc == KZ_ECONFLICT) {
    *status = 409;
    *result = err_obj(id, "conflict", CONFLICT_REASON);
    return *result ? 0 : KZ_ENOMEM;
  }
  return rc ? rc : ok_result(o, id, &rev, result, status);
}

/* ------------------------------------------------------------------ */
/* Reads                                                               */

static json_t *rev_json(const struct kz_db_rev *r) {
  char b[96];
  kz_db_rev_format(r, b, sizeof b);
  return json_string(b);
}

int kz_db_doc_json(struct kz_db *db, int64_t dbid, const char *docid, const struct kz_db_tree *t,
                   int node, const struct kz_db_read_opts *o, json_t **out) {
  const struct kz_db_node *n = &t->nodes[node];
  json_t *body = NULL, *atts = NULL;
  int rc = kz_db_store_rev_body(db, dbid, docid, &n->rev, &body, &atts);
  if (rc) return rc;
  json_t *d = json_pack("{s:s,s:o}", "_id", docid, "_rev", rev_json(&n->rev));
  if (!d) {
    json_decref(body);
    json_decref(atts);
    return KZ_ENOMEM;
  }
  json_object_update(d, body);
  json_decref(body);
  if (n->deleted) json_object_set_new(d, "_deleted", json_true());
  if (atts && json_object_size(atts)) {
    json_t *out_atts = json_object();
    const char *name;
    json_t *m;
    json_object_foreach(atts, name, m) {
      json_t *a = json_pack("{s:O,s:O,s:O}", "content_type", json_object_get(m, "content_type"),
                            "revpos", json_object_get(m, "revpos"), "digest",
                            json_object_get(m, "digest"));
      if (!a) continue;
      if (o->attachments) {
        struct kz_buf raw = {0}, b64 = {0};
        if (blob_get(db, dbid, json_string_value(json_object_get(m, "digest")), &raw) == 0 &&
            kz_db_b64_encode(&b64, raw.data, raw.len) == 0)
          json_object_set_new(a, "data", json_stringn(b64.len ? (char *)b64.data : "", b64.len));
        kz_buf_free(&raw);
        kz_buf_free(&b64);
      } else {
        json_object_set(a, "length", json_object_get(m, "length"));
        json_object_set_new(a, "stub", json_true());
      }
      json_object_set_new(out_atts, name, a);
    }
    json_object_set_new(d, "_attachments", out_atts);
  }
  json_decref(atts);
  if (o->conflicts || o->deleted_conflicts) {
    int *idx = kz_calloc(t->n, sizeof *idx);
    if (idx) {
      size_t nl = kz_db_tree_leaves(t, idx);
      json_t *c = json_array(), *dc = json_array();
      for (size_t i = 0; i < nl; i++) {
        if (idx[i] == node) continue;
        const struct kz_db_node *l = &t->nodes[idx[i]];
        json_array_append_new(l->deleted ? dc : c, rev_json(&l->rev));
      }
      if (o->conflicts && json_array_size(c)) json_object_set(d, "_conflicts", c);
      if (o->deleted_conflicts && json_array_size(dc)) json_object_set(d, "_deleted_conflicts", dc);
      json_decref(c);
      json_decref(dc);
      kz_free(idx);
    }
  }
  if (o->revs) {
    json_t *ids = json_array();
    for (int i = node; i >= 0; i = t->nodes[i].parent) json_array_append_new(ids, json_string(t->nodes[i].rev.hash));
    json_object_set_new(d, "_revisions", json_pack("{s:I,s:o}", "start", (json_int_t)n->rev.gen, "ids", ids));
  }
  if (o->revs_info) {
    json_t *ri = json_array();
    for (int i = node; i >= 0; i = t->nodes[i].parent) {
      const struct kz_db_node *x = &t->nodes[i];
      json_array_append_new(ri, json_pack("{s:o,s:s}", "rev", rev_json(&x->rev), "status",
                                          !x->has_body ? "missing" : x->deleted ? "deleted" : "available"));
    }
    json_object_set_new(d, "_revs_info", ri);
  }
  if (o->local_seq) json_object_set_new(d, "_local_seq", json_integer(n->seq));
  *out = d;
  return 0;
}

/* Reads the usual read options from the query string. */
static int read_opts(struct kz_db_req *q, struct kz_db_reply *r, struct kz_db_read_opts *o) {
  memset(o, 0, sizeof *o);
  bool meta = false;
  if (kz_db_q_bool(q, r, "revs", &o->revs) || kz_db_q_bool(q, r, "conflicts", &o->conflicts) ||
      kz_db_q_bool(q, r, "deleted_conflicts", &o->deleted_conflicts) ||
      kz_db_q_bool(q, r, "attachments", &o->attachments) ||
      kz_db_q_bool(q, r, "revs_info", &o->revs_info) ||
      kz_db_q_bool(q, r, "local_seq", &o->local_seq) || kz_db_q_bool(q, r, "meta", &meta))
    return KZ_EPROTO;
  if (meta) o->conflicts = o->deleted_conflicts = o->revs_info = true;
  return 0;
}

/* The rev a write names: ?rev= or If-Match (quoted). */
static const char *req_rev(struct kz_db_req *q, char *buf, size_t len) {
  struct kz_slice v = kz_http_query_get(&q->query, "rev");
  if (v.p) return v.p;
  struct kz_slice m = kz_http_msg_header(q->msg, "If-Match");
  if (!m.p) return NULL;
  if (m.len >= 2 && m.p[0] == '"' && m.p[m.len - 1] == '"') m = kz_slice_sub(m, 1, m.len - 2);
  if (m.len + 1 > len) return NULL;
  memcpy(buf, m.p, m.len);
  buf[m.len] = 0;
  return buf;
}

static bool etag_matches(struct kz_db_req *q, const char *etag) {
  struct kz_slice v = kz_http_msg_header(q->msg, "If-None-Match");
  if (!v.p) return false;
  char want[140];
  snprintf(want, sizeof want, "\"%s\"", etag);
  /* A list of tags may be given. */
  size_t i = 0;
  while (i < v.len) {
    size_t j = i;
    while (j < v.len && v.p[j] != ',') j++;
    struct kz_slice one = kz_slice_trim(kz_slice_sub(v, i, j - i));
    if (kz_slice_eq_cstr(one, want) || kz_slice_eq_cstr(one, "*")) return true;
    i = j + 1;
  }
  return false;
}

static void doc_open_revs(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info,
                          const char *docid, struct kz_db_tree *t, const struct kz_db_read_opts *o,
                          bool latest) {
  struct kz_slice v = kz_http_query_get(&q->query, "open_revs");
  json_t *res = json_array();
  int *idx = kz_calloc(t->n ? t->n : 1, sizeof *idx);
  if (!res || !idx) {
    json_decref(res);
    kz_free(idx);
    return kz_db_reply_kzerr(r, KZ_ENOMEM);
  }
  if (kz_slice_eq_cstr(v, "all")) {
    size_t n = kz_db_tree_leaves(t, idx);
    for (size_t i = 0; i < n; i++) {
      json_t *d = NULL;
      if (t->nodes[idx[i]].has_body && kz_db_doc_json(q->db, info->id, docid, t, idx[i], o, &d) == 0)
        json_array_append_new(res, json_pack("{s:o}", "ok", d));
    }
  } else {
    json_t *want = NULL;
    if (kz_db_q_json(q, r, "open_revs", &want)) goto done;
    if (!json_is_array(want)) {
      json_decref(want);
      kz_db_reply_error(r, 400, "bad_request", "Invalid open_revs");
      goto done;
    }
    size_t i;
    json_t *jr;
    json_array_foreach(want, i, jr) {
      struct kz_db_rev rv;
      const char *s = json_string_value(jr);
      if (!s || kz_db_rev_parse(&rv, s)) {
        json_decref(want);
        kz_db_reply_error(r, 400, "bad_request", "Invalid rev format");
        goto done;
      }
      int node = kz_db_tree_find(t, &rv);
      if (node >= 0 && latest) node = latest_leaf(t, node);
      json_t *d = NULL;
      if (node >= 0 && t->nodes[node].has_body &&
          kz_db_doc_json(q->db, info->id, docid, t, node, o, &d) == 0)
        json_array_append_new(res, json_pack("{s:o}", "ok", d));
      else
        json_array_append_new(res, json_pack("{s:s}", "missing", s));
    }
    json_decref(want);
  }
  kz_db_reply_json(r, 200, res);
  res = NULL;
done:
  json_decref(res);
  kz_free(idx);
}

static void doc_get(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info,
                    const char *docid) {
  struct kz_db_read_opts o;
  bool latest = false;
  if (read_opts(q, r, &o) || kz_db_q_bool(q, r, "latest", &latest)) return;
  struct kz_db_tree t;
  int rc = kz_db_store_tree(q->db, info->id, docid, &t);
  if (rc) return kz_db_reply_kzerr(r, rc);
  if (t.n == 0) {
    kz_db_reply_error(r, 404, "not_found", "missing");
    goto out;
  }
  if (kz_http_query_get(&q->query, "open_revs").p) {
    doc_open_revs(q, r, info, docid, &t, &o, latest);
    goto out;
  }
  int node;
  struct kz_slice rv = kz_http_query_get(&q->query, "rev");
  if (rv.p) {
    struct kz_db_rev want;
    if (kz_db_rev_parse(&want, rv.p)) {
      kz_db_reply_error(r, 400, "bad_request", "Invalid rev format");
      goto out;
    }
    node = kz_db_tree_find(&t, &want);
    if (node >= 0 && latest) node = latest_leaf(&t, node);
    if (node < 0 || !t.nodes[node].has_body) {
      kz_db_reply_error(r, 404, "not_found", "missing");
      goto out;
    }
  } else {
    node = kz_db_tree_winner(&t);
    if (t.nodes[node].deleted) {
      kz_db_reply_error(r, 404, "not_found", "deleted");
      goto out;
    }
  }
  kz_db_rev_format(&t.nodes[node].rev, r->etag, sizeof r->etag);
  if (etag_matches(q, r->etag)) {
    r->status = 304;
    goto out;
  }
  json_t *d = NULL;
  rc = kz_db_doc_json(q->db, info->id, docid, &t, node, &o, &d);
  if (rc) kz_db_reply_kzerr(r, rc);
  else kz_db_reply_json(r, 200, d);
out:
  kz_db_tree_free(&t);
}

/* Runs one update in its own transaction and answers with its result. */
static void update_and_reply(struct kz_db_req *q, struct kz_db_reply *r,
                             const struct kz_db_update_opts *o, json_t *doc, int ok_status) {
  struct kz_db *db = q->db;
  json_t *res = NULL;
  int status = 0;
  int rc = kz_db_store_begin(db);
  if (!rc) rc = kz_db_doc_update(db, o, doc, &res, &status);
  if (!rc && status < 300) rc = kz_db_store_commit(db);
  else kz_db_store_rollback(db);
  if (rc) {
    json_decref(res);
    return kz_db_reply_kzerr(r, rc);
  }
  if (status < 300) {
    const char *rev = json_string_value(json_object_get(res, "rev"));
    if (rev) snprintf(r->etag, sizeof r->etag, "%s", rev);
    kz_db_changes_notify(db, o->dbid);
    kz_db_reply_json(r, ok_status ? ok_status : status, res);
  } else {
    json_object_del(res, "id");
    kz_db_reply_json(r, status, res);
  }
}

static void doc_put(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info,
                    const char *docid) {
  json_t *doc = NULL;
  bool new_edits = true;
  if (kz_db_q_bool(q, r, "new_edits", &new_edits)) return;
  if (kz_db_body_json(q, r, false, &doc)) return;
  char buf[128];
  const char *rev = req_rev(q, buf, sizeof buf);
  if (rev && !json_object_get(doc, "_rev")) json_object_set_new(doc, "_rev", json_string(rev));
  struct kz_db_update_opts o = {.new_edits = new_edits, .docid = docid, .dbid = info->id};
  update_and_reply(q, r, &o, doc, 0);
  json_decref(doc);
}

static void doc_delete(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info,
                       const char *docid) {
  char buf[128];
  const char *rev = req_rev(q, buf, sizeof buf);
  if (!rev) return kz_db_reply_error(r, 409, "conflict", CONFLICT_REASON);
  json_t *doc = json_pack("{s:s,s:b}", "_rev", rev, "_deleted", 1);
  struct kz_db_update_opts o = {.new_edits = true, .docid = docid, .dbid = info->id};
  update_and_reply(q, r, &o, doc, 200);
  json_decref(doc);
}

int kz_db_api_post_doc(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info) {
  json_t *doc = NULL;
  if (kz_db_require_json(q, r) || kz_db_body_json(q, r, false, &doc)) return 0;
  struct kz_db_update_opts o = {.new_edits = true, .dbid = info->id};
  update_and_reply(q, r, &o, doc, 0);
  json_decref(doc);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Standalone attachments                                              */

static void att_get(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info,
                    const char *docid, const char *att) {
  struct kz_db_tree t;
  int rc = kz_db_store_tree(q->db, info->id, docid, &t);
  if (rc) return kz_db_reply_kzerr(r, rc);
  json_t *body = NULL, *atts = NULL;
  int node = kz_db_tree_winner(&t);
  struct kz_slice rv = kz_http_query_get(&q->query, "rev");
  if (rv.p) {
    struct kz_db_rev want;
    node = kz_db_rev_parse(&want, rv.p) ? -1 : kz_db_tree_find(&t, &want);
  }
  if (node < 0 || !t.nodes[node].has_body) {
    kz_db_reply_error(r, 404, "not_found", "missing");
    goto out;
  }
  if (!rv.p && t.nodes[node].deleted) {
    kz_db_reply_error(r, 404, "not_found", "deleted");
    goto out;
  }
  rc = kz_db_store_rev_body(q->db, info->id, docid, &t.nodes[node].rev, &body, &atts);
  if (rc) {
    kz_db_reply_kzerr(r, rc);
    goto out;
  }
  json_t *m = atts ? json_object_get(atts, att) : NULL;
  if (!m) {
    kz_db_reply_error(r, 404, "not_found", "Document is missing attachment");
    goto out;
  }
  const char *digest = json_string_value(json_object_get(m, "digest"));
  snprintf(r->etag, sizeof r->etag, "%s", digest ? digest : "");
  if (digest && !strncmp(digest, "md5-", 4)) kz_buf_printf(&r->extra, "Content-MD5: %s\r\n", digest + 4);
  kz_buf_append_cstr(&r->extra, "Accept-Ranges: none\r\n");
  /* The stored type passed ctype_ok, so it is a valid header value. */
  const char *ct = json_string_value(json_object_get(m, "content_type"));
  snprintf(r->ctype, sizeof r->ctype, "%s", ct && ctype_ok(ct) ? ct : "application/octet-stream");
  if (etag_matches(q, r->etag)) {
    r->status = 304;
    goto out;
  }
  kz_buf_reset(&r->body);
  rc = blob_get(q->db, info->id, digest ? digest : "", &r->body);
  if (rc) {
    r->ctype[0] = 0;
    kz_buf_reset(&r->extra);
    kz_db_reply_kzerr(r, rc);
    goto out;
  }
  r->status = 200;
out:
  json_decref(body);
  json_decref(atts);
  kz_db_tree_free(&t);
}

/* PUT (data != NULL) or DELETE (data == NULL) of one attachment. */
static void att_write(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info,
                      const char *docid, const char *att, bool put) {
  struct kz_db *db = q->db;
  char buf[128];
  const char *rev_str = req_rev(q, buf, sizeof buf);
  struct kz_db_rev want = {0};
  if (rev_str && kz_db_rev_parse(&want, rev_str))
    return kz_db_reply_error(r, 400, "bad_request", "Invalid rev format");
  if (!put && !rev_str) return kz_db_reply_error(r, 409, "conflict", CONFLICT_REASON);
  char ct[256] = "application/octet-stream";
  struct kz_slice cts = kz_http_msg_header(q->msg, "Content-Type");
  if (cts.p && cts.len && cts.len < sizeof ct) {
    memcpy(ct, cts.p, cts.len);
    ct[cts.len] = 0;
    if (!ctype_ok(ct)) snprintf(ct, sizeof ct, "application/octet-stream");
  }
  struct kz_db_tree t;
  int rc = kz_db_store_begin(db);
  if (rc) return kz_db_reply_kzerr(r, rc);
  rc = kz_db_store_tree(db, info->id, docid, &t);
  if (rc) {
    kz_db_store_rollback(db);
    return kz_db_reply_kzerr(r, rc);
  }
  json_t *body = NULL, *atts = NULL;
  int parent = -1, w = kz_db_tree_winner(&t);
  if (rev_str) {
    parent = kz_db_tree_find(&t, &want);
    if (parent < 0 || !t.nodes[parent].leaf) goto conflict;
  } else if (w >= 0) {
    if (!t.nodes[w].deleted) goto conflict;
    parent = w;
  }
  if (parent >= 0 && t.nodes[parent].has_body && !t.nodes[parent].deleted) {
    rc = kz_db_store_rev_body(db, info->id, docid, &t.nodes[parent].rev, &body, &atts);
    if (rc) goto fail;
  } else if (!put) {
    kz_db_reply_error(r, 404, "not_found", parent >= 0 ? "deleted" : "missing");
    goto undo;
  }
  if (!body) body = json_object();
  if (!atts) atts = json_object();
  if (!body || !atts) {
    rc = KZ_ENOMEM;
    goto fail;
  }
  if (put) {
    char digest[32];
    kz_db_md5_digest(q->body, q->body_len, digest);
    if ((rc = blob_put(db, info->id, digest, q->body, q->body_len))) goto fail;
    int64_t gen = parent >= 0 ? t.nodes[parent].rev.gen + 1 : 1;
    json_object_set_new(atts, att,
                        json_pack("{s:s,s:s,s:I,s:I}", "content_type", ct, "digest", digest, "length",
                                  (json_int_t)q->body_len, "revpos", (json_int_t)gen));
  } else {
    if (!json_object_get(atts, att)) {
      kz_db_reply_error(r, 404, "not_found", "Document is missing attachment");
      goto undo;
    }
    json_object_del(atts, att);
  }
  struct kz_db_rev nrev;
  size_t blen = 0;
  const char *btxt = body_text(db, body, &blen);
  rc = write_new_rev(db, info->id, docid, &t, parent, false, btxt, blen, atts, &nrev);
  if (rc == KZ_ECONFLICT) goto conflict;
  if (rc) goto fail;
  if ((rc = kz_db_store_commit(db))) goto fail_committed;
  kz_db_changes_notify(db, info->id);
  char rbuf[96];
  kz_db_rev_format(&nrev, rbuf, sizeof rbuf);
  snprintf(r->etag, sizeof r->etag, "%s", rbuf);
  kz_db_reply_json(r, put ? 201 : 200, json_pack("{s:b,s:s,s:s}", "ok", 1, "id", docid, "rev", rbuf));
  goto out;
conflict:
  kz_db_reply_error(r, 409, "conflict", CONFLICT_REASON);
undo:
  kz_db_store_rollback(db);
  goto out;
fail:
  kz_db_store_rollback(db);
fail_committed:
  kz_db_reply_kzerr(r, rc);
out:
  json_decref(body);
  json_decref(atts);
  kz_db_tree_free(&t);
}

int kz_db_api_doc(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info,
                  const char *docid, const char *att) {
  const char *why = kz_db_docid_check(q->db, docid, strlen(docid));
  if (why) {
    kz_db_reply_error(r, 400, "illegal_docid", why);
    return 0;
  }
  bool get = kz_slice_eq_cstr(q->method, "GET") || kz_slice_eq_cstr(q->method, "HEAD");
  bool put = kz_slice_eq_cstr(q->method, "PUT");
  bool del = kz_slice_eq_cstr(q->method, "DELETE");
  if (att) {
    if (!*att || !kz_db_utf8_valid(att, strlen(att))) {
      kz_db_reply_error(r, 400, "bad_request", "Invalid attachment name");
      return 0;
    }
    if (get) att_get(q, r, info, docid, att);
    else if (put || del) att_write(q, r, info, docid, att, put);
    else {
      kz_db_reply_error(r, 405, "method_not_allowed", "Only DELETE,GET,HEAD,PUT allowed");
      kz_buf_append_cstr(&r->extra, "Allow: DELETE,GET,HEAD,PUT\r\n");
    }
    return 0;
  }
  if (get) doc_get(q, r, info, docid);
  else if (put) doc_put(q, r, info, docid);
  else if (del) doc_delete(q, r, info, docid);
  else {
    kz_db_reply_error(r, 405, "method_not_allowed", "Only DELETE,GET,HEAD,PUT allowed");
    kz_buf_append_cstr(&r->extra, "Allow: DELETE,GET,HEAD,PUT\r\n");
  }
  return 0;
}

int kz_db_api_local(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info,
                    const char *name) {
  char id[600];
  size_t nl = strlen(name);
  if (nl == 0 || nl > q->db->cfg.max_docid || !kz_db_utf8_valid(name, nl)) {
    kz_db_reply_error(r, 400, "illegal_docid", nl ? "Document id is too long" : "Document id must not be empty");
    return 0;
  }
  snprintf(id, sizeof id, "_local/%s", name);
  struct kz_db *db = q->db;
  if (kz_slice_eq_cstr(q->method, "GET") || kz_slice_eq_cstr(q->method, "HEAD")) {
    int64_t rev = 0;
    json_t *body = NULL;
    int rc = local_get(db, info->id, id, &rev, &body);
    if (rc == KZ_ENOENT) kz_db_reply_error(r, 404, "not_found", "missing");
    else if (rc) kz_db_reply_kzerr(r, rc);
    else {
      char rb[32];
      snprintf(rb, sizeof rb, "0-%lld", (long long)rev);
      json_t *d = json_pack("{s:s,s:s}", "_id", id, "_rev", rb);
      json_object_update(d, body);
      kz_db_reply_json(r, 200, d);
    }
    json_decref(body);
    return 0;
  }
  bool put = kz_slice_eq_cstr(q->method, "PUT"), del = kz_slice_eq_cstr(q->method, "DELETE");
  if (!put && !del) {
    kz_db_reply_error(r, 405, "method_not_allowed", "Only DELETE,GET,HEAD,PUT allowed");
    return 0;
  }
  json_t *doc = NULL;
  if (put && kz_db_body_json(q, r, false, &doc)) return 0;
  if (del) doc = json_pack("{s:b}", "_deleted", 1);
  char buf[128];
  const char *rev = req_rev(q, buf, sizeof buf);
  if (rev && !json_object_get(doc, "_rev")) json_object_set_new(doc, "_rev", json_string(rev));
  if (del && !json_object_get(doc, "_rev")) {
    json_decref(doc);
    kz_db_reply_error(r, 409, "conflict", CONFLICT_REASON);
    return 0;
  }
  struct kz_db_update_opts o = {.new_edits = true, .docid = id, .dbid = info->id};
  update_and_reply(q, r, &o, doc, 0);
  r->etag[0] = 0;
  json_decref(doc);
  return 0;
}
