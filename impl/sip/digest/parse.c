/* parse.c — parser for Digest challenge and credentials header values (RFC 3261 §25.1, RFC 7616 §3.3-3.4). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sip_digest.h"

/* Enough for every real header (RFC 7616 credentials have ~11); the cap
 * keeps the duplicate check O(1) per parameter on hostile input. */
#define MAX_PARAMS 32

struct cursor {
  const char *p;
  size_t len;
  size_t pos;
};

static const char *const hdr_names[] = {
    "WWW-Authenticate", "Proxy-Authenticate", "Authorization", "Proxy-Authorization"};

const char *kz_sip_digest_hdr_name(enum kz_sip_digest_hdr hdr) {
  if ((unsigned)hdr < sizeof hdr_names / sizeof hdr_names[0]) return hdr_names[hdr];
  return "?";
}

static const char *const alg_names[KZ_SIP_DIGEST_ALG_COUNT] = {
    "MD5", "MD5-sess", "SHA-256", "SHA-256-sess", "SHA-512-256", "SHA-512-256-sess"};

const char *kz_sip_digest_alg_name(enum kz_sip_digest_alg alg) {
  if ((unsigned)alg < KZ_SIP_DIGEST_ALG_COUNT) return alg_names[alg];
  return "?";
}

static bool is_challenge(enum kz_sip_digest_hdr h) {
  return h == KZ_SIP_DIGEST_WWW_AUTHENTICATE || h == KZ_SIP_DIGEST_PROXY_AUTHENTICATE;
}

/* RFC 3261 token characters. */
static bool is_tokenc(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return c != 0 && strchr("-.!%*_+`'~", c) != NULL;
}

static bool is_hex(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Copies a name or value into `out` for a reason text: at most 24
 * characters, anything not printable ASCII (or a quote) replaced, so
 * the reason stays safe for a reason phrase. */
static const char *shown(char out[32], struct kz_slice s) {
  size_t n = s.len > 24 ? 24 : s.len, i;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s.p[i];
    out[i] = (c >= 0x20 && c < 0x7f && c != '\'') ? (char)c : '?';
  }
  if (s.len > n) {
    memcpy(out + n, "...", 3);
    n += 3;
  }
  out[n] = '\0';
  return out;
}

/* Records a reason prefixed with the header name, frees what was stored
 * and returns err. */
static int fail(struct kz_sip_digest_auth *a, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct kz_sip_digest_auth *a, int err, const char *fmt, ...) {
  enum kz_sip_digest_hdr hdr = a->hdr;
  kz_sip_digest_auth_clear(a);
  a->hdr = hdr;
  int n = snprintf(a->reason, sizeof a->reason, "%s: ", kz_sip_digest_hdr_name(hdr));
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(a->reason + n, sizeof a->reason - (size_t)n, fmt, ap);
  va_end(ap);
  return err;
}

/* Skips SWS: spaces, tabs and folds (CRLF followed by SP/HTAB).  A CR or
 * LF that is not a fold stays for the caller to reject. */
static void skip_sws(struct cursor *c) {
  while (c->pos < c->len) {
    char ch = c->p[c->pos];
    if (ch == ' ' || ch == '\t') {
      c->pos++;
    } else if (ch == '\r' && c->pos + 2 < c->len && c->p[c->pos + 1] == '\n' &&
               (c->p[c->pos + 2] == ' ' || c->p[c->pos + 2] == '\t')) {
      c->pos += 3;
    } else {
      break;
    }
  }
}

static struct kz_slice take_token(struct cursor *c) {
  size_t start = c->pos;
  while (c->pos < c->len && is_tokenc((unsigned char)c->p[c->pos])) c->pos++;
  return kz_slice_make(c->p + start, c->pos - start);
}

static const char *describe_char(char buf[16], struct cursor *c) {
  if (c->pos >= c->len) return "end of value";
  unsigned char ch = (unsigned char)c->p[c->pos];
  if (ch > 0x20 && ch < 0x7f && ch != '\'')
    snprintf(buf, 16, "'%c'", ch);
  else
    snprintf(buf, 16, "byte 0x%02x", ch);
  return buf;
}

/* Parses a quoted-string starting at the opening quote.  Values with
 * quoted-pairs or folds are unescaped into a->store_ (allocated once with
 * the whole header's length, which bounds every unescaped value). */
