"""Eager gradients free large forward values no VJP rule reads (`release_unread`), before
the reverse pass allocates: the gradients, and `g.tape` read afterwards, are unchanged."""

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.passes.reverse as reverse
from tapegrad.core import LazyGrads, grad_call
from tapegrad.passes.reverse import rule_reads

from test_eager_values import CASES


def test_rule_reads_from_the_bytecode():
    assert rule_reads(lambda g, ans, x: -g) == (False, frozenset())
    assert rule_reads(lambda g, ans, x, y: g * y) == (False, frozenset({1}))
    assert rule_reads(lambda g, ans, x: g * ans) == (True, frozenset())
    assert rule_reads(lambda g, ans, *xs: g) == (False, frozenset())
    assert rule_reads(lambda g, ans, *xs: xs[0]) == (True, None)  # *args read: all
    assert rule_reads(lambda g, ans, x: (lambda: x)()) == (False, frozenset({0}))  # captured
    assert rule_reads(lambda g, ans, x: locals()) == (True, None)  # frame look: all

    def reads_via_helper(g, ans, x):
        return np.broadcast_to(g, np.shape(x))

    assert rule_reads(reads_via_helper) == (False, frozenset({0}))
    assert rule_reads(np.negative) == (True, None)  # not a Python function: all


def test_w4_drops_what_no_rule_reads():
    x = np.random.default_rng(0).standard_normal(100_000)
    f = lambda x: np.sum(np.tanh(x) * np.exp(-x ** 2) + np.sin(x) * x)  # noqa: E731
    lz = LazyGrads(f, (x,), None)
    vals = lz.trace.values
    ops = {op.outputs[0].id: op.prim.name for op in lz.trace.tape.ops}
    dropped = sorted(ops[k] for k, v in vals.items() if v is None)
    # x**2, -x**2, tanh*exp and sin*x are read by no rule; sum's input only by its shape
    assert dropped == ["multiply", "multiply", "negative", "power"]
    shaped = [k for k, v in vals.items() if k in ops and ops[k] == "add"]
    assert vals[shaped[0]].strides == (0,) and vals[shaped[0]].shape == x.shape
    _, want, _, _, _ = grad_call(f, (x,))
    _, g = tg.grad(f, x)
    np.testing.assert_array_equal(g[0], want[0][0])
    _, replay = tg.play(g.tape, x)  # the recorded pass, on the dropped trace
    np.testing.assert_allclose(replay[0], want[0][0], rtol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_case_with_every_value_droppable(name, monkeypatch):
    monkeypatch.setattr(reverse, "_RELEASE_BYTES", 0)
    f, args = CASES[name]
    _, want, _, _, _ = grad_call(f, args)
    _, g = tg.grad(f, *args)
    for i in range(len(args)):
        np.testing.assert_array_equal(np.asarray(g[i]), np.asarray(want[i][0]))
    got = tg.grad(f, argnum=tuple(range(len(args))))(*args)
    for i in range(len(args)):
        np.testing.assert_array_equal(np.asarray(got[i]), np.asarray(want[i][0]))
    _, g = tg.grad(f, *args)
    _, replay = tg.play(g.tape, *args)  # g.tape first: the recorded pass on dropped values
    for i in range(len(args)):
        np.testing.assert_allclose(replay[i], want[i][0], rtol=1e-6 if name == "float32" else 1e-12)
