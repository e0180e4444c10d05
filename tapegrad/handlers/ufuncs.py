"""`__array_ufunc__`: ufunc calls and methods (reduce, accumulate, outer) on traced values."""

from __future__ import annotations

import numpy as np

from ..errors import TraceError
from ..ir import prims as P
from ..trace import bind, user_loc
from .base import _ndim, _shape
from .reductions import _reduction
from .shape import astype, reshape

# -- ufuncs ---------------------------------------------------------------------------------

# ufunc -> its primitive, for plain calls (no keywords): `__array_ufunc__` binds these
# directly. Filled as ufuncs are met; np.positive and np.matmul are never in it.
CALL_PRIMS: dict = {}

_REDUCE = {np.add: "sum", np.multiply: "prod", np.maximum: "max", np.minimum: "min",
           np.logical_and: "all", np.logical_or: "any"}


def handle_ufunc(ufunc, method, inputs, kwargs):
    out = kwargs.pop("out", None)
    if out is not None and any(o is not None for o in (out if isinstance(out, tuple) else (out,))):
        raise TraceError(f"np.{ufunc.__name__}(..., out=...) on a traced value writes in place "
                         f"(at {user_loc()}); use the returned value instead")
    dtype = kwargs.pop("dtype", None)
    if kwargs.get("where", True) is not True:
        raise TraceError(f"np.{ufunc.__name__}(..., where=...) is not supported on traced values")
    kwargs.pop("where", None)
    kwargs.pop("casting", None)
    if method == "__call__":
        if kwargs:
            raise TraceError(f"np.{ufunc.__name__} keyword(s) {sorted(kwargs)} are not supported "
                             "on traced values")
        if dtype is not None:
            inputs = [astype(x, dtype) for x in inputs]
        if ufunc is np.positive:
            return inputs[0]
        if ufunc is np.matmul:
            return _matmul(*inputs)
        if ufunc.nout > 1:
            return _multiple_outputs(ufunc, inputs)
        prim = P.ufunc_prim(np.divide if ufunc is np.true_divide else ufunc)
        if dtype is None and not kwargs:
            CALL_PRIMS[ufunc] = prim
        return bind(prim, *inputs)
    if method == "reduce" and ufunc in _REDUCE:
        (x,) = inputs
        extra = set(kwargs) - {"axis", "keepdims", "initial"}
        if extra:
            raise TraceError(f"np.{ufunc.__name__}.reduce keyword(s) {sorted(extra)} are not "
                             "supported on traced values")
        return _reduction(_REDUCE[ufunc], x, kwargs.get("axis", 0), kwargs.get("keepdims", False), dtype,
                          initial=kwargs.get("initial"))
    if method == "accumulate" and ufunc in (np.add, np.multiply):
        fn = np.cumsum if ufunc is np.add else np.cumprod
        return fn(inputs[0], axis=kwargs.get("axis", 0))
    if method == "outer":
        a, b = inputs
        a = reshape(a, tuple(_shape(a)) + (1,) * _ndim(b))
        return getattr(ufunc, "__call__")(a, b)
    if method == "at":
        raise TraceError(f"np.{ufunc.__name__}.at writes in place, which tracing cannot record "
                         f"(at {user_loc()})")
    raise TraceError(f"np.{ufunc.__name__}.{method} is not supported on traced values")


def _multiple_outputs(ufunc, inputs):
    """Ufuncs giving several arrays, as NumPy defines them from single-output ones."""
    if ufunc is np.divmod:
        x, y = inputs
        return np.floor_divide(x, y), np.remainder(x, y)
    if ufunc is np.modf:  # (fractional, integral) parts, both with x's sign; modf(inf) = (0, inf)
        (x,) = inputs
        whole = np.trunc(x)
        signed_zero = np.copysign(np.zeros_like(x), x)  # integral x (inf too): frac is +-0
        return np.where(x == whole, signed_zero, x - whole), whole
    raise TraceError(f"np.{ufunc.__name__} returns {ufunc.nout} arrays: not supported on traced "
                     "values")


def _matmul(a, b):
    if _ndim(a) == 0 or _ndim(b) == 0:
        raise ValueError("matmul: Input operand does not have enough dimensions")
    return bind(P.matmul, a, b)
