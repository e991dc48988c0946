"""C writer -> Python reader and Python writer -> C reader: every dtype, 0-d to 32-d shapes,
re-allocations on the way (arrays larger than the slot capacity, then smaller again)."""

import subprocess

import numpy as np
import pytest

import ndshm

DTYPES = list(range(1, 15))


def pattern(code: int, seed: int, shape) -> np.ndarray:
    """The same array as pattern() in tests/c/peer.c: byte j depends on seed and j."""
    dt = ndshm.dtype_of(code)
    n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    j = np.arange(n, dtype=np.uint64)
    if code == 1:  # bool: 0 or 1
        b = ((seed + j) & 1).astype(np.uint8)
    else:
        b = ((seed * 7 + j * 13 + (j >> 8)) & 0xFF).astype(np.uint8)
    return b.view(dt).reshape(shape)


def shape_for(ndim: int, code: int):
    """Small shapes of every rank, with sizes 1..3 spread over the axes."""
    return tuple(1 + ((k * 7 + code) % 3 if k < 8 else (k + code) % 2) for k in range(ndim))


def cases():
    seed = 0
    for code in DTYPES:
        for ndim in range(0, 33):
            seed += 1
            yield code, seed, shape_for(ndim, code)
        # an empty array, then one larger than the default 64 KiB slot (re-allocates), then
        # a small one again
        for shape in [(0,), (3, 0, 2), (300, 130), (5,)]:
            seed += 1
            yield code, seed, shape


def case_line(code, seed, shape):
    return f"{code} {seed} {len(shape)} " + " ".join(str(s) for s in shape)


def test_struct_layout_matches_c(peer_path):
    """Every field of every struct the ctypes binding mirrors sits where the C compiler puts
    it (the C side prints sizes and offsets; fields of ours the C side does not list, or the
    reverse, fail too)."""
    import ctypes

    from ndshm import _lib

    out = subprocess.run([peer_path, "sizes"], capture_output=True, text=True, check=True)
    c = dict((k, int(v)) for k, v in (line.split() for line in out.stdout.splitlines()))
    mirrors = {"options": _lib.Options, "info": _lib.CInfo, "view": _lib.CView,
               "channel": _lib.CChannelInfo, "wire": _lib.CWireMeta}
    for tag, cls in mirrors.items():
        assert c[tag] == ctypes.sizeof(cls), (tag, c[tag], ctypes.sizeof(cls))
        ours = {f[0] for f in cls._fields_ if not f[0].endswith("_") or f[0] in ("priv_", "seq_")}
        theirs = {k.split(".", 1)[1] for k in c if k.startswith(tag + ".")}
        assert ours == theirs, (tag, sorted(ours ^ theirs))
        for field in theirs:
            assert c[f"{tag}.{field}"] == getattr(cls, field).offset, (tag, field)


def test_c_writer_python_reader(peer, name):
    assert peer.cmd(f"create {name}") == "ok"
    seen_gens = set()
    with ndshm.Reader(name) as r:
        n = 0
        for code, seed, shape in cases():
            reply = peer.cmd("pub " + case_line(code, seed, shape))
            assert reply.startswith("ok "), reply
            version = int(reply.split()[1])
            status, arr, info = r.read()
            assert status == ndshm.Status.OK
            assert info.version == version
            expect = pattern(code, seed, shape)
            assert arr.dtype == expect.dtype and arr.shape == shape
            assert arr.tobytes() == expect.tobytes(), (code, shape)
            assert info.nbytes == expect.nbytes
            seen_gens.add(info.generation)
            n += 1
        assert n == 14 * 37
        # every large array re-allocated, every small one after it did not need to
        assert len(seen_gens) >= 2
    assert peer.cmd("close") == "ok"


def test_c_writer_python_view(peer, name):
    assert peer.cmd(f"create {name}") == "ok"
    with ndshm.Reader(name) as r:
        for code, seed, shape in cases():
            assert peer.cmd("pub " + case_line(code, seed, shape)).startswith("ok ")
            status, arr, info = r.view()
            assert status == ndshm.Status.OK
            assert not arr.flags.writeable
            assert arr.tobytes() == pattern(code, seed, shape).tobytes()
            assert ndshm.view_check(arr) == ndshm.Status.OK  # nothing published meanwhile


def test_python_writer_c_reader(peer, name):
    with ndshm.Writer(name) as w:
        assert peer.cmd(f"open {name}") == "ok"
        for code, seed, shape in cases():
            arr = pattern(code, seed, shape)
            version = w.publish(arr)
            reply = peer.cmd("check " + case_line(code, seed, shape))
            assert reply == f"ok {version}", (code, shape, reply)


def test_python_loan_c_reader(peer, name):
    with ndshm.Writer(name) as w:
        assert peer.cmd(f"open {name}") == "ok"
        for code, seed, shape in cases():
            with w.loaned(ndshm.dtype_of(code), shape) as a:
                a[...] = pattern(code, seed, shape)
            reply = peer.cmd("check " + case_line(code, seed, shape))
            assert reply == f"ok {w.version}", (code, shape, reply)


@pytest.mark.parametrize("order", ["F", "strided", "bigendian"])
def test_python_writer_unusual_layouts(peer, name, order):
    code, seed, shape = 11, 77, (6, 5, 4)
    expect = pattern(code, seed, shape)
    if order == "F":
        arr = np.asfortranarray(expect)
    elif order == "strided":
        big = np.zeros((12, 5, 8), expect.dtype)
        big[::2, :, ::2] = expect
        arr = big[::2, :, ::2]
    else:
        arr = expect.astype(">f4")
    assert not arr.flags.c_contiguous or arr.dtype.byteorder == ">"
    with ndshm.Writer(name) as w:
        assert peer.cmd(f"open {name}") == "ok"
        v = w.publish(arr)
        assert peer.cmd("check " + case_line(code, seed, shape)) == f"ok {v}"
