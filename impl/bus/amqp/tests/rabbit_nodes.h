/* rabbit_nodes.h — test support: the RabbitMQ nodes a build tree's AMQP tests share (KZ_AMQP_NODES), started and killed through ci/rabbitmq. */
#ifndef KZ_AMQP_RABBIT_NODES_H
#define KZ_AMQP_RABBIT_NODES_H

#include <stdbool.h>
#include <stddef.h>

#define KZ_AMQP_TEST_MAX_NODES 4

/* One node: Erlang name (NAME@localhost), AMQP port and distribution
 * port, all on 127.0.0.1. */
struct kz_amqp_test_node {
  char name[48];
  int port;
  int dist;
};

/* Parses KZ_AMQP_NODES ("name:port:dist,name:port:dist", set by the
 * build for its tests and by the ctest fixture that starts them) into
 * out[0..max).  Returns how many, 0 when the variable is unset or
 * malformed. */
int kz_amqp_test_nodes(struct kz_amqp_test_node *out, int max);

/* True in CI (CI set to true, 1 or yes): a test that cannot reach
 * RabbitMQ must fail then, and may skip otherwise. */
bool kz_amqp_test_required(void);
/* For a test executable's main, before it runs anything: 0 when the
 * nodes are configured (KZ_AMQP_NODES) and rabbitmq-server is installed;
 * otherwise says why on stderr and returns the exit status to end with:
 * 77 (ctest's SKIP_RETURN_CODE) outside CI, 1 in CI. */
int kz_amqp_test_skip_status(void);

/* True when the node's process is running (ci/rabbitmq pid). */
bool kz_amqp_test_node_alive(const struct kz_amqp_test_node *n);
/* Starts the node with empty state (ci/rabbitmq stop, then start; waits
 * until it accepts AMQP).  Returns 0 or -1. */
int kz_amqp_test_node_start(const struct kz_amqp_test_node *n);
/* Starts the node only when it is not running.  Returns 0 or -1. */
int kz_amqp_test_node_ensure(const struct kz_amqp_test_node *n);
/* kill -9 (ci/rabbitmq kill): a crash.  Returns 0 or -1. */
int kz_amqp_test_node_kill(const struct kz_amqp_test_node *n);
/* "amqp://guest:guest@127.0.0.1:PORT" into out. */
void kz_amqp_test_uri(const struct kz_amqp_test_node *n, char *out,
                      size_t outlen);
/* Runs ci/rabbitmq with the given arguments (each shell-safe), output to
 * /dev/null; returns its exit status or -1. */
int kz_amqp_test_ci(const char *args);

#endif /* KZ_AMQP_RABBIT_NODES_H */
