/* roles.c — THE table of roles this kz can run in the simulator: topology role -> kz_sim_app + config builder. */
#include <string.h>

#include "kz/error.h"
#include "kz/sim_run.h"
#include "kz/sipp_sim.h"

/* One row per topology role, in enum kz_topo_role order.  A role is
 * "built" when its row has an app.  To add a role: give its row the
 * role's kz_sim_app (e.g. &kz_proxy_sim_app), a build_cfg that turns the
 * topology (ctx->topo, ctx->host) into the role's config (peers' addresses
 * come from the topology's hosts), a free_cfg, and link the role's
 * library into kz_sim_run (sim/run/CMakeLists.txt).  Nothing else in the
 * runner changes.
 *
 * The SIPp endpoints are configured by the runner itself (their config
 * comes from the command line: scenario, rate, calls), hence no builder. */
static const struct kz_sim_run_role roles[KZ_TOPO_ROLE_COUNT] = {
    [KZ_TOPO_PROXY] = {KZ_TOPO_PROXY, NULL,
                       "the proxy role (impl/roles/proxy, Kamailio's part) has no simulator app yet", NULL,
                       NULL},
    [KZ_TOPO_MEDIA] = {KZ_TOPO_MEDIA, NULL,
                       "the media role (impl/roles/media, FreeSWITCH's part) is not written yet", NULL, NULL},
    [KZ_TOPO_ECALLMGR] = {KZ_TOPO_ECALLMGR, NULL, "the ecallmgr role (impl/roles/ecallmgr) is not written yet",
                          NULL, NULL},
    [KZ_TOPO_APPS] = {KZ_TOPO_APPS, NULL, "the apps role (impl/roles/apps) is not written yet", NULL, NULL},
    [KZ_TOPO_DB] = {KZ_TOPO_DB, NULL,
                    "the db role (impl/roles/db) is not wired into the simulator's role table yet", NULL, NULL},
    [KZ_TOPO_BROKER] = {KZ_TOPO_BROKER, NULL,
                        "the simulated broker (sim/broker) is not wired into the role table yet", NULL, NULL},
    [KZ_TOPO_SIPP_UAC] = {KZ_TOPO_SIPP_UAC, &kz_sipp_sim_app, NULL, NULL, NULL},
    [KZ_TOPO_SIPP_UAS] = {KZ_TOPO_SIPP_UAS, &kz_sipp_sim_app, NULL, NULL, NULL},
};

const struct kz_sim_run_role *kz_sim_run_role_get(enum kz_topo_role r) {
  return (unsigned)r < KZ_TOPO_ROLE_COUNT ? &roles[r] : NULL;
}

int kz_sim_run_check_roles(const struct kz_topo *t, struct kz_topo_err *err) {
  for (size_t h = 0; h < t->nhosts; h++)
    for (int r = 0; r < KZ_TOPO_ROLE_COUNT; r++) {
      if (!(t->hosts[h].roles & (1u << r)) || roles[r].app) continue;
      kz_topo_error_at(t, t->hosts[h].role_pos[r], err, "role '%s' is not built yet in this kz (%s)",
                       kz_topo_role_name((enum kz_topo_role)r), roles[r].missing);
      return KZ_ENOTSUP;
    }
  return 0;
}
