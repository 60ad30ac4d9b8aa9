/* run.c — kz_sim_run: a topology in the simulator with SIPp endpoints and kz roles, sampled into series, checked and reported. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "kz/sim_os.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sim_report.h"
#include "kz/sim_run.h"
#include "kz/sipp_sim.h"
#include "run_int.h"

/* The runner is an OS-facing front end like the simulator: it reads
 * scenario files, writes outputs and reads the wall clock for the
 * report.  Nothing it reads from the OS reaches the trace. */

#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)
/* Virtual time between two samples of the SIPp counters. */
#define TICK_NS (10 * MS)
#define SIP_PORT 5060

struct run;

/* One installed process: the app wrapper's cfg. */
struct proc_wrap {
  struct run *run;
  const struct kz_sim_app *inner;
  const void *cfg;
  size_t host;
  int role;
  struct kz_sim_proc *proc;
};

/* The wrapper's instance around the role's own. */
struct wrap_inst {
  struct proc_wrap *w;
  struct kz_env *env;
  void *inner;
};

struct endpoint {
  struct proc_wrap *w;
  bool uac;
  struct kz_sipp_cfg cfg;
  const struct kz_sipp_scenario *sc;
  const void *inst;                 /* engine of the boot last sampled */
  struct kz_sipp_stats last;        /* its counters at the last sample */
  struct kz_sipp_stats base;        /* counters of earlier boots, added up */
  uint64_t planned;
  struct kz_sim_report_msg *msgs; /* per-command counters, captured before the simulator goes */
  size_t nmsgs;
};

/* A scheduled host fault (kz_sim_at argument). */
struct action {
  struct run *run;
  size_t host;
  int kind; /* 0 crash, 1 restart, 2 skew, 3 drift */
  int64_t skew_ns;
  int32_t drift_ppm;
  char label[80];
};

struct run {
  const struct kz_topo *t;
  const struct kz_sim_run_opts *o;
  struct kz_sim_run_result *res;
  struct kz_sim *sim;
  struct kz_sim_host **hosts;
  struct kz_sim_hooks *hooks;
  struct kz_sim_app apps[KZ_TOPO_ROLE_COUNT];
  struct proc_wrap *wraps;
  size_t nwraps;
  void **role_cfgs; /* parallel to wraps: cfgs built by role builders */
  struct endpoint *eps;
  size_t neps;
  struct action *acts;
  size_t nacts, cap_acts;
  int64_t *skew; /* per host: the wall clock offset set so far */
  struct swarm_plan swarm;
  struct kz_sipp_scenario *uac_sc, *uas_sc;
  uint8_t *inf;
  size_t inf_len;
  struct kz_sim_report_series *s_started, *s_ok, *s_failed, *s_rt;
  bool retrans_seen;
};

static int fail(struct run *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct run *r, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->res->error, sizeof r->res->error, fmt, ap);
  va_end(ap);
  return code;
}

void kz_sim_run_opts_init(struct kz_sim_run_opts *o) {
  memset(o, 0, sizeof *o);
  o->progress_tty = -1;
}

/* ------------------------------------------------------------------ */
/* The app wrapper: registers each process's env with the hooks (so
 * KZ_BUGGIFY knows it is simulated) and checks that stopping releases
 * every handle and timer. */

#define CHECK_STOP_CLEAN "processes release every handle and timer when they stop"

static int wrap_start(struct kz_env *env, const void *cfg, void **instance) {
  struct proc_wrap *w = (struct proc_wrap *)cfg;
  struct wrap_inst *wi = kz_calloc(1, sizeof *wi);
  if (!wi) return KZ_ENOMEM;
  wi->w = w;
  wi->env = env;
  int rc = kz_sim_hooks_env_add(w->run->hooks, env);
  if (rc) {
    kz_free(wi);
    return rc;
  }
  rc = w->inner->start(env, w->cfg, &wi->inner);
  if (rc) {
    kz_sim_hooks_env_remove(w->run->hooks, env);
    kz_free(wi);
    return rc;
  }
  *instance = wi;
  return 0;
}

static void wrap_stop(void *instance) {
  struct wrap_inst *wi = instance;
  wi->w->inner->stop(wi->inner);
  struct kz_env *env = wi->env;
  bool clean = env->n_udp == 0 && env->n_streams == 0 && env->n_listeners == 0 && env->n_files == 0 &&
               kz_env_timer_count(env) == 0;
  kz_sim_check_always(clean, CHECK_STOP_CLEAN);
  kz_sim_hooks_env_remove(wi->w->run->hooks, env);
  kz_free(wi);
}

static const void *inner_instance(const struct proc_wrap *w) {
  const struct wrap_inst *wi = kz_sim_proc_instance(w->proc);
  return wi ? wi->inner : NULL;
}

static uint64_t hooks_now(void *arg) { return kz_sim_now(((struct run *)arg)->sim); }

/* ------------------------------------------------------------------ */
/* Files */

static int read_file(struct run *r, const char *what, const char *path, uint8_t **out, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return fail(r, KZ_EIO, "cannot read %s %s: %s", what, path, strerror(errno));
  struct kz_buf b;
  kz_buf_init(&b);
  char chunk[8192];
  size_t n;
  int rc = 0;
  while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0) rc = kz_buf_append(&b, chunk, n);
  bool err = ferror(f);
  fclose(f);
  if (rc || err) {
    kz_buf_free(&b);
    return rc ? fail(r, rc, "out of memory") : fail(r, KZ_EIO, "cannot read %s %s", what, path);
  }
  if (!b.data && kz_buf_reserve(&b, 1)) return fail(r, KZ_ENOMEM, "out of memory");
  *out = b.data;
  *len = b.len;
  return 0;
}

