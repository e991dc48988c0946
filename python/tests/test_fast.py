"""The extension ndshm._fast (python/ext/_fast.c) against the ctypes path it replaces.

ctest runs the whole suite twice: `python` (the extension, which must be loaded when it was
built: NDSHM_PY_FAST_MODULE names the file) and `python-ctypes` (NDSHM_PY_FAST=0). The
comparisons here run both paths in one process on the same versions: every result, Info field
and error of the extension must equal the ctypes path's."""

import os
import pickle
import threading
import time

import numpy as np
import pytest

import ndshm
from ndshm import Status, _lib, core

FAST = core._fast is not None
need_fast = pytest.mark.skipif(not FAST, reason=f"ctypes path in use ({core.fast_error})")


def test_the_path_in_use_is_the_one_asked_for(name):
    """With NDSHM_PY_FAST=0 the ctypes path; else, when the build made the extension
    (NDSHM_PY_FAST_MODULE, set by ctest), exactly that file, bound to the libndshm ctypes
    loaded. Reads give the Info of the path in use."""
    want = os.environ.get("NDSHM_PY_FAST")
    built = os.environ.get("NDSHM_PY_FAST_MODULE")
    if want == "0":
        assert core._fast is None and core.fast_path is None
        assert core.Info is core._PyInfo
    elif built:
        assert core.fast_path is not None, f"extension {built} not loaded: {core.fast_error}"
        assert os.path.realpath(core.fast_path) == os.path.realpath(built)
        ours = ndshm._lib.lib.ndshm_read_latest
        import ctypes

        assert core._fast.read_latest_address() == ctypes.cast(ours, ctypes.c_void_p).value
        assert ndshm.Reader.read.__qualname__ == "Reader.read"
    else:
        pytest.skip("not under ctest: which path is expected is not known")
    with ndshm.Writer(name) as w, ndshm.Reader(name) as r:
        w.publish(np.arange(3))
        info = r.read()[2]
        assert isinstance(info, ndshm.Info)
        assert isinstance(info, core._PyInfo) != FAST
        if FAST:
            assert isinstance(info, core._fast.Info)


FIELDS = core._INFO_FIELDS


def _same_info(a, b, *, times=False):
    for f in FIELDS:
        if f in ("read_ns", "latency_ns") and not times:
            continue  # taken by each read
        assert getattr(a, f) == getattr(b, f), f
        assert type(getattr(a, f)) is type(getattr(b, f)), f
    assert a.latency_ms >= 0 and b.latency_ms >= 0
    assert (a.meta_changed, a.reallocated, a.writer_gone) == (
        b.meta_changed, b.reallocated, b.writer_gone)


def _outcome(fn):
    try:
        return "ok", fn()
    except Exception as e:  # noqa: BLE001 - the comparison is the point
        return "raised", (type(e), str(e))


def _compare(fast_res, slow_res):
    kf, rf = fast_res
    ks, rs = slow_res
    assert kf == ks, (fast_res, slow_res)
    if kf == "raised":
        assert rf == rs
        return
    sf, af, inf_ = rf
    ss, as_, ins = rs
    assert sf is ss
    if af is None:
        assert as_ is None and inf_ is None and ins is None
        return
    assert af.dtype == as_.dtype and af.shape == as_.shape
    assert af.flags.writeable == as_.flags.writeable
    assert af.flags.c_contiguous == as_.flags.c_contiguous
    np.testing.assert_array_equal(af, as_)
    _same_info(inf_, ins)


def _both(name, how):
    """Two readers of one channel: one read by the extension, one by the ctypes path."""
    fn = (_lib.read_latest, _lib.read_next)[how]
    rf = ndshm.Reader(name)
    rs = ndshm.Reader(name)

    def fast(out):
        return _outcome(lambda: core._fast.read(rf, how, out))

    def slow(out):
        return _outcome(lambda: ndshm.Reader._read(rs, fn, out))

    return rf, rs, fast, slow


