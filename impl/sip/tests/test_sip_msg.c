/* test_sip_msg.c — unit tests of the SIP parser, printer and stream framer (RFC 3261 examples, forms, chunkings, failures). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sip_msg.h"
#include "kz_test.h"
#include "sip_equiv.h"

#define SL(s) KZ_SLICE_LIT(s)
#define EQ(slice, lit) ck_assert_msg(kz_slice_eq((slice), SL(lit)), "%s: got '%.*s'", #slice, \
                                     (int)(slice).len, (slice).p ? (slice).p : "(absent)")

static struct kz_sip_msg *parse_ok(const char *text) {
  struct kz_sip_msg *m = NULL;
  struct kz_sip_perr err;
  int rc = kz_sip_msg_parse(&m, text, strlen(text), 0, &err);
  ck_assert_msg(rc == 0, "parse failed (%d): %s", rc, err.reason);
  char why[256];
  int parsed;
  ck_assert_msg(kz_sip_test_roundtrip(text, strlen(text), &parsed, why, sizeof why) == 0,
                "round trip: %s", why);
  return m;
}

static void parse_bad(const char *text, const char *reason, uint16_t status) {
  struct kz_sip_msg *m = NULL;
  struct kz_sip_perr err;
  int rc = kz_sip_msg_parse(&m, text, strlen(text), 0, &err);
  ck_assert_msg(rc == KZ_EPROTO, "expected KZ_EPROTO for reason '%s', got %d", reason, rc);
  ck_assert_ptr_null(m);
  ck_assert_msg(strstr(err.reason, reason), "reason '%s' lacks '%s'", err.reason, reason);
  ck_assert_uint_eq(err.status, status);
}

/* RFC 3261 §24.2 F1, with the SDP body of §24.2 F1's sibling messages. */
#define SDP_BODY                                                                   \
  "v=0\r\no=alice 2890844526 2890844526 IN IP4 pc33.atlanta.com\r\ns=Session SDP\r\n" \
  "c=IN IP4 pc33.atlanta.com\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"

static const char invite_f1[] =
    "INVITE sip:bob@biloxi.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n"
    "Max-Forwards: 70\r\n"
    "To: Bob <sip:bob@biloxi.com>\r\n"
    "From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@pc33.atlanta.com>\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 156\r\n"
    "\r\n" SDP_BODY;

static const char ok_200[] =
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP server10.biloxi.com;branch=z9hG4bKnashds8;received=192.0.2.3\r\n"
    "Via: SIP/2.0/UDP bigbox3.site3.atlanta.com;branch=z9hG4bK77ef4c2312983.1;received=192.0.2.2\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds ;received=192.0.2.1\r\n"
    "To: Bob <sip:bob@biloxi.com>;tag=a6c85cf\r\n"
    "From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:bob@192.0.2.4>\r\n"
    "Record-Route: <sip:server10.biloxi.com;lr>, <sip:bigbox3.site3.atlanta.com;lr>\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

static const char register_ex[] =
    "REGISTER sip:registrar.biloxi.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP bobspc.biloxi.com:5060;branch=z9hG4bKnashds7\r\n"
    "Max-Forwards: 70\r\n"
    "To: Bob <sip:bob@biloxi.com>\r\n"
    "From: Bob <sip:bob@biloxi.com>;tag=456248\r\n"
    "Call-ID: 843817637684230@998sdasdh09\r\n"
    "CSeq: 1826 REGISTER\r\n"
    "Contact: <sip:bob@192.0.2.4>\r\n"
    "Expires: 7200\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

START_TEST(test_rfc3261_invite) {
  ck_assert_uint_eq(strlen(SDP_BODY), 156);
  struct kz_sip_msg *m = parse_ok(invite_f1);
  ck_assert(m->is_request);
  ck_assert_int_eq(m->method, KZ_SIP_METHOD_INVITE);
  EQ(m->method_text, "INVITE");
  ck_assert_int_eq(m->ruri.scheme, KZ_SIP_SCHEME_SIP);
  EQ(m->ruri.user, "bob");
  EQ(m->ruri.host, "biloxi.com");
  ck_assert_uint_eq(m->ruri.port, 0);
  ck_assert_uint_eq(m->nvias, 1);
  EQ(m->vias[0].proto_name, "SIP");
  EQ(m->vias[0].proto_version, "2.0");
  ck_assert_int_eq(m->vias[0].transport, KZ_SIP_TRANSPORT_UDP);
  EQ(m->vias[0].host, "pc33.atlanta.com");
  EQ(m->vias[0].branch, "z9hG4bK776asdhds");
  ck_assert_int_eq(m->vias[0].rport, -1);
  ck_assert_int_eq(m->max_forwards, 70);
  EQ(m->to.display, "Bob");
  EQ(m->to.uri.raw, "sip:bob@biloxi.com");
  ck_assert_ptr_null(m->to.tag.p);
  EQ(m->from.tag, "1928301774");
  EQ(m->call_id, "a84b4c76e66710@pc33.atlanta.com");
  ck_assert_uint_eq(m->cseq.num, 314159);
  ck_assert_int_eq(m->cseq.method, KZ_SIP_METHOD_INVITE);
  ck_assert_uint_eq(m->ncontacts, 1);
  EQ(m->contacts[0].uri.host, "pc33.atlanta.com");
  EQ(m->content_type, "application/sdp");
  ck_assert_int_eq(m->content_length, 156);
  ck_assert(kz_slice_eq(m->body, SL(SDP_BODY)));
  ck_assert_uint_eq(m->nhdrs, 9);
  ck_assert_ptr_eq(m->raw.p, invite_f1); /* zero-copy */
  ck_assert_uint_eq(m->raw.len, strlen(invite_f1));
  ck_assert_uint_eq(kz_refcount(m), 1);
  kz_deref(m);
}
END_TEST

