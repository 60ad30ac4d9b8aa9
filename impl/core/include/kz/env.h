/* kz/env.h — kz_env, the only door between role/protocol code and the world. */
#ifndef KZ_ENV_H
#define KZ_ENV_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/heap.h"
#include "kz/prng.h"

/* Role and protocol code never calls the OS.  It gets time, randomness,
 * timers, datagrams, streams and durable storage from a kz_env.  Two
 * drivers implement the kz_env_ops table: impl/drivers/uv (real) and
 * sim/ (simulated).  Everything in this header except the ops table is
 * shared code: timers, handle bookkeeping and delivery checks are done
 * once here, so the drivers stay thin translations. */

struct kz_env;
struct kz_udp;
struct kz_stream;
struct kz_listener;
struct kz_file;

/* ------------------------------------------------------------------ */
/* Addresses                                                           */

#define KZ_ADDR_STRLEN 64 /* "[ffff:...:ffff]:65535" fits */

struct kz_addr {
  uint8_t family; /* 4 or 6; 0 = unset */
  uint16_t port;
  uint8_t ip[16]; /* network byte order; IPv4 uses ip[0..3] */
};

/* Builds an IPv4 address from a host-order 32-bit value and a port. */
struct kz_addr kz_addr_v4(uint32_t ip_host_order, uint16_t port);
/* Parses "a.b.c.d:port", "a.b.c.d" (port 0), "[v6]:port" or "[v6]".
 * Returns 0 or KZ_EINVAL. */
int kz_addr_parse(struct kz_addr *out, const char *s);
/* One parser of IPv4 literals for every module: p[0..n) is exactly a
 * dotted quad of 1-3 digit decimal parts <= 255.  Leading zeros
 * ("010") are refused unless flags has KZ_IP4_LEADING_ZEROS: SIP's and
 * SDP's grammars allow them (read as decimal, as Kamailio does);
 * kz_addr_parse, for configuration, does not (inet_aton would read
 * them as octal).  out (may be NULL) gets the four bytes. */
enum { KZ_IP4_LEADING_ZEROS = 1 };
bool kz_ip4_parse(const char *p, size_t n, unsigned flags, uint8_t out[4]);
/* An address from an IP literal as protocols carry it: a dotted quad
 * (under `flags`, as kz_ip4_parse) or an IPv6 text, bracketed or not,
 * and a port.  *out is written only on success.  0 or KZ_EINVAL. */
int kz_addr_from_literal(struct kz_addr *out, const char *host, size_t len, uint16_t port, unsigned flags);
/* Writes "a.b.c.d:port" / "[v6]:port"; returns the length. */
size_t kz_addr_format(const struct kz_addr *a, char *out, size_t outlen);
/* Writes only the IP ("a.b.c.d" or "v6" without brackets). */
size_t kz_addr_format_ip(const struct kz_addr *a, char *out, size_t outlen);
bool kz_addr_eq(const struct kz_addr *a, const struct kz_addr *b);
/* Host-order IPv4 value, 0 for non-IPv4. */
uint32_t kz_addr_v4_host(const struct kz_addr *a);

/* ------------------------------------------------------------------ */
/* Logging                                                             */

enum kz_log_level {
  KZ_LOG_ERROR = 0,
  KZ_LOG_WARN = 1,
  KZ_LOG_INFO = 2,
  KZ_LOG_DEBUG = 3,
  KZ_LOG_TRACE = 4,
};

/* ------------------------------------------------------------------ */
/* Timers: intrusive, owned by their owner, ordered by (deadline, start
 * order).  A timer must be stopped before its memory goes away.         */

typedef void kz_timer_fn(void *arg);

struct kz_timer {
  struct kz_heap_node node;
  struct kz_env *env;
  kz_timer_fn *cb;
  void *arg;
};

void kz_timer_init(struct kz_timer *t, struct kz_env *env, kz_timer_fn *cb,
                   void *arg);
/* (Re)starts the timer to fire at absolute monotonic time `deadline_ns`;
 * a deadline in the past fires at the next chance.  Returns 0 or
 * KZ_ENOMEM. */
int kz_timer_start_at(struct kz_timer *t, uint64_t deadline_ns);
/* (Re)starts the timer to fire `delay_ns` from now.  0 or KZ_ENOMEM. */
int kz_timer_start(struct kz_timer *t, uint64_t delay_ns);
void kz_timer_stop(struct kz_timer *t);
bool kz_timer_active(const struct kz_timer *t);
/* The deadline of an active timer, UINT64_MAX otherwise. */
uint64_t kz_timer_deadline(const struct kz_timer *t);

