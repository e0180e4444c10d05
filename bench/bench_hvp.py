"""H1: Hessian-vector product of a small MLP loss (issue 6), float64.

MLP 10-32-1, tanh hidden layer, mean squared error over a batch of 64; the 385
parameters are one flat vector (unpacked by slicing and reshape inside the loss).
`tg.hessian_vector_product(loss)(theta, X, y, v)` (traces forward-over-reverse every call;
also under `tg.jit`, replaying the cached tape)
against JAX's `jvp(grad(loss))` (jit-compiled, and eager), HIPS autograd's
`hessian_vector_product`, all checked against `tg.hessian(loss)(theta) @ v`.
Peers that are not installed are skipped. Compare ratios within one run; see bench/README.md.
"""

import importlib.util

import numpy as np
import pytest

import tapegrad as tg

GROUP = "H1 hvp of MLP 10-32-1 loss, batch 64, 385 params f64"
D, H, B = 10, 32, 64
SIZES = [(D * H, (D, H)), (H, (H,)), (H, (H, 1)), (1, (1,))]


def have(mod: str) -> bool:
    return importlib.util.find_spec(mod) is not None


def unpack(theta):
    out, k = [], 0
    for n, shape in SIZES:
        out.append(theta[k:k + n].reshape(shape))
        k += n
    return out


def make_loss(np_):
    def loss(theta, X, y):
        W1, b1, W2, b2 = unpack(theta)
        h = np_.tanh(X @ W1 + b1)
        r = (h @ W2)[:, 0] + b2[0] - y
        return np_.mean(r * r)

    return loss


loss = make_loss(np)
N = sum(n for n, _ in SIZES)


@pytest.fixture(scope="module")
def data():
    r = np.random.default_rng(0)
    return (r.standard_normal(N) * 0.3, r.standard_normal(N), r.standard_normal((B, D)),
            r.standard_normal(B))


@pytest.fixture(scope="module")
def expected(data):
    theta, v, X, y = data
    return tg.hessian(loss)(theta, X, y) @ v


def test_tapegrad_hvp(benchmark, data, expected):
    benchmark.group = GROUP
    theta, v, X, y = data
    hvp = tg.hessian_vector_product(loss)
    out = benchmark(hvp, theta, X, y, v)  # autograd's order: the vector last
    np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-12)


def test_tapegrad_hvp_jit(benchmark, data, expected):
    """`tg.jit` of the hvp: the forward-over-reverse tape replayed from the cache."""
    benchmark.group = GROUP
    theta, v, X, y = data
    hvp = tg.jit(tg.hessian_vector_product(loss))
    hvp(theta, X, y, v)  # trace outside the timing
    out = benchmark(hvp, theta, X, y, v)
    np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-12)


def _jax_hvp():
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    jloss = make_loss(jnp)

    def hvp(theta, v, X, y):
        return jax.jvp(lambda t: jax.grad(jloss)(t, X, y), (theta,), (v,))[1]

    return jax, hvp


@pytest.mark.skipif(not have("jax"), reason="jax not installed")
def test_jax_jvp_grad_jit(benchmark, data, expected):
    benchmark.group = GROUP
    jax, hvp = _jax_hvp()
    f = jax.jit(hvp)
    args = [jax.numpy.asarray(a) for a in data]
    f(*args).block_until_ready()  # compile outside the timing
    out = benchmark(lambda: f(*args).block_until_ready())
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.skipif(not have("jax"), reason="jax not installed")
def test_jax_jvp_grad_eager(benchmark, data, expected):
    benchmark.group = GROUP
    jax, hvp = _jax_hvp()
    args = [jax.numpy.asarray(a) for a in data]
    out = benchmark(lambda: hvp(*args).block_until_ready())
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.skipif(not have("autograd"), reason="autograd not installed")
def test_autograd_hvp(benchmark, data, expected):
    import autograd
    import autograd.numpy as anp

    benchmark.group = GROUP
    theta, v, X, y = data
    hvp = autograd.hessian_vector_product(make_loss(anp))
    out = benchmark(hvp, theta, X, y, v)  # autograd's order: the vector last
    np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-12)
