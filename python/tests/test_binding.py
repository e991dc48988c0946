"""The binding on its own: statuses, errors, info, copies, views, loans, lifetimes."""

import ctypes
import gc
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import ndshm
from ndshm import Status

from conftest import PKG, segments, unique_name

ALL_DTYPES = [ndshm.dtype_of(c) for c in range(1, 15)]


def test_status_enum_and_messages():
    assert Status.OK == 0 and Status.NO_NEW == 1 and Status.OVERWRITTEN == 6
    assert bool(Status.OK) and not Status.NO_NEW and not Status.CONTENDED
    assert "overwritten" in Status.OVERWRITTEN.message


@pytest.mark.parametrize("dt", ALL_DTYPES, ids=str)
def test_round_trip_every_dtype(name, dt):
    rng = np.random.default_rng(abs(hash(dt.str)) % 1000)
    arr = (rng.random((4, 3, 2)) * 100).astype(dt)
    if dt.kind == "c":
        arr = arr + 1j * arr
    with ndshm.Writer(name) as w, ndshm.Reader(name) as r:
        v = w.publish(arr)
        status, got, info = r.read()
        assert status == Status.OK and info.version == v
        assert got.dtype == dt and got.shape == arr.shape
        np.testing.assert_array_equal(got, arr)
        assert got.flags.writeable and got.flags.c_contiguous
        got[...] = 0  # a private copy: shared memory is untouched
        w.publish(arr)
        status, view, _ = r.view()
        assert status == Status.OK and view.dtype == dt
        np.testing.assert_array_equal(view, arr)


def test_errors_map_to_python_exceptions(name):
    with ndshm.Writer(name):
        with pytest.raises(FileExistsError) as e:
            ndshm.Writer(name)
        assert e.value.status == Status.E_EXISTS and isinstance(e.value, ndshm.Error)
    with pytest.raises(FileNotFoundError):
        ndshm.Reader(unique_name("missing"))
    with pytest.raises(FileNotFoundError):
        ndshm.stat(unique_name("missing"))
    for bad in ["", "a/b", "..", ".hidden", "x" * 129]:
        with pytest.raises(ValueError):
            ndshm.Reader(bad)
    with ndshm.Writer(name, exist_ok=True) as w:
        with pytest.raises(ValueError):
            w.publish(np.array(["text"]))  # not numeric
        with pytest.raises(ValueError):
            w.publish(np.zeros((1,) * 33))  # more than 32 dims
        with pytest.raises(ndshm.Error) as e:
            w.commit()  # no loan
        assert e.value.status == Status.E_STATE
    with ndshm.Writer(name, create=False):  # take over: the previous writer closed
        with pytest.raises(ndshm.Error) as e:
            ndshm.Writer(name, create=False)  # but this one is alive
        assert e.value.status == Status.E_WRITER_ALIVE


@pytest.mark.skipif(os.geteuid() == 0, reason="root bypasses file permissions")
def test_permission_error(name):
    with ndshm.Writer(name) as w:
        w.publish(np.zeros(3))
        for path in segments(name):
            os.chmod(path, 0)
        with pytest.raises(PermissionError):
            ndshm.Reader(name)


def test_statuses_no_data_no_new_timeout_writer_gone(name):
    w = ndshm.Writer(name)
    r = ndshm.Reader(name)
    assert r.read()[0] == Status.NO_DATA
    assert r.wait(0.01) == Status.TIMEOUT
    w.publish(np.arange(3))
    assert r.wait(0) == Status.OK
    assert r.read()[0] == Status.OK
    assert r.read() == (Status.NO_NEW, None, None)
    assert r.writer_alive
    w.close()
    assert r.wait(1.0) == Status.WRITER_GONE
    assert not r.writer_alive
    r.close()
    assert r.closed and "closed" in repr(r)


def test_info_fields(name):
    with ndshm.Writer(name) as w, ndshm.Reader(name) as r:
        t0 = ndshm.now_ns()
        w.publish(np.zeros((2, 3), np.float32))
        _, _, i1 = r.read()
        assert i1.version == 1 and i1.shape == (2, 3) and i1.dtype == np.float32
        assert i1.nbytes == 24 and i1.dropped == 0
        assert t0 <= i1.publish_ns <= i1.read_ns <= ndshm.now_ns()
        assert i1.latency_ns == i1.read_ns - i1.publish_ns
        assert i1.meta_changed and not i1.reallocated and not i1.writer_gone
        for _ in range(3):
            w.publish(np.zeros((2, 3), np.float32))
        _, _, i2 = r.read()
        assert i2.version == 4 and i2.dropped == 2 and not i2.meta_changed
        w.publish(np.zeros(100000, np.uint8))  # larger than the slot: re-allocates
        _, _, i3 = r.read()
        assert i3.reallocated and i3.meta_changed and i3.generation > i2.generation
        assert "version=5" in repr(i3) and "REALLOCATED" in repr(i3)


