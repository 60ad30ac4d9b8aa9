/* registrar.c — the registrar app: answers authn_req with device credentials looked up through CouchDB views, with a TTL cache invalidated by document notices. */
#include <stdio.h>
#include <string.h>

#include "kz/apps.h"
#include "kz/dbclient.h"
#include "kz/error.h"
#include "kz/map.h"
#include "kz/mem.h"

#define REG_LOG "registrar"
#define REG_APP_NAME "registrar"
#define REG_APP_VERSION "0.1.0"
#define NS_MS UINT64_C(1000000)
#define NS_S UINT64_C(1000000000)
#define FIELD_MAX 256

/* One authn_req being answered.  Lookups run one after the other:
 * realm (unless cached), then device (unless cached). */
struct lookup {
  struct lookup *next, *prev;
  struct kz_apps_registrar *r;
  json_t *req;           /* the authn_req (one reference) */
  char realm[FIELD_MAX]; /* lower-cased */
  char user[FIELD_MAX];  /* lower-cased */
  json_t *account;       /* {id, db, name, realm} once known (one reference) */
  bool in_db;            /* a dbclient call is pending */
};

/* A cache entry: a small JSON value and its expiry. */
struct centry {
  uint64_t expires;
  json_t *val;
};

struct kz_apps_registrar {
  struct kz_env *env;
  const struct kz_apps_registrar_cfg *cfg;
  struct kz_bus *bus;
  struct kz_http_client *http;
  struct kz_dbclient *db;
  struct kz_map cache; /* "r\0realm" -> account, "d\0acct\0user" -> device */
  struct lookup *pending;
  struct kz_apps_registrar_stats st;
  struct kz_kapi_origin origin;
  char node[128];
  char queue[128];
  char cfg_queue[160];
  uint64_t ttl;
  size_t cache_max;
};

/* ------------------------------------------------------------------ */
/* Naming helpers                                                      */

int kz_apps_account_db(const char *account_id, char out[KZ_APPS_ACCOUNT_DB_LEN]) {
  if (!account_id || strlen(account_id) != 32) return KZ_EINVAL;
  char id[33];
  for (int i = 0; i < 32; i++) {
    char c = account_id[i];
    if (c >= 'A' && c <= 'F') c = (char)(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return KZ_EINVAL;
    id[i] = c;
  }
  id[32] = 0;
  snprintf(out, KZ_APPS_ACCOUNT_DB_LEN, "account/%.2s/%.2s/%s", id, id + 2, id + 4);
  return 0;
}

int kz_apps_url_escape(struct kz_buf *out, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    unsigned char c = *p;
    bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                c == '.' || c == '_' || c == '~';
    int rc = keep ? kz_buf_append_byte(out, c)
                  : kz_buf_printf(out, "%%%c%c", hex[c >> 4], hex[c & 15]);
    if (rc) return rc;
  }
  return 0;
}

