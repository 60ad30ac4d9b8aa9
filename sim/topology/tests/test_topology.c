/* test_topology.c — the shipped topology files load with the right content; ~30 broken variants give their exact file:line:column message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/topology.h"
#include "kz_test.h"

#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)

static struct kz_topo *load_shipped(const char *name) {
  char rel[256], path[1024];
  snprintf(rel, sizeof rel, "scenarios/topologies/%s", name);
  kz_test_source_path(path, sizeof path, rel);
  struct kz_topo *t = NULL;
  struct kz_topo_err err;
  int rc = kz_topo_load_file(&t, path, &err);
  ck_assert_msg(rc == 0, "%s: %s", name, err.text);
  ck_assert_str_eq(t->file, name);
  return t;
}

static const struct kz_topo_host *host(const struct kz_topo *t, const char *name) {
  long i = kz_topo_host_index(t, name);
  ck_assert_msg(i >= 0, "no host %s", name);
  return &t->hosts[i];
}

#define ROLE(r) (1u << KZ_TOPO_##r)

START_TEST(simple_loads) {
  struct kz_topo *t = load_shipped("simple.yaml");
  ck_assert_str_eq(t->name, "simple");
  ck_assert_uint_eq(t->nhosts, 3);
  const struct kz_topo_host *kz1 = host(t, "kz1");
  ck_assert_uint_eq(kz1->roles, ROLE(MEDIA) | ROLE(ECALLMGR) | ROLE(APPS) | ROLE(DB) | ROLE(BROKER));
  ck_assert(!(kz1->roles & ROLE(PROXY))); /* media is the registrar */
  ck_assert_uint_eq(kz1->cores, 4);
  ck_assert_uint_eq(kz_addr_v4_host(&kz1->addr), 0x0a00000a);
  ck_assert_uint_eq(host(t, "uac")->roles, ROLE(SIPP_UAC));
  ck_assert_uint_eq(host(t, "uac")->cores, 2);
  ck_assert_uint_eq(host(t, "uas")->roles, ROLE(SIPP_UAS));
  ck_assert_uint_eq(t->default_link.latency_ns, 500000);
  ck_assert_uint_eq(t->default_link.jitter_ns, 100000);
  ck_assert_uint_eq(t->npaths, 2);
  ck_assert_uint_eq(t->nfaults, 0);
  /* Path uac <-> kz1 overrides the default, both ways; uac -> uas does not. */
  struct kz_topo_link l;
  size_t uac = (size_t)kz_topo_host_index(t, "uac"), k = (size_t)kz_topo_host_index(t, "kz1"),
         uas = (size_t)kz_topo_host_index(t, "uas");
  kz_topo_path_link(t, k, uac, &l);
  ck_assert_uint_eq(l.latency_ns, 20 * MS);
  ck_assert_uint_eq(l.jitter_ns, 5 * MS);
  ck_assert_uint_eq(l.loss_ppm, 5000);
  kz_topo_path_link(t, uac, uas, &l);
  ck_assert_uint_eq(l.latency_ns, 500000);
  ck_assert_uint_eq(l.loss_ppm, 0);
  kz_topo_path_link(t, uas, k, &l);
  ck_assert_uint_eq(l.loss_ppm, 0);
  ck_assert_uint_eq(l.latency_ns, 20 * MS);
  kz_topo_free(t);
}
END_TEST

START_TEST(two_server_loads) {
  struct kz_topo *t = load_shipped("two-server.yaml");
  ck_assert_str_eq(t->name, "two-server");
  ck_assert_uint_eq(t->nhosts, 5);
  uint32_t all = ROLE(PROXY) | ROLE(MEDIA) | ROLE(ECALLMGR) | ROLE(APPS) | ROLE(DB) | ROLE(BROKER);
  ck_assert_uint_eq(host(t, "kz1")->roles, all);
  ck_assert_uint_eq(host(t, "kz2")->roles, all);
  ck_assert_uint_eq(t->nfaults, 1);
  ck_assert_int_eq(t->faults[0].kind, KZ_TOPO_FAULT_CRASH);
  ck_assert_str_eq(t->hosts[t->faults[0].host].name, "kz2");
  ck_assert_uint_eq(t->faults[0].at_ns, 60 * SEC);
  ck_assert_uint_eq(t->faults[0].until_ns, 90 * SEC);
  ck_assert_uint_gt(t->faults[0].pos.line, 1);
  struct kz_topo_link l;
  kz_topo_path_link(t, 0, 1, &l);
  ck_assert_uint_eq(l.loss_ppm, 100);
  ck_assert_uint_eq(l.latency_ns, 300000);
  kz_topo_free(t);
}
END_TEST

