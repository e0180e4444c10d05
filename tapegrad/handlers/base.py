"""The handler registry (`HANDLERS`: NumPy function -> handler) and the helpers every
handler module shares."""

from __future__ import annotations

import numpy as np

from ..errors import TraceError
from ..trace import Tracer, user_loc

HANDLERS: dict = {}


def handles(*funcs):
    def deco(fn):
        for f in funcs:
            HANDLERS[f] = fn
        return fn

    return deco


def _shape(x):
    return x.shape if isinstance(x, Tracer) else np.shape(x)


def _ndim(x):
    return len(_shape(x))


def _dtype(x):
    return x.dtype if isinstance(x, Tracer) else np.result_type(x)


def _check_out(out, what):
    if out is not None:
        raise TraceError(f"{what}(..., out=...) writes in place, which tracing cannot record "
                         f"(at {user_loc()}); use the returned value instead")


def guard_shape(t) -> None:
    """Guard the shape of a result whose shape depends on data (boolean masks, nonzero), at
    every tracing level it is recorded at (the value of a nested Tracer is the Tracer of the
    enclosing trace), so a replayed tape of any level refuses inputs of another shape."""
    shape = tuple(t.shape)
    while isinstance(t, Tracer):
        if not t._trace.closed:
            t._trace.guard("shape", t, shape)
        t = t.value
