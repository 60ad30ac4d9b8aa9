/* api.c — request routing of the db role, server-level endpoints and database create/info/delete. */
#include <string.h>

#include "db_int.h"
#include "kz/error.h"
#include "kz/mem.h"

/* ------------------------------------------------------------------ */
/* Request helpers                                                     */

static bool method_is(const struct kz_db_req *q, const char *m) { return kz_slice_eq_cstr(q->method, m); }

int kz_db_q_bool(struct kz_db_req *q, struct kz_db_reply *r, const char *key, bool *out) {
  struct kz_slice v = kz_http_query_get(&q->query, key);
  if (!v.p) return 0;
  if (kz_slice_eq_cstr(v, "true")) {
    *out = true;
  } else if (kz_slice_eq_cstr(v, "false")) {
    *out = false;
  } else {
    char msg[160];
    snprintf(msg, sizeof msg, "Invalid boolean parameter: \"%.100s\"", v.p);
    kz_db_reply_error(r, 400, "query_parse_error", msg);
    return KZ_EPROTO;
  }
  return 0;
}

int kz_db_q_u64(struct kz_db_req *q, struct kz_db_reply *r, const char *key, uint64_t *out,
                bool *present) {
  struct kz_slice v = kz_http_query_get(&q->query, key);
  if (present) *present = v.p != NULL;
  if (!v.p) return 0;
  if (kz_slice_to_u64(v, UINT64_C(1) << 53, out)) {
    char msg[160];
    snprintf(msg, sizeof msg, "Invalid value for positive integer: \"%.100s\"", v.p);
    kz_db_reply_error(r, 400, "query_parse_error", msg);
    return KZ_EPROTO;
  }
  return 0;
}

