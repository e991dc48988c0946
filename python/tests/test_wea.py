"""The wea face: the README's snippets run unchanged (only the import switched, and the
README's typo `wa.exchange buffer` read as `wa.exchange_buffer`), wea's exceptions and memory
order, the exchange buffer in ndshm's wire format and the zero-copy load."""

import multiprocessing

import numpy as np
import pytest

import ndshm
from ndshm.compat import wea

import mp_targets
from conftest import segments


def test_readme_snippets(name, console):
    c = console()
    # what the snippets take from the user's program
    c.run("""
        import numpy as np
        my_new_data = np.arange(20.0).reshape(10, 2)
        sent = []
        def share(buf):
            sent.append(buf)
        def receive():
            return sent[-1]
    """)
    out = c.run(f"""
        from ndshm.compat import wea
        import numpy as np

        ...
        wa = wea.shared_memory.create_shared_array('/{name}', np.dtype('float64'), (10, 2))
        wa[:] = my_new_data[:]
        ...
        print(wa.dtype, wa.shape, wa.flags.f_contiguous, np.array_equal(wa, my_new_data))
    """)
    assert out.split() == ["float64", "(10,", "2)", "True", "True"]
    c.run(f"""
        from ndshm.compat import wea
        import numpy as np

        type = np.dtype('float64')
        dims = (10, 2)
        wa = wea.shared_memory.create_shared_array('/{name}', type, dims)
    """, expect_error=True)  # "a FileExistsError exception will be thrown"
    out = c.run("""
        try:
            wa = wea.shared_memory.create_shared_array('/%s', type, dims)
        except FileExistsError:
            print("FileExistsError")
    """ % name)
    assert out.strip() == "FileExistsError"
    out = c.run(f"""
        from ndshm.compat import wea
        import numpy as np

        wa = wea.shared_memory.attach_shared_array('/{name}')
        wa[:] = np.random.randn(dims[0], dims[1])
        print(repr(wa.tobytes(order="F")))
    """)
    # the attached array is the created one: the first one sees the new values
    written = eval(out.strip())
    assert c.run("print(repr(wa.tobytes(order='F')))").strip() == repr(written)
    out = c.run(f"""
        try:
            wea.shared_memory.attach_shared_array('/{name}-missing')
        except FileNotFoundError:
            print("FileNotFoundError")
    """)
    assert out.strip() == "FileNotFoundError"
    out = c.run("""
        from ndshm.compat import wea
        import numpy as np

        ...
        wa = wea.buffered_memory.create_buffered_array(np.dtype('float64'), (10, 2))
        wa[:] = my_new_data[:]
        buf = wa.exchange_buffer
        share(buf) # where share calls your prefered communication protocol
        ...
        print(sent[-1].__class__.__name__, np.array_equal(wa, my_new_data))
    """)
    assert out.split() == ["bytearray", "True"]
    out = c.run("""
        from ndshm.compat import wea
        import numpy as np

        type = np.dtype('float64')
        dims = (10, 2)
        wa = wea.buffered_memory.create_buffered_array(type, dims)
        wa[:] = np.random.randn(dims[0], dims[1])
        buf: bytearray = wa.exchange_buffer
        before = bytes(buf)
        wa[0, 0] = 99.0  # "like a deep copy": the buffer keeps what it was given
        print(bytes(buf) == before, isinstance(buf, bytearray))
    """)
    assert out.split() == ["True", "True"]
    out = c.run("""
        from ndshm.compat import wea
        import numpy as np

        buf: bytearray = receive() # where receive via your prefered communication protocol
        wa = wea.buffered_memory.load_buffered_array(buf)
        print(wa.dtype, wa.shape, np.array_equal(wa, my_new_data))
    """)
    assert out.split() == ["float64", "(10,", "2)", "True"]
    ndshm.delete_array(name)


