"""Reliability of the core: threads, leaks, NaN/inf semantics, debug_nans."""

import gc
import resource
import threading

import numpy as np
import pytest

import tapegrad as tg


def _fns():
    return [
        (lambda x: np.sum(np.tanh(x) * x), lambda x: np.tanh(x) + x * (1 - np.tanh(x) ** 2)),
        (lambda x: np.sum(np.exp(-x * x)), lambda x: -2 * x * np.exp(-x * x)),
        (lambda x: np.sum(np.sin(x) ** 2), lambda x: 2 * np.sin(x) * np.cos(x)),
        (lambda x: np.mean(x**3), lambda x: 3 * x**2 / x.size),
    ]


def _run_threads(n_threads, n_calls):
    fns = _fns()
    errors, results = [], {}

    def work(k):
        try:
            f, df = fns[k % len(fns)]
            rng = np.random.default_rng(k)
            for i in range(n_calls):
                x = rng.normal(size=5)
                val, g = tg.grad(f, x)
                np.testing.assert_allclose(val, f(x), rtol=1e-12)
                np.testing.assert_allclose(g[0], df(x), rtol=1e-10, atol=1e-12)
            results[k] = n_calls
        except Exception as e:  # surfaced below
            errors.append((k, e))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sum(results.values()) == n_threads * n_calls


def test_threads_trace_independently():
    _run_threads(8, 60)


@pytest.mark.slow
def test_threads_1000_calls_each():
    _run_threads(8, 1000)


def _rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover


def _leak_run(n):
    f = lambda x: np.sum(np.tanh(x) ** 2)  # noqa: E731
    x = np.random.default_rng(0).normal(size=10)
    for _ in range(500):
        tg.grad(f, x)
    gc.collect()
    before = _rss_mb()
    for _ in range(n):
        tg.grad(f, x)
    gc.collect()
    return before, _rss_mb()


def test_no_leak_short():
    before, after = _leak_run(5_000)
    assert after - before < 5, (before, after)


@pytest.mark.slow
def test_no_leak_100k():
    before, after = _leak_run(100_000)
    assert after - before < 5, (before, after)


def test_nan_and_inf_propagate_like_numpy():
    x = np.array([0.0, 1.0, np.inf, np.nan, -1.0])
    f = lambda x: np.sum(np.sqrt(x))  # noqa: E731
    with np.errstate(all="ignore"):
        val, g = tg.grad(f, x)
        expect_val = np.sum(np.sqrt(x))
        expect_g = 0.5 / np.sqrt(x)
    assert np.isnan(val) and np.isnan(expect_val)
    np.testing.assert_array_equal(g[0], expect_g)  # inf, 0.5, 0, nan, nan


def test_debug_nans_names_the_op():
    f = lambda x: np.sum(np.log(x) * 0.0 + x)  # noqa: E731
    x = np.array([-1.0, 2.0])
    with pytest.raises(FloatingPointError, match=r"forward pass by %\d+ = log"):
        with np.errstate(all="ignore"), tg.debug_nans():
            tg.grad(f, x)
    with np.errstate(all="ignore"):
        val, g = tg.grad(f, x)  # off again: NumPy semantics, no exception
    assert np.isnan(val)


def test_debug_nans_in_backward():
    # forward is finite, the backward of sqrt at 0 gives inf * 0 = nan
    f = lambda x: np.sum(np.sqrt(x) * 0.0)  # noqa: E731
    with pytest.raises(FloatingPointError, match="backward pass"):
        with np.errstate(all="ignore"), tg.debug_nans():
            tg.grad(f, np.array([0.0, 1.0]))[1][0]  # the Yota form runs the reverse pass on read


def test_replay_inside_a_trace_checks_guards():
    def f(x, n):
        s = x
        for _ in range(int(n)):
            s = s * x
        return np.sum(s)

    _, tape = tg.trace(f, np.array([2.0]), np.array(1))
    # replaying the n=1 tape for n=2 inside grad must not silently take the n=1 path
    with pytest.raises(tg.GuardError):
        tg.grad(lambda x: tg.play(tape, x, np.array(2)))(np.array([2.0]))
    np.testing.assert_allclose(tg.grad(lambda x: tg.play(tape, x, np.array(1)))(np.array([3.0])), [6.0])


def test_boolean_mask_result_shape_is_guarded():
    _, tape = tg.trace(lambda x: np.sum(x[x > 0]), np.array([1.0, -1.0, 2.0]))
    assert [(g.kind, g.expected) for g in tape.guards] == [("shape", (2,))]
    assert tg.play(tape, np.array([5.0, 1.0, -2.0])) == 6.0
    with pytest.raises(tg.GuardError):
        tg.play(tape, np.array([1.0, 1.0, 2.0]))


