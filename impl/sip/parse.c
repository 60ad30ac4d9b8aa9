/* parse.c — single-pass SIP message parser with datagram framing (RFC 3261 §7, §18.3, §20, §25). */
#include <stddef.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "kz/error.h"
#include "kz/mem.h"
#include "sip_int.h"

/* ---- names ---- */

static const char *const method_names[KZ_SIP_METHOD_COUNT] = {
    [KZ_SIP_METHOD_OTHER] = NULL,         [KZ_SIP_METHOD_INVITE] = "INVITE",
    [KZ_SIP_METHOD_ACK] = "ACK",          [KZ_SIP_METHOD_BYE] = "BYE",
    [KZ_SIP_METHOD_CANCEL] = "CANCEL",    [KZ_SIP_METHOD_REGISTER] = "REGISTER",
    [KZ_SIP_METHOD_OPTIONS] = "OPTIONS",  [KZ_SIP_METHOD_INFO] = "INFO",
    [KZ_SIP_METHOD_PRACK] = "PRACK",      [KZ_SIP_METHOD_UPDATE] = "UPDATE",
    [KZ_SIP_METHOD_SUBSCRIBE] = "SUBSCRIBE", [KZ_SIP_METHOD_NOTIFY] = "NOTIFY",
    [KZ_SIP_METHOD_REFER] = "REFER",      [KZ_SIP_METHOD_MESSAGE] = "MESSAGE",
    [KZ_SIP_METHOD_PUBLISH] = "PUBLISH",
};

const char *kz_sip_method_name(enum kz_sip_method m) {
  return (unsigned)m < KZ_SIP_METHOD_COUNT ? method_names[m] : NULL;
}

enum kz_sip_method kz_sip_method_lookup(struct kz_slice name) {
  if (!name.p || name.len < 3 || name.len > 9) return KZ_SIP_METHOD_OTHER;
  /* Methods are case-sensitive: compare bytes.  strncmp stops at the
   * table name's NUL, so a shorter name never matches a longer one. */
  for (int m = 1; m < KZ_SIP_METHOD_COUNT; m++) {
    const char *n = method_names[m];
    if (n[0] == name.p[0] && !strncmp(n, name.p, name.len) && n[name.len] == 0)
      return (enum kz_sip_method)m;
  }
  return KZ_SIP_METHOD_OTHER;
}

const char *kz_sip_hdr_name(enum kz_sip_hdr_id id) {
  return (unsigned)id < KZ_SIP_HDR_COUNT ? kz_sip_hdr_names[id] : NULL;
}

/* Case-insensitive comparison of n bytes; a (a NUL-terminated name from
 * a table) never matches past its end. */
static inline bool caseeq_n(const char *a, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    /* Names usually arrive in the table's own case: equal bytes need no
     * folding.  A NUL in a means its name ended first: no match. */
    if (a[i] == b[i] && a[i]) continue;
    if (!a[i] || kz_sip_lower(a[i]) != kz_sip_lower(b[i])) return false;
  }
  return true;
}

/* Case-insensitive equality of n bytes of s with lower-cased table bytes
 * t, n >= 4 (t readable for 8 bytes past any offset below n rounded up
 * to 8).  A word at a time: a table byte with bit 0x40 set is a letter,
 * and s's byte matches it when s | 0x20 equals it; any other table byte
 * ('-', digits) must be equal as it is, so its 0x20 bit is not folded
 * (a CR must not pass for '-').  The last word overlaps the one before
 * instead of reading past n. */
static inline bool lower_eq(const char *s, const char *t, size_t n) {
  if (n < 8) {
    uint32_t x, y;
    memcpy(&x, s, 4);
    memcpy(&y, t, 4);
    if ((x | ((y & 0x40404040u) >> 1)) != y) return false;
    memcpy(&x, s + n - 4, 4);
    memcpy(&y, t + n - 4, 4);
    return (x | ((y & 0x40404040u) >> 1)) == y;
  }
  uint64_t x, y;
  for (size_t i = 0; i + 8 < n; i += 8) {
    memcpy(&x, s + i, 8);
    memcpy(&y, t + i, 8);
    if ((x | ((y & 0x4040404040404040ull) >> 1)) != y) return false;
  }
  memcpy(&x, s + n - 8, 8);
  memcpy(&y, t + n - 8, 8);
  return (x | ((y & 0x4040404040404040ull) >> 1)) == y;
}

enum kz_sip_hdr_id kz_sip_hdr_lookup(struct kz_slice name) {
  if (name.len == 0 || !name.p) return KZ_SIP_HDR_OTHER;
  char f = kz_sip_lower(name.p[0]);
  if (name.len == 1) return (f >= 'a' && f <= 'z') ? kz_sip_hdr_compact[f - 'a'] : KZ_SIP_HDR_OTHER;
  if (name.len >= KZ_SIP_HDR_LOWER_LEN) return KZ_SIP_HDR_OTHER; /* longer than any name */
  unsigned h = ((unsigned)name.len * 7u + (unsigned char)f * 3u +
                (unsigned char)kz_sip_lower(name.p[name.len - 1])) & 127u;
  for (int i = 0; i < KZ_SIP_HDR_BUCKET; i++) {
    unsigned id = kz_sip_hdr_hash[h][i];
    if (!id) break;
    if (kz_sip_hdr_name_len[id] != name.len) continue;
    const char *t = kz_sip_hdr_lower[id];
    if (name.len >= 4 ? lower_eq(name.p, t, name.len) : caseeq_n(kz_sip_hdr_names[id], name.p, name.len))
      return (enum kz_sip_hdr_id)id;
  }
  return KZ_SIP_HDR_OTHER;
}

