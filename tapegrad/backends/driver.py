"""The generated driver: plain Python that runs a compiled tape step by step, NumPy calls
for single ops and NumPy-mode regions, kernel calls for loop regions and blocks, with
guards, buffer reuse (`out=` into dead driver-allocated arrays) and the output template
inlined. `CompiledTape._driver` (numba.py) renders it with `_Emitter`."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from ..errors import GuardError
from ..ir import Const
from .blocks import Block
from .kernels import SIMD_SAVING_NS, VIEWS, Region, elementwise_kind, kernel_source

if TYPE_CHECKING:  # annotations only: numba.py imports this module
    from .numba import Kernel

# producers whose arrays may be views with any strides: copied C-contiguous before a kernel
_VIEW_PRODUCERS = {"transpose", "broadcast_to", "getitem", "flip", "einsum", "real", "imag",
                   "reshape", "stop_gradient", "astype", "capture"}

# -- the driver ----------------------------------------------------------------------------


def _py_literal(v):
    """Source for a Python scalar constant, or None when it needs a global."""
    if type(v) in (int, bool) or (type(v) is float and v == v and abs(v) != float("inf")):
        return repr(v)
    return None


class _Emitter:
    """Writes the driver function: names, globals and lines."""

    def __init__(self, ctape):
        self.ct = ctape
        self.g = {"np": np, "_GuardError": GuardError}
        self.lines = []
        self.folded = ctape.consts
        self.scalar_ok = set()  # shape-() vars known to be NumPy/Python scalars, not 0-d arrays
        self.producer = {}
        self.nglob = 0
        self.step = -1  # index into ctape.steps of the step being emitted
        self.root, self.last, self.fresh = _lifetimes(ctape)

    def dead_here(self, a, local_last=None, i=None) -> bool:
        """Is var `a` a buffer this driver allocated that nothing (nor any view of it)
        reads after the current step (and, within a NumPy region, after its op `i`)?"""
        if not hasattr(a, "id") or a.id not in self.fresh or not a.shape:
            return False
        r = self.root.get(a.id, a.id)
        if self.last.get(r) != self.step:
            return False
        return local_last is None or local_last.get(r) == i

    def glob(self, value, prefix="_c") -> str:
        name = f"{prefix}{self.nglob}"
        self.nglob += 1
        self.g[name] = value
        return name

    def name(self, a) -> str:
        if isinstance(a, Const):
            lit = _py_literal(a.value)
            return lit if lit is not None else self.glob(a.value)
        if a.id in self.folded:
            key = f"_k{a.id}"
            if key not in self.g:
                v = self.folded[a.id]
                if isinstance(v, np.ndarray):
                    v = np.array(v, order="C", copy=True)
                self.g[key] = v
            return key
        return f"v{a.id}"

    def numpy_call(self, op, out=None) -> str:
        """The NumPy expression for `op`, with the interpreter's exact semantics."""
        p = op.prim
        kw = op.kw
        args = [self.name(a) for a in op.inputs]
        name = p.name
        if name == "matmul":  # 2-D: ndarray.dot skips matmul's ufunc set-up (~0.5 us a call)
            if len(op.inputs[0].shape) == 2 and len(op.inputs[1].shape) == 2:
                return f"{args[0]}.dot({args[1]})"
            return f"np.matmul({args[0]}, {args[1]})"
        if isinstance(p.impl, np.ufunc) and getattr(np, name, None) is p.impl:
            o = f", out={out}" if out else ""
            return f"np.{name}({', '.join(args)}{o})"
        if isinstance(p.impl, np.ufunc):
            return f"{self.glob(p.impl, '_u')}({', '.join(args)})"
        if name == "getitem":
            index = _index_source(kw["index"], args[1:])
            if index is not None:
                return f"{args[0]}[{index}]"
        if name in ("sum", "max", "min", "prod", "any", "all") and set(kw) <= {"axis", "keepdims"}:
            extra = "".join(f", {k}={kw[k]!r}" for k in ("axis", "keepdims") if kw.get(k) not in (None, False))
            return f"np.{name}({args[0]}{extra})"
        if name == "broadcast_to":
            return f"np.{name}({args[0]}, {kw['shape']!r})"
        if name == "reshape" and op.inputs[0].shape:  # methods: no __array_function__ dispatch
            return f"{args[0]}.reshape({kw['shape']!r})"
        if name == "reshape":
            return f"np.reshape({args[0]}, {kw['shape']!r})"
        if name == "transpose" and len(op.inputs[0].shape) == 2 and tuple(kw["axes"]) == (1, 0):
            return f"{args[0]}.T"
        if name == "transpose" and op.inputs[0].shape:
            return f"{args[0]}.transpose({tuple(kw['axes'])!r})"
        if name == "transpose":
            return f"np.transpose({args[0]}, {kw['axes']!r})"
        if name == "concatenate":
            return f"np.concatenate(({', '.join(args)},), axis={kw['axis']!r})"
        if name == "where":
            return f"np.where({', '.join(args)})"
        fn = functools.partial(p.impl, **kw) if kw else p.impl
        return f"{self.glob(fn, '_f')}({', '.join(args)})  # {name}"

    def assign(self, outs, expr, multi=False):
        """`outs = expr`; `multi`: expr gives a tuple (a multiple-results primitive), which
        a single output unpacks (`v5, = ...`)."""
        lhs = ", ".join(f"v{v.id}" for v in outs)
        self.lines.append(f"{lhs}{',' if multi and len(outs) == 1 else ''} = {expr}")

    def guards(self, vars_):
        for v in vars_:
            for g in self.ct.guards_of.get(v.id, ()):
                gname = self.glob(g, "_g")
                msg = self.glob(f"guard failed: {g.kind}(%{g.var.id}) was {g.expected!r} when "
                                f"traced ({g.loc}); these inputs take another path: re-trace "
                                "(tg.jit does this)", "_m")
                self.lines.append(f"if not {gname}.holds(v{v.id}): raise _GuardError({msg})")

    def emit_op(self, op):
        out = None
        v = op.outputs[0] if op.outputs else None
        if _is_np_ufunc(op.prim) and v is not None and v.shape:
            for a in op.inputs:  # a dead input of the same type takes the result in place
                if self.dead_here(a) and a.dtype == v.dtype and a.shape == v.shape:
                    out = self.name(a)
                    break
        self.assign(op.outputs, self.numpy_call(op, out=out), op.prim.multiple_results)
        if elementwise_kind(op) and op.prim.name in SIMD_SAVING_NS:
            self.lines[-1] += "  # NumPy SIMD loop, not scalar libm in a kernel"
        for v in op.outputs:
            self.producer[v.id] = op.prim.name

    def emit_numpy_region(self, r: Region):
        """The region's ops as NumPy calls; dead temporaries lend their buffer via `out=`."""
        outs = {v.id for v in r.outputs}
        last = {}  # alias root -> index of the last op here reading it or a view of it
        for i, op in enumerate(r.ops):
            for a in op.inputs:
                if hasattr(a, "id"):
                    last[self.root.get(a.id, a.id)] = i
        free = []  # (dtype, shape, name) of dead temporaries this region allocated
        owned = set()
        lent = set()  # inputs already put in `free`
        self.lines.append(f"# g{r.index}: numpy ({r.why})")
        for i, op in enumerate(r.ops):
            v = op.outputs[0]
            out = None
            for a in op.inputs:  # an input read for the last time may take the result in place
                if not hasattr(a, "id") or a.id in outs:
                    continue
                if (a.id in owned and last.get(self.root.get(a.id, a.id)) == i) or \
                        (a.id not in r.members and a.id not in lent and self.dead_here(a, last, i)):
                    owned.discard(a.id)
                    lent.add(a.id)
                    free.append((a.dtype, a.shape, f"v{a.id}"))
            if _is_np_ufunc(op.prim) and v.shape:
                for j, (dt, sh, nm) in enumerate(free):
                    if dt == v.dtype and sh == v.shape:
                        out = nm
                        del free[j]
                        break
            self.assign(op.outputs, self.numpy_call(op, out=out), op.prim.multiple_results)
            self.producer[v.id] = op.prim.name
            if v.id not in outs and v.shape and op.prim.name not in VIEWS and \
                    isinstance(op.prim.impl, np.ufunc):
                owned.add(v.id)

    def emit_kernel_region(self, r: Region, k: Kernel):
        _, args, outs = kernel_source(r, self.ct.consts, self.ct.uniform, canonical=True)
        kname = self.glob(k.dispatcher, "_kern")
        arg_s = self.kernel_args(args)
        self.lines.append(f"# g{r.index}: numba loop over {list(r.shape)} ({r.why}), "
                          f"kernel {k.name}")
        lhs = ", ".join(f"v{v.id}" for v in outs)
        self.lines.append(f"{lhs}, = {kname}({', '.join(arg_s)})")
        for v in outs:
            self.producer[v.id] = "kernel"
            if not v.shape:
                self.scalar_ok.add(v.id)
                if v.id in self.ct.used_by_numpy:
                    self.lines.append(f"v{v.id} = np.{v.dtype.name}(v{v.id})")

    def kernel_args(self, args) -> list:
        """Argument expressions for a kernel call: scalars as typed scalars, arrays that
        may be strided views made C-contiguous (kernels assume one layout)."""
        out = []
        for a in args:
            n = self.name(a)
            if not a.shape and a.id not in self.scalar_ok:
                n = f"_sc({n})"
            elif a.shape and self.producer.get(a.id, "input") in _VIEW_PRODUCERS:
                n = f"np.ascontiguousarray({n})"
            out.append(n)
        return out

    def emit_kernel_block(self, b: Block, k: Kernel):
        arg_s = self.kernel_args(b.inputs)
        nm = sum(1 for kind, x in b.items if kind == "op" and x.prim.name == "matmul")
        self.lines.append(f"# {b.index}: numba block: {nm} matmuls + loops "
                          f"{', '.join(f'g{r.index}' for r in b.regions())}, kernel {k.name}")
        lhs = ", ".join(f"v{v.id}" for v in b.outputs)
        self.lines.append(f"{lhs}, = {self.glob(k.dispatcher, '_kern')}({', '.join(arg_s)})")
        for v in b.outputs:
            self.producer[v.id] = "kernel"
            if not v.shape:
                self.scalar_ok.add(v.id)
                if v.id in self.ct.used_by_numpy:
                    self.lines.append(f"v{v.id} = np.{v.dtype.name}(v{v.id})")

    def fill_expr(self, template, outputs):
        from ..core import Slot

        if isinstance(template, Slot):
            a = outputs[template.k]
            n = self.name(a)
            if hasattr(a, "id") and a.id in self.folded and isinstance(self.folded[a.id], np.ndarray):
                n = f"{n}.copy()"
            if template.kind == "float":
                return f"float({n})"
            if template.kind == "scalar" and hasattr(a, "dtype"):  # a NumPy scalar, as traced
                return f"np.{a.dtype.name}({n})"
            if template.kind == "array0":  # a kernel hands back a float32 scalar as a float
                return f"np.asarray({n}, np.{a.dtype.name})" if hasattr(a, "dtype") else f"np.asarray({n})"
            if template.kind == "complex":
                return f"complex({n})"
            if hasattr(a, "id") and not a.shape and self.producer.get(a.id) == "kernel" \
                    and a.id not in self.ct.used_by_numpy:
                return f"np.{a.dtype.name}({n})"
            return n
        if type(template) is tuple:
            parts = [self.fill_expr(t, outputs) for t in template]
            return "(" + "".join(p + ", " for p in parts) + ")"
        if type(template) is list:
            return "[" + ", ".join(self.fill_expr(t, outputs) for t in template) + "]"
        if type(template) is dict and all(type(k) in (str, int) for k in template):
            return "{" + ", ".join(f"{k!r}: {self.fill_expr(t, outputs)}" for k, t in template.items()) + "}"
        raise _NoInline


