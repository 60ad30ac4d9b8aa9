/* kz/dbclient.h — a small typed CouchDB client (documents as jansson json_t) over the kz_http_client interface. */
#ifndef KZ_DBCLIENT_H
#define KZ_DBCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kz/http_client.h"

/* What role code uses to reach the db role (or a real CouchDB): each call
 * sends one CouchDB HTTP request through a struct kz_http_client (any
 * backend) and reports once through a callback, never from inside the
 * call itself.  Sans-I/O: it only talks to the kz_http_client.
 *
 * Names: database names are percent-encoded whole, so Kazoo's
 * "account/xx/yy/rest" travels as "account%2Fxx%2Fyy%2Frest"; document
 * ids too, except the "_design/" and "_local/" prefixes, which CouchDB
 * wants literally; attachment names keep their '/'.
 *
 * Errors: a non-2xx response becomes a KZ_E* code (kz_dbclient_errno) and
 * the {"error","reason"} of its body are passed on as strings. */

struct kz_dbclient;

struct kz_dbclient_cfg {
  /* Base URL of the server: "http://[user:password@]host:port". */
  const char *url;
  /* Deadline of each HTTP request; 0 uses the HTTP client's default. */
  uint64_t timeout_ns;
  /* How many times kz_dbclient_doc_save fetches the current revision
   * and tries again after a conflict; 0 means 3. */
  unsigned save_retries;
};

/* The outcome of one call.  Everything in it is valid during the
 * callback only (json_incref what you keep). */
struct kz_dbclient_result {
  int err;            /* 0 or a KZ_E* code (see kz_dbclient_errno) */
  int status;         /* HTTP status; 0 when there was no response */
  const char *error;  /* CouchDB's "error" ("conflict", "not_found"...), or NULL */
  const char *reason; /* CouchDB's "reason", or the transport error text; NULL on success */
  json_t *json;       /* the parsed JSON body, or NULL (not JSON, or none) */
  const char *id;     /* "id" of {"ok":true,"id","rev"} answers, else NULL */
  const char *rev;    /* "rev" of those answers (the new revision), else NULL */
  const uint8_t *data; /* the raw body (attachments), may be NULL when len is 0 */
  size_t len;
  const char *content_type; /* of the response, or NULL */
};

typedef void kz_dbclient_fn(void *arg, const struct kz_dbclient_result *r);

/* Creates a client that sends through `http` (borrowed: it must outlive
 * this client).  cfg is copied.  Returns 0, KZ_EINVAL (NULL argument,
 * a url that is not "http://...") or KZ_ENOMEM. */
int kz_dbclient_new(struct kz_dbclient **out, struct kz_http_client *http,
                    const struct kz_dbclient_cfg *cfg);

/* Cancels every call in flight (no callbacks) and frees the client.
 * Allowed inside a callback.  NULL is a no-op. */
void kz_dbclient_free(struct kz_dbclient *c);

/* Maps a CouchDB answer to a KZ_E* code: 2xx 0; by the "error" string
 * first (conflict → KZ_ECONFLICT, not_found → KZ_ENOENT, file_exists →
 * KZ_EEXIST, unauthorized/forbidden → KZ_EPERM, bad_request and
 * illegal_* / invalid_* → KZ_EINVAL, not_implemented → KZ_ENOTSUP),
 * then by status (400 KZ_EINVAL, 401/403 KZ_EPERM, 404 KZ_ENOENT,
 * 405/415/501 KZ_ENOTSUP, 409 KZ_ECONFLICT, 412 KZ_EEXIST, 413
 * KZ_EMSGSIZE, 503 KZ_EBUSY, other 4xx KZ_EPROTO, other 5xx KZ_EIO).
 * `error` may be NULL. */
int kz_dbclient_errno(int status, const char *error);

/* Every call below returns 0 when the request went out (the callback
 * then fires exactly once), or KZ_EINVAL (a NULL or empty name, a
 * document without "_id"...), KZ_ENOMEM, or the error of
 * kz_http_client_request; the callback then never fires. */

/* ---------------------------------------------------------------- */
/* Databases                                                          */

/* PUT /db.  An existing database fails with KZ_EEXIST (412). */
int kz_dbclient_db_create(struct kz_dbclient *c, const char *db, kz_dbclient_fn *cb, void *arg);
/* DELETE /db.  A missing one fails with KZ_ENOENT. */
int kz_dbclient_db_delete(struct kz_dbclient *c, const char *db, kz_dbclient_fn *cb, void *arg);
/* GET /db: json is the info object (doc_count, update_seq...). */
int kz_dbclient_db_info(struct kz_dbclient *c, const char *db, kz_dbclient_fn *cb, void *arg);

/* ---------------------------------------------------------------- */
/* Documents                                                          */

struct kz_dbclient_get_opts {
  const char *rev;        /* a specific revision (?rev=) */
  bool conflicts;         /* ?conflicts=true: _conflicts in the doc */
  bool revs;              /* ?revs=true: _revisions */
  bool open_revs_all;     /* ?open_revs=all: json is [{"ok":doc}|{"missing":rev}...] */
  const json_t *open_revs; /* or ?open_revs=[...] for these revisions */
};

