/* log.c — kz_log: timestamped, level-filtered log lines handed to the env's driver. */
#include <stdio.h>

#include "kz/env.h"

/* Longest line handed to the driver, NUL included; longer lines are cut. */
#define KZ_LOG_LINE_MAX 2048

const char *kz_log_level_name(int level) {
  switch (level) {
  case KZ_LOG_ERROR:
    return "ERROR";
  case KZ_LOG_WARN:
    return "WARN";
  case KZ_LOG_INFO:
    return "INFO";
  case KZ_LOG_DEBUG:
    return "DEBUG";
  case KZ_LOG_TRACE:
    return "TRACE";
  default:
    return "LOG";
  }
}

void kz_vlog(struct kz_env *env, int level, const char *component, const char *fmt,
             va_list ap) {
  if (level > env->log_level || !env->ops->log_write) return;
  uint64_t now = kz_env_now(env);
  char line[KZ_LOG_LINE_MAX];
  int n = snprintf(line, sizeof(line), "%llu.%09llu %s %s/%s: ",
                   (unsigned long long)(now / 1000000000u), (unsigned long long)(now % 1000000000u),
                   kz_log_level_name(level), env->name, component ? component : "-");
  if (n < 0) return;
  size_t len = (size_t)n;
  if (len < sizeof(line) - 1) {
    int m = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
    if (m > 0) len += (size_t)m;
  }
  if (len > sizeof(line) - 1) len = sizeof(line) - 1;
  env->ops->log_write(env->drv, level, line, len);
}

void kz_log(struct kz_env *env, int level, const char *component, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  kz_vlog(env, level, component, fmt, ap);
  va_end(ap);
}
