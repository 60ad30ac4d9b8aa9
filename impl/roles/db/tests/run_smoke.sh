#!/usr/bin/env bash
# run_smoke.sh — `kz run db --config FILE` for real: serve on 127.0.0.1 (port 0), PUT/GET with curl, stop on SIGTERM, restart and read back, config errors.
set -euo pipefail
bin=$1
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "run_smoke: $*" >&2; cat "$tmp/log" >&2 2>/dev/null || true; exit 1; }

cat > "$tmp/db.json" <<JSON
{"listen": "127.0.0.1:0", "data_dir": "$tmp/data", "seed": 7, "log_level": "info"}
JSON

start() {
  : > "$tmp/log"
  "$bin" run db --config "${1:-$tmp/db.json}" 2> "$tmp/log" &
  pid=$!
  for _ in $(seq 200); do grep -q "listening on" "$tmp/log" && break; sleep 0.05; done
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/log" | head -1)
  [ -n "$port" ] || fail "no listening line"
  url=http://127.0.0.1:$port
}
stop() {
  kill -TERM "$pid"
  wait "$pid" || fail "exit status $? after SIGTERM"
  pid=
}

start
curl -sf "$url/" | grep -q '"couchdb":"Welcome"' || fail "welcome"
curl -sf -X PUT "$url/account%2F3c%2F3f%2Fabc" | grep -q '"ok":true' || fail "create db"
curl -sf -X PUT -H 'Content-Type: application/json' -d '{"name":"alice"}' "$url/account%2F3c%2F3f%2Fabc/user1" \
  | grep -q '"ok":true' || fail "put doc"
curl -sf "$url/account%2F3c%2F3f%2Fabc/user1" | grep -q '"name":"alice"' || fail "get doc"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -d '{"name":"bob"}' "$url/account%2F3c%2F3f%2Fabc/user1")
[ "$code" = 409 ] || fail "expected 409, got $code"
stop
start
curl -sf "$url/account%2F3c%2F3f%2Fabc/user1" | grep -q '"name":"alice"' || fail "doc after restart"
curl -sf "$url/_all_dbs" | grep -q 'account/3c/3f/abc' || fail "_all_dbs after restart"
stop

# Without "seed" every start draws a fresh PRNG seed: a restart over the
# same data never redraws a uuid it handed out (POST would get 409).
printf '{"listen": "127.0.0.1:0", "data_dir": "%s"}' "$tmp/fresh" > "$tmp/noseed.json"
post_id() { # POST a doc, check 201, print the generated id
  local out code
  out=$(curl -s -w '\n%{http_code}' -X POST -H 'Content-Type: application/json' -d "$2" "$url/$1")
  code=${out##*$'\n'}
  [ "$code" = 201 ] || fail "POST $2: expected 201, got $code: ${out%$'\n'*}"
  sed -n 's/.*"id":"\([^"]*\)".*/\1/p' <<<"${out%$'\n'*}"
}
ids=()
for round in 1 2 3; do
  start "$tmp/noseed.json"
  [ $round = 1 ] && { curl -sf -X PUT "$url/t" | grep -q '"ok":true' || fail "create t"; }
  ids+=("$(post_id t "{\"a\":$round}")")
  stop
done
[ -n "${ids[0]}" ] && [ "${ids[0]}" != "${ids[1]}" ] && [ "${ids[1]}" != "${ids[2]}" ] \
  && [ "${ids[0]}" != "${ids[2]}" ] || fail "ids repeat across restarts: ${ids[*]}"
# An explicit seed still reproduces: two fresh data dirs, one seed, one id.
rep=()
for d in r1 r2; do
  printf '{"listen": "127.0.0.1:0", "data_dir": "%s", "seed": 42}' "$tmp/$d" > "$tmp/$d.json"
  start "$tmp/$d.json"
  curl -sf -X PUT "$url/t" | grep -q '"ok":true' || fail "create t ($d)"
  rep+=("$(post_id t '{"a":1}')")
  stop
done
[ -n "${rep[0]}" ] && [ "${rep[0]}" = "${rep[1]}" ] || fail "seed 42 gave ${rep[*]}"

# Configuration errors name the file (and the line for JSON syntax).
printf '{\n  "listen": \n' > "$tmp/bad.json"
if "$bin" run db --config "$tmp/bad.json" 2> "$tmp/err"; then fail "bad JSON accepted"; fi
grep -q "bad.json:3" "$tmp/err" || { cat "$tmp/err"; fail "no file:line in the error"; }
printf '{"listen": "127.0.0.1:0"}' > "$tmp/nodir.json"
if "$bin" run db --config "$tmp/nodir.json" 2> "$tmp/err"; then fail "missing data_dir accepted"; fi
grep -q 'nodir.json: "data_dir" is required' "$tmp/err" || { cat "$tmp/err"; fail "data_dir error"; }
printf '{"data_dir": "%s", "bogus": 1}' "$tmp/d2" > "$tmp/unk.json"
if "$bin" run db --config "$tmp/unk.json" 2> "$tmp/err"; then fail "unknown key accepted"; fi
grep -q 'unknown setting "bogus"' "$tmp/err" || fail "unknown key error"
echo "run_smoke: ok"
