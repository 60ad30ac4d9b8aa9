/* amqp.c — the AMQP bus backend: librabbitmq-c on a dedicated I/O thread, commands in and events out through locked queues, broker failover. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#include "kz/bus_amqp.h"
#include "kz/error.h"
#include "kz/mem.h"

#define LOG_COMPONENT "bus.amqp"
#define CH_CTL 1 /* declarations, bindings, deletions */
#define CH_PUB 2 /* publishes */
#define CH_FIRST_CONSUMER 3
#define CH_MAX 4095 /* channels fit 12 bits of a delivery tag */
#define FRAMES_PER_PUMP 256

/* ------------------------------------------------------------------ */
/* Commands (loop thread -> I/O thread) and events (I/O -> loop)        */

enum cmd_kind {
  CMD_EXCHANGE,
  CMD_QUEUE,
  CMD_DELETE_QUEUE,
  CMD_BIND,
  CMD_UNBIND,
  CMD_CONSUME,
  CMD_CANCEL,
  CMD_PUBLISH,
  CMD_ACK,
};

/* One command; its strings and body live in data[] behind it, so a
 * command is one allocation. */
struct cmd {
  struct cmd *next;
  enum cmd_kind kind;
  uint64_t epoch; /* the connection it was issued for */
  uint64_t id;    /* consumer id, publish id or delivery tag */
  enum kz_bus_exchange_type ex_type;
  struct kz_bus_queue_opts qopts;
  bool no_ack;
  bool confirm;
  const char *s1, *s2, *s3; /* names (queue/exchange/key), may be NULL */
  const char *ctype;
  const uint8_t *body;
  size_t len;
  char data[];
};

enum ev_kind { EV_UP, EV_DOWN, EV_DELIVER, EV_CONFIRM, EV_LOG, EV_ERROR };

struct ev {
  struct ev *next;
  enum ev_kind kind;
  uint64_t epoch;
  int broker;
  int status; /* confirm status, or log level */
  uint64_t id; /* consumer id or publish id */
  uint64_t tag;
  bool redelivered;
  const char *queue, *exchange, *rk, *text;
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

struct pending {
  uint64_t seq;
  uint64_t publish_id;
  bool done;
};

struct kz_bus_amqp {
  uv_loop_t *loop;
  uv_async_t async;
  uv_idle_t idle; /* keeps the loop polling during loop_spin_ns */
  int open_handles;
  struct kz_bus_amqp_opts opts;
  struct broker *brokers;
  size_t n;

  /* Loop thread only. */
  struct kz_bus *bus;
  bool up;
  uint64_t loop_epoch;
  bool destroyed;
  bool thread_started;
  uint64_t loop_active; /* uv_hrtime of the last command or event */

  /* Shared, under mu. */
  pthread_mutex_t mu;
  struct cmd *cmd_head, **cmd_tail;
  struct ev *ev_head, **ev_tail;
  bool stop;
  bool io_sleeping; /* the I/O thread is (about to be) blocked in poll */
  int wake_fd; /* eventfd: the loop thread wakes the I/O thread */
  pthread_t thread;

