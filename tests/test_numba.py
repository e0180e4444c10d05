"""Numba backend: compiled tapes agree with the interpreter, source snapshot, disk cache.

All tests share one kernel cache directory (tests/.numba_cache, git-ignored) and small
shapes, so kernels compile once per machine and the suite stays quick on 2 cores.
"""

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import tree

CACHE = os.environ["TAPEGRAD_CACHE_DIR"]  # shared by the suite: see conftest.py


def agree(tape, *args):
    """play(compile(tape)) == play(tape): same structure, dtypes, shapes; values to 1e-12
    (float64) or 1e-5 (float32). Returns the compiled tape."""
    ct = tg.compile(tape, wait=True)
    want = tg.play(tape, *args)
    got = tg.play(ct, *args)
    wp, wl, wt = tree.flatten(want)
    gp, gl, gt = tree.flatten(got)
    assert wt == gt and wp == gp
    assert wl, "no outputs compared"
    for w, g in zip(wl, gl):
        assert type(w) is type(g) or (np.ndim(w) == 0 and np.ndim(g) == 0), (type(w), type(g))
        w, g = np.asarray(w), np.asarray(g)
        assert w.dtype == g.dtype and w.shape == g.shape
        tol = 1e-5 if w.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)
    return ct


def gtape(f, *args):
    return tg.grad(f, *args)[1].tape


def vg_tape(f, x):
    """An unoptimised gradient tape: value_and_grad traced as a function."""
    return tg.trace(tg.value_and_grad(f), x)[1]


rng = np.random.default_rng(0)


def logistic(x):
    return np.sum(1 / (1 + np.exp(-x)))


def logreg(w, b, X, y):
    p = 1 / (1 + np.exp(-(X @ w + b)))
    return -np.sum(np.log(p * y + (1 - p) * (1 - y)))


def mlp(W1, b1, W2, b2, x, y):
    h = np.tanh(x @ W1 + b1)
    z = h @ W2 + b2
    m = np.max(z, axis=1, keepdims=True)
    lse = m + np.log(np.sum(np.exp(z - m), axis=1, keepdims=True))
    return -np.sum(y * (z - lse)) / x.shape[0]


def mlp_args(dtype, n=6, d=5, h=4, k=3):
    return [rng.standard_normal((d, h)).astype(dtype), rng.standard_normal(h).astype(dtype),
            rng.standard_normal((h, k)).astype(dtype), rng.standard_normal(k).astype(dtype),
            rng.standard_normal((n, d)).astype(dtype),
            np.eye(k, dtype=dtype)[rng.integers(0, k, n)]]


def test_logistic_one_kernel():
    x = rng.standard_normal(5)
    ct = agree(gtape(logistic, x), x)
    assert ct.stats()["loop_regions"] == 1  # forward, sum and backward: one loop
    val, (g,) = tg.play(ct, np.zeros(5))
    assert val == 2.5 and np.allclose(g, 0.25)


def test_logreg():
    args = [rng.standard_normal(3), 0.5, rng.standard_normal((7, 3)), (rng.random(7) > 0.5) * 1.0]
    agree(gtape(logreg, *args), *args)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mlp(dtype):
    args = mlp_args(dtype)
    ct = agree(gtape(mlp, *args), *args)
    assert ct.stats()["loop_regions"] >= 2
    args2 = mlp_args(dtype)
    agree(ct.tape, *args2)


def test_broadcasting():
    def f(x, y, b):
        return np.sum(np.tanh(x[:, None] * y[None, :] + b) * 0.5)

    args = rng.standard_normal(4), rng.standard_normal(3), rng.standard_normal((1, 3))
    agree(gtape(f, *args), *args)


def test_reductions_axis_keepdims():
    def f(x):
        a = np.sum(x * np.sum(x, axis=0, keepdims=True))
        b = np.sum(np.mean(x, axis=1) ** 2)
        c = np.sum(np.exp(x), axis=-1)
        return a + b + np.sum(c * c) + np.max(x)

    x = rng.standard_normal((4, 3))
    agree(gtape(f, x), x)


def test_indexing_concatenate_where():
    idx = np.array([0, 2, 2, 3])

    def f(x):
        a = np.sum(x[idx] ** 2) + np.sum(x[1:3] * 2.0)
        c = np.concatenate([x, np.sin(x)])
        return a + np.sum(c * c) + np.sum(np.where(x > 0, x ** 3, -x))

    x = rng.standard_normal(5)
    agree(gtape(f, x), x)


