/* net.c — the simulated network: UDP datagrams and reliable ordered streams between hosts over per-path links. */
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "sim_internal.h"

/* Model.
 *
 * Every host owns one IPv4 address; a socket bound to 0.0.0.0 or to that
 * address receives everything sent to its port, so port tables are keyed
 * by port alone.  A packet leaves at the sender's virtual time and
 * arrives after the latency of its directed link.
 *
 * Streams follow TCP's shape without its mechanics: a SYN travels to the
 * server host; a listener accepts at once and a SYN-ACK travels back
 * (on_connect); nobody listening gives a RST back (KZ_ECONNREFUSED after
 * one round trip); a down or missing host gives nothing, so the client
 * gets KZ_ETIMEDOUT after the connect timeout.  Data segments, FIN and
 * RST of one direction never overtake each other: each arrival is at
 * least the previous one's (last_arrival), which will keep streams in
 * order once links get jitter.  A crashed process's kernel resets its
 * connections: the peer gets KZ_ECONNRESET one latency later. */

enum seg_kind { SEG_SYN, SEG_SYNACK, SEG_DATA, SEG_FIN, SEG_RST, SEG_TIMEOUT };

static const char *const seg_names[] = {"syn", "synack", "data", "fin", "rst", "timeout"};

struct seg_ev {
  struct sim_event ev;
  struct sim_conn *conn; /* reference */
  int to;                /* side the segment is for */
  enum seg_kind kind;
  int status; /* RST: the on_close status */
  size_t len;
  uint8_t data[];
};

struct dgram_ev {
  struct sim_event ev;
  struct kz_sim_host *src_host; /* for per-link faults decided on arrival (later) */
  struct kz_addr src, dst;
  size_t len;
  uint8_t data[];
};

/* ------------------------------------------------------------------ */
/* Port tables */

static void port_key(uint8_t key[2], uint16_t port) {
  key[0] = (uint8_t)(port >> 8);
  key[1] = (uint8_t)port;
}

static struct sim_bind *port_get(struct kz_map *m, uint16_t port) {
  uint8_t key[2];
  port_key(key, port);
  return kz_map_get(m, key, 2, NULL);
}

void kz_sim_net_host_init(struct kz_sim_host *h) {
  kz_map_init(&h->udp_ports, 0x6b7a5f7564ULL, false);
  kz_map_init(&h->tcp_ports, 0x6b7a5f7463ULL, false);
  h->next_ephemeral = 49152;
}

void kz_sim_net_host_free(struct kz_sim_host *h) {
  /* Every process has been stopped and reclaimed: the tables are empty. */
  kz_map_free(&h->udp_ports);
  kz_map_free(&h->tcp_ports);
}

/* Picks a free port of `m` in the IANA dynamic range, round robin per
 * host (deterministic: no randomness needed). */
static uint16_t ephemeral_port(struct kz_sim_host *h, struct kz_map *m) {
  for (int i = 0; i < 16384; i++) {
    uint16_t port = h->next_ephemeral;
    h->next_ephemeral = port == 65535 ? 49152 : (uint16_t)(port + 1);
    if (!port_get(m, port)) return port;
  }
  return 0;
}

/* Checks `local` and fills `out` with the host's address and the port to
 * use (chosen when 0).  Returns 0, KZ_EADDRNOTAVAIL or KZ_EADDRINUSE. */
static int bind_addr(struct kz_sim_host *h, struct kz_map *m, const struct kz_addr *local,
                     struct kz_addr *out) {
  if (local->family != 4) return KZ_EADDRNOTAVAIL;
  uint32_t ip = kz_addr_v4_host(local);
  if (ip != 0 && ip != kz_addr_v4_host(&h->addr)) return KZ_EADDRNOTAVAIL;
  uint16_t port = local->port;
  if (port == 0) {
    port = ephemeral_port(h, m);
    if (port == 0) return KZ_EADDRINUSE;
  } else if (port_get(m, port)) {
    return KZ_EADDRINUSE;
  }
  *out = *local;
  out->port = port;
  return 0;
}

