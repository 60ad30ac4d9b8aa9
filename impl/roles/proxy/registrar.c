/* registrar.c — REGISTER (RFC 3261 §10) with Kazoo's bounds, digest auth against credentials fetched by authn_req, the location store, reg_success/reg_query/reg_flush, NAT keep-alives. */
#include <stdio.h>
#include <string.h>

#include "kz/bus.h"
#include "kz/error.h"
#include "kz/kapi.h"
#include "kz/mem.h"
#include "kz/sip_build.h"
#include "proxy_int.h"

#define GREGORIAN_OFFSET_S INT64_C(62167219200) /* 0000-01-01 to 1970-01-01 */
#define APP_NAME "kamailio"
#define APP_VERSION "0.1.0"

static void lower_copy(char *out, size_t n, struct kz_slice s) {
  size_t k = s.len < n - 1 ? s.len : n - 1;
  for (size_t i = 0; i < k; i++) {
    char c = s.p[i];
    out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
  }
  out[k] = 0;
}

static void slice_copy(char *out, size_t n, struct kz_slice s) {
  size_t k = s.len < n - 1 ? s.len : n - 1;
  if (k) memcpy(out, s.p, k);
  out[k] = 0;
}

static int strcasecmp_ascii(const char *a, const char *b) {
  for (;; a++, b++) {
    int x = (*a >= 'A' && *a <= 'Z') ? *a - 'A' + 'a' : *a;
    int y = (*b >= 'A' && *b <= 'Z') ? *b - 'A' + 'a' : *b;
    if (x != y || !x) return x - y;
  }
}

static struct kz_kapi_origin origin(const struct kz_proxy *p) {
  struct kz_kapi_origin o = {.app_name = APP_NAME, .app_version = APP_VERSION, .node = p->node};
  return o;
}

static int64_t gregorian_now(struct kz_proxy *p) {
  return kz_env_wall(p->env) / (int64_t)PX_NS_S + GREGORIAN_OFFSET_S;
}

/* ------------------------------------------------------------------ */
/* Location store                                                      */

static void binding_free(struct px_binding *b) {
  kz_timer_stop(&b->expiry);
  kz_free(b->contact);
  kz_free(b->contact_hdr);
  kz_free(b->call_id);
  kz_free(b->path);
  kz_free(b->user_agent);
  kz_free(b);
}

static void aor_free(struct px_aor *a) {
  while (a->bindings) {
    struct px_binding *b = a->bindings;
    a->bindings = b->next;
    binding_free(b);
  }
  if (a->ccvs) json_decref(a->ccvs);
  kz_free(a->key);
  kz_free(a->user);
  kz_free(a->realm);
  kz_free(a);
}

static void aor_maybe_drop(struct kz_proxy *p, struct px_aor *a) {
  if (a->n) return;
  kz_map_del_str(&p->aors, a->key);
  aor_free(a);
}

static void binding_unlink(struct px_aor *a, struct px_binding *b) {
  for (struct px_binding **pp = &a->bindings; *pp; pp = &(*pp)->next)
    if (*pp == b) {
      *pp = b->next;
      a->n--;
      return;
    }
}

struct px_aor *px_location(struct kz_proxy *p, struct kz_slice user, struct kz_slice realm) {
  char key[256], u[128], r[128];
  lower_copy(u, sizeof u, user);
  lower_copy(r, sizeof r, realm);
  snprintf(key, sizeof key, "%s@%s", u, r);
  return kz_map_get_str(&p->aors, key);
}

size_t kz_proxy_binding_count(const struct kz_proxy *p, const char *aor) {
  if (!p || !aor) return 0;
  char key[256];
  lower_copy(key, sizeof key, kz_slice_cstr(aor));
  struct px_aor *a = kz_map_get_str(&p->aors, key);
  return a ? a->n : 0;
}

static void on_binding_expired(void *arg) {
  struct px_binding *b = arg;
  struct px_aor *a = b->aor;
  struct kz_proxy *p = a->p;
  kz_log(p->env, KZ_LOG_INFO, PX_LOG, "binding %s of %s expired", b->contact, a->key);
  /* Kazoo does not publish expiries by default: another proxy may hold
   * a newer binding. */
  binding_unlink(a, b);
  binding_free(b);
  aor_maybe_drop(p, a);
}

/* ------------------------------------------------------------------ */
/* Bus messages                                                        */

/* The registration object shared by reg_success and reg_query_resp. */
static json_t *binding_json(struct kz_proxy *p, const struct px_aor *a, const struct px_binding *b,
                            uint32_t expires) {
  json_t *o = json_object();
  if (!o) return NULL;
  char ip[KZ_ADDR_STRLEN], contact[600];
  px_ip_str(&b->received, ip, sizeof ip);
  if (b->nated)
    snprintf(contact, sizeof contact, "<%s;alias=%s~%u~%d>", b->contact, ip, b->received.port,
             b->transport == KZ_SIP_TRANSPORT_TCP ? 2 : 1);
  else
    snprintf(contact, sizeof contact, "<%s>", b->contact);
  char aor[300];
  snprintf(aor, sizeof aor, "sip:%s@%s", a->user, a->realm);
  json_object_set_new(o, "Event-Timestamp", json_integer(gregorian_now(p)));
  json_object_set_new(o, "Contact", json_string(contact));
  json_object_set_new(o, "Expires", json_integer(expires));
  json_object_set_new(o, "Username", json_string(a->user));
  json_object_set_new(o, "Realm", json_string(a->realm));
  json_object_set_new(o, "Status", json_string(expires ? "Registered" : "Unregistered"));
  if (b->user_agent && b->user_agent[0]) json_object_set_new(o, "User-Agent", json_string(b->user_agent));
  json_object_set_new(o, "Call-ID", json_string(b->call_id));
  json_object_set_new(o, "From-User", json_string(a->user));
  json_object_set_new(o, "From-Host", json_string(a->realm));
  json_object_set_new(o, "To-User", json_string(a->user));
  json_object_set_new(o, "To-Host", json_string(a->realm));
  json_object_set_new(o, "Network-IP", json_string(ip));
  json_object_set_new(o, "Network-Port", json_integer(b->received.port));
  json_object_set_new(o, "Source-IP", json_string(ip));
  json_object_set_new(o, "Source-Port", json_integer(b->received.port));
  json_object_set_new(o, "Proxy-Path", json_string(p->self_uri));
  json_object_set_new(o, "Proxy-Protocol", json_string(b->transport == KZ_SIP_TRANSPORT_TCP ? "tcp" : "udp"));
  json_object_set_new(o, "Proxy-IP", json_string(p->host));
  json_object_set_new(o, "Proxy-Port", json_integer(p->port));
  json_object_set_new(o, "Original-Contact", json_string(b->contact_hdr));
  json_object_set_new(o, "Registrar-Node", json_string(p->node));
  json_object_set_new(o, "AOR", json_string(aor));
  if (a->ccvs) json_object_set(o, "Custom-Channel-Vars", a->ccvs);
  return o;
}

