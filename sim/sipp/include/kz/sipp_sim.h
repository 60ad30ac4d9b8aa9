/* kz/sipp_sim.h — the SIPp engine packaged as a kz_sim application. */
#ifndef KZ_SIPP_SIM_H
#define KZ_SIPP_SIM_H

#include "kz/sim.h"

/* Install with kz_sim_proc_add(host, name, &kz_sipp_sim_app, &cfg, ...)
 * where cfg is a struct kz_sipp_cfg that outlives the simulator. */
extern const struct kz_sim_app kz_sipp_sim_app;

#endif /* KZ_SIPP_SIM_H */
