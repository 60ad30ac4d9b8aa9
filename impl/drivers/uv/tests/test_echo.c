/* test_echo.c — the echo node on the real driver: server and pinger over 127.0.0.1 in one libuv loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/echo.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz_test.h"
#include "uv_tests.h"

#define MS 1000000ull

struct run {
  struct kz_echo_server *srv;
  struct kz_echo_client *cli;
  int done_calls;
  uint64_t min_ticks;
};

static void on_done(void *arg, struct kz_echo_client *c) {
  struct run *r = arg;
  r->done_calls++;
  ck_assert(kz_echo_client_done(c));
}

static bool run_finished(void *arg) {
  struct run *r = arg;
  return r->done_calls > 0 && kz_echo_server_stats(r->srv)->ticks >= r->min_ticks;
}

static bool server_idle(void *arg) {
  struct run *r = arg;
  return kz_echo_server_stats(r->srv)->streams_open == 0;
}

struct only_timer {
  struct kz_uv_env *a, *b;
};

static bool drivers_idle(void *arg) {
  struct only_timer *o = arg;
  return kz_uv_env_live_handles(o->a) == 1 && kz_uv_env_live_handles(o->b) == 1;
}

START_TEST(echo_server_and_client_on_loopback) {
  char tmp[64], dir[96];
  tmpdir_make(tmp, sizeof(tmp));
  snprintf(dir, sizeof(dir), "%s/srv", tmp);
  struct tloop t;
  struct tenv ts, tc;
  tloop_open(&t);
  tenv_open(&ts, &t, "srv", 1, dir);
  tenv_open(&tc, &t, "cli", 2, NULL);
  ts.env->log_level = KZ_LOG_INFO;
  tc.env->log_level = KZ_LOG_INFO;

  const uint32_t N = 25;
  struct run r = {.min_ticks = 7};
  struct kz_echo_server_cfg scfg = {
      .udp = loopback(0), .tcp = loopback(0), .tick_ns = 10 * MS, .persist_every = 3};
  ck_assert_int_eq(kz_echo_server_new(&r.srv, ts.env, &scfg), 0);
  struct kz_addr su = kz_echo_server_udp_addr(r.srv), st = kz_echo_server_tcp_addr(r.srv);
  ck_assert_uint_ne(su.port, 0);
  ck_assert_uint_ne(st.port, 0);
  ck_assert_uint_eq(kz_addr_v4_host(&su), 0x7f000001u);

  struct kz_echo_client_cfg ccfg = {.server_udp = su,
                                    .server_tcp = st,
                                    .local_udp = loopback(0),
                                    .interval_ns = 4 * MS,
                                    .count = N,
                                    .on_done = on_done,
                                    .done_arg = &r};
  ck_assert_int_eq(kz_echo_client_new(&r.cli, tc.env, &ccfg), 0);
  ck_assert(!kz_echo_client_done(r.cli));
  ck_assert(tloop_run_until(&t, run_finished, &r, 5000));

  const struct kz_echo_client_stats *cs = kz_echo_client_stats(r.cli);
  const struct kz_echo_server_stats *ss = kz_echo_server_stats(r.srv);
  ck_assert(kz_echo_client_done(r.cli));
  ck_assert_int_eq(r.done_calls, 1);
  ck_assert_uint_eq(cs->udp_sent, N);
  ck_assert_uint_eq(cs->udp_replies, N);
  ck_assert_uint_eq(cs->udp_dups, 0);
  ck_assert_uint_eq(cs->udp_bad, 0);
  ck_assert_uint_eq(cs->tcp_sent, N);
  ck_assert_uint_eq(cs->tcp_replies, N);
  ck_assert_uint_eq(cs->tcp_bad, 0);
  ck_assert(cs->tcp_connected);
  ck_assert(!cs->tcp_ended);
  ck_assert_uint_eq(cs->send_errors, 0);
  ck_assert_uint_eq(ss->datagrams_echoed, N);
  ck_assert_uint_eq(ss->bytes_echoed, cs->tcp_bytes_received);
  ck_assert_uint_eq(ss->udp_bytes_echoed, cs->tcp_bytes_received); /* same lines */
  ck_assert_uint_ge(cs->tcp_bytes_received, N * strlen("ping 0 01234567\n"));
  ck_assert_uint_eq(ss->streams_accepted, 1);
  ck_assert_uint_eq(ss->streams_open, 1);
  ck_assert_uint_ge(ss->ticks, 7);
  ck_assert_uint_ge(ss->persists, 2);
  ck_assert_uint_eq(ss->persist_errors, 0);
  ck_assert_uint_eq(ss->restored_ticks, 0);
  ck_assert(tenv_log_has(&ts, "srv/echo-server: echo server up"));
  ck_assert(tenv_log_has(&ts, "accepted from 127.0.0.1:"));
  ck_assert(tenv_log_has(&tc, "cli/echo-client: pinging udp 127.0.0.1:"));
  ck_assert(tenv_log_has(&tc, "done: 25 udp and 25 stream echoes"));

  /* The persisted counter is on disk, whole, at a multiple of 3. */
  char path[160];
  snprintf(path, sizeof(path), "%s/echo/ticks", dir);
  size_t len = 0;
  char *raw = (char *)kz_test_read_file(path, &len);
  ck_assert_ptr_nonnull(raw);
  unsigned long long persisted = 0;
  ck_assert_int_eq(sscanf(raw, "ticks %llu\n", &persisted), 1);
  free(raw);
  ck_assert_uint_eq(persisted % 3, 0);
  ck_assert_uint_ge(persisted, 6);
  ck_assert_uint_le(persisted, ss->ticks);

  /* The client leaves: the server sees the stream end and drops it. */
  kz_echo_client_free(r.cli);
  r.cli = NULL;
  ck_assert(tloop_run_until(&t, server_idle, &r, 3000));
  ck_assert(tenv_log_has(&ts, "ended: KZ_OK"));
  uint64_t ticks = ss->ticks;
  kz_echo_server_free(r.srv);
  /* Let both drivers finish closing (flushes, shutdowns). */
  struct only_timer ot = {ts.uv, tc.uv};
  ck_assert(tloop_run_until(&t, drivers_idle, &ot, 3000));
  r.srv = NULL;
  ck_assert_int_eq(ts.env->n_udp + ts.env->n_listeners + ts.env->n_streams +
                       ts.env->n_files, 0);
  ck_assert_int_eq(tc.env->n_udp + tc.env->n_streams, 0);
  ck_assert_uint_eq(kz_env_timer_count(ts.env), 0);
  tenv_close(&ts);
  tenv_close(&tc);

  /* A new incarnation on the same data directory reads the counter. */
  tenv_open(&ts, &t, "srv", 1, dir);
  struct kz_echo_server_cfg scfg2 = {.tick_ns = 10 * MS, .persist_every = 3};
  ck_assert_int_eq(kz_echo_server_new(&r.srv, ts.env, &scfg2), 0);
  ck_assert_uint_eq(kz_echo_server_stats(r.srv)->restored_ticks, persisted);
  ck_assert_uint_le(persisted, ticks);
  ck_assert_uint_eq(kz_echo_server_udp_addr(r.srv).family, 0);
  kz_echo_server_free(r.srv);
  tenv_close(&ts);
  tloop_close(&t);
  tmpdir_remove(tmp);
}
END_TEST

