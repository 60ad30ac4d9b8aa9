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
 * arrives after the delay its directed path draws (kz/sim.h: latency,
 * jitter, loss, duplication, reordering, queue limit, partition).
 *
 * Streams follow TCP's shape without its mechanics: a SYN travels to the
 * server host; a listener accepts at once and a SYN-ACK travels back
 * (on_connect); nobody listening gives a RST back (KZ_ECONNREFUSED after
 * one round trip); a down or missing host gives nothing, so the client
 * gets KZ_ETIMEDOUT after the connect timeout.  Data segments, FIN and
 * RST of one direction never overtake each other: each arrival is at
 * least the previous one's (last_arrival).  A lost segment arrives one
 * retransmission timeout later per loss; a segment meeting a partition
 * waits in the end's stall list, retried every rto, until the path opens
 * or the stream timeout passes (the end then gives up with KZ_ETIMEDOUT).
 * A crashed process's kernel resets its connections: the peer gets
 * KZ_ECONNRESET one latency later.
 *
 * Arrival and handling are two steps: on arrival the "kernel" part runs
 * (pcap capture, SYN-ACK, port lookups); the part that calls the role
 * goes through the CPU gate (cpu.c), which may re-queue the same event
 * for the time a core of the host is free. */

enum seg_kind {
  SEG_SYN, SEG_SYNACK, SEG_DATA, SEG_FIN, SEG_RST, /* on the wire */
  SEG_TIMEOUT, /* local: connect timed out */
  SEG_ABORT,   /* local: the stream timeout gave up */
  SEG_ACCEPT,  /* a SYN after its kernel part: the accept callback */
  SEG_CONNECTED /* a SYN-ACK after its kernel part: on_connect */
};

static const char *const seg_names[] = {"syn",   "synack", "data",   "fin",      "rst",
                                        "timeout", "abort", "accept", "connected"};

struct seg_ev {
  struct sim_event ev;
  struct sim_conn *conn; /* reference, except while in a stall list */
  struct seg_ev *next;   /* stall list */
  int to;                /* side the segment is for */
  enum seg_kind kind;
  int status;     /* RST: the on_close status */
  bool arrived;   /* the arrival (kernel) step is done */
  bool admitted;  /* charged to a core (kz_sim_cpu_gate) */
  uint32_t seq, ack; /* TCP numbers, for the pcap */
  size_t len;
  uint8_t data[];
};

struct dgram_ev {
  struct sim_event ev;
  struct dgram_ev *pool_next; /* sim->dgram_pool */
  size_t cap;            /* room in data[] */
  struct sim_path *path; /* NULL: no route (never scheduled) */
  bool arrived;
  bool admitted;
  struct kz_addr src, dst;
  uint64_t hash; /* kz_hash64(data, len, 0): every trace line of it shows it */
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
  kz_sim_tr_dgram(sim, "udp_drop", at, NULL, &d->src, &d->dst, d->len, d->hash);
  kz_sim_tr_str(sim, "reason", reason);
  kz_sim_tr_end(sim);
}

/* Datagram events come from a small pool of blocks with room for a
 * typical SIP message, refilled as they are spent: allocating and freeing
 * one for every datagram was a visible part of the simulator's time.
 * Larger ones are allocated to size and freed.  What the pool holds
 * changes nothing in the simulation (every field is set anew). */
#define DGRAM_POOL_ROOM 1400 /* an Ethernet-sized datagram */
#define DGRAM_POOL_MAX 256

static void dgram_release(struct kz_sim *sim, struct dgram_ev *d) {
  if (d->cap == DGRAM_POOL_ROOM && sim->dgram_pool_n < DGRAM_POOL_MAX) {
    d->pool_next = sim->dgram_pool;
    sim->dgram_pool = d;
    sim->dgram_pool_n++;
    return;
  }
  kz_free(d);
}

