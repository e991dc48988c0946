#!/usr/bin/env bash
# camera_pub -> ndshm-bridge send -> recv -> camera_sub on the republished channel, on this host
# (a ctest check): every frame must carry its origin version (camera_sub checks the tag the
# publisher wrote against ndshm_info.origin_version).
# Usage: camera_bridged.sh CAMERA_PUB CAMERA_SUB NDSHM_BRIDGE [FRAMES]
# (320x240 frames: under ThreadSanitizer every byte copied through shared memory is an
# instrumented atomic, and three copies of 640x480 frames took two minutes for 30 frames.)
set -euo pipefail
pub=$1 sub=$2 bridge=$3 frames=${4:-10}
src="camera-src-$$" dst="camera-dst-$$"
dir=$(mktemp -d)
# the channels live in the test's own directory, removed with it: the receiver leaves its
# channel behind when it is stopped (a bridge's consumers may still be reading)
export NDSHM_DIR="$dir/shm"
mkdir "$NDSHM_DIR"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"' EXIT
"$pub" "$src" --rate 30 --seconds 600 --width 320 --height 240 >/dev/null &
pids+=($!)
"$bridge" send "$src" "ipc://$dir/cam.ipc" --latest --stats 0 >"$dir/send.log" 2>&1 &
pids+=($!)
"$bridge" recv "ipc://$dir/cam.ipc" "$dst" --stats 0 >"$dir/recv.log" 2>&1 &
pids+=($!)
if ! "$sub" "$dst" --frames "$frames" --seconds 120; then
    cat "$dir/send.log" "$dir/recv.log" >&2
    exit 1
fi
