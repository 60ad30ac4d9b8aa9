/* test_run_determinism.c — the same seed gives the same trace hash and the same summary.json (but wall time); another seed does not. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sim_run.h"
#include "kz_test.h"

/* summary.json without its wall_seconds line. */
static char *summary(const char *dir) {
  char p[1200];
  snprintf(p, sizeof p, "%s/summary.json", dir);
  size_t len;
  char *s = (char *)kz_test_read_file(p, &len);
  ck_assert_ptr_nonnull(s);
  char *w = strstr(s, "  \"wall_seconds\":");
  ck_assert_ptr_nonnull(w);
  char *eol = strchr(w, '\n');
  memmove(w, eol + 1, strlen(eol + 1) + 1);
  return s;
}

static uint64_t run_once(const char *topo_file, uint64_t seed, bool swarm, const char *dir, char **json) {
  char topo[1024], uac[1024], uas[1024], rel[256];
  snprintf(rel, sizeof rel, "scenarios/topologies/%s", topo_file);
  kz_test_source_path(topo, sizeof topo, rel);
  kz_test_source_path(uac, sizeof uac, "scenarios/sipp/basic-call/uac.xml");
  kz_test_source_path(uas, sizeof uas, "scenarios/sipp/basic-call/uas.xml");
  struct kz_topo *t = NULL;
  struct kz_topo_err err;
  ck_assert_msg(kz_topo_load_file(&t, topo, &err) == 0, "%s", err.text);
  struct kz_sim_run_opts o;
  kz_sim_run_opts_init(&o);
  o.seed = seed;
  o.topology_path = topo;
  o.uac_path = uac;
  o.uas_path = uas;
  o.rate = 20;
  o.calls = 40;
  o.swarm = swarm;
  o.buggify = swarm;
  o.allow_failed_calls = swarm;
  o.out_dir = dir;
  struct kz_sim_run_result res;
  ck_assert_msg(kz_sim_run(t, &o, &res) == 0, "%s", res.error);
  ck_assert_msg(res.passed, "%s", res.verdict);
  kz_topo_free(t);
  *json = summary(dir);
  return res.trace_hash;
}

static void same_seed_same_outputs(bool swarm) {
  char dir[] = "/tmp/kz_det_XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char *a, *b, *c;
  uint64_t h1 = run_once("sipp-direct.yaml", 21, swarm, dir, &a);
  uint64_t h2 = run_once("sipp-direct.yaml", 21, swarm, dir, &b);
  uint64_t h3 = run_once("sipp-direct.yaml", 22, swarm, dir, &c);
  ck_assert_uint_eq(h1, h2);
  ck_assert_str_eq(a, b);
  ck_assert_uint_ne(h1, h3);
  ck_assert_str_ne(a, c);
  free(a);
  free(b);
  free(c);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
}

START_TEST(lossy_link_same_seed) { same_seed_same_outputs(false); }
END_TEST

START_TEST(swarm_same_seed) { same_seed_same_outputs(true); }
END_TEST

int main(void) {
  Suite *s = suite_create("sim_run_determinism");
  TCase *tc = kz_tcase(s, "determinism", 240);
  tcase_add_test(tc, lossy_link_same_seed);
  tcase_add_test(tc, swarm_same_seed);
  return kz_run_suite(s);
}
