/* kapi_codec.c — kapi messages from and to bytes (bounded parsing, compact dumps) and envelope-filling builders. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kapi_schema.h"
#include "kz/error.h"
#include "kz/json.h"
#include "kz/mem.h"

/* Finds the first place where arrays/objects nest deeper than max.
 * jansson parses recursively (up to its own 2048 levels); checking first
 * keeps a hostile message from costing more than max levels.  Strings
 * are skipped so brackets inside them do not count; for the prefix of
 * the input that jansson accepts this view of nesting is exact. */
static bool too_deep(const unsigned char *p, size_t len, size_t max,
                     size_t *at) {
  size_t depth = 0;
  bool in_str = false, esc = false;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = p[i];
    if (in_str) {
      if (esc)
        esc = false;
      else if (c == '\\')
        esc = true;
      else if (c == '"')
        in_str = false;
      continue;
    }
    if (c == '"') {
      in_str = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max) {
        *at = i;
        return true;
      }
    } else if ((c == '}' || c == ']') && depth) {
      depth--;
    }
  }
  return false;
}

int kz_kapi_parse(const void *data, size_t len,
                  const struct kz_kapi_limits *lim, json_t **out,
                  struct kz_kapi_error *err) {
  if (!out || (!data && len)) {
    kz_bus_kapi_fail(err, "parse: no input");
    return KZ_EINVAL;
  }
  size_t max_size = lim && lim->max_size ? lim->max_size
                                         : KZ_KAPI_DEFAULT_MAX_SIZE;
  size_t max_depth = lim && lim->max_depth ? lim->max_depth
                                           : KZ_KAPI_DEFAULT_MAX_DEPTH;
  if (len > max_size) {
    kz_bus_kapi_fail(err, "message of %zu bytes exceeds the limit of %zu", len,
              max_size);
    return KZ_EMSGSIZE;
  }
  /* The fast reader for plain messages; on anything else (or anything
   * wrong) the original path decides, with jansson's reasons. */
  json_t *fast = NULL;
  if (len && kz_json_parse(data, len, KZ_JSON_REJECT_DUPLICATES | KZ_JSON_OBJECT_ONLY, max_depth, &fast) == 0) {
    *out = fast;
    return 0;
  }
  /* Not a plain message, or a bad one: the original path decides, with
   * jansson's reasons. */
  size_t at = 0;
  if (too_deep(data, len, max_depth, &at)) {
    kz_bus_kapi_fail(err, "JSON nests deeper than %zu levels (at byte %zu)",
              max_depth, at);
    return KZ_EPROTO;
  }
  json_error_t jerr;
  /* Duplicate keys are refused: two readers could otherwise disagree on
   * which value a message carries. */
  json_t *v = json_loadb(data ? data : "", len, JSON_REJECT_DUPLICATES, &jerr);
  if (!v) {
    kz_bus_kapi_fail(err, "invalid JSON: %s (line %d, column %d)", jerr.text,
              jerr.line, jerr.column);
    return KZ_EPROTO;
  }
  if (!json_is_object(v)) {
    kz_bus_kapi_fail(err, "a message must be a JSON object, not an array");
    json_decref(v);
    return KZ_EPROTO;
  }
  *out = v;
  return 0;
}

int kz_kapi_decode(const void *data, size_t len,
                   const struct kz_kapi_limits *lim,
                   enum kz_kapi_type expected, json_t **out,
                   enum kz_kapi_type *type_out, struct kz_kapi_error *err) {
  if (!out || ((int)expected < 0 || (int)expected >= KZ_KAPI_TYPE_COUNT)) {
    kz_bus_kapi_fail(err, "decode: bad arguments");
    return KZ_EINVAL;
  }
  json_t *v = NULL;
  int rc = kz_kapi_parse(data, len, lim, &v, err);
  if (rc) return rc;
  enum kz_kapi_type t = expected;
  if (t == KZ_KAPI_UNKNOWN) {
    t = kz_kapi_identify_msg(v);
    if (t == KZ_KAPI_UNKNOWN) {
      const char *c = json_string_value(json_object_get(v, "Event-Category"));
      const char *n = json_string_value(json_object_get(v, "Event-Name"));
      if (!c || !n)
        kz_bus_kapi_fail(err, "message has no string Event-Category/Event-Name");
      else
        kz_bus_kapi_fail(err, "unknown message type %.60s/%.60s", c, n);
      json_decref(v);
      return KZ_EPROTO;
    }
  }
  rc = kz_kapi_validate(v, t, err);
  if (rc) {
    json_decref(v);
    return rc;
  }
  *out = v;
  if (type_out) *type_out = t;
  return 0;
}

