/* proxy_int.h — private structures shared by the proxy's files (transport, forwarding, registrar, dispatcher, anti-flood). */
#ifndef KZ_PROXY_INT_H
#define KZ_PROXY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kz/buf.h"
#include "kz/bus_client.h"
#include "kz/env.h"
#include "kz/map.h"
#include "kz/proxy.h"
#include "kz/sip_build.h"
#include "kz/sip_digest.h"
#include "kz/sip_msg.h"
#include "kz/sip_txn.h"

#define PX_LOG "proxy"
#define PX_NS_S UINT64_C(1000000000)
#define PX_NS_MS UINT64_C(1000000)
/* Our branches: "z9hG4bK" + this + 16 hex loop hash + "." + random. */
#define PX_BRANCH_MARK "kzp"

/* Kinds of the objects hung on transactions as their user pointer. */
enum px_user_kind { PXU_PCTX = 1, PXU_BRANCH, PXU_PROBE, PXU_PING };

/* What the request being fed to the transaction layer is to become. */
enum px_mode {
  PXM_NONE = 0,
  PXM_FWD,      /* one branch to cur_fwd */
  PXM_DISPATCH, /* media servers, with failover */
  PXM_LOCATION, /* fork to the bindings of cur_aor */
  PXM_ACK,      /* an ACK: forward statelessly to cur_fwd (NULL: drop) */
};

/* ------------------------------------------------------------------ */
/* Transport                                                           */

/* One TCP connection (accepted or opened), with its input buffer. */
struct px_conn {
  struct kz_proxy *p;
  struct kz_stream *s;
  struct kz_addr peer;
  struct kz_buf in;
  struct px_conn *prev, *next;
};

/* ------------------------------------------------------------------ */
/* Stateful forwarding (RFC 3261 §16)                                 */

struct px_pctx;

/* One client branch of a proxied request. */
struct px_branch {
  enum px_user_kind kind; /* PXU_BRANCH */
  struct px_pctx *pc;     /* NULL once the context is gone */
  struct kz_sip_txn *txn; /* referenced while live */
  struct kz_addr dest;
  enum kz_sip_transport transport;
  int server_id;          /* dispatcher server, -1 for others */
  uint16_t status;        /* last status received (0 none) */
  bool final;             /* got (or was given) a final response */
  bool got_prov;          /* a 1xx arrived: it may be CANCELled */
  bool cancel_pending;    /* CANCEL once a 1xx arrives */
  bool abandoned;         /* timed out by us: ignore what comes later */
  struct kz_timer fr;     /* no-answer timer for dispatched INVITEs */
  struct px_branch *next;
};

/* How a request leaves: the next hop and the rewrite to apply. */
struct px_fwd {
  char ruri[512];               /* new Request-URI ("" = keep) */
  struct kz_addr dest;
  enum kz_sip_transport transport;
  size_t drop_routes;           /* leading Route values to remove */
  bool drop_last_route;         /* strict-route fix (§16.4) */
  bool add_rr;                  /* record-route (first hop, initial) */
  bool remove_alias;            /* R-URI ;alias handled: strip it */
  bool strip_xauth;             /* drop X-AUTH-* headers (untrusted source) */
  char alias[80];               /* set_contact_alias: "ip~port~proto" added to
                                   the Contact URI ("" = none) */
  char xauth[320];              /* X-AUTH-* header lines to add ("" = none) */
  const char *path;             /* Path of the target binding: its values go
                                   first in the Route set (NULL = none).
                                   Borrowed: valid only while building */
};

/* One proxied request: a server transaction and its client branches. */
struct px_pctx {
  enum px_user_kind kind; /* PXU_PCTX */
  struct kz_proxy *p;
  struct kz_sip_txn *stx;       /* referenced */
  struct kz_sip_msg *req;       /* the received request, referenced */
  struct kz_addr src;
  enum kz_sip_transport src_transport;
  struct px_fwd fwd;            /* template for dispatched branches */
  struct px_branch *branches;
  size_t nbranches, nlive;
  bool final_sent;              /* a final response went upstream */
  bool cancelled;
  bool no_failover;             /* a 180/183/2xx was relayed */
  bool dispatched;              /* branches go to media servers */
  int ds_order[KZ_PROXY_MAX_SERVERS * 2];
  size_t ds_n, ds_next;
  uint32_t retries;
  struct kz_sip_msg *best;      /* best final response so far, referenced */
  uint16_t best_status;         /* of best, or a local status when best NULL */
  bool exhausted;               /* failover gave up: 486 Unable to Comply */
  bool stx_done;                /* the server transaction ended */
  unsigned busy;                /* handlers running on it: do not free */
  struct px_pctx *prev, *next;
};

