/* kz/bus_client.h — the bus as role code sees it: queues, bindings, publish, consume, request/response and collect over a pluggable backend. */
#ifndef KZ_BUS_CLIENT_H
#define KZ_BUS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kz/bus.h"
#include "kz/env.h"

/* Role code talks to the bus through a struct kz_bus.  It is sans-I/O:
 * time and timers come from the kz_env, and every byte to or from a
 * broker goes through a backend (the ops table below):
 *
 *   - AMQP (impl/bus/amqp): librabbitmq-c against a real RabbitMQ, under
 *     the libuv driver; several broker URIs with failover.
 *   - wire (impl/bus/wire): a small framed protocol over kz_env streams
 *     to the broker model (sim/broker), so the simulator's partitions and
 *     crashes of the broker's host affect delivery.
 *
 * Shared code here keeps the topology the role declared (exchanges,
 * queues, bindings, consumers) and replays it after a backend reconnects
 * — to the same broker or the next one — so both backends recover the
 * same way.  Request/response and collect are also shared code: a
 * private reply queue named by the Server-ID, bound to the targeted
 * exchange, replies matched on Msg-ID, timeouts on kz_env timers.
 *
 * Operations are queued in order and applied asynchronously; a call
 * returning 0 means "accepted", not "done".  Failures the broker reports
 * later arrive through the state callback (cfg.on_state). */

struct kz_bus;

enum kz_bus_state {
  KZ_BUS_DOWN = 0,  /* no broker connection (initial, or lost) */
  KZ_BUS_UP,        /* connected; the declared topology is in place */
};

struct kz_bus_queue_opts {
  bool exclusive;   /* only this connection may consume; deleted with it */
  bool auto_delete; /* deleted when its last consumer goes away */
  bool durable;
};

/* One message handed to a consumer.  Everything is borrowed for the
 * duration of the callback. */
struct kz_bus_delivery {
  const char *queue;
  const char *exchange;
  const char *routing_key;
  const uint8_t *body;
  size_t len;
  uint64_t tag;       /* for kz_bus_ack when the consumer acks manually */
  bool redelivered;   /* a previous consumer got it and did not ack */
};

typedef void kz_bus_deliver_fn(void *arg, struct kz_bus *bus,
                               const struct kz_bus_delivery *d);
typedef void kz_bus_state_fn(void *arg, struct kz_bus *bus,
                             enum kz_bus_state state, int broker_index,
                             const char *reason);
/* Publisher confirm: status 0 (the broker took responsibility), KZ_EIO
 * (nacked) or KZ_ECONNRESET (connection lost before the confirm: the
 * message may or may not have been routed; publish again if it must not
 * be lost — consumers de-duplicate on Msg-ID). */
typedef void kz_bus_confirm_fn(void *arg, struct kz_bus *bus, int status);
/* A reply (status 0, reply borrowed for the call) or status KZ_ETIMEDOUT
 * (reply NULL) or KZ_ECANCELED when the bus is freed. */
typedef void kz_bus_reply_fn(void *arg, struct kz_bus *bus, int status,
                             const json_t *reply);
/* Collect: n replies (borrowed) gathered until `want` arrived (status 0)
 * or the timeout (status KZ_ETIMEDOUT, n may be below want or 0). */
typedef void kz_bus_collect_fn(void *arg, struct kz_bus *bus, int status,
                               const json_t *const *replies, size_t n);

struct kz_bus_cfg {
  const char *node;        /* "kz_apps@host" — Node in the envelope */
  const char *app_name;    /* App-Name */
  const char *app_version; /* App-Version */
  uint64_t default_timeout_ns; /* request timeout when 0 is passed */
  kz_bus_state_fn *on_state;   /* optional */
  void *state_arg;
};

/* ------------------------------------------------------------------ */
/* Backends                                                            */

struct kz_bus_publish_opts {
  bool confirm;             /* ask the broker for a publisher confirm */
  const char *content_type; /* default "application/json" */
};

