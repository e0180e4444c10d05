"""`scipy.linalg` drop-ins: solve_triangular, cholesky, sqrtm.

solve_triangular masks the unused triangle and uses the `linalg.solve` primitive, so
its gradient reaches only the triangle SciPy reads. sqrtm is a primitive whose rules
solve a Sylvester equation (`linalg.sylvester`, itself differentiable), as in HIPS autograd.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as _sl

from ..ir import defprim
from ..rules import vjp
from ..rules.jvp import jvp
from ..rules.numpy_linalg import solve as _solve
from ..rules.numpy_linalg import sylvester as _sylvester
from ..trace import Tracer, bind


def solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False, overwrite_b=False,
                     check_finite=True):
    if not isinstance(a, Tracer) and not isinstance(b, Tracer):
        return _sl.solve_triangular(a, b, trans=trans, lower=lower, unit_diagonal=unit_diagonal)
    n = np.shape(a)[-1]
    tri = np.tril(a) if lower else np.triu(a)
    if unit_diagonal:
        tri = np.where(np.eye(n, dtype=bool), 1.0, tri)
    if trans in (1, "T", "C"):
        tri = np.swapaxes(tri, -1, -2)
    return bind(_solve, tri, b)


def cholesky(a, lower=False, overwrite_a=False, check_finite=True):
    L = np.linalg.cholesky(a)
    return L if lower else np.swapaxes(L, -1, -2)


sqrtm_prim = defprim("scipy.linalg.sqrtm", lambda a: _sl.sqrtm(a))
vjp(sqrtm_prim, lambda g, ans, a: bind(_sylvester, np.swapaxes(ans, -1, -2),
                                       np.swapaxes(ans, -1, -2), g))
jvp(sqrtm_prim, lambda g, ans, a: bind(_sylvester, ans, ans, g))


def sqrtm(A, disp=True, blocksize=64):
    if not isinstance(A, Tracer):
        return _sl.sqrtm(A)
    return bind(sqrtm_prim, A)


__all__ = ["solve_triangular", "cholesky", "sqrtm"]