/* A UDP sink that records what arrives (and optionally answers). */
struct sink {
  struct kz_buf got;
  int n;
  bool answer_bad; /* reply with a corrupted echo, then the real one */
};

static void sink_rx(void *arg, struct kz_udp *u, const struct kz_addr *from,
                    const uint8_t *data, size_t len) {
  struct sink *k = arg;
  k->n++;
  ck_assert_int_eq(kz_buf_append(&k->got, data, len), 0);
  if (k->answer_bad) {
    uint8_t bad[128];
    ck_assert_uint_lt(len, sizeof(bad));
    memcpy(bad, data, len);
    bad[len - 2] ^= 1; /* flip a bit of the tag */
    ck_assert_int_eq(kz_udp_send(u, from, bad, len), 0);
    ck_assert_int_eq(kz_udp_send(u, from, data, len), 0);
    ck_assert_int_eq(kz_udp_send(u, from, data, len), 0); /* duplicate */
  }
}

static bool sink_has3(void *arg) { return ((struct sink *)arg)->n >= 3; }

/* Runs a pinger with `seed` against a sink; returns the bytes it sent. */
static void traffic(uint64_t seed, struct kz_buf *out) {
  struct tloop t;
  struct tenv tk, tc;
  tloop_open(&t);
  tenv_open(&tk, &t, "sink", 1, NULL);
  tenv_open(&tc, &t, "cli", seed, NULL);
  struct sink k = {0};
  struct kz_udp *u = NULL;
  struct kz_addr any = loopback(0);
  ck_assert_int_eq(kz_udp_bind(tk.env, &any, sink_rx, &k, &u), 0);
  struct kz_echo_client_cfg ccfg = {
      .server_udp = u->local, .interval_ns = 1 * MS, .count = 3};
  struct kz_echo_client *c = NULL;
  ck_assert_int_eq(kz_echo_client_new(&c, tc.env, &ccfg), 0);
  ck_assert(tloop_run_until(&t, sink_has3, &k, 3000));
  ck_assert(!kz_echo_client_done(c));
  ck_assert_int_eq(kz_buf_append(out, k.got.data, k.got.len), 0);
  kz_echo_client_free(c);
  kz_udp_close(u);
  kz_buf_free(&k.got);
  tenv_close(&tk);
  tenv_close(&tc);
  tloop_close(&t);
}

START_TEST(echo_traffic_follows_the_seed) {
  struct kz_buf a = {0}, b = {0}, c = {0};
  traffic(7, &a);
  traffic(7, &b);
  traffic(8, &c);
  ck_assert(kz_slice_eq(kz_buf_slice(&a), kz_buf_slice(&b)));
  ck_assert(!kz_slice_eq(kz_buf_slice(&a), kz_buf_slice(&c)));
  ck_assert(a.len > 3 * strlen("ping 0 01234567\n") - 1);
  ck_assert_int_eq(memcmp(a.data, "ping 0 ", 7), 0);
  kz_buf_free(&a);
  kz_buf_free(&b);
  kz_buf_free(&c);
}
END_TEST