START_TEST(test_rfc3261_response) {
  struct kz_sip_msg *m = parse_ok(ok_200);
  ck_assert(!m->is_request);
  ck_assert_uint_eq(m->status, 200);
  EQ(m->reason, "OK");
  ck_assert_uint_eq(m->nvias, 3);
  EQ(m->vias[1].received, "192.0.2.2");
  EQ(m->vias[1].branch, "z9hG4bK77ef4c2312983.1");
  EQ(m->vias[2].received, "192.0.2.1");
  EQ(m->to.tag, "a6c85cf");
  ck_assert_uint_eq(m->nrroutes, 2);
  EQ(m->rroutes[0].uri.host, "server10.biloxi.com");
  EQ(m->rroutes[1].uri.host, "bigbox3.site3.atlanta.com");
  ck_assert(kz_sip_param_get(m->rroutes[1].uri.params, "lr", NULL));
  ck_assert_int_eq(m->content_length, 0);
  ck_assert_uint_eq(m->body.len, 0);
  kz_deref(m);
}
END_TEST

START_TEST(test_rfc3261_register) {
  struct kz_sip_msg *m = parse_ok(register_ex);
  ck_assert_int_eq(m->method, KZ_SIP_METHOD_REGISTER);
  ck_assert_int_eq(m->expires, 7200);
  ck_assert_uint_eq(m->vias[0].port, 5060);
  EQ(m->vias[0].port_text, "5060");
  EQ(m->contacts[0].uri.host, "192.0.2.4");
  kz_deref(m);
}
END_TEST

static const char compact[] =
    "INVITE sip:a@b.example SIP/2.0\r\n"
    "v: SIP/2.0/TCP h.example;branch=z9hG4bK1;rport\r\n"
    "f: <sip:x@y.example>;tag=1\r\n"
    "t: sip:a@b.example\r\n"
    "i: abc@h\r\n"
    "CSeq: 1 INVITE\r\n"
    "m: <sip:x@h.example>;expires=60;q=0.5\r\n"
    "c: application/sdp\r\n"
    "k: 100rel\r\n"
    "s: hi\r\n"
    "e: gzip\r\n"
    "o: presence\r\n"
    "u: presence\r\n"
    "r: <sip:z@w.example>\r\n"
    "b: <sip:q@w.example>\r\n"
    "x: 1800\r\n"
    "y: abc\r\n"
    "l: 0\r\n"
    "\r\n";

START_TEST(test_compact_forms) {
  struct kz_sip_msg *m = parse_ok(compact);
  static const enum kz_sip_hdr_id ids[] = {
      KZ_SIP_HDR_VIA, KZ_SIP_HDR_FROM, KZ_SIP_HDR_TO, KZ_SIP_HDR_CALL_ID, KZ_SIP_HDR_CSEQ,
      KZ_SIP_HDR_CONTACT, KZ_SIP_HDR_CONTENT_TYPE, KZ_SIP_HDR_SUPPORTED, KZ_SIP_HDR_SUBJECT,
      KZ_SIP_HDR_CONTENT_ENCODING, KZ_SIP_HDR_EVENT, KZ_SIP_HDR_ALLOW_EVENTS,
      KZ_SIP_HDR_REFER_TO, KZ_SIP_HDR_REFERRED_BY, KZ_SIP_HDR_SESSION_EXPIRES,
      KZ_SIP_HDR_IDENTITY, KZ_SIP_HDR_CONTENT_LENGTH};
  ck_assert_uint_eq(m->nhdrs, sizeof ids / sizeof ids[0]);
  for (size_t i = 0; i < m->nhdrs; i++) ck_assert_int_eq(m->hdrs[i].id, ids[i]);
  EQ(m->call_id, "abc@h");
  ck_assert_int_eq(m->vias[0].rport, 0);
  ck_assert_ptr_nonnull(m->vias[0].rport_text.p);
  ck_assert_int_eq(m->contacts[0].expires, 60);
  ck_assert_int_eq(m->contacts[0].q, 500);
  ck_assert_int_eq(m->content_length, 0);
  /* lookups by long name, compact name, any case */
  ck_assert_ptr_eq(kz_sip_msg_hdr_by_name(m, SL("SUPPORTED")), kz_sip_msg_hdr(m, KZ_SIP_HDR_SUPPORTED));
  ck_assert_ptr_eq(kz_sip_msg_hdr_by_name(m, SL("K")), kz_sip_msg_hdr(m, KZ_SIP_HDR_SUPPORTED));
  ck_assert_ptr_null(kz_sip_msg_hdr_by_name(m, SL("X-Nope")));
  ck_assert_ptr_null(kz_sip_msg_hdr(m, KZ_SIP_HDR_ROUTE));
  /* printing uses the full names */
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_sip_msg_print(m, &b), 0);
  ck_assert_ptr_nonnull(strstr((char *)b.data, "\r\nContent-Length: 0\r\n\r\n"));
  ck_assert_ptr_nonnull(strstr((char *)b.data, "\r\nSession-Expires: 1800\r\n"));
  ck_assert_ptr_nonnull(strstr((char *)b.data, "\r\nAllow-Events: presence\r\n"));
  kz_buf_free(&b);
  kz_deref(m);
}
END_TEST

START_TEST(test_names) {
  for (int id = 1; id < KZ_SIP_HDR_COUNT; id++) {
    const char *n = kz_sip_hdr_name((enum kz_sip_hdr_id)id);
    ck_assert_ptr_nonnull(n);
    ck_assert_int_eq(kz_sip_hdr_lookup(kz_slice_cstr(n)), id);
    char up[64];
    size_t i = 0;
    for (; n[i] && i < sizeof up - 1; i++) up[i] = (char)((n[i] >= 'a' && n[i] <= 'z') ? n[i] - 32 : n[i]);
    ck_assert_int_eq(kz_sip_hdr_lookup((struct kz_slice){up, i}), id);
  }
  ck_assert_int_eq(kz_sip_hdr_lookup(SL("X-Custom")), KZ_SIP_HDR_OTHER);
  ck_assert_int_eq(kz_sip_hdr_lookup(SL("z")), KZ_SIP_HDR_OTHER);
  ck_assert_int_eq(kz_sip_hdr_lookup(SL("l")), KZ_SIP_HDR_CONTENT_LENGTH);
  ck_assert_int_eq(kz_sip_hdr_lookup(SL("Vias")), KZ_SIP_HDR_OTHER);
  for (int mth = 1; mth < KZ_SIP_METHOD_COUNT; mth++)
    ck_assert_int_eq(kz_sip_method_lookup(kz_slice_cstr(kz_sip_method_name((enum kz_sip_method)mth))), mth);
  ck_assert_int_eq(kz_sip_method_lookup(SL("invite")), KZ_SIP_METHOD_OTHER);
  ck_assert_ptr_null(kz_sip_hdr_name(KZ_SIP_HDR_OTHER));
}
END_TEST

