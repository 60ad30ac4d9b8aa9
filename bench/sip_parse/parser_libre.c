/* parser_libre.c — libre's SIP decoder (sip_msg_decode plus libre's header decoders) in the SIP parse benchmark. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libre's headers expect its build's config macros: without this one
 * re_types.h redefines the C99 integer types. */
#define HAVE_INTTYPES_H 1
#include <re.h>

#include "sipb.h"

static int libre_init_(void) { return libre_init() == 0 ? 0 : -1; }
static void libre_fini_(void) { libre_close(); }

/* libre's receive path hands sip_msg_decode the mbuf the datagram was
 * read into, and the message keeps a reference to it: no copy.  The
 * benchmark does the same with one mbuf per message, rewound before each
 * decode. */
static void *libre_prepare(const uint8_t *data, size_t len) {
  struct mbuf *mb = mbuf_alloc(len);
  if (!mb)
    return NULL;
  if (mbuf_write_mem(mb, data, len) != 0) {
    mem_deref(mb);
    return NULL;
  }
  mb->pos = 0;
  return mb;
}

static void libre_unprepare(void *prep) { mem_deref(prep); }

struct walk {
  uint64_t s;
  unsigned values;
  unsigned seen;
  int err;
};

/* Every Via value: the first is already decoded by sip_msg_decode. */
static bool via_h(const struct sip_hdr *hdr, const struct sip_msg *msg, void *arg) {
  struct walk *w = arg;
  (void)msg;
  w->values++;
  if (w->seen++ == 0)
    return false;
  struct sip_via via;
  if (sip_via_decode(&via, &hdr->val) != 0) {
    w->err = EBADMSG;
    return true;
  }
  w->s += via.sentby.l + sa_port(&via.addr) + via.branch.l;
  return false;
}

/* Contact, Route and Record-Route values, decoded the way libre's own
 * registration and dialog code does (sip_addr_decode per value). */
static bool addr_h(const struct sip_hdr *hdr, const struct sip_msg *msg, void *arg) {
  struct walk *w = arg;
  (void)msg;
  struct sip_addr addr;
  if (sip_addr_decode(&addr, &hdr->val) != 0) {
    w->err = EBADMSG;
    return true;
  }
  w->s += addr.uri.host.l + addr.uri.port + addr.params.l;
  w->values++;
  return false;
}

static bool cred_h(const struct sip_hdr *hdr, const struct sip_msg *msg, void *arg) {
  struct walk *w = arg;
  (void)msg;
  struct httpauth_digest_resp resp;
  if (httpauth_digest_response_decode(&resp, &hdr->val) == 0) {
    w->s += resp.response.l + resp.nonce.l;
    w->values++;
  }
  return false; /* another scheme: the registrar answers 401, not 400 */
}

static bool chall_h(const struct sip_hdr *hdr, const struct sip_msg *msg, void *arg) {
  struct walk *w = arg;
  (void)msg;
  struct httpauth_digest_chall ch;
  if (httpauth_digest_challenge_decode(&ch, &hdr->val) == 0) {
    w->s += ch.nonce.l + ch.realm.l;
    w->values++;
  }
  return false;
}

static int libre_parse(void *prep, uint64_t *sink, struct sipb_depth *depth, char *why,
                       size_t whylen) {
  struct mbuf *mb = prep;
  struct sip_msg *msg = NULL;
  mb->pos = 0;
  int err = sip_msg_decode(&msg, mb);
  if (err) {
    if (why)
      snprintf(why, whylen, "sip_msg_decode: %s", err == EBADMSG   ? "EBADMSG"
                                                  : err == ENODATA ? "ENODATA (no end of headers)"
                                                                   : strerror(err));
    return -1;
  }
  /* Required headers (kz checks them inside its parser); libre's decoder
   * leaves them to the layers above. */
  if (!pl_isset(&msg->via.sentby) || !pl_isset(&msg->from.auri) || !pl_isset(&msg->to.auri) ||
      !pl_isset(&msg->callid) || !pl_isset(&msg->cseq.met)) {
    if (why)
      snprintf(why, whylen, "missing Via/From/To/Call-ID/CSeq");
    mem_deref(msg);
    return -1;
  }
  struct walk w = {0};
  unsigned hdrs = 0;
  for (struct le *le = list_head(&msg->hdrl); le; le = le->next) {
    const struct sip_hdr *h = le->data;
    w.s += (uint64_t)h->id + h->name.l + h->val.l;
    hdrs++;
  }
  w.s += msg->req ? msg->uri.host.l + msg->uri.port : msg->scode;
  (void)sip_msg_hdr_apply(msg, true, SIP_HDR_VIA, via_h, &w);
  if (!w.err)
    (void)sip_msg_hdr_apply(msg, true, SIP_HDR_CONTACT, addr_h, &w);
  if (!w.err)
    (void)sip_msg_hdr_apply(msg, true, SIP_HDR_ROUTE, addr_h, &w);
  if (!w.err)
    (void)sip_msg_hdr_apply(msg, true, SIP_HDR_RECORD_ROUTE, addr_h, &w);
  if (w.err) {
    if (why)
      snprintf(why, whylen, "bad Via/Contact/Route/Record-Route value");
    mem_deref(msg);
    return -1;
  }
  (void)sip_msg_hdr_apply(msg, true, SIP_HDR_AUTHORIZATION, cred_h, &w);
  (void)sip_msg_hdr_apply(msg, true, SIP_HDR_PROXY_AUTHORIZATION, cred_h, &w);
  (void)sip_msg_hdr_apply(msg, true, SIP_HDR_WWW_AUTHENTICATE, chall_h, &w);
  (void)sip_msg_hdr_apply(msg, true, SIP_HDR_PROXY_AUTHENTICATE, chall_h, &w);
  w.s += msg->from.tag.l + msg->to.tag.l + msg->cseq.num + msg->callid.l;
  w.values += 3;
  if (pl_isset(&msg->maxfwd))
    w.s += pl_u32(&msg->maxfwd);
  if (pl_isset(&msg->clen))
    w.s += pl_u32(&msg->clen);
  if (pl_isset(&msg->expires))
    w.s += pl_u32(&msg->expires);
  w.s += mbuf_get_left(msg->mb);
  if (depth) {
    depth->hdrs = hdrs;
    depth->values = w.values;
  }
  *sink += w.s;
  mem_deref(msg);
  return 0;
}

const struct sipb_parser sipb_libre = {
    .name = "libre",
    .version = SIPB_LIBRE_VERSION,
    .depth_doc =
        "`sip_msg_decode` (zero-copy over the receive mbuf, as libre's UDP transport calls it) "
        "splits the start line and every header (comma-separated values of list headers become "
        "one entry each), identifies headers by a hash of their name, decodes the Request-URI, "
        "the first Via, From, To (with tags) and CSeq, and notes Call-ID, Max-Forwards, "
        "Content-Length, Content-Type and Expires.  The benchmark adds what libre's own "
        "registration and dialog code decodes when it needs it: every other Via value "
        "(`sip_via_decode`), every Contact, Route and Record-Route value (`sip_addr_decode`), "
        "digest credentials/challenges (`httpauth_digest_*_decode`), Max-Forwards, "
        "Content-Length and Expires as numbers; it checks that Via, From, To, Call-ID and CSeq "
        "are present and walks the header list.  libre does not compare Content-Length with the "
        "datagram (its UDP path never does), so a short body is not an error for it.",
    .init = libre_init_,
    .fini = libre_fini_,
    .prepare = libre_prepare,
    .unprepare = libre_unprepare,
    .parse = libre_parse,
};
