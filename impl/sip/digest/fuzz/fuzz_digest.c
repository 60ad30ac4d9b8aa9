/* fuzz_digest.c — libFuzzer target: digest header parsing (challenges and credentials), answering and verifying what parsed. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "kz/buf.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sip_digest.h"

/* Input: one mode byte, then the header value.  Mode bits 0-1 pick the
 * header kind; bit 2 also uses the value as a realm for a server-built
 * challenge.  Oracles: whatever the client writes must parse back and
 * check OK with the same password; a challenge the verifier builds must
 * parse and lead to an OK verification. */
static const uint8_t secret[32] = "kz-fuzz-secret-0123456789abcdef";
static const uint64_t T0 = 1000ull * 1000000000ull;

static void answer_and_check(struct kz_slice chal, bool proxy, struct kz_sip_digest_verifier *v,
                             struct kz_slice realm) {
  struct kz_sip_digest_client cl;
  struct kz_prng g;
  struct kz_buf out;
  char reason[KZ_SIP_DIGEST_REASON_MAX];
  kz_sip_digest_client_init(&cl);
  kz_prng_seed(&g, 7);
  kz_buf_init(&out);
  struct kz_sip_digest_answer_opts o = {
      .challenges = &chal, .nchallenges = 1, .proxy = proxy,
      .username = KZ_SLICE_LIT("al\"ice"), .password = KZ_SLICE_LIT("pw"),
      .method = KZ_SLICE_LIT("REGISTER"), .uri = KZ_SLICE_LIT("sip:example.com"),
      .prng = &g};
  int rc = kz_sip_digest_answer(&cl, &out, &o, reason, sizeof reason);
  if (rc == 0) {
    struct kz_sip_digest_auth cred;
    rc = kz_sip_digest_parse(&cred, proxy ? KZ_SIP_DIGEST_PROXY_AUTHORIZATION
                                          : KZ_SIP_DIGEST_AUTHORIZATION,
                             kz_buf_slice(&out));
    assert(rc == 0);
    struct kz_sip_digest_check chk = {.method = KZ_SLICE_LIT("REGISTER"),
                                      .realm = cred.realm,
                                      .uri = KZ_SLICE_LIT("sip:example.com"),
                                      .password = KZ_SLICE_LIT("pw")};
    struct kz_sip_digest_result res;
    rc = kz_sip_digest_check_response(&cred, &chk, &res);
    assert(rc == 0 && res.status == KZ_SIP_DIGEST_OK);
    if (v) {
      chk.realm = realm;
      rc = kz_sip_digest_verify(v, &cred, &chk, T0 + 1, &res);
      assert(rc == 0 && res.status == KZ_SIP_DIGEST_OK);
    }
    kz_sip_digest_auth_clear(&cred);
  }
  kz_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t mode = data[0];
  struct kz_slice val = kz_slice_make(data + 1, size - 1);
  enum kz_sip_digest_hdr hdr = (enum kz_sip_digest_hdr)(mode & 3);

  struct kz_sip_digest_verifier *v = NULL;
  struct kz_sip_digest_verifier_cfg cfg = {
      .secret = secret, .secret_len = sizeof secret, .nonce_lifetime_s = 30, .nc_slots = 8};
  if (kz_sip_digest_verifier_new(&v, &cfg)) return 0;

  struct kz_sip_digest_auth a;
  int rc = kz_sip_digest_parse(&a, hdr, val);
  assert(rc == 0 || a.reason[0]);
  assert(!strchr(a.reason, '\r') && !strchr(a.reason, '\n'));
  if (rc == 0 && hdr <= KZ_SIP_DIGEST_PROXY_AUTHENTICATE) {
    answer_and_check(val, hdr == KZ_SIP_DIGEST_PROXY_AUTHENTICATE, NULL, KZ_SLICE_NULL);
  } else if (rc == 0) {
    struct kz_sip_digest_check chk = {.method = KZ_SLICE_LIT("INVITE"),
                                      .realm = KZ_SLICE_LIT("example.com"),
                                      .password = KZ_SLICE_LIT("secret")};
    struct kz_sip_digest_result res;
    if (kz_sip_digest_verify(v, &a, &chk, T0, &res) == 0)
      assert(res.status != KZ_SIP_DIGEST_OK); /* no forged nonce may pass */
    chk.realm = a.realm;
    if (kz_sip_digest_check_response(&a, &chk, &res) == 0)
      assert(res.status <= KZ_SIP_DIGEST_MALFORMED);
  }
  kz_sip_digest_auth_clear(&a);

  /* The value as a realm of a server-built challenge. */
  if ((mode & 4) && val.len) {
    struct kz_buf ch;
    kz_buf_init(&ch);
    struct kz_sip_digest_challenge_opts co = {
        .realm = val, .alg = (enum kz_sip_digest_alg)((mode >> 3) % KZ_SIP_DIGEST_ALG_COUNT),
        .qop_auth = (mode & 0x80) || ((mode >> 3) & 1), .stale = mode & 0x40,
        .opaque = KZ_SLICE_LIT("op\\aque")};
    if (kz_sip_digest_challenge(v, &ch, &co, T0) == 0) {
      rc = kz_sip_digest_parse(&a, KZ_SIP_DIGEST_WWW_AUTHENTICATE, kz_buf_slice(&ch));
      assert(rc == 0);
      assert(kz_slice_eq(a.realm, val));
      kz_sip_digest_auth_clear(&a);
      answer_and_check(kz_buf_slice(&ch), false, v, val);
    }
    kz_buf_free(&ch);
  }
  kz_sip_digest_verifier_free(v);
  return 0;
}
