/* digest_test.c — Check suite for kz_sip_digest: RFC vectors, parser errors, verifier (stale/forged/replay), client, allocation failures. */
#include <stdio.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sip_digest.h"
#include "kz_test.h"

#define S(lit) KZ_SLICE_LIT(lit)
#define NS 1000000000ull
static const uint64_t T0 = 1000 * NS;
static const uint8_t SECRET[32] = "0123456789abcdef0123456789abcdef";
static const uint8_t SECRET2[32] = "fedcba9876543210fedcba9876543210";

/* ------------------------------------------------------------------ */
/* helpers                                                             */

static struct kz_sip_digest_verifier *mkv(const uint8_t *secret, uint32_t lifetime,
                                          uint32_t slots, unsigned algs) {
  struct kz_sip_digest_verifier *v = NULL;
  struct kz_sip_digest_verifier_cfg cfg = {.secret = secret, .secret_len = 32,
                                           .nonce_lifetime_s = lifetime, .nc_slots = slots,
                                           .algs = algs};
  ck_assert_int_eq(kz_sip_digest_verifier_new(&v, &cfg), 0);
  ck_assert_ptr_nonnull(v);
  return v;
}

/* Replaces *b with one challenge from v. */
static void chal(struct kz_sip_digest_verifier *v, struct kz_buf *b, const char *realm,
                 enum kz_sip_digest_alg alg, bool qop, uint64_t now) {
  struct kz_sip_digest_challenge_opts o = {.realm = kz_slice_cstr(realm), .alg = alg,
                                           .qop_auth = qop};
  kz_buf_reset(b);
  ck_assert_int_eq(kz_sip_digest_challenge(v, b, &o, now), 0);
}

/* Replaces *out with the client's answer to one challenge. */
static int answer1(struct kz_sip_digest_client *c, struct kz_prng *g, struct kz_slice ch,
                   const char *pass, struct kz_buf *out) {
  struct kz_sip_digest_answer_opts o = {.challenges = &ch, .nchallenges = 1,
                                        .username = S("alice"), .password = kz_slice_cstr(pass),
                                        .method = S("REGISTER"), .uri = S("sip:example.com"),
                                        .prng = g};
  char reason[KZ_SIP_DIGEST_REASON_MAX];
  kz_buf_reset(out);
  return kz_sip_digest_answer(c, out, &o, reason, sizeof reason);
}

/* Parses credentials and verifies them; returns the status and copies
 * the reason into `why` when given. */
static enum kz_sip_digest_status verify_str(struct kz_sip_digest_verifier *v, struct kz_slice hv,
                                            const char *realm, const char *pass, uint64_t now,
                                            char *why) {
  struct kz_sip_digest_auth a;
  ck_assert_msg(kz_sip_digest_parse(&a, KZ_SIP_DIGEST_AUTHORIZATION, hv) == 0, "%s", a.reason);
  struct kz_sip_digest_check chk = {.method = S("REGISTER"), .realm = kz_slice_cstr(realm),
                                    .uri = S("sip:example.com"),
                                    .password = kz_slice_cstr(pass)};
  struct kz_sip_digest_result res;
  ck_assert_int_eq(kz_sip_digest_verify(v, &a, &chk, now, &res), 0);
  kz_sip_digest_auth_clear(&a);
  if (why) strcpy(why, res.reason);
  ck_assert(res.reason[0] != '\0');
  return res.status;
}

/* Substitutes `to` for the first `from` in `src` into dst. */
static void subst(char *dst, size_t n, const char *src, const char *from, const char *to) {
  const char *p = strstr(src, from);
  ck_assert_ptr_nonnull(p);
  snprintf(dst, n, "%.*s%s%s", (int)(p - src), src, to, p + strlen(from));
}

/* ------------------------------------------------------------------ */
/* RFC vectors                                                         */

static const char RFC2617_AUTH[] =
    "Digest username=\"Mufasa\",\r\n"
    "                 realm=\"testrealm@host.com\",\r\n"
    "                 nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n"
    "                 uri=\"/dir/index.html\",\r\n"
    "                 qop=auth,\r\n"
    "                 nc=00000001,\r\n"
    "                 cnonce=\"0a4f113b\",\r\n"
    "                 response=\"6629fae49393a05397450978507c4ef1\",\r\n"
    "                 opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";

START_TEST(rfc2617_md5) {
  struct kz_sip_digest_auth a;
  ck_assert_int_eq(kz_sip_digest_parse(&a, KZ_SIP_DIGEST_AUTHORIZATION, S(RFC2617_AUTH)), 0);
  ck_assert_str_eq(a.reason, "");
  ck_assert(kz_slice_eq_cstr(a.username, "Mufasa"));
  ck_assert(kz_slice_eq_cstr(a.realm, "testrealm@host.com"));
  ck_assert(kz_slice_eq_cstr(a.cnonce, "0a4f113b"));
  ck_assert(kz_slice_eq_cstr(a.opaque, "5ccc069c403ebaf9f0171e9517f40e41"));
  ck_assert_int_eq(a.alg, KZ_SIP_DIGEST_MD5);
  ck_assert_uint_eq(a.qop, KZ_SIP_DIGEST_QOP_AUTH);
  ck_assert_uint_eq(a.nc, 1);

  struct kz_sip_digest_input in = {.alg = KZ_SIP_DIGEST_MD5, .username = a.username,
                                   .realm = a.realm, .password = S("Circle Of Life"),
                                   .nonce = a.nonce, .cnonce = a.cnonce, .nc = a.nc_text,
                                   .qop = S("auth"), .method = S("GET"), .uri = a.uri};
  char hex[KZ_SIP_DIGEST_HEX_MAX + 1];
  ck_assert_int_eq(kz_sip_digest_response(&in, hex), 32);
  ck_assert_str_eq(hex, "6629fae49393a05397450978507c4ef1");

  struct kz_sip_digest_check chk = {.method = S("GET"), .realm = a.realm,
                                    .password = S("Circle Of Life")};
  struct kz_sip_digest_result res;
  ck_assert_int_eq(kz_sip_digest_check_response(&a, &chk, &res), 0);
  ck_assert_int_eq(res.status, KZ_SIP_DIGEST_OK);
  /* The same with the stored HA1 instead of the password. */
  char ha1[KZ_SIP_DIGEST_HEX_MAX + 1];
  ck_assert_int_eq(kz_sip_digest_ha1(KZ_SIP_DIGEST_MD5, S("Mufasa"), S("testrealm@host.com"),
                                     S("Circle Of Life"), ha1), 32);
  chk.password = KZ_SLICE_NULL;
  chk.ha1 = kz_slice_cstr(ha1);
  chk.ha1_alg = KZ_SIP_DIGEST_MD5;
  ck_assert_int_eq(kz_sip_digest_check_response(&a, &chk, &res), 0);
  ck_assert_int_eq(res.status, KZ_SIP_DIGEST_OK);
  /* RFC 7616's spelling of the password is not RFC 2617's. */
  chk.ha1 = KZ_SLICE_NULL;
  chk.password = S("Circle of Life");
  ck_assert_int_eq(kz_sip_digest_check_response(&a, &chk, &res), 0);
  ck_assert_int_eq(res.status, KZ_SIP_DIGEST_WRONG_RESPONSE);
  /* A different method changes HA2. */
  chk.password = S("Circle Of Life");
  chk.method = S("POST");
  ck_assert_int_eq(kz_sip_digest_check_response(&a, &chk, &res), 0);
  ck_assert_int_eq(res.status, KZ_SIP_DIGEST_WRONG_RESPONSE);
  kz_sip_digest_auth_clear(&a);
}
END_TEST

static const char RFC7616_MD5[] =
    "Digest username=\"Mufasa\",\r\n"
    "    realm=\"http-auth@example.org\",\r\n"
    "    uri=\"/dir/index.html\",\r\n"
    "    algorithm=MD5,\r\n"
    "    nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n"
    "    nc=00000001,\r\n"
    "    cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\",\r\n"
    "    qop=auth,\r\n"
    "    response=\"8ca523f5e9506fed4657c9700eebdbec\",\r\n"
    "    opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";

static const char RFC7616_SHA256[] =
    "Digest username=\"Mufasa\",\r\n"
    "    realm=\"http-auth@example.org\",\r\n"
    "    uri=\"/dir/index.html\",\r\n"
    "    algorithm=SHA-256,\r\n"
    "    nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n"
    "    nc=00000001,\r\n"
    "    cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\",\r\n"
    "    qop=auth,\r\n"
    "    response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\",\r\n"
    "    opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";

static void check_rfc7616(const char *hv, enum kz_sip_digest_alg alg, const char *expect) {
  struct kz_sip_digest_auth a;
  ck_assert_int_eq(kz_sip_digest_parse(&a, KZ_SIP_DIGEST_AUTHORIZATION, kz_slice_cstr(hv)), 0);
  ck_assert_int_eq(a.alg, alg);
  ck_assert(kz_slice_eq_cstr(a.response, expect));
  struct kz_sip_digest_input in = {.alg = alg, .username = a.username, .realm = a.realm,
                                   .password = S("Circle of Life"), .nonce = a.nonce,
                                   .cnonce = a.cnonce, .nc = a.nc_text, .qop = S("auth"),
                                   .method = S("GET"), .uri = a.uri};
  char hex[KZ_SIP_DIGEST_HEX_MAX + 1];
  ck_assert_int_eq(kz_sip_digest_response(&in, hex), (int)strlen(expect));
  ck_assert_str_eq(hex, expect);
  struct kz_sip_digest_check chk = {.method = S("GET"), .realm = a.realm,
                                    .uri = S("/dir/index.html"),
                                    .password = S("Circle of Life")};
  struct kz_sip_digest_result res;
  ck_assert_int_eq(kz_sip_digest_check_response(&a, &chk, &res), 0);
  ck_assert_int_eq(res.status, KZ_SIP_DIGEST_OK);
  chk.password = S("Circle Of Life");
  ck_assert_int_eq(kz_sip_digest_check_response(&a, &chk, &res), 0);
  ck_assert_int_eq(res.status, KZ_SIP_DIGEST_WRONG_RESPONSE);
  kz_sip_digest_auth_clear(&a);
}