static int take_quoted(struct kz_sip_digest_auth *a, struct cursor *c, struct kz_slice name,
                       struct kz_slice *val) {
  char nb[32];
  size_t start = ++c->pos; /* past the opening quote */
  bool plain = true;
  for (;;) {
    if (c->pos >= c->len)
      return fail(a, KZ_EPROTO, "unterminated quoted string in '%s'", shown(nb, name));
    unsigned char ch = (unsigned char)c->p[c->pos];
    if (ch == '"') break;
    if (ch == '\\') {
      if (c->pos + 1 >= c->len)
        return fail(a, KZ_EPROTO, "unterminated quoted string in '%s'", shown(nb, name));
      unsigned char e = (unsigned char)c->p[c->pos + 1];
      if (e == '\r' || e == '\n')
        return fail(a, KZ_EPROTO, "escaped CR/LF in '%s'", shown(nb, name));
      plain = false;
      c->pos += 2;
    } else if (ch == '\r') {
      if (c->pos + 2 < c->len && c->p[c->pos + 1] == '\n' &&
          (c->p[c->pos + 2] == ' ' || c->p[c->pos + 2] == '\t')) {
        plain = false;
        c->pos += 3;
      } else {
        return fail(a, KZ_EPROTO, "CR/LF in quoted string of '%s'", shown(nb, name));
      }
    } else if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
      return fail(a, KZ_EPROTO, "control character in quoted string of '%s'", shown(nb, name));
    } else {
      c->pos++;
    }
  }
  size_t end = c->pos++; /* past the closing quote */
  if (plain) {
    *val = kz_slice_make(c->p + start, end - start);
    return 0;
  }
  if (!a->store_) {
    a->store_ = kz_malloc(c->len);
    if (!a->store_) return fail(a, KZ_ENOMEM, "out of memory");
    a->store_used_ = 0;
  }
  char *dst = a->store_ + a->store_used_;
  size_t n = 0;
  for (size_t i = start; i < end;) {
    if (c->p[i] == '\\') {
      dst[n++] = c->p[i + 1];
      i += 2;
    } else if (c->p[i] == '\r') {
      i += 2; /* a fold: drop CRLF, keep the whitespace after it */
    } else {
      dst[n++] = c->p[i++];
    }
  }
  a->store_used_ += n;
  *val = kz_slice_make(dst, n);
  return 0;
}

static bool parse_bool(struct kz_slice v, bool *out) {
  if (kz_slice_caseeq_cstr(v, "true")) {
    *out = true;
    return true;
  }
  if (kz_slice_caseeq_cstr(v, "false")) {
    *out = false;
    return true;
  }
  return false;
}

/* qop-options of a challenge: a comma list of tokens; unknown ones are
 * ignored as RFC 7616 asks. */
static int parse_qop_list(struct kz_sip_digest_auth *a, struct kz_slice v) {
  struct cursor c = {v.p, v.len, 0};
  for (;;) {
    skip_sws(&c);
    struct kz_slice t = take_token(&c);
    skip_sws(&c);
    if (c.pos < c.len && c.p[c.pos] != ',') {
      char cb[16];
      return fail(a, KZ_EPROTO, "unexpected %s in qop list", describe_char(cb, &c));
    }
    if (kz_slice_caseeq_cstr(t, "auth")) a->qop |= KZ_SIP_DIGEST_QOP_AUTH;
    else if (kz_slice_caseeq_cstr(t, "auth-int")) a->qop |= KZ_SIP_DIGEST_QOP_AUTH_INT;
    if (c.pos >= c.len) return 0;
    c.pos++; /* the comma */
  }
}

static int parse_alg(struct kz_sip_digest_auth *a, struct kz_slice v) {
  for (unsigned i = 0; i < KZ_SIP_DIGEST_ALG_COUNT; i++) {
    if (kz_slice_caseeq_cstr(v, alg_names[i])) {
      a->alg = (enum kz_sip_digest_alg)i;
      return 0;
    }
  }
  char vb[32];
  return fail(a, KZ_ENOTSUP, "unsupported algorithm '%s'", shown(vb, v));
}

struct known {
  const char *name;
  unsigned bit;
};

