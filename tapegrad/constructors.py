"""NumPy calls that NEP 13/18 never hands to a traced value, made traceable.

`np.array([t1, t2])` (a list holding traced values) and `B = np.zeros(...); B[i] = t`
are the two most common ways plain NumPy code builds arrays from computed values, and
neither dispatches: `np.array` reads each element through `__array__` (which would
drop the gradient) and `B` is a plain ndarray that cannot hold a traced value.

While a trace is active in the calling thread, `numpy.array`, `numpy.asarray`,
`numpy.zeros`, `numpy.ones`, `numpy.empty` and `numpy.full` (the module attributes user
code looks up at call time) are wrapped:
- `np.array` / `np.asarray` of a sequence holding traced values stacks them (recorded);
  of a traced value returns it (a copy for `np.array`, as in NumPy);
- the constructors return a traced constant, so writes into it (`B[i] = t`) are recorded
  as `index_update` ops. A traced constant converts back to a plain array freely (its
  value does not depend on any input), so code that hands it to other libraries works.
Anything else, every call from a thread that is not tracing, and every call from library
code (tapegrad, NumPy, SciPy, the stdlib, installed packages) goes to NumPy itself.
NumPy's own modules import these functions directly and are never affected. Code that
bound the originals before (`from numpy import zeros`) keeps plain arrays: writing a
traced value into those raises `TraceError`.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import threading

import numpy as np

from .trace import _PKG_DIR, Tracer, _stack

_ORIG = {name: getattr(np, name) for name in ("array", "asarray", "zeros", "ones", "empty", "full")}
_lock = threading.Lock()
_installed = False


# Library code (tapegrad, NumPy's own Python modules, SciPy, anything installed in the
# interpreter's stdlib or site-packages) always gets NumPy's plain arrays: only the user's
# own code, the code being traced, is given traced constants.
_LIBRARY = tuple({_PKG_DIR, os.path.dirname(np.__file__)} | {
    sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")})
_user_code: dict = {}


def _tracing():
    """The calling thread's innermost trace, when the call comes from user code."""
    s = _stack()
    if not s:
        return None
    code = sys._getframe(2).f_code
    user = _user_code.get(code)
    if user is None:
        fn = code.co_filename
        user = _user_code[code] = not (fn.startswith(_LIBRARY) or fn.startswith("<frozen"))
    return s[-1] if user else None


def _holds_tracer(x) -> bool:
    if isinstance(x, Tracer):
        return True
    if isinstance(x, (list, tuple)):
        return any(_holds_tracer(e) for e in x)
    return False


def _stack_nested(x):
    if isinstance(x, (list, tuple)):
        parts = [_stack_nested(e) for e in x]
        if not any(isinstance(p, Tracer) for p in parts):
            return _ORIG["array"](parts)
        return np.stack(parts)
    return x


def array(obj, dtype=None, *args, copy=True, **kwargs):
    if _tracing() is not None and _holds_tracer(obj):
        if args or kwargs.get("ndmin", 0) or kwargs.get("like") is not None:
            raise TypeError("np.array(..., order/subok/ndmin/like) of traced values is not supported")
        from .inplace import fresh

        out = _stack_nested(obj) if isinstance(obj, (list, tuple)) else obj
        if dtype is not None and np.dtype(dtype) != out.dtype:
            return out.astype(dtype)
        return fresh(out) if copy and out is obj else out
    return _ORIG["array"](obj, dtype, *args, copy=copy, **kwargs)


def asarray(a, dtype=None, *args, **kwargs):
    if _tracing() is not None and _holds_tracer(a):
        out = _stack_nested(a) if isinstance(a, (list, tuple)) else a
        if dtype is not None and np.dtype(dtype) != out.dtype:
            return out.astype(dtype)
        return out
    return _ORIG["asarray"](a, dtype, *args, **kwargs)


def _constructor(name):
    orig = _ORIG[name]

    def make(*args, **kwargs):
        like = kwargs.get("like")
        if isinstance(like, Tracer):  # NEP 35 form: a constant on like's trace
            del kwargs["like"]
            value = orig(*args, **kwargs)
            return Tracer(like._trace, like._trace.atom(value), value)
        trace = _tracing()
        if trace is None or like is not None:
            return orig(*args, **kwargs)
        value = orig(*args, **kwargs)
        return Tracer(trace, trace.atom(value), value)

    make.__name__ = name
    make.__doc__ = orig.__doc__
    return make


def install() -> None:
    """Wrap the NumPy attributes (once per process; the wrappers pass through when the
    calling thread is not tracing)."""
    global _installed
    if _installed:
        return
    with _lock:
        if _installed:
            return
        np.array = array
        np.asarray = asarray
        for name in ("zeros", "ones", "empty", "full"):
            setattr(np, name, _constructor(name))
        _installed = True
