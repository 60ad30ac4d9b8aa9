/* world_amqp.c — the contract world over real RabbitMQ nodes (started by ci/rabbitmq) and the AMQP backend on one libuv loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "contract_world.h"
#include "kz/bus_amqp.h"
#include "kz/error.h"
#include "kz/uv_env.h"
#include "rabbit_nodes.h"

/* The nodes are shared by every world of a test executable: the ctest
 * fixture kz_amqp_rabbit starts them once (a start takes 5-10 s); a
 * world only (re)starts a node a previous test killed.  Their names and
 * ports come from KZ_AMQP_NODES.  Names the contract declares carry the
 * world's tag, so what an earlier world left on a node never collides. */

#define WORLD_MAX_CLIENTS 16

struct world_client {
  struct kz_uv_env *env;
  struct kz_bus *bus; /* NULL with env set: closed from a callback, env not yet freed */
};

struct kz_contract_world {
  uv_loop_t loop;
  uv_timer_t tick; /* bounds each uv_run in run_until */
  struct kz_amqp_test_node nodes[KZ_AMQP_TEST_MAX_NODES];
  int n_nodes;
  char uri_buf[KZ_AMQP_TEST_MAX_NODES][96];
  const char *uris[KZ_AMQP_TEST_MAX_NODES];
  char tag[24];
  uint64_t seed;
  unsigned n_made;
  bool running; /* inside uv_run: callbacks may close clients */
  struct world_client clients[WORLD_MAX_CLIENTS];
};

static uint64_t world_now(struct kz_contract_world *w) {
  (void)w;
  return uv_hrtime();
}

static void world_destroy(struct kz_contract_world *w);

static int world_create(struct kz_contract_world **out, uint64_t seed) {
  struct kz_contract_world *w = calloc(1, sizeof *w);
  if (!w) return KZ_ENOMEM;
  w->n_nodes = kz_amqp_test_nodes(w->nodes, KZ_AMQP_TEST_MAX_NODES);
  if (w->n_nodes == 0) {
    fprintf(stderr, "world_amqp: KZ_AMQP_NODES is not set (run through ctest, "
                    "whose fixture starts RabbitMQ)\n");
    free(w);
    return kz_amqp_test_required() ? KZ_EIO : KZ_ENOTSUP;
  }
  for (int k = 0; k < w->n_nodes; k++) {
    if (kz_amqp_test_node_ensure(&w->nodes[k]) != 0) {
      fprintf(stderr, "world_amqp: RabbitMQ node %s does not run and cannot "
                      "be started (is rabbitmq-server installed?)\n",
              w->nodes[k].name);
      free(w);
      return KZ_EIO;
    }
    kz_amqp_test_uri(&w->nodes[k], w->uri_buf[k], sizeof w->uri_buf[k]);
    w->uris[k] = w->uri_buf[k];
  }
  /* Server-IDs come from each client's seed: make them unique across
   * worlds and processes that share the nodes. */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  w->seed = seed ^ ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
            ((uint64_t)getpid() << 40);
  snprintf(w->tag, sizeof w->tag, "t%012llx",
           (unsigned long long)(w->seed & 0xffffffffffffull));
  if (uv_loop_init(&w->loop) != 0) {
    free(w);
    return KZ_EIO;
  }
  uv_timer_init(&w->loop, &w->tick);
  *out = w;
  return 0;
}

static void close_client(struct kz_contract_world *w, struct world_client *c) {
  kz_bus_free(c->bus);
  c->bus = NULL;
  /* From inside a callback (uv_run is on the stack): uv_run must not be
   * re-entered, so the env goes after uv_run returns (reap_clients). */
  if (w->running) return;
  kz_uv_env_free(c->env);
  c->bus = NULL;
  c->env = NULL;
  /* Close callbacks (the backend's poll and timer handles, the env's
   * handles) run in the next loop turn. */
  uv_run(&w->loop, UV_RUN_NOWAIT);
}

/* Frees the envs of clients closed from inside a callback. */
static void reap_clients(struct kz_contract_world *w) {
  for (int i = 0; i < WORLD_MAX_CLIENTS; i++)
    if (!w->clients[i].bus && w->clients[i].env) close_client(w, &w->clients[i]);
}

