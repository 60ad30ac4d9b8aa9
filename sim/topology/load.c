/* load.c — reads a topology YAML file (libyaml's document API) into struct kz_topo, checking every field. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "kz/buf.h"
#include "kz/error.h"
#include "kz/mem.h"
#include "kz/topology.h"
#include "topology_int.h"

struct ld {
  const char *file;
  yaml_document_t *doc;
  struct kz_topo_err *err;
  struct kz_topo *t;
  size_t cap_hosts, cap_paths, cap_faults;
};

static struct kz_topo_pos pos_of(const yaml_node_t *n) {
  struct kz_topo_pos p = {0, 0};
  if (n) {
    p.line = (uint32_t)n->start_mark.line + 1;
    p.col = (uint32_t)n->start_mark.column + 1;
  }
  return p;
}

static int fail(struct ld *L, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct ld *L, const yaml_node_t *n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = topo_verror(L->file, pos_of(n), L->err, fmt, ap);
  va_end(ap);
  return rc;
}

static int fail_pos(struct ld *L, struct kz_topo_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_pos(struct ld *L, struct kz_topo_pos pos, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = topo_verror(L->file, pos, L->err, fmt, ap);
  va_end(ap);
  return rc;
}

static yaml_node_t *node(struct ld *L, int id) { return yaml_document_get_node(L->doc, id); }

static const char *scalar(const yaml_node_t *n) {
  return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static const char *node_kind(const yaml_node_t *n) {
  switch (n->type) {
  case YAML_SCALAR_NODE: return "a value";
  case YAML_SEQUENCE_NODE: return "a list";
  case YAML_MAPPING_NODE: return "a mapping";
  default: return "nothing";
  }
}

/* Checks that mapping `m` ("what" names it in errors) only has keys from
 * `allowed`, each once. */
static int check_keys(struct ld *L, yaml_node_t *m, const char *what, const char *const *allowed,
                      size_t nallowed) {
  for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
    yaml_node_t *k = node(L, p->key);
    const char *ks = scalar(k);
    if (!ks) return fail(L, k, "a key in %s must be a plain name, not %s", what, node_kind(k));
    bool ok = false;
    for (size_t i = 0; i < nallowed && !ok; i++) ok = strcmp(ks, allowed[i]) == 0;
    if (!ok) {
      const char *hint = topo_suggest(ks, allowed, nallowed);
      if (hint) return fail(L, k, "unknown key '%s' in %s (did you mean '%s'?)", ks, what, hint);
      char list[256] = "";
      size_t off = 0;
      for (size_t i = 0; i < nallowed && off < sizeof list; i++)
        off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "", allowed[i]);
      return fail(L, k, "unknown key '%s' in %s (expected one of: %s)", ks, what, list);
    }
    for (yaml_node_pair_t *q = m->data.mapping.pairs.start; q < p; q++) {
      yaml_node_t *k2 = node(L, q->key);
      if (scalar(k2) && strcmp(scalar(k2), ks) == 0)
        return fail(L, k, "duplicate key '%s' in %s (first at line %u)", ks, what,
                    (unsigned)k2->start_mark.line + 1);
    }
  }
  return 0;
}

/* The value of key `key` in mapping `m`, or NULL. */
static yaml_node_t *get(struct ld *L, yaml_node_t *m, const char *key) {
  for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++)
    if (scalar(node(L, p->key)) && strcmp(scalar(node(L, p->key)), key) == 0) return node(L, p->value);
  return NULL;
}

/* The key node of `key` in `m` (for positions), or NULL. */
static yaml_node_t *get_key(struct ld *L, yaml_node_t *m, const char *key) {
  for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++)
    if (scalar(node(L, p->key)) && strcmp(scalar(node(L, p->key)), key) == 0) return node(L, p->key);
  return NULL;
}

static int want_scalar(struct ld *L, yaml_node_t *v, const char *key, const char **out) {
  *out = scalar(v);
  if (!*out) return fail(L, v, "'%s' takes a single value, not %s", key, node_kind(v));
  if (!**out) return fail(L, v, "'%s' is empty", key);
  return 0;
}

static int get_duration(struct ld *L, yaml_node_t *v, const char *key, bool neg, int64_t *out) {
  const char *s;
  int rc = want_scalar(L, v, key, &s);
  if (rc) return rc;
  const char *why = NULL;
  if (kz_topo_parse_duration(s, neg, out, &why)) return fail(L, v, "%s: '%s': %s", key, s, why);
  return 0;
}

