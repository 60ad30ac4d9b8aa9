/* cmd_sim.c — `kz sim`: a topology under SIPp scenarios (the default), or `kz sim echo`, the kz_env example. */
#include <string.h>

#include "cli.h"
#include "kz/sim_run.h"

int kz_cli_sim_main(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "echo")) return kz_cli_sim(argc - 1, argv + 1);
  return kz_sim_run_cli(argc, argv);
}
