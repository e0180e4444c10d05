"""tapegrad.scipy drop-ins (issue 6): values match SciPy, derivatives pass check_grads."""

import numpy as np
import pytest
import scipy.linalg as sl
import scipy.signal as ssig
import scipy.stats as ss

import tapegrad as tg
from tapegrad.scipy import integrate, linalg, signal, stats

x = np.array([0.3, 1.2, 2.5])
a = np.array([1.5, 2.0, 3.0])
p = np.array([0.2, 0.3, 0.5])
C = np.array([[2.0, 0.3, 0.1], [0.3, 1.0, 0.2], [0.1, 0.2, 1.5]])
X = np.random.default_rng(0).standard_normal((4, 3))


def test_values_match_scipy():
    np.testing.assert_allclose(stats.norm.logpdf(x, 0.5, 2.0), ss.norm.logpdf(x, 0.5, 2.0))
    np.testing.assert_allclose(stats.t.logpdf(x, 3.0, 0.5, 2.0), ss.t.logpdf(x, 3.0, 0.5, 2.0))
    np.testing.assert_allclose(stats.gamma.logpdf(x, 2.0, 0.1, 2.0), ss.gamma.logpdf(x, 2.0, 0.1, 2.0))
    np.testing.assert_allclose(stats.beta.logpdf(x / 3, 2.0, 3.0), ss.beta.logpdf(x / 3, 2.0, 3.0))
    k = np.array([0, 1, 3])
    np.testing.assert_allclose(stats.poisson.logpmf(k, 2.5), ss.poisson.logpmf(k, 2.5))
    np.testing.assert_allclose(stats.poisson.cdf(k, 2.5), ss.poisson.cdf(k, 2.5))
    np.testing.assert_allclose(stats.dirichlet.logpdf(p, a), ss.dirichlet.logpdf(p, a))
    np.testing.assert_allclose(stats.multivariate_normal.logpdf(X, x, C),
                               ss.multivariate_normal.logpdf(X, x, C))
    np.testing.assert_allclose(linalg.sqrtm(C), sl.sqrtm(C))
    for mode in ("full", "valid", "same"):
        got = tg.trace(lambda X: signal.convolve(X, C, mode=mode), X)[0]
        np.testing.assert_allclose(got, ssig.convolve(X, C, mode=mode), atol=1e-12)
    got = tg.trace(lambda A: linalg.solve_triangular(A, x, lower=True), C)[0]
    np.testing.assert_allclose(got, sl.solve_triangular(C, x, lower=True))


CASES = [
    ('norm', lambda x: stats.norm.logpdf(x, x[0], 2.0) + stats.norm.cdf(x) + stats.norm.pdf(x, 1.0, x[1]), x),
    ('t', lambda x: stats.t.logpdf(x, x[2], 0.5, x[1]) + stats.t.cdf(x, 3.0) + stats.t.pdf(x, 4.0), x),
    ('gamma', lambda x: stats.gamma.logpdf(x, x[1]) + stats.gamma.cdf(x, 2.0) + stats.gamma.pdf(x, 2.0, scale=x[2]), x),
    ('beta', lambda x: stats.beta.logpdf(x/3, x[1], x[2]) + stats.beta.cdf(x/3, 2., 3.)+ stats.beta.pdf(x/3, 2., 3.), x),
    ('poisson', lambda m: stats.poisson.logpmf(np.array([0,1,3]), m) + stats.poisson.cdf(np.array([0,1,3]), m) + stats.poisson.pmf(2, m), x),
    ('dirichlet', lambda a: stats.dirichlet.logpdf(p, a) + stats.dirichlet.pdf(p, a), a),
    ('dirichlet_x', lambda p: stats.dirichlet.logpdf(p, a), p),
    ('mvn', lambda m: stats.multivariate_normal.logpdf(X, m, C), x),
    ('mvn_cov', lambda L: stats.multivariate_normal.pdf(x, None, L @ L.T + np.eye(3)), C),
    ('solve_tri', lambda A: linalg.solve_triangular(A, x, lower=True) + linalg.solve_triangular(A, x, trans='T'), C),
    ('cholesky', lambda A: linalg.cholesky(A @ A.T + np.eye(3)), C),
    ('sqrtm', lambda A: linalg.sqrtm(A @ A.T + np.eye(3)), C),
    ('conv', lambda X: (signal.convolve(X, C, mode='valid'), signal.convolve(X[:3], C, mode='same')), X),
    ('conv_ker', lambda C: signal.convolve(X, C, mode='full'), C),
]


@pytest.mark.parametrize("name,f,arg", CASES, ids=[c[0] for c in CASES])
def test_check_grads_fwd_rev_order2(name, f, arg):
    tg.check_grads(f, modes=("fwd", "rev"), order=2)(arg)


def test_odeint_adjoint_gradients():
    def f(y, t, k):
        return -k * y + np.sin(t)

    y0, ts, k = np.array([1.0, 2.0]), np.linspace(0, 1, 4), 0.7

    def loss(y0, ts, k):
        return np.sum(integrate.odeint(f, y0, ts, (k,), rtol=1e-10, atol=1e-10) ** 2)

    tg.check_grads(loss, modes="rev", order=1, rtol=1e-4, atol=1e-6)(y0, ts, k)
    # closed form for y' = -k y (no forcing): d/dy0 of sum y(t_i)^2 = 2 y0 sum exp(-2 k t_i)
    g = tg.grad(lambda y0: np.sum(integrate.odeint(lambda y, t: -k * y, y0, ts, rtol=1e-10,
                                                   atol=1e-10) ** 2))(y0)
    np.testing.assert_allclose(g, 2 * y0 * np.sum(np.exp(-2 * k * ts)), rtol=1e-6)
