/* cli_sim.c — the `kz sim` subcommand: runs the echo example on two simulated hosts and reports its trace hash. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#ifdef KZ_SIM_HAVE_ECHO
#include "kz/sim_os.h"
#include "kz/buf.h"
#include "kz/error.h"
#include "kz/sim.h"
#include "kz/sim_echo.h"
#endif

/* The CLI is an OS-facing front end like the drivers: it reads the
 * clock for wall time, picks a random default seed and writes files. */

/* kz/sim.h is only included with the echo example; its default latency
 * is repeated here for the option parser. */
#define KZ_SIM_DEFAULT_LATENCY_NS_CLI UINT64_C(1000000)

static void usage(FILE *out) {
  fprintf(out,
          "usage: kz sim echo [--seed N] [--duration SECONDS] [--count N] [--out DIR]\n"
          "              [--latency MS] [--jitter MS] [--loss PPM] [--pcap | --no-pcap]\n"
          "              [--check-determinism]\n"
          "\n"
          "Runs the echo example (impl/roles/echo) simulated across two hosts:\n"
          "an echo client on 10.0.0.1 pings an echo server on 10.0.0.2 over UDP\n"
          "and a stream, in virtual time: the proof that role code written once\n"
          "against kz_env runs simulated (`kz sim` without `echo` runs topologies).\n"
          "\n"
          "  --seed N              root seed (decimal or 0x hex); default: random,\n"
          "                        printed so the run can be replayed\n"
          "  --duration SECONDS    virtual time to simulate (default 10)\n"
          "  --count N             messages per transport (default: duration/0.2 s)\n"
          "  --out DIR             write DIR/trace.jsonl, DIR/summary.json and\n"
          "                        DIR/traffic.pcap\n"
          "  --latency MS          one-way link latency, both ways (default 1)\n"
          "  --jitter MS           extra random delay per packet, 0..MS (default 0)\n"
          "  --loss PPM            packets lost per million (default 0); streams\n"
          "                        stay reliable (a loss costs a 200 ms+ retransmit),\n"
          "                        lost datagrams are echoes that never come back\n"
          "  --pcap / --no-pcap    write DIR/traffic.pcap (default: on with --out)\n"
          "  --check-determinism   run twice and fail (exit 1) on any difference\n"
          "\n"
          "Exit status: 0 every echo came back (and both runs matched), 1 not,\n"
          "2 usage or I/O error.\n");
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

/* "12", "0.5", "2.125": a decimal number of units of `digits` decimal
 * places of ns (9: seconds, 6: milliseconds), into ns.  Integers only, so
 * the same text always gives the same virtual duration. */
static int parse_decimal(const char *s, int digits, uint64_t *out) {
  uint64_t unit = 1;
  for (int i = 0; i < digits; i++) unit *= 10;
  if (!s || !*s) return -1;
  uint64_t whole = 0, frac = 0;
  int frac_digits = 0;
  const char *p = s;
  if (*p < '0' || *p > '9') return -1;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (whole > (UINT64_MAX / unit - 9) / 10) return -1;
    whole = whole * 10 + (uint64_t)(*p - '0');
  }
  if (*p == '.') {
    p++;
    for (; *p >= '0' && *p <= '9'; p++) {
      if (frac_digits == digits) return -1;
      frac = frac * 10 + (uint64_t)(*p - '0');
      frac_digits++;
    }
  }
  if (*p) return -1;
  for (; frac_digits < digits; frac_digits++) frac *= 10;
  *out = whole * unit + frac;
  return 0;
}

static int parse_seconds(const char *s, uint64_t *out) {
  return parse_decimal(s, 9, out) == 0 && *out ? 0 : -1;
}

static int parse_ms(const char *s, uint64_t *out) { return parse_decimal(s, 6, out); }

#ifdef KZ_SIM_HAVE_ECHO

static double wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_secs(FILE *out, uint64_t ns) {
  fprintf(out, "%" PRIu64 ".%03" PRIu64, ns / UINT64_C(1000000000), ns % UINT64_C(1000000000) / UINT64_C(1000000));
}

static void print_ms(FILE *out, uint64_t ns) {
  fprintf(out, "%" PRIu64 ".%03" PRIu64, ns / UINT64_C(1000000), ns % UINT64_C(1000000) / UINT64_C(1000));
}

