"""Index assignment and in-place updates on traced arrays (tapegrad/inplace.py,
rules/index_update.py): values match plain NumPy running the same code, gradients match
finite differences (check_grads, fwd and rev, order 2) and closed forms, aliasing views
follow NumPy or are refused with TraceError."""

import numpy as np
import pytest

import tapegrad as tg

rng = np.random.default_rng(7)
X = rng.uniform(-2, 2, (3, 4))
V = rng.uniform(-2, 2, (3, 4))


def _same_as_numpy(f, *args):
    """f traced gives NumPy's value; its gradients pass check_grads in both modes."""
    want = f(*[a.copy() for a in args])
    got, _ = tg.trace(f, *args)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    tg.check_grads(f, modes=("fwd", "rev"), order=2)(*args)


# -- x[idx] = v, x[mask] *= 2, x[1:3] += v ------------------------------------------------------


def f_slice(x, v):
    y = x * 1.0
    y[1:3, ::2] = v[0, :2] * v[1, 1]
    return np.sum(np.sin(y) * y)


def f_int_and_neg(x, v):
    y = np.tanh(x)
    y[-1] = v[0]
    y[0, -1] = 3.0 * v[1, 1]
    return y * x


def f_mask_mul(x, v):
    y = x + v
    y[y > 0] *= 2.0
    return np.sum(y * y)


def f_augmented_slice(x, v):
    y = x * 2.0
    y[1:3] += v[:2] ** 2
    y[:, 0] -= v[2, 0]
    y[0] /= 1.5 + v[0, 0] ** 2
    return y


def f_fancy(x, v):
    y = x.copy()
    y[[0, 2], [1, 3]] = v[0, :2]
    y[:, [0, 0, 3]] = v[:, :3]  # repeated column: the last write (v[:, 1]) wins
    return y * x


def f_ellipsis_and_newaxis(x, v):
    y = np.exp(x)
    y[...] = y[::-1] * v  # a whole-array write of a value that reads y
    y[None, 0] = v[1]
    return y


def f_loop_rows(x, v):
    y = np.zeros_like(x) + x  # traced
    for i in range(1, y.shape[0]):
        y[i] = np.tanh(y[i - 1] * v[i])
    return y


@pytest.mark.parametrize("f", [f_slice, f_int_and_neg, f_mask_mul, f_augmented_slice, f_fancy,
                               f_ellipsis_and_newaxis, f_loop_rows], ids=lambda f: f.__name__)
def test_matches_numpy_and_finite_differences(f):
    _same_as_numpy(f, X, V)


def test_closed_form_gradients():
    def f(x, v):
        y = x * 1.0
        y[0, :2] = v  # overwritten: no gradient to x[0, :2]; v gets g there
        return np.sum(y * np.arange(12.0).reshape(3, 4))

    gx, gv = tg.grad(f, argnum=(0, 1))(X, np.array([1.0, 2.0]))
    want = np.arange(12.0).reshape(3, 4)
    want[0, :2] = 0
    np.testing.assert_array_equal(gx, want)
    np.testing.assert_array_equal(gv, [0.0, 1.0])


def test_repeated_index_last_write_wins_gradient():
    def f(x, v):
        y = x * 1.0
        y[np.array([1, 1, 0])] = v  # rows: v[0] then v[1] to row 1; v[1] wins; v[2] to row 0
        return np.sum(y * np.array([1.0, 10.0, 100.0]))

    x, v = np.ones(3), np.array([2.0, 3.0, 4.0])
    assert np.isclose(f(x.copy(), v), 4 + 30 + 100)
    gx, gv = tg.grad(f, argnum=(0, 1))(x, v)
    np.testing.assert_array_equal(gx, [0.0, 0.0, 100.0])
    np.testing.assert_array_equal(gv, [0.0, 10.0, 1.0])


def test_traced_integer_index():
    def f(x, v):
        y = x * 1.0
        y[np.argmax(x)] = v  # the index is a traced integer (no gradient)
        return np.sum(y ** 2)

    x, v = np.array([0.5, 3.0, -1.0]), 2.0
    assert np.isclose(tg.grad(f)(x, v).tolist()[1], 0.0)
    np.testing.assert_allclose(tg.grad(f, argnum=1)(x, v), 4.0)
    np.testing.assert_allclose(tg.grad(f)(x, v), [1.0, 0.0, -2.0])