@need_fast
@pytest.mark.parametrize("how", [0, 1])
def test_read_out_same_as_ctypes(name, how):
    with ndshm.Writer(name, slots=4) as w:
        rf, rs, fast, slow = _both(name, how)
        with rf, rs:
            o1, o2 = np.empty(20, np.float64), np.empty(20, np.float64)
            _compare(fast(o1), slow(o2))  # NO_DATA
            cases = [
                np.arange(20.0),  # out's dtype and shape: out itself
                np.arange(6, dtype=np.int16).reshape(2, 3),  # a view of out
                np.array(7, dtype=np.uint8),  # 0-d
                np.zeros((0, 4), np.float32),  # no elements
                np.arange(21.0),  # too small: ValueError, no advance
            ]
            for a in cases:
                w.publish(a)
                rf_, rs_ = fast(o1), slow(o2)
                _compare(rf_, rs_)
                if rf_[0] == "ok" and a.shape == (20,):
                    assert rf_[1][1] is o1 and rs_[1][1] is o2
                _compare(fast(o1), slow(o2))  # NO_NEW (or the same ValueError again)
            big = np.empty(21, np.float64)
            _compare(fast(big), slow(big.copy()))  # the version that did not fit
            bad = [
                np.empty(40)[::2],  # not contiguous
                np.frombuffer(bytes(160), np.uint8),  # read-only
                bytearray(160),  # not an ndarray
                [0.0] * 20,
                np.empty((4, 5), order="F")[:, :2],
            ]
            w.publish(np.arange(3.0))
            for b in bad:
                _compare(fast(b), slow(b))
            ro = np.empty(20)
            ro.flags.writeable = False
            _compare(fast(ro), slow(ro))
            _compare(fast(o1), slow(o2))  # the bad ones did not advance the handles
        _compare(fast(o1), slow(o2))  # closed: ValueError("reader is closed")
        _compare(fast(bytearray(1)), slow(bytearray(1)))  # closed is checked first


@need_fast
@pytest.mark.parametrize("how", [0, 1])
def test_read_alloc_same_as_ctypes(name, how):
    with ndshm.Writer(name, slots=4) as w:
        rf, rs, fast, slow = _both(name, how)
        with rf, rs:
            _compare(fast(None), slow(None))
            for n in [10, 1000, 200000, 3, 0, 70000, 1]:  # grow and shrink, both sides of 64 KiB
                w.publish(np.arange(n, dtype=np.int32))
                _compare(fast(None), slow(None))
                _compare(fast(None), slow(None))
            assert rf._size == rs._size


@need_fast
def test_read_next_dropped_same_as_ctypes(name):
    with ndshm.Writer(name, slots=4) as w:
        rf, rs, fast, slow = _both(name, 1)
        with rf, rs:
            w.publish(np.arange(3))
            _compare(fast(None), slow(None))
            for i in range(10):  # lap both readers
                w.publish(np.arange(3) + i)
            rf_, rs_ = fast(None), slow(None)
            _compare(rf_, rs_)
            assert rf_[1][2].dropped == rs_[1][2].dropped > 0


@need_fast
@pytest.mark.parametrize("how", [0, 1])
def test_view_same_as_ctypes(name, how):
    fn = (_lib.lib.ndshm_view_latest, _lib.lib.ndshm_view_next)[how]
    with ndshm.Writer(name, slots=4) as w:
        rf, rs = ndshm.Reader(name), ndshm.Reader(name)

        def fast():
            return _outcome(lambda: core._fast.view(rf, how))

        def slow():
            return _outcome(lambda: ndshm.Reader._view(rs, fn))

        with rf, rs:
            _compare(fast(), slow())  # NO_DATA
            for a in [np.arange(10), np.zeros((2, 0)), np.array(1.5), np.arange(1 << 18)]:
                w.publish(a)
                f, s = fast(), slow()
                _compare(f, s)
                assert not f[1][1].flags.writeable
                assert isinstance(core._holder_of(f[1][1]), core._fast.View)
                assert ndshm.view_check(f[1][1]) is Status.OK
                _compare(fast(), slow())  # NO_NEW
        _compare(fast(), slow())  # closed


