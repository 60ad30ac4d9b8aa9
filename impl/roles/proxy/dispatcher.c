/* dispatcher.c — the media server set (Kamailio's dispatcher as Kazoo uses it): configured and `nodes`-advertised servers, OPTIONS probing, Call-ID hash selection, 407 stickiness. */
#include <stdio.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"
#include "proxy_int.h"

struct px_server *px_server_by_id(struct kz_proxy *p, int id) {
  for (size_t i = 0; i < p->nservers; i++)
    if (p->servers[i].used && p->servers[i].id == id) return &p->servers[i];
  return NULL;
}

/* Parses "sip:host:port;params", "host:port" or "host" (IP literals). */
static bool parse_server(const char *text, struct kz_addr *addr, enum kz_sip_transport *tp, char *uri,
                         size_t urilen) {
  struct kz_sip_uri u;
  char buf[KZ_PROXY_URI_MAX + 8];
  if (strncmp(text, "sip:", 4) == 0 || strncmp(text, "sips:", 5) == 0) snprintf(buf, sizeof buf, "%s", text);
  else snprintf(buf, sizeof buf, "sip:%s", text);
  if (kz_sip_uri_parse(kz_slice_cstr(buf), &u) != 0) return false;
  if (!px_uri_addr(&u, addr, tp)) return false;
  /* Refused rather than cut: a truncated URI would name another host. */
  size_t n = strlen(buf);
  if (n >= urilen) return false;
  memcpy(uri, buf, n + 1);
  return true;
}

static struct px_server *find_by_addr(struct kz_proxy *p, const struct kz_addr *a) {
  for (size_t i = 0; i < p->nservers; i++)
    if (p->servers[i].used && kz_addr_eq(&p->servers[i].addr, a)) return &p->servers[i];
  return NULL;
}

static struct px_server *add_server(struct kz_proxy *p, const struct kz_addr *a, enum kz_sip_transport tp,
                                    const char *uri, int group, bool from_config) {
  struct px_server *s = NULL;
  for (size_t i = 0; i < p->nservers; i++)
    if (!p->servers[i].used) {
      s = &p->servers[i];
      break;
    }
  if (!s) {
    if (p->nservers >= sizeof p->servers / sizeof p->servers[0]) return NULL;
    s = &p->servers[p->nservers++];
  }
  memset(s, 0, sizeof *s);
  s->used = true;
  s->id = p->next_server_id++;
  s->addr = *a;
  s->transport = tp;
  snprintf(s->uri, sizeof s->uri, "%s", uri);
  s->group = group;
  s->from_config = from_config;
  s->up = true; /* dispatcher entries start active */
  return s;
}

bool px_is_media_server(const struct kz_proxy *p, const struct kz_addr *a) {
  /* ds_is_from_list with the port ignored: FreeSWITCH may send from
   * another port than the one it listens on. */
  uint32_t ip = kz_addr_v4_host(a);
  for (size_t i = 0; i < p->nservers; i++) {
    const struct px_server *s = &p->servers[i];
    if (!s->used) continue;
    if (a->family == 4 ? kz_addr_v4_host(&s->addr) == ip && s->addr.family == 4
                       : memcmp(s->addr.ip, a->ip, 16) == 0)
      return true;
  }
  return false;
}

static void set_up(struct kz_proxy *p, struct px_server *s, bool up) {
  if (s->up == up) return;
  s->up = up;
  char a[KZ_ADDR_STRLEN];
  kz_addr_format(&s->addr, a, sizeof a);
  kz_log(p->env, up ? KZ_LOG_INFO : KZ_LOG_WARN, PX_LOG, "dispatcher:%s %s", up ? "dst-up" : "dst-down", a);
}

void px_dispatch_mark_failed(struct kz_proxy *p, int server_id) {
  struct px_server *s = px_server_by_id(p, server_id);
  if (!s) return;
  /* ds_mark_dst("ip"): inactive and probing until a probe answers. */
  s->failures = p->cfg->probe_threshold;
  set_up(p, s, false);
}

void px_on_probe_result(struct kz_proxy *p, struct px_probe *pr, uint16_t status) {
  struct px_server *s = px_server_by_id(p, pr->server_id);
  if (!s || pr->seq != s->probe_seq || !s->probe_outstanding) return;
  if (status && status < 200) return; /* wait for the final answer */
  s->probe_outstanding = false;
  /* Reply codes that prove the server alive (ds_ping_reply_codes). */
  bool alive = (status >= 200 && status < 300) || status == 400 || status == 403 || status == 404 ||
               status == 501;
  if (alive) {
    s->failures = 0;
    set_up(p, s, true);
    return;
  }
  s->failures++;
  if (s->failures >= p->cfg->probe_threshold) set_up(p, s, false);
}

