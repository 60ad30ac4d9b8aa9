/* proxy.c — the proxy instance: start/stop, UDP and TCP transports, the request pipeline (Kazoo's default.cfg) and transaction events. */
#include <stdio.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sip_build.h"
#include "proxy_int.h"

#define PX_MAX_TCP_MSG (64u * 1024u)

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

uint64_t px_now(const struct kz_proxy *p) { return kz_env_now(p->env); }

void px_ip_str(const struct kz_addr *a, char *out, size_t len) {
  kz_addr_format_ip(a, out, len);
}

const char *px_transport_name(enum kz_sip_transport t) {
  switch (t) {
  case KZ_SIP_TRANSPORT_TCP: return "TCP";
  case KZ_SIP_TRANSPORT_TLS: return "TLS";
  default: return "UDP";
  }
}

bool px_host_is_ip(struct kz_slice host) {
  struct kz_addr a;
  return host.p && kz_addr_from_literal(&a, host.p, host.len, 0, KZ_IP4_LEADING_ZEROS) == 0;
}

bool px_uri_addr(const struct kz_sip_uri *u, struct kz_addr *out, enum kz_sip_transport *tp) {
  if (u->scheme != KZ_SIP_SCHEME_SIP && u->scheme != KZ_SIP_SCHEME_SIPS) return false;
  struct kz_slice host = u->host;
  struct kz_slice maddr;
  if (kz_sip_param_get(u->params, "maddr", &maddr) && maddr.p && maddr.len) host = maddr;
  if (!host.p ||
      kz_addr_from_literal(out, host.p, host.len, u->port ? u->port : 5060, KZ_IP4_LEADING_ZEROS) != 0)
    return false;
  if (tp) {
    struct kz_slice t;
    *tp = KZ_SIP_TRANSPORT_UDP;
    if (kz_sip_param_get(u->params, "transport", &t) && t.p) {
      if (kz_slice_caseeq_cstr(t, "tcp")) *tp = KZ_SIP_TRANSPORT_TCP;
      else if (kz_slice_caseeq_cstr(t, "tls")) *tp = KZ_SIP_TRANSPORT_TLS;
    }
  }
  return true;
}

bool px_is_self_uri(const struct kz_proxy *p, const struct kz_sip_uri *u) {
  if (u->scheme != KZ_SIP_SCHEME_SIP && u->scheme != KZ_SIP_SCHEME_SIPS) return false;
  uint16_t port = u->port ? u->port : 5060;
  if (port != p->port && port != p->local.port) return false;
  char ip[KZ_ADDR_STRLEN];
  kz_addr_format_ip(&p->local, ip, sizeof ip);
  return kz_slice_caseeq_cstr(u->host, p->host) || kz_slice_caseeq_cstr(u->host, ip);
}

bool px_path_first_hop(const char *path, struct kz_addr *out, enum kz_sip_transport *tp) {
  struct kz_slice v = kz_slice_trim(kz_slice_cstr(path));
  struct kz_slice uri;
  if (v.len && v.p[0] == '<') {
    long close = kz_slice_find_char(v, '>');
    if (close < 2) return false;
    uri = kz_slice_sub(v, 1, (size_t)close - 1);
  } else {
    /* An addr-spec: its parameters belong to the header, not the URI. */
    size_t e = 0;
    while (e < v.len && v.p[e] != ',' && v.p[e] != ';') e++;
    uri = kz_slice_trim(kz_slice_sub(v, 0, e));
  }
  struct kz_sip_uri u;
  if (kz_sip_uri_parse(uri, &u) != 0) return false;
  return px_uri_addr(&u, out, tp);
}

/* Kamailio's alias proto numbers: 1 udp, 2 tcp, 3 tls. */
static int alias_proto(enum kz_sip_transport tp) {
  switch (tp) {
  case KZ_SIP_TRANSPORT_TCP: return 2;
  case KZ_SIP_TRANSPORT_TLS: return 3;
  default: return 1;
  }
}

bool px_alias_parse(struct kz_slice alias, struct kz_addr *out, enum kz_sip_transport *tp) {
  /* ip~port~proto, ip a v4 dotted quad or a v6 literal (with or
   * without brackets). */
  char buf[96];
  if (alias.len == 0 || alias.len >= sizeof buf) return false;
  memcpy(buf, alias.p, alias.len);
  buf[alias.len] = 0;
  char *t1 = strchr(buf, '~');
  if (!t1) return false;
  *t1++ = 0;
  char *t2 = strchr(t1, '~');
  int proto = 1;
  if (t2) {
    *t2++ = 0;
    if (t2[0] < '1' || t2[0] > '9' || t2[1]) return false;
    proto = t2[0] - '0';
  }
  uint64_t port = 0;
  if (kz_slice_to_u64(kz_slice_cstr(t1), 65535, &port) != 0 || !port) return false;
  if (kz_addr_from_literal(out, buf, strlen(buf), (uint16_t)port, KZ_IP4_LEADING_ZEROS) != 0) return false;
  *tp = proto == 2 ? KZ_SIP_TRANSPORT_TCP : proto == 3 ? KZ_SIP_TRANSPORT_TLS : KZ_SIP_TRANSPORT_UDP;
  return true;
}

