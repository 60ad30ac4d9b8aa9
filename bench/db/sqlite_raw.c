/* sqlite_raw.c — the storage ceiling: the benchmark's documents inserted straight into SQLite with kz's durability settings, no HTTP, no revision tree. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "docgen.h"

/* usage: kz_bench_db_sqlite FILE SINGLE_COUNT BULK_REQUESTS BATCH SECONDS [JOURNAL]
 * Creates FILE afresh with synchronous=FULL, exclusive locking, 16 KiB
 * pages and the
 * journal mode JOURNAL (default DELETE; bench.js passes WAL, kz's store
 * mode, for the ceiling and DELETE for reference), then:
 *   single: SINGLE_COUNT documents, one transaction (BEGIN; INSERT;
 *           COMMIT) each, as each single PUT is one durable commit;
 *   bulk:   BULK_REQUESTS transactions of BATCH inserts each, as each
 *           _bulk_docs request is one commit.
 * One prepared statement, reused.  Each phase also stops after SECONDS.
 * Prints one JSON line per phase, as the HTTP client does. */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void must(sqlite3 *db, int rc, const char *what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    fprintf(stderr, "sqlite_raw: %s: %s\n", what, sqlite3_errmsg(db));
    exit(1);
  }
}

static void exec(sqlite3 *db, const char *sql) { must(db, sqlite3_exec(db, sql, NULL, NULL, NULL), sql); }

static void insert(sqlite3 *db, sqlite3_stmt *st, const char *prefix, unsigned i, unsigned seq) {
  char id[32], body[1024];
  kz_bench_doc_id(id, sizeof id, prefix, i);
  int n = kz_bench_doc_body(body, sizeof body, i);
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, seq);
  sqlite3_bind_text(st, 3, body, n, SQLITE_STATIC);
  must(db, sqlite3_step(st), "insert");
  sqlite3_reset(st);
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: %s FILE SINGLE_COUNT BULK_REQUESTS BATCH SECONDS [JOURNAL]\n", argv[0]);
    return 2;
  }
  const char *file = argv[1];
  unsigned single = (unsigned)strtoul(argv[2], NULL, 10);
  unsigned bulk = (unsigned)strtoul(argv[3], NULL, 10);
  unsigned batch = (unsigned)strtoul(argv[4], NULL, 10);
  double limit = strtod(argv[5], NULL);
  const char *journal = argc > 6 ? argv[6] : "DELETE";
  char pragma[64];
  snprintf(pragma, sizeof pragma, "PRAGMA journal_mode=%s", journal);
  remove(file);
  sqlite3 *db;
  if (sqlite3_open(file, &db) != SQLITE_OK) return 1;
  /* kz's store pragmas (impl/roles/db/store.c), in its order: the
   * ceiling gets every setting kz gets, page size included. */
  exec(db, "PRAGMA locking_mode=EXCLUSIVE");
  exec(db, "PRAGMA page_size=16384");
  exec(db, pragma);
  exec(db, "PRAGMA synchronous=FULL");
  exec(db, "PRAGMA temp_store=MEMORY");
  exec(db, "PRAGMA cache_size=-8192");
  /* A document table shaped like kz's docs+revs, reduced to one row. */
  exec(db, "CREATE TABLE docs(id TEXT PRIMARY KEY, seq INTEGER NOT NULL, body TEXT NOT NULL) WITHOUT ROWID");
  sqlite3_stmt *ins, *begin, *commit;
  must(db, sqlite3_prepare_v2(db, "INSERT INTO docs(id, seq, body) VALUES(?,?,?)", -1, &ins, NULL), "prepare");
  must(db, sqlite3_prepare_v2(db, "BEGIN", -1, &begin, NULL), "prepare");
  must(db, sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL), "prepare");
  unsigned seq = 0, done = 0;
  double t0 = now_s();
  for (unsigned i = 0; i < single && now_s() - t0 <= limit; i++, done++) {
    must(db, sqlite3_step(begin), "begin");
    sqlite3_reset(begin);
    insert(db, ins, "dev", i, ++seq);
    must(db, sqlite3_step(commit), "commit");
    sqlite3_reset(commit);
  }
  double t1 = now_s();
  printf("{\"phase\":\"single\",\"requests\":%u,\"docs\":%u,\"seconds\":%.6f}\n", done, done, t1 - t0);
  unsigned reqs = 0;
  for (unsigned r = 0; r < bulk && now_s() - t1 <= limit; r++, reqs++) {
    must(db, sqlite3_step(begin), "begin");
    sqlite3_reset(begin);
    for (unsigned j = 0; j < batch; j++) insert(db, ins, "blk", r * batch + j, ++seq);
    must(db, sqlite3_step(commit), "commit");
    sqlite3_reset(commit);
  }
  double t2 = now_s();
  printf("{\"phase\":\"bulk\",\"requests\":%u,\"docs\":%u,\"seconds\":%.6f}\n", reqs, reqs * batch, t2 - t1);
  sqlite3_finalize(ins);
  sqlite3_finalize(begin);
  sqlite3_finalize(commit);
  sqlite3_close(db);
  return 0;
}
