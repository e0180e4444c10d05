"""`np.fft` primitives (1-D, along one axis, norm="backward") and their rules (issue 6).

`fft.fft`, `fft.ifft`, `fft.rfft(n)`, `fft.irfft(n)`. The handlers in `handlers_extra.py`
express fft2/fftn/ifft2/ifftn as 1-D transforms along each axis, and `n=`/`norm=` as
padding/cropping and a scale. Under autograd's complex convention the VJP of a linear map
`F` is `F^T g` (a transpose, no conjugate): the DFT matrix is symmetric, so
`vjp(fft)(g) = fft(g)`; rfft keeps the first `n//2 + 1` rows of the DFT, so its VJP is
the DFT of the zero-padded cotangent (the real part is taken by the reverse pass);
irfft reads each interior bin twice (Hermitian symmetry), hence the factor `c`.
"""

from __future__ import annotations

import numpy as np

from ..ir import defprim
from ..trace import bind
from . import vjp
from .jvp import jvp

fft = defprim("fft.fft", lambda x, axis: np.fft.fft(x, axis=axis), linear=True)
ifft = defprim("fft.ifft", lambda x, axis: np.fft.ifft(x, axis=axis), linear=True)
rfft = defprim("fft.rfft", lambda x, axis: np.fft.rfft(x, axis=axis), linear=True)
irfft = defprim("fft.irfft", lambda x, n, axis: np.fft.irfft(x, n=n, axis=axis), linear=True)


def _pad_axis(g, n, axis):
    shape = list(np.shape(g))
    extra = n - shape[axis]
    if extra <= 0:
        return g
    shape[axis] = extra
    return np.concatenate([g, np.zeros(shape, dtype=g.dtype)], axis=axis)


def _irfft_factor(m, n, axis, ndim):
    c = np.full(m, 2.0)
    c[0] = 1.0
    if n % 2 == 0:
        c[-1] = 1.0
    shape = [1] * ndim
    shape[axis] = m
    return c.reshape(shape)


vjp(fft, lambda g, ans, x, axis: bind(fft, g, axis=axis))
vjp(ifft, lambda g, ans, x, axis: bind(ifft, g, axis=axis))
vjp(rfft, lambda g, ans, x, axis: bind(fft, _pad_axis(g, np.shape(x)[axis], axis), axis=axis))
vjp(irfft, lambda g, ans, x, n, axis:
    np.conj(bind(rfft, g, axis=axis)) * (_irfft_factor(np.shape(x)[axis], n, axis, np.ndim(x)) / n))

jvp(fft, lambda g, ans, x, axis: bind(fft, g, axis=axis))
jvp(ifft, lambda g, ans, x, axis: bind(ifft, g, axis=axis))
jvp(rfft, lambda g, ans, x, axis: bind(rfft, np.real(g), axis=axis))
jvp(irfft, lambda g, ans, x, n, axis: bind(irfft, g, n=n, axis=axis))
