"""VJP rules for reductions and scans: sum, prod, max, min, cumsum, cumprod, sort."""

import numpy as np

from . import nondiff, vjp


def _expand(g, x, axis, keepdims):
    """Broadcast a reduced cotangent back to the shape of `x`."""
    if axis is None:
        axis = tuple(range(np.ndim(x)))
    if not keepdims:
        shape = list(np.shape(x))
        for a in axis:
            shape[a] = 1
        g = np.reshape(g, shape)
    return np.broadcast_to(g, np.shape(x))


vjp("sum", lambda g, ans, x, axis, keepdims: _expand(g, x, axis, keepdims))
vjp("prod", lambda g, ans, x, axis, keepdims:
    _expand(g * ans, x, axis, keepdims) / x)  # defined where x != 0, as in HIPS autograd


def _minmax_vjp(g, ans, x, axis, keepdims):
    # ties share the gradient evenly, as HIPS autograd does
    a = _expand(ans, x, axis, keepdims)
    mask = x == a
    return _expand(g, x, axis, keepdims) * mask / np.sum(mask, axis=axis, keepdims=True)


vjp("max", _minmax_vjp)
vjp("min", _minmax_vjp)


def _rev(x, axis):
    return np.flip(x, axis)


vjp("cumsum", lambda g, ans, x, axis: _rev(np.cumsum(_rev(g, axis), axis=axis), axis))
vjp("cumprod", lambda g, ans, x, axis:
    _rev(np.cumsum(_rev(g * ans, axis), axis=axis), axis) / x)


def _sort_vjp(g, ans, x, axis):
    perm = np.argsort(x, axis=axis)
    inv = np.argsort(perm, axis=axis)
    return np.take_along_axis(g, inv, axis=axis)


vjp("sort", _sort_vjp)
nondiff("argmax", "argmin", "argsort", "any", "all")
