/* bench_bus.c — kz's bus over AMQP against a bare librabbitmq-c client on the same RabbitMQ node: request/response latency and one-way throughput. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <jansson.h>
#include <uv.h>

#include "kz/bus.h"
#include "kz/bus_amqp.h"
#include "kz/bus_client.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/uv_env.h"

/* What is measured (one run, everything bounded):
 *
 *  rtt   N sequential request/response round trips, one outstanding,
 *        after a warm-up of N/10.
 *        kz:   kz_bus_request (authn_req on topic exchange "callmgr", key
 *              authn.req.<realm>) -> responder's kz_bus_consume callback ->
 *              kz_bus_reply (authn_resp to "targeted", key = Server-ID) ->
 *              the request's callback.  Both buses on one libuv loop, each
 *              with its AMQP backend (own connection; socket I/O on the
 *              loop thread).
 *        bare: the same exchange types, the same body sizes, a server
 *              thread with its own connection replying to reply_to
 *              through a direct exchange, the client blocking in
 *              amqp_consume_message; no JSON work.
 *  tput  M messages one way, topic exchange -> one bound queue, transient,
 *        no confirms, consumer without acks; msgs/s = M / (last delivery -
 *        first publish).
 *        kz:   kz_bus_publish on one bus, kz_bus_consume on another.
 *        bare: a publisher thread and a consumer thread (2 connections).
 */

#define SEC 1000000000ull
#define RTT_BLOCKS 4
#define TPUT_BLOCKS 2

struct opts {
  const char *uri;
  int port;
  int rtt_n;
  int msgs;
  int size;
  const char *out_dir;
  bool own_node;
};

/* Port 28990: below the ephemeral range and outside the 20000-27999 the
 * AMQP tests of a build tree pick theirs from. */
static struct opts O = {.port = 28990, .rtt_n = 2000, .msgs = 20000, .size = 600};

static uint64_t now_ns(void) { return uv_hrtime(); }

static void die(const char *what) {
  fprintf(stderr, "kz_bench_bus: %s\n", what);
  exit(1); /* the atexit handler stops a node this run started */
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, int n, double p) {
  qsort(v, (size_t)n, sizeof *v, cmp_u64);
  int i = (int)(p * (n - 1) + 0.5);
  return (double)v[i] / 1000.0; /* µs */
}

/* A JSON-ish pad of `n` bytes ('x'), NUL-terminated, malloc'ed. */
static char *pad(int n) {
  if (n < 0) n = 0;
  char *s = malloc((size_t)n + 1);
  if (!s) die("out of memory");
  memset(s, 'x', (size_t)n);
  s[n] = '\0';
  return s;
}

/* ------------------------------------------------------------------ */
/* kz side                                                              */

struct kz_side {
  uv_loop_t loop;
  uv_timer_t tick;
  struct kz_uv_env *env[2];
  struct kz_bus *bus[2];
  /* rtt */
  int done, target;
  uint64_t t_sent;
  uint64_t *rtt;
  int warm;
  char *req_pad, *resp_pad;
  size_t req_len, resp_len;
  bool probe_ok;
  int probe_status;
  /* tput */
  int received, bulk_n;
  uint64_t t_last;
};

static struct kz_side K;

static void on_tick(uv_timer_t *t) { (void)t; }

static bool run_until(bool (*pred)(void), uint64_t timeout_ns) {
  uint64_t end = now_ns() + timeout_ns;
  while (!pred()) {
    if (now_ns() >= end) return false;
    /* The loop's clock is stale after work done outside it: refresh it,
     * or the tick would be due at once and uv_run could then block. */
    uv_update_time(&K.loop);
    uv_timer_start(&K.tick, on_tick, 10, 0);
    uv_run(&K.loop, UV_RUN_ONCE);
  }
  return true;
}

static bool both_up(void) {
  return kz_bus_state(K.bus[0]) == KZ_BUS_UP && kz_bus_state(K.bus[1]) == KZ_BUS_UP;
}
/* Lets the broker apply what was just declared.  (A confirmed probe
 * publish would be exact, but it switches the publish channel to confirm
 * mode for the rest of the run, which is not what is being measured.) */
static bool never(void) { return false; }
static void settle(struct kz_bus *bus) {
  (void)bus;
  run_until(never, 300000000ull);
}

