"""Shared arrays from Python: ndshm.create_array / attach_array / delete_array / array_info /
list_arrays, the `ndshm array` command, and byte-exact .npy interop with numpy."""

import ctypes
import gc
import glob
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import ndshm
import array_worker
from conftest import REPO, segments

PKG = os.path.dirname(os.path.dirname(os.path.abspath(ndshm.__file__)))

DTYPES = [
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
    np.uint64, np.float16, np.float32, np.float64, np.complex64, np.complex128,
]


def run_py(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {PKG!r})\n" + code, *args],
        capture_output=True, text=True, timeout=120,
    )


def cli_path() -> str:
    p = os.environ.get("NDSHM_CLI")
    if p:
        return p
    lib = os.environ.get("NDSHM_LIBRARY")
    if lib:  # the ctest run: the tool of the same build
        cand = os.path.join(os.path.dirname(lib), "bin", "ndshm")
        if os.path.exists(cand):
            return cand
    for cand in sorted(glob.glob(os.path.join(REPO, "build*", "bin", "ndshm"))):
        return cand
    pytest.fail("the ndshm tool was not found: build the project or set NDSHM_CLI")


def cli(*args, check=True):
    p = subprocess.run([cli_path(), *args], capture_output=True, text=True, timeout=120)
    if check:
        assert p.returncode == 0, (args, p.returncode, p.stderr)
    return p


def random_array(dt, shape, order, seed=0):
    rng = np.random.default_rng(seed)
    dt = np.dtype(dt)
    n = int(np.prod(shape, dtype=np.int64))
    if dt == np.bool_:
        flat = rng.integers(0, 2, n).astype(np.bool_)
    else:  # every bit pattern, NaNs and all: compared as bytes
        flat = np.frombuffer(rng.bytes(n * dt.itemsize), dtype=dt).copy()
    return flat.reshape(shape, order=order)


# ----- the SharedArray README example, literally ----------------------------------------------


