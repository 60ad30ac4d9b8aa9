/* test_env.c — kz_env timers, randomness, handle life cycles and storage checks, over a fake driver. */
#include <signal.h>
#include <string.h>

#include "core_tests.h"
#include "fake_driver.h"
#include "kz/env.h"
#include "kz/error.h"
#include "kz/mem.h"

static void env_setup(struct kz_env *env, struct fake_driver *d) {
  memset(d, 0, sizeof(*d));
  ck_assert_int_eq(kz_env_init(env, &kz_core_fake_ops, d, "host1", 77), 0);
}

static void env_teardown(struct kz_env *env, struct fake_driver *d) {
  kz_core_fake_release(d);
  ck_assert_int_eq(env->n_udp, 0);
  ck_assert_int_eq(env->n_streams, 0);
  ck_assert_int_eq(env->n_listeners, 0);
  ck_assert_int_eq(env->n_files, 0);
  kz_env_deinit(env);
}

START_TEST(env_init_and_random) {
  struct kz_env env;
  struct fake_driver d;
  struct kz_env_ops no_now = {0};
  ck_assert_int_eq(kz_env_init(&env, NULL, &d, "x", 1), KZ_EINVAL);
  ck_assert_int_eq(kz_env_init(&env, &no_now, &d, "x", 1), KZ_EINVAL);
  ck_assert_int_eq(kz_env_init(&env, &kz_core_fake_ops, &d, NULL, 1), KZ_EINVAL);
  char longname[80];
  memset(longname, 'n', sizeof(longname) - 1);
  longname[sizeof(longname) - 1] = 0;
  ck_assert_int_eq(kz_env_init(&env, &kz_core_fake_ops, &d, longname, 1), KZ_EINVAL);

  env_setup(&env, &d);
  ck_assert_str_eq(env.name, "host1");
  ck_assert_uint_eq(env.seed, 77);
  ck_assert_uint_eq(env.armed_deadline, UINT64_MAX);
  ck_assert_uint_eq(kz_env_next_deadline(&env), UINT64_MAX);
  d.now = 123;
  d.wall = -5;
  ck_assert_uint_eq(kz_env_now(&env), 123);
  ck_assert_int_eq(kz_env_wall(&env), -5);

  /* The env's stream is the "env" sub-stream of its seed. */
  struct kz_prng ref, child, child_ref;
  kz_prng_derive(&ref, 77, "env");
  ck_assert_uint_eq(kz_env_random(&env), kz_prng_next(&ref));
  ck_assert_uint_eq(kz_env_random(&env), kz_prng_next(&ref));
  /* Component streams do not draw from the env's stream. */
  kz_env_prng(&env, "sip", &child);
  kz_prng_derive(&child_ref, 77, "sip");
  ck_assert_uint_eq(kz_prng_next(&child), kz_prng_next(&child_ref));
  ck_assert_uint_eq(kz_env_random(&env), kz_prng_next(&ref));
  env_teardown(&env, &d);
}
END_TEST

/* Timer fixture: records firing order by id. */
struct tctx;
struct ttimer {
  struct kz_timer t;
  struct tctx *ctx;
  int id;
  /* What the callback does. */
  struct ttimer *stop_other;
  struct ttimer *start_other;
  uint64_t start_other_at;
  int restarts_left;
  bool free_other;
};

struct tctx {
  int order[64];
  int n;
};

static void tfire(void *arg) {
  struct ttimer *tt = arg;
  struct tctx *c = tt->ctx;
  ck_assert_int_lt(c->n, 64);
  c->order[c->n++] = tt->id;
  ck_assert(!kz_timer_active(&tt->t)); /* popped before the call */
  if (tt->stop_other) {
    kz_timer_stop(&tt->stop_other->t);
    if (tt->free_other) kz_free(tt->stop_other);
    tt->stop_other = NULL;
  }
  if (tt->start_other) ck_assert_int_eq(kz_timer_start_at(&tt->start_other->t, tt->start_other_at), 0);
  if (tt->restarts_left > 0) {
    tt->restarts_left--;
    ck_assert_int_eq(kz_timer_start(&tt->t, 0), 0);
  }
}

static void tinit(struct ttimer *tt, struct kz_env *env, struct tctx *c, int id) {
  memset(tt, 0, sizeof(*tt));
  tt->ctx = c;
  tt->id = id;
  kz_timer_init(&tt->t, env, tfire, tt);
}