def test_view_keeps_its_mapping_and_is_checked(name):
    """A view (and a slice of it) outlives reader, writer and unlink; view_check sees the
    slot reused (either path)."""
    w = ndshm.Writer(name, slots=2)
    w.publish(np.arange(1000, dtype=np.int64))
    r = ndshm.Reader(name)
    st, v, info = r.view()
    assert st is Status.OK and info.shape == (1000,) and info.dtype == np.int64
    part = v[10:20]
    del v
    w.publish(np.arange(1000, dtype=np.int64) + 1)
    assert ndshm.view_check(part) is Status.OK
    w.publish(np.arange(1000, dtype=np.int64) + 2)  # the viewed slot again
    assert ndshm.view_check(part) is Status.OVERWRITTEN
    r.close()
    w.close()
    ndshm.unlink(name)
    assert part.shape == (10,)
    int(part.sum())  # still mapped: no crash


@pytest.mark.parametrize("how", ["view", "view_next", "read", "read_next"])
def test_info_outlives_the_view_and_the_reader(name, how):
    """Info is a copy: dropping the view (which releases and clears the C view) or closing
    the reader changes none of its fields."""
    with ndshm.Writer(name) as w:
        r = ndshm.Reader(name)
        w.publish(np.zeros((5, 7), np.int16))
        st, a, info = getattr(r, how)()
        before = tuple(getattr(info, f) for f in FIELDS)
        assert before[FIELDS.index("shape")] == (5, 7) and before[0] == 1
        del a
        r.close()
        assert tuple(getattr(info, f) for f in FIELDS) == before


def test_info_fields_and_pickle(name):
    with ndshm.Writer(name) as w, ndshm.Reader(name) as r:
        w.publish(np.zeros((2, 3), np.float32))
        st, a, info = r.read()
        assert info.version == 1 and info.nbytes == 24 and info.shape == (2, 3)
        assert info.dtype == np.float32 and info.flags & ndshm.InfoFlags.META_CHANGED
        assert info.meta_changed and not info.writer_gone and info.dropped == 0
        assert info.latency_ns == info.read_ns - info.publish_ns
        assert repr(info).startswith("Info(version=1, dtype=float32, shape=(2, 3)")
        back = pickle.loads(pickle.dumps(info))
        _same_info(back, info, times=True)


@pytest.mark.parametrize("out", [False, True])
def test_large_reads_release_the_gil_with_a_call_entry(name, out):
    """A read above 64 KiB runs without the GIL, marked in reader._calls (so a close() from
    another thread waits for it): another thread sees the entry while it runs."""
    a = np.ones(8 << 20, np.uint8)
    with ndshm.Writer(name, slots=2) as w, ndshm.Reader(name) as r:
        w.publish(a)
        buf = np.empty_like(a) if out else None
        seen = threading.Event()
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                if r._calls:
                    seen.set()
                    return

        t = threading.Thread(target=watch)
        t.start()
        deadline = time.monotonic() + 30
        try:
            while not seen.is_set() and time.monotonic() < deadline:
                w.publish(a)
                st, got, info = r.read(out=buf)
                assert st is Status.OK and got.nbytes == a.nbytes
        finally:
            stop.set()
            t.join()
        assert seen.is_set(), "no _calls entry seen during 8 MiB reads in 30 s"
        assert r._calls == []