/* ------------------------------------------------------------------ */
/* UDP                                                                 */

typedef void kz_udp_recv_fn(void *arg, struct kz_udp *u,
                            const struct kz_addr *from, const uint8_t *data,
                            size_t len);

struct kz_udp {
  struct kz_env *env;
  kz_udp_recv_fn *on_recv;
  void *arg;
  struct kz_addr local; /* the bound address, with the port chosen */
  void *impl;           /* driver's handle */
  bool closed;
};

/* Binds a datagram socket to `local` (port 0 picks one) and calls
 * on_recv for every datagram.  *out is the caller's until kz_udp_close.
 * Returns 0, KZ_EINVAL, KZ_ENOMEM, KZ_EADDRINUSE, KZ_EADDRNOTAVAIL,
 * KZ_EIO, or KZ_ENOTSUP when the driver has no datagrams. */
int kz_udp_bind(struct kz_env *env, const struct kz_addr *local,
                kz_udp_recv_fn *on_recv, void *arg, struct kz_udp **out);
/* Sends one datagram (the bytes are copied).  Delivery is best effort.
 * Returns 0, KZ_ECLOSED, KZ_EMSGSIZE, KZ_EINVAL or KZ_EHOSTUNREACH. */
int kz_udp_send(struct kz_udp *u, const struct kz_addr *to, const void *data,
                size_t len);
/* Closes and releases the socket; no callback fires afterwards.
 * NULL is a no-op. */
void kz_udp_close(struct kz_udp *u);

/* ------------------------------------------------------------------ */
/* Streams: ordered, reliable byte streams (TCP for real).
 *
 * Life cycle: the user always ends a stream with kz_stream_close, once,
 * whatever happened before.  on_connect fires once an outgoing stream is
 * established; on_close fires when the stream ended by itself (status 0
 * for an orderly close by the peer, or KZ_ECONNREFUSED, KZ_ECONNRESET,
 * KZ_ETIMEDOUT, KZ_EHOSTUNREACH...).  After kz_stream_close no callback
 * fires.                                                                */

struct kz_stream_cbs {
  void (*on_connect)(void *arg, struct kz_stream *s);
  void (*on_data)(void *arg, struct kz_stream *s, const uint8_t *data,
                  size_t len);
  void (*on_close)(void *arg, struct kz_stream *s, int status);
};

enum kz_stream_state {
  KZ_STREAM_CONNECTING = 0,
  KZ_STREAM_OPEN,
  KZ_STREAM_ENDED,  /* ended by the peer or an error; awaiting close */
  KZ_STREAM_CLOSED, /* closed by the user */
};

struct kz_stream {
  struct kz_env *env;
  const struct kz_stream_cbs *cbs;
  void *arg;
  struct kz_addr local;
  struct kz_addr peer;
  void *impl;
  enum kz_stream_state state;
  uint64_t id; /* per-env sequence number, for logs and traces */
};

typedef void kz_accept_fn(void *arg, struct kz_listener *l,
                          struct kz_stream *s);

struct kz_listener {
  struct kz_env *env;
  kz_accept_fn *on_accept;
  void *arg;
  struct kz_addr local;
  void *impl;
  bool closed;
};

/* Listens on `local` (port 0 picks one).  Each accepted stream is handed
 * to on_accept already open; the callee must set its callbacks with
 * kz_stream_set_cbs and owns the stream (ends it with kz_stream_close).
 * Returns 0, KZ_EINVAL, KZ_ENOMEM, KZ_EADDRINUSE, KZ_EADDRNOTAVAIL,
 * KZ_EIO, or KZ_ENOTSUP when the driver cannot listen. */
int kz_stream_listen(struct kz_env *env, const struct kz_addr *local,
                     kz_accept_fn *on_accept, void *arg,
                     struct kz_listener **out);
void kz_listener_close(struct kz_listener *l);

/* Starts connecting to `remote`.  Returns 0 (the outcome comes through
 * on_connect or on_close), KZ_ENOMEM, KZ_EINVAL, or KZ_ENOTSUP when the
 * driver cannot make streams. */
int kz_stream_connect(struct kz_env *env, const struct kz_addr *remote,
                      const struct kz_stream_cbs *cbs, void *arg,
                      struct kz_stream **out);
