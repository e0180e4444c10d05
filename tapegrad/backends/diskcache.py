"""The on-disk kernel cache: one real `.py` file per kernel, compiled by Numba with
`cache=True`, so a new process loads machine code instead of recompiling.

Measured pitfalls this module exists for (shared/research/numba-feasibility.md §3):
`cache=True` needs a real file (exec'd source has no cache locator); the module must be
in `sys.modules` before `exec_module`; files are published atomically with `os.replace`
so a reader never sees half a file; the directory is fixed per user (moving a file
recompiles). `TAPEGRAD_CACHE_DIR` overrides the location.

Integrity (issue 8). Loading machine code from disk trusts the files, so:
- the directory is created 0700 and used only if it is owned by this user and not
  writable by group or others (its `__pycache__`, where Numba writes, likewise); else a
  `RuntimeWarning` and a private temporary directory for this process;
- `kernel_files(name, source)` holds an exclusive file lock per kernel while it checks,
  imports and (in the `with` body) compiles, so two processes compiling the same kernel
  take turns: the second loads what the first wrote;
- after a compile it records sha256 sums of Numba's index/data files in
  `<name>.sha256`; before the next import, files that are missing from that manifest,
  truncated or changed are deleted, so Numba rebuilds them (a truncated `.nbc` used to
  make the kernel fail for good: `UnpicklingError`, region stuck in NumPy). The `.py`
  source is compared in full and rewritten when it differs.
`NUMBA_CACHE_DIR`, if the user sets it, moves Numba's files out of these checks.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import os
import shutil
import stat
import sys
import tempfile
import threading
import warnings

try:
    import fcntl
except ImportError:  # pragma: no cover  (Windows: no cross-process lock; writes stay atomic)
    fcntl = None

_lock = threading.RLock()
_fallback: dict = {}  # refused directory -> private directory used instead
STATS = {"rebuilt": 0, "refused_dirs": 0}  # corrupt cache entries deleted; unsafe dirs refused


def cache_dir() -> str:
    """The kernel directory: `$TAPEGRAD_CACHE_DIR`, else `$XDG_CACHE_HOME/tapegrad`, else
    `~/.cache/tapegrad`. Created with mode 0700 on first use. A directory owned by someone
    else or writable by group/others is refused (warning) for a private temporary one."""
    d = os.environ.get("TAPEGRAD_CACHE_DIR")
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "tapegrad")
    d = os.path.abspath(d)
    if d in _fallback:
        return _fallback[d]
    if not os.path.isdir(d):
        os.makedirs(d, mode=0o700, exist_ok=True)
    why = unsafe(d) or unsafe(os.path.join(d, "__pycache__"))
    return _private(d, why) if why else d


def unsafe(d: str):
    """Why directory `d` must not be trusted (None if it is fine or does not exist)."""
    try:
        st = os.stat(d)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"owned by uid {st.st_uid}, not {os.getuid()}"
    if st.st_mode & 0o022:
        return f"writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _private(d: str, why: str) -> str:
    with _lock:
        p = _fallback.get(d)
        if p is None:
            p = tempfile.mkdtemp(prefix="tapegrad-kernels-")  # 0700, ours
            atexit.register(shutil.rmtree, p, True)
            _fallback[d] = p
            STATS["refused_dirs"] += 1
            warnings.warn(f"tapegrad: not loading compiled kernels from {d}: {why}; compiling "
                          f"into the private directory {p} for this process instead",
                          RuntimeWarning, stacklevel=3)
        return p


def module_path(name: str) -> str:
    return os.path.join(cache_dir(), name + ".py")


def _write_atomic(path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp_")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def _file_lock(d: str, name: str):
    if fcntl is None:  # pragma: no cover
        with _lock:
            yield
        return
    fd = os.open(os.path.join(d, f".{name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _numba_files(d: str, name: str) -> list:
    pc = os.path.join(d, "__pycache__")
    try:
        return sorted(e for e in os.listdir(pc) if e.startswith(name + "."))
    except FileNotFoundError:
        return []


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _manifest(d: str, name: str) -> dict:
    """{file: sha256} of Numba's files for `name`, {} when there is none yet."""
    try:
        with open(os.path.join(d, name + ".sha256"), encoding="utf-8") as fh:
            return dict(reversed(ln.split("  ", 1)) for ln in fh.read().splitlines() if ln)
    except (FileNotFoundError, ValueError):
        return {}


