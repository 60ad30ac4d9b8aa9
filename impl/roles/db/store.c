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
 *          and the counts), and the body when the document has a single
 *          revision without attachments (its tree is then implied: one
 *          node, no revs row; most documents are written once, and this
 *          is one row and one index entry a document instead of two
 *          rows and two index entries);
 *   revs   the full revision tree of every other document: every
 *          revision with its parent, its deleted flag, its body (NULL
 *          for ancestors known by id only) and its attachment metadata
 *          (an implied revision moves here, body and all, when the
 *          document gets a second one, and docs.body goes NULL);
 *   atts   attachment bodies, content-addressed by MD5 digest per db;
 *   locals _local documents (no tree, no seq).
 * Journal: write-ahead log (WAL) with synchronous=FULL and an
 * exclusive lock held for the instance's life, 16 KiB pages.  In exclusive locking
 * mode SQLite keeps the WAL index in heap memory instead of shared
 * memory, so the VFS needs no xShm methods; a commit is one append to
 * "<path>-wal" and one sync (the rollback journal took about five), and
 * FULL keeps every acknowledged commit across power loss (NORMAL would
 * not sync the WAL on commit).  Checkpoints copy the WAL back into the
 * database file every ~1000 pages. */

static const char *const schema[] = {
    "CREATE TABLE IF NOT EXISTS dbs(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT UNIQUE NOT NULL, update_seq INTEGER NOT NULL DEFAULT 0,"
    " created INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS docs(db INTEGER NOT NULL, id TEXT NOT NULL,"
    " seq INTEGER NOT NULL, rev TEXT NOT NULL, deleted INTEGER NOT NULL, body TEXT,"
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
};

/* ------------------------------------------------------------------ */
/* Prepared statements                                                 */

/* Compiling a statement costs more than running most of ours (the
 * parser was 40% of a bulk write), so every text is compiled once per
 * instance.  Slots are found by a hash of the SQL text (content, not
 * addresses: the table's layout is the same in every run). */
#define STMT_SLOTS 512u /* a power of two */
#define STMT_MAX 384u   /* texts cached at most; the rest are compiled per use */

struct kz_db_stmt_slot {
  uint64_t hash;
  sqlite3_stmt *st; /* NULL: empty */
  bool busy;        /* handed out and not given back yet */
};

static uint64_t sql_hash(const char *s) {
  uint64_t h = UINT64_C(14695981039346656037);
  for (; *s; s++) h = (h ^ (uint8_t)*s) * UINT64_C(1099511628211);
  return h;
}

/* Hashing a statement's text byte by byte, twice per use, was a tenth
 * of a bulk write: most texts are string literals asked for again and
 * again from the same address, so the slot last found for an address
 * is tried first (and checked: a text built in a reused buffer has the
 * same address and other bytes), and kz_db_sql_done finds its slot by
 * the statement's address the same way. */
#define MEMO_AT(p) ((size_t)(((uintptr_t)(p) >> 4) & 63u))

static void memo_note(struct kz_db *db, const char *sql, size_t slot) {
  db->sql_memo[MEMO_AT(sql)].sql = sql;
  db->sql_memo[MEMO_AT(sql)].slot = (uint32_t)slot;
  db->st_memo[MEMO_AT(db->stmts[slot].st)].st = db->stmts[slot].st;
  db->st_memo[MEMO_AT(db->stmts[slot].st)].slot = (uint32_t)slot;
}

sqlite3_stmt *kz_db_sql(struct kz_db *db, const char *sql) {
  struct kz_db_stmt_slot *slot = NULL;
  uint64_t h = 0;
  if (db->stmts) {
    const struct kz_db_sql_memo *m = &db->sql_memo[MEMO_AT(sql)];
    struct kz_db_stmt_slot *e = &db->stmts[m->slot];
    if (m->sql == sql && e->st && !e->busy && !strcmp(sqlite3_sql(e->st), sql)) {
      e->busy = true;
      return e->st;
    }
    h = sql_hash(sql);
    for (size_t i = h & (STMT_SLOTS - 1);; i = (i + 1) & (STMT_SLOTS - 1)) {
      e = &db->stmts[i];
      if (!e->st) {
        if (db->stmts_n < STMT_MAX) slot = e;
        break;
      }
      if (e->hash == h && !strcmp(sqlite3_sql(e->st), sql)) {
        if (!e->busy) {
          e->busy = true;
          memo_note(db, sql, i);
          return e->st;
        }
        break; /* an outer caller is stepping it: compile a private one */
      }
    }
  }
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v3(db->sql, sql, -1, slot ? SQLITE_PREPARE_PERSISTENT : 0, &st, NULL) != SQLITE_OK ||
      !st) {
    kz_log(db->env, KZ_LOG_ERROR, "db", "sql prepare: %s", sqlite3_errmsg(db->sql));
    sqlite3_finalize(st);
    return NULL;
  }
  if (slot) {
    slot->hash = h;
    slot->st = st;
    slot->busy = true;
    db->stmts_n++;
    memo_note(db, sql, (size_t)(slot - db->stmts));
  }
  return st;
}

