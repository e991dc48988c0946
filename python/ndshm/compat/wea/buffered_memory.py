"""wea.buffered_memory: an array whose ``exchange_buffer`` carries it over any transport.

``create_buffered_array(dtype, dims)`` returns a zero-filled WrappedExchangeArray (Fortran
order); each read of its ``exchange_buffer`` returns a new bytearray with the dtype, the dims
and a copy of the data (ndshm's wire format: docs/wire.md). ``load_buffered_array(buf)`` returns
an array over buf itself — no copy: changing buf changes the array and, for a bytearray, the
reverse. A buffer that is not a valid exchange buffer raises ValueError (every field is
checked before anything is read from it).
"""

from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np

from ...core import _DTYPE_BY_CODE, _code_of
from ._array import WrappedExchangeArray, decode

__all__ = ["create_buffered_array", "load_buffered_array"]


def create_buffered_array(dtype: Any, dims: Union[int, Sequence[int]]) -> WrappedExchangeArray:
    """A new zero-filled array of dtype and dims, in Fortran order."""
    dt = _DTYPE_BY_CODE[_code_of(dtype)]  # one of the 14 numeric dtypes, or ValueError
    return np.zeros(dims, dtype=dt, order="F").view(WrappedExchangeArray)


def load_buffered_array(buf) -> WrappedExchangeArray:
    """The array carried by buf (bytes, bytearray, memoryview...), over buf's memory."""
    return decode(buf)
