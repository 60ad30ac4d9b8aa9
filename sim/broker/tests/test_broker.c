/* test_broker.c — Check suite for the broker model: channel errors, broker-side heartbeats, crash semantics, counters, default exchange and ack rules, driven through bus clients in the simulator. */
#include <stdio.h>
#include <string.h>

#include "kz/bus_wire.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sim.h"
#include "kz/sim_broker.h"
#include "kz_test.h"

#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)
#define BROKER_IP 0x0a000001u

/* ------------------------------------------------------------------ */
/* Fixture: one broker host, up to 4 client hosts each running a bus.   */

struct client {
  struct kz_sim *sim;
  struct kz_bus *bus;
  int ups, downs, errors;
  char last_error[300];
};

static void on_state(void *arg, struct kz_bus *bus, enum kz_bus_state st,
                     int idx, const char *reason) {
  struct client *c = arg;
  (void)bus;
  (void)idx;
  if (st == KZ_BUS_UP && reason) {
    c->errors++;
    snprintf(c->last_error, sizeof c->last_error, "%s", reason);
  } else if (st == KZ_BUS_UP) {
    c->ups++;
  } else {
    c->downs++;
  }
}

static const struct kz_addr broker_addr[1] = {
    {.family = 4, .port = KZ_BUS_WIRE_PORT, .ip = {10, 0, 0, 1}}};

static int client_start(struct kz_env *env, const void *cfg, void **inst) {
  struct client *c = (struct client *)cfg;
  struct kz_bus_wire_cfg w = {.brokers = broker_addr, .n_brokers = 1,
                              .heartbeat_ns = 200 * MS};
  struct kz_bus_backend be;
  int rc = kz_bus_wire_new(&be, env, &w);
  if (rc) return rc;
  struct kz_bus_cfg bc = {.app_name = "t", .app_version = "1",
                          .on_state = on_state, .state_arg = c};
  if ((rc = kz_bus_new(&c->bus, env, &be, &bc))) return rc;
  *inst = c;
  return 0;
}

static void client_stop(void *inst) {
  struct client *c = inst;
  kz_bus_free(c->bus);
  c->bus = NULL;
}

static const struct kz_sim_app client_app = {"client", client_start,
                                             client_stop};

struct fx {
  struct kz_sim *sim;
  struct kz_sim_host *bh;
  struct kz_sim_proc *bp;
  struct client c[4];
};

static struct kz_sim_host *host(struct kz_sim *sim, const char *name,
                                uint32_t ip) {
  struct kz_sim_host *h;
  struct kz_addr a = kz_addr_v4(ip, 0);
  ck_assert_int_eq(kz_sim_host_add(sim, name, &a, &h), 0);
  return h;
}

static const struct kz_sim_broker_cfg broker_cfg = {
    .hello_timeout_ns = 1 * SEC};

static void fx_up(struct fx *x, int clients) {
  memset(x, 0, sizeof *x);
  ck_assert_int_eq(kz_sim_new(&x->sim, 77), 0);
  x->bh = host(x->sim, "broker", BROKER_IP);
  ck_assert_int_eq(kz_sim_proc_add(x->bh, "rabbit", &kz_sim_broker_app,
                                   &broker_cfg, &x->bp),
                   0);
  for (int i = 0; i < clients; i++) {
    char name[16];
    snprintf(name, sizeof name, "c%d", i);
    x->c[i].sim = x->sim;
    struct kz_sim_host *h = host(x->sim, name, 0x0a000101u + (uint32_t)i);
    ck_assert_int_eq(kz_sim_proc_add(h, "bus", &client_app, &x->c[i], NULL),
                     0);
  }
  ck_assert_int_eq(kz_sim_run_for(x->sim, 100 * MS), 0);
  for (int i = 0; i < clients; i++)
    ck_assert_int_eq(kz_bus_state(x->c[i].bus), KZ_BUS_UP);
}

static struct kz_sim_broker *broker(struct fx *x) {
  return kz_sim_proc_instance(x->bp);
}

