/* kz/topology.h — simulated topologies: hosts, the roles they run, links and faults, loaded from hand-written YAML. */
#ifndef KZ_TOPOLOGY_H
#define KZ_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/env.h"

/* A topology file (the .yaml files of scenarios/topologies/, format in
 * docs/topologies.md) says which hosts exist, which kz roles and SIPp
 * endpoints run on each, how the network between them behaves and which
 * faults happen when.  Loading checks everything it can without knowing
 * which roles this build has (that is sim/run's job): every mistake is
 * reported as "<file>:<line>:<column>: <what is wrong>", with a "did you
 * mean" hint for misspelt keys and names.
 *
 * Everything is integers: durations in ns, probabilities in ppm, so a
 * topology maps onto the simulator without floating point. */

/* The roles a host can run.  Names as written in topology files. */
enum kz_topo_role {
  KZ_TOPO_PROXY = 0, /* "proxy": registrar, load balancer (Kamailio) */
  KZ_TOPO_MEDIA,     /* "media": B2BUA, RTP (FreeSWITCH) */
  KZ_TOPO_ECALLMGR,  /* "ecallmgr" */
  KZ_TOPO_APPS,      /* "apps": callflows, registrar auth, crossbar, CDRs */
  KZ_TOPO_DB,        /* "db" (CouchDB) */
  KZ_TOPO_BROKER,    /* "broker" (RabbitMQ) */
  KZ_TOPO_SIPP_UAC,  /* "sipp-uac": a simulated SIPp placing calls */
  KZ_TOPO_SIPP_UAS,  /* "sipp-uas": a simulated SIPp answering calls */
  KZ_TOPO_ROLE_COUNT
};

/* The role's name in topology files ("sipp-uac"), NULL when out of range. */
const char *kz_topo_role_name(enum kz_topo_role r);
/* The role named `name`, or -1. */
int kz_topo_role_from_name(const char *name);

/* Where something was written: 1-based line and column (0: nowhere, e.g.
 * a value taken from the defaults). */
struct kz_topo_pos {
  uint32_t line, col;
};

/* Delay distribution of a link.  Only UNIFORM (latency + uniform
 * [0, jitter]) is modelled by the simulator today; the others are parsed
 * and validated so topology files can say what they mean, and sim/run
 * refuses them with a clear message until the network model has them. */
enum kz_topo_dist {
  KZ_TOPO_DIST_UNIFORM = 0,
  KZ_TOPO_DIST_NORMAL,
  KZ_TOPO_DIST_PARETO,
  KZ_TOPO_DIST_PARETONORMAL,
};
const char *kz_topo_dist_name(enum kz_topo_dist d);

/* Which fields of a link were written (the others come from the default
 * link, or from the simulator's defaults for the default link). */
enum {
  KZ_TOPO_LINK_LATENCY = 1u << 0,
  KZ_TOPO_LINK_JITTER = 1u << 1,
  KZ_TOPO_LINK_DIST = 1u << 2,
  KZ_TOPO_LINK_LOSS = 1u << 3,
  KZ_TOPO_LINK_DUP = 1u << 4,
  KZ_TOPO_LINK_REORDER = 1u << 5,
  KZ_TOPO_LINK_REORDER_DELAY = 1u << 6,
  KZ_TOPO_LINK_QUEUE = 1u << 7,
  KZ_TOPO_LINK_QUEUE_BYTES = 1u << 8,
};

/* Properties of one directed path (the fields of struct kz_sim_link_cfg,
 * plus the distribution). */
struct kz_topo_link {
  uint32_t set;          /* KZ_TOPO_LINK_* of the fields written */
  uint64_t latency_ns;   /* "latency": minimum one-way delay */
  uint64_t jitter_ns;    /* "jitter": extra delay, [0, jitter] */
  enum kz_topo_dist dist; /* "distribution" */
  uint32_t loss_ppm;     /* "loss" */
  uint32_t dup_ppm;      /* "duplicate" */
  uint32_t reorder_ppm;  /* "reorder" */
  uint64_t reorder_ns;   /* "reorder_delay" */
  uint32_t queue_packets; /* "queue": datagrams in flight, 0 = no limit */
  uint64_t queue_bytes;  /* "queue_bytes" */
  struct kz_topo_pos pos;
  struct kz_topo_pos dist_pos; /* where "distribution" was written */
};

/* Storage crash behaviour of a host ("crash_mode"). */
enum kz_topo_crash_mode {
  KZ_TOPO_CRASH_REVERT = 0, /* "revert": unsynced writes are lost */
  KZ_TOPO_CRASH_TORN = 1,   /* "torn": a torn prefix of them may survive */
};

#define KZ_TOPO_NAME_MAX 31

struct kz_topo_host {
  char name[KZ_TOPO_NAME_MAX + 1];
  struct kz_addr addr;   /* IPv4, port 0 */
  unsigned cores;        /* 1..64; KZ_SIM_DEFAULT_CORES (2) when not written */
  enum kz_topo_crash_mode crash_mode;
  uint32_t roles;        /* bit (1u << enum kz_topo_role) per role it runs */
  struct kz_topo_pos pos;
  struct kz_topo_pos role_pos[KZ_TOPO_ROLE_COUNT]; /* where each role was written */
};