/* The first CR or LF in [p, e), or e.  Sixteen bytes a compare where
 * SSE2 is there (every x86-64): a header line is found with one pass
 * instead of a memchr for its LF and another for a stray CR. */
static inline const char *find_crlf(const char *p, const char *e) {
#if defined(__SSE2__)
  const char *s = p;
  const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n');
  while (e - p >= 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    unsigned mk = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)));
    if (mk) return p + __builtin_ctz(mk);
    p += 16;
  }
  if (p < e && e - s >= 16) {
    /* The last 16 bytes of the range, with those already looked at
     * masked off: no byte-wise tail, no read outside [s, e). */
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(e - 16));
    unsigned mk = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)));
    mk >>= 16 - (unsigned)(e - p);
    return mk ? p + __builtin_ctz(mk) : e;
  }
#endif
  while (p < e && *p != '\r' && *p != '\n') p++;
  return p;
}

/* ---- message storage ---- */

static void msg_dtor(void *obj) {
  struct kz_sip_msg *m = obj;
  if (m->hdrs != m->hdrs_inline_) kz_free(m->hdrs);
  if (m->vias != m->vias_inline_) kz_free(m->vias);
  const struct kz_sip_addr *lo = m->addrs_inline_, *hi = m->addrs_inline_ + KZ_SIP_INLINE_ADDRS;
  if (m->contacts && (m->contacts < lo || m->contacts >= hi)) kz_free(m->contacts);
  if (m->routes && (m->routes < lo || m->routes >= hi)) kz_free(m->routes);
  if (m->rroutes && (m->rroutes < lo || m->rroutes >= hi)) kz_free(m->rroutes);
}

/* Makes room for one more element in an array that starts in inline
 * storage (or in the shared inline address pool) and moves to the heap by
 * doubling.  Returns 0 or KZ_ENOMEM. */
static int grow(void **arr, size_t n, size_t *cap, size_t elsize, bool on_heap) {
  if (n < *cap) return 0;
  size_t ncap = *cap ? *cap * 2 : 4;
  void *na;
  if (on_heap) {
    na = kz_realloc(*arr, ncap * elsize);
    if (!na) return KZ_ENOMEM;
  } else {
    na = kz_malloc(ncap * elsize);
    if (!na) return KZ_ENOMEM;
    if (n) memcpy(na, *arr, n * elsize);
  }
  *arr = na;
  *cap = ncap;
  return 0;
}

/* Parser state for one message. */
struct pctx {
  struct kz_sip_msg *m;
  const char *base;   /* start of the caller's input, for error offsets */
  struct kz_sip_perr *err;
  size_t addr_pool;   /* inline address slots handed out */
  enum kz_sip_hdr_id hid; /* header being parsed, for reasons */
  const char *hname;  /* its display name for reasons */
};

static int fail(struct pctx *x, uint16_t status, const char *at, const char *a, const char *b,
                const char *c) {
  kz_sip_perr_set(x->err, status, false, at ? (size_t)(at - x->base) : 0, a, b, c, NULL);
  return KZ_EPROTO;
}

/* "invalid Via: missing host" */
static int bad_hdr(struct pctx *x, const char *at, const char *why) {
  kz_sip_perr_set(x->err, 400, false, at ? (size_t)(at - x->base) : 0, "invalid ", x->hname,
                  why ? ": " : NULL, why);
  return KZ_EPROTO;
}

static struct kz_sip_addr *addr_slot(struct pctx *x, struct kz_sip_addr **arr, size_t n,
                                     size_t *cap, int *rc) {
  struct kz_sip_msg *m = x->m;
  if (*cap == 0 && x->addr_pool + 2 <= KZ_SIP_INLINE_ADDRS) {
    *arr = m->addrs_inline_ + x->addr_pool;
    x->addr_pool += 2;
    *cap = 2;
  }
  const struct kz_sip_addr *lo = m->addrs_inline_, *hi = m->addrs_inline_ + KZ_SIP_INLINE_ADDRS;
  bool heap = *arr && (*arr < lo || *arr >= hi);
  *rc = grow((void **)arr, n, cap, sizeof **arr, heap);
  if (*rc) return NULL;
  struct kz_sip_addr *a = &(*arr)[n];
  memset(a, 0, sizeof *a);
  a->expires = -1;
  a->q = -1;
  return a;
}

/* ---- Via ---- */

static enum kz_sip_transport transport_lookup(struct kz_slice t) {
  static const char *const names[] = {NULL, "UDP", "TCP", "TLS", "SCTP", "WS", "WSS"};
  for (int i = 1; i < 7; i++)
    if (caseeq_n(names[i], t.p, t.len) && names[i][t.len] == 0) return (enum kz_sip_transport)i;
  return KZ_SIP_TRANSPORT_OTHER;
}

/* n equals the literal s, ignoring case (no strlen at run time). */
#define name_is(n, s) ((n).len == sizeof(s) - 1 && caseeq_n((s), (n).p, (n).len))

/* received accepts an IPv4 address, a bare or bracketed IPv6 address
 * (RFC 5118 §4.5 asks for both) or, liberally, a host name. */
