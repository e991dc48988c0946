#!/usr/bin/python3
"""Python benchmark of ndshm: write-to-read latency and read cost from Python, against the
C-to-C path measured in the same run.

A paced C publisher (ndshm-pybench-c pub) publishes arrays of 64 B, 4 KiB, 1 MiB and a 1080p
RGB frame; a reader waits (futex) for each version and reads it:

  C copy     ndshm_read_latest into a preallocated buffer (C program)      -- the reference
  C view     ndshm_view_latest + ndshm_view_release (C program)
  Py copy    Reader.read(): a fresh private ndarray per version
  Py out=    Reader.read(out=buf): copy into a preallocated ndarray
  Py view    Reader.view() + ndshm.view_check(): a read-only ndarray over shared memory
  Py out= ctypes, Py view ctypes: the same calls through the binding's pure-Python ctypes
             path (Reader._read / Reader._view, what NDSHM_PY_FAST=0 uses), in the same run,
             when the extension ndshm._fast is in use (docs/python.md, "Speed")

latency = reader's CLOCK_MONOTONIC once the array is usable (in Python: after the call
returned; for views after view_check and dropping the array, which releases the view) minus
the writer's publish time; call = duration of the read or view call alone (Python:
time.monotonic_ns() before and after, the same clock, ~0.05 us per pair included); rate =
1 / mean call time, the reads per second one reader thread could sustain. Medians over all
versions of all rounds; rounds interleave the readers so drift hits all of them alike.

The ndsharray face: a Python writer process (NdShArray(r_w='w').write) and a Python reader
(NdShArray(r_w='r').read, polling) on 1080p frames; per frame = write() + read() latency,
compared with the 13 ms ndsharray itself takes for a 1080p frame on this machine.

  /usr/bin/python3 bench/python/bench_py.py [--rounds 3] [--count 200]
Environment: NDSHM_LIBRARY (libndshm.so), NDSHM_PYBENCH_C (ndshm-pybench-c); by default both
are taken from the first build*/ directory of the repository.
"""

import argparse
import glob
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "python"))

import numpy as np  # noqa: E402

import ndshm  # noqa: E402
from ndshm import Status, _lib, core  # noqa: E402

FAST = core._fast is not None

SIZES = [  # label, dtype code, shape, publish period (us)
    ("64 B", 6, (64,), 1000),
    ("4 KiB", 6, (4096,), 1000),
    ("1 MiB", 6, (1 << 20,), 3000),
    ("1080p RGB", 6, (1080, 1920, 3), 6000),
]
NDSHARRAY_1080P_MS = 13.0  # ndsharray's own figure for a 1080p frame on this machine


def find_c_bench() -> str:
    p = os.environ.get("NDSHM_PYBENCH_C")
    if p:
        return p
    for cand in sorted(glob.glob(os.path.join(REPO, "build*", "bin", "ndshm-pybench-c"))):
        return cand
    sys.exit("ndshm-pybench-c not found: build the project or set NDSHM_PYBENCH_C")


class Pub:
    def __init__(self, cbench, name, code, shape, period_us, count):
        args = [cbench, "pub", name, str(period_us), str(count), str(code), str(len(shape))]
        self.p = subprocess.Popen(
            args + [str(s) for s in shape], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True,
        )
        assert self.p.stdout.readline().strip() == "ready"

    def go(self):
        self.p.stdin.write("go\n")
        self.p.stdin.flush()

    def close(self):
        self.p.stdin.close()
        self.p.wait(30)


def run_c(cbench, name, mode, count):
    r = subprocess.Popen([cbench, "read", name, str(count), mode], stdout=subprocess.PIPE,
                         text=True)
    assert r.stdout.readline().strip() == "ready"
    return r


def collect_c(r):
    lat, call = [], []
    for line in r.stdout:
        if line.strip() == "end":
            break
        a, b = line.split()
        lat.append(int(a))
        call.append(int(b))
    r.wait(30)
    return lat, call


