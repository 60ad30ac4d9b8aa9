/* parser.c — streaming HTTP/1.1 request/response parser (RFC 9112 framing, sans-I/O). */
#include "kz/http.h"

#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "syntax.h"

/* A chunk-size line ("1a;name=value") longer than this is refused: chunk
 * extensions are ignored, so there is no reason to buffer or scan much. */
#define KZ_HTTP_MAX_CHUNK_LINE 4096u

/* Bodies at or under this capacity keep their memory between messages
 * on one connection; bigger ones are freed so a single large upload does
 * not pin memory for the life of a keep-alive connection. */
#define KZ_HTTP_KEEP_BODY_CAP 65536u

enum parser_state {
  ST_START,        /* before a message: skipping stray CRLFs */
  ST_HEAD,         /* collecting start line and header section */
  ST_BODY_NONE,    /* head reported, no body follows */
  ST_BODY_LEN,     /* Content-Length body */
  ST_CHUNK_SIZE,   /* hex digits of a chunk-size */
  ST_CHUNK_BWS,    /* whitespace after chunk-size, before ';' */
  ST_CHUNK_EXT,    /* chunk extensions, ignored up to CR */
  ST_CHUNK_LF,     /* LF ending the chunk-size line */
  ST_CHUNK_DATA,   /* chunk bytes */
  ST_CHUNK_CR,     /* CR after chunk bytes */
  ST_CHUNK_CRLF,   /* LF after chunk bytes */
  ST_TRAILER,      /* trailer section after the last chunk */
  ST_BODY_EOF,     /* response body runs until the connection closes */
  ST_MSG_DONE,     /* message reported; the next feed starts a new one */
  ST_FAILED,
};

/* Sub-states for validating trailer lines byte by byte (never buffered). */
enum trailer_state {
  TR_LINE_START,
  TR_NAME,
  TR_VALUE,
  TR_LF,
  TR_END_LF,
};

struct kz_http_parser {
  enum kz_http_kind kind;
  struct kz_http_limits lim;
  enum parser_state state;
  struct kz_http_msg msg;
  size_t header_cap;    /* allocated entries in msg.headers */
  struct kz_buf head;   /* raw head bytes; msg slices point here */

  /* Head / trailer scanner, kept across feeds. */
  uint8_t prev;         /* previous byte of the section */
  size_t line_len;      /* bytes in the current line so far, CR included */
  size_t lines;         /* complete lines so far (start line included) */
  size_t section_bytes; /* header or trailer section bytes so far */
  enum trailer_state tr;

  uint64_t remaining;   /* Content-Length or chunk bytes still expected */
  uint64_t chunk_size;
  size_t chunk_line;    /* bytes in the current chunk-size line */
  bool chunk_digits;    /* saw at least one hex digit */

  bool head_response;   /* next final response answers a HEAD request */

  int err_code;
  int err_status;
  const char *err_reason;
};

static int fail(struct kz_http_parser *p, int code, int status, const char *reason) {
  p->state = ST_FAILED;
  p->err_code = code;
  p->err_status = status;
  p->err_reason = reason;
  return code;
}

static int fail_bad(struct kz_http_parser *p, const char *reason) {
  return fail(p, KZ_EPROTO, 400, reason);
}

static int fail_nomem(struct kz_http_parser *p) {
  return fail(p, KZ_ENOMEM, 500, "out of memory");
}

int kz_http_parser_new(struct kz_http_parser **out, enum kz_http_kind kind,
                       const struct kz_http_limits *limits) {
  if (!out || (kind != KZ_HTTP_REQUEST && kind != KZ_HTTP_RESPONSE)) return KZ_EINVAL;
  struct kz_http_parser *p = kz_calloc(1, sizeof(*p));
  if (!p) return KZ_ENOMEM;
  p->kind = kind;
  if (limits) p->lim = *limits;
  if (!p->lim.max_start_line) p->lim.max_start_line = KZ_HTTP_DEFAULT_MAX_START_LINE;
  if (!p->lim.max_header_bytes) p->lim.max_header_bytes = KZ_HTTP_DEFAULT_MAX_HEADER_BYTES;
  if (!p->lim.max_headers) p->lim.max_headers = KZ_HTTP_DEFAULT_MAX_HEADERS;
  if (!p->lim.max_body) p->lim.max_body = KZ_HTTP_DEFAULT_MAX_BODY;
  p->state = ST_START;
  p->msg.kind = kind;
  kz_buf_init(&p->head);
  kz_buf_init(&p->msg.body);
  *out = p;
  return 0;
}

