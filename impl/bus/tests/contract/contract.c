/* contract.c — the bus contract: routing, queue life, round robin, redelivery, request/response, collect, confirms, validation and failover, against any world. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract_world.h"
#include "kz/bus.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz_test.h"

/* Check's test functions take no argument: the world under test is
 * test-runner state, set once by kz_bus_contract_suite. */
static const struct kz_contract_world_ops *W;

#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)
/* Long enough for a real broker to apply what was sent, in order, on
 * other connections; in the simulator a few link latencies. */
#define SETTLE_NS (300 * MS)
#define UP_TIMEOUT_NS (5 * SEC)

/* ------------------------------------------------------------------ */
/* Clients                                                              */

struct client {
  struct kz_bus *bus;
  int ups, downs, errors;
  int index;
  enum kz_bus_state state;
  char reason[256];
};

static void on_state(void *arg, struct kz_bus *bus, enum kz_bus_state state,
                     int broker_index, const char *reason) {
  struct client *c = arg;
  (void)bus;
  if (state == KZ_BUS_UP && c->state == KZ_BUS_UP && reason) {
    c->errors++; /* an error report while up */
  } else if (state == KZ_BUS_UP) {
    c->ups++;
    c->index = broker_index;
  } else {
    c->downs++;
  }
  c->state = state;
  snprintf(c->reason, sizeof c->reason, "%s", reason ? reason : "");
}

static struct kz_contract_world *world_new(uint64_t seed) {
  struct kz_contract_world *w = NULL;
  int rc = W->create(&w, seed);
  /* A world that cannot run here (KZ_ENOTSUP) fails too: the test
   * executable's main decides about skipping (exit 77) before any test
   * runs, so nothing passes without having run. */
  ck_assert_msg(rc == 0, "world(%s) create: %s", W->name, kz_strerror(rc));
  return w;
}

static void client_new(struct kz_contract_world *w, struct client *c) {
  memset(c, 0, sizeof *c);
  c->index = -1;
  struct kz_bus_cfg cfg = {
      .node = "contract@test",
      .app_name = "kz_contract",
      .app_version = "0.1.0",
      .default_timeout_ns = SEC,
      .on_state = on_state,
      .state_arg = c,
  };
  int rc = W->client_new(w, &cfg, &c->bus);
  ck_assert_msg(rc == 0, "client_new: %s", kz_strerror(rc));
}

struct up_wait {
  struct client **c;
  size_t n;
  int index; /* -1: any broker */
};

static bool all_up(void *arg) {
  struct up_wait *u = arg;
  for (size_t i = 0; i < u->n; i++) {
    if (kz_bus_state(u->c[i]->bus) != KZ_BUS_UP) return false;
    if (u->index >= 0 && u->c[i]->index != u->index) return false;
  }
  return true;
}

static void wait_up(struct kz_contract_world *w, struct client **c, size_t n,
                    int index) {
  struct up_wait u = {c, n, index};
  int rc = W->run_until(w, all_up, &u, UP_TIMEOUT_NS);
  ck_assert_msg(rc == 0, "clients not up: %s", kz_strerror(rc));
}

static void settle(struct kz_contract_world *w) {
  ck_assert_int_eq(W->run_until(w, NULL, NULL, SETTLE_NS), 0);
}

/* "<tag>-<base>": names unique to the world (real brokers outlive tests). */
static const char *nm(struct kz_contract_world *w, char *buf, size_t len,
                      const char *base) {
  snprintf(buf, len, "%s-%s", W->tag(w), base);
  return buf;
}
#define NM(w, var, base) \
  char var[96];          \
  nm(w, var, sizeof var, base)

/* ------------------------------------------------------------------ */
/* Recording consumers                                                  */

#define REC_MAX 32

struct rec {
  int n;
  char body[REC_MAX][512];
  char key[REC_MAX][64];
  uint64_t tag[REC_MAX];
  bool redelivered[REC_MAX];
};

static void rec_cb(void *arg, struct kz_bus *bus,
                   const struct kz_bus_delivery *d) {
  struct rec *r = arg;
  (void)bus;
  if (r->n >= REC_MAX) return;
  snprintf(r->body[r->n], sizeof r->body[0], "%.*s", (int)d->len,
           (const char *)d->body);
  snprintf(r->key[r->n], sizeof r->key[0], "%s", d->routing_key);
  r->tag[r->n] = d->tag;
  r->redelivered[r->n] = d->redelivered;
  r->n++;
}

struct count_wait {
  struct rec **r;
  size_t n;
  int total;
};

static bool reached(void *arg) {
  struct count_wait *cw = arg;
  int sum = 0;
  for (size_t i = 0; i < cw->n; i++) sum += cw->r[i]->n;
  return sum >= cw->total;
}

/* Waits until the recorders hold `total` deliveries together, then a
 * quiet period so that extra (wrong) deliveries would show. */
static void wait_total(struct kz_contract_world *w, struct rec **r, size_t n,
                       int total) {
  struct count_wait cw = {r, n, total};
  int rc = W->run_until(w, reached, &cw, 2 * SEC);
  ck_assert_msg(rc == 0, "only some deliveries arrived: %s", kz_strerror(rc));
  settle(w);
}

static void pub(struct client *c, const char *ex, const char *key,
                const char *body) {
  ck_assert_int_eq(kz_bus_publish(c->bus, ex, key, body, strlen(body), NULL,
                                  NULL),
                   0);
}

static bool rec_has(const struct rec *r, const char *body) {
  for (int i = 0; i < r->n; i++)
    if (strcmp(r->body[i], body) == 0) return true;
  return false;
}

/* A private queue for routing tests: exclusive + auto-delete, so a real
 * broker cleans it up with the connection. */