/* GET /db/id with `opts` (NULL: none).  json is the document. */
int kz_dbclient_doc_get(struct kz_dbclient *c, const char *db, const char *id,
                        const struct kz_dbclient_get_opts *opts, kz_dbclient_fn *cb, void *arg);

/* PUT /db/<doc._id> with the document (its _rev, if any, is the one it
 * replaces).  result rev is the new revision; a stale or missing _rev
 * fails with KZ_ECONFLICT (409). */
int kz_dbclient_doc_put(struct kz_dbclient *c, const char *db, const json_t *doc,
                        kz_dbclient_fn *cb, void *arg);

/* DELETE /db/id?rev=rev.  result rev is the tombstone's revision. */
int kz_dbclient_doc_delete(struct kz_dbclient *c, const char *db, const char *id, const char *rev,
                           kz_dbclient_fn *cb, void *arg);

/* Saves `doc` whatever the stored revision is (Kazoo's ensure_saved):
 * PUT it; on 409 GET the current document, take its _rev (or drop _rev
 * when it is gone) and PUT again, up to cfg.save_retries times.  The
 * caller's doc is not modified (a copy is sent).  The callback gets the
 * last PUT's result. */
int kz_dbclient_doc_save(struct kz_dbclient *c, const char *db, const json_t *doc,
                         kz_dbclient_fn *cb, void *arg);

/* POST /db/_bulk_docs {"docs": docs[, "new_edits": false]}.  json is the
 * per-document array ({"id","rev"} or {"id","error","reason"}); err is
 * 0 even when some documents failed. */
int kz_dbclient_bulk_docs(struct kz_dbclient *c, const char *db, const json_t *docs,
                          bool new_edits, kz_dbclient_fn *cb, void *arg);

/* ---------------------------------------------------------------- */
/* Views and _all_docs                                                */

enum kz_dbclient_tri { KZ_DBCLIENT_UNSET = 0, KZ_DBCLIENT_TRUE, KZ_DBCLIENT_FALSE };

/* Query parameters; zero means "not sent".  JSON values are sent
 * JSON-encoded (key="abc", startkey=["a",1]).  With `keys` the request
 * is a POST with {"keys": keys} as body. */
struct kz_dbclient_view_opts {
  const json_t *key, *keys, *startkey, *endkey;
  const char *startkey_docid, *endkey_docid;
  bool include_docs;
  bool descending;
  bool exclusive_end;  /* inclusive_end=false */
  bool has_limit;
  uint64_t limit;
  uint64_t skip;
  enum kz_dbclient_tri reduce;
  bool group;
  bool has_group_level;
  unsigned group_level;
  const char *stale;   /* "ok" or "update_after" */
  bool update_seq;
  bool conflicts;
};

/* GET (POST with keys) /db/_all_docs.  json is {"total_rows","offset","rows"}. */
int kz_dbclient_all_docs(struct kz_dbclient *c, const char *db,
                         const struct kz_dbclient_view_opts *opts, kz_dbclient_fn *cb, void *arg);

/* GET (POST with keys) /db/_design/<design>/_view/<view>. */
int kz_dbclient_view(struct kz_dbclient *c, const char *db, const char *design, const char *view,
                     const struct kz_dbclient_view_opts *opts, kz_dbclient_fn *cb, void *arg);

/* ---------------------------------------------------------------- */
/* Attachments                                                        */

/* PUT /db/id/name?rev=rev with the bytes and their content type (rev
 * NULL creates the document).  result rev is the document's new rev. */
int kz_dbclient_att_put(struct kz_dbclient *c, const char *db, const char *id, const char *rev,
                        const char *name, const char *content_type, const void *data, size_t len,
                        kz_dbclient_fn *cb, void *arg);

/* GET /db/id/name: data/len/content_type carry the attachment. */
int kz_dbclient_att_get(struct kz_dbclient *c, const char *db, const char *id, const char *name,
                        kz_dbclient_fn *cb, void *arg);

/* ---------------------------------------------------------------- */
/* Changes                                                            */

struct kz_dbclient_changes_opts {
  const char *since;  /* "0", "now", or a sequence as the server gave it; NULL: from the start */
  bool include_docs;
  bool descending;
  bool conflicts;
  bool all_revs;      /* style=all_docs */
  bool has_limit;
  uint64_t limit;
};

/* GET /db/_changes (feed=normal).  json is {"results":[...],"last_seq"}. */
int kz_dbclient_changes(struct kz_dbclient *c, const char *db,
                        const struct kz_dbclient_changes_opts *opts, kz_dbclient_fn *cb, void *arg);

/* ---------------------------------------------------------------- */
/* Helpers (exposed for tests and callers building their own paths)  */

/* Appends `s` percent-encoded: every byte but A-Z a-z 0-9 - . _ ~ (and
 * '/' when keep_slash) becomes %XX.  Returns 0 or KZ_ENOMEM. */
int kz_dbclient_encode(struct kz_buf *b, const char *s, bool keep_slash);

#endif /* KZ_DBCLIENT_H */
