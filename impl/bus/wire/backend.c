/* backend.c — the wire bus backend: framed protocol over kz_env streams, broker failover, backoff and heartbeats. */
#include <stdio.h>
#include <string.h>

#include "kz/bus_wire.h"
#include "kz/error.h"
#include "kz/mem.h"

#define DEFAULT_HEARTBEAT_NS UINT64_C(1000000000)
#define DEFAULT_CONNECT_TIMEOUT_NS UINT64_C(2000000000)
#define DEFAULT_BACKOFF_MIN_NS UINT64_C(50000000)
#define DEFAULT_BACKOFF_MAX_NS UINT64_C(5000000000)
#define NS_PER_MS UINT64_C(1000000)

enum phase {
  PH_IDLE = 0,   /* no stream: waiting to (re)connect */
  PH_CONNECTING, /* stream connecting or HELLO sent, no HELLO_OK yet */
  PH_UP,         /* HELLO_OK received: the bus has been told UP */
};

struct wire {
  struct kz_env *env;
  struct kz_bus *bus;
  struct kz_addr *brokers;
  size_t n_brokers;
  size_t index; /* broker of the current or next attempt */
  uint64_t heartbeat_ns, connect_timeout_ns, backoff_min_ns, backoff_max_ns;
  struct kz_prng prng; /* "bus.wire": backoff jitter */

  enum phase phase;
  struct kz_stream *s;
  uint64_t conn_gen; /* bumped at every teardown: stale loops stop */
  bool broken;       /* a write failed: teardown is due (fail_timer) */
  /* Frames are dispatched to the bus (and so to user callbacks) from
   * inside on_stream_data; a callback may free the bus, which destroys
   * this backend.  The free is then deferred until dispatch returns. */
  unsigned in_data;  /* on_stream_data nesting depth */
  bool destroyed;    /* w_destroy ran while in_data: free on the way out */
  unsigned fails;    /* consecutive attempts that never reached UP */
  uint64_t hb_ns;    /* negotiated heartbeat interval */
  uint64_t last_rx, last_tx;
  struct kz_buf rx, tx, scratch;
  char reason[160];

  struct kz_timer hb_timer;      /* heartbeat send and silence check */
  struct kz_timer connect_timer; /* connect + HELLO deadline */
  struct kz_timer retry_timer;   /* next attempt */
  struct kz_timer fail_timer;    /* deferred teardown after a write error */
};

static void start_attempt(struct wire *w);
static void arm_heartbeat(struct wire *w);
static void w_release(struct wire *w);

/* ------------------------------------------------------------------ */
/* Sending                                                              */

static int send_frame(struct wire *w, const struct kz_bus_wire_frame *f) {
  if (!w->s || w->broken) return KZ_ENOTCONN;
  kz_buf_reset(&w->tx);
  int rc = kz_bus_wire_encode(&w->tx, f);
  if (rc) return rc;
  rc = kz_stream_write(w->s, w->tx.data, w->tx.len);
  if (rc) {
    /* The stream is gone or out of memory: tear down from a timer, not
     * from inside whatever bus call got us here. */
    w->broken = true;
    snprintf(w->reason, sizeof w->reason, "write failed: %s",
             kz_strerror(rc));
    kz_timer_start(&w->fail_timer, 0);
    return KZ_ENOTCONN;
  }
  w->last_tx = kz_env_now(w->env);
  return 0;
}

/* Operations are only sent once the session is up; before that the bus
 * replays its topology when it hears UP. */
static int send_op(struct wire *w, const struct kz_bus_wire_frame *f) {
  if (w->phase != PH_UP) return KZ_ENOTCONN;
  return send_frame(w, f);
}

/* ------------------------------------------------------------------ */
/* Connection life                                                      */

