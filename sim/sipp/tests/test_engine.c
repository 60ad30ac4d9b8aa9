/* test_engine.c — SIPp UAC and UAS engines against each other on two simulated hosts: calls, branching, failures, auth, retransmissions, determinism. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/error.h"
#include "kz/sim.h"
#include "kz/sipp.h"
#include "kz/sipp_sim.h"
#include "kz_test.h"

#define SEC UINT64_C(1000000000)

static const struct kz_sipp_key harness_keys[] = {{"domain", "example.com"}};
static const struct kz_sipp_load_opts harness = {harness_keys, 1};

static struct kz_sipp_scenario *load_corpus(const char *name) {
  char path[1024];
  kz_test_shared_path(path, sizeof path, name);
  size_t len;
  uint8_t *data = kz_test_read_file(path, &len);
  if (!data) return NULL;
  struct kz_sipp_scenario *sc = NULL;
  struct kz_sipp_load_err err;
  int rc = kz_sipp_scenario_load(&sc, name, data, len, &harness, &err);
  free(data);
  ck_assert_msg(rc == 0, "%s: %s", name, err.text);
  return sc;
}

static struct kz_sipp_scenario *load_text(const char *xml) {
  struct kz_sipp_scenario *sc = NULL;
  struct kz_sipp_load_err err;
  int rc = kz_sipp_scenario_load(&sc, "inline.xml", xml, strlen(xml), NULL, &err);
  ck_assert_msg(rc == 0, "%s", err.text);
  return sc;
}

struct result {
  struct kz_sipp_stats uac, uas;
  struct kz_sipp_msg_stats uac_ms[32], uas_ms[32];
  char screen[8192];
  uint64_t trace_hash;
};

struct pair {
  const struct kz_sipp_scenario *uac, *uas;
  uint64_t seed;
  uint32_t calls, rate;
  uint64_t run_ns;
  const char *service, *auth_user, *auth_pass;
  const char *inf; /* UAC's injection CSV */
};

static void run_pair(const struct pair *p, struct result *r) {
  memset(r, 0, sizeof *r);
  struct kz_sim *sim = NULL;
  ck_assert_int_eq(kz_sim_new(&sim, p->seed), 0);
  struct kz_addr a_uac = kz_addr_v4(0x0a000001, 0), a_uas = kz_addr_v4(0x0a000002, 0);
  struct kz_sim_host *hc = NULL, *hs = NULL;
  ck_assert_int_eq(kz_sim_host_add(sim, "uac", &a_uac, &hc), 0);
  ck_assert_int_eq(kz_sim_host_add(sim, "uas", &a_uas, &hs), 0);
  struct kz_sipp_cfg scfg = {
      .scenario = p->uas,
      .local = kz_addr_v4(0x0a000002, 5060),
      .max_calls = p->calls,
      .service = p->service,
      .auth_user = p->auth_user,
      .auth_pass = p->auth_pass,
  };
  struct kz_sipp_cfg ccfg = {
      .scenario = p->uac,
      .local = kz_addr_v4(0x0a000001, 5060),
      .remote = kz_addr_v4(0x0a000002, 5060),
      .rate = p->rate,
      .max_calls = p->calls,
      .service = p->service,
      .auth_user = p->auth_user,
      .auth_pass = p->auth_pass,
      .inf = (const uint8_t *)p->inf,
      .inf_len = p->inf ? strlen(p->inf) : 0,
  };
  struct kz_sim_proc *ps = NULL, *pc = NULL;
  ck_assert_int_eq(kz_sim_proc_add(hs, "sipp-uas", &kz_sipp_sim_app, &scfg, &ps), 0);
  ck_assert_int_eq(kz_sim_proc_add(hc, "sipp-uac", &kz_sipp_sim_app, &ccfg, &pc), 0);
  ck_assert_int_eq(kz_sim_run_until(sim, p->run_ns), 0);
  const struct kz_sipp *c = kz_sim_proc_instance(pc), *s = kz_sim_proc_instance(ps);
  ck_assert_ptr_nonnull(c);
  ck_assert_ptr_nonnull(s);
  r->uac = *kz_sipp_stats(c);
  r->uas = *kz_sipp_stats(s);
  size_t n;
  const struct kz_sipp_msg_stats *m = kz_sipp_msg_stats(c, &n);
  memcpy(r->uac_ms, m, (n < 32 ? n : 32) * sizeof *m);
  m = kz_sipp_msg_stats(s, &n);
  memcpy(r->uas_ms, m, (n < 32 ? n : 32) * sizeof *m);
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_sipp_print_stats(c, &b), 0);
  ck_assert_int_eq(kz_sipp_print_stats(s, &b), 0);
  snprintf(r->screen, sizeof r->screen, "%s", (char *)b.data);
  kz_buf_free(&b);
  r->trace_hash = kz_sim_trace_hash(sim);
  kz_sim_free(sim);
}

