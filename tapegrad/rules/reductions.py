"""VJP rules for reductions and scans: sum, prod, max, min, cumsum, cumprod, sort."""

import numpy as np

from . import nondiff, vjp


def keepdims_shape(g, x, axis, keepdims):
    """A reduced value reshaped as if the reduction kept its dims (ready to broadcast)."""
    if axis is None:
        axis = tuple(range(np.ndim(x)))
    if not keepdims:
        shape = list(np.shape(x))
        for a in axis:
            shape[a] = 1
        g = np.reshape(g, shape)
    return g


def _expand(g, x, axis, keepdims):
    """Broadcast a reduced cotangent back to the shape of `x`."""
    return np.broadcast_to(keepdims_shape(g, x, axis, keepdims), np.shape(x))


def _sum_vjp(g, ans, x, axis, keepdims):
    if (axis is None and g.__class__ is np.ndarray and x.__class__ is np.ndarray
            and g.ndim == 0 and g.dtype.kind in "fc"):
        # on values (the eager pass): what _expand gives, a read-only view of g with zero
        # strides, made directly (np.broadcast_to's Python wrapper costs about 2 us)
        out = np.ndarray(x.shape, g.dtype, g, 0, (0,) * x.ndim)
        out.flags.writeable = False
        return out
    return _expand(g, x, axis, keepdims)


_sum_vjp.shape_only = (0,)  # reads x's shape only (`passes.reverse.release_unread`)
vjp("sum", _sum_vjp)


def _prod_vjp(g, ans, x, axis, keepdims):
    # the product of all the other entries, from exclusive cumulative products: no division,
    # so exact where x has zeros (HIPS autograd's ans / x gives nan there)
    shape = np.shape(x)
    axes = tuple(range(len(shape))) if axis is None else tuple(axis)
    rest = [a for a in range(len(shape)) if a not in axes]
    n = int(np.prod([shape[a] for a in axes], dtype=np.int64))
    if n <= 1:
        return _expand(g, x, axis, keepdims)
    perm = rest + list(axes)
    x2 = np.reshape(np.transpose(x, perm), [shape[a] for a in rest] + [n])
    one = np.ones([shape[a] for a in rest] + [1], dtype=x2.dtype)
    left = np.concatenate([one, np.cumprod(x2[..., :-1], axis=-1)], axis=-1)
    right = np.flip(np.concatenate([one, np.cumprod(np.flip(x2, -1)[..., :-1], axis=-1)], axis=-1), -1)
    others = np.transpose(np.reshape(left * right, [shape[a] for a in perm]), np.argsort(perm))
    return _expand(g, x, axis, keepdims) * others


vjp("prod", _prod_vjp)


def _minmax_vjp(g, ans, x, axis, keepdims):
    # ties share the gradient evenly, as HIPS autograd does
    a = _expand(ans, x, axis, keepdims)
    mask = (x == a).astype(x.dtype)  # in x's dtype: an int count would promote float32
    return _expand(g, x, axis, keepdims) * mask / np.sum(mask, axis=axis, keepdims=True)


vjp("max", _minmax_vjp)
vjp("min", _minmax_vjp)


def _rev(x, axis):
    return np.flip(x, axis)


vjp("cumsum", lambda g, ans, x, axis: _rev(np.cumsum(_rev(g, axis), axis=axis), axis))
vjp("cumprod", lambda g, ans, x, axis:  # divides by x: nan where x has zeros, as in HIPS autograd
    _rev(np.cumsum(_rev(g * ans, axis), axis=axis), axis) / x)


def _sort_vjp(g, ans, x, axis):
    perm = np.argsort(x, axis=axis)
    inv = np.argsort(perm, axis=axis)
    return np.take_along_axis(g, inv, axis=axis)


vjp("sort", _sort_vjp)
nondiff("argmax", "argmin", "argsort", "any", "all")
