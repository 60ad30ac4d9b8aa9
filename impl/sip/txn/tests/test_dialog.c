/* test_dialog.c — dialog tests (RFC 3261 §12): creation on both sides, route sets, loose and strict routing, CSeq order. */
#include <stdio.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sip_build.h"
#include "kz/sip_dialog.h"
#include "kz_test.h"
#include "txn_tests.h"

/* The INVITE Alice's UA sent (built by the builder, fixed fields). */
static struct kz_sip_msg *uac_invite(const char *ruri) {
  struct kz_sip_req_spec spec = {
      .method = "INVITE",
      .ruri = kz_slice_cstr(ruri),
      .via_sent_by = KZ_SLICE_LIT("pc33.atlanta.com"),
      .branch = KZ_SLICE_LIT("z9hG4bK776asdhds"),
      .from = KZ_SLICE_LIT("Alice <sip:alice@atlanta.com>"),
      .from_tag = KZ_SLICE_LIT("1928301774"),
      .to = KZ_SLICE_LIT("Bob <sip:bob@biloxi.com>"),
      .call_id = KZ_SLICE_LIT("a84b4c76e66710@pc33.atlanta.com"),
      .cseq = 314159,
      .contact = KZ_SLICE_LIT("<sip:alice@pc33.atlanta.com>"),
  };
  struct kz_buf b = {0};
  ck_assert_int_eq(kz_sip_build_request(&b, &spec, NULL), 0);
  struct kz_sip_msg *m = tt_parse(b.data, b.len);
  kz_buf_free(&b);
  return m;
}

/* A response to req as it arrives at the UAC: the proxies' Record-Route
 * (rr: header lines, may be ""), Bob's Contact. */
static struct kz_sip_msg *response(const struct kz_sip_msg *req, uint16_t status,
                                   const char *tag, const char *contact, const char *rr) {
  char extra[512];
  snprintf(extra, sizeof extra, "%s", rr);
  struct kz_buf b = {0};
  struct kz_sip_resp_spec spec = {.status = status,
                                  .to_tag = kz_slice_cstr(tag),
                                  .contact = kz_slice_cstr(contact),
                                  .extra_headers = kz_slice_cstr(extra)};
  ck_assert_int_eq(kz_sip_build_response(&b, req, &spec, NULL), 0);
  struct kz_sip_msg *m = tt_parse(b.data, b.len);
  kz_buf_free(&b);
  return m;
}

static struct kz_sip_msg *build_in_dialog(struct kz_sip_dialog *d, const char *method,
                                          uint32_t cseq, struct kz_prng *g) {
  struct kz_sip_dialog_req_spec spec = {
      .method = method,
      .via_sent_by = KZ_SLICE_LIT("pc33.atlanta.com"),
      .cseq = cseq,
  };
  struct kz_buf b = {0};
  ck_assert_int_eq(kz_sip_dialog_build_request(d, &b, &spec, g), 0);
  struct kz_sip_msg *m = tt_parse(b.data, b.len);
  kz_buf_free(&b);
  return m;
}