static void dgram_fire(struct kz_sim *sim, struct sim_event *ev) {
  struct dgram_ev *d = KZ_CONTAINER_OF(ev, struct dgram_ev, ev);
  /* A launched datagram knows its destination host: its path's. */
  struct kz_sim_host *h = d->path ? d->path->to : kz_sim_host_by_ip(sim, &d->dst);
  if (!d->arrived) {
    d->arrived = true;
    if (d->path) {
      d->path->inflight_pkts--;
      d->path->inflight_bytes -= d->len;
    }
    if (h && h->up) kz_sim_pcap_udp(sim, &d->src, &d->dst, d->data, d->len);
  }
  struct sim_bind *b = h && h->up ? port_get(&h->udp_ports, d->dst.port) : NULL;
  if (!h || !h->up) {
    dgram_drop_trace(sim, h, d, "host_down");
  } else if (!b) {
    dgram_drop_trace(sim, h, d, "unbound");
  } else {
    uint64_t at;
    if (!kz_sim_cpu_gate(b->proc, &d->admitted, KZ_SIM_WORK_DGRAM, d->len, &at)) {
      if (kz_sim_schedule(sim, &d->ev, at) != 0) dgram_release(sim, d);
      return;
    }
    sim->stats.udp_delivered++;
    kz_sim_tr_dgram(sim, "udp_recv", h, b->proc, &d->src, &d->dst, d->len, d->hash);
    kz_sim_tr_end(sim);
    kz_udp_deliver(b->udp, &d->src, d->data, d->len);
  }
  dgram_release(sim, d);
}

static void dgram_discard(struct kz_sim *sim, struct sim_event *ev) {
  dgram_release(sim, KZ_CONTAINER_OF(ev, struct dgram_ev, ev));
}

static struct dgram_ev *dgram_new(struct kz_sim *sim, const struct kz_addr *src,
                                  const struct kz_addr *dst, const void *data, size_t len,
                                  uint64_t hash) {
  struct dgram_ev *d;
  if (len <= DGRAM_POOL_ROOM && sim->dgram_pool) {
    d = sim->dgram_pool;
    sim->dgram_pool = d->pool_next;
    sim->dgram_pool_n--;
    d->path = NULL;
    d->arrived = d->admitted = false;
  } else {
    size_t cap = len <= DGRAM_POOL_ROOM ? DGRAM_POOL_ROOM : len;
    d = kz_calloc(1, sizeof *d + cap);
    if (!d) return NULL;
    d->cap = cap;
  }
  d->pool_next = NULL;
  kz_heap_node_init(&d->ev.node);
  d->ev.fire = dgram_fire;
  d->ev.discard = dgram_discard;
  d->src = *src;
  d->dst = *dst;
  d->hash = hash;
  d->len = len;
  if (len) memcpy(d->data, data, len);
  return d;
}

/* Whether path `l` has room for one more datagram of `len` bytes. */
static bool queue_room(const struct kz_sim_link_cfg *cfg, const struct sim_path *l, size_t len) {
  if (cfg->queue_packets && l->inflight_pkts >= cfg->queue_packets) return false;
  if (cfg->queue_bytes && l->inflight_bytes + len > cfg->queue_bytes) return false;
  return true;
}

static uint64_t jitter_draw(struct sim_path *l, const struct kz_sim_link_cfg *cfg) {
  uint64_t j = cfg->jitter_ns;
  return kz_prng_below(&l->prng, j == UINT64_MAX ? j : j + 1);
}

/* Puts d on path l, to arrive after `delay`.  Returns 0 or KZ_ENOMEM. */
static int dgram_launch(struct kz_sim *sim, struct sim_path *l, struct dgram_ev *d,
                        uint64_t delay) {
  d->path = l;
  uint64_t at = sim->now + delay < sim->now ? UINT64_MAX : sim->now + delay;
  if (kz_sim_schedule(sim, &d->ev, at) != 0) return KZ_ENOMEM;
  l->inflight_pkts++;
  l->inflight_bytes += d->len;
  return 0;
}

