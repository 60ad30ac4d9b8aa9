/* seed.c — the seed planner: validates a seed file and lays out Kazoo's databases and documents for it (no I/O). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kz/apps.h"
#include "kz/apps_seed.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/prng.h"

/* The views the registrar queries, written as Kazoo ships them so a real
 * CouchDB computes what kz's db computes natively. */
static const char js_listing_by_realm[] =
    "function(doc) { if (doc.pvt_type != 'account' || doc.pvt_deleted || !doc.realm) return; "
    "emit(doc.realm.toLowerCase(), {'account_id': doc._id, 'account_db': doc.pvt_account_db, "
    "'account_name': doc.name}); }";
static const char js_sip_credentials[] =
    "function(doc) { if (doc.pvt_type != 'device' || !doc.sip || doc.pvt_deleted) return; "
    "var s = doc.sip; emit((s.username || '').toLowerCase(), {'username': s.username, "
    "'password': s.password, 'realm': s.realm, 'method': s.method || 'password', "
    "'authorizing_id': doc._id, 'authorizing_type': doc.pvt_type, 'owner_id': doc.owner_id, "
    "'enabled': doc.enabled !== false}); }";
static const char js_listing_by_number[] =
    "function(doc) { if (doc.pvt_type != 'callflow' || doc.pvt_deleted) return; "
    "for (var i in doc.numbers) emit(doc.numbers[i], null); }";

struct planner {
  struct kz_apps_seed_plan *plan;
  int64_t now;
  char *err;
  size_t errlen;
  size_t cap_dbs, cap_docs;
};

static int fail(struct planner *p, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct planner *p, const char *where, const char *fmt, ...) {
  if (p->err && p->errlen) {
    int n = snprintf(p->err, p->errlen, "%s%s", where, *where ? ": " : "");
    if (n >= 0 && (size_t)n < p->errlen) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
      va_end(ap);
    }
  }
  return KZ_EPROTO;
}

static int add_db(struct planner *p, const char *name) {
  struct kz_apps_seed_plan *pl = p->plan;
  if (pl->ndbs == p->cap_dbs) {
    size_t nc = p->cap_dbs ? p->cap_dbs * 2 : 8;
    char **n = kz_realloc(pl->dbs, nc * sizeof *n);
    if (!n) return KZ_ENOMEM;
    pl->dbs = n;
    p->cap_dbs = nc;
  }
  char *s = kz_strdup(name);
  if (!s) return KZ_ENOMEM;
  pl->dbs[pl->ndbs++] = s;
  return 0;
}

/* Adds `doc` (the plan takes the reference, also on failure). */
static int add_doc(struct planner *p, const char *db, const char *id, json_t *doc) {
  struct kz_apps_seed_plan *pl = p->plan;
  if (!doc) return KZ_ENOMEM;
  if (pl->ndocs == p->cap_docs) {
    size_t nc = p->cap_docs ? p->cap_docs * 2 : 16;
    struct kz_apps_seed_doc *n = kz_realloc(pl->docs, nc * sizeof *n);
    if (!n) {
      json_decref(doc);
      return KZ_ENOMEM;
    }
    pl->docs = n;
    p->cap_docs = nc;
  }
  struct kz_apps_seed_doc *d = &pl->docs[pl->ndocs];
  d->db = kz_strdup(db);
  d->id = kz_strdup(id);
  if (!d->db || !d->id || json_object_set_new(doc, "_id", json_string(id))) {
    kz_free(d->db);
    kz_free(d->id);
    json_decref(doc);
    return KZ_ENOMEM;
  }
  d->doc = doc;
  pl->ndocs++;
  return 0;
}

/* A derived 32-hex id: the same parent and name always give the same id. */
static void derive_id(const char *parent, const char *kind, const char *name, char out[33]) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s:%s:%s", parent, kind, name);
  static const char hex[] = "0123456789abcdef";
  uint64_t h[2] = {kz_hash64(buf, strlen(buf), 0x6b7a), kz_hash64(buf, strlen(buf), 0x73656564)};
  for (int i = 0; i < 32; i++) out[i] = hex[(h[i / 16] >> (60 - 4 * (i % 16))) & 15];
  out[32] = 0;
}