static int get_udur(struct ld *L, yaml_node_t *v, const char *key, uint64_t *out) {
  int64_t d;
  int rc = get_duration(L, v, key, false, &d);
  if (!rc) *out = (uint64_t)d;
  return rc;
}

static int get_ppm(struct ld *L, yaml_node_t *v, const char *key, uint32_t *out) {
  const char *s;
  int rc = want_scalar(L, v, key, &s);
  if (rc) return rc;
  const char *why = NULL;
  if (kz_topo_parse_ppm(s, out, &why)) return fail(L, v, "%s: '%s': %s", key, s, why);
  return 0;
}

static int get_uint(struct ld *L, yaml_node_t *v, const char *key, uint64_t lo, uint64_t hi,
                    uint64_t *out) {
  const char *s;
  int rc = want_scalar(L, v, key, &s);
  if (rc) return rc;
  uint64_t x = 0;
  const char *p = s;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (x > UINT64_C(1000000000000)) return fail(L, v, "%s: '%s' is too large (at most %llu)", key, s,
                                                 (unsigned long long)hi);
    x = x * 10 + (uint64_t)(*p - '0');
  }
  if (*p || p == s) return fail(L, v, "%s: '%s' is not a whole number", key, s);
  if (x < lo || x > hi)
    return fail(L, v, "%s: %s is out of range (%llu..%llu)", key, s, (unsigned long long)lo,
                (unsigned long long)hi);
  *out = x;
  return 0;
}

static int get_bool(struct ld *L, yaml_node_t *v, const char *key, bool *out) {
  const char *s;
  int rc = want_scalar(L, v, key, &s);
  if (rc) return rc;
  if (!strcmp(s, "true") || !strcmp(s, "yes")) *out = true;
  else if (!strcmp(s, "false") || !strcmp(s, "no")) *out = false;
  else return fail(L, v, "%s: '%s' is not true or false", key, s);
  return 0;
}

static int want_mapping(struct ld *L, yaml_node_t *v, const char *what) {
  if (v->type != YAML_MAPPING_NODE)
    return fail(L, v, "%s must be a mapping (key: value lines), not %s", what, node_kind(v));
  return 0;
}

static int want_sequence(struct ld *L, yaml_node_t *v, const char *what, const char *example) {
  if (v->type != YAML_SEQUENCE_NODE)
    return fail(L, v, "%s must be a list, e.g. %s", what, example);
  return 0;
}

/* Looks up a host by the name in scalar node v. */
static int host_ref(struct ld *L, yaml_node_t *v, const char *key, size_t *out) {
  const char *s;
  int rc = want_scalar(L, v, key, &s);
  if (rc) return rc;
  long i = kz_topo_host_index(L->t, s);
  if (i >= 0) {
    *out = (size_t)i;
    return 0;
  }
  const char *names[64];
  size_t n = L->t->nhosts < 64 ? L->t->nhosts : 64;
  for (size_t j = 0; j < n; j++) names[j] = L->t->hosts[j].name;
  const char *hint = topo_suggest(s, names, n);
  if (hint) return fail(L, v, "%s: no host named '%s' (did you mean '%s'?)", key, s, hint);
  return fail(L, v, "%s: no host named '%s' in hosts", key, s);
}

/* ------------------------------------------------------------------ */
/* Hosts */

static const char *const host_keys[] = {"name", "address", "cores", "roles", "crash_mode"};

static bool name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > KZ_TOPO_NAME_MAX) return false;
  for (const char *p = s; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '.' || *p == '_' || *p == '-'))
      return false;
  return true;
}

static int parse_roles(struct ld *L, yaml_node_t *v, struct kz_topo_host *h) {
  int rc = want_sequence(L, v, "roles", "[proxy, media]");
  if (rc) return rc;
  for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
    yaml_node_t *r = node(L, *it);
    const char *s;
    if ((rc = want_scalar(L, r, "roles", &s))) return rc;
    int role = kz_topo_role_from_name(s);
    if (role < 0) {
      const char *hint = topo_suggest(s, topo_role_names(), KZ_TOPO_ROLE_COUNT);
      if (hint) return fail(L, r, "role '%s' is not a kz role (did you mean '%s'?)", s, hint);
      return fail(L, r,
                  "role '%s' is not a kz role (roles: proxy, media, ecallmgr, apps, db, broker, "
                  "sipp-uac, sipp-uas)",
                  s);
    }
    if (h->roles & (1u << role))
      return fail(L, r, "role '%s' listed twice on host '%s'", s, h->name);
    h->roles |= 1u << role;
    h->role_pos[role] = pos_of(r);
  }
  return 0;
}

