/* report.c — a run's report: the model, summary.json, the terminal table and writing the output folder. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kz/sim_os.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sim_report.h"
#include "report_int.h"

void kz_sim_report_init(struct kz_sim_report *r) { memset(r, 0, sizeof *r); }

void kz_sim_report_free(struct kz_sim_report *r) {
  if (!r) return;
  for (size_t i = 0; i < r->nconfig; i++) {
    kz_free(r->config[i].key);
    kz_free(r->config[i].value);
  }
  kz_free(r->config);
  for (size_t i = 0; i < r->nendpoints; i++) kz_free(r->endpoints[i].msgs);
  kz_free(r->endpoints);
  kz_free(r->checks);
  memset(r, 0, sizeof *r);
}

int kz_sim_report_config(struct kz_sim_report *r, const char *key, const char *fmt, ...) {
  struct kz_buf v;
  kz_buf_init(&v);
  va_list ap;
  va_start(ap, fmt);
  int rc = kz_buf_vprintf(&v, fmt, ap);
  va_end(ap);
  if (rc) return rc;
  struct kz_sim_report_kv *n = kz_realloc(r->config, (r->nconfig + 1) * sizeof *n);
  char *k = kz_strdup(key);
  char *val = kz_strdup(v.data ? (char *)v.data : "");
  kz_buf_free(&v);
  if (n) r->config = n;
  if (!n || !k || !val) {
    kz_free(k);
    kz_free(val);
    return KZ_ENOMEM;
  }
  r->config[r->nconfig].key = k;
  r->config[r->nconfig].value = val;
  r->nconfig++;
  return 0;
}

int kz_sim_report_add_endpoint(struct kz_sim_report *r, const struct kz_sim_report_endpoint *e) {
  struct kz_sim_report_endpoint *n = kz_realloc(r->endpoints, (r->nendpoints + 1) * sizeof *n);
  if (!n) return KZ_ENOMEM;
  r->endpoints = n;
  r->endpoints[r->nendpoints++] = *e;
  return 0;
}

int kz_sim_report_add_check(struct kz_sim_report *r, const struct kz_sim_report_check *c) {
  struct kz_sim_report_check *n = kz_realloc(r->checks, (r->nchecks + 1) * sizeof *n);
  if (!n) return KZ_ENOMEM;
  r->checks = n;
  r->checks[r->nchecks++] = *c;
  return 0;
}

/* "<200" / ">180" / "<100?" -> 200 / 180 / 100, else 0. */
static unsigned label_code(const char *l) {
  if ((l[0] != '<' && l[0] != '>') || !l[1]) return 0;
  unsigned c = 0;
  const char *p = l + 1;
  for (int i = 0; i < 3; i++, p++) {
    if (*p < '0' || *p > '9') return 0;
    c = c * 10 + (unsigned)(*p - '0');
  }
  return (*p == 0 || *p == '?') && c >= 100 ? c : 0;
}

size_t kz_sim_report_codes(const struct kz_sim_report_endpoint *e, struct kz_sim_report_code *out,
                           size_t max) {
  size_t n = 0;
  for (size_t i = 0; i < e->nmsgs; i++) {
    unsigned code = label_code(e->msgs[i].label);
    if (!code) continue;
    size_t j = 0;
    while (j < n && out[j].code < code) j++;
    if (j == n || out[j].code != code) {
      if (n == max) continue;
      memmove(&out[j + 1], &out[j], (n - j) * sizeof *out);
      out[j] = (struct kz_sim_report_code){(uint16_t)code, 0, 0};
      n++;
    }
    if (e->msgs[i].label[0] == '>') out[j].sent += e->msgs[i].st.sent + e->msgs[i].st.sent_retrans;
    else out[j].received += e->msgs[i].st.recv + e->msgs[i].st.recv_retrans;
  }
  return n;
}

/* ------------------------------------------------------------------ */
/* JSON */

int report_json_str(struct kz_buf *b, const char *s) {
  int rc = kz_buf_append_byte(b, '"');
  for (const unsigned char *p = (const unsigned char *)s; *p && !rc; p++) {
    if (*p == '"' || *p == '\\') rc = kz_buf_printf(b, "\\%c", *p);
    else if (*p == '\n') rc = kz_buf_append_cstr(b, "\\n");
    else if (*p < 0x20 || *p >= 0x7f) rc = kz_buf_printf(b, "\\u%04x", *p);
    else rc = kz_buf_append_byte(b, *p);
  }
  return rc ? rc : kz_buf_append_byte(b, '"');
}

