/* test_prng.c — PRNG determinism (pinned outputs), sub-stream independence, bounds, hash. */
#include <stdbool.h>
#include <string.h>

#include "core_tests.h"
#include "kz/prng.h"

/* Pinned: splitmix64-seeded xoshiro256** (checked against an independent
 * implementation once).  If these change, every simulation trace does. */
START_TEST(prng_known_outputs) {
  static const uint64_t seed0[] = {0x99ec5f36cb75f2b4ull, 0xbf6e1f784956452aull,
                                   0x1a5f849d4933e6e0ull, 0x6aa594f1262d2d2cull};
  static const uint64_t seed1[] = {0xb3f2af6d0fc710c5ull, 0x853b559647364ceaull,
                                   0x92f89756082a4514ull, 0x642e1c7bc266a3a7ull};
  struct kz_prng g;
  kz_prng_seed(&g, 0);
  for (int i = 0; i < 4; i++) ck_assert_uint_eq(kz_prng_next(&g), seed0[i]);
  kz_prng_seed(&g, 1);
  for (int i = 0; i < 4; i++) ck_assert_uint_eq(kz_prng_next(&g), seed1[i]);
}
END_TEST

/* Pinned: kz_hash64 is XXH64; these are the published XXH64 vectors and
 * values checked against the reference libxxhash (every path: the short
 * tail, the 4-byte and 1-byte tails, the four-lane loop, a seed).  If
 * they change, every simulation trace and map layout does. */
START_TEST(prng_hash_known) {
  ck_assert_uint_eq(kz_hash64("", 0, 0), 0xef46db3751d8e999ull);
  ck_assert_uint_eq(kz_hash64("a", 1, 0), 0xd24ec4f1a98c6e5bull);
  ck_assert_uint_eq(kz_hash64("abc", 3, 0), 0x44bc2cf5ad770999ull);
  ck_assert_uint_eq(kz_hash64("a", 1, 1), 0xdec2bc81c3cd46c6ull);
  static const char fox[] = "The quick brown fox jumps over the lazy dog";
  ck_assert_uint_eq(kz_hash64(fox, sizeof fox - 1, 0), 0x0b242d361fda71bcull);
  static const char hex40[] = "0123456789abcdef0123456789abcdef01234567";
  ck_assert_uint_eq(kz_hash64(hex40, 40, 7), 0x1943e563463b0abaull);
  uint8_t seq[100];
  for (int i = 0; i < 100; i++) seq[i] = (uint8_t)i;
  ck_assert_uint_eq(kz_hash64(seq, sizeof seq, 0x6b7a), 0x9bceba6255080da9ull);
  /* Alignment does not matter: the words are read byte by byte. */
  uint8_t shifted[101];
  memcpy(shifted + 1, seq, sizeof seq);
  ck_assert_uint_eq(kz_hash64(shifted + 1, sizeof seq, 0x6b7a), 0x9bceba6255080da9ull);
  /* The seed changes the hash; content, not address, decides it. */
  ck_assert_uint_ne(kz_hash64("a", 1, 0), kz_hash64("a", 1, 1));
  char x[] = "abc", y[] = "abc";
  ck_assert_uint_eq(kz_hash64(x, 3, 9), kz_hash64(y, 3, 9));
  ck_assert_uint_ne(kz_hash64("abc", 3, 0), kz_hash64("abd", 3, 0));
  ck_assert_uint_ne(kz_hash64("ab", 2, 0), kz_hash64("abc", 3, 0));
}
END_TEST

START_TEST(prng_determinism) {
  struct kz_prng a, b;
  kz_prng_seed(&a, 12345);
  kz_prng_seed(&b, 12345);
  for (int i = 0; i < 1000; i++) ck_assert_uint_eq(kz_prng_next(&a), kz_prng_next(&b));
  kz_prng_seed(&b, 12346);
  int same = 0;
  for (int i = 0; i < 100; i++) same += kz_prng_next(&a) == kz_prng_next(&b);
  ck_assert_int_eq(same, 0);
}
END_TEST

START_TEST(prng_derive) {
  struct kz_prng a, b, a2, parent, parent_ref;
  kz_prng_derive(&a, 7, "sip");
  kz_prng_derive(&b, 7, "rtp");
  kz_prng_derive(&a2, 7, "sip");
  int same = 0;
  for (int i = 0; i < 100; i++) {
    uint64_t x = kz_prng_next(&a);
    ck_assert_uint_eq(x, kz_prng_next(&a2));
    same += x == kz_prng_next(&b);
  }
  ck_assert_int_eq(same, 0);
  /* Same name, other seed: another stream. */
  kz_prng_derive(&a, 7, "sip");
  kz_prng_derive(&b, 8, "sip");
  ck_assert_uint_ne(kz_prng_next(&a), kz_prng_next(&b));
  /* The derived stream is not the root stream. */
  kz_prng_derive(&a, 7, "sip");
  kz_prng_seed(&b, 7);
  ck_assert_uint_ne(kz_prng_next(&a), kz_prng_next(&b));

  /* Deriving draws from no generator: a parent's sequence is unchanged
   * whether or not children are derived in between. */
  kz_prng_seed(&parent, 99);
  kz_prng_seed(&parent_ref, 99);
  for (int i = 0; i < 10; i++) {
    kz_prng_derive(&a, 99, "child");
    kz_prng_derive_id(&b, 99, (uint64_t)i);
    kz_prng_next(&a);
    ck_assert_uint_eq(kz_prng_next(&parent), kz_prng_next(&parent_ref));
  }

  /* Numbered sub-streams are distinct from each other. */
  kz_prng_derive_id(&a, 5, 1);
  kz_prng_derive_id(&b, 5, 2);
  kz_prng_derive_id(&a2, 5, 1);
  uint64_t x = kz_prng_next(&a);
  ck_assert_uint_ne(x, kz_prng_next(&b));
  ck_assert_uint_eq(x, kz_prng_next(&a2));
}
END_TEST

