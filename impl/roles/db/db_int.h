/* db_int.h — private types of the db role: instance, connections, store, revision trees, HTTP replies. */
#ifndef KZ_DB_INT_H
#define KZ_DB_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kz/json.h"
#include <sqlite3.h>

#include "kz/buf.h"
#include "kz/db.h"
#include "kz/env.h"
#include "kz/http.h"
#include "kz/http_url.h"
#include "kz/prng.h"

#define KZ_DB_VERSION "3.3.3-kz"
#define KZ_DB_REV_HASH_MAX 64 /* longest accepted revision hash (after "N-") */

struct kz_db_conn;
struct kz_db_waiter;
struct kz_db_stmt_slot;
struct kz_db_repl;
struct kz_http_client;

/* ------------------------------------------------------------------ */
/* The instance                                                        */

struct kz_db {
  struct kz_env *env;
  struct kz_db_cfg cfg;
  char *path;
  struct kz_listener *listener;
  struct kz_db_conn *conns; /* doubly linked, newest first */
  struct kz_db_waiter *waiters; /* pending longpoll _changes, oldest first */
  struct kz_db_stats stats;
  struct kz_prng prng; /* uuids, generated doc ids */
  struct kz_prng sql_prng; /* reseeds SQLite's PRNG (journal nonces) */
  char uuid[33];       /* server uuid for the welcome */

  /* SQLite, reached through our own VFS. */
  sqlite3 *sql;
  sqlite3_vfs *vfs;
  char vfs_name[40];
  uint64_t tmp_counter; /* names of SQLite's temporary files */
  struct kz_db_repl *repls;     /* running replications (replicate.c) */
  struct kz_http_client *http;  /* their client for remote ends, made on first use */
  struct kz_db_peers *peers;    /* keeping current with cfg.peers (peers.c), or NULL */
  int io_error;         /* last kz error a VFS call hit, for logs */

  /* Prepared statements, compiled once and reused (store.c). */
  struct kz_db_stmt_slot *stmts; /* open-addressed by a hash of the SQL text */
  size_t stmts_n;
  /* Shortcuts to slots (store.c): by the address of the SQL text last
   * asked for there, and by statement. */
  struct kz_db_sql_memo { const char *sql; uint32_t slot; } sql_memo[64];
  struct kz_db_st_memo { const sqlite3_stmt *st; uint32_t slot; } st_memo[64];

  /* What the open transaction has reserved but not yet written back
   * (store.c): the update sequence of one database, and the change of
   * each native view's row count in that database (views.c).  Written
   * by kz_db_store_commit, dropped by a rollback. */
  int64_t txn_dbid;      /* 0: nothing reserved */
  int64_t txn_seq;       /* last sequence handed out */
  bool txn_seq_dirty;
  int64_t *txn_vcount;   /* kz_db_native_views_n deltas of txn_dbid */
  bool txn_vcount_dirty;

  /* Scratch buffers reused by every write instead of allocated per
   * document (store.c frees them): the stored text of the body being
   * written (docs.c), and a view row's collation key, key text and
   * value text (views.c).  A bulk write otherwise made and freed a few
   * growing buffers per document, and each one that grew past 1 KiB
   * made glibc's malloc sweep all the small blocks freed before it. */
  struct kz_buf scratch_body;
  struct kz_buf scratch_k, scratch_kt, scratch_vt;
};

/* ------------------------------------------------------------------ */
/* VFS (vfs.c)                                                          */

/* Registers a VFS named "kz-<hex>" whose pAppData is `db`, so SQLite's
 * files go through db->env.  Returns 0, KZ_ENOMEM or KZ_EIO. */
int kz_db_vfs_register(struct kz_db *db);
void kz_db_vfs_unregister(struct kz_db *db);

/* ------------------------------------------------------------------ */
/* Small helpers (util.c)                                               */

/* Base64 (RFC 4648, padded).  Decoding ignores nothing: any character
 * outside the alphabet or bad padding fails with KZ_EPROTO. */
