/* kz/sipp.h — SIPp XML scenario loader and a sans-I/O engine running many SIPp-style UAC/UAS calls on a kz_env. */
#ifndef KZ_SIPP_H
#define KZ_SIPP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/buf.h"
#include "kz/env.h"

/* ------------------------------------------------------------------ */
/* Scenarios                                                           */

/* A loaded scenario: an immutable list of commands (send, recv, pause,
 * nop) with their attributes and actions, labels resolved to indexes,
 * message templates compiled into literal and keyword parts, regexps
 * compiled.  Opaque; one scenario may drive any number of engines. */
struct kz_sipp_scenario;

/* A "-key name value" pair: [name] in the scenario is replaced by value
 * when the scenario loads (SIPp's generic keywords).  Also used for
 * "-set name value" global variables in the engine config. */
struct kz_sipp_key {
  const char *name;
  const char *value;
};

struct kz_sipp_load_opts {
  const struct kz_sipp_key *keys; /* SIPp's -key; may be NULL */
  size_t nkeys;
};

/* Why a load failed.  `line` is the 1-based line in the file (0 when not
 * tied to a line); `text` is "<file>:<line>: <what is wrong>", and for a
 * feature this reader does not implement it starts with "unsupported: "
 * and names the feature, e.g. "unsupported: <sendCmd> (3PCC) at line 12". */
struct kz_sipp_load_err {
  int line;
  bool unsupported;
  char text[256];
};

/* Parses the bytes of a SIPp XML scenario (the caller read the file;
 * `file_name` only names it in errors and may be NULL).  The XML reader
 * is as lenient as SIPp's: raw '<' and '>' inside attribute values,
 * "--" inside comments, unclosed elements (closed by their parent's end
 * tag, with a warning), CDATA sections and the entities &lt; &gt; &amp;
 * &quot; &apos;.  On success *out is the caller's (kz_sipp_scenario_free).
 * Returns 0, KZ_EPROTO (malformed: err says where and why), KZ_ENOTSUP
 * (a command, action, attribute value or keyword not implemented: err
 * names it), KZ_EINVAL (NULL arguments) or KZ_ENOMEM.  err may be NULL. */
int kz_sipp_scenario_load(struct kz_sipp_scenario **out, const char *file_name,
                          const void *data, size_t len,
                          const struct kz_sipp_load_opts *opts,
                          struct kz_sipp_load_err *err);
/* Frees a scenario.  NULL is a no-op.  No engine may still use it. */
void kz_sipp_scenario_free(struct kz_sipp_scenario *s);

/* The <scenario name="..."> attribute ("" when absent). */
const char *kz_sipp_scenario_name(const struct kz_sipp_scenario *s);
/* Number of commands (send, recv, pause, nop, timewait). */
size_t kz_sipp_scenario_len(const struct kz_sipp_scenario *s);
/* Number of lenient-parsing warnings and the i-th one (NUL-terminated,
 * owned by the scenario), e.g. "line 183: element <Reference> not
 * closed, closed by </scenario>". */
size_t kz_sipp_scenario_warning_count(const struct kz_sipp_scenario *s);
const char *kz_sipp_scenario_warning(const struct kz_sipp_scenario *s, size_t i);
/* Appends the flow in the corpus INDEX's notation (">INVITE <100? <200
 * >ACK pause L:1 ...") to out.  Returns 0 or KZ_ENOMEM. */
int kz_sipp_scenario_describe(const struct kz_sipp_scenario *s, struct kz_buf *out);

enum kz_sipp_role {
  KZ_SIPP_ROLE_AUTO = 0, /* from the scenario: first send/recv decides */
  KZ_SIPP_UAC = 1,       /* creates calls (SIPp client mode) */
  KZ_SIPP_UAS = 2,       /* calls are created by incoming requests */
};
/* The role SIPp would run the scenario in (UAC when the first command
 * that is not a pause or nop is a send). */