static void lower_copy(char *dst, size_t n, const char *src) {
  size_t i = 0;
  for (; src[i] && i + 1 < n; i++) {
    char c = src[i];
    dst[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
  }
  dst[i] = 0;
}

static const char *jstr(const json_t *o, const char *key) { return json_string_value(json_object_get(o, key)); }

/* ------------------------------------------------------------------ */
/* Cache                                                               */

static void centry_free(struct centry *e) {
  if (!e) return;
  json_decref(e->val);
  kz_free(e);
}

/* Keys are NUL-separated parts, so "a" + "bc" never meets "ab" + "c". */
static size_t cache_key(char *out, size_t n, char kind, const char *a, const char *b) {
  size_t la = strlen(a), lb = b ? strlen(b) : 0;
  if (3 + la + lb > n) return 0;
  out[0] = kind;
  out[1] = 0;
  memcpy(out + 2, a, la);
  size_t len = 2 + la;
  if (b) {
    out[len++] = 0;
    memcpy(out + len, b, lb);
    len += lb;
  }
  return len;
}

/* A fresh cached value (borrowed), or NULL.  Expired entries go. */
static const json_t *cache_get(struct kz_apps_registrar *r, const char *key, size_t klen) {
  if (r->cfg->no_cache || !klen) return NULL;
  struct centry *e = kz_map_get(&r->cache, key, klen, NULL);
  if (!e) return NULL;
  if (kz_env_now(r->env) >= e->expires) {
    centry_free(kz_map_del(&r->cache, key, klen, NULL));
    return NULL;
  }
  return e->val;
}

static void cache_put(struct kz_apps_registrar *r, const char *key, size_t klen, json_t *val) {
  if (r->cfg->no_cache || !klen) return;
  /* Full: the oldest entries (insertion order) make room. */
  while (kz_map_count(&r->cache) >= r->cache_max) {
    size_t pos = 0;
    const void *k;
    size_t kl;
    void *v;
    if (!kz_map_next(&r->cache, &pos, &k, &kl, &v)) break;
    centry_free(kz_map_del(&r->cache, k, kl, NULL));
  }
  struct centry *e = kz_calloc(1, sizeof *e);
  if (!e) return; /* a cache that cannot grow just misses */
  e->expires = kz_env_now(r->env) + r->ttl;
  e->val = json_incref(val);
  /* Re-inserting moves the key to the end of the insertion order. */
  centry_free(kz_map_del(&r->cache, key, klen, NULL));
  if (kz_map_put(&r->cache, key, klen, e, NULL)) centry_free(e);
}

/* Drops the entries of `kind` whose value has `field` == id. */
static void cache_drop_matching(struct kz_apps_registrar *r, char kind, const char *field, const char *id) {
  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  while (kz_map_next(&r->cache, &pos, &k, &kl, &v)) {
    struct centry *e = v;
    const char *val = jstr(e->val, field);
    if (((const char *)k)[0] == kind && val && !strcmp(val, id)) {
      centry_free(kz_map_del(&r->cache, k, kl, NULL));
      r->st.invalidations++;
    }
  }
}

size_t kz_apps_registrar_cache_size(const struct kz_apps_registrar *r) { return kz_map_count(&r->cache); }

void kz_apps_registrar_cache_flush(struct kz_apps_registrar *r) {
  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  while (kz_map_next(&r->cache, &pos, &k, &kl, &v)) centry_free(kz_map_del(&r->cache, k, kl, NULL));
}

/* ------------------------------------------------------------------ */
/* Replies                                                             */

static void lookup_free(struct lookup *l) {
  struct kz_apps_registrar *r = l->r;
  if (l->prev) l->prev->next = l->next;
  else r->pending = l->next;
  if (l->next) l->next->prev = l->prev;
  json_decref(l->req);
  json_decref(l->account);
  kz_free(l);
}

static void send_reply(struct kz_apps_registrar *r, const json_t *req, enum kz_kapi_type type, json_t *body) {
  json_t *msg = NULL;
  struct kz_kapi_error err;
  int rc = kz_kapi_build_reply(type, &r->origin, req, body, &msg, &err);
  if (rc == 0) rc = kz_bus_reply(r->bus, req, msg);
  if (rc) {
    kz_log(r->env, KZ_LOG_WARN, REG_LOG, "%s not sent: %s", kz_kapi_type_name(type),
           rc == KZ_EPROTO ? err.reason : kz_strerror(rc));
  } else if (type == KZ_KAPI_AUTHN_RESP) {
    r->st.authn_resps++;
  } else {
    r->st.authn_errs++;
  }
  json_decref(msg);
}

static void reply_err(struct lookup *l, const char *why) {
  struct kz_apps_registrar *r = l->r;
  kz_log(r->env, KZ_LOG_INFO, REG_LOG, "authn_err for %s@%s: %s", l->user, l->realm, why);
  json_t *body = json_object();
  if (body) send_reply(r, l->req, KZ_KAPI_AUTHN_ERR, body);
  json_decref(body);
  lookup_free(l);
}

static void drop(struct lookup *l, const char *why) {
  struct kz_apps_registrar *r = l->r;
  kz_log(r->env, KZ_LOG_WARN, REG_LOG, "authn_req for %s@%s unanswered: %s", l->user, l->realm, why);
  r->st.unanswered++;
  lookup_free(l);
}

/* Answers from a device credential value (see device_from_row). */
static void reply_device(struct lookup *l, const json_t *dev) {
  struct kz_apps_registrar *r = l->r;
  if (json_is_false(json_object_get(dev, "enabled"))) {
    reply_err(l, "device disabled");
    return;
  }
  const char *method = jstr(dev, "method");
  if (method && strcmp(method, "password")) {
    reply_err(l, "device does not authenticate by password");
    return;
  }
  const char *pw = jstr(dev, "password");
  if (!pw) {
    reply_err(l, "device has no password");
    return;
  }
  const json_t *a = l->account;
  const char *auth_user = jstr(l->req, "Auth-User");
  json_t *ccv = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "Account-ID", jstr(a, "id"), "Account-Realm",
                          jstr(a, "realm"), "Realm", l->realm, "Username", auth_user, "Authorizing-ID",
                          jstr(dev, "authorizing_id"), "Authorizing-Type", jstr(dev, "authorizing_type"));
  json_t *body = NULL;
  if (ccv) {
    if (jstr(a, "name")) json_object_set_new(ccv, "Account-Name", json_string(jstr(a, "name")));
    if (jstr(dev, "owner_id")) json_object_set_new(ccv, "Owner-ID", json_string(jstr(dev, "owner_id")));
    body = json_pack("{s:s, s:s, s:s, s:O}", "Auth-Method", "password", "Auth-Password", pw, "Auth-Username",
                     auth_user, "Custom-Channel-Vars", ccv);
  }
  if (body) send_reply(r, l->req, KZ_KAPI_AUTHN_RESP, body);
  else kz_log(r->env, KZ_LOG_ERROR, REG_LOG, "authn_resp for %s@%s: out of memory", l->user, l->realm);
  json_decref(ccv);
  json_decref(body);
  lookup_free(l);
}