int kz_db_b64_encode(struct kz_buf *out, const uint8_t *in, size_t len);
int kz_db_b64_decode(struct kz_buf *out, const char *in, size_t len);
/* MD5 of data into 16 bytes. */
void kz_db_md5(const void *data, size_t len, uint8_t out[16]);
/* "md5-<base64 of md5>" of data, NUL-terminated (needs 29 bytes). */
void kz_db_md5_digest(const void *data, size_t len, char out[32]);
/* 32 lowercase hex chars from the instance PRNG, NUL-terminated. */
void kz_db_uuid(struct kz_db *db, char out[33]);
/* CouchDB's database name rule: ^[a-z][a-z0-9_$()+/-]*$, plus the
 * system databases _users, _replicator, _global_changes; at most 238 chars. */
bool kz_db_name_valid(const char *name);
/* Valid UTF-8 without NUL. */
bool kz_db_utf8_valid(const char *s, size_t len);
/* Appends j serialised compactly to out: flags beyond JSON_COMPACT and
 * JSON_ENCODE_ANY (e.g. JSON_SORT_KEYS) go through jansson, the rest
 * through kz_json_write.  Returns 0, KZ_EINVAL or KZ_ENOMEM. */
int kz_db_json_dump(struct kz_buf *out, const json_t *j, size_t flags);
/* Documents and requests are read with kz_json_parse(KZ_JSON_ALLOW_NUL,
 * this depth) and written with kz_json_write (kz/json.h). */
#define KZ_DB_JSON_DEPTH 256

/* ------------------------------------------------------------------ */
/* Revisions (rev.c)                                                    */

struct kz_db_rev {
  int64_t gen;
  char hash[KZ_DB_REV_HASH_MAX + 1];
};

/* Parses "<gen>-<hash>" (gen >= 0 decimal, hash 1..64 visible chars).
 * Returns 0 or KZ_EPROTO. */
int kz_db_rev_parse(struct kz_db_rev *out, const char *s);
/* "<gen>-<hash>" into buf (at least 96 bytes). */
void kz_db_rev_format(const struct kz_db_rev *r, char *buf, size_t len);

/* One node of a document's revision tree, as loaded from table revs. */
struct kz_db_node {
  struct kz_db_rev rev;
  int parent;     /* index in the tree, -1 for a root */
  bool deleted;
  bool has_body;  /* false for ancestors known only by id (stubs) */
  bool leaf;
  int64_t seq;    /* update sequence that stored it */
};

struct kz_db_tree {
  struct kz_db_node *nodes;
  size_t n, cap;
  /* The tree is one revision kept in the docs row alone (its body
   * there, no revs row: see store.c); node 0 is that revision.  A write
   * that adds to it moves it into revs first (doc_row_update). */
  bool implied;
};

void kz_db_tree_free(struct kz_db_tree *t);
/* Index of revision r, or -1. */
int kz_db_tree_find(const struct kz_db_tree *t, const struct kz_db_rev *r);
/* Recomputes leaf flags and parent links from (gen-1, parent hash) —
 * parents are resolved by the loader; this only marks leaves. */
void kz_db_tree_mark_leaves(struct kz_db_tree *t);
/* CouchDB's winner among leaves: not deleted beats deleted, then the
 * highest generation, then the highest hash (byte order).  -1 when the
 * tree is empty. */
int kz_db_tree_winner(const struct kz_db_tree *t);
/* Leaves sorted by the winner rule (best first) into idx (n entries
 * returned; idx must hold t->n). */
size_t kz_db_tree_leaves(const struct kz_db_tree *t, int *idx);
/* Computes the hash of a new revision: over the deleted flag, the
 * parent revision, the stored body text and the attachment metadata,
 * the first 128 bits of SHA-256 (CouchDB uses MD5 over its own term
 * encoding, so its hashes never matched kz's anyway; SHA-256 is the
 * sounder hash and, with the SHA extensions of current x86 and ARM
 * cores that nettle uses, twice as fast: a tenth of a bulk write was
 * MD5).  out gets 32 hex chars and a NUL. */
