"""More NumPy functions on traced values (issue 6), registered into `handlers.HANDLERS`.

np.linalg (inv, solve, det, slogdet, cholesky, eigh, eigvalsh, svd, qr, pinv,
matrix_power, norm with ord=2/-2/'nuc'), np.fft (fft, ifft, rfft, irfft, fft2, ifft2,
fftn, ifftn), and array plumbing expressed as gathers: np.pad, np.roll, np.tile,
np.repeat, np.split/array_split, np.linspace with traced endpoints, np.convolve,
np.angle, np.block.

`np.array([t1, t2])` of traced values cannot be supported: `np.array` does not dispatch
(NEP 18 covers it only through `like=`) and `__array__` must return a real ndarray, so
it raises `TraceError`. Use `np.stack([t1, t2])` (or `np.concatenate`/`np.hstack`),
which do dispatch.
"""

from __future__ import annotations

import numpy as np

from .errors import TraceError
from .handlers import HANDLERS, _dtype, _ndim, _shape, getitem, handles, norm_axis, reshape
from .rules import fft as F
from .rules import numpy_linalg as L
from .trace import Tracer, bind

# -- np.linalg --------------------------------------------------------------------------------

handles(np.linalg.inv)(lambda a: bind(L.inv, a))
handles(np.linalg.det)(lambda a: bind(L.det, a))
handles(np.linalg.cholesky)(lambda a, upper=False: (np.swapaxes(bind(L.cholesky, a), -1, -2)
                                                    if upper else bind(L.cholesky, a)))


@handles(np.linalg.solve)
def solve(a, b):
    return bind(L.solve, a, b)


@handles(np.linalg.slogdet)
def slogdet(a):
    from numpy.linalg._linalg import SlogdetResult

    return SlogdetResult(*bind(L.slogdet, a))


@handles(np.linalg.eigh)
def eigh(a, UPLO="L"):
    from numpy.linalg._linalg import EighResult

    return EighResult(*bind(L.eigh, a))


handles(np.linalg.eigvalsh)(lambda a, UPLO="L": bind(L.eigh, a)[0])


@handles(np.linalg.svd)
def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    from numpy.linalg._linalg import SVDResult

    m, n = _shape(a)[-2:]
    if compute_uv and full_matrices and m != n:
        raise TraceError("np.linalg.svd(full_matrices=True) of a non-square traced matrix has no "
                         "derivative (the extra singular vectors are not unique): pass "
                         "full_matrices=False")
    u, s, vh = bind(L.svd, a)
    return SVDResult(u, s, vh) if compute_uv else s


handles(np.linalg.svdvals)(lambda x: bind(L.svd, x)[1]) if hasattr(np.linalg, "svdvals") else None


@handles(np.linalg.qr)
def qr(a, mode="reduced"):
    from numpy.linalg._linalg import QRResult

    if mode not in ("reduced", "r"):
        raise TraceError(f"np.linalg.qr(mode={mode!r}) is not supported on traced values")
    q, r = bind(L.qr, a)
    return r if mode == "r" else QRResult(q, r)


@handles(np.linalg.pinv)
def pinv(a, rcond=None, hermitian=False, *, rtol=None):
    # full-rank pseudo-inverse, so its derivative exists: (A^T A)^{-1} A^T or A^T (A A^T)^{-1}
    m, n = _shape(a)[-2:]
    at = np.swapaxes(a, -1, -2)
    if m >= n:
        return bind(L.solve, at @ a, at)
    return np.swapaxes(bind(L.solve, a @ at, a), -1, -2)


@handles(np.linalg.matrix_power)
def matrix_power(a, n):
    n = int(n)
    if n < 0:
        a, n = bind(L.inv, a), -n
    if n == 0:
        return np.broadcast_to(np.eye(_shape(a)[-1], dtype=_dtype(a)), _shape(a))
    result, base = None, a
    while n:  # binary powering
        if n & 1:
            result = base if result is None else result @ base
        n >>= 1
        if n:
            base = base @ base
    return result


