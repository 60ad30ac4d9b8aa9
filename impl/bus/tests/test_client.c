/* test_client.c — Check suite for struct kz_bus (client.c) over a scripted fake backend, on a simulated host's env. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kz/bus_client.h"
#include "kz/error.h"
#include "kz/kapi.h"
#include "kz/mem.h"
#include "kz/sim.h"
#include "kz_test.h"

#define MS UINT64_C(1000000)

/* ------------------------------------------------------------------ */
/* A fake backend: logs every call as one line, refuses with
 * KZ_ENOTCONN while "down", remembers the last publish.                */

struct fake {
  struct kz_bus *bus;
  bool connected;
  struct kz_buf log;
  uint64_t last_publish_id;
  char last_body[1024];
  char last_key[128];
  uint64_t last_ack;
  bool *destroyed;
  /* Scripted publish results: pub_fail[i] is returned by the i-th
   * publish from now (0 lets it through), then publishes succeed. */
  int pub_fail[8];
  int n_pub_fail, pub_calls;
  /* When set, the next publish publishes this message (on exchange
   * "nested") from inside the backend before logging its own. */
  json_t *nested;
  int nested_rc;
};

static int fk_log(struct fake *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fk_log(struct fake *f, const char *fmt, ...) {
  if (!f->connected) return KZ_ENOTCONN;
  va_list ap;
  va_start(ap, fmt);
  kz_buf_vprintf(&f->log, fmt, ap);
  va_end(ap);
  kz_buf_append_byte(&f->log, '\n');
  return 0;
}

static void fk_attach(void *be, struct kz_bus *bus) {
  ((struct fake *)be)->bus = bus;
}
static int fk_decl_ex(void *be, const char *name,
                      enum kz_bus_exchange_type type) {
  return fk_log(be, "ex %s %s", name, kz_bus_exchange_type_name(type));
}
static int fk_decl_q(void *be, const char *name,
                     const struct kz_bus_queue_opts *o) {
  return fk_log(be, "q %s%s%s", name, o->exclusive ? " excl" : "",
                o->auto_delete ? " ad" : "");
}
static int fk_del_q(void *be, const char *name) {
  return fk_log(be, "delq %s", name);
}
static int fk_bind(void *be, const char *q, const char *ex, const char *k) {
  return fk_log(be, "bind %s %s %s", q, ex, k);
}
static int fk_unbind(void *be, const char *q, const char *ex, const char *k) {
  return fk_log(be, "unbind %s %s %s", q, ex, k);
}
static int fk_consume(void *be, uint64_t id, const char *q, bool no_ack) {
  return fk_log(be, "consume %llu %s%s", (unsigned long long)id, q,
                no_ack ? " noack" : "");
}
static int fk_cancel(void *be, uint64_t id) {
  return fk_log(be, "cancel %llu", (unsigned long long)id);
}
static int fk_publish(void *be, uint64_t pid, const char *ex, const char *k,
                      const void *body, size_t len,
                      const struct kz_bus_publish_opts *o) {
  struct fake *f = be;
  if (f->connected && f->pub_calls < f->n_pub_fail && f->pub_fail[f->pub_calls++])
    return f->pub_fail[f->pub_calls - 1];
  if (f->nested) {
    json_t *n = f->nested;
    f->nested = NULL;
    f->nested_rc = kz_bus_publish_msg(f->bus, "nested", "k", n, NULL, NULL);
  }
  int rc = fk_log(f, "pub %s %s %.*s%s", ex, k, (int)(len > 40 ? 40 : len),
                  (const char *)body, o->confirm ? " confirm" : "");
  if (rc) return rc;
  f->last_publish_id = pid;
  snprintf(f->last_body, sizeof f->last_body, "%.*s", (int)len,
           (const char *)body);
  snprintf(f->last_key, sizeof f->last_key, "%s", k);
  return 0;
}
static int fk_ack(void *be, uint64_t tag) {
  struct fake *f = be;
  f->last_ack = tag;
  return fk_log(f, "ack %llu", (unsigned long long)tag);
}
static void fk_destroy(void *be) {
  struct fake *f = be;
  if (f->destroyed) *f->destroyed = true;
  kz_buf_free(&f->log);
  kz_free(f);
}

static const struct kz_bus_backend_ops fake_ops = {
    fk_attach, fk_decl_ex, fk_decl_q, fk_del_q,  fk_bind,   fk_unbind,
    fk_consume, fk_cancel, fk_publish, fk_ack, fk_destroy,
};

/* ------------------------------------------------------------------ */
/* Fixture: a simulator with one host whose process env the bus uses.   */

static int idle_start(struct kz_env *env, const void *cfg, void **inst) {
  (void)cfg;
  *inst = env;
  return 0;
}
static void idle_stop(void *inst) { (void)inst; }
static const struct kz_sim_app idle_app = {"idle", idle_start, idle_stop};

struct states {
  int n;
  enum kz_bus_state state[16];
  int index[16];
  char reason[16][160];
};

static void on_state(void *arg, struct kz_bus *bus, enum kz_bus_state st,
                     int idx, const char *reason) {
  struct states *s = arg;
  (void)bus;
  if (s->n >= 16) return;
  s->state[s->n] = st;
  s->index[s->n] = idx;
  snprintf(s->reason[s->n], sizeof s->reason[0], "%s", reason ? reason : "");
  s->n++;
}

struct fx {
  struct kz_sim *sim;
  struct kz_env *env;
  struct fake *fk;
  struct kz_bus *bus;
  struct states st;
};

static void fx_up(struct fx *x, uint64_t seed) {
  memset(x, 0, sizeof *x);
  ck_assert_int_eq(kz_sim_new(&x->sim, seed), 0);
  struct kz_sim_host *h;
  struct kz_sim_proc *p;
  struct kz_addr ip = kz_addr_v4(0x0a000001, 0);
  ck_assert_int_eq(kz_sim_host_add(x->sim, "h", &ip, &h), 0);
  ck_assert_int_eq(kz_sim_proc_add(h, "p", &idle_app, NULL, &p), 0);
  x->env = kz_sim_proc_env(p);
  x->fk = kz_calloc(1, sizeof *x->fk);
  ck_assert_ptr_nonnull(x->fk);
  struct kz_bus_backend be = {&fake_ops, x->fk};
  struct kz_bus_cfg cfg = {.node = "n@h",
                           .app_name = "app",
                           .app_version = "1.0",
                           .default_timeout_ns = 500 * MS,
                           .on_state = on_state,
                           .state_arg = &x->st};
  ck_assert_int_eq(kz_bus_new(&x->bus, x->env, &be, &cfg), 0);
}

static void fx_down(struct fx *x) {
  kz_bus_free(x->bus);
  kz_sim_free(x->sim);
}

static const char *fk_text(struct fx *x) {
  return x->fk->log.len ? (const char *)x->fk->log.data : "";
}

static void connect_(struct fx *x, int idx) {
  x->fk->connected = true;
  kz_buf_reset(&x->fk->log);
  kz_bus_backend_up(x->bus, idx);
}

/* ------------------------------------------------------------------ */

START_TEST(test_server_id_and_reply_queue) {
  struct fx x;
  fx_up(&x, 1);
  const char *sid = kz_bus_server_id(x.bus);
  ck_assert_uint_eq(strlen(sid), strlen("kzbus-") + 24);
  ck_assert(strncmp(sid, "kzbus-", 6) == 0);
  ck_assert_ptr_eq(kz_bus_env(x.bus), x.env);
  ck_assert_int_eq(kz_bus_state(x.bus), KZ_BUS_DOWN);
  ck_assert_str_eq(fk_text(&x), ""); /* nothing sent while down */
  connect_(&x, 0);
  char want[512];
  snprintf(want, sizeof want,
           "ex targeted direct\nq %s excl ad\nbind %s targeted %s\n"
           "consume 1 %s noack\n",
           sid, sid, sid, sid);
  ck_assert_str_eq(fk_text(&x), want);
  ck_assert_int_eq(kz_bus_state(x.bus), KZ_BUS_UP);
  ck_assert_int_eq(x.st.n, 1);
  ck_assert_int_eq(x.st.index[0], 0);
  char saved[64];
  snprintf(saved, sizeof saved, "%s", sid);
  fx_down(&x);

  /* Same seed, same Server-ID; another seed, another. */
  struct fx y, z;
  fx_up(&y, 1);
  fx_up(&z, 2);
  ck_assert_str_eq(kz_bus_server_id(y.bus), saved);
  ck_assert_str_ne(kz_bus_server_id(y.bus), kz_bus_server_id(z.bus));
  fx_down(&y);
  fx_down(&z);
}
END_TEST

static void nop_deliver(void *arg, struct kz_bus *bus,
                        const struct kz_bus_delivery *d) {
  (void)bus;
  uint64_t *tag = arg;
  *tag = d->tag;
}

START_TEST(test_replay_in_order_after_reconnect) {
  struct fx x;
  fx_up(&x, 3);
  connect_(&x, 0);
  uint64_t tag = 0, c2 = 0, c3 = 0;
  ck_assert_int_eq(kz_bus_declare_exchange(x.bus, "ex1", KZ_BUS_EX_TOPIC), 0);
  ck_assert_int_eq(kz_bus_declare_queue(x.bus, "q1", NULL), 0);
  ck_assert_int_eq(kz_bus_bind(x.bus, "q1", "ex1", "a.#"), 0);
  ck_assert_int_eq(kz_bus_bind(x.bus, "q1", "ex1", "b.*"), 0);
  ck_assert_int_eq(kz_bus_consume(x.bus, "q1", true, nop_deliver, &tag, &c2), 0);
  ck_assert_int_eq(kz_bus_declare_queue(x.bus, "q2", NULL), 0);
  ck_assert_int_eq(kz_bus_consume(x.bus, "q2", false, nop_deliver, &tag, &c3), 0);
  /* Changes: one binding goes, q2 goes with its consumer, a duplicate
   * binding is not remembered twice. */
  ck_assert_int_eq(kz_bus_unbind(x.bus, "q1", "ex1", "b.*"), 0);
  ck_assert_int_eq(kz_bus_delete_queue(x.bus, "q2"), 0);
  ck_assert_int_eq(kz_bus_bind(x.bus, "q1", "ex1", "a.#"), 0);
  ck_assert_int_eq(kz_bus_cancel(x.bus, c3), KZ_EINVAL); /* gone with q2 */

  x.fk->connected = false;
  kz_bus_backend_down(x.bus, "test: lost");
  ck_assert_int_eq(kz_bus_state(x.bus), KZ_BUS_DOWN);
  ck_assert_int_eq(x.st.n, 2);
  ck_assert_int_eq(x.st.state[1], KZ_BUS_DOWN);
  ck_assert_str_eq(x.st.reason[1], "test: lost");
  /* Declared while down: remembered, sent at the next UP. */
  ck_assert_int_eq(kz_bus_declare_exchange(x.bus, "ex2", KZ_BUS_EX_FANOUT), 0);

  connect_(&x, 1);
  const char *sid = kz_bus_server_id(x.bus);
  char want[1024];
  snprintf(want, sizeof want,
           "ex targeted direct\nq %s excl ad\nbind %s targeted %s\n"
           "consume 1 %s noack\n"
           "ex ex1 topic\nq q1\nbind q1 ex1 a.#\nconsume %llu q1\n"
           "ex ex2 fanout\n",
           sid, sid, sid, sid, (unsigned long long)c2);
  ck_assert_str_eq(fk_text(&x), want);
  ck_assert_int_eq(x.st.state[2], KZ_BUS_UP);
  ck_assert_int_eq(x.st.index[2], 1);
  fx_down(&x);
}
END_TEST

START_TEST(test_ack_tags_carry_generation) {
  struct fx x;
  fx_up(&x, 4);
  connect_(&x, 0);
  uint64_t tag = 0, cid = 0;
  ck_assert_int_eq(kz_bus_consume(x.bus, "q", true, nop_deliver, &tag, &cid),
                   0);
  struct kz_bus_delivery d = {.queue = "q", .exchange = "", .routing_key = "q",
                              .body = (const uint8_t *)"x", .len = 1, .tag = 7};
  kz_bus_backend_deliver(x.bus, cid, &d);
  ck_assert_uint_ne(tag, 0);
  ck_assert_int_eq(kz_bus_ack(x.bus, tag), 0);
  ck_assert_uint_eq(x.fk->last_ack, 7); /* the backend sees its own tag */
  uint64_t old = tag;
  kz_bus_backend_deliver(x.bus, 999, &d); /* unknown consumer: dropped */
  x.fk->connected = false;
  kz_bus_backend_down(x.bus, NULL);
  connect_(&x, 0);
  /* A tag of the previous connection is refused, not sent. */
  x.fk->last_ack = 0;
  ck_assert_int_eq(kz_bus_ack(x.bus, old), KZ_ENOTCONN);
  ck_assert_uint_eq(x.fk->last_ack, 0);
  ck_assert_int_eq(kz_bus_ack(x.bus, 0), KZ_EINVAL);
  fx_down(&x);
}
END_TEST

struct conf_log {
  int n;
  int status[8];
};

static void conf_cb(void *arg, struct kz_bus *bus, int status) {
  struct conf_log *c = arg;
  (void)bus;
  c->status[c->n++] = status;
}

START_TEST(test_confirms_and_buffering) {
  struct fx x;
  fx_up(&x, 5);
  struct conf_log cl = {0};
  /* Down: a confirmed publish is refused, a plain one waits. */
  ck_assert_int_eq(kz_bus_publish(x.bus, "ex", "k", "a", 1, conf_cb, &cl),
                   KZ_ENOTCONN);
  ck_assert_int_eq(kz_bus_publish(x.bus, "ex", "k", "b", 1, NULL, NULL), 0);
  connect_(&x, 0);
  ck_assert(strstr(fk_text(&x), "pub ex k b\n") != NULL);

  ck_assert_int_eq(kz_bus_publish(x.bus, "ex", "k", "c", 1, conf_cb, &cl), 0);
  uint64_t p1 = x.fk->last_publish_id;
  ck_assert_int_eq(kz_bus_publish(x.bus, "ex", "k", "d", 1, conf_cb, &cl), 0);
  uint64_t p2 = x.fk->last_publish_id;
  ck_assert_int_eq(kz_bus_publish(x.bus, "ex", "k", "e", 1, conf_cb, &cl), 0);
  ck_assert_uint_ne(p1, p2);
  /* Out of order confirms are matched by id; a nack is KZ_EIO. */
  kz_bus_backend_confirm(x.bus, p2, KZ_EIO);
  kz_bus_backend_confirm(x.bus, p1, 0);
  kz_bus_backend_confirm(x.bus, p1, 0); /* duplicate: ignored */
  ck_assert_int_eq(cl.n, 2);
  ck_assert_int_eq(cl.status[0], KZ_EIO);
  ck_assert_int_eq(cl.status[1], 0);
  /* Lost connection: the unconfirmed one fails with KZ_ECONNRESET. */
  x.fk->connected = false;
  kz_bus_backend_down(x.bus, "gone");
  ck_assert_int_eq(cl.n, 3);
  ck_assert_int_eq(cl.status[2], KZ_ECONNRESET);
  fx_down(&x);
}
END_TEST

static void fk_script(struct fake *f, int n, const int *rcs) {
  memcpy(f->pub_fail, rcs, (size_t)n * sizeof *rcs);
  f->n_pub_fail = n;
  f->pub_calls = 0;
}

/* Publishes kept while down leave the list only when the backend took
 * them: out of memory keeps the rest (in order) for later, a refusal
 * (KZ_EINVAL) drops just that one. */
START_TEST(test_pending_replay_failures) {
  struct fx x;
  fx_up(&x, 8);
  const char *m[] = {"a", "b", "c", "d"};
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(kz_bus_publish(x.bus, "ex", "k", m[i], 1, NULL, NULL), 0);
  /* UP: "a" goes, "b" meets KZ_ENOMEM: b, c, d stay. */
  fk_script(x.fk, 2, (const int[]){0, KZ_ENOMEM});
  connect_(&x, 0);
  ck_assert(strstr(fk_text(&x), "pub ex k a\n") != NULL);
  ck_assert(strstr(fk_text(&x), "pub ex k b") == NULL);
  ck_assert(strstr(fk_text(&x), "pub ex k c") == NULL);
  ck_assert_int_eq(kz_bus_state(x.bus), KZ_BUS_UP);
  /* The next publish while up sends the kept ones first; "b" is now
   * refused for good and dropped, c and d follow, then e. */
  kz_buf_reset(&x.fk->log);
  fk_script(x.fk, 1, (const int[]){KZ_EINVAL});
  ck_assert_int_eq(kz_bus_publish(x.bus, "ex", "k", "e", 1, NULL, NULL), 0);
  ck_assert_str_eq(fk_text(&x), "pub ex k c\npub ex k d\npub ex k e\n");
  /* Down again: f, g wait; the first UP runs out of memory at once and
   * sends nothing, the next one sends both, in order. */
  x.fk->connected = false;
  kz_bus_backend_down(x.bus, "lost");
  ck_assert_int_eq(kz_bus_publish(x.bus, "ex", "k", "f", 1, NULL, NULL), 0);
  ck_assert_int_eq(kz_bus_publish(x.bus, "ex", "k", "g", 1, NULL, NULL), 0);
  fk_script(x.fk, 1, (const int[]){KZ_ENOMEM});
  connect_(&x, 0);
  ck_assert(strstr(fk_text(&x), "pub ex") == NULL);
  /* A publish while some are kept and the backend still refuses queues
   * behind them instead of overtaking. */
  fk_script(x.fk, 1, (const int[]){KZ_ENOMEM});
  ck_assert_int_eq(kz_bus_publish(x.bus, "ex", "k", "h", 1, NULL, NULL), 0);
  ck_assert(strstr(fk_text(&x), "pub ex") == NULL);
  x.fk->connected = false;
  kz_bus_backend_down(x.bus, "lost");
  connect_(&x, 0);
  ck_assert(strstr(fk_text(&x), "pub ex k f\npub ex k g\npub ex k h\n") != NULL);
  fx_down(&x);
}
END_TEST

START_TEST(test_backend_error_reported) {
  struct fx x;
  fx_up(&x, 6);
  connect_(&x, 0);
  kz_bus_backend_error(x.bus, "NOT_FOUND - no exchange 'x'");
  ck_assert_int_eq(x.st.n, 2);
  ck_assert_int_eq(x.st.state[1], KZ_BUS_UP);
  ck_assert_str_eq(x.st.reason[1], "NOT_FOUND - no exchange 'x'");
  ck_assert_int_eq(kz_bus_state(x.bus), KZ_BUS_UP);
  fx_down(&x);
}
END_TEST

/* Requests: callbacks record what they saw. */
struct got {
  int calls;
  int status;
  size_t n;
  char pw[64];
};

static void reply_cb(void *arg, struct kz_bus *bus, int status,
                     const json_t *reply) {
  struct got *g = arg;
  (void)bus;
  g->calls++;
  g->status = status;
  if (reply)
    snprintf(g->pw, sizeof g->pw, "%s",
             json_string_value(json_object_get(reply, "Auth-Password")));
}

static void collect_cb(void *arg, struct kz_bus *bus, int status,
                       const json_t *const *r, size_t n) {
  struct got *g = arg;
  (void)bus;
  (void)r;
  g->calls++;
  g->status = status;
  g->n = n;
}

static json_t *authn_req(void) {
  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "Event-Category",
                   "directory", "Event-Name", "authn_req", "Auth-User", "u",
                   "Auth-Realm", "r.com", "From", "sip:u@r.com", "To",
                   "sip:u@r.com");
}

