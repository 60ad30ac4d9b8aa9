/* kz/sim_report.h — results of a simulated run: time-bucketed series, summary.json, a self-contained report.html with SVG plots, a terminal table and a progress line. */
#ifndef KZ_SIM_REPORT_H
#define KZ_SIM_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kz/buf.h"
#include "kz/sim.h"
#include "kz/sipp.h"

/* ------------------------------------------------------------------ */
/* Series: values collected over virtual time in fixed-width buckets.
 *
 * Every sample is kept (per bucket), so percentiles are exact.  A series
 * is used two ways: as a counter (add the number of events that happened,
 * read the bucket's sum: calls started per second) or as a distribution
 * (add one sample per observation, read percentiles: response times). */

struct kz_sim_report_series;

/* Creates an empty series with buckets `bucket_ns` wide (> 0).  *out is
 * the caller's (kz_sim_report_series_free).  Returns 0, KZ_EINVAL or
 * KZ_ENOMEM. */
int kz_sim_report_series_new(struct kz_sim_report_series **out, uint64_t bucket_ns);
void kz_sim_report_series_free(struct kz_sim_report_series *s);
/* Adds `value` observed at virtual time t_ns (bucket t_ns / bucket_ns).
 * Returns 0 or KZ_ENOMEM. */
int kz_sim_report_series_add(struct kz_sim_report_series *s, uint64_t t_ns, uint64_t value);
/* Extends the series with empty buckets up to the one holding t_ns, so a
 * quiet end of the run still shows.  Returns 0 or KZ_ENOMEM. */
int kz_sim_report_series_extend(struct kz_sim_report_series *s, uint64_t t_ns);
uint64_t kz_sim_report_series_bucket_ns(const struct kz_sim_report_series *s);
/* Number of buckets (the last one holds the latest sample or extension). */
size_t kz_sim_report_series_len(const struct kz_sim_report_series *s);

/* kz blocks the series holds (for leak accounting by its owner). */
int64_t kz_sim_report_series_blocks(const struct kz_sim_report_series *s);

struct kz_sim_report_bucket {
  uint64_t count; /* samples */
  uint64_t sum;
  uint64_t min, max; /* 0 when count is 0 */
};
/* Bucket i (i >= len gives an empty bucket); i == SIZE_MAX: the whole series. */
void kz_sim_report_series_bucket(const struct kz_sim_report_series *s, size_t i,
                                 struct kz_sim_report_bucket *out);
/* The nearest-rank percentile of bucket i's samples (i == SIZE_MAX: all
 * samples): the smallest sample such that at least permille/1000 of the
 * samples are <= it.  permille 0..1000 (500 = median, 990 = p99).
 * Returns 0, KZ_ENOENT (no samples), KZ_EINVAL or KZ_ENOMEM. */
int kz_sim_report_series_percentile(const struct kz_sim_report_series *s, size_t i,
                                    uint32_t permille, uint64_t *out);

/* ------------------------------------------------------------------ */
/* The report: what the run did and how it ended. */

/* One scenario command of a SIPp endpoint with its counters: label is
 * the command in the corpus notation (">INVITE", "<100?", "<200",
 * "pause"). */
struct kz_sim_report_msg {
  char label[24];
  struct kz_sipp_msg_stats st;
};

struct kz_sim_report_endpoint {
  char name[64];      /* process name */
  char host[32];
  char role[8];       /* "uac" or "uas" */
  char scenario[128]; /* scenario file (or name) */
  struct kz_sipp_stats stats;
  struct kz_sim_report_msg *msgs; /* owned by the report once added */
  size_t nmsgs;
};

/* An invariant's tally (sim/run's always/sometimes checks). */
struct kz_sim_report_check {
  char name[64];
  bool always;            /* always: must never be false; sometimes: must be true at least once */
  uint64_t evaluations;
  uint64_t true_count;
  uint64_t first_false_ns; /* always checks: when it first failed (UINT64_MAX: never) */
};

struct kz_sim_report_kv {
  char *key, *value;
};

