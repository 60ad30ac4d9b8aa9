/* proxy_server.c — kz's proxy role on the libuv driver with an in-process bus that answers authn_req at once from a table of users: the process bench.py measures against Kamailio. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "kz/bus_client.h"
#include "kz/error.h"
#include "kz/map.h"
#include "kz/mem.h"
#include "kz/proxy.h"
#include "kz/uv_env.h"

/* Why an in-process bus: the benchmark compares the proxy's own work with
 * Kamailio reading credentials from its in-memory htable, so the bus must
 * cost no network round trip.  The backend below is the smallest broker
 * the proxy needs: it says "up" once, remembers which consumer reads
 * which queue, answers every authn_req (exchange callmgr, key
 * authn.req.<realm>) with an authn_resp carrying the user's password
 * (authn_err for unknown users) on the next loop turn, confirms what
 * asks for a confirm and drops everything else (reg_success and the
 * like are counted: building them is part of the proxy's work). */

#define IB_MAX_CONSUMERS 16

struct ib_delivery {
  uint64_t consumer;
  char queue[128];
  char *body;
  size_t len;
  struct ib_delivery *next;
};

struct ib_broker {
  struct kz_map users; /* "user@realm" -> password (kz_strdup'ed) */
  uint64_t authn_reqs, authn_errs, published, dropped;
};

struct ib_backend {
  struct ib_broker *br;
  struct kz_bus *bus;
  struct kz_timer timer;
  bool up;
  struct {
    uint64_t id;
    char queue[128];
  } cons[IB_MAX_CONSUMERS];
  size_t ncons;
  struct ib_delivery *head, *tail;
  uint64_t tag;
};

static void ib_on_timer(void *arg) {
  struct ib_backend *be = arg;
  if (!be->up) {
    be->up = true;
    kz_bus_backend_up(be->bus, 0);
  }
  /* Detach the queue first: deliveries may publish (and enqueue) again. */
  struct ib_delivery *d = be->head;
  be->head = be->tail = NULL;
  while (d) {
    struct ib_delivery *next = d->next;
    struct kz_bus_delivery kd = {.queue = d->queue, .exchange = "targeted", .routing_key = d->queue,
                                 .body = (const uint8_t *)d->body, .len = d->len, .tag = ++be->tag};
    kz_bus_backend_deliver(be->bus, d->consumer, &kd);
    kz_free(d->body);
    kz_free(d);
    d = next;
  }
}

static void ib_reply(struct ib_backend *be, const char *queue, char *text) {
  for (size_t i = 0; i < be->ncons; i++) {
    if (strcmp(be->cons[i].queue, queue)) continue;
    struct ib_delivery *d = kz_calloc(1, sizeof *d);
    if (!d) break;
    d->consumer = be->cons[i].id;
    snprintf(d->queue, sizeof d->queue, "%s", queue);
    d->len = strlen(text);
    d->body = kz_malloc(d->len + 1);
    if (!d->body) {
      kz_free(d);
      break;
    }
    memcpy(d->body, text, d->len + 1);
    if (be->tail) be->tail->next = d;
    else be->head = d;
    be->tail = d;
    if (!kz_timer_active(&be->timer)) kz_timer_start(&be->timer, 0);
    return;
  }
  be->br->dropped++;
}

