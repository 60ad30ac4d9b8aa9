/* test_sip_torture.c — RFC 4475 and RFC 5118 torture messages: verdict, reason, parsed fields, print/reparse round trip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sip_msg.h"
#include "kz_test.h"
#include "sip_equiv.h"

/* Outcomes:
 * VALID      the message is well-formed and must parse;
 * INVALID    the parser refuses it; `reason` is a substring of the reason;
 * SEMANTIC   well-formed but semantically bad: the parser accepts it and
 *            `note` documents what the upper layer (proxy, registrar, UAS)
 *            is expected to do with the parsed fields the check asserts. */
enum outcome { VALID, INVALID, SEMANTIC };

typedef void check_fn(const struct kz_sip_msg *m);

struct vector {
  const char *file;
  enum outcome outcome;
  const char *reason; /* INVALID: expected substring; else NULL */
  uint16_t status;    /* INVALID: expected suggested response code */
  check_fn *check;
  const char *note;
};

#define SL(s) KZ_SLICE_LIT(s)
#define EQ(slice, lit) ck_assert_msg(kz_slice_eq((slice), SL(lit)), "%s: got '%.*s'", #slice, \
                                     (int)(slice).len, (slice).p ? (slice).p : "(absent)")

static void c_wsinv(const struct kz_sip_msg *m) {
  ck_assert_int_eq(m->method, KZ_SIP_METHOD_INVITE);
  ck_assert_int_eq(m->max_forwards, 68);
  ck_assert_uint_eq(m->cseq.num, 9);
  ck_assert_int_eq(m->cseq.method, KZ_SIP_METHOD_INVITE);
  EQ(m->to.tag, "1918181833n");
  EQ(m->from.tag, "98asjd8");
  EQ(m->from.display, "\"J Rosenberg \\\\\\\"\"");
  ck_assert_uint_eq(m->nvias, 3);
  EQ(m->vias[0].host, "192.0.2.2");
  EQ(m->vias[1].branch, "z9hG4bK9ikj8");
  ck_assert_int_eq(m->vias[1].transport, KZ_SIP_TRANSPORT_TCP);
  EQ(m->vias[2].branch, "z9hG4bK30239");
  EQ(m->vias[2].host, "192.168.255.111");
  ck_assert_uint_eq(m->ncontacts, 1);
  ck_assert_int_eq(m->contacts[0].q, 330);
  ck_assert_uint_eq(m->nroutes, 1);
  ck_assert(kz_sip_param_get(m->routes[0].uri.params, "lr", NULL));
  const struct kz_sip_hdr *h = kz_sip_msg_hdr_by_name(m, SL("unknownheaderwithunusualvalue"));
  ck_assert_ptr_nonnull(h);
  EQ(h->value, ";;,,;;,;");
  h = kz_sip_msg_hdr(m, KZ_SIP_HDR_SUBJECT);
  ck_assert_ptr_nonnull(h);
  ck_assert_uint_eq(h->value.len, 0);
  ck_assert_uint_eq(m->body.len, 150);
}