def test_float32_constants_stay_float32():
    def f(x):
        return np.sum(np.exp(x * 2.0) + 1.5 / (x * x + 1))

    x = rng.standard_normal(6).astype(np.float32)
    ct = agree(gtape(f, x), x)
    assert "np.float32(2.0)" in ct.source
    val, (g,) = tg.play(ct, x)
    assert g.dtype == np.float32


def test_int_argument_and_mixed_dtypes():
    def f(x, n, k):
        return np.sum(x * n + k) * 0.5

    args = rng.standard_normal(4), np.arange(4), 3
    agree(gtape(f, *args), *args)


def test_trace_tape_structured_args():
    def f(p, x):
        return {"y": np.tanh(p["w"] * x + p["b"]), "s": np.sum(x * x)}

    p = {"w": rng.standard_normal(3), "b": rng.standard_normal(3)}
    x = rng.standard_normal(3)
    _, tape = tg.trace(f, p, x)
    agree(tape, p, x)


def test_guards_checked():
    def f(x):
        if np.sum(x) > 0:
            return np.sum(np.sin(x) * x)
        return np.sum(np.cos(x) * x)

    x = np.abs(rng.standard_normal(4))
    ct = agree(gtape(f, x), x)
    with pytest.raises(tg.GuardError):
        tg.play(ct, -x)


def test_bad_input_falls_back_or_raises():
    x = rng.standard_normal(5)
    ct = tg.compile(gtape(logistic, x), wait=True)
    with pytest.raises(ValueError, match="shape"):
        tg.play(ct, np.ones(4))
    with pytest.raises(ValueError, match="dtype"):
        tg.play(ct, np.ones(5, np.float32))
    strided = np.arange(10.0)[::2]  # not C-contiguous: the interpreter runs it
    np.testing.assert_allclose(tg.play(ct, strided)[1][0], tg.play(ct.tape, strided)[1][0])


def test_compile_returns_before_kernels_are_ready():
    x = rng.standard_normal(5)

    def f(x):
        return np.sum(np.cos(x) * np.cos(x) - x)

    ct = tg.compile(gtape(f, x))  # background: first calls may run interpreted
    v0, (g0,) = tg.play(ct, x)
    ct.wait()
    assert ct.stats()["ready"]
    v1, (g1,) = tg.play(ct, x)
    assert abs(v0 - v1) < 1e-12 and np.allclose(g0, g1, rtol=1e-12)


def test_large_transcendental_region_uses_numpy():
    def f(x):  # mostly transcendental: NumPy's SIMD tanh wins over a scalar-libm loop; the
        return np.sum(np.sin(np.tanh(x)))  # sin/cos stay in the loop, vectorised (_tg_sin)

    def g(x):  # W4: tanh and exp go to NumPy's SIMD loops, the rest is fused around them
        return np.sum(np.tanh(x) * np.exp(-x ** 2) + np.sin(x) * x)

    x = rng.standard_normal(1 << 15)
    ct = agree(vg_tape(f, x), x)
    assert "NumPy SIMD" in ct.source and "_tg_cos(" in ct.source
    ct = agree(vg_tape(g, x), x)
    drv = ct.source.split("\n\n\n")[0]
    assert "np.tanh(v1)  # NumPy SIMD loop" in drv and "np.exp(" in drv
    assert "np.sin(" not in drv  # float64 sin/cos: NumPy has no SIMD loop here, stays fused
    assert ct.stats()["loop_regions"] == 2 and "x * x" not in ct.source
    assert "np.power" not in ct.source  # x ** 2 is a multiply in the loop
    small = rng.standard_normal(16)  # 16 tanh: a kernel call is cheaper than a split
    ct = agree(vg_tape(g, small), small)
    assert ct.stats()["loop_regions"] == 1 and "np.tanh" not in ct.source.split("\n\n\n")[0]


def test_simplegrad():
    x = rng.standard_normal(5)
    gfun = tg.simplegrad(logreg, rng.standard_normal(3), 0.5, rng.standard_normal((7, 3)),
                         np.ones(7))
    w, X, y = rng.standard_normal(3), rng.standard_normal((7, 3)), (rng.random(7) > 0.5) * 1.0
    val, gw, gb, gX, gy = gfun(w, 0.25, X, y)
    v2, g2 = tg.grad(logreg, w, 0.25, X, y)
    assert abs(val - v2) < 1e-12 and isinstance(gb, float)
    np.testing.assert_allclose(gw, g2[0], rtol=1e-12)
    np.testing.assert_allclose(gb, g2[1], rtol=1e-12)
    assert "def run(" in gfun.source and "for i0 in range(n0):" in gfun.source
    assert x.shape == (5,)


