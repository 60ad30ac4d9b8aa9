/* kz/http_client.h — the HTTP client interface role code uses (sans-I/O), and its kz_env stream backend. */
#ifndef KZ_HTTP_CLIENT_H
#define KZ_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/buf.h"
#include "kz/env.h"
#include "kz/http.h"

/* Role code talks HTTP through a struct kz_http_client and never knows
 * which backend carries it (DESIGN.md rule 3): the `stream` backend below
 * (HTTP/1.1 over kz_env streams: simulator and real TCP alike) or the
 * libcurl backend of kz/http_curl.h (driver code on a libuv loop).  Both
 * run the same contract test suite.
 *
 * Contract shared by every backend:
 *  - kz_http_client_request never calls the callback itself: the outcome
 *    always arrives later, from the event loop, exactly once, unless the
 *    call is cancelled or the client destroyed first (then never).
 *  - The callback may start new requests, cancel other calls and destroy
 *    the client.
 *  - Only http:// URLs.  Redirects are not followed; 1xx responses are
 *    skipped; every other status (4xx and 5xx included) is a response,
 *    not an error.
 *  - A request is written to the server at most once unless it may be
 *    resent: an idempotent method (kz_http_client_method_idempotent)
 *    without no_retry.  Only such a request is ever resent, and only after
 *    a reused keep-alive connection closed before any response byte.
 *    The stream backend sends other requests on reused connections too
 *    and reports KZ_ECONNRESET if such a connection dies; the curl backend
 *    gives them a new connection of their own.
 *  - Host names: IP literals and "localhost" always work.  Other names
 *    differ by backend: the stream backend looks them up synchronously
 *    with cfg.resolve, and kz_http_client_request returns KZ_ENOTSUP when
 *    there is no resolver or it does not know the name (cb never called);
 *    the curl backend resolves through the system, and a name that does
 *    not resolve completes later through cb with KZ_EHOSTUNREACH.  Role
 *    code must handle both. */

struct kz_http_client;
struct kz_http_call; /* one request in flight; handle for cancel */

/* A request.  Everything is borrowed for the duration of
 * kz_http_client_request only (the backend copies what it keeps). */
struct kz_http_client_req {
  const char *method; /* "GET", "PUT", ...: an HTTP token */
  /* Either a whole URL "http://host[:port]/target?query" ... */
  const char *url;
  /* ... or (url NULL) an authority "host[:port]" and an origin-form
   * target "/path?query" (already percent-encoded). */
  const char *host;
  const char *target;
  /* Extra header fields; must not hold Content-Length, Transfer-Encoding
   * or Connection (the client frames and manages connections itself).
   * A Host field replaces the one derived from the URL. */
  const struct kz_http_header *headers;
  size_t nheaders;
  const void *body; /* may be NULL when body_len is 0 */
  size_t body_len;
  /* Deadline for the whole exchange (connect, send, response) from the
   * call; 0 uses the client's default. */
  uint64_t timeout_ns;
  /* Never resend this request, even when the method is idempotent. */
  bool no_retry;
};

/* What the callback gets with a status.  Headers (in arrival order) are
 * valid during the callback only.  The body (decoded, de-chunked) may be
 * moved out with kz_http_client_resp_take_body; otherwise it is freed
 * after the callback. */
struct kz_http_client_resp {
  int status;
  const struct kz_http_header *headers;
  size_t nheaders;
  struct kz_buf body;
};

/* Called once per request: `result` is the HTTP status (100..599) with
 * `resp` set, or a negative KZ_E* code with resp NULL:
 *   KZ_ECONNREFUSED  nobody listens at the address;
 *   KZ_ETIMEDOUT     the request's deadline passed (or connect timed out);
 *   KZ_ECONNRESET    the connection ended before a whole response came;
 *   KZ_EHOSTUNREACH  the address cannot be reached (curl backend: or the
 *                    host name does not resolve);
 *   KZ_EPROTO        the response was not valid HTTP/1.1;
 *   KZ_EMSGSIZE      the response exceeded the body limit;
 *   KZ_ENOMEM, KZ_EIO others. */
typedef void kz_http_client_done_fn(void *arg, int result,
                                    struct kz_http_client_resp *resp);

/* The ops table a backend fills.  Use the kz_http_client_* wrappers. */
struct kz_http_client_ops {
  int (*request)(struct kz_http_client *c, const struct kz_http_client_req *req,
                 kz_http_client_done_fn *cb, void *arg, struct kz_http_call **out);
  void (*cancel)(struct kz_http_client *c, struct kz_http_call *call);
  void (*destroy)(struct kz_http_client *c);
};

/* Every backend's client struct starts with this. */
struct kz_http_client {
  const struct kz_http_client_ops *ops;
};

/* Starts a request.  On success returns 0 and, when `out` is not NULL,
 * sets *out to the call's handle, valid until its callback is called (the
 * handle is freed before the callback runs: do not cancel it from there)
 * or it is cancelled.  Returns KZ_EINVAL (bad method, URL, header, or a
 * missing callback), KZ_ENOTSUP (not http://, or, stream backend only, a
 * host name it cannot resolve: see above), KZ_ECLOSED (the client is
 * being destroyed) or KZ_ENOMEM; cb is then never called. */
