/* kapi_codec.c — kapi messages from and to bytes (bounded parsing, compact dumps) and envelope-filling builders. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kapi_schema.h"
#include "kz/error.h"
#include "kz/mem.h"

/* Finds the first place where arrays/objects nest deeper than max.
 * jansson parses recursively (up to its own 2048 levels); checking first
 * keeps a hostile message from costing more than max levels.  Strings
 * are skipped so brackets inside them do not count; for the prefix of
 * the input that jansson accepts this view of nesting is exact. */
static bool too_deep(const unsigned char *p, size_t len, size_t max,
                     size_t *at) {
  size_t depth = 0;
  bool in_str = false, esc = false;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = p[i];
    if (in_str) {
      if (esc)
        esc = false;
      else if (c == '\\')
        esc = true;
      else if (c == '"')
        in_str = false;
      continue;
    }
    if (c == '"') {
      in_str = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max) {
        *at = i;
        return true;
      }
    } else if ((c == '}' || c == ']') && depth) {
      depth--;
    }
  }
  return false;
}

/* ------------------------------------------------------------------ */
/* UTF-8, as jansson checks it (src/utf.c): the same rules on both sides
 * so that the fast reader and writer below accept exactly what jansson
 * does.  Returns the length of the valid sequence at p (2..4), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t avail) {
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
/* Reading: a fast path for the messages the bus carries.
 *
 * jansson's reader goes through a byte stream and a growing token buffer
 * a character at a time; on the bus that was a quarter of a round trip's
 * CPU.  fast_parse reads the common shapes directly from the bytes and
 * builds the same jansson values (same types, same key order, same
 * strings).  It never reports an error of its own: on anything it does
 * not handle, or anything wrong, it gives up (NULL) and kz_kapi_parse
 * runs the original path (depth scan, then json_loadb), so refusals and
 * their reasons are exactly jansson's.  Given up on: invalid JSON of any
 * kind, real numbers (jansson's strtod and locale handling decide those),
 * integers of more than 18 digits, \u0000, duplicate keys, nesting
 * deeper than the limit, and allocation failures. */

/* Deeper messages go to jansson (whose own limit, JSON_PARSER_MAX_DEPTH,
 * is 2048 values): this keeps the fast path's recursion small. */
#define FAST_MAX_DEPTH 512

struct fast_rd {
  const unsigned char *p, *end;
  size_t max_depth;
  char *scratch; /* decoded strings with escapes, from kz_malloc */
  size_t scratch_cap;
};

static void rd_ws(struct fast_rd *r) {
  while (r->p < r->end &&
         (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
    r->p++;
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Four hex digits after "\u" at p; -1 when not. */
static int32_t rd_u4(const unsigned char *p, const unsigned char *end) {
  if (end - p < 4) return -1;
  int32_t v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval(p[i]);
    if (h < 0) return -1;
    v = (v << 4) | h;
  }
  return v;
}

static size_t utf8_put(uint32_t cp, char *o) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18));
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Reads a string whose opening quote is at r->p.  On success *s and *len
 * hold its value: a pointer into the input when it has no escapes,
 * otherwise into r->scratch (valid until the next string). */
