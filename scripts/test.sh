#!/usr/bin/env bash
# The test command: installs a Vulkan driver if the machine has none, then runs every test
# (GPU tests run on every adapter found and fail, never skip, when there is none), then the
# browser suite (scripts/test-browser.sh: the conformance suite in headless Chromium's WebGPU).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-gpu-driver.sh
# Without a display session, Mesa's Vulkan device-select layer prints XDG_RUNTIME_DIR errors
# into every test and example; its own switch keeps it out (as the xent command does).
if [ ! -d "${XDG_RUNTIME_DIR:-}" ] && [ -z "${MESA_VK_DEVICE_SELECT:-}" ]; then
    export NODEVICE_SELECT="${NODEVICE_SELECT:-1}"
fi
start=$SECONDS
# Every crate of the workspace (the library's tests take its `bench` tools, which the
# command's crate enables for the whole build). The build also links the examples, which run
# below as built (`cargo run -p xent` would build xent again with other features).
cargo test --release --workspace --exclude xent-web "$@"
examples="$(scripts/target-dir.sh)/release/examples"
# The pipeline example must converge (it exits non-zero otherwise).
"$examples/train_classifier"
# A byte-level language model trained with fused linear cross-entropy must reach its text's
# bigram entropy (it exits non-zero otherwise).
"$examples/train_bigram_lm"
# A vocabulary split over two adapters must match the unsplit run (it exits non-zero otherwise).
"$examples/sharded_vocab"
echo "main suite: $((SECONDS - start)) s"
# Each crate meant for the registry packages, and builds from its own tarball (a shader or
# file outside a package fails it). A target directory of its own each run: cargo unpacks the
# crates it verifies against under a name made from that directory, once, so a fixed one would
# build a dependent against an earlier run's tarball of xent.
package_dir="$(mktemp -d)"
trap 'rm -rf "$package_dir"' EXIT
cargo package --quiet --allow-dirty --target-dir "$package_dir" -p xent -p xent-conformance -p xent-cli
rm -rf "$package_dir"
# The browser suite, on Chromium's WebGPU (its own script, with its own wall time).
scripts/test-browser.sh