START_TEST(timer_equal_deadlines_in_start_order) {
  struct kz_env env;
  struct fake_driver d;
  env_setup(&env, &d);
  struct tctx c = {0};
  struct ttimer t[5];
  for (int i = 0; i < 5; i++) tinit(&t[i], &env, &c, i);
  ck_assert_int_eq(kz_timer_start_at(&t[2].t, 100), 0);
  ck_assert_int_eq(kz_timer_start_at(&t[0].t, 100), 0);
  ck_assert_int_eq(kz_timer_start_at(&t[4].t, 50), 0);
  ck_assert_int_eq(kz_timer_start_at(&t[1].t, 100), 0);
  ck_assert_int_eq(kz_timer_start_at(&t[3].t, 101), 0);
  ck_assert_uint_eq(kz_env_timer_count(&env), 5);
  ck_assert_uint_eq(kz_env_next_deadline(&env), 50);
  d.now = 99;
  ck_assert_uint_eq(kz_env_run_timers(&env), 1);
  d.now = 100;
  ck_assert_uint_eq(kz_env_run_timers(&env), 3);
  ck_assert_int_eq(c.n, 4);
  ck_assert_int_eq(c.order[0], 4);
  ck_assert_int_eq(c.order[1], 2);
  ck_assert_int_eq(c.order[2], 0);
  ck_assert_int_eq(c.order[3], 1);
  ck_assert_uint_eq(kz_env_next_deadline(&env), 101);
  ck_assert(kz_timer_active(&t[3].t));
  ck_assert_uint_eq(kz_timer_deadline(&t[3].t), 101);
  ck_assert_uint_eq(kz_timer_deadline(&t[1].t), UINT64_MAX);
  ck_assert_uint_eq(kz_env_run_timers(&env), 0);
  d.now = 1000;
  ck_assert_uint_eq(kz_env_run_timers(&env), 1);
  ck_assert_uint_eq(kz_env_timer_count(&env), 0);
  ck_assert_uint_eq(kz_env_next_deadline(&env), UINT64_MAX);
  env_teardown(&env, &d);
}
END_TEST

START_TEST(timer_deadline_notifications) {
  struct kz_env env;
  struct fake_driver d;
  env_setup(&env, &d);
  struct tctx c = {0};
  struct ttimer a, b;
  tinit(&a, &env, &c, 1);
  tinit(&b, &env, &c, 2);
  d.now = 1000;
  ck_assert_int_eq(kz_timer_start(&a.t, 500), 0); /* 1500 */
  ck_assert_uint_eq(kz_timer_deadline(&a.t), 1500);
  ck_assert_int_eq(kz_timer_start_at(&b.t, 2000), 0); /* later: no call */
  ck_assert_int_eq(kz_timer_start_at(&b.t, 1200), 0); /* earlier: call */
  kz_timer_stop(&a.t);                                 /* not the earliest: no call */
  kz_timer_stop(&a.t);                                 /* not active: no call */
  kz_timer_stop(&b.t);                                 /* none left */
  /* A restart to the same deadline gives the same earliest: no call. */
  ck_assert_int_eq(kz_timer_start_at(&a.t, 300), 0);
  ck_assert_int_eq(kz_timer_start_at(&a.t, 300), 0);
  static const uint64_t want[] = {1500, 1200, UINT64_MAX, 300};
  ck_assert_uint_eq(d.n_deadlines, 4);
  for (size_t i = 0; i < 4; i++) ck_assert_uint_eq(d.deadlines[i], want[i]);
  ck_assert_uint_eq(env.armed_deadline, 300);
  /* Firing re-notifies. */
  ck_assert_int_eq(kz_timer_start_at(&b.t, 5000), 0);
  ck_assert_uint_eq(kz_env_run_timers(&env), 1);
  ck_assert_uint_eq(d.n_deadlines, 5);
  ck_assert_uint_eq(d.deadlines[4], 5000);
  /* Saturation: a huge delay does not wrap around. */
  ck_assert_int_eq(kz_timer_start(&a.t, UINT64_MAX - 10), 0);
  ck_assert_uint_eq(kz_timer_deadline(&a.t), UINT64_MAX);
  kz_timer_stop(&a.t);
  kz_timer_stop(&b.t);
  ck_assert_uint_eq(d.deadlines[d.n_deadlines - 1], UINT64_MAX);
  /* ENOMEM on start leaves the timer stopped. */
  env_teardown(&env, &d);
  env_setup(&env, &d);
  tinit(&a, &env, &c, 1);
  kz_mem_fail_after(0);
  ck_assert_int_eq(kz_timer_start(&a.t, 5), KZ_ENOMEM);
  kz_mem_fail_after(-1);
  ck_assert(!kz_timer_active(&a.t));
  ck_assert_uint_eq(d.n_deadlines, 0);
  env_teardown(&env, &d);
}
END_TEST