static void publish_reg(struct kz_proxy *p, const struct px_aor *a, const struct px_binding *b,
                        uint32_t expires, bool first) {
  if (!p->bus) return;
  json_t *body = binding_json(p, a, b, expires);
  if (!body) return;
  json_object_set_new(body, "First-Registration", json_boolean(first));
  struct kz_kapi_origin o = origin(p);
  json_t *msg = NULL;
  struct kz_kapi_error err;
  char *rk = NULL;
  if (kz_kapi_build(KZ_KAPI_REG_SUCCESS, &o, &p->prng, body, &msg, &err) == 0 &&
      kz_bus_rk_reg_success(&rk, a->realm, a->user) == 0) {
    if (kz_bus_publish_built(p->bus, "registrar", rk, msg, NULL, NULL) == 0) p->st.reg_success_published++;
  } else {
    kz_log(p->env, KZ_LOG_WARN, PX_LOG, "reg_success not built: %s", err.reason);
  }
  kz_free(rk);
  if (msg) json_decref(msg);
  json_decref(body);
}

static void on_reg_query(struct kz_proxy *p, const json_t *req) {
  const char *realm = json_string_value(json_object_get(req, "Realm"));
  const char *user = json_string_value(json_object_get(req, "Username"));
  if (!realm) return;
  char r[128];
  lower_copy(r, sizeof r, kz_slice_cstr(realm));
  json_t *fields = json_array();
  size_t count = 0;
  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  while (kz_map_next(&p->aors, &pos, &k, &kl, &v)) {
    struct px_aor *a = v;
    if (strcmp(a->realm, r) != 0) continue;
    if (user && strcasecmp_ascii(a->user, user) != 0) continue;
    for (struct px_binding *b = a->bindings; b; b = b->next) {
      uint64_t now = px_now(p);
      uint32_t left = b->expires_at > now ? (uint32_t)((b->expires_at - now) / PX_NS_S) : 0;
      json_array_append_new(fields, binding_json(p, a, b, left));
      count++;
    }
  }
  /* Only the proxy holding bindings answers: requesters collect. */
  if (count) {
    json_t *body = json_object();
    const json_t *co = json_object_get(req, "Count-Only");
    if (json_is_true(co)) json_object_set_new(body, "Count", json_integer((json_int_t)count));
    else json_object_set(body, "Fields", fields);
    struct kz_kapi_origin o = origin(p);
    json_t *reply = NULL;
    struct kz_kapi_error err;
    if (kz_kapi_build_reply(KZ_KAPI_REG_QUERY_RESP, &o, req, body, &reply, &err) == 0) {
      if (kz_bus_reply(p->bus, req, reply) == 0) p->st.reg_queries_answered++;
      json_decref(reply);
    }
    json_decref(body);
  }
  json_decref(fields);
}

static void drop_creds_of(struct kz_proxy *p, const char *user, const char *realm) {
  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  char suffix[140];
  snprintf(suffix, sizeof suffix, "@%s", realm);
  size_t sl = strlen(suffix);
  while (kz_map_next(&p->creds, &pos, &k, &kl, &v)) {
    bool match;
    if (user) {
      char key[256];
      snprintf(key, sizeof key, "%s@%s", user, realm);
      match = kl == strlen(key) && memcmp(k, key, kl) == 0;
    } else {
      match = kl >= sl && memcmp((const char *)k + kl - sl, suffix, sl) == 0;
    }
    if (!match) continue;
    struct px_cred *c = v;
    kz_map_del(&p->creds, k, kl, NULL);
    kz_free(c->password);
    kz_free(c->ha1);
    if (c->ccvs) json_decref(c->ccvs);
    kz_free(c);
  }
}

static void on_reg_flush(struct kz_proxy *p, const json_t *req) {
  const char *realm_in = json_string_value(json_object_get(req, "Realm"));
  const char *user_in = json_string_value(json_object_get(req, "Username"));
  bool cache_only = json_is_true(json_object_get(req, "Cache-Only"));
  if (!realm_in) return;
  char realm[128], user[128];
  lower_copy(realm, sizeof realm, kz_slice_cstr(realm_in));
  if (user_in) lower_copy(user, sizeof user, kz_slice_cstr(user_in));
  drop_creds_of(p, user_in ? user : NULL, realm);
  p->st.reg_flushes++;
  if (user_in) px_authfail_clear_user(p, kz_slice_cstr(user));
  if (cache_only) return;
  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  while (kz_map_next(&p->aors, &pos, &k, &kl, &v)) {
    struct px_aor *a = v;
    if (strcmp(a->realm, realm) != 0) continue;
    if (user_in && strcmp(a->user, user) != 0) continue;
    kz_log(p->env, KZ_LOG_INFO, PX_LOG, "reg_flush: dropping %zu bindings of %s", a->n, a->key);
    kz_map_del(&p->aors, k, kl, NULL);
    aor_free(a);
  }
}