static const struct known known_params[] = {
    {"realm", KZ_SIP_DIGEST_P_REALM},         {"nonce", KZ_SIP_DIGEST_P_NONCE},
    {"opaque", KZ_SIP_DIGEST_P_OPAQUE},       {"stale", KZ_SIP_DIGEST_P_STALE},
    {"algorithm", KZ_SIP_DIGEST_P_ALGORITHM}, {"qop", KZ_SIP_DIGEST_P_QOP},
    {"username", KZ_SIP_DIGEST_P_USERNAME},   {"uri", KZ_SIP_DIGEST_P_URI},
    {"response", KZ_SIP_DIGEST_P_RESPONSE},   {"cnonce", KZ_SIP_DIGEST_P_CNONCE},
    {"nc", KZ_SIP_DIGEST_P_NC},               {"userhash", KZ_SIP_DIGEST_P_USERHASH},
    {"domain", KZ_SIP_DIGEST_P_DOMAIN},
};

static int set_param(struct kz_sip_digest_auth *a, struct kz_slice name, struct kz_slice v) {
  char nb[32], vb[32];
  unsigned bit = 0;
  for (size_t i = 0; i < sizeof known_params / sizeof known_params[0]; i++) {
    if (kz_slice_caseeq_cstr(name, known_params[i].name)) {
      bit = known_params[i].bit;
      break;
    }
  }
  a->present |= bit;
  switch (bit) {
  case 0: return 0; /* unknown: skipped (auth-param extension) */
  case KZ_SIP_DIGEST_P_REALM: a->realm = v; return 0;
  case KZ_SIP_DIGEST_P_NONCE: a->nonce = v; return 0;
  case KZ_SIP_DIGEST_P_OPAQUE: a->opaque = v; return 0;
  case KZ_SIP_DIGEST_P_DOMAIN: a->domain = v; return 0;
  case KZ_SIP_DIGEST_P_USERNAME: a->username = v; return 0;
  case KZ_SIP_DIGEST_P_URI: a->uri = v; return 0;
  case KZ_SIP_DIGEST_P_RESPONSE: a->response = v; return 0;
  case KZ_SIP_DIGEST_P_CNONCE: a->cnonce = v; return 0;
  case KZ_SIP_DIGEST_P_STALE:
    if (!parse_bool(v, &a->stale))
      return fail(a, KZ_EPROTO, "stale must be true or false, not '%s'", shown(vb, v));
    return 0;
  case KZ_SIP_DIGEST_P_USERHASH:
    if (!parse_bool(v, &a->userhash))
      return fail(a, KZ_EPROTO, "userhash must be true or false, not '%s'", shown(vb, v));
    return 0;
  case KZ_SIP_DIGEST_P_ALGORITHM: return parse_alg(a, v);
  case KZ_SIP_DIGEST_P_QOP:
    if (is_challenge(a->hdr)) return parse_qop_list(a, v);
    if (kz_slice_caseeq_cstr(v, "auth")) a->qop = KZ_SIP_DIGEST_QOP_AUTH;
    else if (kz_slice_caseeq_cstr(v, "auth-int")) a->qop = KZ_SIP_DIGEST_QOP_AUTH_INT;
    else return fail(a, KZ_EPROTO, "unknown qop '%s'", shown(vb, v));
    a->qop_text = v;
    return 0;
  case KZ_SIP_DIGEST_P_NC: {
    uint32_t nc = 0;
    if (v.len != 8) return fail(a, KZ_EPROTO, "nc must be 8 hex digits");
    for (size_t i = 0; i < 8; i++) {
      unsigned char ch = (unsigned char)v.p[i];
      if (!is_hex(ch)) return fail(a, KZ_EPROTO, "nc must be 8 hex digits");
      nc = nc << 4 | (uint32_t)(ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10);
    }
    a->nc = nc;
    a->nc_text = v;
    return 0;
  }
  default: return fail(a, KZ_EPROTO, "internal: parameter '%s'", shown(nb, name));
  }
}

