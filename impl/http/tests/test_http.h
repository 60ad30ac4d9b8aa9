/* test_http.h — shared helpers of the kz_http Check suite: chunked feeding and message summaries. */
#ifndef KZ_TEST_HTTP_H
#define KZ_TEST_HTTP_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/http.h"

/* How th_run cuts its input. */
enum th_mode {
  TH_WHOLE,  /* one feed call */
  TH_BYTES,  /* one byte per call */
  TH_RANDOM, /* random split points from a seeded kz_prng */
};

/* Parses `len` bytes fed in `mode` chunks (seed for TH_RANDOM), then
 * signals end of stream, and returns a malloc'ed (libc) text summary:
 * one "MSG ..." line per message (start line, flags, headers, escaped
 * body) and a final "ERR code status reason" line if parsing failed.
 * Also asserts the event protocol: HEAD exactly once before each MSG,
 * all input consumed on MORE. */
char *th_run(enum kz_http_kind kind, const struct kz_http_limits *lim, const void *in, size_t len,
             enum th_mode mode, uint64_t seed);

/* Runs th_run whole, byte by byte and with 16 random seeds, asserts that
 * every summary is identical and returns the whole-feed one (free()). */
char *th_all_chunkings(enum kz_http_kind kind, const struct kz_http_limits *lim, const char *in);

/* Feeds NUL-terminated `in` at once to a fresh parser and returns the
 * result of the first call that is not KZ_HTTP_EV_HEAD or MORE (an MSG
 * event or an error); *pp receives the parser (caller frees). */
int th_parse_one(enum kz_http_kind kind, const struct kz_http_limits *lim, const char *in,
                 struct kz_http_parser **pp);

/* Asserts that `in` (as a request, or response) fails with `code` and
 * HTTP status `status` in every chunking. */
void th_expect_error(enum kz_http_kind kind, const struct kz_http_limits *lim, const char *in,
                     int code, int status);

void th_add_parser_tests(Suite *s);
void th_add_url_tests(Suite *s);
void th_add_write_tests(Suite *s);

#endif /* KZ_TEST_HTTP_H */