START_TEST(uac_2xx_loose_routes) {
  struct kz_sip_msg *inv = uac_invite("sip:bob@biloxi.com");
  struct kz_sip_msg *ok = response(inv, 200, "a6c85cf", "<sip:bob@192.0.2.4>",
                                   "Record-Route: <sip:server10.biloxi.com;lr>, "
                                   "<sip:bigbox3.site3.atlanta.com;lr>\r\n");
  struct kz_sip_dialog *d = NULL;
  ck_assert_int_eq(kz_sip_dialog_new_uac(&d, inv, ok), 0);
  ck_assert_int_eq(d->state, KZ_SIP_DIALOG_CONFIRMED);
  ck_assert(d->uac);
  ck_assert(!d->secure);
  ck_assert_str_eq(d->call_id, "a84b4c76e66710@pc33.atlanta.com");
  ck_assert_str_eq(d->local_tag, "1928301774");
  ck_assert_str_eq(d->remote_tag, "a6c85cf");
  ck_assert_str_eq(d->local_uri, "Alice <sip:alice@atlanta.com>");
  ck_assert_str_eq(d->remote_uri, "Bob <sip:bob@biloxi.com>");
  ck_assert_str_eq(d->remote_target, "sip:bob@192.0.2.4");
  ck_assert_uint_eq(d->local_cseq, 314159);
  ck_assert(!d->remote_cseq_set);
  /* The UAC reverses the Record-Route. */
  ck_assert_uint_eq(d->nroutes, 2);
  ck_assert_str_eq(d->routes[0].value, "<sip:bigbox3.site3.atlanta.com;lr>");
  ck_assert_str_eq(d->routes[1].value, "<sip:server10.biloxi.com;lr>");
  ck_assert(d->routes[0].lr && d->routes[1].lr);
  ck_assert_str_eq(kz_sip_dialog_next_hop(d), "sip:bigbox3.site3.atlanta.com;lr");
  ck_assert(kz_sip_dialog_matches(d, ok));
  /* Our own request (our tag in From) is not a request from the peer. */
  ck_assert(!kz_sip_dialog_matches(d, inv));

  /* BYE: loose routing, Request-URI = remote target, Route = route set. */
  struct kz_prng g;
  kz_prng_seed(&g, 5);
  struct kz_sip_msg *bye = build_in_dialog(d, "BYE", 0, &g);
  ck_assert_int_eq(bye->method, KZ_SIP_METHOD_BYE);
  ck_assert(kz_slice_eq_cstr(bye->ruri.raw, "sip:bob@192.0.2.4"));
  ck_assert_uint_eq(bye->nroutes, 2);
  ck_assert(kz_slice_eq_cstr(bye->routes[0].uri.raw, "sip:bigbox3.site3.atlanta.com;lr"));
  ck_assert(kz_slice_eq_cstr(bye->routes[1].uri.raw, "sip:server10.biloxi.com;lr"));
  ck_assert(kz_slice_eq_cstr(bye->from.tag, "1928301774"));
  ck_assert(kz_slice_eq_cstr(bye->to.tag, "a6c85cf"));
  ck_assert(kz_slice_eq_cstr(bye->to.uri.raw, "sip:bob@biloxi.com"));
  ck_assert(kz_slice_eq(bye->call_id, inv->call_id));
  ck_assert_uint_eq(bye->cseq.num, 314160);
  ck_assert_int_eq(bye->cseq.method, KZ_SIP_METHOD_BYE);
  ck_assert_uint_eq(bye->vias[0].branch.len, KZ_SIP_BRANCH_LEN);
  ck_assert(!kz_slice_eq(bye->vias[0].branch, inv->vias[0].branch));
  ck_assert_uint_eq(d->local_cseq, 314160);
  kz_deref(bye);
  /* The ACK for the 2xx reuses the INVITE's number when asked to. */
  struct kz_sip_msg *ack = build_in_dialog(d, "ACK", 314159, &g);
  ck_assert_uint_eq(ack->cseq.num, 314159);
  ck_assert_int_eq(ack->cseq.method, KZ_SIP_METHOD_ACK);
  ck_assert_uint_eq(d->local_cseq, 314160);
  kz_deref(ack);
  /* Each new request takes the next number. */
  struct kz_sip_msg *info = build_in_dialog(d, "INFO", 0, &g);
  ck_assert_uint_eq(info->cseq.num, 314161);
  kz_deref(info);

  kz_deref(d);
  kz_deref(ok);
  kz_deref(inv);
}
END_TEST

