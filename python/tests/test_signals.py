"""Ctrl-C: a process blocked in Reader.wait() or frames() gets SIGINT and raises
KeyboardInterrupt promptly (the wait is sliced; the interpreter runs its signal handlers between
slices). Before, wait(None) and frames() could only be killed with SIGKILL and wait(t) raised
only after t seconds."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import ndshm

from conftest import PKG

BLOCKED = r"""
import sys, time
import ndshm
name, how = sys.argv[1], sys.argv[2]
r = ndshm.Reader(name)
r.read()  # consume whatever is there: the wait below blocks
print("blocking", flush=True)
try:
    if how == "wait_forever":
        r.wait(None)
    elif how == "wait_long":
        r.wait(600)
    elif how == "frames":
        for _ in r.frames():
            pass
    elif how == "frames_timeout":
        for _ in r.frames(600, every=True):
            pass
    print("returned without a signal", flush=True)
    sys.exit(3)
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    sys.exit(42)
"""

# Generous: the slices are 50 ms; what matters is "not forever, not the whole timeout".
BOUND_S = 2.0


def _in_kernel_wait(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "S"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.parametrize("how", ["wait_forever", "wait_long", "frames", "frames_timeout"])
def test_sigint_interrupts_a_blocked_wait(name, how):
    with ndshm.Writer(name) as w:  # alive for the whole test: the waits never end on their own
        w.publish(np.arange(2))
        p = subprocess.Popen(
            [sys.executable, "-c", f"import sys; sys.path.insert(0, {PKG!r})\n" + BLOCKED,
             name, how],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            assert p.stdout.readline().strip() == "blocking", p.stderr.read()
            # let it get into the C wait (sleeping in futex), then interrupt
            deadline = time.monotonic() + 30
            while not _in_kernel_wait(p.pid) and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.3)
            assert p.poll() is None, f"returned early: {p.stdout.read()} {p.stderr.read()}"
            t0 = time.monotonic()
            os.kill(p.pid, signal.SIGINT)
            try:
                rc = p.wait(10)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{how}: still blocked 10 s after SIGINT (expected < {BOUND_S} s)")
            elapsed = time.monotonic() - t0
            out = p.stdout.read()
            assert rc == 42 and "KeyboardInterrupt" in out, (rc, out, p.stderr.read())
            assert elapsed < BOUND_S, (
                f"{how}: KeyboardInterrupt {elapsed:.2f} s after SIGINT, expected < {BOUND_S} s"
            )
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_sliced_wait_still_returns_versions_and_timeouts(name):
    """The slicing keeps wait()'s meaning: OK as soon as a version comes, TIMEOUT after the
    whole timeout (not after the first slice), WRITER_GONE when the writer leaves."""
    import threading

    with ndshm.Writer(name) as w, ndshm.Reader(name) as r:
        t0 = time.monotonic()
        assert r.wait(0.3) == ndshm.Status.TIMEOUT
        assert time.monotonic() - t0 >= 0.29  # not cut short at a 50 ms slice
        timer = threading.Timer(0.2, w.publish, args=(np.arange(1),))
        timer.start()
        assert r.wait(60) == ndshm.Status.OK  # woken by the publish, long before 60 s
        timer.join()
        assert r.read()[0] == ndshm.Status.OK
        timer = threading.Timer(0.2, w.close)
        timer.start()
        assert r.wait(None) == ndshm.Status.WRITER_GONE
        timer.join()
    ndshm.unlink(name)