void kz_http_parser_free(struct kz_http_parser *p) {
  if (!p) return;
  kz_buf_free(&p->head);
  kz_buf_free(&p->msg.body);
  kz_free(p->msg.headers);
  kz_free(p);
}

void kz_http_parser_expect_head_response(struct kz_http_parser *p) {
  if (p) p->head_response = true;
}

struct kz_http_msg *kz_http_parser_msg(struct kz_http_parser *p) { return &p->msg; }

int kz_http_parser_error(const struct kz_http_parser *p, const char **reason) {
  if (reason) *reason = (p && p->err_reason) ? p->err_reason : "no error";
  return p ? p->err_status : 0;
}

/* Forgets the previous message, keeping allocations worth keeping. */
static void msg_reset(struct kz_http_parser *p) {
  struct kz_http_msg *m = &p->msg;
  struct kz_http_header *headers = m->headers;
  struct kz_buf body = m->body;
  if (body.cap > KZ_HTTP_KEEP_BODY_CAP) kz_buf_free(&body);
  kz_buf_reset(&body);
  memset(m, 0, sizeof(*m));
  m->kind = p->kind;
  m->headers = headers;
  m->body = body;
  kz_buf_reset(&p->head);
  p->prev = 0;
  p->line_len = 0;
  p->lines = 0;
  p->section_bytes = 0;
  p->remaining = 0;
  p->state = ST_START;
}

/* Scans head bytes for the empty line that ends the header section,
 * checking line endings and limits on the way.  Sets *used to the bytes
 * that belong to the head.  Returns 1 when the head is complete, 0 when
 * more is needed, or an error. */
static int scan_head(struct kz_http_parser *p, const uint8_t *d, size_t len, size_t *used) {
  for (size_t i = 0; i < len; i++) {
    uint8_t c = d[i];
    if (p->lines > 0 && ++p->section_bytes > p->lim.max_header_bytes)
      return fail(p, KZ_EMSGSIZE, 431, "header section too large");
    if (c == '\n') {
      if (p->prev != '\r') return fail_bad(p, "bare LF in message head");
      if (p->lines > 0 && p->line_len == 1) {
        *used = i + 1;
        return 1;
      }
      p->lines++;
      /* lines - 1 header lines are complete now (the first is the start line). */
      if (p->lines - 1 > p->lim.max_headers)
        return fail(p, KZ_EMSGSIZE, 431, "too many header fields");
      p->line_len = 0;
    } else {
      if (p->prev == '\r') return fail_bad(p, "bare CR in message head");
      p->line_len++;
      if (p->lines == 0 && c != '\r' && p->line_len > p->lim.max_start_line)
        return fail(p, KZ_EMSGSIZE, p->kind == KZ_HTTP_REQUEST ? 414 : 400,
                    p->kind == KZ_HTTP_REQUEST ? "request line too long" : "status line too long");
    }
    p->prev = c;
  }
  *used = len;
  return 0;
}

/* "HTTP/1.1" → 0 with *minor set; malformed → 400; other major → 505. */
static int parse_version(struct kz_http_parser *p, struct kz_slice v, int *minor) {
  if (v.len != 8 || memcmp(v.p, "HTTP/", 5) != 0 || !kz_http_is_digit((uint8_t)v.p[5]) ||
      v.p[6] != '.' || !kz_http_is_digit((uint8_t)v.p[7]))
    return fail_bad(p, "malformed HTTP version");
  if (v.p[5] != '1') return fail(p, KZ_ENOTSUP, 505, "HTTP version not supported");
  /* RFC 9110 §2.5: a higher minor of a known major is handled as the
   * highest minor we implement. */
  *minor = v.p[7] == '0' ? 0 : 1;
  return 0;
}