_base_norm = HANDLERS.get(np.linalg.norm)


@handles(np.linalg.norm)
def norm(x, ord=None, axis=None, keepdims=False):
    nd = _ndim(x)
    axes = norm_axis(axis, nd) if axis is not None else (tuple(range(nd)) if ord is not None else None)
    if axes is not None and len(axes) == 2 and ord in (2, -2, "nuc"):
        y = np.moveaxis(x, axes, (-2, -1))
        s = bind(L.svd, y)[1]
        r = np.max(s, -1) if ord == 2 else np.min(s, -1) if ord == -2 else np.sum(s, -1)
        if keepdims:
            shape = list(_shape(x))
            for a in axes:
                shape[a] = 1
            r = reshape(r, shape)
        return r
    return _base_norm(x, ord=ord, axis=axis, keepdims=keepdims)


# -- np.fft -------------------------------------------------------------------------------------


def _resize(x, n, axis):
    """Crop or zero-pad `x` to length n along axis (numpy's `n=` argument)."""
    cur = _shape(x)[axis]
    if n is None or n == cur:
        return x
    if n < cur:
        return getitem(x, (slice(None),) * axis + (slice(0, n),))
    shape = list(_shape(x))
    shape[axis] = n - cur
    return np.concatenate([x, np.zeros(shape, dtype=_dtype(x))], axis=axis)


def _scale(norm, n, inverse):
    if norm in (None, "backward"):
        return 1.0
    if norm == "ortho":
        return np.sqrt(n) if inverse else 1.0 / np.sqrt(n)
    if norm == "forward":
        return float(n) if inverse else 1.0 / n
    raise ValueError(f"Invalid norm value {norm}")


def _as_complex(x):
    return x if _dtype(x).kind == "c" else x.astype(np.complex128) if isinstance(x, Tracer) \
        else np.asarray(x, np.complex128)


def _fft1(x, n, axis, norm, inverse):
    axis = axis % _ndim(x)
    x = _resize(_as_complex(x), n, axis)
    y = bind(F.ifft if inverse else F.fft, x, axis=axis)
    s = _scale(norm, _shape(x)[axis], inverse)
    return y if s == 1.0 else y * s


handles(np.fft.fft)(lambda a, n=None, axis=-1, norm=None, out=None: _fft1(a, n, axis, norm, False))
handles(np.fft.ifft)(lambda a, n=None, axis=-1, norm=None, out=None: _fft1(a, n, axis, norm, True))


def _fftn(a, s, axes, norm, inverse):
    nd = _ndim(a)
    if axes is None:
        axes = list(range(nd)) if s is None else list(range(nd - len(s), nd))
    s = [None] * len(axes) if s is None else list(s)
    for ax, n in zip(axes, s):
        a = _fft1(a, n, ax, norm, inverse)
    return a


handles(np.fft.fftn)(lambda a, s=None, axes=None, norm=None, out=None: _fftn(a, s, axes, norm, False))
handles(np.fft.ifftn)(lambda a, s=None, axes=None, norm=None, out=None: _fftn(a, s, axes, norm, True))
handles(np.fft.fft2)(lambda a, s=None, axes=(-2, -1), norm=None, out=None: _fftn(a, s, axes, norm, False))
handles(np.fft.ifft2)(lambda a, s=None, axes=(-2, -1), norm=None, out=None: _fftn(a, s, axes, norm, True))


@handles(np.fft.rfft)
def rfft(a, n=None, axis=-1, norm=None, out=None):
    axis = axis % _ndim(a)
    if _dtype(a).kind == "c":
        raise TypeError("rfft of a complex array: use fft")
    a = _resize(a, n, axis)
    y = bind(F.rfft, a, axis=axis)
    s = _scale(norm, _shape(a)[axis], False)
    return y if s == 1.0 else y * s


