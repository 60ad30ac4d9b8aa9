/* kz/proxy.h — the proxy role (Kazoo's Kamailio): stateful SIP proxy, registrar with digest auth over the bus, dispatcher, anti-flood; a sans-I/O kz_env app. */
#ifndef KZ_PROXY_H
#define KZ_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/bus_client.h"
#include "kz/env.h"

/* The proxy is one kz_env app: kz_proxy_start(env, cfg) binds the SIP
 * port (UDP, and TCP when enabled), connects to the bus through the
 * backend the configuration's factory makes, and from then on runs on
 * events only.  kz_proxy_stop releases everything.  Everything it does
 * is documented in docs/proxy.md, with the places where it differs from
 * the Kamailio configuration Kazoo ships. */

struct kz_proxy;

#define KZ_PROXY_MAX_SERVERS 32 /* configured media servers */
#define KZ_PROXY_MAX_TRUSTED 16 /* extra trusted source IPs */
#define KZ_PROXY_URI_MAX 96

/* Makes the bus backend for a starting proxy (AMQP under the real
 * driver, the simulator's broker wire, or a test fake).  Returns 0 and
 * fills *out, or a KZ_E* code (the proxy then runs without a bus: it
 * drops REGISTERs, as Kazoo's Kamailio does when its zone has no AMQP
 * connection). */
typedef int kz_proxy_bus_factory_fn(void *arg, struct kz_env *env,
                                    struct kz_bus_backend *out);

/* Failed-auth actions (Kazoo's antiflood "action"). */
enum kz_proxy_auth_action {
  KZ_PROXY_AUTH_LOG = 0,   /* only log */
  KZ_PROXY_AUTH_DROP = 1,  /* drop silently */
  KZ_PROXY_AUTH_REPLY = 2, /* 403 Forbidden with Retry-After */
};

/* Every knob, with Kazoo's defaults set by kz_proxy_config_defaults.
 * Plain data (fixed buffers, no pointers but the factory) so a config
 * can be a static in a test or filled from JSON. */
struct kz_proxy_config {
  /* Transport. */
  char listen[KZ_ADDR_STRLEN];    /* "ip:port" to bind (port 0 = 5060) */
  char advertise[KZ_ADDR_STRLEN]; /* "host[:port]" for Via, Record-Route and
                                     Proxy-Path; "" = the bound address */
  bool tcp;                       /* also listen on TCP (default true) */
  char node[64];                  /* Node in bus messages; "" = "kamailio@<env name>" */
  char zone[32];                  /* this proxy's zone ("" = local) */

  /* Registrar (registrar-role.cfg). */
  uint32_t min_expires_s;     /* 300: below it 423 (or raised, see next) */
  bool reject_brief_expires;  /* true: 423 Interval Too Brief; false: raise to min */
  uint32_t max_expires_s;     /* 3600: above it clamped */
  uint32_t default_expires_s; /* 600: used when require_expires is off */
  bool require_expires;       /* true: REGISTER without any expiry -> 400 */
  uint32_t authn_timeout_ms;  /* 2500: authn_req wait; on timeout drop */
  uint32_t auth_cache_ttl_s;  /* 7200: cached credentials */
  uint32_t nonce_lifetime_s;  /* 300: older nonces are answered stale=true */
  uint32_t max_contacts;      /* per AOR; 0 = no limit */

  /* Request pipeline. */
  uint32_t max_forwards_default; /* 10: Max-Forwards set when missing
                                    (mf_process_maxfwd_header("10")) */

  /* Dispatcher (dispatcher-role). */
  char media_servers[KZ_PROXY_MAX_SERVERS][KZ_PROXY_URI_MAX]; /* "sip:ip:port" or "ip:port" */
  size_t n_media_servers;
  uint32_t probe_interval_ms;  /* 10000: OPTIONS probes */
  uint32_t probe_threshold;    /* 3 failed probes: down */
  uint32_t max_failover;       /* 2 retries after the first server */
  uint32_t invite_timeout_ms;  /* 5000: no answer from a media server -> next */
  uint32_t heartbeat_fudge_s;  /* 45: added to a nodes heartbeat's Expires */
  uint32_t sticky_ttl_s;       /* 60: a 407'd call goes back to its server */

