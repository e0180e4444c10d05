"""Wider NumPy coverage (QA list): closed forms and NumPy values beyond the finite-difference
cases of tests/rule_cases_wider_numpy.py, guarded index functions under tg.jit, traced
*_like constructors, Tracer methods and their errors, tuple argnum for jacobian/hessian,
grad of a tuple, Param in-place operators."""

import math

import numpy as np
import pytest

import tapegrad as tg

rng = np.random.default_rng(0)


# -- values match NumPy ------------------------------------------------------------------------

VALUE_CASES = [
    ("diff", lambda x: np.diff(x, 2, axis=0, prepend=np.zeros((1, 4)), append=1.0), (3, 4)),
    ("cross", lambda x: np.cross(x[:, :3], x[:, 1:]), (3, 4)),
    ("kron 3-D", lambda x: np.kron(x.reshape(3, 2, 2), x[:2, :2]), (3, 4)),
    ("multi_dot", lambda x: np.linalg.multi_dot([x, x.T, x, np.arange(4.0)]), (3, 4)),
    ("sinc", lambda x: np.sinc(np.concatenate([x.ravel(), [0.0, 1e-9, -0.099 / np.pi, 1.0, 3.0]])), (3, 4)),
    ("sinc float32", lambda x: np.sinc(x.astype(np.float32)), (3, 4)),
    ("nan_to_num defaults", lambda x: np.nan_to_num(np.log(x)), (3, 4)),
    ("nan_to_num complex", lambda x: np.nan_to_num(np.log(x + 0j) * np.array([np.inf, 1.0, 1.0, 1.0])), (3, 4)),
    ("fabs", np.fabs, (3, 4)),
    ("heaviside", lambda x: np.heaviside(np.round(x), 0.25), (3, 4)),
    ("ptp", lambda x: np.ptp(x, axis=0), (3, 4)),
    ("average returned", lambda x: np.average(x, axis=1, weights=np.arange(1.0, 5.0), returned=True)[1], (3, 4)),
    ("average unweighted returned", lambda x: np.average(x, axis=0, returned=True)[1], (3, 4)),
    ("nanmean all-nan column", lambda x: np.nanmean(np.where(x > 0, x, np.nan), axis=0), (3, 4)),
    ("nansum float32", lambda x: np.nansum(np.where(x > 0, x, np.nan).astype(np.float32), axis=1), (3, 4)),
    ("rot90 3-D", lambda x: np.rot90(x.reshape(2, 3, 2), 3, axes=(1, 2)), (3, 4)),
    ("nonzero", lambda x: np.nonzero(x > 0)[1], (3, 4)),
    ("flatnonzero", lambda x: np.flatnonzero(x > 0), (3, 4)),
    ("argwhere", lambda x: np.argwhere(x > 0), (3, 4)),
    ("where(cond)", lambda x: np.where(x > 0)[0], (3, 4)),
    ("count_nonzero", lambda x: np.count_nonzero(x > 0, axis=1, keepdims=True), (3, 4)),
    ("searchsorted", lambda x: np.searchsorted(np.sort(x.ravel()), x[0], side="right"), (3, 4)),
    ("compress", lambda x: np.compress(x[0] > 0, x, axis=1), (3, 4)),
]


