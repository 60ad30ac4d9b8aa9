/* hash.c — digest computation (RFC 7616 §3.4.1-3.4.3) over nettle's MD5, SHA-256 and SHA-512/256, plus hex helpers. */
#include <assert.h>
#include <string.h>

#include <nettle/md5.h>
#include <nettle/nettle-meta.h>
#include <nettle/sha2.h>

#include "digest_int.h"
#include "kz/error.h"

/* One running hash; the union is big enough for every nettle context we
 * use, so nothing is allocated. */
struct hctx {
  const struct nettle_hash *h;
  union {
    struct md5_ctx md5;
    struct sha256_ctx sha256;
    struct sha512_ctx sha512;
  } u;
};

enum kz_sip_digest_alg kz_sip_digest_base_alg_(enum kz_sip_digest_alg alg) {
  return (enum kz_sip_digest_alg)((unsigned)alg & ~1u);
}

bool kz_sip_digest_is_sess_(enum kz_sip_digest_alg alg) { return ((unsigned)alg & 1u) != 0; }

static const struct nettle_hash *hash_of(enum kz_sip_digest_alg alg) {
  switch (kz_sip_digest_base_alg_(alg)) {
  case KZ_SIP_DIGEST_MD5: return &nettle_md5;
  case KZ_SIP_DIGEST_SHA256: return &nettle_sha256;
  case KZ_SIP_DIGEST_SHA512_256: return &nettle_sha512_256;
  default: return NULL;
  }
}

size_t kz_sip_digest_size_(enum kz_sip_digest_alg alg) {
  if ((unsigned)alg >= KZ_SIP_DIGEST_ALG_COUNT) return 0;
  const struct nettle_hash *h = hash_of(alg);
  return h ? h->digest_size : 0;
}

static void h_init(struct hctx *c, const struct nettle_hash *h) {
  assert(h->context_size <= sizeof c->u);
  c->h = h;
  h->init(&c->u);
}

static void h_put(struct hctx *c, struct kz_slice s) {
  if (s.len) c->h->update(&c->u, s.len, (const uint8_t *)s.p);
}

/* Feeds "a:b:c..." — the colon-joined form every digest input uses. */
static void h_join(struct hctx *c, const struct kz_slice *parts, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (i) h_put(c, KZ_SLICE_LIT(":"));
    h_put(c, parts[i]);
  }
}

static const char hexd[] = "0123456789abcdef";

/* Finishes the hash into lowercase hex with a NUL; returns its length. */
static size_t h_hex(struct hctx *c, char out[KZ_SIP_DIGEST_HEX_MAX + 1]) {
  uint8_t d[32];
  size_t n = c->h->digest_size;
  assert(n <= sizeof d);
  c->h->digest(&c->u, n, d);
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hexd[d[i] >> 4];
    out[2 * i + 1] = hexd[d[i] & 15];
  }
  out[2 * n] = '\0';
  return 2 * n;
}

int kz_sip_digest_ha1(enum kz_sip_digest_alg alg, struct kz_slice username,
                      struct kz_slice realm, struct kz_slice password,
                      char out[KZ_SIP_DIGEST_HEX_MAX + 1]) {
  if ((unsigned)alg >= KZ_SIP_DIGEST_ALG_COUNT || !out) return KZ_EINVAL;
  struct hctx c;
  h_init(&c, hash_of(alg));
  const struct kz_slice parts[3] = {username, realm, password};
  h_join(&c, parts, 3);
  return (int)h_hex(&c, out);
}

int kz_sip_digest_response(const struct kz_sip_digest_input *in,
                           char out[KZ_SIP_DIGEST_HEX_MAX + 1]) {
  if (!in || !out || (unsigned)in->alg >= KZ_SIP_DIGEST_ALG_COUNT) return KZ_EINVAL;
  const struct nettle_hash *h = hash_of(in->alg);
  size_t hexlen = 2 * h->digest_size;
  char ha1[KZ_SIP_DIGEST_HEX_MAX + 1], ha2[KZ_SIP_DIGEST_HEX_MAX + 1];
  struct hctx c;

  if (in->ha1.len) {
    if (in->ha1.len != hexlen) return KZ_EINVAL;
    /* Stored HA1s may be upper case; the digest input is lower case. */
    for (size_t i = 0; i < hexlen; i++) {
      char ch = in->ha1.p[i];
      if (!((ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')))
        return KZ_EINVAL;
      ha1[i] = (ch >= 'A' && ch <= 'F') ? (char)(ch | 0x20) : ch;
    }
    ha1[hexlen] = '\0';
  } else {
    kz_sip_digest_ha1(in->alg, in->username, in->realm, in->password, ha1);
  }
  if (kz_sip_digest_is_sess_(in->alg)) {
    /* -sess: HA1 = H(H(user:realm:pass) ":" nonce ":" cnonce). */
    if (!in->cnonce.len) return KZ_EINVAL;
    h_init(&c, h);
    const struct kz_slice parts[3] = {kz_slice_make(ha1, hexlen), in->nonce, in->cnonce};
    h_join(&c, parts, 3);
    h_hex(&c, ha1);
  }

  h_init(&c, h);
  const struct kz_slice a2[2] = {in->method, in->uri};
  h_join(&c, a2, 2);
  h_hex(&c, ha2);

  h_init(&c, h);
  if (in->qop.len) {
    const struct kz_slice parts[6] = {kz_slice_make(ha1, hexlen), in->nonce, in->nc,
                                      in->cnonce, in->qop, kz_slice_make(ha2, hexlen)};
    h_join(&c, parts, 6);
  } else {
    const struct kz_slice parts[3] = {kz_slice_make(ha1, hexlen), in->nonce,
                                      kz_slice_make(ha2, hexlen)};
    h_join(&c, parts, 3);
  }
  return (int)h_hex(&c, out);
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c |= 0x20;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool kz_sip_digest_unhex_(struct kz_slice s, uint8_t *out, size_t n) {
  if (s.len != 2 * n) return false;
  for (size_t i = 0; i < n; i++) {
    int hi = hexval((unsigned char)s.p[2 * i]), lo = hexval((unsigned char)s.p[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return true;
}

bool kz_sip_digest_ct_eq_(const uint8_t *a, const uint8_t *b, size_t n) {
  uint8_t acc = 0;
  for (size_t i = 0; i < n; i++) acc |= (uint8_t)(a[i] ^ b[i]);
  return acc == 0;
}

bool kz_sip_digest_has_crlf_(struct kz_slice s) {
  for (size_t i = 0; i < s.len; i++)
    if (s.p[i] == '\r' || s.p[i] == '\n' || s.p[i] == '\0') return true;
  return false;
}

int kz_sip_digest_append_quoted_(struct kz_buf *b, struct kz_slice s) {
  /* Worst case every byte escaped, plus two quotes: reserve once so the
   * loop below cannot fail half way. */
  if (s.len > (SIZE_MAX - 2) / 2) return KZ_ENOMEM;
  int rc = kz_buf_reserve(b, 2 * s.len + 2);
  if (rc) return rc;
  b->data[b->len++] = '"';
  for (size_t i = 0; i < s.len; i++) {
    unsigned char ch = (unsigned char)s.p[i];
    if (ch == '"' || ch == '\\' || (ch < 0x20 && ch != '\t') || ch == 0x7f)
      b->data[b->len++] = '\\';
    b->data[b->len++] = ch;
  }
  b->data[b->len++] = '"';
  b->data[b->len] = '\0';
  return 0;
}