static int parse_request_line(struct kz_http_parser *p, struct kz_slice line) {
  struct kz_http_msg *m = &p->msg;
  long sp1 = kz_slice_find_char(line, ' ');
  if (sp1 < 0) return fail_bad(p, "malformed request line");
  struct kz_slice rest = kz_slice_sub(line, (size_t)sp1 + 1, line.len);
  long sp2 = kz_slice_find_char(rest, ' ');
  if (sp2 < 0) return fail_bad(p, "malformed request line");
  m->method = kz_slice_sub(line, 0, (size_t)sp1);
  m->target = kz_slice_sub(rest, 0, (size_t)sp2);
  struct kz_slice version = kz_slice_sub(rest, (size_t)sp2 + 1, rest.len);
  if (!m->method.len) return fail_bad(p, "malformed request line");
  for (size_t i = 0; i < m->method.len; i++)
    if (!kz_http_is_tchar((uint8_t)m->method.p[i])) return fail_bad(p, "invalid method");
  if (!m->target.len) return fail_bad(p, "empty request target");
  for (size_t i = 0; i < m->target.len; i++) {
    uint8_t c = (uint8_t)m->target.p[i];
    if (c <= 0x20 || c >= 0x7f) return fail_bad(p, "invalid character in request target");
  }
  return parse_version(p, version, &m->version_minor);
}

static int parse_status_line(struct kz_http_parser *p, struct kz_slice line) {
  struct kz_http_msg *m = &p->msg;
  int rc = parse_version(p, kz_slice_sub(line, 0, 8), &m->version_minor);
  if (rc) return rc;
  if (line.len < 12 || line.p[8] != ' ') return fail_bad(p, "malformed status line");
  int status = 0;
  for (size_t i = 9; i < 12; i++) {
    if (!kz_http_is_digit((uint8_t)line.p[i])) return fail_bad(p, "malformed status code");
    status = status * 10 + (line.p[i] - '0');
  }
  if (status < 100 || status > 599) return fail_bad(p, "status code out of range");
  m->status = status;
  /* RFC 9112 wants "SP reason-phrase" even when the phrase is empty, but
   * "HTTP/1.1 200" alone is common in the wild and unambiguous. */
  if (line.len > 12) {
    if (line.p[12] != ' ') return fail_bad(p, "malformed status line");
    m->reason = kz_slice_sub(line, 13, line.len);
    for (size_t i = 0; i < m->reason.len; i++)
      if (!kz_http_is_field_vchar((uint8_t)m->reason.p[i]))
        return fail_bad(p, "invalid character in reason phrase");
  } else {
    m->reason = kz_slice_make(line.p + line.len, 0);
  }
  return 0;
}

/* Responses: RFC 9112 §5.2 says a user agent replaces each obs-fold with
 * SP before interpreting the value; doing it in place keeps every value
 * one contiguous slice.  The CRLF ending the start line is left alone so
 * whitespace before the first header is still refused. */
static void unfold(struct kz_buf *h) {
  uint8_t *d = h->data;
  uint8_t *first = memchr(d, '\n', h->len);
  size_t i = first ? (size_t)(first - d) + 1 : h->len;
  for (; i + 2 < h->len; i++) {
    if (d[i] == '\r' && d[i + 1] == '\n' && (d[i + 2] == ' ' || d[i + 2] == '\t')) {
      d[i] = ' ';
      d[i + 1] = ' ';
    }
  }
}

static int parse_header_line(struct kz_http_parser *p, struct kz_slice line, bool first,
                             struct kz_http_header *h) {
  /* A request may not fold (RFC 9112 §5.2 lets a server reject it, which
   * is safer than guessing); whitespace before the first field is
   * refused for both kinds (§2.2). */
  if (line.p[0] == ' ' || line.p[0] == '\t')
    return fail_bad(p, first ? "whitespace before first header" : "obsolete line folding");
  long colon = kz_slice_find_char(line, ':');
  if (colon < 0) return fail_bad(p, "header line without colon");
  if (colon == 0) return fail_bad(p, "empty header name");
  h->name = kz_slice_sub(line, 0, (size_t)colon);
  for (size_t i = 0; i < h->name.len; i++) {
    uint8_t c = (uint8_t)h->name.p[i];
    if (kz_http_is_tchar(c)) continue;
    /* RFC 9112 §5.1: whitespace between name and colon MUST be rejected
     * (it is a classic request-smuggling vector). */
    if (c == ' ' || c == '\t') return fail_bad(p, "whitespace before colon in header");
    return fail_bad(p, "invalid header name");
  }
  struct kz_slice v = kz_slice_sub(line, (size_t)colon + 1, line.len);
  while (v.len && (v.p[0] == ' ' || v.p[0] == '\t')) v = kz_slice_sub(v, 1, v.len);
  while (v.len && (v.p[v.len - 1] == ' ' || v.p[v.len - 1] == '\t')) v.len--;
  for (size_t i = 0; i < v.len; i++)
    if (!kz_http_is_field_vchar((uint8_t)v.p[i]))
      return fail_bad(p, "invalid character in header value");
  h->value = v;
  return 0;
}