/* ------------------------------------------------------------------ */
/* Lookups                                                             */

static void step(struct lookup *l);

/* The first row of a view answer, or NULL. */
static const json_t *first_row(const struct kz_dbclient_result *res) {
  const json_t *rows = json_object_get(res->json, "rows");
  return json_is_array(rows) ? json_array_get(rows, 0) : NULL;
}

/* Normalises a listing_by_realm row into {id, db, name, realm}.  The
 * value may be Kazoo's {account_id, account_db, account_name} or shorter
 * spellings; the row's id is the account id when the value lacks it. */
static json_t *account_from_row(const json_t *row, const char *realm) {
  const json_t *v = json_object_get(row, "value");
  const char *id = jstr(v, "account_id");
  if (!id) id = jstr(v, "id");
  if (!id) id = jstr(row, "id");
  const char *db = jstr(v, "account_db");
  if (!db) db = jstr(v, "db");
  const json_t *doc = json_object_get(row, "doc");
  const char *name = jstr(v, "account_name");
  if (!name) name = jstr(v, "name");
  if (!name) name = jstr(doc, "name");
  char dbbuf[KZ_APPS_ACCOUNT_DB_LEN];
  if (!db) {
    if (!id || kz_apps_account_db(id, dbbuf)) return NULL;
    db = dbbuf;
  }
  if (!id) return NULL;
  json_t *o = json_pack("{s:s, s:s, s:s}", "id", id, "db", db, "realm", realm);
  if (o && name) json_object_set_new(o, "name", json_string(name));
  /* Kazoo's account doc says pvt_enabled false for a disabled account. */
  if (o && json_is_false(json_object_get(doc, "pvt_enabled"))) json_object_set_new(o, "enabled", json_false());
  return o;
}

/* Normalises a sip_credentials row into {password, method, enabled,
 * authorizing_id, authorizing_type, owner_id}; with include_docs (or a
 * value that is the sip object only) the device document fills gaps. */
