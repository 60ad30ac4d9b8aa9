/* cmd_scenario.c — `kz scenario list|run`: runs cases of the SIPp scenario library against a real topology (kz up + real sipp) or in the simulator, checks them against expected.json, compares the worlds. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "kz/error.h"
#include "kz/topology.h"

/* Declared in cli.h once wired into main.c. */
int kz_cli_scenario(int argc, char **argv);
/* impl/cli/cmd_up.c */
int kz_cli_up_map_addr(const struct kz_addr *sim, int net, char *out, size_t outlen);
int kz_cli_up_start(const char *topology, const char *state_dir, int broker_port, int net, bool quiet);
int kz_cli_up_stop(const char *state_dir, bool quiet);
int kz_cli_up_running(const char *state_dir, char *topology, size_t len, int *net);
int kz_cli_up_resolve(const char *rel, char *out, size_t outlen);
int kz_cli_up_kz_bin(char *out, size_t outlen);
int kz_cli_up_restart(const char *state_dir, const char *role, const char *host, bool quiet);

/* A case is a folder scenarios/sipp/<case>/ with uac.xml (and uas.xml),
 * README.md (its first lines say what it proves) and expected.json:
 *   {"topology": "proxy.yaml", "uac": "uac.xml", "uas": "uas.xml",
 *    "calls": N, "rate": R, "seed": S, "keys": {"name": "value" | "@host"},
 *    "expect": {"uac": {"successful": N, "failed": N},
 *               "uac_codes_received": {"200": N, ...},   at least
 *               "uas_codes_sent": {"503": N, ...},       at least
 *               "uac_out_of_call_min": N},
 *    "real_proxy_stats": {"auth_cache_hits": N, ...},       at least, summed
 *                          over the proxies' counters (real world only)
 *    "known_issue": {"sim": "why", "real": "why"}}
 * (basic-call's older {"run": {...}, "expect": {"uac": {"calls_successful":
 * ...}}} is read too).
 * Counts are per UAC: on a topology with k sipp-uac hosts each places the
 * case's calls, so uac counts are expected k times over. */

#define SC_PATH 4096
#define SC_MAX_EP 32
#define SC_RTT_MAX 4096

struct sc_obs {
  bool ran;
  bool skipped;      /* the world could not run here (a tool is not installed) */
  json_t *proxy_stats; /* real world: counter -> sum over the proxies; NULL in the simulator */
  char sim_checks[256]; /* simulator invariants that failed, "" when none */
  long successful, failed, out_of_call;
  json_t *uac_codes; /* code -> count received by the UACs */
  json_t *uas_codes; /* code -> count sent by the UASes */
  double p50, p95, p99; /* response time of rtd 1 in ms, -1: none measured */
  char note[512];
};

struct sc_result {
  char name[128], world[8];
  const char *outcome; /* PASS FAIL KNOWN-BUG SKIP */
  char detail[1024];
  struct sc_obs obs;
};

struct sc_opts {
  const char *topology;
  const char *state;
  const char *out;
  const char *report;
  const char *sipp;
  long calls, rate, seed;
  int net, broker_port;
  bool real, sim, quiet;
  char kz[SC_PATH];
};

static void obs_free(struct sc_obs *o) {
  json_decref(o->uac_codes);
  json_decref(o->uas_codes);
  json_decref(o->proxy_stats);
  o->uac_codes = o->uas_codes = o->proxy_stats = NULL;
}

static void obs_init(struct sc_obs *o) {
  memset(o, 0, sizeof *o);
  o->uac_codes = json_object();
  o->uas_codes = json_object();
  o->p50 = o->p95 = o->p99 = -1;
}

static void code_add(json_t *m, const char *code, long n) {
  json_t *v = json_object_get(m, code);
  json_object_set_new(m, code, json_integer((v ? json_integer_value(v) : 0) + n));
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) && errno == EINTR) {
  }
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int mkdirs(const char *path) {
  char tmp[SC_PATH];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
    *p = '/';
  }
  return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}

/* Runs argv in `cwd` (NULL: here), output to `out`; returns the pid. */
static pid_t sc_spawn(char *const argv[], const char *cwd, const char *out) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid != 0) return pid;
  setsid();
  if (cwd && chdir(cwd)) _exit(127);
  int in = open("/dev/null", O_RDONLY);
  int o = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (in < 0 || o < 0) _exit(127);
  dup2(in, 0);
  dup2(o, 1);
  dup2(o, 2);
  execvp(argv[0], argv);
  fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
  _exit(127);
}

/* Waits for pid up to timeout_ms, then kills it.  Returns the exit status,
 * -1 when it had to be killed. */
static int sc_wait(pid_t pid, unsigned timeout_ms) {
  uint64_t t0 = now_ms();
  int st;
  for (;;) {
    pid_t w = waitpid(pid, &st, WNOHANG);
    if (w == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    if (w < 0 && errno != EINTR) return -1;
    if (now_ms() - t0 > timeout_ms) {
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1;
    }
    sleep_ms(50);
  }
}

static void sc_stop(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  if (sc_wait(pid, 3000) == -1) {
  }
}

/* ------------------------------------------------------------------ */
/* Cases */

static int cases_dir(char *out, size_t len) { return kz_cli_up_resolve("scenarios/sipp", out, len); }

/* The line saying what a case proves: README.md's "Proves: ..." line or
 * its first line that is not a heading. */
static void case_summary(const char *dir, char *out, size_t len) {
  char p[SC_PATH + 320], line[1024];
  snprintf(p, sizeof p, "%s/README.md", dir);
  out[0] = 0;
  FILE *f = fopen(p, "r");
  if (!f) return;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = 0;
    if (!line[0] || line[0] == '#') continue;
    snprintf(out, len, "%s", !strncmp(line, "Proves: ", 8) ? line + 8 : line);
    break;
  }
  fclose(f);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int sc_list(int argc, char **argv) {
  char dir[SC_PATH];
  const char *given = NULL;
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--dir") && i + 1 < argc) given = argv[++i];
  if (given) snprintf(dir, sizeof dir, "%s", given);
  else if (cases_dir(dir, sizeof dir)) {
    fprintf(stderr, "kz scenario: cannot find scenarios/sipp (run from the source tree or set KZ_SOURCE_DIR)\n");
    return 2;
  }
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "kz scenario: %s: %s\n", dir, strerror(errno));
    return 2;
  }
  char *names[256];
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < 256) {
    if (e->d_name[0] == '.') continue;
    char p[SC_PATH + 300];
    snprintf(p, sizeof p, "%s/%s/uac.xml", dir, e->d_name);
    if (access(p, R_OK)) continue;
    names[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, n, sizeof names[0], cmp_str);
  printf("%-24s %-18s %s\n", "CASE", "TOPOLOGY", "PROVES");
  for (size_t i = 0; i < n; i++) {
    char cd[SC_PATH + 300], sum[1024], ep[SC_PATH + 320];
    snprintf(cd, sizeof cd, "%s/%s", dir, names[i]);
    case_summary(cd, sum, sizeof sum);
    snprintf(ep, sizeof ep, "%s/expected.json", cd);
    json_t *j = json_load_file(ep, 0, NULL);
    const char *topo = json_string_value(json_object_get(j, "topology"));
    char tb[64];
    snprintf(tb, sizeof tb, "%s", topo ? (strrchr(topo, '/') ? strrchr(topo, '/') + 1 : topo) : "-");
    printf("%-24s %-18s %s\n", names[i], j ? tb : "(no expected.json)", sum);
    json_decref(j);
    free(names[i]);
  }
  return 0;
}

