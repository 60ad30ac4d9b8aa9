/* xml.c — a lenient XML reader for SIPp scenarios: as forgiving as SIPp's own xp_parser, but it reports what it forgave. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "sipp_int.h"

#define SX_MAX_DEPTH 64

struct sx {
  const char *p, *end;
  int line;
  const char *file;
  struct sx_warn *warn;
  struct kz_sipp_load_err *err;
};

int sx_warn_add(struct sx_warn *w, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  char *s = kz_strdup(tmp);
  if (!s) return KZ_ENOMEM;
  char **items = kz_realloc(w->items, (w->n + 1) * sizeof *items);
  if (!items) {
    kz_free(s);
    return KZ_ENOMEM;
  }
  w->items = items;
  w->items[w->n++] = s;
  return 0;
}

void sx_warn_free(struct sx_warn *w) {
  for (size_t i = 0; i < w->n; i++) kz_free(w->items[i]);
  kz_free(w->items);
  w->items = NULL;
  w->n = 0;
}

static int fail(struct sx *x, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct sx *x, int line, const char *fmt, ...) {
  if (x->err) {
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    x->err->line = line;
    x->err->unsupported = false;
    snprintf(x->err->text, sizeof x->err->text, "%s:%d: %s", x->file ? x->file : "<scenario>",
             line, what);
  }
  return KZ_EPROTO;
}

/* Moves to q, counting the newlines passed. */
static void advance(struct sx *x, const char *q) {
  for (const char *s = x->p; s < q; s++)
    if (*s == '\n') x->line++;
  x->p = q;
}

static bool starts(const struct sx *x, const char *lit) {
  size_t n = strlen(lit);
  return (size_t)(x->end - x->p) >= n && memcmp(x->p, lit, n) == 0;
}