def run_py(name, mode, count):
    lat, call = [], []
    clock = time.monotonic_ns  # CLOCK_MONOTONIC, as ndshm.now_ns() and info.publish_ns
    ctypes_path = mode.endswith("-ctypes")
    mode = mode.replace("-ctypes", "")
    with ndshm.Reader(name) as r:
        if ctypes_path:  # the pure-Python path the extension replaces (NDSHM_PY_FAST=0)
            rd = ndshm.Reader._read
            vw = ndshm.Reader._view
            read_latest, view_latest = _lib.read_latest, _lib.lib.ndshm_view_latest

            def read(out=None):
                return rd(r, read_latest, out)

            def view():
                return vw(r, view_latest)
        else:
            read, view = r.read, r.view
        out = None
        yield  # the publisher starts now
        while len(lat) < count:
            if r.wait(2.0) != Status.OK:
                break
            t0 = clock()
            if mode == "copy":
                st, a, info = read()
                t1 = t2 = clock()
            elif mode == "out":
                if out is None:
                    st, a, info = read()
                    out = np.empty_like(a) if st == Status.OK else None
                    continue  # the first read sizes the buffer: not timed
                st, a, info = read(out=out)
                t1 = t2 = clock()
            else:
                st, a, info = view()
                t1 = clock()
                if st == Status.OK and ndshm.view_check(a) != Status.OK:
                    st = Status.OVERWRITTEN
                del a
                t2 = clock()
            if st == Status.OK:
                lat.append(t2 - info.publish_ns)
                call.append(t1 - t0)
    yield lat, call


PY_MODES = {"Py copy": "copy", "Py out=": "out", "Py view": "view",
            "Py out= ctypes": "out-ctypes", "Py view ctypes": "view-ctypes"}


def one(cbench, reader, code, shape, period, count, tag):
    name = f"pybench-{os.getpid()}-{tag}"
    pub = Pub(cbench, name, code, shape, period, count)
    try:
        if reader.startswith("C "):
            r = run_c(cbench, name, reader.split()[1], count)
            pub.go()
            res = collect_c(r)
        else:
            g = run_py(name, PY_MODES[reader], count)
            next(g)
            pub.go()
            res = next(g)
    finally:
        pub.close()
        ndshm.unlink(name, missing_ok=True)
    return res


FACE_WRITER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from ndshm.compat.ndsharray import NdShArray
name, count, period = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
frame = (np.arange(1080 * 1920 * 3) % 251).astype(np.uint8).reshape(1080, 1920, 3)
w = NdShArray(name, frame, r_w='w')
print('ready', flush=True)
sys.stdin.readline()
times = []
t = time.monotonic()
for i in range(count):
    t += period
    time.sleep(max(0.0, t - time.monotonic()))
    frame[0, 0, 0] = i % 256
    t0 = time.perf_counter_ns()
    w.write(frame)
    times.append(time.perf_counter_ns() - t0)
