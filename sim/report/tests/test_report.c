/* test_report.c — report writer: exact percentiles on known data, summary.json fields, report.html well-formed with its SVG plots, progress lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef KZ_HAVE_JANSSON
#include <jansson.h>
#endif

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sim_report.h"
#include "kz_test.h"

#define SEC UINT64_C(1000000000)

START_TEST(percentiles_known_data) {
  struct kz_sim_report_series *s = NULL;
  ck_assert_int_eq(kz_sim_report_series_new(&s, SEC), 0);
  /* Bucket 0: 1..100 in a scrambled order (37 is coprime with 100). */
  for (uint64_t i = 0; i < 100; i++) ck_assert_int_eq(kz_sim_report_series_add(s, i * (SEC / 100), (i * 37) % 100 + 1), 0);
  /* Bucket 1: one sample.  Bucket 2: none.  Bucket 3: 10, 20, 30, 40. */
  ck_assert_int_eq(kz_sim_report_series_add(s, SEC + 5, 5), 0);
  for (uint64_t v = 40; v >= 10; v -= 10) ck_assert_int_eq(kz_sim_report_series_add(s, 3 * SEC, v), 0);
  ck_assert_uint_eq(kz_sim_report_series_len(s), 4);
  uint64_t p;
  struct { size_t b; uint32_t pm; uint64_t want; } cases[] = {
      {0, 500, 50}, {0, 900, 90}, {0, 990, 99}, {0, 1000, 100}, {0, 0, 1}, {0, 10, 1}, {0, 11, 2},
      {0, 991, 100}, {1, 500, 5}, {1, 990, 5}, {3, 500, 20}, {3, 250, 10}, {3, 251, 20}, {3, 750, 30},
      {3, 751, 40}, {3, 990, 40},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ck_assert_int_eq(kz_sim_report_series_percentile(s, cases[i].b, cases[i].pm, &p), 0);
    ck_assert_msg(p == cases[i].want, "bucket %zu p%u: got %llu want %llu", cases[i].b, cases[i].pm,
                  (unsigned long long)p, (unsigned long long)cases[i].want);
  }
  ck_assert_int_eq(kz_sim_report_series_percentile(s, 2, 500, &p), KZ_ENOENT);
  ck_assert_int_eq(kz_sim_report_series_percentile(s, 9, 500, &p), KZ_ENOENT);
  ck_assert_int_eq(kz_sim_report_series_percentile(s, 0, 1001, &p), KZ_EINVAL);
  /* The whole series: 105 samples. */
  ck_assert_int_eq(kz_sim_report_series_percentile(s, SIZE_MAX, 500, &p), 0);
  ck_assert_uint_eq(p, 48); /* rank 53: 48 of 1..100 plus the extra 5, 10, 20, 30 and 40 are <= 48 */
  struct kz_sim_report_bucket bk;
  kz_sim_report_series_bucket(s, 0, &bk);
  ck_assert_uint_eq(bk.count, 100);
  ck_assert_uint_eq(bk.sum, 5050);
  ck_assert_uint_eq(bk.min, 1);
  ck_assert_uint_eq(bk.max, 100);
  kz_sim_report_series_bucket(s, 2, &bk);
  ck_assert_uint_eq(bk.count, 0);
  kz_sim_report_series_bucket(s, SIZE_MAX, &bk);
  ck_assert_uint_eq(bk.count, 105);
  ck_assert_uint_eq(bk.sum, 5050 + 5 + 100);
  ck_assert_int_eq(kz_sim_report_series_extend(s, 10 * SEC), 0);
  ck_assert_uint_eq(kz_sim_report_series_len(s), 11);
  kz_sim_report_series_free(s);
}
END_TEST

struct fixture {
  struct kz_sim_report r;
  struct kz_sim_report_series *started, *failed, *ok, *rt;
};