static int check_required(struct kz_sip_digest_auth *a) {
  static const struct known need_chal[] = {{"realm", KZ_SIP_DIGEST_P_REALM},
                                           {"nonce", KZ_SIP_DIGEST_P_NONCE}};
  static const struct known need_cred[] = {
      {"username", KZ_SIP_DIGEST_P_USERNAME}, {"realm", KZ_SIP_DIGEST_P_REALM},
      {"nonce", KZ_SIP_DIGEST_P_NONCE},       {"uri", KZ_SIP_DIGEST_P_URI},
      {"response", KZ_SIP_DIGEST_P_RESPONSE}};
  const struct known *need = is_challenge(a->hdr) ? need_chal : need_cred;
  size_t n = is_challenge(a->hdr) ? 2 : 5;
  for (size_t i = 0; i < n; i++)
    if (!(a->present & need[i].bit))
      return fail(a, KZ_EPROTO, "missing parameter '%s'", need[i].name);
  if (is_challenge(a->hdr)) return 0;
  if (a->present & KZ_SIP_DIGEST_P_QOP) {
    if (!(a->present & KZ_SIP_DIGEST_P_CNONCE))
      return fail(a, KZ_EPROTO, "missing parameter 'cnonce' (required with qop)");
    if (!(a->present & KZ_SIP_DIGEST_P_NC))
      return fail(a, KZ_EPROTO, "missing parameter 'nc' (required with qop)");
  } else if (a->present & KZ_SIP_DIGEST_P_NC) {
    return fail(a, KZ_EPROTO, "nc without qop");
  }
  return 0;
}

int kz_sip_digest_parse(struct kz_sip_digest_auth *out, enum kz_sip_digest_hdr hdr,
                        struct kz_slice value) {
  memset(out, 0, sizeof *out);
  out->hdr = hdr;
  if ((unsigned)hdr > KZ_SIP_DIGEST_PROXY_AUTHORIZATION) {
    out->hdr = KZ_SIP_DIGEST_AUTHORIZATION;
    return fail(out, KZ_EINVAL, "bad header kind");
  }
  if (!value.p && value.len) return fail(out, KZ_EINVAL, "NULL value");
  if (!value.len) return fail(out, KZ_EPROTO, "expected an auth scheme");

  struct cursor c = {value.p, value.len, 0};
  char nb[32], cb[16];
  skip_sws(&c);
  struct kz_slice scheme = take_token(&c);
  if (scheme.len == 0) return fail(out, KZ_EPROTO, "expected an auth scheme");
  if (!kz_slice_caseeq_cstr(scheme, "Digest"))
    return fail(out, KZ_ENOTSUP, "unsupported scheme '%s'", shown(nb, scheme));
  size_t before = c.pos;
  skip_sws(&c);
  if (c.pos >= c.len) return fail(out, KZ_EPROTO, "no parameters after 'Digest'");
  if (c.pos == before)
    return fail(out, KZ_EPROTO, "expected whitespace after 'Digest', found %s",
                describe_char(cb, &c));

  struct kz_slice names[MAX_PARAMS];
  size_t nparams = 0;
  for (;;) {
    skip_sws(&c);
    struct kz_slice name = take_token(&c);
    if (name.len == 0)
      return fail(out, KZ_EPROTO, "expected a parameter name at offset %zu, found %s", c.pos,
                  describe_char(cb, &c));
    for (size_t i = 0; i < nparams; i++)
      if (kz_slice_caseeq(names[i], name))
        return fail(out, KZ_EPROTO, "duplicate parameter '%s'", shown(nb, name));
    if (nparams == MAX_PARAMS)
      return fail(out, KZ_EPROTO, "too many parameters (more than %d)", MAX_PARAMS);
    names[nparams++] = name;

    skip_sws(&c);
    if (c.pos >= c.len || c.p[c.pos] != '=')
      return fail(out, KZ_EPROTO, "parameter '%s' has no '=' value", shown(nb, name));
    c.pos++;
    skip_sws(&c);
    struct kz_slice val;
    if (c.pos < c.len && c.p[c.pos] == '"') {
      int rc = take_quoted(out, &c, name, &val);
      if (rc) return rc;
    } else {
      val = take_token(&c);
      if (val.len == 0)
        return fail(out, KZ_EPROTO, "parameter '%s' has no value (found %s)", shown(nb, name),
                    describe_char(cb, &c));
    }
    int rc = set_param(out, name, val);
    if (rc) return rc;

    skip_sws(&c);
    if (c.pos >= c.len) break;
    if (c.p[c.pos] != ',')
      return fail(out, KZ_EPROTO, "expected ',' after parameter '%s', found %s", shown(nb, name),
                  describe_char(cb, &c));
    c.pos++;
    skip_sws(&c);
    if (c.pos >= c.len) return fail(out, KZ_EPROTO, "trailing ',' after the last parameter");
  }
  return check_required(out);
}

void kz_sip_digest_auth_clear(struct kz_sip_digest_auth *a) {
  if (!a) return;
  kz_free(a->store_);
  memset(a, 0, sizeof *a);
}