int kz_http_client_request(struct kz_http_client *c, const struct kz_http_client_req *req,
                           kz_http_client_done_fn *cb, void *arg, struct kz_http_call **out);

/* Abandons a call that has not completed: its callback never fires, its
 * connection (if any) is closed.  NULL is a no-op. */
void kz_http_client_cancel(struct kz_http_client *c, struct kz_http_call *call);

/* Destroys the client: pending calls are dropped without callbacks and
 * connections closed.  Allowed inside a callback.  NULL is a no-op. */
void kz_http_client_free(struct kz_http_client *c);

/* Value of the first response header `name` (case-insensitive), or
 * KZ_SLICE_NULL. */
struct kz_slice kz_http_client_resp_header(const struct kz_http_client_resp *r, const char *name);

/* Moves the body into *out (overwritten; the caller frees it with
 * kz_buf_free) and leaves the response body empty. */
void kz_http_client_resp_take_body(struct kz_http_client_resp *r, struct kz_buf *out);

/* True for the methods RFC 9110 calls idempotent (GET HEAD PUT DELETE
 * OPTIONS TRACE): the only ones a backend may resend on its own. */
bool kz_http_client_method_idempotent(const char *method);

/* ------------------------------------------------------------------ */
/* Shared helpers for backends.                                         */

/* A request split into what goes on the wire. */
struct kz_http_client_target {
  char host[256];      /* host as written ("127.0.0.1", "db1", "::1") */
  uint16_t port;       /* 80 when absent */
  char authority[270]; /* "host[:port]" as written in the URL (Host header) */
  char userinfo[256];  /* "user:password" before '@' (still encoded), or "" */
  const char *path;    /* origin-form target, pointing into url or target */
};

/* Splits req's url (or host + target) and checks the method, the target
 * (visible ASCII, no '#') and the headers (valid, none of the forbidden
 * ones).  Returns 0, KZ_EINVAL or KZ_ENOTSUP (not http://). */
int kz_http_client_target_parse(const struct kz_http_client_req *req,
                                struct kz_http_client_target *out);

/* Appends "Authorization: Basic <base64(decoded userinfo)>\r\n" to b.
 * Returns 0, KZ_EINVAL (bad percent-encoding) or KZ_ENOMEM. */
int kz_http_client_write_basic_auth(struct kz_buf *b, const char *userinfo);

/* ------------------------------------------------------------------ */
/* The stream backend (library kz_http_client): sans-I/O, on kz_env.    */

/* Maps a host name to an address (the simulator's host names, /etc/hosts
 * of a test).  Returns 0 and sets *out, or KZ_ENOENT. */
typedef int kz_http_client_resolve_fn(void *arg, const char *host, struct kz_addr *out);

struct kz_http_client_cfg {
  /* Connections kept per host:port (busy and idle); more requests wait
   * in FIFO order.  0 means 8. */
  unsigned max_conns_per_host;
  /* Request deadline when the request gives none; 0 means 30 s.
   * UINT64_MAX: no deadline. */
  uint64_t default_timeout_ns;
  /* An idle keep-alive connection is closed after this; 0 means 30 s. */
  uint64_t idle_timeout_ns;
  /* Largest decoded response body; 0 means 64 MiB. */
  uint64_t max_body;
  /* Times a request may be resent after a reused keep-alive connection
   * closed before any response byte (the stale-connection race; only
   * idempotent methods, never after a fresh connection failed): 0 means 1.
   * Use the request's no_retry to forbid it.  The curl backend always
   * allows one resend (curl's own rule) whatever this says. */
  unsigned max_retries;
  /* Host names other than IP literals and "localhost" go through this;
   * NULL makes them KZ_ENOTSUP. */
  kz_http_client_resolve_fn *resolve;
  void *resolve_arg;
  /* User-Agent header; NULL means "kz". */
  const char *user_agent;
};

/* Counters of the stream backend, monotonic. */
struct kz_http_client_stats {
  uint64_t requests;    /* accepted by kz_http_client_request */
  uint64_t responses;   /* completed with a status */
  uint64_t errors;      /* completed with an error */
  uint64_t connects;    /* connections opened */
  uint64_t reuses;      /* requests sent on an already used connection */
  uint64_t retries;     /* requests resent after an early close */
  uint64_t timeouts;
};

/* Creates a stream-backend client on `env` (cfg copied; NULL for the
 * defaults).  *out is the caller's; release with kz_http_client_free.
 * Returns 0, KZ_EINVAL or KZ_ENOMEM. */
int kz_http_client_stream_new(struct kz_http_client **out, struct kz_env *env,
                              const struct kz_http_client_cfg *cfg);

/* Counters of a client made by kz_http_client_stream_new (NULL for any
 * other backend). */
const struct kz_http_client_stats *kz_http_client_stream_stats(const struct kz_http_client *c);

#endif /* KZ_HTTP_CLIENT_H */