static const char *const fail_keys[KZ_SIPP_FAIL_COUNT] = {
    "unexpected_message", "recv_timeout", "max_retrans", "regexp_nomatch",
    "regexp_match",       "test",         "call_timeout", "send",
};

static int json_repart(struct kz_buf *b, const struct kz_sipp_repartition *r) {
  int rc = kz_buf_printf(b, "{\"n\": %" PRIu64 ", \"min_ms\": %" PRIu64 ", \"max_ms\": %" PRIu64
                            ", \"sum_ms\": %" PRIu64 ", \"buckets\": [",
                         r->n, r->n ? r->min_ms : 0, r->max_ms, r->sum_ms);
  for (uint32_t i = 0; i <= r->nbounds && i <= KZ_SIPP_MAX_BUCKETS && !rc; i++) {
    if (i < r->nbounds)
      rc = kz_buf_printf(b, "%s{\"below_ms\": %u, \"count\": %" PRIu64 "}", i ? ", " : "", r->bound_ms[i],
                         r->count[i]);
    else
      rc = kz_buf_printf(b, "%s{\"below_ms\": null, \"count\": %" PRIu64 "}", i ? ", " : "", r->count[i]);
  }
  return rc ? rc : kz_buf_append_cstr(b, "]}");
}

static int json_endpoint(struct kz_buf *b, const struct kz_sim_report_endpoint *e) {
  const struct kz_sipp_stats *s = &e->stats;
  int rc = kz_buf_append_cstr(b, "    {\"name\": ");
  rc = rc ? rc : report_json_str(b, e->name);
  rc = rc ? rc : kz_buf_append_cstr(b, ", \"host\": ");
  rc = rc ? rc : report_json_str(b, e->host);
  rc = rc ? rc : kz_buf_append_cstr(b, ", \"role\": ");
  rc = rc ? rc : report_json_str(b, e->role);
  rc = rc ? rc : kz_buf_append_cstr(b, ", \"scenario\": ");
  rc = rc ? rc : report_json_str(b, e->scenario);
  rc = rc ? rc
          : kz_buf_printf(b,
                          ",\n     \"calls_created\": %" PRIu64 ", \"calls_current\": %" PRIu64
                          ", \"calls_successful\": %" PRIu64 ", \"calls_failed\": %" PRIu64
                          ", \"retransmissions\": %" PRIu64 ", \"out_of_call\": %" PRIu64
                          ", \"dead_call\": %" PRIu64 ", \"parse_errors\": %" PRIu64
                          ", \"calls_refused\": %" PRIu64 ",\n     \"failed\": {",
                          s->calls_created, s->calls_current, s->calls_successful, s->calls_failed,
                          s->retransmissions, s->out_of_call, s->dead_call, s->parse_errors,
                          s->calls_refused);
  for (int i = 0; i < KZ_SIPP_FAIL_COUNT && !rc; i++)
    rc = kz_buf_printf(b, "%s\"%s\": %" PRIu64, i ? ", " : "", fail_keys[i], s->failed[i]);
  rc = rc ? rc : kz_buf_append_cstr(b, "},\n     \"response_codes\": {");
  struct kz_sim_report_code codes[32];
  size_t nc = kz_sim_report_codes(e, codes, 32);
  for (size_t i = 0; i < nc && !rc; i++)
    rc = kz_buf_printf(b, "%s\"%u\": {\"sent\": %" PRIu64 ", \"received\": %" PRIu64 "}", i ? ", " : "",
                       codes[i].code, codes[i].sent, codes[i].received);
  rc = rc ? rc : kz_buf_append_cstr(b, "},\n     \"response_times\": [");
  for (uint32_t i = 0; i < s->nrtd && i < KZ_SIPP_MAX_RTDS && !rc; i++) {
    rc = kz_buf_printf(b, "%s{\"rtd\": ", i ? ", " : "");
    rc = rc ? rc : report_json_str(b, s->rtd_name[i]);
    rc = rc ? rc : kz_buf_append_cstr(b, ", \"ms\": ");
    rc = rc ? rc : json_repart(b, &s->rtd[i]);
    rc = rc ? rc : kz_buf_append_byte(b, '}');
  }
  rc = rc ? rc : kz_buf_append_cstr(b, "],\n     \"call_length\": ");
  rc = rc ? rc : json_repart(b, &s->call_length);
  rc = rc ? rc : kz_buf_append_cstr(b, ",\n     \"commands\": [");
  for (size_t i = 0; i < e->nmsgs && !rc; i++) {
    const struct kz_sipp_msg_stats *m = &e->msgs[i].st;
    rc = kz_buf_printf(b, "%s\n       {\"command\": ", i ? "," : "");
    rc = rc ? rc : report_json_str(b, e->msgs[i].label);
    rc = rc ? rc
            : kz_buf_printf(b,
                            ", \"sent\": %" PRIu64 ", \"received\": %" PRIu64 ", \"sent_retrans\": %" PRIu64
                            ", \"received_retrans\": %" PRIu64 ", \"timeouts\": %" PRIu64
                            ", \"unexpected\": %" PRIu64 ", \"lost\": %" PRIu64 ", \"pauses\": %" PRIu64 "}",
                            m->sent, m->recv, m->sent_retrans, m->recv_retrans, m->timeout, m->unexpected,
                            m->lost, m->sessions);
  }
  return rc ? rc : kz_buf_append_cstr(b, "]}");
}

