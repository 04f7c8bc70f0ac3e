#!/usr/bin/env bash
# The whole test suite: every crate's unit and integration tests, then the SDK tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# The integration tests spawn the binaries, so build them first.
cargo build --workspace --bins
cargo nextest run --workspace --no-fail-fast

if [ -d tests/python ] && [ -x .venv/bin/pytest ]; then
  .venv/bin/pytest -q tests/python
fi
