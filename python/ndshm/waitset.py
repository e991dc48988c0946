"""Waiting on many readers at once: ndshm.WaitSet, ndshm.wait_any() and ``await reader.next()``.

A WaitSet wraps the C waitset (docs/api.md, "Waiting on many channels"): the writers of the
members' channels ring it when they publish, so one wait covers thousands of channels and
says which have something new.

    ws = ndshm.WaitSet([cam, lidar, imu])
    for r in ws.wait(1.0):              # the readers with something new ([] on timeout)
        status, arr, info = r.read_next()

    ready = ndshm.wait_any([cam, lidar], timeout=0.5)

    async def consume(r):
        while True:
            status, arr, info = await r.next()   # read_next, awaiting the descriptor

``WaitSet.fileno()`` is an eventfd that is readable while a member has something new (for
select / selectors / an asyncio loop). A reader closed while it is a member leaves the waitset
first (Reader.close does it).
"""

import asyncio
import ctypes
import threading
import weakref
from typing import Iterable, List, Optional

from ._lib import lib
from .core import Reader, Status, _error, _WAIT_SLICE_NS

_vp = ctypes.c_void_p
_lib_ok = hasattr(lib, "ndshm_waitset_create")
if _lib_ok:
    lib.ndshm_waitset_create.restype = ctypes.c_int
    lib.ndshm_waitset_create.argtypes = [ctypes.POINTER(_vp)]
    lib.ndshm_waitset_add.restype = ctypes.c_int
    lib.ndshm_waitset_add.argtypes = [_vp, _vp, ctypes.c_uint64]
    lib.ndshm_waitset_remove.restype = ctypes.c_int
    lib.ndshm_waitset_remove.argtypes = [_vp, _vp]
    lib.ndshm_waitset_wait.restype = ctypes.c_int
    lib.ndshm_waitset_wait.argtypes = [
        _vp,
        ctypes.c_int64,
        ctypes.POINTER(ctypes.c_uint64),
        ctypes.c_size_t,
        ctypes.POINTER(ctypes.c_size_t),
    ]
    lib.ndshm_waitset_fd.restype = ctypes.c_int
    lib.ndshm_waitset_fd.argtypes = [_vp, ctypes.POINTER(ctypes.c_int)]
    lib.ndshm_waitset_close.restype = ctypes.c_int
    lib.ndshm_waitset_close.argtypes = [_vp]


