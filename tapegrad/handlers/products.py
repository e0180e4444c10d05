"""Product handlers: dot, vdot, inner, outer, tensordot (as einsum), einsum."""

from __future__ import annotations

import string
import numpy as np

from ..errors import TraceError
from ..ir import prims as P
from ..trace import bind
from .base import _check_out, _ndim, handles
from .reductions import sum_
from .shape import reshape
from .ufuncs import _matmul

# -- products -------------------------------------------------------------------------------


@handles(np.dot)
def dot(a, b, out=None):
    _check_out(out, "dot")
    na, nb = _ndim(a), _ndim(b)
    if na == 0 or nb == 0:
        return np.multiply(a, b)
    if nb <= 2:
        return _matmul(a, b)
    return tensordot(a, b, axes=([na - 1], [nb - 2]))


handles(np.matmul)(lambda a, b, **k: _matmul(a, b))


@handles(np.vdot)
def vdot(a, b):
    return sum_(np.conj(reshape(a, (-1,))) * reshape(b, (-1,)))


@handles(np.inner)
def inner(a, b):
    if _ndim(a) == 0 or _ndim(b) == 0:
        return np.multiply(a, b)
    return tensordot(a, b, axes=([_ndim(a) - 1], [_ndim(b) - 1]))


@handles(np.outer)
def outer(a, b, out=None):
    _check_out(out, "outer")
    return reshape(a, (-1, 1)) * reshape(b, (1, -1))


@handles(np.tensordot)
def tensordot(a, b, axes=2):
    na, nb = _ndim(a), _ndim(b)
    if isinstance(axes, (int, np.integer)):
        ax_a, ax_b = list(range(na - axes, na)), list(range(axes))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, (int, np.integer)) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, (int, np.integer)) else list(ax_b)
        ax_a, ax_b = [i % na for i in ax_a], [i % nb for i in ax_b]
    letters = iter(string.ascii_letters)
    sa = [next(letters) for _ in range(na)]
    sb = [next(letters) for _ in range(nb)]
    for i, j in zip(ax_a, ax_b):
        sb[j] = sa[i]
    out = [c for i, c in enumerate(sa) if i not in ax_a] + [c for j, c in enumerate(sb) if j not in ax_b]
    return einsum(f"{''.join(sa)},{''.join(sb)}->{''.join(out)}", a, b)


@handles(np.einsum)
def einsum(subscripts, *operands, optimize=False, out=None, dtype=None, **kw):
    _check_out(out, "einsum")
    if not isinstance(subscripts, str):
        raise TraceError("einsum on traced values needs the subscripts-string form")
    subscripts = subscripts.replace(" ", "")
    if "->" not in subscripts:
        ins = subscripts.split(",")
        letters = "".join(ins).replace(".", "")
        outs = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
        subscripts = f"{subscripts}->{'...' if '...' in subscripts else ''}{outs}"
    return bind(P.einsum, *operands, subscripts=subscripts)
