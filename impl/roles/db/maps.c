/* maps.c — Kazoo's view map functions written in C: each mirrors one JavaScript map of a Kazoo design document. */
#include <string.h>

#include "db_int.h"
#include "kz/error.h"
#include "kz/mem.h"

/* Each function below reproduces, row for row, what CouchDB's
 * JavaScript query server would emit for the Kazoo map function named
 * in its comment, including JavaScript's quirks where a real document
 * can trigger them:
 *   - truthiness: undefined, null, false, 0, NaN and "" are false;
 *   - `for (var i in x)` walks an array's elements, an object's values
 *     and a string's characters, and nothing for other types;
 *   - a member set to `undefined` disappears from the emitted JSON;
 *   - a map that throws (e.g. `.toLowerCase()` on a non-string) emits
 *     nothing at all for that document — couchjs discards the rows of
 *     a document whose map function raised.
 * A map returns 0, KZ_EAGAIN for "the JavaScript would have thrown"
 * (the caller drops what was emitted) or KZ_ENOMEM.
 *
 * toLowerCase is applied to ASCII letters only (kz does not carry the
 * Unicode case tables); Kazoo's realms and SIP usernames are ASCII. */

#define THROW KZ_EAGAIN

struct kz_db_emits {
  json_t *rows; /* array of [key, value] */
};

/* Appends one row, stealing key and value (NULL means JSON null, as an
 * emitted `undefined` becomes null). */
static int emit(struct kz_db_emits *e, json_t *key, json_t *value) {
  json_t *row = json_array();
  if (!row || json_array_append_new(row, key ? key : json_null()) ||
      json_array_append_new(row, value ? value : json_null()) || json_array_append_new(e->rows, row)) {
    json_decref(row);
    return KZ_ENOMEM;
  }
  return 0;
}

static const json_t *jget(const json_t *o, const char *k) {
  return json_is_object(o) ? json_object_get(o, k) : NULL;
}

static bool truthy(const json_t *v) {
  if (!v || json_is_null(v) || json_is_false(v)) return false;
  if (json_is_integer(v)) return json_integer_value(v) != 0;
  if (json_is_real(v)) return json_real_value(v) == json_real_value(v) && json_real_value(v) != 0;
  if (json_is_string(v)) return json_string_length(v) != 0;
  return true;
}

/* JavaScript `v == 's'` for the cases documents hold (strings only). */
static bool eq_str(const json_t *v, const char *s) { return json_is_string(v) && !strcmp(json_string_value(v), s); }

/* `s.toLowerCase()`: a new string, or NULL when s is not a string
 * (the JavaScript would throw a TypeError). */
static json_t *lower(const json_t *s) {
  if (!json_is_string(s)) return NULL;
  size_t n = json_string_length(s);
  char *b = kz_malloc(n + 1);
  if (!b) return NULL;
  const char *p = json_string_value(s);
  for (size_t i = 0; i < n; i++) b[i] = (p[i] >= 'A' && p[i] <= 'Z') ? (char)(p[i] + 32) : p[i];
  json_t *r = json_stringn(b, n);
  kz_free(b);
  return r;
}

/* The values `for (var i in v)` visits: a new array (NULL on ENOMEM). */
static json_t *forin(const json_t *v) {
  json_t *out = json_array();
  if (!out) return NULL;
  if (json_is_array(v)) {
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) json_array_append(out, x);
  } else if (json_is_object(v)) {
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x) json_array_append(out, x);
  } else if (json_is_string(v)) {
    /* One string per character (UTF-8 sequence). */
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    for (size_t i = 0; i < n;) {
      size_t l = 1;
      while (i + l < n && ((unsigned char)s[i + l] & 0xc0) == 0x80) l++;
      json_array_append_new(out, json_stringn(s + i, l));
      i += l;
    }
  }
  return out;
}

/* obj[k] = v, where an undefined v (NULL) deletes the member. */
static void set_opt(json_t *obj, const char *k, const json_t *v) {
  if (v) json_object_set(obj, k, (json_t *)v);
  else json_object_del(obj, k);
}