static void build(struct fixture *f) {
  kz_sim_report_init(&f->r);
  ck_assert_int_eq(kz_sim_report_series_new(&f->started, SEC), 0);
  ck_assert_int_eq(kz_sim_report_series_new(&f->failed, SEC), 0);
  ck_assert_int_eq(kz_sim_report_series_new(&f->ok, SEC), 0);
  ck_assert_int_eq(kz_sim_report_series_new(&f->rt, SEC), 0);
  for (uint64_t t = 0; t < 10; t++) {
    ck_assert_int_eq(kz_sim_report_series_add(f->started, t * SEC, 10), 0);
    ck_assert_int_eq(kz_sim_report_series_add(f->ok, t * SEC + 1, t == 4 ? 7 : 10), 0);
    ck_assert_int_eq(kz_sim_report_series_add(f->failed, t * SEC + 2, t == 4 ? 3 : 0), 0);
    for (uint64_t k = 0; k < 10; k++) ck_assert_int_eq(kz_sim_report_series_add(f->rt, t * SEC + k, 40 + k + t), 0);
  }
  struct kz_sim_report *r = &f->r;
  r->topology = "test <&> topo";
  r->seed = 42;
  r->trace_hash = UINT64_C(0x0123456789abcdef);
  r->sim_ns = 10 * SEC + 5;
  r->wall_seconds = 0.25;
  r->net.events = 1234;
  r->net.udp_sent = 99;
  r->calls_attempted = 100;
  r->calls_succeeded = 97;
  r->calls_failed = 3;
  r->passed = false;
  snprintf(r->verdict, sizeof r->verdict, "3 of 100 calls failed \"quoted\"");
  snprintf(r->replay, sizeof r->replay, "kz sim --topology t.yaml --seed 42");
  ck_assert_int_eq(kz_sim_report_config(r, "topology", "%s", "t.yaml"), 0);
  ck_assert_int_eq(kz_sim_report_config(r, "rate", "%d cps", 10), 0);
  struct kz_sim_report_endpoint e;
  memset(&e, 0, sizeof e);
  snprintf(e.name, sizeof e.name, "sipp-uac");
  snprintf(e.host, sizeof e.host, "uac");
  snprintf(e.role, sizeof e.role, "uac");
  snprintf(e.scenario, sizeof e.scenario, "uac.xml");
  e.stats.calls_created = 100;
  e.stats.calls_successful = 97;
  e.stats.calls_failed = 3;
  e.stats.failed[KZ_SIPP_FAIL_MAX_RETRANS] = 3;
  e.stats.nrtd = 1;
  snprintf(e.stats.rtd_name[0], sizeof e.stats.rtd_name[0], "1");
  e.stats.rtd[0].nbounds = 2;
  e.stats.rtd[0].bound_ms[0] = 10;
  e.stats.rtd[0].bound_ms[1] = 100;
  e.stats.rtd[0].count[1] = 97;
  e.stats.rtd[0].n = 97;
  static const char *labels[] = {">INVITE", "<100?", "<180?", "<200", ">ACK", "pause", ">BYE", "<200"};
  e.nmsgs = 8;
  e.msgs = kz_calloc(e.nmsgs, sizeof *e.msgs);
  ck_assert_ptr_nonnull(e.msgs);
  for (size_t i = 0; i < e.nmsgs; i++) {
    snprintf(e.msgs[i].label, sizeof e.msgs[i].label, "%s", labels[i]);
    if (labels[i][0] == '>') e.msgs[i].st.sent = 100;
    if (labels[i][0] == '<') e.msgs[i].st.recv = 97;
  }
  e.msgs[3].st.recv_retrans = 2;
  ck_assert_int_eq(kz_sim_report_add_endpoint(r, &e), 0);
  struct kz_sim_report_check c = {.always = true, .evaluations = 10, .true_count = 9, .first_false_ns = 3 * SEC};
  snprintf(c.name, sizeof c.name, "every call ended");
  ck_assert_int_eq(kz_sim_report_add_check(r, &c), 0);
  struct kz_sim_report_check c2 = {.always = false, .evaluations = 5, .true_count = 0, .first_false_ns = UINT64_MAX};
  snprintf(c2.name, sizeof c2.name, "retransmission seen");
  ck_assert_int_eq(kz_sim_report_add_check(r, &c2), 0);
  r->s_started = f->started;
  r->s_failed = f->failed;
  r->s_succeeded = f->ok;
  r->s_response_ms = f->rt;
}

