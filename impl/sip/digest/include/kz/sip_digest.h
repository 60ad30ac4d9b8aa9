/* kz/sip_digest.h — SIP digest authentication (RFC 3261 §22, RFC 7616, RFC 8760): header parsing, a stateless-nonce verifier and a client. */
#ifndef KZ_SIP_DIGEST_H
#define KZ_SIP_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/buf.h"
#include "kz/prng.h"

/* Everything here is sans-I/O: time comes in as `now_ns` (the env's
 * monotonic clock, kz_env_now), randomness as bytes or a kz_prng the
 * caller owns, output goes into a kz_buf.  No function keeps global
 * state; the verifier and the client keep theirs in their own structs. */

/* Longest hex digest (SHA-256 and SHA-512/256: 64 hex digits). */
#define KZ_SIP_DIGEST_HEX_MAX 64
/* Size of every reason buffer, NUL included.  Reasons are printable
 * ASCII without CR/LF so they can go into a SIP reason phrase. */
#define KZ_SIP_DIGEST_REASON_MAX 128
/* Default number of nonce-count entries a verifier keeps. */
#define KZ_SIP_DIGEST_NC_SLOTS_DEFAULT 1024
/* Nonces a client remembers nonce counts for. */
#define KZ_SIP_DIGEST_CLIENT_SLOTS 8

/* Which header a value came from; it decides the grammar (challenge or
 * credentials) and the name used in reasons. */
enum kz_sip_digest_hdr {
  KZ_SIP_DIGEST_WWW_AUTHENTICATE = 0,
  KZ_SIP_DIGEST_PROXY_AUTHENTICATE,
  KZ_SIP_DIGEST_AUTHORIZATION,
  KZ_SIP_DIGEST_PROXY_AUTHORIZATION,
};

/* The algorithms kz implements, weakest first.  An absent algorithm
 * parameter means MD5. */
enum kz_sip_digest_alg {
  KZ_SIP_DIGEST_MD5 = 0,
  KZ_SIP_DIGEST_MD5_SESS,
  KZ_SIP_DIGEST_SHA256,
  KZ_SIP_DIGEST_SHA256_SESS,
  KZ_SIP_DIGEST_SHA512_256,
  KZ_SIP_DIGEST_SHA512_256_SESS,
  KZ_SIP_DIGEST_ALG_COUNT
};
#define KZ_SIP_DIGEST_ALG_BIT(a) (1u << (unsigned)(a))
#define KZ_SIP_DIGEST_ALG_ALL ((1u << KZ_SIP_DIGEST_ALG_COUNT) - 1u)

/* qop bits: a challenge may offer both, credentials carry one. */
#define KZ_SIP_DIGEST_QOP_AUTH 1u
#define KZ_SIP_DIGEST_QOP_AUTH_INT 2u

/* Bits of kz_sip_digest_auth.present, one per known parameter seen. */
enum {
  KZ_SIP_DIGEST_P_REALM = 1u << 0,
  KZ_SIP_DIGEST_P_NONCE = 1u << 1,
  KZ_SIP_DIGEST_P_OPAQUE = 1u << 2,
  KZ_SIP_DIGEST_P_STALE = 1u << 3,
  KZ_SIP_DIGEST_P_ALGORITHM = 1u << 4,
  KZ_SIP_DIGEST_P_QOP = 1u << 5,
  KZ_SIP_DIGEST_P_USERNAME = 1u << 6,
  KZ_SIP_DIGEST_P_URI = 1u << 7,
  KZ_SIP_DIGEST_P_RESPONSE = 1u << 8,
  KZ_SIP_DIGEST_P_CNONCE = 1u << 9,
  KZ_SIP_DIGEST_P_NC = 1u << 10,
  KZ_SIP_DIGEST_P_USERHASH = 1u << 11,
  KZ_SIP_DIGEST_P_DOMAIN = 1u << 12,
};