START_TEST(uac_strict_routes) {
  struct kz_sip_msg *inv = uac_invite("sips:bob@biloxi.com");
  /* The proxy next to Bob is a strict (RFC 2543) router: no ;lr. */
  struct kz_sip_msg *ok = response(inv, 200, "t2", "<sip:bob@192.0.2.4;transport=tcp>",
                                   "Record-Route: <sip:strict.biloxi.com>\r\n"
                                   "Record-Route: <sip:loose.atlanta.com;lr>\r\n");
  struct kz_sip_dialog *d = NULL;
  ck_assert_int_eq(kz_sip_dialog_new_uac(&d, inv, ok), 0);
  ck_assert(d->secure);
  ck_assert_uint_eq(d->nroutes, 2);
  ck_assert_str_eq(d->routes[0].uri, "sip:loose.atlanta.com;lr");
  ck_assert_str_eq(d->routes[1].uri, "sip:strict.biloxi.com");
  ck_assert(!d->routes[1].lr);
  struct kz_prng g;
  kz_prng_seed(&g, 6);
  /* First route loose: ordinary. */
  struct kz_sip_msg *bye = build_in_dialog(d, "BYE", 0, &g);
  ck_assert(kz_slice_eq_cstr(bye->ruri.raw, "sip:bob@192.0.2.4;transport=tcp"));
  ck_assert_uint_eq(bye->nroutes, 2);
  kz_deref(bye);
  kz_deref(d);
  kz_deref(ok);

  /* Now with the strict router first (§12.2.1.1): Request-URI = its
   * URI, Route = the rest, then the remote target. */
  ok = response(inv, 200, "t3", "<sip:bob@192.0.2.4>",
                "Record-Route: <sip:p3.biloxi.com;lr>\r\n"
                "Record-Route: <sip:strict.atlanta.com;maddr=10.0.0.1>\r\n");
  ck_assert_int_eq(kz_sip_dialog_new_uac(&d, inv, ok), 0);
  bye = build_in_dialog(d, "BYE", 0, &g);
  ck_assert(kz_slice_eq_cstr(bye->ruri.raw, "sip:strict.atlanta.com;maddr=10.0.0.1"));
  ck_assert_uint_eq(bye->nroutes, 2);
  ck_assert(kz_slice_eq_cstr(bye->routes[0].uri.raw, "sip:p3.biloxi.com;lr"));
  ck_assert(kz_slice_eq_cstr(bye->routes[1].uri.raw, "sip:bob@192.0.2.4"));
  ck_assert_str_eq(kz_sip_dialog_next_hop(d), "sip:strict.atlanta.com;maddr=10.0.0.1");
  kz_deref(bye);
  kz_deref(d);
  kz_deref(ok);

  /* No route set: Request-URI = remote target, no Route. */
  ok = response(inv, 200, "t4", "<sip:bob@192.0.2.4>", "");
  ck_assert_int_eq(kz_sip_dialog_new_uac(&d, inv, ok), 0);
  bye = build_in_dialog(d, "BYE", 0, &g);
  ck_assert(kz_slice_eq_cstr(bye->ruri.raw, "sip:bob@192.0.2.4"));
  ck_assert_uint_eq(bye->nroutes, 0);
  ck_assert_str_eq(kz_sip_dialog_next_hop(d), "sip:bob@192.0.2.4");
  kz_deref(bye);
  kz_deref(d);
  kz_deref(ok);
  kz_deref(inv);
}
END_TEST

START_TEST(uac_early_to_confirmed) {
  struct kz_sip_msg *inv = uac_invite("sip:bob@biloxi.com");
  struct kz_sip_msg *ring = response(inv, 180, "e1", "<sip:bob@10.0.0.9>",
                                     "Record-Route: <sip:p1.example.com;lr>\r\n");
  struct kz_sip_dialog *d = NULL;
  ck_assert_int_eq(kz_sip_dialog_new_uac(&d, inv, ring), 0);
  ck_assert_int_eq(d->state, KZ_SIP_DIALOG_EARLY);
  ck_assert_uint_eq(d->nroutes, 1);
  /* The 2xx confirms it, recomputes the route set and the target. */
  struct kz_sip_msg *ok =
      response(inv, 200, "e1", "<sip:bob@192.0.2.4>",
               "Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n");
  ck_assert_int_eq(kz_sip_dialog_on_response(d, ok), 0);
  ck_assert_int_eq(d->state, KZ_SIP_DIALOG_CONFIRMED);
  ck_assert_str_eq(d->remote_target, "sip:bob@192.0.2.4");
  ck_assert_uint_eq(d->nroutes, 2);
  ck_assert_str_eq(d->routes[0].uri, "sip:p1.example.com;lr");
  ck_assert_str_eq(d->routes[1].uri, "sip:p2.example.com;lr");
  /* A response of another dialog (other To tag) is refused. */
  struct kz_sip_msg *other = response(inv, 200, "e2", "<sip:bob@192.0.2.5>", "");
  ck_assert(!kz_sip_dialog_matches(d, other));
  ck_assert_int_eq(kz_sip_dialog_on_response(d, other), KZ_EINVAL);
  /* Without To tag or with a 100, no dialog. */
  struct kz_sip_dialog *x = NULL;
  struct kz_sip_msg *trying = response(inv, 100, "", "", "");
  ck_assert_int_eq(kz_sip_dialog_new_uac(&x, inv, trying), KZ_EINVAL);
  struct kz_sip_msg *nocontact = response(inv, 200, "e3", "", "");
  ck_assert_int_eq(kz_sip_dialog_new_uac(&x, inv, nocontact), KZ_EPROTO);
  ck_assert_ptr_null(x);
  kz_deref(nocontact);
  kz_deref(trying);
  kz_deref(other);
  kz_deref(ok);
  kz_deref(ring);
  kz_deref(d);
  kz_deref(inv);
}
END_TEST

