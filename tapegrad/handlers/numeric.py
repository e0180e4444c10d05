"""Numerical NumPy functions written as traced compositions of other handlers, so they need
no rule of their own: diff, cross (and linalg.cross), kron, linalg.multi_dot, sinc,
nan_to_num, ptp, average, nansum, nanmean, rot90. `np.fabs` and `np.heaviside` are ufuncs
and come with `rules/search.py`."""

from __future__ import annotations

import warnings

import numpy as np

from ..trace import Tracer
from .base import _check_out, _dtype, _ndim, _shape, handles
from .indexing import concatenate, flip, getitem, stack
from .reductions import max_, mean, min_, sum_
from .shape import astype, broadcast_to, moveaxis, norm_axis, reshape, transpose
from .ufuncs import _matmul

_NOVALUE = np._NoValue


def _along(axis, ndim, key):
    """An index applying `key` on `axis` only."""
    return (slice(None),) * axis + (key,) + (slice(None),) * (ndim - axis - 1)


def _kd(keepdims) -> bool:
    return False if keepdims is _NOVALUE else bool(keepdims)


@handles(np.diff)
def diff(a, n=1, axis=-1, prepend=_NOVALUE, append=_NOVALUE):
    n = int(n)
    if n == 0:
        return a
    if n < 0:
        raise ValueError(f"order must be non-negative but got {n!r}")
    nd = _ndim(a)
    if nd == 0:
        raise ValueError("diff requires input that is at least one dimensional")
    axis = norm_axis(axis, nd)[0]
    parts = []
    for v in (prepend, append):
        if v is not _NOVALUE and _ndim(v) == 0:
            shape = list(_shape(a))
            shape[axis] = 1
            v = broadcast_to(v if isinstance(v, Tracer) else np.asarray(v), shape)
        parts.append(v)
    if parts[0] is not _NOVALUE or parts[1] is not _NOVALUE:
        a = concatenate([p for p in (parts[0], a, parts[1]) if p is not _NOVALUE], axis)
    op = np.not_equal if _dtype(a) == np.bool_ else np.subtract
    for _ in range(n):
        a = op(getitem(a, _along(axis, nd, slice(1, None))),
               getitem(a, _along(axis, nd, slice(None, -1))))
    return a


def _cross_last(a, b):
    """Cross product over the last axes (2- or 3-vectors; a missing z component is 0)."""
    na, nb = _shape(a)[-1], _shape(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError("incompatible dimensions for cross product\n(dimension must be 2 or 3)")
    x = [getitem(a, (Ellipsis, i)) for i in range(na)] + [None] * (3 - na)
    y = [getitem(b, (Ellipsis, i)) for i in range(nb)] + [None] * (3 - nb)

    def term(i, j, k, m):  # x_i y_j - x_k y_m, terms with a missing component dropped
        p = x[i] * y[j] if x[i] is not None and y[j] is not None else None
        q = x[k] * y[m] if x[k] is not None and y[m] is not None else None
        return p - q if p is not None and q is not None else p if q is None else -q

    z = term(0, 1, 1, 0)
    if na == 2 and nb == 2:
        return z, False
    return stack([term(1, 2, 2, 1), term(2, 0, 0, 2), z], axis=-1), True


@handles(np.cross)
def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    if axis is not None:
        axisa = axisb = axisc = axis
    a = moveaxis(a, axisa, -1)
    b = moveaxis(b, axisb, -1)
    if 2 in (_shape(a)[-1], _shape(b)[-1]):  # as NumPy 2 does
        warnings.warn("Arrays of 2-dimensional vectors are deprecated. Use arrays of "
                      "3-dimensional vectors instead. (deprecated in NumPy 2.0)",
                      DeprecationWarning, stacklevel=3)
    c, vector = _cross_last(a, b)
    return moveaxis(c, -1, axisc) if vector else c


if hasattr(np.linalg, "cross"):
    @handles(np.linalg.cross)
    def linalg_cross(x1, x2, /, *, axis=-1):
        if _shape(x1)[axis] != 3 or _shape(x2)[axis] != 3:
            raise ValueError("Both input arrays must be (arrays of) 3-dimensional vectors, but "
                             f"they are {_shape(x1)[axis]} and {_shape(x2)[axis]} dimensional "
                             "instead.")
        return cross(x1, x2, axis=axis)


@handles(np.kron)
def kron(a, b):
    nd = max(_ndim(a), _ndim(b))
    sa = (1,) * (nd - _ndim(a)) + tuple(_shape(a))
    sb = (1,) * (nd - _ndim(b)) + tuple(_shape(b))
    # a[i, j] * b[k, l] at (i*B0 + k, j*B1 + l): interleave the axes, multiply, merge pairs
    ea = reshape(a, [d for s in sa for d in (s, 1)])
    eb = reshape(b, [d for s in sb for d in (1, s)])
    return reshape(ea * eb, [p * q for p, q in zip(sa, sb)])


def _chain_order(dims):
    """Cheapest parenthesisation of a matrix chain with shapes dims[i] x dims[i+1] (the
    textbook dynamic programme NumPy's multi_dot uses): split[i][j] for the sub-chain i..j."""
    n = len(dims) - 1
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j] = None
            for k in range(i, j):
                c = cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1]
                if cost[i][j] is None or c < cost[i][j]:
                    cost[i][j], split[i][j] = c, k
    return split


