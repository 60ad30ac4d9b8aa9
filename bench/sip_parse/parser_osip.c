/* parser_osip.c — GNU oSIP2's parser (osip_message_parse) in the SIP parse benchmark. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include <osipparser2/osip_message.h>
#include <osipparser2/osip_parser.h>
#include <osipparser2/osip_port.h>

#include "sipb.h"

static void quiet(const char *file, int line, osip_trace_level_t level, const char *fmt,
                  va_list ap) {
  (void)file, (void)line, (void)level, (void)fmt, (void)ap;
}

static int osip_init_(void) {
  /* Debian's osip2 is built with tracing, which prints every refusal to
   * the terminal: silence it (the refusals are reported by the benchmark). */
  osip_trace_initialize_func(TRACE_LEVEL0, quiet);
  for (int l = TRACE_LEVEL0; l < END_TRACE_LEVEL; l++)
    osip_trace_disable_level((osip_trace_level_t)l);
  return parser_init() == 0 ? 0 : -1;
}
/* parser_init fills process-wide tables that live until exit. */
static void osip_fini_(void) {}

/* osip keeps numbers as strings; kz and sofia convert them while parsing,
 * so the walk converts the ones kz converts (ports, CSeq, Max-Forwards,
 * Content-Length, Expires). */
static uint64_t num(const char *s) { return s ? strtoul(s, NULL, 10) : 0; }

static uint64_t touch_uri(const osip_uri_t *u) {
  if (!u)
    return 0;
  return (uint64_t)(uintptr_t)u->host + num(u->port) + (uint64_t)osip_list_size(&u->url_params);
}

static uint64_t touch_from(const osip_from_t *f) {
  if (!f)
    return 0;
  return touch_uri(f->url) + (uint64_t)(uintptr_t)f->displayname +
         (uint64_t)osip_list_size(&f->gen_params);
}

/* Walks a list of name-addr values (Contact, Route, Record-Route share
 * osip_from_t's layout). */
static uint64_t walk_addrs(const osip_list_t *l, unsigned *values) {
  osip_list_iterator_t it;
  uint64_t s = 0;
  for (osip_from_t *f = osip_list_get_first(l, &it); f; f = osip_list_get_next(&it)) {
    s += touch_from(f);
    ++*values;
  }
  return s;
}

static uint64_t walk_auths(const osip_list_t *l, unsigned *values) {
  osip_list_iterator_t it;
  uint64_t s = 0;
  for (osip_authorization_t *a = osip_list_get_first(l, &it); a; a = osip_list_get_next(&it)) {
    s += (uint64_t)(uintptr_t)a->username + (uint64_t)(uintptr_t)a->nonce +
         (uint64_t)(uintptr_t)a->response;
    ++*values;
  }
  return s;
}

static uint64_t walk_challenges(const osip_list_t *l, unsigned *values) {
  osip_list_iterator_t it;
  uint64_t s = 0;
  for (osip_www_authenticate_t *a = osip_list_get_first(l, &it); a; a = osip_list_get_next(&it)) {
    s += (uint64_t)(uintptr_t)a->realm + (uint64_t)(uintptr_t)a->nonce;
    ++*values;
  }
  return s;
}

/* Lists whose elements are only counted (Accept, Allow, Call-Info...):
 * osip has parsed them already; touching the element is the walk. */
static uint64_t walk_plain(const osip_list_t *l, unsigned *hdrs) {
  osip_list_iterator_t it;
  uint64_t s = 0;
  for (void *e = osip_list_get_first(l, &it); e; e = osip_list_get_next(&it)) {
    s += *(const uintptr_t *)e; /* first field of every osip header struct */
    ++*hdrs;
  }
  return s;
}

