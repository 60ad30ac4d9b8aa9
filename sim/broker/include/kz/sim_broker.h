/* kz/sim_broker.h — the broker model: a RabbitMQ-like message broker speaking the bus wire protocol, run as an app on a simulated host. */
#ifndef KZ_SIM_BROKER_H
#define KZ_SIM_BROKER_H

#include <stddef.h>
#include <stdint.h>

#include "kz/env.h"
#include "kz/sim.h"

/* The broker is sans-I/O role code like any other: it lives on a kz_env
 * (so it runs on a simulated host, and could run under the libuv driver)
 * and listens for the bus wire protocol (kz/bus_wire.h).  What it models
 * of RabbitMQ (AMQP 0-9-1, one channel per connection):
 *
 *   - exchanges: direct (exact key), topic (kz_bus_topic_match: '*' one
 *     word, '#' zero or more), fanout (all bound queues); the default
 *     exchange "" routes to the queue named by the key.  A message goes
 *     at most once into each queue, however many bindings match.
 *   - queues: FIFO; exclusive queues belong to the connection that
 *     declared them (others get 405 RESOURCE_LOCKED) and are deleted when
 *     it closes; auto-delete queues are deleted when their last consumer
 *     cancels or its connection closes (never before a first consumer);
 *     a redeclaration with other flags gets 406 PRECONDITION_FAILED.
 *     The durable flag is accepted but nothing is stored: the broker
 *     keeps everything in memory and loses it all when its host crashes
 *     or the process stops (a RabbitMQ without persistent messages).
 *   - consumers: several on one queue get messages round-robin; no
 *     prefetch limit (every ready message is pushed at once).  With
 *     manual ack, a delivered message stays unacked on its connection;
 *     when that connection closes (not on a mere cancel, as in AMQP) its
 *     unacked messages go back to the head of their queues, in order,
 *     marked redelivered, and on to the remaining consumers.
 *   - publisher confirms: sent right after routing (ack even when no
 *     queue matched, as RabbitMQ does).  A publish to a missing exchange
 *     gets an ERROR frame (404) and a nack; the connection goes on.
 *   - heartbeats both ways: a connection silent for 3 intervals is
 *     closed (and its exclusive queues and unacked messages handled as
 *     above).
 * Errors go to the client as ERROR frames with AMQP's reply codes and
 * texts ("NOT_FOUND - no exchange 'x'"). */

struct kz_sim_broker;

struct kz_sim_broker_cfg {
  struct kz_addr listen;      /* port 0 = KZ_BUS_WIRE_PORT (5672) */
  uint64_t hello_timeout_ns;  /* HELLO must come within; 0 = 10 s */
  uint32_t min_heartbeat_ms;  /* clamp of the client's wish; 0 = 10 */
  uint32_t max_heartbeat_ms;  /* 0 = 60000 */
};

struct kz_sim_broker_stats {
  uint64_t connections;   /* accepted so far */
  uint64_t open;          /* open now */
  uint64_t published;
  uint64_t routed;        /* queue copies made */
  uint64_t unroutable;    /* published, matched no queue */
  uint64_t delivered;
  uint64_t redelivered;   /* deliveries with redelivered set */
  uint64_t acked;
  uint64_t errors;        /* ERROR frames sent */
  uint64_t heartbeat_timeouts;
  size_t exchanges;
  size_t queues;
};

/* Starts a broker on env listening on cfg->listen (cfg may be NULL:
 * 0.0.0.0:5672).  *out is the caller's until kz_sim_broker_free.
 * Returns 0, KZ_ENOMEM, KZ_EADDRINUSE or another listen error. */
int kz_sim_broker_new(struct kz_sim_broker **out, struct kz_env *env,
                      const struct kz_sim_broker_cfg *cfg);
/* Closes every connection and the listener and frees everything (all
 * queues and messages are lost).  NULL is a no-op. */
void kz_sim_broker_free(struct kz_sim_broker *b);

void kz_sim_broker_stats(const struct kz_sim_broker *b,
                         struct kz_sim_broker_stats *out);
/* Messages ready (not delivered) in queue `name` and its consumer count.
 * Returns 0 or KZ_ENOENT. */
int kz_sim_broker_queue_info(const struct kz_sim_broker *b, const char *name,
                             size_t *ready, size_t *consumers);

/* The broker as a simulator app: cfg is a const struct
 * kz_sim_broker_cfg * (or NULL), the instance a struct kz_sim_broker. */
extern const struct kz_sim_app kz_sim_broker_app;

#endif /* KZ_SIM_BROKER_H */
