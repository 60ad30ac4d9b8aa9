/* broker.c — the broker model: exchanges, queues, consumers, acks and confirms with RabbitMQ's semantics, over the bus wire protocol. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kz/bus.h"
#include "kz/bus_wire.h"
#include "kz/error.h"
#include "kz/map.h"
#include "kz/mem.h"
#include "kz/sim_broker.h"

#define NS_PER_MS UINT64_C(1000000)
#define DEFAULT_HELLO_TIMEOUT_NS UINT64_C(10000000000)

/* AMQP reply codes used in ERROR frames. */
#define CODE_NOT_FOUND 404
#define CODE_RESOURCE_LOCKED 405
#define CODE_PRECONDITION_FAILED 406

struct conn;
struct queue;

/* A published message; each queue holding it keeps a reference. */
struct msg {
  char *exchange;
  char *key;
  char *content_type;
  uint8_t *body;
  size_t len;
};

struct qmsg {
  struct msg *m;
  bool redelivered;
};

struct binding {
  char *queue;
  char *key;
};

struct exchange {
  char *name;
  enum kz_bus_exchange_type type;
  struct binding *binds; /* insertion order */
  size_t n_binds, cap_binds;
};

struct consumer {
  struct conn *c;
  struct queue *q;
  uint64_t id;
  bool no_ack;
};

struct queue {
  char *name;
  uint64_t qid; /* unique per broker: a requeue never lands in a namesake */
  uint8_t flags;
  struct conn *owner; /* exclusive queues */
  struct qmsg *ring;  /* FIFO: ring[(head + i) % cap] */
  size_t head, len, cap;
  struct consumer **consumers;
  size_t n_consumers, cap_consumers;
  size_t rr;
};

struct unacked {
  uint64_t tag;
  uint64_t qid;
  char *queue;
  struct msg *m;
};

struct conn {
  struct kz_sim_broker *b;
  struct kz_stream *s;
  uint64_t id;
  bool hello;
  bool broken; /* a write failed: the reaper closes it */
  bool dead;   /* closed: waiting for the reaper timer to free it */
  uint64_t hb_ns;
  uint64_t last_rx, last_tx;
  struct kz_buf rx, tx;
  struct kz_timer hb_timer;
  struct consumer **consumers;
  size_t n_consumers, cap_consumers;
  struct unacked *unacked; /* tag order */
  size_t n_unacked, cap_unacked;
  uint64_t next_tag;
  char reason[128];
};

struct kz_sim_broker {
  struct kz_env *env;
  struct kz_sim_broker_cfg cfg;
  struct kz_listener *listener;
  struct kz_map exchanges; /* name -> struct exchange */
  struct kz_map queues;    /* name -> struct queue */
  struct conn **conns;     /* accept order */
  size_t n_conns, cap_conns;
  uint64_t next_conn_id, next_qid;
  struct kz_timer reaper; /* frees dead connections outside callbacks */
  struct kz_sim_broker_stats st;
};

static void conn_close(struct conn *c, const char *reason);

/* ------------------------------------------------------------------ */
/* Helpers                                                              */


static void msg_dtor(void *p) {
  struct msg *m = p;
  kz_free(m->exchange);
  kz_free(m->key);
  kz_free(m->content_type);
  kz_free(m->body);
}

static struct msg *msg_new(const struct kz_bus_wire_frame *f) {
  struct msg *m = kz_obj_alloc(sizeof *m, msg_dtor);
  if (!m) return NULL;
  m->exchange = kz_slice_dup(f->exchange);
  m->key = kz_slice_dup(f->key);
  m->content_type = kz_slice_dup(f->content_type);
  m->body = kz_malloc(f->body.len ? f->body.len : 1);
  if (!m->exchange || !m->key || !m->content_type || !m->body)
    return kz_deref(m);
  if (f->body.len) memcpy(m->body, f->body.p, f->body.len);
  m->len = f->body.len;
  return m;
}

static int q_push(struct queue *q, struct msg *m, bool redelivered,
                  bool front) {
  if (q->len == q->cap) {
    size_t ncap = q->cap ? q->cap * 2 : 16;
    struct qmsg *r = kz_calloc(ncap, sizeof *r);
    if (!r) return KZ_ENOMEM;
    for (size_t i = 0; i < q->len; i++) r[i] = q->ring[(q->head + i) % q->cap];
    kz_free(q->ring);
    q->ring = r;
    q->cap = ncap;
    q->head = 0;
  }
  if (front) {
    q->head = (q->head + q->cap - 1) % q->cap;
    q->ring[q->head] = (struct qmsg){kz_ref(m), redelivered};
  } else {
    q->ring[(q->head + q->len) % q->cap] = (struct qmsg){kz_ref(m), redelivered};
  }
  q->len++;
  return 0;
}