/* A configured path: from -> to, and to -> from too when `both`
 * ("between: [a, b]").  Fields not written are the default link's. */
struct kz_topo_path {
  size_t from, to; /* host indexes */
  bool both;
  struct kz_topo_link link;
};

enum kz_topo_fault_kind {
  KZ_TOPO_FAULT_CRASH = 0, /* host crashes at `at` (and restarts at `until` unless UINT64_MAX) */
  KZ_TOPO_FAULT_RESTART,   /* host restarts at `at` */
  KZ_TOPO_FAULT_PARTITION, /* side a cut from side b from `at` to `until` (UINT64_MAX: never heals) */
  KZ_TOPO_FAULT_SKEW,      /* host's wall clock: jumps by skew_ns and/or drifts drift_ppm from `at` */
  KZ_TOPO_FAULT_STALL,     /* host's processes (or one role's) stall from `at` for until - at */
  KZ_TOPO_FAULT_KILL,      /* host's processes (or one role's) killed at `at`, started again at `until` */
};
#define KZ_TOPO_FAULT_KINDS 6

struct kz_topo_fault {
  enum kz_topo_fault_kind kind;
  uint64_t at_ns;
  uint64_t until_ns;  /* restart / heal / end of stall / start after a kill; UINT64_MAX: never */
  size_t host;        /* CRASH, RESTART, SKEW, STALL */
  int role;           /* STALL, KILL: the role whose process it hits, -1: every process of the host */
  /* PARTITION: host indexes of the two sides; `oneway` cuts only a -> b
   * (b's packets still reach a: an asymmetric partition). */
  size_t *side_a, *side_b;
  size_t na, nb;
  bool oneway;
  int64_t skew_ns;    /* SKEW "by" */
  int32_t drift_ppm;  /* SKEW "drift" */
  bool has_skew, has_drift;
  struct kz_topo_pos pos;
};

struct kz_topo {
  char *file;         /* the name errors use (the path's last component) */
  char *name;         /* "name:", or the file name without .yaml */
  char *description;  /* "description:", or "" */
  struct kz_topo_host *hosts;
  size_t nhosts;
  struct kz_topo_link default_link; /* "links: default:" (set == 0: the simulator's defaults) */
  struct kz_topo_path *paths;
  size_t npaths;
  struct kz_topo_fault *faults;
  size_t nfaults;
};

/* Why a load failed.  `text` is "<file>:<line>:<col>: <what is wrong>"
 * (":<line>:<col>" left out when not tied to a place, e.g. an unreadable
 * file). */
struct kz_topo_err {
  uint32_t line, col;
  char text[512];
};

/* Parses a topology from the bytes of a YAML file; `file_name` names it
 * in errors (its last path component is used; NULL: "topology").  On
 * success *out is the caller's (kz_topo_free).  Returns 0, KZ_EPROTO
 * (malformed or invalid: err says where and why), KZ_EINVAL (NULL
 * arguments) or KZ_ENOMEM.  err may be NULL. */
int kz_topo_load(struct kz_topo **out, const char *file_name, const void *data, size_t len,
                 struct kz_topo_err *err);
/* Reads the file at `path` and parses it as kz_topo_load does.  Returns
 * the same codes, or KZ_EIO / KZ_ENOENT when the file cannot be read (err
 * says so). */
int kz_topo_load_file(struct kz_topo **out, const char *path, struct kz_topo_err *err);
/* Frees a topology.  NULL is a no-op. */
void kz_topo_free(struct kz_topo *t);

/* The index of the host named `name`, or -1. */
long kz_topo_host_index(const struct kz_topo *t, const char *name);
/* The effective configuration of path from -> to: the default link
 * overlaid with the last path entry that covers it. */
void kz_topo_path_link(const struct kz_topo *t, size_t from, size_t to, struct kz_topo_link *out);
/* Formats "<file>:<line>:<col>: <message>" into err for `pos` (for
 * checks made after loading, e.g. by sim/run).  Returns KZ_EPROTO. */
int kz_topo_error_at(const struct kz_topo *t, struct kz_topo_pos pos, struct kz_topo_err *err,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Parsers for the value syntaxes of topology files (also used by the
 * `kz sim` command line).  Each returns 0 or KZ_EINVAL with a reason in
 * `why` (a static string) when not NULL.
 *   duration: "<decimal><unit>", unit ns|us|ms|s|m, e.g. "1.5ms"; "0" alone
 *             is allowed.  `allow_negative` accepts a leading '-'.
 *   probability: "<decimal>%" (up to 4 decimals) or "<integer>ppm", at
 *             most 100%. */
int kz_topo_parse_duration(const char *s, bool allow_negative, int64_t *out_ns, const char **why);
int kz_topo_parse_ppm(const char *s, uint32_t *out_ppm, const char **why);

#endif /* KZ_TOPOLOGY_H */