static uint64_t backoff(struct wire *w) {
  /* One pass over the broker list is immediate; after each full pass
   * that failed, wait exponentially longer, with up to 25% jitter so
   * many clients do not retry in lockstep. */
  if (w->fails % w->n_brokers) return 0;
  unsigned rounds = w->fails / (unsigned)w->n_brokers;
  uint64_t d = w->backoff_min_ns;
  for (unsigned i = 1; i < rounds && d < w->backoff_max_ns; i++) d *= 2;
  if (d > w->backoff_max_ns) d = w->backoff_max_ns;
  return d + kz_prng_below(&w->prng, d / 4 + 1);
}

/* Ends the current connection (if any) and schedules the next attempt:
 * the next broker in the list, at once after a connection that was up,
 * with backoff after a failed attempt. */
static void teardown(struct wire *w, const char *reason) {
  enum phase was = w->phase;
  kz_timer_stop(&w->hb_timer);
  kz_timer_stop(&w->connect_timer);
  kz_timer_stop(&w->fail_timer);
  if (w->s) {
    kz_stream_close(w->s);
    w->s = NULL;
  }
  w->conn_gen++;
  w->broken = false;
  w->phase = PH_IDLE;
  kz_buf_reset(&w->rx);
  char addr[KZ_ADDR_STRLEN];
  kz_addr_format(&w->brokers[w->index], addr, sizeof addr);
  kz_log(w->env, KZ_LOG_INFO, "bus.wire", "broker %zu (%s): %s", w->index,
         addr, reason);
  w->index = (w->index + 1) % w->n_brokers;
  uint64_t delay = 0;
  if (was == PH_UP) {
    w->fails = 0;
  } else {
    w->fails++;
    delay = backoff(w);
  }
  kz_timer_start(&w->retry_timer, delay);
  if (was == PH_UP) kz_bus_backend_down(w->bus, reason);
}

static void on_retry(void *arg) { start_attempt(arg); }

static void on_connect_timeout(void *arg) {
  teardown(arg, "connect timed out");
}

static void on_fail_timer(void *arg) {
  struct wire *w = arg;
  teardown(w, w->reason);
}

static void on_heartbeat_timer(void *arg) {
  struct wire *w = arg;
  uint64_t now = kz_env_now(w->env);
  if (now >= w->last_rx + KZ_BUS_WIRE_HEARTBEAT_MISSES * w->hb_ns) {
    teardown(w, "heartbeat timeout: broker silent");
    return;
  }
  if (now >= w->last_tx + w->hb_ns) {
    struct kz_bus_wire_frame f = {.op = KZ_BUS_WIRE_HEARTBEAT};
    if (send_frame(w, &f)) return; /* fail_timer tears down */
  }
  arm_heartbeat(w);
}

static void arm_heartbeat(struct wire *w) {
  uint64_t send_at = w->last_tx + w->hb_ns;
  uint64_t dead_at = w->last_rx + KZ_BUS_WIRE_HEARTBEAT_MISSES * w->hb_ns;
  kz_timer_start_at(&w->hb_timer, send_at < dead_at ? send_at : dead_at);
}

static void on_stream_connect(void *arg, struct kz_stream *s) {
  (void)arg;
  (void)s; /* HELLO is already queued; HELLO_OK decides */
}

static void on_stream_close(void *arg, struct kz_stream *s, int status) {
  struct wire *w = arg;
  if (s != w->s) return;
  char why[96];
  snprintf(why, sizeof why, "connection %s",
           status ? kz_strerror(status) : "closed by the broker");
  teardown(w, why);
}

/* NUL-terminated copies of a delivery's strings, in w->scratch. */
static int cstrings(struct wire *w, const struct kz_slice *in,
                    const char **out, size_t n) {
  kz_buf_reset(&w->scratch);
  size_t off[8];
  for (size_t i = 0; i < n; i++) {
    off[i] = w->scratch.len;
    if (kz_buf_append_slice(&w->scratch, in[i]) ||
        kz_buf_append_byte(&w->scratch, 0))
      return KZ_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) out[i] = (const char *)w->scratch.data + off[i];
  return 0;
}

/* Handles one frame from the broker.  Returns 0 or a reason to drop the
 * connection (protocol error). */
