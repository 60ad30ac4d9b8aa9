/* forward.c — stateful forwarding (RFC 3261 §16): request rewriting, branches, best-response selection, CANCEL, dispatcher failover. */
#include <stdio.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sip_build.h"
#include "proxy_int.h"

/* ------------------------------------------------------------------ */
/* Loop detection (§16.3 item 4, §16.6 item 8)                         */

static uint64_t loop_hash(const struct kz_sip_msg *m) {
  struct kz_buf b;
  kz_buf_init(&b);
  kz_buf_append_slice(&b, m->ruri.raw);
  kz_buf_append_byte(&b, 0);
  kz_buf_append_slice(&b, m->from.tag);
  kz_buf_append_byte(&b, 0);
  kz_buf_append_slice(&b, m->to.tag);
  kz_buf_append_byte(&b, 0);
  kz_buf_append_slice(&b, m->call_id);
  kz_buf_printf(&b, "%c%u%c", 0, (unsigned)m->cseq.num, 0);
  const struct kz_sip_hdr *h = kz_sip_msg_hdr(m, KZ_SIP_HDR_PROXY_REQUIRE);
  if (h) kz_buf_append_slice(&b, h->value);
  uint64_t v = kz_hash64(b.data, b.len, 0x6b7a70726f7879ull);
  kz_buf_free(&b);
  return v;
}

void px_make_branch(struct kz_proxy *p, const struct kz_sip_msg *req, char *out, size_t len) {
  char rnd[9];
  kz_prng_hex(&p->prng, rnd, 8);
  rnd[8] = 0;
  snprintf(out, len, "z9hG4bK" PX_BRANCH_MARK "%016llx.%s", (unsigned long long)loop_hash(req), rnd);
}

static bool via_is_self(const struct kz_proxy *p, const struct kz_sip_via *v) {
  uint16_t port = v->port ? v->port : 5060;
  if (port != p->port) return false;
  char ip[KZ_ADDR_STRLEN];
  kz_addr_format_ip(&p->local, ip, sizeof ip);
  return kz_slice_caseeq_cstr(v->host, p->host) || kz_slice_caseeq_cstr(v->host, ip);
}

bool px_loop_detected(struct kz_proxy *p, const struct kz_sip_msg *req) {
  static const char mark[] = "z9hG4bK" PX_BRANCH_MARK;
  char want[17];
  bool have = false;
  for (size_t i = 0; i < req->nvias; i++) {
    const struct kz_sip_via *v = &req->vias[i];
    if (!via_is_self(p, v) || v->branch.len < sizeof mark - 1 + 16) continue;
    if (memcmp(v->branch.p, mark, sizeof mark - 1) != 0) continue;
    if (!have) {
      snprintf(want, sizeof want, "%016llx", (unsigned long long)loop_hash(req));
      have = true;
    }
    if (memcmp(v->branch.p + sizeof mark - 1, want, 16) == 0) return true;
  }
  return false;
}

/* ------------------------------------------------------------------ */
/* Rewriting                                                           */

/* Appends params without the ones named in skip (NULL-terminated). */
static void append_params_without(struct kz_buf *b, struct kz_slice params, const char *const *skip) {
  size_t i = 0;
  while (i < params.len) {
    if (params.p[i] != ';') {
      i++;
      continue;
    }
    size_t j = i + 1;
    bool q = false;
    while (j < params.len && (q || params.p[j] != ';')) {
      if (params.p[j] == '"') q = !q;
      j++;
    }
    struct kz_slice one = kz_slice_sub(params, i + 1, j - i - 1);
    long eq = kz_slice_find_char(one, '=');
    struct kz_slice name = kz_slice_trim(eq >= 0 ? kz_slice_sub(one, 0, (size_t)eq) : one);
    bool drop = false;
    for (const char *const *s = skip; *s; s++)
      if (kz_slice_caseeq_cstr(name, *s)) drop = true;
    if (!drop) {
      kz_buf_append_byte(b, ';');
      kz_buf_append_slice(b, one);
    }
    i = j;
  }
}

/* The top Via as forwarded: with received= and a filled rport= (RFC
 * 3581, Kamailio's force_rport). */
