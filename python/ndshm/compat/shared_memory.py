"""The shared_memory face: replace ``import shared_memory as shm`` with
``from ndshm.compat import shared_memory as shm`` (or use the ``shared_memory`` shim package).

- ``SharedMemory.create(name, size)`` / ``SharedMemory.open(name)``: a named block of bytes in
  shared memory that stays until ``unlink(name)`` — closing it, or the exit of every process
  that used it, frees nothing (unlike multiprocessing.shared_memory).
- Layouts describe typed objects: ``NdArrayLayout(dtype, shape)``, ``SeriesLayout(dtype,
  index)``, ``DataFrameLayout(dtypes, index)``, ``DataArrayLayout.from_data(template)``.
  ``create(name, layout)`` makes one (zero-filled) and ``load(name)`` opens it in any process:
  a numpy.ndarray, pandas.Series, pandas.DataFrame or xarray.DataArray whose **values are the
  shared memory** — a change in one process is seen by every other. The index, columns, dims
  and coordinates are stored beside the values in the same segment (JSON, checked on load).
- ``unlink(name)`` removes the name; objects already loaded keep working.
- Your own objects: subclass ``Layout`` (``kind``, ``blocks()``, ``build()``, ``to_dict()``,
  ``from_dict()``) and ``register_layout()`` it.

This module needs only numpy: pandas and xarray are imported when a layout that needs them is
used (ImportError with the Debian package to install otherwise).

A layout segment is one ndshm shared array of bytes: a 16-byte header ("NDSHMLY1", JSON
length, format 1), the JSON description ({"kind": ..., "layout": ...}), then each value block
in order, at the next multiple of 64 bytes (4096 for blocks of 64 KiB or more). The offsets
follow from the description, so nothing in the segment says where to read; every dtype,
shape, index value and length in the JSON is checked, and every block against the segment's
size. The magic is written last, so a load racing a create says "not ready" instead of reading
half a header.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type

import numpy as np

from ..array import attach_array, create_array, delete_array
from ..core import _DTYPE_BY_CODE, _code_of

__all__ = [
    "SharedMemory",
    "Layout",
    "NdArrayLayout",
    "SeriesLayout",
    "DataFrameLayout",
    "DataArrayLayout",
    "register_layout",
    "create",
    "load",
    "unlink",
]

_MAGIC = b"NDSHMLY1"
_HDR = struct.Struct("<8sII")  # magic, json length, format version
_FORMAT = 1
_JSON_MAX = 64 << 20


# ----- raw memory --------------------------------------------------------------------------


class SharedMemory:
    """A named block of `size` bytes in shared memory (an ndshm shared array of uint8).

    ``buf`` is a writable memoryview over it (``array`` the same bytes as a numpy array).
    ``close()`` detaches this process's view only; the memory stays until ``unlink(name)``."""

    def __init__(self, name: str, array: np.ndarray):
        self.name = name
        self._array: Optional[np.ndarray] = array

    @classmethod
    def create(cls, name: str, size: int) -> "SharedMemory":
        """A new zero-filled block (FileExistsError if the name exists)."""
        size = int(size)
        if size < 0:
            raise ValueError(f"size must be >= 0, not {size}")
        return cls(name, create_array(name, (size,), np.uint8))

    @classmethod
    def open(cls, name: str) -> "SharedMemory":
        """An existing block (FileNotFoundError if there is none). Any shared array can be
        opened this way: its bytes."""
        arr = attach_array(name)
        return cls(name, arr.reshape(-1, order="A").view(np.uint8) if arr.size else
                   np.zeros(0, np.uint8))

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            raise ValueError(f"SharedMemory {self.name!r} is closed")
        return self._array

    @property
    def buf(self) -> memoryview:
        return memoryview(self.array)

    @property
    def size(self) -> int:
        return self.array.nbytes

    def close(self) -> None:
        """Drop this object's view (the memory itself stays until unlink)."""
        self._array = None

    def unlink(self) -> None:
        """Remove the name (as the module's unlink)."""
        unlink(self.name)

    def __enter__(self) -> "SharedMemory":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._array is None else f"size={self.size}"
        return f"SharedMemory({self.name!r}, {state})"


def unlink(name: str) -> None:
    """Remove shared memory `name` (a SharedMemory or a layout object). Objects already
    opened keep working; FileNotFoundError if there is none."""
    delete_array(name)


# ----- layouts -----------------------------------------------------------------------------


