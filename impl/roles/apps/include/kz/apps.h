/* kz/apps.h — the apps role ("whistle"): the registrar app answering authn_req from device credentials in the db; a sans-I/O kz_env app. */
#ifndef KZ_APPS_H
#define KZ_APPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/bus_client.h"
#include "kz/env.h"
#include "kz/http_client.h"

/* The registrar app is Kazoo's registrar authn responder
 * (applications/registrar/src/reg_authn_req.erl) in the shape of a kz_env
 * app: kz_apps_registrar_start(env, cfg) connects to the bus through the
 * backend cfg's factory makes, declares Kazoo's exchanges, consumes the
 * shared queue "registrar_authn" bound on "callmgr" with "authn.req.*"
 * (several instances share the work round-robin, as RabbitMQ does for
 * kapps) and answers every valid authn_req:
 *
 *   1. realm -> account: view accounts/listing_by_realm of the `accounts`
 *      database, key = the realm lower-cased;
 *   2. user -> device: view devices/sip_credentials of the account's
 *      database (account/xx/yy/rest), key = the user name lower-cased;
 *   3. authn_resp with Auth-Method "password", the clear-text
 *      Auth-Password, and Custom-Channel-Vars Account-ID, Account-Name,
 *      Account-Realm, Realm, Username, Authorizing-ID, Authorizing-Type,
 *      Owner-ID (when the device has an owner) — or authn_err for an
 *      unknown realm, an unknown user, a disabled device or a device whose
 *      sip.method is not "password".
 *
 * Both lookups are cached for cfg.cache_ttl_ns; an exclusive queue bound
 * on "configuration" with doc_edited/doc_deleted for device and account
 * documents drops the matching entries at once.  A db that fails (no
 * connection, 5xx, timeout, unreadable JSON) gets no answer: the proxy
 * times out and drops the REGISTER, so the phone retries — as Kazoo's
 * Kamailio does when no registrar answers.  impl/roles/apps/README.md
 * says how to run it and where it differs from Kazoo. */

struct kz_apps_registrar;

/* Makes the bus backend for a starting app (AMQP under the real driver,
 * the wire to the simulator's broker, a test fake).  Returns 0 and fills
 * *out, or a KZ_E* code (start then fails with it). */
typedef int kz_apps_bus_factory_fn(void *arg, struct kz_env *env, struct kz_bus_backend *out);

/* Makes the HTTP client the db is reached with (the libcurl backend under
 * the real driver).  NULL factory: the stream backend on the env
 * (kz_http_client_stream_new), which works in the simulator and for
 * real alike.  Returns 0 and *out (the app frees it), or a KZ_E* code. */
typedef int kz_apps_http_factory_fn(void *arg, struct kz_env *env, struct kz_http_client **out);

struct kz_apps_registrar_cfg {
  /* CouchDB-compatible server: "http://[user:pass@]host:port" (no path).
   * Required. */
  const char *db_url;
  /* Node in bus envelopes; NULL: "registrar@<env name>". */
  const char *node;
  /* Shared authn queue name; NULL: "registrar_authn". */
  const char *queue;
  /* Lifetime of cached realm and credential lookups; 0: 60 s.
   * Set no_cache to disable caching. */
  uint64_t cache_ttl_ns;
  bool no_cache;
  /* Most cached entries; the oldest goes first beyond it.  0: 10000. */
  size_t cache_max;
  /* Deadline of one db request; 0: 2 s (below Kamailio's 2.5 s authn
   * timeout, so a slow db costs one retry of the phone, not two). */
  uint64_t db_timeout_ns;
  kz_apps_bus_factory_fn *bus_factory; /* required */
  void *bus_arg;
  kz_apps_http_factory_fn *http_factory; /* optional, see above */
  void *http_arg;
  /* Name resolution for the stream backend (host names in db_url other
   * than IP literals and "localhost"); optional. */
  kz_http_client_resolve_fn *resolve;
  void *resolve_arg;
};

/* Counters, monotonic over the instance's life. */
struct kz_apps_registrar_stats {
  uint64_t authn_reqs;     /* valid authn_req received */
  uint64_t bad_msgs;       /* deliveries refused (not a valid authn_req) */
  uint64_t authn_resps;    /* authn_resp sent */
  uint64_t authn_errs;     /* authn_err sent */
  uint64_t unanswered;     /* requests dropped on a db failure */
  uint64_t db_requests;    /* view queries sent */
  uint64_t db_errors;      /* view queries that failed */
  uint64_t cache_hits;     /* lookups answered from the cache */
  uint64_t cache_misses;
  uint64_t invalidations;  /* cache entries dropped by document notices */
  uint64_t doc_notices;    /* document change notices received */
};

/* kz_env app entry points (the kz_sim_app / CLI shape).  cfg is a
 * `const struct kz_apps_registrar_cfg *` that must outlive the instance
 * (strings included).  Returns 0 and *instance (a struct
 * kz_apps_registrar), KZ_EINVAL (NULL arguments, no db_url or
 * bus_factory, a db_url that is not http://host[:port]), KZ_ENOMEM, or
 * the factory's error.  stop: cancels pending db requests without
 * answering them, frees the bus and the instance; NULL is a no-op. */
int kz_apps_registrar_start(struct kz_env *env, const void *cfg, void **instance);
void kz_apps_registrar_stop(void *instance);

void kz_apps_registrar_get_stats(const struct kz_apps_registrar *r, struct kz_apps_registrar_stats *out);
/* Number of entries in the lookup cache (expired ones included until
 * they are next touched). */
size_t kz_apps_registrar_cache_size(const struct kz_apps_registrar *r);
/* Drops every cached lookup. */
void kz_apps_registrar_cache_flush(struct kz_apps_registrar *r);
/* The bus client, for tests and tools. */
struct kz_bus *kz_apps_registrar_bus(const struct kz_apps_registrar *r);

/* ------------------------------------------------------------------ */
/* Kazoo naming helpers                                                 */

/* Writes the account database name of a 32-hex-digit account id,
 * "account/xx/yy/rest" (Kazoo's kz_util:format_account_db raw form, 42
 * characters and a NUL), into out.  Returns 0 or KZ_EINVAL (not 32 hex
 * digits; upper-case digits are accepted and lower-cased). */
#define KZ_APPS_ACCOUNT_DB_LEN 48
int kz_apps_account_db(const char *account_id, char out[KZ_APPS_ACCOUNT_DB_LEN]);

/* Appends `s` percent-encoded for one URL path segment or query value:
 * every byte but [A-Za-z0-9-._~] becomes %XX, so "account/3c/3f/..."
 * becomes "account%2F3c%2F3f%2F...".  Returns 0 or KZ_ENOMEM. */
int kz_apps_url_escape(struct kz_buf *out, const char *s);

#endif /* KZ_APPS_H */