def test_close_during_large_reads_from_another_thread(name):
    """close() while another thread is inside 8 MiB reads (the GIL released): the reads that
    started finish, later ones raise ValueError; nothing crashes, nothing is left in _calls."""
    a = np.arange(8 << 20, dtype=np.uint8)
    with ndshm.Writer(name, slots=2) as w:
        r = ndshm.Reader(name)
        out = np.empty_like(a)
        errors, reads = [], [0]

        def loop():
            while True:
                try:
                    st, got, info = r.read(out=out if reads[0] % 2 else None)
                except ValueError as e:
                    errors.append(str(e))
                    return
                reads[0] += 1

        w.publish(a)
        t = threading.Thread(target=loop)
        t.start()
        deadline = time.monotonic() + 30
        while reads[0] < 4 and time.monotonic() < deadline:
            w.publish(a)
            time.sleep(0.001)
        r.close()
        t.join(30)
        assert not t.is_alive()
        assert errors == ["reader is closed"], (errors, reads)
        assert reads[0] >= 4 and r._calls == []


def _run(code, env, cwd=None):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


PROBE = (
    "import numpy as np, ndshm, ndshm._lib as L, ndshm.core as c\n"
    "n = 'pyfastprobe%d' % __import__('os').getpid()\n"
    "with ndshm.Writer(n, unlink_on_close=True) as w, ndshm.Reader(n) as r:\n"
    "    w.publish(np.arange(5)); st, a, i = r.read(out=np.empty(5, np.int64))\n"
    "    assert st is ndshm.Status.OK and a.tolist() == [0, 1, 2, 3, 4], (st, a)\n"
    "print(c.fast_path); print(L.path)\n"
    "print(c._fast is not None and isinstance(i, c._fast.Info))\n"
)


def test_copy_of_the_package_without_the_extension_falls_back(tmp_path):
    """A package with no extension beside it (not a source tree) uses ctypes; with
    NDSHM_PY_FAST=1 that is an ImportError naming the reason."""
    import shutil

    pkg = os.path.dirname(os.path.abspath(ndshm.__file__))
    shutil.copytree(pkg, tmp_path / "ndshm",
                    ignore=shutil.ignore_patterns("_fast*", "__pycache__"))
    env = {"PATH": os.environ.get("PATH", "/usr/bin"), "NDSHM_DIR": os.environ["NDSHM_DIR"],
           "PYTHONPATH": str(tmp_path), "NDSHM_LIBRARY": ndshm.library_path()}
    p = _run(PROBE, env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == "None"
    env["NDSHM_PY_FAST"] = "1"
    p = _run(PROBE, env)
    assert p.returncode != 0 and "NDSHM_PY_FAST=1 but the extension is unusable" in p.stderr


@need_fast
def test_extension_binds_to_the_library_ctypes_loaded(tmp_path):
    """The extension has no RPATH: it binds to the libndshm.so.0 ctypes loaded (by SONAME), a
    copy elsewhere too. When it would bind to another copy (here one LD_PRELOADed before the
    one ctypes loads), core.py refuses it: the ctypes path, the reason in fast_error."""
    import shutil

    lib = tmp_path / "libndshm.so"
    shutil.copy(ndshm.library_path(), lib)
    (tmp_path / "python").mkdir()
    shutil.copy(core.fast_path, tmp_path / "python" / os.path.basename(core.fast_path))
    env = {"PATH": os.environ.get("PATH", "/usr/bin"), "NDSHM_DIR": os.environ["NDSHM_DIR"],
           "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(ndshm.__file__))),
           "NDSHM_LIBRARY": str(lib)}
    p = _run(PROBE, env)
    assert p.returncode == 0, p.stderr
    fast, loaded, info_base = p.stdout.splitlines()
    assert loaded == str(lib)
    assert fast == str(tmp_path / "python" / os.path.basename(core.fast_path))
    assert info_base == "True"

    env["LD_PRELOAD"] = ndshm.library_path()  # another copy, first in the global scope
    p = _run(PROBE + "print(c.fast_error)\n", env)
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert out[0] == "None" and "linked to another libndshm" in out[3], out
    env["NDSHM_PY_FAST"] = "1"
    p = _run(PROBE, env)
    assert p.returncode != 0 and "linked to another libndshm" in p.stderr