static bool is_hex32(const char *s) {
  if (strlen(s) != 32) return false;
  for (int i = 0; i < 32; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

/* Reads an optional string member; fails when present but not a string,
 * or when required and missing/empty. */
static int get_str(struct planner *p, const char *where, const json_t *o, const char *key, bool required,
                   const char **out) {
  const json_t *v = json_object_get(o, key);
  *out = NULL;
  if (!v || json_is_null(v)) {
    if (required) return fail(p, where, "\"%s\" is required", key);
    return 0;
  }
  if (!json_is_string(v) || (required && !json_string_length(v)))
    return fail(p, where, "\"%s\" must be a%s string", key, required ? " non-empty" : "");
  *out = json_string_value(v);
  return 0;
}

static int get_array(struct planner *p, const char *where, const json_t *o, const char *key,
                     const json_t **out) {
  const json_t *v = json_object_get(o, key);
  *out = v;
  if (v && !json_is_array(v)) return fail(p, where, "\"%s\" must be an array", key);
  return 0;
}

/* The pvt_* fields every document of an account carries. */
static int set_pvt(struct planner *p, json_t *d, const char *type, const char *acct_id, const char *acct_db) {
  int bad = json_object_set_new(d, "pvt_type", json_string(type));
  if (acct_id) bad |= json_object_set_new(d, "pvt_account_id", json_string(acct_id));
  if (acct_db) bad |= json_object_set_new(d, "pvt_account_db", json_string(acct_db));
  bad |= json_object_set_new(d, "pvt_created", json_integer(p->now));
  bad |= json_object_set_new(d, "pvt_modified", json_integer(p->now));
  bad |= json_object_set_new(d, "pvt_vsn", json_string("1"));
  return bad ? KZ_ENOMEM : 0;
}

static int design_doc(struct planner *p, const char *db, const char *name, const char *view, const char *map) {
  char id[64];
  snprintf(id, sizeof id, "_design/%s", name);
  json_t *d = json_pack("{s:s, s:{s:{s:s}}}", "language", "javascript", "views", view, "map", map);
  return add_doc(p, db, id, d);
}

static const char *str_or_empty(const json_t *v) {
  const char *s = json_string_value(v);
  return s ? s : "";
}

struct acct {
  const char *id, *db, *name, *realm;
};

static int plan_device(struct planner *p, const char *where, const json_t *dev, const struct acct *a,
                       const char *owner_id) {
  if (!json_is_object(dev)) return fail(p, where, "a device must be an object");
  const char *id, *name, *user, *pass, *type, *method;
  int rc;
  if ((rc = get_str(p, where, dev, "id", false, &id)) || (rc = get_str(p, where, dev, "name", true, &name)) ||
      (rc = get_str(p, where, dev, "username", true, &user)) ||
      (rc = get_str(p, where, dev, "password", true, &pass)) ||
      (rc = get_str(p, where, dev, "device_type", false, &type)) ||
      (rc = get_str(p, where, dev, "method", false, &method)))
    return rc;
  const json_t *en = json_object_get(dev, "enabled");
  if (en && !json_is_boolean(en)) return fail(p, where, "\"enabled\" must be true or false");
  if (method && strcmp(method, "password") && strcmp(method, "ip"))
    return fail(p, where, "\"method\" must be \"password\" or \"ip\"");
  char did[33];
  if (id) {
    if (!is_hex32(id)) return fail(p, where, "\"id\" must be 32 lower-case hex digits");
  } else {
    derive_id(a->id, "device", user, did);
    id = did;
  }
  json_t *d = json_pack("{s:s, s:s, s:b, s:{s:s, s:s, s:s, s:s, s:s}, s:{s:{s:[s,s]}}}", "name", name,
                        "device_type", type ? type : "sip_device", "enabled", en ? json_is_true(en) : 1, "sip",
                        "username", user, "password", pass, "realm", a->realm, "method",
                        method ? method : "password", "invite_format", "username", "media", "audio", "codecs",
                        "PCMU", "PCMA");
  if (!d) return KZ_ENOMEM;
  if (owner_id && json_object_set_new(d, "owner_id", json_string(owner_id))) {
    json_decref(d);
    return KZ_ENOMEM;
  }
  if ((rc = set_pvt(p, d, "device", a->id, a->db))) {
    json_decref(d);
    return rc;
  }
  return add_doc(p, a->db, id, d);
}

static int plan_user(struct planner *p, const char *where, const json_t *u, const struct acct *a) {
  if (!json_is_object(u)) return fail(p, where, "a user must be an object");
  const char *id, *username, *first, *last, *email, *number;
  const json_t *devs;
  int rc;
  if ((rc = get_str(p, where, u, "id", false, &id)) ||
      (rc = get_str(p, where, u, "username", true, &username)) ||
      (rc = get_str(p, where, u, "first_name", false, &first)) ||
      (rc = get_str(p, where, u, "last_name", false, &last)) ||
      (rc = get_str(p, where, u, "email", false, &email)) ||
      (rc = get_str(p, where, u, "number", false, &number)) || (rc = get_array(p, where, u, "devices", &devs)))
    return rc;
  char uid[33];
  if (id) {
    if (!is_hex32(id)) return fail(p, where, "\"id\" must be 32 lower-case hex digits");
  } else {
    derive_id(a->id, "user", username, uid);
    id = uid;
  }
  json_t *d = json_pack("{s:s, s:s, s:s, s:s}", "username", username, "first_name", first ? first : username,
                        "last_name", last ? last : "", "priv_level", "user");
  if (!d) return KZ_ENOMEM;
  int bad = 0;
  if (email) bad |= json_object_set_new(d, "email", json_string(email));
  if (number) bad |= json_object_set_new(d, "presence_id", json_string(number));
  if (bad || (rc = set_pvt(p, d, "user", a->id, a->db))) {
    json_decref(d);
    return bad ? KZ_ENOMEM : rc;
  }
  char uid_copy[33];
  snprintf(uid_copy, sizeof uid_copy, "%s", id);
  if ((rc = add_doc(p, a->db, uid_copy, d))) return rc;
  size_t i;
  const json_t *dev;
  json_array_foreach(devs, i, dev) {
    char w[200];
    snprintf(w, sizeof w, "%s.devices[%zu]", where, i);
    if ((rc = plan_device(p, w, dev, a, uid_copy))) return rc;
  }
  if (number) {
    if (!*number) return fail(p, where, "\"number\" must not be empty");
    char cfid[33];
    derive_id(a->id, "callflow", number, cfid);
    char cfname[160];
    snprintf(cfname, sizeof cfname, "%s %s", first ? first : username, number);
    json_t *cf = json_pack("{s:s, s:[s], s:[], s:{s:s, s:{s:s, s:i, s:b}, s:{}}}", "name", cfname, "numbers",
                           number, "patterns", "flow", "module", "user", "data", "id", uid_copy, "timeout", 20,
                           "can_call_self", 0, "children");
    if (!cf) return KZ_ENOMEM;
    if ((rc = set_pvt(p, cf, "callflow", a->id, a->db))) {
      json_decref(cf);
      return rc;
    }
    if ((rc = add_doc(p, a->db, cfid, cf))) return rc;
  }
  return 0;
}

static int plan_account(struct planner *p, const char *where, const json_t *ja) {
  if (!json_is_object(ja)) return fail(p, where, "an account must be an object");
  const char *id, *name, *realm, *tz;
  const json_t *users, *devs;
  int rc;
  if ((rc = get_str(p, where, ja, "id", false, &id)) || (rc = get_str(p, where, ja, "name", true, &name)) ||
      (rc = get_str(p, where, ja, "realm", true, &realm)) ||
      (rc = get_str(p, where, ja, "timezone", false, &tz)) || (rc = get_array(p, where, ja, "users", &users)) ||
      (rc = get_array(p, where, ja, "devices", &devs)))
    return rc;
  for (const char *c = realm; *c; c++)
    if (*c >= 'A' && *c <= 'Z') return fail(p, where, "\"realm\" must be lower-case (Kazoo matches it so)");
  char aid[33];
  if (id) {
    if (!is_hex32(id)) return fail(p, where, "\"id\" must be 32 lower-case hex digits");
    snprintf(aid, sizeof aid, "%s", id);
  } else {
    derive_id("", "account", realm, aid);
  }
  char db[KZ_APPS_ACCOUNT_DB_LEN];
  if (kz_apps_account_db(aid, db)) return fail(p, where, "bad account id");
  /* Realms are unique across accounts: the registrar could not tell two
   * accounts with one realm apart. */
  for (size_t i = 0; i < p->plan->ndocs; i++) {
    const json_t *o = p->plan->docs[i].doc;
    if (!strcmp(p->plan->docs[i].db, "accounts") &&
        !strcmp(str_or_empty(json_object_get(o, "pvt_type")), "account")) {
      if (!strcmp(str_or_empty(json_object_get(o, "realm")), realm))
        return fail(p, where, "realm \"%s\" is used by another account", realm);
      if (!strcmp(p->plan->docs[i].id, aid)) return fail(p, where, "account id %s appears twice", aid);
    }
  }
  struct acct a = {aid, db, name, realm};
  if ((rc = add_db(p, db))) return rc;
  for (int copy = 0; copy < 2; copy++) {
    json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:[], s:b}", "name", name, "realm", realm, "timezone",
                          tz ? tz : "UTC", "language", "en-us", "pvt_tree", "pvt_enabled", 1);
    if (!d) return KZ_ENOMEM;
    if ((rc = set_pvt(p, d, "account", aid, db))) {
      json_decref(d);
      return rc;
    }
    if ((rc = add_doc(p, copy ? db : "accounts", aid, d))) return rc;
  }
  if ((rc = design_doc(p, db, "devices", "sip_credentials", js_sip_credentials)) ||
      (rc = design_doc(p, db, "callflows", "listing_by_number", js_listing_by_number)))
    return rc;
  size_t i;
  const json_t *v;
  json_array_foreach(users, i, v) {
    char w[160];
    snprintf(w, sizeof w, "%s.users[%zu]", where, i);
    if ((rc = plan_user(p, w, v, &a))) return rc;
  }
  json_array_foreach(devs, i, v) {
    char w[160];
    snprintf(w, sizeof w, "%s.devices[%zu]", where, i);
    if ((rc = plan_device(p, w, v, &a, NULL))) return rc;
  }
  return 0;
}

