"""fork(): a writer belongs to the process that opened it; readers inherited over fork work.

Each os.fork() case runs in a fresh interpreter (a script), so the child can exit *normally* —
atexit handlers, module teardown and garbage collection all run in it, which is what used to
unlink the parent's channel."""

import json
import multiprocessing
import os

import numpy as np
import pytest

import ndshm
from ndshm.compat.ndsharray import NdShArray

import mp_targets
from conftest import run_py, segments

CHILD_EXITS = r"""
import gc, json, os, sys
import numpy as np
import ndshm
from ndshm.compat.ndsharray import NdShArray
name, how = sys.argv[1], sys.argv[2]
if how == "face":
    w = NdShArray(name, np.arange(3), r_w="w")
else:
    w = ndshm.Writer(name, unlink_on_close=True)
    w.publish(np.arange(3))
pid = os.fork()
if pid == 0:
    if how == "del":
        del w
        gc.collect()
    elif how == "close":
        try:
            w.close()
            print(json.dumps({"close": "ALLOWED"}), flush=True)
        except ndshm.Error as e:
            print(json.dumps({"close": e.status.name}), flush=True)
    elif how == "with":
        try:
            with w:
                pass
        except ndshm.Error as e:
            print(json.dumps({"with": e.status.name}), flush=True)
    sys.exit(0)  # a normal exit: atexit, teardown and gc run in the child
_, st = os.waitpid(pid, 0)
files = sorted(os.listdir(os.environ["NDSHM_DIR"]))
print(json.dumps({"child_exit": os.waitstatus_to_exitcode(st),
                  "after_child": [f for f in files if f.startswith("ndshm." + name)]}), flush=True)
sys.stdin.readline()  # the test checks the channel and reads the next versions meanwhile
for k in range(2):
    w.write(np.arange(10 + k)) if how == "face" else w.publish(np.arange(10 + k))
print(json.dumps({"published": 2}), flush=True)
sys.stdin.readline()
w.close()
"""


@pytest.mark.parametrize("how", ["exit", "del", "close", "with", "face"])
def test_child_exit_never_unlinks_the_parents_channel(name, how):
    import subprocess
    import sys

    from conftest import PKG

    p = subprocess.Popen(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {PKG!r})\n" + CHILD_EXITS,
         name, how],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = []
        while True:
            line = p.stdout.readline()
            assert line, f"script died: {p.stderr.read()}"
            lines.append(json.loads(line))
            if "after_child" in lines[-1]:
                break
        report = lines[-1]
        assert report["child_exit"] == 0
        if how in ("close", "with"):  # an explicit close in the child is refused
            assert lines[0] == {how: "E_FORKED"}, lines
        # the channel survived the child: control and data segments are still there
        assert f"ndshm.{name}" in report["after_child"], report
        assert len(report["after_child"]) >= 2, report
        with ndshm.Reader(name) as r:
            st, arr, info = r.read()
            assert st == ndshm.Status.OK and arr.tolist() == [0, 1, 2] and info.version == 1
            assert r.writer_alive
            p.stdin.write("\n")
            p.stdin.flush()
            assert json.loads(p.stdout.readline()) == {"published": 2}
            # the parent's next versions arrive, numbered on from the parent's own
            st, arr, info = r.read_next()
            assert (st, arr.tolist(), info.version) == (ndshm.Status.OK, list(range(10)), 2)
            st, arr, info = r.read_next()
            assert (st, arr.tolist(), info.version) == (ndshm.Status.OK, list(range(11)), 3)
        p.stdin.write("\n")
        p.stdin.flush()
        assert p.wait(30) == 0, p.stderr.read()
        assert segments(name) == []  # the parent's own close removes it (unlink_on_close)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


CHILD_PUBLISHES = r"""
import json, os, sys
import numpy as np
import ndshm
name = sys.argv[1]
w = ndshm.Writer(name, unlink_on_close=True)
w.publish(np.arange(3))
r, wr = os.pipe()
pid = os.fork()
if pid == 0:
    out = {}
    for what, call in [("publish", lambda: w.publish(np.full(4, 7))),
                       ("loan", lambda: w.loan(np.int64, 4)),
                       ("commit", w.commit), ("cancel", w.cancel),
                       ("reserve", lambda: w.reserve(1 << 20)),
                       ("version", lambda: w.version), ("close", w.close)]:
        try:
            call()
            out[what] = "ALLOWED"
        except ndshm.Error as e:
            out[what] = e.status.name
    out["forked"] = w.forked
    out["closed"] = w.closed
    out["repr"] = repr(w)
    os.write(wr, json.dumps(out).encode())
    os._exit(0)
os.close(wr)
child = json.loads(os.read(r, 65536))
os.waitpid(pid, 0)
v = w.publish(np.full(5, 9))
rd = ndshm.Reader(name, replay=True)
got = []
while True:
    st, arr, info = rd.read_next()
    if st != ndshm.Status.OK:
        break
    got.append([info.version, arr.tolist()])
print(json.dumps({"child": child, "parent_version": v, "versions": got,
                  "parent_forked": w.forked}))
w.close()
"""