void px_on_bus_delivery(void *arg, struct kz_bus *bus, const struct kz_bus_delivery *d) {
  struct kz_proxy *p = arg;
  json_t *msg = NULL;
  enum kz_kapi_type type = KZ_KAPI_UNKNOWN;
  struct kz_kapi_error err;
  if (kz_kapi_decode(d->body, d->len, NULL, KZ_KAPI_UNKNOWN, &msg, &type, &err) != 0) {
    kz_log(p->env, KZ_LOG_DEBUG, PX_LOG, "bus message dropped: %s", err.reason);
    return;
  }
  switch (type) {
  case KZ_KAPI_REG_QUERY: on_reg_query(p, msg); break;
  case KZ_KAPI_REG_FLUSH: on_reg_flush(p, msg); break;
  case KZ_KAPI_NODES_ADVERTISE: px_on_advertise(p, msg); break;
  default: break;
  }
  json_decref(msg);
  px_txl_rearm(p);
}

/* ------------------------------------------------------------------ */
/* REGISTER                                                            */

struct reg_ctx {
  const struct kz_sip_msg *m;
  const struct kz_addr *src;
  enum kz_sip_transport tp;
  char user[128], realm[128]; /* AOR, lower-cased */
  char auth_user[128];        /* credentials' username, lower-cased */
};

static void challenge(struct kz_proxy *p, const struct reg_ctx *rc, bool stale) {
  struct kz_buf ch;
  kz_buf_init(&ch);
  kz_buf_append_cstr(&ch, "WWW-Authenticate: ");
  struct kz_sip_digest_challenge_opts o = {
      .realm = kz_slice_cstr(rc->realm), .alg = KZ_SIP_DIGEST_MD5, .qop_auth = true, .stale = stale};
  if (kz_sip_digest_challenge(p->verifier, &ch, &o, px_now(p)) == 0) {
    kz_buf_append_cstr(&ch, "\r\n");
    px_reply(p, rc->m, rc->src, rc->tp, 401, "Unauthorized", (const char *)ch.data);
    p->st.registers_challenged++;
  }
  kz_buf_free(&ch);
}

static void forbid(struct kz_proxy *p, const struct reg_ctx *rc) {
  if (p->cfg->auth_fail_action == KZ_PROXY_AUTH_DROP) {
    p->st.registers_dropped++;
    return;
  }
  char extra[64];
  snprintf(extra, sizeof extra, "Retry-After: %u\r\n", p->cfg->auth_retry_after_s);
  px_reply(p, rc->m, rc->src, rc->tp, 403, "Forbidden", extra);
}

/* An authentication failure: count it, then 403 when the limit is
 * reached, else challenge again. */
static void auth_failed(struct kz_proxy *p, const struct reg_ctx *rc) {
  p->st.auth_failures++;
  bool trusted = px_is_trusted(p, rc->src);
  if (!trusted && p->cfg->antiflood && px_authfail_record(p, kz_slice_cstr(rc->auth_user), rc->src) &&
      p->cfg->auth_fail_action != KZ_PROXY_AUTH_LOG) {
    p->st.auth_bans++;
    kz_log(p->env, KZ_LOG_WARN, PX_LOG, "auth failures from %s@%s: banned", rc->auth_user, rc->realm);
    forbid(p, rc);
    return;
  }
  challenge(p, rc, false);
}

static uint32_t contact_expires(const struct kz_proxy *p, const struct kz_sip_msg *m,
                                const struct kz_sip_addr *c, bool *missing) {
  int64_t e = c && c->expires >= 0 ? c->expires : m->expires;
  *missing = e < 0;
  if (e < 0) return p->cfg->default_expires_s;
  return e > UINT32_MAX ? UINT32_MAX : (uint32_t)e;
}

static uint32_t clamp_expires(const struct kz_proxy *p, uint32_t e) {
  if (e == 0) return 0;
  if (e < p->cfg->min_expires_s) e = p->cfg->min_expires_s;
  if (p->cfg->max_expires_s && e > p->cfg->max_expires_s) e = p->cfg->max_expires_s;
  return e;
}

static struct px_aor *aor_get_or_make(struct kz_proxy *p, const struct reg_ctx *rc) {
  char key[300];
  snprintf(key, sizeof key, "%s@%s", rc->user, rc->realm);
  struct px_aor *a = kz_map_get_str(&p->aors, key);
  if (a) return a;
  a = kz_calloc(1, sizeof *a);
  if (!a) return NULL;
  a->p = p;
  a->key = kz_strdup(key);
  a->user = kz_strdup(rc->user);
  a->realm = kz_strdup(rc->realm);
  if (!a->key || !a->user || !a->realm || kz_map_put_str(&p->aors, key, a, NULL) != 0) {
    aor_free(a);
    return NULL;
  }
  return a;
}

static struct px_binding *find_binding(struct px_aor *a, struct kz_slice uri) {
  for (struct px_binding *b = a ? a->bindings : NULL; b; b = b->next)
    if (kz_slice_eq_cstr(uri, b->contact)) return b;
  return NULL;
}

/* Where requests for a binding go: the packet source when the device is
 * behind NAT (fix_nated_register), or over TCP, else its Contact. */
static void binding_target(const struct reg_ctx *rc, const struct kz_sip_addr *c, struct px_binding *b) {
  struct kz_addr caddr;
  enum kz_sip_transport ctp = KZ_SIP_TRANSPORT_UDP;
  b->received = *rc->src;
  b->transport = rc->tp;
  bool nated = !px_uri_addr(&c->uri, &caddr, &ctp) || !kz_addr_eq(&caddr, rc->src);
  const struct kz_sip_via *v = &rc->m->vias[0];
  char ip[KZ_ADDR_STRLEN];
  px_ip_str(rc->src, ip, sizeof ip);
  if (!kz_slice_caseeq_cstr(v->host, ip) || (v->port ? v->port : 5060) != rc->src->port) nated = true;
  b->nated = nated;
  b->target = (nated || rc->tp == KZ_SIP_TRANSPORT_TCP) ? *rc->src : caddr;
}