static void unbuild(struct fixture *f) {
  kz_sim_report_free(&f->r);
  kz_sim_report_series_free(f->started);
  kz_sim_report_series_free(f->failed);
  kz_sim_report_series_free(f->ok);
  kz_sim_report_series_free(f->rt);
}

START_TEST(response_codes) {
  struct fixture f;
  build(&f);
  struct kz_sim_report_code codes[4];
  size_t n = kz_sim_report_codes(&f.r.endpoints[0], codes, 4);
  ck_assert_uint_eq(n, 3);
  ck_assert_uint_eq(codes[0].code, 100);
  ck_assert_uint_eq(codes[0].received, 97);
  ck_assert_uint_eq(codes[1].code, 180);
  ck_assert_uint_eq(codes[2].code, 200);
  ck_assert_uint_eq(codes[2].received, 97 + 2 + 97);
  ck_assert_uint_eq(codes[2].sent, 0);
  unbuild(&f);
}
END_TEST

START_TEST(json_valid_with_fields) {
  struct fixture f;
  build(&f);
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_sim_report_json(&f.r, &b), 0);
#ifdef KZ_HAVE_JANSSON
  json_error_t jerr;
  json_t *j = json_loadb((const char *)b.data, b.len, 0, &jerr);
  ck_assert_msg(j != NULL, "summary.json invalid at line %d: %s\n%s", jerr.line, jerr.text, (char *)b.data);
  ck_assert_int_eq(json_integer_value(json_object_get(j, "seed")), 42);
  ck_assert_str_eq(json_string_value(json_object_get(j, "trace_hash")), "0123456789abcdef");
  ck_assert(json_real_value(json_object_get(j, "sim_seconds")) > 10.0);
  ck_assert(json_is_real(json_object_get(j, "wall_seconds")));
  ck_assert_int_eq(json_integer_value(json_object_get(j, "events")), 1234);
  json_t *calls = json_object_get(j, "calls");
  ck_assert_int_eq(json_integer_value(json_object_get(calls, "attempted")), 100);
  ck_assert_int_eq(json_integer_value(json_object_get(calls, "succeeded")), 97);
  ck_assert_int_eq(json_integer_value(json_object_get(calls, "failed")), 3);
  ck_assert(json_is_false(json_object_get(j, "passed")));
  ck_assert_str_eq(json_string_value(json_object_get(j, "verdict")), "3 of 100 calls failed \"quoted\"");
  ck_assert_str_eq(json_string_value(json_object_get(j, "topology")), "test <&> topo");
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "config"), "rate")), "10 cps");
  json_t *ep = json_array_get(json_object_get(j, "endpoints"), 0);
  ck_assert_str_eq(json_string_value(json_object_get(ep, "role")), "uac");
  ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(ep, "failed"), "max_retrans")), 3);
  json_t *c200 = json_object_get(json_object_get(ep, "response_codes"), "200");
  ck_assert_int_eq(json_integer_value(json_object_get(c200, "received")), 196);
  ck_assert_uint_eq(json_array_size(json_object_get(ep, "commands")), 8);
  ck_assert_uint_eq(json_array_size(json_object_get(ep, "response_times")), 1);
  json_t *checks = json_object_get(j, "checks");
  ck_assert_uint_eq(json_array_size(checks), 2);
  ck_assert(json_is_false(json_object_get(json_array_get(checks, 0), "ok")));
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(checks, 1), "kind")), "sometimes");
  json_t *series = json_object_get(j, "series");
  ck_assert_uint_eq(json_array_size(json_object_get(series, "calls_started")), 10);
  ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(series, "calls_failed"), 4)), 3);
  /* Bucket t holds 40+t .. 49+t: nearest-rank p50 is the 5th: 44+t. */
  ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(series, "response_ms_p50"), 2)), 46);
  ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(series, "response_ms_p99"), 2)), 51);
  json_decref(j);