static void kz_open(void) {
  if (uv_loop_init(&K.loop)) die("uv_loop_init");
  uv_timer_init(&K.loop, &K.tick);
  uint64_t seed = now_ns() ^ (uint64_t)getpid() << 32;
  for (int i = 0; i < 2; i++) {
    char name[16];
    snprintf(name, sizeof name, "bench%d", i);
    if (kz_uv_env_new(&K.env[i], &K.loop, name, seed + (uint64_t)i * 7919, NULL))
      die("kz_uv_env_new");
    struct kz_bus_backend be;
    const char *uris[] = {O.uri};
    if (kz_bus_amqp_new(&be, &K.loop, uris, 1, NULL)) die("kz_bus_amqp_new");
    struct kz_bus_cfg cfg = {.node = "kz_bench@localhost",
                             .app_name = "bench_bus",
                             .app_version = "0.1.0"};
    if (kz_bus_new(&K.bus[i], kz_uv_env_get(K.env[i]), &be, &cfg)) die("kz_bus_new");
  }
  if (!run_until(both_up, 20 * SEC)) die("buses did not come up");
}

static void kz_close(void) {
  for (int i = 0; i < 2; i++) {
    kz_bus_free(K.bus[i]);
    kz_uv_env_free(K.env[i]);
  }
  uv_close((uv_handle_t *)&K.tick, NULL);
  uv_run(&K.loop, UV_RUN_DEFAULT);
  uv_loop_close(&K.loop);
}

static json_t *authn_req(void) {
  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "Event-Category",
                   "directory", "Event-Name", "authn_req", "Method", "REGISTER",
                   "Auth-User", "1001", "Auth-Realm", "example.com", "From",
                   "sip:1001@example.com", "To", "sip:1001@example.com",
                   "X-Bench-Pad", K.req_pad);
}

/* Responder: answers every authn_req. */
static void on_request(void *arg, struct kz_bus *bus, const struct kz_bus_delivery *d) {
  (void)arg;
  json_error_t err;
  json_t *req = json_loadb((const char *)d->body, d->len, 0, &err);
  if (!req) die("responder: bad JSON");
  if (!K.req_len) K.req_len = d->len;
  json_t *resp = json_pack("{s:s, s:s, s:s, s:s, s:s}", "Event-Category", "directory",
                           "Event-Name", "authn_resp", "Auth-Method", "password",
                           "Auth-Password", "secret", "X-Bench-Pad", K.resp_pad);
  if (kz_bus_reply(bus, req, resp)) die("kz_bus_reply failed");
  if (!K.resp_len) {
    char *s = json_dumps(resp, JSON_COMPACT);
    K.resp_len = s ? strlen(s) : 0;
    free(s);
  }
  json_decref(resp);
  json_decref(req);
}

static void send_request(void);

static void on_reply(void *arg, struct kz_bus *bus, int status, const json_t *reply) {
  (void)arg;
  (void)bus;
  (void)reply;
  if (status) die("request failed");
  uint64_t t = now_ns() - K.t_sent;
  if (K.warm > 0)
    K.warm--;
  else
    K.rtt[K.done++] = t;
  if (K.done < K.target) send_request();
}

static void send_request(void) {
  json_t *req = authn_req();
  K.t_sent = now_ns();
  if (kz_bus_request(K.bus[0], "callmgr", "authn.req.example%2Ecom", req, 5 * SEC,
                     on_reply, NULL, NULL))
    die("kz_bus_request failed");
  json_decref(req);
}

static bool rtt_done(void) { return K.done >= K.target; }

static void kz_rtt(uint64_t *out, int n) {
  struct kz_bus *resp = K.bus[1];
  struct kz_bus_queue_opts qo = {.auto_delete = true};
  static bool ready;
  if (!ready && (ready = true) && (kz_bus_declare_exchange(resp, "callmgr", KZ_BUS_EX_TOPIC) ||
      kz_bus_declare_queue(resp, "bench.kz.authn", &qo) ||
      kz_bus_bind(resp, "bench.kz.authn", "callmgr", "authn.req.*") ||
      kz_bus_consume(resp, "bench.kz.authn", false, on_request, NULL, NULL)))
    die("responder setup");
  settle(resp);
  K.rtt = out;
  K.done = 0;
  K.target = n;
  K.warm = n / 10;
  send_request();
  if (!run_until(rtt_done, 120 * SEC)) die("kz rtt: did not finish");
}