int kz_sim_net_udp_send(struct kz_sim_proc *p, struct kz_udp *u, const struct kz_addr *to,
                 const void *data, size_t len) {
  struct kz_sim_host *h = p->host;
  struct kz_sim *sim = h->sim;
  if (len > KZ_SIM_UDP_MAX) return KZ_EMSGSIZE;
  if (to->family != 4) return KZ_EHOSTUNREACH; /* no IPv6 in the model yet */
  if (to->port == 0 || kz_addr_v4_host(to) == 0) return KZ_EINVAL;
  if (h->crashing) return 0; /* a dying process sends nothing */
  struct kz_addr src = src_addr(h, &u->local);
  /* Hashed once here: the send, drop, dup and receive lines all show it. */
  struct dgram_ev *d = dgram_new(sim, &src, to, data, len, kz_hash64(data, len, 0));
  if (!d) return KZ_ENOMEM;
  sim->stats.udp_sent++;
  kz_sim_tr_dgram(sim, "udp_send", h, p, &d->src, &d->dst, len, d->hash);
  kz_sim_tr_end(sim);
  /* Hosts keep their address for the whole run, so the path of the
   * host's previous datagram, when it led to the same address, is this
   * one's too (no address and path lookups for a run of datagrams to
   * one peer). */
  struct sim_path *l = h->last_path;
  struct kz_sim_host *dst;
  if (l && memcmp(l->to->addr.ip, to->ip, 4) == 0) {
    dst = l->to;
  } else {
    l = NULL;
    dst = kz_sim_host_by_ip(sim, to);
  }
  if (!dst) {
    /* Nothing routes there: the datagram is lost, as on a real network. */
    dgram_drop_trace(sim, NULL, d, "no_route");
    dgram_release(sim, d);
    return 0;
  }
  if (!l) {
    l = kz_sim_path(sim, h, dst);
    if (!l) {
      dgram_release(sim, d);
      return KZ_ENOMEM;
    }
    h->last_path = l;
  }
  const struct kz_sim_link_cfg *cfg = kz_sim_path_cfg(sim, l);
  /* The same four draws for every datagram, whatever the outcome, so a
   * changed probability only changes the outcomes it governs. */
  bool lost = kz_prng_chance_ppm(&l->prng, cfg->loss_ppm);
  uint64_t delay = cfg->latency_ns + jitter_draw(l, cfg);
  bool reorder = kz_prng_chance_ppm(&l->prng, cfg->reorder_ppm);
  bool dup = kz_prng_chance_ppm(&l->prng, cfg->dup_ppm);
  const char *drop = l->blocked ? "partition"
                     : lost     ? "loss"
                     : !queue_room(cfg, l, len) ? "queue_full"
                                                : NULL;
  if (drop) {
    if (l->blocked) sim->stats.udp_partitioned++;
    else if (lost) sim->stats.udp_lost++;
    else sim->stats.udp_queue_full++;
    dgram_drop_trace(sim, h, d, drop);
    dgram_release(sim, d);
    return 0;
  }
  if (reorder) {
    sim->stats.udp_reordered++;
    delay += cfg->reorder_ns ? cfg->reorder_ns
                             : cfg->latency_ns + cfg->jitter_ns + UINT64_C(1000000);
  }
  if (dgram_launch(sim, l, d, delay) != 0) {
    dgram_release(sim, d);
    return KZ_ENOMEM;
  }
  if (dup) {
    /* The copy draws its own delay, so it may arrive first. */
    uint64_t delay2 = cfg->latency_ns + jitter_draw(l, cfg);
    if (!queue_room(cfg, l, len)) {
      sim->stats.udp_queue_full++;
      dgram_drop_trace(sim, h, d, "queue_full");
      return 0;
    }
    struct dgram_ev *d2 = dgram_new(sim, &d->src, &d->dst, data, len, d->hash);
    if (!d2) {
      kz_sim_fail(sim, KZ_ENOMEM);
      return KZ_ENOMEM;
    }
    sim->stats.udp_duplicated++;
    kz_sim_tr_dgram(sim, "udp_dup", h, p, &d->src, &d->dst, len, d->hash);
    kz_sim_tr_end(sim);
    if (dgram_launch(sim, l, d2, delay2) != 0) {
      dgram_release(sim, d2);
      return KZ_ENOMEM;
    }
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

static void stall_clear(struct sim_end *e) {
  struct seg_ev *g = e->stall_head;
  while (g) {
    struct seg_ev *next = g->next;
    kz_free(g); /* stalled segments hold no connection reference */
    g = next;
  }
  e->stall_head = e->stall_tail = NULL;
}

static void conn_dtor(void *obj) {
  struct sim_conn *c = obj;
  for (int i = 0; i < 2; i++) {
    kz_buf_free(&c->end[i].pending);
    stall_clear(&c->end[i]);
  }
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
  if (e->s || e->pending_accept) return false;
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

static bool on_wire(enum seg_kind k) { return k <= SEG_RST; }

/* Sequence space a segment uses (SYN and FIN count one). */
static uint32_t seg_space(const struct seg_ev *g) {
  return g->kind == SEG_SYN || g->kind == SEG_SYNACK || g->kind == SEG_FIN ? 1 : (uint32_t)g->len;
}

/* A deterministic initial sequence number per connection end, hashed
 * from ids rather than drawn, so the pcap never shifts a PRNG stream. */
static uint32_t isn_of(const struct sim_conn *c, int side) {
  uint8_t k[9];
  for (int i = 0; i < 8; i++) k[i] = (uint8_t)(c->id >> (56 - 8 * i));
  k[8] = (uint8_t)side;
  return (uint32_t)kz_hash64(k, sizeof k, 0x7463705f69736eULL);
}

/* A segment of `kind` from side `from`, holding a connection reference.
 * NULL on KZ_ENOMEM (the simulator is marked failed). */
static struct seg_ev *seg_new(struct sim_conn *c, int from, enum seg_kind kind, int status,
                              const void *data, size_t len) {
  struct seg_ev *g = kz_calloc(1, sizeof *g + len);
  if (!g) {
    kz_sim_fail(c->sim, KZ_ENOMEM);
    return NULL;
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
  if (on_wire(kind)) {
    struct sim_end *e = &c->end[from];
    g->seq = e->snd_nxt;
    g->ack = e->rcv_nxt;
    if (kind != SEG_RST) e->snd_nxt += seg_space(g);
  } else {
    g->arrived = true; /* local: nothing crosses a wire */
  }
  return g;
}

/* Schedules a local segment (timeout, abort) for side `to` at `at`. */
static int seg_local(struct sim_conn *c, int to, enum seg_kind kind, int status, uint64_t at) {
  struct seg_ev *g = seg_new(c, 1 - to, kind, status, NULL, 0);
  if (!g) return KZ_ENOMEM;
  if (kz_sim_schedule(c->sim, &g->ev, at) != 0) {
    seg_discard(c->sim, &g->ev);
    return KZ_ENOMEM;
  }
  return 0;
}

/* The host a segment from `from` goes to (NULL: nothing routes there). */
static struct kz_sim_host *seg_dst_host(const struct sim_conn *c, int from) {
  const struct sim_end *d = &c->end[1 - from];
  return d->host ? d->host : kz_sim_host_by_ip(c->sim, &d->addr);
}

static struct sim_path *seg_path(struct sim_conn *c, int from) {
  struct kz_sim_host *src = c->end[from].host, *dst = seg_dst_host(c, from);
  return src && dst ? kz_sim_path(c->sim, src, dst) : NULL;
}

/* Whether path l lets nothing through (partition, or 100% loss). */
static bool path_shut(const struct kz_sim *sim, const struct sim_path *l) {
  return l && (l->blocked || kz_sim_path_cfg(sim, l)->loss_ppm >= 1000000);
}

static uint64_t end_timeout(const struct kz_sim *sim, const struct sim_end *e) {
  return e->state == END_CONNECTING ? sim->connect_timeout_ns : sim->stream_timeout_ns;
}

static void stall_start(struct sim_conn *c, struct sim_end *e, struct seg_ev *g) {
  struct kz_sim *sim = c->sim;
  g->next = NULL;
  if (e->stall_tail) e->stall_tail->next = g;
  else e->stall_head = g;
  e->stall_tail = g;
  kz_deref(g->conn); /* the caller still holds one */
  g->conn = c;
  if (kz_heap_node_queued(&e->rtx_ev.node)) return;
  e->stall_since = sim->now;
  e->stall_rto = KZ_SIM_STREAM_RTO_NS;
  kz_ref(c); /* held by rtx_ev while queued */
  if (kz_sim_schedule(sim, &e->rtx_ev, sim->now + e->stall_rto) != 0) kz_deref(c);
  trace_seg(sim, "tcp_stall", e);
  kz_sim_tr_str(sim, "seg", seg_names[g->kind]);
  kz_sim_tr_end(sim);
}

/* Puts segment g (from side `from`, holding a connection reference) on
 * its path: after anything stalled, behind everything already on its way
 * (FIFO per direction), one rto later per loss. */
static void seg_xmit(struct sim_conn *c, int from, struct seg_ev *g) {
  struct kz_sim *sim = c->sim;
  struct sim_end *e = &c->end[from];
  if (e->stall_head) {
    stall_start(c, e, g);
    return;
  }
  struct sim_path *l = seg_path(c, from);
  if (sim->failed) {
    seg_discard(sim, &g->ev);
    return;
  }
  if (path_shut(sim, l)) {
    if (g->kind == SEG_RST) { /* resets are not retransmitted */
      trace_seg(sim, "tcp_drop", e);
      kz_sim_tr_str(sim, "seg", "rst");
      kz_sim_tr_str(sim, "reason", "partition");
      kz_sim_tr_end(sim);
      seg_discard(sim, &g->ev);
      return;
    }
    if (g->kind == SEG_SYNACK) {
      /* The client cannot hear back: it gives up at its connect
       * timeout unless the SYN-ACK gets through first. */
      seg_local(c, 1 - from, SEG_TIMEOUT, KZ_ETIMEDOUT, c->syn_time + sim->connect_timeout_ns);
    }
    stall_start(c, e, g);
    return;
  }
  const struct kz_sim_link_cfg *cfg = kz_sim_path_cfg(sim, l);
  uint64_t delay = cfg->latency_ns;
  uint32_t lost = 0;
  if (l) {
    delay += jitter_draw(l, cfg);
    uint64_t rto = KZ_SIM_STREAM_RTO_NS;
    while (lost < 32 && kz_prng_chance_ppm(&l->prng, cfg->loss_ppm)) {
      lost++;
      delay += rto;
      rto = rto * 2 > KZ_SIM_STREAM_RTO_MAX_NS ? KZ_SIM_STREAM_RTO_MAX_NS : rto * 2;
    }
  }
  uint64_t at = sim->now + delay;
  if (at < e->last_arrival) at = e->last_arrival;
  e->last_arrival = at;
  if (lost) {
    sim->stats.stream_retransmits += lost;
    trace_seg(sim, "tcp_retx", e);
    kz_sim_tr_str(sim, "seg", seg_names[g->kind]);
    kz_sim_tr_u64(sim, "lost", lost);
    kz_sim_tr_u64(sim, "arrival", at);
    kz_sim_tr_end(sim);
  }
  if (kz_sim_schedule(sim, &g->ev, at) != 0) seg_discard(sim, &g->ev);
}

/* Sends a segment from side `from` to the other side.  Returns 0 or
 * KZ_ENOMEM (the simulator is marked failed). */
static int seg_send(struct sim_conn *c, int from, enum seg_kind kind, int status,
                    const void *data, size_t len) {
  struct seg_ev *g = seg_new(c, from, kind, status, data, len);
  if (!g) return KZ_ENOMEM;
  seg_xmit(c, from, g);
  return c->sim->failed ? c->sim->failed : 0;
}

/* The stream timeout passed with segments of e still waiting: e gives
 * up.  Its user is told (KZ_ETIMEDOUT, through the CPU like any event),
 * a RST goes to the peer (lost while the partition holds), and whatever
 * the peer sends later is answered with a RST. */
static void end_abort(struct sim_conn *c, struct sim_end *e) {
  struct kz_sim *sim = c->sim;
  bool connecting = e->state == END_CONNECTING;
  stall_clear(e);
  sim->stats.streams_timed_out++;
  e->timed_out = true;
  if (e->state != END_DEAD) e->state = END_DONE;
  e->close_seen = true;
  trace_seg(sim, "tcp_abort", e);
  kz_sim_tr_str(sim, "reason", "stream_timeout");
  kz_sim_tr_end(sim);
  seg_local(c, e->side, SEG_ABORT, KZ_ETIMEDOUT, sim->now);
  if (!connecting) seg_send(c, e->side, SEG_RST, KZ_ECONNRESET, NULL, 0);
}

static void rtx_fire(struct kz_sim *sim, struct sim_event *ev) {
  struct sim_end *e = KZ_CONTAINER_OF(ev, struct sim_end, rtx_ev);
  struct sim_conn *c = e->conn;
  struct sim_path *l = seg_path(c, e->side);
  if (!path_shut(sim, l)) {
    /* The path is open again: everything waiting leaves, in order. */
    struct seg_ev *g = e->stall_head;
    e->stall_head = e->stall_tail = NULL;
    while (g) {
      struct seg_ev *next = g->next;
      g->next = NULL;
      kz_ref(c);
      seg_xmit(c, e->side, g);
      g = next;
    }
  } else if (sim->now - e->stall_since >= end_timeout(sim, e)) {
    end_abort(c, e);
  } else {
    e->stall_rto = e->stall_rto * 2 > KZ_SIM_STREAM_RTO_MAX_NS ? KZ_SIM_STREAM_RTO_MAX_NS
                                                               : e->stall_rto * 2;
    if (kz_sim_schedule(sim, &e->rtx_ev, sim->now + e->stall_rto) == 0) return; /* keeps its ref */
  }
  conn_check_done(c);
  kz_deref(c);
}

static void rtx_discard(struct kz_sim *sim, struct sim_event *ev) {
  (void)sim;
  kz_deref(KZ_CONTAINER_OF(ev, struct sim_end, rtx_ev)->conn);
}

/* Stops e's retransmission (its host died). */
static void rtx_cancel(struct sim_end *e) {
  stall_clear(e);
  if (kz_heap_node_queued(&e->rtx_ev.node)) {
    kz_sim_unschedule(e->conn->sim, &e->rtx_ev);
    kz_deref(e->conn);
  }
}

static void deliver_close(struct sim_end *e, int status) {
  if (e->s && !e->close_delivered) {
    e->close_delivered = true;
    kz_stream_deliver_close(e->s, status);
  }
}

static void trace_syn_drop(struct kz_sim *sim, struct kz_sim_host *h, struct sim_conn *c,
                           const char *reason) {
  kz_sim_tr_begin(sim, "tcp_drop");
  kz_sim_tr_who(sim, h, NULL);
  kz_sim_tr_u64(sim, "conn", c->id);
  kz_sim_tr_str(sim, "seg", "syn");
  kz_sim_tr_str(sim, "reason", reason);
  kz_sim_tr_end(sim);
}

/* The kernel part of a SYN's arrival.  Returns true when a listener
 * accepted it (its accept callback is then owed). */
static bool syn_arrive(struct kz_sim *sim, struct sim_conn *c) {
  struct sim_end *cl = &c->end[0], *sv = &c->end[1];
  struct kz_sim_host *h = kz_sim_host_by_ip(sim, &sv->addr);
  if (cl->state != END_CONNECTING) {
    /* The client died meanwhile: its kernel forgot the connection. */
    trace_syn_drop(sim, h, c, "stale");
    return false;
  }
  if (!h || !h->up) {
    trace_syn_drop(sim, h, c, h ? "host_down" : "no_route");
    seg_local(c, 0, SEG_TIMEOUT, KZ_ETIMEDOUT, c->syn_time + sim->connect_timeout_ns);
    return false;
  }
  struct sim_bind *b = port_get(&h->tcp_ports, sv->addr.port);
  sv->host = h;
  sv->snd_nxt = isn_of(c, 1);
  if (!b) {
    sim->stats.streams_refused++;
    sv->state = END_DONE;
    trace_seg(sim, "tcp_refused", sv);
    kz_sim_tr_addr(sim, "local", &sv->addr);
    kz_sim_tr_addr(sim, "peer", &cl->addr);
    kz_sim_tr_end(sim);
    seg_send(c, 1, SEG_RST, KZ_ECONNREFUSED, NULL, 0);
    return false;
  }
  sim->stats.streams_opened++;
  sv->proc = b->proc;
  sv->state = END_OPEN;
  sv->pending_accept = true;
  sv->addr = src_addr(h, &sv->addr);
  trace_seg(sim, "tcp_accept", sv);
  kz_sim_tr_addr(sim, "local", &sv->addr);
  kz_sim_tr_addr(sim, "peer", &cl->addr);
  kz_sim_tr_end(sim);
  /* The SYN-ACK leaves before anything the accept callback writes. */
  return seg_send(c, 1, SEG_SYNACK, 0, NULL, 0) == 0;
}

/* The accept callback of a connection the kernel accepted. */
static void accept_run(struct kz_sim *sim, struct sim_conn *c) {
  struct sim_end *sv = &c->end[1];
  sv->pending_accept = false;
  if (sv->state != END_OPEN || sv->close_seen) return; /* reset or dead meanwhile */
  struct sim_bind *b = port_get(&sv->host->tcp_ports, sv->addr.port);
  if (!b || !b->listener || b->proc != sv->proc ||
      kz_listener_deliver_accept(b->listener, sv, &sv->addr, &c->end[0].addr, &sv->s) != 0) {
    /* The listener went away while the accept waited, or refused it. */
    sv->s = NULL;
    sv->state = END_DONE;
    seg_send(c, 1, SEG_RST, KZ_ECONNRESET, NULL, 0);
  }
  (void)sim;
}

/* The kernel part of a SYN-ACK's arrival.  Returns true when on_connect
 * is owed to the user. */
static bool synack_arrive(struct kz_sim *sim, struct sim_conn *c) {
  struct sim_end *cl = &c->end[0];
  if (cl->state != END_CONNECTING) {
    /* The client's process died: its kernel answers with a reset. */
    trace_seg(sim, "tcp_drop", cl);
    kz_sim_tr_str(sim, "seg", "synack");
    kz_sim_tr_str(sim, "reason", cl->timed_out ? "timed_out" : "stale");
    kz_sim_tr_end(sim);
    if (c->end[1].state == END_OPEN) seg_send(c, 0, SEG_RST, KZ_ECONNRESET, NULL, 0);
    return false;
  }
  cl->state = END_OPEN;
  /* The handshake's final ACK, for the capture. */
  kz_sim_pcap_tcp(sim, &cl->addr, &c->end[1].addr, cl->snd_nxt, cl->rcv_nxt, KZ_SIM_TCP_ACK,
                  NULL, 0);
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
    return false;
  }
  return true;
}

/* Capture and TCP numbers of a segment arriving from the wire. */
static void seg_wire_arrive(struct kz_sim *sim, struct seg_ev *g) {
  struct sim_conn *c = g->conn;
  int from = 1 - g->to;
  struct sim_end *e = &c->end[g->to];
  if (g->kind != SEG_RST) e->rcv_nxt = g->seq + seg_space(g);
  struct kz_sim_host *h = seg_dst_host(c, from);
  if (!h || !h->up) return;
  static const uint8_t flags[] = {
      [SEG_SYN] = KZ_SIM_TCP_SYN,
      [SEG_SYNACK] = KZ_SIM_TCP_SYN | KZ_SIM_TCP_ACK,
      [SEG_DATA] = KZ_SIM_TCP_PSH | KZ_SIM_TCP_ACK,
      [SEG_FIN] = KZ_SIM_TCP_FIN | KZ_SIM_TCP_ACK,
      [SEG_RST] = KZ_SIM_TCP_RST | KZ_SIM_TCP_ACK,
  };
  kz_sim_pcap_tcp(sim, &c->end[from].addr, &e->addr, g->seq, g->ack, flags[g->kind], g->data,
                  g->len);
}

/* The process whose core handles the user part of g now, or NULL when no
 * callback is owed (kernel work only: it runs at once). */
static struct kz_sim_proc *seg_target(const struct seg_ev *g, enum kz_sim_work *work) {
  const struct sim_end *e = &g->conn->end[g->to];
  bool live = (e->s || e->pending_accept) && !e->close_seen;
  struct kz_sim_proc *p = NULL;
  switch (g->kind) {
  case SEG_ACCEPT:
    *work = KZ_SIM_WORK_ACCEPT;
    p = e->state == END_OPEN ? e->proc : NULL;
    break;
  case SEG_CONNECTED:
    *work = KZ_SIM_WORK_CONNECT;
    p = e->s && e->state == END_OPEN ? e->proc : NULL;
    break;
  case SEG_DATA:
    *work = KZ_SIM_WORK_DATA;
    p = live && e->state == END_OPEN ? e->proc : NULL;
    break;
  case SEG_ABORT:
    *work = KZ_SIM_WORK_CLOSE;
    p = e->s && !e->close_delivered ? e->proc : NULL;
    break;
  case SEG_TIMEOUT:
    *work = KZ_SIM_WORK_CLOSE;
    p = live && e->state == END_CONNECTING ? e->proc : NULL;
    break;
  case SEG_FIN:
  case SEG_RST:
    *work = KZ_SIM_WORK_CLOSE;
    p = live && (e->state == END_OPEN || e->state == END_CONNECTING) ? e->proc : NULL;
    break;
  case SEG_SYN:
  case SEG_SYNACK:
    break;
  }
  return p && p->running ? p : NULL;
}

/* A segment reaching an end that gave up (stream timeout) is answered
 * with a reset, as a real kernel answers a segment for a connection it
 * no longer knows. */
static void answer_with_rst(struct kz_sim *sim, struct sim_conn *c, struct sim_end *e,
                            const struct seg_ev *g) {
  trace_seg(sim, "tcp_drop", e);
  kz_sim_tr_str(sim, "seg", seg_names[g->kind]);
  if (g->kind == SEG_DATA) kz_sim_tr_payload(sim, g->data, g->len);
  kz_sim_tr_str(sim, "reason", "timed_out");
  kz_sim_tr_end(sim);
  struct sim_end *peer = &c->end[1 - e->side];
  if (!peer->close_seen && (peer->state == END_OPEN || peer->state == END_CONNECTING))
    seg_send(c, e->side, SEG_RST, KZ_ECONNRESET, NULL, 0);
}

static void seg_fire(struct kz_sim *sim, struct sim_event *ev) {
  struct seg_ev *g = KZ_CONTAINER_OF(ev, struct seg_ev, ev);
  struct sim_conn *c = g->conn;
  struct sim_end *e = &c->end[g->to];
  if (!g->arrived) {
    g->arrived = true;
    seg_wire_arrive(sim, g);
    if (g->kind == SEG_SYN) {
      if (!syn_arrive(sim, c)) goto done;
      g->kind = SEG_ACCEPT;
    } else if (g->kind == SEG_SYNACK) {
      if (!synack_arrive(sim, c)) goto done;
      g->kind = SEG_CONNECTED;
    }
  }
  enum kz_sim_work work = KZ_SIM_WORK_CLOSE;
  struct kz_sim_proc *target = seg_target(g, &work);
  uint64_t at;
  if (!kz_sim_cpu_gate(target, &g->admitted, work, g->len, &at)) {
    if (kz_sim_schedule(sim, &g->ev, at) != 0) seg_discard(sim, &g->ev);
    return;
  }
  switch (g->kind) {
  case SEG_SYN:
  case SEG_SYNACK:
    break; /* handled on arrival */
  case SEG_ACCEPT:
    accept_run(sim, c);
    break;
  case SEG_CONNECTED:
    if (e->s && e->state == END_OPEN) kz_stream_deliver_connect(e->s);
    break;
  case SEG_DATA:
    if (e->timed_out) {
      answer_with_rst(sim, c, e, g);
      break;
    }
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
  case SEG_ABORT:
    if (e->s && !e->close_delivered) {
      trace_seg(sim, "tcp_timeout", e);
      kz_sim_tr_err(sim, "status", g->status);
      kz_sim_tr_end(sim);
      deliver_close(e, g->status);
    }
    break;
  case SEG_FIN:
  case SEG_RST:
  case SEG_TIMEOUT:
    if (e->timed_out && g->kind == SEG_FIN) {
      answer_with_rst(sim, c, e, g);
      break;
    }
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
    /* A reset ends our direction too: nothing waiting will be taken.  A
     * FIN only ends the peer's. */
    if (g->kind != SEG_FIN) rtx_cancel(e);
    trace_seg(sim, g->kind == SEG_FIN ? "tcp_fin" : g->kind == SEG_RST ? "tcp_rst" : "tcp_timeout",
              e);
    kz_sim_tr_err(sim, "status", g->status);
    kz_sim_tr_end(sim);
    deliver_close(e, g->status);
    break;
  }
done:
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
    struct sim_end *e = &c->end[i];
    e->conn = c;
    e->side = i;
    kz_buf_init(&e->pending);
    kz_heap_node_init(&e->rtx_ev.node);
    e->rtx_ev.fire = rtx_fire;
    e->rtx_ev.discard = rtx_discard;
  }
  struct sim_end *cl = &c->end[0];
  cl->state = END_CONNECTING;
  cl->host = h;
  cl->proc = p;
  cl->addr = h->addr;
  cl->addr.port = port;
  cl->snd_nxt = isn_of(c, 0);
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

/* The kernel of `h` resets the connections of process `p` (NULL: of
 * every process, the host crashed). */
static void ends_reset(struct kz_sim_host *h, const struct kz_sim_proc *p) {
  struct kz_sim *sim = h->sim;
  struct sim_conn *next;
  for (struct sim_conn *c = sim->conns_head; c; c = next) {
    next = c->next; /* only c itself can leave the list below */
    kz_ref(c);
    for (int i = 0; i < 2; i++) {
      struct sim_end *e = &c->end[i], *peer = &c->end[1 - i];
      if (e->host != h || (p && e->proc != p)) continue;
      rtx_cancel(e); /* what waited for a path dies with the kernel */
      e->pending_accept = false;
      if (e->state != END_OPEN && e->state != END_CONNECTING) continue;
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

void kz_sim_net_host_crashed(struct kz_sim_host *h) { ends_reset(h, NULL); }

void kz_sim_net_proc_killed(struct kz_sim_proc *p) { ends_reset(p->host, p); }

void kz_sim_net_free(struct kz_sim *sim) {
  while (sim->conns_head) conn_unlink(sim->conns_head);
  while (sim->dgram_pool) {
    struct dgram_ev *d = sim->dgram_pool;
    sim->dgram_pool = d->pool_next;
    kz_free(d);
  }
  sim->dgram_pool_n = 0;
}