/* `doc.device_type == 'mobile' ? 'mobile' : doc.pvt_type` */
static const json_t *authorizing_type(const json_t *doc, json_t *mobile) {
  return eq_str(jget(doc, "device_type"), "mobile") ? mobile : jget(doc, "pvt_type");
}

/* ------------------------------------------------------------------ */
/* _design/devices (core/kazoo_apps/priv/couchdb/account/devices.json)  */

/* devices/sip_credentials: every document with a `sip` object (any
 * pvt_type) emits sip.username lowercased -> a copy of doc.sip plus
 * authorizing_id and authorizing_type; a sys_info document emits one
 * row per server whose auth_method is "password". */
static int map_devices_sip_credentials(struct kz_db_emits *e, const char *id, const json_t *doc) {
  if (truthy(jget(doc, "pvt_deleted"))) return 0;
  const json_t *sip = jget(doc, "sip");
  json_t *mobile = json_string("mobile");
  int rc = 0;
  if (truthy(sip)) {
    json_t *key = lower(jget(sip, "username"));
    if (!key || !json_is_object(sip)) {
      json_decref(key);
      rc = THROW;
      goto out;
    }
    json_t *v = json_copy((json_t *)sip); /* shallow: only v's own members change */
    if (!v) {
      json_decref(key);
      rc = KZ_ENOMEM;
      goto out;
    }
    json_object_set_new(v, "authorizing_id", json_string(id));
    set_opt(v, "authorizing_type", authorizing_type(doc, mobile));
    rc = emit(e, key, v);
  } else if (eq_str(jget(doc, "pvt_type"), "sys_info")) {
    json_t *servers = forin(jget(doc, "servers"));
    size_t i;
    json_t *s;
    json_array_foreach(servers, i, s) {
      if (json_is_null(s)) {
        rc = THROW; /* doc.servers[i].auth on null */
        break;
      }
      const json_t *auth = jget(s, "auth");
      const json_t *am = jget(auth, "auth_method");
      if (!truthy(auth) || !truthy(am)) continue;
      json_t *aml = lower(am);
      if (!aml) {
        rc = THROW;
        break;
      }
      bool pw = !strcmp(json_string_value(aml), "password");
      json_decref(aml);
      if (!pw) continue;
      json_t *key = lower(jget(auth, "auth_user"));
      const json_t *opts = jget(s, "options");
      if (!key || !opts || json_is_null(opts)) {
        json_decref(key);
        rc = THROW;
        break;
      }
      const json_t *inf = jget(opts, "inbound_format");
      json_t *v = json_object();
      set_opt(v, "password", jget(auth, "auth_password"));
      set_opt(v, "username", jget(auth, "auth_user"));
      json_object_set(v, "method", (json_t *)am); /* truthy, so `|| 'password'` never applies */
      if (truthy(inf)) json_object_set(v, "invite_format", (json_t *)inf);
      else json_object_set_new(v, "invite_format", json_string("e164"));
      json_object_set_new(v, "authorizing_id", json_string(id));
      set_opt(v, "authorizing_type", jget(doc, "pvt_type"));
      if ((rc = emit(e, key, v))) break;
    }
    json_decref(servers);
  }
out:
  json_decref(mobile);
  return rc;
}

/* devices/listing_by_macaddress: device docs with a mac_address emit
 * it -> null. */
static int map_devices_listing_by_macaddress(struct kz_db_emits *e, const char *id, const json_t *doc) {
  (void)id;
  if (!eq_str(jget(doc, "pvt_type"), "device") || truthy(jget(doc, "pvt_deleted"))) return 0;
  const json_t *mac = jget(doc, "mac_address");
  return truthy(mac) ? emit(e, json_incref((json_t *)mac), NULL) : 0;
}

/* ------------------------------------------------------------------ */
/* _design/callflows (core/kazoo_apps/priv/couchdb/account/callflows.json) */

/* listing_by_number / listing_by_pattern: one row per entry of
 * doc.numbers (doc.patterns) -> {"name": doc.name || doc._id}. */