/* Hands the bus a reply as if the broker delivered it to the reply queue. */
static void deliver_reply(struct fx *x, const char *msg_id, const char *pw) {
  char body[512];
  snprintf(body, sizeof body,
           "{\"Event-Category\":\"directory\",\"Event-Name\":\"authn_resp\","
           "\"App-Name\":\"a\",\"App-Version\":\"1\",\"Msg-ID\":\"%s\","
           "\"Auth-Method\":\"password\",\"Auth-Password\":\"%s\"}",
           msg_id, pw);
  struct kz_bus_delivery d = {.queue = kz_bus_server_id(x->bus),
                              .exchange = "targeted",
                              .routing_key = kz_bus_server_id(x->bus),
                              .body = (const uint8_t *)body,
                              .len = strlen(body),
                              .tag = 1};
  kz_bus_backend_deliver(x->bus, 1, &d); /* the reply consumer is id 1 */
}

START_TEST(test_request_fills_envelope_and_times_out) {
  struct fx x;
  fx_up(&x, 7);
  connect_(&x, 0);
  struct got g = {0};
  json_t *req = authn_req();
  ck_assert_int_eq(
      kz_bus_request(x.bus, "callmgr", "authn.req.r%2Ecom", req, 0, reply_cb,
                     &g, NULL),
      0);
  ck_assert_str_eq(json_string_value(json_object_get(req, "Server-ID")),
                   kz_bus_server_id(x.bus));
  ck_assert_str_eq(json_string_value(json_object_get(req, "App-Name")), "app");
  ck_assert_str_eq(json_string_value(json_object_get(req, "Node")), "n@h");
  ck_assert_uint_eq(strlen(json_string_value(json_object_get(req, "Msg-ID"))),
                    32);
  ck_assert_str_eq(x.fk->last_key, "authn.req.r%2Ecom");
  ck_assert(strstr(x.fk->last_body, "\"Server-ID\"") != NULL);
  /* A reply for another Msg-ID and garbage are ignored. */
  deliver_reply(&x, "nope", "x");
  struct kz_bus_delivery junk = {.queue = "", .exchange = "", .routing_key = "",
                                 .body = (const uint8_t *)"{", .len = 1};
  kz_bus_backend_deliver(x.bus, 1, &junk);
  ck_assert_int_eq(g.calls, 0);
  /* The cfg default (500 ms) applies. */
  ck_assert_int_eq(kz_sim_run_for(x.sim, 499 * MS), 0);
  ck_assert_int_eq(g.calls, 0);
  ck_assert_int_eq(kz_sim_run_for(x.sim, 2 * MS), 0);
  ck_assert_int_eq(g.calls, 1);
  ck_assert_int_eq(g.status, KZ_ETIMEDOUT);
  /* A late reply finds nobody. */
  deliver_reply(&x, json_string_value(json_object_get(req, "Msg-ID")), "late");
  ck_assert_int_eq(g.calls, 1);
  json_decref(req);
  fx_down(&x);
}
END_TEST