struct kz_sim_report {
  /* Outcome */
  const char *topology;  /* borrowed */
  uint64_t seed;
  uint64_t trace_hash;
  uint64_t sim_ns;
  double wall_seconds;   /* not deterministic: never compared */
  struct kz_sim_stats net; /* simulator counters (events, datagrams, ...) */
  uint64_t calls_attempted, calls_succeeded, calls_failed;
  bool passed;
  char verdict[512];     /* "all 100 calls succeeded" / why it failed */
  char replay[1024];     /* the command that replays this run */
  /* Run configuration, in insertion order (owned). */
  struct kz_sim_report_kv *config;
  size_t nconfig;
  struct kz_sim_report_endpoint *endpoints; /* owned */
  size_t nendpoints;
  struct kz_sim_report_check *checks; /* owned */
  size_t nchecks;
  /* Series (borrowed; NULL when absent): calls created, calls failed and
   * calls succeeded (counters) and response times in ms (distribution). */
  const struct kz_sim_report_series *s_started, *s_failed, *s_succeeded, *s_response_ms;
};

/* Zeroes a report.  kz_sim_report_free releases what it owns. */
void kz_sim_report_init(struct kz_sim_report *r);
void kz_sim_report_free(struct kz_sim_report *r);
/* Appends one configuration line (key and printf-formatted value, both
 * copied).  Returns 0 or KZ_ENOMEM. */
int kz_sim_report_config(struct kz_sim_report *r, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Copies endpoint `e` into the report; the report takes ownership of
 * e->msgs (kz_malloc'ed) on success only.  Returns 0 or KZ_ENOMEM. */
int kz_sim_report_add_endpoint(struct kz_sim_report *r, const struct kz_sim_report_endpoint *e);
/* Copies check `c`.  Returns 0 or KZ_ENOMEM. */
int kz_sim_report_add_check(struct kz_sim_report *r, const struct kz_sim_report_check *c);

/* Response codes of an endpoint, from its scenario commands: sent counts
 * the sends of ">NNN" commands, received the receptions of "<NNN"
 * commands (retransmissions included).  Fills up to `max` entries sorted
 * by code and returns how many. */
struct kz_sim_report_code {
  uint16_t code;
  uint64_t sent, received;
};
size_t kz_sim_report_codes(const struct kz_sim_report_endpoint *e, struct kz_sim_report_code *out,
                           size_t max);

/* Appends summary.json's text to `out`: seed, trace_hash, sim_seconds,
 * wall_seconds, events, calls {attempted, succeeded, failed}, passed,
 * verdict, replay, config, network, endpoints (SIPp stats, failures by
 * reason, response codes, commands), checks and series.  Returns 0 or
 * KZ_ENOMEM. */
int kz_sim_report_json(const struct kz_sim_report *r, struct kz_buf *out);
/* Appends report.html: one self-contained XHTML-compatible page (no
 * external resources) with inline SVG plots of calls per second,
 * failures per second and response-time p50/p90/p99 over time, and
 * tables of the configuration, the outcome, the endpoints and the checks.
 * Returns 0 or KZ_ENOMEM. */
int kz_sim_report_html(const struct kz_sim_report *r, struct kz_buf *out);
/* Writes the terminal summary table to `f`. */
void kz_sim_report_print(const struct kz_sim_report *r, FILE *f);
/* Creates folder `dir` (and its parents) and writes dir/summary.json and
 * dir/report.html.  Returns 0, KZ_ENOMEM or KZ_EIO (with `errbuf`, when
 * not NULL, saying which file and why). */
int kz_sim_report_write_dir(const struct kz_sim_report *r, const char *dir, char *errbuf,
                            size_t errlen);

/* ------------------------------------------------------------------ */
/* Progress line.  On a terminal: one line redrawn in place (at most ten
 * times a wall second) with virtual time / total, events and calls.
 * Elsewhere (CI logs): one line each time another `step_pct` percent of
 * the virtual time has passed. */

struct kz_sim_progress {
  FILE *out;
  bool tty;
  uint64_t total_ns;
  unsigned step_pct;
  unsigned next_pct;   /* not a tty: the next percentage to print */
  double last_draw;    /* tty: wall time of the last redraw */
  bool drawn;          /* tty: a line is on screen */
};

/* Sets up a progress line to `out` for a run of `total_ns` virtual time;
 * tty < 0 asks isatty(out), 0/1 force.  step_pct 0 means 10. */
void kz_sim_progress_init(struct kz_sim_progress *p, FILE *out, uint64_t total_ns, int tty,
                          unsigned step_pct);
/* Reports where the run is.  Draws only when due (see above). */
void kz_sim_progress_update(struct kz_sim_progress *p, uint64_t now_ns, uint64_t events,
                            uint64_t calls);
/* Draws the final state and ends the line. */
void kz_sim_progress_finish(struct kz_sim_progress *p, uint64_t now_ns, uint64_t events,
                            uint64_t calls);

#endif /* KZ_SIM_REPORT_H */
