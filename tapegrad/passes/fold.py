"""Constant folding and algebraic simplification.

One forward sweep: each op's inputs are mapped through `env`, the rewrite rules below
are tried until none applies, and an op whose inputs are all constants is evaluated.
Every rewrite is type-checked: the replacement must have exactly the dtype and shape
of the var it replaces (NumPy 2 promotion is re-derived, never assumed), else the rule
is skipped. Ops the rewrites orphan are left for `dce`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..ir import ArrayValue, Const, Op, Tape, Var
from ..ir import prims as P

FOLD_LIMIT = 4096  # largest array (elements) folded into a `const` op
VIEW_SOURCES = ("broadcast_to", "reshape")


def infer(prim, inputs, params) -> tuple:
    """(dtype, shape) of `prim(*inputs, **params)`, from dummies (or None if it fails)."""
    with np.errstate(all="ignore"):
        try:
            if prim.elementwise and isinstance(prim.impl, np.ufunc):
                vals = [a.value if isinstance(a, Const) else np.ones((), a.dtype) for a in inputs]
                shape = np.broadcast_shapes(*[a.shape for a in inputs])
                return np.asarray(prim.impl(*vals, **dict(params))).dtype, shape
            vals = [a.value if isinstance(a, Const) else np.ones(a.shape, a.dtype) for a in inputs]
            out = np.asarray(prim.impl(*vals, **dict(params)))
            return out.dtype, out.shape
        except Exception:
            return None


def _same(a, v) -> bool:
    return a.dtype == v.dtype and tuple(a.shape) == tuple(v.shape)


def _axes(axis, ndim) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    axis = (axis,) if isinstance(axis, int) else axis
    return tuple(sorted(a % ndim for a in axis))


class _Builder:
    def __init__(self, tape: Tape):
        self.tape = tape.derive(ops=[])
        self.env = {}
        self.defs = {}
        self.uses = {}
        for op in tape.ops:
            for a in op.inputs:
                if isinstance(a, Var):
                    self.uses[a.id] = self.uses.get(a.id, 0) + 1
        for a in list(tape.outputs) + [g.var for g in tape.guards]:
            if isinstance(a, Var):
                self.uses[a.id] = self.uses.get(a.id, 0) + 2  # never "single use"
        self.guarded = {g.var.id for g in tape.guards}

    # -- looking at values ------------------------------------------------------------
    def producer(self, a):
        return self.defs.get(a.id) if isinstance(a, Var) else None

    def single_use(self, a) -> bool:
        return isinstance(a, Var) and self.uses.get(a.id, 0) == 1

    def value(self, a):
        """The concrete value of a constant atom, else None."""
        if isinstance(a, Const):
            return a.value
        p = self.producer(a)
        if p is not None and p.prim.name == "const":
            return p.kw["value"].array
        return None

    def uniform(self, a):
        """The single value every element of `a` is known to hold, else None."""
        v = self.value(a)
        if v is None:
            p = self.producer(a)
            if p is not None and p.prim.name == "full":
                return p.kw["fill"]
            if p is not None and p.prim.name in ("broadcast_to", "reshape"):
                return self.uniform(p.inputs[0])  # spreading a uniform value keeps it uniform
            return None
        v = np.asarray(v)
        if v.size and v.ndim and not any(v.strides) and v.dtype.kind in "biuf":
            v = v.reshape(-1)[:1]  # a broadcast constant (zero strides): one value, any size
        if v.size == 0 or v.size > FOLD_LIMIT or v.dtype.kind not in "biuf":
            return None
        first = v.flat[0]
        if not np.all(v == first) or (v.dtype.kind == "f" and np.signbit(v).any()):
            return None
        return first

    # -- making ops ---------------------------------------------------------------------
    def make(self, like: Op, prim, inputs, params=(), out: Var | None = None):
        """A new op computing `prim(*inputs)`; `out` (the var it replaces) must keep its
        type, else None."""
        t = infer(prim, inputs, params)
        if t is None or (out is not None and (t[0] != out.dtype or tuple(t[1]) != out.shape)):
            return None
        out = out if out is not None else self.tape.new_var(*t)
        return Op(prim, tuple(inputs), (out,), tuple(sorted(params)), loc=like.loc, note=like.note)

    def emit(self, op: Op) -> Var:
        self.tape.ops.append(op)
        for v in op.outputs:
            self.defs[v.id] = op
        return op.out

    def helper(self, like, prim, inputs, params=()):
        """Add a new intermediate op (simplified in turn); its atom, or None if ill-typed."""
        op = self.make(like, prim, inputs, params)
        if op is None:
            return None
        self.uses[op.out.id] = 1  # helpers take over the use of the single-use op they replace
        self.add(op)
        return self.env.get(op.out.id, op.out)

    # -- the sweep ----------------------------------------------------------------------
    def add(self, op: Op) -> None:
        inputs = tuple(self.env.get(a.id, a) if isinstance(a, Var) else a for a in op.inputs)
        op = op.replace(inputs=inputs, buffers=None, group=None)
        if not op.prim.pure or op.prim.multiple_results or op.prim.name == "const":
            self.emit(op)
            return
        for _ in range(16):
            r = simplify(self, op)
            if r is None:
                break
            if not isinstance(r, Op):
                if op.out.id in self.guarded or not _same(r, op.out):
                    break
                if isinstance(r, Var):
                    self.uses[r.id] = self.uses.get(r.id, 0) + self.uses.get(op.out.id, 0)
                self.env[op.out.id] = r
                return
            op = r
        r = fold_const(self, op)
        if isinstance(r, Const):
            self.env[op.out.id] = r
            return
        self.emit(r or op)

    def finish(self) -> Tape:
        outs = [self.env.get(a.id, a) if isinstance(a, Var) else a for a in self.tape.outputs]
        guards = [replace(g, var=self.env.get(g.var.id, g.var)) for g in self.tape.guards]
        self.tape.outputs, self.tape.guards = outs, guards
        return self.tape


def fold_const(b: _Builder, op: Op):
    """Evaluate an op whose inputs are all constants: a scalar becomes a `Const`, a small
    array a `const` op."""
    if not op.inputs or op.prim.data_dependent_shape and op.prim.name != "getitem":
        return None
    vals = [b.value(a) for a in op.inputs]
    if any(v is None for v in vals) or op.out.id in b.guarded:
        return None
    with np.errstate(all="ignore"):
        try:
            r = np.asarray(op.prim.impl(*vals, **op.kw))
        except Exception:
            return None
    if r.dtype != op.out.dtype or r.shape != op.out.shape or r.size > FOLD_LIMIT:
        return None
    if r.size > max([np.size(v) for v in vals] + [1]):
        return None  # a broadcast: keep the small source, the simplifier removes it
    if r.shape == ():
        return Const(r.dtype.type(r[()]))
    arr = np.array(r)
    arr.flags.writeable = False
    return Op(P.const, (), op.outputs, (("value", ArrayValue(arr)),), loc=op.loc, note=op.note)


def simplify(b: _Builder, op: Op):
    """One rewrite of `op`: None, an atom replacing its output, or a replacement Op."""
    name = op.prim.name
    rule = RULES.get(name)
    r = rule(b, op, *op.inputs) if rule is not None else None
    if r is None and op.prim.elementwise:
        r = _unbroadcast_inputs(b, op)
    return r


def _keep(b, op, x):
    """`x` standing for `op`'s output: as is if the types match, broadcast if only the
    shape differs, else None."""
    out = op.out
    if _same(x, out):
        return x
    if isinstance(x, Var) and x.dtype == out.dtype:
        return b.make(op, P.broadcast_to, [x], (("shape", out.shape),), out=out)
    return None


def _zeros(b, op):
    return Op(P.full, (), op.outputs, (("dtype", op.out.dtype), ("fill", 0), ("shape", op.out.shape)),
              loc=op.loc, note=op.note)


def _multiply(b, op, x, y):
    for u, w in ((x, y), (y, x)):
        k = b.uniform(w)
        if k is not None and k == 1:
            r = _keep(b, op, u)
            if r is not None:
                return r
        # x * 0 is not rewritten to 0: it is NaN for x = inf or NaN, and the tape must
        # propagate NaN/inf exactly as NumPy does
    return _push_negation(b, op, x, y, P.ufunc_prim(np.multiply))


def _divide(b, op, x, y):
    k = b.uniform(y)
    if k is not None and k == 1:
        return _keep(b, op, x)
    return _push_negation(b, op, x, y, op.prim)


def _push_negation(b, op, x, y, prim):
    """(-x) * (-y) -> x * y;  (-x) / (-y) -> x / y."""
    px, py = b.producer(x), b.producer(y)
    if px is not None and py is not None and px.prim.name == py.prim.name == "negative":
        return b.make(op, prim, [px.inputs[0], py.inputs[0]], out=op.out)
    return None


def _add(b, op, x, y):
    for u, w in ((x, y), (y, x)):
        k = b.uniform(w)
        if k is not None and k == 0:
            r = _keep(b, op, u)
            if r is not None:
                return r
        pw = b.producer(w)
        if pw is not None and pw.prim.name == "negative" and b.single_use(w):  # u + -v -> u - v
            r = b.make(op, P.ufunc_prim(np.subtract), [u, pw.inputs[0]], out=op.out)
            if r is not None:
                return r
    return None


def _subtract(b, op, x, y):
    k = b.uniform(y)
    if k is not None and k == 0:
        r = _keep(b, op, x)
        if r is not None:
            return r
    k = b.uniform(x)
    if k is not None and k == 0:
        r = b.make(op, P.ufunc_prim(np.negative), [y], out=op.out)
        if r is not None:
            return r
    py = b.producer(y)
    if py is not None and py.prim.name == "negative" and b.single_use(y):  # x - -v -> x + v
        return b.make(op, P.ufunc_prim(np.add), [x, py.inputs[0]], out=op.out)
    return None


def _negative(b, op, x):
    p = b.producer(x)
    if p is None:
        return None
    name = p.prim.name
    if name == "negative":
        return _keep(b, op, p.inputs[0]) if _same(p.inputs[0], op.out) else None
    if not b.single_use(x):
        return None
    if name in ("multiply", "divide"):  # -(u * c) -> u * -c
        u, w = p.inputs
        if isinstance(w, Const) and not isinstance(w.value, bool):
            return b.make(op, p.prim, [u, Const(-w.value)], out=op.out)
        if isinstance(u, Const) and not isinstance(u.value, bool):
            return b.make(op, p.prim, [Const(-u.value), w], out=op.out)
    if name == "subtract":  # -(u - w) -> w - u
        return b.make(op, p.prim, [p.inputs[1], p.inputs[0]], out=op.out)
    return None


def _transpose(b, op, x, axes):
    if tuple(axes) == tuple(range(len(axes))):
        return _keep(b, op, x)
    p = b.producer(x)
    if p is not None and p.prim.name == "transpose":
        inner = p.kw["axes"]
        composed = tuple(inner[j] for j in axes)
        if composed == tuple(range(len(composed))):
            return _keep(b, op, p.inputs[0])
        return b.make(op, P.transpose, [p.inputs[0]], (("axes", composed),), out=op.out)
    return None


def _reshape(b, op, x, shape):
    if tuple(x.shape) == op.out.shape:
        return x
    p = b.producer(x)
    if p is None:
        return None
    name, src = p.prim.name, p.inputs[0] if p.inputs else None
    if name == "reshape":
        return b.make(op, P.reshape, [src], (("shape", op.out.shape),), out=op.out)
    if name == "broadcast_to" and isinstance(src, Var) and int(np.prod(src.shape)) == 1 \
            and len(src.shape) <= len(op.out.shape):
        return b.make(op, P.broadcast_to, [src], (("shape", op.out.shape),), out=op.out)
    if name == "negative" and b.single_use(x):  # reshape(-u) -> -reshape(u)
        r = b.helper(op, P.reshape, [src], op.params)
        return r and b.make(op, p.prim, [r], out=op.out)
    if name == "sum" and not p.kw.get("keepdims") and b.single_use(x):
        axes = _axes(p.kw.get("axis"), len(src.shape))
        kept = tuple(1 if i in axes else s for i, s in enumerate(src.shape))
        if kept == op.out.shape:  # reshape(sum(u, axis)) -> sum(u, axis, keepdims=True)
            return b.make(op, P.sum_, [src], (("axis", axes), ("keepdims", True)), out=op.out)
    return None


def _broadcast_to(b, op, x, shape):
    if tuple(x.shape) == op.out.shape:
        return x
    p = b.producer(x)
    if p is not None and p.prim.name == "broadcast_to":
        return b.make(op, P.broadcast_to, [p.inputs[0]], (("shape", op.out.shape),), out=op.out)
    return None


def _sum(b, op, x, axis=None, keepdims=False):
    p = b.producer(x)
    if p is None:
        return None
    ndim = len(x.shape)
    axes = _axes(axis, ndim)
    name = p.prim.name
    if name == "broadcast_to":  # sum over the broadcast axes only: scale the source
        src = p.inputs[0]
        lead = ndim - len(src.shape)
        stretched = {i for i in range(ndim)
                     if i < lead or (src.shape[i - lead] == 1 and x.shape[i] != 1)}
        if stretched <= set(axes) and all(x.shape[i] == 1 for i in set(axes) - stretched):
            n = int(np.prod([x.shape[i] for i in stretched]))
            u = src if n == 1 else b.helper(op, P.ufunc_prim(np.multiply), [src, Const(n)])
            if u is not None and u.dtype == op.out.dtype:
                if tuple(u.shape) == op.out.shape:
                    return u
                return b.make(op, P.reshape, [u], (("shape", op.out.shape),), out=op.out)
    if not b.single_use(x):
        return None
    if name == "negative":  # sum(-u) -> -sum(u): negate the smaller array
        s = b.helper(op, P.sum_, [p.inputs[0]], op.params)
        return s and b.make(op, p.prim, [s], out=op.out)
    if name == "sum" and not keepdims and not p.kw.get("keepdims"):
        src = p.inputs[0]
        inner = _axes(p.kw.get("axis"), len(src.shape))
        rest = [i for i in range(len(src.shape)) if i not in inner]
        merged = tuple(sorted(set(inner) | {rest[a] for a in axes}))
        return b.make(op, P.sum_, [src], (("axis", merged),), out=op.out)
    if name == "astype" and p.inputs[0].dtype == bool:  # sum(astype(mask)) -> sum(mask)
        return b.make(op, P.sum_, [p.inputs[0]], op.params, out=op.out)
    return None


def _astype(b, op, x, dtype):
    return x if _same(x, op.out) else None


def _unbroadcast_inputs(b, op):
    """An elementwise op broadcasts anyway: read `broadcast_to(u)` as `u`, a size-1
    reshape as its source, and a one-element constant array as a scalar `Const`."""
    inputs = list(op.inputs)
    changed = False
    for i, a in enumerate(inputs):
        p = b.producer(a)
        if p is None:
            continue
        cand = None
        if p.prim.name in VIEW_SOURCES and (
                p.prim.name == "broadcast_to" or int(np.prod(a.shape)) == 1):
            cand = p.inputs[0]
        elif p.prim.name == "const" and p.kw["value"].array.size == 1:
            cand = Const(a.dtype.type(p.kw["value"].array.reshape(())[()]))
        if cand is None:
            continue
        trial = inputs[:i] + [cand] + inputs[i + 1:]
        t = infer(op.prim, trial, op.params)
        if t is not None and t[0] == op.out.dtype and tuple(t[1]) == op.out.shape:
            inputs, changed = trial, True
    return op.replace(inputs=tuple(inputs)) if changed else None


def _matmul(b, op, x, y):
    """A matrix holding one finite value c, times y: every row of the product is c times
    the column sums of y (mirrored for y uniform). One reduction instead of a matmul, as
    XLA's simplifier does; it is what the reverse pass makes of `sum(W @ x)` (a broadcast
    1 into two matmuls). Equal up to the summation order."""
    if len(x.shape) != 2 or len(y.shape) != 2:
        return None
    m, n = op.out.shape
    for uni, other, axis, ones_shape in ((x, y, 0, (m, 1)), (y, x, 1, (1, n))):
        c = b.uniform(uni)
        if c is None or not np.isfinite(c) or other.dtype != op.out.dtype:
            continue  # (a float32 y in a float64 product is summed in float64 by matmul)
        s = b.helper(op, P.sum_, [other], (("axis", (axis,)), ("keepdims", True)))
        fill = b.helper(op, P.full, [], (("dtype", op.out.dtype), ("fill", c), ("shape", ones_shape)))
        if s is None or fill is None:
            return None
        return b.make(op, P.ufunc_prim(np.multiply), [s, fill], out=op.out)
    return None


def _untransposed(b, a):
    """x where `a` is transpose(x) of a 2-D x, else None."""
    p = b.producer(a)
    if p is not None and p.prim.name == "transpose" and len(p.inputs[0].shape) == 2 \
            and tuple(p.kw["axes"]) == (1, 0):
        return p.inputs[0]
    return None


def _gemm(b, op, x, y, ta=False, tb=False):
    """matmul or gemm reading a 2-D transpose -> gemm with that operand's flag flipped:
    BLAS takes the transpose as an argument, so it is no op of its own (and `dce` drops
    the transpose when nothing else reads it). Same products, same summation."""
    if len(x.shape) != 2 or len(y.shape) != 2:
        return None
    sx, sy = _untransposed(b, x), _untransposed(b, y)
    if sx is None and sy is None:
        return None
    if sx is not None:
        x, ta = sx, not ta
    if sy is not None:
        y, tb = sy, not tb
    return b.make(op, P.gemm, [x, y], P.gemm_params(ta, tb), out=op.out)


RULES = {
    "matmul": lambda b, op, x, y: _matmul(b, op, x, y) or _gemm(b, op, x, y),
    "gemm": lambda b, op, x, y: _gemm(b, op, x, y, **op.kw),
    "multiply": _multiply, "divide": _divide, "add": _add, "subtract": _subtract,
    "negative": _negative, "transpose": lambda b, op, x: _transpose(b, op, x, op.kw["axes"]),
    "reshape": lambda b, op, x: _reshape(b, op, x, op.kw["shape"]),
    "broadcast_to": lambda b, op, x: _broadcast_to(b, op, x, op.kw["shape"]),
    "sum": lambda b, op, x: _sum(b, op, x, op.kw.get("axis"), op.kw.get("keepdims", False)),
    "astype": lambda b, op, x: _astype(b, op, x, op.kw["dtype"]),
}


def fold(tape: Tape) -> Tape:
    """Fold constant ops and simplify algebra: x*1, x+0, x-0, x/1,
    --x, (-x)*(-y), -(x*c), x + -y, transpose of transpose, reshape of reshape or of a
    broadcast scalar, reshape(sum) -> sum(keepdims), sum of a broadcast -> scaled source,
    sum of sum, broadcasts feeding elementwise ops, `ones * g` -> g, a uniform matrix times
    y -> scaled column sums of y, a 2-D transpose feeding a matmul -> gemm's flag.

    Preserves: play(result, *args) == play(tape, *args) with the same dtypes and shapes
    (up to rounding of reassociated sums), NaN and inf included. Impure ops and guarded
    values are never rewritten; var numbers are kept.
    """
    b = _Builder(tape)
    for op in tape.ops:
        b.add(op)
    return b.finish()
