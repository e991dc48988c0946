"""Where `import ndshm` finds libndshm: $NDSHM_LIBRARY, then the library installed with the
package, then (only in a source tree) the newest non-sanitizer build, then the system loader.

Each rule is checked twice: on ndshm._lib.candidates() with fake layouts, and by importing a
copy of the package laid out that way in a fresh interpreter with a clean environment."""

import os
import shutil
import subprocess
import sys
import time

import pytest

import ndshm
from ndshm import _lib

from conftest import PKG

REAL_LIB = _lib.path  # the library this test process loaded (the build's, from ctest)
CC = shutil.which("cc") or shutil.which("gcc")


def copy_pkg(dest_dir):
    shutil.copytree(os.path.join(PKG, "ndshm"), os.path.join(dest_dir, "ndshm"),
                    ignore=shutil.ignore_patterns("__pycache__", "_install.py"))
    return os.path.join(dest_dir, "ndshm")


def fake_source_tree(root):
    """root/python/ndshm (a copy) in a tree that looks like the repository."""
    os.makedirs(os.path.join(root, "include", "ndshm"))
    open(os.path.join(root, "include", "ndshm", "ndshm.h"), "w").close()
    open(os.path.join(root, "CMakeLists.txt"), "w").close()
    os.makedirs(os.path.join(root, "python"))
    return copy_pkg(os.path.join(root, "python"))


def build_dir(root, name, sanitizer="", lib=REAL_LIB, age=0.0):
    d = os.path.join(root, name)
    os.makedirs(d)
    with open(os.path.join(d, "CMakeCache.txt"), "w") as f:
        f.write(f"CMAKE_BUILD_TYPE:STRING=Debug\nNDSHM_SANITIZER:STRING={sanitizer}\n")
    dst = os.path.join(d, "libndshm.so")
    shutil.copy(lib, dst)
    t = time.time() - age
    os.utime(dst, (t, t))
    return dst


def compile_sanitized(tmp, flag):
    """A real shared object built with -fsanitize=flag (it references the runtime's init)."""
    if CC is None:
        pytest.skip("no C compiler")
    src = os.path.join(tmp, "x.c")
    with open(src, "w") as f:
        f.write("int ndshm_version_like(int *p) { return p[1]; }\n")
    out = os.path.join(tmp, f"lib-{flag}.so")
    p = subprocess.run([CC, "-shared", "-fPIC", f"-fsanitize={flag}", src, "-o", out],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot build with -fsanitize={flag}: {p.stderr.strip()[:200]}")
    return out


def import_report(pkg_parent, extra_env=None, cwd=None):
    """Import the package under pkg_parent in a fresh /usr/bin/python3, clean environment."""
    env = {"PATH": "/usr/bin:/bin", "NDSHM_DIR": os.environ["NDSHM_DIR"],
           "PYTHONPATH": pkg_parent, "PYTHONDONTWRITEBYTECODE": "1"}
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-c",
         "import ndshm, ndshm._lib as l; print(l.rule); print(l.path); "
         "print(ndshm.__file__)"],
        capture_output=True, text=True, env=env, cwd=cwd or pkg_parent, timeout=60,
    )


# ----- rule by rule, on candidates() -------------------------------------------------------


def test_env_variable_wins_and_is_not_second_guessed(tmp_path):
    pkg = fake_source_tree(str(tmp_path))
    build_dir(str(tmp_path), "build")
    got = list(_lib.candidates({"NDSHM_LIBRARY": "/x/libndshm-asan.so"}, pkg))
    assert got == [("/x/libndshm-asan.so", "NDSHM_LIBRARY", None)]


def test_installed_library_before_the_system_one(tmp_path):
    site = tmp_path / "prefix" / "lib" / "python3" / "dist-packages"
    pkg = copy_pkg(str(site))
    (tmp_path / "prefix" / "lib" / "x86_64").mkdir()
    with open(os.path.join(pkg, "_install.py"), "w") as f:
        f.write('LIBRARY = "../../../x86_64/libndshm.so.0"\n')
    got = list(_lib.candidates({}, pkg))
    want = str(tmp_path / "prefix" / "lib" / "x86_64" / "libndshm.so.0")
    assert got == [(want, "installed", None), ("libndshm.so.0", "system", None)]


