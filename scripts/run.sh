#!/usr/bin/env bash
# xent's main job: installs a Vulkan driver if the machine has none, then runs the conformance
# suite (every loss, option and gradient against the float64 reference) on every adapter, and
# a short benchmark against the in-run read ceiling on the best adapter.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-gpu-driver.sh
# Without a display session, Mesa's Vulkan device-select layer prints XDG_RUNTIME_DIR errors
# into every program; its own switch keeps it out (as the xent command itself does).
if [ ! -d "${XDG_RUNTIME_DIR:-}" ] && [ -z "${MESA_VK_DEVICE_SELECT:-}" ]; then
    export NODEVICE_SELECT="${NODEVICE_SELECT:-1}"
fi
cargo build --release -p xent-cli --bin xent
xent="$(scripts/target-dir.sh)/release/xent"
"$xent" check "$@"
plot="$(scripts/target-dir.sh)/bench-quick.svg"
"$xent" bench --preset quick --plot "$plot"
echo "run: the benchmark's plot is $plot" >&2