/* The network options of a run. */
struct net_opts {
  uint64_t latency_ns;
  uint64_t jitter_ns;
  uint32_t loss_ppm;
  bool pcap;
};

struct progress {
  uint64_t duration;
  bool tty;
};

static void on_progress(void *arg, uint64_t now, uint64_t events) {
  struct progress *pr = arg;
  /* On a terminal the line is redrawn; elsewhere only the last one is
   * printed (by the caller), so logs stay short. */
  if (!pr->tty) return;
  printf("\rprogress: ");
  print_secs(stdout, now);
  printf(" / ");
  print_secs(stdout, pr->duration);
  printf(" s simulated, %" PRIu64 " events", events);
  fflush(stdout);
}

static int write_summary(const char *dir, uint64_t seed, const struct kz_sim_echo_result *r,
                         const struct net_opts *net, double wall) {
  char path[4096];
  snprintf(path, sizeof path, "%s/summary.json", dir);
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "kz sim: cannot write %s: %s\n", path, strerror(errno));
    return -1;
  }
  fprintf(f,
          "{\n"
          "  \"example\": \"echo\",\n"
          "  \"seed\": %" PRIu64 ",\n"
          "  \"latency_ns\": %" PRIu64 ",\n"
          "  \"jitter_ns\": %" PRIu64 ",\n"
          "  \"loss_ppm\": %" PRIu32 ",\n"
          "  \"pcap\": %s,\n"
          "  \"trace_hash\": \"%016" PRIx64 "\",\n"
          "  \"sim_seconds\": %" PRIu64 ".%09" PRIu64 ",\n"
          "  \"wall_seconds\": %.6f,\n"
          "  \"events\": %" PRIu64 ",\n"
          "  \"trace_lines\": %" PRIu64 ",\n"
          "  \"echoes\": %" PRIu64 ",\n"
          "  \"echoes_expected\": %" PRIu64 ",\n"
          "  \"done\": %s\n"
          "}\n",
          seed, net->latency_ns, net->jitter_ns, net->loss_ppm, net->pcap ? "\"traffic.pcap\"" : "null",
          r->trace_hash, r->sim_ns / UINT64_C(1000000000), r->sim_ns % UINT64_C(1000000000), wall,
          r->events, r->trace_lines, (uint64_t)r->udp_echoes + r->tcp_echoes,
          2 * (uint64_t)r->count, r->done ? "true" : "false");
  if (fclose(f) != 0) {
    fprintf(stderr, "kz sim: cannot write %s: %s\n", path, strerror(errno));
    return -1;
  }
  return 0;
}

