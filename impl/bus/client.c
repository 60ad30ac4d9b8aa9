/* client.c — struct kz_bus: remembered topology replayed on reconnect, publisher confirms, request/response and collect over any backend. */
#include <string.h>

#include "kz/bus_client.h"
#include "kz/error.h"
#include "kz/map.h"
#include "kz/mem.h"

/* Delivery tags are per connection (AMQP counts them per channel from 1),
 * so an ack for a delivery of a connection that is gone would hit the
 * next connection with a tag it never gave out — RabbitMQ closes the
 * channel for that.  The bus hands consumers tags with the connection's
 * generation in the top bits and drops acks from older generations. */
#define TAG_BITS 44
#define TAG_MASK ((UINT64_C(1) << TAG_BITS) - 1)

/* Publishes accepted while no broker is connected (without a confirm)
 * wait for the next UP, up to this many; beyond it the caller gets
 * KZ_ENOTCONN. */
#define PENDING_MAX 1024

/* Default request timeout when neither the call nor cfg gives one. */
#define DEFAULT_TIMEOUT_NS UINT64_C(5000000000)

/* Server-ID / reply queue: "kzbus-" + 24 hex digits from the "bus"
 * stream: unique enough that two clients never share a reply queue. */
#define SERVER_ID_PREFIX "kzbus-"
#define SERVER_ID_HEX 24

enum rec_kind { REC_EXCHANGE = 1, REC_QUEUE, REC_BIND, REC_CONSUMER };

/* One remembered topology declaration, replayed in insertion order. */
struct rec {
  enum rec_kind kind;
  char *name;     /* exchange or queue */
  char *exchange; /* REC_BIND */
  char *key;      /* REC_BIND */
  enum kz_bus_exchange_type type;
  struct kz_bus_queue_opts qopts;
  uint64_t consumer_id;
  bool no_ack;
  kz_bus_deliver_fn *cb;
  void *arg;
};

/* A publish waiting for the broker's confirm. */
struct confirm {
  uint64_t publish_id;
  kz_bus_confirm_fn *cb;
  void *arg;
};

/* A publish accepted while down. */
struct pending_pub {
  char *exchange;
  char *key;
  uint8_t *body;
  size_t len;
};

/* A request or collect waiting for replies. */
struct req {
  struct kz_bus *bus;
  uint64_t id;
  char msg_id[KZ_KAPI_MSG_ID_LEN * 4 + 1];
  bool collect;
  kz_bus_reply_fn *reply_cb;
  kz_bus_collect_fn *collect_cb;
  void *arg;
  size_t want;
  json_t **replies;
  size_t n, cap;
  struct kz_timer timer;
};

struct kz_bus {
  struct kz_env *env;
  struct kz_bus_backend backend;
  char *node, *app_name, *app_version;
  uint64_t default_timeout_ns;
  kz_bus_state_fn *on_state;
  void *state_arg;

  enum kz_bus_state state;
  int broker_index;
  uint64_t generation; /* connection count, for delivery tags */
  struct kz_prng prng; /* "bus" stream: Server-ID, Msg-IDs */
  char server_id[sizeof(SERVER_ID_PREFIX) + SERVER_ID_HEX];
  uint64_t reply_consumer;

  struct rec **recs;
  size_t n_recs, cap_recs;

  struct confirm *confirms; /* FIFO in publish order */
  size_t n_confirms, cap_confirms;

  struct pending_pub *pending;
  size_t n_pending, cap_pending;

  struct kz_map reqs; /* Msg-ID -> struct req */
  uint64_t next_consumer_id, next_publish_id, next_req_id;

  /* The envelope's per-client values as JSON strings made once: each
   * message takes a reference instead of a fresh copy.  NULL when the
   * configured text is not valid UTF-8 (filling it then fails as
   * json_string did). */
  json_t *j_app_name, *j_app_version, *j_node, *j_server_id;
  /* Where messages are written before they go to the backend, kept
   * between publishes; out_busy while the backend holds it (a callback
   * from inside the backend that publishes again writes elsewhere). */
  struct kz_buf out;
  bool out_busy;
};

/* A write buffer that grew past this is given back after the publish. */
#define OUT_KEEP_MAX (64 * 1024)

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */


static bool streq(const char *a, const char *b) {
  return strcmp(a ? a : "", b ? b : "") == 0;
}

static void rec_free(struct rec *r) {
  if (!r) return;
  kz_free(r->name);
  kz_free(r->exchange);
  kz_free(r->key);
  kz_free(r);
}