int kz_db_q_json(struct kz_db_req *q, struct kz_db_reply *r, const char *key, json_t **out) {
  *out = NULL;
  struct kz_slice v = kz_http_query_get(&q->query, key);
  if (!v.p) return 0;
  json_error_t err;
  *out = json_loadb(v.p, v.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
  if (!*out) {
    char msg[200];
    snprintf(msg, sizeof msg, "Invalid JSON in query parameter %s", key);
    kz_db_reply_error(r, 400, "bad_request", msg);
    return KZ_EPROTO;
  }
  return 0;
}

json_t *kz_db_json_parse(const char *p, size_t n) {
  /* JSON_ALLOW_NUL: CouchDB stores strings holding U+0000; they are
   * kept escaped ("\u0000") in stored text and in replies. */
  /* The direct reader first (impl/json); it leaves anything it is not
   * sure of, errors included, to jansson. */
  json_t *v = NULL;
  if (kz_json_parse(p, n, KZ_JSON_ALLOW_NUL, KZ_DB_JSON_DEPTH, &v) == 0) return v;
  json_error_t err;
  return json_loadb(p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
}

int kz_db_body_json(struct kz_db_req *q, struct kz_db_reply *r, bool any, json_t **out) {
  *out = NULL;
  if (q->body_len == 0) {
    kz_db_reply_error(r, 400, "bad_request", "invalid UTF-8 JSON");
    return KZ_EPROTO;
  }
  *out = kz_db_json_parse(q->body, q->body_len);
  if (!*out) {
    kz_db_reply_error(r, 400, "bad_request", "invalid UTF-8 JSON");
    return KZ_EPROTO;
  }
  if (!any && !json_is_object(*out)) {
    json_decref(*out);
    *out = NULL;
    kz_db_reply_error(r, 400, "bad_request", "Request body must be a JSON object");
    return KZ_EPROTO;
  }
  return 0;
}

int kz_db_require_json(struct kz_db_req *q, struct kz_db_reply *r) {
  struct kz_slice ct = kz_http_msg_header(q->msg, "Content-Type");
  struct kz_slice base = ct;
  long semi = ct.p ? kz_slice_find_char(ct, ';') : -1;
  if (semi >= 0) base = kz_slice_trim(kz_slice_sub(ct, 0, (size_t)semi));
  if (!ct.p || !kz_slice_caseeq_cstr(base, "application/json")) {
    kz_db_reply_error(r, 415, "bad_content_type", "Content-Type must be application/json");
    return KZ_EPROTO;
  }
  return 0;
}

static void method_not_allowed(struct kz_db_reply *r, const char *allowed) {
  char msg[96];
  snprintf(msg, sizeof msg, "Only %s allowed", allowed);
  kz_db_reply_error(r, 405, "method_not_allowed", msg);
  kz_buf_printf(&r->extra, "Allow: %s\r\n", allowed);
}

/* ------------------------------------------------------------------ */
/* Server-level endpoints                                              */

static void welcome(struct kz_db_req *q, struct kz_db_reply *r) {
  kz_db_reply_json(r, 200,
                   json_pack("{s:s,s:s,s:s,s:s,s:[s,s],s:{s:s}}", "couchdb", "Welcome", "version",
                             KZ_DB_VERSION, "git_sha", "kz", "uuid", q->db->uuid, "features",
                             "pluggable-storage-engines", "scheduler", "vendor", "name", "kz"));
}

static void all_dbs(struct kz_db_req *q, struct kz_db_reply *r) {
  bool desc = false;
  uint64_t limit = UINT64_MAX >> 12, skip = 0;
  if (kz_db_q_bool(q, r, "descending", &desc) || kz_db_q_u64(q, r, "limit", &limit, NULL) ||
      kz_db_q_u64(q, r, "skip", &skip, NULL))
    return;
  sqlite3_stmt *st = kz_db_sql(q->db, desc ? "SELECT name FROM dbs ORDER BY name DESC LIMIT ? OFFSET ?"
                                           : "SELECT name FROM dbs ORDER BY name LIMIT ? OFFSET ?");
  if (!st) return kz_db_reply_kzerr(r, KZ_EIO);
  sqlite3_bind_int64(st, 1, (int64_t)limit);
  sqlite3_bind_int64(st, 2, (int64_t)skip);
  json_t *a = json_array();
  while (sqlite3_step(st) == SQLITE_ROW)
    json_array_append_new(a, json_string((const char *)sqlite3_column_text(st, 0)));
  kz_db_sql_done(q->db, st);
  kz_db_reply_json(r, 200, a);
}

static void uuids(struct kz_db_req *q, struct kz_db_reply *r) {
  uint64_t count = 1;
  if (kz_db_q_u64(q, r, "count", &count, NULL)) return;
  if (count > 1000) return kz_db_reply_error(r, 400, "bad_request", "count parameter too large");
  json_t *a = json_array();
  for (uint64_t i = 0; i < count; i++) {
    char u[33];
    kz_db_uuid(q->db, u);
    json_array_append_new(a, json_string(u));
  }
  kz_db_reply_json(r, 200, json_pack("{s:o}", "uuids", a));
  /* Fresh ids must never be served from a cache. */
  kz_buf_append_cstr(&r->extra, "Pragma: no-cache\r\n");
}

static int server_endpoint(struct kz_db_req *q, struct kz_db_reply *r, const char *name) {
  bool get = method_is(q, "GET") || method_is(q, "HEAD");
  if (!strcmp(name, "_all_dbs")) {
    if (!get) method_not_allowed(r, "GET,HEAD");
    else all_dbs(q, r);
  } else if (!strcmp(name, "_uuids")) {
    if (!get) method_not_allowed(r, "GET,HEAD");
    else uuids(q, r);
  } else if (!strcmp(name, "_up")) {
    if (!get) method_not_allowed(r, "GET,HEAD");
    else kz_db_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
  } else if (!strcmp(name, "_session")) {
    kz_db_reply_json(r, 200,
                     json_pack("{s:b,s:{s:n,s:[s]},s:{s:s,s:[s]}}", "ok", 1, "userCtx", "name",
                               "roles", "_admin", "info", "authentication_handlers", "default",
                               "authenticated", "default"));
  } else if (!strcmp(name, "_active_tasks")) {
    if (!get) method_not_allowed(r, "GET,HEAD");
    else kz_db_reply_json(r, 200, kz_db_repl_tasks(q->db));
  } else {
    return 0;
  }
  return 1;
}

/* ------------------------------------------------------------------ */
/* Database-level endpoints                                            */

static void db_info_reply(struct kz_db_req *q, struct kz_db_reply *r, const char *name,
                          const struct kz_db_dbinfo *i) {
  (void)q;
  kz_db_reply_json(
      r, 200,
      json_pack("{s:s,s:s,s:I,s:{s:I,s:I,s:I},s:{},s:I,s:I,s:i,s:b,s:{s:i,s:i,s:i,s:i},s:s}",
                "db_name", name, "purge_seq", "0", "update_seq", (json_int_t)i->update_seq, "sizes",
                "file", (json_int_t)i->size_bytes, "external", (json_int_t)i->size_bytes, "active",
                (json_int_t)i->size_bytes, "props", "doc_del_count", (json_int_t)i->doc_del_count,
                "doc_count", (json_int_t)i->doc_count, "disk_format_version", 8, "compact_running",
                0, "cluster", "q", 1, "n", 1, "w", 1, "r", 1, "instance_start_time", "0"));
}

static void db_create(struct kz_db_req *q, struct kz_db_reply *r, const char *name) {
  struct kz_db *db = q->db;
  int rc = kz_db_store_begin(db);
  if (!rc) rc = kz_db_store_db_create(db, name);
  if (!rc) rc = kz_db_store_commit(db);
  else kz_db_store_rollback(db);
  if (rc == KZ_EEXIST)
    return kz_db_reply_error(r, 412, "file_exists",
                             "The database could not be created, the file already exists.");
  if (rc) return kz_db_reply_kzerr(r, rc);
  kz_db_reply_json(r, 201, json_pack("{s:b}", "ok", 1));
}

static void db_delete(struct kz_db_req *q, struct kz_db_reply *r, const char *name) {
  struct kz_db *db = q->db;
  if (kz_http_query_get(&q->query, "rev").p)
    return kz_db_reply_error(r, 400, "bad_request",
                             "You tried to DELETE a database with a ?rev= parameter. Did you mean "
                             "to DELETE a document instead?");
  struct kz_db_dbinfo info;
  int rc = kz_db_store_db_get(db, name, &info);
  if (rc == KZ_ENOENT) return kz_db_reply_error(r, 404, "not_found", "Database does not exist.");
  if (!rc) rc = kz_db_store_begin(db);
  if (!rc) {
    rc = kz_db_store_db_delete(db, name);
    if (!rc) rc = kz_db_store_commit(db);
    else kz_db_store_rollback(db);
  }
  if (rc) return kz_db_reply_kzerr(r, rc);
  kz_db_changes_notify(db, info.id);
  kz_db_reply_json(r, 200, json_pack("{s:b}", "ok", 1));
}

static char *join_segments(const struct kz_http_strlist *l, size_t from) {
  struct kz_buf b = {0};
  for (size_t i = from; i < l->n; i++) {
    if (i > from && kz_buf_append_byte(&b, '/')) goto nomem;
    if (kz_buf_append_slice(&b, l->items[i])) goto nomem;
  }
  if (kz_buf_append_byte(&b, 0)) goto nomem;
  return (char *)b.data;
nomem:
  kz_buf_free(&b);
  return NULL;
}

/* Routes /db/<seg1>/... once the database exists. */
static int db_sub(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info) {
  const char *s1 = q->seg.items[1].p;
  size_t n = q->seg.n;
  bool get = method_is(q, "GET") || method_is(q, "HEAD");
  bool post = method_is(q, "POST");
  if (n == 2 && !strncmp(s1, "_local/", 7)) {
    kz_db_api_local(q, r, info, s1 + 7);
    return 0;
  }
  /* "_design%2Fname" arrives as one segment: a plain document id. */
  if (s1[0] == '_' && strncmp(s1, "_design/", 8)) {
    if (!strcmp(s1, "_all_docs") && n == 2) {
      if (!get && !post) method_not_allowed(r, "GET,HEAD,POST");
      else kz_db_api_all_docs(q, r, info);
      return 0;
    }
    if (!strcmp(s1, "_bulk_docs") && n == 2) {
      if (!post) method_not_allowed(r, "POST");
      else kz_db_api_bulk_docs(q, r, info);
      return 0;
    }
    if (!strcmp(s1, "_changes") && n == 2) {
      if (!get && !post) {
        method_not_allowed(r, "GET,HEAD,POST");
        return 0;
      }
      return kz_db_api_changes(q, r, info);
    }
    if (!strcmp(s1, "_revs_diff") && n == 2) {
      if (!post) method_not_allowed(r, "POST");
      else kz_db_api_revs_diff(q, r, info);
      return 0;
    }
    if (!strcmp(s1, "_bulk_get") && n == 2) {
      if (!post) method_not_allowed(r, "POST");
      else kz_db_api_bulk_get(q, r, info);
      return 0;
    }
    if ((!strcmp(s1, "_ensure_full_commit") || !strcmp(s1, "_compact") ||
         !strcmp(s1, "_view_cleanup")) && n == 2) {
      /* Every commit is already durable; there is nothing to compact. */
      if (!post) method_not_allowed(r, "POST");
      else kz_db_reply_json(r, s1[1] == 'e' ? 201 : 202,
                            json_pack("{s:b,s:s}", "ok", 1, "instance_start_time", "0"));
      return 0;
    }
    if (!strcmp(s1, "_security") && n == 2) {
      if (get) kz_db_reply_json(r, 200, json_object());
      else if (method_is(q, "PUT")) kz_db_reply_json(r, 200, json_pack("{s:b}", "ok", 1));
      else method_not_allowed(r, "GET,HEAD,PUT");
      return 0;
    }
    if (!strcmp(s1, "_revs_limit") && n == 2) {
      if (get) kz_db_reply_json(r, 200, json_integer(1000));
      else if (method_is(q, "PUT")) kz_db_reply_json(r, 200, json_pack("{s:b}", "ok", 1));
      else method_not_allowed(r, "GET,HEAD,PUT");
      return 0;
    }
    if ((!strcmp(s1, "_find") || !strcmp(s1, "_explain")) && n == 2) {
      if (!post) method_not_allowed(r, "POST");
      else kz_db_api_find(q, r, info, s1[1] == 'e');
      return 0;
    }
    if (!strcmp(s1, "_index")) {
      kz_db_api_index(q, r, info);
      return 0;
    }
    if (!strcmp(s1, "_local")) {
      if (n != 3) {
        kz_db_reply_error(r, 400, "bad_request", "Invalid _local document path");
        return 0;
      }
      kz_db_api_local(q, r, info, q->seg.items[2].p);
      return 0;
    }
    if (!strcmp(s1, "_design")) {
      if (n < 3) {
        kz_db_reply_error(r, 400, "illegal_docid", "Document id must not be empty");
        return 0;
      }
      if (n == 5 && !strcmp(q->seg.items[3].p, "_view")) {
        if (!get && !post) method_not_allowed(r, "GET,HEAD,POST");
        else kz_db_api_view(q, r, info, q->seg.items[2].p, q->seg.items[4].p);
        return 0;
      }
      if (n >= 4 && q->seg.items[3].p[0] == '_') {
        kz_db_reply_error(r, 501, "not_implemented", "Only views of design documents are implemented");
        return 0;
      }
      char id[600];
      if (q->seg.items[2].len > 512) {
        kz_db_reply_error(r, 400, "illegal_docid", "Document id is too long");
        return 0;
      }
      snprintf(id, sizeof id, "_design/%s", q->seg.items[2].p);
      char *att = n >= 4 ? join_segments(&q->seg, 3) : NULL;
      if (n >= 4 && !att) kz_db_reply_kzerr(r, KZ_ENOMEM);
      else kz_db_api_doc(q, r, info, id, att);
      kz_free(att);
      return 0;
    }
    kz_db_reply_error(r, 400, "illegal_docid", "Only reserved document ids may start with underscore.");
    return 0;
  }
  char *att = n >= 3 ? join_segments(&q->seg, 2) : NULL;
  if (n >= 3 && !att) kz_db_reply_kzerr(r, KZ_ENOMEM);
  else kz_db_api_doc(q, r, info, s1, att);
  kz_free(att);
  return 0;
}

int kz_db_dispatch(struct kz_db_req *q, struct kz_db_reply *r) {
  struct kz_db *db = q->db;
  /* "/db/" is "/db", as in CouchDB (PouchDB asks for its databases
   * with the slash): the empty last segment is dropped. */
  if (q->seg.n == 2 && q->seg.items[1].len == 0) q->seg.n = 1;
  size_t n = q->seg.n;
  if (n == 0) {
    if (method_is(q, "GET") || method_is(q, "HEAD")) welcome(q, r);
    else method_not_allowed(r, "GET,HEAD");
    return 0;
  }
  const char *name = q->seg.items[0].p;
  if (n == 1 && !strcmp(name, "_replicate")) {
    if (!method_is(q, "POST")) {
      method_not_allowed(r, "POST");
      return 0;
    }
    return kz_db_api_replicate(q, r);
  }
  if (name[0] == '_' && n == 1 && server_endpoint(q, r, name)) return 0;
  if (!kz_db_name_valid(name)) {
    char msg[400];
    snprintf(msg, sizeof msg,
             "Name: '%.200s'. Only lowercase characters (a-z), digits (0-9), and any of the "
             "characters _, $, (, ), +, -, and / are allowed. Must begin with a letter.",
             name);
    kz_db_reply_error(r, 400, "illegal_database_name", msg);
    return 0;
  }
  if (n == 1 && method_is(q, "PUT")) {
    db_create(q, r, name);
    return 0;
  }
  if (n == 1 && method_is(q, "DELETE")) {
    db_delete(q, r, name);
    return 0;
  }
  struct kz_db_dbinfo info;
  int rc = kz_db_store_db_get(db, name, &info);
  if (rc == KZ_ENOENT) {
    kz_db_reply_error(r, 404, "not_found", "Database does not exist.");
    return 0;
  }
  if (rc) {
    kz_db_reply_kzerr(r, rc);
    return 0;
  }
  if (n == 1) {
    if (method_is(q, "GET") || method_is(q, "HEAD")) {
      if ((rc = kz_db_store_db_counts(db, &info))) kz_db_reply_kzerr(r, rc);
      else db_info_reply(q, r, name, &info);
    }
    else if (method_is(q, "POST")) kz_db_api_post_doc(q, r, &info);
    else method_not_allowed(r, "DELETE,GET,HEAD,POST,PUT");
    return 0;
  }
  return db_sub(q, r, &info);
}
