/* cmd_up.c — `kz up|status|logs|down`: runs a topology's roles for real, each as its own process on its host's loopback address, with their configs, logs and pids in a state directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <jansson.h>

#include "kz/error.h"
#include "kz/topology.h"

/* Declared in cli.h once the commands are wired into main.c; repeated
 * here so the file also builds into the stand-in of tests/drills. */
int kz_cli_up(int argc, char **argv);
int kz_cli_status(int argc, char **argv);
int kz_cli_logs(int argc, char **argv);
int kz_cli_down(int argc, char **argv);
/* Shared with cmd_scenario.c (documented at their definitions). */
int kz_cli_up_map_addr(const struct kz_addr *sim, int net, char *out, size_t outlen);
int kz_cli_up_start(const char *topology, const char *state_dir, int broker_port, int net, bool quiet);
int kz_cli_up_stop(const char *state_dir, bool quiet);
int kz_cli_up_running(const char *state_dir, char *topology, size_t len, int *net);
int kz_cli_up_resolve(const char *rel, char *out, size_t outlen);
int kz_cli_up_kz_bin(char *out, size_t outlen);

/* How real mode lays a topology out on one machine:
 *
 * Addresses.  A host a.b.c.d of the topology runs its roles on the
 * loopback address 127.b.c.d (10.0.1.5 -> 127.0.1.5): Linux routes all of
 * 127.0.0.0/8 to lo, so nothing needs configuring.  `--net N` puts every
 * host in 127.N.c.d instead, so two layouts (a drill beside someone's
 * `kz up`) never share an address.  Two hosts that differ
 * only in their first octet, or a host whose last three octets are 0.0.0
 * or 255.255.255, are refused.
 *
 * Ports: each role on its standard port, as in the simulator: proxy SIP
 * 5060 (UDP and TCP), db 5984.  RabbitMQ nodes are started by
 * ci/rabbitmq, which binds 127.0.0.1 only, so the k-th broker host's node
 * listens on 127.0.0.1:(BASE + k), BASE = --broker-port (default 5672),
 * distribution port + 20000.
 *
 * The state directory (default .kz/): state.json (what runs where),
 * conf/ROLE-HOST.json, logs/ROLE-HOST.log, run/ROLE-HOST.pid, data/
 * (db files) and rabbitmq/ (the nodes' folders, KZ_RABBIT_ROOT). */

#define UP_MAX_PROCS 64
#define UP_PATH 1024
#define SIP_PORT 5060
#define DB_PORT 5984

enum up_role { UP_BROKER = 0, UP_DB, UP_APPS, UP_PROXY, UP_NROLES };
static const char *const up_role_names[UP_NROLES] = {"broker", "db", "apps", "proxy"};

struct up_proc {
  int role;                 /* enum up_role */
  char host[KZ_TOPO_NAME_MAX + 1];
  char addr[INET_ADDRSTRLEN]; /* where it serves */
  int port;                 /* 0: no listening port (apps) */
  long pid;                 /* 0: not started (yet) */
  char node[64];            /* broker: the RabbitMQ node name */
  char conf[UP_PATH], log[UP_PATH], pidfile[UP_PATH];
};

struct up_state {
  char dir[UP_PATH];        /* absolute */
  char topology[UP_PATH];   /* absolute */
  char name[128];
  char kz[UP_PATH];
  char rabbit[UP_PATH];     /* ci/rabbitmq */
  char rabbit_root[UP_PATH];
  long started;             /* unix time */
  int net;                  /* --net: second octet of every address, -1: the topology's */
  struct up_proc procs[UP_MAX_PROCS];
  size_t n;
};

/* The signal that interrupted kz up (0: none).  The CLI is an OS-facing
 * front end; a handler can only talk to the code through such a flag. */
static volatile sig_atomic_t up_interrupted;

static void on_interrupt(int signo) { up_interrupted = signo; }

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) && errno == EINTR && !up_interrupted) {
  }
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int fmt(char *out, size_t len, const char *f, ...) __attribute__((format(printf, 3, 4)));
static int fmt(char *out, size_t len, const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  int n = vsnprintf(out, len, f, ap);
  va_end(ap);
  return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int mkdirs(const char *path) {
  char tmp[UP_PATH];
  if (fmt(tmp, sizeof tmp, "%s", path)) return -1;
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
    *p = '/';
  }
  return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}

static bool file_exists(const char *p) { return access(p, F_OK) == 0; }

/* Makes `path` absolute (relative to the working directory). */
static int absolute(const char *path, char *out, size_t len) {
  if (path[0] == '/') return fmt(out, len, "%s", path);
  char cwd[UP_PATH];
  if (!getcwd(cwd, sizeof cwd)) return -1;
  return fmt(out, len, "%s/%s", cwd, path);
}

/* A file of the source tree (ci/rabbitmq, fixtures/seed/basic.json): from
 * the working directory when it is there, else under $KZ_SOURCE_DIR, else
 * under the tree this kz was built from.  Returns 0 or -1 (not found). */
int kz_cli_up_resolve(const char *rel, char *out, size_t outlen) {
  if (file_exists(rel)) return absolute(rel, out, outlen);
  const char *env = getenv("KZ_SOURCE_DIR");
  if (env && *env && !fmt(out, outlen, "%s/%s", env, rel) && file_exists(out)) return 0;
#ifdef KZ_SOURCE_DIR
  if (!fmt(out, outlen, "%s/%s", KZ_SOURCE_DIR, rel) && file_exists(out)) return 0;
#endif
  return -1;
}

/* The kz binary that runs the roles: $KZ_BIN, else this executable.
 * Returns 0 or -1. */
int kz_cli_up_kz_bin(char *out, size_t outlen) {
  const char *env = getenv("KZ_BIN");
  if (env && *env) return absolute(env, out, outlen);
  ssize_t n = readlink("/proc/self/exe", out, outlen - 1);
  if (n <= 0) return -1;
  out[n] = 0;
  return 0;
}

/* The loopback address of a topology host: 127.b.c.d for a.b.c.d, or
 * 127.net.c.d when net is 0..255 (-1: keep b).  Returns 0, or KZ_EINVAL
 * for an address that maps onto nothing usable (IPv6, or 127.0.0.0 /
 * 127.255.255.255). */
int kz_cli_up_map_addr(const struct kz_addr *sim, int net, char *out, size_t outlen) {
  if (sim->family != 4 || net > 255) return KZ_EINVAL;
  unsigned b = net >= 0 ? (unsigned)net : sim->ip[1], c = sim->ip[2], d = sim->ip[3];
  if ((!b && !c && !d) || (b == 255 && c == 255 && d == 255)) return KZ_EINVAL;
  return fmt(out, outlen, "127.%u.%u.%u", b, c, d) ? KZ_EINVAL : 0;
}

/* ------------------------------------------------------------------ */
/* Processes */

/* Whether pid runs (a zombie does not). */
static bool pid_alive(long pid) {
  if (pid <= 0) return false;
  int st;
  if (waitpid((pid_t)pid, &st, WNOHANG) == (pid_t)pid) return false; /* our child, reaped now */
  if (kill((pid_t)pid, 0) && errno == ESRCH) return false;
  char p[64], buf[512];
  snprintf(p, sizeof p, "/proc/%ld/stat", pid);
  FILE *f = fopen(p, "r");
  if (!f) return false;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  const char *rp = strrchr(buf, ')');
  return !(rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
}

/* Whether pid's command line contains `needle` (guards against a pid
 * reused by another program since kz up wrote it). */
static bool pid_cmdline_has(long pid, const char *needle) {
  char p[64], buf[8192];
  snprintf(p, sizeof p, "/proc/%ld/cmdline", pid);
  FILE *f = fopen(p, "r");
  if (!f) return false;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  for (size_t i = 0; i < n; i++)
    if (!buf[i]) buf[i] = ' ';
  buf[n] = 0;
  return strstr(buf, needle) != NULL;
}

/* Starts argv[0] with argv, stdin from /dev/null, stdout and stderr
 * appended to `out` (NULL: /dev/null); `env_kv` ("NAME=VALUE", may be
 * NULL) is added to its environment.  With `detach` it gets a session of
 * its own, so a Ctrl-C at the terminal reaches kz up only (which then
 * stops it).  Returns the pid or -1. */
static pid_t spawn(char *const argv[], const char *out, bool detach, const char *env_kv) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid != 0) return pid;
  if (detach) setsid();
  struct sigaction sa = {.sa_handler = SIG_DFL};
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  sigaction(SIGPIPE, &sa, NULL);
  int in = open("/dev/null", O_RDONLY);
  int o = out ? open(out, O_WRONLY | O_CREAT | O_APPEND, 0644) : open("/dev/null", O_WRONLY);
  if (in < 0 || o < 0) _exit(127);
  dup2(in, 0);
  dup2(o, 1);
  dup2(o, 2);
  if (in > 2) close(in);
  if (o > 2) close(o);
  if (env_kv) putenv((char *)env_kv);
  execv(argv[0], argv);
  fprintf(stderr, "kz up: cannot run %s: %s\n", argv[0], strerror(errno));
  _exit(127);
}

