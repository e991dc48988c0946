"""Pickling: ndshm errors cross process boundaries with their status and message (a Pool whose
worker raises delivers the error); Reader and Writer refuse to be pickled, loudly."""

import multiprocessing
import os
import pickle
import subprocess
import sys

import pytest

import ndshm
from ndshm import Status
from ndshm.core import _error
from multiprocessing.reduction import ForkingPickler

import mp_targets
from conftest import HERE, PKG

ERROR_CODES = [int(s) for s in Status if s < 0 and s != Status.E_SYS] + [-1000 - 13, -1000 - 28]


@pytest.mark.parametrize("rc", ERROR_CODES)
@pytest.mark.parametrize("proto", range(pickle.HIGHEST_PROTOCOL + 1))
def test_errors_round_trip_through_pickle(rc, proto):
    e = _error(rc, "stat 'cam'")
    for dumps in (lambda x: pickle.dumps(x, proto),
                  lambda x: bytes(ForkingPickler.dumps(x, proto))):
        got = pickle.loads(dumps(e))
        assert type(got) is type(e)
        assert (got.rc, got.status, got.what, str(got), got.args) == (
            e.rc, e.status, e.what, str(e), e.args)
        assert isinstance(got, ndshm.Error)
        if isinstance(e, OSError):
            assert got.errno == e.errno and got.errno is not None
    if rc == -3:
        assert isinstance(got, FileExistsError) and got.errno == 17
    if rc == -4:
        assert isinstance(got, FileNotFoundError) and got.errno == 2
    if rc == -1013:
        assert isinstance(got, OSError) and got.errno == 13


def test_error_keeps_the_message_it_was_raised_with():
    """The receiver may run another library version: the message travels, not just the code."""
    e = _error(-22, "writer 'x'")
    data = pickle.dumps(e).replace(b"writer 'x'", b"writer 'y'")  # same length
    assert "writer 'y'" in str(pickle.loads(data))


@pytest.fixture(params=["fork", "spawn"])
def ctx(request):
    if request.param not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {request.param} start method")
    return multiprocessing.get_context(request.param)


def test_pool_delivers_a_workers_ndshm_error(name, ctx):
    """Used to hang forever: the error did not unpickle and killed the Pool's result thread."""
    with ctx.Pool(2) as pool:
        res = pool.apply_async(mp_targets.open_missing_reader, (name,))
        with pytest.raises(ndshm.Error) as ei:
            res.get(timeout=60)  # a regression fails here instead of hanging
        assert ei.value.status == Status.E_NOENT
        with pytest.raises(ndshm.Error) as ei:
            pool.map_async(mp_targets.square_or_fail, range(6)).get(timeout=60)
        assert ei.value.status == Status.E_WRITER_ALIVE and "worker item 3" in str(ei.value)
        # the pool still works afterwards
        assert pool.map_async(mp_targets.square_or_fail, [1, 2]).get(timeout=60) == [1, 4]


POOL_APPLY = r"""
import multiprocessing, sys
import ndshm
import mp_targets
name, method = sys.argv[1], sys.argv[2]
if __name__ == "__main__":
    with multiprocessing.get_context(method).Pool(2) as pool:
        try:
            pool.apply(mp_targets.open_missing_reader, (name,))
        except FileNotFoundError as e:
            print("apply", type(e).__name__, e.status.name, name in str(e), flush=True)
        try:
            pool.map(mp_targets.square_or_fail, range(6))
        except ndshm.Error as e:
            print("map", type(e).__name__, e.status.name, flush=True)
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_apply_and_map_deliver_the_error(name, method, tmp_path):
    """apply() and map() themselves (no timeout of their own): in a child process with a
    timeout, so that a regression fails instead of hanging the suite."""
    script = tmp_path / "pool_apply.py"  # spawn re-imports the main module: a real file
    script.write_text(POOL_APPLY)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PKG, HERE]))
    try:
        p = subprocess.run([sys.executable, str(script), name, method], capture_output=True,
                           text=True, timeout=120, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("Pool.apply/map hung on a worker's ndshm error (expected it raised)")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "apply NotFoundError E_NOENT True", "map Error E_WRITER_ALIVE"], p.stdout + p.stderr


def test_handles_refuse_pickling(name):
    with ndshm.Writer(name) as w, ndshm.Reader(name) as r:
        for h, kind in ((w, "Writer"), (r, "Reader")):
            for dumps in (pickle.dumps, ForkingPickler.dumps):
                with pytest.raises(TypeError) as ei:
                    dumps(h)
                msg = str(ei.value)
                assert f"ndshm {kind}" in msg and name in msg and "channel name" in msg
        import copy

        with pytest.raises(TypeError):
            copy.copy(w)
    ndshm.unlink(name)


def test_pool_task_with_a_handle_fails_in_the_caller(name, ctx):
    """Pool pickles tasks in a thread of the caller and reports a pickling error as the result."""
    with ndshm.Writer(name) as w, ctx.Pool(1) as pool:
        res = pool.apply_async(mp_targets.just_exit, (w,))
        with pytest.raises(TypeError, match="ndshm Writer"):
            res.get(timeout=60)
    ndshm.unlink(name)


QUEUE = r"""
import multiprocessing, queue, sys
import ndshm
name, kind = sys.argv[1], sys.argv[2]
w = ndshm.Writer(name)
h = w if kind == "Writer" else ndshm.Reader(name)
q = multiprocessing.get_context("spawn").Queue()
q.put(h)        # multiprocessing pickles in its feeder thread: the TypeError is reported there
q.put("after")  # and the handle is never delivered
print(q.get(timeout=30), flush=True)
w.close()
ndshm.unlink(name)
"""


@pytest.mark.parametrize("kind", ["Writer", "Reader"])
def test_queue_put_of_a_handle_is_loud(name, kind):
    p = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {PKG!r})\n" + QUEUE, name, kind],
        capture_output=True, text=True, timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "after"  # the handle was not silently delivered as garbage
    assert f"TypeError: cannot pickle <ndshm.{kind} '{name}'" in p.stderr, p.stderr
