#!/usr/bin/env bash
# Proves pingora-core-0.9.1/ is the published pingora-core 0.9.1 plus pingora-core-0.9.1.patch.
# `--write` regenerates the patch from the current copy instead.
set -euo pipefail
cd "$(dirname "$0")"
here=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Let cargo fetch the published crate, outside this workspace (whose [patch] would replace it).
mkdir -p "$tmp/probe/src" && touch "$tmp/probe/src/lib.rs"
printf '[package]\nname = "probe"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\npingora-core = { version = "=0.9.1", default-features = false }\n' > "$tmp/probe/Cargo.toml"
cargo fetch -q --manifest-path "$tmp/probe/Cargo.toml"
pristine=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/pingora-core-0.9.1 | head -1)
mkdir "$tmp/a" && cp -r "$pristine/." "$tmp/a/"
rm -f "$tmp/a/Cargo.lock" "$tmp/a/.cargo_vcs_info.json" "$tmp/a/.cargo-ok"
if [ "${1:-}" = "--write" ]; then
    cp -r pingora-core-0.9.1 "$tmp/b"
    (cd "$tmp" && diff -ruN a b || true) | sed -E 's#^(---|\+\+\+) ([ab]/[^\t]*).*#\1 \2#' > pingora-core-0.9.1.patch
    echo "wrote pingora-core-0.9.1.patch"
else
    (cd "$tmp/a" && patch -s -p1 < "$here/pingora-core-0.9.1.patch")
    diff -r "$tmp/a" pingora-core-0.9.1
    echo "pingora-core-0.9.1/ = published pingora-core 0.9.1 + pingora-core-0.9.1.patch"
fi
