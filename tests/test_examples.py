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


def _fd_check(loss, params: dict, grads: dict, args, n: int = 3, eps: float = 1e-6):
    """Central differences on `n` entries of every parameter array of a dict model."""
    rng = np.random.default_rng(0)
    for k, p in params.items():
        for j in rng.choice(p.size, min(n, p.size), replace=False):
            e = np.zeros_like(p)
            e.flat[j] = eps
            up, dn = dict(params, **{k: p + e}), dict(params, **{k: p - e})
            fd = (loss(up, *args) - loss(dn, *args)) / (2 * eps)
            np.testing.assert_allclose(grads[(k,)].flat[j], fd, rtol=1e-5, atol=1e-8, err_msg=k)


@pytest.mark.skipif(not HAVE_SKLEARN, reason="needs scikit-learn (pip install -e '.[examples]')")
def test_convnet_digits():
    from examples import convnet_digits

    r = convnet_digits.main(epochs=5, verbose=False)
    losses = r["losses"]
    assert losses[0] > 1.2 and losses[-1] < 0.3
    assert all(b < a for a, b in zip(losses, losses[1:]))
    assert r["test_accuracy"] >= 0.90


def test_convnet_gradient_matches_finite_differences():
    from examples import convnet_digits as c

    rng = np.random.default_rng(1)
    p = c.init(4, rng)
    X, y = rng.random((5, 64)), rng.integers(0, 10, 5)
    _, g = tg.grad(c.loss, p, X, y)
    assert set(g[0]) == {("K",), ("bK",), ("W",), ("b",)}
    _fd_check(c.loss, p, g[0], (X, y))
    # the im2col gather: output position (1, 2), tap (2, 0) reads pixel (3, 2)
    assert c.PATCHES.shape == (36, 9) and c.PATCHES[1 * 6 + 2, 2 * 3 + 0] == 3 * 8 + 2


def test_lstm_text_loss_falls():
    from examples import lstm_text

    r = lstm_text.main(steps=60, verbose=False)
    losses = r["losses"]
    assert losses[0] == pytest.approx(np.log(r["vocab"]), abs=0.1)
    assert np.mean(losses[-10:]) < 2.7


def test_lstm_gradient_matches_finite_differences():
    from examples import lstm_text as m

    rng = np.random.default_rng(2)
    p = m.init(6, 5, rng)
    eye = np.eye(6)
    X, Y = eye[rng.integers(0, 6, (4, 3))], eye[rng.integers(0, 6, (4, 3))]
    _, g = tg.grad(m.loss, p, X, Y)
    _fd_check(m.loss, p, g[0], (X, Y))


@pytest.mark.skipif(not HAVE_SKLEARN, reason="needs scikit-learn (pip install -e '.[examples]')")
def test_vae_digits(tmp_path):
    from examples import vae_digits

    png = tmp_path / "vae.png" if HAVE_MPL else None
    r = vae_digits.main(epochs=10, png=png and str(png), verbose=False)
    losses = r["losses"]
    assert losses[0] > 35 and losses[-1] < 29  # nats per image, 64 pixels
    assert max(losses[5:]) < min(losses[:3])  # noisy (a fresh eps per batch), but falling
    assert r["test_loss"] < 29
    if HAVE_MPL:
        assert png.read_bytes()[:4] == b"\x89PNG" and r["png"] == str(png)


def test_vae_gradient_field_paths_and_values():
    from examples import vae_digits as v

    rng = np.random.default_rng(3)
    m = v.init(6, 5, 2, rng)
    x, eps = rng.random((4, 6)), rng.standard_normal((4, 2))
    _, g = tg.grad(v.vae_loss, m, x, eps)
    layers = ("enc_i2h", "enc_h2mu", "enc_h2logsigma2", "dec_z2h", "dec_h2o")
    assert set(g[0]) == {(n, f) for n in layers for f in ("W", "b")}
    h = 1e-6
    for (n, f), gx in g[0].items():
        leaf = getattr(getattr(m, n), f)
        old = leaf.flat[0]
        leaf.flat[0] = old + h
        up = v.vae_loss(m, x, eps)
        leaf.flat[0] = old - h
        dn = v.vae_loss(m, x, eps)
        leaf.flat[0] = old
        np.testing.assert_allclose(gx.flat[0], (up - dn) / (2 * h), rtol=1e-5, atol=1e-8)