def test_source_snapshot():
    def f(x):
        return np.sum(np.tanh(x) * 2.0)

    ct = tg.compile(gtape(f, np.ones(3)), wait=True)
    src = re.sub(r"tgk_[0-9a-f]{24}", "tgk_<hash>", ct.source)
    assert src == SNAPSHOT, src


SNAPSHOT = '''\
def run(v1):
    # g0: numba loop over [3] (6 ops fused), kernel tgk_<hash>
    v4, v10, = _kern0(v1)
    return (np.float64(v4), (v10, ), )


# tgk_<hash> (6 ops, 6 ops fused)
def g0(v1):
    n0 = v1.shape[0]
    v4_out = 0.0
    v10_out = np.empty((n0,), np.float64)
    for i0 in range(n0):
        v1_i = v1[i0]
        v2 = np.tanh(v1_i)
        v3 = v2 * 2.0
        v8 = v2 * v2
        v9 = 1.0 - v8
        v10 = 2.0 * v9
        v4_out += v3
        v10_out[i0] = v10
    return (v4_out, v10_out,)
'''


def test_disk_cache_second_process():
    x = np.linspace(-1, 1, 5)
    ct = tg.compile(gtape(logistic, x), wait=True)
    want = tg.play(ct, x)
    names = [k.name for k in ct.kernels.values()]
    files = os.listdir(CACHE)
    assert all(n + ".py" in files for n in names)
    script = textwrap.dedent("""
        import numpy as np, tapegrad as tg
        from tests.test_numba import logistic, gtape
        x = np.linspace(-1, 1, 5)
        ct = tg.compile(gtape(logistic, x), wait=True)
        v, (g,) = tg.play(ct, x)
        info = tg.cache_info()
        print(repr(float(v)), list(g), info["loaded"], info["compiled"])
    """)
    env = dict(os.environ, TAPEGRAD_CACHE_DIR=CACHE)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=root, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    loaded, compiled = map(int, out.stdout.split()[-2:])
    assert loaded == len(set(names)) and compiled == 0
    assert out.stdout.startswith(repr(float(want[0])))
    assert str(list(want[1][0])) in out.stdout


def test_cache_clear_and_info(tmp_path, monkeypatch):
    monkeypatch.setenv("TAPEGRAD_CACHE_DIR", str(tmp_path / "c"))
    info = tg.cache_info()
    assert info["dir"] == str(tmp_path / "c") and os.path.isdir(info["dir"])
    assert (os.stat(info["dir"]).st_mode & 0o777) == 0o700
    (tmp_path / "c" / "tgk_dead.py").write_text("x = 1\n")
    assert tg.cache_clear() == 1
    assert os.listdir(tmp_path / "c") == []


def test_grad_compile_true_and_flat_run():
    from tapegrad.backends import interpret

    def f(x, w):
        return np.sum(np.tanh(x * w) ** 2)

    x, w = np.linspace(-1, 1, 5), np.full(5, 0.5)
    v1, g1 = tg.grad(f, x, w)
    for _ in range(2):  # first call: interpreted while compiling; then compiled
        v2, g2 = tg.grad(f, x, w, compile=True)
        assert abs(v1 - v2) < 1e-12
        np.testing.assert_allclose(g2[0], g1[0], rtol=1e-12)
        np.testing.assert_allclose(g2[1], g1[1], rtol=1e-12)
    ct = tg.compile(g1.tape, wait=True)
    got, want = ct.run([x, w]), interpret.run(g1.tape, [x, w])
    assert len(got) == len(want) == 3
    for a, b in zip(got, want):
        assert np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_allclose(a, b, rtol=1e-12)


# -- blocks: small matmuls fused with the loop after them -----------------------------------


def rnn(Wx, Wh, b, xs):
    h = np.zeros((xs.shape[1], Wh.shape[0]))
    for t in range(xs.shape[0]):
        h = np.tanh(xs[t] @ Wx + h @ Wh + b)
    return np.sum(h * h)


def test_rnn_blocks_dedup_and_agree():
    """W5 in small: each step's matmuls and loop run as one block kernel; equal steps share
    it (4 steps -> a handful of distinct kernels, not one per step)."""
    from tapegrad.passes import optimize

    args = (rng.standard_normal((3, 5)) * 0.5, rng.standard_normal((5, 5)) * 0.5,
            rng.standard_normal(5), rng.standard_normal((6, 4, 3)))
    tape = optimize(tg.trace(tg.value_and_grad(rnn, argnum=(0, 1, 2)), *args)[1])
    ct = agree(tape, *args)
    s = ct.stats()
    assert s["blocks"] >= 10 and s["kernels"] <= 8, s
    drv = ct.source.split("\n\n\n")[0]
    assert "numba block: 2 matmuls" in drv and "numba block: 3 matmuls" in drv
    assert ".dot(" not in drv.split("numba block: 2 matmuls")[2]  # step 3's matmuls are in-kernel
    assert "np.dot(" in ct.source
    agree(tape, *[a + 0.1 for a in args])
    gtp = gtape(rnn, *args)  # also d/dxs: untake between the backward blocks
    agree(gtp, *args)


