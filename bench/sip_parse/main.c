/* main.c — kz_bench_sip_parse: kz's SIP parser against osip2, sofia-sip and libre in one run (speed and RFC 4475 strictness). */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "sipb.h"

/* ---- what is compared ---- */

static const struct sipb_parser *const parsers[] = {
    &sipb_kz,
    &sipb_kz_copy,
#ifdef SIPB_HAVE_OSIP
    &sipb_osip,
#endif
#ifdef SIPB_HAVE_SOFIA
    &sipb_sofia,
#endif
#ifdef SIPB_HAVE_LIBRE
    &sipb_libre,
#endif
};
#define NPARSERS (sizeof parsers / sizeof parsers[0])

struct message {
  const char *name;
  const char *path; /* relative to the source root */
  const char *what;
  uint8_t *data;
  size_t len;
};

static struct message messages[] = {
    {"register", "bench/sip_parse/messages/register.sip",
     "REGISTER from a softphone with digest Authorization (qop=auth), Contact with +sip.instance",
     NULL, 0},
    {"invite", "bench/sip_parse/messages/invite.sip",
     "INVITE from a carrier through a proxy: 2 Via, Record-Route, P-Asserted-Identity, SDP offer",
     NULL, 0},
    {"ok200", "bench/sip_parse/messages/ok200.sip",
     "200 OK to that INVITE: 2 Via, 2 Record-Route, Contact, SDP answer", NULL, 0},
    {"wsinv", "fixtures/sip/rfc4475/wsinv.dat",
     "RFC 4475 3.1.1.1 short tortuous INVITE: folding, odd LWS, compact forms, escapes", NULL, 0},
};
#define NMSGS (sizeof messages / sizeof messages[0])
#define NSERIES (NMSGS + 1) /* each message, then the mix */

/* ---- options ---- */

struct opts {
  const char *root;
  const char *out_dir;
  int rounds;
  int round_ms;
  int warmup_ms;
  uint64_t max_iters;
  int cpu;
  bool write;
  const char *only; /* comma-separated parser names, or NULL for all */
};

static void usage(void) {
  fprintf(stderr,
          "usage: kz_bench_sip_parse [--root DIR] [--out DIR] [--rounds N] [--round-ms MS]\n"
          "                          [--warmup-ms MS] [--max-iters N] [--cpu N] [--quick]\n"
          "                          [--no-write] [--only NAME[,NAME...]]\n"
          "Parses the same SIP messages with kz and every competitor found at build time,\n"
          "single-threaded on one pinned CPU, and writes OUT/sip_parse.json and .md\n"
          "(OUT defaults to ROOT/reports/bench).  --only times just the named parsers\n"
          "(for profiling; implies --no-write).\n");
}

/* ---- time ---- */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- files ---- */

static uint8_t *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  size_t cap = 4096, n = 0;
  uint8_t *buf = malloc(cap);
  while (buf) {
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (n < cap)
      break;
    uint8_t *nb = realloc(buf, cap * 2);
    if (!nb) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = nb;
    cap *= 2;
  }
  fclose(f);
  *len = n;
  return buf;
}

static char *path_join(const char *a, const char *b) {
  size_t n = strlen(a) + strlen(b) + 2;
  char *p = malloc(n);
  if (p)
    snprintf(p, n, "%s/%s", a, b);
  return p;
}

/* ---- measurement ---- */

static volatile uint64_t g_sink; /* keeps the parse results alive */

struct series_result {
  bool ok;          /* every message of the series was accepted */
  double rate[64];  /* msgs/s of each round */
  int nrounds;
  double median, min, max;
};

static struct series_result results[NPARSERS][NSERIES];
static bool timed[NPARSERS]; /* not excluded by --only */
static struct sipb_depth depth_seen[NPARSERS][NMSGS];
static bool accepted[NPARSERS][NMSGS];
static char reject_why[NPARSERS][NMSGS][128];

/* Runs one timed round: whole passes over `preps` until `max_iters`
 * passes or `budget_ns`, whichever first; returns messages per second. */
