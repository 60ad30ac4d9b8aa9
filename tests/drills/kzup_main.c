/* kzup_main.c — stand-in `kz` for the drills until impl/cli/main.c dispatches up/status/logs/down/scenario: those run here, every other command is the real kz's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int kz_cli_up(int argc, char **argv);
int kz_cli_status(int argc, char **argv);
int kz_cli_logs(int argc, char **argv);
int kz_cli_down(int argc, char **argv);
int kz_cli_scenario(int argc, char **argv);

int main(int argc, char **argv) {
  /* The roles themselves (`kz run ...`, `kz seed`, `kz sim`) are the real kz's. */
  setenv("KZ_BIN", KZ_DRILLS_KZ_BIN, 0);
  if (argc >= 2) {
    if (!strcmp(argv[1], "up")) return kz_cli_up(argc - 1, argv + 1);
    if (!strcmp(argv[1], "status")) return kz_cli_status(argc - 1, argv + 1);
    if (!strcmp(argv[1], "logs")) return kz_cli_logs(argc - 1, argv + 1);
    if (!strcmp(argv[1], "down")) return kz_cli_down(argc - 1, argv + 1);
    if (!strcmp(argv[1], "scenario")) return kz_cli_scenario(argc - 1, argv + 1);
  }
  const char *kz = getenv("KZ_BIN");
  argv[0] = (char *)kz;
  execv(kz, argv);
  perror(kz);
  return 2;
}
