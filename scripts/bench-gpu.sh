#!/usr/bin/env bash
# One command for a machine with a real GPU (e.g. a lent H100 with only a driver installed):
# runs xent check, xent bench (with and without subgroups), the test suite and the criterion
# benches from prebuilt binaries in .gpu/, with the Vulkan loader unpacked from .gl/*.deb when
# the machine has none.
#
# Prepare here (x86-64):   scripts/bench-gpu.sh --build
# Run there:               scripts/bench-gpu.sh [OUTPUT_DIR]
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--build" ]; then
    set -e
    mkdir -p .gpu .gl
    target=$(scripts/target-dir.sh)
    cargo build --release -p xent --example every_loss
    cargo build --release -p xent-cli --bin xent
    cp "$target/release/examples/every_loss" "$target/release/xent" .gpu/
    test_bin=$(cargo test --release -p xent --features bench --test all --no-run \
        --message-format=json 2>/dev/null \
        | grep -o '"executable":"[^"]*/all-[^"]*"' | cut -d'"' -f4 | tail -1)
    cp "$test_bin" .gpu/all
    bench_bin=$(cargo bench -p xent --features bench --no-run --bench losses \
        --message-format=json 2>/dev/null \
        | grep -o '"executable":"[^"]*/losses-[^"]*"' | cut -d'"' -f4 | tail -1)
    cp "$bench_bin" .gpu/losses
    if ! compgen -G ".gl/*.deb" >/dev/null; then
        lists=$(mktemp -d); mkdir -p "$lists/partial"
        o="-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=$lists"
        apt-get $o update >/dev/null
        (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
    fi
    ls -l .gpu .gl
    exit 0
fi

out=${1:-gpu-results}
mkdir -p "$out"
if ! ldconfig -p | grep -q 'libvulkan\.so\.1'; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$nvidia_icd" ] && export VK_DRIVER_FILES=$nvidia_icd
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv 2>&1 | tee "$out/gpu.txt"
echo "== xent check (conformance on every adapter)"
.gpu/xent check --json "$out/check.json" 2>&1 | tee "$out/check.txt"
.gpu/every_loss 8192 1000 2>&1 | tee "$out/every_loss.txt"
echo "== xent bench (gpu preset)"
.gpu/xent bench --preset gpu --json "$out/xent_bench.json" --plot "$out/xent_bench.svg" 2>&1 | tee "$out/xent_bench.txt"
echo "== xent bench (gpu preset), rows merged through workgroup memory only"
.gpu/xent bench --preset gpu --no-subgroups --json "$out/xent_bench_no_subgroups.json" 2>&1 | tee "$out/xent_bench_no_subgroups.txt"
echo "== test suite (every adapter)"
timeout 300 .gpu/all --test-threads 8 2>&1 | tail -40 | tee "$out/tests.txt"
echo "== benchmarks"
XENT_BENCH_SET=gpu timeout 300 .gpu/losses --bench 2>&1 | tee "$out/bench_full.txt" \
    | grep -E "^(adapter|read ceiling|case|ce_|bce_|skipping)" | tee "$out/bench.txt"