START_TEST(test_request_reply_cancel_and_free) {
  struct fx x;
  fx_up(&x, 8);
  connect_(&x, 0);
  struct got g1 = {0}, g2 = {0}, g3 = {0};
  json_t *r1 = authn_req(), *r2 = authn_req(), *r3 = authn_req();
  uint64_t id2 = 0;
  ck_assert_int_eq(kz_bus_request(x.bus, "e", "k", r1, 0, reply_cb, &g1, NULL),
                   0);
  ck_assert_int_eq(kz_bus_request(x.bus, "e", "k", r2, 0, reply_cb, &g2, &id2),
                   0);
  ck_assert_int_eq(kz_bus_request(x.bus, "e", "k", r3, 0, reply_cb, &g3, NULL),
                   0);
  /* The same Msg-ID twice is refused while the first waits. */
  ck_assert_int_eq(kz_bus_request(x.bus, "e", "k", r1, 0, reply_cb, &g1, NULL),
                   KZ_EEXIST);
  deliver_reply(&x, json_string_value(json_object_get(r1, "Msg-ID")), "one");
  ck_assert_int_eq(g1.calls, 1);
  ck_assert_int_eq(g1.status, 0);
  ck_assert_str_eq(g1.pw, "one");
  kz_bus_request_cancel(x.bus, id2);
  deliver_reply(&x, json_string_value(json_object_get(r2, "Msg-ID")), "two");
  ck_assert_int_eq(g2.calls, 0);
  json_decref(r1);
  json_decref(r2);
  json_decref(r3);
  kz_bus_free(x.bus); /* the pending one ends with KZ_ECANCELED */
  x.bus = NULL;
  ck_assert_int_eq(g3.calls, 1);
  ck_assert_int_eq(g3.status, KZ_ECANCELED);
  fx_down(&x);
}
END_TEST