bool px_contact_alias(const struct kz_sip_msg *m, const struct kz_addr *src,
                      enum kz_sip_transport tp, char *out, size_t n) {
  out[0] = 0;
  if (m->ncontacts != 1 || m->contact_star) return false;
  const struct kz_sip_uri *u = &m->contacts[0].uri;
  if (u->scheme != KZ_SIP_SCHEME_SIP && u->scheme != KZ_SIP_SCHEME_SIPS) return false;
  /* Already aliased (by us on an earlier hop, or by an edge proxy). */
  if (kz_sip_param_get(u->params, "alias", NULL)) return false;
  struct kz_addr ca;
  if (px_uri_addr(u, &ca, NULL) && kz_addr_eq(&ca, src)) return false;
  char ip[KZ_ADDR_STRLEN];
  px_ip_str(src, ip, sizeof ip);
  int k = snprintf(out, n, "%s~%u~%d", ip, src->port, alias_proto(tp));
  if (k < 0 || (size_t)k >= n) {
    out[0] = 0;
    return false;
  }
  return true;
}

/* ------------------------------------------------------------------ */
/* Transport                                                           */

static void conn_free(struct px_conn *c) {
  struct kz_proxy *p = c->p;
  if (c->prev) c->prev->next = c->next;
  else p->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  kz_stream_close(c->s);
  kz_buf_free(&c->in);
  kz_free(c);
}

static void handle_bytes(struct kz_proxy *p, const uint8_t *data, size_t len,
                         const struct kz_addr *src, enum kz_sip_transport transport);

static void on_malformed(struct kz_proxy *p, const uint8_t *data, size_t len,
                         const struct kz_addr *src, enum kz_sip_transport transport,
                         const struct kz_sip_perr *perr);

/* The stream cannot be framed any more (RFC 3261 §18.3): before closing
 * it, answer the request at its head with the framer's status, 513
 * Message Too Large (§21.5.14) for one over PX_MAX_TCP_MSG or 400 for a
 * missing or bad Content-Length, built from the header lines that
 * arrived (the last one may be cut short: it is left out). */
static void framing_error_reply(struct kz_proxy *p, struct px_conn *c, size_t skip,
                                const struct kz_sip_perr *err) {
  if (skip > c->in.len) return;
  const uint8_t *h = c->in.data + skip;
  size_t n = c->in.len - skip;
  bool blank = false;
  for (size_t i = 0; i + 1 < n && !blank; i++)
    if (h[i] == '\n' && (h[i + 1] == '\n' || (h[i + 1] == '\r' && i + 2 < n && h[i + 2] == '\n')))
      blank = true;
  if (!blank) {
    while (n > 0 && h[n - 1] != '\n') n--;
    if (!n) return;
  }
  struct kz_sip_perr e = *err;
  if (e.status == 513) snprintf(e.reason, sizeof e.reason, "Message Too Large");
  else if (e.status < 400 || e.status > 599) e.status = 400;
  struct kz_addr peer = c->peer;
  on_malformed(p, h, n, &peer, KZ_SIP_TRANSPORT_TCP, &e);
}

static void conn_on_data(void *arg, struct kz_stream *s, const uint8_t *data, size_t len) {
  struct px_conn *c = arg;
  struct kz_proxy *p = c->p;
  if (kz_buf_append(&c->in, data, len) < 0) {
    conn_free(c);
    return;
  }
  for (;;) {
    size_t skip = 0, mlen = 0;
    struct kz_sip_perr err;
    int rc = kz_sip_stream_frame(c->in.data, c->in.len, PX_MAX_TCP_MSG, &skip, &mlen, &err);
    if (rc == KZ_EAGAIN) {
      if (skip >= 4) kz_stream_write(s, "\r\n", 2); /* RFC 5626 pong */
      if (skip) kz_buf_consume(&c->in, skip);
      break;
    }
    if (rc < 0) {
      kz_log(p->env, KZ_LOG_INFO, PX_LOG, "tcp framing lost: %s", err.reason);
      framing_error_reply(p, c, skip, &err);
      conn_free(c);
      break;
    }
    if (skip >= 4) kz_stream_write(s, "\r\n", 2);
    /* Copy the frame out: handling it may write to this very stream. */
    uint8_t *msg = kz_malloc(mlen ? mlen : 1);
    if (!msg) break;
    memcpy(msg, c->in.data + skip, mlen);
    kz_buf_consume(&c->in, skip + mlen);
    struct kz_addr peer = c->peer;
    handle_bytes(p, msg, mlen, &peer, KZ_SIP_TRANSPORT_TCP);
    kz_free(msg);
    /* The connection may have been closed by a send failure. */
    bool alive = false;
    for (struct px_conn *x = p->conns; x; x = x->next)
      if (x == c) alive = true;
    if (!alive) break;
  }
  px_txl_rearm(p);
}

static void conn_on_close(void *arg, struct kz_stream *s, int status) {
  struct px_conn *c = arg;
  conn_free(c);
}

static void conn_on_connect(void *arg, struct kz_stream *s) {}

static const struct kz_stream_cbs conn_cbs = {
    .on_connect = conn_on_connect, .on_data = conn_on_data, .on_close = conn_on_close};

