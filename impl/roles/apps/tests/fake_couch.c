/* fake_couch.c — a test double for the db: an in-memory CouchDB subset with the registrar's two views, over kz_env streams (simulator or libuv). */
#include "fake_couch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/error.h"
#include "kz/http.h"
#include "kz/http_url.h"
#include "kz/http_write.h"
#include "kz/mem.h"

struct fc_conn {
  struct fc_server *srv;
  struct kz_stream *s;
  struct kz_http_parser *p;
  struct fc_conn *next;
};

struct fc_server {
  struct kz_env *env;
  struct fc_store *store;
  struct kz_listener *l;
  struct fc_conn *conns;
};

struct fc_db *fc_db_find(struct fc_store *s, const char *name) {
  for (size_t i = 0; i < s->ndbs; i++)
    if (!strcmp(s->dbs[i].name, name)) return &s->dbs[i];
  return NULL;
}

static struct fc_doc *doc_slot(struct fc_db *d, const char *id) {
  for (size_t i = 0; i < d->ndocs; i++)
    if (!strcmp(d->docs[i].id, id)) return &d->docs[i];
  return NULL;
}

json_t *fc_doc_find(struct fc_store *s, const char *db, const char *id) {
  struct fc_db *d = fc_db_find(s, db);
  struct fc_doc *x = d ? doc_slot(d, id) : NULL;
  return x ? x->doc : NULL;
}

static struct fc_db *db_create(struct fc_store *s, const char *name) {
  if (s->ndbs == FC_MAX_DBS) return NULL;
  struct fc_db *d = &s->dbs[s->ndbs++];
  memset(d, 0, sizeof *d);
  snprintf(d->name, sizeof d->name, "%s", name);
  return d;
}

/* Stores doc under a new revision "<n+1>-<hash>"; returns the slot. */
static struct fc_doc *store_doc(struct fc_db *d, const char *id, json_t *doc) {
  struct fc_doc *x = doc_slot(d, id);
  int gen = 0;
  if (x) {
    const char *old = json_string_value(json_object_get(x->doc, "_rev"));
    gen = old ? atoi(old) : 0;
    json_decref(x->doc);
  } else {
    if (d->ndocs == FC_MAX_DOCS) {
      json_decref(doc);
      return NULL;
    }
    x = &d->docs[d->ndocs++];
    snprintf(x->id, sizeof x->id, "%s", id);
  }
  char *txt = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
  char rev[64];
  snprintf(rev, sizeof rev, "%d-%016llx", gen + 1,
           (unsigned long long)kz_hash64(txt ? txt : "", txt ? strlen(txt) : 0, (uint64_t)gen));
  free(txt);
  json_object_set_new(doc, "_id", json_string(id));
  json_object_set_new(doc, "_rev", json_string(rev));
  x->doc = doc;
  return x;
}

void fc_put(struct fc_store *s, const char *db, const char *id, json_t *doc) {
  struct fc_db *d = fc_db_find(s, db);
  if (!d) d = db_create(s, db);
  if (d) store_doc(d, id, doc);
  else json_decref(doc);
}

void fc_store_clear(struct fc_store *s) {
  for (size_t i = 0; i < s->ndbs; i++)
    for (size_t j = 0; j < s->dbs[i].ndocs; j++) json_decref(s->dbs[i].docs[j].doc);
  s->ndbs = 0;
}

/* ------------------------------------------------------------------ */
/* HTTP                                                                */

static void respond(struct fc_conn *c, int status, json_t *body) {
  char *txt = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  struct kz_http_header h[] = {{KZ_SLICE_LIT("Content-Type"), KZ_SLICE_LIT("application/json")}};
  struct kz_buf b;
  kz_buf_init(&b);
  if (kz_http_write_response(&b, status, h, 1, txt, strlen(txt), false) == 0) kz_stream_write(c->s, b.data, b.len);
  kz_buf_free(&b);
  free(txt);
}

static void err(struct fc_conn *c, int status, const char *e, const char *reason) {
  respond(c, status, json_pack("{s:s, s:s}", "error", e, "reason", reason));
}

/* The registrar's views, computed the way the design documents'
 * JavaScript does (fixtures/seed via seed.c). */