/* Whether a Supported header lists the option tag "path". */
static bool supports_path(const struct kz_sip_msg *m) {
  for (const struct kz_sip_hdr *h = kz_sip_msg_hdr(m, KZ_SIP_HDR_SUPPORTED); h; h = kz_sip_msg_hdr_next(m, h)) {
    struct kz_slice v = h->value;
    size_t i = 0;
    while (i < v.len) {
      size_t j = i;
      while (j < v.len && v.p[j] != ',') j++;
      if (kz_slice_caseeq_cstr(kz_slice_trim(kz_slice_sub(v, i, j - i)), "path")) return true;
      i = j + 1;
    }
  }
  return false;
}

static void reply_ok(struct kz_proxy *p, const struct reg_ctx *rc, struct px_aor *a) {
  struct kz_buf x;
  kz_buf_init(&x);
  uint64_t now = px_now(p);
  for (struct px_binding *b = a ? a->bindings : NULL; b; b = b->next) {
    uint64_t left = b->expires_at > now ? (b->expires_at - now + PX_NS_S - 1) / PX_NS_S : 0;
    kz_buf_printf(&x, "Contact: <%s>;expires=%llu\r\n", b->contact, (unsigned long long)left);
  }
  /* RFC 3327 §5.3: the Path is echoed to a UA that supports it (the
   * registrar's path_mode 1: stored always, echoed when asked). */
  if (supports_path(rc->m))
    for (const struct kz_sip_hdr *ph = kz_sip_msg_hdr(rc->m, KZ_SIP_HDR_PATH); ph;
         ph = kz_sip_msg_hdr_next(rc->m, ph)) {
      kz_buf_append_cstr(&x, "Path: ");
      kz_sip_unfold(&x, ph->value);
      kz_buf_append_cstr(&x, "\r\n");
    }
  px_reply(p, rc->m, rc->src, rc->tp, 200, "OK", x.len ? (const char *)x.data : NULL);
  kz_buf_free(&x);
  p->st.registers_ok++;
}

/* §10.3 steps 6-8: apply the contacts.  The whole request fails when
 * one binding is out of order. */
static void save_location(struct kz_proxy *p, const struct reg_ctx *rc, json_t *ccvs) {
  const struct kz_sip_msg *m = rc->m;
  struct px_aor *a = aor_get_or_make(p, rc);
  if (!a) {
    px_reply(p, m, rc->src, rc->tp, 500, "Server Internal Error", NULL);
    return;
  }
  if (ccvs) {
    if (a->ccvs) json_decref(a->ccvs);
    a->ccvs = json_incref(ccvs);
  }
  uint64_t now = px_now(p);

  /* Step 7 check first. */
  for (struct px_binding *b = a->bindings; b; b = b->next) {
    bool touched = m->contact_star;
    for (size_t i = 0; i < m->ncontacts && !touched; i++)
      if (kz_slice_eq_cstr(m->contacts[i].uri.raw, b->contact)) touched = true;
    if (touched && kz_slice_eq_cstr(m->call_id, b->call_id) && m->cseq.num < b->cseq) {
      px_reply(p, m, rc->src, rc->tp, 400, "Invalid CSeq number", NULL);
      aor_maybe_drop(p, a);
      return;
    }
  }

  if (m->contact_star) {
    while (a->bindings) {
      struct px_binding *b = a->bindings;
      publish_reg(p, a, b, 0, false);
      binding_unlink(a, b);
      binding_free(b);
    }
    reply_ok(p, rc, a);
    aor_maybe_drop(p, a);
    return;
  }

  const struct kz_sip_hdr *ua = kz_sip_msg_hdr(m, KZ_SIP_HDR_USER_AGENT);
  for (size_t i = 0; i < m->ncontacts; i++) {
    const struct kz_sip_addr *c = &m->contacts[i];
    bool missing;
    uint32_t exp = clamp_expires(p, contact_expires(p, m, c, &missing));
    struct px_binding *b = find_binding(a, c->uri.raw);
    if (b && kz_slice_eq_cstr(m->call_id, b->call_id) && m->cseq.num == b->cseq) continue; /* retransmission */
    if (exp == 0) {
      if (b) {
        publish_reg(p, a, b, 0, false);
        binding_unlink(a, b);
        binding_free(b);
      }
      continue;
    }
    bool first = !b;
    if (!b) {
      if (p->cfg->max_contacts && a->n >= p->cfg->max_contacts) {
        /* Drop the oldest, as usrloc's max_contacts overwrite does. */
        struct px_binding *old = a->bindings;
        binding_unlink(a, old);
        binding_free(old);
      }
      b = kz_calloc(1, sizeof *b);
      if (!b) continue;
      b->aor = a;
      b->contact = kz_slice_dup(c->uri.raw);
      kz_timer_init(&b->expiry, p->env, on_binding_expired, b);
      b->registered_at = now;
      if (!b->contact) {
        kz_free(b);
        continue;
      }
      struct px_binding **tail = &a->bindings;
      while (*tail) tail = &(*tail)->next;
      *tail = b;
      a->n++;
    }
    kz_free(b->contact_hdr);
    kz_free(b->call_id);
    kz_free(b->user_agent);
    kz_free(b->path);
    struct kz_buf tmp;
    kz_buf_init(&tmp);
    kz_sip_unfold(&tmp, c->raw);
    b->contact_hdr = kz_strdup(tmp.len ? (const char *)tmp.data : "");
    kz_buf_reset(&tmp);
    if (ua) kz_sip_unfold(&tmp, ua->value);
    b->user_agent = kz_strdup(tmp.len ? (const char *)tmp.data : "");
    kz_buf_reset(&tmp);
    for (const struct kz_sip_hdr *ph = kz_sip_msg_hdr(m, KZ_SIP_HDR_PATH); ph; ph = kz_sip_msg_hdr_next(m, ph)) {
      if (tmp.len) kz_buf_append_cstr(&tmp, ", ");
      kz_sip_unfold(&tmp, ph->value);
    }
    b->path = kz_strdup(tmp.len ? (const char *)tmp.data : "");
    kz_buf_free(&tmp);
    b->call_id = kz_slice_dup(m->call_id);
    b->cseq = m->cseq.num;
    b->q = c->q;
    b->expires_s = exp;
    b->expires_at = now + (uint64_t)exp * PX_NS_S;
    b->ping_failures = 0;
    b->ping_outstanding = false;
    binding_target(rc, c, b);
    kz_timer_start_at(&b->expiry, b->expires_at);
    publish_reg(p, a, b, exp, first);
  }
  reply_ok(p, rc, a);
  aor_maybe_drop(p, a);
}

