/* fuzz_db_sim.c — libFuzzer target: the db role (HTTP, CouchDB API, Mango, views, SQLite through the simulator's storage) in the simulator, fed fuzzed HTTP requests over several connections; it must never crash, leak, or stop answering. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz_fuzz.h"

#include "kz/db.h"
#include "kz/env.h"
#include "kz/error.h"
#include "kz/sim.h"

#define MS UINT64_C(1000000)
#define DB_IP 0x0a000001u     /* 10.0.0.1 */
#define CLIENT_IP 0x0a000002u /* 10.0.0.2 */
#define NCONN 3

/* The input is a list of chunks separated by the two bytes FF FE.  Each
 * chunk's first byte says where it goes: bits 0-1 one of NCONN
 * connections (3: close that connection's predecessor first, then use
 * connection 0), bits 2-7 a delay in ms before it is written.  After the
 * last chunk the client opens a fresh connection and asks GET /: the db
 * must answer 200. */
struct client_cfg {
  const uint8_t *data;
  size_t size;
};

struct client {
  struct kz_env *env;
  const struct client_cfg *cfg;
  struct kz_stream *s[NCONN];
  struct kz_stream *probe;
  struct kz_timer timer;
  size_t pos;
  char probe_reply[16]; /* the status line's start */
  size_t probe_len;
};

static void c_connect(void *arg, struct kz_stream *s) { (void)arg, (void)s; }
static void c_data(void *arg, struct kz_stream *s, const uint8_t *d, size_t n) {
  struct client *c = arg;
  if (s != c->probe) return; /* answers to fuzzed requests: any is fine */
  size_t k = sizeof c->probe_reply - 1 - c->probe_len;
  if (n < k) k = n;
  memcpy(c->probe_reply + c->probe_len, d, k);
  c->probe_len += k;
}
static void c_close(void *arg, struct kz_stream *s, int status) {
  (void)status;
  struct client *c = arg;
  for (int i = 0; i < NCONN; i++)
    if (c->s[i] == s) {
      kz_stream_close(s);
      c->s[i] = NULL;
    }
}
static const struct kz_stream_cbs cbs = {c_connect, c_data, c_close};

static void next_chunk(void *arg) {
  struct client *c = arg;
  const uint8_t *d = c->cfg->data;
  size_t n = c->cfg->size;
  struct kz_addr db = kz_addr_v4(DB_IP, 5984);
  size_t start, clen;
  while (kz_fuzz_next_chunk(d, n, &c->pos, &start, &clen)) {
    if (clen == 0) continue;
    uint8_t ctl = d[start];
    int k = ctl & 3;
    if (k == 3) {
      kz_stream_close(c->s[0]);
      c->s[0] = NULL;
      k = 0;
    }
    if (!c->s[k] && kz_stream_connect(c->env, &db, &cbs, c, &c->s[k]) != 0) c->s[k] = NULL;
    if (c->s[k]) (void)kz_stream_write(c->s[k], d + start + 1, clen - 1);
    (void)kz_timer_start(&c->timer, (uint64_t)(ctl >> 2) * MS);
    return;
  }
  if (!c->probe) {
    static const char get[] = "GET / HTTP/1.1\r\nHost: db\r\n\r\n";
    if (kz_stream_connect(c->env, &db, &cbs, c, &c->probe) == 0) (void)kz_stream_write(c->probe, get, sizeof get - 1);
  }
}

static int client_start(struct kz_env *env, const void *cfg, void **out) {
  struct client *c = calloc(1, sizeof *c);
  if (!c) return KZ_ENOMEM;
  c->env = env;
  c->cfg = cfg;
  kz_timer_init(&c->timer, env, next_chunk, c);
  (void)kz_timer_start(&c->timer, 10 * MS);
  *out = c;
  return 0;
}

static void client_stop(void *inst) {
  struct client *c = inst;
  kz_timer_stop(&c->timer);
  for (int i = 0; i < NCONN; i++) kz_stream_close(c->s[i]);
  kz_stream_close(c->probe);
  free(c);
}

static const struct kz_sim_app client_app = {"fuzz-client", client_start, client_stop};
static const struct kz_sim_app db_app = {"db", kz_db_app_start, kz_db_app_stop};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 256 * 1024) return 0;
  struct kz_sim *sim = NULL;
  KZ_FUZZ_CHECK(kz_sim_new(&sim, 1) == 0);
  struct kz_addr da = kz_addr_v4(DB_IP, 0), ca = kz_addr_v4(CLIENT_IP, 0);
  struct kz_sim_host *hd, *hc;
  KZ_FUZZ_CHECK(kz_sim_host_add(sim, "db", &da, &hd) == 0);
  KZ_FUZZ_CHECK(kz_sim_host_add(sim, "client", &ca, &hc) == 0);
  struct kz_db_cfg cfg = {.listen = kz_addr_v4(DB_IP, 5984), .max_body = 1 << 20,
                          .changes_timeout_ns = 2000 * MS};
  struct client_cfg cc = {data, size};
  struct kz_sim_proc *db = NULL, *cl = NULL;
  KZ_FUZZ_CHECK(kz_sim_proc_add(hd, "db", &db_app, &cfg, &db) == 0);
  KZ_FUZZ_CHECK(kz_sim_proc_add(hc, "client", &client_app, &cc, &cl) == 0);
  /* Chunks are at most 63 ms apart; longpolls end within 2 s. */
  uint64_t chunks = 1;
  for (size_t i = 0; i + 1 < size; i++) chunks += data[i] == 0xff && data[i + 1] == 0xfe;
  uint64_t budget = 5000 * MS + chunks * 64 * MS;
  KZ_FUZZ_CHECK(kz_sim_run_for(sim, budget) == 0);
  KZ_FUZZ_CHECK(kz_sim_proc_is_running(db));
  struct client *c = kz_sim_proc_instance(cl);
  KZ_FUZZ_CHECK(c->probe_len >= 12 && memcmp(c->probe_reply, "HTTP/1.1 200", 12) == 0);
  if (getenv("KZ_FUZZ_VERBOSE")) { /* what an input reached, for growing the seed corpus */
    const struct kz_db_stats *st = kz_db_stats(kz_sim_proc_instance(db));
    fprintf(stderr, "connections %llu requests %llu 4xx %llu 5xx %llu commits %llu longpolls %llu\n",
            (unsigned long long)st->connections, (unsigned long long)st->requests,
            (unsigned long long)st->errors_4xx, (unsigned long long)st->errors_5xx,
            (unsigned long long)st->commits, (unsigned long long)st->longpolls);
  }
  kz_sim_free(sim);
  return 0;
}