/* Bob's side: an INVITE that came through two record-routing proxies. */
static const char uas_invite[] =
    "INVITE sip:bob@192.0.2.4 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP server10.biloxi.com;branch=z9hG4bK4b43c2ff8.1\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8\r\n"
    "Record-Route: <sip:server10.biloxi.com;lr>, <sip:bigbox3.site3.atlanta.com;lr>\r\n"
    "To: Bob <sip:bob@biloxi.com>\r\n"
    "From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@pc33.atlanta.com>\r\n"
    "Content-Length: 0\r\n\r\n";

static struct kz_sip_msg *peer_in_dialog(const char *method, unsigned cseq, const char *contact) {
  char buf[1024];
  int n = snprintf(buf, sizeof buf,
                   "%s sip:bob@192.0.2.4 SIP/2.0\r\n"
                   "Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKx%u%s\r\n"
                   "To: Bob <sip:bob@biloxi.com>;tag=bobtag\r\n"
                   "From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
                   "Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
                   "CSeq: %u %s\r\n"
                   "%s%s%s"
                   "Content-Length: 0\r\n\r\n",
                   method, cseq, method, cseq, method, contact ? "Contact: " : "",
                   contact ? contact : "", contact ? "\r\n" : "");
  return tt_parse(buf, (size_t)n);
}

