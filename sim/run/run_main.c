/* run_main.c — a stand-alone `kz-sim-run` binary around kz_sim_run_cli, until `kz sim` calls it. */
#include "kz/sim_run.h"

int main(int argc, char **argv) { return kz_sim_run_cli(argc, argv); }
