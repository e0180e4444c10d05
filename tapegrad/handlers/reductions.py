"""Reduction handlers: sum, prod, max, min, any, all, mean, var, std, cumsum, cumprod,
argmax, argmin, sort, argsort."""

from __future__ import annotations

import numpy as np

from ..errors import TraceError
from ..ir import prims as P
from ..trace import Tracer, _bind_unary, bind
from .base import HANDLERS, _check_out, _dtype, _ndim, _shape, handles
from .shape import astype, expand_dims, norm_axis, reshape

# -- reductions -------------------------------------------------------------------------------


def _reduction(name, x, axis, keepdims, dtype=None, out=None, initial=None, where=None):
    _check_out(out, name)
    if initial is not None or (where is not None and where is not True):
        raise TraceError(f"np.{name}(..., initial=/where=) is not supported on traced values")
    if dtype is not None:
        x = astype(x, dtype)
    if not isinstance(x, Tracer):
        x = np.asarray(x)
    ax = norm_axis(axis, len(x.shape))
    want = None  # np.sum(x, dtype=np.int32) is int32: summed in 64 bits, then cast (the
    # low bits of a sum or product do not depend on the width, so the wrap-around agrees;
    # dtype=bool gives any / all, as NumPy's add / multiply reduce in bool do)
    if name in ("sum", "prod"):
        dt = x.dtype
        if dt.kind in "bu" or (dt.kind == "i" and dt.itemsize < 8):
            if dtype is not None:
                want = dt
            x = astype(x, np.int64 if dt.kind != "u" else np.uint64)
    if ax == () and not keepdims:
        return x if want is None else astype(x, want)
    r = bind(P.PRIMS[name], x, axis=ax, keepdims=bool(keepdims))
    return r if want is None else astype(r, want)


@handles(np.sum)
def sum_(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    if (axis is None and dtype is None and out is None and keepdims is False and initial is None
            and where is None and type(a) is Tracer and a.dtype.kind in "fc"):
        if type(a.value) is not Tracer:  # what bind does, its params already sorted
            return _bind_unary(P.sum_, a, _SUM_ALL, _SUM_ALL_SORTED)
        return bind(P.sum_, a, axis=None, keepdims=False)  # np.sum(x): what _reduction gives
    return _reduction("sum", a, axis, keepdims, dtype, out, initial, where)


_SUM_ALL = {"axis": None, "keepdims": False}  # never written: passed as **params
_SUM_ALL_SORTED = (("axis", None), ("keepdims", False))


@handles(np.prod)
def prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    return _reduction("prod", a, axis, keepdims, dtype, out, initial, where)


@handles(np.max, np.amax)
def max_(a, axis=None, out=None, keepdims=False, initial=None, where=None):
    return _reduction("max", a, axis, keepdims, None, out, initial, where)


@handles(np.min, np.amin)
def min_(a, axis=None, out=None, keepdims=False, initial=None, where=None):
    return _reduction("min", a, axis, keepdims, None, out, initial, where)


@handles(np.any)
def any_(a, axis=None, out=None, keepdims=False, where=None):
    return _reduction("any", a, axis, keepdims, None, out, None, where)


@handles(np.all)
def all_(a, axis=None, out=None, keepdims=False, where=None):
    return _reduction("all", a, axis, keepdims, None, out, None, where)


def _count(a, axis):
    shape = _shape(a)
    ax = norm_axis(axis, len(shape))
    return int(np.prod([shape[i] for i in (range(len(shape)) if ax is None else ax)], dtype=np.int64))


@handles(np.mean)
def mean(a, axis=None, dtype=None, out=None, keepdims=False, where=None):
    _check_out(out, "mean")
    if dtype is None and _dtype(a).kind in "iub":
        dtype = np.float64
    r = sum_(a, axis, dtype, None, keepdims, None, where) / _count(a, axis)
    if np.dtype(dtype).kind in "iu":  # np.mean(x, dtype=np.int32): the quotient cast back
        r = astype(r, dtype)
    return r


@handles(np.var)
def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, where=None, mean=None,
        correction=None):
    _check_out(out, "var")
    if correction is not None:
        ddof = correction
    if dtype is None and _dtype(a).kind in "iub":
        dtype = np.float64
    if dtype is not None:
        a = astype(a, dtype)
    d = a - HANDLERS[np.mean](a, axis, keepdims=True)
    sq = np.real(d * np.conj(d)) if _dtype(a).kind == "c" else d * d
    return sum_(sq, axis, keepdims=keepdims) / max(_count(a, axis) - ddof, 0)


@handles(np.std)
def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, where=None, mean=None,
        correction=None):
    return np.sqrt(var(a, axis, dtype, out, ddof, keepdims, where, mean, correction))


def _cumulative(fn, prim):
    """The handler of np.cumsum / np.cumprod (`fn`), recording `prim` over one axis."""
    @handles(fn)
    def handler(a, axis=None, dtype=None, out=None):
        _check_out(out, fn.__name__)
        if dtype is not None:
            a = astype(a, dtype)
        if axis is None:
            a, axis = reshape(a, (-1,)), 0
        return bind(prim, a, axis=int(axis) % max(_ndim(a), 1))

    handler.__name__ = fn.__name__
    return handler


cumsum = _cumulative(np.cumsum, P.cumsum)
cumprod = _cumulative(np.cumprod, P.cumprod)


@handles(np.argmax)
def argmax(a, axis=None, out=None, keepdims=False):
    _check_out(out, "argmax")
    r = bind(P.argmax, a, axis=None if axis is None else int(axis) % _ndim(a))
    return expand_dims(r, axis) if keepdims and axis is not None else r


@handles(np.argmin)
def argmin(a, axis=None, out=None, keepdims=False):
    _check_out(out, "argmin")
    r = bind(P.argmin, a, axis=None if axis is None else int(axis) % _ndim(a))
    return expand_dims(r, axis) if keepdims and axis is not None else r


@handles(np.sort)
def sort(a, axis=-1, kind=None, order=None, stable=None):
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    return bind(P.sort, a, axis=int(axis) % _ndim(a))


@handles(np.argsort)
def argsort(a, axis=-1, kind=None, order=None, stable=None):
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    return bind(P.argsort, a, axis=int(axis) % _ndim(a))
