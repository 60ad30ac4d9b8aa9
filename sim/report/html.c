/* html.c — report.html: one self-contained page with inline SVG plots drawn here and the run's tables. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sim_report.h"
#include "report_int.h"

/* The page is XHTML-compatible (every element closed, text escaped) so
 * an XML parser can check it; browsers read it as HTML5.  Floating point
 * only places pixels: none of it feeds the trace. */

static int esc(struct kz_buf *b, const char *s) {
  int rc = 0;
  for (; *s && !rc; s++) {
    switch (*s) {
    case '<': rc = kz_buf_append_cstr(b, "&lt;"); break;
    case '>': rc = kz_buf_append_cstr(b, "&gt;"); break;
    case '&': rc = kz_buf_append_cstr(b, "&amp;"); break;
    case '"': rc = kz_buf_append_cstr(b, "&quot;"); break;
    default:
      rc = (unsigned char)*s < 0x20 && *s != '\n' && *s != '\t' ? kz_buf_append_byte(b, '?')
                                                                 : kz_buf_append_byte(b, (uint8_t)*s);
    }
  }
  return rc;
}

static int td(struct kz_buf *b, const char *s) {
  int rc = kz_buf_append_cstr(b, "<td>");
  rc = rc ? rc : esc(b, s);
  return rc ? rc : kz_buf_append_cstr(b, "</td>");
}

static int kv_row(struct kz_buf *b, const char *k, const char *v) {
  int rc = kz_buf_append_cstr(b, "<tr><th>");
  rc = rc ? rc : esc(b, k);
  rc = rc ? rc : kz_buf_append_cstr(b, "</th>");
  rc = rc ? rc : td(b, v);
  return rc ? rc : kz_buf_append_cstr(b, "</tr>\n");
}

/* 1, 2, 5 x 10^k at or above v. */
static double nice_ceil(double v) {
  if (v <= 0) return 1;
  double p = pow(10, floor(log10(v)));
  double m = v / p;
  double n = m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10;
  return n * p;
}

struct line {
  const char *name;
  const char *color;
  const double *y; /* NAN: no value */
};

#define W 760
#define H 260
#define ML 64
#define MR 16
#define MT 28
#define MB 40