static void append_top_via(struct kz_proxy *p, struct kz_buf *b, const struct kz_sip_via *v,
                           const struct kz_addr *src) {
  char ip[KZ_ADDR_STRLEN];
  px_ip_str(src, ip, sizeof ip);
  bool want_rport = v->rport >= 0; /* ;rport asked, Kamailio always fills it */
  bool need_received = want_rport || !kz_slice_caseeq_cstr(v->host, ip);
  if (!need_received) {
    kz_sip_unfold(b, v->raw);
    return;
  }
  struct kz_slice head = v->raw;
  if (v->params.p) head.len = (size_t)(v->params.p - v->raw.p);
  kz_sip_unfold(b, kz_slice_trim(head));
  static const char *const skip[] = {"received", "rport", NULL};
  append_params_without(b, v->params, skip);
  kz_buf_printf(b, ";received=%s", ip);
  if (want_rport) kz_buf_printf(b, ";rport=%u", src->port);
}

static void append_uri_without_alias(struct kz_buf *b, const char *uri) {
  struct kz_sip_uri u;
  if (kz_sip_uri_parse(kz_slice_cstr(uri), &u) != 0 || !u.params.p) {
    kz_buf_append_cstr(b, uri);
    return;
  }
  kz_buf_append(b, uri, (size_t)(u.params.p - uri));
  static const char *const skip[] = {"alias", NULL};
  append_params_without(b, u.params, skip);
  const char *rest = u.params.p + u.params.len;
  kz_buf_append_cstr(b, rest);
}

/* A Contact value with ;alias=<alias> added to its URI (Kamailio's
 * add_contact_alias): inside the <>, before any URI headers; an
 * addr-spec gets the <> it then needs, its header parameters kept
 * after them. */
static void append_contact_alias(struct kz_buf *b, const struct kz_sip_addr *c, const char *alias) {
  const char *rs = c->raw.p, *re = c->raw.p + c->raw.len;
  const char *us = c->uri.raw.p, *ue = c->uri.raw.p + c->uri.raw.len;
  const char *ins = c->uri.headers.p ? c->uri.headers.p - 1 : ue; /* the '?' */
  kz_sip_unfold(b, kz_slice_make(rs, (size_t)(us - rs)));
  if (!c->angle) kz_buf_append_byte(b, '<');
  kz_buf_append(b, us, (size_t)(ins - us));
  kz_buf_printf(b, ";alias=%s", alias);
  kz_buf_append(b, ins, (size_t)(ue - ins));
  if (!c->angle) kz_buf_append_byte(b, '>');
  kz_sip_unfold(b, kz_slice_make(ue, (size_t)(re - ue)));
}

/* X-AUTH-*: Kazoo's media servers take them as the proxy's word. */
static bool is_xauth(struct kz_slice name) {
  return name.len >= 7 && kz_slice_caseeq_cstr(kz_slice_sub(name, 0, 7), "X-AUTH-");
}

static void append_rr(struct kz_proxy *p, struct kz_buf *b, enum kz_sip_transport tp) {
  if (tp == KZ_SIP_TRANSPORT_TCP)
    kz_buf_printf(b, "Record-Route: <sip:%s:%u;transport=tcp;lr>\r\n", p->host, p->port);
  else
    kz_buf_printf(b, "Record-Route: <sip:%s:%u;lr>\r\n", p->host, p->port);
}

/* Record-Route: one entry, or two when the transport changes (the top
 * one faces the callee, Kamailio's double RR). */
static void append_rrs(struct kz_proxy *p, struct kz_buf *b, enum kz_sip_transport in_tp,
                       enum kz_sip_transport out_tp) {
  append_rr(p, b, out_tp);
  if ((in_tp == KZ_SIP_TRANSPORT_TCP) != (out_tp == KZ_SIP_TRANSPORT_TCP)) append_rr(p, b, in_tp);
}

