/* json.c — the fast JSON reader and compact writer of kz/json.h: the same values as json_loadb, the same bytes as json_dumps(JSON_COMPACT). */
#include <stdlib.h>
#include <string.h>

#include "kz/error.h"
#include "kz/json.h"
#include "kz/mem.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* ------------------------------------------------------------------ */
/* UTF-8, as jansson checks it (src/utf.c): the same rules on both sides
 * so that the reader and the writer accept exactly what jansson does. */

size_t kz_json_utf8_seq(const uint8_t *p, size_t avail) {
  unsigned char u = p[0];
  size_t n;
  uint32_t v;
  if (u >= 0xC2 && u <= 0xDF) {
    n = 2;
    v = u & 0x1F;
  } else if (u >= 0xE0 && u <= 0xEF) {
    n = 3;
    v = u & 0x0F;
  } else if (u >= 0xF0 && u <= 0xF4) {
    n = 4;
    v = u & 0x07;
  } else {
    return 0; /* continuation byte, C0/C1 or F5..FF */
  }
  if (n > avail) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    v = (v << 6) | (p[i] & 0x3F);
  }
  if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || (n == 3 && v < 0x800) ||
      (n == 4 && v < 0x10000))
    return 0;
  return n;
}

/* ------------------------------------------------------------------ */
/* Reading.  The parser walks the bytes and calls jansson's constructors,
 * so the values (types, members in input order, a repeated member
 * resolved as jansson does) are what json_loadb gives.  Deep documents
 * go to jansson (whose limit is 2048) so that the recursion here stays
 * small. */

#define MAX_DEPTH 512

/* Nonzero for bytes a string cannot copy as they are (the writer) and
 * the bytes the reader must look at inside a string: control bytes,
 * '"', '\\' and non-ASCII. */
static const unsigned char needs_care[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x00 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x10 */
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* '"' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* '\\' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x80.. */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* The first byte in [p, end) that needs care, or end: sixteen bytes a
 * step where SSE2 is there (every x86-64), one otherwise.  Signed,
 * "less than 0x20" is true of the control bytes and of every byte from
 * 0x80 up, as the table says. */
static inline const char *plain_run(const char *p, const char *end) {
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
  while (end - p >= 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                             _mm_cmplt_epi8(v, space));
    unsigned mask = (unsigned)_mm_movemask_epi8(m);
    if (mask) return p + __builtin_ctz(mask);
    p += 16;
  }
#endif
  while (p < end && !needs_care[(unsigned char)*p]) p++;
  return p;
}


struct jp {
  const char *p, *end;
  struct kz_buf *tmp; /* unescaped strings */
  unsigned flags;
  size_t max_depth;
};

static inline void skip_ws(struct jp *j) {
  /* Compact text has none: one comparison says so. */
  if (j->p < j->end && (unsigned char)*j->p > ' ') return;
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t')) j->p++;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int u4(const char *p, const char *end, uint32_t *out) {
  if (end - p < 4) return KZ_EPROTO;
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval(p[i]);
    if (h < 0) return KZ_EPROTO;
    v = v << 4 | (uint32_t)h;
  }
  *out = v;
  return 0;
}

static int put_utf8(struct kz_buf *b, uint32_t cp) {
  uint8_t u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (uint8_t)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (uint8_t)(0xc0 | cp >> 6);
    u[1] = (uint8_t)(0x80 | (cp & 0x3f));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (uint8_t)(0xe0 | cp >> 12);
    u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    u[2] = (uint8_t)(0x80 | (cp & 0x3f));
    n = 3;
  } else {
    u[0] = (uint8_t)(0xf0 | cp >> 18);
    u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    u[3] = (uint8_t)(0x80 | (cp & 0x3f));
    n = 4;
  }
  return kz_buf_append(b, u, n);
}

/* Scans a string whose opening quote is at j->p.  On success *s and *n are
 * its unescaped bytes: inside the input when it has no escapes, else in
 * j->tmp, valid until the next string. */
