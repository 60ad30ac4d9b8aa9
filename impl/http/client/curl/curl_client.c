/* curl_client.c — the libcurl backend of the HTTP client: curl_multi_socket_action on uv_poll_t/uv_timer_t, never blocking the loop. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "kz/error.h"
#include "kz/http_curl.h"
#include "kz/list.h"
#include "kz/mem.h"

/* The standard multi-socket integration (curl's docs/examples/multi-uv.c):
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when
 * to wake it (CURLMOPT_TIMERFUNCTION); libuv tells curl what happened with
 * curl_multi_socket_action; finished transfers are collected with
 * curl_multi_info_read and handed to the user outside every curl
 * callback, so user callbacks may add, cancel and destroy freely.
 *
 * Memory: uv handles close asynchronously, so the client struct lives
 * until the close callbacks of its timer and of every poll handle have
 * run (open_handles drops to 0 after destroy). */

struct cclient {
  struct kz_http_client base;
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  struct kz_http_client_cfg cfg;
  char *user_agent;
  struct kz_list calls;
  struct kz_list socks;
  size_t open_handles; /* uv handles not yet closed */
  unsigned depth;
  bool dead;     /* destroy was called */
  bool torn;     /* teardown done; waiting for close callbacks */
};

struct csock {
  uv_poll_t poll;
  struct kz_list link;
  struct cclient *c;
  curl_socket_t fd;
};

struct kz_http_call {
  struct kz_list link;
  struct cclient *c;
  CURL *easy;
  struct curl_slist *hdrs;
  char *url;
  struct kz_buf body_out;  /* request body (curl reads it in place) */
  struct kz_buf resp_body;
  struct kz_buf resp_hdrs; /* raw header lines of the last response */
  kz_http_client_done_fn *cb;
  void *arg;
  int err; /* our own reason to abort the transfer */
};

#define CALL_OF(l) ((struct kz_http_call *)(void *)((char *)(l)-offsetof(struct kz_http_call, link)))
#define SOCK_OF(l) ((struct csock *)(void *)((char *)(l)-offsetof(struct csock, link)))

static void teardown(struct cclient *c);

static void maybe_free(struct cclient *c) {
  if (c->torn && c->open_handles == 0) {
    kz_free(c->user_agent);
    kz_free(c);
    curl_global_cleanup();
  }
}

static void enter(struct cclient *c) { c->depth++; }
static void leave(struct cclient *c) {
  if (--c->depth == 0 && c->dead && !c->torn) teardown(c);
}

/* ------------------------------------------------------------------ */
/* Sockets and timer                                                    */

static void handle_closed(uv_handle_t *h) {
  struct cclient *c = h->data;
  if (h->type == UV_POLL) kz_free(KZ_CONTAINER_OF((uv_poll_t *)h, struct csock, poll));
  c->open_handles--;
  maybe_free(c);
}

static void sock_close(struct csock *k) {
  kz_list_remove(&k->link);
  uv_poll_stop(&k->poll);
  k->poll.data = k->c;
  uv_close((uv_handle_t *)&k->poll, handle_closed);
}

static void check_done(struct cclient *c);

static void on_poll(uv_poll_t *p, int status, int events) {
  struct csock *k = KZ_CONTAINER_OF(p, struct csock, poll);
  struct cclient *c = k->c;
  int flags = 0;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  int running = 0;
  enter(c);
  curl_multi_socket_action(c->multi, k->fd, flags, &running);
  check_done(c);
  leave(c);
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
  struct cclient *c = userp;
  struct csock *k = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (k) {
      curl_multi_assign(c->multi, s, NULL);
      sock_close(k);
    }
    return 0;
  }
  if (!k) {
    k = kz_calloc(1, sizeof(*k));
    if (!k) return -1;
    if (uv_poll_init_socket(c->loop, &k->poll, s)) {
      kz_free(k);
      return -1;
    }
    k->c = c;
    k->fd = s;
    kz_list_init(&k->link);
    kz_list_append(&c->socks, &k->link);
    c->open_handles++;
    curl_multi_assign(c->multi, s, k);
  }
  int ev = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) ev |= UV_READABLE;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) ev |= UV_WRITABLE;
  uv_poll_start(&k->poll, ev, on_poll);
  return 0;
}

