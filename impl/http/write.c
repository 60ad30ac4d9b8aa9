/* write.c — HTTP/1.1 message writer with the reason-phrase table; refuses anything that could inject headers. */
#include "kz/http_write.h"

#include <string.h>

#include "kz/error.h"
#include "syntax.h"

struct reason_entry {
  int status;
  const char *phrase;
};

/* RFC 9110 §15 phrases, sorted by status. */
static const struct reason_entry reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {203, "Non-Authoritative Information"},
    {204, "No Content"},
    {205, "Reset Content"},
    {206, "Partial Content"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Content"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

const char *kz_http_reason_phrase(int status) {
  size_t lo = 0, hi = sizeof(reasons) / sizeof(reasons[0]);
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (reasons[mid].status == status) return reasons[mid].phrase;
    if (reasons[mid].status < status) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return "Unknown";
}

static bool valid_token(const char *s) {
  if (!s || !*s) return false;
  for (; *s; s++)
    if (!kz_http_is_tchar((uint8_t)*s)) return false;
  return true;
}

static bool valid_value(struct kz_slice v) {
  if (!v.p && v.len) return false;
  for (size_t i = 0; i < v.len; i++)
    if (!kz_http_is_field_vchar((uint8_t)v.p[i])) return false;
  return true;
}

/* Puts the buffer back to `mark` after a failed append sequence. */
static int rollback(struct kz_buf *b, size_t mark, int rc) {
  kz_buf_truncate(b, mark);
  return rc;
}

int kz_http_write_status_line(struct kz_buf *b, int status, const char *reason) {
  if (!b || status < 100 || status > 599) return KZ_EINVAL;
  if (!reason) reason = kz_http_reason_phrase(status);
  if (!valid_value(kz_slice_cstr(reason))) return KZ_EINVAL;
  size_t mark = b->len;
  int rc = kz_buf_printf(b, "HTTP/1.1 %d %s\r\n", status, reason);
  return rc ? rollback(b, mark, rc) : 0;
}

int kz_http_write_request_line(struct kz_buf *b, const char *method, struct kz_slice target) {
  if (!b || !valid_token(method) || !target.len || !target.p) return KZ_EINVAL;
  for (size_t i = 0; i < target.len; i++) {
    uint8_t c = (uint8_t)target.p[i];
    if (c <= 0x20 || c >= 0x7f) return KZ_EINVAL;
  }
  size_t mark = b->len;
  int rc = kz_buf_append_cstr(b, method);
  if (!rc) rc = kz_buf_append_byte(b, ' ');
  if (!rc) rc = kz_buf_append_slice(b, target);
  if (!rc) rc = kz_buf_append_cstr(b, " HTTP/1.1\r\n");
  return rc ? rollback(b, mark, rc) : 0;
}

int kz_http_write_header(struct kz_buf *b, const char *name, struct kz_slice value) {
  if (!b || !valid_token(name) || !valid_value(value)) return KZ_EINVAL;
  size_t mark = b->len;
  int rc = kz_buf_append_cstr(b, name);
  if (!rc) rc = kz_buf_append(b, ": ", 2);
  if (!rc) rc = kz_buf_append_slice(b, value);
  if (!rc) rc = kz_buf_append(b, "\r\n", 2);
  return rc ? rollback(b, mark, rc) : 0;
}

int kz_http_write_header_cstr(struct kz_buf *b, const char *name, const char *value) {
  if (!value) return KZ_EINVAL;
  return kz_http_write_header(b, name, kz_slice_cstr(value));
}

int kz_http_write_header_u64(struct kz_buf *b, const char *name, uint64_t value) {
  if (!b || !valid_token(name)) return KZ_EINVAL;
  size_t mark = b->len;
  int rc = kz_buf_printf(b, "%s: %llu\r\n", name, (unsigned long long)value);
  return rc ? rollback(b, mark, rc) : 0;
}

int kz_http_write_end_head(struct kz_buf *b) {
  if (!b) return KZ_EINVAL;
  return kz_buf_append(b, "\r\n", 2);
}

int kz_http_write_body(struct kz_buf *b, const void *body, size_t len) {
  if (!b || (!body && len)) return KZ_EINVAL;
  size_t mark = b->len;
  int rc = kz_http_write_header_u64(b, "Content-Length", len);
  if (!rc) rc = kz_http_write_end_head(b);
  if (!rc && len) rc = kz_buf_append(b, body, len);
  return rc ? rollback(b, mark, rc) : 0;
}

int kz_http_write_chunk(struct kz_buf *b, const void *data, size_t len) {
  if (!b || (!data && len)) return KZ_EINVAL;
  if (!len) return 0;
  size_t mark = b->len;
  int rc = kz_buf_printf(b, "%zx\r\n", len);
  if (!rc) rc = kz_buf_append(b, data, len);
  if (!rc) rc = kz_buf_append(b, "\r\n", 2);
  return rc ? rollback(b, mark, rc) : 0;
}

int kz_http_write_last_chunk(struct kz_buf *b) {
  if (!b) return KZ_EINVAL;
  return kz_buf_append(b, "0\r\n\r\n", 5);
}

int kz_http_write_response(struct kz_buf *b, int status, const struct kz_http_header *headers,
                           size_t n, const void *body, size_t len, bool close) {
  if (!b || (!headers && n)) return KZ_EINVAL;
  for (size_t i = 0; i < n; i++) {
    if (kz_slice_caseeq_cstr(headers[i].name, "content-length") ||
        kz_slice_caseeq_cstr(headers[i].name, "transfer-encoding"))
      return KZ_EINVAL;
  }
  size_t mark = b->len;
  int rc = kz_http_write_status_line(b, status, NULL);
  for (size_t i = 0; !rc && i < n; i++) {
    /* Names arrive as slices; validate them like kz_http_write_header. */
    struct kz_slice nm = headers[i].name;
    bool ok = nm.len > 0 && nm.p;
    for (size_t k = 0; ok && k < nm.len; k++) ok = kz_http_is_tchar((uint8_t)nm.p[k]);
    if (!ok || !valid_value(headers[i].value)) {
      rc = KZ_EINVAL;
      break;
    }
    rc = kz_buf_append_slice(b, nm);
    if (!rc) rc = kz_buf_append(b, ": ", 2);
    if (!rc) rc = kz_buf_append_slice(b, headers[i].value);
    if (!rc) rc = kz_buf_append(b, "\r\n", 2);
  }
  if (!rc && close) rc = kz_http_write_header_cstr(b, "Connection", "close");
  /* RFC 9110 §8.6: no Content-Length on 1xx and 204; 304 has no body and
   * its Content-Length would describe the unsent representation. */
  if (!rc && (status < 200 || status == 204 || status == 304)) {
    rc = len ? KZ_EINVAL : kz_http_write_end_head(b);
  } else if (!rc) {
    rc = kz_http_write_body(b, body, len);
  }
  return rc ? rollback(b, mark, rc) : 0;
}
