/* test_sim.c — Check suite for the simulator: time, timers, UDP, streams, storage, crash/restart, echo example. */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/buf.h"
#include "kz/echo.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sim.h"
#include "kz/sim_echo.h"
#include "kz_test.h"
#include "trace_rehash.h"

#define MS UINT64_C(1000000)
/* Datagrams seed 1 loses of 10,000 at 10% (test_loss_rate_10k). */
#define LOSS_SEED1 1045

/* ------------------------------------------------------------------ */
/* A probe app: binds what its cfg says and writes every callback it gets
 * into a log owned by the test (so the log survives crashes).  Tests
 * drive it between simulator steps through the probe_* helpers. */

#define PROBE_MAX_STREAMS 8

struct probe_cfg {
  const char *name;
  struct kz_buf *log;
  uint16_t udp_port;  /* 0: no socket */
  uint16_t tcp_port;  /* 0: no listener */
  const char *greeting; /* written on every accepted stream */
  bool storage;       /* run the storage script at start */
  bool leak_udp;      /* stop forgets to close the socket */
  int n_timers;       /* timers at 3 ms, 5 ms, 5 ms, ... */
};

struct probe;

/* Each timer logs its index. */
struct timer_arg {
  struct probe *p;
  int i;
};

struct probe {
  struct kz_env *env;
  const struct probe_cfg *cfg;
  struct kz_udp *udp;
  struct kz_listener *l;
  struct kz_stream *s[PROBE_MAX_STREAMS];
  int n_s;
  struct kz_timer timers[4];
  struct timer_arg targs[4];
  struct kz_file *held; /* a file left open until stop */
};

