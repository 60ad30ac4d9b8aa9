/* values.c — the value syntaxes of topology files: durations, probabilities, role names; and the topology helpers. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/topology.h"
#include "topology_int.h"

/* The one list of role names.  Which of them this build can run is
 * sim/run's business (its role table), not the loader's. */
static const char *const role_names[KZ_TOPO_ROLE_COUNT] = {
    "proxy", "media", "ecallmgr", "apps", "db", "broker", "sipp-uac", "sipp-uas",
};

const char *kz_topo_role_name(enum kz_topo_role r) {
  return (unsigned)r < KZ_TOPO_ROLE_COUNT ? role_names[r] : NULL;
}

int kz_topo_role_from_name(const char *name) {
  for (int i = 0; i < KZ_TOPO_ROLE_COUNT; i++)
    if (name && strcmp(name, role_names[i]) == 0) return i;
  return -1;
}

static const char *const dist_names[] = {"uniform", "normal", "pareto", "paretonormal"};

const char *kz_topo_dist_name(enum kz_topo_dist d) {
  return (unsigned)d < sizeof dist_names / sizeof dist_names[0] ? dist_names[d] : NULL;
}

int topo_dist_from_name(const char *s) {
  for (size_t i = 0; i < sizeof dist_names / sizeof dist_names[0]; i++)
    if (strcmp(s, dist_names[i]) == 0) return (int)i;
  return -1;
}

static int why_fail(const char **why, const char *text) {
  if (why) *why = text;
  return KZ_EINVAL;
}

/* Reads "<digits>[.<digits>]" at *p: whole part and the fraction as an
 * integer with its number of digits (at most `max_frac`). */
static int read_decimal(const char **p, uint64_t *whole, uint64_t *frac, int *frac_digits,
                        int max_frac) {
  const char *s = *p;
  *whole = 0;
  *frac = 0;
  *frac_digits = 0;
  if (*s < '0' || *s > '9') return -1;
  for (; *s >= '0' && *s <= '9'; s++) {
    if (*whole > UINT64_C(100000000000)) return -2; /* absurdly large: caught as overflow */
    *whole = *whole * 10 + (uint64_t)(*s - '0');
  }
  if (*s == '.') {
    s++;
    if (*s < '0' || *s > '9') return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
      if (*frac_digits == max_frac) return -3;
      *frac = *frac * 10 + (uint64_t)(*s - '0');
      (*frac_digits)++;
    }
  }
  *p = s;
  return 0;
}

int kz_topo_parse_duration(const char *s, bool allow_negative, int64_t *out_ns, const char **why) {
  if (!s || !*s) return why_fail(why, "empty duration");
  bool neg = false;
  if (*s == '-') {
    if (!allow_negative) return why_fail(why, "a duration cannot be negative here");
    neg = true;
    s++;
  }
  uint64_t whole, frac;
  int fd;
  const char *p = s;
  int rc = read_decimal(&p, &whole, &frac, &fd, 9);
  if (rc == -2) return why_fail(why, "duration too large");
  if (rc) return why_fail(why, "not a duration: write a number and a unit (ns, us, ms, s, m), e.g. '5ms'");
  uint64_t unit;
  if (!*p) {
    if (whole == 0 && frac == 0) {
      *out_ns = 0;
      return 0;
    }
    return why_fail(why, "a duration needs a unit (ns, us, ms, s, m), e.g. '5ms'");
  }
  if (strcmp(p, "ns") == 0) unit = 1;
  else if (strcmp(p, "us") == 0) unit = UINT64_C(1000);
  else if (strcmp(p, "ms") == 0) unit = UINT64_C(1000000);
  else if (strcmp(p, "s") == 0) unit = UINT64_C(1000000000);
  else if (strcmp(p, "m") == 0) unit = UINT64_C(60000000000);
  else return why_fail(why, "unknown duration unit (use ns, us, ms, s or m)");
  /* 10^7 s (about 115 days) is far beyond any simulation. */
  if (whole > UINT64_C(10000000000000000) / unit) return why_fail(why, "duration too large");
  uint64_t pow10 = 1;
  for (int i = 0; i < fd; i++) pow10 *= 10;
  if ((frac * unit) % pow10) return why_fail(why, "duration finer than 1 ns");
  uint64_t ns = whole * unit + frac * unit / pow10;
  *out_ns = neg ? -(int64_t)ns : (int64_t)ns;
  return 0;
}

