/* run_int.h — what the runner's files share: the swarm plan. */
#ifndef KZ_SIM_RUN_INT_H
#define KZ_SIM_RUN_INT_H

#include "kz/sim_run.h"

#define SWARM_MAX_FAULTS 4

/* What --swarm draws from the seed (ranges in docs/topologies.md). */
struct swarm_plan {
  struct kz_topo_link link;  /* applied to every path */
  uint32_t rate;             /* calls per second per UAC */
  uint64_t calls;            /* calls per UAC */
  uint32_t pause_ms;         /* SIPp -d: length of an attribute-less <pause/> */
  struct kz_topo_fault faults[SWARM_MAX_FAULTS];
  size_t sides[SWARM_MAX_FAULTS][2]; /* partition sides (one host each) */
  size_t nfaults;
};

/* Draws a plan for topology t from `seed` (stream "swarm"). */
void run_swarm_draw(const struct kz_topo *t, uint64_t seed, struct swarm_plan *p);

#endif /* KZ_SIM_RUN_INT_H */
