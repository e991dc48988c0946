"""Shared arrays: one named numpy array that every attached process maps and changes in place.

The SharedArray / wea / shared_memory model, beside channels and in the same namespace (a name
is a channel or an array, never both)::

    a = ndshm.create_array("results", (100, 10))       # zero-filled, in shared memory
    b = ndshm.attach_array("results")                   # any process, by name
    a[0] = 42; print(b[0, 0])                           # 42.0: the same pages
    ndshm.delete_array("results")                       # the name goes; a and b stay valid

create_array and attach_array return a real ``numpy.ndarray`` over the shared pages. Its base
(``_ArrayHolder``) owns the C attachment, and numpy keeps the base alive as long as any array or
slice over it exists: the mapping is detached only when the last one is collected, so deleting
the name or dropping other references can never leave an ndarray over unmapped memory.
Names may carry a leading ``/`` (wea, POSIX) or ``shm://`` (SharedArray): both are stripped.
"""

from __future__ import annotations

import ctypes
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._lib import CChannelInfo, lib
from .core import _DTYPE_BY_CODE, MAX_DIMS, _check, _code_of, _error

__all__ = [
    "ArrayInfo",
    "create_array",
    "attach_array",
    "delete_array",
    "array_info",
    "list_arrays",
]

_u32 = ctypes.c_uint32
_u64 = ctypes.c_uint64
_i32 = ctypes.c_int32
_vp = ctypes.c_void_p
_P = ctypes.POINTER

_READONLY = 1  # NDSHM_ARRAY_READONLY
_ORDER_C, _ORDER_F = 0, 1
_KIND_ARRAY = 2


class CArrayOptions(ctypes.Structure):
    """struct ndshm_array_options (size-versioned)."""

    _fields_ = [("size", _u32), ("flags", _u32), ("mode", _u32), ("order", _u32)]


class CArrayInfo(ctypes.Structure):
    """struct ndshm_array_info."""

    _fields_ = [
        ("name", ctypes.c_char * 129),
        ("dtype", _i32),
        ("ndim", _u32),
        ("order", _u32),
        ("mode", _u32),
        ("shape", _u64 * MAX_DIMS),
        ("nbytes", _u64),
        ("created_ns", _u64),
        ("attached", _i32),
        ("readonly", _i32),
    ]


def _proto(name, res, *args):
    f = getattr(lib, name)
    f.restype = res
    f.argtypes = list(args)
    return f


_create = _proto(
    "ndshm_array_create", ctypes.c_int, ctypes.c_char_p, ctypes.c_int, _u32, _P(_u64),
    _P(CArrayOptions), _P(_vp),
)
_attach = _proto("ndshm_array_attach", ctypes.c_int, ctypes.c_char_p, _P(CArrayOptions), _P(_vp))
_cdata = _proto("ndshm_array_cdata", _vp, _vp)
_info_get = _proto("ndshm_array_info_get", ctypes.c_int, _vp, _P(CArrayInfo))
_detach = _proto("ndshm_array_detach", ctypes.c_int, _vp)
_delete = _proto("ndshm_array_delete", ctypes.c_int, ctypes.c_char_p)
_stat = _proto("ndshm_array_stat", ctypes.c_int, ctypes.c_char_p, _P(CArrayInfo))


def _name_bytes(name: str) -> bytes:
    if not isinstance(name, str):
        raise TypeError(f"array name must be str, not {type(name).__name__}")
    if name.startswith("shm://"):
        name = name[len("shm://"):]
    if name.startswith("/"):
        name = name[1:]
    return name.encode("utf-8", "surrogateescape")


def _options(flags: int = 0, mode: int = 0, order: int = _ORDER_C) -> CArrayOptions:
    o = CArrayOptions()
    o.size = ctypes.sizeof(CArrayOptions)
    o.flags = flags
    o.mode = mode
    o.order = order
    return o


# ----- the base object of every shared ndarray -----------------------------------------------


