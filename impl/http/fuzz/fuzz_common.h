/* fuzz_common.h — shared driver of the kz_http fuzz targets: chunked vs whole feeding, message digests, write-and-reparse round trip. */
#ifndef KZ_HTTP_FUZZ_COMMON_H
#define KZ_HTTP_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz_fuzz.h"
#include "kz/buf.h"
#include "kz/error.h"
#include "kz/http.h"
#include "kz/http_url.h"
#include "kz/http_write.h"
#include "kz/mem.h"

#define FZ_MAX_MSGS 64

/* What one parse run saw: a digest per message and how it ended. */
struct fz_result {
  uint64_t digest[FZ_MAX_MSGS];
  size_t nmsgs;
  int final_rc;
  int status;
};

static uint64_t fz_mix(uint64_t h, const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

static uint64_t fz_mix_slice(uint64_t h, struct kz_slice s) {
  h = fz_mix(h, &s.len, sizeof(s.len));
  return s.len ? fz_mix(h, s.p, s.len) : h;
}

static uint64_t fz_digest(const struct kz_http_msg *m) {
  uint64_t h = 0xcbf29ce484222325ull;
  h = fz_mix_slice(h, m->method);
  h = fz_mix_slice(h, m->target);
  h = fz_mix_slice(h, m->reason);
  int flags[] = {m->status, m->version_minor, m->keep_alive, m->expect_continue, m->chunked,
                 m->until_close, m->has_content_length};
  h = fz_mix(h, flags, sizeof(flags));
  h = fz_mix(h, &m->content_length, sizeof(m->content_length));
  for (size_t i = 0; i < m->nheaders; i++) {
    h = fz_mix_slice(h, m->headers[i].name);
    h = fz_mix_slice(h, m->headers[i].value);
  }
  return fz_mix_slice(h, kz_buf_slice(&m->body));
}

/* Invariants every completed message must hold. */
static void fz_check_msg(const struct kz_http_msg *m, const struct kz_http_limits *lim) {
  KZ_FUZZ_CHECK(m->body.len <= lim->max_body);
  KZ_FUZZ_CHECK(m->nheaders <= lim->max_headers);
  KZ_FUZZ_CHECK(!(m->chunked && m->has_content_length));
  if (m->has_content_length && !m->chunked && m->body.len)
    KZ_FUZZ_CHECK(m->body.len == m->content_length);
  for (size_t i = 0; i < m->nheaders; i++) {
    struct kz_http_header h = m->headers[i];
    KZ_FUZZ_CHECK(h.name.len > 0);
    KZ_FUZZ_CHECK(memchr(h.value.p, '\r', h.value.len) == NULL);
    KZ_FUZZ_CHECK(memchr(h.value.p, '\n', h.value.len) == NULL);
    KZ_FUZZ_CHECK(h.value.len == 0 || (h.value.p[0] != ' ' && h.value.p[h.value.len - 1] != ' '));
  }
  if (m->kind == KZ_HTTP_REQUEST) {
    KZ_FUZZ_CHECK(m->method.len > 0 && m->target.len > 0);
    KZ_FUZZ_CHECK(m->version_minor == 0 || m->version_minor == 1);
  } else {
    KZ_FUZZ_CHECK(m->status >= 100 && m->status <= 599);
  }
}

typedef void fz_msg_fn(const struct kz_http_msg *m, const struct kz_http_limits *lim, int head_flag);

/* Feeds data in pieces whose sizes come from a small generator seeded by
 * `seed` (seed 0: everything at once).  head_mask: bit i set means
 * "expect a HEAD response" before message i (response parsers). */
static void fz_run(enum kz_http_kind kind, const struct kz_http_limits *lim, const uint8_t *data,
                   size_t size, uint32_t seed, uint64_t head_mask, fz_msg_fn *on_msg,
                   struct fz_result *r) {
  memset(r, 0, sizeof(*r));
  struct kz_http_parser *p = NULL;
  KZ_FUZZ_CHECK(kz_http_parser_new(&p, kind, lim) == 0);
  /* Mirrors the parser's HEAD-response flag: it survives 1xx responses. */
  int head_flag = (int)(head_mask & 1);
  if (head_flag) kz_http_parser_expect_head_response(p);
  uint32_t x = seed | 1u;
  size_t off = 0;
  int rc = 0, head_seen = 0;
  while (off < size) {
    size_t n = size - off;
    if (seed) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      size_t want = (x & 7) == 0 ? (x >> 8) % 512 + 1 : (x >> 8) % 4 + 1;
      if (want < n) n = want;
    }
    size_t fed = 0;
    while (fed < n) {
      size_t used = 0;
      rc = kz_http_parser_feed(p, data + off + fed, n - fed, &used);
      KZ_FUZZ_CHECK(used <= n - fed);
      fed += used;
      if (rc < 0) goto out;
      if (rc == KZ_HTTP_EV_MORE) KZ_FUZZ_CHECK(fed == n);
      if (rc == KZ_HTTP_EV_HEAD) {
        KZ_FUZZ_CHECK(!head_seen);
        head_seen = 1;
      }
      if (rc == KZ_HTTP_EV_MSG) {
        KZ_FUZZ_CHECK(head_seen);
        head_seen = 0;
        struct kz_http_msg *m = kz_http_parser_msg(p);
        fz_check_msg(m, lim);
        if (r->nmsgs < FZ_MAX_MSGS) r->digest[r->nmsgs] = fz_digest(m);
        r->nmsgs++;
        if (on_msg) on_msg(m, lim, head_flag);
        if (kind == KZ_HTTP_RESPONSE && m->status >= 200) {
          head_flag = (int)((head_mask >> (r->nmsgs % 64)) & 1);
          if (head_flag) kz_http_parser_expect_head_response(p);
        }
      }
    }
    off += n;
  }
  {
    size_t used;
    rc = kz_http_parser_feed(p, NULL, 0, &used);
    if (rc == KZ_HTTP_EV_MSG) {
      fz_check_msg(kz_http_parser_msg(p), lim);
      if (r->nmsgs < FZ_MAX_MSGS) r->digest[r->nmsgs] = fz_digest(kz_http_parser_msg(p));
      r->nmsgs++;
    }
    if (rc >= 0) rc = kz_http_parser_finish(p);
    if (rc == KZ_HTTP_EV_MSG) {
      fz_check_msg(kz_http_parser_msg(p), lim);
      if (r->nmsgs < FZ_MAX_MSGS) r->digest[r->nmsgs] = fz_digest(kz_http_parser_msg(p));
      r->nmsgs++;
      rc = 0;
    }
  }
out:
  r->final_rc = rc;
  if (rc < 0) {
    const char *reason = NULL;
    r->status = kz_http_parser_error(p, &reason);
    KZ_FUZZ_CHECK(reason && *reason);
    KZ_FUZZ_CHECK(r->status == 400 || r->status == 413 || r->status == 414 || r->status == 431 ||
             r->status == 500 || r->status == 501 || r->status == 505);
    KZ_FUZZ_CHECK(rc == KZ_EPROTO || rc == KZ_EMSGSIZE || rc == KZ_ENOTSUP || rc == KZ_ENOMEM);
  }
  kz_http_parser_free(p);
}