START_TEST(test_collect) {
  struct fx x;
  fx_up(&x, 9);
  connect_(&x, 0);
  struct got g = {0}, g0 = {0};
  json_t *req = authn_req(), *req0 = authn_req();
  ck_assert_int_eq(kz_bus_collect(x.bus, "e", "k", req, 2, 300 * MS,
                                  collect_cb, &g, NULL),
                   0);
  ck_assert_int_eq(kz_bus_collect(x.bus, "e", "k", req0, 0, 300 * MS,
                                  collect_cb, &g0, NULL),
                   0);
  const char *m = json_string_value(json_object_get(req, "Msg-ID"));
  const char *m0 = json_string_value(json_object_get(req0, "Msg-ID"));
  deliver_reply(&x, m, "a");
  deliver_reply(&x, m0, "a");
  ck_assert_int_eq(g.calls, 0);
  deliver_reply(&x, m, "b");
  ck_assert_int_eq(g.calls, 1); /* want reached */
  ck_assert_int_eq(g.status, 0);
  ck_assert_uint_eq(g.n, 2);
  deliver_reply(&x, m0, "b");
  deliver_reply(&x, m0, "c");
  ck_assert_int_eq(kz_sim_run_for(x.sim, 301 * MS), 0);
  /* want 0: everything until the timeout, which is the normal end. */
  ck_assert_int_eq(g0.calls, 1);
  ck_assert_int_eq(g0.status, 0);
  ck_assert_uint_eq(g0.n, 3);
  json_decref(req);
  json_decref(req0);
  fx_down(&x);
}
END_TEST