static struct rec *rec_new(enum rec_kind kind, const char *name,
                           const char *exchange, const char *key) {
  struct rec *r = kz_calloc(1, sizeof *r);
  if (!r) return NULL;
  r->kind = kind;
  if ((name && !(r->name = kz_strdup(name))) ||
      (exchange && !(r->exchange = kz_strdup(exchange))) ||
      (key && !(r->key = kz_strdup(key)))) {
    rec_free(r);
    return NULL;
  }
  return r;
}

static int rec_append(struct kz_bus *bus, struct rec *r) {
  if (kz_array_reserve((void **)&bus->recs, &bus->cap_recs, bus->n_recs + 1,
           sizeof *bus->recs))
    return KZ_ENOMEM;
  bus->recs[bus->n_recs++] = r;
  return 0;
}

static void rec_remove_at(struct kz_bus *bus, size_t i) {
  rec_free(bus->recs[i]);
  memmove(&bus->recs[i], &bus->recs[i + 1],
          (bus->n_recs - i - 1) * sizeof *bus->recs);
  bus->n_recs--;
}

static struct rec *find_consumer(struct kz_bus *bus, uint64_t id,
                                 size_t *at) {
  for (size_t i = 0; i < bus->n_recs; i++) {
    struct rec *r = bus->recs[i];
    if (r->kind == REC_CONSUMER && r->consumer_id == id) {
      if (at) *at = i;
      return r;
    }
  }
  return NULL;
}

static bool backend_up(const struct kz_bus *bus) {
  return bus->state == KZ_BUS_UP;
}

static void report(struct kz_bus *bus, const char *reason) {
  if (bus->on_state)
    bus->on_state(bus->state_arg, bus, bus->state, bus->broker_index, reason);
}

/* Applies one record to the backend. */
static int apply(struct kz_bus *bus, const struct rec *r) {
  const struct kz_bus_backend_ops *ops = bus->backend.ops;
  void *be = bus->backend.be;
  switch (r->kind) {
    case REC_EXCHANGE:
      return ops->declare_exchange(be, r->name, r->type);
    case REC_QUEUE:
      return ops->declare_queue(be, r->name, &r->qopts);
    case REC_BIND:
      return ops->bind(be, r->name, r->exchange, r->key);
    case REC_CONSUMER:
      return ops->consume(be, r->consumer_id, r->name, r->no_ack);
  }
  return KZ_EINVAL;
}

/* Sends a topology change now when connected.  A backend that says
 * KZ_ENOTCONN has lost its connection and will report down then up, and
 * the record is replayed then; only KZ_ENOMEM is the caller's problem. */
static int apply_now(struct kz_bus *bus, const struct rec *r) {
  if (!backend_up(bus)) return 0;
  int rc = apply(bus, r);
  return rc == KZ_ENOTCONN ? 0 : rc;
}

/* ------------------------------------------------------------------ */
/* Requests                                                             */

static void req_free(struct req *q) {
  kz_timer_stop(&q->timer);
  for (size_t i = 0; i < q->n; i++) json_decref(q->replies[i]);
  kz_free(q->replies);
  kz_free(q);
}

/* Ends a request: it leaves the map before its callback runs, so the
 * callback may start or cancel other requests freely. */
static void req_finish(struct req *q, int status, const json_t *reply) {
  struct kz_bus *bus = q->bus;
  kz_map_del_str(&bus->reqs, q->msg_id);
  kz_timer_stop(&q->timer);
  if (q->collect)
    q->collect_cb(q->arg, bus, status, (const json_t *const *)q->replies,
                  q->n);
  else
    q->reply_cb(q->arg, bus, status, reply);
  req_free(q);
}

static void req_timeout(void *arg) {
  struct req *q = arg;
  /* A collect without a target count ends normally at its timeout. */
  int status = q->collect && q->want == 0 ? 0 : KZ_ETIMEDOUT;
  req_finish(q, status, NULL);
}

/* The reply queue's consumer: matches replies to requests on Msg-ID.
 * Anything that does not parse or matches nothing is dropped, as
 * Kazoo's amqp_worker drops replies for calls it no longer waits for. */