START_TEST(uac_vs_uas_100_calls) {
  struct kz_sipp_scenario *uac = load_corpus("corpora/sipp/sipp__uac.xml");
  struct kz_sipp_scenario *uas = load_corpus("corpora/sipp/sipp__uas.xml");
  if (!uac || !uas) {
    kz_sipp_scenario_free(uac);
    kz_sipp_scenario_free(uas);
    return;
  }
  struct pair p = {.uac = uac, .uas = uas, .seed = 7, .calls = 100, .rate = 10, .run_ns = 20 * SEC};
  struct result r;
  run_pair(&p, &r);
  printf("%s\n", r.screen);
  ck_assert_uint_eq(r.uac.calls_created, 100);
  ck_assert_uint_eq(r.uac.calls_successful, 100);
  ck_assert_uint_eq(r.uac.calls_failed, 0);
  ck_assert_uint_eq(r.uas.calls_created, 100);
  ck_assert_uint_eq(r.uas.calls_successful, 100);
  ck_assert_uint_eq(r.uac.retransmissions, 0);
  ck_assert_uint_eq(r.uac_ms[0].sent, 100); /* INVITE */
  ck_assert_uint_eq(r.uac_ms[2].recv, 100); /* 180 */
  ck_assert_uint_eq(r.uac_ms[4].recv, 100); /* 200 */
  ck_assert_uint_eq(r.uac_ms[7].sent, 100); /* BYE */
  ck_assert_uint_eq(r.uas_ms[3].recv, 100); /* ACK */
  ck_assert_uint_eq(r.uas_ms[4].recv, 100); /* BYE */
  /* 1 ms each way: the 200 comes 2 ms after the INVITE. */
  ck_assert_uint_eq(r.uac.nrtd, 1);
  ck_assert_uint_eq(r.uac.rtd[0].n, 100);
  ck_assert_uint_eq(r.uac.rtd[0].count[0], 100);
  ck_assert_ptr_nonnull(strstr(r.screen, "INVITE ---------->"));
  ck_assert_ptr_nonnull(strstr(r.screen, "successful 100"));

  /* Same seed: same stats and the same trace. */
  struct result again;
  run_pair(&p, &again);
  ck_assert_uint_eq(again.trace_hash, r.trace_hash);
  ck_assert_str_eq(again.screen, r.screen);
  ck_assert_int_eq(memcmp(&again.uac, &r.uac, sizeof r.uac), 0);
  kz_sipp_scenario_free(uac);
  kz_sipp_scenario_free(uas);
}
END_TEST

