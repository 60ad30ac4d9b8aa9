#!/usr/bin/env bash
# guard_test.sh — proves ci/guard catches planted violations and accepts clean code.
# usage: guard_test.sh GUARD CLEAN_OBJ CLOCK_OBJ STATE_OBJ SOCKET_OBJ
set -u
guard=$1 clean=$2 clock=$3 state=$4 sock=$5
fails=0
expect() { # expect STATUS PATTERN OBJ...
  local want=$1 pattern=$2; shift 2
  local out; out=$("$guard" "$@" 2>&1); local got=$?
  if [ "$got" -ne "$want" ]; then
    echo "FAIL: guard on $* exited $got, expected $want"; echo "$out"; fails=$((fails + 1)); return
  fi
  if [ -n "$pattern" ] && ! grep -qE -- "$pattern" <<< "$out"; then
    echo "FAIL: guard on $* did not say /$pattern/"; echo "$out"; fails=$((fails + 1)); return
  fi
  echo "ok: guard on $(basename -- "${@: -1}") -> $got ${pattern:+(/$pattern/)}"
}
expect 0 "" "$clean"
expect 1 "calls 'time'" "$clock"
expect 1 "mutable file-scope state 'kz_planted_counter'" "$state"
expect 1 "mutable file-scope state 'calls" "$state"
expect 1 "calls 'socket'" "$sock"
expect 1 "calls 'sleep'" "$sock"
# An allow-list entry with a reason lets a symbol through; one without a reason is refused.
allow=$(mktemp)
echo "kz_planted_counter # test: allowed on purpose" > "$allow"
echo "calls # test: allowed on purpose" >> "$allow"
expect 0 "" --allow "$allow" "$state"
echo "kz_planted_counter" > "$allow"
expect 2 "has no reason" --allow "$allow" "$state"
rm -f "$allow"
echo "$((8 - fails)) passed, $fails failed"
[ "$fails" -eq 0 ]