static int parse_host(struct ld *L, yaml_node_t *m) {
  int rc = want_mapping(L, m, "a host");
  if (rc || (rc = check_keys(L, m, "host", host_keys, sizeof host_keys / sizeof host_keys[0])))
    return rc;
  struct kz_topo *t = L->t;
  if (t->nhosts == L->cap_hosts) {
    size_t cap = L->cap_hosts ? L->cap_hosts * 2 : 8;
    struct kz_topo_host *n = kz_realloc(t->hosts, cap * sizeof *n);
    if (!n) return KZ_ENOMEM;
    t->hosts = n;
    L->cap_hosts = cap;
  }
  struct kz_topo_host *h = &t->hosts[t->nhosts];
  memset(h, 0, sizeof *h);
  h->pos = pos_of(m);
  h->cores = 2;
  yaml_node_t *v = get(L, m, "name");
  const char *s;
  if (!v) return fail(L, m, "host has no 'name'");
  if ((rc = want_scalar(L, v, "name", &s))) return rc;
  if (!name_ok(s))
    return fail(L, v, "host name '%s' must be 1..%d letters, digits, '.', '_' or '-'", s,
                KZ_TOPO_NAME_MAX);
  for (size_t i = 0; i < t->nhosts; i++)
    if (strcmp(t->hosts[i].name, s) == 0)
      return fail(L, v, "duplicate host name '%s' (first defined at line %u)", s, t->hosts[i].pos.line);
  snprintf(h->name, sizeof h->name, "%s", s);

  v = get(L, m, "address");
  if (!v) return fail(L, m, "host '%s' has no 'address'", h->name);
  if ((rc = want_scalar(L, v, "address", &s))) return rc;
  if (strchr(s, ':')) return fail(L, v, "address '%s': write the IPv4 address alone, without a port", s);
  if (kz_addr_parse(&h->addr, s) || h->addr.family != 4)
    return fail(L, v, "address '%s' is not an IPv4 address like 10.0.0.1", s);
  if (kz_addr_v4_host(&h->addr) == 0) return fail(L, v, "address 0.0.0.0 cannot be a host's address");
  for (size_t i = 0; i < t->nhosts; i++)
    if (kz_addr_v4_host(&t->hosts[i].addr) == kz_addr_v4_host(&h->addr))
      return fail(L, v, "address %s used twice (host '%s' at line %u has it already)", s,
                  t->hosts[i].name, t->hosts[i].pos.line);

  if ((v = get(L, m, "cores"))) {
    uint64_t c;
    if ((rc = get_uint(L, v, "cores", 1, 64, &c))) return rc;
    h->cores = (unsigned)c;
  }
  if ((v = get(L, m, "crash_mode"))) {
    if ((rc = want_scalar(L, v, "crash_mode", &s))) return rc;
    if (!strcmp(s, "revert")) h->crash_mode = KZ_TOPO_CRASH_REVERT;
    else if (!strcmp(s, "torn")) h->crash_mode = KZ_TOPO_CRASH_TORN;
    else return fail(L, v, "crash_mode '%s' is not 'revert' or 'torn'", s);
  }
  if ((v = get(L, m, "roles")) && (rc = parse_roles(L, v, h))) return rc;
  t->nhosts++;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Links */

static const char *const link_keys[] = {"latency", "jitter", "distribution", "loss", "duplicate",
                                        "reorder", "reorder_delay", "queue", "queue_bytes"};
static const char *const path_keys[] = {"between", "from", "to", "latency", "jitter",
                                        "distribution", "loss", "duplicate", "reorder",
                                        "reorder_delay", "queue", "queue_bytes"};

static int parse_link_fields(struct ld *L, yaml_node_t *m, struct kz_topo_link *l) {
  int rc = 0;
  yaml_node_t *v;
  l->pos = pos_of(m);
  if ((v = get(L, m, "latency"))) {
    if ((rc = get_udur(L, v, "latency", &l->latency_ns))) return rc;
    l->set |= KZ_TOPO_LINK_LATENCY;
  }
  if ((v = get(L, m, "jitter"))) {
    if ((rc = get_udur(L, v, "jitter", &l->jitter_ns))) return rc;
    l->set |= KZ_TOPO_LINK_JITTER;
  }
  if ((v = get(L, m, "distribution"))) {
    const char *s;
    if ((rc = want_scalar(L, v, "distribution", &s))) return rc;
    int d = topo_dist_from_name(s);
    if (d < 0)
      return fail(L, v, "distribution '%s' is not one of uniform, normal, pareto, paretonormal", s);
    l->dist = (enum kz_topo_dist)d;
    l->dist_pos = pos_of(v);
    l->set |= KZ_TOPO_LINK_DIST;
  }
  if ((v = get(L, m, "loss"))) {
    if ((rc = get_ppm(L, v, "loss", &l->loss_ppm))) return rc;
    l->set |= KZ_TOPO_LINK_LOSS;
  }
  if ((v = get(L, m, "duplicate"))) {
    if ((rc = get_ppm(L, v, "duplicate", &l->dup_ppm))) return rc;
    l->set |= KZ_TOPO_LINK_DUP;
  }
  if ((v = get(L, m, "reorder"))) {
    if ((rc = get_ppm(L, v, "reorder", &l->reorder_ppm))) return rc;
    l->set |= KZ_TOPO_LINK_REORDER;
  }
  if ((v = get(L, m, "reorder_delay"))) {
    if ((rc = get_udur(L, v, "reorder_delay", &l->reorder_ns))) return rc;
    l->set |= KZ_TOPO_LINK_REORDER_DELAY;
  }
  if ((v = get(L, m, "queue"))) {
    uint64_t q;
    if ((rc = get_uint(L, v, "queue", 0, 1000000000, &q))) return rc;
    l->queue_packets = (uint32_t)q;
    l->set |= KZ_TOPO_LINK_QUEUE;
  }
  if ((v = get(L, m, "queue_bytes"))) {
    if ((rc = get_uint(L, v, "queue_bytes", 0, UINT64_C(1) << 40, &l->queue_bytes))) return rc;
    l->set |= KZ_TOPO_LINK_QUEUE_BYTES;
  }
  if (l->jitter_ns && (l->set & KZ_TOPO_LINK_DIST) && l->dist != KZ_TOPO_DIST_UNIFORM &&
      !(l->set & KZ_TOPO_LINK_JITTER))
    return fail(L, m, "distribution '%s' needs a 'jitter' (its spread)", kz_topo_dist_name(l->dist));
  return 0;
}

static int parse_path(struct ld *L, yaml_node_t *m) {
  int rc = want_mapping(L, m, "a path");
  if (rc || (rc = check_keys(L, m, "path", path_keys, sizeof path_keys / sizeof path_keys[0])))
    return rc;
  struct kz_topo *t = L->t;
  if (t->npaths == L->cap_paths) {
    size_t cap = L->cap_paths ? L->cap_paths * 2 : 8;
    struct kz_topo_path *n = kz_realloc(t->paths, cap * sizeof *n);
    if (!n) return KZ_ENOMEM;
    t->paths = n;
    L->cap_paths = cap;
  }
  struct kz_topo_path *p = &t->paths[t->npaths];
  memset(p, 0, sizeof *p);
  yaml_node_t *bt = get(L, m, "between"), *from = get(L, m, "from"), *to = get(L, m, "to");
  if (bt && (from || to))
    return fail(L, get_key(L, m, from ? "from" : "to"),
                "a path has either 'between: [a, b]' (both directions) or 'from' and 'to' (one direction), not both");
  if (bt) {
    if (bt->type != YAML_SEQUENCE_NODE || bt->data.sequence.items.top - bt->data.sequence.items.start != 2)
      return fail(L, bt, "'between' takes two host names, e.g. [kz1, kz2]");
    if ((rc = host_ref(L, node(L, bt->data.sequence.items.start[0]), "between", &p->from))) return rc;
    if ((rc = host_ref(L, node(L, bt->data.sequence.items.start[1]), "between", &p->to))) return rc;
    p->both = true;
  } else {
    if (!from || !to) return fail(L, m, "a path needs 'between: [a, b]', or 'from' and 'to'");
    if ((rc = host_ref(L, from, "from", &p->from))) return rc;
    if ((rc = host_ref(L, to, "to", &p->to))) return rc;
  }
  if ((rc = parse_link_fields(L, m, &p->link))) return rc;
  t->npaths++;
  return 0;
}

static int parse_links(struct ld *L, yaml_node_t *m) {
  static const char *const keys[] = {"default", "paths"};
  int rc = want_mapping(L, m, "links");
  if (rc || (rc = check_keys(L, m, "links", keys, 2))) return rc;
  yaml_node_t *v;
  if ((v = get(L, m, "default"))) {
    if ((rc = want_mapping(L, v, "links: default")) ||
        (rc = check_keys(L, v, "link", link_keys, sizeof link_keys / sizeof link_keys[0])) ||
        (rc = parse_link_fields(L, v, &L->t->default_link)))
      return rc;
  }
  if ((v = get(L, m, "paths"))) {
    if ((rc = want_sequence(L, v, "links: paths", "'- between: [kz1, kz2]'"))) return rc;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++)
      if ((rc = parse_path(L, node(L, *it)))) return rc;
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Faults */

static const char *const fault_kinds[KZ_TOPO_FAULT_KINDS] = {"crash", "restart", "partition", "skew", "stall", "kill"};
static const char *const crash_keys[] = {"crash", "at", "restart"};
static const char *const restart_keys[] = {"restart", "at"};
static const char *const partition_keys[] = {"partition", "from", "to", "oneway"};
static const char *const skew_keys[] = {"skew", "at", "by", "drift"};
static const char *const stall_keys[] = {"stall", "role", "at", "for"};
static const char *const kill_keys[] = {"kill", "role", "at", "restart"};

static int parse_side(struct ld *L, yaml_node_t *v, const char *key, size_t **out, size_t *n) {
  size_t cnt = v->type == YAML_SEQUENCE_NODE
                   ? (size_t)(v->data.sequence.items.top - v->data.sequence.items.start)
                   : 1;
  if (v->type != YAML_SEQUENCE_NODE && v->type != YAML_SCALAR_NODE)
    return fail(L, v, "partition side '%s' takes host names, e.g. [kz1, kz2]", key);
  if (cnt == 0) return fail(L, v, "partition side '%s' is empty", key);
  *out = kz_calloc(cnt, sizeof **out);
  if (!*out) return KZ_ENOMEM;
  *n = cnt;
  for (size_t i = 0; i < cnt; i++) {
    yaml_node_t *h = v->type == YAML_SEQUENCE_NODE ? node(L, v->data.sequence.items.start[i]) : v;
    int rc = host_ref(L, h, key, &(*out)[i]);
    if (rc) return rc;
  }
  return 0;
}

static int parse_drift(struct ld *L, yaml_node_t *v, int32_t *out) {
  const char *s;
  int rc = want_scalar(L, v, "drift", &s);
  if (rc) return rc;
  const char *p = s;
  bool neg = *p == '-';
  if (*p == '-' || *p == '+') p++;
  uint64_t x = 0;
  const char *digits = p;
  for (; *p >= '0' && *p <= '9' && x <= 1000000; p++) x = x * 10 + (uint64_t)(*p - '0');
  if (p == digits || strcmp(p, "ppm") != 0)
    return fail(L, v, "drift: '%s' is not a rate like '50ppm' or '-20ppm'", s);
  if (x > 1000000) return fail(L, v, "drift: '%s' is beyond 1000000ppm", s);
  *out = neg ? -(int32_t)x : (int32_t)x;
  return 0;
}

/* The optional "role:" of a stall or a kill: a role the host runs. */
static int parse_fault_role(struct ld *L, yaml_node_t *m, struct kz_topo_fault *f) {
  yaml_node_t *v = get(L, m, "role");
  if (!v) return 0;
  const char *s;
  int rc = want_scalar(L, v, "role", &s);
  if (rc) return rc;
  f->role = kz_topo_role_from_name(s);
  if (f->role < 0) return fail(L, v, "role '%s' is not a kz role", s);
  if (!(L->t->hosts[f->host].roles & (1u << f->role)))
    return fail(L, v, "host '%s' does not run role '%s'", L->t->hosts[f->host].name, s);
  return 0;
}

static int parse_fault(struct ld *L, yaml_node_t *m) {
  int rc = want_mapping(L, m, "a fault");
  if (rc) return rc;
  int kind = -1;
  yaml_node_t *kind_key = NULL;
  for (int k = 0; k < KZ_TOPO_FAULT_KINDS; k++) {
    yaml_node_t *kk = get_key(L, m, fault_kinds[k]);
    if (!kk) continue;
    /* "restart" is also the restart time of a crash or a kill. */
    if (k == KZ_TOPO_FAULT_RESTART && (kind == KZ_TOPO_FAULT_CRASH || kind == KZ_TOPO_FAULT_KILL)) continue;
    if (k == KZ_TOPO_FAULT_KILL && kind == KZ_TOPO_FAULT_RESTART) kind = -1; /* "restart" was the kill's */
    if (kind >= 0)
      return fail(L, kk, "a fault has one kind: '%s' and '%s' in one entry (write two entries)",
                  fault_kinds[kind], fault_kinds[k]);
    kind = k;
    kind_key = kk;
  }
  if (kind < 0) {
    /* Maybe a misspelt kind: name it. */
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
      const char *ks = scalar(node(L, p->key));
      const char *hint = ks ? topo_suggest(ks, fault_kinds, KZ_TOPO_FAULT_KINDS) : NULL;
      if (hint) return fail(L, node(L, p->key), "unknown fault '%s' (did you mean '%s'?)", ks, hint);
    }
    return fail(L, m, "a fault needs one of: crash, restart, partition, skew, stall, kill");
  }
  static const char *const *const key_sets[] = {crash_keys, restart_keys, partition_keys, skew_keys,
                                                stall_keys, kill_keys};
  static const size_t nkeys[] = {3, 2, 4, 4, 4, 4};
  char what[32];
  snprintf(what, sizeof what, "%s fault", fault_kinds[kind]);
  if ((rc = check_keys(L, m, what, key_sets[kind], nkeys[kind]))) return rc;

  struct kz_topo *t = L->t;
  if (t->nfaults == L->cap_faults) {
    size_t cap = L->cap_faults ? L->cap_faults * 2 : 8;
    struct kz_topo_fault *n = kz_realloc(t->faults, cap * sizeof *n);
    if (!n) return KZ_ENOMEM;
    t->faults = n;
    L->cap_faults = cap;
  }
  struct kz_topo_fault *f = &t->faults[t->nfaults++];
  memset(f, 0, sizeof *f);
  f->kind = (enum kz_topo_fault_kind)kind;
  f->until_ns = UINT64_MAX;
  f->role = -1;
  f->pos = pos_of(kind_key);
  yaml_node_t *kv = get(L, m, fault_kinds[kind]);
  yaml_node_t *v;

  if (kind != KZ_TOPO_FAULT_PARTITION && (rc = host_ref(L, kv, fault_kinds[kind], &f->host)))
    return rc;
  /* "at": required but for skew (default: from the start). */
  const char *at_key = kind == KZ_TOPO_FAULT_PARTITION ? "from" : "at";
  if ((v = get(L, m, at_key))) {
    if ((rc = get_udur(L, v, at_key, &f->at_ns))) return rc;
  } else if (kind != KZ_TOPO_FAULT_SKEW) {
    return fail(L, kind_key, "%s fault needs '%s' (when it happens, e.g. '%s: 10s')", fault_kinds[kind],
                at_key, at_key);
  }
  switch (kind) {
  case KZ_TOPO_FAULT_CRASH:
    if ((v = get(L, m, "restart"))) {
      if ((rc = get_udur(L, v, "restart", &f->until_ns))) return rc;
      if (f->until_ns <= f->at_ns) return fail(L, v, "restart must come after the crash ('at')");
    }
    break;
  case KZ_TOPO_FAULT_RESTART: break;
  case KZ_TOPO_FAULT_PARTITION: {
    static const char *const side_keys[] = {"a", "b"};
    if ((rc = want_mapping(L, kv, "partition")) || (rc = check_keys(L, kv, "partition", side_keys, 2)))
      return rc;
    yaml_node_t *a = get(L, kv, "a"), *b = get(L, kv, "b");
    if (!a || !b) return fail(L, kv, "partition needs two sides, 'a: [hosts]' and 'b: [hosts]'");
    if ((rc = parse_side(L, a, "a", &f->side_a, &f->na)) || (rc = parse_side(L, b, "b", &f->side_b, &f->nb)))
      return rc;
    for (size_t i = 0; i < f->na; i++)
      for (size_t j = 0; j < f->nb; j++)
        if (f->side_a[i] == f->side_b[j])
          return fail(L, b, "host '%s' is on both sides of the partition", t->hosts[f->side_a[i]].name);
    if ((v = get(L, m, "to"))) {
      if ((rc = get_udur(L, v, "to", &f->until_ns))) return rc;
      if (f->until_ns <= f->at_ns) return fail(L, v, "a partition must end ('to') after it starts ('from')");
    }
    if ((v = get(L, m, "oneway")) && (rc = get_bool(L, v, "oneway", &f->oneway))) return rc;
    break;
  }
  case KZ_TOPO_FAULT_SKEW:
    if ((v = get(L, m, "by"))) {
      if ((rc = get_duration(L, v, "by", true, &f->skew_ns))) return rc;
      f->has_skew = true;
    }
    if ((v = get(L, m, "drift"))) {
      if ((rc = parse_drift(L, v, &f->drift_ppm))) return rc;
      f->has_drift = true;
    }
    if (!f->has_skew && !f->has_drift)
      return fail(L, kind_key, "skew fault needs 'by' (a clock jump, e.g. '-250ms') or 'drift' (e.g. '50ppm')");
    break;
  case KZ_TOPO_FAULT_KILL:
    if ((rc = parse_fault_role(L, m, f))) return rc;
    if ((v = get(L, m, "restart"))) {
      if ((rc = get_udur(L, v, "restart", &f->until_ns))) return rc;
      if (f->until_ns <= f->at_ns) return fail(L, v, "restart must come after the kill ('at')");
    }
    break;
  case KZ_TOPO_FAULT_STALL: {
    if ((rc = parse_fault_role(L, m, f))) return rc;
    v = get(L, m, "for");
    if (!v) return fail(L, kind_key, "stall fault needs 'for' (how long, e.g. 'for: 2s')");
    uint64_t d;
    if ((rc = get_udur(L, v, "for", &d))) return rc;
    if (d == 0) return fail(L, v, "a stall must last longer than 0");
    f->until_ns = f->at_ns + d;
    break;
  }
  }
  return 0;
}

/* A host's crashes and restarts must alternate: no crash of a host that
 * is down, no restart of a host that is up. */
static int check_crash_order(struct ld *L) {
  struct kz_topo *t = L->t;
  for (size_t h = 0; h < t->nhosts; h++) {
    /* Walk the host's events in time order (ties in file order). */
    uint64_t last_t = 0;
    bool first = true;
    bool up = true;
    uint64_t down_since = 0;
    for (;;) {
      /* The earliest event after last_t (or at last_t when first). */
      uint64_t best = UINT64_MAX;
      for (size_t i = 0; i < t->nfaults; i++) {
        const struct kz_topo_fault *f = &t->faults[i];
        if (f->host != h) continue;
        uint64_t ts[2] = {UINT64_MAX, UINT64_MAX};
        if (f->kind == KZ_TOPO_FAULT_CRASH) {
          ts[0] = f->at_ns;
          ts[1] = f->until_ns;
        } else if (f->kind == KZ_TOPO_FAULT_RESTART) {
          ts[0] = f->at_ns;
        }
        for (int k = 0; k < 2; k++)
          if (ts[k] != UINT64_MAX && (first ? ts[k] >= last_t : ts[k] > last_t) && ts[k] < best) best = ts[k];
      }
      if (best == UINT64_MAX) break;
      for (size_t i = 0; i < t->nfaults; i++) {
        const struct kz_topo_fault *f = &t->faults[i];
        if (f->host != h) continue;
        for (int k = 0; k < 2; k++) {
          bool is_crash = f->kind == KZ_TOPO_FAULT_CRASH && k == 0;
          uint64_t when = k == 0 ? f->at_ns : f->until_ns;
          if (f->kind != KZ_TOPO_FAULT_CRASH && (f->kind != KZ_TOPO_FAULT_RESTART || k == 1)) continue;
          if (when != best) continue;
          if (is_crash) {
            if (!up)
              return fail_pos(L, f->pos, "host '%s' crashes at %llu ms but is already down (since %llu ms)",
                              t->hosts[h].name, (unsigned long long)(when / 1000000),
                              (unsigned long long)(down_since / 1000000));
            up = false;
            down_since = when;
          } else {
            if (up)
              return fail_pos(L, f->pos, "host '%s' restarts at %llu ms but it is not down then",
                              t->hosts[h].name, (unsigned long long)(when / 1000000));
            up = true;
          }
        }
      }
      last_t = best;
      first = false;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* The file */

static const char *const top_keys[] = {"name", "description", "hosts", "links", "faults"};

static int parse_root(struct ld *L, yaml_node_t *root) {
  struct kz_topo *t = L->t;
  int rc;
  if (!root) return fail_pos(L, (struct kz_topo_pos){1, 1}, "empty topology: expected 'hosts:' and the rest");
  if (root->type != YAML_MAPPING_NODE)
    return fail(L, root, "a topology is a mapping with 'hosts:', 'links:' and 'faults:', not %s",
                node_kind(root));
  if ((rc = check_keys(L, root, "topology", top_keys, sizeof top_keys / sizeof top_keys[0]))) return rc;
  yaml_node_t *v;
  const char *s;
  if ((v = get(L, root, "name"))) {
    if ((rc = want_scalar(L, v, "name", &s))) return rc;
    if (!(t->name = kz_strdup(s))) return KZ_ENOMEM;
  }
  if ((v = get(L, root, "description"))) {
    s = scalar(v);
    if (!s) return fail(L, v, "'description' takes text, not %s", node_kind(v));
    if (!(t->description = kz_strdup(s))) return KZ_ENOMEM;
  }
  v = get(L, root, "hosts");
  if (!v) return fail(L, root, "topology has no 'hosts:'");
  if ((rc = want_sequence(L, v, "hosts", "'- name: kz1'"))) return rc;
  if (v->data.sequence.items.top == v->data.sequence.items.start) return fail(L, v, "'hosts' is empty");
  for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++)
    if ((rc = parse_host(L, node(L, *it)))) return rc;
  if ((v = get(L, root, "links")) && (rc = parse_links(L, v))) return rc;
  if ((v = get(L, root, "faults"))) {
    if (v->type == YAML_SCALAR_NODE && !*scalar(v)) return 0; /* "faults:" with nothing */
    if ((rc = want_sequence(L, v, "faults", "'- crash: kz2'"))) return rc;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++)
      if ((rc = parse_fault(L, node(L, *it)))) return rc;
    if ((rc = check_crash_order(L))) return rc;
  }
  return 0;
}

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

int kz_topo_load(struct kz_topo **out, const char *file_name, const void *data, size_t len,
                 struct kz_topo_err *err) {
  if (err) memset(err, 0, sizeof *err);
  if (!out || (!data && len)) return KZ_EINVAL;
  const char *file = base_name(file_name ? file_name : "topology");
  struct kz_topo *t = kz_calloc(1, sizeof *t);
  if (!t) return KZ_ENOMEM;
  int rc = KZ_ENOMEM;
  if (!(t->file = kz_strdup(file))) goto out;
  struct ld L = {.file = t->file, .err = err, .t = t};
  yaml_parser_t parser;
  yaml_document_t doc;
  if (!yaml_parser_initialize(&parser)) goto out;
  yaml_parser_set_input_string(&parser, (const unsigned char *)(data ? data : ""), len);
  if (!yaml_parser_load(&parser, &doc)) {
    if (parser.error == YAML_MEMORY_ERROR) {
      rc = KZ_ENOMEM;
    } else {
      struct kz_topo_pos pos = {(uint32_t)parser.problem_mark.line + 1, (uint32_t)parser.problem_mark.column + 1};
      if (parser.context)
        rc = fail_pos(&L, pos, "YAML syntax error: %s %s", parser.problem ? parser.problem : "malformed",
                      parser.context);
      else
        rc = fail_pos(&L, pos, "YAML syntax error: %s", parser.problem ? parser.problem : "malformed");
    }
    yaml_parser_delete(&parser);
    goto out;
  }
  L.doc = &doc;
  rc = parse_root(&L, yaml_document_get_root_node(&doc));
  yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  if (rc) goto out;
  if (!t->name) {
    /* The file name without its extension. */
    size_t n = strlen(file);
    if (n > 5 && strcmp(file + n - 5, ".yaml") == 0) n -= 5;
    else if (n > 4 && strcmp(file + n - 4, ".yml") == 0) n -= 4;
    if (!(t->name = kz_strndup(file, n))) {
      rc = KZ_ENOMEM;
      goto out;
    }
  }
  if (!t->description && !(t->description = kz_strdup(""))) {
    rc = KZ_ENOMEM;
    goto out;
  }
  *out = t;
  return 0;
out:
  if (rc == KZ_ENOMEM && err && !err->text[0]) snprintf(err->text, sizeof err->text, "%s: out of memory", file);
  kz_topo_free(t);
  return rc;
}

int kz_topo_load_file(struct kz_topo **out, const char *path, struct kz_topo_err *err) {
  if (err) memset(err, 0, sizeof *err);
  if (!out || !path) return KZ_EINVAL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    int e = errno;
    if (err) snprintf(err->text, sizeof err->text, "%s: cannot open: %s", path, strerror(e));
    return e == ENOENT ? KZ_ENOENT : KZ_EIO;
  }
  struct kz_buf b;
  kz_buf_init(&b);
  char chunk[4096];
  size_t n;
  int rc = 0;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    if ((rc = kz_buf_append(&b, chunk, n))) break;
  if (!rc && ferror(f)) {
    if (err) snprintf(err->text, sizeof err->text, "%s: read error", path);
    rc = KZ_EIO;
  }
  fclose(f);
  if (!rc) rc = kz_topo_load(out, path, b.data, b.len, err);
  kz_buf_free(&b);
  return rc;
}
