/* test_run.c — topology-driven runs: SIPp UAC vs UAS over a lossy link (all calls succeed by retransmission), faults, swarm, refusals, outputs, hooks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef KZ_HAVE_JANSSON
#include <jansson.h>
#endif

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sim_hooks.h"
#include "kz/sim_run.h"
#include "kz_test.h"

#define SEC UINT64_C(1000000000)

static char uac_path[1024], uas_path[1024];

static void paths(void) {
  kz_test_source_path(uac_path, sizeof uac_path, "scenarios/sipp/basic-call/uac.xml");
  kz_test_source_path(uas_path, sizeof uas_path, "scenarios/sipp/basic-call/uas.xml");
}

static struct kz_topo *shipped(const char *name) {
  char rel[256], p[1024];
  snprintf(rel, sizeof rel, "scenarios/topologies/%s", name);
  kz_test_source_path(p, sizeof p, rel);
  struct kz_topo *t = NULL;
  struct kz_topo_err err;
  ck_assert_msg(kz_topo_load_file(&t, p, &err) == 0, "%s", err.text);
  return t;
}

static struct kz_topo *inline_topo(const char *yaml) {
  struct kz_topo *t = NULL;
  struct kz_topo_err err;
  ck_assert_msg(kz_topo_load(&t, "inline.yaml", yaml, strlen(yaml), &err) == 0, "%s", err.text);
  return t;
}

static void rm_rf(const char *dir) {
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
}

static char *slurp(const char *dir, const char *name) {
  char p[1200];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  size_t len;
  return (char *)kz_test_read_file(p, &len);
}

/* The shipped pair over sipp-direct.yaml (2% loss each way, duplication
 * and reordering): every call succeeds, thanks to retransmissions, and
 * the outputs exist and validate. */