/* SIGTERM, then SIGKILL after timeout_ms.  Returns true when it had to
 * kill. */
static bool stop_pid(long pid, unsigned timeout_ms) {
  if (!pid_alive(pid)) return false;
  kill((pid_t)pid, SIGTERM);
  uint64_t t0 = now_ms();
  while (pid_alive(pid)) {
    if (now_ms() - t0 >= timeout_ms) {
      kill((pid_t)pid, SIGKILL);
      for (int i = 0; i < 100 && pid_alive(pid); i++) sleep_ms(20);
      return true;
    }
    sleep_ms(20);
  }
  return false;
}

/* ------------------------------------------------------------------ */
/* Health probes */

static int tcp_connect(const char *addr, int port, unsigned timeout_ms) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) return -1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  struct pollfd p = {fd, POLLOUT, 0};
  int err = 0;
  socklen_t el = sizeof err;
  if (poll(&p, 1, (int)timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
    close(fd);
    return -1;
  }
  return fd;
}

static bool probe_tcp(const char *addr, int port) {
  int fd = tcp_connect(addr, port, 500);
  if (fd < 0) return false;
  close(fd);
  return true;
}

/* HTTP GET / answers 200 (the db's welcome document). */
static bool probe_http(const char *addr, int port) {
  int fd = tcp_connect(addr, port, 500);
  if (fd < 0) return false;
  char req[256], buf[64] = "";
  snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n", addr, port);
  bool ok = false;
  if (send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req)) {
    size_t got = 0;
    uint64_t t0 = now_ms();
    while (got < 12 && now_ms() - t0 < 1000) {
      struct pollfd p = {fd, POLLIN, 0};
      if (poll(&p, 1, 200) != 1) continue;
      ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
      if (n <= 0) break;
      got += (size_t)n;
    }
    buf[got] = 0;
    ok = !strncmp(buf, "HTTP/1.1 200", 12) || !strncmp(buf, "HTTP/1.0 200", 12);
  }
  close(fd);
  return ok;
}

/* A SIP OPTIONS over UDP from 127.0.0.1 is answered with a 200.
 * Returns the status code (0: no answer). */
static int probe_sip(const char *addr, int port) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  struct sockaddr_in me = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t ml = sizeof me;
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  int code = 0;
  if (bind(fd, (struct sockaddr *)&me, sizeof me) || getsockname(fd, (struct sockaddr *)&me, &ml) ||
      inet_pton(AF_INET, addr, &to.sin_addr) != 1) {
    close(fd);
    return 0;
  }
  unsigned lport = ntohs(me.sin_port);
  for (int attempt = 0; attempt < 3 && !code; attempt++) {
    char msg[768];
    int n = snprintf(msg, sizeof msg,
                     /* Host names, not IPs: the proxy's traffic filter drops
                      * requests to bare IPs as scanners' (Kazoo does too). */
                     "OPTIONS sip:kz-up.invalid SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 127.0.0.1:%u;branch=z9hG4bKkzup%ld%d;rport\r\n"
                     "Max-Forwards: 70\r\n"
                     "From: <sip:kz-up@kz-up.invalid>;tag=kzup%ld\r\n"
                     "To: <sip:kz-up.invalid>\r\n"
                     "Call-ID: kz-up-%ld-%d@kz-up.invalid\r\n"
                     "CSeq: %d OPTIONS\r\n"
                     "User-Agent: kz-up\r\n"
                     "Content-Length: 0\r\n\r\n",
                     lport, (long)getpid(), attempt, (long)getpid(), (long)getpid(), attempt, attempt + 1);
    if (sendto(fd, msg, (size_t)n, 0, (struct sockaddr *)&to, sizeof to) != n) break;
    uint64_t t0 = now_ms();
    while (!code && now_ms() - t0 < 400) {
      struct pollfd p = {fd, POLLIN, 0};
      if (poll(&p, 1, 100) != 1) continue;
      char buf[2048];
      ssize_t r = recv(fd, buf, sizeof buf - 1, 0);
      if (r < 12) continue;
      buf[r] = 0;
      int c = 0;
      if (!strncmp(buf, "SIP/2.0 ", 8)) c = atoi(buf + 8);
      if (c >= 200) code = c;
    }
  }
  close(fd);
  return code;
}

/* Whether pid holds an established TCP connection to 127.0.0.1:port for
 * one of `ports` (the bus client is connected to a broker): its socket
 * inodes (/proc/PID/fd) against /proc/net/tcp. */