static int map_callflow_list(struct kz_db_emits *e, const char *id, const json_t *doc, const char *field) {
  if (!eq_str(jget(doc, "pvt_type"), "callflow") || truthy(jget(doc, "pvt_deleted"))) return 0;
  json_t *items = forin(jget(doc, field));
  if (!items) return KZ_ENOMEM;
  const json_t *name = jget(doc, "name");
  int rc = 0;
  size_t i;
  json_t *n;
  json_array_foreach(items, i, n) {
    json_t *v = json_object();
    json_object_set_new(v, "name", truthy(name) ? json_incref((json_t *)name) : json_string(id));
    if ((rc = emit(e, json_incref(n), v))) break;
  }
  json_decref(items);
  return rc;
}

static int map_callflows_listing_by_number(struct kz_db_emits *e, const char *id, const json_t *doc) {
  return map_callflow_list(e, id, doc, "numbers");
}

static int map_callflows_listing_by_pattern(struct kz_db_emits *e, const char *id, const json_t *doc) {
  return map_callflow_list(e, id, doc, "patterns");
}

/* Collects the module names of a flow tree (depth first, children in
 * key order), skipping nodes whose data.skip_module is true. */
static void walk_modules(const json_t *flow, json_t *mods, int depth) {
  if (!json_is_object(flow) || depth > 64) return;
  const json_t *m = jget(flow, "module"), *data = jget(flow, "data");
  if (truthy(m) && truthy(data) && !json_is_true(jget(data, "skip_module"))) {
    bool seen = false;
    size_t i;
    json_t *x;
    json_array_foreach(mods, i, x) if (json_equal(x, (json_t *)m)) seen = true;
    if (!seen) json_array_append(mods, (json_t *)m); /* modules.filter(onlyUnique) */
  }
  const json_t *ch = jget(flow, "children");
  if (json_is_object(ch)) {
    const char *k;
    json_t *c;
    json_object_foreach((json_t *)ch, k, c) walk_modules(c, mods, depth + 1);
  }
}

/* callflows/crossbar_listing: _id -> summary with the flow's modules. */
static int map_callflows_crossbar_listing(struct kz_db_emits *e, const char *id, const json_t *doc) {
  if (!eq_str(jget(doc, "pvt_type"), "callflow") || truthy(jget(doc, "pvt_deleted"))) return 0;
  json_t *mods = json_array();
  if (truthy(jget(doc, "flow"))) walk_modules(jget(doc, "flow"), mods, 0);
  const json_t *fc = jget(doc, "featurecode"), *flags = jget(doc, "flags");
  json_t *v = json_object();
  json_object_set_new(v, "id", json_string(id));
  set_opt(v, "name", jget(doc, "name"));
  set_opt(v, "type", jget(doc, "type"));
  set_opt(v, "numbers", jget(doc, "numbers"));
  set_opt(v, "patterns", jget(doc, "patterns"));
  json_object_set(v, "featurecode", truthy(fc) ? (json_t *)fc : json_false());
  set_opt(v, "owner_id", jget(doc, "owner_id"));
  set_opt(v, "group_id", jget(doc, "group_id"));
  json_object_set_new(v, "modules", mods);
  if (truthy(flags)) json_object_set(v, "flags", (json_t *)flags);
  else json_object_set_new(v, "flags", json_array());
  return emit(e, json_string(id), v);
}

/* ------------------------------------------------------------------ */
/* _design/accounts (core/kazoo_apps/priv/couchdb/views/accounts.json) */

static bool is_live_account(const json_t *doc) {
  return eq_str(jget(doc, "pvt_type"), "account") && !truthy(jget(doc, "pvt_deleted"));
}

/* accounts/listing_by_realm: realm lowercased -> {account_id, account_db}. */
static int map_accounts_listing_by_realm(struct kz_db_emits *e, const char *id, const json_t *doc) {
  (void)id;
  if (!is_live_account(doc)) return 0;
  json_t *key = lower(jget(doc, "realm"));
  if (!key) return THROW;
  json_t *v = json_object();
  set_opt(v, "account_id", jget(doc, "pvt_account_id"));
  set_opt(v, "account_db", jget(doc, "pvt_account_db"));
  return emit(e, key, v);
}

/* accounts/listing_by_name: name lowercased with every character
 * outside [a-z0-9] removed -> {account_id, account_db}. */
