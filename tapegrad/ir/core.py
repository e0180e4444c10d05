"""The typed Tape IR: Var, Const, Op, Guard and Tape, its printer and its checker.

A Tape is a plain list of Ops in SSA form. Every Var carries a dtype and a shape and
keeps the number it was created with; passes build new tapes and never renumber.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, init=False, slots=True)
class Var:
    """An SSA value: defined once, by a tape input or by one op."""

    id: int
    dtype: np.dtype
    shape: tuple

    def __init__(self, id: int, dtype: np.dtype, shape: tuple):
        # frozen: fields are written once, through the slots' own setters (the generated
        # __init__ goes through object.__setattr__ per field; tracing makes a Var per op)
        _VAR_ID(self, id)
        _VAR_DTYPE(self, dtype)
        _VAR_SHAPE(self, shape)

    def __eq__(self, other):
        # what the generated __eq__ compares, with the common cases (the same object, or
        # another var) first: tracing compares vars often (`var in op.outputs`)
        if self is other:
            return True
        if other.__class__ is not Var:
            return NotImplemented
        return self.id == other.id and self.shape == other.shape and self.dtype == other.dtype

    def __repr__(self) -> str:
        return f"%{self.id}"

    @property
    def type_str(self) -> str:
        return f"{self.dtype}[{','.join(map(str, self.shape))}]"

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


@dataclass(frozen=True, init=False, slots=True)
class Const:
    """A scalar literal written inline in an op (`mul(%4, 2.0)`).

    `value` keeps its Python or NumPy type, so NumPy's promotion rules (weak Python
    scalars) replay exactly as they ran while tracing.
    """

    value: Any

    def __init__(self, value: Any):
        _CONST_VALUE(self, value)  # frozen: written once (see Var.__init__)

    def __repr__(self) -> str:
        v = self.value
        return repr(v.item() if isinstance(v, np.generic) else v)

    @property
    def dtype(self) -> np.dtype:
        return np.asarray(self.value).dtype

    @property
    def shape(self) -> tuple:
        return ()

    def __eq__(self, other):
        return (
            isinstance(other, Const)
            and type(self.value) is type(other.value)
            and (self.value == other.value or (self.value != self.value and other.value != other.value))
        )

    def __hash__(self):
        return hash((type(self.value), self.value if self.value == self.value else "nan"))


_VAR_ID, _VAR_DTYPE, _VAR_SHAPE = (Var.__dict__[f].__set__ for f in ("id", "dtype", "shape"))
_CONST_VALUE = Const.__dict__["value"].__set__

Atom = "Var | Const"


@dataclass(frozen=True, eq=False, init=False, slots=True)
class Op:
    """One primitive call: `outputs = prim(*inputs, **params)`.

    `prim` is a `Primitive` (see `ir.prims`). `params` is a tuple of (name, value) pairs
    with hashable values. `loc` is the user's source line; `note` says what a
    reverse-pass op computes (`d%5/d%3`). `buffer` (set by the buffer-reuse pass) names
    the storage each output is written into, `group` the fusion group.
    """

    prim: Any
    inputs: tuple
    outputs: tuple
    params: tuple = ()
    loc: str = ""
    note: str = ""
    buffers: tuple | None = None
    group: int | None = None

    def __init__(self, prim, inputs: tuple, outputs: tuple, params: tuple = (), loc: str = "",
                 note: str = "", buffers: tuple | None = None, group: int | None = None):
        # frozen: written once (see Var.__init__)
        _OP_PRIM(self, prim)
        _OP_INPUTS(self, inputs)
        _OP_OUTPUTS(self, outputs)
        _OP_PARAMS(self, params)
        _OP_LOC(self, loc)
        _OP_NOTE(self, note)
        _OP_BUFFERS(self, buffers)
        _OP_GROUP(self, group)

    @property
    def out(self) -> Var:
        return self.outputs[0]

    @property
    def kw(self) -> dict:
        return dict(self.params)

    def replace(self, **changes) -> "Op":
        fields = dict(
            prim=self.prim, inputs=self.inputs, outputs=self.outputs, params=self.params,
            loc=self.loc, note=self.note, buffers=self.buffers, group=self.group,
        )
        fields.update(changes)
        return Op(**fields)


_OP_PRIM, _OP_INPUTS, _OP_OUTPUTS, _OP_PARAMS, _OP_LOC, _OP_NOTE, _OP_BUFFERS, _OP_GROUP = (
    Op.__dict__[f].__set__
    for f in ("prim", "inputs", "outputs", "params", "loc", "note", "buffers", "group"))


@dataclass(frozen=True)
class Guard:
    """A place where Python inspected a traced value: `kind(var) == expected`."""

    kind: str  # bool | int | float | item | index
    var: Var
    expected: Any
    loc: str = ""

    def holds(self, value) -> bool:
        got = _GUARD_CONVERT[self.kind](value)
        return got == self.expected or (got != got and self.expected != self.expected)


_GUARD_CONVERT = {
    "bool": bool,
    "int": int,
    "float": float,
    "index": lambda v: int(np.asarray(v).__index__()) if np.ndim(v) == 0 else v,
    "item": lambda v: v.item() if hasattr(v, "item") else v,
    "complex": complex,
    "shape": lambda v: tuple(np.shape(v)),
}


_ids = itertools.count(1)


@dataclass(eq=False)
class Tape:
    """A typed straight-line program.

    `inputs` are the flat leaf Vars; `outputs` the flat result atoms. `in_tree` and
    `out_tree` (from `tapegrad.tree`) rebuild structured arguments and results.
    `consts` maps the Var of each `const` op to its array value.
    """

    inputs: list = field(default_factory=list)
    ops: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    guards: list = field(default_factory=list)
    in_tree: Any = None
    out_tree: Any = None
    meta: dict = field(default_factory=dict)
    next_id: int = 1

    # -- building -------------------------------------------------------------------
    def new_var(self, dtype, shape) -> Var:
        v = Var(self.next_id, np.dtype(dtype), tuple(int(s) for s in shape))
        self.next_id += 1
        return v

    def derive(self, ops=None, outputs=None, inputs=None, guards=None) -> "Tape":
        """A new tape sharing this one's structure, with the fields given replaced."""
        return Tape(
            inputs=list(self.inputs if inputs is None else inputs),
            ops=list(self.ops if ops is None else ops),
            outputs=list(self.outputs if outputs is None else outputs),
            guards=list(self.guards if guards is None else guards),
            in_tree=self.in_tree,
            out_tree=self.out_tree,
            meta=dict(self.meta),
            next_id=self.next_id,
        )

    # -- reading --------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ops)

    def __iter__(self):
        return iter(self.ops)

    def producers(self) -> dict:
        """Map var id -> the op defining it."""
        return {v.id: op for op in self.ops for v in op.outputs}

    def stats(self) -> dict:
        """Op count, count by primitive, planned peak bytes, allocations (fresh arrays,
        counting a reused buffer once) and their total bytes, fusion groups."""
        from collections import Counter

        plan = memory_plan(self)
        return {
            "ops": len(self.ops),
            "by_prim": dict(Counter(op.prim.name for op in self.ops)),
            "peak_bytes": plan["peak_bytes"],
            "workspace_peak_bytes": plan["workspace_peak_bytes"],
            "allocations": plan["allocations"],
            "alloc_bytes": plan["alloc_bytes"],
            "fusion_groups": len({op.group for op in self.ops if op.group is not None}),
        }

    def __str__(self) -> str:
        return format_tape(self)

    def __repr__(self) -> str:
        return f"<Tape {len(self.inputs)} inputs, {len(self.ops)} ops, {len(self.outputs)} outputs>"

    def check(self) -> "Tape":
        verify(self)
        return self

    def to_dot(self) -> str:
        lines = ["digraph tape {", "  rankdir=TB;", '  node [shape=box, fontname="monospace"];']
        for v in self.inputs:
            lines.append(f'  v{v.id} [label="%{v.id}::{v.type_str}", shape=ellipse];')
        for i, op in enumerate(self.ops):
            outs = ", ".join(f"%{v.id}" for v in op.outputs)
            label = f"{outs} = {op.prim.name}\\n{op.outputs[0].type_str}"
            lines.append(f'  op{i} [label="{label}"];')
            for a in op.inputs:
                if isinstance(a, Var):
                    lines.append(f"  v{a.id} -> op{i};")
            for v in op.outputs:
                lines.append(f'  v{v.id} [label="%{v.id}", shape=point];')
                lines.append(f"  op{i} -> v{v.id} [arrowhead=none];")
        lines.append("}")
        return "\n".join(lines)


