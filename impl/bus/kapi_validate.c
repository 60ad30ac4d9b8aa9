/* kapi_validate.c — checks kapi messages against the const tables of kapi_schema.c, and identifies their type. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kapi_schema.h"
#include "kz/error.h"

/* Reasons quote offending values; this keeps the quote short and
 * printable so a reason can go into a log line or an error reply. */
#define SHOW_MAX 48

void kz_bus_kapi_fail(struct kz_kapi_error *err, const char *fmt, ...) {
  if (!err) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->reason, sizeof err->reason, fmt, ap);
  va_end(ap);
}

static void show(char out[SHOW_MAX + 4], const char *s) {
  size_t i = 0;
  for (; s[i] && i < SHOW_MAX; i++) {
    unsigned char c = (unsigned char)s[i];
    out[i] = (c < 0x20 || c >= 0x7f || c == '\'') ? '?' : (char)c;
  }
  if (s[i]) {
    memcpy(out + i, "...", 3);
    i += 3;
  }
  out[i] = 0;
}

static const char *json_kind(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "an object";
  case JSON_ARRAY: return "an array";
  case JSON_STRING: return "a string";
  case JSON_INTEGER: return "an integer";
  case JSON_REAL: return "a real number";
  case JSON_TRUE: return "true";
  case JSON_FALSE: return "false";
  case JSON_NULL: return "null";
  }
  return "?";
}

static bool all_digits(const char *s) {
  if (!*s) return false;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return false;
  }
  return true;
}

static bool type_ok(const json_t *v, unsigned char jt) {
  switch ((enum kapi_jtype)jt) {
  case JT_ANY: return true;
  case JT_STRING: return json_is_string(v);
  case JT_NESTRING: return json_is_string(v) && json_string_length(v) > 0;
  case JT_OBJECT: return json_is_object(v);
  case JT_ARRAY: return json_is_array(v);
  case JT_BOOLISH:
    if (json_is_boolean(v)) return true;
    return json_is_string(v) && (strcmp(json_string_value(v), "true") == 0 ||
                                 strcmp(json_string_value(v), "false") == 0);
  case JT_INTEGER: return json_is_integer(v);
  case JT_INTISH:
    return json_is_integer(v) ||
           (json_is_string(v) && all_digits(json_string_value(v)));
  case JT_SCALAR: return json_is_string(v) || json_is_number(v);
  }
  return false;
}

static const char *type_desc(unsigned char jt) {
  switch ((enum kapi_jtype)jt) {
  case JT_ANY: return "anything";
  case JT_STRING: return "a string";
  case JT_NESTRING: return "a non-empty string";
  case JT_OBJECT: return "an object";
  case JT_ARRAY: return "an array";
  case JT_BOOLISH: return "a boolean (true, false, \"true\" or \"false\")";
  case JT_INTEGER: return "an integer";
  case JT_INTISH: return "an integer or a string of digits";
  case JT_SCALAR: return "a string or a number";
  }
  return "?";
}

static bool in_list(const char *s, const char *const *list) {
  for (; *list; list++) {
    if (strcmp(s, *list) == 0) return true;
  }
  return false;
}

/* "Method must be one of bridge, park, ...: got 'foo'"; long lists
 * would not fit a reason, so they give "unknown Event-Name 'FOO'". */
static int fail_value(struct kz_kapi_error *err, const char *prefix,
                      const char *field, const char *got,
                      const char *const *list) {
  char g[SHOW_MAX + 4];
  show(g, got);
  if (!list[1]) {
    kz_bus_kapi_fail(err, "%s: %s must be '%s': got '%s'", prefix, field, list[0], g);
    return KZ_EPROTO;
  }
  char joined[128];
  size_t n = 0;
  bool fits = true;
  for (size_t i = 0; list[i]; i++) {
    size_t l = strlen(list[i]);
    if (n + l + 3 >= sizeof joined) {
      fits = false;
      break;
    }
    if (i) {
      memcpy(joined + n, ", ", 2);
      n += 2;
    }
    memcpy(joined + n, list[i], l);
    n += l;
  }
  joined[n] = 0;
  if (fits)
    kz_bus_kapi_fail(err, "%s: %s must be one of %s: got '%s'", prefix, field, joined,
              g);
  else
    kz_bus_kapi_fail(err, "%s: unknown %s '%s'", prefix, field, g);
  return KZ_EPROTO;
}

