/* uv_tests.h — shared helpers of the kz_uv suite: a bounded libuv loop per test, temp dirs, log capture. */
#ifndef KZ_UV_TESTS_H
#define KZ_UV_TESTS_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kz/buf.h"
#include "kz/uv_env.h"

/* A loop with a watchdog timer: every run is bounded in time. */
struct tloop {
  uv_loop_t loop;
  uv_timer_t watchdog;
  bool expired;
};

typedef bool tcond_fn(void *arg);

void tloop_open(struct tloop *t);
/* Runs the loop until cond(arg) is true or `ms` pass.  Returns the final
 * value of cond (true when cond is NULL: "just run for ms"). */
bool tloop_run_until(struct tloop *t, tcond_fn *cond, void *arg, uint64_t ms);
/* Closes the watchdog, runs the loop until every handle has closed
 * (bounded by ck's timeout) and checks that the loop closes cleanly. */
void tloop_close(struct tloop *t);

/* An env on the test loop with log lines captured in `log`. */
struct tenv {
  struct kz_uv_env *uv;
  struct kz_env *env;
  struct kz_buf log;
};
void tenv_open(struct tenv *te, struct tloop *t, const char *name,
               uint64_t seed, const char *data_dir);
/* Frees the driver (the loop must be run afterwards: tloop_close). */
void tenv_close(struct tenv *te);
bool tenv_log_has(const struct tenv *te, const char *needle);

/* mkdtemp under /tmp; rm -rf.  Both assert on failure. */
void tmpdir_make(char *out, size_t outlen);
void tmpdir_remove(const char *path);

struct kz_addr loopback(uint16_t port);

void add_driver_tests(Suite *s);
void add_echo_tests(Suite *s);

#endif /* KZ_UV_TESTS_H */