START_TEST(timer_stop_and_free_inside_callback) {
  struct kz_env env;
  struct fake_driver d;
  env_setup(&env, &d);
  struct tctx c = {0};
  struct ttimer a, b;
  tinit(&a, &env, &c, 1);
  tinit(&b, &env, &c, 2);
  struct ttimer *heap_timer = kz_malloc(sizeof(*heap_timer));
  tinit(heap_timer, &env, &c, 3);
  ck_assert_int_eq(kz_timer_start_at(&a.t, 10), 0);
  ck_assert_int_eq(kz_timer_start_at(&b.t, 10), 0);
  ck_assert_int_eq(kz_timer_start_at(&heap_timer->t, 10), 0);
  a.stop_other = &b;         /* due at the same time: must not fire */
  b.stop_other = heap_timer; /* never runs */
  a.start_other = NULL;
  d.now = 10;
  /* a stops b; then heap_timer fires and is the last. */
  ck_assert_uint_eq(kz_env_run_timers(&env), 2);
  ck_assert_int_eq(c.n, 2);
  ck_assert_int_eq(c.order[0], 1);
  ck_assert_int_eq(c.order[1], 3);
  ck_assert(!kz_timer_active(&b.t));

  /* Now a stops and frees a pending, due timer. */
  c.n = 0;
  ck_assert_int_eq(kz_timer_start_at(&a.t, 20), 0);
  ck_assert_int_eq(kz_timer_start_at(&heap_timer->t, 20), 0);
  a.stop_other = heap_timer;
  a.free_other = true;
  d.now = 20;
  ck_assert_uint_eq(kz_env_run_timers(&env), 1);
  ck_assert_int_eq(c.n, 1);
  ck_assert_uint_eq(kz_env_timer_count(&env), 0);
  ck_assert_uint_eq(env.armed_deadline, UINT64_MAX);
  env_teardown(&env, &d);
}
END_TEST

START_TEST(timer_restart_inside_callback) {
  struct kz_env env;
  struct fake_driver d;
  env_setup(&env, &d);
  struct tctx c = {0};
  struct ttimer a;
  tinit(&a, &env, &c, 1);
  a.restarts_left = 3; /* restarts itself with delay 0 */
  d.now = 5;
  ck_assert_int_eq(kz_timer_start(&a.t, 0), 0);
  /* Each call fires it once: the restart waits for the next call. */
  for (int i = 0; i < 4; i++) {
    ck_assert_uint_eq(kz_env_run_timers(&env), 1);
    ck_assert_int_eq(c.n, i + 1);
    ck_assert(kz_timer_active(&a.t) == (i < 3));
    if (i < 3) ck_assert_uint_eq(kz_env_next_deadline(&env), 5);
  }
  ck_assert_uint_eq(kz_env_run_timers(&env), 0);
  ck_assert_uint_eq(kz_env_next_deadline(&env), UINT64_MAX);
  env_teardown(&env, &d);
}
END_TEST

START_TEST(timer_started_during_run_waits) {
  struct kz_env env;
  struct fake_driver d;
  env_setup(&env, &d);
  struct tctx c = {0};
  struct ttimer first, old_due, fresh, later;
  tinit(&first, &env, &c, 1);
  tinit(&old_due, &env, &c, 2);
  tinit(&fresh, &env, &c, 3);
  tinit(&later, &env, &c, 4);
  ck_assert_int_eq(kz_timer_start_at(&first.t, 5), 0);
  ck_assert_int_eq(kz_timer_start_at(&old_due.t, 10), 0);
  ck_assert_int_eq(kz_timer_start_at(&later.t, 11), 0);
  /* first starts `fresh` for a deadline already past, ahead of old_due
   * in the heap: old_due must still fire in this call, fresh must not. */
  first.start_other = &fresh;
  first.start_other_at = 0;
  d.now = 10;
  ck_assert_uint_eq(kz_env_run_timers(&env), 2);
  ck_assert_int_eq(c.n, 2);
  ck_assert_int_eq(c.order[0], 1);
  ck_assert_int_eq(c.order[1], 2);
  ck_assert(kz_timer_active(&fresh.t));
  ck_assert_uint_eq(kz_env_next_deadline(&env), 0);
  ck_assert_uint_eq(env.armed_deadline, 0);
  ck_assert_uint_eq(d.deadlines[d.n_deadlines - 1], 0);
  /* The next call fires it. */
  ck_assert_uint_eq(kz_env_run_timers(&env), 1);
  ck_assert_int_eq(c.order[2], 3);
  ck_assert_uint_eq(kz_env_next_deadline(&env), 11);
  ck_assert_uint_eq(d.deadlines[d.n_deadlines - 1], 11);
  kz_timer_stop(&later.t);
  env_teardown(&env, &d);
}
END_TEST

