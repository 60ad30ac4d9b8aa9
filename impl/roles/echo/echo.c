/* echo.c — the example node: UDP+stream echo server with a durable tick counter, and a pinger client. */
#include "kz/echo.h"

#include <string.h>

#include "kz/buf.h"
#include "kz/error.h"
#include "kz/mem.h"

#define ECHO_COMPONENT_SERVER "echo-server"
#define ECHO_COMPONENT_CLIENT "echo-client"
#define ECHO_DEFAULT_PERIOD_NS 100000000ull /* 100 ms */
#define ECHO_DEFAULT_STATE "echo/ticks"
#define ECHO_PATH_MAX 128
#define ECHO_TAG_MIN 8
#define ECHO_TAG_MAX 32
/* A line is "ping " + 10 digits + " " + 32 hex + "\n": anything longer
 * than this without a newline cannot be one of ours. */
#define ECHO_LINE_MAX 64

/* ------------------------------------------------------------------ */
/* Server                                                              */

/* One accepted stream.  Conns form a list in accept order so the server
 * closes them deterministically. */
struct echo_conn {
  struct kz_echo_server *srv;
  struct kz_stream *s;
  struct echo_conn *prev, *next;
};

struct kz_echo_server {
  struct kz_env *env;
  struct kz_udp *udp;
  struct kz_listener *lst;
  struct kz_timer tick;
  uint64_t tick_ns;
  uint64_t next_tick;
  uint32_t persist_every;
  char path[ECHO_PATH_MAX];
  char tmp_path[ECHO_PATH_MAX + 4];
  struct echo_conn *conns_head, *conns_tail;
  struct kz_echo_server_stats st;
};

static void conn_unlink(struct kz_echo_server *srv, struct echo_conn *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    srv->conns_head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  else
    srv->conns_tail = c->prev;
  c->prev = c->next = NULL;
}

static void conn_free(struct echo_conn *c) {
  struct kz_echo_server *srv = c->srv;
  conn_unlink(srv, c);
  kz_stream_close(c->s);
  srv->st.streams_open--;
  kz_free(c);
}

static void srv_on_data(void *arg, struct kz_stream *s, const uint8_t *data,
                        size_t len) {
  struct echo_conn *c = arg;
  int rc = kz_stream_write(s, data, len);
  if (rc < 0) {
    c->srv->st.send_errors++;
    kz_log(c->srv->env, KZ_LOG_WARN, ECHO_COMPONENT_SERVER,
           "stream %llu: echo write failed: %s", (unsigned long long)s->id,
           kz_err_name(rc));
    return;
  }
  c->srv->st.bytes_echoed += len;
}

static void srv_on_close(void *arg, struct kz_stream *s, int status) {
  struct echo_conn *c = arg;
  kz_log(c->srv->env, KZ_LOG_INFO, ECHO_COMPONENT_SERVER,
         "stream %llu ended: %s", (unsigned long long)s->id,
         kz_err_name(status));
  conn_free(c);
}

static const struct kz_stream_cbs srv_stream_cbs = {
    .on_connect = NULL,
    .on_data = srv_on_data,
    .on_close = srv_on_close,
};

static void srv_on_accept(void *arg, struct kz_listener *l,
                          struct kz_stream *s) {
  struct kz_echo_server *srv = arg;
  struct echo_conn *c = kz_calloc(1, sizeof(*c));
  if (!c) {
    kz_log(srv->env, KZ_LOG_WARN, ECHO_COMPONENT_SERVER,
           "out of memory: dropping accepted stream");
    kz_stream_close(s);
    return;
  }
  c->srv = srv;
  c->s = s;
  c->prev = srv->conns_tail;
  if (srv->conns_tail)
    srv->conns_tail->next = c;
  else
    srv->conns_head = c;
  srv->conns_tail = c;
  srv->st.streams_accepted++;
  srv->st.streams_open++;
  kz_stream_set_cbs(s, &srv_stream_cbs, c);
  char peer[KZ_ADDR_STRLEN];
  kz_addr_format(&s->peer, peer, sizeof(peer));
  kz_log(srv->env, KZ_LOG_INFO, ECHO_COMPONENT_SERVER,
         "stream %llu accepted from %s", (unsigned long long)s->id, peer);
}

