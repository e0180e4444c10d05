"""Joining and selecting: concatenate, stack, where, clip, getitem, take, diag, trace,
triu/tril, the *_like constructors, real/imag, round, isclose, linalg.norm."""

from __future__ import annotations

import numpy as np

from ..errors import TraceError
from ..ir import prims as P
from ..trace import Tracer, bind
from .base import HANDLERS, _check_out, _dtype, _ndim, _shape, guard_shape, handles
from .reductions import all_, max_, min_, sum_
from .shape import astype, atleast_1d, atleast_2d, expand_dims, moveaxis, norm_axis, reshape, squeeze

# -- joining and selecting --------------------------------------------------------------------


@handles(np.concatenate)
def concatenate(arrays, axis=0, out=None, dtype=None, casting=None):
    _check_out(out, "concatenate")
    arrays = list(arrays)
    if axis is None:
        arrays, axis = [reshape(a, (-1,)) for a in arrays], 0
    if dtype is not None:
        arrays = [astype(a, dtype) for a in arrays]
    if len(arrays) == 1:
        return arrays[0]
    return bind(P.concatenate, *arrays, axis=int(axis) % _ndim(arrays[0]))


@handles(np.stack)
def stack(arrays, axis=0, out=None, dtype=None, casting=None):
    arrays = list(arrays)
    n = _ndim(arrays[0]) + 1
    return concatenate([expand_dims(a, axis % n) for a in arrays], axis % n, out, dtype)


@handles(np.vstack, np.row_stack) if hasattr(np, "row_stack") else handles(np.vstack)
def vstack(tup, dtype=None, casting=None):
    return concatenate([atleast_2d(a) for a in tup], 0, dtype=dtype)


@handles(np.hstack)
def hstack(tup, dtype=None, casting=None):
    arrs = [atleast_1d(a) for a in tup]
    return concatenate(arrs, 0 if _ndim(arrs[0]) == 1 else 1, dtype=dtype)


@handles(np.column_stack)
def column_stack(tup):
    return concatenate([reshape(a, (-1, 1)) if _ndim(a) < 2 else a for a in tup], 1)


@handles(np.where)
def where(condition, x=None, y=None):
    if x is None and y is None:  # np.nonzero(condition), its shape guarded
        return HANDLERS[np.nonzero](condition)
    return bind(P.where, condition, x, y)


@handles(np.clip)
def clip(a, a_min=None, a_max=None, out=None, min=None, max=None, **kw):
    _check_out(out, "clip")
    lo = a_min if a_min is not None else min
    hi = a_max if a_max is not None else max
    if lo is not None:
        a = np.maximum(a, lo)
    if hi is not None:
        a = np.minimum(a, hi)
    return a


def encode_index(key):
    """-> (template, arrays) for `P.getitem`."""
    if not isinstance(key, tuple):
        key = (key,)
    template, arrays = [], []
    for k in key:
        if isinstance(k, slice):
            template.append(("s", _static_int(k.start), _static_int(k.stop), _static_int(k.step)))
        elif k is None or k is Ellipsis:
            template.append(k)
        elif isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)):
            template.append(int(k))
        elif isinstance(k, Tracer) or isinstance(k, (np.ndarray, list, bool, np.bool_)):
            if not isinstance(k, Tracer):
                k = np.asarray(k)
                if k.dtype.kind not in "iub":
                    raise IndexError("arrays used as indices must be of integer (or boolean) type")
            elif k.dtype.kind not in "iub":
                raise IndexError("arrays used as indices must be of integer (or boolean) type")
            template.append(("a", len(arrays)))
            arrays.append(k)
        else:
            raise IndexError(f"unsupported index {k!r} on a traced value")
    return tuple(template), arrays


def _static_int(v):
    return None if v is None else int(v)


def getitem(x, key):
    if type(key) is int:  # x[i], as encode_index has it (and no array input, so no guard)
        return bind(P.getitem, x, index=(key,))
    template, arrays = encode_index(key)
    if not arrays and all(t == ("s", None, None, None) or t is None for t in template):
        if None not in template:
            return x
        return _expand_none(x, template)
    out = bind(P.getitem, x, *arrays, index=template)
    if isinstance(out, Tracer) and any(_dtype(a) == np.bool_ and _ndim(a) for a in arrays):
        # a boolean mask makes the result's shape depend on data: guard it
        guard_shape(out)
    return out


