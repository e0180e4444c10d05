"""How NumPy calls on traced values become primitives.

`ufuncs.handle_ufunc` serves `__array_ufunc__`; `HANDLERS` maps each supported NumPy
function to code that expresses it in primitives (`sum`, `reshape`, `getitem`, ...),
following NumPy's own semantics for axis, keepdims, broadcasting and dtypes. One module
per family: shape, reductions, ufuncs, products, indexing. This module installs the
NumPy hooks and the ndarray-like methods on Tracer.
"""

from __future__ import annotations

import numpy as np

from ..errors import TraceError
from ..trace import Tracer, bind, user_loc
from .base import HANDLERS, _check_out, _dtype, _ndim, _shape, handles  # noqa: F401
from .indexing import *  # noqa: F401,F403
from .indexing import _expand_none, _like, _static_int, encode_index, getitem, imag, real  # noqa: F401
from .products import *  # noqa: F401,F403
from .reductions import *  # noqa: F401,F403
from .reductions import _count, _reduction  # noqa: F401
from .shape import *  # noqa: F401,F403
from .shape import astype, reshape, transpose  # noqa: F401
from .ufuncs import CALL_PRIMS, _matmul, handle_ufunc  # noqa: F401
from . import methods, numeric, search  # noqa: E402,F401  (more NumPy coverage; QA)

# -- methods on Tracer: one path, through the handlers above --------------------------------

_METHODS = {
    "sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min, "mean": np.mean,
    "var": np.var, "std": np.std, "cumsum": np.cumsum, "cumprod": np.cumprod,
    "any": np.any, "all": np.all, "argmax": np.argmax, "argmin": np.argmin,
    "dot": np.dot, "clip": np.clip, "swapaxes": np.swapaxes, "squeeze": np.squeeze,
    "ravel": np.ravel, "flatten": np.ravel, "diagonal": np.diagonal, "trace": np.trace,
    "round": np.round, "take": np.take, "sort": None, "argsort": np.argsort,
    "conj": np.conjugate, "conjugate": np.conjugate, "copy": np.copy,
}
for _m, _f in _METHODS.items():
    if _f is not None:
        setattr(Tracer, _m, (lambda f: lambda self, *a, **k: f(self, *a, **k))(_f))


def _reshape_method(self, *shape, order="C"):
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        shape = shape[0]
    return reshape(self, shape, order)


def _transpose_method(self, *axes):
    if len(axes) == 1 and not isinstance(axes[0], (int, np.integer)):
        axes = axes[0]
    return transpose(self, axes or None)


Tracer.reshape = _reshape_method
Tracer.transpose = _transpose_method
Tracer.astype = astype
Tracer.T = property(lambda self: transpose(self))
Tracer.real = property(real)
Tracer.imag = property(imag)
Tracer.sort = lambda self, *a, **k: (_ for _ in ()).throw(
    TraceError(f"x.sort() sorts in place (at {user_loc()}); use np.sort(x)"))


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    for x in inputs:
        t = type(x)
        if t is not Tracer and t is not np.ndarray:
            defers = _DEFERS.get(t)
            if defers is None:
                defers = _DEFERS[t] = (not issubclass(t, (Tracer, np.ndarray))
                                       and hasattr(t, "__array_ufunc__"))
            if defers:  # NEP 13: defer to operands with their own __array_ufunc__ (tg.Param),
                return NotImplemented  # so `tracer + param` works
    prim = CALL_PRIMS.get(ufunc) if method == "__call__" and not kwargs else None
    out = bind(prim, *inputs) if prim is not None else handle_ufunc(ufunc, method, inputs, kwargs)
    if type(out) is Tracer:
        for x in inputs:
            if out is x:  # np.positive(x), x * ones: a new array in NumPy, so writes to
                return _fresh(out)  # the result must not reach x (see inplace.fresh)
    return out


_DEFERS: dict = {}  # type -> whether it has an __array_ufunc__ of its own


def _fresh(t):
    from ..inplace import fresh  # inplace.py builds on this module

    return fresh(t)


def _array_function(self, func, types, args, kwargs):
    h = HANDLERS.get(func)
    if h is None:
        name = getattr(func, "__module__", "numpy") + "." + getattr(func, "__name__", str(func))
        raise TraceError(f"{name} is not supported on traced values yet (at {user_loc()})")
    return h(*args, **kwargs)


Tracer.__array_ufunc__ = _array_ufunc
Tracer.__array_function__ = _array_function