void kz_db_sql_done(struct kz_db *db, sqlite3_stmt *st) {
  if (!st) return;
  if (db->stmts) {
    struct kz_db_stmt_slot *e = &db->stmts[db->st_memo[MEMO_AT(st)].slot];
    if (db->st_memo[MEMO_AT(st)].st != st || e->st != st) {
      e = NULL;
      uint64_t h = sql_hash(sqlite3_sql(st));
      for (size_t i = h & (STMT_SLOTS - 1); db->stmts[i].st; i = (i + 1) & (STMT_SLOTS - 1))
        if (db->stmts[i].st == st) {
          e = &db->stmts[i];
          break;
        }
    }
    if (e) {
      sqlite3_reset(st);
      sqlite3_clear_bindings(st);
      e->busy = false;
      return;
    }
  }
  sqlite3_finalize(st); /* not cached: compiled for this use only */
}

static void stmts_free(struct kz_db *db) {
  memset(db->sql_memo, 0, sizeof db->sql_memo);
  memset(db->st_memo, 0, sizeof db->st_memo);
  if (!db->stmts) return;
  for (size_t i = 0; i < STMT_SLOTS; i++) sqlite3_finalize(db->stmts[i].st);
  kz_free(db->stmts);
  db->stmts = NULL;
  db->stmts_n = 0;
}

/* Runs one cached statement to completion (BEGIN, COMMIT...). */
static int exec_cached(struct kz_db *db, const char *sql) {
  sqlite3_stmt *st = kz_db_sql(db, sql);
  if (!st) return KZ_EIO;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE) kz_log(db->env, KZ_LOG_ERROR, "db", "sql '%s': %s", sql, sqlite3_errmsg(db->sql));
  kz_db_sql_done(db, st);
  return rc == SQLITE_DONE ? 0 : KZ_EIO;
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

/* Files of user_version 1 have no docs.body: added (NULL in every row,
 * which is what a document with its tree in revs has). */
static int schema_upgrade(struct kz_db *db) {
  sqlite3_stmt *st = kz_db_sql(db, "SELECT COUNT(*) FROM pragma_table_info('docs') WHERE name='body'");
  if (!st) return KZ_EIO;
  bool has = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > 0;
  kz_db_sql_done(db, st);
  if (!has && kz_db_sql_exec(db, "ALTER TABLE docs ADD COLUMN body TEXT")) return KZ_EIO;
  return kz_db_sql_exec(db, "PRAGMA user_version=2");
}

/* PRAGMA journal_mode answers with the mode in force: SQLite keeps the
 * old one when it cannot switch. */
static int set_journal_wal(struct kz_db *db) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db->sql, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK) {
    sqlite3_finalize(st);
    return KZ_EIO;
  }
  bool wal = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) &&
             !strcmp((const char *)sqlite3_column_text(st, 0), "wal");
  sqlite3_finalize(st);
  if (!wal) kz_log(db->env, KZ_LOG_ERROR, "db", "%s: SQLite refused journal_mode=WAL", db->path);
  return wal ? 0 : KZ_EIO;
}

