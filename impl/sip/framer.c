/* framer.c — SIP stream framing (RFC 3261 §18.3: Content-Length on streams) with keep-alive skipping. */
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "sip_int.h"

static int frame_fail(struct kz_sip_perr *err, size_t off, const char *why) {
  kz_sip_perr_set(err, 400, true, off, why, NULL, NULL, NULL);
  return KZ_EPROTO;
}

/* RFC 3261 §21.5.14: a message over the size limit is answered 513
 * (when the header block can still be read to build the answer). */
static int frame_too_large(struct kz_sip_perr *err, size_t off) {
  kz_sip_perr_set(err, 513, true, off, "message too large", NULL, NULL, NULL);
  return KZ_EPROTO;
}

/* Finds Content-Length in the header block [p, e) (start line first);
 * folded values and LWS before ':' are allowed as in the parser. */
static int find_content_length(const char *p, const char *e, const char *base, uint64_t *cl,
                               struct kz_sip_perr *err) {
  int found = 0;
  const char *nl = memchr(p, '\n', (size_t)(e - p));
  p = nl ? nl + 1 : e; /* skip the start line */
  while (p < e) {
    const char *ls = p;
    nl = memchr(p, '\n', (size_t)(e - p));
    const char *le = nl ? nl : e;
    p = nl ? nl + 1 : e;
    if (*ls == ' ' || *ls == '\t') continue; /* continuation of another header */
    const char *q = ls;
    while (q < le && kz_sip_is((unsigned char)*q, C_TOKEN)) q++;
    size_t nlen = (size_t)(q - ls);
    bool is_cl = (nlen == 1 && (*ls == 'l' || *ls == 'L')) ||
                 (nlen == 14 && kz_slice_caseeq_cstr((struct kz_slice){ls, 14}, "Content-Length"));
    if (!is_cl) continue;
    while (q < le && (*q == ' ' || *q == '\t')) q++;
    if (q >= le || *q != ':') continue;
    q++;
    /* the value, with its continuation lines */
    while (p < e && (*p == ' ' || *p == '\t')) {
      nl = memchr(p, '\n', (size_t)(e - p));
      le = nl ? nl : e;
      p = nl ? nl + 1 : e;
    }
    struct kz_slice v = kz_slice_trim((struct kz_slice){q, (size_t)(le - q)});
    bool over;
    if (!kz_sip_digits(v, (uint64_t)1 << 40, cl, &over))
      return frame_fail(err, (size_t)(q - base), "invalid Content-Length");
    if (++found > 1) return frame_fail(err, (size_t)(ls - base), "multiple Content-Length headers");
  }
  if (!found) return frame_fail(err, (size_t)(e - base), "missing Content-Length (required on streams)");
  return 0;
}

int kz_sip_frame_(const char *data, size_t len, size_t max_size, size_t *resume, size_t *skip,
                  size_t *msg_len, struct kz_sip_perr *err) {
  size_t i = 0;
  while (i < len && (data[i] == '\r' || data[i] == '\n')) i++;
  *skip = i;
  *msg_len = 0;
  if (i == len) {
    *resume = 0;
    return KZ_EAGAIN;
  }
  const char *s = data + i, *e = data + len;
  /* Header end: LF followed by LF or CRLF.  Search from where the last
   * incomplete attempt stopped (offsets are relative to s). */
  size_t from = *resume > i ? *resume - i : 0;
  const char *hend = NULL;
  for (const char *q = s + from; q < e; q++) {
    q = memchr(q, '\n', (size_t)(e - q));
    if (!q) break;
    if (q + 1 < e && q[1] == '\n') {
      hend = q + 2;
      break;
    }
    if (q + 2 < e && q[1] == '\r' && q[2] == '\n') {
      hend = q + 3;
      break;
    }
    if (q + 2 >= e) break; /* cannot tell yet */
  }
  if (!hend) {
    size_t have = (size_t)(e - s);
    if (have > max_size) return frame_too_large(err, i);
    *resume = i + (have > 3 ? have - 3 : 0);
    return KZ_EAGAIN;
  }
  uint64_t cl = 0;
  int rc = find_content_length(s, hend, data, &cl, err);
  if (rc) return rc;
  uint64_t total = (uint64_t)(hend - s) + cl;
  if (total > max_size) return frame_too_large(err, i);
  if ((uint64_t)(e - s) < total) {
    size_t hl = (size_t)(hend - s);
    *resume = i + (hl > 3 ? hl - 3 : 0); /* re-find the same header end cheaply */
    return KZ_EAGAIN;
  }
  *resume = 0;
  *msg_len = (size_t)total;
  return 0;
}