static bool is_sip_code(const char *s) {
  return strlen(s) == 3 && all_digits(s) && s[0] >= '1' && s[0] <= '6';
}

static bool is_dtmf(char c) {
  return (c >= '0' && c <= '9') || c == '*' || c == '#';
}

/* kapi_dialplan:terminators_v: "none", a string of DTMF digits, or a
 * list of one-digit strings. */
static bool terminators_ok(const json_t *v) {
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    if (strcmp(s, "none") == 0) return true;
    for (; *s; s++) {
      if (!is_dtmf(*s)) return false;
    }
    return true;
  }
  if (!json_is_array(v)) return false;
  size_t i;
  json_t *e;
  json_array_foreach(v, i, e) {
    if (!json_is_string(e) || json_string_length(e) != 1 ||
        !is_dtmf(json_string_value(e)[0]))
      return false;
  }
  return true;
}

static int check_command(const json_t *cmd, const char *prefix, bool queued,
                         struct kz_kapi_error *err);

static int check_format(const json_t *v, const struct kapi_field *f,
                        const char *prefix, struct kz_kapi_error *err) {
  char g[SHOW_MAX + 4];
  char sub[160];
  size_t i;
  json_t *e;
  switch ((enum kapi_fmt)f->fmt) {
  case FMT_NONE: return 0;
  case FMT_SIP_CODE:
    if (is_sip_code(json_string_value(v))) return 0;
    show(g, json_string_value(v));
    kz_bus_kapi_fail(err, "%s: %s must be a SIP status code (3 digits, 100-699): "
              "got '%s'", prefix, f->name, g);
    return KZ_EPROTO;
  case FMT_HANGUP_CODE: {
    const char *s = json_string_value(v);
    if (strncmp(s, "sip:", 4) == 0 && is_sip_code(s + 4)) return 0;
    show(g, s);
    kz_bus_kapi_fail(err, "%s: %s must be 'sip:' and a SIP status code: got '%s'",
              prefix, f->name, g);
    return KZ_EPROTO;
  }
  case FMT_USER_AT_HOST: {
    const char *s = json_string_value(v);
    const char *at = strchr(s, '@');
    if (at && at != s && at[1]) return 0;
    show(g, s);
    kz_bus_kapi_fail(err, "%s: %s must be user@host: got '%s'", prefix, f->name, g);
    return KZ_EPROTO;
  }
  case FMT_TERMINATORS:
    if (terminators_ok(v)) return 0;
    kz_bus_kapi_fail(err, "%s: %s must be \"none\", a string of DTMF digits "
              "(0-9 * #) or a list of single digits", prefix, f->name);
    return KZ_EPROTO;
  case FMT_REG_FIELDS:
    json_array_foreach(v, i, e) {
      if (!json_is_string(e)) {
        kz_bus_kapi_fail(err, "%s: %s[%zu] must be a string: got %s", prefix,
                  f->name, i, json_kind(e));
        return KZ_EPROTO;
      }
      if (!in_list(json_string_value(e), kz_bus_kapi_reg_fields)) {
        show(g, json_string_value(e));
        kz_bus_kapi_fail(err, "%s: %s[%zu]: '%s' is not a registration field",
                  prefix, f->name, i, g);
        return KZ_EPROTO;
      }
    }
    return 0;
  case FMT_COST_PARAMS: {
    const char *key;
    json_object_foreach((json_t *)v, key, e) {
      if (!in_list(key, kz_bus_kapi_cost_params)) {
        show(g, key);
        kz_bus_kapi_fail(err, "%s: %s: unknown cost parameter '%s'", prefix,
                  f->name, g);
        return KZ_EPROTO;
      }
    }
    return 0;
  }
  case FMT_OBJECTS:
    json_array_foreach(v, i, e) {
      snprintf(sub, sizeof sub, "%s: %s[%zu]", prefix, f->name, i);
      if (!json_is_object(e)) {
        kz_bus_kapi_fail(err, "%s: %s must be an object: got %s", sub, f->sub->name,
                  json_kind(e));
        return KZ_EPROTO;
      }
      int rc = kz_bus_kapi_check_object(e, f->sub, sub, err);
      if (rc) return rc;
    }
    return 0;
  case FMT_COMMANDS:
    json_array_foreach(v, i, e) {
      snprintf(sub, sizeof sub, "%s: %s[%zu]", prefix, f->name, i);
      int rc = check_command(e, sub, true, err);
      if (rc) return rc;
    }
    return 0;
  }
  return 0;
}

