#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine: cmake (pingora's build),
# nginx (the differential tests and benchmarks compare against it), redis-server (shared-state
# tests), PCRE2 (nginx's regex dialect), Chromium and its driver (browser tests).
# Safe to run again: it installs only what is missing.
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
[ -x /usr/sbin/nginx ] || need+=(nginx)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
dpkg -s libpcre2-dev >/dev/null 2>&1 || need+=(libpcre2-dev)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# A CJK font, so the browser tests' screenshots show the emulator's Chinese names.
dpkg -s fonts-wqy-zenhei >/dev/null 2>&1 || need+=(fonts-wqy-zenhei)

if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # The packages' own services are not wanted: the tests start nginx and redis themselves.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "deps: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

# Python tools for the SDK-compatibility tests, in a virtualenv of the repository.
if [ -x scripts/python-deps.sh ]; then
  scripts/python-deps.sh
fi
echo "deps: ok"