static void on_bulk(void *arg, struct kz_bus *bus, const struct kz_bus_delivery *d) {
  (void)arg;
  (void)bus;
  (void)d;
  if (++K.received == K.bulk_n) K.t_last = now_ns();
}

static bool bulk_done(void) { return K.received >= K.bulk_n; }

static double kz_tput(const char *body, size_t len, int n) {
  struct kz_bus *pub = K.bus[0], *con = K.bus[1];
  struct kz_bus_queue_opts qo = {.auto_delete = true};
  static bool ready;
  K.bulk_n = n;
  if (!ready && (ready = true) && (kz_bus_declare_exchange(con, "bench.kz.topic", KZ_BUS_EX_TOPIC) ||
      kz_bus_declare_queue(con, "bench.kz.q", &qo) ||
      kz_bus_bind(con, "bench.kz.q", "bench.kz.topic", "media.#") ||
      kz_bus_consume(con, "bench.kz.q", false, on_bulk, NULL, NULL)))
    die("consumer setup");
  settle(con);
  K.received = 0;
  uint64_t t0 = now_ns();
  for (int i = 0; i < n; i++) {
    if (kz_bus_publish(pub, "bench.kz.topic", "media.call.event", body, len, NULL, NULL))
      die("kz_bus_publish failed");
    /* Let the loop breathe now and then, as a role would between events. */
    if ((i & 255) == 255) uv_run(&K.loop, UV_RUN_NOWAIT);
  }
  if (!run_until(bulk_done, 120 * SEC)) die("kz tput: did not finish");
  return (double)(K.t_last - t0) / 1e9;
}

/* ------------------------------------------------------------------ */
/* bare librabbitmq-c side                                              */

static amqp_connection_state_t bare_connect(void) {
  amqp_connection_state_t c = amqp_new_connection();
  amqp_socket_t *s = amqp_tcp_socket_new(c);
  if (!s || amqp_socket_open(s, "127.0.0.1", O.port) != AMQP_STATUS_OK) die("bare: connect");
  if (amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest").reply_type !=
      AMQP_RESPONSE_NORMAL)
    die("bare: login");
  amqp_channel_open(c, 1);
  if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) die("bare: channel");
  return c;
}

static void bare_check(amqp_connection_state_t c, const char *what) {
  if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) die(what);
}

static void bare_close(amqp_connection_state_t c) {
  amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(c, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(c);
}

static volatile int bare_stop;
static pthread_mutex_t bare_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t bare_cv = PTHREAD_COND_INITIALIZER;
static int bare_ready;

static void set_ready(void) {
  pthread_mutex_lock(&bare_mu);
  bare_ready = 1;
  pthread_cond_broadcast(&bare_cv);
  pthread_mutex_unlock(&bare_mu);
}

static void wait_ready(void) {
  pthread_mutex_lock(&bare_mu);
  while (!bare_ready) pthread_cond_wait(&bare_cv, &bare_mu);
  bare_ready = 0;
  pthread_mutex_unlock(&bare_mu);
}

/* The server: consumes requests, replies to reply_to via a direct
 * exchange, echoing correlation_id. */
static void *bare_server(void *arg) {
  size_t resp_len = *(size_t *)arg;
  amqp_connection_state_t c = bare_connect();
  amqp_exchange_declare(c, 1, amqp_cstring_bytes("bench.bare.req"), amqp_cstring_bytes("topic"),
                        0, 0, 0, 0, amqp_empty_table);
  bare_check(c, "bare: exchange");
  amqp_exchange_declare(c, 1, amqp_cstring_bytes("bench.bare.targeted"),
                        amqp_cstring_bytes("direct"), 0, 0, 0, 0, amqp_empty_table);
  bare_check(c, "bare: exchange");
  amqp_queue_declare(c, 1, amqp_cstring_bytes("bench.bare.rpc"), 0, 0, 0, 1, amqp_empty_table);
  bare_check(c, "bare: queue");
  amqp_queue_bind(c, 1, amqp_cstring_bytes("bench.bare.rpc"), amqp_cstring_bytes("bench.bare.req"),
                  amqp_cstring_bytes("authn.req.*"), amqp_empty_table);
  bare_check(c, "bare: bind");
  amqp_basic_consume(c, 1, amqp_cstring_bytes("bench.bare.rpc"), amqp_empty_bytes, 0, 1, 0,
                     amqp_empty_table);
  bare_check(c, "bare: consume");
  char *body = pad((int)resp_len);
  set_ready();
  while (!bare_stop) {
    amqp_envelope_t env;
    struct timeval tv = {0, 100000};
    amqp_maybe_release_buffers(c);
    amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) continue;
    amqp_basic_properties_t p = {._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
                                           AMQP_BASIC_DELIVERY_MODE_FLAG |
                                           AMQP_BASIC_CORRELATION_ID_FLAG,
                                 .content_type = amqp_cstring_bytes("application/json"),
                                 .delivery_mode = 1,
                                 .correlation_id = env.message.properties.correlation_id};
    amqp_basic_publish(c, 1, amqp_cstring_bytes("bench.bare.targeted"),
                       env.message.properties.reply_to, 0, 0, &p,
                       (amqp_bytes_t){.len = resp_len, .bytes = body});
    amqp_destroy_envelope(&env);
  }
  free(body);
  bare_close(c);
  return NULL;
}