#else
  ck_assert_ptr_nonnull(strstr((char *)b.data, "\"trace_hash\": \"0123456789abcdef\""));
#endif
  kz_buf_free(&b);
  unbuild(&f);
}
END_TEST

/* A small well-formedness check: tags nest and close, attributes are
 * quoted, '&' starts an entity. */
static const char *check_xml(const char *s) {
  const char *stack[64];
  size_t lens[64];
  size_t depth = 0;
  for (const char *p = s; *p; p++) {
    if (*p == '&') {
      if (strncmp(p, "&lt;", 4) && strncmp(p, "&gt;", 4) && strncmp(p, "&amp;", 5) && strncmp(p, "&quot;", 6))
        return "bare &";
      continue;
    }
    if (*p != '<') continue;
    if (!strncmp(p, "<!DOCTYPE", 9)) {
      p = strchr(p, '>');
      if (!p) return "unclosed doctype";
      continue;
    }
    bool closing = p[1] == '/';
    const char *name = p + 1 + closing;
    size_t n = strcspn(name, " \t\n/>");
    const char *end = name + n;
    bool in_quote = false;
    while (*end && (in_quote || *end != '>')) {
      if (*end == '"') in_quote = !in_quote;
      if (!in_quote && *end == '<') return "'<' inside a tag";
      end++;
    }
    if (!*end) return "unclosed tag";
    bool self = end[-1] == '/';
    if (closing) {
      if (!depth || lens[depth - 1] != n || strncmp(stack[depth - 1], name, n)) return "mismatched close tag";
      depth--;
    } else if (!self) {
      if (depth == 64) return "too deep";
      stack[depth] = name;
      lens[depth++] = n;
    }
    p = end;
  }
  return depth ? "unclosed element" : NULL;
}

START_TEST(html_well_formed_with_svgs) {
  struct fixture f;
  build(&f);
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_sim_report_html(&f.r, &b), 0);
  const char *h = (const char *)b.data;
  const char *bad = check_xml(h);
  ck_assert_msg(bad == NULL, "report.html: %s", bad);
  size_t svgs = 0;
  for (const char *p = h; (p = strstr(p, "<svg ")); p++) svgs++;
  ck_assert_uint_eq(svgs, 3);
  ck_assert_ptr_nonnull(strstr(h, "<svg id=\"calls\""));
  ck_assert_ptr_nonnull(strstr(h, "<svg id=\"failures\""));
  ck_assert_ptr_nonnull(strstr(h, "<svg id=\"response\""));
  ck_assert_ptr_nonnull(strstr(h, ">p99</text>"));
  ck_assert_ptr_nonnull(strstr(h, "test &lt;&amp;&gt; topo"));
  ck_assert_ptr_nonnull(strstr(h, "<table id=\"config\">"));
  ck_assert_ptr_nonnull(strstr(h, "0123456789abcdef"));
  ck_assert_ptr_null(strstr(h, "http-equiv")); /* nothing external */
  ck_assert_ptr_null(strstr(h, "src="));
  /* Every series has a path with 10 points. */
  const char *path = strstr(h, "class=\"series\"");
  ck_assert_ptr_nonnull(path);
  const char *d = strstr(path, "d=\"");
  size_t pts = 0;
  for (const char *q = d; *q && *q != '/'; q++) pts += *q == 'M' || *q == 'L';
  ck_assert_uint_eq(pts, 10);
  /* xmllint, when installed, must agree. */
  if (system("command -v xmllint >/dev/null 2>&1") == 0) {
    char tmpl[] = "/tmp/kz_report_XXXXXX";
    int fd = mkstemp(tmpl);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, b.data, b.len), (ssize_t)b.len);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "xmllint --noout %s", tmpl);
    int rc = system(cmd);
    unlink(tmpl);
    ck_assert_msg(rc == 0, "xmllint rejected report.html");
  }
  kz_buf_free(&b);
  unbuild(&f);
}
END_TEST