static const char *dispatch(struct wire *w, const struct kz_bus_wire_frame *f) {
  switch (f->op) {
    case KZ_BUS_WIRE_HELLO_OK:
      if (w->phase != PH_CONNECTING) return "unexpected HELLO_OK";
      if (f->version != KZ_BUS_WIRE_VERSION) return "unsupported version";
      kz_timer_stop(&w->connect_timer);
      w->phase = PH_UP;
      w->fails = 0;
      w->hb_ns = f->heartbeat_ms ? (uint64_t)f->heartbeat_ms * NS_PER_MS
                                 : w->heartbeat_ns;
      arm_heartbeat(w);
      kz_log(w->env, KZ_LOG_INFO, "bus.wire", "broker %zu up", w->index);
      kz_bus_backend_up(w->bus, (int)w->index);
      return NULL;
    case KZ_BUS_WIRE_HEARTBEAT:
      return NULL;
    case KZ_BUS_WIRE_DELIVER: {
      if (w->phase != PH_UP) return "DELIVER before HELLO_OK";
      struct kz_slice in[4] = {f->queue, f->exchange, f->key, f->content_type};
      const char *s[4];
      if (cstrings(w, in, s, 4)) return "out of memory";
      struct kz_bus_delivery d = {
          .queue = s[0],
          .exchange = s[1],
          .routing_key = s[2],
          .body = (const uint8_t *)f->body.p,
          .len = f->body.len,
          .tag = f->tag,
          .redelivered = f->redelivered != 0,
      };
      kz_bus_backend_deliver(w->bus, f->consumer, &d);
      return NULL;
    }
    case KZ_BUS_WIRE_CONFIRM:
      if (w->phase != PH_UP) return "CONFIRM before HELLO_OK";
      kz_bus_backend_confirm(w->bus, f->publish_id,
                             f->status == 0 ? 0 : KZ_EIO);
      return NULL;
    case KZ_BUS_WIRE_ERROR: {
      char why[320];
      snprintf(why, sizeof why, "broker error %u: %.*s", (unsigned)f->code,
               (int)(f->text.len > 256 ? 256 : f->text.len),
               f->text.p ? f->text.p : "");
      kz_bus_backend_error(w->bus, why);
      return NULL;
    }
    default:
      return "unexpected frame from broker";
  }
}

static void on_stream_data(void *arg, struct kz_stream *s,
                           const uint8_t *data, size_t len) {
  struct wire *w = arg;
  if (s != w->s || w->destroyed) return;
  w->last_rx = kz_env_now(w->env);
  if (kz_buf_append(&w->rx, data, len)) {
    teardown(w, "out of memory");
    return;
  }
  uint64_t gen = w->conn_gen;
  size_t off = 0;
  for (;;) {
    struct kz_bus_wire_frame f;
    size_t used = 0;
    int rc = kz_bus_wire_decode(w->rx.data + off, w->rx.len - off, &f, &used);
    if (rc == KZ_EAGAIN) break;
    if (rc) {
      teardown(w, "protocol error from broker");
      return;
    }
    off += used;
    w->in_data++;
    const char *bad = dispatch(w, &f);
    w->in_data--;
    if (w->destroyed) { /* a callback freed the bus */
      if (!w->in_data) w_release(w);
      return;
    }
    if (w->conn_gen != gen) return; /* torn down meanwhile */
    if (bad) {
      teardown(w, bad);
      return;
    }
  }
  kz_buf_consume(&w->rx, off);
}

static const struct kz_stream_cbs stream_cbs = {
    .on_connect = on_stream_connect,
    .on_data = on_stream_data,
    .on_close = on_stream_close,
};

