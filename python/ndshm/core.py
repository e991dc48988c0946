"""The ndshm binding proper: statuses, errors, Writer, Reader, views and channel management."""

from __future__ import annotations

import ctypes
import enum
import errno as _errno
import os
import threading
import time
import weakref
from typing import Any, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _lib
from ._lib import CChannelInfo, CInfo, CView, Options, lib

__all__ = [
    "Status",
    "InfoFlags",
    "Error",
    "Info",
    "ChannelInfo",
    "Writer",
    "Reader",
    "view_check",
    "list_channels",
    "stat",
    "unlink",
    "gc",
    "now_ns",
    "library_version",
    "library_path",
    "dtype_of",
    "MAX_DIMS",
]

MAX_DIMS = _lib.MAX_DIMS

# ----- statuses ----------------------------------------------------------------------------


class Status(enum.IntEnum):
    """Every ndshm status. 0 = OK, positive = normal outcomes, negative = errors."""

    OK = 0
    NO_NEW = 1
    NO_DATA = 2
    TIMEOUT = 3
    WRITER_GONE = 4
    CONTENDED = 5
    OVERWRITTEN = 6
    REPLACED = 7
    E_INVAL = -1
    E_NAME = -2
    E_EXISTS = -3
    E_NOENT = -4
    E_DTYPE = -5
    E_NDIM = -6
    E_OVERFLOW = -7
    E_LIMIT = -8
    E_TOO_SMALL = -9
    E_NOMEM = -10
    E_MAGIC = -11
    E_LAYOUT = -12
    E_CORRUPT = -13
    E_NOT_READY = -14
    E_WRITER_ALIVE = -15
    E_PERM = -16
    E_NOSPC = -17
    E_STATE = -18
    E_CONCURRENT = -19
    E_KIND = -20
    E_SUPERSEDED = -21
    E_FORKED = -22
    E_UNTRUSTED = -23
    E_DIR = -24
    E_SYS = -1000

    def __bool__(self) -> bool:  # `if status:` reads as "got an array"
        return self is Status.OK

    @property
    def message(self) -> str:
        return lib.ndshm_strerror(int(self)).decode()


_STATUS = {int(s): s for s in Status}


def _status(rc: int) -> Status:
    return _STATUS.get(rc, Status.E_SYS if rc <= -1000 else Status.E_INVAL)


class InfoFlags(enum.IntFlag):
    """Bits of Info.flags (ndshm_info_flags)."""

    NONE = 0
    META_CHANGED = 1  # dtype or shape differs from this handle's last read (and on the first)
    REALLOCATED = 2  # the channel moved to a new data segment since the last read
    WRITER_GONE = 4  # the writer closed or died


_FLAGS = [InfoFlags(i) for i in range(8)]  # enum construction is slow: cache the 8 values

# ----- errors ------------------------------------------------------------------------------


class Error(Exception):
    """An ndshm error. ``.status`` is the Status (``.rc`` the raw int, with the errno of an OS
    error folded in), ``.what`` the call and object it concerns. Subclasses also derive from the
    Python exception users expect (FileExistsError, FileNotFoundError, PermissionError,
    ValueError, OSError), with ``.errno`` set for the OSError ones.

    Errors pickle with their status and message (multiprocessing sends a worker's exception
    to the parent by pickling it)."""

    _default_errno: Optional[int] = None

    def __init__(self, rc: int, what: str = ""):
        rc = int(rc)
        text = lib.ndshm_strerror(rc).decode()
        name = lib.ndshm_status_name(rc).decode()
        msg = f"{what}: {text} ({name})" if what else f"{text} ({name})"
        super().__init__(msg)
        self._setup(rc, what)

    def _setup(self, rc: int, what: str) -> None:
        self.rc = rc
        self.status = _status(rc)
        self.what = what
        if self._default_errno is not None:
            self.errno = self._default_errno

    def __reduce__(self):
        # The default (type(self), self.args) would call __init__(message): rebuild from the
        # status, what and the message as it was (the receiver's library may word it
        # differently).
        return (_rebuild_error, (type(self), self.rc, self.what, str(self)))


def _rebuild_error(cls, rc: int, what: str, message: str) -> "Error":
    err = cls.__new__(cls)
    BaseException.__init__(err, message)
    err._setup(rc, what)
    return err


class ExistsError(Error, FileExistsError):
    _default_errno = _errno.EEXIST


class NotFoundError(Error, FileNotFoundError):
    _default_errno = _errno.ENOENT


class PermError(Error, PermissionError):
    _default_errno = _errno.EACCES


class ArgumentError(Error, ValueError):
    pass


class SysError(Error, OSError):
    def _setup(self, rc: int, what: str) -> None:
        super()._setup(rc, what)
        self.errno = -1000 - rc


_ERRORS = {
    -3: ExistsError,
    -4: NotFoundError,
    -16: PermError,
    -1: ArgumentError,
    -2: ArgumentError,
    -5: ArgumentError,
    -6: ArgumentError,
    -7: ArgumentError,
    -8: ArgumentError,
    -24: ArgumentError,
}


def _error(rc: int, what: str = "") -> Error:
    if rc <= -1000:
        return SysError(rc, what)
    return _ERRORS.get(rc, Error)(rc, what)


def _check(rc: int, what: str) -> int:
    if rc < 0:
        raise _error(rc, what)
    return rc


# ----- dtypes ------------------------------------------------------------------------------