/* Appends to names (strdup'ed, at most max in all) every case of the
 * library whose expected.json says "suite": suite, sorted.  Returns the
 * number added, or -1 (no library folder). */
static long suite_cases(const char *suite, char **names, size_t have, size_t max) {
  char dir[SC_PATH];
  if (cases_dir(dir, sizeof dir)) return -1;
  DIR *d = opendir(dir);
  if (!d) return -1;
  size_t n0 = have;
  struct dirent *e;
  while ((e = readdir(d)) && have < max) {
    if (e->d_name[0] == '.') continue;
    char ep[SC_PATH + 300];
    snprintf(ep, sizeof ep, "%s/%s/expected.json", dir, e->d_name);
    json_t *j = json_load_file(ep, 0, NULL);
    const char *st = json_string_value(json_object_get(j, "suite"));
    if (st && !strcmp(st, suite)) names[have++] = strdup(e->d_name);
    json_decref(j);
  }
  closedir(d);
  qsort(names + n0, have - n0, sizeof names[0], cmp_str);
  return (long)(have - n0);
}

struct sc_case {
  char name[128];
  char dir[SC_PATH];
  char uac[SC_PATH], uas[SC_PATH];
  char topology[SC_PATH];
  long calls, rate, seed;
  json_t *exp; /* expected.json */
};