def test_child_publishing_through_inherited_writer_is_refused(name):
    out = json.loads(run_py(CHILD_PUBLISHES, name).stdout)
    child = out["child"]
    for what in ("publish", "loan", "commit", "cancel", "reserve", "version", "close"):
        assert child[what] == "E_FORKED", (what, child)
    assert child["forked"] and not child["closed"] and "fork" in child["repr"]
    # nothing of the child's reached the channel; the parent numbers on from its own version
    assert out["parent_version"] == 2 and not out["parent_forked"]
    assert out["versions"] == [[1, [0, 1, 2]], [2, [9] * 5]]
    assert segments(name) == []


def test_reader_inherited_over_fork_reads(name):
    code = r"""
import json, os, sys
import numpy as np
import ndshm
name = sys.argv[1]
w = ndshm.Writer(name)
rd = ndshm.Reader(name)
w.publish(np.arange(2))
assert rd.read()[0] == ndshm.Status.OK
r, wr = os.pipe()
go_r, go_w = os.pipe()
pid = os.fork()
if pid == 0:
    import gc
    os.read(go_r, 1)
    st = rd.wait(30)
    s2, arr, info = rd.read_next()
    s3, view, vinfo = rd.view_next()  # the zero-copy path too, released in the child
    out = [st.name, s2.name, arr.tolist(), info.version, s3.name, view.tolist(),
           vinfo.version, ndshm.view_check(view).name]
    del view
    gc.collect()
    rd.close()
    os.write(wr, json.dumps(out).encode())
    os._exit(0)
w.publish(np.arange(6) * 3)
w.publish(np.arange(2) + 7)
os.write(go_w, b"x")
print(os.read(r, 65536).decode())
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0
st, arr, info = rd.read()  # the parent's own handle: unaffected by the child's reads
assert st == ndshm.Status.OK and info.version == 3, (st, info)
w.close()
ndshm.unlink(name)
"""
    out = json.loads(run_py(code, name).stdout)
    assert out == ["OK", "OK", [0, 3, 6, 9, 12, 15], 2, "OK", [7, 8], 3, "OK"]


# ----- multiprocessing with the fork start method ------------------------------------------


@pytest.fixture
def fork_ctx():
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork start method on this platform")
    return multiprocessing.get_context("fork")


def test_multiprocessing_fork_child_cannot_use_parents_writer(name, fork_ctx):
    with ndshm.Writer(name, unlink_on_close=True) as w, ndshm.Reader(name) as r:
        w.publish(np.arange(3))
        q = fork_ctx.Queue()
        p = fork_ctx.Process(target=mp_targets.publish_through, args=(w, q))
        p.start()
        out = q.get(timeout=60)
        p.join(60)
        assert p.exitcode == 0
        assert out == {"publish": "E_FORKED", "loan": "E_FORKED", "reserve": "E_FORKED",
                       "close": "E_FORKED", "forked": True}
        assert not w.forked
        assert w.publish(np.arange(7)) == 2  # the parent's numbering is intact
        st, arr, info = r.read_next()
        assert (st, info.version, arr.tolist()) == (ndshm.Status.OK, 1, [0, 1, 2])
        st, arr, info = r.read_next()
        assert (st, info.version, arr.tolist()) == (ndshm.Status.OK, 2, list(range(7)))
    assert segments(name) == []


def test_multiprocessing_fork_child_reads_with_inherited_reader(name, fork_ctx):
    with ndshm.Writer(name) as w, ndshm.Reader(name) as r:
        w.publish(np.arange(3))
        assert r.read()[0] == ndshm.Status.OK
        q = fork_ctx.Queue()
        p = fork_ctx.Process(target=mp_targets.read_inherited, args=(r, q))
        p.start()
        w.publish(np.arange(5) + 100)
        st, status, arr, pid = q.get(timeout=60)
        p.join(60)
        assert (st, status, arr) == ("OK", "OK", [100, 101, 102, 103, 104])
        assert pid != os.getpid() and p.exitcode == 0
        # the parent's own reader is independent of the child's copy
        st, arr, info = r.read()
        assert st == ndshm.Status.OK and info.version == 2
    ndshm.unlink(name)


def test_multiprocessing_fork_child_exit_keeps_face_writer(name, fork_ctx):
    w = NdShArray(name, np.arange(4), r_w="w")
    r = NdShArray(name, r_w="r")
    assert r.read()[0]
    p = fork_ctx.Process(target=mp_targets.just_exit)
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert f"ndshm.{name}" in [os.path.basename(s) for s in segments(name)]
    w.write(np.arange(6))
    status, arr = r.read()
    assert status is True and arr.tolist() == list(range(6))
    w.close()
    r.close()
    assert segments(name) == []
