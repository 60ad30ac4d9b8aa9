/* os.c — the simulator front ends' OS services: run seeds and output folders (OS-facing, like a driver). */
#include "kz/sim_os.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

uint64_t kz_sim_os_random_seed(void) {
  uint64_t seed = 0;
  FILE *f = fopen("/dev/urandom", "rb");
  if (f) {
    if (fread(&seed, sizeof seed, 1, f) != 1) seed = 0;
    fclose(f);
  }
  if (!seed) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    seed = (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
  }
  /* Seeds people can type. */
  return seed % UINT64_C(1000000000);
}

int kz_sim_os_mkdir_p(const char *dir) {
  char p[4096];
  size_t n = strlen(dir);
  if (n == 0 || n >= sizeof p) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(p, dir, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (p[i] != '/' && p[i] != 0) continue;
    char c = p[i];
    p[i] = 0;
    if (mkdir(p, 0777) && errno != EEXIST) return -1;
    p[i] = c;
  }
  return 0;
}
