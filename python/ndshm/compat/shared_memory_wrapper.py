"""The shared_memory_wrapper face: replace ``from shared_memory_wrapper import ...`` with
``from ndshm.compat.shared_memory_wrapper import ...`` (or use the shim package).

- ``object_to_shared_memory(obj) -> identifier``: every numpy array found anywhere in obj
  (nested lists, tuples, dicts, objects' attributes: whatever pickle walks) is copied into its
  own ndshm shared array; the rest is pickled, and the pickle itself goes into shared memory
  too. The identifier (a str) is all another process needs.
- ``object_from_shared_memory(identifier)``: the object rebuilt, its arrays **being** the shared
  memory: ``obj[1] += 1`` is seen by every process that loaded the identifier (not by the
  original object, which keeps its own arrays — unlike the original library, which leaves it
  "broken").
- ``remove_shared_memory_in_session()``: removes the segments this process created;
  ``free_memory()``: removes every segment this library created, in any process of this user.
  Nothing else: the original's free_memory deletes every SharedArray segment on the host,
  including other programs'. Objects already loaded keep working; their identifiers stop
  resolving.
- ``to_file(obj, "f.npz", compress=False)`` / ``from_file("f.npz")``: the same split into a
  numpy ``.npz``: each array a raw ``.npy`` member, the rest one pickle member.

Trust: a pickle runs code when loaded. object_from_shared_memory() loads only segments owned
by this user and writable by nobody else (the mode ndshm gives them: 0600); from_file() loads
what you give it, as pickle.load does: only open files you trust.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import secrets
import stat as _stat
from typing import Any, Dict, List

import numpy as np

from ..array import attach_array, create_array, delete_array, list_arrays
from ..core import _CODE_BY_DTYPE

__all__ = [
    "object_to_shared_memory",
    "object_from_shared_memory",
    "free_memory",
    "remove_shared_memory_in_session",
    "to_file",
    "from_file",
]

# Segment names: smw-<pid>x<8 hex>-<n>. The pattern is what free_memory() removes.
_PREFIX = "smw-"
_NAME_RE = re.compile(r"^smw-[0-9]+x[0-9a-f]{8}-[0-9]+$")
_PICKLE_MAGIC = b"NDSHMSMW1\n"


class _Session:
    def __init__(self):
        self.id = f"{os.getpid()}x{secrets.token_hex(4)}"
        self.count = 0
        self.created: List[str] = []

    def new_name(self) -> str:
        self.count += 1
        return f"{_PREFIX}{self.id}-{self.count}"


_session = _Session()


def _after_fork_in_child() -> None:
    global _session
    _session = _Session()  # a child's remove_shared_memory_in_session never takes the parent's


os.register_at_fork(after_in_child=_after_fork_in_child)


def _shareable(obj: Any) -> bool:
    return type(obj) is np.ndarray and obj.dtype in _CODE_BY_DTYPE


class _ToShared(pickle.Pickler):
    def __init__(self, f):
        super().__init__(f, protocol=pickle.HIGHEST_PROTOCOL)

    def persistent_id(self, obj):
        if _shareable(obj):
            name = _session.new_name()
            order = "F" if obj.flags.f_contiguous and not obj.flags.c_contiguous else "C"
            arr = create_array(name, obj.shape, obj.dtype, order=order)
            _session.created.append(name)
            arr[...] = obj
            return ("ndshm-array", name)
        return None


class _FromShared(pickle.Unpickler):
    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 2 and pid[0] == "ndshm-array"
                and isinstance(pid[1], str) and _NAME_RE.match(pid[1])):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        return attach_array(pid[1])


def _segment_path(name: str) -> str:
    return os.path.join(os.environ.get("NDSHM_DIR") or "/dev/shm", "ndshm." + name)


def _check_trusted(name: str) -> None:
    """Refuse to unpickle a segment another user could have written."""
    try:
        st = os.stat(_segment_path(name), follow_symlinks=False)
    except FileNotFoundError:
        return  # attach reports it
    if not _stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise PermissionError(
            f"shared object {name!r}: segment not owned by this user or writable by others; "
            "refusing to unpickle it")


def object_to_shared_memory(obj: Any) -> str:
    """Put obj into shared memory; returns the identifier to load it by."""
    buf = io.BytesIO()
    first = len(_session.created)
    try:
        buf.write(_PICKLE_MAGIC)
        _ToShared(buf).dump(obj)
        data = np.frombuffer(buf.getbuffer(), np.uint8)
        ident = _session.new_name()
        seg = create_array(ident, data.shape, np.uint8)
        _session.created.append(ident)
        seg[...] = data
        return ident
    except BaseException:  # never leave the arrays of a half-done object behind
        for name in _session.created[first:]:
            try:
                delete_array(name)
            except FileNotFoundError:
                pass
        del _session.created[first:]
        raise


def object_from_shared_memory(identifier: str) -> Any:
    """The object put in shared memory under identifier (its arrays are shared)."""
    if not isinstance(identifier, str) or not _NAME_RE.match(identifier):
        raise ValueError(f"{identifier!r} is not a shared_memory_wrapper identifier")
    _check_trusted(identifier)
    seg = attach_array(identifier, readonly=True)
    data = bytes(seg)  # a private copy: the segment cannot change under the unpickler
    if seg.dtype != np.uint8 or not data.startswith(_PICKLE_MAGIC):
        raise ValueError(f"{identifier!r} does not hold a shared object")
    f = io.BytesIO(data)
    f.seek(len(_PICKLE_MAGIC))
    return _FromShared(f).load()


def remove_shared_memory_in_session() -> int:
    """Remove the segments created by this process; returns how many were removed."""
    n = 0
    for name in _session.created:
        try:
            delete_array(name)
            n += 1
        except FileNotFoundError:
            pass  # removed already (free_memory in another process)
    _session.created.clear()
    return n


def free_memory() -> int:
    """Remove every segment this library created (any process of this user): only names
    of its own pattern, owned by this user. Returns how many were removed."""
    n = 0
    uid = os.getuid()
    for a in list_arrays():
        if not _NAME_RE.match(a.name):
            continue
        try:
            if os.stat(_segment_path(a.name), follow_symlinks=False).st_uid != uid:
                continue
            delete_array(a.name)
            n += 1
        except FileNotFoundError:
            pass
    _session.created.clear()
    return n


# ----- files -------------------------------------------------------------------------------


class _ToFile(pickle.Pickler):
    def __init__(self, f, arrays: Dict[str, np.ndarray]):
        super().__init__(f, protocol=pickle.HIGHEST_PROTOCOL)
        self.arrays = arrays

    def persistent_id(self, obj):
        if type(obj) is np.ndarray and not obj.dtype.hasobject:
            key = f"array_{len(self.arrays)}"
            self.arrays[key] = obj
            return ("npz-array", key)
        return None


class _FromFile(pickle.Unpickler):
    def __init__(self, f, npz):
        super().__init__(f)
        self.npz = npz

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 2 and pid[0] == "npz-array"
                and isinstance(pid[1], str) and pid[1] in self.npz.files):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        return self.npz[pid[1]]


_PICKLE_KEY = "__shared_memory_wrapper_pickle__"


def to_file(obj: Any, file_name: str, compress: bool = False) -> None:
    """Write obj to a numpy .npz: arrays as raw members, the rest as one pickle member."""
    arrays: Dict[str, np.ndarray] = {}
    buf = io.BytesIO()
    _ToFile(buf, arrays).dump(obj)
    arrays[_PICKLE_KEY] = np.frombuffer(buf.getvalue(), np.uint8)
    (np.savez_compressed if compress else np.savez)(file_name, **arrays)


def from_file(file_name: str) -> Any:
    """Read an object written by to_file (runs its pickle: open only files you trust)."""
    with np.load(file_name, allow_pickle=False) as npz:
        if _PICKLE_KEY not in npz.files:
            raise ValueError(f"{file_name!r} was not written by to_file()")
        f = io.BytesIO(npz[_PICKLE_KEY].tobytes())
        return _FromFile(f, npz).load()