/* Walks a comma-separated header list: returns the next non-empty
 * element (OWS trimmed) starting at *pos, or false at the end. */
static bool next_list_item(struct kz_slice v, size_t *pos, struct kz_slice *item) {
  while (*pos < v.len) {
    size_t start = *pos;
    while (*pos < v.len && v.p[*pos] != ',') (*pos)++;
    struct kz_slice it = kz_slice_sub(v, start, *pos - start);
    if (*pos < v.len) (*pos)++; /* skip ',' */
    while (it.len && (it.p[0] == ' ' || it.p[0] == '\t')) it = kz_slice_sub(it, 1, it.len);
    while (it.len && (it.p[it.len - 1] == ' ' || it.p[it.len - 1] == '\t')) it.len--;
    if (it.len) {
      *item = it;
      return true;
    }
  }
  return false;
}

/* All Content-Length values (repeated fields and lists) must be one
 * identical number (RFC 9110 §8.6); anything else could let two parsers
 * disagree on where the message ends. */
static int parse_content_length(struct kz_http_parser *p) {
  struct kz_http_msg *m = &p->msg;
  for (size_t i = 0; i < m->nheaders; i++) {
    if (!kz_slice_caseeq_cstr(m->headers[i].name, "content-length")) continue;
    struct kz_slice v = m->headers[i].value, item;
    size_t pos = 0;
    bool any = false;
    while (next_list_item(v, &pos, &item)) {
      uint64_t n;
      if (kz_slice_to_u64(item, UINT64_MAX, &n) != 0) return fail_bad(p, "invalid Content-Length");
      if (m->has_content_length && n != m->content_length)
        return fail_bad(p, "conflicting Content-Length");
      m->has_content_length = true;
      m->content_length = n;
      any = true;
    }
    if (!any) return fail_bad(p, "invalid Content-Length");
  }
  return 0;
}

/* Transfer-Encoding: only "chunked" is implemented, and it must be the
 * last coding, applied once (RFC 9112 §6.1, §6.3). */
static int parse_transfer_encoding(struct kz_http_parser *p, bool *present) {
  struct kz_http_msg *m = &p->msg;
  size_t n = 0, nchunked = 0;
  bool last_chunked = false, unknown = false;
  *present = false;
  for (size_t i = 0; i < m->nheaders; i++) {
    if (!kz_slice_caseeq_cstr(m->headers[i].name, "transfer-encoding")) continue;
    *present = true;
    struct kz_slice v = m->headers[i].value, item;
    size_t pos = 0;
    while (next_list_item(v, &pos, &item)) {
      /* Coding name ends at parameters (";") or whitespace. */
      size_t k = 0;
      while (k < item.len && kz_http_is_tchar((uint8_t)item.p[k])) k++;
      struct kz_slice name = kz_slice_sub(item, 0, k);
      if (!name.len) return fail_bad(p, "invalid Transfer-Encoding");
      n++;
      last_chunked = kz_slice_caseeq_cstr(name, "chunked") && k == item.len;
      if (last_chunked) {
        nchunked++;
      } else {
        unknown = true;
      }
    }
  }
  if (!*present) return 0;
  if (n == 0) return fail_bad(p, "empty Transfer-Encoding");
  if (nchunked > 1) return fail_bad(p, "chunked transfer coding applied twice");
  if (nchunked == 1 && !last_chunked)
    return fail_bad(p, "chunked is not the final transfer coding");
  if (unknown) return fail(p, KZ_ENOTSUP, 501, "unsupported transfer coding");
  m->chunked = true;
  return 0;
}