static void sticky_gc(struct kz_proxy *p, uint64_t now) {
  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  while (kz_map_next(&p->sticky, &pos, &k, &kl, &v)) {
    struct px_sticky *st = v;
    if (st->expires_at <= now) {
      kz_map_del(&p->sticky, k, kl, NULL);
      kz_free(st);
    }
  }
}

static void on_probe_timer(void *arg) {
  struct kz_proxy *p = arg;
  uint64_t now = px_now(p);
  for (size_t i = 0; i < p->nservers; i++) {
    struct px_server *s = &p->servers[i];
    if (!s->used) continue;
    if (s->expires_at && now >= s->expires_at) {
      char a[KZ_ADDR_STRLEN];
      kz_addr_format(&s->addr, a, sizeof a);
      kz_log(p->env, KZ_LOG_WARN, PX_LOG, "media server %s: heartbeat expired", a);
      if (s->from_config) {
        s->expires_at = 0;
        set_up(p, s, false);
      } else {
        s->used = false;
        continue;
      }
    }
    if (s->probe_outstanding) {
      s->probe_outstanding = false;
      s->failures++;
      if (s->failures >= p->cfg->probe_threshold) set_up(p, s, false);
    }
    struct px_probe *pr = px_probe_new(p, PXU_PROBE);
    if (!pr) continue;
    pr->server_id = s->id;
    pr->seq = ++s->probe_seq;
    if (px_send_options(p, s->uri, &s->addr, s->transport, pr) == 0) {
      s->probe_outstanding = true;
      p->st.probes_sent++;
    } else {
      s->failures++;
      if (s->failures >= p->cfg->probe_threshold) set_up(p, s, false);
    }
  }
  sticky_gc(p, now);
  kz_timer_start(&p->probe_timer, (uint64_t)p->cfg->probe_interval_ms * PX_NS_MS);
  px_txl_rearm(p);
}

size_t px_dispatch_candidates(struct kz_proxy *p, struct kz_slice call_id, int *out, size_t max) {
  uint64_t h = kz_hash64(call_id.p ? call_id.p : "", call_id.len, 0);
  size_t n = 0;
  int sticky_id = -1;
  struct px_sticky *st = kz_map_get(&p->sticky, call_id.p ? call_id.p : "", call_id.len, NULL);
  if (st && st->expires_at > px_now(p)) {
    struct px_server *s = px_server_by_id(p, st->server_id);
    if (s && s->up && n < max) {
      out[n++] = s->id;
      sticky_id = s->id;
    }
  }
  for (int group = 1; group <= 2; group++) {
    int ids[KZ_PROXY_MAX_SERVERS * 2];
    size_t k = 0;
    for (size_t i = 0; i < p->nservers; i++) {
      const struct px_server *s = &p->servers[i];
      if (s->used && s->up && s->group == group && s->id != sticky_id) ids[k++] = s->id;
    }
    /* Algorithm 0: hash over the Call-ID picks the first, the rest
     * follow in order (ds_select_routes' list). */
    for (size_t j = 0; j < k && n < max; j++) out[n++] = ids[(h + j) % k];
  }
  return n;
}

void px_dispatch_remember(struct kz_proxy *p, struct kz_slice call_id, int server_id) {
  if (!call_id.len) return;
  struct px_sticky *st = kz_map_get(&p->sticky, call_id.p, call_id.len, NULL);
  if (!st) {
    st = kz_calloc(1, sizeof *st);
    if (!st) return;
    if (kz_map_put(&p->sticky, call_id.p, call_id.len, st, NULL) != 0) {
      kz_free(st);
      return;
    }
  }
  st->server_id = server_id;
  st->expires_at = px_now(p) + (uint64_t)p->cfg->sticky_ttl_s * PX_NS_S;
}

/* A `nodes` heartbeat: every advertised FreeSWITCH interface joins the
 * set (group 1 for our zone, 2 for others) until Expires + fudge. */