def test_source_tree_builds_newest_first_sanitizers_refused(tmp_path):
    root = str(tmp_path)
    pkg = fake_source_tree(root)
    old = build_dir(root, "build", age=300)
    asan = build_dir(root, "build-asan", sanitizer="address;undefined", age=0)
    tsan = build_dir(os.path.join(root, "out"), "tsan", sanitizer="thread", age=10)
    rel = build_dir(os.path.join(root, "out"), "release", age=100)
    got = list(_lib.candidates({}, pkg))
    assert [(p, r) for p, r, _ in got] == [
        (asan, "source tree"), (tsan, "source tree"), (rel, "source tree"),
        (old, "source tree"), ("libndshm.so.0", "system")]
    refused = {p: why for p, _, why in got}
    assert "NDSHM_SANITIZER=address;undefined" in refused[asan]
    assert "NDSHM_SANITIZER=thread" in refused[tsan]
    assert refused[rel] is None and refused[old] is None


@pytest.mark.parametrize("flag,mark", [("address", "__asan_init"), ("thread", "__tsan_init")])
def test_sanitizer_found_from_the_symbols_without_cmake_cache(tmp_path, flag, mark):
    lib = compile_sanitized(str(tmp_path), flag)
    assert _lib.sanitizer_of(lib) == f"references {mark}"
    assert _lib.sanitizer_of(REAL_LIB) is None  # the release library is not flagged


def test_not_a_source_tree_never_uses_build_directories(tmp_path):
    # an installed-looking copy with a build directory beside it (no CMakeLists/include)
    pkg = copy_pkg(str(tmp_path / "site"))
    build_dir(str(tmp_path / "site"), "build")
    build_dir(str(tmp_path), "build")
    assert list(_lib.candidates({}, pkg)) == [("libndshm.so.0", "system", None)]
    assert _lib.source_tree(pkg) is None
    assert _lib.source_tree(os.path.join(PKG, "ndshm")) == os.path.dirname(PKG)


# ----- the same rules, importing for real --------------------------------------------------


def test_import_skips_a_newer_asan_build(tmp_path):
    """A stray build-asan/ used to break `import ndshm` (the ASan runtime aborts an
    uninstrumented interpreter): the release build is loaded instead."""
    root = str(tmp_path)
    fake_source_tree(root)
    good = build_dir(root, "build", age=600)
    bad = build_dir(root, "build-asan", lib=compile_sanitized(root, "address"))
    assert os.stat(bad).st_mtime > os.stat(good).st_mtime
    p = import_report(os.path.join(root, "python"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[:2] == ["source tree", os.path.realpath(good)], p.stdout


def test_import_env_variable_loads_what_it_names(tmp_path):
    lib = build_dir(str(tmp_path), "tsan-build", sanitizer="thread")  # flagged, but named
    pkg_parent = os.path.dirname(copy_pkg(str(tmp_path / "site")))
    p = import_report(pkg_parent, {"NDSHM_LIBRARY": lib})
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[:2] == ["NDSHM_LIBRARY", os.path.realpath(lib)]


def test_import_env_variable_that_does_not_load_fails(tmp_path):
    pkg_parent = os.path.dirname(copy_pkg(str(tmp_path / "site")))
    missing = str(tmp_path / "nope" / "libndshm.so")
    p = import_report(pkg_parent, {"NDSHM_LIBRARY": missing})
    assert p.returncode != 0
    assert "ImportError" in p.stderr and missing in p.stderr
    assert "libndshm.so.0 (system)" not in p.stderr  # no silent fallback to another library


def test_import_installed_layout(tmp_path):
    site = tmp_path / "prefix" / "lib" / "python3" / "dist-packages"
    pkg = copy_pkg(str(site))
    libdir = tmp_path / "prefix" / "lib"
    shutil.copy(REAL_LIB, libdir / "libndshm.so.0")
    with open(os.path.join(pkg, "_install.py"), "w") as f:
        f.write('LIBRARY = "../../../libndshm.so.0"\n')
    p = import_report(str(site), cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[:2] == ["installed", str(libdir / "libndshm.so.0")]


def test_import_system_loader_last(tmp_path):
    pkg_parent = os.path.dirname(copy_pkg(str(tmp_path / "site")))
    build_dir(str(tmp_path / "site"), "build")  # not a source tree: ignored
    ld = tmp_path / "ld"
    ld.mkdir()
    shutil.copy(REAL_LIB, ld / "libndshm.so.0")
    p = import_report(pkg_parent, {"LD_LIBRARY_PATH": str(ld)})
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[:2] == ["system", str(ld / "libndshm.so.0")]


def test_loaded_library_is_reported():
    assert os.path.isfile(_lib.path) and _lib.rule in ("NDSHM_LIBRARY", "installed",
                                                        "source tree", "system")
    assert ndshm.library_path() == _lib.path