int kz_db_store_open(struct kz_db *db) {
  int rc = kz_db_vfs_register(db);
  if (rc) return rc;
  /* Without the cache every statement is compiled per use: slower, but
   * still correct, so a failed allocation here is not fatal. */
  db->stmts = kz_calloc(STMT_SLOTS, sizeof *db->stmts);
  db->stmts_n = 0;
  db->txn_vcount = kz_calloc(kz_db_native_views_n ? kz_db_native_views_n : 1, sizeof *db->txn_vcount);
  if (!db->txn_vcount) goto fail;
  db->txn_dbid = 0;
  kz_env_prng(db->env, "db.sqlite", &db->sql_prng);
  reseed_sqlite(db);
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(db->path, &db->sql, flags, db->vfs_name) != SQLITE_OK) {
    kz_log(db->env, KZ_LOG_ERROR, "db", "open %s: %s", db->path,
           db->sql ? sqlite3_errmsg(db->sql) : "out of memory");
    goto fail;
  }
  /* Order matters: the lock mode before the journal mode (WAL without
   * shared memory needs the exclusive lock from the first access), and
   * both before any table. */
  if (kz_db_sql_exec(db, "PRAGMA locking_mode=EXCLUSIVE") ||
      /* 16 KiB pages for a new file (an existing one keeps its own): a
       * document write touches several b-trees (revs, docs, the view
       * index), and bigger pages mean fewer splits, fewer levels and
       * fewer WAL frames per commit; bulk writes went ~25% faster. */
      kz_db_sql_exec(db, "PRAGMA page_size=16384") || set_journal_wal(db) ||
      kz_db_sql_exec(db, "PRAGMA synchronous=FULL") ||
      kz_db_sql_exec(db, "PRAGMA temp_store=MEMORY") ||
      /* Pages are read through kz_env, a syscall in real mode (answered
       * from the OS's page cache when hot): SQLite keeps 8 MiB of them.
       * 64 MiB cost a bulk import 7% in first touches of fresh memory
       * (page faults and zeroing) for as long as the cache was filling,
       * and as much memory per instance in simulations. */
      kz_db_sql_exec(db, "PRAGMA cache_size=-8192") ||
      kz_db_sql_exec(db, "PRAGMA foreign_keys=OFF"))
    goto fail;
  reseed_sqlite(db);
  if (kz_db_sql_exec(db, "BEGIN")) goto fail;
  for (size_t i = 0; i < sizeof schema / sizeof schema[0]; i++)
    if (kz_db_sql_exec(db, schema[i])) {
      kz_db_sql_exec(db, "ROLLBACK");
      goto fail;
    }
  if (schema_upgrade(db)) {
    kz_db_sql_exec(db, "ROLLBACK");
    goto fail;
  }
  if (kz_db_views_init(db) || kz_db_store_txn_db(db, 0)) {
    db->txn_dbid = 0;
    kz_db_sql_exec(db, "ROLLBACK");
    goto fail;
  }
  if (kz_db_sql_exec(db, "COMMIT")) goto fail;
  /* Check the file is sane before serving from it. */
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db->sql, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK) {
    sqlite3_finalize(st);
    goto fail;
  }
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
  stmts_free(db);
  if (db->sql) {
    sqlite3_close_v2(db->sql);
    db->sql = NULL;
  }
  kz_free(db->txn_vcount);
  db->txn_vcount = NULL;
  db->txn_dbid = 0;
  kz_buf_free(&db->scratch_body);
  kz_buf_free(&db->scratch_k);
  kz_buf_free(&db->scratch_kt);
  kz_buf_free(&db->scratch_vt);
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

static void txn_forget(struct kz_db *db) {
  db->txn_dbid = 0;
  db->txn_seq_dirty = false;
  db->txn_vcount_dirty = false;
}

int kz_db_store_begin(struct kz_db *db) {
  reseed_sqlite(db);
  txn_forget(db);
  return exec_cached(db, "BEGIN IMMEDIATE");
}

int kz_db_store_commit(struct kz_db *db) {
  if (kz_db_store_txn_db(db, 0) || exec_cached(db, "COMMIT")) {
    kz_db_store_rollback(db);
    return KZ_EIO;
  }
  db->stats.commits++;
  return 0;
}

void kz_db_store_rollback(struct kz_db *db) {
  txn_forget(db);
  if (!sqlite3_get_autocommit(db->sql)) (void)exec_cached(db, "ROLLBACK");
}