/* What a backend does.  Calls come in the order the role made them;
 * a backend applies them in that order on one channel.  Each returns 0
 * or KZ_ENOMEM / KZ_ENOTCONN (the bus then waits for the next UP, when
 * it replays the topology anyway). */
struct kz_bus_backend_ops {
  /* The backend reports to this bus through kz_bus_backend_* below. */
  void (*attach)(void *be, struct kz_bus *bus);
  int (*declare_exchange)(void *be, const char *name,
                          enum kz_bus_exchange_type type);
  int (*declare_queue)(void *be, const char *name,
                       const struct kz_bus_queue_opts *opts);
  int (*delete_queue)(void *be, const char *name);
  int (*bind)(void *be, const char *queue, const char *exchange,
              const char *routing_key);
  int (*unbind)(void *be, const char *queue, const char *exchange,
                const char *routing_key);
  /* Starts a consumer on `queue`; deliveries are reported with the same
   * consumer_id.  no_ack: the broker forgets a message once sent. */
  int (*consume)(void *be, uint64_t consumer_id, const char *queue,
                 bool no_ack);
  int (*cancel)(void *be, uint64_t consumer_id);
  /* With opts->confirm, the backend reports kz_bus_backend_confirm with
   * the same publish_id. */
  int (*publish)(void *be, uint64_t publish_id, const char *exchange,
                 const char *routing_key, const void *body, size_t len,
                 const struct kz_bus_publish_opts *opts);
  int (*ack)(void *be, uint64_t tag);
  /* Closes the connection and frees the backend; no upcall afterwards. */
  void (*destroy)(void *be);
};

struct kz_bus_backend {
  const struct kz_bus_backend_ops *ops;
  void *be;
};

/* Backend upcalls.  kz_bus_backend_up: a connection to broker
 * `broker_index` is ready (the bus replays its topology, then reports
 * UP).  kz_bus_backend_down: the connection is lost; unconfirmed
 * publishes fail with KZ_ECONNRESET, consumers are considered gone (the
 * broker redelivers their unacked messages elsewhere). */
void kz_bus_backend_up(struct kz_bus *bus, int broker_index);
void kz_bus_backend_down(struct kz_bus *bus, const char *reason);
void kz_bus_backend_deliver(struct kz_bus *bus, uint64_t consumer_id,
                            const struct kz_bus_delivery *d);
void kz_bus_backend_confirm(struct kz_bus *bus, uint64_t publish_id,
                            int status);
/* The broker refused an operation but the connection goes on (an AMQP
 * channel error: publish to a missing exchange, a queue locked by
 * another connection...).  The bus logs it and reports it through
 * cfg.on_state with the current state and `reason`. */
void kz_bus_backend_error(struct kz_bus *bus, const char *reason);

/* ------------------------------------------------------------------ */
/* The role's API                                                      */

/* Creates a bus client over `backend` (ownership passes to the bus: it
 * calls ops->destroy in kz_bus_free, also on failure here).  The
 * Server-ID (reply queue name) is drawn from the env's "bus" PRNG
 * stream.  Returns 0, KZ_EINVAL or KZ_ENOMEM. */
int kz_bus_new(struct kz_bus **out, struct kz_env *env,
               const struct kz_bus_backend *backend,
               const struct kz_bus_cfg *cfg);
/* Pending requests and collects end with KZ_ECANCELED, then the backend
 * is destroyed.  NULL is a no-op. */
void kz_bus_free(struct kz_bus *bus);
enum kz_bus_state kz_bus_state(const struct kz_bus *bus);
/* This client's Server-ID: the reply queue's name (NUL-terminated). */
const char *kz_bus_server_id(const struct kz_bus *bus);
struct kz_env *kz_bus_env(const struct kz_bus *bus);

/* Topology.  Each is remembered and replayed after a reconnect.
 * Return 0, KZ_EINVAL or KZ_ENOMEM. */
int kz_bus_declare_exchange(struct kz_bus *bus, const char *name,
                            enum kz_bus_exchange_type type);
