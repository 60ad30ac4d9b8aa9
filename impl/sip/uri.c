/* uri.c — SIP/SIPS/tel/absolute URI parsing, hosts and IPv6 references, parameter lists (RFC 3261 §19.1, §25; RFC 5954). */
#include <string.h>

#include "kz/env.h"
#include "kz/error.h"
#include "sip_int.h"

void kz_sip_perr_set(struct kz_sip_perr *err, uint16_t status, bool fatal, size_t offset,
                     const char *a, const char *b, const char *c, const char *d) {
  if (!err) return;
  err->status = status;
  err->fatal = fatal;
  err->offset = offset;
  size_t n = 0, cap = sizeof err->reason - 1;
  const char *parts[4] = {a, b, c, d};
  for (int i = 0; i < 4; i++) {
    if (!parts[i]) continue;
    size_t l = strlen(parts[i]);
    if (l > cap - n) l = cap - n;
    memcpy(err->reason + n, parts[i], l);
    n += l;
  }
  err->reason[n] = 0;
}

bool kz_sip_digits(struct kz_slice s, uint64_t max, uint64_t *out, bool *over) {
  if (s.len == 0) return false;
  uint64_t v = 0;
  bool sat = false;
  for (size_t i = 0; i < s.len; i++) {
    unsigned char ch = (unsigned char)s.p[i];
    if (ch < '0' || ch > '9') return false;
    if (!sat) {
      v = v * 10 + (uint64_t)(ch - '0');
      if (v > max) {
        v = max;
        sat = true;
      }
    }
  }
  *out = v;
  if (over) *over = sat;
  return true;
}

bool kz_sip_port_parse(struct kz_slice s, uint16_t *port) {
  /* 1 to 5 digits, at most 65535; inline rather than kz_sip_digits as
   * every Via, URI and rport with a port comes through here. */
  if (s.len == 0 || s.len > 5) return false;
  uint32_t v = 0;
  for (size_t i = 0; i < s.len; i++) {
    uint32_t d = (uint32_t)((unsigned char)s.p[i]) - '0';
    if (d > 9) return false;
    v = v * 10 + d;
  }
  if (v > 65535) return false;
  *port = (uint16_t)v;
  return true;
}

/* RFC 3261's IPv4address: a dotted quad of 1-3 digit parts <= 255
 * (leading zeros allowed by the grammar). */
static bool ipv4_valid(const char *p, const char *e) {
  return kz_ip4_parse(p, (size_t)(e - p), KZ_IP4_LEADING_ZEROS, NULL);
}

/* RFC 4291 §2.2 text forms (the RFC 5954 correction of RFC 3261's
 * IPv6reference): 8 groups, or fewer with exactly one "::", optionally
 * ending in a dotted quad worth two groups. */
bool kz_sip_ipv6_valid(const char *p, const char *e) {
  int groups = 0;
  bool dbl = false;
  if (e - p >= 2 && p[0] == ':' && p[1] == ':') {
    dbl = true;
    p += 2;
    if (p == e) return true;
  } else if (p < e && *p == ':') {
    return false;
  }
  while (p < e) {
    const char *s = p;
    while (p < e && kz_sip_is((unsigned char)*p, C_HEX) && p - s < 5) p++;
    if (p < e && *p == '.') {
      if (!ipv4_valid(s, e)) return false;
      groups += 2;
      p = e;
      break;
    }
    if (p == s || p - s > 4) return false;
    groups++;
    if (p == e) break;
    if (*p != ':') return false;
    p++;
    if (p < e && *p == ':') {
      if (dbl) return false;
      dbl = true;
      p++;
      if (p == e) break;
    } else if (p == e) {
      return false;
    }
  }
  return dbl ? groups <= 7 : groups == 8;
}

/* hostname (liberal: '_' allowed) or IPv4address.  A top label starting
 * with a digit only fits an IPv4 address. */
