"""Function transforms beyond `grad` (HIPS autograd / JAX style, see shared/API.md).

Every transform traces `f` once on a fresh Trace with the differentiated argument as
its input, then appends derivative ops to that same trace: the reverse pass
(`passes/reverse.backward`) for VJPs, the forward pass (`passes/forward.forward`) for
JVPs. Because the appended ops are recorded like user code, every transform nests in
every other one (`jacobian(grad(f))`, `make_jvp(grad(f))`, ... to any order).

Complex numbers follow HIPS autograd's convention: a cotangent `g` of a complex value
stands for `du/dx - i du/dy`, so for a real-valued `f(z)` `grad` gives the conjugate of
the steepest-ascent direction, and for a holomorphic `f`, `holomorphic_grad(f)(z)` is
`f'(z)`.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager

import numpy as np

from .api import grad as _grad
from .core import as_atom, reopened
from .passes.forward import forward
from .passes.reverse import backward, own_inputs
from .trace import Tracer, _stack, new_trace
from .trace import aval as _aval

# -- plumbing -------------------------------------------------------------------------------


def _val(x):
    """The value one level out of a result of the current trace."""
    return x.value if isinstance(x, Tracer) else x


def _kind(x) -> str:
    if isinstance(x, Tracer):
        return x.dtype.kind
    if isinstance(x, (np.ndarray, np.generic)):
        return x.dtype.kind
    for t, k in ((bool, "b"), (int, "i"), (float, "f"), (complex, "c")):
        if isinstance(x, t):
            return k
    return np.asarray(x).dtype.kind


def _check_inexact(x, what, k):
    kind = _kind(x)
    if kind not in "fc":
        raise TypeError(f"{what}: argument {k} has dtype kind '{kind}': only float and complex "
                        "arguments can be differentiated")


def _as_tracer(tr, x, like_dtype=None):
    """A Tracer of `tr` for a seed/tangent `x` (plain array, scalar or outer Tracer)."""
    if isinstance(x, Tracer) and x._trace is tr:
        return x
    if not isinstance(x, Tracer):
        x = np.asarray(x, dtype=like_dtype) if like_dtype is not None else np.asarray(x)
    return Tracer(tr, tr.atom(x), x)


def _zeros(x):
    dtype, shape = _aval(x)
    return np.zeros(shape, dtype)


def _copy_array(x):
    return x.copy() if isinstance(x, np.ndarray) else x


def _fresh(x, seeds):
    """`x` (a cotangent or tangent array), copied when it shares memory with a seed the
    caller passed in (the derivative of the identity, a reshape, a transpose)."""
    if isinstance(x, np.ndarray) and any(
            isinstance(s, np.ndarray) and np.may_share_memory(x, s) for s in seeds):
        return x.copy()
    return x


def _out_float(x, g):
    """Python float in -> float out (autograd does the same), 0-d array in -> 0-d array
    out, else the array as is."""
    if isinstance(x, float) and not isinstance(g, Tracer) and np.ndim(g) == 0:
        return float(np.real(g)) if np.iscomplexobj(g) else float(g)
    if isinstance(x, complex) and not isinstance(g, Tracer) and np.ndim(g) == 0:
        return complex(g)
    if isinstance(x, np.ndarray) and x.ndim == 0 and not isinstance(g, (Tracer, np.ndarray)):
        return np.asarray(g)  # a 0-d array in -> a 0-d array out, as `grad` gives
    return g


class _Run:
    """`f` traced with the arguments `argnums` as inputs; the trace stays reusable."""

    def __init__(self, f, args, kwargs, argnums, what):
        self.f, self.args, self.kwargs, self.argnums = f, args, kwargs, tuple(argnums)
        for k in self.argnums:
            if k >= len(args):
                raise TypeError(f"{what}: argnum {k} but only {len(args)} positional arguments given")
            _check_inexact(args[k], what, k)
        self.outer = list(_stack())
        with new_trace(f) as tr:
            xs = list(args)
            self.ins = []
            for k in self.argnums:
                t = tr.new_input(args[k])
                xs[k] = t
                self.ins.append(t)
            out = f(*xs, **kwargs)
            self.trace = tr
            self.out = out
            self.out_atom = as_atom(tr, out) if _is_leaf_out(out) else None

    @contextmanager
    def reopened(self):
        """Append more ops to the trace; falls back to re-tracing where the stack moved on."""
        stack = _stack()
        if stack == self.outer and all(not t.closed for t in stack):
            with reopened(self.trace):
                yield self
        else:
            fresh = _Run(self.f, self.args, self.kwargs, self.argnums, "transform")
            with fresh.reopened() as r:
                yield r

    def own(self):
        """For a function that runs later (`vjp_fn`, `jvp_fn`): the trace keeps its own
        copies of the arrays its rules may read that a caller could write meanwhile (the
        arguments and captured globals), as JAX's vjp keeps residuals. At the top level only."""
        if not self.outer:
            own_inputs(self.trace, consts=True)

    @property
    def value(self):
        return _map_out(self.out, _val)


