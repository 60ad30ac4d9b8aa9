/* test_txn.c — transaction layer tests: RFC 3261 §17 state machines and timers driven by a fake clock, matching, transport errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sip_build.h"
#include "kz/sip_txn.h"
#include "kz_test.h"
#include "txn_tests.h"

#define MS KZ_SIP_MS
#define T1 (500 * MS)

/* ------------------------------------------------------------------ */
/* A fake transaction user: records what the layer sends and tells.     */

#define MAXREC 96

struct sent {
  uint8_t *data; /* malloc'ed: the recorder must not depend on kz_malloc */
  size_t len;
  struct kz_addr to;
  enum kz_sip_transport tp;
  uint64_t at;
};

struct rec {
  enum kz_sip_txl_ev_type type;
  struct kz_sip_txn *txn;
  struct kz_sip_txn *cancel_target;
  uint16_t status;
  enum kz_sip_method method;
  int error;
};

struct tu {
  struct kz_sip_txl *txl;
  struct kz_prng prng;
  uint64_t now;
  struct sent sent[MAXREC];
  size_t nsent;
  struct rec ev[MAXREC];
  size_t nev;
  int fail_send;         /* send() returns this when non-zero */
  uint16_t answer;       /* answer new server transactions at once with this */
  struct kz_sip_txn *last_new; /* last server transaction reported */
};

static int tu_send(void *arg, const uint8_t *bytes, size_t len, const struct kz_addr *dest,
                   enum kz_sip_transport tp) {
  struct tu *tu = arg;
  if (tu->fail_send) return tu->fail_send;
  ck_assert_uint_lt(tu->nsent, MAXREC);
  struct sent *s = &tu->sent[tu->nsent++];
  s->data = malloc(len);
  ck_assert_ptr_nonnull(s->data);
  memcpy(s->data, bytes, len);
  s->len = len;
  s->to = *dest;
  s->tp = tp;
  s->at = tu->now;
  return 0;
}

static void respond(struct tu *tu, struct kz_sip_txn *t, uint16_t status, const char *tag);

static void tu_event(void *arg, const struct kz_sip_txl_event *ev) {
  struct tu *tu = arg;
  ck_assert_uint_lt(tu->nev, MAXREC);
  struct rec *r = &tu->ev[tu->nev++];
  r->type = ev->type;
  r->txn = ev->txn;
  r->cancel_target = ev->cancel_target;
  r->error = ev->error;
  if (ev->msg) {
    r->status = ev->msg->status;
    r->method = ev->msg->is_request ? ev->msg->method : ev->msg->cseq.method;
  }
  if (ev->type == KZ_SIP_TXL_EV_REQUEST && ev->txn) {
    tu->last_new = ev->txn;
    if (tu->answer) respond(tu, ev->txn, tu->answer, "uastag");
  }
}

static const struct kz_sip_txl_cbs cbs = {tu_send, tu_event};

static void tu_init(struct tu *tu, const struct kz_sip_txl_config *cfg) {
  memset(tu, 0, sizeof *tu);
  kz_prng_seed(&tu->prng, 42);
  ck_assert_int_eq(kz_sip_txl_new(&tu->txl, cfg, &cbs, tu), 0);
}

static void tu_clear_sent(struct tu *tu) {
  for (size_t i = 0; i < tu->nsent; i++) free(tu->sent[i].data);
  tu->nsent = 0;
}

static void tu_free(struct tu *tu) {
  kz_sip_txl_free(tu->txl);
  tu_clear_sent(tu);
}

/* Advances the fake clock to t, firing every deadline on the way at its
 * exact time. */
static void run_to(struct tu *tu, uint64_t t) {
  for (;;) {
    uint64_t d = kz_sip_txl_next_expiry(tu->txl);
    if (d > t) break;
    ck_assert_uint_ge(d, tu->now);
    tu->now = d;
    kz_sip_txl_handle_expiry(tu->txl, d);
  }
  tu->now = t;
}

static struct kz_sip_msg *sent_msg(struct tu *tu, size_t i) {
  ck_assert_uint_lt(i, tu->nsent);
  return tt_parse(tu->sent[i].data, tu->sent[i].len);
}

static size_t count_ev(struct tu *tu, enum kz_sip_txl_ev_type type) {
  size_t n = 0;
  for (size_t i = 0; i < tu->nev; i++) n += tu->ev[i].type == type;
  return n;
}

static void feed(struct tu *tu, const void *data, size_t len, enum kz_sip_transport tp) {
  struct kz_sip_msg *m = NULL;
  ck_assert_int_eq(kz_sip_msg_parse(&m, data, len, 0, NULL), 0);
  struct kz_addr src = kz_addr_v4(0xc0000201, 5060); /* 192.0.2.1 */
  ck_assert_int_eq(kz_sip_txl_recv(tu->txl, m, &src, tp, tu->now), 0);
  kz_deref(m);
}

/* Feeds a response to `req` as the peer would send it. */
static void feed_response(struct tu *tu, const struct kz_sip_msg *req, uint16_t status,
                          const char *tag, enum kz_sip_transport tp) {
  struct kz_buf b = {0};
  struct kz_sip_resp_spec spec = {.status = status, .to_tag = kz_slice_cstr(tag)};
  ck_assert_int_eq(kz_sip_build_response(&b, req, &spec, NULL), 0);
  feed(tu, b.data, b.len, tp);
  kz_buf_free(&b);
}

/* The TU answers server transaction t. */
static void respond(struct tu *tu, struct kz_sip_txn *t, uint16_t status, const char *tag) {
  struct kz_buf b = {0};
  struct kz_sip_resp_spec spec = {.status = status, .to_tag = kz_slice_cstr(tag)};
  ck_assert_int_eq(kz_sip_build_response(&b, kz_sip_txn_request(t), &spec, NULL), 0);
  ck_assert_int_eq(kz_sip_txn_respond(t, b.data, b.len, tu->now), 0);
  kz_buf_free(&b);
}

/* Starts a client transaction for a request built with the builder. */
static struct kz_sip_txn *client(struct tu *tu, const char *method, enum kz_sip_transport tp) {
  struct kz_sip_req_spec spec = {
      .method = method,
      .ruri = KZ_SLICE_LIT("sip:bob@biloxi.example.com"),
      .via_transport = tp == KZ_SIP_TRANSPORT_UDP ? KZ_SLICE_LIT("UDP") : KZ_SLICE_LIT("TCP"),
      .via_sent_by = KZ_SLICE_LIT("pc33.atlanta.example.com"),
      .from = KZ_SLICE_LIT("<sip:alice@atlanta.example.com>"),
      .to = KZ_SLICE_LIT("<sip:bob@biloxi.example.com>"),
      .contact = KZ_SLICE_LIT("<sip:alice@192.0.2.1>"),
  };
  struct kz_buf b = {0};
  ck_assert_int_eq(kz_sip_build_request(&b, &spec, &tu->prng), 0);
  struct kz_addr dest = kz_addr_v4(0xc0000204, 5060);
  struct kz_sip_txn *t = NULL;
  ck_assert_int_eq(kz_sip_txl_request(tu->txl, b.data, b.len, &dest, tp, NULL, tu->now, &t), 0);
  kz_buf_free(&b);
  ck_assert_ptr_nonnull(t);
  return t;
}

/* A request as a peer sends it; branch NULL leaves the Via without one
 * (RFC 2543 style, as in the kamailio thacxx0005 SIPp scenario). */
static size_t peer_request(char *out, size_t cap, const char *method, const char *branch,
                           const char *from_tag, const char *to_tag, unsigned cseq,
                           const char *cseq_method) {
  int n = snprintf(out, cap,
                   "%s sip:service@192.0.2.9:5060 SIP/2.0\r\n"
                   "Via: SIP/2.0/UDP 192.0.2.1:5061%s%s\r\n"
                   "From: sipp <sip:sipp@192.0.2.1:5061>;tag=%s\r\n"
                   "To: sut <sip:service@192.0.2.9:5060>%s%s\r\n"
                   "Call-ID: 1-4242@192.0.2.1\r\n"
                   "CSeq: %u %s\r\n"
                   "Contact: sip:sipp@192.0.2.1:5061\r\n"
                   "Max-Forwards: 70\r\n"
                   "Content-Length: 0\r\n\r\n",
                   method, branch ? ";branch=" : "", branch ? branch : "", from_tag,
                   to_tag ? ";tag=" : "", to_tag ? to_tag : "", cseq,
                   cseq_method ? cseq_method : method);
  ck_assert(n > 0 && (size_t)n < cap);
  return (size_t)n;
}

