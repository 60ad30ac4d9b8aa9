/* kz/http.h — sans-I/O streaming HTTP/1.1 message parser (requests for servers, responses for clients). */
#ifndef KZ_HTTP_H
#define KZ_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/buf.h"

/* What a parser reads: requests (server side) or responses (client side). */
enum kz_http_kind {
  KZ_HTTP_REQUEST = 0,
  KZ_HTTP_RESPONSE = 1,
};

/* Per-parser limits.  Each violation fails the message with its own HTTP
 * status: request line too long 414, header section too large or too many
 * header fields 431, body too large 413.  A zero field means "use the
 * default" (the KZ_HTTP_DEFAULT_* values below). */
struct kz_http_limits {
  size_t max_start_line;   /* request-/status-line bytes, CRLF excluded */
  size_t max_header_bytes; /* header (and trailer) section bytes, CRLFs included */
  size_t max_headers;      /* header field lines per message */
  uint64_t max_body;       /* decoded body bytes per message */
};

#define KZ_HTTP_DEFAULT_MAX_START_LINE 8192u
#define KZ_HTTP_DEFAULT_MAX_HEADER_BYTES 65536u
#define KZ_HTTP_DEFAULT_MAX_HEADERS 100u
#define KZ_HTTP_DEFAULT_MAX_BODY (64u * 1024u * 1024u)

/* One header field line.  Name and value point into the parser (see
 * struct kz_http_msg for how long); the value has its surrounding
 * whitespace removed. */
struct kz_http_header {
  struct kz_slice name;
  struct kz_slice value;
};

/* A parsed message.  It belongs to the parser: every slice in it and the
 * body stay valid until the next kz_http_parser_feed/finish call that
 * follows the KZ_HTTP_EV_MSG event (or kz_http_parser_free).  Copy what
 * you keep, or move the body out with kz_http_msg_take_body. */
struct kz_http_msg {
  enum kz_http_kind kind;
  /* Requests: method token (case-sensitive, e.g. "GET") and request-target
   * exactly as received (split it with kz/http_url.h). */
  struct kz_slice method;
  struct kz_slice target;
  /* Responses: status code (100..599) and reason phrase (may be empty). */
  int status;
  struct kz_slice reason;
  /* HTTP/1.<version_minor>: 0 or 1 (higher 1.x minors are read as 1). */
  int version_minor;
  struct kz_http_header *headers; /* in arrival order */
  size_t nheaders;
  /* Framing, decided when the head is complete. */
  bool has_content_length;
  uint64_t content_length;
  bool chunked;       /* Transfer-Encoding: chunked */
  bool until_close;   /* response body delimited by connection close */
  /* Connection management: true when the connection may carry another
   * message after this one (HTTP/1.1 without "Connection: close", or
   * HTTP/1.0 with "Connection: keep-alive", and a self-delimited body). */
  bool keep_alive;
  /* Request carried "Expect: 100-continue" (HTTP/1.1 only): a server
   * should answer "100 Continue" (or a final status) before the body. */
  bool expect_continue;
  /* The decoded body (de-chunked); trailers are parsed and dropped. */
  struct kz_buf body;
};

/* What kz_http_parser_feed stopped on (all >= 0; errors are < 0). */
enum kz_http_event {
  /* All input was consumed and the current message is not complete. */
  KZ_HTTP_EV_MORE = 0,
  /* The head (start line + headers) of a message is complete: the msg's
   * start line, headers and framing fields are valid, its body is not
   * yet.  Reported once per message, always before KZ_HTTP_EV_MSG (even
   * when there is no body: feed again, with zero bytes if need be, to get
   * the MSG event), so a server can answer 100-continue or refuse early. */
  KZ_HTTP_EV_HEAD = 1,
  /* A whole message (head and body) is complete. */
  KZ_HTTP_EV_MSG = 2,
};

struct kz_http_parser;

/* Creates a parser for `kind` with `limits` (NULL, or zero fields, for the
 * defaults).  *out is set only on success.  Free with kz_http_parser_free.
 * Returns 0, KZ_EINVAL (bad kind or out NULL) or KZ_ENOMEM. */
int kz_http_parser_new(struct kz_http_parser **out, enum kz_http_kind kind,
                       const struct kz_http_limits *limits);

/* Frees the parser and its message.  NULL is a no-op. */
void kz_http_parser_free(struct kz_http_parser *p);

/* Feeds `len` stream bytes.  The parser copies what it needs, so `data`
 * may be reused after the call.  Input may be cut anywhere and several
 * messages may follow each other (pipelining): the parser stops at each
 * event and sets *consumed to the bytes it used; feed the rest
 * (data + *consumed) in the next call.  The message reached by an
 * event is read with kz_http_parser_msg; the first feed after
 * KZ_HTTP_EV_MSG starts the next message and invalidates it.
 * Returns a kz_http_event, or on bad input (the parser then stays failed
 * and the connection should be closed after answering
 * kz_http_parser_error's status):
 *   KZ_EPROTO   malformed message (400) or framing that cannot be trusted;
 *   KZ_EMSGSIZE a limit was exceeded (414, 431 or 413);
 *   KZ_ENOTSUP  unsupported transfer coding (501) or HTTP version (505);
 *   KZ_ENOMEM   out of memory (500); KZ_EINVAL for NULL arguments. */
int kz_http_parser_feed(struct kz_http_parser *p, const void *data, size_t len, size_t *consumed);

/* Tells the parser the stream has ended (peer closed).  Completes a
 * response whose body runs until close (returns KZ_HTTP_EV_MSG, once).
 * Returns KZ_HTTP_EV_MORE when the stream ended cleanly between messages,
 * KZ_EPROTO (status 400) when it ended inside a message, or the parser's
 * earlier error if it has failed. */
int kz_http_parser_finish(struct kz_http_parser *p);

/* Response parsers only: the next final (non-1xx) response answers a HEAD
 * request, so it has no body whatever its headers say.  Call it before
 * feeding that response; it is cleared when the response completes. */
void kz_http_parser_expect_head_response(struct kz_http_parser *p);

/* The message of the last event (HEAD or MSG).  Never NULL. */
struct kz_http_msg *kz_http_parser_msg(struct kz_http_parser *p);

/* After a failure: returns the HTTP status to answer with (400, 413, 414,
 * 431, 500, 501 or 505; 0 while the parser has not failed) and, when
 * reason is not NULL, sets *reason to a short static English text fit
 * for a reason phrase or a log line (never NULL). */
int kz_http_parser_error(const struct kz_http_parser *p, const char **reason);

/* Index of the first header named `name` (ASCII case-insensitive) at
 * index >= start, or -1.  Loop with start = previous + 1 for repeats. */
long kz_http_msg_find_header(const struct kz_http_msg *m, const char *name, size_t start);

/* Value of the first header named `name`, or KZ_SLICE_NULL (p == NULL)
 * when absent.  An empty but present value has a non-NULL p. */
struct kz_slice kz_http_msg_header(const struct kz_http_msg *m, const char *name);

/* True when some header `name` holds `token` in its comma-separated list
 * (both compared case-insensitively), e.g. Connection: close. */
bool kz_http_msg_header_has_token(const struct kz_http_msg *m, const char *name, const char *token);

/* Moves the body out of the message into *out (which must not hold
 * memory: it is overwritten) and leaves the message body empty.  The
 * caller then owns *out and frees it with kz_buf_free. */
void kz_http_msg_take_body(struct kz_http_msg *m, struct kz_buf *out);

#endif /* KZ_HTTP_H */
