/* kz/sim_echo.h — the echo example (impl/roles/echo) simulated on two hosts, for `kz sim` and the tests. */
#ifndef KZ_SIM_ECHO_H
#define KZ_SIM_ECHO_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kz/buf.h"

/* Topology: host "client" (10.0.0.1) runs an echo client ("pinger"),
 * host "server" (10.0.0.2) runs an echo server with UDP on port 7 and a
 * stream listener on port 7.  The client sends `count` messages on each
 * transport, one per `interval_ns`, each tagged with random hex from its
 * PRNG sub-stream, so the traffic (and the trace) depends on the seed.
 * The run lasts `duration_ns` of virtual time whatever happens. */

#define KZ_SIM_ECHO_DEFAULT_DURATION_NS UINT64_C(10000000000) /* 10 s */
#define KZ_SIM_ECHO_DEFAULT_INTERVAL_NS UINT64_C(100000000)   /* 100 ms */

struct kz_sim_echo_cfg {
  uint64_t seed;
  uint64_t duration_ns; /* 0: KZ_SIM_ECHO_DEFAULT_DURATION_NS */
  uint64_t interval_ns; /* 0: KZ_SIM_ECHO_DEFAULT_INTERVAL_NS */
  /* Messages per transport; 0: as many as fit in the first half of the
   * run (duration / interval / 2, at least 1). */
  uint32_t count;
  uint64_t latency_ns; /* one-way, both directions; 0: the default 1 ms */
  /* Link faults on both directions (kz_sim_link_cfg): jitter, loss,
   * duplication, reordering.  0: none. */
  uint64_t jitter_ns;
  uint32_t loss_ppm;
  uint32_t dup_ppm;
  uint32_t reorder_ppm;
  FILE *pcap_file;     /* optional: the traffic as a pcap (kz_sim_set_pcap_file) */
  FILE *trace_file;    /* optional: every trace line is written here */
  struct kz_buf *trace_out; /* optional: receives a copy of the trace */
  /* Optional: called every `progress_every_ns` of virtual time. */
  void (*progress)(void *arg, uint64_t now_ns, uint64_t events);
  void *progress_arg;
  uint64_t progress_every_ns;
};

struct kz_sim_echo_result {
  uint64_t events;      /* simulator events processed */
  uint64_t sim_ns;      /* virtual time at the end */
  uint64_t trace_hash;
  uint64_t trace_lines;
  uint32_t count;       /* messages per transport that were asked for */
  uint32_t udp_echoes;  /* correct UDP echoes the client saw */
  uint32_t tcp_echoes;  /* correct stream echoes the client saw */
  uint32_t bad;         /* echoes that did not match (udp_bad + tcp_bad) */
  bool done;            /* every message came back on both transports */
  uint64_t done_ns;     /* virtual time when done became true */
};

/* Runs the example.  Returns 0 (look at result->done for the verdict),
 * KZ_EINVAL or KZ_ENOMEM, or the error that stopped the simulator. */
int kz_sim_echo_run(const struct kz_sim_echo_cfg *cfg,
                    struct kz_sim_echo_result *result);

#endif /* KZ_SIM_ECHO_H */