static struct qmsg q_pop(struct queue *q) {
  struct qmsg e = q->ring[q->head];
  q->head = (q->head + 1) % q->cap;
  q->len--;
  return e;
}

static int send_frame(struct conn *c, const struct kz_bus_wire_frame *f) {
  if (c->dead || c->broken || !c->s) return KZ_ECLOSED;
  kz_buf_reset(&c->tx);
  int rc = kz_bus_wire_encode(&c->tx, f);
  if (!rc) rc = kz_stream_write(c->s, c->tx.data, c->tx.len);
  if (rc) {
    /* Closing here could delete the queue being dispatched under our
     * feet: the reaper closes it once the current event is done. */
    c->broken = true;
    snprintf(c->reason, sizeof c->reason, "write failed: %s",
             kz_strerror(rc));
    kz_timer_start(&c->b->reaper, 0);
    return rc;
  }
  c->last_tx = kz_env_now(c->b->env);
  return 0;
}

static void send_error(struct conn *c, uint16_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void send_error(struct conn *c, uint16_t code, const char *fmt, ...) {
  char text[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  c->b->st.errors++;
  kz_log(c->b->env, KZ_LOG_INFO, "broker", "conn %llu: error %u: %s",
         (unsigned long long)c->id, (unsigned)code, text);
  struct kz_bus_wire_frame f = {
      .op = KZ_BUS_WIRE_ERROR, .code = code, .text = kz_slice_cstr(text)};
  send_frame(c, &f);
}

/* ------------------------------------------------------------------ */
/* Queues                                                               */

static struct queue *queue_get(struct kz_sim_broker *b, struct kz_slice name) {
  return kz_map_get(&b->queues, name.p ? name.p : "", name.len, NULL);
}

static void consumer_detach_from_conn(struct consumer *k) {
  struct conn *c = k->c;
  for (size_t i = 0; i < c->n_consumers; i++) {
    if (c->consumers[i] != k) continue;
    memmove(c->consumers + i, c->consumers + i + 1,
            (c->n_consumers - i - 1) * sizeof *c->consumers);
    c->n_consumers--;
    return;
  }
}

static void consumer_detach_from_queue(struct consumer *k) {
  struct queue *q = k->q;
  for (size_t i = 0; i < q->n_consumers; i++) {
    if (q->consumers[i] != k) continue;
    memmove(q->consumers + i, q->consumers + i + 1,
            (q->n_consumers - i - 1) * sizeof *q->consumers);
    q->n_consumers--;
    /* Keep the turn with the consumer that followed the removed one. */
    if (q->rr > i) q->rr--;
    return;
  }
}

/* Deletes a queue: its messages, its bindings everywhere, its consumers
 * (silently, as RabbitMQ's basic.cancel notification is not modelled). */
static void queue_delete(struct kz_sim_broker *b, struct queue *q) {
  kz_log(b->env, KZ_LOG_DEBUG, "broker", "queue %s deleted", q->name);
  kz_map_del_str(&b->queues, q->name);
  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  while (kz_map_next(&b->exchanges, &pos, &k, &kl, &v)) {
    struct exchange *x = v;
    size_t o = 0;
    for (size_t i = 0; i < x->n_binds; i++) {
      if (strcmp(x->binds[i].queue, q->name) == 0) {
        kz_free(x->binds[i].queue);
        kz_free(x->binds[i].key);
      } else {
        x->binds[o++] = x->binds[i];
      }
    }
    x->n_binds = o;
  }
  for (size_t i = 0; i < q->n_consumers; i++) {
    consumer_detach_from_conn(q->consumers[i]);
    kz_free(q->consumers[i]);
  }
  kz_free(q->consumers);
  while (q->len) kz_deref(q_pop(q).m);
  kz_free(q->ring);
  kz_free(q->name);
  kz_free(q);
}

/* Pushes every ready message to the queue's consumers, round-robin. */
static void queue_dispatch(struct kz_sim_broker *b, struct queue *q) {
  while (q->len && q->n_consumers) {
    if (q->rr >= q->n_consumers) q->rr = 0;
    struct consumer *k = q->consumers[q->rr++];
    struct conn *c = k->c;
    struct qmsg e = q_pop(q);
    uint64_t tag = ++c->next_tag;
    if (!k->no_ack) {
      if (kz_array_reserve((void **)&c->unacked, &c->cap_unacked, c->n_unacked + 1,
               sizeof *c->unacked) ||
          !(c->unacked[c->n_unacked].queue = kz_strdup(q->name))) {
        /* No memory to track it: put it back for later. */
        q_push(q, e.m, e.redelivered, true);
        kz_deref(e.m);
        return;
      }
      struct unacked *u = &c->unacked[c->n_unacked++];
      u->tag = tag;
      u->qid = q->qid;
      u->m = kz_ref(e.m);
    }
    b->st.delivered++;
    if (e.redelivered) b->st.redelivered++;
    struct kz_bus_wire_frame f = {
        .op = KZ_BUS_WIRE_DELIVER,
        .consumer = k->id,
        .tag = tag,
        .redelivered = e.redelivered ? 1 : 0,
        .queue = kz_slice_cstr(q->name),
        .exchange = kz_slice_cstr(e.m->exchange),
        .key = kz_slice_cstr(e.m->key),
        .content_type = kz_slice_cstr(e.m->content_type),
        .body = kz_slice_make(e.m->body, e.m->len),
    };
    /* A failed write marks the connection broken; its close (from the
     * reaper) requeues what it had unacked, this one included. */
    send_frame(c, &f);
    kz_deref(e.m);
  }
}

/* The last consumer of an auto-delete queue went away. */
static void maybe_auto_delete(struct kz_sim_broker *b, struct queue *q) {
  if ((q->flags & KZ_BUS_WIRE_Q_AUTO_DELETE) && q->n_consumers == 0)
    queue_delete(b, q);
}

/* ------------------------------------------------------------------ */
/* Connections                                                          */

static void arm_heartbeat(struct conn *c) {
  uint64_t send_at = c->last_tx + c->hb_ns;
  uint64_t dead_at = c->last_rx + KZ_BUS_WIRE_HEARTBEAT_MISSES * c->hb_ns;
  if (!c->hello) send_at = UINT64_MAX; /* nothing is sent before HELLO */
  kz_timer_start_at(&c->hb_timer, send_at < dead_at ? send_at : dead_at);
}

static void on_hb_timer(void *arg) {
  struct conn *c = arg;
  uint64_t now = kz_env_now(c->b->env);
  if (now >= c->last_rx + KZ_BUS_WIRE_HEARTBEAT_MISSES * c->hb_ns) {
    c->b->st.heartbeat_timeouts++;
    conn_close(c, c->hello ? "heartbeat timeout" : "no HELLO");
    return;
  }
  if (c->hello && now >= c->last_tx + c->hb_ns) {
    struct kz_bus_wire_frame f = {.op = KZ_BUS_WIRE_HEARTBEAT};
    if (send_frame(c, &f)) return;
  }
  arm_heartbeat(c);
}

static void conn_free(struct conn *c) {
  kz_timer_stop(&c->hb_timer);
  kz_stream_close(c->s);
  for (size_t i = 0; i < c->n_unacked; i++) {
    kz_free(c->unacked[i].queue);
    kz_deref(c->unacked[i].m);
  }
  kz_free(c->unacked);
  for (size_t i = 0; i < c->n_consumers; i++) {
    consumer_detach_from_queue(c->consumers[i]);
    kz_free(c->consumers[i]);
  }
  kz_free(c->consumers);
  kz_buf_free(&c->rx);
  kz_buf_free(&c->tx);
  kz_free(c);
}

static void on_reaper(void *arg) {
  struct kz_sim_broker *b = arg;
  /* Close broken connections first (closing may break others: the next
   * run takes those), then free the dead. */
  for (size_t i = 0; i < b->n_conns; i++)
    if (b->conns[i]->broken && !b->conns[i]->dead)
      conn_close(b->conns[i], b->conns[i]->reason);
  size_t o = 0;
  for (size_t i = 0; i < b->n_conns; i++) {
    if (b->conns[i]->dead)
      conn_free(b->conns[i]);
    else
      b->conns[o++] = b->conns[i];
  }
  b->n_conns = o;
}

/* Ends a connection the way RabbitMQ does when a client goes: its
 * consumers leave (auto-delete queues may go with them), its unacked
 * messages return to the head of their queues marked redelivered, its
 * exclusive queues are deleted; then the affected queues dispatch.  The
 * memory is freed later by the reaper, as we may be inside a callback of
 * this very connection. */
static void conn_close(struct conn *c, const char *reason) {
  if (c->dead) return;
  struct kz_sim_broker *b = c->b;
  c->dead = true;
  b->st.open--;
  kz_log(b->env, KZ_LOG_INFO, "broker", "conn %llu closed: %s",
         (unsigned long long)c->id, reason);
  kz_timer_stop(&c->hb_timer);
  kz_stream_close(c->s);
  c->s = NULL;

  /* Queues to dispatch afterwards, by qid (they may be deleted). */
  uint64_t *touched = NULL;
  size_t n_touched = 0, cap_touched = 0;

  while (c->n_consumers) {
    struct consumer *k = c->consumers[c->n_consumers - 1];
    c->n_consumers--;
    struct queue *q = k->q;
    consumer_detach_from_queue(k);
    kz_free(k);
    maybe_auto_delete(b, q);
  }
  for (size_t i = c->n_unacked; i-- > 0;) {
    struct unacked *u = &c->unacked[i];
    struct queue *q = kz_map_get_str(&b->queues, u->queue);
    if (q && q->qid == u->qid && q->owner != c &&
        q_push(q, u->m, true, true) == 0 &&
        kz_array_reserve((void **)&touched, &cap_touched, n_touched + 1,
             sizeof *touched) == 0)
      touched[n_touched++] = q->qid;
    kz_free(u->queue);
    kz_deref(u->m);
  }
  c->n_unacked = 0;

  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  while (kz_map_next(&b->queues, &pos, &k, &kl, &v)) {
    struct queue *q = v;
    if (q->owner == c) queue_delete(b, q);
  }
  for (size_t i = 0; i < n_touched; i++) {
    pos = 0;
    while (kz_map_next(&b->queues, &pos, &k, &kl, &v)) {
      struct queue *q = v;
      if (q->qid == touched[i]) {
        queue_dispatch(b, q);
        break;
      }
    }
  }
  kz_free(touched);
  kz_timer_start(&b->reaper, 0);
}

/* ------------------------------------------------------------------ */
/* Operations                                                           */

static void op_declare_exchange(struct conn *c,
                                const struct kz_bus_wire_frame *f) {
  struct kz_sim_broker *b = c->b;
  if (f->type < KZ_BUS_EX_DIRECT || f->type > KZ_BUS_EX_FANOUT ||
      f->name.len == 0) {
    send_error(c, CODE_PRECONDITION_FAILED,
               "PRECONDITION_FAILED - invalid exchange declaration '%.*s'",
               (int)f->name.len, f->name.p ? f->name.p : "");
    return;
  }
  struct exchange *x = kz_map_get(&b->exchanges, f->name.p, f->name.len, NULL);
  if (x) {
    if (x->type != f->type)
      send_error(c, CODE_PRECONDITION_FAILED,
                 "PRECONDITION_FAILED - inequivalent arg 'type' for exchange "
                 "'%s': received '%s' but current is '%s'",
                 x->name, kz_bus_exchange_type_name(f->type),
                 kz_bus_exchange_type_name(x->type));
    return;
  }
  x = kz_calloc(1, sizeof *x);
  if (!x || !(x->name = kz_slice_dup(f->name)) ||
      kz_map_put(&b->exchanges, f->name.p, f->name.len, x, NULL)) {
    if (x) kz_free(x->name);
    kz_free(x);
    conn_close(c, "out of memory");
    return;
  }
  x->type = f->type;
}

static void op_declare_queue(struct conn *c, const struct kz_bus_wire_frame *f) {
  struct kz_sim_broker *b = c->b;
  uint8_t flags = f->flags & (KZ_BUS_WIRE_Q_EXCLUSIVE |
                              KZ_BUS_WIRE_Q_AUTO_DELETE | KZ_BUS_WIRE_Q_DURABLE);
  if (f->name.len == 0) {
    send_error(c, CODE_PRECONDITION_FAILED,
               "PRECONDITION_FAILED - server-named queues are not modelled");
    return;
  }
  struct queue *q = queue_get(b, f->name);
  if (q) {
    if (q->owner && q->owner != c)
      send_error(c, CODE_RESOURCE_LOCKED,
                 "RESOURCE_LOCKED - cannot obtain exclusive access to locked "
                 "queue '%s'",
                 q->name);
    else if (q->flags != flags)
      send_error(c, CODE_PRECONDITION_FAILED,
                 "PRECONDITION_FAILED - inequivalent arg for queue '%s'",
                 q->name);
    return;
  }
  q = kz_calloc(1, sizeof *q);
  if (!q || !(q->name = kz_slice_dup(f->name)) ||
      kz_map_put(&b->queues, f->name.p, f->name.len, q, NULL)) {
    if (q) kz_free(q->name);
    kz_free(q);
    conn_close(c, "out of memory");
    return;
  }
  q->qid = ++b->next_qid;
  q->flags = flags;
  if (flags & KZ_BUS_WIRE_Q_EXCLUSIVE) q->owner = c;
  kz_log(b->env, KZ_LOG_DEBUG, "broker", "queue %s declared", q->name);
}

/* Looks a queue up for an operation of c, reporting 404/405. */
static struct queue *usable_queue(struct conn *c, struct kz_slice name) {
  struct queue *q = queue_get(c->b, name);
  if (!q) {
    send_error(c, CODE_NOT_FOUND, "NOT_FOUND - no queue '%.*s'",
               (int)name.len, name.p ? name.p : "");
    return NULL;
  }
  if (q->owner && q->owner != c) {
    send_error(c, CODE_RESOURCE_LOCKED,
               "RESOURCE_LOCKED - cannot obtain exclusive access to locked "
               "queue '%s'",
               q->name);
    return NULL;
  }
  return q;
}

static void op_delete_queue(struct conn *c, const struct kz_bus_wire_frame *f) {
  struct queue *q = queue_get(c->b, f->name);
  if (!q) return; /* deleting what is not there is fine */
  if ((q = usable_queue(c, f->name))) queue_delete(c->b, q);
}

static void op_bind(struct conn *c, const struct kz_bus_wire_frame *f,
                    bool bind) {
  struct kz_sim_broker *b = c->b;
  struct queue *q = usable_queue(c, f->queue);
  if (!q) return;
  struct exchange *x =
      kz_map_get(&b->exchanges, f->exchange.p ? f->exchange.p : "",
                 f->exchange.len, NULL);
  if (!x) {
    send_error(c, CODE_NOT_FOUND, "NOT_FOUND - no exchange '%.*s'",
               (int)f->exchange.len, f->exchange.p ? f->exchange.p : "");
    return;
  }
  for (size_t i = 0; i < x->n_binds; i++) {
    struct binding *bd = &x->binds[i];
    if (strcmp(bd->queue, q->name) || !kz_slice_eq_cstr(f->key, bd->key))
      continue;
    if (!bind) {
      kz_free(bd->queue);
      kz_free(bd->key);
      memmove(bd, bd + 1, (x->n_binds - i - 1) * sizeof *bd);
      x->n_binds--;
    }
    return;
  }
  if (!bind) return;
  struct binding nb = {kz_strdup(q->name), kz_slice_dup(f->key)};
  if (!nb.queue || !nb.key ||
      kz_array_reserve((void **)&x->binds, &x->cap_binds, x->n_binds + 1,
           sizeof *x->binds)) {
    kz_free(nb.queue);
    kz_free(nb.key);
    conn_close(c, "out of memory");
    return;
  }
  x->binds[x->n_binds++] = nb;
}

static void op_consume(struct conn *c, const struct kz_bus_wire_frame *f) {
  struct queue *q = usable_queue(c, f->queue);
  if (!q) return;
  for (size_t i = 0; i < c->n_consumers; i++) {
    if (c->consumers[i]->id == f->consumer) {
      send_error(c, CODE_PRECONDITION_FAILED,
                 "PRECONDITION_FAILED - consumer %llu already in use",
                 (unsigned long long)f->consumer);
      return;
    }
  }
  struct consumer *k = kz_calloc(1, sizeof *k);
  if (!k ||
      kz_array_reserve((void **)&c->consumers, &c->cap_consumers, c->n_consumers + 1,
           sizeof *c->consumers) ||
      kz_array_reserve((void **)&q->consumers, &q->cap_consumers, q->n_consumers + 1,
           sizeof *q->consumers)) {
    kz_free(k);
    conn_close(c, "out of memory");
    return;
  }
  k->c = c;
  k->q = q;
  k->id = f->consumer;
  k->no_ack = f->no_ack != 0;
  c->consumers[c->n_consumers++] = k;
  q->consumers[q->n_consumers++] = k;
  queue_dispatch(c->b, q);
}

static void op_cancel(struct conn *c, const struct kz_bus_wire_frame *f) {
  for (size_t i = 0; i < c->n_consumers; i++) {
    struct consumer *k = c->consumers[i];
    if (k->id != f->consumer) continue;
    struct queue *q = k->q;
    consumer_detach_from_conn(k);
    consumer_detach_from_queue(k);
    kz_free(k);
    maybe_auto_delete(c->b, q);
    return;
  }
  /* Cancelling an unknown consumer is not an error in AMQP either. */
}

static bool matches(const struct exchange *x, const struct binding *bd,
                    struct kz_slice key) {
  switch (x->type) {
    case KZ_BUS_EX_DIRECT:
      return kz_slice_eq_cstr(key, bd->key);
    case KZ_BUS_EX_TOPIC:
      return kz_bus_topic_match(bd->key, strlen(bd->key), key.p ? key.p : "",
                                key.len);
    case KZ_BUS_EX_FANOUT:
      return true;
  }
  return false;
}

static void confirm(struct conn *c, uint64_t publish_id, bool ok) {
  if (!publish_id) return;
  struct kz_bus_wire_frame f = {.op = KZ_BUS_WIRE_CONFIRM,
                                .publish_id = publish_id,
                                .status = ok ? 0 : 1};
  send_frame(c, &f);
}

static void op_publish(struct conn *c, const struct kz_bus_wire_frame *f) {
  struct kz_sim_broker *b = c->b;
  b->st.published++;
  struct exchange *x = NULL;
  if (f->exchange.len) {
    x = kz_map_get(&b->exchanges, f->exchange.p, f->exchange.len, NULL);
    if (!x) {
      send_error(c, CODE_NOT_FOUND, "NOT_FOUND - no exchange '%.*s'",
                 (int)f->exchange.len, f->exchange.p);
      confirm(c, f->publish_id, false);
      return;
    }
  }
  /* Every matching queue once, in binding order; then dispatch each. */
  struct queue **hit = NULL;
  size_t n_hit = 0, cap_hit = 0;
  bool oom = false;
  if (!x) {
    struct queue *q = queue_get(b, f->key); /* the default exchange */
    if (q && kz_array_reserve((void **)&hit, &cap_hit, 1, sizeof *hit) == 0)
      hit[n_hit++] = q;
  } else {
    for (size_t i = 0; i < x->n_binds && !oom; i++) {
      if (!matches(x, &x->binds[i], f->key)) continue;
      struct queue *q = kz_map_get_str(&b->queues, x->binds[i].queue);
      if (!q) continue;
      bool dup = false;
      for (size_t j = 0; j < n_hit && !dup; j++) dup = hit[j] == q;
      if (dup) continue;
      if (kz_array_reserve((void **)&hit, &cap_hit, n_hit + 1, sizeof *hit))
        oom = true;
      else
        hit[n_hit++] = q;
    }
  }
  struct msg *m = n_hit ? msg_new(f) : NULL;
  if (n_hit && !m) oom = true;
  for (size_t i = 0; m && i < n_hit; i++) {
    if (q_push(hit[i], m, false, false))
      oom = true;
    else
      b->st.routed++;
  }
  if (!n_hit) b->st.unroutable++;
  kz_deref(m);
  confirm(c, f->publish_id, !oom);
  /* Dispatch after the confirm went out: RabbitMQ confirms once routed.
   * Queues are looked up again by id: a failed write to a consumer can
   * close a connection and delete queues on the way. */
  for (size_t i = 0; i < n_hit; i++) {
    uint64_t qid = hit[i]->qid;
    size_t pos = 0;
    const void *k;
    size_t kl;
    void *v;
    while (kz_map_next(&b->queues, &pos, &k, &kl, &v)) {
      if (((struct queue *)v)->qid != qid) continue;
      queue_dispatch(b, v);
      break;
    }
  }
  kz_free(hit);
}

static void op_ack(struct conn *c, const struct kz_bus_wire_frame *f) {
  for (size_t i = 0; i < c->n_unacked; i++) {
    struct unacked *u = &c->unacked[i];
    if (u->tag != f->tag) continue;
    kz_free(u->queue);
    kz_deref(u->m);
    memmove(u, u + 1, (c->n_unacked - i - 1) * sizeof *u);
    c->n_unacked--;
    c->b->st.acked++;
    return;
  }
  send_error(c, CODE_PRECONDITION_FAILED,
             "PRECONDITION_FAILED - unknown delivery tag %llu",
             (unsigned long long)f->tag);
}

static void op_hello(struct conn *c, const struct kz_bus_wire_frame *f) {
  struct kz_sim_broker *b = c->b;
  uint32_t ms = f->heartbeat_ms;
  if (ms < b->cfg.min_heartbeat_ms) ms = b->cfg.min_heartbeat_ms;
  if (ms > b->cfg.max_heartbeat_ms) ms = b->cfg.max_heartbeat_ms;
  c->hello = true;
  c->hb_ns = (uint64_t)ms * NS_PER_MS;
  struct kz_bus_wire_frame ok = {.op = KZ_BUS_WIRE_HELLO_OK,
                                 .version = KZ_BUS_WIRE_VERSION,
                                 .heartbeat_ms = ms};
  if (send_frame(c, &ok)) return;
  arm_heartbeat(c);
}

/* One frame from a client.  Returns NULL or why to drop the connection. */
static const char *dispatch(struct conn *c, const struct kz_bus_wire_frame *f) {
  if (!c->hello) {
    if (f->op != KZ_BUS_WIRE_HELLO) return "frame before HELLO";
    if (f->version != KZ_BUS_WIRE_VERSION) return "unsupported version";
    op_hello(c, f);
    return NULL;
  }
  switch (f->op) {
    case KZ_BUS_WIRE_HEARTBEAT: return NULL;
    case KZ_BUS_WIRE_DECLARE_EXCHANGE: op_declare_exchange(c, f); return NULL;
    case KZ_BUS_WIRE_DECLARE_QUEUE: op_declare_queue(c, f); return NULL;
    case KZ_BUS_WIRE_DELETE_QUEUE: op_delete_queue(c, f); return NULL;
    case KZ_BUS_WIRE_BIND: op_bind(c, f, true); return NULL;
    case KZ_BUS_WIRE_UNBIND: op_bind(c, f, false); return NULL;
    case KZ_BUS_WIRE_CONSUME: op_consume(c, f); return NULL;
    case KZ_BUS_WIRE_CANCEL: op_cancel(c, f); return NULL;
    case KZ_BUS_WIRE_PUBLISH: op_publish(c, f); return NULL;
    case KZ_BUS_WIRE_ACK: op_ack(c, f); return NULL;
    default: return "unexpected frame from client";
  }
}

static void on_data(void *arg, struct kz_stream *s, const uint8_t *data,
                    size_t len) {
  struct conn *c = arg;
  (void)s;
  if (c->dead) return;
  c->last_rx = kz_env_now(c->b->env);
  if (kz_buf_append(&c->rx, data, len)) {
    conn_close(c, "out of memory");
    return;
  }
  size_t off = 0;
  while (!c->dead) {
    struct kz_bus_wire_frame f;
    size_t used = 0;
    int rc = kz_bus_wire_decode(c->rx.data + off, c->rx.len - off, &f, &used);
    if (rc == KZ_EAGAIN) break;
    if (rc) {
      conn_close(c, "protocol error");
      return;
    }
    off += used;
    const char *bad = dispatch(c, &f);
    if (bad) {
      conn_close(c, bad);
      return;
    }
  }
  if (!c->dead) kz_buf_consume(&c->rx, off);
}

static void on_close(void *arg, struct kz_stream *s, int status) {
  struct conn *c = arg;
  (void)s;
  conn_close(c, status ? kz_strerror(status) : "closed by the client");
}

static const struct kz_stream_cbs conn_cbs = {
    .on_data = on_data,
    .on_close = on_close,
};

static void on_accept(void *arg, struct kz_listener *l, struct kz_stream *s) {
  struct kz_sim_broker *b = arg;
  (void)l;
  struct conn *c = kz_calloc(1, sizeof *c);
  if (!c || kz_array_reserve((void **)&b->conns, &b->cap_conns, b->n_conns + 1,
                 sizeof *b->conns)) {
    kz_free(c);
    kz_stream_close(s);
    return;
  }
  c->b = b;
  c->s = s;
  c->id = ++b->next_conn_id;
  kz_buf_init(&c->rx);
  kz_buf_init(&c->tx);
  uint64_t now = kz_env_now(b->env);
  c->last_rx = c->last_tx = now;
  /* Until HELLO: the silence check alone, at hello_timeout. */
  c->hb_ns = b->cfg.hello_timeout_ns / KZ_BUS_WIRE_HEARTBEAT_MISSES + 1;
  kz_timer_init(&c->hb_timer, b->env, on_hb_timer, c);
  arm_heartbeat(c);
  kz_stream_set_cbs(s, &conn_cbs, c);
  b->conns[b->n_conns++] = c;
  b->st.connections++;
  b->st.open++;
  char peer[KZ_ADDR_STRLEN];
  kz_addr_format(&s->peer, peer, sizeof peer);
  kz_log(b->env, KZ_LOG_INFO, "broker", "conn %llu from %s",
         (unsigned long long)c->id, peer);
}

/* ------------------------------------------------------------------ */
/* Life cycle and inspection                                            */

int kz_sim_broker_new(struct kz_sim_broker **out, struct kz_env *env,
                      const struct kz_sim_broker_cfg *cfg) {
  if (!out || !env) return KZ_EINVAL;
  struct kz_sim_broker *b = kz_calloc(1, sizeof *b);
  if (!b) return KZ_ENOMEM;
  b->env = env;
  if (cfg) b->cfg = *cfg;
  if (!b->cfg.listen.family) b->cfg.listen = kz_addr_v4(0, 0);
  if (!b->cfg.listen.port) b->cfg.listen.port = KZ_BUS_WIRE_PORT;
  if (!b->cfg.hello_timeout_ns) b->cfg.hello_timeout_ns = DEFAULT_HELLO_TIMEOUT_NS;
  if (!b->cfg.min_heartbeat_ms) b->cfg.min_heartbeat_ms = 10;
  if (!b->cfg.max_heartbeat_ms) b->cfg.max_heartbeat_ms = 60000;
  if (b->cfg.max_heartbeat_ms < b->cfg.min_heartbeat_ms)
    b->cfg.max_heartbeat_ms = b->cfg.min_heartbeat_ms;
  kz_map_init(&b->exchanges, 0, false);
  kz_map_init(&b->queues, 0, false);
  kz_timer_init(&b->reaper, env, on_reaper, b);
  int rc = kz_stream_listen(env, &b->cfg.listen, on_accept, b, &b->listener);
  if (rc) {
    kz_sim_broker_free(b);
    return rc;
  }
  char addr[KZ_ADDR_STRLEN];
  kz_addr_format(&b->cfg.listen, addr, sizeof addr);
  kz_log(env, KZ_LOG_INFO, "broker", "listening on %s", addr);
  *out = b;
  return 0;
}

void kz_sim_broker_free(struct kz_sim_broker *b) {
  if (!b) return;
  kz_timer_stop(&b->reaper);
  kz_listener_close(b->listener);
  /* Connections go without the close semantics (nothing is requeued:
   * everything is dropped anyway). */
  for (size_t i = 0; i < b->n_conns; i++) conn_free(b->conns[i]);
  kz_free(b->conns);
  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  while (kz_map_next(&b->queues, &pos, &k, &kl, &v)) queue_delete(b, v);
  kz_map_free(&b->queues);
  pos = 0;
  while (kz_map_next(&b->exchanges, &pos, &k, &kl, &v)) {
    struct exchange *x = v;
    for (size_t i = 0; i < x->n_binds; i++) {
      kz_free(x->binds[i].queue);
      kz_free(x->binds[i].key);
    }
    kz_free(x->binds);
    kz_free(x->name);
    kz_free(x);
  }
  kz_map_free(&b->exchanges);
  kz_free(b);
}

void kz_sim_broker_stats(const struct kz_sim_broker *b,
                         struct kz_sim_broker_stats *out) {
  if (!out) return;
  memset(out, 0, sizeof *out);
  if (!b) return;
  *out = b->st;
  out->exchanges = kz_map_count(&b->exchanges);
  out->queues = kz_map_count(&b->queues);
}

int kz_sim_broker_queue_info(const struct kz_sim_broker *b, const char *name,
                             size_t *ready, size_t *consumers) {
  const struct queue *q = b && name ? kz_map_get_str(&b->queues, name) : NULL;
  if (!q) return KZ_ENOENT;
  if (ready) *ready = q->len;
  if (consumers) *consumers = q->n_consumers;
  return 0;
}

static int app_start(struct kz_env *env, const void *cfg, void **instance) {
  struct kz_sim_broker *b = NULL;
  int rc = kz_sim_broker_new(&b, env, cfg);
  if (rc == 0) *instance = b;
  return rc;
}

static void app_stop(void *instance) { kz_sim_broker_free(instance); }

const struct kz_sim_app kz_sim_broker_app = {"broker", app_start, app_stop};