static bool received_valid(struct kz_slice v) {
  const char *p = v.p, *e = v.p + v.len;
  if (v.len >= 2 && p[0] == '[' && e[-1] == ']') return kz_sip_ipv6_valid(p + 1, e - 1);
  if (memchr(p, ':', v.len)) return kz_sip_ipv6_valid(p, e);
  return kz_sip_host_valid(p, e);
}

static const char *via_param(void *obj, struct kz_slice n, struct kz_slice v, bool hv) {
  struct kz_sip_via *via = obj;
  uint64_t num;
  bool over;
  if (name_is(n, "branch")) {
    if (!hv) return "empty branch";
    via->branch = v;
  } else if (name_is(n, "received")) {
    if (!hv || !received_valid(v)) return "bad received parameter";
    via->received = v;
  } else if (name_is(n, "rport")) {
    via->rport_text = v;
    via->rport = 0;
    if (hv) {
      uint16_t port;
      if (!kz_sip_port_parse(v, &port)) return "bad rport parameter";
      via->rport = port;
    }
  } else if (name_is(n, "maddr")) {
    if (!hv) return "bad maddr parameter";
    struct kz_sip_cur c = {v.p, v.p + v.len};
    struct kz_slice h;
    bool v6;
    if (kz_sip_host_scan(&c, &h, &v6) || c.p != c.e) return "bad maddr parameter";
    via->maddr = v;
  } else if (name_is(n, "ttl")) {
    if (!hv || !kz_sip_digits(v, 255, &num, &over) || over) return "bad ttl parameter";
    via->ttl_text = v;
    via->ttl = (int)num;
  }
  return NULL;
}

static int via_one(struct pctx *x, struct kz_sip_cur *c) {
  struct kz_sip_msg *m = x->m;
  int rc = grow((void **)&m->vias, m->nvias, &m->vias_cap_, sizeof *m->vias,
                m->vias != m->vias_inline_);
  if (rc) return rc;
  struct kz_sip_via *v = &m->vias[m->nvias];
  memset(v, 0, sizeof *v);
  v->ttl = -1;
  v->rport = -1;
  const char *start = c->p;
  v->proto_name = kz_sip_span(c, C_TOKEN);
  if (v->proto_name.len == 0) return bad_hdr(x, c->p, "bad sent-protocol");
  kz_sip_skip_lws(c);
  if (c->p >= c->e || *c->p != '/') return bad_hdr(x, c->p, "bad sent-protocol");
  c->p++;
  kz_sip_skip_lws(c);
  v->proto_version = kz_sip_span(c, C_TOKEN);
  kz_sip_skip_lws(c);
  if (v->proto_version.len == 0 || c->p >= c->e || *c->p != '/')
    return bad_hdr(x, c->p, "bad sent-protocol");
  c->p++;
  kz_sip_skip_lws(c);
  v->transport_text = kz_sip_span(c, C_TOKEN);
  if (v->transport_text.len == 0) return bad_hdr(x, c->p, "bad transport");
  v->transport = transport_lookup(v->transport_text);
  if (c->p >= c->e || !kz_sip_is((unsigned char)*c->p, C_WS))
    return bad_hdr(x, c->p, "missing sent-by");
  kz_sip_skip_lws(c);
  const char *why = kz_sip_host_scan(c, &v->host, &v->host_ipv6);
  if (why) return bad_hdr(x, c->p, why);
  struct kz_sip_cur t = *c;
  kz_sip_skip_lws(&t);
  if (t.p < t.e && *t.p == ':') {
    t.p++;
    kz_sip_skip_lws(&t);
    v->port_text = kz_sip_span(&t, C_DIGIT);
    if (!kz_sip_port_parse(v->port_text, &v->port)) return bad_hdr(x, t.p, "invalid port");
    *c = t;
  }
  why = kz_sip_hparams(c, &v->params, via_param, v);
  if (why) return bad_hdr(x, c->p, why);
  v->raw = (struct kz_slice){start, (size_t)(c->p - start)};
  m->nvias++;
  return 0;
}

/* ---- name-addr / addr-spec ---- */

/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), as
 * thousandths. */
static bool qvalue_parse(struct kz_slice v, int *q) {
  if (v.len == 0 || (v.p[0] != '0' && v.p[0] != '1')) return false;
  int val = (v.p[0] - '0') * 1000;
  if (v.len > 1) {
    if (v.p[1] != '.' || v.len > 5) return false;
    int scale = 100;
    for (size_t i = 2; i < v.len; i++, scale /= 10) {
      if (v.p[i] < '0' || v.p[i] > '9') return false;
      val += (v.p[i] - '0') * scale;
    }
  }
  if (val > 1000) return false;
  *q = val;
  return true;
}

static const char *addr_param(void *obj, struct kz_slice n, struct kz_slice v, bool hv) {
  struct kz_sip_addr *a = obj;
  if (name_is(n, "tag")) {
    if (!hv) return "empty tag";
    a->tag = v;
  } else if (name_is(n, "expires")) {
    uint64_t num;
    bool over;
    if (!hv || !kz_sip_digits(v, UINT32_MAX, &num, &over)) return "bad expires parameter";
    a->expires_text = v;
    a->expires = (int64_t)num;
  } else if (name_is(n, "q")) {
    if (!hv || !qvalue_parse(v, &a->q)) return "bad q parameter";
    a->q_text = v;
  }
  return NULL;
}