static void on_timer(uv_timer_t *t) {
  struct cclient *c = t->data;
  int running = 0;
  enter(c);
  curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(c);
  leave(c);
}

/* curl asks to be woken in timeout_ms (-1: never).  Never call back into
 * curl from here: a zero timeout becomes a uv timer due at once, which
 * runs on the next loop iteration. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
  struct cclient *c = userp;
  if (c->torn) return 0;
  if (timeout_ms < 0) {
    uv_timer_stop(&c->timer);
  } else {
    uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0);
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Transfers                                                            */

static size_t write_cb(char *ptr, size_t size, size_t n, void *userdata) {
  struct kz_http_call *call = userdata;
  size_t len = size * n;
  if (call->resp_body.len + len > call->c->cfg.max_body) {
    call->err = KZ_EMSGSIZE;
    return 0;
  }
  if (kz_buf_append(&call->resp_body, ptr, len)) {
    call->err = KZ_ENOMEM;
    return 0;
  }
  return len;
}

static size_t header_cb(char *ptr, size_t size, size_t n, void *userdata) {
  struct kz_http_call *call = userdata;
  size_t len = size * n;
  /* A status line starts a new response (after 1xx): forget the last. */
  if (len >= 5 && !memcmp(ptr, "HTTP/", 5)) {
    kz_buf_reset(&call->resp_hdrs);
    kz_buf_reset(&call->resp_body);
    return len;
  }
  if (len <= 2) return len; /* the empty line ending the head */
  if (kz_buf_append(&call->resp_hdrs, ptr, len)) {
    call->err = KZ_ENOMEM;
    return 0;
  }
  return len;
}

static void call_free(struct kz_http_call *call) {
  kz_list_remove(&call->link);
  if (call->easy) {
    curl_multi_remove_handle(call->c->multi, call->easy);
    curl_easy_cleanup(call->easy);
  }
  curl_slist_free_all(call->hdrs);
  kz_free(call->url);
  kz_buf_free(&call->body_out);
  kz_buf_free(&call->resp_body);
  kz_buf_free(&call->resp_hdrs);
  kz_free(call);
}

static int map_curl_err(struct kz_http_call *call, CURLcode rc) {
  if (call->err) return call->err;
  long os = 0;
  switch (rc) {
    case CURLE_COULDNT_CONNECT:
      curl_easy_getinfo(call->easy, CURLINFO_OS_ERRNO, &os);
      if (os == EHOSTUNREACH || os == ENETUNREACH) return KZ_EHOSTUNREACH;
      if (os == ETIMEDOUT) return KZ_ETIMEDOUT;
      return KZ_ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT: return KZ_ETIMEDOUT;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE: return KZ_ECONNRESET;
    case CURLE_COULDNT_RESOLVE_HOST: return KZ_EHOSTUNREACH;
    case CURLE_OUT_OF_MEMORY: return KZ_ENOMEM;
    case CURLE_UNSUPPORTED_PROTOCOL: return KZ_ENOTSUP;
    case CURLE_FILESIZE_EXCEEDED: return KZ_EMSGSIZE;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING: return KZ_EPROTO;
    default: return KZ_EIO;
  }
}

