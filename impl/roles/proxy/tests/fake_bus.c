/* fake_bus.c — a fake bus backend for the proxy's tests: routes publishes through remembered bindings, answers authn_req like Kazoo's registrar app. */
#include "fake_bus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kz/bus.h"
#include "kz/error.h"
#include "kz/mem.h"

#define FB_DELAY_NS 1000000ull

struct fb_bind {
  char queue[128], exchange[64], key[256];
};
struct fb_cons {
  uint64_t id;
  char queue[128];
};
struct fb_delivery {
  uint64_t consumer;
  char queue[128], exchange[64], rk[256];
  char *body;
  size_t len;
  struct fb_delivery *next;
};

struct fb_backend {
  struct fb_broker *br;
  struct kz_env *env;
  struct kz_bus *bus;
  struct fb_bind binds[32];
  size_t nbinds;
  struct fb_cons cons[16];
  size_t ncons;
  struct fb_delivery *head, *tail;
  struct kz_timer timer;
  bool up;
  uint64_t tag;
};

void fb_add_user(struct fb_broker *br, const char *user, const char *realm, const char *password) {
  struct fb_user *u = &br->users[br->nusers++];
  snprintf(u->user, sizeof u->user, "%s", user);
  snprintf(u->realm, sizeof u->realm, "%s", realm);
  snprintf(u->password, sizeof u->password, "%s", password);
}

static void fb_on_timer(void *arg) {
  struct fb_backend *be = arg;
  if (!be->up) {
    be->up = true;
    kz_bus_backend_up(be->bus, 0);
  }
  while (be->head) {
    struct fb_delivery *d = be->head;
    be->head = d->next;
    if (!be->head) be->tail = NULL;
    struct kz_bus_delivery kd = {.queue = d->queue, .exchange = d->exchange, .routing_key = d->rk,
                                 .body = (const uint8_t *)d->body, .len = d->len, .tag = ++be->tag};
    kz_bus_backend_deliver(be->bus, d->consumer, &kd);
    kz_free(d->body);
    kz_free(d);
  }
}

static void enqueue(struct fb_backend *be, uint64_t consumer, const char *queue, const char *exchange,
                    const char *rk, const void *body, size_t len) {
  struct fb_delivery *d = kz_calloc(1, sizeof *d);
  d->consumer = consumer;
  snprintf(d->queue, sizeof d->queue, "%s", queue);
  snprintf(d->exchange, sizeof d->exchange, "%s", exchange);
  snprintf(d->rk, sizeof d->rk, "%s", rk);
  d->body = kz_malloc(len + 1);
  memcpy(d->body, body, len);
  d->len = len;
  if (be->tail) be->tail->next = d;
  else be->head = d;
  be->tail = d;
  if (!kz_timer_active(&be->timer)) kz_timer_start(&be->timer, FB_DELAY_NS);
}

static const struct fb_cons *consumer_of(struct fb_backend *be, const char *queue) {
  for (size_t i = 0; i < be->ncons; i++)
    if (!strcmp(be->cons[i].queue, queue)) return &be->cons[i];
  return NULL;
}

/* Routes like RabbitMQ: targeted is direct on queue names, nodes is a
 * fanout, the rest are topics. */
static void route(struct fb_backend *be, const char *exchange, const char *rk, const void *body,
                  size_t len) {
  if (!strcmp(exchange, "targeted")) {
    const struct fb_cons *c = consumer_of(be, rk);
    if (c) {
      enqueue(be, c->id, c->queue, exchange, rk, body, len);
    } else {
      be->br->targeted++;
      snprintf(be->br->last_targeted, sizeof be->br->last_targeted, "%.*s", (int)len, (const char *)body);
    }
    return;
  }
  for (size_t i = 0; i < be->nbinds; i++) {
    struct fb_bind *b = &be->binds[i];
    if (strcmp(b->exchange, exchange)) continue;
    if (strcmp(exchange, "nodes") && !kz_bus_topic_match_cstr(b->key, rk)) continue;
    const struct fb_cons *c = consumer_of(be, b->queue);
    if (c) enqueue(be, c->id, c->queue, exchange, rk, body, len);
  }
}