static void private_queue(struct client *c, const char *q, const char *ex,
                          const char *key, struct rec *r) {
  struct kz_bus_queue_opts o = {.exclusive = true, .auto_delete = true};
  ck_assert_int_eq(kz_bus_declare_queue(c->bus, q, &o), 0);
  if (key) ck_assert_int_eq(kz_bus_bind(c->bus, q, ex, key), 0);
  if (r) ck_assert_int_eq(kz_bus_consume(c->bus, q, false, rec_cb, r, NULL), 0);
}

/* ------------------------------------------------------------------ */
/* Confirms                                                             */

struct confirms {
  int n;
  int status[8];
};

static void confirm_cb(void *arg, struct kz_bus *bus, int status) {
  struct confirms *c = arg;
  (void)bus;
  if (c->n < 8) c->status[c->n] = status;
  c->n++;
}

struct confirm_wait {
  struct confirms *c;
  int n;
};

static bool confirms_reached(void *arg) {
  struct confirm_wait *cw = arg;
  return cw->c->n >= cw->n;
}

static void wait_confirms(struct kz_contract_world *w, struct confirms *c,
                          int n) {
  struct confirm_wait cw = {c, n};
  int rc = W->run_until(w, confirms_reached, &cw, 2 * SEC);
  ck_assert_msg(rc == 0, "confirms: %d of %d", c->n, n);
}

/* ------------------------------------------------------------------ */
/* Routing                                                              */

START_TEST(test_direct_routing) {
  struct kz_contract_world *w = world_new(1);
  if (!w) return;
  struct client a;
  client_new(w, &a);
  struct client *cs[] = {&a};
  wait_up(w, cs, 1, -1);
  NM(w, ex, "direct");
  NM(w, q1, "d1");
  NM(w, q2, "d2");
  struct rec r1 = {0}, r2 = {0};
  ck_assert_int_eq(kz_bus_declare_exchange(a.bus, ex, KZ_BUS_EX_DIRECT), 0);
  private_queue(&a, q1, ex, "a", &r1);
  private_queue(&a, q2, ex, "b", &r2);
  ck_assert_int_eq(kz_bus_bind(a.bus, q2, ex, "a.b"), 0);
  pub(&a, ex, "a", "one");
  pub(&a, ex, "b", "two");
  pub(&a, ex, "c", "nobody");
  pub(&a, ex, "a.b", "three");
  pub(&a, ex, "a.*", "not-a-pattern");
  struct rec *rs[] = {&r1, &r2};
  wait_total(w, rs, 2, 3);
  ck_assert_int_eq(r1.n, 1);
  ck_assert_str_eq(r1.body[0], "one");
  ck_assert_str_eq(r1.key[0], "a");
  ck_assert_int_eq(r2.n, 2);
  ck_assert_str_eq(r2.body[0], "two");
  ck_assert_str_eq(r2.body[1], "three");
  ck_assert_int_eq(a.errors, 0);
  W->destroy(w);
}
END_TEST

START_TEST(test_topic_routing) {
  struct kz_contract_world *w = world_new(2);
  if (!w) return;
  struct client a;
  client_new(w, &a);
  struct client *cs[] = {&a};
  wait_up(w, cs, 1, -1);
  NM(w, ex, "topic");
  ck_assert_int_eq(kz_bus_declare_exchange(a.bus, ex, KZ_BUS_EX_TOPIC), 0);
  static const char *const patterns[] = {"a.*.c", "a.#", "#", "*.b"};
  struct rec r[5] = {0};
  char qn[5][96];
  for (int i = 0; i < 4; i++) {
    char base[8];
    snprintf(base, sizeof base, "t%d", i);
    nm(w, qn[i], sizeof qn[i], base);
    private_queue(&a, qn[i], ex, patterns[i], &r[i]);
  }
  /* Two bindings of one queue matching the same key: one copy. */
  nm(w, qn[4], sizeof qn[4], "t4");
  private_queue(&a, qn[4], ex, "a.#", &r[4]);
  ck_assert_int_eq(kz_bus_bind(a.bus, qn[4], ex, "#.c"), 0);

  pub(&a, ex, "a.b.c", "abc");     /* a.*.c  a.#  #  (t4 once) */
  pub(&a, ex, "a", "a");           /* a.# (zero words)  #  t4 */
  pub(&a, ex, "x.b", "xb");        /* #  *.b */
  pub(&a, ex, "a.b", "ab");        /* a.#  #  *.b  t4 */
  pub(&a, ex, "a.x.y.c", "axyc");  /* a.#  #  t4 (not a.*.c) */
  pub(&a, ex, "b", "b");           /* #  (not *.b: one word only) */
  struct rec *rs[] = {&r[0], &r[1], &r[2], &r[3], &r[4]};
  wait_total(w, rs, 5, 1 + 4 + 6 + 2 + 4);
  ck_assert_int_eq(r[0].n, 1);
  ck_assert_str_eq(r[0].body[0], "abc");
  ck_assert_int_eq(r[1].n, 4);
  ck_assert(rec_has(&r[1], "a") && rec_has(&r[1], "axyc") &&
            !rec_has(&r[1], "xb"));
  ck_assert_int_eq(r[2].n, 6);
  ck_assert_int_eq(r[3].n, 2);
  ck_assert(rec_has(&r[3], "xb") && rec_has(&r[3], "ab"));
  ck_assert_int_eq(r[4].n, 4);
  ck_assert(rec_has(&r[4], "abc") && !rec_has(&r[4], "b"));
  W->destroy(w);
}
END_TEST