static bool pid_connected_to(long pid, const int *ports, size_t nports) {
  char p[64];
  snprintf(p, sizeof p, "/proc/%ld/fd", pid);
  DIR *d = opendir(p);
  if (!d) return false;
  unsigned long inodes[256];
  size_t ni = 0;
  struct dirent *e;
  while ((e = readdir(d)) && ni < 256) {
    char lp[320], target[128];
    snprintf(lp, sizeof lp, "%s/%s", p, e->d_name);
    ssize_t n = readlink(lp, target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = 0;
    unsigned long ino;
    if (sscanf(target, "socket:[%lu]", &ino) == 1) inodes[ni++] = ino;
  }
  closedir(d);
  FILE *f = fopen("/proc/net/tcp", "r");
  if (!f) return false;
  char line[512];
  bool found = false;
  while (!found && fgets(line, sizeof line, f)) {
    unsigned rport, st;
    unsigned long ino;
    char la[64], ra[64];
    /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
    if (sscanf(line, " %*d: %63s %63s %x %*s %*s %*s %*d %*d %lu", la, ra, &st, &ino) != 4) continue;
    char *c = strchr(ra, ':');
    if (!c || st != 1) continue; /* 01: ESTABLISHED */
    rport = (unsigned)strtoul(c + 1, NULL, 16);
    for (size_t i = 0; i < nports && !found; i++) {
      if ((unsigned)ports[i] != rport) continue;
      for (size_t k = 0; k < ni && !found; k++) found = inodes[k] == ino;
    }
  }
  fclose(f);
  return found;
}

static void broker_ports(const struct up_state *s, int *ports, size_t *n) {
  *n = 0;
  for (size_t i = 0; i < s->n; i++)
    if (s->procs[i].role == UP_BROKER && *n < 16) ports[(*n)++] = s->procs[i].port;
}

/* Probes one process; `why` gets a short health text.  Returns true when
 * healthy. */
static bool probe(const struct up_state *s, const struct up_proc *p, char *why, size_t len) {
  if (!pid_alive(p->pid)) {
    snprintf(why, len, p->pid ? "DOWN (process gone)" : "DOWN (not started)");
    return false;
  }
  int ports[16];
  size_t np;
  broker_ports(s, ports, &np);
  switch (p->role) {
  case UP_BROKER:
    if (probe_tcp(p->addr, p->port)) return snprintf(why, len, "ok (AMQP port open)"), true;
    snprintf(why, len, "DOWN (port closed)");
    return false;
  case UP_DB:
    if (probe_http(p->addr, p->port)) return snprintf(why, len, "ok (GET / 200)"), true;
    snprintf(why, len, "DOWN (no HTTP 200)");
    return false;
  case UP_APPS:
    if (pid_connected_to(p->pid, ports, np)) return snprintf(why, len, "ok (bus connected)"), true;
    snprintf(why, len, "DEGRADED (no bus connection)");
    return false;
  case UP_PROXY: {
    int code = probe_sip(p->addr, p->port);
    bool bus = pid_connected_to(p->pid, ports, np);
    if (code == 200 && bus) return snprintf(why, len, "ok (OPTIONS 200, bus connected)"), true;
    if (code == 200) snprintf(why, len, "DEGRADED (OPTIONS 200, no bus connection)");
    else if (code) snprintf(why, len, "DOWN (OPTIONS answered %d)", code);
    else snprintf(why, len, "DOWN (OPTIONS unanswered)");
    return false;
  }
  }
  return false;
}

/* ------------------------------------------------------------------ */
/* The state file */

static int state_paths(struct up_state *s, const char *dir) {
  if (absolute(dir, s->dir, sizeof s->dir)) return -1;
  size_t n = strlen(s->dir);
  while (n > 1 && s->dir[n - 1] == '/') s->dir[--n] = 0;
  return fmt(s->rabbit_root, sizeof s->rabbit_root, "%s/rabbitmq", s->dir);
}

static int state_save(const struct up_state *s) {
  json_t *procs = json_array();
  for (size_t i = 0; i < s->n; i++) {
    const struct up_proc *p = &s->procs[i];
    json_array_append_new(procs, json_pack("{s:s, s:s, s:s, s:i, s:I, s:s, s:s, s:s, s:s}", "role",
                                           up_role_names[p->role], "host", p->host, "addr", p->addr, "port",
                                           p->port, "pid", (json_int_t)p->pid, "node", p->node, "config", p->conf,
                                           "log", p->log, "pidfile", p->pidfile));
  }
  json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:o}", "topology", s->topology, "name", s->name, "kz",
                        s->kz, "rabbitmq", s->rabbit, "rabbit_root", s->rabbit_root, "started",
                        (json_int_t)s->started, "procs", procs);
  if (j) json_object_set_new(j, "net", json_integer(s->net));
  char path[UP_PATH + 32], tmp[UP_PATH + 32];
  snprintf(path, sizeof path, "%s/state.json", s->dir);
  snprintf(tmp, sizeof tmp, "%s/state.json.tmp", s->dir);
  int rc = j ? json_dump_file(j, tmp, JSON_INDENT(2)) : -1;
  json_decref(j);
  if (!rc) rc = rename(tmp, path);
  return rc ? -1 : 0;
}

static void copy_json_str(char *dst, size_t n, json_t *o, const char *key) {
  const char *v = json_string_value(json_object_get(o, key));
  snprintf(dst, n, "%s", v ? v : "");
}

/* Reads DIR/state.json.  Returns 0, 1 (no state file) or -1 (unreadable). */
static int state_load(struct up_state *s, const char *dir) {
  memset(s, 0, sizeof *s);
  if (state_paths(s, dir)) return -1;
  char path[UP_PATH + 32];
  snprintf(path, sizeof path, "%s/state.json", s->dir);
  if (!file_exists(path)) return 1;
  json_error_t je;
  json_t *j = json_load_file(path, 0, &je);
  if (!j) {
    fprintf(stderr, "kz: %s:%d: %s\n", path, je.line, je.text);
    return -1;
  }
  copy_json_str(s->topology, sizeof s->topology, j, "topology");
  copy_json_str(s->name, sizeof s->name, j, "name");
  copy_json_str(s->kz, sizeof s->kz, j, "kz");
  copy_json_str(s->rabbit, sizeof s->rabbit, j, "rabbitmq");
  copy_json_str(s->rabbit_root, sizeof s->rabbit_root, j, "rabbit_root");
  s->started = (long)json_integer_value(json_object_get(j, "started"));
  json_t *net = json_object_get(j, "net");
  s->net = net ? (int)json_integer_value(net) : -1;
  json_t *procs = json_object_get(j, "procs");
  for (size_t i = 0; i < json_array_size(procs) && s->n < UP_MAX_PROCS; i++) {
    json_t *o = json_array_get(procs, i);
    struct up_proc *p = &s->procs[s->n];
    const char *role = json_string_value(json_object_get(o, "role"));
    p->role = -1;
    for (int r = 0; r < UP_NROLES; r++)
      if (role && !strcmp(role, up_role_names[r])) p->role = r;
    if (p->role < 0) continue;
    copy_json_str(p->host, sizeof p->host, o, "host");
    copy_json_str(p->addr, sizeof p->addr, o, "addr");
    copy_json_str(p->node, sizeof p->node, o, "node");
    copy_json_str(p->conf, sizeof p->conf, o, "config");
    copy_json_str(p->log, sizeof p->log, o, "log");
    copy_json_str(p->pidfile, sizeof p->pidfile, o, "pidfile");
    p->port = (int)json_integer_value(json_object_get(o, "port"));
    p->pid = (long)json_integer_value(json_object_get(o, "pid"));
    s->n++;
  }
  json_decref(j);
  return 0;
}

static void write_pidfile(const struct up_proc *p) {
  FILE *f = fopen(p->pidfile, "w");
  if (!f) return;
  fprintf(f, "%ld\n", p->pid);
  fclose(f);
}

/* ------------------------------------------------------------------ */
/* Stopping */

/* ci/rabbitmq OP NAME with the state's KZ_RABBIT_ROOT; returns its exit
 * status (-1: it could not run). */