void kz_db_rev_hash(bool deleted, const struct kz_db_rev *parent, const char *body,
                    size_t body_len, const char *atts, size_t atts_len, char out[33]);

/* ------------------------------------------------------------------ */
/* Store (store.c)                                                      */

int kz_db_store_open(struct kz_db *db);
void kz_db_store_close(struct kz_db *db);
int kz_db_store_begin(struct kz_db *db);
/* Commits (synced through the VFS); on failure rolls back.  0 or
 * KZ_EIO. */
int kz_db_store_commit(struct kz_db *db);
void kz_db_store_rollback(struct kz_db *db);

/* A prepared statement for sql, ready to bind and step: compiled on
 * first use and kept for the instance's life (the cache holds a few
 * hundred distinct texts; beyond that, and while the cached one is in
 * use by an outer caller, a fresh one is compiled).  Give it back with
 * kz_db_sql_done, never sqlite3_finalize.  NULL on failure (logged). */
sqlite3_stmt *kz_db_sql(struct kz_db *db, const char *sql);
/* Ends the use of a statement of kz_db_sql: resets it and clears its
 * bindings for the next caller (or finalizes an uncached one).  NULL
 * is a no-op. */
void kz_db_sql_done(struct kz_db *db, sqlite3_stmt *st);
/* Runs a statement with no result rows; 0 or KZ_EIO. */
int kz_db_sql_exec(struct kz_db *db, const char *sql);

struct kz_db_dbinfo {
  int64_t id;
  int64_t update_seq;
  int64_t doc_count;
  int64_t doc_del_count;
  int64_t created_wall_ns;
  int64_t size_bytes; /* stored body bytes, an estimate of "sizes" */
};

/* Looks a database up by name.  0, KZ_ENOENT or KZ_EIO. */
int kz_db_store_db_get(struct kz_db *db, const char *name, struct kz_db_dbinfo *out);
/* Fills doc_count, doc_del_count and size_bytes of a looked-up db.
 * 0 or KZ_EIO. */
int kz_db_store_db_counts(struct kz_db *db, struct kz_db_dbinfo *out);
/* 0, KZ_EEXIST or KZ_EIO.  Inside a transaction. */
int kz_db_store_db_create(struct kz_db *db, const char *name);
/* 0, KZ_ENOENT or KZ_EIO.  Inside a transaction. */
int kz_db_store_db_delete(struct kz_db *db, const char *name);
/* Bumps the database's update_seq and returns the new value (in *seq).
 * Inside a transaction: the sequence is read once and counted in
 * memory, then written back by kz_db_store_commit (one UPDATE of dbs
 * per transaction, not one per document).  0 or KZ_EIO. */
int kz_db_store_next_seq(struct kz_db *db, int64_t dbid, int64_t *seq);
/* Gives back the sequence kz_db_store_next_seq just handed out, when
 * nothing was stored under it. */
void kz_db_store_unnext_seq(struct kz_db *db, int64_t seq);
/* Makes dbid the database whose sequence and view counts the open
 * transaction keeps in memory, writing back those of the previous one
 * first.  0 or KZ_EIO. */
int kz_db_store_txn_db(struct kz_db *db, int64_t dbid);
/* Loads a document's revision tree (empty when absent). 0/KZ_EIO/KZ_ENOMEM */
int kz_db_store_tree(struct kz_db *db, int64_t dbid, const char *docid, struct kz_db_tree *t);
/* The stored body (JSON object text) and attachment metadata (JSON
 * object text or NULL) of one revision.  Returns new jansson values
 * (*body an object, *atts an object or NULL); 0, KZ_ENOENT or KZ_EIO. */
