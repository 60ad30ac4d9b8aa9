/* antiflood.c — Kazoo's ANTIFLOOD and TRAFFIC_FILTER roles: per-source request density (pike) with temporary bans, failed-auth tracking, scanner filter, trusted sources. */
#include <stdio.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "proxy_int.h"

#define GC_INTERVAL_NS (60 * PX_NS_S)

bool px_is_trusted(const struct kz_proxy *p, const struct kz_addr *src) {
  if (px_is_media_server(p, src)) return true;
  char ip[KZ_ADDR_STRLEN];
  px_ip_str(src, ip, sizeof ip);
  for (size_t i = 0; i < p->cfg->n_trusted; i++)
    if (!strcmp(p->cfg->trusted[i], ip)) return true;
  return false;
}

bool px_pike_allow(struct kz_proxy *p, const struct kz_addr *src) {
  if (!p->cfg->antiflood || !p->cfg->pike_density || px_is_trusted(p, src)) return true;
  char ip[KZ_ADDR_STRLEN];
  px_ip_str(src, ip, sizeof ip);
  uint64_t now = px_now(p);
  struct px_pike *e = kz_map_get_str(&p->pike, ip);
  if (!e) {
    e = kz_calloc(1, sizeof *e);
    if (!e) return true;
    if (kz_map_put_str(&p->pike, ip, e, NULL) != 0) {
      kz_free(e);
      return true;
    }
    e->window_start = now;
  }
  if (e->banned_until > now) return false;
  uint64_t window = (uint64_t)p->cfg->pike_window_ms * PX_NS_MS;
  if (now - e->window_start >= window) {
    e->window_start = now;
    e->count = 0;
  }
  if (++e->count > p->cfg->pike_density) {
    /* Kazoo puts the source in the ipban table for the ban time. */
    e->banned_until = now + (uint64_t)p->cfg->pike_ban_s * PX_NS_S;
    p->st.flood_bans++;
    kz_log(p->env, KZ_LOG_WARN, PX_LOG, "pike: %s above %u requests per %u ms, banned for %u s", ip,
           p->cfg->pike_density, p->cfg->pike_window_ms, p->cfg->pike_ban_s);
    return false;
  }
  return true;
}

static void authfail_key(char *out, size_t n, struct kz_slice user, const struct kz_addr *src) {
  char ip[KZ_ADDR_STRLEN];
  px_ip_str(src, ip, sizeof ip);
  snprintf(out, n, "%.*s::%s", (int)(user.len > 128 ? 128 : user.len), user.p ? user.p : "", ip);
}

bool px_authfail_banned(struct kz_proxy *p, struct kz_slice user, const struct kz_addr *src) {
  char key[200];
  authfail_key(key, sizeof key, user, src);
  struct px_authfail *e = kz_map_get_str(&p->authfail, key);
  return e && e->banned_until > px_now(p);
}

bool px_authfail_record(struct kz_proxy *p, struct kz_slice user, const struct kz_addr *src) {
  char key[200];
  authfail_key(key, sizeof key, user, src);
  uint64_t now = px_now(p);
  struct px_authfail *e = kz_map_get_str(&p->authfail, key);
  if (!e) {
    e = kz_calloc(1, sizeof *e);
    if (!e) return false;
    if (kz_map_put_str(&p->authfail, key, e, NULL) != 0) {
      kz_free(e);
      return false;
    }
    e->first_at = now;
  }
  if (now - e->first_at >= (uint64_t)p->cfg->auth_fail_window_s * PX_NS_S) {
    e->first_at = now;
    e->count = 0;
  }
  if (++e->count >= p->cfg->auth_fail_max) {
    e->banned_until = now + (uint64_t)p->cfg->auth_retry_after_s * PX_NS_S;
    return true;
  }
  return false;
}

void px_authfail_clear(struct kz_proxy *p, struct kz_slice user, const struct kz_addr *src) {
  char key[200];
  authfail_key(key, sizeof key, user, src);
  kz_free(kz_map_del_str(&p->authfail, key));
}

void px_authfail_clear_user(struct kz_proxy *p, struct kz_slice user) {
  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  while (kz_map_next(&p->authfail, &pos, &k, &kl, &v)) {
    if (kl > user.len + 1 && memcmp(k, user.p, user.len) == 0 &&
        memcmp((const char *)k + user.len, "::", 2) == 0) {
      kz_map_del(&p->authfail, k, kl, NULL);
      kz_free(v);
    }
  }
}

bool px_traffic_filtered(const struct kz_proxy *p, const struct kz_sip_msg *m) {
  if (m->ruri.scheme != KZ_SIP_SCHEME_TEL && px_host_is_ip(m->ruri.host)) return true;
  if (px_host_is_ip(m->from.uri.host) || px_host_is_ip(m->to.uri.host)) return true;
  return false;
}

/* Forgets sources idle for a while so the tables stay small. */
static void on_gc(void *arg) {
  struct kz_proxy *p = arg;
  uint64_t now = px_now(p);
  uint64_t window = (uint64_t)p->cfg->pike_window_ms * PX_NS_MS;
  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  while (kz_map_next(&p->pike, &pos, &k, &kl, &v)) {
    struct px_pike *e = v;
    if (e->banned_until <= now && now - e->window_start >= window) {
      kz_map_del(&p->pike, k, kl, NULL);
      kz_free(e);
    }
  }
  pos = 0;
  uint64_t aw = (uint64_t)p->cfg->auth_fail_window_s * PX_NS_S;
  while (kz_map_next(&p->authfail, &pos, &k, &kl, &v)) {
    struct px_authfail *e = v;
    if (e->banned_until <= now && now - e->first_at >= aw) {
      kz_map_del(&p->authfail, k, kl, NULL);
      kz_free(e);
    }
  }
  kz_timer_start(&p->gc_timer, GC_INTERVAL_NS);
}

int px_antiflood_init(struct kz_proxy *p) {
  kz_map_init(&p->pike, kz_prng_next(&p->prng), false);
  kz_map_init(&p->authfail, kz_prng_next(&p->prng), true);
  kz_timer_init(&p->gc_timer, p->env, on_gc, p);
  return kz_timer_start(&p->gc_timer, GC_INTERVAL_NS);
}

void px_antiflood_fini(struct kz_proxy *p) {
  kz_timer_stop(&p->gc_timer);
  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  while (kz_map_next(&p->pike, &pos, &k, &kl, &v)) kz_free(v);
  kz_map_free(&p->pike);
  pos = 0;
  while (kz_map_next(&p->authfail, &pos, &k, &kl, &v)) kz_free(v);
  kz_map_free(&p->authfail);
}