int px_build_request_tp(struct kz_proxy *p, const struct kz_sip_msg *req, const struct kz_addr *src,
                        enum kz_sip_transport in_tp, const struct px_fwd *fwd, const char *branch,
                        struct kz_buf *b) {
  kz_buf_append_slice(b, req->method_text);
  kz_buf_append_byte(b, ' ');
  if (fwd->ruri[0]) {
    if (fwd->remove_alias) append_uri_without_alias(b, fwd->ruri);
    else kz_buf_append_cstr(b, fwd->ruri);
  } else {
    char tmp[1024];
    if (fwd->remove_alias && req->ruri.raw.len < sizeof tmp) {
      memcpy(tmp, req->ruri.raw.p, req->ruri.raw.len);
      tmp[req->ruri.raw.len] = 0;
      append_uri_without_alias(b, tmp);
    } else {
      kz_buf_append_slice(b, req->ruri.raw);
    }
  }
  kz_buf_append_cstr(b, " SIP/2.0\r\n");
  kz_buf_printf(b, "Via: SIP/2.0/%s %s:%u;branch=%s\r\n", px_transport_name(fwd->transport),
                p->host, p->port, branch);
  bool vias_done = false, routes_done = false, rr_done = !fwd->add_rr, mf_done = false;
  size_t rfirst = fwd->drop_routes;
  size_t rlast = req->nroutes - (fwd->drop_last_route && req->nroutes ? 1 : 0);
  for (size_t i = 0; i < req->nhdrs; i++) {
    const struct kz_sip_hdr *h = &req->hdrs[i];
    switch (h->id) {
    case KZ_SIP_HDR_VIA:
      if (vias_done) break;
      vias_done = true;
      for (size_t v = 0; v < req->nvias; v++) {
        kz_buf_append_cstr(b, "Via: ");
        if (v == 0) append_top_via(p, b, &req->vias[0], src);
        else kz_sip_unfold(b, req->vias[v].raw);
        kz_buf_append_cstr(b, "\r\n");
      }
      break;
    case KZ_SIP_HDR_ROUTE:
      if (routes_done) break;
      routes_done = true;
      if (fwd->path && fwd->path[0]) kz_buf_printf(b, "Route: %s\r\n", fwd->path);
      for (size_t r = rfirst; r < rlast; r++) {
        kz_buf_append_cstr(b, "Route: ");
        kz_sip_unfold(b, req->routes[r].raw);
        kz_buf_append_cstr(b, "\r\n");
      }
      break;
    case KZ_SIP_HDR_RECORD_ROUTE:
      if (!rr_done) {
        append_rrs(p, b, in_tp, fwd->transport);
        rr_done = true;
      }
      goto copy;
    case KZ_SIP_HDR_MAX_FORWARDS:
      if (!mf_done) {
        int mf = req->max_forwards > 0 ? req->max_forwards - 1 : 0;
        kz_buf_printf(b, "Max-Forwards: %d\r\n", mf);
        mf_done = true;
      }
      break;
    case KZ_SIP_HDR_CONTENT_LENGTH:
      break;
    case KZ_SIP_HDR_CONTACT:
      /* fwd->alias is only set for a request with exactly one Contact. */
      if (fwd->alias[0] && req->ncontacts == 1) {
        kz_buf_append_slice(b, h->name);
        kz_buf_append_cstr(b, ": ");
        append_contact_alias(b, &req->contacts[0], fwd->alias);
        kz_buf_append_cstr(b, "\r\n");
        break;
      }
      goto copy;
    default:
      if (h->id == KZ_SIP_HDR_OTHER && fwd->strip_xauth && is_xauth(h->name)) break;
    copy:
      kz_buf_append_slice(b, h->name);
      kz_buf_append_cstr(b, ": ");
      kz_sip_unfold(b, h->value);
      kz_buf_append_cstr(b, "\r\n");
      break;
    }
  }
  if (!routes_done && fwd->path && fwd->path[0]) kz_buf_printf(b, "Route: %s\r\n", fwd->path);
  if (!rr_done) append_rrs(p, b, in_tp, fwd->transport);
  if (!mf_done) kz_buf_printf(b, "Max-Forwards: %u\r\n", p->cfg->max_forwards_default);
  kz_buf_append_cstr(b, fwd->xauth);
  kz_buf_printf(b, "Content-Length: %zu\r\n\r\n", req->body.len);
  return kz_buf_append_slice(b, req->body);
}