/* Loads a case by name (under scenarios/sipp) or path. */
static int case_load(struct sc_case *c, const char *name, const struct sc_opts *o) {
  memset(c, 0, sizeof *c);
  if (strchr(name, '/')) {
    snprintf(c->dir, sizeof c->dir, "%s", name);
  } else {
    char base[SC_PATH];
    if (cases_dir(base, sizeof base)) {
      fprintf(stderr, "kz scenario: cannot find scenarios/sipp (run from the source tree or set KZ_SOURCE_DIR)\n");
      return -1;
    }
    snprintf(c->dir, sizeof c->dir, "%.900s/%.100s", base, name);
  }
  size_t dl = strlen(c->dir);
  while (dl > 1 && c->dir[dl - 1] == '/') c->dir[--dl] = 0;
  const char *b = strrchr(c->dir, '/');
  snprintf(c->name, sizeof c->name, "%.127s", b ? b + 1 : c->dir);
  char ep[SC_PATH + 32];
  snprintf(ep, sizeof ep, "%s/expected.json", c->dir);
  json_error_t je;
  c->exp = json_load_file(ep, 0, &je);
  if (!c->exp) {
    fprintf(stderr, "kz scenario: %s: %s\n", ep, access(ep, R_OK) ? "no such case (no expected.json)" : je.text);
    return -1;
  }
  json_t *run = json_object_get(c->exp, "run");
  json_t *src = run ? run : c->exp;
  c->calls = json_integer_value(json_object_get(src, "calls"));
  c->rate = json_integer_value(json_object_get(src, "rate"));
  c->seed = json_integer_value(json_object_get(src, "seed"));
  if (c->calls <= 0) c->calls = 1;
  if (c->rate <= 0) c->rate = 1;
  if (c->seed <= 0) c->seed = 1;
  if (o->calls > 0) c->calls = o->calls;
  if (o->rate > 0) c->rate = o->rate;
  if (o->seed > 0) c->seed = o->seed;
  const char *u = json_string_value(json_object_get(c->exp, "uac"));
  const char *s = json_string_value(json_object_get(c->exp, "uas"));
  snprintf(c->uac, sizeof c->uac, "%.800s/%.200s", c->dir, u ? u : "uac.xml");
  snprintf(c->uas, sizeof c->uas, "%.800s/%.200s", c->dir, s ? s : "uas.xml");
  if (access(c->uas, R_OK) && kz_cli_up_resolve("scenarios/sipp/basic-call/uas.xml", c->uas, sizeof c->uas)) {
    fprintf(stderr, "kz scenario: %s: no uas.xml\n", c->name);
    return -1;
  }
  char rp[PATH_MAX];
  if (realpath(c->uac, rp)) snprintf(c->uac, sizeof c->uac, "%.1023s", rp);
  if (realpath(c->uas, rp)) snprintf(c->uas, sizeof c->uas, "%.1023s", rp);
  if (o->topology) {
    if (!realpath(o->topology, rp)) {
      fprintf(stderr, "kz scenario: %s: %s\n", o->topology, strerror(errno));
      return -1;
    }
    snprintf(c->topology, sizeof c->topology, "%.1023s", rp);
  } else {
    const char *t = json_string_value(json_object_get(c->exp, "topology"));
    char rel[SC_PATH];
    if (!t) t = "sipp-direct.yaml";
    if (strchr(t, '/')) snprintf(rel, sizeof rel, "%s", t);
    else snprintf(rel, sizeof rel, "scenarios/topologies/%s", t);
    if (kz_cli_up_resolve(rel, c->topology, sizeof c->topology)) {
      fprintf(stderr, "kz scenario: %s: no topology %s\n", c->name, rel);
      return -1;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Checking */

/* Percentile q (0..100) of sorted values. */
static double pct(const double *v, size_t n, int q) {
  if (!n) return -1;
  size_t k = (size_t)((q * (n - 1) + 50) / 100);
  return v[k];
}

static int cmp_dbl(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Compares obs with the case's expectations (uac counts times nuac).
 * Appends mismatches to why; returns how many. */
static int check(const struct sc_case *c, const struct sc_obs *obs, long nuac, char *why, size_t len) {
  json_t *exp = json_object_get(c->exp, "expect");
  int bad = 0;
  why[0] = 0;
#define BAD(...)                                                                                                    \
  do {                                                                                                             \
    size_t l_ = strlen(why);                                                                                       \
    if (l_ + 2 < len) snprintf(why + l_, len - l_, "%s", l_ ? "; " : "");                                          \
    l_ = strlen(why);                                                                                              \
    if (l_ < len) snprintf(why + l_, len - l_, __VA_ARGS__);                                                       \
    bad++;                                                                                                         \
  } while (0)
  if (!obs->ran) {
    BAD("did not run: %s", obs->note);
    return bad;
  }
  json_t *u = json_object_get(exp, "uac");
  json_t *ok = json_object_get(u, "successful"), *ko = json_object_get(u, "failed");
  if (!ok) ok = json_object_get(u, "calls_successful");
  if (!ko) ko = json_object_get(u, "calls_failed");
  if (ok && obs->successful != json_integer_value(ok) * nuac)
    BAD("uac successful calls: %ld, expected %lld", obs->successful, (long long)(json_integer_value(ok) * nuac));
  if (ko && obs->failed != json_integer_value(ko) * nuac)
    BAD("uac failed calls: %ld, expected %lld", obs->failed, (long long)(json_integer_value(ko) * nuac));
  const char *code;
  json_t *v;
  json_object_foreach(json_object_get(exp, "uac_codes_received"), code, v) {
    long got = (long)json_integer_value(json_object_get(obs->uac_codes, code));
    if (got < json_integer_value(v) * nuac)
      BAD("uac received %ld x %s, expected at least %lld", got, code, (long long)(json_integer_value(v) * nuac));
  }
  json_object_foreach(json_object_get(exp, "uas_codes_sent"), code, v) {
    long got = (long)json_integer_value(json_object_get(obs->uas_codes, code));
    if (got < json_integer_value(v))
      BAD("media stand-ins sent %ld x %s, expected at least %lld", got, code, (long long)json_integer_value(v));
  }
  json_t *oc = json_object_get(exp, "uac_out_of_call_min");
  if (oc && obs->out_of_call < json_integer_value(oc))
    BAD("uac out-of-call messages: %ld, expected at least %lld", obs->out_of_call, (long long)json_integer_value(oc));
  if (obs->proxy_stats) {
    const char *k;
    json_object_foreach(json_object_get(c->exp, "real_proxy_stats"), k, v) {
      long got = (long)json_integer_value(json_object_get(obs->proxy_stats, k));
      if (got < json_integer_value(v)) BAD("proxy %s = %ld, expected at least %lld", k, got, (long long)json_integer_value(v));
    }
  }
  if (obs->sim_checks[0]) BAD("simulator invariants failed: %s", obs->sim_checks);
#undef BAD
  return bad;
}

static void verdict(struct sc_result *r, const struct sc_case *c, int bad, const char *why) {
  if (r->obs.skipped) {
    r->outcome = "SKIP";
    snprintf(r->detail, sizeof r->detail, "%s", r->obs.note);
    return;
  }
  const char *known = json_string_value(json_object_get(json_object_get(c->exp, "known_issue"), r->world));
  if (bad && known) {
    r->outcome = "KNOWN-BUG";
    snprintf(r->detail, sizeof r->detail, "%s (%s)", known, why);
  } else if (bad) {
    r->outcome = "FAIL";
    snprintf(r->detail, sizeof r->detail, "%s", why);
  } else if (known) {
    r->outcome = "FAIL";
    snprintf(r->detail, sizeof r->detail, "passes now: remove known_issue.%s from expected.json", r->world);
  } else {
    r->outcome = "PASS";
    snprintf(r->detail, sizeof r->detail, "%ld ok, %ld failed", r->obs.successful, r->obs.failed);
  }
}

/* ------------------------------------------------------------------ */
/* Topology helpers */

struct sc_topo {
  struct kz_topo *t;
  size_t uac[SC_MAX_EP], uas[SC_MAX_EP], entry[SC_MAX_EP];
  size_t nuac, nuas, nentry;
};

static int topo_load(struct sc_topo *st, const char *path) {
  memset(st, 0, sizeof *st);
  struct kz_topo_err err;
  if (kz_topo_load_file(&st->t, path, &err)) {
    fprintf(stderr, "kz scenario: %s\n", err.text);
    return -1;
  }
  const struct kz_topo *t = st->t;
  for (size_t h = 0; h < t->nhosts; h++) {
    if ((t->hosts[h].roles & (1u << KZ_TOPO_SIPP_UAC)) && st->nuac < SC_MAX_EP) st->uac[st->nuac++] = h;
    if ((t->hosts[h].roles & (1u << KZ_TOPO_SIPP_UAS)) && st->nuas < SC_MAX_EP) st->uas[st->nuas++] = h;
  }
  /* Where UACs send, as in the simulator: proxies, else media, else UASes. */
  static const int entry_roles[] = {KZ_TOPO_PROXY, KZ_TOPO_MEDIA, KZ_TOPO_SIPP_UAS};
  for (size_t k = 0; k < 3 && !st->nentry; k++)
    for (size_t h = 0; h < t->nhosts && st->nentry < SC_MAX_EP; h++)
      if (t->hosts[h].roles & (1u << entry_roles[k])) st->entry[st->nentry++] = h;
  if (!st->nuac || !st->nentry) {
    fprintf(stderr, "kz scenario: %s: needs a sipp-uac host and somewhere to call\n", path);
    kz_topo_free(st->t);
    st->t = NULL;
    return -1;
  }
  return 0;
}

/* The case's keys, "@host" values replaced with that host's address in
 * the world (net < -1: the simulator's addresses).  Appends
 * "-key"/"--key" NAME VALUE to argv from *n.  Strings live in store. */
static void add_keys(const struct sc_case *c, const struct kz_topo *t, bool real, int net, char **argv, int *n,
                     char store[][64], int *ns) {
  const char *k;
  json_t *v;
  json_object_foreach(json_object_get(c->exp, "keys"), k, v) {
    const char *val = json_string_value(v);
    if (!val || *ns >= 16) continue;
    if (val[0] == '@') {
      long h = kz_topo_host_index(t, val + 1);
      if (h >= 0) {
        if (real) kz_cli_up_map_addr(&t->hosts[h].addr, net, store[*ns], 64);
        else kz_addr_format_ip(&t->hosts[h].addr, store[*ns], 64);
        val = store[(*ns)++];
      }
    }
    argv[(*n)++] = real ? "-key" : "--key";
    argv[(*n)++] = (char *)k;
    argv[(*n)++] = (char *)val;
  }
}

/* ------------------------------------------------------------------ */
/* The simulated world */

static void sim_world(const struct sc_opts *o, const struct sc_case *c, const struct sc_topo *st, const char *out,
                      struct sc_obs *obs) {
  char calls[24], rate[24], seed[24], log[SC_PATH + 16];
  snprintf(calls, sizeof calls, "%ld", c->calls);
  snprintf(rate, sizeof rate, "%ld", c->rate);
  snprintf(seed, sizeof seed, "%ld", c->seed);
  snprintf(log, sizeof log, "%s/kz-sim.log", out);
  char *argv[64] = {(char *)o->kz, "sim", "--topology", (char *)c->topology, "--uac", (char *)c->uac, "--uas",
                    (char *)c->uas, "--seed", seed, "--rate", rate, "--calls", calls, "--call-timeout", "30",
                    "--allow-failed-calls", "--quiet", "--out", (char *)out};
  int n = 20, ns = 0;
  char store[16][64];
  add_keys(c, st->t, false, 0, argv, &n, store, &ns);
  argv[n] = NULL;
  pid_t pid = sc_spawn(argv, NULL, log);
  int rc = pid > 0 ? sc_wait(pid, 300000) : -1;
  char summ[SC_PATH + 16];
  snprintf(summ, sizeof summ, "%s/summary.json", out);
  json_error_t je;
  json_t *s = json_load_file(summ, 0, &je);
  if (!s) {
    snprintf(obs->note, sizeof obs->note, "kz sim exited %d without a summary (see %.400s)", rc, log);
    return;
  }
  obs->ran = true;
  double rtt[SC_RTT_MAX];
  size_t nr = 0;
  json_t *e;
  size_t i;
  json_array_foreach(json_object_get(s, "endpoints"), i, e) {
    bool uac = !strcmp(json_string_value(json_object_get(e, "role")) ?: "", "uac");
    const char *code;
    json_t *cv;
    if (uac) {
      obs->successful += (long)json_integer_value(json_object_get(e, "calls_successful"));
      obs->failed += (long)json_integer_value(json_object_get(e, "calls_failed"));
      obs->out_of_call += (long)json_integer_value(json_object_get(e, "out_of_call"));
    }
    json_object_foreach(json_object_get(e, "response_codes"), code, cv) {
      if (uac) code_add(obs->uac_codes, code, (long)json_integer_value(json_object_get(cv, "received")));
      else code_add(obs->uas_codes, code, (long)json_integer_value(json_object_get(cv, "sent")));
    }
    /* Response times: the simulator keeps buckets; each measured response
     * counts at its bucket's upper bound (the last, open one at max). */
    json_t *rt = json_array_get(json_object_get(e, "response_times"), 0);
    json_t *ms = json_object_get(rt, "ms");
    json_t *bk;
    size_t bi;
    double maxms = (double)json_integer_value(json_object_get(ms, "max_ms"));
    json_array_foreach(json_object_get(ms, "buckets"), bi, bk) {
      json_t *below = json_object_get(bk, "below_ms");
      double val = json_is_null(below) ? maxms : (double)json_integer_value(below);
      if (maxms < val) val = maxms;
      for (json_int_t k = 0; k < json_integer_value(json_object_get(bk, "count")) && nr < SC_RTT_MAX; k++)
        rtt[nr++] = val;
    }
  }
  qsort(rtt, nr, sizeof rtt[0], cmp_dbl);
  obs->p50 = pct(rtt, nr, 50);
  obs->p95 = pct(rtt, nr, 95);
  obs->p99 = pct(rtt, nr, 99);
  /* The simulator's own invariants (every call ended, nothing leaked...)
   * hold in a passing case too. */
  json_array_foreach(json_object_get(s, "checks"), i, e) {
    if (strcmp(json_string_value(json_object_get(e, "kind")) ?: "always", "always") ||
        json_is_true(json_object_get(e, "ok")))
      continue;
    size_t l = strlen(obs->sim_checks);
    snprintf(obs->sim_checks + l, sizeof obs->sim_checks - l, "%s%s", l ? "; " : "",
             json_string_value(json_object_get(e, "name")) ?: "?");
  }
  json_decref(s);
}

/* ------------------------------------------------------------------ */
/* The real world */

/* Status codes in a sipp -message_file, by direction ("sent"/"received"). */
static void codes_from_msg(const char *path, const char *dir, json_t *into) {
  FILE *f = fopen(path, "r");
  if (!f) return;
  char line[2048];
  int want = -1;
  while (fgets(line, sizeof line, f)) {
    char w1[32], w2[32], w3[32];
    if (sscanf(line, "%31s %31s %31s", w1, w2, w3) == 3 && !strcmp(w2, "message") &&
        (!strcmp(w3, "received") || !strcmp(w3, "sent"))) {
      want = !strcmp(w3, dir);
      continue;
    }
    if (want < 0 || line[0] == '\n' || line[0] == '\r') continue;
    if (want && !strncmp(line, "SIP/2.0 ", 8) && line[11] == ' ') {
      char code[4] = {line[8], line[9], line[10], 0};
      code_add(into, code, 1);
    }
    want = -1;
  }
  fclose(f);
}

/* The last row of a -trace_stat file: the cumulative counters. */
static bool stat_counts(const char *path, long *ok, long *ko, long *ooc) {
  FILE *f = fopen(path, "r");
  if (!f) return false;
  static const size_t LINE = 65536;
  char *hdr = malloc(LINE), *line = malloc(LINE), *last = malloc(LINE);
  bool got = false;
  if (hdr && line && last && fgets(hdr, (int)LINE, f)) {
    last[0] = 0;
    while (fgets(line, (int)LINE, f)) memcpy(last, line, LINE);
    if (last[0]) {
      int iok = -1, iko = -1, iooc = -1, col = 0;
      for (char *save = NULL, *t = strtok_r(hdr, ";", &save); t; t = strtok_r(NULL, ";", &save), col++) {
        if (!strcmp(t, "SuccessfulCall(C)")) iok = col;
        if (!strcmp(t, "FailedCall(C)")) iko = col;
        if (!strcmp(t, "OutOfCallMsgs(C)")) iooc = col;
      }
      col = 0;
      for (char *p = last, *q; p; p = q ? q + 1 : NULL, col++) {
        q = strchr(p, ';');
        if (col == iok) *ok += atol(p);
        if (col == iko) *ko += atol(p);
        if (col == iooc) *ooc += atol(p);
      }
      got = iok >= 0;
    }
  }
  free(hdr);
  free(line);
  free(last);
  fclose(f);
  return got;
}

/* Response times of the UAC (sipp -trace_rtt: "date;date_ms;rtt_ms;rtd"). */
static void rtt_from(const char *dir, double *rtt, size_t *nr) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (l < 8 || strcmp(e->d_name + l - 8, "_rtt.csv")) continue;
    char p[SC_PATH + 300], line[512];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    FILE *f = fopen(p, "r");
    if (!f) continue;
    while (fgets(line, sizeof line, f) && *nr < SC_RTT_MAX) {
      double a, b;
      char rtd[32];
      if (sscanf(line, "%lf;%lf;%31[^;\n]", &a, &b, rtd) == 3) rtt[(*nr)++] = b;
    }
    fclose(f);
  }
  closedir(d);
}

static void real_world(const struct sc_opts *o, const struct sc_case *c, const struct sc_topo *st, int net,
                       const char *out, struct sc_obs *obs) {
  const struct kz_topo *t = st->t;
  const char *sipp = o->sipp;
  pid_t uas[SC_MAX_EP] = {0}, uac[SC_MAX_EP] = {0};
  char addr[SC_MAX_EP][64];
  char store[16][64];
  /* The media stand-ins first; the proxies probe them every probe
   * interval, so they are given time to be seen up. */
  for (size_t i = 0; i < st->nuas; i++) {
    const char *h = t->hosts[st->uas[i]].name;
    kz_cli_up_map_addr(&t->hosts[st->uas[i]].addr, net, addr[i], sizeof addr[i]);
    char msg[SC_PATH + 64], err[SC_PATH + 64], log[SC_PATH + 64];
    snprintf(msg, sizeof msg, "%s/uas-%s.msg", out, h);
    snprintf(err, sizeof err, "%s/uas-%s.err", out, h);
    snprintf(log, sizeof log, "%s/uas-%s.log", out, h);
    char *argv[64] = {(char *)sipp, "-sf", (char *)c->uas, "-i", addr[i], "-p", "5060", "-timeout", "120s",
                      "-nostdin", "-trace_msg", "-message_file", msg, "-trace_err", "-error_file", err};
    int n = 16, ns = 0;
    add_keys(c, t, true, net, argv, &n, store, &ns);
    argv[n] = NULL;
    uas[i] = sc_spawn(argv, out, log);
  }
  sleep_ms(2500);
  char calls[24], rate[24];
  snprintf(calls, sizeof calls, "%ld", c->calls);
  snprintf(rate, sizeof rate, "%ld", c->rate);
  char uac_addr[SC_MAX_EP][64], target[SC_MAX_EP][80];
  for (size_t i = 0; i < st->nuac; i++) {
    const char *h = t->hosts[st->uac[i]].name;
    kz_cli_up_map_addr(&t->hosts[st->uac[i]].addr, net, uac_addr[i], sizeof uac_addr[i]);
    char ta[64];
    kz_cli_up_map_addr(&t->hosts[st->entry[i % st->nentry]].addr, net, ta, sizeof ta);
    snprintf(target[i], sizeof target[i], "%s:5060", ta);
    char stf[SC_PATH + 64], msg[SC_PATH + 64], err[SC_PATH + 64], log[SC_PATH + 64];
    snprintf(stf, sizeof stf, "%s/uac-%s.csv", out, h);
    snprintf(msg, sizeof msg, "%s/uac-%s.msg", out, h);
    snprintf(err, sizeof err, "%s/uac-%s.err", out, h);
    snprintf(log, sizeof log, "%s/uac-%s.log", out, h);
    char *argv[64] = {(char *)sipp, "-sf", (char *)c->uac, "-i", uac_addr[i], "-p", "5060", target[i], "-m", calls,
                      "-r", rate, "-timeout", "60s", "-timeout_error", "-trace_stat", "-stf", stf, "-fd", "1",
                      "-trace_msg", "-message_file", msg, "-trace_err", "-error_file", err, "-trace_rtt",
                      "-rtt_freq", "1", "-nostdin"};
    int n = 29, ns = 0;
    add_keys(c, t, true, net, argv, &n, store, &ns);
    argv[n] = NULL;
    uac[i] = sc_spawn(argv, out, log);
  }
  bool timed_out = false;
  for (size_t i = 0; i < st->nuac; i++)
    if (uac[i] > 0 && sc_wait(uac[i], 90000) == -1) timed_out = true;
  sleep_ms(500); /* let the stand-ins finish (BYE's 200, pauses) */
  for (size_t i = 0; i < st->nuas; i++) sc_stop(uas[i]);
  obs->ran = true;
  for (size_t i = 0; i < st->nuac; i++) {
    const char *h = t->hosts[st->uac[i]].name;
    char stf[SC_PATH + 64], msg[SC_PATH + 64];
    snprintf(stf, sizeof stf, "%s/uac-%s.csv", out, h);
    snprintf(msg, sizeof msg, "%s/uac-%s.msg", out, h);
    if (!stat_counts(stf, &obs->successful, &obs->failed, &obs->out_of_call)) {
      obs->ran = false;
      snprintf(obs->note, sizeof obs->note, "sipp (uac on %.64s) wrote no statistics (see %.300s/uac-%.64s.log)", h, out, h);
    }
    codes_from_msg(msg, "received", obs->uac_codes);
  }
  for (size_t i = 0; i < st->nuas; i++) {
    char msg[SC_PATH + 64];
    snprintf(msg, sizeof msg, "%s/uas-%s.msg", out, t->hosts[st->uas[i]].name);
    codes_from_msg(msg, "sent", obs->uas_codes);
  }
  if (timed_out && obs->ran) snprintf(obs->note, sizeof obs->note, "a sipp UAC was killed after 90 s");
  double rtt[SC_RTT_MAX];
  size_t nr = 0;
  rtt_from(out, rtt, &nr);
  qsort(rtt, nr, sizeof rtt[0], cmp_dbl);
  obs->p50 = pct(rtt, nr, 50);
  obs->p95 = pct(rtt, nr, 95);
  obs->p99 = pct(rtt, nr, 99);
}

/* The project's one CI check: CI set to true, 1 or yes (any case). */
static bool ci_env(void) {
  const char *v = getenv("CI");
  return v && (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes"));
}

/* Is `prog` runnable (a path, or a name found on PATH)? */
static bool have_program(const char *prog) {
  if (strchr(prog, '/')) return access(prog, X_OK) == 0;
  const char *path = getenv("PATH");
  if (!path) return false;
  char dir[SC_PATH];
  for (const char *p = path; *p;) {
    size_t l = strcspn(p, ":");
    snprintf(dir, sizeof dir, "%.*s/%s", (int)(l < 1024 ? l : 1024), p, prog);
    if (l && access(dir, X_OK) == 0) return true;
    p += l + (p[l] == ':');
  }
  return false;
}

/* What the real world needs and is not installed, into `out` ("" when
 * everything is there). */
static void tools_missing(const char *sipp, char *out, size_t len) {
  out[0] = 0;
  bool no_sipp = !have_program(sipp);
  bool no_rabbit = access("/usr/lib/rabbitmq/bin/rabbitmq-server", X_OK) != 0;
  if (no_sipp || no_rabbit)
    snprintf(out, len, "%s%s%s not installed", no_sipp ? sipp : "", no_sipp && no_rabbit ? " and " : "",
             no_rabbit ? "rabbitmq-server" : "");
}

/* Sums the counters of the last "kz run proxy: stats k=v ..." line of
 * every proxy log of the cluster in `state` (each proxy prints one as it
 * stops).  Returns a new object (empty when none was found). */
static json_t *proxy_stats_read(const char *state) {
  json_t *sum = json_object();
  char dir[SC_PATH];
  snprintf(dir, sizeof dir, "%s/logs", state);
  DIR *d = opendir(dir);
  if (!d || !sum) {
    if (d) closedir(d);
    return sum;
  }
  static const char tag[] = "kz run proxy: stats ";
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (strncmp(e->d_name, "proxy-", 6) || l < 5 || strcmp(e->d_name + l - 4, ".log")) continue;
    char path[SC_PATH + 300], line[2048], last[2048] = "";
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    while (fgets(line, sizeof line, f))
      if (strstr(line, tag)) snprintf(last, sizeof last, "%s", strstr(line, tag) + sizeof tag - 1);
    fclose(f);
    for (char *tok = strtok(last, " \n"); tok; tok = strtok(NULL, " \n")) {
      char *eq = strchr(tok, '=');
      if (!eq) continue;
      *eq = 0;
      json_t *v = json_object_get(sum, tok);
      json_object_set_new(sum, tok, json_integer((v ? json_integer_value(v) : 0) + atoll(eq + 1)));
    }
  }
  closedir(d);
  return sum;
}

/* ------------------------------------------------------------------ */
/* Report */

static void ms_str(double v, char *out, size_t len) {
  if (v < 0) snprintf(out, len, "-");
  else snprintf(out, len, "%.0f", v);
}

static void print_table(const struct sc_result *r, size_t n) {
  printf("\n%-22s %-5s %-9s %5s %5s %6s %6s  %s\n", "CASE", "WORLD", "OUTCOME", "OK", "FAIL", "p50ms", "p95ms",
         "DETAIL");
  for (size_t i = 0; i < n; i++) {
    char a[16], b[16];
    ms_str(r[i].obs.p50, a, sizeof a);
    ms_str(r[i].obs.p95, b, sizeof b);
    printf("%-22s %-5s %-9s %5ld %5ld %6s %6s  %s\n", r[i].name, r[i].world, r[i].outcome, r[i].obs.successful,
           r[i].obs.failed, a, b, r[i].detail);
  }
}

static void html_escape(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '<') fputs("&lt;", f);
    else if (*s == '>') fputs("&gt;", f);
    else if (*s == '&') fputs("&amp;", f);
    else fputc(*s, f);
  }
}

