"""The ndsharray face: its usage guide run unchanged (only the import switched), its
semantics (status True only for a new consistent array), and ndsharray's own multi-process
test: a parent writer and a child that echoes every array back, for 4 shapes (one of them
12-dimensional) x its 14 dtypes, re-allocating as the size changes."""

import multiprocessing
import os
import re
import time

import numpy as np
import pytest

import ndshm
from ndshm.compat.ndsharray import NdShArray, supported_types

import mp_targets
from conftest import SHM_DIR, run_py, segments

NUMPY_ORDER = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
               "float16", "float32", "float64", "complex64", "complex128"]


# ----- the usage guide (documentation/usage.rst), two consoles -----------------------------


def test_usage_guide_two_consoles(name, console):
    first, second = console(), console()
    out = first.run(f"""
        import numpy as np
        from ndshm.compat import ndsharray

        my_array = np.random.random((4, 2))  # array size can be changed during runtime

        # array must not be specified at instantiation
        shared_array = ndsharray.NdShArray("{name}", array=my_array, r_w='w')

        print("name of the ndsharray: %s" % shared_array.name)  # prints the unique identifier (uuid4)
        print("access of the ndsharray: %s" % shared_array.access)  # prints access: 'r' or 'w'
        print("current ndarray name: %s" % shared_array.ndarray_mmap_name)  # prints the current mmap name of the ndarray
        print(my_array)
        print(repr(my_array.tobytes()))
    """)
    lines = out.splitlines()
    assert lines[0] == f"name of the ndsharray: {name}"
    assert lines[1] == "access of the ndsharray: w"
    first_mmap = lines[2].split(": ", 1)[1]
    assert first_mmap.startswith(name) and os.path.exists(os.path.join(SHM_DIR, "ndshm." + first_mmap))
    written = eval(lines[-1])

    out = second.run(f"""
        import numpy as np
        from ndshm.compat import ndsharray

        _shared_array = ndsharray.NdShArray("{name}", r_w='r')

        status, my_array = _shared_array.read()

        print("status: %s" % status)  # check if the read is valid with the status!
        # check the read time: the elapsed time between write- and read-function
        print("elapsed write-read time: %s ms" % _shared_array.read_time_ms)
        print(my_array)
        print(repr(my_array.tobytes()), my_array.dtype, my_array.shape)
    """)
    lines = out.splitlines()
    assert lines[0] == "status: True"
    ms = float(re.fullmatch(r"elapsed write-read time: (\S+) ms", lines[1]).group(1))
    assert ms > 0.0
    assert lines[-1] == f"{written!r} float64 (4, 2)"  # the very array of the first console

    out = first.run("""
        my_int_array = (255 * np.random.random((6, 3))).astype(np.uint8)
        shared_array.write(my_int_array)

        # the name of the ndarray mmap have been changed now - it is using a different uuid4 identifier:
        print("current ndarray name: %s" % shared_array.ndarray_mmap_name)
        print(my_int_array)
        print(repr(my_int_array.tobytes()))
    """)
    lines = out.splitlines()
    second_mmap = lines[0].split(": ", 1)[1]
    assert second_mmap != first_mmap  # "the name of the ndarray mmap have been changed now"
    assert not os.path.exists(os.path.join(SHM_DIR, "ndshm." + first_mmap))  # no leak
    written = eval(lines[-1])

    out = second.run("""
        status, my_array_2 = _shared_array.read()

        print("status: %s" % status)  # check if the read is valid with the status!
        # check the read time: the elapsed time between write- and read-function
        print("elapsed write-read time: %s ms" % _shared_array.read_time_ms)
        print("current ndarray name: %s" % _shared_array.ndarray_mmap_name)
        print(my_array_2)
        print(repr(my_array_2.tobytes()), my_array_2.dtype, my_array_2.shape)
    """)
    lines = out.splitlines()
    assert lines[0] == "status: True"
    assert float(re.fullmatch(r"elapsed write-read time: (\S+) ms", lines[1]).group(1)) > 0
    assert lines[2] == f"current ndarray name: {second_mmap}"  # the reader followed
    assert lines[-1] == f"{written!r} uint8 (6, 3)"
    # and once more: nothing new -> status False with the previous array
    out = second.run("s, a = _shared_array.read(); print(s, a is my_array_2)")
    assert out.split() == ["False", "True"]


def test_usage_guide_supported_types(console):
    out = console().run("""
        from ndshm.compat import ndsharray

        print("supported numpy types:")
        for _dtype in ndsharray.supported_types:
            print(_dtype)
    """)
    assert out.splitlines() == ["supported numpy types:"] + [
        f"<class 'numpy.{t}'>" for t in NUMPY_ORDER] + ["<class 'bool'>"]


