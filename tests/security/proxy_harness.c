/* proxy_harness.c — runs the real proxy role under the libuv driver with an in-process authn responder, for the security checks (PROTOS, SIPVicious). */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "kz/bus_client.h"
#include "kz/env.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/proxy.h"
#include "kz/uv_env.h"

/* The proxy's own tests' fake broker: one client, authn_req answered
 * from a user table like Kazoo's registrar app would after a db lookup.
 * Compiled in as is (see CMakeLists.txt). */
#include "fake_bus.h"

/* What the harness runs with.  Everything but the users comes from the
 * command line; the users default to the device the scenario library's
 * register-auth case uses (fixtures/seed's dev1001). */
struct harness {
  struct kz_proxy_config pc;
  struct fb_broker *broker;
  uint64_t duration_ms;
  uint64_t seed;
  int log_level;
  uv_loop_t loop;
  struct kz_uv_env *drv;
  void *proxy;
  uv_signal_t sig_int, sig_term, sig_usr1;
  uv_timer_t bound, ready;
  uint64_t ready_polls;
  int no_bus;
  struct timespec t0;
  int stopped;
};

static void usage(FILE *out) {
  fprintf(out,
          "usage: kz_security_proxy [options]\n"
          "  --listen IP:PORT     address to bind (UDP and TCP); port 0 picks a free port (default 127.0.0.2:0)\n"
          "  --user U:REALM:PASS  a device the authn responder knows (repeatable, at most %d;\n"
          "                       default dev1001:acme.sip.example.com:s3cret-1001 and two more)\n"
          "  --trusted IP         an extra trusted source (exempt from anti-flood and the scanner filter)\n"
          "  --media IP:PORT      a media server (the dispatcher's set)\n"
          "  --pike N/MS          anti-flood density: N requests per MS milliseconds (default 50/2000)\n"
          "  --duration S         stop by itself after S seconds (default 600; 0 = only on a signal)\n"
          "  --log-level L        error|warn|info|debug (default info)\n"
          "  --seed N             the driver's PRNG seed (default 1)\n"
          "Prints 'LISTENING ip:port' on stdout once bound and connected to its bus, a 'STATS {json}' line on SIGUSR1 and at exit.\n"
          "SIGTERM/SIGINT (or the duration) stop it cleanly; exit 0, 3 when kz allocations leaked or handles\n"
          "were left, 4 when the bus never came up, 2 on bad options or a failed start.\n",
          FB_MAX_USERS);
}

/* Milliseconds since the harness started, for log lines: the tests read
 * the ban's time from them. */
static uint64_t elapsed_ms(const struct harness *h) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  int64_t ns = (int64_t)(t.tv_sec - h->t0.tv_sec) * 1000000000 + (t.tv_nsec - h->t0.tv_nsec);
  return (uint64_t)(ns / 1000000);
}

static void on_log(void *arg, int level, const char *line, size_t len) {
  struct harness *h = arg;
  fprintf(stderr, "[%8" PRIu64 " ms] %.*s\n", elapsed_ms(h), (int)len, line);
}

static void print_stats(struct harness *h, const char *when) {
  if (!h->proxy) return;
  struct kz_proxy_stats s;
  kz_proxy_get_stats(h->proxy, &s);
  printf("STATS {\"when\":\"%s\",\"t_ms\":%" PRIu64 ",\"requests_in\":%" PRIu64 ",\"responses_in\":%" PRIu64
         ",\"malformed\":%" PRIu64 ",\"replies_local\":%" PRIu64 ",\"forwarded\":%" PRIu64
         ",\"registers_ok\":%" PRIu64 ",\"registers_challenged\":%" PRIu64 ",\"registers_dropped\":%" PRIu64
         ",\"authn_requests\":%" PRIu64 ",\"authn_timeouts\":%" PRIu64 ",\"auth_cache_hits\":%" PRIu64
         ",\"auth_failures\":%" PRIu64 ",\"flood_dropped\":%" PRIu64 ",\"flood_bans\":%" PRIu64
         ",\"auth_bans\":%" PRIu64 ",\"filtered\":%" PRIu64 ",\"probes_sent\":%" PRIu64
         ",\"authn_reqs_seen\":%d,\"reg_success_published\":%d}\n",
         when, elapsed_ms(h), s.requests_in, s.responses_in, s.malformed, s.replies_local, s.forwarded,
         s.registers_ok, s.registers_challenged, s.registers_dropped, s.authn_requests, s.authn_timeouts,
         s.auth_cache_hits, s.auth_failures, s.flood_dropped, s.flood_bans, s.auth_bans, s.filtered,
         s.probes_sent, h->broker->authn_reqs, h->broker->reg_success);
  fflush(stdout);
}

