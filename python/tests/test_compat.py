"""The drop-in faces: ndsharray's NdShArray and SharedArray's create/attach/delete/list."""

import os
import subprocess
import sys

import numpy as np
import pytest

import ndshm
from ndshm.compat import sharedarray as sa

from conftest import segments

PKG = os.path.dirname(os.path.dirname(os.path.abspath(ndshm.__file__)))


def run_py(code: str, *args: str) -> str:
    p = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {PKG!r})\n" + code, *args],
        capture_output=True, text=True, timeout=60,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout


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
