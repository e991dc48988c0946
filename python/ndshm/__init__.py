"""ndshm — publish numpy arrays between processes through POSIX shared memory.

One Writer publishes successive versions of an array on a named channel; any number of Readers
get the newest consistent copy (read), every version in order (read_next) or a zero-copy view,
each with a Status and the write-to-read latency. A pure-Python ctypes binding of libndshm.

    import ndshm
    with ndshm.Writer("cam", unlink_on_close=True) as w:
        w.publish(frame)
    with ndshm.Reader("cam") as r:
        status, frame, info = r.read()

Shared arrays (one array every process maps and changes in place, SharedArray-style):
ndshm.create_array / attach_array / delete_array / array_info / list_arrays.

Drop-in faces for programs written against ndsharray, SharedArray, wea, shared_memory and
shared_memory_wrapper: ndshm.compat (docs/python.md, "Drop-in faces").
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
    library_path,
    library_version,
    list_channels,
    now_ns,
    stat,
    unlink,
    view_check,
)

from .array import (  # noqa: F401  (shared arrays: changed in place, no versions)
    ArrayInfo,
    array_info,
    attach_array,
    create_array,
    delete_array,
    list_arrays,
)

from .waitset import WaitSet, wait_any  # noqa: F401,E402  (one wait for many readers)

__version__ = library_version()