_DTYPE_BY_CODE: dict = {}
_CODE_BY_DTYPE: dict = {}
for _code in range(1, 15):
    _dt = np.dtype(lib.ndshm_dtype_str(_code).decode())
    _DTYPE_BY_CODE[_code] = _dt
    _CODE_BY_DTYPE[_dt] = _code


def dtype_of(code: int) -> np.dtype:
    """numpy dtype of an ndshm dtype code (1..14)."""
    try:
        return _DTYPE_BY_CODE[code]
    except KeyError:
        raise _error(-5, f"dtype code {code}") from None


def _code_of(dtype: Any) -> int:
    dt = np.dtype(dtype)
    code = _CODE_BY_DTYPE.get(dt)
    if code is None:
        native = dt.newbyteorder("=") if dt.byteorder == ">" else None
        code = _CODE_BY_DTYPE.get(native) if native is not None else None
        if code is None:
            raise _error(-5, f"dtype {dt}")
    return code


def _name_bytes(name: str) -> bytes:
    if not isinstance(name, str):
        raise TypeError(f"channel name must be str, not {type(name).__name__}")
    b = name.encode("utf-8", "surrogateescape")
    _check(lib.ndshm_name_check(b), repr(name))
    return b


def _options(flags=0, slots=None, capacity=None, mode=None, retries=None, spin_ns=None,
             growth=None):
    o = Options()
    o.size = ctypes.sizeof(Options)
    o.flags = flags
    o.slots = slots or 0
    o.capacity = capacity or 0
    o.mode = mode or 0
    o.retries = retries or 0
    o.spin_ns = spin_ns or 0
    o.growth = _GROWTH[growth]
    return o


# ndshm_growth: how a writer sizes a re-allocation for a version that does not fit
_GROWTH = {None: 0, "double": 0, "exact": 1, "fixed": 2}

# ----- info --------------------------------------------------------------------------------


_INFO_FIELDS = (
    "version",
    "publish_ns",
    "read_ns",
    "latency_ns",
    "dropped",
    "nbytes",
    "generation",
    "flags",
    "dtype",
    "shape",
)


class _InfoMethods:
    """What both kinds of Info share (see Info below)."""

    __slots__ = ()

    @property
    def latency_ms(self) -> float:
        """Write-to-read latency in milliseconds."""
        return self.latency_ns / 1e6

    @property
    def meta_changed(self) -> bool:
        return bool(self.flags & InfoFlags.META_CHANGED)

    @property
    def reallocated(self) -> bool:
        return bool(self.flags & InfoFlags.REALLOCATED)

    @property
    def writer_gone(self) -> bool:
        return bool(self.flags & InfoFlags.WRITER_GONE)

    def __repr__(self) -> str:
        return (
            f"Info(version={self.version}, dtype={self.dtype}, shape={self.shape}, "
            f"nbytes={self.nbytes}, latency={self.latency_ns / 1e3:.1f} us, "
            f"dropped={self.dropped}, generation={self.generation}, flags={self.flags!r})"
        )

    def __reduce__(self):
        return (_rebuild_info, (tuple(getattr(self, f) for f in _INFO_FIELDS),))


class _PyInfo(_InfoMethods):
    """Info of the ctypes path: over the CInfo of its read (its own), each field built when
    read (building all ten up front cost ~1 us per read)."""

    __slots__ = ("_ci",)

    def __init__(self, ci: CInfo):
        self._ci = ci

    version = property(lambda self: self._ci.version, doc="version number")
    publish_ns = property(lambda self: self._ci.publish_ns, doc="writer's clock at publish")
    read_ns = property(lambda self: self._ci.read_ns, doc="reader's clock after the read")
    latency_ns = property(lambda self: self._ci.latency_ns, doc="read_ns - publish_ns")
    dropped = property(lambda self: self._ci.dropped, doc="versions not got since last read")
    nbytes = property(lambda self: self._ci.nbytes, doc="payload bytes")
    generation = property(lambda self: self._ci.generation, doc="data segment generation")

    @property
    def flags(self) -> InfoFlags:
        f = self._ci.flags
        return _FLAGS[f] if f < 8 else InfoFlags(f)

    @property
    def dtype(self) -> Optional[np.dtype]:
        return _DTYPE_BY_CODE.get(self._ci.dtype)

    @property
    def shape(self) -> Tuple[int, ...]:
        ci = self._ci
        return tuple(ci.shape[: ci.ndim])


def _rebuild_info(values) -> "_PyInfo":
    v = dict(zip(_INFO_FIELDS, values))
    ci = CInfo()
    for f in _INFO_FIELDS[:7]:
        setattr(ci, f, v[f])
    ci.flags = int(v["flags"])
    ci.dtype = _CODE_BY_DTYPE.get(v["dtype"], 0) if v["dtype"] is not None else 0
    shape = tuple(v["shape"])[:MAX_DIMS]
    ci.ndim = len(shape)
    ci.shape[: len(shape)] = shape
    return _PyInfo(ci)


# ----- the extension ndshm._fast --------------------------------------------------------
#
# python/ext/_fast.c does Reader.read/read_next/view/view_next in C (docs/python.md, "Speed"):
# same results, errors and close protocol as the ctypes code below, which stays the fallback.
# NDSHM_PY_FAST=0 forces the fallback, NDSHM_PY_FAST=1 makes a missing or unusable extension an
# ImportError; otherwise it is used when it loads. It is looked for in this package (installed
# by cmake --install) and, for a source tree, in python/ beside the build's libndshm that
# _lib.py loaded. fast_error says why it is not in use.