static double run_round(const struct sipb_parser *p, void **preps, size_t n, uint64_t budget_ns,
                        uint64_t max_iters) {
  uint64_t sink = 0, iters = 0;
  const uint64_t batch = 16;
  uint64_t t0 = now_ns(), t1 = t0;
  while (iters < max_iters) {
    for (uint64_t k = 0; k < batch; k++)
      for (size_t j = 0; j < n; j++)
        (void)p->parse(preps[j], &sink, NULL, NULL, 0);
    iters += batch;
    t1 = now_ns();
    if (t1 - t0 >= budget_ns)
      break;
  }
  g_sink += sink;
  double secs = (double)(t1 - t0) / 1e9;
  return secs > 0 ? (double)(iters * n) / secs : 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void summarise(struct series_result *r) {
  double sorted[64];
  memcpy(sorted, r->rate, sizeof(double) * (size_t)r->nrounds);
  qsort(sorted, (size_t)r->nrounds, sizeof(double), cmp_double);
  int n = r->nrounds;
  r->median = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  r->min = sorted[0];
  r->max = sorted[n - 1];
}

/* ---- RFC 4475 strictness ---- */

enum expect { EXP_ACCEPT, EXP_REJECT, EXP_NONE };

struct torture {
  char file[32];
  char section[16];
  char title[96];
  char rfc_class[24];
  enum expect expect;
  bool liberal_ok; /* the RFC lets a liberal element accept it */
  bool verdict[NPARSERS];
  char why[NPARSERS][128];
};

static struct torture tortures[64];
static size_t ntortures;

/* Invalid messages the RFC explicitly lets a liberal element accept
 * (quoting the "what an element must do" column of INDEX.md). */
static const char *const liberal_files[] = {
    "quotbal.dat", "ltgtruri.dat", "lwsruri.dat",  "lwsstart.dat", "trws.dat",
    "escruri.dat", "baddate.dat",  "regbadct.dat", "badaspec.dat",
};

/* Application-level (§3.2–3.4) messages that are malformed at the
 * message level and must be refused before any application logic. */
static const char *const app_reject_files[] = {"insuf.dat", "multi01.dat", "mcl01.dat"};
static const char *const app_none_files[] = {"badbranch.dat", "test.dat"};

static bool in_list(const char *f, const char *const *list, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(f, list[i]))
      return true;
  return false;
}

static void trim(char *s) {
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
    s[--n] = 0;
  size_t k = 0;
  while (s[k] == ' ' || s[k] == '\t')
    k++;
  memmove(s, s + k, n - k + 1);
}

/* Reads the table rows of fixtures/sip/rfc4475/INDEX.md: | file | § | title | class | ... | */
static int load_index(const char *dir) {
  char *path = path_join(dir, "INDEX.md");
  FILE *f = path ? fopen(path, "r") : NULL;
  free(path);
  if (!f)
    return -1;
  char line[2048];
  while (fgets(line, sizeof line, f) && ntortures < sizeof tortures / sizeof tortures[0]) {
    if (line[0] != '|')
      continue;
    char *cols[6] = {0};
    int nc = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line + 1, "|", &save); tok && nc < 6;
         tok = strtok_r(NULL, "|", &save))
      cols[nc++] = tok;
    if (nc < 4)
      continue;
    for (int i = 0; i < 4; i++)
      trim(cols[i]);
    size_t fl = strlen(cols[0]);
    if (fl < 5 || strcmp(cols[0] + fl - 4, ".dat"))
      continue;
    struct torture *t = &tortures[ntortures++];
    memset(t, 0, sizeof *t);
    snprintf(t->file, sizeof t->file, "%s", cols[0]);
    snprintf(t->section, sizeof t->section, "%s", cols[1]);
    snprintf(t->title, sizeof t->title, "%s", cols[2]);
    snprintf(t->rfc_class, sizeof t->rfc_class, "%s", cols[3]);
    if (in_list(t->file, app_none_files, 2))
      t->expect = EXP_NONE;
    else if (!strcmp(t->rfc_class, "valid"))
      t->expect = EXP_ACCEPT;
    else if (!strcmp(t->rfc_class, "invalid"))
      t->expect = EXP_REJECT;
    else
      t->expect = in_list(t->file, app_reject_files, 3) ? EXP_REJECT : EXP_ACCEPT;
    t->liberal_ok = in_list(t->file, liberal_files, sizeof liberal_files / sizeof *liberal_files);
  }
  fclose(f);
  return 0;
}

static void run_strictness(const char *dir) {
  for (size_t i = 0; i < ntortures; i++) {
    struct torture *t = &tortures[i];
    char *path = path_join(dir, t->file);
    size_t len = 0;
    uint8_t *data = path ? read_file(path, &len) : NULL;
    free(path);
    for (size_t p = 0; p < NPARSERS; p++) {
      if (!data) {
        snprintf(t->why[p], sizeof t->why[p], "cannot read file");
        continue;
      }
      void *prep = parsers[p]->prepare(data, len);
      uint64_t sink = 0;
      t->why[p][0] = 0;
      t->verdict[p] = prep && parsers[p]->parse(prep, &sink, NULL, t->why[p], sizeof t->why[p]) == 0;
      g_sink += sink;
      if (prep)
        parsers[p]->unprepare(prep);
    }
    free(data);
  }
}

struct strict_score {
  int valid_acc, valid_n;
  int inv_rej, inv_n, must_rej, must_n;
  int app_acc, app_acc_n, app_rej, app_rej_n;
  int agree, scored;
  int differs_from_kz;
};