static json_t *pct_json(double v) { return v < 0 ? json_null() : json_real(v); }

static int write_report(const char *dir, const char *topology, const struct sc_result *r, size_t n,
                        const char *const *agree, size_t nagree) {
  if (mkdirs(dir)) {
    fprintf(stderr, "kz scenario: cannot create %s: %s\n", dir, strerror(errno));
    return -1;
  }
  json_t *rows = json_array();
  for (size_t i = 0; i < n; i++) {
    json_t *row = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:O, s:O, s:o, s:o, s:o, s:s}", "case", r[i].name,
                            "world", r[i].world, "outcome", r[i].outcome, "successful",
                            (json_int_t)r[i].obs.successful, "failed", (json_int_t)r[i].obs.failed, "out_of_call",
                            (json_int_t)r[i].obs.out_of_call, "uac_codes_received", r[i].obs.uac_codes,
                            "uas_codes_sent", r[i].obs.uas_codes, "p50_ms", pct_json(r[i].obs.p50), "p95_ms",
                            pct_json(r[i].obs.p95), "p99_ms", pct_json(r[i].obs.p99), "detail", r[i].detail);
    json_array_append_new(rows, row);
  }
  json_t *dis = json_array();
  for (size_t i = 0; i < nagree; i++) json_array_append_new(dis, json_string(agree[i]));
  json_t *j = json_pack("{s:s, s:I, s:o, s:o}", "topology", topology, "generated_unix", (json_int_t)time(NULL),
                        "results", rows, "disagreements", dis);
  char p[SC_PATH + 32];
  snprintf(p, sizeof p, "%s/compare.json", dir);
  int rc = json_dump_file(j, p, JSON_INDENT(2));
  json_decref(j);
  snprintf(p, sizeof p, "%s/compare.html", dir);
  FILE *f = fopen(p, "w");
  if (!f || rc) {
    if (f) fclose(f);
    fprintf(stderr, "kz scenario: cannot write the report in %s\n", dir);
    return -1;
  }
  fprintf(f, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>kz scenarios: real vs simulated</title>\n"
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}td.n{text-align:right}"
             ".PASS{background:#dfd}.FAIL{background:#fdd}.KNOWN-BUG{background:#ffd}</style></head><body>\n"
             "<h1>Scenario library: real vs simulated</h1>\n<p>Topology: <code>");
  html_escape(f, topology);
  fprintf(f, "</code>. Response times: the UACs' rtd 1 (ms; the simulator's are bucket upper bounds).</p>\n");
  if (nagree) {
    fprintf(f, "<h2>Worlds disagree</h2><ul>\n");
    for (size_t i = 0; i < nagree; i++) {
      fprintf(f, "<li>");
      html_escape(f, agree[i]);
      fprintf(f, "</li>\n");
    }
    fprintf(f, "</ul>\n");
  }
  fprintf(f, "<table><tr><th>case</th><th>world</th><th>outcome</th><th>ok</th><th>failed</th><th>codes received "
             "(uac)</th><th>p50</th><th>p95</th><th>p99</th><th>detail</th></tr>\n");
  for (size_t i = 0; i < n; i++) {
    char a[16], b[16], c[16];
    ms_str(r[i].obs.p50, a, sizeof a);
    ms_str(r[i].obs.p95, b, sizeof b);
    ms_str(r[i].obs.p99, c, sizeof c);
    char *codes = json_dumps(r[i].obs.uac_codes, JSON_COMPACT | JSON_SORT_KEYS);
    fprintf(f, "<tr class=\"%s\"><td>", r[i].outcome);
    html_escape(f, r[i].name);
    fprintf(f, "</td><td>%s</td><td>%s</td><td class=n>%ld</td><td class=n>%ld</td><td>", r[i].world, r[i].outcome,
            r[i].obs.successful, r[i].obs.failed);
    html_escape(f, codes ? codes : "");
    fprintf(f, "</td><td class=n>%s</td><td class=n>%s</td><td class=n>%s</td><td>", a, b, c);
    html_escape(f, r[i].detail);
    fprintf(f, "</td></tr>\n");
    free(codes);
  }
  fprintf(f, "</table>\n</body></html>\n");
  fclose(f);
  return 0;
}

