/* verifier.c — server side of digest auth: stateless expiring nonces (HMAC-SHA256), response checks, bounded nonce-count table. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <nettle/hmac.h>

#include "digest_int.h"
#include "kz/bytes.h"
#include "kz/error.h"
#include "kz/mem.h"

/* A nonce is hex(ts[8] || seq[8] || tag[16]): the issue time in seconds
 * and a per-verifier sequence number, big-endian, then HMAC-SHA256(secret,
 * ts || seq || realm) cut to 128 bits.  The top bit of the seq word says
 * the challenge offered qop=auth; being under the MAC it cannot be
 * cleared, so an answer without qop to such a challenge (no nonce count,
 * replayable until the nonce expires) is refused (RFC 7616 §3.4).  The
 * verifier keeps no per-nonce state until a nonce is first used
 * successfully. */
#define NONCE_RAW 32
#define NONCE_QOP_BIT (1ull << 63)
#define NONCE_TAG 16
#define NONCE_HEX (2 * NONCE_RAW)
#define NC_WAYS 8
#define NS_PER_S 1000000000ull

struct nc_entry {
  uint64_t seq;
  uint64_t used; /* LRU stamp; 0 = empty */
  uint32_t nc;   /* highest nonce count accepted */
};

struct kz_sip_digest_verifier {
  struct hmac_sha256_ctx mac; /* keyed once; copied for each use */
  uint32_t lifetime_s;
  unsigned algs;
  uint64_t next_seq;
  uint64_t tick;
  /* Highest seq ever evicted from the table: a nonce not in the table with
   * a seq at or below it may have been used before, so it is STALE rather
   * than fresh.  Eviction is LRU, so only a nonce issued before a
   * later-issued one got evicted pays this (with a re-challenge). */
  uint64_t evict_floor;
  size_t nsets; /* power of two; NC_WAYS entries each */
  struct nc_entry *table;
};

static const char *const status_names[] = {"OK",    "STALE",  "BAD_NONCE", "WRONG_RESPONSE",
                                           "REPLAY", "MALFORMED"};

const char *kz_sip_digest_status_name(enum kz_sip_digest_status st) {
  if ((unsigned)st < sizeof status_names / sizeof status_names[0]) return status_names[st];
  return "?";
}

