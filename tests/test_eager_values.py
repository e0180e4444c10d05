"""Eager gradients on values: `g[i]` of the Yota form and the top-level `tg.grad(f)(x)` run
the rules on concrete values (`passes.reverse.backward_values`, nothing recorded); they
must give what the recorded reverse pass (`core.grad_call`, `g.tape`) gives."""

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.core import grad_call

R = np.random.default_rng(7)


def _rnn(Wx, Wh, b, xs):
    h = np.zeros((xs.shape[1], Wh.shape[0]))
    for t in range(xs.shape[0]):
        h = np.tanh(xs[t] @ Wx + h @ Wh + b)
    return np.sum(h * h)


CASES = {
    "chain": (lambda x: np.sum(1 / (1 + np.exp(-x))), (R.normal(size=5),)),
    "broadcast": (lambda x, b: np.sum(np.sin(x * b[:, None]) ** 2), (R.normal(size=(3, 4)), R.normal(size=3))),
    "reductions": (lambda x: np.sum(np.max(x, axis=1) * np.mean(x, axis=0)[:2]) + np.prod(x[0]),
                   (R.normal(size=(2, 3)),)),
    "indexing": (lambda x: np.sum(x[[0, 2, 2]] * x[1:, ::2].sum()), (R.normal(size=(3, 4)),)),
    "scalar_power": (lambda x, p: np.sum(np.abs(x) ** p), (R.normal(size=4), np.float64(2.0))),
    "float_arg": (lambda a, x: a * np.sum(x * x), (1.5, R.normal(size=3))),
    "float32": (lambda x: np.sum(np.tanh(x) * x), (R.normal(size=6).astype(np.float32),)),
    "rnn": (_rnn, (R.normal(size=(3, 4)), R.normal(size=(4, 4)), R.normal(size=4), R.normal(size=(5, 2, 3)))),
    # NumPy's einsum (no optimize) refuses the rule's call on plain values: the recorded pass serves
    "einsum_fallback": (lambda a, b: np.sum(np.sin(np.einsum("ij...,k->i...", a, b))),
                        (R.normal(size=(2, 3, 4)), R.normal(size=5))),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_values_match_the_recorded_pass(name):
    f, args = CASES[name]
    _, want, _, _, _ = grad_call(f, args)
    _, g = tg.grad(f, *args)
    for i in range(len(args)):
        got = g[i]
        assert type(got) is type(want[i][0]) or isinstance(args[i], float)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want[i][0]), err_msg=f"arg {i}")
        assert np.asarray(got).dtype == np.asarray(want[i][0]).dtype
    got = tg.grad(f, argnum=tuple(range(len(args))))(*args)
    for i in range(len(args)):
        np.testing.assert_array_equal(np.asarray(got[i]), np.asarray(want[i][0]))
    _, replay = tg.play(g.tape, *args)  # g.tape: the recorded pass, after the value passes
    for i in range(len(args)):
        np.testing.assert_allclose(replay[i], want[i][0], rtol=1e-6 if name == "float32" else 1e-12)


def test_value_gradients_are_fresh_arrays():
    # d/dx sum(x*y) is y itself (the seed's ones skip the multiply), and sum's cotangent a
    # read-only broadcast: what users get is copied, writable, unshared
    x, y = R.normal(size=3), R.normal(size=3)
    _, g = tg.grad(lambda x, y: np.sum(x * y) + np.sum(x), x, y)
    gx, gy = g[0], g[1]
    np.testing.assert_array_equal(gx, y + 1)
    np.testing.assert_array_equal(gy, x)
    for a in (gx, gy):
        assert a.flags.writeable and not np.may_share_memory(a, x) and not np.may_share_memory(a, y)
    gx, gy = tg.grad(lambda x, y: np.sum(x * y), argnum=(0, 1))(x, y)
    assert not np.may_share_memory(gx, y) and not np.may_share_memory(gy, x)


def test_higher_order_and_debug_nans_use_the_recorded_pass():
    f = lambda x: np.sum(np.sin(x) * x)  # noqa: E731
    x = R.normal(size=4)
    hess_diag = tg.grad(lambda x: np.sum(tg.grad(f)(x)))(x)
    np.testing.assert_allclose(hess_diag, 2 * np.cos(x) - x * np.sin(x), rtol=1e-12)
    with tg.debug_nans():
        _, g = tg.grad(lambda x: np.sum(np.sqrt(x) * 0.0), np.array([0.0, 1.0]))
        with pytest.raises(FloatingPointError, match="backward"):
            g[0]