def _is_leaf_out(out) -> bool:
    return isinstance(out, (Tracer, np.ndarray, np.generic, float, int, complex, bool))


def _map_out(out, fn):
    if isinstance(out, dict):
        return {k: _map_out(v, fn) for k, v in out.items()}
    if isinstance(out, (list, tuple)) and not hasattr(type(out), "_fields"):
        return type(out)(_map_out(v, fn) for v in out)
    return fn(out)


def _need_leaf(run, what):
    if run.out_atom is None:
        raise TypeError(f"{what} needs f to return an array or scalar, got {type(run.out).__name__}")


def _vjp_in(run, seed) -> list:
    """Cotangents (Tracers of run.trace) of run.ins for the output cotangent `seed`."""
    tr = run.trace
    if not isinstance(run.out, Tracer) or run.out._trace is not tr:
        return [None] * len(run.ins)
    dtype, shape = _aval(run.out)
    s = _as_tracer(tr, seed, dtype if not isinstance(seed, Tracer) else None)
    if tuple(s.shape) != tuple(shape):
        s = np.broadcast_to(s, shape)
    return backward(tr, run.out_atom, [t.node for t in run.ins], seed=s)


def _argnums(argnum):
    multi = isinstance(argnum, (tuple, list))
    return multi, (tuple(argnum) if multi else (argnum,))


def _wrap(f, name):
    def deco(g):
        functools.update_wrapper(g, f)
        g.__name__ = f"{name}_{getattr(f, '__name__', 'f')}"
        return g

    return deco


# -- reverse-mode transforms ------------------------------------------------------------------


def make_vjp(f, argnum=0):
    """`make_vjp(f)(*args) -> (vjp_fn, value)`; `vjp_fn(g)` is the cotangent of `args[argnum]`
    (a tuple of them for a tuple `argnum`)."""
    multi, argnums = _argnums(argnum)

    @_wrap(f, "vjp")
    def maker(*args, **kwargs):
        run = _Run(f, args, kwargs, argnums, "make_vjp")
        _need_leaf(run, "make_vjp")
        run.own()

        def vjp_fn(g):
            with run.reopened() as r:
                cts = _vjp_in(r, g)
                res = tuple(_out_float(args[k], _val(c) if c is not None else _zeros(args[k]))
                            for k, c in zip(argnums, cts))
            if not run.outer:  # d(x)/dx: the cotangent is the seed itself
                res = tuple(_fresh(c, (g,)) for c in res)
            return res if multi else res[0]

        return vjp_fn, run.value

    return maker


def elementwise_grad(f, argnum=0):
    """The gradient of `sum(f(x))`: for elementwise `f`, the derivative at every element."""
    multi, argnums = _argnums(argnum)

    @_wrap(f, "elementwise_grad")
    def gradfun(*args, **kwargs):
        run = _Run(f, args, kwargs, argnums, "elementwise_grad")
        _need_leaf(run, "elementwise_grad")
        kind = _kind(run.out)
        if kind == "b":
            raise TypeError("elementwise_grad of a boolean output is not defined")
        if kind == "c":
            raise TypeError("elementwise_grad of a complex output is not defined: use "
                            "tg.holomorphic_grad, or differentiate np.real/np.abs of it")
        with run.reopened() as r:
            dtype, shape = _aval(r.out)
            cts = _vjp_in(r, np.ones(shape, dtype))
            res = tuple(_out_float(args[k], _val(c) if c is not None else _zeros(args[k]))
                        for k, c in zip(argnums, cts))
        return res if multi else res[0]

    return gradfun