class _NoInline(Exception):
    pass


def _index_source(template, arrays):
    """`x[...]` source for a getitem index template (see ir.prims.decode_index), or None."""
    parts = []
    for t in template:
        if isinstance(t, tuple) and t[0] == "s":
            lo, hi, st = ("" if b is None else repr(b) for b in t[1:])
            parts.append(f"{lo}:{hi}" + (f":{st}" if st else ""))
        elif isinstance(t, tuple) and t[0] == "a":
            parts.append(arrays[t[1]])
        elif t is None or t is Ellipsis or type(t) is int:
            parts.append("..." if t is Ellipsis else repr(t))
        else:
            return None
    return "()" if not parts else "".join(p + ", " for p in parts)


def _is_np_ufunc(p) -> bool:
    """An elementwise NumPy ufunc the driver calls as `np.<name>` (matmul is a gufunc)."""
    return isinstance(p.impl, np.ufunc) and getattr(np, p.name, None) is p.impl and \
        p.impl.signature is None


def _lifetimes(ct):
    """-> (root, last, fresh) over `ct.steps`. `fresh`: vars the driver allocates itself
    (kernel outputs, NumPy ufunc and matmul results), never returned. Any other op's result
    may be a view of its inputs, so they share an alias `root`; `last[root]` is the index of
    the last step reading any of them (returned or guarded values: never)."""
    parent = {}

    def find(i):
        while parent.get(i, i) != i:
            i = parent[i]
        return i

    fresh = set()

    def produced(op, loop):
        if loop or _is_np_ufunc(op.prim) or op.prim.name == "matmul":
            fresh.update(v.id for v in op.outputs if v.shape)
            return
        for v in op.outputs:
            for a in op.inputs:
                if hasattr(a, "id"):
                    ra, rv = find(a.id), find(v.id)
                    if ra != rv:
                        parent[rv] = ra
    for kind, x in ct.steps:
        if kind == "op":
            produced(x, False)
        elif kind == "block":
            for kind2, y in x.items:
                for op in ((y,) if kind2 == "op" else y.ops):
                    produced(op, kind2 == "region" and x.mode == "loop" and y.mode == "loop")
        elif kind == "region":
            loop = x.mode == "loop"
            for op in x.ops:
                produced(op, loop)
    last = {}
    for i, (kind, x) in enumerate(ct.steps):
        ops = x.ops if kind in ("region", "block") else (x,) if kind == "op" else ()
        for op in ops:
            for a in op.inputs:
                if hasattr(a, "id"):
                    last[find(a.id)] = i
    never = len(ct.steps) + 1
    for a in list(ct.tape.outputs) + [g.var for g in ct.tape.guards]:
        if hasattr(a, "id"):
            last[find(a.id)] = never
    fresh -= {a.id for a in ct.tape.outputs if hasattr(a, "id")}
    fresh -= set(ct.consts)
    root = {i: find(i) for i in parent}
    return root, last, fresh


def _sc(v):
    return v[()] if type(v) is np.ndarray else v
