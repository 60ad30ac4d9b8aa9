/* routing_key.c — Kazoo's routing keys for kapi messages, with kz_amqp_util:encode escaping of variable parts. */
#include <stdint.h>
#include <string.h>

#include "kapi_schema.h"
#include "kz/bus.h"
#include "kz/error.h"
#include "kz/mem.h"

/* kz_amqp_util ?KEY_SAFE: [a-zA-Z0-9], '-', '~', '_'.  Written out
 * rather than isalnum() so the locale cannot change a key. */
static bool key_safe(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '~' || c == '_';
}

static const char hexu[] = "0123456789ABCDEF";

int kz_bus_key_encode(struct kz_buf *out, const char *s, size_t len) {
  if (!out || (!s && len)) return KZ_EINVAL;
  /* encode(<<"*">>) and encode(<<"#">>) are identities: wildcards pass. */
  if (len == 1 && (s[0] == '*' || s[0] == '#')) return kz_buf_append(out, s, 1);
  if (len > SIZE_MAX / 3) return KZ_ENOMEM;
  /* Reserving the worst case up front makes the appends below
   * infallible, so a failure never leaves half a part behind. */
  int rc = kz_buf_reserve(out, len * 3);
  if (rc) return rc;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (key_safe(c)) {
      kz_buf_append_byte(out, c);
    } else if (c == ' ') {
      kz_buf_append_byte(out, '+');
    } else {
      char e[3] = {'%', hexu[c >> 4], hexu[c & 15]};
      kz_buf_append(out, e, 3);
    }
  }
  return 0;
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int kz_bus_key_decode(struct kz_buf *out, const char *s, size_t len) {
  if (!out || (!s && len)) return KZ_EINVAL;
  for (size_t i = 0; i < len; i++) {
    if (s[i] != '%') continue;
    if (i + 2 >= len || hexval((unsigned char)s[i + 1]) < 0 ||
        hexval((unsigned char)s[i + 2]) < 0)
      return KZ_EPROTO;
    i += 2;
  }
  int rc = kz_buf_reserve(out, len);
  if (rc) return rc;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '+') {
      c = ' ';
    } else if (c == '%') {
      c = (unsigned char)(hexval((unsigned char)s[i + 1]) * 16 +
                          hexval((unsigned char)s[i + 2]));
      i += 2;
    }
    kz_buf_append_byte(out, c);
  }
  return 0;
}

/* One part of a key: NULL is the wildcard "*"; `raw` parts are copied
 * as Kazoo copies them (event names, database names, doc types). */
struct part {
  const char *s;
  bool raw;
};

static int join(char **out, const char *prefix, const struct part *parts,
                size_t n) {
  if (!out) return KZ_EINVAL;
  struct kz_buf b;
  kz_buf_init(&b);
  int rc = kz_buf_append_cstr(&b, prefix);
  for (size_t i = 0; !rc && i < n; i++) {
    if (b.len) rc = kz_buf_append_byte(&b, '.');
    if (rc) break;
    const char *s = parts[i].s ? parts[i].s : "*";
    rc = parts[i].raw ? kz_buf_append_cstr(&b, s)
                      : kz_bus_key_encode(&b, s, strlen(s));
  }
  char *res = NULL;
  if (!rc) {
    res = kz_slice_dup(kz_buf_slice(&b));
    if (!res) rc = KZ_ENOMEM;
  }
  kz_buf_free(&b);
  if (!rc) *out = res;
  return rc;
}

int kz_bus_rk_authn_req(char **out, const char *realm) {
  const struct part p[] = {{realm, false}};
  return join(out, "authn.req", p, 1);
}

int kz_bus_rk_reg_success(char **out, const char *realm, const char *user) {
  const struct part p[] = {{realm, false}, {user, false}};
  return join(out, "registration.success", p, 2);
}

int kz_bus_rk_reg_query(char **out, const char *realm, const char *user) {
  const struct part p[] = {{realm, false}, {user, false}};
  return join(out, "registration.query", p, 2);
}

int kz_bus_rk_reg_flush(char **out, const char *realm) {
  const struct part p[] = {{realm, false}};
  return join(out, "registration.flush", p, 1);
}