static int load_scenario(struct run *r, const char *what, const char *path, struct kz_sipp_scenario **out) {
  if (!path) return fail(r, KZ_EINVAL, "no %s scenario given (--%s FILE)", what, what);
  uint8_t *data;
  size_t len;
  int rc = read_file(r, what, path, &data, &len);
  if (rc) return rc;
  struct kz_sipp_load_opts lo = {r->o->keys, r->o->nkeys};
  struct kz_sipp_load_err err;
  rc = kz_sipp_scenario_load(out, path, data, len, &lo, &err);
  kz_free(data);
  if (rc == KZ_ENOMEM) return fail(r, rc, "out of memory");
  if (rc) return fail(r, rc, "%s scenario: %s", what, err.text);
  return 0;
}

static double wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ */
/* Building the simulated world */

static void to_sim_link(const struct kz_topo_link *l, struct kz_sim_link_cfg *c) {
  if (l->set & KZ_TOPO_LINK_LATENCY) c->latency_ns = l->latency_ns;
  if (l->set & KZ_TOPO_LINK_JITTER) c->jitter_ns = l->jitter_ns;
  if (l->set & KZ_TOPO_LINK_LOSS) c->loss_ppm = l->loss_ppm;
  if (l->set & KZ_TOPO_LINK_DUP) c->dup_ppm = l->dup_ppm;
  if (l->set & KZ_TOPO_LINK_REORDER) c->reorder_ppm = l->reorder_ppm;
  if (l->set & KZ_TOPO_LINK_REORDER_DELAY) c->reorder_ns = l->reorder_ns;
  if (l->set & KZ_TOPO_LINK_QUEUE) c->queue_packets = l->queue_packets;
  if (l->set & KZ_TOPO_LINK_QUEUE_BYTES) c->queue_bytes = l->queue_bytes;
}

static int check_dist(struct run *r, const struct kz_topo_link *l) {
  if (!(l->set & KZ_TOPO_LINK_DIST) || l->dist == KZ_TOPO_DIST_UNIFORM) return 0;
  struct kz_topo_err err;
  kz_topo_error_at(r->t, l->dist_pos, &err,
                   "distribution '%s' is not modelled by the simulator yet (only 'uniform': latency plus "
                   "uniform [0, jitter])",
                   kz_topo_dist_name(l->dist));
  return fail(r, KZ_ENOTSUP, "%s", err.text);
}

static int build_links(struct run *r) {
  const struct kz_topo *t = r->t;
  int rc = check_dist(r, &t->default_link);
  for (size_t i = 0; i < t->npaths && !rc; i++) rc = check_dist(r, &t->paths[i].link);
  if (rc) return rc;
  struct kz_sim_link_cfg def;
  kz_sim_default_link(r->sim, &def);
  to_sim_link(&t->default_link, &def);
  if (r->o->swarm) to_sim_link(&r->swarm.link, &def);
  if ((rc = kz_sim_set_default_link(r->sim, &def))) return fail(r, rc, "default link: %s", kz_strerror(rc));
  /* Each configured path: the default overlaid with its own fields (and
   * swarm's draws, which replace every link's properties). */
  for (size_t i = 0; i < t->npaths; i++) {
    const struct kz_topo_path *p = &t->paths[i];
    for (int dir = 0; dir < (p->both ? 2 : 1); dir++) {
      size_t from = dir ? p->to : p->from, to = dir ? p->from : p->to;
      struct kz_topo_link eff;
      kz_topo_path_link(t, from, to, &eff);
      struct kz_sim_link_cfg c;
      kz_sim_default_link(r->sim, &c);
      to_sim_link(&eff, &c);
      if (r->o->swarm) to_sim_link(&r->swarm.link, &c);
      if ((rc = kz_sim_link_set(r->sim, r->hosts[from], r->hosts[to], &c)))
        return fail(r, rc, "link %s -> %s: %s", t->hosts[from].name, t->hosts[to].name, kz_strerror(rc));
    }
  }
  return 0;
}

static void ev_host(struct kz_sim *sim, void *arg) {
  struct action *a = arg;
  struct kz_sim_host *h = a->run->hosts[a->host];
  kz_sim_trace_mark(sim, a->label);
  switch (a->kind) {
  case 0: (void)kz_sim_host_crash(h); break;   /* already down: nothing to do */
  case 1: (void)kz_sim_host_restart(h); break; /* already up: nothing to do */
  case 2:
    a->run->skew[a->host] += a->skew_ns;
    kz_sim_host_set_clock_skew(h, a->run->skew[a->host]);
    break;
  case 3: kz_sim_host_set_clock_drift(h, a->drift_ppm); break;
  }
}

static int schedule(struct run *r, uint64_t at, size_t host, int kind, int64_t skew, int32_t drift) {
  if (r->nacts == r->cap_acts) return fail(r, KZ_ENOMEM, "too many fault actions");
  struct action *a = &r->acts[r->nacts++];
  static const char *const names[] = {"crash", "restart", "skew", "drift"};
  a->run = r;
  a->host = host;
  a->kind = kind;
  a->skew_ns = skew;
  a->drift_ppm = drift;
  snprintf(a->label, sizeof a->label, "fault: %s %s", names[kind], r->t->hosts[host].name);
  int rc = kz_sim_at(r->sim, at, ev_host, a);
  return rc ? fail(r, rc, "out of memory scheduling faults") : 0;
}

