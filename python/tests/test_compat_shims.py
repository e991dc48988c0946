"""The faces under the original names: ndshm.compat.alias() and the shim packages of
python/compat-shims (`PYTHONPATH=python/compat-shims python3 -c 'import SharedArray'`)."""

import os
import subprocess
import sys

import pytest

from conftest import PKG, run_py

SHIMS = os.path.join(PKG, "compat-shims")

CASES = {
    "SharedArray": "import SharedArray as sa; print(sa.__name__, sa.create.__module__)",
    "ndsharray": "import ndsharray; from ndsharray import NdShArray, supported_types; "
                 "import ndsharray.ndsharray as m; print(ndsharray.__name__, m is ndsharray, "
                 "len(supported_types))",
    "wea": "import wea; import wea.shared_memory, wea.buffered_memory; "
           "print(wea.__name__, wea.shared_memory is sys.modules['wea.shared_memory'], "
           "wea.buffered_memory.__name__)",
    "shared_memory": "import shared_memory as shm; print(shm.__name__, shm.SharedMemory.__name__)",
    "shared_memory_wrapper": "from shared_memory_wrapper import object_to_shared_memory, "
                             "free_memory; import shared_memory_wrapper as m; print(m.__name__)",
}
EXPECT = {
    "SharedArray": "ndshm.compat.sharedarray ndshm.compat.sharedarray",
    "ndsharray": "ndshm.compat.ndsharray True 14",
    "wea": "ndshm.compat.wea True ndshm.compat.wea.buffered_memory",
    "shared_memory": "ndshm.compat.shared_memory SharedMemory",
    "shared_memory_wrapper": "ndshm.compat.shared_memory_wrapper",
}


@pytest.mark.parametrize("lib", sorted(CASES))
def test_shim_package_from_the_source_tree(lib, tmp_path):
    """Only the shims on PYTHONPATH (not python/): the shim finds the package next to it."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = SHIMS
    p = subprocess.run([sys.executable, "-c", "import sys; " + CASES[lib]], env=env,
                       capture_output=True, text=True, cwd=str(tmp_path), timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == EXPECT[lib]


@pytest.mark.parametrize("lib", sorted(CASES))
def test_alias(lib):
    out = run_py(f"import ndshm.compat; ndshm.compat.alias({lib!r})\n" + CASES[lib]).stdout
    assert out.strip() == EXPECT[lib]


def test_alias_all_and_unknown():
    out = run_py("import ndshm.compat; ndshm.compat.alias()\n"
                 "import SharedArray, ndsharray, wea, shared_memory, shared_memory_wrapper\n"
                 "print('ok')\n"
                 "try:\n"
                 "    ndshm.compat.alias('numpy')\n"
                 "except ValueError as e:\n"
                 "    print('ValueError', 'SharedArray' in str(e))\n").stdout
    assert out.split() == ["ok", "ValueError", "True"]


def test_readme_example_through_the_shim(name):
    """SharedArray's README example with nothing changed but the name, through the shim."""
    env = dict(os.environ, PYTHONPATH=SHIMS)
    code = (f"import numpy as np\nimport SharedArray as sa\na = sa.create('{name}', 10)\n"
            f"b = sa.attach('{name}')\na[0] = 42\nprint(b[0])\ndel a\nprint(b[0])\n"
            f"sa.list()\nsa.delete('{name}')\nprint(b[0])\n")
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["42.0"] * 3