static void bare_rtt(uint64_t *out, int n, size_t req_len, size_t resp_len) {
  bare_stop = 0;
  pthread_t th;
  pthread_create(&th, NULL, bare_server, &resp_len);
  wait_ready();
  amqp_connection_state_t c = bare_connect();
  amqp_queue_declare_ok_t *q =
      amqp_queue_declare(c, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
  bare_check(c, "bare: reply queue");
  amqp_bytes_t qname = amqp_bytes_malloc_dup(q->queue);
  amqp_queue_bind(c, 1, qname, amqp_cstring_bytes("bench.bare.targeted"), qname,
                  amqp_empty_table);
  bare_check(c, "bare: reply bind");
  amqp_basic_consume(c, 1, qname, amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
  bare_check(c, "bare: reply consume");
  char *body = pad((int)req_len);
  int warm = n / 10, done = 0;
  uint64_t seq = 0;
  while (done < n) {
    char cid[32];
    snprintf(cid, sizeof cid, "%" PRIu64, ++seq);
    amqp_basic_properties_t p = {._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
                                           AMQP_BASIC_DELIVERY_MODE_FLAG |
                                           AMQP_BASIC_REPLY_TO_FLAG |
                                           AMQP_BASIC_CORRELATION_ID_FLAG,
                                 .content_type = amqp_cstring_bytes("application/json"),
                                 .delivery_mode = 1,
                                 .reply_to = qname,
                                 .correlation_id = amqp_cstring_bytes(cid)};
    uint64_t t0 = now_ns();
    if (amqp_basic_publish(c, 1, amqp_cstring_bytes("bench.bare.req"),
                           amqp_cstring_bytes("authn.req.example%2Ecom"), 0, 0, &p,
                           (amqp_bytes_t){.len = req_len, .bytes = body}) != AMQP_STATUS_OK)
      die("bare: publish");
    for (;;) {
      amqp_envelope_t env;
      amqp_maybe_release_buffers(c);
      amqp_rpc_reply_t r = amqp_consume_message(c, &env, NULL, 0);
      if (r.reply_type != AMQP_RESPONSE_NORMAL) die("bare: consume reply");
      amqp_bytes_t got = env.message.properties.correlation_id;
      bool match = got.len == strlen(cid) && !memcmp(got.bytes, cid, got.len);
      amqp_destroy_envelope(&env);
      if (match) break;
    }
    uint64_t t = now_ns() - t0;
    if (warm > 0)
      warm--;
    else
      out[done++] = t;
  }
  free(body);
  amqp_bytes_free(qname);
  bare_close(c);
  bare_stop = 1;
  pthread_join(th, NULL);
}

struct bare_tput {
  int n;
  uint64_t t_last;
};

static void *bare_consumer(void *arg) {
  struct bare_tput *bt = arg;
  amqp_connection_state_t c = bare_connect();
  amqp_exchange_declare(c, 1, amqp_cstring_bytes("bench.bare.topic"), amqp_cstring_bytes("topic"),
                        0, 0, 0, 0, amqp_empty_table);
  bare_check(c, "bare: exchange");
  amqp_queue_declare(c, 1, amqp_cstring_bytes("bench.bare.q"), 0, 0, 0, 1, amqp_empty_table);
  bare_check(c, "bare: queue");
  amqp_queue_bind(c, 1, amqp_cstring_bytes("bench.bare.q"), amqp_cstring_bytes("bench.bare.topic"),
                  amqp_cstring_bytes("media.#"), amqp_empty_table);
  bare_check(c, "bare: bind");
  amqp_basic_consume(c, 1, amqp_cstring_bytes("bench.bare.q"), amqp_empty_bytes, 0, 1, 0,
                     amqp_empty_table);
  bare_check(c, "bare: consume");
  set_ready();
  int got = 0;
  while (got < bt->n) {
    amqp_envelope_t env;
    amqp_maybe_release_buffers(c);
    amqp_rpc_reply_t r = amqp_consume_message(c, &env, NULL, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) die("bare: consume");
    amqp_destroy_envelope(&env);
    got++;
  }
  bt->t_last = now_ns();
  bare_close(c);
  return NULL;
}

static double bare_tput(const char *body, size_t len, int n) {
  struct bare_tput bt = {.n = n};
  pthread_t th;
  pthread_create(&th, NULL, bare_consumer, &bt);
  wait_ready();
  amqp_connection_state_t c = bare_connect();
  amqp_basic_properties_t p = {._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
                                         AMQP_BASIC_DELIVERY_MODE_FLAG,
                               .content_type = amqp_cstring_bytes("application/json"),
                               .delivery_mode = 1};
  uint64_t t0 = now_ns();
  for (int i = 0; i < n; i++)
    if (amqp_basic_publish(c, 1, amqp_cstring_bytes("bench.bare.topic"),
                           amqp_cstring_bytes("media.call.event"), 0, 0, &p,
                           (amqp_bytes_t){.len = len, .bytes = (void *)body}) != AMQP_STATUS_OK)
      die("bare: publish");
  pthread_join(th, NULL);
  bare_close(c);
  return (double)(bt.t_last - t0) / 1e9;
}

/* ------------------------------------------------------------------ */
/* Driver                                                               */

static int run_ci(const char *args) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "'%s/ci/rabbitmq' %s", KZ_SOURCE_DIR, args);
  return system(cmd);
}

