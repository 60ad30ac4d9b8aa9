/* build.c — SIP request/response/ACK/CANCEL builders writing wire bytes into a kz_buf (RFC 3261 §8, §9, §17.1.1.3). */
#include "kz/sip_build.h"

#include <string.h>

#include "kz/error.h"

/* A writer that remembers the first failure, so builders read as a list
 * of lines and check once at the end. */
struct w {
  struct kz_buf *b;
  size_t start;
  int err;
};

static void w_raw(struct w *w, const void *p, size_t n) {
  if (!w->err && n) w->err = kz_buf_append(w->b, p, n);
}
static void w_str(struct w *w, const char *s) { w_raw(w, s, strlen(s)); }
static void w_sl(struct w *w, struct kz_slice s) { w_raw(w, s.p, s.len); }
/* A value taken from a parsed message: folds become one SP. */
static void w_unf(struct w *w, struct kz_slice s) {
  if (!w->err && s.len) w->err = kz_sip_unfold(w->b, s);
}
static void w_fmt_u(struct w *w, unsigned long v) {
  if (!w->err) w->err = kz_buf_printf(w->b, "%lu", v);
}
static void w_hdr(struct w *w, const char *name, struct kz_slice value) {
  w_str(w, name);
  w_raw(w, ": ", 2);
  w_unf(w, value);
  w_raw(w, "\r\n", 2);
}
/* Copies every header line with this id, in order. */
static void w_copy_all(struct w *w, const struct kz_sip_msg *m, enum kz_sip_hdr_id id) {
  for (const struct kz_sip_hdr *h = kz_sip_msg_hdr(m, id); h; h = kz_sip_msg_hdr_next(m, h))
    w_hdr(w, kz_sip_hdr_name(id), h->value);
}
static void w_body(struct w *w, struct kz_slice ctype, struct kz_slice body) {
  if (ctype.p) w_hdr(w, "Content-Type", ctype);
  w_str(w, "Content-Length: ");
  w_fmt_u(w, (unsigned long)body.len);
  w_raw(w, "\r\n\r\n", 4);
  w_sl(w, body);
}
static int w_end(struct w *w) {
  if (w->err) {
    kz_buf_truncate(w->b, w->start);
    return KZ_ENOMEM;
  }
  return 0;
}

void kz_sip_build_branch(struct kz_prng *prng, char *out) {
  memcpy(out, "z9hG4bK", 7);
  kz_prng_hex(prng, out + 7, KZ_SIP_BRANCH_LEN - 7);
  out[KZ_SIP_BRANCH_LEN] = 0;
}

void kz_sip_build_tag(struct kz_prng *prng, char *out) {
  kz_prng_hex(prng, out, KZ_SIP_TAG_LEN);
  out[KZ_SIP_TAG_LEN] = 0;
}

/* The host part of a sent-by ("[v6]:port", "host:port" or "host"). */
static struct kz_slice sent_by_host(struct kz_slice s) {
  if (s.len && s.p[0] == '[') {
    long rb = kz_slice_find_char(s, ']');
    return rb < 0 ? s : kz_slice_sub(s, 0, (size_t)rb + 1);
  }
  long colon = kz_slice_find_char(s, ':');
  return colon < 0 ? s : kz_slice_sub(s, 0, (size_t)colon);
}