fast_path: Optional[str] = None  # the extension file in use, None for the ctypes path
fast_error: Optional[str] = None


def _find_fast():
    import importlib.machinery
    import importlib.util

    cands = [os.path.join(_lib.PKG_DIR, "_fast" + sfx)
             for sfx in importlib.machinery.EXTENSION_SUFFIXES]
    if _lib.source_tree() is not None and _lib.path:
        d = os.path.join(os.path.dirname(_lib.path), "python")
        cands += [os.path.join(d, "_fast" + sfx) for sfx in importlib.machinery.EXTENSION_SUFFIXES]
    tried = []
    for cand in cands:
        if not os.path.isfile(cand):
            continue
        try:
            spec = importlib.util.spec_from_file_location("ndshm._fast", cand)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
        except (ImportError, OSError) as e:
            tried.append(f"{cand}: {e}")
            continue
        ours = ctypes.cast(lib.ndshm_read_latest, ctypes.c_void_p).value
        if mod.read_latest_address() != ours:  # it bound to another copy of libndshm
            tried.append(f"{cand}: linked to another libndshm than {_lib.path}")
            continue
        if mod.INFO_SIZE != ctypes.sizeof(CInfo):
            tried.append(f"{cand}: struct ndshm_info of {mod.INFO_SIZE} bytes, not "
                         f"{ctypes.sizeof(CInfo)}")
            continue
        return mod, cand, None
    return None, None, "; ".join(tried) or "not built (no _fast module found)"


def _load_fast():
    global fast_path, fast_error
    want = os.environ.get("NDSHM_PY_FAST", "")
    if want == "0":
        fast_error = "NDSHM_PY_FAST=0"
        return None
    mod, fast_path, fast_error = _find_fast()
    if mod is None and want == "1":
        raise ImportError(f"ndshm: NDSHM_PY_FAST=1 but the extension is unusable: {fast_error}")
    return mod


_fast = _load_fast()

if _fast is not None:

    class Info(_InfoMethods, _fast.Info):
        """Metadata of one version: version number, publish time, latency, dropped, flags,
        dtype, shape (read-only; each field is built from the C struct when read)."""

        __slots__ = ()

    _fast.setup(
        tuple(_STATUS[i] for i in range(8)),
        _status,
        _error,
        tuple(_DTYPE_BY_CODE.get(i) for i in range(15)),
        tuple(_FLAGS),
        InfoFlags,
        Info,
    )
    _FastView: Any = _fast.View
else:
    Info = _PyInfo  # type: ignore[misc]
    _FastView = ()
Info.__name__ = Info.__qualname__ = "Info"


class ChannelInfo:
    """One channel on this machine (ndshm_channel_info)."""

    __slots__ = (
        "name",
        "dtype",
        "shape",
        "slots",
        "mode",
        "capacity",
        "bytes",
        "version",
        "publish_ns",
        "generation",
        "reallocs",
        "created_ns",
        "writer_pid",
        "writer_alive",
        "status",
    )

    def __init__(self, c: CChannelInfo):
        self.name: str = c.name.decode("utf-8", "surrogateescape")
        self.dtype: Optional[np.dtype] = _DTYPE_BY_CODE.get(c.dtype)
        self.shape: Tuple[int, ...] = tuple(c.shape[: min(c.ndim, MAX_DIMS)])
        self.slots: int = c.slots
        self.mode: int = c.mode
        self.capacity: int = c.capacity
        self.bytes: int = c.bytes
        self.version: int = c.version
        self.publish_ns: int = c.publish_ns
        self.generation: int = c.generation
        self.reallocs: int = c.reallocs
        self.created_ns: int = c.created_ns
        self.writer_pid: int = c.writer_pid
        self.writer_alive: bool = bool(c.writer_alive)
        self.status: Status = _status(c.status)

    def __repr__(self) -> str:
        alive = "alive" if self.writer_alive else "gone"
        return (
            f"ChannelInfo({self.name!r}, dtype={self.dtype}, shape={self.shape}, "
            f"version={self.version}, slots={self.slots}, capacity={self.capacity}, "
            f"writer={self.writer_pid} ({alive}), status={self.status.name})"
        )


# ----- memory holders: the base objects of arrays over shared memory -----------------------


class _ViewHolder:
    """Owns one ndshm_view. It is the ``.base`` of the read-only ndarray handed out, so the
    mapping lives exactly as long as any array (or slice) over it. Released when collected."""

    __slots__ = ("_view", "__array_interface__", "__weakref__")

    def __init__(self, view: CView, dtype: np.dtype, shape: Tuple[int, ...]):
        self._view = view
        self.__array_interface__ = {
            "version": 3,
            "shape": shape,
            "typestr": dtype.str,
            "data": (view.data or 0, True),  # read-only
            "strides": None,
        }

    def check(self) -> Status:
        return _status(lib.ndshm_view_check(ctypes.byref(self._view)))

    def __del__(self):
        v = self._view
        if v is not None and lib is not None:
            self._view = None
            lib.ndshm_view_release(ctypes.byref(v))


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.munmap.restype = ctypes.c_int
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_PAGE = os.sysconf("SC_PAGE_SIZE")
_c_char = ctypes.c_char
_MAP_PRIVATE, _MAP_ANONYMOUS, _MAP_FIXED_NOREPLACE = 0x02, 0x20, 0x100000
_PROT_RW = 0x1 | 0x2
_MAP_FAILED = ctypes.c_void_p(-1).value