static struct strict_score score_of(size_t p) {
  struct strict_score s = {0};
  for (size_t i = 0; i < ntortures; i++) {
    const struct torture *t = &tortures[i];
    bool v = t->verdict[p];
    if (v != t->verdict[0])
      s.differs_from_kz++;
    if (t->expect == EXP_NONE)
      continue;
    s.scored++;
    if ((t->expect == EXP_ACCEPT) == v)
      s.agree++;
    if (!strcmp(t->rfc_class, "valid")) {
      s.valid_n++;
      s.valid_acc += v;
    } else if (!strcmp(t->rfc_class, "invalid")) {
      s.inv_n++;
      s.inv_rej += !v;
      if (!t->liberal_ok) {
        s.must_n++;
        s.must_rej += !v;
      }
    } else if (t->expect == EXP_ACCEPT) {
      s.app_acc_n++;
      s.app_acc += v;
    } else {
      s.app_rej_n++;
      s.app_rej += !v;
    }
  }
  return s;
}

/* ---- environment ---- */

static void cpu_model(char *out, size_t n) {
  snprintf(out, n, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f)
    return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    if (!strncmp(line, "model name", 10)) {
      char *c = strchr(line, ':');
      if (c) {
        c++;
        while (*c == ' ')
          c++;
        c[strcspn(c, "\n")] = 0;
        snprintf(out, n, "%s", c);
      }
      break;
    }
  }
  fclose(f);
}

static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c < 0x20)
      fprintf(f, "\\u%04x", c);
    else
      fputc(c, f);
  }
  fputc('"', f);
}

/* Markdown table cells: no '|' or newline inside. */
static void md_cell(FILE *f, const char *s) {
  for (; *s; s++)
    fputs(*s == '|' ? "\\|" : *s == '\n' ? " " : (char[2]){*s, 0}, f);
}

static const char *series_name(size_t k) { return k < NMSGS ? messages[k].name : "mix"; }

static double ratio(size_t p, size_t k) {
  const struct series_result *a = &results[0][k], *b = &results[p][k];
  return a->ok && b->ok && b->median > 0 ? a->median / b->median : 0;
}

struct env_info {
  char date[32];
  char cpu[256];
  char uname[256];
  long ncpu;
  int pinned_cpu;
};

/* ---- the Markdown report: fixed explanations plus the measured tables ---- */

static const char unfairness_doc[] =
    "- **Depth is close, not identical.**  Every parser here parses the start line, the "
    "Request-URI, every Via, From, To, Contact, Route, Record-Route value, CSeq, Call-ID and the "
    "digest credentials, and walks every header.  osip2 and sofia-sip also parse some headers "
    "kz leaves raw (Allow, Supported, Require, Session-Expires, Accept..., split into values), "
    "which costs them time kz does not spend (see the visited counts); libre checks less than "
    "kz (no Content-Length against the datagram, no repeated-header or number-range checks).  "
    "P-Asserted-Identity stays a raw named value in all of them.\n"
    "- **Copies.**  osip2 and sofia-sip always copy the bytes (their API takes a buffer and "
    "keeps its own); osip2 also unfolds the copy in place.  kz and libre parse in place.  The "
    "`kz-copy` row is kz with `KZ_SIP_PARSE_COPY`, the same work as the copying parsers.\n"
    "- **Allocation.**  Each parser uses its own allocator: kz one block per message (counted "
    "allocator of kz_core over malloc), osip2 many small mallocs, sofia-sip a per-message "
    "`su_home` arena, libre one `mem_zalloc` per header.  That is part of what is measured.\n"
    "- **Checks.**  kz refuses what is malformed (Content-Length against the datagram, repeated "
    "single-value headers, CSeq method, number ranges) inside the parse; the others do some of "
    "that later or never.  The benchmark adds the cheap required-headers check to osip2 and "
    "libre, and sofia's own `sip_sanity_check`, nothing else.\n"
    "- **Build.**  kz is compiled here with the release preset and linked statically, without "
    "LTO (the parse is not inlined into the loop); the competitors are the Debian binary "
    "packages, built with Debian's own flags, called through the shared library.\n"
    "- **Machine.**  Two shared cores: other jobs may run during the measurement.  Each figure "
    "is the median of several rounds; the min-max spread is in the JSON.  Rounds of all parsers "
    "are interleaved so a noisy moment hits all of them.";