/* The AOR holding a binding that rc->m (same Call-ID and CSeq) already
 * applied, or NULL: rc->m is then a retransmission whose 200 was lost or
 * late.  The nonce count of its credentials is no longer above the
 * highest seen (REPLAY), or the nonce's count entry was evicted meanwhile
 * (STALE), yet its digest was right: it must get the 200 again, not a
 * 401 the UAC would take for the end of its transaction (a server
 * transaction would have absorbed it, RFC 3261 §17.2.3). */
static struct px_aor *applied_by(struct kz_proxy *p, const struct reg_ctx *rc) {
  char key[300];
  snprintf(key, sizeof key, "%s@%s", rc->user, rc->realm);
  struct px_aor *a = kz_map_get_str(&p->aors, key);
  for (struct px_binding *b = a ? a->bindings : NULL; b; b = b->next)
    if (kz_slice_eq_cstr(rc->m->call_id, b->call_id) && rc->m->cseq.num == b->cseq) return a;
  return NULL;
}

/* Checks the credentials of rc->m against a password or HA1 and goes
 * on with the REGISTER. */
static void verify_and_save(struct kz_proxy *p, const struct reg_ctx *rc, const struct px_cred *cr) {
  const struct kz_sip_hdr *ah = kz_sip_msg_hdr(rc->m, KZ_SIP_HDR_AUTHORIZATION);
  struct kz_sip_digest_auth cred;
  if (!ah || kz_sip_digest_parse(&cred, KZ_SIP_DIGEST_AUTHORIZATION, ah->value) != 0) {
    kz_sip_digest_auth_clear(&cred);
    challenge(p, rc, false);
    return;
  }
  struct kz_sip_digest_check chk = {
      .method = KZ_SLICE_LIT("REGISTER"),
      .realm = kz_slice_cstr(rc->realm),
  };
  if (cr->ha1) {
    chk.ha1 = kz_slice_cstr(cr->ha1);
    chk.ha1_alg = KZ_SIP_DIGEST_MD5;
  } else {
    chk.password = kz_slice_cstr(cr->password ? cr->password : "");
  }
  struct kz_sip_digest_result res;
  int rc2 = kz_sip_digest_verify(p->verifier, &cred, &chk, px_now(p), &res);
  kz_sip_digest_auth_clear(&cred);
  if (rc2 != 0) {
    auth_failed(p, rc);
    return;
  }
  switch (res.status) {
  case KZ_SIP_DIGEST_OK:
    if (p->cfg->antiflood) px_authfail_clear(p, kz_slice_cstr(rc->auth_user), rc->src);
    save_location(p, rc, cr->ccvs);
    return;
  case KZ_SIP_DIGEST_STALE:
  case KZ_SIP_DIGEST_REPLAY: {
    /* Only a retransmission of an applied request: the bindings are
     * listed again, nothing changes (a replay cannot alter them). */
    struct px_aor *a = applied_by(p, rc);
    if (a) reply_ok(p, rc, a);
    else challenge(p, rc, res.status == KZ_SIP_DIGEST_STALE);
    return;
  }
  case KZ_SIP_DIGEST_BAD_NONCE: challenge(p, rc, false); return;
  case KZ_SIP_DIGEST_WRONG_RESPONSE: auth_failed(p, rc); return;
  case KZ_SIP_DIGEST_MALFORMED:
    px_reply(p, rc->m, rc->src, rc->tp, 400, res.reason, NULL);
    return;
  }
}

static void cred_free(struct px_cred *c) {
  kz_free(c->password);
  kz_free(c->ha1);
  if (c->ccvs) json_decref(c->ccvs);
  kz_free(c);
}

static struct px_cred *cred_lookup(struct kz_proxy *p, const char *key) {
  struct px_cred *c = kz_map_get_str(&p->creds, key);
  if (c && c->expires_at <= px_now(p)) {
    kz_map_del_str(&p->creds, key);
    cred_free(c);
    c = NULL;
  }
  return c;
}

static void cred_store(struct kz_proxy *p, const char *key, struct px_cred *c) {
  void *old = NULL;
  c->expires_at = px_now(p) + (uint64_t)p->cfg->auth_cache_ttl_s * PX_NS_S;
  if (kz_map_put_str(&p->creds, key, c, &old) != 0) {
    cred_free(c);
    return;
  }
  if (old) cred_free(old);
}

static void pending_free(struct kz_proxy *p, struct px_pending *pd) {
  if (pd->prev) pd->prev->next = pd->next;
  else if (p->pending == pd) p->pending = pd->next;
  if (pd->next) pd->next->prev = pd->prev;
  kz_deref(pd->msg);
  kz_free(pd);
}

