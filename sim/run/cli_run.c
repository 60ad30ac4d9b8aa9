/* cli_run.c — `kz sim --topology T --uac X --uas Y ...`: option parsing and the command around kz_sim_run. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kz/sim_os.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sim_run.h"

void kz_sim_run_usage(FILE *out) {
  fprintf(out,
          "usage: kz sim --topology FILE --uac FILE --uas FILE [options]\n"
          "\n"
          "Runs a topology (scenarios/topologies/*.yaml) in the simulator: SIPp UACs\n"
          "place calls through it to SIPp UASes, in virtual time, with the topology's\n"
          "links and faults.  Writes summary.json and report.html with --out.\n"
          "\n"
          "  --topology FILE        topology file (default scenarios/topologies/sipp-direct.yaml:\n"
          "                         SIPp UACs calling SIPp UASes over a lossy link)\n"
          "  --uac FILE             SIPp scenario of the callers\n"
          "                         (default scenarios/sipp/basic-call/uac.xml)\n"
          "  --uas FILE             SIPp scenario of the callees\n"
          "                         (default scenarios/sipp/basic-call/uas.xml)\n"
          "  --seed N               root seed (decimal or 0x hex); default: random, printed\n"
          "  --rate N               calls per rate period per UAC (default 10)\n"
          "  --rate-period MS       rate period in ms (default 1000)\n"
          "  --calls N              calls per UAC (default: rate x duration)\n"
          "  --duration SECONDS     how long UACs place calls when --calls is not given (default 10)\n"
          "  --call-limit N         concurrent calls per UAC (default: no limit)\n"
          "  --call-timeout SECONDS a UAC call older than this fails (default: none)\n"
          "  --service NAME         SIPp -s (default \"service\")\n"
          "  --key NAME VALUE       SIPp -key, for both scenarios (repeatable)\n"
          "  --inf FILE             injection CSV for the UACs (SIPp -inf)\n"
          "  --out DIR              write summary.json, report.html, trace.jsonl and\n"
          "                         traffic.pcap into DIR\n"
          "  --no-trace, --no-pcap  leave trace.jsonl / traffic.pcap out\n"
          "  --swarm                draw link properties, faults and workload from the seed\n"
          "                         (ranges in docs/topologies.md); failed calls are allowed\n"
          "  --buggify, --no-buggify  KZ_BUGGIFY in role code (default: on with --swarm)\n"
          "  --allow-failed-calls   failed calls do not fail the run\n"
          "  --max-time SECONDS     stop the simulation here (default: placing time + 120 s)\n"
          "  --bucket SECONDS       width of the report's time buckets (default 1)\n"
          "  --quiet                no progress line and no table\n"
          "  --check-determinism    run twice; fail when the trace hash or summary differ\n"
          "\n"
          "Exit status: 0 the run passed, 1 it failed (the command to replay it is\n"
          "printed), 2 usage or I/O error.\n");
}

/* A file shipped in the source tree: "rel" when it exists from the working
 * directory, else the same path under the tree kz was built from. */
static void resolve_default(char *out, size_t outlen, const char *rel) {
  FILE *f = fopen(rel, "r");
  if (f) {
    fclose(f);
    snprintf(out, outlen, "%s", rel);
    return;
  }
#ifdef KZ_SOURCE_DIR
  snprintf(out, outlen, "%s/%s", KZ_SOURCE_DIR, rel);
#else
  snprintf(out, outlen, "%s", rel);
#endif
}

static int parse_u64(const char *s, uint64_t *out) {
  if (!s || !*s || *s == '-' || *s == '+') return -1;
  errno = 0;
  char *end = NULL;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno || !end || *end) return -1;
  *out = v;
  return 0;
}

/* "12", "0.5", "2.125": seconds with up to 9 decimals, into ns, without
 * floating point (the same text always gives the same virtual time). */
static int parse_seconds(const char *s, uint64_t *out) {
  if (!s || *s < '0' || *s > '9') return -1;
  uint64_t whole = 0, frac = 0;
  int fd = 0;
  const char *p = s;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (whole > UINT64_C(10000000000)) return -1;
    whole = whole * 10 + (uint64_t)(*p - '0');
  }
  if (*p == '.')
    for (p++; *p >= '0' && *p <= '9'; p++) {
      if (fd == 9) return -1;
      frac = frac * 10 + (uint64_t)(*p - '0');
      fd++;
    }
  if (*p) return -1;
  for (; fd < 9; fd++) frac *= 10;
  *out = whole * UINT64_C(1000000000) + frac;
  return *out ? 0 : -1;
}