START_TEST(test_fanout_routing) {
  struct kz_contract_world *w = world_new(3);
  if (!w) return;
  struct client a, b;
  client_new(w, &a);
  client_new(w, &b);
  struct client *cs[] = {&a, &b};
  wait_up(w, cs, 2, -1);
  NM(w, ex, "fanout");
  NM(w, q1, "f1");
  NM(w, q2, "f2");
  struct rec r1 = {0}, r2 = {0};
  ck_assert_int_eq(kz_bus_declare_exchange(a.bus, ex, KZ_BUS_EX_FANOUT), 0);
  ck_assert_int_eq(kz_bus_declare_exchange(b.bus, ex, KZ_BUS_EX_FANOUT), 0);
  private_queue(&a, q1, ex, "x", &r1);
  private_queue(&b, q2, ex, "", &r2);
  settle(w);
  pub(&a, ex, "anything", "m1");
  pub(&a, ex, "", "m2");
  struct rec *rs[] = {&r1, &r2};
  wait_total(w, rs, 2, 4);
  ck_assert_int_eq(r1.n, 2);
  ck_assert_int_eq(r2.n, 2);
  ck_assert_str_eq(r2.body[0], "m1");
  ck_assert_str_eq(r2.body[1], "m2");
  W->destroy(w);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Queue life                                                           */

START_TEST(test_exclusive_deleted_on_disconnect) {
  struct kz_contract_world *w = world_new(4);
  if (!w) return;
  struct client a, b;
  client_new(w, &a);
  client_new(w, &b);
  struct client *cs[] = {&a, &b};
  wait_up(w, cs, 2, -1);
  NM(w, ex, "excl");
  NM(w, q, "xq");
  struct rec ra = {0}, rb = {0};
  ck_assert_int_eq(kz_bus_declare_exchange(a.bus, ex, KZ_BUS_EX_DIRECT), 0);
  ck_assert_int_eq(kz_bus_declare_exchange(b.bus, ex, KZ_BUS_EX_DIRECT), 0);
  struct kz_bus_queue_opts excl = {.exclusive = true};
  ck_assert_int_eq(kz_bus_declare_queue(a.bus, q, &excl), 0);
  ck_assert_int_eq(kz_bus_bind(a.bus, q, ex, "k"), 0);
  ck_assert_int_eq(kz_bus_consume(a.bus, q, false, rec_cb, &ra, NULL), 0);
  settle(w);
  pub(&b, ex, "k", "m1");
  struct rec *ras[] = {&ra};
  wait_total(w, ras, 1, 1);
  ck_assert_str_eq(ra.body[0], "m1");

  W->client_close(w, a.bus);
  settle(w);
  /* If the queue outlived its connection, m2 would wait in it. */
  struct confirms cf = {0};
  ck_assert_int_eq(
      kz_bus_publish(b.bus, ex, "k", "m2", 2, confirm_cb, &cf), 0);
  wait_confirms(w, &cf, 1);
  ck_assert_int_eq(cf.status[0], 0);
  /* B can now declare it (exclusively its own) and sees only m3. */
  struct kz_bus_queue_opts mine = {.exclusive = true, .auto_delete = true};
  ck_assert_int_eq(kz_bus_declare_queue(b.bus, q, &mine), 0);
  ck_assert_int_eq(kz_bus_bind(b.bus, q, ex, "k"), 0);
  ck_assert_int_eq(kz_bus_consume(b.bus, q, false, rec_cb, &rb, NULL), 0);
  pub(&b, ex, "k", "m3");
  struct rec *rbs[] = {&rb};
  wait_total(w, rbs, 1, 1);
  ck_assert_int_eq(rb.n, 1);
  ck_assert_str_eq(rb.body[0], "m3");
  ck_assert_int_eq(b.errors, 0);
  W->destroy(w);
}
END_TEST

START_TEST(test_auto_delete_after_last_consumer) {
  struct kz_contract_world *w = world_new(5);
  if (!w) return;
  struct client a;
  client_new(w, &a);
  struct client *cs[] = {&a};
  wait_up(w, cs, 1, -1);
  NM(w, ex, "ad");
  NM(w, q, "adq");
  struct rec r1 = {0}, r2 = {0}, r3 = {0};
  ck_assert_int_eq(kz_bus_declare_exchange(a.bus, ex, KZ_BUS_EX_DIRECT), 0);
  struct kz_bus_queue_opts ad = {.auto_delete = true};
  ck_assert_int_eq(kz_bus_declare_queue(a.bus, q, &ad), 0);
  ck_assert_int_eq(kz_bus_bind(a.bus, q, ex, "k"), 0);
  uint64_t c1 = 0, c2 = 0;
  ck_assert_int_eq(kz_bus_consume(a.bus, q, false, rec_cb, &r1, &c1), 0);
  ck_assert_int_eq(kz_bus_consume(a.bus, q, false, rec_cb, &r2, &c2), 0);
  pub(&a, ex, "k", "m1");
  pub(&a, ex, "k", "m2");
  struct rec *r12[] = {&r1, &r2};
  wait_total(w, r12, 2, 2);
  ck_assert_int_eq(r1.n, 1);
  ck_assert_int_eq(r2.n, 1);

  /* One consumer left: the queue stays. */
  ck_assert_int_eq(kz_bus_cancel(a.bus, c1), 0);
  pub(&a, ex, "k", "m3");
  wait_total(w, r12, 2, 3);
  ck_assert_int_eq(r1.n, 1);
  ck_assert_int_eq(r2.n, 2);
  ck_assert_str_eq(r2.body[1], "m3");

  /* The last one leaves: the queue (and its binding) goes. */
  ck_assert_int_eq(kz_bus_cancel(a.bus, c2), 0);
  struct confirms cf = {0};
  ck_assert_int_eq(kz_bus_publish(a.bus, ex, "k", "m4", 2, confirm_cb, &cf),
                   0);
  wait_confirms(w, &cf, 1);
  ck_assert_int_eq(cf.status[0], 0);
  ck_assert_int_eq(kz_bus_declare_queue(a.bus, q, &ad), 0);
  ck_assert_int_eq(kz_bus_bind(a.bus, q, ex, "k"), 0);
  ck_assert_int_eq(kz_bus_consume(a.bus, q, false, rec_cb, &r3, NULL), 0);
  pub(&a, ex, "k", "m5");
  struct rec *r3s[] = {&r3};
  wait_total(w, r3s, 1, 1);
  ck_assert_int_eq(r3.n, 1);
  ck_assert_str_eq(r3.body[0], "m5");
  ck_assert_int_eq(a.errors, 0);
  W->destroy(w);
}
END_TEST

START_TEST(test_round_robin) {
  struct kz_contract_world *w = world_new(6);
  if (!w) return;
  struct client c[4];
  struct client *cs[4];
  for (int i = 0; i < 4; i++) {
    client_new(w, &c[i]);
    cs[i] = &c[i];
  }
  wait_up(w, cs, 4, -1);
  NM(w, ex, "rr");
  NM(w, q, "rrq");
  struct rec r[3] = {0};
  struct kz_bus_queue_opts ad = {.auto_delete = true};
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(kz_bus_declare_exchange(c[i].bus, ex, KZ_BUS_EX_DIRECT),
                     0);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(kz_bus_declare_queue(c[i].bus, q, &ad), 0);
    ck_assert_int_eq(kz_bus_bind(c[i].bus, q, ex, "work"), 0);
    ck_assert_int_eq(kz_bus_consume(c[i].bus, q, false, rec_cb, &r[i], NULL),
                     0);
    settle(w); /* consumers register in this order */
  }
  for (int m = 0; m < 9; m++) {
    char body[8];
    snprintf(body, sizeof body, "w%d", m);
    pub(&c[3], ex, "work", body);
  }
  struct rec *rs[] = {&r[0], &r[1], &r[2]};
  wait_total(w, rs, 3, 9);
  for (int i = 0; i < 3; i++) {
    ck_assert_msg(r[i].n == 3, "consumer %d got %d of 9", i, r[i].n);
    /* Strict turns: consumer i gets messages i, i+3, i+6 in some order
     * of consumers; each consumer's own messages keep queue order. */
    int a0 = atoi(r[i].body[0] + 1), a1 = atoi(r[i].body[1] + 1),
        a2 = atoi(r[i].body[2] + 1);
    ck_assert(a1 == a0 + 3 && a2 == a1 + 3);
  }
  W->destroy(w);
}
END_TEST