static void c_intmeth(const struct kz_sip_msg *m) {
  ck_assert_int_eq(m->method, KZ_SIP_METHOD_OTHER);
  EQ(m->method_text, "!interesting-Method0123456789_*+`.%indeed'~");
  EQ(m->ruri.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
  EQ(m->ruri.password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
  EQ(m->ruri.host, "example.com");
  EQ(m->call_id, "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{");
  EQ(m->from.tag, "_token~1'+`*%!-.");
  EQ(m->from.display, "token1~` token2'+_ token3*%!.-");
}

static void c_esc01(const struct kz_sip_msg *m) { EQ(m->ruri.user, "sips%3Auser%40example.com"); }

static void c_escnull(const struct kz_sip_msg *m) {
  /* %00 stays escaped data: the user part is not cut at it. */
  EQ(m->to.uri.user, "null-%00-null");
  EQ(m->from.uri.user, "null-%00-null");
  ck_assert_uint_eq(m->ncontacts, 2);
}

static void c_esc02(const struct kz_sip_msg *m) {
  ck_assert_int_eq(m->method, KZ_SIP_METHOD_OTHER); /* not REGISTER */
  ck_assert_uint_eq(m->ncontacts, 2);               /* C%6Fntact is another header */
  ck_assert_ptr_nonnull(kz_sip_msg_hdr_by_name(m, SL("C%6Fntact")));
}

static void c_lwsdisp(const struct kz_sip_msg *m) {
  EQ(m->from.display, "caller");
  EQ(m->from.uri.user, "caller");
}

static void c_longreq(const struct kz_sip_msg *m) {
  ck_assert_uint_ge(m->nvias, 30);
  ck_assert_uint_ge(m->to.display.len, 100);
  ck_assert_uint_ge(m->call_id.len, 100);
}

static void c_dblreq(const struct kz_sip_msg *m) {
  ck_assert_int_eq(m->method, KZ_SIP_METHOD_REGISTER);
  ck_assert_uint_eq(m->body.len, 0);
  for (size_t i = 0; i + 6 <= m->raw.len; i++) ck_assert(memcmp(m->raw.p + i, "INVITE", 6) != 0);
}

static void c_semiuri(const struct kz_sip_msg *m) {
  EQ(m->ruri.user, "user;par=u%40example.net");
  EQ(m->ruri.host, "example.com");
  ck_assert_ptr_null(m->ruri.params.p);
}

static void c_transports(const struct kz_sip_msg *m) {
  ck_assert_uint_eq(m->nvias, 5);
  ck_assert_int_eq(m->vias[0].transport, KZ_SIP_TRANSPORT_UDP);
  ck_assert_int_eq(m->vias[1].transport, KZ_SIP_TRANSPORT_SCTP);
  ck_assert_int_eq(m->vias[2].transport, KZ_SIP_TRANSPORT_TLS);
  ck_assert_int_eq(m->vias[3].transport, KZ_SIP_TRANSPORT_OTHER);
  EQ(m->vias[3].transport_text, "UNKNOWN");
  ck_assert_int_eq(m->vias[4].transport, KZ_SIP_TRANSPORT_TCP);
}

static void c_mpart01(const struct kz_sip_msg *m) {
  ck_assert_int_eq(m->method, KZ_SIP_METHOD_MESSAGE);
  ck_assert_int_eq(m->content_length, (int64_t)m->body.len);
  EQ(m->content_type, "multipart/mixed");
}

static void c_unreason(const struct kz_sip_msg *m) {
  ck_assert(!m->is_request);
  ck_assert_uint_eq(m->status, 200);
  ck_assert_uint_gt(m->reason.len, 10);
}

static void c_noreason(const struct kz_sip_msg *m) {
  ck_assert_uint_eq(m->status, 100);
  ck_assert_uint_eq(m->reason.len, 0);
}

static void c_badbranch(const struct kz_sip_msg *m) { EQ(m->vias[0].branch, "z9hG4bK"); }
static void c_baddate(const struct kz_sip_msg *m) {
  ck_assert_ptr_nonnull(kz_sip_msg_hdr(m, KZ_SIP_HDR_DATE));
}
static void c_unkscm(const struct kz_sip_msg *m) {
  ck_assert_int_eq(m->ruri.scheme, KZ_SIP_SCHEME_OTHER);
}
static void c_novelsc(const struct kz_sip_msg *m) {
  ck_assert_int_eq(m->ruri.scheme, KZ_SIP_SCHEME_OTHER);
  EQ(m->ruri.scheme_text, "soap.beep");
}
static void c_unksm2(const struct kz_sip_msg *m) {
  ck_assert_int_eq(m->to.uri.scheme, KZ_SIP_SCHEME_OTHER);
}
static void c_bext01(const struct kz_sip_msg *m) {
  ck_assert_ptr_nonnull(kz_sip_msg_hdr(m, KZ_SIP_HDR_REQUIRE));
  ck_assert_ptr_nonnull(kz_sip_msg_hdr(m, KZ_SIP_HDR_PROXY_REQUIRE));
}
static void c_invut(const struct kz_sip_msg *m) { EQ(m->content_type, "application/unknownformat"); }
static void c_regaut01(const struct kz_sip_msg *m) {
  ck_assert_ptr_nonnull(kz_sip_msg_hdr(m, KZ_SIP_HDR_AUTHORIZATION));
}
static void c_bcast(const struct kz_sip_msg *m) {
  ck_assert_uint_eq(m->nvias, 2);
  EQ(m->vias[1].host, "255.255.255.255");
}
static void c_zeromf(const struct kz_sip_msg *m) { ck_assert_int_eq(m->max_forwards, 0); }
static void c_cparam01(const struct kz_sip_msg *m) {
  ck_assert(!m->contacts[0].angle);
  ck_assert_ptr_null(m->contacts[0].uri.params.p);
  ck_assert(kz_sip_param_get(m->contacts[0].params, "unknownparam", NULL));
}
static void c_cparam02(const struct kz_sip_msg *m) {
  ck_assert(m->contacts[0].angle);
  ck_assert(kz_sip_param_get(m->contacts[0].uri.params, "unknownparam", NULL));
  ck_assert_ptr_null(m->contacts[0].params.p);
}
static void c_regescrt(const struct kz_sip_msg *m) {
  ck_assert_ptr_nonnull(m->contacts[0].uri.headers.p);
}
static void c_sdp01(const struct kz_sip_msg *m) {
  ck_assert_ptr_nonnull(kz_sip_msg_hdr(m, KZ_SIP_HDR_ACCEPT));
}
static void c_inv2543(const struct kz_sip_msg *m) {
  ck_assert_ptr_null(m->vias[0].branch.p);
  ck_assert_ptr_null(m->from.tag.p);
  ck_assert_int_eq(m->content_length, -1);
  ck_assert_int_eq(m->max_forwards, -1);
  ck_assert_uint_gt(m->body.len, 0);
}

/* RFC 5118 */
static void c_v6good(const struct kz_sip_msg *m) {
  ck_assert(m->ruri.host_ipv6);
  EQ(m->ruri.host, "2001:db8::10");
}
static void c_portamb(const struct kz_sip_msg *m) {
  EQ(m->ruri.host, "2001:db8::10:5070");
  ck_assert_uint_eq(m->ruri.port, 0);
  ck_assert_ptr_null(m->ruri.port_text.p);
}
static void c_portunamb(const struct kz_sip_msg *m) {
  EQ(m->ruri.host, "2001:db8::10");
  ck_assert_uint_eq(m->ruri.port, 5070);
}
static void c_recv_delim(const struct kz_sip_msg *m) {
  EQ(m->vias[0].received, "[2001:db8::9:255]");
}
static void c_recv_nodelim(const struct kz_sip_msg *m) {
  EQ(m->vias[0].received, "2001:db8::9:255");
}
static void c_multip(const struct kz_sip_msg *m) {
  ck_assert_uint_eq(m->nvias, 3);
  ck_assert(m->vias[0].host_ipv6);
  EQ(m->vias[0].host, "2001:db8::9:1");
  ck_assert_uint_eq(m->vias[0].port, 6050);
  ck_assert(!m->vias[1].host_ipv6);
  ck_assert(m->vias[2].host_ipv6);
  ck_assert_ptr_nonnull(m->vias[2].received.p);
}
static void c_mapped(const struct kz_sip_msg *m) {
  EQ(m->vias[0].host, "::ffff:192.0.2.10");
  ck_assert_uint_eq(m->vias[0].port, 19823);
  EQ(m->vias[1].host, "::ffff:192.0.2.2");
}
static void c_twocolons(const struct kz_sip_msg *m) {
  EQ(m->ruri.host, "2001:db8::192.0.2.1");
}

static const struct vector vectors[] = {
    /* RFC 4475 §3.1.1: valid */
    {"rfc4475/wsinv.dat", VALID, NULL, 0, c_wsinv, NULL},
    {"rfc4475/intmeth.dat", VALID, NULL, 0, c_intmeth,
     "unknown method: a UAS answers 501 with Allow"},
    {"rfc4475/esc01.dat", VALID, NULL, 0, c_esc01, NULL},
    {"rfc4475/escnull.dat", VALID, NULL, 0, c_escnull, NULL},
    {"rfc4475/esc02.dat", VALID, NULL, 0, c_esc02, "RE%47IST%45R is an unknown method (501)"},
    {"rfc4475/lwsdisp.dat", VALID, NULL, 0, c_lwsdisp, NULL},
    {"rfc4475/longreq.dat", VALID, NULL, 0, c_longreq, NULL},
    {"rfc4475/dblreq.dat", VALID, NULL, 0, c_dblreq, "trailing INVITE bytes ignored"},
    {"rfc4475/semiuri.dat", VALID, NULL, 0, c_semiuri, NULL},
    {"rfc4475/transports.dat", VALID, NULL, 0, c_transports, NULL},
    {"rfc4475/mpart01.dat", VALID, NULL, 0, c_mpart01, NULL},
    {"rfc4475/unreason.dat", VALID, NULL, 0, c_unreason, NULL},
    {"rfc4475/noreason.dat", VALID, NULL, 0, c_noreason, NULL},
    /* §3.1.2: invalid */
    {"rfc4475/badinv01.dat", INVALID, "invalid Via: empty parameter", 400, NULL, NULL},
    {"rfc4475/clerr.dat", INVALID, "Content-Length larger than body", 400, NULL, NULL},
    {"rfc4475/ncl.dat", INVALID, "invalid Content-Length", 400, NULL, NULL},
    {"rfc4475/scalar02.dat", INVALID, "invalid CSeq: sequence number too large", 400, NULL, NULL},
    {"rfc4475/scalarlg.dat", INVALID, "invalid CSeq: sequence number too large", 400, NULL, NULL},
    {"rfc4475/quotbal.dat", INVALID, "invalid To: unterminated quoted string", 400, NULL, NULL},
    {"rfc4475/ltgtruri.dat", INVALID, "invalid Request-URI: enclosed in <>", 400, NULL, NULL},
    {"rfc4475/lwsruri.dat", INVALID, "invalid Request-URI", 400, NULL, NULL},
    {"rfc4475/lwsstart.dat", INVALID, "invalid request line: extra whitespace", 400, NULL, NULL},
    {"rfc4475/trws.dat", INVALID, "invalid request line: trailing whitespace", 400, NULL, NULL},
    {"rfc4475/escruri.dat", INVALID, "invalid Request-URI: headers not allowed", 400, NULL, NULL},
    /* Date is kept as text and not interpreted, so an EST zone is accepted
     * (the RFC allows ignoring it when Date is unused). */
    {"rfc4475/baddate.dat", SEMANTIC, NULL, 0, c_baddate, "Date not interpreted: accepted"},
    {"rfc4475/regbadct.dat", INVALID, "invalid Contact", 400, NULL, NULL},
    {"rfc4475/badaspec.dat", INVALID, "invalid To", 400, NULL, NULL},
    {"rfc4475/baddn.dat", INVALID, "invalid From: invalid display name", 400, NULL, NULL},
    {"rfc4475/badvers.dat", INVALID, "unsupported SIP version", 505, NULL, NULL},
    {"rfc4475/mismatch01.dat", INVALID, "invalid CSeq method: does not match request method", 400,
     NULL, NULL},
    {"rfc4475/mismatch02.dat", INVALID, "invalid CSeq method: does not match request method", 400,
     NULL, NULL},
    {"rfc4475/bigcode.dat", INVALID, "invalid status line: bad status code", 400, NULL, NULL},
    /* §3.2-3.4: transaction and application layer */
    {"rfc4475/badbranch.dat", SEMANTIC, NULL, 0, c_badbranch,
     "branch is the bare magic cookie: the transaction layer falls back to RFC 2543 matching"},
    {"rfc4475/insuf.dat", INVALID, "missing Call-ID", 400, NULL, NULL},
    {"rfc4475/unkscm.dat", SEMANTIC, NULL, 0, c_unkscm, "scheme OTHER: a proxy/UAS answers 416"},
    {"rfc4475/novelsc.dat", SEMANTIC, NULL, 0, c_novelsc, "scheme OTHER: 416"},
    {"rfc4475/unksm2.dat", SEMANTIC, NULL, 0, c_unksm2,
     "non-SIP To: proxies forward; a registrar answers 400"},
    {"rfc4475/bext01.dat", SEMANTIC, NULL, 0, c_bext01, "unknown option tags: 420 upstream"},
    {"rfc4475/invut.dat", SEMANTIC, NULL, 0, c_invut, "unknown Content-Type: a UAS answers 415"},
    {"rfc4475/regaut01.dat", SEMANTIC, NULL, 0, c_regaut01, "unknown auth scheme: 401/forward"},
    {"rfc4475/multi01.dat", INVALID, "multiple CSeq headers", 400, NULL, NULL},
    {"rfc4475/mcl01.dat", INVALID, "multiple Content-Length headers", 400, NULL, NULL},
    {"rfc4475/bcast.dat", SEMANTIC, NULL, 0, c_bcast, "broadcast Via: proxies drop it"},
    {"rfc4475/zeromf.dat", SEMANTIC, NULL, 0, c_zeromf, "Max-Forwards 0: a proxy answers 483"},
    {"rfc4475/cparam01.dat", VALID, NULL, 0, c_cparam01, NULL},
    {"rfc4475/cparam02.dat", VALID, NULL, 0, c_cparam02, NULL},
    {"rfc4475/regescrt.dat", VALID, NULL, 0, c_regescrt, NULL},
    {"rfc4475/sdp01.dat", SEMANTIC, NULL, 0, c_sdp01, "Accept without sdp: a UAS answers 406"},
    {"rfc4475/inv2543.dat", VALID, NULL, 0, c_inv2543, "RFC 2543 transaction matching upstream"},
    /* not described by the RFC: no request-line version */
    {"rfc4475/test.dat", INVALID, "invalid request line: missing SIP version", 400, NULL, NULL},
    /* RFC 5118 */
    {"rfc5118/ipv6-good.dat", VALID, NULL, 0, c_v6good, NULL},
    {"rfc5118/ipv6-bad.dat", INVALID, "invalid Request-URI: invalid host", 400, NULL, NULL},
    {"rfc5118/port-ambiguous.dat", VALID, NULL, 0, c_portamb, NULL},
    {"rfc5118/port-unambiguous.dat", VALID, NULL, 0, c_portunamb, NULL},
    {"rfc5118/via-received-param-with-delim.dat", VALID, NULL, 0, c_recv_delim, NULL},
    {"rfc5118/via-received-param-no-delim.dat", VALID, NULL, 0, c_recv_nodelim, NULL},
    {"rfc5118/ipv6-in-sdp.dat", VALID, NULL, 0, NULL, NULL},
    {"rfc5118/mult-ip-in-header.dat", VALID, NULL, 0, c_multip, NULL},
    {"rfc5118/mult-ip-in-sdp.dat", VALID, NULL, 0, NULL, NULL},
    {"rfc5118/ipv4-mapped-ipv6.dat", VALID, NULL, 0, c_mapped, NULL},
    {"rfc5118/ipv6-bug-abnf-3-colons.dat", INVALID, "invalid Request-URI: invalid IPv6 address",
     400, NULL, NULL},
    {"rfc5118/ipv6-correct-abnf-2-colons.dat", VALID, NULL, 0, c_twocolons, NULL},
};
#define NVECTORS (sizeof vectors / sizeof vectors[0])

static uint8_t *load(const char *rel, size_t *len) {
  char rp[256], path[1024];
  snprintf(rp, sizeof rp, "fixtures/sip/%s", rel);
  kz_test_source_path(path, sizeof path, rp);
  uint8_t *data = kz_test_read_file(path, len);
  ck_assert_msg(data != NULL, "cannot read %s", path);
  return data;
}

START_TEST(test_vector) {
  const struct vector *v = &vectors[_i];
  size_t len;
  uint8_t *data = load(v->file, &len);
  struct kz_sip_msg *m = NULL;
  struct kz_sip_perr err;
  int rc = kz_sip_msg_parse(&m, data, len, 0, &err);
  if (v->outcome == INVALID) {
    ck_assert_msg(rc == KZ_EPROTO, "%s: expected refusal, got %d", v->file, rc);
    ck_assert_msg(strstr(err.reason, v->reason) != NULL, "%s: reason '%s' lacks '%s'", v->file,
                  err.reason, v->reason);
    ck_assert_uint_eq(err.status, v->status);
  } else {
    ck_assert_msg(rc == 0, "%s: expected to parse, got %d: %s", v->file, rc, err.reason);
    if (v->check) v->check(m);
    char why[256] = "";
    int parsed;
    rc = kz_sip_test_roundtrip(data, len, &parsed, why, sizeof why);
    ck_assert_msg(rc == 0 && parsed, "%s: round trip: %s", v->file, why);
    /* the zero-copy and the copying parse agree */
    struct kz_sip_msg *c = NULL;
    ck_assert_int_eq(kz_sip_msg_parse(&c, data, len, KZ_SIP_PARSE_COPY, NULL), 0);
    ck_assert_int_eq(kz_sip_test_equiv(m, c, why, sizeof why), 0);
    kz_deref(c);
  }
  kz_deref(m);
  free(data);
}
END_TEST

/* Every message of both folders is in the table (nothing forgotten), and
 * every message also survives the stream framer fed byte by byte. */
START_TEST(test_all_listed_and_stream) {
  const char *dirs[] = {"rfc4475", "rfc5118"};
  size_t seen = 0;
  for (size_t d = 0; d < 2; d++) {
    char sums[256], path[1024];
    snprintf(sums, sizeof sums, "fixtures/sip/%s/SHA256SUMS", dirs[d]);
    size_t len;
    char *text = (char *)kz_test_read_file(kz_test_source_path(path, sizeof path, sums), &len);
    ck_assert_ptr_nonnull(text);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
      char *name = strrchr(line, ' ');
      ck_assert_ptr_nonnull(name);
      name++;
      if (*name == '*') name++;
      char rel[256];
      snprintf(rel, sizeof rel, "%s/%s", dirs[d], name);
      bool found = false;
      for (size_t i = 0; i < NVECTORS; i++) found |= !strcmp(vectors[i].file, rel);
      ck_assert_msg(found, "%s has no expectation in the table", rel);
      seen++;
      size_t mlen;
      uint8_t *msg = load(rel, &mlen);
      struct kz_sip_framer *f;
      ck_assert_int_eq(kz_sip_framer_new(&f, 0), 0);
      int rc = KZ_EAGAIN;
      struct kz_sip_msg *m = NULL;
      struct kz_sip_perr err;
      for (size_t i = 0; i < mlen && rc == KZ_EAGAIN; i++) {
        ck_assert_int_eq(kz_sip_framer_feed(f, msg + i, 1), 0);
        rc = kz_sip_framer_next(f, &m, &err);
      }
      /* Whatever the verdict, the framer ends in a defined state. */
      ck_assert(rc == 0 || rc == KZ_EAGAIN || rc == KZ_EPROTO);
      if (rc == KZ_EPROTO) ck_assert_uint_gt(strlen(err.reason), 0);
      kz_deref(m);
      kz_sip_framer_free(f);
      free(msg);
    }
    free(text);
  }
  ck_assert_uint_eq(seen, NVECTORS);
}
END_TEST

int main(void) {
  Suite *s = suite_create("sip_torture");
  TCase *tc = kz_tcase(s, "vectors", 30);
  tcase_add_loop_test(tc, test_vector, 0, (int)NVECTORS);
  tc = kz_tcase(s, "coverage", 60);
  tcase_add_test(tc, test_all_listed_and_stream);
  return kz_run_suite(s);
}
