/* env.c — kz_env shared code: time, randomness, timers, handle bookkeeping and delivery checks. */
#include "kz/env.h"

#include <assert.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"

/* ------------------------------------------------------------------ */
/* Env                                                                 */

int kz_env_init(struct kz_env *env, const struct kz_env_ops *ops, void *drv, const char *name,
                uint64_t seed) {
  if (!env || !ops || !ops->now || !name) return KZ_EINVAL;
  size_t nlen = strlen(name);
  if (nlen >= sizeof(env->name)) return KZ_EINVAL;
  memset(env, 0, sizeof(*env));
  env->ops = ops;
  env->drv = drv;
  memcpy(env->name, name, nlen + 1);
  env->seed = seed;
  kz_prng_derive(&env->prng, seed, "env");
  kz_heap_init(&env->timers);
  env->armed_deadline = UINT64_MAX;
  env->log_level = KZ_LOG_INFO;
  env->next_stream_id = 1;
  return 0;
}

void kz_env_deinit(struct kz_env *env) { kz_heap_free(&env->timers); }

uint64_t kz_env_now(struct kz_env *env) { return env->ops->now(env->drv); }

int64_t kz_env_wall(struct kz_env *env) { return env->ops->wall ? env->ops->wall(env->drv) : 0; }

uint64_t kz_env_random(struct kz_env *env) { return kz_prng_next(&env->prng); }

void kz_env_prng(struct kz_env *env, const char *component, struct kz_prng *child) {
  kz_prng_derive(child, env->seed, component);
}

/* ------------------------------------------------------------------ */
/* Timers                                                              */

uint64_t kz_env_next_deadline(const struct kz_env *env) {
  const struct kz_heap_node *n = kz_heap_peek(&env->timers);
  return n ? n->key : UINT64_MAX;
}

size_t kz_env_timer_count(const struct kz_env *env) { return kz_heap_len(&env->timers); }

/* Tells the driver when the earliest deadline moved.  The new value is
 * stored before the call so a driver that re-enters the env sees it. */
static void notify_deadline(struct kz_env *env) {
  uint64_t d = kz_env_next_deadline(env);
  if (d == env->armed_deadline) return;
  env->armed_deadline = d;
  if (env->ops->deadline_changed) env->ops->deadline_changed(env->drv, d);
}

void kz_timer_init(struct kz_timer *t, struct kz_env *env, kz_timer_fn *cb, void *arg) {
  kz_heap_node_init(&t->node);
  t->env = env;
  t->cb = cb;
  t->arg = arg;
}

int kz_timer_start_at(struct kz_timer *t, uint64_t deadline_ns) {
  struct kz_env *env = t->env;
  kz_heap_remove(&env->timers, &t->node);
  int rc = kz_heap_push(&env->timers, &t->node, deadline_ns);
  notify_deadline(env);
  return rc;
}

int kz_timer_start(struct kz_timer *t, uint64_t delay_ns) {
  uint64_t now = kz_env_now(t->env);
  uint64_t deadline = delay_ns > UINT64_MAX - now ? UINT64_MAX : now + delay_ns;
  return kz_timer_start_at(t, deadline);
}

void kz_timer_stop(struct kz_timer *t) {
  if (!kz_heap_node_queued(&t->node)) return;
  kz_heap_remove(&t->env->timers, &t->node);
  notify_deadline(t->env);
}

bool kz_timer_active(const struct kz_timer *t) { return kz_heap_node_queued(&t->node); }

uint64_t kz_timer_deadline(const struct kz_timer *t) {
  return kz_heap_node_queued(&t->node) ? t->node.key : UINT64_MAX;
}

/* The first timer in (deadline, start order) that is due at `now` and was
 * started before run_timers began (seq < snapshot), searching the heap
 * below index i.  A node that qualifies beats its whole subtree, and a
 * node past `now` rules its subtree out, so the search only walks down
 * through timers started during this run: usually none. */
static struct kz_heap_node *first_due(const struct kz_heap *h, size_t i, uint64_t now,
                                      uint64_t snapshot) {
  if (i >= h->len) return NULL;
  /* The heap's own copy of the ordering: the node itself stays cold
   * unless it is the one returned. */
  if (h->keys[i].key > now) return NULL;
  struct kz_heap_node *n = h->items[i];
  if (h->keys[i].seq < snapshot) return n;
  struct kz_heap_node *l = first_due(h, 2 * i + 1, now, snapshot);
  struct kz_heap_node *r = first_due(h, 2 * i + 2, now, snapshot);
  if (!l) return r;
  if (!r) return l;
  return (r->key < l->key || (r->key == l->key && r->seq < l->seq)) ? r : l;
}