static void authn_responder(struct fb_backend *be, const void *body, size_t len) {
  struct fb_broker *br = be->br;
  br->authn_reqs++;
  if (br->authn_silent) return;
  json_t *req = json_loadb(body, len, 0, NULL);
  if (!req) return;
  const char *user = json_string_value(json_object_get(req, "Auth-User"));
  const char *realm = json_string_value(json_object_get(req, "Auth-Realm"));
  const char *sid = json_string_value(json_object_get(req, "Server-ID"));
  const char *mid = json_string_value(json_object_get(req, "Msg-ID"));
  const struct fb_user *u = NULL;
  for (size_t i = 0; user && realm && i < br->nusers; i++)
    if (!strcmp(br->users[i].user, user) && !strcmp(br->users[i].realm, realm)) u = &br->users[i];
  json_t *rep;
  char auth_id[80];
  if (u) snprintf(auth_id, sizeof auth_id, "dev-%s", u->user);
  if (u)
    rep = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:{s:s,s:s,s:s,s:s}}", "Event-Category", "directory",
                    "Event-Name", "authn_resp", "App-Name", "registrar", "App-Version", "4.3.0",
                    "Msg-ID", mid ? mid : "", "Auth-Method", "password", "Auth-Password", u->password,
                    "Custom-Channel-Vars", "Account-ID", "acct0001", "Authorizing-ID", auth_id,
                    "Username", u->user, "Authorizing-Type", "device");
  else
    rep = json_pack("{s:s,s:s,s:s,s:s,s:s}", "Event-Category", "directory", "Event-Name", "authn_err",
                    "App-Name", "registrar", "App-Version", "4.3.0", "Msg-ID", mid ? mid : "");
  char *text = json_dumps(rep, JSON_COMPACT);
  if (text && sid) route(be, "targeted", sid, text, strlen(text));
  free(text);
  json_decref(rep);
  json_decref(req);
}

static void op_attach(void *p, struct kz_bus *bus) {
  struct fb_backend *be = p;
  be->bus = bus;
  kz_timer_start(&be->timer, FB_DELAY_NS);
}
static int op_declare_exchange(void *p, const char *name, enum kz_bus_exchange_type type) { return 0; }
static int op_declare_queue(void *p, const char *name, const struct kz_bus_queue_opts *o) { return 0; }
static int op_delete_queue(void *p, const char *name) { return 0; }
static int op_bind(void *p, const char *queue, const char *exchange, const char *key) {
  struct fb_backend *be = p;
  for (size_t i = 0; i < be->nbinds; i++)
    if (!strcmp(be->binds[i].queue, queue) && !strcmp(be->binds[i].exchange, exchange) &&
        !strcmp(be->binds[i].key, key))
      return 0;
  if (be->nbinds >= 32) return KZ_ENOMEM;
  struct fb_bind *b = &be->binds[be->nbinds++];
  snprintf(b->queue, sizeof b->queue, "%s", queue);
  snprintf(b->exchange, sizeof b->exchange, "%s", exchange);
  snprintf(b->key, sizeof b->key, "%s", key);
  return 0;
}
static int op_unbind(void *p, const char *queue, const char *exchange, const char *key) { return 0; }
static int op_consume(void *p, uint64_t id, const char *queue, bool no_ack) {
  struct fb_backend *be = p;
  if (be->ncons >= 16) return KZ_ENOMEM;
  be->cons[be->ncons].id = id;
  snprintf(be->cons[be->ncons].queue, sizeof be->cons[0].queue, "%s", queue);
  be->ncons++;
  return 0;
}
static int op_cancel(void *p, uint64_t id) { return 0; }
static int op_publish(void *p, uint64_t publish_id, const char *exchange, const char *rk, const void *body,
                      size_t len, const struct kz_bus_publish_opts *o) {
  struct fb_backend *be = p;
  if (!strcmp(exchange, "callmgr") && !strncmp(rk, "authn.req.", 10)) {
    authn_responder(be, body, len);
    return 0;
  }
  if (!strcmp(exchange, "registrar") && !strncmp(rk, "registration.success.", 21)) {
    be->br->reg_success++;
    snprintf(be->br->last_reg_success, sizeof be->br->last_reg_success, "%.*s", (int)len, (const char *)body);
  }
  route(be, exchange, rk, body, len);
  if (o && o->confirm) kz_bus_backend_confirm(be->bus, publish_id, 0);
  return 0;
}
static int op_ack(void *p, uint64_t tag) { return 0; }
static void op_destroy(void *p) {
  struct fb_backend *be = p;
  kz_timer_stop(&be->timer);
  while (be->head) {
    struct fb_delivery *d = be->head;
    be->head = d->next;
    kz_free(d->body);
    kz_free(d);
  }
  if (be->br->be == be) be->br->be = NULL;
  kz_free(be);
}

static const struct kz_bus_backend_ops fb_ops = {
    .attach = op_attach, .declare_exchange = op_declare_exchange, .declare_queue = op_declare_queue,
    .delete_queue = op_delete_queue, .bind = op_bind, .unbind = op_unbind, .consume = op_consume,
    .cancel = op_cancel, .publish = op_publish, .ack = op_ack, .destroy = op_destroy};

int fb_factory(void *arg, struct kz_env *env, struct kz_bus_backend *out) {
  struct fb_broker *br = arg;
  struct fb_backend *be = kz_calloc(1, sizeof *be);
  if (!be) return KZ_ENOMEM;
  be->br = br;
  be->env = env;
  kz_timer_init(&be->timer, env, fb_on_timer, be);
  br->be = be;
  out->ops = &fb_ops;
  out->be = be;
  return 0;
}

void fb_publish(struct fb_broker *br, const char *exchange, const char *rk, const char *json) {
  if (br->be) route(br->be, exchange, rk, json, strlen(json));
}