void kz_stream_set_cbs(struct kz_stream *s, const struct kz_stream_cbs *cbs,
                       void *arg);
/* Queues bytes (copied) to send in order.  Allowed while connecting.
 * Returns 0, KZ_ENOMEM or KZ_ECLOSED. */
int kz_stream_write(struct kz_stream *s, const void *data, size_t len);
/* Flushes what was written, closes, and releases the stream.  NULL is a
 * no-op. */
void kz_stream_close(struct kz_stream *s);

/* ------------------------------------------------------------------ */
/* Durable storage.  Paths are relative, '/'-separated, made of
 * [A-Za-z0-9._-] components, none of them "." or ".."; the driver roots
 * them in the instance's data directory.  Calls are synchronous.  Data
 * is durable only after kz_file_sync returns 0: the simulator drops
 * unsynced writes when it crashes a host.  Renames and removals are
 * durable when they return.                                             */

enum {
  KZ_FILE_READ = 1,
  KZ_FILE_WRITE = 2,
  KZ_FILE_CREATE = 4,
  KZ_FILE_TRUNC = 8,
  KZ_FILE_EXCL = 16,
};

struct kz_file {
  struct kz_env *env;
  void *impl;
  int flags;
  bool closed; /* set by kz_file_close, which asserts it is called once */
};

/* True when `path` is acceptable as described above. */
bool kz_fs_path_valid(const char *path);
/* Returns 0, KZ_EINVAL (bad path or flags), KZ_ENOENT, KZ_EEXIST,
 * KZ_ENOMEM, KZ_EIO, or KZ_ENOTSUP when the driver has no storage. */
int kz_file_open(struct kz_env *env, const char *path, int flags,
                 struct kz_file **out);
/* Reads up to len bytes at off; *nread is short only at end of file.
 * Returns 0, KZ_EINVAL or KZ_EIO. */
int kz_file_read(struct kz_file *f, uint64_t off, void *buf, size_t len,
                 size_t *nread);
/* Writes all len bytes at off, extending the file (holes read as zero).
 * Returns 0, KZ_EINVAL, KZ_ENOSPC, KZ_ENOMEM or KZ_EIO. */
int kz_file_write(struct kz_file *f, uint64_t off, const void *buf,
                  size_t len);
int kz_file_size(struct kz_file *f, uint64_t *size);
int kz_file_truncate(struct kz_file *f, uint64_t size);
/* Makes everything written so far durable.  Returns 0 or KZ_EIO. */
int kz_file_sync(struct kz_file *f);
/* Closes and releases the file, once (a second close asserts).  NULL is
 * a no-op. */
void kz_file_close(struct kz_file *f);
/* Each returns 0, KZ_EINVAL, KZ_ENOENT, KZ_EIO, or KZ_ENOTSUP when the
 * driver has no storage. */
int kz_fs_rename(struct kz_env *env, const char *from, const char *to);
int kz_fs_remove(struct kz_env *env, const char *path);
/* Returns 0 and sets *exists; KZ_EINVAL for a bad path, KZ_ENOTSUP when
 * the driver has no storage. */
int kz_fs_exists(struct kz_env *env, const char *path, bool *exists);

/* ------------------------------------------------------------------ */
/* The driver's side.  Each driver fills one of these.  The core calls
 * them only with valid arguments (paths checked, handles open).         */

struct kz_env_ops {
  uint64_t (*now)(void *drv);  /* monotonic ns */
  int64_t (*wall)(void *drv);  /* ns since the Unix epoch, host clock */
  /* The earliest timer deadline changed (UINT64_MAX: no timer). */
  void (*deadline_changed)(void *drv, uint64_t deadline);
  void (*log_write)(void *drv, int level, const char *line, size_t len);

  int (*udp_bind)(void *drv, struct kz_udp *u, const struct kz_addr *local);
  int (*udp_send)(void *drv, struct kz_udp *u, const struct kz_addr *to,
                  const void *data, size_t len);
  void (*udp_close)(void *drv, struct kz_udp *u);

  int (*listen)(void *drv, struct kz_listener *l,
                const struct kz_addr *local);
  void (*listen_close)(void *drv, struct kz_listener *l);
  int (*connect)(void *drv, struct kz_stream *s, const struct kz_addr *remote);
  int (*stream_write)(void *drv, struct kz_stream *s, const void *data,
                      size_t len);
  void (*stream_close)(void *drv, struct kz_stream *s);

