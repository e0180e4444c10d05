"""Function transforms (issue 6): elementwise_grad, jacobian, hessian, hvp, make_vjp,
make_jvp, holomorphic_grad, check_grads, nesting to any order. HIPS autograd is the
reference where it is installed."""

import numpy as np
import pytest

import tapegrad as tg

try:
    import autograd
    import autograd.numpy as anp
except ImportError:  # autograd is only a reference for some tests
    autograd = anp = None

needs_autograd = pytest.mark.skipif(autograd is None, reason="autograd not installed")
rng = np.random.default_rng(0)


# -- any order --------------------------------------------------------------------------------


def _tanh_derivs(x):
    """Closed forms of d^k tanh / dx^k for k = 0..6, as polynomials in t = tanh(x)."""
    t = np.tanh(x)
    p = np.polynomial.Polynomial([0, 1])  # tanh
    out = []
    for _ in range(7):
        out.append(p(t))
        p = p.deriv() * np.polynomial.Polynomial([1, 0, -1])  # d/dx t = 1 - t^2
    return out


def test_tanh_six_times_matches_closed_form():
    x = np.linspace(-3, 3, 9)
    f = np.tanh
    exact = _tanh_derivs(x)
    for k in range(1, 7):
        f = tg.elementwise_grad(f)
        np.testing.assert_allclose(f(x), exact[k], rtol=1e-10, atol=1e-10)


def test_grad_of_grad_six_times_scalar():
    f = np.tanh
    for _ in range(6):
        f = tg.grad(f)
    np.testing.assert_allclose(f(0.7), _tanh_derivs(0.7)[6], rtol=1e-10)


def test_no_perturbation_confusion():
    # d/dx (x * d/dy (x + y)) = 1 (Siskind & Pearlmutter's example)
    def outer(x):
        return x * tg.grad(lambda y: x + y)(1.0)

    assert tg.grad(outer)(2.0) == 1.0

    def outer2(x):  # inner derivative that does depend on x: d/dy (x*y) = x
        return x * tg.grad(lambda y: x * y)(3.0)

    np.testing.assert_allclose(tg.grad(outer2)(2.0), 4.0)


def test_grad_inside_traced_function_and_jvp_of_grad():
    f = lambda x: np.sum(np.sin(x) ** 2)
    x = np.array([0.3, -1.1, 2.0])
    g2 = tg.elementwise_grad(lambda x: tg.grad(f)(x))(x)
    np.testing.assert_allclose(g2, 2 * np.cos(2 * x), rtol=1e-12)
    _, t = tg.make_jvp(tg.grad(f))(x)(np.ones(3))
    np.testing.assert_allclose(t, 2 * np.cos(2 * x), rtol=1e-12)


# -- jacobian / hessian / hvp --------------------------------------------------------------------


def _mlp_loss(params, X, y):
    W1, b1, W2 = params[:12].reshape(3, 4), params[12:16], params[16:20]
    h = np.tanh(X @ W1 + b1)
    return np.mean((h @ W2 - y) ** 2) + 0.01 * np.sum(params ** 2)


def test_jacobian_shapes_and_values():
    x = rng.standard_normal((2, 3))
    A = rng.standard_normal((4, 2))
    J = tg.jacobian(lambda x: np.tanh(A @ x))(x)
    assert J.shape == (4, 3, 2, 3)
    d = 1 - np.tanh(A @ x) ** 2
    expect = np.einsum("ik,lj,il->ilkj", A, np.eye(3), d)
    np.testing.assert_allclose(J, expect, rtol=1e-12)