static void write_md(FILE *f, const struct opts *o, const struct env_info *env) {
  fprintf(f, "# SIP parser benchmark: kz vs osip2, sofia-sip, libre\n\n");
  fprintf(f,
          "Generated by `kz_bench_sip_parse` (`bench/sip_parse/`, run by `ci/bench sip_parse`) "
          "on %s.  Do not edit: rerun it.\n\n",
          env->date);
  fprintf(f, "## Machine and build\n\n");
  fprintf(f, "- CPU: %s, %ld online CPUs; the benchmark ran pinned to CPU %d, one thread.\n",
          env->cpu, env->ncpu, env->pinned_cpu);
  fprintf(f, "- System: %s\n", env->uname);
  fprintf(f, "- Compiler: %s; build type %s; C flags `%s`\n", SIPB_COMPILER, SIPB_BUILD_TYPE,
          SIPB_C_FLAGS);
  fprintf(f, "- Parsers:");
  for (size_t p = 0; p < NPARSERS; p++)
    fprintf(f, "%s %s %s", p ? "," : "", parsers[p]->name, parsers[p]->version);
  fprintf(f, " (competitors: Debian packages, found with pkg-config)\n");
  fprintf(f,
          "- Method: for each message and for the mix (the %zu messages in turn), %d warm-up ms, "
          "then %d rounds of at most %d ms or %llu passes each, rounds of all parsers "
          "interleaved; the figure is the median round, in messages parsed per second on one "
          "core (CLOCK_MONOTONIC).\n\n",
          NMSGS, o->warmup_ms, o->rounds, o->round_ms, (unsigned long long)o->max_iters);

  fprintf(f, "## Messages\n\n| name | bytes | what |\n|---|---|---|\n");
  for (size_t m = 0; m < NMSGS; m++)
    fprintf(f, "| %s | %zu | %s (`%s`) |\n", messages[m].name, messages[m].len, messages[m].what,
            messages[m].path);

  fprintf(f, "\n## Speed (messages per second, one core, median)\n\n| parser |");
  for (size_t k = 0; k < NSERIES; k++)
    fprintf(f, " %s |", series_name(k));
  fprintf(f, "\n|---|");
  for (size_t k = 0; k < NSERIES; k++)
    fprintf(f, "---:|");
  fprintf(f, "\n");
  for (size_t p = 0; p < NPARSERS; p++) {
    fprintf(f, "| %s |", parsers[p]->name);
    for (size_t k = 0; k < NSERIES; k++) {
      if (results[p][k].ok)
        fprintf(f, " %.0f |", results[p][k].median);
      else
        fprintf(f, " refused |");
    }
    fprintf(f, "\n");
  }
  fprintf(f, "\nNanoseconds per message (1e9 / median):\n\n| parser |");
  for (size_t k = 0; k < NSERIES; k++)
    fprintf(f, " %s |", series_name(k));
  fprintf(f, "\n|---|");
  for (size_t k = 0; k < NSERIES; k++)
    fprintf(f, "---:|");
  fprintf(f, "\n");
  for (size_t p = 0; p < NPARSERS; p++) {
    fprintf(f, "| %s |", parsers[p]->name);
    for (size_t k = 0; k < NSERIES; k++)
      fprintf(f, results[p][k].ok ? " %.0f |" : " - |",
              results[p][k].ok ? 1e9 / results[p][k].median : 0);
    fprintf(f, "\n");
  }

  fprintf(f, "\n## Ratios kz / other (above 1: kz is faster)\n\n| kz vs |");
  for (size_t k = 0; k < NSERIES; k++)
    fprintf(f, " %s |", series_name(k));
  fprintf(f, "\n|---|");
  for (size_t k = 0; k < NSERIES; k++)
    fprintf(f, "---:|");
  fprintf(f, "\n");
  for (size_t p = 1; p < NPARSERS; p++) {
    fprintf(f, "| %s |", parsers[p]->name);
    for (size_t k = 0; k < NSERIES; k++) {
      double r = ratio(p, k);
      fprintf(f, r > 0 ? " %.2f |" : " - |", r);
    }
    fprintf(f, "\n");
  }

  fprintf(f, "\n## What \"same depth\" means for each parser\n\n");
  for (size_t p = 0; p < NPARSERS; p++)
    fprintf(f, "- **%s**: %s\n", parsers[p]->name, parsers[p]->depth_doc);
  fprintf(f, "\nWhat each parse visited (header fields walked / structured values decoded); "
             "the counts differ by how each library splits list headers, not by what is "
             "skipped:\n\n| parser |");
  for (size_t m = 0; m < NMSGS; m++)
    fprintf(f, " %s |", messages[m].name);
  fprintf(f, "\n|---|");
  for (size_t m = 0; m < NMSGS; m++)
    fprintf(f, "---|");
  fprintf(f, "\n");
  for (size_t p = 0; p < NPARSERS; p++) {
    fprintf(f, "| %s |", parsers[p]->name);
    for (size_t m = 0; m < NMSGS; m++) {
      if (accepted[p][m])
        fprintf(f, " %u / %u |", depth_seen[p][m].hdrs, depth_seen[p][m].values);
      else {
        fprintf(f, " refused: ");
        md_cell(f, reject_why[p][m]);
        fprintf(f, " |");
      }
    }
    fprintf(f, "\n");
  }
  fprintf(f, "\n### Unfairness left\n\n%s\n", unfairness_doc);

  fprintf(f, "\n## Strictness: the RFC 4475 torture messages\n\n");
  fprintf(f,
          "Every `fixtures/sip/rfc4475/*.dat` listed in its INDEX.md went through the same parse "
          "as above (datagram framing).  Expected: *valid* messages accepted; *invalid* ones "
          "refused (for %zu of them the RFC lets a liberal element accept: marked *L*); of the "
          "application-level ones (§3.2–3.4), insuf, multi01 and mcl01 are malformed at the "
          "message level (refuse), badbranch may go either way, the rest are well-formed "
          "(accept); test.dat has no expectation.  This judges the parse entry point plus the "
          "checks listed above; a stack may still refuse later what its parser let through "
          "(e.g. an upper layer answering 505 to badvers), which is not counted here.\n\n",
          sizeof liberal_files / sizeof *liberal_files);
  fprintf(f, "| parser | valid accepted | invalid refused | of which must-refuse refused | "
             "§3.2–3.4 well-formed accepted | §3.2–3.4 malformed refused | as expected | "
             "verdicts differing from kz |\n|---|---|---|---|---|---|---|---|\n");
  for (size_t p = 0; p < NPARSERS; p++) {
    struct strict_score s = score_of(p);
    fprintf(f, "| %s | %d/%d | %d/%d | %d/%d | %d/%d | %d/%d | %d/%d | %d |\n", parsers[p]->name,
            s.valid_acc, s.valid_n, s.inv_rej, s.inv_n, s.must_rej, s.must_n, s.app_acc,
            s.app_acc_n, s.app_rej, s.app_rej_n, s.agree, s.scored, s.differs_from_kz);
  }
  fprintf(f, "\nPer message (A = accepted, **R** = refused; a verdict against the expectation "
             "is marked with !):\n\n| file | § | class | expected |");
  for (size_t p = 0; p < NPARSERS; p++)
    fprintf(f, " %s |", parsers[p]->name);
  fprintf(f, "\n|---|---|---|---|");
  for (size_t p = 0; p < NPARSERS; p++)
    fprintf(f, "---|");
  fprintf(f, "\n");
  for (size_t i = 0; i < ntortures; i++) {
    const struct torture *t = &tortures[i];
    const char *exp = t->expect == EXP_ACCEPT ? "accept"
                      : t->expect == EXP_NONE ? "-"
                      : t->liberal_ok         ? "refuse (L)"
                                              : "refuse";
    fprintf(f, "| %s | %s | %s | %s |", t->file, t->section, t->rfc_class, exp);
    for (size_t p = 0; p < NPARSERS; p++) {
      bool bad = t->expect != EXP_NONE && (t->expect == EXP_ACCEPT) != t->verdict[p];
      fprintf(f, " %s%s |", t->verdict[p] ? "A" : "**R**", bad ? " !" : "");
    }
    fprintf(f, "\n");
  }
  fprintf(f, "\nVerdicts that differ from kz, with each side's reason:\n\n");
  int ndiff = 0;
  for (size_t i = 0; i < ntortures; i++) {
    const struct torture *t = &tortures[i];
    for (size_t p = 2; p < NPARSERS; p++) {
      if (t->verdict[p] == t->verdict[0])
        continue;
      ndiff++;
      fprintf(f, "- `%s` (%s, %s): kz %s", t->file, t->rfc_class, t->title,
              t->verdict[0] ? "accepts" : "refuses (");
      if (!t->verdict[0]) {
        md_cell(f, t->why[0]);
        fputc(')', f);
      }
      fprintf(f, "; %s %s", parsers[p]->name, t->verdict[p] ? "accepts" : "refuses (");
      if (!t->verdict[p]) {
        md_cell(f, t->why[p]);
        fputc(')', f);
      }
      fprintf(f, ".\n");
    }
  }
  if (!ndiff)
    fprintf(f, "- none\n");
}