/* ------------------------------------------------------------------ */
/* Registrar                                                           */

struct px_aor;

struct px_binding {
  struct px_aor *aor;
  char *contact;           /* the Contact URI as sent */
  char *contact_hdr;       /* the whole Contact value as sent */
  char *call_id;
  uint32_t cseq;
  uint64_t expires_at;     /* monotonic ns */
  uint32_t expires_s;      /* granted */
  struct kz_addr received; /* packet source */
  enum kz_sip_transport transport;
  struct kz_addr target;   /* where requests for it go */
  bool nated;
  char *path;              /* Path header values, "" when none */
  char *user_agent;
  int q;
  uint64_t registered_at;
  struct kz_timer expiry;
  /* NAT keep-alive */
  uint32_t ping_failures;
  bool ping_outstanding;
  struct px_binding *next;
};

/* Nonce-count entries of the registrar's digest verifier (see
 * px_registrar_init). */
#define PX_NC_SLOTS 65536u

struct px_aor {
  struct kz_proxy *p;
  char *key;               /* "user@realm", lower-cased */
  char *user, *realm;
  json_t *ccvs;            /* Custom-Channel-Vars of the last authn_resp */
  struct px_binding *bindings;
  size_t n;
};

/* A cached credential (auth_cache) or a cached permanent error. */
struct px_cred {
  char *password;          /* clear password, or NULL */
  char *ha1;               /* hex HA1 (Auth-Method a1-hash), or NULL */
  bool permanent_error;
  json_t *ccvs;
  uint64_t expires_at;
};

/* A REGISTER waiting for authn_resp. */
struct px_pending {
  struct kz_proxy *p;
  struct kz_sip_msg *msg;  /* own copy */
  struct kz_addr src;
  enum kz_sip_transport transport;
  char key[300];           /* "user@realm" of the credentials (as the callers' key[300]) */
  uint64_t req_id;
  struct px_pending *prev, *next;
};

/* ------------------------------------------------------------------ */
/* Dispatcher                                                          */

struct px_server {
  int id;                  /* stable, never reused */
  bool used;
  struct kz_addr addr;
  enum kz_sip_transport transport;
  char uri[KZ_PROXY_URI_MAX];
  int group;               /* 1 local zone, 2 other zones */
  bool from_config;
  uint64_t expires_at;     /* heartbeat expiry, 0 = none */
  char node[64];
  bool up;
  uint32_t failures;
  bool probe_outstanding;
  uint64_t probe_seq;
};

struct px_probe {
  enum px_user_kind kind; /* PXU_PROBE or PXU_PING */
  struct kz_proxy *p;
  int server_id;
  uint64_t seq;
  char aor[256];          /* PXU_PING: binding's AOR key and contact */
  char contact[256];
  struct px_probe *prev, *next;
};

struct px_sticky {
  int server_id;
  uint64_t expires_at;
};

/* ------------------------------------------------------------------ */
/* Anti-flood                                                          */

struct px_pike {
  uint64_t window_start;
  uint32_t count;
  uint64_t banned_until;
};

struct px_authfail {
  uint64_t first_at;
  uint32_t count;
  uint64_t banned_until;
};

/* ------------------------------------------------------------------ */

struct kz_proxy {
  struct kz_env *env;
  const struct kz_proxy_config *cfg;
  struct kz_prng prng;
  struct kz_addr local;            /* bound UDP address */
  char host[KZ_ADDR_STRLEN];       /* advertised host */
  uint16_t port;                   /* advertised port */
  char self_uri[KZ_ADDR_STRLEN + 16]; /* "sip:host:port" */
  char node[80];
  char sl_tag[KZ_SIP_TAG_LEN + 1]; /* To tag of stateless replies */
  struct kz_udp *udp;
  struct kz_listener *lst;
  struct px_conn *conns;
  struct kz_sip_txl *txl;
  struct kz_timer txl_timer;
  struct kz_bus *bus;
  char queue[96];
  /* forwarding */
  struct px_pctx *pctxs;
  const struct px_fwd *cur_fwd;    /* decision for the request being fed */
  enum px_mode cur_mode;           /* what to do with it */
  struct px_aor *cur_aor;          /* PXM_LOCATION */
  struct px_probe *probes;         /* probes and pings in flight */
  /* registrar */
  struct kz_map aors;              /* key -> struct px_aor* */
  struct kz_map creds;             /* "user@realm" -> struct px_cred* */
  struct px_pending *pending;
  struct kz_sip_digest_verifier *verifier;
  struct kz_timer nat_timer;
  /* dispatcher */
  struct px_server servers[KZ_PROXY_MAX_SERVERS * 2];
  size_t nservers;
  int next_server_id;
  struct kz_timer probe_timer;
  struct kz_map sticky;            /* Call-ID -> struct px_sticky* */
  /* anti-flood */
  struct kz_map pike;              /* source IP -> struct px_pike* */
  struct kz_map authfail;          /* "user::ip" -> struct px_authfail* */
  struct kz_timer gc_timer;
  struct kz_proxy_stats st;
};

