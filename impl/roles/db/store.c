/* store.c — the SQLite schema of the db role and its database-level operations. */
#include <string.h>

#include "db_int.h"
#include "kz/error.h"
#include "kz/mem.h"

/* One SQLite file for every CouchDB database of the instance (see
 * kz/db.h).  Tables:
 *   dbs    one row per database: id, name, update_seq, creation time;
 *   docs   one row per document: its last update seq, winning revision
 *          and whether the winner is deleted (drives _all_docs, _changes
 *          and the counts);
 *   revs   the full revision tree: every revision with its parent, its
 *          deleted flag, its body (NULL for ancestors known by id only)
 *          and its attachment metadata;
 *   atts   attachment bodies, content-addressed by MD5 digest per db;
 *   locals _local documents (no tree, no seq).
 * Journal: rollback journal (DELETE) with synchronous=FULL and an
 * exclusive lock held for the instance's life: the simplest crash-safe
 * mode that needs no shared memory. */

static const char *const schema[] = {
    "CREATE TABLE IF NOT EXISTS dbs(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT UNIQUE NOT NULL, update_seq INTEGER NOT NULL DEFAULT 0,"
    " created INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS docs(db INTEGER NOT NULL, id TEXT NOT NULL,"
    " seq INTEGER NOT NULL, rev TEXT NOT NULL, deleted INTEGER NOT NULL,"
    " PRIMARY KEY(db, id)) WITHOUT ROWID",
    "CREATE UNIQUE INDEX IF NOT EXISTS docs_by_seq ON docs(db, seq)",
    "CREATE TABLE IF NOT EXISTS revs(db INTEGER NOT NULL, doc TEXT NOT NULL,"
    " gen INTEGER NOT NULL, hash TEXT NOT NULL, pgen INTEGER, phash TEXT,"
    " deleted INTEGER NOT NULL, body TEXT, atts TEXT, seq INTEGER NOT NULL,"
    " PRIMARY KEY(db, doc, gen, hash))",
    "CREATE TABLE IF NOT EXISTS atts(db INTEGER NOT NULL, digest TEXT NOT NULL,"
    " data BLOB NOT NULL, PRIMARY KEY(db, digest)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS locals(db INTEGER NOT NULL, id TEXT NOT NULL,"
    " rev INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY(db, id)) WITHOUT ROWID",
    "PRAGMA user_version=1",
};

sqlite3_stmt *kz_db_sql(struct kz_db *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db->sql, sql, -1, &st, NULL) != SQLITE_OK) {
    kz_log(db->env, KZ_LOG_ERROR, "db", "sql prepare: %s", sqlite3_errmsg(db->sql));
    sqlite3_finalize(st);
    return NULL;
  }
  return st;
}

int kz_db_sql_exec(struct kz_db *db, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db->sql, sql, NULL, NULL, &err) != SQLITE_OK) {
    kz_log(db->env, KZ_LOG_ERROR, "db", "sql '%s': %s", sql, err ? err : "?");
    sqlite3_free(err);
    return KZ_EIO;
  }
  return 0;
}

static void reseed_sqlite(struct kz_db *db);

int kz_db_store_open(struct kz_db *db) {
  int rc = kz_db_vfs_register(db);
  if (rc) return rc;
  kz_env_prng(db->env, "db.sqlite", &db->sql_prng);
  reseed_sqlite(db);
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(db->path, &db->sql, flags, db->vfs_name) != SQLITE_OK) {
    kz_log(db->env, KZ_LOG_ERROR, "db", "open %s: %s", db->path,
           db->sql ? sqlite3_errmsg(db->sql) : "out of memory");
    goto fail;
  }
  /* Order matters: the journal mode and lock mode before any table. */
  if (kz_db_sql_exec(db, "PRAGMA locking_mode=EXCLUSIVE") ||
      kz_db_sql_exec(db, "PRAGMA journal_mode=DELETE") ||
      kz_db_sql_exec(db, "PRAGMA synchronous=FULL") ||
      kz_db_sql_exec(db, "PRAGMA temp_store=MEMORY") ||
      kz_db_sql_exec(db, "PRAGMA foreign_keys=OFF"))
    goto fail;
  reseed_sqlite(db);
  if (kz_db_sql_exec(db, "BEGIN")) goto fail;
  for (size_t i = 0; i < sizeof schema / sizeof schema[0]; i++)
    if (kz_db_sql_exec(db, schema[i])) {
      kz_db_sql_exec(db, "ROLLBACK");
      goto fail;
    }
  if (kz_db_views_init(db)) {
    kz_db_sql_exec(db, "ROLLBACK");
    goto fail;
  }
  if (kz_db_sql_exec(db, "COMMIT")) goto fail;
  /* Check the file is sane before serving from it. */
  sqlite3_stmt *st = kz_db_sql(db, "PRAGMA quick_check");
  if (!st) goto fail;
  bool ok = sqlite3_step(st) == SQLITE_ROW &&
            !strcmp((const char *)sqlite3_column_text(st, 0), "ok");
  sqlite3_finalize(st);
  if (!ok) {
    kz_log(db->env, KZ_LOG_ERROR, "db", "%s fails its integrity check", db->path);
    goto fail;
  }
  return 0;