static int check_field(const json_t *v, const struct kapi_field *f,
                       const char *prefix, struct kz_kapi_error *err) {
  if (!type_ok(v, f->jtype)) {
    kz_bus_kapi_fail(err, "%s: %s must be %s: got %s", prefix, f->name,
              type_desc(f->jtype), json_kind(v));
    return KZ_EPROTO;
  }
  if (f->values && !in_list(json_string_value(v), f->values))
    return fail_value(err, prefix, f->name, json_string_value(v), f->values);
  return check_format(v, f, prefix, err);
}

/* ------------------------------------------------------------------ */
/* A message's top-level fields, hashed once into a small open-addressing
 * table on the stack.  The envelope and the type's table look up every
 * field they list (over fifty for reg_success), most of them absent;
 * through jansson each lookup costs a strlen, a seeded hash and a few
 * calls.  Here the names' lengths come from the tables and a probe is a
 * hash of a few words and one compare.  Lookups match json_object_get
 * exactly (same bytes, same length). */

#define IX_MAX_KEYS 64 /* larger objects use json_object_get */
#define IX_SLOTS (2 * IX_MAX_KEYS)

struct ix_slot {
  const char *key; /* NULL: empty */
  size_t len;
  uint32_t hash;
  json_t *v;
};

struct msg_index {
  unsigned mask;
  struct ix_slot slot[IX_SLOTS];
};

/* Hashes the length and the first and last eight bytes (all of a
 * shorter name): field names differ early or late, and a collision only
 * costs one more compare. */
static uint32_t ix_hash(const char *k, size_t len) {
  uint64_t a = 0, b = 0;
  if (len >= 8) {
    memcpy(&a, k, 8);
    memcpy(&b, k + len - 8, 8);
  } else {
    memcpy(&a, k, len);
  }
  uint64_t h = (a * UINT64_C(0x9E3779B97F4A7C15)) ^
               ((b + len) * UINT64_C(0xC2B2AE3D27D4EB4F));
  return (uint32_t)(h >> 32) ^ (uint32_t)h;
}

/* Returns false (no index: use json_object_get) for large objects. */
static bool ix_build(struct msg_index *ix, const json_t *obj) {
  size_t n = json_object_size(obj);
  if (n > IX_MAX_KEYS) return false;
  unsigned slots = 16;
  while (slots < 2 * n) slots *= 2;
  ix->mask = slots - 1;
  memset(ix->slot, 0, slots * sizeof ix->slot[0]);
  for (void *it = json_object_iter((json_t *)obj); it;
       it = json_object_iter_next((json_t *)obj, it)) {
    const char *k = json_object_iter_key(it);
    size_t len = json_object_iter_key_len(it);
    uint32_t h = ix_hash(k, len);
    unsigned i = h & ix->mask;
    while (ix->slot[i].key) i = (i + 1) & ix->mask;
    ix->slot[i] = (struct ix_slot){k, len, h, json_object_iter_value(it)};
  }
  return true;
}

static json_t *ix_get(const struct msg_index *ix, const char *name,
                      size_t len) {
  uint32_t h = ix_hash(name, len);
  for (unsigned i = h & ix->mask;; i = (i + 1) & ix->mask) {
    const struct ix_slot *s = &ix->slot[i];
    if (!s->key) return NULL;
    if (s->hash == h && s->len == len && memcmp(s->key, name, len) == 0)
      return s->v;
  }
}

/* obj's field `f`, through the index when there is one. */
static const json_t *field_get(const json_t *obj, const struct msg_index *ix,
                               const struct kapi_field *f) {
  if (!ix) return json_object_get(obj, f->name);
  return ix_get(ix, f->name, f->name_len ? f->name_len : strlen(f->name));
}