/* A parsed challenge or credentials value.  The slices hold the
 * unquoted, unescaped values: they point into the parsed header value
 * (which must outlive this struct) or, when a value had backslash
 * escapes or line folds, into storage owned by this struct.  An absent
 * parameter is KZ_SLICE_NULL and its `present` bit is clear. */
struct kz_sip_digest_auth {
  enum kz_sip_digest_hdr hdr;
  unsigned present;            /* KZ_SIP_DIGEST_P_* bits */
  enum kz_sip_digest_alg alg;  /* MD5 when the parameter is absent */
  unsigned qop;                /* challenge: offered bits; credentials: the one used; 0 = none */
  bool stale;
  bool userhash;
  uint32_t nc;                 /* credentials' nonce count */
  struct kz_slice realm, nonce, opaque, domain;
  struct kz_slice username, uri, response, cnonce;
  struct kz_slice nc_text;     /* the 8 hex digits exactly as sent (hashed as-is) */
  struct kz_slice qop_text;    /* credentials' qop exactly as sent (hashed as-is) */
  char reason[KZ_SIP_DIGEST_REASON_MAX]; /* why parsing failed; "" on success */
  char *store_;                /* private: unescaped values */
  size_t store_used_;          /* private */
};

/* Parses one header value: a challenge (WWW-/Proxy-Authenticate) or
 * credentials (Authorization / Proxy-Authorization), scheme "Digest",
 * comma-separated auth-params, names case-insensitive, values quoted
 * (with backslash escapes and LWS folds) or tokens.  Unknown parameters
 * are skipped; a repeated parameter is an error.  A challenge needs realm
 * and nonce; credentials need username, realm, nonce, uri and response,
 * plus cnonce and nc when qop is present.
 * `*out` is always reset first; call kz_sip_digest_auth_clear on it after
 * use whatever this returned.  Returns 0, KZ_EPROTO (malformed; out->reason
 * says why, e.g. "Authorization: duplicate parameter 'nonce'"), KZ_ENOTSUP
 * (another scheme or an algorithm kz does not implement; reason says
 * which), KZ_EINVAL (bad hdr) or KZ_ENOMEM. */
int kz_sip_digest_parse(struct kz_sip_digest_auth *out, enum kz_sip_digest_hdr hdr,
                        struct kz_slice value);

/* Frees what a parse stored and zeroes the struct.  Safe on a zeroed or
 * already-cleared struct. */
void kz_sip_digest_auth_clear(struct kz_sip_digest_auth *a);

/* Header name ("WWW-Authenticate"...), algorithm token ("SHA-256-sess")
 * and status name ("STALE"); static strings, never NULL. */
const char *kz_sip_digest_hdr_name(enum kz_sip_digest_hdr hdr);
const char *kz_sip_digest_alg_name(enum kz_sip_digest_alg alg);

/* ------------------------------------------------------------------ */
/* Digest computation                                                  */

/* Inputs of one response computation (RFC 7616 §3.4.1).  Either
 * `password` or `ha1` gives the secret: `ha1` (when non-empty) is the hex
 * H(username ":" realm ":" password) of the algorithm's hash, without the
 * -sess step.  `qop` empty means the RFC 2069 form without nc/cnonce. */
struct kz_sip_digest_input {
  enum kz_sip_digest_alg alg;
  struct kz_slice username, realm, password, ha1;
  struct kz_slice nonce, cnonce, nc, qop;
  struct kz_slice method, uri;
};

/* Writes the lowercase hex response digest and a NUL into `out` and
 * returns its length (32 or 64), or KZ_EINVAL (bad alg, ha1 of the wrong
 * length, a -sess algorithm without cnonce). */
int kz_sip_digest_response(const struct kz_sip_digest_input *in,
                           char out[KZ_SIP_DIGEST_HEX_MAX + 1]);

/* Writes hex H(username ":" realm ":" password) for alg's hash (what a
 * store keeps instead of the password) and returns its length, or
 * KZ_EINVAL. */