static void srv_on_datagram(void *arg, struct kz_udp *u,
                            const struct kz_addr *from, const uint8_t *data,
                            size_t len) {
  struct kz_echo_server *srv = arg;
  int rc = kz_udp_send(u, from, data, len);
  if (rc < 0) {
    srv->st.send_errors++;
    kz_log(srv->env, KZ_LOG_DEBUG, ECHO_COMPONENT_SERVER,
           "udp echo failed: %s", kz_err_name(rc));
    return;
  }
  srv->st.datagrams_echoed++;
  srv->st.udp_bytes_echoed += len;
}

/* Parses "ticks <n>\n" as written by srv_persist. */
static int parse_counter(const char *buf, size_t len, uint64_t *out) {
  struct kz_slice s = kz_slice_trim(kz_slice_make(buf, len));
  struct kz_slice pfx = KZ_SLICE_LIT("ticks ");
  if (s.len <= pfx.len || !kz_slice_eq(kz_slice_sub(s, 0, pfx.len), pfx))
    return KZ_EPROTO;
  return kz_slice_to_u64(kz_slice_sub(s, pfx.len, s.len), UINT64_MAX, out);
}

/* Reads the counter an earlier instance left behind, if any. */
static void srv_restore(struct kz_echo_server *srv) {
  bool exists = false;
  if (kz_fs_exists(srv->env, srv->path, &exists) < 0 || !exists) return;
  struct kz_file *f = NULL;
  int rc = kz_file_open(srv->env, srv->path, KZ_FILE_READ, &f);
  char buf[64];
  size_t n = 0;
  if (rc == 0) rc = kz_file_read(f, 0, buf, sizeof(buf), &n);
  kz_file_close(f);
  uint64_t v = 0;
  if (rc == 0) rc = parse_counter(buf, n, &v);
  if (rc < 0) {
    kz_log(srv->env, KZ_LOG_WARN, ECHO_COMPONENT_SERVER,
           "cannot restore %s: %s", srv->path, kz_err_name(rc));
    return;
  }
  srv->st.restored_ticks = v;
  kz_log(srv->env, KZ_LOG_INFO, ECHO_COMPONENT_SERVER,
         "restored tick counter %llu from %s", (unsigned long long)v,
         srv->path);
}

/* Writes the counter to a temporary file, syncs it and renames it over
 * the real one, so a crash at any point leaves a whole value. */
static void srv_persist(struct kz_echo_server *srv) {
  struct kz_buf line = {0};
  int rc = kz_buf_printf(&line, "ticks %llu\n",
                         (unsigned long long)(srv->st.restored_ticks +
                                              srv->st.ticks));
  struct kz_file *f = NULL;
  if (rc == 0)
    rc = kz_file_open(srv->env, srv->tmp_path,
                      KZ_FILE_WRITE | KZ_FILE_CREATE | KZ_FILE_TRUNC, &f);
  if (rc == 0) rc = kz_file_write(f, 0, line.data, line.len);
  if (rc == 0) rc = kz_file_sync(f);
  kz_file_close(f);
  kz_buf_free(&line);
  if (rc == 0) rc = kz_fs_rename(srv->env, srv->tmp_path, srv->path);
  if (rc < 0) {
    srv->st.persist_errors++;
    kz_log(srv->env, KZ_LOG_WARN, ECHO_COMPONENT_SERVER,
           "cannot persist tick counter: %s", kz_err_name(rc));
    return;
  }
  srv->st.persists++;
}