/* Decides framing, keep-alive and expectations once the headers are in. */
static int analyse_head(struct kz_http_parser *p) {
  struct kz_http_msg *m = &p->msg;
  bool is_req = p->kind == KZ_HTTP_REQUEST;
  int rc;

  if (is_req) {
    /* RFC 9112 §3.2: exactly one Host in HTTP/1.1, never several. */
    long h = kz_http_msg_find_header(m, "host", 0);
    if (h >= 0 && kz_http_msg_find_header(m, "host", (size_t)h + 1) >= 0)
      return fail_bad(p, "duplicate Host header");
    if (h < 0 && m->version_minor >= 1) return fail_bad(p, "missing Host header");
  }

  /* HTTP/1.1 persists by default, HTTP/1.0 only when asked; "close"
   * always wins. */
  m->keep_alive = !kz_http_msg_header_has_token(m, "connection", "close") &&
                  (m->version_minor >= 1 || kz_http_msg_header_has_token(m, "connection", "keep-alive"));

  if (is_req && m->version_minor >= 1)
    m->expect_continue = kz_http_msg_header_has_token(m, "expect", "100-continue");

  /* Responses without a body, whatever their headers say (RFC 9112 §6.3). */
  if (!is_req && (p->head_response || m->status < 200 || m->status == 204 || m->status == 304)) {
    if (m->status == 101) m->keep_alive = false; /* the stream is no longer HTTP */
    p->state = ST_BODY_NONE;
    return 0;
  }

  rc = parse_content_length(p);
  if (rc) return rc;
  bool te;
  rc = parse_transfer_encoding(p, &te);
  if (rc) return rc;
  if (te) {
    /* Smuggling protection (RFC 9112 §6.1): never guess which of two
     * framings a peer meant, and HTTP/1.0 has no Transfer-Encoding. */
    if (m->has_content_length) return fail_bad(p, "both Content-Length and Transfer-Encoding");
    if (m->version_minor == 0) return fail_bad(p, "Transfer-Encoding in HTTP/1.0 message");
    p->state = ST_CHUNK_SIZE;
    p->chunk_size = 0;
    p->chunk_line = 0;
    p->chunk_digits = false;
    return 0;
  }
  if (m->has_content_length) {
    if (m->content_length > p->lim.max_body)
      return fail(p, KZ_EMSGSIZE, 413, "body too large");
    p->remaining = m->content_length;
    p->state = m->content_length ? ST_BODY_LEN : ST_BODY_NONE;
    return 0;
  }
  if (is_req) {
    p->state = ST_BODY_NONE;
  } else {
    m->until_close = true;
    m->keep_alive = false;
    p->state = ST_BODY_EOF;
  }
  return 0;
}

static int parse_head(struct kz_http_parser *p) {
  struct kz_http_msg *m = &p->msg;
  struct kz_buf *h = &p->head;
  if (p->kind == KZ_HTTP_RESPONSE) unfold(h);

  /* Upper bound of header lines: every LF but the start line's and the
   * final empty line's. */
  size_t lfs = 0;
  for (size_t i = 0; i < h->len; i++) lfs += h->data[i] == '\n';
  size_t want = lfs >= 2 ? lfs - 2 : 0;
  if (want > p->header_cap) {
    struct kz_http_header *nh = kz_realloc(m->headers, want * sizeof(*nh));
    if (!nh) return fail_nomem(p);
    m->headers = nh;
    p->header_cap = want;
  }

  const char *d = (const char *)h->data;
  size_t pos = 0, line_no = 0;
  for (;;) {
    const char *lf = memchr(d + pos, '\n', h->len - pos);
    /* scan_head guarantees CRLF endings and a final empty line. */
    struct kz_slice line = kz_slice_make(d + pos, (size_t)(lf - (d + pos)) - 1);
    pos = (size_t)(lf - d) + 1;
    int rc;
    if (line_no == 0) {
      rc = p->kind == KZ_HTTP_REQUEST ? parse_request_line(p, line) : parse_status_line(p, line);
    } else if (line.len == 0) {
      break;
    } else {
      rc = parse_header_line(p, line, line_no == 1, &m->headers[m->nheaders]);
      if (!rc) m->nheaders++;
    }
    if (rc) return rc;
    line_no++;
  }
  return analyse_head(p);
}

/* Validates one trailer byte (fields are checked, then dropped).
 * Returns 1 at the end of the trailer section, 0 to go on, or an error. */