/* Splits the stored "Name: value\r\n" lines into slices. */
static int split_headers(struct kz_http_call *call, struct kz_http_header **out, size_t *n) {
  const char *p = (const char *)call->resp_hdrs.data;
  size_t len = call->resp_hdrs.len, count = 0;
  for (size_t i = 0; i < len; i++) count += p[i] == '\n';
  *out = NULL;
  *n = 0;
  if (!count) return 0;
  struct kz_http_header *h = kz_calloc(count, sizeof(*h));
  if (!h) return KZ_ENOMEM;
  size_t off = 0, k = 0;
  while (off < len && k < count) {
    const char *nl = memchr(p + off, '\n', len - off);
    size_t llen = nl ? (size_t)(nl - (p + off)) : len - off;
    struct kz_slice line = kz_slice_make(p + off, llen);
    off += llen + 1;
    long colon = kz_slice_find_char(line, ':');
    if (colon <= 0) continue; /* obsolete folding or junk: curl keeps it, we skip it */
    h[k].name = kz_slice_trim(kz_slice_sub(line, 0, (size_t)colon));
    h[k].value = kz_slice_trim(kz_slice_sub(line, (size_t)colon + 1, line.len));
    k++;
  }
  *out = h;
  *n = k;
  return 0;
}

static void finish(struct kz_http_call *call, CURLcode rc) {
  int result;
  long status = 0;
  struct kz_http_header *hdrs = NULL;
  size_t nh = 0;
  if (rc == CURLE_OK) {
    curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
    result = status >= 100 && status <= 599 ? (int)status : KZ_EPROTO;
    if (result > 0 && split_headers(call, &hdrs, &nh)) result = KZ_ENOMEM;
  } else {
    result = map_curl_err(call, rc);
  }
  kz_http_client_done_fn *cb = call->cb;
  void *arg = call->arg;
  struct kz_http_client_resp resp = {.status = result, .headers = hdrs, .nheaders = nh};
  if (result > 0) {
    resp.body = call->resp_body; /* moved: call_free must not free it */
    kz_buf_init(&call->resp_body);
  }
  /* Keep the header bytes alive through the callback. */
  struct kz_buf hbytes = call->resp_hdrs;
  kz_buf_init(&call->resp_hdrs);
  call_free(call);
  cb(arg, result, result > 0 ? &resp : NULL);
  kz_buf_free(&resp.body);
  kz_buf_free(&hbytes);
  kz_free(hdrs);
}