static int json_series_sums(struct kz_buf *b, const char *name, const struct kz_sim_report_series *s,
                            size_t len) {
  int rc = kz_buf_printf(b, ",\n    \"%s\": [", name);
  for (size_t i = 0; i < len && !rc; i++) {
    struct kz_sim_report_bucket bk;
    kz_sim_report_series_bucket(s, i, &bk);
    rc = kz_buf_printf(b, "%s%" PRIu64, i ? ", " : "", bk.sum);
  }
  return rc ? rc : kz_buf_append_byte(b, ']');
}

static int json_series_pct(struct kz_buf *b, const char *name, const struct kz_sim_report_series *s,
                           size_t len, uint32_t permille) {
  int rc = kz_buf_printf(b, ",\n    \"%s\": [", name);
  for (size_t i = 0; i < len && !rc; i++) {
    uint64_t v;
    int prc = kz_sim_report_series_percentile(s, i, permille, &v);
    if (prc == KZ_ENOMEM) return prc;
    if (prc) rc = kz_buf_printf(b, "%snull", i ? ", " : "");
    else rc = kz_buf_printf(b, "%s%" PRIu64, i ? ", " : "", v);
  }
  return rc ? rc : kz_buf_append_byte(b, ']');
}

size_t report_series_len(const struct kz_sim_report *r) {
  size_t len = 0;
  const struct kz_sim_report_series *all[] = {r->s_started, r->s_failed, r->s_succeeded,
                                              r->s_response_ms};
  for (size_t i = 0; i < 4; i++)
    if (all[i] && kz_sim_report_series_len(all[i]) > len) len = kz_sim_report_series_len(all[i]);
  return len;
}

uint64_t report_bucket_ns(const struct kz_sim_report *r) {
  const struct kz_sim_report_series *all[] = {r->s_started, r->s_failed, r->s_succeeded,
                                              r->s_response_ms};
  for (size_t i = 0; i < 4; i++)
    if (all[i]) return kz_sim_report_series_bucket_ns(all[i]);
  return 1000000000;
}