static int string(struct jp *j, const char **s, size_t *n) {
  const char *p = ++j->p, *run = p;
  bool esc = false;
  while (p < j->end) {
    p = plain_run(p, j->end); /* runs of plain ASCII */
    if (p >= j->end) break;
    unsigned char c = (unsigned char)*p;
    if (c == '"') break;
    if (c < 0x20) return KZ_EPROTO;
    if (c >= 0x80) {
      /* One UTF-8 sequence, checked as jansson checks it. */
      size_t len = kz_json_utf8_seq((const uint8_t *)p, (size_t)(j->end - p));
      if (!len) return KZ_EPROTO;
      p += len;
      continue;
    }
    if (c != '\\') {
      p++;
      continue;
    }
    if (!esc) {
      kz_buf_reset(j->tmp);
      esc = true;
    }
    if (kz_buf_append(j->tmp, run, (size_t)(p - run))) return KZ_ENOMEM;
    if (j->end - p < 2) return KZ_EPROTO;
    char e = p[1];
    p += 2;
    char out = 0;
    switch (e) {
    case '"': out = '"'; break;
    case '\\': out = '\\'; break;
    case '/': out = '/'; break;
    case 'b': out = '\b'; break;
    case 'f': out = '\f'; break;
    case 'n': out = '\n'; break;
    case 'r': out = '\r'; break;
    case 't': out = '\t'; break;
    case 'u': {
      uint32_t cp;
      if (u4(p, j->end, &cp)) return KZ_EPROTO;
      p += 4;
      if (cp >= 0xdc00 && cp <= 0xdfff) return KZ_EPROTO; /* a lone low surrogate */
      if (cp >= 0xd800 && cp <= 0xdbff) {
        uint32_t lo;
        if (j->end - p < 6 || p[0] != '\\' || p[1] != 'u' || u4(p + 2, j->end, &lo) || lo < 0xdc00 ||
            lo > 0xdfff)
          return KZ_EPROTO;
        p += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      }
      if (put_utf8(j->tmp, cp)) return KZ_ENOMEM;
      run = p;
      continue;
    }
    default:
      return KZ_EPROTO;
    }
    if (kz_buf_append_byte(j->tmp, (uint8_t)out)) return KZ_ENOMEM;
    run = p;
  }
  if (p >= j->end) return KZ_EPROTO;
  if (esc) {
    if (kz_buf_append(j->tmp, run, (size_t)(p - run))) return KZ_ENOMEM;
    *s = (const char *)j->tmp->data;
    *n = j->tmp->len;
  } else {
    *s = run;
    *n = (size_t)(p - run);
  }
  j->p = p + 1;
  return 0;
}

/* A number: integers of up to 18 digits directly (no overflow is
 * possible), reals through jansson's own conversion of the token. */
static int number(struct jp *j, json_t **out) {
  const char *p = j->p, *start = p;
  bool neg = false, real = false;
  if (*p == '-') {
    neg = true;
    p++;
  }
  if (p >= j->end || *p < '0' || *p > '9') return KZ_EPROTO;
  if (*p == '0' && p + 1 < j->end && p[1] >= '0' && p[1] <= '9') return KZ_EPROTO;
  const char *digits = p;
  while (p < j->end && *p >= '0' && *p <= '9') p++;
  size_t nd = (size_t)(p - digits);
  if (p < j->end && (*p == '.' || *p == 'e' || *p == 'E')) {
    real = true;
    if (*p == '.') {
      p++;
      if (p >= j->end || *p < '0' || *p > '9') return KZ_EPROTO;
      while (p < j->end && *p >= '0' && *p <= '9') p++;
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) {
      p++;
      if (p < j->end && (*p == '+' || *p == '-')) p++;
      if (p >= j->end || *p < '0' || *p > '9') return KZ_EPROTO;
      while (p < j->end && *p >= '0' && *p <= '9') p++;
    }
  }
  if (real) {
    *out = json_loadb(start, (size_t)(p - start), JSON_DECODE_ANY, NULL);
    if (!*out) return KZ_EPROTO;
  } else {
    if (nd > 18) return KZ_EPROTO;
    json_int_t v = 0;
    for (const char *d = digits; d < p; d++) v = v * 10 + (*d - '0');
    *out = json_integer(neg ? -v : v);
    if (!*out) return KZ_ENOMEM;
  }
  j->p = p;
  return 0;
}

static bool word(struct jp *j, const char *w, size_t n) {
  if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n)) return false;
  j->p += n;
  return true;
}