print(' '.join(map(str, times)), flush=True)
sys.stdin.readline()
w.close()
"""


def face(count):
    from ndshm.compat.ndsharray import NdShArray

    name = f"pybench-{os.getpid()}-face"
    w = subprocess.Popen(
        [sys.executable, "-c", FACE_WRITER, os.path.join(REPO, "python"), name, str(count),
         "0.008"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert w.stdout.readline().strip() == "ready"
        r = NdShArray(name, r_w="r")
        r.read()  # the initial frame
        w.stdin.write("go\n")
        w.stdin.flush()
        read_ms, call_ns = [], []
        deadline = time.monotonic() + count * 0.008 + 5
        while len(read_ms) < count and time.monotonic() < deadline:
            t0 = time.perf_counter_ns()
            ok, arr = r.read()
            t1 = time.perf_counter_ns()
            if ok:  # True only for a new array
                read_ms.append(r.read_time_ms)
                call_ns.append(t1 - t0)
            else:
                time.sleep(0)
        write_ns = [int(x) for x in w.stdout.readline().split()]
        w.stdin.write("x\n")
        w.stdin.flush()
        w.wait(30)
        r.close()
    finally:
        if w.poll() is None:
            w.kill()
        ndshm.unlink(name, missing_ok=True)
    return write_ns, read_ms, call_ns


def med_us(xs):
    return statistics.median(xs) / 1e3 if xs else float("nan")


def p99_us(xs):
    return float(np.percentile(xs, 99)) / 1e3 if xs else float("nan")


def per_call(n):
    """Warm per-call cost at 64 B in this process, in one cache state for all: n times
    publish one 64 B version (Python writer), then time one call with a pair of clock reads;
    medians minus the median of an empty pair (measured the same way). Rows: the extension's
    read(out=)/view(), the ctypes path's (Reader._read/_view, as NDSHM_PY_FAST=0) and the C
    calls themselves (ndshm._fast.bench_c: ndshm_read_latest, view_latest + view_release,
    timed in C). view() includes dropping the array (which releases the view), as C's does."""
    name = f"pybench-{os.getpid()}-percall"
    clk = time.monotonic_ns
    res = {}
    with ndshm.Writer(name, unlink_on_close=True, slots=4) as w, ndshm.Reader(name) as r:
        a = np.arange(64, dtype=np.uint8)
        out = np.empty(64, np.uint8)
        rd, vw = ndshm.Reader._read, ndshm.Reader._view
        read_latest, view_latest = _lib.read_latest, _lib.lib.ndshm_view_latest
        calls = {
            "read(out=) ctypes": lambda: rd(r, read_latest, out),
            "view() ctypes": lambda: vw(r, view_latest),
        }
        if FAST:
            calls = {"read(out=) extension": lambda: r.read(out=out),
                     "view() extension": r.view, **calls}
        publish = w.publish
        rounds = {k: [] for k in calls}
        rounds["clock pair"] = []
        for _ in range(3):  # interleaved, so drift hits every row alike
            for k, f in calls.items():
                ts = rounds[k]
                for _ in range(n):
                    publish(a)
                    t0 = clk()
                    st, x, info = f()
                    del x
                    t1 = clk()
                    if st is not Status.OK:
                        raise RuntimeError(f"{k}: {st!r}")
                    ts.append(t1 - t0)
            ts = rounds["clock pair"]
            for _ in range(n):
                publish(a)
                t0 = clk()
                t1 = clk()
                ts.append(t1 - t0)
        pair = statistics.median(rounds.pop("clock pair")) / 1e3
        for k, ts in rounds.items():
            res[k] = statistics.median(ts) / 1e3 - pair
        if FAST:
            for k, what in (("C read_latest", 0), ("C view + release", 1)):
                ts = []
                for _ in range(3):
                    ts += core._fast.bench_c(w._h, r._h, out, n, what)
                c_pair = statistics.median(core._fast.bench_c(w._h, r._h, out, n, 2))
                res[k] = (statistics.median(ts) - c_pair) / 1e3
    return res, pair