static int rabbit_cmd(const struct up_state *s, const char *op, const struct up_proc *p, const char *out) {
  char port[16], dist[16], env[UP_PATH + 32];
  snprintf(port, sizeof port, "%d", p->port);
  snprintf(dist, sizeof dist, "%d", p->port + 20000);
  snprintf(env, sizeof env, "KZ_RABBIT_ROOT=%s", s->rabbit_root);
  char *argv[] = {(char *)s->rabbit, (char *)op, (char *)p->node, port, dist, NULL};
  if (strcmp(op, "start")) argv[3] = NULL;
  pid_t pid = spawn(argv, out, false, env);
  if (pid < 0) return -1;
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Stops every process of s, newest first (proxies, apps, dbs, then the
 * brokers through ci/rabbitmq stop), removes the pid files and the state
 * file.  Returns the number of processes stopped. */
static int stop_all(struct up_state *s, unsigned timeout_ms, bool quiet) {
  int stopped = 0;
  for (size_t k = s->n; k-- > 0;) {
    struct up_proc *p = &s->procs[k];
    if (p->role == UP_BROKER) continue;
    /* Only a process still running our config file is ours to stop (or
     * our own child, which may not have reached its exec yet). */
    bool child = p->pid > 0 && waitpid((pid_t)p->pid, NULL, WNOHANG) == 0;
    if (child || (pid_alive(p->pid) && pid_cmdline_has(p->pid, p->conf))) {
      bool killed = stop_pid(p->pid, timeout_ms);
      stopped++;
      if (!quiet)
        printf("kz down: %-6s on %-8s pid %-7ld %s\n", up_role_names[p->role], p->host, p->pid,
               killed ? "killed (SIGKILL after the timeout)" : "stopped");
    }
    if (p->pidfile[0]) unlink(p->pidfile);
  }
  /* ci/rabbitmq stops the state's own epmd (ERL_EPMD_PORT of its
   * KZ_RABBIT_ROOT) with its last node; a system epmd is never touched. */
  for (size_t k = s->n; k-- > 0;) {
    struct up_proc *p = &s->procs[k];
    if (p->role != UP_BROKER) continue;
    bool was = pid_alive(p->pid);
    int rc = s->rabbit[0] ? rabbit_cmd(s, "stop", p, NULL) : -1;
    if (was) stopped++;
    if (!quiet && (was || rc))
      printf("kz down: broker on %-8s node %s %s\n", p->host, p->node,
             rc ? "could not be stopped by ci/rabbitmq" : "stopped");
    if (p->pidfile[0]) unlink(p->pidfile);
  }
  char path[UP_PATH + 32];
  snprintf(path, sizeof path, "%s/state.json", s->dir);
  unlink(path);
  return stopped;
}

/* ------------------------------------------------------------------ */
/* Starting */

static void print_table(const struct up_state *s, bool live, FILE *out) {
  fprintf(out, "%-7s %-10s %-22s %-8s %s\n", "ROLE", "HOST", "ADDRESS", "PID", "HEALTH");
  int healthy = 0;
  for (size_t i = 0; i < s->n; i++) {
    const struct up_proc *p = &s->procs[i];
    char a[64], why[96] = "";
    if (p->port) snprintf(a, sizeof a, "%s:%d", p->addr, p->port);
    else snprintf(a, sizeof a, "%s", p->addr);
    if (live) healthy += probe(s, p, why, sizeof why);
    fprintf(out, "%-7s %-10s %-22s %-8ld %s\n", up_role_names[p->role], p->host, a, p->pid, why);
  }
  (void)healthy;
}

static void tail_log(const char *path, int lines) {
  FILE *f = fopen(path, "r");
  if (!f) return;
  char buf[64][256];
  int n = 0;
  while (fgets(buf[n % 64], sizeof buf[0], f)) n++;
  fclose(f);
  int from = n > lines ? n - lines : 0;
  for (int i = from; i < n; i++) fprintf(stderr, "    | %s", buf[i % 64]);
}

/* Waits until p is healthy, its process dies, the timeout passes or kz up
 * is interrupted.  Returns 0 when healthy. */
static int wait_healthy(const struct up_state *s, const struct up_proc *p, unsigned timeout_ms) {
  uint64_t t0 = now_ms();
  char why[96];
  for (;;) {
    if (up_interrupted) return -1;
    if (probe(s, p, why, sizeof why)) return 0;
    if (!pid_alive(p->pid)) {
      fprintf(stderr, "kz up: %s on %s exited during start-up; its log (%s) ends:\n", up_role_names[p->role],
              p->host, p->log);
      tail_log(p->log, 15);
      return -1;
    }
    if (now_ms() - t0 > timeout_ms) {
      fprintf(stderr, "kz up: %s on %s is not healthy after %u s: %s; its log (%s) ends:\n", up_role_names[p->role],
              p->host, timeout_ms / 1000, why, p->log);
      tail_log(p->log, 15);
      return -1;
    }
    sleep_ms(100);
  }
}

static struct up_proc *add_proc(struct up_state *s, int role, const char *host, const char *addr, int port) {
  if (s->n == UP_MAX_PROCS) return NULL;
  struct up_proc *p = &s->procs[s->n++];
  memset(p, 0, sizeof *p);
  p->role = role;
  if (fmt(p->host, sizeof p->host, "%s", host) || fmt(p->addr, sizeof p->addr, "%s", addr)) {
    s->n--;
    return NULL;
  }
  p->port = port;
  if (fmt(p->conf, sizeof p->conf, "%s/conf/%s-%s.json", s->dir, up_role_names[role], host) ||
      fmt(p->log, sizeof p->log, "%s/logs/%s-%s.log", s->dir, up_role_names[role], host) ||
      fmt(p->pidfile, sizeof p->pidfile, "%s/run/%s-%s.pid", s->dir, up_role_names[role], host))
    return NULL;
  return p;
}

static int write_json(const char *path, json_t *j) {
  int rc = j ? json_dump_file(j, path, JSON_INDENT(2)) : -1;
  json_decref(j);
  if (rc) fprintf(stderr, "kz up: cannot write %s\n", path);
  return rc ? -1 : 0;
}

/* The brokers' AMQP URIs for a role on `host`: its own host's first. */
static json_t *amqp_uris(const struct up_state *s, const char *host) {
  json_t *a = json_array();
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < s->n; i++) {
      const struct up_proc *p = &s->procs[i];
      if (p->role != UP_BROKER || (strcmp(p->host, host) == 0) != (pass == 0)) continue;
      char u[128];
      snprintf(u, sizeof u, "amqp://guest:guest@%s:%d/", p->addr, p->port);
      json_array_append_new(a, json_string(u));
    }
  return a;
}

/* The db for a role on `host`: its own host's, else the first. */
static const struct up_proc *db_for(const struct up_state *s, const char *host) {
  const struct up_proc *first = NULL;
  for (size_t i = 0; i < s->n; i++) {
    const struct up_proc *p = &s->procs[i];
    if (p->role != UP_DB) continue;
    if (!strcmp(p->host, host)) return p;
    if (!first) first = p;
  }
  return first;
}

/* "<dir>/<stem>.proxy.json" beside topology "<dir>/<stem>.yaml" (the
 * simulator reads the same side-car). */
static json_t *proxy_sidecar(const char *topology) {
  char path[UP_PATH];
  size_t n = strlen(topology);
  if (n > 5 && !strcmp(topology + n - 5, ".yaml")) n -= 5;
  else if (n > 4 && !strcmp(topology + n - 4, ".yml")) n -= 4;
  snprintf(path, sizeof path, "%.*s.proxy.json", (int)n, topology);
  if (!file_exists(path)) return json_object();
  json_error_t je;
  json_t *j = json_load_file(path, 0, &je);
  if (!j || !json_is_object(j)) {
    fprintf(stderr, "kz up: %s:%d: %s\n", path, je.line, j ? "not a JSON object" : je.text);
    json_decref(j);
    return NULL;
  }
  return j;
}

static int start_kz_role(struct up_state *s, struct up_proc *p) {
  char *argv[] = {s->kz, "run", (char *)up_role_names[p->role], "--config", p->conf, NULL};
  unlink(p->log);
  pid_t pid = spawn(argv, p->log, true, NULL);
  if (pid < 0) {
    fprintf(stderr, "kz up: cannot start %s on %s: %s\n", up_role_names[p->role], p->host, strerror(errno));
    return -1;
  }
  p->pid = pid;
  write_pidfile(p);
  return state_save(s);
}

/* Parses the topology and lays out the processes (nothing started). */
static int plan(struct up_state *s, const struct kz_topo *t, int broker_base) {
  /* Roles without a real binary are refused up front, naming them. */
  char missing[512] = "";
  for (size_t h = 0; h < t->nhosts; h++)
    for (int r = KZ_TOPO_MEDIA; r <= KZ_TOPO_ECALLMGR; r++)
      if (t->hosts[h].roles & (1u << r)) {
        size_t l = strlen(missing);
        snprintf(missing + l, sizeof missing - l, "%s%s on %s", l ? ", " : "", kz_topo_role_name(r),
                 t->hosts[h].name);
      }
  if (missing[0]) {
    fprintf(stderr,
            "kz up: %s: these roles have no real binary yet: %s.\n"
            "  Real mode runs broker, db, apps and proxy (SIPp UASes stand in for media servers);\n"
            "  use a topology without them, e.g. scenarios/topologies/two-server-proxy.yaml.\n",
            t->file, missing);
    return -1;
  }
  char addrs[64][INET_ADDRSTRLEN];
  for (size_t h = 0; h < t->nhosts && h < 64; h++) {
    if (kz_cli_up_map_addr(&t->hosts[h].addr, s->net, addrs[h], sizeof addrs[h])) {
      char ip[KZ_ADDR_STRLEN];
      kz_addr_format_ip(&t->hosts[h].addr, ip, sizeof ip);
      fprintf(stderr, "kz up: %s: host %s: address %s has no loopback twin (127.b.c.d for a.b.c.d)\n", t->file,
              t->hosts[h].name, ip);
      return -1;
    }
    for (size_t k = 0; k < h; k++)
      if (!strcmp(addrs[h], addrs[k])) {
        fprintf(stderr, "kz up: %s: hosts %s and %s both map to %s (real mode keeps the last three octets)\n",
                t->file, t->hosts[k].name, t->hosts[h].name, addrs[h]);
        return -1;
      }
  }
  if (t->nhosts > 64) {
    fprintf(stderr, "kz up: %s: at most 64 hosts in real mode\n", t->file);
    return -1;
  }
  /* The RabbitMQ node names carry a hash of the state directory, so two
   * state directories never share a node. */
  uint32_t hsh = 2166136261u;
  for (const char *c = s->dir; *c; c++) hsh = (hsh ^ (uint8_t)*c) * 16777619u;
  static const int order[] = {KZ_TOPO_BROKER, KZ_TOPO_DB, KZ_TOPO_APPS, KZ_TOPO_PROXY};
  static const int as_up[] = {UP_BROKER, UP_DB, UP_APPS, UP_PROXY};
  int nbroker = 0;
  for (int k = 0; k < 4; k++)
    for (size_t h = 0; h < t->nhosts; h++) {
      if (!(t->hosts[h].roles & (1u << order[k]))) continue;
      int role = as_up[k];
      int port = role == UP_DB ? DB_PORT : role == UP_PROXY ? SIP_PORT : 0;
      const char *addr = addrs[h];
      if (role == UP_BROKER) {
        addr = "127.0.0.1";
        port = broker_base + nbroker++;
      }
      struct up_proc *p = add_proc(s, role, t->hosts[h].name, addr, port);
      if (!p) {
        fprintf(stderr, "kz up: too many processes or too long a state path\n");
        return -1;
      }
      if (role == UP_BROKER) snprintf(p->node, sizeof p->node, "kzup%04x-%s", hsh & 0xffff, t->hosts[h].name);
    }
  return 0;
}