bool kz_sip_host_valid(const char *p, const char *e) {
  if (p == e) return false;
  const char *end = e;
  if (end[-1] == '.') end--; /* a trailing dot is a fully qualified name */
  if (end == p) return false;
  const char *last = p;
  for (const char *q = p; q < end; q++) {
    if (*q == '.') {
      if (q == last) return false; /* empty label */
      last = q + 1;
    } else if (!kz_sip_is((unsigned char)*q, C_HOST)) {
      return false;
    }
  }
  if (last == end) return false;
  if (*last >= '0' && *last <= '9') return end == e && ipv4_valid(p, e);
  return true;
}

const char *kz_sip_host_scan(struct kz_sip_cur *c, struct kz_slice *host, bool *ipv6) {
  if (c->p < c->e && *c->p == '[') {
    const char *s = c->p + 1;
    const char *q = s;
    while (q < c->e && *q != ']') q++;
    if (q == c->e) return "unterminated IPv6 reference";
    if (!kz_sip_ipv6_valid(s, q)) return "invalid IPv6 address";
    *host = (struct kz_slice){s, (size_t)(q - s)};
    *ipv6 = true;
    c->p = q + 1;
    return NULL;
  }
  /* Fast path, one pass: a dotted quad not followed by another host
   * character is exactly what the general path below accepts as an IPv4
   * host (span, labels, then ipv4_valid); anything else takes that path. */
  {
    const char *q = c->p;
    int part = 0;
    for (;;) {
      /* One to three digits, <= 255, and no fourth. */
      unsigned d0, d1, d2;
      uint32_t v;
      if (q >= c->e || (d0 = (unsigned)((unsigned char)*q - '0')) > 9) break;
      v = d0;
      q++;
      if (q < c->e && (d1 = (unsigned)((unsigned char)*q - '0')) <= 9) {
        v = v * 10 + d1;
        q++;
        if (q < c->e && (d2 = (unsigned)((unsigned char)*q - '0')) <= 9) {
          v = v * 10 + d2;
          q++;
          if (v > 255 || (q < c->e && (unsigned)((unsigned char)*q - '0') <= 9)) break;
        }
      }
      if (part == 3) {
        if (q < c->e && kz_sip_is((unsigned char)*q, C_HOST)) break;
        *host = (struct kz_slice){c->p, (size_t)(q - c->p)};
        *ipv6 = false;
        c->p = q;
        return NULL;
      }
      if (q >= c->e || *q != '.') break;
      q++;
      part++;
    }
  }
  struct kz_slice h = kz_sip_span(c, C_HOST);
  if (h.len == 0) return "missing host";
  if (!kz_sip_host_valid(h.p, h.p + h.len)) return "invalid host";
  *host = h;
  *ipv6 = false;
  return NULL;
}

/* A run of chars of class cls or %HH escapes. */
static bool escaped_span(struct kz_sip_cur *c, unsigned cls, struct kz_slice *out) {
  const char *s = c->p;
  while (c->p < c->e) {
    unsigned char ch = (unsigned char)*c->p;
    if (kz_sip_is(ch, cls)) {
      c->p++;
    } else if (ch == '%') {
      if (c->e - c->p < 3 || !kz_sip_is((unsigned char)c->p[1], C_HEX) ||
          !kz_sip_is((unsigned char)c->p[2], C_HEX))
        return false;
      c->p += 3;
    } else {
      break;
    }
  }
  *out = (struct kz_slice){s, (size_t)(c->p - s)};
  return true;
}

/* URI parameters: *( ";" pname [ "=" pvalue ] ). */
static const char *uri_params(struct kz_sip_cur *c, struct kz_slice *params) {
  if (c->p >= c->e || *c->p != ';') return NULL;
  const char *s = c->p;
  while (c->p < c->e && *c->p == ';') {
    c->p++;
    struct kz_slice n, v;
    if (!escaped_span(c, C_PARAM, &n)) return "bad escape in parameter";
    if (n.len == 0) return "empty URI parameter";
    if (c->p < c->e && *c->p == '=') {
      c->p++;
      if (!escaped_span(c, C_PARAM, &v)) return "bad escape in parameter";
      if (v.len == 0) return "empty URI parameter value";
    }
  }
  *params = (struct kz_slice){s, (size_t)(c->p - s)};
  return NULL;
}