int kz_sip_stream_frame(const void *data, size_t len, size_t max_size, size_t *skip,
                        size_t *msg_len, struct kz_sip_perr *err) {
  if (err) kz_sip_perr_set(err, 0, false, 0, NULL, NULL, NULL, NULL);
  if ((!data && len) || !skip || !msg_len) return KZ_EINVAL;
  size_t resume = 0;
  return kz_sip_frame_(data ? data : "", len, max_size ? max_size : KZ_SIP_DEFAULT_MAX_MSG,
                       &resume, skip, msg_len, err);
}

struct kz_sip_framer {
  struct kz_buf buf;
  size_t rpos;     /* bytes of buf already handed out */
  size_t resume;   /* header-end search restart, relative to rpos */
  size_t max_size;
  size_t lf_skipped; /* keep-alive LFs seen (two per CRLFCRLF ping) */
  bool failed;
  struct kz_sip_perr fatal_err;
};

int kz_sip_framer_new(struct kz_sip_framer **out, size_t max_size) {
  if (!out) return KZ_EINVAL;
  struct kz_sip_framer *f = kz_calloc(1, sizeof *f);
  if (!f) return KZ_ENOMEM;
  kz_buf_init(&f->buf);
  f->max_size = max_size ? max_size : KZ_SIP_DEFAULT_MAX_MSG;
  *out = f;
  return 0;
}

void kz_sip_framer_free(struct kz_sip_framer *f) {
  if (!f) return;
  kz_buf_free(&f->buf);
  kz_free(f);
}

int kz_sip_framer_feed(struct kz_sip_framer *f, const void *data, size_t len) {
  if (!f || (!data && len)) return KZ_EINVAL;
  /* Compact before growing so a long-lived connection does not keep
   * every byte it ever received. */
  if (f->rpos && (f->rpos == f->buf.len || f->buf.len + len > f->buf.cap)) {
    kz_buf_consume(&f->buf, f->rpos);
    f->rpos = 0;
  }
  return kz_buf_append(&f->buf, data, len) ? KZ_ENOMEM : 0;
}

static void count_lf(struct kz_sip_framer *f, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] == '\n') f->lf_skipped++;
}

int kz_sip_framer_next(struct kz_sip_framer *f, struct kz_sip_msg **out, struct kz_sip_perr *err) {
  if (err) kz_sip_perr_set(err, 0, false, 0, NULL, NULL, NULL, NULL);
  if (!f || !out) return KZ_EINVAL;
  if (f->failed) {
    if (err) *err = f->fatal_err;
    return KZ_EPROTO;
  }
  const char *data = (const char *)f->buf.data + f->rpos;
  size_t len = f->buf.len - f->rpos, skip, mlen;
  struct kz_sip_perr ferr;
  int rc = kz_sip_frame_(data, len, f->max_size, &f->resume, &skip, &mlen, &ferr);
  count_lf(f, data, skip);
  if (rc == KZ_EAGAIN) {
    f->rpos += skip;
    f->resume = f->resume > skip ? f->resume - skip : 0;
    return rc;
  }
  if (rc) {
    f->failed = true;
    f->fatal_err = ferr;
    f->fatal_err.offset += f->rpos;
    if (err) *err = f->fatal_err;
    return rc;
  }
  rc = kz_sip_msg_parse(out, data + skip, mlen, KZ_SIP_PARSE_COPY, err);
  if (rc == KZ_ENOMEM) return rc; /* keep the bytes: the caller may retry */
  f->rpos += skip + mlen;
  f->resume = 0;
  if (f->rpos == f->buf.len) {
    kz_buf_reset(&f->buf);
    f->rpos = 0;
  }
  return rc;
}

size_t kz_sip_framer_take_pings(struct kz_sip_framer *f) {
  if (!f) return 0;
  size_t n = f->lf_skipped / 2;
  f->lf_skipped %= 2;
  return n;
}

size_t kz_sip_framer_pending(const struct kz_sip_framer *f) {
  return f ? f->buf.len - f->rpos : 0;
}
