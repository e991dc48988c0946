"""Torn-read check from Python: a free-running C writer publishes checksummed uint64 arrays
(a[0] = its version v, a[i] = v * K + i; sizes vary, the channel re-allocates); Python
readers verify every array they accept, by copy and by view, for a few seconds.
NDSHM_PY_TORN_SECONDS sets the duration (default 3 s; NDSHM_SOAK=1 makes it 60 s)."""

import os
import subprocess
import time

import numpy as np

import ndshm
from ndshm import Status

K = np.uint64(0x9E3779B97F4A7C15)


def seconds() -> float:
    if os.environ.get("NDSHM_SOAK") == "1":
        return 60.0
    return float(os.environ.get("NDSHM_PY_TORN_SECONDS", "3"))


def intact(a: np.ndarray, info) -> bool:
    """The array is exactly version info.version (payload and metadata from one version)."""
    n = a.shape[0]
    if a.dtype != np.uint64 or a.ndim != 1 or n < 1 or int(a[0]) != info.version:
        return False
    with np.errstate(over="ignore"):
        expect = np.uint64(info.version) * K + np.arange(n, dtype=np.uint64)
    return bool(np.array_equal(a[1:], expect[1:]))


def test_no_torn_array_accepted(peer_path, name):
    # The writer publishes for `secs`, then until we have read enough of both kinds (SIGTERM),
    # so the counts below do not depend on how much CPU this process got.
    secs = seconds()
    p = subprocess.Popen(
        [peer_path, "torn", name, str(secs)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout.readline().strip() == "ready"
        counts = {"copy_ok": 0, "view_ok": 0, "torn": 0, "overwritten": 0, "contended": 0, "caught_torn": 0}
        last_version = 0
        t_end = time.monotonic() + secs
        stop_sent = False
        with ndshm.Reader(name) as r:
            use_view = False
            while True:
                if (not stop_sent and time.monotonic() >= t_end and counts["copy_ok"] > 10
                        and counts["view_ok"] > 10):
                    p.terminate()  # enough: let the writer finish
                    stop_sent = True
                use_view = not use_view  # alternate: both paths get the same chances
                if not use_view:
                    # copy: every OK array must be intact
                    status, a, info = r.read()
                    if status == Status.OK:
                        assert info.version > last_version
                        last_version = info.version
                        counts["copy_ok" if intact(a, info) else "torn"] += 1
                else:
                    # view: verify in place, then accept only if the check says it held
                    status, v, info = r.view()
                    if status == Status.OK:
                        good = intact(v, info)
                        if ndshm.view_check(v) != Status.OK:
                            counts["overwritten"] += 1
                            # what the check saved us from: the checksum saw the tearing too
                            counts["caught_torn"] += not good
                        else:
                            counts["view_ok" if good else "torn"] += 1
                        del v
                if status == Status.CONTENDED:
                    counts["contended"] += 1
                elif status != Status.OK and r.wait(0.5) == Status.WRITER_GONE:
                    break
        done = p.stdout.readline().split()
        assert done[:1] == ["done"] and done[2] == "NDSHM_OK", done
        print(f"\ntorn check: writer published {done[1]} versions; reader {counts}")
        assert counts["torn"] == 0, counts
        assert counts["copy_ok"] > 10 and counts["view_ok"] > 10, (
            f"expected more than 10 intact copies and views while the writer ran "
            f"({secs} s, then up to 300 s more); got {counts}")
    finally:
        p.kill()
        p.wait()