static int svg_chart(struct kz_buf *b, const char *id, const char *title, const char *yunit,
                     double bucket_s, size_t n, const struct line *lines, size_t nlines) {
  double ymax = 0;
  for (size_t l = 0; l < nlines; l++)
    for (size_t i = 0; i < n; i++)
      if (!isnan(lines[l].y[i]) && lines[l].y[i] > ymax) ymax = lines[l].y[i];
  ymax = nice_ceil(ymax);
  double tmax = bucket_s * (double)(n ? n : 1);
  double pw = W - ML - MR, ph = H - MT - MB;
  int rc = kz_buf_printf(b,
                         "<svg id=\"%s\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                         "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"11\">\n"
                         "<text x=\"%d\" y=\"16\" font-size=\"13\" font-weight=\"bold\">",
                         id, W, H, W, H, ML);
  rc = rc ? rc : esc(b, title);
  rc = rc ? rc : kz_buf_append_cstr(b, "</text>\n");
  /* Horizontal grid and y labels. */
  for (int g = 0; g <= 4 && !rc; g++) {
    double y = MT + ph - ph * g / 4.0;
    rc = kz_buf_printf(b,
                       "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                       "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                       ML, y, W - MR, y, ML - 6, y + 4, ymax * g / 4.0);
  }
  /* Time ticks: about 8, at a nice step. */
  double step = nice_ceil(tmax / 8);
  for (double t = 0; t <= tmax + 1e-9 && !rc; t += step) {
    double x = ML + pw * t / tmax;
    rc = kz_buf_printf(b,
                       "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#999\"/>"
                       "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n",
                       x, MT + (int)ph, x, MT + (int)ph + 4, x, MT + (int)ph + 16, t);
  }
  rc = rc ? rc
          : kz_buf_printf(b,
                          "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#999\"/>\n"
                          "<text x=\"%.0f\" y=\"%d\" text-anchor=\"middle\">virtual time (s)</text>\n"
                          "<text x=\"14\" y=\"%.0f\" text-anchor=\"middle\" transform=\"rotate(-90 14 %.0f)\">",
                          ML, MT, pw, ph, ML + pw / 2, H - 6, MT + ph / 2, MT + ph / 2);
  rc = rc ? rc : esc(b, yunit);
  rc = rc ? rc : kz_buf_append_cstr(b, "</text>\n");
  for (size_t l = 0; l < nlines && !rc; l++) {
    rc = kz_buf_printf(b, "<path class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" d=\"",
                       lines[l].color);
    bool pen = false;
    for (size_t i = 0; i < n && !rc; i++) {
      double v = lines[l].y[i];
      if (isnan(v)) {
        pen = false;
        continue;
      }
      double x = ML + pw * (bucket_s * ((double)i + 0.5)) / tmax;
      double y = MT + ph - ph * v / ymax;
      rc = kz_buf_printf(b, "%s%.1f %.1f ", pen ? "L" : "M", x, y);
      pen = true;
    }
    /* A single point still shows as a dot. */
    rc = rc ? rc : kz_buf_append_cstr(b, "\" stroke-linecap=\"round\"/>\n");
    double lx = ML + 10 + 110.0 * (double)l;
    rc = rc ? rc
            : kz_buf_printf(b, "<rect x=\"%.0f\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                               "<text x=\"%.0f\" y=\"%d\">",
                            lx + 200, 7, lines[l].color, lx + 214, 16);
    rc = rc ? rc : esc(b, lines[l].name);
    rc = rc ? rc : kz_buf_append_cstr(b, "</text>\n");
  }
  return rc ? rc : kz_buf_append_cstr(b, "</svg>\n");
}

/* Per-second rate of a counter series, per bucket. */
static void rate_of(const struct kz_sim_report_series *s, size_t n, double bucket_s, double *out) {
  for (size_t i = 0; i < n; i++) {
    struct kz_sim_report_bucket bk;
    kz_sim_report_series_bucket(s, i, &bk);
    out[i] = (double)bk.sum / bucket_s;
  }
}

static int pct_of(const struct kz_sim_report_series *s, size_t n, uint32_t pm, double *out) {
  for (size_t i = 0; i < n; i++) {
    uint64_t v;
    int rc = kz_sim_report_series_percentile(s, i, pm, &v);
    if (rc == KZ_ENOMEM) return rc;
    out[i] = rc ? NAN : (double)v;
  }
  return 0;
}

static int charts(const struct kz_sim_report *r, struct kz_buf *b) {
  size_t n = report_series_len(r);
  if (!n) return kz_buf_append_cstr(b, "<p>No time series were collected.</p>\n");
  double bucket_s = (double)report_bucket_ns(r) / 1e9;
  double *y = kz_calloc(6 * n, sizeof *y);
  if (!y) return KZ_ENOMEM;
  int rc = 0;
  char unit[64];
  snprintf(unit, sizeof unit, "calls / s");
  struct line l1[2];
  size_t nl = 0;
  if (r->s_started) {
    rate_of(r->s_started, n, bucket_s, y);
    l1[nl++] = (struct line){"started", "#1f77b4", y};
  }
  if (r->s_succeeded) {
    rate_of(r->s_succeeded, n, bucket_s, y + n);
    l1[nl++] = (struct line){"succeeded", "#2ca02c", y + n};
  }
  if (nl) rc = svg_chart(b, "calls", "Calls per second", unit, bucket_s, n, l1, nl);
  if (!rc && r->s_failed) {
    rate_of(r->s_failed, n, bucket_s, y + 2 * n);
    struct line l2 = {"failed", "#d62728", y + 2 * n};
    rc = svg_chart(b, "failures", "Failed calls per second", "failures / s", bucket_s, n, &l2, 1);
  }
  if (!rc && r->s_response_ms) {
    rc = pct_of(r->s_response_ms, n, 500, y + 3 * n);
    rc = rc ? rc : pct_of(r->s_response_ms, n, 900, y + 4 * n);
    rc = rc ? rc : pct_of(r->s_response_ms, n, 990, y + 5 * n);
    struct line l3[3] = {{"p50", "#1f77b4", y + 3 * n}, {"p90", "#ff7f0e", y + 4 * n}, {"p99", "#d62728", y + 5 * n}};
    rc = rc ? rc : svg_chart(b, "response", "Response time percentiles", "ms", bucket_s, n, l3, 3);
  }
  kz_free(y);
  return rc;
}

