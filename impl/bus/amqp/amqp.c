/* amqp.c — the AMQP bus backend: librabbitmq-c's framing on the libuv loop thread (uv_poll on its socket), connection setup on the thread pool, broker failover. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#include "kz/bytes.h"
#include "kz/bus_amqp.h"
#include "kz/error.h"
#include "kz/mem.h"

#define LOG_COMPONENT "bus.amqp"
#define CH_CTL 1 /* declarations, bindings, deletions */
#define CH_PUB 2 /* publishes */
#define CH_FIRST_CONSUMER 3
#define CH_MAX 4095 /* channels fit 12 bits of a delivery tag */
#define FRAME_MAX 131072 /* asked for at login */
#define READ_CHUNK 65536
#define READS_PER_WAKE 16 /* then other handles get their turn */
/* Output beyond this is written at once rather than before the next
 * poll, so a long burst of publishes streams instead of piling up. */
#define FLUSH_AT (64 * 1024)
/* A broker that stops reading (TCP backpressure, a memory alarm) must
 * not make the role buffer without bound: publishes then fail. */
#define OUT_MAX ((size_t)256 << 20)
#define TICK_MS_MAX 500 /* heartbeat and RPC deadline checks */
#define BODY_KEEP_MAX ((size_t)1 << 20) /* larger receive buffers go */

/* ------------------------------------------------------------------ */
/* State                                                                */

/* Work for the broker, in the order the bus asked for it.  RPCs are
 * sent one at a time and wait for their reply; a publish or an ack
 * queued behind one waits too (order is the bus's contract).  `step`
 * says how far a multi-method operation (a consume: channel.open,
 * basic.qos, basic.consume) has got.  Strings and body live in data[]
 * behind it: one allocation. */
enum op_kind {
  OP_EXCHANGE,
  OP_QUEUE,
  OP_DELETE_QUEUE,
  OP_BIND,
  OP_UNBIND,
  OP_CONSUME,
  OP_CANCEL,
  OP_PUBLISH,
  OP_ACK,
  OP_REOPEN, /* internal: reopen a channel the broker closed */
};

struct op {
  struct op *next;
  enum op_kind kind;
  int step;
  uint64_t id; /* consumer id, publish id or delivery tag */
  amqp_channel_t ch; /* the channel a consume opened, or OP_REOPEN's */
  enum kz_bus_exchange_type ex_type;
  struct kz_bus_queue_opts qopts;
  bool no_ack;
  bool confirm;
  const char *s1, *s2, *s3; /* queue/exchange/key, may be NULL */
  const char *ctype;
  const uint8_t *body;
  size_t len;
  char data[];
};

struct broker {
  char *buf; /* amqp_parse_url points info's strings into it */
  struct amqp_connection_info info;
};

struct consumer {
  struct consumer *next;
  uint64_t id;
  amqp_channel_t ch;
  bool no_ack;
  char tag[32];
  char queue[];
};

/* A message arriving on one channel: basic.deliver (or basic.return),
 * then a content header, then body frames.  Kept per channel and
 * reused, with its body buffer. */
struct content {
  struct content *next;
  amqp_channel_t ch;
  bool busy;        /* between the method and the last body byte */
  bool have_header;
  bool keep;        /* a delivery to hand to a consumer */
  uint64_t dtag;
  bool redelivered;
  uint64_t size, got;
  uint8_t *body;
  size_t cap;
  char ex[256], rk[256]; /* short strings: at most 255 bytes */
};

struct pending {
  uint64_t seq;
  uint64_t publish_id;
  bool done;
};

struct kz_bus_amqp;

/* One connection attempt, run on libuv's thread pool: only `conn` and
 * `why` are written there; the broker table and the options it reads
 * do not change after kz_bus_amqp_new. */
struct attempt {
  uv_work_t req;
  struct kz_bus_amqp *b;
  size_t broker;
  int level; /* log level for a failure */
  amqp_connection_state_t conn;
  char why[700];
};

/* The poll handle of one connection's socket (its memory outlives the
 * connection until libuv's close callback). */
struct sock {
  uv_poll_t poll;
  struct kz_bus_amqp *b;
};

struct kz_bus_amqp {
  uv_loop_t *loop;
  struct kz_bus_amqp_opts opts;
  struct broker *brokers;
  size_t n;
  struct kz_bus *bus;
  bool destroyed;
  /* Handles not yet closed and attempts not yet returned; after
   * destroy the memory goes when this reaches 0. */
  int live;
  uv_timer_t timer;     /* backoff while down; ticks while connected */
  uv_prepare_t prepare; /* settles queued work before the loop polls */
  struct attempt *attempt;

  /* Failover. */
  size_t cur;    /* broker tried next / connected to */
  size_t fails;  /* failed attempts in this round */
  size_t streak; /* failed attempts since the last connection */
  uint64_t backoff;

  /* The connection. */
  amqp_connection_state_t conn;
  struct sock *sock;
  int fd;
  bool up;
  int depth;  /* nesting of this backend's own loop callbacks */
  bool lost;  /* ended; torn down when the outermost callback returns */
  char reason[640];
  size_t frame_max;
  int heartbeat_s;
  uint64_t last_recv, last_send; /* uv_now, ms */
  int channel_max, next_ch;
  struct consumer *consumers;
  struct content *contents;
  bool confirm_mode;
  uint64_t pub_seq;
  struct pending *pend;
  size_t pend_head, pend_len, pend_cap;
  struct op *ops, **ops_tail;
  bool waiting; /* the head op awaits (wait_ch, wait_id) */
  amqp_channel_t wait_ch;
  amqp_method_number_t wait_id;
  uint64_t wait_deadline; /* uv_now, ms */
  uint8_t *out;
  size_t out_off, out_len, out_cap;
  bool want_write;
  uint8_t in[READ_CHUNK];
};

static void leave(struct kz_bus_amqp *b);
static void kick(struct kz_bus_amqp *b);
static void on_poll(uv_poll_t *h, int status, int events);
static void start_attempt(struct kz_bus_amqp *b);

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */

static size_t slen(const char *s) { return s ? strlen(s) + 1 : 0; }

/* Copies s into *p (advancing it) and returns the copy, or NULL for NULL. */
static const char *put_str(char **p, const char *s, size_t n_with_nul) {
  if (!s) return NULL;
  char *d = *p;
  memcpy(d, s, n_with_nul);
  *p += n_with_nul;
  return d;
}

static uint64_t ns_to_ms(uint64_t ns) { return (ns + 999999u) / 1000000u; }

static struct timeval ns_to_tv(uint64_t ns) {
  struct timeval tv = {.tv_sec = (time_t)(ns / 1000000000u),
                       .tv_usec = (suseconds_t)(ns % 1000000000u / 1000u)};
  return tv;
}