START_TEST(test_unacked_redelivered_on_close) {
  struct kz_contract_world *w = world_new(7);
  if (!w) return;
  struct client a, b;
  client_new(w, &a);
  client_new(w, &b);
  struct client *cs[] = {&a, &b};
  wait_up(w, cs, 2, -1);
  NM(w, ex, "ua");
  NM(w, q, "uaq");
  struct rec ra = {0}, rb = {0};
  ck_assert_int_eq(kz_bus_declare_exchange(a.bus, ex, KZ_BUS_EX_DIRECT), 0);
  ck_assert_int_eq(kz_bus_declare_exchange(b.bus, ex, KZ_BUS_EX_DIRECT), 0);
  ck_assert_int_eq(kz_bus_declare_queue(a.bus, q, NULL), 0);
  ck_assert_int_eq(kz_bus_bind(a.bus, q, ex, "k"), 0);
  ck_assert_int_eq(kz_bus_consume(a.bus, q, true, rec_cb, &ra, NULL), 0);
  settle(w);
  pub(&b, ex, "k", "m1");
  pub(&b, ex, "k", "m2");
  struct rec *ras[] = {&ra};
  wait_total(w, ras, 1, 2);
  ck_assert_int_eq(ra.n, 2);
  ck_assert(!ra.redelivered[0] && !ra.redelivered[1]);
  ck_assert_int_eq(kz_bus_ack(a.bus, ra.tag[0]), 0); /* m1 done, m2 not */
  settle(w);
  W->client_close(w, a.bus);
  settle(w);

  ck_assert_int_eq(kz_bus_declare_queue(b.bus, q, NULL), 0);
  ck_assert_int_eq(kz_bus_consume(b.bus, q, true, rec_cb, &rb, NULL), 0);
  struct rec *rbs[] = {&rb};
  wait_total(w, rbs, 1, 1);
  ck_assert_int_eq(rb.n, 1);
  ck_assert_str_eq(rb.body[0], "m2");
  ck_assert(rb.redelivered[0]);
  ck_assert_int_eq(kz_bus_ack(b.bus, rb.tag[0]), 0);
  /* A real broker keeps a plain queue: leave nothing behind. */
  ck_assert_int_eq(kz_bus_delete_queue(b.bus, q), 0);
  settle(w);
  ck_assert_int_eq(b.errors, 0);
  W->destroy(w);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Request/response                                                     */

/* A responder answering authn_req with Auth-Password "<prefix><user>";
 * with `wrong_first` it first sends a reply carrying a foreign Msg-ID. */
struct responder {
  struct client cl;
  const char *prefix;
  bool wrong_first;
  bool silent;
  int seen;
};

static void responder_cb(void *arg, struct kz_bus *bus,
                         const struct kz_bus_delivery *d) {
  struct responder *r = arg;
  r->seen++;
  if (r->silent) return;
  json_t *req = NULL;
  if (kz_kapi_parse(d->body, d->len, NULL, &req, NULL)) return;
  char pw[96];
  snprintf(pw, sizeof pw, "%s%s", r->prefix,
           json_string_value(json_object_get(req, "Auth-User")));
  if (r->wrong_first) {
    json_t *bad = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s}", "Event-Category", "directory",
        "Event-Name", "authn_resp", "Auth-Method", "password", "Auth-Password",
        "wrong", "Msg-ID", "00000000000000000000000000000000", "App-Name",
        "responder");
    json_object_set_new(bad, "App-Version", json_string("0.1.0"));
    const char *sid = json_string_value(json_object_get(req, "Server-ID"));
    ck_assert_int_eq(kz_bus_publish_msg(bus, "targeted", sid, bad, NULL, NULL),
                     0);
    json_decref(bad);
  }
  json_t *reply = json_pack("{s:s, s:s, s:s, s:s}", "Event-Category",
                            "directory", "Event-Name", "authn_resp",
                            "Auth-Method", "password", "Auth-Password", pw);
  ck_assert_int_eq(kz_bus_reply(bus, req, reply), 0);
  json_decref(reply);
  json_decref(req);
}

