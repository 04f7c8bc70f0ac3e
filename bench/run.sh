#!/usr/bin/env bash
# Benchmarks the gateway against nginx on this machine. See bench/README.md.
#
# The gateway and the bare pingora proxy are measured as profile-guided builds (scripts/pgo.sh),
# the way a production binary is built; WGW_BENCH_PGO=0 measures the plain release builds.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
if [ "${WGW_BENCH_PGO:-1}" = "0" ]; then
  cargo build --release -p wecom-gateway -p emulator -p bare-proxy --bins
else
  scripts/pgo.sh
  export WGW_BENCH_BIN=target/pgo/release
fi
exec python3 bench/bench.py "$@"