static void stop_all(struct harness *h, const char *why) {
  if (h->stopped) return;
  h->stopped = 1;
  fprintf(stderr, "[%8" PRIu64 " ms] harness stopping: %s\n", elapsed_ms(h), why);
  print_stats(h, "exit");
  kz_proxy_stop(h->proxy);
  h->proxy = NULL;
  kz_uv_env_free(h->drv);
  h->drv = NULL;
  uv_close((uv_handle_t *)&h->sig_int, NULL);
  uv_close((uv_handle_t *)&h->sig_term, NULL);
  uv_close((uv_handle_t *)&h->sig_usr1, NULL);
  uv_close((uv_handle_t *)&h->bound, NULL);
  uv_close((uv_handle_t *)&h->ready, NULL);
}

static void on_signal(uv_signal_t *s, int signo) {
  struct harness *h = s->data;
  if (signo == SIGUSR1) {
    print_stats(h, "usr1");
    return;
  }
  stop_all(h, signo == SIGINT ? "SIGINT" : "SIGTERM");
}

static void on_bound(uv_timer_t *t) { stop_all(t->data, "duration reached"); }

/* The proxy drops REGISTERs until its bus is up (a few loop turns after
 * start): announce the address only then, so that the tests' first
 * REGISTER is answered. */
static void on_ready_poll(uv_timer_t *t) {
  struct harness *h = t->data;
  struct kz_bus *bus = kz_proxy_bus(h->proxy);
  if (bus && kz_bus_state(bus) == KZ_BUS_UP) {
    uv_timer_stop(t);
    printf("LISTENING %s\n", h->pc.listen);
    fflush(stdout);
    return;
  }
  if (++h->ready_polls > 5000) {
    fprintf(stderr, "kz_security_proxy: the bus did not come up within 5 s\n");
    h->no_bus = 1;
    stop_all(h, "no bus");
  }
}

/* Port 0 means "any free port": the proxy binds UDP and TCP on the same
 * port, so find one free for both on the requested IP.  (A small race
 * with other programs remains; the proxy's bind then fails loudly.) */
static int pick_port(const char *ip, uint16_t *port) {
  for (int attempt = 0; attempt < 50; attempt++) {
    struct sockaddr_in sa = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) return -1;
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    if (u < 0) return -1;
    socklen_t sl = sizeof sa;
    if (bind(u, (struct sockaddr *)&sa, sizeof sa) || getsockname(u, (struct sockaddr *)&sa, &sl)) {
      close(u);
      return -1;
    }
    int t = socket(AF_INET, SOCK_STREAM, 0);
    int ok = t >= 0 && bind(t, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (t >= 0) close(t);
    close(u);
    if (ok) {
      *port = ntohs(sa.sin_port);
      return 0;
    }
  }
  return -1;
}

static int parse_args(struct harness *h, int argc, char **argv) {
  char listen[KZ_ADDR_STRLEN] = "127.0.0.2:0";
  int default_users = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      exit(0);
    }
    if (!v) {
      fprintf(stderr, "kz_security_proxy: %s needs a value\n", a);
      return -1;
    }
    i++;
    if (!strcmp(a, "--listen")) {
      snprintf(listen, sizeof listen, "%s", v);
    } else if (!strcmp(a, "--user")) {
      char u[64], r[64], pw[64];
      if (h->broker->nusers >= FB_MAX_USERS || sscanf(v, "%63[^:]:%63[^:]:%63s", u, r, pw) != 3) {
        fprintf(stderr, "kz_security_proxy: bad --user '%s' (USER:REALM:PASSWORD, at most %d)\n", v,
                FB_MAX_USERS);
        return -1;
      }
      if (default_users) h->broker->nusers = 0;
      default_users = 0;
      fb_add_user(h->broker, u, r, pw);
    } else if (!strcmp(a, "--trusted")) {
      if (h->pc.n_trusted >= KZ_PROXY_MAX_TRUSTED) return -1;
      snprintf(h->pc.trusted[h->pc.n_trusted++], sizeof h->pc.trusted[0], "%s", v);
    } else if (!strcmp(a, "--media")) {
      if (h->pc.n_media_servers >= KZ_PROXY_MAX_SERVERS) return -1;
      snprintf(h->pc.media_servers[h->pc.n_media_servers++], KZ_PROXY_URI_MAX, "%s", v);
    } else if (!strcmp(a, "--pike")) {
      unsigned n, ms;
      if (sscanf(v, "%u/%u", &n, &ms) != 2 || !ms) {
        fprintf(stderr, "kz_security_proxy: bad --pike '%s' (N/MS)\n", v);
        return -1;
      }
      h->pc.pike_density = n;
      h->pc.pike_window_ms = ms;
    } else if (!strcmp(a, "--duration")) {
      h->duration_ms = strtoull(v, NULL, 10) * 1000;
    } else if (!strcmp(a, "--seed")) {
      h->seed = strtoull(v, NULL, 10);
    } else if (!strcmp(a, "--log-level")) {
      if (!strcmp(v, "error")) h->log_level = KZ_LOG_ERROR;
      else if (!strcmp(v, "warn")) h->log_level = KZ_LOG_WARN;
      else if (!strcmp(v, "info")) h->log_level = KZ_LOG_INFO;
      else if (!strcmp(v, "debug")) h->log_level = KZ_LOG_DEBUG;
      else return -1;
    } else {
      fprintf(stderr, "kz_security_proxy: unknown option '%s'\n", a);
      usage(stderr);
      return -1;
    }
  }
  /* Resolve port 0 here so that the address printed is the real one. */
  char ip[20];
  unsigned port = 0;
  if (sscanf(listen, "%19[0-9.]:%u", ip, &port) != 2 || port > 65535) {
    fprintf(stderr, "kz_security_proxy: bad --listen '%s' (IPv4:PORT)\n", listen);
    return -1;
  }
  if (port == 0) {
    uint16_t p16;
    if (pick_port(ip, &p16)) {
      fprintf(stderr, "kz_security_proxy: no free port on %s\n", ip);
      return -1;
    }
    port = p16;
  }
  snprintf(h->pc.listen, sizeof h->pc.listen, "%s:%u", ip, port);
  return 0;
}

