/* test_write.c — writer tests: exact bytes, injection refusal, rollback on failure, and parse-back round trips. */
#include <stdlib.h>
#include <string.h>

#include "kz/error.h"
#include "kz/http_write.h"
#include "kz/mem.h"
#include "kz_test.h"
#include "test_http.h"

static void assert_buf(const struct kz_buf *b, const char *want) {
  ck_assert_msg(kz_slice_eq_cstr(kz_buf_slice(b), want), "got \"%.*s\"\nwant \"%s\"", (int)b->len,
                b->data ? (const char *)b->data : "", want);
}

START_TEST(reason_phrases) {
  ck_assert_str_eq(kz_http_reason_phrase(100), "Continue");
  ck_assert_str_eq(kz_http_reason_phrase(200), "OK");
  ck_assert_str_eq(kz_http_reason_phrase(201), "Created");
  ck_assert_str_eq(kz_http_reason_phrase(304), "Not Modified");
  ck_assert_str_eq(kz_http_reason_phrase(404), "Not Found");
  ck_assert_str_eq(kz_http_reason_phrase(409), "Conflict");
  ck_assert_str_eq(kz_http_reason_phrase(412), "Precondition Failed");
  ck_assert_str_eq(kz_http_reason_phrase(413), "Content Too Large");
  ck_assert_str_eq(kz_http_reason_phrase(414), "URI Too Long");
  ck_assert_str_eq(kz_http_reason_phrase(431), "Request Header Fields Too Large");
  ck_assert_str_eq(kz_http_reason_phrase(505), "HTTP Version Not Supported");
  ck_assert_str_eq(kz_http_reason_phrase(299), "Unknown");
  ck_assert_str_eq(kz_http_reason_phrase(-1), "Unknown");
}
END_TEST

START_TEST(write_lines) {
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_http_write_status_line(&b, 404, NULL), 0);
  ck_assert_int_eq(kz_http_write_header_cstr(&b, "Content-Type", "application/json"), 0);
  ck_assert_int_eq(kz_http_write_header_u64(&b, "X-Count", 18446744073709551615ull), 0);
  ck_assert_int_eq(kz_http_write_header(&b, "X-Empty", KZ_SLICE_NULL), 0);
  ck_assert_int_eq(kz_http_write_end_head(&b), 0);
  assert_buf(&b, "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                 "X-Count: 18446744073709551615\r\nX-Empty: \r\n\r\n");
  kz_buf_reset(&b);
  ck_assert_int_eq(kz_http_write_status_line(&b, 200, "Fine"), 0);
  ck_assert_int_eq(kz_http_write_request_line(&b, "PUT", kz_slice_cstr("/db/a%2Fb?batch=ok")), 0);
  assert_buf(&b, "HTTP/1.1 200 Fine\r\nPUT /db/a%2Fb?batch=ok HTTP/1.1\r\n");
  kz_buf_free(&b);
}
END_TEST

START_TEST(write_refuses_injection) {
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_buf_append_cstr(&b, "prefix"), 0);
  ck_assert_int_eq(kz_http_write_header_cstr(&b, "X", "a\r\nSet-Cookie: evil"), KZ_EINVAL);
  ck_assert_int_eq(kz_http_write_header_cstr(&b, "X", "a\nb"), KZ_EINVAL);
  ck_assert_int_eq(kz_http_write_header(&b, "X", kz_slice_make("a\0b", 3)), KZ_EINVAL);
  ck_assert_int_eq(kz_http_write_header_cstr(&b, "Bad Name", "v"), KZ_EINVAL);
  ck_assert_int_eq(kz_http_write_header_cstr(&b, "Bad:Name", "v"), KZ_EINVAL);
  ck_assert_int_eq(kz_http_write_header_cstr(&b, "", "v"), KZ_EINVAL);
  ck_assert_int_eq(kz_http_write_header_cstr(&b, NULL, "v"), KZ_EINVAL);
  ck_assert_int_eq(kz_http_write_header_cstr(&b, "X", NULL), KZ_EINVAL);
  ck_assert_int_eq(kz_http_write_header_u64(&b, "X Y", 1), KZ_EINVAL);
  ck_assert_int_eq(kz_http_write_status_line(&b, 200, "OK\r\nX: y"), KZ_EINVAL);
  ck_assert_int_eq(kz_http_write_status_line(&b, 99, NULL), KZ_EINVAL);
  ck_assert_int_eq(kz_http_write_status_line(&b, 600, NULL), KZ_EINVAL);
  ck_assert_int_eq(kz_http_write_request_line(&b, "GET", kz_slice_cstr("/a b")), KZ_EINVAL);
  ck_assert_int_eq(kz_http_write_request_line(&b, "GET", kz_slice_cstr("")), KZ_EINVAL);
  ck_assert_int_eq(kz_http_write_request_line(&b, "G T", kz_slice_cstr("/")), KZ_EINVAL);
  ck_assert_int_eq(kz_http_write_request_line(&b, "GET", kz_slice_cstr("/\r\n")), KZ_EINVAL);
  struct kz_http_header bad_h[] = {{KZ_SLICE_LIT("Content-Length"), KZ_SLICE_LIT("3")}};
  ck_assert_int_eq(kz_http_write_response(&b, 200, bad_h, 1, "abc", 3, false), KZ_EINVAL);
  struct kz_http_header bad_v[] = {{KZ_SLICE_LIT("X"), KZ_SLICE_LIT("ok")},
                                   {KZ_SLICE_LIT("Y"), KZ_SLICE_LIT("a\r\nb")}};
  ck_assert_int_eq(kz_http_write_response(&b, 200, bad_v, 2, "abc", 3, false), KZ_EINVAL);
  ck_assert_int_eq(kz_http_write_response(&b, 204, NULL, 0, "abc", 3, false), KZ_EINVAL);
  assert_buf(&b, "prefix");
  kz_buf_free(&b);
}
END_TEST

