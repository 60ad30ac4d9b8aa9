/* test_driver.c — kz_uv driver tests: timers, UDP, streams, files and handle life cycles on real loopback sockets. */
#include <arpa/inet.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz_test.h"
#include "uv_tests.h"

/* ------------------------------------------------------------------ */
/* Timers                                                              */

struct tfire {
  struct kz_timer t;
  struct tord *o;
  int id;
  uint64_t deadline;
};

struct tord {
  struct kz_env *env;
  int order[8];
  int n;
  bool early; /* a timer fired before its deadline */
  struct tfire *restarter;
};

static void tfire_cb(void *arg) {
  struct tfire *f = arg;
  /* A fired timer is no longer queued: compare with its recorded deadline. */
  ck_assert(!kz_timer_active(&f->t));
  if (kz_env_now(f->o->env) < f->deadline) f->o->early = true;
  f->o->order[f->o->n++] = f->id;
}

/* Fires only once all four timers fired. */
static bool tord_done(void *arg) { return ((struct tord *)arg)->n >= 4; }

START_TEST(timers_equal_deadlines_fire_in_start_order) {
  struct tloop t;
  struct tenv te;
  tloop_open(&t);
  tenv_open(&te, &t, "timers", 1, NULL);
  struct tord o = {.env = te.env};
  struct tfire f[4];
  uint64_t now = kz_env_now(te.env);
  uint64_t d = now + 30 * 1000000ull;
  /* Three timers on one deadline, started 2, 0, 1; one earlier timer
   * started last.  Expect the early one, then start order. */
  int ids[4] = {2, 0, 1, 3};
  for (int i = 0; i < 4; i++) {
    f[i].o = &o;
    f[i].id = ids[i];
    kz_timer_init(&f[i].t, te.env, tfire_cb, &f[i]);
  }
  uint64_t deadline[4] = {d, d, d, now + 10 * 1000000ull};
  for (int i = 0; i < 4; i++) {
    f[i].deadline = deadline[i];
    ck_assert_int_eq(kz_timer_start_at(&f[i].t, deadline[i]), 0);
  }
  ck_assert_uint_eq(kz_env_timer_count(te.env), 4);
  ck_assert(tloop_run_until(&t, tord_done, &o, 3000));
  ck_assert_int_eq(o.order[0], 3);
  ck_assert_int_eq(o.order[1], 2);
  ck_assert_int_eq(o.order[2], 0);
  ck_assert_int_eq(o.order[3], 1);
  /* Never early, and not absurdly late either. */
  ck_assert(!o.early);
  ck_assert_uint_ge(kz_env_now(te.env), d);
  ck_assert_uint_eq(kz_env_timer_count(te.env), 0);
  tenv_close(&te);
  tloop_close(&t);
}
END_TEST

struct tstop {
  struct kz_timer a, b;
  int a_fired, b_fired;
};

static void tstop_a(void *arg) {
  struct tstop *s = arg;
  s->a_fired++;
  kz_timer_stop(&s->b); /* b was due at the same time: it must not fire */
}

static void tstop_b(void *arg) { ((struct tstop *)arg)->b_fired++; }

