"""Rules for `scipy.special` ufuncs (they dispatch through `__array_ufunc__`, so each gets a
primitive from `ufunc_prim`), plus the `polygamma` primitive (issue 6).

Every rule is elementwise `g * f'(x)`, so the forward pass reuses it as the JVP (see
`passes/forward.py`). An argument whose derivative is not implemented (the shape
parameters of incomplete gamma/beta functions) raises `NoDerivativeError` when it is
actually differentiated, never a silent zero. SciPy is optional: without it this module
registers nothing.
"""

from __future__ import annotations

import numpy as np

from ..errors import NoDerivativeError
from ..ir import defprim
from ..trace import bind
from . import vjp

try:
    import scipy.special as sc
except ImportError:  # pragma: no cover
    sc = None


def no_derivative(name, arg):
    def maker(g, ans, *args, **kw):
        raise NoDerivativeError(f"scipy.special.{name}: no derivative rule for argument '{arg}'")

    return maker


_SQRT_PI = np.sqrt(np.pi)
_SQRT_2PI = np.sqrt(2 * np.pi)

if sc is not None:
    polygamma = defprim("special.polygamma", lambda x, n: sc.polygamma(n, x), elementwise=True)
    vjp(polygamma, lambda g, ans, x, n: g * bind(polygamma, x, n=n + 1))

    vjp(sc.gammaln, lambda g, ans, x: g * sc.psi(x))
    vjp(sc.gamma, lambda g, ans, x: g * ans * sc.psi(x))
    vjp(sc.psi, lambda g, ans, x: g * bind(polygamma, x, n=1))
    vjp(sc.rgamma, lambda g, ans, x: -g * ans * sc.psi(x))
    vjp(sc.erf, lambda g, ans, x: g * (2.0 / _SQRT_PI) * np.exp(-x * x))
    vjp(sc.erfc, lambda g, ans, x: -g * (2.0 / _SQRT_PI) * np.exp(-x * x))
    vjp(sc.erfinv, lambda g, ans, x: g * (_SQRT_PI / 2.0) * np.exp(ans * ans))
    vjp(sc.erfcinv, lambda g, ans, x: -g * (_SQRT_PI / 2.0) * np.exp(ans * ans))
    vjp(sc.expit, lambda g, ans, x: g * ans * (1.0 - ans))
    vjp(sc.logit, lambda g, ans, x: g / (x * (1.0 - x)))
    vjp(sc.log_expit, lambda g, ans, x: g * (1.0 - sc.expit(x)))
    vjp(sc.xlogy, lambda g, ans, x, y: g * np.log(y),
        lambda g, ans, x, y: g * x / y)
    vjp(sc.xlog1py, lambda g, ans, x, y: g * np.log1p(y), lambda g, ans, x, y: g * x / (1.0 + y))
    vjp(sc.ndtr, lambda g, ans, x: g * np.exp(-0.5 * x * x) / _SQRT_2PI)
    vjp(sc.log_ndtr, lambda g, ans, x: g * np.exp(-0.5 * x * x - ans) / _SQRT_2PI)
    vjp(sc.ndtri, lambda g, ans, x: g * _SQRT_2PI * np.exp(0.5 * ans * ans))
    vjp(sc.i0, lambda g, ans, x: g * sc.i1(x))
    vjp(sc.i1, lambda g, ans, x: g * (sc.i0(x) - sc.i1(x) / x))  # x != 0, as autograd
    vjp(sc.i0e, lambda g, ans, x: g * (sc.i1e(x) - np.sign(x) * ans))
    vjp(sc.i1e, lambda g, ans, x: g * (sc.i0e(x) - ans * (np.sign(x) + 1.0 / x)))
    vjp(sc.j0, lambda g, ans, x: -g * sc.j1(x))
    vjp(sc.j1, lambda g, ans, x: g * (sc.j0(x) - sc.j1(x) / x))
    vjp(sc.y0, lambda g, ans, x: -g * sc.y1(x))
    vjp(sc.y1, lambda g, ans, x: g * (sc.y0(x) - sc.y1(x) / x))
    vjp(sc.entr, lambda g, ans, x: -g * (1.0 + np.log(x)))
    vjp(sc.rel_entr, lambda g, ans, x, y: g * (np.log(x / y) + 1.0), lambda g, ans, x, y: -g * x / y)
    vjp(sc.betaln, lambda g, ans, a, b: g * (sc.psi(a) - sc.psi(a + b)),
        lambda g, ans, a, b: g * (sc.psi(b) - sc.psi(a + b)))
    vjp(sc.beta, lambda g, ans, a, b: g * ans * (sc.psi(a) - sc.psi(a + b)),
        lambda g, ans, a, b: g * ans * (sc.psi(b) - sc.psi(a + b)))
    # regularized incomplete functions: derivative in x only
    vjp(sc.gammainc, no_derivative("gammainc", "a"),
        lambda g, ans, a, x: g * np.exp((a - 1.0) * np.log(x) - x - sc.gammaln(a)))
    vjp(sc.gammaincc, no_derivative("gammaincc", "a"),
        lambda g, ans, a, x: -g * np.exp((a - 1.0) * np.log(x) - x - sc.gammaln(a)))
    vjp(sc.betainc, no_derivative("betainc", "a"), no_derivative("betainc", "b"),
        lambda g, ans, a, b, x: g * np.exp((a - 1.0) * np.log(x) + (b - 1.0) * np.log1p(-x)
                                           - sc.betaln(a, b)))
    vjp(sc.stdtr, no_derivative("stdtr", "df"),
        lambda g, ans, df, t: g * np.exp(sc.gammaln((df + 1.0) / 2.0) - sc.gammaln(df / 2.0)
                                         - 0.5 * np.log(df * np.pi)
                                         - (df + 1.0) / 2.0 * np.log1p(t * t / df)))


if sc is not None:  # loaded after the rule table (see rules._load_scipy_rules): the
    from .jvp import fill_elementwise_from_vjps  # `g * f'(x)` makers serve forward mode

    fill_elementwise_from_vjps()