static void srv_on_tick(void *arg) {
  struct kz_echo_server *srv = arg;
  srv->st.ticks++;
  if (srv->persist_every && srv->st.ticks % srv->persist_every == 0)
    srv_persist(srv);
  /* Re-arm from the previous deadline so the period does not drift with
   * the time the callbacks take; skip ticks that are already missed. */
  uint64_t now = kz_env_now(srv->env);
  srv->next_tick += srv->tick_ns;
  if (srv->next_tick <= now) srv->next_tick = now + srv->tick_ns;
  if (kz_timer_start_at(&srv->tick, srv->next_tick) < 0)
    kz_log(srv->env, KZ_LOG_ERROR, ECHO_COMPONENT_SERVER,
           "cannot re-arm the tick timer: out of memory");
}

int kz_echo_server_new(struct kz_echo_server **out, struct kz_env *env,
                       const struct kz_echo_server_cfg *cfg) {
  if (!out || !env || !cfg) return KZ_EINVAL;
  const char *path = cfg->state_path ? cfg->state_path : ECHO_DEFAULT_STATE;
  size_t plen = strlen(path);
  if (plen >= ECHO_PATH_MAX || !kz_fs_path_valid(path)) return KZ_EINVAL;

  int rc = 0;
  struct kz_echo_server *srv = kz_calloc(1, sizeof(*srv));
  if (!srv) return KZ_ENOMEM;
  srv->env = env;
  srv->tick_ns = cfg->tick_ns ? cfg->tick_ns : ECHO_DEFAULT_PERIOD_NS;
  srv->persist_every = cfg->persist_every;
  memcpy(srv->path, path, plen + 1);
  memcpy(srv->tmp_path, path, plen);
  memcpy(srv->tmp_path + plen, ".tmp", 5);
  kz_timer_init(&srv->tick, env, srv_on_tick, srv);

  if (srv->persist_every) srv_restore(srv);
  if (cfg->udp.family) {
    rc = kz_udp_bind(env, &cfg->udp, srv_on_datagram, srv, &srv->udp);
    if (rc < 0) goto out;
  }
  if (cfg->tcp.family) {
    rc = kz_stream_listen(env, &cfg->tcp, srv_on_accept, srv, &srv->lst);
    if (rc < 0) goto out;
  }
  srv->next_tick = kz_env_now(env) + srv->tick_ns;
  rc = kz_timer_start_at(&srv->tick, srv->next_tick);
  if (rc < 0) goto out;

  char ua[KZ_ADDR_STRLEN] = "-", ta[KZ_ADDR_STRLEN] = "-";
  if (srv->udp) kz_addr_format(&srv->udp->local, ua, sizeof(ua));
  if (srv->lst) kz_addr_format(&srv->lst->local, ta, sizeof(ta));
  kz_log(env, KZ_LOG_INFO, ECHO_COMPONENT_SERVER,
         "echo server up: udp %s, stream %s", ua, ta);
out:
  if (rc < 0) {
    kz_echo_server_free(srv);
    return rc;
  }
  *out = srv;
  return 0;
}

void kz_echo_server_free(struct kz_echo_server *srv) {
  if (!srv) return;
  kz_timer_stop(&srv->tick);
  while (srv->conns_head) conn_free(srv->conns_head);
  kz_listener_close(srv->lst);
  kz_udp_close(srv->udp);
  kz_free(srv);
}

const struct kz_echo_server_stats *
kz_echo_server_stats(const struct kz_echo_server *srv) {
  return &srv->st;
}

struct kz_addr kz_echo_server_udp_addr(const struct kz_echo_server *srv) {
  struct kz_addr none = {0};
  return srv->udp ? srv->udp->local : none;
}

struct kz_addr kz_echo_server_tcp_addr(const struct kz_echo_server *srv) {
  struct kz_addr none = {0};
  return srv->lst ? srv->lst->local : none;
}

/* ------------------------------------------------------------------ */
/* Client                                                              */

struct echo_tag {
  char hex[ECHO_TAG_MAX + 1];
};

