"""The shared_memory_wrapper face: the README's examples run unchanged (only the import
switched), objects whose arrays are shared memory, clean-up that removes only this library's
segments, .npz files, and round trips between processes (fork and spawn)."""

import multiprocessing
import os

import numpy as np
import pytest

import ndshm
from ndshm.compat import sharedarray
from ndshm.compat import shared_memory_wrapper as smw

import mp_targets
from conftest import SHM_DIR


def ours():
    return sorted(a.name for a in ndshm.list_arrays() if a.name.startswith("smw-"))


@pytest.fixture(autouse=True)
def _clean():
    yield
    smw.free_memory()


def test_readme(tmp_path, console):
    c = console()
    out = c.run("""
        import numpy as np
        from ndshm.compat.shared_memory_wrapper import object_to_shared_memory, object_from_shared_memory

        my_object = [[1, 2, 3], np.arange(10), {1: "hi"}]
        identifier = object_to_shared_memory(my_object)

        # in the same or in some other python process
        shared_object = object_from_shared_memory(identifier)

        # Add one to the NumPy array:
        # This is reflected wherever you have read your shared object
        # but not in the original object
        shared_object[1] += 1

        # change the first element (list)
        # this is not reflected anywhere, since this is not a
        # NumPy array and is thus not really shared
        shared_object[0] = "Test"
        print(identifier)
        print(my_object[1].tolist(), shared_object[1].tolist())
    """)
    ident, line = out.splitlines()
    assert line == f"{list(range(10))} {list(range(1, 11))}"
    # "in some other python process": this one, reading the identifier
    other = smw.object_from_shared_memory(ident)
    assert other[0] == [1, 2, 3]  # the list change was not shared
    assert other[1].tolist() == list(range(1, 11))  # the array change was
    assert other[2] == {1: "hi"}
    other[1][0] = 100
    assert c.run("print(shared_object[1][0])").strip() == "100"
    out = c.run("""
        # Important if you don't want to have arrays taking up memory, always call after finishing:
        from ndshm.compat.shared_memory_wrapper import free_memory, remove_shared_memory_in_session
        n_free = free_memory()

        # Alternatively, remove only the shared memory created in this process:
        n_session = remove_shared_memory_in_session()
        print(n_free, n_session)
    """)
    assert out.split() == ["2", "0"]  # the array and the pickle; nothing left for the session
    assert ours() == []
    with pytest.raises(FileNotFoundError):
        smw.object_from_shared_memory(ident)
    assert other[1][0] == 100  # what was loaded keeps working
    f = str(tmp_path / "filename.npz")
    out = c.run(f"""
        from ndshm.compat.shared_memory_wrapper import to_file, from_file
        to_file(my_object, "{f}", compress=False)
        o = from_file("{f}")
        print(o[0], o[1].tolist(), o[2])
    """)
    assert out.strip() == f"[1, 2, 3] {list(range(10))} {{1: 'hi'}}"
    # a real .npz: numpy reads the arrays raw, and nothing else is an object array
    with np.load(f, allow_pickle=False) as z:
        assert any(z[k].tolist() == list(range(10)) for k in z.files)


def test_nested_objects_and_dtypes():
    obj = {"a": (np.ones((2, 3), np.float32), [np.arange(4, dtype=np.uint64)]),
           "holder": mp_targets.Holder("x", np.zeros(3, np.complex128)),
           "f": np.asfortranarray(np.arange(6).reshape(2, 3)),
           "strs": np.array(["a", "bc"]),  # not numeric: pickled, not shared
           "scalar": 3, "none": None}
    back = smw.object_from_shared_memory(smw.object_to_shared_memory(obj))
    assert back["a"][0].dtype == np.float32 and back["a"][1][0].tolist() == [0, 1, 2, 3]
    assert back["f"].flags.f_contiguous and back["f"].tolist() == obj["f"].tolist()
    assert back["holder"].label == "x" and back["holder"].data.dtype == np.complex128
    assert back["strs"].tolist() == ["a", "bc"] and back["scalar"] == 3
    back["holder"].data[1] = 2j
    again = smw.object_from_shared_memory(smw.object_to_shared_memory(back))
    assert again["holder"].data[1] == 2j  # a new object copies the current values
    assert obj["holder"].data[1] == 0  # the original is untouched (not "broken")
    assert len(ours()) == 2 * 5  # 4 shared arrays + the pickle, twice


