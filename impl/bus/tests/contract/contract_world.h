/* contract_world.h — the small "world" a bus contract test runs in: brokers, client buses, a run loop; one implementation per backend (sim, real AMQP). */
#ifndef KZ_CONTRACT_WORLD_H
#define KZ_CONTRACT_WORLD_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/bus_client.h"

/* The contract suite (contract.c) is written once against this interface
 * and run against every backend:
 *
 *   - world_sim.c  : a kz_sim with 2 broker hosts running the broker
 *                    model (sim/broker) and one simulated host per client,
 *                    each client a struct kz_bus over the wire backend;
 *   - world_amqp.c : real RabbitMQ server(s) and libuv, each client a
 *                    struct kz_bus over the AMQP backend.
 *
 * Time: every duration here is in nanoseconds of the world's clock —
 * virtual for the simulator, monotonic real time for the real world.
 * The contract keeps its timeouts short (well under a second each) so
 * the real world stays quick too.
 *
 * Threading: none.  Client callbacks (deliveries, replies, confirms,
 * state changes) run only inside run_until.  Tests call kz_bus_* on a
 * client between run_until calls and from inside those callbacks.
 *
 * Naming: a real broker may outlive a test (and keep named queues), so
 * the contract puts tag(w) in front of every queue and exchange name it
 * declares.  The simulator's brokers start empty for every world.
 *
 * Failover: every client is given every broker of the world in the
 * order 0, 1, ... and connects to the first one that answers; on
 * connection loss it moves on to the next one (and back around). */

struct kz_contract_world;

/* Predicate polled by run_until after every event (or every loop turn in
 * the real world).  Returns true when the wait is over. */
typedef bool kz_contract_pred_fn(void *arg);

struct kz_contract_world_ops {
  const char *name; /* "sim", "amqp": used in the Check test case names */

  /* Creates a world: brokers running, no clients yet.  `seed` seeds the
   * simulator (the real world may ignore it).  Returns 0, KZ_ENOMEM,
   * KZ_ENOTSUP (this world cannot run here) or another KZ_E* code; the
   * test fails on any of them.  Skipping is decided once, before any
   * test runs, by the executable's main (exit 77 outside CI). */
  int (*create)(struct kz_contract_world **out, uint64_t seed);
  /* Frees every remaining client (as client_close) and the brokers.
   * The world must leave no kz allocation behind (tests check leaks). */
  void (*destroy)(struct kz_contract_world *w);

  /* Number of brokers (the failover test needs 2 and skips with fewer). */
  int (*n_brokers)(struct kz_contract_world *w);
  /* A short string unique to this world instance, [A-Za-z0-9_-] only,
   * prefixed to names the contract declares.  Owned by the world. */
  const char *(*tag)(struct kz_contract_world *w);

  /* Creates one more client: its own kz_env and a struct kz_bus (made
   * with kz_bus_new and `cfg`, borrowed: strings copied, callbacks kept)
   * whose backend knows every broker.  The bus starts connecting at once;
   * wait for kz_bus_state(bus) == KZ_BUS_UP with run_until.  *out is
   * owned by the world (free it with client_close or destroy).
   * Returns 0, KZ_ENOMEM or KZ_ENOSPC (too many clients). */
  int (*client_new)(struct kz_contract_world *w, const struct kz_bus_cfg *cfg,
                    struct kz_bus **out);
  /* Closes a client the orderly way (kz_bus_free: its connection is
   * closed, so the broker drops its exclusive queues and requeues its
   * unacked messages) and releases its env.  `bus` is invalid after.
   * May be called from inside one of that client's callbacks (run_until
   * is on the stack): the bus is freed at once, the env later. */
  void (*client_close)(struct kz_contract_world *w, struct kz_bus *bus);

  /* Runs the world until pred(arg) holds or `timeout_ns` of world time
   * passed.  pred NULL runs for exactly timeout_ns (a quiet period).
   * Returns 0 when pred held (or pred is NULL), KZ_ETIMEDOUT when it did
   * not, or another KZ_E* code when the world broke. */
  int (*run_until)(struct kz_contract_world *w, kz_contract_pred_fn *pred,
                   void *arg, uint64_t timeout_ns);

  /* Kills broker k abruptly (simulated host crash; kill -9 for real):
   * its clients see their connections reset and every queue it held is
   * gone.  Returns 0, KZ_EINVAL (no such broker), KZ_ENOTSUP. */
  int (*broker_kill)(struct kz_contract_world *w, int k);
  /* Starts broker k again, empty.  Returns 0, KZ_EINVAL, KZ_ENOTSUP. */
  int (*broker_restart)(struct kz_contract_world *w, int k);

  /* The world's clock, ns. */
  uint64_t (*now)(struct kz_contract_world *w);
};

/* The sim world (world_sim.c). */
extern const struct kz_contract_world_ops kz_contract_world_sim;

/* Builds a Check suite named `name` holding every contract test case,
 * each run against a fresh world made by `world` (borrowed: it must
 * outlive the suite's run).  Call once per process: the suite's test
 * functions reach `world` through contract.c's test-runner state. */
Suite *kz_bus_contract_suite(const char *name,
                             const struct kz_contract_world_ops *world);

#endif /* KZ_CONTRACT_WORLD_H */
