"""The ndsharray face: replace ``import ndsharray`` with ``from ndshm.compat import ndsharray``
(or put this module under the original name: docs/python.md, "Faces under their original
names").

The calls of ndsharray, with its semantics: ``NdShArray(name, array=<empty uint8>, r_w='r'|'w')``,
``write(array)``, ``read() -> (status, array)``, ``read_time_ms``, ``name``, ``access``,
``ndarray_mmap_name``, ``is_valid`` and the module's ``supported_types``.

- ``read()`` returns ``(True, array)`` only for a new, consistent array (one published version,
  guarded by ndshm's seqlock), and ``(False, previous array)`` otherwise: nothing new, nothing
  published yet, or a writer so fast that no consistent copy could be taken. The previous array
  is the last one read, or the constructor's ``array`` before the first read. So the usual
  ``while not status: status, arr = shared.read()`` waits for the next array.
- A reader created before its writer raises FileNotFoundError, as ndsharray's does.
- The writer publishes its constructor's ``array`` (an empty uint8 array by default) at once,
  as ndsharray does. Every change of dtype or shape re-allocates the shared memory, sized for
  the new array (ndshm moves to a new data segment), so ``ndarray_mmap_name`` changes then, as
  ndsharray's does; writing arrays of the same dtype and shape reuses the memory.

What differs, deliberately: a torn array is never returned (ndsharray compares two timestamps
and can accept a mix of two writes); ``read()`` returns a private copy, not a read-only view
that the next write changes under the caller; the writer removes its shared memory when it is
closed, collected or the process exits (ndsharray leaves its files in /dev/shm); a second live
writer on the same name is refused (ndshm.Error E_WRITER_ALIVE) instead of silently sharing the
segment; a writer inherited over fork() is refused in the child (E_FORKED) and the child's exit
never removes the parent's memory.
"""

from __future__ import annotations

import atexit
import mmap
import os
import weakref
from typing import Optional, Tuple

import numpy as np

from ..core import Reader, Status, Writer, stat

__all__ = ["NdShArray", "supported_types"]

# ndsharray's list, in its order (its own tests iterate over it).
supported_types = [
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
    np.complex64,
    np.complex128,
    bool,
]
_SUPPORTED = frozenset(np.dtype(t) for t in supported_types)

_PAGE = mmap.PAGESIZE

_live_writers: "weakref.WeakSet[NdShArray]" = weakref.WeakSet()


@atexit.register
def _close_all():  # no leaked segments at interpreter exit (never a forked child's)
    for s in list(_live_writers):
        w = s._writer
        if w is not None and not w.forked:
            s.close()


def _data_segment(name: str, gen: int) -> str:
    """The data segment of generation gen of channel name, as its file name minus "ndshm."
    (ndshm names it <name>@<gen>.<random token>; the token is found in the directory), or
    <name>@<gen> if that segment is gone already."""
    prefix = f"ndshm.{name}@{gen}."
    try:
        with os.scandir(os.environ.get("NDSHM_DIR") or "/dev/shm") as it:
            for e in it:
                if e.name.startswith(prefix):
                    return e.name[len("ndshm."):]
    except OSError:
        pass
    return f"{name}@{gen}"


def _check_array(array) -> np.dtype:
    if not isinstance(array, np.ndarray):
        raise TypeError("array must be from type np.ndarray.")
    dt = array.dtype
    native = dt.newbyteorder("=") if dt.byteorder not in ("=", "|") else dt
    if native not in _SUPPORTED:
        names = [t.__name__ for t in supported_types]
        raise NotImplementedError(
            f"{dt} is a numpy.dtype which is not supported. "
            f"The following numpy.dtypes are supported: {names}"
        )
    return native


