"""Outputs handed to callers own their memory."""

from __future__ import annotations

from ..ir import Op, Tape, Var, is_view
from ..ir import prims as P


def own_outputs(tape: Tape) -> Tape:
    """Give an output a `copy` op when its memory would be a tape input, a constant, a
    read-only broadcast, or shared with another output: passes may turn a computed
    gradient into a view (a broadcast of column sums), and callers write gradients in
    place (`tg.update`, `g -= ...`).

    Preserves: play(result, *args) == play(tape, *args), values and dtypes; only the
    outputs' memory changes (fresh, writable, unaliased)."""
    producer = {v.id: op for op in tape.ops for v in op.outputs}
    inputs = {v.id for v in tape.inputs}

    def root(var):
        """(the var whose memory `var` views, whether the chain passes a broadcast)."""
        readonly = False
        while True:
            op = producer.get(var.id)
            if op is None or not is_view(op) or not isinstance(op.inputs[0], Var):
                return var, readonly, op
            readonly = readonly or op.prim.name == "broadcast_to"  # NumPy makes it read-only
            var = op.inputs[0]

    seen, new_ops, outputs = set(), [], []
    t = tape.derive()
    for a in tape.outputs:
        if not isinstance(a, Var):
            outputs.append(a)
            continue
        r, readonly, op = root(a)
        shared = r.id in seen or r.id in inputs or (op is not None and op.prim.name in ("const", "full"))
        if readonly or shared:
            out = t.new_var(a.dtype, a.shape)
            new_ops.append(Op(P.copy, (a,), (out,), note="a fresh array for the caller"))
            a = out
        seen.add(r.id)
        outputs.append(a)
    if not new_ops:
        return tape
    return t.derive(ops=list(tape.ops) + new_ops, outputs=outputs)
