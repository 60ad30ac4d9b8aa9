/* buf.c — slices (borrowed byte views) and growable NUL-terminated byte buffers. */
#include "kz/buf.h"

#include <stdio.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"

struct kz_slice kz_slice_make(const void *p, size_t len) {
  return (struct kz_slice){(const char *)p, len};
}

struct kz_slice kz_slice_cstr(const char *s) {
  if (!s) return KZ_SLICE_NULL;
  return (struct kz_slice){s, strlen(s)};
}

bool kz_slice_eq(struct kz_slice a, struct kz_slice b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static unsigned char ascii_lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

bool kz_slice_caseeq(struct kz_slice a, struct kz_slice b) {
  if (a.len != b.len) return false;
  for (size_t i = 0; i < a.len; i++) {
    if (ascii_lower((unsigned char)a.p[i]) != ascii_lower((unsigned char)b.p[i])) return false;
  }
  return true;
}

bool kz_slice_eq_cstr(struct kz_slice a, const char *s) { return kz_slice_eq(a, kz_slice_cstr(s)); }

bool kz_slice_caseeq_cstr(struct kz_slice a, const char *s) {
  return kz_slice_caseeq(a, kz_slice_cstr(s));
}

int kz_slice_cmp(struct kz_slice a, struct kz_slice b) {
  size_t n = a.len < b.len ? a.len : b.len;
  int c = n ? memcmp(a.p, b.p, n) : 0;
  if (c) return c < 0 ? -1 : 1;
  if (a.len == b.len) return 0;
  return a.len < b.len ? -1 : 1;
}

static bool is_lws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

struct kz_slice kz_slice_trim(struct kz_slice s) {
  while (s.len && is_lws(s.p[0])) {
    s.p++;
    s.len--;
  }
  while (s.len && is_lws(s.p[s.len - 1])) s.len--;
  return s;
}

struct kz_slice kz_slice_sub(struct kz_slice s, size_t off, size_t len) {
  if (off >= s.len) return (struct kz_slice){s.p ? s.p + s.len : NULL, 0};
  if (len > s.len - off) len = s.len - off;
  return (struct kz_slice){s.p + off, len};
}

long kz_slice_find_char(struct kz_slice s, char c) {
  if (!s.len) return -1;
  const char *q = memchr(s.p, c, s.len);
  return q ? (long)(q - s.p) : -1;
}

size_t kz_i64_to_dec(int64_t v, char out[KZ_I64_DEC_MAX]) {
  char tmp[KZ_I64_DEC_MAX];
  size_t i = sizeof tmp;
  /* Through unsigned so the most negative value works too. */
  uint64_t u = v < 0 ? 0u - (uint64_t)v : (uint64_t)v;
  do {
    tmp[--i] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) tmp[--i] = '-';
  memcpy(out, tmp + i, sizeof tmp - i);
  return sizeof tmp - i;
}

int kz_slice_to_u64(struct kz_slice s, uint64_t max, uint64_t *out) {
  if (!s.len) return KZ_EPROTO;
  uint64_t v = 0;
  bool over = false;
  for (size_t i = 0; i < s.len; i++) {
    char c = s.p[i];
    if (c < '0' || c > '9') return KZ_EPROTO;
    unsigned d = (unsigned)(c - '0');
    /* Keep scanning after an overflow so "99999999999999999999x" is still
     * reported as malformed rather than out of range. */
    if (v > (UINT64_MAX - d) / 10) {
      over = true;
    } else {
      v = v * 10 + d;
    }
  }
  if (over || v > max) return KZ_ERANGE;
  *out = v;
  return 0;
}

char *kz_slice_dup(struct kz_slice s) {
  char *d = kz_malloc(s.len + 1);
  if (!d) return NULL;
  if (s.len) memcpy(d, s.p, s.len);
  d[s.len] = 0;
  return d;
}

void kz_buf_init(struct kz_buf *b) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

void kz_buf_free(struct kz_buf *b) {
  kz_free(b->data);
  kz_buf_init(b);
}

void kz_buf_reset(struct kz_buf *b) { kz_buf_truncate(b, 0); }

void kz_buf_truncate(struct kz_buf *b, size_t len) {
  if (len >= b->len) return;
  b->len = len;
  b->data[len] = 0;
}

int kz_buf_reserve(struct kz_buf *b, size_t extra) {
  /* One byte more than asked for, for the trailing NUL. */
  if (extra > SIZE_MAX - 1 - b->len) return KZ_ENOMEM;
  size_t need = b->len + extra + 1;
  if (need <= b->cap) return 0;
  size_t ncap = b->cap ? b->cap : 64;
  while (ncap < need) {
    if (ncap > SIZE_MAX / 2) {
      ncap = need;
      break;
    }
    ncap *= 2;
  }
  uint8_t *nd = kz_realloc(b->data, ncap);
  if (!nd) return KZ_ENOMEM;
  b->data = nd;
  b->cap = ncap;
  b->data[b->len] = 0;
  return 0;
}

int kz_buf_append(struct kz_buf *b, const void *data, size_t len) {
  int rc = kz_buf_reserve(b, len);
  if (rc) return rc;
  if (len) memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = 0;
  return 0;
}

int kz_buf_append_slice(struct kz_buf *b, struct kz_slice s) { return kz_buf_append(b, s.p, s.len); }

int kz_buf_append_cstr(struct kz_buf *b, const char *s) { return kz_buf_append(b, s, strlen(s)); }

int kz_buf_append_byte(struct kz_buf *b, uint8_t c) { return kz_buf_append(b, &c, 1); }

int kz_buf_printf(struct kz_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = kz_buf_vprintf(b, fmt, ap);
  va_end(ap);
  return rc;
}

int kz_buf_vprintf(struct kz_buf *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  char small[256];
  int n = vsnprintf(small, sizeof(small), fmt, ap2);
  va_end(ap2);
  if (n < 0) return KZ_EINVAL;
  int rc = kz_buf_reserve(b, (size_t)n);
  if (rc) return rc;
  if ((size_t)n < sizeof(small)) {
    memcpy(b->data + b->len, small, (size_t)n + 1);
  } else {
    va_copy(ap2, ap);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
  }
  b->len += (size_t)n;
  b->data[b->len] = 0;
  return 0;
}

void kz_buf_consume(struct kz_buf *b, size_t n) {
  if (n >= b->len) {
    kz_buf_reset(b);
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
  b->data[b->len] = 0;
}

struct kz_slice kz_buf_slice(const struct kz_buf *b) {
  return (struct kz_slice){(const char *)b->data, b->len};
}
