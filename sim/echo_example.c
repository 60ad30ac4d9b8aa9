/* echo_example.c — runs the echo example (impl/roles/echo) on two simulated hosts for `kz sim` and the tests. */
#include <string.h>

#include "kz/echo.h"
#include "kz/error.h"
#include "kz/sim.h"
#include "kz/sim_echo.h"

#define ECHO_PORT 7

struct done_state {
  struct kz_sim *sim;
  bool done;
  uint64_t done_ns;
};

static int server_start(struct kz_env *env, const void *cfg, void **instance) {
  struct kz_echo_server *s = NULL;
  int rc = kz_echo_server_new(&s, env, cfg);
  if (rc == 0) *instance = s;
  return rc;
}

static void server_stop(void *instance) { kz_echo_server_free(instance); }

static int client_start(struct kz_env *env, const void *cfg, void **instance) {
  struct kz_echo_client *c = NULL;
  int rc = kz_echo_client_new(&c, env, cfg);
  if (rc == 0) *instance = c;
  return rc;
}

static void client_stop(void *instance) { kz_echo_client_free(instance); }

static const struct kz_sim_app server_app = {"echo-server", server_start, server_stop};
static const struct kz_sim_app client_app = {"echo-client", client_start, client_stop};

static void on_done(void *arg, struct kz_echo_client *c) {
  struct done_state *d = arg;
  (void)c;
  if (!d->done) {
    d->done = true;
    d->done_ns = kz_sim_now(d->sim);
  }
}

int kz_sim_echo_run(const struct kz_sim_echo_cfg *cfg, struct kz_sim_echo_result *result) {
  if (!cfg || !result) return KZ_EINVAL;
  memset(result, 0, sizeof *result);
  uint64_t duration = cfg->duration_ns ? cfg->duration_ns : KZ_SIM_ECHO_DEFAULT_DURATION_NS;
  uint64_t interval = cfg->interval_ns ? cfg->interval_ns : KZ_SIM_ECHO_DEFAULT_INTERVAL_NS;
  uint64_t count = cfg->count;
  if (count == 0) {
    count = duration / interval / 2;
    if (count == 0) count = 1;
    if (count > 100000) count = 100000;
  }

  struct kz_sim *sim = NULL;
  int rc = kz_sim_new(&sim, cfg->seed);
  if (rc) return rc;
  if (cfg->trace_file) kz_sim_set_trace_file(sim, cfg->trace_file);
  if (cfg->trace_out) kz_sim_set_trace_memory(sim, true);
  struct kz_sim_link_cfg link;
  kz_sim_default_link(sim, &link);
  if (cfg->latency_ns) link.latency_ns = cfg->latency_ns;
  link.jitter_ns = cfg->jitter_ns;
  link.loss_ppm = cfg->loss_ppm;
  link.dup_ppm = cfg->dup_ppm;
  link.reorder_ppm = cfg->reorder_ppm;
  if (cfg->jitter_ns || cfg->loss_ppm || cfg->dup_ppm || cfg->reorder_ppm) {
    if ((rc = kz_sim_set_default_link(sim, &link))) goto out;
  } else if (cfg->latency_ns) {
    kz_sim_set_default_latency(sim, cfg->latency_ns);
  }
  if (cfg->pcap_file && (rc = kz_sim_set_pcap_file(sim, cfg->pcap_file))) goto out;

  struct done_state done = {.sim = sim};
  struct kz_echo_server_cfg scfg = {
      .udp = kz_addr_v4(0, ECHO_PORT),
      .tcp = kz_addr_v4(0, ECHO_PORT),
      .persist_every = 10, /* exercises the synced storage */
  };
  struct kz_echo_client_cfg ccfg = {
      .server_udp = kz_addr_v4(0x0a000002, ECHO_PORT),
      .server_tcp = kz_addr_v4(0x0a000002, ECHO_PORT),
      .interval_ns = interval,
      .count = (uint32_t)count,
      .on_done = on_done,
      .done_arg = &done,
  };
  struct kz_addr client_ip = kz_addr_v4(0x0a000001, 0);
  struct kz_addr server_ip = kz_addr_v4(0x0a000002, 0);
  struct kz_sim_host *ch = NULL, *sh = NULL;
  struct kz_sim_proc *cp = NULL;
  if ((rc = kz_sim_host_add(sim, "server", &server_ip, &sh)) ||
      (rc = kz_sim_host_add(sim, "client", &client_ip, &ch)) ||
      (rc = kz_sim_proc_add(sh, "echo", &server_app, &scfg, NULL)) ||
      (rc = kz_sim_proc_add(ch, "pinger", &client_app, &ccfg, &cp)))
    goto out;

  uint64_t every = cfg->progress && cfg->progress_every_ns ? cfg->progress_every_ns : duration;
  while (kz_sim_now(sim) < duration) {
    uint64_t t = kz_sim_now(sim) + every;
    if (t > duration || t < kz_sim_now(sim)) t = duration;
    if ((rc = kz_sim_run_until(sim, t))) goto out;
    if (cfg->progress) {
      struct kz_sim_stats st;
      kz_sim_stats(sim, &st);
      cfg->progress(cfg->progress_arg, kz_sim_now(sim), st.events);
    }
  }

  const struct kz_echo_client *c = kz_sim_proc_instance(cp);
  if (c) {
    const struct kz_echo_client_stats *cs = kz_echo_client_stats(c);
    result->udp_echoes = cs->udp_replies;
    result->tcp_echoes = cs->tcp_replies;
    result->bad = cs->udp_bad + cs->tcp_bad;
    result->done = kz_echo_client_done(c);
  }
  if (!done.done) result->done = false;
  result->done_ns = done.done_ns;
  struct kz_sim_stats st;
  kz_sim_stats(sim, &st);
  result->events = st.events;
  result->trace_lines = st.trace_lines;
  result->sim_ns = kz_sim_now(sim);
  result->trace_hash = kz_sim_trace_hash(sim);
  result->count = (uint32_t)count;
  if (cfg->trace_out) {
    size_t len;
    const uint8_t *data = kz_sim_trace_data(sim, &len);
    rc = kz_buf_append(cfg->trace_out, data, len);
  }
out:
  kz_sim_free(sim);
  return rc;
}
