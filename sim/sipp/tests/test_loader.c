/* test_loader.c — the SIPp scenario loader on every corpus file, its leniency, its refusals and the digest credentials. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sipp.h"
#include "kz_test.h"

/* What a harness passes with -key (SIPssert defines [domain] and [caller]). */
static const struct kz_sipp_key harness_keys[] = {{"domain", "example.com"}, {"caller", "alice"}};
static const struct kz_sipp_load_opts harness = {harness_keys, 2};

static int load_text(const char *xml, struct kz_sipp_scenario **out, struct kz_sipp_load_err *err) {
  return kz_sipp_scenario_load(out, "t.xml", xml, strlen(xml), NULL, err);
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

START_TEST(corpus_table) {
  char dir[1024];
  kz_test_shared_path(dir, sizeof dir, "corpora/sipp");
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "corpus %s absent: skipped\n", dir);
    return;
  }
  char *names[256];
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir(d)) && n < 256) {
    size_t l = strlen(de->d_name);
    if (l > 4 && strcmp(de->d_name + l - 4, ".xml") == 0) names[n++] = strdup(de->d_name);
  }
  closedir(d);
  qsort(names, n, sizeof names[0], cmp_names);
  ck_assert_uint_gt(n, 40);
  static const char *const must_load[] = {
      "sipp__uac.xml", "sipp__uas.xml", "sipp__branchc.xml", "sipp__branchs.xml",
      "sipp__regexp.xml", "lundgrel__sipp_uas_486.xml",
      "opensips__auth__01.password-db-www__sipp-register.xml", "pjsip__uas-auth.xml",
      "sipp__uc360_register_challenge.xml", "opensips__auth__03.password-db-proxy__sipp-call.xml"};
  size_t loaded = 0, unsup = 0;
  printf("%-62s %-6s %s\n", "file", "result", "detail");
  for (size_t i = 0; i < n; i++) {
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    size_t len;
    uint8_t *data = kz_test_read_file(path, &len);
    ck_assert_ptr_nonnull(data);
    struct kz_sipp_scenario *sc = NULL;
    struct kz_sipp_load_err err;
    int rc = kz_sipp_scenario_load(&sc, names[i], data, len, &harness, &err);
    free(data);
    if (rc == 0) {
      struct kz_buf flow;
      kz_buf_init(&flow);
      ck_assert_int_eq(kz_sipp_scenario_describe(sc, &flow), 0);
      printf("%-62s %-6s %s%s [%zu warnings]\n", names[i], "ok",
             kz_sipp_scenario_role(sc) == KZ_SIPP_UAC ? "UAC " : "UAS ", (char *)flow.data,
             kz_sipp_scenario_warning_count(sc));
      kz_buf_free(&flow);
      kz_sipp_scenario_free(sc);
      loaded++;
    } else {
      printf("%-62s %-6s %s\n", names[i], rc == KZ_ENOTSUP ? "UNSUP" : kz_err_name(rc), err.text);
      /* Only refusals that name what is missing are acceptable. */
      ck_assert_int_eq(rc, KZ_ENOTSUP);
      ck_assert(err.unsupported);
      ck_assert_ptr_nonnull(strstr(err.text, "unsupported: "));
      ck_assert_ptr_nonnull(strstr(err.text, names[i]));
      unsup++;
    }
    for (size_t k = 0; k < sizeof must_load / sizeof must_load[0]; k++)
      if (strcmp(must_load[k], names[i]) == 0 && rc != 0) ck_abort_msg("%s must load: %s", names[i], err.text);
  }
  printf("%zu files: %zu loaded, %zu refused as unsupported\n", n, loaded, unsup);
  for (size_t i = 0; i < n; i++) free(names[i]);
}
END_TEST

START_TEST(not_well_formed_loads_like_sipp) {
  /* Raw '<' and '>' in attribute values, "--" in a comment, an unclosed
   * element closed by its parent. */
  const char *xml =
      "<?xml version=\"1.0\"?>\n"
      "<!-- a -- comment -->\n"
      "<scenario name=\"x\">\n"
      "  <recv request=\"INVITE\">\n"
      "    <action><ereg regexp=\"<sip:([^;@]*)>\" search_in=\"hdr\" header=\"Contact:\" assign_to=\"d,c\"/></action>\n"
      "  </recv>\n"
      "  <nop display=\">>>> media <<<<\"/>\n"
      "  <send><![CDATA[\n  SIP/2.0 200 OK\n  [last_Via:]\n  Content-Length: 0\n]]></send>\n"
      "  <Reference variables=\"d\">\n"
      "</scenario>\n";
  struct kz_sipp_scenario *sc = NULL;
  struct kz_sipp_load_err err;
  ck_assert_int_eq(load_text(xml, &sc, &err), 0);
  ck_assert_str_eq(kz_sipp_scenario_name(sc), "x");
  ck_assert_uint_eq(kz_sipp_scenario_len(sc), 3);
  ck_assert_int_eq(kz_sipp_scenario_role(sc), KZ_SIPP_UAS);
  ck_assert_uint_ge(kz_sipp_scenario_warning_count(sc), 1);
  bool saw = false;
  for (size_t i = 0; i < kz_sipp_scenario_warning_count(sc); i++)
    if (strstr(kz_sipp_scenario_warning(sc, i), "<Reference>")) saw = true;
  ck_assert(saw);
  struct kz_buf flow;
  kz_buf_init(&flow);
  kz_sipp_scenario_describe(sc, &flow);
  ck_assert_str_eq((char *)flow.data, "<INVITE nop >200");
  kz_buf_free(&flow);
  kz_sipp_scenario_free(sc);
}
END_TEST

