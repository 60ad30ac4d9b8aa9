/* kz/sim_run.h — runs a topology in the simulator: hosts, links, faults, SIPp endpoints and kz roles, checks, swarm, outputs. */
#ifndef KZ_SIM_RUN_H
#define KZ_SIM_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kz/sim.h"
#include "kz/sim_hooks.h"
#include "kz/sipp.h"
#include "kz/topology.h"

/* ------------------------------------------------------------------ */
/* The role table: what each topology role runs in the simulator.
 *
 * This table (sim/run/roles.c) is the ONE place that says which roles
 * this kz can run.  A role whose `app` is NULL is not built yet: a
 * topology naming it is refused with `missing` in the message, never
 * silently skipped.  Whoever builds a role fills its row: the kz_sim_app
 * and a config builder. */

struct kz_sim_run_opts;

/* What a role's config builder gets: the topology, the host the process
 * runs on and the run's options. */
struct kz_sim_run_role_ctx {
  const struct kz_topo *topo;
  size_t host;
  const struct kz_sim_run_opts *opts;
};

struct kz_sim_run_role {
  enum kz_topo_role role;
  const struct kz_sim_app *app; /* NULL: not built yet */
  const char *missing;          /* when app is NULL: why, and where it will come from */
  /* Builds the app's config for one process (*cfg must stay valid until
   * free_cfg; it outlives the simulator).  NULL: the app takes no config.
   * Returns 0 or a KZ_E* code (the run then stops with that error). */
  int (*build_cfg)(const struct kz_sim_run_role_ctx *ctx, void **cfg);
  void (*free_cfg)(void *cfg);
};

/* The row of role `r` (never NULL for a valid role). */
const struct kz_sim_run_role *kz_sim_run_role_get(enum kz_topo_role r);
/* Checks that every role `t` names is built.  Returns 0, or KZ_ENOTSUP
 * with err = "<file>:<line>:<col>: role 'media' is not built yet in this
 * kz (...)" at the first role that is not. */
int kz_sim_run_check_roles(const struct kz_topo *t, struct kz_topo_err *err);

/* ------------------------------------------------------------------ */
/* Running */

/* Invariants and hooks: see kz/sim_hooks.h (kz_sim_check_always,
 * kz_sim_check_sometimes, kz_buggify).  The run adds its own checks:
 * every SIPp call ended, every planned call was placed, processes release
 * every handle and timer when they stop, no kz allocation outlives the
 * run, the simulator never failed. */

struct kz_sim_run_opts {
  uint64_t seed;
  const char *topology_path;   /* for the replay command and the report; may be NULL */
  const char *uac_path;        /* SIPp scenario of every sipp-uac (file) */
  const char *uas_path;        /* SIPp scenario of every sipp-uas (file) */
  const struct kz_sipp_key *keys; /* -key name value pairs for both scenarios */
  size_t nkeys;
  uint32_t rate;               /* calls per rate period, per UAC; 0: 10 */
  uint32_t rate_period_ms;     /* 0: 1000 */
  uint64_t calls;              /* calls per UAC; 0: rate x duration */
  uint64_t duration_ns;        /* with calls == 0: placing calls lasts this long; 0: 10 s */
  uint32_t call_limit;         /* concurrent calls per UAC; 0: no limit */
  uint32_t call_timeout_ms;    /* a UAC call older than this fails (SIPp's call timeout); 0: none.
                                  Without it a call whose 200 never comes waits forever, and the
                                  run's "every SIPp call ended" check fails. */
  const char *service;         /* -s; NULL: "service" */
  const char *inf_path;        /* injection CSV for the UACs; NULL: none */
  const char *out_dir;         /* summary.json, report.html (and trace, pcap); NULL: none */
  bool write_trace;            /* out_dir/trace.jsonl */
  bool write_pcap;             /* out_dir/traffic.pcap */
  bool swarm;                  /* draw link properties, faults and workload from the seed */
  bool buggify;                /* KZ_BUGGIFY fires (on by default with swarm: see the CLI) */
  bool allow_failed_calls;     /* failed calls do not fail the run (swarm: expected) */
  uint64_t max_sim_ns;         /* hard stop; 0: placing time + 2 minutes */
  uint64_t bucket_ns;          /* width of the report's time buckets; 0: 1 s */
  FILE *progress;              /* progress line; NULL: none */
  int progress_tty;            /* -1: ask isatty */
  FILE *summary;               /* terminal table; NULL: none */
  const char *argv0;           /* command name in the replay line; NULL: "kz" */
};

