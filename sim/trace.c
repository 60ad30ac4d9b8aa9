/* trace.c — the simulator's event trace: every event hashed in a binary canonical form, and written as a JSON line when a sink wants the text. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "kz/bytes.h"
#include "kz/error.h"
#include "sim_internal.h"

/* Every event is recorded twice over, field by field, as it is built:
 *
 *  - into sim->bin, its binary canonical form, which is what the trace
 *    hash chains (always, sink or not, so the hash never depends on
 *    whether anybody reads the text);
 *  - into sim->line, its JSON line, only when a sink (trace file or
 *    trace memory) is attached at kz_sim_tr_begin.
 *
 * Canonical form of a line (sim/README.md, "Trace"): its fields in
 * order, "t" and "ev" first, each as
 *   [type: 1 byte]['key' length: u64 LE][key bytes][value]
 * where type 's' is a string (value: u64 LE length, then the raw bytes,
 * unescaped), 'u' an integer >= 0 and '-' a negative one (value: 8 bytes
 * LE, two's complement).  Addresses and 64-bit hex fields are the strings
 * the JSON line shows.  Everything the JSON line says is in the canonical
 * form and vice versa, so the hash can be recomputed from a trace file
 * (sim/tests/trace_rehash.h does).
 *
 * Numbers and addresses are formatted by hand and strings are copied in
 * runs: this runs for every simulated datagram, and snprintf or a
 * byte-at-a-time append cost the simulator about a third of its time.
 *
 * An allocation failure while building a line marks the simulator failed
 * rather than hashing or emitting a truncated line: a trace that
 * silently lost a field would defeat its purpose. */

/* Room for n more bytes in b (plus kz_buf's NUL), or NULL after marking
 * the line failed. */
static uint8_t *room(struct kz_sim *sim, struct kz_buf *b, size_t n) {
  if (b->cap - b->len <= n && kz_buf_reserve(b, n) != 0) {
    sim->line_ok = false;
    return NULL;
  }
  return b->data + b->len;
}

static uint8_t *put_le64(uint8_t *p, uint64_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(p, &v, 8); /* one store; the byte loop below is not merged into one */
#else
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
#endif
  return p + 8;
}

/* Canonical field header: type, key. */
static uint8_t *bin_field(uint8_t *p, char type, const char *key, size_t klen) {
  *p++ = (uint8_t)type;
  p = put_le64(p, klen);
  memcpy(p, key, klen);
  return p + klen;
}

#define BIN_HDR 17 /* type + two u64 */

static void bin_str(struct kz_sim *sim, const char *key, size_t klen, const char *val, size_t len) {
  uint8_t *p = room(sim, &sim->bin, BIN_HDR + klen + len);
  if (!p) return;
  p = bin_field(p, 's', key, klen);
  p = put_le64(p, len);
  if (len) memcpy(p, val, len);
  sim->bin.len = (size_t)(p + len - sim->bin.data);
}

static void bin_int(struct kz_sim *sim, const char *key, size_t klen, char type, uint64_t v) {
  uint8_t *p = room(sim, &sim->bin, BIN_HDR + klen);
  if (!p) return;
  p = bin_field(p, type, key, klen);
  p = put_le64(p, v);
  sim->bin.len = (size_t)(p - sim->bin.data);
}

/* Decimal digits of v, written backwards ending at `end`; returns the
 * first digit. */
static char *fmt_u64(char *end, uint64_t v) {
  static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                              "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                              "8081828384858687888990919293949596979899";
  char *p = end;
  while (v >= 100) {
    unsigned d = (unsigned)(v % 100) * 2;
    v /= 100;
    *--p = pairs[d + 1];
    *--p = pairs[d];
  }
  if (v >= 10) {
    unsigned d = (unsigned)v * 2;
    *--p = pairs[d + 1];
    *--p = pairs[d];
  } else {
    *--p = (char)('0' + v);
  }
  return p;
}

/* JSON text: `,"key":` (keys are identifiers written by the simulator,
 * never escaped) followed by `n` raw bytes. */
static void txt_raw(struct kz_sim *sim, const char *key, size_t klen, const char *val, size_t n) {
  uint8_t *p = room(sim, &sim->line, klen + 4 + n);
  if (!p) return;
  *p++ = ',';
  *p++ = '"';
  memcpy(p, key, klen);
  p += klen;
  *p++ = '"';
  *p++ = ':';
  memcpy(p, val, n);
  sim->line.len = (size_t)(p + n - sim->line.data);
}