@handles(np.linalg.multi_dot)
def multi_dot(arrays, *, out=None):
    _check_out(out, "linalg.multi_dot")
    arrays = list(arrays)
    if len(arrays) < 2:
        raise ValueError("Expecting at least two arrays.")
    first, last = _ndim(arrays[0]), _ndim(arrays[-1])
    if first == 1:  # vectors at the ends: a row and a column, dropped from the result
        arrays[0] = reshape(arrays[0], (1, -1))
    if last == 1:
        arrays[-1] = reshape(arrays[-1], (-1, 1))
    for x in arrays:
        if _ndim(x) != 2:
            raise np.linalg.LinAlgError(f"{_ndim(x)}-dimensional array given. Array must be "
                                        "two-dimensional")
    split = _chain_order([_shape(arrays[0])[0]] + [_shape(x)[1] for x in arrays])

    def prod(i, j):
        if i == j:
            return arrays[i]
        k = split[i][j]
        return _matmul(prod(i, k), prod(k + 1, j))

    r = prod(0, len(arrays) - 1)
    if first == 1 and last == 1:
        return reshape(r, ())
    if first == 1 or last == 1:
        return reshape(r, (-1,))
    return r


@handles(np.sinc)
def sinc(x):
    if _dtype(x).kind in "iub":
        x = astype(x, np.float64)
    y = np.pi * x
    # near 0 the quotient's derivatives cancel catastrophically: a Taylor polynomial there
    # (exact to rounding for |y| < 0.1), sin(y)/y elsewhere; each branch sees only its inputs
    small = np.abs(y) < 0.1
    t = np.where(small, y, 0.0)
    z = t * t
    poly = 1.0 - z / 6.0 * (1.0 - z / 20.0 * (1.0 - z / 42.0 * (1.0 - z / 72.0
                                                                * (1.0 - z / 110.0))))
    ys = np.where(small, 1.0, y)
    return np.where(small, poly, np.sin(ys) / ys)


@handles(np.nan_to_num)
def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    dt = _dtype(x)
    if dt.kind == "c":
        return (nan_to_num(np.real(x), copy, nan, posinf, neginf)
                + 1j * nan_to_num(np.imag(x), copy, nan, posinf, neginf))
    if dt.kind != "f":
        return x
    info = np.finfo(dt)
    posinf = info.max if posinf is None else posinf
    neginf = info.min if neginf is None else neginf
    # gradient 1 where x is finite, 0 where a value was replaced (as HIPS autograd)
    out = np.where(np.isnan(x), dt.type(nan), x)
    return np.where(np.isinf(x), np.where(x > 0, dt.type(posinf), dt.type(neginf)), out)