START_TEST(rfc7616_md5) { check_rfc7616(RFC7616_MD5, KZ_SIP_DIGEST_MD5, "8ca523f5e9506fed4657c9700eebdbec"); }
END_TEST

START_TEST(rfc7616_sha256) {
  check_rfc7616(RFC7616_SHA256, KZ_SIP_DIGEST_SHA256,
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
}
END_TEST

/* RFC 7616 §3.9.1's two challenges, SHA-256 first. */
static const char RFC7616_CHAL_SHA256[] =
    "Digest\r\n"
    "    realm=\"http-auth@example.org\",\r\n"
    "    qop=\"auth, auth-int\",\r\n"
    "    algorithm=SHA-256,\r\n"
    "    nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n"
    "    opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
static const char RFC7616_CHAL_MD5[] =
    "Digest\r\n"
    "    realm=\"http-auth@example.org\",\r\n"
    "    qop=\"auth, auth-int\",\r\n"
    "    algorithm=MD5,\r\n"
    "    nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n"
    "    opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";

START_TEST(rfc7616_challenges) {
  struct kz_sip_digest_auth a;
  ck_assert_int_eq(kz_sip_digest_parse(&a, KZ_SIP_DIGEST_WWW_AUTHENTICATE, S(RFC7616_CHAL_SHA256)), 0);
  ck_assert_int_eq(a.alg, KZ_SIP_DIGEST_SHA256);
  ck_assert_uint_eq(a.qop, KZ_SIP_DIGEST_QOP_AUTH | KZ_SIP_DIGEST_QOP_AUTH_INT);
  ck_assert(kz_slice_eq_cstr(a.realm, "http-auth@example.org"));
  ck_assert(kz_slice_eq_cstr(a.nonce, "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"));
  ck_assert(!a.stale);
  kz_sip_digest_auth_clear(&a);

  /* The client answers the SHA-256 one, and its answer checks out. */
  struct kz_sip_digest_client c;
  kz_sip_digest_client_init(&c);
  struct kz_prng g;
  kz_prng_seed(&g, 1);
  const struct kz_slice ch[2] = {S(RFC7616_CHAL_MD5), S(RFC7616_CHAL_SHA256)};
  struct kz_sip_digest_answer_opts o = {.challenges = ch, .nchallenges = 2,
                                        .username = S("Mufasa"), .password = S("Circle of Life"),
                                        .method = S("GET"), .uri = S("/dir/index.html"),
                                        .prng = &g};
  struct kz_buf out;
  kz_buf_init(&out);
  char reason[KZ_SIP_DIGEST_REASON_MAX];
  ck_assert_int_eq(kz_sip_digest_answer(&c, &out, &o, reason, sizeof reason), 0);
  ck_assert_int_eq(kz_sip_digest_parse(&a, KZ_SIP_DIGEST_AUTHORIZATION, kz_buf_slice(&out)), 0);
  ck_assert_int_eq(a.alg, KZ_SIP_DIGEST_SHA256);
  ck_assert_uint_eq(a.qop, KZ_SIP_DIGEST_QOP_AUTH);
  ck_assert_uint_eq(a.nc, 1);
  ck_assert(kz_slice_eq_cstr(a.opaque, "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"));
  ck_assert_uint_eq(a.cnonce.len, 16);
  struct kz_sip_digest_check chk = {.method = S("GET"), .realm = a.realm,
                                    .password = S("Circle of Life")};
  struct kz_sip_digest_result res;
  ck_assert_int_eq(kz_sip_digest_check_response(&a, &chk, &res), 0);
  ck_assert_int_eq(res.status, KZ_SIP_DIGEST_OK);
  kz_sip_digest_auth_clear(&a);
  kz_buf_free(&out);
}
END_TEST

/* ------------------------------------------------------------------ */
/* RFC 8760 choice                                                      */

static enum kz_sip_digest_alg pick(const struct kz_slice *ch, size_t n, int *rc_out) {
  struct kz_sip_digest_client c;
  kz_sip_digest_client_init(&c);
  struct kz_prng g;
  kz_prng_seed(&g, 2);
  struct kz_sip_digest_answer_opts o = {.challenges = ch, .nchallenges = n,
                                        .username = S("u"), .password = S("p"),
                                        .method = S("INVITE"), .uri = S("sip:b@example.com"),
                                        .prng = &g};
  struct kz_buf out;
  kz_buf_init(&out);
  char reason[KZ_SIP_DIGEST_REASON_MAX];
  int rc = kz_sip_digest_answer(&c, &out, &o, reason, sizeof reason);
  *rc_out = rc;
  enum kz_sip_digest_alg alg = KZ_SIP_DIGEST_ALG_COUNT;
  if (rc == 0) {
    struct kz_sip_digest_auth a;
    ck_assert_int_eq(kz_sip_digest_parse(&a, KZ_SIP_DIGEST_AUTHORIZATION, kz_buf_slice(&out)), 0);
    alg = a.alg;
    kz_sip_digest_auth_clear(&a);
  } else {
    ck_assert_uint_eq(out.len, 0);
    ck_assert(reason[0] != '\0');
  }
  kz_buf_free(&out);
  return alg;
}

START_TEST(rfc8760_tie_break) {
  int rc;
  const struct kz_slice md5_then_sha[2] = {
      S("Digest realm=\"r\", nonce=\"n1\", algorithm=MD5, qop=\"auth\""),
      S("Digest realm=\"r\", nonce=\"n2\", algorithm=SHA-256, qop=\"auth\"")};
  ck_assert_int_eq(pick(md5_then_sha, 2, &rc), KZ_SIP_DIGEST_SHA256);
  const struct kz_slice sha_then_md5[2] = {md5_then_sha[1], md5_then_sha[0]};
  ck_assert_int_eq(pick(sha_then_md5, 2, &rc), KZ_SIP_DIGEST_SHA256);
  /* Strongest overall. */
  const struct kz_slice three[3] = {
      md5_then_sha[0], S("Digest realm=\"r\", nonce=\"n3\", algorithm=SHA-512-256, qop=\"auth\""),
      md5_then_sha[1]};
  ck_assert_int_eq(pick(three, 3, &rc), KZ_SIP_DIGEST_SHA512_256);
  /* Among equals the topmost: MD5-sess above MD5. */
  const struct kz_slice sess[2] = {S("Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess, qop=\"auth\""),
                                   md5_then_sha[0]};
  ck_assert_int_eq(pick(sess, 2, &rc), KZ_SIP_DIGEST_MD5_SESS);
  /* Absent algorithm means MD5. */
  const struct kz_slice none[1] = {S("Digest realm=\"r\", nonce=\"n\"")};
  ck_assert_int_eq(pick(none, 1, &rc), KZ_SIP_DIGEST_MD5);
  /* Unsupported and broken ones are skipped. */
  const struct kz_slice skip[4] = {S("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-1"),
                                   S("Basic realm=\"r\""), S("Digest realm=\"r\" nonce=\"n\""),
                                   md5_then_sha[0]};
  ck_assert_int_eq(pick(skip, 4, &rc), KZ_SIP_DIGEST_MD5);
  /* Nothing usable. */
  const struct kz_slice unsup[2] = {skip[0], skip[1]};
  pick(unsup, 2, &rc);
  ck_assert_int_eq(rc, KZ_ENOTSUP);
  const struct kz_slice authint[1] = {S("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"")};
  pick(authint, 1, &rc);
  ck_assert_int_eq(rc, KZ_ENOTSUP);
  const struct kz_slice broken[1] = {skip[2]};
  pick(broken, 1, &rc);
  ck_assert_int_eq(rc, KZ_EPROTO);
}
END_TEST

/* ------------------------------------------------------------------ */
/* verifier                                                            */

START_TEST(round_trip_every_alg) {
  struct kz_sip_digest_verifier *v = mkv(SECRET, 60, 0, 0);
  struct kz_sip_digest_client c;
  kz_sip_digest_client_init(&c);
  struct kz_prng g;
  kz_prng_seed(&g, 3);
  struct kz_buf ch, a1, a2;
  kz_buf_init(&ch);
  kz_buf_init(&a1);
  kz_buf_init(&a2);
  char why[KZ_SIP_DIGEST_REASON_MAX];
  for (int alg = 0; alg < KZ_SIP_DIGEST_ALG_COUNT; alg++) {
    for (int qop = 0; qop < 2; qop++) {
      bool sess = alg & 1;
      if (sess && !qop) continue; /* -sess needs qop */
      chal(v, &ch, "example.com", (enum kz_sip_digest_alg)alg, qop, T0);
      ck_assert_int_eq(answer1(&c, &g, kz_buf_slice(&ch), "s3cret", &a1), 0);
      ck_assert_msg(verify_str(v, kz_buf_slice(&a1), "example.com", "s3cret", T0 + NS, why) ==
                        KZ_SIP_DIGEST_OK, "alg %d qop %d: %s", alg, qop, why);
      /* With the stored HA1 instead of the password. */
      ck_assert_int_eq(answer1(&c, &g, kz_buf_slice(&ch), "s3cret", &a2), 0);
      struct kz_sip_digest_auth a;
      ck_assert_int_eq(kz_sip_digest_parse(&a, KZ_SIP_DIGEST_AUTHORIZATION, kz_buf_slice(&a2)), 0);
      ck_assert_int_eq(a.alg, alg);
      ck_assert_uint_eq(a.nc, qop ? 2 : 0);
      char ha1[KZ_SIP_DIGEST_HEX_MAX + 1];
      kz_sip_digest_ha1((enum kz_sip_digest_alg)alg, S("alice"), S("example.com"), S("s3cret"), ha1);
      struct kz_sip_digest_check chk = {.method = S("REGISTER"), .realm = S("example.com"),
                                        .ha1 = kz_slice_cstr(ha1),
                                        .ha1_alg = (enum kz_sip_digest_alg)alg};
      struct kz_sip_digest_result res;
      ck_assert_int_eq(kz_sip_digest_verify(v, &a, &chk, T0 + 2 * NS, &res), 0);
      ck_assert_msg(res.status == KZ_SIP_DIGEST_OK, "%s", res.reason);
      /* And a wrong password fails for every algorithm. */
      chk.ha1 = KZ_SLICE_NULL;
      chk.password = S("s3cret!");
      ck_assert_int_eq(kz_sip_digest_verify(v, &a, &chk, T0 + 2 * NS, &res), 0);
      ck_assert_int_eq(res.status, KZ_SIP_DIGEST_WRONG_RESPONSE);
      kz_sip_digest_auth_clear(&a);
    }
  }
  kz_buf_free(&ch);
  kz_buf_free(&a1);
  kz_buf_free(&a2);
  kz_sip_digest_verifier_free(v);
}
END_TEST

START_TEST(stale_after_lifetime) {
  struct kz_sip_digest_verifier *v = mkv(SECRET, 30, 0, 0);
  struct kz_sip_digest_client c;
  kz_sip_digest_client_init(&c);
  struct kz_prng g;
  kz_prng_seed(&g, 4);
  struct kz_buf ch, a;
  kz_buf_init(&ch);
  kz_buf_init(&a);
  char why[KZ_SIP_DIGEST_REASON_MAX];
  chal(v, &ch, "example.com", KZ_SIP_DIGEST_SHA256, false, T0);
  ck_assert_int_eq(answer1(&c, &g, kz_buf_slice(&ch), "pw", &a), 0);
  ck_assert_int_eq(verify_str(v, kz_buf_slice(&a), "example.com", "pw", T0 + 29 * NS + NS - 1, why),
                   KZ_SIP_DIGEST_OK);
  ck_assert_int_eq(verify_str(v, kz_buf_slice(&a), "example.com", "pw", T0 + 30 * NS, why),
                   KZ_SIP_DIGEST_STALE);
  ck_assert_str_eq(why, "nonce expired (age 30 s, lifetime 30 s)");
  /* Stale is only for the right password. */
  ck_assert_int_eq(verify_str(v, kz_buf_slice(&a), "example.com", "nope", T0 + 30 * NS, why),
                   KZ_SIP_DIGEST_WRONG_RESPONSE);
  /* A nonce from "the future" (a clock that went back) is stale too. */
  ck_assert_int_eq(verify_str(v, kz_buf_slice(&a), "example.com", "pw", T0 - NS, why),
                   KZ_SIP_DIGEST_STALE);

  /* The caller challenges again with stale=true; the new nonce works. */
  struct kz_sip_digest_challenge_opts o = {.realm = S("example.com"),
                                           .alg = KZ_SIP_DIGEST_SHA256, .stale = true};
  kz_buf_reset(&ch);
  ck_assert_int_eq(kz_sip_digest_challenge(v, &ch, &o, T0 + 30 * NS), 0);
  struct kz_sip_digest_auth p;
  ck_assert_int_eq(kz_sip_digest_parse(&p, KZ_SIP_DIGEST_WWW_AUTHENTICATE, kz_buf_slice(&ch)), 0);
  ck_assert(p.stale);
  kz_sip_digest_auth_clear(&p);
  ck_assert_int_eq(answer1(&c, &g, kz_buf_slice(&ch), "pw", &a), 0);
  ck_assert_int_eq(verify_str(v, kz_buf_slice(&a), "example.com", "pw", T0 + 31 * NS, why),
                   KZ_SIP_DIGEST_OK);
  kz_buf_free(&ch);
  kz_buf_free(&a);
  kz_sip_digest_verifier_free(v);
}
END_TEST

START_TEST(forged_nonce) {
  struct kz_sip_digest_verifier *v = mkv(SECRET, 30, 0, 0);
  struct kz_sip_digest_verifier *other = mkv(SECRET2, 30, 0, 0);
  struct kz_sip_digest_client c;
  kz_sip_digest_client_init(&c);
  struct kz_prng g;
  kz_prng_seed(&g, 5);
  struct kz_buf ch, a;
  kz_buf_init(&ch);
  kz_buf_init(&a);
  char why[KZ_SIP_DIGEST_REASON_MAX], forged[512];
  chal(v, &ch, "example.com", KZ_SIP_DIGEST_MD5, true, T0);

  /* Flip one hex digit of the MAC part; the client answers correctly for
   * the forged nonce, and still the nonce is refused. */
  const char *np = strstr((const char *)ch.data, "nonce=\"") + 7;
  char nonce[65], bad[65];
  memcpy(nonce, np, 64);
  nonce[64] = 0;
  strcpy(bad, nonce);
  bad[40] = bad[40] == '0' ? '1' : '0';
  subst(forged, sizeof forged, (const char *)ch.data, nonce, bad);
  ck_assert_int_eq(answer1(&c, &g, kz_slice_cstr(forged), "pw", &a), 0);
  ck_assert_int_eq(verify_str(v, kz_buf_slice(&a), "example.com", "pw", T0, why),
                   KZ_SIP_DIGEST_BAD_NONCE);
  ck_assert_str_eq(why, "nonce was not issued here for this realm");
  /* Moving the timestamp forward (to dodge expiry) breaks the MAC too. */
  strcpy(bad, nonce);
  bad[15] = bad[15] == 'f' ? 'e' : 'f';
  subst(forged, sizeof forged, (const char *)ch.data, nonce, bad);
  ck_assert_int_eq(answer1(&c, &g, kz_slice_cstr(forged), "pw", &a), 0);
  ck_assert_int_eq(verify_str(v, kz_buf_slice(&a), "example.com", "pw", T0, why),
                   KZ_SIP_DIGEST_BAD_NONCE);
  /* Not our format at all. */
  subst(forged, sizeof forged, (const char *)ch.data, nonce, "dcd98b7102dd2f0e8b11d0f600bfb0c093");
  ck_assert_int_eq(answer1(&c, &g, kz_slice_cstr(forged), "pw", &a), 0);
  ck_assert_int_eq(verify_str(v, kz_buf_slice(&a), "example.com", "pw", T0, why),
                   KZ_SIP_DIGEST_BAD_NONCE);
  ck_assert_str_eq(why, "nonce was not issued here");
  /* A well-formed nonce from a verifier with another secret. */
  chal(other, &ch, "example.com", KZ_SIP_DIGEST_MD5, true, T0);
  ck_assert_int_eq(answer1(&c, &g, kz_buf_slice(&ch), "pw", &a), 0);
  ck_assert_int_eq(verify_str(other, kz_buf_slice(&a), "example.com", "pw", T0, why),
                   KZ_SIP_DIGEST_OK);
  ck_assert_int_eq(verify_str(v, kz_buf_slice(&a), "example.com", "pw", T0, why),
                   KZ_SIP_DIGEST_BAD_NONCE);
  kz_buf_free(&ch);
  kz_buf_free(&a);
  kz_sip_digest_verifier_free(v);
  kz_sip_digest_verifier_free(other);
}
END_TEST

START_TEST(nonce_for_other_realm) {
  struct kz_sip_digest_verifier *v = mkv(SECRET, 30, 0, 0);
  struct kz_sip_digest_client c;
  kz_sip_digest_client_init(&c);
  struct kz_prng g;
  kz_prng_seed(&g, 6);
  struct kz_buf ch, a;
  kz_buf_init(&ch);
  kz_buf_init(&a);
  char why[KZ_SIP_DIGEST_REASON_MAX], moved[512];
  chal(v, &ch, "a.example.com", KZ_SIP_DIGEST_SHA256, true, T0);
  /* Credentials for realm a presented where b is expected. */
  ck_assert_int_eq(answer1(&c, &g, kz_buf_slice(&ch), "pw", &a), 0);
  ck_assert_int_eq(verify_str(v, kz_buf_slice(&a), "b.example.com", "pw", T0, why),
                   KZ_SIP_DIGEST_BAD_NONCE);
  ck_assert_str_eq(why, "credentials are for another realm");
  /* A nonce issued for realm a, carried over into realm b's credentials:
   * the MAC binds the realm. */
  subst(moved, sizeof moved, (const char *)ch.data, "a.example.com", "b.example.com");
  ck_assert_int_eq(answer1(&c, &g, kz_slice_cstr(moved), "pw", &a), 0);
  ck_assert_int_eq(verify_str(v, kz_buf_slice(&a), "b.example.com", "pw", T0, why),
                   KZ_SIP_DIGEST_BAD_NONCE);
  ck_assert_str_eq(why, "nonce was not issued here for this realm");
  kz_buf_free(&ch);
  kz_buf_free(&a);
  kz_sip_digest_verifier_free(v);
}
END_TEST

START_TEST(wrong_password) {
  struct kz_sip_digest_verifier *v = mkv(SECRET, 30, 0, 0);
  struct kz_sip_digest_client c;
  kz_sip_digest_client_init(&c);
  struct kz_prng g;
  kz_prng_seed(&g, 7);
  struct kz_buf ch, a;
  kz_buf_init(&ch);
  kz_buf_init(&a);
  char why[KZ_SIP_DIGEST_REASON_MAX];
  chal(v, &ch, "example.com", KZ_SIP_DIGEST_MD5, true, T0);
  ck_assert_int_eq(answer1(&c, &g, kz_buf_slice(&ch), "guess", &a), 0);
  ck_assert_int_eq(verify_str(v, kz_buf_slice(&a), "example.com", "pw", T0, why),
                   KZ_SIP_DIGEST_WRONG_RESPONSE);
  ck_assert_str_eq(why, "wrong response (password or user)");
  /* A failed attempt does not burn the nonce count: the right password
   * with the next nc still passes. */
  ck_assert_int_eq(answer1(&c, &g, kz_buf_slice(&ch), "pw", &a), 0);
  ck_assert_int_eq(verify_str(v, kz_buf_slice(&a), "example.com", "pw", T0, why),
                   KZ_SIP_DIGEST_OK);
  kz_buf_free(&ch);
  kz_buf_free(&a);
  kz_sip_digest_verifier_free(v);
}
END_TEST

START_TEST(replayed_nc) {
  struct kz_sip_digest_verifier *v = mkv(SECRET, 30, 0, 0);
  struct kz_sip_digest_client c;
  kz_sip_digest_client_init(&c);
  struct kz_prng g;
  kz_prng_seed(&g, 8);
  struct kz_buf ch, a1, a2, a3;
  kz_buf_init(&ch);
  kz_buf_init(&a1);
  kz_buf_init(&a2);
  kz_buf_init(&a3);
  char why[KZ_SIP_DIGEST_REASON_MAX], hv[512];
  chal(v, &ch, "example.com", KZ_SIP_DIGEST_SHA256, true, T0);
  ck_assert_int_eq(answer1(&c, &g, kz_buf_slice(&ch), "pw", &a1), 0);
  ck_assert_int_eq(answer1(&c, &g, kz_buf_slice(&ch), "pw", &a2), 0);
  ck_assert_int_eq(answer1(&c, &g, kz_buf_slice(&ch), "pw", &a3), 0);
  ck_assert_ptr_nonnull(strstr((const char *)a3.data, "nc=00000003"));
  ck_assert_int_eq(verify_str(v, kz_buf_slice(&a1), "example.com", "pw", T0, why), KZ_SIP_DIGEST_OK);
  ck_assert_int_eq(verify_str(v, kz_buf_slice(&a1), "example.com", "pw", T0, why),
                   KZ_SIP_DIGEST_REPLAY);
  ck_assert_str_eq(why, "nc 00000001 replayed (highest seen 00000001)");
  /* Skipping ahead is fine (lost requests); going back is not. */
  ck_assert_int_eq(verify_str(v, kz_buf_slice(&a3), "example.com", "pw", T0, why), KZ_SIP_DIGEST_OK);
  ck_assert_int_eq(verify_str(v, kz_buf_slice(&a2), "example.com", "pw", T0, why),
                   KZ_SIP_DIGEST_REPLAY);
  ck_assert_str_eq(why, "nc 00000002 replayed (highest seen 00000003)");
  /* nc=0 is never valid (the count starts at 1); the response is right. */
  struct kz_sip_digest_auth p;
  ck_assert_int_eq(kz_sip_digest_parse(&p, KZ_SIP_DIGEST_WWW_AUTHENTICATE, kz_buf_slice(&ch)), 0);
  struct kz_sip_digest_input in = {.alg = KZ_SIP_DIGEST_SHA256, .username = S("alice"),
                                   .realm = S("example.com"), .password = S("pw"),
                                   .nonce = p.nonce, .cnonce = S("abc"), .nc = S("00000000"),
                                   .qop = S("auth"), .method = S("REGISTER"),
                                   .uri = S("sip:example.com")};
  char resp[KZ_SIP_DIGEST_HEX_MAX + 1];
  ck_assert_int_eq(kz_sip_digest_response(&in, resp), 64);
  snprintf(hv, sizeof hv,
           "Digest username=\"alice\", realm=\"example.com\", nonce=\"%.*s\", "
           "uri=\"sip:example.com\", response=\"%s\", algorithm=SHA-256, cnonce=\"abc\", "
           "qop=auth, nc=00000000",
           (int)p.nonce.len, p.nonce.p, resp);
  kz_sip_digest_auth_clear(&p);
  ck_assert_int_eq(verify_str(v, kz_slice_cstr(hv), "example.com", "pw", T0, why),
                   KZ_SIP_DIGEST_MALFORMED);
  ck_assert_str_eq(why, "nc must start at 00000001");
  kz_buf_free(&ch);
  kz_buf_free(&a1);
  kz_buf_free(&a2);
  kz_buf_free(&a3);
  kz_sip_digest_verifier_free(v);
}
END_TEST

/* Writes RFC 2069 style credentials (no qop, nc or cnonce) with the
 * right response for password "pw" into hv. */
static void answer_no_qop(char *hv, size_t n, struct kz_slice nonce) {
  struct kz_sip_digest_input in = {.alg = KZ_SIP_DIGEST_SHA256, .username = S("alice"),
                                   .realm = S("example.com"), .password = S("pw"),
                                   .nonce = nonce, .method = S("REGISTER"),
                                   .uri = S("sip:example.com")};
  char resp[KZ_SIP_DIGEST_HEX_MAX + 1];
  ck_assert_int_eq(kz_sip_digest_response(&in, resp), 64);
  snprintf(hv, n,
           "Digest username=\"alice\", realm=\"example.com\", nonce=\"%.*s\", "
           "uri=\"sip:example.com\", response=\"%s\", algorithm=SHA-256",
           (int)nonce.len, nonce.p, resp);
}

/* RFC 7616 §3.4: when the challenge offered qop, an answer without qop
 * (no nonce count, so replayable for the nonce's whole life) is refused.
 * The nonce itself remembers the offer, under its MAC. */
START_TEST(qop_downgrade) {
  struct kz_sip_digest_verifier *v = mkv(SECRET, 30, 0, 0);
  struct kz_buf ch;
  kz_buf_init(&ch);
  char why[KZ_SIP_DIGEST_REASON_MAX], hv[512], nonce[65];
  struct kz_sip_digest_auth p;

  chal(v, &ch, "example.com", KZ_SIP_DIGEST_SHA256, true, T0);
  ck_assert_int_eq(kz_sip_digest_parse(&p, KZ_SIP_DIGEST_WWW_AUTHENTICATE, kz_buf_slice(&ch)), 0);
  ck_assert_uint_eq(p.nonce.len, 64);
  memcpy(nonce, p.nonce.p, 64);
  nonce[64] = 0;
  kz_sip_digest_auth_clear(&p);
  answer_no_qop(hv, sizeof hv, kz_slice_cstr(nonce));
  ck_assert_int_eq(verify_str(v, kz_slice_cstr(hv), "example.com", "pw", T0, why),
                   KZ_SIP_DIGEST_MALFORMED);
  ck_assert_str_eq(why, "qop=auth was offered but not used");
  /* Every time, not only the first. */
  ck_assert_int_eq(verify_str(v, kz_slice_cstr(hv), "example.com", "pw", T0 + NS, why),
                   KZ_SIP_DIGEST_MALFORMED);
  /* A wrong password still says so. */
  ck_assert_int_eq(verify_str(v, kz_slice_cstr(hv), "example.com", "nope", T0, why),
                   KZ_SIP_DIGEST_WRONG_RESPONSE);
  /* Clearing the "qop offered" bit breaks the MAC. */
  ck_assert_int_eq(nonce[16], '8');
  nonce[16] = '0';
  answer_no_qop(hv, sizeof hv, kz_slice_cstr(nonce));
  ck_assert_int_eq(verify_str(v, kz_slice_cstr(hv), "example.com", "pw", T0, why),
                   KZ_SIP_DIGEST_BAD_NONCE);

  /* Without the offer, the RFC 2069 form is fine (and repeatable). */
  chal(v, &ch, "example.com", KZ_SIP_DIGEST_SHA256, false, T0);
  ck_assert_int_eq(kz_sip_digest_parse(&p, KZ_SIP_DIGEST_WWW_AUTHENTICATE, kz_buf_slice(&ch)), 0);
  ck_assert_int_eq(p.nonce.p[16], '0');
  answer_no_qop(hv, sizeof hv, p.nonce);
  kz_sip_digest_auth_clear(&p);
  ck_assert_int_eq(verify_str(v, kz_slice_cstr(hv), "example.com", "pw", T0, why),
                   KZ_SIP_DIGEST_OK);
  ck_assert_int_eq(verify_str(v, kz_slice_cstr(hv), "example.com", "pw", T0, why),
                   KZ_SIP_DIGEST_OK);
  kz_buf_free(&ch);
  kz_sip_digest_verifier_free(v);
}
END_TEST

START_TEST(nc_table_overflow) {
  /* 8 slots: one fully associative LRU set. */
  struct kz_sip_digest_verifier *v = mkv(SECRET, 300, 8, 0);
  struct kz_sip_digest_client c;
  kz_sip_digest_client_init(&c);
  struct kz_prng g;
  kz_prng_seed(&g, 9);
  enum { N = 10 };
  struct kz_buf ch[N], a;
  kz_buf_init(&a);
  char why[KZ_SIP_DIGEST_REASON_MAX];
  for (int i = 0; i < N; i++) {
    kz_buf_init(&ch[i]);
    chal(v, &ch[i], "example.com", KZ_SIP_DIGEST_MD5, true, T0);
  }
  /* Nonces 0..7 fill the table; all remembered. */
  for (int i = 0; i < 8; i++) {
    ck_assert_int_eq(answer1(&c, &g, kz_buf_slice(&ch[i]), "pw", &a), 0);
    ck_assert_int_eq(verify_str(v, kz_buf_slice(&a), "example.com", "pw", T0, why), KZ_SIP_DIGEST_OK);
  }
  /* The client keeps 8 nonce counts; give it a fresh state per nonce
   * below by re-answering from a copy where needed. */
  struct kz_sip_digest_client saved = c;
  for (int i = 1; i < 8; i++) {
    ck_assert_int_eq(answer1(&c, &g, kz_buf_slice(&ch[i]), "pw", &a), 0);
    ck_assert_int_eq(verify_str(v, kz_buf_slice(&a), "example.com", "pw", T0, why), KZ_SIP_DIGEST_OK);
  }
  /* Nonce 9 (issued last) evicts the least recently used: nonce 0. */
  ck_assert_int_eq(answer1(&c, &g, kz_buf_slice(&ch[9]), "pw", &a), 0);
  ck_assert_int_eq(verify_str(v, kz_buf_slice(&a), "example.com", "pw", T0, why), KZ_SIP_DIGEST_OK);
  /* Nonce 0 with a higher nc: its state is gone, so stale (never
   * accepted blindly, which would allow replays). */
  c = saved;
  ck_assert_int_eq(answer1(&c, &g, kz_buf_slice(&ch[0]), "pw", &a), 0);
  ck_assert_ptr_nonnull(strstr((const char *)a.data, "nc=00000002"));
  ck_assert_int_eq(verify_str(v, kz_buf_slice(&a), "example.com", "pw", T0, why), KZ_SIP_DIGEST_STALE);
  ck_assert_str_eq(why, "nonce-count state for this nonce was evicted");
  /* Nonce 8, never used, has a seq above the eviction floor: fresh. */
  ck_assert_int_eq(answer1(&c, &g, kz_buf_slice(&ch[8]), "pw", &a), 0);
  ck_assert_int_eq(verify_str(v, kz_buf_slice(&a), "example.com", "pw", T0, why), KZ_SIP_DIGEST_OK);
  /* That evicted nonce 1 (LRU now); the floor rose to its seq.  A nonce
   * issued after the overflow works at once. */
  struct kz_buf fresh;
  kz_buf_init(&fresh);
  chal(v, &fresh, "example.com", KZ_SIP_DIGEST_MD5, true, T0);
  ck_assert_int_eq(answer1(&c, &g, kz_buf_slice(&fresh), "pw", &a), 0);
  ck_assert_int_eq(verify_str(v, kz_buf_slice(&a), "example.com", "pw", T0, why), KZ_SIP_DIGEST_OK);
  /* Nonces still in the table keep their counts: replaying nonce 9's
   * nc=1 is caught. */
  struct kz_sip_digest_client c9;
  kz_sip_digest_client_init(&c9);
  ck_assert_int_eq(answer1(&c9, &g, kz_buf_slice(&ch[9]), "pw", &a), 0);
  ck_assert_int_eq(verify_str(v, kz_buf_slice(&a), "example.com", "pw", T0, why), KZ_SIP_DIGEST_REPLAY);
  for (int i = 0; i < N; i++) kz_buf_free(&ch[i]);
  kz_buf_free(&fresh);
  kz_buf_free(&a);
  kz_sip_digest_verifier_free(v);
}
END_TEST

START_TEST(verifier_policy) {
  struct kz_sip_digest_verifier *v =
      mkv(SECRET, 30, 0, KZ_SIP_DIGEST_ALG_BIT(KZ_SIP_DIGEST_SHA256));
  struct kz_sip_digest_verifier *all = mkv(SECRET, 30, 0, 0);
  struct kz_sip_digest_client c;
  kz_sip_digest_client_init(&c);
  struct kz_prng g;
  kz_prng_seed(&g, 10);
  struct kz_buf ch, a;
  kz_buf_init(&ch);
  kz_buf_init(&a);
  char why[KZ_SIP_DIGEST_REASON_MAX], hv[512];
  /* The verifier will not issue or accept MD5. */
  struct kz_sip_digest_challenge_opts o = {.realm = S("example.com"), .alg = KZ_SIP_DIGEST_MD5};
  ck_assert_int_eq(kz_sip_digest_challenge(v, &ch, &o, T0), KZ_EINVAL);
  ck_assert_uint_eq(ch.len, 0);
  chal(v, &ch, "example.com", KZ_SIP_DIGEST_SHA256, true, T0);
  subst(hv, sizeof hv, (const char *)ch.data, "SHA-256", "MD5");
  ck_assert_int_eq(answer1(&c, &g, kz_slice_cstr(hv), "pw", &a), 0);
  ck_assert_int_eq(verify_str(v, kz_buf_slice(&a), "example.com", "pw", T0, why),
                   KZ_SIP_DIGEST_MALFORMED);
  ck_assert_str_eq(why, "algorithm MD5 is not accepted here");
  /* A downgraded algorithm does not change the nonce, so a verifier that
   * accepts MD5 takes it (RFC 8760 allows MD5-only clients). */
  ck_assert_int_eq(verify_str(all, kz_buf_slice(&a), "example.com", "pw", T0, why), KZ_SIP_DIGEST_OK);

  /* Request-URI check. */
  ck_assert_int_eq(answer1(&c, &g, kz_buf_slice(&ch), "pw", &a), 0);
  struct kz_sip_digest_auth p;
  ck_assert_int_eq(kz_sip_digest_parse(&p, KZ_SIP_DIGEST_AUTHORIZATION, kz_buf_slice(&a)), 0);
  struct kz_sip_digest_check chk = {.method = S("REGISTER"), .realm = S("example.com"),
                                    .uri = S("sip:other.com"), .password = S("pw")};
  struct kz_sip_digest_result res;
  ck_assert_int_eq(kz_sip_digest_verify(v, &p, &chk, T0, &res), 0);
  ck_assert_int_eq(res.status, KZ_SIP_DIGEST_MALFORMED);
  ck_assert_str_eq(res.reason, "uri does not match the Request-URI");
  /* Argument errors: a challenge is not credentials; HA1 of another hash;
   * no secret at all. */
  struct kz_sip_digest_auth chal_p;
  ck_assert_int_eq(kz_sip_digest_parse(&chal_p, KZ_SIP_DIGEST_WWW_AUTHENTICATE, kz_buf_slice(&ch)), 0);
  chk.uri = KZ_SLICE_NULL;
  ck_assert_int_eq(kz_sip_digest_verify(v, &chal_p, &chk, T0, &res), KZ_EINVAL);
  kz_sip_digest_auth_clear(&chal_p);
  chk.password = KZ_SLICE_NULL;
  ck_assert_int_eq(kz_sip_digest_verify(v, &p, &chk, T0, &res), KZ_EINVAL);
  chk.ha1 = S("8f2ff1d2bd5a0e71d0e7a2e4a5a0a0a0");
  chk.ha1_alg = KZ_SIP_DIGEST_MD5;
  ck_assert_int_eq(kz_sip_digest_verify(v, &p, &chk, T0, &res), KZ_ENOTSUP);
  chk.ha1 = S("not-hex");
  chk.ha1_alg = KZ_SIP_DIGEST_SHA256;
  ck_assert_int_eq(kz_sip_digest_verify(v, &p, &chk, T0, &res), KZ_EINVAL);
  chk.ha1 = KZ_SLICE_NULL;
  chk.password = S("pw");
  chk.method = KZ_SLICE_NULL;
  ck_assert_int_eq(kz_sip_digest_verify(v, &p, &chk, T0, &res), KZ_EINVAL);
  kz_sip_digest_auth_clear(&p);

  /* qop=auth-int credentials are refused with a reason. */
  {
    char h2[512];
    struct kz_sip_digest_auth q;
    chal(all, &ch, "example.com", KZ_SIP_DIGEST_SHA256, true, T0);
    ck_assert_int_eq(kz_sip_digest_parse(&q, KZ_SIP_DIGEST_WWW_AUTHENTICATE, kz_buf_slice(&ch)), 0);
    snprintf(h2, sizeof h2,
             "Digest username=\"alice\", realm=\"example.com\", nonce=\"%.*s\", uri=\"sip:example.com\","
             " response=\"%064d\", algorithm=SHA-256, cnonce=\"c\", qop=auth-int, nc=00000001",
             (int)q.nonce.len, q.nonce.p, 0);
    kz_sip_digest_auth_clear(&q);
    ck_assert_int_eq(verify_str(all, kz_slice_cstr(h2), "example.com", "pw", T0, why),
                     KZ_SIP_DIGEST_MALFORMED);
    ck_assert_str_eq(why, "qop=auth-int is not supported");
    /* A response of the wrong length for the algorithm. */
    subst(hv, sizeof hv, h2, "qop=auth-int", "qop=auth");
    subst(h2, sizeof h2, hv, "response=\"00000000", "response=\"");
    ck_assert_int_eq(verify_str(all, kz_slice_cstr(h2), "example.com", "pw", T0, why),
                     KZ_SIP_DIGEST_MALFORMED);
    ck_assert_str_eq(why, "response must be 64 hex digits for SHA-256");
    /* Right length, wrong digits. */
    subst(hv, sizeof hv, h2, "response=\"", "response=\"00000000");
    ck_assert_int_eq(verify_str(all, kz_slice_cstr(hv), "example.com", "pw", T0, why),
                     KZ_SIP_DIGEST_WRONG_RESPONSE);
  }
  kz_buf_free(&ch);
  kz_buf_free(&a);
  kz_sip_digest_verifier_free(v);
  kz_sip_digest_verifier_free(all);
}
END_TEST

START_TEST(verifier_new_args) {
  struct kz_sip_digest_verifier *v = NULL;
  struct kz_sip_digest_verifier_cfg cfg = {.secret = SECRET, .secret_len = 15,
                                           .nonce_lifetime_s = 30};
  ck_assert_int_eq(kz_sip_digest_verifier_new(&v, &cfg), KZ_EINVAL);
  cfg.secret_len = 65;
  ck_assert_int_eq(kz_sip_digest_verifier_new(&v, &cfg), KZ_EINVAL);
  cfg.secret_len = 16;
  cfg.nonce_lifetime_s = 0;
  ck_assert_int_eq(kz_sip_digest_verifier_new(&v, &cfg), KZ_EINVAL);
  cfg.nonce_lifetime_s = 1;
  cfg.algs = 1u << 20;
  ck_assert_int_eq(kz_sip_digest_verifier_new(&v, &cfg), KZ_EINVAL);
  ck_assert_ptr_null(v);
  cfg.algs = 0;
  ck_assert_int_eq(kz_sip_digest_verifier_new(&v, &cfg), 0);
  /* Challenge argument errors leave the buffer alone. */
  struct kz_buf b;
  kz_buf_init(&b);
  kz_buf_append_cstr(&b, "keep");
  struct kz_sip_digest_challenge_opts o = {.realm = S("a\r\nInjected: 1"), .alg = KZ_SIP_DIGEST_MD5};
  ck_assert_int_eq(kz_sip_digest_challenge(v, &b, &o, T0), KZ_EINVAL);
  o.realm = KZ_SLICE_NULL;
  ck_assert_int_eq(kz_sip_digest_challenge(v, &b, &o, T0), KZ_EINVAL);
  o.realm = S("r");
  o.alg = KZ_SIP_DIGEST_SHA256_SESS; /* -sess without qop */
  ck_assert_int_eq(kz_sip_digest_challenge(v, &b, &o, T0), KZ_EINVAL);
  o.alg = KZ_SIP_DIGEST_MD5;
  o.opaque = S("x\ny");
  ck_assert_int_eq(kz_sip_digest_challenge(v, &b, &o, T0), KZ_EINVAL);
  ck_assert_str_eq((const char *)b.data, "keep");
  kz_buf_free(&b);
  kz_sip_digest_verifier_free(v);
  kz_sip_digest_verifier_free(NULL);
}
END_TEST

START_TEST(challenge_format) {
  struct kz_sip_digest_verifier *v = mkv(SECRET, 30, 0, 0);
  struct kz_buf b;
  kz_buf_init(&b);
  struct kz_sip_digest_challenge_opts o = {.realm = S("say \"hi\" \\o/"),
                                           .alg = KZ_SIP_DIGEST_SHA256_SESS, .qop_auth = true,
                                           .stale = true, .opaque = S("opq")};
  ck_assert_int_eq(kz_sip_digest_challenge(v, &b, &o, T0), 0);
  const char *s = (const char *)b.data;
  const char *head = "Digest realm=\"say \\\"hi\\\" \\\\o/\", nonce=\"";
  ck_assert_msg(strncmp(s, head, strlen(head)) == 0, "%s", s);
  ck_assert_ptr_nonnull(strstr(s, "\", opaque=\"opq\", algorithm=SHA-256-sess, qop=\"auth\", stale=true"));
  /* The nonce is 64 lowercase hex digits, starting with the time. */
  const char *np = strstr(s, "nonce=\"") + 7;
  ck_assert(strncmp(np, "00000000000003e8", 16) == 0);
  for (int i = 0; i < 64; i++) ck_assert(strchr("0123456789abcdef", np[i]) != NULL);
  ck_assert_int_eq(np[64], '"');
  struct kz_sip_digest_auth a;
  ck_assert_int_eq(kz_sip_digest_parse(&a, KZ_SIP_DIGEST_PROXY_AUTHENTICATE, kz_buf_slice(&b)), 0);
  ck_assert(kz_slice_eq_cstr(a.realm, "say \"hi\" \\o/"));
  ck_assert_int_eq(a.alg, KZ_SIP_DIGEST_SHA256_SESS);
  ck_assert(a.stale);
  ck_assert_uint_eq(a.qop, KZ_SIP_DIGEST_QOP_AUTH);
  /* Two challenges in a row carry different nonces (sequence number). */
  struct kz_buf b2;
  kz_buf_init(&b2);
  ck_assert_int_eq(kz_sip_digest_challenge(v, &b2, &o, T0), 0);
  ck_assert(!kz_slice_eq(kz_buf_slice(&b), kz_buf_slice(&b2)));
  kz_sip_digest_auth_clear(&a);
  kz_buf_free(&b);
  kz_buf_free(&b2);
  kz_sip_digest_verifier_free(v);
}
END_TEST

/* ------------------------------------------------------------------ */
/* parser                                                              */

START_TEST(parse_details) {
  struct kz_sip_digest_auth a;
  /* Case-insensitive scheme and names, tokens or quoted, escapes, folds,
   * unknown parameters skipped. */
  const char *hv =
      "dIgEsT  ReAlM=\"a\\\"b\\\\c\" ,\tNONCE=abc123,\r\n  x-unknown=\"whatever, really\" , "
      "Algorithm=\"sha-256-SESS\", qop=\"auth-int,auth,future\", STALE=TRUE, "
      "opaque=\"fold\r\n\there\", domain=\"sip:a sip:b\", userhash=false, charset=UTF-8";
  ck_assert_int_eq(kz_sip_digest_parse(&a, KZ_SIP_DIGEST_WWW_AUTHENTICATE, kz_slice_cstr(hv)), 0);
  ck_assert(kz_slice_eq_cstr(a.realm, "a\"b\\c"));
  ck_assert(kz_slice_eq_cstr(a.nonce, "abc123"));
  ck_assert(kz_slice_eq_cstr(a.opaque, "fold\there"));
  ck_assert(kz_slice_eq_cstr(a.domain, "sip:a sip:b"));
  ck_assert_int_eq(a.alg, KZ_SIP_DIGEST_SHA256_SESS);
  ck_assert_uint_eq(a.qop, KZ_SIP_DIGEST_QOP_AUTH | KZ_SIP_DIGEST_QOP_AUTH_INT);
  ck_assert(a.stale);
  ck_assert(!a.userhash);
  ck_assert_uint_eq(a.present & KZ_SIP_DIGEST_P_USERNAME, 0);
  kz_sip_digest_auth_clear(&a);
  kz_sip_digest_auth_clear(&a); /* idempotent */

  /* Credentials: quoted qop and algorithm tolerated, hex nc either case,
   * empty username allowed. */
  hv = "Digest username=\"\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", response=\"00\", "
       "qop=\"auth\", nc=0000ABcd, cnonce=\"c\", userhash=true";
  ck_assert_int_eq(kz_sip_digest_parse(&a, KZ_SIP_DIGEST_PROXY_AUTHORIZATION, kz_slice_cstr(hv)), 0);
  ck_assert_uint_eq(a.nc, 0xabcd);
  ck_assert(kz_slice_eq_cstr(a.nc_text, "0000ABcd"));
  ck_assert_uint_eq(a.username.len, 0);
  ck_assert(a.present & KZ_SIP_DIGEST_P_USERNAME);
  ck_assert(a.userhash);
  ck_assert_int_eq(a.alg, KZ_SIP_DIGEST_MD5);
  /* userhash is parsed but not verified. */
  struct kz_sip_digest_check chk = {.method = S("INVITE"), .realm = S("r"), .password = S("p")};
  struct kz_sip_digest_result res;
  ck_assert_int_eq(kz_sip_digest_check_response(&a, &chk, &res), 0);
  ck_assert_int_eq(res.status, KZ_SIP_DIGEST_MALFORMED);
  kz_sip_digest_auth_clear(&a);

  /* qop and nc are hashed exactly as sent ("AUTH", upper-case hex). */
  {
    struct kz_sip_digest_input in = {.alg = KZ_SIP_DIGEST_MD5_SESS, .username = S("u"),
                                     .realm = S("r"), .password = S("p"), .nonce = S("n"),
                                     .cnonce = S("c"), .nc = S("0000000A"), .qop = S("AUTH"),
                                     .method = S("INVITE"), .uri = S("sip:x")};
    char resp[KZ_SIP_DIGEST_HEX_MAX + 1], h[400];
    ck_assert_int_eq(kz_sip_digest_response(&in, resp), 32);
    snprintf(h, sizeof h,
             "Digest username=u, realm=r, nonce=n, uri=\"sip:x\", response=\"%s\", "
             "algorithm=MD5-sess, qop=AUTH, nc=0000000A, cnonce=c", resp);
    ck_assert_int_eq(kz_sip_digest_parse(&a, KZ_SIP_DIGEST_AUTHORIZATION, kz_slice_cstr(h)), 0);
    ck_assert_uint_eq(a.nc, 10);
    ck_assert_int_eq(kz_sip_digest_check_response(&a, &chk, &res), 0);
    ck_assert_msg(res.status == KZ_SIP_DIGEST_OK, "%s", res.reason);
    kz_sip_digest_auth_clear(&a);
    /* An empty cnonce cannot feed -sess: the client's fault, not ours. */
    snprintf(h, sizeof h,
             "Digest username=u, realm=r, nonce=n, uri=\"sip:x\", response=\"%s\", "
             "algorithm=MD5-sess, qop=auth, nc=0000000A, cnonce=\"\"", resp);
    ck_assert_int_eq(kz_sip_digest_parse(&a, KZ_SIP_DIGEST_AUTHORIZATION, kz_slice_cstr(h)), 0);
    ck_assert_int_eq(kz_sip_digest_check_response(&a, &chk, &res), 0);
    ck_assert_int_eq(res.status, KZ_SIP_DIGEST_MALFORMED);
    ck_assert_str_eq(res.reason, "MD5-sess needs qop=auth and a cnonce");
    kz_sip_digest_auth_clear(&a);
  }

  ck_assert_str_eq(kz_sip_digest_alg_name(KZ_SIP_DIGEST_SHA512_256_SESS), "SHA-512-256-sess");
  ck_assert_str_eq(kz_sip_digest_status_name(KZ_SIP_DIGEST_REPLAY), "REPLAY");
  ck_assert_str_eq(kz_sip_digest_hdr_name(KZ_SIP_DIGEST_PROXY_AUTHORIZATION), "Proxy-Authorization");
}
END_TEST

struct bad_case {
  enum kz_sip_digest_hdr hdr;
  const char *value;
  int rc;
  const char *reason;
};

#define CRED_OK "username=\"u\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", response=\"00\""
static const struct bad_case bad_cases[] = {
    {KZ_SIP_DIGEST_AUTHORIZATION, "Digest " CRED_OK ", nonce=\"m\"", KZ_EPROTO,
     "Authorization: duplicate parameter 'nonce'"},
    {KZ_SIP_DIGEST_AUTHORIZATION, "Digest " CRED_OK ", NONCE=m", KZ_EPROTO,
     "Authorization: duplicate parameter 'NONCE'"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE, "Digest realm=r, nonce=n, foo=1, foo=2", KZ_EPROTO,
     "WWW-Authenticate: duplicate parameter 'foo'"},
    {KZ_SIP_DIGEST_AUTHORIZATION, "Digest " CRED_OK ", qop=auth, cnonce=c, nc=1234567", KZ_EPROTO,
     "Authorization: nc must be 8 hex digits"},
    {KZ_SIP_DIGEST_AUTHORIZATION, "Digest " CRED_OK ", qop=auth, cnonce=c, nc=0000000g", KZ_EPROTO,
     "Authorization: nc must be 8 hex digits"},
    {KZ_SIP_DIGEST_AUTHORIZATION, "Digest " CRED_OK ", qop=auth, cnonce=c", KZ_EPROTO,
     "Authorization: missing parameter 'nc' (required with qop)"},
    {KZ_SIP_DIGEST_AUTHORIZATION, "Digest " CRED_OK ", qop=auth, nc=00000001", KZ_EPROTO,
     "Authorization: missing parameter 'cnonce' (required with qop)"},
    {KZ_SIP_DIGEST_AUTHORIZATION, "Digest " CRED_OK ", nc=00000001", KZ_EPROTO,
     "Authorization: nc without qop"},
    {KZ_SIP_DIGEST_AUTHORIZATION, "Digest " CRED_OK ", qop=bogus", KZ_EPROTO,
     "Authorization: unknown qop 'bogus'"},
    {KZ_SIP_DIGEST_PROXY_AUTHORIZATION, "Digest realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\"",
     KZ_EPROTO, "Proxy-Authorization: missing parameter 'username'"},
    {KZ_SIP_DIGEST_PROXY_AUTHENTICATE, "Digest realm=\"r\"", KZ_EPROTO,
     "Proxy-Authenticate: missing parameter 'nonce'"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE, "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-1", KZ_ENOTSUP,
     "WWW-Authenticate: unsupported algorithm 'SHA-1'"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE, "Basic realm=\"r\"", KZ_ENOTSUP,
     "WWW-Authenticate: unsupported scheme 'Basic'"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE, "", KZ_EPROTO, "WWW-Authenticate: expected an auth scheme"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE, "Digest", KZ_EPROTO,
     "WWW-Authenticate: no parameters after 'Digest'"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE, "Digest,realm=r", KZ_EPROTO,
     "WWW-Authenticate: expected whitespace after 'Digest', found ','"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE, "Digest realm=\"r\" nonce=\"n\"", KZ_EPROTO,
     "WWW-Authenticate: expected ',' after parameter 'realm', found 'n'"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE, "Digest realm=\"r\", nonce=\"n\",", KZ_EPROTO,
     "WWW-Authenticate: trailing ',' after the last parameter"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE, "Digest realm=\"r\",, nonce=\"n\"", KZ_EPROTO,
     "WWW-Authenticate: expected a parameter name at offset 17, found ','"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE, "Digest realm, nonce=\"n\"", KZ_EPROTO,
     "WWW-Authenticate: parameter 'realm' has no '=' value"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE, "Digest realm=, nonce=\"n\"", KZ_EPROTO,
     "WWW-Authenticate: parameter 'realm' has no value (found ',')"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE, "Digest realm=\"r, nonce=\"n\"", KZ_EPROTO,
     "WWW-Authenticate: expected ',' after parameter 'realm', found 'n'"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE, "Digest realm=\"r, nonce=n", KZ_EPROTO,
     "WWW-Authenticate: unterminated quoted string in 'realm'"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE, "Digest realm=\"r\\", KZ_EPROTO,
     "WWW-Authenticate: unterminated quoted string in 'realm'"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE, "Digest realm=\"a\r\nb\", nonce=n", KZ_EPROTO,
     "WWW-Authenticate: CR/LF in quoted string of 'realm'"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE, "Digest realm=\"a\\\r\", nonce=n", KZ_EPROTO,
     "WWW-Authenticate: escaped CR/LF in 'realm'"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE, "Digest realm=\"a\x01\", nonce=n", KZ_EPROTO,
     "WWW-Authenticate: control character in quoted string of 'realm'"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE, "Digest realm=r, nonce=n\r\nX: y", KZ_EPROTO,
     "WWW-Authenticate: expected ',' after parameter 'nonce', found byte 0x0d"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE, "Digest realm=r, nonce=a/b", KZ_EPROTO,
     "WWW-Authenticate: expected ',' after parameter 'nonce', found '/'"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE, "Digest realm=r, nonce=n, stale=maybe", KZ_EPROTO,
     "WWW-Authenticate: stale must be true or false, not 'maybe'"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE, "Digest realm=r, nonce=n, userhash=1", KZ_EPROTO,
     "WWW-Authenticate: userhash must be true or false, not '1'"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE, "Digest realm=r, nonce=n, qop=\"auth;x\"", KZ_EPROTO,
     "WWW-Authenticate: unexpected ';' in qop list"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE, "Digest realm=r, nonce=n, \x80=1", KZ_EPROTO,
     "WWW-Authenticate: expected a parameter name at offset 25, found byte 0x80"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE,
     "Digest realm=r, nonce=n, a0=0,a1=0,a2=0,a3=0,a4=0,a5=0,a6=0,a7=0,a8=0,a9=0,b0=0,b1=0,"
     "b2=0,b3=0,b4=0,b5=0,b6=0,b7=0,b8=0,b9=0,c0=0,c1=0,c2=0,c3=0,c4=0,c5=0,c6=0,c7=0,c8=0,c9=0,d0=0",
     KZ_EPROTO, "WWW-Authenticate: too many parameters (more than 32)"},
    {KZ_SIP_DIGEST_WWW_AUTHENTICATE,
     "Digest realm=r, nonce=n, averyveryverylongparametername=\"x", KZ_EPROTO,
     "WWW-Authenticate: unterminated quoted string in 'averyveryverylongparamet...'"},
};

START_TEST(malformed_headers) {
  const struct bad_case *bc = &bad_cases[_i];
  struct kz_sip_digest_auth a;
  int rc = kz_sip_digest_parse(&a, bc->hdr, kz_slice_cstr(bc->value));
  ck_assert_msg(rc == bc->rc, "case %d: rc %d (%s), want %d", _i, rc, a.reason, bc->rc);
  ck_assert_str_eq(a.reason, bc->reason);
  ck_assert_ptr_null(a.store_);
  ck_assert_uint_eq(a.present, 0);
  kz_sip_digest_auth_clear(&a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* client                                                              */

START_TEST(client_nonce_counts) {
  struct kz_sip_digest_client c;
  kz_sip_digest_client_init(&c);
  struct kz_prng g;
  kz_prng_seed(&g, 11);
  struct kz_buf out;
  kz_buf_init(&out);
  char ch[128];
  struct kz_sip_digest_auth a;
  /* Nine nonces through an 8-slot client: counts per nonce, LRU out. */
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < 9; i++) {
      snprintf(ch, sizeof ch, "Digest realm=\"r\", nonce=\"n%d\", qop=\"auth\"", i);
      ck_assert_int_eq(answer1(&c, &g, kz_slice_cstr(ch), "p", &out), 0);
      ck_assert_int_eq(kz_sip_digest_parse(&a, KZ_SIP_DIGEST_AUTHORIZATION, kz_buf_slice(&out)), 0);
      /* Round 2: nonce 0 was evicted by nonce 8, then each re-insert
       * evicts the next one, so every count restarts. */
      ck_assert_uint_eq(a.nc, 1);
      kz_sip_digest_auth_clear(&a);
    }
  }
  snprintf(ch, sizeof ch, "Digest realm=\"r\", nonce=\"n8\", qop=\"auth\"");
  ck_assert_int_eq(answer1(&c, &g, kz_slice_cstr(ch), "p", &out), 0);
  ck_assert_ptr_nonnull(strstr((const char *)out.data, "nc=00000002"));
  /* The same nonce in another realm counts separately. */
  snprintf(ch, sizeof ch, "Digest realm=\"other\", nonce=\"n8\", qop=\"auth\"");
  ck_assert_int_eq(answer1(&c, &g, kz_slice_cstr(ch), "p", &out), 0);
  ck_assert_ptr_nonnull(strstr((const char *)out.data, "nc=00000001"));
  /* Without qop: RFC 2069 form, no cnonce, no nc; opaque echoed, escaped. */
  ck_assert_int_eq(answer1(&c, &g, S("Digest realm=\"r\\\"q\", nonce=\"x\", opaque=\"o\\\\p\""), "p",
                           &out), 0);
  ck_assert_msg(strstr((const char *)out.data, "cnonce") == NULL, "%s", out.data);
  ck_assert_ptr_null(strstr((const char *)out.data, "nc="));
  ck_assert_ptr_nonnull(strstr((const char *)out.data, "realm=\"r\\\"q\""));
  ck_assert_ptr_nonnull(strstr((const char *)out.data, "opaque=\"o\\\\p\""));
  ck_assert_ptr_null(strstr((const char *)out.data, "algorithm"));
  /* Bad arguments. */
  struct kz_sip_digest_answer_opts o = {.challenges = NULL, .nchallenges = 0};
  char reason[KZ_SIP_DIGEST_REASON_MAX];
  /* A quoted-pair may escape a NUL; the unescaped realm then cannot be
   * echoed back in a header, and the reason names what is refused. */
  static const char nul_realm[] = "Digest realm=\"a\\\0b\", nonce=\"n\"";
  struct kz_slice nul_ch = kz_slice_make(nul_realm, sizeof nul_realm - 1);
  o = (struct kz_sip_digest_answer_opts){.challenges = &nul_ch, .nchallenges = 1,
                                         .username = S("u"), .password = S("p"),
                                         .method = S("INVITE"), .uri = S("sip:x"), .prng = &g};
  ck_assert_int_eq(kz_sip_digest_answer(&c, &out, &o, reason, sizeof reason), KZ_ENOTSUP);
  ck_assert_str_eq(reason, "challenge value holds CR, LF or NUL");
  o = (struct kz_sip_digest_answer_opts){.challenges = NULL, .nchallenges = 0};
  ck_assert_int_eq(kz_sip_digest_answer(&c, &out, &o, reason, sizeof reason), KZ_EINVAL);
  struct kz_slice one = S("Digest realm=r, nonce=n");
  o = (struct kz_sip_digest_answer_opts){.challenges = &one, .nchallenges = 1,
                                         .username = S("u\r\nX: y"), .password = S("p"),
                                         .method = S("INVITE"), .uri = S("sip:x"), .prng = &g};
  ck_assert_int_eq(kz_sip_digest_answer(&c, &out, &o, NULL, 0), KZ_EINVAL);
  kz_buf_free(&out);
}
END_TEST

/* ------------------------------------------------------------------ */
/* allocation failures                                                 */

START_TEST(alloc_failure_sweep) {
  /* Every allocating entry point: fail allocation k for k = 0, 1, ...
   * until the call succeeds; each failure must be KZ_ENOMEM, leave the
   * outputs unchanged and leak nothing (the fixture counts blocks). */
  const char *escaped = "Digest realm=\"a\\\"b\", nonce=\"x\\\\y\", opaque=\"o\"";
  int k, rc;
  for (k = 0;; k++) {
    struct kz_sip_digest_auth a;
    kz_mem_fail_after(k);
    rc = kz_sip_digest_parse(&a, KZ_SIP_DIGEST_WWW_AUTHENTICATE, kz_slice_cstr(escaped));
    kz_mem_fail_after(-1);
    if (rc == 0) {
      ck_assert(kz_slice_eq_cstr(a.nonce, "x\\y"));
      kz_sip_digest_auth_clear(&a);
      break;
    }
    ck_assert_int_eq(rc, KZ_ENOMEM);
    ck_assert_ptr_null(a.store_);
  }
  ck_assert_int_eq(k, 1);

  struct kz_sip_digest_verifier *v = NULL;
  struct kz_sip_digest_verifier_cfg cfg = {.secret = SECRET, .secret_len = 32,
                                           .nonce_lifetime_s = 30};
  for (k = 0;; k++) {
    kz_mem_fail_after(k);
    rc = kz_sip_digest_verifier_new(&v, &cfg);
    kz_mem_fail_after(-1);
    if (rc == 0) break;
    ck_assert_int_eq(rc, KZ_ENOMEM);
    ck_assert_ptr_null(v);
  }
  ck_assert_int_eq(k, 2);

  struct kz_buf ch;
  kz_buf_init(&ch);
  kz_buf_append_cstr(&ch, "X");
  struct kz_sip_digest_challenge_opts o = {.realm = S("a \"quoted\" realm that is long enough "
                                                      "to need the buffer to grow once or twice"),
                                           .alg = KZ_SIP_DIGEST_SHA256, .qop_auth = true,
                                           .opaque = S("opaque")};
  for (k = 0;; k++) {
    kz_mem_fail_after(k);
    rc = kz_sip_digest_challenge(v, &ch, &o, T0);
    kz_mem_fail_after(-1);
    if (rc == 0) break;
    ck_assert_int_eq(rc, KZ_ENOMEM);
    ck_assert_uint_eq(ch.len, 1);
    ck_assert_str_eq((const char *)ch.data, "X");
  }
  ck_assert_int_gt(k, 0);
  kz_buf_consume(&ch, 1);

  struct kz_sip_digest_client c;
  kz_sip_digest_client_init(&c);
  struct kz_prng g;
  kz_prng_seed(&g, 12);
  struct kz_slice chs = kz_buf_slice(&ch);
  struct kz_sip_digest_answer_opts ao = {.challenges = &chs, .nchallenges = 1,
                                         .username = S("alice \"the\" user"), .password = S("pw"),
                                         .method = S("REGISTER"), .uri = S("sip:example.com"),
                                         .prng = &g};
  struct kz_buf out;
  kz_buf_init(&out);
  char reason[KZ_SIP_DIGEST_REASON_MAX];
  for (k = 0;; k++) {
    struct kz_sip_digest_client before = c;
    kz_mem_fail_after(k);
    rc = kz_sip_digest_answer(&c, &out, &ao, reason, sizeof reason);
    kz_mem_fail_after(-1);
    if (rc == 0) break;
    ck_assert_int_eq(rc, KZ_ENOMEM);
    ck_assert_uint_eq(out.len, 0);
    ck_assert(memcmp(&before, &c, sizeof c) == 0);
  }
  ck_assert_int_gt(k, 1); /* the challenge's escapes and the output both allocate */
  struct kz_sip_digest_auth a;
  ck_assert_int_eq(kz_sip_digest_parse(&a, KZ_SIP_DIGEST_AUTHORIZATION, kz_buf_slice(&out)), 0);
  ck_assert_uint_eq(a.nc, 1); /* failed attempts did not count */
  struct kz_sip_digest_check chk = {.method = S("REGISTER"), .realm = o.realm, .password = S("pw")};
  struct kz_sip_digest_result res;
  ck_assert_int_eq(kz_sip_digest_verify(v, &a, &chk, T0, &res), 0);
  ck_assert_msg(res.status == KZ_SIP_DIGEST_OK, "%s", res.reason);
  kz_sip_digest_auth_clear(&a);
  kz_buf_free(&out);
  kz_buf_free(&ch);
  kz_sip_digest_verifier_free(v);
}
END_TEST

int main(void) {
  Suite *s = suite_create("sip_digest");
  tcase_add_test(kz_tcase(s, "rfc2617_md5", 10), rfc2617_md5);
  tcase_add_test(kz_tcase(s, "rfc7616_md5", 10), rfc7616_md5);
  tcase_add_test(kz_tcase(s, "rfc7616_sha256", 10), rfc7616_sha256);
  tcase_add_test(kz_tcase(s, "rfc7616_challenges", 10), rfc7616_challenges);
  tcase_add_test(kz_tcase(s, "rfc8760_tie_break", 10), rfc8760_tie_break);
  tcase_add_test(kz_tcase(s, "round_trip_every_alg", 10), round_trip_every_alg);
  tcase_add_test(kz_tcase(s, "stale_after_lifetime", 10), stale_after_lifetime);
  tcase_add_test(kz_tcase(s, "forged_nonce", 10), forged_nonce);
  tcase_add_test(kz_tcase(s, "nonce_for_other_realm", 10), nonce_for_other_realm);
  tcase_add_test(kz_tcase(s, "wrong_password", 10), wrong_password);
  tcase_add_test(kz_tcase(s, "replayed_nc", 10), replayed_nc);
  tcase_add_test(kz_tcase(s, "qop_downgrade", 10), qop_downgrade);
  tcase_add_test(kz_tcase(s, "nc_table_overflow", 10), nc_table_overflow);
  tcase_add_test(kz_tcase(s, "verifier_policy", 10), verifier_policy);
  tcase_add_test(kz_tcase(s, "verifier_new_args", 10), verifier_new_args);
  tcase_add_test(kz_tcase(s, "challenge_format", 10), challenge_format);
  tcase_add_test(kz_tcase(s, "parse_details", 10), parse_details);
  tcase_add_loop_test(kz_tcase(s, "malformed_headers", 10), malformed_headers, 0,
                      (int)(sizeof bad_cases / sizeof bad_cases[0]));
  tcase_add_test(kz_tcase(s, "client_nonce_counts", 10), client_nonce_counts);
  tcase_add_test(kz_tcase(s, "alloc_failure_sweep", 30), alloc_failure_sweep);
  return kz_run_suite(s);
}
