/* test_crash.c — durability of acknowledged writes while the simulator crashes the db host at random times. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_harness.h"
#include "kz/error.h"
#include "kz/prng.h"
#include "kz_test.h"

#define MS UINT64_C(1000000)
#define NDOCS 400
#define RUN_NS (700 * MS)

/* What the client knows about each document it wrote. */
struct doc_state {
  bool exists;       /* some write was acknowledged */
  bool certain;      /* the last write sent was acknowledged */
  char rev[128];     /* the last acknowledged revision */
  int version;       /* the body version of that revision */
};

struct crash_ctx {
  struct th *th;
  struct kz_prng g;
  int crashes, restarts;
};

static void restart_cb(struct kz_sim *sim, void *arg) {
  (void)sim;
  struct crash_ctx *x = arg;
  if (!kz_sim_host_is_up(x->th->dbh) && kz_sim_host_restart(x->th->dbh) == 0) x->restarts++;
}

static void crash_cb(struct kz_sim *sim, void *arg) {
  struct crash_ctx *x = arg;
  if (!kz_sim_host_is_up(x->th->dbh)) return;
  ck_assert_int_eq(kz_sim_host_crash(x->th->dbh), 0);
  x->crashes++;
  uint64_t down = kz_prng_range(&x->g, 1 * MS, 150 * MS);
  ck_assert_int_eq(kz_sim_at(sim, kz_sim_now(sim) + down, restart_cb, x), 0);
}

START_TEST(test_acked_writes_survive_crashes) {
  uint64_t seed = 1000 + (uint64_t)_i;
  struct th th;
  th_init(&th, seed, NULL);
  ck_assert_int_eq(kz_sim_host_set_crash_mode(th.dbh, _i % 2 ? KZ_SIM_CRASH_TORN : KZ_SIM_CRASH_REVERT), 0);
  struct crash_ctx x = {.th = &th};
  kz_prng_derive(&x.g, seed, "crash-test");
  /* Crash times come from the seed. */
  int n = 2 + (int)kz_prng_below(&x.g, 4);
  for (int i = 0; i < n; i++)
    ck_assert_int_eq(kz_sim_at(th.sim, kz_prng_range(&x.g, 5 * MS, RUN_NS - 100 * MS), crash_cb, &x), 0);

  static struct doc_state docs[NDOCS];
  memset(docs, 0, sizeof docs);
  int created = 0, acked = 0, lost = 0;
  bool have_db = false;
  /* Crashes all fall inside RUN_NS; writing on past it (crash-free)
   * until 50 writes were acknowledged keeps the check meaningful for
   * seeds whose crashes cluster — a client blind for a connect timeout
   * after each one can otherwise get only a couple of dozen through. */
  while (kz_sim_now(th.sim) < RUN_NS || (acked < 50 && kz_sim_now(th.sim) < 3 * RUN_NS)) {
    if (!have_db) {
      struct th_resp *r = th_req(&th, "PUT", "/crash", NULL);
      if (r) {
        ck_assert_msg(r->status == 201 || r->status == 412, "PUT /crash: %d", r->status);
        have_db = true;
      } else {
        kz_sim_run_for(th.sim, 5 * MS);
      }
      continue;
    }
    /* Pick: a new document, or an update of one whose rev we know. */
    int k = -1;
    if (created > 0 && kz_prng_below(&x.g, 100) < 35) {
      int cand = (int)kz_prng_below(&x.g, (uint64_t)created);
      if (docs[cand].certain) k = cand;
    }
    if (k < 0) {
      if (created == NDOCS) break;
      k = created++;
    }
    struct doc_state *d = &docs[k];
    char target[64], body[512], pad[17];
    kz_prng_hex(&x.g, pad, 16);
    pad[16] = 0;
    int version = d->version + 1;
    snprintf(target, sizeof target, "/crash/d%d", k);
    if (d->exists)
      snprintf(body, sizeof body, "{\"_rev\":\"%s\",\"k\":%d,\"v\":%d,\"pad\":\"%s\"}", d->rev, k, version, pad);
    else
      snprintf(body, sizeof body, "{\"k\":%d,\"v\":%d,\"pad\":\"%s\"}", k, version, pad);
    struct th_resp *r = th_req(&th, "PUT", target, body);
    if (!r) {
      /* No answer: the write may or may not have happened. */
      d->certain = false;
      lost++;
      kz_sim_run_for(th.sim, 2 * MS);
      continue;
    }
    if (r->status == 409 && !d->certain) continue;
    ck_assert_msg(r->status == 201, "seed %llu: PUT %s: %d %.*s", (unsigned long long)seed, target,
                  r->status, (int)r->body.len, (const char *)r->body.data);
    d->exists = d->certain = true;
    d->version = version;
    snprintf(d->rev, sizeof d->rev, "%s", th_str(r, "rev"));
    acked++;
  }
  /* Let the host come back, then check every acknowledged write. */
  kz_sim_run_for(th.sim, 300 * MS);
  if (!kz_sim_host_is_up(th.dbh)) ck_assert_int_eq(kz_sim_host_restart(th.dbh), 0);
  kz_sim_run_for(th.sim, 10 * MS);
  ck_assert_int_ge(x.crashes, 1);
  ck_assert_int_ge(acked, 50);
  for (int k = 0; k < created; k++) {
    struct doc_state *d = &docs[k];
    if (!d->exists) continue;
    char target[200];
    snprintf(target, sizeof target, "/crash/d%d?rev=%s", k, d->rev);
    struct th_resp *r = th_req(&th, "GET", target, NULL);
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(r->status == 200, "seed %llu: acknowledged d%d rev %s lost (%d)", (unsigned long long)seed, k,
                  d->rev, r->status);
    ck_assert_int_eq(th_int(r, "v"), d->version);
    if (d->certain) {
      snprintf(target, sizeof target, "/crash/d%d", k);
      r = th_req(&th, "GET", target, NULL);
      ck_assert_ptr_nonnull(r);
      ck_assert_str_eq(th_str(r, "_rev"), d->rev);
    }
  }
  /* The database is consistent: counts agree with what is readable. */
  struct th_resp *r = th_req(&th, "GET", "/crash/_all_docs", NULL);
  ck_assert_ptr_nonnull(r);
  ck_assert_int_ge((int)json_array_size(json_object_get(r->json, "rows")), acked > 0 ? 1 : 0);
  if (getenv("KZ_DB_CRASH_VERBOSE")) fprintf(stderr, "seed %llu: created %d acked %d lost %d crashes %d now %llu\n", (unsigned long long)seed, created, acked, lost, x.crashes, (unsigned long long)kz_sim_now(th.sim));
  th_free(&th);
}
END_TEST

static Suite *crash_suite(void) {
  Suite *s = suite_create("db-crash");
  TCase *tc = kz_tcase(s, "crash", 60);
  tcase_add_loop_test(tc, test_acked_writes_survive_crashes, 0, 50);
  return s;
}

int main(void) { return kz_run_suite(crash_suite()); }