static void responder_new(struct kz_contract_world *w, struct responder *r,
                          const char *prefix) {
  memset(r, 0, sizeof *r);
  r->prefix = prefix;
  client_new(w, &r->cl);
}

/* Declares the responder's queue once it is up (the bus replays it after
 * a failover). */
static void responder_listen(struct kz_contract_world *w, struct responder *r,
                             const char *ex, int i) {
  char base[16], q[96];
  snprintf(base, sizeof base, "resp%d", i);
  nm(w, q, sizeof q, base);
  struct kz_bus_queue_opts o = {.exclusive = true, .auto_delete = true};
  ck_assert_int_eq(kz_bus_declare_exchange(r->cl.bus, ex, KZ_BUS_EX_TOPIC), 0);
  ck_assert_int_eq(kz_bus_declare_queue(r->cl.bus, q, &o), 0);
  ck_assert_int_eq(kz_bus_bind(r->cl.bus, q, ex, "authn.req.*"), 0);
  ck_assert_int_eq(
      kz_bus_consume(r->cl.bus, q, false, responder_cb, r, NULL), 0);
}

/* The usual request/response pair: responder r (made with responder_new,
 * its options set) and a new client q, both up (wait_up's `node`), r
 * serving authn_req on the topic exchange ex, q having declared it. */
static void pair_up(struct kz_contract_world *w, struct responder *r, struct client *q, const char *ex,
                    int node) {
  client_new(w, q);
  struct client *cs[] = {&r->cl, q};
  wait_up(w, cs, 2, node);
  responder_listen(w, r, ex, 0);
  ck_assert_int_eq(kz_bus_declare_exchange(q->bus, ex, KZ_BUS_EX_TOPIC), 0);
  settle(w);
}

static json_t *authn_req(const char *user) {
  char from[64];
  snprintf(from, sizeof from, "sip:%s@example.com", user);
  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "Event-Category",
                   "directory", "Event-Name", "authn_req", "Method",
                   "REGISTER", "Auth-User", user, "Auth-Realm", "example.com",
                   "From", from, "To", from);
}

struct answer {
  int calls;
  int status;
  char msg_id[64];
  char password[64];
  uint64_t at;
  struct kz_contract_world *w;
};

static void answer_cb(void *arg, struct kz_bus *bus, int status,
                      const json_t *reply) {
  struct answer *a = arg;
  (void)bus;
  a->calls++;
  a->status = status;
  a->at = W->now(a->w);
  if (reply) {
    snprintf(a->msg_id, sizeof a->msg_id, "%s",
             json_string_value(json_object_get(reply, "Msg-ID")));
    snprintf(a->password, sizeof a->password, "%s",
             json_string_value(json_object_get(reply, "Auth-Password")));
  }
}

static bool answered(void *arg) { return ((struct answer *)arg)->calls > 0; }

struct answers2 {
  struct answer *a, *b;
};

static bool both_answered(void *arg) {
  struct answers2 *x = arg;
  return x->a->calls > 0 && x->b->calls > 0;
}

/* Sends one authn_req for `user` and waits for its answer. */
static void request_once(struct kz_contract_world *w, struct client *q,
                         const char *ex, const char *user, uint64_t timeout,
                         struct answer *ans) {
  memset(ans, 0, sizeof *ans);
  ans->w = w;
  json_t *req = authn_req(user);
  char *key = NULL;
  ck_assert_int_eq(kz_bus_rk_authn_req(&key, "example.com"), 0);
  ck_assert_int_eq(
      kz_bus_request(q->bus, ex, key, req, timeout, answer_cb, ans, NULL), 0);
  kz_free(key);
  const char *mid = json_string_value(json_object_get(req, "Msg-ID"));
  ck_assert_ptr_nonnull(mid);
  ck_assert_str_eq(json_string_value(json_object_get(req, "Server-ID")),
                   kz_bus_server_id(q->bus));
  char want_mid[64];
  snprintf(want_mid, sizeof want_mid, "%s", mid);
  json_decref(req);
  int rc = W->run_until(w, answered, ans, timeout + SEC);
  ck_assert_int_eq(rc, 0);
  if (ans->status == 0) ck_assert_str_eq(ans->msg_id, want_mid);
}

/* Two requests in flight; the first answer's callback frees the bus (the
 * way a role shuts down on a reply).  The backend is still dispatching
 * the delivery then: it must not touch the freed bus or itself, and the
 * other request ends with KZ_ECANCELED from inside kz_bus_free. */