int kz_db_store_rev_body(struct kz_db *db, int64_t dbid, const char *docid,
                         const struct kz_db_rev *r, json_t **body, json_t **atts);

/* ------------------------------------------------------------------ */
/* HTTP replies (server.c) and requests                                 */

struct kz_db_reply {
  int status;
  char ctype[256];          /* Content-Type; empty = application/json */
  struct kz_buf body;
  char etag[128];           /* without quotes; empty = none */
  char location[64];        /* unused unless set */
  bool head;                /* HEAD request: send headers only */
  bool not_modified_ok;     /* internal */
  /* Extra raw header lines ("Name: value\r\n"), already validated. */
  struct kz_buf extra;
};

struct kz_db_req {
  struct kz_db *db;
  struct kz_db_conn *conn;
  const struct kz_http_msg *msg;
  struct kz_slice method;
  struct kz_http_strlist seg;
  struct kz_http_query query;
  const char *body;
  size_t body_len;
};

/* Sets a JSON reply (takes ownership of j; NULL j means out of memory). */
void kz_db_reply_json(struct kz_db_reply *r, int status, json_t *j);
/* CouchDB's error shape {"error":..,"reason":..}. */
void kz_db_reply_error(struct kz_db_reply *r, int status, const char *error, const char *reason);
/* Maps a kz error from the store to a reply (500 for KZ_EIO...). */
void kz_db_reply_kzerr(struct kz_db_reply *r, int err);

/* Query helpers: a boolean parameter ("true"/"false"), an unsigned
 * integer, a JSON value (new reference or NULL when absent).  Each
 * returns 0 or KZ_EPROTO (and fills the reply with 400). */
int kz_db_q_bool(struct kz_db_req *q, struct kz_db_reply *r, const char *key, bool *out);
int kz_db_q_u64(struct kz_db_req *q, struct kz_db_reply *r, const char *key, uint64_t *out,
                bool *present);
int kz_db_q_json(struct kz_db_req *q, struct kz_db_reply *r, const char *key, json_t **out);
/* Parses the request body as JSON (object unless any). */
int kz_db_body_json(struct kz_db_req *q, struct kz_db_reply *r, bool any, json_t **out);
/* One JSON value, whole, as the db reads request bodies (strings may
 * hold U+0000): a new reference, NULL when it is not JSON. */
json_t *kz_db_json_parse(const char *p, size_t n);
/* Requires a JSON content type (415 otherwise). */
int kz_db_require_json(struct kz_db_req *q, struct kz_db_reply *r);

/* Dispatch (api.c): fills the reply, or returns 1 when the request was
 * parked (longpoll) and will be answered later through
 * kz_db_conn_finish, or 2 when it was deferred (one-shot _replicate)
 * and will be answered later, whole, through kz_db_conn_reply. */
int kz_db_dispatch(struct kz_db_req *q, struct kz_db_reply *r);

/* Documents (docs.c). */
struct kz_db_update_opts {
  bool new_edits;
  const char *docid; /* from the URL, overrides/validates _id */
  int64_t dbid;
  /* For bulk writes: when ok_out is set, a success appends its result
   * object's JSON text ({"ok":true,"id":..,"rev":..}) to ok_out and
   * leaves *result NULL, instead of building a jansson object; with
   * ok_quiet, a success produces no result at all (replication only
   * hears about failures).  Failures always come as *result. */
  struct kz_buf *ok_out;
  bool ok_quiet;
};
/* Applies one document update inside the current transaction.  On
 * success *result = {"ok":true,"id":..,"rev":..}; on a per-document
 * failure *status is the HTTP status and *result the error object
 * {"id":..,"error":..,"reason":..} (see ok_out and ok_quiet in the
 * options for successes without a result object; doc is only read, and
 * is passed as is, with its '_' members, to the view maps, which read
 * named fields only); returns 0 in both cases and KZ_EIO
 * (or KZ_ENOMEM) when the store failed and the transaction must roll
 * back. */
