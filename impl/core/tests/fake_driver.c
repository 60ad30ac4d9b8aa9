/* fake_driver.c — the in-test kz_env driver used by the env and log tests. */
#include "fake_driver.h"

#include <check.h>
#include <string.h>

#include "kz/error.h"
#include "kz/mem.h"

static uint64_t f_now(void *drv) { return ((struct fake_driver *)drv)->now; }
static int64_t f_wall(void *drv) { return ((struct fake_driver *)drv)->wall; }

static void f_deadline(void *drv, uint64_t deadline) {
  struct fake_driver *d = drv;
  ck_assert_uint_lt(d->n_deadlines, FAKE_MAX);
  d->deadlines[d->n_deadlines++] = deadline;
}

static void f_log(void *drv, int level, const char *line, size_t len) {
  struct fake_driver *d = drv;
  ck_assert_uint_lt(len, sizeof(d->log_line));
  memcpy(d->log_line, line, len);
  d->log_line[len] = 0;
  d->log_len = len;
  d->log_level = level;
  d->n_logs++;
}

/* Takes the driver's reference on a handle, as a real driver does. */
static int take(struct fake_driver *d, void *h) {
  d->n_driver_calls++;
  if (d->fail_next) {
    int rc = d->fail_next;
    d->fail_next = 0;
    return rc;
  }
  ck_assert_uint_lt(d->n_held, FAKE_MAX);
  d->held[d->n_held++] = kz_ref(h);
  return 0;
}

static int f_udp_bind(void *drv, struct kz_udp *u, const struct kz_addr *local) {
  int rc = take(drv, u);
  if (!rc && u->local.port == 0) u->local.port = 40000;
  if (!rc) u->impl = drv;
  return rc;
}

static int f_udp_send(void *drv, struct kz_udp *u, const struct kz_addr *to, const void *data,
                      size_t len) {
  struct fake_driver *d = drv;
  d->n_driver_calls++;
  d->n_udp_send++;
  return 0;
}

static void f_udp_close(void *drv, struct kz_udp *u) {
  struct fake_driver *d = drv;
  d->n_driver_calls++;
  d->n_udp_close++;
}

static int f_listen(void *drv, struct kz_listener *l, const struct kz_addr *local) {
  return take(drv, l);
}

static void f_listen_close(void *drv, struct kz_listener *l) {
  struct fake_driver *d = drv;
  d->n_driver_calls++;
  d->n_listen_close++;
}

static int f_connect(void *drv, struct kz_stream *s, const struct kz_addr *remote) {
  return take(drv, s);
}

static int f_stream_write(void *drv, struct kz_stream *s, const void *data, size_t len) {
  struct fake_driver *d = drv;
  d->n_driver_calls++;
  ck_assert_uint_le(d->n_written + len, sizeof(d->written));
  memcpy(d->written + d->n_written, data, len);
  d->n_written += len;
  return 0;
}

static void f_stream_close(void *drv, struct kz_stream *s) {
  struct fake_driver *d = drv;
  d->n_driver_calls++;
  d->n_stream_close++;
}

static int f_file_open(void *drv, struct kz_file *f, const char *path, int flags) {
  struct fake_driver *d = drv;
  if (!d->file_exists && !(flags & KZ_FILE_CREATE)) {
    d->n_driver_calls++;
    return KZ_ENOENT;
  }
  int rc = take(d, f);
  if (rc) return rc;
  d->file_exists = true;
  if (flags & KZ_FILE_TRUNC) d->file_len = 0;
  return 0;
}

static int f_file_read(void *drv, struct kz_file *f, uint64_t off, void *buf, size_t len,
                       size_t *nread) {
  struct fake_driver *d = drv;
  d->n_driver_calls++;
  size_t n = off >= d->file_len ? 0 : (size_t)(d->file_len - off);
  if (n > len) n = len;
  memcpy(buf, d->file + off, n);
  *nread = n;
  return 0;
}

static int f_file_write(void *drv, struct kz_file *f, uint64_t off, const void *buf, size_t len) {
  struct fake_driver *d = drv;
  d->n_driver_calls++;
  if (off + len > sizeof(d->file)) return KZ_ENOSPC;
  if (off > d->file_len) memset(d->file + d->file_len, 0, off - d->file_len);
  memcpy(d->file + off, buf, len);
  if (off + len > d->file_len) d->file_len = off + len;
  return 0;
}

static int f_file_size(void *drv, struct kz_file *f, uint64_t *size) {
  struct fake_driver *d = drv;
  d->n_driver_calls++;
  *size = d->file_len;
  return 0;
}

static int f_file_truncate(void *drv, struct kz_file *f, uint64_t size) {
  struct fake_driver *d = drv;
  d->n_driver_calls++;
  if (size > sizeof(d->file)) return KZ_ENOSPC;
  if (size > d->file_len) memset(d->file + d->file_len, 0, size - d->file_len);
  d->file_len = size;
  return 0;
}

static int f_file_sync(void *drv, struct kz_file *f) {
  ((struct fake_driver *)drv)->n_driver_calls++;
  return 0;
}

static void f_file_close(void *drv, struct kz_file *f) {
  struct fake_driver *d = drv;
  d->n_driver_calls++;
  d->n_file_close++;
}

static int f_fs_rename(void *drv, const char *from, const char *to) {
  ((struct fake_driver *)drv)->n_driver_calls++;
  return 0;
}

static int f_fs_remove(void *drv, const char *path) {
  struct fake_driver *d = drv;
  d->n_driver_calls++;
  if (!d->file_exists) return KZ_ENOENT;
  d->file_exists = false;
  d->file_len = 0;
  return 0;
}

static int f_fs_exists(void *drv, const char *path, bool *exists) {
  struct fake_driver *d = drv;
  d->n_driver_calls++;
  *exists = d->file_exists;
  return 0;
}

const struct kz_env_ops kz_core_fake_ops = {
    .now = f_now,
    .wall = f_wall,
    .deadline_changed = f_deadline,
    .log_write = f_log,
    .udp_bind = f_udp_bind,
    .udp_send = f_udp_send,
    .udp_close = f_udp_close,
    .listen = f_listen,
    .listen_close = f_listen_close,
    .connect = f_connect,
    .stream_write = f_stream_write,
    .stream_close = f_stream_close,
    .file_open = f_file_open,
    .file_read = f_file_read,
    .file_write = f_file_write,
    .file_size = f_file_size,
    .file_truncate = f_file_truncate,
    .file_sync = f_file_sync,
    .file_close = f_file_close,
    .fs_rename = f_fs_rename,
    .fs_remove = f_fs_remove,
    .fs_exists = f_fs_exists,
};

void kz_core_fake_release(struct fake_driver *d) {
  for (size_t i = 0; i < d->n_held; i++) kz_deref(d->held[i]);
  d->n_held = 0;
}