size_t kz_env_run_timers(struct kz_env *env) {
  uint64_t now = kz_env_now(env);
  uint64_t snapshot = env->timers.next_seq;
  size_t fired = 0;
  for (;;) {
    struct kz_heap_node *n = first_due(&env->timers, 0, now, snapshot);
    if (!n) break;
    kz_heap_remove(&env->timers, n);
    struct kz_timer *t = KZ_CONTAINER_OF(n, struct kz_timer, node);
    fired++;
    /* The callback may free, restart or stop any timer, this one
     * included: nothing of t is touched after it. */
    t->cb(t->arg);
  }
  notify_deadline(env);
  return fired;
}

/* ------------------------------------------------------------------ */
/* UDP                                                                 */

int kz_udp_bind(struct kz_env *env, const struct kz_addr *local, kz_udp_recv_fn *on_recv,
                void *arg, struct kz_udp **out) {
  if (!env || !local || !out) return KZ_EINVAL;
  if (local->family != 4 && local->family != 6) return KZ_EINVAL;
  if (!env->ops->udp_bind) return KZ_ENOTSUP;
  struct kz_udp *u = kz_obj_alloc(sizeof(*u), NULL);
  if (!u) return KZ_ENOMEM;
  u->env = env;
  u->on_recv = on_recv;
  u->arg = arg;
  u->local = *local;
  int rc = env->ops->udp_bind(env->drv, u, local);
  if (rc) {
    kz_deref(u);
    return rc;
  }
  env->n_udp++;
  *out = u;
  return 0;
}

int kz_udp_send(struct kz_udp *u, const struct kz_addr *to, const void *data, size_t len) {
  if (!u || u->closed) return KZ_ECLOSED;
  if (!to || (to->family != 4 && to->family != 6) || (!data && len)) return KZ_EINVAL;
  return u->env->ops->udp_send(u->env->drv, u, to, data, len);
}

void kz_udp_close(struct kz_udp *u) {
  if (!u) return;
  assert(!u->closed && "kz_udp_close called twice");
  u->closed = true;
  struct kz_env *env = u->env;
  if (env->ops->udp_close) env->ops->udp_close(env->drv, u);
  env->n_udp--;
  kz_deref(u);
}

void kz_udp_deliver(struct kz_udp *u, const struct kz_addr *from, const uint8_t *data,
                    size_t len) {
  if (!u || u->closed || !u->on_recv) return;
  kz_ref(u);
  u->on_recv(u->arg, u, from, data, len);
  kz_deref(u);
}

/* ------------------------------------------------------------------ */
/* Streams                                                             */

int kz_stream_listen(struct kz_env *env, const struct kz_addr *local, kz_accept_fn *on_accept,
                     void *arg, struct kz_listener **out) {
  if (!env || !local || !out || !on_accept) return KZ_EINVAL;
  if (local->family != 4 && local->family != 6) return KZ_EINVAL;
  if (!env->ops->listen) return KZ_ENOTSUP;
  struct kz_listener *l = kz_obj_alloc(sizeof(*l), NULL);
  if (!l) return KZ_ENOMEM;
  l->env = env;
  l->on_accept = on_accept;
  l->arg = arg;
  l->local = *local;
  int rc = env->ops->listen(env->drv, l, local);
  if (rc) {
    kz_deref(l);
    return rc;
  }
  env->n_listeners++;
  *out = l;
  return 0;
}

void kz_listener_close(struct kz_listener *l) {
  if (!l) return;
  assert(!l->closed && "kz_listener_close called twice");
  l->closed = true;
  struct kz_env *env = l->env;
  if (env->ops->listen_close) env->ops->listen_close(env->drv, l);
  env->n_listeners--;
  kz_deref(l);
}

static struct kz_stream *stream_new(struct kz_env *env) {
  struct kz_stream *s = kz_obj_alloc(sizeof(*s), NULL);
  if (!s) return NULL;
  s->env = env;
  return s;
}