/* ------------------------------------------------------------------ */
/* INVITE client (§17.1.1)                                             */

START_TEST(invite_client_a_b) {
  struct tu tu;
  tu_init(&tu, NULL);
  struct kz_sip_txn *t = client(&tu, "INVITE", KZ_SIP_TRANSPORT_UDP);
  ck_assert_int_eq(kz_sip_txn_state(t), KZ_SIP_TXN_CALLING);
  ck_assert_uint_eq(tu.nsent, 1);
  ck_assert_uint_eq(kz_sip_txl_next_expiry(tu.txl), T1);
  ck_assert(kz_addr_eq(&tu.sent[0].to, &(struct kz_addr){0}) == false);
  run_to(&tu, 64 * T1 - 1);
  /* Timer A: T1, 2T1, 4T1... after the previous one. */
  static const uint64_t at[] = {0, 1, 3, 7, 15, 31, 63};
  ck_assert_uint_eq(tu.nsent, 7);
  for (size_t i = 0; i < 7; i++) {
    ck_assert_uint_eq(tu.sent[i].at, at[i] * T1);
    ck_assert_uint_eq(tu.sent[i].len, tu.sent[0].len);
    ck_assert(memcmp(tu.sent[i].data, tu.sent[0].data, tu.sent[0].len) == 0);
  }
  ck_assert_uint_eq(tu.nev, 0);
  /* Timer B at 64*T1. */
  ck_assert_uint_eq(kz_sip_txl_next_expiry(tu.txl), 64 * T1);
  run_to(&tu, 64 * T1);
  ck_assert_uint_eq(tu.nev, 2);
  ck_assert_int_eq(tu.ev[0].type, KZ_SIP_TXL_EV_TIMEOUT);
  ck_assert_ptr_eq(tu.ev[0].txn, t);
  ck_assert_int_eq(tu.ev[1].type, KZ_SIP_TXL_EV_TERMINATED);
  ck_assert_uint_eq(kz_sip_txl_count(tu.txl), 0);
  ck_assert_uint_eq(kz_sip_txl_next_expiry(tu.txl), UINT64_MAX);
  ck_assert_uint_eq(tu.nsent, 7);
  tu_free(&tu);
}
END_TEST

START_TEST(invite_client_non2xx_ack_d) {
  struct tu tu;
  tu_init(&tu, NULL);
  struct kz_sip_txn *t = client(&tu, "INVITE", KZ_SIP_TRANSPORT_UDP);
  struct kz_sip_msg *inv = sent_msg(&tu, 0);
  tu.now = 100 * MS;
  feed_response(&tu, inv, 100, NULL, KZ_SIP_TRANSPORT_UDP);
  feed_response(&tu, inv, 180, "b1", KZ_SIP_TRANSPORT_UDP);
  ck_assert_int_eq(kz_sip_txn_state(t), KZ_SIP_TXN_PROCEEDING);
  ck_assert_uint_eq(tu.nev, 2);
  ck_assert_int_eq(tu.ev[1].type, KZ_SIP_TXL_EV_RESPONSE);
  ck_assert_uint_eq(tu.ev[1].status, 180);
  /* A provisional response stops A (and B). */
  ck_assert_uint_eq(kz_sip_txl_next_expiry(tu.txl), UINT64_MAX);
  run_to(&tu, 40000 * MS);
  ck_assert_uint_eq(tu.nsent, 1);
  /* 486: the transaction ACKs it and tells the TU. */
  feed_response(&tu, inv, 486, "b1", KZ_SIP_TRANSPORT_UDP);
  ck_assert_int_eq(kz_sip_txn_state(t), KZ_SIP_TXN_COMPLETED);
  ck_assert_uint_eq(tu.nsent, 2);
  struct kz_sip_msg *ack = sent_msg(&tu, 1);
  ck_assert_int_eq(ack->method, KZ_SIP_METHOD_ACK);
  ck_assert(kz_slice_eq(ack->vias[0].branch, inv->vias[0].branch));
  ck_assert(kz_slice_eq(ack->ruri.raw, inv->ruri.raw));
  ck_assert(kz_slice_eq_cstr(ack->to.tag, "b1"));
  ck_assert_uint_eq(ack->cseq.num, inv->cseq.num);
  kz_deref(ack);
  ck_assert_uint_eq(tu.nev, 3);
  ck_assert_uint_eq(tu.ev[2].status, 486);
  ck_assert_uint_eq(kz_sip_txn_last_status(t), 486);
  /* A retransmitted final response: the ACK again, the TU not bothered. */
  tu.now += 1000 * MS;
  feed_response(&tu, inv, 486, "b1", KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nsent, 3);
  ck_assert_uint_eq(tu.sent[2].len, tu.sent[1].len);
  ck_assert(memcmp(tu.sent[2].data, tu.sent[1].data, tu.sent[1].len) == 0);
  ck_assert_uint_eq(tu.nev, 3);
  /* Timer D: 32 s after the first final response. */
  ck_assert_uint_eq(kz_sip_txl_next_expiry(tu.txl), 40000 * MS + 32000 * MS);
  run_to(&tu, 72000 * MS);
  ck_assert_uint_eq(tu.nev, 4);
  ck_assert_int_eq(tu.ev[3].type, KZ_SIP_TXL_EV_TERMINATED);
  ck_assert_uint_eq(kz_sip_txl_count(tu.txl), 0);
  kz_deref(inv);
  tu_free(&tu);
}
END_TEST

START_TEST(invite_client_2xx) {
  struct tu tu;
  tu_init(&tu, NULL);
  struct kz_sip_txn *t = client(&tu, "INVITE", KZ_SIP_TRANSPORT_UDP);
  struct kz_sip_msg *inv = sent_msg(&tu, 0);
  /* A 2xx in Calling: to the TU, and the transaction ends. */
  run_to(&tu, 700 * MS);
  feed_response(&tu, inv, 200, "b2", KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nev, 2);
  ck_assert_int_eq(tu.ev[0].type, KZ_SIP_TXL_EV_RESPONSE);
  ck_assert_ptr_eq(tu.ev[0].txn, t);
  ck_assert_uint_eq(tu.ev[0].status, 200);
  ck_assert_int_eq(tu.ev[1].type, KZ_SIP_TXL_EV_TERMINATED);
  ck_assert_uint_eq(kz_sip_txl_count(tu.txl), 0);
  ck_assert_uint_eq(tu.nsent, 2); /* the request and one A retransmission; no ACK */
  /* The 2xx retransmission reaches the TU (it sends the ACK). */
  feed_response(&tu, inv, 200, "b2", KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nev, 3);
  ck_assert_int_eq(tu.ev[2].type, KZ_SIP_TXL_EV_RESPONSE);
  ck_assert_ptr_null(tu.ev[2].txn);
  ck_assert_uint_eq(tu.ev[2].status, 200);
  ck_assert_uint_eq(kz_sip_txl_next_expiry(tu.txl), UINT64_MAX);
  kz_deref(inv);
  tu_free(&tu);
}
END_TEST

/* RFC 6026 §8.4: a forking proxy may relay one fork's 4xx and then
 * another fork's 2xx.  The 2xx arriving while the transaction is in
 * Completed (Timer D running) must reach the TU, which ACKs it and keeps
 * the dialog; the transaction neither ACKs it nor changes state. */