/* Many due timers each starting a new due one: each run fires exactly
 * the old ones, in order. */
START_TEST(timer_many_chained) {
  struct kz_env env;
  struct fake_driver d;
  env_setup(&env, &d);
  struct tctx c = {0};
  struct ttimer t[40];
  for (int i = 0; i < 40; i++) tinit(&t[i], &env, &c, i);
  for (int i = 0; i < 20; i++) {
    ck_assert_int_eq(kz_timer_start_at(&t[i].t, (uint64_t)(i % 3)), 0);
    t[i].start_other = &t[20 + i];
    t[i].start_other_at = 0;
  }
  d.now = 2;
  ck_assert_uint_eq(kz_env_run_timers(&env), 20);
  /* Order: key 0 (0,3,6,...), key 1 (1,4,...), key 2 (2,5,...). */
  int k = 0;
  for (int r = 0; r < 3; r++)
    for (int i = r; i < 20; i += 3) ck_assert_int_eq(c.order[k++], i);
  ck_assert_uint_eq(kz_env_timer_count(&env), 20);
  ck_assert_uint_eq(kz_env_run_timers(&env), 20);
  /* The new ones fire in their start order (all at deadline 0). */
  k = 20;
  for (int r = 0; r < 3; r++)
    for (int i = r; i < 20; i += 3) ck_assert_int_eq(c.order[k++], 20 + i);
  ck_assert_uint_eq(kz_env_timer_count(&env), 0);
  env_teardown(&env, &d);
}
END_TEST

START_TEST(env_deinit_abandons_timers) {
  struct kz_env env;
  struct fake_driver d;
  env_setup(&env, &d);
  struct tctx c = {0};
  /* The owner goes away first, as in a crash: deinit must not touch it
   * (ASan reports a use after free otherwise). */
  struct ttimer *a = kz_malloc(sizeof(*a));
  tinit(a, &env, &c, 1);
  ck_assert_int_eq(kz_timer_start_at(&a->t, 10), 0);
  kz_free(a);
  kz_env_deinit(&env);
  ck_assert_uint_eq(kz_env_timer_count(&env), 0);
  ck_assert_int_eq(c.n, 0);
}
END_TEST

/* ---- handles ---- */

struct hctx {
  int recv, connects, datas, closes, accepts;
  int last_status;
  char data[64];
  size_t data_len;
  struct kz_stream *accepted;
  bool close_in_on_data;
  bool close_in_on_close;
};

static void on_recv(void *arg, struct kz_udp *u, const struct kz_addr *from, const uint8_t *data,
                    size_t len) {
  struct hctx *h = arg;
  h->recv++;
  memcpy(h->data, data, len);
  h->data_len = len;
}

static void on_connect(void *arg, struct kz_stream *s) { ((struct hctx *)arg)->connects++; }

static void on_data(void *arg, struct kz_stream *s, const uint8_t *data, size_t len) {
  struct hctx *h = arg;
  h->datas++;
  memcpy(h->data, data, len);
  h->data_len = len;
  if (h->close_in_on_data) kz_stream_close(s);
}

static void on_close(void *arg, struct kz_stream *s, int status) {
  struct hctx *h = arg;
  h->closes++;
  h->last_status = status;
  ck_assert_int_eq(s->state, KZ_STREAM_ENDED);
  if (h->close_in_on_close) kz_stream_close(s);
}

static const struct kz_stream_cbs stream_cbs = {on_connect, on_data, on_close};

