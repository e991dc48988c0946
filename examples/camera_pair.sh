#!/usr/bin/env bash
# Runs camera_pub and camera_sub together (the demo, and a ctest check): the publisher runs
# until both subscribers are done, each subscriber stops after FRAMES frames (at most 60 s).
# Usage: camera_pair.sh CAMERA_PUB CAMERA_SUB [FRAMES]
set -euo pipefail
pub=$1 sub=$2 frames=${3:-60}
chan="camera-demo-$$"
"$pub" "$chan" --rate 30 --seconds 600 &
pubpid=$!
trap 'kill $pubpid 2>/dev/null || true' EXIT
"$sub" "$chan" --frames "$frames" --seconds 60
"$sub" "$chan" --frames "$((frames / 2))" --seconds 60 --view
kill -TERM $pubpid
wait $pubpid
