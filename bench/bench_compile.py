"""Compiled tapes (`tg.compile`, Numba) against the interpreter and peers, W1-W6.

Each workload computes the value and all gradients per call:
W1 `sum(W @ x + b[:, None])`, W 128x784, x 784x100, float64;
W2 `sum(1/(1+exp(-x)))` on 5 elements;
W3 MLP 784-256-10, tanh, logsumexp cross-entropy, batch 128, float32 (gradients of the
   four parameters);
W4 `sum(tanh(x)*exp(-x**2) + sin(x)*x)` on 1e6 elements;
W5 tanh RNN, 50 steps, hidden 64, input 32, batch 16 (gradients of the three weights);
W6 100 chained `sin` on 5 elements.
Contenders: `tg.play` of the gradient tape (interpreter), `tg.play` of `tg.compile(tape)`
(kernels compiled or loaded outside the timing), NumPy by hand, Numba by hand (W2, W4,
W6), HIPS autograd and JAX `jit` (skipped when not installed). `test_overhead_*`: the
fixed cost of `tg.play(ctape, x)`; `test_cold_compile_*`: kernels and compile seconds of
W3/W5 in an empty cache directory (recorded in extra_info, one round);
`test_interleaved_ratios[W1..W6]`: hand, Numba by hand, compiled, tg.jit and JAX timed in turns, the goal ratios
in extra_info (`-s` prints them: trust these over ratios of sequential benchmarks on a
shared machine). `ct.stats()` in
extra_info counts loop regions, blocks (small matmuls + loop in one kernel) and kernels.
Run: see bench/README.md (one thread, `--benchmark-enable`).
"""

import importlib.util
import os
import tempfile

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.passes import optimize


def have(mod: str) -> bool:
    return importlib.util.find_spec(mod) is not None


R = np.random.default_rng(0)


# -- workloads, written once against a numpy-like module `xp` -------------------------


def w1(xp):
    return lambda W, x, b: xp.sum(xp.dot(W, x) + b[:, None])


def w2(xp):
    return lambda x: xp.sum(1 / (1 + xp.exp(-x)))


def w3(xp):
    def loss(p, x, y):
        W1, b1, W2, b2 = p
        h = xp.tanh(xp.dot(x, W1) + b1)
        z = xp.dot(h, W2) + b2
        m = xp.max(z, axis=1, keepdims=True)
        lse = m + xp.log(xp.sum(xp.exp(z - m), axis=1, keepdims=True))
        return -xp.sum(y * (z - lse)) / x.shape[0]
    return loss


def w4(xp):
    return lambda x: xp.sum(xp.tanh(x) * xp.exp(-x ** 2) + xp.sin(x) * x)


def w5(xp):
    def loss(p, xs):
        Wx, Wh, b = p
        h = xp.zeros((xs.shape[1], Wh.shape[0]), dtype=xs.dtype)
        for t in range(xs.shape[0]):
            h = xp.tanh(xp.dot(xs[t], Wx) + xp.dot(h, Wh) + b)
        return xp.sum(h * h)
    return loss


def w6(xp):
    def f(x):
        for _ in range(100):
            x = xp.sin(x)
        return xp.sum(x)
    return f


def _data():
    f32 = np.float32
    return {
        "W1": (w1, [R.standard_normal((128, 784)), R.standard_normal((784, 100)),
                    R.standard_normal(128)], None),
        "W2": (w2, [R.standard_normal(5)], None),
        "W3": (w3, [(R.standard_normal((784, 256)).astype(f32) * f32(0.05), np.zeros(256, f32),
                     R.standard_normal((256, 10)).astype(f32) * f32(0.1), np.zeros(10, f32)),
                    R.standard_normal((128, 784)).astype(f32),
                    np.eye(10, dtype=f32)[R.integers(0, 10, 128)]], 0),
        "W4": (w4, [R.standard_normal(1_000_000)], None),
        "W5": (w5, [(R.standard_normal((32, 64)) * 0.2, R.standard_normal((64, 64)) * 0.1,
                     np.zeros(64)), R.standard_normal((50, 16, 32))], 0),
        "W6": (w6, [R.standard_normal(5)], None),
    }


DATA = _data()
GROUPS = {"W1": "W1 sum(W@x+b) 128x784x100 f64", "W2": "W2 logistic sum, 5 elements",
          "W3": "W3 MLP 784-256-10 f32 batch 128", "W4": "W4 tanh*exp+sin*x, 1e6 f64",
          "W5": "W5 tanh RNN 50x(16x32 -> 64)", "W6": "W6 100 chained sin, 5 elements"}
