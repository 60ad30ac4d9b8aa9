/* test_addr.c — kz_addr parsing, formatting, comparison. */
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

void kz_core_test_addr(Suite *s) {
  TCase *tc = kz_tcase(s, "addr", 10);
  tcase_add_test(tc, addr_parse_format);
  tcase_add_test(tc, addr_rejects);
}
