/* mango.c — CouchDB's Mango query API: POST /db/_find and _explain with selectors, sort, fields and bookmarks; json indexes in /db/_index. */
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "db_int.h"
#include "kz/error.h"
#include "kz/mem.h"

/* Selectors follow CouchDB 3's Mango: a selector object is the $and of
 * its members; a member is a combination operator ($and, $or, $nor,
 * $not), a condition operator applied to the value at hand, or a field
 * name (dots walk into sub-objects, "\." is a literal dot) whose
 * condition is either an operator object, a plain object (more nested
 * fields, as Mango normalises {"a":{"b":1}} to {"a.b":{"$eq":1}}) or any
 * other value (implicit $eq).  Every condition except $exists:false,
 * and $not around it, fails on a missing field.  Values compare with
 * CouchDB's view collation (kz_db_collate), as mango_json:cmp does.
 * $regex is a POSIX extended regular expression (libc regcomp), not
 * PCRE as in CouchDB; the shorthands \d \w \s (and \D \W \S) are
 * rewritten into POSIX classes, but lookarounds, lazy quantifiers and
 * inline flags like (?i) are not understood (the query answers 400).
 *
 * Execution: the documents are scanned in _id order (the _all_docs
 * index).  A json index created through /_index is "used" when every
 * one of its fields is constrained by the selector (an $eq or range
 * condition at the top level) or when the sort asks for its fields: as
 * in CouchDB the result then holds only documents that have all the
 * index's fields, ordered by them.  kz does not keep a separate B-tree
 * for Mango indexes — selection always reads each document once — but
 * the answers (rows and order) are the ones CouchDB gives. */

enum mop {
  M_AND, M_OR, M_NOR, M_NOT, M_FIELD, M_EQ, M_NE, M_GT, M_GTE, M_LT, M_LTE, M_IN, M_NIN, M_EXISTS,
  M_TYPE, M_SIZE, M_MOD, M_REGEX, M_ALL, M_ELEMMATCH, M_ALLMATCH, M_BEGINSWITH,
};

struct mnode {
  enum mop op;
  char **path; /* M_FIELD: the path's parts */
  size_t npath;
  json_t *arg; /* leaf operators: the operand */
  regex_t re;
  bool has_re;
  struct mnode **kids;
  size_t nkids;
};

static const struct {
  const char *name;
  enum mop op;
} ops[] = {
    {"$and", M_AND}, {"$or", M_OR}, {"$nor", M_NOR}, {"$not", M_NOT}, {"$eq", M_EQ}, {"$ne", M_NE},
    {"$gt", M_GT}, {"$gte", M_GTE}, {"$lt", M_LT}, {"$lte", M_LTE}, {"$in", M_IN}, {"$nin", M_NIN},
    {"$exists", M_EXISTS}, {"$type", M_TYPE}, {"$size", M_SIZE}, {"$mod", M_MOD}, {"$regex", M_REGEX},
    {"$all", M_ALL}, {"$elemMatch", M_ELEMMATCH}, {"$allMatch", M_ALLMATCH}, {"$beginsWith", M_BEGINSWITH},
};

static void mnode_free(struct mnode *n) {
  if (!n) return;
  for (size_t i = 0; i < n->npath; i++) kz_free(n->path[i]);
  kz_free(n->path);
  json_decref(n->arg);
  if (n->has_re) regfree(&n->re);
  for (size_t i = 0; i < n->nkids; i++) mnode_free(n->kids[i]);
  kz_free(n->kids);
  kz_free(n);
}

struct perr {
  int status;
  const char *error;
  char reason[200];
};

static struct mnode *mnode_new(enum mop op) {
  struct mnode *n = kz_calloc(1, sizeof *n);
  if (n) n->op = op;
  return n;
}

static int add_kid(struct mnode *n, struct mnode *k) {
  struct mnode **nk = kz_realloc(n->kids, (n->nkids + 1) * sizeof *nk);
  if (!nk) {
    mnode_free(k);
    return KZ_ENOMEM;
  }
  n->kids = nk;
  n->kids[n->nkids++] = k;
  return 0;
}

/* Splits "a.b\.c" into {"a", "b.c"}. */
static int split_path(const char *f, char ***out, size_t *n) {
  *out = NULL;
  *n = 0;
  size_t len = strlen(f);
  char *cur = kz_malloc(len + 1);
  if (!cur) return KZ_ENOMEM;
  size_t k = 0;
  int rc = 0;
  for (size_t i = 0; i <= len && !rc; i++) {
    if (i < len && f[i] == '\\' && i + 1 < len && f[i + 1] == '.') {
      cur[k++] = '.';
      i++;
      continue;
    }
    if (i == len || f[i] == '.') {
      char **np = kz_realloc(*out, (*n + 1) * sizeof *np);
      char *part = kz_malloc(k + 1);
      if (!np || !part) {
        if (np) *out = np;
        kz_free(part);
        rc = KZ_ENOMEM;
        break;
      }
      *out = np;
      memcpy(part, cur, k);
      part[k] = 0;
      (*out)[(*n)++] = part;
      k = 0;
      continue;
    }
    cur[k++] = f[i];
  }
  kz_free(cur);
  return rc;
}

static struct mnode *parse_sel(const json_t *sel, struct perr *e, int depth);

/* The condition of a field: operators, nested fields, or an implicit
 * $eq. */
static struct mnode *parse_cond(const json_t *v, struct perr *e, int depth) {
  if (json_is_object(v) && json_object_size(v)) return parse_sel(v, e, depth + 1);
  struct mnode *n = mnode_new(M_EQ);
  if (n) n->arg = json_incref((json_t *)v);
  return n;
}

