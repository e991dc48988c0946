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
