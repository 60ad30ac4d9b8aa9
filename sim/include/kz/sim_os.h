/* kz/sim_os.h — the few OS services the simulator's front ends need (seeds, output folders). */
#ifndef KZ_SIM_OS_H
#define KZ_SIM_OS_H

#include <stdint.h>

/* A seed for a run the user did not give one for: /dev/urandom, else the
 * clock.  Reduced below 10^9 so it is easy to type back in to replay. */
uint64_t kz_sim_os_random_seed(void);

/* Creates `dir` and any missing parents ("mkdir -p").  Returns 0, or -1
 * with errno set. */
int kz_sim_os_mkdir_p(const char *dir);

#endif /* KZ_SIM_OS_H */