int kz_listener_deliver_accept(struct kz_listener *l, void *impl, const struct kz_addr *local,
                               const struct kz_addr *peer, struct kz_stream **out) {
  /* A listener the user closed accepts nothing: the driver drops the
   * connection as it would on KZ_ENOMEM. */
  if (!l || l->closed) return KZ_ECLOSED;
  struct kz_env *env = l->env;
  struct kz_stream *s = stream_new(env);
  if (!s) return KZ_ENOMEM;
  s->impl = impl;
  if (local) s->local = *local;
  if (peer) s->peer = *peer;
  s->state = KZ_STREAM_OPEN;
  s->id = env->next_stream_id++;
  kz_ref(s); /* the driver's reference */
  env->n_streams++;
  if (out) *out = s;
  kz_ref(l);
  l->on_accept(l->arg, l, s);
  kz_deref(l);
  return 0;
}

int kz_stream_connect(struct kz_env *env, const struct kz_addr *remote,
                      const struct kz_stream_cbs *cbs, void *arg, struct kz_stream **out) {
  if (!env || !remote || !out) return KZ_EINVAL;
  if ((remote->family != 4 && remote->family != 6) || remote->port == 0) return KZ_EINVAL;
  if (!env->ops->connect) return KZ_ENOTSUP;
  struct kz_stream *s = stream_new(env);
  if (!s) return KZ_ENOMEM;
  s->cbs = cbs;
  s->arg = arg;
  s->peer = *remote;
  s->state = KZ_STREAM_CONNECTING;
  s->id = env->next_stream_id++;
  int rc = env->ops->connect(env->drv, s, remote);
  if (rc) {
    kz_deref(s);
    return rc;
  }
  env->n_streams++;
  *out = s;
  return 0;
}

void kz_stream_set_cbs(struct kz_stream *s, const struct kz_stream_cbs *cbs, void *arg) {
  s->cbs = cbs;
  s->arg = arg;
}

int kz_stream_write(struct kz_stream *s, const void *data, size_t len) {
  if (!s || s->state == KZ_STREAM_ENDED || s->state == KZ_STREAM_CLOSED) return KZ_ECLOSED;
  if (len == 0) return 0;
  if (!data) return KZ_EINVAL;
  return s->env->ops->stream_write(s->env->drv, s, data, len);
}

void kz_stream_close(struct kz_stream *s) {
  if (!s) return;
  assert(s->state != KZ_STREAM_CLOSED && "kz_stream_close called twice");
  s->state = KZ_STREAM_CLOSED;
  struct kz_env *env = s->env;
  if (env->ops->stream_close) env->ops->stream_close(env->drv, s);
  env->n_streams--;
  kz_deref(s);
}

void kz_stream_deliver_connect(struct kz_stream *s) {
  if (!s || s->state != KZ_STREAM_CONNECTING) return;
  s->state = KZ_STREAM_OPEN;
  if (s->cbs && s->cbs->on_connect) {
    kz_ref(s);
    s->cbs->on_connect(s->arg, s);
    kz_deref(s);
  }
}

void kz_stream_deliver_data(struct kz_stream *s, const uint8_t *data, size_t len) {
  if (!s || s->state != KZ_STREAM_OPEN || len == 0) return;
  if (s->cbs && s->cbs->on_data) {
    kz_ref(s);
    s->cbs->on_data(s->arg, s, data, len);
    kz_deref(s);
  }
}

void kz_stream_deliver_close(struct kz_stream *s, int status) {
  if (!s || s->state == KZ_STREAM_ENDED || s->state == KZ_STREAM_CLOSED) return;
  s->state = KZ_STREAM_ENDED;
  if (s->cbs && s->cbs->on_close) {
    kz_ref(s);
    s->cbs->on_close(s->arg, s, status);
    kz_deref(s);
  }
}

/* ------------------------------------------------------------------ */
/* Durable storage                                                     */

/* Longest path accepted, so drivers can use fixed buffers for the
 * data-directory prefix plus the path. */
#define KZ_FS_PATH_MAX 1024

static bool path_char_ok(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '_' || c == '-';
}

bool kz_fs_path_valid(const char *path) {
  if (!path || !*path) return false;
  size_t len = strlen(path);
  if (len > KZ_FS_PATH_MAX) return false;
  const char *p = path;
  for (;;) {
    const char *start = p;
    while (*p && *p != '/') {
      if (!path_char_ok(*p)) return false;
      p++;
    }
    size_t n = (size_t)(p - start);
    /* Empty components cover "/abs", "a//b" and "a/". */
    if (n == 0) return false;
    if (n == 1 && start[0] == '.') return false;
    if (n == 2 && start[0] == '.' && start[1] == '.') return false;
    if (!*p) return true;
    p++;
  }
}