/* Which bytes a JSON string body escapes: '"', '\\', controls, and bytes
 * >= 0x7f too, so a line is valid JSON whatever a role logged (it reads
 * back as Latin-1). */
static bool needs_escape(unsigned char c) { return c < 0x20 || c >= 0x7f || c == '"' || c == '\\'; }

/* Appends `"body"` (escaped) to the JSON line. */
static void txt_json_str(struct kz_sim *sim, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  /* Worst case every byte becomes \u00XX. */
  if (n > (SIZE_MAX - 2) / 6) {
    sim->line_ok = false;
    return;
  }
  uint8_t *p = room(sim, &sim->line, 6 * n + 2);
  if (!p) return;
  *p++ = '"';
  size_t i = 0;
  while (i < n) {
    size_t run = i;
    while (run < n && !needs_escape((unsigned char)s[run])) run++;
    memcpy(p, s + i, run - i);
    p += run - i;
    if (run == n) break;
    unsigned char c = (unsigned char)s[run];
    *p++ = '\\';
    switch (c) {
    case '"':
    case '\\': *p++ = c; break;
    case '\n': *p++ = 'n'; break;
    case '\r': *p++ = 'r'; break;
    case '\t': *p++ = 't'; break;
    default:
      *p++ = 'u';
      *p++ = '0';
      *p++ = '0';
      *p++ = (uint8_t)hex[c >> 4];
      *p++ = (uint8_t)hex[c & 15];
    }
    i = run + 1;
  }
  *p++ = '"';
  sim->line.len = (size_t)(p - sim->line.data);
}

static void txt_key(struct kz_sim *sim, const char *key, size_t klen) {
  uint8_t *p = room(sim, &sim->line, klen + 4);
  if (!p) return;
  *p++ = ',';
  *p++ = '"';
  memcpy(p, key, klen);
  p += klen;
  *p++ = '"';
  *p++ = ':';
  sim->line.len = (size_t)(p - sim->line.data);
}

static void field_strk(struct kz_sim *sim, const char *key, size_t klen, const char *val, size_t len) {
  bin_str(sim, key, klen, val, len);
  if (sim->tr_text) {
    txt_key(sim, key, klen);
    txt_json_str(sim, val, len);
  }
}

static void field_str(struct kz_sim *sim, const char *key, const char *val, size_t len) {
  field_strk(sim, key, strlen(key), val, len);
}

void kz_sim_tr_begin(struct kz_sim *sim, const char *ev) {
  sim->tr_skip = sim->trace_off;
  if (sim->tr_skip) return;
  sim->tr_text = sim->trace_file != NULL || sim->trace_keep;
  sim->line_ok = true;
  kz_buf_reset(&sim->bin);
  bin_int(sim, "t", 1, 'u', sim->now);
  size_t evlen = strlen(ev);
  bin_str(sim, "ev", 2, ev, evlen);
  if (sim->tr_text) {
    kz_buf_reset(&sim->line);
    char num[24];
    char *d = fmt_u64(num + sizeof num, sim->now);
    size_t n = (size_t)(num + sizeof num - d);
    uint8_t *p = room(sim, &sim->line, 5 + n);
    if (p) {
      memcpy(p, "{\"t\":", 5);
      memcpy(p + 5, d, n);
      sim->line.len += 5 + n;
    }
    txt_key(sim, "ev", 2);
    txt_json_str(sim, ev, evlen);
  }
}

void kz_sim_tr_str(struct kz_sim *sim, const char *key, const char *val) {
  if (sim->tr_skip) return;
  field_str(sim, key, val, strlen(val));
}

void kz_sim_tr_strn(struct kz_sim *sim, const char *key, const char *val, size_t len) {
  if (sim->tr_skip) return;
  field_str(sim, key, val, len);
}

void kz_sim_tr_u64(struct kz_sim *sim, const char *key, uint64_t v) {
  if (sim->tr_skip) return;
  size_t klen = strlen(key);
  bin_int(sim, key, klen, 'u', v);
  if (sim->tr_text) {
    char num[24];
    char *d = fmt_u64(num + sizeof num, v);
    txt_raw(sim, key, klen, d, (size_t)(num + sizeof num - d));
  }
}

