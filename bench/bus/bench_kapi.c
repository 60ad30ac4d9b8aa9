/* bench_kapi.c — the bus client's per-message JSON cost without a broker: a proxy's reg_success publish and an authn request/response round trip through null backends. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "kz/bus.h"
#include "kz/bus_client.h"
#include "kz/error.h"
#include "kz/kapi.h"
#include "kz/mem.h"
#include "kz/sim.h"

/* What is measured (one process, no broker, no sockets):
 *
 *  reg    what the proxy does per successful REGISTER (impl/roles/proxy
 *         registrar.c publish_reg): build the registration body,
 *         kz_kapi_build(reg_success), kz_bus_rk_reg_success,
 *         kz_bus_publish_built on "registrar".
 *  rtt    the JSON work of one bench/bus round trip: json_pack the
 *         authn_req (600 B), kz_bus_request; the responder json_loadb's
 *         the bytes, json_pack's an authn_resp, kz_bus_reply; the reply's
 *         bytes are delivered to the requester's reply consumer, which
 *         parses them and calls back.
 *
 * The backends only remember the last published body, so what is left is
 * the bus client's and jansson's work.  Use `perf stat -e instructions`
 * on this program to compare changes on a loaded machine. */

struct nullbe {
  struct kz_bus *bus;
  uint64_t reply_consumer; /* the consumer on the Server-ID queue */
  const char *server_id;
  char *last;
  size_t last_len, last_cap;
  char last_key[256];
  uint64_t published;
};

static void be_attach(void *be, struct kz_bus *bus) { ((struct nullbe *)be)->bus = bus; }
static int be_exchange(void *be, const char *n, enum kz_bus_exchange_type t) {
  (void)be, (void)n, (void)t;
  return 0;
}
static int be_queue(void *be, const char *n, const struct kz_bus_queue_opts *o) {
  (void)be, (void)n, (void)o;
  return 0;
}
static int be_delq(void *be, const char *n) {
  (void)be, (void)n;
  return 0;
}
static int be_bind(void *be, const char *q, const char *e, const char *k) {
  (void)be, (void)q, (void)e, (void)k;
  return 0;
}
static int be_consume(void *be, uint64_t id, const char *q, bool no_ack) {
  struct nullbe *n = be;
  (void)no_ack;
  if (n->server_id && strcmp(q, n->server_id) == 0) n->reply_consumer = id;
  return 0;
}
static int be_cancel(void *be, uint64_t id) {
  (void)be, (void)id;
  return 0;
}
static int be_publish(void *be, uint64_t id, const char *ex, const char *key, const void *body,
                      size_t len, const struct kz_bus_publish_opts *o) {
  struct nullbe *n = be;
  (void)id, (void)ex, (void)o;
  if (len + 1 > n->last_cap) {
    n->last_cap = len + 1;
    n->last = realloc(n->last, n->last_cap);
    if (!n->last) abort();
  }
  memcpy(n->last, body, len);
  n->last[len] = 0;
  n->last_len = len;
  snprintf(n->last_key, sizeof n->last_key, "%s", key);
  n->published++;
  return 0;
}
static int be_ack(void *be, uint64_t tag) {
  (void)be, (void)tag;
  return 0;
}
static void be_destroy(void *be) { (void)be; }

static const struct kz_bus_backend_ops null_ops = {
    .attach = be_attach, .declare_exchange = be_exchange, .declare_queue = be_queue,
    .delete_queue = be_delq, .bind = be_bind, .unbind = be_bind, .consume = be_consume,
    .cancel = be_cancel, .publish = be_publish, .ack = be_ack, .destroy = be_destroy};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A simulated process that does nothing: its env is what the buses use. */
static int idle_start(struct kz_env *env, const void *cfg, void **inst) {
  (void)cfg;
  *inst = env;
  return 0;
}
static void idle_stop(void *inst) { (void)inst; }
static const struct kz_sim_app idle_app = {"idle", idle_start, idle_stop};

static void die(const char *what) {
  fprintf(stderr, "kz_bench_kapi: %s\n", what);
  exit(1);
}

