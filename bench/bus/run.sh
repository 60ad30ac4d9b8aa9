#!/usr/bin/env bash
# run.sh — runs kz_bench_bus against a private RabbitMQ node that it starts and always stops: run.sh BUILD_DIR [kz_bench_bus options].
#
# The node (ci/rabbitmq) listens on 127.0.0.1:${KZ_BENCH_BUS_PORT:-28990}, its
# Erlang distribution on the port after next: both below the ephemeral range
# and outside the 20000-27999 the AMQP tests of a build tree take theirs from.
# Its files live under BUILD_DIR/rabbitmq-bench (KZ_RABBIT_ROOT), and it is
# stopped on every way out: success, a failed run, Ctrl-C or a TERM.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: run.sh BUILD_DIR [kz_bench_bus options]}" && pwd)
shift
bin=$build/bench/bus/kz_bench_bus
[ -x "$bin" ] || { echo "bench/bus: $bin is not built (target kz_bench_bus)" >&2; exit 1; }
port=${KZ_BENCH_BUS_PORT:-28990}
node=kzbenchbus
export KZ_RABBIT_ROOT=${KZ_RABBIT_ROOT:-$build/rabbitmq-bench}
rabbit() { "$src/ci/rabbitmq" "$@"; }

stop_node() { rabbit stop "$node" >/dev/null 2>&1 || true; }
trap stop_node EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
stop_node # a node left by a run that was killed hard
echo "bench/bus: starting RabbitMQ on 127.0.0.1:$port..." >&2
rabbit start "$node" "$port" "$((port + 2))" >/dev/null
"$bin" --uri "amqp://guest:guest@127.0.0.1:$port" "$@"