void kz_sim_tr_i64(struct kz_sim *sim, const char *key, int64_t v) {
  if (sim->tr_skip) return;
  size_t klen = strlen(key);
  /* A value >= 0 is canonically the same as the u64 with that value:
   * the JSON text cannot tell them apart either. */
  bin_int(sim, key, klen, v < 0 ? '-' : 'u', (uint64_t)v);
  if (sim->tr_text) {
    char num[24];
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    char *d = fmt_u64(num + sizeof num, mag);
    if (v < 0) *--d = '-';
    txt_raw(sim, key, klen, d, (size_t)(num + sizeof num - d));
  }
}

/* 64-bit hashes are written as 16 hex digits in a string: JSON readers
 * that parse numbers as doubles would round a 64-bit integer. */
void kz_sim_tr_hex64(struct kz_sim *sim, const char *key, uint64_t v) {
  if (sim->tr_skip) return;
  /* Two digits a step from a byte table (every datagram traces two of
   * these). */
  static const char hex2[] =
      "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
      "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
      "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
      "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
      "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
      "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
      "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
      "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
  char s[18];
  s[0] = s[17] = '"';
  for (int i = 0; i < 8; i++) memcpy(s + 15 - 2 * i, hex2 + 2 * ((v >> (8 * i)) & 0xff), 2);
  size_t klen = strlen(key);
  bin_str(sim, key, klen, s + 1, 16);
  if (sim->tr_text) txt_raw(sim, key, klen, s, sizeof s);
}

/* "a.b.c.d:port" by hand for IPv4 (the common case); kz_addr_format for
 * the rest.  Same text as kz_addr_format in every case. */
static size_t addr_text(const struct kz_addr *a, char *out, size_t outlen) {
  if (a->family != 4) {
    size_t n = kz_addr_format(a, out, outlen);
    return n >= outlen ? strlen(out) : n;
  }
  char tmp[24];
  char *end = tmp + sizeof tmp;
  char *p = fmt_u64(end, a->port);
  for (int i = 3; i >= 0; i--) {
    *--p = i == 3 ? ':' : '.';
    p = fmt_u64(p, a->ip[i]);
  }
  size_t n = (size_t)(end - p);
  memcpy(out, p, n);
  out[n] = 0;
  return n;
}

/* kz_addr_eq, inlined: this runs for every traced address. */
static bool addr_same(const struct kz_addr *x, const struct kz_addr *y) {
  if (x->family != y->family || x->port != y->port) return false;
  if (x->family == 4) {
    uint32_t a, b;
    memcpy(&a, x->ip, 4); /* one load each, no memcmp call */
    memcpy(&b, y->ip, 4);
    return a == b;
  }
  return memcmp(x->ip, y->ip, x->family == 6 ? 16 : 0) == 0;
}

/* addr_same from one 8-byte load of each: family and port compared
 * together under a mask (the padding byte after family is never
 * compared), then an IPv4 address from the same word.  Runs twice for
 * every datagram traced. */
