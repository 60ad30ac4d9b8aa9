/* test_addr.c — kz_addr parsing, formatting, comparison. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "core_tests.h"
#include "kz/env.h"
#include "kz/error.h"

static void roundtrip(const char *in, const char *want) {
  struct kz_addr a;
  char out[KZ_ADDR_STRLEN];
  ck_assert_msg(kz_addr_parse(&a, in) == 0, "parse %s", in);
  size_t n = kz_addr_format(&a, out, sizeof(out));
  ck_assert_str_eq(out, want);
  ck_assert_uint_eq(n, strlen(want));
  struct kz_addr b;
  ck_assert_int_eq(kz_addr_parse(&b, out), 0);
  ck_assert(kz_addr_eq(&a, &b));
}

START_TEST(addr_parse_format) {
  roundtrip("1.2.3.4:5060", "1.2.3.4:5060");
  roundtrip("127.0.0.1", "127.0.0.1:0");
  roundtrip("0.0.0.0:0", "0.0.0.0:0");
  roundtrip("255.255.255.255:65535", "255.255.255.255:65535");
  roundtrip("[::1]:5060", "[::1]:5060");
  roundtrip("[::]", "[::]:0");
  roundtrip("[2001:DB8:0:0:0:0:0:1]:80", "[2001:db8::1]:80");
  roundtrip("[fe80::1:2:3:4]:1", "[fe80::1:2:3:4]:1");
  roundtrip("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");

  struct kz_addr a;
  ck_assert_int_eq(kz_addr_parse(&a, "10.1.2.3:7"), 0);
  ck_assert_uint_eq(a.family, 4);
  ck_assert_uint_eq(a.port, 7);
  ck_assert_uint_eq(a.ip[0], 10);
  ck_assert_uint_eq(a.ip[3], 3);
  ck_assert_uint_eq(kz_addr_v4_host(&a), 0x0a010203u);
  struct kz_addr b = kz_addr_v4(0x0a010203u, 7);
  ck_assert(kz_addr_eq(&a, &b));
  b.port = 8;
  ck_assert(!kz_addr_eq(&a, &b));

  ck_assert_int_eq(kz_addr_parse(&a, "[::1]:9"), 0);
  ck_assert_uint_eq(a.family, 6);
  ck_assert_uint_eq(a.ip[15], 1);
  ck_assert_uint_eq(kz_addr_v4_host(&a), 0);
  char ip[KZ_ADDR_STRLEN];
  ck_assert_uint_eq(kz_addr_format_ip(&a, ip, sizeof(ip)), 3);
  ck_assert_str_eq(ip, "::1");
  b = kz_addr_v4(0x7f000001u, 9);
  ck_assert(!kz_addr_eq(&a, &b)); /* family differs */
  ck_assert_uint_eq(kz_addr_format_ip(&b, ip, sizeof(ip)), 9);
  ck_assert_str_eq(ip, "127.0.0.1");

  /* Truncation keeps snprintf semantics: the full length is returned. */
  char small[6];
  ck_assert_uint_eq(kz_addr_format(&b, small, sizeof(small)), 11);
  ck_assert_str_eq(small, "127.0");
}
END_TEST

START_TEST(addr_rejects) {
  static const char *bad[] = {
      "", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:-1",
      "1.2.3.4:+1", "1.2.3.4:123456", "01.2.3.4", "1.2.3.4 ", " 1.2.3.4", "a.b.c.d",
      "1..2.3", "1.2.3.4:80x", "::1", "[::1", "[::1]:", "[::1]x", "[]", "[::1]:99999",
      "[1.2.3.4]", "[::g]", "[1:2:3:4:5:6:7:8:9]", "localhost:80", "1.2.3.4:5:6",
  };
  struct kz_addr a = kz_addr_v4(0x01020304u, 5);
  struct kz_addr keep = a;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    ck_assert_msg(kz_addr_parse(&a, bad[i]) == KZ_EINVAL, "accepted \"%s\"", bad[i]);
    ck_assert(kz_addr_eq(&a, &keep)); /* *out untouched on error */
  }
  ck_assert_int_eq(kz_addr_parse(&a, NULL), KZ_EINVAL);
}
END_TEST

