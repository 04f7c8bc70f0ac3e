#!/usr/bin/env bash
# Proves each patched copy here (one directory per crate, `<crate>-<version>/`) is the published crate
# plus its `<crate>-<version>.patch`. `--write` regenerates the patches from the current copies.
set -euo pipefail
cd "$(dirname "$0")"
here=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for copy in */; do
    copy=${copy%/}
    crate=${copy%-*}
    version=${copy##*-}
    # Let cargo fetch the published crate, outside this workspace (whose [patch] would replace it).
    mkdir -p "$tmp/$copy/probe/src" && touch "$tmp/$copy/probe/src/lib.rs"
    printf '[package]\nname = "probe"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\n%s = { version = "=%s", default-features = false }\n' \
        "$crate" "$version" > "$tmp/$copy/probe/Cargo.toml"
    cargo fetch -q --manifest-path "$tmp/$copy/probe/Cargo.toml"
    pristine=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$copy" | head -1)
    mkdir "$tmp/$copy/a" && cp -r "$pristine/." "$tmp/$copy/a/"
    rm -f "$tmp/$copy/a/Cargo.lock" "$tmp/$copy/a/.cargo_vcs_info.json" "$tmp/$copy/a/.cargo-ok"
    if [ "${1:-}" = "--write" ]; then
        cp -r "$copy" "$tmp/$copy/b"
        (cd "$tmp/$copy" && diff -ruN a b || true) | sed -E 's#^(---|\+\+\+) ([ab]/[^\t]*).*#\1 \2#' > "$copy.patch"
        echo "wrote $copy.patch"
    else
        (cd "$tmp/$copy/a" && patch -s -p1 < "$here/$copy.patch")
        diff -r "$tmp/$copy/a" "$copy"
        echo "$copy/ = published $crate $version + $copy.patch"
    fi
done
