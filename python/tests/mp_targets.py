"""Functions run in multiprocessing children (importable, so that the spawn start method can
find them). Each one reports what it saw through its return value or a queue."""

import os

import numpy as np

import ndshm


def open_missing_reader(name):
    """Raises ndshm's FileNotFoundError (E_NOENT) in the worker."""
    ndshm.Reader(name)
    return "opened"  # not reached


def square_or_fail(x):
    """map() worker: x squared, but 3 raises an ndshm error."""
    if x == 3:
        raise ndshm.core._error(-15, f"worker item {x}")
    return x * x


def publish_through(writer, q):
    """A forked child tries the parent's writer: reports the status of the refusal."""
    out = {}
    for what, call in [
        ("publish", lambda: writer.publish(np.arange(4))),
        ("loan", lambda: writer.loan(np.uint8, 4)),
        ("reserve", lambda: writer.reserve(1 << 20)),
        ("close", writer.close),
    ]:
        try:
            call()
            out[what] = "ALLOWED"
        except ndshm.Error as e:
            out[what] = e.status.name
    out["forked"] = writer.forked
    q.put(out)


def read_inherited(reader, q):
    """A forked child uses the parent's reader: waits for and reads the next version."""
    st = reader.wait(30)
    status, arr, info = reader.read()
    q.put((st.name, status.name, None if arr is None else arr.tolist(), os.getpid()))


def just_exit():
    """A forked child that does nothing and exits normally."""
    return None


# ----- ndsharray face ----------------------------------------------------------------------


def ndsharray_echo(name, ready, written, echoed, stop, errors):
    """Reads every array the parent writes on `name` and writes it back on `name`_copy,
    waiting for each new array with ndsharray's `while not status` loop."""
    import time

    from ndshm.compat.ndsharray import NdShArray

    try:
        rd = NdShArray(name, r_w="r")
        wr = NdShArray(name + "_copy", r_w="w")
        ready.set()
        while not stop.is_set():
            if not written.wait(0.1):
                continue
            written.clear()
            status, arr = False, None
            deadline = time.monotonic() + 60
            while not status:
                status, arr = rd.read()
                if time.monotonic() > deadline:
                    errors.put("child: no new array within 60 s")
                    return
            wr.write(arr)
            echoed.set()
    except BaseException as e:  # reported to the parent, which fails the test with it
        errors.put(f"child: {type(e).__name__}: {e}")
        raise


def ndsharray_open_missing(name):
    from ndshm.compat.ndsharray import NdShArray

    NdShArray(name, r_w="r")


# ----- SharedArray face --------------------------------------------------------------------


def sharedarray_fill_row(args):
    """Attach the array and fill row i with its checksummed pattern; return the row's sum as
    this worker reads it back from the shared memory."""
    from ndshm.compat import sharedarray as sa

    name, i = args
    a = sa.attach(name)
    a[i] = i * 1_000_000 + np.arange(a.shape[1], dtype=a.dtype)
    return float(sa.attach(name)[i].sum())


def sharedarray_wait_for(name, index, value, timeout):
    """Spin until element `index` of the shared array becomes `value` (written by another
    process, with no call in between): proof that the memory is the same."""
    import time

    from ndshm.compat import sharedarray as sa

    a = sa.attach(name, ro=True)
    deadline = time.monotonic() + timeout
    while a[index] != value:
        if time.monotonic() > deadline:
            return f"never saw {value} at {index} (last {a[index]})"
        time.sleep(0.001)
    return "seen"


def sharedarray_attach_missing(name):
    from ndshm.compat import sharedarray as sa

    sa.attach(name)


# ----- shared_memory face ------------------------------------------------------------------


def shm_frame_change(name, row, col, value):
    """Load the shared DataFrame, set one cell, return the frame's values as this process
    sees them."""
    from ndshm.compat import shared_memory as shm

    frame = shm.load(name)
    frame.loc[row, col] = value
    return {c: frame[c].tolist() for c in frame.columns}


def shm_load_values(name):
    from ndshm.compat import shared_memory as shm

    obj = shm.load(name)
    return {c: obj[c].tolist() for c in obj.columns}


def shm_load_missing(name):
    from ndshm.compat import shared_memory as shm

    shm.load(name)


# ----- shared_memory_wrapper face ----------------------------------------------------------


class Holder:
    """An object whose attributes hold arrays (the wrapper walks objects too)."""

    def __init__(self, label, data):
        self.label = label
        self.data = data


def wrapper_round_trip(identifier, npz_path):
    """Load the parent's object, change its array in place, and send back a new object both
    through shared memory (an identifier) and through an .npz file."""
    from ndshm.compat import shared_memory_wrapper as smw

    obj = smw.object_from_shared_memory(identifier)
    obj["holder"].data += 1  # in place: the parent sees it
    reply = {"pid": os.getpid(), "seen": obj["holder"].data.tolist(), "nested": [obj["t"]],
             "made": np.arange(6, dtype=np.int16).reshape(2, 3) * os.getpid() % 7}
    ident = smw.object_to_shared_memory(reply)
    smw.to_file(reply, npz_path, compress=True)
    return ident


def wrapper_session_cleanup():
    """Create two objects, then remove this process's segments only."""
    from ndshm.compat import shared_memory_wrapper as smw

    ids = [smw.object_to_shared_memory([np.zeros(3), np.ones(2)]) for _ in range(2)]
    return ids, smw.remove_shared_memory_in_session()


def wrapper_load_bad(identifier):
    from ndshm.compat import shared_memory_wrapper as smw

    smw.object_from_shared_memory(identifier)


# ----- wea face ----------------------------------------------------------------------------


def wea_child_fills(name, q):
    """Fill column 1 of the parent's shared array; send its exchange buffer back."""
    from ndshm.compat import wea

    a = wea.shared_memory.attach_shared_array("/" + name)
    a[:, 1] = np.arange(a.shape[0])
    q.put(a.exchange_buffer)  # the buffer travels through multiprocessing's pipe