static int trailer_byte(struct kz_http_parser *p, uint8_t c) {
  if (++p->section_bytes > p->lim.max_header_bytes)
    return fail(p, KZ_EMSGSIZE, 431, "trailer section too large");
  switch (p->tr) {
    case TR_LINE_START:
      if (c == '\r') {
        p->tr = TR_END_LF;
      } else if (kz_http_is_tchar(c)) {
        if (++p->lines > p->lim.max_headers)
          return fail(p, KZ_EMSGSIZE, 431, "too many trailer fields");
        p->tr = TR_NAME;
      } else if (c == ' ' || c == '\t') {
        return fail_bad(p, "obsolete line folding in trailer");
      } else {
        return fail_bad(p, "invalid trailer field");
      }
      return 0;
    case TR_NAME:
      if (c == ':') {
        p->tr = TR_VALUE;
      } else if (!kz_http_is_tchar(c)) {
        return fail_bad(p, "invalid trailer field");
      }
      return 0;
    case TR_VALUE:
      if (c == '\r') {
        p->tr = TR_LF;
      } else if (!kz_http_is_field_vchar(c) && c != ' ' && c != '\t') {
        return fail_bad(p, "invalid character in trailer value");
      }
      return 0;
    case TR_LF:
      if (c != '\n') return fail_bad(p, "bare CR in trailer");
      p->tr = TR_LINE_START;
      return 0;
    case TR_END_LF:
      if (c != '\n') return fail_bad(p, "bare CR in trailer");
      return 1;
  }
  return fail_bad(p, "invalid trailer field");
}

static int append_body(struct kz_http_parser *p, const uint8_t *d, size_t n) {
  if (n && kz_buf_append(&p->msg.body, d, n) != 0) return fail_nomem(p);
  return 0;
}

/* Ends the current message: the caller returns KZ_HTTP_EV_MSG. */
static int msg_done(struct kz_http_parser *p) {
  p->state = ST_MSG_DONE;
  if (p->kind == KZ_HTTP_RESPONSE && p->msg.status >= 200) p->head_response = false;
  return KZ_HTTP_EV_MSG;
}

int kz_http_parser_feed(struct kz_http_parser *p, const void *data, size_t len, size_t *consumed) {
  if (!p || !consumed || (!data && len)) return KZ_EINVAL;
  *consumed = 0;
  if (p->state == ST_FAILED) return p->err_code;
  if (p->state == ST_MSG_DONE) msg_reset(p);
  /* feed(p, NULL, 0) is allowed; arithmetic on a NULL pointer is not. */
  const uint8_t *d = data ? data : (const void *)"";
  size_t i = 0;
  int rc;

  for (;;) {
    switch (p->state) {
      case ST_START:
        while (i < len && (d[i] == '\r' || d[i] == '\n')) i++;
        if (i == len) goto more;
        p->state = ST_HEAD;
        break;

      case ST_HEAD: {
        size_t used = 0;
        rc = scan_head(p, d + i, len - i, &used);
        if (rc < 0) return rc;
        if (kz_buf_append(&p->head, d + i, used) != 0) return fail_nomem(p);
        i += used;
        if (rc == 0) goto more;
        rc = parse_head(p);
        if (rc < 0) return rc;
        *consumed = i;
        return KZ_HTTP_EV_HEAD;
      }

      case ST_BODY_NONE:
        *consumed = i;
        return msg_done(p);

      case ST_BODY_LEN: {
        size_t take = len - i;
        if (take > p->remaining) take = (size_t)p->remaining;
        if ((rc = append_body(p, d + i, take)) < 0) return rc;
        i += take;
        p->remaining -= take;
        if (p->remaining) goto more;
        *consumed = i;
        return msg_done(p);
      }

      case ST_CHUNK_SIZE:
      case ST_CHUNK_BWS:
      case ST_CHUNK_EXT:
      case ST_CHUNK_LF: {
        if (i == len) goto more;
        uint8_t c = d[i++];
        if (p->state != ST_CHUNK_LF && ++p->chunk_line > KZ_HTTP_MAX_CHUNK_LINE)
          return fail_bad(p, "chunk size line too long");
        if (p->state == ST_CHUNK_SIZE) {
          int v = kz_http_hex_value(c);
          if (v >= 0) {
            /* Checked digit by digit, so the size can never overflow. */
            uint64_t room = p->lim.max_body - p->msg.body.len;
            if (p->chunk_size > (room >> 4) || p->chunk_size * 16 + (uint64_t)v > room)
              return fail(p, KZ_EMSGSIZE, 413, "body too large");
            p->chunk_size = p->chunk_size * 16 + (uint64_t)v;
            p->chunk_digits = true;
            break;
          }
          if (!p->chunk_digits) return fail_bad(p, "invalid chunk size");
          if (c == ' ' || c == '\t') {
            p->state = ST_CHUNK_BWS;
          } else if (c == ';') {
            p->state = ST_CHUNK_EXT;
          } else if (c == '\r') {
            p->state = ST_CHUNK_LF;
          } else {
            return fail_bad(p, "invalid chunk size");
          }
        } else if (p->state == ST_CHUNK_BWS) {
          if (c == ';') {
            p->state = ST_CHUNK_EXT;
          } else if (c == '\r') {
            p->state = ST_CHUNK_LF;
          } else if (c != ' ' && c != '\t') {
            return fail_bad(p, "invalid chunk size");
          }
        } else if (p->state == ST_CHUNK_EXT) {
          if (c == '\r') {
            p->state = ST_CHUNK_LF;
          } else if (!kz_http_is_field_vchar(c) && c != ' ' && c != '\t') {
            return fail_bad(p, "invalid character in chunk extension");
          }
        } else {
          if (c != '\n') return fail_bad(p, "missing LF after chunk size");
          if (p->chunk_size == 0) {
            p->state = ST_TRAILER;
            p->tr = TR_LINE_START;
            p->section_bytes = 0;
            p->lines = 0;
          } else {
            p->remaining = p->chunk_size;
            p->state = ST_CHUNK_DATA;
          }
        }
        break;
      }

      case ST_CHUNK_DATA: {
        size_t take = len - i;
        if (take > p->remaining) take = (size_t)p->remaining;
        if ((rc = append_body(p, d + i, take)) < 0) return rc;
        i += take;
        p->remaining -= take;
        if (p->remaining) goto more;
        p->state = ST_CHUNK_CR;
        break;
      }

      case ST_CHUNK_CR:
      case ST_CHUNK_CRLF: {
        if (i == len) goto more;
        uint8_t c = d[i++];
        if (c != (p->state == ST_CHUNK_CR ? '\r' : '\n'))
          return fail_bad(p, "missing CRLF after chunk data");
        if (p->state == ST_CHUNK_CR) {
          p->state = ST_CHUNK_CRLF;
        } else {
          p->state = ST_CHUNK_SIZE;
          p->chunk_size = 0;
          p->chunk_line = 0;
          p->chunk_digits = false;
        }
        break;
      }

      case ST_TRAILER:
        while (i < len) {
          rc = trailer_byte(p, d[i++]);
          if (rc < 0) return rc;
          if (rc == 1) {
            *consumed = i;
            return msg_done(p);
          }
        }
        goto more;

      case ST_BODY_EOF: {
        size_t take = len - i;
        if (take > p->lim.max_body - p->msg.body.len)
          return fail(p, KZ_EMSGSIZE, 413, "body too large");
        if ((rc = append_body(p, d + i, take)) < 0) return rc;
        i += take;
        goto more;
      }

      case ST_MSG_DONE:
      case ST_FAILED:
        /* Unreachable: handled before the loop and by the returns above. */
        return fail_bad(p, "parser in invalid state");
    }
  }
more:
  *consumed = i;
  return KZ_HTTP_EV_MORE;
}