static void on_reply(void *arg, struct kz_bus *bus,
                     const struct kz_bus_delivery *d) {
  (void)arg;
  json_t *msg = NULL;
  struct kz_kapi_error err;
  if (kz_kapi_parse(d->body, d->len, NULL, &msg, &err)) {
    kz_log(bus->env, KZ_LOG_DEBUG, "bus", "dropping unparsable reply: %s",
           err.reason);
    return;
  }
  const char *mid = json_string_value(json_object_get(msg, "Msg-ID"));
  struct req *q = mid ? kz_map_get_str(&bus->reqs, mid) : NULL;
  if (!q) {
    kz_log(bus->env, KZ_LOG_DEBUG, "bus", "dropping reply for Msg-ID %s",
           mid ? mid : "(none)");
    json_decref(msg);
    return;
  }
  if (!q->collect) {
    req_finish(q, 0, msg);
    json_decref(msg);
    return;
  }
  if (kz_array_reserve((void **)&q->replies, &q->cap, q->n + 1, sizeof *q->replies)) {
    json_decref(msg); /* out of memory: this reply is lost, like a drop */
    return;
  }
  q->replies[q->n++] = msg;
  if (q->want && q->n >= q->want) req_finish(q, 0, NULL);
}

/* ------------------------------------------------------------------ */
/* Backend upcalls                                                      */

static int publish_raw(struct kz_bus *bus, uint64_t publish_id,
                       const char *exchange, const char *key,
                       const void *body, size_t len, bool confirm) {
  struct kz_bus_publish_opts po = {.confirm = confirm,
                                   .content_type = "application/json"};
  return bus->backend.ops->publish(bus->backend.be, publish_id, exchange, key,
                                   body, len, &po);
}

static void pending_clear(struct kz_bus *bus, size_t from) {
  for (size_t i = from; i < bus->n_pending; i++) {
    kz_free(bus->pending[i].exchange);
    kz_free(bus->pending[i].key);
    kz_free(bus->pending[i].body);
  }
  bus->n_pending = from;
}

/* Sends what was published while down, oldest first, while the backend
 * takes it.  An entry leaves the list only once the backend accepted it
 * (0) or refused it for good (KZ_EINVAL and the like: logged, dropped).
 * KZ_ENOTCONN (the connection went meanwhile) and KZ_ENOMEM (try again
 * later) stop the flush and keep the rest, in order, for the next UP or
 * the next publish.  Returns true when nothing is left. */
static bool flush_pending(struct kz_bus *bus) {
  size_t done = 0;
  while (done < bus->n_pending && backend_up(bus)) {
    struct pending_pub *p = &bus->pending[done];
    int rc = publish_raw(bus, ++bus->next_publish_id, p->exchange, p->key,
                         p->body, p->len, false);
    if (rc == KZ_ENOTCONN || rc == KZ_ENOMEM || rc == KZ_EAGAIN) break;
    if (rc)
      kz_log(bus->env, KZ_LOG_WARN, "bus",
             "dropping a publish kept while down (%s %s): %s", p->exchange,
             p->key, kz_strerror(rc));
    kz_free(p->exchange);
    kz_free(p->key);
    kz_free(p->body);
    done++;
  }
  if (done) {
    memmove(bus->pending, bus->pending + done,
            (bus->n_pending - done) * sizeof *bus->pending);
    bus->n_pending -= done;
  }
  return bus->n_pending == 0;
}

void kz_bus_backend_up(struct kz_bus *bus, int broker_index) {
  if (!bus) return;
  bus->state = KZ_BUS_UP;
  bus->broker_index = broker_index;
  bus->generation++;
  /* Replay everything in declaration order: exchanges before the
   * bindings that name them, queues before their consumers. */
  for (size_t i = 0; i < bus->n_recs && backend_up(bus); i++) {
    int rc = apply(bus, bus->recs[i]);
    if (rc && rc != KZ_ENOTCONN)
      kz_log(bus->env, KZ_LOG_WARN, "bus", "replay of %s failed: %s",
             bus->recs[i]->name, kz_strerror(rc));
  }
  /* Then what was published while down, in order. */
  flush_pending(bus);
  if (backend_up(bus)) report(bus, NULL);
}

void kz_bus_backend_down(struct kz_bus *bus, const char *reason) {
  if (!bus) return;
  bool was_up = bus->state == KZ_BUS_UP;
  bus->state = KZ_BUS_DOWN;
  /* Unconfirmed publishes fail, oldest first.  Each leaves the list
   * before its callback so a callback that publishes again is safe. */
  while (bus->n_confirms) {
    struct confirm c = bus->confirms[0];
    memmove(bus->confirms, bus->confirms + 1,
            (bus->n_confirms - 1) * sizeof *bus->confirms);
    bus->n_confirms--;
    if (c.cb) c.cb(c.arg, bus, KZ_ECONNRESET);
  }
  if (was_up || reason) report(bus, reason ? reason : "connection lost");
}

void kz_bus_backend_error(struct kz_bus *bus, const char *reason) {
  if (!bus) return;
  kz_log(bus->env, KZ_LOG_WARN, "bus", "broker error: %s",
         reason ? reason : "?");
  report(bus, reason ? reason : "broker error");
}