static const char *find(const char *p, const char *end, const char *lit) {
  size_t n = strlen(lit);
  for (; p + n <= end; p++)
    if (memcmp(p, lit, n) == 0) return p;
  return NULL;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
static bool is_name_char(char c) {
  return c && !is_ws(c) && c != '=' && c != '/' && c != '>' && c != '<' && c != '"' && c != '\'';
}

void sx_free(struct sx_node *n) {
  if (!n) return;
  for (size_t i = 0; i < n->nkids; i++) sx_free(n->kids[i]);
  for (size_t i = 0; i < n->nattrs; i++) {
    kz_free(n->attrs[i].name);
    kz_free(n->attrs[i].value);
  }
  kz_free(n->kids);
  kz_free(n->attrs);
  kz_free(n->cdata);
  kz_free(n->name);
  kz_free(n);
}

const char *sx_attr(const struct sx_node *n, const char *name) {
  for (size_t i = 0; i < n->nattrs; i++)
    if (strcmp(n->attrs[i].name, name) == 0) return n->attrs[i].value;
  return NULL;
}

/* Appends the decoded entity at *pp (just after '&') to b; an unknown
 * one keeps its '&' as SIPp does. */
static int put_entity(struct kz_buf *b, const char **pp, const char *end) {
  static const struct {
    const char *name;
    char c;
  } ents[] = {{"lt;", '<'}, {"gt;", '>'}, {"amp;", '&'}, {"quot;", '"'}, {"apos;", '\''}};
  const char *p = *pp;
  for (size_t i = 0; i < sizeof ents / sizeof ents[0]; i++) {
    size_t n = strlen(ents[i].name);
    if ((size_t)(end - p) >= n && memcmp(p, ents[i].name, n) == 0) {
      *pp = p + n;
      return kz_buf_append_byte(b, (uint8_t)ents[i].c);
    }
  }
  if (p < end && *p == '#') {
    const char *q = p + 1;
    unsigned v = 0;
    bool hex = q < end && (*q == 'x' || *q == 'X');
    if (hex) q++;
    const char *digits = q;
    while (q < end && q - digits < 6) {
      char c = *q;
      int d = c >= '0' && c <= '9' ? c - '0'
              : hex && c >= 'a' && c <= 'f' ? c - 'a' + 10
              : hex && c >= 'A' && c <= 'F' ? c - 'A' + 10
                                            : -1;
      if (d < 0) break;
      v = v * (hex ? 16u : 10u) + (unsigned)d;
      q++;
    }
    if (q > digits && q < end && *q == ';' && v > 0 && v < 128) {
      *pp = q + 1;
      return kz_buf_append_byte(b, (uint8_t)v);
    }
  }
  return kz_buf_append_byte(b, '&');
}

/* Decodes an attribute value: SIPp's backslash escapes inside double
 * quotes (\\ \" \n \t \r, others kept as written), entities, no CRs. */
static char *decode_value(const char *p, const char *end, bool backslash) {
  struct kz_buf b;
  kz_buf_init(&b);
  int rc = 0;
  while (p < end && rc == 0) {
    char c = *p++;
    if (c == '\r') continue;
    if (backslash && c == '\\' && p < end) {
      char e = *p++;
      switch (e) {
      case '\\': rc = kz_buf_append_byte(&b, '\\'); break;
      case '"': rc = kz_buf_append_byte(&b, '"'); break;
      case 'n': rc = kz_buf_append_byte(&b, '\n'); break;
      case 't': rc = kz_buf_append_byte(&b, '\t'); break;
      case 'r': rc = kz_buf_append_byte(&b, '\r'); break;
      default:
        rc = kz_buf_append_byte(&b, '\\');
        if (!rc) rc = kz_buf_append_byte(&b, (uint8_t)e);
      }
    } else if (c == '&') {
      rc = put_entity(&b, &p, end);
    } else {
      rc = kz_buf_append_byte(&b, (uint8_t)c);
    }
  }
  if (rc == 0 && b.len == 0) rc = kz_buf_reserve(&b, 1);
  if (rc) {
    kz_buf_free(&b);
    return NULL;
  }
  return (char *)b.data;
}

static int add_kid(struct sx_node *parent, struct sx_node *kid) {
  struct sx_node **k = kz_realloc(parent->kids, (parent->nkids + 1) * sizeof *k);
  if (!k) return KZ_ENOMEM;
  parent->kids = k;
  parent->kids[parent->nkids++] = kid;
  return 0;
}

/* Parses "<name attrs... (/)>" at x->p (on the '<').  *self_closed tells
 * whether it ended with "/>". */
static int parse_start_tag(struct sx *x, struct sx_node **out, bool *self_closed) {
  int line = x->line;
  const char *p = x->p + 1;
  const char *name = p;
  while (p < x->end && is_name_char(*p)) p++;
  if (p == name) return fail(x, line, "'<' not followed by an element name");
  struct sx_node *n = kz_calloc(1, sizeof *n);
  if (!n) return KZ_ENOMEM;
  n->line = line;
  n->name = kz_strndup(name, (size_t)(p - name));
  if (!n->name) goto nomem;
  advance(x, p);
  for (;;) {
    p = x->p;
    while (p < x->end && is_ws(*p)) p++;
    advance(x, p);
    if (p >= x->end) {
      int nl = (int)(n->name ? strlen(n->name) : 0);
      char nm[48];
      snprintf(nm, sizeof nm, "%.*s", nl > 40 ? 40 : nl, name);
      sx_free(n);
      return fail(x, line, "end of file inside the start tag of <%s>", nm);
    }
    if (*p == '>') {
      advance(x, p + 1);
      *self_closed = false;
      break;
    }
    if (*p == '/' && p + 1 < x->end && p[1] == '>') {
      advance(x, p + 2);
      *self_closed = true;
      break;
    }
    const char *an = p;
    while (p < x->end && is_name_char(*p)) p++;
    if (p == an) {
      int l = x->line;
      sx_free(n);
      return fail(x, l, "unexpected '%c' in the start tag of <%.*s>", *an, 40, name);
    }
    const char *an_end = p;
    while (p < x->end && is_ws(*p)) p++;
    if (p >= x->end || *p != '=') {
      int l = x->line;
      char nm[64];
      snprintf(nm, sizeof nm, "%.*s", (int)(an_end - an), an);
      sx_free(n);
      return fail(x, l, "attribute '%s' has no value", nm);
    }
    p++;
    while (p < x->end && is_ws(*p)) p++;
    if (p >= x->end || (*p != '"' && *p != '\'')) {
      int l = x->line;
      char nm[64];
      snprintf(nm, sizeof nm, "%.*s", (int)(an_end - an), an);
      sx_free(n);
      return fail(x, l, "value of attribute '%s' is not quoted", nm);
    }
    char q = *p++;
    const char *v = p;
    /* Anything up to the closing quote belongs to the value, '<' and '>'
     * included (SIPp's reader allows them; regexps use them). */
    while (p < x->end && *p != q) {
      if (q == '"' && *p == '\\' && p + 1 < x->end) p++;
      p++;
    }
    if (p >= x->end) {
      sx_free(n);
      return fail(x, line, "unterminated value of an attribute of <%.*s>", 40, name);
    }
    struct sx_attr *a = kz_realloc(n->attrs, (n->nattrs + 1) * sizeof *a);
    if (!a) goto nomem;
    n->attrs = a;
    a = &n->attrs[n->nattrs];
    a->name = kz_strndup(an, (size_t)(an_end - an));
    a->value = decode_value(v, p, q == '"');
    if (!a->name || !a->value) {
      kz_free(a->name);
      kz_free(a->value);
      goto nomem;
    }
    n->nattrs++;
    advance(x, p + 1);
  }
  *out = n;
  return 0;
nomem:
  sx_free(n);
  return KZ_ENOMEM;
}

static int append_cdata(struct sx_node *n, const char *p, size_t len, int line) {
  size_t keep = 0;
  for (size_t i = 0; i < len; i++)
    if (p[i] != '\r') keep++;
  char *d = kz_realloc(n->cdata, n->cdata_len + keep + 1);
  if (!d) return KZ_ENOMEM;
  if (!n->cdata) n->cdata_line = line;
  n->cdata = d;
  for (size_t i = 0; i < len; i++)
    if (p[i] != '\r') d[n->cdata_len++] = p[i];
  d[n->cdata_len] = '\0';
  return 0;
}

int sx_parse(struct sx_node **out, const char *data, size_t len, struct sx_warn *warn,
             struct kz_sipp_load_err *err, const char *file) {
  struct sx x = {.p = data, .end = data + len, .line = 1, .file = file, .warn = warn, .err = err};
  struct sx_node *stack[SX_MAX_DEPTH];
  size_t depth = 0;
  struct sx_node *root = NULL;
  bool root_done = false;
  int rc = 0;

  if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) x.p += 3;
  while (x.p < x.end) {
    const char *p = x.p;
    if (*p != '<') {
      /* Text between elements means nothing to SIPp. */
      const char *q = memchr(p, '<', (size_t)(x.end - p));
      if (!q) q = x.end;
      if (root_done) {
        for (const char *s = p; s < q; s++)
          if (!is_ws(*s)) {
            if ((rc = sx_warn_add(warn, "line %d: text after </%s> ignored", x.line, root->name)))
              goto out;
            break;
          }
      }
      advance(&x, q);
      continue;
    }
    int line = x.line;
    if (starts(&x, "<!--")) {
      /* SIPp ends a comment at the first "-->", "--" inside is fine. */
      const char *q = find(p + 4, x.end, "-->");
      if (!q) {
        rc = fail(&x, line, "unterminated comment");
        goto out;
      }
      advance(&x, q + 3);
    } else if (starts(&x, "<![CDATA[")) {
      const char *q = find(p + 9, x.end, "]]>");
      if (!q) {
        rc = fail(&x, line, "unterminated CDATA section");
        goto out;
      }
      if (depth > 0) {
        if ((rc = append_cdata(stack[depth - 1], p + 9, (size_t)(q - p - 9), line))) goto out;
      } else if ((rc = sx_warn_add(warn, "line %d: CDATA outside any element ignored", line))) {
        goto out;
      }
      advance(&x, q + 3);
    } else if (starts(&x, "<?") || starts(&x, "<!")) {
      const char *q = starts(&x, "<?") ? find(p, x.end, "?>") : memchr(p, '>', (size_t)(x.end - p));
      if (!q) {
        rc = fail(&x, line, "unterminated declaration");
        goto out;
      }
      advance(&x, q + (q[0] == '?' ? 2 : 1));
    } else if (starts(&x, "</")) {
      const char *n = p + 2, *e = n;
      while (e < x.end && is_name_char(*e)) e++;
      const char *gt = memchr(e, '>', (size_t)(x.end - e));
      if (!gt) {
        rc = fail(&x, line, "unterminated end tag");
        goto out;
      }
      size_t nl = (size_t)(e - n);
      size_t match = depth;
      for (size_t i = depth; i > 0; i--)
        if (strlen(stack[i - 1]->name) == nl && memcmp(stack[i - 1]->name, n, nl) == 0) {
          match = i - 1;
          break;
        }
      if (match == depth) {
        if ((rc = sx_warn_add(warn, "line %d: stray </%.*s> ignored", line, (int)nl, n))) goto out;
      } else {
        for (size_t i = depth; i > match + 1; i--)
          if ((rc = sx_warn_add(warn, "line %d: element <%s> (line %d) not closed, closed by </%s>",
                                line, stack[i - 1]->name, stack[i - 1]->line, stack[match]->name)))
            goto out;
        depth = match;
        if (depth == 0) root_done = true;
      }
      advance(&x, gt + 1);
    } else {
      struct sx_node *n = NULL;
      bool self_closed = false;
      if ((rc = parse_start_tag(&x, &n, &self_closed))) goto out;
      if (root_done) {
        rc = sx_warn_add(warn, "line %d: element <%s> after the root element ignored", line, n->name);
        sx_free(n);
        if (rc) goto out;
        continue;
      }
      if (depth == 0) {
        root = n;
      } else if ((rc = add_kid(stack[depth - 1], n))) {
        sx_free(n);
        goto out;
      }
      if (self_closed) {
        if (depth == 0) root_done = true;
      } else {
        if (depth == SX_MAX_DEPTH) {
          rc = fail(&x, line, "elements nested deeper than %d", SX_MAX_DEPTH);
          goto out;
        }
        stack[depth++] = n;
      }
    }
  }
  if (!root) {
    rc = fail(&x, x.line, "no element in the file");
    goto out;
  }
  for (size_t i = depth; i > 0; i--)
    if ((rc = sx_warn_add(warn, "line %d: element <%s> (line %d) not closed at end of file", x.line,
                          stack[i - 1]->name, stack[i - 1]->line)))
      goto out;
  *out = root;
  return 0;
out:
  sx_free(root);
  return rc;
}