int kz_sip_digest_ha1(enum kz_sip_digest_alg alg, struct kz_slice username,
                      struct kz_slice realm, struct kz_slice password,
                      char out[KZ_SIP_DIGEST_HEX_MAX + 1]);

/* ------------------------------------------------------------------ */
/* Server side                                                         */

enum kz_sip_digest_status {
  KZ_SIP_DIGEST_OK = 0,
  KZ_SIP_DIGEST_STALE,          /* right password, old nonce: challenge again with stale=true */
  KZ_SIP_DIGEST_BAD_NONCE,      /* not a nonce this verifier issued for this realm */
  KZ_SIP_DIGEST_WRONG_RESPONSE, /* wrong password (or user) */
  KZ_SIP_DIGEST_REPLAY,         /* nc not above the highest seen for this nonce */
  KZ_SIP_DIGEST_MALFORMED,      /* unusable credentials (bad hex, unsupported qop...) */
};

const char *kz_sip_digest_status_name(enum kz_sip_digest_status st);

struct kz_sip_digest_result {
  enum kz_sip_digest_status status;
  char reason[KZ_SIP_DIGEST_REASON_MAX];
};

struct kz_sip_digest_verifier_cfg {
  const uint8_t *secret;     /* 16..64 bytes from the env's PRNG; copied */
  size_t secret_len;
  uint32_t nonce_lifetime_s; /* > 0: older nonces are STALE */
  uint32_t nc_slots;         /* nonce-count entries; 0 = KZ_SIP_DIGEST_NC_SLOTS_DEFAULT */
  unsigned algs;             /* accepted KZ_SIP_DIGEST_ALG_BIT set; 0 = all */
};

/* A verifier: issues challenges with stateless nonces (timestamp,
 * sequence number, whether qop was offered, and a truncated HMAC-SHA256
 * under the secret, binding the realm) and checks credentials.  It remembers the highest nonce
 * count of recently used nonces in a bounded, set-associative LRU table
 * (content-indexed, deterministic).  Give each instance its own secret:
 * nonce-count state is per instance. */
struct kz_sip_digest_verifier;

/* Creates a verifier; the caller owns it (kz_sip_digest_verifier_free).
 * Returns 0, KZ_EINVAL (secret length, zero lifetime, empty alg set) or
 * KZ_ENOMEM. */
int kz_sip_digest_verifier_new(struct kz_sip_digest_verifier **out,
                               const struct kz_sip_digest_verifier_cfg *cfg);
/* Frees a verifier and wipes its secret.  NULL is a no-op. */
void kz_sip_digest_verifier_free(struct kz_sip_digest_verifier *v);

struct kz_sip_digest_challenge_opts {
  struct kz_slice realm;     /* required; no CR/LF */
  enum kz_sip_digest_alg alg;
  bool qop_auth;             /* offer qop="auth" (required for -sess) */
  bool stale;                /* add stale=true (after a STALE result) */
  struct kz_slice opaque;    /* optional, echoed back by clients; no CR/LF */
};

/* Appends one challenge value ("Digest realm=..., nonce=..., ...") for a
 * WWW-Authenticate or Proxy-Authenticate header to `out`, with a fresh
 * nonce.  For RFC 8760 multiple challenges call it once per algorithm,
 * most preferred first.  Returns 0, KZ_EINVAL (empty realm, CR/LF in
 * realm or opaque, algorithm not accepted by this verifier, -sess without
 * qop) or KZ_ENOMEM; `out` is unchanged on error. */
int kz_sip_digest_challenge(struct kz_sip_digest_verifier *v, struct kz_buf *out,
                            const struct kz_sip_digest_challenge_opts *o,
                            uint64_t now_ns);

