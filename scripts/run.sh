#!/usr/bin/env bash
# xent's main job: installs a Vulkan driver if the machine has none, then computes every loss on
# a generated batch on the best adapter and compares each with the float64 reference.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-gpu-driver.sh
cargo run --release --example every_loss "$@"