int kz_sim_report_html(const struct kz_sim_report *r, struct kz_buf *b) {
  char v[1100];
  int rc = kz_buf_append_cstr(b,
                              "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n"
                              "<meta charset=\"utf-8\"/>\n<title>kz sim: ");
  rc = rc ? rc : esc(b, r->topology ? r->topology : "run");
  rc = rc ? rc
          : kz_buf_append_cstr(b,
                               "</title>\n<style>\nbody{font-family:sans-serif;margin:2em;max-width:60em}\n"
                               "table{border-collapse:collapse;margin:1em 0}\n"
                               "th,td{border:1px solid #ccc;padding:2px 8px;text-align:left}\n"
                               "th{background:#f4f4f4}\n.pass{color:#2ca02c}\n.fail{color:#d62728}\n"
                               "svg{display:block;margin:1em 0}\n</style>\n</head>\n<body>\n<h1>kz sim: ");
  rc = rc ? rc : esc(b, r->topology ? r->topology : "run");
  rc = rc ? rc : kz_buf_printf(b, "</h1>\n<p class=\"%s\"><b>%s</b>: ", r->passed ? "pass" : "fail", r->passed ? "PASS" : "FAIL");
  rc = rc ? rc : esc(b, r->verdict);
  rc = rc ? rc : kz_buf_append_cstr(b, "</p>\n<h2>Outcome</h2>\n<table id=\"outcome\">\n");
#define KV(k, ...) (snprintf(v, sizeof v, __VA_ARGS__), rc = rc ? rc : kv_row(b, k, v))
  KV("seed", "%" PRIu64, r->seed);
  KV("trace hash", "%016" PRIx64, r->trace_hash);
  KV("simulated time", "%" PRIu64 ".%03" PRIu64 " s", r->sim_ns / 1000000000, r->sim_ns / 1000000 % 1000);
  KV("wall time", "%.3f s", r->wall_seconds);
  KV("events", "%" PRIu64, r->net.events);
  KV("calls attempted", "%" PRIu64, r->calls_attempted);
  KV("calls succeeded", "%" PRIu64, r->calls_succeeded);
  KV("calls failed", "%" PRIu64, r->calls_failed);
  KV("datagrams", "%" PRIu64 " sent, %" PRIu64 " delivered, %" PRIu64 " lost, %" PRIu64 " duplicated, %" PRIu64
                  " reordered, %" PRIu64 " partitioned",
     r->net.udp_sent, r->net.udp_delivered, r->net.udp_lost, r->net.udp_duplicated, r->net.udp_reordered,
     r->net.udp_partitioned);
  KV("host crashes / restarts", "%" PRIu64 " / %" PRIu64, r->net.crashes, r->net.restarts);
  if (r->replay[0]) KV("replay", "%s", r->replay);
#undef KV
  rc = rc ? rc : kz_buf_append_cstr(b, "</table>\n<h2>Over time</h2>\n");
  rc = rc ? rc : charts(r, b);
  rc = rc ? rc : kz_buf_append_cstr(b, "<h2>Configuration</h2>\n<table id=\"config\">\n");
  for (size_t i = 0; i < r->nconfig && !rc; i++) rc = kv_row(b, r->config[i].key, r->config[i].value);
  rc = rc ? rc
          : kz_buf_append_cstr(b, "</table>\n<h2>SIPp endpoints</h2>\n<table id=\"endpoints\">\n"
                                  "<tr><th>endpoint</th><th>host</th><th>role</th><th>scenario</th><th>created</th>"
                                  "<th>successful</th><th>failed</th><th>retransmissions</th><th>response codes "
                                  "(sent/received)</th></tr>\n");
  for (size_t i = 0; i < r->nendpoints && !rc; i++) {
    const struct kz_sim_report_endpoint *e = &r->endpoints[i];
    rc = kz_buf_append_cstr(b, "<tr>");
    rc = rc ? rc : td(b, e->name);
    rc = rc ? rc : td(b, e->host);
    rc = rc ? rc : td(b, e->role);
    rc = rc ? rc : td(b, e->scenario);
    rc = rc ? rc
            : kz_buf_printf(b, "<td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>",
                            e->stats.calls_created, e->stats.calls_successful, e->stats.calls_failed,
                            e->stats.retransmissions);
    struct kz_sim_report_code codes[32];
    size_t nc = kz_sim_report_codes(e, codes, 32);
    for (size_t k = 0; k < nc && !rc; k++)
      rc = kz_buf_printf(b, "%s%u: %" PRIu64 "/%" PRIu64, k ? ", " : "", codes[k].code, codes[k].sent,
                         codes[k].received);
    rc = rc ? rc : kz_buf_append_cstr(b, "</td></tr>\n");
  }
  rc = rc ? rc : kz_buf_append_cstr(b, "</table>\n");
  for (size_t i = 0; i < r->nendpoints && !rc; i++) {
    const struct kz_sim_report_endpoint *e = &r->endpoints[i];
    rc = kz_buf_append_cstr(b, "<h3>");
    rc = rc ? rc : esc(b, e->name);
    rc = rc ? rc
            : kz_buf_append_cstr(b, "</h3>\n<table><tr><th>command</th><th>sent</th><th>received</th><th>sent "
                                    "retrans</th><th>received retrans</th><th>timeouts</th><th>unexpected</th></tr>\n");
    for (size_t k = 0; k < e->nmsgs && !rc; k++) {
      const struct kz_sipp_msg_stats *m = &e->msgs[k].st;
      rc = kz_buf_append_cstr(b, "<tr>");
      rc = rc ? rc : td(b, e->msgs[k].label);
      rc = rc ? rc
              : kz_buf_printf(b, "<td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>%" PRIu64
                                 "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td></tr>\n",
                              m->sent, m->recv, m->sent_retrans, m->recv_retrans, m->timeout, m->unexpected);
    }
    rc = rc ? rc : kz_buf_append_cstr(b, "</table>\n");
  }
  rc = rc ? rc
          : kz_buf_append_cstr(b, "<h2>Checks</h2>\n<table id=\"checks\">\n<tr><th>check</th><th>kind</th>"
                                  "<th>evaluations</th><th>true</th><th>holds</th></tr>\n");
  for (size_t i = 0; i < r->nchecks && !rc; i++) {
    const struct kz_sim_report_check *c = &r->checks[i];
    bool ok = c->always ? c->true_count == c->evaluations : c->true_count > 0;
    rc = kz_buf_append_cstr(b, "<tr>");
    rc = rc ? rc : td(b, c->name);
    rc = rc ? rc
            : kz_buf_printf(b, "<td>%s</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td><td class=\"%s\">%s</td></tr>\n",
                            c->always ? "always" : "sometimes", c->evaluations, c->true_count, ok ? "pass" : "fail",
                            ok ? "yes" : "no");
  }
  return rc ? rc : kz_buf_append_cstr(b, "</table>\n</body>\n</html>\n");
}
