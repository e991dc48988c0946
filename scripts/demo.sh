#!/usr/bin/env bash
# The demo command: installs what is missing, builds, then runs a camera publisher (synthetic
# 1080p RGB frames at 30 Hz, written in place with loan/commit) and two subscribers: one in C
# (copy, then zero-copy view) and one in Python (numpy), while `ndshm ls` shows the channel.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ndshm_install_deps

cmake -S . -B out/demo -DCMAKE_BUILD_TYPE=Release -DNDSHM_BUILD_BENCH=OFF >/dev/null
cmake --build out/demo -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
bin=out/demo/bin
chan="camera-demo-$$"

echo "== camera_pub publishes 1080p RGB frames on '$chan' for 12 s"
"$bin/camera_pub" "$chan" --rate 30 --seconds 12 &
pub=$!
trap 'kill $pub 2>/dev/null || true' EXIT
sleep 1
echo "== ndshm ls"
"$bin/ndshm" ls || true
echo "== C subscriber, by copy (5 s)"
"$bin/camera_sub" "$chan" --seconds 5
echo "== C subscriber, zero-copy view (2 s)"
"$bin/camera_sub" "$chan" --seconds 2 --view
echo "== Python subscriber (numpy view, 90 frames)"
NDSHM_LIBRARY="$PWD/out/demo/libndshm.so" PYTHONPATH="$PWD/python" \
    /usr/bin/python3 examples/python/camera_consumer.py "$chan" --frames 90 --view || true
wait $pub
echo "== sensor: every 1 kHz sample block in order with read_next (2 s)"
"$bin/sensor" --seconds 2
