/* url.c — request-target splitting, percent-decoding, decoded path segments and query pairs. */
#include "kz/http_url.h"

#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "syntax.h"

static int bad(const char **reason, const char *text) {
  if (reason) *reason = text;
  return KZ_EPROTO;
}

int kz_http_target_split(struct kz_slice target, struct kz_slice *path, struct kz_slice *query,
                         const char **reason) {
  if (!path || !query || (!target.p && target.len)) return KZ_EINVAL;
  *path = KZ_SLICE_NULL;
  *query = KZ_SLICE_NULL;
  long hash = kz_slice_find_char(target, '#');
  if (hash >= 0) target.len = (size_t)hash;
  if (!target.len) return bad(reason, "empty request target");

  struct kz_slice rest = target;
  if (target.p[0] != '/') {
    if (kz_slice_eq_cstr(target, "*")) {
      *path = target;
      return 0;
    }
    /* absolute-form: scheme "://" authority [path] */
    size_t i = 0;
    if (!kz_http_is_alpha((uint8_t)target.p[0])) return bad(reason, "unsupported request-target form");
    while (i < target.len && (kz_http_is_alpha((uint8_t)target.p[i]) ||
                              kz_http_is_digit((uint8_t)target.p[i]) || target.p[i] == '+' ||
                              target.p[i] == '-' || target.p[i] == '.'))
      i++;
    if (target.len - i < 3 || memcmp(target.p + i, "://", 3) != 0)
      return bad(reason, "unsupported request-target form");
    i += 3;
    while (i < target.len && target.p[i] != '/' && target.p[i] != '?') i++;
    rest = kz_slice_sub(target, i, target.len);
    if (!rest.len || rest.p[0] == '?') {
      /* RFC 9112 §3.2.2: an empty path is sent as "/". */
      *path = KZ_SLICE_LIT("/");
      if (rest.len) *query = kz_slice_sub(rest, 1, rest.len);
      return 0;
    }
  }
  long q = kz_slice_find_char(rest, '?');
  if (q < 0) {
    *path = rest;
  } else {
    *path = kz_slice_sub(rest, 0, (size_t)q);
    *query = kz_slice_sub(rest, (size_t)q + 1, rest.len);
    if (!query->p) *query = kz_slice_make(rest.p + rest.len, 0);
  }
  return 0;
}

