#!/usr/bin/env bash
# drill.sh — one fault drill in real mode (kz up on two-server-proxy) and its twin in the simulator; bounded in time, always cleans up.
#
# usage: drill.sh proxy-kill|broker-stop|db-restart
# Environment: KZ (the kz binary, with up/status/down/scenario), KZ_SOURCE_DIR,
#   KZ_DRILL_DIR (work folder), KZ_DRILL_NET (second octet of the loopback addresses, default 79),
#   KZ_DRILL_BROKER_PORT (first RabbitMQ port, default 6700: AMQP and Erlang distribution ports (+20000) stay below the ephemeral range).
# Each drill checks, in both worlds, that nothing acknowledged is lost:
#   proxy-kill   kill -9 kz1's proxy while phones register through both proxies: kz2's
#                keeps serving every REGISTER, and the phones of kz1 re-register on kz2.
#                Twin: the proxy of kz1 is killed (kill fault) at the same point of a simulated run.
#   broker-stop  stop kz1's RabbitMQ node: kz1's proxy and apps fail over to kz2's broker
#                (their bus clients list both) and registrations through kz1 keep working.
#                Twin: kz1's broker process is killed in the simulator; its clients fail over the same way.
#   db-restart   stop kz2's db, write documents on kz1's (acknowledged 201), bring kz2's back:
#                the dbs are peers (continuous replication both ways), so kz2's catches up by
#                itself and every document is on kz2.
#                Twin: kz2's db process is killed and restarted in the simulator (the kill
#                fault); registrations through kz2 keep working.  The catching up itself is
#                proven in the simulator by kz_db_repl_tests' peers case.
# Exit status: 0 passed, 1 failed, 77 skipped (sipp or RabbitMQ missing outside CI).
set -euo pipefail
# The project's one CI check: CI set to true, 1 or yes (any case).
kz_in_ci() { case "${CI:-}" in [Tt][Rr][Uu][Ee]|1|[Yy][Ee][Ss]) return 0 ;; esac; return 1; }
drill=${1:?usage: drill.sh proxy-kill|broker-stop|db-restart}
src=${KZ_SOURCE_DIR:?}
kz=${KZ:?}
net=${KZ_DRILL_NET:-79}
bport=${KZ_DRILL_BROKER_PORT:-6700}
work=${KZ_DRILL_DIR:-$(mktemp -d /tmp/kz-drill-XXXXXX)}/$drill
topo=$src/scenarios/topologies/two-server-proxy.yaml
state=$work/state
rm -rf "$work"; mkdir -p "$work"
export KZ_SOURCE_DIR=$src

for need in sipp /usr/lib/rabbitmq/bin/rabbitmq-server; do
  if ! command -v "$need" >/dev/null 2>&1 && [ ! -x "$need" ]; then
    if kz_in_ci; then echo "drill $drill: FAIL: $need is not installed (ci/setup)"; exit 1; fi
    echo "drill $drill: SKIPPED: $need is not installed (ci/setup installs it)"; exit 77
  fi
done

pids=()
cleanup() {
  local p
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  "$kz" down --state "$state" --timeout 5 >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

a() { echo "127.$net.$1"; }   # host c.d of the topology -> its loopback twin (kz up --net)
say() { echo "drill $drill: $*"; }
fail() { say "FAIL: $*"; exit 1; }
up() { timeout 120 "$kz" up "$topo" --state "$state" --net "$net" --broker-port "$bport" --quiet \
         || fail "kz up did not come up (logs in $state/logs)"; }
# sipp UAC registering dev1001 N times at R/s from ADDR through PROXY; prints "ok failed".
register() {
  local name=$1 addr=$2 proxy=$3 n=$4 r=$5
  ( cd "$work" && timeout 60 sipp -sf "$src/scenarios/sipp/register-auth/uac.xml" -i "$addr" -p 5060 \
      "$proxy:5060" -m "$n" -r "$r" -timeout 40s -timeout_error -nostdin -recv_timeout 3000 \
      -trace_stat -stf "$work/$name.csv" -fd 1 >"$work/$name.log" 2>&1 ) || true
}
counts() {  # ok failed from the last row of a -trace_stat file
  python3 - "$1" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=";"))