void kz_bus_backend_deliver(struct kz_bus *bus, uint64_t consumer_id,
                            const struct kz_bus_delivery *d) {
  if (!bus || !d) return;
  struct rec *r = find_consumer(bus, consumer_id, NULL);
  if (!r) return; /* cancelled meanwhile */
  struct kz_bus_delivery copy = *d;
  copy.tag = (bus->generation << TAG_BITS) | (d->tag & TAG_MASK);
  r->cb(r->arg, bus, &copy);
}

void kz_bus_backend_confirm(struct kz_bus *bus, uint64_t publish_id,
                            int status) {
  if (!bus) return;
  for (size_t i = 0; i < bus->n_confirms; i++) {
    if (bus->confirms[i].publish_id != publish_id) continue;
    struct confirm c = bus->confirms[i];
    memmove(bus->confirms + i, bus->confirms + i + 1,
            (bus->n_confirms - i - 1) * sizeof *bus->confirms);
    bus->n_confirms--;
    if (c.cb) c.cb(c.arg, bus, status);
    return;
  }
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                           */

int kz_bus_new(struct kz_bus **out, struct kz_env *env,
               const struct kz_bus_backend *backend,
               const struct kz_bus_cfg *cfg) {
  if (!backend || !backend->ops) return KZ_EINVAL;
  if (!out || !env || !cfg || !cfg->app_name || !cfg->app_version) {
    backend->ops->destroy(backend->be);
    return KZ_EINVAL;
  }
  int rc = KZ_ENOMEM;
  struct kz_bus *bus = kz_calloc(1, sizeof *bus);
  if (!bus) {
    backend->ops->destroy(backend->be);
    return KZ_ENOMEM;
  }
  bus->env = env;
  bus->backend = *backend;
  bus->broker_index = -1;
  bus->default_timeout_ns =
      cfg->default_timeout_ns ? cfg->default_timeout_ns : DEFAULT_TIMEOUT_NS;
  bus->on_state = cfg->on_state;
  bus->state_arg = cfg->state_arg;
  kz_map_init(&bus->reqs, 0, false);
  kz_env_prng(env, "bus", &bus->prng);
  memcpy(bus->server_id, SERVER_ID_PREFIX, sizeof SERVER_ID_PREFIX - 1);
  kz_prng_hex(&bus->prng, bus->server_id + sizeof SERVER_ID_PREFIX - 1,
              SERVER_ID_HEX);
  bus->server_id[sizeof bus->server_id - 1] = '\0';

  if (!(bus->app_name = kz_strdup(cfg->app_name)) ||
      !(bus->app_version = kz_strdup(cfg->app_version)) ||
      (cfg->node && !(bus->node = kz_strdup(cfg->node))))
    goto out;
  bus->j_app_name = json_string(bus->app_name);
  bus->j_app_version = json_string(bus->app_version);
  if (bus->node) bus->j_node = json_string(bus->node);
  /* The Server-ID is hex: nothing to check. */
  if (!(bus->j_server_id = json_string_nocheck(bus->server_id))) goto out;

  /* The private reply queue: exclusive and auto-delete like Kazoo's
   * per-process reply queues, bound to "targeted" under its own name so
   * that a reply to Server-ID reaches it. */
  struct kz_bus_queue_opts qo = {.exclusive = true, .auto_delete = true};
  if ((rc = kz_bus_declare_exchange(bus, "targeted", KZ_BUS_EX_DIRECT)) ||
      (rc = kz_bus_declare_queue(bus, bus->server_id, &qo)) ||
      (rc = kz_bus_bind(bus, bus->server_id, "targeted", bus->server_id)) ||
      (rc = kz_bus_consume(bus, bus->server_id, false, on_reply, NULL,
                           &bus->reply_consumer)))
    goto out;

  bus->backend.ops->attach(bus->backend.be, bus);
  *out = bus;
  return 0;
out:
  kz_bus_free(bus);
  return rc;
}

void kz_bus_free(struct kz_bus *bus) {
  if (!bus) return;
  /* Pending requests end first, one at a time (a callback could start
   * another: it is cancelled in turn). */
  for (;;) {
    size_t pos = 0;
    const void *k;
    size_t kl;
    void *v;
    if (!kz_map_next(&bus->reqs, &pos, &k, &kl, &v)) break;
    req_finish(v, KZ_ECANCELED, NULL);
  }
  kz_map_free(&bus->reqs);
  /* No upcall may reach the bus from here on. */
  if (bus->backend.ops) bus->backend.ops->destroy(bus->backend.be);
  /* Unconfirmed publishes are dropped without a callback: the caller is
   * freeing the bus and cannot be called back into it. */
  kz_free(bus->confirms);
  pending_clear(bus, 0);
  kz_free(bus->pending);
  for (size_t i = 0; i < bus->n_recs; i++) rec_free(bus->recs[i]);
  kz_free(bus->recs);
  kz_free(bus->node);
  kz_free(bus->app_name);
  kz_free(bus->app_version);
  json_decref(bus->j_app_name);
  json_decref(bus->j_app_version);
  json_decref(bus->j_node);
  json_decref(bus->j_server_id);
  kz_buf_free(&bus->out);
  kz_free(bus);
}

enum kz_bus_state kz_bus_state(const struct kz_bus *bus) {
  return bus ? bus->state : KZ_BUS_DOWN;
}

const char *kz_bus_server_id(const struct kz_bus *bus) {
  return bus ? bus->server_id : "";
}

struct kz_env *kz_bus_env(const struct kz_bus *bus) {
  return bus ? bus->env : NULL;
}

/* ------------------------------------------------------------------ */
/* Topology                                                             */

int kz_bus_declare_exchange(struct kz_bus *bus, const char *name,
                            enum kz_bus_exchange_type type) {
  if (!bus || !name || !*name || type < KZ_BUS_EX_DIRECT ||
      type > KZ_BUS_EX_FANOUT)
    return KZ_EINVAL;
  for (size_t i = 0; i < bus->n_recs; i++) {
    struct rec *r = bus->recs[i];
    if (r->kind == REC_EXCHANGE && streq(r->name, name)) {
      if (r->type == type) return 0;
      r->type = type; /* the broker decides; remember the latest wish */
      return apply_now(bus, r);
    }
  }
  struct rec *r = rec_new(REC_EXCHANGE, name, NULL, NULL);
  if (!r) return KZ_ENOMEM;
  r->type = type;
  if (rec_append(bus, r)) {
    rec_free(r);
    return KZ_ENOMEM;
  }
  return apply_now(bus, r);
}

int kz_bus_declare_kazoo_exchanges(struct kz_bus *bus) {
  if (!bus) return KZ_EINVAL;
  size_t n = 0;
  const struct kz_bus_exchange *ex = kz_bus_exchanges(&n);
  for (size_t i = 0; i < n; i++) {
    int rc = kz_bus_declare_exchange(bus, ex[i].name, ex[i].type);
    if (rc) return rc;
  }
  return 0;
}

int kz_bus_declare_queue(struct kz_bus *bus, const char *name,
                         const struct kz_bus_queue_opts *opts) {
  if (!bus || !name || !*name) return KZ_EINVAL;
  struct kz_bus_queue_opts o = {0};
  if (opts) o = *opts;
  for (size_t i = 0; i < bus->n_recs; i++) {
    struct rec *r = bus->recs[i];
    if (r->kind == REC_QUEUE && streq(r->name, name)) {
      r->qopts = o;
      return apply_now(bus, r);
    }
  }
  struct rec *r = rec_new(REC_QUEUE, name, NULL, NULL);
  if (!r) return KZ_ENOMEM;
  r->qopts = o;
  if (rec_append(bus, r)) {
    rec_free(r);
    return KZ_ENOMEM;
  }
  return apply_now(bus, r);
}

int kz_bus_delete_queue(struct kz_bus *bus, const char *name) {
  if (!bus || !name || !*name) return KZ_EINVAL;
  /* The broker drops the queue's bindings and consumers with it, so the
   * bus forgets them too (nothing of it is replayed later). */
  for (size_t i = bus->n_recs; i-- > 0;) {
    struct rec *r = bus->recs[i];
    if ((r->kind == REC_QUEUE || r->kind == REC_BIND ||
         r->kind == REC_CONSUMER) &&
        streq(r->name, name))
      rec_remove_at(bus, i);
  }
  if (!backend_up(bus)) return 0;
  int rc = bus->backend.ops->delete_queue(bus->backend.be, name);
  return rc == KZ_ENOTCONN ? 0 : rc;
}

int kz_bus_bind(struct kz_bus *bus, const char *queue, const char *exchange,
                const char *routing_key) {
  if (!bus || !queue || !*queue || !exchange) return KZ_EINVAL;
  if (!routing_key) routing_key = "";
  for (size_t i = 0; i < bus->n_recs; i++) {
    struct rec *r = bus->recs[i];
    if (r->kind == REC_BIND && streq(r->name, queue) &&
        streq(r->exchange, exchange) && streq(r->key, routing_key))
      return apply_now(bus, r);
  }
  struct rec *r = rec_new(REC_BIND, queue, exchange, routing_key);
  if (!r) return KZ_ENOMEM;
  if (rec_append(bus, r)) {
    rec_free(r);
    return KZ_ENOMEM;
  }
  return apply_now(bus, r);
}

int kz_bus_unbind(struct kz_bus *bus, const char *queue, const char *exchange,
                  const char *routing_key) {
  if (!bus || !queue || !*queue || !exchange) return KZ_EINVAL;
  if (!routing_key) routing_key = "";
  for (size_t i = 0; i < bus->n_recs; i++) {
    struct rec *r = bus->recs[i];
    if (r->kind == REC_BIND && streq(r->name, queue) &&
        streq(r->exchange, exchange) && streq(r->key, routing_key)) {
      rec_remove_at(bus, i);
      break;
    }
  }
  if (!backend_up(bus)) return 0;
  int rc =
      bus->backend.ops->unbind(bus->backend.be, queue, exchange, routing_key);
  return rc == KZ_ENOTCONN ? 0 : rc;
}

int kz_bus_consume(struct kz_bus *bus, const char *queue, bool manual_ack,
                   kz_bus_deliver_fn *cb, void *arg, uint64_t *id) {
  if (!bus || !queue || !*queue || !cb) return KZ_EINVAL;
  struct rec *r = rec_new(REC_CONSUMER, queue, NULL, NULL);
  if (!r) return KZ_ENOMEM;
  r->consumer_id = ++bus->next_consumer_id;
  r->no_ack = !manual_ack;
  r->cb = cb;
  r->arg = arg;
  if (rec_append(bus, r)) {
    rec_free(r);
    return KZ_ENOMEM;
  }
  int rc = apply_now(bus, r);
  if (rc) {
    rec_remove_at(bus, bus->n_recs - 1);
    return rc;
  }
  if (id) *id = r->consumer_id;
  return 0;
}

int kz_bus_cancel(struct kz_bus *bus, uint64_t id) {
  size_t at;
  if (!bus || id == 0 || id == bus->reply_consumer ||
      !find_consumer(bus, id, &at))
    return KZ_EINVAL;
  rec_remove_at(bus, at);
  if (!backend_up(bus)) return 0;
  int rc = bus->backend.ops->cancel(bus->backend.be, id);
  return rc == KZ_ENOTCONN ? 0 : rc;
}

/* Returns 0, KZ_EINVAL (tag 0) or KZ_ENOTCONN: the delivery came over a
 * connection that is gone, so the broker has already put it back for
 * redelivery and there is nothing left to ack. */
int kz_bus_ack(struct kz_bus *bus, uint64_t tag) {
  if (!bus || tag == 0) return KZ_EINVAL;
  if ((tag >> TAG_BITS) != bus->generation || !backend_up(bus))
    return KZ_ENOTCONN;
  return bus->backend.ops->ack(bus->backend.be, tag & TAG_MASK);
}

/* ------------------------------------------------------------------ */
/* Publishing                                                           */

int kz_bus_publish(struct kz_bus *bus, const char *exchange,
                   const char *routing_key, const void *body, size_t len,
                   kz_bus_confirm_fn *confirm_cb, void *arg) {
  if (!bus || !exchange || (!body && len)) return KZ_EINVAL;
  if (!routing_key) routing_key = "";
  if (confirm_cb) {
    if (!backend_up(bus)) return KZ_ENOTCONN;
    if (kz_array_reserve((void **)&bus->confirms, &bus->cap_confirms, bus->n_confirms + 1,
             sizeof *bus->confirms))
      return KZ_ENOMEM;
    uint64_t pid = ++bus->next_publish_id;
    int rc = publish_raw(bus, pid, exchange, routing_key, body, len, true);
    if (rc) return rc;
    bus->confirms[bus->n_confirms++] =
        (struct confirm){.publish_id = pid, .cb = confirm_cb, .arg = arg};
    return 0;
  }
  /* Older publishes kept while down go first, so order holds; while
   * some remain, this one queues behind them. */
  if (backend_up(bus) && flush_pending(bus)) {
    int rc = publish_raw(bus, ++bus->next_publish_id, exchange, routing_key,
                         body, len, false);
    if (rc != KZ_ENOTCONN) return rc;
  }
  /* Down (or just lost, or older ones still waiting): keep it for the
   * next UP. */
  if (bus->n_pending >= PENDING_MAX) return KZ_ENOTCONN;
  if (kz_array_reserve((void **)&bus->pending, &bus->cap_pending, bus->n_pending + 1,
           sizeof *bus->pending))
    return KZ_ENOMEM;
  struct pending_pub p = {0};
  p.exchange = kz_strdup(exchange);
  p.key = kz_strdup(routing_key);
  p.body = kz_malloc(len ? len : 1);
  if (!p.exchange || !p.key || !p.body) {
    kz_free(p.exchange);
    kz_free(p.key);
    kz_free(p.body);
    return KZ_ENOMEM;
  }
  if (len) memcpy(p.body, body, len);
  p.len = len;
  bus->pending[bus->n_pending++] = p;
  return 0;
}

/* Fills the envelope fields the role left out (App-Name, App-Version,
 * Node) from the bus configuration.  Returns 0 or KZ_ENOMEM. */
static int fill_envelope(struct kz_bus *bus, json_t *msg) {
  struct {
    const char *field;
    const char *value;
    json_t *json;
  } f[] = {{"App-Name", bus->app_name, bus->j_app_name},
           {"App-Version", bus->app_version, bus->j_app_version},
           {"Node", bus->node, bus->j_node}};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
    if (!f[i].value || json_object_get(msg, f[i].field)) continue;
    if (!f[i].json || json_object_set_nocheck(msg, f[i].field, f[i].json))
      return KZ_ENOMEM;
  }
  return 0;
}

