"""NumPy calls that NEP 13/18 never hands to a traced value, made traceable.

`np.array([t1, t2])` (a list holding traced values) and `B = np.zeros(...); B[i] = t`
are the two most common ways plain NumPy code builds arrays from computed values, and
neither dispatches: `np.array` reads each element through `__array__` (which would
drop the gradient) and `B` is a plain ndarray that cannot hold a traced value.

While a function is being traced, the names in its module bound to `numpy` (or to
`numpy.array`, `numpy.zeros`, ...) resolve to a proxy module whose `array`, `asarray`,
`zeros`, `ones`, `empty` and `full` are wrapped (everything else is NumPy's own):
- `np.array` / `np.asarray` of a sequence holding traced values stacks them (recorded);
  of a traced value returns it (a copy for `np.array`, as in NumPy);
- the constructors return a traced constant, so writes into it (`B[i] = t`) are recorded
  as `index_update` ops. A traced constant converts back to a plain array freely (its
  value does not depend on any input), so code that hands it to other libraries works.
The wrappers pass through to NumPy for a thread that is not tracing, and for calls from
library code. The numpy module itself is never modified, so NumPy, SciPy, Numba's
compiled kernels and every other module see NumPy as it is. Limits: helpers in another
module than the traced function, and `import numpy` inside a function body, get plain
arrays; writing a traced value into those raises `TraceError`.
"""

from __future__ import annotations

import operator
import os
import sys
import sysconfig
import threading
import types
from contextlib import contextmanager

import numpy as np

from .trace import _PKG_DIR, Tracer, _stack

_ORIG = {name: getattr(np, name) for name in ("array", "asarray", "zeros", "ones", "empty", "full")}
_lock = threading.Lock()


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
        if name == "full":  # np.full(n, x[0]): a broadcast of the traced fill (differentiable)
            fill = args[1] if len(args) > 1 else kwargs.get("fill_value")
            if isinstance(fill, Tracer):
                from .handlers.indexing import traced_full

                shape = args[0] if args else kwargs["shape"]
                return traced_full(shape, fill, args[2] if len(args) > 2 else kwargs.get("dtype"))
        value = orig(*args, **kwargs)
        return Tracer(trace, trace.atom(value), value)

    make.__name__ = name
    make.__doc__ = orig.__doc__
    return make


class _NumpyProxy(types.ModuleType):
    """`numpy` as the traced code's module sees it: the wrappers above, everything else
    NumPy's own (looked up on each access)."""

    def __getattr__(self, name):
        # kept in the proxy's own dict (a plain module lookup from then on, not this hook,
        # about a microsecond); `user_numpy` checks them against NumPy's when a module
        # starts using the proxy, so a NumPy attribute rebound since is looked up afresh
        value = getattr(np, name)
        if name not in _PROXY_OWN and _NP_DICT.get(name) is value:
            self.__dict__[name] = value
            _cached.append(name)
            _cached_values.append(value)
        return value


_cached: list = []  # NumPy names the proxy holds in its dict, as looked up
_cached_values: list = []  # and their values
_NP_DICT = np.__dict__
PROXY = _NumpyProxy("numpy", np.__doc__)
WRAPPERS = {"array": array, "asarray": asarray,
            **{name: _constructor(name) for name in ("zeros", "ones", "empty", "full")}}
PROXY.__dict__.update(WRAPPERS)
_PROXY_OWN = frozenset(PROXY.__dict__)  # the module's own attributes and the wrappers
_BY_ORIG = [(_ORIG[name], w) for name, w in WRAPPERS.items()]
_patched: dict = {}  # id(module globals) -> [users, {name: original}, globals]


def _globals_of(fn):
    """The module globals of the user function behind `fn` (through functools.wraps,
    partial, bound methods and callable objects), or None for library code."""
    for _ in range(16):
        if fn is None:
            return None
        nxt = getattr(fn, "__wrapped__", None) or getattr(fn, "func", None)
        if nxt is not None and nxt is not fn:
            fn = nxt
            continue
        fn = getattr(fn, "__func__", fn)
        g = getattr(fn, "__globals__", None)
        if g is None and not isinstance(fn, type) and hasattr(type(fn), "__call__"):
            g = getattr(getattr(type(fn), "__call__"), "__globals__", None)
        if g is None:
            return None
        path = g.get("__file__") or ""
        return None if path.startswith(_LIBRARY) else g
    return None


_scans: dict = {}  # id(module globals) -> (number of globals when scanned, [(name, value, new)])
_REPLACE = {id(np): PROXY, **{id(o): w for o, w in _BY_ORIG}}  # these objects live forever
_user_globals: dict = {}  # id(module globals) -> (its __file__, whether user code owns it)


def _numpy_names(g) -> list:
    """(name, value, replacement) for the names in `g` bound to numpy or a wrapped
    function (scanned again when the module gains or loses globals, or one of those names
    is rebound; a scan of a big module costs tens of microseconds)."""
    hit = _scans.get(id(g))
    if hit is not None and hit[0] == len(g):
        found = hit[1]
        for name, value, _ in found:
            if g.get(name) is not value:
                break
        else:
            return found
    found = []
    for k, v in g.items():
        new = _REPLACE.get(id(v))
        if new is not None:
            found.append((k, v, new))
    _scans[id(g)] = (len(g), found)
    return found


class user_numpy:
    """While tracing `fn` (`with user_numpy(fn):`): in its module, names bound to `numpy`
    (or to `numpy.zeros`, ...) resolve to the proxy (or the wrapper). Reference-counted
    per module, thread-safe; the wrappers pass through to NumPy for any thread that is not
    tracing. (A class: a generator context manager costs more, on every `tg.grad`.)"""

    __slots__ = ("g", "entry")

    def __init__(self, fn):
        if fn is None:
            self.g = None
            return
        if fn.__class__ is _FunctionType and "__wrapped__" not in fn.__dict__:
            g = fn.__globals__  # a plain function (the common case): its module, if user code
            hit = _user_globals.get(id(g))
            path = g.get("__file__")
            if hit is None or hit[0] is not path:
                hit = _user_globals[id(g)] = (path, _globals_of(fn) is g)
            self.g = g if hit[1] else None
        else:
            self.g = _globals_of(fn)

    def __enter__(self):
        g = self.g
        if g is None:
            return None
        with _lock:
            entry = _patched.get(id(g))
            if entry is None:
                if not _patched and _cached and not all(
                        map(_is, map(_NP_DICT.get, _cached), _cached_values)):
                    _forget_lookups()  # NumPy rebound one since it was cached
                saved = {}  # name -> (original, replacement)
                for name, value, new in _numpy_names(g):
                    saved[name] = (value, new)
                    g[name] = new
                entry = _patched[id(g)] = [0, saved, g]
            entry[0] += 1
        self.entry = entry
        return None

    def __exit__(self, *exc):
        g = self.g
        if g is None:
            return False
        entry = self.entry
        with _lock:
            entry[0] -= 1
            if entry[0] == 0:
                del _patched[id(g)]
                for name, (value, new) in entry[1].items():
                    if g.get(name) is new:  # unless the user rebound it meanwhile
                        g[name] = value
        return False


def _forget_lookups():
    d = PROXY.__dict__
    for name in _cached:
        d.pop(name, None)
    _cached.clear()
    _cached_values.clear()


_FunctionType = types.FunctionType
_is = operator.is_