int kz_http_parser_finish(struct kz_http_parser *p) {
  if (!p) return KZ_EINVAL;
  switch (p->state) {
    case ST_FAILED:
      return p->err_code;
    case ST_START:
    case ST_MSG_DONE:
      return KZ_HTTP_EV_MORE;
    case ST_BODY_EOF:
      return msg_done(p);
    default:
      return fail_bad(p, "connection closed inside a message");
  }
}

long kz_http_msg_find_header(const struct kz_http_msg *m, const char *name, size_t start) {
  struct kz_slice n = kz_slice_cstr(name);
  for (size_t i = start; i < m->nheaders; i++)
    if (kz_slice_caseeq(m->headers[i].name, n)) return (long)i;
  return -1;
}

struct kz_slice kz_http_msg_header(const struct kz_http_msg *m, const char *name) {
  long i = kz_http_msg_find_header(m, name, 0);
  return i < 0 ? KZ_SLICE_NULL : m->headers[i].value;
}

bool kz_http_msg_header_has_token(const struct kz_http_msg *m, const char *name,
                                  const char *token) {
  for (long i = kz_http_msg_find_header(m, name, 0); i >= 0;
       i = kz_http_msg_find_header(m, name, (size_t)i + 1)) {
    struct kz_slice v = m->headers[i].value, item;
    size_t pos = 0;
    while (next_list_item(v, &pos, &item))
      if (kz_slice_caseeq_cstr(item, token)) return true;
  }
  return false;
}

void kz_http_msg_take_body(struct kz_http_msg *m, struct kz_buf *out) {
  *out = m->body;
  kz_buf_init(&m->body);
}