# ----- semantics ---------------------------------------------------------------------------


def test_status_true_only_for_a_new_array(name):
    w = NdShArray(name, r_w="w")  # publishes its default array (empty uint8) at once
    r = NdShArray(name, r_w="r")
    status, a0 = r.read()
    assert status is True and a0.dtype == np.uint8 and a0.shape == (0,)
    status, again = r.read()
    assert status is False and again is a0  # nothing new: False with the previous array
    w.write(np.arange(3.0))
    status, a1 = r.read()
    assert status is True and a1.tolist() == [0.0, 1.0, 2.0]
    assert r.read() == (False, a1)
    w.write(np.arange(3.0))  # the same values again are a new array
    status, a2 = r.read()
    assert status is True and a2 is not a1
    # the scenario: write, then wait for the next array; the loop must not exit with
    # the stale one
    status, got = False, a2
    w.write(np.full(2, 5.0))
    while not status:
        status, got = r.read()
    assert got.tolist() == [5.0, 5.0]
    assert r.read_time_ms > 0.0
    w.close()
    r.close()


def test_before_the_first_read_the_previous_array_is_the_constructors(name):
    ndshm.Writer(name).close()  # a channel that exists with nothing published in it
    tmpl = np.zeros((2, 2), np.int16)
    r = NdShArray(name, array=tmpl, r_w="r")
    assert r.read() == (False, tmpl) and r.read()[1] is tmpl
    assert not r.is_valid  # nothing to read yet
    r.close()


def test_reader_before_writer_raises_file_not_found_like_ndsharray(name):
    with pytest.raises(FileNotFoundError):
        NdShArray(name, r_w="r")
    w = NdShArray(name, np.arange(4), r_w="w")
    r = NdShArray(name, r_w="r")
    assert r.is_valid and r.read()[0] is True
    w.close()
    r.close()


def test_properties_and_validity(name):
    w = NdShArray(name, np.ones((2, 3), np.float32), r_w="W")  # ndsharray accepts 'W'/'R'
    assert (w.name, w.access, w.is_valid) == (name, "w", True)
    r = NdShArray(name, r_w="R")
    assert (r.name, r.access, r.is_valid) == (name, "r", True)
    assert r.ndarray_mmap_name == w.ndarray_mmap_name  # before the first read: the current one
    w.close()
    assert not w.is_valid and segments(name) == []
    r.close()
    assert not r.is_valid


def test_mmap_name_changes_with_each_new_dtype_or_shape(name):
    w = NdShArray(name, np.zeros(10, np.float64), r_w="w")
    r = NdShArray(name, r_w="r")
    names = [w.ndarray_mmap_name]
    for arr in [np.zeros(10, np.float64), np.zeros(1000, np.uint8), np.zeros((50, 20), np.uint8),
                np.zeros(3, np.complex128), np.zeros(1 << 18, np.float32)]:
        w.write(arr)
        assert r.read()[0] is True
        assert r.ndarray_mmap_name == w.ndarray_mmap_name
        names.append(w.ndarray_mmap_name)
        assert os.path.exists(os.path.join(SHM_DIR, "ndshm." + names[-1]))
    # the same dtype and shape -> the same memory; any other dtype or shape (even of the same
    # byte size, as 1000 uint8 -> 50x20 uint8) -> new memory, as ndsharray; the old one removed
    assert names[1] == names[0]
    assert len(set(names[1:])) == 5
    assert [os.path.basename(s) for s in segments(name)] == [f"ndshm.{name}",
                                                             "ndshm." + names[-1]]
    w.close()
    r.close()


def test_writer_reads_its_own_array_and_bad_uses(name):
    w = NdShArray(name, np.arange(3), r_w="w")
    status, a = w.read()
    assert status is True and a.tolist() == [0, 1, 2]
    r = NdShArray(name, r_w="r")
    with pytest.raises(PermissionError):
        r.write(np.arange(3))
    with pytest.raises(TypeError):
        w.write([1, 2, 3])
    with pytest.raises(NotImplementedError):
        w.write(np.array(["text"]))
    with pytest.raises(NotImplementedError):
        NdShArray(name, np.array([object()]), r_w="r")
    with pytest.raises(ValueError):
        NdShArray(name)  # r_w must be given
    with pytest.raises(ValueError):
        NdShArray(name, r_w="rw")
    w.close()
    with pytest.raises(ValueError):
        w.write(np.arange(3))
    r.close()


