#!/usr/bin/env bash
# Makes sure a Vulkan loader and at least one Vulkan driver are installed. On a machine without
# a GPU this installs Mesa's software driver (lavapipe), so xent and its tests run anywhere.
# Idempotent: does nothing when a loader and a driver are already present.
set -euo pipefail

have_loader() { ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; }
have_driver() {
    local d
    for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
        compgen -G "$d/*.json" >/dev/null && return 0
    done
    return 1
}

if have_loader && have_driver; then
    exit 0
fi

echo "setup: no Vulkan loader or driver found; installing libvulkan1 and mesa-vulkan-drivers" >&2
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq libvulkan1 mesa-vulkan-drivers >/dev/null
have_loader && have_driver || { echo "setup: Vulkan is still missing after the install" >&2; exit 1; }
