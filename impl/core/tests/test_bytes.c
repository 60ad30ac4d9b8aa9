/* test_bytes.c — big- and little-endian puts and gets of kz/bytes.h. */
#include <string.h>

#include "core_tests.h"
#include "kz/bytes.h"

START_TEST(bytes_orders) {
  uint8_t b[10];
  memset(b, 0xee, sizeof b);
  kz_put_be16(b + 1, 0x1234);
  ck_assert(b[0] == 0xee && b[1] == 0x12 && b[2] == 0x34 && b[3] == 0xee);
  ck_assert_uint_eq(kz_get_be16(b + 1), 0x1234);
  kz_put_be32(b + 1, 0x89abcdefu); /* unaligned on purpose */
  static const uint8_t be32[] = {0x89, 0xab, 0xcd, 0xef};
  ck_assert(!memcmp(b + 1, be32, 4) && b[5] == 0xee);
  ck_assert_uint_eq(kz_get_be32(b + 1), 0x89abcdefu);
  kz_put_be64(b + 1, UINT64_C(0x0102030405060708));
  for (int i = 0; i < 8; i++) ck_assert_uint_eq(b[1 + i], (unsigned)(i + 1));
  ck_assert(b[0] == 0xee && b[9] == 0xee);
  ck_assert(kz_get_be64(b + 1) == UINT64_C(0x0102030405060708));
  kz_put_le32(b, 0xa1b2c3d4u);
  static const uint8_t le32[] = {0xd4, 0xc3, 0xb2, 0xa1};
  ck_assert(!memcmp(b, le32, 4));
  kz_put_le16(b, 0xfffe);
  ck_assert(b[0] == 0xfe && b[1] == 0xff);
  kz_put_be64(b, UINT64_MAX);
  ck_assert(kz_get_be64(b) == UINT64_MAX);
}
END_TEST

void kz_core_test_bytes(Suite *s) {
  TCase *tc = kz_tcase(s, "bytes", 10);
  tcase_add_test(tc, bytes_orders);
}