static json_t *device_from_row(const json_t *row) {
  const json_t *v = json_object_get(row, "value");
  const json_t *doc = json_object_get(row, "doc");
  const json_t *sip = json_object_get(doc, "sip");
  const char *pw = jstr(v, "password");
  if (!pw) pw = jstr(sip, "password");
  const char *method = jstr(v, "method");
  if (!method) method = jstr(sip, "method");
  const char *aid = jstr(v, "authorizing_id");
  if (!aid) aid = jstr(row, "id");
  const char *atype = jstr(v, "authorizing_type");
  if (!atype) atype = jstr(doc, "pvt_type");
  const char *owner = jstr(v, "owner_id");
  if (!owner) owner = jstr(doc, "owner_id");
  const json_t *en = json_object_get(v, "enabled");
  if (!en) en = json_object_get(doc, "enabled");
  if (!aid) return NULL;
  json_t *o = json_pack("{s:s, s:s, s:s, s:b}", "authorizing_id", aid, "authorizing_type",
                        atype ? atype : "device", "method", method ? method : "password", "enabled",
                        en ? !json_is_false(en) : 1);
  if (!o) return NULL;
  if (pw) json_object_set_new(o, "password", json_string(pw));
  if (owner) json_object_set_new(o, "owner_id", json_string(owner));
  return o;
}

/* Whether a failed view query means "nothing there" rather than "the db
 * is not working": the account database is gone (404). */
static bool is_missing(const struct kz_dbclient_result *res) { return res->err == KZ_ENOENT; }

static void on_realm(void *arg, const struct kz_dbclient_result *res) {
  struct lookup *l = arg;
  struct kz_apps_registrar *r = l->r;
  l->in_db = false;
  if (res->err) {
    r->st.db_errors++;
    char why[200];
    snprintf(why, sizeof why, "accounts/listing_by_realm: %s (%d %s)", kz_strerror(res->err), res->status,
             res->reason ? res->reason : "");
    drop(l, why);
    return;
  }
  const json_t *row = first_row(res);
  if (!row) {
    reply_err(l, "unknown realm");
    return;
  }
  json_t *acct = account_from_row(row, l->realm);
  if (!acct) {
    r->st.db_errors++;
    drop(l, "accounts/listing_by_realm: row without an account id");
    return;
  }
  char key[FIELD_MAX + 4];
  cache_put(r, key, cache_key(key, sizeof key, 'r', l->realm, NULL), acct);
  l->account = acct;
  step(l);
}

static void on_device(void *arg, const struct kz_dbclient_result *res) {
  struct lookup *l = arg;
  struct kz_apps_registrar *r = l->r;
  l->in_db = false;
  if (res->err && is_missing(res)) {
    reply_err(l, "account database missing");
    return;
  }
  if (res->err) {
    r->st.db_errors++;
    char why[200];
    snprintf(why, sizeof why, "devices/sip_credentials: %s (%d %s)", kz_strerror(res->err), res->status,
             res->reason ? res->reason : "");
    drop(l, why);
    return;
  }
  const json_t *row = first_row(res);
  if (!row) {
    reply_err(l, "unknown user");
    return;
  }
  json_t *dev = device_from_row(row);
  if (!dev) {
    r->st.db_errors++;
    drop(l, "devices/sip_credentials: row without a device id");
    return;
  }
  char key[2 * FIELD_MAX + 8];
  cache_put(r, key, cache_key(key, sizeof key, 'd', jstr(l->account, "id"), l->user), dev);
  reply_device(l, dev);
  json_decref(dev);
}

static void query(struct lookup *l, const char *db, const char *design, const char *view, const char *key,
                  kz_dbclient_fn *cb) {
  struct kz_apps_registrar *r = l->r;
  json_t *k = json_string(key);
  /* include_docs: Kazoo's views carry only the sip object and the ids;
   * the owner, the enabled flags and the account name are in the docs. */
  struct kz_dbclient_view_opts o = {.key = k, .include_docs = true};
  int rc = k ? kz_dbclient_view(r->db, db, design, view, &o, cb, l) : KZ_ENOMEM;
  json_decref(k);
  if (rc) {
    r->st.db_errors++;
    char why[160];
    snprintf(why, sizeof why, "%s/%s not sent: %s", design, view, kz_strerror(rc));
    drop(l, why);
    return;
  }
  r->st.db_requests++;
  l->in_db = true;
}