def print_per_call(n):
    res, pair = per_call(n)
    print(f"Python per call, 64 B, warm (one process, publish then one timed call; medians of "
          f"3 x {n}, minus the clock pair of {pair:.3f} us; goals: issue 15 goal 4):\n")
    print("| call | us per call | vs C call | vs extension |")
    print("|---|---:|---:|---:|")
    for op, c_key in (("read(out=)", "C read_latest"), ("view()", "C view + release")):
        ext = res.get(f"{op} extension")
        for k in (f"{op} extension", f"{op} ctypes", c_key):
            if k not in res:
                continue
            us = res[k]
            vs_c = f"{us / res[c_key]:.1f}x" if c_key in res else "n/a"
            vs_e = f"{us / ext:.1f}x" if ext else "n/a"
            print(f"| {k} | {us:.2f} | {vs_c} | {vs_e} |")
    print()
    for op, goal in (("read(out=)", 1.5), ("view()", 2.0)):
        k = f"{op} extension" if FAST else f"{op} ctypes"
        print(f"- {k}: {res[k]:.2f} us per call (goal <= {goal} us) "
              f"{'MET' if res[k] <= goal else 'MISSED'}")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--count", type=int, default=200, help="versions per size, reader, round")
    ap.add_argument("--no-face", action="store_true", help="skip the ndsharray face")
    ap.add_argument("--per-call", type=int, default=20000, metavar="N",
                    help="calls per row and round of the warm per-call rows (0: skip)")
    ap.add_argument("--per-call-only", action="store_true",
                    help="only the warm per-call rows")
    args = ap.parse_args()
    if args.per_call_only:
        print_per_call(args.per_call or 20000)
        return
    cbench = find_c_bench()
    readers = ["C copy", "Py copy", "Py out=", "C view", "Py view"]
    if FAST:
        readers[3:3] = ["Py out= ctypes"]
        readers.append("Py view ctypes")
    res = {}
    for rnd in range(args.rounds):
        for label, code, shape, period in SIZES:
            for rd in readers:
                tag = f"{rnd}-{label.split()[0]}-{rd.replace(' ', '').replace('=', '')}"
                lat, call = one(cbench, rd, code, shape, period, args.count, tag)
                d = res.setdefault((label, rd), ([], []))
                d[0].extend(lat)
                d[1].extend(call)

    path = f"extension {os.path.basename(core.fast_path)}" if FAST else \
        f"ctypes path ({core.fast_error})"
    print(f"ndshm {ndshm.library_version()}, numpy {np.__version__}, "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
          f"{args.rounds} rounds x {args.count} versions per cell; Python reads: {path}\n")
    if args.per_call:
        print_per_call(args.per_call)
    print("Cross-process, after a futex wake (cold caches):\n")
    print("| size | reader | latency median (us) | latency p99 (us) | call median (us) "
          "| rate (reads/s) | vs C copy (latency) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, *_ in SIZES:
        ref = med_us(res[(label, "C copy")][0])
        for rd in readers:
            lat, call = res[(label, rd)]
            rate = 1e9 / statistics.mean(call) if call else float("nan")
            print(f"| {label} | {rd} | {med_us(lat):.1f} | {p99_us(lat):.1f} | "
                  f"{med_us(call):.1f} | {rate:,.0f} | {med_us(lat) / ref:.2f}x |")
    print()
    c_ref = med_us(res[("1080p RGB", "C copy")][0])
    py_copy = med_us(res[("1080p RGB", "Py copy")][0])
    py_out = med_us(res[("1080p RGB", "Py out=")][0])
    v_big = med_us(res[("1080p RGB", "Py view")][0])
    v_small = med_us(res[("64 B", "Py view")][0])
    print("Python per call, 64 B, cross-process after a wake (call medians of the table):")
    c_copy = med_us(res[("64 B", "C copy")][1])
    c_view = med_us(res[("64 B", "C view")][1])
    for what, rd, ref, ref_name in (
        ("read(out=)", "Py out=", c_copy, "C copy"),
        ("view()    ", "Py view", c_view, "C view (+ release)"),
    ):
        us = med_us(res[("64 B", rd)][1])
        line = (f"- {what} {'extension' if FAST else 'ctypes path'} {us:.2f} us = "
                f"{us / ref:.1f}x the {ref_name} call ({ref:.2f} us)")
        if FAST:
            slow = med_us(res[("64 B", rd + " ctypes")][1])
            line += f"; ctypes path {slow:.2f} us ({slow / us:.1f}x the extension)"
        print(line)
    print()
    print("Targets (ratios of medians, same run):")
    print(f"- 1080p C writer -> Python copy, read():     {py_copy / c_ref:.2f}x the C-to-C copy "
          f"(target < 2x) {'MET' if py_copy / c_ref < 2 else 'MISSED'}")
    print(f"- 1080p C writer -> Python copy, read(out=): {py_out / c_ref:.2f}x the C-to-C copy "
          f"(target < 2x) {'MET' if py_out / c_ref < 2 else 'MISSED'}")
    print(f"- Python view, 1080p vs 64 B:                {v_big / v_small:.2f}x "
          f"(target <= 2x) {'MET' if v_big / v_small <= 2 else 'MISSED'}")
    if args.no_face:
        return
    write_ns, read_ms, call_ns = face(args.count)
    per_frame_ms = med_us(write_ns) / 1e3 + statistics.median(read_ms)
    print(f"- ndsharray face, 1080p: write() {med_us(write_ns):.0f} us + read latency "
          f"{statistics.median(read_ms) * 1e3:.0f} us (read() call {med_us(call_ns):.0f} us) "
          f"= {per_frame_ms:.2f} ms per frame: {NDSHARRAY_1080P_MS / per_frame_ms:.1f}x faster "
          f"than ndsharray's {NDSHARRAY_1080P_MS:.0f} ms (target >= 20x) "
          f"{'MET' if NDSHARRAY_1080P_MS / per_frame_ms >= 20 else 'MISSED'}")


if __name__ == "__main__":
    main()