static const char folded[] =
    "OPTIONS sip:u@h.example SIP/2.0\n"           /* bare LF line ends are tolerated */
    "Via: SIP/2.0/UDP a.example\r\n"
    "  ;branch=z9hG4bKa\r\n"
    "\t, SIP/2.0/UDP b.example;branch=z9hG4bKb\r\n"
    "From:\r\n <sip:f@h.example>\r\n ;tag=9\r\n"
    "To : \"A \\\" b\"\r\n  <sip:u@h.example>\n"
    "Call-ID: c1\r\n"
    "CSeq: 2\r\n OPTIONS\r\n"
    "Subject: one\r\n two\r\n\tthree\r\n"
    "\r\n";

START_TEST(test_folding) {
  struct kz_sip_msg *m = parse_ok(folded);
  ck_assert_uint_eq(m->nvias, 2);
  EQ(m->vias[0].branch, "z9hG4bKa");
  EQ(m->vias[1].host, "b.example");
  EQ(m->from.tag, "9");
  EQ(m->to.display, "\"A \\\" b\"");
  ck_assert_uint_eq(m->cseq.num, 2);
  ck_assert_int_eq(m->cseq.method, KZ_SIP_METHOD_OPTIONS);
  ck_assert_int_eq(m->content_length, -1);
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_sip_msg_print(m, &b), 0);
  const char *want =
      "OPTIONS sip:u@h.example SIP/2.0\r\n"
      "Via: SIP/2.0/UDP a.example ;branch=z9hG4bKa , SIP/2.0/UDP b.example;branch=z9hG4bKb\r\n"
      "From: <sip:f@h.example> ;tag=9\r\n"
      "To: \"A \\\" b\" <sip:u@h.example>\r\n"
      "Call-ID: c1\r\n"
      "CSeq: 2 OPTIONS\r\n"
      "Subject: one two three\r\n"
      "\r\n";
  ck_assert_str_eq((char *)b.data, want);
  kz_buf_free(&b);
  kz_deref(m);
}
END_TEST

static const char multi[] =
    "SUBSCRIBE sip:u@h.example SIP/2.0\r\n"
    "Via: SIP/2.0/UDP a.example;branch=z9hG4bK1, SIP/2.0/TCP b.example:5070;branch=z9hG4bK2\r\n"
    "Route: <sip:p1.example;lr>,<sip:p2.example;lr>\r\n"
    "Via: SIP/2.0/TLS c.example;branch=z9hG4bK3;maddr=224.2.0.1;ttl=16\r\n"
    "Route: \"P3\" <sip:p3.example;lr>\r\n"
    "From: <sip:f@h.example>;tag=1\r\n"
    "To: <sip:u@h.example>\r\n"
    "Call-ID: c2\r\n"
    "CSeq: 5 SUBSCRIBE\r\n"
    "Contact: <sip:a@1.example>;q=1, \"B\" <sip:b@2.example>;q=0.1, sip:c@3.example;expires=0\r\n"
    "Contact: <sip:d@4.example>\r\n"
    "Contact: <sip:e@5.example>\r\n"
    "Allow: INVITE, ACK\r\n"
    "Allow: BYE\r\n"
    "Event: presence\r\n"
    "Expires: 99999999999999\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

START_TEST(test_multi_values) {
  struct kz_sip_msg *m = parse_ok(multi);
  ck_assert_uint_eq(m->nvias, 3);
  ck_assert_uint_eq(m->vias[1].port, 5070);
  ck_assert_int_eq(m->vias[2].transport, KZ_SIP_TRANSPORT_TLS);
  EQ(m->vias[2].maddr, "224.2.0.1");
  ck_assert_int_eq(m->vias[2].ttl, 16);
  ck_assert_uint_eq(m->nroutes, 3);
  EQ(m->routes[2].display, "\"P3\"");
  EQ(m->routes[1].uri.host, "p2.example");
  ck_assert_uint_eq(m->ncontacts, 5);
  ck_assert_int_eq(m->contacts[0].q, 1000);
  ck_assert_int_eq(m->contacts[1].q, 100);
  ck_assert(!m->contacts[2].angle);
  ck_assert_int_eq(m->contacts[2].expires, 0);
  EQ(m->contacts[4].uri.user, "e");
  ck_assert_int_eq(m->expires, UINT32_MAX); /* clamped */
  const struct kz_sip_hdr *h = kz_sip_msg_hdr(m, KZ_SIP_HDR_ALLOW);
  EQ(h->value, "INVITE, ACK");
  h = kz_sip_msg_hdr_next(m, h);
  EQ(h->value, "BYE");
  ck_assert_ptr_null(kz_sip_msg_hdr_next(m, h));
  int n = 0;
  for (h = kz_sip_msg_hdr(m, KZ_SIP_HDR_VIA); h; h = kz_sip_msg_hdr_next(m, h)) n++;
  ck_assert_int_eq(n, 2);
  kz_deref(m);
}
END_TEST