static struct mnode *bad(struct perr *e, struct mnode *n, const char *error, const char *fmt, const char *x) {
  e->status = 400;
  e->error = error;
  snprintf(e->reason, sizeof e->reason, fmt, x);
  mnode_free(n);
  return NULL;
}

/* Rewrites the PCRE shorthands Mango users write (\d \w \s and their
 * negations) into POSIX classes, inside and outside brackets, so
 * regcomp understands them.  Returns a new string or NULL. */
static char *pcre_to_ere(const char *in) {
  struct kz_buf b = {0};
  bool bracket = false;
  int rc = 0;
  for (const char *p = in; *p && !rc; p++) {
    if (*p == '\\' && p[1]) {
      const char *in_br = NULL, *out_br = NULL;
      switch (p[1]) {
      case 'd': in_br = "0-9"; out_br = "[0-9]"; break;
      case 'D': out_br = "[^0-9]"; break;
      case 'w': in_br = "A-Za-z0-9_"; out_br = "[A-Za-z0-9_]"; break;
      case 'W': out_br = "[^A-Za-z0-9_]"; break;
      case 's': in_br = "[:space:]"; out_br = "[[:space:]]"; break;
      case 'S': out_br = "[^[:space:]]"; break;
      default: break;
      }
      const char *rep = bracket ? in_br : out_br;
      if (rep) {
        rc = kz_buf_append_cstr(&b, rep);
        p++;
        continue;
      }
      if (!bracket) {
        rc = kz_buf_append(&b, p, 2);
        p++;
        continue;
      }
    }
    if (*p == '[' && !bracket) {
      bracket = true;
      rc = kz_buf_append_byte(&b, '[');
      /* A leading ^ or ] belongs to the bracket expression. */
      if (!rc && p[1] == '^') rc = kz_buf_append_byte(&b, *++p);
      if (!rc && p[1] == ']') rc = kz_buf_append_byte(&b, *++p);
      continue;
    }
    if (*p == ']' && bracket) bracket = false;
    rc = kz_buf_append_byte(&b, (uint8_t)*p);
  }
  if (!rc) rc = kz_buf_append_byte(&b, 0);
  if (rc) {
    kz_buf_free(&b);
    return NULL;
  }
  return (char *)b.data;
}

static const char *const type_names[] = {"null", "boolean", "number", "string", "array", "object"};

static struct mnode *parse_op(const char *name, const json_t *arg, struct perr *e, int depth) {
  enum mop op = M_EQ;
  bool found = false;
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
    if (!strcmp(ops[i].name, name)) {
      op = ops[i].op;
      found = true;
    }
  if (!found) return bad(e, NULL, "invalid_operator", "Invalid operator: %.100s", name);
  struct mnode *n = mnode_new(op);
  if (!n) return NULL;
  switch (op) {
  case M_AND:
  case M_OR:
  case M_NOR: {
    if (!json_is_array(arg)) return bad(e, n, "bad_arg", "Bad argument for operator %s: expected a list", name);
    size_t i;
    json_t *s;
    json_array_foreach(arg, i, s) {
      if (!json_is_object(s))
        return bad(e, n, "bad_arg", "Bad argument for operator %s: expected a list of selectors", name);
      struct mnode *k = parse_sel(s, e, depth + 1);
      if (!k || add_kid(n, k)) {
        mnode_free(n);
        return NULL;
      }
    }
    return n;
  }
  case M_NOT:
  case M_ELEMMATCH:
  case M_ALLMATCH: {
    if (!json_is_object(arg)) return bad(e, n, "bad_arg", "Bad argument for operator %s: expected a selector", name);
    struct mnode *k = parse_sel(arg, e, depth + 1);
    if (!k || add_kid(n, k)) {
      mnode_free(n);
      return NULL;
    }
    return n;
  }
  case M_IN:
  case M_NIN:
  case M_ALL:
    if (!json_is_array(arg)) return bad(e, n, "bad_arg", "Bad argument for operator %s: expected a list", name);
    break;
  case M_EXISTS:
    if (!json_is_boolean(arg)) return bad(e, n, "bad_arg", "Bad argument for operator %s: expected a boolean", name);
    break;
  case M_TYPE: {
    bool ok = false;
    for (size_t i = 0; i < 6; i++) ok = ok || (json_is_string(arg) && !strcmp(json_string_value(arg), type_names[i]));
    if (!ok) return bad(e, n, "bad_arg", "Bad argument for operator %s: expected a type name", name);
    break;
  }
  case M_SIZE:
    if (!json_is_integer(arg) || json_integer_value(arg) < 0)
      return bad(e, n, "bad_arg", "Bad argument for operator %s: expected a non-negative integer", name);
    break;
  case M_MOD:
    if (!json_is_array(arg) || json_array_size(arg) != 2 || !json_is_integer(json_array_get(arg, 0)) ||
        !json_is_integer(json_array_get(arg, 1)) || json_integer_value(json_array_get(arg, 0)) == 0)
      return bad(e, n, "bad_arg", "Bad argument for operator %s: expected [Divisor, Remainder], Divisor != 0", name);
    break;
  case M_REGEX:
    if (!json_is_string(arg)) return bad(e, n, "bad_arg", "Bad argument for operator %s: expected a string", name);
    {
      char *ere = pcre_to_ere(json_string_value(arg));
      if (!ere) {
        mnode_free(n);
        return NULL;
      }
      int bad_re = regcomp(&n->re, ere, REG_EXTENDED | REG_NOSUB);
      kz_free(ere);
      if (bad_re) return bad(e, n, "bad_arg", "Bad argument for operator %s: invalid regular expression", name);
    }
    n->has_re = true;
    break;
  case M_BEGINSWITH:
    if (!json_is_string(arg)) return bad(e, n, "bad_arg", "Bad argument for operator %s: expected a string", name);
    break;
  default:
    break;
  }
  n->arg = json_incref((json_t *)arg);
  return n;
}