@handles(np.ptp)
def ptp(a, axis=None, out=None, keepdims=_NOVALUE):
    _check_out(out, "ptp")
    kd = _kd(keepdims)
    return max_(a, axis, keepdims=kd) - min_(a, axis, keepdims=kd)


@handles(np.average)
def average(a, axis=None, weights=None, returned=False, *, keepdims=_NOVALUE):
    kd = _kd(keepdims)
    if weights is None:
        avg = mean(a, axis, keepdims=kd)
        scl = np.asarray(int(np.prod(_shape(a))) // max(int(np.prod(_shape(avg))), 1), _dtype(avg))
    else:
        ashape, wshape = tuple(_shape(a)), tuple(_shape(weights))
        if ashape != wshape:
            if axis is None:
                raise TypeError("Axis must be specified when shapes of a and weights differ.")
            nd = len(ashape)
            axes = [int(x) % nd for x in (axis if isinstance(axis, (tuple, list)) else (axis,))]
            if wshape != tuple(ashape[i] for i in axes):
                raise ValueError("Shape of weights must be consistent with shape of a along "
                                 "specified axis.")
            weights = reshape(transpose(weights, list(np.argsort(axes))),
                              [ashape[i] if i in axes else 1 for i in range(nd)])
        dt = np.result_type(_dtype(a), _dtype(weights),
                            np.float64 if _dtype(a).kind in "iub" else _dtype(a))
        full = weights if tuple(_shape(weights)) == ashape else broadcast_to(weights, ashape)
        scl = sum_(full, axis, dtype=dt, keepdims=kd)
        if np.any(scl == 0.0):  # a guard, as NumPy's check looks at the values
            raise ZeroDivisionError("Weights sum to zero, can't be normalized")
        avg = sum_(a * weights, axis, dtype=dt, keepdims=kd) / scl
    if not returned:
        return avg
    if tuple(_shape(scl)) != tuple(_shape(avg)):
        scl = broadcast_to(scl, tuple(_shape(avg)))
    return avg, scl


def _nan_zeroed(a):
    return np.where(np.isnan(a), _dtype(a).type(0), a) if _dtype(a).kind in "fc" else a


@handles(np.nansum)
def nansum(a, axis=None, dtype=None, out=None, keepdims=_NOVALUE, initial=_NOVALUE, where=_NOVALUE):
    _check_out(out, "nansum")
    return sum_(_nan_zeroed(a), axis, dtype, keepdims=_kd(keepdims),
                initial=None if initial is _NOVALUE else initial,
                where=None if where is _NOVALUE else where)


@handles(np.nanmean)
def nanmean(a, axis=None, dtype=None, out=None, keepdims=_NOVALUE, *, where=_NOVALUE):
    _check_out(out, "nanmean")
    if _dtype(a).kind not in "fc":
        return mean(a, axis, dtype, keepdims=_kd(keepdims),
                    where=None if where is _NOVALUE else where)
    if dtype is not None:
        a = astype(a, dtype)
    kd = _kd(keepdims)
    tot = sum_(_nan_zeroed(a), axis, keepdims=kd, where=None if where is _NOVALUE else where)
    cnt = sum_(np.logical_not(np.isnan(a)), axis, keepdims=kd)
    return tot / astype(cnt, _dtype(tot).type(0).real.dtype)


@handles(np.rot90)
def rot90(m, k=1, axes=(0, 1)):
    axes = tuple(axes)
    if len(axes) != 2:
        raise ValueError("len(axes) must be 2.")
    nd = _ndim(m)
    if axes[0] == axes[1] or abs(axes[0] - axes[1]) == nd:
        raise ValueError("Axes must be different.")
    if not (-nd <= axes[0] < nd and -nd <= axes[1] < nd):
        raise ValueError(f"Axes={axes} out of range for array of ndim={nd}.")
    a0, a1 = axes[0] % nd, axes[1] % nd
    k = int(k) % 4
    if k == 0:
        return m
    if k == 2:
        return flip(flip(m, a0), a1)
    perm = list(range(nd))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    if k == 1:
        return transpose(flip(m, a1), perm)
    return flip(transpose(m, perm), a1)
