/* kz/http_write.h — HTTP/1.1 message writer: start lines, headers, Content-Length or chunked bodies into a kz_buf. */
#ifndef KZ_HTTP_WRITE_H
#define KZ_HTTP_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/buf.h"
#include "kz/http.h"

/* Every writer appends to `b`.  On any error `b` is left exactly as it
 * was (no half-written line), so a caller can keep building after
 * handling the error.  Errors: KZ_EINVAL for arguments that would make
 * an invalid or ambiguous message (a name that is not a token, CR/LF/NUL
 * in a value or phrase, a status outside 100..599) — this is what stops
 * header injection — and KZ_ENOMEM. */

/* Standard reason phrase for a status code ("Not Found"), or "Unknown"
 * for codes without one.  Static string, never NULL. */
const char *kz_http_reason_phrase(int status);

/* "HTTP/1.1 <status> <reason>\r\n"; reason NULL uses the standard phrase. */
int kz_http_write_status_line(struct kz_buf *b, int status, const char *reason);

/* "<method> <target> HTTP/1.1\r\n".  The target must be non-empty and
 * hold only visible ASCII (percent-encode first). */
int kz_http_write_request_line(struct kz_buf *b, const char *method, struct kz_slice target);

/* "<name>: <value>\r\n". */
int kz_http_write_header(struct kz_buf *b, const char *name, struct kz_slice value);
int kz_http_write_header_cstr(struct kz_buf *b, const char *name, const char *value);
/* "<name>: <decimal>\r\n", e.g. Content-Length. */
int kz_http_write_header_u64(struct kz_buf *b, const char *name, uint64_t value);

/* The empty line that ends the head. */
int kz_http_write_end_head(struct kz_buf *b);

/* "Content-Length: <len>\r\n\r\n" followed by the body: ends a head whose
 * other headers are already written. */
int kz_http_write_body(struct kz_buf *b, const void *body, size_t len);

/* One chunk "<hex len>\r\n<data>\r\n" of a "Transfer-Encoding: chunked"
 * body; a zero length writes nothing (the zero chunk ends the body). */
int kz_http_write_chunk(struct kz_buf *b, const void *data, size_t len);

/* The last chunk and an empty trailer section: "0\r\n\r\n". */
int kz_http_write_last_chunk(struct kz_buf *b);

/* A whole response: status line (standard phrase), `headers` (n of them;
 * must not include Content-Length or Transfer-Encoding), Content-Length
 * and the body.  With `close` a "Connection: close" header is added.
 * 1xx, 204 and 304 get no Content-Length and must have len 0. */
int kz_http_write_response(struct kz_buf *b, int status, const struct kz_http_header *headers,
                           size_t n, const void *body, size_t len, bool close);

#endif /* KZ_HTTP_WRITE_H */
