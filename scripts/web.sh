#!/usr/bin/env bash
# The browser page (examples/web): `scripts/web.sh build` builds it into target/web;
# `scripts/web.sh serve [PORT]` builds it and serves it on http://127.0.0.1:PORT/ (8000 by
# default) for any WebGPU browser. Installs what the build needs (scripts/setup-browser.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-build}
case "$what" in
build | serve) ;;
*)
    echo "usage: scripts/web.sh build | serve [PORT]" >&2
    exit 2
    ;;
esac
scripts/setup-browser.sh
cargo build --release --target wasm32-unknown-unknown -p xent-web
target=$(scripts/target-dir.sh)
rm -rf "$target/web"
mkdir -p "$target/web"
wasm-bindgen --target web --no-typescript --out-dir "$target/web/pkg" \
    "$target/wasm32-unknown-unknown/release/xent_web.wasm"
cp examples/web/index.html examples/web/main.js examples/web/parse.js "$target/web/"
echo "web: page built in $target/web" >&2
if [ "$what" = serve ]; then
    port=${2:-8000}
    echo "web: open http://127.0.0.1:$port/ in a WebGPU browser (Ctrl-C stops)" >&2
    exec python3 -m http.server "$port" --bind 127.0.0.1 --directory "$target/web"
fi
