"""`np.linalg` primitives with their VJP and JVP rules (issue 6).

Primitives: inv, solve, det, slogdet, cholesky, eigh, svd (reduced), qr (reduced, m >= n),
and `sylvester` (A X + X B = Q, for `scipy.linalg.sqrtm`). All act on the last two axes
and batch over the rest. The handlers that express `np.linalg.*` in them (pinv,
matrix_power, norm(ord=2/-2/'nuc'), eigvalsh, ...) are in `handlers_extra.py`.

Rules follow HIPS autograd (`autograd/numpy/linalg.py`) for real matrices. `eigh`
differentiates `eigh((A + A^T) / 2)`: the cotangent is symmetric, so callers pass a
symmetric matrix (only one triangle of the input is read by LAPACK). svd and qr have no
explicit JVP: the forward pass transposes their VJP (see `passes/forward.py`).
"""

from __future__ import annotations

import numpy as np

from ..ir import defprim
from ..trace import bind
from . import vjp, vjp_all
from .jvp import jvp, jvp_all


def T(x):
    return np.swapaxes(x, -1, -2)


def _sym(x):
    return (x + T(x)) / 2.0


inv = defprim("linalg.inv", np.linalg.inv)
solve = defprim("linalg.solve", lambda a, b: np.linalg.solve(a, b))
det = defprim("linalg.det", np.linalg.det)
slogdet = defprim("linalg.slogdet", lambda a: tuple(np.linalg.slogdet(a)), multiple_results=True)
cholesky = defprim("linalg.cholesky", np.linalg.cholesky)
eigh = defprim("linalg.eigh", lambda a: tuple(np.linalg.eigh(a)), multiple_results=True)
svd = defprim("linalg.svd", lambda a: tuple(np.linalg.svd(a, full_matrices=False)),
              multiple_results=True)
qr = defprim("linalg.qr", lambda a: tuple(np.linalg.qr(a, mode="reduced")), multiple_results=True)


def _sylvester_impl(a, b, q):
    import scipy.linalg

    if np.ndim(q) > 2:
        return np.stack([_sylvester_impl(x, y, z) for x, y, z in zip(a, b, q)])
    return scipy.linalg.solve_sylvester(a, b, q)


sylvester = defprim("linalg.sylvester", _sylvester_impl)


def _vec(b):
    return np.ndim(b) == 1


# -- inv / solve / det ------------------------------------------------------------------------
vjp(inv, lambda g, ans, x: -(T(ans) @ g @ T(ans)))
jvp(inv, lambda g, ans, x: -(ans @ g @ ans))


def _solve_a(g, ans, a, b):
    gb = bind(solve, T(a), g)
    if _vec(b):
        return -(np.expand_dims(gb, -1) * np.expand_dims(ans, -2))
    return -(gb @ T(ans))


vjp(solve, _solve_a, lambda g, ans, a, b: bind(solve, T(a), g))
jvp(solve, lambda g, ans, a, b: -bind(solve, a, (g @ ans)),
    lambda g, ans, a, b: bind(solve, a, g))
vjp(det, lambda g, ans, x: np.expand_dims(np.expand_dims(g * ans, -1), -1) * T(bind(inv, x)))
jvp(det, lambda g, ans, x: ans * np.trace(bind(solve, x, g), axis1=-2, axis2=-1))


def _slogdet_vjp(g, ans, x):
    _, glog = g
    return [np.expand_dims(np.expand_dims(glog, -1), -1) * T(bind(inv, x))]


vjp_all(slogdet, _slogdet_vjp)
jvp_all(slogdet, lambda gs, ans, x: (None, np.trace(bind(solve, x, gs[0]), axis1=-2, axis2=-1)))

# -- cholesky ------------------------------------------------------------------------------------


def _phi(x):
    """Lower triangle with the diagonal halved."""
    n = np.shape(x)[-1]
    return np.tril(x) * (1.0 - 0.5 * np.eye(n))