START_TEST(invite_client_2xx_while_completed) {
  struct tu tu;
  tu_init(&tu, NULL);
  struct kz_sip_txn *t = client(&tu, "INVITE", KZ_SIP_TRANSPORT_UDP);
  struct kz_sip_msg *inv = sent_msg(&tu, 0);
  tu.now = 100 * MS;
  feed_response(&tu, inv, 486, "fork1", KZ_SIP_TRANSPORT_UDP);
  ck_assert_int_eq(kz_sip_txn_state(t), KZ_SIP_TXN_COMPLETED);
  ck_assert_uint_eq(tu.nsent, 2); /* INVITE, ACK for the 486 */
  ck_assert_uint_eq(tu.nev, 1);
  uint64_t timer_d = kz_sip_txl_next_expiry(tu.txl);
  ck_assert_uint_eq(timer_d, 100 * MS + 32000 * MS);

  tu.now = 200 * MS;
  feed_response(&tu, inv, 200, "fork2", KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nev, 2);
  ck_assert_int_eq(tu.ev[1].type, KZ_SIP_TXL_EV_RESPONSE);
  ck_assert_uint_eq(tu.ev[1].status, 200);
  ck_assert_int_eq(tu.ev[1].method, KZ_SIP_METHOD_INVITE);
  ck_assert_ptr_null(tu.ev[1].txn); /* as for a 2xx after termination */
  ck_assert_uint_eq(tu.nsent, 2);   /* the TU ACKs a 2xx, not the transaction */
  ck_assert_int_eq(kz_sip_txn_state(t), KZ_SIP_TXN_COMPLETED);
  ck_assert_uint_eq(kz_sip_txl_next_expiry(tu.txl), timer_d);

  /* Its retransmission reaches the TU too; the 486 one is still absorbed. */
  tu.now = 700 * MS;
  feed_response(&tu, inv, 200, "fork2", KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nev, 3);
  ck_assert_int_eq(tu.ev[2].type, KZ_SIP_TXL_EV_RESPONSE);
  ck_assert_ptr_null(tu.ev[2].txn);
  feed_response(&tu, inv, 486, "fork1", KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nev, 3);
  ck_assert_uint_eq(tu.nsent, 3); /* the ACK again */

  run_to(&tu, timer_d);
  ck_assert_uint_eq(tu.nev, 4);
  ck_assert_int_eq(tu.ev[3].type, KZ_SIP_TXL_EV_TERMINATED);
  ck_assert_uint_eq(kz_sip_txl_count(tu.txl), 0);
  kz_deref(inv);
  tu_free(&tu);
}
END_TEST

