/* test_wire.c — Check suite for the bus wire protocol: frame codec (every op, every chunking, malformed input) and the backend's heartbeats, failover and backoff in the simulator. */
#include <stdio.h>
#include <string.h>

#include "kz/bus_wire.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/prng.h"
#include "kz/sim.h"
#include "kz/sim_broker.h"
#include "kz_test.h"

#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)

/* ------------------------------------------------------------------ */
/* Codec                                                                */

static struct kz_bus_wire_frame sample(enum kz_bus_wire_op op) {
  struct kz_bus_wire_frame f = {
      .op = op,
      .version = 1,
      .type = KZ_BUS_EX_TOPIC,
      .flags = 3,
      .no_ack = 1,
      .redelivered = 1,
      .status = 1,
      .code = 404,
      .heartbeat_ms = 0x01020304,
      .consumer = UINT64_C(0x1122334455667788),
      .tag = 42,
      .publish_id = UINT64_MAX,
      .name = KZ_SLICE_LIT("queue-name"),
      .queue = KZ_SLICE_LIT("q"),
      .exchange = KZ_SLICE_LIT("callmgr"),
      .key = KZ_SLICE_LIT("authn.req.example%2Ecom"),
      .content_type = KZ_SLICE_LIT("application/json"),
      .text = KZ_SLICE_LIT("NOT_FOUND - no exchange 'x'"),
      .body = KZ_SLICE_LIT("{\"a\":1}"),
  };
  return f;
}

/* The fields an op carries must survive; the others decode as zero. */
static void assert_same(enum kz_bus_wire_op op,
                        const struct kz_bus_wire_frame *a,
                        const struct kz_bus_wire_frame *b) {
  ck_assert_int_eq(a->op, b->op);
  switch (op) {
    case KZ_BUS_WIRE_HELLO:
    case KZ_BUS_WIRE_HELLO_OK:
      ck_assert_uint_eq(a->version, b->version);
      ck_assert_uint_eq(a->heartbeat_ms, b->heartbeat_ms);
      break;
    case KZ_BUS_WIRE_DECLARE_EXCHANGE:
      ck_assert_uint_eq(a->type, b->type);
      ck_assert(kz_slice_eq(a->name, b->name));
      break;
    case KZ_BUS_WIRE_DECLARE_QUEUE:
      ck_assert_uint_eq(a->flags, b->flags);
      ck_assert(kz_slice_eq(a->name, b->name));
      break;
    case KZ_BUS_WIRE_PUBLISH:
      ck_assert_uint_eq(a->publish_id, b->publish_id);
      ck_assert(kz_slice_eq(a->exchange, b->exchange));
      ck_assert(kz_slice_eq(a->key, b->key));
      ck_assert(kz_slice_eq(a->content_type, b->content_type));
      ck_assert(kz_slice_eq(a->body, b->body));
      ck_assert_uint_eq(b->consumer, 0);
      break;
    case KZ_BUS_WIRE_DELIVER:
      ck_assert_uint_eq(a->consumer, b->consumer);
      ck_assert_uint_eq(a->tag, b->tag);
      ck_assert_uint_eq(a->redelivered, b->redelivered);
      ck_assert(kz_slice_eq(a->queue, b->queue));
      ck_assert(kz_slice_eq(a->body, b->body));
      break;
    case KZ_BUS_WIRE_ERROR:
      ck_assert_uint_eq(a->code, b->code);
      ck_assert(kz_slice_eq(a->text, b->text));
      break;
    case KZ_BUS_WIRE_CONFIRM:
      ck_assert_uint_eq(a->publish_id, b->publish_id);
      ck_assert_uint_eq(a->status, b->status);
      break;
    default:
      break;
  }
}

START_TEST(test_codec_roundtrip_every_op) {
  for (int op = 1; op < KZ_BUS_WIRE_OP_COUNT; op++) {
    struct kz_bus_wire_frame f = sample((enum kz_bus_wire_op)op), g;
    struct kz_buf b;
    kz_buf_init(&b);
    ck_assert_int_eq(kz_bus_wire_encode(&b, &f), 0);
    ck_assert_str_ne(kz_bus_wire_op_name(op), "?");
    size_t used = 0;
    ck_assert_int_eq(kz_bus_wire_decode(b.data, b.len, &g, &used), 0);
    ck_assert_uint_eq(used, b.len);
    assert_same((enum kz_bus_wire_op)op, &f, &g);
    /* Every proper prefix needs more input. */
    for (size_t n = 0; n < b.len; n++)
      ck_assert_int_eq(kz_bus_wire_decode(b.data, n, &g, &used), KZ_EAGAIN);
    kz_buf_free(&b);
  }
  ck_assert_str_eq(kz_bus_wire_op_name(0), "?");
  ck_assert_str_eq(kz_bus_wire_op_name(KZ_BUS_WIRE_OP_COUNT), "?");
}
END_TEST

