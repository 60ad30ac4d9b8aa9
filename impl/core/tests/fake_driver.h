/* fake_driver.h — a tiny in-test kz_env driver: hand-advanced clock, recorded calls, deferred releases. */
#ifndef KZ_CORE_FAKE_DRIVER_H
#define KZ_CORE_FAKE_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kz/env.h"

#define FAKE_MAX 32

struct fake_driver {
  uint64_t now;
  int64_t wall;
  /* Every deadline_changed call, in order. */
  uint64_t deadlines[FAKE_MAX];
  size_t n_deadlines;
  /* The last log line, NUL-terminated, and how many lines came. */
  char log_line[4096];
  size_t log_len;
  int log_level;
  int n_logs;
  /* Forced result for the next bind/listen/connect/open (0 = succeed). */
  int fail_next;
  /* Handles the driver holds a reference on, released by kz_core_fake_release. */
  void *held[FAKE_MAX];
  size_t n_held;
  /* Calls seen. */
  int n_udp_send, n_udp_close, n_listen_close, n_stream_close, n_file_close;
  int n_driver_calls; /* every call that is not now/wall/deadline/log */
  char written[256];
  size_t n_written;
  /* One in-memory file. */
  uint8_t file[256];
  uint64_t file_len;
  bool file_exists;
};

extern const struct kz_env_ops kz_core_fake_ops;

/* Drops every reference the fake driver holds (its closes completing). */
void kz_core_fake_release(struct fake_driver *d);

#endif /* KZ_CORE_FAKE_DRIVER_H */
