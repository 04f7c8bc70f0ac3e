#!/usr/bin/env bash
# A profile-guided release build of the gateway and of the bench's bare pingora proxy.
#
#   1. both built instrumented (target/pgo-gen), as `cargo build --release` builds them;
#   2. each run under the request shapes of bench/: public, signed-in, 100 KB, closed
#      connections and qyapi calls for the gateway, the same proxy rows for the bare proxy
#      (bench/pgo_train.py), each writing how often each branch and call was taken;
#   3. those counts merged (llvm-profdata of the LLVM version rustc is built on);
#   4. both built again with the counts (target/pgo): the compiler lays the hot path out
#      together and inlines by what ran, not by guesses.
#
# Result: target/pgo/release/wecom-gateway and target/pgo/release/bare-proxy. bench/README.md
# ("A profile-guided build") has what it changes: ~20% less CPU per request for both.
set -euo pipefail
cd "$(dirname "$0")/.."

llvm=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
profdata="llvm-profdata-$llvm"
if ! command -v "$profdata" >/dev/null 2>&1; then
  echo "pgo: installing llvm-$llvm (llvm-profdata for rustc's LLVM $llvm)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "llvm-$llvm" >/dev/null
fi
command -v wrk >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
}

root=$(pwd)
raw="$root/target/pgo-data"
rm -rf "$raw"
mkdir -p "$raw/build"

# The emulator stands in for WeCom during the training: a plain build, not measured.
cargo build --release -p emulator --bins
# (The build scripts compiled along are instrumented too; what they write goes to build/.)
RUSTFLAGS="-Cprofile-generate=$raw/build" \
  cargo build --release -p wecom-gateway -p bare-proxy --bins --target-dir target/pgo-gen
python3 bench/pgo_train.py target/pgo-gen/release "$raw"
"$profdata" merge -o "$raw/merged.profdata" "$raw"/bare-*.profraw "$raw"/gateway-*.profraw
# Named by its content: cargo rebuilds when the flags change, not when a file they name does.
merged="$root/target/pgo-profiles/$(sha256sum "$raw/merged.profdata" | cut -c1-16).profdata"
mkdir -p "$(dirname "$merged")"
find "$(dirname "$merged")" -name '*.profdata' -mtime +1 -delete
cp "$raw/merged.profdata" "$merged"
RUSTFLAGS="-Cprofile-use=$merged" \
  cargo build --release -p wecom-gateway -p bare-proxy --bins --target-dir target/pgo
echo "pgo: target/pgo/release/wecom-gateway, target/pgo/release/bare-proxy"