struct kz_echo_client {
  struct kz_env *env;
  struct kz_echo_client_cfg cfg;
  struct kz_prng prng;
  struct kz_udp *udp;
  struct kz_stream *stream;
  struct kz_timer send_timer;
  uint64_t interval_ns;
  uint32_t next_seq;
  struct echo_tag *tags; /* one per message, drawn when it is sent */
  uint8_t *udp_seen;     /* one flag per message */
  struct kz_buf rx;      /* stream bytes not yet forming a whole line */
  bool done_fired;
  struct kz_echo_client_stats st;
};

/* Formats message `seq` into b (reset first).  0 or KZ_ENOMEM. */
static int client_line(const struct kz_echo_client *c, uint32_t seq,
                       struct kz_buf *b) {
  kz_buf_reset(b);
  return kz_buf_printf(b, "ping %u %s\n", (unsigned)seq, c->tags[seq].hex);
}

static bool client_udp_done(const struct kz_echo_client *c) {
  return !c->cfg.server_udp.family || c->st.udp_replies == c->cfg.count;
}

static bool client_tcp_done(const struct kz_echo_client *c) {
  return !c->cfg.server_tcp.family || c->st.tcp_replies == c->cfg.count;
}

bool kz_echo_client_done(const struct kz_echo_client *c) {
  return client_udp_done(c) && client_tcp_done(c);
}

/* Fires on_done the first time the client is done.  Called last in each
 * callback so on_done may stop the caller's loop. */
static void client_check_done(struct kz_echo_client *c) {
  if (c->done_fired || !kz_echo_client_done(c)) return;
  c->done_fired = true;
  kz_log(c->env, KZ_LOG_INFO, ECHO_COMPONENT_CLIENT,
         "done: %u udp and %u stream echoes", (unsigned)c->st.udp_replies,
         (unsigned)c->st.tcp_replies);
  if (c->cfg.on_done) c->cfg.on_done(c->cfg.done_arg, c);
}

static void client_stream_end(struct kz_echo_client *c) {
  kz_stream_close(c->stream);
  c->stream = NULL;
}

/* Parses "ping <seq> <tag>\n" and returns the seq, or -1 when the line
 * is not an echo of a message this client sent. */
static int64_t client_match(struct kz_echo_client *c, struct kz_slice line,
                            struct kz_buf *scratch) {
  struct kz_slice pfx = KZ_SLICE_LIT("ping ");
  if (line.len <= pfx.len || !kz_slice_eq(kz_slice_sub(line, 0, pfx.len), pfx))
    return -1;
  struct kz_slice rest = kz_slice_sub(line, pfx.len, line.len);
  long sp = kz_slice_find_char(rest, ' ');
  if (sp <= 0) return -1;
  uint64_t seq;
  if (kz_slice_to_u64(kz_slice_sub(rest, 0, (size_t)sp), UINT32_MAX, &seq) < 0)
    return -1;
  if (seq >= c->next_seq) return -1;
  if (client_line(c, (uint32_t)seq, scratch) < 0) return -1;
  return kz_slice_eq(line, kz_buf_slice(scratch)) ? (int64_t)seq : -1;
}

static void client_on_datagram(void *arg, struct kz_udp *u,
                               const struct kz_addr *from,
                               const uint8_t *data, size_t len) {
  struct kz_echo_client *c = arg;
  struct kz_buf scratch = {0};
  int64_t seq = client_match(c, kz_slice_make(data, len), &scratch);
  kz_buf_free(&scratch);
  if (seq < 0) {
    c->st.udp_bad++;
    kz_log(c->env, KZ_LOG_WARN, ECHO_COMPONENT_CLIENT,
           "unexpected datagram of %zu bytes", len);
    return;
  }
  if (c->udp_seen[seq]) {
    c->st.udp_dups++;
    return;
  }
  c->udp_seen[seq] = 1;
  c->st.udp_replies++;
  kz_log(c->env, KZ_LOG_DEBUG, ECHO_COMPONENT_CLIENT, "udp echo %lld",
         (long long)seq);
  if (client_udp_done(c))
    kz_log(c->env, KZ_LOG_INFO, ECHO_COMPONENT_CLIENT,
           "all %u udp echoes received", (unsigned)c->cfg.count);
  client_check_done(c);
}

