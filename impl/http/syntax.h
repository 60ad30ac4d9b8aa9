/* syntax.h — private HTTP character classes (RFC 9110 §5.6) shared by the parser, writer and URL helpers. */
#ifndef KZ_HTTP_SYNTAX_H
#define KZ_HTTP_SYNTAX_H

#include <stdbool.h>
#include <stdint.h>

static inline bool kz_http_is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

static inline bool kz_http_is_alpha(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
 *         "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
static inline bool kz_http_is_tchar(uint8_t c) {
  if (kz_http_is_alpha(c) || kz_http_is_digit(c)) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

/* Bytes allowed inside a field value or reason phrase: HTAB, SP, VCHAR
 * and obs-text; never NUL, CR, LF or other controls. */
static inline bool kz_http_is_field_vchar(uint8_t c) {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Hex digit value, or -1. */
static inline int kz_http_hex_value(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

#endif /* KZ_HTTP_SYNTAX_H */
