/* cli_main.c — a stand-in `kz` for the apps CLI pieces until they are wired into impl/cli/main.c: `kz_apps_cli seed ...`, `kz_apps_cli run apps --config FILE`. */
#include <stdio.h>
#include <string.h>

int kz_cli_seed(int argc, char **argv);
int kz_cli_run_apps(int argc, char **argv);

int main(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "seed")) return kz_cli_seed(argc - 1, argv + 1);
  if (argc >= 3 && !strcmp(argv[1], "run") && !strcmp(argv[2], "apps")) return kz_cli_run_apps(argc - 1, argv + 1);
  fprintf(stderr, "usage: kz_apps_cli seed [--url URL] [--dry-run] FILE\n"
                  "       kz_apps_cli run apps --config FILE\n");
  return 2;
}
