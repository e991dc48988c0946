"""The SharedArray face: replace ``import SharedArray as sa`` with
``from ndshm.compat import sharedarray as sa`` (or use the ``SharedArray`` shim package).

Built on ndshm's shared arrays: one array that every attached process maps and changes in
place, exactly SharedArray's model.

- ``create(name, shape, dtype=float)``: a new zero-filled array in shared memory, returned as a
  writable ndarray over it. FileExistsError if the name is taken.
- ``attach(name, ro=False)``: the same memory (a store by any process is visible to all at
  once). ``ro=True`` maps it read-only. FileNotFoundError if there is no such array.
- ``delete(name)``: removes the name; arrays already attached keep working, and the memory is
  freed when the last of them is gone. FileNotFoundError if there is no such array.
- ``list()``: every shared array, as ``ArrayDesc(name, dtype, dims)``.

Dropping an array (``del a``) only detaches it from this process; the data outlive every
process until ``delete``. Names may carry SharedArray's ``shm://`` prefix; ``file://`` (an
array in a regular file) is not supported and raises ValueError.
"""

from __future__ import annotations

from typing import Any, List, NamedTuple, Sequence, Tuple, Union

import numpy as np

from ..array import attach_array, create_array, delete_array, list_arrays

__all__ = ["create", "attach", "delete", "list", "ArrayDesc"]


class ArrayDesc(NamedTuple):
    """One entry of list(): what SharedArray reports per array."""

    name: str
    dtype: np.dtype
    dims: Tuple[int, ...]


def _name(name: str) -> str:
    if isinstance(name, str) and name.startswith("file://"):
        raise ValueError(
            f"{name!r}: file-backed arrays are not supported by ndshm's SharedArray face; "
            "use a name in shared memory (optionally with 'shm://')"
        )
    return name


def create(name: str, shape: Union[int, Sequence[int]], dtype: Any = float) -> np.ndarray:
    """Create shared array `name` (zero-filled) and return it."""
    return create_array(_name(name), shape, dtype)


def attach(name: str, ro: bool = False) -> np.ndarray:
    """Attach shared array `name`: the same memory as every other attachment."""
    return attach_array(_name(name), readonly=bool(ro))


def delete(name: str) -> None:
    """Remove shared array `name` (existing attachments stay valid)."""
    delete_array(_name(name))


def list() -> List[ArrayDesc]:  # noqa: A001 - SharedArray's name
    """Every shared array on this machine (in ndshm's directory), sorted by name."""
    return [ArrayDesc(a.name, a.dtype, a.shape) for a in list_arrays()]
