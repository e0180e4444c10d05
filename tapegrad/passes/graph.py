"""Dependency analysis of a tape, on a networkx graph built from it.

The IR stays a plain list of ops; these helpers build a `networkx.DiGraph` whose nodes
are op indices (edge i -> j: op j reads a value op i defines) and answer the questions
passes ask: who defines and who reads each var, which ops reach an output, a valid
order, and when each value is last read.
"""

from __future__ import annotations

import networkx as nx

from ..ir import Tape, Var

OUT = -1  # the pseudo-node standing for the tape's outputs and guards


def def_use(tape: Tape) -> tuple[dict, dict]:
    """-> (defs: var id -> op index, uses: var id -> sorted op indices reading it)."""
    defs, uses = {}, {}
    for i, op in enumerate(tape.ops):
        for a in op.inputs:
            if isinstance(a, Var):
                uses.setdefault(a.id, []).append(i)
        for v in op.outputs:
            defs[v.id] = i
    return defs, uses


def dependency_graph(tape: Tape) -> nx.DiGraph:
    """Ops as nodes 0..n-1, plus `OUT` fed by the ops defining outputs and guarded vars."""
    defs, _ = def_use(tape)
    g = nx.DiGraph()
    g.add_nodes_from(range(len(tape.ops)))
    g.add_node(OUT)
    for i, op in enumerate(tape.ops):
        for a in op.inputs:
            if isinstance(a, Var) and a.id in defs:
                g.add_edge(defs[a.id], i)
    sinks = [a for a in tape.outputs if isinstance(a, Var)] + [gd.var for gd in tape.guards]
    for a in sinks:
        if a.id in defs:
            g.add_edge(defs[a.id], OUT)
    return g


def reaching_outputs(tape: Tape) -> set:
    """Indices of the ops some tape output or guard depends on."""
    return nx.ancestors(dependency_graph(tape), OUT)


def topological_order(g: nx.DiGraph, key) -> list:
    """A topological order of `g`, breaking ties by `key(node)` (keeps the tape order)."""
    return list(nx.lexicographical_topological_sort(g, key=key))


def last_uses(tape: Tape) -> dict:
    """var id -> index of the last op reading it; `len(tape.ops)` for outputs and guards
    (alive to the end); the defining op's own index for values never read."""
    n = len(tape.ops)
    defs, uses = def_use(tape)
    last = {vid: i for vid, i in defs.items()}
    for vid, idx in uses.items():
        last[vid] = max(last.get(vid, -1), idx[-1])
    for a in list(tape.outputs) + [gd.var for gd in tape.guards]:
        if isinstance(a, Var):
            last[a.id] = n
    return last
