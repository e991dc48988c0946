"""ctypes declarations of libndshm: the C structs mirrored field by field, and the prototypes.

Nothing here is API. The library is looked for in this order (docs/python.md, "Finding the
library"); ``path`` and ``rule`` say which one was loaded:

1. ``$NDSHM_LIBRARY``, a path to ``libndshm.so`` (used as given, even a sanitizer build; if it
   cannot be loaded, the import fails: no silent fallback);
2. the library installed with this package: ``cmake --install`` writes ``ndshm/_install.py``
   holding the path of the installed ``libndshm.so.0`` relative to the package directory;
3. only when this package is the one in a source tree (``<repo>/python/ndshm`` next to
   ``<repo>/include/ndshm/ndshm.h``): the newest ``libndshm.so`` of the tree's build
   directories (``build*/``, ``out/*/``) that is not a sanitizer build (its ``CMakeCache.txt``
   sets ``NDSHM_SANITIZER``, or the file references ``__asan_init``/``__tsan_init``/...);
4. the system loader: ``libndshm.so.0`` (``LD_LIBRARY_PATH``, ``ld.so.cache``).
"""

from __future__ import annotations

import ctypes
import glob
import os
import re
from typing import Iterator, List, Optional, Tuple

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


class CWireMeta(ctypes.Structure):
    """struct ndshm_wire_meta (include/ndshm/wire.h)."""

    _fields_ = [
        ("dtype", c_i32),
        ("ndim", c_u32),
        ("shape", c_u64 * MAX_DIMS),
        ("version", c_u64),
        ("publish_ns", c_u64),
        ("publish_real_ns", c_u64),
        ("nbytes", c_u64),
        ("stream_seq", c_u64),
        ("session", c_u64),
        ("flags", c_u32),
        ("format", c_u32),
        ("user_ns", c_u64),
        ("user_tag", c_u64),
        ("origin_version", c_u64),
        ("origin_ns", c_u64),
        ("meta_len", c_u32),
        ("reserved_", c_u32),
        ("meta", ctypes.c_void_p),
        ("channel", c_u64),
    ]


PKG_DIR = os.path.dirname(os.path.abspath(__file__))

# Symbols a sanitizer runtime adds to every instrumented object. Loading such a library into an
# uninstrumented interpreter aborts the process (ASan: "runtime does not come first").
_SANITIZER_MARKS = (
    b"__asan_init", b"__tsan_init", b"__msan_init", b"__ubsan_handle_", b"__hwasan_init"
)
_SANITIZER_CACHE = re.compile(r"^NDSHM_SANITIZER:[A-Z]+=(.+)$", re.M)


def source_tree(pkg_dir: str = PKG_DIR) -> Optional[str]:
    """The repository root if pkg_dir is the package of a source tree, else None."""
    parent = os.path.dirname(pkg_dir)
    repo = os.path.dirname(parent)
    if (
        os.path.basename(pkg_dir) == "ndshm"
        and os.path.basename(parent) == "python"
        and os.path.isfile(os.path.join(repo, "CMakeLists.txt"))
        and os.path.isfile(os.path.join(repo, "include", "ndshm", "ndshm.h"))
    ):
        return repo
    return None


def sanitizer_of(lib_path: str) -> Optional[str]:
    """Why lib_path is a sanitizer build ("CMakeCache: ...", "references __asan_init"), or
    None. Checks the CMakeCache.txt of the build directory holding it, then the file."""
    cache = os.path.join(os.path.dirname(lib_path), "CMakeCache.txt")
    try:
        with open(cache, encoding="utf-8", errors="replace") as f:
            m = _SANITIZER_CACHE.search(f.read())
        if m and m.group(1).strip():
            return f"{cache}: NDSHM_SANITIZER={m.group(1).strip()}"
    except OSError:
        pass
    try:
        with open(lib_path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    for mark in _SANITIZER_MARKS:
        if mark in data:
            return f"references {mark.decode()}"
    return None


def _installed(pkg_dir: str) -> Optional[str]:
    """The library recorded by `cmake --install` in ndshm/_install.py, or None."""
    rec = os.path.join(pkg_dir, "_install.py")
    try:
        with open(rec, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    m = re.search(r"^LIBRARY\s*=\s*(['\"])(.+?)\1", text, re.M)
    if not m:
        return None
    return os.path.normpath(os.path.join(pkg_dir, m.group(2)))


def _build_libraries(repo: str) -> List[str]:
    found = set()
    for pattern in ("build*/libndshm.so", "out/*/libndshm.so"):
        found.update(glob.glob(os.path.join(repo, pattern)))

    def mtime(p: str) -> float:
        try:
            return os.stat(p).st_mtime
        except OSError:
            return 0.0

    return sorted(found, key=lambda p: (-mtime(p), p))


def candidates(
    environ=os.environ, pkg_dir: str = PKG_DIR
) -> Iterator[Tuple[str, str, Optional[str]]]:
    """(path, rule, refused) in the order they are tried; refused says why a candidate is
    skipped (a sanitizer build found by rule 3)."""
    env = environ.get("NDSHM_LIBRARY")
    if env:
        yield env, "NDSHM_LIBRARY", None
        return
    inst = _installed(pkg_dir)
    if inst:
        yield inst, "installed", None
    repo = source_tree(pkg_dir)
    if repo:
        for path in _build_libraries(repo):
            yield path, "source tree", sanitizer_of(path)
    yield "libndshm.so.0", "system", None


path: Optional[str] = None  # the file loaded
rule: Optional[str] = None  # which rule found it


def _loaded_path(handle: ctypes.CDLL, fallback: str) -> str:
    class DlInfo(ctypes.Structure):
        _fields_ = [
            ("dli_fname", ctypes.c_char_p),
            ("dli_fbase", ctypes.c_void_p),
            ("dli_sname", ctypes.c_char_p),
            ("dli_saddr", ctypes.c_void_p),
        ]

    try:
        libc = ctypes.CDLL(None)
        info = DlInfo()
        addr = ctypes.cast(handle.ndshm_version, ctypes.c_void_p)
        if libc.dladdr(addr, ctypes.byref(info)) and info.dli_fname:
            return os.path.realpath(info.dli_fname.decode())
    except (AttributeError, OSError):
        pass
    return fallback


def _load():
    global path, rule
    notes = []
    for cand, why, refused in candidates():
        if refused:
            notes.append(f"{cand}: skipped, a sanitizer build ({refused})")
            continue
        try:
            handle = ctypes.CDLL(cand)
        except OSError as e:
            notes.append(f"{cand} ({why}): {e}")
            if why == "NDSHM_LIBRARY":
                break  # the user named it: do not quietly load another one
            continue
        path, rule = _loaded_path(handle, cand), why
        return handle
    raise ImportError(
        "ndshm: cannot load libndshm: set NDSHM_LIBRARY to its path, install it "
        "(cmake --install), or build it in this source tree (cmake --build build). Tried: "
        + "; ".join(notes)
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
_proto("ndshm_wire_size", _int, _P(CWireMeta), _P(c_u64))
_proto("ndshm_wire_encode", _int, _P(CWireMeta), _vp, _vp, ctypes.c_size_t, _P(ctypes.c_size_t))
_proto("ndshm_wire_decode", _int, _vp, ctypes.c_size_t, _P(CWireMeta), _P(_vp))
_proto("ndshm_wire_realtime_ns", c_u64)

# Raw addresses of the hot calls, called through these objects to skip attribute lookups.
read_latest = lib.ndshm_read_latest
read_next = lib.ndshm_read_next
publish = lib.ndshm_publish