START_TEST(uas_dialog_cseq_order) {
  struct kz_sip_msg *inv = tt_parse(uas_invite, sizeof uas_invite - 1);
  struct kz_buf b = {0};
  struct kz_sip_resp_spec spec = {.status = 200,
                                  .to_tag = KZ_SLICE_LIT("bobtag"),
                                  .contact = KZ_SLICE_LIT("<sip:bob@192.0.2.4>")};
  ck_assert_int_eq(kz_sip_build_response(&b, inv, &spec, NULL), 0);
  struct kz_sip_msg *ok = tt_parse(b.data, b.len);
  struct kz_sip_dialog *d = NULL;
  ck_assert_int_eq(kz_sip_dialog_new_uas(&d, inv, ok), 0);
  ck_assert(!d->uac);
  ck_assert_int_eq(d->state, KZ_SIP_DIALOG_CONFIRMED);
  ck_assert_str_eq(d->local_tag, "bobtag");
  ck_assert_str_eq(d->remote_tag, "1928301774");
  ck_assert_str_eq(d->local_uri, "Bob <sip:bob@biloxi.com>");
  ck_assert_str_eq(d->remote_uri, "Alice <sip:alice@atlanta.com>");
  ck_assert_str_eq(d->remote_target, "sip:alice@pc33.atlanta.com");
  /* The UAS keeps the Record-Route order. */
  ck_assert_uint_eq(d->nroutes, 2);
  ck_assert_str_eq(d->routes[0].uri, "sip:server10.biloxi.com;lr");
  ck_assert_str_eq(d->routes[1].uri, "sip:bigbox3.site3.atlanta.com;lr");
  ck_assert(d->remote_cseq_set);
  ck_assert_uint_eq(d->remote_cseq, 314159);
  ck_assert_uint_eq(d->local_cseq, 0);

  /* The ACK reuses the INVITE's number: fine. */
  struct kz_sip_msg *r = peer_in_dialog("ACK", 314159, NULL);
  ck_assert(kz_sip_dialog_matches(d, r));
  ck_assert_int_eq(kz_sip_dialog_on_request(d, r), 0);
  kz_deref(r);
  /* Lower or equal CSeq: out of order, the TU answers 500. */
  r = peer_in_dialog("INFO", 314159, NULL);
  ck_assert_int_eq(kz_sip_dialog_on_request(d, r), KZ_ERANGE);
  kz_deref(r);
  r = peer_in_dialog("INFO", 100, NULL);
  ck_assert_int_eq(kz_sip_dialog_on_request(d, r), KZ_ERANGE);
  kz_deref(r);
  /* A re-INVITE with a higher number and a new Contact refreshes the target. */
  r = peer_in_dialog("INVITE", 314160, "<sip:alice@198.51.100.7>");
  ck_assert_int_eq(kz_sip_dialog_on_request(d, r), 0);
  ck_assert_uint_eq(d->remote_cseq, 314160);
  ck_assert_str_eq(d->remote_target, "sip:alice@198.51.100.7");
  kz_deref(r);
  /* An INFO with a Contact is not a target refresh. */
  r = peer_in_dialog("INFO", 314170, "<sip:alice@203.0.113.1>");
  ck_assert_int_eq(kz_sip_dialog_on_request(d, r), 0);
  ck_assert_str_eq(d->remote_target, "sip:alice@198.51.100.7");
  kz_deref(r);
  /* A request of another dialog is refused. */
  ck_assert_int_eq(kz_sip_dialog_on_request(d, inv), KZ_EINVAL);

  /* Bob's first request draws a random CSeq below 2^31, then counts up;
   * From carries Bob's tag, To Alice's. */
  struct kz_prng g;
  kz_prng_seed(&g, 7);
  struct kz_sip_msg *bye = build_in_dialog(d, "BYE", 0, &g);
  ck_assert(bye->cseq.num >= 1 && bye->cseq.num < 0x80000000u);
  ck_assert(kz_slice_eq_cstr(bye->from.tag, "bobtag"));
  ck_assert(kz_slice_eq_cstr(bye->to.tag, "1928301774"));
  ck_assert(kz_slice_eq_cstr(bye->ruri.raw, "sip:alice@198.51.100.7"));
  ck_assert_uint_eq(bye->nroutes, 2);
  ck_assert(kz_slice_eq_cstr(bye->routes[0].uri.raw, "sip:server10.biloxi.com;lr"));
  uint32_t first = bye->cseq.num;
  kz_deref(bye);
  bye = build_in_dialog(d, "OPTIONS", 0, &g);
  ck_assert_uint_eq(bye->cseq.num, first + 1);
  kz_deref(bye);

  kz_deref(d);
  /* A 180 makes an early UAS dialog; the 2xx confirms it. */
  kz_buf_reset(&b);
  spec.status = 180;
  ck_assert_int_eq(kz_sip_build_response(&b, inv, &spec, NULL), 0);
  struct kz_sip_msg *ring = tt_parse(b.data, b.len);
  ck_assert_int_eq(kz_sip_dialog_new_uas(&d, inv, ring), 0);
  ck_assert_int_eq(d->state, KZ_SIP_DIALOG_EARLY);
  kz_sip_dialog_confirm(d);
  ck_assert_int_eq(d->state, KZ_SIP_DIALOG_CONFIRMED);
  kz_deref(d);
  kz_deref(ring);
  kz_deref(ok);
  kz_deref(inv);
  kz_buf_free(&b);
}
END_TEST

START_TEST(dialog_alloc_failures) {
  struct kz_sip_msg *inv = uac_invite("sip:bob@biloxi.com");
  struct kz_sip_msg *ok = response(inv, 200, "af", "<sip:bob@192.0.2.4>",
                                   "Record-Route: <sip:a.example;lr>, <sip:b.example>\r\n");
  bool done = false;
  for (int64_t k = 0; !done && k < 100; k++) {
    int64_t live = kz_mem_live_blocks();
    struct kz_sip_dialog *d = NULL;
    kz_mem_fail_after(k);
    int rc = kz_sip_dialog_new_uac(&d, inv, ok);
    kz_mem_fail_after(-1);
    if (rc == 0) {
      done = true;
      ck_assert_uint_eq(d->nroutes, 2);
      kz_deref(d);
    } else {
      ck_assert_int_eq(rc, KZ_ENOMEM);
      ck_assert_ptr_null(d);
    }
    ck_assert_int_eq(kz_mem_live_blocks(), live);
  }
  ck_assert(done);
  kz_deref(ok);
  kz_deref(inv);
}
END_TEST

void txn_tests_dialog(Suite *s) {
  TCase *tc = kz_tcase(s, "dialog", 10);
  tcase_add_test(tc, uac_2xx_loose_routes);
  tcase_add_test(tc, uac_strict_routes);
  tcase_add_test(tc, uac_early_to_confirmed);
  tcase_add_test(tc, uas_dialog_cseq_order);
  tcase_add_test(tc, dialog_alloc_failures);
}