static int plan_media(struct planner *p, const json_t *ms) {
  json_t *list = json_array(), *nodes = json_array();
  int rc = 0;
  if (!list || !nodes) {
    rc = KZ_ENOMEM;
    goto out;
  }
  size_t i;
  const json_t *m;
  json_array_foreach(ms, i, m) {
    char w[64];
    snprintf(w, sizeof w, "media_servers[%zu]", i);
    const char *name, *uri, *zone;
    if (!json_is_object(m)) {
      rc = fail(p, w, "a media server must be an object");
      goto out;
    }
    if ((rc = get_str(p, w, m, "name", true, &name)) || (rc = get_str(p, w, m, "uri", true, &uri)) ||
        (rc = get_str(p, w, m, "zone", false, &zone)))
      goto out;
    if (strncmp(uri, "sip:", 4)) {
      rc = fail(p, w, "\"uri\" must be a sip: URI");
      goto out;
    }
    if (json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "name", name, "uri", uri, "zone",
                                              zone ? zone : "local")) ||
        json_array_append_new(nodes, json_string(name))) {
      rc = KZ_ENOMEM;
      goto out;
    }
  }
  /* Kazoo keeps the FreeSWITCH nodes in system_config/ecallmgr
   * ("fs_nodes"); the SIP URIs are kz's addition for the proxy's
   * dispatcher list. */
  json_t *d = json_pack("{s:{s:O, s:O}}", "default", "fs_nodes", nodes, "media_servers", list);
  rc = add_doc(p, "system_config", "ecallmgr", d);