def test_hessian_and_nested_grad_through_writes():
    def f(x):
        y = x * x
        y[1] = x[0] * x[2]
        y[2] *= x[1]
        return np.sum(y)  # x0^2 + x0 x2 + x2^2 x1

    x = np.array([1.0, 2.0, 3.0])
    H = tg.hessian(f)(x)
    np.testing.assert_allclose(H, [[2, 0, 1], [0, 0, 2 * x[2]], [1, 2 * x[2], 2 * x[1]]])
    g2 = tg.elementwise_grad(lambda x: tg.grad(f)(x)[1])(x)
    np.testing.assert_allclose(g2, [0.0, 0.0, 2 * x[2]])


def test_forward_mode_make_jvp():
    t = rng.uniform(-1, 1, X.shape)
    val, tan = tg.make_jvp(lambda x: f_fancy(x, V))(X)(t)
    eps = 1e-6
    num = (f_fancy(X + eps * t, V) - f_fancy(X - eps * t, V)) / (2 * eps)
    np.testing.assert_allclose(tan, num, rtol=1e-6, atol=1e-8)


def test_replay_and_dynamic_cache():
    def f(x, v):
        y = x * 1.0
        y[x > 0] *= v
        y[0] = 1.0
        return np.sum(y)

    val, tape = tg.trace(f, X, 3.0)
    x2 = -X
    np.testing.assert_allclose(tg.play(tape, X, 2.0), f(X.copy(), 2.0))
    jf = tg.jit(f)
    for x in (X, x2):
        np.testing.assert_allclose(jf(x, 3.0), f(x.copy(), 3.0))
    _, g = tg.grad(f, X, 3.0)
    num = (f(X.copy(), 3.0 + 1e-6) - f(X.copy(), 3.0 - 1e-6)) / 2e-6
    np.testing.assert_allclose(g[1], num, rtol=1e-6)


def test_printed_tape_has_index_update():
    def f(x):
        y = x * 2.0
        y[1:] = 0.0
        return y

    _, tape = tg.trace(f, np.ones(3))
    text = str(tape)
    assert "index_update(" in text and "float64[3]" in text


# -- x += v on traced values -------------------------------------------------------------------


def test_augmented_assignment_updates_aliases_like_numpy():
    def f(x):
        y = x * 1.0
        alias = y
        y += 1.0  # NumPy: in place, so `alias` sees it
        y *= x
        return alias

    _same_as_numpy(f, X)


def test_augmented_assignment_casting_and_shape_follow_numpy():
    def f32(x):
        y = x.astype(np.float32)
        y += x  # float64 into float32: same_kind, the result stays float32
        return y

    out, _ = tg.trace(f32, X)
    assert out.dtype == np.float32

    def grows(x):
        y = x[0] * 1.0
        y += x  # (4,) += (3, 4): NumPy refuses
        return y

    with pytest.raises(ValueError, match="non-broadcastable"):
        tg.trace(grows, X)


def test_augmented_assignment_on_input_rebinds_the_name():
    def f(x):
        x += 1.0
        return np.sum(x * x)

    x = X.copy()
    np.testing.assert_allclose(tg.grad(f)(x), 2 * (X + 1))
    np.testing.assert_array_equal(x, X)


# -- views: NumPy semantics or TraceError --------------------------------------------------------


def views_base_written(x):
    y = x * 1.0
    row, col, t, flat = y[0], y[:, 1], y.T, y.reshape(-1)
    y[0, 1] = 5.0 * x[2, 2]  # every view above sees this in NumPy
    y[1:, 2] += x[0, 0]
    return row * 2 + col[0] + t[1, 0] + flat[2:5].sum()


def views_written(x):
    y = x * 1.0
    row = y[1]
    row[2] = x[0, 0] ** 2  # writes through to y
    y.T[0, 2] = 7.0  # writes through a transpose
    blk = y[:2, 1:3]
    blk *= x[2, :2]  # augmented assignment of a view
    for r in y[1:]:  # iteration yields views, too
        r[0] -= 1.0
    flat = y.reshape(-1)
    flat[-1] = np.sum(row)
    return y + row[0] + blk[1, 0]