START_TEST(test_uris) {
  struct kz_sip_uri u;
  ck_assert_int_eq(kz_sip_uri_parse(SL("sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?subject=x&h=1"), &u), 0);
  ck_assert_int_eq(u.scheme, KZ_SIP_SCHEME_SIPS);
  EQ(u.user, "alice");
  EQ(u.password, "secret");
  EQ(u.host, "2001:db8::1");
  ck_assert(u.host_ipv6);
  ck_assert_uint_eq(u.port, 5061);
  EQ(u.params, ";transport=tcp;lr");
  EQ(u.headers, "subject=x&h=1");
  struct kz_slice v;
  ck_assert(kz_sip_param_get(u.params, "TRANSPORT", &v));
  EQ(v, "tcp");
  ck_assert(kz_sip_param_get(u.params, "lr", &v));
  ck_assert_uint_eq(v.len, 0);
  ck_assert(!kz_sip_param_get(u.params, "maddr", NULL));

  ck_assert_int_eq(kz_sip_uri_parse(SL("tel:+1-201-555-0123;phone-context=example.com"), &u), 0);
  ck_assert_int_eq(u.scheme, KZ_SIP_SCHEME_TEL);
  EQ(u.user, "+1-201-555-0123");
  ck_assert(kz_sip_param_get(u.params, "phone-context", &v));
  EQ(v, "example.com");

  ck_assert_int_eq(kz_sip_uri_parse(SL("mailto:a@b.example"), &u), 0);
  ck_assert_int_eq(u.scheme, KZ_SIP_SCHEME_OTHER);
  EQ(u.opaque, "a@b.example");

  ck_assert_int_eq(kz_sip_uri_parse(SL("sip:192.0.2.1:5060"), &u), 0);
  ck_assert_ptr_null(u.user.p);
  ck_assert_uint_eq(u.port, 5060);
  ck_assert_int_eq(kz_sip_uri_parse(SL("sip:[::ffff:192.0.2.1]"), &u), 0);
  ck_assert_int_eq(kz_sip_uri_parse(SL("sip:[::]"), &u), 0);
  ck_assert_int_eq(kz_sip_uri_parse(SL("sip:[1:2:3:4:5:6:7:8]"), &u), 0);
  ck_assert_int_eq(kz_sip_uri_parse(SL("sip:host.example.:5060"), &u), 0);

  static const char *const bad[] = {
      "sip:", "sip:@h.example", "sip:h.example:", "sip:h.example:65536", "sip:[1:2:3:4:5:6:7:8:9]",
      "sip:[1::2::3]", "sip:[2001:db8:::192.0.2.1]", "sip:[::1", "sip:1.2.3.256", "sip:h..example",
      "sip:h.example;", "sip:h.example;=x", "sip:h.example?", "sip:a b@h.example", "sip:u%4@h",
      "sip:h.example>", "nocolon", "1sip:h", "sip:h.example;lr?x", "tel:", "weird:a b",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(kz_sip_uri_parse(kz_slice_cstr(bad[i]), &u) == KZ_EPROTO, "accepted %s", bad[i]);
}
END_TEST

/* A valid request with one header replaced: used by the error table. */
static char *with(const char *extra_or_null, const char *drop) {
  static const char *const lines[] = {
      "Via: SIP/2.0/UDP h.example;branch=z9hG4bKx\r\n", "From: <sip:a@h.example>;tag=1\r\n",
      "To: <sip:b@h.example>\r\n", "Call-ID: k1\r\n", "CSeq: 1 OPTIONS\r\n",
  };
  char *out = malloc(4096);
  strcpy(out, "OPTIONS sip:b@h.example SIP/2.0\r\n");
  for (size_t i = 0; i < 5; i++)
    if (!drop || strncmp(lines[i], drop, strlen(drop))) strcat(out, lines[i]);
  if (extra_or_null) strcat(out, extra_or_null);
  strcat(out, "\r\n");
  return out;
}

/* addr-spec elements (no <>) followed by more elements or by parameters
 * whose quoted values hold '<' (RFC 5626 §4.1 +sip.instance): the '<' is
 * not a display name of the addr-spec. */
START_TEST(test_addr_spec_lists) {
  struct kz_slice v;
  char *msg = with("Contact: sip:a@a.example, <sip:b@b.example>\r\n", NULL);
  struct kz_sip_msg *m = parse_ok(msg); /* borrows msg */
  ck_assert_uint_eq(m->ncontacts, 2);
  ck_assert(!m->contacts[0].angle);
  ck_assert_uint_eq(m->contacts[0].display.len, 0);
  EQ(m->contacts[0].uri.user, "a");
  EQ(m->contacts[0].uri.host, "a.example");
  ck_assert(m->contacts[1].angle);
  EQ(m->contacts[1].uri.user, "b");
  EQ(m->contacts[1].uri.host, "b.example");
  kz_deref(m);
  free(msg);

  msg = with("Route: sip:p1;lr, <sip:p2;lr>\r\n", NULL);
  m = parse_ok(msg);
  ck_assert_uint_eq(m->nroutes, 2);
  ck_assert(!m->routes[0].angle);
  EQ(m->routes[0].uri.host, "p1");
  ck_assert_uint_eq(m->routes[0].uri.params.len, 0); /* ;lr is a header param here */
  ck_assert(kz_sip_param_get(m->routes[0].params, "lr", NULL));
  ck_assert(m->routes[1].angle);
  EQ(m->routes[1].uri.host, "p2");
  ck_assert(kz_sip_param_get(m->routes[1].uri.params, "lr", NULL));
  ck_assert_uint_eq(m->routes[1].params.len, 0);
  kz_deref(m);
  free(msg);

  msg = with("Contact: sip:alice@192.0.2.1;+sip.instance="
             "\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\";reg-id=1\r\n",
             NULL);
  m = parse_ok(msg);
  ck_assert_uint_eq(m->ncontacts, 1);
  ck_assert(!m->contacts[0].angle);
  ck_assert_uint_eq(m->contacts[0].display.len, 0);
  EQ(m->contacts[0].uri.user, "alice");
  EQ(m->contacts[0].uri.host, "192.0.2.1");
  ck_assert(kz_sip_param_get(m->contacts[0].params, "+sip.instance", &v));
  EQ(v, "\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\"");
  ck_assert(kz_sip_param_get(m->contacts[0].params, "reg-id", &v));
  EQ(v, "1");
  kz_deref(m);
  free(msg);

  /* Still refused: an addr-spec then a '<' in the same element. */
  msg = with("Contact: sip:a@h.example <sip:b@h.example>\r\n", NULL);
  parse_bad(msg, "invalid Contact: invalid display name", 400);
  free(msg);
  msg = with("Contact: sip:a@h.example <sip:b@h.example>, <sip:c@h.example>\r\n", NULL);
  parse_bad(msg, "invalid Contact: invalid display name", 400);
  free(msg);
}
END_TEST

START_TEST(test_errors) {
  static const struct {
    const char *extra, *drop, *reason;
    uint16_t status;
  } cases[] = {
      {NULL, "Call-ID", "missing Call-ID", 400},
      {NULL, "From", "missing From", 400},
      {NULL, "To", "missing To", 400},
      {NULL, "CSeq", "missing CSeq", 400},
      {NULL, "Via", "missing Via", 400},
      {"Max-Forwards: 256\r\n", NULL, "invalid Max-Forwards", 400},
      {"Max-Forwards: -1\r\n", NULL, "invalid Max-Forwards", 400},
      {"Max-Forwards: 1, 2\r\n", NULL, "invalid Max-Forwards", 400},
      {"Call-ID: x\r\n", NULL, "multiple Call-ID headers", 400},
      {"i: x\r\n", NULL, "multiple Call-ID headers", 400},
      {"Content-Length: 1x\r\n", NULL, "invalid Content-Length", 400},
      {"Content-Length: 5\r\n", NULL, "Content-Length larger than body", 400},
      {"Content-Type: text\r\n", NULL, "invalid Content-Type", 400},
      {"Contact: <sip:a@h.example>;q=2\r\n", NULL, "invalid Contact: bad q parameter", 400},
      {"Contact: *, <sip:a@h.example>\r\n", NULL, "invalid Contact", 400},
      {"Contact: <sip:a@h.example\r\n", NULL, "invalid Contact: missing '>'", 400},
      {"Route: <sip:a@h.example>,\r\n", NULL, "invalid Route: empty value", 400},
      {"Record-Route: ,<sip:a@h.example>\r\n", NULL, "invalid Record-Route: empty value", 400},
      {"Via: SIP/2.0/UDP\r\n", NULL, "invalid Via: missing sent-by", 400},
      {"Via: SIP/2.0 UDP h\r\n", NULL, "invalid Via: bad sent-protocol", 400},
      {"Via: SIP/2.0/UDP h:99999\r\n", NULL, "invalid Via: invalid port", 400},
      {"Via: SIP/2.0/UDP [::1\r\n", NULL, "invalid Via: unterminated IPv6 reference", 400},
      {"Via: SIP/2.0/UDP h;ttl=300\r\n", NULL, "invalid Via: bad ttl parameter", 400},
      {"Via: SIP/2.0/UDP h;rport=x\r\n", NULL, "invalid Via: bad rport parameter", 400},
      {"Via: SIP/2.0/UDP h;received=a..b\r\n", NULL, "invalid Via: bad received parameter", 400},
      {"Via: SIP/2.0/UDP h x\r\n", NULL, "invalid Via: unexpected character", 400},
      {"Via: SIP/2.0/UDP h;branch=\"x\r\n", NULL, "unterminated quoted string", 400},
      {"To: <sip:c@h.example>\r\n", NULL, "multiple To headers", 400},
      {"Bad Header: x\r\n", NULL, "invalid header name", 400},
      {"NoColon\r\n", NULL, "malformed header line: missing ':'", 400},
      {"X-A: a\rb\r\n", NULL, "bare CR in header", 400},
      {"CSeq: 1 OPTIONS\r\n", NULL, "multiple CSeq headers", 400},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *msg = with(cases[i].extra, cases[i].drop);
    parse_bad(msg, cases[i].reason, cases[i].status);
    free(msg);
  }
  char *ok = with(NULL, NULL);
  kz_deref(parse_ok(ok));
  free(ok);

  parse_bad("OPTIONS sip:b@h.example SIP/3.0\r\n\r\n", "unsupported SIP version", 505);
  parse_bad("SIP/2.1 200 OK\r\n\r\n", "unsupported SIP version", 505);
  parse_bad("SIP/2.0 099 Low\r\n\r\n", "status code out of range", 400);
  parse_bad("SIP/2.0 20 Short\r\n\r\n", "bad status code", 400);
  parse_bad("SIP/2.0 2000 Long\r\n\r\n", "bad status code", 400);
  parse_bad("SIPX/2.0 200 OK\r\n\r\n", "invalid request line", 400);
  parse_bad("INV@TE sip:b@h.example SIP/2.0\r\n\r\n", "bad method", 400);
  parse_bad("INVITE\r\n\r\n", "invalid request line", 400);
  parse_bad("INVITE sip:b@h.example  SIP/2.0\r\n\r\n", "extra whitespace", 400);
  parse_bad("INVITE sip:b@h.example SIP/2.0\r\n Via: x\r\n\r\n", "unexpected continuation line", 400);
  parse_bad("INVITE sip:b@h.ex\rample SIP/2.0\r\n\r\n", "bare CR in start line", 400);
  parse_bad("INVITE sip:b@h.example SIP/2.0\r\n: x\r\n\r\n", "invalid header name", 400);

  struct kz_sip_msg *m = (struct kz_sip_msg *)1;
  struct kz_sip_perr err;
  ck_assert_int_eq(kz_sip_msg_parse(&m, "\r\n\r\n", 4, 0, &err), KZ_ENOENT);
  ck_assert_int_eq(kz_sip_msg_parse(&m, "", 0, 0, &err), KZ_ENOENT);
  ck_assert_int_eq(kz_sip_msg_parse(NULL, "x", 1, 0, &err), KZ_EINVAL);
  ck_assert_int_eq(kz_sip_msg_parse(&m, NULL, 1, 0, NULL), KZ_EINVAL);
  ck_assert_ptr_eq(m, (struct kz_sip_msg *)1); /* untouched on failure */
}
END_TEST

START_TEST(test_datagram_framing) {
  /* Content-Length smaller than the rest: truncate (§18.3); absent: the
   * rest is the body; leading CRLFs skipped. */
  char buf[2048];
  snprintf(buf, sizeof buf, "\r\n\r\n%.*s3\r\n\r\nabcdef", (int)(strstr(register_ex, "Content-Length: 0") + 16 - register_ex), register_ex);
  struct kz_sip_msg *m = NULL;
  ck_assert_int_eq(kz_sip_msg_parse(&m, buf, strlen(buf), 0, NULL), 0);
  EQ(m->body, "abc");
  ck_assert_ptr_eq(m->raw.p, buf + 4);
  ck_assert_uint_eq(m->raw.len, strlen(buf) - 4 - 3);
  kz_deref(m);

  char *nocl = with(NULL, NULL);
  strcat(nocl, "body bytes\r\n");
  ck_assert_int_eq(kz_sip_msg_parse(&m, nocl, strlen(nocl), 0, NULL), 0);
  EQ(m->body, "body bytes\r\n");
  ck_assert_int_eq(m->content_length, -1);
  kz_deref(m);

  /* The datagram may end without the empty line (RFC 4475 baddn note). */
  nocl[strlen(nocl) - strlen("\r\nbody bytes\r\n")] = 0;
  ck_assert_int_eq(kz_sip_msg_parse(&m, nocl, strlen(nocl), 0, NULL), 0);
  ck_assert_uint_eq(m->body.len, 0);
  kz_deref(m);
  free(nocl);

  /* KZ_SIP_PARSE_COPY: the message survives its input. */
  char *tmp = strdup(invite_f1);
  ck_assert_int_eq(kz_sip_msg_parse(&m, tmp, strlen(tmp), KZ_SIP_PARSE_COPY, NULL), 0);
  memset(tmp, 'x', strlen(tmp));
  free(tmp);
  EQ(m->call_id, "a84b4c76e66710@pc33.atlanta.com");
  ck_assert(kz_slice_eq(m->body, SL(SDP_BODY)));
  kz_ref(m);
  ck_assert_uint_eq(kz_refcount(m), 2);
  kz_deref(m);
  ck_assert_ptr_null(kz_deref(m));
}
END_TEST

/* ---- stream framer ---- */

/* Three messages, keep-alives around them, one with a body. */
static char *stream_input(size_t *len) {
  char *s = malloc(8192);
  strcpy(s, "\r\n\r\n");
  strcat(s, invite_f1);
  strcat(s, "\r\n\r\n\r\n\r\n");
  strcat(s, ok_200);
  strcat(s, register_ex);
  *len = strlen(s);
  return s;
}

/* kz_sip_msg_parse_reuse: one message reused across parses of
 * different sizes and forms gives what a fresh parse gives, with and
 * without a private copy; a failed parse leaves the old message to the
 * caller; a shared message is not overwritten. */
START_TEST(test_parse_reuse) {
  const char *const texts[] = {invite_f1, ok_200, register_ex, compact, folded, multi, invite_f1};
  const char *bad = "INVITE sip:x SIP/2.0\r\nVia: \r\n\r\n";
  for (unsigned flags = 0; flags <= KZ_SIP_PARSE_COPY; flags += KZ_SIP_PARSE_COPY) {
    struct kz_sip_msg *spare = NULL;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
      struct kz_sip_msg *fresh = NULL, *got = NULL;
      struct kz_sip_perr e1, e2;
      ck_assert_int_eq(kz_sip_msg_parse(&fresh, texts[i], strlen(texts[i]), flags, &e1), 0);
      ck_assert_int_eq(kz_sip_msg_parse_reuse(&got, spare, texts[i], strlen(texts[i]), flags, &e2), 0);
      char why[256];
      ck_assert_msg(kz_sip_test_equiv(fresh, got, why, sizeof why) == 0, "text %zu: %s", i, why);
      kz_deref(fresh);
      /* A failure keeps the message with the caller, still usable. */
      struct kz_sip_msg *none = NULL;
      ck_assert_int_eq(kz_sip_msg_parse_reuse(&none, got, bad, strlen(bad), flags, &e2), KZ_EPROTO);
      ck_assert_ptr_null(none);
      ck_assert(e2.reason[0] != 0);
      spare = got;
    }
    /* Shared: the next parse must not write into it. */
    struct kz_sip_perr e;
    struct kz_sip_msg *held = NULL;
    ck_assert_int_eq(kz_sip_msg_parse_reuse(&held, spare, invite_f1, strlen(invite_f1), flags, &e), 0);
    spare = held;
    kz_ref(spare);
    struct kz_sip_msg *other = NULL;
    ck_assert_int_eq(kz_sip_msg_parse_reuse(&other, spare, ok_200, strlen(ok_200), flags, &e), 0);
    ck_assert_ptr_ne(other, spare);
    ck_assert_int_eq(spare->method, KZ_SIP_METHOD_INVITE); /* still invite_f1 */
    kz_deref(other);
    kz_deref(spare);
  }
}
END_TEST

