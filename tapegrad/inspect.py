"""Node-by-node inspection of a gradient tape (AutoGrad.jl's `[J]` view of a `Tape`).

`inspect(g)` takes the `GradResult` of `val, g = tg.grad(f, *args)` and lists, for every
input leaf and every forward op, its value, its gradient (d output / d node) and its
parents; `inspect(f, *args)` does the `tg.grad` call itself and `inspect(tape, *args)`
reads a gradient tape you already have (`g.tape`, `tg.trace` + ...).

Values come from replaying the tape with the NumPy interpreter
(`backends.interpret.run`, every var kept as an output, buffer reuse switched off). A
node's gradient is read off the backward ops, which the reverse pass notes
`d%out/d%in`: the last op noted for `%in` holds its accumulated cotangent; a node with
no such op received its cotangent unchanged from its only differentiated reader (`add`,
a no-op cast), so it shares that reader's gradient. For a `GradResult` the tape read is
the reverse pass as written, before the optimisation passes (which merge and reorder
backward ops); a bare optimised tape gives the same answers except where a pass
removed the op that held a node's cotangent (then the gradient shows as `?`).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

import numpy as np

from .ir import Const, Tape, Var

_NOTE = re.compile(r"d%(\d+)/d\(?%(\d+)\)?$")  # d%out/d%in, or d%out/d(%in) from a joint rule


@dataclass
class Node:
    """One line of the view: an input leaf or the output of a forward op."""

    id: int                  # var id: `%id` in `print(tape)`
    op: str                  # primitive name, or "input"
    value: object
    grad: object             # d output / d this node; None: no path to the output
    parents: tuple = ()      # var ids read by the op (constants are left out)
    label: str = ""          # params and constants of the op, or the input's field path
    loc: str = ""            # the source line that recorded it
    grad_known: bool = True  # False when an optimised tape lost the cotangent op

    @property
    def var(self) -> str:
        return f"%{self.id}"


@dataclass
class Inspection:
    """The result of `tg.inspect`: `nodes` (inputs, then forward ops in tape order);
    `ins[i]` is the node of var `%i`; `str(ins)` is the table."""

    nodes: list
    output: int
    n_backward: int
    name: str = "f"

    def __getitem__(self, vid: int) -> Node:
        for n in self.nodes:
            if n.id == vid:
                return n
        raise KeyError(f"no forward node %{vid}")

    def __iter__(self):
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __str__(self) -> str:
        return format_inspection(self)

    __repr__ = __str__


def summary(x, width: int = 48) -> str:
    """A short description of a value: the number, the few elements, or dtype[shape] and range."""
    if x is None:
        return "-"
    if isinstance(x, (float, int, complex, np.generic)) or np.ndim(x) == 0:
        return f"{np.asarray(x).item():.5g}"
    a = np.asarray(x)
    kind = f"{a.dtype}[{','.join(map(str, a.shape))}]"
    if a.size <= 4:
        return kind + " [" + ", ".join(f"{v:.4g}" for v in a.ravel().tolist()) + "]"
    if a.dtype.kind in "fiu":
        s = f"{kind} {a.min():.3g}..{a.max():.3g} mean {a.mean():.3g}"
    else:
        s = kind
    return s if len(s) <= width else s[: width - 1] + "~"


def _cotangent_vars(tape: Tape, out_id: int, forward: list, active: set) -> dict:
    """Forward var id -> Var holding its cotangent (missing: none found)."""
    last = {}
    for op in tape.ops:
        m = _NOTE.match(op.note)
        if m and int(m.group(1)) == out_id:
            last[int(m.group(2))] = op.outputs[0]
    ct = {out_id: Const(1.0)}
    for op in reversed(forward):
        for a in op.inputs:
            if not isinstance(a, Var) or a.id in ct or a.id not in active:
                continue
            if a.id in last:
                ct[a.id] = last[a.id]
            else:  # passed through unchanged from its only differentiated reader
                readers = [r for r in forward if any(isinstance(b, Var) and b.id == a.id
                                                     for b in r.inputs)
                           and r.outputs[0].id in ct]
                if len(readers) == 1:
                    ct[a.id] = ct[readers[0].outputs[0].id]
    return ct


def inspect(g, *args, file=sys.stdout, **kwargs) -> Inspection:
    """Value, gradient and parents of every node of a gradient tape.

    `g`: a `GradResult` (from `val, g = tg.grad(f, *args)`), a function (then `args` are
    its arguments and `tg.grad` is called), or a gradient `Tape` with its `args`.
    Prints the table to `file` (`file=None` only returns it) and returns an `Inspection`.
    """
    from .api import GradResult, flat_inputs
    from .api import grad as _grad
    from .backends.interpret import run
    from .passes.reverse import active_vars
    from .tree import flatten

    name = getattr(g, "__name__", "f")
    if not isinstance(g, (GradResult, Tape)):
        _, g = _grad(g, *args, **kwargs)
    if isinstance(g, GradResult):
        lazy = g._lazy
        if lazy is not None:
            tape, _, _ = lazy.full_tape()  # the reverse pass as written, before optimisation
            args, name = args or lazy.args, lazy.name
        else:
            tape = g.tape
        if not args:
            raise TypeError("tg.inspect(g, *args): this GradResult keeps no arguments "
                            "(dynamic/compiled grad); pass the arguments it was called with")
    else:
        tape = g
        name = tape.meta.get("name", "f")
    leaves = flat_inputs(tape, args)
    paths = [(i, p) for i, a in enumerate(args) for p in flatten(a)[0]]

    every = [v for op in tape.ops for v in op.outputs]
    plain = tape.derive(ops=[op.replace(buffers=None) for op in tape.ops],
                        outputs=list(tape.inputs) + every)
    values = dict(zip([v.id for v in tape.inputs] + [v.id for v in every], run(plain, leaves)))

    out = tape.outputs[0]
    out_id = out.id if isinstance(out, Var) else -1
    # forward: everything but this output's reverse pass (an inner grad's backward ops,
    # noted d%inner/..., are part of the function being differentiated)
    forward = [op for op in tape.ops if not op.note.startswith(f"d%{out_id}/")]
    active = active_vars(forward, [v.id for v in tape.inputs if np.dtype(v.dtype).kind in "fc"])
    ct = _cotangent_vars(tape, out_id, forward, active)
    reached = _reaching(forward, out_id)

    def grad_of(vid, dtype):
        c = ct.get(vid)
        if c is None:
            return None, vid not in reached or vid not in active
        v = c.value if isinstance(c, Const) else values[c.id]
        return v, True

    nodes = []
    for v, (i, p) in zip(tape.inputs, paths):
        gv, known = grad_of(v.id, v.dtype)
        label = f"arg {i}" + ("".join(f".{k}" if isinstance(k, str) else f"[{k}]" for k in p))
        nodes.append(Node(v.id, "input", values[v.id], gv, (), label, "", known))
    for op in forward:
        params = [f"{k}={v}" for k, v in op.params
                  if k != "value" and v is not None and v is not False]
        consts = [repr(a) for a in op.inputs if isinstance(a, Const)]
        for v in op.outputs:
            gv, known = grad_of(v.id, v.dtype)
            nodes.append(Node(v.id, op.prim.name, values[v.id], gv,
                              tuple(a.id for a in op.inputs if isinstance(a, Var)),
                              ", ".join(consts + params), op.loc, known))
    result = Inspection(nodes, out_id, len(tape.ops) - len(forward), name)
    if file is not None:
        print(result, file=file)
    return result


def _reaching(forward: list, out_id: int) -> set:
    """Ids of forward vars the output depends on."""
    need = {out_id}
    for op in reversed(forward):
        if any(v.id in need for v in op.outputs):
            need.update(a.id for a in op.inputs if isinstance(a, Var))
    return need


def format_inspection(ins: Inspection) -> str:
    head = (f"tapegrad inspect: {ins.name}, {sum(n.op != 'input' for n in ins.nodes)} forward "
            f"ops, {ins.n_backward} backward ops; gradient = d%{ins.output}/d(node)")
    rows = [("node", "op", "value", "gradient", "parents", "")]
    for n in ins.nodes:
        g = summary(n.grad) if n.grad_known else "?"
        op = n.op + (f"({n.label})" if n.label and n.op != "input" else "")
        extra = n.label if n.op == "input" else n.loc
        rows.append((n.var, op if len(op) <= 32 else op[:31] + "~", summary(n.value), g,
                     " ".join(f"%{p}" for p in n.parents), extra))
    widths = [max(len(r[k]) for r in rows) for k in range(5)]
    lines = [head]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[5])
    return "\n".join(line.rstrip() for line in lines)