h, last = rows[0], rows[-1]
print(int(last[h.index("SuccessfulCall(C)")]), int(last[h.index("FailedCall(C)")]))
PY
}
# Simulated twin: kz sim with a copy of the topology plus one fault; prints "uac1_ok uac1_failed uac2_ok uac2_failed".
sim_twin() {
  local fault=$1 calls=$2 rate=$3
  sed 's/^faults: \[\]$//' "$topo" >"$work/twin.yaml"
  printf 'faults:\n%s\n' "$fault" >>"$work/twin.yaml"
  cp "$src/scenarios/topologies/two-server-proxy.proxy.json" "$work/twin.proxy.json"
  timeout 120 "$kz" sim --topology "$work/twin.yaml" --uac "$src/scenarios/sipp/register-auth/uac.xml" \
    --uas "$src/scenarios/sipp/call-to-media/uas.xml" --seed 1 --calls "$calls" --rate "$rate" \
    --call-timeout 10 --allow-failed-calls --quiet --out "$work/sim" >"$work/sim.log" 2>&1 \
    || fail "kz sim failed (see $work/sim.log)"
  python3 - "$work/sim/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
u = {e["host"]: e for e in s["endpoints"] if e["role"] == "uac"}
print(u["uac1"]["calls_successful"], u["uac1"]["calls_failed"], u["uac2"]["calls_successful"], u["uac2"]["calls_failed"])
PY
}