static bool cli_replies3(void *arg) {
  const struct kz_echo_client_stats *st = kz_echo_client_stats(arg);
  return st->udp_replies >= 3 && st->udp_dups >= 3;
}

START_TEST(echo_client_rejects_bad_echoes) {
  struct tloop t;
  struct tenv tk, tc;
  tloop_open(&t);
  tenv_open(&tk, &t, "fake", 1, NULL);
  tenv_open(&tc, &t, "cli", 3, NULL);
  struct sink k = {.answer_bad = true};
  struct kz_udp *u = NULL;
  struct kz_addr any = loopback(0);
  ck_assert_int_eq(kz_udp_bind(tk.env, &any, sink_rx, &k, &u), 0);
  struct kz_echo_client_cfg ccfg = {
      .server_udp = u->local, .interval_ns = 1 * MS, .count = 3};
  struct kz_echo_client *c = NULL;
  ck_assert_int_eq(kz_echo_client_new(&c, tc.env, &ccfg), 0);
  ck_assert(tloop_run_until(&t, cli_replies3, c, 3000));
  const struct kz_echo_client_stats *st = kz_echo_client_stats(c);
  ck_assert_uint_eq(st->udp_replies, 3);
  ck_assert_uint_eq(st->udp_bad, 3);
  ck_assert_uint_eq(st->udp_dups, 3);
  ck_assert(kz_echo_client_done(c));
  ck_assert(tenv_log_has(&tc, "unexpected datagram"));
  kz_echo_client_free(c);
  kz_udp_close(u);
  kz_buf_free(&k.got);
  tenv_close(&tk);
  tenv_close(&tc);
  tloop_close(&t);
}
END_TEST

START_TEST(echo_constructors_survive_allocation_failures) {
  char tmp[64];
  tmpdir_make(tmp, sizeof(tmp));
  struct tloop t;
  struct tenv te;
  tloop_open(&t);
  tenv_open(&te, &t, "fail", 1, tmp);
  struct kz_echo_server_cfg scfg = {
      .udp = loopback(0), .tcp = loopback(0), .tick_ns = 10 * MS, .persist_every = 1};
  struct kz_echo_server *srv = NULL;
  int rc = KZ_ENOMEM;
  for (int64_t k = 0; rc != 0; k++) {
    ck_assert_int_lt(k, 100);
    kz_mem_fail_after(k);
    rc = kz_echo_server_new(&srv, te.env, &scfg);
    kz_mem_fail_after(-1);
    ck_assert(rc == 0 || rc == KZ_ENOMEM);
    ck_assert_int_eq(te.env->n_udp + te.env->n_listeners, rc == 0 ? 2 : 0);
    ck_assert_uint_eq(kz_env_timer_count(te.env), rc == 0 ? 1 : 0);
    uv_run(&t.loop, UV_RUN_NOWAIT); /* let failed handles finish closing */
  }
  struct kz_echo_client_cfg ccfg = {.server_udp = kz_echo_server_udp_addr(srv),
                                    .server_tcp = kz_echo_server_tcp_addr(srv),
                                    .count = 4};
  struct kz_echo_client *c = NULL;
  rc = KZ_ENOMEM;
  for (int64_t k = 0; rc != 0; k++) {
    ck_assert_int_lt(k, 100);
    kz_mem_fail_after(k);
    rc = kz_echo_client_new(&c, te.env, &ccfg);
    kz_mem_fail_after(-1);
    ck_assert(rc == 0 || rc == KZ_ENOMEM);
    uv_run(&t.loop, UV_RUN_NOWAIT);
  }
  ck_assert_int_eq(kz_echo_server_new(&srv, NULL, &scfg), KZ_EINVAL);
  struct kz_echo_server_cfg badpath = {.state_path = "../x", .persist_every = 1};
  struct kz_echo_server *s2 = NULL;
  ck_assert_int_eq(kz_echo_server_new(&s2, te.env, &badpath), KZ_EINVAL);
  struct kz_echo_client_cfg none = {.count = 1};
  struct kz_echo_client *c2 = NULL;
  ck_assert_int_eq(kz_echo_client_new(&c2, te.env, &none), KZ_EINVAL);
  kz_echo_client_free(c);
  kz_echo_server_free(srv);
  tenv_close(&te);
  tloop_close(&t);
  tmpdir_remove(tmp);
}
END_TEST

void add_echo_tests(Suite *s) {
  TCase *tc = kz_tcase(s, "echo", 20);
  tcase_add_test(tc, echo_server_and_client_on_loopback);
  tcase_add_test(tc, echo_traffic_follows_the_seed);
  tcase_add_test(tc, echo_client_rejects_bad_echoes);
  tcase_add_test(tc, echo_constructors_survive_allocation_failures);
}