# -- printing -------------------------------------------------------------------------


def _fmt_param(v) -> str:
    if isinstance(v, np.dtype) or isinstance(v, type):
        return str(np.dtype(v))
    return repr(v)


def format_op(op: Op) -> str:
    outs = ", ".join(f"%{v.id}" for v in op.outputs)
    types = ", ".join(v.type_str for v in op.outputs)
    if op.prim.name == "const":
        text = f"{outs} = const {types}"
    else:
        args = [repr(a) for a in op.inputs]
        args += [f"{k}={_fmt_param(v)}" for k, v in op.params
                 if v is not None and v is not False and k != "value"]
        text = f"{outs} = {op.prim.name}({', '.join(args)})::{types}"
    if op.buffers and any(b is not None for b in op.buffers):
        text += " -> " + ", ".join(f"buf{b}" if b is not None else "new" for b in op.buffers)
    if op.group is not None:
        text += f" [g{op.group}]"
    comment = "  ".join(c for c in (op.note, op.loc) if c)
    if comment:
        text = f"{text:<44} # {comment}"
    return text


def format_tape(tape: Tape) -> str:
    ins = ", ".join(f"%{v.id}::{v.type_str}" for v in tape.inputs)
    outs = ", ".join(repr(v) for v in tape.outputs)
    if len(tape.outputs) != 1:
        outs = f"({outs})"
    lines = [f"tape({ins}) -> {outs}"]
    for op in tape.ops:
        lines.append("  " + format_op(op))
    for g in tape.guards:
        text = f"guard {g.kind}(%{g.var.id}) == {g.expected!r}"
        lines.append(f"  {text:<44} # {g.loc}" if g.loc else "  " + text)
    return "\n".join(lines)