START_TEST(basic_call_over_lossy_link) {
  paths();
  struct kz_topo *t = shipped("sipp-direct.yaml");
  char dir[] = "/tmp/kz_run_XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  struct kz_sim_run_opts o;
  kz_sim_run_opts_init(&o);
  o.seed = 1;
  o.topology_path = "scenarios/topologies/sipp-direct.yaml";
  o.uac_path = uac_path;
  o.uas_path = uas_path;
  o.rate = 10;
  o.calls = 50;
  o.out_dir = dir;
  o.write_trace = true;
  o.write_pcap = true;
  o.summary = stdout;
  struct kz_sim_run_result res;
  int rc = kz_sim_run(t, &o, &res);
  ck_assert_msg(rc == 0, "%s", res.error);
  ck_assert_msg(res.passed, "%s", res.verdict);
  ck_assert_uint_eq(res.calls_attempted, 50);
  ck_assert_uint_eq(res.calls_succeeded, 50);
  ck_assert_uint_eq(res.calls_failed, 0);
  ck_assert_uint_eq(res.checks_failed, 0);
  ck_assert_uint_ne(res.trace_hash, 0);
  /* 50 calls at 10/s, each 1 s long plus retransmission delays. */
  ck_assert_uint_gt(res.sim_ns, 5 * SEC);
  ck_assert_uint_lt(res.sim_ns, 60 * SEC);
  ck_assert_ptr_nonnull(strstr(res.replay, " sim --topology scenarios/topologies/sipp-direct.yaml --uac "));
  ck_assert_ptr_nonnull(strstr(res.replay, " --seed 1 --rate 10 --calls 50"));

  char *json = slurp(dir, "summary.json");
  char *html = slurp(dir, "report.html");
  char *trace = slurp(dir, "trace.jsonl");
  ck_assert_ptr_nonnull(json);
  ck_assert_ptr_nonnull(html);
  ck_assert_ptr_nonnull(trace);
  char pcap[1200];
  snprintf(pcap, sizeof pcap, "%s/traffic.pcap", dir);
  struct stat st;
  ck_assert_int_eq(stat(pcap, &st), 0);
  ck_assert_int_gt(st.st_size, 24);
  ck_assert_ptr_nonnull(strstr(trace, "\"reason\":\"loss\""));
  ck_assert_uint_eq(strstr(html, "<svg ") != NULL, 1);
#ifdef KZ_HAVE_JANSSON
  json_error_t jerr;
  json_t *j = json_loads(json, 0, &jerr);
  ck_assert_msg(j != NULL, "summary.json: %s", jerr.text);
  ck_assert_int_eq(json_integer_value(json_object_get(j, "seed")), 1);
  char hash[17];
  snprintf(hash, sizeof hash, "%016llx", (unsigned long long)res.trace_hash);
  ck_assert_str_eq(json_string_value(json_object_get(j, "trace_hash")), hash);
  json_t *calls = json_object_get(j, "calls");
  ck_assert_int_eq(json_integer_value(json_object_get(calls, "attempted")), 50);
  ck_assert_int_eq(json_integer_value(json_object_get(calls, "succeeded")), 50);
  ck_assert_int_eq(json_integer_value(json_object_get(calls, "failed")), 0);
  ck_assert(json_is_true(json_object_get(j, "passed")));
  ck_assert_int_gt(json_integer_value(json_object_get(j, "events")), 500);
  ck_assert_int_gt(json_integer_value(json_object_get(json_object_get(j, "network"), "udp_lost")), 0);
  json_t *eps = json_object_get(j, "endpoints");
  ck_assert_uint_eq(json_array_size(eps), 2);
  json_t *uas = json_array_get(eps, 0), *uac = json_array_get(eps, 1);
  ck_assert_str_eq(json_string_value(json_object_get(uas, "role")), "uas");
  ck_assert_str_eq(json_string_value(json_object_get(uac, "role")), "uac");
  ck_assert_int_eq(json_integer_value(json_object_get(uas, "calls_successful")), 50);
  ck_assert_int_gt(json_integer_value(json_object_get(uac, "retransmissions")), 0);
  /* The 200 to the INVITE and the 200 to the BYE: 100 receptions at least. */
  json_t *c200 = json_object_get(json_object_get(uac, "response_codes"), "200");
  ck_assert_int_ge(json_integer_value(json_object_get(c200, "received")), 100);
  json_t *cmd0 = json_array_get(json_object_get(uac, "commands"), 0);
  ck_assert_str_eq(json_string_value(json_object_get(cmd0, "command")), ">INVITE");
  /* Every always check held; the retransmission "sometimes" was seen. */
  json_t *checks = json_object_get(j, "checks");
  ck_assert_uint_ge(json_array_size(checks), 7);
  for (size_t i = 0; i < json_array_size(checks); i++) {
    json_t *c = json_array_get(checks, i);
    ck_assert_msg(json_is_true(json_object_get(c, "ok")), "check %s", json_string_value(json_object_get(c, "name")));
  }
  json_t *series = json_object_get(j, "series");
  ck_assert_uint_eq(json_array_size(json_object_get(series, "calls_started")),
                    json_array_size(json_object_get(series, "response_ms_p99")));
  json_int_t started = 0;
  for (size_t i = 0; i < json_array_size(json_object_get(series, "calls_started")); i++)
    started += json_integer_value(json_array_get(json_object_get(series, "calls_started"), i));
  ck_assert_int_eq(started, 50);
  json_decref(j);

  /* The scenario folder's expected outcome is this run's. */
  char ep[1024];
  kz_test_source_path(ep, sizeof ep, "scenarios/sipp/basic-call/expected.json");
  json_t *ex = json_load_file(ep, 0, &jerr);
  ck_assert_ptr_nonnull(ex);
  json_t *exc = json_object_get(json_object_get(ex, "expect"), "calls");
  ck_assert_int_eq(json_integer_value(json_object_get(exc, "succeeded")), (json_int_t)res.calls_succeeded);
  ck_assert_int_eq(json_integer_value(json_object_get(exc, "failed")), (json_int_t)res.calls_failed);
  json_decref(ex);
#endif
  if (system("command -v xmllint >/dev/null 2>&1") == 0) {
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "xmllint --noout '%s/report.html'", dir);
    ck_assert_int_eq(system(cmd), 0);
  }
  free(json);
  free(html);
  free(trace);
  rm_rf(dir);
  kz_topo_free(t);
}
END_TEST

/* SIPp's own default scenarios (from the shared corpus) over a link that
 * loses and duplicates datagrams but keeps their order: sipp's uas.xml
 * answers 200 right after 180, so a jittered link could deliver the 180
 * late, which SIPp rejects as unexpected (basic-call rings 200 ms first). */