static void check_done(struct cclient *c) {
  CURLMsg *m;
  int left = 0;
  while (!c->dead && (m = curl_multi_info_read(c->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    char *priv = NULL;
    CURLcode rc = m->data.result;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
    /* finish() removes the handle, which invalidates m: read it first. */
    if (priv) finish((struct kz_http_call *)(void *)priv, rc);
  }
}

static bool is_method(const char *m, const char *x) { return !strcmp(m, x); }

/* Adds "Name: value" to the call's header list.  curl's own syntax:
 * "Name:" removes a header curl would add, "Name;" sends it empty. */
static int add_header(struct kz_http_call *call, struct kz_slice name, struct kz_slice value,
                      bool remove) {
  struct kz_buf line = {0};
  const char *sep = remove ? ":" : value.len ? ": " : ";";
  int rc = kz_buf_printf(&line, "%.*s%s%.*s", (int)name.len, name.p, sep, (int)value.len,
                         value.p ? value.p : "");
  if (rc) return rc;
  struct curl_slist *l = curl_slist_append(call->hdrs, (const char *)line.data);
  kz_buf_free(&line);
  if (!l) return KZ_ENOMEM;
  call->hdrs = l;
  return 0;
}

static bool has_header(const struct kz_http_client_req *req, const char *name) {
  for (size_t i = 0; i < req->nheaders; i++) {
    if (kz_slice_caseeq_cstr(req->headers[i].name, name)) return true;
  }
  return false;
}

static int setup(struct cclient *c, struct kz_http_call *call, const struct kz_http_client_req *req,
                 const struct kz_http_client_target *t) {
  struct kz_buf url = {0};
  int rc = kz_buf_printf(&url, "http://%s%s%s%s", t->userinfo, t->userinfo[0] ? "@" : "",
                         t->authority, t->path);
  if (rc) return rc;
  call->url = (char *)url.data;
  for (size_t i = 0; !rc && i < req->nheaders; i++)
    rc = add_header(call, req->headers[i].name, req->headers[i].value, false);
  /* No 100-continue round trip, and no form content type curl would add
   * to a POSTFIELDS body. */
  if (!rc) rc = add_header(call, KZ_SLICE_LIT("Expect"), KZ_SLICE_NULL, true);
  if (!rc && !has_header(req, "Content-Type"))
    rc = add_header(call, KZ_SLICE_LIT("Content-Type"), KZ_SLICE_NULL, true);
  if (!rc && !has_header(req, "Accept")) rc = add_header(call, KZ_SLICE_LIT("Accept"), KZ_SLICE_NULL, true);
  if (!rc && req->body_len) rc = kz_buf_append(&call->body_out, req->body, req->body_len);
  if (rc) return rc;

  CURL *e = curl_easy_init();
  if (!e) return KZ_ENOMEM;
  call->easy = e;
  CURLcode cr = CURLE_OK;
#define SET(opt, val)                                 \
  do {                                                \
    if (cr == CURLE_OK) cr = curl_easy_setopt(e, opt, val); \
  } while (0)
  SET(CURLOPT_URL, call->url);
  SET(CURLOPT_PRIVATE, (char *)call);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_PROXY, "");
  SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
#if LIBCURL_VERSION_NUM >= 0x075500
  SET(CURLOPT_PROTOCOLS_STR, "http");
#endif
  SET(CURLOPT_USERAGENT, c->user_agent);
  SET(CURLOPT_HTTPHEADER, call->hdrs);
  SET(CURLOPT_WRITEFUNCTION, write_cb);
  SET(CURLOPT_WRITEDATA, call);
  SET(CURLOPT_HEADERFUNCTION, header_cb);
  SET(CURLOPT_HEADERDATA, call);
  uint64_t to = req->timeout_ns ? req->timeout_ns : c->cfg.default_timeout_ns;
  if (to != UINT64_MAX) {
    long ms = (long)((to + 999999) / 1000000);
    SET(CURLOPT_TIMEOUT_MS, ms > 0 ? ms : 1L);
  }
  long age = (long)(c->cfg.idle_timeout_ns / UINT64_C(1000000000));
  SET(CURLOPT_MAXAGE_CONN, age > 0 ? age : 1L);
  /* curl resends a request, whatever its method, when a reused
   * connection closes before any response byte, and has no option to
   * stop that.  A request that may not be resent (not idempotent, or
   * no_retry) therefore goes on a connection of its own, where curl never
   * resends: a _bulk_docs or CDR POST is never written twice.  That
   * connection is closed afterwards rather than pooled, so it does not
   * push the idle keep-alive connections of other requests out of the
   * pool (max_conns_per_host). */
  if (req->no_retry || !kz_http_client_method_idempotent(req->method)) {
    SET(CURLOPT_FRESH_CONNECT, 1L);
    SET(CURLOPT_FORBID_REUSE, 1L);
  }
  const char *m = req->method;
  if (is_method(m, "HEAD")) {
    SET(CURLOPT_NOBODY, 1L);
  } else if (req->body_len || is_method(m, "POST") || is_method(m, "PUT") || is_method(m, "PATCH")) {
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    SET(CURLOPT_POSTFIELDS, call->body_out.len ? (char *)call->body_out.data : "");
    if (!is_method(m, "POST")) SET(CURLOPT_CUSTOMREQUEST, m);
  } else if (is_method(m, "GET")) {
    SET(CURLOPT_HTTPGET, 1L);
  } else {
    SET(CURLOPT_CUSTOMREQUEST, m);
  }
#undef SET
  if (cr != CURLE_OK) return cr == CURLE_OUT_OF_MEMORY ? KZ_ENOMEM : KZ_EINVAL;
  return 0;
}

static int c_request(struct kz_http_client *base, const struct kz_http_client_req *req,
                     kz_http_client_done_fn *cb, void *arg, struct kz_http_call **out) {
  struct cclient *c = (struct cclient *)base;
  if (c->dead) return KZ_ECLOSED;
  struct kz_http_client_target t;
  int rc = kz_http_client_target_parse(req, &t);
  if (rc) return rc;
  struct kz_http_call *call = kz_calloc(1, sizeof(*call));
  if (!call) return KZ_ENOMEM;
  call->c = c;
  call->cb = cb;
  call->arg = arg;
  kz_list_init(&call->link);
  rc = setup(c, call, req, &t);
  if (!rc && curl_multi_add_handle(c->multi, call->easy) != CURLM_OK) rc = KZ_ENOMEM;
  if (rc) {
    CURL *e = call->easy;
    call->easy = NULL;
    curl_easy_cleanup(e);
    call_free(call);
    return rc;
  }
  kz_list_append(&c->calls, &call->link);
  if (out) *out = call;
  return 0;
}

static void c_cancel(struct kz_http_client *base, struct kz_http_call *call) { call_free(call); }

static void teardown(struct cclient *c) {
  c->torn = true;
  while (!kz_list_empty(&c->calls)) call_free(CALL_OF(c->calls.next));
  /* multi_cleanup may still tell us to drop sockets (socket_cb REMOVE). */
  curl_multi_cleanup(c->multi);
  c->multi = NULL;
  while (!kz_list_empty(&c->socks)) sock_close(SOCK_OF(c->socks.next));
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, handle_closed);
}

