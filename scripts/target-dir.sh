#!/usr/bin/env bash
# Prints the workspace's target directory as cargo uses it (CARGO_TARGET_DIR, a config's
# build.target-dir, or target/ here), for scripts that read what cargo built. Sourced or run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