fail:
  kz_db_store_close(db);
  return KZ_EIO;
}

void kz_db_store_close(struct kz_db *db) {
  if (db->sql) {
    sqlite3_close_v2(db->sql);
    db->sql = NULL;
  }
  kz_db_vfs_unregister(db);
}

/* SQLite draws its journal checksum nonce from ONE process-wide PRNG
 * that it seeds from the OS.  Reseeding it from this instance's own
 * stream before every transaction keeps the journal's bytes (which the
 * simulator hashes into its trace) a function of the seed, whatever
 * other instances in the process do. */
static void reseed_sqlite(struct kz_db *db) {
  int seed = (int)(kz_prng_next(&db->sql_prng) & 0x7fffffff) | 1;
  sqlite3_test_control(SQLITE_TESTCTRL_PRNG_SEED, seed, (sqlite3 *)NULL);
}

int kz_db_store_begin(struct kz_db *db) {
  reseed_sqlite(db);
  return kz_db_sql_exec(db, "BEGIN IMMEDIATE");
}

int kz_db_store_commit(struct kz_db *db) {
  if (kz_db_sql_exec(db, "COMMIT")) {
    kz_db_store_rollback(db);
    return KZ_EIO;
  }
  db->stats.commits++;
  return 0;
}

void kz_db_store_rollback(struct kz_db *db) {
  if (!sqlite3_get_autocommit(db->sql)) (void)kz_db_sql_exec(db, "ROLLBACK");
}

int kz_db_store_db_get(struct kz_db *db, const char *name, struct kz_db_dbinfo *out) {
  sqlite3_stmt *st = kz_db_sql(db, "SELECT id, update_seq, created FROM dbs WHERE name=?");
  if (!st) return KZ_EIO;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? KZ_ENOENT : KZ_EIO;
  }
  memset(out, 0, sizeof *out);
  out->id = sqlite3_column_int64(st, 0);
  out->update_seq = sqlite3_column_int64(st, 1);
  out->created_wall_ns = sqlite3_column_int64(st, 2);
  sqlite3_finalize(st);
  return 0;
}

int kz_db_store_db_counts(struct kz_db *db, struct kz_db_dbinfo *out) {
  sqlite3_stmt *st =
      kz_db_sql(db, "SELECT COALESCE(SUM(deleted=0),0), COALESCE(SUM(deleted),0) FROM docs WHERE db=?");
  if (!st) return KZ_EIO;
  sqlite3_bind_int64(st, 1, out->id);
  if (sqlite3_step(st) == SQLITE_ROW) {
    out->doc_count = sqlite3_column_int64(st, 0);
    out->doc_del_count = sqlite3_column_int64(st, 1);
  }
  sqlite3_finalize(st);
  st = kz_db_sql(db, "SELECT COALESCE(SUM(LENGTH(body)),0) FROM revs WHERE db=?");
  if (!st) return KZ_EIO;
  sqlite3_bind_int64(st, 1, out->id);
  if (sqlite3_step(st) == SQLITE_ROW) out->size_bytes = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return 0;
}

int kz_db_store_db_create(struct kz_db *db, const char *name) {
  sqlite3_stmt *st = kz_db_sql(db, "INSERT INTO dbs(name, update_seq, created) VALUES(?, 0, ?)");
  if (!st) return KZ_EIO;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, kz_env_wall(db->env));
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc == SQLITE_CONSTRAINT) return KZ_EEXIST;
  return rc == SQLITE_DONE ? 0 : KZ_EIO;
}

int kz_db_store_db_delete(struct kz_db *db, const char *name) {
  struct kz_db_dbinfo info;
  int rc = kz_db_store_db_get(db, name, &info);
  if (rc) return rc;
  static const char *const dels[] = {
      "DELETE FROM docs WHERE db=?", "DELETE FROM revs WHERE db=?",
      "DELETE FROM atts WHERE db=?", "DELETE FROM locals WHERE db=?",
      "DELETE FROM dbs WHERE id=?"};
  for (size_t i = 0; i < sizeof dels / sizeof dels[0]; i++) {
    sqlite3_stmt *st = kz_db_sql(db, dels[i]);
    if (!st) return KZ_EIO;
    sqlite3_bind_int64(st, 1, info.id);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return KZ_EIO;
  }
  return kz_db_views_drop_db(db, info.id);
}