static struct px_conn *conn_add(struct kz_proxy *p, struct kz_stream *s, const struct kz_addr *peer) {
  struct px_conn *c = kz_calloc(1, sizeof *c);
  if (!c) return NULL;
  c->p = p;
  c->s = s;
  c->peer = *peer;
  kz_buf_init(&c->in);
  c->next = p->conns;
  if (p->conns) p->conns->prev = c;
  p->conns = c;
  kz_stream_set_cbs(s, &conn_cbs, c);
  return c;
}

static void on_accept(void *arg, struct kz_listener *l, struct kz_stream *s) {
  struct kz_proxy *p = arg;
  if (!conn_add(p, s, &s->peer)) kz_stream_close(s);
}

int px_send(struct kz_proxy *p, const void *data, size_t len, const struct kz_addr *dest,
            enum kz_sip_transport transport) {
  if (transport == KZ_SIP_TRANSPORT_TCP || transport == KZ_SIP_TRANSPORT_TLS) {
    for (struct px_conn *c = p->conns; c; c = c->next)
      if (kz_addr_eq(&c->peer, dest)) return kz_stream_write(c->s, data, len);
    struct kz_stream *s = NULL;
    int rc = kz_stream_connect(p->env, dest, &conn_cbs, NULL, &s);
    if (rc < 0) return rc;
    struct px_conn *c = conn_add(p, s, dest);
    if (!c) {
      kz_stream_close(s);
      return KZ_ENOMEM;
    }
    return kz_stream_write(s, data, len);
  }
  if (!p->udp) return KZ_ECLOSED;
  return kz_udp_send(p->udp, dest, data, len);
}

static int txl_send(void *arg, const uint8_t *bytes, size_t len, const struct kz_addr *dest,
                    enum kz_sip_transport transport) {
  return px_send(arg, bytes, len, dest, transport);
}

void px_txl_rearm(struct kz_proxy *p) {
  if (!p->txl) return;
  uint64_t d = kz_sip_txl_next_expiry(p->txl);
  if (d == UINT64_MAX) kz_timer_stop(&p->txl_timer);
  else if (kz_timer_deadline(&p->txl_timer) != d) kz_timer_start_at(&p->txl_timer, d);
}

static void on_txl_timer(void *arg) {
  struct kz_proxy *p = arg;
  kz_sip_txl_handle_expiry(p->txl, px_now(p));
  px_txl_rearm(p);
}

/* ------------------------------------------------------------------ */
/* Replies                                                             */

void px_reply(struct kz_proxy *p, const struct kz_sip_msg *req, const struct kz_addr *src,
              enum kz_sip_transport transport, uint16_t status, const char *reason,
              const char *extra_headers) {
  struct kz_buf b;
  kz_buf_init(&b);
  struct kz_sip_resp_spec rs = {.status = status, .reason = reason};
  rs.to_tag = kz_slice_cstr(p->sl_tag);
  if (extra_headers) rs.extra_headers = kz_slice_cstr(extra_headers);
  if (kz_sip_build_response(&b, req, &rs, NULL) == 0) {
    px_send(p, b.data, b.len, src, transport);
    p->st.replies_local++;
  }
  kz_buf_free(&b);
}

void px_txn_reply(struct kz_proxy *p, struct kz_sip_txn *stx, uint16_t status,
                  const char *reason, const char *extra_headers) {
  const struct kz_sip_msg *req = kz_sip_txn_request(stx);
  if (!req) return;
  struct kz_buf b;
  kz_buf_init(&b);
  struct kz_sip_resp_spec rs = {.status = status, .reason = reason};
  if (extra_headers) rs.extra_headers = kz_slice_cstr(extra_headers);
  if (kz_sip_build_response(&b, req, &rs, &p->prng) == 0) {
    if (kz_sip_txn_respond(stx, b.data, b.len, px_now(p)) == 0) p->st.replies_local++;
  }
  kz_buf_free(&b);
}

/* ------------------------------------------------------------------ */
/* Malformed messages: answer 400 with the parser's reason, built from
 * the raw header lines we can still find (a failed parse gives no
 * message structure).                                                  */

static bool hdr_name_is(struct kz_slice name, const char *longn, const char *shortn) {
  name = kz_slice_trim(name);
  return kz_slice_caseeq_cstr(name, longn) || (shortn && kz_slice_caseeq_cstr(name, shortn));
}