static void on_accept(void *arg, struct kz_listener *l, struct kz_stream *s) {
  struct hctx *h = arg;
  h->accepts++;
  ck_assert_int_eq(s->state, KZ_STREAM_OPEN);
  ck_assert_uint_eq(kz_refcount(s), 2); /* user + driver */
  h->accepted = s;
  kz_stream_set_cbs(s, &stream_cbs, h);
}

START_TEST(udp_life_cycle) {
  struct kz_env env;
  struct fake_driver d;
  env_setup(&env, &d);
  struct hctx h = {0};
  struct kz_udp *u = NULL;
  struct kz_addr local = kz_addr_v4(0x7f000001, 0), peer = kz_addr_v4(0x7f000002, 5060);
  struct kz_addr unset = {0};
  ck_assert_int_eq(kz_udp_bind(&env, &unset, on_recv, &h, &u), KZ_EINVAL);
  d.fail_next = KZ_EADDRINUSE;
  ck_assert_int_eq(kz_udp_bind(&env, &local, on_recv, &h, &u), KZ_EADDRINUSE);
  ck_assert_ptr_null(u);
  kz_mem_fail_after(0);
  ck_assert_int_eq(kz_udp_bind(&env, &local, on_recv, &h, &u), KZ_ENOMEM);
  kz_mem_fail_after(-1);
  ck_assert_int_eq(env.n_udp, 0);

  ck_assert_int_eq(kz_udp_bind(&env, &local, on_recv, &h, &u), 0);
  ck_assert_ptr_nonnull(u);
  ck_assert_int_eq(env.n_udp, 1);
  ck_assert_uint_eq(u->local.port, 40000); /* chosen by the driver */
  ck_assert_uint_eq(kz_refcount(u), 2);
  ck_assert_int_eq(kz_udp_send(u, &peer, "hi", 2), 0);
  ck_assert_int_eq(kz_udp_send(u, &unset, "hi", 2), KZ_EINVAL);
  ck_assert_int_eq(kz_udp_send(u, &peer, NULL, 2), KZ_EINVAL);
  ck_assert_int_eq(kz_udp_send(NULL, &peer, "hi", 2), KZ_ECLOSED);
  ck_assert_int_eq(d.n_udp_send, 1);
  kz_udp_deliver(u, &peer, (const uint8_t *)"abc", 3);
  ck_assert_int_eq(h.recv, 1);
  ck_assert_uint_eq(h.data_len, 3);
  kz_udp_close(u);
  ck_assert_int_eq(d.n_udp_close, 1);
  ck_assert_int_eq(env.n_udp, 0);
  /* The driver still holds its reference: a late datagram is ignored. */
  ck_assert_uint_eq(kz_refcount(u), 1);
  ck_assert_int_eq(kz_udp_send(u, &peer, "hi", 2), KZ_ECLOSED);
  kz_udp_deliver(u, &peer, (const uint8_t *)"late", 4);
  ck_assert_int_eq(h.recv, 1);
  kz_udp_close(NULL);
  env_teardown(&env, &d);
}
END_TEST