/* Identifies msg's type from its Event-Category/Event-Name. */
static int identify(struct kz_bus *bus, const json_t *msg,
                    enum kz_kapi_type *type_out) {
  enum kz_kapi_type type = kz_kapi_identify_msg(msg);
  if (type == KZ_KAPI_UNKNOWN) {
    kz_log(bus->env, KZ_LOG_WARN, "bus",
           "refusing a message of unknown Event-Category/Event-Name");
    return KZ_EINVAL;
  }
  *type_out = type;
  return 0;
}

/* Validates msg as a message of `type`. */
static int validate_as(struct kz_bus *bus, const json_t *msg,
                       enum kz_kapi_type type) {
  struct kz_kapi_error err;
  if (kz_kapi_validate(msg, type, &err)) {
    kz_log(bus->env, KZ_LOG_WARN, "bus", "refusing invalid message: %s",
           err.reason);
    return KZ_EINVAL;
  }
  return 0;
}

/* Validates msg against the type its Event-Category/Event-Name name. */
static int validate(struct kz_bus *bus, const json_t *msg) {
  enum kz_kapi_type type;
  int rc = identify(bus, msg, &type);
  return rc ? rc : validate_as(bus, msg, type);
}

static int publish_json(struct kz_bus *bus, const char *exchange,
                        const char *key, const json_t *msg,
                        kz_bus_confirm_fn *cb, void *arg) {
  struct kz_buf local;
  kz_buf_init(&local);
  bool own = !bus->out_busy;
  struct kz_buf *b = own ? &bus->out : &local;
  kz_buf_reset(b);
  int rc = kz_kapi_dump(msg, b);
  if (!rc) {
    bus->out_busy = true;
    rc = kz_bus_publish(bus, exchange, key, b->data, b->len, cb, arg);
    if (own) bus->out_busy = false;
  }
  if (!own || b->cap > OUT_KEEP_MAX) kz_buf_free(b);
  return rc;
}