static void run(struct fx *x, uint64_t ns) {
  ck_assert_int_eq(kz_sim_run_for(x->sim, ns), 0);
}

struct rec {
  int n;
  char body[8][64];
  uint64_t tag[8];
  bool redelivered[8];
};

static void rec_cb(void *arg, struct kz_bus *bus,
                   const struct kz_bus_delivery *d) {
  struct rec *r = arg;
  (void)bus;
  if (r->n >= 8) return;
  snprintf(r->body[r->n], sizeof r->body[0], "%.*s", (int)d->len,
           (const char *)d->body);
  r->tag[r->n] = d->tag;
  r->redelivered[r->n] = d->redelivered;
  r->n++;
}

static int last_confirm;
static int n_confirms;

static void confirm_cb(void *arg, struct kz_bus *bus, int status) {
  (void)arg;
  (void)bus;
  last_confirm = status;
  n_confirms++;
}

/* ------------------------------------------------------------------ */

START_TEST(test_publish_to_missing_exchange) {
  struct fx x;
  fx_up(&x, 1);
  struct kz_bus *b = x.c[0].bus;
  n_confirms = 0;
  ck_assert_int_eq(kz_bus_publish(b, "nope", "k", "m", 1, confirm_cb, NULL), 0);
  run(&x, 50 * MS);
  ck_assert_int_eq(n_confirms, 1);
  ck_assert_int_eq(last_confirm, KZ_EIO); /* nacked */
  ck_assert_int_eq(x.c[0].errors, 1);
  ck_assert(strstr(x.c[0].last_error, "404") != NULL);
  ck_assert(strstr(x.c[0].last_error, "NOT_FOUND - no exchange 'nope'") != NULL);
  /* The connection goes on. */
  ck_assert_int_eq(kz_bus_state(b), KZ_BUS_UP);
  struct rec r = {0};
  ck_assert_int_eq(kz_bus_declare_exchange(b, "ex", KZ_BUS_EX_DIRECT), 0);
  ck_assert_int_eq(kz_bus_declare_queue(b, "q", NULL), 0);
  ck_assert_int_eq(kz_bus_bind(b, "q", "ex", "k"), 0);
  ck_assert_int_eq(kz_bus_consume(b, "q", false, rec_cb, &r, NULL), 0);
  ck_assert_int_eq(kz_bus_publish(b, "ex", "k", "ok", 2, NULL, NULL), 0);
  run(&x, 50 * MS);
  ck_assert_int_eq(r.n, 1);
  ck_assert_int_eq(x.c[0].downs, 0);
  /* Binding to a missing exchange or queue is a 404 too. */
  ck_assert_int_eq(kz_bus_bind(b, "q", "missing", "k"), 0);
  ck_assert_int_eq(kz_bus_consume(b, "noq", false, rec_cb, &r, NULL), 0);
  run(&x, 50 * MS);
  ck_assert_int_eq(x.c[0].errors, 3);
  ck_assert(strstr(x.c[0].last_error, "no queue 'noq'") != NULL);
  struct kz_sim_broker_stats st;
  kz_sim_broker_stats(broker(&x), &st);
  ck_assert_uint_eq(st.errors, 3);
  kz_sim_free(x.sim);
}
END_TEST