def test_shared_arrays_are_fortran_ordered_and_shared(name):
    wa = wea.shared_memory.create_shared_array("/" + name, np.int32, (3, 4, 2))
    assert wa.flags.f_contiguous and not wa.flags.c_contiguous and not wa.any()
    other = wea.shared_memory.attach_shared_array(name)  # with or without the '/'
    assert other.shape == (3, 4, 2) and other.dtype == np.int32 and other.flags.f_contiguous
    wa[1, 2, 1] = 77
    assert other[1, 2, 1] == 77
    info = ndshm.array_info(name)
    assert info.order == "F" and info.shape == (3, 4, 2)
    assert isinstance(wa, wea.WrappedExchangeArray) and isinstance(wa, np.ndarray)
    # a shared array also gives its exchange buffer
    np.testing.assert_array_equal(wea.buffered_memory.load_buffered_array(wa.exchange_buffer), wa)
    wea.shared_memory.unlink_shared_array(name)
    assert segments(name) == [] and other[1, 2, 1] == 77


@pytest.mark.parametrize("code", range(1, 15))
def test_exchange_buffer_every_dtype_and_zero_copy(code):
    dt = ndshm.dtype_of(code)
    wa = wea.buffered_memory.create_buffered_array(dt, (4, 3, 2))
    rng = np.random.default_rng(code)
    wa[:] = (rng.random((4, 3, 2)) * 100).astype(dt)
    buf = wa.exchange_buffer
    got = wea.buffered_memory.load_buffered_array(buf)
    assert got.dtype == dt and got.shape == (4, 3, 2) and got.flags.f_contiguous
    assert got.tobytes(order="F") == wa.tobytes(order="F")
    # no copy: the array is the buffer's memory, both ways
    base = np.frombuffer(buf, np.uint8)
    assert np.shares_memory(got, base)
    got[3, 2, 1] = got[0, 0, 0]
    assert wea.buffered_memory.load_buffered_array(buf)[3, 2, 1] == wa[0, 0, 0]
    # read-only buffers give read-only arrays
    ro = wea.buffered_memory.load_buffered_array(bytes(buf))
    assert not ro.flags.writeable and ro.tobytes(order="F") == got.tobytes(order="F")


def test_exchange_buffer_is_ndshm_wire_format():
    """The buffer is the wire format (docs/wire.md): magic "NDSW", dtype, and the C-order
    shape of the Fortran-order array (its dims reversed); other ndshm tools can read it."""
    wa = wea.buffered_memory.create_buffered_array(np.uint16, (5, 3))
    wa[:] = np.arange(15, dtype=np.uint16).reshape(5, 3)
    buf = wa.exchange_buffer
    assert buf[:4] == b"NDSW" and buf[10] == 7  # NDSHM_UINT16
    assert int.from_bytes(buf[4:6], "little") == 2  # format 2: 128-byte fixed header
    ndim = buf[11]
    shape = [int.from_bytes(buf[128 + 8 * i: 136 + 8 * i], "little") for i in range(ndim)]
    assert shape == [3, 5]
    off = int.from_bytes(buf[12:16], "little")
    assert np.frombuffer(bytes(buf[off:]), np.uint16).tolist() == wa.ravel(order="F").tolist()


@pytest.mark.parametrize("bad", [b"", b"NDSW", b"x" * 200, "truncated", "trailing", "flag"])
def test_bad_buffers_are_refused(bad):
    good = wea.buffered_memory.create_buffered_array(np.float32, (4,)).exchange_buffer
    if bad == "truncated":
        bad = good[:-1]
    elif bad == "trailing":
        bad = good + b"\0"
    elif bad == "flag":
        bad = bytearray(good)
        bad[9] |= 0x80
    with pytest.raises(ValueError, match="not a valid exchange buffer"):
        wea.buffered_memory.load_buffered_array(bad)


def test_unsupported_dtype():
    with pytest.raises(ValueError):
        wea.buffered_memory.create_buffered_array(np.dtype("U4"), 3)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_processes_share_and_exchange(name, method):
    ctx = multiprocessing.get_context(method)
    wa = wea.shared_memory.create_shared_array("/" + name, np.float64, (10, 2))
    q = ctx.Queue()
    p = ctx.Process(target=mp_targets.wea_child_fills, args=(name, q))
    p.start()
    buf = q.get(timeout=120)
    p.join(60)
    assert p.exitcode == 0
    assert wa[:, 1].tolist() == list(range(10)) and wa[:, 0].tolist() == [0.0] * 10
    np.testing.assert_array_equal(wea.buffered_memory.load_buffered_array(buf), wa)
    ndshm.delete_array(name)
