#!/usr/bin/env bash
# rabbit_fixture.sh — ctest fixture for the AMQP tests of one build tree: starts (or stops) the RabbitMQ nodes listed in KZ_AMQP_NODES.
#
# usage: rabbit_fixture.sh start|stop   (KZ_SOURCE_DIR, KZ_AMQP_NODES="name:port:dist,...", KZ_RABBIT_ROOT)
# Without RabbitMQ installed: fails in CI (CI=true, 1 or yes), otherwise says
# so and succeeds (the tests then exit 77, which ctest shows as skipped).
set -u
# The project's one CI check: CI set to true, 1 or yes (any case).
kz_in_ci() { case "${CI:-}" in [Tt][Rr][Uu][Ee]|1|[Yy][Ee][Ss]) return 0 ;; esac; return 1; }
op=${1:?usage: rabbit_fixture.sh start|stop}
ci=${KZ_SOURCE_DIR:?}/ci/rabbitmq
if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
  if kz_in_ci; then
    echo "FAIL: RabbitMQ is not installed (ci/setup installs rabbitmq-server)" >&2
    exit 1
  fi
  echo "SKIP: RabbitMQ is not installed; the AMQP tests will skip (ci/setup installs it)"
  exit 0
fi
IFS=, read -ra nodes <<<"${KZ_AMQP_NODES:?}"
pids=()
for n in "${nodes[@]}"; do
  IFS=: read -r name port dist <<<"$n"
  case $op in
    # A node left over by an aborted run is replaced by a fresh one.
    start) ( "$ci" stop "$name" >/dev/null 2>&1; "$ci" start "$name" "$port" "$dist" ) & ;;
    stop) "$ci" stop "$name" & ;;
    *) echo "rabbit_fixture.sh: unknown operation '$op'" >&2; exit 2 ;;
  esac
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
[ $rc -eq 0 ] || echo "rabbit_fixture.sh: $op failed for some of: ${KZ_AMQP_NODES}" >&2
exit $rc
