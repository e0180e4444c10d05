"""W1: value and all gradients of `sum(W @ x + b[:, None])`, W 128x784, x 784x100, float64.

tapegrad (trace + reverse pass on every call, and replay of the gradient tape) against
the same gradient written by hand in NumPy, HIPS autograd and JAX jit. Peers that are not
installed are skipped. Compare ratios within one run; see bench/README.md.
"""

import importlib.util

import numpy as np
import pytest

import tapegrad as tg


def have(mod: str) -> bool:
    return importlib.util.find_spec(mod) is not None


GROUP = "W1 sum(W @ x + b)  128x784 @ 784x100 f64"


def f(W, x, b):
    return np.sum(W @ x + b[:, None])


@pytest.fixture
def data():
    r = np.random.default_rng(0)
    return r.standard_normal((128, 784)), r.standard_normal((784, 100)), r.standard_normal(128)


def check(out, W, x, b):
    val, dW, dx, db = out
    np.testing.assert_allclose(val, f(W, x, b), rtol=1e-10)
    np.testing.assert_allclose(dW, np.broadcast_to(x.sum(axis=1), W.shape), rtol=1e-10)
    np.testing.assert_allclose(dx, np.broadcast_to(W.sum(axis=0)[:, None], x.shape), rtol=1e-10)
    np.testing.assert_allclose(db, np.full(128, 100.0))


def numpy_by_hand(W, x, b):
    val = np.sum(W @ x + b[:, None])
    g = np.ones((W.shape[0], x.shape[1]))
    return val, g @ x.T, W.T @ g, g.sum(axis=1)


def tapegrad_grad(W, x, b):
    val, g = tg.grad(f, W, x, b)
    return val, g[0], g[1], g[2]


@pytest.mark.benchmark(group=GROUP)
def test_numpy_by_hand(benchmark, data):
    check(benchmark(numpy_by_hand, *data), *data)


@pytest.mark.benchmark(group=GROUP)
def test_tapegrad_grad(benchmark, data):
    """Eager: trace, reverse pass and optimisation on every call."""
    check(benchmark(tapegrad_grad, *data), *data)


@pytest.mark.benchmark(group=GROUP)
def test_tapegrad_play(benchmark, data):
    """Replay the optimised gradient tape with the NumPy interpreter (no re-tracing)."""
    _, g = tg.grad(f, *data)
    out = benchmark(tg.play, g.tape, *data)
    val, (gW, gx, gb) = out
    check((val, gW, gx, gb), *data)


@pytest.mark.benchmark(group=GROUP)
def test_tapegrad_compiled(benchmark, data):
    if not hasattr(tg, "compile"):
        pytest.skip("tg.compile has not landed")
    _, g = tg.grad(f, *data)
    ctape = tg.compile(g.tape, wait=True)  # Numba compile (or disk-cache load) outside the timing
    tg.play(ctape, *data)
    val, (gW, gx, gb) = benchmark(tg.play, ctape, *data)
    check((val, gW, gx, gb), *data)


@pytest.mark.skipif(not have("autograd"), reason="HIPS autograd not installed")
@pytest.mark.benchmark(group=GROUP)
def test_autograd(benchmark, data):
    import autograd
    import autograd.numpy as anp

    vg = autograd.value_and_grad(lambda p: anp.sum(anp.dot(p[0], p[1]) + p[2][:, None]))

    def run(W, x, b):
        val, gs = vg((W, x, b))
        return (val, *gs)

    check(benchmark(run, *data), *data)


@pytest.mark.skipif(not have("jax"), reason="JAX not installed")
@pytest.mark.benchmark(group=GROUP)
def test_jax_jit(benchmark, data):
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    vg = jax.jit(jax.value_and_grad(lambda W, x, b: jnp.sum(W @ x + b[:, None]), argnums=(0, 1, 2)))
    jdata = [jnp.asarray(a) for a in data]

    def run(W, x, b):
        val, gs = vg(W, x, b)
        jax.block_until_ready(gs)
        return (val, *gs)

    run(*jdata)  # compile outside the timing
    out = benchmark(run, *jdata)
    check(tuple(np.asarray(o) for o in out), *data)


# -- per-op cost of eager tg.grad: 100 chained sin on 5 elements ---------------------------
# Every op is tiny, so this times what tapegrad spends per recorded op (trace, record,
# reverse pass), against HIPS autograd and the gradient by hand. extra_info: us per
# forward op (100 sins, one sum).

GROUP_OPS = "per-op cost: 100 chained sin, 5 elements"
N_SIN = 100


def chain(x, xp=np):
    for _ in range(N_SIN):
        x = xp.sin(x)
    return xp.sum(x)


def chain_by_hand(x):
    xs = [x]
    for _ in range(N_SIN):
        xs.append(np.sin(xs[-1]))
    g = np.ones_like(x)
    for v in reversed(xs[:-1]):
        g = g * np.cos(v)
    return np.sum(xs[-1]), g


@pytest.fixture
def small():
    return np.random.default_rng(1).standard_normal(5)


def check_chain(out, x):
    val, g = out
    want_val, want_g = chain_by_hand(x)
    np.testing.assert_allclose(val, want_val, rtol=1e-12)
    np.testing.assert_allclose(g, want_g, rtol=1e-10)


@pytest.mark.benchmark(group=GROUP_OPS)
def test_chain_numpy_by_hand(benchmark, small):
    check_chain(benchmark(chain_by_hand, small), small)


@pytest.mark.benchmark(group=GROUP_OPS)
def test_chain_tapegrad_grad(benchmark, small):
    """Eager Yota form: trace, reverse pass on values (g[0]) every call."""

    def run(x):
        val, g = tg.grad(chain, x)
        return val, g[0]

    check_chain(benchmark(run, small), small)
    _per_op(benchmark)


@pytest.mark.skipif(not have("autograd"), reason="HIPS autograd not installed")
@pytest.mark.benchmark(group=GROUP_OPS)
def test_chain_autograd(benchmark, small):
    import autograd
    import autograd.numpy as anp

    vg = autograd.value_and_grad(lambda x: chain(x, anp))
    check_chain(benchmark(vg, small), small)
    _per_op(benchmark)


def _per_op(benchmark):
    if benchmark.stats is not None:  # None when benchmarks are disabled (a plain test run)
        benchmark.extra_info["us_per_forward_op"] = benchmark.stats.stats.min * 1e6 / (N_SIN + 1)
