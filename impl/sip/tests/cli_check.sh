#!/bin/sh
# cli_check.sh — proves `kz sip check`: outputs, --json escaping and exit statuses 0/1/2.
# usage: cli_check.sh KZ_BINARY FIXTURES_DIR   (FIXTURES_DIR = fixtures/sip)
set -u
KZ=$1
FX=$2
T=$(mktemp -d /tmp/kz_sip_cli_XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect STATUS STDOUT_FILE_CONTENT -- ARGS...
run() {
  "$KZ" "$@" >"$T/out" 2>"$T/err"
  echo $? >"$T/rc"
}
expect_rc() { [ "$(cat "$T/rc")" = "$1" ] || fail "$2: exit $(cat "$T/rc"), want $1"; }
expect_out() { [ "$(cat "$T/out")" = "$1" ] || fail "$2: stdout was [$(cat "$T/out")], want [$1]"; }
expect_err_has() { grep -q -- "$1" "$T/err" || fail "$2: stderr lacks [$1]: [$(cat "$T/err")]"; }

V=$FX/rfc4475/wsinv.dat
V2=$FX/rfc5118/ipv6-good.dat
I=$FX/rfc4475/insuf.dat
I2=$FX/rfc4475/badvers.dat

run sip check "$V" "$V2"
expect_rc 0 "all valid"
expect_out "$V: OK
$V2: OK" "all valid"

run sip check "$V" "$I"
expect_rc 1 "one invalid"
expect_out "$V: OK
$I: INVALID: missing Call-ID" "one invalid"

run sip check "$I2"
expect_rc 1 "bad version"
expect_out "$I2: INVALID: unsupported SIP version" "bad version"

# --json, with a file name that needs escaping
cp "$FX/rfc4475/quotbal.dat" "$T/we\"ird\\name.dat"
run sip check --json "$V" "$T/we\"ird\\name.dat"
expect_rc 1 "json"
expect_out "{\"file\":\"$V\",\"valid\":true,\"reason\":null}
{\"file\":\"$T/we\\\"ird\\\\name.dat\",\"valid\":false,\"reason\":\"invalid To: unterminated quoted string\"}" "json"
if command -v python3 >/dev/null 2>&1; then
  python3 -c 'import json,sys
for l in open(sys.argv[1]): json.loads(l)' "$T/out" || fail "json: not valid JSON lines"
fi

# I/O error: exit 2 and a message naming the file, other files still reported
run sip check "$V" "$T/does-not-exist.dat"
expect_rc 2 "missing file"
expect_out "$V: OK" "missing file"
expect_err_has "$T/does-not-exist.dat" "missing file"

# usage errors
run sip check
expect_rc 2 "no files"
run sip check --bogus "$V"
expect_rc 2 "bad option"
expect_err_has "--bogus" "bad option"
run sip frobnicate
expect_rc 2 "bad subcommand"
run sip
expect_rc 2 "no subcommand"
run sip check --help
expect_rc 0 "help"

# every torture file gets exactly one line
run sip check "$FX"/rfc4475/*.dat "$FX"/rfc5118/*.dat
expect_rc 1 "all fixtures"
n=$(wc -l <"$T/out")
want=$(ls "$FX"/rfc4475/*.dat "$FX"/rfc5118/*.dat | wc -l)
[ "$n" -eq "$want" ] || fail "all fixtures: $n lines for $want files"

if [ "$fails" -ne 0 ]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "kz sip check: all CLI checks passed ($KZ)"