  /* I/O thread only. */
  amqp_connection_state_t conn;
  uint64_t epoch; /* connections made so far; the current one's number */
  size_t cur;     /* broker tried next / connected to */
  int channel_max;
  int next_ch;
  struct consumer *consumers;
  bool confirm_mode;
  uint64_t pub_seq;
  struct pending *pend;
  size_t pend_head, pend_len, pend_cap;
  char reason[640]; /* why the connection was lost */
  uint64_t last_active; /* mono_ns of the last command or frame */
  bool need_pump;       /* the socket may have something to read */
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */

static struct timeval ns_to_tv(uint64_t ns) {
  struct timeval tv = {.tv_sec = (time_t)(ns / 1000000000u),
                       .tv_usec = (suseconds_t)(ns % 1000000000u / 1000u)};
  return tv;
}

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t slen(const char *s) { return s ? strlen(s) + 1 : 0; }

/* Copies s into *p (advancing it) and returns the copy, or NULL for NULL. */
static const char *put_str(char **p, const char *s, size_t n_with_nul) {
  if (!s) return NULL;
  char *d = *p;
  memcpy(d, s, n_with_nul);
  *p += n_with_nul;
  return d;
}

static void wake_io(struct kz_bus_amqp *b) {
  uint64_t one = 1;
  ssize_t r;
  do {
    r = write(b->wake_fd, &one, sizeof one);
  } while (r < 0 && errno == EINTR);
}

/* ------------------------------------------------------------------ */
/* I/O thread: posting events                                           */

static void io_post(struct kz_bus_amqp *b, struct ev *e) {
  pthread_mutex_lock(&b->mu);
  bool was_empty = b->ev_head == NULL;
  e->next = NULL;
  *b->ev_tail = e;
  b->ev_tail = &e->next;
  pthread_mutex_unlock(&b->mu);
  /* The loop takes the whole list at once, so a push onto an empty list
   * is the only one that needs a wake-up. */
  if (was_empty) uv_async_send(&b->async);
}

static struct ev *ev_new(enum ev_kind kind, size_t extra) {
  struct ev *e = kz_calloc(1, sizeof *e + extra);
  if (e) e->kind = kind;
  return e;
}

static void io_vtext(struct kz_bus_amqp *b, enum ev_kind kind, int level,
                     const char *fmt, va_list ap) {
  char line[512];
  if (vsnprintf(line, sizeof line, fmt, ap) < 0) return;
  size_t len = strlen(line);
  struct ev *e = ev_new(kind, len + 1);
  if (!e) return;
  memcpy(e->data, line, len + 1);
  e->text = e->data;
  e->status = level;
  e->epoch = b->epoch;
  io_post(b, e);
}

/* A log line, written by the loop thread through the bus's kz_env. */
static void io_log(struct kz_bus_amqp *b, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void io_log(struct kz_bus_amqp *b, int level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  io_vtext(b, EV_LOG, level, fmt, ap);
  va_end(ap);
}

/* A broker error that did not end the connection (kz_bus_backend_error). */
static void io_error(struct kz_bus_amqp *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void io_error(struct kz_bus_amqp *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  io_vtext(b, EV_ERROR, KZ_LOG_ERROR, fmt, ap);
  va_end(ap);
}

/* ------------------------------------------------------------------ */
/* I/O thread: connection                                               */

static const char *broker_desc(struct kz_bus_amqp *b, size_t k, char *out,
                               size_t outlen) {
  snprintf(out, outlen, "broker %zu (%s:%d)", k, b->brokers[k].info.host,
           b->brokers[k].info.port);
  return out;
}

/* Describes a failed RPC reply into out. */
static void reply_text(amqp_rpc_reply_t r, char *out, size_t outlen) {
  switch (r.reply_type) {
  case AMQP_RESPONSE_NORMAL:
    snprintf(out, outlen, "ok");
    break;
  case AMQP_RESPONSE_NONE:
    snprintf(out, outlen, "no reply");
    break;
  case AMQP_RESPONSE_LIBRARY_EXCEPTION:
    snprintf(out, outlen, "%s", amqp_error_string2(r.library_error));
    break;
  case AMQP_RESPONSE_SERVER_EXCEPTION:
    if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
      amqp_connection_close_t *m = r.reply.decoded;
      snprintf(out, outlen, "connection closed by the broker: %u %.*s",
               m->reply_code, (int)m->reply_text.len,
               (const char *)m->reply_text.bytes);
    } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
      amqp_channel_close_t *m = r.reply.decoded;
      snprintf(out, outlen, "%u %.*s", m->reply_code,
               (int)m->reply_text.len, (const char *)m->reply_text.bytes);
    } else {
      snprintf(out, outlen, "unexpected method 0x%08x", r.reply.id);
    }
    break;
  }
}

static void io_teardown(struct kz_bus_amqp *b) {
  if (b->conn) amqp_destroy_connection(b->conn);
  b->conn = NULL;
  while (b->consumers) {
    struct consumer *c = b->consumers;
    b->consumers = c->next;
    kz_free(c);
  }
  b->confirm_mode = false;
  b->pub_seq = 0;
  b->pend_head = b->pend_len = 0;
}

/* Tries broker k once.  Failures are logged at `level`: WARN for the
 * first round after a loss, DEBUG while the outage goes on. */
static int io_connect(struct kz_bus_amqp *b, size_t k, int level) {
  struct amqp_connection_info *ci = &b->brokers[k].info;
  char desc[300];
  broker_desc(b, k, desc, sizeof desc);
  amqp_connection_state_t conn = amqp_new_connection();
  if (!conn) return KZ_ENOMEM;
  amqp_socket_t *sock = amqp_tcp_socket_new(conn);
  if (!sock) {
    amqp_destroy_connection(conn);
    return KZ_ENOMEM;
  }
  struct timeval ctv = ns_to_tv(b->opts.connect_timeout_ns);
  struct timeval rtv = ns_to_tv(b->opts.rpc_timeout_ns);
  int st = amqp_socket_open_noblock(sock, ci->host, ci->port, &ctv);
  if (st != AMQP_STATUS_OK) {
    io_log(b, level, "%s: connect: %s", desc, amqp_error_string2(st));
    amqp_destroy_connection(conn);
    return KZ_ECONNREFUSED;
  }
  amqp_set_handshake_timeout(conn, &ctv);
  amqp_set_rpc_timeout(conn, &rtv);
  int one = 1;
  setsockopt(amqp_get_sockfd(conn), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const char *vhost = ci->vhost && *ci->vhost ? ci->vhost : "/";
  int hb = b->opts.heartbeat_s < 0 ? 0 : b->opts.heartbeat_s;
  amqp_rpc_reply_t r =
      amqp_login(conn, vhost, 0, 131072, hb, AMQP_SASL_METHOD_PLAIN,
                 ci->user, ci->password);
  if (r.reply_type == AMQP_RESPONSE_NORMAL) {
    amqp_channel_open(conn, CH_CTL);
    r = amqp_get_rpc_reply(conn);
  }
  if (r.reply_type == AMQP_RESPONSE_NORMAL) {
    amqp_channel_open(conn, CH_PUB);
    r = amqp_get_rpc_reply(conn);
  }
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    char why[256];
    reply_text(r, why, sizeof why);
    io_log(b, level, "%s: login: %s", desc, why);
    amqp_destroy_connection(conn);
    return KZ_EIO;
  }
  b->conn = conn;
  b->channel_max = amqp_get_channel_max(conn);
  if (b->channel_max <= 0 || b->channel_max > CH_MAX) b->channel_max = CH_MAX;
  b->next_ch = CH_FIRST_CONSUMER;
  b->confirm_mode = false;
  b->pub_seq = 0;
  b->pend_head = b->pend_len = 0;
  return 0;
}

/* Classifies the last RPC's reply: 0 fine; 1 the broker closed the
 * channel (answered, logged: the connection lives on); -1 the
 * connection is gone (b->reason says why). */
static int io_check(struct kz_bus_amqp *b, amqp_channel_t ch,
                    const char *what, const char *name) {
  amqp_rpc_reply_t r = amqp_get_rpc_reply(b->conn);
  if (r.reply_type == AMQP_RESPONSE_NORMAL) return 0;
  char why[256];
  reply_text(r, why, sizeof why);
  if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
      r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    amqp_channel_close_ok_t ok = {0};
    if (amqp_send_method(b->conn, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) !=
        AMQP_STATUS_OK) {
      snprintf(b->reason, sizeof b->reason, "channel.close-ok: send failed");
      return -1;
    }
    io_error(b, "%s %s: %s", what, name ? name : "", why);
    return 1;
  }
  if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
      r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
    amqp_connection_close_ok_t ok = {0};
    amqp_send_method(b->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
  }
  snprintf(b->reason, sizeof b->reason, "%s %.200s: %s", what,
           name ? name : "", why);
  return -1;
}

/* Reopens a service channel the broker closed (after close-ok). */
static int io_reopen(struct kz_bus_amqp *b, amqp_channel_t ch) {
  amqp_channel_open(b->conn, ch);
  int rc = io_check(b, ch, "channel.open", NULL);
  return rc > 0 ? -1 : rc;
}

/* ------------------------------------------------------------------ */
/* I/O thread: publisher confirms                                       */

static void io_confirm_post(struct kz_bus_amqp *b, uint64_t publish_id,
                            int status) {
  struct ev *e = ev_new(EV_CONFIRM, 0);
  if (!e) return;
  e->epoch = b->epoch;
  e->id = publish_id;
  e->status = status;
  io_post(b, e);
}

static int pend_push(struct kz_bus_amqp *b, uint64_t seq, uint64_t id) {
  if (b->pend_len == b->pend_cap) {
    size_t cap = b->pend_cap ? b->pend_cap * 2 : 64;
    struct pending *p = kz_malloc(cap * sizeof *p);
    if (!p) return KZ_ENOMEM;
    for (size_t i = 0; i < b->pend_len; i++)
      p[i] = b->pend[(b->pend_head + i) % b->pend_cap];
    kz_free(b->pend);
    b->pend = p;
    b->pend_cap = cap;
    b->pend_head = 0;
  }
  struct pending *e = &b->pend[(b->pend_head + b->pend_len) % b->pend_cap];
  e->seq = seq;
  e->publish_id = id;
  e->done = false;
  b->pend_len++;
  return 0;
}

/* basic.ack / basic.nack from the broker on the publish channel. */
static void io_confirmed(struct kz_bus_amqp *b, uint64_t tag, bool multiple,
                         int status) {
  for (size_t i = 0; i < b->pend_len; i++) {
    struct pending *e = &b->pend[(b->pend_head + i) % b->pend_cap];
    if (e->seq > tag) break;
    if (e->done || (!multiple && e->seq != tag)) continue;
    e->done = true;
    io_confirm_post(b, e->publish_id, status);
  }
  while (b->pend_len && b->pend[b->pend_head].done) {
    b->pend_head = (b->pend_head + 1) % b->pend_cap;
    b->pend_len--;
  }
}

/* The publish channel closed before confirming these: the broker may or
 * may not have taken them, so their fate is unknown, which the bus API
 * reports as KZ_ECONNRESET (KZ_EIO is a nack). */
static void io_fail_pending(struct kz_bus_amqp *b) {
  io_confirmed(b, UINT64_MAX, true, KZ_ECONNRESET);
  b->confirm_mode = false;
  b->pub_seq = 0;
}

/* ------------------------------------------------------------------ */
/* I/O thread: commands                                                 */

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

static int io_consume(struct kz_bus_amqp *b, struct cmd *c) {
  if (consumer_by_id(b, c->id)) return 0; /* already running */
  if (b->next_ch > b->channel_max) {
    io_error(b, "consume %s: out of channels", c->s1);
    return 0;
  }
  /* Channel numbers are not reused on one connection, so a late ack for
   * a cancelled consumer can never hit a newer consumer's channel. */
  amqp_channel_t ch = (amqp_channel_t)b->next_ch++;
  amqp_channel_open(b->conn, ch);
  int rc = io_check(b, ch, "channel.open", c->s1);
  if (rc) return rc < 0 ? rc : 0;
  if (!c->no_ack) {
    amqp_basic_qos(b->conn, ch, 0, b->opts.prefetch, 0);
    rc = io_check(b, ch, "basic.qos", c->s1);
    if (rc) return rc < 0 ? rc : 0;
  }
  size_t qlen = strlen(c->s1);
  struct consumer *k = kz_calloc(1, sizeof *k + qlen + 1);
  if (!k) {
    amqp_channel_close(b->conn, ch, AMQP_REPLY_SUCCESS);
    rc = io_check(b, ch, "channel.close", c->s1);
    return rc < 0 ? rc : 0;
  }
  k->id = c->id;
  k->ch = ch;
  k->no_ack = c->no_ack;
  snprintf(k->tag, sizeof k->tag, "kz.%llu", (unsigned long long)c->id);
  memcpy(k->queue, c->s1, qlen + 1);
  amqp_basic_consume(b->conn, ch, amqp_cstring_bytes(c->s1),
                     amqp_cstring_bytes(k->tag), 0, c->no_ack, 0,
                     amqp_empty_table);
  rc = io_check(b, ch, "basic.consume", c->s1);
  if (rc) {
    kz_free(k);
    return rc < 0 ? rc : 0;
  }
  k->next = b->consumers;
  b->consumers = k;
  return 0;
}

static int io_cancel(struct kz_bus_amqp *b, uint64_t id) {
  struct consumer *k = consumer_by_id(b, id);
  if (!k) return 0;
  amqp_channel_t ch = k->ch;
  amqp_basic_cancel(b->conn, ch, amqp_cstring_bytes(k->tag));
  int rc = io_check(b, ch, "basic.cancel", k->queue);
  consumer_remove(b, k);
  if (rc) return rc < 0 ? rc : 0;
  /* Closing the channel hands its unacked messages back to the queue. */
  amqp_channel_close(b->conn, ch, AMQP_REPLY_SUCCESS);
  rc = io_check(b, ch, "channel.close", NULL);
  return rc < 0 ? rc : 0;
}

static int io_publish(struct kz_bus_amqp *b, struct cmd *c) {
  if (c->confirm && !b->confirm_mode) {
    amqp_confirm_select(b->conn, CH_PUB);
    int rc = io_check(b, CH_PUB, "confirm.select", NULL);
    if (rc < 0) return rc;
    if (rc > 0) {
      io_confirm_post(b, c->id, KZ_EIO);
      return io_reopen(b, CH_PUB);
    }
    b->confirm_mode = true;
    b->pub_seq = 0;
  }
  amqp_basic_properties_t props;
  memset(&props, 0, sizeof props);
  props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
  props.content_type = amqp_cstring_bytes(c->ctype ? c->ctype : "application/json");
  props.delivery_mode = 1; /* transient, as Kazoo publishes */
  amqp_bytes_t body = {.len = c->len, .bytes = (void *)c->body};
  int st = amqp_basic_publish(b->conn, CH_PUB, amqp_cstring_bytes(c->s1),
                              amqp_cstring_bytes(c->s2), 0, 0, &props, body);
  if (st != AMQP_STATUS_OK) {
    snprintf(b->reason, sizeof b->reason, "publish: %s",
             amqp_error_string2(st));
    return -1;
  }
  if (b->confirm_mode) {
    uint64_t seq = ++b->pub_seq;
    if (c->confirm && pend_push(b, seq, c->id) < 0)
      io_confirm_post(b, c->id, KZ_ECONNRESET); /* cannot track it */
  }
  return 0;
}

/* Delivery tags handed to the bus: the channel (12 bits, see
 * CH_MAX) above the broker's tag on that channel (32 bits); the bus keeps
 * 44 bits and adds its connection generation, and an ack issued for an
 * older connection is dropped here by its command's epoch. */
static uint64_t tag_make(amqp_channel_t ch, uint64_t dtag) {
  return (uint64_t)ch << 32 | (dtag & 0xffffffffu);
}

static int io_ack(struct kz_bus_amqp *b, uint64_t tag) {
  amqp_channel_t ch = (amqp_channel_t)(tag >> 32 & CH_MAX);
  struct consumer *k = consumer_by_ch(b, ch);
  if (!k || k->no_ack) return 0; /* its channel is gone: already requeued */
  int st = amqp_basic_ack(b->conn, ch, tag & 0xffffffffu, 0);
  if (st != AMQP_STATUS_OK) {
    snprintf(b->reason, sizeof b->reason, "basic.ack: %s",
             amqp_error_string2(st));
    return -1;
  }
  return 0;
}

/* Applies one command; 0, or -1 when the connection is gone. */
static int io_cmd(struct kz_bus_amqp *b, struct cmd *c) {
  int rc = 0;
  switch (c->kind) {
  case CMD_EXCHANGE:
    amqp_exchange_declare(b->conn, CH_CTL, amqp_cstring_bytes(c->s1),
                          amqp_cstring_bytes(exchange_type(c->ex_type)), 0,
                          0, 0, 0, amqp_empty_table);
    rc = io_check(b, CH_CTL, "exchange.declare", c->s1);
    break;
  case CMD_QUEUE:
    amqp_queue_declare(b->conn, CH_CTL, amqp_cstring_bytes(c->s1), 0,
                       c->qopts.durable, c->qopts.exclusive,
                       c->qopts.auto_delete, amqp_empty_table);
    rc = io_check(b, CH_CTL, "queue.declare", c->s1);
    break;
  case CMD_DELETE_QUEUE:
    amqp_queue_delete(b->conn, CH_CTL, amqp_cstring_bytes(c->s1), 0, 0);
    rc = io_check(b, CH_CTL, "queue.delete", c->s1);
    break;
  case CMD_BIND:
    amqp_queue_bind(b->conn, CH_CTL, amqp_cstring_bytes(c->s1),
                    amqp_cstring_bytes(c->s2), amqp_cstring_bytes(c->s3),
                    amqp_empty_table);
    rc = io_check(b, CH_CTL, "queue.bind", c->s1);
    break;
  case CMD_UNBIND:
    amqp_queue_unbind(b->conn, CH_CTL, amqp_cstring_bytes(c->s1),
                      amqp_cstring_bytes(c->s2), amqp_cstring_bytes(c->s3),
                      amqp_empty_table);
    rc = io_check(b, CH_CTL, "queue.unbind", c->s1);
    break;
  case CMD_CONSUME:
    return io_consume(b, c);
  case CMD_CANCEL:
    return io_cancel(b, c->id);
  case CMD_PUBLISH:
    return io_publish(b, c);
  case CMD_ACK:
    return io_ack(b, c->id);
  }
  if (rc > 0) return io_reopen(b, CH_CTL);
  return rc;
}

static struct cmd *take_cmds(struct kz_bus_amqp *b, bool *stop) {
  pthread_mutex_lock(&b->mu);
  struct cmd *list = b->cmd_head;
  b->cmd_head = NULL;
  b->cmd_tail = &b->cmd_head;
  *stop = b->stop;
  b->io_sleeping = false;
  pthread_mutex_unlock(&b->mu);
  return list;
}

static void free_cmds(struct cmd *c) {
  while (c) {
    struct cmd *next = c->next;
    kz_free(c);
    c = next;
  }
}

/* ------------------------------------------------------------------ */
/* I/O thread: incoming frames                                          */

static int io_deliver(struct kz_bus_amqp *b, amqp_frame_t *f) {
  amqp_basic_deliver_t *d = f->payload.method.decoded;
  amqp_channel_t ch = f->channel;
  uint64_t dtag = d->delivery_tag;
  bool redelivered = d->redelivered;
  /* The method's strings live in the connection's pools, which reading
   * the content does not release; copy them out first anyway, sized. */
  char ex[256], rk[256];
  amqp_bytes_t exb = d->exchange, rkb = d->routing_key;
  size_t exl = exb.len < sizeof ex ? exb.len : sizeof ex - 1;
  size_t rkl = rkb.len < sizeof rk ? rkb.len : sizeof rk - 1;
  memcpy(ex, exb.bytes, exl);
  ex[exl] = '\0';
  memcpy(rk, rkb.bytes, rkl);
  rk[rkl] = '\0';
  amqp_message_t msg;
  amqp_rpc_reply_t r = amqp_read_message(b->conn, ch, &msg, 0);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    char why[256];
    reply_text(r, why, sizeof why);
    snprintf(b->reason, sizeof b->reason, "reading a delivery: %s", why);
    return -1;
  }
  struct consumer *k = consumer_by_ch(b, ch);
  if (k) {
    size_t ql = strlen(k->queue) + 1;
    struct ev *e = ev_new(EV_DELIVER, ql + exl + 1 + rkl + 1 + msg.body.len);
    if (e) {
      char *p = e->data;
      e->queue = put_str(&p, k->queue, ql);
      e->exchange = put_str(&p, ex, exl + 1);
      e->rk = put_str(&p, rk, rkl + 1);
      if (msg.body.len) memcpy(p, msg.body.bytes, msg.body.len);
      e->body = (const uint8_t *)p;
      e->len = msg.body.len;
      e->epoch = b->epoch;
      e->id = k->id;
      e->tag = tag_make(ch, dtag);
      e->redelivered = redelivered;
      io_post(b, e);
    } else if (!k->no_ack) {
      /* Nobody will ever ack it: hand it back to the broker, which
       * redelivers it (here or to another consumer). */
      io_log(b, KZ_LOG_ERROR, "out of memory: requeued a delivery on %s",
             k->queue);
      int st = amqp_basic_reject(b->conn, ch, dtag, 1);
      if (st != AMQP_STATUS_OK) {
        snprintf(b->reason, sizeof b->reason, "basic.reject: %s",
                 amqp_error_string2(st));
        amqp_destroy_message(&msg);
        return -1;
      }
    } else {
      io_log(b, KZ_LOG_ERROR, "out of memory: dropped a delivery on %s",
             k->queue);
    }
  }
  amqp_destroy_message(&msg);
  return 0;
}

