#!/usr/bin/env bash
# The GStreamer demo: installs what is missing, builds, then
#   1. gst-launch-1.0 videotestsrc ! 1080p RGB 30 fps ! ndshmsink channel=cam   (12 s)
#   2. the existing consumers read it: `ndshm watch`, the C subscriber (copy, then view),
#      the Python subscriber (numpy view)
#   3. a GStreamer consumer: ndshmsrc channel=cam ! videoconvert ! fakesink (or a display
#      sink when $DISPLAY is set), with the plugin found through GST_PLUGIN_PATH
# docs/gstreamer.md describes the elements.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ndshm_install_deps

cmake -S . -B out/demo -DCMAKE_BUILD_TYPE=Release -DNDSHM_BUILD_BENCH=OFF >/dev/null
cmake --build out/demo -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
bin=out/demo/bin
export GST_PLUGIN_PATH="$PWD/out/demo/lib/gstreamer-1.0"
export GST_REGISTRY_1_0="$PWD/out/demo/gst-registry.bin"
chan="gst-demo-$$"

echo "== gst-inspect-1.0 ndshmsink (excerpt)"
gst-inspect-1.0 ndshmsink | sed -n '/^Element Properties/,$p' | grep -E '^  (channel|slots|zero-copy)'

echo "== gst-launch-1.0 videotestsrc ! 1080p RGB 30 fps ! ndshmsink channel=$chan slots=8 (15 s)"
gst-launch-1.0 -q videotestsrc is-live=true num-buffers=450 \
    ! video/x-raw,format=RGB,width=1920,height=1080,framerate=30/1 \
    ! ndshmsink channel="$chan" slots=8 &
pub=$!
trap 'kill $pub ${gst:-} 2>/dev/null || true' EXIT
for _ in $(seq 100); do "$bin/ndshm" stat "$chan" >/dev/null 2>&1 && break; sleep 0.05; done

sink="fakesink"
[ -n "${DISPLAY:-}" ] && sink="autovideosink"
# The GStreamer consumer runs beside the others until the writer ends; -m prints the bus
# messages (ndshmsrc-writer-gone when the publisher finishes, then EOS).
gst-launch-1.0 -m ndshmsrc channel="$chan" ! videoconvert ! "$sink" >out/demo/gst-consumer.log 2>&1 &
gst=$!

echo "== ndshm watch $chan (2 s)"
"$bin/ndshm" watch "$chan" --for 2 || true
# --no-tag: videotestsrc frames do not carry camera_pub's version tag in their first 8 bytes
echo "== C subscriber, by copy (2 s)"
"$bin/camera_sub" "$chan" --seconds 2 --no-tag
echo "== C subscriber, zero-copy view (2 s)"
"$bin/camera_sub" "$chan" --seconds 2 --view --no-tag
echo "== Python subscriber (numpy view, 60 frames)"
NDSHM_LIBRARY="$PWD/out/demo/libndshm.so" PYTHONPATH="$PWD/python" \
    /usr/bin/python3 examples/python/camera_consumer.py "$chan" --frames 60 --view || true

wait $pub || true
wait $gst || true
echo "== gst-launch-1.0 ndshmsrc channel=$chan ! videoconvert ! $sink (ran beside the others)"
echo "   $(grep -c 'ndshmsrc-drop' out/demo/gst-consumer.log || true) ndshmsrc-drop messages (latest mode skips what the pipeline cannot take); the last lines:"
grep -E 'ndshmsrc-|EOS|ERROR|Execution ended' out/demo/gst-consumer.log | tail -4 || true
echo "== done"
