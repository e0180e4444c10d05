"""Coverage (issue 6): np.linalg, np.fft, scipy.special, array plumbing and complex numbers,
each checked with check_grads in forward and reverse mode to order 2."""

import numpy as np
import pytest
import scipy.special as sc

import tapegrad as tg
import tapegrad.scipy  # noqa: F401  (tg.scipy.special)

rng = np.random.default_rng(1)
A = rng.standard_normal((3, 3))
x = rng.standard_normal(6)
X = rng.standard_normal((4, 6))
z = x + 1j * rng.standard_normal(6)
p = np.array([0.2, 0.5, 0.7])
pos = np.array([0.5, 1.5, 3.0])
b = rng.standard_normal(3)

LINALG = [
    ("inv", lambda a: np.linalg.inv(a), A),
    ("inv_batched", lambda a: np.linalg.inv(np.stack([a, a.T + 2 * np.eye(3)])), A),
    ("solve_vec", lambda a: np.linalg.solve(a, b), A),
    ("solve_mat", lambda a: np.linalg.solve(a, np.outer(b, a[0])), A),
    ("det", lambda a: np.linalg.det(a), A),
    ("slogdet", lambda a: np.linalg.slogdet(a)[1], A),
    ("cholesky", lambda a: np.linalg.cholesky(a @ a.T + 3 * np.eye(3)), A),
    ("eigh_w", lambda a: np.linalg.eigh(a + a.T)[0], A),
    ("eigh_v", lambda a: np.abs(np.linalg.eigh(a + a.T)[1]), A),
    ("eigvalsh", lambda a: np.linalg.eigvalsh(a @ a.T), A),
    ("svd_s", lambda a: np.linalg.svd(a, compute_uv=False), A),
    ("svd_u_tall", lambda a: np.abs(np.linalg.svd(a[:, :2], full_matrices=False)[0]), A),
    ("svd_vh_wide", lambda a: np.abs(np.linalg.svd(a[:2], full_matrices=False)[2]), A),
    ("qr_r", lambda a: np.linalg.qr(a)[1], A),
    ("qr_q_tall", lambda a: np.linalg.qr(a[:, :2])[0], A),
    ("pinv", lambda a: np.linalg.pinv(a[:, :2]), A),
    ("matrix_power_3", lambda a: np.linalg.matrix_power(a, 3), A),
    ("matrix_power_-2", lambda a: np.linalg.matrix_power(a, -2), A),
    ("norm_2", lambda a: np.linalg.norm(a, 2), A),
    ("norm_-2", lambda a: np.linalg.norm(a, -2), A),
    ("norm_nuc", lambda a: np.linalg.norm(a, "nuc"), A),
    ("norm_fro", lambda a: np.linalg.norm(a), A),
    ("norm_1", lambda a: np.linalg.norm(a, 1, axis=0), A),
]
FFT = [
    ("fft_abs2", lambda x: np.abs(np.fft.fft(x)) ** 2, x),
    ("fft_complex", lambda z: np.real(np.fft.fft(z) * np.arange(6)), z),
    ("fft_n", lambda x: np.real(np.fft.fft(x, n=8)), x),
    ("fft_ortho", lambda x: np.imag(np.fft.fft(x, norm="ortho")), x),
    ("ifft", lambda z: np.real(np.fft.ifft(z) ** 2), z),
    ("rfft", lambda x: np.real(np.fft.rfft(x) * (1 + 2j)), x),
    ("irfft", lambda z: np.fft.irfft(z[:4]), z),
    ("irfft_odd", lambda z: np.fft.irfft(z[:4], n=7), z),
    ("fft2", lambda X: np.real(np.fft.fft2(X)), X),
    ("fftn_axes", lambda X: np.imag(np.fft.fftn(X, axes=(0,))), X),
    ("ifft2", lambda X: np.real(np.fft.ifft2(X * X)), X),
]
SPECIAL = [
    ("gammaln", sc.gammaln, pos), ("gamma", sc.gamma, pos), ("digamma", sc.digamma, pos),
    ("polygamma", lambda x: tg.scipy.special.polygamma(2, x), pos),
    ("erf", sc.erf, x), ("erfc", sc.erfc, x), ("expit", sc.expit, x), ("logit", sc.logit, p),
    ("xlogy", lambda y: sc.xlogy(y * 2, y), pos), ("xlog1py", lambda y: sc.xlog1py(y * 2, y), pos),
    ("ndtr", sc.ndtr, x), ("log_ndtr", sc.log_ndtr, x), ("ndtri", sc.ndtri, p),
    ("erfinv", sc.erfinv, p * 0.9), ("i0", sc.i0, pos), ("i1", sc.i1, pos), ("j0", sc.j0, pos),
    ("j1", sc.j1, pos), ("betaln", lambda a: sc.betaln(a, a * 2), pos),
    ("gammainc_x", lambda x: sc.gammainc(2.0, x), pos),
    ("betainc_x", lambda x: sc.betainc(2.0, 3.0, x), p), ("stdtr_t", lambda t: sc.stdtr(3.0, t), x),
    ("entr", sc.entr, pos), ("log_expit", sc.log_expit, x),
    ("logsumexp", lambda X: tg.scipy.special.logsumexp(X, axis=1), X),
    ("logsumexp_b", lambda X: tg.scipy.special.logsumexp(X, b=np.arange(6.0) + 1), X),
]
PLUMBING = [
    ("pad_constant", lambda x: np.pad(x.reshape(2, 3), ((1, 2), (0, 1))), x),
    ("pad_reflect", lambda x: np.pad(x.reshape(2, 3), 2, mode="reflect"), x),
    ("pad_wrap", lambda x: np.pad(x, (1, 3), mode="wrap") * np.arange(10), x),
    ("roll", lambda x: np.roll(x, 2) * np.arange(6), x),
    ("roll_axes", lambda X: np.roll(X, (1, -2), axis=(0, 1)) * np.arange(6), X),
    ("tile", lambda x: np.tile(x, (2, 2)) * np.arange(12), x),
    ("repeat", lambda x: np.repeat(x, 2) * np.arange(12), x),
    ("repeat_axis", lambda X: np.repeat(X, [1, 2, 0, 1], axis=0) * np.arange(6), X),
    ("split", lambda x: np.split(x, 3)[1] * np.split(x, [1, 4])[2], x),
    ("linspace", lambda x: np.linspace(x[0], x[1], 5) ** 2, x),
    ("linspace_vec", lambda x: np.linspace(x[:2], x[2:4], 4), x),
    ("convolve_full", lambda x: np.convolve(x, x[:3] ** 2), x),
    ("convolve_valid", lambda x: np.convolve(x, np.array([1.0, 2, -1]), mode="valid"), x),
    ("convolve_same", lambda x: np.convolve(x[:3], x, mode="same"), x),
    ("sort", lambda x: np.sort(x) * np.arange(6), x),
    ("cumprod", lambda x: np.cumprod(x), x),
    ("max_axis", lambda X: np.max(X, axis=1), X),
    ("block", lambda X: np.block([[X, X], [X, 2 * X]]), X),
    ("stack_scalars", lambda x: np.stack([x[0] * x[1], np.sin(x[2])]), x),
]
COMPLEX = [
    ("abs", lambda z: np.abs(z), z), ("angle", lambda z: np.angle(z), z),
    ("real_imag", lambda z: np.real(z * z) + np.imag(z) ** 2, z),
    ("conj", lambda z: np.conj(z) * z, z),
    ("holomorphic", lambda z: np.exp(z) / z + np.sin(z) * z ** 2, z),
]


