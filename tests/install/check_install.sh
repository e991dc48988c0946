#!/usr/bin/env bash
# Installs the build into a temporary prefix, then builds the quick start against it twice:
# with find_package(ndshm) (CMake package config) and with pkg-config (ndshm.pc), and runs it.
# Usage: check_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
mkdir -p "$tmp/app"
cp "$src/examples/quickstart.c" "$tmp/app/"
cat >"$tmp/app/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(consumer C)
find_package(ndshm REQUIRED)
add_executable(qs quickstart.c)
target_link_libraries(qs ndshm::ndshm)
CM
export NDSHM_DIR="$tmp"   # keep the quick start's channel out of /dev/shm
cmake -S "$tmp/app" -B "$tmp/app/b" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/app/b" >/dev/null
LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/app/b/qs"
cc "$tmp/app/quickstart.c" $(PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig" pkg-config --cflags --libs ndshm) \
    -o "$tmp/qs-pc"
LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/qs-pc"
test -x "$tmp/prefix/bin/ndshm"
echo "install: find_package and pkg-config consumers built and ran"
