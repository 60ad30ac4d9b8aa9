/* kz/apps_seed.h — turns a seed file (accounts, users, devices, media servers) into the databases and Kazoo-shaped documents to store. */
#ifndef KZ_APPS_SEED_H
#define KZ_APPS_SEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* The seed file (fixtures/seed/basic.json is the example):
 *
 *   {"accounts": [{"id": 32 hex (optional), "name", "realm",
 *                  "timezone" (optional),
 *                  "users": [{"id"?, "username", "first_name"?,
 *                             "last_name"?, "email"?, "number"?,
 *                             "devices": [DEVICE...]}],
 *                  "devices": [DEVICE...]}],           (unowned)
 *    "media_servers": [{"name", "uri", "zone"?}]}
 *   DEVICE = {"id"?, "name", "username", "password", "device_type"?,
 *             "enabled"? (true), "method"? ("password")}
 *
 * Missing ids are derived from the parent's id and the item's name
 * (kz_hash64), so a re-run produces the same documents.  The plan
 * holds, in order: the databases to create (accounts, system_config,
 * each account's "account/xx/yy/rest") and every document with its
 * database: design documents _design/accounts (listing_by_realm),
 * _design/devices (sip_credentials), _design/callflows
 * (listing_by_number) with JavaScript maps as Kazoo ships them (so a
 * real CouchDB answers the same views kz's db computes natively); each
 * account doc in `accounts` and in its own database; users (pvt_type
 * user), devices (pvt_type device, sip {username, password, realm,
 * method, invite_format}), one callflow per user number (module user);
 * and system_config/ecallmgr with the media servers. */

struct kz_apps_seed_doc {
  char *db;     /* raw name, e.g. "account/3c/3f/9a0b..." (kz_malloc) */
  char *id;     /* document id (kz_malloc) */
  json_t *doc;  /* the document with "_id" (one reference) */
};

struct kz_apps_seed_plan {
  char **dbs;   /* raw database names, creation order */
  size_t ndbs;
  struct kz_apps_seed_doc *docs;
  size_t ndocs;
};

/* Builds the plan for `seed` (borrowed).  `now_gregorian_s` (seconds
 * since year 0, Kazoo's timestamps) fills pvt_created and pvt_modified.
 * On error err (errlen bytes) says where: "accounts[1].users[0]:
 * \"username\" must be a non-empty string".  *out is overwritten; free it
 * with kz_apps_seed_plan_free (also after a failure).  Returns 0,
 * KZ_EPROTO (bad seed content), KZ_EINVAL (NULL arguments) or
 * KZ_ENOMEM. */
int kz_apps_seed_plan(const json_t *seed, int64_t now_gregorian_s, struct kz_apps_seed_plan *out,
                      char *err, size_t errlen);
void kz_apps_seed_plan_free(struct kz_apps_seed_plan *p);

/* Whether an existing document already says what the planned one says:
 * equal ignoring "_rev", "pvt_created" and "pvt_modified" (so a re-run
 * leaves unchanged documents alone). */
bool kz_apps_seed_doc_same(const json_t *existing, const json_t *planned);

/* Prepares `planned` to replace `existing`: copies its "_rev" (needed
 * for the update) and "pvt_created" (the creation time stays).
 * Returns 0 or KZ_ENOMEM. */
int kz_apps_seed_doc_rebase(json_t *planned, const json_t *existing);

/* ------------------------------------------------------------------ */
/* Applying a plan through a kz_dbclient (sans-I/O: any HTTP backend)   */

struct kz_dbclient;
struct kz_apps_seed_run;

/* Counters of a run. */
struct kz_apps_seed_stats {
  size_t dbs_created, dbs_existing;
  size_t docs_created, docs_updated, docs_unchanged;
  size_t conflicts; /* 409s retried */
};

/* Reports each step: db (raw name), id (NULL for database steps) and
 * what happened: "created", "exists" (databases), "created", "updated",
 * "unchanged" (documents). */
typedef void kz_apps_seed_progress_fn(void *arg, const char *db, const char *id, const char *what);
/* The run ended: err 0, or the KZ_E* code of the step that failed, with
 * `msg` naming it ("PUT accounts/3c3f...: 401 unauthorized"). */
typedef void kz_apps_seed_done_fn(void *arg, int err, const char *msg,
                                  const struct kz_apps_seed_stats *st);

/* Applies `plan` (borrowed; must outlive the run) through `db`, one
 * request at a time: each database is created (412 "exists" is fine),
 * then each document is read; a missing one is created, one that says
 * the same (kz_apps_seed_doc_same) is left alone, any other is replaced
 * with its current _rev (kz_apps_seed_doc_rebase); a 409 (somebody
 * wrote in between) re-reads and tries again, up to 5 times.  So
 * running a seed twice changes nothing the second time.  done fires once,
 * later, from the event loop (never from inside this call).  *out is the
 * caller's: free it with kz_apps_seed_run_free after done, or, to abandon
 * the run, after freeing the db client (which cancels its pending call).
 * Returns 0, KZ_EINVAL (also for an empty plan), KZ_ENOMEM or the error
 * of the first request. */
int kz_apps_seed_apply(struct kz_apps_seed_run **out, struct kz_dbclient *db,
                       const struct kz_apps_seed_plan *plan, kz_apps_seed_progress_fn *progress,
                       kz_apps_seed_done_fn *done, void *arg);
void kz_apps_seed_run_free(struct kz_apps_seed_run *run);

/* Seconds between 0000-01-01 and 1970-01-01 in Kazoo's Gregorian
 * calendar (calendar:datetime_to_gregorian_seconds). */
#define KZ_APPS_GREGORIAN_UNIX_OFFSET INT64_C(62167219200)

#endif /* KZ_APPS_SEED_H */