# -- analysis -------------------------------------------------------------------------


# ops whose result shares its input's memory (never allocates); others allocate
VIEW_PRIMS = {"reshape", "transpose", "broadcast_to", "stop_gradient", "real", "imag", "flip"}


def is_view(op: Op) -> bool:
    """Whether `op`'s result shares its input's memory (a NumPy view)."""
    if op.prim.name == "getitem":  # basic indexing gives a view, array indices a copy
        return not any(isinstance(t, tuple) and t[0] == "a" for t in op.kw["index"])
    return op.prim.name in VIEW_PRIMS


def memory_plan(tape: Tape) -> dict:
    """Simulate the storage of a run: each allocating op makes an array (into its planned
    buffer, if `op.buffers` names one), views share their input's storage, inputs and
    constants cost nothing. An array is alive from its allocation to the last op reading
    it or any view of it (outputs to the end). -> peak_bytes, allocations, alloc_bytes, and
    workspace_peak_bytes: the peak of the temporaries alone (storage of returned results
    excluded from the op writing them on: it is the caller's, whatever the plan), the
    part of the peak a buffer plan controls (XLA reports it as temp allocation size)."""
    n = len(tape.ops)
    last = {}
    for i, op in enumerate(tape.ops):
        for a in op.inputs:
            if isinstance(a, Var):
                last[a.id] = i
    outs = {a.id for a in tape.outputs if isinstance(a, Var)}
    for a in list(tape.outputs) + [g.var for g in tape.guards]:
        if isinstance(a, Var):
            last[a.id] = n
    roots: dict = {}  # var id -> storage keys
    start, end, size = {}, {}, {}
    for i, op in enumerate(tape.ops):
        ins = frozenset().union(*[roots.get(a.id, frozenset()) for a in op.inputs
                                  if isinstance(a, Var)])
        bufs = op.buffers or (None,) * len(op.outputs)
        for v, b in zip(op.outputs, bufs):
            if op.prim.name == "const" or is_view(op):
                roots[v.id] = ins
                continue
            k = ("b", b) if b is not None else ("v", v.id)
            roots[v.id] = frozenset({k})
            if k not in start:  # a buffer stays allocated from its first write to its last read
                start[k] = end[k] = i
            size[k] = max(size.get(k, 0), v.nbytes if v.shape else 0)
        for v in op.outputs:
            for k in roots[v.id]:
                end[k] = max(end[k], last.get(v.id, i))
        for a in op.inputs:
            if isinstance(a, Var):
                for k in roots.get(a.id, ()):
                    end[k] = max(end[k], last.get(a.id, i))
    # storage holding a result the caller gets back counts as output from the op writing
    # that result on; before then (a buffer reused for temporaries first) as workspace
    out_from = {}
    for i, op in enumerate(tape.ops):
        for v in op.outputs:
            if last.get(v.id) == n and v.id in outs:
                for k in roots[v.id]:
                    out_from.setdefault(k, i)
    delta = [0] * (n + 2)
    work = [0] * (n + 2)
    allocations = alloc_bytes = 0
    for k, first in start.items():
        if size[k] == 0:
            continue
        allocations += 1
        alloc_bytes += size[k]
        delta[first] += size[k]
        delta[end[k] + 1] -= size[k]
        stop = min(end[k], out_from.get(k, n + 1) - 1)
        if stop >= first:
            work[first] += size[k]
            work[stop + 1] -= size[k]
    peak = cur = wpeak = wcur = 0
    for d, w in zip(delta, work):
        cur += d
        wcur += w
        peak = max(peak, cur)
        wpeak = max(wpeak, wcur)
    return {"peak_bytes": int(peak), "workspace_peak_bytes": int(wpeak),
            "allocations": allocations, "alloc_bytes": int(alloc_bytes)}