static void ib_authn(struct ib_backend *be, const void *body, size_t len) {
  struct ib_broker *br = be->br;
  br->authn_reqs++;
  json_t *req = json_loadb(body, len, 0, NULL);
  if (!req) return;
  const char *user = json_string_value(json_object_get(req, "Auth-User"));
  const char *realm = json_string_value(json_object_get(req, "Auth-Realm"));
  const char *sid = json_string_value(json_object_get(req, "Server-ID"));
  const char *mid = json_string_value(json_object_get(req, "Msg-ID"));
  const char *pw = NULL;
  if (user && realm) {
    char key[256];
    snprintf(key, sizeof key, "%s@%s", user, realm);
    pw = kz_map_get_str(&br->users, key);
  }
  json_t *rep;
  if (pw) {
    rep = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:{s:s,s:s,s:s}}", "Event-Category", "directory",
                    "Event-Name", "authn_resp", "App-Name", "registrar", "App-Version", "4.3.0",
                    "Msg-ID", mid ? mid : "", "Auth-Method", "password", "Auth-Password", pw,
                    "Custom-Channel-Vars", "Account-ID", "acct0001", "Username", user,
                    "Authorizing-Type", "device");
  } else {
    br->authn_errs++;
    rep = json_pack("{s:s,s:s,s:s,s:s,s:s}", "Event-Category", "directory", "Event-Name", "authn_err",
                    "App-Name", "registrar", "App-Version", "4.3.0", "Msg-ID", mid ? mid : "");
  }
  char *text = rep ? json_dumps(rep, JSON_COMPACT) : NULL;
  if (text && sid) ib_reply(be, sid, text);
  free(text);
  json_decref(rep);
  json_decref(req);
}

static void op_attach(void *p, struct kz_bus *bus) {
  struct ib_backend *be = p;
  be->bus = bus;
  kz_timer_start(&be->timer, 0);
}
static int op_declare_exchange(void *p, const char *name, enum kz_bus_exchange_type type) { return 0; }
static int op_declare_queue(void *p, const char *name, const struct kz_bus_queue_opts *o) { return 0; }
static int op_delete_queue(void *p, const char *name) { return 0; }
static int op_bind(void *p, const char *queue, const char *exchange, const char *key) { return 0; }
static int op_unbind(void *p, const char *queue, const char *exchange, const char *key) { return 0; }
static int op_consume(void *p, uint64_t id, const char *queue, bool no_ack) {
  struct ib_backend *be = p;
  if (be->ncons >= IB_MAX_CONSUMERS) return KZ_ENOMEM;
  be->cons[be->ncons].id = id;
  snprintf(be->cons[be->ncons].queue, sizeof be->cons[0].queue, "%s", queue);
  be->ncons++;
  return 0;
}
static int op_cancel(void *p, uint64_t id) {
  struct ib_backend *be = p;
  for (size_t i = 0; i < be->ncons; i++)
    if (be->cons[i].id == id) be->cons[i] = be->cons[--be->ncons];
  return 0;
}
static int op_publish(void *p, uint64_t publish_id, const char *exchange, const char *rk, const void *body,
                      size_t len, const struct kz_bus_publish_opts *o) {
  struct ib_backend *be = p;
  be->br->published++;
  if (!strcmp(exchange, "callmgr") && !strncmp(rk, "authn.req.", 10)) ib_authn(be, body, len);
  if (o && o->confirm) kz_bus_backend_confirm(be->bus, publish_id, 0);
  return 0;
}
static int op_ack(void *p, uint64_t tag) { return 0; }
static void op_destroy(void *p) {
  struct ib_backend *be = p;
  kz_timer_stop(&be->timer);
  while (be->head) {
    struct ib_delivery *d = be->head;
    be->head = d->next;
    kz_free(d->body);
    kz_free(d);
  }
  kz_free(be);
}

static const struct kz_bus_backend_ops ib_ops = {
    .attach = op_attach, .declare_exchange = op_declare_exchange, .declare_queue = op_declare_queue,
    .delete_queue = op_delete_queue, .bind = op_bind, .unbind = op_unbind, .consume = op_consume,
    .cancel = op_cancel, .publish = op_publish, .ack = op_ack, .destroy = op_destroy};

static int ib_factory(void *arg, struct kz_env *env, struct kz_bus_backend *out) {
  struct ib_backend *be = kz_calloc(1, sizeof *be);
  if (!be) return KZ_ENOMEM;
  be->br = arg;
  kz_timer_init(&be->timer, env, ib_on_timer, be);
  out->ops = &ib_ops;
  out->be = be;
  return 0;
}

/* ------------------------------------------------------------------ */