static int run(uint64_t seed, uint64_t duration, uint64_t count, const char *out_dir,
               const struct net_opts *net, bool check) {
  struct kz_sim_echo_cfg cfg = {.seed = seed,
                                .duration_ns = duration,
                                .count = (uint32_t)count,
                                .latency_ns = net->latency_ns,
                                .jitter_ns = net->jitter_ns,
                                .loss_ppm = net->loss_ppm};
  /* Resolve the defaults the way the runner does, to print them. */
  uint64_t interval = KZ_SIM_ECHO_DEFAULT_INTERVAL_NS;
  uint64_t msgs = count ? count : duration / interval / 2;
  if (msgs == 0) msgs = 1;
  if (msgs > 100000) msgs = 100000;

  printf("kz sim: running the echo example (impl/roles/echo) on two simulated hosts\n"
         "        (the kz_env example; plain `kz sim` runs a topology under SIPp scenarios)\n");
  printf("  seed          %" PRIu64 "\n", seed);
  printf("  duration      ");
  print_secs(stdout, duration);
  printf(" s of virtual time\n");
  printf("  hosts         client 10.0.0.1 (echo client), server 10.0.0.2 (echo server, "
         "udp+tcp port 7)\n");
  printf("  latency       ");
  print_ms(stdout, net->latency_ns);
  printf(" ms one way, both directions\n");
  printf("  jitter        0..");
  print_ms(stdout, net->jitter_ns);
  printf(" ms extra per packet (uniform)\n");
  printf("  loss          %" PRIu32 " ppm (%" PRIu32 ".%04" PRIu32 " %%)%s\n", net->loss_ppm,
         net->loss_ppm / 10000, net->loss_ppm % 10000,
         net->loss_ppm ? ": streams retransmit, lost datagrams stay lost" : "");
  printf("  messages      %" PRIu64 " per transport, one every %" PRIu64 " ms\n", msgs,
         interval / UINT64_C(1000000));
  printf("  output        %s\n", out_dir ? out_dir : "(none)");
  printf("  pcap          %s%s\n", net->pcap ? out_dir : "(none)", net->pcap ? "/traffic.pcap" : "");
  printf("  determinism   %s\n", check ? "checked (two runs)" : "not checked");
  fflush(stdout);

  FILE *trace = NULL, *pcap = NULL;
  if (out_dir) {
    if (kz_sim_os_mkdir_p(out_dir) != 0) {
      fprintf(stderr, "kz sim: cannot create %s: %s\n", out_dir, strerror(errno));
      return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/trace.jsonl", out_dir);
    trace = fopen(path, "w");
    if (!trace) {
      fprintf(stderr, "kz sim: cannot write %s: %s\n", path, strerror(errno));
      return 2;
    }
    if (net->pcap) {
      snprintf(path, sizeof path, "%s/traffic.pcap", out_dir);
      pcap = fopen(path, "wb");
      if (!pcap) {
        fprintf(stderr, "kz sim: cannot write %s: %s\n", path, strerror(errno));
        fclose(trace);
        return 2;
      }
    }
  }

  struct progress pr = {.duration = duration, .tty = isatty(STDOUT_FILENO) == 1};
  struct kz_buf first, second;
  kz_buf_init(&first);
  kz_buf_init(&second);
  cfg.trace_file = trace;
  cfg.pcap_file = pcap;
  cfg.trace_out = check ? &first : NULL;
  cfg.progress = on_progress;
  cfg.progress_arg = &pr;
  cfg.progress_every_ns = duration / 20 ? duration / 20 : duration;
  struct kz_sim_echo_result r, r2;
  double t0 = wall_now();
  int rc = kz_sim_echo_run(&cfg, &r);
  double wall = wall_now() - t0;
  if (trace && fclose(trace) != 0 && !rc) rc = KZ_EIO;
  if (pcap && fclose(pcap) != 0 && !rc) rc = KZ_EIO;
  if (rc) {
    if (pr.tty) printf("\n");
    fprintf(stderr, "kz sim: simulation failed: %s\n", kz_strerror(rc));
    kz_buf_free(&first);
    return 2;
  }
  if (pr.tty) printf("\r");
  printf("progress: ");
  print_secs(stdout, r.sim_ns);
  printf(" / ");
  print_secs(stdout, duration);
  printf(" s simulated, %" PRIu64 " events, done\n", r.events);

  bool same = true;
  if (check) {
    cfg.trace_file = NULL;
    cfg.pcap_file = NULL;
    cfg.trace_out = &second;
    cfg.progress = NULL;
    rc = kz_sim_echo_run(&cfg, &r2);
    if (rc) {
      fprintf(stderr, "kz sim: second run failed: %s\n", kz_strerror(rc));
      kz_buf_free(&first);
      kz_buf_free(&second);
      return 2;
    }
    same = r2.trace_hash == r.trace_hash && r2.events == r.events && first.len == second.len &&
           memcmp(first.data, second.data, first.len) == 0;
  }

  uint64_t expected = 2 * (uint64_t)r.count, got = (uint64_t)r.udp_echoes + r.tcp_echoes;
  printf("result (echo example):\n");
  printf("  %-14s %" PRIu64 "\n", "events", r.events);
  printf("  %-14s ", "sim seconds");
  print_secs(stdout, r.sim_ns);
  printf("\n");
  printf("  %-14s %.3f\n", "wall seconds", wall);
  printf("  %-14s %" PRIu64 "/%" PRIu64 " (udp %u/%u, tcp %u/%u)\n", "echoes", got, expected,
         r.udp_echoes, r.count, r.tcp_echoes, r.count);
  printf("  %-14s %s%s\n", "status", r.done ? "ok: every echo came back" : "FAILED: echoes missing",
         !r.done && net->loss_ppm ? " (lost datagrams are not retried: expected with --loss)" : "");
  if (check) {
    if (same) {
      printf("  %-14s identical over 2 runs (%zu trace bytes)\n", "determinism", first.len);
    } else {
      printf("  %-14s FAILED: run 2 differs (hash %016" PRIx64 ", %" PRIu64
             " events, %zu trace bytes)\n",
             "determinism", r2.trace_hash, r2.events, second.len);
    }
  }
  int status = 0;
  if (out_dir && write_summary(out_dir, seed, &r, net, wall) != 0) status = 2;
  if (!status && (!r.done || !same)) status = 1;
  printf("trace hash %016" PRIx64 "\n", r.trace_hash);
  kz_buf_free(&first);
  kz_buf_free(&second);
  return status;
}

#endif /* KZ_SIM_HAVE_ECHO */

int kz_cli_sim(int argc, char **argv) {
  uint64_t seed = 0, duration = UINT64_C(10000000000), count = 0;
  bool have_seed = false, check = false;
  int pcap_flag = -1; /* -1: default (on with --out) */
  struct net_opts net = {.latency_ns = KZ_SIM_DEFAULT_LATENCY_NS_CLI};
  const char *out_dir = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = NULL;
    /* Options that take a value accept "--opt V" and "--opt=V". */
    const char *names[] = {"--seed", "--duration", "--count", "--out",
                           "--latency", "--jitter", "--loss"};
    int which = -1;
    for (int k = 0; k < 7; k++) {
      size_t n = strlen(names[k]);
      if (!strncmp(a, names[k], n) && (a[n] == 0 || a[n] == '=')) {
        which = k;
        if (a[n] == '=') {
          val = a + n + 1;
        } else if (i + 1 < argc) {
          val = argv[++i];
        } else {
          fprintf(stderr, "kz sim: option %s needs a value\n", names[k]);
          return 2;
        }
        break;
      }
    }
    if (which == 0) {
      if (parse_u64(val, &seed)) {
        fprintf(stderr, "kz sim: --seed: '%s' is not an unsigned 64-bit number\n", val);
        return 2;
      }
      have_seed = true;
    } else if (which == 1) {
      if (parse_seconds(val, &duration)) {
        fprintf(stderr, "kz sim: --duration: '%s' is not a positive number of seconds\n", val);
        return 2;
      }
    } else if (which == 2) {
      if (parse_u64(val, &count) || count == 0 || count > 100000) {
        fprintf(stderr, "kz sim: --count: '%s' is not a number from 1 to 100000\n", val);
        return 2;
      }
    } else if (which == 3) {
      if (!*val) {
        fprintf(stderr, "kz sim: --out: empty directory name\n");
        return 2;
      }
      out_dir = val;
    } else if (which == 4 || which == 5) {
      uint64_t ns;
      /* A zero latency would mean "the default" to the echo runner. */
      if (parse_ms(val, &ns) || ns > UINT64_C(3600000000000) || (which == 4 && ns == 0)) {
        fprintf(stderr, "kz sim: %s: '%s' is not a number of milliseconds (%s to 3600000)\n",
                names[which], val, which == 4 ? "0.000001" : "0");
        return 2;
      }
      if (which == 4) net.latency_ns = ns;
      else net.jitter_ns = ns;
    } else if (which == 6) {
      uint64_t ppm;
      if (parse_u64(val, &ppm) || ppm > 1000000) {
        fprintf(stderr, "kz sim: --loss: '%s' is not a number from 0 to 1000000 (ppm)\n", val);
        return 2;
      }
      net.loss_ppm = (uint32_t)ppm;
    } else if (!strcmp(a, "--pcap")) {
      pcap_flag = 1;
    } else if (!strcmp(a, "--no-pcap")) {
      pcap_flag = 0;
    } else if (!strcmp(a, "--check-determinism")) {
      check = true;
    } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "kz sim: unknown option '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (pcap_flag == 1 && !out_dir) {
    fprintf(stderr, "kz sim: --pcap writes DIR/traffic.pcap: give --out DIR\n");
    return 2;
  }
  net.pcap = out_dir && pcap_flag != 0;
#ifdef KZ_SIM_HAVE_ECHO
  if (!have_seed) seed = kz_sim_os_random_seed();
  return run(seed, duration, count, out_dir, &net, check);
#else
  (void)net;
  (void)have_seed;
  (void)check;
  (void)out_dir;
  fprintf(stderr, "kz sim: this build has no echo example (impl/roles/echo): nothing to run\n");
  return 2;
#endif
}
