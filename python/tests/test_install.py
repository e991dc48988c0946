"""`cmake --install` installs the Python package where Debian's /usr/bin/python3 imports it,
with a record of the installed library, so `import ndshm` works with a clean environment."""

import glob
import os
import subprocess
import sys

import pytest

from conftest import SHM_DIR

PYVER = "%d.%d" % sys.version_info[:2]


def build_dir():
    d = os.environ.get("NDSHM_BUILD_DIR")
    if not d:
        lib = os.environ.get("NDSHM_LIBRARY", "")
        d = os.path.dirname(lib) if lib else ""
    if not d or not os.path.isfile(os.path.join(d, "CMakeCache.txt")):
        pytest.skip("no build directory (run through ctest, or set NDSHM_BUILD_DIR)")
    return d


def install(prefix, destdir=None):
    env = dict(os.environ)
    if destdir:
        env["DESTDIR"] = destdir
    p = subprocess.run(["cmake", "--install", build_dir(), "--prefix", prefix],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr


def clean_python(code, pythonpath, cwd):
    """/usr/bin/python3 with nothing but PATH, NDSHM_DIR and PYTHONPATH (no NDSHM_LIBRARY)."""
    env = {"PATH": "/usr/bin:/bin", "NDSHM_DIR": SHM_DIR, "PYTHONDONTWRITEBYTECODE": "1"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


USE = r"""
import numpy as np, ndshm, ndshm._lib as l
with ndshm.Writer("pyinstall-%d" % __import__("os").getpid(), unlink_on_close=True) as w:
    w.publish(np.arange(3.0))
    with ndshm.Reader(w.name) as r:
        st, a, _ = r.read()
print(l.rule)
print(l.path)
print(ndshm.__file__)
print(st.name, a.tolist())
print(__import__("ndshm.core").core.fast_path)
"""


def test_install_into_a_prefix_then_import_with_a_clean_environment(tmp_path):
    prefix = str(tmp_path / "prefix")
    install(prefix)
    site = os.path.join(prefix, "lib", f"python{PYVER}", "dist-packages")
    assert os.path.isfile(os.path.join(site, "ndshm", "_install.py"))
    p = clean_python(USE, site, cwd=str(tmp_path))  # a non-system prefix: PYTHONPATH needed
    assert p.returncode == 0, p.stderr
    rule, lib, init, result, fast = p.stdout.splitlines()
    assert rule == "installed"
    # the extension, when the build made it, is installed into the package and used
    built = glob.glob(os.path.join(build_dir(), "python", "_fast*.so"))
    if built:
        assert fast == os.path.join(site, "ndshm", os.path.basename(built[0]))
    else:
        assert fast == "None"
    assert lib.startswith(prefix + os.sep) and os.path.basename(lib).startswith("libndshm.so")
    assert init == os.path.join(site, "ndshm", "__init__.py")
    assert result == "OK [0.0, 1.0, 2.0]"
    # the faces' shims are installed too
    shims = os.path.join(prefix, "share", "ndshm", "python-compat-shims")
    p = clean_python("import SharedArray, wea.shared_memory; print(SharedArray.__name__, "
                     "wea.shared_memory.__name__)", shims + os.pathsep + site, str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["ndshm.compat.sharedarray", "ndshm.compat.wea.shared_memory"]


@pytest.mark.parametrize("prefix,site", [
    ("/usr", "/usr/lib/python3/dist-packages"),
    ("/usr/local", f"/usr/local/lib/python{PYVER}/dist-packages"),
])
def test_system_prefixes_install_into_debians_sys_path(tmp_path, prefix, site):
    """For /usr and /usr/local the package lands in a directory that Debian's python3 has on
    sys.path (checked here through DESTDIR, so nothing outside the test directory changes)."""
    dest = str(tmp_path / "dest")
    install(prefix, destdir=dest)
    p = clean_python("import site, sys; print('\\n'.join(sys.path))", None, str(tmp_path))
    assert site in p.stdout.splitlines(), p.stdout
    staged = dest + site
    assert os.path.isfile(os.path.join(staged, "ndshm", "__init__.py"))
    # the record is relative, so the staged tree loads the staged library
    p = clean_python(USE, staged, cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    rule, lib, _, result, fast = p.stdout.splitlines()
    assert rule == "installed" and lib.startswith(dest + prefix + "/lib/")
    assert result == "OK [0.0, 1.0, 2.0]"
    if glob.glob(os.path.join(build_dir(), "python", "_fast*.so")):
        assert fast.startswith(os.path.join(staged, "ndshm", "_fast")), fast


def test_source_package_is_not_importable_without_pythonpath(tmp_path):
    """The check above is meaningful: with a clean environment and no install, there is no
    ndshm to import (unless one is installed system-wide, which this machine must not have)."""
    p = clean_python("import ndshm", None, str(tmp_path))
    assert p.returncode != 0 and "ModuleNotFoundError" in p.stderr, p.stdout + p.stderr