def test_block_transpose_read_outside_and_float32():
    def f(x, W):  # W.T feeds a matmul inside a block and a loop outside it
        a = W.T
        return np.sum(np.sin(x @ a) * 2.0) + np.sum(a * a)

    x, W = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    ct = agree(gtape(f, x, W), x, W)
    assert ct.stats()["blocks"] >= 1
    x32, W32 = x.astype(np.float32), W.astype(np.float32)
    ct = agree(gtape(f, x32, W32), x32, W32)
    v, (gx, gW) = tg.play(ct, x32, W32)
    assert gx.dtype == gW.dtype == np.float32


# -- backend agreement over the rule table (a sample: distinct kernels stay few) ----------------


def _rule_cases(step):
    """Every `step`-th case; TAPEGRAD_AGREEMENT_STEP=1 sweeps the whole table (minutes of
    Numba compiling on a cold cache, so CI runs the sample)."""
    from tests.test_rules import CASES

    return CASES[:: int(os.environ.get("TAPEGRAD_AGREEMENT_STEP", step))]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rule_table_compiled_agrees(dtype):
    """Gradient tapes of every 7th rule-table case (every 21st in float32): compiled ==
    interpreted, same structure, dtypes and shapes; allclose 1e-12 (float64)."""
    from tests.test_rules import _draw

    checked = 0
    for c in _rule_cases(7 if dtype == np.float64 else 21):
        r = np.random.default_rng(7)
        args = _draw(c, r, dtype)
        fixed = {i: args[i] for i in c.nondiff}
        u = r.standard_normal(np.shape(c.fn(*args))).astype(dtype)
        n = len(args)

        def L(*a, c=c, u=u, fixed=fixed, n=n):
            it = iter(a)
            return np.sum(u * c.fn(*[fixed[i] if i in fixed else next(it) for i in range(n)]))

        args = [a for i, a in enumerate(args) if i not in fixed]
        tape = tg.grad(L, *args)[1].tape
        new = [a for i, a in enumerate(_draw(c, r, dtype)) if i not in fixed]
        try:
            tg.play(tape, *new)
        except tg.GuardError:
            with pytest.raises(tg.GuardError):
                tg.play(tg.compile(tape, wait=True), *new)
            continue
        agree(tape, *new)
        checked += 1
    assert checked >= (40 if dtype == np.float64 else 12)


def test_chain_block_reductions_agree():
    """Small max/min/sum reductions and the loops around them run as one chain block:
    NaN propagates through max/min like NumPy's, keepdims and full reductions, ints."""
    def f(x, y):
        m = np.max(x, axis=1, keepdims=True)
        e = np.exp(x - m)
        lse = m + np.log(np.sum(e, axis=1, keepdims=True))
        lo = np.min(x * y, axis=0)
        return np.sum((x - lse) * y) + np.sum(lo * lo) + np.max(x * y)

    x, y = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    ct = agree(gtape(f, x, y), x, y)
    assert ct.stats()["blocks"] >= 1
    src = ct.source
    assert "numba block: 0 matmuls" in src and "np.max(" not in src.split("\n\n\n")[0]
    for bad in (np.nan, np.inf, -np.inf):
        x2 = x.copy()
        x2[2, 3] = bad
        with np.errstate(all="ignore"):
            want, got = tg.play(ct.tape, x2, y), tg.play(ct, x2, y)
        np.testing.assert_array_equal(np.asarray(tree.flatten(got)[1][0]),
                                      np.asarray(tree.flatten(want)[1][0]))
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    agree(gtape(f, x32, y32), x32, y32)

    def g(a):
        k = np.arange(20, dtype=np.int32).reshape(4, 5)
        return np.sum(np.max(a * 2, axis=0) + np.min(a, axis=1, keepdims=True) + np.sum(a * k, axis=1)[:, None])

    a = rng.integers(-5, 5, (4, 5)).astype(np.int32)
    ct = agree(tg.trace(g, a)[1], a)
    assert ct.stats()["blocks"] == 1