static inline bool addr_same_fast(const struct kz_addr *x, const struct kz_addr *y) {
  _Static_assert(offsetof(struct kz_addr, port) == 2 && offsetof(struct kz_addr, ip) == 4,
                 "kz_addr layout: family, pad, port, ip");
  uint64_t u, v;
  memcpy(&u, x, 8);
  memcpy(&v, y, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  uint64_t d = u ^ v;
  if (d & 0xffff00ffu) return false; /* family, port */
  if (x->family == 4) return (d >> 32) == 0;
  return x->family != 6 || memcmp(x->ip, y->ip, 16) == 0;
#else
  (void)u;
  (void)v;
  return addr_same(x, y);
#endif
}

void kz_sim_tr_addr(struct kz_sim *sim, const char *key, const struct kz_addr *a) {
  if (sim->tr_skip) return;
  /* The text only depends on the address, so the cache cannot change
   * what is traced. */
  size_t klen = strlen(key);
  for (size_t i = 0; i < sizeof sim->tr_addr / sizeof sim->tr_addr[0]; i++) {
    if (sim->tr_addr[i].len && addr_same(&sim->tr_addr[i].a, a)) {
      field_strk(sim, key, klen, sim->tr_addr[i].text, sim->tr_addr[i].len);
      return;
    }
  }
  char s[KZ_ADDR_STRLEN];
  size_t n = addr_text(a, s, sizeof s);
  if (n > 0 && n < sizeof s && n <= UINT8_MAX) {
    unsigned v = sim->tr_addr_next++ % (sizeof sim->tr_addr / sizeof sim->tr_addr[0]);
    sim->tr_addr[v].a = *a;
    sim->tr_addr[v].len = (uint8_t)n;
    memcpy(sim->tr_addr[v].text, s, n);
  }
  field_strk(sim, key, klen, s, n);
}

/* Writes v as 16 lower-case hex digits, most significant first, and
 * returns the end.  Every datagram's trace line carries its hash: with
 * SSE2 (every x86-64) the 16 digits are made at once instead of a loop
 * of 16 steps. */
static uint8_t *hex16(uint8_t *q, uint64_t v) {
#if defined(__SSE2__)
  /* Bytes most significant first; then each byte's high and low nibble
   * side by side; then '0' + nibble, plus 'a' - '0' - 10 above 9. */
  __m128i b = _mm_cvtsi64_si128((long long)__builtin_bswap64(v));
  __m128i m = _mm_set1_epi8(0x0f);
  __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), m), lo = _mm_and_si128(b, m);
  __m128i nib = _mm_unpacklo_epi8(hi, lo);
  __m128i adj = _mm_and_si128(_mm_cmpgt_epi8(nib, _mm_set1_epi8(9)), _mm_set1_epi8('a' - '0' - 10));
  _mm_storeu_si128((__m128i *)(void *)q, _mm_add_epi8(_mm_add_epi8(nib, _mm_set1_epi8('0')), adj));
#else
  static const char hex[] = "0123456789abcdef";
  for (int i = 15; i >= 0; i--, v >>= 4) q[i] = (uint8_t)hex[v & 15];
#endif
  return q + 16;
}

/* The cached text of address a (filling the cache on a miss); *n is its
 * length.  tmp is room for a text that cannot be cached. */
static const char *addr_lookup(struct kz_sim *sim, const struct kz_addr *a, char *tmp, size_t *n) {
  for (size_t i = 0; i < sizeof sim->tr_addr / sizeof sim->tr_addr[0]; i++) {
    if (sim->tr_addr[i].len && addr_same_fast(&sim->tr_addr[i].a, a)) {
      *n = sim->tr_addr[i].len;
      return sim->tr_addr[i].text;
    }
  }
  size_t len = addr_text(a, tmp, KZ_ADDR_STRLEN);
  if (len > 0 && len < KZ_ADDR_STRLEN && len <= UINT8_MAX) {
    unsigned v = sim->tr_addr_next++ % (sizeof sim->tr_addr / sizeof sim->tr_addr[0]);
    sim->tr_addr[v].a = *a;
    sim->tr_addr[v].len = (uint8_t)len;
    memcpy(sim->tr_addr[v].text, tmp, len);
  }
  *n = len;
  return tmp;
}

/* A string field in canonical form at p; klen is a constant at every
 * call, so the key copy is a fixed-size move. */
static inline uint8_t *w_str(uint8_t *p, const char *key, size_t klen, const char *val, size_t len) {
  p = bin_field(p, 's', key, klen);
  p = put_le64(p, len);
  return kz_copy_small(p, val, len);
}

