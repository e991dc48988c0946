"""The ndsharray face: switch with ``from ndshm.compat.ndsharray import NdShArray``.

Same calls as ndsharray: ``NdShArray(name, array=None, r_w='r'|'w')``, ``write(array)``,
``read() -> (status, array)``, ``read_time_ms``, ``name``, ``access``, ``is_valid``. What
changes underneath:

- every array read is one published version (a seqlock guards it): no torn frames, where
  ndsharray compares two timestamps and can accept a mix of two writes;
- a change of dtype or shape re-allocates silently, as in ndsharray;
- the writer removes the shared memory when it is closed, collected or the process exits
  (``close()`` or ``with``), so no segment is leaked;
- ``read()`` returns ``(False, None)`` until something is published (and until the channel
  exists: a reader may start before its writer); ``(True, array)`` for the newest version,
  which is the previous array again when nothing new came (``is_new`` tells them apart).
"""

from __future__ import annotations

import atexit
import weakref
from typing import Optional, Tuple

import numpy as np

from ..core import Error, Reader, Status, Writer

__all__ = ["NdShArray"]

_live_writers: "weakref.WeakSet[NdShArray]" = weakref.WeakSet()


@atexit.register
def _close_all():  # no leaked segments at interpreter exit
    for s in list(_live_writers):
        s.close()


class NdShArray:
    """A named shared ndarray: one writer (r_w='w'), any number of readers (r_w='r')."""

    def __init__(self, name: str, array: Optional[np.ndarray] = None, r_w: str = "r"):
        if r_w not in ("r", "w"):
            raise ValueError("r_w must be 'r' or 'w'")
        self._name = name
        self._access = r_w
        self._writer: Optional[Writer] = None
        self._reader: Optional[Reader] = None
        self._last: Optional[np.ndarray] = None
        self._read_time_ms = 0.0
        self.is_new = False  # whether the last read() returned a version not seen before
        if r_w == "w":
            self._writer = Writer(name, exist_ok=True, unlink_on_close=True)
            _live_writers.add(self)
            if array is not None:
                self.write(array)
        else:
            self._attach()

    def _attach(self) -> bool:
        if self._reader is None:
            try:
                self._reader = Reader(self._name)
            except FileNotFoundError:
                return False
        return True

    @property
    def name(self) -> str:
        return self._name

    @property
    def access(self) -> str:
        """'r' or 'w'."""
        return self._access

    @property
    def read_time_ms(self) -> float:
        """Elapsed time between the write() and the read() of the last array, in ms."""
        return self._read_time_ms

    @property
    def is_valid(self) -> bool:
        """Writer: open. Reader: attached and holding a consistent array."""
        if self._access == "w":
            return self._writer is not None and not self._writer.closed
        return self._reader is not None and self._last is not None

    def write(self, array: np.ndarray) -> bool:
        """Publish a copy of array (any numeric dtype and shape; changes re-allocate)."""
        if self._writer is None:
            raise PermissionError(f"NdShArray {self._name!r} was opened with r_w='r'")
        self._writer.publish(array)
        return True

    def read(self) -> Tuple[bool, Optional[np.ndarray]]:
        """(True, newest array) or (False, None) when no consistent array is available."""
        if self._access == "w":
            raise PermissionError(f"NdShArray {self._name!r} was opened with r_w='w'")
        if not self._attach():
            return False, None
        try:
            status, arr, info = self._reader.read()
        except Error:
            return False, None
        if status == Status.OK:
            self._last = arr
            self._read_time_ms = info.latency_ns / 1e6
            self.is_new = True
            return True, arr
        self.is_new = False
        if status == Status.NO_NEW and self._last is not None:
            return True, self._last
        return False, None

    def close(self) -> None:
        """Close; the writer also removes the shared memory."""
        if self._writer is not None:
            self._writer.close()
            _live_writers.discard(self)
        if self._reader is not None:
            self._reader.close()

    def __enter__(self) -> "NdShArray":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def __repr__(self) -> str:
        return f"<NdShArray {self._name!r} r_w={self._access!r} valid={self.is_valid}>"