int px_build_request(struct kz_proxy *p, const struct kz_sip_msg *req, const struct kz_addr *src,
                     const struct px_fwd *fwd, const char *branch, struct kz_buf *out) {
  return px_build_request_tp(p, req, src, KZ_SIP_TRANSPORT_UDP, fwd, branch, out);
}

/* A response without its top Via (ours).  With req (the request of the
 * server transaction it answers, received from src), the Vias upstream
 * are that request's own, its top one as we forwarded it (received=,
 * rport=): the ones a downstream that follows §8.2.6.2 echoes anyway.
 * A downstream that answers from another request's Vias (a SIPp UAS
 * sends the 487 after a CANCEL with [last_Via:], the CANCEL's single
 * Via, §9.1) must not leave the response without a Via, or with one
 * that sends it elsewhere. */
static int build_response_up(struct kz_proxy *p, const struct kz_sip_msg *r,
                             const struct kz_sip_msg *req, const struct kz_addr *src,
                             const char *alias, struct kz_buf *b) {
  const char *eol = memchr(r->raw.p, '\n', r->raw.len);
  if (!eol) return KZ_EPROTO;
  struct kz_slice sl = kz_slice_trim(kz_slice_make(r->raw.p, (size_t)(eol - r->raw.p)));
  kz_buf_append_slice(b, sl);
  kz_buf_append_cstr(b, "\r\n");
  bool vias_done = false;
  for (size_t i = 0; i < r->nhdrs; i++) {
    const struct kz_sip_hdr *h = &r->hdrs[i];
    if (h->id == KZ_SIP_HDR_VIA) {
      if (vias_done) continue;
      vias_done = true;
      if (req) {
        for (size_t v = 0; v < req->nvias; v++) {
          kz_buf_append_cstr(b, "Via: ");
          if (v == 0) append_top_via(p, b, &req->vias[0], src);
          else kz_sip_unfold(b, req->vias[v].raw);
          kz_buf_append_cstr(b, "\r\n");
        }
        continue;
      }
      for (size_t v = 1; v < r->nvias; v++) {
        kz_buf_append_cstr(b, "Via: ");
        kz_sip_unfold(b, r->vias[v].raw);
        kz_buf_append_cstr(b, "\r\n");
      }
      continue;
    }
    if (h->id == KZ_SIP_HDR_CONTENT_LENGTH) continue;
    kz_buf_append_slice(b, h->name);
    kz_buf_append_cstr(b, ": ");
    if (h->id == KZ_SIP_HDR_CONTACT && alias && alias[0] && r->ncontacts == 1)
      append_contact_alias(b, &r->contacts[0], alias);
    else
      kz_sip_unfold(b, h->value);
    kz_buf_append_cstr(b, "\r\n");
  }
  kz_buf_printf(b, "Content-Length: %zu\r\n\r\n", r->body.len);
  return kz_buf_append_slice(b, r->body);
}

/* Where a response goes by its (new) top Via: received/rport (§18.2.2,
 * RFC 3581). */
static bool via_dest(const struct kz_sip_via *v, struct kz_addr *out, enum kz_sip_transport *tp) {
  struct kz_slice host = v->received.p && v->received.len ? v->received : v->host;
  uint16_t port = v->rport > 0 ? (uint16_t)v->rport : (v->port ? v->port : 5060);
  if (!host.p || kz_addr_from_literal(out, host.p, host.len, port, KZ_IP4_LEADING_ZEROS) != 0) return false;
  *tp = v->transport == KZ_SIP_TRANSPORT_TCP ? KZ_SIP_TRANSPORT_TCP : KZ_SIP_TRANSPORT_UDP;
  return true;
}

void px_forward_response_stateless(struct kz_proxy *p, const struct kz_sip_msg *resp,
                                   const char *alias) {
  if (resp->nvias < 2 || !via_is_self(p, &resp->vias[0])) return;
  struct kz_addr dest;
  enum kz_sip_transport tp;
  if (!via_dest(&resp->vias[1], &dest, &tp)) return;
  struct kz_buf b;
  kz_buf_init(&b);
  if (build_response_up(p, resp, NULL, NULL, alias, &b) == 0) px_send(p, b.data, b.len, &dest, tp);
  kz_buf_free(&b);
}