static bool rd_string(struct fast_rd *r, const char **s, size_t *len) {
  const unsigned char *p = ++r->p, *end = r->end;
  /* Plain run: the usual case, no copy needed. */
  for (;;) {
    if (p >= end) return false;
    unsigned char c = *p;
    if (c == '"') {
      *s = (const char *)r->p;
      *len = (size_t)(p - r->p);
      r->p = p + 1;
      return true;
    }
    if (c == '\\') break;
    if (c < 0x20) return false;
    if (c < 0x80) {
      p++;
      continue;
    }
    size_t n = utf8_seq(p, (size_t)(end - p));
    if (!n) return false;
    p += n;
  }
  /* Escapes: the value is never longer than its source text. */
  size_t need = (size_t)(end - r->p) + 1;
  if (need > r->scratch_cap) {
    char *ns = kz_realloc(r->scratch, need);
    if (!ns) return false;
    r->scratch = ns;
    r->scratch_cap = need;
  }
  size_t done = (size_t)(p - r->p);
  memcpy(r->scratch, r->p, done);
  char *o = r->scratch + done;
  for (;;) {
    if (p >= end) return false;
    unsigned char c = *p;
    if (c == '"') break;
    if (c < 0x20) return false;
    if (c >= 0x80) {
      size_t n = utf8_seq(p, (size_t)(end - p));
      if (!n) return false;
      memcpy(o, p, n);
      o += n;
      p += n;
      continue;
    }
    if (c != '\\') {
      *o++ = (char)c;
      p++;
      continue;
    }
    if (++p >= end) return false;
    switch (*p++) {
    case '"': *o++ = '"'; break;
    case '\\': *o++ = '\\'; break;
    case '/': *o++ = '/'; break;
    case 'b': *o++ = '\b'; break;
    case 'f': *o++ = '\f'; break;
    case 'n': *o++ = '\n'; break;
    case 'r': *o++ = '\r'; break;
    case 't': *o++ = '\t'; break;
    case 'u': {
      int32_t v = rd_u4(p, end);
      if (v <= 0) return false; /* bad hex, or \u0000 (refused by jansson) */
      p += 4;
      if (v >= 0xDC00 && v <= 0xDFFF) return false;
      if (v >= 0xD800 && v <= 0xDBFF) {
        if (end - p < 2 || p[0] != '\\' || p[1] != 'u') return false;
        int32_t lo = rd_u4(p + 2, end);
        if (lo < 0xDC00 || lo > 0xDFFF) return false;
        p += 6;
        v = ((v - 0xD800) << 10) + (lo - 0xDC00) + 0x10000;
      }
      o += utf8_put((uint32_t)v, o);
      break;
    }
    default: return false;
    }
  }
  *s = r->scratch;
  *len = (size_t)(o - r->scratch);
  r->p = p + 1;
  return true;
}

static bool rd_word(struct fast_rd *r, const char *w, size_t n) {
  if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n) != 0) return false;
  r->p += n;
  /* jansson reads a whole identifier: "truex" is one bad token. */
  if (r->p < r->end && ((*r->p | 0x20) >= 'a' && (*r->p | 0x20) <= 'z'))
    return false;
  return true;
}

static json_t *rd_value(struct fast_rd *r, size_t depth);

static json_t *rd_number(struct fast_rd *r) {
  const unsigned char *p = r->p, *end = r->end;
  bool neg = false;
  if (*p == '-') {
    neg = true;
    p++;
  }
  const unsigned char *digits = p;
  while (p < end && *p >= '0' && *p <= '9') p++;
  size_t nd = (size_t)(p - digits);
  if (nd == 0 || nd > 18 || (nd > 1 && digits[0] == '0')) return NULL;
  if (p < end && (*p == '.' || *p == 'e' || *p == 'E')) return NULL; /* real */
  json_int_t v = 0;
  for (const unsigned char *q = digits; q < p; q++) v = v * 10 + (*q - '0');
  r->p = p;
  return json_integer(neg ? -v : v);
}

static json_t *rd_object(struct fast_rd *r, size_t depth) {
  json_t *obj = json_object();
  if (!obj) return NULL;
  r->p++; /* '{' */
  rd_ws(r);
  if (r->p < r->end && *r->p == '}') {
    r->p++;
    return obj;
  }
  for (;;) {
    if (r->p >= r->end || *r->p != '"') goto fail;
    const char *k;
    size_t kl;
    if (!rd_string(r, &k, &kl)) goto fail;
    /* The key may sit in scratch, which the value can reuse: keep a
     * copy of escaped keys (rare) on the side. */
    char kbuf[128];
    char *kheap = NULL;
    if (k == r->scratch) {
      if (kl < sizeof kbuf) {
        memcpy(kbuf, k, kl);
        k = kbuf;
      } else {
        if (!(kheap = kz_strndup(k, kl))) goto fail;
        k = kheap;
      }
    }
    rd_ws(r);
    json_t *v = NULL;
    if (r->p < r->end && *r->p == ':') {
      r->p++;
      rd_ws(r);
      v = rd_value(r, depth);
    }
    size_t before = json_object_size(obj);
    /* A duplicate key would replace the value and leave the size as it
     * was: that is jansson's refusal, so give up. */
    bool ok = v && json_object_setn_new_nocheck(obj, k, kl, v) == 0 &&
              json_object_size(obj) == before + 1;
    kz_free(kheap);
    if (!ok) goto fail;
    rd_ws(r);
    if (r->p >= r->end) goto fail;
    if (*r->p == '}') {
      r->p++;
      return obj;
    }
    if (*r->p != ',') goto fail;
    r->p++;
    rd_ws(r);
  }
fail:
  json_decref(obj);
  return NULL;
}