TOL = {"W3": 2e-4}


def flat(out):
    """(value, grads...) -> list of arrays, whatever nesting the contender returns."""
    res = []

    def walk(o):
        if isinstance(o, (tuple, list)):
            for x in o:
                walk(x)
        elif isinstance(o, dict):
            for x in o.values():
                walk(x)
        else:
            res.append(np.asarray(o, dtype=np.float64))
    walk(out)
    return res


_REF = {}


def check(w, out):
    ref = _REF.setdefault(w, flat(HAND[w](*DATA[w][1])))
    got = flat(out)
    assert len(got) == len(ref), (len(got), len(ref))
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=TOL.get(w, 1e-9), atol=TOL.get(w, 1e-9))


def argnums(w):
    """What `value_and_grad` differentiates for workload `w`: every argument, or its argnum."""
    make, args, argnum = DATA[w]
    return tuple(range(len(args))) if argnum is None else argnum


def tape_of(w):
    """The gradient tape: all arguments (W1, W2, W4, W6) or the parameters only."""
    make, args, argnum = DATA[w]
    if argnum is None:
        return tg.grad(make(np), *args)[1].tape
    return optimize(tg.trace(tg.value_and_grad(make(np)), *args)[1])


# -- NumPy by hand ---------------------------------------------------------------------


def hand_w1(W, x, b):
    G = np.ones((W.shape[0], x.shape[1]))
    return np.sum(W @ x + b[:, None]), G @ x.T, W.T @ G, G.sum(1)


def hand_w2(x):
    s = 1 / (1 + np.exp(-x))
    return np.sum(s), s * (1 - s)


def hand_w3(p, x, y):
    W1, b1, W2, b2 = p
    h = np.tanh(x @ W1 + b1)
    z = h @ W2 + b2
    m = np.max(z, axis=1, keepdims=True)
    e = np.exp(z - m)
    se = np.sum(e, axis=1, keepdims=True)
    n = x.shape[0]
    val = -np.sum(y * (z - m - np.log(se))) / n
    dz = (e / se * y.sum(1, keepdims=True) - y) / n
    dh = (dz @ W2.T) * (1 - h * h)
    return val, (x.T @ dh, dh.sum(0), h.T @ dz, dz.sum(0))


def hand_w4(x):
    t, e, s = np.tanh(x), np.exp(-x ** 2), np.sin(x)
    val = np.sum(t * e + s * x)
    return val, (1 - t * t) * e - 2 * x * t * e + np.cos(x) * x + s


def hand_w5(p, xs):
    Wx, Wh, b = p
    hs = [np.zeros((xs.shape[1], Wh.shape[0]))]
    for t in range(xs.shape[0]):
        hs.append(np.tanh(xs[t] @ Wx + hs[-1] @ Wh + b))
    h = hs[-1]
    gh = 2 * h
    gWx, gWh, gb = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    for t in range(xs.shape[0] - 1, -1, -1):
        ga = gh * (1 - hs[t + 1] ** 2)
        gWx += xs[t].T @ ga
        gWh += hs[t].T @ ga
        gb += ga.sum(0)
        gh = ga @ Wh.T
    return np.sum(h * h), (gWx, gWh, gb)


def hand_w6(x):
    ys = [x]
    for _ in range(100):
        ys.append(np.sin(ys[-1]))
    g = np.ones_like(x)
    for k in range(100, 0, -1):
        g = g * np.cos(ys[k - 1])
    return np.sum(ys[-1]), g


HAND = {"W1": hand_w1, "W2": hand_w2, "W3": hand_w3, "W4": hand_w4, "W5": hand_w5, "W6": hand_w6}


# -- Numba by hand (W2, W4, W6) ------------------------------------------------------------


def _numba_hand():
    import numba

    @numba.njit(cache=True)
    def nb_w2(x):
        g = np.empty_like(x)
        s = 0.0
        for i in range(x.shape[0]):
            p = 1.0 / (1.0 + np.exp(-x[i]))
            s += p
            g[i] = p * (1.0 - p)
        return s, g

    @numba.njit(cache=True)
    def nb_w4(x):
        g = np.empty_like(x)
        s = 0.0
        for i in range(x.shape[0]):
            xi = x[i]
            t, e, si = np.tanh(xi), np.exp(-xi * xi), np.sin(xi)
            s += t * e + si * xi
            g[i] = (1 - t * t) * e - 2 * xi * t * e + np.cos(xi) * xi + si
        return s, g

    @numba.njit(cache=True)
    def nb_w6(x):
        g = np.empty_like(x)
        s = 0.0
        for i in range(x.shape[0]):
            y, d = x[i], 1.0
            for _ in range(100):
                d *= np.cos(y)
                y = np.sin(y)
            s += y
            g[i] = d
        return s, g

    return {"W2": nb_w2, "W4": nb_w4, "W6": nb_w6}