START_TEST(write_response_roundtrip) {
  struct kz_buf b;
  kz_buf_init(&b);
  struct kz_http_header hs[] = {{KZ_SLICE_LIT("Content-Type"), KZ_SLICE_LIT("application/json")},
                                {KZ_SLICE_LIT("ETag"), KZ_SLICE_LIT("\"1-abc\"")}};
  const char *body = "{\"ok\":true,\"id\":\"a\",\"rev\":\"1-abc\"}\n";
  ck_assert_int_eq(kz_http_write_response(&b, 201, hs, 2, body, strlen(body), false), 0);
  ck_assert_int_eq(kz_http_write_response(&b, 204, NULL, 0, NULL, 0, false), 0);
  ck_assert_int_eq(kz_http_write_response(&b, 404, NULL, 0, "{}", 2, true), 0);
  assert_buf(&b, "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nETag: \"1-abc\"\r\n"
                 "Content-Length: 35\r\n\r\n{\"ok\":true,\"id\":\"a\",\"rev\":\"1-abc\"}\n"
                 "HTTP/1.1 204 No Content\r\n\r\n"
                 "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}");
  char *sum = th_all_chunkings(KZ_HTTP_RESPONSE, NULL, (const char *)b.data);
  ck_assert_str_eq(sum,
                   "MSG 201 Created 1.1 ka=1 ec=0 ch=0 uc=0 cl=35 [Content-Type:application/json] "
                   "[ETag:\"1-abc\"] [Content-Length:35] "
                   "body=35:{\"ok\":true,\"id\":\"a\",\"rev\":\"1-abc\"}\\x0a\n"
                   "MSG 204 No Content 1.1 ka=1 ec=0 ch=0 uc=0 body=0:\n"
                   "MSG 404 Not Found 1.1 ka=0 ec=0 ch=0 uc=0 cl=2 [Connection:close] "
                   "[Content-Length:2] body=2:{}\n");
  free(sum);
  kz_buf_free(&b);
}
END_TEST

START_TEST(write_chunked_roundtrip) {
  struct kz_buf b;
  kz_buf_init(&b);
  ck_assert_int_eq(kz_http_write_request_line(&b, "POST", kz_slice_cstr("/db/_bulk_docs")), 0);
  ck_assert_int_eq(kz_http_write_header_cstr(&b, "Host", "db.local"), 0);
  ck_assert_int_eq(kz_http_write_header_cstr(&b, "Transfer-Encoding", "chunked"), 0);
  ck_assert_int_eq(kz_http_write_end_head(&b), 0);
  char big[300];
  memset(big, 'q', sizeof(big));
  ck_assert_int_eq(kz_http_write_chunk(&b, "{\"docs\":", 8), 0);
  ck_assert_int_eq(kz_http_write_chunk(&b, NULL, 0), 0); /* writes nothing */
  ck_assert_int_eq(kz_http_write_chunk(&b, big, sizeof(big)), 0);
  ck_assert_int_eq(kz_http_write_last_chunk(&b), 0);
  ck_assert_ptr_nonnull(strstr((const char *)b.data, "\r\n\r\n8\r\n{\"docs\":\r\n12c\r\nqqq"));
  ck_assert_ptr_nonnull(strstr((const char *)b.data, "qqq\r\n0\r\n\r\n"));
  char *sum = th_all_chunkings(KZ_HTTP_REQUEST, NULL, (const char *)b.data);
  ck_assert_ptr_nonnull(strstr(sum, "MSG POST /db/_bulk_docs 1.1 ka=1 ec=0 ch=1 uc=0 "
                                    "[Host:db.local] [Transfer-Encoding:chunked] body=308:{\"docs\":qqq"));
  free(sum);
  kz_buf_free(&b);
}
END_TEST

START_TEST(write_alloc_failure_sweep) {
  struct kz_http_header hs[] = {{KZ_SLICE_LIT("Content-Type"), KZ_SLICE_LIT("text/plain")}};
  char body[500];
  memset(body, 'b', sizeof(body));
  for (int64_t k = 0;; k++) {
    struct kz_buf b;
    kz_buf_init(&b);
    ck_assert_int_eq(kz_buf_append_cstr(&b, "x"), 0);
    kz_mem_fail_after(k);
    int rc = kz_http_write_response(&b, 200, hs, 1, body, sizeof(body), false);
    if (!rc) rc = kz_http_write_chunk(&b, body, sizeof(body));
    kz_mem_fail_after(-1);
    if (rc) {
      ck_assert_int_eq(rc, KZ_ENOMEM);
      /* Whatever failed, no half-written line is left behind. */
      ck_assert(b.len == 1 || (b.len > 500 && b.data[b.len - 1] == 'b'));
    }
    kz_buf_free(&b);
    if (!rc) break;
    ck_assert_int_lt(k, 50);
  }
}
END_TEST

void th_add_write_tests(Suite *s) {
  TCase *tc = kz_tcase(s, "write", 30);
  tcase_add_test(tc, reason_phrases);
  tcase_add_test(tc, write_lines);
  tcase_add_test(tc, write_refuses_injection);
  tcase_add_test(tc, write_response_roundtrip);
  tcase_add_test(tc, write_chunked_roundtrip);
  tcase_add_test(tc, write_alloc_failure_sweep);
}