START_TEST(entities_and_labels) {
  const char *xml =
      "<?xml version=\"1.0\"?><scenario name=\"a &amp; b &lt;&gt; &quot;&apos;\">"
      "<send retrans=\"500\"><![CDATA[INVITE sip:x SIP/2.0\nCall-ID: [call_id]\n]]></send>"
      "<recv response=\"100\" optional=\"true\"/>"
      "<recv response=\"200\" next=\"end\"/>"
      "<pause milliseconds=\"10\"/>"
      "<label id=\"end\"/>"
      "<send><![CDATA[ACK sip:x SIP/2.0\n]]></send>"
      "</scenario>";
  struct kz_sipp_scenario *sc = NULL;
  struct kz_sipp_load_err err;
  ck_assert_int_eq(load_text(xml, &sc, &err), 0);
  ck_assert_str_eq(kz_sipp_scenario_name(sc), "a & b <> \"'");
  struct kz_buf flow;
  kz_buf_init(&flow);
  kz_sipp_scenario_describe(sc, &flow);
  ck_assert_str_eq((char *)flow.data, ">INVITE <100? <200 pause L:end >ACK");
  kz_buf_free(&flow);
  kz_sipp_scenario_free(sc);
}
END_TEST

static void expect_error(const char *body, int want_rc, const char *want_text, int want_line) {
  char xml[2048];
  snprintf(xml, sizeof xml, "<?xml version=\"1.0\"?>\n<scenario>\n%s\n</scenario>\n", body);
  struct kz_sipp_scenario *sc = NULL;
  struct kz_sipp_load_err err;
  int rc = load_text(xml, &sc, &err);
  ck_assert_msg(rc == want_rc, "%s: rc %d (%s)", body, rc, err.text);
  ck_assert_ptr_null(sc);
  ck_assert_msg(strstr(err.text, want_text), "'%s' not in '%s'", want_text, err.text);
  if (want_line) ck_assert_int_eq(err.line, want_line);
  ck_assert_msg(strncmp(err.text, "t.xml:", 6) == 0, "%s", err.text);
}

START_TEST(refusals_name_the_feature) {
  expect_error("<sendCmd><![CDATA[x]]></sendCmd>", KZ_ENOTSUP, "unsupported: <sendCmd> (3PCC) at line 3", 3);
  expect_error("<recvCmd/>", KZ_ENOTSUP, "<recvCmd> (3PCC)", 3);
  expect_error("<nop><action><exec play_pcap_audio=\"a.pcap\"/></action></nop>", KZ_ENOTSUP,
               "unsupported: <exec play_pcap_audio=...> (media)", 3);
  expect_error("<nop><action><exec command=\"ls\"/></action></nop>", KZ_ENOTSUP, "<exec command=...>", 3);
  expect_error("<nop><action><lookup assign_to=\"a\" file=\"f\" key=\"k\"/></action></nop>", KZ_ENOTSUP,
               "action <lookup>", 3);
  expect_error("\n<send><![CDATA[\nINVITE sip:x SIP/2.0\nX: [foo_bar]\n]]></send>", KZ_ENOTSUP,
               "unsupported: keyword [foo_bar] at line 6", 6);
  expect_error("<send><![CDATA[INVITE sip:x SIP/2.0\nX: [field0 line=2]\n]]></send>", KZ_ENOTSUP,
               "[field0 line=2]", 0);
  expect_error("<pause distribution=\"normal\" mean=\"1\" stdev=\"1\"/>", KZ_ENOTSUP, "mean", 3);
  expect_error("<pause distribution=\"lognormal\"/>", KZ_ENOTSUP, "distribution=\"lognormal\"", 3);
  expect_error("<send start_txn=\"a\"><![CDATA[INVITE sip:x SIP/2.0\n]]></send>", KZ_ENOTSUP, "start_txn", 3);
  expect_error("<init><nop/></init>", KZ_ENOTSUP, "<init>", 3);
  /* Malformed input is EPROTO with the line. */
  expect_error("<recv response=\"abc\"/>", KZ_EPROTO, "not a response code", 3);
  expect_error("<recv response=\"200\" next=\"nowhere\"/>", KZ_EPROTO, "label 'nowhere' is not defined", 3);
  expect_error("<recv response=\"200\" optional=\"true\"/>\n<send><![CDATA[ACK sip:x SIP/2.0\n]]></send>",
               KZ_EPROTO, "without a mandatory message", 4);
  expect_error("<send><![CDATA[   ]]></send>", KZ_EPROTO, "empty CDATA", 3);
  expect_error("<recv request=\"A\"><action><ereg regexp=\"(\" assign_to=\"x\"/></action></recv>",
               KZ_EPROTO, "does not compile", 3);
  expect_error("<bogus/>", KZ_EPROTO, "unknown element <bogus>", 3);
  expect_error("<recv request=\"A\" x=/>", KZ_EPROTO, "not quoted", 3);
  expect_error("<!-- never closed", KZ_EPROTO, "unterminated comment", 3);
}
END_TEST

