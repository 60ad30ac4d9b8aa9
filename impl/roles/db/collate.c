/* collate.c — CouchDB's collation of JSON values, as a comparison and as memcmp-ordered sort keys for the view index. */
#include <math.h>
#include <string.h>

#include "db_int.h"
#include "kz/error.h"

/* CouchDB orders view keys by type first — null < false < true <
 * numbers < strings < arrays < objects — then within the type: numbers
 * by value, arrays element by element (a shorter prefix first), objects
 * member by member (key, then value; fewer members first) and strings
 * by ICU's Unicode Collation Algorithm with the root locale.
 *
 * kz does not link ICU.  Strings get an approximation that is exact for
 * ASCII and follows the table in CouchDB's "Views Collation" document:
 *
 *   ^ _ - , ; : ! ? . ' " ( ) [ ] { } @ * / \ & # % ` + < = > | ~ $
 *   0 1 2 ... 9  a A b B ... z Z
 *
 * compared in two levels as ICU does: first the whole string with case
 * folded (the primary level: "A" and "a" weigh the same, so "A" < "aa"),
 * then, only between strings equal at that level, case (the tertiary
 * level: lowercase before uppercase, so "a" < "A").  Whitespace sorts
 * before the punctuation, control characters before whitespace (ICU
 * ignores them; here they only weigh least).  Non-ASCII characters sort
 * after every ASCII letter, by code point — ICU would interleave "é"
 * with "e"; kz does not.  Numbers compare as IEEE doubles, as
 * JavaScript emitted them.
 *
 * The same order is available two ways: kz_db_collate compares two
 * jansson values, and kz_db_collate_key writes a byte string whose
 * memcmp order is the collation order (SQLite compares BLOBs with
 * memcmp), which lets range queries run on an index. */

/* Primary weights of the printable ASCII characters, in CouchDB's
 * documented order, case pairs sharing a weight. */
static const char ascii_order[] = "^_-,;:!?.'\"()[]{}@*/\\&#%`+<=>|~$0123456789";

/* Weight of one ASCII byte at the primary level (2..0x7f). */
static unsigned primary_ascii(unsigned char c) {
  if (c < 0x20 || c == 0x7f) return 2; /* controls: weigh least */
  if (c == ' ') return 3;
  if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
  if (c >= 'a' && c <= 'z') return 0x40u + (unsigned)(c - 'a');
  const char *p = strchr(ascii_order, c);
  return p ? 4u + (unsigned)(p - ascii_order) : 3u;
}

/* Decodes one UTF-8 code point (the store only holds valid UTF-8, but
 * a bad byte is taken as itself rather than trusted). */
static uint32_t utf8_next(const unsigned char *s, size_t len, size_t *i) {
  unsigned c = s[*i];
  size_t n = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : 0;
  uint32_t cp = n == 0 ? c : n == 1 ? (c & 0x1f) : n == 2 ? (c & 0x0f) : (c & 0x07);
  if (*i + n >= len + (n ? 0 : 1)) n = 0;
  for (size_t k = 1; k <= n; k++) cp = cp << 6 | (s[*i + k] & 0x3f);
  *i += n + 1;
  return cp;
}

/* Appends the primary weight of a code point: one byte for ASCII, four
 * (0xf0 then three 7-bit groups offset by 2) for anything else, so
 * every byte stays >= 2 and the order follows the code point. */
static int put_primary(struct kz_buf *o, uint32_t cp) {
  if (cp < 0x80) return kz_buf_append_byte(o, (uint8_t)primary_ascii((unsigned char)cp));
  uint8_t b[4] = {0xf0, (uint8_t)(2 + ((cp >> 14) & 0x7f)), (uint8_t)(2 + ((cp >> 7) & 0x7f)),
                  (uint8_t)(2 + (cp & 0x7f))};
  return kz_buf_append(o, b, 4);
}

static int put_string(struct kz_buf *o, const char *s, size_t len) {
  const unsigned char *u = (const unsigned char *)s;
  int rc = kz_buf_append_byte(o, 0x40);
  for (size_t i = 0; i < len && !rc;) rc = put_primary(o, utf8_next(u, len, &i));
  /* Level separator below every weight: a prefix sorts first. */
  if (!rc) rc = kz_buf_append_byte(o, 0x01);
  for (size_t i = 0; i < len && !rc;) {
    uint32_t cp = utf8_next(u, len, &i);
    rc = kz_buf_append_byte(o, cp >= 'A' && cp <= 'Z' ? 3 : 2);
  }
  if (!rc) rc = kz_buf_append_byte(o, 0x00);
  return rc;
}