static bool scheme_is(struct kz_slice s, const char *name) {
  for (size_t i = 0; i < s.len; i++)
    if (!name[i] || kz_sip_lower(s.p[i]) != name[i]) return false;
  return name[s.len] == 0;
}

const char *kz_sip_uri_parse_(const char *p, const char *e, struct kz_sip_uri *u) {
  u->raw = (struct kz_slice){p, (size_t)(e - p)};
  struct kz_sip_cur c = {p, e};
  /* "sip:" in any case, nearly every URI: what the scheme scan below
   * would find, without the scan and the name compares. */
  bool sip = e - p > 4 && (p[0] | 0x20) == 's' && (p[1] | 0x20) == 'i' && (p[2] | 0x20) == 'p' &&
             p[3] == ':';
  if (sip) {
    c.p += 3;
  } else {
    if (c.p >= c.e || !((*c.p | 0x20) >= 'a' && (*c.p | 0x20) <= 'z')) return "missing URI scheme";
    while (c.p < c.e && (kz_sip_is((unsigned char)*c.p, C_HEX | C_HOST) || *c.p == '+') &&
           *c.p != '_')
      c.p++;
    if (c.p >= c.e || *c.p != ':') return "missing URI scheme";
  }
  u->scheme_text = (struct kz_slice){p, (size_t)(c.p - p)};
  c.p++;
  u->opaque = (struct kz_slice){c.p, (size_t)(e - c.p)};
  if (c.p == c.e) return "empty URI";

  if (sip || scheme_is(u->scheme_text, "sip") || scheme_is(u->scheme_text, "sips")) {
    u->scheme = u->scheme_text.len == 3 ? KZ_SIP_SCHEME_SIP : KZ_SIP_SCHEME_SIPS;
    /* '@' cannot appear raw after the userinfo (params and headers must
     * escape it), so the first one ends the userinfo even when the user
     * part holds ';', '?' or ',' (RFC 4475 §3.1.1.2, §3.1.1.9). */
    const char *at = memchr(c.p, '@', (size_t)(e - c.p));
    if (at) {
      struct kz_sip_cur uc = {c.p, at};
      struct kz_slice user;
      if (!escaped_span(&uc, C_USER, &user)) return "bad escape in user part";
      if (user.len == 0) return "empty user part";
      u->user = user;
      if (uc.p < at && *uc.p == ':') {
        uc.p++;
        struct kz_slice pw;
        if (!escaped_span(&uc, C_PASS, &pw)) return "bad escape in password";
        u->password = pw;
      }
      if (uc.p != at) return "invalid character in user part";
      c.p = at + 1;
    }
    const char *why = kz_sip_host_scan(&c, &u->host, &u->host_ipv6);
    if (why) return why;
    if (c.p < c.e && *c.p == ':') {
      c.p++;
      struct kz_slice pt = kz_sip_span(&c, C_DIGIT);
      if (!kz_sip_port_parse(pt, &u->port)) return "invalid port";
      u->port_text = pt;
    }
    why = uri_params(&c, &u->params);
    if (why) return why;
    if (c.p < c.e && *c.p == '?') {
      c.p++;
      const char *hs = c.p;
      for (;;) {
        struct kz_slice n, v;
        if (!escaped_span(&c, C_HNV, &n) || n.len == 0) return "invalid URI header";
        if (c.p >= c.e || *c.p != '=') return "invalid URI header";
        c.p++;
        if (!escaped_span(&c, C_HNV, &v)) return "invalid URI header";
        if (c.p < c.e && *c.p == '&') {
          c.p++;
          continue;
        }
        break;
      }
      u->headers = (struct kz_slice){hs, (size_t)(c.p - hs)};
    }
    if (c.p != c.e) return "invalid character in URI";
    return NULL;
  }
  if (scheme_is(u->scheme_text, "tel")) {
    u->scheme = KZ_SIP_SCHEME_TEL;
    struct kz_slice num;
    /* telephone-subscriber digits and visual separators, liberal: any
     * paramchar but ';' (which starts the parameters). */
    if (!escaped_span(&c, C_PARAM, &num) || num.len == 0) return "invalid telephone number";
    u->user = num;
    const char *why = uri_params(&c, &u->params);
    if (why) return why;
    if (c.p != c.e) return "invalid character in URI";
    return NULL;
  }
  u->scheme = KZ_SIP_SCHEME_OTHER;
  while (c.p < c.e && kz_sip_is((unsigned char)*c.p, C_URIC)) c.p++;
  if (c.p != c.e) return "invalid character in URI";
  return NULL;
}