START_TEST(corpus_uac_uas_over_lossy_link) {
  char uac[1024], uas[1024];
  kz_test_shared_path(uac, sizeof uac, "corpora/sipp/sipp__uac.xml");
  kz_test_shared_path(uas, sizeof uas, "corpora/sipp/sipp__uas.xml");
  if (access(uac, R_OK) || access(uas, R_OK)) return; /* corpus absent: skip */
  struct kz_topo *t = inline_topo("hosts:\n"
                                  "  - {name: uac, address: 10.0.1.1, roles: [sipp-uac]}\n"
                                  "  - {name: uas, address: 10.0.2.1, roles: [sipp-uas]}\n"
                                  "links:\n  default: {latency: 10ms, loss: 3%}\n");
  struct kz_sim_run_opts o;
  kz_sim_run_opts_init(&o);
  o.seed = 11;
  o.uac_path = uac;
  o.uas_path = uas;
  o.rate = 20;
  o.calls = 100;
  struct kz_sipp_key keys[] = {{"domain", "example.com"}};
  o.keys = keys;
  o.nkeys = 1;
  struct kz_sim_run_result res;
  ck_assert_msg(kz_sim_run(t, &o, &res) == 0, "%s", res.error);
  ck_assert_msg(res.passed, "%s", res.verdict);
  ck_assert_uint_eq(res.calls_succeeded, 100);
  kz_topo_free(t);
}
END_TEST

/* A 2 s partition in the middle of the calls: retransmissions carry the
 * calls across it. */
START_TEST(partition_healed_by_retransmission) {
  paths();
  struct kz_topo *t = inline_topo("hosts:\n"
                                  "  - {name: uac, address: 10.0.1.1, roles: [sipp-uac]}\n"
                                  "  - {name: uas, address: 10.0.2.1, roles: [sipp-uas]}\n"
                                  "links:\n  default: {latency: 5ms, jitter: 1ms}\n"
                                  "faults:\n"
                                  "  - partition: {a: [uac], b: [uas]}\n    from: 1500ms\n    to: 3500ms\n");
  struct kz_sim_run_opts o;
  kz_sim_run_opts_init(&o);
  o.seed = 5;
  o.uac_path = uac_path;
  o.uas_path = uas_path;
  o.rate = 10;
  o.calls = 40;
  struct kz_sim_run_result res;
  ck_assert_msg(kz_sim_run(t, &o, &res) == 0, "%s", res.error);
  ck_assert_msg(res.passed, "%s", res.verdict);
  ck_assert_uint_eq(res.calls_succeeded, 40);
  kz_topo_free(t);
}
END_TEST

/* The UAS host crashes and restarts: calls in flight fail (allowed here),
 * but every call still ends and every check holds. */
START_TEST(crash_and_restart) {
  paths();
  struct kz_topo *t = inline_topo("hosts:\n"
                                  "  - {name: uac, address: 10.0.1.1, roles: [sipp-uac]}\n"
                                  "  - {name: uas, address: 10.0.2.1, roles: [sipp-uas]}\n"
                                  "faults:\n"
                                  "  - crash: uas\n    at: 2s\n    restart: 4s\n");
  struct kz_sim_run_opts o;
  kz_sim_run_opts_init(&o);
  o.seed = 6;
  o.uac_path = uac_path;
  o.uas_path = uas_path;
  o.rate = 10;
  o.calls = 60;
  o.allow_failed_calls = true;
  o.call_timeout_ms = 20000; /* calls whose UAS died after its 180 wait for a 200 that never comes */
  struct kz_sim_run_result res;
  ck_assert_msg(kz_sim_run(t, &o, &res) == 0, "%s", res.error);
  ck_assert_msg(res.passed, "%s", res.verdict);
  ck_assert_uint_eq(res.checks_failed, 0);
  ck_assert_uint_eq(res.calls_attempted, 60);
  ck_assert_uint_gt(res.calls_failed, 0);
  ck_assert_uint_gt(res.calls_succeeded, 30);
  ck_assert_ptr_nonnull(strstr(res.verdict, "(allowed)"));
  /* Without the allowance the same run fails and says how to replay it. */
  o.allow_failed_calls = false;
  ck_assert_int_eq(kz_sim_run(t, &o, &res), 0);
  ck_assert(!res.passed);
  ck_assert_ptr_nonnull(strstr(res.verdict, "calls failed"));
  ck_assert_ptr_nonnull(strstr(res.replay, "--seed 6 --rate 10 --calls 60 --call-timeout 20.000"));
  /* Without the call timeout, calls stuck after the crash never end: the
   * run's own check says so. */
  o.call_timeout_ms = 0;
  o.allow_failed_calls = true;
  ck_assert_int_eq(kz_sim_run(t, &o, &res), 0);
  ck_assert(!res.passed);
  ck_assert_str_eq(res.verdict, "1 check failed, first: every SIPp call ended");
  kz_topo_free(t);
}
END_TEST

