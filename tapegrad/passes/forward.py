"""The forward pass (forward-mode AD): push tangents along a live Trace, from JVP rules.

`forward(trace, wrt, tangents)` walks the ops recorded so far, in order, and for every
op with an input that carries a tangent calls the op's JVP rule on Tracers of the same
trace, so the tangent ops are appended to the tape (noted `t%out`) exactly like the
reverse pass appends its cotangent ops. Tracing through `forward` at an outer level
therefore gives forward-over-reverse, forward-over-forward, ... to any order.

Rule lookup, in order:
1. `JVPS_ALL[prim](gs, ans, *args, **params)`: one call with a tangent (or None) per input;
2. `JVPS[prim]`: one maker `(g, ans, *args, **params)` per input, summed;
3. elementwise primitives with a per-argument VJP rule: the same maker (an elementwise
   Jacobian is diagonal, and under autograd's complex convention `g * f'(x)` is both the
   VJP and the JVP of a holomorphic elementwise function);
4. otherwise the JVP is obtained by transposing the VJP rule, which is linear in its
   cotangent: `J v = d/du <J^T u, v>`, one extra reverse pass over the rule's own ops
   (real dtypes only). This makes `defvjp`-only user primitives work in forward mode.

Broadcasting a tangent up to the output's shape and casting it to the output's dtype
happen here and nowhere else; a rule never does it.
"""

from __future__ import annotations

import numpy as np

from ..errors import NoDerivativeError
from ..ir import Const, Var, format_op
from ..ir import prims as P
from ..rules import JVPS, VJPS, VJPS_ALL
from ..trace import Trace, Tracer
from .reverse import cast_like


def _inexact(dtype) -> bool:
    return np.dtype(dtype).kind in "fc"


def JVPS_ALL():  # noqa: N802  (the table lives with the rules)
    from ..rules.jvp import JVPS_ALL as table

    return table


def fit(trace: Trace, t, var):
    """Broadcast a tangent to `var`'s shape and cast it to `var`'s dtype."""
    if not isinstance(t, Tracer):
        a = np.asarray(t)
        t = Tracer(trace, trace.atom(a), a)
    if tuple(t.shape) != tuple(var.shape):
        t = np.broadcast_to(t, var.shape)
    return cast_like(t, var)


def forward(trace: Trace, wrt: list, tangents: list, outs: list | None = None) -> list:
    """Tangents of `outs` (atoms of `trace`) given tangents of `wrt` (Vars of `trace`), as
    Tracers of `trace`, or None where an output does not depend on `wrt`. With `outs`
    None, returns the dict var id -> tangent. Appends the tangent ops to `trace.tape`."""
    ops = list(trace.tape.ops)
    tan = {}
    for w, t in zip(wrt, tangents):
        if t is not None:
            tan[w.id] = fit(trace, t, w)
    for op in ops:
        gs = [tan.get(a.id) if isinstance(a, Var) else None for a in op.inputs]
        if all(g is None for g in gs):
            continue
        if not any(_inexact(v.dtype) for v in op.outputs):
            continue
        args = [trace.tracer(a) for a in op.inputs]
        ans = [trace.tracer(v) for v in op.outputs]
        with trace.noting("t" + ",".join(repr(v) for v in op.outputs), op.loc):
            res = _tangents(trace, op, gs, ans, args)
            if op.prim.multiple_results:
                res = tuple(res) if res is not None else (None,) * len(op.outputs)
            else:
                res = (res,)
            for v, t in zip(op.outputs, res):
                if t is not None and _inexact(v.dtype):
                    tan[v.id] = fit(trace, t, v)
    if outs is None:
        return tan
    return [tan.get(o.id) if isinstance(o, Var) else None for o in outs]


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    if op_multi(a):
        return tuple(_add(x, y) for x, y in zip(a, b))
    return a + b


def op_multi(x) -> bool:
    return isinstance(x, tuple)


def _tangents(trace, op, gs, ans, args):
    prim, params = op.prim, op.kw
    ans_ = tuple(ans) if prim.multiple_results else ans[0]
    table_all = JVPS_ALL()
    if prim in table_all:
        return table_all[prim](gs, ans_, *args, **params)
    makers = JVPS.get(prim)
    if makers is None and prim.elementwise and prim in VJPS:
        makers = VJPS[prim]
    if makers is not None:
        total = None
        for i, g in enumerate(gs):
            if g is None:
                continue
            maker = makers[i] if i < len(makers) else None
            if maker is None:
                if i < len(makers):
                    continue  # declared: no derivative through this argument
                raise _missing(op, i)
            total = _add(total, maker(g, ans_, *args, **params))
        return total
    if prim in VJPS or prim in VJPS_ALL:
        return _transpose_vjp(trace, op, gs, ans_, args, params)
    raise _missing(op, next(i for i, g in enumerate(gs) if g is not None))


def _missing(op, i):
    return NoDerivativeError(
        f"no forward (JVP) or reverse rule for primitive '{op.prim.name}' (argument {i}), "
        f"needed at {format_op(op)}" + (f" ({op.loc})" if op.loc else ""))


def _transpose_vjp(trace, op, gs, ans, args, params):
    """`J v` from the VJP rule: the gradient in u of `sum_i <vjp_i(u), v_i>`."""
    from .reverse import _cotangents, backward, unbroadcast

    outs = op.outputs
    if any(v.dtype.kind == "c" for v in outs) or any(g is not None and g.dtype.kind == "c" for g in gs):
        raise NoDerivativeError(f"'{op.prim.name}' has no JVP rule, and transposing its VJP is only "
                                "done for real dtypes; add one with tg.defjvp")
    us = []
    for v in outs:
        z = np.zeros(v.shape, v.dtype)
        var = trace._record(P.full, (), (("dtype", v.dtype), ("fill", 0), ("shape", v.shape)), [z])[0]
        us.append(Tracer(trace, var, z))
    u = tuple(us) if op.prim.multiple_results else us[0]
    todo = [i for i, g in enumerate(gs) if g is not None]
    s = None
    for i, c in _cotangents(op, todo, u, ans, args, params, trace, outs[0]):
        c = unbroadcast(trace, c, op.inputs[i])
        term = np.sum(c * gs[i])
        s = term if s is None else s + term
    if s is None or not isinstance(s, Tracer):
        return None
    res = backward(trace, s.node, [w.node for w in us])
    return tuple(res) if op.prim.multiple_results else res[0]


__all__ = ["forward", "fit", "Const"]