def test_fast_sin_cos_and_chunked_sums_agree():
    """sin/cos in loops use the vectorisable `_tg_sin`/`_tg_cos` (within 2 ulp of libm),
    falling back to libm when an argument is past FAST_TRIG_MAX or not finite; scalar
    sums over a long last axis run in chunks (lengths that are no multiple of the chunk)."""
    from tapegrad.backends.kernels import FAST_TRIG_MAX

    def f(x):
        return np.sum(np.tanh(x) * np.cos(2 * x) + np.sin(x) * x)

    for n in (1031, 5000):
        x = rng.standard_normal(n) * 3
        ct = agree(gtape(f, x), x)
        assert "_tg_sin(" in ct.source and "p0[j] =" in ct.source
        for bad in (FAST_TRIG_MAX * 3.7, -1e300, np.inf, np.nan):
            x2 = x.copy()
            x2[n // 2] = bad
            with np.errstate(all="ignore"):
                want, got = tg.play(ct.tape, x2), tg.play(ct, x2)
            np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-12)
    X = rng.standard_normal((3, 1500)) * 50
    ct = agree(gtape(lambda X: np.sum(np.sin(X) * np.cos(X / 3)), X), X)
    x32 = (rng.standard_normal(2000) * 4).astype(np.float32)
    agree(gtape(f, x32), x32)
    # the polynomials themselves, on a dense grid and past a few quadrants
    t = np.concatenate([np.linspace(-20, 20, 40001), [0.0, -0.0, np.pi, -np.pi / 2, 1e-300]])
    ct = tg.compile(tg.trace(lambda t: (np.sin(t), np.cos(t)), t)[1], wait=True)
    assert "_tg_cos(" in ct.source
    s, c = tg.play(ct, t)
    np.testing.assert_allclose(s, np.sin(t), rtol=0, atol=4.5e-16)
    np.testing.assert_allclose(c, np.cos(t), rtol=0, atol=4.5e-16)


def test_leading_axis_sums_of_stored_values_agree():
    """A sum over leading axes of a value the loop also stores is added from the stored row
    after it (`o[i1] += x` beside the store would keep the row scalar): 2-D and 3-D,
    keepdims or not, float32 and float64."""
    def f(a, b):
        d = np.tanh(a) * b
        return np.sum(d * d) + np.sum(np.sum(d, axis=0) ** 2), d

    for dt in (np.float64, np.float32):
        a, b = rng.standard_normal((40, 24)).astype(dt), rng.standard_normal((40, 24)).astype(dt)
        ct = agree(tg.trace(lambda a, b: tg.value_and_grad(lambda a: f(a, b)[0])(a), a, b)[1], a, b)
    A, B = rng.standard_normal((3, 7, 16)), rng.standard_normal((3, 7, 16))

    def g(A, B):
        d = A * B + 1.0
        return d, np.sum(d, axis=(0, 1)), np.sum(d, axis=(0, 1), keepdims=True), np.sum(d, axis=0)

    ct = agree(tg.trace(g, A, B)[1], A, B)
    assert re.search(r"\+= v\d+_out\[i0, i1, i2\]", ct.source)


def test_fast_trig_inside_chain_block_agrees():
    """A chain block whose loops use the fast sin/cos (the helpers follow the block's
    function, each nest's fallback counter is its own)."""
    def f(x):
        s = np.sin(x) * 2.0
        m = np.max(s, axis=1, keepdims=True)
        return np.sum(np.cos(s - m) * x)

    x = rng.standard_normal((48, 40)) * 3
    ct = agree(gtape(f, x), x)
    assert ct.stats()["blocks"] == 1 and "_tg_sin(" in ct.source
    x[5, 7] = 4e5
    np.testing.assert_allclose(tg.play(ct, x)[1], tg.play(ct.tape, x)[1], rtol=1e-12, atol=1e-12)


def test_long_chain_is_cut_into_repeated_kernels(monkeypatch):
    # a long scalar loop is one fused region; cut at MAX_REGION_OPS, its chunks are the
    # same kernel after canonical renaming (compile time stays flat in the tape's length)
    from tapegrad.backends import kernels

    monkeypatch.setattr(kernels, "MAX_REGION_OPS", 24)  # > a chain block's 16-op regions

    def f(x):
        for _ in range(40):
            x = np.sin(x) * 1.0001
        return x

    _, g = tg.grad(f, 0.5)
    ct = tg.compile(g.tape, wait=True)
    st = ct.stats()
    assert st["loop_regions"] >= len(g.tape.ops) // 24 and st["kernels"] <= 6 and st["blocks"] == 0
    want = tg.play(g.tape, 0.3)
    got = tg.play(ct, 0.3)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[1][0], want[1][0], rtol=1e-12)