static int port_put(struct kz_map *m, struct sim_bind *b) {
  uint8_t key[2];
  port_key(key, b->port);
  return kz_map_put(m, key, 2, b, NULL);
}

static void port_del(struct kz_map *m, uint16_t port) {
  uint8_t key[2];
  port_key(key, port);
  kz_map_del(m, key, 2, NULL);
}

/* The address packets from `h` carry: its own, whatever it bound to. */
static struct kz_addr src_addr(const struct kz_sim_host *h, const struct kz_addr *local) {
  struct kz_addr a = h->addr;
  a.port = local->port;
  return a;
}

/* ------------------------------------------------------------------ */
/* UDP */

int kz_sim_net_udp_bind(struct kz_sim_proc *p, struct kz_udp *u, const struct kz_addr *local) {
  struct kz_sim_host *h = p->host;
  struct kz_addr a;
  int rc = bind_addr(h, &h->udp_ports, local, &a);
  if (rc) return rc;
  struct sim_bind *b = kz_calloc(1, sizeof *b);
  if (!b) return KZ_ENOMEM;
  b->proc = p;
  b->udp = u;
  b->port = a.port;
  if (port_put(&h->udp_ports, b) != 0) {
    kz_free(b);
    return KZ_ENOMEM;
  }
  u->local = a;
  u->impl = b;
  kz_ref(u);
  kz_sim_tr_begin(h->sim, "udp_bind");
  kz_sim_tr_who(h->sim, h, p);
  kz_sim_tr_addr(h->sim, "local", &a);
  kz_sim_tr_end(h->sim);
  return 0;
}

void kz_sim_net_udp_close(struct kz_sim_proc *p, struct kz_udp *u) {
  struct kz_sim_host *h = p->host;
  struct sim_bind *b = u->impl;
  port_del(&h->udp_ports, b->port);
  kz_free(b);
  u->impl = NULL;
  kz_sim_tr_begin(h->sim, "udp_close");
  kz_sim_tr_who(h->sim, h, p);
  kz_sim_tr_addr(h->sim, "local", &u->local);
  kz_sim_tr_end(h->sim);
  kz_deref(u);
}

static void dgram_drop_trace(struct kz_sim *sim, const struct kz_sim_host *at,
                             const struct dgram_ev *d, const char *reason) {
  sim->stats.udp_dropped++;
  kz_sim_tr_begin(sim, "udp_drop");
  kz_sim_tr_who(sim, at, NULL);
  kz_sim_tr_addr(sim, "src", &d->src);
  kz_sim_tr_addr(sim, "dst", &d->dst);
  kz_sim_tr_payload(sim, d->data, d->len);
  kz_sim_tr_str(sim, "reason", reason);
  kz_sim_tr_end(sim);
}

static void dgram_fire(struct kz_sim *sim, struct sim_event *ev) {
  struct dgram_ev *d = KZ_CONTAINER_OF(ev, struct dgram_ev, ev);
  struct kz_sim_host *h = kz_sim_host_by_ip(sim, &d->dst);
  struct sim_bind *b = h && h->up ? port_get(&h->udp_ports, d->dst.port) : NULL;
  if (!h || !h->up) {
    dgram_drop_trace(sim, h, d, "host_down");
  } else if (!b) {
    dgram_drop_trace(sim, h, d, "unbound");
  } else {
    sim->stats.udp_delivered++;
    kz_sim_tr_begin(sim, "udp_recv");
    kz_sim_tr_who(sim, h, b->proc);
    kz_sim_tr_addr(sim, "src", &d->src);
    kz_sim_tr_addr(sim, "dst", &d->dst);
    kz_sim_tr_payload(sim, d->data, d->len);
    kz_sim_tr_end(sim);
    kz_udp_deliver(b->udp, &d->src, d->data, d->len);
  }
  kz_free(d);
}

static void dgram_discard(struct kz_sim *sim, struct sim_event *ev) {
  kz_free(KZ_CONTAINER_OF(ev, struct dgram_ev, ev));
}