static bool fill_ctx(struct reg_ctx *rc, const struct kz_sip_msg *m, const struct kz_addr *src,
                     enum kz_sip_transport tp) {
  memset(rc, 0, sizeof *rc);
  rc->m = m;
  rc->src = src;
  rc->tp = tp;
  lower_copy(rc->user, sizeof rc->user, m->to.uri.user);
  lower_copy(rc->realm, sizeof rc->realm, m->to.uri.host);
  snprintf(rc->auth_user, sizeof rc->auth_user, "%s", rc->user);
  return m->to.uri.user.p && m->to.uri.user.len && m->to.uri.host.len;
}

static void on_authn_reply(void *arg, struct kz_bus *bus, int status, const json_t *reply) {
  struct px_pending *pd = arg;
  struct kz_proxy *p = pd->p;
  pd->req_id = 0;
  if (status == KZ_ETIMEDOUT) {
    /* Kazoo drops the REGISTER: the phone retries, maybe elsewhere. */
    p->st.authn_timeouts++;
    p->st.registers_dropped++;
    kz_log(p->env, KZ_LOG_WARN, PX_LOG, "authn_req for %s timed out: REGISTER dropped", pd->key);
    pending_free(p, pd);
    return;
  }
  if (status != 0 || !reply) {
    pending_free(p, pd);
    return;
  }
  struct reg_ctx rc;
  fill_ctx(&rc, pd->msg, &pd->src, pd->transport);
  const char *at = strchr(pd->key, '@');
  if (at) slice_copy(rc.auth_user, sizeof rc.auth_user, kz_slice_make(pd->key, (size_t)(at - pd->key)));
  enum kz_kapi_type type = kz_kapi_identify_msg(reply);
  if (type == KZ_KAPI_AUTHN_RESP && kz_kapi_validate(reply, type, NULL) == 0) {
    const char *method = json_string_value(json_object_get(reply, "Auth-Method"));
    const char *pw = json_string_value(json_object_get(reply, "Auth-Password"));
    struct px_cred *c = kz_calloc(1, sizeof *c);
    if (c && method && pw && (!strcmp(method, "password") || !strcmp(method, "a1-hash"))) {
      if (!strcmp(method, "password")) c->password = kz_strdup(pw);
      else c->ha1 = kz_strdup(pw);
      json_t *ccvs = json_object_get(reply, "Custom-Channel-Vars");
      if (json_is_object(ccvs)) c->ccvs = json_deep_copy(ccvs);
      cred_store(p, pd->key, c);
      struct px_cred *cached = kz_map_get_str(&p->creds, pd->key);
      if (cached) verify_and_save(p, &rc, cached);
    } else {
      if (c) cred_free(c);
      auth_failed(p, &rc);
    }
  } else {
    /* authn_err: Kamailio challenges again and remembers a permanent
     * error so the next tries do not reach the bus. */
    if (json_is_true(json_object_get(reply, "Permanent-Error"))) {
      struct px_cred *c = kz_calloc(1, sizeof *c);
      if (c) {
        c->permanent_error = true;
        cred_store(p, pd->key, c);
      }
    }
    auth_failed(p, &rc);
  }
  pending_free(p, pd);
  px_txl_rearm(p);
}

static void send_authn_req(struct kz_proxy *p, const struct reg_ctx *rc, const char *key,
                           const struct kz_sip_digest_auth *cred) {
  const struct kz_sip_msg *m = rc->m;
  for (struct px_pending *pd = p->pending; pd; pd = pd->next)
    if (kz_slice_eq(pd->msg->call_id, m->call_id) && pd->msg->cseq.num == m->cseq.num)
      return; /* a retransmission while we wait */
  struct px_pending *pd = kz_calloc(1, sizeof *pd);
  if (!pd) return;
  pd->p = p;
  pd->src = *rc->src;
  pd->transport = rc->tp;
  snprintf(pd->key, sizeof pd->key, "%s", key);
  if (kz_sip_msg_parse(&pd->msg, m->raw.p, m->raw.len, KZ_SIP_PARSE_COPY, NULL) != 0) {
    kz_free(pd);
    return;
  }
  char ip[KZ_ADDR_STRLEN], port[8];
  px_ip_str(rc->src, ip, sizeof ip);
  snprintf(port, sizeof port, "%u", rc->src->port);
  json_t *body = json_object();
  json_object_set_new(body, "Method", json_string("REGISTER"));
  json_object_set_new(body, "Auth-Realm", json_string(rc->realm));
  json_object_set_new(body, "Auth-User", json_stringn(cred->username.p, cred->username.len));
  json_object_set_new(body, "Auth-Nonce", json_stringn(cred->nonce.p, cred->nonce.len));
  json_object_set_new(body, "Auth-Response", json_stringn(cred->response.p, cred->response.len));
  json_object_set_new(body, "From", json_stringn(m->from.uri.raw.p, m->from.uri.raw.len));
  json_object_set_new(body, "To", json_stringn(m->to.uri.raw.p, m->to.uri.raw.len));
  json_object_set_new(body, "Orig-IP", json_string(ip));
  json_object_set_new(body, "Orig-Port", json_string(port));
  json_object_set_new(body, "Call-ID", json_stringn(m->call_id.p, m->call_id.len));
  json_object_set_new(body, "Switch-Hostname", json_string(p->host));
  const struct kz_sip_hdr *ua = kz_sip_msg_hdr(m, KZ_SIP_HDR_USER_AGENT);
  if (ua) json_object_set_new(body, "User-Agent", json_stringn(ua->value.p, ua->value.len));
  if (m->ncontacts) json_object_set_new(body, "Contact", json_stringn(m->contacts[0].raw.p, m->contacts[0].raw.len));
  struct kz_kapi_origin o = origin(p);
  json_t *req = NULL;
  struct kz_kapi_error err;
  char *rk = NULL;
  int rc2 = kz_kapi_build(KZ_KAPI_AUTHN_REQ, &o, &p->prng, body, &req, &err);
  if (rc2 == 0) rc2 = kz_bus_rk_authn_req(&rk, rc->realm);
  if (rc2 == 0) {
    pd->next = p->pending;
    if (p->pending) p->pending->prev = pd;
    p->pending = pd;
    rc2 = kz_bus_request(p->bus, "callmgr", rk, req, (uint64_t)p->cfg->authn_timeout_ms * PX_NS_MS,
                         on_authn_reply, pd, &pd->req_id);
    if (rc2 == 0) p->st.authn_requests++;
    else pending_free(p, pd);
  } else {
    kz_log(p->env, KZ_LOG_WARN, PX_LOG, "authn_req not built: %s", err.reason);
    kz_deref(pd->msg);
    kz_free(pd);
  }
  kz_free(rk);
  if (req) json_decref(req);
  json_decref(body);
}