START_TEST(test_codec_known_bytes) {
  struct kz_bus_wire_frame f = {.op = KZ_BUS_WIRE_CONFIRM,
                                .publish_id = 0x0102,
                                .status = 1};
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_bus_wire_encode(&b, &f), 0);
  static const uint8_t want[] = {0, 0, 0, 10, 14, 0, 0, 0, 0, 0, 0, 1, 2, 1};
  ck_assert_uint_eq(b.len, sizeof want);
  ck_assert(memcmp(b.data, want, sizeof want) == 0);
  struct kz_bus_wire_frame h = {.op = KZ_BUS_WIRE_HEARTBEAT};
  kz_buf_reset(&b);
  ck_assert_int_eq(kz_bus_wire_encode(&b, &h), 0);
  static const uint8_t hb[] = {0, 0, 0, 1, 3};
  ck_assert_uint_eq(b.len, sizeof hb);
  ck_assert(memcmp(b.data, hb, sizeof hb) == 0);
  kz_buf_free(&b);
}
END_TEST

START_TEST(test_codec_stream_chunkings) {
  /* Many frames back to back, decoded from a buffer fed in random
   * chunks: the same frames come out. */
  struct kz_buf all;
  kz_buf_init(&all);
  int n = 0;
  for (int rep = 0; rep < 5; rep++)
    for (int op = 1; op < KZ_BUS_WIRE_OP_COUNT; op++, n++) {
      struct kz_bus_wire_frame f = sample((enum kz_bus_wire_op)op);
      ck_assert_int_eq(kz_bus_wire_encode(&all, &f), 0);
    }
  struct kz_prng g;
  kz_prng_seed(&g, 7);
  for (int mode = 0; mode < 3; mode++) {
    struct kz_buf rx;
    kz_buf_init(&rx);
    size_t fed = 0;
    int got = 0;
    while (fed < all.len) {
      size_t chunk = mode == 0 ? all.len
                     : mode == 1 ? 1
                                 : 1 + kz_prng_below(&g, 40);
      if (chunk > all.len - fed) chunk = all.len - fed;
      ck_assert_int_eq(kz_buf_append(&rx, all.data + fed, chunk), 0);
      fed += chunk;
      for (;;) {
        struct kz_bus_wire_frame f;
        size_t used;
        int rc = kz_bus_wire_decode(rx.data, rx.len, &f, &used);
        if (rc == KZ_EAGAIN) break;
        ck_assert_int_eq(rc, 0);
        struct kz_bus_wire_frame want =
            sample((enum kz_bus_wire_op)(got % (KZ_BUS_WIRE_OP_COUNT - 1) + 1));
        assert_same(want.op, &want, &f);
        got++;
        kz_buf_consume(&rx, used);
      }
    }
    ck_assert_int_eq(got, n);
    ck_assert_uint_eq(rx.len, 0);
    kz_buf_free(&rx);
  }
  kz_buf_free(&all);
}
END_TEST