/* ------------------------------------------------------------------ */

static void run_usage(FILE *out) {
  fprintf(out,
          "usage: kz scenario list [--dir DIR]\n"
          "       kz scenario run CASE... [--topology T] [--real] [--sim] [options]\n\n"
          "Runs cases of the SIPp scenario library (scenarios/sipp/CASE/) and checks each\n"
          "world's outcome against the case's expected.json:\n"
          "  --sim    in the simulator (kz sim with the case's uac.xml/uas.xml)\n"
          "  --real   for real: real sipp on the topology's loopback addresses against the\n"
          "           roles `kz up` runs (when nothing is up in --state, each topology the\n"
          "           cases use is started for its cases and stopped after them; a proxy\n"
          "           restart after each case clears its state and reads its counters).\n"
          "           Without sipp or RabbitMQ the real world is skipped (with CI=true: fails)\n"
          "  both     the worlds must also agree on successful/failed calls\n\n"
          "  --suite S         every case whose expected.json says \"suite\": S (e.g. proxy)\n"
          "  --topology T      topology (default: the case's own, scenarios/topologies/)\n"
          "  --state DIR       kz up's state directory (default .kz)\n"
          "  --net N           with --real when kz up is started here: hosts on 127.N.c.d\n"
          "  --broker-port N   with --real when kz up is started here (default 5672)\n"
          "  --calls N, --rate N, --seed N   override expected.json's\n"
          "  --out DIR         per-case outputs (default reports/scenarios/runs)\n"
          "  --report DIR      write DIR/compare.json and DIR/compare.html (case x world x outcome,\n"
          "                    response-time percentiles)\n"
          "  --sipp PATH       the sipp binary (default: sipp on PATH)\n\n"
          "Counts in expected.json are per UAC host; a topology with k sipp-uac hosts expects\n"
          "k times the UAC counts.  Exit status: 0 every outcome PASS, KNOWN-BUG or SKIP and\n"
          "the worlds agree, 1 otherwise, 2 usage or setup error.\n");
}

