/* kz/http_curl.h — the libcurl backend of the HTTP client: curl's multi interface driven by a libuv loop (driver code). */
#ifndef KZ_HTTP_CURL_H
#define KZ_HTTP_CURL_H

#include <uv.h>

#include "kz/http_client.h"

/* A struct kz_http_client whose requests libcurl carries, on the caller's
 * libuv loop (the loop of the process's kz_uv_env): curl's sockets are
 * watched with uv_poll_t and its timeout with one uv_timer_t
 * (curl_multi_socket_action, the "multi-uv" integration), so nothing ever
 * blocks the loop.  Real name resolution, real TCP; what the stream
 * backend does with kz_env, this does with curl, and both pass the same
 * contract tests.
 *
 * cfg is read as for kz_http_client_stream_new: max_conns_per_host
 * (CURLMOPT_MAX_HOST_CONNECTIONS), default_timeout_ns (CURLOPT_TIMEOUT_MS),
 * idle_timeout_ns (CURLOPT_MAXAGE_CONN, whole seconds), max_body,
 * user_agent.  resolve and max_retries are ignored: curl resolves names
 * itself (an unknown name fails later, through the callback, with
 * KZ_EHOSTUNREACH, where the stream backend returns KZ_ENOTSUP at once)
 * and resends a request once when a reused connection turns out dead,
 * whatever the method, as curl always does.  So that a request which may
 * not be resent (not idempotent, or no_retry) is never written twice, it
 * is sent on a new connection (CURLOPT_FRESH_CONNECT), where curl does
 * not resend, and closed after it (CURLOPT_FORBID_REUSE).  At the
 * max_conns_per_host bound that new connection first closes an idle
 * one.
 *
 * Callbacks run on the loop's thread, from libuv callbacks. */

/* Creates a curl client on `loop` (cfg copied; NULL for the defaults).
 * *out is the caller's; release it with kz_http_client_free, then run the
 * loop until its handles have closed (uv_run returns) before closing the
 * loop.  Returns 0, KZ_EINVAL, KZ_ENOMEM or KZ_EIO (curl could not be
 * initialised). */
int kz_http_curl_new(struct kz_http_client **out, uv_loop_t *loop,
                     const struct kz_http_client_cfg *cfg);

/* Number of libuv handles the client holds (its timer and one poll per
 * curl socket); for tests. */
size_t kz_http_curl_live_handles(const struct kz_http_client *c);

#endif /* KZ_HTTP_CURL_H */