static void client_on_connect(void *arg, struct kz_stream *s) {
  struct kz_echo_client *c = arg;
  c->st.tcp_connected = true;
  char local[KZ_ADDR_STRLEN];
  kz_addr_format(&s->local, local, sizeof(local));
  kz_log(c->env, KZ_LOG_INFO, ECHO_COMPONENT_CLIENT,
         "stream %llu connected from %s", (unsigned long long)s->id, local);
}

static void client_on_data(void *arg, struct kz_stream *s,
                           const uint8_t *data, size_t len) {
  struct kz_echo_client *c = arg;
  c->st.tcp_bytes_received += len;
  if (kz_buf_append(&c->rx, data, len) < 0) {
    kz_log(c->env, KZ_LOG_ERROR, ECHO_COMPONENT_CLIENT,
           "out of memory buffering the stream");
    client_stream_end(c);
    return;
  }
  struct kz_buf scratch = {0};
  bool bad = false;
  for (;;) {
    struct kz_slice all = kz_buf_slice(&c->rx);
    long nl = kz_slice_find_char(all, '\n');
    if (nl < 0) {
      bad = all.len > ECHO_LINE_MAX;
      break;
    }
    struct kz_slice line = kz_slice_sub(all, 0, (size_t)nl + 1);
    int64_t seq = client_match(c, line, &scratch);
    /* A stream is ordered: the echo must be the next line we wrote. */
    if (seq < 0 || seq != (int64_t)c->st.tcp_replies) {
      bad = true;
      break;
    }
    c->st.tcp_replies++;
    kz_buf_consume(&c->rx, (size_t)nl + 1);
  }
  kz_buf_free(&scratch);
  if (bad) {
    c->st.tcp_bad++;
    kz_log(c->env, KZ_LOG_WARN, ECHO_COMPONENT_CLIENT,
           "stream %llu: bad echo after %u good lines; closing",
           (unsigned long long)s->id, (unsigned)c->st.tcp_replies);
    client_stream_end(c);
    return;
  }
  if (client_tcp_done(c))
    kz_log(c->env, KZ_LOG_INFO, ECHO_COMPONENT_CLIENT,
           "all %u stream echoes received", (unsigned)c->cfg.count);
  client_check_done(c);
}

static void client_on_close(void *arg, struct kz_stream *s, int status) {
  struct kz_echo_client *c = arg;
  c->st.tcp_ended = true;
  c->st.tcp_status = status;
  kz_log(c->env, KZ_LOG_INFO, ECHO_COMPONENT_CLIENT,
         "stream %llu ended: %s", (unsigned long long)s->id,
         kz_err_name(status));
  client_stream_end(c);
}

static const struct kz_stream_cbs client_stream_cbs = {
    .on_connect = client_on_connect,
    .on_data = client_on_data,
    .on_close = client_on_close,
};

/* Sends one formatted message on every configured transport. */
static void client_send(struct kz_echo_client *c, const struct kz_buf *line) {
  if (c->udp) {
    if (kz_udp_send(c->udp, &c->cfg.server_udp, line->data, line->len) == 0)
      c->st.udp_sent++;
    else
      c->st.send_errors++;
  }
  if (c->stream) {
    if (kz_stream_write(c->stream, line->data, line->len) == 0)
      c->st.tcp_sent++;
    else
      c->st.send_errors++;
  }
}