void px_forward_stateless(struct kz_proxy *p, const struct kz_sip_msg *req, const struct kz_addr *src,
                          const struct px_fwd *fwd) {
  char branch[64];
  px_make_branch(p, req, branch, sizeof branch);
  struct kz_buf b;
  kz_buf_init(&b);
  if (px_build_request(p, req, src, fwd, branch, &b) == 0) {
    px_send(p, b.data, b.len, &fwd->dest, fwd->transport);
    p->st.forwarded++;
  }
  kz_buf_free(&b);
}

/* ------------------------------------------------------------------ */
/* Proxy contexts                                                      */

/* Contexts are freed only when no handler runs on them (busy == 0), the
 * server transaction ended and every branch transaction ended. */

static void pctx_free(struct kz_proxy *p, struct px_pctx *pc) {
  if (pc->prev) pc->prev->next = pc->next;
  else if (p->pctxs == pc) p->pctxs = pc->next;
  if (pc->next) pc->next->prev = pc->prev;
  struct px_branch *b = pc->branches;
  while (b) {
    struct px_branch *n = b->next;
    kz_timer_stop(&b->fr);
    if (b->txn) {
      kz_sip_txn_set_user(b->txn, NULL);
      kz_deref(b->txn);
    }
    kz_free(b);
    b = n;
  }
  if (pc->stx) {
    kz_sip_txn_set_user(pc->stx, NULL);
    kz_deref(pc->stx);
  }
  kz_deref(pc->best);
  kz_free(pc);
}

void px_pctx_free_all(struct kz_proxy *p) {
  while (p->pctxs) pctx_free(p, p->pctxs);
}

static void enter(struct px_pctx *pc) { pc->busy++; }

static void leave(struct kz_proxy *p, struct px_pctx *pc) {
  pc->busy--;
  if (!pc->busy && pc->stx_done && pc->nlive == 0) pctx_free(p, pc);
}

static bool stx_open(const struct px_pctx *pc) {
  if (!pc->stx) return false;
  enum kz_sip_txn_state s = kz_sip_txn_state(pc->stx);
  return s == KZ_SIP_TXN_TRYING || s == KZ_SIP_TXN_PROCEEDING;
}

/* Relays resp upstream on the server transaction (§16.7 step 9).  The
 * server transaction is the only way the UAC learns how its request
 * ended: a final non-2xx that cannot be relayed as it came is answered
 * locally with the same status rather than dropped, so the UAC is never
 * left waiting for its timeout. */
static void relay_up(struct kz_proxy *p, struct px_pctx *pc, const struct kz_sip_msg *resp,
                     const char *alias) {
  struct kz_buf b;
  kz_buf_init(&b);
  int rc = KZ_EINVAL;
  bool open = stx_open(pc);
  if (build_response_up(p, resp, pc->req, &pc->src, alias, &b) == 0 && open)
    rc = kz_sip_txn_respond(pc->stx, b.data, b.len, px_now(p));
  kz_buf_free(&b);
  if (rc == 0) return;
  if (resp->status >= 200 && resp->status < 300) {
    px_forward_response_stateless(p, resp, alias);
  } else if (resp->status >= 300 && open && stx_open(pc)) {
    char reason[128];
    snprintf(reason, sizeof reason, "%.*s", (int)(resp->reason.len < 127 ? resp->reason.len : 127),
             resp->reason.p ? resp->reason.p : "");
    kz_log(p->env, KZ_LOG_INFO, PX_LOG, "%.*s: cannot relay the %u (%s): answering it locally",
           (int)pc->req->call_id.len, pc->req->call_id.p, resp->status, kz_err_name(rc));
    px_txn_reply(p, pc->stx, resp->status, reason[0] ? reason : NULL, NULL);
  }
}

static void local_final(struct kz_proxy *p, struct px_pctx *pc, uint16_t status, const char *reason) {
  if (stx_open(pc)) px_txn_reply(p, pc->stx, status, reason, NULL);
  pc->final_sent = true;
}

/* ------------------------------------------------------------------ */
/* Branches                                                            */

static void on_fr_timer(void *arg);

