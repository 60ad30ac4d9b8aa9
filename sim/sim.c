/* sim.c — the simulator core: the event queue and clock, hosts, processes, links, crash and restart. */
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "sim_internal.h"

/* ------------------------------------------------------------------ */
/* Event queue */

void kz_sim_fail(struct kz_sim *sim, int err) {
  if (!sim->failed) sim->failed = err;
}

int kz_sim_schedule(struct kz_sim *sim, struct sim_event *ev, uint64_t t) {
  if (t < sim->now) t = sim->now; /* the past is gone: fire next */
  int rc = kz_heap_push(&sim->queue, &ev->node, t);
  if (rc) kz_sim_fail(sim, rc);
  return rc;
}

void kz_sim_unschedule(struct kz_sim *sim, struct sim_event *ev) {
  kz_heap_remove(&sim->queue, &ev->node);
}

int kz_sim_step(struct kz_sim *sim) {
  if (sim->failed) return sim->failed;
  struct kz_heap_node *n = kz_heap_pop(&sim->queue);
  if (!n) return 0;
  struct sim_event *ev = KZ_CONTAINER_OF(n, struct sim_event, node);
  sim->now = n->key; /* virtual time jumps to the event */
  sim->stats.events++;
  ev->fire(sim, ev);
  return sim->failed ? sim->failed : 1;
}

int kz_sim_run_until(struct kz_sim *sim, uint64_t t_ns) {
  for (;;) {
    if (sim->failed) return sim->failed;
    struct kz_heap_node *n = kz_heap_peek(&sim->queue);
    if (!n || n->key > t_ns) break;
    int rc = kz_sim_step(sim);
    if (rc < 0) return rc;
  }
  if (t_ns > sim->now) sim->now = t_ns;
  return 0;
}

int kz_sim_run_for(struct kz_sim *sim, uint64_t ns) {
  uint64_t t = sim->now + ns < sim->now ? UINT64_MAX : sim->now + ns;
  return kz_sim_run_until(sim, t);
}

uint64_t kz_sim_now(const struct kz_sim *sim) { return sim->now; }

size_t kz_sim_pending_events(const struct kz_sim *sim) { return kz_heap_len(&sim->queue); }

uint64_t kz_sim_next_event_time(const struct kz_sim *sim) {
  struct kz_heap_node *n = kz_heap_peek(&sim->queue);
  return n ? n->key : UINT64_MAX;
}

void kz_sim_stats(const struct kz_sim *sim, struct kz_sim_stats *out) {
  *out = sim->stats;
}

uint64_t kz_sim_seed(const struct kz_sim *sim) { return sim->seed; }

/* User callbacks scheduled with kz_sim_at. */
struct sim_user_ev {
  struct sim_event ev;
  kz_sim_event_fn *fn;
  void *arg;
};

static void user_ev_fire(struct kz_sim *sim, struct sim_event *ev) {
  struct sim_user_ev *u = KZ_CONTAINER_OF(ev, struct sim_user_ev, ev);
  kz_sim_event_fn *fn = u->fn;
  void *arg = u->arg;
  kz_free(u);
  fn(sim, arg);
}

static void user_ev_discard(struct kz_sim *sim, struct sim_event *ev) {
  kz_free(KZ_CONTAINER_OF(ev, struct sim_user_ev, ev));
}

