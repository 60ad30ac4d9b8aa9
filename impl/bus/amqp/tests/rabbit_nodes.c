/* rabbit_nodes.c — test support: parse KZ_AMQP_NODES and drive ci/rabbitmq for the AMQP tests. */
#include "rabbit_nodes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

int kz_amqp_test_nodes(struct kz_amqp_test_node *out, int max) {
  const char *s = getenv("KZ_AMQP_NODES");
  if (!s || !*s) return 0;
  int n = 0;
  while (*s && n < max) {
    struct kz_amqp_test_node *nd = &out[n];
    int used = 0;
    memset(nd, 0, sizeof *nd);
    if (sscanf(s, "%47[A-Za-z0-9_-]:%d:%d%n", nd->name, &nd->port, &nd->dist,
               &used) != 3)
      return 0;
    n++;
    s += used;
    if (*s == ',') s++;
  }
  return n;
}

bool kz_amqp_test_required(void) {
  /* The one CI check of the project: CI set to true, 1 or yes (any case). */
  const char *ci = getenv("CI");
  return ci && (!strcasecmp(ci, "true") || !strcmp(ci, "1") || !strcasecmp(ci, "yes"));
}

int kz_amqp_test_skip_status(void) {
  struct kz_amqp_test_node n[KZ_AMQP_TEST_MAX_NODES];
  const char *why = NULL;
  if (kz_amqp_test_nodes(n, KZ_AMQP_TEST_MAX_NODES) == 0)
    why = "KZ_AMQP_NODES is not set (run through ctest, whose fixture starts RabbitMQ)";
  else if (access("/usr/lib/rabbitmq/bin/rabbitmq-server", X_OK) != 0)
    why = "rabbitmq-server is not installed (ci/setup installs it)";
  if (!why) return 0;
  if (kz_amqp_test_required()) {
    fprintf(stderr, "FAIL: %s\n", why);
    return 1;
  }
  fprintf(stderr, "SKIP: %s\n", why);
  return 77;
}

int kz_amqp_test_ci(const char *args) {
  const char *src = getenv("KZ_SOURCE_DIR");
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "'%s/ci/rabbitmq' %s >/dev/null 2>&1",
           src ? src : ".", args);
  int st = system(cmd);
  if (st == -1 || !WIFEXITED(st)) return -1;
  return WEXITSTATUS(st);
}

bool kz_amqp_test_node_alive(const struct kz_amqp_test_node *n) {
  char args[128];
  snprintf(args, sizeof args, "pid %s", n->name);
  return kz_amqp_test_ci(args) == 0;
}

int kz_amqp_test_node_start(const struct kz_amqp_test_node *n) {
  char args[128];
  snprintf(args, sizeof args, "stop %s", n->name);
  kz_amqp_test_ci(args);
  snprintf(args, sizeof args, "start %s %d %d", n->name, n->port, n->dist);
  return kz_amqp_test_ci(args) == 0 ? 0 : -1;
}

int kz_amqp_test_node_ensure(const struct kz_amqp_test_node *n) {
  return kz_amqp_test_node_alive(n) ? 0 : kz_amqp_test_node_start(n);
}

int kz_amqp_test_node_kill(const struct kz_amqp_test_node *n) {
  char args[128];
  snprintf(args, sizeof args, "kill %s", n->name);
  return kz_amqp_test_ci(args) == 0 ? 0 : -1;
}

void kz_amqp_test_uri(const struct kz_amqp_test_node *n, char *out,
                      size_t outlen) {
  snprintf(out, outlen, "amqp://guest:guest@127.0.0.1:%d", n->port);
}
