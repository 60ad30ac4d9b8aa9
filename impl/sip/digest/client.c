/* client.c — client side of digest auth: pick the best challenge (RFC 8760), answer it, count nc per nonce. */
#include <stdio.h>
#include <string.h>

#include "digest_int.h"
#include "kz/error.h"

void kz_sip_digest_client_init(struct kz_sip_digest_client *c) { memset(c, 0, sizeof *c); }

static void set_reason(char *reason, size_t reason_len, const char *text) {
  if (reason && reason_len) snprintf(reason, reason_len, "%s", text);
}

/* Why a parsed challenge cannot be answered, or NULL when it can. */
static const char *unusable(const struct kz_sip_digest_auth *a) {
  if (a->qop && !(a->qop & KZ_SIP_DIGEST_QOP_AUTH)) return "only qop=auth-int offered";
  if ((a->present & KZ_SIP_DIGEST_P_QOP) && !a->qop) return "no known qop offered";
  if (!a->qop && kz_sip_digest_is_sess_(a->alg)) return "-sess algorithm without qop";
  /* Values echoed back must be printable in a header. */
  if (kz_sip_digest_has_crlf_(a->realm) || kz_sip_digest_has_crlf_(a->nonce) ||
      kz_sip_digest_has_crlf_(a->opaque))
    return "challenge value holds CR, LF or NUL";
  return NULL;
}

int kz_sip_digest_answer(struct kz_sip_digest_client *c, struct kz_buf *out,
                         const struct kz_sip_digest_answer_opts *o, char *reason,
                         size_t reason_len) {
  set_reason(reason, reason_len, "");
  if (!c || !out || !o || !o->challenges || !o->nchallenges || !o->prng || !o->method.len ||
      !o->uri.len || !o->username.p || !o->password.p || kz_sip_digest_has_crlf_(o->username) ||
      kz_sip_digest_has_crlf_(o->method) || kz_sip_digest_has_crlf_(o->uri)) {
    set_reason(reason, reason_len, "invalid argument");
    return KZ_EINVAL;
  }
  enum kz_sip_digest_hdr hdr =
      o->proxy ? KZ_SIP_DIGEST_PROXY_AUTHENTICATE : KZ_SIP_DIGEST_WWW_AUTHENTICATE;

  struct kz_sip_digest_auth best, cur;
  memset(&best, 0, sizeof best);
  bool have = false;
  int fail_rc = 0;
  for (size_t i = 0; i < o->nchallenges; i++) {
    int rc = kz_sip_digest_parse(&cur, hdr, o->challenges[i]);
    const char *why = rc ? cur.reason : unusable(&cur);
    if (rc == KZ_ENOMEM) {
      kz_sip_digest_auth_clear(&best);
      set_reason(reason, reason_len, "out of memory");
      return rc;
    }
    if (why) {
      /* Keep the first reason, but an unsupported-but-valid challenge
       * (ENOTSUP) says more than a broken one. */
      int this_rc = rc == KZ_EPROTO ? KZ_EPROTO : KZ_ENOTSUP;
      if (!fail_rc || (fail_rc == KZ_EPROTO && this_rc == KZ_ENOTSUP)) {
        fail_rc = this_rc;
        set_reason(reason, reason_len, why);
      }
      kz_sip_digest_auth_clear(&cur);
      continue;
    }
    /* Strongest hash wins; among equals the topmost (RFC 8760 §2.4). */
    if (!have || kz_sip_digest_base_alg_(cur.alg) > kz_sip_digest_base_alg_(best.alg)) {
      kz_sip_digest_auth_clear(&best);
      best = cur;
      have = true;
    } else {
      kz_sip_digest_auth_clear(&cur);
    }
  }
  if (!have) return fail_rc;

  /* Nonce count for this (realm, nonce): found, or a fresh/LRU slot. */
  uint64_t key = kz_hash64(best.nonce.p, best.nonce.len,
                           kz_hash64(best.realm.p, best.realm.len, 0x6b7a646967657374ull));
  size_t slot = 0;
  bool found = false;
  for (size_t i = 0; i < KZ_SIP_DIGEST_CLIENT_SLOTS; i++) {
    if (c->slot[i].used && c->slot[i].key == key) {
      slot = i;
      found = true;
      break;
    }
    if (c->slot[slot].used && (!c->slot[i].used || c->slot[i].used < c->slot[slot].used))
      slot = i;
  }
  uint32_t nc = found ? c->slot[slot].nc + 1 : 1;
  if (found && c->slot[slot].nc == UINT32_MAX) {
    kz_sip_digest_auth_clear(&best);
    set_reason(reason, reason_len, "nonce count exhausted");
    return KZ_ERANGE;
  }

  char cnonce[16], nctext[9], resp[KZ_SIP_DIGEST_HEX_MAX + 1];
  struct kz_sip_digest_input in = {
      .alg = best.alg,
      .username = o->username,
      .realm = best.realm,
      .password = o->password,
      .nonce = best.nonce,
      .method = o->method,
      .uri = o->uri,
  };
  if (best.qop) {
    kz_prng_hex(o->prng, cnonce, sizeof cnonce);
    snprintf(nctext, sizeof nctext, "%08x", (unsigned)nc);
    in.qop = KZ_SLICE_LIT("auth");
    in.cnonce = kz_slice_make(cnonce, sizeof cnonce);
    in.nc = kz_slice_make(nctext, 8);
  }
  int n = kz_sip_digest_response(&in, resp);

  size_t mark = out->len;
  int rc = n < 0 ? n : kz_buf_append_cstr(out, "Digest username=");
  if (!rc) rc = kz_sip_digest_append_quoted_(out, o->username);
  if (!rc) rc = kz_buf_append_cstr(out, ", realm=");
  if (!rc) rc = kz_sip_digest_append_quoted_(out, best.realm);
  if (!rc) rc = kz_buf_append_cstr(out, ", nonce=");
  if (!rc) rc = kz_sip_digest_append_quoted_(out, best.nonce);
  if (!rc) rc = kz_buf_append_cstr(out, ", uri=");
  if (!rc) rc = kz_sip_digest_append_quoted_(out, o->uri);
  if (!rc) rc = kz_buf_printf(out, ", response=\"%s\"", resp);
  if (!rc && (best.present & KZ_SIP_DIGEST_P_ALGORITHM))
    rc = kz_buf_printf(out, ", algorithm=%s", kz_sip_digest_alg_name(best.alg));
  if (!rc && best.qop)
    rc = kz_buf_printf(out, ", cnonce=\"%.*s\"", (int)sizeof cnonce, cnonce);
  if (!rc && (best.present & KZ_SIP_DIGEST_P_OPAQUE)) {
    rc = kz_buf_append_cstr(out, ", opaque=");
    if (!rc) rc = kz_sip_digest_append_quoted_(out, best.opaque);
  }
  if (!rc && best.qop) rc = kz_buf_printf(out, ", qop=auth, nc=%s", nctext);
  kz_sip_digest_auth_clear(&best);
  if (rc) {
    kz_buf_truncate(out, mark);
    set_reason(reason, reason_len, rc == KZ_ENOMEM ? "out of memory" : "cannot compute response");
    return rc;
  }
  if (in.qop.len) { /* without qop there is no count to keep */
    c->slot[slot].key = key;
    c->slot[slot].used = ++c->tick;
    c->slot[slot].nc = nc;
  }
  return 0;
}