static int result(struct kz_sip_digest_result *res, enum kz_sip_digest_status st,
                  const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int result(struct kz_sip_digest_result *res, enum kz_sip_digest_status st,
                  const char *fmt, ...) {
  va_list ap;
  res->status = st;
  va_start(ap, fmt);
  vsnprintf(res->reason, sizeof res->reason, fmt, ap);
  va_end(ap);
  return 0;
}

int kz_sip_digest_verifier_new(struct kz_sip_digest_verifier **out,
                               const struct kz_sip_digest_verifier_cfg *cfg) {
  if (!out || !cfg || !cfg->secret || cfg->secret_len < 16 || cfg->secret_len > 64 ||
      cfg->nonce_lifetime_s == 0 || (cfg->algs & ~KZ_SIP_DIGEST_ALG_ALL))
    return KZ_EINVAL;
  uint32_t slots = cfg->nc_slots ? cfg->nc_slots : KZ_SIP_DIGEST_NC_SLOTS_DEFAULT;
  if (slots > (1u << 24)) return KZ_EINVAL;
  size_t nsets = 1;
  while (nsets * NC_WAYS < slots) nsets *= 2;

  int rc = KZ_ENOMEM;
  struct kz_sip_digest_verifier *v = kz_calloc(1, sizeof *v);
  if (!v) goto out;
  v->table = kz_calloc(nsets * NC_WAYS, sizeof *v->table);
  if (!v->table) goto out;
  hmac_sha256_set_key(&v->mac, cfg->secret_len, cfg->secret);
  v->lifetime_s = cfg->nonce_lifetime_s;
  v->algs = cfg->algs ? cfg->algs : KZ_SIP_DIGEST_ALG_ALL;
  v->next_seq = 1;
  v->nsets = nsets;
  *out = v;
  v = NULL;
  rc = 0;
out:
  kz_sip_digest_verifier_free(v);
  return rc;
}

void kz_sip_digest_verifier_free(struct kz_sip_digest_verifier *v) {
  if (!v) return;
  kz_free(v->table);
  /* The keyed HMAC state is as good as the secret: wipe it. */
  volatile uint8_t *p = (volatile uint8_t *)&v->mac;
  for (size_t i = 0; i < sizeof v->mac; i++) p[i] = 0;
  kz_free(v);
}

static void nonce_tag(const struct kz_sip_digest_verifier *v, const uint8_t head[16],
                      struct kz_slice realm, uint8_t tag[NONCE_TAG]) {
  struct hmac_sha256_ctx c = v->mac;
  uint8_t full[SHA256_DIGEST_SIZE];
  hmac_sha256_update(&c, 16, head);
  hmac_sha256_update(&c, realm.len, (const uint8_t *)realm.p);
  hmac_sha256_digest(&c, sizeof full, full);
  memcpy(tag, full, NONCE_TAG);
}

int kz_sip_digest_challenge(struct kz_sip_digest_verifier *v, struct kz_buf *out,
                            const struct kz_sip_digest_challenge_opts *o, uint64_t now_ns) {
  if (!v || !out || !o || !o->realm.len || kz_sip_digest_has_crlf_(o->realm) ||
      kz_sip_digest_has_crlf_(o->opaque) || (unsigned)o->alg >= KZ_SIP_DIGEST_ALG_COUNT ||
      !(v->algs & KZ_SIP_DIGEST_ALG_BIT(o->alg)) ||
      (kz_sip_digest_is_sess_(o->alg) && !o->qop_auth))
    return KZ_EINVAL;

  uint8_t raw[NONCE_RAW];
  char hex[NONCE_HEX];
  static const char hexd[] = "0123456789abcdef";
  kz_put_be64(raw, now_ns / NS_PER_S);
  kz_put_be64(raw + 8, (v->next_seq++ & ~NONCE_QOP_BIT) | (o->qop_auth ? NONCE_QOP_BIT : 0));
  nonce_tag(v, raw, o->realm, raw + 16);
  for (size_t i = 0; i < NONCE_RAW; i++) {
    hex[2 * i] = hexd[raw[i] >> 4];
    hex[2 * i + 1] = hexd[raw[i] & 15];
  }

  size_t mark = out->len;
  int rc = kz_buf_append_cstr(out, "Digest realm=");
  if (!rc) rc = kz_sip_digest_append_quoted_(out, o->realm);
  if (!rc) rc = kz_buf_printf(out, ", nonce=\"%.*s\"", NONCE_HEX, hex);
  if (!rc && o->opaque.p) {
    rc = kz_buf_append_cstr(out, ", opaque=");
    if (!rc) rc = kz_sip_digest_append_quoted_(out, o->opaque);
  }
  if (!rc) rc = kz_buf_printf(out, ", algorithm=%s", kz_sip_digest_alg_name(o->alg));
  if (!rc && o->qop_auth) rc = kz_buf_append_cstr(out, ", qop=\"auth\"");
  if (!rc && o->stale) rc = kz_buf_append_cstr(out, ", stale=true");
  if (rc) kz_buf_truncate(out, mark);
  return rc;
}

/* Argument checks shared by check_response and verify. */
static int check_args(const struct kz_sip_digest_auth *cred, const struct kz_sip_digest_check *chk,
                      struct kz_sip_digest_result *res) {
  if (!cred || !chk || !res) return KZ_EINVAL;
  if (cred->hdr != KZ_SIP_DIGEST_AUTHORIZATION && cred->hdr != KZ_SIP_DIGEST_PROXY_AUTHORIZATION)
    return KZ_EINVAL;
  if (!(cred->present & KZ_SIP_DIGEST_P_RESPONSE)) return KZ_EINVAL; /* not a parsed value */
  if (!chk->method.len || (!chk->ha1.len && !chk->password.p)) return KZ_EINVAL;
  if (chk->ha1.len && ((unsigned)chk->ha1_alg >= KZ_SIP_DIGEST_ALG_COUNT ||
                       kz_sip_digest_base_alg_(chk->ha1_alg) != kz_sip_digest_base_alg_(cred->alg)))
    return KZ_ENOTSUP;
  return 0;
}

/* The response check proper, arguments already validated. */
static int check_response(const struct kz_sip_digest_auth *cred,
                          const struct kz_sip_digest_check *chk, struct kz_sip_digest_result *res) {
  const char *alg = kz_sip_digest_alg_name(cred->alg);
  if (cred->qop == KZ_SIP_DIGEST_QOP_AUTH_INT)
    return result(res, KZ_SIP_DIGEST_MALFORMED, "qop=auth-int is not supported");
  if (kz_sip_digest_is_sess_(cred->alg) && (!cred->qop || !cred->cnonce.len))
    return result(res, KZ_SIP_DIGEST_MALFORMED, "%s needs qop=auth and a cnonce", alg);
  if (cred->userhash)
    return result(res, KZ_SIP_DIGEST_MALFORMED, "userhash is not supported");
  if (chk->uri.p && !kz_slice_eq(chk->uri, cred->uri))
    return result(res, KZ_SIP_DIGEST_MALFORMED, "uri does not match the Request-URI");
  size_t dlen = kz_sip_digest_size_(cred->alg);
  uint8_t got[32], want[32];
  if (!kz_sip_digest_unhex_(cred->response, got, dlen))
    return result(res, KZ_SIP_DIGEST_MALFORMED, "response must be %zu hex digits for %s",
                  2 * dlen, alg);

  struct kz_sip_digest_input in = {
      .alg = cred->alg,
      .username = cred->username,
      .realm = cred->realm,
      .password = chk->password,
      .ha1 = chk->ha1,
      .nonce = cred->nonce,
      .method = chk->method,
      .uri = cred->uri,
  };
  if (cred->qop) {
    in.qop = cred->qop_text;
    in.nc = cred->nc_text;
    in.cnonce = cred->cnonce;
  }
  char hex[KZ_SIP_DIGEST_HEX_MAX + 1];
  int n = kz_sip_digest_response(&in, hex);
  if (n < 0) return n; /* the caller's HA1 is not hex of the right length */
  kz_sip_digest_unhex_(kz_slice_make(hex, (size_t)n), want, dlen);
  if (!kz_sip_digest_ct_eq_(got, want, dlen))
    return result(res, KZ_SIP_DIGEST_WRONG_RESPONSE, "wrong response (password or user)");
  return result(res, KZ_SIP_DIGEST_OK, "ok");
}

int kz_sip_digest_check_response(const struct kz_sip_digest_auth *cred,
                                 const struct kz_sip_digest_check *chk,
                                 struct kz_sip_digest_result *res) {
  int rc = check_args(cred, chk, res);
  if (rc) return rc;
  return check_response(cred, chk, res);
}

static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

int kz_sip_digest_verify(struct kz_sip_digest_verifier *v, const struct kz_sip_digest_auth *cred,
                         const struct kz_sip_digest_check *chk, uint64_t now_ns,
                         struct kz_sip_digest_result *res) {
  if (!v) return KZ_EINVAL;
  int rc = check_args(cred, chk, res);
  if (rc) return rc;
  if (!chk->realm.len) return KZ_EINVAL;
  char sb[40];

  if (!(v->algs & KZ_SIP_DIGEST_ALG_BIT(cred->alg)))
    return result(res, KZ_SIP_DIGEST_MALFORMED, "algorithm %s is not accepted here",
                  kz_sip_digest_alg_name(cred->alg));
  if (!kz_slice_eq(cred->realm, chk->realm))
    return result(res, KZ_SIP_DIGEST_BAD_NONCE, "credentials are for another realm");

  uint8_t raw[NONCE_RAW], tag[NONCE_TAG];
  if (!kz_sip_digest_unhex_(cred->nonce, raw, NONCE_RAW))
    return result(res, KZ_SIP_DIGEST_BAD_NONCE, "nonce was not issued here");
  nonce_tag(v, raw, chk->realm, tag);
  if (!kz_sip_digest_ct_eq_(tag, raw + 16, NONCE_TAG))
    return result(res, KZ_SIP_DIGEST_BAD_NONCE, "nonce was not issued here for this realm");

  rc = check_response(cred, chk, res);
  if (rc || res->status != KZ_SIP_DIGEST_OK) return rc;

  uint64_t ts = kz_get_be64(raw), seq = kz_get_be64(raw + 8), now_s = now_ns / NS_PER_S;
  bool qop_offered = seq & NONCE_QOP_BIT;
  seq &= ~NONCE_QOP_BIT;
  if (ts > now_s) return result(res, KZ_SIP_DIGEST_STALE, "nonce is from the future");
  if (now_s - ts >= v->lifetime_s) {
    snprintf(sb, sizeof sb, "%llu", (unsigned long long)(now_s - ts));
    return result(res, KZ_SIP_DIGEST_STALE, "nonce expired (age %s s, lifetime %u s)", sb,
                  (unsigned)v->lifetime_s);
  }
  if (!cred->qop) {
    if (qop_offered)
      return result(res, KZ_SIP_DIGEST_MALFORMED, "qop=auth was offered but not used");
    return result(res, KZ_SIP_DIGEST_OK, "ok");
  }

  /* Nonce-count check (RFC 7616 §3.4): the count must grow per nonce. */
  if (cred->nc == 0) return result(res, KZ_SIP_DIGEST_MALFORMED, "nc must start at 00000001");
  struct nc_entry *set = v->table + (mix64(seq) & (v->nsets - 1)) * NC_WAYS, *victim = set;
  for (size_t i = 0; i < NC_WAYS; i++) {
    struct nc_entry *e = set + i;
    if (e->used && e->seq == seq) {
      if (cred->nc <= e->nc)
        return result(res, KZ_SIP_DIGEST_REPLAY, "nc %08x replayed (highest seen %08x)",
                      (unsigned)cred->nc, (unsigned)e->nc);
      e->nc = cred->nc;
      e->used = ++v->tick;
      return result(res, KZ_SIP_DIGEST_OK, "ok");
    }
    if (victim->used && (!e->used || e->used < victim->used)) victim = e;
  }
  if (seq <= v->evict_floor)
    return result(res, KZ_SIP_DIGEST_STALE, "nonce-count state for this nonce was evicted");
  if (victim->used && victim->seq > v->evict_floor) v->evict_floor = victim->seq;
  victim->seq = seq;
  victim->nc = cred->nc;
  victim->used = ++v->tick;
  return result(res, KZ_SIP_DIGEST_OK, "ok");
}