int kz_sim_report_json(const struct kz_sim_report *r, struct kz_buf *b) {
  int rc = kz_buf_append_cstr(b, "{\n  \"topology\": ");
  rc = rc ? rc : report_json_str(b, r->topology ? r->topology : "");
  rc = rc ? rc
          : kz_buf_printf(b,
                          ",\n  \"seed\": %" PRIu64 ",\n  \"trace_hash\": \"%016" PRIx64 "\",\n"
                          "  \"sim_seconds\": %" PRIu64 ".%09" PRIu64 ",\n  \"wall_seconds\": %.6f,\n"
                          "  \"events\": %" PRIu64 ",\n"
                          "  \"calls\": {\"attempted\": %" PRIu64 ", \"succeeded\": %" PRIu64
                          ", \"failed\": %" PRIu64 "},\n  \"passed\": %s,\n  \"verdict\": ",
                          r->seed, r->trace_hash, r->sim_ns / 1000000000, r->sim_ns % 1000000000,
                          r->wall_seconds, r->net.events, r->calls_attempted, r->calls_succeeded,
                          r->calls_failed, r->passed ? "true" : "false");
  rc = rc ? rc : report_json_str(b, r->verdict);
  rc = rc ? rc : kz_buf_append_cstr(b, ",\n  \"replay\": ");
  rc = rc ? rc : report_json_str(b, r->replay);
  rc = rc ? rc : kz_buf_append_cstr(b, ",\n  \"config\": {");
  for (size_t i = 0; i < r->nconfig && !rc; i++) {
    rc = kz_buf_append_cstr(b, i ? ",\n    " : "\n    ");
    rc = rc ? rc : report_json_str(b, r->config[i].key);
    rc = rc ? rc : kz_buf_append_cstr(b, ": ");
    rc = rc ? rc : report_json_str(b, r->config[i].value);
  }
  const struct kz_sim_stats *n = &r->net;
  rc = rc ? rc
          : kz_buf_printf(b,
                          "},\n  \"network\": {\"trace_lines\": %" PRIu64 ", \"udp_sent\": %" PRIu64
                          ", \"udp_delivered\": %" PRIu64 ", \"udp_dropped\": %" PRIu64
                          ", \"udp_lost\": %" PRIu64 ", \"udp_duplicated\": %" PRIu64
                          ", \"udp_reordered\": %" PRIu64 ", \"udp_queue_full\": %" PRIu64
                          ", \"udp_partitioned\": %" PRIu64 ", \"streams_opened\": %" PRIu64
                          ", \"stream_bytes\": %" PRIu64 ", \"crashes\": %" PRIu64 ", \"restarts\": %" PRIu64
                          ", \"stalls\": %" PRIu64 "},\n  \"endpoints\": [",
                          n->trace_lines, n->udp_sent, n->udp_delivered, n->udp_dropped, n->udp_lost,
                          n->udp_duplicated, n->udp_reordered, n->udp_queue_full, n->udp_partitioned,
                          n->streams_opened, n->stream_bytes, n->crashes, n->restarts, n->stalls);
  for (size_t i = 0; i < r->nendpoints && !rc; i++) {
    rc = kz_buf_append_cstr(b, i ? ",\n" : "\n");
    rc = rc ? rc : json_endpoint(b, &r->endpoints[i]);
  }
  rc = rc ? rc : kz_buf_append_cstr(b, "],\n  \"checks\": [");
  for (size_t i = 0; i < r->nchecks && !rc; i++) {
    const struct kz_sim_report_check *c = &r->checks[i];
    rc = kz_buf_append_cstr(b, i ? ",\n    {\"name\": " : "\n    {\"name\": ");
    rc = rc ? rc : report_json_str(b, c->name);
    bool ok = c->always ? c->true_count == c->evaluations : c->true_count > 0;
    rc = rc ? rc
            : kz_buf_printf(b, ", \"kind\": \"%s\", \"evaluations\": %" PRIu64 ", \"true\": %" PRIu64
                               ", \"ok\": %s",
                            c->always ? "always" : "sometimes", c->evaluations, c->true_count,
                            ok ? "true" : "false");
    if (!rc && c->always && c->first_false_ns != UINT64_MAX)
      rc = kz_buf_printf(b, ", \"first_failure_seconds\": %" PRIu64 ".%09" PRIu64,
                         c->first_false_ns / 1000000000, c->first_false_ns % 1000000000);
    rc = rc ? rc : kz_buf_append_byte(b, '}');
  }
  size_t len = report_series_len(r);
  uint64_t bns = report_bucket_ns(r);
  rc = rc ? rc
          : kz_buf_printf(b, "],\n  \"series\": {\n    \"bucket_seconds\": %" PRIu64 ".%09" PRIu64, bns / 1000000000,
                          bns % 1000000000);
  if (r->s_started && !rc) rc = json_series_sums(b, "calls_started", r->s_started, len);
  if (r->s_succeeded && !rc) rc = json_series_sums(b, "calls_succeeded", r->s_succeeded, len);
  if (r->s_failed && !rc) rc = json_series_sums(b, "calls_failed", r->s_failed, len);
  if (r->s_response_ms && !rc) {
    rc = json_series_pct(b, "response_ms_p50", r->s_response_ms, len, 500);
    rc = rc ? rc : json_series_pct(b, "response_ms_p90", r->s_response_ms, len, 900);
    rc = rc ? rc : json_series_pct(b, "response_ms_p99", r->s_response_ms, len, 990);
  }
  return rc ? rc : kz_buf_append_cstr(b, "\n  }\n}\n");
}

/* ------------------------------------------------------------------ */
/* Terminal table */