def test_read_next_every_version_and_dropped(name):
    with ndshm.Writer(name, slots=4) as w, ndshm.Reader(name) as r:
        for v in range(1, 4):
            w.publish(np.full(2, v))
        got = [r.read_next()[1][0] for _ in range(3)]
        assert got == [1, 2, 3]
        assert r.read_next()[0] == Status.NO_NEW
        for v in range(4, 14):  # 10 versions into 4 slots: 6 lost
            w.publish(np.full(2, v))
        status, arr, info = r.read_next()
        assert status == Status.OK and info.dropped == 6 and arr[0] == 10
        rest = [r.read_next()[1][0] for _ in range(3)]
        assert rest == [11, 12, 13]


def test_replay_starts_at_oldest(name):
    with ndshm.Writer(name, slots=8) as w:
        for v in range(1, 4):
            w.publish(np.array(v))
        with ndshm.Reader(name, replay=True) as r:
            assert [int(r.read_next()[1]) for _ in range(3)] == [1, 2, 3]


def test_shapes_0d_empty_and_32d(name):
    with ndshm.Writer(name) as w, ndshm.Reader(name) as r:
        for arr in [np.array(3.5), np.zeros((0,)), np.zeros((2, 0, 3), np.int8),
                    np.arange(2 ** 3).reshape((1,) * 29 + (2, 2, 2))]:
            w.publish(arr)
            status, got, info = r.read()
            assert status == Status.OK and got.shape == arr.shape and got.dtype == arr.dtype
            np.testing.assert_array_equal(got, arr)
            w.publish(arr)
            status, view, _ = r.view()
            assert status == Status.OK and view.shape == arr.shape
            np.testing.assert_array_equal(view, arr)
        w.publish(5)  # python scalars and lists go through np.asarray
        assert r.read()[1] == 5
        w.publish([[1, 2], [3, 4]])
        assert r.read()[1].tolist() == [[1, 2], [3, 4]]


def test_read_sizes_grow_and_shrink(name):
    with ndshm.Writer(name) as w, ndshm.Reader(name) as r:
        for n in [10, 1000, 200000, 3, 0, 70000, 1]:
            arr = np.arange(n, dtype=np.int32)
            w.publish(arr)
            status, got, info = r.read()
            assert status == Status.OK
            np.testing.assert_array_equal(got, arr)


def test_read_into_out_buffer(name):
    with ndshm.Writer(name) as w, ndshm.Reader(name) as r:
        out = np.empty((4, 5), np.float64)
        w.publish(np.arange(20.0).reshape(4, 5))
        status, got, info = r.read(out=out)
        assert got is out and out[3, 4] == 19.0
        w.publish(np.arange(6, dtype=np.int16))  # smaller and another dtype: a view of out
        status, got, info = r.read(out=out)
        assert got.dtype == np.int16 and got.tolist() == list(range(6))
        assert np.shares_memory(got, out)
        w.publish(np.zeros(100))
        with pytest.raises(ValueError, match="needs 800"):
            r.read(out=out)
        assert r.read()[1].shape == (100,)  # the failed read did not advance the handle


def test_view_is_readonly_and_checked(name):
    with ndshm.Writer(name, slots=4) as w, ndshm.Reader(name) as r:
        w.publish(np.arange(10))
        status, v, info = r.view()
        assert status == Status.OK and not v.flags.writeable
        with pytest.raises(ValueError):
            v[0] = 1
        part = v[2:5]
        assert ndshm.view_check(part) == Status.OK
        for i in range(3):  # the other three slots
            w.publish(np.arange(10) + 100)
        assert ndshm.view_check(v) == Status.OK and v[0] == 0
        w.publish(np.arange(10) + 200)  # reuses the viewed slot
        assert ndshm.view_check(v) == Status.OVERWRITTEN
        assert ndshm.view_check(part) == Status.OVERWRITTEN
        with pytest.raises(ValueError):
            ndshm.view_check(np.zeros(3))


