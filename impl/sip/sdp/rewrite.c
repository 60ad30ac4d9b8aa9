/* rewrite.c — byte-preserving SDP edits: relay/NAT address and port rewriting, o= version bump. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sdp.h"
#include "sdp_int.h"

/* One replacement of text[off, off+len).  Either `repl` or, when nlen is
 * set, the digits in num (kept inline so the edit array owns them). */
struct edit {
  size_t off, len;
  struct kz_slice repl;
  char num[24];
  size_t nlen;
};

struct edits {
  const char *text;
  struct edit *e;
  size_t n, cap;
};

static void add(struct edits *ed, struct kz_slice where, struct kz_slice repl) {
  assert(ed->n < ed->cap);
  struct edit *e = &ed->e[ed->n++];
  e->off = (size_t)(where.p - ed->text);
  e->len = where.len;
  e->repl = repl;
  e->nlen = 0;
}

static void add_num(struct edits *ed, struct kz_slice where, uint64_t v) {
  add(ed, where, KZ_SLICE_NULL);
  struct edit *e = &ed->e[ed->n - 1];
  int k = snprintf(e->num, sizeof(e->num), "%" PRIu64, v);
  e->nlen = k > 0 ? (size_t)k : 0;
}

/* Splices the edits (collected in text order, as the parser enforces
 * line order and fields come left to right) into out. */
static int apply(const struct edits *ed, size_t len, struct kz_buf *out) {
  size_t pos = 0, len0 = out->len;
  int rc = 0;
  for (size_t i = 0; !rc && i < ed->n; i++) {
    const struct edit *e = &ed->e[i];
    assert(e->off >= pos);
    rc = kz_buf_append(out, ed->text + pos, e->off - pos);
    if (!rc) rc = e->nlen ? kz_buf_append(out, e->num, e->nlen) : kz_buf_append_slice(out, e->repl);
    pos = e->off + e->len;
  }
  if (!rc) rc = kz_buf_append(out, ed->text + pos, len - pos);
  if (rc) {
    /* No half-rewritten description is left behind. */
    kz_buf_truncate(out, len0);
  }
  return rc;
}

/* The port digits of an m= line: the token after the media type, up to '/'. */
static struct kz_slice media_port_slice(const struct kz_sdp_media *m) {
  struct kz_slice cur = {m->type.p + m->type.len, (size_t)(m->proto.p - (m->type.p + m->type.len))};
  struct kz_slice tok = KZ_SLICE_NULL;
  kz_sdp_next_token(&cur, &tok);
  long slash = kz_slice_find_char(tok, '/');
  return slash < 0 ? tok : kz_slice_sub(tok, 0, (size_t)slash);
}

static void conn_edit(struct edits *ed, const struct kz_sdp_conn *c, struct kz_slice addr,
                      struct kz_slice at) {
  if (!kz_slice_caseeq_cstr(c->nettype, "IN")) return;
  add(ed, c->addrtype, at);
  add(ed, c->addr, addr);
}

int kz_sdp_rewrite(const void *text, size_t len, const struct kz_sdp_relay *relay,
                   struct kz_buf *out, struct kz_sdp_error *err) {
  if (!text || !relay || !out || (relay->nports && !relay->ports)) return KZ_EINVAL;
  uint8_t ip[16];
  bool v4 = kz_sdp_parse_ip4(relay->addr, ip);
  if (!v4 && !kz_sdp_parse_ip6(relay->addr, ip)) return KZ_EINVAL;
  struct kz_slice at = v4 ? KZ_SLICE_LIT("IP4") : KZ_SLICE_LIT("IP6");

  struct kz_sdp *sdp = NULL;
  int rc = kz_sdp_parse(&sdp, text, len, NULL, err);
  if (rc) return rc;
  size_t cap = 4;
  for (size_t i = 0; i < sdp->nmedia; i++) cap += 4 + 2 * sdp->media[i].nconns;
  struct edits ed = {.text = text, .cap = cap};
  ed.e = kz_calloc(cap, sizeof(*ed.e));
  if (!ed.e) {
    kz_deref(sdp);
    return KZ_ENOMEM;
  }
  if (relay->origin) conn_edit(&ed, &sdp->origin.addr, relay->addr, at);
  if (sdp->has_conn) conn_edit(&ed, &sdp->conn, relay->addr, at);
  for (size_t i = 0; i < sdp->nmedia; i++) {
    const struct kz_sdp_media *m = &sdp->media[i];
    if (m->port == 0) continue; /* rejected: leave it as it is */
    uint16_t port = i < relay->nports ? relay->ports[i] : 0;
    if (port) add_num(&ed, media_port_slice(m), port);
    for (size_t k = 0; k < m->nconns; k++) conn_edit(&ed, &m->conns[k], relay->addr, at);
    if (!m->has_rtcp) continue;
    uint16_t rport = relay->rtcp_ports && i < relay->nports ? relay->rtcp_ports[i] : 0;
    if (!rport && !relay->rtcp_ports && port) rport = (uint16_t)(port + 1);
    for (size_t k = 0; k < m->nattrs; k++) {
      if (!kz_slice_caseeq_cstr(m->attrs[k].name, "rtcp")) continue;
      struct kz_slice cur = m->attrs[k].value, tok;
      if (rport && kz_sdp_next_token(&cur, &tok)) add_num(&ed, tok, rport);
      break;
    }
    if (m->rtcp.has_addr) conn_edit(&ed, &m->rtcp.addr, relay->addr, at);
  }
  rc = apply(&ed, len, out);
  kz_free(ed.e);
  kz_deref(sdp);
  return rc;
}

int kz_sdp_bump_version(const void *text, size_t len, struct kz_buf *out, struct kz_sdp_error *err) {
  if (!text || !out) return KZ_EINVAL;
  struct kz_sdp *sdp = NULL;
  int rc = kz_sdp_parse(&sdp, text, len, NULL, err);
  if (rc) return rc;
  if (sdp->origin.sess_version == UINT64_MAX) {
    kz_deref(sdp);
    return KZ_ERANGE;
  }
  /* The version is the token after the session id. */
  const struct kz_slice id = sdp->origin.sess_id;
  struct kz_slice cur = {id.p + id.len, (size_t)(sdp->origin.addr.nettype.p - (id.p + id.len))};
  struct kz_slice tok = KZ_SLICE_NULL;
  kz_sdp_next_token(&cur, &tok);
  struct edit e;
  memset(&e, 0, sizeof(e));
  struct edits ed = {.text = text, .e = &e, .cap = 1};
  add_num(&ed, tok, sdp->origin.sess_version + 1);
  rc = apply(&ed, len, out);
  kz_deref(sdp);
  return rc;
}