def test_static_values_keep_their_type():
    from tapegrad.tree import flatten

    assert flatten({"a": True})[2] != flatten({"a": 1})[2]
    assert flatten([1])[2] != flatten([1.0 + 0j == 1])[2]


def test_unbroadcast_of_a_lower_rank_cotangent():
    from tapegrad.ir.prims import defprim
    from tapegrad.rules import vjp
    from tapegrad.trace import bind

    p = defprim("test_sum0", lambda x: np.sum(x, axis=0), user=True)
    vjp(p, lambda g, ans, x: g)  # shape (3,) for an input of shape (1, 3): broadcasts up
    f = lambda x: np.sum(bind(p, x) * np.arange(3.0))  # noqa: E731
    np.testing.assert_array_equal(tg.grad(f)(np.ones((1, 3))), [[0.0, 1.0, 2.0]])


def test_gradients_never_alias_inputs_or_each_other():
    # d/da sum(a*b) is b itself: returned as is, tg.update would change it under the next
    # leaf's update (b -= lr * a with a already updated in place)
    a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    m = {"a": a, "b": b}
    _, g = tg.grad(lambda m: np.sum(m["a"] * m["b"]), m)
    assert not np.may_share_memory(g[0][("a",)], b) and not np.may_share_memory(g[0][("b",)], a)
    tg.update(m, g[0], lambda x, gx: x - 0.1 * gx)
    np.testing.assert_allclose(m["a"], [0.7, 1.6])
    np.testing.assert_allclose(m["b"], [2.9, 3.8])
    # d/dx and d/dy of sum(x + y) are the same broadcast of 1: two fresh writable arrays
    _, g = tg.grad(lambda x, y: np.sum(x + y), np.ones(3), np.ones(3))
    assert g[0] is not g[1] and g[0].flags.writeable and g[1].flags.writeable
    gx = g[0]
    gx *= 2.0
    np.testing.assert_array_equal(g[1], [1.0, 1.0, 1.0])
    # the same holds for the replayed tape and the autograd-style transform
    gx, gy = tg.grad(lambda x, y: np.sum(x * y), argnum=(0, 1))(a, b)
    assert not np.may_share_memory(gx, b) and not np.may_share_memory(gy, a)
    out = tg.play(g.tape, np.ones(3), np.ones(3))[1]
    assert out[0] is not out[1] and out[0].flags.writeable


def test_lazy_per_argument_passes_share_cotangents():
    # reading g[i] one at a time, in any order, equals one full reverse pass, and g.tape
    # (built after them) replays to the same values
    from tapegrad.core import grad_call

    r = np.random.default_rng(5)
    Wx, Wh, b, xs = r.normal(size=(3, 4)), r.normal(size=(4, 4)), r.normal(size=4), r.normal(size=(5, 2, 3))

    def loss(Wx, Wh, b, xs):
        h = np.zeros((2, 4))
        for t in range(xs.shape[0]):
            h = np.tanh(xs[t] @ Wx + h @ Wh + b)
        return np.sum(h * h)

    args = (Wx, Wh, b, xs)
    _, want, _, _, _ = grad_call(loss, args)
    for order in ([2, 0, 3, 1], [1, 3, 0, 2]):
        _, g = tg.grad(loss, *args)
        for i in order:
            np.testing.assert_allclose(g[i], want[i][0], rtol=1e-12, atol=1e-14)
        _, replay = tg.play(g.tape, *args)
        for i in range(4):
            np.testing.assert_allclose(replay[i], want[i][0], rtol=1e-12, atol=1e-14)


def test_a_grad_call_leaves_no_reference_cycle():
    # traced values (and the arrays they hold) must be freed by reference counting: a
    # cycle would keep every intermediate of a big eager gradient alive until the cyclic
    # GC runs, which it does by object count, not bytes (RSS grew 150 MB per 1e6 call)
    f = lambda x: np.sum(np.tanh(x) * x)  # noqa: E731
    x = np.arange(4.0)
    tg.grad(f, x)[1][0]
    gc.collect()
    gc.disable()
    try:
        before = gc.collect()
        _, g = tg.grad(f, x)
        g[0]  # (g.tape runs the passes, whose networkx graphs are cyclic but hold no arrays)
        del g
        assert gc.collect() == 0
    finally:
        gc.enable()
    del before