class _LoanHolder:
    """The ``.base`` of a loaned (writable) ndarray. After the loan is committed or cancelled
    the writer may unmap the slot (re-allocation, cancel of a new segment, close). The writer
    then *fences* every loaned array still referenced: it maps private zero pages over the
    freed range (MAP_FIXED_NOREPLACE, so nothing else is ever clobbered), so a stale array
    reads zeros instead of crashing the process. The fence is undone when the array dies."""

    __slots__ = ("__array_interface__", "addr", "nbytes", "fence", "__weakref__")

    def __init__(self, addr: int, nbytes: int, dtype: np.dtype, shape: Tuple[int, ...]):
        self.addr = addr
        self.nbytes = nbytes
        self.fence: Optional[Tuple[int, int]] = None
        self.__array_interface__ = {
            "version": 3,
            "shape": shape,
            "typestr": dtype.str,
            "data": (addr, False),
            "strides": None,
        }

    def try_fence(self) -> bool:
        """Cover the array's pages if they are no longer mapped. True once fenced."""
        if self.fence is not None or self.nbytes == 0:
            return True
        start = self.addr & ~(_PAGE - 1)
        end = (self.addr + self.nbytes + _PAGE - 1) & ~(_PAGE - 1)
        flags = _MAP_PRIVATE | _MAP_ANONYMOUS | _MAP_FIXED_NOREPLACE
        p = _libc.mmap(start, end - start, _PROT_RW, flags, -1, 0)
        if p == start:
            self.fence = (start, end - start)
            return True
        if p is not None and p != _MAP_FAILED:  # a kernel without NOREPLACE: not our range
            _libc.munmap(p, end - start)
        return False  # EEXIST: still mapped (by the writer), nothing to do yet

    def __del__(self):
        f = self.fence
        if f is not None and _libc is not None:
            self.fence = None
            _libc.munmap(f[0], f[1])


def _holder_of(arr: np.ndarray):
    base = arr
    while base is not None and not isinstance(base, (_ViewHolder, _LoanHolder, _FastView)):
        base = getattr(base, "base", None)
    return base


def view_check(arr: np.ndarray) -> Status:
    """Status.OK if the view ``arr`` (or any slice of it) still holds the version it was
    taken for — everything read from it before this call was that version —, or
    Status.OVERWRITTEN if the writer has started to reuse its slot. Raises ValueError for an
    array that is not a view."""
    h = _holder_of(arr)
    if not isinstance(h, (_ViewHolder, _FastView)):
        raise ValueError("not an ndshm view (use Reader.view())")
    return h.check()


# ----- fork ----------------------------------------------------------------------------------
#
# A writer handle belongs to the process that opened it. After fork() the child holds a copy of
# the parent's handle: publishing through it would reuse the parent's version numbers and its
# close (explicit, by garbage collection or at exit) would unlink the parent's channel. So every
# live Writer is disowned in the child: any call raises Error(E_FORKED) and collection does
# nothing. The C library refuses the same calls with NDSHM_E_FORKED; the Python check also holds
# with a library that does not. Readers inherited over fork keep working (their lock, which a
# thread of the parent may have held at the fork, is replaced).

_WRITERS: "weakref.WeakSet[Writer]" = weakref.WeakSet()
_READERS: "weakref.WeakSet[Reader]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for w in list(_WRITERS):
        w._disown()
    for r in list(_READERS):
        r._lock = threading.Lock()
        r._calls = []  # calls of the parent's other threads do not exist here


os.register_at_fork(after_in_child=_after_fork_in_child)


def _drain(calls: list) -> None:
    """Wait until no other thread is inside a C call on a handle being closed. Every call
    appends to the handle's list before it reads the handle and pops after the C call
    (list.append/pop are atomic under the GIL; the append sits inside the try whose finally
    pops, and CPython delivers a signal's exception only after a call completes, so no entry
    is ever left behind); close() clears the handle first, then drains, so no call can still
    use the C handle once it is freed. A reader's wait() re-reads the handle every slice, so
    this waits at most one slice (50 ms)."""
    while calls:
        time.sleep(0.0005)


class _Call:
    """`with handle._call() as h`: the C handle, marked in use for the call (see _drain);
    the owner's _unusable() is raised if it is closed."""

    __slots__ = ("o",)

    def __init__(self, o):
        self.o = o

    def __enter__(self) -> int:
        o = self.o
        calls = o._calls
        try:
            calls.append(None)  # inside the try: a KeyboardInterrupt right after it pops too
            h = o._h
            if h is None:
                raise o._unusable()
        except BaseException:
            calls.pop()
            raise
        return h

    def __exit__(self, *exc) -> None:
        self.o._calls.pop()


def _refuse_pickle(obj, what: str):
    raise TypeError(
        f"cannot pickle {obj!r}: an ndshm {what} is a handle of the process that opened it and "
        f"cannot be sent to another process; send the channel name ({obj.name!r}) and open a "
        f"{what} there"
    )


# ----- writer ------------------------------------------------------------------------------

_FLAG_UNLINK_ON_CLOSE = 1
_FLAG_OPEN_OR_CREATE = 2
_FLAG_FORCE_TAKEOVER = 4
_FLAG_REPLAY = 8
_FLAG_PERSISTENT = 16
_FLAG_AWAIT_WRITER = 32


