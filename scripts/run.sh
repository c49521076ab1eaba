#!/usr/bin/env bash
# xent's main job: installs a Vulkan driver if the machine has none, then runs the conformance
# suite (every loss, option and gradient against the float64 reference) on every adapter, and
# a short benchmark against the in-run read ceiling on the best adapter.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-gpu-driver.sh
cargo build --release --bin xent
target/release/xent check "$@"
target/release/xent bench --preset quick