int kz_sim_net_udp_send(struct kz_sim_proc *p, struct kz_udp *u, const struct kz_addr *to,
                 const void *data, size_t len) {
  struct kz_sim_host *h = p->host;
  struct kz_sim *sim = h->sim;
  if (len > KZ_SIM_UDP_MAX) return KZ_EMSGSIZE;
  if (to->family != 4) return KZ_EHOSTUNREACH; /* no IPv6 in the model yet */
  if (to->port == 0 || kz_addr_v4_host(to) == 0) return KZ_EINVAL;
  if (h->crashing) return 0; /* a dying process sends nothing */
  struct dgram_ev *d = kz_malloc(sizeof *d + len);
  if (!d) return KZ_ENOMEM;
  kz_heap_node_init(&d->ev.node);
  d->ev.fire = dgram_fire;
  d->ev.discard = dgram_discard;
  d->src_host = h;
  d->src = src_addr(h, &u->local);
  d->dst = *to;
  d->len = len;
  if (len) memcpy(d->data, data, len);
  sim->stats.udp_sent++;
  kz_sim_tr_begin(sim, "udp_send");
  kz_sim_tr_who(sim, h, p);
  kz_sim_tr_addr(sim, "src", &d->src);
  kz_sim_tr_addr(sim, "dst", &d->dst);
  kz_sim_tr_payload(sim, data, len);
  kz_sim_tr_end(sim);
  struct kz_sim_host *dst = kz_sim_host_by_ip(sim, to);
  if (!dst) {
    /* Nothing routes there: the datagram is lost, as on a real network. */
    dgram_drop_trace(sim, NULL, d, "no_route");
    kz_free(d);
    return 0;
  }
  if (kz_sim_schedule(sim, &d->ev, sim->now + kz_sim_latency(sim, h, dst)) != 0) {
    kz_free(d);
    return KZ_ENOMEM;
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Listeners */

int kz_sim_net_listen(struct kz_sim_proc *p, struct kz_listener *l, const struct kz_addr *local) {
  struct kz_sim_host *h = p->host;
  struct kz_addr a;
  int rc = bind_addr(h, &h->tcp_ports, local, &a);
  if (rc) return rc;
  struct sim_bind *b = kz_calloc(1, sizeof *b);
  if (!b) return KZ_ENOMEM;
  b->proc = p;
  b->listener = l;
  b->port = a.port;
  if (port_put(&h->tcp_ports, b) != 0) {
    kz_free(b);
    return KZ_ENOMEM;
  }
  l->local = a;
  l->impl = b;
  kz_ref(l);
  kz_sim_tr_begin(h->sim, "tcp_listen");
  kz_sim_tr_who(h->sim, h, p);
  kz_sim_tr_addr(h->sim, "local", &a);
  kz_sim_tr_end(h->sim);
  return 0;
}

void kz_sim_net_listen_close(struct kz_sim_proc *p, struct kz_listener *l) {
  struct kz_sim_host *h = p->host;
  struct sim_bind *b = l->impl;
  port_del(&h->tcp_ports, b->port);
  kz_free(b);
  l->impl = NULL;
  kz_sim_tr_begin(h->sim, "tcp_unlisten");
  kz_sim_tr_who(h->sim, h, p);
  kz_sim_tr_addr(h->sim, "local", &l->local);
  kz_sim_tr_end(h->sim);
  kz_deref(l);
}

/* ------------------------------------------------------------------ */
/* Connections */

static void conn_dtor(void *obj) {
  struct sim_conn *c = obj;
  kz_buf_free(&c->end[0].pending);
  kz_buf_free(&c->end[1].pending);
}

static void conn_unlink(struct sim_conn *c) {
  struct kz_sim *sim = c->sim;
  if (!c->listed) return;
  if (c->prev) c->prev->next = c->next;
  else sim->conns_head = c->next;
  if (c->next) c->next->prev = c->prev;
  else sim->conns_tail = c->prev;
  c->prev = c->next = NULL;
  c->listed = false;
  kz_deref(c); /* the list's reference */
}

/* An end is finished when its user handle is released and nothing more
 * will leave it. */
static bool end_finished(const struct sim_end *e) {
  if (e->s) return false;
  switch (e->state) {
  case END_NONE:
  case END_DONE:
  case END_DEAD:
    return true;
  case END_CONNECTING:
    return false; /* closed while connecting: FIN still owed */
  case END_OPEN:
    return e->fin_sent || e->close_seen;
  }
  return true;
}

static void conn_check_done(struct sim_conn *c) {
  if (c->listed && end_finished(&c->end[0]) && end_finished(&c->end[1])) conn_unlink(c);
}

static void trace_seg(struct kz_sim *sim, const char *ev, const struct sim_end *e) {
  kz_sim_tr_begin(sim, ev);
  kz_sim_tr_who(sim, e->host, e->proc);
  kz_sim_tr_u64(sim, "conn", e->conn->id);
  kz_sim_tr_u64(sim, "side", (uint64_t)e->side);
}

static void seg_fire(struct kz_sim *sim, struct sim_event *ev);

static void seg_discard(struct kz_sim *sim, struct sim_event *ev) {
  struct seg_ev *g = KZ_CONTAINER_OF(ev, struct seg_ev, ev);
  kz_deref(g->conn);
  kz_free(g);
}

/* Sends a segment from side `from` to the other side, after any segment
 * already on its way (FIFO per direction).  `dst_host` is where it goes
 * (NULL: nowhere routable; it still takes the default latency to be
 * lost).  Returns 0 or KZ_ENOMEM (the simulator is marked failed). */
static int seg_send_at(struct sim_conn *c, int from, enum seg_kind kind, int status,
                       const void *data, size_t len, uint64_t at) {
  struct kz_sim *sim = c->sim;
  struct sim_end *e = &c->end[from];
  struct seg_ev *g = kz_malloc(sizeof *g + len);
  if (!g) {
    kz_sim_fail(sim, KZ_ENOMEM);
    return KZ_ENOMEM;
  }
  kz_heap_node_init(&g->ev.node);
  g->ev.fire = seg_fire;
  g->ev.discard = seg_discard;
  g->conn = kz_ref(c);
  g->to = 1 - from;
  g->kind = kind;
  g->status = status;
  g->len = len;
  if (len) memcpy(g->data, data, len);
  if (kind != SEG_TIMEOUT) {
    if (at < e->last_arrival) at = e->last_arrival;
    e->last_arrival = at;
  }
  if (kz_sim_schedule(sim, &g->ev, at) != 0) {
    seg_discard(sim, &g->ev);
    return KZ_ENOMEM;
  }
  return 0;
}

static int seg_send(struct sim_conn *c, int from, enum seg_kind kind, int status,
                    const void *data, size_t len) {
  struct kz_sim *sim = c->sim;
  struct kz_sim_host *src = c->end[from].host;
  struct kz_sim_host *dst = c->end[1 - from].host;
  if (!dst) dst = kz_sim_host_by_ip(sim, &c->end[1 - from].addr);
  return seg_send_at(c, from, kind, status, data, len, sim->now + kz_sim_latency(sim, src, dst));
}

static void deliver_close(struct sim_end *e, int status) {
  if (e->s && !e->close_delivered) {
    e->close_delivered = true;
    kz_stream_deliver_close(e->s, status);
  }
}

static void syn_arrive(struct kz_sim *sim, struct sim_conn *c) {
  struct sim_end *cl = &c->end[0], *sv = &c->end[1];
  struct kz_sim_host *h = kz_sim_host_by_ip(sim, &sv->addr);
  if (cl->state != END_CONNECTING) {
    /* The client died meanwhile: its kernel forgot the connection. */
    kz_sim_tr_begin(sim, "tcp_drop");
    kz_sim_tr_who(sim, h, NULL);
    kz_sim_tr_u64(sim, "conn", c->id);
    kz_sim_tr_str(sim, "seg", "syn");
    kz_sim_tr_str(sim, "reason", "stale");
    kz_sim_tr_end(sim);
    return;
  }
  if (!h || !h->up) {
    kz_sim_tr_begin(sim, "tcp_drop");
    kz_sim_tr_who(sim, h, NULL);
    kz_sim_tr_u64(sim, "conn", c->id);
    kz_sim_tr_str(sim, "seg", "syn");
    kz_sim_tr_str(sim, "reason", h ? "host_down" : "no_route");
    kz_sim_tr_end(sim);
    seg_send_at(c, 1, SEG_TIMEOUT, KZ_ETIMEDOUT, NULL, 0, c->syn_time + sim->connect_timeout_ns);
    return;
  }
  struct sim_bind *b = port_get(&h->tcp_ports, sv->addr.port);
  sv->host = h;
  if (!b) {
    sim->stats.streams_refused++;
    sv->state = END_DONE;
    trace_seg(sim, "tcp_refused", sv);
    kz_sim_tr_addr(sim, "local", &sv->addr);
    kz_sim_tr_addr(sim, "peer", &cl->addr);
    kz_sim_tr_end(sim);
    seg_send(c, 1, SEG_RST, KZ_ECONNREFUSED, NULL, 0);
    return;
  }
  sim->stats.streams_opened++;
  sv->proc = b->proc;
  sv->state = END_OPEN;
  sv->addr = src_addr(h, &sv->addr);
  trace_seg(sim, "tcp_accept", sv);
  kz_sim_tr_addr(sim, "local", &sv->addr);
  kz_sim_tr_addr(sim, "peer", &cl->addr);
  kz_sim_tr_end(sim);
  /* The SYN-ACK leaves before anything the accept callback writes. */
  if (seg_send(c, 1, SEG_SYNACK, 0, NULL, 0) != 0) return;
  if (kz_listener_deliver_accept(b->listener, sv, &sv->addr, &cl->addr, &sv->s) != 0) {
    sv->s = NULL;
    sv->state = END_DONE;
    seg_send(c, 1, SEG_RST, KZ_ECONNRESET, NULL, 0);
  }
}

static void synack_arrive(struct kz_sim *sim, struct sim_conn *c) {
  struct sim_end *cl = &c->end[0];
  if (cl->state != END_CONNECTING) {
    /* The client's process died: its kernel answers with a reset. */
    trace_seg(sim, "tcp_drop", cl);
    kz_sim_tr_str(sim, "seg", "synack");
    kz_sim_tr_str(sim, "reason", "stale");
    kz_sim_tr_end(sim);
    if (c->end[1].state == END_OPEN) seg_send(c, 0, SEG_RST, KZ_ECONNRESET, NULL, 0);
    return;
  }
  cl->state = END_OPEN;
  trace_seg(sim, "tcp_connected", cl);
  kz_sim_tr_addr(sim, "local", &cl->addr);
  kz_sim_tr_addr(sim, "peer", &c->end[1].addr);
  kz_sim_tr_end(sim);
  /* What was written while connecting leaves first, then what the
   * on_connect callback writes. */
  if (cl->pending.len) {
    seg_send(c, 0, SEG_DATA, 0, cl->pending.data, cl->pending.len);
    kz_buf_free(&cl->pending);
  }
  if (!cl->s) {
    /* Closed while connecting: finish the close now. */
    cl->fin_sent = true;
    seg_send(c, 0, SEG_FIN, 0, NULL, 0);
    conn_check_done(c);
    return;
  }
  kz_stream_deliver_connect(cl->s);
}

static void seg_fire(struct kz_sim *sim, struct sim_event *ev) {
  struct seg_ev *g = KZ_CONTAINER_OF(ev, struct seg_ev, ev);
  struct sim_conn *c = g->conn;
  struct sim_end *e = &c->end[g->to];
  switch (g->kind) {
  case SEG_SYN:
    syn_arrive(sim, c);
    break;
  case SEG_SYNACK:
    synack_arrive(sim, c);
    break;
  case SEG_DATA:
    if (e->state != END_OPEN || !e->s || e->close_seen) {
      trace_seg(sim, "tcp_drop", e);
      kz_sim_tr_str(sim, "seg", "data");
      kz_sim_tr_payload(sim, g->data, g->len);
      kz_sim_tr_str(sim, "reason", e->state == END_DEAD ? "host_down" : "closed");
      kz_sim_tr_end(sim);
      break;
    }
    sim->stats.stream_bytes += g->len;
    trace_seg(sim, "tcp_recv", e);
    kz_sim_tr_payload(sim, g->data, g->len);
    kz_sim_tr_end(sim);
    kz_stream_deliver_data(e->s, g->data, g->len);
    break;
  case SEG_FIN:
  case SEG_RST:
  case SEG_TIMEOUT:
    if (e->state == END_DEAD || e->state == END_NONE || e->close_seen) {
      trace_seg(sim, "tcp_drop", e);
      kz_sim_tr_str(sim, "seg", seg_names[g->kind]);
      kz_sim_tr_str(sim, "reason", e->state == END_DEAD ? "host_down" : "closed");
      kz_sim_tr_end(sim);
      break;
    }
    if (g->kind == SEG_TIMEOUT && e->state != END_CONNECTING) break;
    e->close_seen = true;
    if (e->state == END_CONNECTING || g->kind != SEG_FIN) e->state = END_DONE;
    trace_seg(sim, g->kind == SEG_FIN ? "tcp_fin" : g->kind == SEG_RST ? "tcp_rst" : "tcp_timeout",
              e);
    kz_sim_tr_err(sim, "status", g->status);
    kz_sim_tr_end(sim);
    deliver_close(e, g->status);
    break;
  }
  conn_check_done(c);
  kz_deref(c);
  kz_free(g);
}

int kz_sim_net_connect(struct kz_sim_proc *p, struct kz_stream *s, const struct kz_addr *remote) {
  struct kz_sim_host *h = p->host;
  struct kz_sim *sim = h->sim;
  if (remote->family != 4 || remote->port == 0 || kz_addr_v4_host(remote) == 0) return KZ_EINVAL;
  struct sim_conn *c = kz_obj_alloc(sizeof *c, conn_dtor);
  if (!c) return KZ_ENOMEM;
  uint16_t port = ephemeral_port(h, &h->tcp_ports);
  if (port == 0) {
    kz_deref(c);
    return KZ_EADDRINUSE;
  }
  c->sim = sim;
  c->id = ++sim->next_conn_id;
  c->syn_time = sim->now;
  for (int i = 0; i < 2; i++) {
    c->end[i].conn = c;
    c->end[i].side = i;
    kz_buf_init(&c->end[i].pending);
  }
  struct sim_end *cl = &c->end[0];
  cl->state = END_CONNECTING;
  cl->host = h;
  cl->proc = p;
  cl->addr = h->addr;
  cl->addr.port = port;
  c->end[1].addr = *remote;
  if (seg_send(c, 0, SEG_SYN, 0, NULL, 0) != 0) {
    kz_deref(c);
    return KZ_ENOMEM;
  }
  /* Committed: the list holds the creation reference. */
  c->listed = true;
  c->prev = sim->conns_tail;
  if (sim->conns_tail) sim->conns_tail->next = c;
  else sim->conns_head = c;
  sim->conns_tail = c;
  cl->s = kz_ref(s);
  s->local = cl->addr;
  s->impl = cl;
  trace_seg(sim, "tcp_connect", cl);
  kz_sim_tr_addr(sim, "local", &cl->addr);
  kz_sim_tr_addr(sim, "peer", remote);
  kz_sim_tr_end(sim);
  return 0;
}

int kz_sim_net_stream_write(struct kz_sim_proc *p, struct kz_stream *s, const void *data, size_t len) {
  struct sim_end *e = s->impl;
  struct kz_sim *sim = p->host->sim;
  if (p->host->crashing) return 0; /* a dying process sends nothing */
  if (e->fin_sent || e->state == END_DONE || e->state == END_DEAD) return KZ_ECLOSED;
  if (len == 0) return 0;
  if (e->state == END_CONNECTING)
    return kz_buf_append(&e->pending, data, len) ? KZ_ENOMEM : 0;
  trace_seg(sim, "tcp_send", e);
  kz_sim_tr_payload(sim, data, len);
  kz_sim_tr_end(sim);
  return seg_send(e->conn, e->side, SEG_DATA, 0, data, len);
}

void kz_sim_net_stream_close(struct kz_sim_proc *p, struct kz_stream *s) {
  struct sim_end *e = s->impl;
  struct sim_conn *c = e->conn;
  struct kz_sim *sim = p->host->sim;
  e->s = NULL;
  s->impl = NULL;
  trace_seg(sim, "tcp_close", e);
  kz_sim_tr_end(sim);
  /* A dying process's connections are reset by kz_sim_net_host_crashed.
   * Otherwise the FIN follows whatever is still on its way. */
  if (!p->host->crashing && e->state == END_OPEN && !e->fin_sent) {
    e->fin_sent = true;
    seg_send(c, e->side, SEG_FIN, 0, NULL, 0);
  }
  kz_ref(c); /* c may leave the list below */
  conn_check_done(c);
  kz_deref(c);
  kz_deref(s); /* the driver's reference */
}

/* ------------------------------------------------------------------ */
/* Crash and teardown */

size_t kz_sim_net_reclaim(struct kz_sim_proc *p) {
  struct kz_sim_host *h = p->host;
  size_t n = 0;
  struct kz_map *tables[2] = {&h->udp_ports, &h->tcp_ports};
  for (int t = 0; t < 2; t++) {
    bool again = true;
    while (again) { /* closing edits the table: rescan from the start */
      again = false;
      size_t pos = 0;
      const void *k;
      size_t kl;
      void *v;
      while (kz_map_next(tables[t], &pos, &k, &kl, &v)) {
        struct sim_bind *b = v;
        if (b->proc != p) continue;
        if (b->udp) kz_udp_close(b->udp);
        else kz_listener_close(b->listener);
        n++;
        again = true;
        break;
      }
    }
  }
  /* Closing a stream can only unlink its own connection, so the next
   * one, saved first, stays valid. */
  struct kz_sim *sim = h->sim;
  struct sim_conn *next;
  for (struct sim_conn *c = sim->conns_head; c; c = next) {
    next = c->next;
    kz_ref(c);
    for (int i = 0; i < 2; i++)
      if (c->end[i].proc == p && c->end[i].s) {
        kz_stream_close(c->end[i].s);
        n++;
      }
    kz_deref(c);
  }
  return n;
}

void kz_sim_net_host_crashed(struct kz_sim_host *h) {
  struct kz_sim *sim = h->sim;
  struct sim_conn *next;
  for (struct sim_conn *c = sim->conns_head; c; c = next) {
    next = c->next; /* only c itself can leave the list below */
    kz_ref(c);
    for (int i = 0; i < 2; i++) {
      struct sim_end *e = &c->end[i], *peer = &c->end[1 - i];
      if (e->host != h || (e->state != END_OPEN && e->state != END_CONNECTING)) continue;
      bool was_open = e->state == END_OPEN;
      e->state = END_DEAD;
      /* A connection still connecting is answered later (a SYN-ACK that
       * reaches a dead end is reset there); an open one is reset now
       * unless both sides had finished. */
      if (was_open && (peer->state == END_OPEN || peer->state == END_CONNECTING) &&
          !peer->close_seen && !(e->fin_sent && peer->fin_sent))
        seg_send(c, i, SEG_RST, KZ_ECONNRESET, NULL, 0);
    }
    conn_check_done(c);
    kz_deref(c);
  }
}

void kz_sim_net_free(struct kz_sim *sim) {
  while (sim->conns_head) conn_unlink(sim->conns_head);
}