START_TEST(maximal_loads) {
  struct kz_topo *t = load_shipped("maximal.yaml");
  ck_assert_uint_eq(t->nhosts, 17);
  /* At least two hosts of every kz role, and each on its own host. */
  for (int r = KZ_TOPO_PROXY; r <= KZ_TOPO_BROKER; r++) {
    size_t n = 0;
    for (size_t i = 0; i < t->nhosts; i++)
      if (t->hosts[i].roles & (1u << r)) {
        n++;
        ck_assert_uint_eq(t->hosts[i].roles, 1u << r);
      }
    ck_assert_msg(n >= 2, "role %s on %zu hosts", kz_topo_role_name(r), n);
  }
  ck_assert_int_eq(host(t, "db1")->crash_mode, KZ_TOPO_CRASH_TORN);
  ck_assert_int_eq(host(t, "proxy1")->crash_mode, KZ_TOPO_CRASH_REVERT);
  ck_assert_uint_eq(t->default_link.queue_packets, 10000);
  ck_assert_uint_eq(t->nfaults, 6);
  const struct kz_topo_fault *f = t->faults;
  ck_assert_int_eq(f[0].kind, KZ_TOPO_FAULT_CRASH);
  ck_assert_int_eq(f[1].kind, KZ_TOPO_FAULT_PARTITION);
  ck_assert_uint_eq(f[1].na, 6);
  ck_assert_uint_eq(f[1].nb, 7);
  ck_assert(!f[1].oneway);
  ck_assert_uint_eq(f[1].at_ns, 120 * SEC);
  ck_assert_uint_eq(f[1].until_ns, 140 * SEC);
  ck_assert_int_eq(f[2].kind, KZ_TOPO_FAULT_PARTITION);
  ck_assert(f[2].oneway);
  ck_assert_int_eq(f[3].kind, KZ_TOPO_FAULT_SKEW);
  ck_assert(f[3].has_skew && !f[3].has_drift);
  ck_assert_int_eq(f[3].skew_ns, -2 * (int64_t)SEC);
  ck_assert_int_eq(f[4].kind, KZ_TOPO_FAULT_SKEW);
  ck_assert_int_eq(f[4].drift_ppm, 200);
  ck_assert_uint_eq(f[4].at_ns, 0);
  ck_assert_int_eq(f[5].kind, KZ_TOPO_FAULT_STALL);
  ck_assert_int_eq(f[5].role, KZ_TOPO_APPS);
  ck_assert_uint_eq(f[5].until_ns - f[5].at_ns, 3 * SEC);
  struct kz_topo_link l;
  kz_topo_path_link(t, (size_t)kz_topo_host_index(t, "proxy1"), (size_t)kz_topo_host_index(t, "uac1"), &l);
  ck_assert_uint_eq(l.dup_ppm, 500);
  ck_assert_uint_eq(l.reorder_ppm, 1000);
  ck_assert_uint_eq(l.reorder_ns, 10 * MS);
  ck_assert_uint_eq(l.queue_packets, 10000); /* from the default */
  kz_topo_free(t);
}
END_TEST

START_TEST(sipp_direct_loads) {
  struct kz_topo *t = load_shipped("sipp-direct.yaml");
  ck_assert_uint_eq(t->nhosts, 2);
  struct kz_topo_link l;
  kz_topo_path_link(t, 1, 0, &l);
  ck_assert_uint_eq(l.loss_ppm, 20000);
  ck_assert_uint_eq(l.dup_ppm, 5000);
  kz_topo_free(t);
}
END_TEST

