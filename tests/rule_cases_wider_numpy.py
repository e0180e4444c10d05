# Cases for the wider NumPy coverage (handlers/numeric.py, handlers/search.py, rules/search.py),
# run by tests/test_rules.py with its helpers (case, R, Pos, Unit, NonZero, Distinct, Const, Mask).
# ruff: noqa: F821  (those helpers and np are the exec namespace's)
import warnings


def _cross2(a, b, **kw):  # NumPy 2 deprecates 2-vectors in np.cross (and so do we, alike)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return np.cross(a, b, **kw)


# np.diff
case("diff", np.diff, R(6))
case("diff n=2 axis=0", lambda x: np.diff(x, n=2, axis=0), R(5, 3))
case("diff n=3", lambda x: np.diff(x, 3), R(2, 6))
case("diff prepend/append scalar", lambda x: np.diff(x, prepend=0.5, append=-1.0), R(5))
case("diff prepend array axis 0", lambda x, p: np.diff(x, axis=0, prepend=p), R(3, 4), R(1, 4))
case("diff append traced", lambda x: np.diff(x, append=x[:1]), R(4))
# np.cross
case("cross 3-vectors", np.cross, R(3), R(3))
case("cross batched", np.cross, R(4, 3), R(3))
case("cross axisa/axisb/axisc", lambda a, b: np.cross(a, b, axisa=0, axisb=1, axisc=0), R(3, 2), R(2, 3))
case("cross axis", lambda a, b: np.cross(a, b, axis=0), R(3, 4), R(3, 4))
case("cross 2-vectors", _cross2, R(2), R(2))
case("cross 2-vectors batched", _cross2, R(4, 2), R(4, 2))
case("cross 2 x 3", _cross2, R(4, 2), R(3))
case("cross 3 x 2", _cross2, R(3), R(2))
case("linalg.cross", np.linalg.cross, R(2, 3), R(2, 3))
# np.kron, np.linalg.multi_dot
case("kron 1-D", np.kron, R(3), R(2))
case("kron 2-D", np.kron, R(2, 3), R(3, 2))
case("kron 2-D x 1-D", np.kron, R(2, 3), R(2))
case("kron const", lambda a: np.kron(np.eye(2), a), R(2, 2))
case("multi_dot 3", lambda a, b, c: np.linalg.multi_dot([a, b, c]), R(2, 5), R(5, 3), R(3, 4))
case("multi_dot 4 vectors", lambda a, b, c, d: np.linalg.multi_dot([a, b, c, d]), R(4), R(4, 3), R(3, 5), R(5))
case("multi_dot 2 matrix vector", lambda a, b: np.linalg.multi_dot((a, b)), R(3, 4), R(4))
# elementwise
case("sinc", np.sinc, R(3, 4))
case("sinc near 0", np.sinc, R(6, lo=-0.05, hi=0.05))
case("sinc at 0", lambda x: np.sinc(x * 0.0 + np.array([0.0, 0.01, 0.5, 1.0])) * x, R(4))
case("fabs", np.fabs, NonZero(3, 4))
case("heaviside (zero)", lambda x: np.heaviside(x, 0.5) * x + x * x, NonZero(5))
_SPECIAL = np.array([0.0, np.nan, np.inf, -np.inf, 0.0])
case("nan_to_num", lambda x: np.nan_to_num(np.where(np.isfinite(_SPECIAL), x, _SPECIAL), posinf=3.0, neginf=-3.0),
     R(5))
case("nan_to_num of log", lambda x: np.nan_to_num(np.log(x), nan=2.0), Const(np.array([1.5, -1.0, 2.0])))
# reductions
case("ptp", np.ptp, Distinct(5))
case("ptp axis keepdims", lambda x: np.ptp(x, axis=1, keepdims=True), Distinct(3, 4))
case("average", np.average, R(3, 4))
case("average axis", lambda x: np.average(x, axis=0), R(3, 4))
case("average weights", lambda x, w: np.average(x, weights=w), R(3, 4), Pos(3, 4))
case("average 1-D weights axis", lambda x, w: np.average(x, axis=1, weights=w), R(3, 4), Pos(4))
case("average weights tuple axis", lambda x, w: np.average(x, axis=(2, 0), weights=w), R(2, 3, 4), Pos(4, 2))
case("average returned", lambda x, w: np.stack(np.average(x, axis=0, weights=w, returned=True)), R(3, 2), Pos(3))
case("average keepdims", lambda x, w: np.average(x, axis=1, weights=w, keepdims=True), R(3, 4), Pos(4))
_NANS = np.array([[False, True, False], [False, False, True]])
case("nansum", lambda x: np.nansum(np.where(_NANS, np.nan, x)), R(2, 3))
case("nansum axis keepdims", lambda x: np.nansum(np.where(_NANS, np.nan, x), axis=1, keepdims=True), R(2, 3))
case("nanmean", lambda x: np.nanmean(np.where(_NANS, np.nan, x)), R(2, 3))
case("nanmean axis", lambda x: np.nanmean(np.where(_NANS, np.nan, x), axis=0), R(2, 3))
# rot90
for _k in (0, 1, 2, 3, -1, 5):
    case(f"rot90 k={_k}", (lambda k: lambda x: np.rot90(x, k))(_k), R(3, 4))
case("rot90 axes", lambda x: np.rot90(x, 1, axes=(2, 0)), R(2, 3, 4))
# index-valued functions: the indices gather; no gradient flows through them
case("nonzero gather", lambda x: x[np.nonzero(x > 0)] * 2.0, NonZero(7))
case("nonzero 2-D", lambda x: np.concatenate([x[np.nonzero(x > 0.5)], x[np.where(x < -0.5)]]), NonZero(3, 4))
case("flatnonzero / argwhere", lambda x: np.take(x, np.flatnonzero(x > 0))
     + np.sum(x[tuple(np.argwhere(x > 0).T)]), NonZero(6))
case("count_nonzero", lambda x: x * np.count_nonzero(x > 0) + x * np.count_nonzero(x > 0, axis=0), NonZero(3, 4))
case("searchsorted", lambda x: np.sort(x)[np.searchsorted(np.sort(x), x[:2])]
     * x[np.minimum(np.searchsorted(np.sort(x), 0.1, "right"), 4)], Distinct(5))
case("searchsorted sorter", lambda x: x[np.clip(np.searchsorted(x, np.array([-0.3, 0.2]), sorter=np.argsort(x)),
                                                0, 4)], Distinct(5))
case("compress", lambda x: np.compress([True, False, True], x, axis=1) + x.compress(x[:, 0] > -9, axis=0)[:, :2],
     R(2, 3))
case("compress traced condition", lambda x: np.compress(x > 0, x), NonZero(6))
# methods
case("repeat method", lambda x: x.repeat(2) * x.repeat([1, 2, 1], axis=0).sum(), R(3))
case("mT", lambda x: x.mT @ x, R(2, 3, 2))
# constructors on traced values
def _shifted(x):
    y = np.zeros_like(x)
    y[1:] = x[:-1]
    return y


case("zeros_like shifted write", _shifted, R(5))
case("full_like traced fill", lambda x: np.full_like(x, x[0]) * x, R(4))