static void on_malformed(struct kz_proxy *p, const uint8_t *data, size_t len,
                         const struct kz_addr *src, enum kz_sip_transport transport,
                         const struct kz_sip_perr *perr) {
  p->st.malformed++;
  const char *s = (const char *)data, *e = s + len;
  while (s < e && (*s == '\r' || *s == '\n')) s++;
  if (e - s >= 4 && memcmp(s, "SIP/", 4) == 0) return; /* a response: drop */
  if (e - s >= 4 && memcmp(s, "ACK ", 4) == 0) return;  /* never answer an ACK */
  const char *nl = memchr(s, '\n', (size_t)(e - s));
  if (!nl) return;
  struct kz_buf hdrs;
  kz_buf_init(&hdrs);
  bool have_via = false, have_totag = false;
  const char *l = nl + 1;
  while (l < e) {
    const char *le = memchr(l, '\n', (size_t)(e - l));
    if (!le) le = e;
    /* Join folded continuation lines. */
    const char *end = le;
    while (end < e && end + 1 < e && (end[1] == ' ' || end[1] == '\t')) {
      const char *n2 = memchr(end + 1, '\n', (size_t)(e - end - 1));
      end = n2 ? n2 : e;
    }
    struct kz_slice line = kz_slice_trim(kz_slice_make(l, (size_t)(end - l)));
    if (line.len == 0) break; /* end of headers */
    long colon = kz_slice_find_char(line, ':');
    if (colon > 0) {
      struct kz_slice name = kz_slice_sub(line, 0, (size_t)colon);
      struct kz_slice val = kz_slice_trim(kz_slice_sub(line, (size_t)colon + 1, line.len));
      const char *canon = NULL;
      if (hdr_name_is(name, "Via", "v")) canon = "Via", have_via = true;
      else if (hdr_name_is(name, "From", "f")) canon = "From";
      else if (hdr_name_is(name, "To", "t")) canon = "To";
      else if (hdr_name_is(name, "Call-ID", "i")) canon = "Call-ID";
      else if (hdr_name_is(name, "CSeq", NULL)) canon = "CSeq";
      if (canon) {
        kz_buf_printf(&hdrs, "%s: ", canon);
        kz_sip_unfold(&hdrs, val);
        if (!strcmp(canon, "To")) {
          /* A crude tag test is enough: the value is only echoed. */
          for (size_t i = 0; i + 5 <= val.len; i++)
            if (val.p[i] == ';' && kz_slice_caseeq_cstr(kz_slice_sub(val, i + 1, 4), "tag="))
              have_totag = true;
          if (!have_totag) kz_buf_printf(&hdrs, ";tag=%s", p->sl_tag);
        }
        kz_buf_append_cstr(&hdrs, "\r\n");
      }
    }
    l = end < e ? end + 1 : e;
  }
  if (have_via) {
    char reason[sizeof perr->reason + 8];
    snprintf(reason, sizeof reason, "%s", perr->reason[0] ? perr->reason : "Bad Request");
    /* "missing Call-ID" -> "Missing Call-ID" as Kamailio's sanity says. */
    if (reason[0] >= 'a' && reason[0] <= 'z') reason[0] = (char)(reason[0] - 'a' + 'A');
    for (char *c = reason; *c; c++)
      if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e) *c = ' ';
    uint16_t status = perr->status >= 400 && perr->status <= 599 ? perr->status : 400;
    struct kz_buf b;
    kz_buf_init(&b);
    kz_buf_printf(&b, "SIP/2.0 %u %s\r\n", status, reason);
    kz_buf_append(&b, hdrs.data, hdrs.len);
    kz_buf_append_cstr(&b, "Content-Length: 0\r\n\r\n");
    px_send(p, b.data, b.len, src, transport);
    p->st.replies_local++;
    kz_buf_free(&b);
  }
  kz_buf_free(&hdrs);
}

/* ------------------------------------------------------------------ */
/* The request pipeline                                                */

/* The URI of the Route value i. */
static const struct kz_sip_uri *route_uri(const struct kz_sip_msg *m, size_t i) {
  return &m->routes[i].uri;
}

/* Next hop for the request after fwd's route edits: first remaining
 * Route, else the (new) Request-URI, honouring ;alias (handle_ruri_alias). */
static bool next_hop(struct kz_proxy *p, const struct kz_sip_msg *m, struct px_fwd *fwd) {
  size_t first = fwd->drop_routes;
  size_t last = m->nroutes - (fwd->drop_last_route ? 1 : 0);
  if (first < last) return px_uri_addr(route_uri(m, first), &fwd->dest, &fwd->transport);
  struct kz_sip_uri u;
  const struct kz_sip_uri *ru = &m->ruri;
  if (fwd->ruri[0]) {
    if (kz_sip_uri_parse(kz_slice_cstr(fwd->ruri), &u) != 0) return false;
    ru = &u;
  }
  struct kz_slice alias;
  if (kz_sip_param_get(ru->params, "alias", &alias) && alias.p && alias.len) {
    if (!px_alias_parse(alias, &fwd->dest, &fwd->transport)) return false;
    fwd->remove_alias = true;
    return true;
  }
  return px_uri_addr(ru, &fwd->dest, &fwd->transport);
}

/* loose_route(): true when the request was routed by a Route/R-URI that
 * names us; fwd gets the route edits and the next hop. */
static bool loose_route(struct kz_proxy *p, const struct kz_sip_msg *m, struct px_fwd *fwd,
                        bool *ok) {
  memset(fwd, 0, sizeof *fwd);
  *ok = false;
  bool ours = false;
  if (px_is_self_uri(p, &m->ruri) && m->nroutes > 0) {
    /* §16.4: the previous hop was a strict router and put our
     * Record-Route URI in the Request-URI: the real target is the last
     * Route value. */
    const struct kz_sip_addr *lr = &m->routes[m->nroutes - 1];
    if (lr->uri.raw.len >= sizeof fwd->ruri) return true;
    memcpy(fwd->ruri, lr->uri.raw.p, lr->uri.raw.len);
    fwd->ruri[lr->uri.raw.len] = 0;
    fwd->drop_last_route = true;
    ours = true;
  }
  size_t limit = m->nroutes - (fwd->drop_last_route ? 1 : 0);
  while (fwd->drop_routes < limit && px_is_self_uri(p, route_uri(m, fwd->drop_routes))) {
    fwd->drop_routes++;
    ours = true;
  }
  if (!ours) return false;
  *ok = next_hop(p, m, fwd);
  return true;
}

