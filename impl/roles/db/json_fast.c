/* json_fast.c — a direct JSON parser for request bodies that builds the same jansson values as json_loadb, several times faster. */
#include <string.h>

#include "db_int.h"
#include "kz/error.h"
#include "kz/mem.h"

/* jansson's json_loadb reads its input through a per-byte stream
 * callback and copies every token through a growable buffer: on a
 * _bulk_docs body it was a quarter of the write path.  This parser
 * walks the bytes directly and calls jansson's constructors, so the
 * values (types, members in input order, duplicate members resolved
 * the same way through json_object_setn_new_nocheck) are what
 * json_loadb(JSON_DECODE_ANY | JSON_ALLOW_NUL) would give.
 *
 * It only has to be right on what it accepts: anything unusual (a
 * syntax error, a number jansson might treat differently, a surrogate
 * escape that is not a proper pair, a NUL in a member name, deep
 * nesting) makes it give up with KZ_EPROTO, and the caller asks
 * json_loadb, whose answer stands.  Reals are converted by jansson
 * itself, token by token. */

#define MAX_DEPTH 256 /* deeper documents go to jansson (its limit is 2048) */

struct jp {
  const char *p, *end;
  struct kz_buf *tmp; /* unescaped strings */
};

static void skip_ws(struct jp *j) {
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
    unsigned char c = (unsigned char)*p;
    if (c == '"') break;
    if (c < 0x20) return KZ_EPROTO;
    if (c >= 0x80) {
      /* One UTF-8 sequence, checked as jansson checks it. */
      size_t len = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
      if (!len || (size_t)(j->end - p) < len || !kz_db_utf8_valid(p, len)) return KZ_EPROTO;
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
    if (depth >= MAX_DEPTH) return KZ_EPROTO;
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
        if (!rc && json_object_setn_new_nocheck(o, kc, kn, v)) rc = KZ_ENOMEM;
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
    if (depth >= MAX_DEPTH) return KZ_EPROTO;
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

int kz_db_json_parse(const char *text, size_t len, json_t **out) {
  *out = NULL;
  struct kz_buf tmp = {0};
  struct jp j = {.p = text, .end = text + len, .tmp = &tmp};
  json_t *v = NULL;
  int rc = text ? value(&j, 0, &v) : KZ_EPROTO;
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
