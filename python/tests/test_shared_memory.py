"""The shared_memory face: the README's snippets run unchanged (only the import switched),
memory that persists until unlink, and numpy/pandas/xarray objects whose values are shared
memory: a DataFrame changed in one process is seen in another (fork and spawn)."""

import multiprocessing

import numpy as np
import pytest

import ndshm
from ndshm.compat import shared_memory as shm

import mp_targets
from conftest import run_py, segments, unique_name

pd = pytest.importorskip("pandas")  # Debian python3-pandas (scripts/deps.sh installs it)
xr = pytest.importorskip("xarray")


@pytest.fixture
def names():
    """Five names for the README's five objects, all removed afterwards."""
    out = {k: unique_name(k) for k in ("name", "array", "series", "frame", "array2")}
    yield out
    for n in out.values():
        ndshm.unlink(n, missing_ok=True)


def test_readme(names, console):
    c = console()
    out = c.run(f"""
        from ndshm.compat import shared_memory as shm

        # a shared memory named `name` with the size of 100 bytes
        memory = shm.SharedMemory.create("{names['name']}", 100)

        # open the memory we just created
        same_memory = shm.SharedMemory.open("{names['name']}")
        memory.buf[3] = 42
        print(same_memory.size, same_memory.buf[3])
    """)
    assert out.split() == ["100", "42"]
    out = c.run(f"""
        from ndshm.compat import shared_memory as shm
        # define the memory layout：dtype=float32, shape=(3, 5)
        layout = shm.NdArrayLayout("float32", (3, 5))
        array = shm.create("{names['array']}", layout)

        # load the array we just created
        same_array = shm.load("{names['array']}")
        array[2, 4] = 1.5
        print(type(same_array).__name__, same_array.dtype, same_array.shape, same_array[2, 4])
    """)
    assert out.split() == ["ndarray", "float32", "(3,", "5)", "1.5"]
    out = c.run(f"""
        from ndshm.compat import shared_memory as shm
        layout = shm.SeriesLayout(dtype="float32", index=["a", "b", "c"])
        series = shm.create("{names['series']}", layout)

        # read the series we just created
        same_series = shm.load("{names['series']}")
        series["b"] = 2.5
        print(type(same_series).__name__, same_series.dtype, list(same_series.index), same_series["b"])
    """)
    assert out.split() == ["Series", "float32", "['a',", "'b',", "'c']", "2.5"]
    out = c.run(f"""
        from ndshm.compat import shared_memory as shm
        # two columns `a` and `b`, with dtypes `float32` and `int32` respectively
        # index are ["a", "b", "c"]
        layout = shm.DataFrameLayout(dtypes=[("a", "float32"), ("b", "int32")], index=["a", "b", "c"])
        frame = shm.create("{names['frame']}", layout)

        # read the datafrmae we just created
        same_frame = shm.load("{names['frame']}")
        frame.loc["c", "b"] = 7
        print(type(same_frame).__name__, list(same_frame.columns), [str(t) for t in same_frame.dtypes], list(same_frame.index), same_frame.loc["c", "b"])
    """)
    assert out.split() == ["DataFrame", "['a',", "'b']", "['float32',", "'int32']",
                           "['a',", "'b',", "'c']", "7"]
    out = c.run(f"""
        from ndshm.compat import shared_memory as shm
        import xarray as xr
        # define a template data
        template_data = xr.DataArray(0, dims=["x", "y"], coords={{"x": [1, 2, 3], "y": ["a", "b", "c"]}})
        layout = shm.DataArrayLayout.from_data(template_data)
        array = shm.create("{names['array2']}", layout)

        same_array = shm.load("{names['array2']}")
        array.loc[2, "b"] = 5
        print(type(same_array).__name__, same_array.dims, same_array.shape, same_array.dtype)
        print(same_array.coords["x"].values.tolist(), same_array.coords["y"].values.tolist())
        print(int(same_array.loc[2, "b"]), int(same_array.sum()))
    """)
    lines = out.splitlines()
    assert lines[0] == "DataArray ('x', 'y') (3, 3) int64"
    assert lines[1] == "[1, 2, 3] ['a', 'b', 'c']"
    assert lines[2] == "5 5"
    c.run(f"""
        from ndshm.compat import shared_memory as shm
        shm.unlink("{names['name']}")
    """)
    assert segments(names["name"]) == []


