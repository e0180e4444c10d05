"""The on-disk kernel cache: one real `.py` file per kernel, compiled by Numba with
`cache=True`, so a new process loads machine code instead of recompiling.

Measured pitfalls this module exists for (shared/research/numba-feasibility.md §3):
`cache=True` needs a real file (exec'd source has no cache locator); the module must be
in `sys.modules` before `exec_module`; files are published atomically with `os.replace`
so a reader never sees half a file; the directory is fixed per user (moving a file
recompiles). `TAPEGRAD_CACHE_DIR` overrides the location.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import threading

_lock = threading.Lock()


def cache_dir() -> str:
    """The kernel directory: `$TAPEGRAD_CACHE_DIR`, else `$XDG_CACHE_HOME/tapegrad`, else
    `~/.cache/tapegrad`. Created with mode 0700 on first use."""
    d = os.environ.get("TAPEGRAD_CACHE_DIR")
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "tapegrad")
    d = os.path.abspath(d)
    if not os.path.isdir(d):
        os.makedirs(d, mode=0o700, exist_ok=True)
    return d


def module_path(name: str) -> str:
    return os.path.join(cache_dir(), name + ".py")


def load_module(name: str, source: str):
    """Write `source` to `<cache dir>/<name>.py` (unless an identical file is there) and
    import it as module `name`. Returns the module."""
    mod = sys.modules.get(name)
    if mod is not None:
        return mod
    path = module_path(name)
    with _lock:
        current = None
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                current = fh.read()
        if current != source:
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp_", suffix=".py")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(source)
            os.replace(tmp, path)
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod  # before exec_module, or Numba's cached loads fail
        try:
            spec.loader.exec_module(mod)
        except BaseException:
            sys.modules.pop(name, None)
            raise
    return mod


def clear() -> int:
    """Delete every cached kernel file (sources and Numba's index/data files).
    Returns the number of files removed. Kernels already loaded stay usable."""
    d = cache_dir()
    n = 0
    with _lock:
        for entry in os.listdir(d):
            p = os.path.join(d, entry)
            if entry == "__pycache__" and os.path.isdir(p):
                n += sum(len(fs) for _, _, fs in os.walk(p))
                shutil.rmtree(p, ignore_errors=True)
            elif entry.endswith(".py") and (entry.startswith("tgk_") or entry.startswith(".tmp_")):
                os.remove(p)
                n += 1
    return n


def files() -> list:
    """Names of the kernel source files and Numba cache files present now."""
    d = cache_dir()
    out = [e for e in os.listdir(d) if e.startswith("tgk_")]
    pc = os.path.join(d, "__pycache__")
    if os.path.isdir(pc):
        out += [os.path.join("__pycache__", e) for e in os.listdir(pc)]
    return sorted(out)
