"""Dead-code elimination."""

from __future__ import annotations

from ..ir import Tape, Var


def dce(tape: Tape) -> Tape:
    """Drop ops none of whose outputs reach a tape output or a guard.

    Preserves: play(result, *args) == play(tape, *args); impure ops are kept.
    """
    live = {a.id for a in tape.outputs if isinstance(a, Var)}
    live |= {g.var.id for g in tape.guards}
    kept = []
    for op in reversed(tape.ops):
        if op.prim.pure and not any(v.id in live for v in op.outputs):
            continue
        kept.append(op)
        live.update(a.id for a in op.inputs if isinstance(a, Var))
    kept.reverse()
    return tape.derive(ops=kept)