static void stop_own_node(void) {
  if (O.own_node) run_ci("stop kzbench >/dev/null 2>&1");
}

static void usage(void) {
  fprintf(stderr,
          "usage: kz_bench_bus [--port P | --uri URI] [--rtt N] [--msgs M] [--size B] [--quick]\n"
          "                    [--out DIR]\n"
          "  Without --uri, starts its own RabbitMQ node (ci/rabbitmq) on 127.0.0.1:P\n"
          "  (default 28990) and stops it at exit, also after a failure (bench/bus/run.sh\n"
          "  does the same around a --uri run, also on a signal).  Defaults: --rtt 2000,\n"
          "  --msgs 20000, --size 600 (bytes of each one-way message and, roughly, of each\n"
          "  request); --quick: --rtt 400 --msgs 4000.\n"
          "  Writes DIR/bus.json and DIR/bus.md (default: reports/bench of the source tree).\n");
  exit(2);
}

struct stats {
  double p50, p90, p99, mean;
};

static struct stats summarize(uint64_t *v, int n) {
  struct stats s;
  double sum = 0;
  for (int i = 0; i < n; i++) sum += (double)v[i];
  s.mean = sum / n / 1000.0;
  s.p50 = pct(v, n, 0.50);
  s.p90 = pct(v, n, 0.90);
  s.p99 = pct(v, n, 0.99);
  return s;
}