/* Roles that are not built are refused by name and place. */
START_TEST(unbuilt_roles_refused) {
  paths();
  struct kz_topo *t = shipped("simple.yaml");
  struct kz_topo_err err;
  ck_assert_int_eq(kz_sim_run_check_roles(t, &err), KZ_ENOTSUP);
  ck_assert_str_eq(err.text, "simple.yaml:17:13: role 'media' is not built yet in this kz (the media role "
                             "(impl/roles/media, FreeSWITCH's part) is not written yet)");
  struct kz_sim_run_opts o;
  kz_sim_run_opts_init(&o);
  o.uac_path = uac_path;
  o.uas_path = uas_path;
  struct kz_sim_run_result res;
  ck_assert_int_eq(kz_sim_run(t, &o, &res), KZ_ENOTSUP);
  ck_assert_str_eq(res.error, err.text);
  kz_topo_free(t);
  t = shipped("two-server.yaml");
  ck_assert_int_eq(kz_sim_run_check_roles(t, &err), KZ_ENOTSUP);
  /* proxy, apps, db and broker are built (sim/run/roles.c); media is the first that is not. */
  ck_assert_ptr_nonnull(strstr(err.text, "two-server.yaml:20:20: role 'media' is not built yet in this kz"));
  kz_topo_free(t);
  t = shipped("sipp-direct.yaml");
  ck_assert_int_eq(kz_sim_run_check_roles(t, &err), 0);
  kz_topo_free(t);
  /* The table knows every role; media and ecallmgr are not built yet. */
  for (int r = 0; r < KZ_TOPO_ROLE_COUNT; r++) {
    const struct kz_sim_run_role *row = kz_sim_run_role_get((enum kz_topo_role)r);
    ck_assert_ptr_nonnull(row);
    ck_assert_int_eq(row->role, r);
    ck_assert(row->app != NULL || row->missing != NULL);
  }
}
END_TEST

START_TEST(setup_errors) {
  paths();
  struct kz_sim_run_opts o;
  kz_sim_run_opts_init(&o);
  o.uac_path = uac_path;
  o.uas_path = uas_path;
  struct kz_sim_run_result res;
  struct kz_topo *t = inline_topo("hosts:\n  - {name: uas, address: 10.0.2.1, roles: [sipp-uas]}\n");
  ck_assert_int_eq(kz_sim_run(t, &o, &res), KZ_EINVAL);
  ck_assert_str_eq(res.error, "inline.yaml has no sipp-uac host: nothing would place calls");
  kz_topo_free(t);
  t = inline_topo("hosts:\n  - {name: a, address: 10.0.1.1, roles: [sipp-uac]}\n"
                  "  - {name: b, address: 10.0.2.1, roles: [sipp-uas]}\n"
                  "links:\n  default:\n    jitter: 1ms\n    distribution: pareto\n");
  ck_assert_int_eq(kz_sim_run(t, &o, &res), KZ_ENOTSUP);
  ck_assert_str_eq(res.error, "inline.yaml:7:19: distribution 'pareto' is not modelled by the simulator yet "
                              "(only 'uniform': latency plus uniform [0, jitter])");
  kz_topo_free(t);
  t = inline_topo("hosts:\n  - {name: a, address: 10.0.1.1, roles: [sipp-uac]}\n"
                  "  - {name: b, address: 10.0.2.1, roles: [sipp-uas]}\n");
  o.uac_path = "/nonexistent/uac.xml";
  ck_assert_int_eq(kz_sim_run(t, &o, &res), KZ_EIO);
  ck_assert_str_eq(res.error, "cannot read uac /nonexistent/uac.xml: No such file or directory");
  o.uac_path = uas_path; /* loads, but a UAS scenario placing calls is refused by the engine or fails */
  o.uac_path = uac_path;
  o.inf_path = "/nonexistent/x.csv";
  ck_assert_int_eq(kz_sim_run(t, &o, &res), KZ_EIO);
  kz_topo_free(t);
}
END_TEST