START_TEST(values) {
  int64_t d;
  const char *why;
  ck_assert_int_eq(kz_topo_parse_duration("1.5ms", false, &d, NULL), 0);
  ck_assert_int_eq(d, 1500000);
  ck_assert_int_eq(kz_topo_parse_duration("250us", false, &d, NULL), 0);
  ck_assert_int_eq(d, 250000);
  ck_assert_int_eq(kz_topo_parse_duration("2m", false, &d, NULL), 0);
  ck_assert_int_eq(d, 120 * (int64_t)SEC);
  ck_assert_int_eq(kz_topo_parse_duration("0", false, &d, NULL), 0);
  ck_assert_int_eq(d, 0);
  ck_assert_int_eq(kz_topo_parse_duration("-250ms", true, &d, NULL), 0);
  ck_assert_int_eq(d, -250 * (int64_t)MS);
  ck_assert_int_eq(kz_topo_parse_duration("-250ms", false, &d, &why), KZ_EINVAL);
  ck_assert_int_eq(kz_topo_parse_duration("5", false, &d, &why), KZ_EINVAL);
  ck_assert_str_eq(why, "a duration needs a unit (ns, us, ms, s, m), e.g. '5ms'");
  ck_assert_int_eq(kz_topo_parse_duration("1.5ns", false, &d, &why), KZ_EINVAL);
  ck_assert_str_eq(why, "duration finer than 1 ns");
  ck_assert_int_eq(kz_topo_parse_duration("1.", false, &d, &why), KZ_EINVAL);
  ck_assert_int_eq(kz_topo_parse_duration("99999999999999s", false, &d, &why), KZ_EINVAL);
  uint32_t p;
  ck_assert_int_eq(kz_topo_parse_ppm("0.5%", &p, NULL), 0);
  ck_assert_uint_eq(p, 5000);
  ck_assert_int_eq(kz_topo_parse_ppm("100%", &p, NULL), 0);
  ck_assert_uint_eq(p, 1000000);
  ck_assert_int_eq(kz_topo_parse_ppm("0.0001%", &p, NULL), 0);
  ck_assert_uint_eq(p, 1);
  ck_assert_int_eq(kz_topo_parse_ppm("250ppm", &p, NULL), 0);
  ck_assert_uint_eq(p, 250);
  ck_assert_int_eq(kz_topo_parse_ppm("0.00001%", &p, &why), KZ_EINVAL);
  ck_assert_int_eq(kz_topo_parse_ppm("100.5%", &p, &why), KZ_EINVAL);
  ck_assert_int_eq(kz_topo_parse_ppm("2000000ppm", &p, &why), KZ_EINVAL);
  ck_assert_int_eq(kz_topo_parse_ppm("1.5ppm", &p, &why), KZ_EINVAL);
  ck_assert_int_eq(kz_topo_parse_ppm("0.5", &p, &why), KZ_EINVAL);
  ck_assert_str_eq(why, "a probability needs '%' or 'ppm', e.g. '0.5%'");
  ck_assert_str_eq(kz_topo_role_name(KZ_TOPO_SIPP_UAS), "sipp-uas");
  ck_assert_int_eq(kz_topo_role_from_name("ecallmgr"), KZ_TOPO_ECALLMGR);
  ck_assert_int_eq(kz_topo_role_from_name("foo"), -1);
}
END_TEST

/* Every allocation the loader makes can fail without leaking or
 * crashing, and it reports KZ_ENOMEM. */