static bool method_is(const struct kz_sip_msg *m, enum kz_sip_method id) { return m->method == id; }

/* Feeds a request to the transaction layer with the decision made. */
static void feed_txl(struct kz_proxy *p, const struct kz_sip_msg *m, const struct kz_addr *src,
                     enum kz_sip_transport transport, enum px_mode mode, const struct px_fwd *fwd,
                     struct px_aor *aor) {
  p->cur_mode = mode;
  p->cur_fwd = fwd;
  p->cur_aor = aor;
  int rc = kz_sip_txl_recv(p->txl, m, src, transport, px_now(p));
  if (rc < 0) kz_log(p->env, KZ_LOG_WARN, PX_LOG, "txl_recv: %s", kz_err_name(rc));
  p->cur_mode = PXM_NONE;
  p->cur_fwd = NULL;
  p->cur_aor = NULL;
}

/* The AOR a media server asks for: X-KAZOO-AOR (4.3) or the R-URI. */
static struct px_aor *aor_of_request(struct kz_proxy *p, const struct kz_sip_msg *m) {
  const struct kz_sip_hdr *h = kz_sip_msg_hdr_by_name(m, KZ_SLICE_LIT("X-KAZOO-AOR"));
  if (h) {
    struct kz_slice v = kz_slice_trim(h->value);
    if (v.len > 4 && kz_slice_caseeq_cstr(kz_slice_sub(v, 0, 4), "sip:")) v = kz_slice_sub(v, 4, v.len);
    long at = kz_slice_find_char(v, '@');
    if (at > 0)
      return px_location(p, kz_slice_sub(v, 0, (size_t)at), kz_slice_sub(v, (size_t)at + 1, v.len));
  }
  if (!m->ruri.user.p) return NULL;
  return px_location(p, m->ruri.user, m->ruri.host);
}

/* What every forwarded request from this source gets, whatever route
 * it takes: the Contact alias of a NATed first hop and, from untrusted
 * sources, no X-AUTH-* header of theirs (only the proxy vouches). */
static void decorate(struct px_fwd *fwd, bool trusted, const char *alias) {
  fwd->strip_xauth = !trusted;
  snprintf(fwd->alias, sizeof fwd->alias, "%s", alias);
}