static void world_destroy(struct kz_contract_world *w) {
  if (!w) return;
  for (int i = 0; i < WORLD_MAX_CLIENTS; i++)
    if (w->clients[i].bus || w->clients[i].env) close_client(w, &w->clients[i]);
  uv_close((uv_handle_t *)&w->tick, NULL);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  uv_loop_close(&w->loop);
  free(w);
}

static int world_n_brokers(struct kz_contract_world *w) { return w->n_nodes; }

static const char *world_tag(struct kz_contract_world *w) { return w->tag; }

static int world_client_new(struct kz_contract_world *w,
                            const struct kz_bus_cfg *cfg,
                            struct kz_bus **out) {
  struct world_client *c = NULL;
  for (int i = 0; i < WORLD_MAX_CLIENTS && !c; i++)
    if (!w->clients[i].bus && !w->clients[i].env) c = &w->clients[i];
  if (!c) return KZ_ENOSPC;
  char name[32];
  snprintf(name, sizeof name, "client%u", w->n_made);
  int rc = kz_uv_env_new(&c->env, &w->loop, name, w->seed + 7919u * ++w->n_made,
                         NULL);
  if (rc) return rc;
  /* Short backoff and heartbeat so failover fits the contract's
   * sub-second waits. */
  struct kz_bus_amqp_opts o = {
      .heartbeat_s = 2,
      .connect_timeout_ns = 1000000000u,
      .rpc_timeout_ns = 3000000000u,
      .backoff_min_ns = 50000000u,
      .backoff_max_ns = 400000000u,
  };
  struct kz_bus_backend be;
  rc = kz_bus_amqp_new(&be, &w->loop, w->uris, (size_t)w->n_nodes, &o);
  if (rc == 0) rc = kz_bus_new(&c->bus, kz_uv_env_get(c->env), &be, cfg);
  if (rc) {
    c->bus = NULL;
    kz_uv_env_free(c->env);
    c->env = NULL;
    uv_run(&w->loop, UV_RUN_NOWAIT);
    return rc;
  }
  *out = c->bus;
  return 0;
}

static void world_client_close(struct kz_contract_world *w,
                               struct kz_bus *bus) {
  for (int i = 0; i < WORLD_MAX_CLIENTS; i++)
    if (bus && w->clients[i].bus == bus) {
      close_client(w, &w->clients[i]);
      return;
    }
}

static void on_tick(uv_timer_t *t) { (void)t; }

static int world_run_until(struct kz_contract_world *w,
                           kz_contract_pred_fn *pred, void *arg,
                           uint64_t timeout_ns) {
  uint64_t deadline = world_now(w) + timeout_ns;
  for (;;) {
    if (pred && pred(arg)) return 0;
    uint64_t now = world_now(w);
    if (now >= deadline) return pred ? KZ_ETIMEDOUT : 0;
    /* Wake at least every 10 ms so the predicate and the deadline are
     * checked even when the loop has nothing to do. */
    uint64_t ms = (deadline - now) / 1000000u + 1;
    /* Refresh the loop's clock first: after work outside the loop (a
     * broker restart) it is stale, the tick would be due at once, and
     * uv_run could then block with nothing else to wake it. */
    uv_update_time(&w->loop);
    uv_timer_start(&w->tick, on_tick, ms < 10 ? ms : 10, 0);
    w->running = true;
    uv_run(&w->loop, UV_RUN_ONCE);
    w->running = false;
    reap_clients(w);
  }
}

static int world_broker_kill(struct kz_contract_world *w, int k) {
  if (k < 0 || k >= w->n_nodes) return KZ_EINVAL;
  return kz_amqp_test_node_kill(&w->nodes[k]) == 0 ? 0 : KZ_EIO;
}

static int world_broker_restart(struct kz_contract_world *w, int k) {
  if (k < 0 || k >= w->n_nodes) return KZ_EINVAL;
  /* The clients' reconnect timers are on the loop: they try again at the
   * next run_until. */
  return kz_amqp_test_node_start(&w->nodes[k]) == 0 ? 0 : KZ_EIO;
}

const struct kz_contract_world_ops kz_contract_world_amqp = {
    .name = "amqp",
    .create = world_create,
    .destroy = world_destroy,
    .n_brokers = world_n_brokers,
    .tag = world_tag,
    .client_new = world_client_new,
    .client_close = world_client_close,
    .run_until = world_run_until,
    .broker_kill = world_broker_kill,
    .broker_restart = world_broker_restart,
    .now = world_now,
};