static int addr_one(struct pctx *x, struct kz_sip_cur *c, struct kz_sip_addr *a) {
  const char *start = c->p;
  const char *why;
  if (c->p >= c->e) return bad_hdr(x, c->p, "empty value");
  if (*c->p == '"') {
    if (!kz_sip_quoted_scan(c)) return bad_hdr(x, start, "unterminated quoted string");
    a->display = (struct kz_slice){start, (size_t)(c->p - start)};
    kz_sip_skip_lws(c);
    if (c->p >= c->e || *c->p != '<') return bad_hdr(x, c->p, "missing <URI> after display name");
  } else if (*c->p != '<') {
    /* Tokens then '<' is a display name (with or without LWS before the
     * '<', RFC 4475 §3.1.1.6); otherwise it is an addr-spec. */
    struct kz_sip_cur t = *c;
    while (t.p < t.e && kz_sip_is((unsigned char)*t.p, C_TOKEN | C_WS)) t.p++;
    if (t.p < t.e && *t.p == '<') {
      const char *de = t.p;
      while (de > start && kz_sip_is((unsigned char)de[-1], C_WS)) de--;
      a->display = (struct kz_slice){start, (size_t)(de - start)};
      c->p = t.p;
    } else {
      /* A URI holding ',', '?' or ';' must be in <> (§20.10), so those
       * end an addr-spec. */
      const char *ue = c->p;
      while (ue < c->e && !kz_sip_is((unsigned char)*ue, C_WS) && *ue != ';' && *ue != ',' &&
             *ue != '?')
        ue++;
      /* "sip:a@b <sip:c>" is a bad display name, but a '<' after this
       * element's first ';' or ',' (outside quotes) belongs to a parameter
       * (RFC 5626 +sip.instance="<urn:...>") or to the next element. */
      bool inq = false;
      for (const char *d = ue; d < c->e && (inq || (*d != ';' && *d != ',')); d++) {
        if (inq && *d == '\\' && d + 1 < c->e) d++;
        else if (*d == '"') inq = !inq;
        else if (!inq && *d == '<') return bad_hdr(x, start, "invalid display name");
      }
      why = kz_sip_uri_parse_(start, ue, &a->uri);
      /* Not a URI but a '<' follows: an unquoted display name with
       * non-token characters ("Bell, Alexander <sip:...>", RFC 4475
       * §3.1.2.15). */
      if (why && memchr(ue, '<', (size_t)(c->e - ue))) why = "invalid display name";
      if (why) return bad_hdr(x, start, why);
      c->p = ue;
      goto params;
    }
  }
  /* c->p at '<' */
  {
    const char *us = c->p + 1;
    const char *gt = memchr(us, '>', (size_t)(c->e - us));
    if (!gt) return bad_hdr(x, c->p, "missing '>'");
    why = kz_sip_uri_parse_(us, gt, &a->uri);
    if (why) return bad_hdr(x, us, why);
    a->angle = true;
    c->p = gt + 1;
  }
params:
  why = kz_sip_hparams(c, &a->params, addr_param, a);
  if (why) return bad_hdr(x, c->p, why);
  a->raw = (struct kz_slice){start, (size_t)(c->p - start)};
  return 0;
}

enum list_kind { LIST_CONTACT, LIST_ROUTE, LIST_RROUTE, LIST_CHECK };

/* A comma-separated list of addresses (or Via values when via is true).
 * Empty elements are errors (RFC 4475 §3.1.2.1). */
static int value_list(struct pctx *x, struct kz_slice val, bool via, enum list_kind kind) {
  struct kz_sip_msg *m = x->m;
  struct kz_sip_cur c = {val.p, val.p + val.len};
  int rc;
  for (;;) {
    kz_sip_skip_lws(&c);
    if (c.p >= c.e || *c.p == ',') return bad_hdr(x, c.p, "empty value");
    if (via) {
      rc = via_one(x, &c);
    } else {
      struct kz_sip_addr tmp, *a = &tmp;
      rc = 0;
      switch (kind) {
      case LIST_CONTACT:
        a = addr_slot(x, &m->contacts, m->ncontacts, &m->contacts_cap_, &rc);
        break;
      case LIST_ROUTE:
        a = addr_slot(x, &m->routes, m->nroutes, &m->routes_cap_, &rc);
        break;
      case LIST_RROUTE:
        a = addr_slot(x, &m->rroutes, m->nrroutes, &m->rroutes_cap_, &rc);
        break;
      case LIST_CHECK:
        memset(a, 0, sizeof *a);
        break;
      }
      if (rc) return rc;
      rc = addr_one(x, &c, a);
      if (!rc) {
        if (kind == LIST_CONTACT) m->ncontacts++;
        if (kind == LIST_ROUTE) m->nroutes++;
        if (kind == LIST_RROUTE) m->nrroutes++;
      }
    }
    if (rc) return rc;
    kz_sip_skip_lws(&c);
    if (c.p >= c.e) return 0;
    if (*c.p != ',') return bad_hdr(x, c.p, "unexpected character after value");
    c.p++;
  }
}

static int single_addr(struct pctx *x, struct kz_slice val, struct kz_sip_addr *a) {
  struct kz_sip_cur c = {val.p, val.p + val.len};
  memset(a, 0, sizeof *a);
  a->expires = -1;
  a->q = -1;
  int rc = addr_one(x, &c, a);
  if (rc) return rc;
  kz_sip_skip_lws(&c);
  if (c.p < c.e) return bad_hdr(x, c.p, "unexpected text after value");
  return 0;
}

