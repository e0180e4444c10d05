"""The seed examples of issue 2: Yota, HIPS autograd and AutoGrad.jl programs, with numbers."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import tapegrad as tg

# -- Yota ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Linear:
    W: np.ndarray
    b: np.ndarray


def forward(m: Linear, X):
    return m.W @ X


def loss(m: Linear, X):
    return np.sum(forward(m, X))


def test_yota_linear_struct():
    rng = np.random.default_rng(0)
    m, X = Linear(rng.random((3, 4)), rng.random(3)), rng.random((4, 5))
    val, g = tg.grad(loss, m, X)
    assert val == pytest.approx(np.sum(m.W @ X), rel=1e-14)
    assert set(g[0]) == {("W",)}  # b is not used by the loss
    np.testing.assert_allclose(g[0][("W",)], np.ones((3, 5)) @ X.T, rtol=1e-14)
    np.testing.assert_allclose(g[1], m.W.T @ np.ones((3, 5)), rtol=1e-14)
    assert g[0][("W",)].dtype == np.float64 and g[1].shape == (4, 5)


def test_yota_update_loop_lowers_the_loss():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((4, 20))
    Y = np.array([[1.0, -2.0, 0.5, 3.0]]) @ X + 0.7
    m = Linear(rng.standard_normal((1, 4)), np.zeros(1))
    W_id = id(m.W)

    def mse(m, X, Y):
        return np.mean((m.W @ X + m.b[:, None] - Y) ** 2)

    losses = []
    for _ in range(200):
        val, g = tg.grad(mse, m, X, Y)
        losses.append(val)
        tg.update(m, g[0], lambda x, gx: x - 0.1 * gx)
    assert id(m.W) == W_id  # arrays are updated in place
    assert all(b <= a + 1e-12 for a, b in zip(losses, losses[1:]))
    assert losses[-1] < 1e-3 * losses[0]
    np.testing.assert_allclose(m.W, [[1.0, -2.0, 0.5, 3.0]], atol=1e-2)
    np.testing.assert_allclose(m.b, [0.7], atol=1e-2)


def test_custom_logistic_via_primitive_and_defvjp():
    @tg.primitive
    def logistic_p(x):
        return 1.0 / (1.0 + np.exp(-x))

    tg.defvjp(logistic_p, lambda ans, x: lambda g: g * ans * (1.0 - ans))
    x = np.array([-1.0, 0.0, 2.0])
    s = 1.0 / (1.0 + np.exp(-x))
    val, g = tg.grad(lambda x: np.sum(logistic_p(x)), x)
    np.testing.assert_allclose(g[0], s * (1 - s), rtol=1e-14)
    assert [op.prim.name for op in tg.trace(lambda x: logistic_p(x), x)[1].ops] == ["logistic_p"]
    # the rule is NumPy code, so it differentiates again: s'' = s (1 - s) (1 - 2 s)
    h = tg.grad(lambda x: np.sum(tg.grad(lambda y: np.sum(logistic_p(y)))(x)))(x)
    np.testing.assert_allclose(h, s * (1 - s) * (1 - 2 * s), rtol=1e-12)
    assert logistic_p(0.0) == 0.5  # untraced: the plain function


def test_custom_logistic_via_diffrule():
    @tg.primitive
    def logistic_d(x):
        return 1.0 / (1.0 + np.exp(-x))

    @tg.diffrule(logistic_d, argnum=0)
    def _(ds, ans, x):
        return ds * ans * (1.0 - ans)

    x = np.array([0.5, -3.0])
    s = 1.0 / (1.0 + np.exp(-x))
    np.testing.assert_allclose(tg.grad(lambda x: np.sum(logistic_d(x) * 2.0))(x), 2 * s * (1 - s), rtol=1e-14)


def test_primitive_without_rule_raises_naming_it():
    @tg.primitive
    def opaque_fn(x):
        return x * 2.0

    with pytest.raises(tg.NoDerivativeError, match="opaque_fn"):
        tg.grad(lambda x: np.sum(opaque_fn(x)))(np.ones(2))


def test_nodiff():
    @tg.primitive
    def scaled(x, s):
        return x * s

    tg.defvjp(scaled, lambda ans, x, s: lambda g: g * s)
    tg.nodiff(scaled, 1)
    x, s = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    gx, gs = tg.grad(lambda x, s: np.sum(scaled(x, s)), argnum=(0, 1))(x, s)
    np.testing.assert_allclose(gx, s)
    np.testing.assert_array_equal(gs, [0.0, 0.0])  # no gradient flows into s


def test_stop_gradient():
    x = np.array([1.0, 2.0, 3.0])
    g = tg.grad(lambda x: np.sum(x * tg.stop_gradient(x)))(x)
    np.testing.assert_allclose(g, x)  # not 2 x
    assert tg.stop_gradient(x) is x


# -- AutoGrad.jl ---------------------------------------------------------------------------------


def test_autograd_jl_param_diff():
    x = tg.Param(np.array([1.0, 2.0, 3.0]))
    y = tg.diff(lambda: np.sum(x ** 2))
    assert tg.value(y) == 14.0
    np.testing.assert_array_equal(tg.grad(y, x), [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(np.asarray(x) + 1, [2.0, 3.0, 4.0])  # behaves like its value


# -- HIPS autograd -------------------------------------------------------------------------------


def sigmoid(x):
    return 0.5 * (np.tanh(x / 2.0) + 1)


def logistic_predictions(weights, inputs):
    return sigmoid(np.dot(inputs, weights))


def test_hips_logistic_regression_readme():
    inputs = np.array([[0.52, 1.12, 0.77], [0.88, -1.08, 0.15], [0.52, 0.06, -1.30], [0.74, -2.49, 1.39]])
    targets = np.array([True, True, False, True])

    def training_loss(weights):
        preds = logistic_predictions(weights, inputs)
        label_probabilities = preds * targets + (1 - preds) * (1 - targets)
        return -np.sum(np.log(label_probabilities))

    training_gradient_fun = tg.grad(training_loss)
    weights = np.array([0.0, 0.0, 0.0])
    first = training_loss(weights)
    assert first == pytest.approx(4 * math.log(2), rel=1e-12)
    for _ in range(100):
        weights -= training_gradient_fun(weights) * 0.01
    # the same 100 steps written by hand: dL/dw = X^T (p - t)
    w = np.zeros(3)
    for _ in range(100):
        w -= inputs.T @ (logistic_predictions(w, inputs) - targets) * 0.01
    np.testing.assert_allclose(weights, w, rtol=1e-12)
    assert training_loss(weights) < 0.5 * first


def test_logistic_regression_trains_to_good_accuracy():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, 5))
    w_true = np.array([2.0, -1.0, 0.5, 0.0, 3.0])
    y = (X @ w_true + 0.3 * rng.standard_normal(200)) > 0

    def nll(w, b):
        z = X @ w + b
        return np.mean(np.logaddexp(0.0, z) - y * z)

    w, b = np.zeros(5), 0.0
    losses = []
    for _ in range(300):
        val, g = tg.grad(nll, w, b)
        losses.append(val)
        w, b = w - 0.5 * g[0], b - 0.5 * g[1]
        assert isinstance(g[1], float)
    assert losses[-1] < 0.25 < losses[0] == pytest.approx(math.log(2))
    assert np.mean((X @ w + b > 0) == y) > 0.93
    assert np.corrcoef(w, w_true)[0, 1] > 0.98


def taylor_sine(x):  # HIPS autograd's tutorial example: data-dependent while loop
    ans = currterm = x
    i = 0
    while np.abs(currterm) > 0.001:
        currterm = -currterm * x ** 2 / ((2 * i + 3) * (2 * i + 2))
        ans = ans + currterm
        i += 1
    return ans


def test_taylor_sine():
    g = tg.grad(taylor_sine)(np.pi)
    assert isinstance(g, float)
    assert g == pytest.approx(-1.0, abs=1e-3)
    assert tg.grad(taylor_sine)(0.5) == pytest.approx(math.cos(0.5), abs=1e-4)


def test_grad_of_grad_closed_form():
    def f(x):
        return x ** 3 * np.sin(x)

    x = 0.7
    d2 = 6 * x * math.sin(x) + 6 * x ** 2 * math.cos(x) - x ** 3 * math.sin(x)
    assert tg.grad(tg.grad(f))(x) == pytest.approx(d2, rel=1e-12)
    xs = np.array([0.3, -1.2])
    d2s = tg.grad(lambda x: np.sum(tg.grad(lambda y: np.sum(f(y)))(x)))(xs)
    np.testing.assert_allclose(d2s, 6 * xs * np.sin(xs) + 6 * xs ** 2 * np.cos(xs) - xs ** 3 * np.sin(xs),
                               rtol=1e-12)


def test_sixth_derivative_of_tanh():
    # d/dx p(t) = p'(t) (1 - t^2) for t = tanh(x): the closed form as a polynomial in t
    p = np.polynomial.Polynomial([0.0, 1.0])
    for _ in range(6):
        p = p.deriv() * np.polynomial.Polynomial([1.0, 0.0, -1.0])
    f = np.tanh
    for _ in range(6):
        f = tg.grad(f)
    for x in (0.3, -1.1):
        assert f(x) == pytest.approx(p(math.tanh(x)), rel=1e-10)


def test_perturbation_confusion():
    # d/dx (x * d/dy (x + y)) = d/dx (x * 1) = 1; confusing the two perturbations gives 2
    assert tg.grad(lambda x: x * tg.grad(lambda y: x + y)(1.0))(1.0) == 1.0
    # and a closure whose inner derivative does depend on x: d/dx (x * d/dy (x * y)) = 2 x
    assert tg.grad(lambda x: x * tg.grad(lambda y: x * y)(1.0))(3.0) == 6.0
    # the same through the Yota form, whose float gradients must stay traced inside a trace
    assert tg.grad(lambda x: x * tg.grad(lambda y: x * y, 1.0)[1][0])(3.0) == 6.0


# -- tracing plain Python over NumPy ------------------------------------------------------------


def _helper(x, k):
    return np.sin(x) * k


def _recursive_power(x, n):
    return x if n == 1 else x * _recursive_power(x, n - 1)


def test_helpers_closures_recursion_loops_ifs():
    scale = 3.0

    def f(x):
        acc = 0.0
        for i in range(3):  # Python loop, int mixed in
            acc = acc + _helper(x, i + 1)
        if np.sum(x) > 0:  # data-dependent if
            acc = acc * scale  # closure
        else:
            acc = acc - scale
        return np.sum(acc) + np.sum(_recursive_power(x, 4))

    x = np.array([0.5, 1.0])
    np.testing.assert_allclose(tg.grad(f)(x), 18 * np.cos(x) + 4 * x ** 3, rtol=1e-13)
    np.testing.assert_allclose(tg.grad(f)(-x), 6 * np.cos(-x) + 4 * (-x) ** 3, rtol=1e-13)


def test_python_scalars_and_ints_mixed():
    def f(x):
        return np.sum(2 * x + 1) + np.sum(x / 2) - np.sum(3 - x) + np.sum(x ** 2) * 0.5 + np.sum(True * x)

    x = np.array([1.0, -2.0])
    np.testing.assert_allclose(tg.grad(f)(x), 2 + 0.5 + 1 + x + 1)
    assert tg.grad(lambda x: 3 * x * x + 1)(2.0) == 12.0


def test_shape_facts_len_iteration_T_and_methods():
    def f(W):
        n = len(W)
        assert W.shape == (3, 2) and W.ndim == 2 and W.T.shape == (2, 3) and W.dtype == np.float64
        assert W.size == 6 and np.shape(W) == (3, 2) and np.ndim(W) == 2
        rows = [r for r in W]
        assert len(rows) == n
        total = rows[0].sum() + rows[1].mean() + rows[2].max()
        return (total + W.T.reshape(-1).prod() + W.reshape(2, 3).min() + W.std()
                + W.var(axis=0).sum() + W.cumsum()[-1] + W.dot(np.ones(2)).sum() + W.trace())

    W = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    g = tg.grad(f)(W)
    eps = 1e-6
    fd = np.zeros_like(W)
    for idx in np.ndindex(*W.shape):
        d = np.zeros_like(W)
        d[idx] = eps
        fd[idx] = (f(W + d) - f(W - d)) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-7)


def test_play_on_new_inputs_equals_fresh_grad():
    def f(m, X):
        return np.sum(np.tanh(m["W"] @ X + m["b"][:, None]) ** 2)

    rng = np.random.default_rng(4)
    m = {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(3)}
    X = rng.standard_normal((4, 5))
    _, g = tg.grad(f, m, X)
    m2 = {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(3)}
    X2 = rng.standard_normal((4, 5))
    val2, (gm2, gX2) = tg.play(g.tape, m2, X2)
    fval, fg = tg.grad(f, m2, X2)
    assert val2 == pytest.approx(fval, rel=1e-14)
    assert set(gm2) == set(fg[0]) == {("W",), ("b",)}
    for k in gm2:
        np.testing.assert_allclose(gm2[k], fg[0][k], rtol=1e-13)
    np.testing.assert_allclose(gX2, fg[1], rtol=1e-13)


def test_trace_and_play_forward():
    def f(x, y):
        return np.tanh(x) * y + 1.0

    x, y = np.array([0.1, 0.2]), np.array([3.0, 4.0])
    val, tape = tg.trace(f, x, y)
    np.testing.assert_allclose(val, f(x, y))
    x2, y2 = np.array([-1.0, 2.0]), np.array([0.5, 0.25])
    np.testing.assert_allclose(tg.play(tape, x2, y2), f(x2, y2), rtol=1e-15)
    tape.check()


def test_value_and_grad_and_argnums():
    def f(x, y, z):
        return np.sum(x * y) + z

    x, y = np.array([1.0, 2.0]), np.array([3.0, 5.0])
    v, g = tg.value_and_grad(f)(x, y, 1.5)
    assert v == 14.5
    np.testing.assert_array_equal(g, y)
    gx, gz = tg.grad(f, argnum=(0, 2))(x, y, 1.5)
    np.testing.assert_array_equal(gx, y)
    assert gz == 1.0 and isinstance(gz, float)


def test_gradient_accumulates_over_many_uses_and_broadcasts():
    def f(x, b):
        y = x + b  # b (3,) broadcast over rows
        return np.sum(y * x) + np.sum(x[0]) + np.sum(x[0])

    x, b = np.arange(6.0).reshape(2, 3), np.array([1.0, -1.0, 0.5])
    gx, gb = tg.grad(f, argnum=(0, 1))(x, b)
    np.testing.assert_allclose(gx, 2 * x + b + np.array([[2.0], [0.0]]))
    np.testing.assert_allclose(gb, x.sum(axis=0))


def test_output_not_depending_on_input_gives_zeros():
    g = tg.grad(lambda x: 3.0 + 0.0 * np.sum(np.floor(x)))(np.array([1.5, 2.5]))
    np.testing.assert_array_equal(g, [0.0, 0.0])


def test_interpreter_plan_follows_tape_changes():
    """The interpreter keeps its per-tape plan (value lifetimes, const outputs) on the tape;
    a tape whose outputs or ops change afterwards is planned again, not replayed stale."""
    from tapegrad.ir import Var

    x = np.linspace(0.1, 1.0, 4)
    _, tape = tg.trace(lambda x: np.sum(np.sin(x) * 2.0), x)
    assert tg.play(tape, x) == pytest.approx(2 * np.sum(np.sin(x)), rel=1e-14)
    sin_var = next(v for op in tape.ops for v in op.outputs
                   if op.prim.name == "sin" and isinstance(v, Var))
    tape.outputs = [sin_var]  # an intermediate the old plan frees right after its use
    np.testing.assert_allclose(tg.play(tape, x), np.sin(x), rtol=1e-14)