static int start_branch(struct kz_proxy *p, struct px_pctx *pc, const struct px_fwd *fwd,
                        int server_id) {
  struct px_branch *b = kz_calloc(1, sizeof *b);
  if (!b) return KZ_ENOMEM;
  b->kind = PXU_BRANCH;
  b->pc = pc;
  b->dest = fwd->dest;
  b->transport = fwd->transport;
  b->server_id = server_id;
  kz_timer_init(&b->fr, p->env, on_fr_timer, b);
  char branch[64];
  px_make_branch(p, pc->req, branch, sizeof branch);
  struct kz_buf buf;
  kz_buf_init(&buf);
  int rc = px_build_request_tp(p, pc->req, &pc->src, pc->src_transport, fwd, branch, &buf);
  struct kz_sip_txn *txn = NULL;
  if (rc == 0)
    rc = kz_sip_txl_request(p->txl, buf.data, buf.len, &fwd->dest, fwd->transport, b, px_now(p), &txn);
  kz_buf_free(&buf);
  if (rc < 0) {
    char d[KZ_ADDR_STRLEN];
    kz_addr_format(&fwd->dest, d, sizeof d);
    kz_log(p->env, KZ_LOG_INFO, PX_LOG, "cannot forward to %s: %s", d, kz_err_name(rc));
    kz_free(b);
    return rc;
  }
  b->txn = kz_ref(txn);
  /* Append: branch order is the order of forking. */
  struct px_branch **tail = &pc->branches;
  while (*tail) tail = &(*tail)->next;
  *tail = b;
  pc->nbranches++;
  pc->nlive++;
  p->st.forwarded++;
  if (pc->dispatched && pc->req->method == KZ_SIP_METHOD_INVITE && p->cfg->invite_timeout_ms)
    kz_timer_start(&b->fr, (uint64_t)p->cfg->invite_timeout_ms * PX_NS_MS);
  return 0;
}

/* Tries the next media server of the candidate list. */
static bool start_next_server(struct kz_proxy *p, struct px_pctx *pc) {
  while (pc->ds_next < pc->ds_n) {
    int id = pc->ds_order[pc->ds_next++];
    struct px_server *s = px_server_by_id(p, id);
    if (!s || !s->up) continue;
    struct px_fwd f = pc->fwd;
    f.dest = s->addr;
    f.transport = s->transport;
    if (start_branch(p, pc, &f, id) == 0) return true;
  }
  return false;
}

static void cancel_branch(struct kz_proxy *p, struct px_branch *b) {
  if (b->final || !b->txn) return;
  if (!b->got_prov) {
    b->cancel_pending = true; /* §9.1: wait for a provisional response */
    return;
  }
  b->cancel_pending = false;
  if (kz_sip_txn_is_invite(b->txn)) kz_sip_txl_cancel(p->txl, b->txn, NULL, px_now(p), NULL);
}

static void cancel_others(struct kz_proxy *p, struct px_pctx *pc, struct px_branch *keep) {
  for (struct px_branch *b = pc->branches; b; b = b->next)
    if (b != keep) cancel_branch(p, b);
}

/* §16.7 step 6: 6xx beats everything, else the lowest class wins; the
 * first response of a class is kept. */
static bool better(uint16_t cand, uint16_t cur) {
  if (!cur) return true;
  if (cur >= 600) return false;
  if (cand >= 600) return true;
  return cand / 100 < cur / 100;
}

static void note_final(struct px_pctx *pc, const struct kz_sip_msg *resp, uint16_t status) {
  if (!better(status, pc->best_status)) return;
  pc->best_status = status;
  kz_deref(pc->best);
  pc->best = resp ? kz_ref((void *)resp) : NULL;
}

static void check_done(struct kz_proxy *p, struct px_pctx *pc) {
  if (pc->final_sent) return;
  for (struct px_branch *b = pc->branches; b; b = b->next)
    if (!b->final) return;
  if (pc->exhausted) {
    local_final(p, pc, 486, "Unable to Comply");
    return;
  }
  if (pc->best) {
    relay_up(p, pc, pc->best, NULL); /* >= 300: no dialog, no alias */
    pc->final_sent = true;
    return;
  }
  local_final(p, pc, pc->best_status ? pc->best_status : 408, NULL);
}

