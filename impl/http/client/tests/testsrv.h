/* testsrv.h — a canned HTTP/1.1 server on kz_env streams for the client tests (uv driver and simulator alike). */
#ifndef KZ_HTTP_TESTSRV_H
#define KZ_HTTP_TESTSRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/buf.h"
#include "kz/env.h"

/* Routes (by path; the query is ignored unless said):
 *   /echo...         200, body "<METHOD> <target>\n<request body>", headers
 *                    X-Method, X-Body-Len, X-Conn (connection number) and
 *                    X-Seen-<Name> echoing a request header X-Test
 *   /status/<n>      status n, body "status <n>"
 *   /chunked         200, chunked in three writes: "hello " "chunked " "world"
 *   /until-close     200 with no length, "Connection: close", body "until close"
 *   /conn-close      200 "bye" with "Connection: close"
 *   /close-early     closes the connection without answering
 *   /close-next      200 "ok", but the connection's next request is met
 *                    with a silent close (a server dropping an idle
 *                    keep-alive connection as the request arrives)
 *   /slow            never answers
 *   /delay/<ms>      200 "<target>" after ms milliseconds
 *   /big             200 with TSRV_BIG bytes, byte i = (i * 7 + 3) & 0xff
 *   /upload          200 "<body length> <kz_hash64(body, 0) in hex>"
 *   anything else    404 "no route" */
#define TSRV_BIG (1024u * 1024u)

/* One request as the server saw it. */
struct tsrv_req {
  char method[16];
  char target[512];
  char *headers;  /* "Name: value\n" lines, kz_malloc'ed */
  struct kz_buf body;
  uint64_t conn;  /* connection number, from 1 */
};

struct tsrv_stats {
  uint64_t accepted;
  uint64_t open;
  uint64_t max_open;
  uint64_t closed_by_peer; /* connections the client ended */
  uint64_t requests;
};

struct tsrv;

/* Listens on `local` (port 0 picks one).  Returns 0 or a KZ_E* code. */
int tsrv_new(struct tsrv **out, struct kz_env *env, const struct kz_addr *local);
/* Closes every connection and the listener, frees the records. */
void tsrv_free(struct tsrv *s);
struct kz_addr tsrv_addr(const struct tsrv *s);
const struct tsrv_stats *tsrv_stats(const struct tsrv *s);
/* Requests seen so far, in arrival order. */
size_t tsrv_nreqs(const struct tsrv *s);
const struct tsrv_req *tsrv_req(const struct tsrv *s, size_t i);

/* Canned mode: every request gets the next queued response (status,
 * extra header lines "Name: value\r\n"..., body), in order; when the
 * queue is empty, 500.  Routes are then not used. */
int tsrv_push(struct tsrv *s, int status, const char *headers, const char *body, size_t len);

/* The sim app wrapper: cfg is a `const struct kz_addr *` to listen on. */
int tsrv_app_start(struct kz_env *env, const void *cfg, void **instance);
void tsrv_app_stop(void *instance);

#endif /* KZ_HTTP_TESTSRV_H */