START_TEST(write_dir_and_table) {
  struct fixture f;
  build(&f);
  char dir[] = "/tmp/kz_report_dir_XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char out[512], err[256];
  snprintf(out, sizeof out, "%s/a/b", dir);
  ck_assert_int_eq(kz_sim_report_write_dir(&f.r, out, err, sizeof err), 0);
  char p[600];
  snprintf(p, sizeof p, "%s/summary.json", out);
  ck_assert_int_eq(access(p, R_OK), 0);
  unlink(p);
  snprintf(p, sizeof p, "%s/report.html", out);
  ck_assert_int_eq(access(p, R_OK), 0);
  unlink(p);
  rmdir(out);
  snprintf(p, sizeof p, "%s/a", dir);
  rmdir(p);
  rmdir(dir);
  ck_assert_int_eq(kz_sim_report_write_dir(&f.r, "/proc/kz_no/x", err, sizeof err), KZ_EIO);
  ck_assert_ptr_nonnull(strstr(err, "cannot create /proc/kz_no/x"));
  /* The terminal table names the failure and the replay command. */
  char *txt = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&txt, &len);
  kz_sim_report_print(&f.r, m);
  fclose(m);
  ck_assert_ptr_nonnull(strstr(txt, "FAIL: 3 of 100 calls failed"));
  ck_assert_ptr_nonnull(strstr(txt, "kz sim --topology t.yaml --seed 42"));
  ck_assert_ptr_nonnull(strstr(txt, "p50 49 ms"));
  ck_assert_ptr_nonnull(strstr(txt, "retransmission seen"));
  free(txt);
  unbuild(&f);
}
END_TEST

START_TEST(progress_lines) {
  char *txt = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&txt, &len);
  struct kz_sim_progress pr;
  kz_sim_progress_init(&pr, m, 10 * SEC, 0, 25);
  for (uint64_t t = 0; t <= 8 * SEC; t += SEC / 10) kz_sim_progress_update(&pr, t, t / 1000, t / SEC);
  kz_sim_progress_finish(&pr, 8 * SEC, 8000000, 8);
  fclose(m);
  size_t lines = 0;
  for (char *p = txt; *p; p++) lines += *p == '\n';
  ck_assert_msg(lines == 4, "%s", txt); /* 25%, 50%, 75%, and the finish */
  ck_assert_ptr_nonnull(strstr(txt, " 25%  2.500 / 10.000 s simulated"));
  ck_assert_ptr_nonnull(strstr(txt, "[####################] 100%  8.000 / 8.000 s simulated  8000000 events  8 calls\n"));
  free(txt);
  /* A terminal gets one redrawn line. */
  txt = NULL;
  m = open_memstream(&txt, &len);
  kz_sim_progress_init(&pr, m, 10 * SEC, 1, 0);
  kz_sim_progress_update(&pr, SEC, 1, 1);
  kz_sim_progress_update(&pr, 2 * SEC, 2, 2); /* too soon: not drawn */
  kz_sim_progress_finish(&pr, 10 * SEC, 3, 3);
  fclose(m);
  ck_assert_ptr_eq(strchr(txt, '\n'), txt + strlen(txt) - 1);
  ck_assert_ptr_nonnull(strstr(txt, "\r["));
  ck_assert_ptr_null(strstr(txt, " 20%"));
  free(txt);
}
END_TEST

int main(void) {
  Suite *s = suite_create("sim_report");
  TCase *tc = kz_tcase(s, "series", 30);
  tcase_add_test(tc, percentiles_known_data);
  tc = kz_tcase(s, "outputs", 30);
  tcase_add_test(tc, response_codes);
  tcase_add_test(tc, json_valid_with_fields);
  tcase_add_test(tc, html_well_formed_with_svgs);
  tcase_add_test(tc, write_dir_and_table);
  tcase_add_test(tc, progress_lines);
  return kz_run_suite(s);
}