static struct kz_bus *open_bus(struct kz_env *env, struct nullbe *nb, const char *node) {
  struct kz_bus_backend be = {&null_ops, nb};
  struct kz_bus_cfg cfg = {.node = node, .app_name = "bench_kapi", .app_version = "0.1.0"};
  struct kz_bus *bus;
  if (kz_bus_new(&bus, env, &be, &cfg)) die("kz_bus_new");
  nb->server_id = kz_bus_server_id(bus);
  /* The reply consumer was declared before server_id was known here:
   * bring the bus up so it replays (and be_consume records) it. */
  kz_bus_backend_up(bus, 0);
  return bus;
}

/* ------------------------------------------------------------------ */
/* reg_success, as impl/roles/proxy/registrar.c builds it               */

static json_t *reg_body(uint64_t i) {
  json_t *o = json_object();
  char contact[256], cid[64];
  snprintf(contact, sizeof contact, "<sip:1001@192.0.2.10:5060;transport=udp;rinstance=%" PRIu64 ">", i);
  snprintf(cid, sizeof cid, "reg-%" PRIu64 "@192.0.2.10", i);
  json_object_set_new(o, "Event-Timestamp", json_integer(63900000000 + (json_int_t)i));
  json_object_set_new(o, "Contact", json_string(contact));
  json_object_set_new(o, "Expires", json_integer(3600));
  json_object_set_new(o, "Username", json_string("1001"));
  json_object_set_new(o, "Realm", json_string("example.com"));
  json_object_set_new(o, "Status", json_string("Registered"));
  json_object_set_new(o, "User-Agent", json_string("Yealink SIP-T46S 66.86.0.15"));
  json_object_set_new(o, "Call-ID", json_string(cid));
  json_object_set_new(o, "From-User", json_string("1001"));
  json_object_set_new(o, "From-Host", json_string("example.com"));
  json_object_set_new(o, "To-User", json_string("1001"));
  json_object_set_new(o, "To-Host", json_string("example.com"));
  json_object_set_new(o, "Network-IP", json_string("192.0.2.10"));
  json_object_set_new(o, "Network-Port", json_integer(5060));
  json_object_set_new(o, "Source-IP", json_string("192.0.2.10"));
  json_object_set_new(o, "Source-Port", json_integer(5060));
  json_object_set_new(o, "Proxy-Path", json_string("sip:127.0.1.1:5060;lr"));
  json_object_set_new(o, "Proxy-Protocol", json_string("udp"));
  json_object_set_new(o, "Proxy-IP", json_string("127.0.1.1"));
  json_object_set_new(o, "Proxy-Port", json_integer(5060));
  json_object_set_new(o, "Original-Contact", json_string(contact));
  json_object_set_new(o, "Registrar-Node", json_string("kz_proxy@127.0.1.1"));
  json_object_set_new(o, "AOR", json_string("sip:1001@example.com"));
  json_object_set_new(o, "First-Registration", json_boolean(i & 1));
  return o;
}

static void run_reg(struct kz_env *env, uint64_t n) {
  struct nullbe nb = {0};
  struct kz_bus *bus = open_bus(env, &nb, "kz_proxy@127.0.1.1");
  struct kz_prng prng;
  kz_env_prng(env, "bench", &prng);
  struct kz_kapi_origin o = {.app_name = "kz_proxy", .app_version = "0.1.0",
                             .node = "kz_proxy@127.0.1.1"};
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < n; i++) {
    json_t *body = reg_body(i);
    json_t *msg = NULL;
    struct kz_kapi_error err;
    char *rk = NULL;
    if (kz_kapi_build(KZ_KAPI_REG_SUCCESS, &o, &prng, body, &msg, &err) ||
        kz_bus_rk_reg_success(&rk, "example.com", "1001") ||
        kz_bus_publish_built(bus, "registrar", rk, msg, NULL, NULL))
      die("reg_success refused");
    kz_free(rk);
    json_decref(msg);
    json_decref(body);
  }
  uint64_t dt = now_ns() - t0;
  printf("reg_success build+publish: %" PRIu64 " x, %.2f us each (%zu B on the wire)\n", n,
         (double)dt / 1000.0 / (double)n, nb.last_len);
  kz_bus_free(bus);
  free(nb.last);
}

/* ------------------------------------------------------------------ */
/* request/response round trip, as bench/bus's kz side does it         */

