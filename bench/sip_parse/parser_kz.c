/* parser_kz.c — kz's SIP parser (kz_sip_msg_parse) in the parse benchmark, zero-copy and copying. */
#include <stdio.h>
#include <stdlib.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sip_msg.h"
#include "sipb.h"
#ifdef SIPB_HAVE_KZ_DIGEST
#include "kz/sip_digest.h"
#endif

void *sipb_bytes_prepare(const uint8_t *data, size_t len) {
  struct sipb_bytes *b = malloc(sizeof *b);
  if (b) {
    b->data = data;
    b->len = len;
  }
  return b;
}

void sipb_bytes_unprepare(void *prep) { free(prep); }

static int kz_init(void) { return 0; }
static void kz_fini(void) {}

static uint64_t touch_addr(const struct kz_sip_addr *a) {
  return a->uri.host.len + a->uri.port + a->tag.len + a->params.len + (uint64_t)a->uri.scheme;
}

/* Digest credentials and challenges are the one header family osip2 and
 * sofia-sip break into parameters that kz_sip_msg_parse keeps raw; a kz
 * registrar parses them with kz_sip_digest_parse, so the benchmark does
 * too.  A value kz_sip_digest cannot use (another scheme) is not a reason
 * to refuse the message: the registrar answers 401. */
static uint64_t auth_hdr(const struct kz_sip_hdr *h, unsigned *values) {
#ifdef SIPB_HAVE_KZ_DIGEST
  enum kz_sip_digest_hdr kind;
  switch (h->id) {
  case KZ_SIP_HDR_AUTHORIZATION: kind = KZ_SIP_DIGEST_AUTHORIZATION; break;
  case KZ_SIP_HDR_PROXY_AUTHORIZATION: kind = KZ_SIP_DIGEST_PROXY_AUTHORIZATION; break;
  case KZ_SIP_HDR_WWW_AUTHENTICATE: kind = KZ_SIP_DIGEST_WWW_AUTHENTICATE; break;
  case KZ_SIP_HDR_PROXY_AUTHENTICATE: kind = KZ_SIP_DIGEST_PROXY_AUTHENTICATE; break;
  default: return 0;
  }
  struct kz_sip_digest_auth a;
  uint64_t s = 0;
  if (kz_sip_digest_parse(&a, kind, h->value) == 0) {
    s = a.present + a.username.len + a.response.len + a.nonce.len + a.nc;
    ++*values;
  }
  kz_sip_digest_auth_clear(&a);
  return s;
#else
  (void)h;
  (void)values;
  return 0;
#endif
}

static int kz_parse_flags(void *prep, uint64_t *sink, struct sipb_depth *depth, char *why,
                          size_t whylen, unsigned flags) {
  const struct sipb_bytes *in = prep;
  struct kz_sip_msg *m = NULL;
  struct kz_sip_perr err;
  int rc = kz_sip_msg_parse(&m, in->data, in->len, flags, &err);
  if (rc != 0) {
    if (why)
      snprintf(why, whylen, "%u %s", rc == KZ_EPROTO ? err.status : 0,
               rc == KZ_EPROTO ? err.reason : "no message");
    return -1;
  }
  uint64_t s = m->is_request ? (uint64_t)m->method + m->ruri.host.len : m->status;
  unsigned values = 0;
  for (size_t i = 0; i < m->nhdrs; i++) {
    const struct kz_sip_hdr *h = &m->hdrs[i];
    s += (uint64_t)h->id + h->name.len + h->value.len;
    if (h->id >= KZ_SIP_HDR_AUTHORIZATION && h->id <= KZ_SIP_HDR_PROXY_AUTHENTICATE)
      s += auth_hdr(h, &values);
  }
  for (size_t i = 0; i < m->nvias; i++)
    s += m->vias[i].host.len + m->vias[i].port + m->vias[i].branch.len;
  for (size_t i = 0; i < m->ncontacts; i++)
    s += touch_addr(&m->contacts[i]);
  for (size_t i = 0; i < m->nroutes; i++)
    s += touch_addr(&m->routes[i]);
  for (size_t i = 0; i < m->nrroutes; i++)
    s += touch_addr(&m->rroutes[i]);
  s += touch_addr(&m->from) + touch_addr(&m->to) + m->call_id.len + m->cseq.num;
  s += (uint64_t)(m->max_forwards + m->content_length + m->expires) + m->body.len;
  values += (unsigned)(m->nvias + m->ncontacts + m->nroutes + m->nrroutes) + 3; /* From, To, CSeq */
  if (depth) {
    depth->hdrs = (unsigned)m->nhdrs;
    depth->values = values;
  }
  *sink += s;
  kz_deref(m);
  return 0;
}

static int kz_parse(void *prep, uint64_t *sink, struct sipb_depth *depth, char *why,
                    size_t whylen) {
  return kz_parse_flags(prep, sink, depth, why, whylen, 0);
}

static int kz_parse_copy(void *prep, uint64_t *sink, struct sipb_depth *depth, char *why,
                         size_t whylen) {
  return kz_parse_flags(prep, sink, depth, why, whylen, KZ_SIP_PARSE_COPY);
}

#define KZ_DEPTH_DOC                                                                              \
  "`kz_sip_msg_parse` (datagram framing) parses the start line and the Request-URI, splits "     \
  "every header field, names it (long and compact forms), and decodes into structures every "    \
  "Via, From, To, Contact, Route, Record-Route and Path value (URI, display name, parameters, "  \
  "tag/branch/received/rport/expires/q), Call-ID, CSeq, Max-Forwards, Content-Length, "          \
  "Content-Type and Expires; it checks the required headers (Via, From, To, Call-ID, CSeq), "    \
  "repeated single-value headers and the CSeq method.  The benchmark then walks every header "   \
  "field and every decoded value, and parses Authorization/Proxy-Authorization/"                 \
  "WWW-Authenticate/Proxy-Authenticate with `kz_sip_digest_parse` (as a kz registrar does), "   \
  "because osip2 and sofia-sip split those into parameters.  Other known headers (Allow, "       \
  "Supported, Session-Expires, User-Agent...) are identified but their values stay raw slices."

const struct sipb_parser sipb_kz = {
    .name = "kz",
    .version = KZ_VERSION,
    .depth_doc = KZ_DEPTH_DOC " Zero-copy: the message points into the caller's buffer.",
    .init = kz_init,
    .fini = kz_fini,
    .prepare = sipb_bytes_prepare,
    .unprepare = sipb_bytes_unprepare,
    .parse = kz_parse,
};

const struct sipb_parser sipb_kz_copy = {
    .name = "kz-copy",
    .version = KZ_VERSION,
    .depth_doc = "As `kz`, with `KZ_SIP_PARSE_COPY`: the message keeps its own copy of the bytes, "
                 "as osip2 and sofia-sip always do.",
    .init = kz_init,
    .fini = kz_fini,
    .prepare = sipb_bytes_prepare,
    .unprepare = sipb_bytes_unprepare,
    .parse = kz_parse_copy,
};