int kz_db_store_txn_db(struct kz_db *db, int64_t dbid) {
  if (db->txn_dbid == dbid) return 0;
  if (db->txn_dbid) {
    /* Write back what the previous database reserved. */
    if (db->txn_seq_dirty) {
      sqlite3_stmt *st = kz_db_sql(db, "UPDATE dbs SET update_seq=? WHERE id=?");
      if (!st) return KZ_EIO;
      sqlite3_bind_int64(st, 1, db->txn_seq);
      sqlite3_bind_int64(st, 2, db->txn_dbid);
      int rc = sqlite3_step(st);
      kz_db_sql_done(db, st);
      if (rc != SQLITE_DONE) return KZ_EIO;
      db->txn_seq_dirty = false;
    }
    if (db->txn_vcount_dirty && kz_db_views_flush_counts(db)) return KZ_EIO;
  }
  db->txn_dbid = 0;
  db->txn_seq_dirty = false;
  db->txn_vcount_dirty = false;
  if (!dbid) return 0;
  sqlite3_stmt *st = kz_db_sql(db, "SELECT update_seq FROM dbs WHERE id=?");
  if (!st) return KZ_EIO;
  sqlite3_bind_int64(st, 1, dbid);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) db->txn_seq = sqlite3_column_int64(st, 0);
  kz_db_sql_done(db, st);
  if (rc != SQLITE_ROW) return KZ_EIO;
  memset(db->txn_vcount, 0, kz_db_native_views_n * sizeof *db->txn_vcount);
  db->txn_dbid = dbid;
  return 0;
}

int kz_db_store_db_get(struct kz_db *db, const char *name, struct kz_db_dbinfo *out) {
  sqlite3_stmt *st = kz_db_sql(db, "SELECT id, update_seq, created FROM dbs WHERE name=?");
  if (!st) return KZ_EIO;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    kz_db_sql_done(db, st);
    return rc == SQLITE_DONE ? KZ_ENOENT : KZ_EIO;
  }
  memset(out, 0, sizeof *out);
  out->id = sqlite3_column_int64(st, 0);
  out->update_seq = sqlite3_column_int64(st, 1);
  out->created_wall_ns = sqlite3_column_int64(st, 2);
  kz_db_sql_done(db, st);
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
  kz_db_sql_done(db, st);
  st = kz_db_sql(db, "SELECT (SELECT COALESCE(SUM(LENGTH(body)),0) FROM revs WHERE db=?1)"
                     " + (SELECT COALESCE(SUM(LENGTH(body)),0) FROM docs WHERE db=?1)");
  if (!st) return KZ_EIO;
  sqlite3_bind_int64(st, 1, out->id);
  if (sqlite3_step(st) == SQLITE_ROW) out->size_bytes = sqlite3_column_int64(st, 0);
  kz_db_sql_done(db, st);
  return 0;
}

int kz_db_store_db_create(struct kz_db *db, const char *name) {
  sqlite3_stmt *st = kz_db_sql(db, "INSERT INTO dbs(name, update_seq, created) VALUES(?, 0, ?)");
  if (!st) return KZ_EIO;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, kz_env_wall(db->env));
  int rc = sqlite3_step(st);
  kz_db_sql_done(db, st);
  if (rc == SQLITE_CONSTRAINT) return KZ_EEXIST;
  return rc == SQLITE_DONE ? 0 : KZ_EIO;
}

int kz_db_store_db_delete(struct kz_db *db, const char *name) {
  struct kz_db_dbinfo info;
  int rc = kz_db_store_db_get(db, name, &info);
  if (rc) return rc;
  /* Nothing reserved for it may be written back after it is gone. */
  if (db->txn_dbid == info.id) db->txn_dbid = 0;
  static const char *const dels[] = {
      "DELETE FROM docs WHERE db=?", "DELETE FROM revs WHERE db=?",
      "DELETE FROM atts WHERE db=?", "DELETE FROM locals WHERE db=?",
      "DELETE FROM dbs WHERE id=?"};
  for (size_t i = 0; i < sizeof dels / sizeof dels[0]; i++) {
    sqlite3_stmt *st = kz_db_sql(db, dels[i]);
    if (!st) return KZ_EIO;
    sqlite3_bind_int64(st, 1, info.id);
    rc = sqlite3_step(st);
    kz_db_sql_done(db, st);
    if (rc != SQLITE_DONE) return KZ_EIO;
  }
  return kz_db_views_drop_db(db, info.id);
}

int kz_db_store_next_seq(struct kz_db *db, int64_t dbid, int64_t *seq) {
  int rc = kz_db_store_txn_db(db, dbid);
  if (rc) return rc;
  *seq = ++db->txn_seq;
  db->txn_seq_dirty = true;
  return 0;
}