def test_sharedarray_readme_example_prints_42():
    p = run_py(
        "from ndshm import create_array as create, attach_array as attach\n"
        "import ndshm\n"
        'a = create("test1", 10)\n'
        'b = attach("test1")\n'
        "a[0] = 42\n"
        "print(b[0])\n"
        'ndshm.delete_array("test1")\n'
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == "42.0\n"


# ----- life cycle ------------------------------------------------------------------------------


def test_create_attach_same_pages(name):
    a = ndshm.create_array(name, (3, 4))
    assert isinstance(a, np.ndarray) and a.dtype == np.float64 and a.shape == (3, 4)
    assert a.flags.c_contiguous and a.flags.writeable and not a.any()  # zero-filled
    assert a.ctypes.data % 4096 == 0
    b = ndshm.attach_array(name)
    assert b.ctypes.data != a.ctypes.data  # another mapping of the same pages
    a[1, 2] = 7.5
    assert b[1, 2] == 7.5
    b[2] = -1
    assert (a[2] == -1).all()
    assert len(segments(name)) == 1  # one file


def test_outlives_delete_and_collection(name):
    a = ndshm.create_array(name, (1000,), np.int64)
    a[:] = np.arange(1000)
    b = ndshm.attach_array(name)
    tail = b[990:]  # a slice: keeps b's mapping alive
    ndshm.delete_array(name)
    assert segments(name) == []
    with pytest.raises(FileNotFoundError):
        ndshm.attach_array(name)
    with pytest.raises(FileNotFoundError):
        ndshm.delete_array(name)
    del b
    gc.collect()
    assert tail.tolist() == list(range(990, 1000))
    tail[0] = -5  # still the shared pages of the deleted array
    assert a[990] == -5
    # the name is free again: a new, independent array
    c = ndshm.create_array(name, (1000,), np.int64)
    assert not c.any() and a[990] == -5
    ndshm.delete_array(name)


KEEPALIVE = r"""
import ctypes, gc, sys
import numpy as np
import ndshm
import ndshm.array as m

if sys.argv[2] == "broken":
    # what a binding without the keep-alive does: an ndarray over the address whose base is
    # NOT the attachment
    def broken(holder):
        ai = holder.__array_interface__
        n = int(np.prod(ai["shape"])) * np.dtype(ai["typestr"]).itemsize
        buf = (ctypes.c_char * n).from_address(ai["data"][0])
        return np.frombuffer(buf, dtype=ai["typestr"]).reshape(ai["shape"])
    m._as_ndarray = broken

name = sys.argv[1]
a = ndshm.create_array(name, (1024, 1024))  # 8 MiB: nothing else reuses the range
a[:] = 2.0
b = ndshm.attach_array(name)
rows = b[100:200]
del b
ndshm.delete_array(name)
gc.collect()
print(float(a.sum()) + float(rows.sum()))
"""


@pytest.mark.parametrize("variant", ["keepalive", "broken"])
def test_ndarray_keeps_its_mapping_alive(name, variant):
    """An ndarray outlives delete and the collection of every other reference. The same script
    with the keep-alive removed (the ndarray's base is not the attachment) crashes: proof that
    this test can fail."""
    p = run_py(KEEPALIVE, name, variant)
    if variant == "keepalive":
        assert p.returncode == 0, p.stderr
        assert float(p.stdout) == 2.0 * 1024 * 1024 + 2.0 * 100 * 1024
    else:
        assert p.returncode in (-signal.SIGSEGV, -signal.SIGBUS), (p.returncode, p.stdout)


def test_fork_inherited_array(name):
    a = ndshm.create_array(name, (64,), np.uint32)
    before = ndshm.array_info(name).attached
    pid = os.fork()
    if pid == 0:  # the inherited ndarray works in the child
        a[:] = 7
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert (a == 7).all()
    assert ndshm.array_info(name).attached == before == 1


# ----- read-only -------------------------------------------------------------------------------


def test_readonly_attach(name):
    a = ndshm.create_array(name, (4096,), np.uint8)
    a[:] = 3
    r = ndshm.attach_array(name, readonly=True)
    assert not r.flags.writeable and (r == 3).all()
    with pytest.raises(ValueError):
        r[0] = 1
    with pytest.raises(ValueError):
        r.flags.writeable = True
    assert ndshm.array_info(r).attached == 2
    # even a raw store behind numpy's back faults: the pages are mapped PROT_READ
    code = (
        "import ctypes, sys, ndshm\n"
        "r = ndshm.attach_array(sys.argv[1], readonly=sys.argv[2] == 'ro')\n"
        "ctypes.memset(r.ctypes.data, 9, 1)\n"
        "print('stored')\n"
    )
    p = run_py(code, name, "ro")
    assert p.returncode == -signal.SIGSEGV, (p.returncode, p.stdout, p.stderr)
    assert (a == 3).all()
    p = run_py(code, name, "rw")  # the control: the same store through a writable attachment
    assert p.returncode == 0 and p.stdout == "stored\n", p.stderr
    assert a[0] == 9


# ----- dtypes, orders, shapes, .npy interop ----------------------------------------------------


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dt", DTYPES, ids=lambda d: np.dtype(d).name)
def test_dtypes_orders_and_npy_interop(name, tmp_path, dt, order):
    shape = (3, 5, 4)
    src = random_array(dt, shape, order, seed=2 * DTYPES.index(dt) + (order == "F"))
    a = ndshm.create_array(name, shape, dt, order=order)
    assert a.dtype == np.dtype(dt) and a.shape == shape
    assert (a.flags.f_contiguous if order == "F" else a.flags.c_contiguous)
    a[...] = src
    b = ndshm.attach_array(name)
    assert b.dtype == a.dtype and b.shape == shape and b.strides == a.strides
    assert b.tobytes(order="A") == src.tobytes(order="A")
    info = ndshm.array_info(name)
    assert (info.dtype, info.shape, info.order, info.nbytes) == (a.dtype, shape, order, a.nbytes)

    # numpy.save of the shared ndarray = numpy.save of an ordinary array with the same content
    f1, f2 = tmp_path / "np_shared.npy", tmp_path / "np_plain.npy"
    np.save(f1, a)
    np.save(f2, src)
    assert f1.read_bytes() == f2.read_bytes()

    # `ndshm array save`: numpy loads exactly the array: dtype, shape, order, bytes
    f3 = tmp_path / "cli.npy"
    cli("array", "save", name, str(f3))
    c = np.load(f3)
    assert c.dtype == a.dtype and c.shape == shape
    assert c.flags.f_contiguous if order == "F" else c.flags.c_contiguous
    assert c.tobytes(order="A") == src.tobytes(order="A")

    # `ndshm array create --from` a file numpy wrote: attach gives exactly that array
    other = name + "-from"
    try:
        cli("array", "create", other, "--from", str(f2))
        d = ndshm.attach_array(other)
        assert d.dtype == a.dtype and d.shape == shape and d.strides == a.strides
        assert d.tobytes(order="A") == src.tobytes(order="A")
    finally:
        ndshm.unlink(other, missing_ok=True)


@pytest.mark.parametrize("order", ["C", "F"])
def test_shapes_0d_32d_zero_elements(name, order):
    z = ndshm.create_array(name, (), np.complex128, order=order)
    assert z.shape == () and z.ndim == 0
    z[()] = 1 + 2j
    assert ndshm.attach_array(name)[()] == 1 + 2j
    ndshm.delete_array(name)
    s32 = (2,) + (1,) * 30 + (3,)
    a = ndshm.create_array(name, s32, np.int32, order=order)
    a[...] = np.arange(6).reshape(s32, order=order)
    b = ndshm.attach_array(name)
    assert b.shape == s32 and b.tobytes(order="A") == a.tobytes(order="A")
    ndshm.delete_array(name)
    e = ndshm.create_array(name, (3, 0, 2), np.float32, order=order)
    assert e.size == 0 and e.shape == (3, 0, 2)
    assert ndshm.attach_array(name).shape == (3, 0, 2)
    assert ndshm.array_info(name).nbytes == 0
    with pytest.raises(ValueError):
        ndshm.create_array(name + "x", (1,) * 33)


# ----- multiprocessing -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_pool_fills_rows(name, method):
    rows, cols = 24, 5000
    a = ndshm.create_array(name, (rows, cols), np.float64)
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(4) as pool:
        done = pool.map(array_worker.fill_row, [(name, r) for r in range(rows)])
    want = np.arange(rows)[:, None] * 1000.0 + np.arange(cols)[None, :]
    assert np.array_equal(a, want)
    assert sorted(r for r, _ in done) == list(range(rows))
    for r, s in done:
        assert s == want[r].sum()


# ----- names, errors, info, list ---------------------------------------------------------------


def test_name_prefixes(name):
    a = ndshm.create_array("/" + name, 4)
    a[:] = 5
    assert (ndshm.attach_array("shm://" + name) == 5).all()
    assert (ndshm.attach_array(name) == 5).all()
    assert ndshm.array_info("/" + name).name == name
    ndshm.delete_array("shm://" + name)
    assert segments(name) == []


def test_errors(name):
    ndshm.create_array(name, 3)
    with pytest.raises(FileExistsError):
        ndshm.create_array(name, 3)
    with pytest.raises(FileNotFoundError):
        ndshm.attach_array(name + "-absent")
    with pytest.raises(FileNotFoundError):
        ndshm.array_info(name + "-absent")
    for bad in ("", "a/b", "..", ".x", "x" * 129):
        with pytest.raises(ValueError):
            ndshm.create_array(bad, 3)
    with pytest.raises(TypeError):
        ndshm.create_array(b"bytes", 3)
    with pytest.raises(ValueError):
        ndshm.create_array(name + "o", 3, dtype=object)
    with pytest.raises(ValueError):
        ndshm.create_array(name + "o", 3, order="X")
    with pytest.raises(ValueError):
        ndshm.create_array(name + "o", (3, -1))
    with pytest.raises(TypeError):
        ndshm.create_array(name + "o", (3.5,))
    with pytest.raises(ValueError):
        ndshm.create_array(name + "o", 3, mode=0o10000)
    with pytest.raises(TypeError):
        ndshm.array_info(np.zeros(3))
    assert segments(name + "o") == []
    # a channel's name: the kinds never mix
    chan = name + "-chan"
    with ndshm.Writer(chan, unlink_on_close=True):
        with pytest.raises(FileExistsError):
            ndshm.create_array(chan, 3)
        with pytest.raises(ndshm.Error) as e:
            ndshm.attach_array(chan)
        assert e.value.rc == -20  # NDSHM_E_KIND
        with pytest.raises(ndshm.Error) as e:
            ndshm.delete_array(chan)
        assert e.value.rc == -20


def test_info_list_unlink_gc(name):
    t0 = time.time()
    a = ndshm.create_array(name, (6, 7), np.uint16, order="F", mode=0o640)
    info = ndshm.array_info(name)
    assert info.name == name and info.dtype == np.uint16 and info.shape == (6, 7)
    assert info.order == "F" and info.nbytes == 84 and info.mode == 0o640
    assert t0 - 5 <= info.created <= time.time() + 5
    assert info.attached == 1
    b = ndshm.attach_array(name, readonly=True)
    assert ndshm.array_info(name).attached == 2
    del b
    gc.collect()
    assert ndshm.array_info(name).attached == 1
    assert ndshm.array_info(a).attached == 1
    chan = name + "-chan"
    with ndshm.Writer(chan) as w:
        w.publish(np.zeros(3))
    arrays = {i.name: i for i in ndshm.list_arrays()}
    assert name in arrays and chan not in arrays
    assert arrays[name].shape == (6, 7) and arrays[name].order == "F"
    ndshm.gc()  # removes the closed channel, never an array
    assert segments(chan) == [] and len(segments(name)) == 1
    ndshm.unlink(name)  # removes either kind
    assert segments(name) == []
    assert name not in {i.name for i in ndshm.list_arrays()}


def test_publish_snapshot_through_a_channel(name):
    chan = name + "-chan"
    a = ndshm.create_array(name, (4, 6), np.int32, order="F")
    a[...] = np.arange(24).reshape(4, 6)
    with ndshm.Writer(chan, unlink_on_close=True) as w, ndshm.Reader(chan) as r:
        v = w.publish(a)  # one call: the array's current contents become one version
        a[0, 0] = -1  # later stores are not in it
        st, got, info = r.read()
        assert st and info.version == v
        assert np.array_equal(got, np.arange(24).reshape(4, 6))


# ----- the `ndshm array` command ---------------------------------------------------------------

FILLS = {
    np.bool_: ["True", "0"],
    np.int8: ["-128", "127"],
    np.int16: ["-32768", "12345"],
    np.int32: ["-2147483648", "7"],
    np.int64: ["-9223372036854775808", "9223372036854775807"],
    np.uint8: ["255", "0"],
    np.uint16: ["65535"],
    np.uint32: ["4294967295"],
    np.uint64: ["18446744073709551615"],
    np.float16: ["0.1", "65504", "65519", "65520", "1e-8", "3e-8", "6e-8", "-0.0", "nan",
                 "-inf", "0.000123", "2049", "2051"],
    np.float32: ["0.1", "3.4e38", "1e-45", "-inf"],
    np.float64: ["0.1", "-1.5e300", "5e-324", "nan"],
    np.complex64: ["1+2j", "-3.5j", "2", "(1-2e-3j)"],
    np.complex128: ["1.5-2j", "1e300+1e-300j"],
}


def _numpy_value(dt, s):
    if dt is np.bool_:
        return np.bool_(s in ("True", "true", "1"))
    if np.issubdtype(dt, np.complexfloating):
        return np.array(complex(s.replace("(", "").replace(")", "")), dtype=dt)
    if np.issubdtype(dt, np.floating):
        with np.errstate(over="ignore"):  # 65520 -> inf in float16, as intended
            return np.array(float(s)).astype(dt)
    return np.array(int(s), dtype=dt)


@pytest.mark.parametrize("dt", DTYPES, ids=lambda d: np.dtype(d).name)
def test_cli_fill_matches_numpy(name, dt):
    cli("array", "create", name, "--dtype", np.dtype(dt).name, "--shape", "5,3")
    a = ndshm.attach_array(name, readonly=True)
    for s in FILLS[dt]:
        cli("array", "fill", name, s)
        want = np.full((5, 3), _numpy_value(dt, s), dtype=dt)
        assert a.tobytes() == want.tobytes(), (s, a[0, 0], want[0, 0])


def test_cli_create_options_and_errors(name, tmp_path):
    p = cli("array", "create", name, "--dtype", "<f4", "--shape", "(2, 3)", "--order", "F",
            "--mode", "0640")
    assert "float32 (2, 3), F order" in p.stdout
    info = ndshm.array_info(name)
    assert (info.dtype, info.shape, info.order, info.mode) == (np.float32, (2, 3), "F", 0o640)
    # failures: 1; usage errors: 2
    assert cli("array", "create", name, "--dtype", "f4", "--shape", "2", check=False).returncode == 1
    assert cli("array", "save", name + "-absent", str(tmp_path / "x.npy"),
               check=False).returncode == 1
    assert cli("array", "create", name + "-2", "--from", str(tmp_path / "none.npy"),
               check=False).returncode == 1
    for args in (
        ["array"],
        ["array", "bogus"],
        ["array", "create", name + "-2"],
        ["array", "create", name + "-2", "--dtype", "float99", "--shape", "3"],
        ["array", "create", name + "-2", "--dtype", "f4", "--shape", "3,,4"],
        ["array", "create", name + "-2", "--dtype", "f4", "--shape", ",".join(["1"] * 33)],
        ["array", "create", name + "-2", "--dtype", "f4", "--shape", "3", "--order", "K"],
        ["array", "create", name + "-2", "--dtype", "f4", "--shape", "3", "--mode", "9"],
        ["array", "create", name + "-2", "--from", "x.npy", "--dtype", "f4"],
        ["array", "save", name],
        ["array", "fill", name],
        ["array", "fill", name, "not-a-number"],
    ):
        p = cli(*args, check=False)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert "--help" in p.stderr
    assert segments(name + "-2") == []
    assert cli("array", "fill", name, "1e39").returncode == 0  # float32 overflow: inf, as numpy
    assert np.isinf(ndshm.attach_array(name)).all()
    for args in (["array", "--help"], ["array", "create", "--help"], ["help", "array"]):
        p = cli(*args)
        assert "ndshm array create" in p.stdout and "save" in p.stdout and "fill" in p.stdout
    # a scalar, and a zero-element array, round-trip through .npy
    cli("array", "create", name + "-s", "--dtype", "int64", "--shape", "")
    cli("array", "fill", name + "-s", "-42")
    cli("array", "save", name + "-s", str(tmp_path / "s.npy"))
    s = np.load(tmp_path / "s.npy")
    assert s.shape == () and s == -42 and s.dtype == np.int64
    cli("array", "create", name + "-e", "--dtype", "uint8", "--shape", "4,0")
    cli("array", "save", name + "-e", str(tmp_path / "e.npy"))
    assert np.load(tmp_path / "e.npy").shape == (4, 0)
    for n in (name + "-s", name + "-e"):
        ndshm.unlink(n)


def test_ctypes_layouts_match_the_c_header(tmp_path):
    """CArrayInfo / CArrayOptions against what the C compiler makes of include/ndshm/array.h."""
    from ndshm.array import CArrayInfo, CArrayOptions

    src = tmp_path / "layout.c"
    src.write_text(
        "#include <stddef.h>\n#include <stdio.h>\n#include \"ndshm/ndshm.h\"\n"
        "#define F(T, f) printf(#f \" %zu\\n\", offsetof(T, f))\n"
        "int main(void) {\n"
        "  printf(\"info %zu\\noptions %zu\\nopt_order %zu\\n\", sizeof(ndshm_array_info),"
        " sizeof(ndshm_array_options), offsetof(ndshm_array_options, order));\n"
        "  F(ndshm_array_info, dtype); F(ndshm_array_info, ndim); F(ndshm_array_info, order);\n"
        "  F(ndshm_array_info, mode); F(ndshm_array_info, shape); F(ndshm_array_info, nbytes);\n"
        "  F(ndshm_array_info, created_ns); F(ndshm_array_info, attached);\n"
        "  F(ndshm_array_info, readonly);\n"
        "  return 0;\n}\n"
    )
    exe = tmp_path / "layout"
    cc = subprocess.run(["cc", "-std=c11", "-I", os.path.join(REPO, "include"), str(src), "-o",
                         str(exe)], capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    got = dict(line.split() for line in subprocess.check_output([str(exe)], text=True).split("\n")
               if line)
    assert int(got["info"]) == ctypes.sizeof(CArrayInfo)
    assert int(got["options"]) == ctypes.sizeof(CArrayOptions)
    assert int(got["opt_order"]) == CArrayOptions.order.offset
    for f in ("dtype", "ndim", "order", "mode", "shape", "nbytes", "created_ns", "attached",
              "readonly"):
        assert int(got[f]) == getattr(CArrayInfo, f).offset, f