static struct mnode *parse_sel(const json_t *sel, struct perr *e, int depth) {
  if (depth > 100) return bad(e, NULL, "invalid_selector", "%s", "Selector is nested too deeply");
  if (!json_is_object(sel)) return bad(e, NULL, "invalid_selector", "%s", "Selector must be a JSON object");
  struct mnode *and = mnode_new(M_AND);
  if (!and) return NULL;
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)sel, k, v) {
    struct mnode *c;
    if (k[0] == '$') {
      c = parse_op(k, v, e, depth);
    } else {
      c = mnode_new(M_FIELD);
      if (c && split_path(k, &c->path, &c->npath)) {
        mnode_free(c);
        c = NULL;
      }
      if (c) {
        struct mnode *cond = parse_cond(v, e, depth);
        if (!cond || add_kid(c, cond)) {
          mnode_free(c);
          c = NULL;
        }
      }
    }
    if (!c || add_kid(and, c)) {
      mnode_free(and);
      return NULL;
    }
  }
  return and;
}

/* ------------------------------------------------------------------ */
/* Matching                                                            */

static const json_t *get_path(const json_t *v, char *const *path, size_t n) {
  for (size_t i = 0; i < n && v; i++) v = json_is_object(v) ? json_object_get(v, path[i]) : NULL;
  return v;
}

static bool eq(const json_t *a, const json_t *b) { return kz_db_collate(a, b) == 0; }

static bool is_str(const json_t *v, const char *s) { return json_is_string(v) && !strcmp(json_string_value(v), s); }

static bool in_list(const json_t *v, const json_t *list) {
  size_t i;
  json_t *x;
  json_array_foreach(list, i, x) if (eq(v, x)) return true;
  return false;
}

static bool match(const struct mnode *n, const json_t *v) {
  switch (n->op) {
  case M_AND:
    for (size_t i = 0; i < n->nkids; i++)
      if (!match(n->kids[i], v)) return false;
    return true;
  case M_OR:
    for (size_t i = 0; i < n->nkids; i++)
      if (match(n->kids[i], v)) return true;
    return n->nkids == 0;
  case M_NOR:
    for (size_t i = 0; i < n->nkids; i++)
      if (match(n->kids[i], v)) return false;
    return true;
  case M_NOT:
    return !match(n->kids[0], v);
  case M_FIELD:
    return match(n->kids[0], get_path(v, n->path, n->npath));
  case M_EXISTS:
    return (v != NULL) == json_is_true(n->arg);
  default:
    break;
  }
  if (!v) return false; /* every other condition needs the field */
  switch (n->op) {
  case M_EQ:
    return eq(v, n->arg);
  case M_NE:
    return !eq(v, n->arg);
  case M_GT:
    return kz_db_collate(v, n->arg) > 0;
  case M_GTE:
    return kz_db_collate(v, n->arg) >= 0;
  case M_LT:
    return kz_db_collate(v, n->arg) < 0;
  case M_LTE:
    return kz_db_collate(v, n->arg) <= 0;
  case M_IN:
  case M_NIN: {
    bool any = false;
    if (json_is_array(v)) {
      size_t i;
      json_t *x;
      json_array_foreach(v, i, x) any = any || in_list(x, n->arg);
    } else {
      any = in_list(v, n->arg);
    }
    return n->op == M_IN ? any : !any;
  }
  case M_TYPE: {
    const char *t = json_string_value(n->arg);
    const char *have = json_is_null(v) ? "null" : json_is_boolean(v) ? "boolean" : json_is_number(v) ? "number"
                     : json_is_string(v) ? "string" : json_is_array(v) ? "array" : "object";
    return !strcmp(t, have);
  }
  case M_SIZE:
    return json_is_array(v) && (json_int_t)json_array_size(v) == json_integer_value(n->arg);
  case M_MOD: {
    if (!json_is_integer(v)) return false;
    json_int_t d = json_integer_value(json_array_get(n->arg, 0)), r = json_integer_value(json_array_get(n->arg, 1));
    json_int_t x = json_integer_value(v);
    if (d == -1) return r == 0; /* x % -1 is 0, and INT64_MIN % -1 traps */
    return x % d == r;          /* C's %, like Erlang's rem, keeps the dividend's sign */
  }
  case M_REGEX:
    return json_is_string(v) && regexec(&n->re, json_string_value(v), 0, NULL, 0) == 0;
  case M_BEGINSWITH:
    return json_is_string(v) && json_string_length(v) >= json_string_length(n->arg) &&
           !memcmp(json_string_value(v), json_string_value(n->arg), json_string_length(n->arg));
  case M_ALL: {
    if (!json_is_array(v)) return false;
    size_t i;
    json_t *want;
    json_array_foreach(n->arg, i, want) if (!in_list(want, v)) return false;
    return true;
  }
  case M_ELEMMATCH:
  case M_ALLMATCH: {
    if (!json_is_array(v) || json_array_size(v) == 0) return false;
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
      bool m = match(n->kids[0], x);
      if (n->op == M_ELEMMATCH && m) return true;
      if (n->op == M_ALLMATCH && !m) return false;
    }
    return n->op == M_ALLMATCH;
  }
  default:
    return false;
  }
}