int kz_bus_rk_route_req_account(char **out, const char *resource_type,
                                const char *account_id) {
  const struct part p[] = {{resource_type, false}, {account_id, false}};
  return join(out, "route.req", p, 2);
}

int kz_bus_rk_route_req_realm(char **out, const char *resource_type,
                              const char *realm, const char *user) {
  const struct part p[] = {
      {resource_type, false}, {realm, false}, {user, false}};
  return join(out, "route.req", p, 3);
}

int kz_bus_rk_call_event(char **out, const char *event_name,
                         const char *call_id) {
  const struct part p[] = {{event_name, true}, {call_id, false}};
  return join(out, "call", p, 2);
}

int kz_bus_rk_doc_change(char **out, const char *action, const char *db,
                         const char *doc_type, const char *doc_id) {
  /* kz_amqp_util:document_routing_key/4. */
  char act[64];
  const char *a = action ? action : "*";
  if (strcmp(a, "*") != 0 && strncmp(a, "db_", 3) != 0 &&
      strncmp(a, "doc_", 4) != 0) {
    const char *pre =
        doc_type && strcmp(doc_type, "database") == 0 ? "db_" : "doc_";
    if (strlen(pre) + strlen(a) >= sizeof act) return KZ_EINVAL;
    strcpy(act, pre);
    strcat(act, a);
    a = act;
  }
  const struct part p[] = {{db, true}, {doc_type, true}, {doc_id, false}};
  return join(out, a, p, 3);
}

struct kz_slice kz_bus_reply_queue(const char *server_id) {
  if (!server_id) return (struct kz_slice){"", 0};
  struct kz_slice s = kz_slice_cstr(server_id);
  if (strncmp(server_id, "pid://", 6) == 0 ||
      strncmp(server_id, "consumer://", 11) == 0) {
    const char *slash = strrchr(server_id, '/');
    /* "pid://" alone has its last '/' inside the scheme: no queue. */
    size_t off = (size_t)(slash - server_id) + 1;
    return kz_slice_sub(s, off, s.len - off);
  }
  return s;
}

/* ------------------------------------------------------------------ */
/* Keys from messages                                                    */

static const char *str_field(const json_t *msg, const char *key) {
  const char *s = json_string_value(json_object_get(msg, key));
  return s;
}

static bool is_ipv4(const char *s) {
  int groups = 0;
  while (*s) {
    int digits = 0, val = 0;
    while (*s >= '0' && *s <= '9') {
      val = val * 10 + (*s - '0');
      if (++digits > 3) return false;
      s++;
    }
    if (!digits || val > 255) return false;
    groups++;
    if (*s == '.') {
      s++;
      if (!*s) return false;
    } else if (*s) {
      return false;
    }
  }
  return groups == 4;
}

/* Kazoo asks inet:parse_ipv6strict_address; a realm made only of hex
 * digits, ':' and '.' with at least two ':' is an IPv6 literal for any
 * practical purpose. */
static bool is_ipv6(const char *s) {
  int colons = 0;
  for (; *s; s++) {
    if (*s == ':')
      colons++;
    else if (hexval((unsigned char)*s) < 0 && *s != '.')
      return false;
  }
  return colons >= 2;
}

static int keyed_fail(struct kz_kapi_error *err, const struct kapi_def *d,
                      const char *what) {
  kz_bus_kapi_fail(err, "%s: %s", d->name, what);
  return KZ_EINVAL;
}

/* kapi_authn:get_auth_realm: the realm lower-cased, or the To domain
 * when the realm is an IP address. */
static int authn_key(const json_t *msg, const struct kapi_def *d, char **out,
                     struct kz_kapi_error *err) {
  const char *realm = str_field(msg, "Auth-Realm");
  if (!realm) return keyed_fail(err, d, "no Auth-Realm for the routing key");
  if (is_ipv4(realm) || is_ipv6(realm)) {
    const char *to = str_field(msg, "To");
    const char *at = to ? strchr(to, '@') : NULL;
    if (!at) return keyed_fail(err, d, "IP realm and no To domain for the "
                                       "routing key");
    realm = at + 1;
  }
  char *low = kz_strdup(realm);
  if (!low) return KZ_ENOMEM;
  for (char *p = low; *p; p++) {
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
  }
  int rc = kz_bus_rk_authn_req(out, low);
  kz_free(low);
  return rc;
}