@handles(np.fft.irfft)
def irfft(a, n=None, axis=-1, norm=None, out=None):
    axis = axis % _ndim(a)
    m = _shape(a)[axis]
    n = 2 * (m - 1) if n is None else int(n)
    a = _resize(_as_complex(a), n // 2 + 1, axis)
    y = bind(F.irfft, a, n=n, axis=axis)
    s = _scale(norm, n, True)
    return y if s == 1.0 else y * s


# -- gathers: pad, roll, tile, repeat --------------------------------------------------------------


def _gather(x, idx_per_axis):
    return getitem(x, np.ix_(*idx_per_axis))


@handles(np.pad)
def pad(array, pad_width, mode="constant", **kwargs):
    shape = _shape(array)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=int).reshape(-1, 2) if np.ndim(pad_width)
                             else np.asarray([[pad_width, pad_width]]), (len(shape), 2))
    if mode == "constant":
        idx = [np.pad(np.arange(n), tuple(w), mode="edge") for n, w in zip(shape, widths)]
        inside = [np.pad(np.ones(n, bool), tuple(w)) for n, w in zip(shape, widths)]
        mask = np.ones((), bool)
        for k, m in enumerate(inside):
            mask = mask & m.reshape((-1,) + (1,) * (len(shape) - k - 1))
        cv = kwargs.get("constant_values", 0)
        if not isinstance(cv, Tracer) and np.ndim(cv):
            raise TraceError("np.pad with per-axis constant_values is not supported on traced values")
        return np.where(mask, _gather(array, idx), cv)
    if mode in ("edge", "reflect", "symmetric", "wrap"):
        idx = [np.pad(np.arange(n), tuple(w), mode=mode) for n, w in zip(shape, widths)]
        return _gather(array, idx)
    raise TraceError(f"np.pad(mode={mode!r}) is not supported on traced values")


@handles(np.roll)
def roll(a, shift, axis=None):
    if axis is None:
        return reshape(roll(reshape(a, (-1,)), shift, 0), _shape(a))
    shape = _shape(a)
    shifts = np.broadcast_to(shift, np.shape(axis)) if np.ndim(axis) else [shift]
    axes = axis if np.ndim(axis) else [axis]
    idx = [np.arange(n) for n in shape]
    for s, ax in zip(shifts, axes):
        idx[ax % len(shape)] = np.roll(idx[ax % len(shape)], int(s))
    return _gather(a, idx)


@handles(np.tile)
def tile(A, reps):
    reps = (reps,) if np.ndim(reps) == 0 else tuple(reps)
    nd = max(len(reps), _ndim(A))
    A = reshape(A, (1,) * (nd - _ndim(A)) + tuple(_shape(A)))
    reps = (1,) * (nd - len(reps)) + reps
    return _gather(A, [np.tile(np.arange(n), r) for n, r in zip(_shape(A), reps)])


@handles(np.repeat)
def repeat(a, repeats, axis=None):
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    axis = axis % _ndim(a)
    idx = [np.arange(n) for n in _shape(a)]
    idx[axis] = np.repeat(idx[axis], repeats)
    return _gather(a, idx)


@handles(np.array_split)
def array_split(ary, indices_or_sections, axis=0):
    n = _shape(ary)[axis]
    if np.ndim(indices_or_sections) == 0:
        k = int(indices_or_sections)
        each, extra = divmod(n, k)
        sizes = [each + 1] * extra + [each] * (k - extra)
        bounds = np.concatenate([[0], np.cumsum(sizes)])
    else:
        bounds = np.concatenate([[0], np.asarray(indices_or_sections, int), [n]])
    pre = (slice(None),) * (axis % _ndim(ary))
    return [getitem(ary, pre + (slice(int(s), int(max(s, e))),)) for s, e in zip(bounds[:-1], bounds[1:])]


