/* swarm.c — --swarm: link properties, faults and workload drawn from the seed, so many seeds explore many worlds. */
#include <string.h>

#include "kz/prng.h"
#include "run_int.h"

#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)

static bool is_endpoint(const struct kz_topo_host *h) {
  uint32_t ep = (1u << KZ_TOPO_SIPP_UAC) | (1u << KZ_TOPO_SIPP_UAS);
  return (h->roles & ep) != 0;
}

/* Every range here is documented in docs/topologies.md ("Swarm"); keep
 * them in step.  Draws come from one stream in a fixed order, so a seed
 * always gives the same plan for the same topology. */
void run_swarm_draw(const struct kz_topo *t, uint64_t seed, struct swarm_plan *p) {
  memset(p, 0, sizeof *p);
  struct kz_prng g;
  kz_prng_derive(&g, seed, "swarm");
  struct kz_topo_link *l = &p->link;
  l->set = KZ_TOPO_LINK_LATENCY | KZ_TOPO_LINK_JITTER | KZ_TOPO_LINK_LOSS | KZ_TOPO_LINK_DUP |
           KZ_TOPO_LINK_REORDER | KZ_TOPO_LINK_REORDER_DELAY;
  l->latency_ns = kz_prng_range(&g, 100000, 30 * MS);         /* 0.1 .. 30 ms */
  l->jitter_ns = kz_prng_range(&g, 0, l->latency_ns / 2);     /* 0 .. latency/2 */
  l->loss_ppm = kz_prng_below(&g, 3) == 0 ? 0 : (uint32_t)kz_prng_range(&g, 0, 30000); /* 0, or 0..3% */
  l->dup_ppm = (uint32_t)kz_prng_range(&g, 0, 10000);         /* 0 .. 1% */
  l->reorder_ppm = (uint32_t)kz_prng_range(&g, 0, 20000);     /* 0 .. 2% */
  l->reorder_ns = kz_prng_range(&g, 0, 20 * MS);              /* 0 .. 20 ms */
  p->rate = (uint32_t)kz_prng_range(&g, 1, 50);               /* 1 .. 50 calls/s per UAC */
  p->calls = kz_prng_range(&g, 10, 200);                      /* 10 .. 200 calls per UAC */
  p->pause_ms = (uint32_t)kz_prng_range(&g, 0, 2000);         /* 0 .. 2 s */
  uint64_t horizon = p->calls * SEC / p->rate;                /* when the last call is placed */
  size_t n = (size_t)kz_prng_range(&g, 0, 3);                 /* 0 .. 3 faults */
  size_t servers = 0;
  for (size_t i = 0; i < t->nhosts; i++) servers += !is_endpoint(&t->hosts[i]);
  for (size_t i = 0; i < n; i++) {
    struct kz_topo_fault *f = &p->faults[p->nfaults];
    memset(f, 0, sizeof *f);
    f->role = -1;
    f->at_ns = kz_prng_range(&g, 0, horizon);
    uint64_t len = kz_prng_range(&g, 100 * MS, 10 * SEC);     /* 0.1 .. 10 s */
    size_t host = (size_t)kz_prng_below(&g, t->nhosts);
    /* Kinds: 0 partition, 1 stall, 2 clock skew, 3 crash + restart (of a
     * server only: a crashed SIPp loses its calls' state, which says
     * nothing about kz). */
    unsigned kind = (unsigned)kz_prng_below(&g, servers ? 4 : 3);
    if (kind == 0 && t->nhosts >= 2) {
      size_t other = (host + 1 + (size_t)kz_prng_below(&g, t->nhosts - 1)) % t->nhosts;
      p->sides[p->nfaults][0] = host;
      p->sides[p->nfaults][1] = other;
      f->kind = KZ_TOPO_FAULT_PARTITION;
      f->side_a = &p->sides[p->nfaults][0];
      f->side_b = &p->sides[p->nfaults][1];
      f->na = f->nb = 1;
      f->oneway = kz_prng_below(&g, 4) == 0;
      f->until_ns = f->at_ns + len;
    } else if (kind == 1 || kind == 0) {
      f->kind = KZ_TOPO_FAULT_STALL;
      f->host = host;
      f->until_ns = f->at_ns + len / 4; /* stalls: 25 ms .. 2.5 s */
    } else if (kind == 2) {
      f->kind = KZ_TOPO_FAULT_SKEW;
      f->host = host;
      f->has_skew = true;
      f->skew_ns = (int64_t)kz_prng_range(&g, 0, 2 * SEC) - (int64_t)SEC; /* -1 .. +1 s */
    } else {
      size_t k = (size_t)kz_prng_below(&g, servers);
      for (size_t h = 0; h < t->nhosts; h++)
        if (!is_endpoint(&t->hosts[h]) && k-- == 0) host = h;
      f->kind = KZ_TOPO_FAULT_CRASH;
      f->host = host;
      f->until_ns = f->at_ns + len * 2; /* down 0.2 .. 20 s */
    }
    p->nfaults++;
  }
}
