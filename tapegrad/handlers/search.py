"""Index-valued functions: nonzero, flatnonzero, argwhere, where(condition), count_nonzero,
searchsorted, compress. Their results are integer arrays, recomputed when a tape is
replayed; where the result's shape depends on the data (`nonzero` and what builds on it)
it is guarded, as boolean-mask indexing is, so `tg.jit` re-traces when it changes."""

from __future__ import annotations

import numpy as np

from ..rules import search as S
from ..trace import Tracer, bind
from .base import _check_out, _ndim, guard_shape, handles
from .indexing import getitem, stack, take
from .reductions import sum_
from .shape import reshape, transpose


@handles(np.nonzero)
def nonzero(a):
    if _ndim(a) == 0:
        raise ValueError("Calling nonzero on 0d arrays is not allowed. Use "
                         "np.atleast_1d(scalar).nonzero() instead.")
    rows = bind(S.nonzero, a)
    if isinstance(rows, Tracer):  # the count depends on the data: guard it
        guard_shape(rows)
    return tuple(getitem(rows, i) for i in range(_ndim(a)))


@handles(np.flatnonzero)
def flatnonzero(a):
    return nonzero(reshape(a, (-1,)))[0]


@handles(np.argwhere)
def argwhere(a):
    if _ndim(a) == 0:
        return argwhere(reshape(a, (1,)))[:, :0]
    return transpose(stack(nonzero(a)))


@handles(np.count_nonzero)
def count_nonzero(a, axis=None, *, keepdims=False):
    return sum_(np.not_equal(a, 0), axis, keepdims=keepdims)


@handles(np.searchsorted)
def searchsorted(a, v, side="left", sorter=None):
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right' (got {side!r})")
    if sorter is not None:
        a = take(a, sorter)
    return bind(S.searchsorted, a, v, side=side)


@handles(np.compress)
def compress(condition, a, axis=None, out=None):
    _check_out(out, "compress")
    if _ndim(condition) != 1:
        raise ValueError("condition must be a 1-d array")
    if isinstance(condition, Tracer):
        idx = nonzero(condition)[0]
    else:
        idx = np.nonzero(np.asarray(condition))[0]
    return take(a, idx, axis)
