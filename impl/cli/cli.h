/* cli.h — the `kz` command's subcommand table and shared helpers. */
#ifndef KZ_CLI_H
#define KZ_CLI_H

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

#endif /* KZ_CLI_H */
