"""The drop-in faces: ndsharray's NdShArray and SharedArray's create/attach/delete/list."""

import os
import subprocess
import sys

import numpy as np
import pytest

import ndshm
from ndshm.compat import sharedarray as sa
from ndshm.compat.ndsharray import NdShArray

from conftest import segments

PKG = os.path.dirname(os.path.dirname(os.path.abspath(ndshm.__file__)))


def run_py(code: str, *args: str) -> str:
    p = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {PKG!r})\n" + code, *args],
        capture_output=True, text=True, timeout=60,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout


# ----- ndsharray ---------------------------------------------------------------------------


def test_ndsharray_write_read(name):
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    w = NdShArray(name, arr, r_w="w")
    r = NdShArray(name, r_w="r")
    assert (w.name, w.access, r.access) == (name, "w", "r")
    assert w.is_valid and not r.is_valid  # the reader holds nothing yet
    status, got = r.read()
    assert status is True and r.is_new and r.is_valid
    np.testing.assert_array_equal(got, arr)
    assert r.read_time_ms >= 0.0
    status, again = r.read()  # nothing new: the same array, still valid
    assert status and again is got and not r.is_new
    # dtype and shape changes re-allocate silently
    w.write(np.ones((1080, 1920, 3), np.uint8))
    status, frame = r.read()
    assert status and frame.shape == (1080, 1920, 3) and frame.dtype == np.uint8
    with pytest.raises(PermissionError):
        r.write(arr)
    with pytest.raises(PermissionError):
        w.read()
    w.close()
    assert segments(name) == []  # the writer removed its shared memory
    assert not w.is_valid
    r.close()


def test_ndsharray_reader_before_writer(name):
    r = NdShArray(name, r_w="r")
    assert r.read() == (False, None)
    with NdShArray(name, r_w="w") as w:
        assert r.read() == (False, None)  # exists, nothing written
        w.write(np.array([1, 2, 3]))
        status, got = r.read()
        assert status and got.tolist() == [1, 2, 3]
    r.close()


def test_ndsharray_no_leak_at_process_exit(name):
    """A writer process that never calls close() leaves no segment behind."""
    out = run_py(
        "import numpy as np\n"
        "from ndshm.compat.ndsharray import NdShArray\n"
        "w = NdShArray(sys.argv[1], np.zeros(10), r_w='w')\n"
        "print('written')\n",
        name,
    )
    assert out.strip() == "written"
    assert segments(name) == []


def test_ndsharray_bad_mode(name):
    with pytest.raises(ValueError):
        NdShArray(name, r_w="rw")


# ----- SharedArray -------------------------------------------------------------------------


def test_sharedarray_create_flush_attach(name):
    a = sa.create(name, (3, 4), np.int32)
    assert a.shape == (3, 4) and a.dtype == np.int32 and (a == 0).all()
    a[1] = 7
    # not flushed yet: others still see version 1 (zeros)
    assert (sa.attach(name) == 0).all()
    sa.flush(a[1:])  # a slice flushes its whole array
    b = sa.attach(name)
    assert b[1].tolist() == [7, 7, 7, 7] and b[0].tolist() == [0, 0, 0, 0]
    assert not b.flags.writeable  # read-only by default: writes would not be shared
    assert sa.ArrayDesc(name, np.dtype(np.int32), (3, 4)) in sa.list()
    with pytest.raises(FileExistsError):
        sa.create(name, 3)
    with pytest.raises(ValueError):
        sa.flush(np.zeros(3))
    del a
    sa.delete(name)
    assert segments(name) == []
    assert b[1, 0] == 7  # attached arrays stay usable
    with pytest.raises(FileNotFoundError):
        sa.attach(name)
    with pytest.raises(FileNotFoundError):
        sa.delete(name)


def test_sharedarray_other_process_sees_flushes_and_data_outlives_creator(name):
    out = run_py(
        "import numpy as np\n"
        "from ndshm.compat import sharedarray as sa\n"
        "a = sa.create(sys.argv[1], 5, np.float64)\n"
        "a[:] = np.arange(5)\n"
        "print(sa.flush(a))\n",
        name,
    )
    assert out.strip() == "2"  # version 1 = the zeros of create, 2 = the flush
    b = sa.attach(name)  # the creator has exited: the data is still there
    assert b.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    # with the creator gone, another process may attach for writing and flush
    c = sa.attach(name, ro=False)
    c *= 10
    sa.flush(c)
    out = run_py(
        "from ndshm.compat import sharedarray as sa\n"
        "print(sa.attach(sys.argv[1]).tolist())\n",
        name,
    )
    assert out.strip() == "[0.0, 10.0, 20.0, 30.0, 40.0]"
    del c
    sa.delete(name)


def test_sharedarray_attach_for_writing_refused_while_creator_lives(name):
    a = sa.create(name, 2)
    with pytest.raises(ndshm.Error) as e:
        sa.attach(name, ro=False)
    assert e.value.status == ndshm.Status.E_WRITER_ALIVE
    del a
