/* auth.c — SIPp's [authentication] keyword: a lenient challenge reader and the digest credentials, hashed by kz_sip_digest. */
#include <string.h>
#include <strings.h>

#include "kz/error.h"
#include "kz/sip_digest.h"
#include "sipp_int.h"

static bool sp(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Like SIPp's getAuthParameter: the name must start the header or follow
 * a ',' or a space outside quotes, then '='; a quoted value runs to the
 * next quote, a token to a space, comma or quote. */
bool sipp_auth_param(struct kz_slice hdr, const char *name, struct kz_slice *val) {
  size_t n = strlen(name);
  bool quoted = false;
  const char *p = hdr.p, *end = hdr.p + hdr.len;
  for (; p < end; p++) {
    if (quoted && *p == '\\' && p + 1 < end) {
      p++;
      continue;
    }
    if (*p == '"') {
      quoted = !quoted;
      continue;
    }
    if (quoted || !(p == hdr.p || p[-1] == ',' || sp(p[-1]))) continue;
    if ((size_t)(end - p) < n || strncasecmp(p, name, n) != 0) continue;
    const char *q = p + n;
    while (q < end && sp(*q)) q++;
    if (q >= end || *q != '=') continue;
    q++;
    while (q < end && sp(*q)) q++;
    const char *s = q, *e;
    if (q < end && *q == '"') {
      s = ++q;
      while (q < end && *q != '"') q++;
      e = q;
    } else {
      while (q < end && !sp(*q) && *q != ',' && *q != '"') q++;
      e = q;
    }
    *val = kz_slice_make(s, (size_t)(e - s));
    return true;
  }
  return false;
}

int kz_sipp_auth_credentials(struct kz_buf *out, struct kz_slice challenge, struct kz_slice user,
                             struct kz_slice pass, struct kz_slice method, struct kz_slice uri,
                             uint32_t nc, struct kz_slice cnonce) {
  struct kz_slice c = kz_slice_trim(challenge);
  if (c.len < 6 || strncasecmp(c.p, "Digest", 6) != 0) return KZ_ENOTSUP;
  struct kz_slice realm = KZ_SLICE_NULL, nonce = KZ_SLICE_LIT(""), opaque = KZ_SLICE_NULL,
                  qop = KZ_SLICE_NULL, algo = KZ_SLICE_NULL;
  if (!sipp_auth_param(c, "realm", &realm)) return KZ_EPROTO;
  sipp_auth_param(c, "nonce", &nonce);
  sipp_auth_param(c, "opaque", &opaque);
  sipp_auth_param(c, "algorithm", &algo);
  const char *qop_used = NULL;
  if (sipp_auth_param(c, "qop", &qop)) {
    /* SIPp's sloppy recognition: "auth,auth-int" means auth-int; only
     * auth is implemented here. */
    bool has_auth = false;
    for (size_t i = 0; i + 4 <= qop.len; i++)
      if (strncasecmp(qop.p + i, "auth", 4) == 0) {
        if (i + 8 <= qop.len && strncasecmp(qop.p + i, "auth-int", 8) == 0) {
          i += 7;
          continue;
        }
        has_auth = true;
      }
    if (!has_auth) return KZ_ENOTSUP;
    qop_used = "auth";
  }
  enum kz_sip_digest_alg alg = KZ_SIP_DIGEST_MD5;
  if (algo.p) {
    size_t i = 0;
    for (; i < KZ_SIP_DIGEST_ALG_COUNT; i++)
      if (kz_slice_caseeq_cstr(algo, kz_sip_digest_alg_name((enum kz_sip_digest_alg)i))) break;
    if (i == KZ_SIP_DIGEST_ALG_COUNT) return KZ_ENOTSUP;
    alg = (enum kz_sip_digest_alg)i;
  }
  char ncs[9];
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 8; i++) ncs[i] = hex[(nc >> (28 - 4 * i)) & 15];
  ncs[8] = '\0';
  struct kz_sip_digest_input in = {
      .alg = alg,
      .username = user,
      .realm = realm,
      .password = pass,
      .nonce = nonce,
      .cnonce = qop_used ? cnonce : KZ_SLICE_NULL,
      .nc = qop_used ? kz_slice_make(ncs, 8) : KZ_SLICE_NULL,
      .qop = qop_used ? kz_slice_cstr(qop_used) : KZ_SLICE_NULL,
      .method = method,
      .uri = uri,
  };
  char resp[KZ_SIP_DIGEST_HEX_MAX + 1];
  int n = kz_sip_digest_response(&in, resp);
  if (n < 0) return n == KZ_EINVAL ? KZ_ENOTSUP : n;
  size_t mark = out->len;
  int rc = kz_buf_printf(out, "Digest username=\"%.*s\",realm=\"%.*s\"", (int)user.len, user.p,
                         (int)realm.len, realm.p);
  if (!rc && qop_used)
    rc = kz_buf_printf(out, ",cnonce=\"%.*s\",nc=%s,qop=%s", (int)cnonce.len, cnonce.p, ncs, qop_used);
  if (!rc)
    rc = kz_buf_printf(out, ",uri=\"%.*s\",nonce=\"%.*s\",response=\"%s\",algorithm=%s",
                       (int)uri.len, uri.p, (int)nonce.len, nonce.p, resp,
                       kz_sip_digest_alg_name(alg));
  if (!rc && opaque.p) rc = kz_buf_printf(out, ",opaque=\"%.*s\"", (int)opaque.len, opaque.p);
  if (rc) kz_buf_truncate(out, mark);
  return rc;
}