int kz_db_doc_update(struct kz_db *db, const struct kz_db_update_opts *o, json_t *doc,
                     json_t **result, int *status);
/* kz_db_doc_update from the document's text, for the documents most
 * writes are (new_edits, a JSON object whose only '_' members are _id,
 * _rev and _deleted, given as plain strings): its stored text is
 * recoded from the request's bytes without building a jansson tree.
 * The answer is the one kz_db_doc_update would give.  *taken false
 * (and nothing written) when the document is not of that kind: then
 * parse it and call kz_db_doc_update.  With used set, text may go on
 * after the document (the rest of a "docs" array): *used gets the
 * document's length when it could be read, else 0. */
int kz_db_doc_update_text(struct kz_db *db, const struct kz_db_update_opts *o, const char *text, size_t len,
                          json_t **result, int *status, bool *taken, size_t *used);
/* Builds the JSON of one revision as GET returns it. */
struct kz_db_read_opts {
  bool revs, conflicts, deleted_conflicts, attachments, revs_info, local_seq;
};
int kz_db_doc_json(struct kz_db *db, int64_t dbid, const char *docid, const struct kz_db_tree *t,
                   int node, const struct kz_db_read_opts *o, json_t **out);
/* Checks a document id from a URL or a body.  NULL when fine, else a
 * static reason for a 400 illegal_docid. */
const char *kz_db_docid_check(const struct kz_db *db, const char *id, size_t len);

int kz_db_api_doc(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info,
                  const char *docid, const char *att);
int kz_db_api_local(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info,
                    const char *id);
int kz_db_api_bulk_docs(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info);
int kz_db_api_all_docs(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info);
int kz_db_api_revs_diff(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info);
int kz_db_api_bulk_get(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info);
int kz_db_api_post_doc(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info);

/* Changes (changes.c).  Returns 1 when the request waits (longpoll). */
int kz_db_api_changes(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info);
/* A database changed: wake the longpolls waiting on it. */
void kz_db_changes_notify(struct kz_db *db, int64_t dbid);
/* Drops the waiter of a connection that goes away. */
void kz_db_waiter_cancel(struct kz_db_waiter *w);
void kz_db_waiters_free(struct kz_db *db);

/* Connections (server.c). */
/* Writes the head of a chunked 200 JSON response now (longpoll). */
int kz_db_conn_start_chunked(struct kz_db_conn *c);
int kz_db_conn_chunk(struct kz_db_conn *c, const void *data, size_t len);
/* Ends a parked request: writes the last chunk and resumes reading. */
void kz_db_conn_finish(struct kz_db_conn *c);
void kz_db_conn_set_waiter(struct kz_db_conn *c, struct kz_db_waiter *w);
/* Ties a deferred request to its replication (NULL unties). */
void kz_db_conn_set_repl(struct kz_db_conn *c, struct kz_db_repl *r);
/* Answers a deferred request with a whole reply (bodies freed here)
 * and resumes reading the connection. */
void kz_db_conn_reply(struct kz_db_conn *c, struct kz_db_reply *r);

/* Replication (replicate.c). */
/* POST /_replicate: 0 with the reply filled, or 2 when the answer is
 * deferred until a one-shot replication ends. */
int kz_db_api_replicate(struct kz_db_req *q, struct kz_db_reply *r);
/* A database changed: wake continuous replications reading it. */
void kz_db_repl_notify(struct kz_db *db, int64_t dbid);
/* The connection of a deferred request went away. */
void kz_db_repl_conn_gone(struct kz_db_repl *r);
/* Stops every replication and frees the HTTP client. */
void kz_db_repls_free(struct kz_db *db);
/* Whether a continuous replication of all documents from `source` to
 * `target` (as a client named them) runs: the one a POST /_replicate of
 * the same would find and answer 202 for. */
