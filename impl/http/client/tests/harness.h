/* harness.h — one face over three worlds for the client contract tests: stream backend on the uv driver, stream backend in the simulator, curl backend on libuv. */
#ifndef KZ_HTTP_HARNESS_H
#define KZ_HTTP_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/buf.h"
#include "kz/http_client.h"
#include "testsrv.h"

enum th_kind {
  TH_STREAM_UV = 0,
  TH_STREAM_SIM = 1,
  TH_CURL_UV = 2,
  TH_KINDS
};

struct th_impl;

/* A world with a test server, a client of the chosen backend, and a way
 * to run until something happened (real milliseconds under uv, virtual
 * ones in the simulator). */
struct th {
  enum th_kind kind;
  struct kz_http_client *client;
  struct tsrv *srv;
  char base[112];  /* "http://<server ip>:<port>" */
  char host[96];   /* "<server ip>:<port>" */
  bool failed;     /* the simulator failed (allocation-failure tests) */
  bool expect_failure; /* tolerate that */
  struct th_impl *impl;
};

typedef bool th_cond_fn(void *arg);

const char *th_kind_name(enum th_kind k);
/* Opens the world; cfg configures the client (NULL: defaults). */
void th_open(struct th *t, enum th_kind kind, const struct kz_http_client_cfg *cfg);
/* Runs until cond(arg) or `ms` milliseconds pass; returns cond's value
 * (true when cond is NULL). */
bool th_run(struct th *t, th_cond_fn *cond, void *arg, uint64_t ms);
/* Current time of the world in ms (monotonic). */
uint64_t th_now_ms(struct th *t);
/* An address where nothing listens (for refused connections). */
void th_dead_url(struct th *t, char *out, size_t outlen);
/* Closes client, server and world; asserts nothing leaked. */
void th_close(struct th *t);

/* The outcome of one request, copied out of the callback. */
struct th_res {
  bool done;
  int calls;
  int rc;
  struct kz_buf body;
  char x_method[16];
  char x_conn[16];
  char x_seen_test[64];
  char content_type[64];
  uint64_t t_done_ms;
  struct th *t;
};

kz_http_client_done_fn th_res_cb;
/* Starts METHOD base+path with body; asserts the start succeeded. */
void th_start(struct th *t, struct th_res *r, const char *method, const char *path,
              const void *body, size_t len, uint64_t timeout_ms);
/* th_start then runs until done (bounded by 10 s); asserts done. */
void th_do(struct th *t, struct th_res *r, const char *method, const char *path, const void *body,
           size_t len, uint64_t timeout_ms);
bool th_res_done(void *arg);
void th_res_free(struct th_res *r);

#endif /* KZ_HTTP_HARNESS_H */