def _value_dtype(dtype: Any) -> np.dtype:
    try:
        return _DTYPE_BY_CODE[_code_of(dtype)]
    except ValueError as e:
        raise ValueError(f"dtype {dtype!r}: values in shared memory must be one of numpy's "
                         f"14 numeric dtypes ({e})") from None


def _shape(shape: Any) -> Tuple[int, ...]:
    if np.ndim(shape) == 0:
        shape = (shape,)
    out = tuple(int(s) for s in shape)
    if any(s < 0 for s in out):
        raise ValueError(f"negative dimension in {out}")
    return out


def _need(module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"this layout needs {module}, which is not installed "
            f"(Debian: apt-get install {package})") from e


# Index and coordinate values: JSON scalars, checked on the way back.
_INDEX_KINDS = {"i", "u", "f", "b", "O", "U", "M", "m"}


def _encode_index(values: Any, name: Any = None) -> dict:
    pd = None
    try:
        import pandas as pd  # noqa: F811 - only to recognise a RangeIndex
    except ImportError:
        pass
    if pd is not None and isinstance(values, pd.RangeIndex):
        return {"range": [int(values.start), int(values.stop), int(values.step)],
                "name": _json_name(values.name)}
    if pd is not None and isinstance(values, (list, tuple)):
        values = pd.Index(values)  # pandas' own inference: [1, 2] int64, ["a", 1] object
    if pd is not None and isinstance(values, pd.Index):
        name = values.name if name is None else name
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"an index must be 1-dimensional, not of shape {arr.shape}")
    kind = arr.dtype.kind
    if kind not in _INDEX_KINDS:
        raise ValueError(f"index values of dtype {arr.dtype} cannot be stored")
    if kind in ("M", "m"):
        unit = np.datetime_data(arr.dtype)[0]
        data = arr.astype(f"{kind}8[{unit}]").view(np.int64).tolist()
        return {"dtype": f"{'datetime64' if kind == 'M' else 'timedelta64'}[{unit}]",
                "values": data, "name": _json_name(name)}
    items = arr.tolist()
    for v in items:
        if not (v is None or isinstance(v, (str, int, float, bool))):
            raise ValueError(f"index value {v!r} ({type(v).__name__}) cannot be stored: use "
                             "str, int, float, bool or None")
    dt = arr.dtype.str if kind in "iufbU" else "object"
    return {"dtype": dt, "values": items, "name": _json_name(name)}


def _json_name(name: Any) -> Any:
    if name is None or isinstance(name, (str, int, float, bool)):
        return name
    raise ValueError(f"name {name!r} cannot be stored: use str, int, float or None")


def _decode_index(d: Any) -> np.ndarray:
    """Index values from their JSON form, every field checked (it came from shared memory)."""
    if not isinstance(d, dict):
        raise _corrupt("index is not an object")
    if "range" in d:
        r = d["range"]
        ok = isinstance(r, list) and len(r) == 3 and all(type(x) is int for x in r)
        if not ok or r[2] == 0:
            raise _corrupt("bad range index")
        return np.arange(r[0], r[1], r[2])
    values, dt = d.get("values"), d.get("dtype")
    if not isinstance(values, list) or not isinstance(dt, str):
        raise _corrupt("index without values or dtype")
    for v in values:
        if not (v is None or isinstance(v, (str, int, float, bool))):
            raise _corrupt("index value of a type that is never stored")
    if dt == "object":
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    try:
        ndt = np.dtype(dt)
    except TypeError:
        raise _corrupt(f"index dtype {dt!r}") from None
    if ndt.kind in ("M", "m"):
        if not all(type(v) is int for v in values):
            raise _corrupt("datetime index values must be integers")
        return np.array(values, dtype=np.int64).view(ndt)
    if ndt.kind == "U":
        if not all(isinstance(v, str) for v in values):
            raise _corrupt("str index values must be strings")
        return np.array(values, dtype=ndt)
    if ndt.kind not in "iufb" or ndt.hasobject:
        raise _corrupt(f"index dtype {dt!r}")
    try:
        return np.array(values, dtype=ndt)
    except (TypeError, ValueError, OverflowError):
        raise _corrupt("index values do not fit their dtype") from None


def _index_obj(d: dict):
    pd = _need("pandas", "python3-pandas")
    if "range" in d:
        r = d["range"]
        return pd.RangeIndex(r[0], r[1], r[2], name=d.get("name"))
    return pd.Index(_decode_index(d), name=d.get("name"))


