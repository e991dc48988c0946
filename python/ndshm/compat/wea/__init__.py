"""The wea face: replace ``import wea`` with ``from ndshm.compat import wea`` (or use the
``wea`` shim package).

- ``wea.shared_memory``: ``create_shared_array(name, dtype, dims)`` and
  ``attach_shared_array(name)``: a named array in shared memory (ndshm's shared arrays), in
  wea's memory order — Fortran (column-major), as the Julia WrappedArray it comes from.
- ``wea.buffered_memory``: ``create_buffered_array(dtype, dims)``, whose ``exchange_buffer`` is
  a bytearray carrying dtype, shape and data for any transport (ndshm's wire format,
  docs/wire.md), and ``load_buffered_array(buf)``: an array over such a buffer, without a copy.

Both kinds of array are ``WrappedExchangeArray``: a numpy.ndarray (index, slice and compute with
it as with any array) with an ``exchange_buffer`` property.
"""

from . import buffered_memory, shared_memory  # noqa: F401
from ._array import WrappedExchangeArray  # noqa: F401

__all__ = ["shared_memory", "buffered_memory", "WrappedExchangeArray"]
