/* compare.c — compares what the real and the simulated world counted for a worlds pair, and prints the comparison table. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kz/error.h"
#include "kz/worlds.h"

/* Messages summed by key over a side's commands, in first-seen order. */
struct agg {
  size_t n;
  char key[KZ_WORLDS_MAX_CMDS][24];
  uint64_t count[KZ_WORLDS_MAX_CMDS];
};

static void agg_add(struct agg *a, const char *key, uint64_t count) {
  if (!key[0]) return;
  for (size_t i = 0; i < a->n; i++)
    if (strcmp(a->key[i], key) == 0) {
      a->count[i] += count;
      return;
    }
  if (a->n >= KZ_WORLDS_MAX_CMDS) return;
  snprintf(a->key[a->n], sizeof a->key[a->n], "%s", key);
  a->count[a->n++] = count;
}

static void agg_side(const struct kz_worlds_side *s, struct agg *a) {
  memset(a, 0, sizeof *a);
  for (size_t i = 0; i < s->ncmds; i++) agg_add(a, s->cmds[i].key, s->cmds[i].count);
}

static bool agg_has(const struct agg *a, const char *key) {
  for (size_t i = 0; i < a->n; i++)
    if (strcmp(a->key[i], key) == 0) return true;
  return false;
}

static uint64_t agg_get(const struct agg *a, const char *key) {
  for (size_t i = 0; i < a->n; i++)
    if (strcmp(a->key[i], key) == 0) return a->count[i];
  return 0;
}

static bool cmp_side(const char *who, const struct kz_worlds_side *r, const struct kz_worlds_side *s,
                     struct kz_buf *diff) {
  bool same = true;
  if (!r->ran || !s->ran) {
    kz_buf_printf(diff, "%s: %s world has no counters (%s)\n", who, r->ran ? "sim" : "real",
                  r->ran ? s->note : r->note);
    return false;
  }
  const char *names[] = {"created", "successful", "failed", "open", "unexpected"};
  uint64_t rv[] = {r->created, r->successful, r->failed, r->open, r->unexpected};
  uint64_t sv[] = {s->created, s->successful, s->failed, s->open, s->unexpected};
  for (int i = 0; i < 5; i++)
    if (rv[i] != sv[i]) {
      kz_buf_printf(diff, "%s %s: real %" PRIu64 ", sim %" PRIu64 "\n", who, names[i], rv[i], sv[i]);
      same = false;
    }
  struct agg ra, sa;
  agg_side(r, &ra);
  agg_side(s, &sa);
  for (size_t i = 0; i < ra.n; i++)
    if (ra.count[i] != agg_get(&sa, ra.key[i])) {
      kz_buf_printf(diff, "%s messages %s: real %" PRIu64 ", sim %" PRIu64 "\n", who, ra.key[i],
                    ra.count[i], agg_get(&sa, ra.key[i]));
      same = false;
    }
  for (size_t i = 0; i < sa.n; i++)
    if (sa.count[i] && !agg_has(&ra, sa.key[i])) {
      kz_buf_printf(diff, "%s messages %s: real 0, sim %" PRIu64 "\n", who, sa.key[i], sa.count[i]);
      same = false;
    }
  /* Where each world books an unexpected message is SIPp bookkeeping,
   * not call behaviour: reported, never a failure. */
  size_t n = r->ncmds > s->ncmds ? r->ncmds : s->ncmds;
  for (size_t i = 0; i < n; i++) {
    uint64_t ru = i < r->ncmds ? r->cmds[i].unexpected : 0, su = i < s->ncmds ? s->cmds[i].unexpected : 0;
    if (ru != su)
      kz_buf_printf(diff, "note: %s command %zu (%s) unexpected: real %" PRIu64 ", sim %" PRIu64 "\n", who, i,
                    i < s->ncmds && s->cmds[i].key[0] ? s->cmds[i].key : i < r->ncmds ? r->cmds[i].key : "?",
                    ru, su);
  }
  return same;
}

bool kz_worlds_compare(const struct kz_worlds_outcome *real, const struct kz_worlds_outcome *sim,
                       struct kz_buf *diff) {
  bool a = cmp_side("uac", &real->uac, &sim->uac, diff);
  bool b = cmp_side("uas", &real->uas, &sim->uas, diff);
  return a && b;
}

#define ROW_FMT "%-26s %-5s %-4s %7s %5s %6s %5s %5s  %-60s %s\n"

int kz_worlds_table_header(struct kz_buf *out) {
  int rc = kz_buf_printf(out, ROW_FMT, "pair", "world", "side", "created", "ok", "failed", "open", "unexp",
                         "messages (sent >, received <)", "verdict");
  if (!rc)
    rc = kz_buf_printf(out, "%.*s\n", 132,
                       "----------------------------------------------------------------------------"
                       "----------------------------------------------------------------------------");
  return rc;
}

static int row(struct kz_buf *out, const char *pair, const char *world, const char *who,
               const struct kz_worlds_side *s, const char *verdict) {
  if (!s->ran)
    return kz_buf_printf(out, ROW_FMT, pair, world, who, "-", "-", "-", "-", "-", s->note[0] ? s->note : "(not run)",
                         verdict);
  char n[5][24];
  snprintf(n[0], sizeof n[0], "%" PRIu64, s->created);
  snprintf(n[1], sizeof n[1], "%" PRIu64, s->successful);
  snprintf(n[2], sizeof n[2], "%" PRIu64, s->failed);
  snprintf(n[3], sizeof n[3], "%" PRIu64, s->open);
  snprintf(n[4], sizeof n[4], "%" PRIu64, s->unexpected);
  struct agg a;
  agg_side(s, &a);
  char msgs[512] = "";
  size_t len = 0;
  for (size_t i = 0; i < a.n && len < sizeof msgs; i++)
    len += (size_t)snprintf(msgs + len, sizeof msgs - len, "%s%s:%" PRIu64, i ? " " : "", a.key[i], a.count[i]);
  return kz_buf_printf(out, ROW_FMT, pair, world, who, n[0], n[1], n[2], n[3], n[4], msgs, verdict);
}

int kz_worlds_table_rows(struct kz_buf *out, const struct kz_worlds_pair *pair,
                         const struct kz_worlds_outcome *real, const struct kz_worlds_outcome *sim,
                         const char *verdict) {
  int rc = row(out, pair->name, "real", "uac", &real->uac, verdict);
  if (!rc) rc = row(out, "", "real", "uas", &real->uas, "");
  if (!rc) rc = row(out, "", "sim", "uac", &sim->uac, "");
  if (!rc) rc = row(out, "", "sim", "uas", &sim->uas, "");
  for (int i = 0; i < 2 && !rc; i++) {
    const struct kz_worlds_side *s = i ? &real->uas : &real->uac;
    if (s->ran && s->note[0]) rc = kz_buf_printf(out, "%26s real %s said: %s\n", "", i ? "uas" : "uac", s->note);
  }
  return rc;
}