/* The broker closed channel ch on its own (a publish to a missing
 * exchange, a queue deleted under a consumer...). */
static int io_channel_closed(struct kz_bus_amqp *b, amqp_frame_t *f) {
  amqp_channel_close_t *m = f->payload.method.decoded;
  amqp_channel_t ch = f->channel;
  char why[256];
  snprintf(why, sizeof why, "%u %.*s", m->reply_code, (int)m->reply_text.len,
           (const char *)m->reply_text.bytes);
  amqp_channel_close_ok_t ok = {0};
  if (amqp_send_method(b->conn, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) !=
      AMQP_STATUS_OK) {
    snprintf(b->reason, sizeof b->reason, "channel.close-ok: send failed");
    return -1;
  }
  if (ch == CH_PUB) {
    io_error(b, "publish channel closed by the broker: %s", why);
    io_fail_pending(b);
    return io_reopen(b, CH_PUB);
  }
  if (ch == CH_CTL) {
    io_error(b, "control channel closed by the broker: %s", why);
    return io_reopen(b, CH_CTL);
  }
  struct consumer *k = consumer_by_ch(b, ch);
  if (k) {
    io_error(b, "consumer on %s stopped by the broker: %s", k->queue, why);
    consumer_remove(b, k);
  }
  return 0;
}