/* prng_seed < 0: no "seed" is written and every process draws a fresh
 * one at each start (kz_cli_default_seed): distinct Server-IDs on the
 * broker, and a restarted db never redraws the uuids it handed out.
 * prng_seed >= 0 (--prng-seed, for a reproducible run): process i gets
 * prng_seed + i. */
static int write_configs(struct up_state *s, const struct kz_topo *t, long long prng_seed) {
  for (size_t i = 0; i < s->n; i++) {
    struct up_proc *p = &s->procs[i];
    char name[96], listen[64];
    snprintf(name, sizeof name, "%s-%s", up_role_names[p->role], p->host);
    snprintf(listen, sizeof listen, "%s:%d", p->addr, p->port);
    json_int_t seed = prng_seed >= 0 ? (json_int_t)(prng_seed + (long long)i) : -1;
    if (p->role == UP_DB) {
      char data[UP_PATH + 64];
      snprintf(data, sizeof data, "%s/data/db-%s", s->dir, p->host);
      if (mkdirs(data)) {
        fprintf(stderr, "kz up: cannot create %s: %s\n", data, strerror(errno));
        return -1;
      }
      json_t *j = json_pack("{s:s, s:s, s:s}", "listen", listen, "data_dir", data, "name", name);
      if (j && seed >= 0) json_object_set_new(j, "seed", json_integer(seed));
      /* The topology's other dbs are its peers: they keep each other
       * current, as the CouchDB cluster of Kazoo's servers does. */
      json_t *peers = json_array();
      for (size_t k = 0; k < s->n && j && peers; k++) {
        const struct up_proc *q = &s->procs[k];
        if (k == i || q->role != UP_DB) continue;
        char url[96];
        snprintf(url, sizeof url, "http://%s:%d", q->addr, q->port);
        json_array_append_new(peers, json_string(url));
      }
      if (j && json_array_size(peers)) json_object_set_new(j, "peers", peers);
      else json_decref(peers);
      if (write_json(p->conf, j)) return -1;
    } else if (p->role == UP_APPS) {
      const struct up_proc *db = db_for(s, p->host);
      json_t *uris = amqp_uris(s, p->host);
      if (!db || !json_array_size(uris)) {
        json_decref(uris);
        fprintf(stderr, "kz up: apps on %s needs a db and a broker in the topology\n", p->host);
        return -1;
      }
      char url[96], node[128];
      snprintf(url, sizeof url, "http://%s:%d", db->addr, db->port);
      snprintf(node, sizeof node, "registrar@%s", p->host);
      json_t *j = json_pack("{s:o, s:s, s:s, s:s}", "amqp_uris", uris, "db_url", url, "name", name, "node", node);
      if (j && seed >= 0) json_object_set_new(j, "seed", json_integer(seed));
      if (write_json(p->conf, j)) return -1;
    } else if (p->role == UP_PROXY) {
      json_t *j = proxy_sidecar(s->topology);
      if (!j) return -1;
      /* Media servers: the topology's sipp-uas hosts (they stand in for
       * the media role), on their loopback twins. */
      json_t *media = json_array();
      for (size_t h = 0; h < t->nhosts; h++) {
        if (!(t->hosts[h].roles & (1u << KZ_TOPO_SIPP_UAS))) continue;
        char a[INET_ADDRSTRLEN], u[64];
        kz_cli_up_map_addr(&t->hosts[h].addr, s->net, a, sizeof a);
        snprintf(u, sizeof u, "sip:%s:%d", a, SIP_PORT);
        json_array_append_new(media, json_string(u));
      }
      /* Trusted sources written as the simulated hosts' addresses are
       * those hosts' loopback twins here. */
      json_t *tv;
      size_t ti;
      json_array_foreach(json_object_get(j, "trusted"), ti, tv) {
        struct kz_addr a;
        if (!json_is_string(tv) || kz_addr_parse(&a, json_string_value(tv))) continue;
        for (size_t h = 0; h < t->nhosts; h++) {
          char twin[INET_ADDRSTRLEN];
          if (a.family != 4 || memcmp(a.ip, t->hosts[h].addr.ip, 4) ||
              kz_cli_up_map_addr(&t->hosts[h].addr, s->net, twin, sizeof twin))
            continue;
          json_array_set_new(json_object_get(j, "trusted"), ti, json_string(twin));
          break;
        }
      }
      json_object_set_new(j, "listen", json_string(listen));
      json_object_set_new(j, "media_servers", media);
      json_object_set_new(j, "name", json_string(name));
      if (seed >= 0) json_object_set_new(j, "seed", json_integer(seed));
      json_t *uris = amqp_uris(s, p->host);
      if (json_array_size(uris)) json_object_set_new(j, "bus", json_pack("{s:o}", "uris", uris));
      else json_decref(uris);
      if (write_json(p->conf, j)) return -1;
    }
  }
  return 0;
}

/* Starts the brokers (in parallel: a RabbitMQ boot takes seconds). */
static int start_brokers(struct up_state *s, unsigned timeout_ms) {
  pid_t scripts[UP_MAX_PROCS] = {0};
  int rc = 0;
  for (size_t i = 0; i < s->n; i++) {
    struct up_proc *p = &s->procs[i];
    if (p->role != UP_BROKER) continue;
    if (probe_tcp(p->addr, p->port)) {
      fprintf(stderr, "kz up: broker port %s:%d is in use already (kz down? or --broker-port)\n", p->addr, p->port);
      return -1;
    }
    char port[16], dist[16], env[UP_PATH + 32];
    snprintf(port, sizeof port, "%d", p->port);
    snprintf(dist, sizeof dist, "%d", p->port + 20000);
    snprintf(env, sizeof env, "KZ_RABBIT_ROOT=%s", s->rabbit_root);
    char *argv[] = {s->rabbit, "start", p->node, port, dist, NULL};
    unlink(p->log);
    /* Detached: a Ctrl-C must not kill ci/rabbitmq between the node's
     * start and its pid file, or `ci/rabbitmq stop` could not find it. */
    scripts[i] = spawn(argv, p->log, true, env);
    if (scripts[i] < 0) return -1;
  }
  if (state_save(s)) return -1;
  uint64_t t0 = now_ms();
  for (size_t i = 0; i < s->n; i++) {
    struct up_proc *p = &s->procs[i];
    if (!scripts[i]) continue;
    int st = 0;
    for (;;) {
      pid_t w = waitpid(scripts[i], &st, WNOHANG);
      if (w == scripts[i]) break;
      /* ci/rabbitmq bounds its own wait (KZ_RABBIT_WAIT) and stops a node
       * that did not come up; this bound is only a safety net. */
      if (now_ms() - t0 > timeout_ms + 30000) {
        kill(scripts[i], SIGKILL);
        waitpid(scripts[i], &st, 0);
        st = -1;
        break;
      }
      sleep_ms(100);
    }
    if (st != 0) {
      if (!up_interrupted) {
        fprintf(stderr, "kz up: RabbitMQ node %s (broker on %s) did not start; %s ends:\n", p->node, p->host, p->log);
        tail_log(p->log, 10);
      }
      rc = -1;
      continue;
    }
    /* ci/rabbitmq prints the node's pid as its last line. */
    char pidp[UP_PATH + 128];
    snprintf(pidp, sizeof pidp, "%s/%s/pid", s->rabbit_root, p->node);
    FILE *f = fopen(pidp, "r");
    long pid = 0;
    if (f) {
      if (fscanf(f, "%ld", &pid) != 1) pid = 0;
      fclose(f);
    }
    p->pid = pid;
    write_pidfile(p);
  }
  if (state_save(s)) return -1;
  return rc;
}