def peak_bytes(tape: Tape) -> int:
    """Largest total size of arrays alive at once, honouring a buffer plan."""
    return memory_plan(tape)["peak_bytes"]


class VerifyError(AssertionError):
    pass


def verify(tape: Tape, types: bool = True) -> None:
    """Check SSA form (each var defined once, before use) and, with `types`, that each
    op's declared output types match what its primitive produces on dummy inputs."""
    defined = {}
    for v in tape.inputs:
        if v.id in defined:
            raise VerifyError(f"input %{v.id} defined twice")
        defined[v.id] = v
    for op in tape.ops:
        for a in op.inputs:
            if isinstance(a, Var):
                if a.id not in defined:
                    raise VerifyError(f"%{a.id} used before definition in: {format_op(op)}")
                if defined[a.id] != a:
                    raise VerifyError(f"%{a.id} used with type {a.type_str}, defined as "
                                      f"{defined[a.id].type_str}: {format_op(op)}")
            elif not isinstance(a, Const):
                raise VerifyError(f"op input {a!r} is neither Var nor Const: {format_op(op)}")
        for v in op.outputs:
            if v.id in defined:
                raise VerifyError(f"%{v.id} defined twice: {format_op(op)}")
            if v.id >= tape.next_id:
                raise VerifyError(f"%{v.id} is not below the tape's next_id {tape.next_id}")
            defined[v.id] = v
        if types:
            _check_types(op)
    for a in tape.outputs:
        if isinstance(a, Var) and a.id not in defined:
            raise VerifyError(f"output %{a.id} is never defined")
    for g in tape.guards:
        if g.var.id not in defined:
            raise VerifyError(f"guard on undefined %{g.var.id}")


def _dummy(a, well_conditioned=False, weak=False):
    if isinstance(a, Const):
        return a.value
    if weak and a.shape == () and a.dtype in (np.float64, np.complex128):
        return a.dtype.type(1).item()  # a Python float/complex argument: a weak scalar
    x = np.ones(a.shape, a.dtype)
    if well_conditioned and len(a.shape) >= 2 and a.shape[-1] == a.shape[-2]:
        x = x + np.eye(a.shape[-1], dtype=a.dtype) * a.shape[-1]  # positive definite
    return x


def _check_types(op: Op) -> None:
    prim = op.prim
    if prim.data_dependent_shape or prim.name == "const":
        return
    if sum(int(np.prod(a.shape)) for a in op.inputs if isinstance(a, Var)) > 1 << 20:
        return
    bad = None
    # ones first; a matrix of ones is singular, and some impls' dtype depends on values
    # (sqrtm of a singular matrix is complex), so retry on a positive definite one. A
    # float64[] / complex128[] var may be a Python float argument, which NumPy promotes as
    # a weak scalar (float32 array * 2.5 is float32): retry with those as Python scalars
    tries = [(False, False), (True, False)]
    if any(isinstance(a, Var) and a.shape == () and a.dtype in (np.float64, np.complex128)
           for a in op.inputs):
        tries.append((False, True))
    for well_conditioned, weak in tries:
        with np.errstate(all="ignore"):
            try:
                out = prim.impl(*[_dummy(a, well_conditioned, weak) for a in op.inputs], **op.kw)
            except Exception:  # value-dependent impls (e.g. linalg on ones) may refuse dummies
                return
        outs = out if prim.multiple_results else (out,)
        bad = next(((v, np.asarray(o)) for v, o in zip(op.outputs, outs)
                    if np.shape(o) != v.shape or np.asarray(o).dtype != v.dtype), None)
        if bad is None:
            return
    v, o = bad
    raise VerifyError(f"{format_op(op)}: declared {v.type_str}, primitive gives "
                      f"{o.dtype}[{','.join(map(str, o.shape))}]")