static void on_request(struct kz_proxy *p, const struct kz_sip_msg *m, const struct kz_addr *src,
                       enum kz_sip_transport transport) {
  p->st.requests_in++;
  bool trusted = px_is_trusted(p, src);
  bool ack = method_is(m, KZ_SIP_METHOD_ACK);
  bool in_dialog = m->to.tag.p != NULL;
  /* NAT_DETECT: a request straight from a device (one Via, so we are its
   * first hop) whose Contact is not where the packet came from gets
   * ;alias=ip~port~proto on the Contact URI (set_contact_alias), so that
   * requests sent back to that Contact find the NAT binding. */
  char alias[80] = "";
  if (!trusted && m->nvias == 1 && !method_is(m, KZ_SIP_METHOD_REGISTER))
    px_contact_alias(m, src, transport, alias, sizeof alias);

  /* TRAFFIC_FILTER: scanners dial bare IPs. */
  if (!trusted && !in_dialog && p->cfg->traffic_filter && px_traffic_filtered(p, m)) {
    p->st.filtered++;
    return;
  }
  /* sanity: R-URI scheme. */
  if (m->ruri.scheme != KZ_SIP_SCHEME_SIP && m->ruri.scheme != KZ_SIP_SCHEME_SIPS &&
      m->ruri.scheme != KZ_SIP_SCHEME_TEL) {
    if (!ack) px_reply(p, m, src, transport, 416, "Unsupported URI Scheme", NULL);
    return;
  }
  /* Max-Forwards (mf_process_maxfwd_header). */
  if (m->max_forwards == 0) {
    if (!ack) px_reply(p, m, src, transport, 483, "Too Many Hops", NULL);
    return;
  }
  if (px_loop_detected(p, m)) {
    if (!ack) px_reply(p, m, src, transport, 482, "Loop Detected", NULL);
    return;
  }
  const struct kz_sip_hdr *preq = kz_sip_msg_hdr(m, KZ_SIP_HDR_PROXY_REQUIRE);
  if (preq && !ack && !method_is(m, KZ_SIP_METHOD_CANCEL)) {
    struct kz_buf x;
    kz_buf_init(&x);
    kz_buf_append_cstr(&x, "Unsupported: ");
    kz_sip_unfold(&x, preq->value);
    kz_buf_append_cstr(&x, "\r\n");
    px_reply(p, m, src, transport, 420, "Bad Extension", (const char *)x.data);
    kz_buf_free(&x);
    return;
  }

  if (method_is(m, KZ_SIP_METHOD_CANCEL)) {
    feed_txl(p, m, src, transport, PXM_NONE, NULL, NULL);
    return;
  }
  if (ack) {
    struct px_fwd fwd;
    bool ok = false;
    if (in_dialog && kz_slice_eq_cstr(m->to.tag, p->sl_tag)) {
      /* The ACK of one of our stateless negative replies: absorb. */
      feed_txl(p, m, src, transport, PXM_ACK, NULL, NULL);
      return;
    }
    bool routed = loose_route(p, m, &fwd, &ok);
    if (!routed) {
      memset(&fwd, 0, sizeof fwd);
      ok = !px_is_self_uri(p, &m->ruri) && next_hop(p, m, &fwd);
    }
    decorate(&fwd, trusted, alias);
    feed_txl(p, m, src, transport, PXM_ACK, ok ? &fwd : NULL, NULL);
    return;
  }
  if (method_is(m, KZ_SIP_METHOD_REGISTER)) {
    px_on_register(p, m, src, transport);
    return;
  }

  struct px_fwd fwd;
  bool ok = false;
  if (in_dialog) {
    if (loose_route(p, m, &fwd, &ok)) {
      if (!ok) {
        px_reply(p, m, src, transport, 404, "Not here", NULL);
        return;
      }
      decorate(&fwd, trusted, alias);
      feed_txl(p, m, src, transport, PXM_FWD, &fwd, NULL);
      return;
    }
    /* Kazoo: in-dialog requests that do not route through us. */
    px_reply(p, m, src, transport, 481, "Call/Transaction Does Not Exist", NULL);
    return;
  }

  /* Initial requests.  A pre-loaded Route naming us is consumed. */
  memset(&fwd, 0, sizeof fwd);
  while (fwd.drop_routes < m->nroutes && px_is_self_uri(p, route_uri(m, fwd.drop_routes)))
    fwd.drop_routes++;
  bool more_routes = fwd.drop_routes < m->nroutes;

  if (method_is(m, KZ_SIP_METHOD_OPTIONS) && !more_routes &&
      (px_is_self_uri(p, &m->ruri) || !m->ruri.user.p || !trusted)) {
    /* Keep-alives and probes of the proxy itself are answered here. */
    px_reply(p, m, src, transport, 200, "Rawr!!",
             "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, MESSAGE, SUBSCRIBE, NOTIFY, "
             "REFER, UPDATE, PRACK, INFO\r\n");
    return;
  }
  if (method_is(m, KZ_SIP_METHOD_BYE) || method_is(m, KZ_SIP_METHOD_UPDATE) ||
      method_is(m, KZ_SIP_METHOD_PRACK)) {
    px_reply(p, m, src, transport, 403, "No dialog", NULL);
    return;
  }
  fwd.add_rr = m->method == KZ_SIP_METHOD_INVITE || m->method == KZ_SIP_METHOD_SUBSCRIBE ||
               m->method == KZ_SIP_METHOD_REFER;
  decorate(&fwd, trusted, alias);
  /* SETUP_AUTH_HEADERS (4.3): INVITEs are not challenged here; the media
   * server learns who sent them from headers only the proxy writes. */
  if (!trusted && (method_is(m, KZ_SIP_METHOD_INVITE) || method_is(m, KZ_SIP_METHOD_MESSAGE) ||
                   method_is(m, KZ_SIP_METHOD_REFER)))
    px_xauth_headers(p, m, src, fwd.xauth, sizeof fwd.xauth);

  if (trusted) {
    /* From a media server: to a registered device, or onward. */
    struct px_aor *aor = more_routes ? NULL : aor_of_request(p, m);
    if (aor && aor->n > 0) {
      feed_txl(p, m, src, transport, PXM_LOCATION, &fwd, aor);
      return;
    }
    if ((more_routes || (!px_is_self_uri(p, &m->ruri) && px_host_is_ip(m->ruri.host))) &&
        next_hop(p, m, &fwd)) {
      feed_txl(p, m, src, transport, PXM_FWD, &fwd, NULL);
      return;
    }
    px_reply(p, m, src, transport, 410, "Not registered", NULL);
    return;
  }

  /* From outside: to a media server. */
  int cand[KZ_PROXY_MAX_SERVERS * 2];
  size_t n = px_dispatch_candidates(p, m->call_id, cand, sizeof cand / sizeof cand[0]);
  if (n == 0) {
    px_reply(p, m, src, transport, 480, "All servers busy", NULL);
    return;
  }
  feed_txl(p, m, src, transport, PXM_DISPATCH, &fwd, NULL);
}

static void handle_bytes(struct kz_proxy *p, const uint8_t *data, size_t len,
                         const struct kz_addr *src, enum kz_sip_transport transport) {
  size_t i = 0;
  while (i < len && (data[i] == '\r' || data[i] == '\n')) i++;
  if (i == len) return; /* keep-alive */
  bool response = len - i >= 4 && memcmp(data + i, "SIP/", 4) == 0;
  /* Anti-flood first: a banned source costs no parsing. */
  if (!response && !px_pike_allow(p, src)) {
    p->st.flood_dropped++;
    return;
  }
  struct kz_sip_msg *m = NULL;
  struct kz_sip_perr perr;
  int rc = kz_sip_msg_parse(&m, data, len, 0, &perr);
  if (rc == KZ_EPROTO) {
    on_malformed(p, data, len, src, transport, &perr);
    return;
  }
  if (rc < 0) return;
  if (m->is_request) {
    on_request(p, m, src, transport);
  } else {
    p->st.responses_in++;
    kz_sip_txl_recv(p->txl, m, src, transport, px_now(p));
  }
  kz_deref(m);
}

