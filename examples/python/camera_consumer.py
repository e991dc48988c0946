#!/usr/bin/python3
"""Consume the camera example's frames from Python: mean brightness per frame, frames/s and
write-to-read latency.

    build/bin/camera_pub camera &                  # the C publisher (1080p RGB uint8)
    /usr/bin/python3 examples/python/camera_consumer.py camera

Options: --frames N (stop after N frames; default: until the publisher stops), --view (zero-copy:
compute on shared memory in place and check the frame was not overwritten meanwhile),
--every (every frame in order, reporting drops, instead of always the newest), --timeout S.
The binding is found next to this file (python/ in the repository) or from an install.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "python"))

import numpy as np  # noqa: E402

import ndshm  # noqa: E402
from ndshm import Status  # noqa: E402


def brightness(frame: np.ndarray) -> float:
    """Mean luma (ITU-R BT.601) of an RGB frame, 0..255; the plain mean for other shapes."""
    if frame.ndim == 3 and frame.shape[-1] == 3:
        # Weighted channel sums without a float copy of the whole frame.
        sums = frame.reshape(-1, 3).sum(axis=0, dtype=np.uint64)
        return float(sums @ np.array([0.299, 0.587, 0.114])) / max(frame.shape[0] * frame.shape[1], 1)
    return float(frame.mean()) if frame.size else 0.0


def open_reader(name: str, timeout: float) -> ndshm.Reader:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ndshm.Reader(name)
        except FileNotFoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # the publisher has not started yet


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("channel", nargs="?", default="camera")
    ap.add_argument("--frames", type=int, default=0)
    ap.add_argument("--view", action="store_true")
    ap.add_argument("--every", action="store_true")
    ap.add_argument("--timeout", type=float, default=5.0)
    args = ap.parse_args()

    try:
        reader = open_reader(args.channel, args.timeout)
    except FileNotFoundError:
        print(f"no channel {args.channel!r}: start the publisher first", file=sys.stderr)
        return 1
    n = dropped = overwritten = 0
    lat_ms = []
    t_start = None
    with reader:
        while not args.frames or n < args.frames:
            if args.view:
                status, frame, info = reader.view_next() if args.every else reader.view()
            else:
                status, frame, info = reader.read_next() if args.every else reader.read()
            if status != Status.OK:
                if status == Status.CONTENDED:
                    continue
                w = reader.wait(args.timeout)
                if w == Status.OK:
                    continue
                print(f"stopping: {w.name.lower().replace('_', ' ')}")
                break
            b = brightness(frame)
            if args.view and ndshm.view_check(frame) != Status.OK:
                overwritten += 1  # the writer lapped us while we computed: discard
                continue
            del frame  # a view keeps its mapping while referenced
            n += 1
            dropped += info.dropped
            lat_ms.append(info.latency_ms)
            now = time.monotonic()
            t_start = t_start or now
            fps = (n - 1) / (now - t_start) if now > t_start else 0.0
            print(f"frame {info.version:6d}  shape {info.shape}  brightness {b:7.2f}  "
                  f"latency {info.latency_ms:7.3f} ms  {fps:6.1f} frames/s")
    if lat_ms:
        print(f"{n} frames, {dropped} dropped, {overwritten} overwritten views; latency "
              f"median {float(np.median(lat_ms)):.3f} ms, max {max(lat_ms):.3f} ms")
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
