"""The camera consumer example (examples/python/camera_consumer.py) against a synthetic
camera published from Python: frames of known brightness."""

import os
import queue
import re
import subprocess
import sys
import threading
import time

import numpy as np

import ndshm

from conftest import REPO

EXAMPLE = os.path.join(REPO, "examples", "python", "camera_consumer.py")


def attached(pid, name):
    try:
        with open(f"/proc/{pid}/maps") as f:
            return f"/ndshm.{name}" in f.read()
    except FileNotFoundError:
        return False


def run_camera(name, levels, *flags):
    """Publish one frame per level, each only once the consumer has reported the previous
    one (it prints a line per frame): the consumer gets every frame however slow it or this
    machine is; 60 s per frame is only a bound for a stalled machine."""
    with ndshm.Writer(name) as w:
        frame = np.zeros((1080, 1920, 3), np.uint8)
        p = subprocess.Popen(
            [sys.executable, "-u", EXAMPLE, name, "--frames", str(len(levels)), "--every",
             "--timeout", "60", *flags],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in p.stdout] + [lines.put(None)],
                         daemon=True).start()
        # wait until the consumer has attached (its maps hold the control segment), so
        # read_next gives it every frame from the first on
        deadline = time.monotonic() + 60
        while not attached(p.pid, name):
            assert p.poll() is None and time.monotonic() < deadline, p.stderr.read()
            time.sleep(0.01)
        out = []
        for level in levels:
            frame[...] = level
            w.publish(frame)
            while True:  # until the consumer's line for this frame
                try:
                    line = lines.get(timeout=60)
                except queue.Empty:
                    raise AssertionError(f"expected a line for the frame of level {level} "
                                         f"within 60 s; got none after {out}")
                assert line is not None, f"the consumer ended early: {out} {p.stderr.read()}"
                out.append(line)
                if line.startswith("frame "):
                    break
        p.wait(timeout=60)
        err = p.stderr.read()
    assert p.returncode == 0, err
    return "".join(out) + "".join(iter(lines.get, None))


def check_output(out, levels):
    got = [float(m) for m in re.findall(r"brightness\s+([\d.]+)", out)]
    assert len(got) == len(levels), out
    # BT.601 weights sum to 1: a grey frame's brightness is its level
    assert np.allclose(got, levels, atol=0.01), (got, levels)
    assert re.search(r"latency median [\d.]+ ms", out)


def test_camera_consumer_copy(name):
    levels = [10, 50, 128, 200, 255]
    check_output(run_camera(name, levels), levels)


def test_camera_consumer_view(name):
    levels = [0, 1, 99]
    check_output(run_camera(name, levels, "--view"), levels)