@pytest.mark.parametrize("name,f,arg", LINALG + FFT + SPECIAL + PLUMBING + COMPLEX,
                         ids=[c[0] for c in LINALG + FFT + SPECIAL + PLUMBING + COMPLEX])
def test_check_grads_fwd_rev_order2(name, f, arg):
    tg.check_grads(f, modes=("fwd", "rev"), order=2)(arg)


def test_linalg_values_match_closed_forms():
    S = A @ A.T + 3 * np.eye(3)
    np.testing.assert_allclose(tg.grad(lambda a: np.linalg.det(a))(A),
                               np.linalg.det(A) * np.linalg.inv(A).T, rtol=1e-10)
    np.testing.assert_allclose(tg.grad(lambda s: np.linalg.slogdet(s)[1])(S), np.linalg.inv(S),
                               rtol=1e-10)
    # d/dA tr(A^-1) = -(A^-2)^T
    Ai = np.linalg.inv(A)
    np.testing.assert_allclose(tg.grad(lambda a: np.trace(np.linalg.inv(a)))(A), -(Ai @ Ai).T,
                               rtol=1e-10)


def test_incomplete_shape_parameter_has_no_silent_zero():
    with pytest.raises(tg.NoDerivativeError, match="gammainc"):
        tg.grad(lambda a: sc.gammainc(a, 2.0))(1.5)


