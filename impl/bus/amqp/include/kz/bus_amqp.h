/* kz/bus_amqp.h — the AMQP 0-9-1 bus backend: librabbitmq-c's framing with the socket driven from the role's libuv loop, broker failover. */
#ifndef KZ_BUS_AMQP_H
#define KZ_BUS_AMQP_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "kz/bus_client.h"

/* The connection lives on the loop thread; nothing there blocks:
 *
 *   - Connecting (TCP connect, AMQP handshake and login, opening the
 *     first channels) is librabbitmq's blocking code, so it runs on
 *     libuv's thread pool (uv_queue_work); the finished connection is
 *     handed to the loop thread, which alone touches it from then on.
 *   - After that librabbitmq does no I/O: a uv_poll_t watches the
 *     socket, received bytes go through amqp_handle_input (its frame
 *     parser) and every upcall (deliveries, confirms, UP/DOWN, errors)
 *     is made from that callback.  Outgoing frames are encoded with
 *     amqp_encode_method / amqp_encode_properties into an output buffer
 *     that is written without blocking: at once when a callback of this
 *     backend made it (a reply published from a delivery goes out with
 *     the read that caused it), else just before the loop next polls (a
 *     uv_prepare_t, so a burst of publishes is one write), and whatever
 *     the socket does not take waits for UV_WRITABLE.
 *   - Broker RPCs (declarations, bindings, consumers, confirm.select)
 *     are sent one at a time, in the order the bus asked for them, and
 *     their replies are awaited as frames; publishes and acks issued
 *     behind a pending RPC wait for it, so the order of the role's calls
 *     is the order the broker applies them.  A broker RPC that stays
 *     unanswered for rpc_timeout_ns ends the connection.
 *   - Heartbeats come from a uv timer: one is sent when nothing else was
 *     sent for half the negotiated period, and a broker silent for two
 *     periods is taken as dead.
 *
 * Channels on one connection: 1 carries declarations, bindings and
 * deletions; 2 carries publishes (switched to confirm mode the first time
 * a publish asks for a confirm); each consumer gets a channel of its own
 * with basic.qos prefetch, so a broker error on one (a consume of a
 * missing queue, a publish to a missing exchange) closes only that
 * channel, which is reported with kz_bus_backend_error and reopened where
 * needed; the connection stays up.
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
};

/* Fills *out with an AMQP backend for kz_bus_new.  `uris` are n >= 1
 * broker URIs "amqp://user:pass@host:port/vhost" (copied; parsed now).
 * `loop` is the libuv loop of the bus's kz_env (kz_uv_env); it must be
 * run for anything to happen, and every call into the bus and this
 * backend must come from the thread that runs it.  opts may be NULL
 * (defaults).  The first connection attempt starts when the bus
 * attaches.  out->be belongs to whoever receives *out: kz_bus_new takes
 * it; a caller that does not hand it on releases it with
 * out->ops->destroy(out->be).  destroy never blocks: it sends
 * connection.close as far as the socket takes it without waiting and
 * closes the socket; the memory goes once the loop has run the close
 * callbacks of the backend's handles and any connection attempt still
 * running on the thread pool has returned (bounded by
 * connect_timeout_ns), so run the loop until it has no more handles.
 * Returns 0, KZ_EINVAL (n == 0, NULL arguments, a URI that does not
 * parse, an amqps:// URI) or KZ_ENOMEM. */
int kz_bus_amqp_new(struct kz_bus_backend *out, uv_loop_t *loop,
                    const char *const *uris, size_t n,
                    const struct kz_bus_amqp_opts *opts);

#endif /* KZ_BUS_AMQP_H */