START_TEST(test_validation_and_reply) {
  struct fx x;
  fx_up(&x, 10);
  connect_(&x, 0);
  json_t *bad = authn_req();
  json_object_del(bad, "Auth-User");
  struct got g = {0};
  kz_buf_reset(&x.fk->log);
  ck_assert_int_eq(kz_bus_request(x.bus, "e", "k", bad, 0, reply_cb, &g, NULL),
                   KZ_EINVAL);
  ck_assert_int_eq(kz_bus_publish_msg(x.bus, "e", "k", bad, NULL, NULL),
                   KZ_EINVAL);
  ck_assert_str_eq(fk_text(&x), ""); /* nothing sent */
  json_decref(bad);

  /* What kz_kapi_build returned goes out through kz_bus_publish_built
   * byte for byte as through kz_bus_publish_msg (which validates it a
   * second time); a non-object is still refused. */
  const struct kz_kapi_origin px = {"kz_proxy", "0.1.0", "proxy@h", NULL};
  struct kz_prng prng;
  kz_prng_seed(&prng, 3);
  json_t *sync_body = json_object();
  json_t *built = NULL;
  struct kz_kapi_error kerr;
  ck_assert_int_eq(kz_kapi_build(KZ_KAPI_REG_SYNC, &px, &prng, sync_body, &built, &kerr), 0);
  ck_assert_int_eq(kz_bus_publish_msg(x.bus, "registrar", "k", built, NULL, NULL), 0);
  char *via_msg = kz_strdup(x.fk->last_body);
  ck_assert_int_eq(kz_bus_publish_built(x.bus, "registrar", "k", built, NULL, NULL), 0);
  ck_assert_str_eq(x.fk->last_body, via_msg);
  ck_assert(strstr(via_msg, "\"Event-Name\":\"reg_sync\"") != NULL);
  ck_assert_int_eq(kz_bus_publish_built(x.bus, "registrar", "k", json_object_get(built, "Msg-ID"), NULL, NULL),
                   KZ_EINVAL);
  kz_free(via_msg);
  json_decref(built);
  json_decref(sync_body);

  /* kz_bus_reply: to "targeted", key = the request's reply queue (the
   * part after the last '/' of a pid:// Server-ID), Msg-ID copied. */
  json_t *req = authn_req();
  json_object_set_new(req, "Msg-ID", json_string("abc"));
  json_object_set_new(req, "Server-ID", json_string("pid://<0.1.0>/rq-1"));
  json_t *reply = json_pack("{s:s, s:s, s:s, s:s}", "Event-Category",
                            "directory", "Event-Name", "authn_resp",
                            "Auth-Method", "password", "Auth-Password", "p");
  ck_assert_int_eq(kz_bus_reply(x.bus, req, reply), 0);
  ck_assert_str_eq(x.fk->last_key, "rq-1");
  ck_assert(strstr(fk_text(&x), "pub targeted rq-1 ") != NULL);
  ck_assert_str_eq(json_string_value(json_object_get(reply, "Msg-ID")), "abc");
  /* An invalid reply or a request without Server-ID is refused. */
  json_object_set_new(reply, "Auth-Method", json_string("bogus"));
  ck_assert_int_eq(kz_bus_reply(x.bus, req, reply), KZ_EINVAL);
  json_object_del(req, "Server-ID");
  json_object_set_new(reply, "Auth-Method", json_string("password"));
  ck_assert_int_eq(kz_bus_reply(x.bus, req, reply), KZ_EINVAL);
  json_decref(req);
  json_decref(reply);
  fx_down(&x);
}
END_TEST