/* Declared in net.c (see there). */
void kz_sim_tr_dgram(struct kz_sim *sim, const char *ev, const struct kz_sim_host *h,
                     const struct kz_sim_proc *p, const struct kz_addr *src,
                     const struct kz_addr *dst, size_t len, uint64_t hash) {
  if (sim->trace_off || sim->trace_file || sim->trace_keep) {
    /* Teardown or a text sink: the general builder (same bytes). */
    kz_sim_tr_begin(sim, ev);
    kz_sim_tr_who(sim, h, p);
    kz_sim_tr_addr(sim, "src", src);
    kz_sim_tr_addr(sim, "dst", dst);
    kz_sim_tr_payload_hashed(sim, len, hash);
    return;
  }
  /* What kz_sim_tr_begin sets up, then every field in one go: this line
   * is written for every datagram sent and received. */
  sim->tr_skip = false;
  sim->tr_text = false;
  sim->line_ok = true;
  kz_buf_reset(&sim->bin);
  char sbuf[KZ_ADDR_STRLEN], dbuf[KZ_ADDR_STRLEN];
  size_t evlen = strlen(ev), hlen = h ? strlen(h->name) : 0, plen = p ? strlen(p->name) : 0;
  size_t slen, dlen;
  const char *st = addr_lookup(sim, src, sbuf, &slen);
  const char *dt = addr_lookup(sim, dst, dbuf, &dlen);
  size_t total = (BIN_HDR + 1) + (BIN_HDR + 2 + evlen) + (BIN_HDR + 4 + hlen) + (BIN_HDR + 4 + plen) +
                 (BIN_HDR + 3 + slen) + (BIN_HDR + 3 + dlen) + (BIN_HDR + 3) + (BIN_HDR + 1 + 16);
  uint8_t *q = room(sim, &sim->bin, total);
  if (!q) return;
  q = bin_field(q, 'u', "t", 1);
  q = put_le64(q, sim->now);
  q = w_str(q, "ev", 2, ev, evlen);
  if (h) q = w_str(q, "host", 4, h->name, hlen);
  if (p) q = w_str(q, "proc", 4, p->name, plen);
  q = w_str(q, "src", 3, st, slen);
  q = w_str(q, "dst", 3, dt, dlen);
  q = bin_field(q, 'u', "len", 3);
  q = put_le64(q, len);
  q = bin_field(q, 's', "h", 1);
  q = put_le64(q, 16);
  q = hex16(q, hash);
  sim->bin.len = (size_t)(q - sim->bin.data);
}

void kz_sim_tr_who(struct kz_sim *sim, const struct kz_sim_host *h,
            const struct kz_sim_proc *p) {
  if (sim->tr_skip) return;
  if (h) field_strk(sim, "host", 4, h->name, strlen(h->name));
  if (p) field_strk(sim, "proc", 4, p->name, strlen(p->name));
}

void kz_sim_tr_payload(struct kz_sim *sim, const void *data, size_t len) {
  if (sim->tr_skip) return;
  kz_sim_tr_payload_hashed(sim, len, kz_hash64(data, len, 0));
}

void kz_sim_tr_payload_hashed(struct kz_sim *sim, size_t len, uint64_t hash) {
  if (sim->tr_skip) return;
  kz_sim_tr_u64(sim, "len", len);
  kz_sim_tr_hex64(sim, "h", hash);
}

void kz_sim_tr_err(struct kz_sim *sim, const char *key, int err) {
  if (sim->tr_skip) return;
  kz_sim_tr_str(sim, key, err ? kz_err_name(err) : "ok");
}

void kz_sim_tr_end(struct kz_sim *sim) {
  if (sim->tr_skip) return;
  if (!sim->line_ok) {
    kz_sim_fail(sim, KZ_ENOMEM);
    return;
  }
  sim->trace_hash = kz_hash64(sim->bin.data, sim->bin.len, sim->trace_hash);
  sim->stats.trace_lines++;
  if (!sim->tr_text) return;
  uint8_t *p = room(sim, &sim->line, 2);
  if (!p) {
    kz_sim_fail(sim, KZ_ENOMEM);
    return;
  }
  p[0] = '}';
  p[1] = '\n';
  sim->line.len += 2;
  p = sim->line.data;
  size_t n = sim->line.len;
  if (sim->trace_keep && kz_buf_append(&sim->trace_mem, p, n) != 0)
    kz_sim_fail(sim, KZ_ENOMEM);
  if (sim->trace_file && fwrite(p, 1, n, sim->trace_file) != n)
    kz_sim_fail(sim, KZ_EIO);
}

void kz_sim_trace_free(struct kz_sim *sim) {
  kz_buf_free(&sim->line);
  kz_buf_free(&sim->bin);
  kz_buf_free(&sim->trace_mem);
}

uint64_t kz_sim_trace_hash(const struct kz_sim *sim) { return sim->trace_hash; }

void kz_sim_set_trace_file(struct kz_sim *sim, FILE *f) { sim->trace_file = f; }

void kz_sim_set_trace_memory(struct kz_sim *sim, bool keep) { sim->trace_keep = keep; }

const uint8_t *kz_sim_trace_data(const struct kz_sim *sim, size_t *len) {
  *len = sim->trace_mem.len;
  return sim->trace_mem.len ? sim->trace_mem.data : (const uint8_t *)"";
}

void kz_sim_trace_mark(struct kz_sim *sim, const char *label) {
  kz_sim_tr_begin(sim, "mark");
  kz_sim_tr_str(sim, "label", label);
  kz_sim_tr_end(sim);
}