static int map_accounts_listing_by_name(struct kz_db_emits *e, const char *id, const json_t *doc) {
  (void)id;
  if (!is_live_account(doc)) return 0;
  json_t *l = lower(jget(doc, "name"));
  if (!l) return THROW;
  const char *s = json_string_value(l);
  size_t n = json_string_length(l), k = 0;
  char *b = kz_malloc(n + 1);
  if (!b) {
    json_decref(l);
    return KZ_ENOMEM;
  }
  for (size_t i = 0; i < n; i++)
    if ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')) b[k++] = s[i];
  json_t *key = json_stringn(b, k);
  kz_free(b);
  json_decref(l);
  json_t *v = json_object();
  set_opt(v, "account_id", jget(doc, "pvt_account_id"));
  set_opt(v, "account_db", jget(doc, "pvt_account_db"));
  return emit(e, key, v);
}

/* accounts/listing_by_simple_id: _id -> {id, name, realm}. */
static int map_accounts_listing_by_simple_id(struct kz_db_emits *e, const char *id, const json_t *doc) {
  if (!is_live_account(doc)) return 0;
  json_t *v = json_object();
  set_opt(v, "id", jget(doc, "pvt_account_id"));
  set_opt(v, "name", jget(doc, "name"));
  set_opt(v, "realm", jget(doc, "realm"));
  return emit(e, json_string(id), v);
}

/* accounts/listing_by_descendants_count (reduce _count): one row per
 * ancestor in pvt_tree -> 1. */
static int map_accounts_listing_by_descendants_count(struct kz_db_emits *e, const char *id,
                                                     const json_t *doc) {
  (void)id;
  if (!is_live_account(doc)) return 0;
  const json_t *tree = jget(doc, "pvt_tree");
  if (!json_is_array(tree) && !json_is_string(tree)) return THROW; /* .slice(0) */
  json_t *items = forin(tree);
  if (!items) return KZ_ENOMEM;
  int rc = 0;
  size_t i;
  json_t *t;
  json_array_foreach(items, i, t) if ((rc = emit(e, json_incref(t), json_integer(1)))) break;
  json_decref(items);
  return rc;
}

/* ------------------------------------------------------------------ */
/* _design/credentials (applications/registrar/priv/couchdb/views/credentials.json) */

/* credentials/lookup (the sip_auth database): device docs with a sip
 * object emit [realm lowercased, username lowercased] -> doc.sip plus
 * id, account_id, account_db, authorizing_id, authorizing_type; one row
 * per realm when sip.realm is a list. */
static int map_credentials_lookup(struct kz_db_emits *e, const char *id, const json_t *doc) {
  if (!eq_str(jget(doc, "pvt_type"), "device") || truthy(jget(doc, "pvt_deleted"))) return 0;
  const json_t *sip = jget(doc, "sip");
  if (!sip) return 0;
  if (json_is_null(sip)) return THROW; /* sip.id = ... on null */
  if (!json_is_object(sip)) return 0;  /* properties on a primitive vanish: no realm, no rows */
  json_t *v = json_copy((json_t *)sip); /* shallow: only v's own members change */
  json_t *mobile = json_string("mobile");
  if (!v || !mobile) {
    json_decref(v);
    json_decref(mobile);
    return KZ_ENOMEM;
  }
  json_object_set_new(v, "id", json_string(id));
  set_opt(v, "account_id", jget(doc, "pvt_account_id"));
  set_opt(v, "account_db", jget(doc, "pvt_account_db"));
  json_object_set_new(v, "authorizing_id", json_string(id));
  set_opt(v, "authorizing_type", authorizing_type(doc, mobile));
  json_decref(mobile);
  const json_t *realm = jget(v, "realm");
  json_t *realms = json_is_string(realm) ? json_pack("[O]", realm) : forin(realm);
  int rc = realms ? 0 : KZ_ENOMEM;
  size_t i;
  json_t *r;
  json_array_foreach(realms, i, r) {
    json_t *lr = lower(r), *lu = lower(jget(v, "username"));
    if (!lr || !lu) {
      json_decref(lr);
      json_decref(lu);
      rc = THROW;
      break;
    }
    if ((rc = emit(e, json_pack("[oo]", lr, lu), json_incref(v)))) break;
  }
  json_decref(realms);
  json_decref(v);
  return rc;
}

