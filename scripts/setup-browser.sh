#!/usr/bin/env bash
# Installs what the browser suite needs when it is missing: Debian's Chromium and ChromeDriver,
# Rust's wasm32 target, and wasm-bindgen-cli at exactly the lockfile's wasm-bindgen version
# (its generated JavaScript must match the wasm-bindgen the page links). Idempotent; the first
# wasm-bindgen-cli build takes 4 to 11 minutes on a two-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-wasm-target.sh
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    echo "setup: installing chromium and chromium-driver" >&2
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
if [ -z "$want" ]; then
    echo "setup: Cargo.lock names no wasm-bindgen version" >&2
    exit 1
fi
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$have" != "$want" ]; then
    echo "setup: installing wasm-bindgen-cli $want (was: ${have:-none})" >&2
    # Not --locked: the release's locked dependencies can be newer than the registry serves.
    cargo install --quiet wasm-bindgen-cli --version "=$want"
fi
