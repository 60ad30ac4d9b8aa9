/* uv_tests.c — main of the kz_uv suite and its helpers: bounded loops, captured logs, temp directories. */
#define _XOPEN_SOURCE 700
#include "uv_tests.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kz/env.h"
#include "kz_test.h"

static void watchdog_cb(uv_timer_t *w) {
  struct tloop *t = w->data;
  t->expired = true;
  uv_stop(&t->loop);
}

void tloop_open(struct tloop *t) {
  memset(t, 0, sizeof(*t));
  ck_assert_int_eq(uv_loop_init(&t->loop), 0);
  ck_assert_int_eq(uv_timer_init(&t->loop, &t->watchdog), 0);
  t->watchdog.data = t;
}

bool tloop_run_until(struct tloop *t, tcond_fn *cond, void *arg, uint64_t ms) {
  t->expired = false;
  uv_timer_start(&t->watchdog, watchdog_cb, ms, 0);
  while (!(cond && cond(arg)) && !t->expired) uv_run(&t->loop, UV_RUN_ONCE);
  uv_timer_stop(&t->watchdog);
  return cond ? cond(arg) : true;
}

void tloop_close(struct tloop *t) {
  uv_close((uv_handle_t *)&t->watchdog, NULL);
  uv_run(&t->loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&t->loop), 0);
}

static void capture_log(void *arg, int level, const char *line, size_t len) {
  struct tenv *te = arg;
  kz_buf_append(&te->log, line, len);
  kz_buf_append_byte(&te->log, '\n');
  if (getenv("KZ_TEST_VERBOSE")) fprintf(stderr, "%.*s\n", (int)len, line);
}

void tenv_open(struct tenv *te, struct tloop *t, const char *name,
               uint64_t seed, const char *data_dir) {
  memset(te, 0, sizeof(*te));
  ck_assert_int_eq(kz_uv_env_new(&te->uv, &t->loop, name, seed, data_dir), 0);
  te->env = kz_uv_env_get(te->uv);
  kz_uv_env_set_log_sink(te->uv, capture_log, te);
  te->env->log_level = KZ_LOG_DEBUG;
}

void tenv_close(struct tenv *te) {
  kz_uv_env_free(te->uv);
  te->uv = NULL;
  te->env = NULL;
  kz_buf_free(&te->log);
}

bool tenv_log_has(const struct tenv *te, const char *needle) {
  return te->log.len && strstr((const char *)te->log.data, needle) != NULL;
}

void tmpdir_make(char *out, size_t outlen) {
  ck_assert_int_lt(snprintf(out, outlen, "/tmp/kz_uv_test.XXXXXX"), (int)outlen);
  ck_assert_ptr_nonnull(mkdtemp(out));
}

static int rm_entry(const char *path, const struct stat *sb, int type,
                    struct FTW *ftw) {
  return remove(path);
}

void tmpdir_remove(const char *path) {
  ck_assert_int_eq(strncmp(path, "/tmp/kz_uv_test.", 16), 0);
  ck_assert_int_eq(nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

struct kz_addr loopback(uint16_t port) { return kz_addr_v4(0x7f000001u, port); }

int main(void) {
  Suite *s = suite_create("kz_uv");
  add_driver_tests(s);
  add_echo_tests(s);
  return kz_run_suite(s);
}
