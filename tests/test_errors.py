"""The contract's errors: bad input gets a clear exception, never a silently wrong number."""

from __future__ import annotations

import os

import numpy as np
import pytest

import tapegrad as tg

HERE = os.path.basename(__file__)
x3 = np.array([0.5, -1.0, 2.0])


def _line_of(fn, text):
    """`test_errors.py:N` of the line in `fn` containing `text`."""
    import inspect

    lines, start = inspect.getsourcelines(fn)
    (k,) = [i for i, s in enumerate(lines) if text in s]
    return f"{HERE}:{start + k}"


# -- derivative contract ---------------------------------------------------------------------


def test_missing_rule_names_the_op():
    @tg.primitive
    def no_rule_op(x):
        return np.sin(x)

    with pytest.raises(tg.NoDerivativeError, match=r"no_rule_op.*argument 0"):
        tg.grad(lambda x: np.sum(no_rule_op(x)))(x3)
    # off the gradient path it is fine
    assert tg.grad(lambda x: np.sum(x) + np.sum(no_rule_op(np.ones(2))))(x3).tolist() == [1.0, 1.0, 1.0]


def test_non_scalar_loss():
    with pytest.raises(TypeError, match="jacobian.*elementwise_grad"):
        tg.grad(lambda x: x * 2.0)(x3)
    with pytest.raises(TypeError, match="jacobian"):
        tg.grad(lambda x: x * 2.0, x3)


@pytest.mark.parametrize("f, what", [(lambda x: np.sum(x) * 1j, "complex"),
                                     (lambda x: np.sum(x) > 0, "boolean"),
                                     (lambda x: np.sum(x > 0), "floating")])
def test_complex_bool_int_output(f, what):
    with pytest.raises(TypeError, match=what):
        tg.grad(f)(x3)


# -- in-place writes and dropped gradients ------------------------------------------------------


def test_setitem_on_traced_names_file_and_line():
    def f(x):
        x[0] = 1.0  # the offending line
        return np.sum(x)

    with pytest.raises(tg.TraceError, match=_line_of(f, "the offending line")):
        tg.grad(f)(x3.copy())


_PLAIN = np.zeros((4, 4))  # made outside any trace: a plain ndarray


def test_assigning_traced_into_plain_array():
    def f(A):
        B = _PLAIN.copy()
        B[:2, :2] = A  # here
        return np.sum(B)

    with pytest.raises(tg.TraceError, match=_line_of(f, "# here")):
        tg.grad(f)(np.ones((2, 2)))


def test_arrays_built_inside_the_trace_are_recorded():
    # np.zeros/np.array called while tracing give traced values (tapegrad.constructors)
    def f(A):
        B = np.zeros((4, 4))
        B[:2, :2] = A
        v = np.array([A[0, 0] ** 2, A[1, 1], 1.0])
        return np.sum(B * B) + np.sum(v) + np.sum(np.asarray(A) * 0.5)

    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(tg.grad(f)(A), 2 * A + [[2.5, 0.5], [0.5, 1.5]])
    tg.check_grads(f, modes=("fwd", "rev"), order=2)(A)
    assert type(np.zeros(2)) is np.ndarray  # outside a trace: NumPy as usual


@pytest.mark.parametrize("convert", [np.asanyarray, np.ascontiguousarray,
                                     lambda t: np.float64(3.0) * np.ones(3).__array__() + _PLAIN[0, :3]
                                     + np.asanyarray(t)])
def test_conversion_to_plain_array(convert):
    with pytest.raises(tg.TraceError, match="converted to a plain array"):
        tg.grad(lambda x: np.sum(convert(x)))(x3)


@pytest.mark.parametrize("f", [
    lambda x: np.sum(np.tanh(x, out=np.empty(3))),
    lambda x: np.sum(x, out=np.empty(())),
    lambda x: np.sum(np.cumsum(x, out=np.empty(3))),
    lambda x: np.sum(np.add(np.zeros(3), x, out=np.zeros(3))),
    lambda x: np.add.at(x, [0], 1.0),
    lambda x: x.sort(),
])
def test_out_and_inplace_ufuncs(f):
    with pytest.raises(tg.TraceError, match="in place"):
        tg.grad(f)(x3.copy())


def test_plain_array_augmented_by_traced():
    def f(x):
        y = _PLAIN[0, :3].copy()
        y += x  # an ndarray updated in place with a traced value
        return np.sum(y)

    with pytest.raises(tg.TraceError, match=_line_of(f, "y += x")):
        tg.grad(f)(x3)


def test_zeros_made_in_the_trace_augmented_by_traced():
    def f(x):
        y = np.zeros(3)  # traced constant: the in-place add is recorded
        y += x * x
        return np.sum(y)

    np.testing.assert_allclose(tg.grad(f)(x3), 2 * x3)