static json_t *rd_array(struct fast_rd *r, size_t depth) {
  json_t *arr = json_array();
  if (!arr) return NULL;
  r->p++; /* '[' */
  rd_ws(r);
  if (r->p < r->end && *r->p == ']') {
    r->p++;
    return arr;
  }
  for (;;) {
    json_t *v = rd_value(r, depth);
    if (!v || json_array_append_new(arr, v) != 0) goto fail;
    rd_ws(r);
    if (r->p >= r->end) goto fail;
    if (*r->p == ']') {
      r->p++;
      return arr;
    }
    if (*r->p != ',') goto fail;
    r->p++;
    rd_ws(r);
  }
fail:
  json_decref(arr);
  return NULL;
}

/* `depth` counts the arrays/objects around the value. */
static json_t *rd_value(struct fast_rd *r, size_t depth) {
  if (r->p >= r->end) return NULL;
  switch (*r->p) {
  case '{':
    if (depth + 1 > r->max_depth) return NULL;
    return rd_object(r, depth + 1);
  case '[':
    if (depth + 1 > r->max_depth) return NULL;
    return rd_array(r, depth + 1);
  case '"': {
    const char *s;
    size_t len;
    if (!rd_string(r, &s, &len)) return NULL;
    /* Checked above: valid UTF-8, no NUL. */
    return json_stringn_nocheck(s, len);
  }
  case 't': return rd_word(r, "true", 4) ? json_true() : NULL;
  case 'f': return rd_word(r, "false", 5) ? json_false() : NULL;
  case 'n': return rd_word(r, "null", 4) ? json_null() : NULL;
  default:
    if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9')) return rd_number(r);
    return NULL;
  }
}

static json_t *fast_parse(const void *data, size_t len, size_t max_depth) {
  struct fast_rd r = {.p = data, .end = (const unsigned char *)data + len,
                      .max_depth = max_depth < FAST_MAX_DEPTH ? max_depth
                                                              : FAST_MAX_DEPTH};
  rd_ws(&r);
  if (r.p >= r.end || *r.p != '{') return NULL;
  json_t *v = rd_object(&r, 1);
  kz_free(r.scratch);
  if (!v) return NULL;
  rd_ws(&r);
  if (r.p != r.end) {
    json_decref(v);
    return NULL;
  }
  return v;
}

int kz_kapi_parse(const void *data, size_t len,
                  const struct kz_kapi_limits *lim, json_t **out,
                  struct kz_kapi_error *err) {
  if (!out || (!data && len)) {
    kz_bus_kapi_fail(err, "parse: no input");
    return KZ_EINVAL;
  }
  size_t max_size = lim && lim->max_size ? lim->max_size
                                         : KZ_KAPI_DEFAULT_MAX_SIZE;
  size_t max_depth = lim && lim->max_depth ? lim->max_depth
                                           : KZ_KAPI_DEFAULT_MAX_DEPTH;
  if (len > max_size) {
    kz_bus_kapi_fail(err, "message of %zu bytes exceeds the limit of %zu", len,
              max_size);
    return KZ_EMSGSIZE;
  }
  if (len) {
    json_t *v = fast_parse(data, len, max_depth);
    if (v) {
      *out = v;
      return 0;
    }
  }
  /* Not a plain message, or a bad one: the original path decides, with
   * jansson's reasons. */
  size_t at = 0;
  if (too_deep(data, len, max_depth, &at)) {
    kz_bus_kapi_fail(err, "JSON nests deeper than %zu levels (at byte %zu)",
              max_depth, at);
    return KZ_EPROTO;
  }
  json_error_t jerr;
  /* Duplicate keys are refused: two readers could otherwise disagree on
   * which value a message carries. */
  json_t *v = json_loadb(data ? data : "", len, JSON_REJECT_DUPLICATES, &jerr);
  if (!v) {
    kz_bus_kapi_fail(err, "invalid JSON: %s (line %d, column %d)", jerr.text,
              jerr.line, jerr.column);
    return KZ_EPROTO;
  }
  if (!json_is_object(v)) {
    kz_bus_kapi_fail(err, "a message must be a JSON object, not an array");
    json_decref(v);
    return KZ_EPROTO;
  }
  *out = v;
  return 0;
}

