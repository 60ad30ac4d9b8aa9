/* dbclient.c — the CouchDB client: request building (paths, %2F names, query params), response mapping, the save-with-latest-rev loop. */
#include "kz/dbclient.h"

#include <stdlib.h>
#include <string.h>

#include "kz/error.h"
#include "kz/heap.h"
#include "kz/list.h"
#include "kz/mem.h"

/* An operation in flight.  Plain operations map one HTTP response to
 * one result; a save runs PUT (GET PUT)* until it is not a conflict. */
enum op_kind { OP_JSON, OP_RAW, OP_SAVE_PUT, OP_SAVE_GET };

struct dbop {
  struct kz_list link; /* in the client's list */
  struct kz_dbclient *c;
  enum op_kind kind;
  kz_dbclient_fn *cb;
  void *arg;
  struct kz_http_call *call;
  /* save only */
  char *db;
  json_t *doc;
  unsigned tries_left;
};

struct kz_dbclient {
  struct kz_http_client *http;
  char *base; /* without a trailing '/' */
  uint64_t timeout_ns;
  unsigned save_retries;
  struct kz_list ops; /* of struct dbop, by link */
};

int kz_dbclient_new(struct kz_dbclient **out, struct kz_http_client *http,
                    const struct kz_dbclient_cfg *cfg) {
  if (!out || !http || !cfg || !cfg->url || strncmp(cfg->url, "http://", 7)) return KZ_EINVAL;
  struct kz_dbclient *c = kz_calloc(1, sizeof(*c));
  if (!c) return KZ_ENOMEM;
  size_t n = strlen(cfg->url);
  while (n > 7 && cfg->url[n - 1] == '/') n--;
  c->base = kz_strndup(cfg->url, n);
  if (!c->base) {
    kz_free(c);
    return KZ_ENOMEM;
  }
  c->http = http;
  c->timeout_ns = cfg->timeout_ns;
  c->save_retries = cfg->save_retries ? cfg->save_retries : 3;
  kz_list_init(&c->ops);
  *out = c;
  return 0;
}

static void op_free(struct dbop *op) {
  kz_free(op->db);
  if (op->doc) json_decref(op->doc);
  kz_free(op);
}

void kz_dbclient_free(struct kz_dbclient *c) {
  if (!c) return;
  while (!kz_list_empty(&c->ops)) {
    struct dbop *op = KZ_CONTAINER_OF(c->ops.next, struct dbop, link);
    kz_list_remove(&op->link);
    kz_http_client_cancel(c->http, op->call);
    op_free(op);
  }
  kz_free(c->base);
  kz_free(c);
}

int kz_dbclient_errno(int status, const char *error) {
  if (status >= 200 && status < 300) return 0;
  if (error) {
    static const struct {
      const char *error;
      int code;
    } by_error[] = {
        {"conflict", KZ_ECONFLICT},   {"not_found", KZ_ENOENT},    {"file_exists", KZ_EEXIST},
        {"unauthorized", KZ_EPERM},   {"forbidden", KZ_EPERM},     {"bad_request", KZ_EINVAL},
        {"query_parse_error", KZ_EINVAL}, {"doc_validation", KZ_EINVAL},
        {"not_implemented", KZ_ENOTSUP},
    };
    for (size_t i = 0; i < sizeof(by_error) / sizeof(by_error[0]); i++) {
      if (!strcmp(error, by_error[i].error)) return by_error[i].code;
    }
    if (!strncmp(error, "illegal_", 8) || !strncmp(error, "invalid_", 8)) return KZ_EINVAL;
  }
  switch (status) {
    case 400: return KZ_EINVAL;
    case 401:
    case 403: return KZ_EPERM;
    case 404: return KZ_ENOENT;
    case 405:
    case 415: return KZ_ENOTSUP;
    case 409: return KZ_ECONFLICT;
    case 412: return KZ_EEXIST;
    case 413: return KZ_EMSGSIZE;
    case 501: return KZ_ENOTSUP;
    case 503: return KZ_EBUSY;
    default: return status >= 400 && status < 500 ? KZ_EPROTO : KZ_EIO;
  }
}