struct free_in_cb {
  struct kz_contract_world *w;
  struct client *c;
  int calls;
  int status[2];
  char password[64];
};

static void free_answer_cb(void *arg, struct kz_bus *bus, int status,
                           const json_t *reply) {
  struct free_in_cb *f = arg;
  ck_assert_int_lt(f->calls, 2);
  f->status[f->calls++] = status;
  if (reply)
    snprintf(f->password, sizeof f->password, "%s",
             json_string_value(json_object_get(reply, "Auth-Password")));
  if (f->c->bus) {
    ck_assert_ptr_eq(bus, f->c->bus);
    f->c->bus = NULL;
    W->client_close(f->w, bus); /* kz_bus_free inside the callback */
  }
}

static bool free_done(void *arg) { return ((struct free_in_cb *)arg)->calls > 0; }

START_TEST(test_free_bus_in_reply_callback) {
  struct kz_contract_world *w = world_new(21);
  if (!w) return;
  NM(w, ex, "callmgr");
  struct responder r;
  struct client q;
  responder_new(w, &r, "pw-");
  pair_up(w, &r, &q, ex, -1);

  struct free_in_cb f = {.w = w, .c = &q};
  char *key = NULL;
  ck_assert_int_eq(kz_bus_rk_authn_req(&key, "example.com"), 0);
  json_t *rx = authn_req("1001"), *ry = authn_req("1002");
  ck_assert_int_eq(
      kz_bus_request(q.bus, ex, key, rx, SEC, free_answer_cb, &f, NULL), 0);
  ck_assert_int_eq(
      kz_bus_request(q.bus, ex, key, ry, SEC, free_answer_cb, &f, NULL), 0);
  json_decref(rx);
  json_decref(ry);
  kz_free(key);
  ck_assert_int_eq(W->run_until(w, free_done, &f, 2 * SEC), 0);
  /* The freeing callback saw a reply; the other request was cancelled
   * by kz_bus_free, from inside the first callback. */
  ck_assert_int_eq(f.calls, 2);
  ck_assert_int_eq(f.status[0], 0);
  ck_assert(!strncmp(f.password, "pw-100", 6));
  ck_assert_int_eq(f.status[1], KZ_ECANCELED);
  ck_assert_ptr_null(q.bus);
  /* The second reply still arrives on the broker side; nothing may run
   * on the freed client (the sanitizers watch). */
  settle(w);
  ck_assert_int_eq(f.calls, 2);
  ck_assert_int_ge(r.seen, 2);
  W->destroy(w);
}
END_TEST

START_TEST(test_request_response) {
  struct kz_contract_world *w = world_new(8);
  if (!w) return;
  NM(w, ex, "callmgr");
  struct responder r;
  struct client q;
  responder_new(w, &r, "pw-");
  pair_up(w, &r, &q, ex, -1);

  struct answer a1;
  request_once(w, &q, ex, "1001", SEC, &a1);
  ck_assert_int_eq(a1.status, 0);
  ck_assert_str_eq(a1.password, "pw-1001");

  /* Two requests in flight: each reply reaches its own caller. */
  struct answer x = {.w = w}, y = {.w = w};
  char *key = NULL;
  ck_assert_int_eq(kz_bus_rk_authn_req(&key, "example.com"), 0);
  json_t *rx = authn_req("2001"), *ry = authn_req("2002");
  ck_assert_int_eq(kz_bus_request(q.bus, ex, key, rx, SEC, answer_cb, &x, NULL),
                   0);
  ck_assert_int_eq(kz_bus_request(q.bus, ex, key, ry, SEC, answer_cb, &y, NULL),
                   0);
  ck_assert_str_ne(json_string_value(json_object_get(rx, "Msg-ID")),
                   json_string_value(json_object_get(ry, "Msg-ID")));
  struct answers2 both = {&x, &y};
  ck_assert_int_eq(W->run_until(w, both_answered, &both, 2 * SEC), 0);
  ck_assert_str_eq(x.password, "pw-2001");
  ck_assert_str_eq(y.password, "pw-2002");
  ck_assert_str_eq(x.msg_id, json_string_value(json_object_get(rx, "Msg-ID")));
  ck_assert_str_eq(y.msg_id, json_string_value(json_object_get(ry, "Msg-ID")));
  json_decref(rx);
  json_decref(ry);
  kz_free(key);
  settle(w);
  ck_assert_int_eq(x.calls, 1);
  ck_assert_int_eq(y.calls, 1);
  W->destroy(w);
}
END_TEST

START_TEST(test_reply_wrong_msg_id_ignored) {
  struct kz_contract_world *w = world_new(9);
  if (!w) return;
  NM(w, ex, "callmgr");
  struct responder r;
  struct client q;
  responder_new(w, &r, "right-");
  r.wrong_first = true;
  pair_up(w, &r, &q, ex, -1);
  struct answer a;
  request_once(w, &q, ex, "1001", SEC, &a);
  ck_assert_int_eq(a.status, 0);
  ck_assert_str_eq(a.password, "right-1001");
  settle(w);
  ck_assert_int_eq(a.calls, 1);
  ck_assert_int_eq(r.seen, 1);
  W->destroy(w);
}
END_TEST