START_TEST(test_codec_malformed) {
  struct kz_bus_wire_frame f;
  size_t used;
  /* Zero length, unknown op, fields short of or past the length, a
   * string running past the frame, an oversize declared length. */
  static const uint8_t zero[] = {0, 0, 0, 0};
  static const uint8_t unknown[] = {0, 0, 0, 1, 99};
  static const uint8_t op0[] = {0, 0, 0, 1, 0};
  static const uint8_t short_ack[] = {0, 0, 0, 5, 12, 0, 0, 0, 1};
  static const uint8_t long_hb[] = {0, 0, 0, 2, 3, 0};
  static const uint8_t str_past[] = {0, 0, 0, 4, 6, 0, 9, 'x'};
  static const uint8_t huge[] = {0x7f, 0, 0, 0, 11};
  ck_assert_int_eq(kz_bus_wire_decode(zero, sizeof zero, &f, &used), KZ_EPROTO);
  ck_assert_int_eq(kz_bus_wire_decode(unknown, sizeof unknown, &f, &used),
                   KZ_EPROTO);
  ck_assert_int_eq(kz_bus_wire_decode(op0, sizeof op0, &f, &used), KZ_EPROTO);
  ck_assert_int_eq(kz_bus_wire_decode(short_ack, sizeof short_ack, &f, &used),
                   KZ_EPROTO);
  ck_assert_int_eq(kz_bus_wire_decode(long_hb, sizeof long_hb, &f, &used),
                   KZ_EPROTO);
  ck_assert_int_eq(kz_bus_wire_decode(str_past, sizeof str_past, &f, &used),
                   KZ_EPROTO);
  ck_assert_int_eq(kz_bus_wire_decode(huge, sizeof huge, &f, &used),
                   KZ_EMSGSIZE);
  /* Encoding refuses what cannot be framed, leaving the buffer alone. */
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_buf_append_cstr(&b, "keep"), 0);
  struct kz_bus_wire_frame bad = {.op = (enum kz_bus_wire_op)0};
  ck_assert_int_eq(kz_bus_wire_encode(&b, &bad), KZ_EINVAL);
  char *big = kz_malloc(70000);
  memset(big, 'k', 70000);
  struct kz_bus_wire_frame longkey = sample(KZ_BUS_WIRE_PUBLISH);
  longkey.key = kz_slice_make(big, 70000);
  ck_assert_int_eq(kz_bus_wire_encode(&b, &longkey), KZ_ERANGE);
  ck_assert_uint_eq(b.len, 4);
  ck_assert_str_eq((const char *)b.data, "keep");
  kz_free(big);
  kz_buf_free(&b);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Backend in the simulator                                             */

/* A broker that answers HELLO and then says nothing, ever: what a
 * partition or a hung broker looks like from the client. */
struct silent {
  struct kz_listener *l;
  struct kz_stream *s[4];
  int n;
};

static void silent_data(void *arg, struct kz_stream *s, const uint8_t *d,
                        size_t len) {
  (void)arg;
  struct kz_bus_wire_frame f;
  size_t used;
  if (kz_bus_wire_decode(d, len, &f, &used) == 0 &&
      f.op == KZ_BUS_WIRE_HELLO) {
    struct kz_bus_wire_frame ok = {.op = KZ_BUS_WIRE_HELLO_OK,
                                   .version = 1,
                                   .heartbeat_ms = f.heartbeat_ms};
    struct kz_buf b;
    kz_buf_init(&b);
    kz_bus_wire_encode(&b, &ok);
    kz_stream_write(s, b.data, b.len);
    kz_buf_free(&b);
  }
}

static void silent_close(void *arg, struct kz_stream *s, int status) {
  (void)arg;
  (void)s;
  (void)status;
}

static const struct kz_stream_cbs silent_cbs = {NULL, silent_data,
                                                silent_close};

static void silent_accept(void *arg, struct kz_listener *l,
                          struct kz_stream *s) {
  struct silent *x = arg;
  (void)l;
  kz_stream_set_cbs(s, &silent_cbs, x);
  if (x->n < 4)
    x->s[x->n++] = s;
  else
    kz_stream_close(s);
}

static int silent_start(struct kz_env *env, const void *cfg, void **inst) {
  (void)cfg;
  struct silent *x = kz_calloc(1, sizeof *x);
  struct kz_addr a = kz_addr_v4(0, KZ_BUS_WIRE_PORT);
  int rc = kz_stream_listen(env, &a, silent_accept, x, &x->l);
  if (rc) {
    kz_free(x);
    return rc;
  }
  *inst = x;
  return 0;
}

static void silent_stop(void *inst) {
  struct silent *x = inst;
  for (int i = 0; i < x->n; i++) kz_stream_close(x->s[i]);
  kz_listener_close(x->l);
  kz_free(x);
}

static const struct kz_sim_app silent_app = {"silent", silent_start,
                                             silent_stop};

/* A client process: a bus over the wire backend; it records its state
 * changes with their virtual times. */
struct client {
  struct kz_sim *sim;
  const struct kz_addr *brokers;
  size_t n_brokers;
  uint64_t heartbeat_ns;
  struct kz_bus *bus;
  int n;
  enum kz_bus_state state[32];
  int index[32];
  uint64_t at[32];
  char reason[32][200];
};

static void on_state(void *arg, struct kz_bus *bus, enum kz_bus_state st,
                     int idx, const char *reason) {
  struct client *c = arg;
  (void)bus;
  if (c->n >= 32) return;
  c->state[c->n] = st;
  c->index[c->n] = idx;
  c->at[c->n] = kz_sim_now(c->sim);
  snprintf(c->reason[c->n], sizeof c->reason[0], "%s", reason ? reason : "");
  c->n++;
}