class NdShArray:
    """A named shared ndarray: one writer (r_w='w'), any number of readers (r_w='r')."""

    def __init__(
        self,
        name: str,
        array: np.ndarray = np.ndarray((0,), dtype=np.uint8),
        r_w: Optional[str] = None,
    ):
        if r_w not in ("r", "w", "R", "W"):
            raise ValueError("'r' or 'w' must be specified for input argument 'r_w'.")
        _check_array(array)
        self._name = name
        self._access = r_w.lower()
        self._array: np.ndarray = array
        self._writer: Optional[Writer] = None
        self._reader: Optional[Reader] = None
        self._read_time_ms = 0.0
        self._read_gen: Optional[int] = None  # data segment generation of the last array read
        self._meta: Optional[Tuple[np.dtype, Tuple[int, ...]]] = None  # of the last write
        if self._access == "w":
            self._writer = Writer(name, exist_ok=True, unlink_on_close=True)
            _live_writers.add(self)
            self.write(array)
        else:
            self._reader = Reader(name)  # FileNotFoundError before the writer, as ndsharray

    # -- properties of ndsharray --
    @property
    def name(self) -> str:
        """The name other processes open the array by."""
        return self._name

    @property
    def access(self) -> str:
        """'r' or 'w'."""
        return self._access

    @property
    def read_time_ms(self) -> float:
        """Time between the write() and the read() of the last array read, in ms."""
        return self._read_time_ms

    @property
    def ndarray_mmap_name(self) -> str:
        """Name of the shared memory holding the current array: the file name, without its
        ``ndshm.`` prefix, of the channel's data segment (``<name>@<generation>.<token>``).
        It changes whenever the memory is re-allocated for a new dtype or shape. A reader
        reports the segment of the last array it read (the current one before its first
        read)."""
        gen = self._read_gen if self._access == "r" else None
        if gen is None:
            gen = stat(self._name).generation
        return _data_segment(self._name, gen)

    @property
    def is_valid(self) -> bool:
        """Writer: open and usable in this process. Reader: attached to a channel that holds
        an array."""
        if self._access == "w":
            w = self._writer
            return w is not None and not w.closed and not w.forked
        r = self._reader
        if r is None or r.closed:
            return False
        if self._read_gen is not None:
            return True
        try:
            return stat(self._name).version > 0
        except OSError:
            return False

    # -- writing and reading --
    def write(self, array: np.ndarray) -> None:
        """Publish a copy of array (any supported dtype and shape; a change re-allocates)."""
        if self._writer is None:
            if self._access == "w":
                raise ValueError(f"NdShArray {self._name!r} is closed")
            raise PermissionError(f"NdShArray {self._name!r} was opened with r_w='r'")
        dt = _check_array(array)
        meta = (dt, array.shape)
        if meta != self._meta:
            # ndsharray re-creates its memory, under a new name, for every new dtype or
            # shape: the face has ndshm re-allocate the data segment, sized for the new array
            self._writer.reserve(self._new_capacity(array.nbytes))
            self._meta = meta
        self._writer.publish(array)

    def _new_capacity(self, nbytes: int) -> int:
        """A slot capacity for nbytes that differs from the current one (so that ndshm
        re-allocates): nbytes itself, unless it rounds to the capacity in use (ndshm rounds
        to 64 bytes below 64 KiB, to pages above), then one byte more than that capacity."""
        want = max(nbytes, 1)
        if self._meta is None:
            return want  # the first write: the channel is new
        grain = 64 if want < 65536 else _PAGE
        rounded = (want + grain - 1) // grain * grain
        current = stat(self._name).capacity
        return want if rounded != current else current + 1

    def read(self) -> Tuple[bool, np.ndarray]:
        """(True, new array) for a version not read before, else (False, previous array)."""
        r = self._reader
        if r is None:
            if self._writer is None:
                raise ValueError(f"NdShArray {self._name!r} is closed")
            r = self._reader = Reader(self._name)  # a writer reading its own array
        status, arr, info = r.read()
        if status == Status.REPLACED:  # the channel was re-created under this name: follow
            r.close()
            r = self._reader = Reader(self._name)
            status, arr, info = r.read()
        if status != Status.OK:
            return False, self._array
        self._array = arr
        self._read_time_ms = info.latency_ns / 1e6
        self._read_gen = info.generation
        return True, arr

    def close(self) -> None:
        """Close; the writer also removes the shared memory."""
        w, self._writer = self._writer, None
        r, self._reader = self._reader, None
        if r is not None:
            r.close()
        if w is not None:
            _live_writers.discard(self)
            w.close()  # in a forked child: refused (E_FORKED), nothing removed

    def __enter__(self) -> "NdShArray":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            w = self._writer
            if w is not None and w.forked:  # the parent's: leave it alone
                self._writer = None
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def __repr__(self) -> str:
        return f"<NdShArray {self._name!r} r_w={self._access!r}>"
