#!/usr/bin/env sh
# Installs the Python side of the test suite into .venv: pytest and an unmodified wechatpy 1.8
# from PyPI (with cryptography, which it imports at start-up), which tests/python/test_wechatpy.py drives against the qyapi endpoint.
# Called by `make deps`; safe to run again.
set -eu
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "wechatpy[cryptography]==1.8.18" "pytest>=7,<9" "requests>=2.20"
.venv/bin/python -c "import wechatpy, pytest; print('python deps: wechatpy', wechatpy.__version__, 'pytest', pytest.__version__)"
