/* kz/db.h — the db role: a CouchDB-compatible document server written only against kz_env. */
#ifndef KZ_DB_H
#define KZ_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/env.h"

/* kz_db speaks CouchDB's HTTP/JSON API (the subset Kazoo, PouchDB and
 * replication use) on one stream listener, and keeps its data in one
 * SQLite database reached through a VFS of its own ("kz-<hex>", one per
 * instance) that maps SQLite's file operations onto kz_env's durable
 * storage.  Every write is committed (synced) before its HTTP response is
 * queued, so an acknowledged write survives a crash.
 *
 * Storage layout: ONE SQLite file (cfg.path) holds every CouchDB database
 * of the instance, keyed by an internal database number: one file keeps
 * creation, deletion and cross-database listing atomic without a
 * directory listing (kz_env has none).  Each document keeps its whole
 * revision tree (table revs: generation, hash, parent, deleted flag,
 * body) and every database its update sequence (docs.seq), which is what
 * views and replication build on.  Sequences are integers (CouchDB 1.x
 * style); PouchDB accepts them.
 *
 * Beyond documents: Kazoo's views are built in (C ports of its
 * JavaScript maps, see maps.c; an index brought up to date when a view
 * is read, as CouchDB does, views.c) and served at /db/_design/<ddoc>/_view/<view>
 * with CouchDB's query parameters and collation; JavaScript views that
 * users store answer 501.  Mango (/db/_find, /db/_index) is in mango.c
 * and CouchDB's replication protocol (/_replicate, one-shot and
 * continuous, to and from local names or http:// URLs) in
 * replicate.c. */

struct kz_db;

struct kz_db_cfg {
  /* Stream address to listen on (port 0 picks one: kz_db_addr). */
  struct kz_addr listen;
  /* Relative kz_fs path of the SQLite file; NULL means "kzdb.sqlite".
   * SQLite keeps its write-ahead log in "<path>-wal" beside it. */
  const char *path;
  /* Largest request body accepted (413 beyond it); 0 means 64 MiB. */
  uint64_t max_body;
  /* Longest document id in bytes (400 illegal_docid beyond); 0 = 512. */
  size_t max_docid;
  /* Longpoll _changes timeout when the request gives none; 0 = 60 s. */
  uint64_t changes_timeout_ns;
  /* Keep-alive connections idle this long are closed; 0 = 5 minutes. */
  uint64_t idle_timeout_ns;
  /* Peers to keep current with, as a CouchDB cluster keeps its nodes
   * (Kazoo's two servers share one): base URLs "http://ip:port" of other
   * db servers (borrowed, must outlive the instance).  Every
   * peer_scan_ns (0 = 5 s) the db lists each peer's databases and pulls
   * every one it does not pull yet with a continuous replication
   * (created here when missing); each side pulling from the other keeps
   * both current, and a peer that is down is caught up with when it is
   * back (replications retry with backoff and resume from their
   * checkpoints). */
  const char *const *peers;
  size_t npeers;
  uint64_t peer_scan_ns;
};

/* Counters, monotonic over the instance's life. */
struct kz_db_stats {
  uint64_t connections;    /* streams accepted */
  uint64_t requests;       /* requests answered (every status) */
  uint64_t errors_4xx;
  uint64_t errors_5xx;
  uint64_t commits;        /* SQLite transactions committed */
  uint64_t longpolls;      /* _changes requests that had to wait */
};

/* Creates a server on `env`: opens (or creates) the SQLite file through
 * the instance's VFS, then listens.  cfg is copied.  *out is the
 * caller's; release it with kz_db_free.  Returns 0, KZ_EINVAL (NULL
 * argument, bad path), KZ_ENOMEM, KZ_EIO (the store cannot be opened or
 * is corrupt) or the error of kz_stream_listen. */
int kz_db_new(struct kz_db **out, struct kz_env *env, const struct kz_db_cfg *cfg);

/* Closes every connection and the listener, closes the store and
 * unregisters the VFS.  NULL is a no-op. */
void kz_db_free(struct kz_db *db);

/* The address listened on, with the chosen port. */
struct kz_addr kz_db_addr(const struct kz_db *db);

/* Counters; valid while the server lives. */
const struct kz_db_stats *kz_db_stats(const struct kz_db *db);

/* The simulator/app adapter: start builds a server from a
 * `const struct kz_db_cfg *`, stop frees it (kz_sim_app's contract). */
int kz_db_app_start(struct kz_env *env, const void *cfg, void **instance);
void kz_db_app_stop(void *instance);

#endif /* KZ_DB_H */