def holomorphic_grad(f, argnum=0):
    """`f'(z)` for a holomorphic `f` (elementwise for array outputs). A real argument is
    promoted to complex, so `f'` is returned with its imaginary part."""

    @_wrap(f, "holomorphic_grad")
    def gradfun(*args, **kwargs):
        args = list(args)
        x = args[argnum]
        if _kind(x) == "f":
            args[argnum] = complex(x) if isinstance(x, float) else x.astype(np.complex128) \
                if isinstance(x, Tracer) else np.asarray(x, np.complex128)
        run = _Run(f, tuple(args), kwargs, (argnum,), "holomorphic_grad")
        _need_leaf(run, "holomorphic_grad")
        with run.reopened() as r:
            dtype, shape = _aval(r.out)
            # the real part's gradient in autograd's convention is u_x - i u_y = f'(z)
            (c,) = _vjp_in(r, np.ones(shape, dtype))
            return _out_float(args[argnum], _val(c) if c is not None else _zeros(args[argnum]))

    return gradfun


def jacobian(f, argnum=0):
    """`J[i..., j...] = d f(x)[i...] / d x[j...]`, shape `f(x).shape + x.shape`; one reverse
    pass per output element, all on one trace. A tuple `argnum` gives a tuple of them."""
    multi, argnums = _argnums(argnum)
    _check_argnums(argnums, "jacobian")

    @_wrap(f, "jacobian")
    def jacfun(*args, **kwargs):
        run = _Run(f, args, kwargs, argnums, "jacobian")
        _need_leaf(run, "jacobian")
        if _kind(run.out) == "b":
            raise TypeError("jacobian of a boolean output is not defined")
        avals = [_aval(args[k]) for k in argnums]
        with run.reopened() as r:
            dtype, shape = _aval(r.out)
            if not isinstance(r.out, Tracer) or r.out._trace is not r.trace or dtype.kind not in "fc":
                res = tuple(np.zeros(shape + xshape, np.result_type(dtype, xdt))
                            for xdt, xshape in avals)
                return res if multi else res[0]
            rows = [[] for _ in argnums]
            n = int(np.prod(shape, dtype=np.int64))
            for i in range(n):
                e = np.zeros(n, dtype)
                e[i] = 1
                for k, c in enumerate(_vjp_in(r, e.reshape(shape))):
                    rows[k].append(c if c is not None else np.zeros(avals[k][1], avals[k][0]))
            res = tuple(_stack_rows(rk, shape, xdt, xshape)
                        for rk, (xdt, xshape) in zip(rows, avals))
            return res if multi else res[0]

    return jacfun


def _stack_rows(rows, shape, xdt, xshape):
    if not any(isinstance(c, Tracer) for c in rows):
        return np.reshape(np.stack(rows), shape + xshape) if rows else np.zeros(shape + xshape, xdt)
    return _val(np.reshape(np.stack(rows), shape + xshape))


def _check_argnums(argnums, what):
    for k in argnums:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
            raise TypeError(f"{what}: argnum must be an int or a tuple of ints, got {k!r}")


def hessian(f, argnum=0):
    """The Hessian `jacobian(grad(f))`, shape `x.shape + x.shape`. A tuple `argnum` gives the
    blocks as nested tuples, `H[i][j] = d2 f / d args[i] d args[j]` (JAX's layout)."""
    multi, argnums = _argnums(argnum)
    _check_argnums(argnums, "hessian")
    if not multi:
        return _wrap(f, "hessian")(jacobian(_grad(f, argnum=argnum), argnum))
    rows = [jacobian(_grad(f, argnum=i), argnums) for i in argnums]

    @_wrap(f, "hessian")
    def hess(*args, **kwargs):
        return tuple(row(*args, **kwargs) for row in rows)

    return hess


def hessian_vector_product(f, argnum=0):
    """`hvp(*args, v) = H(args) @ v` for a scalar `f`, forward-over-reverse: one reverse pass
    and one forward pass, never forming H."""
    gf = _grad(f, argnum=argnum)

    @_wrap(f, "hvp")
    def hvp(*args, **kwargs):
        *xs, v = args
        return make_jvp(gf, argnum)(*xs, **kwargs)(v)[1]

    return hvp


hessian_tensor_product = hessian_vector_product


def vector_jacobian_product(f, argnum=0):
    """`vjp(*args, v) = v^T J` (autograd's name)."""

    def vjp(*args, **kwargs):
        *xs, v = args
        return make_vjp(f, argnum)(*xs, **kwargs)[0](v)

    return vjp


