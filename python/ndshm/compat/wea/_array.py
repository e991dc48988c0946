"""WrappedExchangeArray and the exchange buffer (ndshm's wire format) of the wea face."""

from __future__ import annotations

import ctypes

import numpy as np

from ...core import _DTYPE_BY_CODE, _code_of, _error
from ..._lib import CWireMeta, lib

MAX_DIMS = 32


class WrappedExchangeArray(np.ndarray):
    """A numpy array (shared, buffered or loaded) with wea's ``exchange_buffer``."""

    @property
    def exchange_buffer(self) -> bytearray:
        """A new bytearray holding this array's dtype, shape and data (a copy of the data as
        it is now): ndshm's wire format. Give it to load_buffered_array() at the other end."""
        return encode(np.asarray(self))


def encode(arr: np.ndarray) -> bytearray:
    """The wire buffer of arr, in wea's memory order: the Fortran-order bytes of arr, carried
    as the C-order array of the reversed shape (the wire format is C-order)."""
    code = _code_of(arr.dtype)
    dt = _DTYPE_BY_CODE[code]
    if arr.ndim > MAX_DIMS:
        raise _error(-6, f"shape {arr.shape}")
    # Fortran bytes of arr == C bytes of arr.T
    payload = np.ascontiguousarray(arr.T, dtype=dt)
    m = CWireMeta()
    m.dtype = code
    m.ndim = payload.ndim
    for i, n in enumerate(payload.shape):
        m.shape[i] = n
    m.nbytes = payload.nbytes
    m.publish_real_ns = lib.ndshm_wire_realtime_ns()
    m.flags = 1  # NDSHM_WIRE_REALTIME: publish_real_ns is set
    size = ctypes.c_uint64()
    rc = lib.ndshm_wire_size(ctypes.byref(m), ctypes.byref(size))
    if rc < 0:
        raise _error(rc, "exchange buffer")
    buf = bytearray(size.value)
    c_buf = (ctypes.c_char * len(buf)).from_buffer(buf)
    written = ctypes.c_size_t()
    rc = lib.ndshm_wire_encode(ctypes.byref(m), payload.ctypes.data, c_buf, len(buf),
                               ctypes.byref(written))
    del c_buf  # release the export of buf
    if rc < 0:
        raise _error(rc, "exchange buffer")
    return buf


def decode(buf) -> WrappedExchangeArray:
    """An array over buf's payload (no copy), in wea's memory order. Writable when buf is."""
    mv = memoryview(buf)
    if not mv.c_contiguous:
        raise ValueError("exchange buffer must be contiguous")
    mv = mv.cast("B")
    n = mv.nbytes
    # a uint8 view of buf (never a copy; read-only if buf is): its address for the C decoder,
    # which checks every field, and the base of the array returned
    holder = np.frombuffer(mv, dtype=np.uint8)
    m = CWireMeta()
    payload = ctypes.c_void_p()
    rc = lib.ndshm_wire_decode(holder.ctypes.data, n, ctypes.byref(m), ctypes.byref(payload))
    if rc < 0:
        err = _error(rc, "load_buffered_array")
        raise ValueError(f"not a valid exchange buffer: {err}") from err
    offset = (payload.value or holder.ctypes.data) - holder.ctypes.data
    dt = _DTYPE_BY_CODE[m.dtype]
    shape = tuple(m.shape[: m.ndim])
    if not 0 <= offset <= n or offset + m.nbytes != n:  # decode guarantees it; never trust
        raise ValueError("not a valid exchange buffer: payload outside the buffer")
    count = m.nbytes // dt.itemsize if dt.itemsize else 0
    c_order = holder[offset:].view(dt)[:count].reshape(shape)
    return c_order.T.view(WrappedExchangeArray)