/* The command line: parsing, a swarm run, --check-determinism. */
START_TEST(cli) {
  paths();
  struct kz_sim_run_args a;
  char err[256];
  /* No --topology: the shipped sipp-direct topology is the default. */
  char *dflt[] = {"sim", "--uac", "x"};
  ck_assert_int_eq(kz_sim_run_parse_args(3, dflt, &a, err, sizeof err), 0);
  ck_assert_ptr_nonnull(strstr(a.topology, "scenarios/topologies/sipp-direct.yaml"));
  ck_assert(!a.opts.write_trace && !a.opts.write_pcap); /* no --out: nothing to write */
  char *bad1[] = {"sim", "--pcap"};
  ck_assert_int_eq(kz_sim_run_parse_args(2, bad1, &a, err, sizeof err), KZ_EINVAL);
  ck_assert_str_eq(err, "--trace and --pcap need --out DIR");
  char *outs[] = {"sim", "--out", "d", "--no-pcap"};
  ck_assert_int_eq(kz_sim_run_parse_args(4, outs, &a, err, sizeof err), 0);
  ck_assert(a.opts.write_trace && !a.opts.write_pcap); /* --out: trace and pcap unless refused */
  char *bad2[] = {"sim", "--topology", "t.yaml", "--frobnicate"};
  ck_assert_int_eq(kz_sim_run_parse_args(4, bad2, &a, err, sizeof err), KZ_EINVAL);
  ck_assert_str_eq(err, "unknown option '--frobnicate'");
  char *bad3[] = {"sim", "--topology", "t.yaml", "--rate", "fast"};
  ck_assert_int_eq(kz_sim_run_parse_args(5, bad3, &a, err, sizeof err), KZ_EINVAL);
  ck_assert_str_eq(err, "--rate: 'fast' is not a rate from 1 to 1000000");
  char *good[] = {"sim", "--topology", "t.yaml", "--seed", "0x10", "--swarm", "--key", "domain", "x.org",
                  "--duration", "2.5", "--trace", "--out", "d"};
  ck_assert_int_eq(kz_sim_run_parse_args(14, good, &a, err, sizeof err), 0);
  ck_assert_uint_eq(a.opts.seed, 16);
  ck_assert(a.seed_given);
  ck_assert(a.opts.swarm && a.opts.buggify && a.opts.allow_failed_calls);
  ck_assert_uint_eq(a.opts.nkeys, 1);
  ck_assert_str_eq(a.opts.keys[0].value, "x.org");
  ck_assert_uint_eq(a.opts.duration_ns, 2500000000u);

  char topo[1024], dir[] = "/tmp/kz_cli_XXXXXX";
  kz_test_source_path(topo, sizeof topo, "scenarios/topologies/sipp-direct.yaml");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char *argv[] = {"sim", "--topology", topo, "--uac", uac_path, "--uas", uas_path, "--seed", "3", "--swarm",
                  "--quiet", "--out", dir, "--check-determinism"};
  int status = kz_sim_run_cli(14, argv);
  ck_assert_int_eq(status, 0);
  char *json = slurp(dir, "summary.json");
  ck_assert_ptr_nonnull(json);
  ck_assert_ptr_nonnull(strstr(json, "\"swarm link\": \"latency "));
  ck_assert_ptr_nonnull(strstr(json, "\"buggify\": \"on\""));
  free(json);
  rm_rf(dir);
  char *missing[] = {"sim", "--topology", "/nonexistent.yaml", "--quiet"};
  ck_assert_int_eq(kz_sim_run_cli(4, missing), 2);
}
END_TEST

/* Hooks: outside a run nothing happens; inside, checks count and
 * buggify fires deterministically for registered envs only. */