static void on_udp(void *arg, struct kz_udp *u, const struct kz_addr *from, const uint8_t *data,
                   size_t len) {
  struct kz_proxy *p = arg;
  handle_bytes(p, data, len, from, KZ_SIP_TRANSPORT_UDP);
  px_txl_rearm(p);
}

/* ------------------------------------------------------------------ */
/* Transaction events                                                  */

static void on_txl_event(void *arg, const struct kz_sip_txl_event *ev) {
  struct kz_proxy *p = arg;
  void *user = ev->txn ? kz_sip_txn_user(ev->txn) : NULL;
  enum px_user_kind kind = user ? *(enum px_user_kind *)user : 0;
  switch (ev->type) {
  case KZ_SIP_TXL_EV_REQUEST:
    if (!ev->txn) {
      if (p->cur_mode == PXM_ACK && p->cur_fwd) px_forward_stateless(p, ev->msg, ev->src, p->cur_fwd);
      return;
    }
    if (ev->msg->method == KZ_SIP_METHOD_CANCEL) {
      px_on_cancel(p, ev->txn, ev->cancel_target);
      return;
    }
    if (p->cur_mode == PXM_FWD || p->cur_mode == PXM_DISPATCH || p->cur_mode == PXM_LOCATION) {
      px_proxy_request(p, ev->txn, ev->msg, ev->src, ev->transport, p->cur_fwd, p->cur_mode,
                       p->cur_aor);
      return;
    }
    px_txn_reply(p, ev->txn, 500, "Server Internal Error", NULL);
    return;
  case KZ_SIP_TXL_EV_RESPONSE:
    if (!ev->txn) {
      /* A 2xx retransmission: it must carry the Contact the first one
       * carried to the caller. */
      char alias[80] = "";
      if (!px_is_trusted(p, ev->src)) px_contact_alias(ev->msg, ev->src, ev->transport, alias, sizeof alias);
      px_forward_response_stateless(p, ev->msg, alias);
      return;
    }
    if (kind == PXU_BRANCH) px_on_branch_response(p, user, ev->msg, ev->src, ev->transport);
    else if (kind == PXU_PROBE) px_on_probe_result(p, user, ev->msg->status);
    else if (kind == PXU_PING && ev->msg->status >= 200) px_on_ping_result(p, user, true);
    return;
  case KZ_SIP_TXL_EV_TIMEOUT:
  case KZ_SIP_TXL_EV_TRANSPORT_ERROR: {
    uint16_t st = ev->type == KZ_SIP_TXL_EV_TIMEOUT ? 408 : 503;
    if (kind == PXU_BRANCH) px_on_branch_failure(p, user, st);
    else if (kind == PXU_PROBE) px_on_probe_result(p, user, 0);
    else if (kind == PXU_PING) px_on_ping_result(p, user, false);
    return;
  }
  case KZ_SIP_TXL_EV_TERMINATED:
    if (kind == PXU_PCTX) px_on_server_terminated(p, user);
    else if (kind == PXU_BRANCH) px_on_branch_terminated(p, user);
    else if (kind == PXU_PROBE || kind == PXU_PING) px_probe_free(p, user);
    return;
  }
}

/* ------------------------------------------------------------------ */
/* Probes and pings                                                    */

struct px_probe *px_probe_new(struct kz_proxy *p, enum px_user_kind kind) {
  struct px_probe *pr = kz_calloc(1, sizeof *pr);
  if (!pr) return NULL;
  pr->kind = kind;
  pr->p = p;
  pr->server_id = -1;
  pr->next = p->probes;
  if (p->probes) p->probes->prev = pr;
  p->probes = pr;
  return pr;
}

void px_probe_free(struct kz_proxy *p, struct px_probe *pr) {
  if (pr->prev) pr->prev->next = pr->next;
  else p->probes = pr->next;
  if (pr->next) pr->next->prev = pr->prev;
  kz_free(pr);
}