START_TEST(stream_connect_life_cycle) {
  struct kz_env env;
  struct fake_driver d;
  env_setup(&env, &d);
  struct hctx h = {0};
  struct kz_stream *s = NULL;
  struct kz_addr remote = kz_addr_v4(0x0a000001, 5672);
  struct kz_addr noport = kz_addr_v4(0x0a000001, 0);
  ck_assert_int_eq(kz_stream_connect(&env, &noport, &stream_cbs, &h, &s), KZ_EINVAL);
  d.fail_next = KZ_EHOSTUNREACH;
  ck_assert_int_eq(kz_stream_connect(&env, &remote, &stream_cbs, &h, &s), KZ_EHOSTUNREACH);
  ck_assert_ptr_null(s);
  ck_assert_int_eq(env.n_streams, 0);

  ck_assert_int_eq(kz_stream_connect(&env, &remote, &stream_cbs, &h, &s), 0);
  ck_assert_int_eq(env.n_streams, 1);
  ck_assert_int_eq(s->state, KZ_STREAM_CONNECTING);
  uint64_t id = s->id;
  ck_assert_uint_eq(env.next_stream_id, id + 1);
  ck_assert(kz_addr_eq(&s->peer, &remote));
  ck_assert_int_eq(kz_stream_write(s, "early", 5), 0); /* allowed while connecting */
  kz_stream_deliver_data(s, (const uint8_t *)"x", 1);  /* not open yet: ignored */
  ck_assert_int_eq(h.datas, 0);
  kz_stream_deliver_connect(s);
  ck_assert_int_eq(h.connects, 1);
  ck_assert_int_eq(s->state, KZ_STREAM_OPEN);
  kz_stream_deliver_connect(s); /* only once */
  ck_assert_int_eq(h.connects, 1);
  ck_assert_int_eq(kz_stream_write(s, "-more", 5), 0);
  ck_assert_int_eq(kz_stream_write(s, NULL, 0), 0);
  ck_assert_uint_eq(d.n_written, 10);
  ck_assert_int_eq(memcmp(d.written, "early-more", 10), 0);
  kz_stream_deliver_data(s, (const uint8_t *)"pong", 4);
  ck_assert_int_eq(h.datas, 1);
  ck_assert_uint_eq(h.data_len, 4);

  kz_stream_deliver_close(s, KZ_ECONNRESET);
  ck_assert_int_eq(h.closes, 1);
  ck_assert_int_eq(h.last_status, KZ_ECONNRESET);
  ck_assert_int_eq(s->state, KZ_STREAM_ENDED);
  kz_stream_deliver_close(s, 0); /* on_close once */
  kz_stream_deliver_data(s, (const uint8_t *)"x", 1);
  kz_stream_deliver_connect(s);
  ck_assert_int_eq(h.closes, 1);
  ck_assert_int_eq(h.datas, 1);
  ck_assert_int_eq(h.connects, 1);
  ck_assert_int_eq(kz_stream_write(s, "x", 1), KZ_ECLOSED);
  ck_assert_int_eq(env.n_streams, 1); /* ended, not yet closed by the user */

  kz_stream_close(s);
  ck_assert_int_eq(env.n_streams, 0);
  ck_assert_int_eq(d.n_stream_close, 1);
  ck_assert_int_eq(s->state, KZ_STREAM_CLOSED);
  kz_stream_deliver_close(s, 0); /* after close: nothing */
  kz_stream_deliver_data(s, (const uint8_t *)"x", 1);
  ck_assert_int_eq(h.closes, 1);
  ck_assert_int_eq(h.datas, 1);
  ck_assert_int_eq(kz_stream_write(s, "x", 1), KZ_ECLOSED);

  /* A stream closed by the user while open never sees on_close. */
  struct hctx h2 = {0};
  ck_assert_int_eq(kz_stream_connect(&env, &remote, &stream_cbs, &h2, &s), 0);
  ck_assert_uint_eq(s->id, id + 1);
  kz_stream_deliver_connect(s);
  kz_stream_close(s);
  kz_stream_deliver_close(s, KZ_ECONNRESET);
  kz_stream_deliver_data(s, (const uint8_t *)"x", 1);
  ck_assert_int_eq(h2.closes, 0);
  ck_assert_int_eq(h2.datas, 0);

  /* Closing from inside on_close is safe. */
  struct hctx h3 = {.close_in_on_close = true};
  ck_assert_int_eq(kz_stream_connect(&env, &remote, &stream_cbs, &h3, &s), 0);
  kz_stream_deliver_close(s, KZ_ECONNREFUSED);
  ck_assert_int_eq(h3.closes, 1);
  ck_assert_int_eq(h3.connects, 0);
  ck_assert_int_eq(s->state, KZ_STREAM_CLOSED);
  kz_stream_close(NULL);
  env_teardown(&env, &d);
}
END_TEST