def _corrupt(what: str) -> ValueError:
    return ValueError(f"shared_memory layout: {what} (not a layout segment, or damaged)")


class Layout:
    """How a shared object is laid out: the value blocks it needs and how to build the
    object over them. Subclass it (and register_layout()) for objects of your own."""

    kind = ""

    def check(self) -> None:
        """Raise (e.g. ImportError) if the object cannot be built here; create() calls it
        before making anything."""

    def blocks(self) -> List[Tuple[np.dtype, Tuple[int, ...]]]:
        """(dtype, shape) of each value array, C order."""
        raise NotImplementedError

    def build(self, arrays: List[np.ndarray]) -> Any:
        """The object over the arrays (views of shared memory; do not copy them)."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        """JSON-compatible description (stored in the segment)."""
        raise NotImplementedError

    @classmethod
    def from_dict(cls, d: dict) -> "Layout":
        """The inverse of to_dict; d comes from shared memory: check everything."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()})"


_LAYOUTS: Dict[str, Type[Layout]] = {}


def register_layout(cls: Type[Layout]) -> Type[Layout]:
    """Make load() know layouts of kind cls.kind (usable as a class decorator)."""
    if not cls.kind or not isinstance(cls.kind, str):
        raise ValueError("a layout class needs a non-empty kind")
    _LAYOUTS[cls.kind] = cls
    return cls


def _dict_field(d: Any, key: str, typ):
    if not isinstance(d, dict) or not isinstance(d.get(key), typ):
        raise _corrupt(f"missing or bad field {key!r}")
    return d[key]


def _stored_dtype(s: Any) -> np.dtype:
    if not isinstance(s, str):
        raise _corrupt("dtype is not a string")
    try:
        return _value_dtype(s)
    except (TypeError, ValueError):
        raise _corrupt(f"dtype {s!r}") from None


def _stored_shape(s: Any) -> Tuple[int, ...]:
    if not isinstance(s, list) or len(s) > 32 or not all(type(x) is int and x >= 0 for x in s):
        raise _corrupt("bad shape")
    return tuple(s)


@register_layout
class NdArrayLayout(Layout):
    """A numpy.ndarray of dtype and shape."""

    kind = "ndarray"

    def __init__(self, dtype: Any, shape: Any):
        self.dtype = _value_dtype(dtype)
        self.shape = _shape(shape)

    def blocks(self):
        return [(self.dtype, self.shape)]

    def build(self, arrays):
        return arrays[0]

    def to_dict(self):
        return {"dtype": self.dtype.str, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d):
        return cls(_stored_dtype(_dict_field(d, "dtype", str)),
                   _stored_shape(_dict_field(d, "shape", list)))


@register_layout
class SeriesLayout(Layout):
    """A pandas.Series of dtype over index."""

    kind = "series"

    def __init__(self, dtype: Any, index: Any, name: Any = None):
        self.dtype = _value_dtype(dtype)
        self.index = _encode_index(index)
        self.name = _json_name(name)
        self._n = len(_decode_index(self.index))

    def check(self):
        _need("pandas", "python3-pandas")

    def blocks(self):
        return [(self.dtype, (self._n,))]

    def build(self, arrays):
        pd = _need("pandas", "python3-pandas")
        return pd.Series(arrays[0], index=_index_obj(self.index), name=self.name, copy=False)

    def to_dict(self):
        return {"dtype": self.dtype.str, "index": self.index, "name": self.name}

    @classmethod
    def from_dict(cls, d):
        lay = cls.__new__(cls)
        lay.dtype = _stored_dtype(_dict_field(d, "dtype", str))
        lay.index = _dict_field(d, "index", dict)
        lay._n = len(_decode_index(lay.index))
        lay.name = d.get("name")
        _json_name(lay.name)
        return lay


