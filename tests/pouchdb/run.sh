#!/usr/bin/env bash
# run.sh — runs node:test files of the PouchDB suite against a kz binary; installs the npm packages (npm ci) when node_modules is missing.
# usage: run.sh KZ_BINARY [--install-only] [TEST_FILE...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kz=${1:?usage: run.sh KZ_BINARY [--install-only] [TEST_FILE...]}
shift
command -v node >/dev/null || { echo "run.sh: node is not installed (Debian: apt-get install nodejs npm)" >&2; exit 1; }
cd "$here"
if [ ! -d node_modules/pouchdb ]; then
  command -v npm >/dev/null || { echo "run.sh: npm is not installed (Debian: apt-get install npm)" >&2; exit 1; }
  echo "run.sh: npm ci in $here"
  npm ci --no-audit --no-fund
fi
if [ "${1:-}" = --install-only ]; then
  node -e "require('pouchdb')" && echo "run.sh: pouchdb loads"
  exit 0
fi
[ -x "$kz" ] || { echo "run.sh: $kz is not an executable" >&2; exit 1; }
[ $# -gt 0 ] || set -- api.test.js replication.test.js
# node:test exits non-zero when any test fails; todo tests (known kz
# incompatibilities, each with its reason) are reported but do not fail.
KZ_BIN=$kz exec node --test --test-reporter=tap "$@"