START_TEST(branchc_vs_branchs) {
  struct kz_sipp_scenario *uac = load_corpus("corpora/sipp/sipp__branchc.xml");
  struct kz_sipp_scenario *uas = load_corpus("corpora/sipp/sipp__branchs.xml");
  if (!uac || !uas) {
    kz_sipp_scenario_free(uac);
    kz_sipp_scenario_free(uas);
    return;
  }
  struct pair p = {.uac = uac, .uas = uas, .seed = 3, .calls = 100, .rate = 10, .run_ns = 30 * SEC};
  struct result r;
  run_pair(&p, &r);
  printf("%s\n", r.screen);
  ck_assert_uint_eq(r.uac.calls_successful, 100);
  ck_assert_uint_eq(r.uas.calls_successful, 100);
  /* branchs always sends 180, then (next="1" test="3") jumps to 100/200
   * when the From holds "ua2" (calls 2 and 20..29), else sends 403. */
  ck_assert_uint_eq(r.uas_ms[3].sent, 100); /* 180 */
  ck_assert_uint_eq(r.uas_ms[4].sent, 89);  /* 403 */
  ck_assert_uint_eq(r.uas_ms[5].sent, 11);  /* 100 */
  ck_assert_uint_eq(r.uac_ms[7].recv, 89);  /* optional 403, next=1 */
  ck_assert_uint_eq(r.uac_ms[8].recv, 11);  /* 200 */
  ck_assert_uint_eq(r.uac_ms[2].recv, 0);   /* the skipped recv */
  ck_assert_uint_eq(r.uac_ms[10].sessions, 10); /* call 25 skips the pause */
  kz_sipp_scenario_free(uac);
  kz_sipp_scenario_free(uas);
}
END_TEST

START_TEST(uac_against_486) {
  struct kz_sipp_scenario *uac = load_corpus("corpora/sipp/sipp__uac.xml");
  struct kz_sipp_scenario *uas = load_corpus("corpora/sipp/lundgrel__sipp_uas_486.xml");
  if (!uac || !uas) {
    kz_sipp_scenario_free(uac);
    kz_sipp_scenario_free(uas);
    return;
  }
  struct pair p = {.uac = uac, .uas = uas, .seed = 1, .calls = 20, .rate = 10, .run_ns = 10 * SEC};
  struct result r;
  run_pair(&p, &r);
  printf("%s\n", r.screen);
  ck_assert_uint_eq(r.uac.calls_failed, 20);
  ck_assert_uint_eq(r.uac.failed[KZ_SIPP_FAIL_UNEXPECTED], 20);
  ck_assert_uint_eq(r.uac_ms[1].unexpected, 20); /* while expecting 100 (the 180 matched optionally) */
  /* SIPp ACKs the unexpected 486, so the UAS's mandatory ACK arrives. */
  ck_assert_uint_eq(r.uas.calls_successful, 20);
  ck_assert_uint_eq(r.uas_ms[3].recv, 20);
  ck_assert_uint_eq(r.uas.retransmissions, 0);
  kz_sipp_scenario_free(uac);
  kz_sipp_scenario_free(uas);
}
END_TEST

