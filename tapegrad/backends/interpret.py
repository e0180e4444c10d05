"""The NumPy interpreter: what a tape means.

`run(tape, leaves)` evaluates ops in order on flat input values. If any input is a
Tracer (replaying inside another trace), each op goes through `bind` and is recorded
there too: replay doubles as inlining. Guards are checked as soon as their value exists.
"""

from __future__ import annotations

import numpy as np

from ..errors import GuardError
from ..ir import Const, format_op
from ..trace import DEBUG_NANS, Tracer, bind, check_nans


def run(tape, leaves: list) -> list:
    env = {v.id: x for v, x in zip(tape.inputs, leaves)}
    traced = any(isinstance(x, Tracer) for x in leaves)
    guards = {}
    for g in tape.guards:
        guards.setdefault(g.var.id, []).append(g)
    if guards and not traced:  # guards on inputs (`range(n)` on a 0-d int input)
        for v, x in zip(tape.inputs, leaves):
            for g in guards.get(v.id, ()):
                if not g.holds(x):
                    raise GuardError(_failed(g))
    buffers = {}
    for op in tape.ops:
        vals = [a.value if isinstance(a, Const) else env[a.id] for a in op.inputs]
        kw = op.kw
        try:
            if traced:
                out = bind(op.prim, *vals, **kw)
            elif op.buffers and op.buffers[0] is not None and op.prim.elementwise and \
                    isinstance(op.prim.impl, np.ufunc):
                out = _into_buffer(op, vals, buffers)
            else:
                out = op.prim.impl(*vals, **kw)
        except Exception as e:
            if isinstance(e, GuardError):
                raise
            raise type(e)(f"{e}\n  while executing {format_op(op)}") from e
        outs = out if op.prim.multiple_results else (out,)
        if DEBUG_NANS[0]:
            check_nans(op, vals, outs)
        for v, o in zip(op.outputs, outs):
            env[v.id] = o
            for g in guards.get(v.id, ()):
                if not traced and not g.holds(o):
                    raise GuardError(_failed(g))
    return [a.value if isinstance(a, Const) else env[a.id] for a in tape.outputs]


def _failed(g) -> str:
    return (f"guard failed: {g.kind}(%{g.var.id}) was {g.expected!r} when traced ({g.loc}); "
            "these inputs take another path: re-trace (tg.jit does this)")


def _into_buffer(op, vals, buffers):
    """Evaluate an elementwise ufunc op into the buffer the reuse plan gave it."""
    v = op.outputs[0]
    b = op.buffers[0]
    buf = buffers.get(b)
    if buf is None or buf.shape != v.shape or buf.dtype != v.dtype:
        buf = np.empty(v.shape, v.dtype)
    else:
        for x in vals:
            if isinstance(x, np.ndarray) and np.may_share_memory(x, buf) and x is not buf:
                buf = np.empty(v.shape, v.dtype)
                break
    op.prim.impl(*vals, out=buf)
    buffers[b] = buf
    return buf
