/* kz/bus_amqp.h — the AMQP 0-9-1 bus backend: librabbitmq-c on its own I/O thread, driven from a libuv loop, with broker failover. */
#ifndef KZ_BUS_AMQP_H
#define KZ_BUS_AMQP_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "kz/bus_client.h"

/* librabbitmq-c does blocking socket I/O, so it never runs on the loop
 * thread.  Each backend owns one I/O thread and one connection:
 *
 *   loop thread  --commands (mutex-protected queue + eventfd)-->  I/O thread
 *   loop thread  <--events (mutex-protected queue + uv_async_t)-- I/O thread
 *
 * The loop thread makes every kz_bus_backend_* upcall; the I/O thread
 * touches no kz_bus state.  Commands and events carry the number of the
 * connection they belong to ("epoch"), so a command issued just before a
 * connection was lost is dropped rather than applied to the next
 * connection, and a delivery tag from an old connection is never acked on
 * a new one (the bus replays its topology after every UP anyway).
 *
 * Channels on one connection: 1 carries declarations, bindings and
 * deletions; 2 carries publishes (switched to confirm mode the first time
 * a publish asks for a confirm); each consumer gets a channel of its own
 * with basic.qos prefetch, so a broker error on one (a consume of a
 * missing queue, a publish to a missing exchange) closes only that
 * channel.  Broker errors on channels are logged through the bus's
 * kz_env; they do not take the connection down.
 *
 * Failover: the URIs are tried in order, starting with the first; on a
 * lost connection or a failed attempt the next one is tried at once, and
 * after a whole round of failures the backend waits (backoff doubling
 * from backoff_min_ns up to backoff_max_ns) before the next round. */

struct kz_bus_amqp_opts {
  uint16_t prefetch;          /* basic.qos per consumer; 0 = 500 */
  int heartbeat_s;            /* AMQP heartbeat; 0 = 5 s, < 0 = none */
  uint64_t connect_timeout_ns; /* TCP connect + login bound; 0 = 2 s */
  uint64_t rpc_timeout_ns;    /* bound on one broker RPC; 0 = 5 s */
  uint64_t backoff_min_ns;    /* 0 = 100 ms */
  uint64_t backoff_max_ns;    /* 0 = 5 s */
  /* Latency against CPU.  Waking a thread blocked in poll costs tens of
   * microseconds on a VM (an IPI and a halted vCPU), and a request/reply
   * crosses threads four times more than a bare client does.  After a
   * command or an incoming frame the I/O thread keeps polling (yielding
   * the CPU) for spin_ns, and the loop keeps polling for loop_spin_ns
   * after a command or an event; the next step of a conversation then
   * finds its thread awake.  0 = no spinning. */
  uint64_t spin_ns;
  uint64_t loop_spin_ns;
};

/* Fills *out with an AMQP backend for kz_bus_new.  `uris` are n >= 1
 * broker URIs "amqp://user:pass@host:port/vhost" (copied; parsed now).
 * `loop` is the libuv loop of the bus's kz_env (kz_uv_env); it must be
 * run for anything to happen.  opts may be NULL (defaults).  The I/O
 * thread starts when the bus attaches and connects at once.
 * out->be belongs to whoever receives *out: kz_bus_new takes it; a
 * caller that does not hand it on releases it with
 * out->ops->destroy(out->be).  destroy joins the I/O thread (closing the
 * connection politely, bounded by rpc_timeout_ns) and closes the
 * uv_async_t; the memory goes once the loop has run the close callback.
 * Returns 0, KZ_EINVAL (n == 0, NULL arguments, a URI that does not
 * parse) or KZ_ENOMEM. */
int kz_bus_amqp_new(struct kz_bus_backend *out, uv_loop_t *loop,
                    const char *const *uris, size_t n,
                    const struct kz_bus_amqp_opts *opts);

#endif /* KZ_BUS_AMQP_H */