START_TEST(test_exclusive_locked_and_inequivalent) {
  struct fx x;
  fx_up(&x, 2);
  struct kz_bus *a = x.c[0].bus, *b = x.c[1].bus;
  struct kz_bus_queue_opts excl = {.exclusive = true};
  ck_assert_int_eq(kz_bus_declare_queue(a, "x", &excl), 0);
  ck_assert_int_eq(kz_bus_declare_exchange(a, "ex", KZ_BUS_EX_TOPIC), 0);
  run(&x, 20 * MS);
  struct rec r = {0};
  ck_assert_int_eq(kz_bus_declare_queue(b, "x", &excl), 0);
  run(&x, 20 * MS);
  ck_assert_int_eq(x.c[1].errors, 1);
  ck_assert(strstr(x.c[1].last_error, "405") != NULL);
  ck_assert(strstr(x.c[1].last_error, "RESOURCE_LOCKED") != NULL);
  ck_assert_int_eq(kz_bus_consume(b, "x", false, rec_cb, &r, NULL), 0);
  ck_assert_int_eq(kz_bus_bind(b, "x", "ex", "#"), 0);
  run(&x, 20 * MS);
  ck_assert_int_eq(x.c[1].errors, 3);
  /* Redeclaring with other flags or another type: 406. */
  ck_assert_int_eq(kz_bus_declare_queue(a, "plain", NULL), 0);
  run(&x, 20 * MS);
  struct kz_bus_queue_opts ad = {.auto_delete = true};
  ck_assert_int_eq(kz_bus_declare_queue(b, "plain", &ad), 0);
  ck_assert_int_eq(kz_bus_declare_exchange(b, "ex", KZ_BUS_EX_FANOUT), 0);
  run(&x, 20 * MS);
  ck_assert_int_eq(x.c[1].errors, 5);
  ck_assert(strstr(x.c[1].last_error, "406") != NULL);
  ck_assert(strstr(x.c[1].last_error, "inequivalent arg 'type'") != NULL);
  ck_assert_int_eq(x.c[0].errors, 0);
  size_t ready = 9, consumers = 9;
  ck_assert_int_eq(kz_sim_broker_queue_info(broker(&x), "x", &ready, &consumers),
                   0);
  ck_assert_uint_eq(ready, 0);
  ck_assert_uint_eq(consumers, 0);
  kz_sim_free(x.sim);
}
END_TEST

/* A client that sends HELLO (100 ms heartbeats) and then nothing; another
 * that never sends HELLO. */
struct mute {
  struct kz_stream *s;
  bool hello;
};

static void mute_data(void *arg, struct kz_stream *s, const uint8_t *d,
                      size_t len) {
  (void)arg, (void)s, (void)d, (void)len;
}
static void mute_close(void *arg, struct kz_stream *s, int status) {
  (void)arg, (void)s, (void)status;
}
static const struct kz_stream_cbs mute_cbs = {NULL, mute_data, mute_close};

static int mute_start(struct kz_env *env, const void *cfg, void **inst) {
  struct mute *m = kz_calloc(1, sizeof *m);
  m->hello = cfg != NULL;
  int rc = kz_stream_connect(env, &broker_addr[0], &mute_cbs, m, &m->s);
  ck_assert_int_eq(rc, 0);
  if (m->hello) {
    struct kz_bus_wire_frame f = {.op = KZ_BUS_WIRE_HELLO, .version = 1,
                                  .heartbeat_ms = 100};
    struct kz_buf b;
    kz_buf_init(&b);
    kz_bus_wire_encode(&b, &f);
    kz_stream_write(m->s, b.data, b.len);
    kz_buf_free(&b);
  }
  *inst = m;
  return 0;
}

static void mute_stop(void *inst) {
  struct mute *m = inst;
  kz_stream_close(m->s);
  kz_free(m);
}

static const struct kz_sim_app mute_app = {"mute", mute_start, mute_stop};

START_TEST(test_broker_heartbeat_timeout) {
  struct fx x;
  fx_up(&x, 0);
  struct kz_sim_host *h1 = host(x.sim, "m1", 0x0a000201u);
  struct kz_sim_host *h2 = host(x.sim, "m2", 0x0a000202u);
  static const int yes = 1;
  ck_assert_int_eq(kz_sim_proc_add(h1, "mute", &mute_app, &yes, NULL), 0);
  ck_assert_int_eq(kz_sim_proc_add(h2, "nohello", &mute_app, NULL, NULL), 0);
  run(&x, 250 * MS);
  struct kz_sim_broker_stats st;
  kz_sim_broker_stats(broker(&x), &st);
  ck_assert_uint_eq(st.connections, 2);
  ck_assert_uint_eq(st.open, 2);
  run(&x, 100 * MS); /* 3 x 100 ms after the HELLO */
  kz_sim_broker_stats(broker(&x), &st);
  ck_assert_uint_eq(st.open, 1);
  ck_assert_uint_eq(st.heartbeat_timeouts, 1);
  run(&x, 700 * MS); /* hello_timeout: 1 s */
  kz_sim_broker_stats(broker(&x), &st);
  ck_assert_uint_eq(st.open, 0);
  ck_assert_uint_eq(st.heartbeat_timeouts, 2);
  kz_sim_free(x.sim);
}
END_TEST