@register_layout
class DataFrameLayout(Layout):
    """A pandas.DataFrame: columns (name, dtype) over index. Each column is its own block of
    shared memory (pandas does not consolidate them: changes through .iloc/.loc/[] of a
    column write into shared memory)."""

    kind = "dataframe"

    def __init__(self, dtypes: Any, index: Any):
        items = list(dtypes.items()) if isinstance(dtypes, dict) else list(dtypes)
        self.columns: List[Tuple[Any, np.dtype]] = []
        for item in items:
            col, dt = item
            self.columns.append((_json_name(col), _value_dtype(dt)))
        if len({c for c, _ in self.columns}) != len(self.columns):
            raise ValueError("column names must be unique")
        self.index = _encode_index(index)
        self._n = len(_decode_index(self.index))

    def check(self):
        _need("pandas", "python3-pandas")

    def blocks(self):
        return [(dt, (self._n,)) for _, dt in self.columns]

    def build(self, arrays):
        pd = _need("pandas", "python3-pandas")
        data = {col: arr for (col, _), arr in zip(self.columns, arrays)}
        return pd.DataFrame(data, index=_index_obj(self.index),
                            columns=[c for c, _ in self.columns], copy=False)

    def to_dict(self):
        return {"columns": [[c, dt.str] for c, dt in self.columns], "index": self.index}

    @classmethod
    def from_dict(cls, d):
        cols = _dict_field(d, "columns", list)
        lay = cls.__new__(cls)
        lay.columns = []
        for c in cols:
            if not (isinstance(c, list) and len(c) == 2):
                raise _corrupt("bad column")
            lay.columns.append((_json_name(c[0]), _stored_dtype(c[1])))
        if len({c for c, _ in lay.columns}) != len(lay.columns):
            raise _corrupt("duplicate column names")
        lay.index = _dict_field(d, "index", dict)
        lay._n = len(_decode_index(lay.index))
        return lay


@register_layout
class DataArrayLayout(Layout):
    """An xarray.DataArray: dtype, dims, shape and a coordinate per dim (values stored
    beside the data), plus its name and JSON-compatible attrs."""

    kind = "dataarray"

    def __init__(self, dtype: Any, dims: Sequence[str], coords: Dict[str, Any],
                 shape: Optional[Sequence[int]] = None, name: Any = None,
                 attrs: Optional[dict] = None):
        self.dtype = _value_dtype(dtype)
        self.dims = [str(d) for d in dims]
        self.coords = {str(k): _encode_index(v) for k, v in (coords or {}).items()}
        for k in self.coords:
            if k not in self.dims:
                raise ValueError(f"coordinate {k!r} is not a dimension (only dimension "
                                 "coordinates are stored)")
        if shape is None:
            shape = [len(_decode_index(self.coords[d])) for d in self.dims]
        self.shape = _shape(shape)
        if len(self.shape) != len(self.dims):
            raise ValueError(f"{len(self.dims)} dims for shape {self.shape}")
        for d, n in zip(self.dims, self.shape):
            if d in self.coords and len(_decode_index(self.coords[d])) != n:
                raise ValueError(f"coordinate {d!r} has the wrong length for size {n}")
        self.name = _json_name(name)
        self.attrs = dict(attrs or {})
        json.dumps(self.attrs)  # TypeError now rather than at create()

    @classmethod
    def from_data(cls, template) -> "DataArrayLayout":
        """The layout of an existing DataArray (its values are not copied: create() makes a
        zero-filled one)."""
        _need("xarray", "python3-xarray")
        coords = {d: template.coords[d].values for d in template.dims if d in template.coords}
        return cls(template.dtype, template.dims, coords, shape=template.shape,
                   name=template.name, attrs=dict(template.attrs))

    def check(self):
        _need("xarray", "python3-xarray")

    def blocks(self):
        return [(self.dtype, self.shape)]

    def build(self, arrays):
        xr = _need("xarray", "python3-xarray")
        coords = {d: _decode_index(c) for d, c in self.coords.items()}
        return xr.DataArray(arrays[0], dims=self.dims, coords=coords, name=self.name,
                            attrs=self.attrs)

    def to_dict(self):
        return {"dtype": self.dtype.str, "dims": self.dims, "shape": list(self.shape),
                "coords": self.coords, "name": self.name, "attrs": self.attrs}

    @classmethod
    def from_dict(cls, d):
        dims = _dict_field(d, "dims", list)
        if not all(isinstance(x, str) for x in dims):
            raise _corrupt("dims must be strings")
        coords = _dict_field(d, "coords", dict)
        attrs = d.get("attrs") or {}
        if not isinstance(attrs, dict):
            raise _corrupt("attrs")
        lay = cls.__new__(cls)
        lay.dtype = _stored_dtype(d.get("dtype"))
        lay.dims = dims
        lay.shape = _stored_shape(d.get("shape"))
        if len(lay.shape) != len(dims):
            raise _corrupt("dims and shape disagree")
        for k, c in coords.items():
            if k not in dims or len(_decode_index(c)) != lay.shape[dims.index(k)]:
                raise _corrupt(f"coordinate {k!r}")
        lay.coords = coords
        lay.name = d.get("name")
        _json_name(lay.name)
        lay.attrs = attrs
        return lay