/* ---- proxy.c: transport and helpers ---- */
int px_send(struct kz_proxy *p, const void *data, size_t len, const struct kz_addr *dest,
            enum kz_sip_transport transport);
void px_txl_rearm(struct kz_proxy *p);
/* Stateless reply to a parsed request (sl_send_reply): To tag = sl tag. */
void px_reply(struct kz_proxy *p, const struct kz_sip_msg *req, const struct kz_addr *src,
              enum kz_sip_transport transport, uint16_t status, const char *reason,
              const char *extra_headers);
/* Reply through a server transaction. */
void px_txn_reply(struct kz_proxy *p, struct kz_sip_txn *stx, uint16_t status,
                  const char *reason, const char *extra_headers);
bool px_is_self_uri(const struct kz_proxy *p, const struct kz_sip_uri *u);
/* set_contact_alias(): when m (received from src over tp) has one Contact
 * whose address is not src, writes "ip~port~proto" of src into out (n
 * bytes) and returns true; false (out = "") otherwise. */
bool px_contact_alias(const struct kz_sip_msg *m, const struct kz_addr *src,
                      enum kz_sip_transport tp, char *out, size_t n);
/* The address of the first URI of a Path (or Route) value list such as
 * "<sip:10.0.0.9:5060;lr>, <sip:...>", when its host is an IP literal. */
bool px_path_first_hop(const char *path, struct kz_addr *out, enum kz_sip_transport *tp);
/* Parses an alias value "ip~port~proto" into an address and transport. */
bool px_alias_parse(struct kz_slice alias, struct kz_addr *out, enum kz_sip_transport *tp);
/* Address of a sip URI with an IP literal host (default port 5060). */
bool px_uri_addr(const struct kz_sip_uri *u, struct kz_addr *out,
                 enum kz_sip_transport *tp);
bool px_host_is_ip(struct kz_slice host);
const char *px_transport_name(enum kz_sip_transport t);
uint64_t px_now(const struct kz_proxy *p);
/* Source IP of an address as text. */
void px_ip_str(const struct kz_addr *a, char *out, size_t len);

/* ---- forward.c ---- */
/* Builds the forwarded request into out: new top Via with `branch`,
 * Max-Forwards decremented, Route/R-URI edits of fwd, Record-Route. */
int px_build_request(struct kz_proxy *p, const struct kz_sip_msg *req, const struct kz_addr *src,
                     const struct px_fwd *fwd, const char *branch, struct kz_buf *out);
/* The same, knowing the inbound transport (double Record-Route). */
int px_build_request_tp(struct kz_proxy *p, const struct kz_sip_msg *req, const struct kz_addr *src,
                        enum kz_sip_transport in_tp, const struct px_fwd *fwd, const char *branch,
                        struct kz_buf *b);
void px_make_branch(struct kz_proxy *p, const struct kz_sip_msg *req, char *out, size_t len);
bool px_loop_detected(struct kz_proxy *p, const struct kz_sip_msg *req);
/* Starts proxying the request of server transaction stx. */
void px_proxy_request(struct kz_proxy *p, struct kz_sip_txn *stx, const struct kz_sip_msg *req,
                      const struct kz_addr *src, enum kz_sip_transport transport,
                      const struct px_fwd *fwd, enum px_mode mode, struct px_aor *aor);
void px_forward_stateless(struct kz_proxy *p, const struct kz_sip_msg *req,
                          const struct kz_addr *src, const struct px_fwd *fwd);
/* A response on branch b, received from src over tp. */
void px_on_branch_response(struct kz_proxy *p, struct px_branch *b, const struct kz_sip_msg *resp,
                           const struct kz_addr *src, enum kz_sip_transport tp);