def _expand_none(x, template):
    """x[:, None] and friends are reshapes: record them as such."""
    shape = list(_shape(x))
    out, k = [], 0
    n_full = sum(1 for t in template if t is not None)
    if n_full > len(shape):
        raise IndexError("too many indices for array")
    for t in template:
        if t is None:
            out.append(1)
        else:
            out.append(shape[k])
            k += 1
    return reshape(x, out + shape[k:])


Tracer.__getitem__ = getitem


@handles(np.take)
def take(a, indices, axis=None, out=None, mode="raise"):
    _check_out(out, "take")
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    axis = axis % _ndim(a)
    if mode != "raise":  # NumPy's out-of-range policies, applied to the indices first
        n = _shape(a)[axis]
        indices = np.mod(indices, n) if mode == "wrap" else np.clip(indices, 0, n - 1)
    return getitem(a, (slice(None),) * axis + (indices,))


@handles(np.take_along_axis)
def take_along_axis(arr, indices, axis):
    shape = _shape(arr)
    axis = axis % len(shape)
    idx = []
    for d in range(len(shape)):
        if d == axis:
            idx.append(indices)
        else:
            s = [1] * len(shape)
            s[d] = shape[d]
            idx.append(np.arange(shape[d]).reshape(s))
    return getitem(arr, tuple(idx))


@handles(np.flip)
def flip(m, axis=None):
    n = _ndim(m)
    axes = range(n) if axis is None else norm_axis(axis, n)
    key = tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(n))
    return getitem(m, key)


@handles(np.diagonal)
def diagonal(a, offset=0, axis1=0, axis2=1):
    n = _ndim(a)
    a = moveaxis(a, (axis1 % n, axis2 % n), (n - 2, n - 1))
    r, c = _shape(a)[-2:]
    i = np.arange(max(0, -offset), min(r, c - offset) if offset >= 0 else min(r, c - offset))
    i = i[(i + offset >= 0) & (i + offset < c) & (i < r)]
    return getitem(a, (Ellipsis, i, i + offset))


@handles(np.diag)
def diag(v, k=0):
    if _ndim(v) == 2:
        return diagonal(v, k)
    if _ndim(v) != 1:
        raise ValueError("Input must be 1- or 2-d.")
    n = _shape(v)[0] + abs(k)
    i = np.arange(_shape(v)[0])
    rows, cols = (i, i + k) if k >= 0 else (i - k, i)
    return bind(P.untake, v, rows, cols, index=(("a", 0), ("a", 1)), shape=(n, n))


@handles(np.trace)
def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    _check_out(out, "trace")
    return sum_(diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype)


@handles(np.triu)
def triu(m, k=0):
    shape = _shape(m)
    return np.where(np.triu(np.ones(shape[-2:], dtype=bool), k), m, np.zeros((), _dtype(m)))


@handles(np.tril)
def tril(m, k=0):
    shape = _shape(m)
    return np.where(np.tril(np.ones(shape[-2:], dtype=bool), k), m, np.zeros((), _dtype(m)))


@handles(np.zeros_like, np.ones_like, np.empty_like, np.full_like)
def _like(a, fill_value=None, dtype=None, order="K", subok=True, shape=None, **kw):
    shape = tuple(_shape(a)) if shape is None else shape
    dtype = np.dtype(dtype or _dtype(a))
    fill = 0 if fill_value is None else fill_value
    if isinstance(fill, Tracer):
        return traced_full(shape, fill, dtype)
    value = np.full(shape, fill, dtype=dtype)
    # like np.zeros in the traced code's module: a traced constant, so writes into it are
    # recorded (`y = np.zeros_like(x); y[1:] = x[:-1]`)
    return traced_constant(value, a) if isinstance(a, Tracer) else value