static int apply_fault(struct run *r, const struct kz_topo_fault *f) {
  int rc = 0;
  switch (f->kind) {
  case KZ_TOPO_FAULT_CRASH:
    rc = schedule(r, f->at_ns, f->host, 0, 0, 0);
    if (!rc && f->until_ns != UINT64_MAX) rc = schedule(r, f->until_ns, f->host, 1, 0, 0);
    break;
  case KZ_TOPO_FAULT_RESTART: rc = schedule(r, f->at_ns, f->host, 1, 0, 0); break;
  case KZ_TOPO_FAULT_SKEW:
    if (f->has_skew) rc = schedule(r, f->at_ns, f->host, 2, f->skew_ns, 0);
    if (!rc && f->has_drift) rc = schedule(r, f->at_ns, f->host, 3, 0, f->drift_ppm);
    break;
  case KZ_TOPO_FAULT_PARTITION: {
    uint64_t dur = f->until_ns == UINT64_MAX ? UINT64_MAX : f->until_ns - f->at_ns;
    for (size_t i = 0; i < f->na && !rc; i++)
      for (size_t j = 0; j < f->nb && !rc; j++)
        if ((rc = kz_sim_partition_at(r->sim, f->at_ns, dur, r->hosts[f->side_a[i]], r->hosts[f->side_b[j]],
                                      !f->oneway)))
          rc = fail(r, rc, "partition: %s", kz_strerror(rc));
    break;
  }
  case KZ_TOPO_FAULT_STALL:
    for (size_t i = 0; i < r->nwraps && !rc; i++) {
      const struct proc_wrap *w = &r->wraps[i];
      if (w->host != f->host || (f->role >= 0 && w->role != f->role)) continue;
      if ((rc = kz_sim_proc_stall_at(w->proc, f->at_ns, f->until_ns - f->at_ns)))
        rc = fail(r, rc, "stall: %s", kz_strerror(rc));
    }
    break;
  case KZ_TOPO_FAULT_KILL:
    for (size_t i = 0; i < r->nwraps && !rc; i++) {
      const struct proc_wrap *w = &r->wraps[i];
      if (w->host != f->host || (f->role >= 0 && w->role != f->role)) continue;
      if ((rc = kz_sim_proc_kill_at(w->proc, f->at_ns, f->until_ns)))
        rc = fail(r, rc, "kill: %s", kz_strerror(rc));
    }
    break;
  }
  return rc;
}

static int add_proc(struct run *r, size_t host, int role, const void *cfg, struct proc_wrap **out) {
  const struct kz_sim_run_role *row = kz_sim_run_role_get((enum kz_topo_role)role);
  struct proc_wrap *w = &r->wraps[r->nwraps++];
  w->run = r;
  w->inner = row->app;
  w->cfg = cfg;
  w->host = host;
  w->role = role;
  if (!r->apps[role].start) {
    r->apps[role].name = row->app->name; /* the CPU model's cost row follows the role's own app name */
    r->apps[role].start = wrap_start;
    r->apps[role].stop = wrap_stop;
  }
  int rc = kz_sim_proc_add(r->hosts[host], kz_topo_role_name((enum kz_topo_role)role), &r->apps[role], w,
                           &w->proc);
  if (rc)
    return fail(r, rc, "cannot start %s on %s: %s", kz_topo_role_name((enum kz_topo_role)role),
                r->t->hosts[host].name, kz_strerror(rc));
  if (out) *out = w;
  return 0;
}

static uint64_t planned_calls(const struct run *r) {
  const struct kz_sim_run_opts *o = r->o;
  if (o->swarm) return r->swarm.calls;
  if (o->calls) return o->calls;
  uint64_t dur = o->duration_ns ? o->duration_ns : 10 * SEC;
  uint32_t rate = o->rate ? o->rate : 10, period = o->rate_period_ms ? o->rate_period_ms : 1000;
  uint64_t n = dur / MS * rate / period;
  return n ? n : 1;
}

static uint32_t run_rate(const struct run *r) {
  if (r->o->swarm) return r->swarm.rate;
  return r->o->rate ? r->o->rate : 10;
}