int kz_kapi_dump(const json_t *msg, struct kz_buf *out) {
  if (!msg || !out) return KZ_EINVAL;
  /* Every refusal of the writer counts as jansson's dump failing. */
  return kz_json_write(out, msg, 0) ? KZ_ENOMEM : 0;
}

void kz_kapi_msg_id(struct kz_prng *prng, char out[KZ_KAPI_MSG_ID_LEN + 1]) {
  kz_prng_hex(prng, out, KZ_KAPI_MSG_ID_LEN);
  out[KZ_KAPI_MSG_ID_LEN] = 0;
}

static int set_str(json_t *obj, const char *key, const char *val) {
  json_t *s = json_string(val);
  /* json_string refuses invalid UTF-8; treat it as a bad argument. */
  if (!s) return KZ_EINVAL;
  return json_object_set_new_nocheck(obj, key, s) == 0 ? 0 : KZ_ENOMEM;
}

/* The same for strings kz knows to be valid (the const tables, a
 * generated Msg-ID): no UTF-8 scan. */
static int set_known(json_t *obj, const char *key, const char *val) {
  json_t *s = json_string_nocheck(val);
  if (!s) return KZ_ENOMEM;
  return json_object_set_new_nocheck(obj, key, s) == 0 ? 0 : KZ_ENOMEM;
}

/* Whether a body key is one of the envelope fields build() has already
 * set (origin wins over body): a few string compares instead of a hash
 * lookup per body field. */
static bool envelope_set(const char *key, bool msg_id, bool server_id,
                         bool node) {
  switch (key[0]) {
  case 'E':
    return strcmp(key, "Event-Category") == 0 ||
           strcmp(key, "Event-Name") == 0;
  case 'A':
    return strcmp(key, "App-Name") == 0 || strcmp(key, "App-Version") == 0;
  case 'M': return msg_id && strcmp(key, "Msg-ID") == 0;
  case 'S': return server_id && strcmp(key, "Server-ID") == 0;
  case 'N': return node && strcmp(key, "Node") == 0;
  default: return false;
  }
}

