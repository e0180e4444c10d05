"""The AutoGrad.jl interface: Param, diff, value, grad(result, param)."""

from dataclasses import dataclass

import numpy as np

import tapegrad as tg


@dataclass
class Linear:
    W: tg.Param
    b: tg.Param

    def __call__(self, x):
        return self.W @ x + self.b


def test_params_inside_structs_and_containers():
    r = np.random.default_rng(0)
    layers = [Linear(tg.Param(r.normal(size=(3, 4))), tg.Param(r.normal(size=3))),
              Linear(tg.Param(r.normal(size=(2, 3))), tg.Param(r.normal(size=2)))]
    model = {"layers": layers, "scale": tg.Param(np.array(1.5))}
    x = r.normal(size=4)

    def loss():
        h = x
        for layer in model["layers"]:
            h = np.tanh(layer(h))
        return np.sum(model["scale"] * h ** 2)

    y = tg.diff(loss)
    # the same loss written on plain arrays, differentiated by the function transform
    def plain(W0, b0, W1, b1, s):
        h = np.tanh(W0 @ x + b0)
        h = np.tanh(W1 @ h + b1)
        return np.sum(s * h ** 2)

    vals = [layers[0].W.value, layers[0].b.value, layers[1].W.value, layers[1].b.value,
            model["scale"].value]
    want = tg.grad(plain, argnum=(0, 1, 2, 3, 4))(*vals)
    assert tg.value(y) == plain(*vals)
    got = [tg.grad(y, p) for p in (layers[0].W, layers[0].b, layers[1].W, layers[1].b, model["scale"])]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12)


def test_param_behaves_like_its_value_outside_diff():
    p = tg.Param(np.array([1.0, -2.0, 3.0]))
    np.testing.assert_array_equal(np.asarray(p), [1.0, -2.0, 3.0])
    assert np.sum(p) == 2.0 and p.shape == (3,) and len(p) == 3 and p[1] == -2.0
    np.testing.assert_array_equal(p * 2 + 1, [3.0, -3.0, 7.0])
    np.testing.assert_array_equal(np.abs(p), [1.0, 2.0, 3.0])
    # unused params get zero gradients, as AutoGrad.jl does
    q = tg.Param(np.ones(2))
    y = tg.diff(lambda: np.sum(p ** 2))
    np.testing.assert_array_equal(tg.grad(y, q), [0.0, 0.0])
    np.testing.assert_array_equal(tg.grad(y, p), [2.0, -4.0, 6.0])


def test_training_loop_with_params_lowers_the_loss():
    r = np.random.default_rng(1)
    X, w_true = r.normal(size=(50, 3)), np.array([1.0, -2.0, 0.5])
    Y = X @ w_true
    w = tg.Param(np.zeros(3))
    losses = []
    for _ in range(50):
        y = tg.diff(lambda: np.mean((X @ w - Y) ** 2))
        losses.append(tg.value(y))
        w.value = w.value - 0.1 * tg.grad(y, w)
    assert losses[-1] < 1e-3 * losses[0]
    np.testing.assert_allclose(w.value, w_true, atol=1e-2)


def test_diff_gradients_do_not_alias_param_values():
    """d(W*b)/db is W's own array; `diff` hands out a copy, so updating W in place before
    reading b's gradient leaves that gradient as it was (it came back [-1, -0.5, 0])."""
    W = tg.Param(np.array([1.0, 2.0, 3.0]))
    b = tg.Param(np.array([4.0, 5.0, 6.0]))
    y = tg.diff(lambda: np.sum(W * b))
    gW = tg.grad(y, W)
    W.value -= 0.5 * gW
    np.testing.assert_array_equal(tg.grad(y, b), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(gW, [4.0, 5.0, 6.0])
    assert not np.shares_memory(tg.grad(y, b), W.value)
