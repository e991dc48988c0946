"""Shared fixtures: unique channel names that are always cleaned up, and the C peer."""

import glob
import itertools
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))  # python/: import ndshm without installing

import ndshm  # noqa: E402

# The whole suite (and every peer process it starts) works in a private directory of the
# shared-memory file system: another project's `ndshm gc` or `ndshm rm` running at the same
# time cannot remove our channels, and our gc test cannot remove theirs. Removed at the end.
_PRIVATE_DIR = None
if "NDSHM_DIR" not in os.environ:
    _PRIVATE_DIR = tempfile.mkdtemp(
        prefix="ndshm-pytest-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None
    )
    os.environ["NDSHM_DIR"] = _PRIVATE_DIR
SHM_DIR = os.environ["NDSHM_DIR"]
PREFIX = f"pyt{os.getpid()}-"
_counter = itertools.count()


def unique_name(tag: str = "c") -> str:
    """A channel name unique to this test process (the pid) and call."""
    return f"{PREFIX}{next(_counter)}-{tag}"[:100]


def segments(name: str):
    """Files in the shm directory belonging to channel `name` (control + data)."""
    return sorted(
        glob.glob(os.path.join(SHM_DIR, f"ndshm.{name}")) +
        glob.glob(os.path.join(SHM_DIR, f"ndshm.{name}@*"))
    )


def _remove_ours():
    for path in glob.glob(os.path.join(SHM_DIR, f"ndshm.{PREFIX}*")):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


@pytest.fixture(scope="session", autouse=True)
def _session_cleanup():
    yield
    _remove_ours()
    if _PRIVATE_DIR:
        shutil.rmtree(_PRIVATE_DIR, ignore_errors=True)


@pytest.fixture
def name(request):
    """A fresh channel name; every segment of it is removed after the test, pass or fail."""
    n = unique_name(request.node.name.split("[")[0][-20:].replace("_", "-").strip("-") or "t")
    yield n
    ndshm.unlink(n, missing_ok=True)
    for path in segments(n):
        os.unlink(path)


def _find_peer(env: str, prog: str) -> str:
    p = os.environ.get(env)
    if p:
        return p
    for cand in sorted(glob.glob(os.path.join(REPO, "build*", "bin", prog))):
        return cand
    found = shutil.which(prog)
    if found:
        return found
    pytest.fail(f"{prog} not found: build the project or set {env}")


@pytest.fixture(scope="session")
def peer_path():
    return _find_peer("NDSHM_PYPEER", "ndshm-pypeer")


class Peer:
    """ndshm-pypeer serve: one command line in, one reply line out."""

    def __init__(self, path):
        self.p = subprocess.Popen(
            [path, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def cmd(self, line: str) -> str:
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        reply = self.p.stdout.readline().strip()
        if not reply:
            raise RuntimeError(f"peer died on {line!r} (exit {self.p.poll()})")
        return reply

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


@pytest.fixture
def peer(peer_path):
    p = Peer(peer_path)
    yield p
    p.close()


PKG = os.path.dirname(HERE)  # python/: the directory holding the ndshm package


def run_py(code: str, *args: str, timeout: float = 60, check: bool = True, env=None, cwd=None):
    """Run `code` in a fresh interpreter (this one's executable, ndshm importable, the same
    NDSHM_DIR and NDSHM_LIBRARY). Returns the CompletedProcess; with check, asserts exit 0."""
    full_env = dict(os.environ) if env is None else env
    p = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {PKG!r})\n" + code, *args],
        capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd,
    )
    if check:
        assert p.returncode == 0, f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


_CONSOLE = r"""
import sys, traceback
sys.path.insert(0, sys.argv[1])
ns = {"__name__": "__console__"}
while True:
    lines = []
    for line in sys.stdin:
        if line == "\x00END\n":
            break
        lines.append(line)
    else:
        break
    try:
        exec(compile("".join(lines), "<console>", "exec"), ns)
        print("\x00OK", flush=True)
    except BaseException:
        traceback.print_exc(file=sys.stdout)
        print("\x00ERR", flush=True)
"""


class Console:
    """A Python interpreter in another process, fed snippets as a user pastes them into a
    console: run(code) executes code there (names persist between calls) and returns what it
    printed; a snippet that raises fails the test with the traceback."""

    def __init__(self, env=None):
        self.p = subprocess.Popen(
            [sys.executable, "-u", "-c", _CONSOLE, PKG], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env=env,
        )

    def run(self, code: str, expect_error: bool = False) -> str:
        import textwrap

        self.p.stdin.write(textwrap.dedent(code) + "\n\x00END\n")
        self.p.stdin.flush()
        out = []
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise AssertionError(f"console died (exit {self.p.poll()}): {''.join(out)}")
            if line in ("\x00OK\n", "\x00ERR\n"):
                ok = line == "\x00OK\n"
                break
            out.append(line)
        text = "".join(out)
        assert ok != expect_error, f"snippet {'raised' if not ok else 'did not raise'}:\n{text}"
        return text

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self.p.kill()
            self.p.wait()


@pytest.fixture
def console():
    """console() opens a new one; all are closed after the test."""
    opened = []

    def make():
        c = Console()
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.close()
