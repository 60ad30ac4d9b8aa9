#!/usr/bin/env bash
# tap_test.sh — `kz bus tap` against a RabbitMQ node: 3 messages published, 3 JSON lines printed, then it stops (--count 3).
#
# usage: tap_test.sh KZ PUBLISH3   (KZ_AMQP_NODES and KZ_SOURCE_DIR from ctest)
set -u
# The project's one CI check: CI set to true, 1 or yes (any case).
kz_in_ci() { case "${CI:-}" in [Tt][Rr][Uu][Ee]|1|[Yy][Ee][Ss]) return 0 ;; esac; return 1; }
kz=$1 pub=$2
IFS=: read -r name port _ <<<"${KZ_AMQP_NODES%%,*}"
if ! "$KZ_SOURCE_DIR/ci/rabbitmq" pid "$name" >/dev/null 2>&1; then
  if kz_in_ci; then echo "FAIL: RabbitMQ node $name is not running" >&2; exit 1; fi
  echo "SKIP: RabbitMQ node $name is not running (is rabbitmq-server installed?)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$kz" bus tap --uri "amqp://guest:guest@127.0.0.1:$port" --count 3 --timeout 30 \
  callevt:call.# kapps:# >"$tmp/out" 2>"$tmp/err" &
tap=$!
# tap says "listening" on stderr once its bindings are in place.
for _ in $(seq 150); do
  grep -q listening "$tmp/err" && break
  kill -0 $tap 2>/dev/null || break
  sleep 0.1
done
grep -q listening "$tmp/err" || { echo "tap never listened:"; cat "$tmp/err"; kill $tap; exit 1; }
"$pub" "$port" callevt call.CHANNEL_CREATE.abc '{"Event-Name":"CHANNEL_CREATE","Call-ID":"abc"}' \
  call.CHANNEL_DESTROY.abc '{"Event-Name":"CHANNEL_DESTROY"}' || { echo "publish failed"; kill $tap; exit 1; }
"$pub" "$port" kapps media.req 'not json' || { echo "publish failed"; kill $tap; exit 1; }
wait $tap
rc=$?
cat >"$tmp/want" <<'W'
{"exchange":"callevt","routing_key":"call.CHANNEL_CREATE.abc","body":{"Event-Name":"CHANNEL_CREATE","Call-ID":"abc"}}
{"exchange":"callevt","routing_key":"call.CHANNEL_DESTROY.abc","body":{"Event-Name":"CHANNEL_DESTROY"}}
{"exchange":"kapps","routing_key":"media.req","body":"not json"}
W
if [ $rc -ne 0 ] || ! diff -u "$tmp/want" "$tmp/out"; then
  echo "kz bus tap: exit $rc"; cat "$tmp/err"; exit 1
fi
echo "ok: 3 messages, 3 lines"
