"""Dead-code elimination."""

from __future__ import annotations

import networkx as nx

from ..ir import Tape
from .graph import OUT, dependency_graph


def dce(tape: Tape) -> Tape:
    """Drop ops none of whose outputs reach a tape output or a guard.

    Preserves: play(result, *args) == play(tape, *args). Impure ops (effects, random
    draws) are kept with everything they read. Kept ops are reused as they are, so a
    buffer plan or fusion groups stay valid (removing readers only shortens lifetimes).
    """
    g = dependency_graph(tape)
    roots = [OUT] + [i for i, op in enumerate(tape.ops) if not op.prim.pure]
    keep = set(roots)
    for r in roots:
        keep |= nx.ancestors(g, r)
    return tape.derive(ops=[op for i, op in enumerate(tape.ops) if i in keep])