int kz_kapi_decode(const void *data, size_t len,
                   const struct kz_kapi_limits *lim,
                   enum kz_kapi_type expected, json_t **out,
                   enum kz_kapi_type *type_out, struct kz_kapi_error *err) {
  if (!out || ((int)expected < 0 || (int)expected >= KZ_KAPI_TYPE_COUNT)) {
    kz_bus_kapi_fail(err, "decode: bad arguments");
    return KZ_EINVAL;
  }
  json_t *v = NULL;
  int rc = kz_kapi_parse(data, len, lim, &v, err);
  if (rc) return rc;
  enum kz_kapi_type t = expected;
  if (t == KZ_KAPI_UNKNOWN) {
    t = kz_kapi_identify_msg(v);
    if (t == KZ_KAPI_UNKNOWN) {
      const char *c = json_string_value(json_object_get(v, "Event-Category"));
      const char *n = json_string_value(json_object_get(v, "Event-Name"));
      if (!c || !n)
        kz_bus_kapi_fail(err, "message has no string Event-Category/Event-Name");
      else
        kz_bus_kapi_fail(err, "unknown message type %.60s/%.60s", c, n);
      json_decref(v);
      return KZ_EPROTO;
    }
  }
  rc = kz_kapi_validate(v, t, err);
  if (rc) {
    json_decref(v);
    return rc;
  }
  *out = v;
  if (type_out) *type_out = t;
  return 0;
}

