"""wea.shared_memory: named arrays in shared memory, in Fortran (column-major) order.

``create_shared_array(name, dtype, dims)`` makes a zero-filled array (FileExistsError if the
name exists); ``attach_shared_array(name)`` maps an existing one (FileNotFoundError if there is
none). Both return the same memory: a store in one process is seen by every other at once.
Names may start with '/', as POSIX shared-memory names do. The metadata (dtype, dims, order)
live in the segment's header, so attach needs nothing but the name. The memory stays until
``unlink_shared_array(name)`` (ndshm.delete_array): attached arrays keep working after it.
"""

from __future__ import annotations

from typing import Any, Sequence, Union


from ...array import attach_array, create_array, delete_array
from ._array import WrappedExchangeArray

__all__ = ["create_shared_array", "attach_shared_array", "unlink_shared_array"]


def create_shared_array(
    name: str, dtype: Any, dims: Union[int, Sequence[int]]
) -> WrappedExchangeArray:
    """Create the shared array `name` of dtype and dims, zero-filled, Fortran order."""
    return create_array(name, dims, dtype, order="F").view(WrappedExchangeArray)


def attach_shared_array(name: str) -> WrappedExchangeArray:
    """Attach the shared array `name` (dtype, dims and order from its header)."""
    return attach_array(name).view(WrappedExchangeArray)


def unlink_shared_array(name: str) -> None:
    """Remove the name (ndshm's addition: wea leaves that to the system)."""
    delete_array(name)
