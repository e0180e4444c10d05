"""VJP rules for getitem and its adjoint untake (scatter-add)."""

import numpy as np

from ..ir import decode_index
from ..trace import bind
from ..ir import prims as P
from . import vjp_all


def _getitem_vjp(g, ans, x, *arrays, index):
    return [bind(P.untake, g, *arrays, index=index, shape=tuple(np.shape(x)))] + [None] * len(arrays)


def _untake_vjp(g, ans, v, *arrays, index, shape):
    return [g[decode_index(index, arrays)]] + [None] * len(arrays)


vjp_all("getitem", _getitem_vjp)
vjp_all("untake", _untake_vjp)
