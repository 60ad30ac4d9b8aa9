/* real_world.c — runs a worlds pair with the real sipp binary on loopback (two child processes) and reads its statistics files. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kz/error.h"
#include "kz/worlds.h"

/* How long a process may outlive its own -timeout before it is killed:
 * SIPp needs a moment to write its statistics files when it stops. */
#define KILL_GRACE_S 10
#define MAX_ARGS 64

static double wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Asks the kernel for `n` distinct free UDP ports on 127.0.0.1: all the
 * sockets stay bound until every port is known, so no two are equal. */
static int free_ports(uint16_t *ports, int n) {
  int fds[8];
  int rc = 0, i;
  for (i = 0; i < n && i < 8; i++) {
    fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fds[i], (struct sockaddr *)&sa, &sl) != 0) {
      rc = KZ_EIO;
      if (fds[i] >= 0) close(fds[i]);
      break;
    }
    ports[i] = ntohs(sa.sin_port);
  }
  while (i-- > 0) close(fds[i]);
  return rc;
}

int kz_worlds_free_udp_port(uint16_t *port) { return free_ports(port, 1); }

/* Whether something holds UDP port `port` on 127.0.0.1 (sipp is up). */
static bool port_taken(uint16_t port) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return false;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bool taken = bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno == EADDRINUSE;
  close(fd);
  return taken;
}

static int write_file(const char *dir, const char *name, const void *data, size_t len) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f) return KZ_EIO;
  bool ok = fwrite(data, 1, len, f) == len;
  ok = fclose(f) == 0 && ok;
  return ok ? 0 : KZ_EIO;
}

static char *read_all(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 8192, n = 0, r;
  char *b = malloc(cap + 1);
  while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) {
      char *nb = realloc(b, (cap *= 2) + 1);
      if (!nb) free(b);
      b = nb;
    }
  }
  fclose(f);
  if (b) b[n] = 0;
  return b;
}

/* Starts `argv` in folder `dir`, stdin from /dev/null, stdout and stderr
 * to dir/sipp.out.  Returns the pid, or -1. */
static pid_t spawn(const char *dir, char *const argv[]) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  if (chdir(dir) != 0) _exit(126);
  int in = open("/dev/null", O_RDONLY);
  int out = open("sipp.out", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (in < 0 || out < 0) _exit(126);
  dup2(in, 0);
  dup2(out, 1);
  dup2(out, 2);
  close(in);
  close(out);
  execv(argv[0], argv);
  _exit(127);
}

/* Waits for `pid` until `deadline` (wall_now() time), then kills it.
 * Returns its exit code, or -1 when it was killed or died of a signal. */