def test_second_live_writer_is_refused(name):
    w = NdShArray(name, np.arange(3), r_w="w")
    with pytest.raises(ndshm.Error) as ei:
        NdShArray(name, np.arange(3), r_w="w")
    assert ei.value.status == ndshm.Status.E_WRITER_ALIVE
    w.close()


def test_no_segment_left_at_process_exit(name):
    out = run_py(
        "import numpy as np\n"
        "from ndshm.compat.ndsharray import NdShArray\n"
        "w = NdShArray(sys.argv[1], np.zeros(10), r_w='w')\n"
        "print('written')\n",
        name,
    )
    assert out.stdout.strip() == "written"
    assert segments(name) == []


# ----- ndsharray's own test: writer and echo child ------------------------------------------

# ndsharray's test shapes, the largest two scaled down (its 4**12 and 2400x1800 arrays of
# complex128 are 256 MiB and 66 MiB per copy): still a 12-dimensional one and a megapixel-ish
# one, 56 steps that change dtype, shape or both.
SHAPES = [(72, 128), (3,) * 12, (24, 48, 3, 6), (480, 360)]


def _array(rng, shape, t):
    a = rng.random(shape) * 255
    if np.dtype(t).kind == "c":
        a = a + 1j * rng.random(shape) * 255
    return a.astype(t)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_writer_and_echo_child(name, method):
    ctx = multiprocessing.get_context(method)
    ready, written, echoed, stop = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Event()
    errors = ctx.Queue()
    w = NdShArray(name, r_w="w")
    child = ctx.Process(target=mp_targets.ndsharray_echo,
                        args=(name, ready, written, echoed, stop, errors))
    child.start()
    try:
        assert ready.wait(120), "echo child did not start"
        echo = NdShArray(name + "_copy", r_w="r")
        rng = np.random.default_rng(13)
        prev_mmap, steps = None, 0
        for shape in SHAPES:
            for t in supported_types:
                arr = _array(rng, shape, t)
                echo.read()  # consume: the next True is the echo of this array
                w.write(arr)
                mmap = w.ndarray_mmap_name
                assert mmap != prev_mmap, (shape, t)  # re-allocated on every step
                prev_mmap = mmap
                written.set()
                if not echoed.wait(120):
                    why = errors.get(timeout=1) if not errors.empty() else ""
                    pytest.fail(f"no echo for {shape} {t} within 120 s: {why}")
                echoed.clear()
                status, got = False, None
                deadline = time.monotonic() + 60
                while not status and time.monotonic() < deadline:
                    status, got = echo.read()
                assert status, f"echo of {shape} {t} not readable"
                assert got.dtype == arr.dtype and got.shape == arr.shape, (shape, t)
                assert got.tobytes() == arr.tobytes(), (shape, t)
                steps += 1
        assert steps == 4 * 14
        assert errors.empty()
    finally:
        stop.set()
        child.join(60)
        if child.is_alive():
            child.terminate()
            child.join()
    assert child.exitcode == 0
    w.close()
    echo.close()
    assert segments(name) == [] and segments(name + "_copy") == []  # the child's writer too


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_worker_failing_on_a_missing_array(name, method):
    with multiprocessing.get_context(method).Pool(1) as pool:
        res = pool.apply_async(mp_targets.ndsharray_open_missing, (name,))
        with pytest.raises(FileNotFoundError) as ei:
            res.get(timeout=60)
        assert ei.value.status == ndshm.Status.E_NOENT


def test_non_native_byte_order_is_converted(name):
    w = NdShArray(name, np.arange(4, dtype=">i4"), r_w="w")
    r = NdShArray(name, r_w="r")
    status, got = r.read()
    assert status is True and got.dtype == np.dtype("=i4") and got.tolist() == [0, 1, 2, 3]
    w.close()
    r.close()


def test_reader_follows_a_restarted_writer(name):
    """ndsharray reads the name afresh on every read, so its readers follow a writer that was
    restarted: the face reopens when ndshm says the name now belongs to a new channel."""
    w = NdShArray(name, np.arange(3), r_w="w")
    r = NdShArray(name, r_w="r")
    assert r.read()[0] is True
    w.close()  # removes the channel
    w2 = NdShArray(name, np.arange(5) * 2, r_w="w")  # a new writer process, same name
    status, got = False, None
    deadline = time.monotonic() + 30
    while not status and time.monotonic() < deadline:
        status, got = r.read()
        time.sleep(0.001)
    assert status is True and got.tolist() == [0, 2, 4, 6, 8]
    w2.write(np.full(2, 3))
    assert r.read()[1].tolist() == [3, 3]
    w2.close()
    r.close()
