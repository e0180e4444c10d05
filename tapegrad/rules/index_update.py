"""`index_update`: index assignment as a pure primitive, with its VJP and JVP rules.

`index_update(x, v, *index_arrays, index=template)` is `out = x.copy(); out[idx] = v`
(NumPy's assignment semantics: `v` broadcast to `x[idx]` and cast to `x.dtype`; with
repeated integer indices the last write wins). `Tracer.__setitem__` (`tapegrad/inplace.py`)
records it and rebinds the written tracer to the result; augmented assignment
`x[idx] += v` is Python's `x[idx] = x[idx] + v`, so it needs no primitive of its own.

Rules: d/dx = g with the written positions zeroed (`index_update(g, 0)`); d/dv = g[idx]
restricted to the entries of `v` that survived (a repeated integer index keeps only its
last write), unbroadcast to `v` by the reverse pass. The map is linear in (x, v) jointly,
so the JVP is `index_update(dx, dv)`.
"""

from __future__ import annotations

import numpy as np

from ..ir import decode_index, defprim
from ..ir import prims as P
from ..trace import Tracer, bind
from . import vjp_all
from .jvp import linear


def _index_update(x, v, *arrays, index):
    out = np.array(x, copy=True, order="K")  # "K": a transposed base keeps its layout
    out[decode_index(index, arrays)] = v
    return out


index_update = defprim("index_update", _index_update, linear=True)


def _survivors(g_sel, x, arrays, index):
    """Mask over x[idx]: True where that entry of the assigned value is the one left in
    `out` (a repeated integer index keeps only its last write). None when all survive."""
    ints = [a for a in arrays if np.result_type(a.dtype if isinstance(a, Tracer) else a) != bool]
    if not ints:
        return None  # basic indexing and boolean masks select each position at most once
    shape = np.shape(g_sel)
    ids = np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)
    who = bind(index_update, np.full(np.shape(x), -1, dtype=ids.dtype), ids, *arrays, index=index)
    won = bind(P.getitem, who, *arrays, index=index) == ids
    if not any(isinstance(a, Tracer) for a in arrays) and bool(np.all(won)):
        return None  # constant indices without repeats: no mask on the tape
    return won


def _index_update_vjp(g, ans, x, v, *arrays, index):
    gx = bind(index_update, g, 0.0, *arrays, index=index)
    gv = bind(P.getitem, g, *arrays, index=index)
    won = _survivors(gv, x, arrays, index)
    if won is not None:
        gv = np.where(won, gv, np.zeros((), gv.dtype))
    vshape = np.shape(v)
    if len(vshape) > np.ndim(gv):  # NumPy accepts extra leading 1s on the value
        gv = np.reshape(gv, (1,) * (len(vshape) - np.ndim(gv)) + tuple(np.shape(gv)))
    return [gx, gv] + [None] * len(arrays)


vjp_all(index_update, _index_update_vjp)
linear(index_update)