static void row(FILE *f, const char *k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void row(FILE *f, const char *k, const char *fmt, ...) {
  char v[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(v, sizeof v, fmt, ap);
  va_end(ap);
  fprintf(f, "  %-22s %s\n", k, v);
}

void kz_sim_report_print(const struct kz_sim_report *r, FILE *f) {
  fprintf(f, "\n== kz sim: %s ==\n", r->topology ? r->topology : "run");
  row(f, "result", "%s: %s", r->passed ? "PASS" : "FAIL", r->verdict);
  row(f, "seed", "%" PRIu64, r->seed);
  row(f, "trace hash", "%016" PRIx64, r->trace_hash);
  row(f, "simulated", "%" PRIu64 ".%03" PRIu64 " s", r->sim_ns / 1000000000, r->sim_ns / 1000000 % 1000);
  row(f, "wall", "%.3f s", r->wall_seconds);
  row(f, "events", "%" PRIu64, r->net.events);
  row(f, "calls", "%" PRIu64 " attempted, %" PRIu64 " succeeded, %" PRIu64 " failed", r->calls_attempted,
      r->calls_succeeded, r->calls_failed);
  row(f, "datagrams", "%" PRIu64 " sent, %" PRIu64 " lost, %" PRIu64 " duplicated, %" PRIu64 " partitioned",
      r->net.udp_sent, r->net.udp_lost, r->net.udp_duplicated, r->net.udp_partitioned);
  if (r->s_response_ms) {
    uint64_t p50, p90, p99;
    if (!kz_sim_report_series_percentile(r->s_response_ms, SIZE_MAX, 500, &p50) &&
        !kz_sim_report_series_percentile(r->s_response_ms, SIZE_MAX, 900, &p90) &&
        !kz_sim_report_series_percentile(r->s_response_ms, SIZE_MAX, 990, &p99))
      row(f, "response time", "p50 %" PRIu64 " ms, p90 %" PRIu64 " ms, p99 %" PRIu64 " ms", p50, p90, p99);
  }
  if (r->nendpoints) {
    fprintf(f, "\n  %-18s %-4s %9s %9s %9s %9s %9s\n", "endpoint", "role", "created", "success", "failed",
            "retrans", "unexpect");
    for (size_t i = 0; i < r->nendpoints; i++) {
      const struct kz_sim_report_endpoint *e = &r->endpoints[i];
      char nm[100];
      snprintf(nm, sizeof nm, "%s@%s", e->name, e->host);
      fprintf(f, "  %-18s %-4s %9" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64 "\n", nm, e->role,
              e->stats.calls_created, e->stats.calls_successful, e->stats.calls_failed, e->stats.retransmissions,
              e->stats.failed[KZ_SIPP_FAIL_UNEXPECTED]);
    }
  }
  bool header = false;
  for (size_t i = 0; i < r->nchecks; i++) {
    const struct kz_sim_report_check *c = &r->checks[i];
    bool ok = c->always ? c->true_count == c->evaluations : c->true_count > 0;
    if (ok) continue;
    if (!header) fprintf(f, "\n  checks that did not hold:\n");
    header = true;
    fprintf(f, "    %s %-40s %" PRIu64 "/%" PRIu64 " true\n", c->always ? "always   " : "sometimes", c->name,
            c->true_count, c->evaluations);
  }
  if (!r->passed && r->replay[0]) fprintf(f, "\n  replay with:\n    %s\n", r->replay);
  fprintf(f, "\n");
}

/* ------------------------------------------------------------------ */
/* Output folder */

static int write_file(const char *dir, const char *name, const struct kz_buf *b, char *errbuf, size_t errlen) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || (b->len && fwrite(b->data, 1, b->len, f) != b->len) || fclose(f)) {
    int e = errno;
    if (errbuf) snprintf(errbuf, errlen, "cannot write %s: %s", path, strerror(e));
    return KZ_EIO;
  }
  return 0;
}

int kz_sim_report_write_dir(const struct kz_sim_report *r, const char *dir, char *errbuf, size_t errlen) {
  if (kz_sim_os_mkdir_p(dir)) {
    if (errbuf) snprintf(errbuf, errlen, "cannot create %s: %s", dir, strerror(errno));
    return KZ_EIO;
  }
  struct kz_buf b;
  kz_buf_init(&b);
  int rc = kz_sim_report_json(r, &b);
  if (!rc) rc = write_file(dir, "summary.json", &b, errbuf, errlen);
  kz_buf_reset(&b);
  if (!rc) rc = kz_sim_report_html(r, &b);
  if (!rc) rc = write_file(dir, "report.html", &b, errbuf, errlen);
  if (rc == KZ_ENOMEM && errbuf) snprintf(errbuf, errlen, "out of memory");
  kz_buf_free(&b);
  return rc;
}