def _sums(d: str, name: str) -> dict:
    pc = os.path.join(d, "__pycache__")
    return {f: _sha256(os.path.join(pc, f)) for f in _numba_files(d, name)}


def verify(d: str, name: str) -> bool:
    """Delete Numba's files for `name` unless they match the manifest exactly.
    -> True when the files were kept (or there were none)."""
    files = _numba_files(d, name)
    if not files:
        return True
    want = _manifest(d, name)
    if want and set(want) == set(files) and _sums(d, name) == want:
        return True
    for f in files:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(d, "__pycache__", f))
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(d, name + ".sha256"))
    STATS["rebuilt"] += 1
    return False


def record(d: str, name: str) -> None:
    """Write the manifest of Numba's files for `name` (after a successful compile)."""
    sums = _sums(d, name)
    if sums and sums != _manifest(d, name):
        text = "".join(f"{h}  {f}\n" for f, h in sorted(sums.items()))
        _write_atomic(os.path.join(d, name + ".sha256"), text.encode())


def _import(d: str, name: str, source: str):
    path = os.path.join(d, name + ".py")
    data = source.encode("utf-8")
    current = None
    with contextlib.suppress(FileNotFoundError):
        with open(path, "rb") as fh:
            current = fh.read()
    if current != data:  # missing, truncated or changed: publish the right one atomically
        _write_atomic(path, data)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # before exec_module, or Numba's cached loads fail
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return mod


@contextlib.contextmanager
def kernel_files(name: str, source: str):
    """`with kernel_files(name, source) as mod: mod.kernel.compile(sig)`: the module, with
    the kernel's cache files checked before and their manifest recorded after the body,
    under a per-kernel lock shared with other processes."""
    d = cache_dir()
    pc = os.path.join(d, "__pycache__")
    if not os.path.isdir(pc):
        os.makedirs(pc, mode=0o700, exist_ok=True)
    with _file_lock(d, name):  # also orders threads: each open() is its own flock holder
        mod = sys.modules.get(name)
        if mod is None:
            verify(d, name)
            mod = _import(d, name, source)
        yield mod
        record(d, name)


def load_module(name: str, source: str):
    """Write `source` to `<cache dir>/<name>.py` (unless an identical file is there) and
    import it as module `name`, after checking its cache files. Returns the module."""
    mod = sys.modules.get(name)
    if mod is not None:
        return mod
    with kernel_files(name, source) as mod:
        return mod


def clear() -> int:
    """Delete every cached kernel file (sources, manifests, Numba's index/data files).
    Returns the number of files removed. Kernels already loaded stay usable."""
    d = cache_dir()
    n = 0
    with _lock:
        for entry in os.listdir(d):
            p = os.path.join(d, entry)
            if entry == "__pycache__" and os.path.isdir(p):
                n += sum(len(fs) for _, _, fs in os.walk(p))
                shutil.rmtree(p, ignore_errors=True)
            elif entry.startswith(("tgk_", ".tmp_", ".tgk_")) and os.path.isfile(p):
                os.remove(p)
                n += not entry.startswith(".tgk_")  # lock files are bookkeeping
    return n


def files() -> list:
    """Names of the kernel source files and Numba cache files present now."""
    d = cache_dir()
    out = [e for e in os.listdir(d) if e.startswith("tgk_")]
    pc = os.path.join(d, "__pycache__")
    if os.path.isdir(pc):
        out += [os.path.join("__pycache__", e) for e in os.listdir(pc)]
    return sorted(out)