void kz_db_store_unnext_seq(struct kz_db *db, int64_t seq) {
  if (db->txn_dbid && db->txn_seq == seq) db->txn_seq--;
}

int kz_db_store_tree(struct kz_db *db, int64_t dbid, const char *docid, struct kz_db_tree *t) {
  memset(t, 0, sizeof *t);
  /* The docs row first: no row, no tree; a body there, the tree is that
   * one revision. */
  sqlite3_stmt *st = kz_db_sql(db, "SELECT rev, deleted, seq, body IS NOT NULL FROM docs WHERE db=? AND id=?");
  if (!st) return KZ_EIO;
  sqlite3_bind_int64(st, 1, dbid);
  sqlite3_bind_text(st, 2, docid, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW || !sqlite3_column_int(st, 3)) {
    kz_db_sql_done(db, st);
    if (rc == SQLITE_DONE) return 0;
    if (rc != SQLITE_ROW) return KZ_EIO;
  } else {
    struct kz_db_node n = {.parent = -1, .has_body = true, .leaf = true};
    const char *rev = (const char *)sqlite3_column_text(st, 0);
    n.deleted = sqlite3_column_int(st, 1) != 0;
    n.seq = sqlite3_column_int64(st, 2);
    rc = rev ? kz_db_rev_parse(&n.rev, rev) : KZ_EPROTO;
    kz_db_sql_done(db, st);
    if (rc) return KZ_EIO;
    t->nodes = kz_malloc(sizeof *t->nodes);
    if (!t->nodes) return KZ_ENOMEM;
    t->nodes[0] = n;
    t->n = t->cap = 1;
    t->implied = true;
    return 0;
  }
  st = kz_db_sql(db,
                               "SELECT gen, hash, pgen, phash, deleted, body IS NOT NULL, seq"
                               " FROM revs WHERE db=? AND doc=? ORDER BY gen, hash");
  if (!st) return KZ_EIO;
  sqlite3_bind_int64(st, 1, dbid);
  sqlite3_bind_text(st, 2, docid, -1, SQLITE_STATIC);
  /* Parents are resolved after loading: remember them per node. */
  struct kz_db_rev *parents = NULL;
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
  kz_db_sql_done(db, st);
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
  kz_db_sql_done(db, st);
  kz_free(parents);
  kz_db_tree_free(t);
  return KZ_ENOMEM;
}

int kz_db_store_rev_body(struct kz_db *db, int64_t dbid, const char *docid,
                         const struct kz_db_rev *r, json_t **body, json_t **atts) {
  *body = NULL;
  if (atts) *atts = NULL;
  /* An implied revision's body is in its docs row (no attachments). */
  char rev[96];
  kz_db_rev_format(r, rev, sizeof rev);
  sqlite3_stmt *st = kz_db_sql(db, "SELECT body, NULL FROM docs WHERE db=? AND id=? AND rev=? AND body IS NOT NULL");
  if (!st) return KZ_EIO;
  sqlite3_bind_int64(st, 1, dbid);
  sqlite3_bind_text(st, 2, docid, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, rev, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) {
    kz_db_sql_done(db, st);
    st = kz_db_sql(db, "SELECT body, atts FROM revs WHERE db=? AND doc=? AND gen=? AND hash=?");
    if (!st) return KZ_EIO;
    sqlite3_bind_int64(st, 1, dbid);
    sqlite3_bind_text(st, 2, docid, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, r->gen);
    sqlite3_bind_text(st, 4, r->hash, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
  }
  if (rc != SQLITE_ROW || sqlite3_column_type(st, 0) == SQLITE_NULL) {
    kz_db_sql_done(db, st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? KZ_ENOENT : KZ_EIO;
  }
  /* The stored texts are what kz_json_write wrote: the direct reader
   * takes them (jansson's json_loads was most of a read's time). */
  const char *b = (const char *)sqlite3_column_text(st, 0);
  *body = b ? kz_db_json_parse(b, (size_t)sqlite3_column_bytes(st, 0)) : NULL;
  if (atts && sqlite3_column_type(st, 1) != SQLITE_NULL) {
    const char *a = (const char *)sqlite3_column_text(st, 1);
    *atts = a ? kz_db_json_parse(a, (size_t)sqlite3_column_bytes(st, 1)) : NULL;
  }
  kz_db_sql_done(db, st);
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