int main(int argc, char **argv) {
  char uri[256];
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--uri") && i + 1 < argc) O.uri = argv[++i];
    else if (!strcmp(argv[i], "--port") && i + 1 < argc) O.port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--rtt") && i + 1 < argc) O.rtt_n = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--msgs") && i + 1 < argc) O.msgs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--size") && i + 1 < argc) O.size = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--out") && i + 1 < argc) O.out_dir = argv[++i];
    else if (!strcmp(argv[i], "--quick")) O.rtt_n = 400, O.msgs = 4000;
    else usage();
  }
  if (O.rtt_n < 20 || O.msgs < 1 || O.size < 64) usage();
  if (O.uri) {
    struct amqp_connection_info ci;
    char *copy = strdup(O.uri);
    if (!copy || amqp_parse_url(copy, &ci) != AMQP_STATUS_OK) die("bad --uri");
    O.port = ci.port;
    if (strcmp(ci.host, "127.0.0.1") && strcmp(ci.host, "localhost"))
      die("the bare client connects to 127.0.0.1: use a local node");
    free(copy);
  } else {
    char args[128];
    snprintf(args, sizeof args, "stop kzbench >/dev/null 2>&1; '%s/ci/rabbitmq' start kzbench %d %d",
             KZ_SOURCE_DIR, O.port, O.port + 2);
    fprintf(stderr, "kz_bench_bus: starting RabbitMQ on 127.0.0.1:%d...\n", O.port);
    O.own_node = true;
    atexit(stop_own_node);
    if (run_ci(args) != 0) die("cannot start RabbitMQ (ci/rabbitmq)");
    snprintf(uri, sizeof uri, "amqp://guest:guest@127.0.0.1:%d", O.port);
    O.uri = uri;
  }

  uint64_t *kz_v = calloc((size_t)O.rtt_n, sizeof *kz_v);
  uint64_t *bare_v = calloc((size_t)O.rtt_n, sizeof *bare_v);
  if (!kz_v || !bare_v) die("out of memory");
  /* Request pad: the authn_req envelope kz adds is ~330 bytes. */
  K.req_pad = pad(O.size - 330);
  K.resp_pad = pad(O.size - 300);
  char *bulk = malloc((size_t)O.size + 1);
  if (!bulk) die("out of memory");
  int hl = snprintf(bulk, (size_t)O.size + 1, "{\"Event-Category\":\"call_event\",\"Pad\":\"");
  memset(bulk + hl, 'x', (size_t)(O.size - hl - 2));
  memcpy(bulk + O.size - 2, "\"}", 2);
  bulk[O.size] = '\0';

  /* kz and bare alternate in blocks so that both see the same machine
   * (it is shared: load comes and goes). */
  int per = O.rtt_n / RTT_BLOCKS;
  O.rtt_n = per * RTT_BLOCKS;
  kz_open();
  double kz_s = 0, bare_s = 0;
  for (int blk = 0; blk < RTT_BLOCKS; blk++) {
    fprintf(stderr, "kz_bench_bus: round trips, block %d/%d (kz, then bare)...\n", blk + 1,
            RTT_BLOCKS);
    kz_rtt(kz_v + blk * per, per);
    bare_rtt(bare_v + blk * per, per, K.req_len, K.resp_len);
  }
  for (int blk = 0; blk < TPUT_BLOCKS; blk++) {
    int n = O.msgs / TPUT_BLOCKS + (blk < O.msgs % TPUT_BLOCKS);
    fprintf(stderr, "kz_bench_bus: throughput, block %d/%d (kz, then bare)...\n", blk + 1,
            TPUT_BLOCKS);
    kz_s += kz_tput(bulk, (size_t)O.size, n);
    bare_s += bare_tput(bulk, (size_t)O.size, n);
  }
  kz_close();
  double kz_mps = O.msgs / kz_s, bare_mps = O.msgs / bare_s;

  struct stats ks = summarize(kz_v, O.rtt_n), bs = summarize(bare_v, O.rtt_n);
  double r50 = ks.p50 / bs.p50, r99 = ks.p99 / bs.p99, rt = kz_mps / bare_mps;
  printf("\n%-28s %12s %12s %8s  %s\n", "", "kz", "bare", "kz/bare", "target");
  printf("%-28s %12.1f %12.1f %8.2f  %s\n", "round trip p50 (us)", ks.p50, bs.p50, r50, "<= 1.2");
  printf("%-28s %12.1f %12.1f %8.2f\n", "round trip p90 (us)", ks.p90, bs.p90, ks.p90 / bs.p90);
  printf("%-28s %12.1f %12.1f %8.2f  %s\n", "round trip p99 (us)", ks.p99, bs.p99, r99, "<= 1.2");
  printf("%-28s %12.1f %12.1f %8.2f\n", "round trip mean (us)", ks.mean, bs.mean,
         ks.mean / bs.mean);
  printf("%-28s %12.0f %12.0f %8.2f  %s\n", "one-way msgs/s", kz_mps, bare_mps, rt, ">= 0.8");
  printf("(%d round trips after %d warm-up, request %zu B, reply %zu B; %d messages of %d B)\n",
         O.rtt_n, O.rtt_n / 10, K.req_len, K.resp_len, O.msgs, O.size);

  char dir[1024];
  snprintf(dir, sizeof dir, "%s", O.out_dir ? O.out_dir : KZ_SOURCE_DIR "/reports/bench");
  char mk[1100];
  snprintf(mk, sizeof mk, "mkdir -p '%s'", dir);
  if (system(mk) != 0) die("cannot create the output folder");
  char path[1100];
  time_t wall = time(NULL);
  char when[32];
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&wall));
  snprintf(path, sizeof path, "%s/bus.json", dir);
  FILE *f = fopen(path, "w");
  if (!f) die("cannot write bus.json");
  fprintf(f,
          "{\n  \"bench\": \"bus\",\n  \"when\": \"%s\",\n  \"broker\": \"RabbitMQ on 127.0.0.1:%d\",\n"
          "  \"rtt\": {\"n\": %d, \"warmup\": %d, \"request_bytes\": %zu, \"reply_bytes\": %zu,\n"
          "    \"kz_us\": {\"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"mean\": %.1f},\n"
          "    \"bare_us\": {\"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"mean\": %.1f}},\n"
          "  \"throughput\": {\"messages\": %d, \"bytes\": %d, \"kz_msgs_per_s\": %.0f, "
          "\"bare_msgs_per_s\": %.0f},\n"
          "  \"ratios\": {\"latency_p50\": %.3f, \"latency_p99\": %.3f, \"throughput\": %.3f},\n"
          "  \"targets\": {\"latency_max_ratio\": 1.2, \"throughput_min_ratio\": 0.8},\n"
          "  \"met\": {\"latency_p50\": %s, \"latency_p99\": %s, \"throughput\": %s}\n}\n",
          when, O.port, O.rtt_n, O.rtt_n / 10, K.req_len, K.resp_len, ks.p50, ks.p90, ks.p99,
          ks.mean, bs.p50, bs.p90, bs.p99, bs.mean, O.msgs, O.size, kz_mps, bare_mps, r50, r99, rt,
          r50 <= 1.2 ? "true" : "false", r99 <= 1.2 ? "true" : "false",
          rt >= 0.8 ? "true" : "false");
  fclose(f);
  snprintf(path, sizeof path, "%s/bus.md", dir);
  f = fopen(path, "w");
  if (!f) die("cannot write bus.md");
  fprintf(f,
          "# Bus benchmark: kz over AMQP vs bare librabbitmq-c\n\n"
          "Generated by `kz_bench_bus` (bench/bus, run by `ci/bench bus`) at %s against\n"
          "RabbitMQ on 127.0.0.1:%d.  One run; this machine is shared, so expect about ±15%%\n"
          "noise.\n\n"
          "| | kz | bare | kz/bare | target |\n|---|---:|---:|---:|---|\n"
          "| round trip p50 (µs) | %.1f | %.1f | %.2f | ≤ 1.2 |\n"
          "| round trip p90 (µs) | %.1f | %.1f | %.2f | |\n"
          "| round trip p99 (µs) | %.1f | %.1f | %.2f | ≤ 1.2 |\n"
          "| one-way messages/s | %.0f | %.0f | %.2f | ≥ 0.8 |\n\n"
          "Round trips: %d sequential (after %d warm-up), request %zu B, reply %zu B; kz uses\n"
          "kz_bus_request / kz_bus_reply (authn_req on `callmgr`, reply on `targeted`), bare uses\n"
          "the same exchange types and sizes with reply_to/correlation_id.  Throughput: %d\n"
          "messages of %d B, topic exchange to one queue, no acks, no confirms, first publish to\n"
          "last delivery.  Both kz buses share one libuv loop, as a role's do; the AMQP backend\n"
          "does its socket I/O on that loop (uv_poll; librabbitmq-c only frames), so a round trip\n"
          "costs kz the same thread wake-ups as the bare client's two blocking threads.\n",
          when, O.port, ks.p50, bs.p50, r50, ks.p90, bs.p90, ks.p90 / bs.p90, ks.p99, bs.p99, r99,
          kz_mps, bare_mps, rt, O.rtt_n, O.rtt_n / 10, K.req_len, K.resp_len, O.msgs, O.size);
  fclose(f);
  fprintf(stderr, "kz_bench_bus: wrote %s/bus.json and bus.md\n", dir);

  free(kz_v);
  free(bare_v);
  free(bulk);
  free(K.req_pad);
  free(K.resp_pad);
  return 0;
}