static void start_attempt(struct wire *w) {
  if (w->s) return;
  w->phase = PH_CONNECTING;
  uint64_t now = kz_env_now(w->env);
  w->last_rx = w->last_tx = now;
  kz_timer_start(&w->connect_timer, w->connect_timeout_ns);
  int rc = kz_stream_connect(w->env, &w->brokers[w->index], &stream_cbs, w,
                             &w->s);
  if (rc) {
    w->s = NULL;
    char why[96];
    snprintf(why, sizeof why, "connect failed: %s", kz_strerror(rc));
    teardown(w, why);
    return;
  }
  uint64_t hb_ms = w->heartbeat_ns / NS_PER_MS;
  struct kz_bus_wire_frame hello = {
      .op = KZ_BUS_WIRE_HELLO,
      .version = KZ_BUS_WIRE_VERSION,
      .heartbeat_ms = (uint32_t)(hb_ms ? (hb_ms > UINT32_MAX ? UINT32_MAX : hb_ms) : 1),
  };
  send_frame(w, &hello); /* a failure tears down through fail_timer */
}

/* ------------------------------------------------------------------ */
/* The ops table                                                        */

static void w_attach(void *be, struct kz_bus *bus) {
  struct wire *w = be;
  w->bus = bus;
  start_attempt(w);
}

static int w_declare_exchange(void *be, const char *name,
                              enum kz_bus_exchange_type type) {
  struct kz_bus_wire_frame f = {.op = KZ_BUS_WIRE_DECLARE_EXCHANGE,
                                .type = (uint8_t)type,
                                .name = kz_slice_cstr(name)};
  return send_op(be, &f);
}

static int w_declare_queue(void *be, const char *name,
                           const struct kz_bus_queue_opts *opts) {
  uint8_t flags = 0;
  if (opts && opts->exclusive) flags |= KZ_BUS_WIRE_Q_EXCLUSIVE;
  if (opts && opts->auto_delete) flags |= KZ_BUS_WIRE_Q_AUTO_DELETE;
  if (opts && opts->durable) flags |= KZ_BUS_WIRE_Q_DURABLE;
  struct kz_bus_wire_frame f = {.op = KZ_BUS_WIRE_DECLARE_QUEUE,
                                .flags = flags,
                                .name = kz_slice_cstr(name)};
  return send_op(be, &f);
}

static int w_delete_queue(void *be, const char *name) {
  struct kz_bus_wire_frame f = {.op = KZ_BUS_WIRE_DELETE_QUEUE,
                                .name = kz_slice_cstr(name)};
  return send_op(be, &f);
}

static int w_bind_op(void *be, enum kz_bus_wire_op op, const char *queue,
                     const char *exchange, const char *key) {
  struct kz_bus_wire_frame f = {.op = op,
                                .queue = kz_slice_cstr(queue),
                                .exchange = kz_slice_cstr(exchange),
                                .key = kz_slice_cstr(key)};
  return send_op(be, &f);
}

static int w_bind(void *be, const char *queue, const char *exchange,
                  const char *key) {
  return w_bind_op(be, KZ_BUS_WIRE_BIND, queue, exchange, key);
}

static int w_unbind(void *be, const char *queue, const char *exchange,
                    const char *key) {
  return w_bind_op(be, KZ_BUS_WIRE_UNBIND, queue, exchange, key);
}

static int w_consume(void *be, uint64_t consumer_id, const char *queue,
                     bool no_ack) {
  struct kz_bus_wire_frame f = {.op = KZ_BUS_WIRE_CONSUME,
                                .consumer = consumer_id,
                                .no_ack = no_ack ? 1 : 0,
                                .queue = kz_slice_cstr(queue)};
  return send_op(be, &f);
}

static int w_cancel(void *be, uint64_t consumer_id) {
  struct kz_bus_wire_frame f = {.op = KZ_BUS_WIRE_CANCEL,
                                .consumer = consumer_id};
  return send_op(be, &f);
}

static int w_publish(void *be, uint64_t publish_id, const char *exchange,
                     const char *key, const void *body, size_t len,
                     const struct kz_bus_publish_opts *opts) {
  bool confirm = opts && opts->confirm;
  const char *ct =
      opts && opts->content_type ? opts->content_type : "application/json";
  /* publish_id 0 means "no confirm" on the wire; the bus never uses 0. */
  if (confirm && publish_id == 0) return KZ_EINVAL;
  struct kz_bus_wire_frame f = {.op = KZ_BUS_WIRE_PUBLISH,
                                .publish_id = confirm ? publish_id : 0,
                                .exchange = kz_slice_cstr(exchange),
                                .key = kz_slice_cstr(key),
                                .content_type = kz_slice_cstr(ct),
                                .body = kz_slice_make(body, len)};
  int rc = send_op(be, &f);
  return rc == KZ_ERANGE ? KZ_EINVAL : rc;
}