static int seed_dbs(const struct up_state *s, const char *seed_file) {
  for (size_t i = 0; i < s->n && !up_interrupted; i++) {
    const struct up_proc *p = &s->procs[i];
    if (p->role != UP_DB) continue;
    char url[96], log[UP_PATH + 64];
    snprintf(url, sizeof url, "http://%s:%d", p->addr, p->port);
    snprintf(log, sizeof log, "%s/logs/seed-%s.log", s->dir, p->host);
    unlink(log);
    char *argv[] = {(char *)s->kz, "seed", "--quiet", "--url", url, (char *)seed_file, NULL};
    pid_t pid = spawn(argv, log, false, NULL);
    int st = -1;
    if (pid > 0)
      while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        if (up_interrupted) kill(pid, SIGTERM);
      }
    if (pid < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
      fprintf(stderr, "kz up: seeding the db on %s with %s failed; %s ends:\n", p->host, seed_file, log);
      tail_log(log, 10);
      return -1;
    }
  }
  return up_interrupted ? -1 : 0;
}

/* Whether DIR/state.json names processes that still run. */
static bool state_live(const struct up_state *s) {
  for (size_t i = 0; i < s->n; i++)
    if (pid_alive(s->procs[i].pid)) return true;
  return false;
}

struct up_opts {
  const char *topology;
  const char *state;
  const char *seed;
  long long prng_seed; /* -1: none (fresh per process) */
  int broker_base;
  int net;
  unsigned timeout_ms;
  bool quiet;
};

static int do_up(const struct up_opts *o) {
  struct up_state *s = calloc(1, sizeof *s);
  struct kz_topo *t = NULL;
  int status = 2;
  if (!s) return 2;
  int lr = state_load(s, o->state);
  if (lr < 0) goto done;
  if (lr == 0 && state_live(s)) {
    fprintf(stderr, "kz up: %s is up already from %s (kz status; kz down --state %s)\n", s->name, s->dir, o->state);
    goto done;
  }
  if (lr == 0) stop_all(s, 1000, true); /* leftovers of a crashed kz up */
  memset(s, 0, sizeof *s);
  s->net = o->net;
  if (state_paths(s, o->state) || absolute(o->topology, s->topology, sizeof s->topology)) {
    fprintf(stderr, "kz up: path too long\n");
    goto done;
  }
  struct kz_topo_err terr;
  int rc = kz_topo_load_file(&t, s->topology, &terr);
  if (rc) {
    fprintf(stderr, "kz up: %s\n", terr.text);
    goto done;
  }
  snprintf(s->name, sizeof s->name, "%s", t->name);
  if (kz_cli_up_kz_bin(s->kz, sizeof s->kz)) {
    fprintf(stderr, "kz up: cannot find the kz binary (set KZ_BIN)\n");
    goto done;
  }
  char seed[UP_PATH];
  if (o->seed) {
    if (absolute(o->seed, seed, sizeof seed) || !file_exists(seed)) {
      fprintf(stderr, "kz up: no seed file %s\n", o->seed);
      goto done;
    }
  } else if (kz_cli_up_resolve("fixtures/seed/basic.json", seed, sizeof seed)) {
    fprintf(stderr, "kz up: cannot find fixtures/seed/basic.json (run from the source tree or set KZ_SOURCE_DIR)\n");
    goto done;
  }
  if (plan(s, t, o->broker_base)) goto done;
  bool brokers = false;
  for (size_t i = 0; i < s->n; i++) brokers |= s->procs[i].role == UP_BROKER;
  if (brokers && kz_cli_up_resolve("ci/rabbitmq", s->rabbit, sizeof s->rabbit)) {
    fprintf(stderr, "kz up: cannot find ci/rabbitmq (run from the source tree or set KZ_SOURCE_DIR)\n");
    goto done;
  }
  char sub[UP_PATH + 16];
  static const char *const subs[] = {"conf", "logs", "run", "data"};
  for (int i = 0; i < 4; i++) {
    snprintf(sub, sizeof sub, "%s/%s", s->dir, subs[i]);
    if (mkdirs(sub)) {
      fprintf(stderr, "kz up: cannot create %s: %s\n", sub, strerror(errno));
      goto done;
    }
  }
  s->started = (long)time(NULL);
  if (write_configs(s, t, o->prng_seed) || state_save(s)) goto done;

  /* From here on, a failure or an interrupt stops what was started. */
  up_interrupted = 0;
  struct sigaction sa = {.sa_handler = on_interrupt}, old_int, old_term, old_hup;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  sigaction(SIGHUP, &sa, &old_hup);
  status = 1;
  if (!o->quiet) printf("kz up: %s (%s), state in %s\n", s->name, s->topology, s->dir);
  if (start_brokers(s, o->timeout_ms)) goto fail;
  for (int role = UP_DB; role < UP_NROLES; role++) {
    for (size_t i = 0; i < s->n; i++)
      if (s->procs[i].role == role && start_kz_role(s, &s->procs[i])) goto fail;
    for (size_t i = 0; i < s->n; i++)
      if (s->procs[i].role == role && wait_healthy(s, &s->procs[i], o->timeout_ms)) goto fail;
    if (role == UP_DB && seed_dbs(s, seed)) goto fail;
    if (role == UP_DB && !o->quiet) printf("kz up: seeded every db with %s\n", seed);
  }
  if (!o->quiet) print_table(s, true, stdout);
  status = 0;
  goto restore;
fail:
  if (up_interrupted) fprintf(stderr, "kz up: interrupted (signal %d): stopping what was started\n", up_interrupted);
  else fprintf(stderr, "kz up: start failed: stopping what was started\n");
  stop_all(s, 3000, o->quiet);
  if (up_interrupted) status = 130;
restore:
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  sigaction(SIGHUP, &old_hup, NULL);
done:
  kz_topo_free(t);
  free(s);
  return status;
}

/* Starts `topology` into state_dir as `kz up` does (for `kz scenario run
 * --real`).  broker_port may be NULL (5672).  Returns kz up's status. */
int kz_cli_up_start(const char *topology, const char *state_dir, int broker_port, int net, bool quiet) {
  struct up_opts o = {.topology = topology, .state = state_dir, .broker_base = broker_port > 0 ? broker_port : 5672,
                      .net = net, .timeout_ms = 60000, .quiet = quiet};
  return do_up(&o);
}

/* Stops what state_dir records as `kz down` does.  Returns 0, or 1 when
 * nothing was up. */
int kz_cli_up_stop(const char *state_dir, bool quiet) {
  struct up_state *s = calloc(1, sizeof *s);
  if (!s) return 2;
  int lr = state_load(s, state_dir);
  if (lr == 0) stop_all(s, 10000, quiet);
  free(s);
  return lr == 0 ? 0 : 1;
}

/* Whether state_dir has processes up; copies the topology path into
 * topology (len bytes) and the --net into *net when so.  Returns 1 up,
 * 0 not. */