static void write_json(FILE *f, const struct opts *o, const struct env_info *env) {
  fprintf(f, "{\n  \"benchmark\": \"sip_parse\",\n  \"date\": ");
  json_str(f, env->date);
  fprintf(f, ",\n  \"machine\": {\"cpu\": ");
  json_str(f, env->cpu);
  fprintf(f, ", \"online_cpus\": %ld, \"pinned_cpu\": %d, \"system\": ", env->ncpu,
          env->pinned_cpu);
  json_str(f, env->uname);
  fprintf(f, "},\n  \"build\": {\"compiler\": ");
  json_str(f, SIPB_COMPILER);
  fprintf(f, ", \"build_type\": ");
  json_str(f, SIPB_BUILD_TYPE);
  fprintf(f, ", \"c_flags\": ");
  json_str(f, SIPB_C_FLAGS);
  fprintf(f, "},\n  \"method\": {\"rounds\": %d, \"round_ms\": %d, \"warmup_ms\": %d, "
             "\"max_passes_per_round\": %llu, \"statistic\": \"median\", \"clock\": "
             "\"CLOCK_MONOTONIC\", \"threads\": 1},\n",
          o->rounds, o->round_ms, o->warmup_ms, (unsigned long long)o->max_iters);
  fprintf(f, "  \"messages\": [");
  for (size_t m = 0; m < NMSGS; m++) {
    fprintf(f, "%s\n    {\"name\": \"%s\", \"file\": ", m ? "," : "", messages[m].name);
    json_str(f, messages[m].path);
    fprintf(f, ", \"bytes\": %zu}", messages[m].len);
  }
  fprintf(f, "\n  ],\n  \"parsers\": [");
  for (size_t p = 0; p < NPARSERS; p++) {
    fprintf(f, "%s\n    {\"name\": \"%s\", \"version\": ", p ? "," : "", parsers[p]->name);
    json_str(f, parsers[p]->version);
    fprintf(f, ", \"depth\": ");
    json_str(f, parsers[p]->depth_doc);
    fprintf(f, ", \"visited\": {");
    for (size_t m = 0; m < NMSGS; m++)
      fprintf(f, "%s\"%s\": {\"accepted\": %s, \"header_fields\": %u, \"values\": %u}",
              m ? ", " : "", messages[m].name, accepted[p][m] ? "true" : "false",
              depth_seen[p][m].hdrs, depth_seen[p][m].values);
    fprintf(f, "}}");
  }
  fprintf(f, "\n  ],\n  \"msgs_per_s\": {");
  for (size_t p = 0; p < NPARSERS; p++) {
    fprintf(f, "%s\n    \"%s\": {", p ? "," : "", parsers[p]->name);
    for (size_t k = 0; k < NSERIES; k++) {
      const struct series_result *r = &results[p][k];
      fprintf(f, "%s\"%s\": ", k ? ", " : "", series_name(k));
      if (!r->ok)
        fprintf(f, "null");
      else {
        fprintf(f, "{\"median\": %.0f, \"min\": %.0f, \"max\": %.0f, \"rounds\": [", r->median,
                r->min, r->max);
        for (int i = 0; i < r->nrounds; i++)
          fprintf(f, "%s%.0f", i ? ", " : "", r->rate[i]);
        fprintf(f, "]}");
      }
    }
    fprintf(f, "}");
  }
  fprintf(f, "\n  },\n  \"ratio_kz_over\": {");
  for (size_t p = 1; p < NPARSERS; p++) {
    fprintf(f, "%s\n    \"%s\": {", p > 1 ? "," : "", parsers[p]->name);
    for (size_t k = 0; k < NSERIES; k++) {
      double r = ratio(p, k);
      fprintf(f, "%s\"%s\": ", k ? ", " : "", series_name(k));
      if (r > 0)
        fprintf(f, "%.3f", r);
      else
        fprintf(f, "null");
    }
    fprintf(f, "}");
  }
  fprintf(f, "\n  },\n  \"strictness\": {\n    \"corpus\": \"fixtures/sip/rfc4475\",\n"
             "    \"summary\": {");
  for (size_t p = 0; p < NPARSERS; p++) {
    struct strict_score s = score_of(p);
    fprintf(f,
            "%s\n      \"%s\": {\"valid_accepted\": %d, \"valid\": %d, \"invalid_refused\": %d, "
            "\"invalid\": %d, \"must_refuse_refused\": %d, \"must_refuse\": %d, "
            "\"app_wellformed_accepted\": %d, \"app_wellformed\": %d, "
            "\"app_malformed_refused\": %d, \"app_malformed\": %d, \"as_expected\": %d, "
            "\"scored\": %d, \"differs_from_kz\": %d}",
            p ? "," : "", parsers[p]->name, s.valid_acc, s.valid_n, s.inv_rej, s.inv_n,
            s.must_rej, s.must_n, s.app_acc, s.app_acc_n, s.app_rej, s.app_rej_n, s.agree,
            s.scored, s.differs_from_kz);
  }
  fprintf(f, "\n    },\n    \"messages\": [");
  for (size_t i = 0; i < ntortures; i++) {
    const struct torture *t = &tortures[i];
    fprintf(f, "%s\n      {\"file\": \"%s\", \"section\": ", i ? "," : "", t->file);
    json_str(f, t->section);
    fprintf(f, ", \"class\": ");
    json_str(f, t->rfc_class);
    fprintf(f, ", \"expected\": \"%s\", \"liberal_accept_allowed\": %s, \"verdicts\": {",
            t->expect == EXP_ACCEPT ? "accept" : t->expect == EXP_REJECT ? "refuse" : "none",
            t->liberal_ok ? "true" : "false");
    for (size_t p = 0; p < NPARSERS; p++) {
      fprintf(f, "%s\"%s\": {\"accepted\": %s", p ? ", " : "", parsers[p]->name,
              t->verdict[p] ? "true" : "false");
      if (!t->verdict[p]) {
        fprintf(f, ", \"reason\": ");
        json_str(f, t->why[p]);
      }
      fprintf(f, "}");
    }
    fprintf(f, "}}");
  }
  fprintf(f, "\n    ]\n  }\n}\n");
}