# -- forward mode -----------------------------------------------------------------------------


def make_jvp(f, argnum=0):
    """Forward mode: `make_jvp(f)(*args)(v) -> (value, jvp)`, the JVP from JVP rules pushed
    along the recorded tape (a tuple `argnum` takes a tuple of tangents)."""
    multi, argnums = _argnums(argnum)

    @_wrap(f, "jvp")
    def maker(*args, **kwargs):
        run = _Run(f, args, kwargs, argnums, "make_jvp")
        _need_leaf(run, "make_jvp")
        run.own()
        # the value at this call (f may return an argument, a view of one or a global, which
        # the caller can write before calling jvp_fn); each jvp_fn call gets its own copy,
        # so writing one result does not change the next
        value = _map_out(run.value, _copy_array) if not run.outer else run.value

        def jvp_fn(v):
            vs = tuple(v) if multi else (v,)
            with run.reopened() as r:
                t = _val(_jvp_out(r, vs))
            if run.outer:
                return value, t
            return _map_out(value, _copy_array), _fresh(t, vs)

        return jvp_fn

    return maker


def _jvp_out(r, vs):
    tr = r.trace
    dtype, shape = _aval(r.out)
    if not isinstance(r.out, Tracer) or r.out._trace is not tr or dtype.kind not in "fc":
        return np.zeros(shape, dtype if dtype.kind in "fc" else np.float64)
    ts = []
    for x, v in zip(r.ins, vs):
        t = _as_tracer(tr, v, None)
        if tuple(t.shape) != tuple(x.shape):
            raise ValueError(f"make_jvp: tangent of shape {tuple(t.shape)} for an argument of "
                             f"shape {tuple(x.shape)}")
        ts.append(t)
    (t,) = forward(tr, [x.node for x in r.ins], ts, [r.out_atom])
    return t if t is not None else np.zeros(shape, dtype)


def jvp(f, argnum=0):
    """`jvp(f)(*args, v) -> J v` (the tangent only)."""

    def fn(*args, **kwargs):
        *xs, v = args
        return make_jvp(f, argnum)(*xs, **kwargs)(v)[1]

    return fn


# -- checking -------------------------------------------------------------------------------


def _leaves(out) -> list:
    if isinstance(out, (list, tuple)) and not hasattr(type(out), "_fields"):
        return [y for o in out for y in _leaves(o)]
    return [out]


def _call_on_inputs(tr, f, args, diff):
    """Run `f` with `args[diff]` made inputs of `tr`. -> (the input Tracers, output leaves)."""
    xs = list(args)
    ins = []
    for k in diff:
        xs[k] = tr.new_input(args[k])
        ins.append(xs[k])
    return ins, _leaves(f(*xs))


def _jvp_all(f, args, diff, vs):
    """(output leaves, their tangents) for tangents `vs` of `args[diff]`."""
    with new_trace(f) as tr:
        ins, outs = _call_on_inputs(tr, f, args, diff)
        mine = [o for o in outs if isinstance(o, Tracer) and o._trace is tr]
        ts = forward(tr, [x.node for x in ins], [_as_tracer(tr, v) for v in vs],
                     [o.node for o in mine])
        tmap = {id(o): t for o, t in zip(mine, ts)}
        tans = [_val(tmap[id(o)]) if tmap.get(id(o)) is not None else
                np.zeros(_aval(o)[1], _aval(o)[0] if _kind(o) in "fc" else np.float64) for o in outs]
        return [_val(o) for o in outs], tans


def _vjp_all(f, args, diff, us):
    """Cotangents of `args[diff]` for cotangents `us` of the output leaves (a tuple)."""
    with new_trace(f) as tr:
        ins, outs = _call_on_inputs(tr, f, args, diff)
        acc = [None] * len(ins)
        for o, u in zip(outs, us):
            if not (isinstance(o, Tracer) and o._trace is tr):
                continue
            s = _as_tracer(tr, u, None if isinstance(u, Tracer) else o.dtype)
            cts = backward(tr, o.node, [x.node for x in ins], seed=s)
            acc = [a if c is None else (c if a is None else a + c) for a, c in zip(acc, cts)]
        return tuple(_val(a) if a is not None else _zeros(args[k]) for a, k in zip(acc, diff))