static int io_frame(struct kz_bus_amqp *b, amqp_frame_t *f) {
  if (f->frame_type != AMQP_FRAME_METHOD) return 0; /* stray content */
  switch (f->payload.method.id) {
  case AMQP_BASIC_DELIVER_METHOD:
    return io_deliver(b, f);
  case AMQP_BASIC_ACK_METHOD: {
    amqp_basic_ack_t *a = f->payload.method.decoded;
    if (f->channel == CH_PUB) io_confirmed(b, a->delivery_tag, a->multiple, 0);
    return 0;
  }
  case AMQP_BASIC_NACK_METHOD: {
    amqp_basic_nack_t *a = f->payload.method.decoded;
    if (f->channel == CH_PUB)
      io_confirmed(b, a->delivery_tag, a->multiple, KZ_EIO);
    return 0;
  }
  case AMQP_BASIC_RETURN_METHOD: {
    /* Not asked for (no mandatory flag), but its content must be read. */
    amqp_message_t msg;
    amqp_rpc_reply_t r = amqp_read_message(b->conn, f->channel, &msg, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
      snprintf(b->reason, sizeof b->reason, "reading a returned message");
      return -1;
    }
    amqp_destroy_message(&msg);
    return 0;
  }
  case AMQP_BASIC_CANCEL_METHOD: {
    struct consumer *k = consumer_by_ch(b, f->channel);
    if (k) {
      io_error(b, "consumer on %s cancelled by the broker", k->queue);
      consumer_remove(b, k);
    }
    return 0;
  }
  case AMQP_CHANNEL_CLOSE_METHOD:
    return io_channel_closed(b, f);
  case AMQP_CONNECTION_CLOSE_METHOD: {
    amqp_connection_close_t *m = f->payload.method.decoded;
    snprintf(b->reason, sizeof b->reason,
             "connection closed by the broker: %u %.*s", m->reply_code,
             (int)m->reply_text.len, (const char *)m->reply_text.bytes);
    amqp_connection_close_ok_t ok = {0};
    amqp_send_method(b->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
    return -1;
  }
  default:
    return 0;
  }
}

/* Handles the frames that can be had without blocking (bounded, so the
 * command queue gets its turn).  Returns 0, 1 (more may be waiting) or
 * -1 (connection lost). */
static int io_pump(struct kz_bus_amqp *b, int *handled) {
  b->need_pump = false;
  for (int i = 0; i < FRAMES_PER_PUMP; i++) {
    /* After the first frame, go on only with bytes already read: the
     * next poll says whether the socket has more, which saves a recv
     * and a poll per wake-up. */
    if (i > 0 && !amqp_frames_enqueued(b->conn) && !amqp_data_in_buffer(b->conn))
      return 0;
    amqp_frame_t f;
    struct timeval tv = {0, 0};
    int st = amqp_simple_wait_frame_noblock(b->conn, &f, &tv);
    if (st == AMQP_STATUS_TIMEOUT) {
      amqp_maybe_release_buffers(b->conn);
      return 0;
    }
    if (st != AMQP_STATUS_OK) {
      snprintf(b->reason, sizeof b->reason, "%s", amqp_error_string2(st));
      return -1;
    }
    if (io_frame(b, &f) < 0) return -1;
    (*handled)++;
  }
  amqp_maybe_release_buffers(b->conn);
  return 1;
}

/* ------------------------------------------------------------------ */
/* I/O thread: main loop                                                */

static void drain_wake(struct kz_bus_amqp *b) {
  uint64_t v;
  while (read(b->wake_fd, &v, sizeof v) < 0 && errno == EINTR) {
  }
}

/* Waits until a command arrives, the socket is readable (when fd >= 0)
 * or timeout_ms passes.  Returns true when librabbitmq should look at the
 * socket: it is readable (or broken), or the wait timed out (heartbeats
 * are sent and checked inside its frame reads). */
static bool io_wait(struct kz_bus_amqp *b, int fd, int timeout_ms) {
  struct pollfd p[2] = {{.fd = b->wake_fd, .events = POLLIN},
                        {.fd = fd, .events = POLLIN}};
  int r = poll(p, fd >= 0 ? 2 : 1, timeout_ms);
  if (r > 0 && (p[0].revents & POLLIN)) drain_wake(b);
  return r == 0 || (fd >= 0 && r > 0 && p[1].revents);
}

static void io_lost(struct kz_bus_amqp *b) {
  char desc[300];
  broker_desc(b, b->cur, desc, sizeof desc);
  size_t rl = strlen(b->reason);
  struct ev *e = ev_new(EV_DOWN, strlen(desc) + 2 + rl + 1);
  io_teardown(b);
  if (e) {
    snprintf(e->data, strlen(desc) + 2 + rl + 1, "%s: %s", desc, b->reason);
    e->text = e->data;
    e->epoch = b->epoch;
    io_post(b, e);
  }
  /* Failover: the next attempt goes to the next broker. */
  b->cur = (b->cur + 1) % b->n;
}

static void io_close(struct kz_bus_amqp *b) {
  if (!b->conn) return;
  amqp_connection_close(b->conn, AMQP_REPLY_SUCCESS);
  io_teardown(b);
}

static void *io_main(void *arg) {
  struct kz_bus_amqp *b = arg;
  uint64_t backoff = b->opts.backoff_min_ns;
  size_t fails = 0;  /* failed attempts in this round */
  size_t streak = 0; /* failed attempts since the last connection */
  int hb = b->opts.heartbeat_s > 0 ? b->opts.heartbeat_s : 0;
  /* Wake at least twice a heartbeat period so librabbitmq sends ours
   * and notices a silent broker. */
  int idle_ms = hb ? hb * 1000 / 2 : 1000;
  if (idle_ms > 1000) idle_ms = 1000;
  for (;;) {
    bool stop;
    struct cmd *cmds = take_cmds(b, &stop);
    if (stop) {
      free_cmds(cmds);
      break;
    }
    if (!b->conn) {
      free_cmds(cmds); /* issued for a connection that is gone */
      if (io_connect(b, b->cur, streak < b->n ? KZ_LOG_WARN : KZ_LOG_DEBUG) ==
          0) {
        b->epoch++;
        b->need_pump = true;
        fails = 0;
        streak = 0;
        backoff = b->opts.backoff_min_ns;
        struct ev *e = ev_new(EV_UP, 0);
        if (e) {
          e->epoch = b->epoch;
          e->broker = (int)b->cur;
          io_post(b, e);
        }
        continue;
      }
      b->cur = (b->cur + 1) % b->n;
      streak++;
      if (++fails >= b->n) {
        /* A whole round failed: back off, waking early only to stop. */
        fails = 0;
        uint64_t until = mono_ns() + backoff;
        for (;;) {
          uint64_t now = mono_ns();
          if (now >= until) break;
          io_wait(b, -1, (int)((until - now + 999999u) / 1000000u));
          free_cmds(take_cmds(b, &stop));
          if (stop) break;
        }
        backoff = backoff * 2 > b->opts.backoff_max_ns ? b->opts.backoff_max_ns
                                                        : backoff * 2;
      }
      continue;
    }
    int rc = 0, handled = 0;
    bool had_cmds = cmds != NULL;
    while (cmds) {
      struct cmd *c = cmds;
      cmds = c->next;
      if (rc == 0 && c->epoch == b->epoch) rc = io_cmd(b, c);
      kz_free(c);
    }
    if (rc == 0 && (b->need_pump || amqp_frames_enqueued(b->conn) ||
                    amqp_data_in_buffer(b->conn)))
      rc = io_pump(b, &handled);
    if (rc < 0) {
      io_lost(b);
      continue;
    }
    if (rc > 0) continue;
    if (amqp_frames_enqueued(b->conn) || amqp_data_in_buffer(b->conn))
      continue;
    if (b->opts.spin_ns) {
      /* Adaptive spinning: right after activity the next command or
       * frame usually follows within microseconds (a reply to what was
       * just delivered); waking a thread blocked in poll costs more
       * than that on a VM.  Spin a bounded while, yielding the CPU. */
      uint64_t now = mono_ns();
      if (had_cmds || handled) b->last_active = now;
      if (now - b->last_active < b->opts.spin_ns) {
        sched_yield();
        continue;
      }
    }
    pthread_mutex_lock(&b->mu);
    bool pending = b->cmd_head != NULL || b->stop;
    b->io_sleeping = !pending;
    pthread_mutex_unlock(&b->mu);
    /* Busy with commands: look at the socket on the next turn anyway,
     * so deliveries are not starved by a stream of publishes. */
    if (pending || io_wait(b, amqp_get_sockfd(b->conn), idle_ms))
      b->need_pump = true;
  }
  io_close(b);
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Loop thread: events                                                  */

static void handle_ev(struct kz_bus_amqp *b, struct ev *e) {
  struct kz_bus *bus = b->bus;
  switch (e->kind) {
  case EV_UP:
    b->loop_epoch = e->epoch;
    b->up = true;
    kz_bus_backend_up(bus, e->broker);
    break;
  case EV_DOWN:
    if (!b->up || e->epoch != b->loop_epoch) break;
    b->up = false;
    kz_log(kz_bus_env(bus), KZ_LOG_WARN, LOG_COMPONENT, "connection lost: %s",
           e->text);
    kz_bus_backend_down(bus, e->text);
    break;
  case EV_DELIVER: {
    if (!b->up || e->epoch != b->loop_epoch) break;
    struct kz_bus_delivery d = {
        .queue = e->queue,
        .exchange = e->exchange,
        .routing_key = e->rk,
        .body = e->body,
        .len = e->len,
        .tag = e->tag,
        .redelivered = e->redelivered,
    };
    kz_bus_backend_deliver(bus, e->id, &d);
    break;
  }
  case EV_CONFIRM:
    if (!b->up || e->epoch != b->loop_epoch) break;
    kz_bus_backend_confirm(bus, e->id, e->status);
    break;
  case EV_LOG:
    kz_log(kz_bus_env(bus), e->status, LOG_COMPONENT, "%s", e->text);
    break;
  case EV_ERROR:
    if (!b->up || e->epoch != b->loop_epoch) break;
    kz_bus_backend_error(bus, e->text);
    break;
  }
}

static void on_idle(uv_idle_t *h) {
  struct kz_bus_amqp *b = h->data;
  if (uv_hrtime() - b->loop_active > b->opts.loop_spin_ns) uv_idle_stop(h);
}

/* With loop_spin_ns, keeps the loop polling (an active idle handle makes
 * libuv poll without blocking) for a while after a command or event, so
 * the answer that usually follows does not have to wake the thread. */
static void loop_spin(struct kz_bus_amqp *b) {
  if (!b->opts.loop_spin_ns || b->destroyed) return;
  b->loop_active = uv_hrtime();
  if (!uv_is_active((uv_handle_t *)&b->idle)) uv_idle_start(&b->idle, on_idle);
}

static void on_async(uv_async_t *h) {
  struct kz_bus_amqp *b = h->data;
  pthread_mutex_lock(&b->mu);
  struct ev *list = b->ev_head;
  b->ev_head = NULL;
  b->ev_tail = &b->ev_head;
  pthread_mutex_unlock(&b->mu);
  while (list) {
    struct ev *e = list;
    list = e->next;
    /* An upcall may free the bus (and so this backend): the rest of the
     * list is then only released. */
    if (!b->destroyed && b->bus) handle_ev(b, e);
    kz_free(e);
  }
  loop_spin(b);
}

/* ------------------------------------------------------------------ */
/* Loop thread: the ops table                                           */

static int enqueue(struct kz_bus_amqp *b, struct cmd *c) {
  c->epoch = b->loop_epoch;
  c->next = NULL;
  pthread_mutex_lock(&b->mu);
  bool was_empty = b->cmd_head == NULL;
  bool sleeping = b->io_sleeping;
  *b->cmd_tail = c;
  b->cmd_tail = &c->next;
  pthread_mutex_unlock(&b->mu);
  /* The I/O thread takes the whole queue at once and looks at it again
   * before it blocks: only a push onto an empty queue while it sleeps
   * needs the wake-up (a syscall, and an IPI on another CPU). */
  if (was_empty && sleeping) wake_io(b);
  loop_spin(b);
  return 0;
}

/* Builds a command with up to three strings and a body, all copied. */
static struct cmd *cmd_new(enum cmd_kind kind, const char *s1, const char *s2,
                           const char *s3, const char *ctype,
                           const void *body, size_t len) {
  size_t l1 = slen(s1), l2 = slen(s2), l3 = slen(s3), l4 = slen(ctype);
  struct cmd *c = kz_malloc(sizeof *c + l1 + l2 + l3 + l4 + len);
  if (!c) return NULL;
  memset(c, 0, sizeof *c);
  c->kind = kind;
  char *p = c->data;
  c->s1 = put_str(&p, s1, l1);
  c->s2 = put_str(&p, s2, l2);
  c->s3 = put_str(&p, s3, l3);
  c->ctype = put_str(&p, ctype, l4);
  if (len) memcpy(p, body, len);
  c->body = (const uint8_t *)p;
  c->len = len;
  return c;
}

static void op_attach(void *be, struct kz_bus *bus) {
  struct kz_bus_amqp *b = be;
  b->bus = bus;
  if (b->thread_started) return;
  if (pthread_create(&b->thread, NULL, io_main, b) == 0)
    b->thread_started = true;
  else
    kz_log(kz_bus_env(bus), KZ_LOG_ERROR, LOG_COMPONENT,
           "cannot start the I/O thread");
}

static int op_declare_exchange(void *be, const char *name,
                               enum kz_bus_exchange_type type) {
  struct kz_bus_amqp *b = be;
  if (!b->up) return KZ_ENOTCONN;
  struct cmd *c = cmd_new(CMD_EXCHANGE, name, NULL, NULL, NULL, NULL, 0);
  if (!c) return KZ_ENOMEM;
  c->ex_type = type;
  return enqueue(b, c);
}

static int op_declare_queue(void *be, const char *name,
                            const struct kz_bus_queue_opts *opts) {
  struct kz_bus_amqp *b = be;
  if (!b->up) return KZ_ENOTCONN;
  struct cmd *c = cmd_new(CMD_QUEUE, name, NULL, NULL, NULL, NULL, 0);
  if (!c) return KZ_ENOMEM;
  if (opts) c->qopts = *opts;
  return enqueue(b, c);
}

static int op_delete_queue(void *be, const char *name) {
  struct kz_bus_amqp *b = be;
  if (!b->up) return KZ_ENOTCONN;
  struct cmd *c = cmd_new(CMD_DELETE_QUEUE, name, NULL, NULL, NULL, NULL, 0);
  if (!c) return KZ_ENOMEM;
  return enqueue(b, c);
}

static int op_bind(void *be, const char *queue, const char *exchange,
                   const char *routing_key) {
  struct kz_bus_amqp *b = be;
  if (!b->up) return KZ_ENOTCONN;
  struct cmd *c =
      cmd_new(CMD_BIND, queue, exchange, routing_key ? routing_key : "", NULL,
              NULL, 0);
  if (!c) return KZ_ENOMEM;
  return enqueue(b, c);
}

static int op_unbind(void *be, const char *queue, const char *exchange,
                     const char *routing_key) {
  struct kz_bus_amqp *b = be;
  if (!b->up) return KZ_ENOTCONN;
  struct cmd *c =
      cmd_new(CMD_UNBIND, queue, exchange, routing_key ? routing_key : "",
              NULL, NULL, 0);
  if (!c) return KZ_ENOMEM;
  return enqueue(b, c);
}

static int op_consume(void *be, uint64_t consumer_id, const char *queue,
                      bool no_ack) {
  struct kz_bus_amqp *b = be;
  if (!b->up) return KZ_ENOTCONN;
  struct cmd *c = cmd_new(CMD_CONSUME, queue, NULL, NULL, NULL, NULL, 0);
  if (!c) return KZ_ENOMEM;
  c->id = consumer_id;
  c->no_ack = no_ack;
  return enqueue(b, c);
}

static int op_cancel(void *be, uint64_t consumer_id) {
  struct kz_bus_amqp *b = be;
  if (!b->up) return KZ_ENOTCONN;
  struct cmd *c = cmd_new(CMD_CANCEL, NULL, NULL, NULL, NULL, NULL, 0);
  if (!c) return KZ_ENOMEM;
  c->id = consumer_id;
  return enqueue(b, c);
}

static int op_publish(void *be, uint64_t publish_id, const char *exchange,
                      const char *routing_key, const void *body, size_t len,
                      const struct kz_bus_publish_opts *opts) {
  struct kz_bus_amqp *b = be;
  if (!b->up) return KZ_ENOTCONN;
  struct cmd *c =
      cmd_new(CMD_PUBLISH, exchange ? exchange : "",
              routing_key ? routing_key : "", NULL,
              opts ? opts->content_type : NULL, body, len);
  if (!c) return KZ_ENOMEM;
  c->id = publish_id;
  c->confirm = opts && opts->confirm;
  return enqueue(b, c);
}

static int op_ack(void *be, uint64_t tag) {
  struct kz_bus_amqp *b = be;
  if (!b->up) return KZ_ENOTCONN;
  struct cmd *c = cmd_new(CMD_ACK, NULL, NULL, NULL, NULL, NULL, 0);
  if (!c) return KZ_ENOMEM;
  c->id = tag;
  return enqueue(b, c);
}

static void on_closed(uv_handle_t *h) {
  struct kz_bus_amqp *b = h->data;
  if (--b->open_handles > 0) return;
  for (size_t i = 0; i < b->n; i++) kz_free(b->brokers[i].buf);
  kz_free(b->brokers);
  kz_free(b->pend);
  pthread_mutex_destroy(&b->mu);
  kz_free(b);
}

static void op_destroy(void *be) {
  struct kz_bus_amqp *b = be;
  if (!b || b->destroyed) return;
  b->destroyed = true;
  b->bus = NULL;
  if (b->thread_started) {
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_mutex_unlock(&b->mu);
    wake_io(b);
    pthread_join(b->thread, NULL);
  }
  /* The thread is gone: both queues are ours now. */
  free_cmds(b->cmd_head);
  b->cmd_head = NULL;
  b->cmd_tail = &b->cmd_head;
  while (b->ev_head) {
    struct ev *e = b->ev_head;
    b->ev_head = e->next;
    kz_free(e);
  }
  b->ev_tail = &b->ev_head;
  close(b->wake_fd);
  b->wake_fd = -1;
  uv_close((uv_handle_t *)&b->async, on_closed);
  uv_close((uv_handle_t *)&b->idle, on_closed);
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
  b->wake_fd = -1;
  b->cmd_tail = &b->cmd_head;
  b->ev_tail = &b->ev_head;
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
  b->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (b->wake_fd < 0) {
    rc = KZ_EIO;
    goto out;
  }
  if (pthread_mutex_init(&b->mu, NULL) != 0) {
    rc = KZ_ENOMEM;
    goto out;
  }
  if (uv_async_init(loop, &b->async, on_async) != 0) {
    pthread_mutex_destroy(&b->mu);
    rc = KZ_EIO;
    goto out;
  }
  b->async.data = b;
  uv_idle_init(loop, &b->idle);
  b->idle.data = b;
  b->open_handles = 2;
  out->ops = &amqp_ops;
  out->be = b;
  return 0;
out:
  if (b->wake_fd >= 0) close(b->wake_fd);
  if (b->brokers)
    for (size_t i = 0; i < b->n; i++) kz_free(b->brokers[i].buf);
  kz_free(b->brokers);
  kz_free(b);
  return rc;
}