def test_memory_persists_until_unlink(name):
    run_py("from ndshm.compat import shared_memory as shm\n"
           "m = shm.SharedMemory.create(sys.argv[1], 16)\n"
           "m.buf[:4] = b'abcd'\n"
           "m.close()\n", name)  # closed, and the process exits: nothing is freed
    m = shm.SharedMemory.open(name)
    assert bytes(m.buf[:4]) == b"abcd" and m.size == 16
    m.close()
    with pytest.raises(ValueError):
        m.buf
    shm.unlink(name)
    with pytest.raises(FileNotFoundError):
        shm.SharedMemory.open(name)
    with pytest.raises(FileNotFoundError):
        shm.unlink(name)


def test_objects_survive_their_creator_and_keep_index(name):
    run_py("import numpy as np, pandas as pd\n"
           "from ndshm.compat import shared_memory as shm\n"
           "idx = pd.date_range('2024-01-01', periods=4, freq='h', name='t')\n"
           "s = shm.create(sys.argv[1], shm.SeriesLayout('float64', idx, name='temp'))\n"
           "s[:] = [1.5, 2.5, 3.5, 4.5]\n", name)
    s = shm.load(name)
    assert s.tolist() == [1.5, 2.5, 3.5, 4.5] and s.name == "temp"
    assert s.index.equals(pd.date_range("2024-01-01", periods=4, freq="h", name="t"))
    shm.unlink(name)


def test_dataframe_values_are_shared_memory(name):
    frame = shm.create(name, shm.DataFrameLayout({"x": np.float64, "n": np.int16,
                                                   "y": "float64"}, pd.RangeIndex(5)))
    other = shm.load(name)
    frame.iloc[1, 0] = 3.25
    frame["n"] += 2
    other.loc[4, "y"] = -1.0
    assert other["x"].tolist() == [0, 3.25, 0, 0, 0] and other["n"].tolist() == [2] * 5
    assert frame.loc[4, "y"] == -1.0
    assert isinstance(other.index, pd.RangeIndex)
    shm.unlink(name)


def test_layout_errors_and_nothing_left_behind(name):
    with pytest.raises(ValueError):
        shm.NdArrayLayout("U3", (2,))  # values must be numeric
    with pytest.raises(ValueError):
        shm.SeriesLayout("f4", [object(), 1])
    with pytest.raises(ValueError):
        shm.DataFrameLayout([("a", "f4"), ("a", "i4")], [1, 2])
    shm.create(name, shm.NdArrayLayout("f8", 3))
    with pytest.raises(FileExistsError):
        shm.create(name, shm.NdArrayLayout("f8", 3))
    shm.unlink(name)
    m = shm.SharedMemory.create(name, 64)  # raw bytes are not a layout
    with pytest.raises(ValueError, match="not ready|no layout"):
        shm.load(name)
    m.buf[:8] = b"NDSHMLY1"
    m.buf[8:16] = (10**6).to_bytes(4, "little") + (1).to_bytes(4, "little")  # too long
    with pytest.raises(ValueError, match="header length"):
        shm.load(name)
    shm.unlink(name)
    with pytest.raises(FileNotFoundError):
        shm.load(name)


CORRUPT = [
    ('{"kind": "ndarray", "layout": {"dtype": "<f8", "shape": [100000000]}}', "past the segment"),
    ('{"kind": "ndarray", "layout": {"dtype": "|O", "shape": [1]}}', "dtype"),
    ('{"kind": "nope", "layout": {}}', "unknown layout kind"),
    ('{"kind": "series", "layout": {"dtype": "<f8", "index": {"dtype": "object", '
     '"values": [{"a": 1}]}}}', "index value"),
    ('{"kind": "dataarray", "layout": {"dtype": "<f8", "dims": ["x"], "shape": [2], '
     '"coords": {"x": {"dtype": "<i8", "values": [1, 2, 3]}}}}', "coordinate"),
    ("not json", "not JSON"),
]