static const char *const stream_expect[] = {invite_f1, ok_200, register_ex};

/* Feeds input in pieces whose sizes come from `sizes` (cycled; 0 means
 * the whole input) and checks the three messages come out equivalent to
 * their datagram parses. */
static void feed_chunks(const char *in, size_t len, size_t (*next)(void *), void *st) {
  struct kz_sip_framer *f;
  ck_assert_int_eq(kz_sip_framer_new(&f, 0), 0);
  size_t got = 0, off = 0;
  while (off < len || got < 3) {
    if (off < len) {
      size_t n = next(st);
      if (n == 0 || n > len - off) n = len - off;
      ck_assert_int_eq(kz_sip_framer_feed(f, in + off, n), 0);
      off += n;
    }
    for (;;) {
      struct kz_sip_msg *m = NULL;
      struct kz_sip_perr err;
      int rc = kz_sip_framer_next(f, &m, &err);
      if (rc == KZ_EAGAIN) break;
      ck_assert_msg(rc == 0, "framer: %d %s", rc, err.reason);
      ck_assert_uint_lt(got, 3);
      struct kz_sip_msg *d = NULL;
      ck_assert_int_eq(kz_sip_msg_parse(&d, stream_expect[got], strlen(stream_expect[got]), 0, NULL), 0);
      char why[256];
      ck_assert_msg(kz_sip_test_equiv(m, d, why, sizeof why) == 0, "message %zu: %s", got, why);
      ck_assert_ptr_ne(m->raw.p, d->raw.p);
      kz_deref(d);
      kz_deref(m);
      got++;
    }
    if (off >= len) break;
  }
  ck_assert_uint_eq(got, 3);
  ck_assert_uint_eq(kz_sip_framer_pending(f), 0);
  ck_assert_uint_eq(kz_sip_framer_take_pings(f), 3);
  ck_assert_uint_eq(kz_sip_framer_take_pings(f), 0);
  kz_sip_framer_free(f);
}