START_TEST(test_crash_loses_everything) {
  struct fx x;
  fx_up(&x, 1);
  struct kz_bus *b = x.c[0].bus;
  struct kz_bus_queue_opts durable = {.durable = true};
  ck_assert_int_eq(kz_bus_declare_exchange(b, "ex", KZ_BUS_EX_DIRECT), 0);
  ck_assert_int_eq(kz_bus_declare_queue(b, "d", &durable), 0);
  ck_assert_int_eq(kz_bus_bind(b, "d", "ex", "k"), 0);
  n_confirms = 0;
  ck_assert_int_eq(kz_bus_publish(b, "ex", "k", "keep?", 5, confirm_cb, NULL),
                   0);
  run(&x, 50 * MS);
  ck_assert_int_eq(n_confirms, 1);
  ck_assert_int_eq(last_confirm, 0);
  size_t ready = 0;
  ck_assert_int_eq(kz_sim_broker_queue_info(broker(&x), "d", &ready, NULL), 0);
  ck_assert_uint_eq(ready, 1);

  ck_assert_int_eq(kz_sim_host_crash(x.bh), 0);
  run(&x, 100 * MS);
  ck_assert_int_eq(x.c[0].downs, 1);
  ck_assert_int_eq(kz_sim_host_restart(x.bh), 0);
  run(&x, 3 * SEC); /* backoff, reconnect, replay */
  ck_assert_int_eq(kz_bus_state(b), KZ_BUS_UP);
  ck_assert_int_eq(x.c[0].ups, 2);
  /* The topology is back (replayed by the client), the message is not. */
  ck_assert_int_eq(kz_sim_broker_queue_info(broker(&x), "d", &ready, NULL), 0);
  ck_assert_uint_eq(ready, 0);
  struct kz_sim_broker_stats st;
  kz_sim_broker_stats(broker(&x), &st);
  ck_assert_uint_eq(st.published, 0);
  ck_assert_uint_ge(st.queues, 2); /* d and the reply queue */
  ck_assert_int_eq(x.c[0].errors, 0);
  kz_sim_free(x.sim);
}
END_TEST

