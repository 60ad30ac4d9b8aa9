/* util.c — small helpers of the db role: base64, MD5 digests, uuids, name and UTF-8 checks, JSON output. */
#include <stdlib.h>
#include <string.h>

#include <nettle/md5.h>

#include "db_int.h"
#include "kz/error.h"
#include "kz/mem.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int kz_db_b64_encode(struct kz_buf *out, const uint8_t *in, size_t len) {
  if (kz_buf_reserve(out, (len + 2) / 3 * 4 + 1)) return KZ_ENOMEM;
  char *o = (char *)out->data + out->len;
  size_t k = 0;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < len) v |= in[i + 2];
    o[k++] = b64_alphabet[(v >> 18) & 63];
    o[k++] = b64_alphabet[(v >> 12) & 63];
    o[k++] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
    o[k++] = i + 2 < len ? b64_alphabet[v & 63] : '=';
  }
  out->len += k;
  out->data[out->len] = 0;
  return 0;
}

static int b64_val(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

int kz_db_b64_decode(struct kz_buf *out, const char *in, size_t len) {
  if (len % 4) return KZ_EPROTO;
  if (kz_buf_reserve(out, len / 4 * 3 + 1)) return KZ_ENOMEM;
  size_t start = out->len;
  for (size_t i = 0; i < len; i += 4) {
    int v[4];
    int pad = 0;
    for (int j = 0; j < 4; j++) {
      char c = in[i + (size_t)j];
      if (c == '=' && i + 4 == len && j >= 2) {
        v[j] = 0;
        pad++;
      } else {
        if (pad) goto bad; /* data after padding */
        v[j] = b64_val(c);
        if (v[j] < 0) goto bad;
      }
    }
    uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
    out->data[out->len++] = (uint8_t)(x >> 16);
    if (pad < 2) out->data[out->len++] = (uint8_t)(x >> 8);
    if (pad < 1) out->data[out->len++] = (uint8_t)x;
  }
  out->data[out->len] = 0;
  return 0;
bad:
  kz_buf_truncate(out, start);
  return KZ_EPROTO;
}

void kz_db_md5(const void *data, size_t len, uint8_t out[16]) {
  struct md5_ctx ctx;
  md5_init(&ctx);
  md5_update(&ctx, len, data);
  md5_digest(&ctx, MD5_DIGEST_SIZE, out);
}

void kz_db_md5_digest(const void *data, size_t len, char out[32]) {
  uint8_t d[16];
  kz_db_md5(data, len, d);
  memcpy(out, "md5-", 4);
  /* 16 bytes: 24 base64 chars, fits. */
  size_t k = 4;
  for (size_t i = 0; i < 16; i += 3) {
    uint32_t v = (uint32_t)d[i] << 16;
    if (i + 1 < 16) v |= (uint32_t)d[i + 1] << 8;
    if (i + 2 < 16) v |= d[i + 2];
    out[k++] = b64_alphabet[(v >> 18) & 63];
    out[k++] = b64_alphabet[(v >> 12) & 63];
    out[k++] = i + 1 < 16 ? b64_alphabet[(v >> 6) & 63] : '=';
    out[k++] = i + 2 < 16 ? b64_alphabet[v & 63] : '=';
  }
  out[k] = 0;
}

void kz_db_uuid(struct kz_db *db, char out[33]) {
  kz_prng_hex(&db->prng, out, 32);
  out[32] = 0;
}

bool kz_db_name_valid(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > 238) return false;
  if (!strcmp(name, "_users") || !strcmp(name, "_replicator") || !strcmp(name, "_global_changes"))
    return true;
  if (name[0] < 'a' || name[0] > 'z') return false;
  for (size_t i = 1; i < n; i++) {
    char c = name[i];
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) continue;
    if (strchr("_$()+/-", c)) continue;
    return false;
  }
  return true;
}