bool kz_db_repl_running(const struct kz_db *db, const char *source, const char *target);
/* _active_tasks entries of the running replications (new array). */
json_t *kz_db_repl_tasks(struct kz_db *db);
/* Runs one request against this instance as if it came from a socket:
 * *status and *out (new, or NULL when the answer is not JSON) are its
 * answer.  Returns 0, KZ_EPROTO (the request does not parse or wants to
 * wait) or KZ_ENOMEM. */
int kz_db_local_exec(struct kz_db *db, const char *method, const char *target, const char *body, size_t blen,
                     int *status, json_t **out);
/* Appends `s` percent-encoded as one URL path segment ("a/b" ->
 * "a%2Fb").  0 or KZ_ENOMEM. */
int kz_db_enc_append(struct kz_buf *b, const char *s);
/* The HTTP client for remote ends, made on first use.  0 or KZ_E*. */
int kz_db_http(struct kz_db *db, struct kz_http_client **out);

/* Peers (peers.c): keeping current with cfg.peers.  start is a no-op
 * without peers; free stops the scans (the replications they started
 * are the replicator's). */
int kz_db_peers_start(struct kz_db *db);
void kz_db_peers_free(struct kz_db *db);


/* ------------------------------------------------------------------ */
/* Collation (collate.c), native views (maps.c, views.c), Mango (mango.c) */

/* CouchDB's collation of two JSON values (NULL counts as null): <0, 0
 * or >0.  Strings use kz's approximation of ICU (see collate.c). */
int kz_db_collate(const json_t *a, const json_t *b);
/* Appends to o a byte string whose memcmp order is kz_db_collate's
 * order.  0 or KZ_ENOMEM. */
int kz_db_collate_key(struct kz_buf *o, const json_t *j);

enum kz_db_reduce { KZ_DB_REDUCE_NONE, KZ_DB_REDUCE_COUNT, KZ_DB_REDUCE_SUM, KZ_DB_REDUCE_STATS };

struct kz_db_emits;
/* One of Kazoo's views implemented in C: its design doc and view name,
 * its map (see maps.c) and its builtin reduce. */
struct kz_db_native_view {
  const char *ddoc, *view;
  int (*map)(struct kz_db_emits *e, const char *id, const json_t *doc);
  enum kz_db_reduce reduce;
};
extern const struct kz_db_native_view kz_db_native_views[];
extern const size_t kz_db_native_views_n;
/* The native view ddoc/view; with view NULL, any view of that ddoc.
 * NULL when there is none. */
const struct kz_db_native_view *kz_db_native_view_find(const char *ddoc, const char *view);
/* Runs a map on one document body (without _id; the id is given):
 * *rows is a new array of [key, value].  0 or KZ_ENOMEM. */
int kz_db_map_run(const struct kz_db_native_view *v, const char *id, const json_t *doc, json_t **rows);

/* Creates the view tables and empties the index when the native views
 * changed since it was built.  Inside the open transaction.  0/KZ_EIO. */
int kz_db_views_init(struct kz_db *db);
/* Brings the view index of database dbid up to update_seq: re-maps
 * the documents changed since the sequence it covers, in transactions
 * of its own (none may be open).  0, KZ_EIO or KZ_ENOMEM. */
int kz_db_views_update(struct kz_db *db, int64_t dbid, int64_t update_seq);
/* Writes the open transaction's view row count changes (store.c calls
 * it before COMMIT).  0 or KZ_EIO. */
int kz_db_views_flush_counts(struct kz_db *db);
/* Drops every row of a database (inside its deletion). 0 or KZ_EIO. */
int kz_db_views_drop_db(struct kz_db *db, int64_t dbid);
/* GET/POST /db/_design/<ddoc>/_view/<view>. */
int kz_db_api_view(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info,
                   const char *ddoc, const char *view);
/* POST /db/_find, /db/_explain and GET/POST/DELETE /db/_index[/...]. */
int kz_db_api_find(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info,
                   bool explain);
int kz_db_api_index(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info);

#endif /* KZ_DB_INT_H */