static int sc_run(int argc, char **argv) {
  struct sc_opts o = {.state = ".kz", .out = "reports/scenarios/runs", .sipp = "sipp", .net = -1};
  char *names[128];
  size_t nn = 0;
  int status = 2;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      run_usage(stdout);
      status = 0;
      goto done;
    } else if (v && !strcmp(a, "--suite")) {
      long k = suite_cases(v, names, nn, 128);
      if (k <= 0) {
        fprintf(stderr, "kz scenario run: no case of suite '%s' in the library\n", v);
        goto done;
      }
      nn += (size_t)k;
      i++;
    } else if (!strcmp(a, "--real")) {
      o.real = true;
    } else if (!strcmp(a, "--sim")) {
      o.sim = true;
    } else if (!strcmp(a, "--quiet")) {
      o.quiet = true;
    } else if (v && !strcmp(a, "--topology")) {
      o.topology = v, i++;
    } else if (v && !strcmp(a, "--state")) {
      o.state = v, i++;
    } else if (v && !strcmp(a, "--out")) {
      o.out = v, i++;
    } else if (v && !strcmp(a, "--report")) {
      o.report = v, i++;
    } else if (v && !strcmp(a, "--sipp")) {
      o.sipp = v, i++;
    } else if (v && !strcmp(a, "--calls")) {
      o.calls = atol(v), i++;
    } else if (v && !strcmp(a, "--rate")) {
      o.rate = atol(v), i++;
    } else if (v && !strcmp(a, "--seed")) {
      o.seed = atol(v), i++;
    } else if (v && !strcmp(a, "--net")) {
      o.net = atoi(v), i++;
    } else if (v && !strcmp(a, "--broker-port")) {
      o.broker_port = atoi(v), i++;
    } else if (a[0] != '-' && nn < 128) {
      names[nn++] = strdup(a);
    } else {
      fprintf(stderr, "kz scenario run: unexpected argument '%s'\n", a);
      run_usage(stderr);
      goto done;
    }
  }
  if (!nn || (!o.real && !o.sim)) {
    fprintf(stderr, "kz scenario run: name at least one CASE (or --suite S) and --real and/or --sim\n");
    run_usage(stderr);
    goto done;
  }
  if (kz_cli_up_kz_bin(o.kz, sizeof o.kz)) {
    fprintf(stderr, "kz scenario: cannot find the kz binary (set KZ_BIN)\n");
    goto done;
  }
  struct sc_case *cases = calloc(nn, sizeof *cases);
  struct sc_result *res = calloc(nn * 2, sizeof *res);
  const char *dis[128];
  char disbuf[128][256];
  size_t nres = 0, ndis = 0;
  bool started_up = false;
  int net = o.net;
  char topo_list[2048] = "";
  struct sc_topo st = {0};
  if (!cases || !res) goto out;
  for (size_t i = 0; i < nn; i++)
    if (case_load(&cases[i], names[i], &o)) goto out;
  /* The cases' topologies in order of first use: the real world runs one
   * at a time (kz up, its cases, kz down). */
  const char *topos[128];
  size_t ntopo = 0;
  for (size_t i = 0; i < nn; i++) {
    size_t k = 0;
    while (k < ntopo && strcmp(topos[k], cases[i].topology)) k++;
    if (k == ntopo) topos[ntopo++] = cases[i].topology;
  }
  bool was_running = false;
  if (o.real) {
    char running[SC_PATH] = "";
    int rnet = -1;
    if (kz_cli_up_running(o.state, running, sizeof running, &rnet)) {
      if (ntopo != 1 || strcmp(running, topos[0])) {
        fprintf(stderr, "kz scenario run: %s runs %s; these cases need %s%s (kz down first, or another --state)\n",
                o.state, running, topos[0], ntopo > 1 ? " and others" : "");
        goto out;
      }
      was_running = true;
      net = rnet;
    }
  }
  /* Without sipp or RabbitMQ the real world cannot run: outside CI its
   * cases are skipped with the reason, in CI they fail. */
  char lacks[256] = "";
  if (o.real) tools_missing(o.sipp, lacks, sizeof lacks);
  bool in_ci = ci_env();
  if (lacks[0]) fprintf(stderr, "kz scenario run: %s: the real world %s\n", lacks, in_ci ? "FAILS (CI)" : "is skipped");
  status = 0;
  bool proxies_broken = false;
  for (size_t g = 0; g < ntopo && status != 2; g++) {
    bool real_g = o.real && !lacks[0];
    if (real_g && !was_running) {
      if (!o.quiet) printf("kz scenario: starting %s for its cases (kz up)\n", topos[g]);
      int rc = kz_cli_up_start(topos[g], o.state, o.broker_port, o.net, o.quiet);
      if (rc) {
        fprintf(stderr, "kz scenario run: kz up %s failed (%d)\n", topos[g], rc);
        status = 2;
        break;
      }
      started_up = true;
      proxies_broken = false;
    } else if (real_g) {
      /* Somebody else's cluster: start from fresh proxies as well. */
      proxies_broken = kz_cli_up_restart(o.state, "proxy", NULL, true) != 0;
    }
    for (size_t i = 0; i < nn && status != 2; i++) {
      struct sc_case *c = &cases[i];
      if (strcmp(c->topology, topos[g])) continue;
      if (topo_load(&st, c->topology)) {
        status = 2;
        break;
      }
      struct sc_result *rs = NULL, *rr = NULL;
      static const char *const worlds[2] = {"sim", "real"};
      for (int w = 0; w < 2; w++) {
        if (!(w ? o.real : o.sim)) continue;
        struct sc_result *r = &res[nres++];
        snprintf(r->name, sizeof r->name, "%s", c->name);
        snprintf(r->world, sizeof r->world, "%s", worlds[w]);
        obs_init(&r->obs);
        char first_fail[600] = "";
        /* The real world shares the machine with everything else that
         * runs: a failed real case is run once more, on fresh proxies,
         * and passes only if that run passes.  The first run's reason is
         * printed (quiet or not, so a CI log shows it) and kept in the
         * result's detail; the simulator is deterministic and runs once. */
        for (int attempt = 0; attempt < (w ? 2 : 1); attempt++) {
          char out[SC_PATH + 300];
          snprintf(out, sizeof out, "%s/%s/%s%s", o.out, c->name, worlds[w], attempt ? "-retry" : "");
          char rp[PATH_MAX];
          if (mkdirs(out) || !realpath(out, rp)) {
            fprintf(stderr, "kz scenario: cannot create %s\n", out);
            status = 2;
            break;
          }
          if (!o.quiet) printf("kz scenario: %s in the %s world (%ld calls per UAC at %ld/s) ...\n", c->name,
                               w ? "real" : "simulated", c->calls, c->rate);
          if (attempt) {
            obs_free(&r->obs);
            obs_init(&r->obs);
            if (proxies_broken) proxies_broken = kz_cli_up_restart(o.state, "proxy", NULL, true) != 0;
          }
          if (w && lacks[0]) {
            r->obs.skipped = !in_ci;
            snprintf(r->obs.note, sizeof r->obs.note, "%s (ci/setup installs it)", lacks);
          } else if (w && proxies_broken) {
            snprintf(r->obs.note, sizeof r->obs.note, "the proxies did not restart healthy after the previous case");
          } else if (w) {
            real_world(&o, c, &st, net, rp, &r->obs);
            /* A fresh proxy per case: bans, registrations and dispatcher
             * state must not leak into the next one.  A proxy prints its
             * counters as it stops: they are this case's. */
            proxies_broken = kz_cli_up_restart(o.state, "proxy", NULL, true) != 0;
            r->obs.proxy_stats = proxy_stats_read(o.state);
          } else {
            sim_world(&o, c, &st, rp, &r->obs);
          }
          char why[900];
          int bad = check(c, &r->obs, (long)st.nuac, why, sizeof why);
          verdict(r, c, bad, why);
          if (r->obs.note[0] && r->obs.ran) {
            size_t l = strlen(r->detail);
            snprintf(r->detail + l, sizeof r->detail - l, " (%s)", r->obs.note);
          }
          if (strcmp(r->outcome, "FAIL") || !w || lacks[0] || attempt) break;
          snprintf(first_fail, sizeof first_fail, "%.590s", r->detail);
          printf("kz scenario: %s failed in the real world (%s; see %s), running it once more\n", c->name,
                 first_fail, rp);
          fflush(stdout);
        }
        if (status == 2) break;
        if (first_fail[0]) {
          size_t l = strlen(r->detail);
          snprintf(r->detail + l, sizeof r->detail - l, " [second run; the first failed: %s]", first_fail);
        }
        if (!o.quiet) printf("  %-5s %-9s %s\n", r->world, r->outcome, r->detail);
        if (!strcmp(r->outcome, "FAIL")) status = 1;
        if (w) rr = r;
        else rs = r;
      }
      if (rs && rr && !rr->obs.skipped &&
          (rs->obs.successful != rr->obs.successful || rs->obs.failed != rr->obs.failed) && ndis < 128) {
        snprintf(disbuf[ndis], sizeof disbuf[ndis], "%s: sim %ld ok / %ld failed, real %ld ok / %ld failed",
                 c->name, rs->obs.successful, rs->obs.failed, rr->obs.successful, rr->obs.failed);
        dis[ndis] = disbuf[ndis];
        ndis++;
        /* A case both worlds know as buggy may disagree on how it fails. */
        if (strcmp(rs->outcome, "KNOWN-BUG") || strcmp(rr->outcome, "KNOWN-BUG")) status = 1;
      }
      kz_topo_free(st.t);
      st.t = NULL;
    }
    if (started_up) {
      kz_cli_up_stop(o.state, o.quiet);
      started_up = false;
    }
  }
  for (size_t g = 0, l = 0; g < ntopo; g++) {
    l += (size_t)snprintf(topo_list + l, sizeof topo_list - l, "%s%s", g ? ", " : "", topos[g]);
    if (l >= sizeof topo_list) break;
  }
  print_table(res, nres);
  for (size_t i = 0; i < ndis; i++) printf("worlds disagree: %s\n", dis[i]);
  if (o.report && nres && write_report(o.report, topo_list, res, nres, dis, ndis)) status = 2;
  else if (o.report && !o.quiet) printf("report: %s/compare.json, %s/compare.html\n", o.report, o.report);
  {
    size_t pass = 0, fail = 0, known = 0, skipped = 0;
    for (size_t i = 0; i < nres; i++) {
      if (!strcmp(res[i].outcome, "PASS")) pass++;
      else if (!strcmp(res[i].outcome, "FAIL")) fail++;
      else if (!strcmp(res[i].outcome, "SKIP")) skipped++;
      else known++;
    }
    printf("scenarios: %zu passed, %zu failed, %zu known bugs, %zu skipped, %zu disagreements\n", pass, fail, known,
           skipped, ndis);
  }
out:
  if (started_up) kz_cli_up_stop(o.state, o.quiet);
  for (size_t i = 0; i < nres; i++) obs_free(&res[i].obs);
  for (size_t i = 0; cases && i < nn; i++) json_decref(cases[i].exp);
  free(cases);
  free(res);
done:
  for (size_t i = 0; i < nn; i++) free(names[i]);
  return status;
}

int kz_cli_scenario(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "list")) return sc_list(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "run")) return sc_run(argc - 1, argv + 1);
  if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
    run_usage(stdout);
    return 0;
  }
  run_usage(stderr);
  return 2;
}