class _ArrayHolder:
    """Owns one C attachment (ndshm_array *). It is the ``.base`` of the ndarray handed out, so
    the mapping lives exactly as long as any array (or slice, or view) over it; detached when
    collected. In a forked child the inherited holder detaches the child's copy only."""

    __slots__ = ("_h", "name", "readonly", "__array_interface__", "__weakref__")

    def __init__(self, h: int, name: str):
        self._h = h
        ci = CArrayInfo()
        rc = _info_get(h, ctypes.byref(ci))
        if rc < 0:  # cannot happen for a live handle; never leak it
            _detach(h)
            self._h = None
            raise _error(rc, f"array {name!r}")
        self.name = name
        self.readonly = bool(ci.readonly)
        dt = _DTYPE_BY_CODE[ci.dtype]
        shape = tuple(ci.shape[: ci.ndim])
        strides = None
        if ci.order == _ORDER_F and ci.ndim > 1:
            s, strides = dt.itemsize, []
            for n in shape:
                strides.append(s)
                s *= max(n, 1)
            strides = tuple(strides)
        self.__array_interface__ = {
            "version": 3,
            "shape": shape,
            "typestr": dt.str,
            "data": (_cdata(h), self.readonly),
            "strides": strides,
        }

    def info(self) -> "ArrayInfo":
        ci = CArrayInfo()
        _check(_info_get(self._h, ctypes.byref(ci)), f"array {self.name!r}")
        return ArrayInfo._from_array_info(ci)

    def __del__(self):
        h = self._h
        if h is not None and _detach is not None:
            self._h = None
            _detach(h)


def _as_ndarray(holder: _ArrayHolder) -> np.ndarray:
    """The ndarray over a holder's mapping; its .base is the holder (the keep-alive)."""
    return np.asarray(holder)


def _holder_of(arr: Any) -> Optional[_ArrayHolder]:
    base = arr
    while base is not None and not isinstance(base, _ArrayHolder):
        base = getattr(base, "base", None)
    return base


# ----- info ----------------------------------------------------------------------------------


class ArrayInfo:
    """One shared array: name, dtype, shape, order ('C' or 'F'), nbytes, created (seconds since
    the epoch), attached (processes attached now, from kernel locks; -1 if unknown), mode."""

    __slots__ = ("name", "dtype", "shape", "order", "nbytes", "created", "created_ns",
                 "attached", "mode")

    def __init__(self, name, dtype, shape, order, nbytes, created_ns, attached, mode):
        self.name: str = name
        self.dtype: np.dtype = dtype
        self.shape: Tuple[int, ...] = shape
        self.order: str = order
        self.nbytes: int = nbytes
        self.created_ns: int = created_ns
        self.created: float = created_ns / 1e9
        self.attached: int = attached
        self.mode: int = mode

    @classmethod
    def _from_array_info(cls, c: CArrayInfo) -> "ArrayInfo":
        return cls(
            c.name.decode("utf-8", "surrogateescape"), _DTYPE_BY_CODE.get(c.dtype),
            tuple(c.shape[: min(c.ndim, MAX_DIMS)]), "F" if c.order == _ORDER_F else "C",
            c.nbytes, c.created_ns, c.attached, c.mode,
        )

    @classmethod
    def _from_channel_info(cls, c: CChannelInfo) -> "ArrayInfo":
        return cls(
            c.name.decode("utf-8", "surrogateescape"), _DTYPE_BY_CODE.get(c.dtype),
            tuple(c.shape[: min(c.ndim, MAX_DIMS)]), "F" if c.order == _ORDER_F else "C",
            c.nbytes, c.created_ns, c.attached, c.mode,
        )

    def __repr__(self) -> str:
        return (
            f"ArrayInfo({self.name!r}, dtype={self.dtype}, shape={self.shape}, "
            f"order={self.order!r}, nbytes={self.nbytes}, attached={self.attached}, "
            f"mode=0o{self.mode:o})"
        )


