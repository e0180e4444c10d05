"""The dynamic cache (`tg.jit`): what a cache hit costs, and the RNN workload.

D1 (tiny f, 4 elements, one `if` guard): a `tg.jit` hit (input signature + lookup +
replay with guard checks + result) against `tg.play` of the same tape, against the bare
interpreter replay that the hit path runs (`interpret.run` + `fill`: no signature, no
input checks), and against re-tracing every call. Overhead of a hit = jit - bare replay.
D2: the same for value and gradient (`tg.jit(tg.value_and_grad(f))`), and the Yota form
`tg.grad(f, x, dynamic=True)` against `tg.play` of the gradient tape it replays.
D3 (RNN): tanh RNN, 50 steps, hidden 64, batch 16, input 64: value and gradient w.r.t.
all weights through `tg.jit` (interpreted, and `compile=True`), re-tracing every call
(`tg.value_and_grad`), and JAX `jit` of the same function written against `jax.numpy`. See bench/README.md for how to run.
"""

import importlib.util

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.backends import interpret
from tapegrad.core import fill


def have(mod: str) -> bool:
    return importlib.util.find_spec(mod) is not None


def tiny(x):
    y = np.tanh(x)
    if np.sum(y) > 0:
        return np.sum(y * 2.0)
    return np.sum(y)


X = np.array([0.1, 0.2, 0.3, 0.4])
D1 = "D1 cache hit overhead: tiny f, 4 elements, 1 guard"
D2 = "D2 cache hit overhead: tiny value_and_grad, 4 elements, 1 guard"


def _bare(tape):
    return lambda x: fill(tape.out_tree, interpret.run(tape, [x]))


@pytest.mark.benchmark(group=D1)
def test_d1_jit_hit(benchmark):
    jf = tg.jit(tiny)  # compiles in the background: time the compiled hit
    jf(X)
    jf.wait()
    assert benchmark(jf, X) == tiny(X)
    assert jf.cache_info().misses == 1


@pytest.mark.skipif(not have("numba"), reason="numba not installed")
@pytest.mark.benchmark(group=D1)
def test_d1_compiled_run_direct(benchmark):
    """The same compiled tape called directly (no signature, no cache): the hit overhead
    is test_d1_jit_hit minus this."""
    jf = tg.jit(tiny)
    jf(X)
    jf.wait()
    ct = jf.cache.entries()[0].compiled
    assert benchmark(ct.run, [X])[0] == tiny(X)


def _jit_tape(f):
    jf = tg.jit(f)
    jf(X)
    return jf.tapes[0]  # baselines replay the very tape a hit replays


@pytest.mark.benchmark(group=D1)
def test_d1_play(benchmark):
    tape = _jit_tape(tiny)
    assert benchmark(tg.play, tape, X) == tiny(X)


@pytest.mark.benchmark(group=D1)
def test_d1_bare_replay(benchmark):
    tape = _jit_tape(tiny)
    assert benchmark(_bare(tape), X) == tiny(X)


@pytest.mark.benchmark(group=D1)
def test_d1_retrace(benchmark):
    assert benchmark(tg.trace, tiny, X)[0] == tiny(X)


@pytest.mark.benchmark(group=D1)
def test_d1_numpy(benchmark):
    assert benchmark(tiny, X) == tiny(X)


def _check_d2(out):
    val, g = out
    assert val == tiny(X)
    np.testing.assert_allclose(g, 2 * (1 - np.tanh(X) ** 2), rtol=1e-14)


@pytest.mark.benchmark(group=D2)
def test_d2_jit_hit(benchmark):
    jf = tg.jit(tg.value_and_grad(tiny))
    jf(X)
    _check_d2(benchmark(jf, X))


@pytest.mark.benchmark(group=D2)
def test_d2_play(benchmark):
    tape = _jit_tape(tg.value_and_grad(tiny))
    _check_d2(benchmark(tg.play, tape, X))


