#!/usr/bin/env bash
# Runs camera_pub and camera_sub together for a few seconds (the demo, and a ctest check).
# Usage: camera_pair.sh CAMERA_PUB CAMERA_SUB [SECONDS]
set -euo pipefail
pub=$1 sub=$2 secs=${3:-3}
chan="camera-demo-$$"
"$pub" "$chan" --rate 30 --seconds "$((secs + 1))" &
pubpid=$!
trap 'kill $pubpid 2>/dev/null || true' EXIT
"$sub" "$chan" --seconds "$secs"
"$sub" "$chan" --seconds 1 --view
wait $pubpid