static int client_start(struct kz_env *env, const void *cfg, void **inst) {
  struct client *c = (struct client *)cfg;
  struct kz_bus_wire_cfg w = {.brokers = c->brokers,
                              .n_brokers = c->n_brokers,
                              .heartbeat_ns = c->heartbeat_ns};
  struct kz_bus_backend be;
  int rc = kz_bus_wire_new(&be, env, &w);
  if (rc) return rc;
  struct kz_bus_cfg bc = {.app_name = "t",
                          .app_version = "1",
                          .on_state = on_state,
                          .state_arg = c};
  rc = kz_bus_new(&c->bus, env, &be, &bc);
  if (rc) return rc;
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

static struct kz_sim_host *host(struct kz_sim *sim, const char *name,
                                uint32_t ip) {
  struct kz_sim_host *h;
  struct kz_addr a = kz_addr_v4(ip, 0);
  ck_assert_int_eq(kz_sim_host_add(sim, name, &a, &h), 0);
  return h;
}

START_TEST(test_silent_broker_detected_within_3_heartbeats) {
  struct kz_sim *sim;
  ck_assert_int_eq(kz_sim_new(&sim, 21), 0);
  struct kz_addr brokers[2] = {kz_addr_v4(0x0a000001, KZ_BUS_WIRE_PORT),
                               kz_addr_v4(0x0a000002, KZ_BUS_WIRE_PORT)};
  struct kz_sim_host *b0 = host(sim, "b0", 0x0a000001);
  struct kz_sim_host *b1 = host(sim, "b1", 0x0a000002);
  struct kz_sim_host *ch = host(sim, "c", 0x0a000101);
  ck_assert_int_eq(kz_sim_proc_add(b0, "silent", &silent_app, NULL, NULL), 0);
  ck_assert_int_eq(
      kz_sim_proc_add(b1, "broker", &kz_sim_broker_app, NULL, NULL), 0);
  struct client c = {.sim = sim, .brokers = brokers, .n_brokers = 2,
                     .heartbeat_ns = 200 * MS};
  ck_assert_int_eq(kz_sim_proc_add(ch, "bus", &client_app, &c, NULL), 0);
  ck_assert_int_eq(kz_sim_run_for(sim, 2 * SEC), 0);
  /* UP on the silent one, DOWN after 3 heartbeats of silence (the
   * HELLO_OK was the last thing heard, one latency after the start),
   * then UP on broker 1, where heartbeats keep it up. */
  ck_assert_int_ge(c.n, 3);
  ck_assert_int_eq(c.state[0], KZ_BUS_UP);
  ck_assert_int_eq(c.index[0], 0);
  ck_assert_int_eq(c.state[1], KZ_BUS_DOWN);
  ck_assert(strstr(c.reason[1], "heartbeat") != NULL);
  ck_assert_uint_le(c.at[1] - c.at[0], 3 * 200 * MS);
  ck_assert_uint_ge(c.at[1] - c.at[0], 3 * 200 * MS - 5 * MS);
  ck_assert_int_eq(c.state[2], KZ_BUS_UP);
  ck_assert_int_eq(c.index[2], 1);
  ck_assert_int_eq(c.n, 3);
  kz_sim_free(sim);
}
END_TEST

START_TEST(test_backoff_then_connect_and_back_around) {
  struct kz_sim *sim;
  ck_assert_int_eq(kz_sim_new(&sim, 22), 0);
  struct kz_addr brokers[2] = {kz_addr_v4(0x0a000001, KZ_BUS_WIRE_PORT),
                               kz_addr_v4(0x0a000002, KZ_BUS_WIRE_PORT)};
  struct kz_sim_host *b0 = host(sim, "b0", 0x0a000001);
  struct kz_sim_host *b1 = host(sim, "b1", 0x0a000002);
  struct kz_sim_host *ch = host(sim, "c", 0x0a000101);
  struct client c = {.sim = sim, .brokers = brokers, .n_brokers = 2,
                     .heartbeat_ns = 500 * MS};
  /* No broker anywhere: both refuse; attempts back off (50 ms doubling
   * to 5 s, one free pass over the list each round). */
  ck_assert_int_eq(kz_sim_proc_add(ch, "bus", &client_app, &c, NULL), 0);
  ck_assert_int_eq(kz_sim_run_for(sim, 10 * SEC), 0);
  struct kz_sim_stats st;
  kz_sim_stats(sim, &st);
  ck_assert_uint_ge(st.streams_refused, 10);
  ck_assert_uint_le(st.streams_refused, 24);
  ck_assert_int_eq(c.n, 0); /* never up, nothing to report */

  /* Broker 1 appears: the client finds it within the longest backoff. */
  struct kz_sim_proc *p1;
  ck_assert_int_eq(kz_sim_proc_add(b1, "broker", &kz_sim_broker_app, NULL, &p1),
                   0);
  ck_assert_int_eq(kz_sim_run_for(sim, 7 * SEC), 0);
  ck_assert_int_eq(c.n, 1);
  ck_assert_int_eq(c.index[0], 1);
  /* Broker 0 comes, broker 1 crashes: back around to 0, at once. */
  ck_assert_int_eq(kz_sim_proc_add(b0, "broker", &kz_sim_broker_app, NULL, NULL),
                   0);
  uint64_t t_crash = kz_sim_now(sim);
  ck_assert_int_eq(kz_sim_host_crash(b1), 0);
  ck_assert_int_eq(kz_sim_run_for(sim, 1 * SEC), 0);
  ck_assert_int_eq(c.n, 3);
  ck_assert_int_eq(c.state[1], KZ_BUS_DOWN);
  ck_assert_int_eq(c.state[2], KZ_BUS_UP);
  ck_assert_int_eq(c.index[2], 0);
  ck_assert_uint_lt(c.at[2] - t_crash, 20 * MS);
  kz_sim_free(sim);
}
END_TEST

/* A failover scenario with backoff (PRNG jitter), Server-IDs and Msg-IDs:
 * its trace hash. */
static uint64_t scenario_hash(uint64_t seed) {
  struct kz_sim *sim;
  ck_assert_int_eq(kz_sim_new(&sim, seed), 0);
  kz_sim_set_log_level(sim, KZ_LOG_DEBUG);
  struct kz_addr brokers[2] = {kz_addr_v4(0x0a000001, KZ_BUS_WIRE_PORT),
                               kz_addr_v4(0x0a000002, KZ_BUS_WIRE_PORT)};
  struct kz_sim_host *b0 = host(sim, "b0", 0x0a000001);
  struct kz_sim_host *b1 = host(sim, "b1", 0x0a000002);
  struct kz_sim_host *ch = host(sim, "c", 0x0a000101);
  struct client c = {.sim = sim, .brokers = brokers, .n_brokers = 2,
                     .heartbeat_ns = 300 * MS};
  ck_assert_int_eq(kz_sim_proc_add(ch, "bus", &client_app, &c, NULL), 0);
  ck_assert_int_eq(kz_sim_run_for(sim, 2 * SEC), 0);
  ck_assert_int_eq(kz_sim_proc_add(b0, "broker", &kz_sim_broker_app, NULL, NULL),
                   0);
  ck_assert_int_eq(kz_sim_proc_add(b1, "broker", &kz_sim_broker_app, NULL, NULL),
                   0);
  ck_assert_int_eq(kz_sim_run_for(sim, 3 * SEC), 0);
  ck_assert_int_eq(kz_bus_publish(c.bus, "targeted", kz_bus_server_id(c.bus),
                                  "{}", 2, NULL, NULL),
                   0);
  ck_assert_int_eq(kz_sim_host_crash(c.index[0] == 0 ? b0 : b1), 0);
  ck_assert_int_eq(kz_sim_run_for(sim, 2 * SEC), 0);
  ck_assert_int_eq(c.n, 3);
  uint64_t h = kz_sim_trace_hash(sim);
  kz_sim_free(sim);
  return h;
}

START_TEST(test_same_seed_same_trace) {
  uint64_t a = scenario_hash(31), b = scenario_hash(31), c = scenario_hash(32);
  ck_assert_uint_eq(a, b);
  ck_assert_uint_ne(a, c);
}
END_TEST

int main(void) {
  Suite *s = suite_create("bus_wire");
  tcase_add_test(kz_tcase(s, "codec_roundtrip_every_op", 10),
                 test_codec_roundtrip_every_op);
  tcase_add_test(kz_tcase(s, "codec_known_bytes", 10), test_codec_known_bytes);
  tcase_add_test(kz_tcase(s, "codec_stream_chunkings", 10),
                 test_codec_stream_chunkings);
  tcase_add_test(kz_tcase(s, "codec_malformed", 10), test_codec_malformed);
  tcase_add_test(kz_tcase(s, "silent_broker_detected_within_3_heartbeats", 10),
                 test_silent_broker_detected_within_3_heartbeats);
  tcase_add_test(kz_tcase(s, "backoff_then_connect_and_back_around", 10),
                 test_backoff_then_connect_and_back_around);
  tcase_add_test(kz_tcase(s, "same_seed_same_trace", 10),
                 test_same_seed_same_trace);
  return kz_run_suite(s);
}