# ----- API -----------------------------------------------------------------------------------


def _shape_tuple(shape: Union[int, Sequence[int]]) -> Tuple[int, ...]:
    if np.ndim(shape) == 0:
        shape = (shape,)
    out = []
    for s in shape:
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"shape entries must be integers, not {type(s).__name__}")
        if s < 0:
            raise _error(-1, f"negative dimension in shape {tuple(shape)}")
        out.append(int(s))
    if len(out) > MAX_DIMS:
        raise _error(-6, f"shape {tuple(out)}")
    return tuple(out)


def create_array(
    name: str,
    shape: Union[int, Sequence[int]],
    dtype: Any = float,
    order: str = "C",
    mode: int = 0o600,
) -> np.ndarray:
    """Create shared array ``name`` (zero-filled) and return a writable ndarray over it.

    dtype: any of the 14 numeric numpy dtypes; order: 'C' or 'F'; mode: permission bits,
    applied exactly. FileExistsError if the name is taken (by an array or a channel). The pages
    are reserved now: a full /dev/shm raises here (ndshm.Error, status E_NOSPC), never later.
    """
    b = _name_bytes(name)
    shp = _shape_tuple(shape)
    code = _code_of(dtype)
    if not isinstance(order, str) or order.upper() not in ("C", "F"):
        raise _error(-1, f"order must be 'C' or 'F', not {order!r}")
    if not isinstance(mode, int) or mode < 0 or mode > 0o7777:
        raise _error(-1, f"mode must be permission bits (0..0o7777), not {mode!r}")
    opts = _options(mode=mode, order=_ORDER_F if order.upper() == "F" else _ORDER_C)
    cshape = (_u64 * max(len(shp), 1))(*shp)
    h = _vp()
    _check(_create(b, code, len(shp), cshape, ctypes.byref(opts), ctypes.byref(h)),
           f"create array {name!r}")
    return _as_ndarray(_ArrayHolder(h.value, b.decode("utf-8", "surrogateescape")))


def attach_array(name: str, readonly: bool = False) -> np.ndarray:
    """Attach to shared array ``name``: an ndarray over the same pages (every store by any
    process is visible to all at once). readonly=True maps it read-only: the ndarray is not
    writeable, and even a raw store into it faults. FileNotFoundError if it does not exist."""
    b = _name_bytes(name)
    opts = _options(flags=_READONLY if readonly else 0)
    h = _vp()
    _check(_attach(b, ctypes.byref(opts), ctypes.byref(h)), f"attach array {name!r}")
    return _as_ndarray(_ArrayHolder(h.value, b.decode("utf-8", "surrogateescape")))


def delete_array(name: str) -> None:
    """Remove the name. Arrays already attached stay valid (the memory is freed after the last
    one goes). FileNotFoundError if there is no such array."""
    _check(_delete(_name_bytes(name)), f"delete array {name!r}")


def array_info(name_or_array: Union[str, np.ndarray]) -> ArrayInfo:
    """Describe a shared array, by name or through an ndarray over one."""
    if isinstance(name_or_array, str):
        c = CArrayInfo()
        _check(_stat(_name_bytes(name_or_array), ctypes.byref(c)), f"array {name_or_array!r}")
        return ArrayInfo._from_array_info(c)
    h = _holder_of(name_or_array)
    if h is None:
        raise TypeError("not a shared array (use create_array or attach_array)")
    return h.info()


def list_arrays() -> List[ArrayInfo]:
    """Every shared array on this machine (sorted by name)."""
    items = _P(CChannelInfo)()
    n = ctypes.c_size_t()
    _check(lib.ndshm_list(ctypes.byref(items), ctypes.byref(n)), "list")
    try:
        return [
            ArrayInfo._from_channel_info(items[i])
            for i in range(n.value)
            if items[i].kind == _KIND_ARRAY and items[i].status == 0
        ]
    finally:
        lib.ndshm_list_free(items)
