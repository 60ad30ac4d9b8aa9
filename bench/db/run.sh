#!/usr/bin/env bash
# run.sh — runs the db benchmark (bench.js) with the binaries of a build folder: run.sh BUILD_DIR [--quick] [--out DIR].
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: run.sh BUILD_DIR [--quick] [--out DIR]}
shift
command -v node >/dev/null || { echo "bench/db: node is not installed (Debian: apt-get install nodejs npm)" >&2; exit 1; }
exec node "$here/bench.js" --build "$(cd "$build" && pwd)" "$@"