static void c_destroy(struct kz_http_client *base) {
  struct cclient *c = (struct cclient *)base;
  if (c->dead) return;
  c->dead = true;
  if (c->depth == 0) teardown(c);
}

static const struct kz_http_client_ops curl_ops = {
    .request = c_request,
    .cancel = c_cancel,
    .destroy = c_destroy,
};

int kz_http_curl_new(struct kz_http_client **out, uv_loop_t *loop,
                     const struct kz_http_client_cfg *cfg) {
  if (!out || !loop) return KZ_EINVAL;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return KZ_EIO;
  struct cclient *c = kz_calloc(1, sizeof(*c));
  if (!c) goto nomem;
  if (cfg) c->cfg = *cfg;
  if (!c->cfg.max_conns_per_host) c->cfg.max_conns_per_host = 8;
  if (!c->cfg.default_timeout_ns) c->cfg.default_timeout_ns = UINT64_C(30000000000);
  if (!c->cfg.idle_timeout_ns) c->cfg.idle_timeout_ns = UINT64_C(30000000000);
  if (!c->cfg.max_body) c->cfg.max_body = KZ_HTTP_DEFAULT_MAX_BODY;
  c->user_agent = kz_strdup(c->cfg.user_agent ? c->cfg.user_agent : "kz");
  c->cfg.user_agent = NULL;
  c->multi = curl_multi_init();
  if (!c->user_agent || !c->multi) goto nomem;
  c->base.ops = &curl_ops;
  c->loop = loop;
  kz_list_init(&c->calls);
  kz_list_init(&c->socks);
  if (uv_timer_init(loop, &c->timer)) goto nomem;
  c->timer.data = c;
  c->open_handles = 1;
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)c->cfg.max_conns_per_host);
  curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
  *out = &c->base;
  return 0;
nomem:
  if (c) {
    if (c->multi) curl_multi_cleanup(c->multi);
    kz_free(c->user_agent);
    kz_free(c);
  }
  curl_global_cleanup();
  return KZ_ENOMEM;
}

size_t kz_http_curl_live_handles(const struct kz_http_client *base) {
  const struct cclient *c = (const struct cclient *)base;
  return c->open_handles;
}