def test_free_memory_removes_only_this_librarys_segments(name):
    ident = smw.object_to_shared_memory([np.zeros(3)])
    other_array = sharedarray.create(name, 4)  # another program's shared array
    with ndshm.Writer(name + "-ch") as w:  # and another program's channel
        w.publish(np.arange(3))
    lookalike = name + "-smw-1x00000000-1"  # not our pattern: a prefix is not enough
    sharedarray.create(lookalike, 1)
    assert smw.free_memory() == 2
    assert ours() == []
    assert sharedarray.attach(name).shape == (4,) and ndshm.stat(name + "-ch").version == 1
    assert sharedarray.attach(lookalike).shape == (1,)
    with pytest.raises(FileNotFoundError):
        smw.object_from_shared_memory(ident)
    for n in (name, lookalike):
        sharedarray.delete(n)
    ndshm.unlink(name + "-ch")
    del other_array


def test_remove_in_session_leaves_other_processes_segments():
    ctx = multiprocessing.get_context("spawn")
    mine = smw.object_to_shared_memory({"x": np.arange(3)})
    with ctx.Pool(1) as pool:
        theirs, removed = pool.apply_async(mp_targets.wrapper_session_cleanup).get(120)
        assert removed == 6  # the worker's two objects: 2 arrays + 1 pickle each
    # nothing of ours: our object still loads, theirs are gone
    assert smw.object_from_shared_memory(mine)["x"].tolist() == [0, 1, 2]
    for ident in theirs:
        with pytest.raises(FileNotFoundError):
            smw.object_from_shared_memory(ident)
    assert smw.remove_shared_memory_in_session() == 2
    assert ours() == []


def test_forked_child_session_is_its_own():
    ctx = multiprocessing.get_context("fork")
    mine = smw.object_to_shared_memory([np.ones(2)])
    with ctx.Pool(1) as pool:
        _, removed = pool.apply_async(mp_targets.wrapper_session_cleanup).get(120)
    assert removed == 6  # the child's 2 objects (3 segments each), never the parent's
    assert smw.object_from_shared_memory(mine)[0].tolist() == [1.0, 1.0]


def test_untrusted_segments_are_not_unpickled():
    ident = smw.object_to_shared_memory([1])
    path = os.path.join(SHM_DIR, "ndshm." + ident)
    os.chmod(path, 0o622)  # writable by others: anyone could have put a pickle there
    with pytest.raises(PermissionError, match="refusing to unpickle"):
        smw.object_from_shared_memory(ident)
    os.chmod(path, 0o600)
    assert smw.object_from_shared_memory(ident) == [1]
    with pytest.raises(ValueError):
        smw.object_from_shared_memory("../etc/passwd")
    arr = sharedarray.create("smw-1x0000abcd-1", 3)  # our pattern, but not a pickle
    with pytest.raises(ValueError, match="does not hold"):
        smw.object_from_shared_memory("smw-1x0000abcd-1")
    sharedarray.delete("smw-1x0000abcd-1")
    del arr


@pytest.mark.parametrize("compress", [False, True])
def test_npz_round_trip(tmp_path, compress):
    obj = [{"k": np.arange(12, dtype=np.int8).reshape(3, 4)}, (np.float16(1.5), "s"),
           mp_targets.Holder("h", np.eye(2))]
    f = str(tmp_path / "o.npz")
    smw.to_file(obj, f, compress=compress)
    back = smw.from_file(f)
    assert back[0]["k"].tolist() == obj[0]["k"].tolist() and back[1] == obj[1]
    assert back[2].label == "h" and back[2].data.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    np.savez(str(tmp_path / "plain.npz"), a=np.ones(2))
    with pytest.raises(ValueError, match="not written by to_file"):
        smw.from_file(str(tmp_path / "plain.npz"))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_round_trip_between_processes(tmp_path, method):
    ctx = multiprocessing.get_context(method)
    obj = {"holder": mp_targets.Holder("cam", np.arange(5, dtype=np.float64)), "t": (1, "two")}
    ident = smw.object_to_shared_memory(obj)
    loaded = smw.object_from_shared_memory(ident)
    npz = str(tmp_path / "reply.npz")
    with ctx.Pool(1) as pool:
        reply_id = pool.apply_async(mp_targets.wrapper_round_trip, (ident, npz)).get(120)
        # the worker's in-place change is in our loaded object, not in the original
        assert loaded["holder"].data.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
        assert obj["holder"].data.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
        res = pool.apply_async(mp_targets.wrapper_load_bad, ("smw-1x00000000-999",))
        with pytest.raises(FileNotFoundError):
            res.get(timeout=60)  # a failing worker's error arrives
    reply = smw.object_from_shared_memory(reply_id)  # the worker has exited: still there
    from_npz = smw.from_file(npz)
    for r in (reply, from_npz):
        assert r["seen"] == [1.0, 2.0, 3.0, 4.0, 5.0] and r["nested"] == [(1, "two")]
        assert r["made"].dtype == np.int16 and r["made"].shape == (2, 3)
    assert reply["made"].tolist() == from_npz["made"].tolist()
    assert smw.free_memory() >= 4
    assert ours() == []