struct rtt {
  struct kz_bus *req_bus, *resp_bus;
  struct nullbe *req_be, *resp_be;
  char *req_pad, *resp_pad;
  int replies;
};

static void on_reply(void *arg, struct kz_bus *bus, int status, const json_t *reply) {
  struct rtt *r = arg;
  (void)bus, (void)reply;
  if (status) die("request failed");
  r->replies++;
}

static void run_rtt(struct kz_env *env, uint64_t n) {
  struct nullbe a = {0}, b = {0};
  struct rtt r = {.req_be = &a, .resp_be = &b};
  r.req_bus = open_bus(env, &a, "kz_bench@localhost");
  r.resp_bus = open_bus(env, &b, "kz_bench@localhost");
  r.req_pad = malloc(271);
  r.resp_pad = malloc(301);
  if (!r.req_pad || !r.resp_pad) die("out of memory");
  memset(r.req_pad, 'x', 270), r.req_pad[270] = 0;
  memset(r.resp_pad, 'x', 300), r.resp_pad[300] = 0;
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < n; i++) {
    json_t *req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "Event-Category",
                            "directory", "Event-Name", "authn_req", "Method", "REGISTER",
                            "Auth-User", "1001", "Auth-Realm", "example.com", "From",
                            "sip:1001@example.com", "To", "sip:1001@example.com",
                            "X-Bench-Pad", r.req_pad);
    if (kz_bus_request(r.req_bus, "callmgr", "authn.req.example%2Ecom", req, 0, on_reply, &r,
                       NULL))
      die("kz_bus_request failed");
    json_decref(req);
    /* The responder, as bench_bus.c's on_request. */
    json_error_t jerr;
    json_t *got = json_loadb(a.last, a.last_len, 0, &jerr);
    if (!got) die("responder: bad JSON");
    json_t *resp = json_pack("{s:s, s:s, s:s, s:s, s:s}", "Event-Category", "directory",
                             "Event-Name", "authn_resp", "Auth-Method", "password",
                             "Auth-Password", "secret", "X-Bench-Pad", r.resp_pad);
    if (kz_bus_reply(r.resp_bus, got, resp)) die("kz_bus_reply failed");
    json_decref(resp);
    json_decref(got);
    struct kz_bus_delivery d = {.queue = a.server_id, .exchange = "targeted",
                                .routing_key = b.last_key, .body = (const uint8_t *)b.last,
                                .len = b.last_len, .tag = i + 1};
    kz_bus_backend_deliver(r.req_bus, a.reply_consumer, &d);
  }
  uint64_t dt = now_ns() - t0;
  if ((uint64_t)r.replies != n) die("replies lost");
  printf("authn round trip (JSON only): %" PRIu64 " x, %.2f us each (request %zu B, reply %zu B)\n",
         n, (double)dt / 1000.0 / (double)n, a.last_len, b.last_len);
  kz_bus_free(r.req_bus);
  kz_bus_free(r.resp_bus);
  free(a.last);
  free(b.last);
  free(r.req_pad);
  free(r.resp_pad);
}

int main(int argc, char **argv) {
  uint64_t n = 100000;
  const char *which = "all";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-n") && i + 1 < argc) n = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "reg") || !strcmp(argv[i], "rtt") || !strcmp(argv[i], "all"))
      which = argv[i];
    else {
      fprintf(stderr, "usage: kz_bench_kapi [-n N] [reg|rtt|all]\n");
      return 2;
    }
  }
  if (!n) n = 1;
  struct kz_sim *sim = NULL;
  struct kz_sim_host *host = NULL;
  struct kz_sim_proc *proc = NULL;
  struct kz_addr ip = kz_addr_v4(0x0a000001, 0);
  if (kz_sim_new(&sim, 1) || kz_sim_host_add(sim, "bench", &ip, &host) ||
      kz_sim_proc_add(host, "p", &idle_app, NULL, &proc))
    die("simulator");
  struct kz_env *env = kz_sim_proc_env(proc);
  if (strcmp(which, "rtt")) run_reg(env, n);
  if (strcmp(which, "reg")) run_rtt(env, n);
  kz_sim_free(sim);
  return 0;
}