# np.zeros_like and friends take their fill from their own name
for _f, _v in [(np.zeros_like, 0), (np.ones_like, 1), (np.empty_like, 0)]:
    HANDLERS[_f] = (lambda v: lambda a, dtype=None, order="K", subok=True, shape=None, **kw:
                    _like(a, v, dtype, shape=shape))(_v)


def traced_constant(value, like):
    """`value` as a constant of the innermost trace (`like`'s, or one nested inside it)."""
    from ..trace import _stack

    stack = _stack()
    trace = stack[-1] if stack and not stack[-1].closed else like._trace
    return Tracer(trace, trace.atom(value), value)


def traced_full(shape, fill, dtype=None):
    """np.full(shape, fill) for a traced fill: a broadcast of the fill (differentiable),
    copied so that it is a fresh writable array rather than a read-only view."""
    shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
    if dtype is not None and np.dtype(dtype) != fill.dtype:
        fill = astype(fill, dtype)
    b = np.broadcast_to(fill, shape)
    return bind(P.astype, b, dtype=b.dtype)


@handles(np.real)
def real(val):
    return bind(P.real, val) if _dtype(val).kind == "c" else val


@handles(np.imag)
def imag(val):
    return bind(P.imag, val) if _dtype(val).kind == "c" else np.zeros(_shape(val), _dtype(val))


@handles(np.round, np.around)
def round_(a, decimals=0, out=None):
    _check_out(out, "round")
    return bind(P.round_, a, decimals=int(decimals))


@handles(np.isclose)
def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    # as NumPy: the tolerance applies to finite pairs, infinities must be equal, nan only with equal_nan
    close = np.where(np.isfinite(a) & np.isfinite(b), np.less_equal(np.abs(a - b), atol + rtol * np.abs(b)),
                     np.equal(a, b))
    return close | (np.isnan(a) & np.isnan(b)) if equal_nan else close


@handles(np.allclose)
def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    return all_(isclose(a, b, rtol, atol, equal_nan))


@handles(np.linalg.norm)
def norm(x, ord=None, axis=None, keepdims=False):
    nd = _ndim(x)
    if axis is None and ord is None:
        x2 = np.real(x * np.conj(x)) if _dtype(x).kind == "c" else x * x
        r = np.sqrt(sum_(x2))
        return reshape(r, (1,) * nd) if keepdims else r
    if axis is None:
        axis = tuple(range(nd))
    axes = norm_axis(axis, nd)
    if len(axes) == 1:
        ax = axes
        if ord is None or ord == 2:
            return np.sqrt(sum_(np.abs(x) ** 2 if _dtype(x).kind == "c" else x * x, ax, keepdims=keepdims))
        if ord == np.inf:
            return max_(np.abs(x), ax, keepdims=keepdims)
        if ord == -np.inf:
            return min_(np.abs(x), ax, keepdims=keepdims)
        if ord == 1:
            return sum_(np.abs(x), ax, keepdims=keepdims)
        if ord == 0:
            return sum_(astype(np.not_equal(x, 0), _dtype(x).type(0).real.dtype), ax, keepdims=keepdims)
        return sum_(np.abs(x) ** ord, ax, keepdims=keepdims) ** (1.0 / ord)
    if len(axes) == 2:
        r0, r1 = (int(a) % nd for a in axis)  # in the caller's order: (1, 0) transposes ord
        if ord in (None, "fro"):
            return np.sqrt(sum_(np.abs(x) ** 2 if _dtype(x).kind == "c" else x * x, axes, keepdims=keepdims))
        if ord in (1, -1):
            s = sum_(np.abs(x), r0, keepdims=True)
            r = (max_ if ord == 1 else min_)(s, r1, keepdims=True)
        elif ord in (np.inf, -np.inf):
            s = sum_(np.abs(x), r1, keepdims=True)
            r = (max_ if ord == np.inf else min_)(s, r0, keepdims=True)
        else:
            raise TraceError(f"linalg.norm(ord={ord!r}) on traced matrices is not supported yet")
        return r if keepdims else squeeze(r, axes)
    raise ValueError("Improper number of dimensions to norm.")
