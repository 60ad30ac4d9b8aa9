/* cli.h — the `kz` command's subcommand table and shared helpers. */
#ifndef KZ_CLI_H
#define KZ_CLI_H

#include <fcntl.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* Each subcommand gets argv starting at its own name and returns the
 * process exit status: 0 success, 1 a negative result (a check failed),
 * 2 usage or I/O error. */
typedef int kz_cli_cmd_fn(int argc, char **argv);

int kz_cli_sim_main(int argc, char **argv); /* impl/cli/cmd_sim.c: kz sim [echo] */
int kz_cli_sim(int argc, char **argv);     /* sim/cli_sim.c: the echo example */
int kz_cli_sip(int argc, char **argv);     /* impl/cli/cmd_sip.c */
int kz_cli_bus(int argc, char **argv);     /* impl/cli/cmd_bus.c */
int kz_cli_run(int argc, char **argv);     /* impl/cli/cmd_run.c */
int kz_cli_run_apps(int argc, char **argv); /* impl/cli/cmd_run_apps.c */
int kz_cli_seed(int argc, char **argv);    /* impl/cli/cmd_seed.c */
int kz_cli_up(int argc, char **argv);       /* impl/cli/cmd_up.c */
int kz_cli_status(int argc, char **argv);   /* impl/cli/cmd_up.c */
int kz_cli_logs(int argc, char **argv);     /* impl/cli/cmd_up.c */
int kz_cli_down(int argc, char **argv);     /* impl/cli/cmd_up.c */
int kz_cli_scenario(int argc, char **argv); /* impl/cli/cmd_scenario.c */

/* The PRNG seed a real-mode process (kz run db/apps/proxy, kz bus tap)
 * uses when its configuration names none: fresh OS entropy
 * (/dev/urandom; the clock and pid without it), different in every
 * process and every run.  An explicit "seed" in a configuration still
 * wins (reproducible runs).
 *
 * Why not a fixed default: the seed draws the bus Server-ID, which names
 * an exclusive reply queue two processes cannot share, and the db's
 * uuids and generated ids, which must not repeat after a restart over
 * the same data.  Inline here so every file that builds a subcommand
 * (the kz binary and the roles' CLI tests) has it without another
 * source file to link. */
static inline uint64_t kz_cli_default_seed(void) {
  uint64_t seed = 0;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, &seed, sizeof seed);
    close(fd);
    if (n == (ssize_t)sizeof seed && seed) return seed;
  }
  /* Fallback: the wall clock mixed with the pid, through splitmix64's
   * finaliser so nearby values spread. */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t z = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^ (uint64_t)getpid() << 12;
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

#endif /* KZ_CLI_H */