START_TEST(register_with_auth) {
  struct kz_sipp_scenario *uac = load_corpus("corpora/sipp/opensips__auth__01.password-db-www__sipp-register.xml");
  struct kz_sipp_scenario *uas = load_corpus("corpora/sipp/pjsip__uas-auth.xml");
  if (!uac || !uas) {
    kz_sipp_scenario_free(uac);
    kz_sipp_scenario_free(uas);
    return;
  }
  struct pair p = {.uac = uac, .uas = uas, .seed = 5, .calls = 10, .rate = 10, .run_ns = 5 * SEC,
                   .service = "alice", .auth_pass = "secret"};
  struct result r;
  run_pair(&p, &r);
  printf("%s\n", r.screen);
  ck_assert_uint_eq(r.uac.calls_successful, 10);
  ck_assert_uint_eq(r.uas.calls_successful, 10);
  ck_assert_uint_eq(r.uas_ms[2].recv, 10); /* the REGISTER with credentials */

  /* The same flow against a registrar that checks the digest itself: no
   * nonce and no qop, so the response is fixed. */
  char expect[64];
  {
    struct kz_buf b;
    kz_buf_init(&b);
    ck_assert_int_eq(kz_sipp_auth_credentials(&b, kz_slice_cstr("Digest realm=\"test\""), kz_slice_cstr("alice"),
                                              kz_slice_cstr("secret"), kz_slice_cstr("REGISTER"),
                                              kz_slice_cstr("sip:10.0.0.2:5060"), 1, kz_slice_cstr("")),
                     0);
    const char *resp = strstr((char *)b.data, "response=\"");
    ck_assert_ptr_nonnull(resp);
    snprintf(expect, sizeof expect, "%.32s", resp + 10);
    kz_buf_free(&b);
  }
  char xml[2048];
  snprintf(xml, sizeof xml,
           "<?xml version=\"1.0\"?><scenario name=\"checking registrar\">"
           "<recv request=\"REGISTER\"/>"
           "<send><![CDATA[\nSIP/2.0 401 Unauthorized\n[last_Via:]\n[last_From:]\n[last_To:];tag=x\n"
           "[last_Call-ID:]\n[last_CSeq:]\nWWW-Authenticate: Digest realm=\"test\"\nContent-Length: 0\n]]></send>"
           "<recv request=\"REGISTER\"><action>"
           "<ereg regexp=\"response=.%s.\" search_in=\"hdr\" header=\"Authorization:\" check_it=\"true\" assign_to=\"r\"/>"
           "<ereg regexp=\"username=.alice.\" search_in=\"hdr\" header=\"Authorization:\" check_it=\"true\" assign_to=\"u\"/>"
           "</action></recv>"
           "<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:];tag=x\n"
           "[last_Call-ID:]\n[last_CSeq:]\nX-Got: [$u]\nContent-Length: [len]\n]]></send>"
           "</scenario>",
           expect);
  struct kz_sipp_scenario *checker = load_text(xml);
  p.uas = checker;
  run_pair(&p, &r);
  ck_assert_uint_eq(r.uas.calls_successful, 10);
  ck_assert_uint_eq(r.uas.failed[KZ_SIPP_FAIL_REGEXP_NOMATCH], 0);
  ck_assert_uint_eq(r.uac.calls_successful, 10);
  /* A wrong password fails the check, so the registrar's calls fail. */
  p.auth_pass = "wrong";
  run_pair(&p, &r);
  ck_assert_uint_eq(r.uas.failed[KZ_SIPP_FAIL_REGEXP_NOMATCH], 10);
  kz_sipp_scenario_free(checker);
  kz_sipp_scenario_free(uac);
  kz_sipp_scenario_free(uas);
}
END_TEST

/* A UAS that sits on the INVITE for 1.2 s: the UAC's first INVITE goes
 * unanswered and is retransmitted once (T1 = 500 ms, then 1000 ms). */
static const char slow_uas[] =
    "<?xml version=\"1.0\"?><scenario name=\"slow uas\">"
    "<recv request=\"INVITE\"/>"
    "<pause milliseconds=\"1200\"/>"
    "<send><![CDATA[\nSIP/2.0 180 Ringing\n[last_Via:]\n[last_From:]\n[last_To:];tag=[call_number]\n"
    "[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n]]></send>"
    "<send retrans=\"500\"><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:];tag=[call_number]\n"
    "[last_Call-ID:]\n[last_CSeq:]\nContact: <sip:[local_ip]:[local_port]>\nContent-Length: 0\n]]></send>"
    "<recv request=\"ACK\"/>"
    "<recv request=\"BYE\"/>"
    "<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n"
    "[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n]]></send>"
    "</scenario>";

/* A UAS that never answers. */
static const char mute_uas[] =
    "<?xml version=\"1.0\"?><scenario name=\"mute uas\">"
    "<recv request=\"INVITE\"/>"
    "<pause milliseconds=\"100000\"/>"
    "</scenario>";

