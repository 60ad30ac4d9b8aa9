/* main.c — the `kz` command: dispatches to subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

struct kz_cli_cmd {
  const char *name;
  kz_cli_cmd_fn *fn;
  const char *help;
};

static const struct kz_cli_cmd commands[] = {
    {"sim", kz_cli_sim_main, "run a simulated topology under SIPp scenarios (kz sim --help; kz sim echo)"},
#ifdef KZ_CLI_HAVE_SIP
    {"sip", kz_cli_sip, "SIP tools: kz sip check FILE..."},
#endif
#ifdef KZ_CLI_HAVE_RUN
    {"run", kz_cli_run, "run a role for real: kz run db|apps|proxy --config FILE"},
#endif
#ifdef KZ_CLI_HAVE_SEED
    {"seed", kz_cli_seed, "create accounts/devices from a seed file: kz seed [--url URL] FILE"},
#endif
#ifdef KZ_CLI_HAVE_UP
    {"up", kz_cli_up, "run a topology for real, one process per role: kz up TOPOLOGY [--state DIR]"},
    {"status", kz_cli_status, "what kz up runs, with live health: kz status [--state DIR] [--json]"},
    {"logs", kz_cli_logs, "a role's log: kz logs ROLE [HOST]"},
    {"down", kz_cli_down, "stop what kz up started: kz down [--state DIR]"},
    {"scenario", kz_cli_scenario, "SIPp scenario library: kz scenario list | run CASE... --real|--sim"},
#endif
#ifdef KZ_CLI_HAVE_BUS
    {"bus", kz_cli_bus, "bus tools: kz bus tap --uri URI"},
#endif
};

static void usage(FILE *out) {
  fprintf(out, "usage: kz COMMAND [ARGS...]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "kz: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