void px_on_register(struct kz_proxy *p, const struct kz_sip_msg *m, const struct kz_addr *src,
                    enum kz_sip_transport tp) {
  struct reg_ctx rc;
  if (!fill_ctx(&rc, m, src, tp)) {
    px_reply(p, m, src, tp, 400, "Bad AOR", NULL);
    return;
  }
  /* Kazoo drops REGISTERs to IP-address realms, and all of them while
   * its zone has no AMQP connection (phones then fail over). */
  if (px_host_is_ip(m->to.uri.host) || !p->bus || kz_bus_state(p->bus) != KZ_BUS_UP) {
    p->st.registers_dropped++;
    return;
  }
  if (m->contact_star && (m->expires != 0 || m->ncontacts > 0)) {
    px_reply(p, m, src, tp, 400, "Invalid Contact", NULL);
    return;
  }
  for (size_t i = 0; i < m->ncontacts; i++) {
    bool missing;
    uint32_t e = contact_expires(p, m, &m->contacts[i], &missing);
    if (missing && p->cfg->require_expires) {
      px_reply(p, m, src, tp, 400, "Missing Expires", NULL);
      return;
    }
    if (e != 0 && e < p->cfg->min_expires_s && p->cfg->reject_brief_expires) {
      char extra[48];
      snprintf(extra, sizeof extra, "Min-Expires: %u\r\n", p->cfg->min_expires_s);
      px_reply(p, m, src, tp, 423, "Interval Too Brief", extra);
      return;
    }
  }

  bool trusted = px_is_trusted(p, src);
  const struct kz_sip_hdr *ah = kz_sip_msg_hdr(m, KZ_SIP_HDR_AUTHORIZATION);
  struct kz_sip_digest_auth cred;
  memset(&cred, 0, sizeof cred);
  if (ah) {
    int prc = kz_sip_digest_parse(&cred, KZ_SIP_DIGEST_AUTHORIZATION, ah->value);
    if (prc == KZ_EPROTO) {
      px_reply(p, m, src, tp, 400, cred.reason[0] ? cred.reason : "Bad Authorization", NULL);
      kz_sip_digest_auth_clear(&cred);
      return;
    }
    if (prc == 0) lower_copy(rc.auth_user, sizeof rc.auth_user, cred.username);
    else ah = NULL; /* another scheme: challenge for digest */
  }
  if (!trusted && p->cfg->antiflood && p->cfg->auth_fail_action != KZ_PROXY_AUTH_LOG &&
      px_authfail_banned(p, kz_slice_cstr(rc.auth_user), src)) {
    forbid(p, &rc);
    kz_sip_digest_auth_clear(&cred);
    return;
  }
  if (!ah || !kz_slice_caseeq_cstr(cred.realm, rc.realm)) {
    challenge(p, &rc, false);
    kz_sip_digest_auth_clear(&cred);
    return;
  }
  char key[300];
  snprintf(key, sizeof key, "%s@%s", rc.auth_user, rc.realm);
  struct px_cred *cached = cred_lookup(p, key);
  if (cached && cached->permanent_error) {
    auth_failed(p, &rc);
  } else if (cached) {
    p->st.auth_cache_hits++;
    verify_and_save(p, &rc, cached);
  } else {
    send_authn_req(p, &rc, key, &cred);
  }
  kz_sip_digest_auth_clear(&cred);
}

/* ------------------------------------------------------------------ */
/* X-AUTH headers for media servers (4.3's SETUP_AUTH_HEADERS)          */

void px_xauth_headers(struct kz_proxy *p, const struct kz_sip_msg *m, const struct kz_addr *src,
                      char *out, size_t n) {
  char ip[KZ_ADDR_STRLEN];
  px_ip_str(src, ip, sizeof ip);
  int k = snprintf(out, n, "X-AUTH-IP: %s\r\nX-AUTH-PORT: %u\r\n", ip, src->port);
  if (k < 0 || (size_t)k >= n) {
    out[0] = 0;
    return;
  }
  /* registered("location", "$fu") with match_received = the source: a
   * device that registered from this very address and port. */
  struct px_aor *a = m->from.uri.user.p ? px_location(p, m->from.uri.user, m->from.uri.host) : NULL;
  if (!a || !a->ccvs) return;
  bool match = false;
  for (struct px_binding *b = a->bindings; b && !match; b = b->next)
    match = kz_addr_eq(&b->received, src);
  if (!match) return;
  const char *auth_id = json_string_value(json_object_get(a->ccvs, "Authorizing-ID"));
  const char *acct_id = json_string_value(json_object_get(a->ccvs, "Account-ID"));
  if (!auth_id || !acct_id || !auth_id[0] || !acct_id[0]) return;
  /* Ids go into a header line: refuse anything that could break it. */
  for (const char *c = auth_id; *c; c++)
    if ((unsigned char)*c <= ' ' || (unsigned char)*c > '~') return;
  for (const char *c = acct_id; *c; c++)
    if ((unsigned char)*c <= ' ' || (unsigned char)*c > '~') return;
  int k2 = snprintf(out + k, n - (size_t)k, "X-AUTH-Token: %s@%s\r\n", auth_id, acct_id);
  if (k2 < 0 || (size_t)k2 >= n - (size_t)k) out[k] = 0; /* too long: no token */
}