START_TEST(alloc_failures) {
  char path[1024];
  kz_test_source_path(path, sizeof path, "scenarios/topologies/maximal.yaml");
  size_t len;
  uint8_t *data = kz_test_read_file(path, &len);
  ck_assert_ptr_nonnull(data);
  for (int64_t k = 0;; k++) {
    struct kz_topo *t = NULL;
    struct kz_topo_err err;
    kz_mem_fail_after(k);
    int rc = kz_topo_load(&t, "maximal.yaml", data, len, &err);
    kz_mem_fail_after(-1);
    if (rc == 0) {
      ck_assert_uint_eq(t->nhosts, 17);
      kz_topo_free(t);
      ck_assert_int_gt(k, 5);
      break;
    }
    ck_assert_int_eq(rc, KZ_ENOMEM);
    ck_assert_ptr_null(t);
  }
  free(data);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Broken variants: each gives exactly this message. */

#define HOSTS2                                                                                     \
  "hosts:\n"                                                                                       \
  "  - name: kz1\n"                                                                                \
  "    address: 10.0.0.1\n"                                                                        \
  "    roles: [media]\n"                                                                           \
  "  - name: kz2\n"                                                                                \
  "    address: 10.0.0.2\n"

struct broken {
  const char *yaml;
  const char *want;
};

static const struct broken broken[] = {
    /* 0 */ {HOSTS2 "links:\n  default:\n    latncy: 5ms\n",
             "broken.yaml:9:5: unknown key 'latncy' in link (did you mean 'latency'?)"},
    {HOSTS2 "  - name: kz1\n    address: 10.0.0.3\n",
     "broken.yaml:7:11: duplicate host name 'kz1' (first defined at line 2)"},
    {HOSTS2 "  - name: kz3\n    address: 10.0.0.1\n",
     "broken.yaml:8:14: address 10.0.0.1 used twice (host 'kz1' at line 2 has it already)"},
    {"hosts:\n  - name: kz1\n    address: 10.0.0.1\n    roles: [media, foo]\n",
     "broken.yaml:4:20: role 'foo' is not a kz role (roles: proxy, media, ecallmgr, apps, db, broker, "
     "sipp-uac, sipp-uas)"},
    {"hosts:\n  - name: kz1\n    address: 10.0.0.1\n    roles: [medai]\n",
     "broken.yaml:4:13: role 'medai' is not a kz role (did you mean 'media'?)"},
    /* 5 */ {"hosts:\n  - name: kz1\n    address: 10.0.0.300\n",
             "broken.yaml:3:14: address '10.0.0.300' is not an IPv4 address like 10.0.0.1"},
    {"hosts:\n  - name: kz1\n    address: 10.0.0.1:5060\n",
     "broken.yaml:3:14: address '10.0.0.1:5060': write the IPv4 address alone, without a port"},
    {HOSTS2 "links:\n  default:\n    latency: 5\n",
     "broken.yaml:9:14: latency: '5': a duration needs a unit (ns, us, ms, s, m), e.g. '5ms'"},
    {HOSTS2 "links:\n  default:\n    jitter: 5 sec\n",
     "broken.yaml:9:13: jitter: '5 sec': unknown duration unit (use ns, us, ms, s or m)"},
    {HOSTS2 "links:\n  default:\n    loss: 0.5\n",
     "broken.yaml:9:11: loss: '0.5': a probability needs '%' or 'ppm', e.g. '0.5%'"},
    /* 10 */ {HOSTS2 "links:\n  default:\n    duplicate: 150%\n",
              "broken.yaml:9:16: duplicate: '150%': probability above 100%"},
    {HOSTS2 "links:\n  paths:\n    - between: [kz1, kz3]\n      latency: 1ms\n",
     "broken.yaml:9:22: between: no host named 'kz3' (did you mean 'kz1'?)"},
    {HOSTS2 "links:\n  paths:\n    - between: [kz1, kz2, kz1]\n",
     "broken.yaml:9:16: 'between' takes two host names, e.g. [kz1, kz2]"},
    {HOSTS2 "faults:\n  - crash: kz2\n    restart: 10s\n",
     "broken.yaml:8:5: crash fault needs 'at' (when it happens, e.g. 'at: 10s')"},
    {HOSTS2 "faults:\n  - crash: kz2\n    at: 10s\n    restart: 5s\n",
     "broken.yaml:10:14: restart must come after the crash ('at')"},
    /* 15 */ {HOSTS2 "faults:\n  - restart: kz2\n    at: 10s\n",
              "broken.yaml:8:5: host 'kz2' restarts at 10000 ms but it is not down then"},
    {HOSTS2 "faults:\n  - crash: kz2\n    at: 10s\n  - crash: kz2\n    at: 20s\n",
     "broken.yaml:10:5: host 'kz2' crashes at 20000 ms but is already down (since 10000 ms)"},
    {HOSTS2 "faults:\n  - partition:\n      a: [kz1, kz2]\n      b: [kz2]\n    from: 1s\n",
     "broken.yaml:10:10: host 'kz2' is on both sides of the partition"},
    {HOSTS2 "faults:\n  - stall: kz1\n    role: db\n    at: 1s\n    for: 1s\n",
     "broken.yaml:9:11: host 'kz1' does not run role 'db'"},
    {HOSTS2 "faults:\n  - crsh: kz1\n    at: 1s\n",
     "broken.yaml:8:5: unknown fault 'crsh' (did you mean 'crash'?)"},
    /* 20 */ {"hosts:\n  - name: kz1\n    address: [10.0.0.1\n",
              "broken.yaml:4:1: YAML syntax error: did not find expected ',' or ']' while parsing a flow "
              "sequence"},
    {"hosts:\n  name: kz1\n", "broken.yaml:2:3: hosts must be a list, e.g. '- name: kz1'"},
    {"name: x\n", "broken.yaml:1:1: topology has no 'hosts:'"},
    {"hosts:\n  - name: kz1\n    address: 10.0.0.1\n    cores: 0\n",
     "broken.yaml:4:12: cores: 0 is out of range (1..64)"},
    {"hosts:\n  - name: kz1\n    address: 10.0.0.1\n    name: kz2\n",
     "broken.yaml:4:5: duplicate key 'name' in host (first at line 2)"},
    /* 25 */ {HOSTS2 "faults:\n  - skew: kz1\n    at: 1s\n",
              "broken.yaml:8:5: skew fault needs 'by' (a clock jump, e.g. '-250ms') or 'drift' (e.g. '50ppm')"},
    {"host:\n  - name: kz1\n", "broken.yaml:1:1: unknown key 'host' in topology (did you mean 'hosts'?)"},
    {"", "broken.yaml:1:1: empty topology: expected 'hosts:' and the rest"},
    {HOSTS2 "faults:\n  - crash: kz1\n    partition: {a: [kz1], b: [kz2]}\n    at: 1s\n",
     "broken.yaml:9:5: a fault has one kind: 'crash' and 'partition' in one entry (write two entries)"},
    {HOSTS2 "faults:\n  - partition:\n      a: [kz1]\n      b: [kz2]\n    from: 5s\n    to: 5s\n",
     "broken.yaml:12:9: a partition must end ('to') after it starts ('from')"},
    /* 30 */ {HOSTS2 "links:\n  paths:\n    - from: kz1\n      latency: 1ms\n",
              "broken.yaml:9:7: a path needs 'between: [a, b]', or 'from' and 'to'"},
    {"hosts:\n  - name: kz 1\n    address: 10.0.0.1\n",
     "broken.yaml:2:11: host name 'kz 1' must be 1..31 letters, digits, '.', '_' or '-'"},
    {HOSTS2 "faults:\n  - skew: kz1\n    drift: fast\n",
     "broken.yaml:9:12: drift: 'fast' is not a rate like '50ppm' or '-20ppm'"},
    {HOSTS2 "links:\n  default:\n    distribution: gaussian\n",
     "broken.yaml:9:19: distribution 'gaussian' is not one of uniform, normal, pareto, paretonormal"},
    {HOSTS2 "links:\n  default:\n    latency: 1ms\n  pahts: []\n",
     "broken.yaml:10:3: unknown key 'pahts' in links (did you mean 'paths'?)"},
    /* 35 */ {HOSTS2 "faults:\n  - kill: kz1\n    role: media\n    at: 5s\n    restart: 5s\n",
              "broken.yaml:11:14: restart must come after the kill ('at')"},
    {HOSTS2 "faults:\n  - kill: kz1\n    role: db\n    at: 1s\n",
     "broken.yaml:9:11: host 'kz1' does not run role 'db'"},
    {HOSTS2 "faults:\n  - kill: kz1\n    for: 1s\n    at: 1s\n",
     "broken.yaml:9:5: unknown key 'for' in kill fault (expected one of: kill, role, at, restart)"},
};

START_TEST(broken_variant) {
  const struct broken *b = &broken[_i];
  struct kz_topo *t = NULL;
  struct kz_topo_err err;
  int rc = kz_topo_load(&t, "dir/broken.yaml", b->yaml, strlen(b->yaml), &err);
  ck_assert_msg(rc == KZ_EPROTO, "variant %d loaded (rc %d)", _i, rc);
  ck_assert_ptr_null(t);
  ck_assert_msg(strcmp(err.text, b->want) == 0, "variant %d:\n got: %s\nwant: %s", _i, err.text, b->want);
  /* line and col agree with the text */
  char prefix[64];
  snprintf(prefix, sizeof prefix, "broken.yaml:%u:%u: ", err.line, err.col);
  ck_assert_msg(strncmp(err.text, prefix, strlen(prefix)) == 0, "variant %d: %s", _i, err.text);
}
END_TEST

/* kill: one role's process, or every process of the host; the restart
 * is optional, and written first or last it is the kill's. */
START_TEST(kill_faults) {
  static const char yaml[] = HOSTS2 "faults:\n"
                                    "  - kill: kz1\n    role: media\n    at: 2s\n    restart: 4s\n"
                                    "  - restart: 9s\n    kill: kz2\n    at: 3s\n"
                                    "  - kill: kz2\n    at: 12s\n";
  struct kz_topo *t = NULL;
  struct kz_topo_err err;
  ck_assert_int_eq(kz_topo_load(&t, "kill.yaml", yaml, strlen(yaml), &err), 0);
  ck_assert_uint_eq(t->nfaults, 3);
  const struct kz_topo_fault *f = t->faults;
  ck_assert_int_eq(f[0].kind, KZ_TOPO_FAULT_KILL);
  ck_assert_int_eq(f[0].role, KZ_TOPO_MEDIA);
  ck_assert_uint_eq(f[0].host, 0);
  ck_assert_uint_eq(f[0].at_ns, 2 * SEC);
  ck_assert_uint_eq(f[0].until_ns, 4 * SEC);
  ck_assert_int_eq(f[1].kind, KZ_TOPO_FAULT_KILL);
  ck_assert_int_eq(f[1].role, -1);
  ck_assert_uint_eq(f[1].host, 1);
  ck_assert_uint_eq(f[1].until_ns, 9 * SEC);
  ck_assert_int_eq(f[2].kind, KZ_TOPO_FAULT_KILL);
  ck_assert_uint_eq(f[2].until_ns, UINT64_MAX);
  kz_topo_free(t);
}
END_TEST

START_TEST(missing_file) {
  struct kz_topo *t = NULL;
  struct kz_topo_err err;
  ck_assert_int_eq(kz_topo_load_file(&t, "/nonexistent/x.yaml", &err), KZ_ENOENT);
  ck_assert_str_eq(err.text, "/nonexistent/x.yaml: cannot open: No such file or directory");
}
END_TEST

int main(void) {
  Suite *s = suite_create("sim_topology");
  TCase *tc = kz_tcase(s, "shipped", 30);
  tcase_add_test(tc, simple_loads);
  tcase_add_test(tc, two_server_loads);
  tcase_add_test(tc, maximal_loads);
  tcase_add_test(tc, sipp_direct_loads);
  tc = kz_tcase(s, "values", 30);
  tcase_add_test(tc, values);
  tcase_add_test(tc, alloc_failures);
  tcase_add_test(tc, missing_file);
  tcase_add_test(tc, kill_faults);
  tc = kz_tcase(s, "broken", 30);
  tcase_add_loop_test(tc, broken_variant, 0, (int)(sizeof broken / sizeof broken[0]));
  return kz_run_suite(s);
}