int kz_db_store_next_seq(struct kz_db *db, int64_t dbid, int64_t *seq) {
  sqlite3_stmt *st =
      kz_db_sql(db, "UPDATE dbs SET update_seq=update_seq+1 WHERE id=? RETURNING update_seq");
  if (!st) return KZ_EIO;
  sqlite3_bind_int64(st, 1, dbid);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *seq = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? 0 : KZ_EIO;
}

int kz_db_store_tree(struct kz_db *db, int64_t dbid, const char *docid, struct kz_db_tree *t) {
  memset(t, 0, sizeof *t);
  sqlite3_stmt *st = kz_db_sql(db,
                               "SELECT gen, hash, pgen, phash, deleted, body IS NOT NULL, seq"
                               " FROM revs WHERE db=? AND doc=? ORDER BY gen, hash");
  if (!st) return KZ_EIO;
  sqlite3_bind_int64(st, 1, dbid);
  sqlite3_bind_text(st, 2, docid, -1, SQLITE_STATIC);
  /* Parents are resolved after loading: remember them per node. */
  struct kz_db_rev *parents = NULL;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (t->n == t->cap) {
      size_t cap = t->cap ? t->cap * 2 : 8;
      struct kz_db_node *nn = kz_realloc(t->nodes, cap * sizeof *nn);
      if (!nn) goto nomem;
      t->nodes = nn;
      struct kz_db_rev *np = kz_realloc(parents, cap * sizeof *np);
      if (!np) goto nomem;
      parents = np;
      t->cap = cap;
    }
    struct kz_db_node *n = &t->nodes[t->n];
    memset(n, 0, sizeof *n);
    n->rev.gen = sqlite3_column_int64(st, 0);
    const char *h = (const char *)sqlite3_column_text(st, 1);
    snprintf(n->rev.hash, sizeof n->rev.hash, "%s", h ? h : "");
    struct kz_db_rev *p = &parents[t->n];
    memset(p, 0, sizeof *p);
    if (sqlite3_column_type(st, 3) != SQLITE_NULL) {
      p->gen = sqlite3_column_int64(st, 2);
      snprintf(p->hash, sizeof p->hash, "%s", (const char *)sqlite3_column_text(st, 3));
    }
    n->deleted = sqlite3_column_int(st, 4) != 0;
    n->has_body = sqlite3_column_int(st, 5) != 0;
    n->seq = sqlite3_column_int64(st, 6);
    n->parent = -1;
    t->n++;
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) {
    kz_free(parents);
    kz_db_tree_free(t);
    return KZ_EIO;
  }
  for (size_t i = 0; i < t->n; i++)
    if (parents[i].hash[0]) t->nodes[i].parent = kz_db_tree_find(t, &parents[i]);
  kz_free(parents);
  kz_db_tree_mark_leaves(t);
  return 0;
nomem:
  sqlite3_finalize(st);
  kz_free(parents);
  kz_db_tree_free(t);
  return KZ_ENOMEM;
}

int kz_db_store_rev_body(struct kz_db *db, int64_t dbid, const char *docid,
                         const struct kz_db_rev *r, json_t **body, json_t **atts) {
  *body = NULL;
  if (atts) *atts = NULL;
  sqlite3_stmt *st =
      kz_db_sql(db, "SELECT body, atts FROM revs WHERE db=? AND doc=? AND gen=? AND hash=?");
  if (!st) return KZ_EIO;
  sqlite3_bind_int64(st, 1, dbid);
  sqlite3_bind_text(st, 2, docid, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, r->gen);
  sqlite3_bind_text(st, 4, r->hash, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW || sqlite3_column_type(st, 0) == SQLITE_NULL) {
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? KZ_ENOENT : KZ_EIO;
  }
  const char *b = (const char *)sqlite3_column_text(st, 0);
  *body = json_loads(b, 0, NULL);
  if (atts && sqlite3_column_type(st, 1) != SQLITE_NULL)
    *atts = json_loads((const char *)sqlite3_column_text(st, 1), 0, NULL);
  sqlite3_finalize(st);
  if (!*body || !json_is_object(*body)) {
    json_decref(*body);
    *body = NULL;
    if (atts) {
      json_decref(*atts);
      *atts = NULL;
    }
    return KZ_EIO;
  }
  return 0;
}