def views_of_views(x):
    y = x * 1.0
    a = y[1:]
    b = a[:, ::2]
    b[0, 0] = 9.0 * x[0, 3]  # reaches y and a
    return y[1, 0] + a[0, 0] + b[0, 0] + np.sum(y)


def views_complex_parts(x):
    z = x + 1j * x[::-1]
    re = z.real
    z.imag[0] = x[1, 1]
    z[1] *= 2.0
    return np.abs(z) + re


def views_split(x):
    y = x * 1.0
    a, b = np.split(y, 2, axis=1)
    y[:, 0] = 3.0 * x[:, 3]
    b[1, 1] = a[0, 0] * 2.0
    return np.concatenate([a, b], axis=1) + y


@pytest.mark.parametrize("f", [views_base_written, views_written, views_of_views,
                               views_complex_parts, views_split], ids=lambda f: f.__name__)
def test_views_follow_numpy(f):
    _same_as_numpy(f, X)


def test_copies_are_not_views():
    def f(x):
        y = x * 1.0
        c1, c2, c3 = y.copy(), np.copy(y), y.flatten()
        c4 = y.T.reshape(-1)  # a copy in NumPy (non-contiguous)
        c5 = +y
        c6 = y[[0, 1]]  # advanced indexing copies
        y[0, 0] = 100.0
        c1[1, 1] = -1.0
        return np.sum(c1) + np.sum(c2) + np.sum(c3) + np.sum(c4) + np.sum(c5) + np.sum(c6) + np.sum(y)

    _same_as_numpy(f, X)


def test_read_only_views_refuse_writes_like_numpy():
    def f(x):
        y = x * 1.0
        b = np.broadcast_to(y[0], (2, 4))
        b[0, 0] = 1.0
        return b

    with pytest.raises(ValueError, match="read-only"):
        f(X.copy())
    with pytest.raises(ValueError, match="read-only"):
        tg.trace(f, X)

    def g(x):  # but a base write reaches a read-only view
        y = x * 1.0
        b = np.broadcast_to(y[0], (2, 4))
        y[0, 1] = 3.0
        return b

    _same_as_numpy(g, X)


# -- refused: TraceError naming the line ---------------------------------------------------------


_PLAIN = np.zeros((4, 4))  # made outside any trace


def test_plain_ndarray_target_refused_with_supported_form():
    def f(a):
        B = _PLAIN.copy()  # a plain ndarray (np.zeros inside the trace would be traced)
        B[:2, :2] = a  # the offending line
        return np.sum(B)

    with pytest.raises(tg.TraceError, match=r"test_setitem.py:\d+.*like=A"):
        tg.grad(f)(np.ones((2, 2)))

    def g(a):  # supported: B made while tracing (like= is optional, NEP 35 form)
        B = np.zeros((4, 4), like=a)
        B[:2, :2] = a
        B[2:, 2:] = a * a
        return np.sum(B * np.arange(16.0).reshape(4, 4))

    W = np.arange(16.0).reshape(4, 4)
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(tg.grad(g)(a), W[:2, :2] + 2 * a * W[2:, 2:])
    assert np.isclose(g(a), tg.trace(g, a)[0])

    def h(a):  # the same without like=: np.zeros called in the traced code is traced
        B = np.zeros((4, 4))
        B[:2, :2] = a
        B[2:, 2:] = a * a
        return np.sum(B * np.arange(16.0).reshape(4, 4))

    np.testing.assert_allclose(tg.grad(h)(a), W[:2, :2] + 2 * a * W[2:, 2:])


def test_writing_an_input_refused():
    def f(x):
        x[0] = 1.0
        return np.sum(x)

    with pytest.raises(tg.TraceError, match=r"input.*x\.copy\(\)"):
        tg.grad(f)(X)

    def g(x):
        row = x[0]
        row[1] = 2.0  # a view of the input
        return np.sum(x)

    with pytest.raises(tg.TraceError, match="input"):
        tg.grad(g)(X)

    def h(x):  # the suggested fix
        x = x.copy()
        x[0] = 1.0
        return np.sum(x * x)

    expect = 2 * X
    expect[0] = 0
    np.testing.assert_allclose(tg.grad(h)(X), expect)