/* Advances a lookup: uses cached answers where it can, else asks the db. */
static void step(struct lookup *l) {
  struct kz_apps_registrar *r = l->r;
  char key[2 * FIELD_MAX + 8];
  if (!l->account) {
    const json_t *acct = cache_get(r, key, cache_key(key, sizeof key, 'r', l->realm, NULL));
    if (!acct) {
      r->st.cache_misses++;
      query(l, "accounts", "accounts", "listing_by_realm", l->realm, on_realm);
      return;
    }
    r->st.cache_hits++;
    l->account = json_incref((json_t *)acct);
  }
  if (json_is_false(json_object_get(l->account, "enabled"))) {
    reply_err(l, "account disabled");
    return;
  }
  const json_t *dev = cache_get(r, key, cache_key(key, sizeof key, 'd', jstr(l->account, "id"), l->user));
  if (dev) {
    r->st.cache_hits++;
    json_t *keep = json_incref((json_t *)dev);
    reply_device(l, keep);
    json_decref(keep);
    return;
  }
  r->st.cache_misses++;
  query(l, jstr(l->account, "db"), "devices", "sip_credentials", l->user, on_device);
}

/* ------------------------------------------------------------------ */
/* Bus                                                                 */

static void on_authn_req(void *arg, struct kz_bus *bus, const struct kz_bus_delivery *d) {
  struct kz_apps_registrar *r = arg;
  json_t *req = NULL;
  struct kz_kapi_error err;
  if (kz_kapi_decode(d->body, d->len, NULL, KZ_KAPI_AUTHN_REQ, &req, NULL, &err)) {
    r->st.bad_msgs++;
    kz_log(r->env, KZ_LOG_WARN, REG_LOG, "refused a message on %s: %s", d->queue, err.reason);
    return;
  }
  r->st.authn_reqs++;
  const char *realm = jstr(req, "Auth-Realm"), *user = jstr(req, "Auth-User");
  if (!jstr(req, "Server-ID") || strlen(realm) >= FIELD_MAX || strlen(user) >= FIELD_MAX) {
    /* Nobody to answer, or names no account can have. */
    r->st.bad_msgs++;
    json_decref(req);
    return;
  }
  struct lookup *l = kz_calloc(1, sizeof *l);
  if (!l) {
    r->st.unanswered++;
    json_decref(req);
    return;
  }
  l->r = r;
  l->req = req;
  lower_copy(l->realm, sizeof l->realm, realm);
  lower_copy(l->user, sizeof l->user, user);
  l->next = r->pending;
  if (r->pending) r->pending->prev = l;
  r->pending = l;
  step(l);
}

static void on_doc_change(void *arg, struct kz_bus *bus, const struct kz_bus_delivery *d) {
  struct kz_apps_registrar *r = arg;
  json_t *msg = NULL;
  struct kz_kapi_error err;
  if (kz_kapi_decode(d->body, d->len, NULL, KZ_KAPI_DOC_CHANGE, &msg, NULL, &err)) {
    r->st.bad_msgs++;
    return;
  }
  r->st.doc_notices++;
  const char *type = jstr(msg, "Type"), *id = jstr(msg, "ID");
  if (!strcmp(type, "device")) cache_drop_matching(r, 'd', "authorizing_id", id);
  else if (!strcmp(type, "account")) cache_drop_matching(r, 'r', "id", id);
  json_decref(msg);
}

/* Declares the queues and bindings (replayed by the bus after every
 * reconnect). */