bool kz_db_utf8_valid(const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    unsigned c = p[i];
    if (c == 0) return false;
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    for (size_t k = 1; k <= n; k++) {
      if (i + k >= len || (p[i + k] & 0xc0) != 0x80) return false;
      cp = cp << 6 | (p[i + k] & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n + 1;
  }
  return true;
}

/* ------------------------------------------------------------------ */
/* Compact JSON writer                                                 */

/* Writes exactly the bytes json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY)
 * gives (jansson 2.x: members in insertion order, '\\' '"' and control
 * characters escaped, \b \f \n \r \t short, the rest as \u00XX with
 * uppercase hex, everything else verbatim since jansson strings are
 * valid UTF-8), without jansson's per-token callbacks and printf: the
 * stored text of a document is hashed into its revision, so the bytes
 * must not change, only the cost. */
/* Appends n bytes (n >= 1) with one capacity check in the common case:
 * the writer's hot loop, where kz_buf_append's call and checks per
 * token were a fifth of the cost of writing a document. */
static inline int put(struct kz_buf *o, const void *s, size_t n) {
  if (o->cap - o->len <= n && kz_buf_reserve(o, n)) return KZ_ENOMEM;
  memcpy(o->data + o->len, s, n);
  o->len += n;
  o->data[o->len] = 0;
  return 0;
}

static inline int putc1(struct kz_buf *o, char c) {
  if (o->cap - o->len <= 1 && kz_buf_reserve(o, 1)) return KZ_ENOMEM;
  o->data[o->len++] = (uint8_t)c;
  o->data[o->len] = 0;
  return 0;
}

static int w_string(struct kz_buf *o, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  if (kz_buf_reserve(o, n + 2)) return KZ_ENOMEM;
  o->data[o->len++] = '"';
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    if (i > run && put(o, s + run, i - run)) return KZ_ENOMEM;
    run = i + 1;
    char e[6] = {'\\', 0};
    size_t el = 2;
    switch (c) {
    case '"': e[1] = '"'; break;
    case '\\': e[1] = '\\'; break;
    case '\b': e[1] = 'b'; break;
    case '\f': e[1] = 'f'; break;
    case '\n': e[1] = 'n'; break;
    case '\r': e[1] = 'r'; break;
    case '\t': e[1] = 't'; break;
    default:
      e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = hex[c >> 4], e[5] = hex[c & 15];
      el = 6;
    }
    if (put(o, e, el)) return KZ_ENOMEM;
  }
  if (n > run && put(o, s + run, n - run)) return KZ_ENOMEM;
  return putc1(o, '"');
}

static int w_integer(struct kz_buf *o, json_int_t v) {
  char b[24];
  size_t i = sizeof b;
  /* Through unsigned so the most negative value negates cleanly. */
  unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
  do {
    b[--i] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) b[--i] = '-';
  return put(o, b + i, sizeof b - i);
}

static int w_value(struct kz_buf *o, const json_t *j) {
  switch (json_typeof(j)) {
  case JSON_OBJECT: {
    if (putc1(o, '{')) return KZ_ENOMEM;
    bool first = true;
    for (void *it = json_object_iter((json_t *)j); it; it = json_object_iter_next((json_t *)j, it)) {
      if (!first && putc1(o, ',')) return KZ_ENOMEM;
      first = false;
      if (w_string(o, json_object_iter_key(it), json_object_iter_key_len(it)) || putc1(o, ':') ||
          w_value(o, json_object_iter_value(it)))
        return KZ_ENOMEM;
    }
    return putc1(o, '}');
  }
  case JSON_ARRAY: {
    if (putc1(o, '[')) return KZ_ENOMEM;
    size_t n = json_array_size(j);
    for (size_t i = 0; i < n; i++)
      if ((i && putc1(o, ',')) || w_value(o, json_array_get(j, i))) return KZ_ENOMEM;
    return putc1(o, ']');
  }
  case JSON_STRING:
    return w_string(o, json_string_value(j), json_string_length(j));
  case JSON_INTEGER:
    return w_integer(o, json_integer_value(j));
  case JSON_TRUE:
    return put(o, "true", 4);
  case JSON_FALSE:
    return put(o, "false", 5);
  case JSON_NULL:
    return put(o, "null", 4);
  default: {
    /* Reals: jansson's own formatting (%.17g and its fix-ups), rare. */
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s) return KZ_ENOMEM;
    int rc = kz_buf_append_cstr(o, s);
    free(s);
    return rc;
  }
  }
}

int kz_db_json_write_str(struct kz_buf *out, const char *s, size_t len) {
  size_t mark = out->len;
  int rc = w_string(out, s, len);
  if (rc) kz_buf_truncate(out, mark);
  return rc;
}

int kz_db_json_write_body(struct kz_buf *out, const json_t *doc) {
  if (!json_is_object(doc)) return KZ_EINVAL;
  size_t mark = out->len;
  int rc = putc1(out, '{');
  bool first = true;
  for (void *it = json_object_iter((json_t *)doc); it && !rc; it = json_object_iter_next((json_t *)doc, it)) {
    const char *k = json_object_iter_key(it);
    if (k[0] == '_') continue;
    if ((!first && putc1(out, ',')) || w_string(out, k, json_object_iter_key_len(it)) || putc1(out, ':') ||
        w_value(out, json_object_iter_value(it)))
      rc = KZ_ENOMEM;
    first = false;
  }
  if (!rc) rc = putc1(out, '}');
  if (rc) kz_buf_truncate(out, mark);
  return rc;
}

int kz_db_json_write(struct kz_buf *out, const json_t *j) {
  if (!j) return KZ_EINVAL;
  size_t mark = out->len;
  int rc = w_value(out, j);
  if (rc) kz_buf_truncate(out, mark);
  return rc;
}

int kz_db_json_dump(struct kz_buf *out, const json_t *j, size_t flags) {
  if (!(flags & ~(size_t)(JSON_COMPACT | JSON_ENCODE_ANY))) return kz_db_json_write(out, j);
  char *s = json_dumps(j, flags | JSON_COMPACT | JSON_ENCODE_ANY);
  if (!s) return KZ_ENOMEM;
  int rc = kz_buf_append_cstr(out, s);
  free(s);
  return rc;
}
