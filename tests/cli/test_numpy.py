"""numpy <-> ndshm tool interop: files written by numpy load in the tool (`ndshm pub`), files
written by the tool (`ndshm cat -o`, `ndshm record`) load in numpy with the right dtype, shape
and values. Every one of the 14 dtypes; 0-d, 1-d, zero-element and 32-d shapes; unsupported
files refused with their status; Fortran-order files with --transpose / --c-order; .npz
archives of numpy.savez and numpy.savez_compressed with --key, and damaged ones refused; shared
arrays (C and Fortran order) printed and saved by `cat`. Runs in a private NDSHM_DIR removed at the end.

usage: /usr/bin/python3 test_numpy.py PATH/TO/ndshm
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64", "complex64", "complex128"]
SHAPES = [(), (7,), (3, 4), (2, 0, 3), (0,), (2, 3, 1, 2), (1,) * 31 + (2,)]


def sample(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape)) if shape else 1
    if dtype == "bool":
        a = rng.integers(0, 2, n).astype(bool)
    elif dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True)
    elif dtype.startswith("complex"):
        a = (rng.standard_normal(n) * 1e3 + 1j * rng.standard_normal(n)).astype(dtype)
    else:
        a = (rng.standard_normal(n) * 100).astype(dtype)
        if n >= 3:
            a[:3] = [np.nan, np.inf, -0.0]
    return a.reshape(shape)


def main():
    cli = os.path.abspath(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix="ndshm-numpy-")
    os.environ["NDSHM_DIR"] = tmp
    failures = []

    def tool(*args, ok=True):
        p = subprocess.run([cli, *args], capture_output=True, text=True, timeout=60)
        if ok and p.returncode != 0:
            raise AssertionError(f"ndshm {' '.join(args)}: exit {p.returncode}: {p.stderr}")
        return p

    try:
        checked = 0
        for i, dt in enumerate(DTYPES):
            for j, shape in enumerate(SHAPES):
                a = sample(dt, shape, i * 100 + j)
                src = os.path.join(tmp, f"in-{dt}-{j}.npy")
                out = os.path.join(tmp, f"out-{dt}-{j}.npy")
                np.save(src, a)                       # written by numpy ...
                name = f"np-{dt}-{j}"
                tool("pub", name, src)                # ... loaded by the tool
                tool("cat", name, "-o", out)          # written by the tool ...
                b = np.load(out)                      # ... loaded by numpy
                if b.dtype != a.dtype or b.shape != a.shape or \
                        not np.array_equal(a, b, equal_nan=(dt[0] in "fc")) or \
                        a.tobytes() != b.tobytes():
                    failures.append(f"{dt} {shape}: got {b.dtype} {b.shape}")
                if not (b.flags.c_contiguous and b.dtype.byteorder in "<|="):
                    failures.append(f"{dt} {shape}: layout {b.flags} {b.dtype.byteorder}")
                checked += 1
                tool("rm", name)
        # every version recorded loads in numpy with its values
        frames = [np.arange(6, dtype=np.int32).reshape(2, 3) * k for k in range(1, 5)]
        files = []
        for k, f in enumerate(frames):
            files.append(os.path.join(tmp, f"frame{k}.npy"))
            np.save(files[-1], f)
        tool("pub", "np-rec", *files, "--slots", "8")
        rec = os.path.join(tmp, "rec")
        tool("record", "np-rec", rec, "--oldest")
        lines = open(os.path.join(rec, "index.csv")).read().split("\n")
        assert lines[0] == "channel,version,publish_ns,latency_ns,dropped,file", lines[0]
        rows = [l.split(",") for l in lines[1:] if l]
        assert [r[0] for r in rows] == ["np-rec"] * 4, rows
        assert [int(r[1]) for r in rows] == [1, 2, 3, 4], rows
        for r, f in zip(rows, frames):
            g = np.load(os.path.join(rec, r[5]))
            assert g.dtype == f.dtype and np.array_equal(g, f), (r, g)
        # what numpy writes that we cannot take: refused with the status, exit 1
        bad = {
            "bigendian": (np.arange(3, dtype=">f4"), "NDSHM_E_DTYPE"),
            "fortran": (np.asfortranarray(np.ones((2, 3))), "NDSHM_E_LIMIT"),
            "unicode": (np.array(["a", "bc"]), "NDSHM_E_DTYPE"),
            "structured": (np.zeros(2, dtype=[("x", "<f4")]), "NDSHM_E_DTYPE"),
            "datetime": (np.array(["2020-01-01"], dtype="M8[D]"), "NDSHM_E_DTYPE"),
            "object": (np.array([1, None], dtype=object), "NDSHM_E_DTYPE"),
        }
        for label, (arr, status) in bad.items():
            path = os.path.join(tmp, f"bad-{label}.npy")
            np.save(path, arr, allow_pickle=True)
            p = tool("pub", "np-bad", path, ok=False)
            if p.returncode != 1 or status not in p.stderr or p.stderr.count("\n") != 1:
                failures.append(f"{label}: exit {p.returncode}, stderr {p.stderr!r}")
        # numpy format versions 2.0 and 3.0 load too
        for ver in [(2, 0), (3, 0)]:
            path = os.path.join(tmp, f"v{ver[0]}.npy")
            with open(path, "wb") as f:
                np.lib.format.write_array(f, np.arange(5, dtype="<u2"), version=ver)
            tool("pub", "np-ver", path)
            p = tool("cat", "np-ver", "--json")
            assert '"data": [0, 1, 2, 3, 4]' in p.stdout, p.stdout
        # Fortran order: refused with a message that offers --transpose and --c-order
        fa = np.asfortranarray(np.arange(24, dtype="<i4").reshape(2, 3, 4))
        fpath = os.path.join(tmp, "fortran.npy")
        np.save(fpath, fa)
        p = tool("pub", "np-f", fpath, ok=False)
        if p.returncode != 1 or "Fortran-order" not in p.stderr or "--transpose" not in p.stderr \
                or "fortran.npy" not in p.stderr:
            failures.append(f"fortran: exit {p.returncode}, stderr {p.stderr!r}")
        out = os.path.join(tmp, "f-out.npy")
        for flag, want in [("--transpose", fa.T), ("--c-order", fa)]:
            tool("pub", "np-f", fpath, flag)
            tool("cat", "np-f", "-o", out)
            got = np.load(out)
            if got.shape != want.shape or not np.array_equal(got, want):
                failures.append(f"fortran {flag}: got {got.shape}, want {want.shape}")
        # .npz archives: numpy.savez (stored) and numpy.savez_compressed (deflate)
        x, y = np.arange(5, dtype=np.int16), np.linspace(0, 1, 6).reshape(2, 3)
        npz = os.path.join(tmp, "two.npz")
        np.savez(npz, x=x, y=y)
        p = tool("pub", "np-z", npz, ok=False)
        if p.returncode != 1 or "an .npz archive of 2 arrays (x, y)" not in p.stderr or \
                "--key" not in p.stderr:
            failures.append(f"npz without --key: exit {p.returncode}, stderr {p.stderr!r}")
        for key, want in [("y", y), ("x.npy", x)]:
            tool("pub", "np-z", npz, "--key", key)
            tool("cat", "np-z", "-o", out)
            got = np.load(out)
            if got.dtype != want.dtype or not np.array_equal(got, want):
                failures.append(f"npz --key {key}: got {got!r}")
        p = tool("pub", "np-z", npz, "--key", "z", ok=False)
        if p.returncode != 1 or "without an array 'z' (its arrays: x, y)" not in p.stderr:
            failures.append(f"npz --key z: exit {p.returncode}, stderr {p.stderr!r}")
        comp = os.path.join(tmp, "comp.npz")
        big = np.arange(10000, dtype=np.float32).reshape(100, 100)
        np.savez_compressed(comp, big)  # one array: no --key needed
        tool("pub", "np-z", comp)
        tool("cat", "np-z", "-o", out)
        if not np.array_equal(np.load(out), big):
            failures.append("savez_compressed: values differ")
        raw = bytearray(open(npz, "rb").read())
        at = raw.find(b"NUMPY") + 60          # inside the first member's data
        raw[at] ^= 0xFF
        bad = os.path.join(tmp, "crc.npz")
        open(bad, "wb").write(bytes(raw))
        p = tool("pub", "np-z", bad, "--key", "x", ok=False)
        if p.returncode != 1 or "CRC-32" not in p.stderr or "crc.npz" not in p.stderr:
            failures.append(f"damaged npz: exit {p.returncode}, stderr {p.stderr!r}")
        open(bad, "wb").write(open(npz, "rb").read()[:-30])   # truncated archive
        p = tool("pub", "np-z", bad, "--key", "x", ok=False)
        if p.returncode != 1 or "crc.npz" not in p.stderr or "archive" not in p.stderr:
            failures.append(f"truncated npz: exit {p.returncode}, stderr {p.stderr!r}")
        # shared arrays: cat prints the logical array as numpy does, cat -o saves it as numpy
        # would (order included)
        for order in "CF":
            arr = np.asarray(np.arange(12, dtype=np.float32).reshape(3, 4) / 8, order=order)
            src = os.path.join(tmp, f"arr-{order}.npy")
            np.save(src, arr)
            tool("array", "create", f"np-arr-{order}", "--from", src)
            p = tool("cat", f"np-arr-{order}")
            text = p.stdout.split("\n", 1)[1].rstrip("\n")
            if text != str(arr):
                failures.append(f"cat of a {order} array:\n{text}\nnumpy:\n{arr}")
            tool("cat", f"np-arr-{order}", "-o", out)
            got = np.load(out)
            if not np.array_equal(got, arr) or got.flags.f_contiguous != (order == "F") or \
                    got.shape != arr.shape:
                failures.append(f"cat -o of a {order} array: {got!r} {got.flags}")
            tool("rm", f"np-arr-{order}")
        left = [f for f in os.listdir(tmp) if f.startswith("ndshm.np-")]
        tool("gc")
        print(f"{checked} dtype/shape round trips through the tool; record and refusals checked")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("FAILURES:\n  " + "\n  ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
