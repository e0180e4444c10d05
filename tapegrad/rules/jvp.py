"""JVP (forward-mode) rules for the core primitives.

`JVPS[prim]` holds one maker per positional argument, `(g, ans, *args, **params) ->`
the tangent of `ans` contributed by the tangent `g` of that argument. `JVPS_ALL[prim]`
is one callable `(gs, ans, *args, **params)` taking every input's tangent (None = zero),
for variadic primitives. Like VJP rules they are NumPy code, so they are traced and
nest. Broadcasting tangents to the output shape and dtype casts happen in
`passes/forward.py`, never here.

Elementwise ufuncs need no entry when their VJP maker is `g * f'(x)`: the forward pass
reuses it (a diagonal Jacobian is its own transpose; see `passes/forward.py`). At import
we copy those makers into `JVPS` explicitly, so the table says which prims have rules.
The non-holomorphic elementwise functions (abs, real, imag, angle) get their own here.
"""

from __future__ import annotations

import numpy as np

from ..ir import PRIMS
from ..ir import prims as P
from ..trace import bind
from . import JVPS, VJPS, VJPS_ALL, _prim
from .reductions import keepdims_shape

JVPS_ALL: dict = {}

#: primitives whose outputs carry no tangent (piecewise constant or integer valued)
NONDIFF = ["sign", "floor", "ceil", "trunc", "rint", "floor_divide", "round", "stop_gradient",
           "argmax", "argmin", "argsort", "any", "all", "signbit", "isnan", "isinf", "isfinite",
           "greater", "greater_equal", "less", "less_equal", "equal", "not_equal",
           "logical_and", "logical_or", "logical_xor", "logical_not"]


def jvp(p, *makers) -> None:
    JVPS[_prim(p)] = makers


def jvp_all(p, fn) -> None:
    JVPS_ALL[_prim(p)] = fn


def jvp_nondiff(*ps) -> None:
    for p in ps:
        JVPS_ALL[_prim(p)] = lambda gs, ans, *args, **kw: None


def linear(p) -> None:
    """A primitive linear in all its array inputs: the tangent is the primitive of the tangents."""
    prim = _prim(p)

    def fn(gs, ans, *args, **params):
        xs = [g if g is not None else (np.zeros(np.shape(a), _dt(a))
                                       if _is_array_input(a) else a) for g, a in zip(gs, args)]
        return bind(prim, *xs, **params)

    JVPS_ALL[prim] = fn


def _dt(a) -> np.dtype:
    return a.dtype if hasattr(a, "dtype") else np.asarray(a).dtype


def _is_array_input(a) -> bool:
    return _dt(a).kind in "fc"


def _cplx(a) -> bool:
    return _dt(a).kind == "c"


jvp_nondiff(*[n for n in NONDIFF if n in PRIMS])

# -- elementwise ---------------------------------------------------------------------------
jvp(np.absolute, lambda g, ans, x: (np.real(np.conj(x) * g) / np.where(ans == 0, 1.0, ans)
                                    if _cplx(x) else g * np.sign(x)))
jvp(np.conjugate, lambda g, ans, x: np.conj(g))
jvp("real", lambda g, ans, x: np.real(g))
jvp("imag", lambda g, ans, x: np.imag(g))
jvp("copy", lambda g, ans, x: g)
jvp("astype", lambda g, ans, x, dtype: (np.real(g) if _cplx(g) and np.dtype(dtype).kind != "c"
                                        else g).astype(dtype))
jvp("where", None, lambda g, ans, c, x, y: np.where(c, g, 0.0),
    lambda g, ans, c, x, y: np.where(c, 0.0, g))
jvp(np.power,
    lambda g, ans, x, y: g * y * x ** np.where(y, y - 1, 1.0) if not np.isscalar(y) else
    (g * y * x ** (y - 1) if y != 0 else None),
    lambda g, ans, x, y: g * np.where(x, ans * np.log(np.where(x, x, 1.0)), 0.0))

# -- linear array primitives: the primitive applied to the tangent ------------------------
for _n in ["reshape", "transpose", "broadcast_to", "flip", "sum", "cumsum", "concatenate"]:
    if _n in PRIMS:
        linear(_n)


def _getitem_jvp(gs, ans, x, *arrays, index):
    return None if gs[0] is None else bind(P.getitem, gs[0], *arrays, index=index)


def _untake_jvp(gs, ans, v, *arrays, index, shape):
    return None if gs[0] is None else bind(P.untake, gs[0], *arrays, index=index, shape=shape)


jvp_all("getitem", _getitem_jvp)
jvp_all("untake", _untake_jvp)

# -- products -----------------------------------------------------------------------------
jvp("matmul", lambda g, ans, x, y: np.matmul(g, y), lambda g, ans, x, y: np.matmul(x, g))
jvp("gemm", lambda g, ans, a, b, **kw: bind(P.gemm, g, b, **kw),
    lambda g, ans, a, b, **kw: bind(P.gemm, a, g, **kw))


def _einsum_jvp(gs, ans, *xs, subscripts):
    total = None
    for i, g in enumerate(gs):
        if g is None:
            continue
        ops = list(xs)
        ops[i] = g
        t = np.einsum(subscripts, *ops)
        total = t if total is None else total + t
    return total


jvp_all("einsum", _einsum_jvp)

# -- reductions and scans -----------------------------------------------------------------


def _prod_jvp(g, ans, x, axis, keepdims):
    # sum_i g_i * prod_{j != i} x_j, reusing the VJP rule's d prod / dx (exact at zeros)
    dprod = VJPS[_prim("prod")][0](np.ones(np.shape(ans)), ans, x, axis=axis, keepdims=keepdims)
    return np.sum(g * dprod, axis=axis, keepdims=keepdims)


jvp("prod", _prod_jvp)


def _minmax_jvp(g, ans, x, axis, keepdims):
    # ties share the tangent evenly, matching the VJP rule (HIPS autograd's convention)
    mask = (x == keepdims_shape(ans, x, axis, keepdims)).astype(x.dtype)  # float32 stays
    return (np.sum(g * mask, axis=axis, keepdims=keepdims)
            / np.sum(mask, axis=axis, keepdims=keepdims))


jvp("max", _minmax_jvp)
jvp("min", _minmax_jvp)
jvp("cumprod", lambda g, ans, x, axis: ans * np.cumsum(g / x, axis=axis))
jvp("sort", lambda g, ans, x, axis: np.take_along_axis(g, np.argsort(x, axis=axis), axis=axis))


def fill_elementwise_from_vjps() -> None:
    """Copy the `g * f'(x)` VJP makers of elementwise prims into JVPS (see module doc)."""
    for p, makers in list(VJPS.items()):
        if p.elementwise and p not in JVPS and p not in JVPS_ALL:
            JVPS[p] = makers
    for p in list(VJPS_ALL):
        if p.name in NONDIFF and p not in JVPS_ALL:
            jvp_nondiff(p)


def has_jvp(p) -> bool:
    return p in JVPS or p in JVPS_ALL


def rule_counts() -> dict:
    """How many primitives have VJP rules, and how many of those have JVP rules."""
    vj = {p for p in set(VJPS) | set(VJPS_ALL) if not p.user}  # built-in prims only
    return {"vjp": len(vj), "jvp": sum(1 for p in vj if has_jvp(p)),
            "missing_jvp": sorted(p.name for p in vj if not has_jvp(p))}