def test_writing_an_enclosing_value_from_an_inner_trace_refused():
    def f(x):
        y = x * 1.0

        def inner(z):
            y[0] = z  # y belongs to the outer trace
            return np.sum(y)

        return tg.grad(inner)(x[1])

    with pytest.raises(tg.TraceError, match="enclosing"):
        tg.grad(f)(np.array([1.0, 2.0]))

    def ok(x):  # a copy made inside the inner function is the inner function's own
        y = x * x

        def inner(z):
            w = y.copy()
            w[0] = z * z
            return np.sum(w * x)

        return tg.grad(inner)(x[1])

    x = np.array([1.5, 2.0])
    # inner gradient: 2 z x0 at z = x1 -> d/dx of 2 x0 x1 = [2 x1, 2 x0]
    np.testing.assert_allclose(tg.grad(ok)(x), [2 * x[1], 2 * x[0]])


def test_traced_scalar_into_plain_array_is_refused():
    # NumPy stores a 0-d traced value through float(): the gradient would be dropped silently
    def f(x):
        A = np.eye(2)
        A[0, 1] = x[0]
        return np.sum(A @ A)

    def g(x):
        s = np.array([0.0, 0.0])
        s[0] = x[0]
        return np.sum(s ** 2)

    for fn in (f, g):
        with pytest.raises(tg.TraceError, match="assigned into a plain ndarray"):
            tg.grad(fn)(np.array([1.0, 2.0]))
        with pytest.raises(tg.TraceError, match="assigned into a plain ndarray"):
            tg.jit(tg.grad(fn))(np.array([1.0, 2.0]))

    def explicit(x):  # float() by hand is a documented gradient stop (with a guard)
        A = np.zeros(2)
        A[0] = float(x[0])
        return np.sum(A) + np.sum(x)

    np.testing.assert_array_equal(tg.grad(explicit)(np.array([1.0, 2.0])), [1.0, 1.0])

    def constant(x):  # a traced value that depends on no input stores fine
        A = np.zeros(2)
        A[0] = np.float64(2.0) * 3
        return np.sum(A * x)

    np.testing.assert_array_equal(tg.grad(constant)(np.array([1.0, 2.0])), [6.0, 0.0])


def test_augmented_update_of_an_input_leaves_no_stale_alias():
    # x op= v on an input rebinds the name (as autograd and JAX do); another reference to
    # the input would see the old value where NumPy shows the new one, so it refuses use
    def alias(x):
        y = x
        y *= 2.0
        return np.sum(x)

    def through_dict(d):
        w = d["w"]
        w += 1.0
        return np.sum(d["w"] ** 2)

    def returned(x):
        y = x
        y *= 2.0
        return x

    for fn, a in ((alias, np.arange(3.0)), (through_dict, {"w": np.ones(2)})):
        with pytest.raises(tg.TraceError, match=r"updated in place \(x [*+]= v at"):
            tg.value_and_grad(fn)(a)
    with pytest.raises(tg.TraceError, match="updated in place"):
        tg.trace(returned, np.arange(3.0))

    def plain(x):  # the name itself is updated: NumPy's value and gradient
        x *= 2.0
        x += 1.0
        return np.sum(x ** 2)

    x = np.arange(3.0)
    val, g = tg.value_and_grad(plain)(x)
    assert val == np.sum((2 * x + 1) ** 2)
    np.testing.assert_allclose(g, 4 * (2 * x + 1))
    np.testing.assert_array_equal(x, np.arange(3.0))  # the caller's array is not written

    class M:
        pass

    m = M()
    m.W = np.ones(2)

    def attr(m):  # m.W *= 3 sets the attribute to the result: fine
        m.W *= 3.0
        return np.sum(m.W ** 2)

    val, g = tg.grad(attr, m)
    assert val == 18.0
    np.testing.assert_allclose(g[0][("W",)], [18.0, 18.0])