int kz_sim_at(struct kz_sim *sim, uint64_t t_ns, kz_sim_event_fn *fn, void *arg) {
  struct sim_user_ev *u = kz_calloc(1, sizeof *u);
  if (!u) return KZ_ENOMEM;
  kz_heap_node_init(&u->ev.node);
  u->ev.fire = user_ev_fire;
  u->ev.discard = user_ev_discard;
  u->fn = fn;
  u->arg = arg;
  /* Not kz_sim_schedule: a failed kz_sim_at is reported to the caller, it
   * does not poison the run. */
  int rc = kz_heap_push(&sim->queue, &u->ev.node, t_ns < sim->now ? sim->now : t_ns);
  if (rc) kz_free(u);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Life cycle */

int kz_sim_new(struct kz_sim **out, uint64_t seed) {
  struct kz_sim *sim = kz_calloc(1, sizeof *sim);
  if (!sim) return KZ_ENOMEM;
  sim->seed = seed;
  kz_heap_init(&sim->queue);
  kz_prng_derive(&sim->net_prng, seed, "net");
  kz_map_init(&sim->hosts_by_ip, 0x6b7a5f6970ULL, false);
  kz_map_init(&sim->links, 0x6b7a5f6c6eULL, false);
  sim->default_link.latency_ns = KZ_SIM_DEFAULT_LATENCY_NS;
  sim->connect_timeout_ns = KZ_SIM_DEFAULT_CONNECT_TIMEOUT_NS;
  sim->stream_timeout_ns = KZ_SIM_DEFAULT_STREAM_TIMEOUT_NS;
  sim->default_cost = (struct kz_sim_cost)KZ_SIM_COST_DEFAULT_INIT;
  sim->log_level = KZ_LOG_INFO;
  kz_buf_init(&sim->line);
  kz_buf_init(&sim->bin);
  kz_buf_init(&sim->trace_mem);
  *out = sim;
  return 0;
}

static void proc_stop(struct kz_sim_proc *p, bool traced);

void kz_sim_free(struct kz_sim *sim) {
  if (!sim) return;
  /* Teardown is not part of the run: nothing more reaches the trace. */
  sim->trace_file = NULL;
  sim->trace_keep = false;
  sim->trace_off = true;
  /* Stop processes first, with their hosts marked crashing, so their
   * teardown sends nothing into a simulator that is going away. */
  for (size_t i = 0; i < sim->n_hosts; i++) {
    struct kz_sim_host *h = sim->hosts[i];
    h->crashing = true;
    for (size_t j = 0; j < h->n_procs; j++) proc_stop(h->procs[j], false);
  }
  struct kz_heap_node *n;
  while ((n = kz_heap_pop(&sim->queue))) {
    struct sim_event *ev = KZ_CONTAINER_OF(n, struct sim_event, node);
    ev->discard(sim, ev);
  }
  kz_sim_net_free(sim);
  for (size_t i = 0; i < sim->n_hosts; i++) {
    struct kz_sim_host *h = sim->hosts[i];
    for (size_t j = 0; j < h->n_procs; j++) kz_free(h->procs[j]);
    kz_free(h->procs);
    kz_sim_net_host_free(h);
    kz_sim_fs_host_free(h);
    kz_free(h);
  }
  kz_free(sim->hosts);
  kz_map_free(&sim->hosts_by_ip);
  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  while (kz_map_next(&sim->links, &pos, &k, &kl, &v)) kz_free(v);
  kz_map_free(&sim->links);
  kz_sim_cpu_free(sim);
  kz_heap_free(&sim->queue);
  kz_sim_trace_free(sim);
  kz_free(sim);
}

void kz_sim_set_log_level(struct kz_sim *sim, int level) { sim->log_level = level; }

/* ------------------------------------------------------------------ */
/* Hosts */

static bool name_ok(const char *s, size_t max, bool strict) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > max) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (strict && !ok) return false;
    /* Host names appear in trace strings and env names: keep them
     * printable and free of the separators we use. */
    if (!strict && (c <= ' ' || c >= 0x7f || c == '/' || c == '"' || c == '\\')) return false;
    if (strict && i == 0 && c == '.') return false;
  }
  return true;
}