# -- contenders ------------------------------------------------------------------------------

WS = list(DATA)


@pytest.mark.parametrize("w", WS)
def test_numpy_hand(benchmark, w):
    benchmark.group = GROUPS[w]
    check(w, benchmark(HAND[w], *DATA[w][1]))


@pytest.mark.parametrize("w", WS)
def test_tapegrad_play(benchmark, w):
    benchmark.group = GROUPS[w]
    tape = tape_of(w)
    check(w, benchmark(tg.play, tape, *DATA[w][1]))


@pytest.mark.parametrize("w", WS)
def test_tapegrad_compiled(benchmark, w):
    benchmark.group = GROUPS[w]
    ct = tg.compile(tape_of(w), wait=True)
    tg.play(ct, *DATA[w][1])
    benchmark.extra_info.update(ct.stats())
    check(w, benchmark(tg.play, ct, *DATA[w][1]))


@pytest.mark.parametrize("w", ["W2", "W4", "W6"])
def test_numba_hand(benchmark, w):
    benchmark.group = GROUPS[w]
    fn = _numba_hand()[w]
    fn(*DATA[w][1])
    check(w, benchmark(fn, *DATA[w][1]))


@pytest.mark.skipif(not have("autograd"), reason="HIPS autograd not installed")
@pytest.mark.parametrize("w", WS)
def test_autograd(benchmark, w):
    import autograd
    import autograd.numpy as anp

    benchmark.group = GROUPS[w]
    make, args, argnum = DATA[w]
    n = len(args)
    vg = autograd.value_and_grad(lambda *a: make(anp)(*a), argnum=tuple(range(n))
                                 if argnum is None else argnum) if n > 1 or argnum is not None \
        else autograd.value_and_grad(make(anp))
    check(w, benchmark(vg, *args))


@pytest.mark.skipif(not have("jax"), reason="JAX not installed")
@pytest.mark.parametrize("w", WS)
def test_jax_jit(benchmark, w):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    benchmark.group = GROUPS[w]
    make, args, argnum = DATA[w]
    argnums = tuple(range(len(args))) if argnum is None else argnum
    f = jax.jit(jax.value_and_grad(make(jnp), argnums=argnums))
    jargs = jax.tree_util.tree_map(jnp.asarray, args)

    def run(*a):
        out = f(*a)
        jax.block_until_ready(out)
        return out
    run(*jargs)
    out = benchmark(run, *jargs)
    check(w, jax.tree_util.tree_map(np.asarray, out))


# -- fixed overhead and cold compile ---------------------------------------------------------

OVERHEAD = "overhead: play(ctape, x) on tiny tapes"


def test_overhead_identity(benchmark):
    """Fixed cost of the compiled call path (signature check, driver, result)."""
    benchmark.group = OVERHEAD
    x = np.ones(1)
    ct = tg.compile(tg.trace(lambda x: x, x)[1], wait=True)
    assert benchmark(tg.play, ct, x) is x


def test_overhead_one_kernel(benchmark):
    """The same plus one fused kernel call (W2's whole gradient is one kernel)."""
    benchmark.group = OVERHEAD
    ct = tg.compile(tape_of("W2"), wait=True)
    benchmark.extra_info.update(ct.stats())
    check("W2", benchmark(tg.play, ct, *DATA["W2"][1]))


def test_overhead_kernel_direct(benchmark):
    """The W2 kernel called directly (no tapegrad): the floor."""
    benchmark.group = OVERHEAD
    ct = tg.compile(tape_of("W2"), wait=True)
    (k,) = {k.key: k for k in ct.kernels.values()}.values()
    x = DATA["W2"][1][0]
    k.dispatcher(x)
    benchmark(k.dispatcher, x)