@pytest.mark.parametrize("name,f,shape", VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
def test_values_match_numpy(name, f, shape):
    x = rng.uniform(-2, 2, shape)
    with np.errstate(all="ignore"):
        want = f(x)
        got, _ = tg.trace(f, x)
    assert np.shape(got) == np.shape(want) and np.result_type(got) == np.result_type(want)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


def test_cross_2_vectors_warns_like_numpy():
    with pytest.warns(DeprecationWarning, match="2-dimensional vectors"):
        v, _ = tg.trace(lambda a: np.cross(a, np.array([1.0, 2.0])), np.array([3.0, 4.0]))
    assert v == 2.0


def test_cross_bad_dimension():
    with pytest.raises(ValueError, match="incompatible dimensions for cross product"):
        tg.trace(lambda a: np.cross(a, a), np.ones(4))


# -- gradients in closed form ------------------------------------------------------------------


def test_nan_to_num_gradient_is_one_where_finite_zero_where_replaced():
    x = np.array([1.5, np.nan, np.inf, -np.inf, -2.0])
    g = tg.grad(lambda x: np.sum(np.nan_to_num(x) * 1e-300))(x) * 1e300
    np.testing.assert_array_equal(g, [1.0, 0.0, 0.0, 0.0, 1.0])
    g = tg.grad(lambda x: np.sum(np.nan_to_num(x, posinf=2.0, neginf=-2.0) ** 2))(x)
    np.testing.assert_array_equal(g, [3.0, 0.0, 0.0, 0.0, -4.0])


def test_sinc_derivatives_at_and_near_zero():
    d1 = tg.grad(np.sinc)
    d2 = tg.grad(tg.grad(np.sinc))
    assert d1(0.0) == 0.0
    np.testing.assert_allclose(d2(0.0), -np.pi ** 2 / 3, rtol=1e-14)
    for x in (1e-7, 0.02, 0.05, 0.3, 1.7):  # against the closed forms, both branches
        y = np.pi * x
        want1 = np.pi * (y * np.cos(y) - np.sin(y)) / y ** 2 if x > 0.01 else np.pi * (-y / 3 + y ** 3 / 30)
        np.testing.assert_allclose(d1(x), want1, rtol=1e-9)
        want2 = np.pi ** 2 * ((2 - y * y) * np.sin(y) - 2 * y * np.cos(y)) / y ** 3 if x > 0.01 \
            else -np.pi ** 2 / 3 + np.pi ** 4 * x * x / 10
        np.testing.assert_allclose(d2(x), want2, rtol=1e-7)


def test_fabs_and_heaviside_gradients():
    x = np.array([-1.5, 0.0, 2.0])
    np.testing.assert_array_equal(tg.grad(lambda x: np.sum(np.fabs(x)))(x), [-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(tg.grad(lambda x: np.sum(np.heaviside(x, 0.5) + x))(x), [1.0, 1.0, 1.0])
    # forward mode too
    _, t = tg.make_jvp(lambda x: np.fabs(x) + np.heaviside(x, 1.0))(x)(np.ones(3))
    np.testing.assert_array_equal(t, [-1.0, 0.0, 1.0])


def test_average_and_nanmean_gradients():
    x, w = np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 4.0])
    gx, gw = tg.grad(lambda x, w: np.average(x, weights=w), argnum=(0, 1))(x, w)
    np.testing.assert_allclose(gx, w / w.sum())
    np.testing.assert_allclose(gw, (x - np.average(x, weights=w)) / w.sum())
    g = tg.grad(lambda x: np.nanmean(np.where(x > 1.5, x, np.nan)))(x)
    np.testing.assert_array_equal(g, [0.0, 0.5, 0.5])
    with pytest.raises(ZeroDivisionError, match="Weights sum to zero"):
        tg.grad(lambda w: np.average(x, weights=w))(np.array([1.0, -1.0, 0.0]))


def test_ptp_diff_kron_multi_dot_gradients():
    x = np.array([3.0, -1.0, 2.0])
    np.testing.assert_array_equal(tg.grad(np.ptp)(x), [1.0, -1.0, 0.0])
    np.testing.assert_array_equal(tg.grad(lambda x: np.sum(np.diff(x) * np.array([1.0, 2.0])))(x),
                                  [-1.0, -1.0, 2.0])
    A, B = rng.standard_normal((2, 3)), rng.standard_normal((3, 2))
    np.testing.assert_allclose(tg.grad(lambda a: np.sum(np.kron(a, B)))(A), np.full((2, 3), B.sum()))
    C = rng.standard_normal((2, 4))
    np.testing.assert_allclose(tg.grad(lambda b: np.sum(np.linalg.multi_dot([A, b, C])))(B),
                               A.sum(0)[:, None] * C.sum(1)[None, :])


# -- index functions: guarded, re-traced by tg.jit -----------------------------------------------


def _positive_sum(x):
    return np.sum(x[np.nonzero(x > 0)] ** 2) + 0.0 * np.count_nonzero(x)


def test_nonzero_is_guarded_and_jit_retraces():
    _, tape = tg.trace(_positive_sum, np.array([1.0, -2.0, 3.0]))
    assert any(g.kind == "shape" for g in tape.guards)
    jf = tg.jit(tg.value_and_grad(_positive_sum), compile=False)
    for x in (np.array([1.0, -2.0, 3.0]), np.array([-1.0, 2.0, 3.0]),  # same count: replayed
              np.array([1.0, 2.0, 3.0]), np.array([-1.0, -2.0, 0.5])):  # other counts: re-traced
        v, g = jf(x)
        assert v == np.sum(np.where(x > 0, x, 0.0) ** 2)
        np.testing.assert_array_equal(g, np.where(x > 0, 2 * x, 0.0))
    info = jf.cache_info()
    assert info.hits >= 1 and info.misses + info.retraces >= 3, info


def test_searchsorted_and_flatnonzero_replay_with_new_values():
    def f(x):
        k = np.searchsorted(np.sort(x), 0.0)
        return np.sum(np.sort(x)[k:]) + np.sum(x[np.flatnonzero(x < -1)])

    jf = tg.jit(tg.grad(f), compile=False)
    for x in (np.array([0.5, -1.5, 2.0, -0.2]), np.array([-0.5, -1.2, 2.5, 0.1]), np.array([3.0, 1.0, -2.0, -3.0])):
        np.testing.assert_array_equal(jf(x), np.where(x > 0, 1.0, 0.0) + np.where(x < -1, 1.0, 0.0))


def test_nonzero_of_0d_refused_like_numpy():
    with pytest.raises(ValueError, match="nonzero on 0d arrays"):
        tg.trace(lambda x: np.nonzero(x), np.array(1.0))


# -- *_like and np.full with traced values -------------------------------------------------------


def _shift(x):
    y = np.zeros_like(x)
    y[1:] = x[:-1]
    return y


def test_zeros_like_is_a_traced_constant_and_writes_are_recorded():
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(tg.trace(_shift, x)[0], [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(tg.grad(lambda x: np.sum(_shift(x) * np.array([1.0, 2.0, 3.0])))(x),
                                  [2.0, 3.0, 0.0])

    def f(x):
        o, e, fl = np.ones_like(x), np.empty_like(x, shape=(2,)), np.full_like(x, 2.0, dtype=np.float32)
        assert tg.is_traced(o) and o.is_constant() and e.shape == (2,) and fl.dtype == np.float32
        o[0] = x[1] * x[2]
        return np.sum(o * x)

    np.testing.assert_allclose(tg.grad(f)(x), [6.0, 1.0 + 3.0, 1.0 + 2.0])


def test_full_with_traced_fill_is_differentiable():
    def f(x):
        y = np.full(3, x[0])
        y[1] = x[1] ** 2  # a fresh array: writable, and the write does not reach x
        return np.sum(y * x)

    x = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(tg.grad(f)(x), [2 * x[0] + x[2], 3 * x[1] ** 2, x[0]])
    np.testing.assert_allclose(tg.grad(lambda x: np.sum(np.full_like(x, x[2]) ** 2))(x), [0.0, 0.0, 6 * x[2]])
    np.testing.assert_allclose(tg.grad(lambda x: np.sum(np.full((2, 2), x[0] * x[1], dtype=np.float32)))(x),
                               [4 * x[1], 4 * x[0], 0.0])


# -- Tracer methods and attributes ---------------------------------------------------------------


def test_easy_methods_and_attributes():
    x = np.arange(6.0).reshape(2, 3)

    def f(x):
        assert x.nbytes == 48 and x.itemsize == 8
        assert x.mT.shape == (3, 2)
        r = x.repeat(2, axis=0)
        c = x.compress([True, False, True], axis=1)
        return np.sum(r * r) + np.sum(c) + np.sum(x.mT @ x)

    v, _ = tg.trace(f, x)
    want = np.sum(x.repeat(2, axis=0) ** 2) + np.sum(x.compress([True, False, True], axis=1)) + np.sum(x.T @ x)
    assert v == want
    g = tg.grad(f)(x)
    np.testing.assert_allclose(g, 4 * x + np.array([1.0, 0.0, 1.0]) + 2 * x @ np.ones((3, 3)), rtol=1e-14)


def test_round_builtin_is_np_round():
    x = np.array(2.567)
    v, _ = tg.trace(lambda x: round(x * 1.0), x)
    assert v == 3.0
    v, _ = tg.trace(lambda x: round(x, 1), x)
    assert v == np.round(2.567, 1)
    assert tg.grad(lambda x: round(x) * x)(x) == 3.0


@pytest.mark.parametrize("name,use", [
    ("view", lambda x: x.view(np.int64)), ("fill", lambda x: x.fill(0.0)), ("put", lambda x: x.put([0], 1.0)),
    ("flat", lambda x: x.flat[0]), ("tobytes", lambda x: x.tobytes()), ("resize", lambda x: x.resize(4)),
    ("partition", lambda x: x.partition(1)), ("strides", lambda x: x.strides),
])
def test_unsupported_ndarray_attributes_raise_trace_error(name, use):
    with pytest.raises(tg.TraceError, match=rf"ndarray\.{name} is not supported on traced values"):
        tg.grad(lambda x: np.sum(use(x)))(np.ones(3))


def test_unknown_attribute_is_a_plain_attribute_error_and_probes_still_work():
    def f(x):
        assert not hasattr(x, "flags") and getattr(x, "base", "none") == "none"
        with pytest.raises(AttributeError, match="no attribute 'frobnicate'") as e:
            _ = x.frobnicate
        assert not isinstance(e.value, tg.TraceError)
        return np.sum(x)

    tg.grad(f)(np.ones(2))


# -- transforms: tuple argnum, tuple outputs -----------------------------------------------------


def test_jacobian_and_hessian_with_tuple_argnum():
    def f(x, y):
        return np.sum(x * x * y) + np.sum(np.sin(x)) * y[0]

    x, y = np.array([0.5, -1.0]), np.array([2.0, 3.0])
    (hxx, hxy), (hyx, hyy) = tg.hessian(f, argnum=(0, 1))(x, y)
    np.testing.assert_allclose(hxx, np.diag(2 * y - np.sin(x) * y[0]))
    np.testing.assert_allclose(hxy, [[2 * x[0] + np.cos(x[0]), 0.0], [np.cos(x[1]), 2 * x[1]]])
    np.testing.assert_allclose(hyx, hxy.T)
    np.testing.assert_array_equal(hyy, np.zeros((2, 2)))
    np.testing.assert_allclose(tg.hessian(f, argnum=1)(x, y), hyy)
    jx, jy = tg.jacobian(lambda x, y: x * y[0], argnum=(0, 1))(x, y)
    np.testing.assert_array_equal(jx, np.eye(2) * y[0])
    np.testing.assert_array_equal(jy, [[x[0], 0.0], [x[1], 0.0]])
    (j,) = tg.jacobian(lambda x, y: x * 2.0, argnum=[0])(x, y)
    np.testing.assert_array_equal(j, 2 * np.eye(2))


def test_bad_argnum_is_a_clear_type_error():
    for transform in (tg.jacobian, tg.hessian):
        with pytest.raises(TypeError, match="argnum must be an int or a tuple of ints"):
            transform(np.sin, argnum="x")


def test_grad_of_a_tuple_says_it_needs_a_scalar():
    with pytest.raises(TypeError, match="grad needs a scalar output, got a tuple"):
        tg.grad(lambda x: (np.sum(x), 1.0))(np.ones(3))
    with pytest.raises(TypeError, match="needs a scalar output, got a list"):
        tg.grad(lambda x: [np.sum(x)], np.ones(3))


# -- Param in-place operators ----------------------------------------------------------------------


def test_param_inplace_operators_keep_a_param():
    W = tg.Param(np.array([1.0, 2.0, 3.0]))
    buf = W.value
    r = tg.diff(lambda: np.sum(W ** 2))
    W -= 0.25 * tg.grad(r, W)
    assert isinstance(W, tg.Param) and W.value is buf
    np.testing.assert_array_equal(W.value, [0.5, 1.0, 1.5])
    W *= 2.0
    W += tg.Param(np.ones(3))
    W /= 2.0
    W **= 2
    np.testing.assert_array_equal(W.value, [1.0, 2.25, 4.0])
    M = tg.Param(np.eye(2))
    M @= np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(M.value, [[1.0, 2.0], [3.0, 4.0]])
    assert math.isclose(tg.value(tg.diff(lambda: np.sum(M))), 10.0)
