/* kz/buf.h — pointer+length slices (zero-copy views) and growable byte buffers. */
#ifndef KZ_BUF_H
#define KZ_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A read-only view into bytes owned by someone else (libre's struct pl).
 * p may be NULL only when len is 0. */
struct kz_slice {
  const char *p;
  size_t len;
};

#define KZ_SLICE_NULL ((struct kz_slice){NULL, 0})
/* A slice over a string literal, without strlen at run time. */
#define KZ_SLICE_LIT(s) ((struct kz_slice){(s), sizeof(s) - 1})

struct kz_slice kz_slice_make(const void *p, size_t len);
struct kz_slice kz_slice_cstr(const char *s);
bool kz_slice_eq(struct kz_slice a, struct kz_slice b);
/* ASCII case-insensitive equality. */
bool kz_slice_caseeq(struct kz_slice a, struct kz_slice b);
bool kz_slice_eq_cstr(struct kz_slice a, const char *s);
bool kz_slice_caseeq_cstr(struct kz_slice a, const char *s);
/* memcmp-style order, shorter first on a common prefix. */
int kz_slice_cmp(struct kz_slice a, struct kz_slice b);
/* Removes leading and trailing SP/HTAB/CR/LF. */
struct kz_slice kz_slice_trim(struct kz_slice s);
/* Sub-slice [off, off+len) clipped to the slice. */
struct kz_slice kz_slice_sub(struct kz_slice s, size_t off, size_t len);
/* Index of the first `c`, or -1. */
long kz_slice_find_char(struct kz_slice s, char c);
/* Parses an unsigned decimal that fills the whole slice.
 * Returns 0, KZ_EPROTO (empty or not all digits) or KZ_ERANGE (> max). */
int kz_slice_to_u64(struct kz_slice s, uint64_t max, uint64_t *out);
/* Writes v in decimal ("-" for negatives, INT64_MIN included) to out,
 * without a NUL, and returns the length (at most KZ_I64_DEC_MAX). */
#define KZ_I64_DEC_MAX 20
size_t kz_i64_to_dec(int64_t v, char out[KZ_I64_DEC_MAX]);
/* Copies into a NUL-terminated heap string (kz_malloc); NULL on ENOMEM. */
char *kz_slice_dup(struct kz_slice s);

/* A growable byte buffer.  Zero-initialise (or kz_buf_init) before use;
 * data is always NUL-terminated past len when cap > 0 so it can be
 * printed as a C string. */
struct kz_buf {
  uint8_t *data;
  size_t len;
  size_t cap;
};

void kz_buf_init(struct kz_buf *b);
void kz_buf_free(struct kz_buf *b);
void kz_buf_reset(struct kz_buf *b); /* len = 0, keeps the memory */
/* Cuts the buffer back to `len` bytes (no-op when len >= b->len), keeping
 * the NUL after them: how a writer undoes a half-written append. */
void kz_buf_truncate(struct kz_buf *b, size_t len);
/* Ensures room for `extra` more bytes.  Returns 0 or KZ_ENOMEM. */
int kz_buf_reserve(struct kz_buf *b, size_t extra);
/* Appending functions return 0 or KZ_ENOMEM (the buffer is unchanged on
 * failure). */
int kz_buf_append(struct kz_buf *b, const void *data, size_t len);
int kz_buf_append_slice(struct kz_buf *b, struct kz_slice s);
int kz_buf_append_cstr(struct kz_buf *b, const char *s);
int kz_buf_append_byte(struct kz_buf *b, uint8_t c);
int kz_buf_printf(struct kz_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int kz_buf_vprintf(struct kz_buf *b, const char *fmt, va_list ap);
/* Drops the first n bytes (all when n >= len). */
void kz_buf_consume(struct kz_buf *b, size_t n);
struct kz_slice kz_buf_slice(const struct kz_buf *b);

#endif /* KZ_BUF_H */