int kz_sim_run_parse_args(int argc, char **argv, struct kz_sim_run_args *a, char *err, size_t errlen) {
  memset(a, 0, sizeof *a);
  kz_sim_run_opts_init(&a->opts);
  a->buggify = -1;
  struct kz_sim_run_opts *o = &a->opts;
  a->trace = a->pcap = -1;
  resolve_default(a->default_topology, sizeof a->default_topology, "scenarios/topologies/sipp-direct.yaml");
  resolve_default(a->default_uac, sizeof a->default_uac, "scenarios/sipp/basic-call/uac.xml");
  resolve_default(a->default_uas, sizeof a->default_uas, "scenarios/sipp/basic-call/uas.xml");
  o->uac_path = a->default_uac;
  o->uas_path = a->default_uas;
  for (int i = 1; i < argc; i++) {
    const char *opt = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    uint64_t n;
#define NEED_VALUE()                                                                                               \
  do {                                                                                                             \
    if (!val) {                                                                                                    \
      snprintf(err, errlen, "%s needs a value", opt);                                                              \
      return KZ_EINVAL;                                                                                            \
    }                                                                                                              \
    i++;                                                                                                           \
  } while (0)
#define BAD(what)                                                                                                  \
  do {                                                                                                             \
    snprintf(err, errlen, "%s: '%s' is not %s", opt, val, what);                                                   \
    return KZ_EINVAL;                                                                                              \
  } while (0)
    if (!strcmp(opt, "--topology")) {
      NEED_VALUE();
      a->topology = o->topology_path = val;
    } else if (!strcmp(opt, "--uac")) {
      NEED_VALUE();
      o->uac_path = val;
    } else if (!strcmp(opt, "--uas")) {
      NEED_VALUE();
      o->uas_path = val;
    } else if (!strcmp(opt, "--seed")) {
      NEED_VALUE();
      if (parse_u64(val, &o->seed)) BAD("a number");
      a->seed_given = true;
    } else if (!strcmp(opt, "--rate")) {
      NEED_VALUE();
      if (parse_u64(val, &n) || n == 0 || n > 1000000) BAD("a rate from 1 to 1000000");
      o->rate = (uint32_t)n;
    } else if (!strcmp(opt, "--rate-period")) {
      NEED_VALUE();
      if (parse_u64(val, &n) || n == 0 || n > 3600000) BAD("a period in ms");
      o->rate_period_ms = (uint32_t)n;
    } else if (!strcmp(opt, "--calls")) {
      NEED_VALUE();
      if (parse_u64(val, &o->calls) || o->calls == 0) BAD("a positive number");
    } else if (!strcmp(opt, "--duration")) {
      NEED_VALUE();
      if (parse_seconds(val, &o->duration_ns)) BAD("a duration in seconds");
    } else if (!strcmp(opt, "--call-limit")) {
      NEED_VALUE();
      if (parse_u64(val, &n) || n > UINT32_MAX) BAD("a number");
      o->call_limit = (uint32_t)n;
    } else if (!strcmp(opt, "--call-timeout")) {
      NEED_VALUE();
      if (parse_seconds(val, &n) || n / 1000000 > UINT32_MAX || n % 1000000) BAD("a duration in seconds (ms precision)");
      o->call_timeout_ms = (uint32_t)(n / 1000000);
    } else if (!strcmp(opt, "--service")) {
      NEED_VALUE();
      o->service = val;
    } else if (!strcmp(opt, "--key")) {
      if (i + 2 >= argc) {
        snprintf(err, errlen, "--key needs a name and a value");
        return KZ_EINVAL;
      }
      if (o->nkeys == KZ_SIM_RUN_MAX_KEYS) {
        snprintf(err, errlen, "at most %d --key options", KZ_SIM_RUN_MAX_KEYS);
        return KZ_EINVAL;
      }
      a->keys[o->nkeys].name = argv[i + 1];
      a->keys[o->nkeys].value = argv[i + 2];
      o->nkeys++;
      i += 2;
    } else if (!strcmp(opt, "--inf")) {
      NEED_VALUE();
      o->inf_path = val;
    } else if (!strcmp(opt, "--out")) {
      NEED_VALUE();
      o->out_dir = val;
    } else if (!strcmp(opt, "--max-time")) {
      NEED_VALUE();
      if (parse_seconds(val, &o->max_sim_ns)) BAD("a duration in seconds");
    } else if (!strcmp(opt, "--bucket")) {
      NEED_VALUE();
      if (parse_seconds(val, &o->bucket_ns)) BAD("a duration in seconds");
    } else if (!strcmp(opt, "--trace")) {
      a->trace = 1;
    } else if (!strcmp(opt, "--no-trace")) {
      a->trace = 0;
    } else if (!strcmp(opt, "--pcap")) {
      a->pcap = 1;
    } else if (!strcmp(opt, "--no-pcap")) {
      a->pcap = 0;
    } else if (!strcmp(opt, "--swarm")) {
      o->swarm = true;
    } else if (!strcmp(opt, "--buggify")) {
      a->buggify = 1;
    } else if (!strcmp(opt, "--no-buggify")) {
      a->buggify = 0;
    } else if (!strcmp(opt, "--allow-failed-calls")) {
      o->allow_failed_calls = true;
    } else if (!strcmp(opt, "--quiet")) {
      a->quiet = true;
    } else if (!strcmp(opt, "--check-determinism")) {
      a->check_determinism = true;
    } else {
      snprintf(err, errlen, "unknown option '%s'", opt);
      return KZ_EINVAL;
    }
#undef NEED_VALUE
#undef BAD
  }
  if (!a->topology) a->topology = o->topology_path = a->default_topology;
  o->write_trace = a->trace < 0 ? o->out_dir != NULL : a->trace == 1;
  o->write_pcap = a->pcap < 0 ? o->out_dir != NULL : a->pcap == 1;
  if ((o->write_trace || o->write_pcap) && !o->out_dir) {
    snprintf(err, errlen, "--trace and --pcap need --out DIR");
    return KZ_EINVAL;
  }
  if (o->calls && o->duration_ns) {
    snprintf(err, errlen, "give --calls or --duration, not both");
    return KZ_EINVAL;
  }
  o->buggify = a->buggify < 0 ? o->swarm : a->buggify == 1;
  if (o->swarm) o->allow_failed_calls = true;
  o->keys = a->keys;
  return 0;
}