def _randn(rng, x):
    dtype, shape = _aval(x)
    r = rng.standard_normal(shape)
    if dtype.kind == "c":
        r = r + 1j * rng.standard_normal(shape)
    return r


def _inner(a, b) -> float:
    """Autograd's real inner product `Re <a, b>`."""
    return float(np.real(np.vdot(np.ravel(np.asarray(a)), np.ravel(np.asarray(b)))))


def _shift(args, diff, vs, h):
    xs = list(args)
    for k, v in zip(diff, vs):
        x = args[k]
        y = np.asarray(x) + h * (v if np.iscomplexobj(x) else np.real(v))
        xs[k] = type(x)(y) if isinstance(x, (float, complex)) else y.astype(np.asarray(x).dtype)
    return xs


def _numeric_jvp(f, args, diff, vs, eps):
    plus = _leaves(f(*_shift(args, diff, vs, eps / 2)))
    minus = _leaves(f(*_shift(args, diff, vs, -eps / 2)))
    return [(np.asarray(p) - np.asarray(m)) / eps for p, m in zip(plus, minus)]


def check_grads(f, *args, modes=("fwd", "rev"), order=2, eps=1e-6, rtol=1e-5, atol=1e-6,
                seed=0):
    """`check_grads(f, modes=("fwd", "rev"), order=2)(*args)`: compare forward-mode JVPs and
    reverse-mode VJPs (random projections, `<u, J v>`) with central differences, and recurse
    on the derivative functions up to `order`. Raises AssertionError on a mismatch.
    `check_grads(f, *args)` (HIPS autograd's form) checks at once."""
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    if not set(modes) <= {"fwd", "rev"}:
        raise ValueError(f"check_grads: modes must be 'fwd' and/or 'rev', got {modes}")

    def check(*xs):
        rng = np.random.default_rng(seed)
        _check(f, xs, modes, order, eps, rtol, atol, rng)

    return check(*args) if args else check


def _check(f, args, modes, order, eps, rtol, atol, rng):
    diff = [k for k, a in enumerate(args) if _kind(a) in "fc"]
    if not diff:
        return
    name = getattr(f, "__name__", "f")
    n = len(args)
    if "fwd" in modes:
        vs = [_randn(rng, args[k]) for k in diff]
        _, tans = _jvp_all(f, args, diff, vs)
        num = _numeric_jvp(f, args, diff, vs, eps)
        for i, (t, m) in enumerate(zip(tans, num)):
            if not np.allclose(np.asarray(t), m, rtol=rtol, atol=atol):
                raise AssertionError(f"forward-mode derivative of {name} (output {i}) does not "
                                     f"match central differences:\n  jvp     {np.asarray(t)!r}\n"
                                     f"  numeric {m!r}")
        if order > 1:
            def jvp_f(*xv):
                return _jvp_all(f, xv[:n], diff, xv[n:])[1]

            jvp_f.__name__ = f"jvp_{name}"
            _check(jvp_f, tuple(args) + tuple(vs), modes, order - 1, eps, rtol, atol, rng)
    if "rev" in modes:
        outs = _leaves(f(*args))
        us = [_randn(rng, o) if _kind(o) in "fc" else np.zeros(np.shape(o)) for o in outs]
        cts = _vjp_all(f, args, diff, [np.conj(u) for u in us])
        vs = [_randn(rng, args[k]) for k in diff]
        exact = sum(_inner(v, np.conj(c)) for v, c in zip(vs, cts))
        numeric = sum(_inner(u, m) for u, m in zip(us, _numeric_jvp(f, args, diff, vs, eps)))
        if not (abs(exact - numeric) <= atol + rtol * max(abs(exact), abs(numeric))):
            raise AssertionError(f"reverse-mode derivative of {name} does not match central "
                                 f"differences: <J^T u, v> = {exact!r}, <u, J v> = {numeric!r}")
        if order > 1:


            def vjp_f(*xu):
                return _vjp_all(f, xu[:n], diff, xu[n:])

            vjp_f.__name__ = f"vjp_{name}"
            _check(vjp_f, tuple(args) + tuple(us), modes, order - 1, eps, rtol, atol, rng)


__all__ = ["make_vjp", "make_jvp", "elementwise_grad", "holomorphic_grad", "jacobian",
           "hessian", "hessian_vector_product", "hessian_tensor_product",
           "vector_jacobian_product", "jvp", "check_grads"]