int kz_http_pct_decode(struct kz_slice in, bool plus_is_space, struct kz_buf *out,
                       const char **reason) {
  if (!out || (!in.p && in.len)) return KZ_EINVAL;
  /* Validate first so a failure appends nothing. */
  size_t n = 0;
  for (size_t i = 0; i < in.len; i++, n++) {
    uint8_t c = (uint8_t)in.p[i];
    if (c == 0) return bad(reason, "NUL byte in URL");
    if (c != '%') continue;
    if (in.len - i < 3) return bad(reason, "truncated percent-encoding");
    int hi = kz_http_hex_value((uint8_t)in.p[i + 1]), lo = kz_http_hex_value((uint8_t)in.p[i + 2]);
    if (hi < 0 || lo < 0) return bad(reason, "invalid percent-encoding");
    if (hi == 0 && lo == 0) return bad(reason, "encoded NUL in URL");
    i += 2;
  }
  if (kz_buf_reserve(out, n) != 0) return KZ_ENOMEM;
  uint8_t *w = out->data + out->len;
  for (size_t i = 0; i < in.len; i++) {
    uint8_t c = (uint8_t)in.p[i];
    if (c == '%') {
      c = (uint8_t)(kz_http_hex_value((uint8_t)in.p[i + 1]) * 16 +
                    kz_http_hex_value((uint8_t)in.p[i + 2]));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    *w++ = c;
  }
  out->len += n;
  out->data[out->len] = 0;
  return 0;
}

void kz_http_strlist_free(struct kz_http_strlist *l) {
  if (!l) return;
  kz_free(l->items);
  kz_buf_free(&l->data);
  l->items = NULL;
  l->n = 0;
}

/* Items are stored back to back in l->data, each followed by a NUL; the
 * slice pointers are fixed up only at the end because data may move
 * while it grows. */
static int strlist_add(struct kz_http_strlist *l, struct kz_slice raw, bool plus_is_space,
                       const char **reason) {
  size_t before = l->data.len;
  int rc = kz_http_pct_decode(raw, plus_is_space, &l->data, reason);
  if (rc) return rc;
  if (kz_buf_append_byte(&l->data, 0) != 0) return KZ_ENOMEM;
  l->items[l->n].p = NULL;
  l->items[l->n].len = l->data.len - before - 1;
  l->n++;
  return 0;
}

static void strlist_fix(struct kz_http_strlist *l) {
  size_t off = 0;
  for (size_t i = 0; i < l->n; i++) {
    l->items[i].p = (const char *)l->data.data + off;
    off += l->items[i].len + 1;
  }
}

static int strlist_alloc(struct kz_http_strlist *l, size_t max_items) {
  memset(l, 0, sizeof(*l));
  kz_buf_init(&l->data);
  if (!max_items) return 0;
  l->items = kz_calloc(max_items, sizeof(*l->items));
  return l->items ? 0 : KZ_ENOMEM;
}

static size_t count_char(struct kz_slice s, char c) {
  size_t n = 0;
  for (size_t i = 0; i < s.len; i++) n += s.p[i] == c;
  return n;
}

int kz_http_path_segments(struct kz_slice path, struct kz_http_strlist *out, const char **reason) {
  if (!out || (!path.p && path.len)) return KZ_EINVAL;
  if (path.len && path.p[0] == '/') path = kz_slice_sub(path, 1, path.len);
  int rc = strlist_alloc(out, path.len ? count_char(path, '/') + 1 : 0);
  if (rc || !path.len) return rc;
  size_t start = 0;
  for (size_t i = 0; i <= path.len; i++) {
    if (i < path.len && path.p[i] != '/') continue;
    rc = strlist_add(out, kz_slice_make(path.p + start, i - start), false, reason);
    if (rc) {
      kz_http_strlist_free(out);
      return rc;
    }
    start = i + 1;
  }
  strlist_fix(out);
  return 0;
}

void kz_http_query_free(struct kz_http_query *q) {
  if (!q) return;
  kz_http_strlist_free(&q->keys);
  kz_http_strlist_free(&q->values);
}

int kz_http_query_parse(struct kz_slice query, struct kz_http_query *out, const char **reason) {
  if (!out || (!query.p && query.len)) return KZ_EINVAL;
  size_t max = query.len ? count_char(query, '&') + 1 : 0;
  memset(out, 0, sizeof(*out));
  int rc = strlist_alloc(&out->keys, max);
  if (!rc) rc = strlist_alloc(&out->values, max);
  size_t start = 0;
  for (size_t i = 0; !rc && i <= query.len && query.len; i++) {
    if (i < query.len && query.p[i] != '&') continue;
    struct kz_slice piece = kz_slice_make(query.p + start, i - start);
    start = i + 1;
    if (!piece.len) continue;
    long eq = kz_slice_find_char(piece, '=');
    struct kz_slice key = piece, val = KZ_SLICE_NULL;
    if (eq >= 0) {
      key = kz_slice_sub(piece, 0, (size_t)eq);
      val = kz_slice_make(piece.p + eq + 1, piece.len - (size_t)eq - 1);
    }
    rc = strlist_add(&out->keys, key, true, reason);
    if (!rc) rc = strlist_add(&out->values, val, true, reason);
  }
  if (rc) {
    kz_http_query_free(out);
    return rc;
  }
  strlist_fix(&out->keys);
  strlist_fix(&out->values);
  return 0;
}

struct kz_slice kz_http_query_get(const struct kz_http_query *q, const char *key) {
  for (size_t i = 0; i < q->keys.n; i++)
    if (kz_slice_eq_cstr(q->keys.items[i], key)) return q->values.items[i];
  return KZ_SLICE_NULL;
}