START_TEST(test_default_exchange_cancel_keeps_unacked_and_counters) {
  struct fx x;
  fx_up(&x, 2);
  struct kz_bus *a = x.c[0].bus, *b = x.c[1].bus;
  struct rec ra = {0}, rb = {0};
  uint64_t ca = 0;
  ck_assert_int_eq(kz_bus_declare_queue(a, "work", NULL), 0);
  ck_assert_int_eq(kz_bus_consume(a, "work", true, rec_cb, &ra, &ca), 0);
  run(&x, 20 * MS);
  /* The default exchange "" routes on the queue name. */
  ck_assert_int_eq(kz_bus_publish(b, "", "work", "m1", 2, NULL, NULL), 0);
  ck_assert_int_eq(kz_bus_publish(b, "", "nowhere", "m2", 2, NULL, NULL), 0);
  run(&x, 20 * MS);
  ck_assert_int_eq(ra.n, 1);
  /* A cancel leaves the unacked message with the connection (AMQP):
   * nothing for the next consumer, and the ack still counts. */
  ck_assert_int_eq(kz_bus_cancel(a, ca), 0);
  ck_assert_int_eq(kz_bus_consume(b, "work", true, rec_cb, &rb, NULL), 0);
  run(&x, 20 * MS);
  ck_assert_int_eq(rb.n, 0);
  ck_assert_int_eq(kz_bus_ack(a, ra.tag[0]), 0);
  run(&x, 20 * MS);
  ck_assert_int_eq(x.c[0].errors, 0);
  /* An unknown tag is an error (406), the connection stays. */
  ck_assert_int_eq(kz_bus_ack(a, ra.tag[0]), 0);
  run(&x, 20 * MS);
  ck_assert_int_eq(x.c[0].errors, 1);
  ck_assert(strstr(x.c[0].last_error, "unknown delivery tag") != NULL);
  struct kz_sim_broker_stats st;
  kz_sim_broker_stats(broker(&x), &st);
  ck_assert_uint_eq(st.published, 2);
  ck_assert_uint_eq(st.routed, 1);
  ck_assert_uint_eq(st.unroutable, 1);
  ck_assert_uint_eq(st.delivered, 1);
  ck_assert_uint_eq(st.acked, 1);
  ck_assert_uint_eq(st.redelivered, 0);
  ck_assert_uint_eq(st.open, 2);
  ck_assert_int_eq(kz_sim_broker_queue_info(broker(&x), "missing", NULL, NULL),
                   KZ_ENOENT);
  kz_sim_free(x.sim);
}
END_TEST

static int idle_start(struct kz_env *env, const void *cfg, void **inst) {
  (void)cfg;
  *inst = env;
  return 0;
}
static void idle_stop(void *inst) { (void)inst; }
static const struct kz_sim_app idle_app = {"idle", idle_start, idle_stop};

START_TEST(test_new_and_free) {
  /* Allocation failures while starting a broker leave nothing behind. */
  struct kz_sim *sim;
  ck_assert_int_eq(kz_sim_new(&sim, 5), 0);
  struct kz_sim_host *h = host(sim, "h", BROKER_IP);
  struct kz_sim_proc *p;
  ck_assert_int_eq(kz_sim_proc_add(h, "idle", &idle_app, NULL, &p), 0);
  struct kz_env *env = kz_sim_proc_env(p);
  for (int64_t k = 0;; k++) {
    struct kz_sim_broker *b = NULL;
    kz_mem_fail_after(k);
    int rc = kz_sim_broker_new(&b, env, NULL);
    kz_mem_fail_after(-1);
    if (rc == 0) {
      kz_sim_broker_free(b);
      break;
    }
    ck_assert_int_eq(rc, KZ_ENOMEM);
    ck_assert_int_lt(k, 100);
  }
  struct kz_sim_broker *b1 = NULL, *b2 = NULL;
  ck_assert_int_eq(kz_sim_broker_new(&b1, env, NULL), 0);
  ck_assert_int_eq(kz_sim_broker_new(&b2, env, NULL), KZ_EADDRINUSE);
  kz_sim_broker_free(b1);
  kz_sim_broker_free(NULL);
  kz_sim_free(sim);
}
END_TEST

int main(void) {
  Suite *s = suite_create("sim_broker");
  tcase_add_test(kz_tcase(s, "publish_to_missing_exchange", 10),
                 test_publish_to_missing_exchange);
  tcase_add_test(kz_tcase(s, "exclusive_locked_and_inequivalent", 10),
                 test_exclusive_locked_and_inequivalent);
  tcase_add_test(kz_tcase(s, "broker_heartbeat_timeout", 10),
                 test_broker_heartbeat_timeout);
  tcase_add_test(kz_tcase(s, "crash_loses_everything", 10),
                 test_crash_loses_everything);
  tcase_add_test(kz_tcase(s, "default_exchange_cancel_keeps_unacked", 10),
                 test_default_exchange_cancel_keeps_unacked_and_counters);
  tcase_add_test(kz_tcase(s, "new_and_free", 10), test_new_and_free);
  return kz_run_suite(s);
}
