/* trace_rehash.h — test helper: recomputes the simulator's trace hash from JSON-lines trace text, independently of sim/trace.c. */
#ifndef KZ_SIM_TESTS_TRACE_REHASH_H
#define KZ_SIM_TESTS_TRACE_REHASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kz/prng.h"

/* The trace hash is kz_hash64 chained over each line's binary canonical
 * form (sim/README.md, "Trace"): for every field of the line in order,
 *   [type][u64 LE key length][key][value]
 * with type 's' (value: u64 LE length + the unescaped bytes), 'u' (an
 * integer >= 0) or '-' (a negative one), integers as 8 bytes LE.  This
 * reader parses the flat JSON objects the trace writes and re-encodes
 * them, so a test can check that the hash covers exactly what the text
 * says, line by line. */

struct rehash_out {
  uint8_t buf[1 << 16]; /* one line's canonical form */
  size_t len;
  bool ok;
};

static void rehash_put(struct rehash_out *o, const void *p, size_t n) {
  if (o->len + n > sizeof o->buf) {
    o->ok = false;
    return;
  }
  memcpy(o->buf + o->len, p, n);
  o->len += n;
}

static void rehash_u64(struct rehash_out *o, uint64_t v) {
  uint8_t b[8];
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
  rehash_put(o, b, 8);
}

static int rehash_hexval(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Parses a JSON string at *p (at its opening quote) into out[0..*n). */
static bool rehash_string(const uint8_t **p, const uint8_t *end, uint8_t *out, size_t cap, size_t *n) {
  const uint8_t *s = *p;
  if (s >= end || *s != '"') return false;
  s++;
  size_t k = 0;
  while (s < end && *s != '"') {
    uint8_t c = *s++;
    if (c == '\\') {
      if (s >= end) return false;
      uint8_t e = *s++;
      switch (e) {
      case '"': c = '"'; break;
      case '\\': c = '\\'; break;
      case '/': c = '/'; break;
      case 'n': c = '\n'; break;
      case 'r': c = '\r'; break;
      case 't': c = '\t'; break;
      case 'b': c = '\b'; break;
      case 'f': c = '\f'; break;
      case 'u': {
        if (end - s < 4) return false;
        int v = 0;
        for (int i = 0; i < 4; i++) {
          int h = rehash_hexval(s[i]);
          if (h < 0) return false;
          v = v * 16 + h;
        }
        if (v > 0xff) return false; /* the trace only escapes single bytes */
        c = (uint8_t)v;
        s += 4;
        break;
      }
      default: return false;
      }
    }
    if (k >= cap) return false;
    out[k++] = c;
  }
  if (s >= end) return false;
  *p = s + 1;
  *n = k;
  return true;
}

/* Canonical form of one line [p, end) (without its '\n'). */
static bool rehash_line(const uint8_t *p, const uint8_t *end, struct rehash_out *o) {
  static uint8_t key[256], val[1 << 15];
  o->len = 0;
  o->ok = true;
  if (p >= end || *p++ != '{') return false;
  for (bool first = true;; first = false) {
    if (p < end && *p == '}') return p + 1 == end && !first && o->ok;
    if (!first && (p >= end || *p++ != ',')) return false;
    size_t klen, vlen;
    if (!rehash_string(&p, end, key, sizeof key, &klen)) return false;
    if (p >= end || *p++ != ':') return false;
    if (p < end && *p == '"') {
      if (!rehash_string(&p, end, val, sizeof val, &vlen)) return false;
      rehash_put(o, "s", 1);
      rehash_u64(o, klen);
      rehash_put(o, key, klen);
      rehash_u64(o, vlen);
      rehash_put(o, val, vlen);
    } else {
      bool neg = p < end && *p == '-';
      if (neg) p++;
      if (p >= end || *p < '0' || *p > '9') return false;
      uint64_t v = 0;
      while (p < end && *p >= '0' && *p <= '9') v = v * 10 + (uint64_t)(*p++ - '0');
      if (neg && v == 0) return false; /* the trace never writes -0 */
      rehash_put(o, neg ? "-" : "u", 1);
      rehash_u64(o, klen);
      rehash_put(o, key, klen);
      rehash_u64(o, neg ? (uint64_t)0 - v : v);
    }
  }
}

/* Recomputes the trace hash of the JSON-lines text d[0..len) into *hash
 * and counts its lines.  False when a line does not parse. */
static bool trace_rehash(const uint8_t *d, size_t len, uint64_t *hash, size_t *lines) {
  static struct rehash_out o;
  uint64_t h = 0;
  size_t n = 0;
  for (size_t i = 0; i < len;) {
    const uint8_t *nl = memchr(d + i, '\n', len - i);
    if (!nl) return false;
    if (!rehash_line(d + i, nl, &o)) return false;
    h = kz_hash64(o.buf, o.len, h);
    n++;
    i = (size_t)(nl - d) + 1;
  }
  *hash = h;
  *lines = n;
  return true;
}

#endif /* KZ_SIM_TESTS_TRACE_REHASH_H */