int kz_sim_host_add(struct kz_sim *sim, const char *name, const struct kz_addr *addr,
                    struct kz_sim_host **out) {
  if (!name_ok(name, 31, false) || !addr || addr->family != 4 || kz_addr_v4_host(addr) == 0)
    return KZ_EINVAL;
  if (kz_sim_host_find(sim, name) || kz_sim_host_by_ip(sim, addr)) return KZ_EEXIST;
  struct kz_sim_host *h = kz_calloc(1, sizeof *h);
  struct kz_sim_host **nh = kz_realloc(sim->hosts, (sim->n_hosts + 1) * sizeof *nh);
  if (!h || !nh) {
    kz_free(h);
    return KZ_ENOMEM;
  }
  sim->hosts = nh;
  h->sim = sim;
  h->id = (uint32_t)sim->n_hosts;
  memcpy(h->name, name, strlen(name) + 1);
  h->addr = *addr;
  h->addr.port = 0;
  h->up = true;
  h->cores = KZ_SIM_DEFAULT_CORES;
  char pname[80];
  snprintf(pname, sizeof pname, "host:%s", name);
  kz_prng_derive(&h->prng, sim->seed, pname);
  kz_sim_net_host_init(h);
  kz_map_init(&h->files, 0x6b7a5f6673ULL, false);
  if (kz_map_put(&sim->hosts_by_ip, h->addr.ip, 4, h, NULL) != 0) {
    kz_sim_net_host_free(h);
    kz_map_free(&h->files);
    kz_free(h);
    return KZ_ENOMEM;
  }
  sim->hosts[sim->n_hosts++] = h;
  kz_sim_tr_begin(sim, "host_add");
  kz_sim_tr_who(sim, h, NULL);
  kz_sim_tr_addr(sim, "addr", &h->addr);
  kz_sim_tr_end(sim);
  if (out) *out = h;
  return 0;
}

struct kz_sim_host *kz_sim_host_find(const struct kz_sim *sim, const char *name) {
  for (size_t i = 0; i < sim->n_hosts; i++)
    if (!strcmp(sim->hosts[i]->name, name)) return sim->hosts[i];
  return NULL;
}

struct kz_sim_host *kz_sim_host_by_ip(const struct kz_sim *sim, const struct kz_addr *a) {
  if (a->family != 4) return NULL;
  return kz_map_get(&sim->hosts_by_ip, a->ip, 4, NULL);
}

const char *kz_sim_host_name(const struct kz_sim_host *h) { return h->name; }
struct kz_addr kz_sim_host_addr(const struct kz_sim_host *h) { return h->addr; }
bool kz_sim_host_is_up(const struct kz_sim_host *h) { return h->up; }
/* Drift accumulated since drift_base at rate drift_ppm, without
 * overflow for any virtual time below ~584 years. */
static int64_t drift_since_base(const struct kz_sim_host *h) {
  uint64_t d = h->sim->now - h->drift_base;
  int64_t ppm = h->drift_ppm;
  return (int64_t)(d / 1000000) * ppm + (int64_t)(d % 1000000) * ppm / 1000000;
}

int64_t kz_sim_host_wall_offset(const struct kz_sim_host *h) {
  return h->clock_skew_ns + drift_since_base(h);
}

void kz_sim_host_set_clock_skew(struct kz_sim_host *h, int64_t skew_ns) {
  /* The skew is an absolute offset: drop what drifted so far, keep the
   * rate from now on. */
  h->clock_skew_ns = skew_ns;
  h->drift_base = h->sim->now;
}

void kz_sim_host_set_clock_drift(struct kz_sim_host *h, int32_t ppm) {
  if (ppm > 1000000) ppm = 1000000;
  if (ppm < -1000000) ppm = -1000000;
  h->clock_skew_ns += drift_since_base(h); /* fold in what drifted so far */
  h->drift_base = h->sim->now;
  h->drift_ppm = ppm;
  struct kz_sim *sim = h->sim;
  kz_sim_tr_begin(sim, "clock_drift");
  kz_sim_tr_who(sim, h, NULL);
  kz_sim_tr_i64(sim, "ppm", ppm);
  kz_sim_tr_end(sim);
}