static int value(struct jp *j, int depth, json_t **out) {
  *out = NULL;
  skip_ws(j);
  if (j->p >= j->end) return KZ_EPROTO;
  int rc;
  switch (*j->p) {
  case '{': {
    if ((size_t)depth >= j->max_depth) return KZ_EPROTO;
    json_t *o = json_object();
    if (!o) return KZ_ENOMEM;
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == '}') {
      j->p++;
      *out = o;
      return 0;
    }
    for (;;) {
      skip_ws(j);
      if (j->p >= j->end || *j->p != '"') goto obj_fail;
      const char *k;
      size_t kn;
      if ((rc = string(j, &k, &kn))) goto obj_fail_rc;
      if (memchr(k, 0, kn)) goto obj_fail; /* jansson refuses NUL in names */
      /* The name may sit in j->tmp, which the value's strings reuse. */
      char small[64];
      char *kc = kn < sizeof small ? small : kz_malloc(kn + 1);
      if (!kc) {
        rc = KZ_ENOMEM;
        goto obj_fail_rc;
      }
      memcpy(kc, k, kn);
      kc[kn] = 0;
      skip_ws(j);
      json_t *v = NULL;
      if (j->p >= j->end || *j->p != ':') {
        rc = KZ_EPROTO;
      } else {
        j->p++;
        rc = value(j, depth + 1, &v);
        size_t before = json_object_size(o);
        if (!rc && json_object_setn_new_nocheck(o, kc, kn, v)) rc = KZ_ENOMEM;
        /* A repeated member replaced the earlier one (jansson's last-wins)
         * and left the size as it was: refused under the flag. */
        else if (!rc && (j->flags & KZ_JSON_REJECT_DUPLICATES) && json_object_size(o) == before) rc = KZ_EPROTO;
      }
      if (kc != small) kz_free(kc);
      if (rc) goto obj_fail_rc;
      skip_ws(j);
      if (j->p < j->end && *j->p == ',') {
        j->p++;
        continue;
      }
      if (j->p < j->end && *j->p == '}') {
        j->p++;
        *out = o;
        return 0;
      }
      goto obj_fail;
    }
  obj_fail:
    rc = KZ_EPROTO;
  obj_fail_rc:
    json_decref(o);
    return rc;
  }
  case '[': {
    if ((size_t)depth >= j->max_depth) return KZ_EPROTO;
    json_t *a = json_array();
    if (!a) return KZ_ENOMEM;
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == ']') {
      j->p++;
      *out = a;
      return 0;
    }
    for (;;) {
      json_t *v = NULL;
      if ((rc = value(j, depth + 1, &v))) break;
      if (json_array_append_new(a, v)) {
        rc = KZ_ENOMEM;
        break;
      }
      skip_ws(j);
      if (j->p < j->end && *j->p == ',') {
        j->p++;
        continue;
      }
      if (j->p < j->end && *j->p == ']') {
        j->p++;
        *out = a;
        return 0;
      }
      rc = KZ_EPROTO;
      break;
    }
    json_decref(a);
    return rc;
  }
  case '"': {
    const char *s;
    size_t n;
    if ((rc = string(j, &s, &n))) return rc;
    if (!(j->flags & KZ_JSON_ALLOW_NUL) && memchr(s, 0, n)) return KZ_EPROTO;
    *out = json_stringn_nocheck(s, n);
    return *out ? 0 : KZ_ENOMEM;
  }
  case 't':
    if (!word(j, "true", 4)) return KZ_EPROTO;
    *out = json_true();
    return 0;
  case 'f':
    if (!word(j, "false", 5)) return KZ_EPROTO;
    *out = json_false();
    return 0;
  case 'n':
    if (!word(j, "null", 4)) return KZ_EPROTO;
    *out = json_null();
    return 0;
  default:
    return number(j, out);
  }
}