/* Fields the selector constrains with $eq or a range at its top level
 * (through nested $and and nested field objects): what makes a json
 * index usable, as in mango_selector:range/indexable fields. */
static void indexable_fields(const struct mnode *n, const char *prefix, json_t *out) {
  if (n->op == M_AND) {
    for (size_t i = 0; i < n->nkids; i++) indexable_fields(n->kids[i], prefix, out);
    return;
  }
  if (n->op != M_FIELD) return;
  struct kz_buf b = {0};
  if (prefix && *prefix) {
    kz_buf_append_cstr(&b, prefix);
    kz_buf_append_byte(&b, '.');
  }
  for (size_t i = 0; i < n->npath; i++) {
    if (i) kz_buf_append_byte(&b, '.');
    kz_buf_append_cstr(&b, n->path[i]);
  }
  kz_buf_append_byte(&b, 0);
  if (!b.data) return;
  const struct mnode *c = n->kids[0];
  const struct mnode *conds[64];
  size_t nc = 0;
  if (c->op == M_AND) {
    for (size_t i = 0; i < c->nkids && nc < 64; i++) conds[nc++] = c->kids[i];
  } else {
    conds[nc++] = c;
  }
  for (size_t i = 0; i < nc; i++) {
    enum mop op = conds[i]->op;
    if (op == M_EQ || op == M_GT || op == M_GTE || op == M_LT || op == M_LTE || op == M_BEGINSWITH)
      json_object_set_new(out, (const char *)b.data, json_true());
    else if (op == M_FIELD)
      indexable_fields(conds[i], (const char *)b.data, out);
  }
  kz_buf_free(&b);
}

/* ------------------------------------------------------------------ */
/* Indexes: design documents with "language": "query"                  */

struct midx {
  char ddoc[600];
  char name[256];
  json_t *fields; /* [{"f": "asc"}, ...] */
};

/* Every json index of the database (design documents in id order,
 * views in name order).  *out is a new array of midx. */
static int list_indexes(struct kz_db *db, int64_t dbid, struct midx **out, size_t *n) {
  *out = NULL;
  *n = 0;
  sqlite3_stmt *st = kz_db_sql(db, "SELECT id, rev FROM docs WHERE db=? AND deleted=0 AND id >= '_design/'"
                                   " AND id < '_design0' ORDER BY id");
  if (!st) return KZ_EIO;
  sqlite3_bind_int64(st, 1, dbid);
  int rc = 0;
  while (!rc && sqlite3_step(st) == SQLITE_ROW) {
    const char *id = (const char *)sqlite3_column_text(st, 0);
    struct kz_db_rev rev;
    json_t *body = NULL;
    if (kz_db_rev_parse(&rev, (const char *)sqlite3_column_text(st, 1)) ||
        kz_db_store_rev_body(db, dbid, id, &rev, &body, NULL))
      continue;
    json_t *views = json_object_get(body, "views");
    if (is_str(json_object_get(body, "language"), "query") && json_is_object(views)) {
      const char **names = kz_calloc(json_object_size(views) + 1, sizeof *names);
      size_t nn = 0;
      const char *vn;
      json_t *vv;
      json_object_foreach(views, vn, vv) if (names) names[nn++] = vn;
      /* Name order, whatever order the document stored them in. */
      for (size_t i = 1; i < nn; i++)
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
          const char *t = names[j];
          names[j] = names[j - 1];
          names[j - 1] = t;
        }
      for (size_t i = 0; i < nn && !rc; i++) {
        json_t *f = json_object_get(json_object_get(json_object_get(json_object_get(views, names[i]), "options"),
                                                    "def"),
                                    "fields");
        if (!json_is_array(f)) continue;
        struct midx *nx = kz_realloc(*out, (*n + 1) * sizeof *nx);
        if (!nx) {
          rc = KZ_ENOMEM;
          break;
        }
        *out = nx;
        struct midx *m = &nx[(*n)++];
        memset(m, 0, sizeof *m);
        snprintf(m->ddoc, sizeof m->ddoc, "%s", id);
        snprintf(m->name, sizeof m->name, "%s", names[i]);
        m->fields = json_incref(f);
      }
      kz_free(names);
    }
    json_decref(body);
  }
  kz_db_sql_done(db, st);
  return rc;
}

static void free_indexes(struct midx *x, size_t n) {
  for (size_t i = 0; i < n; i++) json_decref(x[i].fields);
  kz_free(x);
}

static const char *field_name(const json_t *f) {
  if (json_is_string(f)) return json_string_value(f);
  void *it = json_object_iter((json_t *)f);
  return it ? json_object_iter_key(it) : NULL;
}

/* Normalises a fields/sort list ("f" or {"f":"asc"|"desc"}) to
 * [{"f":"asc"}, ...].  NULL when malformed. */
static json_t *norm_fields(const json_t *in, bool *desc, bool *mixed) {
  if (!json_is_array(in)) return NULL;
  json_t *out = json_array();
  size_t i;
  json_t *f;
  int dir = 0;
  json_array_foreach(in, i, f) {
    const char *name = NULL, *d = "asc";
    if (json_is_string(f)) {
      name = json_string_value(f);
    } else if (json_is_object(f) && json_object_size(f) == 1) {
      name = field_name(f);
      d = json_string_value(json_object_iter_value(json_object_iter((json_t *)f)));
    }
    if (!name || !*name || !d || (strcmp(d, "asc") && strcmp(d, "desc"))) {
      json_decref(out);
      return NULL;
    }
    int this_dir = strcmp(d, "desc") ? 1 : 2;
    if (dir && dir != this_dir && mixed) *mixed = true;
    dir = this_dir;
    json_array_append_new(out, json_pack("{s:s}", name, d));
  }
  if (desc) *desc = dir == 2;
  return out;
}