/* ------------------------------------------------------------------ */
/* _design/cdrs (core/kazoo_apps/priv/couchdb/account/cdrs.json)       */

/* cdrs/crossbar_listing: pvt_created -> null. */
static int map_cdrs_crossbar_listing(struct kz_db_emits *e, const char *id, const json_t *doc) {
  (void)id;
  if (truthy(jget(doc, "pvt_deleted")) || !eq_str(jget(doc, "pvt_type"), "cdr")) return 0;
  const json_t *c = jget(doc, "pvt_created");
  return emit(e, c ? json_incref((json_t *)c) : NULL, NULL);
}

/* cdrs/listing_by_owner: [owner_id, pvt_created] -> {owner_id, id}. */
static int map_cdrs_listing_by_owner(struct kz_db_emits *e, const char *id, const json_t *doc) {
  if (!eq_str(jget(doc, "pvt_type"), "cdr") || truthy(jget(doc, "pvt_deleted"))) return 0;
  const json_t *ccv = jget(doc, "custom_channel_vars");
  const json_t *owner = jget(ccv, "owner_id");
  if (!truthy(ccv) || !truthy(owner)) return 0;
  const json_t *c = jget(doc, "pvt_created");
  json_t *key = json_pack("[OO]", owner, c ? c : json_null());
  json_t *v = json_pack("{s:O,s:s}", "owner_id", owner, "id", id);
  return emit(e, key, v);
}

/* ------------------------------------------------------------------ */

const struct kz_db_native_view kz_db_native_views[] = {
    {"accounts", "listing_by_descendants_count", map_accounts_listing_by_descendants_count, KZ_DB_REDUCE_COUNT},
    {"accounts", "listing_by_name", map_accounts_listing_by_name, KZ_DB_REDUCE_NONE},
    {"accounts", "listing_by_realm", map_accounts_listing_by_realm, KZ_DB_REDUCE_NONE},
    {"accounts", "listing_by_simple_id", map_accounts_listing_by_simple_id, KZ_DB_REDUCE_NONE},
    {"callflows", "crossbar_listing", map_callflows_crossbar_listing, KZ_DB_REDUCE_NONE},
    {"callflows", "listing_by_number", map_callflows_listing_by_number, KZ_DB_REDUCE_NONE},
    {"callflows", "listing_by_pattern", map_callflows_listing_by_pattern, KZ_DB_REDUCE_NONE},
    {"cdrs", "crossbar_listing", map_cdrs_crossbar_listing, KZ_DB_REDUCE_NONE},
    {"cdrs", "listing_by_owner", map_cdrs_listing_by_owner, KZ_DB_REDUCE_NONE},
    {"credentials", "lookup", map_credentials_lookup, KZ_DB_REDUCE_NONE},
    {"devices", "listing_by_macaddress", map_devices_listing_by_macaddress, KZ_DB_REDUCE_NONE},
    {"devices", "sip_credentials", map_devices_sip_credentials, KZ_DB_REDUCE_NONE},
};
const size_t kz_db_native_views_n = sizeof kz_db_native_views / sizeof kz_db_native_views[0];

const struct kz_db_native_view *kz_db_native_view_find(const char *ddoc, const char *view) {
  for (size_t i = 0; i < kz_db_native_views_n; i++)
    if (!strcmp(kz_db_native_views[i].ddoc, ddoc) && (!view || !strcmp(kz_db_native_views[i].view, view)))
      return &kz_db_native_views[i];
  return NULL;
}

int kz_db_map_run(const struct kz_db_native_view *v, const char *id, const json_t *doc, json_t **rows) {
  struct kz_db_emits e = {.rows = json_array()};
  *rows = NULL;
  if (!e.rows) return KZ_ENOMEM;
  int rc = v->map(&e, id, doc);
  if (rc == THROW) {
    json_array_clear(e.rows); /* couchjs drops the rows of a map that raised */
    rc = 0;
  }
  if (rc) {
    json_decref(e.rows);
    return rc;
  }
  *rows = e.rows;
  return 0;
}