case "$drill" in
proxy-kill)
  # Simulated twin first (seconds): kz1's proxy is killed 3 s in.
  read -r s1ok s1ko s2ok s2ko < <(sim_twin "  - kill: kz1
    role: proxy
    at: 3s" 12 2)
  say "sim: uac1 (kz1's proxy killed at 3 s) $s1ok ok / $s1ko failed; uac2 (kz2) $s2ok ok / $s2ko failed"
  [ "$s2ok" -eq 12 ] && [ "$s2ko" -eq 0 ] || fail "sim: kz2's proxy did not serve every REGISTER"
  [ "$s1ko" -gt 0 ] || fail "sim: the kill of kz1's proxy went unnoticed"
  up
  px1=$(cat "$state/run/proxy-kz1.pid")
  register uac1 "$(a 1.1)" "$(a 0.11)" 12 2 & pids+=($!)
  register uac2 "$(a 1.2)" "$(a 0.12)" 12 2 & pids+=($!)
  sleep 3
  kill -9 "$px1"; say "real: killed kz1's proxy (pid $px1) 3 s in"
  wait
  pids=()
  read -r r1ok r1ko < <(counts "$work/uac1.csv")
  read -r r2ok r2ko < <(counts "$work/uac2.csv")
  say "real: uac1 via kz1 $r1ok ok / $r1ko failed; uac2 via kz2 $r2ok ok / $r2ko failed"
  [ "$r2ok" -eq 12 ] && [ "$r2ko" -eq 0 ] || fail "real: kz2's proxy did not serve every REGISTER"
  [ "$r1ko" -gt 0 ] || fail "real: the kill of kz1's proxy went unnoticed"
  # The devices of kz1 re-register on kz2.
  register uac1b "$(a 1.1)" "$(a 0.12)" 4 4
  read -r bok bko < <(counts "$work/uac1b.csv")
  say "real: uac1 re-registering via kz2: $bok ok / $bko failed"
  [ "$bok" -eq 4 ] || fail "real: uac1 could not re-register on kz2"
  "$kz" status --state "$state" >"$work/status.txt" || true
  grep -q "proxy   kz1 .*DOWN" "$work/status.txt" || fail "kz status does not show kz1's proxy down"
  ;;
broker-stop)
  read -r s1ok s1ko s2ok s2ko < <(sim_twin "  - kill: kz1
    role: broker
    at: 2s" 10 1)
  say "sim: kz1's broker killed at 2 s: uac1 (kz1) $s1ok ok / $s1ko failed; uac2 (kz2) $s2ok ok / $s2ko failed"
  [ "$s2ko" -eq 0 ] || fail "sim: registrations through kz2 failed"
  # kz1's proxy and apps list both brokers: they reconnect to kz2's and every REGISTER through kz1 passes.
  [ "$s1ok" -eq 10 ] && [ "$s1ko" -eq 0 ] || fail "sim: registrations through kz1 failed after its broker was killed"
  grep -q '"ev":"tcp_connect","host":"kz1","proc":"proxy".*"peer":"10.0.0.12:5672"' "$work/sim/trace.jsonl" \
    || fail "sim: kz1's proxy did not reconnect to kz2's broker"
  up
  node=$(python3 -c "import json,sys; print([p['node'] for p in json.load(open(sys.argv[1]))['procs'] if p['role']=='broker' and p['host']=='kz1'][0])" "$state/state.json")
  KZ_RABBIT_ROOT=$state/rabbitmq "$src/ci/rabbitmq" stop "$node"
  say "real: stopped RabbitMQ node $node (kz1's broker)"
  # kz1's proxy and apps reconnect to kz2's broker (their second URI).
  ok=0
  for _ in $(seq 1 60); do
    st=$("$kz" status --state "$state" || true)
    if echo "$st" | grep -q "proxy   kz1 .*bus connected" && echo "$st" | grep -q "apps    kz1 .*bus connected"; then ok=1; break; fi
    sleep 0.5
  done
  echo "$st" >"$work/status.txt"
  [ "$ok" -eq 1 ] || fail "kz1's proxy/apps did not fail over to kz2's broker within 30 s: $st"
  register uac1 "$(a 1.1)" "$(a 0.11)" 5 2
  read -r r1ok r1ko < <(counts "$work/uac1.csv")
  say "real: after the failover, uac1 via kz1: $r1ok ok / $r1ko failed"
  [ "$r1ok" -eq 5 ] && [ "$r1ko" -eq 0 ] || fail "real: registrations through kz1 failed after the broker failover"
  ;;
db-restart)
  read -r s1ok s1ko s2ok s2ko < <(sim_twin "  - kill: kz2
    role: db
    at: 3s
    restart: 5s" 10 1)
  say "sim: kz2's db killed at 3 s, back at 5 s: uac1 $s1ok ok / $s1ko failed; uac2 $s2ok ok / $s2ko failed"
  [ "$s1ko" -eq 0 ] || fail "sim: registrations through kz1 failed while kz2's db was down"
  [ "$s2ok" -ge 1 ] || fail "sim: no registration through kz2 succeeded"
  up
  db1="http://$(a 0.11):5984" db2="http://$(a 0.12):5984"
  for d in "$db1" "$db2"; do curl -fsS -m 5 -X PUT "$d/drill" >/dev/null || fail "cannot create db drill on $d"; done
  db2pid=$(cat "$state/run/db-kz2.pid")
  kill -TERM "$db2pid"
  for _ in $(seq 1 100); do kill -0 "$db2pid" 2>/dev/null || break; sleep 0.05; done
  say "real: stopped kz2's db (pid $db2pid)"
  acked=0
  for i in $(seq 1 20); do
    r=$(curl -sS -m 5 -X PUT "$db1/drill/doc$i" -H 'Content-Type: application/json' -d "{\"n\": $i}" || true)
    case "$r" in *'"ok":true'*) acked=$((acked + 1)) ;; esac
  done
  say "real: $acked documents acknowledged by kz1's db while kz2's was down"
  [ "$acked" -eq 20 ] || fail "kz1's db did not acknowledge every write"
  timeout 90 "$kz" up --restart db:kz2 --state "$state" --quiet || fail "kz2's db did not come back"
  # No manual _replicate: kz2's db pulls from its peer by itself (its scan restarts the pulls).
  n=0
  for _ in $(seq 1 60); do
    n=0
    for i in $(seq 1 20); do
      curl -fsS -m 5 "$db2/drill/doc$i" 2>/dev/null | grep -q "\"n\":$i\b" && n=$((n + 1)) || true
    done
    [ "$n" -eq 20 ] && break
    sleep 0.5
  done
  say "real: after the restart, kz2's db holds $n of the 20 acknowledged documents (peer replication)"
  [ "$n" -eq 20 ] || fail "acknowledged documents are missing on kz2 after replication"
  ;;
*) echo "drill.sh: unknown drill '$drill'" >&2; exit 2 ;;
esac
say "PASS"
