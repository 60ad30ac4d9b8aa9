/* test_parser.c — request/response parser tests: chunkings, pipelining, chunked bodies, limits, malformed input, keep-alive, allocation failures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz_test.h"
#include "test_http.h"

#define REQ KZ_HTTP_REQUEST
#define RESP KZ_HTTP_RESPONSE

static void assert_slice(struct kz_slice s, const char *want) {
  ck_assert_msg(s.p != NULL, "slice is NULL, want \"%s\"", want);
  ck_assert_msg(kz_slice_eq_cstr(s, want), "got \"%.*s\", want \"%s\"", (int)s.len, s.p, want);
}

/* The summary of `in` in every chunking must equal `want`. */
static void expect_summary(enum kz_http_kind kind, const struct kz_http_limits *lim, const char *in,
                           const char *want) {
  char *sum = th_all_chunkings(kind, lim, in);
  ck_assert_str_eq(sum, want);
  free(sum);
}

START_TEST(simple_get) {
  struct kz_http_parser *p;
  int rc = th_parse_one(REQ, NULL, "GET /db/doc?rev=1 HTTP/1.1\r\nHost: a\r\nX-Two: 1\r\nx-two: 2\r\n"
                        "Accept:   application/json  \r\n\r\n", &p);
  ck_assert_int_eq(rc, KZ_HTTP_EV_MSG);
  struct kz_http_msg *m = kz_http_parser_msg(p);
  ck_assert_int_eq(m->kind, REQ);
  assert_slice(m->method, "GET");
  assert_slice(m->target, "/db/doc?rev=1");
  ck_assert_int_eq(m->version_minor, 1);
  ck_assert_uint_eq(m->nheaders, 4);
  assert_slice(kz_http_msg_header(m, "HOST"), "a");
  assert_slice(kz_http_msg_header(m, "accept"), "application/json");
  /* Repeated headers: both kept, in order, lookup is case-insensitive. */
  long i = kz_http_msg_find_header(m, "X-TWO", 0);
  ck_assert_int_eq(i, 1);
  assert_slice(m->headers[i].value, "1");
  i = kz_http_msg_find_header(m, "x-two", (size_t)i + 1);
  ck_assert_int_eq(i, 2);
  assert_slice(m->headers[i].value, "2");
  ck_assert_int_eq(kz_http_msg_find_header(m, "x-two", 3), -1);
  ck_assert_ptr_null(kz_http_msg_header(m, "missing").p);
  ck_assert(m->keep_alive);
  ck_assert(!m->expect_continue);
  ck_assert(!m->chunked);
  ck_assert(!m->has_content_length);
  ck_assert_uint_eq(m->body.len, 0);
  ck_assert_int_eq(kz_http_parser_error(p, NULL), 0);
  kz_http_parser_free(p);
}
END_TEST

START_TEST(empty_header_value) {
  struct kz_http_parser *p;
  ck_assert_int_eq(th_parse_one(REQ, NULL, "GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\n\r\n", &p),
                   KZ_HTTP_EV_MSG);
  struct kz_slice v = kz_http_msg_header(kz_http_parser_msg(p), "x-empty");
  ck_assert_ptr_nonnull(v.p);
  ck_assert_uint_eq(v.len, 0);
  kz_http_parser_free(p);
}
END_TEST

START_TEST(content_length_body_chunkings) {
  expect_summary(REQ, NULL,
                 "PUT /db/doc HTTP/1.1\r\nHost: h\r\nContent-Length: 13\r\n\r\n{\"a\":\"b\\r\\n\"}",
                 "MSG PUT /db/doc 1.1 ka=1 ec=0 ch=0 uc=0 cl=13 [Host:h] [Content-Length:13] "
                 "body=13:{\"a\":\"b\\x5cr\\x5cn\"}\n");
}
END_TEST

START_TEST(pipelined_requests) {
  const char *in =
      "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
      "\r\n" /* a stray CRLF after a body is tolerated (RFC 9112 §2.2) */
      "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
      "GET /d HTTP/1.0\r\n\r\n";
  expect_summary(REQ, NULL, in,
                 "MSG GET /a 1.1 ka=1 ec=0 ch=0 uc=0 [Host:h] body=0:\n"
                 "MSG POST /b 1.1 ka=1 ec=0 ch=0 uc=0 cl=5 [Host:h] [Content-Length:5] body=5:hello\n"
                 "MSG POST /c 1.1 ka=1 ec=0 ch=1 uc=0 [Host:h] [Transfer-Encoding:chunked] "
                 "body=3:abc\n"
                 "MSG GET /d 1.0 ka=0 ec=0 ch=0 uc=0 body=0:\n");
}
END_TEST