class WaitSet:
    """Readers to wait on together. wait() returns the members that have a version newer
    than their last read (level-triggered: again until read). One thread at a time waits;
    add/remove/close from any thread."""

    def __init__(self, readers: Iterable[Reader] = ()):
        if not _lib_ok:
            raise RuntimeError("this libndshm has no waitsets (older than issue 15)")
        h = _vp()
        rc = lib.ndshm_waitset_create(ctypes.byref(h))
        if rc:
            raise _error(rc, "waitset")
        self._h = h.value
        self._lock = threading.RLock()  # the C waitset is used by one thread at a time
        self._members: dict = {}  # key -> reader
        self._keys: dict = {}  # id(reader) -> key
        self._next_key = 0
        self._buf = (ctypes.c_uint64 * 64)()
        for r in readers:
            self.add(r)

    def add(self, reader: Reader) -> None:
        with self._lock:
            if self._h is None:
                raise ValueError("waitset is closed")
            if id(reader) in self._keys:
                return
            rh = reader._h
            if rh is None:
                raise ValueError("reader is closed")
            key = self._next_key
            self._next_key += 1
            rc = lib.ndshm_waitset_add(self._h, rh, key)
            if rc:
                raise _error(rc, f"waitset add {reader.name!r}")
            self._members[key] = reader
            self._keys[id(reader)] = key
            ws = getattr(reader, "_waitsets", None)
            if ws is None:
                ws = reader._waitsets = weakref.WeakSet()
            ws.add(self)
            if len(self._buf) < len(self._members):
                self._buf = (ctypes.c_uint64 * (2 * len(self._members)))()

    def _forget(self, reader: Reader, h: int) -> None:
        """Reader.close(): leave before the C handle is freed."""
        with self._lock:
            key = self._keys.pop(id(reader), None)
            if key is None or self._h is None:
                return
            del self._members[key]
            lib.ndshm_waitset_remove(self._h, h)

    def remove(self, reader: Reader) -> None:
        h = reader._h
        if h is not None:
            self._forget(reader, h)
        ws = getattr(reader, "_waitsets", None)
        if ws is not None:
            ws.discard(self)

    def __len__(self) -> int:
        return len(self._members)

    def wait(self, timeout: Optional[float] = None) -> List[Reader]:
        """The members with something new, waiting up to timeout seconds (None: forever; 0:
        only look); [] on timeout. The GIL is released while waiting; waits are sliced
        (50 ms) so that signal handlers (Ctrl-C) run."""
        ns = -1 if timeout is None else max(int(timeout * 1e9), 0)
        deadline = None if ns < 0 else lib.ndshm_now_ns() + ns
        n = ctypes.c_size_t()
        while True:
            if deadline is None:
                slice_ns = _WAIT_SLICE_NS
            else:
                slice_ns = max(min(deadline - lib.ndshm_now_ns(), _WAIT_SLICE_NS), 0)
            with self._lock:
                if self._h is None:
                    raise ValueError("waitset is closed")
                buf = self._buf
                rc = lib.ndshm_waitset_wait(self._h, slice_ns, buf, len(buf), ctypes.byref(n))
                if rc == 0:
                    m = self._members
                    return [m[buf[i]] for i in range(n.value) if buf[i] in m]
            if rc < 0:
                raise _error(rc, "waitset wait")
            if deadline is not None and lib.ndshm_now_ns() >= deadline:
                return []

    def fileno(self) -> int:
        """An eventfd readable while a member has something new (then call wait(0))."""
        with self._lock:
            if self._h is None:
                raise ValueError("waitset is closed")
            fd = ctypes.c_int(-1)
            rc = lib.ndshm_waitset_fd(self._h, ctypes.byref(fd))
            if rc:
                raise _error(rc, "waitset fd")
            return fd.value

    def close(self) -> None:
        with self._lock:
            h, self._h = self._h, None
            if h is not None:
                lib.ndshm_waitset_close(h)
            for r in self._members.values():
                ws = getattr(r, "_waitsets", None)
                if ws is not None:
                    ws.discard(self)
            self._members.clear()
            self._keys.clear()

    def __enter__(self) -> "WaitSet":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        if getattr(self, "_h", None) is not None and lib is not None:
            self.close()


def wait_any(readers: Iterable[Reader], timeout: Optional[float] = None) -> List[Reader]:
    """The readers among `readers` that have something new, waiting up to timeout seconds
    ([] on timeout). For repeated waits on the same readers keep a WaitSet instead (this one
    registers and unregisters with every channel on each call)."""
    with WaitSet(readers) as ws:
        return ws.wait(timeout)


async def reader_next(reader: Reader, timeout: Optional[float] = None):
    """read_next(), awaiting the waitset descriptor while nothing is new (Reader.next)."""
    ws = getattr(reader, "_async_ws", None)
    if ws is None or ws._h is None:
        ws = reader._async_ws = WaitSet([reader])
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    fd = ws.fileno()
    while True:
        res = reader.read_next()
        if res[0] == Status.OK:
            return res
        if ws.wait(0):
            continue
        fut = loop.create_future()
        loop.add_reader(fd, lambda: fut.done() or fut.set_result(None))
        try:
            left = None if deadline is None else max(deadline - loop.time(), 0)
            await asyncio.wait_for(fut, left)
        except asyncio.TimeoutError:
            return Status.TIMEOUT, None, None
        finally:
            loop.remove_reader(fd)