static size_t whole(void *st) {
  (void)st;
  return 0;
}
static size_t one(void *st) {
  (void)st;
  return 1;
}
static size_t lcg(void *st) {
  uint64_t *s = st;
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (size_t)((*s >> 33) % 97) + 1;
}

START_TEST(test_stream_chunkings) {
  size_t len;
  char *in = stream_input(&len);
  feed_chunks(in, len, whole, NULL);
  feed_chunks(in, len, one, NULL);
  for (uint64_t seed = 1; seed <= 200; seed++) {
    uint64_t st = seed;
    feed_chunks(in, len, lcg, &st);
  }
  /* every single split point */
  for (size_t cut = 1; cut < len; cut++) {
    struct kz_sip_framer *f;
    ck_assert_int_eq(kz_sip_framer_new(&f, 0), 0);
    int n = 0;
    struct kz_sip_msg *m;
    ck_assert_int_eq(kz_sip_framer_feed(f, in, cut), 0);
    while (kz_sip_framer_next(f, &m, NULL) == 0) n++, kz_deref(m);
    ck_assert_int_eq(kz_sip_framer_feed(f, in + cut, len - cut), 0);
    while (kz_sip_framer_next(f, &m, NULL) == 0) n++, kz_deref(m);
    ck_assert_int_eq(n, 3);
    kz_sip_framer_free(f);
  }
  free(in);
}
END_TEST

