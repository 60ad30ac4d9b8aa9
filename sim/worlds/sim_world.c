/* sim_world.c — runs a worlds pair with the kz_sipp engine on two simulated hosts and reads its counters. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kz/error.h"
#include "kz/sim.h"
#include "kz/sipp_sim.h"
#include "kz/worlds.h"

#define SEC UINT64_C(1000000000)
/* How often the run loop looks whether a side has finished: SIPp itself
 * checks its -m and -timeout conditions on its scheduler tick. */
#define POLL_NS (SEC / 100)

static void set_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b) {
  if (err && errlen) snprintf(err, errlen, fmt, a, b);
}

/* The command keys from the scenario's description: one token per
 * command (">INVITE", "<100?", "pause"), plus "L:x" tokens for labels. */
static int fill_keys(const struct kz_sipp_scenario *sc, struct kz_worlds_side *side) {
  struct kz_buf d;
  kz_buf_init(&d);
  int rc = kz_sipp_scenario_describe(sc, &d);
  if (rc) {
    kz_buf_free(&d);
    return rc;
  }
  size_t n = 0;
  char *save = NULL;
  for (char *t = d.len ? strtok_r((char *)d.data, " ", &save) : NULL; t; t = strtok_r(NULL, " ", &save)) {
    if (t[0] == 'L' && t[1] == ':') continue;
    if (n >= KZ_WORLDS_MAX_CMDS) break;
    struct kz_worlds_cmd *c = &side->cmds[n++];
    if (t[0] == '<' || t[0] == '>') {
      size_t l = strcspn(t, "?");
      if (l >= sizeof c->key) l = sizeof c->key - 1;
      memcpy(c->key, t, l);
      c->key[l] = 0;
    }
  }
  side->ncmds = n;
  kz_buf_free(&d);
  return 0;
}

static void read_side(const struct kz_sipp *e, struct kz_worlds_side *side) {
  const struct kz_sipp_stats *st = kz_sipp_stats(e);
  side->ran = true;
  side->created = st->calls_created;
  side->successful = st->calls_successful;
  side->failed = st->calls_failed;
  side->open = st->calls_current;
  size_t n = 0;
  const struct kz_sipp_msg_stats *ms = kz_sipp_msg_stats(e, &n);
  side->unexpected = 0;
  for (size_t i = 0; i < n; i++) side->unexpected += ms[i].unexpected;
  for (size_t i = 0; i < side->ncmds && i < n; i++) {
    struct kz_worlds_cmd *c = &side->cmds[i];
    c->count = c->key[0] == '>' ? ms[i].sent : c->key[0] == '<' ? ms[i].recv : 0;
    c->unexpected = ms[i].unexpected;
  }
}

static int load(const struct kz_worlds_pair *p, const struct kz_worlds_scenario *s,
                struct kz_sipp_scenario **out, char *err, size_t errlen) {
  struct kz_sipp_load_opts opts = {p->keys, p->nkeys};
  struct kz_sipp_load_err le;
  memset(&le, 0, sizeof le);
  int rc = kz_sipp_scenario_load(out, s->name, s->xml, s->len, &opts, &le);
  if (rc) set_err(err, errlen, "%s: %s", s->name, le.text[0] ? le.text : kz_strerror(rc));
  return rc;
}

static double wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int kz_worlds_run_sim(const struct kz_worlds_pair *p, uint64_t seed, struct kz_worlds_outcome *out,
                      char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (err && errlen) err[0] = 0;
  double t0 = wall_now();
  struct kz_sipp_scenario *uac = NULL, *uas = NULL;
  struct kz_sim *sim = NULL;
  int rc = load(p, &p->uac, &uac, err, errlen);
  if (!rc) rc = load(p, &p->uas, &uas, err, errlen);
  if (!rc) rc = fill_keys(uac, &out->uac);
  if (!rc) rc = fill_keys(uas, &out->uas);
  if (!rc) rc = kz_sim_new(&sim, seed);
  if (rc) goto out;

  /* The UAS at 127.0.0.1 like real sipp's, the UAC beside it (a
   * simulated host owns one address). */
  uint16_t uas_port = p->uas_port ? p->uas_port : 5060;
  struct kz_addr a_uac = kz_addr_v4(0x7f000002, 0), a_uas = kz_addr_v4(0x7f000001, 0);
  struct kz_sim_host *hc = NULL, *hs = NULL;
  if ((rc = kz_sim_host_add(sim, "uac", &a_uac, &hc)) || (rc = kz_sim_host_add(sim, "uas", &a_uas, &hs)))
    goto out;
  struct kz_sipp_cfg scfg = {
      .scenario = uas,
      .role = KZ_SIPP_UAS,
      .local = kz_addr_v4(0x7f000001, uas_port),
      .max_calls = p->calls,
      .service = p->service,
      .auth_user = p->auth_user,
      .auth_pass = p->auth_pass,
  };
  struct kz_sipp_cfg ccfg = {
      .scenario = uac,
      .role = KZ_SIPP_UAC,
      .local = kz_addr_v4(0x7f000002, 5060),
      .remote = kz_addr_v4(0x7f000001, uas_port),
      .rate = p->rate,
      .max_calls = p->calls,
      .service = p->service,
      .auth_user = p->auth_user,
      .auth_pass = p->auth_pass,
  };
  struct kz_sim_proc *ps = NULL, *pc = NULL;
  if ((rc = kz_sim_proc_add(hs, "sipp-uas", &kz_sipp_sim_app, &scfg, &ps)) ||
      (rc = kz_sim_proc_add(hc, "sipp-uac", &kz_sipp_sim_app, &ccfg, &pc))) {
    set_err(err, errlen, "%s%s: the engine did not start", p->name, "");
    goto out;
  }
  uint64_t uac_end = (uint64_t)(p->uac_timeout_s ? p->uac_timeout_s : 30) * SEC;
  uint64_t uas_end = (uint64_t)(p->uas_timeout_s ? p->uas_timeout_s : 30) * SEC;
  bool uac_read = false, uas_read = false;
  /* The UAS starts first in the real world too; the UAC's first call
   * leaves at virtual time 0 here, which only shifts the clock. */
  while (!uac_read || !uas_read) {
    if ((rc = kz_sim_run_for(sim, POLL_NS))) goto out;
    uint64_t now = kz_sim_now(sim);
    const struct kz_sipp *c = kz_sim_proc_instance(pc), *s = kz_sim_proc_instance(ps);
    if (!uac_read && (kz_sipp_done(c) || now >= uac_end)) {
      read_side(c, &out->uac);
      uac_read = true;
    }
    const struct kz_sipp_stats *ss = kz_sipp_stats(s);
    if (!uas_read && ((p->calls && ss->calls_successful + ss->calls_failed >= p->calls) || now >= uas_end)) {
      read_side(s, &out->uas);
      uas_read = true;
    }
  }
  out->sim_ns = kz_sim_now(sim);
out:
  kz_sim_free(sim);
  kz_sipp_scenario_free(uac);
  kz_sipp_scenario_free(uas);
  out->wall_s = wall_now() - t0;
  return rc;
}
