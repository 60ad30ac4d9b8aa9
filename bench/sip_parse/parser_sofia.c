/* parser_sofia.c — Sofia-SIP's message parser (msg_make with the SIP parser table) in the SIP parse benchmark. */
#include <stdio.h>
#include <stdlib.h>

#include <sofia-sip/msg.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_util.h>

#include "sipb.h"

static int sofia_init(void) { return sip_default_mclass() ? 0 : -1; }
static void sofia_fini(void) {}

static uint64_t num(const char *s) { return s ? strtoul(s, NULL, 10) : 0; }

static uint64_t touch_url(const url_t *u) {
  return (uint64_t)(uintptr_t)u->url_host + num(u->url_port) + (uint64_t)(uintptr_t)u->url_params;
}

static int sofia_parse(void *prep, uint64_t *sink, struct sipb_depth *depth, char *why,
                       size_t whylen) {
  const struct sipb_bytes *in = prep;
  /* msg_make copies the bytes into the message's buffer (sofia's receive
   * path reads straight into that buffer) and runs msg_extract, which
   * parses every header whose class the parser table knows with that
   * class's parse function; unknown ones become name/value pairs. */
  msg_t *msg = msg_make(sip_default_mclass(), 0, in->data, (ssize_t)in->len);
  if (!msg) {
    if (why)
      snprintf(why, whylen, "msg_make failed");
    return -1;
  }
  sip_t const *sip = sip_object(msg);
  if (msg_has_error(msg) || !sip) {
    if (why)
      snprintf(why, whylen, "msg_extract: error (critical header or framing)");
    msg_destroy(msg);
    return -1;
  }
  /* The check sofia's transaction layer (nta) applies to every incoming
   * message before using it: start line, Via, From, To, Call-ID, CSeq,
   * CSeq method vs request method, Content-Length. */
  if (sip_sanity_check(sip) < 0) {
    if (why)
      snprintf(why, whylen, "sip_sanity_check");
    msg_destroy(msg);
    return -1;
  }
  unsigned hdrs = 0, values = 0;
  uint64_t s = 0;
  msg_header_t **head = msg_chain_head(msg);
  for (msg_header_t *h = head ? *head : NULL; h; h = h->sh_succ) {
    s += (uint64_t)(uintptr_t)h->sh_class + (uint64_t)h->sh_len;
    hdrs++;
  }
  if (sip->sip_request)
    s += touch_url(sip->sip_request->rq_url) + (uint64_t)sip->sip_request->rq_method;
  else if (sip->sip_status)
    s += (uint64_t)sip->sip_status->st_status;
  for (sip_via_t const *v = sip->sip_via; v; v = v->v_next, values++)
    s += (uint64_t)(uintptr_t)v->v_host + num(v->v_port) + (uint64_t)(uintptr_t)v->v_branch;
  for (sip_contact_t const *c = sip->sip_contact; c; c = c->m_next, values++)
    s += touch_url(c->m_url);
  for (sip_route_t const *r = sip->sip_route; r; r = r->r_next, values++)
    s += touch_url(r->r_url);
  for (sip_record_route_t const *r = sip->sip_record_route; r; r = r->r_next, values++)
    s += touch_url(r->r_url);
  for (sip_authorization_t const *a = sip->sip_authorization; a; a = a->au_next, values++)
    s += (uint64_t)(uintptr_t)a->au_params;
  for (sip_proxy_authorization_t const *a = sip->sip_proxy_authorization; a;
       a = a->au_next, values++)
    s += (uint64_t)(uintptr_t)a->au_params;
  s += touch_url(sip->sip_from->a_url) + (uint64_t)(uintptr_t)sip->sip_from->a_tag;
  s += touch_url(sip->sip_to->a_url) + (uint64_t)(uintptr_t)sip->sip_to->a_tag;
  s += sip->sip_cseq->cs_seq + (uint64_t)(uintptr_t)sip->sip_call_id->i_id;
  values += 3;
  if (sip->sip_max_forwards)
    s += sip->sip_max_forwards->mf_count;
  if (sip->sip_content_length)
    s += sip->sip_content_length->l_length;
  if (sip->sip_expires)
    s += sip->sip_expires->ex_delta;
  if (depth) {
    depth->hdrs = hdrs;
    depth->values = values;
  }
  *sink += s;
  msg_destroy(msg);
  return 0;
}

const struct sipb_parser sipb_sofia = {
    .name = "sofia-sip",
    .version = SIPB_SOFIA_VERSION,
    .depth_doc =
        "`msg_make(sip_default_mclass(), 0, bytes, len)` copies the bytes into a new message and "
        "runs `msg_extract`, which parses the start line (Request-URI into a `url_t`) and every "
        "header of the default SIP parser table with its own parse function, Via/Contact/Route/"
        "Record-Route split per value with parameters, From/To, CSeq and Max-Forwards/"
        "Content-Length/Expires as numbers, Authorization split into `au_params`, and the token "
        "lists (Allow, Supported, Require...); headers outside the table (P-Asserted-Identity, "
        "X-...) stay name/value pairs, as in kz (the extended table of `sip_extend_mclass()` is "
        "not used: it would parse more than kz).  The benchmark then checks `msg_has_error` and "
        "`sip_sanity_check` (what sofia's transaction layer does first), walks the whole header "
        "chain (one entry per value for list headers) and touches every Via, Contact, Route, "
        "Record-Route, From, To, CSeq and credentials value, converting the ports kz converts.  "
        "A non-critical header that fails to parse is kept as an error header and the message "
        "is still accepted: that is sofia's design.",
    .init = sofia_init,
    .fini = sofia_fini,
    .prepare = sipb_bytes_prepare,
    .unprepare = sipb_bytes_unprepare,
    .parse = sofia_parse,
};