/* The bytes on the wire: the envelope the bus fills, in a fixed order,
 * compact, as jansson would write them; the write buffer the bus keeps
 * between publishes never leaks one message into the next (also after a
 * big one, and when the backend publishes again from inside a publish). */
START_TEST(test_wire_bytes_and_buffer_reuse) {
  struct fx x;
  fx_up(&x, 11);
  connect_(&x, 0);
  json_t *req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
                          "Event-Category", "directory", "Event-Name",
                          "authn_req", "Msg-ID", "m-1", "Auth-User", "u\"1",
                          "Auth-Realm", "r.com", "From", "sip:u@r.com", "To",
                          "sip:u@r.com");
  struct got g = {0};
  ck_assert_int_eq(kz_bus_request(x.bus, "callmgr", "k", req, 0, reply_cb, &g,
                                  NULL), 0);
  char want[1024];
  snprintf(want, sizeof want,
           "{\"Event-Category\":\"directory\",\"Event-Name\":\"authn_req\","
           "\"Msg-ID\":\"m-1\",\"Auth-User\":\"u\\\"1\",\"Auth-Realm\":\"r.com\","
           "\"From\":\"sip:u@r.com\",\"To\":\"sip:u@r.com\","
           "\"Server-ID\":\"%s\",\"App-Name\":\"app\","
           "\"App-Version\":\"1.0\",\"Node\":\"n@h\"}",
           kz_bus_server_id(x.bus));
  ck_assert_str_eq(x.fk->last_body, want);
  char *jd = json_dumps(req, JSON_COMPACT);
  ck_assert_str_eq(x.fk->last_body, jd);
  free(jd);

  /* A big message, then a small one: exactly the small one goes out. */
  json_t *big = json_deep_copy(req);
  char *pad = kz_malloc(100 * 1024 + 1);
  memset(pad, 'p', 100 * 1024);
  json_object_set_new(big, "X-Pad", json_string(pad));
  kz_free(pad);
  json_object_set_new(big, "Msg-ID", json_string("m-2"));
  ck_assert_int_eq(kz_bus_publish_msg(x.bus, "callmgr", "k", big, NULL, NULL), 0);
  json_t *small = json_pack("{s:s, s:s, s:s, s:s, s:s}", "Event-Category",
                            "directory", "Event-Name", "reg_sync", "App-Name",
                            "a", "App-Version", "1", "Msg-ID", "s");
  ck_assert_int_eq(kz_bus_publish_msg(x.bus, "registrar", "k", small, NULL, NULL),
                   0);
  ck_assert_str_eq(x.fk->last_body,
                   "{\"Event-Category\":\"directory\",\"Event-Name\":\"reg_sync\","
                   "\"App-Name\":\"a\",\"App-Version\":\"1\",\"Msg-ID\":\"s\"}");

  /* A publish from inside the backend's publish: both bodies intact. */
  kz_buf_reset(&x.fk->log);
  x.fk->nested = small;
  ck_assert_int_eq(kz_bus_publish_msg(x.bus, "registrar", "k", req, NULL, NULL),
                   0);
  ck_assert_int_eq(x.fk->nested_rc, 0);
  ck_assert_str_eq(x.fk->last_body, want); /* the outer one, logged last */
  ck_assert_str_eq(fk_text(&x),
                   "pub nested k {\"Event-Category\":\"directory\",\"Event-Nam\n"
                   "pub registrar k {\"Event-Category\":\"directory\",\"Event-Nam\n");
  json_decref(small);
  json_decref(big);
  json_decref(req);
  fx_down(&x);
}
END_TEST

