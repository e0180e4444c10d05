"""Shape handlers: reshape, transpose, astype, broadcast_to, swapaxes, moveaxis, expand_dims,
squeeze, atleast_*."""

from __future__ import annotations

import math

import numpy as np

from ..errors import TraceError
from ..ir import prims as P
from ..trace import bind
from .base import _dtype, _ndim, _shape, handles

# -- shapes ---------------------------------------------------------------------------------


def norm_axis(axis, ndim):
    if axis is None:
        return None
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < max(ndim, 1):
            raise np.exceptions.AxisError(a, ndim)
        out.append(a % ndim if ndim else 0)
    return tuple(sorted(out))


def reshape(x, shape, order="C"):
    if order != "C":
        raise TraceError("reshape with order other than 'C' is not supported on traced values")
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    shape = tuple([int(s) for s in shape])
    xshape = tuple(_shape(x))
    size = math.prod(xshape)
    if -1 in shape:
        known = math.prod([s for s in shape if s != -1])
        shape = tuple([size // known if s == -1 and known else s for s in shape])
    if shape == xshape:
        return x
    if math.prod(shape) != size:
        raise ValueError(f"cannot reshape array of size {size} into shape {shape}")
    return bind(P.reshape, x, shape=shape)


def transpose(x, axes=None):
    n = _ndim(x)
    axes = tuple(range(n - 1, -1, -1)) if axes is None else tuple([int(a) % n for a in axes])
    if axes == tuple(range(n)):
        return x
    return bind(P.transpose, x, axes=axes)


def astype(x, dtype, copy=True, **_):
    dtype = np.dtype(dtype)
    if _dtype(x) == dtype:
        return x
    return bind(P.astype, x, dtype=dtype)


def broadcast_to(x, shape, subok=False):
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(
        [int(s) for s in ((shape,) if np.isscalar(shape) else shape)])
    if tuple(_shape(x)) == shape:
        return x
    return bind(P.broadcast_to, x, shape=shape)


handles(np.reshape)(lambda a, shape=None, order="C", newshape=None, copy=None:
                    reshape(a, shape if shape is not None else newshape, order))
handles(np.transpose)(lambda a, axes=None: transpose(a, axes))
handles(np.broadcast_to)(broadcast_to)
handles(np.ravel)(lambda a, order="C": reshape(a, (-1,), order))
handles(np.shape)(lambda a: tuple(_shape(a)))
handles(np.ndim)(lambda a: _ndim(a))
handles(np.size)(lambda a, axis=None: int(np.prod(_shape(a))) if axis is None else _shape(a)[axis])
handles(np.copy)(lambda a, order="K", subok=False: a)
handles(np.asarray, np.asanyarray, np.ascontiguousarray)(lambda a, dtype=None, **k:
                                                         a if dtype is None else astype(a, dtype))


@handles(np.swapaxes)
def swapaxes(a, axis1, axis2):
    axes = list(range(_ndim(a)))
    i, j = axis1 % len(axes), axis2 % len(axes)
    axes[i], axes[j] = axes[j], axes[i]
    return transpose(a, axes)


@handles(np.moveaxis)
def moveaxis(a, source, destination):
    n = _ndim(a)
    src = [s % n for s in np.atleast_1d(source)]
    dst = [d % n for d in np.atleast_1d(destination)]
    order = [i for i in range(n) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(a, order)


@handles(np.expand_dims)
def expand_dims(a, axis):
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    n = _ndim(a) + len(axes)
    axes = sorted(ax % n for ax in axes)
    shape = list(_shape(a))
    for ax in axes:
        shape.insert(ax, 1)
    return reshape(a, shape)


@handles(np.squeeze)
def squeeze(a, axis=None):
    shape = _shape(a)
    if axis is None:
        keep = [s for s in shape if s != 1]
    else:
        axes = norm_axis(axis, len(shape))
        for ax in axes:
            if shape[ax] != 1:
                raise ValueError("cannot select an axis to squeeze out which has size not equal to one")
        keep = [s for i, s in enumerate(shape) if i not in axes]
    return reshape(a, keep)


@handles(np.atleast_1d)
def atleast_1d(*arys):
    res = [reshape(a, (1,)) if _ndim(a) == 0 else a for a in arys]
    return res[0] if len(res) == 1 else res


@handles(np.atleast_2d)
def atleast_2d(*arys):
    res = []
    for a in arys:
        n = _ndim(a)
        res.append(reshape(a, (1, 1)) if n == 0 else reshape(a, (1,) + tuple(_shape(a))) if n == 1 else a)
    return res[0] if len(res) == 1 else res