static int osip_parse_(void *prep, uint64_t *sink, struct sipb_depth *depth, char *why,
                       size_t whylen) {
  const struct sipb_bytes *in = prep;
  osip_message_t *m = NULL;
  if (osip_message_init(&m) != OSIP_SUCCESS)
    return -1;
  int rc = osip_message_parse(m, (const char *)in->data, in->len);
  if (rc != OSIP_SUCCESS) {
    if (why)
      snprintf(why, whylen, "osip_message_parse %d", rc);
    osip_message_free(m);
    return -1;
  }
  /* The required headers kz_sip_msg_parse insists on (RFC 3261 §8.1.1):
   * osip's parser leaves that check to the transaction layer, which
   * drops such messages, so the benchmark applies it here. */
  if (!m->call_id || !m->from || !m->to || !m->cseq || osip_list_size(&m->vias) <= 0) {
    if (why)
      snprintf(why, whylen, "missing Via/From/To/Call-ID/CSeq");
    osip_message_free(m);
    return -1;
  }
  unsigned hdrs = 0, values = 0;
  uint64_t s = m->req_uri ? touch_uri(m->req_uri) : (uint64_t)m->status_code;

  osip_list_iterator_t it;
  for (osip_via_t *v = osip_list_get_first(&m->vias, &it); v; v = osip_list_get_next(&it)) {
    s += (uint64_t)(uintptr_t)v->host + num(v->port) + (uint64_t)osip_list_size(&v->via_params);
    values++;
  }
  s += touch_from(m->from) + touch_from(m->to) + (uint64_t)(uintptr_t)m->call_id->number;
  s += num(m->cseq->number) + (uint64_t)(uintptr_t)m->cseq->method;
  values += 3;
  s += walk_addrs(&m->contacts, &values) + walk_addrs(&m->routes, &values) +
       walk_addrs(&m->record_routes, &values);
  s += walk_auths(&m->authorizations, &values) + walk_auths(&m->proxy_authorizations, &values);
  s += walk_challenges(&m->www_authenticates, &values) +
       walk_challenges(&m->proxy_authenticates, &values);
  if (m->content_length)
    s += num(m->content_length->value), hdrs++;
  if (m->content_type)
    s += (uint64_t)(uintptr_t)m->content_type->subtype, hdrs++;
  if (m->mime_version)
    hdrs++;
  s += walk_plain(&m->accepts, &hdrs) + walk_plain(&m->accept_encodings, &hdrs) +
       walk_plain(&m->accept_languages, &hdrs) + walk_plain(&m->alert_infos, &hdrs) +
       walk_plain(&m->allows, &hdrs) + walk_plain(&m->authentication_infos, &hdrs) +
       walk_plain(&m->call_infos, &hdrs) + walk_plain(&m->content_encodings, &hdrs) +
       walk_plain(&m->error_infos, &hdrs) + walk_plain(&m->proxy_authentication_infos, &hdrs);
  /* Headers osip does not know stay name/value pairs; decode the two
   * numeric ones kz decodes. */
  for (osip_header_t *h = osip_list_get_first(&m->headers, &it); h; h = osip_list_get_next(&it)) {
    s += (uint64_t)(uintptr_t)h->hvalue;
    if (h->hname && (!strcasecmp(h->hname, "max-forwards") || !strcasecmp(h->hname, "expires")))
      s += num(h->hvalue);
    hdrs++;
  }
  /* Each Via/From/To/Call-ID/CSeq/Contact/Route/Record-Route/auth value
   * is also a header field walked. */
  hdrs += values;
  s += (uint64_t)osip_list_size(&m->bodies);
  if (depth) {
    depth->hdrs = hdrs;
    depth->values = values;
  }
  *sink += s;
  osip_message_free(m);
  return 0;
}

const struct sipb_parser sipb_osip = {
    .name = "osip2",
    .version = SIPB_OSIP_VERSION,
    .depth_doc =
        "`osip_message_parse` copies the bytes, unfolds LWS, parses the start line and the "
        "Request-URI, and parses every header it knows into its structure: Via, From, To, "
        "Contact, Route, Record-Route, Call-ID, CSeq, Content-Type, Content-Length, "
        "Authorization/Proxy-Authorization, WWW-/Proxy-Authenticate, and the list headers "
        "(Accept*, Allow, Alert-Info, Call-Info, Content-Encoding, Error-Info...) split into "
        "values; everything else (Max-Forwards, Expires, Supported, User-Agent...) is kept as a "
        "name/value pair.  It keeps numbers as strings, so the walk converts the ones kz "
        "converts (ports, CSeq, Max-Forwards, Content-Length, Expires), touches every parsed "
        "value and every other header, and checks that Via, From, To, Call-ID and CSeq are "
        "present (kz does that inside its parser).  The body is kept, not parsed (kz does not "
        "parse it either).",
    .init = osip_init_,
    .fini = osip_fini_,
    .prepare = sipb_bytes_prepare,
    .unprepare = sipb_bytes_unprepare,
    .parse = osip_parse_,
};