/* Declares every exchange of kz_bus_exchanges(). */
int kz_bus_declare_kazoo_exchanges(struct kz_bus *bus);
int kz_bus_declare_queue(struct kz_bus *bus, const char *name,
                         const struct kz_bus_queue_opts *opts);
int kz_bus_delete_queue(struct kz_bus *bus, const char *name);
int kz_bus_bind(struct kz_bus *bus, const char *queue, const char *exchange,
                const char *routing_key);
int kz_bus_unbind(struct kz_bus *bus, const char *queue,
                  const char *exchange, const char *routing_key);

/* Consumers.  With manual_ack the consumer calls kz_bus_ack(d->tag) when
 * done; unacked messages are redelivered to another consumer if this
 * one goes away.  *id (optional) identifies it for kz_bus_cancel. */
int kz_bus_consume(struct kz_bus *bus, const char *queue, bool manual_ack,
                   kz_bus_deliver_fn *cb, void *arg, uint64_t *id);
int kz_bus_cancel(struct kz_bus *bus, uint64_t id);
int kz_bus_ack(struct kz_bus *bus, uint64_t tag);

/* Publishing.  kz_bus_publish sends bytes as they are; kz_bus_publish_msg
 * validates a kapi message (kz_kapi_validate against its identified
 * type) and refuses an invalid one with KZ_EINVAL before anything is
 * sent.  confirm_cb (optional) asks for a publisher confirm.  Return 0,
 * KZ_EINVAL, KZ_ENOMEM or KZ_ENOTCONN (bus down and the message needs a
 * confirm: the caller decides whether to retry). */
int kz_bus_publish(struct kz_bus *bus, const char *exchange,
                   const char *routing_key, const void *body, size_t len,
                   kz_bus_confirm_fn *confirm_cb, void *arg);
int kz_bus_publish_msg(struct kz_bus *bus, const char *exchange,
                       const char *routing_key, const json_t *msg,
                       kz_bus_confirm_fn *confirm_cb, void *arg);
/* kz_bus_publish_msg for a message kz_kapi_build returned and nobody
 * changed since: kz_kapi_build validated it, so it is not validated
 * again (the second validation was a tenth of a proxy's CPU per
 * REGISTER).  Anything else goes through kz_bus_publish_msg. */
int kz_bus_publish_built(struct kz_bus *bus, const char *exchange,
                         const char *routing_key, const json_t *msg,
                         kz_bus_confirm_fn *confirm_cb, void *arg);

/* Request/response (Kazoo's amqp_worker:call): `req` must be a valid
 * kapi request; the bus sets its Server-ID to this client's reply queue
 * (and Msg-ID when missing), publishes it, and calls cb once with the
 * first reply whose Msg-ID matches, or KZ_ETIMEDOUT after timeout_ns
 * (0 = cfg default).  *id (optional) allows kz_bus_request_cancel (no
 * callback then).  Returns 0, KZ_EINVAL (invalid request: nothing sent),
 * KZ_ENOMEM. */
int kz_bus_request(struct kz_bus *bus, const char *exchange,
                   const char *routing_key, json_t *req, uint64_t timeout_ns,
                   kz_bus_reply_fn *cb, void *arg, uint64_t *id);
/* Collect (amqp_worker:call_collect): like a request, but gathers up to
 * `want` replies (0 = as many as arrive) until the timeout. */
int kz_bus_collect(struct kz_bus *bus, const char *exchange,
                   const char *routing_key, json_t *req, size_t want,
                   uint64_t timeout_ns, kz_bus_collect_fn *cb, void *arg,
                   uint64_t *id);
void kz_bus_request_cancel(struct kz_bus *bus, uint64_t id);
/* Answers a request: copies Msg-ID from `req` into `reply` and publishes
 * it on the targeted exchange with the request's Server-ID as routing
 * key.  Returns 0, KZ_EINVAL (no Server-ID, or the reply is invalid) or
 * KZ_ENOMEM. */
int kz_bus_reply(struct kz_bus *bus, const json_t *req, json_t *reply);

#endif /* KZ_BUS_CLIENT_H */
