/* test_build.c — builder tests: every output parses with kz_sip_msg_parse and follows RFC 3261 §8.1.1, §8.2.6, §9.1, §17.1.1.3. */
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sip_build.h"
#include "kz_test.h"
#include "txn_tests.h"

static const struct kz_slice routes2[] = {KZ_SLICE_LIT("<sip:p1.example.com;lr>"),
                                          KZ_SLICE_LIT("<sip:p2.example.com;lr>")};

static struct kz_sip_req_spec invite_spec(void) {
  return (struct kz_sip_req_spec){
      .method = "INVITE",
      .ruri = KZ_SLICE_LIT("sip:bob@biloxi.example.com"),
      .via_sent_by = KZ_SLICE_LIT("pc33.atlanta.example.com:5060"),
      .from = KZ_SLICE_LIT("Alice <sip:alice@atlanta.example.com>"),
      .to = KZ_SLICE_LIT("Bob <sip:bob@biloxi.example.com>"),
      .routes = routes2,
      .nroutes = 2,
      .contact = KZ_SLICE_LIT("<sip:alice@pc33.atlanta.example.com>"),
      .extra_headers = KZ_SLICE_LIT("Subject: lunch\r\nX-Test: 1\r\n"),
      .content_type = KZ_SLICE_LIT("application/sdp"),
      .body = KZ_SLICE_LIT("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n"),
  };
}

/* A request as an RFC 3261 §24.2 proxy would forward it: two Via lines
 * (the first with two values), Record-Route, Route, Timestamp. */
static const char relayed_invite[] =
    "INVITE sip:bob@192.0.2.4 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP server10.biloxi.com;branch=z9hG4bK4b43c2ff8.1,\r\n"
    " SIP/2.0/UDP bigbox3.site3.atlanta.com;branch=z9hG4bK77ef4c2312983.1\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8;received=192.0.2.1\r\n"
    "Max-Forwards: 68\r\n"
    "Record-Route: <sip:server10.biloxi.com;lr>\r\n"
    "Record-Route: <sip:bigbox3.site3.atlanta.com;lr>\r\n"
    "Route: <sip:p9.example.com;lr>\r\n"
    "To: Bob <sip:bob@biloxi.com>\r\n"
    "From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Timestamp: 54.2\r\n"
    "Contact: <sip:alice@pc33.atlanta.com>\r\n"
    "Content-Length: 0\r\n\r\n";

START_TEST(request_parses) {
  struct kz_prng g;
  kz_prng_seed(&g, 1);
  struct kz_buf b = {0};
  struct kz_sip_req_spec spec = invite_spec();
  ck_assert_int_eq(kz_sip_build_request(&b, &spec, &g), 0);
  struct kz_sip_msg *m = tt_parse(b.data, b.len);
  ck_assert(m->is_request);
  ck_assert_int_eq(m->method, KZ_SIP_METHOD_INVITE);
  ck_assert(kz_slice_eq_cstr(m->ruri.raw, "sip:bob@biloxi.example.com"));
  ck_assert_uint_eq(m->nvias, 1);
  ck_assert_uint_eq(m->vias[0].branch.len, KZ_SIP_BRANCH_LEN);
  ck_assert(memcmp(m->vias[0].branch.p, "z9hG4bK", 7) == 0);
  ck_assert(kz_slice_eq_cstr(m->vias[0].transport_text, "UDP"));
  ck_assert_uint_eq(m->vias[0].port, 5060);
  ck_assert_int_eq(m->max_forwards, 70);
  ck_assert_uint_eq(m->nroutes, 2);
  ck_assert(kz_slice_eq_cstr(m->routes[0].uri.raw, "sip:p1.example.com;lr"));
  ck_assert(kz_slice_eq_cstr(m->routes[1].uri.raw, "sip:p2.example.com;lr"));
  ck_assert_uint_eq(m->from.tag.len, KZ_SIP_TAG_LEN);
  ck_assert(m->to.tag.p == NULL);
  ck_assert(kz_slice_eq_cstr(m->to.uri.raw, "sip:bob@biloxi.example.com"));
  /* Call-ID: random part @ the sent-by host. */
  ck_assert_uint_eq(m->call_id.len, KZ_SIP_CALLID_LEN + 1 + strlen("pc33.atlanta.example.com"));
  ck_assert(memcmp(m->call_id.p + KZ_SIP_CALLID_LEN, "@pc33.atlanta.example.com", 25) == 0);
  ck_assert_int_eq(m->cseq.method, KZ_SIP_METHOD_INVITE);
  ck_assert(m->cseq.num >= 1 && m->cseq.num < 0x80000000u);
  ck_assert_uint_eq(m->ncontacts, 1);
  ck_assert(kz_sip_msg_hdr_by_name(m, KZ_SLICE_LIT("X-Test")) != NULL);
  ck_assert(kz_sip_msg_hdr(m, KZ_SIP_HDR_SUBJECT) != NULL);
  ck_assert(kz_slice_eq_cstr(m->content_type, "application/sdp"));
  ck_assert_int_eq(m->content_length, (int64_t)spec.body.len);
  ck_assert(kz_slice_eq(m->body, spec.body));
  kz_deref(m);

  /* A second request draws a different branch, tag and Call-ID. */
  size_t first = b.len;
  ck_assert_int_eq(kz_sip_build_request(&b, &spec, &g), 0);
  struct kz_sip_msg *m1 = tt_parse(b.data, first);
  struct kz_sip_msg *m2 = tt_parse(b.data + first, b.len - first);
  ck_assert(!kz_slice_eq(m1->vias[0].branch, m2->vias[0].branch));
  ck_assert(!kz_slice_eq(m1->from.tag, m2->from.tag));
  ck_assert(!kz_slice_eq(m1->call_id, m2->call_id));
  kz_deref(m1);
  kz_deref(m2);
  kz_buf_free(&b);
}
END_TEST

