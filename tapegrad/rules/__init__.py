"""The derivative-rule table.

`VJPS[prim]` is a tuple with one maker per positional argument, or a single callable
under `VJPS_ALL[prim]` for variadic primitives. A maker maps `(g, ans, *args, **params)`
to the cotangent of its argument, written in NumPy calls so it is itself traced (that
is what makes higher derivatives work). `None` as a maker, or as its result, means a
zero cotangent. Unbroadcasting, accumulation and dtype handling live in
`passes/reverse.py`, never in a rule.
"""

from __future__ import annotations

from ..ir import PRIMS, Primitive, ufunc_prim

VJPS: dict = {}
VJPS_ALL: dict = {}
JVPS: dict = {}


def _prim(p) -> Primitive:
    if isinstance(p, Primitive):
        return p
    if isinstance(p, str):
        return PRIMS[p]
    import numpy as np

    if isinstance(p, np.ufunc):
        return ufunc_prim(p)
    raise KeyError(f"no primitive for {p!r}")


def vjp(p, *makers) -> None:
    VJPS[_prim(p)] = makers


def vjp_all(p, fn) -> None:
    VJPS_ALL[_prim(p)] = fn


def nondiff(*ps) -> None:
    """Primitives whose outputs carry no gradient (piecewise constant, integer-valued)."""
    for p in ps:
        VJPS_ALL[_prim(p)] = lambda g, ans, *args, **kw: [None] * len(args)


def has_rule(p) -> bool:
    return p in VJPS or p in VJPS_ALL


from . import indexing, linalg, reductions, shape, ufuncs  # noqa: E402,F401  (fill the table)
from . import jvp as _jvp  # noqa: E402  (forward-mode rules; issue 6)
from . import fft, index_update, numpy_linalg  # noqa: E402,F401  (issue 6)


def _load_scipy_rules(ufunc) -> None:
    """Register the `scipy.special` rules (`rules/special.py`) once SciPy is in use:
    importing scipy.special costs about 0.25 s, which `import tapegrad` need not pay. Runs
    when a ufunc not from NumPy first gets a primitive while scipy.special is imported (a
    SciPy ufunc called on a traced value); `tapegrad.scipy` imports rules.special itself."""
    import sys

    if "scipy.special" in sys.modules:
        from . import special  # noqa: F401  (once: a module; it fills its JVPs itself)


from ..ir.prims import ON_NEW_UFUNC  # noqa: E402

ON_NEW_UFUNC.append(_load_scipy_rules)

_jvp.fill_elementwise_from_vjps()
