#!/usr/bin/env bash
# The whole test suite: every crate's unit and integration tests, then the SDK tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# The integration tests spawn the binaries, so build them first, together with the tests: the
# tests' dev-dependencies turn on features of shared crates (tokio's test-util among them), and
# binaries built without them would need a second copy of the whole dependency tree on disk.
cargo build --workspace --bins --tests
# tests/python.rs drives pytest (wechatpy against the qyapi endpoint); here its virtualenv must
# exist, so a missing one fails instead of being skipped.
WGW_REQUIRE_PYTHON=1 cargo nextest run --workspace --no-fail-fast
