"""tapegrad's four ways of running a gradient against its peers, W1-W5, one group each.

Every contender computes the value and all gradients per call (W3/W5: the parameters'):
W1 `sum(W @ x + b[:, None])`, W 128x784, x 784x100, float64;
W2 `sum(1/(1+exp(-x)))` on 5 elements (per-call overhead);
W3 MLP 784-256-10, tanh, logsumexp cross-entropy, batch 128, float32;
W4 `sum(tanh(x)*exp(-x**2) + sin(x)*x)` on 1e6 elements;
W5 tanh RNN, 50 steps, hidden 64, input 32, batch 16.
The workloads, their data, NumPy-by-hand gradients and the result check are those of
`bench_compile.py` (imported, so both files time the same functions).

Contenders: `tg.grad` (eager: trace + reverse pass + passes every call), `tg.play` of the
optimised gradient tape (interpreter), `tg.play(tg.compile(tape, wait=True))` (Numba),
`tg.jit(tg.value_and_grad(f))` (dynamic cache; a hit replays), NumPy by hand, HIPS
autograd, JAX `jit(value_and_grad)` and PyTorch eager (`torch.autograd.grad`); peers not
installed are skipped. `python bench/report.py bench.json` makes the table and chart.
"""

import importlib.util

import numpy as np
import pytest

import tapegrad as tg
from bench_compile import DATA, HAND, argnums, check, tape_of

WS = ["W1", "W2", "W3", "W4", "W5"]
GROUPS = {"W1": "W1 linear sum(W@x+b), 128x784 @ 784x100 f64",
          "W2": "W2 logistic, 5 elements",
          "W3": "W3 MLP step 784-256-10 f32, batch 128",
          "W4": "W4 elementwise chain, 1e6 f64",
          "W5": "W5 tanh RNN, 50 steps, hidden 64, batch 16"}


def have(mod: str) -> bool:
    return importlib.util.find_spec(mod) is not None


@pytest.mark.parametrize("w", WS)
def test_numpy_hand(benchmark, w):
    benchmark.group = GROUPS[w]
    check(w, benchmark(HAND[w], *DATA[w][1]))


@pytest.mark.parametrize("w", WS)
def test_tapegrad_grad(benchmark, w):
    """Eager Yota form: every call traces, runs the reverse pass and optimises."""
    benchmark.group = GROUPS[w]
    make, args, argnum = DATA[w]
    f, idx = make(np), (argnum,) if argnum is not None else argnums(w)

    def run(*a):
        val, g = tg.grad(f, *a)
        grads = [g[i] for i in idx]  # lazy per argument: only these are computed
        if argnum is not None:  # W3/W5: the params tuple's dict, in leaf order
            grads = [grads[0][(k,)] for k in range(len(a[0]))]
        return val, grads

    check(w, benchmark(run, *args))


@pytest.mark.parametrize("w", WS)
def test_tapegrad_play(benchmark, w):
    """Replay of the optimised gradient tape by the NumPy interpreter."""
    benchmark.group = GROUPS[w]
    tape = tape_of(w)
    check(w, benchmark(tg.play, tape, *DATA[w][1]))


@pytest.mark.parametrize("w", WS)
def test_tapegrad_compiled(benchmark, w):
    """`tg.play` of `tg.compile(tape, wait=True)` (Numba; compiled outside the timing)."""
    benchmark.group = GROUPS[w]
    ct = tg.compile(tape_of(w), wait=True)
    tg.play(ct, *DATA[w][1])
    check(w, benchmark(tg.play, ct, *DATA[w][1]))


@pytest.mark.parametrize("w", WS)
def test_tapegrad_jit(benchmark, w):
    """`tg.jit(tg.value_and_grad(f))`: signature lookup + guarded compiled replay per call."""
    benchmark.group = GROUPS[w]
    make, args, argnum = DATA[w]
    jf = tg.jit(tg.value_and_grad(make(np), argnum=argnums(w)))
    jf(*args)  # trace outside the timing
    jf.wait()  # tg.jit compiles in the background: time the compiled replay
    check(w, benchmark(jf, *args))
    info = jf.cache_info()
    benchmark.extra_info.update(hits=info.hits, misses=info.misses)
    assert info.misses == 1


@pytest.mark.skipif(not have("autograd"), reason="HIPS autograd not installed")
@pytest.mark.parametrize("w", WS)
def test_autograd(benchmark, w):
    import autograd
    import autograd.numpy as anp

    benchmark.group = GROUPS[w]
    make, args, argnum = DATA[w]
    an = argnums(w)
    vg = autograd.value_and_grad(make(anp), argnum=an if an != (0,) else 0)
    check(w, benchmark(vg, *args))


@pytest.mark.skipif(not have("jax"), reason="JAX not installed")
@pytest.mark.parametrize("w", WS)
def test_jax_jit(benchmark, w):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    benchmark.group = GROUPS[w]
    make, args, argnum = DATA[w]
    f = jax.jit(jax.value_and_grad(make(jnp), argnums=argnums(w)))
    jargs = jax.tree_util.tree_map(jnp.asarray, args)

    def run(*a):
        return jax.block_until_ready(f(*a))

    run(*jargs)  # compile outside the timing
    check(w, jax.tree_util.tree_map(np.asarray, benchmark(run, *jargs)))


# -- PyTorch eager ---------------------------------------------------------------------


def _torch_losses(torch):
    def w1(W, x, b):
        return torch.sum(W @ x + b[:, None])

    def w2(x):
        return torch.sum(1 / (1 + torch.exp(-x)))

    def w3(W1, b1, W2, b2, x, y):
        z = torch.tanh(x @ W1 + b1) @ W2 + b2
        return -torch.sum(y * torch.log_softmax(z, dim=1)) / x.shape[0]

    def w4(x):
        return torch.sum(torch.tanh(x) * torch.exp(-x ** 2) + torch.sin(x) * x)

    def w5(Wx, Wh, b, xs):
        h = torch.zeros((xs.shape[1], Wh.shape[0]), dtype=xs.dtype)
        for t in range(xs.shape[0]):
            h = torch.tanh(xs[t] @ Wx + h @ Wh + b)
        return torch.sum(h * h)

    return {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5}


@pytest.mark.skipif(not have("torch"), reason="PyTorch not installed")
@pytest.mark.parametrize("w", WS)
def test_torch_eager(benchmark, w):
    import torch

    torch.set_num_threads(1)
    benchmark.group = GROUPS[w]
    loss = _torch_losses(torch)[w]
    make, args, argnum = DATA[w]
    flat = list(args[0]) + list(args[1:]) if argnum == 0 else list(args)
    n_diff = len(args[0]) if argnum == 0 else len(args)

    def run(*a):
        ts = [torch.from_numpy(x) for x in a]
        for t in ts[:n_diff]:
            t.requires_grad_(True)
        val = loss(*ts)
        grads = torch.autograd.grad(val, ts[:n_diff])
        return val.item(), [g.numpy() for g in grads]

    check(w, benchmark(run, *flat))
