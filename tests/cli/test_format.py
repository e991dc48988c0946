"""`ndshm echo` / `ndshm cat` print arrays exactly as numpy does: str(a) (what print(a) shows)
and repr(a), compared character for character with the numpy of this machine (Debian's
python3-numpy), for every dtype, 0-d to 4-d, special values (nan, inf, -0.0, subnormals, the
float16 range), magnitudes that switch numpy to exponential notation, line wrapping and the
summarised output of arrays over the threshold; numpy's print options (--linewidth,
--precision, --threshold, --edgeitems) against numpy.printoptions; --slice against numpy
indexing, including numpy's IndexError text. Runs in a private NDSHM_DIR removed at the end.

usage: /usr/bin/python3 test_format.py PATH/TO/ndshm
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64", "complex64", "complex128"]
FLOATS = ["float16", "float32", "float64", "complex64", "complex128"]


def cases():
    rng = np.random.default_rng(2024)
    out = []
    with np.errstate(all="ignore"):
        for dt in DTYPES:
            for shape in [(), (1,), (5,), (3, 4), (2, 3, 4), (2, 1, 2, 3), (0,), (2, 0), (30,),
                          (7, 13)]:
                n = int(np.prod(shape))
                if dt == "bool":
                    a = rng.integers(0, 2, n).astype(bool)
                elif dt.startswith(("int", "uint")):
                    info = np.iinfo(dt)
                    a = rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
                else:
                    a = (rng.standard_normal(n) * 10.0 ** rng.integers(-6, 9)).astype(dt)
                    if dt.startswith("complex"):
                        a = a + 1j * (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 5))
                        a = a.astype(dt)
                out.append(a.reshape(shape))
        special = [[0.5, -1.25, 3.0], [1, 2, 3], [0.1, 0.2, 0.3], [1e-5, 1.5], [1e-5, 1e10],
                   [np.nan, 1.0], [np.inf, -np.inf, np.nan], [np.nan], [np.inf], [-np.inf, 2.5],
                   [0.0, -0.0], [1e8, 1], [0.0001, 0.1], [1e-4, 0.11], [0.001953125, 1.0],
                   [123456789.0], [1 / 3, 2 / 3], [1e100, 1e-100], [5e-324, 1.0], [65504, 1],
                   [18672.0, 3.0], [1.2345678e15, 1.0], [999.5, 1.0], [1e16, 1.0]]
        for dt in FLOATS:
            for vals in special:
                a = np.array(vals, dtype=dt)
                out += [a, a[0].reshape(())]
                if dt.startswith("complex"):
                    out += [a * 1j, a + 1j * a[::-1], (a * 1j)[0].reshape(()),
                            (a + 1j)[0].reshape(())]
        for i in range(400):  # random magnitudes and roundings
            dt = FLOATS[i % 5]
            n = int(rng.integers(1, 12))
            a = (rng.standard_normal(n) * 10.0 ** rng.integers(-10, 12, n)).astype(dt)
            if i % 7 == 0:
                a = np.round(a, int(rng.integers(0, 4))).astype(dt)
            out.append(a)
        for dt in ["int32", "float64", "float32", "bool", "complex64", "uint8", "int64"]:
            for shape in [(1001,), (2000,), (40, 40), (3, 500), (10, 10, 11), (1, 1, 2000),
                          (7, 200)]:
                n = int(np.prod(shape))
                a = (rng.standard_normal(n) * 100).astype(dt) if dt != "bool" else \
                    rng.integers(0, 2, n).astype(bool)
                out.append(a.reshape(shape))
        for w in [1, 10, 100, 1000, 10 ** 6]:
            out += [np.arange(100) * w, np.linspace(0, w, 50),
                    np.arange(60, dtype=np.int8).reshape(3, 20)]
        out.append(np.zeros((2, 3, 4, 5)))
    return [np.ascontiguousarray(a) for a in out]


def main():
    cli = os.path.abspath(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix="ndshm-format-")
    os.environ["NDSHM_DIR"] = tmp
    failures = []

    def tool(*args, ok=True):
        p = subprocess.run([cli, *args], capture_output=True, text=True, timeout=120)
        if ok and p.returncode != 0:
            raise AssertionError(f"ndshm {' '.join(args[:4])}...: exit {p.returncode}: {p.stderr}")
        return p

    def blocks(out, name):
        """The text printed under each '# NAME version V ...' line, in order."""
        head = f"# {name} version "
        res, cur = [], None
        for line in out.split("\n"):
            if line.startswith(head):
                if cur is not None:
                    res.append("\n".join(cur))
                cur = []
            elif cur is not None:
                cur.append(line)
        if cur is not None:
            res.append("\n".join(cur))
        return [b[:-1] if b.endswith("\n") else b for b in res]

    try:
        all_cases = cases()
        checked = 0
        batch = 150
        for start in range(0, len(all_cases), batch):
            group = all_cases[start:start + batch]
            files = []
            for k, a in enumerate(group):
                files.append(os.path.join(tmp, f"c{start + k}.npy"))
                np.save(files[-1], a)
            name = f"fmt{start}"
            tool("pub", name, *files, "--slots", str(len(group)))
            for mode, fn, extra in [("str", str, []), ("repr", repr, ["--repr"])]:
                p = tool("echo", name, "--oldest", "--count", str(len(group)), *extra)
                got = blocks(p.stdout, name)
                if len(got) != len(group):
                    failures.append(f"{name} {mode}: {len(got)} versions printed, "
                                    f"{len(group)} published")
                    continue
                for a, g in zip(group, got):
                    want = fn(a)
                    checked += 1
                    if g != want:
                        failures.append(f"{mode} {a.dtype} {a.shape}:\n--- numpy\n{want}\n"
                                        f"--- ndshm\n{g}")
            tool("rm", name)
            for f in files:
                os.unlink(f)

        # numpy's print options
        a = np.linspace(-1, 1, 36).reshape(3, 12) ** 3 * 1000
        b = np.arange(3000, dtype=np.int32).reshape(30, 100)
        c = (np.arange(24, dtype=np.float32) / 7).reshape(2, 3, 4)
        opts = [(a, dict(linewidth=40)), (a, dict(precision=3)), (c, dict(precision=2)),
                (b, dict(threshold=100, edgeitems=2)), (b, dict(edgeitems=1)),
                (c, dict(threshold=5)), (a, dict(linewidth=120, precision=1)),
                (b, dict(threshold=10, edgeitems=0)), (c, dict(threshold=1, edgeitems=0)),
                (a, dict(linewidth=1)), (b, dict(edgeitems=60))]
        for k, (arr, o) in enumerate(opts):
            f = os.path.join(tmp, f"opt{k}.npy")
            np.save(f, arr)
            tool("pub", "fmt-opt", f)
            args = []
            for key, v in o.items():
                args += [f"--{key}", str(v)]
            for mode, fn, extra in [("str", str, []), ("repr", repr, ["--repr"])]:
                with np.printoptions(**o):
                    want = fn(arr)
                got = blocks(tool("cat", "fmt-opt", *args, *extra).stdout, "fmt-opt")[0]
                checked += 1
                if got != want:
                    failures.append(f"{mode} with {o}:\n--- numpy\n{want}\n--- ndshm\n{got}")
        big = np.arange(5000, dtype=np.int16).reshape(50, 100)
        f = os.path.join(tmp, "big.npy")
        np.save(f, big)
        tool("pub", "fmt-big", f)
        with np.printoptions(threshold=sys.maxsize):
            want = str(big)
        got = blocks(tool("cat", "fmt-big", "--full").stdout, "fmt-big")[0]
        checked += 1
        if got != want:
            failures.append("--full: differs from numpy with threshold=sys.maxsize")

        # --slice against numpy's indexing
        x = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4)
        np.save(f, x)
        tool("pub", "fmt-slice", f)
        for spec, idx in [("0:3,:", np.s_[0:3, :]), ("1", np.s_[1]), ("-1,::2", np.s_[-1, ::2]),
                          ("...,0", np.s_[..., 0]), ("::-1,1:,-3:-1", np.s_[::-1, 1:, -3:-1]),
                          ("0,1,2", np.s_[0, 1, 2]), ("5:", np.s_[5:]), (":,::-2", np.s_[:, ::-2]),
                          ("1,...", np.s_[1, ...]), ("0:1,", np.s_[0:1, ])]:
            want = str(x[idx])
            got = blocks(tool("cat", "fmt-slice", "--slice", spec).stdout, "fmt-slice")[0]
            checked += 1
            if got != want:
                failures.append(f"--slice {spec}:\n--- numpy\n{want}\n--- ndshm\n{got}")
        for spec, idx in [("2", np.s_[2]), ("0,-4", np.s_[0, -4]), ("0,0,0,0", np.s_[0, 0, 0, 0])]:
            try:
                x[idx]
                failures.append(f"numpy accepted {spec}")
            except IndexError as e:
                p = tool("cat", "fmt-slice", "--slice", spec, ok=False)
                if p.returncode != 1 or str(e) not in p.stderr:
                    failures.append(f"--slice {spec}: exit {p.returncode}, stderr {p.stderr!r}, "
                                    f"numpy says {e}")
        print(f"{checked} outputs identical to numpy {np.__version__}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} FAILURES:\n" + "\n".join(failures[:30]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