class _ShapeCache:
    """ctypes uint64 shape arrays, cached by shape tuple (the hot path re-uses a few)."""

    __slots__ = ("d",)

    def __init__(self):
        self.d: dict = {}

    def get(self, shape: Tuple[int, ...]):
        s = self.d.get(shape)
        if s is None:
            if len(shape) > MAX_DIMS:
                raise _error(-6, f"shape {shape}")
            if len(self.d) > 64:
                self.d.clear()
            s = (ctypes.c_uint64 * max(len(shape), 1))(*shape)
            self.d[shape] = s
        return s


class Writer:
    """The single writer of a channel.

    >>> with ndshm.Writer("cam", unlink_on_close=True) as w:
    ...     w.publish(frame)                       # by copy
    ...     with w.loaned(np.uint8, (1080, 1920, 3)) as a:
    ...         camera.fill(a)                     # zero-copy: fill shared memory in place

    create=True (default) makes a new channel (FileExistsError if it exists, unless
    exist_ok=True); create=False takes over an existing one whose writer is gone
    (force_takeover=True: even if it seems alive). unlink_on_close removes the channel when
    the writer closes; otherwise it outlives the process until ndshm.unlink(name) or, once its
    writer is gone, ndshm.gc() — unless persistent=True (gc keeps it). growth: how a version
    that does not fit re-allocates: "double" (default), "exact", or "fixed" (refused).
    """

    def __init__(
        self,
        name: str,
        *,
        create: bool = True,
        exist_ok: bool = False,
        unlink_on_close: bool = False,
        force_takeover: bool = False,
        persistent: bool = False,
        slots: Optional[int] = None,
        capacity: Optional[int] = None,
        mode: Optional[int] = None,
        growth: Optional[str] = None,
    ):
        self._h: Optional[int] = None
        self._calls: list = []  # C calls in progress on this handle (see _drain)
        self._pid = os.getpid()
        self._forked = False
        self.name = name
        flags = (_FLAG_UNLINK_ON_CLOSE if unlink_on_close else 0) | (
            _FLAG_FORCE_TAKEOVER if force_takeover else 0
        )
        if exist_ok:
            flags |= _FLAG_OPEN_OR_CREATE
        if persistent:
            flags |= _FLAG_PERSISTENT
        if growth not in _GROWTH:
            raise _error(-1, f"growth must be 'double', 'exact' or 'fixed', not {growth!r}")
        opts = _options(flags, slots, capacity, mode, growth=growth)
        h = ctypes.c_void_p()
        fn = lib.ndshm_writer_create if create else lib.ndshm_writer_open
        _check(fn(_name_bytes(name), ctypes.byref(opts), ctypes.byref(h)), f"writer {name!r}")
        self._h = h.value
        self._shapes = _ShapeCache()
        self._ver = ctypes.c_uint64()
        self._loan: Optional[_LoanHolder] = None
        self._stale: List[weakref.ref] = []  # loaned arrays that may outlive their mapping
        _WRITERS.add(self)

    def _disown(self) -> None:
        """In a forked child: forget the parent's handle without touching it."""
        if self._h is not None:
            self._h = None
            self._forked = True
            self._loan = None
            self._stale = []

    def _call(self) -> "_Call":
        return _Call(self)

    def _unusable(self) -> Exception:
        if self._forked or os.getpid() != self._pid:
            self._disown()
            return _error(
                -22, f"writer {self.name!r} (opened by process {self._pid}, this is {os.getpid()})"
            )
        return ValueError("writer is closed")

    # -- publishing --
    def publish(self, array: Any) -> int:
        """Publish one version by copy; returns its version number. Any numeric array (or
        anything np.asarray accepts); a non-C-contiguous or big-endian one is copied once."""
        a = array if type(array) is np.ndarray else np.asarray(array)
        code = _CODE_BY_DTYPE.get(a.dtype)
        if code is None:
            code = _code_of(a.dtype)
            a = a.astype(a.dtype.newbyteorder("="))
        if not a.flags.c_contiguous:
            a = np.ascontiguousarray(a)
        shape = a.shape
        calls = self._calls
        try:
            calls.append(None)
            h = self._h
            if h is None:
                raise self._unusable()
            rc = _lib.publish(
                h, code, len(shape), self._shapes.get(shape), a.ctypes.data,
                ctypes.byref(self._ver)
            )
        finally:
            calls.pop()
        if rc < 0:
            raise _error(rc, f"publish on {self.name!r}")
        if self._stale:
            self._fence()
        return self._ver.value

    def loan(self, dtype: Any, shape: Union[int, Sequence[int]]) -> np.ndarray:
        """Zero-copy publish, step 1: a writable ndarray over the next slot. Fill it, then
        commit() (or cancel()). Nothing is visible to readers before commit. Do not use the
        array after commit/cancel: it is the slot the writer reuses (if it was unmapped in the
        meantime the array reads zeros; it never crashes the process)."""
        dt = np.dtype(dtype)
        code = _code_of(dt)
        dt = _DTYPE_BY_CODE[code]
        shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
        p = ctypes.c_void_p()
        with self._call() as h:
            rc = lib.ndshm_loan(h, code, len(shape), self._shapes.get(shape), ctypes.byref(p))
        if rc < 0:
            raise _error(rc, f"loan on {self.name!r}")
        nbytes = int(np.prod(shape, dtype=np.uint64)) * dt.itemsize
        holder = _LoanHolder(p.value or 0, nbytes, dt, shape)
        self._loan = holder
        return np.asarray(holder)

    def _retire_loan(self):
        if self._loan is not None:
            self._stale.append(weakref.ref(self._loan))
            self._loan = None

    def commit(self) -> int:
        """Publish the loaned slot; returns the version number."""
        with self._call() as h:
            rc = lib.ndshm_commit(h, ctypes.byref(self._ver))
        _check(rc, f"commit on {self.name!r}")
        self._retire_loan()
        self._fence()
        return self._ver.value

    def cancel(self) -> None:
        """Abandon the loan; nothing of it becomes visible."""
        with self._call() as h:
            rc = lib.ndshm_cancel(h)
        _check(rc, f"cancel on {self.name!r}")
        self._retire_loan()
        self._fence()

    class _Loaned:
        def __init__(self, w: "Writer", dtype, shape):
            self.w, self.dtype, self.shape = w, dtype, shape
            self.version: Optional[int] = None

        def __enter__(self) -> np.ndarray:
            return self.w.loan(self.dtype, self.shape)

        def __exit__(self, et, ev, tb):
            if et is None:
                self.version = self.w.commit()
            elif self.w._h is not None:
                self.w.cancel()
            return False

    def loaned(self, dtype: Any, shape: Union[int, Sequence[int]]) -> "Writer._Loaned":
        """Context manager around loan(): commits on normal exit, cancels on an exception."""
        return Writer._Loaned(self, dtype, shape)

    def _fence(self):
        live = []
        for ref in self._stale:
            h = ref()
            if h is not None and not h.try_fence():
                live.append(ref)
        self._stale = live

    def reserve(self, capacity: int) -> None:
        """Make the next publish move to a data segment with this slot capacity (bytes)."""
        with self._call() as h:
            rc = lib.ndshm_writer_reserve(h, int(capacity))
        _check(rc, f"reserve on {self.name!r}")

    @property
    def version(self) -> int:
        """Version number of the last publish (0 = none)."""
        if self._h is None:
            if self._forked:
                raise self._unusable()
            return 0
        calls = self._calls
        try:
            calls.append(None)
            h = self._h
            return lib.ndshm_writer_version(h) if h is not None else 0
        finally:
            calls.pop()

    @property
    def closed(self) -> bool:
        """Closed by close() (False for a handle inherited over fork: it is the parent's)."""
        return self._h is None and not self._forked

    @property
    def forked(self) -> bool:
        """True in a process that inherited this writer over fork(): every call is refused."""
        return self._forked or os.getpid() != self._pid

    def close(self) -> None:
        """Close (cancels an open loan; unlinks the channel if unlink_on_close). Readers see
        the writer as gone. In a forked child: refused with Error(E_FORKED), nothing touched."""
        if self._forked or (self._h is not None and os.getpid() != self._pid):
            raise self._unusable()
        h, self._h = self._h, None
        if h is not None:
            _drain(self._calls)  # a publish in another thread finishes first
            lib.ndshm_writer_close(h)
            self._retire_loan()
            self._fence()

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            if getattr(self, "_h", None) is not None and lib is not None:
                if os.getpid() == self._pid:
                    self.close()
                else:  # a forked child collecting the parent's writer: never close it
                    self._disown()
        except Exception:  # interpreter shutdown
            pass

    def __reduce_ex__(self, protocol):
        _refuse_pickle(self, "Writer")

    def __repr__(self) -> str:
        if self.forked:
            state = f"inherited over fork from process {self._pid}: unusable here"
        elif self._h is None:
            state = "closed"
        else:
            state = f"version={self.version}"
        return f"<ndshm.Writer {self.name!r} {state}>"