int kz_bus_publish_msg(struct kz_bus *bus, const char *exchange,
                       const char *routing_key, const json_t *msg,
                       kz_bus_confirm_fn *confirm_cb, void *arg) {
  if (!bus || !exchange || !json_is_object(msg)) return KZ_EINVAL;
  int rc = validate(bus, msg);
  if (rc) return rc;
  return publish_json(bus, exchange, routing_key, msg, confirm_cb, arg);
}

int kz_bus_publish_built(struct kz_bus *bus, const char *exchange,
                         const char *routing_key, const json_t *msg,
                         kz_bus_confirm_fn *confirm_cb, void *arg) {
  if (!bus || !exchange || !json_is_object(msg)) return KZ_EINVAL;
  return publish_json(bus, exchange, routing_key, msg, confirm_cb, arg);
}

/* ------------------------------------------------------------------ */
/* Request/response                                                     */

static int start_request(struct kz_bus *bus, const char *exchange,
                         const char *routing_key, json_t *req,
                         uint64_t timeout_ns, bool collect, size_t want,
                         kz_bus_reply_fn *rcb, kz_bus_collect_fn *ccb,
                         void *arg, uint64_t *id) {
  if (!bus || !exchange || !json_is_object(req) || (!rcb && !ccb))
    return KZ_EINVAL;
  enum kz_kapi_type type = kz_kapi_identify_msg(req);
  if (type == KZ_KAPI_UNKNOWN) {
    kz_log(bus->env, KZ_LOG_WARN, "bus",
           "refusing a request of unknown Event-Category/Event-Name");
    return KZ_EINVAL;
  }
  const char *mid = json_string_value(json_object_get(req, "Msg-ID"));
  char fresh[KZ_KAPI_MSG_ID_LEN + 1];
  if (!mid || !*mid) {
    kz_kapi_msg_id(&bus->prng, fresh);
    /* Hex digits: no UTF-8 check needed. */
    if (json_object_set_new_nocheck(req, "Msg-ID", json_string_nocheck(fresh)))
      return KZ_ENOMEM;
    mid = fresh;
  }
  if (strlen(mid) >= sizeof(((struct req *)0)->msg_id)) return KZ_EINVAL;
  if (kz_map_get_str(&bus->reqs, mid)) return KZ_EEXIST;
  if (json_object_set_nocheck(req, "Server-ID", bus->j_server_id) ||
      fill_envelope(bus, req))
    return KZ_ENOMEM;
  /* The fields set here do not change the type identified above. */
  int rc = validate_as(bus, req, type);
  if (rc) return rc;

  struct req *q = kz_calloc(1, sizeof *q);
  if (!q) return KZ_ENOMEM;
  q->bus = bus;
  q->id = ++bus->next_req_id;
  strcpy(q->msg_id, mid);
  q->collect = collect;
  q->want = want;
  q->reply_cb = rcb;
  q->collect_cb = ccb;
  q->arg = arg;
  kz_timer_init(&q->timer, bus->env, req_timeout, q);
  if (kz_map_put_str(&bus->reqs, q->msg_id, q, NULL)) {
    kz_free(q);
    return KZ_ENOMEM;
  }
  if ((rc = kz_timer_start(&q->timer,
                           timeout_ns ? timeout_ns : bus->default_timeout_ns)) ||
      (rc = publish_json(bus, exchange, routing_key, req, NULL, NULL))) {
    kz_map_del_str(&bus->reqs, q->msg_id);
    req_free(q);
    return rc;
  }
  if (id) *id = q->id;
  return 0;
}