int kz_json_parse(const void *data, size_t len, unsigned flags, size_t max_depth, json_t **out) {
  *out = NULL;
  if (!data) return KZ_EPROTO;
  struct kz_buf tmp = {0};
  struct jp j = {.p = data, .end = (const char *)data + len, .tmp = &tmp, .flags = flags,
                 .max_depth = max_depth < MAX_DEPTH ? max_depth : MAX_DEPTH};
  skip_ws(&j);
  json_t *v = NULL;
  int rc = (flags & KZ_JSON_OBJECT_ONLY) && (j.p >= j.end || *j.p != '{') ? KZ_EPROTO : value(&j, 0, &v);
  if (!rc) {
    skip_ws(&j);
    if (j.p != j.end) rc = KZ_EPROTO; /* trailing bytes: jansson's call */
  }
  kz_buf_free(&tmp);
  if (rc) {
    json_decref(v);
    return rc;
  }
  *out = v;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Writing: the same bytes as json_dump_callback(JSON_COMPACT), without
 * its per-container loop-check table (a pointer printed with snprintf
 * into a hash table, for every object and array) and its callback per
 * token.  Keys in insertion order; strings escaped as jansson does
 * (\" \\ \b \f \n \r \t, other control bytes \u00XX, '/' and non-ASCII
 * kept as they are); invalid UTF-8 and reference cycles fail as they do
 * in jansson.  Reals, and containers nested deeper than DUMP_MAX_DEPTH,
 * are written by jansson itself. */

static int dump_cb(const char *buffer, size_t size, void *data) {
  return kz_buf_append(data, buffer, size) ? -1 : 0;
}

#define DUMP_MAX_DEPTH 64

enum { WR_OK = 0, WR_FAIL = -1, WR_DEEP = -2, WR_NOMEM = -3 }; /* WR_FAIL: what jansson refuses to write */

struct writer {
  struct kz_buf *b;
  unsigned flags;
  const json_t *open[DUMP_MAX_DEPTH]; /* containers being written */
  size_t depth;
};

/* Appends a quoted, escaped string plus one more byte of room. */
static const char hex_upper[] = "0123456789ABCDEF";

static int wr_string(struct kz_buf *b, const char *str, size_t len) {
  if (kz_buf_reserve(b, len + 3)) return WR_NOMEM;
  const unsigned char *p = (const unsigned char *)str, *end = p + len;
  uint8_t *o = b->data + b->len;
  *o++ = '"';
  while (p < end) {
    const unsigned char *run = p;
    p = (const unsigned char *)plain_run((const char *)p, (const char *)end);
    memcpy(o, run, (size_t)(p - run));
    o += p - run;
    if (p == end) break;
    unsigned char c = *p;
    if (c >= 0x80) {
      size_t n = kz_json_utf8_seq(p, (size_t)(end - p));
      if (!n) return WR_FAIL; /* jansson refuses to write invalid UTF-8 */
      memcpy(o, p, n);
      o += n;
      p += n;
      continue;
    }
    /* An escape takes up to 6 bytes for 1: make room for the worst case
     * of what is left. */
    b->len = (size_t)(o - b->data);
    if (kz_buf_reserve(b, 6 + (size_t)(end - p) + 2)) return WR_NOMEM;
    o = b->data + b->len;
    *o++ = '\\';
    switch (c) {
    case '"': *o++ = '"'; break;
    case '\\': *o++ = '\\'; break;
    case '\b': *o++ = 'b'; break;
    case '\f': *o++ = 'f'; break;
    case '\n': *o++ = 'n'; break;
    case '\r': *o++ = 'r'; break;
    case '\t': *o++ = 't'; break;
    default:
      *o++ = 'u';
      *o++ = '0';
      *o++ = '0';
      *o++ = hex_upper[c >> 4];
      *o++ = hex_upper[c & 15];
      break;
    }
    p++;
  }
  *o++ = '"';
  b->len = (size_t)(o - b->data);
  b->data[b->len] = 0;
  return WR_OK;
}

static int wr_byte(struct kz_buf *b, char c) {
  return kz_buf_append_byte(b, (uint8_t)c) ? WR_NOMEM : WR_OK;
}

static int wr_int(struct kz_buf *b, json_int_t v) {
  char tmp[KZ_I64_DEC_MAX];
  return kz_buf_append(b, tmp, kz_i64_to_dec(v, tmp)) ? WR_NOMEM : WR_OK;
}

static int wr_value(struct writer *w, const json_t *v) {
  struct kz_buf *b = w->b;
  switch (json_typeof(v)) {
  case JSON_NULL:
    return kz_buf_append(b, "null", 4) ? WR_NOMEM : WR_OK;
  case JSON_TRUE:
    return kz_buf_append(b, "true", 4) ? WR_NOMEM : WR_OK;
  case JSON_FALSE:
    return kz_buf_append(b, "false", 5) ? WR_NOMEM : WR_OK;
  case JSON_INTEGER:
    return wr_int(b, json_integer_value(v));
  case JSON_REAL:
    return json_dump_callback(v, dump_cb, b, JSON_ENCODE_ANY | JSON_COMPACT) ? WR_NOMEM : WR_OK;
  case JSON_STRING:
    return wr_string(b, json_string_value(v), json_string_length(v));
  case JSON_OBJECT:
  case JSON_ARRAY:
    break;
  }
  /* A container inside itself: jansson fails the dump, so do we. */
  for (size_t i = 0; i < w->depth; i++) {
    if (w->open[i] == v) return WR_FAIL;
  }
  if (w->depth == DUMP_MAX_DEPTH) return WR_DEEP;
  w->open[w->depth++] = v;
  int rc = WR_OK;
  if (json_is_array(v)) {
    size_t n = json_array_size(v);
    rc = wr_byte(b, '[');
    for (size_t i = 0; i < n && !rc; i++) {
      if (i) rc = wr_byte(b, ',');
      if (!rc) rc = wr_value(w, json_array_get(v, i));
    }
    if (!rc) rc = wr_byte(b, ']');
  } else {
    rc = wr_byte(b, '{');
    bool first = true;
    bool skip_private = (w->flags & KZ_JSON_SKIP_PRIVATE) && w->depth == 1;
    for (void *it = json_object_iter((json_t *)v); it && !rc;
         it = json_object_iter_next((json_t *)v, it)) {
      if (skip_private && json_object_iter_key(it)[0] == '_') continue;
      if (!first) rc = wr_byte(b, ',');
      first = false;
      if (!rc)
        rc = wr_string(b, json_object_iter_key(it), json_object_iter_key_len(it));
      /* wr_string left room for this byte. */
      if (!rc) b->data[b->len++] = ':', b->data[b->len] = 0;
      if (!rc) rc = wr_value(w, json_object_iter_value(it));
    }
    if (!rc) rc = wr_byte(b, '}');
  }
  w->depth--;
  return rc;
}

/* jansson's own dump, for what the writer hands over (deep nesting):
 * with KZ_JSON_SKIP_PRIVATE, of a shallow copy without those members. */
static int jansson_dump(struct kz_buf *out, const json_t *v, unsigned flags) {
  size_t jflags = JSON_COMPACT | ((flags & KZ_JSON_ENCODE_ANY) ? JSON_ENCODE_ANY : 0);
  if (!(flags & KZ_JSON_SKIP_PRIVATE) || !json_is_object(v))
    return json_dump_callback(v, dump_cb, out, jflags) ? WR_FAIL : WR_OK;
  json_t *copy = json_object();
  const char *k;
  json_t *m;
  int rc = copy ? WR_OK : WR_NOMEM;
  json_object_foreach((json_t *)v, k, m) if (!rc && k[0] != '_' && json_object_set(copy, k, m)) rc = WR_NOMEM;
  if (!rc) rc = json_dump_callback(copy, dump_cb, out, jflags) ? WR_FAIL : WR_OK;
  json_decref(copy);
  return rc;
}

int kz_json_write(struct kz_buf *out, const json_t *v, unsigned flags) {
  if (!v || !out) return KZ_EINVAL;
  /* As json_dump_callback: containers only unless told otherwise. */
  if (!(flags & KZ_JSON_ENCODE_ANY) && !json_is_object(v) && !json_is_array(v)) return KZ_EINVAL;
  size_t old = out->len;
  struct writer w = {.b = out, .flags = flags};
  int rc = wr_value(&w, v);
  if (rc == WR_DEEP) {
    kz_buf_truncate(out, old);
    /* Key order is insertion order in jansson >= 2.8, so equal values
     * built the same way dump to equal bytes without sorting. */
    rc = jansson_dump(out, v, flags);
  }
  if (rc) {
    kz_buf_truncate(out, old);
    return rc == WR_NOMEM ? KZ_ENOMEM : KZ_EINVAL;
  }
  return 0;
}

int kz_json_write_str(struct kz_buf *out, const char *s, size_t len) {
  size_t old = out->len;
  int rc = wr_string(out, s, len);
  if (rc) kz_buf_truncate(out, old);
  return rc == WR_NOMEM ? KZ_ENOMEM : rc ? KZ_EINVAL : 0;
}

/* ------------------------------------------------------------------ */
/* Recoding: text to the writer's bytes without building the value.
 * The walk is the reader's (same string, UTF-8 and number rules) and
 * what it appends is what wr_value appends for the value the reader
 * would build; everything whose bytes would take more than copying or
 * re-escaping (reals, a repeated member, which jansson resolves in
 * place, escaped member names, deep or very wide objects) gives up. */

#define RECODE_MAX_DEPTH 32
#define RECODE_MAX_MEMBERS 64

struct recoder {
  struct jp j;
  const char *start;
  struct kz_buf *out;
  kz_json_member_fn on_private;
  void *ctx;
};

/* kz_buf_append inlined (a call per token was half the walk); the NUL
 * after the bytes is written once, by kz_json_recode, at the end. */
static inline int rc_append(struct kz_buf *b, const void *p, size_t n) {
  if (b->cap - b->len <= n && kz_buf_reserve(b, n)) return KZ_ENOMEM;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

/* A member name without escapes: its bytes are its text. */
static int rc_name(struct jp *j, const char **k, size_t *kn) {
  const char *p = ++j->p;
  for (;;) {
    p = plain_run(p, j->end);
    if (p >= j->end) return KZ_EPROTO;
    unsigned char c = (unsigned char)*p;
    if (c == '"') break;
    if (c < 0x80) return KZ_EPROTO; /* a control byte or an escape */
    size_t len = kz_json_utf8_seq((const uint8_t *)p, (size_t)(j->end - p));
    if (!len) return KZ_EPROTO;
    p += len;
  }
  *k = j->p;
  *kn = (size_t)(p - j->p);
  j->p = p + 1;
  return 0;
}

/* After a member or an element: a ',' goes on (1), the container's
 * closing byte ends it (0, the byte written), anything else gives up. */
static int rc_after(struct recoder *r, char close) {
  struct jp *j = &r->j;
  skip_ws(j);
  if (j->p < j->end && *j->p == ',') {
    j->p++;
    return 1;
  }
  if (j->p < j->end && *j->p == close) {
    j->p++;
    return rc_append(r->out, &close, 1);
  }
  return KZ_EPROTO;
}

static int rc_value(struct recoder *r, size_t depth) {
  struct jp *j = &r->j;
  struct kz_buf *b = r->out;
  skip_ws(j);
  if (j->p >= j->end) return KZ_EPROTO;
  int rc;
  switch (*j->p) {
  case '{': {
    if (depth >= j->max_depth) return KZ_EPROTO;
    struct {
      const char *p;
      size_t n;
    } names[RECODE_MAX_MEMBERS];
    size_t nn = 0;
    uint64_t seen = 0; /* a bit per (length, first, last byte) of the names so far */
    bool first = true;
    j->p++;
    if ((rc = rc_append(b, "{", 1))) return rc;
    skip_ws(j);
    if (j->p < j->end && *j->p == '}') {
      j->p++;
      return rc_append(b, "}", 1);
    }
    for (;;) {
      skip_ws(j);
      const char *k;
      size_t kn;
      if (j->p >= j->end || *j->p != '"' || rc_name(j, &k, &kn) || nn == RECODE_MAX_MEMBERS) return KZ_EPROTO;
      uint64_t bit = UINT64_C(1) << ((kn * 7 + (kn ? (unsigned char)k[0] * 3u + (unsigned char)k[kn - 1] : 0u)) & 63u);
      if (seen & bit) /* maybe seen: look */
        for (size_t i = 0; i < nn; i++)
          if (names[i].n == kn && !memcmp(names[i].p, k, kn)) return KZ_EPROTO;
      seen |= bit;
      names[nn].p = k;
      names[nn++].n = kn;
      skip_ws(j);
      if (j->p >= j->end || *j->p != ':') return KZ_EPROTO;
      j->p++;
      if (depth == 0 && r->on_private && kn && k[0] == '_') {
        /* Checked like any value, then handed over instead of written. */
        skip_ws(j);
        const char *v = j->p;
        size_t mark = b->len;
        if ((rc = rc_value(r, depth + 1))) return rc;
        kz_buf_truncate(b, mark);
        if (r->on_private(r->ctx, k, kn, v, (size_t)(j->p - v))) return KZ_EPROTO;
      } else {
        /* [,]"name": in one go (the name's quotes are around it in the text) */
        if (b->cap - b->len <= kn + 4 && kz_buf_reserve(b, kn + 4)) return KZ_ENOMEM;
        uint8_t *o = b->data + b->len;
        if (!first) *o++ = ',';
        memcpy(o, k - 1, kn + 2);
        o += kn + 2;
        *o++ = ':';
        b->len = (size_t)(o - b->data);
        if ((rc = rc_value(r, depth + 1))) return rc;
        first = false;
      }
      if ((rc = rc_after(r, '}')) != 1) return rc;
    }
  }
  case '[': {
    if (depth >= j->max_depth) return KZ_EPROTO;
    j->p++;
    if ((rc = rc_append(b, "[", 1))) return rc;
    skip_ws(j);
    if (j->p < j->end && *j->p == ']') {
      j->p++;
      return rc_append(b, "]", 1);
    }
    for (bool first = true;; first = false) {
      if ((!first && (rc = rc_append(b, ",", 1))) || (rc = rc_value(r, depth + 1))) return rc;
      if ((rc = rc_after(r, ']')) != 1) return rc;
    }
  }
  case '"': {
    /* Plain ASCII to the closing quote, the common case: copied as it
     * is, quotes and all. */
    const char *q = plain_run(j->p + 1, j->end);
    if (q < j->end && *q == '"') {
      rc = rc_append(b, j->p, (size_t)(q + 1 - j->p));
      j->p = q + 1;
      return rc;
    }
    const char *s;
    size_t n;
    if ((rc = string(j, &s, &n))) return rc;
    if (!(j->flags & KZ_JSON_ALLOW_NUL) && memchr(s, 0, n)) return KZ_EPROTO;
    /* Unescaped, the text is already what wr_string writes (no control
     * bytes, quotes or backslashes, valid UTF-8). */
    if (s >= r->start && s < j->end) {
      if ((rc = rc_append(b, s - 1, n + 2))) return rc;
      return 0;
    }
    rc = wr_string(b, s, n);
    return rc == WR_NOMEM ? KZ_ENOMEM : rc ? KZ_EPROTO : 0;
  }
  case 't':
    return word(j, "true", 4) ? rc_append(b, "true", 4) : KZ_EPROTO;
  case 'f':
    return word(j, "false", 5) ? rc_append(b, "false", 5) : KZ_EPROTO;
  case 'n':
    return word(j, "null", 4) ? rc_append(b, "null", 4) : KZ_EPROTO;
  default: {
    /* Integers of up to 18 digits, as the reader takes them. */
    const char *p = j->p;
    bool neg = *p == '-';
    if (neg) p++;
    if (p >= j->end || *p < '0' || *p > '9') return KZ_EPROTO;
    if (*p == '0' && p + 1 < j->end && p[1] >= '0' && p[1] <= '9') return KZ_EPROTO;
    const char *digits = p;
    while (p < j->end && *p >= '0' && *p <= '9') p++;
    if ((p < j->end && (*p == '.' || *p == 'e' || *p == 'E')) || p - digits > 18) return KZ_EPROTO;
    json_int_t v = 0;
    for (const char *d = digits; d < p; d++) v = v * 10 + (*d - '0');
    j->p = p;
    return wr_int(b, neg ? -v : v) ? KZ_ENOMEM : 0;
  }
  }
}

int kz_json_recode(struct kz_buf *out, const void *data, size_t len, unsigned flags, size_t max_depth,
                   kz_json_member_fn on_private, void *ctx, size_t *used) {
  if (used) *used = 0;
  if (!data || !out) return KZ_EPROTO;
  size_t old = out->len;
  struct kz_buf tmp = {0};
  /* The text is at least as long as what it recodes to: one reserve. */
  if (kz_buf_reserve(out, len)) return KZ_ENOMEM;
  struct recoder r = {.j = {.p = data, .end = (const char *)data + len, .tmp = &tmp, .flags = flags,
                            .max_depth = max_depth < RECODE_MAX_DEPTH ? max_depth : RECODE_MAX_DEPTH},
                      .start = data, .out = out, .on_private = on_private, .ctx = ctx};
  skip_ws(&r.j);
  int rc = (flags & KZ_JSON_OBJECT_ONLY) && (r.j.p >= r.j.end || *r.j.p != '{') ? KZ_EPROTO : rc_value(&r, 0);
  if (!rc && used) {
    *used = (size_t)(r.j.p - (const char *)data);
  } else if (!rc) {
    skip_ws(&r.j);
    if (r.j.p != r.j.end) rc = KZ_EPROTO;
  }
  kz_buf_free(&tmp);
  if (rc) kz_buf_truncate(out, old);
  else out->data[out->len] = 0; /* kz_buf's NUL, which rc_append leaves out */
  return rc;
}