out:
  json_decref(list);
  json_decref(nodes);
  return rc;
}

int kz_apps_seed_plan(const json_t *seed, int64_t now_gregorian_s, struct kz_apps_seed_plan *out, char *err,
                      size_t errlen) {
  if (!out) return KZ_EINVAL;
  memset(out, 0, sizeof *out);
  if (err && errlen) err[0] = 0;
  if (!seed) return KZ_EINVAL;
  struct planner p = {.plan = out, .now = now_gregorian_s, .err = err, .errlen = errlen};
  if (!json_is_object(seed)) return fail(&p, "", "the seed must be a JSON object");
  const char *k;
  const json_t *v;
  json_object_foreach((json_t *)seed, k, v) {
    if (strcmp(k, "accounts") && strcmp(k, "media_servers") && strcmp(k, "comment"))
      return fail(&p, "", "unknown key \"%s\" (expected accounts, media_servers, comment)", k);
  }
  const json_t *accts, *ms;
  int rc;
  if ((rc = get_array(&p, "", seed, "accounts", &accts)) || (rc = get_array(&p, "", seed, "media_servers", &ms)))
    return rc;
  if ((rc = add_db(&p, "accounts")) || (rc = add_db(&p, "system_config")) ||
      (rc = design_doc(&p, "accounts", "accounts", "listing_by_realm", js_listing_by_realm)))
    return rc;
  size_t i;
  const json_t *a;
  json_array_foreach(accts, i, a) {
    char w[64];
    snprintf(w, sizeof w, "accounts[%zu]", i);
    if ((rc = plan_account(&p, w, a))) return rc;
  }
  if (ms && (rc = plan_media(&p, ms))) return rc;
  return 0;
}