START_TEST(test_stream_errors) {
  struct kz_sip_framer *f;
  struct kz_sip_msg *m = NULL;
  struct kz_sip_perr err;
  /* no Content-Length: fatal, and stays fatal */
  char *nocl = with(NULL, NULL);
  ck_assert_int_eq(kz_sip_framer_new(&f, 0), 0);
  ck_assert_int_eq(kz_sip_framer_feed(f, nocl, strlen(nocl)), 0);
  ck_assert_int_eq(kz_sip_framer_next(f, &m, &err), KZ_EPROTO);
  ck_assert(err.fatal);
  ck_assert_ptr_nonnull(strstr(err.reason, "missing Content-Length"));
  ck_assert_int_eq(kz_sip_framer_feed(f, register_ex, strlen(register_ex)), 0);
  ck_assert_int_eq(kz_sip_framer_next(f, &m, &err), KZ_EPROTO);
  ck_assert(err.fatal);
  kz_sip_framer_free(f);
  free(nocl);

  /* negative, doubled Content-Length */
  static const char *const bad[] = {"Content-Length: -1\r\n", "l: 1\r\nContent-Length: 1\r\n",
                                    "Content-Length: 1 2\r\n"};
  static const char *const why[] = {"invalid Content-Length", "multiple Content-Length",
                                    "invalid Content-Length"};
  for (int i = 0; i < 3; i++) {
    char *msg = with(bad[i], NULL);
    size_t skip, mlen;
    ck_assert_int_eq(kz_sip_stream_frame(msg, strlen(msg), 0, &skip, &mlen, &err), KZ_EPROTO);
    ck_assert(err.fatal);
    ck_assert_ptr_nonnull(strstr(err.reason, why[i]));
    free(msg);
  }

  /* folded Content-Length is found */
  char *fold = with("Content-Length:\r\n  4\r\n", NULL);
  strcat(fold, "abcdEXTRA");
  size_t skip, mlen;
  ck_assert_int_eq(kz_sip_stream_frame(fold, strlen(fold), 0, &skip, &mlen, &err), 0);
  ck_assert_uint_eq(mlen, strlen(fold) - 5);
  ck_assert_int_eq(kz_sip_stream_frame(fold, strlen(fold) - 6, 0, &skip, &mlen, &err), KZ_EAGAIN);
  free(fold);

  /* size limit: on the header block and on header + body */
  ck_assert_int_eq(kz_sip_framer_new(&f, 100), 0);
  ck_assert_int_eq(kz_sip_framer_feed(f, invite_f1, 90), 0);
  ck_assert_int_eq(kz_sip_framer_next(f, &m, &err), KZ_EAGAIN);
  ck_assert_int_eq(kz_sip_framer_feed(f, invite_f1 + 90, 20), 0);
  ck_assert_int_eq(kz_sip_framer_next(f, &m, &err), KZ_EPROTO);
  ck_assert(err.fatal);
  ck_assert_ptr_nonnull(strstr(err.reason, "too large"));
  ck_assert_uint_eq(err.status, 513); /* RFC 3261 §21.5.14 */
  kz_sip_framer_free(f);
  ck_assert_int_eq(kz_sip_framer_new(&f, 400), 0);
  char *big = with("Content-Length: 1000\r\n", NULL);
  ck_assert_int_eq(kz_sip_framer_feed(f, big, strlen(big)), 0);
  ck_assert_int_eq(kz_sip_framer_next(f, &m, &err), KZ_EPROTO);
  ck_assert_ptr_nonnull(strstr(err.reason, "too large"));
  ck_assert_uint_eq(err.status, 513);
  size_t skip2 = 0, mlen2 = 0;
  ck_assert_int_eq(kz_sip_stream_frame(big, strlen(big), 400, &skip2, &mlen2, &err), KZ_EPROTO);
  ck_assert_uint_eq(err.status, 513);
  ck_assert(err.fatal);
  kz_sip_framer_free(f);
  free(big);

  /* a well-framed but invalid message is dropped; the next one follows */
  char *nocallid = with("Content-Length: 0\r\n", "Call-ID");
  ck_assert_int_eq(kz_sip_framer_new(&f, 0), 0);
  ck_assert_int_eq(kz_sip_framer_feed(f, nocallid, strlen(nocallid)), 0);
  ck_assert_int_eq(kz_sip_framer_feed(f, register_ex, strlen(register_ex)), 0);
  ck_assert_int_eq(kz_sip_framer_next(f, &m, &err), KZ_EPROTO);
  ck_assert(!err.fatal);
  ck_assert_str_eq(err.reason, "missing Call-ID");
  ck_assert_int_eq(kz_sip_framer_next(f, &m, &err), 0);
  ck_assert_int_eq(m->method, KZ_SIP_METHOD_REGISTER);
  kz_deref(m);
  ck_assert_int_eq(kz_sip_framer_next(f, &m, &err), KZ_EAGAIN);
  kz_sip_framer_free(f);
  free(nocallid);
}
END_TEST