static void log_line(struct kz_bus_amqp *b, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void log_line(struct kz_bus_amqp *b, int level, const char *fmt, ...) {
  if (!b->bus) return;
  va_list ap;
  va_start(ap, fmt);
  kz_vlog(kz_bus_env(b->bus), level, LOG_COMPONENT, fmt, ap);
  va_end(ap);
}

/* A broker error that does not end the connection: an upcall. */
static void report_error(struct kz_bus_amqp *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void report_error(struct kz_bus_amqp *b, const char *fmt, ...) {
  if (!b->bus) return;
  char text[640];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  kz_bus_backend_error(b->bus, text);
}

static const char *broker_desc(struct kz_bus_amqp *b, size_t k, char *out,
                               size_t outlen) {
  snprintf(out, outlen, "broker %zu (%s:%d)", k, b->brokers[k].info.host,
           b->brokers[k].info.port);
  return out;
}

/* Ends the connection.  Never makes an upcall itself: the teardown (and
 * kz_bus_backend_down) happens when the outermost of this backend's loop
 * callbacks returns, or in the next prepare callback when this was
 * called from the role's own code. */
static void conn_lost(struct kz_bus_amqp *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void conn_lost(struct kz_bus_amqp *b, const char *fmt, ...) {
  if (!b->conn || b->lost) return;
  b->lost = true;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(b->reason, sizeof b->reason, fmt, ap);
  va_end(ap);
  kick(b);
}

/* ------------------------------------------------------------------ */
/* Output: frames encoded into b->out, written without blocking         */

static void want_write(struct kz_bus_amqp *b, bool on) {
  if (b->want_write == on || !b->sock) return;
  b->want_write = on;
  uv_poll_start(&b->sock->poll, UV_READABLE | (on ? UV_WRITABLE : 0),
                on_poll);
}

/* Writes what the socket takes now. */
static void flush(struct kz_bus_amqp *b) {
  if (!b->conn || b->lost) return;
  while (b->out_off < b->out_len) {
    ssize_t w = send(b->fd, b->out + b->out_off, b->out_len - b->out_off,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      b->out_off += (size_t)w;
      b->last_send = uv_now(b->loop);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      want_write(b, true);
      return;
    }
    conn_lost(b, "send: %s", w < 0 ? strerror(errno) : "nothing written");
    return;
  }
  b->out_off = b->out_len = 0;
  want_write(b, false);
}

/* Room for n more bytes at out + out_len.  0 or KZ_ENOMEM. */
static int out_reserve(struct kz_bus_amqp *b, size_t n) {
  if (b->out_cap - b->out_len >= n) return 0;
  if (b->out_off) { /* what was written makes room first */
    memmove(b->out, b->out + b->out_off, b->out_len - b->out_off);
    b->out_len -= b->out_off;
    b->out_off = 0;
    if (b->out_cap - b->out_len >= n) return 0;
  }
  size_t cap = b->out_cap ? b->out_cap : 16384;
  while (cap - b->out_len < n) cap *= 2;
  uint8_t *p = kz_realloc(b->out, cap);
  if (!p) return KZ_ENOMEM;
  b->out = p;
  b->out_cap = cap;
  return 0;
}

/* Appends one method frame.  `hint` bounds the encoded arguments (their
 * strings plus the fixed fields).  0, KZ_ENOMEM, or KZ_EINVAL when the
 * arguments do not encode (a name over 255 bytes). */
static int put_method(struct kz_bus_amqp *b, amqp_channel_t ch,
                      amqp_method_number_t id, void *m, size_t hint) {
  size_t room = hint + 64;
  if (out_reserve(b, 12 + room)) return KZ_ENOMEM;
  uint8_t *p = b->out + b->out_len;
  p[0] = AMQP_FRAME_METHOD;
  kz_put_be16(p + 1, ch);
  kz_put_be32(p + 7, id);
  amqp_bytes_t enc = {.len = room, .bytes = p + 11};
  int r = amqp_encode_method(id, m, enc);
  if (r < 0) return KZ_EINVAL;
  kz_put_be32(p + 3, (uint32_t)(4 + r));
  p[11 + r] = AMQP_FRAME_END;
  b->out_len += 12 + (size_t)r;
  return 0;
}

static int put_heartbeat(struct kz_bus_amqp *b) {
  if (out_reserve(b, 8)) return KZ_ENOMEM;
  static const uint8_t hb[8] = {AMQP_FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0,
                                AMQP_FRAME_END};
  memcpy(b->out + b->out_len, hb, sizeof hb);
  b->out_len += sizeof hb;
  return 0;
}

/* basic.publish, its content header and body frames on CH_PUB: all or
 * nothing.  0, KZ_ENOMEM or KZ_EINVAL. */
static int put_publish(struct kz_bus_amqp *b, const char *ex, const char *rk,
                       const char *ctype, const uint8_t *body, size_t len) {
  size_t save = b->out_len;
  amqp_basic_publish_t m = {.exchange = amqp_cstring_bytes(ex),
                            .routing_key = amqp_cstring_bytes(rk)};
  int rc = put_method(b, CH_PUB, AMQP_BASIC_PUBLISH_METHOD, &m,
                      strlen(ex) + strlen(rk) + 16);
  if (rc) goto out;
  /* Content header: class, weight, body size, then the properties. */
  amqp_basic_properties_t props;
  memset(&props, 0, sizeof props);
  props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
  props.content_type = amqp_cstring_bytes(ctype ? ctype : "application/json");
  props.delivery_mode = 1; /* transient, as Kazoo publishes */
  size_t room = props.content_type.len + 64;
  size_t chunk = b->frame_max - 8;
  size_t frames = len ? (len + chunk - 1) / chunk : 0;
  rc = KZ_ENOMEM;
  if (out_reserve(b, 19 + room + len + 8 * frames)) goto out;
  uint8_t *p = b->out + b->out_len;
  p[0] = AMQP_FRAME_HEADER;
  kz_put_be16(p + 1, CH_PUB);
  kz_put_be16(p + 7, AMQP_BASIC_CLASS);
  kz_put_be16(p + 9, 0);
  kz_put_be64(p + 11, len);
  amqp_bytes_t enc = {.len = room, .bytes = p + 19};
  int r = amqp_encode_properties(AMQP_BASIC_CLASS, &props, enc);
  rc = KZ_EINVAL;
  if (r < 0) goto out;
  kz_put_be32(p + 3, (uint32_t)(12 + r));
  p[19 + r] = AMQP_FRAME_END;
  b->out_len += 20 + (size_t)r;
  for (size_t off = 0; off < len; off += chunk) {
    size_t n = len - off < chunk ? len - off : chunk;
    p = b->out + b->out_len;
    p[0] = AMQP_FRAME_BODY;
    kz_put_be16(p + 1, CH_PUB);
    kz_put_be32(p + 3, (uint32_t)n);
    memcpy(p + 7, body + off, n);
    p[7 + n] = AMQP_FRAME_END;
    b->out_len += 8 + n;
  }
  return 0;
out:
  b->out_len = save;
  return rc;
}

/* Something was queued: when the role's own code queued it, settle it
 * (send, run ops, tear down) before the loop next polls; inside this
 * backend's callbacks the outermost one does it on return. */
static void on_prepare(uv_prepare_t *h);
static void kick(struct kz_bus_amqp *b) {
  if (b->depth == 0 && !b->destroyed)
    uv_prepare_start(&b->prepare, on_prepare);
}

/* After appending output from the role's own code. */
static void out_added(struct kz_bus_amqp *b) {
  if (b->depth == 0 && b->out_len - b->out_off >= FLUSH_AT && !b->want_write)
    flush(b);
  kick(b);
}

/* A method the connection cannot go on without (close-ok, ack,
 * heartbeat): failing to queue it ends the connection. */
static void put_or_lose(struct kz_bus_amqp *b, int rc, const char *what) {
  if (rc) conn_lost(b, "%s: %s", what, kz_strerror(rc));
}

/* ------------------------------------------------------------------ */
/* Consumers, confirms                                                  */

static struct consumer *consumer_by_id(struct kz_bus_amqp *b, uint64_t id) {
  for (struct consumer *c = b->consumers; c; c = c->next)
    if (c->id == id) return c;
  return NULL;
}

static struct consumer *consumer_by_ch(struct kz_bus_amqp *b,
                                       amqp_channel_t ch) {
  for (struct consumer *c = b->consumers; c; c = c->next)
    if (c->ch == ch) return c;
  return NULL;
}

static void consumer_remove(struct kz_bus_amqp *b, struct consumer *gone) {
  for (struct consumer **pp = &b->consumers; *pp; pp = &(*pp)->next) {
    if (*pp == gone) {
      *pp = gone->next;
      kz_free(gone);
      return;
    }
  }
}

/* Room for one more pending confirm.  0 or KZ_ENOMEM. */
static int pend_reserve(struct kz_bus_amqp *b) {
  if (b->pend_len < b->pend_cap) return 0;
  size_t cap = b->pend_cap ? b->pend_cap * 2 : 64;
  struct pending *p = kz_malloc(cap * sizeof *p);
  if (!p) return KZ_ENOMEM;
  for (size_t i = 0; i < b->pend_len; i++)
    p[i] = b->pend[(b->pend_head + i) % b->pend_cap];
  kz_free(b->pend);
  b->pend = p;
  b->pend_cap = cap;
  b->pend_head = 0;
  return 0;
}

static void pend_push(struct kz_bus_amqp *b, uint64_t seq, uint64_t id) {
  struct pending *e = &b->pend[(b->pend_head + b->pend_len) % b->pend_cap];
  e->seq = seq;
  e->publish_id = id;
  e->done = false;
  b->pend_len++;
}

/* basic.ack / basic.nack on the publish channel (or UINT64_MAX with
 * multiple for "all of them").  One confirm upcall at a time, each
 * after its entry has left the table, since a confirm callback may
 * publish again (or free the bus). */
static void confirmed(struct kz_bus_amqp *b, uint64_t tag, bool multiple,
                      int status) {
  for (;;) {
    if (b->destroyed || !b->conn) return;
    bool found = false;
    uint64_t id = 0;
    for (size_t i = 0; i < b->pend_len; i++) {
      struct pending *e = &b->pend[(b->pend_head + i) % b->pend_cap];
      if (e->seq > tag) break;
      if (e->done || (!multiple && e->seq != tag)) continue;
      e->done = true;
      id = e->publish_id;
      found = true;
      break;
    }
    while (b->pend_len && b->pend[b->pend_head].done) {
      b->pend_head = (b->pend_head + 1) % b->pend_cap;
      b->pend_len--;
    }
    if (!found) return;
    kz_bus_backend_confirm(b->bus, id, status);
  }
}

/* ------------------------------------------------------------------ */
/* Ops                                                                  */

static void op_append(struct kz_bus_amqp *b, struct op *o) {
  o->next = NULL;
  *b->ops_tail = o;
  b->ops_tail = &o->next;
  kick(b);
}

/* Puts o first among the ops not yet started (behind an RPC in flight). */
static void op_push_front(struct kz_bus_amqp *b, struct op *o) {
  struct op **pp = b->waiting && b->ops ? &b->ops->next : &b->ops;
  o->next = *pp;
  *pp = o;
  if (!o->next) b->ops_tail = &o->next;
}

static struct op *op_pop(struct kz_bus_amqp *b) {
  struct op *o = b->ops;
  if (!o) return NULL;
  b->ops = o->next;
  if (!b->ops) b->ops_tail = &b->ops;
  return o;
}

static void ops_free(struct kz_bus_amqp *b) {
  struct op *o;
  while ((o = op_pop(b))) kz_free(o);
  b->waiting = false;
}

/* Builds an op with up to three strings and a body, all copied. */
static struct op *op_new(enum op_kind kind, const char *s1, const char *s2,
                         const char *s3, const char *ctype, const void *body,
                         size_t len) {
  size_t l1 = slen(s1), l2 = slen(s2), l3 = slen(s3), l4 = slen(ctype);
  struct op *o = kz_malloc(sizeof *o + l1 + l2 + l3 + l4 + len);
  if (!o) return NULL;
  memset(o, 0, sizeof *o);
  o->kind = kind;
  char *p = o->data;
  o->s1 = put_str(&p, s1, l1);
  o->s2 = put_str(&p, s2, l2);
  o->s3 = put_str(&p, s3, l3);
  o->ctype = put_str(&p, ctype, l4);
  if (len) memcpy(p, body, len);
  o->body = (const uint8_t *)p;
  o->len = len;
  return o;
}

static int reopen_channel(struct kz_bus_amqp *b, amqp_channel_t ch) {
  struct op *o = op_new(OP_REOPEN, NULL, NULL, NULL, NULL, NULL, 0);
  if (!o) {
    conn_lost(b, "reopening channel %u: out of memory", ch);
    return KZ_ENOMEM;
  }
  o->ch = ch;
  op_push_front(b, o);
  return 0;
}

/* Sends an RPC method and makes the head op wait for `reply` on ch.
 * Returns 1 (waiting), 0 (the method did not encode: reported, the op
 * is over) or -1 (connection lost). */
static int rpc(struct kz_bus_amqp *b, amqp_channel_t ch,
               amqp_method_number_t id, void *m, size_t hint,
               amqp_method_number_t reply, const char *what,
               const char *name) {
  int rc = put_method(b, ch, id, m, hint);
  if (rc == KZ_EINVAL) {
    report_error(b, "%s %s: cannot encode (a name over 255 bytes?)", what,
                 name ? name : "");
    return 0;
  }
  if (rc) {
    conn_lost(b, "%s: %s", what, kz_strerror(rc));
    return -1;
  }
  b->waiting = true;
  b->wait_ch = ch;
  b->wait_id = reply;
  b->wait_deadline = uv_now(b->loop) + ns_to_ms(b->opts.rpc_timeout_ns);
  return 1;
}

static const char *exchange_type(enum kz_bus_exchange_type t) {
  switch (t) {
  case KZ_BUS_EX_TOPIC:
    return "topic";
  case KZ_BUS_EX_FANOUT:
    return "fanout";
  case KZ_BUS_EX_DIRECT:
  default:
    return "direct";
  }
}

/* Delivery tags handed to the bus: the channel (12 bits, see CH_MAX)
 * above the broker's tag on that channel (32 bits); the bus keeps 44
 * bits and adds its connection generation, so an ack for an older
 * connection never reaches this one. */
static uint64_t tag_make(amqp_channel_t ch, uint64_t dtag) {
  return (uint64_t)ch << 32 | (dtag & 0xffffffffu);
}

/* 0, or -1 when the connection is gone. */
static int send_ack(struct kz_bus_amqp *b, uint64_t tag) {
  amqp_channel_t ch = (amqp_channel_t)(tag >> 32 & CH_MAX);
  struct consumer *k = consumer_by_ch(b, ch);
  if (!k || k->no_ack) return 0; /* its channel is gone: already requeued */
  amqp_basic_ack_t m = {.delivery_tag = tag & 0xffffffffu};
  int rc = put_method(b, ch, AMQP_BASIC_ACK_METHOD, &m, 16);
  put_or_lose(b, rc, "basic.ack");
  return rc ? -1 : 0;
}

/* The publish itself (confirm mode settled).  0, or -1 when lost. */
static int send_publish(struct kz_bus_amqp *b, struct op *o) {
  bool track = b->confirm_mode && o->confirm;
  if (track && pend_reserve(b)) {
    conn_lost(b, "publish: out of memory for its confirm");
    return -1;
  }
  int rc = put_publish(b, o->s1, o->s2, o->ctype, o->body, o->len);
  if (rc == KZ_EINVAL) {
    report_error(b, "publish %s %s: cannot encode", o->s1, o->s2);
    if (o->confirm && !b->destroyed && b->bus)
      kz_bus_backend_confirm(b->bus, o->id, KZ_EIO);
    return 0;
  }
  if (rc) {
    conn_lost(b, "publish: %s", kz_strerror(rc));
    return -1;
  }
  if (b->confirm_mode) {
    uint64_t seq = ++b->pub_seq;
    if (track) pend_push(b, seq, o->id);
  }
  return 0;
}

/* Advances the head op.  Returns 1 (waiting for a reply), 0 (done) or
 * -1 (connection lost). */
static int op_step(struct kz_bus_amqp *b, struct op *o) {
  switch (o->kind) {
  case OP_EXCHANGE: {
    if (o->step++) return 0;
    amqp_exchange_declare_t m = {
        .exchange = amqp_cstring_bytes(o->s1),
        .type = amqp_cstring_bytes(exchange_type(o->ex_type)),
        .arguments = amqp_empty_table};
    return rpc(b, CH_CTL, AMQP_EXCHANGE_DECLARE_METHOD, &m,
               strlen(o->s1) + 32, AMQP_EXCHANGE_DECLARE_OK_METHOD,
               "exchange.declare", o->s1);
  }
  case OP_QUEUE: {
    if (o->step++) return 0;
    amqp_queue_declare_t m = {.queue = amqp_cstring_bytes(o->s1),
                              .durable = o->qopts.durable,
                              .exclusive = o->qopts.exclusive,
                              .auto_delete = o->qopts.auto_delete,
                              .arguments = amqp_empty_table};
    return rpc(b, CH_CTL, AMQP_QUEUE_DECLARE_METHOD, &m, strlen(o->s1) + 32,
               AMQP_QUEUE_DECLARE_OK_METHOD, "queue.declare", o->s1);
  }
  case OP_DELETE_QUEUE: {
    if (o->step++) return 0;
    amqp_queue_delete_t m = {.queue = amqp_cstring_bytes(o->s1)};
    return rpc(b, CH_CTL, AMQP_QUEUE_DELETE_METHOD, &m, strlen(o->s1) + 32,
               AMQP_QUEUE_DELETE_OK_METHOD, "queue.delete", o->s1);
  }
  case OP_BIND:
  case OP_UNBIND: {
    if (o->step++) return 0;
    size_t hint = strlen(o->s1) + strlen(o->s2) + strlen(o->s3) + 32;
    if (o->kind == OP_BIND) {
      amqp_queue_bind_t m = {.queue = amqp_cstring_bytes(o->s1),
                             .exchange = amqp_cstring_bytes(o->s2),
                             .routing_key = amqp_cstring_bytes(o->s3),
                             .arguments = amqp_empty_table};
      return rpc(b, CH_CTL, AMQP_QUEUE_BIND_METHOD, &m, hint,
                 AMQP_QUEUE_BIND_OK_METHOD, "queue.bind", o->s1);
    }
    amqp_queue_unbind_t m = {.queue = amqp_cstring_bytes(o->s1),
                           .exchange = amqp_cstring_bytes(o->s2),
                           .routing_key = amqp_cstring_bytes(o->s3),
                           .arguments = amqp_empty_table};
    return rpc(b, CH_CTL, AMQP_QUEUE_UNBIND_METHOD, &m, hint,
               AMQP_QUEUE_UNBIND_OK_METHOD, "queue.unbind", o->s1);
  }
  case OP_CONSUME: {
    struct consumer *k = consumer_by_ch(b, o->ch);
    switch (o->step++) {
    case 0: {
      if (consumer_by_id(b, o->id)) return 0; /* already running */
      if (b->next_ch > b->channel_max) {
        report_error(b, "consume %s: out of channels", o->s1);
        return 0;
      }
      size_t qlen = strlen(o->s1);
      k = kz_calloc(1, sizeof *k + qlen + 1);
      if (!k) {
        report_error(b, "consume %s: out of memory", o->s1);
        return 0;
      }
      /* Channel numbers are not reused on one connection, so a late
       * ack for a cancelled consumer never hits a newer one's channel. */
      o->ch = (amqp_channel_t)b->next_ch++;
      k->id = o->id;
      k->ch = o->ch;
      k->no_ack = o->no_ack;
      snprintf(k->tag, sizeof k->tag, "kz.%llu", (unsigned long long)o->id);
      memcpy(k->queue, o->s1, qlen + 1);
      k->next = b->consumers;
      b->consumers = k;
      amqp_channel_open_t m = {.out_of_band = amqp_empty_bytes};
      return rpc(b, o->ch, AMQP_CHANNEL_OPEN_METHOD, &m, 8,
                 AMQP_CHANNEL_OPEN_OK_METHOD, "channel.open", o->s1);
    }
    case 1:
      if (!o->no_ack) {
        amqp_basic_qos_t m = {.prefetch_count = b->opts.prefetch};
        return rpc(b, o->ch, AMQP_BASIC_QOS_METHOD, &m, 16,
                   AMQP_BASIC_QOS_OK_METHOD, "basic.qos", o->s1);
      }
      o->step++; /* no prefetch bound without acks */
      __attribute__((fallthrough));
    case 2: {
      if (!k) return 0;
      amqp_basic_consume_t m = {.queue = amqp_cstring_bytes(o->s1),
                                .consumer_tag = amqp_cstring_bytes(k->tag),
                                .no_ack = o->no_ack,
                                .arguments = amqp_empty_table};
      return rpc(b, o->ch, AMQP_BASIC_CONSUME_METHOD, &m,
                 strlen(o->s1) + 64, AMQP_BASIC_CONSUME_OK_METHOD,
                 "basic.consume", o->s1);
    }
    default:
      return 0;
    }
  }
  case OP_CANCEL: {
    switch (o->step++) {
    case 0: {
      struct consumer *k = consumer_by_id(b, o->id);
      if (!k) return 0;
      o->ch = k->ch;
      char tag[sizeof k->tag];
      memcpy(tag, k->tag, sizeof tag);
      amqp_basic_cancel_t m = {.consumer_tag = amqp_cstring_bytes(tag)};
      /* Deliveries still on their way are dropped unacked: closing the
       * channel next hands them back to the queue. */
      consumer_remove(b, k);
      return rpc(b, o->ch, AMQP_BASIC_CANCEL_METHOD, &m, 48,
                 AMQP_BASIC_CANCEL_OK_METHOD, "basic.cancel", NULL);
    }
    case 1: {
      amqp_channel_close_t m = {.reply_code = AMQP_REPLY_SUCCESS,
                                .reply_text = amqp_cstring_bytes("cancel")};
      return rpc(b, o->ch, AMQP_CHANNEL_CLOSE_METHOD, &m, 32,
                 AMQP_CHANNEL_CLOSE_OK_METHOD, "channel.close", NULL);
    }
    default:
      return 0;
    }
  }
  case OP_PUBLISH:
    if (o->step == 0) {
      o->step = 1;
      if (o->confirm && !b->confirm_mode) {
        amqp_confirm_select_t m = {0};
        return rpc(b, CH_PUB, AMQP_CONFIRM_SELECT_METHOD, &m, 8,
                   AMQP_CONFIRM_SELECT_OK_METHOD, "confirm.select", NULL);
      }
    }
    if (o->confirm && !b->confirm_mode) { /* select-ok came */
      b->confirm_mode = true;
      b->pub_seq = 0;
    }
    return send_publish(b, o);
  case OP_ACK:
    return send_ack(b, o->id);
  case OP_REOPEN: {
    if (o->step++) return 0;
    if (o->ch == CH_PUB) {
      b->confirm_mode = false;
      b->pub_seq = 0;
    }
    amqp_channel_open_t m = {.out_of_band = amqp_empty_bytes};
    return rpc(b, o->ch, AMQP_CHANNEL_OPEN_METHOD, &m, 8,
               AMQP_CHANNEL_OPEN_OK_METHOD, "channel.open", NULL);
  }
  }
  return 0;
}

/* Runs ops until one waits for the broker.  Only from the outermost of
 * this backend's callbacks (op_step may make upcalls). */
static void ops_run(struct kz_bus_amqp *b) {
  while (b->ops && !b->waiting && b->conn && !b->lost && !b->destroyed) {
    struct op *o = b->ops;
    int rc = op_step(b, o);
    if (b->destroyed || !b->conn) return;
    if (rc == 1) return;
    /* Done (or the connection is gone): o leaves the list, wherever an
     * upcall may have left it. */
    for (struct op **pp = &b->ops; *pp; pp = &(*pp)->next) {
      if (*pp != o) continue;
      *pp = o->next;
      if (!*pp) b->ops_tail = pp;
      kz_free(o);
      break;
    }
    if (rc < 0) return;
  }
}

/* The head op's RPC failed: the broker closed its channel with `why`. */
static void op_failed(struct kz_bus_amqp *b, struct op *o, const char *why) {
  const char *name = o->s1 ? o->s1 : "";
  switch (o->kind) {
  case OP_EXCHANGE:
    report_error(b, "exchange.declare %s: %s", name, why);
    reopen_channel(b, CH_CTL);
    break;
  case OP_QUEUE:
    report_error(b, "queue.declare %s: %s", name, why);
    reopen_channel(b, CH_CTL);
    break;
  case OP_DELETE_QUEUE:
    report_error(b, "queue.delete %s: %s", name, why);
    reopen_channel(b, CH_CTL);
    break;
  case OP_BIND:
  case OP_UNBIND:
    report_error(b, "%s %s: %s", o->kind == OP_BIND ? "queue.bind" : "queue.unbind",
                 name, why);
    reopen_channel(b, CH_CTL);
    break;
  case OP_CONSUME: {
    static const char *const what[] = {"channel.open", "basic.qos",
                                       "basic.consume"};
    struct consumer *k = consumer_by_ch(b, o->ch);
    if (k) consumer_remove(b, k);
    int s = o->step - 1;
    report_error(b, "%s %s: %s", what[s >= 0 && s < 3 ? s : 2], name, why);
    break;
  }
  case OP_CANCEL:
    break; /* the channel is gone, which is what was wanted */
  case OP_PUBLISH:
    /* confirm.select refused. */
    b->confirm_mode = false;
    b->pub_seq = 0;
    if (reopen_channel(b, CH_PUB) == 0) {
      report_error(b, "confirm.select: %s", why);
      if (!b->destroyed && b->conn) kz_bus_backend_confirm(b->bus, o->id, KZ_EIO);
    }
    break;
  case OP_ACK:
    break;
  case OP_REOPEN:
    conn_lost(b, "channel.open %u: %s", o->ch, why);
    break;
  }
}

/* ------------------------------------------------------------------ */
/* Incoming frames                                                      */

static struct content *content_on(struct kz_bus_amqp *b, amqp_channel_t ch,
                                  bool create) {
  for (struct content *c = b->contents; c; c = c->next)
    if (c->ch == ch) return c;
  if (!create) return NULL;
  struct content *c = kz_calloc(1, sizeof *c);
  if (!c) return NULL;
  c->ch = ch;
  c->next = b->contents;
  b->contents = c;
  return c;
}

static void contents_free(struct kz_bus_amqp *b) {
  while (b->contents) {
    struct content *c = b->contents;
    b->contents = c->next;
    kz_free(c->body);
    kz_free(c);
  }
}

static void copy_short(char *dst, amqp_bytes_t s) {
  size_t n = s.len < 255 ? s.len : 255;
  if (n) memcpy(dst, s.bytes, n);
  dst[n] = '\0';
}

/* basic.deliver or basic.return: a message follows on ch. */
static int content_start(struct kz_bus_amqp *b, amqp_channel_t ch,
                         const amqp_basic_deliver_t *d) {
  struct content *c = content_on(b, ch, true);
  if (!c) {
    conn_lost(b, "out of memory for a delivery");
    return -1;
  }
  if (c->busy) {
    conn_lost(b, "a message began on channel %u inside another", ch);
    return -1;
  }
  c->busy = true;
  c->have_header = false;
  c->size = c->got = 0;
  c->keep = false;
  if (d) {
    struct consumer *k = consumer_by_ch(b, ch);
    c->keep = k != NULL;
    c->dtag = d->delivery_tag;
    c->redelivered = d->redelivered;
    copy_short(c->ex, d->exchange);
    copy_short(c->rk, d->routing_key);
  }
  return 0;
}

/* A whole message: hand it to its consumer. */
static void content_done(struct kz_bus_amqp *b, struct content *c,
                         const uint8_t *body) {
  c->busy = false;
  struct consumer *k = c->keep ? consumer_by_ch(b, c->ch) : NULL;
  if (k) {
    struct kz_bus_delivery d = {
        .queue = k->queue,
        .exchange = c->ex,
        .routing_key = c->rk,
        .body = body ? body : (const uint8_t *)"",
        .len = (size_t)c->size,
        .tag = tag_make(c->ch, c->dtag),
        .redelivered = c->redelivered,
    };
    kz_bus_backend_deliver(b->bus, k->id, &d);
  }
  if (!b->destroyed && c->cap > BODY_KEEP_MAX) {
    kz_free(c->body);
    c->body = NULL;
    c->cap = 0;
  }
}

static int content_header(struct kz_bus_amqp *b, amqp_frame_t *f) {
  struct content *c = content_on(b, f->channel, false);
  if (!c || !c->busy || c->have_header) return 0; /* stray: ignored */
  c->have_header = true;
  c->size = f->payload.properties.body_size;
  if (c->keep && c->size > c->cap) {
    uint8_t *p = kz_realloc(c->body, (size_t)c->size);
    if (p) {
      c->body = p;
      c->cap = (size_t)c->size;
    } else {
      struct consumer *k = consumer_by_ch(b, c->ch);
      c->keep = false;
      if (k && !k->no_ack) {
        /* Nobody will ever ack it: hand it back to the broker, which
         * redelivers it (here or to another consumer). */
        log_line(b, KZ_LOG_ERROR, "out of memory: requeued a delivery on %s",
              k->queue);
        amqp_basic_reject_t m = {.delivery_tag = c->dtag, .requeue = 1};
        put_or_lose(b, put_method(b, c->ch, AMQP_BASIC_REJECT_METHOD, &m, 16),
                    "basic.reject");
      } else if (k) {
        log_line(b, KZ_LOG_ERROR, "out of memory: dropped a delivery on %s",
              k->queue);
      }
    }
  }
  if (c->size == 0) content_done(b, c, NULL);
  return 0;
}

static int content_body(struct kz_bus_amqp *b, amqp_frame_t *f) {
  struct content *c = content_on(b, f->channel, false);
  if (!c || !c->busy || !c->have_header) return 0; /* stray: ignored */
  amqp_bytes_t frag = f->payload.body_fragment;
  if (frag.len > c->size - c->got) {
    conn_lost(b, "a message body longer than its header said");
    return -1;
  }
  /* The common case, a body in one frame, is handed over from
   * librabbitmq's frame buffer without a copy. */
  if (c->got == 0 && frag.len == c->size) {
    c->got = frag.len;
    content_done(b, c, frag.bytes);
    return 0;
  }
  if (c->keep && frag.len) memcpy(c->body + c->got, frag.bytes, frag.len);
  c->got += frag.len;
  if (c->got == c->size) content_done(b, c, c->body);
  return 0;
}

/* The broker closed channel ch. */
static void channel_closed(struct kz_bus_amqp *b, amqp_channel_t ch,
                           const amqp_channel_close_t *m) {
  char why[300];
  snprintf(why, sizeof why, "%u %.*s", m->reply_code, (int)m->reply_text.len,
           (const char *)m->reply_text.bytes);
  amqp_channel_close_ok_t ok = {0};
  put_or_lose(b, put_method(b, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok, 8),
              "channel.close-ok");
  struct content *c = content_on(b, ch, false);
  if (c) c->busy = false;
  if (b->lost) return;
  if (b->waiting && b->wait_ch == ch) {
    struct op *o = op_pop(b);
    b->waiting = false;
    op_failed(b, o, why);
    kz_free(o);
    return;
  }
  if (ch == CH_PUB) {
    /* Publishes sent since are lost with the channel; those that asked
     * for a confirm learn that their fate is unknown (KZ_ECONNRESET;
     * KZ_EIO is a nack).  Later ones wait for the reopened channel. */
    b->confirm_mode = false;
    b->pub_seq = 0;
    if (reopen_channel(b, CH_PUB)) return;
    report_error(b, "publish channel closed by the broker: %s", why);
    confirmed(b, UINT64_MAX, true, KZ_ECONNRESET);
    return;
  }
  if (ch == CH_CTL) {
    if (reopen_channel(b, CH_CTL)) return;
    report_error(b, "control channel closed by the broker: %s", why);
    return;
  }
  struct consumer *k = consumer_by_ch(b, ch);
  if (k) {
    char q[256];
    snprintf(q, sizeof q, "%s", k->queue);
    consumer_remove(b, k);
    report_error(b, "consumer on %s stopped by the broker: %s", q, why);
  }
}

static int on_method(struct kz_bus_amqp *b, amqp_frame_t *f) {
  amqp_channel_t ch = f->channel;
  void *m = f->payload.method.decoded;
  switch (f->payload.method.id) {
  case AMQP_BASIC_DELIVER_METHOD:
    return content_start(b, ch, m);
  case AMQP_BASIC_RETURN_METHOD: /* not asked for; its content is skipped */
    return content_start(b, ch, NULL);
  case AMQP_BASIC_ACK_METHOD: {
    amqp_basic_ack_t *a = m;
    if (ch == CH_PUB) confirmed(b, a->delivery_tag, a->multiple, 0);
    return 0;
  }
  case AMQP_BASIC_NACK_METHOD: {
    amqp_basic_nack_t *a = m;
    if (ch == CH_PUB) confirmed(b, a->delivery_tag, a->multiple, KZ_EIO);
    return 0;
  }
  case AMQP_BASIC_CANCEL_METHOD: {
    struct consumer *k = consumer_by_ch(b, ch);
    if (k) {
      char q[256];
      snprintf(q, sizeof q, "%s", k->queue);
      consumer_remove(b, k);
      report_error(b, "consumer on %s cancelled by the broker", q);
    }
    return 0;
  }
  case AMQP_CHANNEL_CLOSE_METHOD:
    channel_closed(b, ch, m);
    return 0;
  case AMQP_CONNECTION_CLOSE_METHOD: {
    amqp_connection_close_t *c = m;
    amqp_connection_close_ok_t ok = {0};
    if (put_method(b, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok, 8) == 0)
      flush(b);
    conn_lost(b, "connection closed by the broker: %u %.*s", c->reply_code,
              (int)c->reply_text.len, (const char *)c->reply_text.bytes);
    return -1;
  }
  case AMQP_CONNECTION_BLOCKED_METHOD: {
    amqp_connection_blocked_t *c = m;
    log_line(b, KZ_LOG_WARN, "the broker blocks publishing: %.*s",
          (int)c->reason.len, (const char *)c->reason.bytes);
    return 0;
  }
  case AMQP_CONNECTION_UNBLOCKED_METHOD:
    log_line(b, KZ_LOG_INFO, "the broker accepts publishes again");
    return 0;
  default:
    if (b->waiting && ch == b->wait_ch && f->payload.method.id == b->wait_id)
      b->waiting = false; /* the head op goes on from ops_run */
    return 0;
  }
}

static int on_frame(struct kz_bus_amqp *b, amqp_frame_t *f) {
  switch (f->frame_type) {
  case AMQP_FRAME_METHOD:
    return on_method(b, f);
  case AMQP_FRAME_HEADER:
    return content_header(b, f);
  case AMQP_FRAME_BODY:
    return content_body(b, f);
  default:
    return 0; /* heartbeats: their arrival is what counts */
  }
}

/* Parses received bytes and handles each whole frame.  Stops (returning
 * -1) once the connection is lost or the backend destroyed by an
 * upcall: nothing of either is touched after that. */
static int feed(struct kz_bus_amqp *b, const uint8_t *p, size_t n) {
  while (n > 0) {
    amqp_frame_t f;
    int used = amqp_handle_input(b->conn, (amqp_bytes_t){.len = n, .bytes = (void *)p},
                                 &f);
    if (used < 0) {
      conn_lost(b, "bad input from the broker: %s", amqp_error_string2(used));
      return -1;
    }
    p += used;
    n -= (size_t)used;
    if (f.frame_type == 0) continue; /* partial frame: more to come */
    int rc = on_frame(b, &f);
    if (b->destroyed || b->lost || !b->conn) return -1;
    /* The frame is handled and nothing of it is kept: its memory in
     * librabbitmq's pool for the channel can be reused. */
    amqp_maybe_release_buffers_on_channel(b->conn, f.channel);
    if (rc < 0) return -1;
  }
  return 0;
}

static void read_input(struct kz_bus_amqp *b) {
  for (int i = 0; i < READS_PER_WAKE; i++) {
    ssize_t r = recv(b->fd, b->in, sizeof b->in, MSG_DONTWAIT);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (r < 0) {
      conn_lost(b, "recv: %s", strerror(errno));
      return;
    }
    if (r == 0) {
      conn_lost(b, "the broker closed the connection");
      return;
    }
    b->last_recv = uv_now(b->loop);
    if (feed(b, b->in, (size_t)r) < 0) return;
    if ((size_t)r < sizeof b->in) return;
  }
}

/* ------------------------------------------------------------------ */
/* Connection life                                                      */

static void maybe_free(struct kz_bus_amqp *b) {
  if (!b->destroyed || b->live > 0) return;
  kz_free(b->out);
  kz_free(b->pend);
  for (size_t i = 0; i < b->n; i++) kz_free(b->brokers[i].buf);
  kz_free(b->brokers);
  kz_free(b);
}

static void on_sock_closed(uv_handle_t *h) {
  struct sock *s = h->data;
  struct kz_bus_amqp *b = s->b;
  kz_free(s);
  b->live--;
  maybe_free(b);
}

/* Drops the connection's resources (no upcall). */
static void release_conn(struct kz_bus_amqp *b) {
  if (b->sock) {
    /* Closing the poll handle takes the fd out of epoll at once, so the
     * fd can be closed (by amqp_destroy_connection) right after. */
    uv_close((uv_handle_t *)&b->sock->poll, on_sock_closed);
    b->sock = NULL;
  }
  if (b->conn) amqp_destroy_connection(b->conn);
  b->conn = NULL;
  b->fd = -1;
  b->up = false;
  b->want_write = false;
  while (b->consumers) {
    struct consumer *c = b->consumers;
    b->consumers = c->next;
    kz_free(c);
  }
  contents_free(b);
  ops_free(b);
  b->confirm_mode = false;
  b->pub_seq = 0;
  b->pend_head = b->pend_len = 0;
  b->out_off = b->out_len = 0;
  if (!b->destroyed) uv_timer_stop(&b->timer);
}

/* The connection ended (b->lost): tell the bus, fail over. */
static void teardown(struct kz_bus_amqp *b) {
  char desc[300], text[1000];
  broker_desc(b, b->cur, desc, sizeof desc);
  snprintf(text, sizeof text, "%s: %s", desc, b->reason);
  bool was_up = b->up;
  release_conn(b);
  b->lost = false;
  /* Failover: the next attempt goes to the next broker, at once. */
  b->cur = (b->cur + 1) % b->n;
  if (was_up && b->bus) {
    log_line(b, KZ_LOG_WARN, "connection lost: %s", text);
    kz_bus_backend_down(b->bus, text);
  }
  if (!b->destroyed) start_attempt(b);
}

static void on_tick(uv_timer_t *t);

static void on_poll(uv_poll_t *h, int status, int events) {
  struct sock *s = h->data;
  struct kz_bus_amqp *b = s->b;
  if (b->destroyed || s != b->sock || b->lost) return;
  b->depth++;
  if (status < 0) {
    /* libuv reports POLLERR as UV_EBADF: a read says what happened (a
     * reset, an end of stream), else the socket's pending error does. */
    read_input(b);
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(b->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0) err = errno;
    conn_lost(b, "socket: %s", err ? strerror(err) : uv_strerror(status));
  } else {
    if (events & UV_WRITABLE) flush(b);
    if (events & (UV_READABLE | UV_DISCONNECT)) read_input(b);
  }
  leave(b);
}

/* The outermost of this backend's callbacks settles what happened
 * inside it: ops that can go on, output to write, a lost connection,
 * a destroy. */
static void leave(struct kz_bus_amqp *b) {
  if (b->depth > 1) {
    b->depth--;
    return;
  }
  for (int guard = 0; guard < 64 && !b->destroyed; guard++) {
    if (b->lost) {
      teardown(b);
      continue;
    }
    if (!b->conn) break;
    ops_run(b);
    if (b->destroyed || b->lost) continue;
    flush(b);
    if (!b->lost) break;
  }
  b->depth--;
  if (b->destroyed) {
    release_conn(b);
    maybe_free(b);
  }
}

static void on_prepare(uv_prepare_t *h) {
  struct kz_bus_amqp *b = h->data;
  uv_prepare_stop(h);
  if (b->destroyed) return;
  b->depth++;
  leave(b);
}

/* While connected: heartbeats, and the bound on a broker RPC. */
static void on_tick(uv_timer_t *t) {
  struct kz_bus_amqp *b = t->data;
  if (b->destroyed || !b->conn || b->lost) return;
  b->depth++;
  uint64_t now = uv_now(b->loop);
  if (b->heartbeat_s > 0) {
    uint64_t period = (uint64_t)b->heartbeat_s * 1000u;
    /* A loop that was busy elsewhere has not read for a while: what
     * waits in the socket counts before the broker is declared dead. */
    if (now - b->last_recv > 2 * period) read_input(b);
    if (b->lost || b->destroyed) {
      /* settled below */
    } else if (now - b->last_recv > 2 * period)
      conn_lost(b, "missed heartbeats: nothing from the broker for %llu ms",
                (unsigned long long)(now - b->last_recv));
    else if (now - b->last_send >= period / 2 && b->out_len == b->out_off)
      put_or_lose(b, put_heartbeat(b), "heartbeat");
  }
  /* The answer may be waiting in the socket (the loop was busy). */
  if (b->waiting && now >= b->wait_deadline && !b->lost && !b->destroyed)
    read_input(b);
  if (b->waiting && now >= b->wait_deadline && !b->destroyed)
    conn_lost(b, "the broker did not answer within %llu ms",
              (unsigned long long)ns_to_ms(b->opts.rpc_timeout_ns));
  leave(b);
}

/* The connection of an attempt that succeeded: from now on only the
 * loop thread touches it. */
static void conn_up(struct kz_bus_amqp *b, amqp_connection_state_t conn,
                    size_t k) {
  b->depth++;
  b->conn = conn;
  b->fd = amqp_get_sockfd(conn);
  b->lost = false;
  b->reason[0] = '\0';
  int fl = fcntl(b->fd, F_GETFL);
  if (fl < 0 || fcntl(b->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    conn_lost(b, "fcntl: %s", strerror(errno));
    leave(b);
    return;
  }
  struct sock *s = kz_calloc(1, sizeof *s);
  if (!s || uv_poll_init(b->loop, &s->poll, b->fd) != 0) {
    kz_free(s);
    conn_lost(b, "cannot watch the socket");
    leave(b);
    return;
  }
  s->b = b;
  s->poll.data = s;
  b->sock = s;
  b->live++;
  uv_poll_start(&s->poll, UV_READABLE, on_poll);
  b->want_write = false;
  int fm = amqp_get_frame_max(conn);
  b->frame_max = fm >= 4096 ? (size_t)fm : 4096;
  b->heartbeat_s = amqp_get_heartbeat(conn);
  b->channel_max = amqp_get_channel_max(conn);
  if (b->channel_max <= 0 || b->channel_max > CH_MAX) b->channel_max = CH_MAX;
  b->next_ch = CH_FIRST_CONSUMER;
  b->confirm_mode = false;
  b->pub_seq = 0;
  b->pend_head = b->pend_len = 0;
  b->waiting = false;
  b->out_off = b->out_len = 0;
  b->last_recv = b->last_send = uv_now(b->loop);
  uint64_t tick = TICK_MS_MAX;
  if (b->heartbeat_s > 0 && (uint64_t)b->heartbeat_s * 1000u / 4 < tick)
    tick = (uint64_t)b->heartbeat_s * 1000u / 4;
  if (tick < 10) tick = 10;
  uv_timer_start(&b->timer, on_tick, tick, tick);
  /* Whatever librabbitmq read past the login is handled first. */
  while (!b->lost && (amqp_frames_enqueued(conn) || amqp_data_in_buffer(conn))) {
    amqp_frame_t f;
    struct timeval zero = {0, 0};
    int st = amqp_simple_wait_frame_noblock(conn, &f, &zero);
    if (st == AMQP_STATUS_TIMEOUT) break;
    if (st != AMQP_STATUS_OK) {
      conn_lost(b, "%s", amqp_error_string2(st));
      break;
    }
    on_frame(b, &f);
  }
  if (!b->lost) {
    b->up = true;
    b->fails = b->streak = 0;
    b->backoff = b->opts.backoff_min_ns;
    kz_bus_backend_up(b->bus, (int)k);
  }
  leave(b);
}

/* On the thread pool: TCP connect, handshake, login, channels 1 and 2.
 * Blocking, bounded by connect_timeout_ns and rpc_timeout_ns. */
static void attempt_work(uv_work_t *req) {
  struct attempt *a = req->data;
  struct kz_bus_amqp *b = a->b;
  struct amqp_connection_info *ci = &b->brokers[a->broker].info;
  char desc[300];
  broker_desc(b, a->broker, desc, sizeof desc);
  amqp_connection_state_t conn = amqp_new_connection();
  if (!conn) {
    snprintf(a->why, sizeof a->why, "%s: out of memory", desc);
    return;
  }
  amqp_socket_t *sock = amqp_tcp_socket_new(conn);
  if (!sock) {
    amqp_destroy_connection(conn);
    snprintf(a->why, sizeof a->why, "%s: out of memory", desc);
    return;
  }
  struct timeval ctv = ns_to_tv(b->opts.connect_timeout_ns);
  struct timeval rtv = ns_to_tv(b->opts.rpc_timeout_ns);
  int st = amqp_socket_open_noblock(sock, ci->host, ci->port, &ctv);
  if (st != AMQP_STATUS_OK) {
    snprintf(a->why, sizeof a->why, "%s: connect: %s", desc,
             amqp_error_string2(st));
    amqp_destroy_connection(conn);
    return;
  }
  amqp_set_handshake_timeout(conn, &ctv);
  amqp_set_rpc_timeout(conn, &rtv);
  int one = 1;
  setsockopt(amqp_get_sockfd(conn), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const char *vhost = ci->vhost && *ci->vhost ? ci->vhost : "/";
  int hb = b->opts.heartbeat_s < 0 ? 0 : b->opts.heartbeat_s;
  amqp_rpc_reply_t r = amqp_login(conn, vhost, 0, FRAME_MAX, hb,
                                  AMQP_SASL_METHOD_PLAIN, ci->user,
                                  ci->password);
  if (r.reply_type == AMQP_RESPONSE_NORMAL) {
    amqp_channel_open(conn, CH_CTL);
    r = amqp_get_rpc_reply(conn);
  }
  if (r.reply_type == AMQP_RESPONSE_NORMAL) {
    amqp_channel_open(conn, CH_PUB);
    r = amqp_get_rpc_reply(conn);
  }
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    char why[300];
    switch (r.reply_type) {
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      snprintf(why, sizeof why, "%s", amqp_error_string2(r.library_error));
      break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_t *m = r.reply.decoded;
        snprintf(why, sizeof why, "%u %.*s", m->reply_code,
                 (int)m->reply_text.len, (const char *)m->reply_text.bytes);
      } else {
        snprintf(why, sizeof why, "unexpected method 0x%08x", r.reply.id);
      }
      break;
    default:
      snprintf(why, sizeof why, "no reply");
      break;
    }
    snprintf(a->why, sizeof a->why, "%s: login: %s", desc, why);
    amqp_destroy_connection(conn);
    return;
  }
  a->conn = conn;
}

static void on_backoff(uv_timer_t *t) {
  struct kz_bus_amqp *b = t->data;
  if (!b->destroyed && !b->conn && !b->attempt) start_attempt(b);
}

/* Back on the loop thread. */
static void attempt_done(uv_work_t *req, int status) {
  (void)status; /* UV_ECANCELED leaves a->conn NULL */
  struct attempt *a = req->data;
  struct kz_bus_amqp *b = a->b;
  b->attempt = NULL;
  b->live--;
  if (b->destroyed) {
    if (a->conn) amqp_destroy_connection(a->conn);
    kz_free(a);
    maybe_free(b);
    return;
  }
  if (a->conn) {
    size_t k = a->broker;
    amqp_connection_state_t conn = a->conn;
    kz_free(a);
    conn_up(b, conn, k);
    return;
  }
  if (a->why[0]) log_line(b, a->level, "%s", a->why);
  kz_free(a);
  b->cur = (b->cur + 1) % b->n;
  b->streak++;
  if (++b->fails >= b->n) {
    /* A whole round failed: back off before the next. */
    b->fails = 0;
    uv_timer_start(&b->timer, on_backoff, ns_to_ms(b->backoff), 0);
    b->backoff = b->backoff * 2 > b->opts.backoff_max_ns
                     ? b->opts.backoff_max_ns
                     : b->backoff * 2;
    return;
  }
  start_attempt(b);
}

static void start_attempt(struct kz_bus_amqp *b) {
  if (b->destroyed || b->conn || b->attempt) return;
  struct attempt *a = kz_calloc(1, sizeof *a);
  if (a) {
    a->b = b;
    a->broker = b->cur;
    /* WARN for the first round after a loss, DEBUG while it goes on. */
    a->level = b->streak < b->n ? KZ_LOG_WARN : KZ_LOG_DEBUG;
    a->req.data = a;
    if (uv_queue_work(b->loop, &a->req, attempt_work, attempt_done) == 0) {
      b->attempt = a;
      b->live++;
      return;
    }
    kz_free(a);
  }
  log_line(b, KZ_LOG_ERROR, "cannot start a connection attempt; retrying");
  uv_timer_start(&b->timer, on_backoff, ns_to_ms(b->opts.backoff_max_ns), 0);
}

/* ------------------------------------------------------------------ */
/* The ops table (the loop thread, from the role's code)                */

/* An op that has to wait its turn, or any op while the queue is busy. */
static int enqueue(struct kz_bus_amqp *b, struct op *o) {
  if (!o) return KZ_ENOMEM;
  op_append(b, o);
  return 0;
}

static void op_attach(void *be, struct kz_bus *bus) {
  struct kz_bus_amqp *b = be;
  b->bus = bus;
  start_attempt(b);
}

static int op_declare_exchange(void *be, const char *name,
                               enum kz_bus_exchange_type type) {
  struct kz_bus_amqp *b = be;
  if (!b->up || b->lost) return KZ_ENOTCONN;
  struct op *o = op_new(OP_EXCHANGE, name, NULL, NULL, NULL, NULL, 0);
  if (o) o->ex_type = type;
  return enqueue(b, o);
}

static int op_declare_queue(void *be, const char *name,
                            const struct kz_bus_queue_opts *opts) {
  struct kz_bus_amqp *b = be;
  if (!b->up || b->lost) return KZ_ENOTCONN;
  struct op *o = op_new(OP_QUEUE, name, NULL, NULL, NULL, NULL, 0);
  if (o && opts) o->qopts = *opts;
  return enqueue(b, o);
}

static int op_delete_queue(void *be, const char *name) {
  struct kz_bus_amqp *b = be;
  if (!b->up || b->lost) return KZ_ENOTCONN;
  return enqueue(b, op_new(OP_DELETE_QUEUE, name, NULL, NULL, NULL, NULL, 0));
}

static int op_bind(void *be, const char *queue, const char *exchange,
                   const char *routing_key) {
  struct kz_bus_amqp *b = be;
  if (!b->up || b->lost) return KZ_ENOTCONN;
  return enqueue(b, op_new(OP_BIND, queue, exchange,
                           routing_key ? routing_key : "", NULL, NULL, 0));
}

static int op_unbind(void *be, const char *queue, const char *exchange,
                     const char *routing_key) {
  struct kz_bus_amqp *b = be;
  if (!b->up || b->lost) return KZ_ENOTCONN;
  return enqueue(b, op_new(OP_UNBIND, queue, exchange,
                           routing_key ? routing_key : "", NULL, NULL, 0));
}

static int op_consume(void *be, uint64_t consumer_id, const char *queue,
                      bool no_ack) {
  struct kz_bus_amqp *b = be;
  if (!b->up || b->lost) return KZ_ENOTCONN;
  struct op *o = op_new(OP_CONSUME, queue, NULL, NULL, NULL, NULL, 0);
  if (o) {
    o->id = consumer_id;
    o->no_ack = no_ack;
  }
  return enqueue(b, o);
}

static int op_cancel(void *be, uint64_t consumer_id) {
  struct kz_bus_amqp *b = be;
  if (!b->up || b->lost) return KZ_ENOTCONN;
  struct op *o = op_new(OP_CANCEL, NULL, NULL, NULL, NULL, NULL, 0);
  if (o) o->id = consumer_id;
  return enqueue(b, o);
}

static int op_publish(void *be, uint64_t publish_id, const char *exchange,
                      const char *routing_key, const void *body, size_t len,
                      const struct kz_bus_publish_opts *opts) {
  struct kz_bus_amqp *b = be;
  if (!b->up || b->lost) return KZ_ENOTCONN;
  if (b->out_len - b->out_off > OUT_MAX) return KZ_ENOMEM;
  exchange = exchange ? exchange : "";
  routing_key = routing_key ? routing_key : "";
  bool confirm = opts && opts->confirm;
  const char *ctype = opts ? opts->content_type : NULL;
  /* The fast path: nothing queued ahead and no confirm.select needed,
   * so the frames go straight to the output buffer (no op, no upcall). */
  if (!b->ops && (!confirm || b->confirm_mode)) {
    if (confirm && pend_reserve(b)) return KZ_ENOMEM;
    int rc = put_publish(b, exchange, routing_key, ctype, body, len);
    if (rc) return rc;
    if (b->confirm_mode) {
      uint64_t seq = ++b->pub_seq;
      if (confirm) pend_push(b, seq, publish_id);
    }
    out_added(b);
    return 0;
  }
  struct op *o =
      op_new(OP_PUBLISH, exchange, routing_key, NULL, ctype, body, len);
  if (o) {
    o->id = publish_id;
    o->confirm = confirm;
  }
  return enqueue(b, o);
}

static int op_ack(void *be, uint64_t tag) {
  struct kz_bus_amqp *b = be;
  if (!b->up || b->lost) return KZ_ENOTCONN;
  if (!b->ops) {
    send_ack(b, tag);
    out_added(b);
    return 0;
  }
  struct op *o = op_new(OP_ACK, NULL, NULL, NULL, NULL, NULL, 0);
  if (o) o->id = tag;
  return enqueue(b, o);
}

static void on_handle_closed(uv_handle_t *h) {
  struct kz_bus_amqp *b = h->data;
  b->live--;
  maybe_free(b);
}

static void op_destroy(void *be) {
  struct kz_bus_amqp *b = be;
  if (!b || b->destroyed) return;
  b->destroyed = true;
  b->bus = NULL;
  if (b->conn && !b->lost) {
    /* Polite but not waiting: connection.close goes out as far as the
     * socket takes it now; the broker ends the connection either way. */
    amqp_connection_close_t m = {.reply_code = AMQP_REPLY_SUCCESS,
                                 .reply_text = amqp_cstring_bytes("bye")};
    if (put_method(b, 0, AMQP_CONNECTION_CLOSE_METHOD, &m, 32) == 0) flush(b);
  }
  if (b->attempt) uv_cancel((uv_req_t *)&b->attempt->req);
  uv_close((uv_handle_t *)&b->timer, on_handle_closed);
  uv_close((uv_handle_t *)&b->prepare, on_handle_closed);
  /* Inside one of this backend's callbacks (the bus freed from an
   * upcall) the connection goes when that callback returns. */
  if (b->depth == 0) release_conn(b);
}

static const struct kz_bus_backend_ops amqp_ops = {
    .attach = op_attach,
    .declare_exchange = op_declare_exchange,
    .declare_queue = op_declare_queue,
    .delete_queue = op_delete_queue,
    .bind = op_bind,
    .unbind = op_unbind,
    .consume = op_consume,
    .cancel = op_cancel,
    .publish = op_publish,
    .ack = op_ack,
    .destroy = op_destroy,
};

/* ------------------------------------------------------------------ */
/* Construction                                                         */

int kz_bus_amqp_new(struct kz_bus_backend *out, uv_loop_t *loop,
                    const char *const *uris, size_t n,
                    const struct kz_bus_amqp_opts *opts) {
  if (!out || !loop || !uris || n == 0) return KZ_EINVAL;
  int rc = KZ_ENOMEM;
  struct kz_bus_amqp *b = kz_calloc(1, sizeof *b);
  if (!b) return KZ_ENOMEM;
  b->fd = -1;
  b->ops_tail = &b->ops;
  b->loop = loop;
  if (opts) b->opts = *opts;
  if (!b->opts.prefetch) b->opts.prefetch = 500;
  if (!b->opts.heartbeat_s) b->opts.heartbeat_s = 5;
  if (!b->opts.connect_timeout_ns) b->opts.connect_timeout_ns = 2000000000u;
  if (!b->opts.rpc_timeout_ns) b->opts.rpc_timeout_ns = 5000000000u;
  if (!b->opts.backoff_min_ns) b->opts.backoff_min_ns = 100000000u;
  if (!b->opts.backoff_max_ns) b->opts.backoff_max_ns = 5000000000u;
  if (b->opts.backoff_max_ns < b->opts.backoff_min_ns)
    b->opts.backoff_max_ns = b->opts.backoff_min_ns;
  b->backoff = b->opts.backoff_min_ns;
  b->brokers = kz_calloc(n, sizeof *b->brokers);
  if (!b->brokers) goto out;
  b->n = n;
  for (size_t i = 0; i < n; i++) {
    if (!uris[i]) {
      rc = KZ_EINVAL;
      goto out;
    }
    b->brokers[i].buf = kz_strdup(uris[i]);
    if (!b->brokers[i].buf) goto out;
    amqp_default_connection_info(&b->brokers[i].info);
    if (amqp_parse_url(b->brokers[i].buf, &b->brokers[i].info) !=
            AMQP_STATUS_OK ||
        b->brokers[i].info.ssl) {
      rc = KZ_EINVAL;
      goto out;
    }
  }
  uv_timer_init(loop, &b->timer);
  b->timer.data = b;
  uv_prepare_init(loop, &b->prepare);
  b->prepare.data = b;
  b->live = 2;
  out->ops = &amqp_ops;
  out->be = b;
  return 0;
out:
  if (b->brokers)
    for (size_t i = 0; i < b->n; i++) kz_free(b->brokers[i].buf);
  kz_free(b->brokers);
  kz_free(b);
  return rc;
}