struct server {
  uv_loop_t loop;
  struct kz_uv_env *drv;
  void *proxy;
  struct ib_broker br;
  struct kz_proxy_config cfg;
  uv_signal_t sigint, sigterm;
  uv_timer_t deadline;
  bool stopping;
};

static void print_stats(struct server *s) {
  struct kz_proxy_stats st;
  kz_proxy_get_stats(s->proxy, &st);
  fprintf(stderr,
          "kz_bench_proxy_server: stats {\"requests_in\":%" PRIu64 ",\"responses_in\":%" PRIu64
          ",\"malformed\":%" PRIu64 ",\"replies_local\":%" PRIu64 ",\"forwarded\":%" PRIu64
          ",\"registers_ok\":%" PRIu64 ",\"registers_challenged\":%" PRIu64 ",\"registers_dropped\":%" PRIu64
          ",\"authn_requests\":%" PRIu64 ",\"authn_timeouts\":%" PRIu64 ",\"auth_cache_hits\":%" PRIu64
          ",\"auth_failures\":%" PRIu64 ",\"bus_authn_answered\":%" PRIu64 ",\"bus_published\":%" PRIu64 "}\n",
          st.requests_in, st.responses_in, st.malformed, st.replies_local, st.forwarded, st.registers_ok,
          st.registers_challenged, st.registers_dropped, st.authn_requests, st.authn_timeouts,
          st.auth_cache_hits, st.auth_failures, s->br.authn_reqs, s->br.published);
}

static void stop(struct server *s, const char *why) {
  if (s->stopping) return;
  s->stopping = true;
  fprintf(stderr, "kz_bench_proxy_server: stopping (%s)\n", why);
  print_stats(s);
  kz_proxy_stop(s->proxy);
  s->proxy = NULL;
  kz_uv_env_free(s->drv);
  s->drv = NULL;
  uv_close((uv_handle_t *)&s->sigint, NULL);
  uv_close((uv_handle_t *)&s->sigterm, NULL);
  uv_close((uv_handle_t *)&s->deadline, NULL);
}

/* Kamailio raises its UDP receive buffer to `maxbuffer` (256 KiB, which
 * the kernel doubles: 512 KiB); the libuv driver leaves the system
 * default (208 KiB here).  Give kz's socket the same size so a
 * scheduling hiccup costs both proxies the same drops. */
#define RCVBUF_BYTES 262144

static void size_udp(uv_handle_t *h, void *arg) {
  int *n = arg;
  if (h->type != UV_UDP) return;
  int v = RCVBUF_BYTES;
  if (uv_recv_buffer_size(h, &v) == 0) (*n)++;
}

static void on_signal(uv_signal_t *h, int signo) { stop(h->data, signo == SIGINT ? "SIGINT" : "SIGTERM"); }
static void on_deadline(uv_timer_t *t) { stop(t->data, "--max-seconds reached"); }

static void usage(FILE *out) {
  fprintf(out,
          "usage: kz_bench_proxy_server [options]\n"
          "  --listen IP:PORT     SIP UDP address (127.0.0.1:25060)\n"
          "  --media IP:PORT      the media server calls are dispatched to (127.0.0.2:25070)\n"
          "  --users N            users in the credential table (10000)\n"
          "  --first N            first user number: users are u<first>..u<first+N-1> (100000)\n"
          "  --realm DOMAIN       their realm (kz.bench)\n"
          "  --password PW        their password (secret)\n"
          "  --max-seconds S      stop by itself after S seconds (3600)\n"
          "Stops on SIGTERM/SIGINT and prints its counters on stderr.\n");
}

