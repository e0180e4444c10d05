"""The NumPy interpreter: what a tape means.

`run(tape, leaves)` evaluates ops in order on flat input values. If any input is a
Tracer (replaying inside another trace), each op goes through `bind` and is recorded
there too: replay doubles as inlining. Guards are checked as soon as their value exists.
"""

from __future__ import annotations

import numpy as np

from ..errors import GuardError
from ..ir import Const, Var, format_op
from ..ir.core import is_view
from ..trace import DEBUG_NANS, Tracer, bind, check_nans


def run(tape, leaves: list) -> list:
    env = {v.id: x for v, x in zip(tape.inputs, leaves)}
    traced = any(isinstance(x, Tracer) for x in leaves)
    guards, steps, const_outs = _plan(tape)
    # Guards hold on traced leaves too: checking one calls bool()/int() on the outer
    # tracer, which returns its concrete value and records the guard out there as well.
    if guards:  # guards on inputs (`range(n)` on a 0-d int input)
        for v, x in zip(tape.inputs, leaves):
            for g in guards.get(v.id, ()):
                if not g.holds(x):
                    raise GuardError(_failed(g))
    buffers = {}
    dbg = DEBUG_NANS[0]
    for op, impl, ins, kw, out_ids, multi, buf, free, written in steps:
        vals = [x if c else env[x] for c, x in ins]
        try:
            if traced:
                out = bind(op.prim, *vals, **kw)
            elif buf is not None:
                out = _into_buffer(op, vals, kw, buffers)
            else:
                out = impl(*vals, **kw)
        except Exception as e:
            if isinstance(e, GuardError):
                raise
            raise type(e)(f"{e}\n  while executing {format_op(op)}") from e
        if multi:
            if dbg:
                check_nans(op, vals, out)
            for vid, o in zip(out_ids, out):
                env[vid] = o
                if guards:
                    for g in guards.get(vid, ()):
                        if not g.holds(o):
                            raise GuardError(_failed(g))
        else:
            if dbg:
                check_nans(op, vals, (out,))
            vid = out_ids[0]
            env[vid] = out
            if guards:
                for g in guards.get(vid, ()):
                    if not g.holds(out):
                        raise GuardError(_failed(g))
        if not traced:  # drop dead values (and buffers) as soon as nothing reads them
            for vid in free:
                env.pop(vid, None)
            for b in written:
                buffers.pop(b, None)
    outs = [a.value if isinstance(a, Const) else env[a.id] for a in tape.outputs]
    if not traced:  # a baked constant (or a view of one) handed out is the caller's to
        for k in const_outs:  # mutate: a copy, as the compiled driver gives
            if isinstance(outs[k], np.ndarray):
                outs[k] = outs[k].copy()
    return outs


def _plan(tape):
    """-> (guards by var id, one step per op, indices of the outputs that are baked
    constants), kept on the tape while its op list, outputs and guards are the same ones
    (a reopened trace appends ops: planned again). A step holds what the loop needs of its
    op (the impl, where each input comes from, the keyword dict, output ids, the buffer,
    the ids and buffers freed after it), so a replay does no per-op look-ups beyond the
    values themselves."""
    ops, outs = tape.ops, tape.outputs
    last = ops[-1] if ops else None
    hit = tape.__dict__.get("_interp_plan")
    if hit is not None:
        h_ops, h_n, h_last, h_guards, h_outs, plan = hit
        if (h_ops is ops and h_n == len(ops) and h_last is last and h_guards == len(tape.guards)
                and len(h_outs) == len(outs) and all(a is b for a, b in zip(h_outs, outs))):
            return plan
    guards = {}
    for g in tape.guards:
        guards.setdefault(g.var.id, []).append(g)
    free_after, last_write = _lifetimes(tape)
    steps = [(op, op.prim.impl, tuple((True, a.value) if isinstance(a, Const) else (False, a.id)
                                      for a in op.inputs),
              op.kw, tuple(v.id for v in op.outputs), op.prim.multiple_results,
              op.buffers[0] if op.buffers and op.buffers[0] is not None else None,
              tuple(free_after[i]), tuple(last_write[i]))
             for i, op in enumerate(ops)]
    plan = (guards, steps, _const_outputs(tape))
    tape.__dict__["_interp_plan"] = (ops, len(ops), last, len(tape.guards), tuple(outs), plan)
    return plan


def _const_outputs(tape) -> list:
    """Indices of the outputs that are `const` ops or views of one (their arrays live on
    in the tape: returned as they are, a caller writing into one changes later results)."""
    rooted = set()
    for op in tape.ops:
        if op.prim.name == "const" or (rooted and is_view(op) and any(
                isinstance(a, Var) and a.id in rooted for a in op.inputs)):
            rooted.update(v.id for v in op.outputs)
    return [k for k, a in enumerate(tape.outputs) if isinstance(a, Var) and a.id in rooted]


def _failed(g) -> str:
    return (f"guard failed: {g.kind}(%{g.var.id}) was {g.expected!r} when traced ({g.loc}); "
            "these inputs take another path: re-trace (tg.jit does this)")


def _lifetimes(tape):
    """Per op index: the var ids read for the last time there (not outputs), and the
    buffers written for the last time there (later values keep them alive in `env`)."""
    n = len(tape.ops)
    last = {}
    for i, op in enumerate(tape.ops):
        for a in op.inputs:
            if isinstance(a, Var):
                last[a.id] = i
        for v in op.outputs:
            last.setdefault(v.id, i)
    for a in list(tape.outputs) + [g.var for g in tape.guards]:
        if isinstance(a, Var):
            last[a.id] = n
    free_after = [[] for _ in range(n)]
    for vid, i in last.items():
        if i < n:
            free_after[i].append(vid)
    last_write = [[] for _ in range(n)]
    seen = set()
    for i in range(n - 1, -1, -1):
        for b in tape.ops[i].buffers or ():
            if b is not None and b not in seen:
                seen.add(b)
                last_write[i].append(b)
    return free_after, last_write


def _into_buffer(op, vals, kw, buffers):
    """Evaluate `op` into the buffer the reuse plan gave it (ufunc `out=`), or allocate
    the buffer. The plan (checked by `passes.reuse_buffers.check_buffers`) guarantees
    nothing still needed lives there; ufuncs handle an input overlapping `out`."""
    v, b = op.outputs[0], op.buffers[0]
    buf = buffers.get(b)
    if buf is not None and isinstance(op.prim.impl, np.ufunc):
        return op.prim.impl(*vals, **kw, out=buf)
    out = op.prim.impl(*vals, **kw)
    if isinstance(out, np.ndarray) and out.shape == v.shape and out.dtype == v.dtype:
        buffers[b] = out
    return out