START_TEST(request_given_fields) {
  struct kz_buf b = {0};
  struct kz_sip_req_spec spec = {
      .method = "OPTIONS",
      .ruri = KZ_SLICE_LIT("sip:carol@chicago.example.com"),
      .via_transport = KZ_SLICE_LIT("TCP"),
      .via_sent_by = KZ_SLICE_LIT("[2001:db8::1]:5070"),
      .via_params = KZ_SLICE_LIT(";rport"),
      .branch = KZ_SLICE_LIT("z9hG4bKfixed"),
      .from = KZ_SLICE_LIT("<sip:alice@atlanta.example.com>"),
      .from_tag = KZ_SLICE_LIT("ft"),
      .to = KZ_SLICE_LIT("<sip:carol@chicago.example.com>"),
      .to_tag = KZ_SLICE_LIT("tt"),
      .call_id = KZ_SLICE_LIT("cid-1"),
      .cseq = 7,
      .max_forwards = -1,
  };
  /* No PRNG needed: everything random is given. */
  ck_assert_int_eq(kz_sip_build_request(&b, &spec, NULL), 0);
  struct kz_sip_msg *m = tt_parse(b.data, b.len);
  ck_assert(kz_slice_eq_cstr(m->vias[0].branch, "z9hG4bKfixed"));
  ck_assert_int_eq(m->vias[0].transport, KZ_SIP_TRANSPORT_TCP);
  ck_assert(m->vias[0].host_ipv6);
  ck_assert_int_eq(m->vias[0].rport, 0);
  ck_assert_int_eq(m->max_forwards, -1);
  ck_assert(kz_slice_eq_cstr(m->from.tag, "ft"));
  ck_assert(kz_slice_eq_cstr(m->to.tag, "tt"));
  ck_assert(kz_slice_eq_cstr(m->call_id, "cid-1"));
  ck_assert_uint_eq(m->cseq.num, 7);
  ck_assert_int_eq(m->content_length, 0);
  ck_assert_uint_eq(m->body.len, 0);
  kz_deref(m);

  /* Missing pieces are refused and leave the buffer as it was. */
  size_t len = b.len;
  spec.branch = KZ_SLICE_NULL;
  ck_assert_int_eq(kz_sip_build_request(&b, &spec, NULL), KZ_EINVAL);
  spec.via_sent_by = KZ_SLICE_NULL;
  struct kz_prng g;
  kz_prng_seed(&g, 2);
  ck_assert_int_eq(kz_sip_build_request(&b, &spec, &g), KZ_EINVAL);
  ck_assert_int_eq(kz_sip_build_request(&b, NULL, &g), KZ_EINVAL);
  ck_assert_uint_eq(b.len, len);
  kz_buf_free(&b);
}
END_TEST