@pytest.mark.benchmark(group=D2)
def test_d2_bare_replay(benchmark):
    tape = _jit_tape(tg.value_and_grad(tiny))
    _check_d2(benchmark(_bare(tape), X))


@pytest.mark.benchmark(group=D2)
def test_d2_grad_dynamic_hit(benchmark):
    def run(x):
        val, g = tg.grad(tiny, x, dynamic=True)
        return val, g[0]

    run(X)
    _check_d2(benchmark(run, X))


@pytest.mark.benchmark(group=D2)
def test_d2_grad_dynamic_play(benchmark):
    """`tg.play` of the (optimised) tape that `grad(..., dynamic=True)` replays."""
    tape = tg.grad(tiny, X, dynamic=True)[1].tape

    def run(x):
        val, g = tg.play(tape, x)
        return val, g[0]

    _check_d2(benchmark(run, X))


@pytest.mark.benchmark(group=D2)
def test_d2_retrace(benchmark):
    _check_d2(benchmark(tg.value_and_grad(tiny), X))


# -- D3: RNN -------------------------------------------------------------------------------

D3 = "D3 tanh RNN 50 steps, hidden 64, batch 16: value + grads"
T, B, H, I = 50, 16, 64, 64


def make_loss(xp):
    def loss(p, xs):
        h = xp.zeros((B, H))
        for t in range(xs.shape[0]):
            h = xp.tanh(xs[t] @ p["Wx"] + h @ p["Wh"] + p["b"])
        return xp.sum((h @ p["Wo"]) ** 2) / B

    return loss


rnn_loss = make_loss(np)


@pytest.fixture
def rnn():
    r = np.random.default_rng(0)
    p = {"Wx": r.standard_normal((I, H)) * 0.1, "Wh": r.standard_normal((H, H)) * 0.1,
         "b": np.zeros(H), "Wo": r.standard_normal((H, 1)) * 0.1}
    return p, r.standard_normal((T, B, I))


def _ref(p, xs):
    val, g = tg.value_and_grad(rnn_loss)(p, xs)
    return val, g


def _check_rnn(out, p, xs, ref):
    val, g = out
    np.testing.assert_allclose(val, ref[0], rtol=1e-10)
    for k in p:
        np.testing.assert_allclose(np.asarray(g[k]), ref[1][k], rtol=1e-6, atol=1e-12)


@pytest.mark.benchmark(group=D3)
def test_d3_jit(benchmark, rnn):
    p, xs = rnn
    jf = tg.jit(tg.value_and_grad(rnn_loss), compile=False)  # the interpreted cache
    jf(p, xs)
    _check_rnn(benchmark(jf, p, xs), p, xs, _ref(p, xs))
    assert jf.cache_info().misses == 1


@pytest.mark.skipif(not have("numba"), reason="numba not installed")
@pytest.mark.benchmark(group=D3)
def test_d3_jit_compiled(benchmark, rnn):
    p, xs = rnn
    jf = tg.jit(tg.value_and_grad(rnn_loss), compile=True)
    jf(p, xs)
    jf.wait()
    _check_rnn(benchmark(jf, p, xs), p, xs, _ref(p, xs))
    assert jf.cache_info().misses == 1


@pytest.mark.benchmark(group=D3)
def test_d3_retrace(benchmark, rnn):
    p, xs = rnn
    _check_rnn(benchmark(tg.value_and_grad(rnn_loss), p, xs), p, xs, _ref(p, xs))


@pytest.mark.skipif(not have("jax"), reason="jax not installed")
@pytest.mark.benchmark(group=D3)
def test_d3_jax_jit(benchmark, rnn):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    p, xs = rnn
    f = jax.jit(jax.value_and_grad(make_loss(jnp)))
    jp = {k: jnp.asarray(v) for k, v in p.items()}
    jxs = jnp.asarray(xs)

    def run():
        val, g = f(jp, jxs)
        return jax.block_until_ready((val, g))

    run()
    _check_rnn(benchmark(run), p, xs, _ref(p, xs))