static void plog(struct probe *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void plog(struct probe *p, const char *fmt, ...) {
  kz_buf_printf(p->cfg->log, "%" PRIu64 " %s ", kz_env_now(p->env), p->cfg->name);
  va_list ap;
  va_start(ap, fmt);
  kz_buf_vprintf(p->cfg->log, fmt, ap);
  va_end(ap);
  kz_buf_append_cstr(p->cfg->log, "\n");
}

static int stream_idx(struct probe *p, struct kz_stream *s) {
  for (int i = 0; i < p->n_s; i++)
    if (p->s[i] == s) return i;
  return -1;
}

static void on_connect(void *arg, struct kz_stream *s) {
  struct probe *p = arg;
  plog(p, "connect s%d", stream_idx(p, s));
}

static void on_data(void *arg, struct kz_stream *s, const uint8_t *data, size_t len) {
  struct probe *p = arg;
  plog(p, "data s%d '%.*s'", stream_idx(p, s), (int)len, (const char *)data);
}

static void on_close(void *arg, struct kz_stream *s, int status) {
  struct probe *p = arg;
  plog(p, "close s%d %s", stream_idx(p, s), kz_err_name(status));
}

static const struct kz_stream_cbs probe_cbs = {on_connect, on_data, on_close};

static void on_accept(void *arg, struct kz_listener *l, struct kz_stream *s) {
  struct probe *p = arg;
  (void)l;
  ck_assert_int_lt(p->n_s, PROBE_MAX_STREAMS);
  p->s[p->n_s++] = s;
  kz_stream_set_cbs(s, &probe_cbs, p);
  char peer[KZ_ADDR_STRLEN];
  kz_addr_format(&s->peer, peer, sizeof peer);
  plog(p, "accept s%d from %s", p->n_s - 1, peer);
  if (p->cfg->greeting)
    ck_assert_int_eq(kz_stream_write(s, p->cfg->greeting, strlen(p->cfg->greeting)), 0);
}

static void on_recv(void *arg, struct kz_udp *u, const struct kz_addr *from, const uint8_t *data,
                    size_t len) {
  struct probe *p = arg;
  (void)u;
  char a[KZ_ADDR_STRLEN];
  kz_addr_format(from, a, sizeof a);
  plog(p, "udp from %s '%.*s'", a, (int)len, (const char *)data);
}

static void file_put(struct kz_env *env, const char *path, const char *content, bool sync) {
  struct kz_file *f = NULL;
  ck_assert_int_eq(kz_file_open(env, path, KZ_FILE_WRITE | KZ_FILE_CREATE | KZ_FILE_TRUNC, &f), 0);
  ck_assert_int_eq(kz_file_write(f, 0, content, strlen(content)), 0);
  if (sync) ck_assert_int_eq(kz_file_sync(f), 0);
  kz_file_close(f);
}

static void file_show(struct probe *p, const char *path) {
  struct kz_file *f = NULL;
  int rc = kz_file_open(p->env, path, KZ_FILE_READ, &f);
  if (rc) {
    kz_buf_printf(p->cfg->log, " %s=-", path);
    return;
  }
  char buf[64];
  size_t n = 0;
  ck_assert_int_eq(kz_file_read(f, 0, buf, sizeof buf, &n), 0);
  kz_buf_printf(p->cfg->log, " %s=%.*s", path, (int)n, buf);
  kz_file_close(f);
}

/* The storage script: shows what survived, and on the first boot writes
 * files with every durability status. */
static void storage_script(struct probe *p) {
  kz_buf_printf(p->cfg->log, "%" PRIu64 " %s files:", kz_env_now(p->env), p->cfg->name);
  const char *names[] = {"a", "b", "c", "d", "d.tmp", "e", "dir/f"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) file_show(p, names[i]);
  kz_buf_append_cstr(p->cfg->log, "\n");
  bool exists = false;
  ck_assert_int_eq(kz_fs_exists(p->env, "a", &exists), 0);
  if (exists) return;
  file_put(p->env, "a", "synced-a", true);
  file_put(p->env, "b", "unsynced-b", false);
  file_put(p->env, "c", "v1", true);
  file_put(p->env, "d.tmp", "tmp-d", true);
  ck_assert_int_eq(kz_fs_rename(p->env, "d.tmp", "d"), 0);
  file_put(p->env, "e", "removed-e", true);
  ck_assert_int_eq(kz_fs_remove(p->env, "e"), 0);
  file_put(p->env, "dir/f", "f0", true);
  /* c: a newer version written but not synced, through a handle left
   * open until the crash. */
  ck_assert_int_eq(kz_file_open(p->env, "c", KZ_FILE_READ | KZ_FILE_WRITE, &p->held), 0);
  ck_assert_int_eq(kz_file_write(p->held, 0, "v2-unsynced", 11), 0);
}

static void probe_timer_fire(void *arg);

static int probe_start(struct kz_env *env, const void *cfgv, void **instance) {
  const struct probe_cfg *cfg = cfgv;
  struct probe *p = kz_calloc(1, sizeof *p);
  if (!p) return KZ_ENOMEM;
  p->env = env;
  p->cfg = cfg;
  int rc = 0;
  if (cfg->udp_port) {
    struct kz_addr a = kz_addr_v4(0, cfg->udp_port);
    rc = kz_udp_bind(env, &a, on_recv, p, &p->udp);
  }
  if (!rc && cfg->tcp_port) {
    struct kz_addr a = kz_addr_v4(0, cfg->tcp_port);
    rc = kz_stream_listen(env, &a, on_accept, p, &p->l);
  }
  for (int i = 0; !rc && i < cfg->n_timers && i < 4; i++) {
    struct timer_arg *ta = &p->targs[i];
    ta->p = p;
    ta->i = i;
    kz_timer_init(&p->timers[i], env, probe_timer_fire, ta);
    rc = kz_timer_start(&p->timers[i], i == 0 ? 3 * MS : 5 * MS);
  }
  if (rc) {
    kz_udp_close(p->udp);
    kz_listener_close(p->l);
    kz_free(p);
    return rc;
  }
  plog(p, "start");
  if (cfg->storage) storage_script(p);
  *instance = p;
  return 0;
}

static void probe_timer_fire(void *arg) {
  struct timer_arg *ta = arg;
  plog(ta->p, "timer %d", ta->i);
}

static void probe_stop(void *instance) {
  struct probe *p = instance;
  for (int i = 0; i < 4; i++)
    if (p->timers[i].env) kz_timer_stop(&p->timers[i]);
  for (int i = 0; i < p->n_s; i++) kz_stream_close(p->s[i]);
  if (!p->cfg->leak_udp) kz_udp_close(p->udp);
  kz_listener_close(p->l);
  kz_file_close(p->held);
  kz_free(p);
}

static const struct kz_sim_app probe_app = {"probe", probe_start, probe_stop};

static struct probe *P(struct kz_sim_proc *proc) {
  struct probe *p = kz_sim_proc_instance(proc);
  ck_assert_ptr_nonnull(p);
  return p;
}

static int probe_connect(struct kz_sim_proc *proc, uint32_t ip, uint16_t port) {
  struct probe *p = P(proc);
  struct kz_addr a = kz_addr_v4(ip, port);
  ck_assert_int_eq(kz_stream_connect(p->env, &a, &probe_cbs, p, &p->s[p->n_s]), 0);
  return p->n_s++;
}

static void probe_write(struct kz_sim_proc *proc, int i, const char *s) {
  ck_assert_int_eq(kz_stream_write(P(proc)->s[i], s, strlen(s)), 0);
}

/* Closes stream i and forgets it (the slot keeps its index). */
static void probe_close(struct kz_sim_proc *proc, int i) {
  struct probe *p = P(proc);
  kz_stream_close(p->s[i]);
  p->s[i] = NULL;
}

static void probe_send(struct kz_sim_proc *proc, uint32_t ip, uint16_t port, const char *s) {
  struct kz_addr a = kz_addr_v4(ip, port);
  ck_assert_int_eq(kz_udp_send(P(proc)->udp, &a, s, strlen(s)), 0);
}

#define IP_A 0x0a000001u /* 10.0.0.1 */
#define IP_B 0x0a000002u /* 10.0.0.2 */

struct two_hosts {
  struct kz_sim *sim;
  struct kz_sim_host *a, *b;
  struct kz_buf log;
  struct probe_cfg ca, cb;
  struct kz_sim_proc *pa, *pb;
};

static void two_hosts_init(struct two_hosts *t, uint64_t seed) {
  memset(t, 0, sizeof *t);
  ck_assert_int_eq(kz_sim_new(&t->sim, seed), 0);
  kz_sim_set_trace_memory(t->sim, true);
  struct kz_addr a = kz_addr_v4(IP_A, 0), b = kz_addr_v4(IP_B, 0);
  ck_assert_int_eq(kz_sim_host_add(t->sim, "a", &a, &t->a), 0);
  ck_assert_int_eq(kz_sim_host_add(t->sim, "b", &b, &t->b), 0);
  kz_buf_init(&t->log);
  t->ca = (struct probe_cfg){.name = "A", .log = &t->log, .udp_port = 5000};
  t->cb = (struct probe_cfg){.name = "B", .log = &t->log, .udp_port = 6000, .tcp_port = 7000};
}

static void two_hosts_start(struct two_hosts *t) {
  ck_assert_int_eq(kz_sim_proc_add(t->a, "pa", &probe_app, &t->ca, &t->pa), 0);
  ck_assert_int_eq(kz_sim_proc_add(t->b, "pb", &probe_app, &t->cb, &t->pb), 0);
}

static void two_hosts_free(struct two_hosts *t) {
  kz_sim_free(t->sim);
  kz_buf_free(&t->log);
}

static const char *logstr(struct two_hosts *t) {
  return t->log.len ? (const char *)t->log.data : "";
}

static bool trace_has(struct kz_sim *sim, const char *needle) {
  size_t len;
  const uint8_t *d = kz_sim_trace_data(sim, &len);
  size_t n = strlen(needle);
  for (size_t i = 0; i + n <= len; i++)
    if (!memcmp(d + i, needle, n)) return true;
  return false;
}

/* ------------------------------------------------------------------ */
/* Event order and virtual time */

struct order_rec {
  struct kz_sim *sim;
  char seen[64];
  size_t n;
  uint64_t times[16];
};

struct order_arg {
  struct order_rec *rec;
  char tag;
};

static void order_cb(struct kz_sim *sim, void *arg) {
  struct order_arg *oa = arg;
  oa->rec->times[oa->rec->n] = kz_sim_now(sim);
  oa->rec->seen[oa->rec->n++] = oa->tag;
}

START_TEST(test_event_order_ties_by_insertion) {
  struct kz_sim *sim;
  ck_assert_int_eq(kz_sim_new(&sim, 1), 0);
  struct order_rec rec = {.sim = sim};
  struct order_arg args[] = {{&rec, 'a'}, {&rec, 'b'}, {&rec, 'c'}, {&rec, 'd'}, {&rec, 'e'},
                             {&rec, 'f'}};
  uint64_t at[] = {5 * MS, 3 * MS, 5 * MS, 5 * MS, 0, 3 * MS};
  for (int i = 0; i < 6; i++) ck_assert_int_eq(kz_sim_at(sim, at[i], order_cb, &args[i]), 0);
  ck_assert_uint_eq(kz_sim_pending_events(sim), 6);
  ck_assert_int_eq(kz_sim_run_until(sim, 10 * MS), 0);
  rec.seen[rec.n] = 0;
  /* time order, and insertion order among equal times */
  ck_assert_str_eq(rec.seen, "ebfacd");
  ck_assert_uint_eq(rec.times[0], 0);
  ck_assert_uint_eq(rec.times[1], 3 * MS);
  ck_assert_uint_eq(rec.times[3], 5 * MS);
  kz_sim_free(sim);
}
END_TEST

START_TEST(test_virtual_time_jumps) {
  struct kz_sim *sim;
  ck_assert_int_eq(kz_sim_new(&sim, 1), 0);
  struct order_rec rec = {.sim = sim};
  struct order_arg a1 = {&rec, 'x'}, a2 = {&rec, 'y'}, a3 = {&rec, 'z'};
  /* An hour of idle virtual time costs two events, not 3.6e12 ticks. */
  ck_assert_int_eq(kz_sim_at(sim, UINT64_C(3600) * 1000 * MS, order_cb, &a1), 0);
  ck_assert_int_eq(kz_sim_at(sim, UINT64_C(7200) * 1000 * MS, order_cb, &a2), 0);
  ck_assert_uint_eq(kz_sim_next_event_time(sim), UINT64_C(3600) * 1000 * MS);
  ck_assert_int_eq(kz_sim_step(sim), 1);
  ck_assert_uint_eq(kz_sim_now(sim), UINT64_C(3600) * 1000 * MS);
  ck_assert_int_eq(kz_sim_run_until(sim, UINT64_C(5000) * 1000 * MS), 0);
  ck_assert_uint_eq(kz_sim_now(sim), UINT64_C(5000) * 1000 * MS); /* clock set to the target */
  ck_assert_uint_eq(rec.n, 1);
  ck_assert_int_eq(kz_sim_run_for(sim, UINT64_C(2200) * 1000 * MS), 0);
  ck_assert_uint_eq(rec.n, 2);
  ck_assert_uint_eq(rec.times[1], UINT64_C(7200) * 1000 * MS);
  ck_assert_uint_eq(kz_sim_now(sim), UINT64_C(7200) * 1000 * MS);
  /* Scheduling in the past fires at "now", never moving the clock back. */
  ck_assert_int_eq(kz_sim_at(sim, 0, order_cb, &a3), 0);
  ck_assert_int_eq(kz_sim_step(sim), 1);
  ck_assert_uint_eq(rec.times[2], UINT64_C(7200) * 1000 * MS);
  ck_assert_int_eq(kz_sim_step(sim), 0); /* empty queue */
  struct kz_sim_stats st;
  kz_sim_stats(sim, &st);
  ck_assert_uint_eq(st.events, 3);
  kz_sim_free(sim);
}
END_TEST

START_TEST(test_timers_one_event_per_env) {
  struct two_hosts t;
  two_hosts_init(&t, 1);
  t.ca.n_timers = 3; /* 3 ms, 5 ms, 5 ms */
  t.ca.udp_port = 0;
  ck_assert_int_eq(kz_sim_proc_add(t.a, "pa", &probe_app, &t.ca, &t.pa), 0);
  /* three role timers, one simulator event */
  ck_assert_uint_eq(kz_sim_pending_events(t.sim), 1);
  ck_assert_uint_eq(kz_sim_next_event_time(t.sim), 3 * MS);
  ck_assert_int_eq(kz_sim_run_until(t.sim, 20 * MS), 0);
  ck_assert_str_eq(logstr(&t), "0 A start\n"
                               "3000000 A timer 0\n"
                               "5000000 A timer 1\n"
                               "5000000 A timer 2\n");
  ck_assert_uint_eq(kz_sim_pending_events(t.sim), 0);
  /* wall clock = epoch base + virtual time */
  ck_assert_int_eq(kz_env_wall(kz_sim_proc_env(t.pa)), KZ_SIM_EPOCH_NS + (int64_t)(20 * MS));
  kz_sim_host_set_clock_skew(t.a, -5);
  ck_assert_int_eq(kz_env_wall(kz_sim_proc_env(t.pa)), KZ_SIM_EPOCH_NS + (int64_t)(20 * MS) - 5);
  ck_assert(trace_has(t.sim, "{\"t\":3000000,\"ev\":\"timer\",\"host\":\"a\",\"proc\":\"pa\"}\n"));
  two_hosts_free(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* UDP */

START_TEST(test_udp_latency_exact) {
  struct two_hosts t;
  two_hosts_init(&t, 1);
  two_hosts_start(&t);
  ck_assert_int_eq(kz_sim_link_set_latency(t.sim, t.a, t.b, 5 * MS), 0);
  ck_assert_int_eq(kz_sim_link_set_latency(t.sim, t.b, t.a, 7 * MS + 3), 0);
  ck_assert_uint_eq(kz_sim_link_latency(t.sim, t.a, t.b), 5 * MS);
  ck_assert_uint_eq(kz_sim_link_latency(t.sim, t.a, t.a), KZ_SIM_DEFAULT_LATENCY_NS);
  ck_assert_int_eq(kz_sim_run_until(t.sim, 1 * MS), 0);
  kz_buf_reset(&t.log);
  probe_send(t.pa, IP_B, 6000, "one");
  probe_send(t.pa, IP_B, 6000, "two");
  ck_assert_int_eq(kz_sim_run_until(t.sim, 2 * MS), 0);
  probe_send(t.pb, IP_A, 5000, "back");
  ck_assert_int_eq(kz_sim_run_until(t.sim, 100 * MS), 0);
  ck_assert_str_eq(logstr(&t), "6000000 B udp from 10.0.0.1:5000 'one'\n"
                               "6000000 B udp from 10.0.0.1:5000 'two'\n"
                               "9000003 A udp from 10.0.0.2:6000 'back'\n");
  ck_assert(trace_has(t.sim, "\"ev\":\"udp_send\",\"host\":\"a\",\"proc\":\"pa\",\"src\":\"10.0.0.1:5000\",\"dst\":\"10.0.0.2:6000\",\"len\":3,\"h\":\""));
  struct kz_sim_stats st;
  kz_sim_stats(t.sim, &st);
  ck_assert_uint_eq(st.udp_sent, 3);
  ck_assert_uint_eq(st.udp_delivered, 3);
  two_hosts_free(&t);
}
END_TEST

START_TEST(test_udp_unbound_dropped) {
  struct two_hosts t;
  two_hosts_init(&t, 1);
  two_hosts_start(&t);
  kz_buf_reset(&t.log);
  probe_send(t.pa, IP_B, 6001, "nobody");   /* no socket on that port */
  probe_send(t.pa, 0x0a000063, 6000, "void"); /* no host at 10.0.0.99 */
  ck_assert_int_eq(kz_sim_run_until(t.sim, 100 * MS), 0);
  ck_assert_str_eq(logstr(&t), "");
  struct kz_sim_stats st;
  kz_sim_stats(t.sim, &st);
  ck_assert_uint_eq(st.udp_dropped, 2);
  ck_assert_uint_eq(st.udp_delivered, 0);
  ck_assert(trace_has(t.sim, "{\"t\":1000000,\"ev\":\"udp_drop\",\"host\":\"b\",\"src\":\"10.0.0.1:5000\",\"dst\":\"10.0.0.2:6001\",\"len\":6,"));
  ck_assert(trace_has(t.sim, "\"reason\":\"unbound\"}"));
  ck_assert(trace_has(t.sim, "\"reason\":\"no_route\"}"));
  two_hosts_free(&t);
}
END_TEST

START_TEST(test_udp_bind_rules) {
  struct two_hosts t;
  two_hosts_init(&t, 1);
  two_hosts_start(&t);
  struct kz_env *env = kz_sim_proc_env(t.pa);
  struct kz_udp *u = NULL;
  struct kz_addr taken = kz_addr_v4(IP_A, 5000), foreign = kz_addr_v4(IP_B, 1),
                 any = kz_addr_v4(0, 0);
  ck_assert_int_eq(kz_udp_bind(env, &taken, on_recv, NULL, &u), KZ_EADDRINUSE);
  ck_assert_int_eq(kz_udp_bind(env, &foreign, on_recv, NULL, &u), KZ_EADDRNOTAVAIL);
  ck_assert_int_eq(kz_udp_bind(env, &any, on_recv, NULL, &u), 0);
  ck_assert_uint_eq(u->local.port, 49152); /* first ephemeral port */
  kz_udp_close(u);
  struct kz_addr big = kz_addr_v4(IP_B, 6000);
  uint8_t *huge = kz_calloc(1, KZ_SIM_UDP_MAX + 1);
  ck_assert_int_eq(kz_udp_send(P(t.pa)->udp, &big, huge, KZ_SIM_UDP_MAX + 1), KZ_EMSGSIZE);
  ck_assert_int_eq(kz_udp_send(P(t.pa)->udp, &big, huge, KZ_SIM_UDP_MAX), 0);
  kz_free(huge);
  two_hosts_free(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Streams */

START_TEST(test_stream_connect_data_close_order) {
  struct two_hosts t;
  two_hosts_init(&t, 1);
  t.cb.greeting = "hi";
  /* Pure network timing: the three segments reaching B at 3 ms would
   * otherwise queue for its cores (the CPU model has its own tests). */
  kz_sim_set_cost_zero(t.sim);
  two_hosts_start(&t);
  kz_buf_reset(&t.log);
  int s = probe_connect(t.pa, IP_B, 7000);
  probe_write(t.pa, s, "early"); /* queued while connecting */
  ck_assert_int_eq(kz_sim_run_until(t.sim, 2 * MS), 0);
  probe_write(t.pa, s, "one");
  probe_write(t.pa, s, "two");
  probe_close(t.pa, s); /* flushes, then an orderly close */
  ck_assert_int_eq(kz_sim_run_until(t.sim, 10 * MS), 0);
  ck_assert_str_eq(logstr(&t), "1000000 B accept s0 from 10.0.0.1:49152\n"
                               "2000000 A connect s0\n"
                               "2000000 A data s0 'hi'\n"
                               "3000000 B data s0 'early'\n"
                               "3000000 B data s0 'one'\n"
                               "3000000 B data s0 'two'\n"
                               "3000000 B close s0 KZ_OK\n");
  /* The server's side stays writable until it closes; the closed client
   * gets nothing more. */
  probe_close(t.pb, 0);
  ck_assert_int_eq(kz_sim_run_until(t.sim, 20 * MS), 0);
  ck_assert(trace_has(t.sim, "\"ev\":\"tcp_fin\",\"host\":\"a\""));
  /* every connection finished: nothing pending */
  ck_assert_uint_eq(kz_sim_pending_events(t.sim), 0);
  struct kz_sim_stats st;
  kz_sim_stats(t.sim, &st);
  ck_assert_uint_eq(st.streams_opened, 1);
  ck_assert_uint_eq(st.stream_bytes, 2 + 5 + 3 + 3);
  two_hosts_free(&t);
}
END_TEST

START_TEST(test_stream_refused_after_round_trip) {
  struct two_hosts t;
  two_hosts_init(&t, 1);
  two_hosts_start(&t);
  ck_assert_int_eq(kz_sim_link_set_latency(t.sim, t.a, t.b, 4 * MS), 0);
  ck_assert_int_eq(kz_sim_link_set_latency(t.sim, t.b, t.a, 6 * MS), 0);
  kz_buf_reset(&t.log);
  probe_connect(t.pa, IP_B, 7001); /* nobody listens there */
  ck_assert_int_eq(kz_sim_run_until(t.sim, 100 * MS), 0);
  ck_assert_str_eq(logstr(&t), "10000000 A close s0 KZ_ECONNREFUSED\n");
  struct kz_sim_stats st;
  kz_sim_stats(t.sim, &st);
  ck_assert_uint_eq(st.streams_refused, 1);
  ck_assert(trace_has(t.sim, "{\"t\":4000000,\"ev\":\"tcp_refused\",\"host\":\"b\""));
  probe_close(t.pa, 0);
  two_hosts_free(&t);
}
END_TEST

START_TEST(test_stream_to_down_host_times_out) {
  struct two_hosts t;
  two_hosts_init(&t, 1);
  two_hosts_start(&t);
  kz_sim_set_connect_timeout(t.sim, 500 * MS);
  ck_assert_int_eq(kz_sim_host_crash(t.b), 0);
  ck_assert_int_eq(kz_sim_host_crash(t.b), KZ_EHOSTDOWN);
  kz_buf_reset(&t.log);
  probe_connect(t.pa, IP_B, 7000);
  probe_send(t.pa, IP_B, 6000, "lost");
  ck_assert_int_eq(kz_sim_run_until(t.sim, 1000 * MS), 0);
  ck_assert_str_eq(logstr(&t), "500000000 A close s0 KZ_ETIMEDOUT\n");
  ck_assert(trace_has(t.sim, "\"reason\":\"host_down\"}"));
  probe_close(t.pa, 0);
  two_hosts_free(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Crash and restart */

START_TEST(test_crash_resets_peers) {
  struct two_hosts t;
  two_hosts_init(&t, 1);
  two_hosts_start(&t);
  ck_assert_int_eq(kz_sim_link_set_latency(t.sim, t.b, t.a, 3 * MS), 0);
  int s0 = probe_connect(t.pa, IP_B, 7000);
  ck_assert_int_eq(kz_sim_run_until(t.sim, 10 * MS), 0);
  kz_buf_reset(&t.log);
  /* B crashes while data from A is in flight: it is lost, and A sees a
   * reset one B->A latency after the crash, not a FIN. */
  probe_write(t.pa, s0, "in-flight");
  ck_assert_int_eq(kz_sim_host_crash(t.b), 0);
  ck_assert(!kz_sim_host_is_up(t.b));
  ck_assert(!kz_sim_proc_is_running(t.pb));
  probe_send(t.pa, IP_B, 6000, "to-the-dead");
  ck_assert_int_eq(kz_sim_run_until(t.sim, 100 * MS), 0);
  ck_assert_str_eq(logstr(&t), "13000000 A close s0 KZ_ECONNRESET\n");
  ck_assert(trace_has(t.sim, "\"ev\":\"udp_drop\",\"host\":\"b\""));
  ck_assert(trace_has(t.sim, "\"seg\":\"data\",\"len\":9,"));
  probe_close(t.pa, s0);

  /* The other way round: the client's host crashes, the server is reset. */
  ck_assert_int_eq(kz_sim_host_restart(t.b), 0);
  ck_assert_int_eq(kz_sim_host_restart(t.b), KZ_EBUSY);
  int s1 = probe_connect(t.pa, IP_B, 7000);
  ck_assert_int_eq(kz_sim_run_until(t.sim, 200 * MS), 0);
  (void)s1;
  kz_buf_reset(&t.log);
  ck_assert_int_eq(kz_sim_host_crash(t.a), 0);
  ck_assert_int_eq(kz_sim_run_until(t.sim, 300 * MS), 0);
  ck_assert_str_eq(logstr(&t), "201000000 B close s0 KZ_ECONNRESET\n");
  ck_assert_uint_eq(kz_sim_pending_events(t.sim), 0);
  two_hosts_free(&t);
}
END_TEST

START_TEST(test_crash_storage_and_restart) {
  struct two_hosts t;
  two_hosts_init(&t, 1);
  t.cb.storage = true;
  two_hosts_start(&t);
  const uint8_t *d;
  size_t n;
  /* before the crash: current images */
  ck_assert_int_eq(kz_sim_file_get(t.pb, "b", false, &d, &n), 0);
  ck_assert_int_eq(kz_sim_file_get(t.pb, "b", true, &d, &n), KZ_ENOENT);
  ck_assert_int_eq(kz_sim_file_get(t.pb, "c", false, &d, &n), 0);
  ck_assert_int_eq((int)n, 11);
  ck_assert_int_eq(memcmp(d, "v2-unsynced", 11), 0);
  ck_assert_int_eq(kz_sim_run_until(t.sim, 50 * MS), 0);
  ck_assert_int_eq(kz_sim_host_crash(t.b), 0);
  /* after: synced images only */
  ck_assert_int_eq(kz_sim_file_get(t.pb, "a", false, &d, &n), 0);
  ck_assert_int_eq((int)n, 8);
  ck_assert_int_eq(memcmp(d, "synced-a", 8), 0);
  ck_assert_int_eq(kz_sim_file_get(t.pb, "b", false, &d, &n), KZ_ENOENT);
  ck_assert_int_eq(kz_sim_file_get(t.pb, "c", false, &d, &n), 0);
  ck_assert_int_eq((int)n, 2);
  ck_assert_int_eq(memcmp(d, "v1", 2), 0);
  ck_assert(trace_has(t.sim, "\"ev\":\"storage_revert\",\"host\":\"b\",\"kept\":4,\"vanished\":1}"));
  /* The restarted app finds exactly the durable state. */
  ck_assert_int_eq(kz_sim_run_until(t.sim, 80 * MS), 0);
  ck_assert_int_eq(kz_sim_host_restart(t.b), 0);
  ck_assert(kz_sim_proc_is_running(t.pb));
  ck_assert_str_eq(logstr(&t),
                   "0 A start\n"
                   "0 B start\n"
                   "0 B files: a=- b=- c=- d=- d.tmp=- e=- dir/f=-\n"
                   "80000000 B start\n"
                   "80000000 B files: a=synced-a b=- c=v1 d=tmp-d d.tmp=- e=- dir/f=f0\n");
  ck_assert(trace_has(t.sim, "\"ev\":\"start\",\"host\":\"b\",\"proc\":\"pb\",\"app\":\"probe\",\"boot\":2,"));
  /* and it works: its socket is bound again */
  kz_buf_reset(&t.log);
  probe_send(t.pa, IP_B, 6000, "again");
  ck_assert_int_eq(kz_sim_run_until(t.sim, 100 * MS), 0);
  ck_assert_str_eq(logstr(&t), "81000000 B udp from 10.0.0.1:5000 'again'\n");
  two_hosts_free(&t);
}
END_TEST

START_TEST(test_crash_reclaims_forgotten_handles) {
  struct two_hosts t;
  two_hosts_init(&t, 1);
  t.cb.leak_udp = true;
  two_hosts_start(&t);
  ck_assert_int_eq(kz_sim_host_crash(t.b), 0);
  ck_assert(trace_has(t.sim, "\"ev\":\"stop\",\"host\":\"b\",\"proc\":\"pb\",\"reclaimed\":1}"));
  /* the port is free again after the restart */
  ck_assert_int_eq(kz_sim_host_restart(t.b), 0);
  ck_assert(kz_sim_proc_is_running(t.pb));
  two_hosts_free(&t); /* the leak check proves the handle was released */
}
END_TEST

/* kill -9 of one process: its peers are reset, its ports close, its
 * host, the host's other process and its unsynced writes live on. */
START_TEST(test_kill_one_process) {
  struct two_hosts t;
  two_hosts_init(&t, 1);
  t.cb.storage = true;
  two_hosts_start(&t);
  struct probe_cfg c2 = {.name = "B2", .log = &t.log, .udp_port = 6001};
  struct kz_sim_proc *pb2 = NULL;
  ck_assert_int_eq(kz_sim_proc_add(t.b, "pb2", &probe_app, &c2, &pb2), 0);
  ck_assert_int_eq(kz_sim_link_set_latency(t.sim, t.b, t.a, 3 * MS), 0);
  int s0 = probe_connect(t.pa, IP_B, 7000);
  ck_assert_int_eq(kz_sim_run_until(t.sim, 10 * MS), 0);
  kz_buf_reset(&t.log);
  probe_write(t.pa, s0, "in-flight");
  ck_assert_int_eq(kz_sim_proc_kill(t.pb), 0);
  ck_assert_int_eq(kz_sim_proc_kill(t.pb), KZ_EINVAL);
  ck_assert(kz_sim_host_is_up(t.b));
  ck_assert(!kz_sim_proc_is_running(t.pb));
  ck_assert(kz_sim_proc_is_running(pb2));
  probe_send(t.pa, IP_B, 6000, "to-the-dead");
  probe_send(t.pa, IP_B, 6001, "to-the-living");
  ck_assert_int_eq(kz_sim_run_until(t.sim, 100 * MS), 0);
  ck_assert_str_eq(logstr(&t), "11000000 B2 udp from 10.0.0.1:5000 'to-the-living'\n"
                               "13000000 A close s0 KZ_ECONNRESET\n");
  ck_assert(trace_has(t.sim, "\"ev\":\"kill\",\"host\":\"b\",\"proc\":\"pb\"}"));
  probe_close(t.pa, s0);
  /* A connect to the dead process's port is refused by its host. */
  kz_buf_reset(&t.log);
  int s1 = probe_connect(t.pa, IP_B, 7000);
  ck_assert_int_eq(kz_sim_run_until(t.sim, 200 * MS), 0);
  ck_assert_str_eq(logstr(&t), "104000000 A close s1 KZ_ECONNREFUSED\n");
  probe_close(t.pa, s1);
  /* Its unsynced writes survive (no storage_revert); the restart finds them. */
  ck_assert(!trace_has(t.sim, "storage_revert"));
  kz_buf_reset(&t.log);
  ck_assert_int_eq(kz_sim_proc_restart(pb2), KZ_EBUSY);
  ck_assert_int_eq(kz_sim_proc_restart(t.pb), 0);
  ck_assert_str_eq(logstr(&t), "200000000 B start\n"
                               "200000000 B files: a=synced-a b=unsynced-b c=v2-unsynced d=tmp-d d.tmp=- e=- "
                               "dir/f=f0\n");
  /* Scheduled: killed at 300 ms, back at 400 ms; a kill of a dead process is skipped. */
  ck_assert_int_eq(kz_sim_proc_kill_at(t.pb, 300 * MS, 400 * MS), 0);
  ck_assert_int_eq(kz_sim_proc_kill_at(t.pb, 350 * MS, UINT64_MAX), 0);
  ck_assert_int_eq(kz_sim_proc_kill_at(t.pb, 500 * MS, 500 * MS), KZ_EINVAL);
  ck_assert_int_eq(kz_sim_run_until(t.sim, 320 * MS), 0);
  ck_assert(!kz_sim_proc_is_running(t.pb));
  ck_assert_int_eq(kz_sim_run_until(t.sim, 450 * MS), 0);
  ck_assert(kz_sim_proc_is_running(t.pb));
  ck_assert(trace_has(t.sim, "\"ev\":\"fault_skipped\",\"host\":\"b\",\"proc\":\"pb\",\"fault\":\"kill\""));
  /* Its host down: a restart is refused. */
  ck_assert_int_eq(kz_sim_host_crash(t.b), 0);
  ck_assert_int_eq(kz_sim_proc_restart(t.pb), KZ_EHOSTDOWN);
  two_hosts_free(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Trace and the echo example */

START_TEST(test_trace_lines_well_formed) {
  struct two_hosts t;
  two_hosts_init(&t, 7);
  t.cb.greeting = "q\"\\\x01";
  two_hosts_start(&t);
  probe_connect(t.pa, IP_B, 7000);
  kz_sim_trace_mark(t.sim, "a \"quoted\" label\n");
  kz_log(kz_sim_proc_env(t.pa), KZ_LOG_WARN, "test", "bytes \x7f\xc3\xa9 \"q\"");
  kz_sim_host_set_clock_drift(t.b, -250); /* a negative integer field */
  ck_assert_int_eq(kz_sim_run_until(t.sim, 10 * MS), 0);
  size_t len;
  const uint8_t *d = kz_sim_trace_data(t.sim, &len);
  ck_assert_uint_gt(len, 0);
  size_t lines = 0;
  for (size_t i = 0; i < len;) {
    const uint8_t *nl = memchr(d + i, '\n', len - i);
    ck_assert_ptr_nonnull(nl);
    size_t n = (size_t)(nl - (d + i)) + 1;
    ck_assert_int_eq(memcmp(d + i, "{\"t\":", 5), 0);
    ck_assert_int_eq(d[i + n - 2], '}');
    for (size_t j = i; j < i + n - 1; j++) ck_assert(d[j] >= 0x20 && d[j] < 0x7f);
    lines++;
    i += n;
  }
  /* The hash chains the lines' canonical forms, recomputed here from the
   * text alone (escapes undone, numbers parsed): it covers every field
   * of every line, and nothing else. */
  uint64_t h = 0;
  size_t relines = 0;
  ck_assert(trace_rehash(d, len, &h, &relines));
  ck_assert_uint_eq(relines, lines);
  ck_assert_uint_eq(h, kz_sim_trace_hash(t.sim));
  struct kz_sim_stats st;
  kz_sim_stats(t.sim, &st);
  ck_assert_uint_eq(lines, st.trace_lines);
  ck_assert(trace_has(t.sim, "\"label\":\"a \\\"quoted\\\" label\\n\"}"));
  ck_assert(trace_has(t.sim, "bytes \\u007f\\u00c3\\u00a9 \\\"q\\\""));
  ck_assert(!trace_has(t.sim, "0x"));
  ck_assert(trace_has(t.sim, "\"ev\":\"clock_drift\",\"host\":\"b\",\"ppm\":-250}"));
  probe_close(t.pa, 0);
  two_hosts_free(&t);
}
END_TEST

START_TEST(test_echo_example_two_hosts) {
  struct kz_sim_echo_cfg cfg = {.seed = 42, .duration_ns = 3000 * MS, .count = 10};
  struct kz_sim_echo_result r;
  ck_assert_int_eq(kz_sim_echo_run(&cfg, &r), 0);
  ck_assert(r.done);
  ck_assert_uint_eq(r.count, 10);
  ck_assert_uint_eq(r.udp_echoes, 10);
  ck_assert_uint_eq(r.tcp_echoes, 10);
  ck_assert_uint_eq(r.bad, 0);
  /* 10 messages 100 ms apart, echoed over a 1 ms link each way */
  ck_assert_uint_ge(r.done_ns, 1000 * MS);
  ck_assert_uint_lt(r.done_ns, 1100 * MS);
  ck_assert_uint_eq(r.sim_ns, 3000 * MS);
  ck_assert_uint_gt(r.events, 40);
}
END_TEST

START_TEST(test_echo_example_too_short) {
  /* A run that ends before the last echo says so. */
  struct kz_sim_echo_cfg cfg = {.seed = 42, .duration_ns = 250 * MS, .count = 10};
  struct kz_sim_echo_result r;
  ck_assert_int_eq(kz_sim_echo_run(&cfg, &r), 0);
  ck_assert(!r.done);
  ck_assert_uint_lt(r.udp_echoes, 10);
}
END_TEST

static int echo_srv_start(struct kz_env *env, const void *cfg, void **inst) {
  return kz_echo_server_new((struct kz_echo_server **)inst, env, cfg);
}
static void echo_srv_stop(void *inst) { kz_echo_server_free(inst); }
static int echo_cli_start(struct kz_env *env, const void *cfg, void **inst) {
  return kz_echo_client_new((struct kz_echo_client **)inst, env, cfg);
}
static void echo_cli_stop(void *inst) { kz_echo_client_free(inst); }
static const struct kz_sim_app echo_srv_app = {"echo-server", echo_srv_start, echo_srv_stop};
static const struct kz_sim_app echo_cli_app = {"echo-client", echo_cli_start, echo_cli_stop};

static void crash_b(struct kz_sim *sim, void *arg) {
  (void)sim;
  ck_assert_int_eq(kz_sim_host_crash(arg), 0);
}

static void restart_b(struct kz_sim *sim, void *arg) {
  (void)sim;
  ck_assert_int_eq(kz_sim_host_restart(arg), 0);
}

/* The real echo role through a server crash: the stream is reset, the
 * datagrams sent while the host is down are lost, and the restarted
 * server resumes from the tick counter it had synced. */
START_TEST(test_echo_server_crash_restart) {
  struct two_hosts t;
  two_hosts_init(&t, 5);
  struct kz_echo_server_cfg scfg = {
      .udp = kz_addr_v4(0, 7), .tcp = kz_addr_v4(0, 7), .persist_every = 5};
  struct kz_echo_client_cfg ccfg = {.server_udp = kz_addr_v4(IP_B, 7),
                                    .server_tcp = kz_addr_v4(IP_B, 7),
                                    .count = 30};
  ck_assert_int_eq(kz_sim_proc_add(t.b, "echo", &echo_srv_app, &scfg, &t.pb), 0);
  ck_assert_int_eq(kz_sim_proc_add(t.a, "pinger", &echo_cli_app, &ccfg, &t.pa), 0);
  ck_assert_int_eq(kz_sim_at(t.sim, 1250 * MS, crash_b, t.b), 0);
  ck_assert_int_eq(kz_sim_at(t.sim, 1500 * MS, restart_b, t.b), 0);
  ck_assert_int_eq(kz_sim_run_until(t.sim, 4000 * MS), 0);
  const struct kz_echo_client_stats *cs = kz_echo_client_stats(kz_sim_proc_instance(t.pa));
  ck_assert(cs->tcp_ended);
  ck_assert_int_eq(cs->tcp_status, KZ_ECONNRESET);
  ck_assert_uint_eq(cs->tcp_replies, 12); /* sent at 0.1 .. 1.2 s */
  ck_assert_uint_eq(cs->udp_sent, 30);
  ck_assert_uint_eq(cs->udp_replies, 28); /* those of 1.3 and 1.4 s were lost */
  ck_assert(trace_has(t.sim, "{\"t\":1251000000,\"ev\":\"tcp_rst\",\"host\":\"a\""));
  const struct kz_echo_server_stats *ss = kz_echo_server_stats(kz_sim_proc_instance(t.pb));
  ck_assert_uint_eq(ss->restored_ticks, 10); /* synced at tick 10; tick 12 was not persisted */
  const uint8_t *d;
  size_t n;
  ck_assert_int_eq(kz_sim_file_get(t.pb, "echo/ticks", true, &d, &n), 0);
  ck_assert_int_eq(kz_sim_file_get(t.pb, "echo/ticks.tmp", false, &d, &n), KZ_ENOENT);
  struct kz_sim_stats st;
  kz_sim_stats(t.sim, &st);
  ck_assert_uint_eq(st.crashes, 1);
  ck_assert_uint_eq(st.restarts, 1);
  two_hosts_free(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Network model: loss, duplication, reordering, queues, partitions */

static void set_link(struct kz_sim *sim, struct kz_sim_host *from, struct kz_sim_host *to,
                     struct kz_sim_link_cfg c) {
  ck_assert_int_eq(kz_sim_link_set(sim, from, to, &c), 0);
}

START_TEST(test_loss_rate_10k) {
  struct two_hosts t;
  two_hosts_init(&t, 1);
  kz_sim_set_trace_memory(t.sim, false);
  two_hosts_start(&t);
  set_link(t.sim, t.a, t.b, (struct kz_sim_link_cfg){.latency_ns = 1 * MS, .loss_ppm = 100000});
  for (int i = 0; i < 10000; i++) probe_send(t.pa, IP_B, 6000, "x");
  ck_assert_int_eq(kz_sim_run_until(t.sim, 1000 * MS), 0);
  struct kz_sim_stats st;
  kz_sim_stats(t.sim, &st);
  ck_assert_uint_eq(st.udp_lost + st.udp_delivered, 10000);
  /* 10% of 10,000: sigma is 30, so +-4 sigma... */
  ck_assert_uint_ge(st.udp_lost, 880);
  ck_assert_uint_le(st.udp_lost, 1120);
  /* ...and exactly this many for seed 1, on every run and machine. */
  ck_assert_uint_eq(st.udp_lost, LOSS_SEED1);
  ck_assert_uint_eq(st.udp_dropped, st.udp_lost);
  two_hosts_free(&t);
}
END_TEST

/* Sequence numbers of "udp from ... 'NNNN'" lines of the log, in order. */
static size_t parse_seqs(struct two_hosts *t, int *out, size_t max) {
  size_t n = 0;
  const char *p = logstr(t);
  while ((p = strstr(p, "udp from ")) && n < max) {
    const char *q = strchr(p, '\'');
    ck_assert_ptr_nonnull(q);
    out[n++] = atoi(q + 1);
    p = q + 1;
  }
  return n;
}

START_TEST(test_duplication_and_reordering) {
  struct two_hosts t;
  two_hosts_init(&t, 1);
  two_hosts_start(&t);
  set_link(t.sim, t.a, t.b,
           (struct kz_sim_link_cfg){.latency_ns = 1 * MS, .dup_ppm = 100000,
                                    .reorder_ppm = 100000, .reorder_ns = 3 * MS});
  kz_buf_reset(&t.log);
  for (int i = 0; i < 1000; i++) {
    char msg[8];
    snprintf(msg, sizeof msg, "%04d", i);
    probe_send(t.pa, IP_B, 6000, msg);
    ck_assert_int_eq(kz_sim_run_for(t.sim, 100 * 1000), 0); /* 100 us apart */
  }
  ck_assert_int_eq(kz_sim_run_for(t.sim, 100 * MS), 0);
  int *seqs = kz_calloc(3000, sizeof *seqs);
  ck_assert_ptr_nonnull(seqs);
  size_t n = parse_seqs(&t, seqs, 3000);
  struct kz_sim_stats st;
  kz_sim_stats(t.sim, &st);
  ck_assert_uint_eq(n, 1000 + st.udp_duplicated);
  ck_assert_uint_ge(st.udp_duplicated, 50);
  ck_assert_uint_ge(st.udp_reordered, 50);
  int seen[1000] = {0};
  int overtaken = 0, max = -1;
  for (size_t i = 0; i < n; i++) {
    ck_assert(seqs[i] >= 0 && seqs[i] < 1000);
    if (seqs[i] < max && !seen[seqs[i]]) overtaken++; /* a first copy arriving late */
    if (seqs[i] > max) max = seqs[i];
    seen[seqs[i]]++;
  }
  for (int i = 0; i < 1000; i++) ck_assert_int_ge(seen[i], 1); /* nothing lost */
  ck_assert_int_ge(overtaken, 50);
  kz_free(seqs);
  ck_assert(trace_has(t.sim, "\"ev\":\"udp_dup\""));
  two_hosts_free(&t);
}
END_TEST

START_TEST(test_queue_limit_drops) {
  struct two_hosts t;
  two_hosts_init(&t, 1);
  two_hosts_start(&t);
  set_link(t.sim, t.a, t.b, (struct kz_sim_link_cfg){.latency_ns = 1 * MS, .queue_packets = 4});
  for (int i = 0; i < 10; i++) probe_send(t.pa, IP_B, 6000, "q");
  ck_assert_int_eq(kz_sim_run_for(t.sim, 10 * MS), 0);
  struct kz_sim_stats st;
  kz_sim_stats(t.sim, &st);
  ck_assert_uint_eq(st.udp_delivered, 4);
  ck_assert_uint_eq(st.udp_queue_full, 6);
  ck_assert(trace_has(t.sim, "\"reason\":\"queue_full\"}"));
  /* The queue drained: room again. */
  for (int i = 0; i < 3; i++) probe_send(t.pa, IP_B, 6000, "r");
  ck_assert_int_eq(kz_sim_run_for(t.sim, 10 * MS), 0);
  kz_sim_stats(t.sim, &st);
  ck_assert_uint_eq(st.udp_delivered, 7);
  /* A byte limit: 10 bytes hold two 5-byte datagrams. */
  set_link(t.sim, t.a, t.b, (struct kz_sim_link_cfg){.latency_ns = 1 * MS, .queue_bytes = 10});
  for (int i = 0; i < 3; i++) probe_send(t.pa, IP_B, 6000, "12345");
  ck_assert_int_eq(kz_sim_run_for(t.sim, 10 * MS), 0);
  kz_sim_stats(t.sim, &st);
  ck_assert_uint_eq(st.udp_delivered, 9);
  ck_assert_uint_eq(st.udp_queue_full, 7);
  two_hosts_free(&t);
}
END_TEST

static void send_both_ways(struct two_hosts *t, const char *tag) {
  char m[32];
  snprintf(m, sizeof m, "%s-ab", tag);
  probe_send(t->pa, IP_B, 6000, m);
  snprintf(m, sizeof m, "%s-ba", tag);
  probe_send(t->pb, IP_A, 5000, m);
}

START_TEST(test_partition_asymmetric_and_heal) {
  struct two_hosts t;
  two_hosts_init(&t, 1);
  kz_sim_set_cost_zero(t.sim);
  two_hosts_start(&t);
  kz_buf_reset(&t.log);
  ck_assert_int_eq(kz_sim_partition(t.sim, t.a, t.b, false), 0); /* a -> b only */
  ck_assert(kz_sim_link_blocked(t.sim, t.a, t.b));
  ck_assert(!kz_sim_link_blocked(t.sim, t.b, t.a));
  send_both_ways(&t, "1");
  ck_assert_int_eq(kz_sim_run_for(t.sim, 10 * MS), 0);
  ck_assert_int_eq(kz_sim_heal(t.sim, t.a, t.b, false), 0);
  send_both_ways(&t, "2");
  ck_assert_int_eq(kz_sim_run_for(t.sim, 10 * MS), 0);
  /* A scheduled symmetric partition from 100 ms, for 50 ms. */
  ck_assert_int_eq(kz_sim_partition_at(t.sim, 100 * MS, 50 * MS, t.a, t.b, true), 0);
  ck_assert_int_eq(kz_sim_run_until(t.sim, 120 * MS), 0);
  ck_assert(kz_sim_link_blocked(t.sim, t.a, t.b) && kz_sim_link_blocked(t.sim, t.b, t.a));
  send_both_ways(&t, "3");
  ck_assert_int_eq(kz_sim_run_until(t.sim, 160 * MS), 0);
  ck_assert(!kz_sim_link_blocked(t.sim, t.a, t.b) && !kz_sim_link_blocked(t.sim, t.b, t.a));
  send_both_ways(&t, "4");
  ck_assert_int_eq(kz_sim_run_until(t.sim, 200 * MS), 0);
  ck_assert_str_eq(logstr(&t), "1000000 A udp from 10.0.0.2:6000 '1-ba'\n"
                               "11000000 B udp from 10.0.0.1:5000 '2-ab'\n"
                               "11000000 A udp from 10.0.0.2:6000 '2-ba'\n"
                               "161000000 B udp from 10.0.0.1:5000 '4-ab'\n"
                               "161000000 A udp from 10.0.0.2:6000 '4-ba'\n");
  struct kz_sim_stats st;
  kz_sim_stats(t.sim, &st);
  ck_assert_uint_eq(st.udp_partitioned, 3);
  ck_assert(trace_has(t.sim, "\"ev\":\"partition\",\"from\":\"a\",\"to\":\"b\"}"));
  ck_assert(trace_has(t.sim, "{\"t\":150000000,\"ev\":\"heal\",\"from\":\"b\",\"to\":\"a\"}"));
  ck_assert(trace_has(t.sim, "\"reason\":\"partition\"}"));
  two_hosts_free(&t);
}
END_TEST

/* Concatenates the payloads of B's "data s<i> '...'" log lines. */
static void collect_data(struct two_hosts *t, const char *who, struct kz_buf *out) {
  const char *p = logstr(t);
  while ((p = strstr(p, who))) {
    p += strlen(who);
    const char *end = strstr(p, "'\n");
    ck_assert_ptr_nonnull(end);
    kz_buf_append(out, p, (size_t)(end - p));
    p = end;
  }
}

START_TEST(test_stream_over_lossy_link_in_order) {
  struct two_hosts t;
  two_hosts_init(&t, 1);
  two_hosts_start(&t);
  struct kz_sim_link_cfg c = {.latency_ns = 1 * MS, .jitter_ns = 2 * MS, .loss_ppm = 200000};
  set_link(t.sim, t.a, t.b, c);
  set_link(t.sim, t.b, t.a, c);
  int s = probe_connect(t.pa, IP_B, 7000);
  ck_assert_int_eq(kz_sim_run_until(t.sim, 5000 * MS), 0);
  ck_assert_ptr_nonnull(strstr(logstr(&t), "A connect s0"));
  kz_buf_reset(&t.log);
  struct kz_buf want, got;
  kz_buf_init(&want);
  kz_buf_init(&got);
  for (int i = 0; i < 300; i++) {
    char chunk[8];
    snprintf(chunk, sizeof chunk, "%05d,", i);
    probe_write(t.pa, s, chunk);
    kz_buf_append_cstr(&want, chunk);
  }
  probe_close(t.pa, s);
  ck_assert_int_eq(kz_sim_run_until(t.sim, 300000 * MS), 0);
  collect_data(&t, "B data s0 '", &got);
  ck_assert_uint_eq(got.len, want.len);
  ck_assert_int_eq(memcmp(got.data, want.data, want.len), 0); /* every byte, in order */
  ck_assert_ptr_nonnull(strstr(logstr(&t), "B close s0 KZ_OK"));
  struct kz_sim_stats st;
  kz_sim_stats(t.sim, &st);
  ck_assert_uint_ge(st.stream_retransmits, 30); /* ~20% of 301 segments */
  ck_assert(trace_has(t.sim, "\"ev\":\"tcp_retx\""));
  /* Slower than the 1-3 ms a clean link takes: losses cost 200 ms+ and
   * everything behind waits. */
  const char *close_line = strstr(logstr(&t), "B close s0");
  const char *line = close_line;
  while (line > logstr(&t) && line[-1] != '\n') line--;
  ck_assert_uint_gt(strtoull(line, NULL, 10), 5200 * MS);
  kz_buf_free(&want);
  kz_buf_free(&got);
  two_hosts_free(&t);
}
END_TEST

START_TEST(test_stream_long_partition_resets) {
  struct two_hosts t;
  two_hosts_init(&t, 1);
  kz_sim_set_cost_zero(t.sim);
  kz_sim_set_stream_timeout(t.sim, 5000 * MS);
  two_hosts_start(&t);
  int s = probe_connect(t.pa, IP_B, 7000);
  ck_assert_int_eq(kz_sim_run_until(t.sim, 10 * MS), 0);
  kz_buf_reset(&t.log);
  /* A short partition only delays: the data leaves when it heals. */
  ck_assert_int_eq(kz_sim_partition_at(t.sim, 10 * MS, 1000 * MS, t.a, t.b, true), 0);
  ck_assert_int_eq(kz_sim_run_until(t.sim, 10 * MS), 0);
  probe_write(t.pa, s, "p");
  probe_write(t.pa, s, "q");
  ck_assert_int_eq(kz_sim_run_until(t.sim, 3000 * MS), 0);
  /* retried at 0.2, 0.6, 1.4 s after 10 ms: open at the third */
  ck_assert_str_eq(logstr(&t), "1411000000 B data s0 'p'\n"
                               "1411000000 B data s0 'q'\n");
  kz_buf_reset(&t.log);
  /* A long one: A gives up after the stream timeout (retries at 0.2,
   * 0.6, 1.4, 3.0, 6.2 s: the first past 5 s), B learns of it when it
   * writes after the heal. */
  ck_assert_int_eq(kz_sim_partition(t.sim, t.a, t.b, true), 0);
  probe_write(t.pa, s, "lost");
  ck_assert_int_eq(kz_sim_run_until(t.sim, 20000 * MS), 0);
  ck_assert_str_eq(logstr(&t), "9200000000 A close s0 KZ_ETIMEDOUT\n");
  ck_assert(trace_has(t.sim, "\"reason\":\"stream_timeout\"}"));
  kz_sim_heal_all(t.sim);
  probe_write(t.pb, 0, "y");
  ck_assert_int_eq(kz_sim_run_until(t.sim, 21000 * MS), 0);
  ck_assert_str_eq(logstr(&t), "9200000000 A close s0 KZ_ETIMEDOUT\n"
                               "20002000000 B close s0 KZ_ECONNRESET\n");
  struct kz_sim_stats st;
  kz_sim_stats(t.sim, &st);
  ck_assert_uint_eq(st.streams_timed_out, 1);
  probe_close(t.pa, s);
  probe_close(t.pb, 0);
  ck_assert_int_eq(kz_sim_run_until(t.sim, 22000 * MS), 0);
  ck_assert_uint_eq(kz_sim_pending_events(t.sim), 0);
  two_hosts_free(&t);
}
END_TEST

/* Changing the loss rate of a -> b changes nothing on c -> d: every path
 * draws from its own sub-stream. */
static void run_two_paths(uint32_t loss_ab, struct kz_buf *log_b, struct kz_buf *log_d) {
  struct kz_sim *sim;
  ck_assert_int_eq(kz_sim_new(&sim, 9), 0);
  struct kz_sim_host *h[4];
  const char *names[] = {"a", "b", "c", "d"};
  for (int i = 0; i < 4; i++) {
    struct kz_addr ip = kz_addr_v4(IP_A + (uint32_t)i, 0);
    ck_assert_int_eq(kz_sim_host_add(sim, names[i], &ip, &h[i]), 0);
  }
  struct probe_cfg cfg[4] = {
      {.name = "A", .log = log_b, .udp_port = 5000},
      {.name = "B", .log = log_b, .udp_port = 6000},
      {.name = "C", .log = log_d, .udp_port = 5000},
      {.name = "D", .log = log_d, .udp_port = 6000},
  };
  struct kz_sim_proc *p[4];
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(kz_sim_proc_add(h[i], names[i], &probe_app, &cfg[i], &p[i]), 0);
  ck_assert_int_eq(kz_sim_link_set(sim, h[0], h[1],
                                   &(struct kz_sim_link_cfg){.latency_ns = MS, .jitter_ns = 5 * MS,
                                                             .loss_ppm = loss_ab}),
                   0);
  ck_assert_int_eq(kz_sim_link_set(sim, h[2], h[3],
                                   &(struct kz_sim_link_cfg){.latency_ns = MS, .jitter_ns = 5 * MS,
                                                             .loss_ppm = 100000, .dup_ppm = 100000}),
                   0);
  for (int i = 0; i < 200; i++) {
    char m[8];
    snprintf(m, sizeof m, "%d", i);
    probe_send(p[0], IP_A + 1, 6000, m);
    probe_send(p[2], IP_A + 3, 6000, m);
    ck_assert_int_eq(kz_sim_run_for(sim, MS), 0);
  }
  ck_assert_int_eq(kz_sim_run_for(sim, 100 * MS), 0);
  kz_sim_free(sim);
}

START_TEST(test_path_substreams_independent) {
  struct kz_buf b1, d1, b2, d2;
  kz_buf_init(&b1);
  kz_buf_init(&d1);
  kz_buf_init(&b2);
  kz_buf_init(&d2);
  run_two_paths(0, &b1, &d1);
  run_two_paths(300000, &b2, &d2);
  ck_assert_uint_gt(d1.len, 1000);
  ck_assert_uint_eq(d1.len, d2.len);
  ck_assert_int_eq(memcmp(d1.data, d2.data, d1.len), 0); /* c -> d: identical times */
  ck_assert_uint_gt(b1.len, b2.len);                     /* a -> b: fewer arrived */
  kz_buf_free(&b1);
  kz_buf_free(&d1);
  kz_buf_free(&b2);
  kz_buf_free(&d2);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Host faults: torn writes, clock drift, stalls */

START_TEST(test_torn_write_crash_keeps_prefix) {
  static const char full[] = "AAAABBBBCCCC";
  int reverted = 0, torn_mid = 0, torn_full = 0, new_vanished = 0, new_kept = 0;
  for (uint64_t seed = 1; seed <= 40; seed++) {
    struct two_hosts t;
    two_hosts_init(&t, seed);
    ck_assert_int_eq(kz_sim_host_set_crash_mode(t.b, (enum kz_sim_crash_mode)7), KZ_EINVAL);
    ck_assert_int_eq(kz_sim_host_set_crash_mode(t.b, KZ_SIM_CRASH_TORN), 0);
    two_hosts_start(&t);
    struct kz_env *env = kz_sim_proc_env(t.pb);
    struct kz_file *f = NULL;
    ck_assert_int_eq(kz_file_open(env, "log", KZ_FILE_WRITE | KZ_FILE_CREATE, &f), 0);
    ck_assert_int_eq(kz_file_write(f, 0, "AAAA", 4), 0);
    ck_assert_int_eq(kz_file_sync(f), 0);
    ck_assert_int_eq(kz_file_write(f, 4, "BBBB", 4), 0);
    ck_assert_int_eq(kz_file_write(f, 8, "CCCC", 4), 0);
    kz_file_close(f);
    file_put(env, "new", "ZZZ", false);
    ck_assert_int_eq(kz_sim_host_crash(t.b), 0);
    const uint8_t *d;
    size_t n;
    ck_assert_int_eq(kz_sim_file_get(t.pb, "log", false, &d, &n), 0);
    ck_assert_uint_ge(n, 4);
    ck_assert_uint_le(n, 12);
    ck_assert_int_eq(memcmp(d, full, n), 0); /* a prefix of the writes, in order */
    if (n == 4) reverted++;
    else if (n < 12) torn_mid++;
    else torn_full++;
    if (kz_sim_file_get(t.pb, "new", false, &d, &n) == KZ_ENOENT) {
      new_vanished++;
    } else {
      ck_assert_uint_le(n, 3);
      ck_assert_int_eq(memcmp(d, "ZZZ", n), 0);
      new_kept++;
    }
    two_hosts_free(&t);
  }
  ck_assert_int_gt(reverted, 0);
  ck_assert_int_gt(torn_mid, 0);
  ck_assert_int_gt(new_vanished, 0);
  ck_assert_int_gt(new_kept, 0);
  (void)torn_full;
}
END_TEST

START_TEST(test_clock_drift) {
  struct two_hosts t;
  two_hosts_init(&t, 1);
  two_hosts_start(&t);
  struct kz_env *env = kz_sim_proc_env(t.pa);
  kz_sim_host_set_clock_drift(t.a, 1000); /* 1 ms fast per second */
  ck_assert_int_eq(kz_sim_run_until(t.sim, 10000 * MS), 0);
  ck_assert_int_eq(kz_env_wall(env), KZ_SIM_EPOCH_NS + (int64_t)(10000 * MS) + (int64_t)(10 * MS));
  ck_assert_uint_eq(kz_env_now(env), 10000 * MS); /* the monotonic clock does not drift */
  kz_sim_host_set_clock_drift(t.a, -500); /* the wall clock does not jump */
  ck_assert_int_eq(kz_env_wall(env), KZ_SIM_EPOCH_NS + (int64_t)(10000 * MS) + (int64_t)(10 * MS));
  ck_assert_int_eq(kz_sim_run_until(t.sim, 20000 * MS), 0);
  ck_assert_int_eq(kz_env_wall(env), KZ_SIM_EPOCH_NS + (int64_t)(20000 * MS) + (int64_t)(5 * MS));
  /* the other host keeps true time */
  ck_assert_int_eq(kz_env_wall(kz_sim_proc_env(t.pb)), KZ_SIM_EPOCH_NS + (int64_t)(20000 * MS));
  ck_assert(trace_has(t.sim, "\"ev\":\"clock_drift\",\"host\":\"a\",\"ppm\":-500}"));
  two_hosts_free(&t);
}
END_TEST

START_TEST(test_process_stall_delays_handling) {
  struct two_hosts t;
  two_hosts_init(&t, 1);
  t.cb.n_timers = 1; /* B's timer at 3 ms */
  two_hosts_start(&t);
  kz_buf_reset(&t.log);
  ck_assert_int_eq(kz_sim_proc_stall_at(t.pb, 1 * MS, 50 * MS), 0);
  ck_assert_int_eq(kz_sim_run_until(t.sim, 2 * MS), 0);
  probe_send(t.pa, IP_B, 6000, "during");
  probe_send(t.pb, IP_A, 5000, "from-b"); /* a stalled process's earlier work still left */
  ck_assert_int_eq(kz_sim_run_until(t.sim, 100 * MS), 0);
  ck_assert_str_eq(logstr(&t), "3000000 A udp from 10.0.0.2:6000 'from-b'\n"
                               "51000000 B timer 0\n"
                               "51000000 B udp from 10.0.0.1:5000 'during'\n");
  struct kz_sim_stats st;
  kz_sim_stats(t.sim, &st);
  ck_assert_uint_eq(st.stalls, 1);
  ck_assert(trace_has(t.sim, "{\"t\":1000000,\"ev\":\"stall\",\"host\":\"b\",\"proc\":\"pb\",\"until\":51000000}"));
  two_hosts_free(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* CPU model */

/* Times of B's "udp from" log lines. */
static size_t handle_times(struct two_hosts *t, uint64_t *out, size_t max) {
  size_t n = 0;
  const char *p = logstr(t);
  while (*p && n < max) {
    const char *nl = strchr(p, '\n');
    if (strstr(p, " B udp from") && strstr(p, " B udp from") < nl) out[n++] = strtoull(p, NULL, 10);
    p = nl + 1;
  }
  return n;
}

static void cpu_burst(unsigned cores, uint64_t *times, struct kz_sim_cpu_stats *cs) {
  struct two_hosts t;
  two_hosts_init(&t, 1);
  struct kz_sim_cost c = {{0}, 0};
  c.base_ns[KZ_SIM_WORK_DGRAM] = 100 * 1000; /* 100 us per datagram */
  ck_assert_int_eq(kz_sim_set_cost(t.sim, "probe", &c), 0);
  ck_assert_int_eq(kz_sim_host_set_cores(t.b, cores), 0);
  ck_assert_uint_eq(kz_sim_host_cores(t.b), cores);
  two_hosts_start(&t);
  kz_buf_reset(&t.log);
  for (int i = 0; i < 8; i++) probe_send(t.pa, IP_B, 6000, "w");
  ck_assert_int_eq(kz_sim_run_until(t.sim, 100 * MS), 0);
  ck_assert_uint_eq(handle_times(&t, times, 8), 8);
  kz_sim_host_cpu_stats(t.b, cs);
  two_hosts_free(&t);
}

START_TEST(test_cpu_cores_serve_queue) {
  uint64_t t1[8], t2[8];
  struct kz_sim_cpu_stats c1, c2;
  cpu_burst(1, t1, &c1);
  cpu_burst(2, t2, &c2);
  /* 8 datagrams reach B at 1 ms.  One core: started 100 us apart, the
   * last done at 1 ms + 8 * cost. */
  for (int i = 0; i < 8; i++) ck_assert_uint_eq(t1[i], 1 * MS + (uint64_t)i * 100000);
  ck_assert_uint_eq(t1[7] + 100000 - 1 * MS, 8 * 100000);
  /* Two cores: half the time. */
  for (int i = 0; i < 8; i++) ck_assert_uint_eq(t2[i], 1 * MS + (uint64_t)(i / 2) * 100000);
  ck_assert_uint_eq(t2[7] + 100000 - 1 * MS, 4 * 100000);
  ck_assert_uint_eq(c1.events, 8);
  ck_assert_uint_eq(c1.busy_ns, 800000);
  ck_assert_uint_eq(c1.wait_ns, (0 + 1 + 2 + 3 + 4 + 5 + 6 + 7) * 100000);
  ck_assert_uint_eq(c1.max_wait_ns, 700000);
  ck_assert_uint_eq(c2.busy_ns, 800000);
  ck_assert_uint_eq(c2.wait_ns, 2 * (0 + 1 + 2 + 3) * 100000);
}
END_TEST

/* Mean run-queue wait of 400 datagrams sent `gap` apart to a one-core
 * host spending 100 us on each, over a jittery link. */
static uint64_t mean_wait(uint64_t gap) {
  struct two_hosts t;
  two_hosts_init(&t, 1);
  kz_sim_set_trace_memory(t.sim, false);
  struct kz_sim_cost c = {{0}, 0};
  c.base_ns[KZ_SIM_WORK_DGRAM] = 100 * 1000;
  ck_assert_int_eq(kz_sim_set_cost(t.sim, "probe", &c), 0);
  ck_assert_int_eq(kz_sim_host_set_cores(t.b, 1), 0);
  two_hosts_start(&t);
  set_link(t.sim, t.a, t.b, (struct kz_sim_link_cfg){.latency_ns = 1 * MS, .jitter_ns = 1 * MS});
  for (int i = 0; i < 400; i++) {
    probe_send(t.pa, IP_B, 6000, "load");
    ck_assert_int_eq(kz_sim_run_for(t.sim, gap), 0);
  }
  ck_assert_int_eq(kz_sim_run_for(t.sim, 100 * MS), 0);
  struct kz_sim_cpu_stats cs;
  kz_sim_host_cpu_stats(t.b, &cs);
  ck_assert_uint_eq(cs.events, 400);
  two_hosts_free(&t);
  return cs.wait_ns / cs.events;
}

START_TEST(test_cpu_latency_rises_with_load) {
  uint64_t light = mean_wait(1000 * 1000); /* 10% busy */
  uint64_t heavy = mean_wait(125 * 1000);  /* 80% busy */
  ck_assert_uint_gt(heavy, 50 * 1000);
  ck_assert_uint_gt(heavy, 3 * light);
}
END_TEST

/* Allocation k fails, for every k: building a simulator, starting
 * processes and running traffic either works or reports KZ_ENOMEM, and
 * kz_sim_free releases everything either way (the fixture checks). */
START_TEST(test_alloc_failure_sweep) {
  int successes = 0;
  int64_t k;
  for (k = 0; k < 2000 && successes == 0; k++) {
    struct kz_buf log;
    kz_buf_init(&log);
    /* the test's own log must not be what fails */
    ck_assert_int_eq(kz_buf_reserve(&log, 4096), 0);
    struct probe_cfg ca = {.name = "A", .log = &log, .udp_port = 5000};
    struct probe_cfg cb = {.name = "B", .log = &log, .udp_port = 6000, .tcp_port = 7000,
                           .storage = false};
    struct kz_sim *sim = NULL;
    struct kz_sim_host *a = NULL, *b = NULL;
    struct kz_sim_proc *pa = NULL, *pb = NULL;
    struct kz_addr ia = kz_addr_v4(IP_A, 0), ib = kz_addr_v4(IP_B, 0);
    kz_mem_fail_after(k);
    int rc = kz_sim_new(&sim, 3);
    if (!rc) kz_sim_set_trace_memory(sim, true);
    if (!rc) rc = kz_sim_host_add(sim, "a", &ia, &a);
    if (!rc) rc = kz_sim_host_add(sim, "b", &ib, &b);
    if (!rc) rc = kz_sim_proc_add(a, "pa", &probe_app, &ca, &pa);
    if (!rc) rc = kz_sim_proc_add(b, "pb", &probe_app, &cb, &pb);
    if (!rc) {
      struct probe *p = P(pa);
      struct kz_addr to = kz_addr_v4(IP_B, 7000), uto = kz_addr_v4(IP_B, 6000);
      rc = kz_stream_connect(p->env, &to, &probe_cbs, p, &p->s[0]);
      if (!rc) p->n_s = 1;
      if (!rc) rc = kz_stream_write(p->s[0], "x", 1);
      if (!rc) rc = kz_udp_send(p->udp, &uto, "y", 1);
    }
    if (!rc) rc = kz_sim_run_until(sim, 10 * MS);
    if (!rc) rc = kz_sim_run_until(sim, 20 * MS); /* failures are sticky */
    kz_mem_fail_after(-1);
    if (rc == 0) {
      successes++;
      ck_assert_ptr_nonnull(strstr((const char *)log.data, "B data s0 'x'"));
    } else {
      ck_assert_int_eq(rc, KZ_ENOMEM);
    }
    kz_sim_free(sim);
    kz_buf_free(&log);
  }
  ck_assert_int_eq(successes, 1);
  ck_assert_int_gt(k, 30); /* the scenario does enough allocations to sweep */
}
END_TEST

static Suite *sim_suite(void) {
  Suite *s = suite_create("sim");
  TCase *tc = kz_tcase(s, "time", 10);
  tcase_add_test(tc, test_event_order_ties_by_insertion);
  tcase_add_test(tc, test_virtual_time_jumps);
  tcase_add_test(tc, test_timers_one_event_per_env);
  tc = kz_tcase(s, "udp", 10);
  tcase_add_test(tc, test_udp_latency_exact);
  tcase_add_test(tc, test_udp_unbound_dropped);
  tcase_add_test(tc, test_udp_bind_rules);
  tc = kz_tcase(s, "stream", 10);
  tcase_add_test(tc, test_stream_connect_data_close_order);
  tcase_add_test(tc, test_stream_refused_after_round_trip);
  tcase_add_test(tc, test_stream_to_down_host_times_out);
  tc = kz_tcase(s, "crash", 10);
  tcase_add_test(tc, test_crash_resets_peers);
  tcase_add_test(tc, test_crash_storage_and_restart);
  tcase_add_test(tc, test_crash_reclaims_forgotten_handles);
  tcase_add_test(tc, test_kill_one_process);
  tc = kz_tcase(s, "net", 20);
  tcase_add_test(tc, test_loss_rate_10k);
  tcase_add_test(tc, test_duplication_and_reordering);
  tcase_add_test(tc, test_queue_limit_drops);
  tcase_add_test(tc, test_partition_asymmetric_and_heal);
  tcase_add_test(tc, test_stream_over_lossy_link_in_order);
  tcase_add_test(tc, test_stream_long_partition_resets);
  tcase_add_test(tc, test_path_substreams_independent);
  tc = kz_tcase(s, "host_faults", 20);
  tcase_add_test(tc, test_torn_write_crash_keeps_prefix);
  tcase_add_test(tc, test_clock_drift);
  tcase_add_test(tc, test_process_stall_delays_handling);
  tc = kz_tcase(s, "cpu", 20);
  tcase_add_test(tc, test_cpu_cores_serve_queue);
  tcase_add_test(tc, test_cpu_latency_rises_with_load);
  tc = kz_tcase(s, "alloc", 20);
  tcase_add_test(tc, test_alloc_failure_sweep);
  tc = kz_tcase(s, "trace", 10);
  tcase_add_test(tc, test_trace_lines_well_formed);
  tc = kz_tcase(s, "echo", 20);
  tcase_add_test(tc, test_echo_example_two_hosts);
  tcase_add_test(tc, test_echo_example_too_short);
  tcase_add_test(tc, test_echo_server_crash_restart);
  return s;
}

int main(void) { return kz_run_suite(sim_suite()); }