START_TEST(pipelined_consumed_counts) {
  /* One feed holding two messages: the first event stops mid-buffer and
   * says exactly how much it used. */
  const char *in = "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
  size_t first = strlen("GET /a HTTP/1.1\r\nHost: h\r\n\r\n"), used;
  struct kz_http_parser *p;
  ck_assert_int_eq(kz_http_parser_new(&p, REQ, NULL), 0);
  ck_assert_int_eq(kz_http_parser_feed(p, in, strlen(in), &used), KZ_HTTP_EV_HEAD);
  ck_assert_uint_eq(used, first);
  ck_assert_int_eq(kz_http_parser_feed(p, in + first, strlen(in) - first, &used), KZ_HTTP_EV_MSG);
  ck_assert_uint_eq(used, 0);
  assert_slice(kz_http_parser_msg(p)->target, "/a");
  ck_assert_int_eq(kz_http_parser_feed(p, in + first, strlen(in) - first, &used), KZ_HTTP_EV_HEAD);
  ck_assert_uint_eq(used, strlen(in) - first);
  assert_slice(kz_http_parser_msg(p)->target, "/b");
  ck_assert_int_eq(kz_http_parser_feed(p, NULL, 0, &used), KZ_HTTP_EV_MSG);
  ck_assert_int_eq(kz_http_parser_feed(p, NULL, 0, &used), KZ_HTTP_EV_MORE);
  ck_assert_int_eq(kz_http_parser_finish(p), KZ_HTTP_EV_MORE);
  kz_http_parser_free(p);
}
END_TEST

START_TEST(chunked_extensions_trailers) {
  const char *in =
      "POST /db/_bulk_docs HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"
      "5;name=value\r\nhello\r\n"
      "1 ; quoted=\"a b;c\" ;x\r\n,\r\n"
      "00006\r\n world\r\n"
      "A\r\n0123456789\r\n"
      "0;last\r\n"
      "X-Checksum: abc\r\nX-Other:   spaced value \r\n\r\n"
      "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
  expect_summary(REQ, NULL, in,
                 "MSG POST /db/_bulk_docs 1.1 ka=1 ec=0 ch=1 uc=0 [Host:h] "
                 "[Transfer-Encoding:Chunked] body=22:hello, world0123456789\n"
                 "MSG GET /next 1.1 ka=1 ec=0 ch=0 uc=0 [Host:h] body=0:\n");
}
END_TEST

START_TEST(chunked_empty_body) {
  expect_summary(REQ, NULL, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                 "MSG POST / 1.1 ka=1 ec=0 ch=1 uc=0 [Host:h] [Transfer-Encoding:chunked] body=0:\n");
}
END_TEST

START_TEST(chunked_binary_body) {
  /* Chunk data is opaque: CR, LF and NUL inside it are just bytes. */
  static const char in[] = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "4\r\n\r\n\0\n\r\n0\r\n\r\n";
  size_t len = sizeof(in) - 1;
  char *whole = th_run(REQ, NULL, in, len, TH_WHOLE, 0);
  char *bytes = th_run(REQ, NULL, in, len, TH_BYTES, 0);
  ck_assert_str_eq(whole, bytes);
  ck_assert_ptr_nonnull(strstr(whole, "body=4:\\x0d\\x0a\\x00\\x0a\n"));
  free(whole);
  free(bytes);
}
END_TEST

START_TEST(expect_continue_head_event) {
  const char *head =
      "PUT /db/doc/att HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 4\r\n\r\n";
  struct kz_http_parser *p;
  size_t used;
  ck_assert_int_eq(kz_http_parser_new(&p, REQ, NULL), 0);
  ck_assert_int_eq(kz_http_parser_feed(p, head, strlen(head), &used), KZ_HTTP_EV_HEAD);
  ck_assert_uint_eq(used, strlen(head));
  struct kz_http_msg *m = kz_http_parser_msg(p);
  ck_assert(m->expect_continue);
  ck_assert(m->has_content_length);
  ck_assert_uint_eq(m->content_length, 4);
  /* Nothing more yet: the server would now send "100 Continue". */
  ck_assert_int_eq(kz_http_parser_feed(p, NULL, 0, &used), KZ_HTTP_EV_MORE);
  ck_assert_int_eq(kz_http_parser_feed(p, "da", 2, &used), KZ_HTTP_EV_MORE);
  ck_assert_int_eq(kz_http_parser_feed(p, "ta", 2, &used), KZ_HTTP_EV_MSG);
  assert_slice(kz_buf_slice(&m->body), "data");
  kz_http_parser_free(p);

  /* HTTP/1.0 requests ignore Expect (RFC 9110 §10.1.1). */
  ck_assert_int_eq(
      th_parse_one(REQ, NULL, "PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n", &p),
      KZ_HTTP_EV_MSG);
  ck_assert(!kz_http_parser_msg(p)->expect_continue);
  kz_http_parser_free(p);
}
END_TEST

static bool keep_alive_of(const char *in) {
  struct kz_http_parser *p;
  ck_assert_int_eq(th_parse_one(REQ, NULL, in, &p), KZ_HTTP_EV_MSG);
  bool ka = kz_http_parser_msg(p)->keep_alive;
  kz_http_parser_free(p);
  return ka;
}