static json_t *view_rows(struct fc_db *d, const char *design, const char *view, const char *key,
                         bool include_docs) {
  json_t *rows = json_array();
  for (size_t i = 0; i < d->ndocs; i++) {
    json_t *doc = d->docs[i].doc;
    const char *type = json_string_value(json_object_get(doc, "pvt_type"));
    if (!type || json_is_true(json_object_get(doc, "pvt_deleted"))) continue;
    if (!strcmp(design, "accounts") && !strcmp(view, "listing_by_realm") && !strcmp(type, "account")) {
      const char *realm = json_string_value(json_object_get(doc, "realm"));
      if (!realm || strcasecmp(realm, key)) continue;
      /* Kazoo's accounts.json: {account_id, account_db} only. */
      json_t *row = json_pack("{s:s, s:s, s:{s:O, s:O}}", "id", d->docs[i].id, "key", key, "value", "account_id",
                              json_object_get(doc, "pvt_account_id"), "account_db",
                              json_object_get(doc, "pvt_account_db"));
      if (include_docs) json_object_set_new(row, "doc", json_deep_copy(doc));
      json_array_append_new(rows, row);
    } else if (!strcmp(design, "devices") && !strcmp(view, "sip_credentials") && !strcmp(type, "device")) {
      json_t *sip = json_object_get(doc, "sip");
      const char *u = json_string_value(json_object_get(sip, "username"));
      if (!u || strcasecmp(u, key)) continue;
      /* Kazoo's devices.json: a copy of doc.sip plus the ids. */
      json_t *v = json_deep_copy(sip);
      json_object_set_new(v, "authorizing_id", json_string(d->docs[i].id));
      json_object_set_new(v, "authorizing_type", json_string(type));
      json_t *row = json_pack("{s:s, s:s, s:o}", "id", d->docs[i].id, "key", key, "value", v);
      if (include_docs) json_object_set_new(row, "doc", json_deep_copy(doc));
      json_array_append_new(rows, row);
    }
  }
  return rows;
}

static void handle(struct fc_conn *c, struct kz_http_msg *m) {
  struct fc_store *st = c->srv->store;
  st->requests++;
  struct kz_slice path, query;
  struct kz_http_strlist seg = {0};
  struct kz_http_query q = {0};
  char method[16];
  snprintf(method, sizeof method, "%.*s", (int)m->method.len, m->method.p);
  if (kz_http_target_split(m->target, &path, &query, NULL) || kz_http_path_segments(path, &seg, NULL) ||
      (query.p && kz_http_query_parse(query, &q, NULL)) || seg.n == 0) {
    err(c, 400, "bad_request", "bad target");
    goto out;
  }
  const char *dbname = seg.items[0].p;
  struct fc_db *d = fc_db_find(st, dbname);
  if (seg.n == 1) {
    if (!strcmp(method, "PUT")) {
      if (d) err(c, 412, "file_exists", "The database could not be created, the file already exists.");
      else if (db_create(st, dbname)) respond(c, 201, json_pack("{s:b}", "ok", 1));
      else err(c, 500, "internal", "too many databases");
    } else if (!strcmp(method, "GET")) {
      if (d) respond(c, 200, json_pack("{s:s, s:i}", "db_name", d->name, "doc_count", (int)d->ndocs));
      else err(c, 404, "not_found", "Database does not exist.");
    } else {
      err(c, 405, "method_not_allowed", "only PUT and GET");
    }
    goto out;
  }
  if (!d) {
    err(c, 404, "not_found", "Database does not exist.");
    goto out;
  }
  if (seg.n == 5 && !strcmp(seg.items[1].p, "_design") && !strcmp(seg.items[3].p, "_view")) {
    st->view_requests++;
    snprintf(st->last_view_target, sizeof st->last_view_target, "%.*s", (int)m->target.len, m->target.p);
    if (!strcmp(seg.items[4].p, "listing_by_realm")) st->realm_views++;
    if (!strcmp(seg.items[4].p, "sip_credentials")) st->device_views++;
    if (st->silent_views) goto out;
    if (st->fail_views) {
      err(c, 500, "internal_server_error", "view server crashed");
      goto out;
    }
    struct kz_slice ks = kz_http_query_get(&q, "key");
    json_t *key = ks.p ? json_loadb(ks.p, ks.len, JSON_DECODE_ANY, NULL) : NULL;
    if (!json_is_string(key)) {
      json_decref(key);
      err(c, 400, "bad_request", "key must be a JSON string");
      goto out;
    }
    bool include_docs = kz_slice_eq_cstr(kz_http_query_get(&q, "include_docs"), "true");
    json_t *rows = view_rows(d, seg.items[2].p, seg.items[4].p, json_string_value(key), include_docs);
    json_decref(key);
    respond(c, 200, json_pack("{s:i, s:i, s:o}", "total_rows", (int)json_array_size(rows), "offset", 0, "rows",
                              rows));
    goto out;
  }
  char id[160];
  if (seg.n == 2) snprintf(id, sizeof id, "%s", seg.items[1].p);
  else if (seg.n == 3 && !strcmp(seg.items[1].p, "_design")) snprintf(id, sizeof id, "_design/%s", seg.items[2].p);
  else {
    err(c, 400, "bad_request", "unsupported path");
    goto out;
  }
  struct fc_doc *x = doc_slot(d, id);
  if (!strcmp(method, "GET")) {
    if (x) respond(c, 200, json_deep_copy(x->doc));
    else err(c, 404, "not_found", "missing");
  } else if (!strcmp(method, "PUT")) {
    st->puts++;
    json_t *doc = json_loadb((const char *)m->body.data, m->body.len, 0, NULL);
    if (!json_is_object(doc)) {
      json_decref(doc);
      err(c, 400, "bad_request", "invalid JSON");
      goto out;
    }
    const char *rev = json_string_value(json_object_get(doc, "_rev"));
    const char *cur = x ? json_string_value(json_object_get(x->doc, "_rev")) : NULL;
    if ((cur || rev) && (!cur || !rev || strcmp(cur, rev))) {
      st->conflicts++;
      json_decref(doc);
      err(c, 409, "conflict", "Document update conflict.");
      goto out;
    }
    x = store_doc(d, id, doc);
    if (!x) err(c, 500, "internal", "too many documents");
    else
      respond(c, 201, json_pack("{s:b, s:s, s:O}", "ok", 1, "id", id, "rev", json_object_get(x->doc, "_rev")));
  } else {
    err(c, 405, "method_not_allowed", "only GET and PUT");
  }
out:
  kz_http_query_free(&q);
  kz_http_strlist_free(&seg);
}

