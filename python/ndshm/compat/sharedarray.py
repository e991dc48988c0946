"""The SharedArray face: ``create``, ``attach``, ``delete``, ``list``.

SharedArray maps one raw buffer into every process: a write in one process is visible in the
others at once, element by element, with no consistency at all. ndshm publishes *versions*,
so the face maps those semantics as follows (what the tests check):

- ``create(name, shape, dtype=float)`` makes the channel and returns a writable ndarray (in
  the creator's private memory), zero-filled and already published as version 1. Changes
  become visible to other processes when you call ``flush(arr)`` — each flush publishes the
  whole array as one consistent version. ``FileExistsError`` if the name is taken.
- ``attach(name)`` returns the newest flushed version as a read-only ndarray (a consistent
  private snapshot; call attach again for a newer one). ``attach(name, ro=False)`` returns a
  writable array whose ``flush`` publishes: it takes over the channel's writer, which works
  only when the previous writer (e.g. the creator) has closed or exited.
- The data outlives the creator until ``delete(name)``, as with SharedArray.
- ``list()`` returns ``ArrayDesc(name, dtype, dims)`` tuples, as SharedArray does.
"""

from __future__ import annotations

from typing import Any, List, NamedTuple, Sequence, Tuple, Union

import numpy as np

from ..core import Error, Reader, Status, Writer, list_channels, unlink

__all__ = ["create", "attach", "delete", "list", "flush", "ArrayDesc"]

_list = list


class ArrayDesc(NamedTuple):
    name: str
    dtype: Any
    dims: Tuple[int, ...]


class _Owned:
    """Base object of the arrays create/attach(ro=False) return: their private buffer and
    the writer that flush() publishes with. The writer closes when the array is collected;
    the channel stays until delete()."""

    __slots__ = ("__array_interface__", "buf", "writer")

    def __init__(self, buf: np.ndarray, writer: Writer):
        self.buf = buf
        self.writer = writer
        self.__array_interface__ = buf.__array_interface__

    def __del__(self):
        w = getattr(self, "writer", None)
        if w is not None:
            w.close()


def _owned_of(arr: np.ndarray) -> _Owned:
    base = arr
    while base is not None and not isinstance(base, _Owned):
        base = getattr(base, "base", None)
    if base is None:
        raise ValueError("not an array from sharedarray.create() or attach(ro=False)")
    return base


def _dims(shape: Union[int, Sequence[int]]) -> Tuple[int, ...]:
    return (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)


def create(name: str, shape: Union[int, Sequence[int]], dtype: Any = float) -> np.ndarray:
    """Create shared array `name` (zero-filled, published). Returns the writable array."""
    buf = np.zeros(_dims(shape), dtype=dtype)
    w = Writer(name)
    try:
        w.publish(buf)
    except BaseException:
        w.close()
        unlink(name, missing_ok=True)
        raise
    return np.asarray(_Owned(buf, w))


def flush(arr: np.ndarray) -> int:
    """Publish the whole array `arr` (or the array a slice of it belongs to) as one new
    version; returns the version number."""
    o = _owned_of(arr)
    return o.writer.publish(o.buf)


def _snapshot(name: str) -> Tuple[np.ndarray, Any]:
    with Reader(name) as r:
        for _ in range(1000):
            status, arr, info = r.read()
            if status == Status.OK:
                return arr, info
            if status == Status.NO_DATA:
                raise Error(-14, f"attach {name!r}: nothing published yet")
            r.wait(0.01)  # CONTENDED: a writer publishing very fast; try again
    raise Error(5, f"attach {name!r}")


def attach(name: str, ro: bool = True) -> np.ndarray:
    """The newest version of shared array `name`: read-only (default), or, with ro=False,
    writable and flushable (taking over the writer of a channel whose writer is gone)."""
    arr, _ = _snapshot(name)
    if ro:
        arr.flags.writeable = False
        return arr
    w = Writer(name, create=False)
    return np.asarray(_Owned(np.ascontiguousarray(arr), w))


def delete(name: str) -> None:
    """Remove shared array `name` (arrays already attached stay usable)."""
    unlink(name)


def list() -> List[ArrayDesc]:  # noqa: A001 - SharedArray's name
    """Every shared array (ndshm channel) on this machine."""
    return [
        ArrayDesc(c.name, c.dtype, c.shape)
        for c in list_channels()
        if c.status == Status.OK and c.dtype is not None
    ]