int main(int argc, char **argv) {
  /* The tests read stdout line by line while the harness runs. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  struct harness *h = calloc(1, sizeof *h);
  struct fb_broker *br = calloc(1, sizeof *br);
  if (!h || !br) return 2;
  clock_gettime(CLOCK_MONOTONIC, &h->t0);
  h->broker = br;
  h->duration_ms = 600 * 1000;
  h->seed = 1;
  h->log_level = KZ_LOG_INFO;
  kz_proxy_config_defaults(&h->pc);
  fb_add_user(br, "dev1001", "acme.sip.example.com", "s3cret-1001");
  fb_add_user(br, "dev1002", "acme.sip.example.com", "s3cret-1002");
  fb_add_user(br, "alice", "kz.test", "alice-pw");
  int status = 2;
  if (parse_args(h, argc, argv)) goto out;
  h->pc.bus_factory = fb_factory;
  h->pc.bus_arg = br;
  char err[160];
  if (kz_proxy_config_check(&h->pc, err, sizeof err)) {
    fprintf(stderr, "kz_security_proxy: %s\n", err);
    goto out;
  }
  if (uv_loop_init(&h->loop)) goto out;
  int rc = kz_uv_env_new(&h->drv, &h->loop, "security-proxy", h->seed, NULL);
  if (rc) {
    fprintf(stderr, "kz_security_proxy: driver: %s\n", kz_strerror(rc));
    uv_loop_close(&h->loop);
    goto out;
  }
  kz_uv_env_set_log_sink(h->drv, on_log, h);
  kz_uv_env_get(h->drv)->log_level = h->log_level;
  rc = kz_proxy_start(kz_uv_env_get(h->drv), &h->pc, &h->proxy);
  if (rc) {
    fprintf(stderr, "kz_security_proxy: cannot start on %s: %s\n", h->pc.listen, kz_strerror(rc));
    kz_uv_env_free(h->drv);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    uv_loop_close(&h->loop);
    goto out;
  }
  uv_signal_init(&h->loop, &h->sig_int);
  uv_signal_init(&h->loop, &h->sig_term);
  uv_signal_init(&h->loop, &h->sig_usr1);
  h->sig_int.data = h->sig_term.data = h->sig_usr1.data = h;
  uv_signal_start(&h->sig_int, on_signal, SIGINT);
  uv_signal_start(&h->sig_term, on_signal, SIGTERM);
  uv_signal_start(&h->sig_usr1, on_signal, SIGUSR1);
  uv_timer_init(&h->loop, &h->bound);
  h->bound.data = h;
  if (h->duration_ms) uv_timer_start(&h->bound, on_bound, h->duration_ms, 0);
  uv_timer_init(&h->loop, &h->ready);
  h->ready.data = h;
  uv_timer_start(&h->ready, on_ready_poll, 0, 1);
  uv_run(&h->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&h->loop)) {
    fprintf(stderr, "kz_security_proxy: loop closed with handles left\n");
    status = 3;
    goto out;
  }
  if (h->no_bus) {
    status = 4;
    goto out;
  }
  int64_t live = kz_mem_live_blocks();
  if (live != 0) {
    fprintf(stderr, "kz_security_proxy: %" PRId64 " kz allocations leaked\n", live);
    status = 3;
    goto out;
  }
  status = 0;
out:
  free(br);
  free(h);
  return status;
}