def test_view_outlives_reader_writer_and_unlink(name):
    """The mapping lives as long as the array: no use-after-unmap (numpy #18294)."""
    w = ndshm.Writer(name)
    w.publish(np.arange(1 << 16, dtype=np.uint32))
    r = ndshm.Reader(name)
    _, v, _ = r.view()
    part = v[-10:]
    del v
    r.close()
    w.publish(np.zeros(1 << 20, np.uint32))  # re-allocation: the viewed segment is unlinked
    w.close()
    ndshm.unlink(name)
    gc.collect()
    assert segments(name) == []
    assert part.tolist() == list(range((1 << 16) - 10, 1 << 16))
    assert ndshm.view_check(part) == Status.OK


def test_view_next(name):
    with ndshm.Writer(name) as w, ndshm.Reader(name) as r:
        for i in range(3):
            w.publish(np.array([i]))
        assert [int(r.view_next()[1][0]) for _ in range(3)] == [0, 1, 2]
        assert r.view_next()[0] == Status.NO_NEW


def test_loan_commit_cancel(name):
    with ndshm.Writer(name) as w, ndshm.Reader(name) as r:
        a = w.loan(np.uint16, (3, 4))
        assert a.flags.writeable and a.shape == (3, 4)
        a[...] = 7
        assert r.read()[0] == Status.NO_DATA  # invisible until commit
        v = w.commit()
        status, got, info = r.read()
        assert info.version == v and (got == 7).all()
        w.loan(np.float64, 5)[...] = 1
        w.cancel()
        assert r.read()[0] == Status.NO_NEW
        with pytest.raises(RuntimeError):
            with w.loaned(np.int8, (2,)) as b:
                b[...] = 1
                raise RuntimeError("producer failed")
        assert r.read()[0] == Status.NO_NEW  # cancelled
        with w.loaned("<f4", (2, 2)) as b:
            b[...] = 2.5
        assert r.read()[1].tolist() == [[2.5, 2.5], [2.5, 2.5]]


STALE_LOAN = r"""
import sys, gc
sys.path.insert(0, sys.argv[2])
import numpy as np, ndshm
name = sys.argv[1]
w = ndshm.Writer(name, unlink_on_close=True)
a = w.loan(np.uint8, (1 << 20,))   # 1 MiB: re-allocates into a new segment
a[...] = 9
w.commit()
b = w.loan(np.uint8, (1 << 22,))   # bigger again: this loan lives in a pending segment
w.cancel()                          # ... which cancel unmaps
w.close()                           # and close unmaps the segment `a` lives in
# Without the fences these two lines touch unmapped memory and the process dies (SIGSEGV).
print(int(a.sum()), int(b.sum()))
a[0] = 1
print("alive")
"""


