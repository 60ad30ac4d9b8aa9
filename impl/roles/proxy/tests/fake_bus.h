/* fake_bus.h — a fake bus backend for the proxy's tests: a one-client broker with a scripted authn responder, topic routing and a record of what was published. */
#ifndef KZ_PROXY_FAKE_BUS_H
#define KZ_PROXY_FAKE_BUS_H

#include <stdbool.h>
#include <stddef.h>

#include "kz/bus_client.h"

#define FB_MAX_USERS 8

struct fb_user {
  char user[64];
  char realm[64];
  char password[64];
};

/* Owned by the test (plain calloc); outlives the proxy's backend. */
struct fb_broker {
  struct fb_user users[FB_MAX_USERS];
  size_t nusers;
  bool authn_silent;          /* never answer authn_req (timeout) */
  /* What the proxy published. */
  int authn_reqs;
  int reg_success;
  char last_reg_success[4096];
  int targeted;               /* replies to queues nobody consumes (the test) */
  char last_targeted[8192];
  struct fb_backend *be;      /* the live backend, NULL when none */
};

void fb_add_user(struct fb_broker *br, const char *user, const char *realm, const char *password);
/* kz_proxy_bus_factory_fn: arg is the struct fb_broker. */
int fb_factory(void *arg, struct kz_env *env, struct kz_bus_backend *out);
/* Publishes `json` as if another node did (routed through the proxy's
 * bindings, delivered 1 ms later). */
void fb_publish(struct fb_broker *br, const char *exchange, const char *rk, const char *json);

#endif /* KZ_PROXY_FAKE_BUS_H */