START_TEST(test_new_failures_destroy_backend) {
  struct kz_sim *sim;
  ck_assert_int_eq(kz_sim_new(&sim, 1), 0);
  struct kz_sim_host *h;
  struct kz_sim_proc *p;
  struct kz_addr ip = kz_addr_v4(0x0a000001, 0);
  ck_assert_int_eq(kz_sim_host_add(sim, "h", &ip, &h), 0);
  ck_assert_int_eq(kz_sim_proc_add(h, "p", &idle_app, NULL, &p), 0);
  struct kz_env *env = kz_sim_proc_env(p);
  struct kz_bus_cfg cfg = {.app_name = "a", .app_version = "1"};
  struct kz_bus_cfg nocfg = {0};
  struct kz_bus *bus = NULL;
  bool destroyed = false;
  struct fake *f = kz_calloc(1, sizeof *f);
  f->destroyed = &destroyed;
  struct kz_bus_backend be = {&fake_ops, f};
  ck_assert_int_eq(kz_bus_new(&bus, env, &be, &nocfg), KZ_EINVAL);
  ck_assert(destroyed);
  /* Allocation failures at every step: no leak, backend destroyed. */
  for (int64_t k = 0;; k++) {
    destroyed = false;
    f = kz_calloc(1, sizeof *f);
    ck_assert_ptr_nonnull(f);
    f->destroyed = &destroyed;
    be.be = f;
    kz_mem_fail_after(k);
    int rc = kz_bus_new(&bus, env, &be, &cfg);
    kz_mem_fail_after(-1);
    if (rc == 0) {
      kz_bus_free(bus);
      ck_assert(destroyed);
      break;
    }
    ck_assert_int_eq(rc, KZ_ENOMEM);
    ck_assert(destroyed);
    ck_assert_int_lt(k, 1000);
  }
  kz_sim_free(sim);
}
END_TEST