def _cholesky_vjp(g, L, a):
    # S = L^{-T} phi(L^T g) L^{-1}, symmetrised (autograd's grad_cholesky)
    P = _phi(T(L) @ g)
    S = bind(solve, T(L), T(bind(solve, T(L), T(P))))
    return _sym(S)


def _cholesky_jvp(g, L, a):
    # dL = L phi(L^{-1} dA L^{-T}), for a symmetric dA
    X = bind(solve, L, T(bind(solve, L, T(_sym(g)))))
    return L @ _phi(X)


vjp(cholesky, _cholesky_vjp)
jvp(cholesky, _cholesky_jvp)

# -- eigh -----------------------------------------------------------------------------------------


def _eigh_f(w):
    n = np.shape(w)[-1]
    off = 1.0 - np.eye(n)
    d = np.expand_dims(w, -2) - np.expand_dims(w, -1)  # d[i, j] = w_j - w_i
    return off / (d + np.eye(n))


def _eigh_vjp(g, ans, a):
    wg, vg = g
    w, v = ans
    inner = np.expand_dims(wg, -2) * np.eye(np.shape(w)[-1]) + _eigh_f(w) * (T(v) @ vg)
    return [_sym(v @ inner @ T(v))]


def _eigh_jvp(gs, ans, a):
    w, v = ans
    da = T(v) @ _sym(gs[0]) @ v
    dw = np.diagonal(da, axis1=-2, axis2=-1)
    dv = v @ (_eigh_f(w) * da)
    return dw, dv


vjp_all(eigh, _eigh_vjp)
jvp_all(eigh, _eigh_jvp)

# -- svd (reduced, real) ---------------------------------------------------------------------------


def _svd_vjp(g, ans, a):
    gu, gs, gvh = g
    u, s, vh = ans
    v, gv = T(vh), T(gvh)
    m, n = np.shape(a)[-2:]
    k = min(m, n)
    i = np.eye(k)
    s_row, s_col = np.expand_dims(s, -2), np.expand_dims(s, -1)
    f = (1.0 - i) / (s_row ** 2 - s_col ** 2 + i)
    utgu, vtgv = T(u) @ gu, T(v) @ gv
    t1 = (f * (utgu - T(utgu))) * s_row
    t1 = t1 + i * np.expand_dims(gs, -1)
    t1 = t1 + s_col * (f * (vtgv - T(vtgv)))
    t1 = u @ t1 @ T(v)
    if m < n:
        t1 = t1 + (u / s_row) @ T(gv) @ (np.eye(n) - v @ T(v))
    elif m > n:
        t1 = t1 + (np.eye(m) - u @ T(u)) @ gu @ T(v / s_row)
    return [t1]


vjp_all(svd, _svd_vjp)

# -- qr (reduced, m >= n) ---------------------------------------------------------------------------


def _qr_vjp(g, ans, a):
    gq, gr = g
    q, r = ans
    m, n = np.shape(a)[-2:]
    if m < n:
        from ..errors import NoDerivativeError

        raise NoDerivativeError("np.linalg.qr: derivative only for matrices with m >= n")
    M = r @ T(gr) - T(gq) @ q
    copyltu = np.tril(M) + T(np.tril(M, -1))
    b = gq + q @ copyltu
    return [T(bind(solve, r, T(b)))]


vjp_all(qr, _qr_vjp)

# -- sylvester: A X + X B = Q ------------------------------------------------------------------------


def _syl_q(g, ans, a, b, q):
    return bind(sylvester, T(a), T(b), g)


vjp(sylvester, lambda g, ans, a, b, q: -(_syl_q(g, ans, a, b, q) @ T(ans)),
    lambda g, ans, a, b, q: -(T(ans) @ _syl_q(g, ans, a, b, q)), _syl_q)
jvp(sylvester, lambda g, ans, a, b, q: -bind(sylvester, a, b, g @ ans),
    lambda g, ans, a, b, q: -bind(sylvester, a, b, ans @ g),
    lambda g, ans, a, b, q: bind(sylvester, a, b, g))
