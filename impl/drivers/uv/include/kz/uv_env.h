/* kz/uv_env.h — the real driver: a kz_env backed by a libuv loop, real sockets and real files. */
#ifndef KZ_UV_ENV_H
#define KZ_UV_ENV_H

#include <stdint.h>
#include <stddef.h>

#include <uv.h>

#include "kz/env.h"

/* One kz_uv_env drives one role instance on a libuv loop the caller owns
 * and runs.  Timers use one uv_timer_t armed to the earliest kz timer
 * deadline; datagrams use uv_udp_t, streams uv_tcp_t; files are plain
 * synchronous POSIX calls under a data directory.  Everything runs on the
 * loop's thread. */

struct kz_uv_env;

/* Creates a driver on `loop` and initialises its kz_env with `name` and
 * `seed`.  `data_dir` roots every kz_fs path; it is created (with its
 * parents) when missing.  data_dir may be NULL: file calls then fail with
 * KZ_ENOTSUP.  *out is the caller's; release it with kz_uv_env_free.
 * Returns 0, KZ_EINVAL (NULL out/loop/name, name too long), KZ_ENOMEM,
 * or KZ_EIO/KZ_EPERM when data_dir cannot be created. */
int kz_uv_env_new(struct kz_uv_env **out, uv_loop_t *loop, const char *name,
                  uint64_t seed, const char *data_dir);

/* The kz_env to hand to role code.  It lives as long as the driver. */
struct kz_env *kz_uv_env_get(struct kz_uv_env *e);

/* The driver that owns `env` (which must come from kz_uv_env_get). */
struct kz_uv_env *kz_uv_env_from(struct kz_env *env);

/* Starts closing the driver: every libuv handle it still holds (its
 * timer, and the handles of sockets, listeners and streams, even ones the
 * user never closed) is uv_close'd and open files are closed.  The memory
 * is released from the close callbacks, so the caller must run the loop
 * afterwards (uv_run(loop, UV_RUN_DEFAULT) returns once they are all
 * done) before checking for leaks or closing the loop.  Close role
 * instances first: user handles still open keep their own reference and
 * must not be used afterwards.  Pending stream writes are dropped.
 * NULL is a no-op. */
void kz_uv_env_free(struct kz_uv_env *e);

/* Wall-clock option.  By default kz_env_wall reads CLOCK_REALTIME.  A
 * custom source replaces it (fn returns ns since the Unix epoch); NULL
 * restores the host clock.  The offset is added to whichever source is in
 * use: it models a host whose clock is skewed. */
typedef int64_t kz_uv_wall_fn(void *arg);
void kz_uv_env_set_wall_clock(struct kz_uv_env *e, kz_uv_wall_fn *fn,
                              void *arg);
void kz_uv_env_set_wall_offset(struct kz_uv_env *e, int64_t offset_ns);

/* Log sink.  By default log lines go to stderr, one line each.  A sink
 * receives them instead (the line has no trailing newline and is not NUL
 * terminated); NULL restores stderr. */
typedef void kz_uv_log_fn(void *arg, int level, const char *line, size_t len);
void kz_uv_env_set_log_sink(struct kz_uv_env *e, kz_uv_log_fn *fn, void *arg);

/* Stream close bound.  kz_stream_close flushes queued bytes before
 * closing; a peer that stops reading would hold the socket forever, so
 * after `timeout_ns` (default 10 s; 0 restores it) the stream is cut and
 * its unsent bytes dropped.  The bound runs on a kz timer of the env. */
void kz_uv_env_set_close_timeout(struct kz_uv_env *e, uint64_t timeout_ns);

/* Number of libuv handles (and open files) the driver holds right now,
 * its own timer included (a listener holds two: its socket and a spare
 * for refusing connections it cannot take); for tests and leak
 * invariants. */
size_t kz_uv_env_live_handles(const struct kz_uv_env *e);

/* Maps a libuv error (a negative UV_E* code, which is -errno on Unix) to
 * the closest KZ_E* code; 0 stays 0, unknown codes give KZ_EIO. */
int kz_uv_err(int uv_err);

#endif /* KZ_UV_ENV_H */