int px_send_options(struct kz_proxy *p, const char *ruri, const struct kz_addr *dest,
                    enum kz_sip_transport tp, struct px_probe *pr) {
  char sent_by[KZ_ADDR_STRLEN + 8], from[KZ_ADDR_STRLEN + 32], to[300];
  snprintf(sent_by, sizeof sent_by, "%s:%u", p->host, p->port);
  /* nathelper's sipping_from / dispatcher's ds_ping_from. */
  snprintf(from, sizeof from, "<sip:registrar@%s>", p->host);
  snprintf(to, sizeof to, "<%s>", ruri);
  struct kz_sip_req_spec rs = {
      .method = "OPTIONS",
      .ruri = kz_slice_cstr(ruri),
      .via_transport = kz_slice_cstr(px_transport_name(tp)),
      .via_sent_by = kz_slice_cstr(sent_by),
      .via_params = KZ_SLICE_LIT(";rport"),
      .from = kz_slice_cstr(from),
      .to = kz_slice_cstr(to),
      .max_forwards = 10,
  };
  struct kz_buf b;
  kz_buf_init(&b);
  int rc = kz_sip_build_request(&b, &rs, &p->prng);
  if (rc == 0) rc = kz_sip_txl_request(p->txl, b.data, b.len, dest, tp, pr, px_now(p), NULL);
  kz_buf_free(&b);
  if (rc < 0) px_probe_free(p, pr);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Start / stop                                                        */

void kz_proxy_stop(void *instance) {
  struct kz_proxy *p = instance;
  if (!p) return;
  kz_timer_stop(&p->txl_timer);
  /* Transactions first (no events), then what hung on them. */
  kz_sip_txl_free(p->txl);
  p->txl = NULL;
  px_pctx_free_all(p);
  while (p->probes) px_probe_free(p, p->probes);
  /* The bus ends pending authn requests (KZ_ECANCELED) through the
   * registrar: free it while the registrar still exists. */
  kz_bus_free(p->bus);
  p->bus = NULL;
  px_registrar_fini(p);
  px_dispatcher_fini(p);
  px_antiflood_fini(p);
  while (p->conns) conn_free(p->conns);
  kz_listener_close(p->lst);
  kz_udp_close(p->udp);
  kz_free(p);
}

int kz_proxy_start(struct kz_env *env, const void *cfgv, void **instance) {
  const struct kz_proxy_config *cfg = cfgv;
  if (!env || !cfg || !instance) return KZ_EINVAL;
  char err[160];
  if (kz_proxy_config_check(cfg, err, sizeof err) != 0) {
    kz_log(env, KZ_LOG_ERROR, PX_LOG, "bad configuration: %s", err);
    return KZ_EINVAL;
  }
  struct kz_proxy *p = kz_calloc(1, sizeof *p);
  if (!p) return KZ_ENOMEM;
  p->env = env;
  p->cfg = cfg;
  kz_env_prng(env, "proxy", &p->prng);
  kz_timer_init(&p->txl_timer, env, on_txl_timer, p);
  /* Every timer is initialised before anything can fail: stop() stops
   * them all. */
  kz_timer_init(&p->nat_timer, env, NULL, p);
  kz_timer_init(&p->probe_timer, env, NULL, p);
  kz_timer_init(&p->gc_timer, env, NULL, p);
  kz_sip_build_tag(&p->prng, p->sl_tag);
  int rc = 0;

  struct kz_addr la;
  kz_addr_parse(&la, cfg->listen);
  if (!la.port) la.port = 5060;
  if ((rc = kz_udp_bind(env, &la, on_udp, p, &p->udp)) < 0) goto fail;
  p->local = p->udp->local;
  if (cfg->tcp && (rc = kz_stream_listen(env, &p->local, on_accept, p, &p->lst)) < 0) goto fail;

  /* Advertised address. */
  if (cfg->advertise[0]) {
    snprintf(p->host, sizeof p->host, "%s", cfg->advertise);
    p->port = p->local.port;
    char *colon = strrchr(p->host, ':');
    if (colon && !strchr(p->host, ']') && strchr(p->host, ':') == colon) {
      *colon = 0;
      uint64_t port = 0;
      if (kz_slice_to_u64(kz_slice_cstr(colon + 1), 65535, &port) == 0 && port)
        p->port = (uint16_t)port;
    }
  } else {
    kz_addr_format_ip(&p->local, p->host, sizeof p->host);
    p->port = p->local.port;
  }
  snprintf(p->self_uri, sizeof p->self_uri, "sip:%s:%u", p->host, p->port);
  if (cfg->node[0]) snprintf(p->node, sizeof p->node, "%s", cfg->node);
  else snprintf(p->node, sizeof p->node, "kamailio@%s", env->name);

  struct kz_sip_txl_config tc = {.map_seed = kz_prng_next(&p->prng)};
  /* We send our own 100 Trying for INVITEs at once. */
  tc.trying_delay = UINT64_MAX;
  struct kz_sip_txl_cbs cbs = {.send = txl_send, .event = on_txl_event};
  if ((rc = kz_sip_txl_new(&p->txl, &tc, &cbs, p)) < 0) goto fail;

  if ((rc = px_antiflood_init(p)) < 0) goto fail;
  if ((rc = px_dispatcher_init(p)) < 0) goto fail;
  if ((rc = px_registrar_init(p)) < 0) goto fail;

  char la_s[KZ_ADDR_STRLEN];
  kz_addr_format(&p->local, la_s, sizeof la_s);
  kz_log(env, KZ_LOG_INFO, PX_LOG, "proxy listening on %s (udp%s), %zu media servers, bus %s", la_s,
         cfg->tcp ? "+tcp" : "", p->nservers, p->bus ? "on" : "off");
  *instance = p;
  return 0;
fail:
  kz_proxy_stop(p);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Introspection                                                       */

void kz_proxy_get_stats(const struct kz_proxy *p, struct kz_proxy_stats *out) {
  if (p && out) *out = p->st;
}

struct kz_bus *kz_proxy_bus(const struct kz_proxy *p) { return p ? p->bus : NULL; }
