"""`g[i]` of the Yota form runs its reverse pass when read. A caller that writes its
arrays in place in between (`W -= lr * g[0]` before reading `g[1]`, weight decay before
reading `g`) must still get the gradients at the values `tg.grad` was called with:
the trace keeps its own copies of the input arrays (and views of them) rules may read."""

import numpy as np
import pytest

import tapegrad as tg

R = np.random.default_rng(11)


def test_update_between_reads():
    W, b = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])
    v, g = tg.grad(lambda W, b: np.sum(W * b), W, b)
    gW = g[0]
    W -= 0.5 * gW  # in place, as a training loop does
    np.testing.assert_array_equal(gW, [4.0, 5.0, 6.0])
    np.testing.assert_array_equal(g[1], [1.0, 2.0, 3.0])  # was [-1, -0.5, 0]


def test_write_before_first_read_and_through_a_view():
    W0 = R.standard_normal((3, 4))
    x0 = R.standard_normal(4)

    def f(W, x):
        return np.sum(np.tanh(x @ W.T))  # W.T: a view of the caller's W

    d = 1 - np.tanh(W0 @ x0) ** 2
    W, x = W0.copy(), x0.copy()
    v, g = tg.grad(f, W, x)
    W *= 0.0  # weight decay, before anything is read
    x[:] = 7.0
    np.testing.assert_allclose(g[0], d[:, None] * x0[None, :], rtol=1e-12)
    np.testing.assert_allclose(g[1], W0.T @ d, rtol=1e-12)
    assert v == pytest.approx(np.sum(np.tanh(W0 @ x0)), rel=1e-14)


def test_large_inputs_take_the_read_analysis():
    """Above 1 MB of input-rooted values only those a rule reads are copied; the gradients
    are still those of the call's values."""
    W0 = R.standard_normal((400, 300))  # 960 kB
    X0 = R.standard_normal((64, 400))   # 205 kB
    b0 = R.standard_normal(300)

    def loss(p, X):
        W, b = p["W"], p["b"]
        return np.sum(np.tanh(X @ W + b) ** 2)

    def grads(W, X, b):
        h = np.tanh(X @ W + b)
        d = 2 * h * (1 - h * h)
        return X.T @ d, d.sum(0), d @ W.T

    p = {"W": W0.copy(), "b": b0.copy()}
    X = X0.copy()
    v, g = tg.grad(loss, p, X)
    gp = g[0]
    p["W"] -= 0.1 * gp[("W",)]
    p["b"] -= 0.1 * gp[("b",)]
    X += 1.0
    gW, gb, gX = grads(W0, X0, b0)
    np.testing.assert_allclose(gp[("W",)], gW, rtol=1e-10)
    np.testing.assert_allclose(gp[("b",)], gb, rtol=1e-10)
    np.testing.assert_allclose(g[1], gX, rtol=1e-10)  # read after the updates


def test_callers_arrays_are_not_copied_into_results():
    """The copies are the trace's: the caller's arrays and the gradients are separate."""
    W = np.ones(3)
    v, g = tg.grad(lambda W: np.sum(W * W), W)
    g0 = g[0]
    assert not np.shares_memory(g0, W)
    np.testing.assert_array_equal(g0, [2.0, 2.0, 2.0])


def test_inputs_that_are_views_and_foreign_buffers():
    """An argument that is itself a view (a slice of a bigger array, a transpose) or wraps
    a foreign buffer is protected too."""
    big = R.standard_normal((5, 3))
    W = big[1:4]  # a view: its base is `big`
    buf = bytearray(np.arange(3.0).tobytes())
    x = np.frombuffer(buf, dtype=np.float64)  # base: a foreign buffer (read-only here)
    W0, x0 = W.copy(), x.copy()
    v, g = tg.grad(lambda W, x: np.sum((W @ x) ** 2), W, x)
    big[:] = 0.0
    buf[:] = bytes(len(buf))
    r = W0 @ x0
    np.testing.assert_allclose(g[0], 2 * r[:, None] * x0[None, :], rtol=1e-12)
    np.testing.assert_allclose(g[1], 2 * W0.T @ r, rtol=1e-12)