def test_stale_loaned_arrays_never_crash(name):
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(ndshm.__file__)))
    p = subprocess.run(
        [sys.executable, "-c", STALE_LOAN, name, pkg], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["0", "0", "alive"]


def test_wait_releases_the_gil(name):
    with ndshm.Writer(name) as w, ndshm.Reader(name) as r:
        def later():
            time.sleep(0.05)
            w.publish(np.ones(4))

        t = threading.Thread(target=later)
        t.start()
        assert r.wait(60.0) == Status.OK  # the publisher thread ran while we waited
        t.join()
        assert r.read()[1].sum() == 4


def test_threads_share_a_reader(name):
    with ndshm.Writer(name, slots=64) as w, ndshm.Reader(name) as r:
        got = []
        lock = threading.Lock()

        def consume():
            while True:
                status, arr, info = r.read_next()
                if status == Status.OK:
                    with lock:
                        got.append(int(arr[0]))
                    if arr[0] < 0:
                        return
                elif r.wait(60.0) != Status.OK:  # only a bound: each thread ends on a -1
                    return

        threads = [threading.Thread(target=consume) for _ in range(2)]
        for t in threads:
            t.start()
        for v in range(1, 41):
            w.publish(np.full(100, v))
            time.sleep(0.001)
        w.publish(np.full(100, -1))
        w.publish(np.full(100, -1))
        for t in threads:
            t.join(60)
        got = sorted(x for x in got if x > 0)
        assert got == list(range(1, 41))  # each version to exactly one thread


def test_frames_iterator(name):
    with ndshm.Writer(name) as w, ndshm.Reader(name) as r:
        for i in range(3):
            w.publish(np.array([i]))
        w.close()
        assert [int(a[0]) for a, info in r.frames(timeout=1.0, every=True)] == [0, 1, 2]


def test_channels_list_stat_unlink_gc(name):
    w = ndshm.Writer(name, slots=8, capacity=4096)
    w.publish(np.zeros((5, 7), np.int16))
    st = ndshm.stat(name)
    assert st.name == name and st.dtype == np.int16 and st.shape == (5, 7)
    assert st.slots == 8 and st.capacity >= 4096 and st.version == 1
    assert st.writer_pid == os.getpid() and st.writer_alive and st.status == Status.OK
    assert name in repr(st)
    assert name in [c.name for c in ndshm.list_channels()]
    w.close()
    assert segments(name) != []
    assert ndshm.gc() >= 1  # our writer is gone: collected
    assert segments(name) == []
    with pytest.raises(FileNotFoundError):
        ndshm.unlink(name)
    ndshm.unlink(name, missing_ok=True)


def test_unlink_on_close_and_context_managers(name):
    with ndshm.Writer(name, unlink_on_close=True) as w:
        w.publish(np.zeros(3))
        assert len(segments(name)) == 2
        assert "version=1" in repr(w)
    assert w.closed and segments(name) == []
    with pytest.raises(ValueError):
        w.publish(np.zeros(3))


def test_struct_sizes_match_header():
    from ndshm import _lib

    assert ctypes.sizeof(_lib.Options) == 40
    assert ctypes.sizeof(_lib.CInfo) == 7 * 8 + 4 * 4 + 4 * 8 + 32 * 8


def test_persistent_await_writer_growth_and_replaced(name):
    """The layout-2 options through Python: gc keeps a persistent channel; await_writer waits
    across a writer restart; growth 'fixed' refuses a version that does not fit; a wait on a
    removed-and-recreated channel says REPLACED."""
    with ndshm.Writer(name, persistent=True) as w:
        w.publish(np.arange(3.0))
    ndshm.gc()
    assert ndshm.stat(name).version == 1  # kept by gc
    ndshm.unlink(name)
    with ndshm.Writer(name, growth="fixed", capacity=64) as w:
        w.publish(np.zeros(8))  # 64 bytes: fits
        with pytest.raises(ndshm.Error) as ei:
            w.publish(np.zeros(9))
        assert ei.value.status == Status.E_LIMIT
    with pytest.raises(ValueError):
        ndshm.Writer(name + "x", growth="triple")
    r_plain = ndshm.Reader(name)
    r_await = ndshm.Reader(name, await_writer=True)
    assert r_plain.read()[0] == Status.OK and r_await.read()[0] == Status.OK
    assert r_plain.wait(0.05) == Status.WRITER_GONE
    assert r_await.wait(0.2) == Status.TIMEOUT  # no writer: keeps waiting
    w2 = ndshm.Writer(name, create=False)  # the writer comes back
    timer = threading.Timer(0.1, w2.publish, args=(np.arange(2),))
    timer.start()
    assert r_await.wait(30) == Status.OK
    assert r_await.read()[1].tolist() == [0, 1]
    timer.join()
    w2.close()
    ndshm.unlink(name)
    w3 = ndshm.Writer(name)  # a new channel under the name
    assert r_await.wait(30) == Status.REPLACED
    r_plain.close()
    r_await.close()
    w3.close()


CLOSE_RACE = r"""
import sys, threading
import numpy as np
import ndshm
name, rounds = sys.argv[1], int(sys.argv[2])
big = np.ones(1 << 18)  # 2 MiB: publishes and reads that take a while
for k in range(rounds):
    w = ndshm.Writer(f"{name}-{k}", unlink_on_close=True)
    w.publish(big)
    r = ndshm.Reader(w.name)
    ended = []

    def publisher():
        try:
            while True:
                w.publish(big)
        except ValueError:
            ended.append("pub")

    def reader(fn):
        try:
            while True:
                fn()
        except ValueError:
            ended.append("read")

    threads = [threading.Thread(target=publisher),
               threading.Thread(target=reader, args=(r.read,)),
               threading.Thread(target=reader, args=(r.view,)),
               threading.Thread(target=reader, args=(lambda: r.wait(None),))]
    for t in threads:
        t.start()
    r.close()  # while three threads read, view and wait on it
    w.close()  # while a thread publishes
    for t in threads:
        t.join(30)
    assert sorted(ended) == ["pub", "read", "read", "read"], ended
print("ok")
"""


def test_close_while_other_threads_use_the_handle(name):
    """close() from one thread while others publish, read, view and wait: they stop with
    ValueError ('closed'); the handle is freed only after their C calls return (this
    segfaulted: close freed the C handle under a running publish)."""
    p = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {PKG!r})\n" +
                        CLOSE_RACE, name, "40"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.strip() == "ok", (p.returncode, p.stderr[-3000:])