int kz_dbclient_encode(struct kz_buf *b, const char *s, bool keep_slash) {
  static const char hex[] = "0123456789ABCDEF";
  size_t mark = b->len;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    unsigned char ch = *p;
    bool plain = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                 ch == '-' || ch == '.' || ch == '_' || ch == '~' || (keep_slash && ch == '/');
    int rc;
    if (plain) {
      rc = kz_buf_append_byte(b, ch);
    } else {
      char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
      rc = kz_buf_append(b, e, 3);
    }
    if (rc) {
      kz_buf_truncate(b, mark);
      return rc;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Building URLs                                                        */

static bool name_ok(const char *s) { return s && *s; }

/* base + "/" + encoded db */
static int url_db(struct kz_dbclient *c, struct kz_buf *u, const char *db) {
  int rc = kz_buf_printf(u, "%s/", c->base);
  return rc ? rc : kz_dbclient_encode(u, db, false);
}

static int append_docid(struct kz_buf *u, const char *id) {
  static const char *const prefixes[] = {"_design/", "_local/"};
  for (size_t i = 0; i < 2; i++) {
    size_t n = strlen(prefixes[i]);
    if (!strncmp(id, prefixes[i], n) && id[n]) {
      int rc = kz_buf_append_cstr(u, prefixes[i]);
      return rc ? rc : kz_dbclient_encode(u, id + n, false);
    }
  }
  return kz_dbclient_encode(u, id, false);
}

static int url_doc(struct kz_dbclient *c, struct kz_buf *u, const char *db, const char *id) {
  int rc = url_db(c, u, db);
  if (!rc) rc = kz_buf_append_byte(u, '/');
  return rc ? rc : append_docid(u, id);
}

/* Query builder: "?a=1&b=2". */
struct query {
  struct kz_buf *u;
  bool any;
  int rc;
};

static void q_str(struct query *q, const char *key, const char *val) {
  if (q->rc || !val) return;
  q->rc = kz_buf_printf(q->u, "%c%s=", q->any ? '&' : '?', key);
  if (!q->rc) q->rc = kz_dbclient_encode(q->u, val, false);
  q->any = true;
}

static void q_bool(struct query *q, const char *key, bool on, const char *val) {
  if (on) q_str(q, key, val);
}

static void q_u64(struct query *q, const char *key, bool on, uint64_t v) {
  if (q->rc || !on) return;
  q->rc = kz_buf_printf(q->u, "%c%s=%llu", q->any ? '&' : '?', key, (unsigned long long)v);
  q->any = true;
}

static void q_json(struct query *q, const char *key, const json_t *v) {
  if (q->rc || !v) return;
  char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  if (!s) {
    q->rc = KZ_ENOMEM;
    return;
  }
  q_str(q, key, s);
  free(s);
}

/* ------------------------------------------------------------------ */
/* Sending and answering                                                */

static void on_http(void *arg, int result, struct kz_http_client_resp *resp);

static int send_req(struct kz_dbclient *c, struct dbop *op, const char *method, const char *url,
                    const void *body, size_t len, const char *ctype) {
  struct kz_http_header h[2];
  size_t nh = 0;
  if (op->kind != OP_RAW) h[nh++] = (struct kz_http_header){KZ_SLICE_LIT("Accept"), KZ_SLICE_LIT("application/json")};
  if (ctype) h[nh++] = (struct kz_http_header){KZ_SLICE_LIT("Content-Type"), kz_slice_cstr(ctype)};
  struct kz_http_client_req req = {.method = method,
                                   .url = url,
                                   .headers = h,
                                   .nheaders = nh,
                                   .body = body,
                                   .body_len = len,
                                   .timeout_ns = c->timeout_ns};
  return kz_http_client_request(c->http, &req, on_http, op, &op->call);
}

static struct dbop *op_new(struct kz_dbclient *c, enum op_kind kind, kz_dbclient_fn *cb, void *arg) {
  struct dbop *op = kz_calloc(1, sizeof(*op));
  if (!op) return NULL;
  op->c = c;
  op->kind = kind;
  op->cb = cb;
  op->arg = arg;
  kz_list_init(&op->link);
  return op;
}

static void op_link(struct dbop *op) {
  struct kz_dbclient *c = op->c;
  kz_list_append(&c->ops, &op->link);
}

/* Starts one request for a new op; on failure the op is freed. */
static int start(struct kz_dbclient *c, struct dbop *op, const char *method, struct kz_buf *url,
                 const json_t *body, const void *raw, size_t rawlen, const char *ctype) {
  int rc = 0;
  char *dump = NULL;
  if (!url->data) rc = KZ_ENOMEM;
  if (!rc && body) {
    dump = json_dumps(body, JSON_COMPACT);
    if (!dump) rc = KZ_ENOMEM;
  }
  if (!rc) {
    rc = dump ? send_req(c, op, method, (const char *)url->data, dump, strlen(dump), "application/json")
              : send_req(c, op, method, (const char *)url->data, raw, rawlen, ctype);
  }
  free(dump);
  kz_buf_free(url);
  if (rc) {
    op_free(op);
    return rc;
  }
  op_link(op);
  return 0;
}

static const char *json_str(const json_t *o, const char *key) {
  const json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
  return json_is_string(v) ? json_string_value(v) : NULL;
}

static int save_put(struct dbop *op);
static int save_get(struct dbop *op);

static void on_http(void *arg, int result, struct kz_http_client_resp *resp) {
  struct dbop *op = arg;
  op->call = NULL;
  struct kz_dbclient_result r = {0};
  json_t *json = NULL;
  char ctype[128] = "";
  if (result < 0) {
    r.err = result;
    r.reason = kz_strerror(result);
  } else {
    r.status = result;
    r.data = resp->body.data;
    r.len = resp->body.len;
    struct kz_slice ct = kz_http_client_resp_header(resp, "Content-Type");
    if (ct.p && ct.len < sizeof(ctype)) {
      memcpy(ctype, ct.p, ct.len);
      ctype[ct.len] = 0;
      r.content_type = ctype;
    }
    bool want_json = op->kind != OP_RAW || result >= 300 ||
                     (ct.p && kz_slice_caseeq(kz_slice_sub(ct, 0, 16), KZ_SLICE_LIT("application/json")));
    if (want_json && resp->body.len) json = json_loadb((const char *)resp->body.data, resp->body.len, JSON_DECODE_ANY, NULL);
    r.json = json;
    r.error = json_str(json, "error");
    r.reason = json_str(json, "reason");
    r.err = kz_dbclient_errno(result, r.error);
    if (!r.err && op->kind != OP_RAW && resp->body.len && !json) {
      r.err = KZ_EPROTO;
      r.reason = "response body is not JSON";
    }
    r.id = json_str(json, "id");
    r.rev = json_str(json, "rev");
  }

  if (op->kind == OP_SAVE_PUT && r.err == KZ_ECONFLICT && op->tries_left) {
    op->tries_left--;
    if (save_get(op) == 0) goto keep;
  } else if (op->kind == OP_SAVE_GET) {
    int rc = KZ_EIO;
    if (r.err == 0 && json_str(json, "_rev")) {
      rc = json_object_set_new(op->doc, "_rev", json_string(json_str(json, "_rev"))) ? KZ_ENOMEM : 0;
    } else if (r.err == KZ_ENOENT) {
      json_object_del(op->doc, "_rev"); /* gone meanwhile: create it again */
      rc = 0;
    }
    if (rc == 0) {
      if (save_put(op) == 0) goto keep;
      rc = KZ_ENOMEM;
    }
    if (r.err == 0) {
      /* The document came back without a _rev, or the PUT could not be
       * sent: the save did not happen, whatever the GET said. */
      r = (struct kz_dbclient_result){.err = rc, .reason = kz_strerror(rc)};
    }
  }
  kz_list_remove(&op->link);
  op->cb(op->arg, &r); /* may free the client: do not touch c after */
  op_free(op);
  if (json) json_decref(json);
  return;
keep:
  if (json) json_decref(json);
}

/* ------------------------------------------------------------------ */
/* Databases                                                            */

static int db_simple(struct kz_dbclient *c, const char *method, const char *db, kz_dbclient_fn *cb,
                     void *arg) {
  if (!c || !cb || !name_ok(db)) return KZ_EINVAL;
  struct dbop *op = op_new(c, OP_JSON, cb, arg);
  if (!op) return KZ_ENOMEM;
  struct kz_buf u = {0};
  if (url_db(c, &u, db)) kz_buf_free(&u);
  return start(c, op, method, &u, NULL, NULL, 0, NULL);
}

int kz_dbclient_db_create(struct kz_dbclient *c, const char *db, kz_dbclient_fn *cb, void *arg) {
  return db_simple(c, "PUT", db, cb, arg);
}

int kz_dbclient_db_delete(struct kz_dbclient *c, const char *db, kz_dbclient_fn *cb, void *arg) {
  return db_simple(c, "DELETE", db, cb, arg);
}

int kz_dbclient_db_info(struct kz_dbclient *c, const char *db, kz_dbclient_fn *cb, void *arg) {
  return db_simple(c, "GET", db, cb, arg);
}

/* ------------------------------------------------------------------ */
/* Documents                                                            */

int kz_dbclient_doc_get(struct kz_dbclient *c, const char *db, const char *id,
                        const struct kz_dbclient_get_opts *opts, kz_dbclient_fn *cb, void *arg) {
  if (!c || !cb || !name_ok(db) || !name_ok(id)) return KZ_EINVAL;
  struct kz_dbclient_get_opts none = {0};
  if (!opts) opts = &none;
  struct dbop *op = op_new(c, OP_JSON, cb, arg);
  if (!op) return KZ_ENOMEM;
  struct kz_buf u = {0};
  struct query q = {&u, false, url_doc(c, &u, db, id)};
  q_bool(&q, "conflicts", opts->conflicts, "true");
  if (opts->open_revs_all) {
    q_str(&q, "open_revs", "all");
  } else {
    q_json(&q, "open_revs", opts->open_revs);
  }
  q_str(&q, "rev", opts->rev);
  q_bool(&q, "revs", opts->revs, "true");
  if (q.rc) kz_buf_free(&u);
  return start(c, op, "GET", &u, NULL, NULL, 0, NULL);
}

static int put_url(struct kz_dbclient *c, struct kz_buf *u, const char *db, const json_t *doc) {
  const char *id = json_str(doc, "_id");
  if (!name_ok(id)) return KZ_EINVAL;
  int rc = url_doc(c, u, db, id);
  if (rc) kz_buf_free(u);
  return rc;
}

int kz_dbclient_doc_put(struct kz_dbclient *c, const char *db, const json_t *doc,
                        kz_dbclient_fn *cb, void *arg) {
  if (!c || !cb || !name_ok(db) || !json_is_object(doc)) return KZ_EINVAL;
  struct kz_buf u = {0};
  int rc = put_url(c, &u, db, doc);
  if (rc) return rc;
  struct dbop *op = op_new(c, OP_JSON, cb, arg);
  if (!op) {
    kz_buf_free(&u);
    return KZ_ENOMEM;
  }
  return start(c, op, "PUT", &u, doc, NULL, 0, NULL);
}

int kz_dbclient_doc_delete(struct kz_dbclient *c, const char *db, const char *id, const char *rev,
                           kz_dbclient_fn *cb, void *arg) {
  if (!c || !cb || !name_ok(db) || !name_ok(id) || !name_ok(rev)) return KZ_EINVAL;
  struct dbop *op = op_new(c, OP_JSON, cb, arg);
  if (!op) return KZ_ENOMEM;
  struct kz_buf u = {0};
  struct query q = {&u, false, url_doc(c, &u, db, id)};
  q_str(&q, "rev", rev);
  if (q.rc) kz_buf_free(&u);
  return start(c, op, "DELETE", &u, NULL, NULL, 0, NULL);
}

/* The save loop's two requests reuse the op (it stays linked). */
static int save_put(struct dbop *op) {
  struct kz_buf u = {0};
  if (put_url(op->c, &u, op->db, op->doc) || !u.data) {
    kz_buf_free(&u);
    return KZ_ENOMEM;
  }
  char *dump = json_dumps(op->doc, JSON_COMPACT);
  int rc = dump ? 0 : KZ_ENOMEM;
  op->kind = OP_SAVE_PUT;
  if (!rc) rc = send_req(op->c, op, "PUT", (const char *)u.data, dump, strlen(dump), "application/json");
  free(dump);
  kz_buf_free(&u);
  return rc;
}

static int save_get(struct dbop *op) {
  struct kz_buf u = {0};
  int rc = url_doc(op->c, &u, op->db, json_str(op->doc, "_id"));
  op->kind = OP_SAVE_GET;
  if (!rc) rc = send_req(op->c, op, "GET", (const char *)u.data, NULL, 0, NULL);
  kz_buf_free(&u);
  return rc;
}

int kz_dbclient_doc_save(struct kz_dbclient *c, const char *db, const json_t *doc,
                         kz_dbclient_fn *cb, void *arg) {
  if (!c || !cb || !name_ok(db) || !json_is_object(doc) || !name_ok(json_str(doc, "_id")))
    return KZ_EINVAL;
  struct dbop *op = op_new(c, OP_SAVE_PUT, cb, arg);
  if (!op) return KZ_ENOMEM;
  op->db = kz_strdup(db);
  op->doc = json_deep_copy(doc);
  op->tries_left = c->save_retries;
  int rc = op->db && op->doc ? save_put(op) : KZ_ENOMEM;
  if (rc) {
    op_free(op);
    return rc;
  }
  op_link(op);
  return 0;
}

int kz_dbclient_bulk_docs(struct kz_dbclient *c, const char *db, const json_t *docs,
                          bool new_edits, kz_dbclient_fn *cb, void *arg) {
  if (!c || !cb || !name_ok(db) || !json_is_array(docs)) return KZ_EINVAL;
  json_t *body = json_object();
  if (!body || json_object_set(body, "docs", (json_t *)docs) ||
      (!new_edits && json_object_set_new(body, "new_edits", json_false()))) {
    json_decref(body);
    return KZ_ENOMEM;
  }
  struct dbop *op = op_new(c, OP_JSON, cb, arg);
  int rc = KZ_ENOMEM;
  if (op) {
    struct kz_buf u = {0};
    if (url_db(c, &u, db) || kz_buf_append_cstr(&u, "/_bulk_docs")) kz_buf_free(&u);
    rc = start(c, op, "POST", &u, body, NULL, 0, NULL);
  }
  json_decref(body);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Views                                                                */

static int view_common(struct kz_dbclient *c, struct kz_buf *u, const struct kz_dbclient_view_opts *o,
                       kz_dbclient_fn *cb, void *arg) {
  struct kz_dbclient_view_opts none = {0};
  if (!o) o = &none;
  struct query q = {u, false, u->data ? 0 : KZ_ENOMEM};
  q_bool(&q, "conflicts", o->conflicts, "true");
  q_bool(&q, "descending", o->descending, "true");
  q_json(&q, "endkey", o->endkey);
  q_str(&q, "endkey_docid", o->endkey_docid);
  q_bool(&q, "group", o->group, "true");
  q_u64(&q, "group_level", o->has_group_level, o->group_level);
  q_bool(&q, "include_docs", o->include_docs, "true");
  q_bool(&q, "inclusive_end", o->exclusive_end, "false");
  q_json(&q, "key", o->key);
  q_u64(&q, "limit", o->has_limit, o->limit);
  q_bool(&q, "reduce", o->reduce == KZ_DBCLIENT_TRUE, "true");
  q_bool(&q, "reduce", o->reduce == KZ_DBCLIENT_FALSE, "false");
  q_u64(&q, "skip", o->skip != 0, o->skip);
  q_str(&q, "stale", o->stale);
  q_json(&q, "startkey", o->startkey);
  q_str(&q, "startkey_docid", o->startkey_docid);
  q_bool(&q, "update_seq", o->update_seq, "true");
  if (q.rc) {
    kz_buf_free(u);
    return q.rc;
  }
  struct dbop *op = op_new(c, OP_JSON, cb, arg);
  if (!op) {
    kz_buf_free(u);
    return KZ_ENOMEM;
  }
  if (!o->keys) return start(c, op, "GET", u, NULL, NULL, 0, NULL);
  json_t *body = json_object();
  int rc = KZ_ENOMEM;
  if (body && !json_object_set(body, "keys", (json_t *)o->keys)) {
    rc = start(c, op, "POST", u, body, NULL, 0, NULL);
  } else {
    kz_buf_free(u);
    op_free(op);
  }
  json_decref(body);
  return rc;
}

int kz_dbclient_all_docs(struct kz_dbclient *c, const char *db,
                         const struct kz_dbclient_view_opts *opts, kz_dbclient_fn *cb, void *arg) {
  if (!c || !cb || !name_ok(db)) return KZ_EINVAL;
  if (opts && opts->keys && !json_is_array(opts->keys)) return KZ_EINVAL;
  struct kz_buf u = {0};
  if (url_db(c, &u, db) || kz_buf_append_cstr(&u, "/_all_docs")) kz_buf_free(&u);
  return view_common(c, &u, opts, cb, arg);
}

int kz_dbclient_view(struct kz_dbclient *c, const char *db, const char *design, const char *view,
                     const struct kz_dbclient_view_opts *opts, kz_dbclient_fn *cb, void *arg) {
  if (!c || !cb || !name_ok(db) || !name_ok(design) || !name_ok(view)) return KZ_EINVAL;
  if (opts && opts->keys && !json_is_array(opts->keys)) return KZ_EINVAL;
  struct kz_buf u = {0};
  int rc = url_db(c, &u, db);
  if (!rc) rc = kz_buf_append_cstr(&u, "/_design/");
  if (!rc) rc = kz_dbclient_encode(&u, design, false);
  if (!rc) rc = kz_buf_append_cstr(&u, "/_view/");
  if (!rc) rc = kz_dbclient_encode(&u, view, false);
  if (rc) kz_buf_free(&u);
  return view_common(c, &u, opts, cb, arg);
}

/* ------------------------------------------------------------------ */
/* Attachments                                                          */

static int url_att(struct kz_dbclient *c, struct kz_buf *u, const char *db, const char *id,
                   const char *name) {
  int rc = url_doc(c, u, db, id);
  if (!rc) rc = kz_buf_append_byte(u, '/');
  if (!rc) rc = kz_dbclient_encode(u, name, true);
  return rc;
}

int kz_dbclient_att_put(struct kz_dbclient *c, const char *db, const char *id, const char *rev,
                        const char *name, const char *content_type, const void *data, size_t len,
                        kz_dbclient_fn *cb, void *arg) {
  if (!c || !cb || !name_ok(db) || !name_ok(id) || !name_ok(name) || (len && !data)) return KZ_EINVAL;
  struct dbop *op = op_new(c, OP_JSON, cb, arg);
  if (!op) return KZ_ENOMEM;
  struct kz_buf u = {0};
  struct query q = {&u, false, url_att(c, &u, db, id, name)};
  q_str(&q, "rev", rev);
  if (q.rc) kz_buf_free(&u);
  return start(c, op, "PUT", &u, NULL, data, len,
               content_type ? content_type : "application/octet-stream");
}

int kz_dbclient_att_get(struct kz_dbclient *c, const char *db, const char *id, const char *name,
                        kz_dbclient_fn *cb, void *arg) {
  if (!c || !cb || !name_ok(db) || !name_ok(id) || !name_ok(name)) return KZ_EINVAL;
  struct dbop *op = op_new(c, OP_RAW, cb, arg);
  if (!op) return KZ_ENOMEM;
  struct kz_buf u = {0};
  if (url_att(c, &u, db, id, name)) kz_buf_free(&u);
  return start(c, op, "GET", &u, NULL, NULL, 0, NULL);
}

/* ------------------------------------------------------------------ */
/* Changes                                                              */

int kz_dbclient_changes(struct kz_dbclient *c, const char *db,
                        const struct kz_dbclient_changes_opts *opts, kz_dbclient_fn *cb, void *arg) {
  if (!c || !cb || !name_ok(db)) return KZ_EINVAL;
  struct kz_dbclient_changes_opts none = {0};
  if (!opts) opts = &none;
  struct dbop *op = op_new(c, OP_JSON, cb, arg);
  if (!op) return KZ_ENOMEM;
  struct kz_buf u = {0};
  int rc = url_db(c, &u, db);
  if (!rc) rc = kz_buf_append_cstr(&u, "/_changes");
  struct query q = {&u, false, rc};
  q_bool(&q, "conflicts", opts->conflicts, "true");
  q_bool(&q, "descending", opts->descending, "true");
  q_str(&q, "feed", "normal");
  q_bool(&q, "include_docs", opts->include_docs, "true");
  q_u64(&q, "limit", opts->has_limit, opts->limit);
  q_str(&q, "since", opts->since);
  q_bool(&q, "style", opts->all_revs, "all_docs");
  if (q.rc) kz_buf_free(&u);
  return start(c, op, "GET", &u, NULL, NULL, 0, NULL);
}