/* Sets the defaults above (progress and summary NULL, progress_tty -1). */
void kz_sim_run_opts_init(struct kz_sim_run_opts *o);

struct kz_sim_run_result {
  bool passed;
  char verdict[512];      /* why it passed or failed, one line */
  char replay[1024];      /* the exact command that replays this run */
  uint64_t seed;
  uint64_t trace_hash;
  uint64_t sim_ns;
  uint64_t events;
  double wall_seconds;
  uint64_t calls_attempted, calls_succeeded, calls_failed;
  size_t checks_failed;   /* always checks false at least once */
  /* What swarm drew (also in the report's configuration). */
  uint32_t rate;
  uint64_t calls_per_uac;
  char error[512];        /* kz_sim_run returned an error: why */
};

/* Runs topology `t` with `o`: builds the simulator (hosts, cores, links,
 * faults), installs every role (through the role table) and the SIPp
 * endpoints (each sipp-uac sends to the topology's entry point: a proxy,
 * else a media server, else a sipp-uas, spread round-robin), runs in
 * virtual time until every UAC placed its calls and every call ended (or
 * max_sim_ns), evaluates the checks and writes the outputs.
 *
 * Returns 0 when the run happened (res->passed says how it went), or an
 * error before or while running, with res->error saying why: KZ_ENOTSUP
 * (a role not built yet, a link distribution the simulator lacks),
 * KZ_EINVAL (bad options, no sipp-uac), KZ_EPROTO (a scenario does not
 * load), KZ_EIO (a file cannot be read or written), KZ_ENOMEM. */
int kz_sim_run(const struct kz_topo *t, const struct kz_sim_run_opts *o, struct kz_sim_run_result *res);

/* ------------------------------------------------------------------ */
/* Command line: `kz sim --topology T ...`.  argv[0] is the subcommand's
 * name ("sim").  Options:
 *   --topology FILE   --uac FILE   --uas FILE   --seed N   --rate N
 *   --rate-period MS  --calls N   --duration SECONDS   --call-limit N
 *   --call-timeout SECONDS
 *   --service NAME    --key NAME VALUE   --inf FILE   --out DIR
 *   --swarm   --buggify / --no-buggify   --allow-failed-calls
 *   --trace   --pcap   --max-time SECONDS   --bucket SECONDS   --quiet
 *   --check-determinism  (run twice, fail on any difference of the
 *                         trace hash or the summary)
 * Exit status: 0 passed, 1 failed, 2 usage or I/O error. */
int kz_sim_run_cli(int argc, char **argv);

/* The parsed command line, for callers that want to change something
 * before running (the lead's `kz sim`).  Strings point into argv. */
#define KZ_SIM_RUN_MAX_KEYS 16
struct kz_sim_run_args {
  struct kz_sim_run_opts opts;
  const char *topology;
  bool seed_given;
  bool check_determinism;
  bool quiet;
  int buggify; /* -1: default (on with --swarm), 0 off, 1 on */
  int trace;   /* -1: default (on with --out), 0 off, 1 on */
  int pcap;    /* -1: default (on with --out), 0 off, 1 on */
  struct kz_sipp_key keys[KZ_SIM_RUN_MAX_KEYS];
  /* Default files resolved against the working directory, then against
   * the source tree kz was built from (so `kz sim` works from anywhere). */
  char default_topology[1024], default_uac[1024], default_uas[1024];
};
/* Parses argv (argv[0] is skipped) into a.  Returns 0, or KZ_EINVAL with
 * a message in err.  A seed not given is left 0 and seed_given false (the
 * CLI then draws one and prints it). */
int kz_sim_run_parse_args(int argc, char **argv, struct kz_sim_run_args *a, char *err, size_t errlen);
/* Writes the usage text. */
void kz_sim_run_usage(FILE *out);

#endif /* KZ_SIM_RUN_H */
