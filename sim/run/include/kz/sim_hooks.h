/* kz/sim_hooks.h — hooks role code may call: invariants (always / sometimes) and KZ_BUGGIFY, live only inside a simulated run. */
#ifndef KZ_SIM_HOOKS_H
#define KZ_SIM_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/env.h"

/* Role code links the small kz_sim_hooks library and calls these freely:
 * outside a simulated run (the real driver, unit tests) they cost a
 * pointer test and do nothing (kz_buggify returns false).  Inside one,
 * sim/run counts every check and reports it in summary.json.
 *
 * Why a registry here and not a flag in struct kz_env: core is shared and
 * frozen for this change; the run registers the env of every process it
 * starts, so kz_buggify(env, ...) knows whether env is simulated.  (A
 * proposal to move this into kz_env as a `hooks` pointer is in the
 * report.)  One simulated run at a time per OS process, on one thread. */

/* `cond` must hold every time it is evaluated (Antithesis' "always").  A
 * false evaluation fails the run; the first failure's virtual time is
 * reported.  `name` identifies the check (a string literal: it is copied
 * on first use). */
void kz_sim_check_always(bool cond, const char *name);
/* `cond` must be true at least once in the run ("sometimes"): proof that
 * a path was exercised.  A sometimes check never true is reported, and
 * fails the run only when the run asks for it. */
void kz_sim_check_sometimes(bool cond, const char *name);

/* FoundationDB's BUGGIFY: true, rarely, when `env` is a process of a
 * simulated run with buggify on; always false otherwise.  Role code
 * uses it to take rare paths on purpose (a short timeout, a dropped
 * cache, a smaller buffer).  Each call site `name` is enabled for the
 * whole run with probability 1/4 (decided from the seed and the name
 * alone), and an enabled site fires on 1 evaluation in 20, drawn from its
 * own stream: deterministic for a seed. */
bool kz_buggify(struct kz_env *env, const char *name);
#define KZ_BUGGIFY(env, name) kz_buggify((env), (name))

/* ------------------------------------------------------------------ */
/* The runner's side (sim/run). */

struct kz_sim_hooks;

#define KZ_SIM_HOOKS_NAME_MAX 96

struct kz_sim_hooks_check {
  char name[KZ_SIM_HOOKS_NAME_MAX]; /* cut to fit */
  bool always;
  uint64_t evaluations, true_count;
  uint64_t first_false_ns; /* UINT64_MAX: never false (always checks) */
};

struct kz_sim_hooks_site {
  char name[KZ_SIM_HOOKS_NAME_MAX];
  bool enabled;
  uint64_t evaluations, fired;
};

/* Creates the hooks of one run and makes them the active ones (role
 * calls count from now on).  `now` gives virtual time for first-failure
 * stamps.  Returns 0, KZ_EBUSY (another run is active) or KZ_ENOMEM. */
int kz_sim_hooks_begin(struct kz_sim_hooks **out, uint64_t seed, bool buggify,
                       uint64_t (*now)(void *arg), void *now_arg);
/* Deactivates and frees them.  NULL is a no-op. */
void kz_sim_hooks_end(struct kz_sim_hooks *h);
/* Registers / forgets a simulated process's env (kz_buggify answers only
 * for registered envs).  Returns 0 or KZ_ENOMEM. */
int kz_sim_hooks_env_add(struct kz_sim_hooks *h, struct kz_env *env);
void kz_sim_hooks_env_remove(struct kz_sim_hooks *h, struct kz_env *env);
/* Checks in order of first evaluation; valid until kz_sim_hooks_end. */
const struct kz_sim_hooks_check *kz_sim_hooks_checks(const struct kz_sim_hooks *h, size_t *n);
/* Buggify call sites in order of first evaluation: how many, and the i-th. */
size_t kz_sim_hooks_site_count(const struct kz_sim_hooks *h);
const struct kz_sim_hooks_site *kz_sim_hooks_site_at(const struct kz_sim_hooks *h, size_t i);
/* kz blocks the hooks hold now: the run's leak check counts them out. */
int64_t kz_sim_hooks_blocks(const struct kz_sim_hooks *h);
/* Number of always checks that were false at least once. */
size_t kz_sim_hooks_failed(const struct kz_sim_hooks *h);
/* Makes a never-true "sometimes" check appear in the list (so it is
 * reported) without evaluating it. */
int kz_sim_hooks_declare(struct kz_sim_hooks *h, const char *name, bool always);

#endif /* KZ_SIM_HOOKS_H */
