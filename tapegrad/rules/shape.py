"""VJP rules for shape ops: reshape, transpose, broadcast_to, concatenate, flip."""

import numpy as np

from . import vjp, vjp_all

vjp("reshape", lambda g, ans, x, shape: np.reshape(g, np.shape(x)))
vjp("transpose", lambda g, ans, x, axes: np.transpose(g, np.argsort(axes)))
vjp("broadcast_to", lambda g, ans, x, shape: g)  # the reverse pass sums it back to x's shape
vjp("flip", lambda g, ans, x, axis: np.flip(g, axis))


def _concatenate_vjp(g, ans, *xs, axis):
    out, start = [], 0
    for x in xs:
        n = np.shape(x)[axis]
        key = (slice(None),) * axis + (slice(start, start + n),)
        out.append(g[key])
        start += n
    return out


vjp_all("concatenate", _concatenate_vjp)
