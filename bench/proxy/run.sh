#!/usr/bin/env bash
# run.sh — runs the proxy benchmark (bench.py: kz's proxy vs Kamailio under SIPp) with a build folder: run.sh BUILD_DIR [--quick] [--reps N] [...].
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: run.sh BUILD_DIR [--quick] [--reps N] [--only kz|kamailio] [--out DIR]}
shift
command -v python3 >/dev/null || { echo "bench/proxy: python3 is not installed" >&2; exit 1; }
command -v sipp >/dev/null || { echo "bench/proxy: sipp is not installed (Debian: apt-get install sip-tester)" >&2; exit 1; }
exec python3 "$here/bench.py" --build "$(cd "$build" && pwd)" "$@"