/* ------------------------------------------------------------------ */
/* _find                                                               */

struct hit {
  json_t *doc;
  json_t *sortkey; /* array of the ordering fields' values */
};

static int cmp_hits(const struct hit *a, const struct hit *b, bool desc) {
  int c = kz_db_collate(a->sortkey, b->sortkey);
  if (!c) {
    /* Ties in index order: by document id. */
    c = strcmp(json_string_value(json_object_get(a->doc, "_id")), json_string_value(json_object_get(b->doc, "_id")));
  }
  return desc ? -c : c;
}

/* Stable merge sort (deterministic, no qsort_r). */
static void sort_hits(struct hit *h, struct hit *tmp, size_t n, bool desc) {
  if (n < 2) return;
  size_t m = n / 2;
  sort_hits(h, tmp, m, desc);
  sort_hits(h + m, tmp, n - m, desc);
  size_t i = 0, j = m, k = 0;
  while (i < m && j < n) tmp[k++] = cmp_hits(&h[j], &h[i], desc) < 0 ? h[j++] : h[i++];
  while (i < m) tmp[k++] = h[i++];
  while (j < n) tmp[k++] = h[j++];
  memcpy(h, tmp, n * sizeof *h);
}

static json_t *project(const json_t *doc, const json_t *fields) {
  json_t *out = json_object();
  size_t i;
  json_t *f;
  json_array_foreach(fields, i, f) {
    if (!json_is_string(f)) continue;
    char **path = NULL;
    size_t np = 0;
    if (split_path(json_string_value(f), &path, &np) == 0 && np) {
      const json_t *v = get_path(doc, path, np);
      if (v) {
        json_t *at = out;
        for (size_t k = 0; k + 1 < np; k++) {
          json_t *next = json_object_get(at, path[k]);
          if (!json_is_object(next)) {
            next = json_object();
            json_object_set_new(at, path[k], next);
          }
          at = next;
        }
        json_object_set(at, path[np - 1], (json_t *)v);
      }
    }
    for (size_t k = 0; k < np; k++) kz_free(path[k]);
    kz_free(path);
  }
  return out;
}

static void reply_perr(struct kz_db_reply *r, const struct perr *e) {
  kz_db_reply_error(r, e->status ? e->status : 500, e->error ? e->error : "internal_error", e->reason);
}

static int bookmark_decode(const char *s, uint64_t *skip) {
  struct kz_buf b = {0};
  int rc = kz_db_b64_decode(&b, s, strlen(s));
  if (!rc) {
    rc = KZ_EPROTO;
    if (b.len > 3 && b.len < 30 && !memcmp(b.data, "kz:", 3)) {
      char *end = NULL;
      unsigned long long v = strtoull((const char *)b.data + 3, &end, 10);
      if (end && !*end) {
        *skip = v;
        rc = 0;
      }
    }
  }
  kz_buf_free(&b);
  return rc;
}

