#!/usr/bin/env bash
# The browser suite: builds the page of examples/web for wasm32 (installing Chromium,
# ChromeDriver and wasm-bindgen-cli when missing, see scripts/setup-browser.sh), then runs it in
# headless Chromium on its WebGPU adapter: every loss on the page's logits and every case of
# `xent check`, against the float64 reference compiled to wasm32. Fails on any failing case,
# when the page finds no WebGPU adapter, and when it does not finish; leaves a screenshot of the
# page in web/page.png of the target directory.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
# The page's input parser, on Node's test runner (Node.js from Debian's packages when missing).
if ! command -v node >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq nodejs >/dev/null
fi
node --test examples/web/parse.test.mjs
scripts/web.sh build
python3 scripts/browser-check.py
echo "browser suite: $((SECONDS - start)) s (with its build)"
