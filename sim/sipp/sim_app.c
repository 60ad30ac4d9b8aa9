/* sim_app.c — the SIPp engine as a kz_sim application (kept out of the guarded engine library). */
#include "kz/sim.h"
#include "kz/sipp.h"
#include "kz/sipp_sim.h"

const struct kz_sim_app kz_sipp_sim_app = {"sipp", kz_sipp_app_start, kz_sipp_app_stop};