START_TEST(hooks) {
  struct kz_env env, other;
  memset(&env, 0, sizeof env);
  memset(&other, 0, sizeof other);
  ck_assert(!kz_buggify(&env, "x"));
  kz_sim_check_always(false, "ignored outside a run");
  struct kz_sim_hooks *h = NULL;
  ck_assert_int_eq(kz_sim_hooks_begin(&h, 77, true, NULL, NULL), 0);
  struct kz_sim_hooks *h2 = NULL;
  ck_assert_int_eq(kz_sim_hooks_begin(&h2, 1, true, NULL, NULL), KZ_EBUSY);
  ck_assert_int_eq(kz_sim_hooks_env_add(h, &env), 0);
  unsigned fired[8] = {0};
  for (int i = 0; i < 2000; i++) {
    char name[16];
    for (int s = 0; s < 8; s++) {
      snprintf(name, sizeof name, "site%d", s);
      fired[s] += kz_buggify(&env, name);
    }
    ck_assert(!kz_buggify(&other, "site0")); /* not a simulated process */
  }
  ck_assert_uint_eq(kz_sim_hooks_site_count(h), 8);
  unsigned enabled = 0;
  for (size_t s = 0; s < 8; s++) {
    const struct kz_sim_hooks_site *site = kz_sim_hooks_site_at(h, s);
    ck_assert_uint_eq(site->evaluations, 2000);
    ck_assert_uint_eq(site->fired, fired[s]);
    if (site->enabled) {
      enabled++;
      ck_assert_msg(fired[s] > 50 && fired[s] < 160, "site %zu fired %u of 2000", s, fired[s]);
    } else {
      ck_assert_uint_eq(fired[s], 0);
    }
  }
  ck_assert_uint_gt(enabled, 0);
  ck_assert_uint_lt(enabled, 8);
  kz_sim_check_always(true, "a");
  kz_sim_check_always(false, "a");
  kz_sim_check_sometimes(false, "b");
  kz_sim_check_sometimes(true, "b");
  size_t n;
  const struct kz_sim_hooks_check *c = kz_sim_hooks_checks(h, &n);
  ck_assert_uint_eq(n, 2);
  ck_assert_str_eq(c[0].name, "a");
  ck_assert_uint_eq(c[0].evaluations, 2);
  ck_assert_uint_eq(c[0].true_count, 1);
  ck_assert_uint_eq(c[0].first_false_ns, 0);
  ck_assert(!c[1].always);
  ck_assert_uint_eq(c[1].true_count, 1);
  ck_assert_uint_eq(kz_sim_hooks_failed(h), 1);
  kz_sim_hooks_env_remove(h, &env);
  ck_assert(!kz_buggify(&env, "site0"));
  kz_sim_hooks_end(h);
  /* Same seed, same enabled sites. */
  ck_assert_int_eq(kz_sim_hooks_begin(&h, 77, true, NULL, NULL), 0);
  ck_assert_int_eq(kz_sim_hooks_env_add(h, &env), 0);
  unsigned again = 0;
  for (int i = 0; i < 2000; i++) again += kz_buggify(&env, "site3");
  ck_assert_uint_eq(again, fired[3]);
  kz_sim_hooks_end(h);
  /* Buggify off: never fires. */
  ck_assert_int_eq(kz_sim_hooks_begin(&h, 77, false, NULL, NULL), 0);
  ck_assert_int_eq(kz_sim_hooks_env_add(h, &env), 0);
  for (int i = 0; i < 200; i++) ck_assert(!kz_buggify(&env, "site3"));
  kz_sim_hooks_end(h);
}
END_TEST

int main(void) {
  Suite *s = suite_create("sim_run");
  TCase *tc = kz_tcase(s, "runs", 240);
  tcase_add_test(tc, basic_call_over_lossy_link);
  tcase_add_test(tc, corpus_uac_uas_over_lossy_link);
  tcase_add_test(tc, partition_healed_by_retransmission);
  tcase_add_test(tc, crash_and_restart);
  tc = kz_tcase(s, "setup", 60);
  tcase_add_test(tc, unbuilt_roles_refused);
  tcase_add_test(tc, setup_errors);
  tcase_add_test(tc, cli);
  tcase_add_test(tc, hooks);
  return kz_run_suite(s);
}