/* A JSON null counts as absent, as Kazoo's kz_api drops undefined
 * values before validating. */
static int check_object_ix(const json_t *obj, const struct msg_index *ix,
                           const struct kapi_schema *schema,
                           const char *prefix, struct kz_kapi_error *err) {
  for (size_t i = 0; i < schema->n_fields; i++) {
    const struct kapi_field *f = &schema->fields[i];
    const json_t *v = field_get(obj, ix, f);
    if (!v || json_is_null(v)) {
      if (f->required) {
        kz_bus_kapi_fail(err, "%s: missing required field %s", prefix, f->name);
        return KZ_EPROTO;
      }
      continue;
    }
    int rc = check_field(v, f, prefix, err);
    if (rc) return rc;
  }
  return 0;
}

int kz_bus_kapi_check_object(const json_t *obj, const struct kapi_schema *schema,
                      const char *prefix, struct kz_kapi_error *err) {
  return check_object_ix(obj, NULL, schema, prefix, err);
}

static int check_command(const json_t *cmd, const char *prefix, bool queued,
                         struct kz_kapi_error *err) {
  char g[SHOW_MAX + 4];
  char sub[200];
  if (!json_is_object(cmd)) {
    kz_bus_kapi_fail(err, "%s: a command must be an object: got %s", prefix,
              json_kind(cmd));
    return KZ_EPROTO;
  }
  const json_t *app = json_object_get(cmd, "Application-Name");
  if (!app || json_is_null(app)) {
    kz_bus_kapi_fail(err, "%s: missing required field Application-Name", prefix);
    return KZ_EPROTO;
  }
  if (!json_is_string(app)) {
    kz_bus_kapi_fail(err, "%s: Application-Name must be a string: got %s", prefix,
              json_kind(app));
    return KZ_EPROTO;
  }
  const struct kapi_command *c = kz_bus_kapi_command_find(json_string_value(app));
  if (!c) {
    show(g, json_string_value(app));
    kz_bus_kapi_fail(err, "%s: unknown Application-Name '%s'", prefix, g);
    return KZ_EPROTO;
  }
  if (queued) {
    /* A queue carries plain commands whose Call-ID may be left to the
     * enclosing message; one queue inside another would let a message
     * nest without bound. */
    if (strcmp(c->app, "queue") == 0) {
      kz_bus_kapi_fail(err, "%s: a queue cannot contain a queue", prefix);
      return KZ_EPROTO;
    }
    const json_t *cid = json_object_get(cmd, "Call-ID");
    if (cid && !json_is_null(cid) && !json_is_string(cid)) {
      kz_bus_kapi_fail(err, "%s: Call-ID must be a string: got %s", prefix,
                json_kind(cid));
      return KZ_EPROTO;
    }
  }
  snprintf(sub, sizeof sub, "%s(%s)", prefix, c->app);
  return kz_bus_kapi_check_object(cmd, c->schema, sub, err);
}

int kz_bus_kapi_extra_call_command(const json_t *msg, const struct kapi_def *def,
                            struct kz_kapi_error *err) {
  return check_command(msg, def->name, false, err);
}

/* kapi_route:resp_v checks every route when Method is bridge. */
int kz_bus_kapi_extra_route_resp(const json_t *msg, const struct kapi_def *def,
                          struct kz_kapi_error *err) {
  const char *method = json_string_value(json_object_get(msg, "Method"));
  if (!method || strcmp(method, "bridge") != 0) return 0;
  const json_t *routes = json_object_get(msg, "Routes");
  if (!json_is_array(routes)) {
    kz_bus_kapi_fail(err, "%s: Routes is required when Method is bridge", def->name);
    return KZ_EPROTO;
  }
  const struct kapi_field f = {"Routes",    1,    JT_ARRAY,
                               FMT_OBJECTS, NULL, kz_bus_kapi_route_schema,
                               6};
  return check_format(routes, &f, def->name, err);
}

/* kz: events whose meaning depends on one field must carry it (ecallmgr
 * always sets them). */