# ----- create and load ---------------------------------------------------------------------


def _align(n: int, nbytes: int) -> int:
    a = 4096 if nbytes >= 65536 else 64
    return (n + a - 1) // a * a


def _plan(layout: Layout, header_len: int) -> List[Tuple[np.dtype, Tuple[int, ...], int]]:
    off = _align(_HDR.size + header_len, 0)
    out = []
    for dt, shape in layout.blocks():
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        off = _align(off, nbytes)
        out.append((dt, shape, off))
        off += nbytes
    return out


def _views(mem: np.ndarray, plan) -> List[np.ndarray]:
    out = []
    for dt, shape, off in plan:
        n = int(np.prod(shape, dtype=np.int64))
        out.append(mem[off: off + n * dt.itemsize].view(dt).reshape(shape))
    return out


def create(name: str, layout: Layout) -> Any:
    """Create shared object `name` laid out as `layout` (zero-filled) and return it
    (FileExistsError if the name exists). It stays until unlink(name)."""
    if not isinstance(layout, Layout):
        raise TypeError(f"layout must be a Layout, not {type(layout).__name__}")
    if _LAYOUTS.get(layout.kind) is not type(layout):
        raise ValueError(f"layout kind {layout.kind!r} is not registered (register_layout)")
    layout.check()  # a missing pandas/xarray fails before any segment exists
    text = json.dumps({"kind": layout.kind, "layout": layout.to_dict()},
                      allow_nan=False).encode()
    if len(text) > _JSON_MAX:
        raise ValueError(f"layout description of {len(text)} bytes (the limit is {_JSON_MAX})")
    plan = _plan(layout, len(text))
    end = max([_HDR.size + len(text)] +
              [off + int(np.prod(s, dtype=np.int64)) * d.itemsize for d, s, off in plan])
    mem = create_array(name, (end,), np.uint8)
    try:
        mem[_HDR.size: _HDR.size + len(text)] = np.frombuffer(text, np.uint8)
        mem[8:_HDR.size] = np.frombuffer(_HDR.pack(_MAGIC, len(text), _FORMAT)[8:], np.uint8)
        mem[:8] = np.frombuffer(_MAGIC, np.uint8)  # last: a complete header is announced
        return layout.build(_views(mem, plan))
    except BaseException:
        delete_array(name)
        raise


def load(name: str) -> Any:
    """Open shared object `name`: the same values as every other process's (changes are
    shared). FileNotFoundError if it does not exist; ValueError if it is not a layout."""
    mem = attach_array(name)
    if mem.dtype != np.uint8 or mem.ndim != 1:
        raise _corrupt(f"{name!r} is a {mem.dtype} array of shape {mem.shape}")
    n = mem.nbytes
    if n < _HDR.size:
        raise _corrupt("too short")
    head = bytes(mem[: _HDR.size])  # a private copy: the segment may change under us
    magic, jlen, fmt = _HDR.unpack(head)
    if magic != _MAGIC:
        if head == bytes(_HDR.size):
            raise _corrupt(f"{name!r} is not ready (still being created?)")
        raise _corrupt(f"{name!r} holds no layout header")
    if fmt != _FORMAT:
        raise _corrupt(f"unknown format {fmt}")
    if jlen > min(_JSON_MAX, n - _HDR.size):
        raise _corrupt("header length")
    try:
        body = json.loads(bytes(mem[_HDR.size: _HDR.size + jlen]).decode())
    except (UnicodeDecodeError, ValueError):
        raise _corrupt("header is not JSON") from None
    kind = _dict_field(body, "kind", str)
    cls = _LAYOUTS.get(kind)
    if cls is None:
        raise _corrupt(f"unknown layout kind {kind!r} (register_layout it?)")
    layout = cls.from_dict(_dict_field(body, "layout", dict))
    layout.check()
    plan = _plan(layout, jlen)  # offsets follow from the layout: nothing to trust
    for dt, shape, off in plan:
        if off + int(np.prod(shape, dtype=np.int64)) * dt.itemsize > n:
            raise _corrupt("a block ends past the segment")
    return layout.build(_views(mem, plan))