START_TEST(listener_accept_life_cycle) {
  struct kz_env env;
  struct fake_driver d;
  env_setup(&env, &d);
  struct hctx h = {0};
  struct kz_listener *l = NULL;
  struct kz_addr local = kz_addr_v4(0x7f000001, 5060), peer = kz_addr_v4(0x7f000009, 33000);
  ck_assert_int_eq(kz_stream_listen(&env, &local, NULL, &h, &l), KZ_EINVAL);
  d.fail_next = KZ_EADDRNOTAVAIL;
  ck_assert_int_eq(kz_stream_listen(&env, &local, on_accept, &h, &l), KZ_EADDRNOTAVAIL);
  ck_assert_int_eq(kz_stream_listen(&env, &local, on_accept, &h, &l), 0);
  ck_assert_int_eq(env.n_listeners, 1);

  struct kz_stream *s = NULL;
  int impl_tag;
  ck_assert_int_eq(kz_listener_deliver_accept(l, &impl_tag, &local, &peer, &s), 0);
  ck_assert_ptr_eq(s, h.accepted);
  ck_assert_ptr_eq(s->impl, &impl_tag);
  ck_assert(kz_addr_eq(&s->peer, &peer));
  ck_assert(kz_addr_eq(&s->local, &local));
  ck_assert_int_eq(h.accepts, 1);
  ck_assert_int_eq(env.n_streams, 1);
  /* The driver's reference is its own to drop later. */
  d.held[d.n_held++] = s;

  /* ENOMEM: nothing allocated, no callback. */
  struct kz_stream *s2 = NULL;
  kz_mem_fail_after(0);
  ck_assert_int_eq(kz_listener_deliver_accept(l, &impl_tag, &local, &peer, &s2), KZ_ENOMEM);
  kz_mem_fail_after(-1);
  ck_assert_ptr_null(s2);
  ck_assert_int_eq(h.accepts, 1);
  ck_assert_int_eq(env.n_streams, 1);

  /* The user closes from inside on_data; later events are ignored. */
  h.close_in_on_data = true;
  kz_stream_deliver_data(s, (const uint8_t *)"INVITE", 6);
  ck_assert_int_eq(h.datas, 1);
  ck_assert_int_eq(env.n_streams, 0);
  ck_assert_uint_eq(kz_refcount(s), 1);
  kz_stream_deliver_data(s, (const uint8_t *)"more", 4);
  kz_stream_deliver_close(s, 0);
  ck_assert_int_eq(h.datas, 1);
  ck_assert_int_eq(h.closes, 0);

  kz_listener_close(l);
  ck_assert_int_eq(env.n_listeners, 0);
  ck_assert_int_eq(d.n_listen_close, 1);
  /* A closed listener accepts nothing. */
  ck_assert_int_eq(kz_listener_deliver_accept(l, &impl_tag, &local, &peer, &s2), KZ_ECLOSED);
  ck_assert_int_eq(h.accepts, 1);
  kz_listener_close(NULL);
  env_teardown(&env, &d);
}
END_TEST