int kz_db_api_find(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info, bool explain) {
  struct kz_db *db = q->db;
  json_t *body = NULL;
  if (kz_db_require_json(q, r) || kz_db_body_json(q, r, false, &body)) return 0;
  struct perr e = {0};
  struct mnode *sel = NULL;
  json_t *sort = NULL, *result = NULL, *indexable = NULL, *order_fields = NULL;
  struct midx *idx = NULL;
  size_t nidx = 0;
  struct hit *hits = NULL;
  size_t nhits = 0, caphits = 0;
  sqlite3_stmt *st = NULL;
  uint64_t t0 = kz_env_now(db->env);

  json_t *jsel = json_object_get(body, "selector");
  if (!json_is_object(jsel)) {
    kz_db_reply_error(r, 400, "missing_required_key", "Missing required key: selector");
    goto out;
  }
  json_t *jlimit = json_object_get(body, "limit"), *jskip = json_object_get(body, "skip");
  json_t *jfields = json_object_get(body, "fields"), *jbm = json_object_get(body, "bookmark");
  json_t *jsort = json_object_get(body, "sort"), *jstats = json_object_get(body, "execution_stats");
  json_t *juse = json_object_get(body, "use_index");
  if ((jlimit && (!json_is_integer(jlimit) || json_integer_value(jlimit) < 0)) ||
      (jskip && (!json_is_integer(jskip) || json_integer_value(jskip) < 0))) {
    kz_db_reply_error(r, 400, "invalid_argument", "limit and skip must be non-negative integers");
    goto out;
  }
  if (jfields && (!json_is_array(jfields))) {
    kz_db_reply_error(r, 400, "invalid_argument", "fields must be an array of field names");
    goto out;
  }
  uint64_t limit = jlimit ? (uint64_t)json_integer_value(jlimit) : 25;
  uint64_t skip = jskip ? (uint64_t)json_integer_value(jskip) : 0;
  if (jbm && !json_is_null(jbm) && !(json_is_string(jbm) && !strcmp(json_string_value(jbm), "nil"))) {
    uint64_t bs = 0;
    if (!json_is_string(jbm) || bookmark_decode(json_string_value(jbm), &bs)) {
      kz_db_reply_error(r, 400, "invalid_bookmark", "Invalid bookmark value");
      goto out;
    }
    skip += bs;
  }
  bool desc = false, mixed = false;
  if (jsort) {
    sort = norm_fields(jsort, &desc, &mixed);
    if (!sort) {
      kz_db_reply_error(r, 400, "invalid_sort_json", "Sort must be an array of field names or {field: direction}");
      goto out;
    }
    if (mixed) {
      kz_db_reply_error(r, 400, "unsupported_mixed_sort", "Sorts currently only support a single direction for all fields.");
      goto out;
    }
  }
  sel = parse_sel(jsel, &e, 0);
  if (!sel) {
    if (e.status) reply_perr(r, &e);
    else kz_db_reply_kzerr(r, KZ_ENOMEM);
    goto out;
  }
  /* Choose the index: _all_docs unless a json index fits. */
  int rc = list_indexes(db, info->id, &idx, &nidx);
  if (rc) {
    kz_db_reply_kzerr(r, rc);
    goto out;
  }
  indexable = json_object();
  indexable_fields(sel, NULL, indexable);
  int chosen = -1;
  bool sort_id_only = true;
  for (size_t i = 0; i < json_array_size(sort); i++)
    if (strcmp(field_name(json_array_get(sort, i)), "_id")) sort_id_only = false;
  for (size_t i = 0; i < nidx && chosen < 0; i++) {
    if (juse) {
      /* use_index: "ddoc" or ["ddoc", "name"]. */
      const char *ud = json_is_string(juse) ? json_string_value(juse) : json_string_value(json_array_get(juse, 0));
      const char *un = json_is_array(juse) ? json_string_value(json_array_get(juse, 1)) : NULL;
      if (!ud) continue;
      const char *dd = idx[i].ddoc + 8;
      if (strcmp(ud, idx[i].ddoc) && strcmp(ud, dd)) continue;
      if (un && strcmp(un, idx[i].name)) continue;
    }
    size_t nf = json_array_size(idx[i].fields);
    bool fits_sel = nf > 0;
    for (size_t k = 0; k < nf; k++)
      if (!json_object_get(indexable, field_name(json_array_get(idx[i].fields, k)))) fits_sel = false;
    bool fits_sort = sort && !sort_id_only && json_array_size(sort) <= nf;
    for (size_t k = 0; fits_sort && k < json_array_size(sort); k++)
      if (strcmp(field_name(json_array_get(sort, k)), field_name(json_array_get(idx[i].fields, k)))) fits_sort = false;
    if ((sort && !sort_id_only) ? fits_sort : fits_sel) chosen = (int)i;
  }
  if (sort && !sort_id_only && chosen < 0) {
    kz_db_reply_error(r, 400, "no_usable_index", "No index exists for this sort, try indexing by the sort fields.");
    goto out;
  }
  order_fields = chosen >= 0 ? json_incref(idx[chosen].fields) : json_pack("[{s:s}]", "_id", "asc");
  if (explain) {
    json_t *ix = chosen >= 0 ? json_pack("{s:s,s:s,s:s,s:{s:O}}", "ddoc", idx[chosen].ddoc, "name", idx[chosen].name,
                                         "type", "json", "def", "fields", idx[chosen].fields)
                             : json_pack("{s:n,s:s,s:s,s:{s:[{s:s}]}}", "ddoc", "name", "_all_docs", "type", "special",
                                         "def", "fields", "_id", "asc");
    result = json_pack("{s:s,s:o,s:O,s:I,s:I,s:o}", "dbname", "", "index", ix, "selector", jsel, "limit",
                       (json_int_t)limit, "skip", (json_int_t)skip, "fields", jfields ? json_incref(jfields) : json_string("all_fields"));
    if (result) json_object_set_new(result, "dbname", json_string(q->seg.items[0].p));
    kz_db_reply_json(r, 200, result);
    result = NULL;
    goto out;
  }
  /* Scan every live, non-design document in _id order. */
  struct kz_db_read_opts ro = {.conflicts = json_is_true(json_object_get(body, "conflicts"))};
  st = kz_db_sql(db, "SELECT id FROM docs WHERE db=? AND deleted=0 ORDER BY id");
  if (!st) {
    kz_db_reply_kzerr(r, KZ_EIO);
    goto out;
  }
  sqlite3_bind_int64(st, 1, info->id);
  uint64_t examined = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *id = (const char *)sqlite3_column_text(st, 0);
    if (!strncmp(id, "_design/", 8)) continue;
    struct kz_db_tree t;
    if (kz_db_store_tree(db, info->id, id, &t)) continue;
    json_t *d = NULL;
    int w = kz_db_tree_winner(&t);
    if (w >= 0 && !t.nodes[w].deleted) (void)kz_db_doc_json(db, info->id, id, &t, w, &ro, &d);
    kz_db_tree_free(&t);
    if (!d) continue;
    examined++;
    json_t *sk = json_array();
    bool keep = sk && match(sel, d);
    for (size_t k = 0; keep && k < json_array_size(order_fields); k++) {
      char **path = NULL;
      size_t np = 0;
      const json_t *v = NULL;
      if (!split_path(field_name(json_array_get(order_fields, k)), &path, &np)) v = get_path(d, path, np);
      for (size_t x = 0; x < np; x++) kz_free(path[x]);
      kz_free(path);
      /* A json index holds only documents that have all its fields. */
      if (!v) keep = false;
      else json_array_append(sk, (json_t *)v);
    }
    if (!keep) {
      json_decref(d);
      json_decref(sk);
      continue;
    }
    if (nhits == caphits) {
      size_t cap = caphits ? caphits * 2 : 16;
      struct hit *nh = kz_realloc(hits, cap * sizeof *nh);
      if (!nh) {
        json_decref(d);
        json_decref(sk);
        break;
      }
      hits = nh;
      caphits = cap;
    }
    hits[nhits].doc = d;
    hits[nhits].sortkey = sk;
    nhits++;
  }
  kz_db_sql_done(db, st);
  st = NULL;
  if (nhits > 1 && (chosen >= 0 || desc)) {
    struct hit *tmp = kz_calloc(nhits, sizeof *tmp);
    if (!tmp) {
      kz_db_reply_kzerr(r, KZ_ENOMEM);
      goto out;
    }
    sort_hits(hits, tmp, nhits, desc);
    kz_free(tmp);
  }
  json_t *docs = json_array();
  uint64_t returned = 0;
  for (size_t i = (size_t)(skip < nhits ? skip : nhits); i < nhits && returned < limit; i++, returned++)
    json_array_append_new(docs, jfields ? project(hits[i].doc, jfields) : json_incref(hits[i].doc));
  char bm[64];
  snprintf(bm, sizeof bm, "kz:%llu", (unsigned long long)(skip + returned));
  struct kz_buf b64 = {0};
  kz_db_b64_encode(&b64, (const uint8_t *)bm, strlen(bm));
  result = json_pack("{s:o,s:s}", "docs", docs, "bookmark", b64.data ? (const char *)b64.data : "nil");
  kz_buf_free(&b64);
  if (result && chosen < 0)
    json_object_set_new(result, "warning",
                        json_string("No matching index found, create an index to optimize query time."));
  if (result && json_is_true(jstats))
    json_object_set_new(result, "execution_stats",
                        json_pack("{s:I,s:I,s:I,s:I,s:f}", "total_keys_examined", (json_int_t)0,
                                  "total_docs_examined", (json_int_t)examined, "total_quorum_docs_examined",
                                  (json_int_t)0, "results_returned", (json_int_t)returned, "execution_time_ms",
                                  (double)(kz_env_now(db->env) - t0) / 1e6));
  kz_db_reply_json(r, 200, result);
  result = NULL;