  int (*file_open)(void *drv, struct kz_file *f, const char *path, int flags);
  int (*file_read)(void *drv, struct kz_file *f, uint64_t off, void *buf,
                   size_t len, size_t *nread);
  int (*file_write)(void *drv, struct kz_file *f, uint64_t off,
                    const void *buf, size_t len);
  int (*file_size)(void *drv, struct kz_file *f, uint64_t *size);
  int (*file_truncate)(void *drv, struct kz_file *f, uint64_t size);
  int (*file_sync)(void *drv, struct kz_file *f);
  void (*file_close)(void *drv, struct kz_file *f);
  int (*fs_rename)(void *drv, const char *from, const char *to);
  int (*fs_remove)(void *drv, const char *path);
  int (*fs_exists)(void *drv, const char *path, bool *exists);
};

/* One env per role instance (per simulated host process). */
struct kz_env {
  const struct kz_env_ops *ops;
  void *drv;
  char name[64];       /* instance name, used in logs */
  uint64_t seed;       /* root of every PRNG sub-stream of this env */
  struct kz_prng prng; /* the env's own stream ("env") */
  struct kz_heap timers;
  uint64_t armed_deadline; /* last value told to deadline_changed */
  int log_level;
  uint64_t next_stream_id;
  /* Live handle counts, for leak invariants. */
  int64_t n_udp, n_streams, n_listeners, n_files;
};

/* Initialises an env for a driver.  Returns 0 or KZ_EINVAL. */
int kz_env_init(struct kz_env *env, const struct kz_env_ops *ops, void *drv,
                const char *name, uint64_t seed);
/* Releases the timer heap.  Active timers are abandoned (their owners
 * are expected to be gone: this is what a crash does). */
void kz_env_deinit(struct kz_env *env);

uint64_t kz_env_now(struct kz_env *env);
int64_t kz_env_wall(struct kz_env *env);
/* A 64-bit draw from the env's own stream. */
uint64_t kz_env_random(struct kz_env *env);
/* Seeds `child` as a sub-stream of this env named `component`: each
 * component of a role draws from its own stream. */
void kz_env_prng(struct kz_env *env, const char *component,
                 struct kz_prng *child);

/* For drivers: the earliest timer deadline, UINT64_MAX when none. */
uint64_t kz_env_next_deadline(const struct kz_env *env);
/* For drivers: fires every timer whose deadline is <= now, in (deadline,
 * start order); timers started by those callbacks for an already passed
 * deadline wait for the next call.  Returns the number fired. */
size_t kz_env_run_timers(struct kz_env *env);
size_t kz_env_timer_count(const struct kz_env *env);

/* For drivers: hand received input to the user, unless the handle was
 * closed meanwhile. */
void kz_udp_deliver(struct kz_udp *u, const struct kz_addr *from,
                    const uint8_t *data, size_t len);
/* Handle references: every handle (udp, listener, stream, file) is a
 * kz_obj with one reference held by the user, dropped by the close call.
 * A driver whose bind/listen/connect/open succeeded takes a reference of
 * its own (kz_ref) and drops it (kz_deref) once it is done with `impl`
 * (after its close has completed), so late driver events never touch
 * freed memory.  kz_*_deliver_* ignore handles the user has closed.

 * Allocates a stream in the OPEN state for an accepted connection with
 * the driver's `impl`, takes the driver's reference on it for the
 * driver, stores it in *out and then calls on_accept.  Returns 0,
 * KZ_ENOMEM or KZ_ECLOSED (the listener was closed); on error nothing is
 * allocated and the driver should drop the connection. */
int kz_listener_deliver_accept(struct kz_listener *l, void *impl,
                               const struct kz_addr *local,
                               const struct kz_addr *peer,
                               struct kz_stream **out);
void kz_stream_deliver_connect(struct kz_stream *s);
void kz_stream_deliver_data(struct kz_stream *s, const uint8_t *data,
                            size_t len);
/* The stream ended by itself with `status` (0 = orderly close). */
void kz_stream_deliver_close(struct kz_stream *s, int status);

/* Logging: formats "<seconds.nanoseconds> <LEVEL> <env name>/<component>:
 * message" with the env's monotonic time and hands it to the driver.
 * Lines over 2 KiB are cut. */
void kz_log(struct kz_env *env, int level, const char *component,
            const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void kz_vlog(struct kz_env *env, int level, const char *component,
             const char *fmt, va_list ap);
const char *kz_log_level_name(int level);

#endif /* KZ_ENV_H */