START_TEST(retransmissions) {
  struct kz_sipp_scenario *uac = load_corpus("corpora/sipp/sipp__uac.xml");
  if (!uac) return;
  struct kz_sipp_scenario *uas = load_text(slow_uas);
  struct pair p = {.uac = uac, .uas = uas, .seed = 9, .calls = 10, .rate = 10, .run_ns = 10 * SEC};
  struct result r;
  run_pair(&p, &r);
  printf("%s\n", r.screen);
  ck_assert_uint_eq(r.uac.calls_successful, 10);
  ck_assert_uint_eq(r.uas.calls_successful, 10);
  ck_assert_uint_eq(r.uac_ms[0].sent_retrans, 10);
  ck_assert_uint_eq(r.uac.retransmissions, 10);
  ck_assert_uint_eq(r.uas_ms[0].recv_retrans, 10);
  ck_assert_uint_eq(r.uas.calls_created, 10); /* retransmissions never start calls */
  kz_sipp_scenario_free(uas);

  /* Unanswered: 5 INVITE retransmissions (500 ms doubling), then the
   * call fails on the 6th timer, 31.5 s after the INVITE. */
  uas = load_text(mute_uas);
  p.uas = uas;
  p.calls = 3;
  p.run_ns = 31 * SEC;
  run_pair(&p, &r);
  ck_assert_uint_eq(r.uac.calls_failed, 0);
  ck_assert_uint_eq(r.uac_ms[0].sent_retrans, 15);
  p.run_ns = 33 * SEC;
  run_pair(&p, &r);
  printf("%s\n", r.screen);
  ck_assert_uint_eq(r.uac.calls_failed, 3);
  ck_assert_uint_eq(r.uac.failed[KZ_SIPP_FAIL_MAX_RETRANS], 3);
  ck_assert_uint_eq(r.uac_ms[0].timeout, 3);
  ck_assert_uint_eq(r.uas_ms[0].recv_retrans, 15);
  kz_sipp_scenario_free(uas);
  kz_sipp_scenario_free(uac);
}
END_TEST


/* Both the 180 and the first 200 are lost (lost="100"; retransmissions
 * of the 200 are not), so the UAC retransmits its INVITE after the UAS
 * has sent the 200.  SIPp answers a retransmission of the last received
 * message with the message sent right after it (the 180), not with an
 * "unexpected message": the second send must not clear that pair. */
static const char lossy_answer_uas[] =
    "<?xml version=\"1.0\"?><scenario name=\"lossy answer uas\">"
    "<recv request=\"INVITE\"/>"
    "<send lost=\"100\"><![CDATA[\nSIP/2.0 180 Ringing\n[last_Via:]\n[last_From:]\n[last_To:];tag=[call_number]\n"
    "[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n]]></send>"
    "<pause milliseconds=\"100\"/>"
    "<send retrans=\"500\" lost=\"100\"><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:];tag=[call_number]\n"
    "[last_Call-ID:]\n[last_CSeq:]\nContact: <sip:[local_ip]:[local_port]>\nContent-Length: 0\n]]></send>"
    "<recv request=\"ACK\"/>"
    "<recv request=\"BYE\"/>"
    "<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n"
    "[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n]]></send>"
    "</scenario>";

START_TEST(retransmission_after_two_sends) {
  struct kz_sipp_scenario *uac = load_corpus("corpora/sipp/sipp__uac.xml");
  if (!uac) return;
  struct kz_sipp_scenario *uas = load_text(lossy_answer_uas);
  struct pair p = {.uac = uac, .uas = uas, .seed = 3, .calls = 5, .rate = 10, .run_ns = 10 * SEC};
  struct result r;
  run_pair(&p, &r);
  printf("%s\n", r.screen);
  ck_assert_uint_eq(r.uas.calls_successful, 5);
  ck_assert_uint_eq(r.uac.calls_successful, 5);
  ck_assert_uint_eq(r.uas.calls_failed, 0);
  ck_assert_uint_eq(r.uas_ms[0].unexpected, 0);
  ck_assert_uint_eq(r.uas_ms[1].lost, 5);
  ck_assert_uint_eq(r.uas_ms[3].lost, 5);
  ck_assert_uint_eq(r.uas_ms[0].recv_retrans, 5); /* the INVITE came again... */
  ck_assert_uint_eq(r.uas_ms[1].sent_retrans, 5); /* ...and got the 180 again */
  ck_assert_uint_eq(r.uas_ms[3].sent_retrans, 5); /* the 200's own timer */
  kz_sipp_scenario_free(uas);
  kz_sipp_scenario_free(uac);
}
END_TEST