static int setup_bus(struct kz_apps_registrar *r) {
  int rc = kz_bus_declare_kazoo_exchanges(r->bus);
  struct kz_bus_queue_opts shared = {0};
  struct kz_bus_queue_opts own = {.exclusive = true, .auto_delete = true};
  char *rk = NULL;
  if (!rc) rc = kz_bus_declare_queue(r->bus, r->queue, &shared);
  if (!rc) rc = kz_bus_rk_authn_req(&rk, NULL); /* "authn.req.*" */
  if (!rc) rc = kz_bus_bind(r->bus, r->queue, "callmgr", rk);
  kz_free(rk);
  if (!rc) rc = kz_bus_consume(r->bus, r->queue, false, on_authn_req, r, NULL);
  if (!rc) rc = kz_bus_declare_queue(r->bus, r->cfg_queue, &own);
  static const char *const actions[] = {"edited", "deleted"};
  static const char *const types[] = {"device", "account"};
  for (int a = 0; a < 2 && !rc; a++) {
    for (int t = 0; t < 2 && !rc; t++) {
      rk = NULL;
      rc = kz_bus_rk_doc_change(&rk, actions[a], NULL, types[t], NULL);
      if (!rc) rc = kz_bus_bind(r->bus, r->cfg_queue, "configuration", rk);
      kz_free(rk);
    }
  }
  if (!rc) rc = kz_bus_consume(r->bus, r->cfg_queue, false, on_doc_change, r, NULL);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */

int kz_apps_registrar_start(struct kz_env *env, const void *cfgv, void **instance) {
  const struct kz_apps_registrar_cfg *cfg = cfgv;
  if (!env || !cfg || !instance || !cfg->db_url || !cfg->bus_factory) return KZ_EINVAL;
  struct kz_apps_registrar *r = kz_calloc(1, sizeof *r);
  if (!r) return KZ_ENOMEM;
  r->env = env;
  r->cfg = cfg;
  r->ttl = cfg->cache_ttl_ns ? cfg->cache_ttl_ns : 60 * NS_S;
  r->cache_max = cfg->cache_max ? cfg->cache_max : 10000;
  kz_map_init(&r->cache, kz_env_random(env), false);
  if (cfg->node) snprintf(r->node, sizeof r->node, "%s", cfg->node);
  else snprintf(r->node, sizeof r->node, "registrar@%s", env->name);
  snprintf(r->queue, sizeof r->queue, "%s", cfg->queue ? cfg->queue : "registrar_authn");
  r->origin = (struct kz_kapi_origin){REG_APP_NAME, REG_APP_VERSION, r->node, NULL};

  int rc;
  if (cfg->http_factory) {
    rc = cfg->http_factory(cfg->http_arg, env, &r->http);
  } else {
    struct kz_http_client_cfg hc = {.resolve = cfg->resolve, .resolve_arg = cfg->resolve_arg,
                                    .user_agent = "kz-registrar"};
    rc = kz_http_client_stream_new(&r->http, env, &hc);
  }
  if (rc) goto fail;
  struct kz_dbclient_cfg dc = {.url = cfg->db_url,
                               .timeout_ns = cfg->db_timeout_ns ? cfg->db_timeout_ns : 2 * NS_S};
  if ((rc = kz_dbclient_new(&r->db, r->http, &dc))) goto fail;

  struct kz_bus_backend be;
  if ((rc = cfg->bus_factory(cfg->bus_arg, env, &be))) goto fail;
  struct kz_bus_cfg bc = {.node = r->node, .app_name = REG_APP_NAME, .app_version = REG_APP_VERSION,
                          .default_timeout_ns = 2 * NS_S};
  if ((rc = kz_bus_new(&r->bus, env, &be, &bc))) goto fail;
  snprintf(r->cfg_queue, sizeof r->cfg_queue, "registrar_config-%s", kz_bus_server_id(r->bus));
  if ((rc = setup_bus(r))) goto fail;
  kz_log(env, KZ_LOG_INFO, REG_LOG, "registrar up: queue %s, db %s", r->queue, cfg->db_url);
  *instance = r;
  return 0;
fail:
  kz_apps_registrar_stop(r);
  return rc;
}

void kz_apps_registrar_stop(void *instance) {
  struct kz_apps_registrar *r = instance;
  if (!r) return;
  /* Freeing the db client cancels its calls: no callback comes later. */
  kz_dbclient_free(r->db);
  r->db = NULL;
  while (r->pending) lookup_free(r->pending);
  kz_bus_free(r->bus);
  kz_http_client_free(r->http);
  kz_apps_registrar_cache_flush(r);
  kz_map_free(&r->cache);
  kz_free(r);
}

void kz_apps_registrar_get_stats(const struct kz_apps_registrar *r, struct kz_apps_registrar_stats *out) {
  *out = r->st;
}

struct kz_bus *kz_apps_registrar_bus(const struct kz_apps_registrar *r) { return r->bus; }