/* ---- allocation failures ---- */

static char *big_message(void) {
  char *s = malloc(16384);
  strcpy(s, "INVITE sip:b@h.example SIP/2.0\r\n");
  for (int i = 0; i < 7; i++)
    sprintf(s + strlen(s), "Via: SIP/2.0/UDP v%d.example;branch=z9hG4bK%d\r\n", i, i);
  for (int i = 0; i < 6; i++) sprintf(s + strlen(s), "Contact: <sip:c%d@h.example>\r\n", i);
  for (int i = 0; i < 5; i++) sprintf(s + strlen(s), "Route: <sip:r%d.example;lr>\r\n", i);
  for (int i = 0; i < 5; i++) sprintf(s + strlen(s), "Record-Route: <sip:rr%d.example;lr>\r\n", i);
  for (int i = 0; i < 30; i++) sprintf(s + strlen(s), "X-Pad-%d: %d\r\n", i, i);
  strcat(s, "From: <sip:a@h.example>;tag=1\r\nTo: <sip:b@h.example>\r\nCall-ID: big\r\n"
            "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
  return s;
}

START_TEST(test_alloc_failures_parse) {
  char *s = big_message();
  struct kz_sip_msg *m = NULL;
  ck_assert_int_eq(kz_sip_msg_parse(&m, s, strlen(s), 0, NULL), 0);
  ck_assert_uint_eq(m->nvias, 7);
  ck_assert_uint_eq(m->ncontacts, 6);
  ck_assert_uint_eq(m->nroutes, 5);
  ck_assert_uint_eq(m->nrroutes, 5);
  ck_assert_uint_eq(m->nhdrs, 7 + 6 + 5 + 5 + 30 + 5);
  EQ(m->rroutes[4].uri.host, "rr4.example");
  kz_deref(m);
  for (unsigned flags = 0; flags < 2; flags++) {
    int k;
    for (k = 0; k < 100; k++) {
      kz_mem_fail_after(k);
      m = NULL;
      int rc = kz_sip_msg_parse(&m, s, strlen(s), flags, NULL);
      kz_mem_fail_after(-1);
      if (rc == 0) {
        ck_assert_uint_eq(m->nhdrs, 58);
        kz_deref(m);
        break;
      }
      ck_assert_int_eq(rc, KZ_ENOMEM);
      ck_assert_ptr_null(m);
    }
    ck_assert_int_gt(k, 2); /* the big message needs the heap arrays */
    ck_assert_int_lt(k, 100);
  }
  free(s);
}
END_TEST

START_TEST(test_alloc_failures_framer_print) {
  size_t len;
  char *in = stream_input(&len);
  int k;
  for (k = 0; k < 200; k++) {
    kz_mem_fail_after(k);
    struct kz_sip_framer *f = NULL;
    int got = 0, rc = kz_sip_framer_new(&f, 0);
    if (!rc) rc = kz_sip_framer_feed(f, in, len);
    while (!rc) {
      struct kz_sip_msg *m;
      rc = kz_sip_framer_next(f, &m, NULL);
      if (!rc) {
        struct kz_buf b;
        kz_buf_init(&b);
        rc = kz_sip_msg_print(m, &b);
        kz_buf_free(&b);
        kz_deref(m);
        got += !rc;
      }
    }
    kz_mem_fail_after(-1);
    kz_sip_framer_free(f);
    if (rc == KZ_EAGAIN && got == 3) break;
    ck_assert_int_eq(rc, KZ_ENOMEM);
  }
  ck_assert_int_lt(k, 200);
  free(in);
}
END_TEST

int main(void) {
  Suite *s = suite_create("sip");
  TCase *tc = kz_tcase(s, "rfc3261", 10);
  tcase_add_test(tc, test_rfc3261_invite);
  tcase_add_test(tc, test_rfc3261_response);
  tcase_add_test(tc, test_rfc3261_register);
  tc = kz_tcase(s, "forms", 10);
  tcase_add_test(tc, test_compact_forms);
  tcase_add_test(tc, test_names);
  tcase_add_test(tc, test_folding);
  tcase_add_test(tc, test_multi_values);
  tcase_add_test(tc, test_uris);
  tcase_add_test(tc, test_addr_spec_lists);
  tc = kz_tcase(s, "errors", 10);
  tcase_add_test(tc, test_errors);
  tcase_add_test(tc, test_datagram_framing);
  tc = kz_tcase(s, "stream", 60);
  tcase_add_test(tc, test_stream_chunkings);
  tcase_add_test(tc, test_stream_errors);
  tcase_add_test(tc, test_parse_reuse);
  tc = kz_tcase(s, "allocfail", 30);
  tcase_add_test(tc, test_alloc_failures_parse);
  tcase_add_test(tc, test_alloc_failures_framer_print);
  return kz_run_suite(s);
}
