/* test_http.c — kz_http Check suite entry point and the chunked-feeding helpers every test file uses. */
#include "test_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/error.h"
#include "kz/prng.h"
#include "kz_test.h"

static void put_escaped(FILE *f, const char *p, size_t len) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c >= 0x20 && c < 0x7f && c != '\\')
      fputc(c, f);
    else
      fprintf(f, "\\x%02x", c);
  }
}

static void put_msg(FILE *f, const struct kz_http_msg *m) {
  fputs("MSG ", f);
  if (m->kind == KZ_HTTP_REQUEST) {
    put_escaped(f, m->method.p, m->method.len);
    fputc(' ', f);
    put_escaped(f, m->target.p, m->target.len);
  } else {
    fprintf(f, "%d ", m->status);
    put_escaped(f, m->reason.p, m->reason.len);
  }
  fprintf(f, " 1.%d ka=%d ec=%d ch=%d uc=%d", m->version_minor, m->keep_alive, m->expect_continue,
          m->chunked, m->until_close);
  if (m->has_content_length) fprintf(f, " cl=%llu", (unsigned long long)m->content_length);
  for (size_t i = 0; i < m->nheaders; i++) {
    fputs(" [", f);
    put_escaped(f, m->headers[i].name.p, m->headers[i].name.len);
    fputc(':', f);
    put_escaped(f, m->headers[i].value.p, m->headers[i].value.len);
    fputc(']', f);
  }
  fprintf(f, " body=%zu:", m->body.len);
  put_escaped(f, (const char *)m->body.data, m->body.len);
  fputc('\n', f);
}

static void put_err(FILE *f, struct kz_http_parser *p, int rc) {
  const char *reason;
  int status = kz_http_parser_error(p, &reason);
  fprintf(f, "ERR %s %d %s\n", kz_err_name(rc), status, reason);
}

char *th_run(enum kz_http_kind kind, const struct kz_http_limits *lim, const void *in, size_t len,
             enum th_mode mode, uint64_t seed) {
  char *out = NULL;
  size_t outlen = 0;
  FILE *f = open_memstream(&out, &outlen);
  ck_assert_ptr_nonnull(f);
  struct kz_http_parser *p = NULL;
  ck_assert_int_eq(kz_http_parser_new(&p, kind, lim), 0);
  struct kz_prng g;
  kz_prng_seed(&g, seed);
  const char *d = in;
  size_t off = 0;
  bool head_seen = false, failed = false;
  while (off < len && !failed) {
    size_t n = len - off;
    if (mode == TH_BYTES) n = 1;
    if (mode == TH_RANDOM) {
      /* Mostly tiny pieces (they hit every state boundary), some big. */
      uint64_t r = kz_prng_below(&g, 4) == 0 ? kz_prng_range(&g, 1, len) : kz_prng_range(&g, 1, 5);
      if (r < n) n = (size_t)r;
    }
    size_t fed = 0;
    while (fed < n) {
      size_t used = 0;
      int rc = kz_http_parser_feed(p, d + off + fed, n - fed, &used);
      ck_assert_uint_le(used, n - fed);
      fed += used;
      if (rc < 0) {
        put_err(f, p, rc);
        /* The failure is sticky. */
        ck_assert_int_eq(kz_http_parser_feed(p, "x", 1, &used), rc);
        failed = true;
        break;
      }
      if (rc == KZ_HTTP_EV_MORE) {
        ck_assert_uint_eq(fed, n);
      } else if (rc == KZ_HTTP_EV_HEAD) {
        ck_assert_msg(!head_seen, "two HEAD events for one message");
        head_seen = true;
      } else {
        ck_assert_int_eq(rc, KZ_HTTP_EV_MSG);
        ck_assert_msg(head_seen, "MSG without HEAD");
        head_seen = false;
        put_msg(f, kz_http_parser_msg(p));
      }
    }
    off += n;
  }
  if (!failed) {
    /* A zero-length feed must also drive a pending no-body completion. */
    size_t used;
    int rc = kz_http_parser_feed(p, "", 0, &used);
    if (rc == KZ_HTTP_EV_MSG) put_msg(f, kz_http_parser_msg(p));
    rc = rc < 0 ? rc : kz_http_parser_finish(p);
    if (rc == KZ_HTTP_EV_MSG) {
      put_msg(f, kz_http_parser_msg(p));
    } else if (rc < 0) {
      put_err(f, p, rc);
    }
  }
  kz_http_parser_free(p);
  fclose(f);
  return out;
}

char *th_all_chunkings(enum kz_http_kind kind, const struct kz_http_limits *lim, const char *in) {
  size_t len = strlen(in);
  char *whole = th_run(kind, lim, in, len, TH_WHOLE, 0);
  char *bytes = th_run(kind, lim, in, len, TH_BYTES, 0);
  ck_assert_str_eq(bytes, whole);
  free(bytes);
  for (uint64_t seed = 1; seed <= 16; seed++) {
    char *r = th_run(kind, lim, in, len, TH_RANDOM, seed);
    ck_assert_msg(strcmp(r, whole) == 0, "seed %llu:\n%s\nwhole:\n%s", (unsigned long long)seed, r,
                  whole);
    free(r);
  }
  return whole;
}

int th_parse_one(enum kz_http_kind kind, const struct kz_http_limits *lim, const char *in,
                 struct kz_http_parser **pp) {
  ck_assert_int_eq(kz_http_parser_new(pp, kind, lim), 0);
  size_t len = strlen(in), off = 0;
  for (;;) {
    size_t used = 0;
    int rc = kz_http_parser_feed(*pp, in + off, len - off, &used);
    off += used;
    if (rc == KZ_HTTP_EV_HEAD) continue;
    if (rc == KZ_HTTP_EV_MORE) {
      rc = kz_http_parser_finish(*pp);
      if (rc == KZ_HTTP_EV_MORE) return KZ_EAGAIN;
    }
    return rc;
  }
}

void th_expect_error(enum kz_http_kind kind, const struct kz_http_limits *lim, const char *in,
                     int code, int status) {
  char *sum = th_all_chunkings(kind, lim, in);
  char want[64];
  snprintf(want, sizeof(want), "ERR %s %d ", kz_err_name(code), status);
  ck_assert_msg(strstr(sum, want) != NULL, "expected %s for:\n%s\ngot:\n%s", want, in, sum);
  /* The error ends the stream: no message after it. */
  ck_assert_msg(strstr(strstr(sum, want), "\nMSG ") == NULL, "message after error:\n%s", sum);
  free(sum);
}

int main(void) {
  Suite *s = suite_create("kz_http");
  th_add_parser_tests(s);
  th_add_url_tests(s);
  th_add_write_tests(s);
  return kz_run_suite(s);
}
