"""Every example runs here in a fast mode and its outcome is asserted."""

import importlib.util

import numpy as np
import pytest

import tapegrad as tg

HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


@pytest.mark.skipif(not HAVE_SKLEARN, reason="needs scikit-learn (pip install -e '.[examples]')")
def test_mlp_digits_demo():
    from examples import mlp_digits

    r = mlp_digits.main(epochs=12, verbose=False)
    losses = r["losses"]
    assert losses[0] > 1.0
    assert losses[-1] < 0.2
    assert all(b < a * 1.05 for a, b in zip(losses, losses[1:]))
    assert r["test_accuracy"] >= 0.95


def test_linear_regression_param_diff():
    from examples import linear_regression

    r = linear_regression.main(steps=60, verbose=False)
    assert r["losses"][0] > 1.0 and r["losses"][-1] < 1e-3
    np.testing.assert_allclose(r["W"], r["W_true"], atol=0.02)
    np.testing.assert_allclose(r["b"], r["b_true"], atol=0.02)


def test_logistic_regression_tutorial():
    from examples import logistic_regression

    r = logistic_regression.main(steps=100, verbose=False)
    losses = r["losses"]
    assert losses[0] == pytest.approx(4 * np.log(2))
    assert all(b < a for a, b in zip(losses, losses[1:]))
    assert losses[-1] < 1.1
    assert np.array_equal(r["predictions"] > 0.5, r["targets"])


def test_yota_linear():
    from examples import yota_linear

    r = yota_linear.main(steps=10, verbose=False)
    g0 = r["grad"][0]
    assert list(g0) == [("W",)]
    np.testing.assert_allclose(g0[("W",)], np.ones((3, 3)) @ r["X"].T)
    assert r["losses"][-1] < r["losses"][0] - 1.0


def _tanh_derivative_polys(order):
    """d^k tanh = P_k(tanh), P_{k+1}(t) = P_k'(t) (1 - t^2)."""
    P = np.polynomial.Polynomial
    polys = [P([0.0, 1.0])]
    for _ in range(order):
        polys.append(polys[-1].deriv() * P([1.0, 0.0, -1.0]))
    return polys


def test_tanh_higher_derivatives(tmp_path):
    from examples import tanh_derivatives

    png = tmp_path / "tanh.png" if HAVE_MPL else None
    r = tanh_derivatives.main(order=4, n=41, png=png and str(png), verbose=False)
    t = np.tanh(r["x"])
    for k, (y, poly) in enumerate(zip(r["ys"], _tanh_derivative_polys(4))):
        np.testing.assert_allclose(y, poly(t), atol=1e-9, err_msg=f"derivative {k}")
    if HAVE_MPL:
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_rnn_text_loss_falls():
    from examples import rnn_text

    r = rnn_text.main(steps=60, verbose=False)
    losses = r["losses"]
    assert losses[0] == pytest.approx(np.log(r["vocab"]), abs=0.1)
    assert np.mean(losses[-10:]) < 2.8


def test_gp_regression_fits_hyperparameters(tmp_path):
    from examples import gp_regression

    png = tmp_path / "gp.png" if HAVE_MPL else None
    r = gp_regression.main(png=png and str(png), verbose=False)
    assert r["after"] > r["before"] + 50
    assert 0.03 < r["noise_std"] < 0.2
    assert r["rmse"] < 0.15
    if HAVE_MPL:
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_gp_custom_rules_match_finite_differences():
    from examples import gp_regression as gp

    x, y = gp.toy_data(n=8)
    p = np.array([0.3, -0.2, 0.1, -2.0])
    g = tg.grad(gp.log_marginal_likelihood)(p, x, y)
    eps = 1e-6
    fd = [(gp.log_marginal_likelihood(p + eps * e, x, y) - gp.log_marginal_likelihood(p - eps * e, x, y))
          / (2 * eps) for e in np.eye(4)]
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)
