/* scenario.c — turns a SIPp XML scenario into kz_sipp's command model, refusing by name what it does not implement. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "kz/sip_msg.h"
#include "sipp_int.h"

struct ld {
  struct kz_sipp_scenario *sc;
  struct kz_sipp_load_err *err;
  const char *file;
  const struct kz_sipp_load_opts *opts;
  struct kz_buf methods; /* " INVITE BYE " : requests sent so far */
  bool last_recv_optional;
};

static int ld_fail(struct ld *l, int rc, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int ld_fail(struct ld *l, int rc, int line, const char *fmt, ...) {
  if (l->err) {
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    l->err->line = line;
    l->err->unsupported = rc == KZ_ENOTSUP;
    snprintf(l->err->text, sizeof l->err->text, "%s:%d: %s%s", l->file ? l->file : "<scenario>",
             line, rc == KZ_ENOTSUP ? "unsupported: " : "", what);
  }
  return rc;
}
#define UNSUP(l, line, ...) ld_fail((l), KZ_ENOTSUP, (line), __VA_ARGS__)
#define BAD(l, line, ...) ld_fail((l), KZ_EPROTO, (line), __VA_ARGS__)

/* ------------------------------------------------------------------ */
/* Small parsers                                                       */

static bool parse_long(const char *s, long *out) {
  if (!s || !*s) return false;
  char *end;
  long v = strtol(s, &end, 0);
  while (*end == ' ' || *end == '\t') end++;
  if (*end) return false;
  *out = v;
  return true;
}

static bool parse_double(const char *s, double *out) {
  if (!s || !*s) return false;
  char *end;
  double v = strtod(s, &end);
  if (*end) return false;
  *out = v;
  return true;
}

static bool parse_bool(const char *s, bool *out) {
  long v;
  if (strcasecmp(s, "true") == 0) *out = true;
  else if (strcasecmp(s, "false") == 0) *out = false;
  else if (parse_long(s, &v)) *out = v != 0;
  else return false;
  return true;
}

static int get_bool(struct ld *l, const struct sx_node *n, const char *name, bool def, bool *out) {
  const char *v = sx_attr(n, name);
  *out = def;
  if (v && !parse_bool(v, out))
    return BAD(l, n->line, "<%s> %s=\"%s\" is not a boolean", n->name, name, v);
  return 0;
}

static int get_ms(struct ld *l, const struct sx_node *n, const char *name, uint32_t *out) {
  const char *v = sx_attr(n, name);
  long x;
  *out = 0;
  if (!v) return 0;
  if (!parse_long(v, &x) || x < 0 || x > 0x7fffffffL)
    return BAD(l, n->line, "<%s> %s=\"%s\" is not a valid integer", n->name, name, v);
  *out = (uint32_t)x;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Variables, labels, RTDs                                             */

static int var_id(struct kz_sipp_scenario *sc, const char *name, size_t len, int *out) {
  for (size_t i = 0; i < sc->nvars; i++)
    if (strlen(sc->vars[i]) == len && memcmp(sc->vars[i], name, len) == 0) {
      *out = (int)i;
      return 0;
    }
  char **v = kz_realloc(sc->vars, (sc->nvars + 1) * sizeof *v);
  if (!v) return KZ_ENOMEM;
  sc->vars = v;
  bool *g = kz_realloc(sc->var_global, (sc->nvars + 1) * sizeof *g);
  if (!g) return KZ_ENOMEM;
  sc->var_global = g;
  if (!(sc->vars[sc->nvars] = kz_strndup(name, len))) return KZ_ENOMEM;
  sc->var_global[sc->nvars] = false;
  *out = (int)sc->nvars++;
  return 0;
}

static int var_attr(struct ld *l, const struct sx_node *n, const char *attr, bool required,
                    int *out) {
  const char *v = sx_attr(n, attr);
  *out = -1;
  if (!v) {
    if (required) return BAD(l, n->line, "<%s> needs a '%s' attribute", n->name, attr);
    return 0;
  }
  if (!*v || strpbrk(v, "$,")) return BAD(l, n->line, "<%s> %s=\"%s\": bad variable name", n->name, attr, v);
  return var_id(l->sc, v, strlen(v), out);
}

static int rtd_id(struct ld *l, int line, const char *v, int *out) {
  *out = 0;
  if (strcasecmp(v, "false") == 0) return 0;
  const char *name = strcasecmp(v, "true") == 0 ? "1" : v;
  struct kz_sipp_scenario *sc = l->sc;
  for (uint32_t i = 0; i < sc->nrtd; i++)
    if (strcmp(sc->rtd_names[i], name) == 0) {
      *out = (int)i + 1;
      return 0;
    }
  if (sc->nrtd == KZ_SIPP_MAX_RTDS) return UNSUP(l, line, "more than %d response time counters", KZ_SIPP_MAX_RTDS);
  snprintf(sc->rtd_names[sc->nrtd], sizeof sc->rtd_names[0], "%s", name);
  *out = (int)++sc->nrtd;
  return 0;
}

static int parse_bounds(struct ld *l, const struct sx_node *n, uint32_t *bounds, uint32_t *nb) {
  const char *v = sx_attr(n, "value");
  if (!v) return BAD(l, n->line, "<%s> needs a 'value' attribute", n->name);
  *nb = 0;
  const char *p = v;
  while (*p) {
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    if (!*p) break;
    char *end;
    long x = strtol(p, &end, 10);
    if (end == p || x < 0) return BAD(l, n->line, "<%s> value=\"%s\" is not a list of integers", n->name, v);
    if (*nb == KZ_SIPP_MAX_BUCKETS) return UNSUP(l, n->line, "more than %d repartition bounds", KZ_SIPP_MAX_BUCKETS);
    bounds[(*nb)++] = (uint32_t)x;
    p = end;
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Attribute sets                                                      */

static bool in_list(const char *name, const char *const *list) {
  for (; *list; list++)
    if (strcmp(name, *list) == 0) return true;
  return false;
}

static const char *const common_attrs[] = {
    "display", "crlf", "hide", "hiderest", "condexec", "condexec_inverse", "next", "test",
    "chance", "ontimeout", "lost", "rtd", "start_rtd", "repeat_rtd", NULL};
static const char *const send_attrs[] = {"retrans", "timeout", NULL};
static const char *const recv_attrs[] = {"response", "request", "optional", "regexp_match",
                                         "timeout", "rrs", "auth", "ignoresdp", "advance_state",
                                         NULL};
static const char *const pause_attrs[] = {"milliseconds", "distribution", "min", "max",
                                          "value", "variable", "sanity_check", NULL};
/* SIPp features recognised on commands but not implemented here. */
static const char *const unsup_attrs[] = {"start_txn", "ack_txn", "response_txn", "counter",
                                          "normal", "exponential", "lognormal", "weibull",
                                          "pareto", "gamma", "mean", "stdev", NULL};

static int check_attrs(struct ld *l, const struct sx_node *n, const char *const *own) {
  for (size_t i = 0; i < n->nattrs; i++) {
    const char *a = n->attrs[i].name;
    if (in_list(a, common_attrs) || (own && in_list(a, own))) continue;
    if (in_list(a, unsup_attrs))
      return UNSUP(l, n->line, "attribute %s=\"%s\" on <%s> at line %d", a, n->attrs[i].value,
                   n->name, n->line);
    /* SIPp ignores attributes it does not know; say so instead. */
    int rc = sx_warn_add(&l->sc->warn, "line %d: unknown attribute '%s' on <%s> ignored",
                         n->line, a, n->name);
    if (rc) return rc;
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Templates                                                           */

void tmpl_free(struct tmpl *t) {
  if (!t->packed) {
    for (size_t i = 0; i < t->n; i++) {
      kz_free(t->c[i].text);
      kz_free(t->c[i].text2);
    }
  }
  kz_free(t->c);
  t->c = NULL;
  t->n = 0;
  t->packed = false;
}

/* Moves a finished template into one allocation: its components, then
 * every text they point to, in order.  expand reads all of them for
 * every message sent; scattered over as many small blocks they were a
 * third of the data cache misses of a 10,000-call run (bench/sim).
 * Without memory the template simply stays as it was. */
static void tmpl_pack(struct tmpl *t) {
  if (t->packed || !t->n) return;
  size_t total = t->n * sizeof *t->c;
  for (size_t i = 0; i < t->n; i++) {
    if (t->c[i].text) total += (t->c[i].type == TC_LIT ? t->c[i].len : strlen(t->c[i].text)) + 1;
    if (t->c[i].text2) total += strlen(t->c[i].text2) + 1;
  }
  struct tcomp *nc = kz_malloc(total);
  if (!nc) return;
  memcpy(nc, t->c, t->n * sizeof *t->c);
  char *w = (char *)(nc + t->n);
  for (size_t i = 0; i < t->n; i++) {
    char **fields[2] = {&nc[i].text, &nc[i].text2};
    for (int f = 0; f < 2; f++) {
      char *src = *fields[f];
      if (!src) continue;
      /* A literal may hold NUL bytes: its length, not strlen. */
      size_t n = (f == 0 && nc[i].type == TC_LIT) ? nc[i].len : strlen(src);
      memcpy(w, src, n);
      w[n] = '\0';
      *fields[f] = w;
      w += n + 1;
      kz_free(src);
    }
  }
  kz_free(t->c);
  t->c = nc;
  t->packed = true;
}

static struct tcomp *tmpl_push(struct tmpl *t, enum tc_type type) {
  struct tcomp *c = kz_realloc(t->c, (t->n + 1) * sizeof *c);
  if (!c) return NULL;
  t->c = c;
  c = &t->c[t->n++];
  memset(c, 0, sizeof *c);
  c->type = (uint8_t)type;
  return c;
}

/* Appends literal text, turning LF into CRLF when crlf (SIP messages). */
static int tmpl_lit(struct tmpl *t, const char *p, size_t len, bool crlf) {
  if (len == 0) return 0;
  struct kz_buf b;
  kz_buf_init(&b);
  for (size_t i = 0; i < len; i++) {
    if (crlf && p[i] == '\n' && kz_buf_append_byte(&b, '\r')) goto nomem;
    if (kz_buf_append_byte(&b, (uint8_t)p[i])) goto nomem;
  }
  struct tcomp *c;
  /* Merge with a preceding literal (generic keys become literals). */
  if (t->n && t->c[t->n - 1].type == TC_LIT) {
    c = &t->c[t->n - 1];
    if (b.len > UINT32_MAX - 1 - c->len) goto nomem; /* len is 32 bits */
    char *m = kz_realloc(c->text, c->len + b.len + 1);
    if (!m) goto nomem;
    memcpy(m + c->len, b.data, b.len);
    c->len += b.len;
    m[c->len] = '\0';
    c->text = m;
    kz_buf_free(&b);
    return 0;
  }
  if (b.len >= UINT32_MAX) goto nomem; /* len is 32 bits */
  if (!(c = tmpl_push(t, TC_LIT))) goto nomem;
  c->text = (char *)b.data;
  c->len = (uint32_t)b.len;
  return 0;
nomem:
  kz_buf_free(&b);
  return KZ_ENOMEM;
}

static const struct {
  const char *name;
  enum tc_type type;
  bool offset;
} kw_table[] = {
    {"service", TC_SERVICE, false},         {"remote_ip", TC_REMOTE_IP, false},
    {"remote_host", TC_REMOTE_IP, false},   {"remote_port", TC_REMOTE_PORT, true},
    {"local_ip", TC_LOCAL_IP, false},       {"local_ip_type", TC_LOCAL_IP_TYPE, false},
    {"local_port", TC_LOCAL_PORT, true},    {"transport", TC_TRANSPORT, false},
    {"media_ip", TC_MEDIA_IP, false},       {"media_ip_type", TC_MEDIA_IP_TYPE, false},
    {"media_port", TC_MEDIA_PORT, true},    {"auto_media_port", TC_AUTO_MEDIA_PORT, true},
    {"branch", TC_BRANCH, true},            {"call_id", TC_CALL_ID, false},
    {"call_number", TC_CALL_NUMBER, false}, {"cseq", TC_CSEQ, true},
    {"len", TC_LEN, true},                  {"peer_tag_param", TC_PEER_TAG_PARAM, false},
    {"pid", TC_PID, false},                 {"clock_tick", TC_CLOCK_TICK, false},
    {"timestamp", TC_TIMESTAMP, false},     {"routes", TC_ROUTES, false},
    {"next_url", TC_NEXT_URL, false},
};

/* [authentication username=u password=p]: the only parameters kept. */
static int kw_auth(struct ld *l, int line, const char *k, size_t klen, struct tmpl *t) {
  struct tcomp *c = tmpl_push(t, TC_AUTH);
  if (!c) return KZ_ENOMEM;
  const char *p = k + strlen("authentication"), *end = k + klen;
  while (p < end) {
    while (p < end && *p == ' ') p++;
    if (p >= end) break;
    const char *eq = memchr(p, '=', (size_t)(end - p));
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    if (!sp) sp = end;
    if (!eq || eq > sp) return BAD(l, line, "[authentication]: bad parameter '%.*s'", (int)(sp - p), p);
    char **dst = NULL;
    if ((size_t)(eq - p) == 8 && memcmp(p, "username", 8) == 0) dst = &c->text;
    else if ((size_t)(eq - p) == 8 && memcmp(p, "password", 8) == 0) dst = &c->text2;
    else return UNSUP(l, line, "[authentication] parameter '%.*s' (AKA) at line %d", (int)(eq - p), p, line);
    kz_free(*dst);
    if (!(*dst = kz_strndup(eq + 1, (size_t)(sp - eq - 1)))) return KZ_ENOMEM;
    p = sp;
  }
  return 0;
}

static int keyword(struct ld *l, int line, const char *k, size_t klen, struct tmpl *t) {
  struct tcomp *c;
  if (klen == 0) return BAD(l, line, "empty keyword []");
  if (k[0] == '$') {
    int id;
    if (klen == 1) return BAD(l, line, "keyword [$] without a variable name");
    int rc = var_id(l->sc, k + 1, klen - 1, &id);
    if (rc) return rc;
    if (!(c = tmpl_push(t, TC_VAR))) return KZ_ENOMEM;
    c->num = id;
    return 0;
  }
  if (klen > 5 && memcmp(k, "last_", 5) == 0) {
    const char *h = k + 5;
    size_t hl = klen - 5;
    if (hl == 11 && memcmp(h, "Request_URI", 11) == 0) return tmpl_push(t, TC_LAST_REQUEST_URI) ? 0 : KZ_ENOMEM;
    if (hl >= 11 && memcmp(h, "cseq_number", 11) == 0) {
      long off = 0;
      if (hl > 11) {
        char tmp[16];
        snprintf(tmp, sizeof tmp, "%.*s", (int)(hl - 11), h + 11);
        if (!parse_long(tmp, &off)) return BAD(l, line, "bad keyword [%.*s]", (int)klen, k);
      }
      if (!(c = tmpl_push(t, TC_LAST_CSEQ_NUMBER))) return KZ_ENOMEM;
      c->offset = (int)off;
      return 0;
    }
    bool value_only = false;
    if (hl > 6 && memcmp(h + hl - 6, ":value", 6) == 0) {
      value_only = true;
      hl -= 6;
    } else if (hl > 0 && h[hl - 1] == ':') {
      hl--;
    }
    if (hl == 0 || memchr(h, ' ', hl)) return BAD(l, line, "bad keyword [%.*s]", (int)klen, k);
    if (!(c = tmpl_push(t, TC_LAST_HDR))) return KZ_ENOMEM;
    c->value_only = value_only;
    /* The header's id, looked up once here rather than for every message
     * the engine builds (KZ_SIP_HDR_OTHER: matched by name). */
    c->num = (int)kz_sip_hdr_lookup(kz_slice_make(h, hl));
    c->len = (uint32_t)hl; /* part of one line of the scenario */
    return (c->text = kz_strndup(h, hl)) ? 0 : KZ_ENOMEM;
  }
  if (klen > 5 && memcmp(k, "field", 5) == 0 && k[5] >= '0' && k[5] <= '9') {
    size_t i = 5;
    int num = 0;
    while (i < klen && k[i] >= '0' && k[i] <= '9' && num < 100000) num = num * 10 + (k[i++] - '0');
    if (i < klen)
      return UNSUP(l, line, "keyword [%.*s] (field with file=/line= parameters) at line %d", (int)klen, k, line);
    if (!(c = tmpl_push(t, TC_FIELD))) return KZ_ENOMEM;
    c->num = num;
    if (num > l->sc->max_field) l->sc->max_field = num;
    return 0;
  }
  if (klen >= 14 && memcmp(k, "authentication", 14) == 0 && (klen == 14 || k[14] == ' '))
    return kw_auth(l, line, k, klen, t);
  /* name[+-N] */
  size_t nl = 0;
  while (nl < klen && k[nl] != '+' && k[nl] != '-') nl++;
  for (size_t i = 0; i < sizeof kw_table / sizeof kw_table[0]; i++) {
    if (strlen(kw_table[i].name) != nl || memcmp(kw_table[i].name, k, nl) != 0) continue;
    long off = 0;
    if (nl < klen) {
      char tmp[16];
      snprintf(tmp, sizeof tmp, "%.*s", (int)(klen - nl), k + nl);
      if (!kw_table[i].offset || !parse_long(tmp, &off)) break;
    }
    if (!(c = tmpl_push(t, kw_table[i].type))) return KZ_ENOMEM;
    c->offset = (int)off;
    return 0;
  }
  /* SIPp's -key generic keywords are plain text substitutions. */
  if (l->opts)
    for (size_t i = 0; i < l->opts->nkeys; i++) {
      const char *name = l->opts->keys[i].name;
      if (name && strlen(name) == klen && memcmp(name, k, klen) == 0) {
        const char *v = l->opts->keys[i].value ? l->opts->keys[i].value : "";
        return tmpl_lit(t, v, strlen(v), false);
      }
    }
  return UNSUP(l, line, "keyword [%.*s] at line %d", (int)(klen > 60 ? 60 : klen), k, line);
}

/* Compiles text into t; `line` is the line of text[0]. */
static int compile(struct ld *l, const char *text, size_t len, int line, bool crlf, struct tmpl *t) {
  const char *p = text, *end = text + len, *lit = text;
  int rc;
  while (p < end) {
    if (*p == '[') {
      const char *close = memchr(p, ']', (size_t)(end - p));
      const char *nl = memchr(p, '\n', (size_t)(end - p));
      if (close && (!nl || close < nl)) {
        if ((rc = tmpl_lit(t, lit, (size_t)(p - lit), crlf))) return rc;
        if ((rc = keyword(l, line, p + 1, (size_t)(close - p - 1), t))) return rc;
        p = lit = close + 1;
        continue;
      }
    }
    if (*p == '\n') line++;
    p++;
  }
  if ((rc = tmpl_lit(t, lit, (size_t)(p - lit), crlf))) return rc;
  tmpl_pack(t);
  return 0;
}

/* SIPp's clean_cdata: trims the message, drops spaces and tabs around
 * line breaks, ends the header block.  *lead gets the number of line
 * breaks trimmed in front (to keep line numbers right). */
static int clean_cdata(const char *in, size_t len, char **out, size_t *outlen, int *lead) {
  size_t a = 0, b = len;
  *lead = 0;
  while (a < b && (in[a] == ' ' || in[a] == '\t' || in[a] == '\n')) {
    if (in[a] == '\n') (*lead)++;
    a++;
  }
  int removed = 0;
  while (b > a && (in[b - 1] == ' ' || in[b - 1] == '\t' || in[b - 1] == '\n')) {
    if (in[b - 1] == '\n') removed++;
    b--;
  }
  if (a == b) return KZ_EPROTO;
  struct kz_buf m;
  kz_buf_init(&m);
  if (kz_buf_reserve(&m, b - a + 4)) return KZ_ENOMEM;
  for (size_t i = a; i < b; i++) {
    char c = in[i];
    if (c == '\n') {
      while (m.len && (m.data[m.len - 1] == ' ' || m.data[m.len - 1] == '\t')) m.len--;
      m.data[m.len++] = '\n';
      while (i + 1 < b && (in[i + 1] == ' ' || in[i + 1] == '\t')) i++;
    } else {
      m.data[m.len++] = (uint8_t)c;
    }
  }
  m.data[m.len] = '\0';
  if (!strstr((char *)m.data, "\n\n")) {
    m.data[m.len++] = '\n';
    m.data[m.len++] = '\n';
  } else if (m.data[m.len - 1] != '\n' && removed) {
    m.data[m.len++] = '\n';
  }
  m.data[m.len] = '\0';
  *out = (char *)m.data;
  *outlen = m.len;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Actions                                                             */

static int parse_ereg(struct ld *l, const struct sx_node *n, struct action *a) {
  static const char *const own[] = {"regexp", "search_in", "header", "occurrence", "occurence",
                                    "check_it", "check_it_inverse", "assign_to", "case_indep",
                                    "start_line", "variable", NULL};
  int rc;
  for (size_t i = 0; i < n->nattrs; i++)
    if (!in_list(n->attrs[i].name, own) &&
        (rc = sx_warn_add(&l->sc->warn, "line %d: unknown attribute '%s' on <ereg> ignored", n->line,
                          n->attrs[i].name)))
      return rc;
  const char *re = sx_attr(n, "regexp");
  if (!re) return BAD(l, n->line, "<ereg> needs a 'regexp' attribute");
  bool icase, start_line;
  if ((rc = get_bool(l, n, "case_indep", false, &icase))) return rc;
  if ((rc = get_bool(l, n, "start_line", false, &start_line))) return rc;
  if (start_line) return UNSUP(l, n->line, "<ereg start_line=\"true\"> at line %d", n->line);
  const char *where = sx_attr(n, "search_in");
  a->occurrence = 1;
  if (!where || strcmp(where, "msg") == 0) {
    a->where = EREG_MSG;
  } else if (strcmp(where, "body") == 0) {
    a->where = EREG_BODY;
  } else if (strcmp(where, "var") == 0) {
    a->where = EREG_VAR;
    if ((rc = var_attr(l, n, "variable", true, &a->var_in))) return rc;
  } else if (strcmp(where, "hdr") == 0) {
    const char *h = sx_attr(n, "header");
    if (!h || !*h) return BAD(l, n->line, "<ereg search_in=\"hdr\"> needs a 'header'");
    size_t hl = strlen(h);
    while (hl && (h[hl - 1] == ':' || h[hl - 1] == ' ')) hl--;
    if (!(a->header = kz_strndup(h, hl))) return KZ_ENOMEM;
    a->where = EREG_HDR;
    const char *occ = sx_attr(n, "occurrence");
    if (!occ) occ = sx_attr(n, "occurence");
    long o;
    if (occ) {
      if (!parse_long(occ, &o) || o < 1) return BAD(l, n->line, "<ereg> occurrence=\"%s\" is not a positive integer", occ);
      a->occurrence = (int)o;
    }
  } else {
    return BAD(l, n->line, "<ereg> unknown search_in=\"%s\"", where);
  }
  if (sx_attr(n, "check_it") && sx_attr(n, "check_it_inverse"))
    return BAD(l, n->line, "<ereg> has both check_it and check_it_inverse");
  if ((rc = get_bool(l, n, "check_it", false, &a->check_it))) return rc;
  if ((rc = get_bool(l, n, "check_it_inverse", false, &a->check_inverse))) return rc;
  const char *as = sx_attr(n, "assign_to");
  if (!as) return BAD(l, n->line, "<ereg> needs an 'assign_to' attribute");
  for (const char *p = as;;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    int id;
    if (len == 0 || memchr(p, '$', len)) return BAD(l, n->line, "<ereg> assign_to=\"%s\": bad variable name", as);
    if ((rc = var_id(l->sc, p, len, &id))) return rc;
    int *v = kz_realloc(a->assign, (a->nassign + 1) * sizeof *v);
    if (!v) return KZ_ENOMEM;
    a->assign = v;
    a->assign[a->nassign++] = id;
    if (!comma) break;
    p = comma + 1;
  }
  int cr = regcomp(&a->re, re, REG_EXTENDED | (icase ? REG_ICASE : 0));
  if (cr) {
    char why[80];
    regerror(cr, &a->re, why, sizeof why);
    return BAD(l, n->line, "<ereg> regexp \"%.60s\" does not compile: %s", re, why);
  }
  a->re_ok = true;
  return 0;
}

static int parse_rhs(struct ld *l, const struct sx_node *n, struct action *a, const char *vname) {
  const char *v = sx_attr(n, "value");
  if (v) {
    if (sx_attr(n, vname)) return BAD(l, n->line, "<%s> has both value and %s", n->name, vname);
    if (!parse_double(v, &a->value)) return BAD(l, n->line, "<%s> value=\"%s\" is not a number", n->name, v);
    a->has_value = true;
    return 0;
  }
  return var_attr(l, n, vname, true, strcmp(vname, "variable2") == 0 ? &a->var_in2 : &a->var_in);
}

static int parse_action(struct ld *l, const struct sx_node *n, struct action *a) {
  int rc;
  const char *nm = n->name;
  a->line = n->line;
  a->var_out = a->var_in = a->var_in2 = -1;
  if (strcmp(nm, "ereg") == 0) {
    a->type = ACT_EREG;
    return parse_ereg(l, n, a);
  }
  if (!strcmp(nm, "log") || !strcmp(nm, "warning") || !strcmp(nm, "error")) {
    a->type = !strcmp(nm, "log") ? ACT_LOG : !strcmp(nm, "warning") ? ACT_WARNING : ACT_ERROR;
    const char *m = sx_attr(n, "message");
    if (!m) return BAD(l, n->line, "<%s> needs a 'message' attribute", nm);
    return compile(l, m, strlen(m), n->line, false, &a->msg);
  }
  if (!strcmp(nm, "assign") || !strcmp(nm, "add") || !strcmp(nm, "subtract") ||
      !strcmp(nm, "multiply") || !strcmp(nm, "divide")) {
    a->type = !strcmp(nm, "assign") ? ACT_ASSIGN : !strcmp(nm, "add") ? ACT_ADD
              : !strcmp(nm, "subtract") ? ACT_SUBTRACT : !strcmp(nm, "multiply") ? ACT_MULTIPLY
                                                                                 : ACT_DIVIDE;
    if ((rc = var_attr(l, n, "assign_to", true, &a->var_out))) return rc;
    if ((rc = parse_rhs(l, n, a, "variable"))) return rc;
    if (a->type == ACT_DIVIDE && a->has_value && a->value == 0.0)
      return BAD(l, n->line, "<divide> by zero");
    return 0;
  }
  if (!strcmp(nm, "assignstr")) {
    a->type = ACT_ASSIGNSTR;
    if ((rc = var_attr(l, n, "assign_to", true, &a->var_out))) return rc;
    const char *v = sx_attr(n, "value");
    if (!v) return BAD(l, n->line, "<assignstr> needs a 'value' attribute");
    return compile(l, v, strlen(v), n->line, false, &a->msg);
  }
  if (!strcmp(nm, "test") || !strcmp(nm, "strcmp")) {
    a->type = !strcmp(nm, "test") ? ACT_TEST : ACT_STRCMP;
    if (sx_attr(n, "check_it") && sx_attr(n, "check_it_inverse"))
      return BAD(l, n->line, "<%s> has both check_it and check_it_inverse", nm);
    if ((rc = get_bool(l, n, "check_it", false, &a->check_it))) return rc;
    if ((rc = get_bool(l, n, "check_it_inverse", false, &a->check_inverse))) return rc;
    bool need_out = !sx_attr(n, "check_it") && !sx_attr(n, "check_it_inverse");
    if ((rc = var_attr(l, n, "assign_to", need_out, &a->var_out))) return rc;
    if ((rc = var_attr(l, n, "variable", true, &a->var_in))) return rc;
    const char *v = sx_attr(n, "value");
    if (v && sx_attr(n, "variable2")) return BAD(l, n->line, "<%s> has both value and variable2", nm);
    if (v) {
      a->has_value = true;
      if (a->type == ACT_STRCMP) {
        if (!(a->str_value = kz_strdup(v))) return KZ_ENOMEM;
      } else if (!parse_double(v, &a->value)) {
        return BAD(l, n->line, "<test> value=\"%s\" is not a number", v);
      }
    } else if ((rc = var_attr(l, n, "variable2", true, &a->var_in2))) {
      return rc;
    }
    if (a->type == ACT_TEST) {
      const char *c = sx_attr(n, "compare");
      static const char *const ops[] = {"equal", "not_equal", "greater_than", "less_than",
                                        "greater_than_equal", "less_than_equal"};
      if (!c) return BAD(l, n->line, "<test> needs a 'compare' attribute");
      size_t i = 0;
      while (i < 6 && strcmp(c, ops[i])) i++;
      if (i == 6) return BAD(l, n->line, "<test> invalid compare=\"%s\"", c);
      a->cmp = (enum cmp_op)i;
    }
    return 0;
  }
  if (!strcmp(nm, "jump")) {
    a->type = ACT_JUMP;
    return parse_rhs(l, n, a, "variable");
  }
  if (!strcmp(nm, "gettimeofday")) {
    a->type = ACT_GETTIMEOFDAY;
    const char *as = sx_attr(n, "assign_to");
    const char *comma = as ? strchr(as, ',') : NULL;
    if (!comma || strchr(comma + 1, ',')) return BAD(l, n->line, "<gettimeofday> needs assign_to=\"secs,usecs\"");
    if ((rc = var_id(l->sc, as, (size_t)(comma - as), &a->var_out))) return rc;
    return var_id(l->sc, comma + 1, strlen(comma + 1), &a->var_in);
  }
  if (!strcmp(nm, "exec")) {
    const char *what = n->nattrs ? n->attrs[0].name : "exec";
    return UNSUP(l, n->line, "<exec %s=...> (%s) at line %d", what,
                 !strcmp(what, "command") ? "runs a shell command"
                 : !strncmp(what, "play_", 5) || !strncmp(what, "rtp_", 4) ? "media"
                                                                           : "internal command",
                 n->line);
  }
  return UNSUP(l, n->line, "action <%s> at line %d", nm, n->line);
}

static int parse_actions(struct ld *l, const struct sx_node *cmdn, struct cmd *c) {
  for (size_t i = 0; i < cmdn->nkids; i++) {
    const struct sx_node *an = cmdn->kids[i];
    if (strcmp(an->name, "action") != 0) {
      int rc = sx_warn_add(&l->sc->warn, "line %d: element <%s> inside <%s> ignored", an->line,
                           an->name, cmdn->name);
      if (rc) return rc;
      continue;
    }
    for (size_t j = 0; j < an->nkids; j++) {
      struct action *acts = kz_realloc(c->acts, (c->nacts + 1) * sizeof *acts);
      if (!acts) return KZ_ENOMEM;
      c->acts = acts;
      struct action *a = &c->acts[c->nacts++];
      memset(a, 0, sizeof *a);
      int rc = parse_action(l, an->kids[j], a);
      if (rc) return rc;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Commands                                                            */

static int common_attributes(struct ld *l, const struct sx_node *n, struct cmd *c) {
  int rc;
  const char *v;
  c->next = c->on_timeout = -1;
  c->test = c->condexec = -1;
  c->chance_ppm = 1000000;
  if ((v = sx_attr(n, "crlf"))) c->crlf = true;
  if ((rc = var_attr(l, n, "condexec", false, &c->condexec))) return rc;
  if ((rc = get_bool(l, n, "condexec_inverse", false, &c->condexec_inverse))) return rc;
  if ((v = sx_attr(n, "lost"))) {
    double p;
    if (!parse_double(v, &p) || p < 0 || p > 100) return BAD(l, n->line, "lost=\"%s\" is not a percentage", v);
    c->lost_ppm = (uint32_t)(p * 10000.0 + 0.5);
  }
  if ((v = sx_attr(n, "next"))) {
    if (c->timewait) return BAD(l, n->line, "next labels are not allowed in <timewait>");
    if (!(c->next_label = kz_strdup(v))) return KZ_ENOMEM;
    if ((rc = var_attr(l, n, "test", false, &c->test))) return rc;
    if ((v = sx_attr(n, "chance"))) {
      double p;
      if (!parse_double(v, &p) || p < 0 || p > 1) return BAD(l, n->line, "chance=\"%s\" not in [0..1]", v);
      c->chance_ppm = (uint32_t)(p * 1000000.0 + 0.5);
    }
  } else if (sx_attr(n, "test")) {
    if ((rc = sx_warn_add(&l->sc->warn, "line %d: test without next on <%s> has no effect", n->line, n->name)))
      return rc;
  }
  if ((v = sx_attr(n, "ontimeout"))) {
    if (c->timewait) return BAD(l, n->line, "ontimeout labels are not allowed in <timewait>");
    if (!(c->timeout_label = kz_strdup(v))) return KZ_ENOMEM;
  }
  if ((v = sx_attr(n, "start_rtd")) && (rc = rtd_id(l, n->line, v, &c->start_rtd))) return rc;
  if ((v = sx_attr(n, "rtd")) && (rc = rtd_id(l, n->line, v, &c->stop_rtd))) return rc;
  if ((rc = get_bool(l, n, "repeat_rtd", false, &c->repeat_rtd))) return rc;
  return parse_actions(l, n, c);
}

static int add_method(struct ld *l, const char *m) {
  if (l->methods.len == 0 && kz_buf_append_byte(&l->methods, ' ')) return KZ_ENOMEM;
  if (kz_buf_append_cstr(&l->methods, m) || kz_buf_append_byte(&l->methods, ' ')) return KZ_ENOMEM;
  return 0;
}

static int parse_send(struct ld *l, const struct sx_node *n, struct cmd *c) {
  int rc;
  if ((rc = check_attrs(l, n, send_attrs))) return rc;
  if (!n->cdata) return BAD(l, n->line, "<send> without CDATA");
  char *msg;
  size_t mlen;
  int lead;
  rc = clean_cdata(n->cdata, n->cdata_len, &msg, &mlen, &lead);
  if (rc == KZ_EPROTO) return BAD(l, n->cdata_line, "empty CDATA in <send>");
  if (rc) return rc;
  rc = compile(l, msg, mlen, n->cdata_line + lead, true, &c->tmpl);
  /* The start line decides request or response. */
  if (rc == 0) {
    size_t i = 0;
    while (i < mlen && msg[i] != ' ' && msg[i] != '\n' && msg[i] != '[') i++;
    if (i == 7 && memcmp(msg, "SIP/2.0", 7) == 0) {
      c->is_request = false;
    } else if (i > 0 && i < sizeof c->method && msg[i] == ' ') {
      c->is_request = true;
      memcpy(c->method, msg, i);
      c->method[i] = '\0';
      c->is_invite = strcmp(c->method, "INVITE") == 0;
      c->is_ack = strcmp(c->method, "ACK") == 0;
      c->is_cancel = strcmp(c->method, "CANCEL") == 0;
      rc = add_method(l, c->method);
    } else {
      rc = BAD(l, n->cdata_line + lead, "<send>: the message does not start with a method or SIP/2.0");
    }
  }
  kz_free(msg);
  if (rc) return rc;
  if ((rc = get_ms(l, n, "retrans", &c->retrans_ms))) return rc;
  return common_attributes(l, n, c);
}

static int parse_recv(struct ld *l, const struct sx_node *n, struct cmd *c) {
  int rc;
  const char *v;
  if ((rc = check_attrs(l, n, recv_attrs))) return rc;
  if ((v = sx_attr(n, "response"))) {
    long code;
    if (!parse_long(v, &code) || code < 100 || code > 699)
      return BAD(l, n->line, "<recv> response=\"%s\" is not a response code", v);
    c->recv_response = (int)code;
    if (!(c->cseq_methods = kz_strdup(l->methods.len ? (char *)l->methods.data : " "))) return KZ_ENOMEM;
  }
  if ((v = sx_attr(n, "request"))) {
    if (c->recv_response) return BAD(l, n->line, "<recv> with both request and response");
    if (!(c->recv_request = kz_strdup(v))) return KZ_ENOMEM;
  }
  if (!c->recv_response && !c->recv_request) return BAD(l, n->line, "<recv> needs request or response");
  v = sx_attr(n, "optional");
  if (!v || !strcmp(v, "false")) c->optional = 0;
  else if (!strcmp(v, "true")) c->optional = 1;
  else if (!strcmp(v, "global")) c->optional = 2;
  else return BAD(l, n->line, "<recv> optional=\"%s\" is not true, false or global", v);
  bool adv;
  if ((rc = get_bool(l, n, "advance_state", true, &adv))) return rc;
  if (!adv) return UNSUP(l, n->line, "advance_state=\"false\" on <recv> at line %d", n->line);
  if ((rc = get_bool(l, n, "regexp_match", false, &c->regexp_match))) return rc;
  if (c->regexp_match && c->recv_request) {
    if (regcomp(&c->req_re, c->recv_request, REG_EXTENDED | REG_NOSUB))
      return BAD(l, n->line, "<recv> request regexp \"%.60s\" does not compile", c->recv_request);
    c->req_re_ok = true;
  }
  if ((rc = get_ms(l, n, "timeout", &c->timeout_ms))) return rc;
  if ((rc = get_bool(l, n, "rrs", false, &c->rrs))) return rc;
  if ((rc = get_bool(l, n, "auth", false, &c->auth))) return rc;
  return common_attributes(l, n, c);
}

static int parse_pause(struct ld *l, const struct sx_node *n, struct cmd *c) {
  int rc;
  const char *v;
  if ((rc = check_attrs(l, n, pause_attrs))) return rc;
  c->timewait = strcmp(n->name, "timewait") == 0;
  c->pause_var = -1;
  double d;
  if (sx_attr(n, "variable")) {
    c->pause = PAUSE_VAR;
    if ((rc = var_attr(l, n, "variable", true, &c->pause_var))) return rc;
  } else if ((v = sx_attr(n, "distribution"))) {
    if (!strcmp(v, "fixed")) {
      const char *x = sx_attr(n, "value");
      if (!x || !parse_double(x, &d) || d < 0) return BAD(l, n->line, "fixed distribution needs a 'value'");
      c->pause = PAUSE_FIXED;
      c->pause_ms = d > 2147483647.0 ? 2147483647u : (uint32_t)d;
    } else if (!strcmp(v, "uniform")) {
      double lo, hi;
      const char *a = sx_attr(n, "min"), *b = sx_attr(n, "max");
      if (!a || !b || !parse_double(a, &lo) || !parse_double(b, &hi) || lo < 0 || hi < lo)
        return BAD(l, n->line, "uniform distribution needs 0 <= min <= max");
      c->pause = PAUSE_UNIFORM;
      c->pause_min = (uint32_t)lo;
      c->pause_max = (uint32_t)hi;
    } else {
      return UNSUP(l, n->line, "pause distribution=\"%s\" at line %d", v, n->line);
    }
  } else if (sx_attr(n, "min") || sx_attr(n, "max")) {
    return UNSUP(l, n->line, "old-style uniform pause (min/max without distribution) at line %d", n->line);
  } else if ((v = sx_attr(n, "milliseconds"))) {
    if (!parse_double(v, &d) || d < 0) return BAD(l, n->line, "<%s> milliseconds=\"%s\" is not a duration", n->name, v);
    c->pause = PAUSE_FIXED;
    c->pause_ms = d > 2147483647.0 ? 2147483647u : (uint32_t)d;
  } else {
    c->pause = PAUSE_DEFAULT;
  }
  return common_attributes(l, n, c);
}

static struct cmd *new_cmd(struct kz_sipp_scenario *sc) {
  if (sc->ncmds == sc->capcmds) {
    size_t cap = sc->capcmds ? sc->capcmds * 2 : 16;
    struct cmd *c = kz_realloc(sc->cmds, cap * sizeof *c);
    if (!c) return NULL;
    sc->cmds = c;
    sc->capcmds = cap;
  }
  struct cmd *c = &sc->cmds[sc->ncmds++];
  memset(c, 0, sizeof *c);
  return c;
}

static int label_index(struct ld *l, int line, const char *name, int *out) {
  for (size_t i = 0; i < l->sc->nlabels; i++)
    if (strcmp(l->sc->labels[i].name, name) == 0) {
      *out = (int)l->sc->labels[i].index;
      return 0;
    }
  return BAD(l, line, "the label '%s' is not defined", name);
}

static int vars_from(struct ld *l, const struct sx_node *n, bool global, bool must_exist) {
  const char *v = sx_attr(n, "variables");
  if (!v) return BAD(l, n->line, "<%s> needs a 'variables' attribute", n->name);
  for (const char *p = v;;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    while (len && *p == ' ') p++, len--;
    while (len && p[len - 1] == ' ') len--;
    if (len) {
      size_t before = l->sc->nvars;
      int id, rc = var_id(l->sc, p, len, &id);
      if (rc) return rc;
      if (must_exist && l->sc->nvars != before) {
        rc = sx_warn_add(&l->sc->warn, "line %d: <Reference> to variable '%.*s' never used before",
                         n->line, (int)len, p);
        if (rc) return rc;
      }
      if (global) l->sc->var_global[id] = true;
    }
    if (!comma) break;
    p = comma + 1;
  }
  return 0;
}

static int build(struct ld *l, const struct sx_node *root) {
  struct kz_sipp_scenario *sc = l->sc;
  int rc;
  if (strcmp(root->name, "scenario") != 0) return BAD(l, root->line, "the root element is <%s>, not <scenario>", root->name);
  const char *nm = sx_attr(root, "name");
  if (!(sc->name = kz_strdup(nm ? nm : ""))) return KZ_ENOMEM;
  bool timewait_seen = false;
  for (size_t i = 0; i < root->nkids; i++) {
    const struct sx_node *n = root->kids[i];
    const char *e = n->name;
    if (!strcmp(e, "ResponseTimeRepartition")) {
      if ((rc = parse_bounds(l, n, sc->rt_bounds, &sc->nrt))) return rc;
    } else if (!strcmp(e, "CallLengthRepartition")) {
      if ((rc = parse_bounds(l, n, sc->cl_bounds, &sc->ncl))) return rc;
    } else if (!strcmp(e, "Global") || !strcmp(e, "User") || !strcmp(e, "Reference")) {
      if ((rc = vars_from(l, n, !strcmp(e, "Global"), !strcmp(e, "Reference")))) return rc;
    } else if (!strcmp(e, "label")) {
      const char *id = sx_attr(n, "id");
      if (!id) return BAD(l, n->line, "<label> needs an 'id'");
      for (size_t j = 0; j < sc->nlabels; j++)
        if (!strcmp(sc->labels[j].name, id)) return BAD(l, n->line, "the label name '%s' is used twice", id);
      struct label *lb = kz_realloc(sc->labels, (sc->nlabels + 1) * sizeof *lb);
      if (!lb) return KZ_ENOMEM;
      sc->labels = lb;
      if (!(lb[sc->nlabels].name = kz_strdup(id))) return KZ_ENOMEM;
      lb[sc->nlabels++].index = sc->ncmds;
    } else if (!strcmp(e, "sendCmd") || !strcmp(e, "recvCmd")) {
      return UNSUP(l, n->line, "<%s> (3PCC) at line %d", e, n->line);
    } else if (!strcmp(e, "init")) {
      return UNSUP(l, n->line, "<init> (initialization stanza) at line %d", n->line);
    } else if (!strcmp(e, "DefaultMessage")) {
      return UNSUP(l, n->line, "<DefaultMessage> at line %d", n->line);
    } else if (!strcmp(e, "send") || !strcmp(e, "recv") || !strcmp(e, "pause") ||
               !strcmp(e, "timewait") || !strcmp(e, "nop")) {
      if (timewait_seen) return BAD(l, n->line, "<timewait> can only be the last message in a scenario");
      bool is_recv = !strcmp(e, "recv");
      if (!is_recv && l->last_recv_optional)
        return BAD(l, n->line, "<recv> before <%s> sequence without a mandatory message", e);
      struct cmd *c = new_cmd(sc);
      if (!c) return KZ_ENOMEM;
      c->line = n->line;
      if (!strcmp(e, "send")) {
        c->type = CMD_SEND;
        rc = parse_send(l, n, c);
      } else if (is_recv) {
        c->type = CMD_RECV;
        rc = parse_recv(l, n, c);
        l->last_recv_optional = c->optional != 0;
      } else if (!strcmp(e, "nop")) {
        c->type = CMD_NOP;
        rc = check_attrs(l, n, NULL);
        if (!rc) rc = common_attributes(l, n, c);
      } else {
        c->type = CMD_PAUSE;
        timewait_seen = !strcmp(e, "timewait");
        rc = parse_pause(l, n, c);
      }
      if (rc) return rc;
    } else {
      return BAD(l, n->line, "unknown element <%s> in the scenario", e);
    }
  }
  if (sc->ncmds == 0) return BAD(l, root->line, "no message in the scenario");
  for (size_t i = 0; i < sc->ncmds; i++) {
    struct cmd *c = &sc->cmds[i];
    if (c->next_label && (rc = label_index(l, c->line, c->next_label, &c->next))) return rc;
    if (c->timeout_label && (rc = label_index(l, c->line, c->timeout_label, &c->on_timeout))) return rc;
  }
  sc->role = KZ_SIPP_ROLE_AUTO;
  for (size_t i = 0; i < sc->ncmds && sc->role == KZ_SIPP_ROLE_AUTO; i++) {
    if (sc->cmds[i].type == CMD_SEND) sc->role = KZ_SIPP_UAC;
    else if (sc->cmds[i].type == CMD_RECV) sc->role = KZ_SIPP_UAS;
  }
  if (sc->role == KZ_SIPP_ROLE_AUTO) return BAD(l, root->line, "unable to determine the role: no send or recv");
  if (sc->nrt == 0) {
    static const uint32_t rt[] = {10, 20, 30, 40, 50, 100, 150, 200};
    memcpy(sc->rt_bounds, rt, sizeof rt);
    sc->nrt = 8;
  }
  if (sc->ncl == 0) {
    static const uint32_t cl[] = {10, 50, 100, 500, 1000, 5000, 10000};
    memcpy(sc->cl_bounds, cl, sizeof cl);
    sc->ncl = 7;
  }
  return 0;
}

int kz_sipp_scenario_load(struct kz_sipp_scenario **out, const char *file_name, const void *data,
                          size_t len, const struct kz_sipp_load_opts *opts,
                          struct kz_sipp_load_err *err) {
  if (err) memset(err, 0, sizeof *err);
  if (!out || (!data && len)) return KZ_EINVAL;
  struct kz_sipp_scenario *sc = kz_calloc(1, sizeof *sc);
  if (!sc) return KZ_ENOMEM;
  sc->max_field = -1;
  struct ld l = {.sc = sc, .err = err, .file = file_name, .opts = opts};
  kz_buf_init(&l.methods);
  struct sx_node *root = NULL;
  int rc = sx_parse(&root, data, len, &sc->warn, err, file_name);
  if (rc == 0) rc = build(&l, root);
  sx_free(root);
  kz_buf_free(&l.methods);
  if (rc) {
    if (rc == KZ_ENOMEM && err) snprintf(err->text, sizeof err->text, "%s: out of memory", file_name ? file_name : "<scenario>");
    kz_sipp_scenario_free(sc);
    return rc;
  }
  *out = sc;
  return 0;
}

static void free_action(struct action *a) {
  if (a->re_ok) regfree(&a->re);
  kz_free(a->header);
  kz_free(a->assign);
  kz_free(a->str_value);
  tmpl_free(&a->msg);
}

void kz_sipp_scenario_free(struct kz_sipp_scenario *s) {
  if (!s) return;
  for (size_t i = 0; i < s->ncmds; i++) {
    struct cmd *c = &s->cmds[i];
    tmpl_free(&c->tmpl);
    kz_free(c->recv_request);
    if (c->req_re_ok) regfree(&c->req_re);
    kz_free(c->cseq_methods);
    kz_free(c->next_label);
    kz_free(c->timeout_label);
    for (size_t j = 0; j < c->nacts; j++) free_action(&c->acts[j]);
    kz_free(c->acts);
  }
  kz_free(s->cmds);
  for (size_t i = 0; i < s->nlabels; i++) kz_free(s->labels[i].name);
  kz_free(s->labels);
  for (size_t i = 0; i < s->nvars; i++) kz_free(s->vars[i]);
  kz_free(s->vars);
  kz_free(s->var_global);
  sx_warn_free(&s->warn);
  kz_free(s->name);
  kz_free(s);
}

const char *kz_sipp_scenario_name(const struct kz_sipp_scenario *s) { return s->name; }
size_t kz_sipp_scenario_len(const struct kz_sipp_scenario *s) { return s->ncmds; }
size_t kz_sipp_scenario_warning_count(const struct kz_sipp_scenario *s) { return s->warn.n; }
const char *kz_sipp_scenario_warning(const struct kz_sipp_scenario *s, size_t i) {
  return i < s->warn.n ? s->warn.items[i] : NULL;
}
enum kz_sipp_role kz_sipp_scenario_role(const struct kz_sipp_scenario *s) { return s->role; }

int kz_sipp_scenario_describe(const struct kz_sipp_scenario *s, struct kz_buf *out) {
  int rc = 0;
  for (size_t i = 0; i <= s->ncmds && rc == 0; i++) {
    for (size_t j = 0; j < s->nlabels && rc == 0; j++)
      if (s->labels[j].index == i) rc = kz_buf_printf(out, "%sL:%s", out->len ? " " : "", s->labels[j].name);
    if (i == s->ncmds || rc) break;
    const struct cmd *c = &s->cmds[i];
    const char *sep = out->len ? " " : "";
    switch (c->type) {
    case CMD_SEND:
      if (c->is_request) {
        rc = kz_buf_printf(out, "%s>%s", sep, c->method);
      } else {
        /* The status code follows "SIP/2.0 " in the first literal. */
        const char *t = c->tmpl.n && c->tmpl.c[0].type == TC_LIT ? c->tmpl.c[0].text : "";
        rc = kz_buf_printf(out, "%s>%.3s", sep, strlen(t) > 8 ? t + 8 : "?");
      }
      break;
    case CMD_RECV:
      if (c->recv_request) rc = kz_buf_printf(out, "%s<%s%s", sep, c->recv_request, c->optional ? "?" : "");
      else rc = kz_buf_printf(out, "%s<%d%s", sep, c->recv_response, c->optional ? "?" : "");
      break;
    case CMD_PAUSE: rc = kz_buf_printf(out, "%s%s", sep, c->timewait ? "timewait" : "pause"); break;
    case CMD_NOP: rc = kz_buf_printf(out, "%snop", sep); break;
    }
  }
  return rc;
}
