/* proxy_config.c — the proxy's configuration: Kazoo's defaults, the JSON file parser (jansson) with errors naming the field, and checks. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "kz/error.h"
#include "kz/proxy.h"

void kz_proxy_config_defaults(struct kz_proxy_config *c) {
  memset(c, 0, sizeof *c);
  snprintf(c->listen, sizeof c->listen, "0.0.0.0:5060");
  c->tcp = true;
  c->min_expires_s = 300;
  c->reject_brief_expires = true;
  c->max_expires_s = 3600;
  c->default_expires_s = 600;
  c->require_expires = true;
  c->authn_timeout_ms = 2500;
  c->auth_cache_ttl_s = 7200;
  c->nonce_lifetime_s = 300;
  c->max_forwards_default = 10;
  c->probe_interval_ms = 10000;
  c->probe_threshold = 3;
  c->max_failover = 2;
  c->invite_timeout_ms = 5000;
  c->heartbeat_fudge_s = 45;
  c->sticky_ttl_s = 60;
  c->nat_ping = true;
  c->nat_ping_interval_s = 30;
  c->nat_ping_max_failures = 3;
  c->antiflood = true;
  c->pike_density = 50;
  c->pike_window_ms = 2000;
  c->pike_ban_s = 300;
  c->auth_fail_max = 4;
  c->auth_fail_window_s = 300;
  c->auth_retry_after_s = 3600;
  c->auth_fail_action = KZ_PROXY_AUTH_REPLY;
  c->traffic_filter = true;
}

static int fail(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t n, const char *fmt, ...) {
  if (err && n) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
  }
  return KZ_EPROTO;
}

enum ftype { F_U32, F_BOOL, F_STR };

struct field {
  const char *name;
  enum ftype type;
  size_t off;
  size_t size; /* F_STR: buffer size */
};

#define U32(n) {#n, F_U32, offsetof(struct kz_proxy_config, n), 0}
#define BOOL(n) {#n, F_BOOL, offsetof(struct kz_proxy_config, n), 0}
#define STR(n) {#n, F_STR, offsetof(struct kz_proxy_config, n), sizeof(((struct kz_proxy_config *)0)->n)}

static const struct field fields[] = {
    STR(listen),
    STR(advertise),
    BOOL(tcp),
    STR(node),
    STR(zone),
    U32(min_expires_s),
    BOOL(reject_brief_expires),
    U32(max_expires_s),
    U32(default_expires_s),
    BOOL(require_expires),
    U32(authn_timeout_ms),
    U32(auth_cache_ttl_s),
    U32(nonce_lifetime_s),
    U32(max_contacts),
    U32(max_forwards_default),
    U32(probe_interval_ms),
    U32(probe_threshold),
    U32(max_failover),
    U32(invite_timeout_ms),
    U32(heartbeat_fudge_s),
    U32(sticky_ttl_s),
    BOOL(nat_ping),
    U32(nat_ping_interval_s),
    U32(nat_ping_max_failures),
    BOOL(antiflood),
    U32(pike_density),
    U32(pike_window_ms),
    U32(pike_ban_s),
    U32(auth_fail_max),
    U32(auth_fail_window_s),
    U32(auth_retry_after_s),
    BOOL(traffic_filter),
};

static int string_list(const char *name, const json_t *v, char *base, size_t each, size_t max, size_t *n,
                       char *err, size_t errlen) {
  if (!json_is_array(v)) return fail(err, errlen, "%s: expected an array of strings", name);
  if (json_array_size(v) > max) return fail(err, errlen, "%s: at most %zu entries", name, max);
  for (size_t i = 0; i < json_array_size(v); i++) {
    const char *s = json_string_value(json_array_get(v, i));
    if (!s) return fail(err, errlen, "%s[%zu]: expected a string", name, i);
    if (strlen(s) >= each) return fail(err, errlen, "%s[%zu]: longer than %zu characters", name, i, each - 1);
    snprintf(base + i * each, each, "%s", s);
  }
  *n = json_array_size(v);
  return 0;
}