START_TEST(response_8_2_6) {
  struct kz_sip_msg *req = tt_parse(relayed_invite, sizeof relayed_invite - 1);
  struct kz_prng g;
  kz_prng_seed(&g, 3);
  struct kz_buf b = {0}, v = {0};

  /* 180: Vias in order, To tag added, Record-Route copied. */
  struct kz_sip_resp_spec spec = {.status = 180, .contact = KZ_SLICE_LIT("<sip:bob@192.0.2.4>")};
  ck_assert_int_eq(kz_sip_build_response(&b, req, &spec, &g), 0);
  struct kz_sip_msg *r = tt_parse(b.data, b.len);
  ck_assert(!r->is_request);
  ck_assert_uint_eq(r->status, 180);
  ck_assert(kz_slice_eq_cstr(r->reason, "Ringing"));
  ck_assert_uint_eq(r->nvias, 3);
  for (size_t i = 0; i < 3; i++) ck_assert(kz_slice_eq(r->vias[i].branch, req->vias[i].branch));
  ck_assert(kz_slice_eq_cstr(r->vias[2].received, "192.0.2.1"));
  ck_assert(kz_slice_eq(r->from.raw, req->from.raw));
  ck_assert(kz_slice_eq(r->to.uri.raw, req->to.uri.raw));
  ck_assert_uint_eq(r->to.tag.len, KZ_SIP_TAG_LEN);
  ck_assert(kz_slice_eq(r->call_id, req->call_id));
  ck_assert_uint_eq(r->cseq.num, 314159);
  ck_assert_int_eq(r->cseq.method, KZ_SIP_METHOD_INVITE);
  ck_assert_uint_eq(r->nrroutes, 2);
  ck_assert(kz_slice_eq(r->rroutes[0].raw, req->rroutes[0].raw));
  ck_assert(kz_slice_eq(r->rroutes[1].raw, req->rroutes[1].raw));
  ck_assert_uint_eq(r->nroutes, 0);
  ck_assert(kz_sip_msg_hdr(r, KZ_SIP_HDR_TIMESTAMP) == NULL);
  ck_assert_uint_eq(r->ncontacts, 1);
  ck_assert_int_eq(r->content_length, 0);
  kz_deref(r);

  /* 100: no To tag, Timestamp echoed, no Record-Route. */
  kz_buf_reset(&b);
  spec = (struct kz_sip_resp_spec){.status = 100};
  ck_assert_int_eq(kz_sip_build_response(&b, req, &spec, NULL), 0);
  r = tt_parse(b.data, b.len);
  ck_assert(kz_slice_eq_cstr(r->reason, "Trying"));
  ck_assert(r->to.tag.p == NULL);
  ck_assert(kz_slice_eq_cstr(tt_hdr_value(r, KZ_SIP_HDR_TIMESTAMP, &v), "54.2"));
  ck_assert_uint_eq(r->nrroutes, 0);
  kz_deref(r);

  /* 486 with a given tag and reason, a body; no Record-Route on failure. */
  kz_buf_reset(&b);
  spec = (struct kz_sip_resp_spec){.status = 486,
                                   .reason = "Busy Now",
                                   .to_tag = KZ_SLICE_LIT("bobtag"),
                                   .extra_headers = KZ_SLICE_LIT("Retry-After: 30\r\n"),
                                   .content_type = KZ_SLICE_LIT("text/plain"),
                                   .body = KZ_SLICE_LIT("busy")};
  ck_assert_int_eq(kz_sip_build_response(&b, req, &spec, NULL), 0);
  r = tt_parse(b.data, b.len);
  ck_assert_uint_eq(r->status, 486);
  ck_assert(kz_slice_eq_cstr(r->reason, "Busy Now"));
  ck_assert(kz_slice_eq_cstr(r->to.tag, "bobtag"));
  ck_assert_uint_eq(r->nrroutes, 0);
  ck_assert(kz_sip_msg_hdr(r, KZ_SIP_HDR_RETRY_AFTER) != NULL);
  ck_assert(kz_slice_eq_cstr(r->body, "busy"));
  ck_assert_int_eq(r->content_length, 4);
  kz_deref(r);

  /* A tag is needed but neither given nor drawable. */
  spec = (struct kz_sip_resp_spec){.status = 200};
  ck_assert_int_eq(kz_sip_build_response(&b, req, &spec, NULL), KZ_EINVAL);
  spec.status = 99;
  ck_assert_int_eq(kz_sip_build_response(&b, req, &spec, &g), KZ_EINVAL);
  spec.no_record_route = true;
  spec.status = 200;
  kz_buf_reset(&b);
  ck_assert_int_eq(kz_sip_build_response(&b, req, &spec, &g), 0);
  r = tt_parse(b.data, b.len);
  ck_assert_uint_eq(r->nrroutes, 0);
  kz_deref(r);
  kz_deref(req);

  /* A request whose To already has a tag keeps it, and a response to a
   * non-dialog-creating request gets no Record-Route. */
  static const char opts[] = "OPTIONS sip:bob@b.example SIP/2.0\r\n"
                             "Via: SIP/2.0/UDP a.example;branch=z9hG4bKo1\r\n"
                             "Record-Route: <sip:p.example;lr>\r\n"
                             "From: <sip:alice@a.example>;tag=a\r\n"
                             "To: <sip:bob@b.example>;tag=b\r\n"
                             "Call-ID: x\r\nCSeq: 2 OPTIONS\r\nContent-Length: 0\r\n\r\n";
  req = tt_parse(opts, sizeof opts - 1);
  kz_buf_reset(&b);
  spec = (struct kz_sip_resp_spec){.status = 200};
  ck_assert_int_eq(kz_sip_build_response(&b, req, &spec, NULL), 0);
  r = tt_parse(b.data, b.len);
  ck_assert(kz_slice_eq_cstr(r->to.tag, "b"));
  ck_assert_uint_eq(tt_count_hdr(r, KZ_SIP_HDR_TO), 1);
  ck_assert_uint_eq(r->nrroutes, 0);
  ck_assert_int_eq(r->cseq.method, KZ_SIP_METHOD_OPTIONS);
  kz_deref(r);
  /* A response is not a request. */
  ck_assert_int_eq(kz_sip_build_response(&b, req, NULL, NULL), KZ_EINVAL);
  kz_deref(req);
  kz_buf_free(&b);
  kz_buf_free(&v);
}
END_TEST