enum kz_sipp_role kz_sipp_scenario_role(const struct kz_sipp_scenario *s);

/* ------------------------------------------------------------------ */
/* Engine                                                              */

/* Configuration; every pointer is borrowed and must outlive the engine.
 * Zero means "SIPp's default" for every numeric field. */
struct kz_sipp_cfg {
  const struct kz_sipp_scenario *scenario;
  enum kz_sipp_role role;    /* AUTO: kz_sipp_scenario_role */
  struct kz_addr local;      /* bound UDP address; its IP is [local_ip] (give the real one) */
  struct kz_addr remote;     /* UAC: where requests go ([remote_ip]/[remote_port]) */
  uint32_t rate;             /* -r: calls per rate period (UAC); default 10 */
  uint32_t rate_period_ms;   /* -rp; default 1000 */
  uint64_t max_calls;        /* -m: calls to create (UAC) or accept (UAS); 0 = unlimited */
  uint32_t call_limit;       /* -l: concurrent calls; 0 = unlimited */
  const char *service;       /* -s; default "service" */
  const char *auth_user;     /* -au; default: service */
  const char *auth_pass;     /* -ap; default "password" */
  const uint8_t *inf;        /* -inf: the CSV bytes for [fieldN], or NULL */
  size_t inf_len;
  const struct kz_sipp_key *globals; /* -set: global variables [$name] */
  size_t nglobals;
  uint32_t pause_ms;         /* -d: duration of a <pause/> without attributes; default 0 */
  uint32_t recv_timeout_ms;  /* -recv_timeout: default timeout of recvs; 0 = none */
  uint32_t call_timeout_ms;  /* a call older than this fails ("call timeout"); 0 = none */
  uint32_t t2_ms;            /* -T2; default 4000 */
  uint32_t max_invite_retrans;     /* default 5 */
  uint32_t max_non_invite_retrans; /* default 9 */
  bool no_retrans;           /* -nr */
  uint32_t deadcall_wait_ms; /* -deadcall_wait: late messages of ended calls are absorbed; default 33000 */
  uint32_t pid;              /* [pid]; default 4242 (fixed: traces must not depend on the OS) */
  struct kz_addr media;      /* [media_ip]/[media_port]; IP 0 = local IP, port 0 = 6000 */
  bool callid_slash_ign;     /* -callid_slash_ign: keep "///" prefixes in Call-IDs */
  /* Called once when a UAC has created max_calls calls and all ended. */
  void (*on_done)(void *arg);
  void *done_arg;
};

/* Why calls failed (SIPp's "Failed ..." counters). */
enum kz_sipp_fail {
  KZ_SIPP_FAIL_UNEXPECTED = 0, /* unexpected message */
  KZ_SIPP_FAIL_RECV_TIMEOUT,   /* recv timeout without ontimeout */
  KZ_SIPP_FAIL_MAX_RETRANS,    /* max UDP retransmissions reached */
  KZ_SIPP_FAIL_REGEXP_NOMATCH, /* ereg check_it did not match */
  KZ_SIPP_FAIL_REGEXP_MATCH,   /* ereg check_it_inverse matched */
  KZ_SIPP_FAIL_TEST,           /* test / strcmp check failed */
  KZ_SIPP_FAIL_CALL_TIMEOUT,   /* call-level timeout */
  KZ_SIPP_FAIL_SEND,           /* send error or a message that could not be built */
  KZ_SIPP_FAIL_COUNT
};
const char *kz_sipp_fail_name(enum kz_sipp_fail f);

#define KZ_SIPP_MAX_BUCKETS 16
#define KZ_SIPP_MAX_RTDS 5

/* A repartition table (SIPp's ResponseTimeRepartition): count[i] holds
 * values < bound_ms[i] (and >= the previous bound); count[nbounds] holds
 * the rest. */
