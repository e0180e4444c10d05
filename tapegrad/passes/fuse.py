"""Fusion groups: elementwise regions a backend can emit as one loop.

A group is a set of elementwise ops (`prim.elementwise`) that all produce the same
loop shape, connected through their values, optionally closed by one trailing
reduction (`sum`, `max`, `min`, `prod`) over all axes or the last axes of a member's
value. Groups are convex: no op outside a group both depends on a member and feeds a
member, so each group can run as one unit. The pass records `Op.group` (printed `[g3]`)
and reorders the tape so every group's members are contiguous; it computes nothing.
"""

from __future__ import annotations

import networkx as nx

from ..ir import Tape, Var
from .graph import topological_order

REDUCTIONS = ("sum", "max", "min", "prod")


def _trailing(op, ndim) -> bool:
    axis = op.kw.get("axis")
    if axis is None:
        return True
    axes = sorted(a % ndim for a in ((axis,) if isinstance(axis, int) else axis))
    return axes == list(range(ndim - len(axes), ndim))


def _joinable(op) -> bool:
    return (op.prim.elementwise and op.prim.pure and not op.prim.multiple_results
            and len(op.outputs) == 1 and op.out.shape != ())


def fuse(tape: Tape) -> Tape:
    """Mark maximal convex groups of same-shape elementwise ops (plus a trailing
    reduction) with `Op.group`, and make each group contiguous in the op list.

    Groups grow from consumers to producers (the tape is walked backwards): an op joins
    the group of the first op reading it, as in XLA's producer-consumer fusion. On a
    gradient tape that keeps backward work next to where it is used: `(1 - h*h) * dh`
    is one group after `dh`, instead of `1 - h*h` joining the forward `tanh(h)` group
    and holding an extra array through the whole backward pass.

    Preserves: play(result, *args) == play(tape, *args) (ops are only reordered, in a
    topological order). Groups have at least two ops. A buffer plan is dropped (the
    order changed); run `reuse_buffers` after.
    """
    ops = tape.ops
    defs = {v.id: i for i, op in enumerate(ops) for v in op.outputs}
    readers = {}  # op index -> indices of the ops reading one of its values, in order
    for i, op in enumerate(ops):
        for a in op.inputs:
            if isinstance(a, Var) and a.id in defs:
                readers.setdefault(defs[a.id], []).append(i)
    group = {}  # op index -> group id
    shape, tail, members = {}, set(), {}
    dag = nx.DiGraph()  # the ops after the current one, each group contracted to one node

    def node(i):
        return ("g", group[i]) if i in group else ("op", i)

    for i in range(len(ops) - 1, -1, -1):
        op = ops[i]
        outs = list(dict.fromkeys(readers.get(i, ())))
        cands = []
        if _joinable(op):
            cands = [group[j] for j in outs if j in group]
            cands = [g for g in dict.fromkeys(cands) if shape[g] == op.out.shape]
        for g in cands:
            # convex: no reader outside the group may lead back into it
            outside = {node(j) for j in outs} - {("g", g)}
            if not any(nx.has_path(dag, n, ("g", g)) for n in outside):
                group[i] = g
                members[g].append(i)
                break
        else:
            ins = [a for a in op.inputs if isinstance(a, Var)]
            if _joinable(op):
                g = len(shape) + 1
                group[i], shape[g], members[g] = g, op.out.shape, [i]
            elif op.prim.name in REDUCTIONS and len(ins) == 1 and ins[0].shape \
                    and _trailing(op, len(ins[0].shape)):
                g = len(shape) + 1  # a reduction closes the group its producers join
                group[i], shape[g], members[g] = g, ins[0].shape, [i]
                tail.add(g)
        dag.add_node(node(i))
        for j in outs:
            if node(j) != node(i):
                dag.add_edge(node(i), node(j))
    for g in members:
        members[g].sort()
    keep = {g for g, m in members.items() if len(m) > 1}
    number = {g: k for k, g in enumerate(sorted(keep, key=lambda g: members[g][0]), 1)}

    first = {}
    final = nx.DiGraph()

    def final_node(i):
        return ("g", group[i]) if group.get(i) in keep else ("op", i)

    for i, op in enumerate(ops):
        n = final_node(i)
        first.setdefault(n, i)
        final.add_node(n)
        for a in op.inputs:
            if isinstance(a, Var) and a.id in defs and final_node(defs[a.id]) != n:
                final.add_edge(final_node(defs[a.id]), n)
    order = topological_order(final, key=lambda n: first[n])
    new_ops = []
    for n in order:
        idx = [n[1]] if n[0] == "op" else members[n[1]]
        for i in idx:
            op = ops[i]
            g = number.get(group.get(i))
            if op.group != g or op.buffers is not None:
                op = op.replace(group=g, buffers=None)
            new_ops.append(op)
    return tape.derive(ops=new_ops)
