"""The SharedArray face: its README example run unchanged (only the import switched), and
what SharedArray exists for: one array in shared memory that several processes change in
place — workers filling rows, under fork and spawn, and a Pool whose worker fails."""

import multiprocessing

import numpy as np
import pytest

import ndshm
from ndshm.compat import sharedarray as sa

import mp_targets
from conftest import segments


def test_readme_example(name, console):
    # SharedArray's README, with `import SharedArray as sa` switched and "test1" made unique
    c = console()
    out = c.run(f"""
        import numpy as np
        from ndshm.compat import sharedarray as sa

        # Create an array in shared memory
        a = sa.create("{name}", 10)

        # Attach it as a different array. This can be done from another
        # python interpreter as long as it runs on the same computer.
        b = sa.attach("{name}")

        # See how they are actually sharing the same memory block
        a[0] = 42
        print(b[0])

        # Destroying a does not affect b.
        del a
        print(b[0])

        # See how "test1" is still present in shared memory even though we
        # destroyed the array a.
        print(sa.list())

        # Now destroy the array "test1" from memory.
        sa.delete("{name}")

        # The array b is not affected, but once you destroy it then the
        # data are lost.
        print(b[0])
    """)
    lines = out.splitlines()
    assert lines[0] == lines[1] == lines[3] == "42.0"
    assert f"ArrayDesc(name='{name}', dtype=dtype('float64'), dims=(10,))" in lines[2]
    assert segments(name) == []  # deleted: not attachable any more
    c.run(f"sa.attach('{name}')", expect_error=True)
    assert c.run("print(b[0], b.sum())").split() == ["42.0", "42.0"]


def test_functions_as_documented(name):
    a = sa.create(name, (3, 4), dtype=np.int32)
    assert a.shape == (3, 4) and a.dtype == np.int32 and not a.any()  # numpy.zeros()
    with pytest.raises(FileExistsError):
        sa.create(name, 3)
    b = sa.attach(name)
    a[1, 2] = 7
    assert b[1, 2] == 7 and b.flags.writeable  # the same memory, no flush
    b[2] = -1
    assert a[2].tolist() == [-1] * 4
    ro = sa.attach(name, ro=True)
    assert not ro.flags.writeable and ro[1, 2] == 7
    with pytest.raises(ValueError):
        ro[0, 0] = 1
    assert sa.ArrayDesc(name, np.dtype(np.int32), (3, 4)) in sa.list()
    assert [d.name for d in sa.list()].count(name) == 1
    del a
    assert sa.attach(name)[1, 2] == 7  # destroying an array only detaches it
    sa.delete(name)
    assert name not in [d.name for d in sa.list()]
    assert b[1, 2] == 7 and ro[2, 0] == -1  # existing attachments keep working
    b[0, 0] = 5
    assert ro[0, 0] == 5
    with pytest.raises(FileNotFoundError):
        sa.attach(name)
    with pytest.raises(FileNotFoundError):
        sa.delete(name)


def test_names_and_shapes(name):
    a = sa.create("shm://" + name, 5, dtype=np.uint8)  # SharedArray 3's URL form
    assert sa.attach(name).shape == (5,) and sa.attach("shm://" + name).shape == (5,)
    sa.delete("shm://" + name)
    with pytest.raises(ValueError, match="file-backed"):
        sa.create("file:///tmp/x", 3)
    z = sa.create(name, (2, 0, 3))
    assert z.shape == (2, 0, 3) and sa.attach(name).shape == (2, 0, 3)
    sa.delete(name)
    del a, z


def test_data_outlive_the_creator(name, console):
    c = console()
    c.run(f"""
        from ndshm.compat import sharedarray as sa
        a = sa.create("{name}", 4)
        a[:] = [1, 2, 3, 4]
    """)
    c.close()  # the creating process exits
    assert sa.attach(name).tolist() == [1.0, 2.0, 3.0, 4.0]
    sa.delete(name)


@pytest.fixture(params=["fork", "spawn"])
def ctx(request):
    return multiprocessing.get_context(request.param)


def test_workers_fill_rows(name, ctx):
    rows, cols = 16, 4096
    a = sa.create(name, (rows, cols), dtype=np.float64)
    with ctx.Pool(4) as pool:
        sums = pool.map_async(mp_targets.sharedarray_fill_row,
                              [(name, i) for i in range(rows)]).get(timeout=120)
    expect = np.arange(rows)[:, None] * 1_000_000 + np.arange(cols)[None, :]
    np.testing.assert_array_equal(a, expect)  # every row, exactly, in the creator's array
    assert sums == [float(r.sum()) for r in expect]
    sa.delete(name)


def test_a_store_is_seen_at_once_by_another_process(name, ctx):
    a = sa.create(name, 8, dtype=np.int64)
    with ctx.Pool(1) as pool:
        res = pool.apply_async(mp_targets.sharedarray_wait_for, (name, 5, 12345, 60))
        import time

        time.sleep(0.2)
        a[5] = 12345  # no flush, no call: the worker sees the store itself
        assert res.get(timeout=120) == "seen"
    sa.delete(name)


def test_pool_worker_failing(name, ctx):
    with ctx.Pool(2) as pool:
        res = pool.apply_async(mp_targets.sharedarray_attach_missing, (name,))
        with pytest.raises(FileNotFoundError) as ei:
            res.get(timeout=60)
        assert ei.value.status == ndshm.Status.E_NOENT
        assert pool.map_async(abs, [-1, 2]).get(timeout=60) == [1, 2]  # the pool survives