START_TEST(keep_alive_decisions) {
  ck_assert(keep_alive_of("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
  ck_assert(!keep_alive_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
  ck_assert(!keep_alive_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: CLOSE\r\n\r\n"));
  ck_assert(!keep_alive_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: te, close\r\n\r\n"));
  ck_assert(!keep_alive_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: te\r\nConnection: close\r\n\r\n"));
  ck_assert(keep_alive_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n"));
  ck_assert(!keep_alive_of("GET / HTTP/1.0\r\n\r\n"));
  ck_assert(keep_alive_of("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
  /* close wins over keep-alive whatever the version. */
  ck_assert(!keep_alive_of("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"));
  /* Higher 1.x minors are read as 1.1 (RFC 9110 §2.5). */
  ck_assert(keep_alive_of("GET / HTTP/1.7\r\nHost: h\r\n\r\n"));
}
END_TEST

START_TEST(leading_crlf_and_finish) {
  struct kz_http_parser *p;
  size_t used;
  ck_assert_int_eq(kz_http_parser_new(&p, REQ, NULL), 0);
  ck_assert_int_eq(kz_http_parser_feed(p, "\r\n\r\n", 4, &used), KZ_HTTP_EV_MORE);
  /* Only stray CRLFs so far: closing now is clean. */
  ck_assert_int_eq(kz_http_parser_finish(p), KZ_HTTP_EV_MORE);
  ck_assert_int_eq(kz_http_parser_feed(p, "GET / HT", 8, &used), KZ_HTTP_EV_MORE);
  ck_assert_int_eq(kz_http_parser_finish(p), KZ_EPROTO);
  const char *reason;
  ck_assert_int_eq(kz_http_parser_error(p, &reason), 400);
  ck_assert_str_eq(reason, "connection closed inside a message");
  kz_http_parser_free(p);
  /* Truncated body. */
  th_expect_error(REQ, NULL, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc", KZ_EPROTO,
                  400);
  th_expect_error(REQ, NULL, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                  KZ_EPROTO, 400);
}
END_TEST

START_TEST(limit_request_line) {
  struct kz_http_limits lim = {.max_start_line = 20};
  /* "GET /123456 HTTP/1.1" is exactly 20 bytes: allowed. */
  expect_summary(REQ, &lim, "GET /123456 HTTP/1.1\r\nHost: h\r\n\r\n",
                 "MSG GET /123456 1.1 ka=1 ec=0 ch=0 uc=0 [Host:h] body=0:\n");
  th_expect_error(REQ, &lim, "GET /1234567 HTTP/1.1\r\nHost: h\r\n\r\n", KZ_EMSGSIZE, 414);
  /* Refused as soon as the limit is passed, before any CRLF arrives. */
  struct kz_http_parser *p;
  size_t used;
  ck_assert_int_eq(kz_http_parser_new(&p, REQ, &lim), 0);
  ck_assert_int_eq(kz_http_parser_feed(p, "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 34, &used), KZ_EMSGSIZE);
  const char *reason;
  ck_assert_int_eq(kz_http_parser_error(p, &reason), 414);
  ck_assert_str_eq(reason, "request line too long");
  kz_http_parser_free(p);
}
END_TEST

START_TEST(limit_header_bytes) {
  struct kz_http_limits lim = {.max_header_bytes = 32};
  /* 9 + 21 + 2 = 32 bytes of header section, CRLFs included. */
  const char *ok = "GET / HTTP/1.1\r\nHost: h\r\nX: 1234567890123456\r\n\r\n";
  expect_summary(REQ, &lim, ok, "MSG GET / 1.1 ka=1 ec=0 ch=0 uc=0 [Host:h] [X:1234567890123456] body=0:\n");
  th_expect_error(REQ, &lim, "GET / HTTP/1.1\r\nHost: h\r\nX: 12345678901234567\r\n\r\n", KZ_EMSGSIZE,
                  431);
  /* A header that never ends is cut off at the limit, not buffered. */
  struct kz_http_parser *p;
  size_t used;
  ck_assert_int_eq(kz_http_parser_new(&p, REQ, &lim), 0);
  const char *head = "GET / HTTP/1.1\r\nX: ";
  ck_assert_int_eq(kz_http_parser_feed(p, head, strlen(head), &used), KZ_HTTP_EV_MORE);
  int rc = 0;
  for (int i = 0; i < 100 && rc == 0; i++) rc = kz_http_parser_feed(p, "a", 1, &used);
  ck_assert_int_eq(rc, KZ_EMSGSIZE);
  ck_assert_int_eq(kz_http_parser_error(p, NULL), 431);
  kz_http_parser_free(p);
}
END_TEST

START_TEST(limit_header_count) {
  struct kz_http_limits lim = {.max_headers = 3};
  expect_summary(REQ, &lim, "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n",
                 "MSG GET / 1.1 ka=1 ec=0 ch=0 uc=0 [Host:h] [A:1] [B:2] body=0:\n");
  th_expect_error(REQ, &lim, "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", KZ_EMSGSIZE,
                  431);
}
END_TEST

START_TEST(limit_body) {
  struct kz_http_limits lim = {.max_body = 10};
  expect_summary(REQ, &lim, "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789",
                 "MSG PUT / 1.1 ka=1 ec=0 ch=0 uc=0 cl=10 [Host:h] [Content-Length:10] "
                 "body=10:0123456789\n");
  /* Content-Length over the limit is refused at the head, before the body
   * is sent: with Expect: 100-continue the client never uploads it. */
  struct kz_http_parser *p;
  size_t used;
  const char *head = "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n";
  ck_assert_int_eq(kz_http_parser_new(&p, REQ, &lim), 0);
  ck_assert_int_eq(kz_http_parser_feed(p, head, strlen(head), &used), KZ_EMSGSIZE);
  const char *reason;
  ck_assert_int_eq(kz_http_parser_error(p, &reason), 413);
  ck_assert_str_eq(reason, "body too large");
  kz_http_parser_free(p);
  /* Chunked: the sum of chunks counts, and an oversized chunk-size is
   * refused before its data arrives. */
  expect_summary(REQ, &lim,
                 "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n"
                 "5\r\n56789\r\n0\r\n\r\n",
                 "MSG PUT / 1.1 ka=1 ec=0 ch=1 uc=0 [Host:h] [Transfer-Encoding:chunked] "
                 "body=10:0123456789\n");
  th_expect_error(REQ, &lim,
                  "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n"
                  "6\r\n567890\r\n0\r\n\r\n",
                  KZ_EMSGSIZE, 413);
  th_expect_error(REQ, &lim,
                  "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n",
                  KZ_EMSGSIZE, 413);
  /* Huge chunk size with the default (64 MiB) limit: no overflow either. */
  th_expect_error(REQ, NULL,
                  "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "10000000000000000000000001\r\n",
                  KZ_EMSGSIZE, 413);
}
END_TEST

START_TEST(limit_trailers) {
  struct kz_http_limits lim = {.max_header_bytes = 40, .max_headers = 2};
  th_expect_error(REQ, &lim,
                  "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
                  "X-Trailer: 0123456789012345678901234567890123456789\r\n\r\n",
                  KZ_EMSGSIZE, 431);
  th_expect_error(REQ, &lim,
                  "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\nB: 2\r\n"
                  "C: 3\r\n\r\n",
                  KZ_EMSGSIZE, 431);
}
END_TEST

START_TEST(limit_chunk_line) {
  char in[6000];
  int n = snprintf(in, sizeof(in), "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;");
  memset(in + n, 'x', 5000);
  strcpy(in + n + 5000, "\r\na\r\n0\r\n\r\n");
  th_expect_error(REQ, NULL, in, KZ_EPROTO, 400);
}
END_TEST

/* Each entry is a malformed request and the status it must get. */
struct bad_case {
  const char *in;
  int code;
  int status;
};

static const struct bad_case bad_requests[] = {
    /* request line */
    {"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", KZ_EPROTO, 400},
    {"GET\x01 / HTTP/1.1\r\nHost: h\r\n\r\n", KZ_EPROTO, 400},
    {" GET / HTTP/1.1\r\nHost: h\r\n\r\n", KZ_EPROTO, 400},
    {"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", KZ_EPROTO, 400},
    {"GET / HTTP/1.1 \r\nHost: h\r\n\r\n", KZ_EPROTO, 400},
    {"GET /\r\nHost: h\r\n\r\n", KZ_EPROTO, 400},
    {"GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", KZ_EPROTO, 400},
    {"GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", KZ_EPROTO, 400},
    {"GET / HTTX/1.1\r\nHost: h\r\n\r\n", KZ_EPROTO, 400},
    {"GET / HTTP/1.10\r\nHost: h\r\n\r\n", KZ_EPROTO, 400},
    {"GET / http/1.1\r\nHost: h\r\n\r\n", KZ_EPROTO, 400},
    {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", KZ_ENOTSUP, 505},
    {"GET / HTTP/0.9\r\nHost: h\r\n\r\n", KZ_ENOTSUP, 505},
    /* line endings */
    {"GET / HTTP/1.1\nHost: h\r\n\r\n", KZ_EPROTO, 400},
    {"GET / HTTP/1.1\r\nHost: h\n\r\n", KZ_EPROTO, 400},
    {"GET / HTTP/1.1\r\nHost: h\r\n\n", KZ_EPROTO, 400},
    {"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", KZ_EPROTO, 400},
    /* header fields */
    {"GET / HTTP/1.1\r\nHost : h\r\n\r\n", KZ_EPROTO, 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nContent-Length\t: 0\r\n\r\n", KZ_EPROTO, 400},
    {"GET / HTTP/1.1\r\nHost: h\r\n: empty\r\n\r\n", KZ_EPROTO, 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", KZ_EPROTO, 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nBad[Name]: v\r\n\r\n", KZ_EPROTO, 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n", KZ_EPROTO, 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", KZ_EPROTO, 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", KZ_EPROTO, 400},  /* obs-fold */
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", KZ_EPROTO, 400}, /* obs-fold */
    {"GET / HTTP/1.1\r\n Host: h\r\n\r\n", KZ_EPROTO, 400},
    {"GET / HTTP/1.1\r\n\r\n", KZ_EPROTO, 400},                          /* no Host */
    {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", KZ_EPROTO, 400},
    {"GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n", KZ_EPROTO, 400},
    /* Content-Length */
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", KZ_EPROTO, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\nx", KZ_EPROTO, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\nx", KZ_EPROTO, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", KZ_EPROTO, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n", KZ_EPROTO, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n", KZ_EPROTO, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n", KZ_EPROTO, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551616\r\n\r\n", KZ_EPROTO, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", KZ_EPROTO,
     400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\nhello!", KZ_EPROTO, 400},
    /* Transfer-Encoding */
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     KZ_EPROTO, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
     KZ_EPROTO, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", KZ_ENOTSUP, 501},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", KZ_ENOTSUP, 501},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", KZ_ENOTSUP, 501},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", KZ_EPROTO, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", KZ_EPROTO, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
     KZ_EPROTO, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,\r\n\r\n", KZ_EPROTO, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", KZ_EPROTO, 400},
    {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", KZ_EPROTO, 400},
    /* chunked framing */
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", KZ_EPROTO, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", KZ_EPROTO, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", KZ_EPROTO, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n", KZ_EPROTO, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", KZ_EPROTO,
     400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", KZ_EPROTO,
     400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n", KZ_EPROTO,
     400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3 4\r\nabc\r\n", KZ_EPROTO, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;a\x01\r\nabc\r\n", KZ_EPROTO,
     400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n",
     KZ_EPROTO, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX : a\r\n\r\n", KZ_EPROTO,
     400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: \x01\r\n\r\n", KZ_EPROTO,
     400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\r\n", KZ_EPROTO, 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\n\r\n", KZ_EPROTO, 400},
};

START_TEST(malformed_requests) {
  const struct bad_case *c = &bad_requests[_i];
  th_expect_error(REQ, NULL, c->in, c->code, c->status);
}
END_TEST

START_TEST(nul_in_header_value) {
  static const char in[] = "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n";
  char *sum = th_run(REQ, NULL, in, sizeof(in) - 1, TH_BYTES, 0);
  ck_assert_str_eq(sum, "ERR KZ_EPROTO 400 invalid character in header value\n");
  free(sum);
}
END_TEST

START_TEST(smuggling_reasons) {
  struct kz_http_parser *p;
  const char *reason;
  ck_assert_int_eq(th_parse_one(REQ, NULL,
                                "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n",
                                &p),
                   KZ_EPROTO);
  ck_assert_int_eq(kz_http_parser_error(p, &reason), 400);
  ck_assert_str_eq(reason, "both Content-Length and Transfer-Encoding");
  kz_http_parser_free(p);
  ck_assert_int_eq(th_parse_one(REQ, NULL, "GET / HTTP/1.1\r\nHost : h\r\n\r\n", &p), KZ_EPROTO);
  kz_http_parser_error(p, &reason);
  ck_assert_str_eq(reason, "whitespace before colon in header");
  kz_http_parser_free(p);
  ck_assert_int_eq(th_parse_one(REQ, NULL, "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", &p),
                   KZ_EPROTO);
  kz_http_parser_error(p, &reason);
  ck_assert_str_eq(reason, "obsolete line folding");
  kz_http_parser_free(p);
  ck_assert_int_eq(th_parse_one(REQ, NULL,
                                "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                                "Content-Length: 6\r\n\r\n",
                                &p),
                   KZ_EPROTO);
  kz_http_parser_error(p, &reason);
  ck_assert_str_eq(reason, "conflicting Content-Length");
  kz_http_parser_free(p);
}
END_TEST

START_TEST(duplicate_identical_content_length) {
  /* RFC 9110 §8.6: identical values may be accepted as one. */
  expect_summary(REQ, NULL,
                 "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
                 "MSG POST / 1.1 ka=1 ec=0 ch=0 uc=0 cl=3 [Host:h] [Content-Length:3] "
                 "[Content-Length:3] body=3:abc\n");
  expect_summary(REQ, NULL, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3 , 3\r\n\r\nabc",
                 "MSG POST / 1.1 ka=1 ec=0 ch=0 uc=0 cl=3 [Host:h] [Content-Length:3 , 3] "
                 "body=3:abc\n");
  expect_summary(REQ, NULL, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 003\r\n\r\nabc",
                 "MSG POST / 1.1 ka=1 ec=0 ch=0 uc=0 cl=3 [Host:h] [Content-Length:003] "
                 "body=3:abc\n");
}
END_TEST

START_TEST(request_target_forms) {
  expect_summary(REQ, NULL, "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
                 "MSG OPTIONS * 1.1 ka=1 ec=0 ch=0 uc=0 [Host:h] body=0:\n");
  expect_summary(REQ, NULL, "GET http://h:5984/db?x=%20 HTTP/1.1\r\nHost: h\r\n\r\n",
                 "MSG GET http://h:5984/db?x=%20 1.1 ka=1 ec=0 ch=0 uc=0 [Host:h] body=0:\n");
  /* Unknown but well-formed methods are the application's business. */
  expect_summary(REQ, NULL, "COPY /db/a HTTP/1.1\r\nHost: h\r\nDestination: b\r\n\r\n",
                 "MSG COPY /db/a 1.1 ka=1 ec=0 ch=0 uc=0 [Host:h] [Destination:b] body=0:\n");
}
END_TEST

START_TEST(error_is_sticky) {
  struct kz_http_parser *p;
  size_t used = 99;
  ck_assert_int_eq(kz_http_parser_new(&p, REQ, NULL), 0);
  ck_assert_int_eq(kz_http_parser_feed(p, "BAD\n", 4, &used), KZ_EPROTO);
  ck_assert_int_eq(kz_http_parser_feed(p, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 28, &used), KZ_EPROTO);
  ck_assert_uint_eq(used, 0);
  ck_assert_int_eq(kz_http_parser_finish(p), KZ_EPROTO);
  ck_assert_int_eq(kz_http_parser_error(p, NULL), 400);
  kz_http_parser_free(p);
  ck_assert_int_eq(kz_http_parser_new(NULL, REQ, NULL), KZ_EINVAL);
  ck_assert_int_eq(kz_http_parser_new(&p, (enum kz_http_kind)7, NULL), KZ_EINVAL);
  ck_assert_int_eq(kz_http_parser_feed(NULL, "x", 1, &used), KZ_EINVAL);
  kz_http_parser_free(NULL);
}
END_TEST

START_TEST(take_body) {
  struct kz_http_parser *p;
  ck_assert_int_eq(th_parse_one(REQ, NULL, "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc", &p),
                   KZ_HTTP_EV_MSG);
  struct kz_buf body;
  kz_http_msg_take_body(kz_http_parser_msg(p), &body);
  ck_assert_uint_eq(kz_http_parser_msg(p)->body.len, 0);
  /* The next message builds a new body; the taken one is unaffected. */
  size_t used;
  const char *next = "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nxy";
  ck_assert_int_eq(kz_http_parser_feed(p, next, strlen(next), &used), KZ_HTTP_EV_HEAD);
  ck_assert_int_eq(kz_http_parser_feed(p, next + used, strlen(next) - used, &used), KZ_HTTP_EV_MSG);
  assert_slice(kz_buf_slice(&kz_http_parser_msg(p)->body), "xy");
  kz_http_parser_free(p);
  assert_slice(kz_buf_slice(&body), "abc");
  kz_buf_free(&body);
}
END_TEST

START_TEST(large_body_memory_released) {
  /* A 200 KiB body, then a small request: still correct (the big buffer
   * is released between messages rather than kept). */
  size_t n = 200 * 1024;
  char *in = malloc(n + 200);
  int h = sprintf(in, "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: %zu\r\n\r\n", n);
  memset(in + h, 'z', n);
  strcpy(in + h + n, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  char *sum = th_run(REQ, NULL, in, strlen(in), TH_RANDOM, 3);
  ck_assert_ptr_nonnull(strstr(sum, "body=204800:zzz"));
  ck_assert_ptr_nonnull(strstr(sum, "MSG GET / 1.1"));
  free(sum);
  free(in);
}
END_TEST

/* ---- responses ---- */

START_TEST(response_basic) {
  struct kz_http_parser *p;
  ck_assert_int_eq(th_parse_one(RESP, NULL,
                                "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                                "Content-Length: 11\r\n\r\n{\"ok\":true}",
                                &p),
                   KZ_HTTP_EV_MSG);
  struct kz_http_msg *m = kz_http_parser_msg(p);
  ck_assert_int_eq(m->kind, RESP);
  ck_assert_int_eq(m->status, 201);
  assert_slice(m->reason, "Created");
  ck_assert(m->keep_alive);
  assert_slice(kz_buf_slice(&m->body), "{\"ok\":true}");
  kz_http_parser_free(p);
}
END_TEST

START_TEST(response_framings) {
  expect_summary(RESP, NULL,
                 "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nabcd\r\n0\r\nT: v\r\n\r\n"
                 "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"
                 "HTTP/1.1 304 Not Modified\r\nETag: \"1\"\r\nContent-Length: 5\r\n\r\n"
                 "HTTP/1.1 100 Continue\r\n\r\n"
                 "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok"
                 "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"
                 "HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\nrest of stream",
                 "MSG 200 OK 1.1 ka=1 ec=0 ch=1 uc=0 [Transfer-Encoding:chunked] body=4:abcd\n"
                 "MSG 204 No Content 1.1 ka=1 ec=0 ch=0 uc=0 [Content-Length:7] body=0:\n"
                 "MSG 304 Not Modified 1.1 ka=1 ec=0 ch=0 uc=0 [ETag:\"1\"] [Content-Length:5] body=0:\n"
                 "MSG 100 Continue 1.1 ka=1 ec=0 ch=0 uc=0 body=0:\n"
                 "MSG 200  1.1 ka=1 ec=0 ch=0 uc=0 cl=2 [Content-Length:2] body=2:ok\n"
                 "MSG 200 OK 1.0 ka=1 ec=0 ch=0 uc=0 cl=0 [Connection:keep-alive] [Content-Length:0] "
                 "body=0:\n"
                 "MSG 404 Not Found 1.1 ka=0 ec=0 ch=0 uc=1 [Connection:close] body=14:rest of stream\n");
}
END_TEST

START_TEST(response_until_close) {
  struct kz_http_parser *p;
  size_t used;
  ck_assert_int_eq(kz_http_parser_new(&p, RESP, NULL), 0);
  const char *in = "HTTP/1.0 200 OK\r\n\r\nall of it";
  ck_assert_int_eq(kz_http_parser_feed(p, in, strlen(in), &used), KZ_HTTP_EV_HEAD);
  ck_assert(kz_http_parser_msg(p)->until_close);
  ck_assert(!kz_http_parser_msg(p)->keep_alive);
  ck_assert_int_eq(kz_http_parser_feed(p, in + used, strlen(in) - used, &used), KZ_HTTP_EV_MORE);
  ck_assert_int_eq(kz_http_parser_finish(p), KZ_HTTP_EV_MSG);
  assert_slice(kz_buf_slice(&kz_http_parser_msg(p)->body), "all of it");
  ck_assert_int_eq(kz_http_parser_finish(p), KZ_HTTP_EV_MORE);
  kz_http_parser_free(p);
}
END_TEST

START_TEST(response_to_head) {
  struct kz_http_parser *p;
  size_t used;
  const char *in = "HTTP/1.1 100 Continue\r\n\r\n"
                   "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
                   "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
  ck_assert_int_eq(kz_http_parser_new(&p, RESP, NULL), 0);
  kz_http_parser_expect_head_response(p);
  size_t off = 0;
  int statuses[3], bodies[3], n = 0, rc;
  while ((rc = kz_http_parser_feed(p, in + off, strlen(in) - off, &used)) != KZ_HTTP_EV_MORE) {
    off += used;
    ck_assert_int_ge(rc, 0);
    if (rc == KZ_HTTP_EV_MSG) {
      statuses[n] = kz_http_parser_msg(p)->status;
      bodies[n++] = (int)kz_http_parser_msg(p)->body.len;
    }
  }
  /* The interim 100 does not use up the HEAD flag; the 200 does. */
  ck_assert_int_eq(n, 3);
  ck_assert_int_eq(statuses[0], 100);
  ck_assert_int_eq(statuses[1], 200);
  ck_assert_int_eq(bodies[1], 0);
  ck_assert_int_eq(bodies[2], 2);
  kz_http_parser_free(p);
}
END_TEST

START_TEST(response_obs_fold_unfolded) {
  /* RFC 9112 §5.2: a user agent replaces obs-fold with SP. */
  expect_summary(RESP, NULL, "HTTP/1.1 200 OK\r\nX-Long: part one\r\n  part two\r\n\tthree\r\n"
                             "Content-Length: 0\r\n\r\n",
                 "MSG 200 OK 1.1 ka=1 ec=0 ch=0 uc=0 cl=0 [X-Long:part one    part two  \\x09three] "
                 "[Content-Length:0] body=0:\n");
  th_expect_error(RESP, NULL, "HTTP/1.1 200 OK\r\n X: y\r\n\r\n", KZ_EPROTO, 400);
}
END_TEST

START_TEST(response_101_switching) {
  struct kz_http_parser *p;
  ck_assert_int_eq(th_parse_one(RESP, NULL, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", &p),
                   KZ_HTTP_EV_MSG);
  ck_assert(!kz_http_parser_msg(p)->keep_alive);
  kz_http_parser_free(p);
}
END_TEST

static const struct bad_case bad_responses[] = {
    {"HTTP/1.1 20 OK\r\n\r\n", KZ_EPROTO, 400},
    {"HTTP/1.1 2000 OK\r\n\r\n", KZ_EPROTO, 400},
    {"HTTP/1.1 099 Odd\r\n\r\n", KZ_EPROTO, 400},
    {"HTTP/1.1 600 Odd\r\n\r\n", KZ_EPROTO, 400},
    {"HTTP/1.1 abc OK\r\n\r\n", KZ_EPROTO, 400},
    {"HTTP/1.1  200 OK\r\n\r\n", KZ_EPROTO, 400},
    {"HTTP/1.1 200 O\x01K\r\n\r\n", KZ_EPROTO, 400},
    {"HTTP/3.0 200 OK\r\n\r\n", KZ_ENOTSUP, 505},
    {"ICY 200 OK\r\n\r\n", KZ_EPROTO, 400},
    {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", KZ_EPROTO, 400},
    {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", KZ_EPROTO, 400},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", KZ_ENOTSUP, 501},
    {"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", KZ_EPROTO, 400},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nq\r\n", KZ_EPROTO, 400},
    {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc", KZ_EPROTO, 400},
};

START_TEST(malformed_responses) {
  const struct bad_case *c = &bad_responses[_i];
  th_expect_error(RESP, NULL, c->in, c->code, c->status);
}
END_TEST

START_TEST(response_limits) {
  struct kz_http_limits lim = {.max_start_line = 16, .max_body = 4};
  th_expect_error(RESP, &lim, "HTTP/1.1 200 OK-long-reason\r\n\r\n", KZ_EMSGSIZE, 400);
  th_expect_error(RESP, &lim, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", KZ_EMSGSIZE, 413);
  th_expect_error(RESP, &lim, "HTTP/1.1 200 OK\r\n\r\n12345", KZ_EMSGSIZE, 413);
  expect_summary(RESP, &lim, "HTTP/1.1 200 OK\r\n\r\n1234",
                 "MSG 200 OK 1.1 ka=0 ec=0 ch=0 uc=1 body=4:1234\n");
}
END_TEST

/* ---- allocation failures ---- */

static const char sweep_input[] =
    "POST /db%2Fname/_bulk_docs?new_edits=false HTTP/1.1\r\nHost: localhost:5984\r\n"
    "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nX-B: 2\r\n"
    "Expect: 100-continue\r\n\r\n"
    "10;ext=1\r\n{\"docs\":[{\"a\":1}\r\n2\r\n]}\r\n0\r\nX-Trailer: t\r\n\r\n"
    "GET /db HTTP/1.1\r\nHost: localhost\r\n\r\n";

/* Parses sweep_input in 7-byte pieces; returns 0 with 2 messages, or the
 * first error. */
static int sweep_once(void) {
  struct kz_http_parser *p = NULL;
  int rc = kz_http_parser_new(&p, REQ, NULL);
  if (rc) return rc;
  size_t len = sizeof(sweep_input) - 1, off = 0;
  int msgs = 0;
  while (off < len) {
    size_t n = len - off < 7 ? len - off : 7, used;
    rc = kz_http_parser_feed(p, sweep_input + off, n, &used);
    if (rc < 0) break;
    off += used;
    if (rc == KZ_HTTP_EV_MSG) {
      msgs++;
      if (msgs == 1) ck_assert_uint_eq(kz_http_parser_msg(p)->body.len, 18);
    }
  }
  if (rc >= 0) {
    size_t used;
    rc = kz_http_parser_feed(p, NULL, 0, &used);
    if (rc == KZ_HTTP_EV_MSG) msgs++;
    if (rc >= 0) rc = kz_http_parser_finish(p);
  }
  if (rc >= 0) ck_assert_int_eq(msgs, 2);
  if (rc == KZ_ENOMEM) ck_assert_int_eq(kz_http_parser_error(p, NULL), 500);
  kz_http_parser_free(p);
  return rc < 0 ? rc : 0;
}

START_TEST(alloc_failure_sweep) {
  kz_mem_fail_after(-1);
  uint64_t before = kz_mem_alloc_count();
  ck_assert_int_eq(sweep_once(), 0);
  uint64_t needed = kz_mem_alloc_count() - before;
  ck_assert_uint_gt(needed, 0);
  for (int64_t k = 0; k <= (int64_t)needed; k++) {
    int64_t live = kz_mem_live_blocks();
    kz_mem_fail_after(k);
    int rc = sweep_once();
    kz_mem_fail_after(-1);
    ck_assert_int_eq(kz_mem_live_blocks(), live);
    if (k < (int64_t)needed) {
      ck_assert_msg(rc == KZ_ENOMEM, "k=%lld: rc=%d", (long long)k, rc);
    } else {
      ck_assert_int_eq(rc, 0);
    }
  }
}
END_TEST

void th_add_parser_tests(Suite *s) {
  TCase *tc = kz_tcase(s, "parser_requests", 60);
  tcase_add_test(tc, simple_get);
  tcase_add_test(tc, empty_header_value);
  tcase_add_test(tc, content_length_body_chunkings);
  tcase_add_test(tc, pipelined_requests);
  tcase_add_test(tc, pipelined_consumed_counts);
  tcase_add_test(tc, chunked_extensions_trailers);
  tcase_add_test(tc, chunked_empty_body);
  tcase_add_test(tc, chunked_binary_body);
  tcase_add_test(tc, expect_continue_head_event);
  tcase_add_test(tc, keep_alive_decisions);
  tcase_add_test(tc, leading_crlf_and_finish);
  tcase_add_test(tc, request_target_forms);
  tcase_add_test(tc, error_is_sticky);
  tcase_add_test(tc, take_body);
  tcase_add_test(tc, large_body_memory_released);

  tc = kz_tcase(s, "parser_limits", 60);
  tcase_add_test(tc, limit_request_line);
  tcase_add_test(tc, limit_header_bytes);
  tcase_add_test(tc, limit_header_count);
  tcase_add_test(tc, limit_body);
  tcase_add_test(tc, limit_trailers);
  tcase_add_test(tc, limit_chunk_line);

  tc = kz_tcase(s, "parser_malformed", 60);
  tcase_add_loop_test(tc, malformed_requests, 0, (int)(sizeof(bad_requests) / sizeof(bad_requests[0])));
  tcase_add_test(tc, nul_in_header_value);
  tcase_add_test(tc, smuggling_reasons);
  tcase_add_test(tc, duplicate_identical_content_length);

  tc = kz_tcase(s, "parser_responses", 60);
  tcase_add_test(tc, response_basic);
  tcase_add_test(tc, response_framings);
  tcase_add_test(tc, response_until_close);
  tcase_add_test(tc, response_to_head);
  tcase_add_test(tc, response_obs_fold_unfolded);
  tcase_add_test(tc, response_101_switching);
  tcase_add_loop_test(tc, malformed_responses, 0,
                      (int)(sizeof(bad_responses) / sizeof(bad_responses[0])));
  tcase_add_test(tc, response_limits);

  tc = kz_tcase(s, "parser_alloc_failures", 120);
  tcase_add_test(tc, alloc_failure_sweep);
}