static bool file_flags_valid(int flags) {
  const int all = KZ_FILE_READ | KZ_FILE_WRITE | KZ_FILE_CREATE | KZ_FILE_TRUNC | KZ_FILE_EXCL;
  if (flags & ~all) return false;
  if (!(flags & (KZ_FILE_READ | KZ_FILE_WRITE))) return false;
  /* Creating or truncating a file one cannot write makes no sense, and
   * EXCL only means something with CREATE (as with open(2)). */
  if ((flags & (KZ_FILE_CREATE | KZ_FILE_TRUNC)) && !(flags & KZ_FILE_WRITE)) return false;
  if ((flags & KZ_FILE_EXCL) && !(flags & KZ_FILE_CREATE)) return false;
  return true;
}

int kz_file_open(struct kz_env *env, const char *path, int flags, struct kz_file **out) {
  if (!env || !out || !kz_fs_path_valid(path) || !file_flags_valid(flags)) return KZ_EINVAL;
  if (!env->ops->file_open) return KZ_ENOTSUP;
  struct kz_file *f = kz_obj_alloc(sizeof(*f), NULL);
  if (!f) return KZ_ENOMEM;
  f->env = env;
  f->flags = flags;
  int rc = env->ops->file_open(env->drv, f, path, flags);
  if (rc) {
    kz_deref(f);
    return rc;
  }
  env->n_files++;
  *out = f;
  return 0;
}

int kz_file_read(struct kz_file *f, uint64_t off, void *buf, size_t len, size_t *nread) {
  if (!f || !nread || (!buf && len) || !(f->flags & KZ_FILE_READ)) return KZ_EINVAL;
  *nread = 0;
  if (len == 0) return 0;
  return f->env->ops->file_read(f->env->drv, f, off, buf, len, nread);
}

int kz_file_write(struct kz_file *f, uint64_t off, const void *buf, size_t len) {
  if (!f || (!buf && len) || !(f->flags & KZ_FILE_WRITE)) return KZ_EINVAL;
  if (len > UINT64_MAX - off) return KZ_EINVAL;
  if (len == 0) return 0;
  return f->env->ops->file_write(f->env->drv, f, off, buf, len);
}

int kz_file_size(struct kz_file *f, uint64_t *size) {
  if (!f || !size) return KZ_EINVAL;
  return f->env->ops->file_size(f->env->drv, f, size);
}

int kz_file_truncate(struct kz_file *f, uint64_t size) {
  if (!f || !(f->flags & KZ_FILE_WRITE)) return KZ_EINVAL;
  return f->env->ops->file_truncate(f->env->drv, f, size);
}

int kz_file_sync(struct kz_file *f) {
  if (!f) return KZ_EINVAL;
  return f->env->ops->file_sync(f->env->drv, f);
}

void kz_file_close(struct kz_file *f) {
  if (!f) return;
  /* A second close would release the driver's file and the handle twice
   * (a use after free), so it is caught here like the other handles'. */
  assert(!f->closed && "kz_file_close called twice");
  f->closed = true;
  struct kz_env *env = f->env;
  if (env->ops->file_close) env->ops->file_close(env->drv, f);
  env->n_files--;
  kz_deref(f);
}

int kz_fs_rename(struct kz_env *env, const char *from, const char *to) {
  if (!env || !kz_fs_path_valid(from) || !kz_fs_path_valid(to)) return KZ_EINVAL;
  if (!env->ops->fs_rename) return KZ_ENOTSUP;
  return env->ops->fs_rename(env->drv, from, to);
}

int kz_fs_remove(struct kz_env *env, const char *path) {
  if (!env || !kz_fs_path_valid(path)) return KZ_EINVAL;
  if (!env->ops->fs_remove) return KZ_ENOTSUP;
  return env->ops->fs_remove(env->drv, path);
}

int kz_fs_exists(struct kz_env *env, const char *path, bool *exists) {
  if (!env || !exists || !kz_fs_path_valid(path)) return KZ_EINVAL;
  if (!env->ops->fs_exists) return KZ_ENOTSUP;
  *exists = false;
  return env->ops->fs_exists(env->drv, path, exists);
}