/* ------------------------------------------------------------------ */
/* NAT keep-alives (nathelper sipping)                                 */

void px_on_ping_result(struct kz_proxy *p, struct px_probe *pr, bool ok) {
  if (!ok) return; /* counted on the next round */
  struct px_aor *a = kz_map_get_str(&p->aors, pr->aor);
  if (!a) return;
  struct px_binding *b = find_binding(a, kz_slice_cstr(pr->contact));
  if (!b) return;
  b->ping_outstanding = false;
  b->ping_failures = 0;
}

static void on_nat_timer(void *arg) {
  struct kz_proxy *p = arg;
  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  while (kz_map_next(&p->aors, &pos, &k, &kl, &v)) {
    struct px_aor *a = v;
    struct px_binding *b = a->bindings;
    while (b) {
      struct px_binding *n = b->next;
      if (b->nated && b->transport == KZ_SIP_TRANSPORT_UDP) {
        if (b->ping_outstanding) b->ping_failures++;
        if (p->cfg->nat_ping_max_failures && b->ping_failures >= p->cfg->nat_ping_max_failures) {
          kz_log(p->env, KZ_LOG_INFO, PX_LOG, "binding %s of %s unreachable: dropped", b->contact, a->key);
          p->st.nat_bindings_dropped++;
          binding_unlink(a, b);
          binding_free(b);
        } else {
          struct px_probe *pr = px_probe_new(p, PXU_PING);
          if (pr) {
            snprintf(pr->aor, sizeof pr->aor, "%s", a->key);
            snprintf(pr->contact, sizeof pr->contact, "%s", b->contact);
            if (px_send_options(p, b->contact, &b->target, b->transport, pr) == 0) {
              b->ping_outstanding = true;
              p->st.nat_pings_sent++;
            }
          }
        }
      }
      b = n;
    }
    if (!a->n) {
      kz_map_del(&p->aors, k, kl, NULL);
      aor_free(a);
    }
  }
  kz_timer_start(&p->nat_timer, (uint64_t)p->cfg->nat_ping_interval_s * PX_NS_S);
  px_txl_rearm(p);
}

/* ------------------------------------------------------------------ */
/* Init                                                                */

static void setup_bus(struct kz_proxy *p) {
  const struct kz_proxy_config *cfg = p->cfg;
  if (!cfg->bus_factory) return;
  struct kz_bus_backend be = {0};
  int rc = cfg->bus_factory(cfg->bus_arg, p->env, &be);
  if (rc < 0) {
    kz_log(p->env, KZ_LOG_WARN, PX_LOG, "no bus backend: %s", kz_err_name(rc));
    return;
  }
  struct kz_bus_cfg bc = {.node = p->node, .app_name = APP_NAME, .app_version = APP_VERSION};
  if ((rc = kz_bus_new(&p->bus, p->env, &be, &bc)) < 0) {
    kz_log(p->env, KZ_LOG_WARN, PX_LOG, "bus: %s", kz_err_name(rc));
    p->bus = NULL;
    return;
  }
  kz_bus_declare_kazoo_exchanges(p->bus);
  snprintf(p->queue, sizeof p->queue, "kamailio-%s", kz_bus_server_id(p->bus));
  struct kz_bus_queue_opts qo = {.exclusive = true, .auto_delete = true};
  kz_bus_declare_queue(p->bus, p->queue, &qo);
  kz_bus_bind(p->bus, p->queue, "registrar", "registration.flush.*");
  kz_bus_bind(p->bus, p->queue, "registrar", "registration.query.*.*");
  kz_bus_bind(p->bus, p->queue, "nodes", "");
  kz_bus_consume(p->bus, p->queue, false, px_on_bus_delivery, p, NULL);
}

int px_registrar_init(struct kz_proxy *p) {
  kz_map_init(&p->aors, kz_prng_next(&p->prng), false);
  kz_map_init(&p->creds, kz_prng_next(&p->prng), false);
  struct kz_prng g;
  kz_env_prng(p->env, "proxy-digest", &g);
  uint8_t secret[32];
  kz_prng_bytes(&g, secret, sizeof secret);
  /* The nonce-count table bounds how late a challenge may be answered:
   * a nonce first used after about nc_slots others were is STALE.  The
   * default (1024) is a tenth of a second at 10 000 registrations/s,
   * less than one SIPp/phone retransmission interval (T1 = 500 ms);
   * 65536 entries (1.5 MB) cover several seconds at that rate. */
  struct kz_sip_digest_verifier_cfg vc = {
      .secret = secret, .secret_len = sizeof secret,
      .nonce_lifetime_s = p->cfg->nonce_lifetime_s ? p->cfg->nonce_lifetime_s : 300,
      .nc_slots = PX_NC_SLOTS};
  int rc = kz_sip_digest_verifier_new(&p->verifier, &vc);
  memset(secret, 0, sizeof secret);
  if (rc < 0) return rc;
  kz_timer_init(&p->nat_timer, p->env, on_nat_timer, p);
  if (p->cfg->nat_ping && p->cfg->nat_ping_interval_s)
    kz_timer_start(&p->nat_timer, (uint64_t)p->cfg->nat_ping_interval_s * PX_NS_S);
  setup_bus(p);
  return 0;
}

void px_registrar_fini(struct kz_proxy *p) {
  kz_timer_stop(&p->nat_timer);
  while (p->pending) pending_free(p, p->pending);
  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  while (kz_map_next(&p->aors, &pos, &k, &kl, &v)) aor_free(v);
  kz_map_free(&p->aors);
  pos = 0;
  while (kz_map_next(&p->creds, &pos, &k, &kl, &v)) cred_free(v);
  kz_map_free(&p->creds);
  kz_sip_digest_verifier_free(p->verifier);
  p->verifier = NULL;
}
