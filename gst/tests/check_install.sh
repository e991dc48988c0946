#!/usr/bin/env bash
# `cmake --install` puts the plugin under the prefix (NDSHM_GST_PLUGINDIR, relative to it),
# where GStreamer finds it through GST_PLUGIN_PATH; the installed plugin carries its own copy
# of the library (no libndshm.so needed) and runs a pipeline.
# Usage: check_install.sh BUILD_DIR PLUGINDIR
set -euo pipefail
build=$1 plugindir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
case $plugindir in /*) dir=$plugindir ;; *) dir=$tmp/prefix/$plugindir ;; esac
so=$dir/libgstndshm.so
test -f "$so" || { echo "FAIL: $so not installed" >&2; exit 1; }
deps=$(ldd "$so")
if grep -q libndshm <<<"$deps"; then
    echo "FAIL: the installed plugin needs libndshm.so" >&2; exit 1
fi
export GST_PLUGIN_PATH=$dir GST_REGISTRY_1_0=$tmp/registry.bin NDSHM_DIR=$tmp
gst-inspect-1.0 ndshmsink >/dev/null
gst-launch-1.0 -q videotestsrc num-buffers=5 ! ndshmsink channel=installed unlink-on-close=false \
    sync=false
gst-launch-1.0 -q ndshmsrc channel=installed ! fakesink num-buffers=1
echo "install: plugin in $dir found through GST_PLUGIN_PATH and working"