START_TEST(timers_stop_restart_and_past_deadlines) {
  struct tloop t;
  struct tenv te;
  tloop_open(&t);
  tenv_open(&te, &t, "timers", 1, NULL);
  struct tstop s = {0};
  kz_timer_init(&s.a, te.env, tstop_a, &s);
  kz_timer_init(&s.b, te.env, tstop_b, &s);
  uint64_t now = kz_env_now(te.env);
  /* A deadline in the past fires at the next chance. */
  ck_assert_int_eq(kz_timer_start_at(&s.a, now > 5 ? now - 5 : 0), 0);
  ck_assert_int_eq(kz_timer_start_at(&s.b, now > 5 ? now - 5 : 0), 0);
  tloop_run_until(&t, NULL, NULL, 50);
  ck_assert_int_eq(s.a_fired, 1);
  ck_assert_int_eq(s.b_fired, 0);
  /* Restarting moves the deadline; stopping cancels. */
  ck_assert_int_eq(kz_timer_start(&s.b, 500 * 1000000ull), 0);
  ck_assert_int_eq(kz_timer_start(&s.b, 5 * 1000000ull), 0);
  ck_assert_int_eq(kz_timer_start(&s.a, 20 * 1000000ull), 0);
  kz_timer_stop(&s.a);
  tloop_run_until(&t, NULL, NULL, 60);
  ck_assert_int_eq(s.b_fired, 1);
  ck_assert_int_eq(s.a_fired, 1);
  ck_assert(!kz_timer_active(&s.a) && !kz_timer_active(&s.b));
  tenv_close(&te);
  tloop_close(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Clock and misc                                                      */

static int64_t fixed_wall(void *arg) { return *(int64_t *)arg; }

START_TEST(clocks_and_wall_option) {
  struct tloop t;
  struct tenv te;
  tloop_open(&t);
  tenv_open(&te, &t, "clock", 1, NULL);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t host = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  int64_t w = kz_env_wall(te.env);
  ck_assert_int_ge(w, host);
  ck_assert_int_lt(w - host, 5 * 1000000000ll);
  kz_uv_env_set_wall_offset(te.uv, 3600ll * 1000000000);
  ck_assert_int_ge(kz_env_wall(te.env) - w, 3600ll * 1000000000);
  int64_t fixed = 1234567890123456789ll;
  kz_uv_env_set_wall_clock(te.uv, fixed_wall, &fixed);
  kz_uv_env_set_wall_offset(te.uv, -89);
  ck_assert_int_eq(kz_env_wall(te.env), 1234567890123456700ll);
  kz_uv_env_set_wall_clock(te.uv, NULL, NULL);
  kz_uv_env_set_wall_offset(te.uv, 0);
  ck_assert_int_lt(kz_env_wall(te.env) - host, 5 * 1000000000ll);
  /* Monotonic time moves forward. */
  uint64_t a = kz_env_now(te.env);
  tloop_run_until(&t, NULL, NULL, 5);
  ck_assert_uint_gt(kz_env_now(te.env), a);
  ck_assert_ptr_eq(kz_uv_env_from(te.env), te.uv);
  kz_log(te.env, KZ_LOG_INFO, "test", "hello %d", 42);
  ck_assert(tenv_log_has(&te, "hello 42"));
  ck_assert(tenv_log_has(&te, "clock/test"));
  /* The driver's only handle is its timer. */
  ck_assert_uint_eq(kz_uv_env_live_handles(te.uv), 1);
  tenv_close(&te);
  tloop_close(&t);
}
END_TEST

START_TEST(error_mapping) {
  ck_assert_int_eq(kz_uv_err(0), 0);
  ck_assert_int_eq(kz_uv_err(UV_ECONNREFUSED), KZ_ECONNREFUSED);
  ck_assert_int_eq(kz_uv_err(UV_ECONNRESET), KZ_ECONNRESET);
  ck_assert_int_eq(kz_uv_err(UV_EPIPE), KZ_ECONNRESET);
  ck_assert_int_eq(kz_uv_err(UV_EADDRINUSE), KZ_EADDRINUSE);
  ck_assert_int_eq(kz_uv_err(UV_ENOENT), KZ_ENOENT);
  ck_assert_int_eq(kz_uv_err(UV_EEXIST), KZ_EEXIST);
  ck_assert_int_eq(kz_uv_err(UV_ENOSPC), KZ_ENOSPC);
  ck_assert_int_eq(kz_uv_err(UV_ETIMEDOUT), KZ_ETIMEDOUT);
  ck_assert_int_eq(kz_uv_err(UV_EMSGSIZE), KZ_EMSGSIZE);
  ck_assert_int_eq(kz_uv_err(UV_ENETUNREACH), KZ_EHOSTUNREACH);
  ck_assert_int_eq(kz_uv_err(UV_ENOMEM), KZ_ENOMEM);
  ck_assert_int_eq(kz_uv_err(UV_EACCES), KZ_EPERM);
  ck_assert_int_eq(kz_uv_err(UV_E2BIG), KZ_EIO);
  ck_assert_int_eq(kz_uv_err(uv_translate_sys_error(ENOENT)), KZ_ENOENT);
}
END_TEST

START_TEST(env_new_rejects_bad_args) {
  struct tloop t;
  tloop_open(&t);
  struct kz_uv_env *e = NULL;
  ck_assert_int_eq(kz_uv_env_new(NULL, &t.loop, "x", 1, NULL), KZ_EINVAL);
  ck_assert_int_eq(kz_uv_env_new(&e, NULL, "x", 1, NULL), KZ_EINVAL);
  ck_assert_int_eq(kz_uv_env_new(&e, &t.loop, NULL, 1, NULL), KZ_EINVAL);
  char longname[100];
  memset(longname, 'n', sizeof(longname) - 1);
  longname[sizeof(longname) - 1] = '\0';
  ck_assert_int_eq(kz_uv_env_new(&e, &t.loop, longname, 1, NULL), KZ_EINVAL);
  ck_assert_ptr_null(e);
  /* Allocation failures leave nothing behind. */
  for (int64_t k = 0; k < 4; k++) {
    kz_mem_fail_after(k);
    int rc = kz_uv_env_new(&e, &t.loop, "x", 1, NULL);
    kz_mem_fail_after(-1);
    if (rc == 0) {
      kz_uv_env_free(e);
      e = NULL;
      uv_run(&t.loop, UV_RUN_DEFAULT);
    } else {
      ck_assert_int_eq(rc, KZ_ENOMEM);
    }
  }
  tloop_close(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* UDP                                                                 */

struct udp_rx {
  int n;
  struct kz_addr from;
  uint8_t data[128];
  size_t len;
  bool reply;
  bool close_self;
};

static void udp_rx_cb(void *arg, struct kz_udp *u, const struct kz_addr *from,
                      const uint8_t *data, size_t len) {
  struct udp_rx *r = arg;
  r->n++;
  r->from = *from;
  r->len = len < sizeof(r->data) ? len : sizeof(r->data);
  memcpy(r->data, data, r->len);
  if (r->reply) ck_assert_int_eq(kz_udp_send(u, from, "pong", 4), 0);
}

static bool rx_one(void *arg) { return ((struct udp_rx *)arg)->n >= 1; }
static bool rx_200(void *arg) { return ((struct udp_rx *)arg)->n >= 200; }

START_TEST(udp_send_and_receive) {
  struct tloop t;
  struct tenv te;
  tloop_open(&t);
  tenv_open(&te, &t, "udp", 1, NULL);
  struct udp_rx ra = {0}, rb = {.reply = true};
  struct kz_udp *a = NULL, *b = NULL, *c = NULL;
  struct kz_addr any = loopback(0);
  ck_assert_int_eq(kz_udp_bind(te.env, &any, udp_rx_cb, &ra, &a), 0);
  ck_assert_int_eq(kz_udp_bind(te.env, &any, udp_rx_cb, &rb, &b), 0);
  /* Port 0 was replaced by the port the OS chose. */
  ck_assert_uint_ne(a->local.port, 0);
  ck_assert_uint_ne(b->local.port, 0);
  ck_assert_uint_ne(a->local.port, b->local.port);
  ck_assert_uint_eq(kz_addr_v4_host(&a->local), 0x7f000001u);
  /* The same address again is taken. */
  ck_assert_int_eq(kz_udp_bind(te.env, &b->local, udp_rx_cb, &rb, &c),
                   KZ_EADDRINUSE);
  ck_assert_int_eq(kz_udp_send(a, &b->local, "ping", 4), 0);
  ck_assert(tloop_run_until(&t, rx_one, &rb, 3000));
  ck_assert_int_eq(rb.n, 1);
  ck_assert(kz_addr_eq(&rb.from, &a->local));
  ck_assert_uint_eq(rb.len, 4);
  ck_assert_mem_eq(rb.data, "ping", 4);
  ck_assert(tloop_run_until(&t, rx_one, &ra, 3000));
  ck_assert(kz_addr_eq(&ra.from, &b->local));
  ck_assert_mem_eq(ra.data, "pong", 4);
  /* Datagrams over the IP limit are refused, not truncated. */
  static const uint8_t big[70000];
  ck_assert_int_eq(kz_udp_send(a, &b->local, big, sizeof(big)), KZ_EMSGSIZE);
  /* A length that does not fit uv_buf_t's unsigned int is refused before
   * anything reads the bytes: cut to 32 bits it would send 1 byte. */
  ck_assert_int_eq(kz_udp_send(a, &b->local, "x", (size_t)UINT_MAX + 2), KZ_EMSGSIZE);
  tloop_run_until(&t, NULL, NULL, 20);
  ck_assert_int_eq(rb.n, 1);
  /* A burst is delivered in full (loopback does not drop 200 small
   * datagrams) and in order. */
  rb.reply = false;
  rb.n = 0;
  for (int i = 0; i < 200; i++) {
    uint8_t msg[2] = {(uint8_t)(i >> 8), (uint8_t)i};
    ck_assert_int_eq(kz_udp_send(a, &b->local, msg, 2), 0);
  }
  ck_assert(tloop_run_until(&t, rx_200, &rb, 3000));
  ck_assert_int_eq(rb.n, 200);
  ck_assert_uint_eq(rb.len, 2);
  ck_assert_uint_eq(rb.data[0] * 256u + rb.data[1], 199);
  ck_assert_int_eq(te.env->n_udp, 2);
  kz_udp_close(a);
  kz_udp_close(b);
  ck_assert_int_eq(te.env->n_udp, 0);
  /* The handles close asynchronously; the kz objects stay valid until
   * libuv is done with them, then everything is released. */
  tloop_run_until(&t, NULL, NULL, 20);
  ck_assert_uint_eq(kz_uv_env_live_handles(te.uv), 1);
  tenv_close(&te);
  tloop_close(&t);
}
END_TEST

START_TEST(udp_closed_while_datagrams_in_flight) {
  struct tloop t;
  struct tenv te;
  tloop_open(&t);
  tenv_open(&te, &t, "udp", 1, NULL);
  struct udp_rx ra = {0}, rb = {0};
  struct kz_udp *a = NULL, *b = NULL;
  struct kz_addr any = loopback(0);
  ck_assert_int_eq(kz_udp_bind(te.env, &any, udp_rx_cb, &ra, &a), 0);
  ck_assert_int_eq(kz_udp_bind(te.env, &any, udp_rx_cb, &rb, &b), 0);
  for (int i = 0; i < 10; i++)
    ck_assert_int_eq(kz_udp_send(a, &b->local, "x", 1), 0);
  /* The datagrams sit in b's socket buffer: closing b now must not
   * deliver any of them. */
  kz_udp_close(b);
  tloop_run_until(&t, NULL, NULL, 50);
  ck_assert_int_eq(rb.n, 0);
  kz_udp_close(a);
  tenv_close(&te);
  tloop_close(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Streams                                                             */

/* One side of a stream test: records what its callbacks saw. */
struct side {
  struct kz_stream *s;
  int connects, closes, datas;
  int status;
  struct kz_buf rx;
  bool close_on_end; /* kz_stream_close from on_close */
  const uint8_t *write_on_connect;
  size_t write_on_connect_len;
  bool close_on_connect;
};

static void side_on_connect(void *arg, struct kz_stream *s) {
  struct side *sd = arg;
  sd->connects++;
  if (sd->write_on_connect)
    ck_assert_int_eq(kz_stream_write(s, sd->write_on_connect,
                                     sd->write_on_connect_len), 0);
  if (sd->close_on_connect) {
    kz_stream_close(s);
    sd->s = NULL;
  }
}

static void side_on_data(void *arg, struct kz_stream *s, const uint8_t *data,
                         size_t len) {
  struct side *sd = arg;
  sd->datas++;
  ck_assert_int_eq(kz_buf_append(&sd->rx, data, len), 0);
}

static void side_on_close(void *arg, struct kz_stream *s, int status) {
  struct side *sd = arg;
  sd->closes++;
  sd->status = status;
  if (sd->close_on_end) {
    kz_stream_close(s);
    sd->s = NULL;
  }
}

static const struct kz_stream_cbs side_cbs = {side_on_connect, side_on_data,
                                              side_on_close};

struct acceptor {
  struct side side;
  int accepts;
  bool reject; /* close right away in on_accept */
};

static void acceptor_on_accept(void *arg, struct kz_listener *l,
                               struct kz_stream *s) {
  struct acceptor *a = arg;
  a->accepts++;
  if (a->reject) {
    kz_stream_close(s);
    return;
  }
  a->side.s = s;
  kz_stream_set_cbs(s, &side_cbs, &a->side);
}

static bool side_closed(void *arg) { return ((struct side *)arg)->closes > 0; }
static bool side_connected(void *arg) { return ((struct side *)arg)->connects > 0; }
static bool acc_accepted(void *arg) { return ((struct acceptor *)arg)->accepts > 0; }

START_TEST(stream_connect_refused) {
  struct tloop t;
  struct tenv te;
  tloop_open(&t);
  tenv_open(&te, &t, "tcp", 1, NULL);
  /* Find a port nobody listens on: listen on port 0, then close. */
  struct acceptor acc = {0};
  struct kz_listener *l = NULL;
  struct kz_addr any = loopback(0);
  ck_assert_int_eq(kz_stream_listen(te.env, &any, acceptor_on_accept, &acc, &l), 0);
  struct kz_addr dead = l->local;
  ck_assert_uint_ne(dead.port, 0);
  kz_listener_close(l);
  tloop_run_until(&t, NULL, NULL, 10);

  struct side c = {.close_on_end = true};
  ck_assert_int_eq(kz_stream_connect(te.env, &dead, &side_cbs, &c, &c.s), 0);
  ck_assert_int_eq(c.s->state, KZ_STREAM_CONNECTING);
  /* Writing while connecting is allowed; the bytes die with the stream. */
  ck_assert_int_eq(kz_stream_write(c.s, "lost", 4), 0);
  ck_assert(tloop_run_until(&t, side_closed, &c, 3000));
  ck_assert_int_eq(c.connects, 0);
  ck_assert_int_eq(c.closes, 1);
  ck_assert_int_eq(c.status, KZ_ECONNREFUSED);
  ck_assert_ptr_null(c.s);
  ck_assert_int_eq(te.env->n_streams, 0);
  /* Port 0 is not a destination. */
  struct kz_stream *s = NULL;
  ck_assert_int_eq(kz_stream_connect(te.env, &any, &side_cbs, &c, &s), KZ_EINVAL);
  tenv_close(&te);
  tloop_close(&t);
}
END_TEST

/* A connection the driver cannot take (allocation fails) is accepted
 * into the listener's spare handle and closed: libuv would otherwise stop
 * polling the listener for good and keep the fd.  Two connections at once
 * also cover the one that waits for the spare to be reopened. */
START_TEST(stream_listener_survives_accept_allocation_failure) {
  struct tloop t;
  struct tenv te;
  tloop_open(&t);
  tenv_open(&te, &t, "tcp", 1, NULL);
  struct acceptor acc = {.side.close_on_end = true};
  struct kz_listener *l = NULL;
  struct kz_addr any = loopback(0);
  ck_assert_int_eq(kz_stream_listen(te.env, &any, acceptor_on_accept, &acc, &l), 0);
  struct side c1 = {.close_on_end = true}, c2 = {.close_on_end = true};
  ck_assert_int_eq(kz_stream_connect(te.env, &l->local, &side_cbs, &c1, &c1.s), 0);
  ck_assert_int_eq(kz_stream_connect(te.env, &l->local, &side_cbs, &c2, &c2.s), 0);
  /* Clients need no allocation from here on; the server's accept does. */
  kz_mem_fail_after(0);
  bool both = tloop_run_until(&t, side_closed, &c1, 3000) &&
              tloop_run_until(&t, side_closed, &c2, 3000);
  kz_mem_fail_after(-1);
  ck_assert(both);
  ck_assert_int_eq(acc.accepts, 0);
  ck_assert(c1.status == 0 || c1.status == KZ_ECONNRESET);
  ck_assert(c2.status == 0 || c2.status == KZ_ECONNRESET);
  ck_assert_ptr_null(c1.s);
  ck_assert_ptr_null(c2.s);
  /* The listener still accepts. */
  struct side c3 = {0};
  ck_assert_int_eq(kz_stream_connect(te.env, &l->local, &side_cbs, &c3, &c3.s), 0);
  ck_assert(tloop_run_until(&t, acc_accepted, &acc, 3000));
  ck_assert_int_eq(acc.accepts, 1);
  ck_assert_int_eq(kz_stream_write(c3.s, "hi", 2), 0);
  for (int i = 0; i < 300 && acc.side.rx.len < 2; i++) tloop_run_until(&t, NULL, NULL, 10);
  ck_assert_uint_eq(acc.side.rx.len, 2);
  kz_stream_close(c3.s);
  ck_assert(tloop_run_until(&t, side_closed, &acc.side, 3000));
  kz_listener_close(l);
  kz_buf_free(&acc.side.rx);
  tloop_run_until(&t, NULL, NULL, 10);
  ck_assert_uint_eq(kz_uv_env_live_handles(te.uv), 1);
  tenv_close(&te);
  tloop_close(&t);
}
END_TEST

START_TEST(stream_echo_both_ways_and_orderly_close) {
  struct tloop t;
  struct tenv te;
  tloop_open(&t);
  tenv_open(&te, &t, "tcp", 1, NULL);
  struct acceptor acc = {.side.close_on_end = true};
  struct kz_listener *l = NULL, *l2 = NULL;
  struct kz_addr any = loopback(0);
  ck_assert_int_eq(kz_stream_listen(te.env, &any, acceptor_on_accept, &acc, &l), 0);
  ck_assert_int_eq(kz_stream_listen(te.env, &l->local, acceptor_on_accept, &acc, &l2),
                   KZ_EADDRINUSE);
  struct side c = {0};
  ck_assert_int_eq(kz_stream_connect(te.env, &l->local, &side_cbs, &c, &c.s), 0);
  ck_assert(tloop_run_until(&t, side_connected, &c, 3000));
  ck_assert(tloop_run_until(&t, acc_accepted, &acc, 3000));
  ck_assert_int_eq(c.s->state, KZ_STREAM_OPEN);
  /* Both ends agree on the addresses. */
  ck_assert(kz_addr_eq(&c.s->peer, &l->local));
  ck_assert(kz_addr_eq(&acc.side.s->peer, &c.s->local));
  ck_assert(kz_addr_eq(&acc.side.s->local, &l->local));
  ck_assert_uint_ne(c.s->id, acc.side.s->id);
  ck_assert_int_eq(kz_stream_write(c.s, "hello ", 6), 0);
  ck_assert_int_eq(kz_stream_write(c.s, "world", 5), 0);
  ck_assert_int_eq(kz_stream_write(acc.side.s, "back", 4), 0);
  for (int i = 0; i < 300 && (acc.side.rx.len < 11 || c.rx.len < 4); i++)
    tloop_run_until(&t, NULL, NULL, 10);
  ck_assert_uint_eq(acc.side.rx.len, 11);
  ck_assert_mem_eq(acc.side.rx.data, "hello world", 11);
  ck_assert_uint_eq(c.rx.len, 4);
  ck_assert_mem_eq(c.rx.data, "back", 4);
  /* The client closes: the server sees an orderly end (status 0). */
  kz_stream_close(c.s);
  c.s = NULL;
  ck_assert(tloop_run_until(&t, side_closed, &acc.side, 3000));
  ck_assert_int_eq(acc.side.status, 0);
  ck_assert_int_eq(c.closes, 0); /* no callback after the user's close */
  kz_listener_close(l);
  kz_buf_free(&acc.side.rx);
  kz_buf_free(&c.rx);
  tloop_run_until(&t, NULL, NULL, 10);
  ck_assert_uint_eq(kz_uv_env_live_handles(te.uv), 1);
  tenv_close(&te);
  tloop_close(&t);
}
END_TEST

#define BIG (8u << 20) /* more than the socket buffers hold */

static uint8_t *pattern(size_t len, uint8_t salt) {
  uint8_t *p = malloc(len);
  ck_assert_ptr_nonnull(p);
  for (size_t i = 0; i < len; i++) p[i] = (uint8_t)(i * 131u + (i >> 16) + salt);
  return p;
}

START_TEST(stream_close_with_pending_writes_delivers_everything) {
  struct tloop t;
  struct tenv te;
  tloop_open(&t);
  tenv_open(&te, &t, "tcp", 1, NULL);
  struct acceptor acc = {.side.close_on_end = true};
  struct kz_listener *l = NULL;
  struct kz_addr any = loopback(0);
  ck_assert_int_eq(kz_stream_listen(te.env, &any, acceptor_on_accept, &acc, &l), 0);
  uint8_t *first = pattern(4096, 7), *second = pattern(BIG, 9);

  /* Part one is written while connecting; part two from on_connect,
   * which then closes at once with megabytes still queued. */
  struct side c = {.write_on_connect = second,
                   .write_on_connect_len = BIG,
                   .close_on_connect = true};
  ck_assert_int_eq(kz_stream_connect(te.env, &l->local, &side_cbs, &c, &c.s), 0);
  ck_assert_int_eq(kz_stream_write(c.s, first, 4096), 0);
  ck_assert(tloop_run_until(&t, side_closed, &acc.side, 10000));
  ck_assert_int_eq(c.connects, 1);
  ck_assert_int_eq(acc.side.status, 0);
  ck_assert_uint_eq(acc.side.rx.len, 4096 + BIG);
  ck_assert(memcmp(acc.side.rx.data, first, 4096) == 0);
  ck_assert(memcmp(acc.side.rx.data + 4096, second, BIG) == 0);
  free(first);
  free(second);
  kz_buf_free(&acc.side.rx);
  kz_listener_close(l);
  tenv_close(&te);
  tloop_close(&t);
}
END_TEST

/* A raw libuv server that accepts and never reads: a stuck peer. */
struct stuck_peer {
  uv_tcp_t lst, conn;
  bool accepted;
};

static void stuck_on_conn(uv_stream_t *server, int status) {
  struct stuck_peer *p = server->data;
  ck_assert_int_eq(status, 0);
  ck_assert(!p->accepted);
  ck_assert_int_eq(uv_accept(server, (uv_stream_t *)&p->conn), 0);
  p->accepted = true;
}

struct linger_wait {
  struct kz_uv_env *uv;
};

static bool only_timer_left(void *arg) {
  return kz_uv_env_live_handles(((struct linger_wait *)arg)->uv) == 1;
}

START_TEST(stream_close_to_a_stuck_peer_is_bounded) {
  struct tloop t;
  struct tenv te;
  tloop_open(&t);
  tenv_open(&te, &t, "tcp", 1, NULL);
  kz_uv_env_set_close_timeout(te.uv, 100 * 1000000ull);
  struct stuck_peer p = {0};
  ck_assert_int_eq(uv_tcp_init(&t.loop, &p.lst), 0);
  ck_assert_int_eq(uv_tcp_init(&t.loop, &p.conn), 0);
  p.lst.data = &p;
  struct sockaddr_in sin;
  ck_assert_int_eq(uv_ip4_addr("127.0.0.1", 0, &sin), 0);
  ck_assert_int_eq(uv_tcp_bind(&p.lst, (const struct sockaddr *)&sin, 0), 0);
  ck_assert_int_eq(uv_listen((uv_stream_t *)&p.lst, 4, stuck_on_conn), 0);
  int len = sizeof(sin);
  ck_assert_int_eq(uv_tcp_getsockname(&p.lst, (struct sockaddr *)&sin, &len), 0);
  struct kz_addr dst = loopback(ntohs(sin.sin_port));

  uint8_t *blob = pattern(BIG * 4, 1); /* far more than the buffers hold */
  struct side c = {.write_on_connect = blob,
                   .write_on_connect_len = BIG * 4,
                   .close_on_connect = true};
  ck_assert_int_eq(kz_stream_connect(te.env, &dst, &side_cbs, &c, &c.s), 0);
  ck_assert(tloop_run_until(&t, side_connected, &c, 3000));
  free(blob);
  /* The flush cannot finish; the close timeout cuts the stream. */
  struct linger_wait w = {te.uv};
  ck_assert(tloop_run_until(&t, only_timer_left, &w, 3000));
  ck_assert_uint_eq(kz_env_timer_count(te.env), 0);
  ck_assert(tenv_log_has(&te, "flush timed out"));
  ck_assert(p.accepted);
  uv_close((uv_handle_t *)&p.conn, NULL);
  uv_close((uv_handle_t *)&p.lst, NULL);
  tenv_close(&te);
  tloop_close(&t);
}
END_TEST

START_TEST(stream_closed_while_data_in_flight) {
  struct tloop t;
  struct tenv te;
  tloop_open(&t);
  tenv_open(&te, &t, "tcp", 1, NULL);
  struct acceptor acc = {0};
  struct kz_listener *l = NULL;
  struct kz_addr any = loopback(0);
  ck_assert_int_eq(kz_stream_listen(te.env, &any, acceptor_on_accept, &acc, &l), 0);
  struct side c = {.close_on_end = true};
  ck_assert_int_eq(kz_stream_connect(te.env, &l->local, &side_cbs, &c, &c.s), 0);
  ck_assert(tloop_run_until(&t, acc_accepted, &acc, 3000));
  ck_assert(tloop_run_until(&t, side_connected, &c, 3000));
  /* Data and the client's end are on their way; the server closes its
   * side before the loop delivers them: no callback may follow. */
  ck_assert_int_eq(kz_stream_write(c.s, "in flight", 9), 0);
  kz_stream_close(c.s);
  c.s = NULL;
  kz_stream_close(acc.side.s);
  acc.side.s = NULL;
  tloop_run_until(&t, NULL, NULL, 50);
  ck_assert_int_eq(acc.side.datas, 0);
  ck_assert_int_eq(acc.side.closes, 0);
  ck_assert_int_eq(c.closes, 0);

  /* A listener closed with a connection waiting in its backlog accepts
   * nothing, and a stream refused in on_accept is simply gone. */
  struct acceptor rej = {.reject = true};
  struct kz_listener *l2 = NULL;
  ck_assert_int_eq(kz_stream_listen(te.env, &any, acceptor_on_accept, &rej, &l2), 0);
  struct side c2 = {.close_on_end = true};
  ck_assert_int_eq(kz_stream_connect(te.env, &l2->local, &side_cbs, &c2, &c2.s), 0);
  ck_assert(tloop_run_until(&t, side_closed, &c2, 3000));
  ck_assert_int_eq(rej.accepts, 1);
  ck_assert(c2.status == 0 || c2.status == KZ_ECONNRESET);
  kz_listener_close(l2);

  /* On loopback the handshake completes inside connect(2): the
   * connection waits in the backlog when the listener closes, and is
   * dropped without ever reaching on_accept. */
  struct side c3 = {.close_on_end = true};
  ck_assert_int_eq(kz_stream_connect(te.env, &l->local, &side_cbs, &c3, &c3.s), 0);
  kz_listener_close(l);
  ck_assert(tloop_run_until(&t, side_closed, &c3, 3000));
  ck_assert_int_eq(acc.accepts, 1);
  ck_assert_msg(c3.status == 0 || c3.status == KZ_ECONNRESET ||
                    c3.status == KZ_ECONNREFUSED,
                "status %s", kz_err_name(c3.status));
  kz_buf_free(&c.rx);
  tenv_close(&te);
  tloop_close(&t);
}
END_TEST

START_TEST(udp_and_streams_over_ipv6_loopback) {
  struct tloop t;
  struct tenv te;
  tloop_open(&t);
  tenv_open(&te, &t, "v6", 1, NULL);
  struct kz_addr any6;
  ck_assert_int_eq(kz_addr_parse(&any6, "[::1]:0"), 0);
  struct udp_rx ra = {0}, rb = {0};
  struct kz_udp *a = NULL, *b = NULL;
  int rc = kz_udp_bind(te.env, &any6, udp_rx_cb, &ra, &a);
  if (rc == KZ_EADDRNOTAVAIL || rc == KZ_ENOTSUP) {
    /* No IPv6 loopback on this host: nothing to test. */
    tenv_close(&te);
    tloop_close(&t);
    return;
  }
  ck_assert_int_eq(rc, 0);
  ck_assert_int_eq(kz_udp_bind(te.env, &any6, udp_rx_cb, &rb, &b), 0);
  ck_assert_uint_eq(a->local.family, 6);
  ck_assert_uint_ne(a->local.port, 0);
  ck_assert_int_eq(kz_udp_send(a, &b->local, "six", 3), 0);
  ck_assert(tloop_run_until(&t, rx_one, &rb, 3000));
  ck_assert(kz_addr_eq(&rb.from, &a->local));
  char txt[KZ_ADDR_STRLEN];
  kz_addr_format(&rb.from, txt, sizeof(txt));
  ck_assert_int_eq(strncmp(txt, "[::1]:", 6), 0);
  kz_udp_close(a);
  kz_udp_close(b);

  struct acceptor acc = {.side.close_on_end = true};
  struct kz_listener *l = NULL;
  ck_assert_int_eq(kz_stream_listen(te.env, &any6, acceptor_on_accept, &acc, &l), 0);
  struct side c = {0};
  ck_assert_int_eq(kz_stream_connect(te.env, &l->local, &side_cbs, &c, &c.s), 0);
  ck_assert_int_eq(kz_stream_write(c.s, "v6 bytes", 8), 0);
  kz_stream_close(c.s);
  ck_assert(tloop_run_until(&t, side_closed, &acc.side, 3000));
  ck_assert_uint_eq(acc.side.rx.len, 8);
  ck_assert_mem_eq(acc.side.rx.data, "v6 bytes", 8);
  ck_assert_uint_eq(acc.side.s == NULL, 1);
  kz_buf_free(&acc.side.rx);
  kz_listener_close(l);
  tenv_close(&te);
  tloop_close(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Files                                                               */

START_TEST(files_write_sync_read_rename_remove) {
  char tmp[64], data[96];
  tmpdir_make(tmp, sizeof(tmp));
  snprintf(data, sizeof(data), "%s/data/node1", tmp);
  struct tloop t;
  struct tenv te;
  tloop_open(&t);
  tenv_open(&te, &t, "fs", 1, data); /* creates data/node1 */
  struct kz_env *env = te.env;
  struct kz_file *f = NULL;
  bool ex = true;

  ck_assert_int_eq(kz_fs_exists(env, "a/b/c.txt", &ex), 0);
  ck_assert(!ex);
  ck_assert_int_eq(kz_file_open(env, "a/b/c.txt", KZ_FILE_READ, &f), KZ_ENOENT);
  /* CREATE makes the parent directories. */
  ck_assert_int_eq(kz_file_open(env, "a/b/c.txt",
                                KZ_FILE_READ | KZ_FILE_WRITE | KZ_FILE_CREATE, &f), 0);
  ck_assert_int_eq(env->n_files, 1);
  ck_assert_int_eq(kz_file_write(f, 0, "hello", 5), 0);
  ck_assert_int_eq(kz_file_write(f, 10, "world", 5), 0); /* hole */
  ck_assert_int_eq(kz_file_sync(f), 0);
  uint64_t size = 0;
  ck_assert_int_eq(kz_file_size(f, &size), 0);
  ck_assert_uint_eq(size, 15);
  kz_file_close(f);
  ck_assert_int_eq(env->n_files, 0);

  ck_assert_int_eq(kz_file_open(env, "a/b/c.txt", KZ_FILE_READ, &f), 0);
  char buf[32];
  size_t n = 0;
  ck_assert_int_eq(kz_file_read(f, 0, buf, sizeof(buf), &n), 0);
  ck_assert_uint_eq(n, 15); /* short only at end of file */
  ck_assert_mem_eq(buf, "hello\0\0\0\0\0world", 15);
  ck_assert_int_eq(kz_file_read(f, 12, buf, 2, &n), 0);
  ck_assert_uint_eq(n, 2);
  ck_assert_mem_eq(buf, "rl", 2);
  ck_assert_int_eq(kz_file_read(f, 100, buf, 4, &n), 0);
  ck_assert_uint_eq(n, 0);
  /* A read-only file refuses writes. */
  ck_assert_int_eq(kz_file_write(f, 0, "x", 1), KZ_EINVAL);
  kz_file_close(f);

  /* The real file is where the data directory says. */
  char abs[160];
  size_t rawlen = 0;
  snprintf(abs, sizeof(abs), "%s/a/b/c.txt", data);
  uint8_t *raw = kz_test_read_file(abs, &rawlen);
  ck_assert_ptr_nonnull(raw);
  ck_assert_uint_eq(rawlen, 15);
  free(raw);

  ck_assert_int_eq(kz_file_open(env, "a/b/c.txt",
                                KZ_FILE_WRITE | KZ_FILE_CREATE | KZ_FILE_EXCL, &f),
                   KZ_EEXIST);
  /* Truncate shrinks. */
  ck_assert_int_eq(kz_file_open(env, "a/b/c.txt", KZ_FILE_WRITE, &f), 0);
  ck_assert_int_eq(kz_file_truncate(f, 3), 0);
  ck_assert_int_eq(kz_file_size(f, &size), 0);
  ck_assert_uint_eq(size, 3);
  ck_assert_int_eq(kz_file_sync(f), 0);
  kz_file_close(f);

  /* Rename into a directory that does not exist yet. */
  ck_assert_int_eq(kz_fs_rename(env, "a/b/c.txt", "d/e.txt"), 0);
  ck_assert_int_eq(kz_fs_exists(env, "a/b/c.txt", &ex), 0);
  ck_assert(!ex);
  ck_assert_int_eq(kz_fs_exists(env, "d/e.txt", &ex), 0);
  ck_assert(ex);
  ck_assert_int_eq(kz_fs_rename(env, "a/b/c.txt", "d/f.txt"), KZ_ENOENT);
  ck_assert_int_eq(kz_file_open(env, "d/e.txt", KZ_FILE_READ, &f), 0);
  ck_assert_int_eq(kz_file_read(f, 0, buf, sizeof(buf), &n), 0);
  ck_assert_uint_eq(n, 3);
  ck_assert_mem_eq(buf, "hel", 3);
  kz_file_close(f);
  /* TRUNC empties an existing file. */
  ck_assert_int_eq(kz_file_open(env, "d/e.txt", KZ_FILE_WRITE | KZ_FILE_TRUNC, &f), 0);
  ck_assert_int_eq(kz_file_size(f, &size), 0);
  ck_assert_uint_eq(size, 0);
  kz_file_close(f);

  ck_assert_int_eq(kz_fs_remove(env, "d/e.txt"), 0);
  ck_assert_int_eq(kz_fs_exists(env, "d/e.txt", &ex), 0);
  ck_assert(!ex);
  ck_assert_int_eq(kz_fs_remove(env, "d/e.txt"), KZ_ENOENT);
  /* Paths are checked before they reach the disk. */
  ck_assert_int_eq(kz_file_open(env, "../escape", KZ_FILE_WRITE | KZ_FILE_CREATE, &f),
                   KZ_EINVAL);
  ck_assert_int_eq(kz_fs_exists(env, "/etc/passwd", &ex), KZ_EINVAL);

  /* A file left open is closed by kz_uv_env_free... but the user's
   * reference is theirs: close it first, as roles do. */
  ck_assert_int_eq(kz_file_open(env, "x", KZ_FILE_WRITE | KZ_FILE_CREATE, &f), 0);
  ck_assert_uint_eq(kz_uv_env_live_handles(te.uv), 2);
  kz_file_close(f);
  tenv_close(&te);
  tloop_close(&t);
  tmpdir_remove(tmp);
}
END_TEST

/* The fsyncs the driver makes, recorded by interposing fsync(2) in this
 * test program (kz_uv is linked into it statically): which directory
 * entries are made durable cannot be observed otherwise. */
static struct {
  bool on;
  int n;
  char path[16][512];
} fsyncs;

int fsync(int fd) {
  if (fsyncs.on && fsyncs.n < 16) {
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t k = readlink(link, fsyncs.path[fsyncs.n], sizeof(fsyncs.path[0]) - 1);
    if (k >= 0) fsyncs.path[fsyncs.n++][k] = '\0';
  }
  return (int)syscall(SYS_fsync, fd);
}

static void fsyncs_expect(const char *root, const char *const *rel, int n) {
  ck_assert_int_eq(fsyncs.n, n);
  for (int i = 0; i < n; i++) {
    char want[512];
    snprintf(want, sizeof(want), "%s%s", root, rel[i]);
    ck_assert_str_eq(fsyncs.path[i], want);
  }
  fsyncs.n = 0;
}

/* Directories made for a created file or a rename target are durable
 * too: the parent of each new one is synced, not only the last one. */
START_TEST(files_new_directories_are_synced) {
  char tmp[64], data[96], root[PATH_MAX];
  tmpdir_make(tmp, sizeof(tmp));
  snprintf(data, sizeof(data), "%s/data", tmp);
  struct tloop t;
  struct tenv te;
  tloop_open(&t);
  tenv_open(&te, &t, "fs", 1, data);
  ck_assert_ptr_nonnull(realpath(data, root));
  struct kz_file *f = NULL;
  fsyncs.on = true;
  ck_assert_int_eq(kz_file_open(te.env, "n1/n2/f", KZ_FILE_WRITE | KZ_FILE_CREATE, &f), 0);
  fsyncs_expect(root, (const char *const[]){"", "/n1"}, 2);
  ck_assert_int_eq(kz_file_write(f, 0, "x", 1), 0);
  ck_assert_int_eq(kz_file_sync(f), 0);
  fsyncs_expect(root, (const char *const[]){"/n1/n2/f", "/n1/n2"}, 2);
  kz_file_close(f);
  ck_assert_int_eq(kz_fs_rename(te.env, "n1/n2/f", "m1/m2/g"), 0);
  fsyncs_expect(root, (const char *const[]){"", "/m1", "/m1/m2", "/n1/n2"}, 4);
  /* Existing directories cost nothing more. */
  ck_assert_int_eq(kz_fs_rename(te.env, "m1/m2/g", "m1/m2/h"), 0);
  fsyncs_expect(root, (const char *const[]){"/m1/m2"}, 1);
  fsyncs.on = false;
  tenv_close(&te);
  tloop_close(&t);
  tmpdir_remove(tmp);
}
END_TEST

START_TEST(files_without_data_dir) {
  struct tloop t;
  struct tenv te;
  tloop_open(&t);
  tenv_open(&te, &t, "nofs", 1, NULL);
  struct kz_file *f = NULL;
  bool ex;
  ck_assert_int_eq(kz_file_open(te.env, "a", KZ_FILE_WRITE | KZ_FILE_CREATE, &f),
                   KZ_ENOTSUP);
  ck_assert_ptr_null(f);
  ck_assert_int_eq(kz_fs_exists(te.env, "a", &ex), KZ_ENOTSUP);
  ck_assert_int_eq(kz_fs_remove(te.env, "a"), KZ_ENOTSUP);
  ck_assert_int_eq(kz_fs_rename(te.env, "a", "b"), KZ_ENOTSUP);
  tenv_close(&te);
  tloop_close(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Driver teardown                                                     */

START_TEST(env_free_closes_what_is_left) {
  struct tloop t;
  struct tenv te;
  tloop_open(&t);
  tenv_open(&te, &t, "free", 1, NULL);
  struct udp_rx r = {0};
  struct kz_udp *u = NULL;
  struct kz_listener *l = NULL;
  struct acceptor acc = {0};
  struct kz_addr any = loopback(0);
  ck_assert_int_eq(kz_udp_bind(te.env, &any, udp_rx_cb, &r, &u), 0);
  ck_assert_int_eq(kz_stream_listen(te.env, &any, acceptor_on_accept, &acc, &l), 0);
  struct side c = {0};
  ck_assert_int_eq(kz_stream_connect(te.env, &l->local, &side_cbs, &c, &c.s), 0);
  ck_assert_int_eq(kz_stream_write(c.s, "abc", 3), 0);
  /* The timer, the socket, the listener and its spare, the stream. */
  ck_assert_uint_eq(kz_uv_env_live_handles(te.uv), 5);
  /* The user closes everything at once and frees the driver without
   * running the loop in between: the driver's close callbacks still
   * release every byte once the loop runs. */
  kz_stream_close(c.s);
  kz_listener_close(l);
  kz_udp_close(u);
  tenv_close(&te);
  tloop_close(&t);
  ck_assert_int_eq(c.connects + c.closes + acc.accepts + r.n, 0);
}
END_TEST

void add_driver_tests(Suite *s) {
  TCase *tc = kz_tcase(s, "timers", 10);
  tcase_add_test(tc, timers_equal_deadlines_fire_in_start_order);
  tcase_add_test(tc, timers_stop_restart_and_past_deadlines);
  tc = kz_tcase(s, "env", 10);
  tcase_add_test(tc, clocks_and_wall_option);
  tcase_add_test(tc, error_mapping);
  tcase_add_test(tc, env_new_rejects_bad_args);
  tcase_add_test(tc, env_free_closes_what_is_left);
  tc = kz_tcase(s, "udp", 10);
  tcase_add_test(tc, udp_send_and_receive);
  tcase_add_test(tc, udp_closed_while_datagrams_in_flight);
  tc = kz_tcase(s, "streams", 20);
  tcase_add_test(tc, stream_connect_refused);
  tcase_add_test(tc, stream_echo_both_ways_and_orderly_close);
  tcase_add_test(tc, stream_listener_survives_accept_allocation_failure);
  tcase_add_test(tc, stream_close_with_pending_writes_delivers_everything);
  tcase_add_test(tc, stream_closed_while_data_in_flight);
  tcase_add_test(tc, udp_and_streams_over_ipv6_loopback);
  tcase_add_test(tc, stream_close_to_a_stuck_peer_is_bounded);
  tc = kz_tcase(s, "files", 10);
  tcase_add_test(tc, files_write_sync_read_rename_remove);
  tcase_add_test(tc, files_without_data_dir);
  tcase_add_test(tc, files_new_directories_are_synced);
}
