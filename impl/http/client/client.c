/* client.c — the HTTP client interface: the wrappers over a backend's ops table and helpers backends share (URL split, checks, Basic auth). */
#include <string.h>

#include "kz/error.h"
#include "kz/http_client.h"
#include "kz/http_url.h"
#include "kz/mem.h"

int kz_http_client_request(struct kz_http_client *c, const struct kz_http_client_req *req,
                           kz_http_client_done_fn *cb, void *arg, struct kz_http_call **out) {
  if (!c || !req || !cb) return KZ_EINVAL;
  return c->ops->request(c, req, cb, arg, out);
}

void kz_http_client_cancel(struct kz_http_client *c, struct kz_http_call *call) {
  if (!c || !call) return;
  c->ops->cancel(c, call);
}

void kz_http_client_free(struct kz_http_client *c) {
  if (!c) return;
  c->ops->destroy(c);
}

struct kz_slice kz_http_client_resp_header(const struct kz_http_client_resp *r, const char *name) {
  if (!r || !name) return KZ_SLICE_NULL;
  for (size_t i = 0; i < r->nheaders; i++) {
    if (kz_slice_caseeq_cstr(r->headers[i].name, name)) return r->headers[i].value;
  }
  return KZ_SLICE_NULL;
}

void kz_http_client_resp_take_body(struct kz_http_client_resp *r, struct kz_buf *out) {
  *out = r->body;
  kz_buf_init(&r->body);
}

bool kz_http_client_method_idempotent(const char *m) {
  static const char *const idem[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
  if (!m) return false;
  for (size_t i = 0; i < sizeof(idem) / sizeof(idem[0]); i++) {
    if (!strcmp(m, idem[i])) return true;
  }
  return false;
}

static bool is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) return true;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool valid_token(const char *s) {
  if (!s || !*s) return false;
  for (; *s; s++) {
    if (!is_tchar((unsigned char)*s)) return false;
  }
  return true;
}

static bool valid_target(const char *t) {
  if (!t || t[0] != '/') return false;
  for (; *t; t++) {
    unsigned char c = (unsigned char)*t;
    if (c <= 0x20 || c >= 0x7f || c == '#') return false;
  }
  return true;
}

/* Fills host/port/authority/userinfo from "[userinfo@]host[:port]". */
static int split_authority(const char *a, size_t len, struct kz_http_client_target *out) {
  const char *at = memchr(a, '@', len);
  if (at) {
    size_t ulen = (size_t)(at - a);
    if (ulen >= sizeof(out->userinfo)) return KZ_EINVAL;
    memcpy(out->userinfo, a, ulen);
    out->userinfo[ulen] = 0;
    len -= ulen + 1;
    a = at + 1;
  }
  if (len == 0 || len >= sizeof(out->authority)) return KZ_EINVAL;
  memcpy(out->authority, a, len);
  out->authority[len] = 0;
  const char *hp = a, *port = NULL;
  size_t hlen;
  if (a[0] == '[') {
    const char *close = memchr(a, ']', len);
    if (!close) return KZ_EINVAL;
    hp = a + 1;
    hlen = (size_t)(close - hp);
    size_t rest = len - (size_t)(close + 1 - a);
    if (rest) {
      if (close[1] != ':') return KZ_EINVAL;
      port = close + 2;
    }
  } else {
    const char *colon = memchr(a, ':', len);
    hlen = colon ? (size_t)(colon - a) : len;
    if (colon) port = colon + 1;
  }
  if (hlen == 0 || hlen >= sizeof(out->host)) return KZ_EINVAL;
  memcpy(out->host, hp, hlen);
  out->host[hlen] = 0;
  for (size_t i = 0; i < hlen; i++) {
    unsigned char c = (unsigned char)hp[i];
    if (c <= 0x20 || c >= 0x7f || c == '/' || c == '?' || c == '#') return KZ_EINVAL;
  }
  out->port = 80;
  if (port) {
    uint64_t v = 0;
    size_t plen = len - (size_t)(port - a);
    if (kz_slice_to_u64(kz_slice_make(port, plen), 65535, &v) || v == 0) return KZ_EINVAL;
    out->port = (uint16_t)v;
  }
  return 0;
}

int kz_http_client_target_parse(const struct kz_http_client_req *req,
                                struct kz_http_client_target *out) {
  if (!req || !out || !valid_token(req->method)) return KZ_EINVAL;
  memset(out, 0, sizeof(*out));
  if (req->body_len && !req->body) return KZ_EINVAL;
  for (size_t i = 0; i < req->nheaders; i++) {
    const struct kz_http_header *h = &req->headers[i];
    if (!h->name.p || !h->name.len) return KZ_EINVAL;
    if (kz_slice_caseeq_cstr(h->name, "Content-Length") ||
        kz_slice_caseeq_cstr(h->name, "Transfer-Encoding") ||
        kz_slice_caseeq_cstr(h->name, "Connection"))
      return KZ_EINVAL;
    for (size_t k = 0; k < h->name.len; k++) {
      if (!is_tchar((unsigned char)h->name.p[k])) return KZ_EINVAL;
    }
    for (size_t k = 0; k < h->value.len; k++) {
      unsigned char c = (unsigned char)h->value.p[k];
      if (c == '\r' || c == '\n' || c == 0) return KZ_EINVAL;
    }
  }
  int rc;
  if (req->url) {
    const char *u = req->url;
    size_t n = strlen(u);
    if (n < 7 || !kz_slice_caseeq_cstr(kz_slice_make(u, 7), "http://")) {
      return strstr(u, "://") ? KZ_ENOTSUP : KZ_EINVAL;
    }
    const char *a = u + 7;
    size_t alen = strcspn(a, "/?#");
    if (a[alen] != '/') return KZ_EINVAL; /* "http://h?q": give a path */
    rc = split_authority(a, alen, out);
    if (rc) return rc;
    out->path = a + alen;
  } else {
    if (!req->host || !req->target) return KZ_EINVAL;
    rc = split_authority(req->host, strlen(req->host), out);
    if (rc) return rc;
    out->path = req->target;
  }
  return valid_target(out->path) ? 0 : KZ_EINVAL;
}

int kz_http_client_write_basic_auth(struct kz_buf *b, const char *userinfo) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  struct kz_buf plain = {0};
  int rc = kz_http_pct_decode(kz_slice_cstr(userinfo), false, &plain, NULL);
  if (rc) {
    kz_buf_free(&plain);
    return rc == KZ_ENOMEM ? rc : KZ_EINVAL;
  }
  size_t mark = b->len;
  rc = kz_buf_append_cstr(b, "Authorization: Basic ");
  const uint8_t *p = plain.data;
  size_t n = plain.len;
  for (size_t i = 0; !rc && i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < n) v |= p[i + 2];
    char q[4] = {tab[(v >> 18) & 63], tab[(v >> 12) & 63], i + 1 < n ? tab[(v >> 6) & 63] : '=',
                 i + 2 < n ? tab[v & 63] : '='};
    rc = kz_buf_append(b, q, 4);
  }
  if (!rc) rc = kz_buf_append(b, "\r\n", 2);
  kz_buf_free(&plain);
  if (rc) kz_buf_truncate(b, mark);
  return rc;
}
