"""ctypes declarations of libndshm: the C structs mirrored field by field, and the prototypes.

Nothing here is API. The library is found, in this order, at:

1. ``$NDSHM_LIBRARY`` (a path to ``libndshm.so``);
2. a build tree next to this package (``<repo>/build*/libndshm.so``, ``<repo>/out/*/``);
3. the system loader (``libndshm.so.0`` from an install, or ``ctypes.util.find_library``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os

MAX_DIMS = 32
NAME_MAX = 128

c_u32 = ctypes.c_uint32
c_u64 = ctypes.c_uint64
c_i32 = ctypes.c_int32
c_i64 = ctypes.c_int64


class Options(ctypes.Structure):
    """struct ndshm_options (size-versioned; `size` must be sizeof)."""

    _fields_ = [
        ("size", c_u32),
        ("flags", c_u32),
        ("slots", c_u32),
        ("mode", c_u32),
        ("capacity", c_u64),
        ("retries", c_u32),
        ("spin_ns", c_u32),
        ("growth", c_u32),
        ("reserved_", c_u32),
    ]


class CInfo(ctypes.Structure):
    """struct ndshm_info."""

    _fields_ = [
        ("version", c_u64),
        ("publish_ns", c_u64),
        ("read_ns", c_u64),
        ("latency_ns", c_u64),
        ("dropped", c_u64),
        ("nbytes", c_u64),
        ("generation", c_u64),
        ("flags", c_u32),
        ("dtype", c_i32),
        ("ndim", c_u32),
        ("meta_len", c_u32),
        ("user_ns", c_u64),
        ("user_tag", c_u64),
        ("origin_version", c_u64),
        ("origin_ns", c_u64),
        ("shape", c_u64 * MAX_DIMS),
    ]


class CView(ctypes.Structure):
    """struct ndshm_view."""

    _fields_ = [
        ("data", ctypes.c_void_p),
        ("meta", ctypes.c_void_p),
        ("info", CInfo),
        ("priv_", ctypes.c_void_p * 2),
        ("seq_", c_u64),
    ]


class CChannelInfo(ctypes.Structure):
    """struct ndshm_channel_info."""

    _fields_ = [
        ("name", ctypes.c_char * (NAME_MAX + 1)),
        ("kind", c_i32),
        ("dtype", c_i32),
        ("ndim", c_u32),
        ("order", c_u32),
        ("shape", c_u64 * MAX_DIMS),
        ("slots", c_u32),
        ("mode", c_u32),
        ("capacity", c_u64),
        ("bytes", c_u64),
        ("nbytes", c_u64),
        ("version", c_u64),
        ("publish_ns", c_u64),
        ("generation", c_u64),
        ("reallocs", c_u64),
        ("created_ns", c_u64),
        ("writer_pid", c_i64),
        ("writer_alive", c_i32),
        ("status", c_i32),
        ("attached", c_i32),
        ("flags", c_u32),
    ]


def _candidates():
    env = os.environ.get("NDSHM_LIBRARY")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    for pattern in ("build*/libndshm.so", "out/release/libndshm.so", "out/*/libndshm.so"):
        yield from sorted(glob.glob(os.path.join(repo, pattern)))
    yield "libndshm.so.0"
    found = ctypes.util.find_library("ndshm")
    if found:
        yield found


def _load():
    errors = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path)
        except OSError as e:  # try the next candidate
            errors.append(f"{path}: {e}")
    raise ImportError(
        "ndshm: cannot load libndshm.so; build it (cmake --build build) or set NDSHM_LIBRARY. "
        + "; ".join(errors)
    )


lib = _load()

_P = ctypes.POINTER
_vp = ctypes.c_void_p
_int = ctypes.c_int


def _proto(name, res, *args):
    f = getattr(lib, name)
    f.restype = res
    f.argtypes = list(args)
    return f


_proto("ndshm_status_name", ctypes.c_char_p, _int)
_proto("ndshm_strerror", ctypes.c_char_p, _int)
_proto("ndshm_dtype_size", ctypes.c_size_t, _int)
_proto("ndshm_dtype_str", ctypes.c_char_p, _int)
_proto("ndshm_dtype_name", ctypes.c_char_p, _int)
_proto("ndshm_dtype_parse", _int, ctypes.c_char_p, _P(_int))
_proto("ndshm_writer_create", _int, ctypes.c_char_p, _P(Options), _P(_vp))
_proto("ndshm_writer_open", _int, ctypes.c_char_p, _P(Options), _P(_vp))
_proto("ndshm_publish", _int, _vp, _int, c_u32, _vp, _vp, _P(c_u64))
_proto("ndshm_loan", _int, _vp, _int, c_u32, _vp, _P(_vp))
_proto("ndshm_commit", _int, _vp, _P(c_u64))
_proto("ndshm_cancel", _int, _vp)
_proto("ndshm_writer_reserve", _int, _vp, c_u64)
_proto("ndshm_writer_version", c_u64, _vp)
_proto("ndshm_writer_close", _int, _vp)
_proto("ndshm_reader_open", _int, ctypes.c_char_p, _P(Options), _P(_vp))
_proto("ndshm_read_latest", _int, _vp, _vp, ctypes.c_size_t, _P(CInfo))
_proto("ndshm_read_next", _int, _vp, _vp, ctypes.c_size_t, _P(CInfo))
_proto("ndshm_view_latest", _int, _vp, _P(CView))
_proto("ndshm_view_next", _int, _vp, _P(CView))
_proto("ndshm_view_check", _int, _P(CView))
_proto("ndshm_view_release", _int, _P(CView))
_proto("ndshm_wait", _int, _vp, c_i64)
_proto("ndshm_reader_writer_alive", _int, _vp)
_proto("ndshm_reader_version", c_u64, _vp)
_proto("ndshm_reader_close", _int, _vp)
_proto("ndshm_list", _int, _P(_P(CChannelInfo)), _P(ctypes.c_size_t))
_proto("ndshm_list_free", None, _P(CChannelInfo))
_proto("ndshm_stat", _int, ctypes.c_char_p, _P(CChannelInfo))
_proto("ndshm_unlink", _int, ctypes.c_char_p)
_proto("ndshm_gc", _int, _P(ctypes.c_size_t))
_proto("ndshm_name_check", _int, ctypes.c_char_p)
_proto("ndshm_now_ns", c_u64)
_proto("ndshm_version", ctypes.c_char_p)

# Raw addresses of the hot calls, called through these objects to skip attribute lookups.
read_latest = lib.ndshm_read_latest
read_next = lib.ndshm_read_next
publish = lib.ndshm_publish
