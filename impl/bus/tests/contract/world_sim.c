/* world_sim.c — the contract world in the simulator: 2 broker hosts running the broker model, one host per client bus over the wire backend. */
#include <stdio.h>
#include <string.h>

#include "contract_world.h"
#include "kz/bus_wire.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sim.h"
#include "kz/sim_broker.h"

#define N_BROKERS 2
#define MAX_CLIENTS 16
#define BROKER_IP(k) (0x0a000001u + (uint32_t)(k))  /* 10.0.0.1, 10.0.0.2 */
#define CLIENT_IP(i) (0x0a000101u + (uint32_t)(i))  /* 10.0.1.1 ... */
/* Heartbeats well below the contract's timeouts, so a silent broker is
 * noticed quickly; crashes are seen at once anyway (resets). */
#define HEARTBEAT_NS UINT64_C(500000000)

struct client_slot {
  struct kz_contract_world *w;
  struct kz_sim_host *host;
  struct kz_sim_proc *proc;
  struct kz_bus *bus;
  const struct kz_bus_cfg *start_cfg; /* only during client_new */
};

struct kz_contract_world {
  struct kz_sim *sim;
  struct kz_sim_host *brokers[N_BROKERS];
  struct kz_sim_broker_cfg broker_cfg;
  struct kz_addr broker_addrs[N_BROKERS];
  struct client_slot clients[MAX_CLIENTS];
  size_t n_clients;
  char tag[32];
};

/* The client process: a bus over the wire backend, made at boot. */
static int client_start(struct kz_env *env, const void *cfg, void **instance) {
  struct client_slot *slot = (struct client_slot *)cfg;
  if (!slot->start_cfg) return KZ_EINVAL; /* clients are never restarted */
  struct kz_bus_wire_cfg wcfg = {
      .brokers = slot->w->broker_addrs,
      .n_brokers = N_BROKERS,
      .heartbeat_ns = HEARTBEAT_NS,
  };
  struct kz_bus_backend be;
  int rc = kz_bus_wire_new(&be, env, &wcfg);
  if (rc) return rc;
  rc = kz_bus_new(&slot->bus, env, &be, slot->start_cfg);
  if (rc) return rc;
  *instance = slot;
  return 0;
}

static void client_stop(void *instance) {
  struct client_slot *slot = instance;
  kz_bus_free(slot->bus);
  slot->bus = NULL;
}

static const struct kz_sim_app client_app = {"bus-client", client_start,
                                             client_stop};

static int sim_create(struct kz_contract_world **out, uint64_t seed) {
  struct kz_contract_world *w = kz_calloc(1, sizeof *w);
  if (!w) return KZ_ENOMEM;
  int rc = kz_sim_new(&w->sim, seed);
  if (rc) goto fail;
  snprintf(w->tag, sizeof w->tag, "s%llx", (unsigned long long)seed);
  w->broker_cfg.listen = kz_addr_v4(0, KZ_BUS_WIRE_PORT);
  for (int k = 0; k < N_BROKERS; k++) {
    char name[16];
    snprintf(name, sizeof name, "broker%d", k);
    struct kz_addr ip = kz_addr_v4(BROKER_IP(k), 0);
    w->broker_addrs[k] = kz_addr_v4(BROKER_IP(k), KZ_BUS_WIRE_PORT);
    if ((rc = kz_sim_host_add(w->sim, name, &ip, &w->brokers[k])) ||
        (rc = kz_sim_proc_add(w->brokers[k], "rabbit", &kz_sim_broker_app,
                              &w->broker_cfg, NULL)))
      goto fail;
  }
  *out = w;
  return 0;
fail:
  kz_sim_free(w->sim);
  kz_free(w);
  return rc;
}

static void sim_destroy(struct kz_contract_world *w) {
  if (!w) return;
  kz_sim_free(w->sim); /* stops every process: buses and brokers */
  kz_free(w);
}

static int sim_n_brokers(struct kz_contract_world *w) {
  (void)w;
  return N_BROKERS;
}

static const char *sim_tag(struct kz_contract_world *w) { return w->tag; }

static int sim_client_new(struct kz_contract_world *w,
                          const struct kz_bus_cfg *cfg, struct kz_bus **out) {
  if (!cfg || !out) return KZ_EINVAL;
  if (w->n_clients >= MAX_CLIENTS) return KZ_ENOSPC;
  size_t i = w->n_clients;
  struct client_slot *slot = &w->clients[i];
  slot->w = w;
  char name[16];
  snprintf(name, sizeof name, "client%zu", i);
  struct kz_addr ip = kz_addr_v4(CLIENT_IP(i), 0);
  int rc = kz_sim_host_add(w->sim, name, &ip, &slot->host);
  if (rc) return rc;
  slot->start_cfg = cfg;
  rc = kz_sim_proc_add(slot->host, "bus", &client_app, slot, &slot->proc);
  slot->start_cfg = NULL;
  if (rc) return rc;
  w->n_clients++;
  *out = slot->bus;
  return 0;
}

static void sim_client_close(struct kz_contract_world *w, struct kz_bus *bus) {
  for (size_t i = 0; i < w->n_clients; i++) {
    if (bus && w->clients[i].bus == bus) {
      /* The process stays, empty: its stop has nothing left to free. */
      kz_bus_free(bus);
      w->clients[i].bus = NULL;
      return;
    }
  }
}

static int sim_run_until(struct kz_contract_world *w, kz_contract_pred_fn *pred,
                         void *arg, uint64_t timeout_ns) {
  uint64_t deadline = kz_sim_now(w->sim) + timeout_ns;
  for (;;) {
    if (pred && pred(arg)) return 0;
    uint64_t t = kz_sim_next_event_time(w->sim);
    if (t == UINT64_MAX || t > deadline) {
      int rc = kz_sim_run_until(w->sim, deadline);
      if (rc) return rc;
      if (!pred || pred(arg)) return 0;
      return KZ_ETIMEDOUT;
    }
    int rc = kz_sim_step(w->sim);
    if (rc < 0) return rc;
  }
}

static int sim_broker_kill(struct kz_contract_world *w, int k) {
  if (k < 0 || k >= N_BROKERS) return KZ_EINVAL;
  return kz_sim_host_crash(w->brokers[k]);
}

static int sim_broker_restart(struct kz_contract_world *w, int k) {
  if (k < 0 || k >= N_BROKERS) return KZ_EINVAL;
  return kz_sim_host_restart(w->brokers[k]);
}

static uint64_t sim_now(struct kz_contract_world *w) {
  return kz_sim_now(w->sim);
}

const struct kz_contract_world_ops kz_contract_world_sim = {
    .name = "sim",
    .create = sim_create,
    .destroy = sim_destroy,
    .n_brokers = sim_n_brokers,
    .tag = sim_tag,
    .client_new = sim_client_new,
    .client_close = sim_client_close,
    .run_until = sim_run_until,
    .broker_kill = sim_broker_kill,
    .broker_restart = sim_broker_restart,
    .now = sim_now,
};
