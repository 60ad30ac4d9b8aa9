/* series.c — time-bucketed samples with exact nearest-rank percentiles. */
#include <stdlib.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sim_report.h"

struct bucket {
  uint64_t *vals;
  size_t n, cap;
  uint64_t sum, min, max;
};

struct kz_sim_report_series {
  uint64_t bucket_ns;
  struct bucket *b;
  size_t len, cap;
};

int kz_sim_report_series_new(struct kz_sim_report_series **out, uint64_t bucket_ns) {
  if (!out || bucket_ns == 0) return KZ_EINVAL;
  struct kz_sim_report_series *s = kz_calloc(1, sizeof *s);
  if (!s) return KZ_ENOMEM;
  s->bucket_ns = bucket_ns;
  *out = s;
  return 0;
}

void kz_sim_report_series_free(struct kz_sim_report_series *s) {
  if (!s) return;
  for (size_t i = 0; i < s->len; i++) kz_free(s->b[i].vals);
  kz_free(s->b);
  kz_free(s);
}

static int grow_to(struct kz_sim_report_series *s, size_t len) {
  if (len <= s->len) return 0;
  if (len > s->cap) {
    size_t cap = s->cap ? s->cap : 16;
    while (cap < len) cap *= 2;
    struct bucket *nb = kz_realloc(s->b, cap * sizeof *nb);
    if (!nb) return KZ_ENOMEM;
    s->b = nb;
    s->cap = cap;
  }
  memset(&s->b[s->len], 0, (len - s->len) * sizeof *s->b);
  s->len = len;
  return 0;
}

int kz_sim_report_series_extend(struct kz_sim_report_series *s, uint64_t t_ns) {
  return grow_to(s, (size_t)(t_ns / s->bucket_ns) + 1);
}

int kz_sim_report_series_add(struct kz_sim_report_series *s, uint64_t t_ns, uint64_t value) {
  size_t i = (size_t)(t_ns / s->bucket_ns);
  int rc = grow_to(s, i + 1);
  if (rc) return rc;
  struct bucket *b = &s->b[i];
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 8;
    uint64_t *nv = kz_realloc(b->vals, cap * sizeof *nv);
    if (!nv) return KZ_ENOMEM;
    b->vals = nv;
    b->cap = cap;
  }
  b->vals[b->n++] = value;
  b->sum += value;
  if (b->n == 1 || value < b->min) b->min = value;
  if (value > b->max) b->max = value;
  return 0;
}

uint64_t kz_sim_report_series_bucket_ns(const struct kz_sim_report_series *s) { return s->bucket_ns; }
size_t kz_sim_report_series_len(const struct kz_sim_report_series *s) { return s->len; }

void kz_sim_report_series_bucket(const struct kz_sim_report_series *s, size_t i,
                                 struct kz_sim_report_bucket *out) {
  memset(out, 0, sizeof *out);
  size_t lo = i, hi = i + 1;
  if (i == SIZE_MAX) {
    lo = 0;
    hi = s->len;
  }
  for (size_t k = lo; k < hi && k < s->len; k++) {
    const struct bucket *b = &s->b[k];
    if (!b->n) continue;
    if (!out->count || b->min < out->min) out->min = b->min;
    if (b->max > out->max) out->max = b->max;
    out->count += b->n;
    out->sum += b->sum;
  }
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int kz_sim_report_series_percentile(const struct kz_sim_report_series *s, size_t i,
                                    uint32_t permille, uint64_t *out) {
  if (!s || !out || permille > 1000) return KZ_EINVAL;
  size_t lo = i, hi = i + 1;
  if (i == SIZE_MAX) {
    lo = 0;
    hi = s->len;
  }
  size_t n = 0;
  for (size_t k = lo; k < hi && k < s->len; k++) n += s->b[k].n;
  if (!n) return KZ_ENOENT;
  uint64_t *v = kz_malloc(n * sizeof *v);
  if (!v) return KZ_ENOMEM;
  size_t off = 0;
  for (size_t k = lo; k < hi && k < s->len; k++) {
    if (s->b[k].n) memcpy(v + off, s->b[k].vals, s->b[k].n * sizeof *v);
    off += s->b[k].n;
  }
  qsort(v, n, sizeof *v, cmp_u64);
  /* Nearest rank: ceil(p * n), at least 1. */
  uint64_t rank = ((uint64_t)permille * n + 999) / 1000;
  if (rank == 0) rank = 1;
  *out = v[rank - 1];
  kz_free(v);
  return 0;
}

int64_t kz_sim_report_series_blocks(const struct kz_sim_report_series *s) {
  if (!s) return 0;
  int64_t n = 1 + (s->b != NULL);
  for (size_t i = 0; i < s->len; i++) n += s->b[i].vals != NULL;
  return n;
}