# ----- reader ------------------------------------------------------------------------------

ReadResult = Tuple[Status, Optional[np.ndarray], Optional[Info]]

# Longest C wait: a blocked wait() returns to the interpreter at least this often, so signal
# handlers (Ctrl-C) run within ~50 ms.
_WAIT_SLICE_NS = 50_000_000


class Reader:
    """A reader of a channel. read() gives the newest version (a private copy), read_next()
    every version in order, view()/view_next() a zero-copy read-only array.

    >>> with ndshm.Reader("cam") as r:
    ...     while r.wait(1.0) == ndshm.Status.OK:
    ...         status, frame, info = r.read()
    ...         if status: print(frame.mean(), info.latency_ms)

    replay=True: the first read_next() starts at the oldest version still present.
    await_writer=True: wait() keeps waiting while the channel has no writer (until a new
    version, the timeout or the channel's replacement) instead of returning WRITER_GONE.
    """

    def __init__(
        self,
        name: str,
        *,
        replay: bool = False,
        await_writer: bool = False,
        retries: Optional[int] = None,
        spin_ns: Optional[int] = None,
    ):
        self._h: Optional[int] = None
        self._calls: list = []  # C calls in progress on this handle (see _drain)
        self.name = name
        flags = (_FLAG_REPLAY if replay else 0) | (_FLAG_AWAIT_WRITER if await_writer else 0)
        opts = _options(flags, retries=retries, spin_ns=spin_ns)
        h = ctypes.c_void_p()
        rc = lib.ndshm_reader_open(_name_bytes(name), ctypes.byref(opts), ctypes.byref(h))
        _check(rc, f"reader {name!r}")
        self._h = h.value
        self._size = 64  # buffer size for the next read: the last array's size
        self._spare: Optional[np.ndarray] = None  # a buffer allocated but not handed out
        self._lock = threading.Lock()
        _READERS.add(self)

    def _unusable(self) -> Exception:
        return ValueError("reader is closed")

    def _call(self) -> _Call:
        return _Call(self)

    def _read(self, fn, out: Optional[np.ndarray]) -> ReadResult:
        calls = self._calls
        try:
            calls.append(None)  # see _drain
            h = self._h
            if h is None:
                raise ValueError("reader is closed")
            ci = CInfo()
            if out is not None:
                return self._read_into(h, fn, out, ci)
            with self._lock:  # threads sharing the handle never get the same spare buffer
                spare, self._spare = self._spare, None
            size = self._size
            buf = spare if spare is not None and spare.nbytes >= size else np.empty(size, np.uint8)
            for attempt in range(64):
                rc = fn(h, ctypes.byref(_c_char.from_buffer(buf)), buf.nbytes, ctypes.byref(ci))
                if rc != -9:
                    break
                # E_TOO_SMALL: info.nbytes is the size needed. Against a writer whose arrays keep
                # growing faster than we allocate, grow geometrically after the first miss.
                size = max(ci.nbytes, 64) if attempt == 0 else max(ci.nbytes, 2 * buf.nbytes)
                buf = np.empty(size, np.uint8)
            if rc != 0:
                self._spare = buf
                if rc < 0:
                    raise _error(rc, f"read on {self.name!r}")
                return _STATUS[rc], None, None
            n = ci.nbytes
            self._size = max(n, 64)
            dt = _DTYPE_BY_CODE[ci.dtype]
            arr = buf[:n].view(dt).reshape(tuple(ci.shape[: ci.ndim]))
            return Status.OK, arr, _PyInfo(ci)
        finally:
            calls.pop()

    def _read_into(self, h: int, fn, out: np.ndarray, ci: CInfo) -> ReadResult:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a numpy.ndarray, not {type(out).__name__}")
        flags = out.flags
        if not (flags.c_contiguous and flags.writeable):
            raise ValueError("out must be a writable C-contiguous array")
        n = out.nbytes
        # a ctypes object over out's buffer: 4x cheaper than out.ctypes.data
        p = ctypes.byref(_c_char.from_buffer(out)) if n else out.ctypes.data
        rc = fn(h, p, n, ctypes.byref(ci))
        if rc == -9:
            raise ValueError(
                f"out holds {n} bytes, the array needs {ci.nbytes} "
                "(nothing was read; the reader did not advance)"
            )
        if rc != 0:
            if rc < 0:
                raise _error(rc, f"read on {self.name!r}")
            return _STATUS[rc], None, None
        dt = _DTYPE_BY_CODE[ci.dtype]
        shape = tuple(ci.shape[: ci.ndim])
        if out.dtype == dt and out.shape == shape:
            return Status.OK, out, _PyInfo(ci)
        flat = out.reshape(-1).view(np.uint8)
        return Status.OK, flat[: ci.nbytes].view(dt).reshape(shape), _PyInfo(ci)

    def read(self, out: Optional[np.ndarray] = None) -> ReadResult:
        """The newest version, as (status, array, info). status is Status.OK (truthy) with a
        private copy, or NO_NEW / NO_DATA / CONTENDED with (None, None). With out=, copies
        into that buffer (no allocation) and returns an array over it."""
        return self._read(_lib.read_latest, out)

    def read_next(self, out: Optional[np.ndarray] = None) -> ReadResult:
        """The version after this handle's last read (every version, in order); info.dropped
        counts versions lost because the writer lapped this reader."""
        return self._read(_lib.read_next, out)

    def _view(self, fn) -> ReadResult:
        v = CView()
        with self._call() as h:
            rc = fn(h, ctypes.byref(v))
        if rc != 0:
            if rc < 0:
                raise _error(rc, f"view on {self.name!r}")
            return _STATUS[rc], None, None
        ci = CInfo.from_buffer_copy(v.info)  # the view's own is cleared when it is released
        holder = _ViewHolder(v, _DTYPE_BY_CODE[ci.dtype], tuple(ci.shape[: ci.ndim]))
        return Status.OK, np.asarray(holder), _PyInfo(ci)

    def view(self) -> ReadResult:
        """Zero-copy: the newest version as a read-only ndarray over shared memory. The array
        keeps its mapping alive (also after close()). The writer may reuse the slot after
        N - 1 further publishes: call ndshm.view_check(array) after using the data; OK means
        everything read before the check was that version."""
        return self._view(lib.ndshm_view_latest)

    def view_next(self) -> ReadResult:
        """Zero-copy read_next()."""
        return self._view(lib.ndshm_view_next)

    def wait(self, timeout: Optional[float] = None) -> Status:
        """Wait until a version newer than the last read exists: Status.OK, TIMEOUT,
        WRITER_GONE (the writer closed or died and nothing newer is left; not with
        await_writer), or REPLACED (the name now belongs to a new channel: open a new Reader
        to follow it). timeout in seconds; None waits forever. The GIL is released while
        waiting, and the wait is sliced (C waits of at most 50 ms) so that Ctrl-C and other
        signal handlers run within one slice: KeyboardInterrupt is raised from here. A
        close() from another thread ends it within one slice (ValueError: reader is
        closed)."""
        wait = lib.ndshm_wait
        calls = self._calls
        ns = -1 if timeout is None else max(int(timeout * 1e9), 0)
        deadline = None if ns < 0 or ns <= _WAIT_SLICE_NS else lib.ndshm_now_ns() + ns
        while True:
            if ns < 0:
                slice_ns, last = _WAIT_SLICE_NS, False
            elif deadline is None:
                slice_ns, last = ns, True
            else:
                left = deadline - lib.ndshm_now_ns()
                slice_ns, last = max(min(left, _WAIT_SLICE_NS), 0), left <= _WAIT_SLICE_NS
            try:
                calls.append(None)  # see _drain
                h = self._h
                if h is None:
                    raise ValueError("reader is closed")
                rc = wait(h, slice_ns)
            finally:
                calls.pop()
            # a slice's TIMEOUT: Python runs pending signal handlers before the next slice
            if rc != 3 or last:
                break
        if rc < 0:
            raise _error(rc, f"wait on {self.name!r}")
        return _STATUS[rc]

    def frames(self, timeout: Optional[float] = None, *, every: bool = False):
        """Iterate (array, info) as versions arrive until the writer is gone or a wait times
        out. every=True yields every version (read_next), else the newest (read)."""
        read = self.read_next if every else self.read
        while True:
            st, arr, info = read()
            if st == Status.OK:
                yield arr, info
                continue
            w = self.wait(timeout)
            if w != Status.OK:
                return

    @property
    def writer_alive(self) -> bool:
        """Whether the channel's writer is alive (a syscall)."""
        with self._call() as h:
            return bool(lib.ndshm_reader_writer_alive(h))

    @property
    def version(self) -> int:
        """This handle's last version read (0 = none)."""
        calls = self._calls
        try:
            calls.append(None)
            h = self._h
            return lib.ndshm_reader_version(h) if h is not None else 0
        finally:
            calls.pop()

    @property
    def closed(self) -> bool:
        return self._h is None

    def close(self) -> None:
        """Close. Views still referenced keep their mapping until they are collected. Calls
        of other threads on this reader finish first (a wait() within one slice); later
        ones raise ValueError."""
        h, self._h = self._h, None
        if h is not None:
            _drain(self._calls)
            for ws in list(getattr(self, "_waitsets", ())):  # leave waitsets first (waitset.py)
                ws._forget(self, h)
            aws = getattr(self, "_async_ws", None)
            if aws is not None:
                aws.close()
            lib.ndshm_reader_close(h)

    async def next(self, timeout: Optional[float] = None) -> ReadResult:
        """read_next() for asyncio: awaits the channel's waitset descriptor while nothing is
        new (no thread blocked, no polling). (Status.TIMEOUT, None, None) after timeout
        seconds. See ndshm.waitset."""
        from .waitset import reader_next

        return await reader_next(self, timeout)

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        if getattr(self, "_h", None) is not None and lib is not None:
            self.close()

    def __reduce_ex__(self, protocol):
        _refuse_pickle(self, "Reader")

    def __repr__(self) -> str:
        state = "closed" if self._h is None else f"version={self.version}"
        return f"<ndshm.Reader {self.name!r} {state}>"

    def __iter__(self) -> Iterator[Tuple[np.ndarray, Info]]:
        return self.frames()


