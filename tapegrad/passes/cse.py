"""Common-subexpression elimination."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..ir import Const, Tape, Var


def atom_key(a):
    """A hashable key equal for atoms that always hold the same value.

    Consts compare by type and exact bits (`repr`), so 0.0 and -0.0, or 1 and 1.0 (weak
    int vs weak float), never merge."""
    if isinstance(a, Var):
        return a.id
    v = a.value
    return ("c", type(v).__name__, repr(v), str(np.asarray(v).dtype))


def cse(tape: Tape) -> Tape:
    """Merge ops that have the same primitive, params and inputs (in any order for a
    commutative primitive) into the first of them.

    Preserves: play(result, *args) == play(tape, *args) for all inputs. Never merges
    impure ops (random draws, captures). Buffer plans and fusion groups are dropped
    (merging lengthens lifetimes); run `fuse` / `reuse_buffers` after.
    """
    env = {}  # old var id -> atom that replaces it
    seen = {}
    ops = []
    for op in tape.ops:
        inputs = tuple(env.get(a.id, a) if isinstance(a, Var) else a for a in op.inputs)
        key = None
        if op.prim.pure:
            keys = [atom_key(a) for a in inputs]
            if op.prim.commutative and len(keys) == 2:
                keys.sort(key=repr)
            try:
                key = (op.prim, tuple(keys), op.params,
                       tuple((v.dtype, v.shape) for v in op.outputs))
                hash(key)
            except TypeError:  # an unhashable param: leave the op alone
                key = None
            if key is not None and key in seen:
                for old, new in zip(op.outputs, seen[key].outputs):
                    env[old.id] = new
                continue
        if inputs != op.inputs or op.buffers is not None or op.group is not None:
            op = op.replace(inputs=inputs, buffers=None, group=None)
        if key is not None:
            seen[key] = op
        ops.append(op)
    outputs = [env.get(a.id, a) if isinstance(a, Var) else a for a in tape.outputs]
    guards = [replace(g, var=env.get(g.var.id, g.var)) for g in tape.guards]
    return tape.derive(ops=ops, outputs=outputs, guards=guards)