static const struct {
  const char *event;
  const char *field;
} event_requires[] = {
    {"DTMF", "DTMF-Digit"},
    {"CHANNEL_EXECUTE_COMPLETE", "Application-Name"},
};

int kz_bus_kapi_extra_call_event(const json_t *msg, const struct kapi_def *def,
                          struct kz_kapi_error *err) {
  const char *name = json_string_value(json_object_get(msg, "Event-Name"));
  for (size_t i = 0; i < sizeof event_requires / sizeof event_requires[0];
       i++) {
    if (strcmp(name, event_requires[i].event) != 0) continue;
    const json_t *v = json_object_get(msg, event_requires[i].field);
    if (!json_is_string(v) || json_string_length(v) == 0) {
      kz_bus_kapi_fail(err, "%s: %s needs a non-empty %s", def->name, name,
                event_requires[i].field);
      return KZ_EPROTO;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------ */

const char *kz_kapi_type_name(enum kz_kapi_type type) {
  const struct kapi_def *d = kz_bus_kapi_def_of(type);
  return d ? d->name : "unknown";
}

const char *kz_kapi_type_category(enum kz_kapi_type type) {
  const struct kapi_def *d = kz_bus_kapi_def_of(type);
  return d ? d->category : NULL;
}

const char *kz_kapi_type_event_name(enum kz_kapi_type type) {
  const struct kapi_def *d = kz_bus_kapi_def_of(type);
  if (!d || d->event_names[1]) return NULL;
  return d->event_names[0];
}

const char *kz_kapi_type_exchange(enum kz_kapi_type type) {
  const struct kapi_def *d = kz_bus_kapi_def_of(type);
  return d ? d->exchange : NULL;
}

enum kz_kapi_type kz_kapi_identify(const char *category, const char *name) {
  if (!category || !name) return KZ_KAPI_UNKNOWN;
  for (int t = KZ_KAPI_UNKNOWN + 1; t < KZ_KAPI_TYPE_COUNT; t++) {
    const struct kapi_def *d = &kz_bus_kapi_defs[t];
    if (strcmp(d->category, category) == 0 && in_list(name, d->event_names))
      return (enum kz_kapi_type)t;
  }
  return KZ_KAPI_UNKNOWN;
}

enum kz_kapi_type kz_kapi_identify_msg(const json_t *msg) {
  return kz_kapi_identify(
      json_string_value(json_object_get(msg, "Event-Category")),
      json_string_value(json_object_get(msg, "Event-Name")));
}

int kz_kapi_validate(const json_t *msg, enum kz_kapi_type type,
                     struct kz_kapi_error *err) {
  const struct kapi_def *d = kz_bus_kapi_def_of(type);
  if (!d) {
    kz_bus_kapi_fail(err, "unknown message type %d", (int)type);
    return KZ_EINVAL;
  }
  if (!msg) {
    kz_bus_kapi_fail(err, "%s: no message", d->name);
    return KZ_EINVAL;
  }
  if (!json_is_object(msg)) {
    kz_bus_kapi_fail(err, "%s: a message must be a JSON object: got %s", d->name,
              json_kind(msg));
    return KZ_EPROTO;
  }
  struct msg_index index;
  const struct msg_index *ix = ix_build(&index, msg) ? &index : NULL;
  int rc = check_object_ix(msg, ix, &kz_bus_kapi_envelope_schema, d->name, err);
  if (rc) return rc;
  const char *cat = json_string_value(
      ix ? ix_get(ix, "Event-Category", 14) : json_object_get(msg, "Event-Category"));
  if (strcmp(cat, d->category) != 0) {
    const char *one[] = {d->category, NULL};
    return fail_value(err, d->name, "Event-Category", cat, one);
  }
  const char *name = json_string_value(
      ix ? ix_get(ix, "Event-Name", 10) : json_object_get(msg, "Event-Name"));
  if (!in_list(name, d->event_names))
    return fail_value(err, d->name, "Event-Name", name, d->event_names);
  rc = check_object_ix(msg, ix, d->schema, d->name, err);
  if (rc) return rc;
  if (d->extra) rc = d->extra(msg, d, err);
  if (rc == 0 && err) err->reason[0] = 0;
  return rc;
}