out:
  kz_db_sql_done(db, st);
  for (size_t i = 0; i < nhits; i++) {
    json_decref(hits[i].doc);
    json_decref(hits[i].sortkey);
  }
  kz_free(hits);
  free_indexes(idx, nidx);
  json_decref(order_fields);
  json_decref(indexable);
  json_decref(result);
  json_decref(sort);
  mnode_free(sel);
  json_decref(body);
  return 0;
}

/* ------------------------------------------------------------------ */
/* _index                                                              */

/* Writes (or deletes, when body is NULL) design document id at its
 * current winner, in one transaction.  0, KZ_ECONFLICT or KZ_EIO. */
static int ddoc_write(struct kz_db *db, int64_t dbid, const char *id, json_t *body, const char *rev) {
  json_t *doc = body ? json_deep_copy(body) : json_pack("{s:b}", "_deleted", 1);
  if (!doc) return KZ_ENOMEM;
  if (rev) json_object_set_new(doc, "_rev", json_string(rev));
  struct kz_db_update_opts o = {.new_edits = true, .docid = id, .dbid = dbid};
  json_t *res = NULL;
  int status = 0;
  int rc = kz_db_store_begin(db);
  if (!rc) rc = kz_db_doc_update(db, &o, doc, &res, &status);
  if (!rc && status < 300) rc = kz_db_store_commit(db);
  else kz_db_store_rollback(db);
  json_decref(res);
  json_decref(doc);
  if (!rc && status >= 300) rc = status == 409 ? KZ_ECONFLICT : KZ_EIO;
  if (!rc) kz_db_changes_notify(db, dbid);
  return rc;
}

/* The winning body and rev of a live document; 0 or KZ_ENOENT. */
static int doc_current(struct kz_db *db, int64_t dbid, const char *id, json_t **body, char rev[96]) {
  struct kz_db_tree t;
  *body = NULL;
  int rc = kz_db_store_tree(db, dbid, id, &t);
  if (rc) return rc;
  int w = kz_db_tree_winner(&t);
  rc = KZ_ENOENT;
  if (w >= 0 && !t.nodes[w].deleted) {
    kz_db_rev_format(&t.nodes[w].rev, rev, 96);
    rc = kz_db_store_rev_body(db, dbid, id, &t.nodes[w].rev, body, NULL);
  }
  kz_db_tree_free(&t);
  return rc;
}