START_TEST(fs_path_validation) {
  static const char *bad[] = {"", "/abs", "a/../b", "a//b", ".", "..", "x\\y", "a/", "/",
                              "a/./b", "../a", "a/..", "sp ace", "tab\t", "ü", "a:b", "a*"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ck_assert_msg(!kz_fs_path_valid(bad[i]), "accepted \"%s\"", bad[i]);
  ck_assert(!kz_fs_path_valid(NULL));
  static const char *good[] = {"a", "a/b", "db/accounts/acc-1.json", "...", "..a", "a..",
                               ".hidden", "A_Z-0.9", "x/y/z/w"};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    ck_assert_msg(kz_fs_path_valid(good[i]), "rejected \"%s\"", good[i]);
  char longp[2000];
  memset(longp, 'a', sizeof(longp) - 1);
  longp[sizeof(longp) - 1] = 0;
  ck_assert(!kz_fs_path_valid(longp));
}
END_TEST

START_TEST(file_life_cycle) {
  struct kz_env env;
  struct fake_driver d;
  env_setup(&env, &d);
  struct kz_file *f = NULL;
  /* Bad paths and flags never reach the driver. */
  ck_assert_int_eq(kz_file_open(&env, "../x", KZ_FILE_READ, &f), KZ_EINVAL);
  ck_assert_int_eq(kz_file_open(&env, "x", 0, &f), KZ_EINVAL);
  ck_assert_int_eq(kz_file_open(&env, "x", 64 | KZ_FILE_READ, &f), KZ_EINVAL);
  ck_assert_int_eq(kz_file_open(&env, "x", KZ_FILE_READ | KZ_FILE_TRUNC, &f), KZ_EINVAL);
  ck_assert_int_eq(kz_file_open(&env, "x", KZ_FILE_READ | KZ_FILE_CREATE, &f), KZ_EINVAL);
  ck_assert_int_eq(kz_file_open(&env, "x", KZ_FILE_WRITE | KZ_FILE_EXCL, &f), KZ_EINVAL);
  ck_assert_int_eq(kz_fs_rename(&env, "a", "/b"), KZ_EINVAL);
  ck_assert_int_eq(kz_fs_rename(&env, "a/", "b"), KZ_EINVAL);
  ck_assert_int_eq(kz_fs_remove(&env, ".."), KZ_EINVAL);
  bool exists = true;
  ck_assert_int_eq(kz_fs_exists(&env, "a//b", &exists), KZ_EINVAL);
  ck_assert_int_eq(d.n_driver_calls, 0);
  ck_assert_ptr_null(f);

  /* Driver errors pass through. */
  ck_assert_int_eq(kz_file_open(&env, "data/f", KZ_FILE_READ, &f), KZ_ENOENT);
  ck_assert_ptr_null(f);
  ck_assert_int_eq(env.n_files, 0);
  ck_assert_int_eq(kz_fs_exists(&env, "data/f", &exists), 0);
  ck_assert(!exists);

  ck_assert_int_eq(kz_file_open(&env, "data/f", KZ_FILE_WRITE | KZ_FILE_CREATE, &f), 0);
  ck_assert_int_eq(env.n_files, 1);
  ck_assert_int_eq(f->flags, KZ_FILE_WRITE | KZ_FILE_CREATE);
  ck_assert_int_eq(kz_file_write(f, 2, "abc", 3), 0);
  uint8_t buf[16];
  size_t nread = 99;
  ck_assert_int_eq(kz_file_read(f, 0, buf, sizeof(buf), &nread), KZ_EINVAL); /* write-only */
  uint64_t size;
  ck_assert_int_eq(kz_file_size(f, &size), 0);
  ck_assert_uint_eq(size, 5);
  ck_assert_int_eq(kz_file_sync(f), 0);
  kz_file_close(f);
  ck_assert_int_eq(env.n_files, 0);
  ck_assert_int_eq(d.n_file_close, 1);

  ck_assert_int_eq(kz_file_open(&env, "data/f", KZ_FILE_READ, &f), 0);
  ck_assert_int_eq(kz_file_read(f, 0, buf, sizeof(buf), &nread), 0);
  ck_assert_uint_eq(nread, 5);
  ck_assert_int_eq(memcmp(buf, "\0\0abc", 5), 0);
  ck_assert_int_eq(kz_file_read(f, 0, NULL, 0, &nread), 0);
  ck_assert_uint_eq(nread, 0);
  ck_assert_int_eq(kz_file_read(f, 0, buf, 4, NULL), KZ_EINVAL);
  ck_assert_int_eq(kz_file_write(f, 0, "x", 1), KZ_EINVAL);   /* read-only */
  ck_assert_int_eq(kz_file_truncate(f, 0), KZ_EINVAL);        /* read-only */
  kz_file_close(f);

  ck_assert_int_eq(kz_fs_exists(&env, "data/f", &exists), 0);
  ck_assert(exists);
  ck_assert_int_eq(kz_fs_rename(&env, "data/f", "data/g"), 0);
  ck_assert_int_eq(kz_fs_remove(&env, "data/g"), 0);
  ck_assert_int_eq(kz_fs_remove(&env, "data/g"), KZ_ENOENT);
  env_teardown(&env, &d);
}
END_TEST

/* A second kz_file_close is caught (like the other handles' closes)
 * instead of releasing the driver's file twice.  The test holds a
 * reference of its own so the second call reads live memory. */
START_TEST(file_double_close_aborts) {
  struct kz_env env;
  struct fake_driver d;
  env_setup(&env, &d);
  struct kz_file *f = NULL;
  ck_assert_int_eq(kz_file_open(&env, "f", KZ_FILE_WRITE | KZ_FILE_CREATE, &f), 0);
  kz_ref(f);
  kz_file_close(f);
  ck_assert(f->closed);
  kz_file_close(f);
}
END_TEST

void kz_core_test_env(Suite *s) {
  TCase *tc = kz_tcase(s, "env", 20);
  tcase_add_test(tc, env_init_and_random);
  tcase_add_test(tc, timer_equal_deadlines_in_start_order);
  tcase_add_test(tc, timer_deadline_notifications);
  tcase_add_test(tc, timer_stop_and_free_inside_callback);
  tcase_add_test(tc, timer_restart_inside_callback);
  tcase_add_test(tc, timer_started_during_run_waits);
  tcase_add_test(tc, timer_many_chained);
  tcase_add_test(tc, env_deinit_abandons_timers);
  tcase_add_test(tc, udp_life_cycle);
  tcase_add_test(tc, stream_connect_life_cycle);
  tcase_add_test(tc, listener_accept_life_cycle);
  tcase_add_test(tc, fs_path_validation);
  tcase_add_test(tc, file_life_cycle);
  tcase_add_test_raise_signal(tc, file_double_close_aborts, SIGABRT);
}