/* ---- terminal ---- */

static void print_tables(void) {
  printf("\nmessages/s, one core (median)   ");
  for (size_t k = 0; k < NSERIES; k++)
    printf("%12s", series_name(k));
  printf("\n");
  for (size_t p = 0; p < NPARSERS; p++) {
    printf("  %-30s", parsers[p]->name);
    for (size_t k = 0; k < NSERIES; k++) {
      if (results[p][k].ok)
        printf("%12.0f", results[p][k].median);
      else
        printf("%12s", "refused");
    }
    printf("\n");
  }
  printf("\nratio kz / other (>1: kz faster)");
  for (size_t k = 0; k < NSERIES; k++)
    printf("%12s", series_name(k));
  printf("\n");
  for (size_t p = 1; p < NPARSERS; p++) {
    printf("  %-30s", parsers[p]->name);
    for (size_t k = 0; k < NSERIES; k++) {
      double r = ratio(p, k);
      if (r > 0)
        printf("%12.2f", r);
      else
        printf("%12s", "-");
    }
    printf("\n");
  }
  printf("\nRFC 4475 strictness        valid-acc  invalid-ref  must-ref  app-acc  app-ref  "
         "expected  !=kz\n");
  for (size_t p = 0; p < NPARSERS; p++) {
    struct strict_score s = score_of(p);
    printf("  %-24s %4d/%-4d  %5d/%-5d  %4d/%-3d  %3d/%-3d  %3d/%-3d  %3d/%-3d  %4d\n",
           parsers[p]->name, s.valid_acc, s.valid_n, s.inv_rej, s.inv_n, s.must_rej, s.must_n,
           s.app_acc, s.app_acc_n, s.app_rej, s.app_rej_n, s.agree, s.scored, s.differs_from_kz);
  }
}