int kz_cli_up_running(const char *state_dir, char *topology, size_t len, int *net) {
  struct up_state *s = calloc(1, sizeof *s);
  if (!s) return 0;
  int up = state_load(s, state_dir) == 0 && state_live(s);
  if (up && topology) snprintf(topology, len, "%s", s->topology);
  if (up && net) *net = s->net;
  free(s);
  return up;
}

/* ------------------------------------------------------------------ */
/* Commands */

static void up_usage(FILE *out) {
  fprintf(out,
          "usage: kz up TOPOLOGY [--state DIR] [--seed FILE] [--prng-seed N] [--broker-port N] [--net N] [--timeout S] [--quiet]\n\n"
          "Runs every role of TOPOLOGY (scenarios/topologies/*.yaml) for real, each as its\n"
          "own process on its host's loopback address (host a.b.c.d -> 127.b.c.d; proxy SIP\n"
          "5060, db 5984), with a RabbitMQ node per broker host (ci/rabbitmq, on\n"
          "127.0.0.1:N, N+1, ...).  Waits until each is healthy, seeds every db, prints\n"
          "where everything is, and returns; the roles keep running until `kz down`.\n"
          "Ctrl-C or a failed start stops what was started.\n\n"
          "  --state DIR      configs, logs and pids (default .kz)\n"
          "  --seed FILE      seed for the dbs (default fixtures/seed/basic.json)\n"
          "  --prng-seed N    PRNG seeds N, N+1, ... for the processes (reproducible ids;\n"
          "                   default: fresh entropy in every process at every start)\n"
          "  --broker-port N  first RabbitMQ port (default 5672)\n"
          "  --net N          run every host on 127.N.c.d instead of 127.b.c.d\n"
          "  --timeout S      how long each role may take to become healthy (default 60)\n\n"
          "  --restart ROLE[:HOST]  restart a role of what is up (after a drill killed it)\n\n"
          "Roles with no real binary yet (media, ecallmgr) are refused.\n"
          "Exit status: 0 up, 1 a role failed to start, 2 usage or I/O error, 130 interrupted.\n");
}

static const char *opt_value(int argc, char **argv, int *i, const char *name) {
  size_t n = strlen(name);
  if (!strcmp(argv[*i], name) && *i + 1 < argc) return argv[++*i];
  if (!strncmp(argv[*i], name, n) && argv[*i][n] == '=') return argv[*i] + n + 1;
  return NULL;
}

int kz_cli_up_restart(const char *state_dir, const char *role, const char *host, bool quiet);

int kz_cli_up(int argc, char **argv) {
  struct up_opts o = {.state = ".kz", .prng_seed = -1, .broker_base = 5672, .net = -1, .timeout_ms = 60000};
  const char *restart = NULL;
  for (int i = 1; i < argc; i++) {
    const char *v;
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      up_usage(stdout);
      return 0;
    } else if ((v = opt_value(argc, argv, &i, "--restart"))) {
      restart = v;
    } else if ((v = opt_value(argc, argv, &i, "--state"))) {
      o.state = v;
    } else if ((v = opt_value(argc, argv, &i, "--seed"))) {
      o.seed = v;
    } else if ((v = opt_value(argc, argv, &i, "--prng-seed"))) {
      char *end = NULL;
      errno = 0;
      o.prng_seed = strtoll(v, &end, 10);
      if (errno || !*v || *end || o.prng_seed < 0 || o.prng_seed > (1LL << 52)) {
        fprintf(stderr, "kz up: --prng-seed must be an integer 0..2^52\n");
        return 2;
      }
    } else if ((v = opt_value(argc, argv, &i, "--broker-port"))) {
      o.broker_base = atoi(v);
      if (o.broker_base < 1024 || o.broker_base > 40000) {
        fprintf(stderr, "kz up: --broker-port must be 1024..40000 (the node's distribution port is N+20000)\n");
        return 2;
      }
    } else if ((v = opt_value(argc, argv, &i, "--net"))) {
      o.net = atoi(v);
      if (o.net < 0 || o.net > 255) {
        fprintf(stderr, "kz up: --net must be 0..255 (hosts then run on 127.N.c.d)\n");
        return 2;
      }
    } else if ((v = opt_value(argc, argv, &i, "--timeout"))) {
      int t = atoi(v);
      if (t <= 0 || t > 3600) {
        fprintf(stderr, "kz up: --timeout must be 1..3600 seconds\n");
        return 2;
      }
      o.timeout_ms = (unsigned)t * 1000u;
    } else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) {
      o.quiet = true;
    } else if (argv[i][0] != '-' && !o.topology) {
      o.topology = argv[i];
    } else {
      fprintf(stderr, "kz up: unexpected argument '%s'\n", argv[i]);
      up_usage(stderr);
      return 2;
    }
  }
  if (restart) {
    /* ROLE or ROLE:HOST of what is up already. */
    char role[32];
    snprintf(role, sizeof role, "%s", restart);
    char *colon = strchr(role, ':');
    if (colon) *colon = 0;
    return kz_cli_up_restart(o.state, role, colon ? colon + 1 : NULL, o.quiet);
  }
  if (!o.topology) {
    up_usage(stderr);
    return 2;
  }
  return do_up(&o);
}

/* kz status / logs / down share --state. */
static int state_arg(int argc, char **argv, const char *cmd, const char **state, const char **pos, int npos,
                     bool *json_out, unsigned *timeout_ms, bool *purge) {
  int np = 0;
  for (int i = 1; i < argc; i++) {
    const char *v;
    if ((v = opt_value(argc, argv, &i, "--state"))) {
      *state = v;
    } else if (json_out && !strcmp(argv[i], "--json")) {
      *json_out = true;
    } else if (purge && !strcmp(argv[i], "--purge")) {
      *purge = true;
    } else if (timeout_ms && (v = opt_value(argc, argv, &i, "--timeout"))) {
      int t = atoi(v);
      if (t <= 0) return -1;
      *timeout_ms = (unsigned)t * 1000u;
    } else if (argv[i][0] != '-' && np < npos) {
      pos[np++] = argv[i];
    } else {
      fprintf(stderr, "kz %s: unexpected argument '%s'\n", cmd, argv[i]);
      return -1;
    }
  }
  return np;
}

int kz_cli_status(int argc, char **argv) {
  const char *state = ".kz";
  bool json_out = false;
  if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
    printf("usage: kz status [--state DIR] [--json]\n\n"
           "Lists the processes `kz up` started (state DIR, default .kz), their addresses\n"
           "and live health.  Exit status: 0 all healthy, 1 something is down or nothing is up.\n");
    return 0;
  }
  if (state_arg(argc, argv, "status", &state, NULL, 0, &json_out, NULL, NULL) < 0) return 2;
  struct up_state *s = calloc(1, sizeof *s);
  if (!s) return 2;
  int lr = state_load(s, state), status = 1;
  if (lr) {
    if (lr > 0) fprintf(stderr, "kz status: nothing is up (no %s/state.json)\n", s->dir);
    free(s);
    return lr > 0 ? 1 : 2;
  }
  int healthy = 0;
  if (json_out) {
    json_t *a = json_array();
    for (size_t i = 0; i < s->n; i++) {
      const struct up_proc *p = &s->procs[i];
      char why[96];
      bool ok = probe(s, p, why, sizeof why);
      healthy += ok;
      json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:i, s:I, s:b, s:s, s:s}", "role",
                                         up_role_names[p->role], "host", p->host, "addr", p->addr, "port", p->port,
                                         (json_int_t)p->pid, ok ? 1 : 0, "health", why, "log", p->log));
    }
    json_t *j = json_pack("{s:s, s:s, s:o}", "topology", s->topology, "state", s->dir, "procs", a);
    char *txt = json_dumps(j, JSON_INDENT(2));
    if (txt) printf("%s\n", txt);
    free(txt);
    json_decref(j);
  } else {
    printf("%s (%s), state in %s\n", s->name, s->topology, s->dir);
    printf("%-7s %-10s %-22s %-8s %s\n", "ROLE", "HOST", "ADDRESS", "PID", "HEALTH");
    for (size_t i = 0; i < s->n; i++) {
      const struct up_proc *p = &s->procs[i];
      char a[64], why[96];
      bool ok = probe(s, p, why, sizeof why);
      healthy += ok;
      if (p->port) snprintf(a, sizeof a, "%s:%d", p->addr, p->port);
      else snprintf(a, sizeof a, "%s", p->addr);
      printf("%-7s %-10s %-22s %-8ld %s\n", up_role_names[p->role], p->host, a, p->pid, why);
    }
  }
  status = (size_t)healthy == s->n ? 0 : 1;
  free(s);
  return status;
}