START_TEST(ack_for_non_2xx) {
  struct kz_sip_msg *inv = tt_parse(relayed_invite, sizeof relayed_invite - 1);
  struct kz_buf b = {0};
  struct kz_sip_resp_spec spec = {.status = 486, .to_tag = KZ_SLICE_LIT("xyz")};
  ck_assert_int_eq(kz_sip_build_response(&b, inv, &spec, NULL), 0);
  struct kz_sip_msg *resp = tt_parse(b.data, b.len);
  kz_buf_reset(&b);
  ck_assert_int_eq(kz_sip_build_ack(&b, inv, resp), 0);
  struct kz_sip_msg *ack = tt_parse(b.data, b.len);
  ck_assert_int_eq(ack->method, KZ_SIP_METHOD_ACK);
  ck_assert(kz_slice_eq(ack->ruri.raw, inv->ruri.raw));
  ck_assert_uint_eq(ack->nvias, 1);
  ck_assert(kz_slice_eq(ack->vias[0].raw, inv->vias[0].raw));
  ck_assert(kz_slice_eq(ack->from.raw, inv->from.raw));
  ck_assert(kz_slice_eq_cstr(ack->to.tag, "xyz"));
  ck_assert(kz_slice_eq(ack->call_id, inv->call_id));
  ck_assert_uint_eq(ack->cseq.num, inv->cseq.num);
  ck_assert_int_eq(ack->cseq.method, KZ_SIP_METHOD_ACK);
  ck_assert_uint_eq(ack->nroutes, 1);
  ck_assert(kz_slice_eq(ack->routes[0].raw, inv->routes[0].raw));
  ck_assert_uint_eq(ack->nrroutes, 0);
  ck_assert_int_eq(ack->max_forwards, 70);
  ck_assert_int_eq(ack->content_length, 0);
  kz_deref(ack);
  kz_deref(resp);
  /* Not for a 2xx: that ACK is the TU's, with its own branch. */
  kz_buf_reset(&b);
  spec.status = 200;
  ck_assert_int_eq(kz_sip_build_response(&b, inv, &spec, NULL), 0);
  resp = tt_parse(b.data, b.len);
  ck_assert_int_eq(kz_sip_build_ack(&b, inv, resp), KZ_EINVAL);
  ck_assert_int_eq(kz_sip_build_ack(&b, resp, resp), KZ_EINVAL);
  kz_deref(resp);
  kz_deref(inv);
  kz_buf_free(&b);
}
END_TEST