/* IEEE double made memcmp-ordered: flip the sign bit of positives and
 * every bit of negatives.  -0 is folded into 0 and NaN (never produced
 * by JSON) into 0 too. */
static int put_number(struct kz_buf *o, double d) {
  if (d == 0 || isnan(d)) d = 0;
  uint64_t u;
  memcpy(&u, &d, sizeof u);
  u = (u >> 63) ? ~u : u | (UINT64_C(1) << 63);
  uint8_t b[9] = {0x30};
  for (int i = 0; i < 8; i++) b[1 + i] = (uint8_t)(u >> (56 - 8 * i));
  return kz_buf_append(o, b, sizeof b);
}

static double num_value(const json_t *j) {
  return json_is_integer(j) ? (double)json_integer_value(j) : json_real_value(j);
}

int kz_db_collate_key(struct kz_buf *o, const json_t *j) {
  if (!j || json_is_null(j)) return kz_buf_append_byte(o, 0x10);
  if (json_is_false(j)) return kz_buf_append_byte(o, 0x20);
  if (json_is_true(j)) return kz_buf_append_byte(o, 0x21);
  if (json_is_number(j)) return put_number(o, num_value(j));
  if (json_is_string(j)) return put_string(o, json_string_value(j), json_string_length(j));
  int rc;
  if (json_is_array(j)) {
    rc = kz_buf_append_byte(o, 0x50);
    size_t i;
    const json_t *v;
    json_array_foreach(j, i, v) if (!rc) rc = kz_db_collate_key(o, v);
  } else {
    rc = kz_buf_append_byte(o, 0x60);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v) {
      if (!rc) rc = put_string(o, k, strlen(k));
      if (!rc) rc = kz_db_collate_key(o, v);
    }
  }
  /* End marker below every type tag: a shorter container sorts first. */
  if (!rc) rc = kz_buf_append_byte(o, 0x00);
  return rc;
}

static int type_rank(const json_t *j) {
  if (!j || json_is_null(j)) return 0;
  if (json_is_false(j)) return 1;
  if (json_is_true(j)) return 2;
  if (json_is_number(j)) return 3;
  if (json_is_string(j)) return 4;
  if (json_is_array(j)) return 5;
  return 6;
}

/* Compares two strings the way their sort keys would. */
static int cmp_strings(const char *a, size_t al, const char *b, size_t bl) {
  const unsigned char *ua = (const unsigned char *)a, *ub = (const unsigned char *)b;
  int tert = 0;
  size_t i = 0, k = 0;
  while (i < al && k < bl) {
    uint32_t ca = utf8_next(ua, al, &i), cb = utf8_next(ub, bl, &k);
    if (ca != cb) {
      uint32_t pa = ca < 0x80 ? primary_ascii((unsigned char)ca) : 0x100 + ca;
      uint32_t pb = cb < 0x80 ? primary_ascii((unsigned char)cb) : 0x100 + cb;
      if (pa != pb) return pa < pb ? -1 : 1;
      if (!tert) tert = (ca >= 'A' && ca <= 'Z') ? 1 : -1; /* same letter, other case */
    }
  }
  if (i < al) return 1;
  if (k < bl) return -1;
  return tert;
}

int kz_db_collate(const json_t *a, const json_t *b) {
  int ta = type_rank(a), tb = type_rank(b);
  if (ta != tb) return ta < tb ? -1 : 1;
  switch (ta) {
  case 3: {
    double x = num_value(a), y = num_value(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  case 4:
    return cmp_strings(json_string_value(a), json_string_length(a), json_string_value(b),
                       json_string_length(b));
  case 5: {
    size_t na = json_array_size(a), nb = json_array_size(b);
    for (size_t i = 0; i < na && i < nb; i++) {
      int c = kz_db_collate(json_array_get(a, i), json_array_get(b, i));
      if (c) return c;
    }
    return na < nb ? -1 : na > nb ? 1 : 0;
  }
  case 6: {
    void *ia = json_object_iter((json_t *)a), *ib = json_object_iter((json_t *)b);
    while (ia && ib) {
      const char *ka = json_object_iter_key(ia), *kb = json_object_iter_key(ib);
      int c = cmp_strings(ka, strlen(ka), kb, strlen(kb));
      if (!c) c = kz_db_collate(json_object_iter_value(ia), json_object_iter_value(ib));
      if (c) return c;
      ia = json_object_iter_next((json_t *)a, ia);
      ib = json_object_iter_next((json_t *)b, ib);
    }
    return ia ? 1 : ib ? -1 : 0;
  }
  default:
    return 0;
  }
}
