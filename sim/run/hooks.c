/* hooks.c — always/sometimes checks and KZ_BUGGIFY: a registry of the active simulated run, keyed by env pointer. */
#include <stdio.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/prng.h"
#include "kz/sim_hooks.h"

/* This library is linked by role code but runs only beside a driver: the
 * active run is process-wide state by design (one run at a time, one
 * thread), the one place role code can find it without a field in
 * kz_env.  Outside a run it is NULL and every hook is a no-op. */
static struct kz_sim_hooks *active;

struct site {
  struct kz_sim_hooks_site pub;
  struct kz_prng prng;
};

struct kz_sim_hooks {
  uint64_t seed;
  bool buggify;
  uint64_t (*now)(void *arg);
  void *now_arg;
  struct kz_sim_hooks_check *checks;
  size_t nchecks, cap_checks;
  struct site *sites;
  size_t nsites, cap_sites;
  struct kz_env **envs;
  size_t nenvs, cap_envs;
  bool oom; /* a check could not be recorded: reported as a failed check */
};

int kz_sim_hooks_begin(struct kz_sim_hooks **out, uint64_t seed, bool buggify,
                       uint64_t (*now)(void *arg), void *now_arg) {
  if (active) return KZ_EBUSY;
  struct kz_sim_hooks *h = kz_calloc(1, sizeof *h);
  if (!h) return KZ_ENOMEM;
  h->seed = seed;
  h->buggify = buggify;
  h->now = now;
  h->now_arg = now_arg;
  active = h;
  *out = h;
  return 0;
}

void kz_sim_hooks_end(struct kz_sim_hooks *h) {
  if (!h) return;
  if (active == h) active = NULL;
  kz_free(h->checks);
  kz_free(h->sites);
  kz_free(h->envs);
  kz_free(h);
}

int kz_sim_hooks_env_add(struct kz_sim_hooks *h, struct kz_env *env) {
  if (h->nenvs == h->cap_envs) {
    size_t cap = h->cap_envs ? h->cap_envs * 2 : 16;
    struct kz_env **n = kz_realloc(h->envs, cap * sizeof *n);
    if (!n) return KZ_ENOMEM;
    h->envs = n;
    h->cap_envs = cap;
  }
  h->envs[h->nenvs++] = env;
  return 0;
}

void kz_sim_hooks_env_remove(struct kz_sim_hooks *h, struct kz_env *env) {
  for (size_t i = 0; i < h->nenvs; i++)
    if (h->envs[i] == env) {
      h->envs[i] = h->envs[--h->nenvs];
      return;
    }
}

static struct kz_sim_hooks_check *find_check(struct kz_sim_hooks *h, const char *name, bool always) {
  for (size_t i = 0; i < h->nchecks; i++)
    if (h->checks[i].always == always && strncmp(h->checks[i].name, name, KZ_SIM_HOOKS_NAME_MAX - 1) == 0)
      return &h->checks[i];
  if (h->nchecks == h->cap_checks) {
    size_t cap = h->cap_checks ? h->cap_checks * 2 : 16;
    struct kz_sim_hooks_check *n = kz_realloc(h->checks, cap * sizeof *n);
    if (!n) return NULL;
    h->checks = n;
    h->cap_checks = cap;
  }
  struct kz_sim_hooks_check *c = &h->checks[h->nchecks++];
  memset(c, 0, sizeof *c);
  snprintf(c->name, sizeof c->name, "%s", name);
  c->always = always;
  c->first_false_ns = UINT64_MAX;
  return c;
}

int kz_sim_hooks_declare(struct kz_sim_hooks *h, const char *name, bool always) {
  return find_check(h, name, always) ? 0 : KZ_ENOMEM;
}

static void check(bool cond, const char *name, bool always) {
  struct kz_sim_hooks *h = active;
  if (!h || !name) return;
  struct kz_sim_hooks_check *c = find_check(h, name, always);
  if (!c) {
    h->oom = true;
    return;
  }
  c->evaluations++;
  if (cond) c->true_count++;
  else if (always && c->first_false_ns == UINT64_MAX) c->first_false_ns = h->now ? h->now(h->now_arg) : 0;
}

void kz_sim_check_always(bool cond, const char *name) { check(cond, name, true); }
void kz_sim_check_sometimes(bool cond, const char *name) { check(cond, name, false); }

bool kz_buggify(struct kz_env *env, const char *name) {
  struct kz_sim_hooks *h = active;
  if (!h || !h->buggify || !env || !name) return false;
  bool known = false;
  for (size_t i = 0; i < h->nenvs && !known; i++) known = h->envs[i] == env;
  if (!known) return false;
  struct site *s = NULL;
  for (size_t i = 0; i < h->nsites && !s; i++)
    if (strncmp(h->sites[i].pub.name, name, KZ_SIM_HOOKS_NAME_MAX - 1) == 0) s = &h->sites[i];
  if (!s) {
    if (h->nsites == h->cap_sites) {
      size_t cap = h->cap_sites ? h->cap_sites * 2 : 16;
      struct site *n = kz_realloc(h->sites, cap * sizeof *n);
      if (!n) return false;
      h->sites = n;
      h->cap_sites = cap;
    }
    s = &h->sites[h->nsites++];
    memset(s, 0, sizeof *s);
    snprintf(s->pub.name, sizeof s->pub.name, "%s", name);
    /* Enabled or not from (seed, name) alone, so adding a site elsewhere
     * never changes this one's fate. */
    struct kz_prng g;
    char label[160];
    size_t n = strlen(name);
    if (n > 140) n = 140;
    memcpy(label, "buggify-site:", 13);
    memcpy(label + 13, name, n);
    label[13 + n] = 0;
    kz_prng_derive(&g, h->seed, label);
    s->pub.enabled = kz_prng_below(&g, 4) == 0;
    memcpy(label, "buggify-fire:", 13);
    kz_prng_derive(&s->prng, h->seed, label);
  }
  s->pub.evaluations++;
  if (!s->pub.enabled) return false;
  bool fire = kz_prng_below(&s->prng, 20) == 0;
  if (fire) s->pub.fired++;
  return fire;
}

const struct kz_sim_hooks_check *kz_sim_hooks_checks(const struct kz_sim_hooks *h, size_t *n) {
  *n = h->nchecks;
  return h->checks;
}

size_t kz_sim_hooks_site_count(const struct kz_sim_hooks *h) { return h->nsites; }

const struct kz_sim_hooks_site *kz_sim_hooks_site_at(const struct kz_sim_hooks *h, size_t i) {
  return i < h->nsites ? &h->sites[i].pub : NULL;
}

int64_t kz_sim_hooks_blocks(const struct kz_sim_hooks *h) {
  return 1 + (h->checks != NULL) + (h->sites != NULL) + (h->envs != NULL);
}

size_t kz_sim_hooks_failed(const struct kz_sim_hooks *h) {
  size_t n = h->oom ? 1 : 0;
  for (size_t i = 0; i < h->nchecks; i++)
    if (h->checks[i].always && h->checks[i].true_count != h->checks[i].evaluations) n++;
  return n;
}
