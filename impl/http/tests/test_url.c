/* test_url.c — tests of request-target splitting, percent-decoding, decoded path segments and query pairs. */
#include <string.h>

#include "kz/error.h"
#include "kz/http_url.h"
#include "kz/mem.h"
#include "kz_test.h"
#include "test_http.h"

static void assert_slice(struct kz_slice s, const char *want) {
  ck_assert_msg(s.p != NULL, "slice is NULL, want \"%s\"", want);
  ck_assert_msg(kz_slice_eq_cstr(s, want), "got \"%.*s\", want \"%s\"", (int)s.len, s.p, want);
}

static void split_ok(const char *target, const char *path, const char *query) {
  struct kz_slice pa, q;
  ck_assert_int_eq(kz_http_target_split(kz_slice_cstr(target), &pa, &q, NULL), 0);
  assert_slice(pa, path);
  if (query) {
    assert_slice(q, query);
  } else {
    ck_assert_ptr_null(q.p);
  }
}

START_TEST(target_split) {
  split_ok("/db/doc", "/db/doc", NULL);
  split_ok("/db/_all_docs?include_docs=true&limit=10", "/db/_all_docs", "include_docs=true&limit=10");
  split_ok("/db?", "/db", "");
  split_ok("/a?b?c", "/a", "b?c");
  split_ok("/a#frag", "/a", NULL);
  split_ok("/a?x=1#frag?y", "/a", "x=1");
  split_ok("*", "*", NULL);
  split_ok("http://localhost:5984/db/doc?rev=1-abc", "/db/doc", "rev=1-abc");
  split_ok("HTTPS://h", "/", NULL);
  split_ok("http://h?q=1", "/", "q=1");
  split_ok("coap+tcp://h/x", "/x", NULL);
  struct kz_slice pa, q;
  const char *reason = NULL;
  ck_assert_int_eq(kz_http_target_split(kz_slice_cstr(""), &pa, &q, &reason), KZ_EPROTO);
  ck_assert_str_eq(reason, "empty request target");
  ck_assert_int_eq(kz_http_target_split(kz_slice_cstr("#x"), &pa, &q, NULL), KZ_EPROTO);
  ck_assert_int_eq(kz_http_target_split(kz_slice_cstr("localhost:5984"), &pa, &q, &reason), KZ_EPROTO);
  ck_assert_str_eq(reason, "unsupported request-target form");
  ck_assert_int_eq(kz_http_target_split(kz_slice_cstr("db/doc"), &pa, &q, NULL), KZ_EPROTO);
  ck_assert_int_eq(kz_http_target_split(kz_slice_cstr("1http://h/"), &pa, &q, NULL), KZ_EPROTO);
  ck_assert_int_eq(kz_http_target_split(kz_slice_cstr("**"), &pa, &q, NULL), KZ_EPROTO);
}
END_TEST

static void decode_ok(const char *in, bool plus, const char *want, size_t want_len) {
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_http_pct_decode(kz_slice_cstr(in), plus, &b, NULL), 0);
  ck_assert_uint_eq(b.len, want_len);
  ck_assert(want_len == 0 || memcmp(b.data, want, want_len) == 0);
  kz_buf_free(&b);
}

static void decode_bad(const char *in, size_t len, const char *why) {
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_buf_append_cstr(&b, "keep"), 0);
  const char *reason = NULL;
  ck_assert_int_eq(kz_http_pct_decode(kz_slice_make(in, len), false, &b, &reason), KZ_EPROTO);
  ck_assert_str_eq(reason, why);
  /* Nothing appended on failure. */
  assert_slice(kz_buf_slice(&b), "keep");
  kz_buf_free(&b);
}

START_TEST(pct_decode_cases) {
  decode_ok("", false, "", 0);
  decode_ok("plain", false, "plain", 5);
  decode_ok("%41%42c", false, "ABc", 3);
  decode_ok("%4a%4A", false, "JJ", 2);
  decode_ok("%2F%2f", false, "//", 2);
  decode_ok("%25", false, "%", 1);
  decode_ok("%2525", false, "%25", 3); /* decoded once, never twice */
  decode_ok("%C3%A9t%C3%A9", false, "\xc3\xa9t\xc3\xa9", 5);
  decode_ok("%ff%80", false, "\xff\x80", 2);
  decode_ok("a+b%2B", false, "a+b+", 4);
  decode_ok("a+b%2B", true, "a b+", 4);
  decode_bad("%", 1, "truncated percent-encoding");
  decode_bad("ab%4", 4, "truncated percent-encoding");
  decode_bad("%G1", 3, "invalid percent-encoding");
  decode_bad("%1G", 3, "invalid percent-encoding");
  decode_bad("%%41", 4, "invalid percent-encoding");
  decode_bad("% 41", 4, "invalid percent-encoding");
  decode_bad("%00", 3, "encoded NUL in URL");
  decode_bad("a\0b", 3, "NUL byte in URL");
  decode_bad("ok%4", 3, "truncated percent-encoding"); /* the slice ends before the '4' */
}
END_TEST

static void segments_ok(const char *path, size_t n, const char *const *want) {
  struct kz_http_strlist l;
  ck_assert_int_eq(kz_http_path_segments(kz_slice_cstr(path), &l, NULL), 0);
  ck_assert_uint_eq(l.n, n);
  for (size_t i = 0; i < n; i++) {
    assert_slice(l.items[i], want[i]);
    /* Each item is also a C string. */
    ck_assert_uint_eq(strlen(l.items[i].p), l.items[i].len);
  }
  kz_http_strlist_free(&l);
}

