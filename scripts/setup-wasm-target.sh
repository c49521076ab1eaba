#!/usr/bin/env bash
# Adds Rust's wasm32-unknown-unknown target (for the browser build check) when it is missing.
# Idempotent.
set -euo pipefail
if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    exit 0
fi
echo "setup: adding the wasm32-unknown-unknown target" >&2
rustup target add wasm32-unknown-unknown