void px_on_branch_failure(struct kz_proxy *p, struct px_branch *b, uint16_t status);
void px_on_branch_terminated(struct kz_proxy *p, struct px_branch *b);
void px_on_server_terminated(struct kz_proxy *p, struct px_pctx *pc);
void px_on_cancel(struct kz_proxy *p, struct kz_sip_txn *cancel, struct kz_sip_txn *target);
/* Relays a response that matches no transaction by its second Via;
 * alias (NULL = none) is set_contact_alias's value for its Contact. */
void px_forward_response_stateless(struct kz_proxy *p, const struct kz_sip_msg *resp,
                                   const char *alias);
void px_pctx_free_all(struct kz_proxy *p);

/* ---- registrar.c ---- */
int px_registrar_init(struct kz_proxy *p);
void px_registrar_fini(struct kz_proxy *p);
void px_on_register(struct kz_proxy *p, const struct kz_sip_msg *msg, const struct kz_addr *src,
                    enum kz_sip_transport transport);
/* Location lookup: the AOR's bindings, or NULL. */
struct px_aor *px_location(struct kz_proxy *p, struct kz_slice user, struct kz_slice realm);
void px_on_bus_delivery(void *arg, struct kz_bus *bus, const struct kz_bus_delivery *d);
void px_on_ping_result(struct kz_proxy *p, struct px_probe *pr, bool ok);
/* The X-AUTH-* header lines (Kazoo 4.3's SETUP_AUTH_HEADERS) for an
 * initial request from an untrusted src: X-AUTH-IP/-PORT always, and
 * X-AUTH-Token "<Authorizing-ID>@<Account-ID>" when the From AOR has a
 * binding received from src whose authn_resp gave both ids.  Writes
 * "" when the lines would not fit in n bytes. */
void px_xauth_headers(struct kz_proxy *p, const struct kz_sip_msg *m, const struct kz_addr *src,
                      char *out, size_t n);

/* Probe/ping objects hung on client transactions. */
struct px_probe *px_probe_new(struct kz_proxy *p, enum px_user_kind kind);
void px_probe_free(struct kz_proxy *p, struct px_probe *pr);
/* Sends an OPTIONS out of dialog (probes, NAT pings) as a client
 * transaction carrying pr; returns 0 or an error (pr then freed). */
int px_send_options(struct kz_proxy *p, const char *ruri, const struct kz_addr *dest,
                    enum kz_sip_transport tp, struct px_probe *pr);

/* ---- dispatcher.c ---- */
int px_dispatcher_init(struct kz_proxy *p);
void px_dispatcher_fini(struct kz_proxy *p);
bool px_is_media_server(const struct kz_proxy *p, const struct kz_addr *a);
struct px_server *px_server_by_id(struct kz_proxy *p, int id);
/* Ordered candidate list for a new call; returns how many. */
size_t px_dispatch_candidates(struct kz_proxy *p, struct kz_slice call_id, int *out, size_t max);
void px_dispatch_mark_failed(struct kz_proxy *p, int server_id);
void px_dispatch_remember(struct kz_proxy *p, struct kz_slice call_id, int server_id);
void px_on_probe_result(struct kz_proxy *p, struct px_probe *pr, uint16_t status);
void px_on_advertise(struct kz_proxy *p, const json_t *msg);

/* ---- antiflood.c ---- */
int px_antiflood_init(struct kz_proxy *p);
void px_antiflood_fini(struct kz_proxy *p);
bool px_is_trusted(const struct kz_proxy *p, const struct kz_addr *src);
/* Counts one request from src; false when it must be dropped. */
bool px_pike_allow(struct kz_proxy *p, const struct kz_addr *src);
/* Failed-auth bookkeeping. */
bool px_authfail_banned(struct kz_proxy *p, struct kz_slice user, const struct kz_addr *src);
/* Records a failure; true when it reached the limit (now banned). */
bool px_authfail_record(struct kz_proxy *p, struct kz_slice user, const struct kz_addr *src);
void px_authfail_clear(struct kz_proxy *p, struct kz_slice user, const struct kz_addr *src);
void px_authfail_clear_user(struct kz_proxy *p, struct kz_slice user);
/* TRAFFIC_FILTER: an initial request whose R-URI/From/To host is an IP. */
bool px_traffic_filtered(const struct kz_proxy *p, const struct kz_sip_msg *m);

#endif /* KZ_PROXY_INT_H */