static int cat_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char buf[8192];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
  fclose(f);
  return 0;
}

int kz_cli_logs(int argc, char **argv) {
  const char *state = ".kz", *pos[2] = {NULL, NULL};
  if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
    printf("usage: kz logs ROLE [HOST] [--state DIR]\n\n"
           "Prints the log of ROLE (broker, db, apps, proxy, seed) on HOST, or on every host\n"
           "that runs it.  Logs stay in DIR/logs after kz down.\n");
    return 0;
  }
  int np = state_arg(argc, argv, "logs", &state, pos, 2, NULL, NULL, NULL);
  if (np < 1) {
    fprintf(stderr, "usage: kz logs ROLE [HOST] [--state DIR]\n");
    return 2;
  }
  char dir[UP_PATH + 16];
  snprintf(dir, sizeof dir, "%s/logs", state);
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "kz logs: no logs in %s (was kz up run with --state %s?)\n", dir, state);
    return 2;
  }
  char names[128][256];
  size_t n = 0;
  struct dirent *e;
  size_t rl = strlen(pos[0]);
  while ((e = readdir(d)) && n < 128) {
    const char *nm = e->d_name;
    size_t l = strlen(nm);
    if (strncmp(nm, pos[0], rl) || nm[rl] != '-' || l < 5 || strcmp(nm + l - 4, ".log")) continue;
    if (pos[1] && (l - 4 - rl - 1 != strlen(pos[1]) || strncmp(nm + rl + 1, pos[1], strlen(pos[1])))) continue;
    snprintf(names[n++], sizeof names[0], "%s", nm);
  }
  closedir(d);
  if (!n) {
    fprintf(stderr, "kz logs: no log for %s%s%s in %s\n", pos[0], pos[1] ? " on " : "", pos[1] ? pos[1] : "", dir);
    return 1;
  }
  qsort(names, n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
  for (size_t i = 0; i < n; i++) {
    char path[UP_PATH + 300];
    if (fmt(path, sizeof path, "%s/%s", dir, names[i])) continue;
    if (n > 1) printf("==> %s <==\n", path);
    cat_file(path);
  }
  /* A broker's own log lives in its node's folder while it runs. */
  if (!strcmp(pos[0], "broker")) {
    struct up_state *s = calloc(1, sizeof *s);
    if (s && state_load(s, state) == 0)
      for (size_t i = 0; i < s->n; i++) {
        const struct up_proc *p = &s->procs[i];
        if (p->role != UP_BROKER || (pos[1] && strcmp(p->host, pos[1]))) continue;
        char path[UP_PATH + 200];
        snprintf(path, sizeof path, "%s/%s/log/%s@localhost.log", s->rabbit_root, p->node, p->node);
        if (file_exists(path)) {
          printf("==> %s <==\n", path);
          cat_file(path);
        }
      }
    free(s);
  }
  return 0;
}

int kz_cli_down(int argc, char **argv) {
  const char *state = ".kz";
  unsigned timeout_ms = 10000;
  bool purge = false;
  if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
    printf("usage: kz down [--state DIR] [--timeout S] [--purge]\n\n"
           "Stops what `kz up` started: SIGTERM to each role, SIGKILL after the timeout\n"
           "(default 10 s); RabbitMQ nodes through ci/rabbitmq stop.  Removes the pid files;\n"
           "configs and logs stay in DIR (--purge removes DIR/data and DIR/rabbitmq too).\n");
    return 0;
  }
  if (state_arg(argc, argv, "down", &state, NULL, 0, NULL, &timeout_ms, &purge) < 0) return 2;
  struct up_state *s = calloc(1, sizeof *s);
  if (!s) return 2;
  int lr = state_load(s, state);
  if (lr < 0) {
    free(s);
    return 2;
  }
  if (lr > 0) {
    printf("kz down: nothing is up (no %s/state.json)\n", s->dir);
  } else {
    int n = stop_all(s, timeout_ms, false);
    printf("kz down: %s: %d process%s stopped\n", s->name, n, n == 1 ? "" : "es");
  }
  if (purge) {
    char cmd[UP_PATH * 2 + 64];
    /* Paths are ours (absolute, under the state dir); rm -rf is the
     * simplest correct recursive removal. */
    snprintf(cmd, sizeof cmd, "rm -rf '%s/data' '%s/rabbitmq'", s->dir, s->dir);
    if (!strchr(s->dir, '\'') && system(cmd) != 0) fprintf(stderr, "kz down: could not purge %s\n", s->dir);
  }
  free(s);
  return 0;
}

/* Restarts the processes of `role` (on `host`, NULL: every host) that
 * state_dir records: stops them when they run, starts them again with the
 * same config and log (appended), waits until healthy.  For the drills
 * (bring a killed proxy or db back) and `kz scenario run` (a fresh proxy
 * per case).  Brokers restart through ci/rabbitmq.  Returns 0, 1 (a
 * process did not come back healthy) or 2 (nothing up / no such role). */
int kz_cli_up_restart(const char *state_dir, const char *role, const char *host, bool quiet);
int kz_cli_up_restart(const char *state_dir, const char *role, const char *host, bool quiet) {
  struct up_state *s = calloc(1, sizeof *s);
  if (!s) return 2;
  int status = 2, n = 0;
  if (state_load(s, state_dir)) {
    fprintf(stderr, "kz up --restart: nothing is up in %s\n", state_dir);
    goto out;
  }
  status = 0;
  for (size_t i = 0; i < s->n && !status; i++) {
    struct up_proc *p = &s->procs[i];
    if (strcmp(up_role_names[p->role], role) || (host && strcmp(p->host, host))) continue;
    n++;
    if (p->role == UP_BROKER) {
      rabbit_cmd(s, "stop", p, NULL);
      char port[16], dist[16], env[UP_PATH + 32];
      snprintf(port, sizeof port, "%d", p->port);
      snprintf(dist, sizeof dist, "%d", p->port + 20000);
      snprintf(env, sizeof env, "KZ_RABBIT_ROOT=%s", s->rabbit_root);
      char *argv[] = {s->rabbit, "start", p->node, port, dist, NULL};
      pid_t pid = spawn(argv, p->log, true, env);
      int st = -1;
      while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR) {
      }
      char pidp[UP_PATH + 128];
      snprintf(pidp, sizeof pidp, "%s/%s/pid", s->rabbit_root, p->node);
      FILE *f = fopen(pidp, "r");
      p->pid = 0;
      if (f) {
        if (fscanf(f, "%ld", &p->pid) != 1) p->pid = 0;
        fclose(f);
      }
      write_pidfile(p);
      if (st != 0) status = 1;
    } else {
      if (pid_alive(p->pid) && pid_cmdline_has(p->pid, p->conf)) stop_pid(p->pid, 10000);
      char *argv[] = {s->kz, "run", (char *)up_role_names[p->role], "--config", p->conf, NULL};
      pid_t pid = spawn(argv, p->log, true, NULL);
      if (pid < 0) {
        status = 1;
        break;
      }
      p->pid = pid;
      write_pidfile(p);
    }
    if (state_save(s)) status = 2;
    if (!status && wait_healthy(s, p, 60000)) status = 1;
    if (!quiet && !status) printf("kz up: restarted %s on %s (pid %ld)\n", role, p->host, p->pid);
  }
  if (!n) {
    fprintf(stderr, "kz up --restart: no %s%s%s in %s\n", role, host ? " on " : "", host ? host : "", state_dir);
    status = 2;
  }
out:
  free(s);
  return status;
}
