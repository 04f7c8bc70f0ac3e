#!/usr/bin/env bash
# Benchmarks the gateway against nginx on this machine. See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release -p wecom-gateway -p emulator -p bare-proxy --bins
exec python3 bench/bench.py "$@"