/* summary.json without its wall_seconds line (the only field that may
 * differ between two runs of one seed). */
static char *summary_sans_wall(const char *dir) {
  char p[4200];
  snprintf(p, sizeof p, "%s/summary.json", dir);
  FILE *f = fopen(p, "rb");
  if (!f) return NULL;
  struct kz_buf b;
  kz_buf_init(&b);
  char line[4096];
  while (fgets(line, sizeof line, f))
    if (!strstr(line, "\"wall_seconds\"") && kz_buf_append_cstr(&b, line)) break;
  fclose(f);
  return (char *)b.data;
}

int kz_sim_run_cli(int argc, char **argv) {
  struct kz_sim_run_args a;
  char err[512];
  if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    kz_sim_run_usage(stdout);
    return 0;
  }
  if (kz_sim_run_parse_args(argc, argv, &a, err, sizeof err)) {
    fprintf(stderr, "kz sim: %s\n", err);
    kz_sim_run_usage(stderr);
    return 2;
  }
  struct kz_sim_run_opts *o = &a.opts;
  if (!a.seed_given) o->seed = kz_sim_os_random_seed();
  struct kz_topo *t = NULL;
  struct kz_topo_err terr;
  if (kz_topo_load_file(&t, a.topology, &terr)) {
    fprintf(stderr, "kz sim: %s\n", terr.text);
    return 2;
  }
  if (!a.quiet) {
    printf("kz sim: topology %s, seed %" PRIu64 "%s%s\n", t->name, o->seed, o->swarm ? ", swarm" : "",
           o->buggify ? ", buggify" : "");
    printf("  topology   %s\n  uac        %s\n  uas        %s\n", a.topology, o->uac_path, o->uas_path);
    printf("  rate       %u calls per %u ms per UAC, %s\n", o->rate ? o->rate : 10u,
           o->rate_period_ms ? o->rate_period_ms : 1000u,
           o->calls ? "fixed call count" : "for the run's duration");
    printf("  output     %s\n", o->out_dir ? o->out_dir : "(none: add --out DIR)");
    o->progress = stdout;
    o->summary = stdout;
  }
  struct kz_sim_run_result res;
  int rc = kz_sim_run(t, o, &res);
  int status;
  if (rc) {
    fprintf(stderr, "kz sim: %s\n", res.error);
    status = 2;
  } else {
    status = res.passed ? 0 : 1;
    if (!res.passed) fprintf(a.quiet ? stderr : stdout, "kz sim: FAILED (%s); replay with:\n  %s\n", res.verdict, res.replay);
  }
  if (!rc && a.check_determinism) {
    char *first = o->out_dir ? summary_sans_wall(o->out_dir) : NULL;
    struct kz_sim_run_opts again = *o;
    again.progress = NULL;
    again.summary = NULL;
    struct kz_sim_run_result res2;
    int rc2 = kz_sim_run(t, &again, &res2);
    char *second = o->out_dir ? summary_sans_wall(o->out_dir) : NULL;
    bool same = rc2 == 0 && res2.trace_hash == res.trace_hash && res2.events == res.events &&
                res2.calls_succeeded == res.calls_succeeded &&
                ((!first && !second) || (first && second && !strcmp(first, second)));
    printf("kz sim: determinism: %s (trace hash %016" PRIx64 " / %016" PRIx64 ")\n", same ? "same" : "DIFFERENT",
           res.trace_hash, rc2 ? 0 : res2.trace_hash);
    kz_free(first);
    kz_free(second);
    if (!same) status = 1;
  }
  /* The trace hash closes every run: the one line to compare between runs. */
  if (!rc && !a.quiet) printf("trace hash %016" PRIx64 "\n", res.trace_hash);
  kz_topo_free(t);
  return status;
}