def test_augmented_assignment_on_traced_rebinds():
    """`t += v` on a traced value rebinds the name (Python's fallback to `t = t + v`): the
    accumulator pattern works, and the caller's array is not modified."""

    def f(x):
        acc = 0.0
        for r in (x, x * x):
            acc += np.sum(r)
        x += 1.0
        return acc * np.sum(x)

    x = x3.copy()
    g = tg.grad(f)(x)
    s, q = np.sum(x3), np.sum(x3 * x3)
    np.testing.assert_allclose(g, (1 + 2 * x3) * (s + 3) + (s + q))
    np.testing.assert_array_equal(x, x3)


@pytest.mark.parametrize("f, match", [
    (lambda x: np.sum(x, where=x > 0), "where"),
    (lambda x: np.add.reduce(x, initial=1.0), "initial"),
    (lambda x: np.sum(np.tanh(x, where=x > 0)), "where"),
    (lambda x: np.sum(np.histogram(x)[1]), "histogram is not supported"),
    (lambda x: np.sum(x.reshape(3, order="F")), "order"),
])
def test_unsupported_calls_raise_instead_of_guessing(f, match):
    with pytest.raises(tg.TraceError, match=match):
        tg.grad(f)(x3)


def test_escaped_tracer():
    leak = []

    def f(x):
        leak.append(x * 2.0)
        return np.sum(x)

    tg.grad(f)(x3)
    with pytest.raises(tg.TraceError, match="escaped"):
        tg.grad(lambda y: np.sum(y * leak[0]))(x3)


# -- play ---------------------------------------------------------------------------------------


def test_play_checks_inputs_and_names_them():
    _, tape = tg.trace(lambda x, m: np.tanh(x) * m["w"], x3, {"w": np.ones(3)})
    with pytest.raises(ValueError, match=r"argument 0: expected shape \(3,\), got \(4,\)"):
        tg.play(tape, np.ones(4), {"w": np.ones(3)})
    with pytest.raises(ValueError, match="argument 0: expected dtype float64, got float32"):
        tg.play(tape, np.ones(3, np.float32), {"w": np.ones(3)})
    with pytest.raises(ValueError, match=r"argument 1 field \('w',\): expected shape"):
        tg.play(tape, x3, {"w": np.ones(2)})
    with pytest.raises(ValueError, match="argument 1: structure"):
        tg.play(tape, x3, {"v": np.ones(3)})
    with pytest.raises(ValueError, match="takes 2 arguments, got 1"):
        tg.play(tape, x3)


# -- guards -------------------------------------------------------------------------------------


def test_guards_return_concrete_values_and_are_recorded():
    seen = {}

    def f(x):
        seen["bool"] = bool(np.sum(x) > 0)
        seen["int"] = int(np.sum(x > 0))
        seen["float"] = float(x[0])
        seen["item"] = x[2].item()
        seen["index"] = [10, 20, 30][np.argmax(x)]
        return np.sum(x) * seen["float"]

    val, tape = tg.trace(f, x3)
    assert seen == {"bool": True, "int": 2, "float": 0.5, "item": 2.0, "index": 30}
    kinds = [(g.kind, g.expected) for g in tape.guards]
    assert kinds == [("bool", True), ("int", 2), ("float", 0.5), ("item", 2.0), ("index", 2)]
    assert all(g.loc.startswith(HERE + ":") for g in tape.guards)
    assert val == pytest.approx(0.75)
    # a value read out by float()/item() is data, not a traced value: a documented gradient stop
    np.testing.assert_allclose(tg.grad(f)(x3), [0.5, 0.5, 0.5])


def test_play_fails_a_guard_on_another_path():
    def f(x):
        return np.sum(x) if np.sum(x) > 0 else -np.sum(x)

    _, tape = tg.trace(f, x3)
    assert tg.play(tape, x3 * 2) == pytest.approx(3.0)
    with pytest.raises(tg.GuardError, match="guard failed"):
        tg.play(tape, -x3)


def test_compiled_tape_wrong_argument_count_is_named():
    _, t = tg.trace(lambda x: np.sin(x) * 2, np.ones(3))
    ct = tg.compile(t, wait=True)
    with pytest.raises(ValueError, match="tape takes 1 arguments, got 2"):
        tg.play(ct, np.ones(3), np.ones(3))
    np.testing.assert_allclose(tg.play(ct, np.ones(3)), np.sin(np.ones(3)) * 2)


def test_function_grad_of_an_argument_with_nothing_to_differentiate():
    # as autograd ("Can't differentiate w.r.t. type int"): never the argument handed back
    for a in ("a", 3, None, {"n": 3}):
        with pytest.raises(TypeError, match="has nothing to differentiate"):
            tg.grad(lambda x: 3.0)(a)
    g = tg.grad(lambda d: np.sum(d["w"]) * d["n"])({"w": np.ones(2), "n": 3})
    np.testing.assert_array_equal(g["w"], [3.0, 3.0])