int kz_bus_request(struct kz_bus *bus, const char *exchange,
                   const char *routing_key, json_t *req, uint64_t timeout_ns,
                   kz_bus_reply_fn *cb, void *arg, uint64_t *id) {
  if (!cb) return KZ_EINVAL;
  return start_request(bus, exchange, routing_key, req, timeout_ns, false, 1,
                       cb, NULL, arg, id);
}

int kz_bus_collect(struct kz_bus *bus, const char *exchange,
                   const char *routing_key, json_t *req, size_t want,
                   uint64_t timeout_ns, kz_bus_collect_fn *cb, void *arg,
                   uint64_t *id) {
  if (!cb) return KZ_EINVAL;
  return start_request(bus, exchange, routing_key, req, timeout_ns, true, want,
                       NULL, cb, arg, id);
}

void kz_bus_request_cancel(struct kz_bus *bus, uint64_t id) {
  if (!bus || !id) return;
  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  while (kz_map_next(&bus->reqs, &pos, &k, &kl, &v)) {
    struct req *q = v;
    if (q->id != id) continue;
    kz_map_del_str(&bus->reqs, q->msg_id);
    req_free(q);
    return;
  }
}

int kz_bus_reply(struct kz_bus *bus, const json_t *req, json_t *reply) {
  if (!bus || !json_is_object(req) || !json_is_object(reply)) return KZ_EINVAL;
  const char *sid = json_string_value(json_object_get(req, "Server-ID"));
  const char *mid = json_string_value(json_object_get(req, "Msg-ID"));
  struct kz_slice q = kz_bus_reply_queue(sid);
  if (!q.len || !mid) return KZ_EINVAL;
  /* The reply shares the request's Msg-ID string rather than copying
   * it. */
  if (json_object_set_nocheck(reply, "Msg-ID",
                              json_object_get(req, "Msg-ID")) ||
      fill_envelope(bus, reply))
    return KZ_ENOMEM;
  int rc = validate(bus, reply);
  if (rc) return rc;
  /* Reply queue names are short: no allocation for the key then. */
  char small[128];
  char *key = small;
  if (q.len < sizeof small) {
    memcpy(small, q.p, q.len);
    small[q.len] = 0;
  } else if (!(key = kz_slice_dup(q))) {
    return KZ_ENOMEM;
  }
  rc = publish_json(bus, "targeted", key, reply, NULL, NULL);
  if (key != small) kz_free(key);
  return rc;
}