/* A branch ended without success (a final response >= 300, or a local
 * 408/503 when resp is NULL). */
static void branch_failed(struct kz_proxy *p, struct px_pctx *pc, struct px_branch *b,
                          const struct kz_sip_msg *resp, uint16_t status) {
  b->final = true;
  b->status = status;
  kz_timer_stop(&b->fr);
  if (pc->dispatched && b->server_id >= 0) {
    if (status == 407) px_dispatch_remember(p, pc->req->call_id, b->server_id);
    if (!resp) px_dispatch_mark_failed(p, b->server_id);
    bool retry = (status == 408 || (status >= 500 && status < 600)) && !pc->cancelled &&
                 !pc->final_sent && !pc->no_failover;
    if (retry) {
      if (pc->retries < p->cfg->max_failover) {
        pc->retries++;
        if (start_next_server(p, pc)) {
          p->st.failovers++;
          kz_log(p->env, KZ_LOG_INFO, PX_LOG, "%.*s: %u from media server, failover #%u",
                 (int)pc->req->call_id.len, pc->req->call_id.p, status, pc->retries);
          return;
        }
      }
      pc->exhausted = true;
    }
  }
  note_final(pc, resp, status);
  if (status >= 600) cancel_others(p, pc, b);
  check_done(p, pc);
}

static void on_fr_timer(void *arg) {
  struct px_branch *b = arg;
  struct px_pctx *pc = b->pc;
  struct kz_proxy *p = pc->p;
  if (b->final || b->got_prov) return;
  enter(pc);
  /* The media server is silent: give up on it (its transaction runs
   * out on its own; a late 1xx gets a CANCEL). */
  b->abandoned = true;
  b->cancel_pending = true;
  branch_failed(p, pc, b, NULL, 408);
  leave(p, pc);
  px_txl_rearm(p);
}

void px_on_branch_response(struct kz_proxy *p, struct px_branch *b, const struct kz_sip_msg *resp,
                           const struct kz_addr *src, enum kz_sip_transport tp) {
  struct px_pctx *pc = b->pc;
  if (!pc) return;
  uint16_t st = resp->status;
  /* A reply from a device behind NAT (not a media server) gets the same
   * Contact alias its requests would (nat-traversal-role's reply route):
   * the caller's ACK and BYE then find the device's NAT binding. */
  char alias[80] = "";
  if (st < 300 && !px_is_trusted(p, src)) px_contact_alias(resp, src, tp, alias, sizeof alias);
  enter(pc);
  if (st < 200) {
    kz_timer_stop(&b->fr);
    b->got_prov = true;
    if (b->cancel_pending) {
      cancel_branch(p, b);
    } else if (st > 100 && !b->abandoned && !pc->final_sent) {
      if (st == 180 || st == 183) pc->no_failover = true;
      relay_up(p, pc, resp, alias);
    }
  } else if (b->abandoned) {
    /* Already given up on (and counted as failed). */
  } else if (st < 300) {
    b->final = true;
    b->status = st;
    kz_timer_stop(&b->fr);
    pc->no_failover = true;
    relay_up(p, pc, resp, alias);
    pc->final_sent = true;
    cancel_others(p, pc, b);
  } else {
    branch_failed(p, pc, b, resp, st);
  }
  leave(p, pc);
}

void px_on_branch_failure(struct kz_proxy *p, struct px_branch *b, uint16_t status) {
  struct px_pctx *pc = b->pc;
  if (!pc || b->final) return;
  enter(pc);
  branch_failed(p, pc, b, NULL, status);
  leave(p, pc);
}

void px_on_branch_terminated(struct kz_proxy *p, struct px_branch *b) {
  struct px_pctx *pc = b->pc;
  if (!pc) return;
  enter(pc);
  if (!b->final) branch_failed(p, pc, b, NULL, 503);
  kz_timer_stop(&b->fr);
  if (b->txn) {
    kz_sip_txn_set_user(b->txn, NULL);
    b->txn = kz_deref(b->txn);
  }
  pc->nlive--;
  leave(p, pc);
}