  /* NAT (nat-traversal-role). */
  bool nat_ping;                 /* OPTIONS keep-alives to NATed UDP contacts */
  uint32_t nat_ping_interval_s;  /* 30 */
  uint32_t nat_ping_max_failures; /* 3 unanswered pings drop the binding; 0 never */

  /* Anti-flood / anti-fraud. */
  bool antiflood;               /* pike + failed-auth tracking (default true) */
  uint32_t pike_density;        /* 50 requests ... */
  uint32_t pike_window_ms;      /* ... per 2000 ms per source IP */
  uint32_t pike_ban_s;          /* 300: banned sources are dropped */
  uint32_t auth_fail_max;       /* 4 failures ... */
  uint32_t auth_fail_window_s;  /* ... within 300 s */
  uint32_t auth_retry_after_s;  /* 3600: Retry-After of the 403, and the ban */
  enum kz_proxy_auth_action auth_fail_action; /* default REPLY */
  bool traffic_filter;          /* drop untrusted requests to bare IPs */
  char trusted[KZ_PROXY_MAX_TRUSTED][48]; /* extra trusted source IPs */
  size_t n_trusted;

  /* The bus (not part of the JSON file; the driver sets it). */
  kz_proxy_bus_factory_fn *bus_factory;
  void *bus_arg;
};

/* Fills c with Kazoo's defaults (listen "0.0.0.0:5060", no media
 * servers, no bus). */
void kz_proxy_config_defaults(struct kz_proxy_config *c);

/* Parses a JSON object (jansson) over the defaults already in c: every
 * key is optional, unknown keys are refused.  Keys are the field names
 * above (media_servers and trusted are arrays of strings,
 * auth_fail_action is "log", "drop" or "reply").  On error c may be
 * partly updated and err (errlen bytes, may be NULL) names the field:
 * "min_expires_s: expected a non-negative integer".
 * Returns 0, KZ_EPROTO (bad JSON or value) or KZ_EINVAL (NULL c/json). */
int kz_proxy_config_parse(struct kz_proxy_config *c, const char *json, size_t len,
                          char *err, size_t errlen);

/* Checks a configuration for consistency (addresses parse, bounds
 * ordered).  Returns 0 or KZ_EINVAL with err naming the field. */
int kz_proxy_config_check(const struct kz_proxy_config *c, char *err, size_t errlen);

/* kz_env app entry points (the kz_sim_app / CLI shape).  start: cfg is a
 * const struct kz_proxy_config * that must outlive the instance.
 * Returns 0 and *instance, or KZ_EINVAL (bad config), KZ_ENOMEM,
 * KZ_EADDRINUSE / KZ_EADDRNOTAVAIL / KZ_EIO (binding failed).
 * stop: closes every handle and frees the instance; NULL is a no-op. */
int kz_proxy_start(struct kz_env *env, const void *cfg, void **instance);
void kz_proxy_stop(void *instance);

/* Counters, for tests and `kz` output. */
struct kz_proxy_stats {
  uint64_t requests_in, responses_in;
  uint64_t malformed;          /* parse failures (answered or dropped) */
  uint64_t replies_local;      /* responses the proxy generated */
  uint64_t forwarded;          /* requests relayed (per branch) */
  uint64_t registers_ok, registers_challenged, registers_dropped;
  uint64_t authn_requests, authn_timeouts, auth_cache_hits, auth_failures;
  uint64_t reg_success_published, reg_queries_answered, reg_flushes;
  uint64_t failovers;
  uint64_t flood_dropped, flood_bans, auth_bans, filtered;
  uint64_t nat_pings_sent, nat_bindings_dropped;
  uint64_t probes_sent;
};
void kz_proxy_get_stats(const struct kz_proxy *p, struct kz_proxy_stats *out);

/* Bindings of an AOR ("user@realm", case-insensitive), 0 when none. */
size_t kz_proxy_binding_count(const struct kz_proxy *p, const char *aor);
/* Number of media servers known (configured and advertised) and how
 * many of them are up. */
size_t kz_proxy_server_count(const struct kz_proxy *p, size_t *up);
/* Whether the media server at "ip:port" is known and up. */
bool kz_proxy_server_is_up(const struct kz_proxy *p, const char *addr);
/* The bus client (NULL when running without one). */
struct kz_bus *kz_proxy_bus(const struct kz_proxy *p);

#endif /* KZ_PROXY_H */
