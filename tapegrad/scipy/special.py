"""`scipy.special` drop-ins: the ufuncs themselves dispatch (re-exported here), plus
`polygamma` and `logsumexp`, which are Python functions in SciPy."""

from __future__ import annotations

import numpy as np
import scipy.special as _sc
from scipy.special import (beta, betainc, betaln, digamma, entr, erf, erfc, erfcinv, erfinv,  # noqa: F401
                           expit, gamma, gammainc, gammaincc, gammaln, i0, i0e, i1, i1e, j0, j1,
                           log_expit, log_ndtr, logit, ndtr, ndtri, psi, rel_entr, rgamma,
                           stdtr, xlog1py, xlogy, y0, y1)

from ..rules.special import polygamma as _polygamma
from ..trace import Tracer, bind


def polygamma(n, x):
    """The n-th derivative of digamma; `n` a static integer, differentiable in `x`."""
    if not isinstance(x, Tracer):
        return _sc.polygamma(n, x)
    return bind(_polygamma, x, n=int(n))


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """`log(sum(b * exp(a)))` along `axis`, stably (the max is shifted out, without gradient)."""
    if not isinstance(a, Tracer) and not isinstance(b, Tracer):
        return _sc.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)
    from ..api import stop_gradient

    m = stop_gradient(np.max(a, axis=axis, keepdims=True))
    e = np.exp(a - m)
    if b is not None:
        e = e * b
    s = np.sum(e, axis=axis, keepdims=True)
    out = np.log(np.abs(s) if return_sign else s) + m
    if not keepdims:
        out = np.squeeze(out, axis=axis) if axis is not None else np.reshape(out, ())
    if return_sign:
        sign = np.sign(s)
        return out, (sign if keepdims else np.reshape(sign, np.shape(out)))
    return out


def softmax(x, axis=None):
    return np.exp(x - logsumexp(x, axis=axis, keepdims=True))


def log_softmax(x, axis=None):
    return x - logsumexp(x, axis=axis, keepdims=True)