@pytest.mark.parametrize("w", ["W3", "W5"])
def test_cold_compile(benchmark, w, monkeypatch):
    """Kernels compiled for W3/W5 in an empty cache directory and the seconds it took
    (fresh kernels: tg's in-memory registry is bypassed by a new directory name)."""
    from tapegrad.backends import numba as nbk

    benchmark.group = "cold compile (one round)"
    tape = tape_of(w)
    with tempfile.TemporaryDirectory() as d:
        monkeypatch.setenv("TAPEGRAD_CACHE_DIR", d)
        saved = dict(nbk._KERNELS)
        nbk._KERNELS.clear()
        nbk._VERSIONS = nbk._versions() + "|cold" + os.path.basename(d)
        try:
            ct = benchmark.pedantic(lambda: tg.compile(tape, wait=True), rounds=1, iterations=1)
        finally:
            nbk._KERNELS.update(saved)
            nbk._VERSIONS = None
        benchmark.extra_info.update(ct.stats())
        check(w, tg.play(ct, *DATA[w][1]))


# -- interleaved ratios: one round-robin run, robust to a shared machine's load drifting ------


@pytest.mark.parametrize("w", WS)
def test_interleaved_ratios(benchmark, w):
    """NumPy by hand, Numba by hand (W2/W4/W6), the compiled tape, `tg.jit` and JAX jit
    (when installed) timed in turns for ~6 s (`TG_BENCH_SECONDS`): the goal ratios
    compiled/hand, compiled/numba and compiled/JAX (and jit/...), as medians and mins of
    per-round times, in extra_info (and printed with -s). Sequential benchmarks above can
    each land in a different load phase of a shared machine; these cannot. A round times
    `n` calls of each contender, `n` chosen so that NumPy by hand takes ~200 us: the
    timer's own cost stays out of W2/W6's microsecond calls."""
    import time

    benchmark.group = "interleaved ratios (one run)"
    make, args, argnum = DATA[w]
    ct = tg.compile(tape_of(w), wait=True)
    fns = {"hand": lambda: HAND[w](*args)}
    if w in ("W2", "W4", "W6"):
        nb = _numba_hand()[w]
        fns["numba"] = lambda: nb(*args)
    fns["compiled"] = lambda: tg.play(ct, *args)
    jf = tg.jit(tg.value_and_grad(make(np), argnum=argnums(w)), compile=True)
    jf(*args)
    jf.wait()
    fns["jit"] = lambda: jf(*args)
    if have("jax"):
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
        f = jax.jit(jax.value_and_grad(make(jnp), argnums=argnums(w)))
        jargs = jax.tree_util.tree_map(jnp.asarray, args)
        fns["jax"] = lambda: jax.block_until_ready(f(*jargs))
    for fn in fns.values():
        fn()
    check(w, fns["compiled"]())
    check(w, fns["jit"]())
    t0 = time.perf_counter()
    for _ in range(10):
        fns["hand"]()
    n = max(1, int(200e-6 / max((time.perf_counter() - t0) / 10, 1e-9)))
    times = {k: [] for k in fns}
    cpu = dict.fromkeys(fns, 0.0)

    def rounds():
        end = time.perf_counter() + float(os.environ.get("TG_BENCH_SECONDS", "6"))
        r = range(n)
        while time.perf_counter() < end:
            for k, fn in fns.items():
                c0 = time.process_time()
                t0 = time.perf_counter()
                for _ in r:
                    fn()
                times[k].append((time.perf_counter() - t0) / n)
                cpu[k] += time.process_time() - c0

    benchmark.pedantic(rounds, rounds=1, iterations=1)
    info = {f"{k}_median_us": float(np.median(t) * 1e6) for k, t in times.items()}
    info.update({f"{k}_min_us": float(np.min(t) * 1e6) for k, t in times.items()})
    for ours in ("compiled", "jit"):
        for other in [k for k in fns if k not in ("compiled", "jit")]:
            info[f"{ours}/{other} median"] = float(np.median(times[ours]) / np.median(times[other]))
            info[f"{ours}/{other} min"] = float(np.min(times[ours]) / np.min(times[other]))
    # CPU-seconds per wall-second of each contender: above ~1.1 means it ran on more
    # than one core (bench/conftest.py pins the process to one CPU so that none does)
    info.update({f"{k}_cpu_per_wall": float(cpu[k] / (np.sum(t) * n)) for k, t in times.items()})
    info["rounds"] = len(times["hand"])
    info["calls_per_round"] = n
    benchmark.extra_info.update(info)
    print(w, {k: round(v, 3) for k, v in info.items()})
