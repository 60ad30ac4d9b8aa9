/* kz/worlds.h — runs a SIPp UAC/UAS scenario pair in two worlds (real sipp on loopback, the SIPp engine in the simulator) and compares the call outcomes. */
#ifndef KZ_WORLDS_H
#define KZ_WORLDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/buf.h"
#include "kz/sipp.h"

/* The simulator claims to behave like SIPp.  This module checks the
 * claim the only way that means anything: it runs the same scenario pair
 * with the same -m/-r through the real `sipp` binary (two processes on
 * 127.0.0.1) and through kz_sipp on two simulated hosts, reads what each
 * world counted (calls created, successful, failed, still open; messages
 * sent and received per scenario command; unexpected messages), and says
 * where they differ.
 *
 * It is a test driver, not role code: the real side forks processes and
 * reads files, so it lives beside the simulator (not guarded). */

/* Most scenario commands kept per side (longer scenarios are truncated
 * in the per-command view; the aggregated counts stay exact). */
#define KZ_WORLDS_MAX_CMDS 64

/* One scenario command as counted by one world. */
struct kz_worlds_cmd {
  /* ">INVITE" (sent), "<200" (received), "" for pauses, nops and
   * commands a world did not name. */
  char key[24];
  uint64_t count;      /* messages sent or received, retransmissions excluded */
  uint64_t unexpected; /* unexpected messages counted on this command */
};

/* What one SIPp instance (the UAC or the UAS) counted. */
struct kz_worlds_side {
  bool ran;                 /* false: nothing could be read (see note) */
  uint64_t created;         /* calls created (UAC) or accepted (UAS) */
  uint64_t successful;
  uint64_t failed;
  uint64_t open;            /* calls neither successful nor failed at the end */
  uint64_t unexpected;      /* sum over the commands */
  size_t ncmds;
  struct kz_worlds_cmd cmds[KZ_WORLDS_MAX_CMDS];
  int exit_status;          /* real world: the process's exit code (-1: killed); sim: 0 */
  char note[192];           /* real world: the first event of SIPp's error log, if any */
};

/* Both sides of one run in one world. */
struct kz_worlds_outcome {
  struct kz_worlds_side uac, uas;
  double wall_s;            /* wall time the run took */
  uint64_t sim_ns;          /* simulator only: virtual time at the end */
};

/* A scenario given as bytes (read from the corpus, the tree, or built at
 * run time).  `name` is its file name: real sipp is given a copy under
 * that name, and the table shows it. */
struct kz_worlds_scenario {
  const char *name;
  const char *xml;
  size_t len;
};

/* One comparison case.  Every pointer is borrowed. */
struct kz_worlds_pair {
  const char *name;                   /* short label for the table */
  struct kz_worlds_scenario uac, uas;
  uint32_t calls;                     /* -m on both sides */
  uint32_t rate;                      /* -r (calls per second) of the UAC */
  const struct kz_sipp_key *keys;     /* -key name value, both sides */
  size_t nkeys;
  const char *service;                /* -s, NULL: SIPp's default */
  const char *auth_user, *auth_pass;  /* -au / -ap, NULL: SIPp's defaults */
  uint32_t uac_timeout_s;             /* -timeout of the UAC (and the sim's bound); 0: 30 */
  uint32_t uas_timeout_s;             /* -timeout of the UAS (and the sim's bound); 0: 30 */
  /* The UAS's UDP port in both worlds (0: any free port for real sipp,
   * 5060 in the simulator).  Give one (kz_worlds_free_udp_port) when the
   * outcome depends on it: SIPp's digest URI is sip:[remote_ip]:[remote_port]. */
  uint16_t uas_port;
  /* NULL, or why the two worlds are known to differ on this pair today.
   * A known divergence is reported but does not fail; a pair marked so
   * that starts to agree is reported too, so the mark gets removed. */
  const char *known_divergence;
};

/* Sets *port to a UDP port of 127.0.0.1 that is free now.  Returns 0
 * or KZ_EIO. */
int kz_worlds_free_udp_port(uint16_t *port);

/* Runs `pair` in the simulator: hosts 127.0.0.2 (UAC, port 5060) and
 * 127.0.0.1 (UAS, port uas_port or 5060) as in the real world, 1 ms links, the default CPU model, root seed `seed`.  Each side
 * is read when it would stop as real sipp does: the UAC once all its
 * calls ended (or at its timeout), the UAS once `calls` calls ended (or
 * at its timeout).  Returns 0, KZ_EPROTO / KZ_ENOTSUP (a scenario does
 * not load: `err` says why), KZ_ENOMEM or a simulator error.  `err`
 * (may be NULL) gets a NUL-terminated reason of at most errlen bytes. */
int kz_worlds_run_sim(const struct kz_worlds_pair *pair, uint64_t seed,
                      struct kz_worlds_outcome *out, char *err, size_t errlen);

/* Runs `pair` with the real sipp binary at `sipp`: the UAS, then the UAC,
 * each as a child process in its own folder of a fresh temporary
 * directory under $TMPDIR (or /tmp), on 127.0.0.1 with UDP ports the
 * kernel reports free, with -m, -r, -timeout/-timeout_error,
 * -trace_stat/-stf, -trace_counts and -trace_err, stdin closed.  A
 * process still alive 10 s after its -timeout is killed.  The directory
 * is removed afterwards unless `keep_dir` (its path is then printed to
 * stderr).  Returns 0 (a side that could not be read has ran == false and
 * a note), KZ_EIO (no temporary directory, a file could not be written),
 * or KZ_ENOENT (no executable at `sipp`).  `err` as above. */
int kz_worlds_run_real(const struct kz_worlds_pair *pair, const char *sipp, bool keep_dir,
                       struct kz_worlds_outcome *out, char *err, size_t errlen);

/* Compares two outcomes side by side: calls created, successful, failed
 * and open, the total of unexpected messages, and for each message key
 * (">INVITE", "<180", ...) the number of messages summed over the
 * commands.  Appends one line per difference to `diff` ("uac successful:
 * real 20, sim 19").  Per-command differences that leave those totals
 * equal (an unexpected message counted on another command) are appended
 * as lines starting with "note: " and do not make the outcomes differ.
 * Returns true when the outcomes agree. */
bool kz_worlds_compare(const struct kz_worlds_outcome *real, const struct kz_worlds_outcome *sim,
                       struct kz_buf *diff);

/* Appends the comparison table's header line and its rule. */
int kz_worlds_table_header(struct kz_buf *out);
/* Appends the four rows of one pair (real uac, real uas, sim uac, sim
 * uas): created, successful, failed, open, unexpected and the messages
 * by key ("<180:20 <200:40"), then the verdict in the last column of the
 * first row.  Returns 0 or KZ_ENOMEM. */
int kz_worlds_table_rows(struct kz_buf *out, const struct kz_worlds_pair *pair,
                         const struct kz_worlds_outcome *real,
                         const struct kz_worlds_outcome *sim, const char *verdict);

#endif /* KZ_WORLDS_H */