void kz_apps_seed_plan_free(struct kz_apps_seed_plan *p) {
  if (!p) return;
  for (size_t i = 0; i < p->ndbs; i++) kz_free(p->dbs[i]);
  for (size_t i = 0; i < p->ndocs; i++) {
    kz_free(p->docs[i].db);
    kz_free(p->docs[i].id);
    json_decref(p->docs[i].doc);
  }
  kz_free(p->dbs);
  kz_free(p->docs);
  memset(p, 0, sizeof *p);
}

static bool ignored_key(const char *k) {
  return !strcmp(k, "_rev") || !strcmp(k, "pvt_created") || !strcmp(k, "pvt_modified");
}

bool kz_apps_seed_doc_same(const json_t *existing, const json_t *planned) {
  if (!json_is_object(existing) || !json_is_object(planned)) return false;
  const char *k;
  const json_t *v;
  size_t n_exist = 0, n_plan = 0;
  json_object_foreach((json_t *)existing, k, v) {
    if (ignored_key(k)) continue;
    n_exist++;
    if (!json_equal(v, json_object_get(planned, k))) return false;
  }
  json_object_foreach((json_t *)planned, k, v) {
    if (!ignored_key(k)) n_plan++;
  }
  return n_exist == n_plan;
}

int kz_apps_seed_doc_rebase(json_t *planned, const json_t *existing) {
  const json_t *rev = json_object_get(existing, "_rev");
  const json_t *created = json_object_get(existing, "pvt_created");
  if (rev && json_object_set(planned, "_rev", (json_t *)rev)) return KZ_ENOMEM;
  if (created && json_object_set(planned, "pvt_created", (json_t *)created)) return KZ_ENOMEM;
  return 0;
}
