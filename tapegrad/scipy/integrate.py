"""`scipy.integrate.odeint` drop-in, differentiable in `y0`, `t` and `args` by the adjoint
method (as HIPS autograd): the backward pass integrates the augmented system
`[y, a_y, a_t, a_args]` backwards in time, using VJPs of `func` made by tapegrad.

The adjoint solve runs numerically inside the `integrate.odeint_vjp` primitive, which has
no rule of its own: first derivatives only (a second derivative raises
NoDerivativeError). `y0` must be 1-D; `args` a tuple of arrays or floats.
"""

from __future__ import annotations

import numpy as np
import scipy.integrate as _si

from ..ir import defprim
from ..rules import vjp_all
from ..trace import Tracer, bind


def _odeint_impl(y0, t, *args, func, kw):
    return _si.odeint(func, y0, t, args=tuple(args), **dict(kw))


def _adjoint_impl(g, yt, y0, t, *args, func, kw):
    from ..transforms import _vjp_all

    kw = dict(kw)
    T, D = yt.shape
    sizes = [int(np.size(a)) for a in args]
    shapes = [np.shape(a) for a in args]

    def unflat(v):
        out, k = [], 0
        for n, s, a in zip(sizes, shapes, args):
            piece = v[k:k + n].reshape(s)
            out.append(float(piece) if isinstance(a, float) else piece)
            k += n
        return out

    diff = [0, 1] + [2 + i for i, a in enumerate(args) if np.result_type(a).kind in "fc"]

    def aug(state, tt, *_):
        y, ay = state[:D], state[D:2 * D]
        dy = np.asarray(func(y, tt, *unflat(np.asarray(flat_args))), dtype=float)
        cts = _vjp_all(lambda y, tt, *a: func(y, tt, *a), (y, float(tt), *unflat(np.asarray(flat_args))),
                       diff, [-ay])
        ct = dict(zip(diff, cts))
        cargs = [np.ravel(ct[2 + i]) if (2 + i) in ct else np.zeros(n) for i, n in enumerate(sizes)]
        return np.concatenate([dy, np.ravel(ct[0]), [float(np.real(ct[1]))]] + cargs)

    flat_args = np.concatenate([np.ravel(np.asarray(a, float)) for a in args]) if args else np.zeros(0)
    ay = g[-1].astype(float)
    at0 = 0.0
    aargs = np.zeros(flat_args.size)
    gt = []
    for i in range(T - 1, 0, -1):
        cur = float(np.dot(func(yt[i], t[i], *args), g[i]))
        gt.append(cur)
        at0 -= cur
        s0 = np.concatenate([yt[i], ay, [at0], aargs])
        s1 = _si.odeint(aug, s0, np.array([t[i], t[i - 1]]), **kw)[1]
        ay, at0, aargs = s1[D:2 * D] + g[i - 1], s1[2 * D], s1[2 * D + 1:]
    gt.append(at0)
    res = [ay, np.array(gt[::-1])]
    k = 0
    for n, s in zip(sizes, shapes):
        res.append(aargs[k:k + n].reshape(s))
        k += n
    return tuple(res)


odeint_p = defprim("integrate.odeint", _odeint_impl)
odeint_vjp_p = defprim("integrate.odeint_vjp", _adjoint_impl, multiple_results=True)


def _odeint_vjp(g, ans, y0, t, *args, func, kw):
    return list(bind(odeint_vjp_p, g, ans, y0, t, *args, func=func, kw=kw))


def _no_second_order(*args, **kw):
    from ..errors import NoDerivativeError

    raise NoDerivativeError("scipy.integrate.odeint: the adjoint gives first derivatives only")


vjp_all(odeint_p, _odeint_vjp)
vjp_all(odeint_vjp_p, _no_second_order)


def odeint(func, y0, t, args=(), **kwargs):
    """`scipy.integrate.odeint(func, y0, t, args)`, differentiable in y0, t and args."""
    args = tuple(args)
    if not any(isinstance(a, Tracer) for a in (y0, t) + args):
        return _si.odeint(func, y0, t, args=args, **kwargs)
    kw = tuple(sorted(kwargs.items()))
    return bind(odeint_p, y0, t, *args, func=func, kw=kw)


__all__ = ["odeint"]