/* kapi_route:get_route_req_routing. */
static int route_key(const json_t *msg, const struct kapi_def *d, char **out,
                     struct kz_kapi_error *err) {
  const char *type = str_field(msg, "Resource-Type");
  if (!type) return keyed_fail(err, d, "no Resource-Type for the routing key");
  const char *acct = str_field(msg, "Account-ID");
  if (!acct)
    acct = json_string_value(json_object_get(
        json_object_get(msg, "Custom-Channel-Vars"), "Account-ID"));
  if (acct) return kz_bus_rk_route_req_account(out, type, acct);
  const char *from = str_field(msg, "From");
  const char *at = from ? strchr(from, '@') : NULL;
  if (!at) return keyed_fail(err, d, "From is not user@realm");
  char *user = kz_strndup(from, (size_t)(at - from));
  if (!user) return KZ_ENOMEM;
  int rc = kz_bus_rk_route_req_realm(out, type, at + 1, user);
  kz_free(user);
  return rc;
}

static int dup_out(char **out, const char *s) {
  char *r = kz_strdup(s);
  if (!r) return KZ_ENOMEM;
  *out = r;
  return 0;
}

int kz_bus_routing_key(const json_t *msg, enum kz_kapi_type type, char **out,
                       struct kz_kapi_error *err) {
  const struct kapi_def *d = kz_bus_kapi_def_of(type);
  if (!d || !msg || !out) {
    kz_bus_kapi_fail(err, "routing key: bad arguments");
    return KZ_EINVAL;
  }
  const char *realm = str_field(msg, "Realm");
  switch (type) {
  case KZ_KAPI_AUTHN_REQ: return authn_key(msg, d, out, err);
  case KZ_KAPI_REG_SUCCESS:
    if (!realm || !str_field(msg, "Username"))
      return keyed_fail(err, d, "no Realm/Username for the routing key");
    return kz_bus_rk_reg_success(out, realm, str_field(msg, "Username"));
  case KZ_KAPI_REG_QUERY:
    if (!realm) return keyed_fail(err, d, "no Realm for the routing key");
    return kz_bus_rk_reg_query(out, realm, str_field(msg, "Username"));
  case KZ_KAPI_REG_FLUSH:
    if (!realm) return keyed_fail(err, d, "no Realm for the routing key");
    return kz_bus_rk_reg_flush(out, realm);
  case KZ_KAPI_REG_SYNC: return dup_out(out, "registration.sync");
  case KZ_KAPI_ROUTE_REQ: return route_key(msg, d, out, err);
  case KZ_KAPI_CALL_EVENT:
    if (!str_field(msg, "Event-Name") || !str_field(msg, "Call-ID"))
      return keyed_fail(err, d, "no Event-Name/Call-ID for the routing key");
    return kz_bus_rk_call_event(out, str_field(msg, "Event-Name"),
                                str_field(msg, "Call-ID"));
  case KZ_KAPI_DOC_CHANGE:
    if (!str_field(msg, "Event-Name") || !str_field(msg, "Database") ||
        !str_field(msg, "Type") || !str_field(msg, "ID"))
      return keyed_fail(err, d,
                        "no Event-Name/Database/Type/ID for the routing key");
    return kz_bus_rk_doc_change(out, str_field(msg, "Event-Name"),
                                str_field(msg, "Database"),
                                str_field(msg, "Type"), str_field(msg, "ID"));
  case KZ_KAPI_OFFNET_REQ: return dup_out(out, "offnet.resource.req");
  case KZ_KAPI_NODES_ADVERTISE: return dup_out(out, "");
  case KZ_KAPI_CALL_COMMAND:
    return keyed_fail(err, d, "published to the call's control queue on "
                              "callctl, not a derived key");
  default:
    return keyed_fail(err, d, "a reply: published on targeted to the "
                              "requester's Server-ID queue");
  }
}