int kz_topo_parse_ppm(const char *s, uint32_t *out_ppm, const char **why) {
  if (!s || !*s) return why_fail(why, "empty probability");
  uint64_t whole, frac;
  int fd;
  const char *p = s;
  size_t n = strlen(s);
  if (n > 3 && strcmp(s + n - 3, "ppm") == 0) {
    int rc = read_decimal(&p, &whole, &frac, &fd, 0);
    if (rc || p != s + n - 3) return why_fail(why, "not a probability: 'ppm' takes a whole number, e.g. '500ppm'");
    if (whole > 1000000) return why_fail(why, "probability above 100%");
    *out_ppm = (uint32_t)whole;
    return 0;
  }
  int rc = read_decimal(&p, &whole, &frac, &fd, 4);
  if (rc == -3) return why_fail(why, "probability finer than 0.0001% (1 ppm)");
  if (rc == 0 && *p == '\0')
    return why_fail(why, "a probability needs '%' or 'ppm', e.g. '0.5%'");
  if (rc || strcmp(p, "%") != 0)
    return why_fail(why, "not a probability: write a percentage or ppm, e.g. '0.5%' or '500ppm'");
  if (whole > 100) return why_fail(why, "probability above 100%");
  for (int i = fd; i < 4; i++) frac *= 10;
  uint64_t ppm = whole * 10000 + frac;
  if (ppm > 1000000) return why_fail(why, "probability above 100%");
  *out_ppm = (uint32_t)ppm;
  return 0;
}

size_t topo_edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 63 || lb > 63) return 99;
  size_t prev[64], cur[64];
  for (size_t j = 0; j <= lb; j++) prev[j] = j;
  for (size_t i = 1; i <= la; i++) {
    cur[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
      size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
      cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
    }
    memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
  }
  return prev[lb];
}

const char *topo_suggest(const char *word, const char *const *choices, size_t n) {
  const char *best = NULL;
  size_t best_d = 3; /* suggest only close misspellings */
  size_t wl = strlen(word);
  for (size_t i = 0; i < n; i++) {
    size_t d = topo_edit_distance(word, choices[i]);
    size_t cl = strlen(choices[i]);
    /* Short words: one edit at most, else everything looks alike. */
    size_t limit = (wl < 5 || cl < 5) ? 2 : 3;
    if (d < best_d && d < limit) {
      best = choices[i];
      best_d = d;
    }
  }
  return best;
}

const char *const *topo_role_names(void) { return role_names; }

long kz_topo_host_index(const struct kz_topo *t, const char *name) {
  for (size_t i = 0; i < t->nhosts; i++)
    if (strcmp(t->hosts[i].name, name) == 0) return (long)i;
  return -1;
}

void topo_link_overlay(struct kz_topo_link *dst, const struct kz_topo_link *src) {
  if (src->set & KZ_TOPO_LINK_LATENCY) dst->latency_ns = src->latency_ns;
  if (src->set & KZ_TOPO_LINK_JITTER) dst->jitter_ns = src->jitter_ns;
  if (src->set & KZ_TOPO_LINK_DIST) {
    dst->dist = src->dist;
    dst->dist_pos = src->dist_pos;
  }
  if (src->set & KZ_TOPO_LINK_LOSS) dst->loss_ppm = src->loss_ppm;
  if (src->set & KZ_TOPO_LINK_DUP) dst->dup_ppm = src->dup_ppm;
  if (src->set & KZ_TOPO_LINK_REORDER) dst->reorder_ppm = src->reorder_ppm;
  if (src->set & KZ_TOPO_LINK_REORDER_DELAY) dst->reorder_ns = src->reorder_ns;
  if (src->set & KZ_TOPO_LINK_QUEUE) dst->queue_packets = src->queue_packets;
  if (src->set & KZ_TOPO_LINK_QUEUE_BYTES) dst->queue_bytes = src->queue_bytes;
  dst->set |= src->set;
  dst->pos = src->pos;
}

void kz_topo_path_link(const struct kz_topo *t, size_t from, size_t to, struct kz_topo_link *out) {
  *out = t->default_link;
  for (size_t i = 0; i < t->npaths; i++) {
    const struct kz_topo_path *p = &t->paths[i];
    if ((p->from == from && p->to == to) || (p->both && p->from == to && p->to == from))
      topo_link_overlay(out, &p->link);
  }
}

int topo_verror(const char *file, struct kz_topo_pos pos, struct kz_topo_err *err,
                const char *fmt, va_list ap) {
  if (!err) return KZ_EPROTO;
  char msg[400];
  vsnprintf(msg, sizeof msg, fmt, ap);
  err->line = pos.line;
  err->col = pos.col;
  if (pos.line)
    snprintf(err->text, sizeof err->text, "%s:%u:%u: %s", file ? file : "topology", pos.line, pos.col,
             msg);
  else
    snprintf(err->text, sizeof err->text, "%s: %s", file ? file : "topology", msg);
  return KZ_EPROTO;
}

int kz_topo_error_at(const struct kz_topo *t, struct kz_topo_pos pos, struct kz_topo_err *err,
                     const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = topo_verror(t ? t->file : NULL, pos, err, fmt, ap);
  va_end(ap);
  return rc;
}

void kz_topo_free(struct kz_topo *t) {
  if (!t) return;
  for (size_t i = 0; i < t->nfaults; i++) {
    kz_free(t->faults[i].side_a);
    kz_free(t->faults[i].side_b);
  }
  kz_free(t->faults);
  kz_free(t->paths);
  kz_free(t->hosts);
  kz_free(t->file);
  kz_free(t->name);
  kz_free(t->description);
  kz_free(t);
}