static void index_create(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info) {
  struct kz_db *db = q->db;
  json_t *body = NULL, *fields = NULL, *ddoc = NULL;
  if (kz_db_require_json(q, r) || kz_db_body_json(q, r, false, &body)) return;
  json_t *index = json_object_get(body, "index");
  const char *type = json_string_value(json_object_get(body, "type"));
  if (type && strcmp(type, "json")) {
    kz_db_reply_error(r, 400, "invalid_index_type", "kz supports json indexes only");
    goto out;
  }
  fields = json_is_object(index) ? norm_fields(json_object_get(index, "fields"), NULL, NULL) : NULL;
  if (!fields || !json_array_size(fields)) {
    kz_db_reply_error(r, 400, "invalid_index_fields", "Index must have a non-empty list of fields");
    goto out;
  }
  /* Default ddoc and name: a digest of the definition, as CouchDB. */
  char *deftxt = json_dumps(fields, JSON_COMPACT);
  uint8_t md[16];
  kz_db_md5(deftxt ? deftxt : "", deftxt ? strlen(deftxt) : 0, md);
  free(deftxt);
  char hex[33];
  for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  const char *dn = json_string_value(json_object_get(body, "ddoc"));
  const char *name = json_string_value(json_object_get(body, "name"));
  char id[600];
  if (dn && !strncmp(dn, "_design/", 8)) dn += 8;
  snprintf(id, sizeof id, "_design/%s", dn && *dn ? dn : hex);
  if (!name || !*name) name = hex;
  char rev[96] = "";
  int rc = doc_current(db, info->id, id, &ddoc, rev);
  if (rc && rc != KZ_ENOENT) {
    kz_db_reply_kzerr(r, rc);
    goto out;
  }
  if (!ddoc) ddoc = json_pack("{s:s,s:{}}", "language", "query", "views");
  if (!is_str(json_object_get(ddoc, "language"), "query") && rev[0]) {
    kz_db_reply_error(r, 400, "invalid_design_doc", "The design document is not a Mango (query) design document");
    goto out;
  }
  json_t *views = json_object_get(ddoc, "views");
  if (!json_is_object(views)) {
    views = json_object();
    json_object_set_new(ddoc, "views", views);
  }
  json_t *old = json_object_get(json_object_get(json_object_get(json_object_get(views, name), "options"), "def"), "fields");
  if (old && json_equal(old, fields)) {
    kz_db_reply_json(r, 200, json_pack("{s:s,s:s,s:s}", "result", "exists", "id", id, "name", name));
    goto out;
  }
  json_t *mapf = json_object();
  size_t i;
  json_t *f;
  json_array_foreach(fields, i, f) json_object_set(mapf, field_name(f), json_object_iter_value(json_object_iter(f)));
  json_object_set_new(views, name,
                      json_pack("{s:{s:o,s:{}},s:s,s:{s:{s:O}}}", "map", "fields", mapf, "partial_filter_selector",
                                "reduce", "_count", "options", "def", "fields", fields));
  json_object_set_new(ddoc, "language", json_string("query"));
  rc = ddoc_write(db, info->id, id, ddoc, rev[0] ? rev : NULL);
  if (rc) {
    kz_db_reply_kzerr(r, rc);
    goto out;
  }
  kz_db_reply_json(r, 200, json_pack("{s:s,s:s,s:s}", "result", "created", "id", id, "name", name));
out:
  json_decref(ddoc);
  json_decref(fields);
  json_decref(body);
}

static void index_list(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info) {
  struct midx *idx = NULL;
  size_t n = 0;
  int rc = list_indexes(q->db, info->id, &idx, &n);
  if (rc) return kz_db_reply_kzerr(r, rc);
  json_t *a = json_array();
  json_array_append_new(a, json_pack("{s:n,s:s,s:s,s:{s:[{s:s}]}}", "ddoc", "name", "_all_docs", "type", "special",
                                     "def", "fields", "_id", "asc"));
  for (size_t i = 0; i < n; i++)
    json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:b,s:{s:O}}", "ddoc", idx[i].ddoc, "name", idx[i].name, "type",
                                       "json", "partitioned", 0, "def", "fields", idx[i].fields));
  free_indexes(idx, n);
  kz_db_reply_json(r, 200, json_pack("{s:I,s:o}", "total_rows", (json_int_t)json_array_size(a), "indexes", a));
}

/* DELETE /db/_index/<ddoc>/json/<name> (ddoc with or without _design/). */
static void index_delete(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info) {
  size_t n = q->seg.n;
  size_t at = 2;
  char id[600];
  if (n >= 3 && !strcmp(q->seg.items[2].p, "_design")) at = 3;
  if (n != at + 3 || strcmp(q->seg.items[at + 1].p, "json")) {
    kz_db_reply_error(r, 400, "bad_request", "Use DELETE /db/_index/<ddoc>/json/<name>");
    return;
  }
  const char *dn = q->seg.items[at].p;
  if (!strncmp(dn, "_design/", 8)) dn += 8;
  snprintf(id, sizeof id, "_design/%s", dn);
  const char *name = q->seg.items[at + 2].p;
  json_t *ddoc = NULL;
  char rev[96];
  int rc = doc_current(q->db, info->id, id, &ddoc, rev);
  json_t *views = json_object_get(ddoc, "views");
  if (rc == KZ_ENOENT || !json_object_get(views, name) ||
      !is_str(json_object_get(ddoc, "language"), "query")) {
    json_decref(ddoc);
    kz_db_reply_error(r, 404, "not_found", "Index not found");
    return;
  }
  if (rc) {
    json_decref(ddoc);
    kz_db_reply_kzerr(r, rc);
    return;
  }
  json_object_del(views, name);
  rc = ddoc_write(q->db, info->id, id, json_object_size(views) ? ddoc : NULL, rev);
  json_decref(ddoc);
  if (rc) kz_db_reply_kzerr(r, rc);
  else kz_db_reply_json(r, 200, json_pack("{s:b}", "ok", 1));
}

int kz_db_api_index(struct kz_db_req *q, struct kz_db_reply *r, const struct kz_db_dbinfo *info) {
  bool get = kz_slice_eq_cstr(q->method, "GET") || kz_slice_eq_cstr(q->method, "HEAD");
  if (q->seg.n == 2) {
    if (get) index_list(q, r, info);
    else if (kz_slice_eq_cstr(q->method, "POST")) index_create(q, r, info);
    else {
      kz_db_reply_error(r, 405, "method_not_allowed", "Only GET,HEAD,POST allowed");
      kz_buf_append_cstr(&r->extra, "Allow: GET,HEAD,POST\r\n");
    }
  } else if (kz_slice_eq_cstr(q->method, "DELETE")) {
    index_delete(q, r, info);
  } else {
    kz_db_reply_error(r, 405, "method_not_allowed", "Only DELETE allowed");
    kz_buf_append_cstr(&r->extra, "Allow: DELETE\r\n");
  }
  return 0;
}