/* The one IPv4 literal parser: strict for configuration, leading zeros
 * (decimal) for SIP and SDP; both agree with inet_pton wherever inet_pton
 * accepts. */
START_TEST(ip4_parse_modes) {
  uint8_t ip[4];
  ck_assert(kz_ip4_parse("10.0.0.1", 8, 0, ip));
  ck_assert_int_eq(ip[0], 10);
  ck_assert(!kz_ip4_parse("010.0.0.1", 9, 0, ip));
  ck_assert(kz_ip4_parse("010.000.000.001", 15, KZ_IP4_LEADING_ZEROS, ip));
  ck_assert(ip[0] == 10 && ip[1] == 0 && ip[2] == 0 && ip[3] == 1); /* decimal, not octal */
  ck_assert(kz_ip4_parse("1.2.3.4xyz", 7, 0, NULL));                   /* only n bytes count */
  static const char *bad[] = {"", "1.2.3", "1.2.3.4.", ".1.2.3.4", "1.2.3.4.5", "256.0.0.1", "1.2.3.0256",
                              "1..2.3", "1.2.3.-4", "1.2.3.4 ", "0x1.2.3.4", "1.2.3.1000"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    for (unsigned f = 0; f < 2; f++)
      ck_assert_msg(!kz_ip4_parse(bad[i], strlen(bad[i]), f, ip), "accepted \"%s\" (%u)", bad[i], f);
  /* Every quad of the parts below: strict mode and inet_pton agree. */
  static const char *parts[] = {"0", "00", "1", "01", "9", "10", "99", "100", "255", "256", "001", "1000"};
  const size_t np = sizeof parts / sizeof parts[0];
  for (size_t a = 0; a < np; a++)
    for (size_t b = 0; b < np; b++) {
      char text[64];
      snprintf(text, sizeof text, "%s.%s.1.%s", parts[a], parts[b], parts[(a + b) % np]);
      struct in_addr want;
      bool pton = inet_pton(AF_INET, text, &want) == 1;
      bool ours = kz_ip4_parse(text, strlen(text), 0, ip);
      ck_assert_msg(ours == pton, "%s: kz %d, inet_pton %d", text, ours, pton);
      if (ours) ck_assert_int_eq(memcmp(ip, &want, 4), 0);
    }
}
END_TEST

START_TEST(addr_from_literal) {
  struct kz_addr a;
  ck_assert_int_eq(kz_addr_from_literal(&a, "10.1.2.3", 8, 5060, 0), 0);
  struct kz_addr want;
  kz_addr_parse(&want, "10.1.2.3:5060");
  ck_assert(kz_addr_eq(&a, &want));
  ck_assert_int_eq(kz_addr_from_literal(&a, "010.1.2.3", 9, 5060, 0), KZ_EINVAL);
  ck_assert(kz_addr_eq(&a, &want)); /* untouched on error */
  ck_assert_int_eq(kz_addr_from_literal(&a, "010.1.2.3", 9, 5060, KZ_IP4_LEADING_ZEROS), 0);
  ck_assert(kz_addr_eq(&a, &want));
  kz_addr_parse(&want, "[2001:db8::1]:5070");
  ck_assert_int_eq(kz_addr_from_literal(&a, "2001:db8::1", 11, 5070, 0), 0);
  ck_assert(kz_addr_eq(&a, &want));
  ck_assert_int_eq(kz_addr_from_literal(&a, "[2001:db8::1]", 13, 5070, 0), 0);
  ck_assert(kz_addr_eq(&a, &want));
  static const char *bad[] = {"", "[]", "example.com", "1.2.3", "[1.2.3.4]x", "2001:db8::g", "[::1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(kz_addr_from_literal(&a, bad[i], strlen(bad[i]), 1, KZ_IP4_LEADING_ZEROS) == KZ_EINVAL,
                  "accepted \"%s\"", bad[i]);
}
END_TEST

void kz_core_test_addr(Suite *s) {
  TCase *tc = kz_tcase(s, "addr", 10);
  tcase_add_test(tc, addr_parse_format);
  tcase_add_test(tc, addr_rejects);
  tcase_add_test(tc, ip4_parse_modes);
  tcase_add_test(tc, addr_from_literal);
}