int kz_sip_build_request(struct kz_buf *out, const struct kz_sip_req_spec *spec,
                         struct kz_prng *prng) {
  if (!out || !spec || !spec->method || !*spec->method || !spec->ruri.len ||
      !spec->via_sent_by.len || !spec->from.len || !spec->to.len)
    return KZ_EINVAL;
  if (!prng && (!spec->branch.len || !spec->from_tag.len || !spec->call_id.len || !spec->cseq))
    return KZ_EINVAL;
  char branch[KZ_SIP_BRANCH_LEN + 1], tag[KZ_SIP_TAG_LEN + 1], cid[KZ_SIP_CALLID_LEN + 1];
  struct w w = {out, out->len, 0};

  w_str(&w, spec->method);
  w_raw(&w, " ", 1);
  w_sl(&w, spec->ruri);
  w_str(&w, " SIP/2.0\r\nVia: SIP/2.0/");
  if (spec->via_transport.len)
    w_sl(&w, spec->via_transport);
  else
    w_str(&w, "UDP");
  w_raw(&w, " ", 1);
  w_sl(&w, spec->via_sent_by);
  w_str(&w, ";branch=");
  if (spec->branch.len) {
    w_sl(&w, spec->branch);
  } else {
    kz_sip_build_branch(prng, branch);
    w_str(&w, branch);
  }
  w_sl(&w, spec->via_params);
  w_raw(&w, "\r\n", 2);
  if (spec->max_forwards >= 0) {
    w_str(&w, "Max-Forwards: ");
    w_fmt_u(&w, (unsigned long)(spec->max_forwards ? spec->max_forwards : 70));
    w_raw(&w, "\r\n", 2);
  }
  for (size_t i = 0; i < spec->nroutes; i++) w_hdr(&w, "Route", spec->routes[i]);
  w_str(&w, "From: ");
  w_sl(&w, spec->from);
  w_str(&w, ";tag=");
  if (spec->from_tag.len) {
    w_sl(&w, spec->from_tag);
  } else {
    kz_sip_build_tag(prng, tag);
    w_str(&w, tag);
  }
  w_str(&w, "\r\nTo: ");
  w_sl(&w, spec->to);
  if (spec->to_tag.len) {
    w_str(&w, ";tag=");
    w_sl(&w, spec->to_tag);
  }
  w_str(&w, "\r\nCall-ID: ");
  if (spec->call_id.len) {
    w_sl(&w, spec->call_id);
  } else {
    kz_prng_hex(prng, cid, KZ_SIP_CALLID_LEN);
    cid[KZ_SIP_CALLID_LEN] = 0;
    w_str(&w, cid);
    w_raw(&w, "@", 1);
    w_sl(&w, sent_by_host(spec->via_sent_by));
  }
  w_str(&w, "\r\nCSeq: ");
  /* §8.1.1.5: an initial sequence number below 2^31. */
  w_fmt_u(&w, spec->cseq ? spec->cseq : (unsigned long)kz_prng_range(prng, 1, 0x7fffffffu));
  w_raw(&w, " ", 1);
  w_str(&w, spec->method);
  w_raw(&w, "\r\n", 2);
  if (spec->contact.len) w_hdr(&w, "Contact", spec->contact);
  w_sl(&w, spec->extra_headers);
  w_body(&w, spec->content_type, spec->body);
  return w_end(&w);
}

static bool creates_dialog(enum kz_sip_method m) {
  return m == KZ_SIP_METHOD_INVITE || m == KZ_SIP_METHOD_SUBSCRIBE || m == KZ_SIP_METHOD_REFER;
}

int kz_sip_build_response(struct kz_buf *out, const struct kz_sip_msg *req,
                          const struct kz_sip_resp_spec *spec, struct kz_prng *prng) {
  if (!out || !req || !spec || !req->is_request || spec->status < 100 || spec->status > 699)
    return KZ_EINVAL;
  bool add_tag = !req->to.tag.p && spec->status != 100;
  if (add_tag && !spec->to_tag.len && !prng) return KZ_EINVAL;
  char tag[KZ_SIP_TAG_LEN + 1];
  struct w w = {out, out->len, 0};

  w_str(&w, "SIP/2.0 ");
  w_fmt_u(&w, spec->status);
  w_raw(&w, " ", 1);
  w_str(&w, spec->reason ? spec->reason : kz_sip_reason_phrase(spec->status));
  w_raw(&w, "\r\n", 2);
  w_copy_all(&w, req, KZ_SIP_HDR_VIA);
  if (spec->status > 100 && spec->status < 300 && creates_dialog(req->method) &&
      !spec->no_record_route)
    w_copy_all(&w, req, KZ_SIP_HDR_RECORD_ROUTE);
  w_hdr(&w, "From", req->from.raw);
  w_str(&w, "To: ");
  w_unf(&w, req->to.raw);
  if (add_tag) {
    w_str(&w, ";tag=");
    if (spec->to_tag.len) {
      w_sl(&w, spec->to_tag);
    } else {
      kz_sip_build_tag(prng, tag);
      w_str(&w, tag);
    }
  }
  w_raw(&w, "\r\n", 2);
  w_hdr(&w, "Call-ID", req->call_id);
  w_str(&w, "CSeq: ");
  w_fmt_u(&w, req->cseq.num);
  w_raw(&w, " ", 1);
  w_sl(&w, req->cseq.method_text);
  w_raw(&w, "\r\n", 2);
  if (spec->status == 100) w_copy_all(&w, req, KZ_SIP_HDR_TIMESTAMP);
  if (spec->contact.len) w_hdr(&w, "Contact", spec->contact);
  w_sl(&w, spec->extra_headers);
  w_body(&w, spec->content_type, spec->body);
  return w_end(&w);
}