int kz_proxy_config_parse(struct kz_proxy_config *c, const char *json, size_t len, char *err,
                          size_t errlen) {
  if (!c || !json) return KZ_EINVAL;
  json_error_t je;
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
  if (!root) return fail(err, errlen, "line %d column %d: %s", je.line, je.column, je.text);
  int rc = 0;
  if (!json_is_object(root)) {
    rc = fail(err, errlen, "the configuration must be a JSON object");
    goto out;
  }
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    if (!strcmp(key, "media_servers")) {
      rc = string_list(key, v, &c->media_servers[0][0], sizeof c->media_servers[0], KZ_PROXY_MAX_SERVERS,
                       &c->n_media_servers, err, errlen);
      if (rc) goto out;
      continue;
    }
    if (!strcmp(key, "trusted")) {
      rc = string_list(key, v, &c->trusted[0][0], sizeof c->trusted[0], KZ_PROXY_MAX_TRUSTED,
                       &c->n_trusted, err, errlen);
      if (rc) goto out;
      continue;
    }
    if (!strcmp(key, "auth_fail_action")) {
      const char *s = json_string_value(v);
      if (s && !strcmp(s, "log")) c->auth_fail_action = KZ_PROXY_AUTH_LOG;
      else if (s && !strcmp(s, "drop")) c->auth_fail_action = KZ_PROXY_AUTH_DROP;
      else if (s && !strcmp(s, "reply")) c->auth_fail_action = KZ_PROXY_AUTH_REPLY;
      else {
        rc = fail(err, errlen, "auth_fail_action: expected \"log\", \"drop\" or \"reply\"");
        goto out;
      }
      continue;
    }
    const struct field *f = NULL;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
      if (!strcmp(fields[i].name, key)) f = &fields[i];
    if (!f) {
      rc = fail(err, errlen, "%s: unknown field", key);
      goto out;
    }
    char *dst = (char *)c + f->off;
    switch (f->type) {
    case F_U32:
      if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > UINT32_MAX) {
        rc = fail(err, errlen, "%s: expected a non-negative integer", key);
        goto out;
      }
      *(uint32_t *)(void *)dst = (uint32_t)json_integer_value(v);
      break;
    case F_BOOL:
      if (!json_is_boolean(v)) {
        rc = fail(err, errlen, "%s: expected true or false", key);
        goto out;
      }
      *(bool *)(void *)dst = json_is_true(v);
      break;
    case F_STR: {
      const char *s = json_string_value(v);
      if (!s) {
        rc = fail(err, errlen, "%s: expected a string", key);
        goto out;
      }
      if (strlen(s) >= f->size) {
        rc = fail(err, errlen, "%s: longer than %zu characters", key, f->size - 1);
        goto out;
      }
      snprintf(dst, f->size, "%s", s);
      break;
    }
    }
  }
  rc = kz_proxy_config_check(c, err, errlen) == 0 ? 0 : KZ_EPROTO;
out:
  json_decref(root);
  return rc;
}

int kz_proxy_config_check(const struct kz_proxy_config *c, char *err, size_t errlen) {
  struct kz_addr a;
  if (kz_addr_parse(&a, c->listen) != 0)
    return fail(err, errlen, "listen: expected \"ip:port\", got \"%s\"", c->listen), KZ_EINVAL;
  if (c->max_expires_s && c->max_expires_s < c->min_expires_s)
    return fail(err, errlen, "max_expires_s: below min_expires_s"), KZ_EINVAL;
  if (!c->authn_timeout_ms) return fail(err, errlen, "authn_timeout_ms: must be above 0"), KZ_EINVAL;
  if (!c->probe_threshold) return fail(err, errlen, "probe_threshold: must be above 0"), KZ_EINVAL;
  if (c->antiflood && !c->pike_window_ms) return fail(err, errlen, "pike_window_ms: must be above 0"), KZ_EINVAL;
  if (c->antiflood && !c->auth_fail_max) return fail(err, errlen, "auth_fail_max: must be above 0"), KZ_EINVAL;
  if (c->n_media_servers > KZ_PROXY_MAX_SERVERS)
    return fail(err, errlen, "media_servers: at most %d", KZ_PROXY_MAX_SERVERS), KZ_EINVAL;
  for (size_t i = 0; i < c->n_media_servers; i++) {
    const char *s = c->media_servers[i];
    const char *h = !strncmp(s, "sip:", 4) ? s + 4 : s;
    if (strchr(h, '@')) h = strchr(h, '@') + 1;
    char buf[KZ_PROXY_URI_MAX];
    snprintf(buf, sizeof buf, "%s", h);
    char *semi = strchr(buf, ';');
    if (semi) *semi = 0;
    if (!strchr(buf, ':')) snprintf(buf + strlen(buf), sizeof buf - strlen(buf), ":5060");
    if (kz_addr_parse(&a, buf) != 0)
      return fail(err, errlen, "media_servers[%zu]: expected \"sip:ip:port\", got \"%s\"", i, s), KZ_EINVAL;
  }
  for (size_t i = 0; i < c->n_trusted; i++)
    if (kz_addr_parse(&a, c->trusted[i]) != 0)
      return fail(err, errlen, "trusted[%zu]: expected an IP address, got \"%s\"", i, c->trusted[i]), KZ_EINVAL;
  return 0;
}