static int w_ack(void *be, uint64_t tag) {
  struct kz_bus_wire_frame f = {.op = KZ_BUS_WIRE_ACK, .tag = tag};
  return send_op(be, &f);
}

static void w_release(struct wire *w) {
  kz_buf_free(&w->rx);
  kz_buf_free(&w->tx);
  kz_buf_free(&w->scratch);
  kz_free(w->brokers);
  kz_free(w);
}

static void w_destroy(void *be) {
  struct wire *w = be;
  if (!w) return;
  kz_timer_stop(&w->hb_timer);
  kz_timer_stop(&w->connect_timer);
  kz_timer_stop(&w->retry_timer);
  kz_timer_stop(&w->fail_timer);
  kz_stream_close(w->s);
  w->s = NULL;
  /* Called from a callback that on_stream_data dispatched: the frame
   * being handled still points into w->rx, and on_stream_data reads w
   * when the callback returns, so it frees w then. */
  if (w->in_data) {
    w->destroyed = true;
    return;
  }
  w_release(w);
}

static const struct kz_bus_backend_ops wire_ops = {
    .attach = w_attach,
    .declare_exchange = w_declare_exchange,
    .declare_queue = w_declare_queue,
    .delete_queue = w_delete_queue,
    .bind = w_bind,
    .unbind = w_unbind,
    .consume = w_consume,
    .cancel = w_cancel,
    .publish = w_publish,
    .ack = w_ack,
    .destroy = w_destroy,
};

int kz_bus_wire_new(struct kz_bus_backend *out, struct kz_env *env,
                    const struct kz_bus_wire_cfg *cfg) {
  if (!out || !env || !cfg || !cfg->brokers || cfg->n_brokers == 0)
    return KZ_EINVAL;
  struct wire *w = kz_calloc(1, sizeof *w);
  if (!w) return KZ_ENOMEM;
  w->brokers = kz_calloc(cfg->n_brokers, sizeof *w->brokers);
  if (!w->brokers) {
    kz_free(w);
    return KZ_ENOMEM;
  }
  memcpy(w->brokers, cfg->brokers, cfg->n_brokers * sizeof *w->brokers);
  w->n_brokers = cfg->n_brokers;
  w->env = env;
  w->heartbeat_ns = cfg->heartbeat_ns ? cfg->heartbeat_ns : DEFAULT_HEARTBEAT_NS;
  w->connect_timeout_ns = cfg->connect_timeout_ns ? cfg->connect_timeout_ns
                                                  : DEFAULT_CONNECT_TIMEOUT_NS;
  w->backoff_min_ns =
      cfg->backoff_min_ns ? cfg->backoff_min_ns : DEFAULT_BACKOFF_MIN_NS;
  w->backoff_max_ns =
      cfg->backoff_max_ns ? cfg->backoff_max_ns : DEFAULT_BACKOFF_MAX_NS;
  if (w->backoff_max_ns < w->backoff_min_ns) w->backoff_max_ns = w->backoff_min_ns;
  w->hb_ns = w->heartbeat_ns;
  kz_env_prng(env, "bus.wire", &w->prng);
  kz_buf_init(&w->rx);
  kz_buf_init(&w->tx);
  kz_buf_init(&w->scratch);
  kz_timer_init(&w->hb_timer, env, on_heartbeat_timer, w);
  kz_timer_init(&w->connect_timer, env, on_connect_timeout, w);
  kz_timer_init(&w->retry_timer, env, on_retry, w);
  kz_timer_init(&w->fail_timer, env, on_fail_timer, w);
  out->ops = &wire_ops;
  out->be = w;
  return 0;
}