@handles(np.split)
def split(ary, indices_or_sections, axis=0):
    if np.ndim(indices_or_sections) == 0 and _shape(ary)[axis] % int(indices_or_sections):
        raise ValueError("array split does not result in an equal division")
    return array_split(ary, indices_or_sections, axis)


@handles(np.linspace)
def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0, device=None):
    num = int(num)
    div = (num - 1) if endpoint else num
    steps = np.arange(num, dtype=float) / (div if div > 0 else 1)
    start_shape = np.shape(start) if not isinstance(start, Tracer) else _shape(start)
    stop_shape = np.shape(stop) if not isinstance(stop, Tracer) else _shape(stop)
    bshape = np.broadcast_shapes(tuple(start_shape), tuple(stop_shape))
    steps = steps.reshape((-1,) + (1,) * len(bshape))
    delta = stop - start
    y = start + steps * delta
    if endpoint and num > 1:
        y = np.concatenate([getitem(y, slice(0, -1)), np.expand_dims(stop + 0.0 * delta, 0)], axis=0)
    if axis != 0:
        y = np.moveaxis(y, 0, axis)
    if dtype is not None:
        y = y.astype(dtype)
    return (y, delta / div) if retstep else y


# -- convolution ---------------------------------------------------------------------------------


def convolve_nd(in1, in2, mode="full"):
    """N-d linear convolution as a sum of shifted copies of the larger input, one per
    element of the smaller (fine for the small kernels autodiff code uses)."""
    s1, s2 = tuple(_shape(in1)), tuple(_shape(in2))
    if len(s1) != len(s2):
        raise ValueError("in1 and in2 should have the same dimensionality")
    swap = int(np.prod(s2)) > int(np.prod(s1))
    big, small = (in2, in1) if swap else (in1, in2)
    sb, ss = (s2, s1) if swap else (s1, s2)
    full = tuple(a + b - 1 for a, b in zip(sb, ss))
    out = None
    for j in np.ndindex(*ss):
        placed = pad(big, [(k, f - k - n) for k, f, n in zip(j, full, sb)])
        term = placed * getitem(small, j)
        out = term if out is None else out + term
    if mode == "full":
        return out
    if mode == "valid":
        if not all(a >= b for a, b in zip(s1, s2)) and not all(a <= b for a, b in zip(s1, s2)):
            raise ValueError("For 'valid' mode, one must be at least as large as the other in every dimension")
        keep = tuple(abs(a - b) + 1 for a, b in zip(s1, s2))
        start = tuple((f - k) // 2 for f, k in zip(full, keep))
    elif mode == "same":
        keep = s1
        start = tuple((f - k) // 2 for f, k in zip(full, keep))
    else:
        raise ValueError(f"invalid mode {mode!r}")
    return getitem(out, tuple(slice(a, a + k) for a, k in zip(start, keep)))


@handles(np.convolve)
def convolve(a, v, mode="full"):
    if _ndim(a) != 1 or _ndim(v) != 1:
        raise ValueError("object too deep for desired array")
    if mode == "same" and _shape(v)[0] > _shape(a)[0]:
        a, v = v, a  # numpy's 'same' is max(M, N) long
    return convolve_nd(a, v, mode)


# -- complex --------------------------------------------------------------------------------------


@handles(np.angle)
def angle(z, deg=False):
    a = np.arctan2(np.imag(z), np.real(z))
    return a * (180.0 / np.pi) if deg else a


@handles(np.block)
def block(arrays):
    def rec(x, depth):
        if isinstance(x, list):
            parts = [rec(y, depth + 1) for y in x]
            return np.concatenate(parts, axis=-(max_depth - depth))
        return x

    def depth_of(x):
        return 1 + depth_of(x[0]) if isinstance(x, list) else 0

    max_depth = depth_of(arrays)
    return rec(arrays, 0)


from . import inplace as _inplace  # noqa: E402,F401  (x[idx] = v, x += v, views; issue 6)