static int build(enum kz_kapi_type type, const struct kz_kapi_origin *origin,
                 struct kz_prng *prng, const json_t *request,
                 const json_t *body, json_t **out, struct kz_kapi_error *err) {
  const struct kapi_def *d = kz_bus_kapi_def_of(type);
  if (!d || !origin || !origin->app_name || !origin->app_version || !out) {
    kz_bus_kapi_fail(err, "build: bad arguments");
    return KZ_EINVAL;
  }
  if (body && !json_is_object(body)) {
    kz_bus_kapi_fail(err, "%s: body must be a JSON object", d->name);
    return KZ_EINVAL;
  }
  const json_t *bcat = body ? json_object_get(body, "Event-Category") : NULL;
  if (bcat && !(json_is_string(bcat) &&
                strcmp(json_string_value(bcat), d->category) == 0)) {
    kz_bus_kapi_fail(err, "%s: body's Event-Category contradicts the type",
              d->name);
    return KZ_EINVAL;
  }
  const char *name = d->event_names[1] ? NULL : d->event_names[0];
  const json_t *bname = body ? json_object_get(body, "Event-Name") : NULL;
  if (bname) {
    if (!json_is_string(bname) ||
        (name && strcmp(json_string_value(bname), name) != 0)) {
      kz_bus_kapi_fail(err, "%s: body's Event-Name contradicts the type", d->name);
      return KZ_EINVAL;
    }
    name = json_string_value(bname);
  }
  if (!name) {
    kz_bus_kapi_fail(err, "%s: missing required field Event-Name", d->name);
    return KZ_EPROTO;
  }

  char id[KZ_KAPI_MSG_ID_LEN + 1];
  const char *msg_id = NULL;
  if (request) {
    msg_id = json_string_value(json_object_get(request, "Msg-ID"));
    if (!msg_id) {
      kz_bus_kapi_fail(err, "%s: the request has no Msg-ID to reply to", d->name);
      return KZ_EPROTO;
    }
  } else if (body && json_object_get(body, "Msg-ID")) {
    msg_id = NULL; /* kept from the body below, validated with the rest */
  } else {
    if (!prng) {
      kz_bus_kapi_fail(err, "%s: no PRNG for the Msg-ID", d->name);
      return KZ_EINVAL;
    }
    kz_kapi_msg_id(prng, id);
    msg_id = id;
  }

  json_t *msg = json_object();
  if (!msg) return KZ_ENOMEM;
  /* The envelope goes first so dumps read like Kazoo's messages. */
  int rc = set_known(msg, "Event-Category", d->category);
  if (!rc) rc = bname ? set_str(msg, "Event-Name", name)
                      : set_known(msg, "Event-Name", name);
  if (!rc) rc = set_str(msg, "App-Name", origin->app_name);
  if (!rc) rc = set_str(msg, "App-Version", origin->app_version);
  if (!rc && msg_id) rc = msg_id == id ? set_known(msg, "Msg-ID", msg_id)
                                       : set_str(msg, "Msg-ID", msg_id);
  if (!rc && origin->server_id) rc = set_str(msg, "Server-ID", origin->server_id);
  if (!rc && origin->node) rc = set_str(msg, "Node", origin->node);
  if (!rc && body) {
    /* Body values are shared, not copied: the message holds a reference
     * to each (a deep copy per field was most of the cost of building). */
    bool has_id = msg_id != NULL, has_sid = origin->server_id != NULL,
         has_node = origin->node != NULL;
    for (void *it = json_object_iter((json_t *)body); it;
         it = json_object_iter_next((json_t *)body, it)) {
      const char *key = json_object_iter_key(it);
      if (envelope_set(key, has_id, has_sid, has_node)) continue;
      if (json_object_setn_nocheck(msg, key, json_object_iter_key_len(it),
                                   json_object_iter_value(it)) != 0) {
        rc = KZ_ENOMEM;
        break;
      }
    }
  }
  if (!rc && request && !json_object_get(msg, "Call-ID")) {
    json_t *cid = json_object_get(request, "Call-ID");
    if (json_is_string(cid) && json_object_set(msg, "Call-ID", cid) != 0)
      rc = KZ_ENOMEM;
  }
  if (rc) {
    kz_bus_kapi_fail(err, "%s: %s while building", d->name, kz_strerror(rc));
    json_decref(msg);
    return rc;
  }
  rc = kz_kapi_validate(msg, type, err);
  if (rc) {
    json_decref(msg);
    return rc;
  }
  *out = msg;
  return 0;
}

int kz_kapi_build(enum kz_kapi_type type, const struct kz_kapi_origin *origin,
                  struct kz_prng *prng, const json_t *body, json_t **out,
                  struct kz_kapi_error *err) {
  return build(type, origin, prng, NULL, body, out, err);
}

int kz_kapi_build_reply(enum kz_kapi_type type,
                        const struct kz_kapi_origin *origin,
                        const json_t *request, const json_t *body,
                        json_t **out, struct kz_kapi_error *err) {
  if (!request) {
    kz_bus_kapi_fail(err, "build_reply: no request");
    return KZ_EINVAL;
  }
  return build(type, origin, NULL, request, body, out, err);
}