START_TEST(path_segments) {
  segments_ok("/", 0, NULL);
  segments_ok("", 0, NULL);
  segments_ok("/db", 1, (const char *const[]){"db"});
  /* CouchDB database names with '/' arrive as %2F and stay one segment. */
  segments_ok("/accounts%2Fab%2Fcd%2F1234/doc%20id", 2,
              (const char *const[]){"accounts/ab/cd/1234", "doc id"});
  segments_ok("/db/_design/app/_view/by%2Bname", 5,
              (const char *const[]){"db", "_design", "app", "_view", "by+name"});
  segments_ok("/a//b/", 4, (const char *const[]){"a", "", "b", ""});
  segments_ok("a/b", 2, (const char *const[]){"a", "b"});
  segments_ok("/%2F", 1, (const char *const[]){"/"});
  segments_ok("/a+b", 1, (const char *const[]){"a+b"});
  segments_ok("//", 2, (const char *const[]){"", ""});

  struct kz_http_strlist l;
  const char *reason = NULL;
  ck_assert_int_eq(kz_http_path_segments(kz_slice_cstr("/db/%zz"), &l, &reason), KZ_EPROTO);
  ck_assert_str_eq(reason, "invalid percent-encoding");
  ck_assert_uint_eq(l.n, 0);
  ck_assert_ptr_null(l.items);
  ck_assert_int_eq(kz_http_path_segments(kz_slice_cstr("/db%00x"), &l, &reason), KZ_EPROTO);
  ck_assert_str_eq(reason, "encoded NUL in URL");
  ck_assert_uint_eq(l.n, 0);
}
END_TEST

START_TEST(query_parse) {
  struct kz_http_query q;
  ck_assert_int_eq(
      kz_http_query_parse(kz_slice_cstr("a=1&b=x+y&c&d=&&e=%26%3D&=v&k=a=b&a=2&key%20sp=%22q%22"), &q,
                          NULL),
      0);
  const char *keys[] = {"a", "b", "c", "d", "e", "", "k", "a", "key sp"};
  const char *vals[] = {"1", "x y", "", "", "&=", "v", "a=b", "2", "\"q\""};
  ck_assert_uint_eq(q.keys.n, 9);
  ck_assert_uint_eq(q.values.n, 9);
  for (size_t i = 0; i < 9; i++) {
    assert_slice(q.keys.items[i], keys[i]);
    assert_slice(q.values.items[i], vals[i]);
    ck_assert_uint_eq(strlen(q.values.items[i].p), q.values.items[i].len);
  }
  assert_slice(kz_http_query_get(&q, "a"), "1"); /* first wins */
  assert_slice(kz_http_query_get(&q, "key sp"), "\"q\"");
  ck_assert_ptr_null(kz_http_query_get(&q, "zz").p);
  kz_http_query_free(&q);

  ck_assert_int_eq(kz_http_query_parse(kz_slice_cstr(""), &q, NULL), 0);
  ck_assert_uint_eq(q.keys.n, 0);
  ck_assert_ptr_null(kz_http_query_get(&q, "a").p);
  kz_http_query_free(&q);
  ck_assert_int_eq(kz_http_query_parse(kz_slice_cstr("&&&"), &q, NULL), 0);
  ck_assert_uint_eq(q.keys.n, 0);
  kz_http_query_free(&q);

  const char *reason = NULL;
  ck_assert_int_eq(kz_http_query_parse(kz_slice_cstr("a=1&b=%2"), &q, &reason), KZ_EPROTO);
  ck_assert_str_eq(reason, "truncated percent-encoding");
  ck_assert_uint_eq(q.keys.n, 0);
  ck_assert_int_eq(kz_http_query_parse(kz_slice_cstr("a%00=1"), &q, &reason), KZ_EPROTO);
  ck_assert_str_eq(reason, "encoded NUL in URL");
}
END_TEST

START_TEST(url_alloc_failure_sweep) {
  for (int64_t k = 0;; k++) {
    int64_t live = kz_mem_live_blocks();
    kz_mem_fail_after(k);
    struct kz_http_strlist l;
    struct kz_http_query q;
    int rc = kz_http_path_segments(kz_slice_cstr("/a%2Fb/c/d"), &l, NULL);
    if (!rc) {
      rc = kz_http_query_parse(kz_slice_cstr("x=1&y=2+3&z"), &q, NULL);
      if (!rc) {
        ck_assert_uint_eq(q.keys.n, 3);
        kz_http_query_free(&q);
      }
      ck_assert_uint_eq(l.n, 3);
      kz_http_strlist_free(&l);
    }
    kz_mem_fail_after(-1);
    ck_assert_int_eq(kz_mem_live_blocks(), live);
    if (rc == 0) break;
    ck_assert_int_eq(rc, KZ_ENOMEM);
    ck_assert_int_lt(k, 100);
  }
}
END_TEST

void th_add_url_tests(Suite *s) {
  TCase *tc = kz_tcase(s, "url", 30);
  tcase_add_test(tc, target_split);
  tcase_add_test(tc, pct_decode_cases);
  tcase_add_test(tc, path_segments);
  tcase_add_test(tc, query_parse);
  tcase_add_test(tc, url_alloc_failure_sweep);
}