/* ---- other structured headers ---- */

static int parse_cseq(struct pctx *x, struct kz_slice val) {
  struct kz_sip_cur c = {val.p, val.p + val.len};
  struct kz_slice num = kz_sip_span(&c, C_DIGIT);
  uint64_t n;
  bool over;
  if (!kz_sip_digits(num, 0x7fffffffu, &n, &over)) return bad_hdr(x, c.p, "bad sequence number");
  if (over) return bad_hdr(x, num.p, "sequence number too large");
  if (c.p >= c.e || !kz_sip_is((unsigned char)*c.p, C_WS)) return bad_hdr(x, c.p, "missing method");
  kz_sip_skip_lws(&c);
  struct kz_slice meth = kz_sip_span(&c, C_TOKEN);
  if (meth.len == 0 || c.p != c.e) return bad_hdr(x, c.p, "bad method");
  x->m->cseq.num = (uint32_t)n;
  x->m->cseq.method_text = meth;
  x->m->cseq.method = kz_sip_method_lookup(meth);
  return 0;
}

static int parse_number(struct pctx *x, struct kz_slice val, uint64_t max, uint64_t *out,
                        bool *over) {
  if (!kz_sip_digits(val, max, out, over)) return bad_hdr(x, val.p, "not a number");
  return 0;
}

static int parse_content_type(struct pctx *x, struct kz_slice val) {
  struct kz_sip_cur c = {val.p, val.p + val.len};
  struct kz_slice type = kz_sip_span(&c, C_TOKEN);
  kz_sip_skip_lws(&c);
  if (type.len == 0 || c.p >= c.e || *c.p != '/') return bad_hdr(x, c.p, "bad media type");
  c.p++;
  kz_sip_skip_lws(&c);
  struct kz_slice sub = kz_sip_span(&c, C_TOKEN);
  if (sub.len == 0) return bad_hdr(x, c.p, "bad media type");
  struct kz_slice params;
  const char *why = kz_sip_hparams(&c, &params, NULL, NULL);
  if (why) return bad_hdr(x, c.p, why);
  kz_sip_skip_lws(&c);
  if (c.p != c.e) return bad_hdr(x, c.p, "bad media type");
  x->m->content_type = (struct kz_slice){type.p, (size_t)(sub.p + sub.len - type.p)};
  return 0;
}

/* Parses the value of a known header into the message's fields. */
static int header_value(struct pctx *x, enum kz_sip_hdr_id id, struct kz_slice val) {
  struct kz_sip_msg *m = x->m;
  uint64_t n;
  bool over;
  int rc;
  switch (id) {
  case KZ_SIP_HDR_VIA:
    return value_list(x, val, true, LIST_CHECK);
  case KZ_SIP_HDR_FROM:
    return single_addr(x, val, &m->from);
  case KZ_SIP_HDR_TO:
    return single_addr(x, val, &m->to);
  case KZ_SIP_HDR_CONTACT:
    if (val.len == 1 && val.p[0] == '*') {
      if (m->ncontacts) return bad_hdr(x, val.p, "'*' mixed with addresses");
      m->contact_star = true;
      return 0;
    }
    if (m->contact_star) return bad_hdr(x, val.p, "'*' mixed with addresses");
    return value_list(x, val, false, LIST_CONTACT);
  case KZ_SIP_HDR_ROUTE:
    return value_list(x, val, false, LIST_ROUTE);
  case KZ_SIP_HDR_RECORD_ROUTE:
    return value_list(x, val, false, LIST_RROUTE);
  case KZ_SIP_HDR_PATH:
    return value_list(x, val, false, LIST_CHECK);
  case KZ_SIP_HDR_CALL_ID: {
    /* callid = word [ "@" word ]; liberal about where '@' goes. */
    struct kz_sip_cur w = {val.p, val.p + val.len};
    for (;;) {
      kz_sip_span(&w, C_WORD); /* runs of word chars, four a step */
      if (w.p < w.e && *w.p == '@') {
        w.p++;
        continue;
      }
      break;
    }
    const char *q = w.p, *e = w.e;
    if (val.len == 0 || q != e) return bad_hdr(x, q, "bad word");
    m->call_id = val;
    return 0;
  }
  case KZ_SIP_HDR_CSEQ:
    return parse_cseq(x, val);
  case KZ_SIP_HDR_MAX_FORWARDS:
    if ((rc = parse_number(x, val, 256, &n, &over))) return rc;
    if (n > 255) return bad_hdr(x, val.p, "value over 255");
    m->max_forwards = (int)n;
    return 0;
  case KZ_SIP_HDR_CONTENT_LENGTH:
    if ((rc = parse_number(x, val, (uint64_t)1 << 40, &n, &over))) return rc;
    m->content_length = (int64_t)n;
    return 0;
  case KZ_SIP_HDR_CONTENT_TYPE:
    return parse_content_type(x, val);
  case KZ_SIP_HDR_EXPIRES:
    /* An RFC 2543 date or garbage means "no usable expiry" rather than a
     * broken message (RFC 3261 §10.2.1.1 falls back to a default). */
    if (kz_sip_digits(val, UINT32_MAX, &n, &over)) m->expires = (int64_t)n;
    return 0;
  default:
    return 0;
  }
}

