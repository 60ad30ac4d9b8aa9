/* cli_stub_sim.c — stands in for `kz sim` in the test build of the kz command (kz_sip_clitest). */
#include <stdio.h>

#include "cli.h"

int kz_cli_sim(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "kz sim: not in this test build\n");
  return 2;
}