void px_on_server_terminated(struct kz_proxy *p, struct px_pctx *pc) {
  enter(pc);
  pc->stx_done = true;
  /* Nobody is left to answer: stop the branches. */
  if (!pc->final_sent) {
    pc->cancelled = true;
    cancel_others(p, pc, NULL);
  }
  leave(p, pc);
}

void px_on_cancel(struct kz_proxy *p, struct kz_sip_txn *cancel, struct kz_sip_txn *target) {
  void *u = target ? kz_sip_txn_user(target) : NULL;
  if (!u || *(enum px_user_kind *)u != PXU_PCTX) {
    px_txn_reply(p, cancel, 481, "Call/Transaction Does Not Exist", NULL);
    return;
  }
  px_txn_reply(p, cancel, 200, "canceling", NULL);
  struct px_pctx *pc = u;
  if (pc->final_sent) return;
  enter(pc);
  pc->cancelled = true;
  bool any_prov = false;
  for (struct px_branch *b = pc->branches; b; b = b->next)
    if (!b->final && b->got_prov) any_prov = true;
  cancel_others(p, pc, NULL);
  /* No branch can be CANCELled yet (no provisional): answer 487 now;
   * the branches get their CANCEL when a 1xx shows up. */
  if (!any_prov) {
    for (struct px_branch *b = pc->branches; b; b = b->next)
      if (!b->final) b->abandoned = true;
    local_final(p, pc, 487, "Request Terminated");
  }
  leave(p, pc);
}

/* ------------------------------------------------------------------ */
/* New proxied requests                                                */

void px_proxy_request(struct kz_proxy *p, struct kz_sip_txn *stx, const struct kz_sip_msg *req,
                      const struct kz_addr *src, enum kz_sip_transport transport,
                      const struct px_fwd *fwd, enum px_mode mode, struct px_aor *aor) {
  struct px_pctx *pc = kz_calloc(1, sizeof *pc);
  if (!pc) {
    px_txn_reply(p, stx, 500, "Server Internal Error", NULL);
    return;
  }
  pc->kind = PXU_PCTX;
  pc->p = p;
  pc->stx = kz_ref(stx);
  pc->req = (struct kz_sip_msg *)kz_sip_txn_request(stx);
  if (!pc->req) pc->req = (struct kz_sip_msg *)req;
  pc->src = *src;
  pc->src_transport = transport;
  if (fwd) pc->fwd = *fwd;
  pc->next = p->pctxs;
  if (p->pctxs) p->pctxs->prev = pc;
  p->pctxs = pc;
  kz_sip_txn_set_user(stx, pc);
  enter(pc);
  if (pc->req->method == KZ_SIP_METHOD_INVITE) px_txn_reply(p, stx, 100, "Trying", NULL);

  switch (mode) {
  case PXM_DISPATCH:
    pc->dispatched = true;
    pc->ds_n = px_dispatch_candidates(p, pc->req->call_id, pc->ds_order,
                                      sizeof pc->ds_order / sizeof pc->ds_order[0]);
    if (!start_next_server(p, pc)) local_final(p, pc, 480, "All servers busy");
    break;
  case PXM_LOCATION: {
    size_t started = 0;
    for (struct px_binding *bd = aor ? aor->bindings : NULL; bd; bd = bd->next) {
      struct px_fwd f = pc->fwd;
      snprintf(f.ruri, sizeof f.ruri, "%s", bd->contact);
      f.dest = bd->target;
      f.transport = bd->transport;
      /* RFC 3327 §5.3: a binding registered through edge proxies is
       * reached through them: its Path is the route set, and the first
       * Path hop the next one.  A Path hop that is not an IP literal
       * cannot be resolved here: the binding's received address stays. */
      if (bd->path && bd->path[0]) {
        f.path = bd->path;
        struct kz_addr pa;
        enum kz_sip_transport ptp;
        if (px_path_first_hop(bd->path, &pa, &ptp)) {
          f.dest = pa;
          f.transport = ptp;
        }
      }
      if (start_branch(p, pc, &f, -1) == 0) started++;
    }
    if (!started) local_final(p, pc, 480, "Temporarily Unavailable");
    break;
  }
  default:
    if (start_branch(p, pc, &pc->fwd, -1) != 0) local_final(p, pc, 503, "Service Unavailable");
    break;
  }
  leave(p, pc);
}
