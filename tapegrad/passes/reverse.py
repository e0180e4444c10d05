"""The reverse pass: append backward ops to a tape, from the rule table.

`backward` walks the ops of a live Trace in reverse and calls each VJP rule on Tracers
of that same trace, so the rules' NumPy calls are recorded as new ops of the tape
(noted `d%out/d%in`). Symbolic zeros (None) skip dead branches; unbroadcasting,
accumulation of cotangents for values used many times, and dtype casts happen here
and nowhere else. Because the rules are traced like user code, tracing through
`backward` at an outer level gives second and higher derivatives.
"""

from __future__ import annotations

import numpy as np

from ..errors import NoDerivativeError
from ..ir import Const, Var, format_op
from ..rules import VJPS, VJPS_ALL
from ..trace import Trace, Tracer, bind
from ..trace import concrete as _concrete
from ..ir import prims as P


def _inexact(dtype) -> bool:
    return np.dtype(dtype).kind in "fc"


def active_vars(ops, wrt_ids) -> set:
    """Ids of vars that depend on any of `wrt_ids` through inexact values."""
    active = set(wrt_ids)
    for op in ops:
        if any(isinstance(a, Var) and a.id in active for a in op.inputs):
            for v in op.outputs:
                if _inexact(v.dtype):
                    active.add(v.id)
    return active


def unbroadcast(trace: Trace, c, var):
    """Sum a cotangent back to `var`'s shape and cast it to `var`'s dtype."""
    shape = var.shape
    if not isinstance(c, Tracer):
        c = Tracer(trace, trace.atom(np.asarray(c)), np.asarray(c))
    cshape = c.shape
    if len(cshape) < len(shape):  # a rule may return a cotangent that broadcasts up
        c = np.broadcast_to(c, np.broadcast_shapes(tuple(cshape), tuple(shape)))
        cshape = c.shape
    if tuple(cshape) != tuple(shape):
        lead = len(cshape) - len(shape)
        axes = tuple(range(lead)) + tuple(
            i + lead for i, s in enumerate(shape) if s == 1 and cshape[i + lead] != 1)
        if axes:
            c = np.sum(c, axis=axes, keepdims=False)
        if tuple(c.shape) != tuple(shape):
            c = np.reshape(c, shape)
    if c.dtype != var.dtype:
        if c.dtype.kind == "c" and var.dtype.kind != "c":
            c = np.real(c)
        if c.dtype != var.dtype:
            c = c.astype(var.dtype)
    return c


def backward(trace: Trace, out, wrt: list, seed=None, state: dict | None = None) -> list:
    """Cotangents of `wrt` (Vars of `trace`) for output `out` (a Var or Const), as Tracers
    of `trace` or None where the output does not depend on them. Appends the backward
    ops to `trace.tape`.

    `state` (a dict kept by the caller) lets successive calls for the same `out` and
    seed share work: a var's cotangent d out/d var does not depend on `wrt`, so a var
    made active by an earlier call already has its final cotangent, and a later call
    only adds what flows into the vars new to it (`g[1]` after `g[0]` in the Yota form)."""
    if state is not None:
        ops = state.setdefault("ops", list(trace.tape.ops))
    else:
        ops = list(trace.tape.ops)
    wrt_ids = [w.id for w in wrt]
    wrt_set = set(wrt_ids)
    active = active_vars(ops, wrt_ids)
    if not isinstance(out, Var) or out.id not in active:
        return [None] * len(wrt)
    if seed is None:
        seed = Tracer(trace, Const(out.dtype.type(1)), out.dtype.type(1))
    if state is None:
        ct, done, take = {out.id: seed}, (), dict.pop
    else:
        ct = state.setdefault("ct", {out.id: seed})
        done = state.setdefault("done", set())
        # cotangents stay for a later call, unless the caller says this is the last one
        take = dict.get if state.get("keep", True) else dict.pop
    saved = trace.note, trace.loc
    try:  # notes and lines are set directly: a context manager per rule costs microseconds
        for op in reversed(ops):
            # a wrt var made by an op keeps its cotangent: differentiated as if independent
            gs = [None if v.id in wrt_set else take(ct, v.id, None) for v in op.outputs]
            if all(g is None for g in gs):
                continue
            todo = [i for i, a in enumerate(op.inputs)
                    if isinstance(a, Var) and a.id in active and a.id not in done]
            if not todo:
                continue
            trace.loc = op.loc
            args = [trace.tracer(a) for a in op.inputs]
            ans = [trace.tracer(v) for v in op.outputs]
            if op.prim.multiple_results:
                g = tuple(g if g is not None else zeros_like_var(trace, v)
                          for g, v in zip(gs, op.outputs))
                ans = tuple(ans)
            else:
                g, ans = gs[0], ans[0]
            params = op.kw
            for i, c in _cotangents(op, todo, g, ans, args, params, trace, out):
                a = op.inputs[i]
                trace.note = f"d%{out.id}/d%{a.id}"
                c = unbroadcast(trace, c, a)
                prev = ct.get(a.id)
                ct[a.id] = c if prev is None else prev + c
    finally:
        trace.note, trace.loc = saved
    if state is not None:
        done |= active
    return [ct.get(i) for i in wrt_ids]


def _cotangents(op, todo, g, ans, args, params, trace, out):
    prim = op.prim
    if prim in VJPS_ALL:
        trace.note = f"d%{out.id}/d({', '.join(repr(op.inputs[i]) for i in todo)})"
        cs = VJPS_ALL[prim](g, ans, *args, **params)
        for i in todo:
            if cs[i] is not None:
                yield i, cs[i]
        return
    makers = VJPS.get(prim)
    for i in todo:
        maker = makers[i] if makers is not None and i < len(makers) else None
        if maker is None:
            if makers is not None and i < len(makers):
                continue  # declared: no gradient through this argument
            raise NoDerivativeError(
                f"no derivative rule for primitive '{prim.name}' (argument {i}), needed at "
                f"{format_op(op)}" + (f" ({op.loc})" if op.loc else ""))
        trace.note = f"d%{out.id}/d{op.inputs[i]!r}"
        c = maker(g, ans, *args, **params)
        if c is not None:
            yield i, c


def zeros_like_var(trace: Trace, var) -> Tracer:
    """An explicit zero gradient, recorded as a `full` op."""
    out = np.full(var.shape, 0, dtype=var.dtype)
    v = trace._record(P.full, (), (("dtype", var.dtype), ("fill", 0), ("shape", var.shape)), [out])[0]
    return Tracer(trace, v, out)


def owned(trace: Trace, cts: list, inputs: list) -> list:
    """Gradients as users get them: fresh, writable arrays. A cotangent that is an input
    (d/dx of x*y is y itself), a read-only broadcast, or shared with another gradient
    gets an explicit `copy` op: `tg.update` writes leaves in place, and an aliased
    gradient would then change under it."""
    arrays = [a for a in (_concrete(x) for x in inputs) if isinstance(a, np.ndarray)]
    out = []
    for c in cts:
        v = _concrete(c.value) if c is not None else None
        if isinstance(v, np.ndarray) and (not v.flags.writeable or any(
                np.may_share_memory(v, a) for a in arrays)):
            saved = trace.note
            trace.note = "a fresh array for the caller"
            try:
                c = bind(P.copy, c)
            finally:
                trace.note = saved
            v = _concrete(c.value)
        if isinstance(v, np.ndarray):
            arrays.append(v)
        out.append(c)
    return out