@pytest.mark.parametrize("text,why", CORRUPT, ids=[w for _, w in CORRUPT])
def test_hostile_headers_are_refused(name, text, why):
    body = text.encode()
    m = shm.SharedMemory.create(name, 4096)
    m.buf[16:16 + len(body)] = body
    m.buf[8:16] = len(body).to_bytes(4, "little") + (1).to_bytes(4, "little")
    m.buf[:8] = b"NDSHMLY1"
    with pytest.raises(ValueError, match=why):
        shm.load(name)
    shm.unlink(name)


def test_imports_without_pandas_or_xarray(name):
    """The face imports and its numpy parts work with pandas and xarray unavailable; their
    layouts raise ImportError naming the Debian package, and leave no segment."""
    out = run_py(r"""
import importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in ("pandas", "xarray"):
            raise ImportError(f"blocked {fullname}")
sys.meta_path.insert(0, Block())
from ndshm.compat import shared_memory as shm, sharedarray, wea, ndsharray, shared_memory_wrapper
a = shm.create(sys.argv[1], shm.NdArrayLayout("i4", 3)); a[:] = 7
print(shm.load(sys.argv[1]).tolist())
shm.unlink(sys.argv[1])
for make in (lambda: shm.SeriesLayout("f4", ["a"]),
             lambda: shm.DataFrameLayout([("a", "f4")], ["a"])):
    try:
        shm.create(sys.argv[1], make())
        print("created")
    except ImportError as e:
        print("ImportError", "python3-pandas" in str(e))
try:
    shm.DataArrayLayout.from_data(None)
except ImportError as e:
    print("ImportError", "python3-xarray" in str(e))
print(sorted(m for m in sys.modules if m.split(".")[0] in ("pandas", "xarray")))
""", name).stdout.splitlines()
    assert out == ["[7, 7, 7]", "ImportError True", "ImportError True", "ImportError True", "[]"]
    assert segments(name) == []


@pytest.fixture(params=["fork", "spawn"])
def ctx(request):
    return multiprocessing.get_context(request.param)


def test_dataframe_changed_in_one_process_seen_in_another(name, ctx):
    frame = shm.create(name, shm.DataFrameLayout([("a", "float32"), ("b", "int32")],
                                                 ["r0", "r1", "r2"]))
    frame.loc["r0", "a"] = 0.5
    with ctx.Pool(2) as pool:
        seen = pool.apply_async(mp_targets.shm_frame_change, (name, "r2", "b", 41)).get(120)
        assert seen == {"a": [0.5, 0.0, 0.0], "b": [0, 0, 41]}  # the child saw our change
        assert frame.loc["r2", "b"] == 41  # and we see the child's
        frame.loc["r1", "a"] = 2.0
        assert pool.apply_async(mp_targets.shm_load_values, (name,)).get(120) == {
            "a": [0.5, 2.0, 0.0], "b": [0, 0, 41]}
        res = pool.apply_async(mp_targets.shm_load_missing, (name + "-missing",))
        with pytest.raises(FileNotFoundError) as ei:
            res.get(timeout=60)
        assert ei.value.status == ndshm.Status.E_NOENT
    shm.unlink(name)


def test_dataarray_keeps_name_attrs_and_coordinates(name):
    t = xr.DataArray(np.zeros((2, 3), np.float32), dims=["t", "ch"], name="volts",
                     coords={"t": np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[ns]"),
                             "ch": [1.5, 2.5, 3.5]}, attrs={"unit": "V", "gain": 2})
    a = shm.create(name, shm.DataArrayLayout.from_data(t))
    b = shm.load(name)
    assert (b.name, b.attrs, b.dims, b.dtype) == ("volts", {"unit": "V", "gain": 2},
                                                  ("t", "ch"), np.float32)
    assert b.coords["t"].values.tolist() == t.coords["t"].values.tolist()
    assert b.coords["ch"].values.tolist() == [1.5, 2.5, 3.5]
    a[1, 2] = 9.0
    assert float(b.sel(ch=3.5)[1]) == 9.0
    shm.unlink(name)