static bool single_valued(enum kz_sip_hdr_id id) {
  switch (id) {
  case KZ_SIP_HDR_CALL_ID:
  case KZ_SIP_HDR_FROM:
  case KZ_SIP_HDR_TO:
  case KZ_SIP_HDR_CSEQ:
  case KZ_SIP_HDR_MAX_FORWARDS:
  case KZ_SIP_HDR_CONTENT_LENGTH:
  case KZ_SIP_HDR_CONTENT_TYPE:
    return true;
  default:
    return false;
  }
}

/* ---- start line ---- */

static bool version_ok(struct kz_slice v) { return name_is(v, "SIP/2.0"); }

/* "SIP/" 1*DIGIT "." 1*DIGIT */
static bool version_like(struct kz_slice v) {
  if (v.len < 7 || !caseeq_n(v.p, "SIP/", 4)) return false;
  size_t i = 4, d1 = 0, d2 = 0;
  while (i < v.len && v.p[i] >= '0' && v.p[i] <= '9') i++, d1++;
  if (i >= v.len || v.p[i] != '.') return false;
  i++;
  while (i < v.len && v.p[i] >= '0' && v.p[i] <= '9') i++, d2++;
  return d1 && d2 && i == v.len;
}

static int start_line(struct pctx *x, const char *p, const char *e) {
  struct kz_sip_msg *m = x->m;
  const char *sp = memchr(p, ' ', (size_t)(e - p));
  struct kz_slice first = {p, (size_t)((sp ? sp : e) - p)};
  if (first.len >= 4 && caseeq_n(p, "SIP/", 4)) {
    /* Status-Line = SIP-Version SP Status-Code SP Reason-Phrase */
    m->is_request = false;
    if (!version_ok(first)) {
      if (version_like(first)) return fail(x, 505, p, "unsupported SIP version", NULL, NULL);
      return fail(x, 400, p, "invalid status line: bad SIP version", NULL, NULL);
    }
    if (!sp) return fail(x, 400, e, "invalid status line: missing status code", NULL, NULL);
    const char *c = sp + 1;
    const char *ce = c;
    while (ce < e && *ce >= '0' && *ce <= '9') ce++;
    if (ce - c != 3 || (ce < e && *ce != ' '))
      return fail(x, 400, c, "invalid status line: bad status code", NULL, NULL);
    unsigned code = (unsigned)((c[0] - '0') * 100 + (c[1] - '0') * 10 + (c[2] - '0'));
    if (code < 100 || code > 699)
      return fail(x, 400, c, "invalid status line: status code out of range", NULL, NULL);
    m->status = (uint16_t)code;
    /* An empty reason phrase is legal (RFC 4475 §3.1.1.13); tolerate a
     * missing SP after the code too. */
    m->reason = ce < e ? (struct kz_slice){ce + 1, (size_t)(e - ce - 1)} : (struct kz_slice){e, 0};
    return 0;
  }
  /* Request-Line = Method SP Request-URI SP SIP-Version */
  m->is_request = true;
  if (!sp || first.len == 0) return fail(x, 400, p, "invalid request line", NULL, NULL);
  for (size_t i = 0; i < first.len; i++)
    if (!kz_sip_is((unsigned char)p[i], C_TOKEN))
      return fail(x, 400, p + i, "invalid request line: bad method", NULL, NULL);
  m->method_text = first;
  m->method = kz_sip_method_lookup(first);
  const char *u = sp + 1;
  if (u < e && (*u == ' ' || *u == '\t'))
    return fail(x, 400, u, "invalid request line: extra whitespace", NULL, NULL);
  const char *ue = memchr(u, ' ', (size_t)(e - u));
  if (!ue) return fail(x, 400, e, "invalid request line: missing SIP version", NULL, NULL);
  if (u < ue && *u == '<') return fail(x, 400, u, "invalid Request-URI: enclosed in <>", NULL, NULL);
  const char *why = kz_sip_uri_parse_(u, ue, &m->ruri);
  if (why) return fail(x, 400, u, "invalid Request-URI: ", why, NULL);
  if (m->ruri.headers.p)
    return fail(x, 400, m->ruri.headers.p, "invalid Request-URI: headers not allowed", NULL, NULL);
  struct kz_slice ver = {ue + 1, (size_t)(e - ue - 1)};
  if (ver.len && (ver.p[ver.len - 1] == ' ' || ver.p[ver.len - 1] == '\t'))
    return fail(x, 400, e, "invalid request line: trailing whitespace", NULL, NULL);
  if (ver.len && (ver.p[0] == ' ' || memchr(ver.p, ' ', ver.len)))
    return fail(x, 400, ver.p, "invalid request line: extra whitespace", NULL, NULL);
  if (!version_ok(ver)) {
    if (version_like(ver)) return fail(x, 505, ver.p, "unsupported SIP version", NULL, NULL);
    return fail(x, 400, ver.p, "invalid request line: bad SIP version", NULL, NULL);
  }
  return 0;
}

/* ---- header section and body ---- */

