#!/usr/bin/env bash
# The test command: installs a Vulkan driver if the machine has none, then runs every test
# (GPU tests run on every adapter found and fail, never skip, when there is none).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-gpu-driver.sh
cargo test --release "$@"
# The pipeline example must converge (it exits non-zero otherwise).
cargo run --release --example train_classifier