static void advertise_iface(struct kz_proxy *p, const json_t *iface, int group, uint64_t expires_at,
                            const char *node) {
  char text[KZ_PROXY_URI_MAX];
  const char *url = json_string_value(json_object_get(iface, "URL"));
  const char *ip = json_string_value(json_object_get(iface, "SIP-IP"));
  if (url) {
    snprintf(text, sizeof text, "%s", url);
  } else if (ip) {
    const json_t *port = json_object_get(iface, "SIP-Port");
    long long pt = json_is_integer(port) ? json_integer_value(port) : 5060;
    if (json_is_string(port)) {
      uint64_t v;
      if (kz_slice_to_u64(kz_slice_cstr(json_string_value(port)), 65535, &v) == 0) pt = (long long)v;
    }
    snprintf(text, sizeof text, "sip:%s:%lld", ip, pt);
  } else {
    return;
  }
  struct kz_addr a;
  enum kz_sip_transport tp;
  char uri[KZ_PROXY_URI_MAX];
  if (!parse_server(text, &a, &tp, uri, sizeof uri)) return;
  struct px_server *s = find_by_addr(p, &a);
  if (!s) {
    s = add_server(p, &a, tp, uri, group, false);
    if (!s) return;
    char as[KZ_ADDR_STRLEN];
    kz_addr_format(&a, as, sizeof as);
    kz_log(p->env, KZ_LOG_INFO, PX_LOG, "media server %s added from %s (group %d)", as, node, group);
  }
  s->expires_at = expires_at;
  if (!s->from_config) s->group = group;
  snprintf(s->node, sizeof s->node, "%s", node);
}

void px_on_advertise(struct kz_proxy *p, const json_t *msg) {
  const json_t *ms = json_object_get(msg, "Media-Servers");
  if (!json_is_object(ms)) return;
  const json_t *ex = json_object_get(msg, "Expires");
  uint64_t expires_ms = 0;
  if (json_is_integer(ex) && json_integer_value(ex) > 0) expires_ms = (uint64_t)json_integer_value(ex);
  else if (json_is_string(ex)) kz_slice_to_u64(kz_slice_cstr(json_string_value(ex)), UINT32_MAX, &expires_ms);
  uint64_t expires_at = px_now(p) + (expires_ms / 1000 + p->cfg->heartbeat_fudge_s) * PX_NS_S;
  const char *zone = json_string_value(json_object_get(msg, "Zone"));
  int group = (!p->cfg->zone[0] || !zone || !strcmp(zone, p->cfg->zone)) ? 1 : 2;
  const char *node = json_string_value(json_object_get(msg, "Node"));
  const char *name;
  const json_t *srv;
  json_object_foreach((json_t *)ms, name, srv) {
    const json_t *ifs = json_object_get(srv, "Interfaces");
    const char *pname;
    const json_t *iface;
    if (!json_is_object(ifs)) continue;
    json_object_foreach((json_t *)ifs, pname, iface) {
      if (json_is_object(iface)) advertise_iface(p, iface, group, expires_at, node ? node : name);
    }
  }
}

int px_dispatcher_init(struct kz_proxy *p) {
  kz_map_init(&p->sticky, kz_prng_next(&p->prng), false);
  for (size_t i = 0; i < p->cfg->n_media_servers; i++) {
    struct kz_addr a;
    enum kz_sip_transport tp;
    char uri[KZ_PROXY_URI_MAX];
    if (!parse_server(p->cfg->media_servers[i], &a, &tp, uri, sizeof uri)) return KZ_EINVAL;
    if (!find_by_addr(p, &a) && !add_server(p, &a, tp, uri, 1, true)) return KZ_ENOMEM;
  }
  kz_timer_init(&p->probe_timer, p->env, on_probe_timer, p);
  if (p->cfg->probe_interval_ms)
    kz_timer_start(&p->probe_timer, (uint64_t)p->cfg->probe_interval_ms * PX_NS_MS);
  return 0;
}

void px_dispatcher_fini(struct kz_proxy *p) {
  kz_timer_stop(&p->probe_timer);
  size_t pos = 0;
  const void *k;
  size_t kl;
  void *v;
  while (kz_map_next(&p->sticky, &pos, &k, &kl, &v)) kz_free(v);
  kz_map_free(&p->sticky);
}

size_t kz_proxy_server_count(const struct kz_proxy *p, size_t *up) {
  size_t n = 0, u = 0;
  for (size_t i = 0; p && i < p->nservers; i++) {
    if (!p->servers[i].used) continue;
    n++;
    if (p->servers[i].up) u++;
  }
  if (up) *up = u;
  return n;
}

bool kz_proxy_server_is_up(const struct kz_proxy *p, const char *addr) {
  struct kz_addr a;
  if (!p || kz_addr_parse(&a, addr) != 0) return false;
  for (size_t i = 0; i < p->nservers; i++)
    if (p->servers[i].used && kz_addr_eq(&p->servers[i].addr, &a)) return p->servers[i].up;
  return false;
}