static void conn_free(struct fc_conn *c) {
  struct fc_conn **pp = &c->srv->conns;
  while (*pp != c) pp = &(*pp)->next;
  *pp = c->next;
  kz_stream_close(c->s);
  kz_http_parser_free(c->p);
  kz_free(c);
}

static void on_data(void *arg, struct kz_stream *s, const uint8_t *data, size_t len) {
  struct fc_conn *c = arg;
  size_t off = 0;
  for (;;) {
    size_t used = 0;
    int ev = kz_http_parser_feed(c->p, data + off, len - off, &used);
    off += used;
    if (ev < 0) {
      conn_free(c);
      return;
    }
    if (ev == KZ_HTTP_EV_MSG) handle(c, kz_http_parser_msg(c->p));
    else if (ev == KZ_HTTP_EV_MORE) break;
  }
}

static void on_close(void *arg, struct kz_stream *s, int status) { conn_free(arg); }

static const struct kz_stream_cbs conn_cbs = {NULL, on_data, on_close};

static void on_accept(void *arg, struct kz_listener *l, struct kz_stream *s) {
  struct fc_server *srv = arg;
  struct fc_conn *c = kz_calloc(1, sizeof *c);
  c->srv = srv;
  c->s = s;
  kz_http_parser_new(&c->p, KZ_HTTP_REQUEST, NULL);
  c->next = srv->conns;
  srv->conns = c;
  kz_stream_set_cbs(s, &conn_cbs, c);
}

int fc_start(struct kz_env *env, const void *cfg, void **instance) {
  struct fc_server *srv = kz_calloc(1, sizeof *srv);
  srv->env = env;
  srv->store = (struct fc_store *)cfg;
  int rc = kz_stream_listen(env, &srv->store->listen, on_accept, srv, &srv->l);
  if (rc) {
    kz_free(srv);
    return rc;
  }
  *instance = srv;
  return 0;
}

void fc_stop(void *instance) {
  struct fc_server *srv = instance;
  while (srv->conns) conn_free(srv->conns);
  kz_listener_close(srv->l);
  kz_free(srv);
}

unsigned fc_port(void *instance) {
  struct fc_server *srv = instance;
  return srv->l->local.port;
}