def test_np_array_of_traced_values_is_recorded():
    # np.array of a list holding traced values stacks them (tapegrad.constructors)
    assert tg.grad(lambda x: np.sum(np.array([x, 2 * x]) ** 2))(1.0) == 10.0
    assert tg.grad(lambda x: np.sum(np.stack([x, 2 * x]) ** 2))(1.0) == 10.0
    f = lambda x: np.sum(np.array([[x[0] * x[1], 1.0], [np.sin(x[1]), x[0]]]) ** 2)  # noqa: E731
    x = np.array([0.7, -0.4])
    expect = [2 * x[0] * x[1] ** 2 + 2 * x[0], 2 * x[0] ** 2 * x[1] + 2 * np.sin(x[1]) * np.cos(x[1])]
    np.testing.assert_allclose(tg.grad(f)(x), expect)
    tg.check_grads(f, modes=("fwd", "rev"), order=2)(x)


def test_containers_list_dict_inside_traced_function():
    def helper(w):
        return {"a": np.sin(w), "b": [w ** 2, np.cos(w)]}

    def f(w):
        d = helper(w)
        parts = [d["a"], d["b"][0], d["b"][1]]
        return np.sum(np.stack(parts) * np.array([[1.0], [2.0], [3.0]]))

    w = np.array([0.3, 0.9])
    np.testing.assert_allclose(tg.grad(f)(w), np.cos(w) + 4 * w - 3 * np.sin(w), rtol=1e-12)


def test_complex_convention_matches_autograd_docs():
    z0 = 1.3 - 0.7j
    # real-valued f(z) = |z|^2: autograd gives df/dx - i df/dy = 2 conj(z)
    np.testing.assert_allclose(tg.grad(lambda z: np.abs(z) ** 2)(z0), 2 * np.conj(z0))
    np.testing.assert_allclose(tg.grad(lambda z: np.real(z * z))(z0), 2 * z0)
    # angle = atan2(y, x): d/dx - i d/dy = -(y + i x) / |z|^2
    np.testing.assert_allclose(tg.grad(lambda z: np.angle(z))(z0),
                               -(z0.imag + 1j * z0.real) / abs(z0) ** 2)
    np.testing.assert_allclose(tg.holomorphic_grad(lambda z: z ** 3)(z0), 3 * z0 ** 2)
    np.testing.assert_allclose(tg.holomorphic_grad(np.sin)(np.array([z0, 0.5])),
                               np.cos(np.array([z0, 0.5])), rtol=1e-12)
    with pytest.raises(TypeError):
        tg.grad(lambda z: z ** 2)(z0)


def test_max_ties_split_evenly():
    g = tg.grad(lambda x: np.max(x))(np.array([1.0, 3.0, 3.0]))
    np.testing.assert_array_equal(g, [0.0, 0.5, 0.5])
    _, t = tg.make_jvp(lambda x: np.max(x))(np.array([1.0, 3.0, 3.0]))(np.array([0.0, 1.0, 3.0]))
    assert t == 2.0