START_TEST(invite_client_cancel) {
  struct tu tu;
  tu_init(&tu, NULL);
  struct kz_sip_txn *t = client(&tu, "INVITE", KZ_SIP_TRANSPORT_UDP);
  struct kz_sip_txn *c = NULL;
  /* §9.1: not before a provisional response. */
  ck_assert_int_eq(kz_sip_txl_cancel(tu.txl, t, NULL, tu.now, &c), KZ_EINVAL);
  struct kz_sip_msg *inv = sent_msg(&tu, 0);
  feed_response(&tu, inv, 180, "b3", KZ_SIP_TRANSPORT_UDP);
  ck_assert_int_eq(kz_sip_txl_cancel(tu.txl, t, NULL, tu.now, &c), 0);
  ck_assert_uint_eq(kz_sip_txl_count(tu.txl), 2);
  ck_assert(!kz_sip_txn_is_invite(c));
  struct kz_sip_msg *cm = sent_msg(&tu, 1);
  ck_assert_int_eq(cm->method, KZ_SIP_METHOD_CANCEL);
  ck_assert(kz_slice_eq(cm->vias[0].branch, inv->vias[0].branch));
  ck_assert(kz_addr_eq(&tu.sent[1].to, &tu.sent[0].to));
  /* The 200 to the CANCEL and the 487 to the INVITE go to their own
   * transactions although they share the branch. */
  feed_response(&tu, cm, 200, "b3", KZ_SIP_TRANSPORT_UDP);
  feed_response(&tu, inv, 487, "b3", KZ_SIP_TRANSPORT_UDP);
  ck_assert_int_eq(kz_sip_txn_state(c), KZ_SIP_TXN_COMPLETED);
  ck_assert_int_eq(kz_sip_txn_state(t), KZ_SIP_TXN_COMPLETED);
  ck_assert_uint_eq(tu.nev, 3);
  ck_assert_ptr_eq(tu.ev[1].txn, c);
  ck_assert_uint_eq(tu.ev[1].status, 200);
  ck_assert_ptr_eq(tu.ev[2].txn, t);
  ck_assert_uint_eq(tu.ev[2].status, 487);
  kz_deref(cm);
  kz_deref(inv);
  tu_free(&tu);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Non-INVITE client (§17.1.2)                                         */

START_TEST(non_invite_client_e_f) {
  struct tu tu;
  tu_init(&tu, NULL);
  struct kz_sip_txn *t = client(&tu, "OPTIONS", KZ_SIP_TRANSPORT_UDP);
  ck_assert_int_eq(kz_sip_txn_state(t), KZ_SIP_TXN_TRYING);
  run_to(&tu, 64 * T1 - 1);
  /* E: T1, 2T1, 4T1, then capped at T2 = 8 T1. */
  static const uint64_t at[] = {0, 1, 3, 7, 15, 23, 31, 39, 47, 55, 63};
  ck_assert_uint_eq(tu.nsent, 11);
  for (size_t i = 0; i < 11; i++) ck_assert_uint_eq(tu.sent[i].at, at[i] * T1);
  run_to(&tu, 64 * T1);
  ck_assert_uint_eq(tu.nev, 2);
  ck_assert_int_eq(tu.ev[0].type, KZ_SIP_TXL_EV_TIMEOUT);
  ck_assert_int_eq(tu.ev[1].type, KZ_SIP_TXL_EV_TERMINATED);
  ck_assert_uint_eq(kz_sip_txl_count(tu.txl), 0);
  tu_free(&tu);
}
END_TEST

START_TEST(non_invite_client_proceeding_k) {
  struct tu tu;
  struct kz_sip_txl_config cfg = {.t2 = 2000 * MS}; /* a smaller T2 shows the cap */
  tu_init(&tu, &cfg);
  struct kz_sip_txn *t = client(&tu, "REGISTER", KZ_SIP_TRANSPORT_UDP);
  struct kz_sip_msg *req = sent_msg(&tu, 0);
  tu.now = 100 * MS;
  feed_response(&tu, req, 100, NULL, KZ_SIP_TRANSPORT_UDP);
  ck_assert_int_eq(kz_sip_txn_state(t), KZ_SIP_TXN_PROCEEDING);
  ck_assert_uint_eq(tu.nev, 1);
  /* In Proceeding, E keeps firing every T2. */
  run_to(&tu, 5000 * MS);
  ck_assert_uint_eq(tu.nsent, 4);
  ck_assert_uint_eq(tu.sent[1].at, 500 * MS);
  ck_assert_uint_eq(tu.sent[2].at, 2500 * MS);
  ck_assert_uint_eq(tu.sent[3].at, 4500 * MS);
  feed_response(&tu, req, 200, "r1", KZ_SIP_TRANSPORT_UDP);
  ck_assert_int_eq(kz_sip_txn_state(t), KZ_SIP_TXN_COMPLETED);
  ck_assert_uint_eq(tu.nev, 2);
  ck_assert_uint_eq(tu.ev[1].status, 200);
  /* Retransmissions of the final response are absorbed in Completed. */
  feed_response(&tu, req, 200, "r1", KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nev, 2);
  /* K = T4 = 5 s; no more retransmissions. */
  ck_assert_uint_eq(kz_sip_txl_next_expiry(tu.txl), 10000 * MS);
  run_to(&tu, 20000 * MS);
  ck_assert_uint_eq(tu.nsent, 4);
  ck_assert_uint_eq(tu.nev, 3);
  ck_assert_int_eq(tu.ev[2].type, KZ_SIP_TXL_EV_TERMINATED);
  kz_deref(req);
  tu_free(&tu);
}
END_TEST

/* ------------------------------------------------------------------ */
/* INVITE server (§17.2.1)                                             */

START_TEST(invite_server_trying_g_ack_i) {
  struct tu tu;
  tu_init(&tu, NULL);
  char req[1024];
  size_t n = peer_request(req, sizeof req, "INVITE", "z9hG4bKinv1", "f1", NULL, 1, NULL);
  feed(&tu, req, n, KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nev, 1);
  ck_assert_int_eq(tu.ev[0].type, KZ_SIP_TXL_EV_REQUEST);
  ck_assert_uint_eq(tu.ev[0].method, KZ_SIP_METHOD_INVITE);
  struct kz_sip_txn *t = tu.ev[0].txn;
  ck_assert(kz_sip_txn_is_server(t) && kz_sip_txn_is_invite(t));
  ck_assert_int_eq(kz_sip_txn_state(t), KZ_SIP_TXN_PROCEEDING);
  /* The TU is silent: the layer sends 100 Trying at 200 ms. */
  ck_assert_uint_eq(kz_sip_txl_next_expiry(tu.txl), 200 * MS);
  run_to(&tu, 300 * MS);
  ck_assert_uint_eq(tu.nsent, 1);
  struct kz_sip_msg *r = sent_msg(&tu, 0);
  ck_assert_uint_eq(r->status, 100);
  ck_assert_ptr_null(r->to.tag.p);
  ck_assert(kz_slice_eq_cstr(r->vias[0].branch, "z9hG4bKinv1"));
  kz_deref(r);
  struct kz_addr src = kz_addr_v4(0xc0000201, 5060);
  ck_assert(kz_addr_eq(&tu.sent[0].to, &src));
  /* A retransmitted INVITE gets the last provisional again. */
  feed(&tu, req, n, KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nsent, 2);
  ck_assert_uint_eq(tu.nev, 1);
  /* 486: G retransmits at T1, 2T1, 4T1, then T2; H waits 64 T1. */
  tu.now = 1000 * MS;
  respond(&tu, t, 486, "s1");
  ck_assert_int_eq(kz_sip_txn_state(t), KZ_SIP_TXN_COMPLETED);
  ck_assert_uint_eq(tu.nsent, 3);
  run_to(&tu, 1000 * MS + 15 * T1);
  static const uint64_t g_at[] = {1, 3, 7, 15};
  ck_assert_uint_eq(tu.nsent, 7);
  for (size_t i = 0; i < 4; i++) {
    ck_assert_uint_eq(tu.sent[3 + i].at, 1000 * MS + g_at[i] * T1);
    ck_assert(tu.sent[3 + i].len == tu.sent[2].len &&
              memcmp(tu.sent[3 + i].data, tu.sent[2].data, tu.sent[2].len) == 0);
  }
  /* A retransmitted INVITE gets the final response. */
  feed(&tu, req, n, KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nsent, 8);
  r = sent_msg(&tu, 7);
  ck_assert_uint_eq(r->status, 486);
  kz_deref(r);
  /* The ACK (same branch) confirms; G stops; I = T4. */
  n = peer_request(req, sizeof req, "ACK", "z9hG4bKinv1", "f1", "s1", 1, NULL);
  feed(&tu, req, n, KZ_SIP_TRANSPORT_UDP);
  ck_assert_int_eq(kz_sip_txn_state(t), KZ_SIP_TXN_CONFIRMED);
  ck_assert_uint_eq(tu.nev, 1); /* the ACK was absorbed, not passed up */
  ck_assert_uint_eq(kz_sip_txl_next_expiry(tu.txl), tu.now + 5000 * MS);
  feed(&tu, req, n, KZ_SIP_TRANSPORT_UDP); /* ACK retransmission absorbed */
  uint64_t acked = tu.now;
  run_to(&tu, acked + 5000 * MS);
  ck_assert_uint_eq(tu.nsent, 8);
  ck_assert_uint_eq(tu.nev, 2);
  ck_assert_int_eq(tu.ev[1].type, KZ_SIP_TXL_EV_TERMINATED);
  ck_assert_uint_eq(kz_sip_txl_count(tu.txl), 0);
  tu_free(&tu);
}
END_TEST

START_TEST(invite_server_h_timeout) {
  struct tu tu;
  tu_init(&tu, NULL);
  char req[1024];
  size_t n = peer_request(req, sizeof req, "INVITE", "z9hG4bKinv2", "f2", NULL, 1, NULL);
  tu.answer = 603;
  feed(&tu, req, n, KZ_SIP_TRANSPORT_UDP);
  struct kz_sip_txn *t = tu.last_new;
  ck_assert_int_eq(kz_sip_txn_state(t), KZ_SIP_TXN_COMPLETED);
  ck_assert_uint_eq(kz_sip_txn_last_status(t), 603);
  /* No 100 Trying: the TU answered first. */
  run_to(&tu, 64 * T1);
  /* G: 1,3,7,15,23,31,39,47,55,63 T1 (capped at T2), then H at 64 T1. */
  ck_assert_uint_eq(tu.nsent, 11);
  for (size_t i = 0; i < tu.nsent; i++) {
    struct kz_sip_msg *r = sent_msg(&tu, i);
    ck_assert_uint_eq(r->status, 603);
    kz_deref(r);
  }
  ck_assert_uint_eq(tu.nev, 3);
  ck_assert_uint_eq(count_ev(&tu, KZ_SIP_TXL_EV_TIMEOUT), 1);
  ck_assert_int_eq(tu.ev[1].type, KZ_SIP_TXL_EV_TIMEOUT);
  ck_assert_ptr_eq(tu.ev[1].txn, t);
  ck_assert_int_eq(tu.ev[2].type, KZ_SIP_TXL_EV_TERMINATED);
  ck_assert_uint_eq(kz_sip_txl_count(tu.txl), 0);
  tu_free(&tu);
}
END_TEST

START_TEST(invite_server_2xx) {
  struct tu tu;
  tu_init(&tu, NULL);
  char req[1024];
  size_t n = peer_request(req, sizeof req, "INVITE", "z9hG4bKinv3", "f3", NULL, 1, NULL);
  tu.answer = 180;
  feed(&tu, req, n, KZ_SIP_TRANSPORT_UDP);
  tu.answer = 0;
  struct kz_sip_txn *t = tu.last_new;
  /* The TU sent a provisional at once: no automatic 100. */
  run_to(&tu, 1000 * MS);
  ck_assert_uint_eq(tu.nsent, 1);
  kz_ref(t); /* keep it past termination to check its state */
  respond(&tu, t, 200, "uastag");
  ck_assert_uint_eq(tu.nsent, 2);
  ck_assert_int_eq(kz_sip_txn_state(t), KZ_SIP_TXN_TERMINATED);
  ck_assert_int_eq(tu.ev[tu.nev - 1].type, KZ_SIP_TXL_EV_TERMINATED);
  /* A terminated transaction refuses further responses. */
  struct kz_buf b = {0};
  struct kz_sip_resp_spec spec = {.status = 200, .to_tag = KZ_SLICE_LIT("uastag")};
  ck_assert_int_eq(kz_sip_build_response(&b, kz_sip_txn_request(t), &spec, NULL), 0);
  ck_assert_int_eq(kz_sip_txn_respond(t, b.data, b.len, tu.now), KZ_EINVAL);
  kz_buf_free(&b);
  kz_deref(t);
  /* The ACK for the 2xx has its own branch: it goes to the TU. */
  size_t nev = tu.nev;
  n = peer_request(req, sizeof req, "ACK", "z9hG4bKack3", "f3", "uastag", 1, NULL);
  feed(&tu, req, n, KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nev, nev + 1);
  ck_assert_int_eq(tu.ev[nev].type, KZ_SIP_TXL_EV_REQUEST);
  ck_assert_ptr_null(tu.ev[nev].txn);
  ck_assert_uint_eq(tu.ev[nev].method, KZ_SIP_METHOD_ACK);
  ck_assert_uint_eq(kz_sip_txl_count(tu.txl), 0);
  tu_free(&tu);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Non-INVITE server (§17.2.2)                                         */

START_TEST(non_invite_server_j) {
  struct tu tu;
  tu_init(&tu, NULL);
  char req[1024];
  size_t n = peer_request(req, sizeof req, "OPTIONS", "z9hG4bKopt1", "f4", NULL, 5, NULL);
  feed(&tu, req, n, KZ_SIP_TRANSPORT_UDP);
  struct kz_sip_txn *t = tu.last_new;
  ck_assert_int_eq(kz_sip_txn_state(t), KZ_SIP_TXN_TRYING);
  /* Trying: a retransmission is absorbed silently; no automatic 100. */
  feed(&tu, req, n, KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nsent, 0);
  ck_assert_uint_eq(tu.nev, 1);
  ck_assert_uint_eq(kz_sip_txl_next_expiry(tu.txl), UINT64_MAX);
  respond(&tu, t, 200, "o1");
  ck_assert_int_eq(kz_sip_txn_state(t), KZ_SIP_TXN_COMPLETED);
  ck_assert_uint_eq(tu.nsent, 1);
  /* Completed: each retransmission gets the final response again. */
  feed(&tu, req, n, KZ_SIP_TRANSPORT_UDP);
  feed(&tu, req, n, KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nsent, 3);
  ck_assert_uint_eq(tu.nev, 1);
  /* A second final response is refused. */
  struct kz_buf b = {0};
  struct kz_sip_resp_spec spec = {.status = 500, .to_tag = KZ_SLICE_LIT("o1")};
  ck_assert_int_eq(kz_sip_build_response(&b, kz_sip_txn_request(t), &spec, NULL), 0);
  ck_assert_int_eq(kz_sip_txn_respond(t, b.data, b.len, tu.now), KZ_EINVAL);
  kz_buf_free(&b);
  /* J = 64 T1. */
  ck_assert_uint_eq(kz_sip_txl_next_expiry(tu.txl), 64 * T1);
  run_to(&tu, 64 * T1);
  ck_assert_uint_eq(tu.nev, 2);
  ck_assert_int_eq(tu.ev[1].type, KZ_SIP_TXL_EV_TERMINATED);
  /* After J the same request is new again. */
  feed(&tu, req, n, KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nev, 3);
  ck_assert_int_eq(tu.ev[2].type, KZ_SIP_TXL_EV_REQUEST);
  ck_assert_ptr_nonnull(tu.ev[2].txn);
  tu_free(&tu);
}
END_TEST

START_TEST(server_response_mismatch) {
  struct tu tu;
  tu_init(&tu, NULL);
  char req[1024];
  size_t n = peer_request(req, sizeof req, "OPTIONS", "z9hG4bKopt2", "f5", NULL, 5, NULL);
  feed(&tu, req, n, KZ_SIP_TRANSPORT_UDP);
  struct kz_sip_txn *t = tu.last_new;
  /* A response to another request (other CSeq) is refused. */
  char other[1024];
  size_t m = peer_request(other, sizeof other, "OPTIONS", "z9hG4bKopt3", "f5", NULL, 6, NULL);
  struct kz_sip_msg *om = tt_parse(other, m);
  struct kz_buf b = {0};
  struct kz_sip_resp_spec spec = {.status = 200, .to_tag = KZ_SLICE_LIT("x")};
  ck_assert_int_eq(kz_sip_build_response(&b, om, &spec, NULL), 0);
  ck_assert_int_eq(kz_sip_txn_respond(t, b.data, b.len, tu.now), KZ_EINVAL);
  /* A request is not a response. */
  ck_assert_int_eq(kz_sip_txn_respond(t, req, n, tu.now), KZ_EPROTO);
  ck_assert_int_eq(kz_sip_txn_respond(t, "garbage", 7, tu.now), KZ_EPROTO);
  ck_assert_uint_eq(tu.nsent, 0);
  kz_buf_free(&b);
  kz_deref(om);
  tu_free(&tu);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Matching                                                            */

START_TEST(cancel_matches_invite) {
  struct tu tu;
  tu_init(&tu, NULL);
  char req[1024];
  size_t n = peer_request(req, sizeof req, "INVITE", "z9hG4bKc1", "f6", NULL, 1, NULL);
  feed(&tu, req, n, KZ_SIP_TRANSPORT_UDP);
  struct kz_sip_txn *inv = tu.last_new;
  respond(&tu, inv, 180, "s6");
  /* A CANCEL with the INVITE's branch: a new transaction, and the TU
   * learns which INVITE it cancels. */
  char can[1024];
  size_t cn = peer_request(can, sizeof can, "CANCEL", "z9hG4bKc1", "f6", NULL, 1, NULL);
  feed(&tu, can, cn, KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nev, 2);
  ck_assert_int_eq(tu.ev[1].type, KZ_SIP_TXL_EV_REQUEST);
  ck_assert_uint_eq(tu.ev[1].method, KZ_SIP_METHOD_CANCEL);
  ck_assert_ptr_eq(tu.ev[1].cancel_target, inv);
  struct kz_sip_txn *ct = tu.ev[1].txn;
  ck_assert_ptr_ne(ct, inv);
  ck_assert(!kz_sip_txn_is_invite(ct));
  ck_assert_uint_eq(kz_sip_txl_count(tu.txl), 2);
  respond(&tu, ct, 200, "s6");
  respond(&tu, inv, 487, "s6");
  ck_assert_int_eq(kz_sip_txn_state(inv), KZ_SIP_TXN_COMPLETED);
  /* A CANCEL retransmission gets its 200 again, not a new transaction. */
  size_t sent = tu.nsent;
  feed(&tu, can, cn, KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nsent, sent + 1);
  struct kz_sip_msg *r = sent_msg(&tu, sent);
  ck_assert_uint_eq(r->status, 200);
  ck_assert_int_eq(r->cseq.method, KZ_SIP_METHOD_CANCEL);
  kz_deref(r);
  ck_assert_uint_eq(tu.nev, 2);
  /* A CANCEL for an unknown branch: no target (the TU answers 481). */
  cn = peer_request(can, sizeof can, "CANCEL", "z9hG4bKnone", "f6", NULL, 1, NULL);
  feed(&tu, can, cn, KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nev, 3);
  ck_assert_ptr_nonnull(tu.ev[2].txn);
  ck_assert_ptr_null(tu.ev[2].cancel_target);
  tu_free(&tu);
}
END_TEST

START_TEST(same_branch_other_sent_by) {
  struct tu tu;
  tu_init(&tu, NULL);
  char req[1024];
  size_t n = peer_request(req, sizeof req, "OPTIONS", "z9hG4bKdup", "f7", NULL, 1, NULL);
  feed(&tu, req, n, KZ_SIP_TRANSPORT_UDP);
  /* §17.2.3: the sent-by is part of the match; another host's request
   * with the same branch is another transaction. */
  char *via = strstr(req, "192.0.2.1:5061");
  memcpy(via, "192.0.2.7", 9);
  feed(&tu, req, n, KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nev, 2);
  ck_assert_ptr_ne(tu.ev[0].txn, tu.ev[1].txn);
  /* ...and a different method is another transaction too. */
  n = peer_request(req, sizeof req, "INFO", "z9hG4bKdup", "f7", NULL, 1, NULL);
  feed(&tu, req, n, KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nev, 3);
  ck_assert_uint_eq(kz_sip_txl_count(tu.txl), 3);
  tu_free(&tu);
}
END_TEST

START_TEST(rfc2543_fallback) {
  struct tu tu;
  tu_init(&tu, NULL);
  /* The kamailio thacxx0005 UAC sends no branch at all. */
  char req[1024];
  size_t n = peer_request(req, sizeof req, "INVITE", NULL, "1", NULL, 1, NULL);
  feed(&tu, req, n, KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nev, 1);
  struct kz_sip_txn *t = tu.last_new;
  ck_assert_ptr_nonnull(t);
  /* A retransmission matches by Request-URI, tags, Call-ID, CSeq, Via. */
  respond(&tu, t, 180, "u1");
  feed(&tu, req, n, KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nev, 1);
  ck_assert_uint_eq(tu.nsent, 2);
  /* Another call leg (other From tag) is another transaction. */
  char other[1024];
  size_t on = peer_request(other, sizeof other, "INVITE", NULL, "2", NULL, 1, NULL);
  feed(&tu, other, on, KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nev, 2);
  struct kz_sip_txn *t2 = tu.last_new;
  ck_assert_ptr_ne(t2, t);
  /* A branch without the magic cookie also goes by the 2543 rules. */
  on = peer_request(other, sizeof other, "INVITE", "oldstyle1", "3", NULL, 1, NULL);
  feed(&tu, other, on, KZ_SIP_TRANSPORT_UDP);
  feed(&tu, other, on, KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nev, 3);
  /* CANCEL matches the INVITE by the same fields. */
  char can[1024];
  size_t cn = peer_request(can, sizeof can, "CANCEL", NULL, "1", NULL, 1, NULL);
  feed(&tu, can, cn, KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nev, 4);
  ck_assert_ptr_eq(tu.ev[3].cancel_target, t);
  respond(&tu, tu.ev[3].txn, 200, "u1");
  respond(&tu, t, 487, "u1");
  /* The ACK carries the tag of the response: it matches and confirms. */
  char ack[1024];
  size_t an = peer_request(ack, sizeof ack, "ACK", NULL, "1", "u1", 1, NULL);
  feed(&tu, ack, an, KZ_SIP_TRANSPORT_UDP);
  ck_assert_int_eq(kz_sip_txn_state(t), KZ_SIP_TXN_CONFIRMED);
  ck_assert_uint_eq(tu.nev, 4);
  /* An ACK with another To tag does not match the transaction. */
  an = peer_request(ack, sizeof ack, "ACK", NULL, "2", "zz", 1, NULL);
  respond(&tu, t2, 480, "u2");
  feed(&tu, ack, an, KZ_SIP_TRANSPORT_UDP);
  ck_assert_int_eq(kz_sip_txn_state(t2), KZ_SIP_TXN_COMPLETED);
  ck_assert_uint_eq(tu.nev, 5);
  ck_assert_ptr_null(tu.ev[4].txn);
  an = peer_request(ack, sizeof ack, "ACK", NULL, "2", "u2", 1, NULL);
  feed(&tu, ack, an, KZ_SIP_TRANSPORT_UDP);
  ck_assert_int_eq(kz_sip_txn_state(t2), KZ_SIP_TXN_CONFIRMED);
  tu_free(&tu);
}
END_TEST

START_TEST(thacxx0005_scenario) {
  /* The INVITE of shared/corpora/sipp/kamailio__thacxx0005__uac.xml,
   * keywords filled in as SIPp would. */
  static const char inv[] =
      "INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n"
      "Via: SIP/2.0/UDP 127.0.0.1:5061\r\n"
      "From: sipp <sip:sipp@127.0.0.1:5061>;tag=1\r\n"
      "To: sut <sip:service@127.0.0.1:5060>\r\n"
      "Call-ID: 1-1234@127.0.0.1\r\n"
      "Cseq: 1 INVITE\r\n"
      "Contact: sip:sipp@127.0.0.1:5061\r\n"
      "Content-Type: application/sdp\r\n"
      "Content-Length: 4\r\n\r\nv=0\n";
  static const char ack[] = "ACK sip:service@127.0.0.1:5060 SIP/2.0\r\n"
                            "Via: SIP/2.0/UDP 127.0.0.1:5061\r\n"
                            "From: sipp <sip:sipp@127.0.0.1:5061>;tag=1\r\n"
                            "To: sut <sip:service@127.0.0.1:5060>;tag=kz1\r\n"
                            "Call-ID: 1-1234@127.0.0.1\r\n"
                            "Cseq: 1 ACK\r\n"
                            "Contact: sip:sipp@127.0.0.1:5061\r\n"
                            "Content-Length: 0\r\n\r\n";
  struct tu tu;
  tu_init(&tu, NULL);
  feed(&tu, inv, sizeof inv - 1, KZ_SIP_TRANSPORT_UDP);
  struct kz_sip_txn *t = tu.last_new;
  run_to(&tu, 250 * MS); /* automatic 100 */
  feed(&tu, inv, sizeof inv - 1, KZ_SIP_TRANSPORT_UDP); /* retransmission */
  ck_assert_uint_eq(tu.nsent, 2);
  ck_assert_uint_eq(tu.nev, 1);
  respond(&tu, t, 404, "kz1");
  feed(&tu, ack, sizeof ack - 1, KZ_SIP_TRANSPORT_UDP);
  ck_assert_int_eq(kz_sip_txn_state(t), KZ_SIP_TXN_CONFIRMED);
  ck_assert_uint_eq(tu.nev, 1);
  tu_free(&tu);
}
END_TEST

START_TEST(stray_response) {
  struct tu tu;
  tu_init(&tu, NULL);
  static const char resp[] = "SIP/2.0 200 OK\r\n"
                             "Via: SIP/2.0/UDP 192.0.2.1\r\n"
                             "From: <sip:a@a>;tag=1\r\nTo: <sip:b@b>;tag=2\r\n"
                             "Call-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
  feed(&tu, resp, sizeof resp - 1, KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nev, 1);
  ck_assert_int_eq(tu.ev[0].type, KZ_SIP_TXL_EV_RESPONSE);
  ck_assert_ptr_null(tu.ev[0].txn);
  ck_assert_int_eq(kz_sip_txl_recv(tu.txl, NULL, &(struct kz_addr){0}, 0, 0), KZ_EINVAL);
  tu_free(&tu);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Transport errors (§17.1.4, §17.2.4) and reliable transports          */

START_TEST(transport_errors) {
  struct tu tu;
  tu_init(&tu, NULL);
  /* The first send fails: nothing is created, the error comes back. */
  tu.fail_send = KZ_EHOSTUNREACH;
  struct kz_sip_req_spec spec = {
      .method = "INVITE",
      .ruri = KZ_SLICE_LIT("sip:bob@b.example"),
      .via_sent_by = KZ_SLICE_LIT("a.example"),
      .from = KZ_SLICE_LIT("<sip:alice@a.example>"),
      .to = KZ_SLICE_LIT("<sip:bob@b.example>"),
  };
  struct kz_buf b = {0};
  ck_assert_int_eq(kz_sip_build_request(&b, &spec, &tu.prng), 0);
  struct kz_addr dest = kz_addr_v4(0x0a000001, 5060);
  struct kz_sip_txn *t = NULL;
  ck_assert_int_eq(kz_sip_txl_request(tu.txl, b.data, b.len, &dest, KZ_SIP_TRANSPORT_UDP, NULL,
                                      0, &t),
                   KZ_EHOSTUNREACH);
  ck_assert_ptr_null(t);
  ck_assert_uint_eq(kz_sip_txl_count(tu.txl), 0);
  ck_assert_uint_eq(tu.nev, 0);
  kz_buf_free(&b);
  /* A retransmission fails: TRANSPORT_ERROR then TERMINATED. */
  tu.fail_send = 0;
  t = client(&tu, "INVITE", KZ_SIP_TRANSPORT_UDP);
  tu.fail_send = KZ_ECONNREFUSED;
  run_to(&tu, T1);
  ck_assert_uint_eq(tu.nev, 2);
  ck_assert_int_eq(tu.ev[0].type, KZ_SIP_TXL_EV_TRANSPORT_ERROR);
  ck_assert_ptr_eq(tu.ev[0].txn, t);
  ck_assert_int_eq(tu.ev[0].error, KZ_ECONNREFUSED);
  ck_assert_int_eq(tu.ev[1].type, KZ_SIP_TXL_EV_TERMINATED);
  ck_assert_uint_eq(kz_sip_txl_count(tu.txl), 0);
  /* A server response that cannot be sent: reported, transaction ends,
   * respond itself succeeded. */
  tu.fail_send = 0;
  char req[1024];
  size_t n = peer_request(req, sizeof req, "OPTIONS", "z9hG4bKte", "f8", NULL, 1, NULL);
  feed(&tu, req, n, KZ_SIP_TRANSPORT_UDP);
  struct kz_sip_txn *s = tu.last_new;
  tu.fail_send = KZ_EHOSTUNREACH;
  respond(&tu, s, 200, "t8");
  ck_assert_int_eq(tu.ev[tu.nev - 2].type, KZ_SIP_TXL_EV_TRANSPORT_ERROR);
  ck_assert_ptr_eq(tu.ev[tu.nev - 2].txn, s);
  ck_assert_int_eq(tu.ev[tu.nev - 1].type, KZ_SIP_TXL_EV_TERMINATED);
  ck_assert_uint_eq(kz_sip_txl_count(tu.txl), 0);
  /* The ACK for a non-2xx cannot be sent: the TU still gets the
   * response, then the error, then the end. */
  tu.fail_send = 0;
  tu.nev = 0;
  t = client(&tu, "INVITE", KZ_SIP_TRANSPORT_UDP);
  struct kz_sip_msg *inv = sent_msg(&tu, tu.nsent - 1);
  tu.fail_send = KZ_EHOSTUNREACH;
  feed_response(&tu, inv, 503, "x", KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(tu.nev, 3);
  ck_assert_int_eq(tu.ev[0].type, KZ_SIP_TXL_EV_RESPONSE);
  ck_assert_uint_eq(tu.ev[0].status, 503);
  ck_assert_int_eq(tu.ev[1].type, KZ_SIP_TXL_EV_TRANSPORT_ERROR);
  ck_assert_int_eq(tu.ev[1].error, KZ_EHOSTUNREACH);
  ck_assert_int_eq(tu.ev[2].type, KZ_SIP_TXL_EV_TERMINATED);
  ck_assert_ptr_eq(tu.ev[2].txn, t);
  kz_deref(inv);
  tu_free(&tu);
}
END_TEST

START_TEST(trying_disabled) {
  struct tu tu;
  struct kz_sip_txl_config cfg = {.trying_delay = UINT64_MAX, .t1 = 100 * MS};
  tu_init(&tu, &cfg);
  char req[1024];
  size_t n = peer_request(req, sizeof req, "INVITE", "z9hG4bKnt", "f11", NULL, 1, NULL);
  feed(&tu, req, n, KZ_SIP_TRANSPORT_UDP);
  /* No automatic 100 and no timer at all until the TU answers. */
  ck_assert_uint_eq(kz_sip_txl_next_expiry(tu.txl), UINT64_MAX);
  run_to(&tu, 10000 * MS);
  ck_assert_uint_eq(tu.nsent, 0);
  /* A configured T1 scales G and H. */
  respond(&tu, tu.last_new, 404, "nt");
  ck_assert_uint_eq(kz_sip_txl_next_expiry(tu.txl), tu.now + 100 * MS);
  run_to(&tu, tu.now + 64 * 100 * MS);
  ck_assert_int_eq(tu.ev[tu.nev - 2].type, KZ_SIP_TXL_EV_TIMEOUT);
  ck_assert_uint_eq(kz_sip_txl_count(tu.txl), 0);
  tu_free(&tu);
}
END_TEST

START_TEST(reliable_timers) {
  struct tu tu;
  tu_init(&tu, NULL);
  /* INVITE client over TCP: no A, only B. */
  struct kz_sip_txn *t = client(&tu, "INVITE", KZ_SIP_TRANSPORT_TCP);
  ck_assert_uint_eq(kz_sip_txl_next_expiry(tu.txl), 64 * T1);
  ck_assert_int_eq(tu.sent[0].tp, KZ_SIP_TRANSPORT_TCP);
  run_to(&tu, 64 * T1 - 1);
  ck_assert_uint_eq(tu.nsent, 1);
  /* 486: ACK sent, D = 0: terminated at once. */
  struct kz_sip_msg *inv = sent_msg(&tu, 0);
  feed_response(&tu, inv, 486, "r", KZ_SIP_TRANSPORT_TCP);
  ck_assert_uint_eq(tu.nsent, 2);
  ck_assert_int_eq(tu.ev[0].type, KZ_SIP_TXL_EV_RESPONSE);
  ck_assert_ptr_eq(tu.ev[0].txn, t);
  ck_assert_int_eq(tu.ev[1].type, KZ_SIP_TXL_EV_TERMINATED);
  kz_deref(inv);
  /* Non-INVITE client over TCP: no E; final → K = 0. */
  tu_clear_sent(&tu);
  tu.nev = 0;
  t = client(&tu, "BYE", KZ_SIP_TRANSPORT_TCP);
  ck_assert_uint_eq(kz_sip_txl_next_expiry(tu.txl), tu.now + 64 * T1);
  struct kz_sip_msg *bye = sent_msg(&tu, 0);
  feed_response(&tu, bye, 200, "r", KZ_SIP_TRANSPORT_TCP);
  ck_assert_uint_eq(tu.nev, 2);
  ck_assert_int_eq(tu.ev[1].type, KZ_SIP_TXL_EV_TERMINATED);
  kz_deref(bye);
  /* INVITE server over TCP: no G, H still; ACK → I = 0. */
  tu_clear_sent(&tu);
  tu.nev = 0;
  char req[1024];
  size_t n = peer_request(req, sizeof req, "INVITE", "z9hG4bKtcp", "f9", NULL, 1, NULL);
  tu.answer = 486;
  feed(&tu, req, n, KZ_SIP_TRANSPORT_TCP);
  tu.answer = 0;
  ck_assert_uint_eq(tu.nsent, 1);
  ck_assert_int_eq(tu.sent[0].tp, KZ_SIP_TRANSPORT_TCP);
  ck_assert_uint_eq(kz_sip_txl_next_expiry(tu.txl), tu.now + 64 * T1);
  n = peer_request(req, sizeof req, "ACK", "z9hG4bKtcp", "f9", "uastag", 1, NULL);
  feed(&tu, req, n, KZ_SIP_TRANSPORT_TCP);
  ck_assert_int_eq(tu.ev[tu.nev - 1].type, KZ_SIP_TXL_EV_TERMINATED);
  ck_assert_uint_eq(kz_sip_txl_count(tu.txl), 0);
  /* Non-INVITE server over TCP: final → J = 0. */
  n = peer_request(req, sizeof req, "OPTIONS", "z9hG4bKtcp2", "f9", NULL, 2, NULL);
  tu.answer = 200;
  feed(&tu, req, n, KZ_SIP_TRANSPORT_TCP);
  ck_assert_int_eq(tu.ev[tu.nev - 1].type, KZ_SIP_TXL_EV_TERMINATED);
  ck_assert_uint_eq(kz_sip_txl_count(tu.txl), 0);
  ck_assert_uint_eq(kz_sip_txl_next_expiry(tu.txl), UINT64_MAX);
  tu_free(&tu);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */

START_TEST(free_with_live_transactions) {
  struct tu tu;
  tu_init(&tu, NULL);
  struct kz_sip_txn *t = client(&tu, "INVITE", KZ_SIP_TRANSPORT_UDP);
  client(&tu, "OPTIONS", KZ_SIP_TRANSPORT_UDP);
  char req[1024];
  size_t n = peer_request(req, sizeof req, "INVITE", "z9hG4bKlive", "f10", NULL, 1, NULL);
  feed(&tu, req, n, KZ_SIP_TRANSPORT_UDP);
  ck_assert_uint_eq(kz_sip_txl_count(tu.txl), 3);
  kz_ref(t);
  size_t nev = tu.nev;
  tu_free(&tu);
  /* No events on free; the TU's reference keeps t readable. */
  ck_assert_uint_eq(tu.nev, nev);
  ck_assert_int_eq(kz_sip_txn_state(t), KZ_SIP_TXN_TERMINATED);
  ck_assert_int_eq(kz_sip_txn_request(t)->method, KZ_SIP_METHOD_INVITE);
  kz_deref(t);
  kz_sip_txl_free(NULL);
  struct kz_sip_txl *x = NULL;
  ck_assert_int_eq(kz_sip_txl_new(&x, NULL, NULL, NULL), KZ_EINVAL);
  ck_assert_int_eq(kz_sip_txl_new(&x, NULL, &(struct kz_sip_txl_cbs){tu_send, NULL}, NULL),
                   KZ_EINVAL);
}
END_TEST

START_TEST(client_errors) {
  struct tu tu;
  tu_init(&tu, NULL);
  struct kz_addr dest = kz_addr_v4(0x0a000001, 5060);
  /* A response, an ACK, a request without branch, garbage. */
  static const char resp[] = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
                             "From: <sip:a@a>;tag=1\r\nTo: <sip:b@b>\r\n"
                             "Call-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
  ck_assert_int_eq(kz_sip_txl_request(tu.txl, resp, sizeof resp - 1, &dest,
                                      KZ_SIP_TRANSPORT_UDP, NULL, 0, NULL),
                   KZ_EPROTO);
  char req[1024];
  size_t n = peer_request(req, sizeof req, "ACK", "z9hG4bKa", "f", "t", 1, NULL);
  ck_assert_int_eq(
      kz_sip_txl_request(tu.txl, req, n, &dest, KZ_SIP_TRANSPORT_UDP, NULL, 0, NULL),
      KZ_EINVAL);
  n = peer_request(req, sizeof req, "OPTIONS", NULL, "f", NULL, 1, NULL);
  ck_assert_int_eq(
      kz_sip_txl_request(tu.txl, req, n, &dest, KZ_SIP_TRANSPORT_UDP, NULL, 0, NULL),
      KZ_EINVAL);
  ck_assert_int_eq(
      kz_sip_txl_request(tu.txl, "xx", 2, &dest, KZ_SIP_TRANSPORT_UDP, NULL, 0, NULL),
      KZ_EPROTO);
  /* The same branch and method twice. */
  n = peer_request(req, sizeof req, "OPTIONS", "z9hG4bKsame", "f", NULL, 1, NULL);
  struct kz_sip_msg *m = tt_parse(req, n);
  struct kz_sip_txn *t = NULL;
  int user = 7;
  ck_assert_int_eq(
      kz_sip_txl_request_msg(tu.txl, m, &dest, KZ_SIP_TRANSPORT_UDP, &user, 0, &t), 0);
  ck_assert_ptr_eq(kz_sip_txn_user(t), &user);
  ck_assert_int_eq(
      kz_sip_txl_request_msg(tu.txl, m, &dest, KZ_SIP_TRANSPORT_UDP, NULL, 0, NULL), KZ_EEXIST);
  ck_assert_uint_eq(kz_sip_txl_count(tu.txl), 1);
  ck_assert_uint_eq(tu.nsent, 1);
  /* respond on a client transaction is refused. */
  ck_assert_int_eq(kz_sip_txn_respond(t, resp, sizeof resp - 1, 0), KZ_EINVAL);
  ck_assert_str_eq(kz_sip_txn_state_name(kz_sip_txn_state(t)), "Trying");
  kz_deref(m);
  tu_free(&tu);
}
END_TEST

/* Every allocation of kz_sip_txl_request may fail: the result is then
 * KZ_ENOMEM with nothing created, nothing sent and, once the layer is
 * freed, nothing leaked.  A fresh layer per step, so that containers
 * grown by an earlier step do not hide a leak. */
START_TEST(client_alloc_failures) {
  struct kz_sip_req_spec spec = {
      .method = "INVITE",
      .ruri = KZ_SLICE_LIT("sip:bob@b.example"),
      .via_sent_by = KZ_SLICE_LIT("a.example"),
      .from = KZ_SLICE_LIT("<sip:alice@a.example>"),
      .to = KZ_SLICE_LIT("<sip:bob@b.example>"),
      .contact = KZ_SLICE_LIT("<sip:alice@a.example>"),
  };
  struct kz_prng g;
  kz_prng_seed(&g, 9);
  struct kz_buf b = {0};
  ck_assert_int_eq(kz_sip_build_request(&b, &spec, &g), 0);
  struct kz_addr dest = kz_addr_v4(0x0a000001, 5060);
  bool done = false;
  int failures = 0;
  for (int64_t k = 0; !done && k < 200; k++) {
    int64_t live = kz_mem_live_blocks();
    struct tu tu;
    tu_init(&tu, NULL);
    struct kz_sip_txn *t = NULL;
    kz_mem_fail_after(k);
    int rc = kz_sip_txl_request(tu.txl, b.data, b.len, &dest, KZ_SIP_TRANSPORT_UDP, NULL, 0, &t);
    kz_mem_fail_after(-1);
    if (rc == 0) {
      done = true;
      ck_assert_ptr_nonnull(t);
      ck_assert_uint_eq(kz_sip_txl_count(tu.txl), 1);
      ck_assert_uint_eq(tu.nsent, 1);
      /* The survivor works: it retransmits and times out. */
      run_to(&tu, 64 * T1);
      ck_assert_uint_eq(tu.nsent, 7);
      ck_assert_int_eq(tu.ev[0].type, KZ_SIP_TXL_EV_TIMEOUT);
    } else {
      failures++;
      ck_assert_int_eq(rc, KZ_ENOMEM);
      ck_assert_ptr_null(t);
      ck_assert_uint_eq(kz_sip_txl_count(tu.txl), 0);
      ck_assert_uint_eq(tu.nsent, 0);
      ck_assert_uint_eq(kz_sip_txl_next_expiry(tu.txl), UINT64_MAX);
    }
    tu_free(&tu);
    ck_assert_int_eq(kz_mem_live_blocks(), live);
  }
  ck_assert(done);
  ck_assert_int_gt(failures, 3);
  kz_buf_free(&b);
}
END_TEST

/* The same for a request creating a server transaction. */
START_TEST(server_alloc_failures) {
  char req[1024];
  size_t n = peer_request(req, sizeof req, "INVITE", "z9hG4bKsrv", "f", NULL, 1, NULL);
  struct kz_sip_msg *m = tt_parse(req, n);
  struct kz_addr src = kz_addr_v4(0xc0000201, 5060);
  bool done = false;
  int failures = 0;
  for (int64_t k = 0; !done && k < 200; k++) {
    int64_t live = kz_mem_live_blocks();
    struct tu tu;
    tu_init(&tu, NULL);
    kz_mem_fail_after(k);
    int rc = kz_sip_txl_recv(tu.txl, m, &src, KZ_SIP_TRANSPORT_UDP, 0);
    kz_mem_fail_after(-1);
    if (rc == 0) {
      done = true;
      ck_assert_uint_eq(kz_sip_txl_count(tu.txl), 1);
      ck_assert_uint_eq(tu.nev, 1);
    } else {
      failures++;
      ck_assert_int_eq(rc, KZ_ENOMEM);
      ck_assert_uint_eq(kz_sip_txl_count(tu.txl), 0);
      ck_assert_uint_eq(tu.nev, 0);
    }
    tu_free(&tu);
    ck_assert_int_eq(kz_mem_live_blocks(), live);
  }
  ck_assert(done);
  ck_assert_int_gt(failures, 2);
  kz_deref(m);
}
END_TEST

void txn_tests_txn(Suite *s) {
  TCase *tc = kz_tcase(s, "txn_client", 10);
  tcase_add_test(tc, invite_client_a_b);
  tcase_add_test(tc, invite_client_non2xx_ack_d);
  tcase_add_test(tc, invite_client_2xx);
  tcase_add_test(tc, invite_client_2xx_while_completed);
  tcase_add_test(tc, invite_client_cancel);
  tcase_add_test(tc, non_invite_client_e_f);
  tcase_add_test(tc, non_invite_client_proceeding_k);
  tcase_add_test(tc, client_errors);
  tc = kz_tcase(s, "txn_server", 10);
  tcase_add_test(tc, invite_server_trying_g_ack_i);
  tcase_add_test(tc, invite_server_h_timeout);
  tcase_add_test(tc, invite_server_2xx);
  tcase_add_test(tc, non_invite_server_j);
  tcase_add_test(tc, server_response_mismatch);
  tc = kz_tcase(s, "txn_matching", 10);
  tcase_add_test(tc, cancel_matches_invite);
  tcase_add_test(tc, same_branch_other_sent_by);
  tcase_add_test(tc, rfc2543_fallback);
  tcase_add_test(tc, thacxx0005_scenario);
  tcase_add_test(tc, stray_response);
  tc = kz_tcase(s, "txn_transport", 10);
  tcase_add_test(tc, transport_errors);
  tcase_add_test(tc, trying_disabled);
  tcase_add_test(tc, reliable_timers);
  tc = kz_tcase(s, "txn_lifecycle", 30);
  tcase_add_test(tc, free_with_live_transactions);
  tcase_add_test(tc, client_alloc_failures);
  tcase_add_test(tc, server_alloc_failures);
}