static int dump_cb(const char *buffer, size_t size, void *data) {
  return kz_buf_append(data, buffer, size) == 0 ? 0 : -1;
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

#define DUMP_MAX_DEPTH 64

/* Nonzero for bytes a string cannot copy as they are. */
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

enum { WR_OK = 0, WR_FAIL = -1, WR_DEEP = -2 };

struct writer {
  struct kz_buf *b;
  const json_t *open[DUMP_MAX_DEPTH]; /* containers being written */
  size_t depth;
};

/* Appends a quoted, escaped string plus one more byte of room. */
static const char hex_upper[] = "0123456789ABCDEF";

static int wr_string(struct kz_buf *b, const char *str, size_t len) {
  if (kz_buf_reserve(b, len + 3)) return WR_FAIL;
  const unsigned char *p = (const unsigned char *)str, *end = p + len;
  uint8_t *o = b->data + b->len;
  *o++ = '"';
  while (p < end) {
    const unsigned char *run = p;
    while (p < end && !needs_care[*p]) p++;
    memcpy(o, run, (size_t)(p - run));
    o += p - run;
    if (p == end) break;
    unsigned char c = *p;
    if (c >= 0x80) {
      size_t n = utf8_seq(p, (size_t)(end - p));
      if (!n) return WR_FAIL; /* jansson refuses to write invalid UTF-8 */
      memcpy(o, p, n);
      o += n;
      p += n;
      continue;
    }
    /* An escape takes up to 6 bytes for 1: make room for the worst case
     * of what is left. */
    b->len = (size_t)(o - b->data);
    if (kz_buf_reserve(b, 6 + (size_t)(end - p) + 2)) return WR_FAIL;
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
  return kz_buf_append_byte(b, (uint8_t)c) ? WR_FAIL : WR_OK;
}

static int wr_int(struct kz_buf *b, json_int_t v) {
  char tmp[24];
  size_t i = sizeof tmp;
  /* Through unsigned so the most negative value works too. */
  unsigned long long u = v < 0 ? 0ull - (unsigned long long)v
                               : (unsigned long long)v;
  do {
    tmp[--i] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) tmp[--i] = '-';
  return kz_buf_append(b, tmp + i, sizeof tmp - i) ? WR_FAIL : WR_OK;
}

static int wr_value(struct writer *w, const json_t *v) {
  struct kz_buf *b = w->b;
  switch (json_typeof(v)) {
  case JSON_NULL:
    return kz_buf_append(b, "null", 4) ? WR_FAIL : WR_OK;
  case JSON_TRUE:
    return kz_buf_append(b, "true", 4) ? WR_FAIL : WR_OK;
  case JSON_FALSE:
    return kz_buf_append(b, "false", 5) ? WR_FAIL : WR_OK;
  case JSON_INTEGER:
    return wr_int(b, json_integer_value(v));
  case JSON_REAL:
    return json_dump_callback(v, dump_cb, b, JSON_ENCODE_ANY | JSON_COMPACT)
               ? WR_FAIL
               : WR_OK;
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
    for (void *it = json_object_iter((json_t *)v); it && !rc;
         it = json_object_iter_next((json_t *)v, it)) {
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

int kz_kapi_dump(const json_t *msg, struct kz_buf *out) {
  if (!msg || !out) return KZ_EINVAL;
  size_t old = out->len;
  /* As json_dump_callback without JSON_ENCODE_ANY: containers only. */
  if (!json_is_object(msg) && !json_is_array(msg)) return KZ_ENOMEM;
  struct writer w = {.b = out};
  int rc = wr_value(&w, msg);
  if (rc == WR_DEEP) {
    kz_buf_truncate(out, old);
    /* Key order is insertion order in jansson >= 2.8, so equal messages
     * built the same way dump to equal bytes without sorting. */
    rc = json_dump_callback(msg, dump_cb, out, JSON_COMPACT) ? WR_FAIL : WR_OK;
  }
  if (rc) {
    kz_buf_truncate(out, old);
    return KZ_ENOMEM;
  }
  return 0;
}

void kz_kapi_msg_id(struct kz_prng *prng, char out[KZ_KAPI_MSG_ID_LEN + 1]) {
  kz_prng_hex(prng, out, KZ_KAPI_MSG_ID_LEN);
  out[KZ_KAPI_MSG_ID_LEN] = 0;
}

static int set_str(json_t *obj, const char *key, const char *val) {
  json_t *s = json_string(val);
  /* json_string refuses invalid UTF-8; treat it as a bad argument. */
  if (!s) return KZ_EINVAL;
  return json_object_set_new_nocheck(obj, key, s) == 0 ? 0 : KZ_ENOMEM;
}

/* The same for strings kz knows to be valid (the const tables, a
 * generated Msg-ID): no UTF-8 scan. */
static int set_known(json_t *obj, const char *key, const char *val) {
  json_t *s = json_string_nocheck(val);
  if (!s) return KZ_ENOMEM;
  return json_object_set_new_nocheck(obj, key, s) == 0 ? 0 : KZ_ENOMEM;
}

/* Whether a body key is one of the envelope fields build() has already
 * set (origin wins over body): a few string compares instead of a hash
 * lookup per body field. */
static bool envelope_set(const char *key, bool msg_id, bool server_id,
                         bool node) {
  switch (key[0]) {
  case 'E':
    return strcmp(key, "Event-Category") == 0 ||
           strcmp(key, "Event-Name") == 0;
  case 'A':
    return strcmp(key, "App-Name") == 0 || strcmp(key, "App-Version") == 0;
  case 'M': return msg_id && strcmp(key, "Msg-ID") == 0;
  case 'S': return server_id && strcmp(key, "Server-ID") == 0;
  case 'N': return node && strcmp(key, "Node") == 0;
  default: return false;
  }
}

static int build(enum kz_kapi_type type, const struct kz_kapi_origin *origin,
                 struct kz_prng *prng, const json_t *request,
                 const json_t *body, json_t **out, struct kz_kapi_error *err) {
  const struct kapi_def *d = kz_bus_kapi_def_of(type);
  if (!d || !origin || !origin->app_name || !origin->app_version || !out) {
    kz_bus_kapi_fail(err, "build: bad arguments");
    return KZ_EINVAL;
  }
  if (body && !json_is_object(body)) {
    kz_bus_kapi_fail(err, "%s: body must be a JSON object", d->name);
    return KZ_EINVAL;
  }
  const json_t *bcat = body ? json_object_get(body, "Event-Category") : NULL;
  if (bcat && !(json_is_string(bcat) &&
                strcmp(json_string_value(bcat), d->category) == 0)) {
    kz_bus_kapi_fail(err, "%s: body's Event-Category contradicts the type",
              d->name);
    return KZ_EINVAL;
  }
  const char *name = d->event_names[1] ? NULL : d->event_names[0];
  const json_t *bname = body ? json_object_get(body, "Event-Name") : NULL;
  if (bname) {
    if (!json_is_string(bname) ||
        (name && strcmp(json_string_value(bname), name) != 0)) {
      kz_bus_kapi_fail(err, "%s: body's Event-Name contradicts the type", d->name);
      return KZ_EINVAL;
    }
    name = json_string_value(bname);
  }
  if (!name) {
    kz_bus_kapi_fail(err, "%s: missing required field Event-Name", d->name);
    return KZ_EPROTO;
  }

  char id[KZ_KAPI_MSG_ID_LEN + 1];
  const char *msg_id = NULL;
  if (request) {
    msg_id = json_string_value(json_object_get(request, "Msg-ID"));
    if (!msg_id) {
      kz_bus_kapi_fail(err, "%s: the request has no Msg-ID to reply to", d->name);
      return KZ_EPROTO;
    }
  } else if (body && json_object_get(body, "Msg-ID")) {
    msg_id = NULL; /* kept from the body below, validated with the rest */
  } else {
    if (!prng) {
      kz_bus_kapi_fail(err, "%s: no PRNG for the Msg-ID", d->name);
      return KZ_EINVAL;
    }
    kz_kapi_msg_id(prng, id);
    msg_id = id;
  }

  json_t *msg = json_object();
  if (!msg) return KZ_ENOMEM;
  /* The envelope goes first so dumps read like Kazoo's messages. */
  int rc = set_known(msg, "Event-Category", d->category);
  if (!rc) rc = bname ? set_str(msg, "Event-Name", name)
                      : set_known(msg, "Event-Name", name);
  if (!rc) rc = set_str(msg, "App-Name", origin->app_name);
  if (!rc) rc = set_str(msg, "App-Version", origin->app_version);
  if (!rc && msg_id) rc = msg_id == id ? set_known(msg, "Msg-ID", msg_id)
                                       : set_str(msg, "Msg-ID", msg_id);
  if (!rc && origin->server_id) rc = set_str(msg, "Server-ID", origin->server_id);
  if (!rc && origin->node) rc = set_str(msg, "Node", origin->node);
  if (!rc && body) {
    /* Body values are shared, not copied: the message holds a reference
     * to each (a deep copy per field was most of the cost of building). */
    bool has_id = msg_id != NULL, has_sid = origin->server_id != NULL,
         has_node = origin->node != NULL;
    for (void *it = json_object_iter((json_t *)body); it;
         it = json_object_iter_next((json_t *)body, it)) {
      const char *key = json_object_iter_key(it);
      if (envelope_set(key, has_id, has_sid, has_node)) continue;
      if (json_object_setn_nocheck(msg, key, json_object_iter_key_len(it),
                                   json_object_iter_value(it)) != 0) {
        rc = KZ_ENOMEM;
        break;
      }
    }
  }
  if (!rc && request && !json_object_get(msg, "Call-ID")) {
    json_t *cid = json_object_get(request, "Call-ID");
    if (json_is_string(cid) && json_object_set(msg, "Call-ID", cid) != 0)
      rc = KZ_ENOMEM;
  }
  if (rc) {
    kz_bus_kapi_fail(err, "%s: %s while building", d->name, kz_strerror(rc));
    json_decref(msg);
    return rc;
  }
  rc = kz_kapi_validate(msg, type, err);
  if (rc) {
    json_decref(msg);
    return rc;
  }
  *out = msg;
  return 0;
}

int kz_kapi_build(enum kz_kapi_type type, const struct kz_kapi_origin *origin,
                  struct kz_prng *prng, const json_t *body, json_t **out,
                  struct kz_kapi_error *err) {
  return build(type, origin, prng, NULL, body, out, err);
}

int kz_kapi_build_reply(enum kz_kapi_type type,
                        const struct kz_kapi_origin *origin,
                        const json_t *request, const json_t *body,
                        json_t **out, struct kz_kapi_error *err) {
  if (!request) {
    kz_bus_kapi_fail(err, "build_reply: no request");
    return KZ_EINVAL;
  }
  return build(type, origin, NULL, request, body, out, err);
}