/* The part ACK and CANCEL share: request line, top Via, Max-Forwards,
 * the Routes of the original request, From, (To is the caller's),
 * Call-ID, CSeq with `method`. */
static void w_derived(struct w *w, const struct kz_sip_msg *req, const char *method,
                      struct kz_slice to) {
  w_str(w, method);
  w_raw(w, " ", 1);
  w_sl(w, req->ruri.raw);
  w_str(w, " SIP/2.0\r\n");
  w_hdr(w, "Via", req->vias[0].raw);
  w_str(w, "Max-Forwards: 70\r\n");
  w_copy_all(w, req, KZ_SIP_HDR_ROUTE);
  w_hdr(w, "From", req->from.raw);
  w_hdr(w, "To", to);
  w_hdr(w, "Call-ID", req->call_id);
  w_str(w, "CSeq: ");
  w_fmt_u(w, req->cseq.num);
  w_raw(w, " ", 1);
  w_str(w, method);
  w_raw(w, "\r\n", 2);
  w_body(w, KZ_SLICE_NULL, KZ_SLICE_NULL);
}

int kz_sip_build_ack(struct kz_buf *out, const struct kz_sip_msg *invite,
                     const struct kz_sip_msg *resp) {
  if (!out || !invite || !resp || !invite->is_request || invite->method != KZ_SIP_METHOD_INVITE ||
      resp->is_request || resp->status < 300 || invite->nvias == 0)
    return KZ_EINVAL;
  struct w w = {out, out->len, 0};
  w_derived(&w, invite, "ACK", resp->to.raw);
  return w_end(&w);
}

int kz_sip_build_cancel(struct kz_buf *out, const struct kz_sip_msg *req) {
  if (!out || !req || !req->is_request || req->method == KZ_SIP_METHOD_ACK ||
      req->method == KZ_SIP_METHOD_CANCEL || req->nvias == 0)
    return KZ_EINVAL;
  struct w w = {out, out->len, 0};
  w_derived(&w, req, "CANCEL", req->to.raw);
  return w_end(&w);
}

struct reason {
  uint16_t code;
  const char *text;
};

static const struct reason reasons[] = {
    {100, "Trying"},
    {180, "Ringing"},
    {181, "Call Is Being Forwarded"},
    {182, "Queued"},
    {183, "Session Progress"},
    {199, "Early Dialog Terminated"},
    {200, "OK"},
    {202, "Accepted"},
    {204, "No Notification"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Moved Temporarily"},
    {305, "Use Proxy"},
    {380, "Alternative Service"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {410, "Gone"},
    {412, "Conditional Request Failed"},
    {413, "Request Entity Too Large"},
    {414, "Request-URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Unsupported URI Scheme"},
    {420, "Bad Extension"},
    {421, "Extension Required"},
    {422, "Session Interval Too Small"},
    {423, "Interval Too Brief"},
    {480, "Temporarily Unavailable"},
    {481, "Call/Transaction Does Not Exist"},
    {482, "Loop Detected"},
    {483, "Too Many Hops"},
    {484, "Address Incomplete"},
    {485, "Ambiguous"},
    {486, "Busy Here"},
    {487, "Request Terminated"},
    {488, "Not Acceptable Here"},
    {489, "Bad Event"},
    {491, "Request Pending"},
    {493, "Undecipherable"},
    {500, "Server Internal Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Server Time-out"},
    {505, "Version Not Supported"},
    {513, "Message Too Large"},
    {580, "Precondition Failure"},
    {600, "Busy Everywhere"},
    {603, "Decline"},
    {604, "Does Not Exist Anywhere"},
    {606, "Not Acceptable"},
};

const char *kz_sip_reason_phrase(uint16_t status) {
  for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
    if (reasons[i].code == status) return reasons[i].text;
  return "Unknown";
}
