"""ndshm — publish numpy arrays between processes through POSIX shared memory.

One Writer publishes successive versions of an array on a named channel; any number of Readers
get the newest consistent copy (read), every version in order (read_next) or a zero-copy view,
each with a Status and the write-to-read latency. A pure-Python ctypes binding of libndshm.

    import ndshm
    with ndshm.Writer("cam", unlink_on_close=True) as w:
        w.publish(frame)
    with ndshm.Reader("cam") as r:
        status, frame, info = r.read()

Drop-in faces for existing code: ndshm.compat.ndsharray and ndshm.compat.sharedarray.
"""

from .core import (  # noqa: F401
    MAX_DIMS,
    ChannelInfo,
    Error,
    Info,
    InfoFlags,
    Reader,
    Status,
    Writer,
    dtype_of,
    gc,
    library_version,
    list_channels,
    now_ns,
    stat,
    unlink,
    view_check,
)

__version__ = library_version()
