/* sip_equiv.c — test support: field-by-field comparison of parsed SIP messages and the print/reparse round trip. */
#include "sip_equiv.h"

#include <stdio.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"

struct eq {
  struct kz_buf x, y;
  char *why;
  size_t whylen;
  int rc;
};

/* Compares two slices after unfolding (presence must match too). */
static int same(struct eq *q, struct kz_slice a, struct kz_slice b, const char *what) {
  if (q->rc) return q->rc;
  if ((a.p == NULL) != (b.p == NULL)) {
    snprintf(q->why, q->whylen, "%s: present in one message only", what);
    return q->rc = -1;
  }
  kz_buf_reset(&q->x);
  kz_buf_reset(&q->y);
  if (kz_sip_unfold(&q->x, a) || kz_sip_unfold(&q->y, b)) return q->rc = KZ_ENOMEM;
  if (!kz_slice_eq(kz_buf_slice(&q->x), kz_buf_slice(&q->y))) {
    snprintf(q->why, q->whylen, "%s differs: '%.*s' vs '%.*s'", what, (int)q->x.len,
             q->x.data ? (const char *)q->x.data : "", (int)q->y.len,
             q->y.data ? (const char *)q->y.data : "");
    return q->rc = -1;
  }
  return 0;
}

static int num(struct eq *q, long long a, long long b, const char *what) {
  if (q->rc) return q->rc;
  if (a != b) {
    snprintf(q->why, q->whylen, "%s differs: %lld vs %lld", what, a, b);
    return q->rc = -1;
  }
  return 0;
}

static void uri(struct eq *q, const struct kz_sip_uri *a, const struct kz_sip_uri *b,
                const char *what) {
  num(q, a->scheme, b->scheme, what);
  same(q, a->raw, b->raw, what);
  same(q, a->user, b->user, what);
  same(q, a->password, b->password, what);
  same(q, a->host, b->host, what);
  num(q, a->port, b->port, what);
  num(q, a->host_ipv6, b->host_ipv6, what);
  same(q, a->params, b->params, what);
  same(q, a->headers, b->headers, what);
}

static void addr(struct eq *q, const struct kz_sip_addr *a, const struct kz_sip_addr *b,
                 const char *what) {
  same(q, a->display, b->display, what);
  uri(q, &a->uri, &b->uri, what);
  num(q, a->angle, b->angle, what);
  same(q, a->params, b->params, what);
  same(q, a->tag, b->tag, what);
  num(q, a->expires, b->expires, what);
  num(q, a->q, b->q, what);
}

int kz_sip_test_equiv(const struct kz_sip_msg *a, const struct kz_sip_msg *b, char *why,
                      size_t whylen) {
  struct eq q = {.why = why, .whylen = whylen};
  kz_buf_init(&q.x);
  kz_buf_init(&q.y);
  num(&q, a->is_request, b->is_request, "kind");
  if (a->is_request) {
    num(&q, a->method, b->method, "method");
    same(&q, a->method_text, b->method_text, "method");
    uri(&q, &a->ruri, &b->ruri, "Request-URI");
  } else {
    num(&q, a->status, b->status, "status");
    same(&q, a->reason, b->reason, "reason");
  }
  num(&q, (long long)a->nhdrs, (long long)b->nhdrs, "header count");
  for (size_t i = 0; !q.rc && i < a->nhdrs; i++) {
    num(&q, a->hdrs[i].id, b->hdrs[i].id, "header id");
    if (a->hdrs[i].id == KZ_SIP_HDR_OTHER) same(&q, a->hdrs[i].name, b->hdrs[i].name, "header name");
    same(&q, a->hdrs[i].value, b->hdrs[i].value, "header value");
  }
  num(&q, (long long)a->nvias, (long long)b->nvias, "Via count");
  for (size_t i = 0; !q.rc && i < a->nvias; i++) {
    const struct kz_sip_via *x = &a->vias[i], *y = &b->vias[i];
    same(&q, x->transport_text, y->transport_text, "Via transport");
    num(&q, x->transport, y->transport, "Via transport");
    same(&q, x->host, y->host, "Via host");
    num(&q, x->port, y->port, "Via port");
    same(&q, x->branch, y->branch, "Via branch");
    same(&q, x->received, y->received, "Via received");
    num(&q, x->rport, y->rport, "Via rport");
    num(&q, x->ttl, y->ttl, "Via ttl");
    same(&q, x->maddr, y->maddr, "Via maddr");
  }
  addr(&q, &a->from, &b->from, "From");
  addr(&q, &a->to, &b->to, "To");
  same(&q, a->call_id, b->call_id, "Call-ID");
  num(&q, a->cseq.num, b->cseq.num, "CSeq number");
  same(&q, a->cseq.method_text, b->cseq.method_text, "CSeq method");
  num(&q, a->contact_star, b->contact_star, "Contact *");
  num(&q, (long long)a->ncontacts, (long long)b->ncontacts, "Contact count");
  for (size_t i = 0; !q.rc && i < a->ncontacts; i++) addr(&q, &a->contacts[i], &b->contacts[i], "Contact");
  num(&q, (long long)a->nroutes, (long long)b->nroutes, "Route count");
  for (size_t i = 0; !q.rc && i < a->nroutes; i++) addr(&q, &a->routes[i], &b->routes[i], "Route");
  num(&q, (long long)a->nrroutes, (long long)b->nrroutes, "Record-Route count");
  for (size_t i = 0; !q.rc && i < a->nrroutes; i++)
    addr(&q, &a->rroutes[i], &b->rroutes[i], "Record-Route");
  num(&q, a->max_forwards, b->max_forwards, "Max-Forwards");
  num(&q, a->content_length, b->content_length, "Content-Length");
  num(&q, a->expires, b->expires, "Expires");
  same(&q, a->content_type, b->content_type, "Content-Type");
  if (!q.rc && !kz_slice_eq(a->body, b->body)) {
    snprintf(why, whylen, "body differs (%zu vs %zu bytes)", a->body.len, b->body.len);
    q.rc = -1;
  }
  kz_buf_free(&q.x);
  kz_buf_free(&q.y);
  return q.rc;
}

int kz_sip_test_roundtrip(const void *data, size_t len, int *parsed, char *why, size_t whylen) {
  struct kz_sip_msg *m = NULL, *m2 = NULL;
  struct kz_sip_perr err;
  *parsed = 0;
  int rc = kz_sip_msg_parse(&m, data, len, 0, &err);
  if (rc) return rc == KZ_ENOMEM ? rc : 0;
  *parsed = 1;
  struct kz_buf b;
  kz_buf_init(&b);
  rc = kz_sip_msg_print(m, &b);
  if (!rc) {
    rc = kz_sip_msg_parse(&m2, b.data, b.len, 0, &err);
    if (rc == KZ_EPROTO) {
      snprintf(why, whylen, "reparse failed: %s", err.reason);
      rc = -1;
    } else if (!rc) {
      rc = kz_sip_test_equiv(m, m2, why, whylen);
    }
  }
  kz_deref(m2);
  kz_deref(m);
  kz_buf_free(&b);
  return rc;
}
