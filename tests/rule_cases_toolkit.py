# Cases for the issue-6 rules (np.linalg, np.fft, scipy.special, tapegrad.scipy), run by
# tests/test_rules.py with its helpers (case, R, Pos, Unit, NonZero, Distinct, Const, Mask).
import scipy.special as sc

import tapegrad.scipy  # noqa: F401  (registers sqrtm and odeint)
from tapegrad.scipy import integrate as _integrate
from tapegrad.scipy import linalg as _sla
from tapegrad.scipy import special as _tsp


def _spd(a):
    return a @ np.swapaxes(a, -1, -2) + 3 * np.eye(a.shape[-1])


def _sym(a):
    return a + np.swapaxes(a, -1, -2)


# np.linalg
case("tk linalg.inv", np.linalg.inv, R(3, 3, lo=-1, hi=1))
case("tk linalg.inv batched", lambda a: np.linalg.inv(_spd(a)), R(2, 3, 3))
case("tk linalg.solve vec", np.linalg.solve, lambda rng: _spd(rng.uniform(-1, 1, (3, 3))), R(3))
case("tk linalg.solve mat", np.linalg.solve, lambda rng: _spd(rng.uniform(-1, 1, (3, 3))), R(3, 2))
case("tk linalg.det", np.linalg.det, R(3, 3))
case("tk linalg.slogdet", lambda a: np.linalg.slogdet(_spd(a))[1], R(3, 3))
case("tk linalg.cholesky", lambda a: np.linalg.cholesky(_spd(a)), R(3, 3))
case("tk linalg.eigh", lambda a: np.linalg.eigh(_sym(a))[0] + np.abs(np.linalg.eigh(_sym(a))[1][0]),
     R(3, 3))
case("tk linalg.svd", lambda a: np.linalg.svd(a, compute_uv=False) + np.abs(np.linalg.svd(
    a, full_matrices=False)[0][0]), R(4, 3))
case("tk linalg.qr", lambda a: np.linalg.qr(a)[0] + np.linalg.qr(a)[1][0], R(4, 3))
case("tk linalg.pinv", np.linalg.pinv, R(4, 3))
case("tk linalg.matrix_power -3", lambda a: np.linalg.matrix_power(_spd(a), -3), R(3, 3))
case("tk linalg.norm 2/nuc", lambda a: np.linalg.norm(a, 2) + np.linalg.norm(a, "nuc"), R(3, 4))
case("tk scipy.linalg.sqrtm (linalg.sylvester)", lambda a: _sla.sqrtm(_spd(a)), R(3, 3))
case("tk scipy.linalg.solve_triangular", lambda a, b: _sla.solve_triangular(_spd(a), b, lower=True),
     R(3, 3), R(3))
# np.fft (complex outputs: the checker differentiates <u, real(.)>, <u, imag(.)>)
case("tk fft.fft", lambda x: np.real(np.fft.fft(x)) + np.imag(np.fft.fft(x)) ** 2, R(6))
case("tk fft.ifft 2d axis 0", lambda x: np.real(np.fft.ifft(x * x, axis=0)), R(4, 3))
case("tk fft.rfft", lambda x: np.abs(np.fft.rfft(x)), R(6))
case("tk fft.irfft", lambda x: np.fft.irfft(np.fft.rfft(x) * (1 + 0.5j)), R(6))
case("tk fft.fft2 ortho", lambda x: np.real(np.fft.fft2(x, norm="ortho")), R(3, 4))
# scipy.special
for _f, _gen in [(sc.gammaln, Pos), (sc.gamma, Pos), (sc.psi, Pos), (sc.rgamma, Pos), (sc.erf, R),
                 (sc.erfc, R), (sc.erfinv, Unit), (sc.erfcinv, lambda *s: R(*s, lo=0.2, hi=1.8)),
                 (sc.expit, R), (sc.logit, lambda *s: R(*s, lo=0.1, hi=0.9)), (sc.log_expit, R),
                 (sc.ndtr, R), (sc.log_ndtr, R), (sc.ndtri, lambda *s: R(*s, lo=0.1, hi=0.9)),
                 (sc.i0, Pos), (sc.i1, Pos), (sc.i0e, Pos), (sc.i1e, Pos), (sc.j0, Pos), (sc.j1, Pos),
                 (sc.y0, Pos), (sc.y1, Pos), (sc.entr, Pos)]:
    case(f"special.{_f.__name__}", _f, _gen(3, 4))
case("tk special.polygamma", lambda x: _tsp.polygamma(2, x), Pos(5))
for _f in (sc.xlogy, sc.xlog1py, sc.rel_entr, sc.betaln, sc.beta):
    case(f"special.{_f.__name__}", _f, Pos(3, 4), Pos(4))
case("tk special.gammainc x", lambda x: sc.gammainc(2.5, x), Pos(4))
case("tk special.gammaincc x", lambda x: sc.gammaincc(2.5, x), Pos(4))
case("tk special.betainc x", lambda x: sc.betainc(2.0, 3.0, x), lambda rng: rng.uniform(0.1, 0.9, 4))
case("tk special.stdtr t", lambda t: sc.stdtr(3.0, t), R(4))
case("tk special.logsumexp", lambda x: _tsp.logsumexp(x, axis=1), R(3, 4))
# scipy.integrate.odeint (adjoint: first order only)
case("tk integrate.odeint", lambda y0, k: _integrate.odeint(lambda y, t, k: -k * y * y, y0,
                                                         np.linspace(0, 1, 3), (k,),
                                                         rtol=1e-11, atol=1e-11),
     Pos(2), Pos(), order=1)
case("tk linalg.sylvester", lambda a, b, q: bind(PRIMS["linalg.sylvester"], _spd(a), _spd(b), q),
     R(3, 3), R(2, 2), R(3, 2))


# index assignment (tapegrad/inplace.py, rules/index_update.py): out = x.copy(); out[key] = v
def _set(key):
    def f(x, v):
        y = x.copy()
        y[key] = v
        return y
    return f


case("tk index_update slice", _set((slice(0, 2), 1)), R(3, 4), R(2))
case("tk index_update broadcast row", _set(slice(1, None)), R(3, 4), R(4))
case("tk index_update repeated ints (last write wins)", _set(np.array([0, 2, 0])), R(3, 2), R(3, 2))
case("tk index_update mask", lambda x, v, m: _set(m)(x, v), R(3, 4), R(), Mask(3, 4), nondiff=(2,))
