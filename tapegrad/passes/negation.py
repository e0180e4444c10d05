"""Negation sinking: drop a `negative` op by carrying the sign into the ops that read it.

`v = negative(a)` disappears when every reader can take `a` instead: `x + v -> x - a`,
`x - v -> x + a`, `v - w -> w' - a'` (both negated), `negative(v) -> a`, `v * w'` with
both negated. A reader that cannot absorb the sign but commutes with it exactly
(`multiply`/`divide` by a non-negated value, `sum`, `reshape`, `transpose`,
`broadcast_to`) computes the negated result instead, and its own readers are handled the
same way. If any value in that set is a tape output, guarded, or read by another op,
nothing changes.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..ir import Tape, Var
from ..ir import prims as P

JOIN = ("sum", "reshape", "transpose", "broadcast_to")


def _plan(tape: Tape, start: int):
    """-> (negated var ids, per op index: 'absorb' | 'join') or None."""
    n = tape.ops[start]
    if n.out.dtype.kind not in "fc":
        return None
    neg = {n.out.id}
    action = {}
    for i in range(start + 1, len(tape.ops)):
        op = tape.ops[i]
        hit = [isinstance(a, Var) and a.id in neg for a in op.inputs]
        if not any(hit):
            continue
        name = op.prim.name
        if name == "negative":
            action[i] = "absorb"
        elif name == "add" and sum(hit) == 1:
            action[i] = "absorb"
        elif name == "subtract" and hit[1]:
            action[i] = "absorb"
        elif name in ("multiply", "divide") and len(hit) == 2:
            action[i] = "absorb" if all(hit) else "join"
        elif name in JOIN and op.inputs[0].dtype == op.out.dtype:
            action[i] = "join"
        else:
            return None  # add of two negated values, a - v, or an op we know nothing of
        if action[i] == "join":
            neg.add(op.out.id)
    sinks = [a for a in tape.outputs if isinstance(a, Var)] + [g.var for g in tape.guards]
    if any(a.id in neg for a in sinks):
        return None
    return neg, action


def _rewrite(tape: Tape, start: int, neg: set, action: dict) -> Tape:
    t = tape.derive(ops=[])
    pos = {tape.ops[start].out.id: tape.ops[start].inputs[0]}  # negated var -> its negation
    env = {}
    for i, op in enumerate(tape.ops):
        if i == start:
            continue
        ins = [env.get(a.id, a) if isinstance(a, Var) else a for a in op.inputs]
        if i not in action:
            t.ops.append(op.replace(inputs=tuple(ins)) if ins != list(op.inputs) else op)
            continue
        hit = [isinstance(a, Var) and a.id in neg for a in op.inputs]
        p = [pos[a.id] if h else x for a, x, h in zip(op.inputs, ins, hit)]
        name = op.prim.name
        if name == "negative":
            env[op.out.id] = p[0]
            continue
        prim, args = op.prim, p
        if name == "add":
            x, a = (p[1], p[0]) if hit[0] else (p[0], p[1])
            prim, args = P.ufunc_prim(np.subtract), [x, a]
        elif name == "subtract":
            if hit[0]:
                args = [p[1], p[0]]  # (-a) - (-w) = w - a
            else:
                prim = P.ufunc_prim(np.add)  # x - (-a) = x + a
        outs = op.outputs
        if action[i] == "join":
            outs = (t.new_var(op.out.dtype, op.out.shape),)
            pos[op.out.id] = outs[0]
        t.ops.append(op.replace(prim=prim, inputs=tuple(args), outputs=outs, buffers=None,
                                group=None))
    t.outputs = [env.get(a.id, a) if isinstance(a, Var) else a for a in tape.outputs]
    t.guards = [replace(g, var=env.get(g.var.id, g.var)) for g in tape.guards]
    return t


def sink_negation(tape: Tape) -> Tape:
    """Remove `negative` ops whose sign every reader can absorb (see the module doc).

    Preserves: play(result, *args) == play(tape, *args) exactly up to the sign of an exact
    zero out of `sum` (sum(-u) and -sum(u) differ only there), dtypes and shapes; NaN and
    inf propagate as before. Never touches outputs or guarded values.
    """
    i = 0
    while i < len(tape.ops):
        op = tape.ops[i]
        if op.prim.name == "negative" and isinstance(op.inputs[0], Var):
            plan = _plan(tape, i)
            if plan is not None:
                tape = _rewrite(tape, i, *plan)
                continue
        i += 1
    return tape