static void client_on_timer(void *arg) {
  struct kz_echo_client *c = arg;
  if (c->next_seq >= c->cfg.count) return;
  uint32_t seq = c->next_seq++;
  /* The tag length and bytes come from the seeded sub-stream: different
   * seeds give different traffic, the same seed the same traffic. */
  size_t tlen = (size_t)kz_prng_range(&c->prng, ECHO_TAG_MIN, ECHO_TAG_MAX);
  kz_prng_hex(&c->prng, c->tags[seq].hex, tlen);
  c->tags[seq].hex[tlen] = '\0';

  struct kz_buf line = {0};
  int rc = client_line(c, seq, &line);
  if (rc < 0) {
    /* Out of memory: the message is lost like a dropped packet, and the
     * client will never be done. */
    c->st.send_errors++;
  } else {
    client_send(c, &line);
  }
  kz_log(c->env, KZ_LOG_DEBUG, ECHO_COMPONENT_CLIENT, "sent %u: %s",
         (unsigned)seq, c->tags[seq].hex);
  kz_buf_free(&line);
  if (c->next_seq < c->cfg.count &&
      kz_timer_start(&c->send_timer, c->interval_ns) < 0)
    kz_log(c->env, KZ_LOG_ERROR, ECHO_COMPONENT_CLIENT,
           "cannot re-arm the send timer: out of memory");
  else if (c->next_seq == c->cfg.count)
    kz_log(c->env, KZ_LOG_INFO, ECHO_COMPONENT_CLIENT, "sent all %u messages",
           (unsigned)c->cfg.count);
}

int kz_echo_client_new(struct kz_echo_client **out, struct kz_env *env,
                       const struct kz_echo_client_cfg *cfg) {
  if (!out || !env || !cfg) return KZ_EINVAL;
  if (!cfg->server_udp.family && !cfg->server_tcp.family) return KZ_EINVAL;
  int rc = 0;
  struct kz_echo_client *c = kz_calloc(1, sizeof(*c));
  if (!c) return KZ_ENOMEM;
  c->env = env;
  c->cfg = *cfg;
  c->interval_ns = cfg->interval_ns ? cfg->interval_ns : ECHO_DEFAULT_PERIOD_NS;
  kz_env_prng(env, ECHO_COMPONENT_CLIENT, &c->prng);
  kz_timer_init(&c->send_timer, env, client_on_timer, c);
  if (cfg->count) {
    c->tags = kz_calloc(cfg->count, sizeof(*c->tags));
    c->udp_seen = kz_calloc(cfg->count, 1);
    if (!c->tags || !c->udp_seen) {
      rc = KZ_ENOMEM;
      goto out;
    }
  }
  if (cfg->server_udp.family) {
    struct kz_addr local = cfg->local_udp;
    if (!local.family) {
      memset(&local, 0, sizeof(local));
      local.family = cfg->server_udp.family;
    }
    rc = kz_udp_bind(env, &local, client_on_datagram, c, &c->udp);
    if (rc < 0) goto out;
  }
  if (cfg->server_tcp.family) {
    rc = kz_stream_connect(env, &cfg->server_tcp, &client_stream_cbs, c,
                           &c->stream);
    if (rc < 0) goto out;
  }
  if (cfg->count) {
    rc = kz_timer_start(&c->send_timer, c->interval_ns);
    if (rc < 0) goto out;
  }
  char ua[KZ_ADDR_STRLEN] = "-", ta[KZ_ADDR_STRLEN] = "-";
  if (cfg->server_udp.family) kz_addr_format(&cfg->server_udp, ua, sizeof(ua));
  if (cfg->server_tcp.family) kz_addr_format(&cfg->server_tcp, ta, sizeof(ta));
  kz_log(env, KZ_LOG_INFO, ECHO_COMPONENT_CLIENT,
         "pinging udp %s, stream %s: %u messages", ua, ta,
         (unsigned)cfg->count);
out:
  if (rc < 0) {
    kz_echo_client_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

void kz_echo_client_free(struct kz_echo_client *c) {
  if (!c) return;
  kz_timer_stop(&c->send_timer);
  client_stream_end(c);
  kz_udp_close(c->udp);
  kz_buf_free(&c->rx);
  kz_free(c->tags);
  kz_free(c->udp_seen);
  kz_free(c);
}

const struct kz_echo_client_stats *
kz_echo_client_stats(const struct kz_echo_client *c) {
  return &c->st;
}