G = np.arange(4.0)


def uses_global(x):
    return np.sum(np.sin(x) * G)


def test_tapes_keep_captured_constants_from_trace_time():
    """A tape that outlives its trace computes with the captured global's values at trace
    time, in the interpreter and compiled alike (they disagreed: folding bakes values)."""
    x = np.linspace(0.1, 1.0, 4)
    G[:] = np.arange(4.0)
    want = float(np.sum(np.sin(x) * np.arange(4.0)))
    _, tape = tg.trace(uses_global, x)
    ct = tg.compile(tape, wait=True)
    _, g = tg.grad(uses_global, x)
    gtape = g.tape
    G[:] = 100.0
    try:
        assert tg.play(tape, x) == pytest.approx(want, rel=1e-12)
        assert tg.play(ct, x) == pytest.approx(want, rel=1e-12)
        v, (gx,) = tg.play(gtape, x)
        assert v == pytest.approx(want, rel=1e-12)
        np.testing.assert_allclose(gx, np.cos(x) * np.arange(4.0), rtol=1e-12)
    finally:
        G[:] = np.arange(4.0)


def test_make_vjp_and_make_jvp_keep_their_residuals():
    """`vjp_fn`/`jvp_fn` run later; writing the argument or a captured global in between
    leaves them computing at the values they were made with (as JAX's vjp keeps residuals;
    the vjp gave [32, 32, 32] here)."""
    Wg = np.array([1.0, 2.0, 3.0])
    b = np.array([4.0, 5.0, 6.0])

    def f(b):
        return np.sum(Wg * b) * np.sum(b)

    vjp, val = tg.make_vjp(f)(b)
    jvp = tg.make_jvp(f)(b)
    b[:] = 0.0
    Wg[:] = 0.0
    np.testing.assert_allclose(vjp(1.0), [47.0, 62.0, 77.0], rtol=1e-14)
    v, t = jvp(np.array([1.0, 0.0, 0.0]))
    assert v == pytest.approx(480.0) and t == pytest.approx(47.0)


def test_snapshot_keeps_broadcast_constants_broadcast():
    """Copying a tape's captured constants keeps a broadcast (zero strides) a broadcast:
    `fold` reads it as one uniform value, and turns a uniform matrix times x into column
    sums. Materialised, tg.jit's W1 gradient tape kept a 128x100 matmul with a constant of
    ones and ran twice as slow as g.tape."""
    ones = np.broadcast_to(np.ones(()), (6, 5))
    _, tape = tg.trace(lambda x: np.sum(ones * x), np.ones((6, 5)))
    consts = [op.kw["value"].array for op in tape.ops if op.prim.name == "const"]
    assert consts and all(not any(c.strides) for c in consts if c.size > 1)

    W, x, b = R.standard_normal((8, 7)), R.standard_normal((7, 5)), R.standard_normal(8)

    def f(W, x, b):
        return np.sum(W @ x + b[:, None])

    jf = tg.jit(tg.value_and_grad(f, argnum=(0, 1, 2)), compile=False)
    v, (gW, gx, gb) = jf(W, x, b)
    jtape = jf.tapes[0]
    _, g = tg.grad(f, W, x, b)

    def matmuls(t):
        return sum(op.prim.name in ("matmul", "gemm", "dot") for op in t.ops)

    assert matmuls(jtape) == matmuls(g.tape) == 1  # only the forward W @ x
    np.testing.assert_allclose(gW, np.tile(x.sum(1), (8, 1)), rtol=1e-12)
    np.testing.assert_allclose(gx, np.tile(W.sum(0)[:, None], (1, 5)), rtol=1e-12)
    np.testing.assert_allclose(gb, np.full(8, 5.0), rtol=1e-12)
