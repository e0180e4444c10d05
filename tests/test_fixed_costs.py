"""The per-trace shortcuts keep their meaning: the numpy proxy's remembered lookups follow
a NumPy attribute rebound between traces, `checking()` follows TAPEGRAD_DEBUG as it is
set and unset, and the `sum` primitive gives what `np.sum` gives."""

import itertools

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.constructors import PROXY, user_numpy
from tapegrad.ir import prims as P
from tapegrad.passes import checking


def _f(x):
    return np.sum(np.exp(x))  # `np` here is this module's global: the proxy while tracing


def test_proxy_lookups_follow_a_rebound_numpy_attribute(monkeypatch):
    x = np.arange(3.0)
    _, g = tg.grad(_f, x)
    np.testing.assert_allclose(g[0], np.exp(x))
    with user_numpy(_f):
        assert globals()["np"] is PROXY
        assert PROXY.exp is np.exp
    monkeypatch.setattr(np, "exp", np.sin)  # rebound between traces: seen by the next one
    _, g = tg.grad(_f, x)
    np.testing.assert_allclose(g[0], np.cos(x))
    monkeypatch.undo()
    _, g = tg.grad(_f, x)
    np.testing.assert_allclose(g[0], np.exp(x))
    assert globals()["np"] is np  # restored after each trace


def test_checking_follows_the_environment(monkeypatch):
    monkeypatch.setenv("TAPEGRAD_DEBUG", "1")
    assert checking()
    monkeypatch.setenv("TAPEGRAD_DEBUG", "0")
    assert not checking()
    monkeypatch.setenv("TAPEGRAD_DEBUG", "")
    assert not checking()
    monkeypatch.delenv("TAPEGRAD_DEBUG")
    assert not checking()
    monkeypatch.setenv("TAPEGRAD_DEBUG", "yes")
    assert checking()


@pytest.mark.parametrize("dt", [np.bool_, np.int8, np.int32, np.uint16, np.int64, np.float16,
                                np.float32, np.float64, np.complex64])
def test_sum_primitive_is_np_sum(dt):
    for shape in [(), (0,), (5,), (2, 3), (2, 0, 3), (1, 4, 1)]:
        x = (np.arange(int(np.prod(shape))).reshape(shape) % 3).astype(dt)
        axes = [None] + list(range(len(shape))) + [tuple(range(len(shape)))]
        for ax, kd in itertools.product(axes, [False, True]):
            want = np.sum(x, axis=ax, keepdims=kd)
            got = P.sum_.impl(x, axis=ax, keepdims=kd)
            assert type(got) is type(want) and got.dtype == want.dtype
            assert np.shape(got) == np.shape(want) and np.array_equal(got, want)
    assert type(P.sum_.impl(np.float64(2.0))) is type(np.sum(np.float64(2.0)))