struct kz_sipp_repartition {
  uint32_t nbounds;
  uint32_t bound_ms[KZ_SIPP_MAX_BUCKETS];
  uint64_t count[KZ_SIPP_MAX_BUCKETS + 1];
  uint64_t n, sum_ms, min_ms, max_ms;
};

struct kz_sipp_stats {
  uint64_t calls_created;
  uint64_t calls_current;
  uint64_t calls_successful;
  uint64_t calls_failed;
  uint64_t failed[KZ_SIPP_FAIL_COUNT];
  uint64_t retransmissions;   /* messages re-sent (timer or peer retransmission) */
  uint64_t out_of_call;       /* messages for no call that could not start one */
  uint64_t dead_call;         /* late messages of ended calls, absorbed */
  uint64_t parse_errors;      /* datagrams that were not SIP */
  uint64_t calls_refused;     /* UAS: new calls beyond -m or -l */
  uint32_t nrtd;
  char rtd_name[KZ_SIPP_MAX_RTDS][16];
  struct kz_sipp_repartition rtd[KZ_SIPP_MAX_RTDS];
  struct kz_sipp_repartition call_length;
};

/* Counters per scenario command, like SIPp's main screen. */
struct kz_sipp_msg_stats {
  uint64_t sent, recv, sent_retrans, recv_retrans, timeout, unexpected, lost;
  uint64_t sessions; /* pauses started */
};

struct kz_sipp;

/* Creates an engine on `env`: binds cfg->local and, as a UAC, starts
 * creating calls at the configured rate (the first one now).  *out is
 * the caller's until kz_sipp_free.  Returns 0, KZ_EINVAL (no scenario,
 * UAC without remote, bad CSV), KZ_ENOMEM or the bind error. */
int kz_sipp_new(struct kz_sipp **out, struct kz_env *env, const struct kz_sipp_cfg *cfg);
/* Stops every timer, closes the socket and frees the engine and its
 * calls (calls in progress are dropped, not counted).  NULL is a no-op. */
void kz_sipp_free(struct kz_sipp *e);

const struct kz_sipp_stats *kz_sipp_stats(const struct kz_sipp *e);
/* Per-command counters, indexed like the scenario's commands; *n gets
 * kz_sipp_scenario_len. */
const struct kz_sipp_msg_stats *kz_sipp_msg_stats(const struct kz_sipp *e, size_t *n);
/* True once a UAC created max_calls calls and all of them ended. */
bool kz_sipp_done(const struct kz_sipp *e);

/* Appends a SIPp-like statistics screen (the scenario's messages with
 * their counters, then call counters, failure reasons and repartition
 * tables) to out.  Integers only.  Returns 0 or KZ_ENOMEM. */
int kz_sipp_print_stats(const struct kz_sipp *e, struct kz_buf *out);

/* kz_sim_app-compatible entry points: cfg is a struct kz_sipp_cfg. */
int kz_sipp_app_start(struct kz_env *env, const void *cfg, void **instance);
void kz_sipp_app_stop(void *instance);

/* Builds the value of an Authorization (challenge_code 401) or
 * Proxy-Authorization (407) header answering `challenge` (the
 * WWW-/Proxy-Authenticate value), SIPp-style: parameters read leniently
 * (a missing nonce is empty), qop=auth when offered with nonce count nc
 * and the given cnonce, MD5 / SHA-256 / SHA-512-256 (and -sess) through
 * kz_sip_digest.  Appends "Digest username=...,realm=...,...,response=..."
 * to out.  Returns 0, KZ_ENOTSUP (not Digest, or an unknown algorithm),
 * KZ_EPROTO (no realm) or KZ_ENOMEM. */
int kz_sipp_auth_credentials(struct kz_buf *out, struct kz_slice challenge,
                             struct kz_slice user, struct kz_slice pass,
                             struct kz_slice method, struct kz_slice uri, uint32_t nc,
                             struct kz_slice cnonce);

#endif /* KZ_SIPP_H */