static int reap(pid_t pid, double deadline) {
  int status = 0;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return -1;
    if (wall_now() > deadline) {
      kill(pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return -1;
    }
    sleep_ms(20);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The first file in `dir` whose name ends with `suffix`, into path. */
static bool find_suffix(const char *dir, const char *suffix, char *path, size_t pathlen) {
  DIR *d = opendir(dir);
  if (!d) return false;
  bool found = false;
  size_t sl = strlen(suffix);
  for (struct dirent *de; !found && (de = readdir(d));) {
    size_t l = strlen(de->d_name);
    if (l > sl && strcmp(de->d_name + l - sl, suffix) == 0) {
      snprintf(path, pathlen, "%s/%s", dir, de->d_name);
      found = true;
    }
  }
  closedir(d);
  return found;
}

/* Splits a CSV line in place on ';' into at most max fields. */
static size_t split(char *line, char **f, size_t max) {
  size_t n = 0;
  while (line && n < max) {
    f[n++] = line;
    char *s = strchr(line, ';');
    if (s) *s++ = 0;
    line = s;
  }
  return n;
}

/* The header (first line) and the last non-empty line of a CSV file,
 * both NUL-terminated inside buf. */
static bool first_last(char *buf, char **head, char **last) {
  char *nl = strchr(buf, '\n');
  if (!nl) return false;
  *nl = 0;
  *head = buf;
  *last = NULL;
  for (char *l = nl + 1; *l;) {
    char *e = strchr(l, '\n');
    if (e) *e = 0;
    if (*l) *last = l;
    if (!e) break;
    l = e + 1;
  }
  return *last != NULL;
}

#define MAX_COLS 1024

/* -trace_stat: the cumulative counters of the last dump. */
static bool parse_stat(const char *path, struct kz_worlds_side *s) {
  char *buf = read_all(path);
  char *head, *last;
  if (!buf || !first_last(buf, &head, &last)) {
    free(buf);
    return false;
  }
  static const char *const want[] = {"TotalCallCreated", "CurrentCall", "SuccessfulCall(C)",
                                     "FailedCall(C)"};
  uint64_t *dst[] = {&s->created, &s->open, &s->successful, &s->failed};
  char **h = malloc(2 * MAX_COLS * sizeof *h);
  bool ok = h != NULL;
  if (ok) {
    char **v = h + MAX_COLS;
    size_t nh = split(head, h, MAX_COLS), nv = split(last, v, MAX_COLS);
    int found = 0;
    for (size_t i = 0; i < nh && i < nv; i++)
      for (size_t w = 0; w < 4; w++)
        if (strcmp(h[i], want[w]) == 0) {
          *dst[w] = strtoull(v[i], NULL, 10);
          found++;
        }
    ok = found == 4;
  }
  free(h);
  free(buf);
  return ok;
}

/* -trace_counts: columns "<index>_<name>_<Sent|Recv|Unexp|...>". */
static bool parse_counts(const char *path, struct kz_worlds_side *s) {
  char *buf = read_all(path);
  char *head, *last;
  if (!buf || !first_last(buf, &head, &last)) {
    free(buf);
    return false;
  }
  char **h = malloc(2 * MAX_COLS * sizeof *h);
  if (!h) {
    free(buf);
    return false;
  }
  char **v = h + MAX_COLS;
  size_t nh = split(head, h, MAX_COLS), nv = split(last, v, MAX_COLS);
  s->ncmds = 0;
  s->unexpected = 0;
  for (size_t i = 0; i < nh && i < nv; i++) {
    char *col = h[i], *end;
    unsigned long idx = strtoul(col, &end, 10);
    char *kind = strrchr(col, '_');
    if (end == col || *end != '_' || !kind || kind <= end) continue;
    uint64_t val = strtoull(v[i], NULL, 10);
    if (strcmp(kind, "_Unexp") == 0) s->unexpected += val;
    if (idx >= KZ_WORLDS_MAX_CMDS) continue;
    struct kz_worlds_cmd *c = &s->cmds[idx];
    if (idx + 1 > s->ncmds) s->ncmds = idx + 1;
    if (strcmp(kind, "_Sent") == 0 || strcmp(kind, "_Recv") == 0) {
      size_t nl = (size_t)(kind - end - 1);
      if (nl + 2 > sizeof c->key) nl = sizeof c->key - 2;
      c->key[0] = kind[1] == 'S' ? '>' : '<';
      memcpy(c->key + 1, end + 1, nl);
      c->key[nl + 1] = 0;
      c->count = val;
    } else if (strcmp(kind, "_Unexp") == 0) {
      c->unexpected = val;
    }
  }
  free(h);
  free(buf);
  return true;
}

/* The first event of -trace_err's log, without its timestamps. */
static void read_error_note(const char *dir, struct kz_worlds_side *s) {
  char path[1024];
  if (!find_suffix(dir, "_errors.log", path, sizeof path)) return;
  char *buf = read_all(path);
  if (!buf) return;
  for (char *l = buf; *l;) {
    char *e = strchr(l, '\n');
    if (e) *e = 0;
    char *tab = strrchr(l, '\t');
    char *msg = tab ? strstr(tab, ": ") : NULL;
    if (msg) {
      snprintf(s->note, sizeof s->note, "%s", msg + 2);
      break;
    }
    if (!e) break;
    l = e + 1;
  }
  free(buf);
}

/* Removes `dir` and what it holds (files and folders of files: the
 * layout this module creates). */
static void rm_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (d) {
    for (struct dirent *de; (de = readdir(d));) {
      if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
      char path[1024];
      snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
      struct stat st;
      if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) rm_tree(path);
      else remove(path);
    }
    closedir(d);
  }
  rmdir(dir);
}

struct argv_b {
  char *v[MAX_ARGS + 1];
  char num[16][16];
  int n, nnum;
};

static void arg(struct argv_b *a, const char *s) {
  if (a->n < MAX_ARGS) a->v[a->n++] = (char *)s;
  a->v[a->n] = NULL;
}

static void arg_num(struct argv_b *a, const char *flag, unsigned long v) {
  if (a->nnum >= 16) return;
  char *d = a->num[a->nnum++];
  snprintf(d, 16, "%lu", v);
  arg(a, flag);
  arg(a, d);
}