static int install(struct run *r) {
  const struct kz_topo *t = r->t;
  int rc;
  /* Servers first, in host order and role order. */
  for (size_t h = 0; h < t->nhosts; h++)
    for (int role = 0; role < KZ_TOPO_SIPP_UAC; role++) {
      if (!(t->hosts[h].roles & (1u << role))) continue;
      const struct kz_sim_run_role *row = kz_sim_run_role_get((enum kz_topo_role)role);
      void *cfg = NULL;
      if (row->build_cfg) {
        struct kz_sim_run_role_ctx ctx = {t, h, r->o};
        if ((rc = row->build_cfg(&ctx, &cfg)))
          return fail(r, rc, "configuring %s on %s: %s", kz_topo_role_name((enum kz_topo_role)role), t->hosts[h].name,
                      kz_strerror(rc));
      }
      r->role_cfgs[r->nwraps] = cfg;
      if ((rc = add_proc(r, h, role, cfg, NULL))) return rc;
    }
  /* Where UACs send: proxies, else media servers, else SIPp UASes. */
  size_t entries[256], nentries = 0;
  static const int entry_roles[] = {KZ_TOPO_PROXY, KZ_TOPO_MEDIA, KZ_TOPO_SIPP_UAS};
  for (size_t k = 0; k < 3 && !nentries; k++)
    for (size_t h = 0; h < t->nhosts && nentries < 256; h++)
      if (t->hosts[h].roles & (1u << entry_roles[k])) entries[nentries++] = h;
  size_t nuac = 0;
  for (size_t h = 0; h < t->nhosts; h++) nuac += (t->hosts[h].roles >> KZ_TOPO_SIPP_UAC) & 1;
  if (!nuac) return fail(r, KZ_EINVAL, "%s has no sipp-uac host: nothing would place calls", t->file);
  if (!nentries) return fail(r, KZ_EINVAL, "%s: the sipp-uac hosts have nowhere to call (no proxy, media or sipp-uas host)", t->file);
  /* UASes, then UACs (a UAC sends its first INVITE as it starts). */
  const struct kz_sim_run_opts *o = r->o;
  uint64_t planned = planned_calls(r);
  size_t uac_i = 0;
  for (int pass = 0; pass < 2; pass++)
    for (size_t h = 0; h < t->nhosts; h++) {
      int role = pass ? KZ_TOPO_SIPP_UAC : KZ_TOPO_SIPP_UAS;
      if (!(t->hosts[h].roles & (1u << role))) continue;
      struct endpoint *e = &r->eps[r->neps++];
      e->uac = pass == 1;
      e->sc = e->uac ? r->uac_sc : r->uas_sc;
      struct kz_sipp_cfg *c = &e->cfg;
      c->scenario = e->sc;
      c->role = e->uac ? KZ_SIPP_UAC : KZ_SIPP_UAS;
      c->local = t->hosts[h].addr;
      c->local.port = SIP_PORT;
      c->service = o->service;
      c->pause_ms = o->swarm ? r->swarm.pause_ms : 0;
      if (e->uac) {
        size_t target = entries[uac_i++ % nentries];
        c->remote = t->hosts[target].addr;
        c->remote.port = SIP_PORT;
        c->rate = run_rate(r);
        c->rate_period_ms = o->swarm ? 1000 : o->rate_period_ms;
        c->max_calls = planned;
        c->call_limit = o->call_limit;
        c->call_timeout_ms = o->call_timeout_ms;
        c->inf = r->inf;
        c->inf_len = r->inf_len;
        e->planned = planned;
      }
      r->role_cfgs[r->nwraps] = NULL;
      if ((rc = add_proc(r, h, role, c, &e->w))) return rc;
    }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Sampling */

static void fold(struct kz_sipp_stats *base, const struct kz_sipp_stats *s) {
  base->calls_created += s->calls_created;
  base->calls_successful += s->calls_successful;
  base->calls_failed += s->calls_failed;
  for (int i = 0; i < KZ_SIPP_FAIL_COUNT; i++) base->failed[i] += s->failed[i];
  base->retransmissions += s->retransmissions;
  base->out_of_call += s->out_of_call;
  base->dead_call += s->dead_call;
  base->parse_errors += s->parse_errors;
  base->calls_refused += s->calls_refused;
}

static int sample(struct run *r, uint64_t now) {
  int rc = 0;
  for (size_t i = 0; i < r->neps && !rc; i++) {
    struct endpoint *e = &r->eps[i];
    const void *inst = inner_instance(e->w);
    if (inst != e->inst) {
      /* A new boot (or the host went down): its counters start over. */
      fold(&e->base, &e->last);
      memset(&e->last, 0, sizeof e->last);
      e->inst = inst;
    }
    if (!inst) continue;
    const struct kz_sipp_stats *s = kz_sipp_stats(inst);
    if (s->retransmissions) r->retrans_seen = true;
    if (e->uac) {
      uint64_t d;
      if ((d = s->calls_created - e->last.calls_created)) rc = kz_sim_report_series_add(r->s_started, now, d);
      if (!rc && (d = s->calls_successful - e->last.calls_successful)) rc = kz_sim_report_series_add(r->s_ok, now, d);
      if (!rc && (d = s->calls_failed - e->last.calls_failed)) rc = kz_sim_report_series_add(r->s_failed, now, d);
      /* Response times: SIPp keeps a sum and a count per rtd; each tick's
       * new ones are spread evenly over the tick's count (exact when one
       * response completes per 10 ms tick, the tick's mean otherwise). */
      if (!rc && s->nrtd > 0 && s->rtd[0].n > e->last.rtd[0].n) {
        uint64_t dn = s->rtd[0].n - e->last.rtd[0].n, dsum = s->rtd[0].sum_ms - e->last.rtd[0].sum_ms;
        for (uint64_t k = 0; k < dn && !rc; k++)
          rc = kz_sim_report_series_add(r->s_rt, now, dsum / dn + (k < dsum % dn ? 1 : 0));
      }
    }
    e->last = *s;
  }
  if (!rc) rc = kz_sim_report_series_extend(r->s_started, now);
  if (!rc) rc = kz_sim_report_series_extend(r->s_ok, now);
  if (!rc) rc = kz_sim_report_series_extend(r->s_failed, now);
  if (!rc) rc = kz_sim_report_series_extend(r->s_rt, now);
  return rc;
}

static bool all_done(const struct run *r) {
  for (size_t i = 0; i < r->neps; i++) {
    const struct endpoint *e = &r->eps[i];
    const void *inst = inner_instance(e->w);
    if (!inst) return false;
    if (e->uac ? !kz_sipp_done(inst) : kz_sipp_stats(inst)->calls_current != 0) return false;
  }
  return true;
}

static void totals(const struct endpoint *e, struct kz_sipp_stats *out) {
  *out = e->last;
  fold(out, &e->base);
}

/* ------------------------------------------------------------------ */
/* Replay command */

static void append_arg(char *buf, size_t len, const char *a) {
  size_t off = strlen(buf);
  bool plain = *a != 0;
  for (const char *p = a; *p && plain; p++)
    plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-_./=:,+@%", *p);
  if (plain) {
    snprintf(buf + off, len - off, " %s", a);
    return;
  }
  /* Single quotes; a ' inside becomes '\''. */
  off += (size_t)snprintf(buf + off, len - off, " '");
  for (const char *p = a; *p && off + 5 < len; p++) {
    if (*p == '\'') off += (size_t)snprintf(buf + off, len - off, "'\\''");
    else buf[off++] = *p, buf[off] = 0;
  }
  snprintf(buf + off, len - off, "'");
}

static void build_replay(const struct run *r, char *buf, size_t len) {
  const struct kz_sim_run_opts *o = r->o;
  char num[64];
  snprintf(buf, len, "%s sim", o->argv0 ? o->argv0 : "kz");
  append_arg(buf, len, "--topology");
  append_arg(buf, len, o->topology_path ? o->topology_path : r->t->file);
  append_arg(buf, len, "--uac");
  append_arg(buf, len, o->uac_path ? o->uac_path : "?");
  append_arg(buf, len, "--uas");
  append_arg(buf, len, o->uas_path ? o->uas_path : "?");
  snprintf(num, sizeof num, "%" PRIu64, o->seed);
  append_arg(buf, len, "--seed");
  append_arg(buf, len, num);
  if (o->swarm) {
    append_arg(buf, len, "--swarm");
  } else {
    snprintf(num, sizeof num, "%u", run_rate(r));
    append_arg(buf, len, "--rate");
    append_arg(buf, len, num);
    if (o->rate_period_ms && o->rate_period_ms != 1000) {
      snprintf(num, sizeof num, "%u", o->rate_period_ms);
      append_arg(buf, len, "--rate-period");
      append_arg(buf, len, num);
    }
    snprintf(num, sizeof num, "%" PRIu64, planned_calls(r));
    append_arg(buf, len, "--calls");
    append_arg(buf, len, num);
  }
  if (o->buggify != o->swarm) append_arg(buf, len, o->buggify ? "--buggify" : "--no-buggify");
  if (o->call_limit) {
    snprintf(num, sizeof num, "%u", o->call_limit);
    append_arg(buf, len, "--call-limit");
    append_arg(buf, len, num);
  }
  if (o->call_timeout_ms) {
    snprintf(num, sizeof num, "%u.%03u", o->call_timeout_ms / 1000, o->call_timeout_ms % 1000);
    append_arg(buf, len, "--call-timeout");
    append_arg(buf, len, num);
  }
  if (o->service) {
    append_arg(buf, len, "--service");
    append_arg(buf, len, o->service);
  }
  for (size_t i = 0; i < o->nkeys; i++) {
    append_arg(buf, len, "--key");
    append_arg(buf, len, o->keys[i].name);
    append_arg(buf, len, o->keys[i].value);
  }
  if (o->inf_path) {
    append_arg(buf, len, "--inf");
    append_arg(buf, len, o->inf_path);
  }
  if (o->allow_failed_calls && !o->swarm) append_arg(buf, len, "--allow-failed-calls");
  if (o->max_sim_ns) {
    snprintf(num, sizeof num, "%" PRIu64 ".%09" PRIu64, o->max_sim_ns / SEC, o->max_sim_ns % SEC);
    append_arg(buf, len, "--max-time");
    append_arg(buf, len, num);
  }
}

/* ------------------------------------------------------------------ */
/* The report */

static void command_labels(const struct kz_sipp_scenario *sc, struct kz_sim_report_msg *msgs, size_t n) {
  struct kz_buf b;
  kz_buf_init(&b);
  if (kz_sipp_scenario_describe(sc, &b) || !b.data) {
    kz_buf_free(&b);
    return;
  }
  /* Tokens separated by spaces; "L:x" are labels, not commands. */
  size_t i = 0;
  for (char *tok = strtok((char *)b.data, " "); tok && i < n; tok = strtok(NULL, " ")) {
    if (!strncmp(tok, "L:", 2)) continue;
    snprintf(msgs[i].label, sizeof msgs[i].label, "%s", tok);
    i++;
  }
  kz_buf_free(&b);
}

static int capture_msgs(struct run *r) {
  for (size_t i = 0; i < r->neps; i++) {
    struct endpoint *e = &r->eps[i];
    const void *inst = inner_instance(e->w);
    if (!inst) continue;
    size_t n;
    const struct kz_sipp_msg_stats *m = kz_sipp_msg_stats(inst, &n);
    if (!n) continue;
    e->msgs = kz_calloc(n, sizeof *e->msgs);
    if (!e->msgs) return KZ_ENOMEM;
    e->nmsgs = n;
    for (size_t k = 0; k < n; k++) e->msgs[k].st = m[k];
    command_labels(e->sc, e->msgs, n);
  }
  return 0;
}

static int fill_report(struct run *r, struct kz_sim_report *rep, uint64_t planned) {
  const struct kz_sim_run_opts *o = r->o;
  const struct kz_topo *t = r->t;
  struct kz_sim_run_result *res = r->res;
  rep->topology = t->name;
  rep->seed = o->seed;
  rep->trace_hash = res->trace_hash;
  rep->sim_ns = res->sim_ns;
  rep->wall_seconds = res->wall_seconds;
  rep->calls_attempted = res->calls_attempted;
  rep->calls_succeeded = res->calls_succeeded;
  rep->calls_failed = res->calls_failed;
  rep->passed = res->passed;
  snprintf(rep->verdict, sizeof rep->verdict, "%s", res->verdict);
  snprintf(rep->replay, sizeof rep->replay, "%s", res->replay);
  rep->s_started = r->s_started;
  rep->s_succeeded = r->s_ok;
  rep->s_failed = r->s_failed;
  rep->s_response_ms = r->s_rt;
  int rc = kz_sim_report_config(rep, "topology", "%s (%s)", t->name, o->topology_path ? o->topology_path : t->file);
  if (!rc && t->description[0]) rc = kz_sim_report_config(rep, "description", "%s", t->description);
  if (!rc) rc = kz_sim_report_config(rep, "hosts", "%zu", t->nhosts);
  for (size_t h = 0; h < t->nhosts && !rc; h++) {
    char ip[KZ_ADDR_STRLEN], roles[160] = "", key[64];
    kz_addr_format_ip(&t->hosts[h].addr, ip, sizeof ip);
    for (int k = 0; k < KZ_TOPO_ROLE_COUNT; k++)
      if (t->hosts[h].roles & (1u << k))
        snprintf(roles + strlen(roles), sizeof roles - strlen(roles), "%s%s", roles[0] ? ", " : "",
                 kz_topo_role_name((enum kz_topo_role)k));
    snprintf(key, sizeof key, "host %s", t->hosts[h].name);
    rc = kz_sim_report_config(rep, key, "%s, %u cores: %s", ip, t->hosts[h].cores, roles[0] ? roles : "(no role)");
  }
  if (!rc) rc = kz_sim_report_config(rep, "uac scenario", "%s", o->uac_path);
  if (!rc) rc = kz_sim_report_config(rep, "uas scenario", "%s", o->uas_path);
  if (!rc) rc = kz_sim_report_config(rep, "rate", "%u calls per %u ms per UAC", run_rate(r),
                                     o->swarm || !o->rate_period_ms ? 1000 : o->rate_period_ms);
  if (!rc) rc = kz_sim_report_config(rep, "calls", "%" PRIu64 " per UAC", planned);
  if (!rc && o->call_limit) rc = kz_sim_report_config(rep, "call limit", "%u", o->call_limit);
  if (!rc && o->call_timeout_ms) rc = kz_sim_report_config(rep, "call timeout", "%u ms", o->call_timeout_ms);
  if (!rc && o->inf_path) rc = kz_sim_report_config(rep, "injection file", "%s", o->inf_path);
  if (!rc) rc = kz_sim_report_config(rep, "link paths configured", "%zu", t->npaths);
  if (!rc) rc = kz_sim_report_config(rep, "faults", "%zu from the topology, %zu from swarm", t->nfaults, r->swarm.nfaults);
  if (!rc) rc = kz_sim_report_config(rep, "swarm", "%s", o->swarm ? "on" : "off");
  if (!rc && o->swarm) {
    const struct kz_topo_link *l = &r->swarm.link;
    rc = kz_sim_report_config(rep, "swarm link",
                              "latency %" PRIu64 " us, jitter %" PRIu64 " us, loss %u ppm, duplicate %u ppm, "
                              "reorder %u ppm (+%" PRIu64 " us)",
                              l->latency_ns / 1000, l->jitter_ns / 1000, l->loss_ppm, l->dup_ppm, l->reorder_ppm,
                              l->reorder_ns / 1000);
    if (!rc) rc = kz_sim_report_config(rep, "swarm pause", "%u ms", r->swarm.pause_ms);
    for (size_t i = 0; i < r->swarm.nfaults && !rc; i++) {
      const struct kz_topo_fault *f = &r->swarm.faults[i];
      static const char *const kinds[KZ_TOPO_FAULT_KINDS] = {"crash", "restart", "partition", "skew", "stall",
                                                             "kill"};
      char key[48];
      snprintf(key, sizeof key, "swarm fault %zu", i + 1);
      if (f->kind == KZ_TOPO_FAULT_PARTITION)
        rc = kz_sim_report_config(rep, key, "partition %s %s %s from %" PRIu64 " ms to %" PRIu64 " ms",
                                  t->hosts[f->side_a[0]].name, f->oneway ? "->" : "<->", t->hosts[f->side_b[0]].name,
                                  f->at_ns / MS, f->until_ns / MS);
      else if (f->kind == KZ_TOPO_FAULT_SKEW)
        rc = kz_sim_report_config(rep, key, "skew %s by %" PRId64 " ms at %" PRIu64 " ms", t->hosts[f->host].name,
                                  f->skew_ns / (int64_t)MS, f->at_ns / MS);
      else
        rc = kz_sim_report_config(rep, key, "%s %s from %" PRIu64 " ms to %" PRIu64 " ms", kinds[f->kind],
                                  t->hosts[f->host].name, f->at_ns / MS, f->until_ns / MS);
    }
  }
  if (!rc) rc = kz_sim_report_config(rep, "buggify", "%s", o->buggify ? "on" : "off");
  for (size_t i = 0; i < kz_sim_hooks_site_count(r->hooks) && !rc; i++) {
    const struct kz_sim_hooks_site *s = kz_sim_hooks_site_at(r->hooks, i);
    char key[128];
    snprintf(key, sizeof key, "buggify %.100s", s->name);
    rc = kz_sim_report_config(rep, key, "%s, fired %" PRIu64 " of %" PRIu64, s->enabled ? "enabled" : "disabled",
                              s->fired, s->evaluations);
  }
  for (size_t i = 0; i < r->neps && !rc; i++) {
    struct endpoint *e = &r->eps[i];
    struct kz_sim_report_endpoint ep;
    memset(&ep, 0, sizeof ep);
    snprintf(ep.name, sizeof ep.name, "%s", kz_topo_role_name((enum kz_topo_role)e->w->role));
    snprintf(ep.host, sizeof ep.host, "%s", t->hosts[e->w->host].name);
    snprintf(ep.role, sizeof ep.role, "%s", e->uac ? "uac" : "uas");
    snprintf(ep.scenario, sizeof ep.scenario, "%s", e->uac ? o->uac_path : o->uas_path);
    totals(e, &ep.stats);
    ep.msgs = e->msgs;
    ep.nmsgs = e->nmsgs;
    /* The report owns the counters once added. */
    if (!(rc = kz_sim_report_add_endpoint(rep, &ep))) {
      e->msgs = NULL;
      e->nmsgs = 0;
    }
  }
  size_t nc;
  const struct kz_sim_hooks_check *cs = kz_sim_hooks_checks(r->hooks, &nc);
  for (size_t i = 0; i < nc && !rc; i++) {
    struct kz_sim_report_check c = {.always = cs[i].always, .evaluations = cs[i].evaluations,
                                    .true_count = cs[i].true_count, .first_false_ns = cs[i].first_false_ns};
    snprintf(c.name, sizeof c.name, "%.63s", cs[i].name);
    rc = kz_sim_report_add_check(rep, &c);
  }
  return rc;
}

/* ------------------------------------------------------------------ */

#define CHECK_ENDED "every SIPp call ended"
#define CHECK_PLACED "every planned call was placed"
#define CHECK_SIM_OK "the simulator never failed"
#define CHECK_NO_LEAK "no kz allocation outlives the simulator"
#define CHECK_RETRANS "a SIP message was retransmitted"
#define CHECK_CALL_OK "a call succeeded"

static void free_run(struct run *r) {
  if (r->sim) kz_sim_free(r->sim);
  r->sim = NULL;
  for (size_t i = 0; i < r->nwraps; i++) {
    const struct kz_sim_run_role *row = kz_sim_run_role_get((enum kz_topo_role)r->wraps[i].role);
    if (r->role_cfgs[i] && row->free_cfg) row->free_cfg(r->role_cfgs[i]);
  }
  kz_free(r->wraps);
  kz_free(r->role_cfgs);
  for (size_t i = 0; r->eps && i < r->neps; i++) kz_free(r->eps[i].msgs);
  kz_free(r->eps);
  kz_free(r->acts);
  kz_free(r->hosts);
  kz_free(r->skew);
  kz_sipp_scenario_free(r->uac_sc);
  kz_sipp_scenario_free(r->uas_sc);
  kz_free(r->inf);
  kz_sim_report_series_free(r->s_started);
  kz_sim_report_series_free(r->s_ok);
  kz_sim_report_series_free(r->s_failed);
  kz_sim_report_series_free(r->s_rt);
  kz_sim_hooks_end(r->hooks);
}

static int64_t bookkeeping_blocks(const struct run *r) {
  int64_t msgs = 0;
  for (size_t i = 0; i < r->neps; i++) msgs += r->eps[i].msgs != NULL;
  return msgs + kz_sim_hooks_blocks(r->hooks) + kz_sim_report_series_blocks(r->s_started) +
         kz_sim_report_series_blocks(r->s_ok) + kz_sim_report_series_blocks(r->s_failed) +
         kz_sim_report_series_blocks(r->s_rt);
}

int kz_sim_run(const struct kz_topo *t, const struct kz_sim_run_opts *o, struct kz_sim_run_result *res) {
  memset(res, 0, sizeof *res);
  res->seed = o->seed;
  struct run run;
  memset(&run, 0, sizeof run);
  struct run *r = &run;
  r->t = t;
  r->o = o;
  r->res = res;
  FILE *trace_f = NULL, *pcap_f = NULL;
  double wall0 = wall_now();
  int rc = 0;
  struct kz_topo_err terr;
  if ((rc = kz_sim_run_check_roles(t, &terr))) {
    snprintf(res->error, sizeof res->error, "%s", terr.text);
    return rc;
  }
  if (o->swarm) run_swarm_draw(t, o->seed, &r->swarm);
  uint64_t planned = planned_calls(r);
  res->rate = run_rate(r);
  res->calls_per_uac = planned;
  size_t nfaults = t->nfaults + r->swarm.nfaults;
  r->cap_acts = 2 * nfaults + 2;
  r->hosts = kz_calloc(t->nhosts, sizeof *r->hosts);
  r->skew = kz_calloc(t->nhosts, sizeof *r->skew);
  r->wraps = kz_calloc(t->nhosts * KZ_TOPO_ROLE_COUNT, sizeof *r->wraps);
  r->role_cfgs = kz_calloc(t->nhosts * KZ_TOPO_ROLE_COUNT, sizeof *r->role_cfgs);
  r->eps = kz_calloc(t->nhosts * 2, sizeof *r->eps);
  r->acts = kz_calloc(r->cap_acts, sizeof *r->acts);
  uint64_t bucket = o->bucket_ns ? o->bucket_ns : SEC;
  if (!r->hosts || !r->skew || !r->wraps || !r->role_cfgs || !r->eps || !r->acts ||
      kz_sim_report_series_new(&r->s_started, bucket) || kz_sim_report_series_new(&r->s_ok, bucket) ||
      kz_sim_report_series_new(&r->s_failed, bucket) || kz_sim_report_series_new(&r->s_rt, bucket)) {
    rc = fail(r, KZ_ENOMEM, "out of memory");
    goto out;
  }
  if ((rc = load_scenario(r, "uac", o->uac_path, &r->uac_sc)) || (rc = load_scenario(r, "uas", o->uas_path, &r->uas_sc)))
    goto out;
  if (o->inf_path && (rc = read_file(r, "injection file", o->inf_path, &r->inf, &r->inf_len))) goto out;
  if (o->out_dir && kz_sim_os_mkdir_p(o->out_dir)) {
    rc = fail(r, KZ_EIO, "cannot create %s: %s", o->out_dir, strerror(errno));
    goto out;
  }
  if ((rc = kz_sim_hooks_begin(&r->hooks, o->seed, o->buggify, hooks_now, r))) {
    rc = fail(r, rc, rc == KZ_EBUSY ? "another simulated run is active in this process" : "out of memory");
    goto out;
  }
  static const char *const declared[][2] = {{CHECK_ENDED, "a"},   {CHECK_PLACED, "a"}, {CHECK_SIM_OK, "a"},
                                            {CHECK_STOP_CLEAN, "a"}, {CHECK_NO_LEAK, "a"}, {CHECK_CALL_OK, "s"},
                                            {CHECK_RETRANS, "s"}};
  for (size_t i = 0; i < sizeof declared / sizeof declared[0] && !rc; i++)
    rc = kz_sim_hooks_declare(r->hooks, declared[i][0], declared[i][1][0] == 'a');
  if (rc) {
    rc = fail(r, rc, "out of memory");
    goto out;
  }

  /* Everything the simulator and the roles allocate from here on must be
   * gone once kz_sim_free returns; the run's own bookkeeping (hooks,
   * series) is counted out. */
  int64_t live0 = kz_mem_live_blocks() - bookkeeping_blocks(r);
  if ((rc = kz_sim_new(&r->sim, o->seed))) {
    rc = fail(r, rc, "out of memory");
    goto out;
  }
  if (o->out_dir && o->write_trace) {
    char p[4200];
    snprintf(p, sizeof p, "%s/trace.jsonl", o->out_dir);
    if (!(trace_f = fopen(p, "w"))) {
      rc = fail(r, KZ_EIO, "cannot write %s: %s", p, strerror(errno));
      goto out;
    }
    kz_sim_set_trace_file(r->sim, trace_f);
  }
  if (o->out_dir && o->write_pcap) {
    char p[4200];
    snprintf(p, sizeof p, "%s/traffic.pcap", o->out_dir);
    if (!(pcap_f = fopen(p, "wb")) || kz_sim_set_pcap_file(r->sim, pcap_f)) {
      rc = fail(r, KZ_EIO, "cannot write %s", p);
      goto out;
    }
  }
  for (size_t h = 0; h < t->nhosts; h++) {
    const struct kz_topo_host *th = &t->hosts[h];
    if ((rc = kz_sim_host_add(r->sim, th->name, &th->addr, &r->hosts[h]))) {
      rc = fail(r, rc, "host %s: %s", th->name, kz_strerror(rc));
      goto out;
    }
    if ((rc = kz_sim_host_set_cores(r->hosts[h], th->cores)) ||
        (rc = kz_sim_host_set_crash_mode(r->hosts[h], th->crash_mode == KZ_TOPO_CRASH_TORN ? KZ_SIM_CRASH_TORN
                                                                                          : KZ_SIM_CRASH_REVERT))) {
      rc = fail(r, rc, "host %s: %s", th->name, kz_strerror(rc));
      goto out;
    }
  }
  if ((rc = build_links(r)) || (rc = install(r))) goto out;
  for (size_t i = 0; i < t->nfaults && !rc; i++) rc = apply_fault(r, &t->faults[i]);
  for (size_t i = 0; i < r->swarm.nfaults && !rc; i++) rc = apply_fault(r, &r->swarm.faults[i]);
  if (rc) goto out;
  build_replay(r, res->replay, sizeof res->replay);

  /* Run: 10 ms of virtual time at a time, sampling the SIPp counters. */
  uint32_t period = o->swarm || !o->rate_period_ms ? 1000 : o->rate_period_ms;
  uint64_t placing = planned * period / res->rate * MS;
  uint64_t max_ns = o->max_sim_ns ? o->max_sim_ns : placing + 120 * SEC;
  struct kz_sim_progress pr;
  kz_sim_progress_init(&pr, o->progress, placing + 2 * SEC < max_ns ? placing + 2 * SEC : max_ns, o->progress_tty, 10);
  int sim_rc = 0;
  uint64_t now = 0;
  struct kz_sim_stats st;
  for (;;) {
    now += TICK_NS;
    if ((sim_rc = kz_sim_run_until(r->sim, now)) < 0) break;
    if ((rc = sample(r, now))) {
      rc = fail(r, rc, "out of memory");
      goto out;
    }
    uint64_t created = 0;
    for (size_t i = 0; i < r->neps; i++)
      if (r->eps[i].uac) created += r->eps[i].base.calls_created + r->eps[i].last.calls_created;
    kz_sim_stats(r->sim, &st);
    kz_sim_progress_update(&pr, now, st.events, created);
    if (all_done(r) || now >= max_ns || kz_sim_pending_events(r->sim) == 0) break;
  }
  kz_sim_stats(r->sim, &st);
  kz_sim_check_always(sim_rc >= 0, CHECK_SIM_OK);
  res->sim_ns = kz_sim_now(r->sim);
  res->events = st.events;
  res->trace_hash = kz_sim_trace_hash(r->sim);
  for (size_t i = 0; i < r->neps; i++) {
    struct endpoint *e = &r->eps[i];
    struct kz_sipp_stats s;
    totals(e, &s);
    const void *inst = inner_instance(e->w);
    kz_sim_check_always(inst && kz_sipp_stats(inst)->calls_current == 0, CHECK_ENDED);
    if (!e->uac) continue;
    kz_sim_check_always(s.calls_created >= e->planned, CHECK_PLACED);
    kz_sim_check_sometimes(s.calls_successful > 0, CHECK_CALL_OK);
    res->calls_attempted += s.calls_created;
    res->calls_succeeded += s.calls_successful;
    res->calls_failed += s.calls_failed;
  }
  kz_sim_check_sometimes(r->retrans_seen, CHECK_RETRANS);
  if ((rc = capture_msgs(r))) {
    rc = fail(r, rc, "out of memory");
    goto out;
  }
  kz_sim_progress_finish(&pr, res->sim_ns, st.events, res->calls_attempted);

  /* Stopping every process runs the wrapper's handle checks. */
  struct kz_sim_report rep;
  kz_sim_report_init(&rep);
  rep.net = st;
  kz_sim_free(r->sim);
  r->sim = NULL;
  for (size_t i = 0; i < r->nwraps; i++) {
    const struct kz_sim_run_role *row = kz_sim_run_role_get((enum kz_topo_role)r->wraps[i].role);
    if (r->role_cfgs[i] && row->free_cfg) row->free_cfg(r->role_cfgs[i]);
    r->role_cfgs[i] = NULL;
  }
  int64_t leaked = kz_mem_live_blocks() - bookkeeping_blocks(r) - live0;
  kz_sim_check_always(leaked == 0, CHECK_NO_LEAK);

  res->checks_failed = kz_sim_hooks_failed(r->hooks);
  res->wall_seconds = wall_now() - wall0;
  if (res->checks_failed) {
    size_t nc;
    const struct kz_sim_hooks_check *cs = kz_sim_hooks_checks(r->hooks, &nc);
    const char *first = "?";
    for (size_t i = 0; i < nc; i++)
      if (cs[i].always && cs[i].true_count != cs[i].evaluations) {
        first = cs[i].name;
        break;
      }
    snprintf(res->verdict, sizeof res->verdict, "%zu check%s failed, first: %s", res->checks_failed,
             res->checks_failed == 1 ? "" : "s", first);
  } else if (res->calls_failed && !o->allow_failed_calls) {
    snprintf(res->verdict, sizeof res->verdict, "%" PRIu64 " of %" PRIu64 " calls failed", res->calls_failed,
             res->calls_attempted);
  } else {
    res->passed = true;
    snprintf(res->verdict, sizeof res->verdict, "%" PRIu64 " calls placed, %" PRIu64 " succeeded, %" PRIu64 " failed%s",
             res->calls_attempted, res->calls_succeeded, res->calls_failed,
             res->calls_failed ? " (allowed)" : "");
  }
  rc = fill_report(r, &rep, planned);
  if (!rc && o->out_dir) {
    char err[512];
    if ((rc = kz_sim_report_write_dir(&rep, o->out_dir, err, sizeof err))) fail(r, rc, "%s", err);
  } else if (rc) {
    fail(r, rc, "out of memory");
  }
  if (!rc && o->summary) kz_sim_report_print(&rep, o->summary);
  kz_sim_report_free(&rep);
out:
  free_run(r);
  if (trace_f) fclose(trace_f);
  if (pcap_f) fclose(pcap_f);
  return rc;
}