START_TEST(cancel_9_1) {
  struct kz_sip_msg *inv = tt_parse(relayed_invite, sizeof relayed_invite - 1);
  struct kz_buf b = {0};
  ck_assert_int_eq(kz_sip_build_cancel(&b, inv), 0);
  struct kz_sip_msg *c = tt_parse(b.data, b.len);
  ck_assert_int_eq(c->method, KZ_SIP_METHOD_CANCEL);
  ck_assert(kz_slice_eq(c->ruri.raw, inv->ruri.raw));
  ck_assert_uint_eq(c->nvias, 1);
  ck_assert(kz_slice_eq(c->vias[0].branch, inv->vias[0].branch));
  ck_assert(kz_slice_eq(c->from.raw, inv->from.raw));
  ck_assert(kz_slice_eq(c->to.raw, inv->to.raw));
  ck_assert(kz_slice_eq(c->call_id, inv->call_id));
  ck_assert_uint_eq(c->cseq.num, inv->cseq.num);
  ck_assert_int_eq(c->cseq.method, KZ_SIP_METHOD_CANCEL);
  ck_assert_uint_eq(c->nroutes, 1);
  ck_assert_int_eq(c->content_length, 0);
  /* A CANCEL is not cancelled. */
  ck_assert_int_eq(kz_sip_build_cancel(&b, c), KZ_EINVAL);
  kz_deref(c);
  kz_deref(inv);
  kz_buf_free(&b);
}
END_TEST

START_TEST(reason_phrases) {
  ck_assert_str_eq(kz_sip_reason_phrase(100), "Trying");
  ck_assert_str_eq(kz_sip_reason_phrase(200), "OK");
  ck_assert_str_eq(kz_sip_reason_phrase(481), "Call/Transaction Does Not Exist");
  ck_assert_str_eq(kz_sip_reason_phrase(487), "Request Terminated");
  ck_assert_str_eq(kz_sip_reason_phrase(603), "Decline");
  ck_assert_str_eq(kz_sip_reason_phrase(299), "Unknown");
}
END_TEST

/* Each allocation of a build may fail: the result is KZ_ENOMEM with the
 * buffer unchanged, or a complete message. */
START_TEST(build_alloc_failures) {
  struct kz_sip_req_spec spec = invite_spec();
  bool done = false;
  for (int64_t k = 0; !done && k < 64; k++) {
    struct kz_prng g;
    kz_prng_seed(&g, 4);
    struct kz_buf b = {0};
    int64_t live = kz_mem_live_blocks();
    kz_mem_fail_after(k);
    int rc = kz_sip_build_request(&b, &spec, &g);
    kz_mem_fail_after(-1);
    if (rc == 0) {
      done = true;
      struct kz_sip_msg *m = tt_parse(b.data, b.len);
      kz_deref(m);
    } else {
      ck_assert_int_eq(rc, KZ_ENOMEM);
      ck_assert_uint_eq(b.len, 0);
    }
    kz_buf_free(&b);
    ck_assert_int_eq(kz_mem_live_blocks(), live);
  }
  ck_assert(done);
}
END_TEST

void txn_tests_build(Suite *s) {
  TCase *tc = kz_tcase(s, "build", 10);
  tcase_add_test(tc, request_parses);
  tcase_add_test(tc, request_given_fields);
  tcase_add_test(tc, response_8_2_6);
  tcase_add_test(tc, ack_for_non_2xx);
  tcase_add_test(tc, cancel_9_1);
  tcase_add_test(tc, reason_phrases);
  tcase_add_test(tc, build_alloc_failures);
}