static void common_args(struct argv_b *a, const struct kz_worlds_pair *p, const char *sipp,
                        const char *scenario, uint16_t port, uint16_t media, uint16_t ctrl,
                        uint32_t timeout_s) {
  arg(a, sipp);
  arg(a, "-sf");
  arg(a, scenario);
  arg(a, "-i");
  arg(a, "127.0.0.1");
  arg_num(a, "-p", port);
  arg_num(a, "-mp", media);
  arg_num(a, "-cp", ctrl);
  arg_num(a, "-m", p->calls);
  arg_num(a, "-timeout", timeout_s);
  arg(a, "-timeout_error");
  arg(a, "-nostdin");
  arg(a, "-trace_stat");
  arg(a, "-stf");
  arg(a, "stat.csv");
  arg(a, "-trace_counts");
  arg(a, "-trace_err");
  for (size_t i = 0; i < p->nkeys; i++) {
    arg(a, "-key");
    arg(a, p->keys[i].name);
    arg(a, p->keys[i].value);
  }
  if (p->service) {
    arg(a, "-s");
    arg(a, p->service);
  }
  if (p->auth_user) {
    arg(a, "-au");
    arg(a, p->auth_user);
  }
  if (p->auth_pass) {
    arg(a, "-ap");
    arg(a, p->auth_pass);
  }
}

static void read_side(const char *dir, struct kz_worlds_side *s) {
  char path[1024];
  snprintf(path, sizeof path, "%s/stat.csv", dir);
  bool st = parse_stat(path, s);
  bool ct = find_suffix(dir, "_counts.csv", path, sizeof path) && parse_counts(path, s);
  s->ran = st && ct;
  read_error_note(dir, s);
  if (!s->ran && !s->note[0])
    snprintf(s->note, sizeof s->note, "no %s written (exit %d)", st ? "counts file" : "statistics file",
             s->exit_status);
}

int kz_worlds_run_real(const struct kz_worlds_pair *p, const char *sipp, bool keep_dir,
                       struct kz_worlds_outcome *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (err && errlen) err[0] = 0;
  if (access(sipp, X_OK) != 0) {
    if (err && errlen) snprintf(err, errlen, "no executable sipp at %s", sipp);
    return KZ_ENOENT;
  }
  double t0 = wall_now();
  const char *tmp = getenv("TMPDIR");
  char root[512], dc[600], ds[600];
  snprintf(root, sizeof root, "%s/kz-worlds-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(root)) {
    if (err && errlen) snprintf(err, errlen, "mkdtemp %s: %s", root, strerror(errno));
    return KZ_EIO;
  }
  snprintf(dc, sizeof dc, "%s/uac", root);
  snprintf(ds, sizeof ds, "%s/uas", root);
  int rc = 0;
  uint16_t ports[6];
  if (mkdir(dc, 0755) != 0 || mkdir(ds, 0755) != 0 ||
      write_file(dc, p->uac.name, p->uac.xml, p->uac.len) ||
      write_file(ds, p->uas.name, p->uas.xml, p->uas.len) || free_ports(ports, 6)) {
    if (err && errlen) snprintf(err, errlen, "cannot prepare %s", root);
    rc = KZ_EIO;
    goto out;
  }
  if (p->uas_port) {
    /* The caller's port was free when drawn, so the kernel may have
     * handed it out again above: the spare ports[0] takes its place. */
    for (int i = 1; i < 6; i++)
      if (ports[i] == p->uas_port) ports[i] = ports[0];
    ports[0] = p->uas_port;
  }
  uint32_t tc = p->uac_timeout_s ? p->uac_timeout_s : 30, ts = p->uas_timeout_s ? p->uas_timeout_s : 30;
  struct argv_b as = {0}, ac = {0};
  common_args(&as, p, sipp, p->uas.name, ports[0], ports[2], ports[4], ts);
  common_args(&ac, p, sipp, p->uac.name, ports[1], ports[3], ports[5], tc);
  arg_num(&ac, "-r", p->rate);
  char remote[32];
  snprintf(remote, sizeof remote, "127.0.0.1:%u", ports[0]);
  arg(&ac, remote);

  double ts_start = wall_now();
  pid_t uas = spawn(ds, as.v);
  if (uas < 0) {
    rc = KZ_EIO;
    goto out;
  }
  /* The UAC's first INVITE must find the UAS listening. */
  while (!port_taken(ports[0]) && wall_now() - ts_start < 5.0 && waitpid(uas, NULL, WNOHANG) == 0)
    sleep_ms(10);
  double tc_start = wall_now();
  pid_t uac = spawn(dc, ac.v);
  out->uac.exit_status = uac < 0 ? -1 : reap(uac, tc_start + tc + KILL_GRACE_S);
  out->uas.exit_status = reap(uas, ts_start + ts + KILL_GRACE_S);
  read_side(dc, &out->uac);
  read_side(ds, &out->uas);
out:
  if (keep_dir) fprintf(stderr, "worlds: real sipp files kept in %s\n", root);
  else rm_tree(root);
  out->wall_s = wall_now() - t0;
  return rc;
}