START_TEST(prng_below_range) {
  struct kz_prng g;
  kz_prng_seed(&g, 3);
  ck_assert_uint_eq(kz_prng_below(&g, 0), 0);
  ck_assert_uint_eq(kz_prng_below(&g, 1), 0);
  int hist[7] = {0};
  for (int i = 0; i < 70000; i++) {
    uint64_t v = kz_prng_below(&g, 7);
    ck_assert_uint_lt(v, 7);
    hist[v]++;
  }
  /* Each bucket expects 10000; 5 sigma is about 470. */
  for (int i = 0; i < 7; i++) {
    ck_assert_int_gt(hist[i], 9500);
    ck_assert_int_lt(hist[i], 10500);
  }
  /* A bound just over 2^63 rejects about half the draws: still in range. */
  uint64_t big = (1ull << 63) + 12345;
  for (int i = 0; i < 1000; i++) ck_assert_uint_lt(kz_prng_below(&g, big), big);
  bool seen_lo = false, seen_hi = false;
  for (int i = 0; i < 1000; i++) {
    uint64_t v = kz_prng_range(&g, 10, 12);
    ck_assert(v >= 10 && v <= 12);
    seen_lo |= v == 10;
    seen_hi |= v == 12;
  }
  ck_assert(seen_lo && seen_hi);
  ck_assert_uint_eq(kz_prng_range(&g, 5, 5), 5);
  (void)kz_prng_range(&g, 0, UINT64_MAX);

  int hits = 0;
  for (int i = 0; i < 100000; i++) hits += kz_prng_chance_ppm(&g, 250000);
  ck_assert_int_gt(hits, 24000);
  ck_assert_int_lt(hits, 26000);
  for (int i = 0; i < 1000; i++) {
    ck_assert_int_eq(kz_prng_chance_ppm(&g, 0), 0);
    ck_assert_int_eq(kz_prng_chance_ppm(&g, 1000000), 1);
  }
}
END_TEST

START_TEST(prng_bytes_hex) {
  struct kz_prng g, h;
  kz_prng_seed(&g, 0);
  uint8_t bytes[11];
  kz_prng_bytes(&g, bytes, sizeof(bytes));
  /* Little-endian bytes of the first outputs. */
  ck_assert_uint_eq(bytes[0], 0xb4);
  ck_assert_uint_eq(bytes[7], 0x99);
  ck_assert_uint_eq(bytes[8], 0x2a);

  char hex[41];
  memset(hex, '!', sizeof(hex));
  kz_prng_seed(&g, 42);
  kz_prng_hex(&g, hex, 40);
  ck_assert_int_eq(hex[40], '!'); /* no NUL written */
  for (int i = 0; i < 40; i++) ck_assert(strchr("0123456789abcdef", hex[i]) && hex[i]);
  char hex2[40];
  kz_prng_seed(&h, 42);
  kz_prng_hex(&h, hex2, 40);
  ck_assert_int_eq(memcmp(hex, hex2, 40), 0);
  kz_prng_hex(&h, hex2, 0);
}
END_TEST

/* A NULL name is "" and never reaches the hash as NULL + 0 (undefined;
 * clang's pointer-overflow check reports it). */
START_TEST(prng_derive_null_name) {
  struct kz_prng a, b;
  kz_prng_derive(&a, 42, NULL);
  kz_prng_derive(&b, 42, "");
  ck_assert_mem_eq(a.s, b.s, sizeof(a.s));
  ck_assert_uint_eq(kz_hash64(NULL, 0, 7), kz_hash64("", 0, 7));
}
END_TEST

void kz_core_test_prng(Suite *s) {
  TCase *tc = kz_tcase(s, "prng", 20);
  tcase_add_test(tc, prng_known_outputs);
  tcase_add_test(tc, prng_hash_known);
  tcase_add_test(tc, prng_determinism);
  tcase_add_test(tc, prng_derive);
  tcase_add_test(tc, prng_derive_null_name);
  tcase_add_test(tc, prng_below_range);
  tcase_add_test(tc, prng_bytes_hex);
}