@needs_autograd
def test_hessian_of_mlp_equals_jacobian_of_grad_and_autograd():
    X, y = rng.standard_normal((5, 3)), rng.standard_normal(5)
    p = 0.5 * rng.standard_normal(20)
    H = tg.hessian(_mlp_loss)(p, X, y)
    H2 = tg.jacobian(tg.grad(_mlp_loss))(p, X, y)
    np.testing.assert_allclose(H, H2, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(H, H.T, atol=1e-12)

    def aloss(params, X, y):
        W1, b1, W2 = params[:12].reshape(3, 4), params[12:16], params[16:20]
        h = anp.tanh(anp.dot(X, W1) + b1)
        return anp.mean((anp.dot(h, W2) - y) ** 2) + 0.01 * anp.sum(params ** 2)

    np.testing.assert_allclose(H, autograd.hessian(aloss)(p, X, y), rtol=1e-10, atol=1e-12)
    v = rng.standard_normal(20)
    np.testing.assert_allclose(tg.hessian_vector_product(_mlp_loss)(p, X, y, v), H @ v,
                               rtol=1e-10, atol=1e-12)


def test_hvp_argnum():
    f = lambda a, x: np.sum(a * x ** 3)
    a, x, v = np.array([1.0, 2.0]), np.array([0.5, -1.0]), np.array([1.0, 3.0])
    np.testing.assert_allclose(tg.hessian_vector_product(f, argnum=1)(a, x, v), 6 * a * x * v)


# -- vjp / jvp ------------------------------------------------------------------------------------


def test_make_vjp_and_make_jvp():
    A = rng.standard_normal((3, 4))
    f = lambda x: np.sin(A @ x)
    x = rng.standard_normal(4)
    J = np.cos(A @ x)[:, None] * A
    vjp_fn, val = tg.make_vjp(f)(x)
    np.testing.assert_allclose(val, np.sin(A @ x))
    u = rng.standard_normal(3)
    np.testing.assert_allclose(vjp_fn(u), u @ J, rtol=1e-12)
    np.testing.assert_allclose(vjp_fn(2 * u), 2 * u @ J, rtol=1e-12)  # reusable
    v = rng.standard_normal(4)
    val2, t = tg.make_jvp(f)(x)(v)
    np.testing.assert_allclose(val2, val)
    np.testing.assert_allclose(t, J @ v, rtol=1e-12)


def test_jvp_tuple_argnum_and_broadcasting():
    f = lambda x, y: x * y + np.exp(y)
    x, y = np.array([1.0, 2.0, 3.0]), 0.5
    _, t = tg.make_jvp(f, argnum=(0, 1))(x, y)((np.array([1.0, 0.0, 2.0]), 1.0))
    np.testing.assert_allclose(t, np.array([1.0, 0.0, 2.0]) * y + x + np.exp(y))


def test_forward_mode_uses_transposed_vjp_for_user_primitive():
    @tg.primitive
    def cube(x):
        return x ** 3

    tg.defvjp(cube, lambda ans, x: lambda g: 3 * g * x ** 2)
    _, t = tg.make_jvp(lambda x: np.sum(cube(x)))(np.array([1.0, 2.0]))(np.array([1.0, 1.0]))
    np.testing.assert_allclose(t, 3 + 12)


def test_zero_gradients_when_output_ignores_input():
    x = np.array([1.0, 2.0])
    np.testing.assert_array_equal(tg.elementwise_grad(lambda x: np.ones(2))(x), [0.0, 0.0])
    np.testing.assert_array_equal(tg.jacobian(lambda x: np.ones(3))(x), np.zeros((3, 2)))
    np.testing.assert_array_equal(tg.make_jvp(lambda x: 3.0)(x)(x)[1], 0.0)
    np.testing.assert_array_equal(tg.make_vjp(lambda x: np.ones(3))(x)[0](np.ones(3)), [0.0, 0.0])
    np.testing.assert_array_equal(tg.grad(lambda x: 1.0)(x), [0.0, 0.0])


def test_type_errors():
    with pytest.raises(TypeError):
        tg.grad(lambda z: z * 1j)(1.0)
    with pytest.raises(TypeError):
        tg.grad(lambda x: x > 0)(1.0)
    with pytest.raises(TypeError):
        tg.elementwise_grad(lambda x: x > 0)(np.ones(2))
    with pytest.raises(TypeError):
        tg.jacobian(np.sin)(np.arange(3))


def test_is_traced():
    seen = []
    tg.grad(lambda x: seen.append(tg.is_traced(x)) or x * 2)(1.0)
    assert seen == [True] and not tg.is_traced(1.0)


# -- check_grads ------------------------------------------------------------------------------------


def test_check_grads_passes_on_correct_rules_and_multiple_args():
    tg.check_grads(lambda x: np.sum(np.sin(x) * x ** 2), modes=("fwd", "rev"), order=2)(
        np.array([0.3, 1.2]))
    tg.check_grads(lambda x, y: np.tanh(x) * y, order=2)(np.array([0.3, 1.2]), 0.7)
    tg.check_grads(np.tanh, np.array([0.1, 0.2]))  # autograd's immediate form


def test_check_grads_catches_wrong_rules():
    @tg.primitive
    def bad(x):
        return np.sin(x)

    tg.defvjp(bad, lambda ans, x: lambda g: g * np.cos(x) * 1.01)
    tg.defjvp(bad, lambda g, ans, x: g * np.cos(x))
    tg.check_grads(bad, modes="fwd", order=1)(np.array([0.5, 1.0]))
    with pytest.raises(AssertionError, match="reverse-mode"):
        tg.check_grads(bad, modes="rev", order=1)(np.array([0.5, 1.0]))
    tg.defjvp(bad, lambda g, ans, x: g * np.cos(x) * 1.01)
    with pytest.raises(AssertionError, match="forward-mode"):
        tg.check_grads(bad, modes="fwd", order=1)(np.array([0.5, 1.0]))

    @tg.primitive
    def bad2(x):  # right first derivative, wrong second
        return np.sin(x)

    tg.defvjp(bad2, lambda ans, x: lambda g: g * np.cos(x + 0 * np.sin(x) ** 3) + 0.01 * (x - x) * g)
    tg.defvjp(bad2, lambda ans, x: lambda g: g * _fake_cos(x))
    tg.check_grads(bad2, modes="rev", order=1)(np.array([0.5, 1.0]))
    with pytest.raises(AssertionError):
        tg.check_grads(bad2, modes="rev", order=2)(np.array([0.5, 1.0]))


@tg.primitive
def _fake_cos(x):
    return np.cos(x)


tg.defvjp(_fake_cos, lambda ans, x: lambda g: g * np.sin(x))  # wrong sign


# -- README examples -------------------------------------------------------------------------------


def test_readme_logsumexp_custom_primitive():
    @tg.primitive
    def logsumexp(x):
        m = np.max(x)
        return m + np.log(np.sum(np.exp(x - m)))

    # autograd's README writes np.full(x.shape, g): np.full does not dispatch on its fill value
    tg.defvjp(logsumexp, lambda ans, x: lambda g: g * np.exp(x - ans))

    def example(x):
        return logsumexp(x) * x[0]

    x = np.array([1.5, 2.0, -0.5])
    sm = np.exp(x) / np.sum(np.exp(x))
    expect = sm * x[0] + np.array([logsumexp(x), 0.0, 0.0])
    np.testing.assert_allclose(tg.grad(example)(x), expect, rtol=1e-12)
    tg.check_grads(example, modes="rev", order=2)(x)
    tg.defjvp(logsumexp, lambda g, ans, x: np.sum(g * np.exp(x - ans)))
    tg.check_grads(example, modes=("fwd", "rev"), order=2)(x)