/* [fieldN] from a SEQUENTIAL CSV, [cseq], [len], [$var] and ereg across
 * the two engines. */
START_TEST(injection_and_keywords) {
  struct kz_sipp_scenario *uac = load_text(
      "<?xml version=\"1.0\"?><scenario name=\"csv uac\">"
      "<send retrans=\"500\"><![CDATA[\nOPTIONS sip:[field0]@[remote_ip]:[remote_port] SIP/2.0\n"
      "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\nFrom: <sip:a@[local_ip]>;tag=[call_number]\n"
      "To: <sip:[field0]@[remote_ip]>\nCall-ID: [call_id]\nCSeq: [cseq] OPTIONS\nX-Field: [field1]\n"
      "Content-Type: text/plain\nContent-Length: [len]\n\nhello\n]]></send>"
      "<recv response=\"200\"><action>"
      "<ereg regexp=\"^(bob|carol)-[12]$\" search_in=\"hdr\" header=\"X-Echo:\" check_it=\"true\" assign_to=\"e\"/>"
      "</action></recv></scenario>");
  struct kz_sipp_scenario *uas = load_text(
      "<?xml version=\"1.0\"?><scenario name=\"csv uas\">"
      "<recv request=\"OPTIONS\"><action>"
      "<ereg regexp=\"sip:(bob|carol)@\" search_in=\"hdr\" header=\"To:\" check_it=\"true\" assign_to=\"m,u\"/>"
      "<ereg regexp=\"^1 OPTIONS$\" search_in=\"hdr\" header=\"CSeq\" check_it=\"true\" assign_to=\"c\"/>"
      "<ereg regexp=\"^[12]$\" search_in=\"hdr\" header=\"X-Field\" check_it=\"true\" assign_to=\"f\"/>"
      "<ereg regexp=\"^hello\" search_in=\"body\" check_it=\"true\" assign_to=\"b\"/>"
      "</action></recv>"
      "<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:];tag=s\n[last_Call-ID:]\n"
      "[last_CSeq:]\n[last_X-Nothing:]\nX-Echo: [$u]-[$f]\nContent-Length: 0\n]]></send></scenario>");
  struct pair p = {.uac = uac, .uas = uas, .seed = 2, .calls = 6, .rate = 10, .run_ns = 3 * SEC,
                   .inf = "SEQUENTIAL\n# comment\nbob;1\ncarol;2;\n"};
  struct result r;
  run_pair(&p, &r);
  printf("%s\n", r.screen);
  ck_assert_uint_eq(r.uas.calls_successful, 6);
  ck_assert_uint_eq(r.uac.calls_successful, 6);
  ck_assert_uint_eq(r.uac.failed[KZ_SIPP_FAIL_REGEXP_NOMATCH], 0);
  kz_sipp_scenario_free(uac);
  kz_sipp_scenario_free(uas);
}
END_TEST

int main(void) {
  Suite *s = suite_create("sipp_engine");
  TCase *tc = kz_tcase(s, "engine", 30);
  tcase_add_test(tc, uac_vs_uas_100_calls);
  tcase_add_test(tc, branchc_vs_branchs);
  tcase_add_test(tc, uac_against_486);
  tcase_add_test(tc, register_with_auth);
  tcase_add_test(tc, retransmissions);
  tcase_add_test(tc, retransmission_after_two_sends);
  tcase_add_test(tc, injection_and_keywords);
  return kz_run_suite(s);
}