static int add_header(struct pctx *x, enum kz_sip_hdr_id id, struct kz_slice name,
                      struct kz_slice value, uint32_t *last) {
  struct kz_sip_msg *m = x->m;
  int rc = grow((void **)&m->hdrs, m->nhdrs, &m->hdrs_cap_, sizeof *m->hdrs,
                m->hdrs != m->hdrs_inline_);
  if (rc) return rc;
  struct kz_sip_hdr *h = &m->hdrs[m->nhdrs++];
  h->id = id;
  h->name = name;
  h->value = value;
  h->next_same = 0;
  if (id != KZ_SIP_HDR_OTHER) {
    uint32_t idx = (uint32_t)m->nhdrs; /* index + 1 */
    if (last[id])
      m->hdrs[last[id] - 1].next_same = idx;
    else
      m->first_[id] = idx;
    last[id] = idx;
  }
  return 0;
}

static int parse_message(struct pctx *x, const char *p, const char *end) {
  struct kz_sip_msg *m = x->m;
  uint32_t last[KZ_SIP_HDR_COUNT] = {0};
  int rc;

  const char *lf = memchr(p, '\n', (size_t)(end - p));
  const char *le = lf ? lf : end;
  if (le > p && le[-1] == '\r') le--;
  if (memchr(p, '\r', (size_t)(le - p))) return fail(x, 400, p, "bare CR in start line", NULL, NULL);
  if ((rc = start_line(x, p, le))) return rc;
  p = lf ? lf + 1 : end;

  bool blank = false;
  while (p < end) {
    if (*p == '\n') {
      p++;
      blank = true;
      break;
    }
    if (*p == '\r' && p + 1 < end && p[1] == '\n') {
      p += 2;
      blank = true;
      break;
    }
    if (*p == ' ' || *p == '\t')
      return fail(x, 400, p, "unexpected continuation line", NULL, NULL);
    const char *ns = p;
    struct kz_sip_cur nc = {p, end};
    struct kz_slice name = kz_sip_span(&nc, C_TOKEN);
    p = nc.p;
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    if (name.len == 0 || p >= end || *p != ':') {
      if (name.len && (p >= end || *p == '\r' || *p == '\n'))
        return fail(x, 400, ns, "malformed header line: missing ':'", NULL, NULL);
      return fail(x, 400, ns, "invalid header name", NULL, NULL);
    }
    p++;
    /* The value runs to the end of the line plus every continuation line
     * (one starting with SP or HTAB). */
    const char *vs = p, *ve;
    /* Usual case first, in one scan: the first CR or LF ends the line
     * with CRLF or a bare LF and no fold follows.  Then the value holds
     * no CR at all, so the bare-CR check below has nothing to find, and
     * the value and the next line are exactly what the general path
     * would find. */
    const char *q = find_crlf(p, end);
    size_t eol = 0;
    if (q < end) {
      if (*q == '\n') eol = 1;
      else if (q + 1 < end && q[1] == '\n') eol = 2;
    }
    if (eol && !(q + eol < end && (q[eol] == ' ' || q[eol] == '\t'))) {
      ve = q;
      p = q + eol;
      while (vs < ve && kz_sip_is((unsigned char)*vs, C_WS)) vs++;
      while (ve > vs && kz_sip_is((unsigned char)ve[-1], C_WS)) ve--;
      goto have_value;
    }
    for (;;) {
      const char *nl = memchr(p, '\n', (size_t)(end - p));
      if (!nl) {
        ve = end;
        p = end;
        break;
      }
      p = nl + 1;
      if (p < end && (*p == ' ' || *p == '\t')) continue;
      ve = nl;
      break;
    }
    while (vs < ve && kz_sip_is((unsigned char)*vs, C_WS)) vs++;
    while (ve > vs && kz_sip_is((unsigned char)ve[-1], C_WS)) ve--;
    /* A CR may only start a line end or a fold. */
    for (const char *cr = vs; (cr = memchr(cr, '\r', (size_t)(ve - cr))) != NULL; cr++)
      if (cr + 1 >= ve || cr[1] != '\n') return fail(x, 400, cr, "bare CR in header", NULL, NULL);
  have_value:;
    struct kz_slice value = {vs, (size_t)(ve - vs)};
    enum kz_sip_hdr_id id = kz_sip_hdr_lookup(name);
    if (id != KZ_SIP_HDR_OTHER) {
      x->hname = kz_sip_hdr_names[id];
      if (single_valued(id) && m->first_[id])
        return fail(x, 400, ns, "multiple ", x->hname, " headers");
      if ((rc = header_value(x, id, value))) return rc;
    }
    if ((rc = add_header(x, id, name, value, last))) return rc;
  }
  (void)blank; /* datagram: the end of the datagram also ends the headers */

  size_t rest = (size_t)(end - p);
  if (m->content_length >= 0) {
    if ((uint64_t)m->content_length > rest)
      return fail(x, 400, p, "Content-Length larger than body", NULL, NULL);
    m->body = (struct kz_slice){p, (size_t)m->content_length};
  } else {
    m->body = (struct kz_slice){p, rest};
  }
  m->raw.len = (size_t)(m->body.p + m->body.len - m->raw.p);

  static const enum kz_sip_hdr_id required[] = {KZ_SIP_HDR_CALL_ID, KZ_SIP_HDR_FROM,
                                                KZ_SIP_HDR_TO, KZ_SIP_HDR_CSEQ, KZ_SIP_HDR_VIA};
  for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
    if (!m->first_[required[i]])
      return fail(x, 400, end, "missing ", kz_sip_hdr_names[required[i]], NULL);
  if (m->is_request && !kz_slice_eq(m->cseq.method_text, m->method_text))
    return fail(x, 400, m->cseq.method_text.p,
                "invalid CSeq method: does not match request method", NULL, NULL);
  return 0;
}