int main(void) {
  Suite *s = suite_create("bus_client");
  tcase_add_test(kz_tcase(s, "server_id_and_reply_queue", 10),
                 test_server_id_and_reply_queue);
  tcase_add_test(kz_tcase(s, "replay_in_order_after_reconnect", 10),
                 test_replay_in_order_after_reconnect);
  tcase_add_test(kz_tcase(s, "ack_tags_carry_generation", 10),
                 test_ack_tags_carry_generation);
  tcase_add_test(kz_tcase(s, "confirms_and_buffering", 10),
                 test_confirms_and_buffering);
  tcase_add_test(kz_tcase(s, "backend_error_reported", 10),
                 test_backend_error_reported);
  tcase_add_test(kz_tcase(s, "request_fills_envelope_and_times_out", 10),
                 test_request_fills_envelope_and_times_out);
  tcase_add_test(kz_tcase(s, "request_reply_cancel_and_free", 10),
                 test_request_reply_cancel_and_free);
  tcase_add_test(kz_tcase(s, "collect", 10), test_collect);
  tcase_add_test(kz_tcase(s, "pending_replay_failures", 10),
                 test_pending_replay_failures);
  tcase_add_test(kz_tcase(s, "validation_and_reply", 10),
                 test_validation_and_reply);
  tcase_add_test(kz_tcase(s, "wire_bytes_and_buffer_reuse", 10),
                 test_wire_bytes_and_buffer_reuse);
  tcase_add_test(kz_tcase(s, "new_failures_destroy_backend", 30),
                 test_new_failures_destroy_backend);
  return kz_run_suite(s);
}