int kz_sim_host_set_crash_mode(struct kz_sim_host *h, enum kz_sim_crash_mode mode) {
  if (mode != KZ_SIM_CRASH_REVERT && mode != KZ_SIM_CRASH_TORN) return KZ_EINVAL;
  h->crash_mode = mode;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Links */

static void link_key(uint8_t key[8], const struct kz_sim_host *from, const struct kz_sim_host *to) {
  for (int i = 0; i < 4; i++) {
    key[i] = (uint8_t)(from->id >> (24 - 8 * i));
    key[4 + i] = (uint8_t)(to->id >> (24 - 8 * i));
  }
}

static struct sim_path *path_find(const struct kz_sim *sim, const struct kz_sim_host *from,
                                  const struct kz_sim_host *to) {
  if (!from || !to) return NULL;
  uint8_t key[8];
  link_key(key, from, to);
  return kz_map_get(&sim->links, key, sizeof key, NULL);
}

struct sim_path *kz_sim_path(struct kz_sim *sim, struct kz_sim_host *from,
                             struct kz_sim_host *to) {
  struct sim_path *l = path_find(sim, from, to);
  if (l) return l;
  l = kz_calloc(1, sizeof *l);
  if (!l) {
    kz_sim_fail(sim, KZ_ENOMEM);
    return NULL;
  }
  l->from = from;
  l->to = to;
  /* Named by host names, not ids, so a path's draws do not depend on the
   * order hosts were added in. */
  char name[96];
  snprintf(name, sizeof name, "net:%s->%s", from->name, to->name);
  kz_prng_derive(&l->prng, sim->seed, name);
  uint8_t key[8];
  link_key(key, from, to);
  if (kz_map_put(&sim->links, key, sizeof key, l, NULL) != 0) {
    kz_free(l);
    kz_sim_fail(sim, KZ_ENOMEM);
    return NULL;
  }
  return l;
}

const struct kz_sim_link_cfg *kz_sim_path_cfg(const struct kz_sim *sim,
                                              const struct sim_path *path) {
  return path && path->custom ? &path->cfg : &sim->default_link;
}

static const struct kz_sim_link_cfg *link_get(const struct kz_sim *sim,
                                              const struct kz_sim_host *from,
                                              const struct kz_sim_host *to) {
  return kz_sim_path_cfg(sim, path_find(sim, from, to));
}

static bool cfg_ok(const struct kz_sim_link_cfg *c) {
  return c->loss_ppm <= 1000000 && c->dup_ppm <= 1000000 && c->reorder_ppm <= 1000000;
}

/* The path of a configuration call: no simulator failure on ENOMEM, the
 * caller gets the error. */
static int path_for_cfg(struct kz_sim *sim, struct kz_sim_host *from, struct kz_sim_host *to,
                        struct sim_path **out) {
  if (!from || !to || from->sim != sim || to->sim != sim) return KZ_EINVAL;
  struct sim_path *l = path_find(sim, from, to);
  if (!l) {
    int failed = sim->failed;
    l = kz_sim_path(sim, from, to);
    if (!l) {
      sim->failed = failed;
      return KZ_ENOMEM;
    }
  }
  if (!l->custom) {
    l->custom = true;
    l->cfg = sim->default_link;
  }
  *out = l;
  return 0;
}

int kz_sim_link_set_latency(struct kz_sim *sim, struct kz_sim_host *from, struct kz_sim_host *to,
                            uint64_t ns) {
  struct sim_path *l;
  int rc = path_for_cfg(sim, from, to, &l);
  if (rc) return rc;
  l->cfg.latency_ns = ns;
  kz_sim_tr_begin(sim, "link");
  kz_sim_tr_str(sim, "from", from->name);
  kz_sim_tr_str(sim, "to", to->name);
  kz_sim_tr_u64(sim, "latency", ns);
  kz_sim_tr_end(sim);
  return 0;
}

static void trace_link_cfg(struct kz_sim *sim, const char *ev, const struct kz_sim_host *from,
                           const struct kz_sim_host *to, const struct kz_sim_link_cfg *c) {
  kz_sim_tr_begin(sim, ev);
  if (from) kz_sim_tr_str(sim, "from", from->name);
  if (to) kz_sim_tr_str(sim, "to", to->name);
  kz_sim_tr_u64(sim, "latency", c->latency_ns);
  kz_sim_tr_u64(sim, "jitter", c->jitter_ns);
  kz_sim_tr_u64(sim, "loss_ppm", c->loss_ppm);
  kz_sim_tr_u64(sim, "dup_ppm", c->dup_ppm);
  kz_sim_tr_u64(sim, "reorder_ppm", c->reorder_ppm);
  kz_sim_tr_u64(sim, "reorder", c->reorder_ns);
  kz_sim_tr_u64(sim, "queue_packets", c->queue_packets);
  kz_sim_tr_u64(sim, "queue_bytes", c->queue_bytes);
  kz_sim_tr_end(sim);
}

int kz_sim_link_set(struct kz_sim *sim, struct kz_sim_host *from, struct kz_sim_host *to,
                    const struct kz_sim_link_cfg *cfg) {
  if (!cfg || !cfg_ok(cfg)) return KZ_EINVAL;
  struct sim_path *l;
  int rc = path_for_cfg(sim, from, to, &l);
  if (rc) return rc;
  l->cfg = *cfg;
  trace_link_cfg(sim, "link_cfg", from, to, cfg);
  return 0;
}

void kz_sim_link_get(const struct kz_sim *sim, const struct kz_sim_host *from,
                     const struct kz_sim_host *to, struct kz_sim_link_cfg *out) {
  *out = *link_get(sim, from, to);
}

int kz_sim_set_default_link(struct kz_sim *sim, const struct kz_sim_link_cfg *cfg) {
  if (!cfg || !cfg_ok(cfg)) return KZ_EINVAL;
  sim->default_link = *cfg;
  trace_link_cfg(sim, "link_default", NULL, NULL, cfg);
  return 0;
}

void kz_sim_default_link(const struct kz_sim *sim, struct kz_sim_link_cfg *out) {
  *out = sim->default_link;
}

uint64_t kz_sim_link_latency(const struct kz_sim *sim, const struct kz_sim_host *from,
                             const struct kz_sim_host *to) {
  return link_get(sim, from, to)->latency_ns;
}

uint64_t kz_sim_latency(const struct kz_sim *sim, const struct kz_sim_host *from,
                     const struct kz_sim_host *to) {
  return link_get(sim, from, to)->latency_ns;
}

void kz_sim_set_default_latency(struct kz_sim *sim, uint64_t ns) {
  sim->default_link.latency_ns = ns;
}

void kz_sim_set_connect_timeout(struct kz_sim *sim, uint64_t ns) { sim->connect_timeout_ns = ns; }

void kz_sim_set_stream_timeout(struct kz_sim *sim, uint64_t ns) { sim->stream_timeout_ns = ns; }

/* ------------------------------------------------------------------ */
/* Partitions */

static int block_one(struct kz_sim *sim, struct kz_sim_host *from, struct kz_sim_host *to,
                     bool blocked) {
  if (!from || !to || from->sim != sim || to->sim != sim) return KZ_EINVAL;
  struct sim_path *l = path_find(sim, from, to);
  if (!l) {
    if (!blocked) return 0; /* a path never used is open */
    int failed = sim->failed;
    l = kz_sim_path(sim, from, to);
    if (!l) {
      sim->failed = failed;
      return KZ_ENOMEM;
    }
  }
  if (l->blocked == blocked) return 0;
  l->blocked = blocked;
  kz_sim_tr_begin(sim, blocked ? "partition" : "heal");
  kz_sim_tr_str(sim, "from", from->name);
  kz_sim_tr_str(sim, "to", to->name);
  kz_sim_tr_end(sim);
  return 0;
}

int kz_sim_partition(struct kz_sim *sim, struct kz_sim_host *from, struct kz_sim_host *to,
                     bool both) {
  int rc = block_one(sim, from, to, true);
  if (!rc && both) rc = block_one(sim, to, from, true);
  return rc;
}

int kz_sim_heal(struct kz_sim *sim, struct kz_sim_host *from, struct kz_sim_host *to, bool both) {
  int rc = block_one(sim, from, to, false);
  if (!rc && both) rc = block_one(sim, to, from, false);
  return rc;
}

void kz_sim_heal_all(struct kz_sim *sim) {
  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  while (kz_map_next(&sim->links, &pos, &k, &kl, &v)) {
    struct sim_path *l = v;
    if (l->blocked) block_one(sim, l->from, l->to, false);
  }
}

bool kz_sim_link_blocked(const struct kz_sim *sim, const struct kz_sim_host *from,
                         const struct kz_sim_host *to) {
  const struct sim_path *l = path_find(sim, from, to);
  return l && l->blocked;
}

/* A scheduled partition: fires once to block, then again to heal. */
struct partition_job {
  struct sim_event ev;
  struct kz_sim_host *from, *to;
  bool both;
  bool heal;
  uint64_t duration;
};

static void partition_job_discard(struct kz_sim *sim, struct sim_event *ev) {
  (void)sim;
  kz_free(KZ_CONTAINER_OF(ev, struct partition_job, ev));
}

static void partition_job_fire(struct kz_sim *sim, struct sim_event *ev) {
  struct partition_job *j = KZ_CONTAINER_OF(ev, struct partition_job, ev);
  if (j->heal) {
    kz_sim_heal(sim, j->from, j->to, j->both);
    kz_free(j);
    return;
  }
  if (kz_sim_partition(sim, j->from, j->to, j->both) != 0) kz_sim_fail(sim, KZ_ENOMEM);
  if (j->duration == UINT64_MAX) {
    kz_free(j);
    return;
  }
  j->heal = true;
  uint64_t t = sim->now + j->duration < sim->now ? UINT64_MAX : sim->now + j->duration;
  if (kz_sim_schedule(sim, &j->ev, t) != 0) kz_free(j);
}

int kz_sim_partition_at(struct kz_sim *sim, uint64_t at_ns, uint64_t duration_ns,
                        struct kz_sim_host *from, struct kz_sim_host *to, bool both) {
  if (!from || !to || from->sim != sim || to->sim != sim) return KZ_EINVAL;
  struct partition_job *j = kz_calloc(1, sizeof *j);
  if (!j) return KZ_ENOMEM;
  kz_heap_node_init(&j->ev.node);
  j->ev.fire = partition_job_fire;
  j->ev.discard = partition_job_discard;
  j->from = from;
  j->to = to;
  j->both = both;
  j->duration = duration_ns;
  /* A failed push is reported, it does not poison the run. */
  int rc = kz_heap_push(&sim->queue, &j->ev.node, at_ns < sim->now ? sim->now : at_ns);
  if (rc) kz_free(j);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Processes */

static void proc_timer_discard(struct kz_sim *sim, struct sim_event *ev) {
  (void)sim;
  (void)ev; /* embedded in its process */
}

/* Releases what a dead process held.  Returns the number of handles the
 * app forgot to close. */
static size_t proc_release(struct kz_sim_proc *p) {
  size_t reclaimed = kz_sim_net_reclaim(p) + kz_sim_fs_reclaim(p);
  kz_sim_unschedule(p->host->sim, &p->timer_ev);
  p->timer_admitted = false;
  p->timer_waiting = false;
  p->stall_until = 0;
  if (p->env_live) {
    kz_env_deinit(&p->env);
    p->env_live = false;
  }
  return reclaimed;
}

static int proc_start(struct kz_sim_proc *p) {
  struct kz_sim_host *h = p->host;
  struct kz_sim *sim = h->sim;
  /* A fresh seed per boot, derived by name: restarts draw new values,
   * and neither depends on any other component's draws. */
  char sname[160];
  snprintf(sname, sizeof sname, "env:%s/%s#%llu", h->name, p->name,
           (unsigned long long)p->boot);
  struct kz_prng g;
  kz_prng_derive(&g, sim->seed, sname);
  uint64_t seed = kz_prng_next(&g);
  char ename[64];
  snprintf(ename, sizeof ename, "%s/%s", h->name, p->name);
  int rc = kz_env_init(&p->env, &kz_sim_env_ops, p, ename, seed);
  if (rc) return rc;
  p->env.log_level = sim->log_level;
  p->env_live = true;
  p->running = true;
  p->boot++;
  kz_sim_tr_begin(sim, "start");
  kz_sim_tr_who(sim, h, p);
  kz_sim_tr_str(sim, "app", p->app->name ? p->app->name : "");
  kz_sim_tr_u64(sim, "boot", p->boot);
  kz_sim_tr_hex64(sim, "env_seed", seed);
  kz_sim_tr_end(sim);
  void *inst = NULL;
  rc = p->app->start(&p->env, p->cfg, &inst);
  if (rc) {
    p->running = false;
    h->crashing = true; /* whatever it opened goes away silently */
    size_t leaked = proc_release(p);
    h->crashing = false;
    kz_sim_tr_begin(sim, "start_failed");
    kz_sim_tr_who(sim, h, p);
    kz_sim_tr_err(sim, "err", rc);
    kz_sim_tr_u64(sim, "reclaimed", leaked);
    kz_sim_tr_end(sim);
    return rc;
  }
  p->instance = inst;
  return 0;
}

/* Kills a running process: app stop, leftovers reclaimed.  The host is
 * marked crashing by the caller, so nothing leaves it meanwhile. */
static void proc_stop(struct kz_sim_proc *p, bool traced) {
  if (!p->running) return;
  struct kz_sim *sim = p->host->sim;
  p->running = false; /* deadline changes during stop are ignored */
  void *inst = p->instance;
  p->instance = NULL;
  if (p->app->stop && inst) p->app->stop(inst);
  size_t leaked = proc_release(p);
  if (traced) {
    kz_sim_tr_begin(sim, "stop");
    kz_sim_tr_who(sim, p->host, p);
    kz_sim_tr_u64(sim, "reclaimed", leaked);
    kz_sim_tr_end(sim);
  }
}

int kz_sim_proc_add(struct kz_sim_host *h, const char *name, const struct kz_sim_app *app,
                    const void *cfg, struct kz_sim_proc **out) {
  if (!name_ok(name, 31, true) || !app || !app->start) return KZ_EINVAL;
  for (size_t i = 0; i < h->n_procs; i++)
    if (!strcmp(h->procs[i]->name, name)) return KZ_EEXIST;
  struct kz_sim_proc *p = kz_calloc(1, sizeof *p);
  struct kz_sim_proc **np = kz_realloc(h->procs, (h->n_procs + 1) * sizeof *np);
  if (!p || !np) {
    kz_free(p);
    return KZ_ENOMEM;
  }
  h->procs = np;
  p->host = h;
  memcpy(p->name, name, strlen(name) + 1);
  p->app = app;
  p->cfg = cfg;
  kz_heap_node_init(&p->timer_ev.node);
  p->timer_ev.fire = kz_sim_proc_timer_fire;
  p->timer_ev.discard = proc_timer_discard;
  if (h->up) {
    int rc = proc_start(p);
    if (rc) {
      kz_free(p);
      return rc;
    }
  }
  h->procs[h->n_procs++] = p;
  if (out) *out = p;
  return 0;
}

void *kz_sim_proc_instance(const struct kz_sim_proc *p) { return p->running ? p->instance : NULL; }
bool kz_sim_proc_is_running(const struct kz_sim_proc *p) { return p->running; }
struct kz_env *kz_sim_proc_env(struct kz_sim_proc *p) { return &p->env; }

/* ------------------------------------------------------------------ */
/* Crash and restart */

int kz_sim_host_crash(struct kz_sim_host *h) {
  struct kz_sim *sim = h->sim;
  if (!h->up) return KZ_EHOSTDOWN;
  kz_sim_tr_begin(sim, "crash");
  kz_sim_tr_who(sim, h, NULL);
  kz_sim_tr_end(sim);
  h->crashing = true;
  for (size_t i = 0; i < h->n_procs; i++) proc_stop(h->procs[i], true);
  kz_sim_net_host_crashed(h);
  size_t reverted = 0;
  size_t vanished = kz_sim_fs_host_crashed(h, &reverted);
  h->crashing = false;
  h->up = false;
  sim->stats.crashes++;
  kz_sim_tr_begin(sim, "storage_revert");
  kz_sim_tr_who(sim, h, NULL);
  kz_sim_tr_u64(sim, "kept", reverted);
  kz_sim_tr_u64(sim, "vanished", vanished);
  kz_sim_tr_end(sim);
  return 0;
}

int kz_sim_host_restart(struct kz_sim_host *h) {
  struct kz_sim *sim = h->sim;
  if (h->up) return KZ_EBUSY;
  h->up = true;
  sim->stats.restarts++;
  kz_sim_tr_begin(sim, "restart");
  kz_sim_tr_who(sim, h, NULL);
  kz_sim_tr_end(sim);
  int first = 0;
  for (size_t i = 0; i < h->n_procs; i++) {
    int rc = proc_start(h->procs[i]);
    if (rc && !first) first = rc;
  }
  return first;
}

/* ------------------------------------------------------------------ */
/* Killing one process */

int kz_sim_proc_kill(struct kz_sim_proc *p) {
  struct kz_sim_host *h = p->host;
  if (!p->running) return KZ_EINVAL;
  kz_sim_tr_begin(h->sim, "kill");
  kz_sim_tr_who(h->sim, h, p);
  kz_sim_tr_end(h->sim);
  /* As in a crash nothing leaves the dying process; unlike a crash the
   * host's storage and other processes are untouched. */
  h->crashing = true;
  proc_stop(p, true);
  kz_sim_net_proc_killed(p);
  h->crashing = false;
  return 0;
}

int kz_sim_proc_restart(struct kz_sim_proc *p) {
  if (!p->host->up) return KZ_EHOSTDOWN;
  if (p->running) return KZ_EBUSY;
  return proc_start(p);
}

struct kill_job {
  struct sim_event ev;
  struct kz_sim_proc *p;
  bool restart;
};

static void kill_job_fire(struct kz_sim *sim, struct sim_event *ev) {
  struct kill_job *j = KZ_CONTAINER_OF(ev, struct kill_job, ev);
  int rc = j->restart ? kz_sim_proc_restart(j->p) : kz_sim_proc_kill(j->p);
  if (rc == KZ_EINVAL || rc == KZ_EBUSY || rc == KZ_EHOSTDOWN) {
    kz_sim_tr_begin(sim, "fault_skipped");
    kz_sim_tr_who(sim, j->p->host, j->p);
    kz_sim_tr_str(sim, "fault", j->restart ? "restart" : "kill");
    kz_sim_tr_err(sim, "err", rc);
    kz_sim_tr_end(sim);
  }
  kz_free(j);
}

static void kill_job_discard(struct kz_sim *sim, struct sim_event *ev) {
  (void)sim;
  kz_free(KZ_CONTAINER_OF(ev, struct kill_job, ev));
}

static int kill_job_push(struct kz_sim_proc *p, uint64_t at_ns, bool restart) {
  struct kz_sim *sim = p->host->sim;
  struct kill_job *j = kz_calloc(1, sizeof *j);
  if (!j) return KZ_ENOMEM;
  kz_heap_node_init(&j->ev.node);
  j->ev.fire = kill_job_fire;
  j->ev.discard = kill_job_discard;
  j->p = p;
  j->restart = restart;
  int rc = kz_heap_push(&sim->queue, &j->ev.node, at_ns < sim->now ? sim->now : at_ns);
  if (rc) kz_free(j);
  return rc;
}

int kz_sim_proc_kill_at(struct kz_sim_proc *p, uint64_t at_ns, uint64_t restart_ns) {
  if (restart_ns <= at_ns) return KZ_EINVAL;
  int rc = kill_job_push(p, at_ns, false);
  if (!rc && restart_ns != UINT64_MAX) rc = kill_job_push(p, restart_ns, true);
  return rc;
}