def _use_fast() -> None:
    """Reader's hot methods through ndshm._fast (same signatures and docstrings)."""
    fread, fview = _fast.read, _fast.view

    def read(self, out=None):
        return fread(self, 0, out)

    def read_next(self, out=None):
        return fread(self, 1, out)

    def view(self):
        return fview(self, 0)

    def view_next(self):
        return fview(self, 1)

    for f in (read, read_next, view, view_next):
        f.__doc__ = getattr(Reader, f.__name__).__doc__
        f.__qualname__ = f"Reader.{f.__name__}"
        setattr(Reader, f.__name__, f)


if _fast is not None:
    _use_fast()


# ----- channels ----------------------------------------------------------------------------


def list_channels() -> List[ChannelInfo]:
    """Every channel on this machine (sorted by name); unreadable ones carry a .status."""
    items = ctypes.POINTER(CChannelInfo)()
    n = ctypes.c_size_t()
    _check(lib.ndshm_list(ctypes.byref(items), ctypes.byref(n)), "list")
    try:
        return [ChannelInfo(items[i]) for i in range(n.value)]
    finally:
        lib.ndshm_list_free(items)


def stat(name: str) -> ChannelInfo:
    """One channel's description (FileNotFoundError if it does not exist)."""
    c = CChannelInfo()
    _check(lib.ndshm_stat(_name_bytes(name), ctypes.byref(c)), f"stat {name!r}")
    return ChannelInfo(c)


def unlink(name: str, missing_ok: bool = False) -> None:
    """Remove a channel's segments (attached readers and writer keep their mappings)."""
    rc = lib.ndshm_unlink(_name_bytes(name))
    if rc == -4 and missing_ok:
        return
    _check(rc, f"unlink {name!r}")


def gc() -> int:
    """Unlink every channel whose writer is gone; returns how many were removed."""
    n = ctypes.c_size_t()
    _check(lib.ndshm_gc(ctypes.byref(n)), "gc")
    return n.value


def now_ns() -> int:
    """CLOCK_MONOTONIC in ns, the clock of Info.publish_ns and read_ns."""
    return lib.ndshm_now_ns()


def library_version() -> str:
    """The loaded libndshm's version, "MAJOR.MINOR.PATCH"."""
    return lib.ndshm_version().decode()


def library_path() -> str:
    """The libndshm file this process loaded (see docs/python.md, "Finding the library")."""
    return _lib.path
