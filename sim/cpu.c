/* cpu.c — the simulator's CPU model: per-host cores, a cost table per role kind and event kind, process stalls. */
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "sim_internal.h"

/* Model (documented in kz/sim.h).  Rather than keeping an explicit run
 * queue, each host remembers when each of its cores is next free: an
 * event reaching a process at `now` is given the core that frees first,
 * starts at max(now, that core's free time, the process's stall end) and
 * keeps the core until start + cost.  Start times handed out this way
 * never decrease for events arriving later, and equal start times keep
 * their arrival order through the queue's insertion sequence, so this is
 * exactly a FIFO run queue served by `cores` servers. */

static const struct kz_sim_cost *cost_row(const struct kz_sim *sim, const char *kind) {
  if (kind)
    for (size_t i = 0; i < sim->n_cost_rows; i++)
      if (!strcmp(sim->cost_rows[i].kind, kind)) return &sim->cost_rows[i].cost;
  return &sim->default_cost;
}

static uint64_t cost_of(const struct kz_sim *sim, const struct kz_sim_proc *p,
                        enum kz_sim_work kind, size_t len) {
  const struct kz_sim_cost *c = cost_row(sim, p->app->name);
  return c->base_ns[kind] + (uint64_t)len * c->per_byte_ps / 1000;
}

/* Charges one event of process p arriving now; returns its start time. */
static uint64_t admit(struct kz_sim_proc *p, enum kz_sim_work kind, size_t len) {
  struct kz_sim_host *h = p->host;
  struct kz_sim *sim = h->sim;
  uint64_t now = sim->now;
  unsigned best = 0;
  for (unsigned i = 1; i < h->cores; i++)
    if (h->core_free[i] < h->core_free[best]) best = i;
  uint64_t start = now;
  if (h->core_free[best] > start) start = h->core_free[best];
  if (p->stall_until > start) start = p->stall_until;
  uint64_t cost = cost_of(sim, p, kind, len);
  h->core_free[best] = start + cost;
  h->cpu.events++;
  h->cpu.busy_ns += cost;
  h->cpu.wait_ns += start - now;
  if (start - now > h->cpu.max_wait_ns) h->cpu.max_wait_ns = start - now;
  return start;
}

bool kz_sim_cpu_gate(struct kz_sim_proc *p, bool *admitted, enum kz_sim_work kind, size_t len,
                     uint64_t *at) {
  if (!p) return true;
  uint64_t now = p->host->sim->now;
  if (*admitted) {
    /* A stall that began while the event waited for its core holds it
     * back again; it is charged anew when the stall ends (the core time
     * reserved before is lost, as work a stalled process does not do). */
    if (p->stall_until > now) {
      *admitted = false;
      *at = p->stall_until;
      return false;
    }
    *admitted = false;
    return true;
  }
  uint64_t start = admit(p, kind, len);
  if (start == now) return true;
  *admitted = true;
  *at = start;
  return false;
}

void kz_sim_cpu_free(struct kz_sim *sim) {
  kz_free(sim->cost_rows);
  sim->cost_rows = NULL;
  sim->n_cost_rows = 0;
}

int kz_sim_set_cost(struct kz_sim *sim, const char *kind, const struct kz_sim_cost *cost) {
  if (!cost) return KZ_EINVAL;
  if (!kind) {
    sim->default_cost = *cost;
    return 0;
  }
  size_t n = strlen(kind);
  if (n == 0 || n > 31) return KZ_EINVAL;
  for (size_t i = 0; i < sim->n_cost_rows; i++)
    if (!strcmp(sim->cost_rows[i].kind, kind)) {
      sim->cost_rows[i].cost = *cost;
      return 0;
    }
  struct sim_cost_row *rows = kz_realloc(sim->cost_rows, (sim->n_cost_rows + 1) * sizeof *rows);
  if (!rows) return KZ_ENOMEM;
  sim->cost_rows = rows;
  struct sim_cost_row *r = &rows[sim->n_cost_rows++];
  memset(r, 0, sizeof *r);
  memcpy(r->kind, kind, n + 1);
  r->cost = *cost;
  return 0;
}

void kz_sim_set_cost_zero(struct kz_sim *sim) {
  memset(&sim->default_cost, 0, sizeof sim->default_cost);
  for (size_t i = 0; i < sim->n_cost_rows; i++)
    memset(&sim->cost_rows[i].cost, 0, sizeof sim->cost_rows[i].cost);
}

void kz_sim_get_cost(const struct kz_sim *sim, const char *kind, struct kz_sim_cost *out) {
  *out = *cost_row(sim, kind);
}

int kz_sim_host_set_cores(struct kz_sim_host *h, unsigned cores) {
  unsigned max = (unsigned)(sizeof h->core_free / sizeof h->core_free[0]);
  if (cores < 1 || cores > max) return KZ_EINVAL;
  /* New cores are free from now; removed ones finish what they hold
   * without taking more. */
  for (unsigned i = h->cores; i < cores; i++) h->core_free[i] = h->sim->now;
  h->cores = cores;
  return 0;
}

unsigned kz_sim_host_cores(const struct kz_sim_host *h) { return h->cores; }

void kz_sim_host_cpu_stats(const struct kz_sim_host *h, struct kz_sim_cpu_stats *out) {
  *out = h->cpu;
}

/* ------------------------------------------------------------------ */
/* Stalls */

int kz_sim_proc_stall(struct kz_sim_proc *p, uint64_t duration_ns) {
  if (!p->running) return KZ_EINVAL;
  struct kz_sim *sim = p->host->sim;
  uint64_t until = sim->now + duration_ns < sim->now ? UINT64_MAX : sim->now + duration_ns;
  if (until > p->stall_until) p->stall_until = until;
  sim->stats.stalls++;
  kz_sim_tr_begin(sim, "stall");
  kz_sim_tr_who(sim, p->host, p);
  kz_sim_tr_u64(sim, "until", p->stall_until);
  kz_sim_tr_end(sim);
  return 0;
}

struct stall_job {
  struct sim_event ev;
  struct kz_sim_proc *p;
  uint64_t duration;
};

static void stall_job_fire(struct kz_sim *sim, struct sim_event *ev) {
  (void)sim;
  struct stall_job *j = KZ_CONTAINER_OF(ev, struct stall_job, ev);
  kz_sim_proc_stall(j->p, j->duration); /* a process that is down ignores it */
  kz_free(j);
}

static void stall_job_discard(struct kz_sim *sim, struct sim_event *ev) {
  (void)sim;
  kz_free(KZ_CONTAINER_OF(ev, struct stall_job, ev));
}

int kz_sim_proc_stall_at(struct kz_sim_proc *p, uint64_t at_ns, uint64_t duration_ns) {
  struct kz_sim *sim = p->host->sim;
  struct stall_job *j = kz_calloc(1, sizeof *j);
  if (!j) return KZ_ENOMEM;
  kz_heap_node_init(&j->ev.node);
  j->ev.fire = stall_job_fire;
  j->ev.discard = stall_job_discard;
  j->p = p;
  j->duration = duration_ns;
  int rc = kz_heap_push(&sim->queue, &j->ev.node, at_ns < sim->now ? sim->now : at_ns);
  if (rc) kz_free(j);
  return rc;
}