START_TEST(test_request_timeout) {
  struct kz_contract_world *w = world_new(10);
  if (!w) return;
  NM(w, ex, "callmgr");
  struct responder r;
  struct client q;
  responder_new(w, &r, "");
  r.silent = true; /* gets the request, never answers */
  pair_up(w, &r, &q, ex, -1);
  uint64_t t0 = W->now(w);
  struct answer a;
  request_once(w, &q, ex, "1001", 300 * MS, &a);
  ck_assert_int_eq(a.status, KZ_ETIMEDOUT);
  ck_assert_uint_ge(a.at - t0, 300 * MS);
  ck_assert_uint_lt(a.at - t0, 400 * MS);
  ck_assert_int_eq(r.seen, 1);
  ck_assert_int_eq(W->run_until(w, NULL, NULL, 500 * MS), 0);
  ck_assert_int_eq(a.calls, 1);
  W->destroy(w);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Collect                                                              */

struct collected {
  int calls;
  int status;
  size_t n;
  char password[4][64];
  uint64_t at;
  struct kz_contract_world *w;
};

static void collect_cb(void *arg, struct kz_bus *bus, int status,
                       const json_t *const *replies, size_t n) {
  struct collected *c = arg;
  (void)bus;
  c->calls++;
  c->status = status;
  c->n = n;
  c->at = W->now(c->w);
  for (size_t i = 0; i < n && i < 4; i++)
    snprintf(c->password[i], sizeof c->password[i], "%s",
             json_string_value(json_object_get(replies[i], "Auth-Password")));
}

static bool collected_done(void *arg) {
  return ((struct collected *)arg)->calls > 0;
}

static bool has_pw(const struct collected *c, const char *pw) {
  for (size_t i = 0; i < c->n && i < 4; i++)
    if (strcmp(c->password[i], pw) == 0) return true;
  return false;
}

static void collect_case(uint64_t seed, int responders, size_t want,
                         uint64_t timeout, struct collected *out) {
  struct kz_contract_world *w = world_new(seed);
  if (!w) {
    out->calls = -1;
    return;
  }
  NM(w, ex, "callmgr");
  static const char *const prefixes[] = {"r0-", "r1-", "r2-", "r3-"};
  struct responder r[4];
  struct client q;
  struct client *cs[5];
  for (int i = 0; i < responders; i++) {
    responder_new(w, &r[i], prefixes[i]);
    cs[i] = &r[i].cl;
  }
  client_new(w, &q);
  cs[responders] = &q;
  wait_up(w, cs, (size_t)responders + 1, -1);
  for (int i = 0; i < responders; i++) responder_listen(w, &r[i], ex, i);
  ck_assert_int_eq(kz_bus_declare_exchange(q.bus, ex, KZ_BUS_EX_TOPIC), 0);
  settle(w);

  memset(out, 0, sizeof *out);
  out->w = w;
  json_t *req = authn_req("1001");
  char *key = NULL;
  ck_assert_int_eq(kz_bus_rk_authn_req(&key, "example.com"), 0);
  uint64_t t0 = W->now(w);
  ck_assert_int_eq(kz_bus_collect(q.bus, ex, key, req, want, timeout,
                                  collect_cb, out, NULL),
                   0);
  kz_free(key);
  json_decref(req);
  ck_assert_int_eq(W->run_until(w, collected_done, out, timeout + SEC), 0);
  out->at -= t0;
  settle(w);
  ck_assert_int_eq(out->calls, 1);
  W->destroy(w);
}

START_TEST(test_collect_n_from_n) {
  struct collected c;
  collect_case(11, 3, 3, 2 * SEC, &c);
  if (c.calls < 0) return;
  ck_assert_int_eq(c.status, 0);
  ck_assert_uint_eq(c.n, 3);
  ck_assert_uint_lt(c.at, SEC); /* done at the third reply, not the timeout */
  ck_assert(has_pw(&c, "r0-1001") && has_pw(&c, "r1-1001") &&
            has_pw(&c, "r2-1001"));
}
END_TEST

START_TEST(test_collect_timeout_with_fewer) {
  struct collected c;
  collect_case(12, 2, 3, 400 * MS, &c);
  if (c.calls < 0) return;
  ck_assert_int_eq(c.status, KZ_ETIMEDOUT);
  ck_assert_uint_eq(c.n, 2);
  ck_assert_uint_ge(c.at, 400 * MS);
  ck_assert(has_pw(&c, "r0-1001") && has_pw(&c, "r1-1001"));
}
END_TEST

/* ------------------------------------------------------------------ */
/* Publishing                                                           */

START_TEST(test_publish_confirm) {
  struct kz_contract_world *w = world_new(13);
  if (!w) return;
  struct client a;
  client_new(w, &a);
  struct client *cs[] = {&a};
  wait_up(w, cs, 1, -1);
  NM(w, ex, "conf");
  NM(w, q, "confq");
  struct rec r = {0};
  ck_assert_int_eq(kz_bus_declare_exchange(a.bus, ex, KZ_BUS_EX_DIRECT), 0);
  private_queue(&a, q, ex, "k", &r);
  struct confirms cf = {0};
  ck_assert_int_eq(kz_bus_publish(a.bus, ex, "k", "m1", 2, confirm_cb, &cf),
                   0);
  /* Unroutable but accepted: RabbitMQ confirms it too. */
  ck_assert_int_eq(
      kz_bus_publish(a.bus, ex, "nowhere", "m2", 2, confirm_cb, &cf), 0);
  wait_confirms(w, &cf, 2);
  settle(w);
  ck_assert_int_eq(cf.n, 2);
  ck_assert_int_eq(cf.status[0], 0);
  ck_assert_int_eq(cf.status[1], 0);
  ck_assert_int_eq(r.n, 1);
  ck_assert_str_eq(r.body[0], "m1");
  W->destroy(w);
}
END_TEST

START_TEST(test_invalid_kapi_refused) {
  struct kz_contract_world *w = world_new(14);
  if (!w) return;
  struct client a;
  client_new(w, &a);
  struct client *cs[] = {&a};
  wait_up(w, cs, 1, -1);
  NM(w, ex, "valid");
  NM(w, q, "validq");
  struct rec r = {0};
  ck_assert_int_eq(kz_bus_declare_exchange(a.bus, ex, KZ_BUS_EX_TOPIC), 0);
  private_queue(&a, q, ex, "#", &r);

  json_t *bad = authn_req("1001");
  json_object_del(bad, "Auth-Realm");
  json_object_set_new(bad, "App-Name", json_string("x"));
  json_object_set_new(bad, "App-Version", json_string("1"));
  json_object_set_new(bad, "Msg-ID", json_string("m-bad"));
  ck_assert_int_eq(kz_bus_publish_msg(a.bus, ex, "k", bad, NULL, NULL),
                   KZ_EINVAL);
  struct answer ans = {.w = w};
  ck_assert_int_eq(
      kz_bus_request(a.bus, ex, "k", bad, SEC, answer_cb, &ans, NULL),
      KZ_EINVAL);
  json_decref(bad);
  json_t *unknown = json_pack("{s:s, s:s}", "Event-Category", "no",
                              "Event-Name", "such");
  ck_assert_int_eq(kz_bus_publish_msg(a.bus, ex, "k", unknown, NULL, NULL),
                   KZ_EINVAL);
  json_decref(unknown);

  json_t *good = authn_req("1001");
  json_object_set_new(good, "App-Name", json_string("x"));
  json_object_set_new(good, "App-Version", json_string("1"));
  json_object_set_new(good, "Msg-ID", json_string("m-good"));
  ck_assert_int_eq(kz_bus_publish_msg(a.bus, ex, "k", good, NULL, NULL), 0);
  json_decref(good);
  struct rec *rs[] = {&r};
  wait_total(w, rs, 1, 1);
  ck_assert_int_eq(r.n, 1);
  ck_assert(strstr(r.body[0], "m-good") != NULL);
  ck_assert_int_eq(ans.calls, 0);
  W->destroy(w);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Failover                                                             */

START_TEST(test_failover_replays_topology) {
  struct kz_contract_world *w = world_new(15);
  if (!w) return;
  if (W->n_brokers(w) < 2) {
    fprintf(stderr, "contract(%s): one broker only, failover skipped\n",
            W->name);
    W->destroy(w);
    return;
  }
  NM(w, ex, "callmgr");
  struct responder r;
  struct client q;
  responder_new(w, &r, "pw-");
  pair_up(w, &r, &q, ex, 0);
  struct answer a;
  request_once(w, &q, ex, "1001", SEC, &a);
  ck_assert_int_eq(a.status, 0);

  ck_assert_int_eq(W->broker_kill(w, 0), 0);
  /* Both move to broker 1 and replay exchanges, queues (the reply queue
   * among them), bindings and consumers there. */
  struct client *cs[] = {&r.cl, &q};
  struct up_wait u = {cs, 2, 1};
  ck_assert_int_eq(W->run_until(w, all_up, &u, 10 * SEC), 0);
  ck_assert_int_eq(r.cl.downs, 1);
  ck_assert_int_eq(q.downs, 1);
  ck_assert_int_eq(q.ups, 2);
  ck_assert(q.reason[0] == '\0'); /* UP carries no reason */
  settle(w);
  request_once(w, &q, ex, "1002", SEC, &a);
  ck_assert_int_eq(a.status, 0);
  ck_assert_str_eq(a.password, "pw-1002");
  ck_assert_int_eq(r.cl.errors, 0);
  ck_assert_int_eq(q.errors, 0);
  ck_assert_int_eq(W->broker_restart(w, 0), 0);
  W->destroy(w);
}
END_TEST

/* ------------------------------------------------------------------ */

Suite *kz_bus_contract_suite(const char *name,
                             const struct kz_contract_world_ops *world) {
  W = world;
  Suite *s = suite_create(name);
  /* Generous wall-clock limits: the real world runs in real time. */
  const int t = 60;
  tcase_add_test(kz_tcase(s, "direct_routing", t), test_direct_routing);
  tcase_add_test(kz_tcase(s, "topic_routing", t), test_topic_routing);
  tcase_add_test(kz_tcase(s, "fanout_routing", t), test_fanout_routing);
  tcase_add_test(kz_tcase(s, "exclusive_deleted_on_disconnect", t),
                 test_exclusive_deleted_on_disconnect);
  tcase_add_test(kz_tcase(s, "auto_delete_after_last_consumer", t),
                 test_auto_delete_after_last_consumer);
  tcase_add_test(kz_tcase(s, "round_robin", t), test_round_robin);
  tcase_add_test(kz_tcase(s, "unacked_redelivered_on_close", t),
                 test_unacked_redelivered_on_close);
  tcase_add_test(kz_tcase(s, "request_response", t), test_request_response);
  tcase_add_test(kz_tcase(s, "reply_wrong_msg_id_ignored", t),
                 test_reply_wrong_msg_id_ignored);
  tcase_add_test(kz_tcase(s, "request_timeout", t), test_request_timeout);
  tcase_add_test(kz_tcase(s, "free_bus_in_reply_callback", t),
                 test_free_bus_in_reply_callback);
  tcase_add_test(kz_tcase(s, "collect_n_from_n", t), test_collect_n_from_n);
  tcase_add_test(kz_tcase(s, "collect_timeout_with_fewer", t),
                 test_collect_timeout_with_fewer);
  tcase_add_test(kz_tcase(s, "publish_confirm", t), test_publish_confirm);
  tcase_add_test(kz_tcase(s, "invalid_kapi_refused", t),
                 test_invalid_kapi_refused);
  tcase_add_test(kz_tcase(s, "failover_replays_topology", t),
                 test_failover_replays_topology);
  return s;
}
