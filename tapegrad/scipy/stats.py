"""`scipy.stats` drop-ins: norm, t, gamma, beta, poisson, dirichlet, multivariate_normal
(logpdf/pdf/cdf where defined), written in differentiable NumPy and scipy.special ufuncs.
cdfs are differentiable in `x` (and `mu` for poisson); the shape parameters of the
incomplete gamma/beta functions raise NoDerivativeError when differentiated."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from scipy.special import (betainc, betaln, gammainc, gammaincc, gammaln, log_ndtr, ndtr, stdtr,
                           xlog1py, xlogy)

_LOG_2PI = np.log(2 * np.pi)


def _norm_logpdf(x, loc=0.0, scale=1.0):
    y = (x - loc) / scale
    return -0.5 * y * y - np.log(scale) - 0.5 * _LOG_2PI


norm = SimpleNamespace(
    logpdf=_norm_logpdf,
    pdf=lambda x, loc=0.0, scale=1.0: np.exp(_norm_logpdf(x, loc, scale)),
    cdf=lambda x, loc=0.0, scale=1.0: ndtr((x - loc) / scale),
    logcdf=lambda x, loc=0.0, scale=1.0: log_ndtr((x - loc) / scale),
    sf=lambda x, loc=0.0, scale=1.0: ndtr(-(x - loc) / scale),
)


def _t_logpdf(x, df, loc=0.0, scale=1.0):
    y = (x - loc) / scale
    return (gammaln((df + 1.0) / 2.0) - gammaln(df / 2.0) - 0.5 * np.log(df * np.pi)
            - np.log(scale) - (df + 1.0) / 2.0 * np.log1p(y * y / df))


t = SimpleNamespace(
    logpdf=_t_logpdf,
    pdf=lambda x, df, loc=0.0, scale=1.0: np.exp(_t_logpdf(x, df, loc, scale)),
    cdf=lambda x, df, loc=0.0, scale=1.0: stdtr(df, (x - loc) / scale),
)


def _gamma_logpdf(x, a, loc=0.0, scale=1.0):
    y = (x - loc) / scale
    return xlogy(a - 1.0, y) - y - gammaln(a) - np.log(scale)


gamma = SimpleNamespace(
    logpdf=_gamma_logpdf,
    pdf=lambda x, a, loc=0.0, scale=1.0: np.exp(_gamma_logpdf(x, a, loc, scale)),
    cdf=lambda x, a, loc=0.0, scale=1.0: gammainc(a, (x - loc) / scale),
)


def _beta_logpdf(x, a, b, loc=0.0, scale=1.0):
    y = (x - loc) / scale
    return xlogy(a - 1.0, y) + xlog1py(b - 1.0, -y) - betaln(a, b) - np.log(scale)


beta = SimpleNamespace(
    logpdf=_beta_logpdf,
    pdf=lambda x, a, b, loc=0.0, scale=1.0: np.exp(_beta_logpdf(x, a, b, loc, scale)),
    cdf=lambda x, a, b, loc=0.0, scale=1.0: betainc(a, b, (x - loc) / scale),
)


def _poisson_logpmf(k, mu, loc=0):
    k = k - loc
    return xlogy(k, mu) - gammaln(k + 1.0) - mu


poisson = SimpleNamespace(
    logpmf=_poisson_logpmf,
    pmf=lambda k, mu, loc=0: np.exp(_poisson_logpmf(k, mu, loc)),
    cdf=lambda k, mu, loc=0: gammaincc(np.floor(k - loc) + 1.0, mu),
)


def _dirichlet_logpdf(x, alpha):
    # components along the first axis of x, as scipy.stats.dirichlet
    a = np.reshape(alpha, (-1,) + (1,) * (np.ndim(x) - 1))
    lnB = np.sum(gammaln(alpha)) - gammaln(np.sum(alpha))
    return np.sum(xlogy(a - 1.0, x), axis=0) - lnB


dirichlet = SimpleNamespace(
    logpdf=_dirichlet_logpdf,
    pdf=lambda x, alpha: np.exp(_dirichlet_logpdf(x, alpha)),
)


def _mvn_logpdf(x, mean=None, cov=1.0, allow_singular=False):
    k = np.shape(x)[-1]
    d = x if mean is None else x - mean
    cov = cov * np.eye(k) if np.ndim(cov) == 0 else (np.diag(cov) if np.ndim(cov) == 1 else cov)
    L = np.linalg.cholesky(cov)
    sol = np.linalg.solve(L, np.swapaxes(np.reshape(d, (-1, k)), 0, 1))
    maha = np.sum(sol * sol, axis=0)
    logdet = 2.0 * np.sum(np.log(np.diagonal(L)))
    out = -0.5 * (k * _LOG_2PI + logdet + maha)
    return np.reshape(out, np.shape(x)[:-1])


multivariate_normal = SimpleNamespace(
    logpdf=_mvn_logpdf,
    pdf=lambda x, mean=None, cov=1.0, allow_singular=False: np.exp(_mvn_logpdf(x, mean, cov)),
)

__all__ = ["norm", "t", "gamma", "beta", "poisson", "dirichlet", "multivariate_normal"]