/* ---- main ---- */

int main(int argc, char **argv) {
  struct opts o = {.root = SIPB_SOURCE_DIR,
                   .out_dir = NULL,
                   .rounds = 7,
                   .round_ms = 150,
                   .warmup_ms = 60,
                   .max_iters = 20000000,
                   .cpu = -1,
                   .write = true};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--root") && v)
      o.root = v, i++;
    else if (!strcmp(a, "--out") && v)
      o.out_dir = v, i++;
    else if (!strcmp(a, "--rounds") && v)
      o.rounds = atoi(v), i++;
    else if (!strcmp(a, "--round-ms") && v)
      o.round_ms = atoi(v), i++;
    else if (!strcmp(a, "--warmup-ms") && v)
      o.warmup_ms = atoi(v), i++;
    else if (!strcmp(a, "--max-iters") && v)
      o.max_iters = strtoull(v, NULL, 10), i++;
    else if (!strcmp(a, "--cpu") && v)
      o.cpu = atoi(v), i++;
    else if (!strcmp(a, "--quick"))
      o.rounds = 3, o.round_ms = 30, o.warmup_ms = 10;
    else if (!strcmp(a, "--no-write"))
      o.write = false;
    else if (!strcmp(a, "--only") && v)
      o.only = v, o.write = false, i++;
    else {
      usage();
      return strcmp(a, "-h") && strcmp(a, "--help") ? 2 : 0;
    }
  }
  if (o.rounds < 1 || o.rounds > 63 || o.round_ms < 1 || o.warmup_ms < 0 || o.max_iters < 16) {
    fprintf(stderr, "kz_bench_sip_parse: bad --rounds (1..63), --round-ms, --warmup-ms or "
                    "--max-iters\n");
    return 2;
  }

  struct env_info env = {0};
  env.ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  env.pinned_cpu = o.cpu >= 0 ? o.cpu : (int)(env.ncpu > 0 ? env.ncpu - 1 : 0);
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(env.pinned_cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) {
    fprintf(stderr, "kz_bench_sip_parse: cannot pin to CPU %d: %s (running unpinned)\n",
            env.pinned_cpu, strerror(errno));
    env.pinned_cpu = -1;
  }
  cpu_model(env.cpu, sizeof env.cpu);
  struct utsname un;
  if (uname(&un) == 0)
    snprintf(env.uname, sizeof env.uname, "%s %s %s", un.sysname, un.release, un.machine);
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(env.date, sizeof env.date, "%Y-%m-%dT%H:%M:%SZ", &tm);

  for (size_t m = 0; m < NMSGS; m++) {
    char *path = path_join(o.root, messages[m].path);
    messages[m].data = path ? read_file(path, &messages[m].len) : NULL;
    if (!messages[m].data) {
      fprintf(stderr, "kz_bench_sip_parse: cannot read %s (use --root)\n", path ? path : "?");
      free(path);
      return 1;
    }
    free(path);
  }
  for (size_t p = 0; p < NPARSERS; p++) {
    timed[p] = !o.only;
    for (const char *n = o.only; n && *n;) {
      size_t l = strcspn(n, ",");
      if (l == strlen(parsers[p]->name) && !strncmp(n, parsers[p]->name, l))
        timed[p] = true;
      n += l + (n[l] == ',');
    }
    if (parsers[p]->init() != 0) {
      fprintf(stderr, "kz_bench_sip_parse: %s failed to initialise\n", parsers[p]->name);
      return 1;
    }
  }

  /* Prepared inputs and the depth check: every parser must accept every
   * message of the mix, or its series for that message is left out. */
  void *preps[NPARSERS][NMSGS];
  printf("kz_bench_sip_parse: %zu parsers, %zu messages, CPU %d\n", NPARSERS, NMSGS,
         env.pinned_cpu);
  for (size_t p = 0; p < NPARSERS; p++) {
    for (size_t m = 0; m < NMSGS; m++) {
      preps[p][m] = parsers[p]->prepare(messages[m].data, messages[m].len);
      if (!preps[p][m]) {
        fprintf(stderr, "kz_bench_sip_parse: out of memory\n");
        return 1;
      }
      uint64_t sink = 0;
      accepted[p][m] = parsers[p]->parse(preps[p][m], &sink, &depth_seen[p][m], reject_why[p][m],
                                         sizeof reject_why[p][m]) == 0;
      g_sink += sink;
      if (!accepted[p][m])
        printf("  note: %s refuses %s: %s\n", parsers[p]->name, messages[m].name,
               reject_why[p][m]);
    }
  }

  /* Timing: warm-up, then rounds; within a round every (series, parser)
   * pair runs once, so slow drifts of the machine hit all alike. */
  uint64_t budget = (uint64_t)o.round_ms * 1000000u;
  for (size_t p = 0; p < NPARSERS; p++)
    for (size_t k = 0; k < NSERIES; k++) {
      bool ok = true;
      if (k < NMSGS)
        ok = accepted[p][k];
      else
        for (size_t m = 0; m < NMSGS; m++)
          ok = ok && accepted[p][m];
      results[p][k].ok = ok && timed[p];
      if (results[p][k].ok && o.warmup_ms > 0)
        (void)run_round(parsers[p], k < NMSGS ? &preps[p][k] : preps[p], k < NMSGS ? 1 : NMSGS,
                        (uint64_t)o.warmup_ms * 1000000u, o.max_iters);
    }
  for (int r = 0; r < o.rounds; r++) {
    printf("  round %d/%d\n", r + 1, o.rounds);
    fflush(stdout);
    for (size_t k = 0; k < NSERIES; k++)
      for (size_t p = 0; p < NPARSERS; p++) {
        struct series_result *res = &results[p][k];
        if (!res->ok)
          continue;
        res->rate[res->nrounds++] =
            run_round(parsers[p], k < NMSGS ? &preps[p][k] : preps[p], k < NMSGS ? 1 : NMSGS,
                      budget, o.max_iters);
      }
  }
  for (size_t p = 0; p < NPARSERS; p++)
    for (size_t k = 0; k < NSERIES; k++)
      if (results[p][k].ok)
        summarise(&results[p][k]);

  /* Strictness over the RFC 4475 corpus. */
  char *tdir = path_join(o.root, "fixtures/sip/rfc4475");
  if (!tdir || load_index(tdir) != 0)
    fprintf(stderr, "kz_bench_sip_parse: no fixtures/sip/rfc4475/INDEX.md: strictness skipped\n");
  else
    run_strictness(tdir);
  free(tdir);

  print_tables();

  int rc = 0;
  if (o.write) {
    char *dir = o.out_dir ? strdup(o.out_dir) : path_join(o.root, "reports/bench");
    char *jpath = dir ? path_join(dir, "sip_parse.json") : NULL;
    char *mpath = dir ? path_join(dir, "sip_parse.md") : NULL;
    if (dir)
      (void)mkdir(dir, 0755);
    FILE *jf = jpath ? fopen(jpath, "w") : NULL;
    FILE *mf = mpath ? fopen(mpath, "w") : NULL;
    if (!jf || !mf) {
      fprintf(stderr, "kz_bench_sip_parse: cannot write %s / %s\n", jpath ? jpath : "?",
              mpath ? mpath : "?");
      rc = 1;
    } else {
      write_json(jf, &o, &env);
      write_md(mf, &o, &env);
      printf("\nwrote %s and %s\n", jpath, mpath);
    }
    if (jf && fclose(jf) != 0)
      rc = 1;
    if (mf && fclose(mf) != 0)
      rc = 1;
    free(jpath);
    free(mpath);
    free(dir);
  }

  for (size_t p = 0; p < NPARSERS; p++) {
    for (size_t m = 0; m < NMSGS; m++)
      parsers[p]->unprepare(preps[p][m]);
    parsers[p]->fini();
  }
  for (size_t m = 0; m < NMSGS; m++)
    free(messages[m].data);
  return rc;
}