/* Drops the heap arrays of a message about to be parsed again (what
 * msg_dtor frees), so every array starts inline as in a new message. */
static void msg_release_arrays(struct kz_sip_msg *m) { msg_dtor(m); }

/* kz_sip_msg_parse and kz_sip_msg_parse_reuse: reuse (may be NULL) is
 * parsed into when it has room; the caller checked its reference count. */
static int parse_impl(struct kz_sip_msg **out, struct kz_sip_msg *reuse, const void *data, size_t len,
                      unsigned flags, struct kz_sip_perr *err) {
  if (err) {
    /* What kz_sip_perr_set(err, 0, false, 0, NULL...) writes, without
     * its loop over the four parts: this runs for every message. */
    err->status = 0;
    err->fatal = false;
    err->offset = 0;
    err->reason[0] = 0;
  }
  if (!out || (!data && len)) return KZ_EINVAL;
  const char *base = data;
  size_t skip = 0;
  while (skip < len && (base[skip] == '\r' || base[skip] == '\n')) skip++;
  if (skip == len) {
    kz_sip_perr_set(err, 400, false, len, "empty message", NULL, NULL, NULL);
    return KZ_ENOENT;
  }
  size_t n = len - skip;
  bool copy = (flags & KZ_SIP_PARSE_COPY) != 0;
  size_t need = copy ? n : 0;
  /* The message is ~4 KB, mostly inline arrays; zeroing all of it for
   * every message was a fifth of the simulator's time.  So only the part
   * before the inline arrays (every scalar, slice, pointer, count and the
   * first_ index) is zeroed here, and the inline elements are written
   * whole when they are handed out (add_header sets every field of a
   * kz_sip_hdr, via_one and addr_slot memset theirs, grow copies only the
   * n elements in use).  Nothing reads an inline element at an index >=
   * its count, so no byte is read before it is written.  A reused
   * message is reset the same way once its heap arrays are gone. */
  struct kz_sip_msg *m;
  size_t cap;
  if (reuse && reuse->copy_cap_ >= need) {
    m = reuse;
    cap = reuse->copy_cap_;
    msg_release_arrays(m);
  } else {
    m = kz_obj_alloc_uninit(sizeof *m + need, msg_dtor);
    if (!m) return KZ_ENOMEM;
    cap = need;
  }
  memset(m, 0, offsetof(struct kz_sip_msg, hdrs_inline_));
  m->copy_cap_ = cap;
  const char *p = base + skip;
  if (copy) {
    char *dst = (char *)(m + 1);
    memcpy(dst, p, n);
    p = dst;
  }
  m->hdrs = m->hdrs_inline_;
  m->hdrs_cap_ = KZ_SIP_INLINE_HDRS;
  m->vias = m->vias_inline_;
  m->vias_cap_ = KZ_SIP_INLINE_VIAS;
  m->max_forwards = -1;
  m->content_length = -1;
  m->expires = -1;
  m->raw = (struct kz_slice){p, n};
  struct pctx x = {.m = m, .base = p - skip, .err = err};
  int rc = parse_message(&x, p, p + n);
  if (rc) {
    if (m != reuse) kz_deref(m);
    return rc;
  }
  if (reuse && m != reuse) kz_deref(reuse);
  *out = m;
  return 0;
}

int kz_sip_msg_parse(struct kz_sip_msg **out, const void *data, size_t len, unsigned flags,
                     struct kz_sip_perr *err) {
  return parse_impl(out, NULL, data, len, flags, err);
}

int kz_sip_msg_parse_reuse(struct kz_sip_msg **out, struct kz_sip_msg *reuse, const void *data,
                           size_t len, unsigned flags, struct kz_sip_perr *err) {
  if (reuse && kz_refcount(reuse) != 1) {
    /* Someone else holds it too: parse into a fresh message, and spend
     * the caller's reference only when that worked (as documented). */
    int rc = parse_impl(out, NULL, data, len, flags, err);
    if (rc == 0) kz_deref(reuse);
    return rc;
  }
  return parse_impl(out, reuse, data, len, flags, err);
}

const struct kz_sip_hdr *kz_sip_msg_hdr(const struct kz_sip_msg *m, enum kz_sip_hdr_id id) {
  if (!m || id <= KZ_SIP_HDR_OTHER || id >= KZ_SIP_HDR_COUNT || !m->first_[id]) return NULL;
  return &m->hdrs[m->first_[id] - 1];
}

const struct kz_sip_hdr *kz_sip_msg_hdr_next(const struct kz_sip_msg *m,
                                             const struct kz_sip_hdr *h) {
  if (!m || !h || !h->next_same) return NULL;
  return &m->hdrs[h->next_same - 1];
}

const struct kz_sip_hdr *kz_sip_msg_hdr_by_name(const struct kz_sip_msg *m, struct kz_slice name) {
  if (!m) return NULL;
  enum kz_sip_hdr_id id = kz_sip_hdr_lookup(name);
  if (id != KZ_SIP_HDR_OTHER) return kz_sip_msg_hdr(m, id);
  for (size_t i = 0; i < m->nhdrs; i++)
    if (m->hdrs[i].id == KZ_SIP_HDR_OTHER && kz_slice_caseeq(m->hdrs[i].name, name))
      return &m->hdrs[i];
  return NULL;
}