int kz_sip_uri_parse(struct kz_slice s, struct kz_sip_uri *u) {
  if (!u || (!s.p && s.len)) return KZ_EINVAL;
  const char *p = s.p ? s.p : "";
  memset(u, 0, sizeof *u);
  return kz_sip_uri_parse_(p, p + s.len, u) ? KZ_EPROTO : 0;
}

bool kz_sip_quoted_scan(struct kz_sip_cur *c) {
  c->p++; /* opening quote */
  while (c->p < c->e) {
    char ch = *c->p;
    if (ch == '"') {
      c->p++;
      return true;
    }
    if (ch == '\\') {
      if (c->e - c->p < 2 || c->p[1] == '\r' || c->p[1] == '\n') return false;
      c->p += 2;
    } else {
      c->p++;
    }
  }
  return false;
}

static const char *hparams_cls(struct kz_sip_cur *c, struct kz_slice *params,
                               kz_sip_param_fn *on, void *obj, unsigned vcls) {
  *params = KZ_SLICE_NULL;
  struct kz_sip_cur t = *c;
  kz_sip_skip_lws(&t);
  if (t.p >= t.e || *t.p != ';') return NULL;
  const char *s = t.p;
  const char *last = t.p;
  while (t.p < t.e && *t.p == ';') {
    t.p++;
    kz_sip_skip_lws(&t);
    struct kz_slice n = kz_sip_span(&t, C_TOKEN);
    if (n.len == 0) return "empty parameter";
    struct kz_slice v = {t.p, 0};
    bool has_value = false;
    last = t.p;
    struct kz_sip_cur a = t;
    kz_sip_skip_lws(&a);
    if (a.p < a.e && *a.p == '=') {
      a.p++;
      kz_sip_skip_lws(&a);
      if (a.p < a.e && *a.p == '"') {
        const char *qs = a.p;
        if (!kz_sip_quoted_scan(&a)) return "unterminated quoted string";
        v = (struct kz_slice){qs, (size_t)(a.p - qs)};
      } else {
        v = kz_sip_span(&a, vcls);
        if (v.len == 0) return "empty parameter value";
      }
      has_value = true;
      t = a;
      last = t.p;
    }
    if (on) {
      const char *why = on(obj, n, v, has_value);
      if (why) return why;
    }
    kz_sip_skip_lws(&t);
  }
  *params = (struct kz_slice){s, (size_t)(last - s)};
  c->p = last;
  return NULL;
}

const char *kz_sip_hparams(struct kz_sip_cur *c, struct kz_slice *params, kz_sip_param_fn *on,
                           void *obj) {
  return hparams_cls(c, params, on, obj, C_GENV);
}

struct param_find {
  const char *name;
  struct kz_slice *value;
  bool found;
};

static const char *param_find_cb(void *obj, struct kz_slice name, struct kz_slice value,
                                 bool has_value) {
  struct param_find *f = obj;
  if (!f->found && kz_slice_caseeq_cstr(name, f->name)) {
    f->found = true;
    if (f->value) *f->value = has_value ? value : (struct kz_slice){name.p + name.len, 0};
  }
  return NULL;
}

bool kz_sip_param_get(struct kz_slice params, const char *name, struct kz_slice *value) {
  if (!params.p || !name) return false;
  struct param_find f = {name, value, false};
  struct kz_sip_cur c = {params.p, params.p + params.len};
  struct kz_slice all;
  /* URI parameter lists have no LWS and no quotes, so one scanner serves
   * both URI and header parameters. */
  (void)hparams_cls(&c, &all, param_find_cb, &f, C_GENV | C_PARAM);
  return f.found;
}
