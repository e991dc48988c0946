#!/usr/bin/env bash
# Installs the Debian 12 packages ndshm needs, only those that are missing. Sourced by
# scripts/test.sh and scripts/demo.sh. Needs root (or sudo) when something is missing.
ndshm_install_deps() {
    local pkgs=(build-essential cmake pkg-config git liburcu-dev libcmocka-dev libbenchmark-dev
        libzmq3-dev zlib1g-dev clang libclang-rt-14-dev python3 python3-dev python3-numpy
        python3-pytest python3-pandas python3-xarray spin gnuplot-nox libgstreamer1.0-dev
        libgstreamer-plugins-base1.0-dev gstreamer1.0-tools gstreamer1.0-plugins-base
        gstreamer1.0-plugins-good gstreamer1.0-plugins-bad iceoryx libiceoryx-binding-c-dev "$@")
    local missing=()
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== installing: ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
}