int main(int argc, char **argv) {
  static struct server S;
  struct server *s = &S;
  const char *listen = "127.0.0.1:25060", *media = "127.0.0.2:25070", *realm = "kz.bench", *pw = "secret";
  long users = 10000, first = 100000, max_s = 3600;
  /* Options come in pairs: "--name value". */
  for (int i = 1; i < argc; i += 2) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    }
    if (!v) {
      usage(stderr);
      return 2;
    }
    if (!strcmp(a, "--listen")) listen = v;
    else if (!strcmp(a, "--media")) media = v;
    else if (!strcmp(a, "--users")) users = strtol(v, NULL, 10);
    else if (!strcmp(a, "--first")) first = strtol(v, NULL, 10);
    else if (!strcmp(a, "--realm")) realm = v;
    else if (!strcmp(a, "--password")) pw = v;
    else if (!strcmp(a, "--max-seconds")) max_s = strtol(v, NULL, 10);
    else {
      usage(stderr);
      return 2;
    }
  }
  if (users < 0 || users > 10000000 || max_s <= 0) {
    usage(stderr);
    return 2;
  }

  kz_map_init(&s->br.users, 1, false);
  for (long i = 0; i < users; i++) {
    char key[256];
    snprintf(key, sizeof key, "u%ld@%s", first + i, realm);
    char *v = kz_strdup(pw);
    if (!v || kz_map_put_str(&s->br.users, key, v, NULL)) {
      fprintf(stderr, "kz_bench_proxy_server: out of memory\n");
      return 1;
    }
  }

  /* The same job as the Kamailio configuration next to this file:
   * location in memory, digest auth of the table's users, stateful relay
   * with record-routing to one media server (the SIPp UAS).  Pike and the
   * bare-IP traffic filter are off (Kamailio's side has neither: every
   * packet comes from 127.0.0.1), OPTIONS probes are rare (the UAS does
   * not answer them), UDP only. */
  kz_proxy_config_defaults(&s->cfg);
  snprintf(s->cfg.listen, sizeof s->cfg.listen, "%s", listen);
  s->cfg.tcp = false;
  s->cfg.antiflood = false;
  s->cfg.traffic_filter = false;
  s->cfg.nat_ping = false;
  s->cfg.probe_interval_ms = 3600000;
  snprintf(s->cfg.media_servers[0], sizeof s->cfg.media_servers[0], "%s", media);
  s->cfg.n_media_servers = 1;
  s->cfg.bus_factory = ib_factory;
  s->cfg.bus_arg = &s->br;
  char err[256] = "";
  if (kz_proxy_config_check(&s->cfg, err, sizeof err)) {
    fprintf(stderr, "kz_bench_proxy_server: %s\n", err);
    return 2;
  }

  if (uv_loop_init(&s->loop)) return 1;
  int rc = kz_uv_env_new(&s->drv, &s->loop, "proxy", 1, NULL);
  if (rc) {
    fprintf(stderr, "kz_bench_proxy_server: %s\n", kz_strerror(rc));
    return 1;
  }
  kz_uv_env_get(s->drv)->log_level = KZ_LOG_ERROR;
  rc = kz_proxy_start(kz_uv_env_get(s->drv), &s->cfg, &s->proxy);
  if (rc) {
    fprintf(stderr, "kz_bench_proxy_server: cannot start on %s: %s\n", listen, kz_strerror(rc));
    kz_uv_env_free(s->drv);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return 1;
  }
  int sized = 0;
  uv_walk(&s->loop, size_udp, &sized);
  if (sized != 1) fprintf(stderr, "kz_bench_proxy_server: sized %d UDP sockets (expected 1)\n", sized);
  uv_signal_init(&s->loop, &s->sigint);
  uv_signal_init(&s->loop, &s->sigterm);
  uv_timer_init(&s->loop, &s->deadline);
  s->sigint.data = s->sigterm.data = s->deadline.data = s;
  uv_signal_start(&s->sigint, on_signal, SIGINT);
  uv_signal_start(&s->sigterm, on_signal, SIGTERM);
  uv_timer_start(&s->deadline, on_deadline, (uint64_t)max_s * 1000, 0);
  fprintf(stderr, "kz_bench_proxy_server: listening on %s, media server %s, %ld users @%s\n", listen, media,
          users, realm);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  uv_loop_close(&s->loop);

  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  while (kz_map_next(&s->br.users, &pos, &k, &kl, &v)) kz_free(v);
  kz_map_free(&s->br.users);
  return 0;
}