START_TEST(garbage_never_crashes) {
  /* Every prefix of a real scenario either loads or fails cleanly. */
  char path[1024];
  kz_test_shared_path(path, sizeof path, "corpora/sipp/sipp__branchs.xml");
  size_t len;
  uint8_t *data = kz_test_read_file(path, &len);
  if (!data) return;
  for (size_t cut = 0; cut <= len; cut += 7) {
    struct kz_sipp_scenario *sc = NULL;
    struct kz_sipp_load_err err;
    int rc = kz_sipp_scenario_load(&sc, "cut", data, cut, NULL, &err);
    ck_assert(rc == 0 || rc == KZ_EPROTO || rc == KZ_ENOTSUP);
    if (rc == 0) kz_sipp_scenario_free(sc);
    else ck_assert_uint_gt(strlen(err.text), 0);
  }
  free(data);
}
END_TEST

START_TEST(alloc_failures) {
  char path[1024];
  kz_test_shared_path(path, sizeof path, "corpora/sipp/sipp__regexp.xml");
  size_t len;
  uint8_t *data = kz_test_read_file(path, &len);
  if (!data) return;
  for (int64_t k = 0;; k++) {
    struct kz_sipp_scenario *sc = NULL;
    kz_mem_fail_after(k);
    int rc = kz_sipp_scenario_load(&sc, "r", data, len, NULL, NULL);
    kz_mem_fail_after(-1);
    if (rc == 0) {
      kz_sipp_scenario_free(sc);
      break;
    }
    ck_assert_int_eq(rc, KZ_ENOMEM);
  }
  free(data);
}
END_TEST

START_TEST(digest_rfc2617_vector) {
  /* RFC 2617 section 3.5, with the method and uri given as is. */
  struct kz_buf b;
  kz_buf_init(&b);
  int rc = kz_sipp_auth_credentials(
      &b,
      kz_slice_cstr("Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", "
                    "nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""),
      kz_slice_cstr("Mufasa"), kz_slice_cstr("Circle Of Life"), kz_slice_cstr("GET"),
      kz_slice_cstr("/dir/index.html"), 1, kz_slice_cstr("0a4f113b"));
  ck_assert_int_eq(rc, 0);
  ck_assert_ptr_nonnull(strstr((char *)b.data, "response=\"6629fae49393a05397450978507c4ef1\""));
  ck_assert_ptr_nonnull(strstr((char *)b.data, "nc=00000001"));
  ck_assert_ptr_nonnull(strstr((char *)b.data, "opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
  kz_buf_reset(&b);
  /* pjsip's uas-auth challenge has no nonce: SIPp answers with an empty one. */
  rc = kz_sipp_auth_credentials(&b, kz_slice_cstr("digest realm=\"test\",stale=true"),
                                kz_slice_cstr("u"), kz_slice_cstr("p"), kz_slice_cstr("REGISTER"),
                                kz_slice_cstr("sip:10.0.0.2:5060"), 1, kz_slice_cstr("00"));
  ck_assert_int_eq(rc, 0);
  ck_assert_ptr_nonnull(strstr((char *)b.data, "nonce=\"\""));
  ck_assert_ptr_null(strstr((char *)b.data, "qop"));
  kz_buf_reset(&b);
  ck_assert_int_eq(kz_sipp_auth_credentials(&b, kz_slice_cstr("Basic realm=\"x\""), kz_slice_cstr("u"),
                                            kz_slice_cstr("p"), kz_slice_cstr("R"), kz_slice_cstr("sip:x"),
                                            1, kz_slice_cstr("00")),
                   KZ_ENOTSUP);
  kz_buf_free(&b);
}
END_TEST

int main(void) {
  Suite *s = suite_create("sipp_loader");
  TCase *tc = kz_tcase(s, "loader", 30);
  tcase_add_test(tc, corpus_table);
  tcase_add_test(tc, not_well_formed_loads_like_sipp);
  tcase_add_test(tc, entities_and_labels);
  tcase_add_test(tc, refusals_name_the_feature);
  tcase_add_test(tc, garbage_never_crashes);
  tcase_add_test(tc, alloc_failures);
  tcase_add_test(tc, digest_rfc2617_vector);
  return kz_run_suite(s);
}