static void fz_same(const struct fz_result *a, const struct fz_result *b) {
  KZ_FUZZ_CHECK(a->nmsgs == b->nmsgs);
  size_t n = a->nmsgs < FZ_MAX_MSGS ? a->nmsgs : FZ_MAX_MSGS;
  for (size_t i = 0; i < n; i++) KZ_FUZZ_CHECK(a->digest[i] == b->digest[i]);
  KZ_FUZZ_CHECK(a->final_rc == b->final_rc);
  KZ_FUZZ_CHECK(a->status == b->status);
}

/* Headers that describe framing; the round trip re-derives them. */
static int fz_is_framing(struct kz_slice name) {
  return kz_slice_caseeq_cstr(name, "content-length") ||
         kz_slice_caseeq_cstr(name, "transfer-encoding");
}

/* Re-serialises `m` with the writer (Content-Length framing), parses it
 * back and checks that start line, headers and body survive. */
static void fz_roundtrip(const struct kz_http_msg *m, const struct kz_http_limits *lim,
                         int head_flag) {
  struct kz_buf b;
  kz_buf_init(&b);
  int rc;
  int bodyless = m->kind == KZ_HTTP_RESPONSE &&
                 (head_flag || m->status < 200 || m->status == 204 || m->status == 304);
  if (m->kind == KZ_HTTP_REQUEST) {
    char method[64];
    if (m->method.len >= sizeof(method) || m->version_minor != 1) return;
    memcpy(method, m->method.p, m->method.len);
    method[m->method.len] = 0;
    rc = kz_http_write_request_line(&b, method, m->target);
  } else {
    char *reason = kz_slice_dup(m->reason);
    if (!reason) return;
    rc = kz_http_write_status_line(&b, m->status, reason);
    kz_free(reason);
  }
  KZ_FUZZ_CHECK(rc == 0);
  for (size_t i = 0; i < m->nheaders; i++) {
    if (fz_is_framing(m->headers[i].name)) continue;
    char *name = kz_slice_dup(m->headers[i].name);
    KZ_FUZZ_CHECK(name);
    KZ_FUZZ_CHECK(kz_http_write_header(&b, name, m->headers[i].value) == 0);
    kz_free(name);
  }
  if (bodyless) {
    KZ_FUZZ_CHECK(m->body.len == 0);
    KZ_FUZZ_CHECK(kz_http_write_end_head(&b) == 0);
  } else {
    KZ_FUZZ_CHECK(kz_http_write_body(&b, m->body.data, m->body.len) == 0);
  }

  struct kz_http_parser *p = NULL;
  KZ_FUZZ_CHECK(kz_http_parser_new(&p, m->kind, lim) == 0);
  if (head_flag) kz_http_parser_expect_head_response(p);
  size_t used, off = 0;
  rc = kz_http_parser_feed(p, b.data, b.len, &used);
  /* The head may now exceed a limit the original fit in (e.g. an added
   * Content-Length); that is the only acceptable failure. */
  if (rc == KZ_EMSGSIZE) goto done;
  KZ_FUZZ_CHECK(rc == KZ_HTTP_EV_HEAD);
  off = used;
  rc = kz_http_parser_feed(p, b.data + off, b.len - off, &used);
  KZ_FUZZ_CHECK(rc == KZ_HTTP_EV_MSG);
  KZ_FUZZ_CHECK(off + used == b.len);
  const struct kz_http_msg *r = kz_http_parser_msg(p);
  KZ_FUZZ_CHECK(kz_slice_eq(r->method, m->method));
  KZ_FUZZ_CHECK(kz_slice_eq(r->target, m->target));
  KZ_FUZZ_CHECK(r->status == m->status);
  KZ_FUZZ_CHECK(kz_slice_eq(r->reason, m->reason));
  KZ_FUZZ_CHECK(kz_slice_eq(kz_buf_slice(&r->body), kz_buf_slice(&m->body)));
  size_t j = 0;
  for (size_t i = 0; i < m->nheaders; i++) {
    if (fz_is_framing(m->headers[i].name)) continue;
    while (j < r->nheaders && fz_is_framing(r->headers[j].name)) j++;
    KZ_FUZZ_CHECK(j < r->nheaders);
    KZ_FUZZ_CHECK(kz_slice_eq(r->headers[j].name, m->headers[i].name));
    KZ_FUZZ_CHECK(kz_slice_eq(r->headers[j].value, m->headers[i].value));
    j++;
  }
done:
  kz_http_parser_free(p);
  kz_buf_free(&b);
}

#endif /* KZ_HTTP_FUZZ_COMMON_H */