/* What the verifier checks credentials against.  `method` and `realm` are
 * required.  Give the password, or the hex HA1 (kz_sip_digest_ha1) with
 * `ha1_alg` naming its hash (the -sess flag is ignored).  `uri`, when
 * non-NULL, must equal the credentials' uri byte for byte. */
struct kz_sip_digest_check {
  struct kz_slice method, realm, uri;
  struct kz_slice password;
  struct kz_slice ha1;
  enum kz_sip_digest_alg ha1_alg;
};

/* Checks only the response digest of parsed credentials: no nonce,
 * realm or algorithm-policy checks (chk->realm is not used; the
 * credentials' realm is hashed).  Fills res with OK, WRONG_RESPONSE or
 * MALFORMED and a reason.
 * Returns 0, KZ_EINVAL (not credentials, no method, no password or HA1)
 * or KZ_ENOTSUP (the HA1 given is for another hash than the credentials'
 * algorithm). */
int kz_sip_digest_check_response(const struct kz_sip_digest_auth *cred,
                                 const struct kz_sip_digest_check *chk,
                                 struct kz_sip_digest_result *res);

/* Verifies parsed credentials at time `now_ns`: the realm, the nonce's
 * MAC (BAD_NONCE when forged or issued for another realm), the response
 * (WRONG_RESPONSE), the nonce's age (STALE) and, with qop, the nonce
 * count (REPLAY when not above the highest seen; STALE when this nonce's
 * entry was evicted from the table).  Credentials without qop for a nonce
 * whose challenge offered qop=auth are MALFORMED (RFC 7616 §3.4: they
 * carry no nonce count, so could be replayed).  Only a fully valid
 * request updates the nonce-count table.  Returns 0 with `res` filled, or the errors of
 * kz_sip_digest_check_response. */
int kz_sip_digest_verify(struct kz_sip_digest_verifier *v,
                         const struct kz_sip_digest_auth *cred,
                         const struct kz_sip_digest_check *chk, uint64_t now_ns,
                         struct kz_sip_digest_result *res);

/* ------------------------------------------------------------------ */
/* Client side                                                         */

/* Nonce counts a client has used, per (realm, nonce), in a small LRU.
 * Zero-initialise or kz_sip_digest_client_init before use; needs no
 * freeing. */
struct kz_sip_digest_client {
  struct {
    uint64_t key;  /* content hash of realm and nonce */
    uint64_t used; /* LRU stamp; 0 = empty */
    uint32_t nc;
  } slot[KZ_SIP_DIGEST_CLIENT_SLOTS];
  uint64_t tick;
};

void kz_sip_digest_client_init(struct kz_sip_digest_client *c);

struct kz_sip_digest_answer_opts {
  const struct kz_slice *challenges; /* header values of one realm's challenges */
  size_t nchallenges;
  bool proxy;                        /* Proxy-Authenticate (only changes reasons) */
  struct kz_slice username, password, method, uri;
  struct kz_prng *prng;              /* draws the cnonce */
};

/* Answers a challenge: picks, among the challenges that parse and use an
 * algorithm and qop kz implements, the strongest algorithm (SHA-512/256
 * over SHA-256 over MD5; the topmost among equals — RFC 8760 lets local
 * policy override "topmost", and strongest resists a downgrade by
 * reordering), uses qop=auth when offered, and appends the
 * Authorization / Proxy-Authorization value to `out`, counting nc per
 * nonce in `c`.  Returns 0, KZ_EPROTO (no challenge parsed), KZ_ENOTSUP
 * (none usable), KZ_EINVAL (missing argument, CR/LF in an argument),
 * KZ_ERANGE (nonce count exhausted) or KZ_ENOMEM; on error `out` and `c`
 * are unchanged and `reason` (may be NULL) says why. */
int kz_sip_digest_answer(struct kz_sip_digest_client *c, struct kz_buf *out,
                         const struct kz_sip_digest_answer_opts *o, char *reason,
                         size_t reason_len);

#endif /* KZ_SIP_DIGEST_H */
