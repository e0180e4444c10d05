"""Tracing a function over structured arguments and differentiating it.

`trace_call` runs `f` on Tracers standing for the leaves of its arguments;
`grad_call` adds the reverse pass and packages the gradient tape. The public
transforms in `api.py` are thin layers over these two.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np

from . import tree
from .errors import TraceError
from .ir import Const, Var
from .ir import prims as _P
from .ir.prims import ArrayValue
from .passes import keep_example
from .passes.reverse import (backward, backward_values, own_copy, own_inputs, owned,
                             owned_values, release_unread, zeros_like_var)
from .trace import DEBUG_NANS, Trace, Tracer, _stack, new_trace


class Slot:
    """A place in an output template, filled with flat output `k`."""

    __slots__ = ("k", "kind")

    def __init__(self, k, kind="array"):
        self.k, self.kind = k, kind

    def __repr__(self):
        return f"Slot({self.k})"


def slot_kind(leaf) -> str:
    """How a gradient w.r.t. `leaf` is handed back: "float" for a Python float, "array0" for
    a 0-d ndarray (NumPy's ufuncs turn 0-d arrays into scalars on the way), else "array"."""
    if isinstance(leaf, float):
        return "float"
    return "array0" if isinstance(leaf, np.ndarray) and leaf.ndim == 0 else "array"


def as_kind_of(g, leaf):
    """Gradient `g` of `leaf` in the leaf's kind (`slot_kind`): a float for a Python float,
    an ndarray for an ndarray argument, 0-d included (API contract)."""
    if g is None:
        return g
    if isinstance(g, Tracer):  # under tg.jit: the kind rides on the traced value's type,
        # which `output_template` reads (`_traced_kind`)
        lv = leaf.value if isinstance(leaf, Tracer) else None
        gv = g.value
        if g.shape == () and type(gv) is not Tracer:
            if type(lv) is float and type(gv) is not float:
                return Tracer(g._trace, g.node, float(gv))
            if type(lv) is np.ndarray and lv.ndim == 0 and type(gv) is not np.ndarray:
                return Tracer(g._trace, g.node, np.asarray(gv))
        return g
    if isinstance(leaf, float):
        return float(g)
    if isinstance(leaf, np.ndarray) and not isinstance(g, np.ndarray):
        return np.asarray(g)
    return g


def fill(template, values):
    """Rebuild a result from an output template and flat values."""
    if isinstance(template, Slot):
        v = values[template.k]
        if template.kind == "float" and not isinstance(v, Tracer):
            return float(v)
        if template.kind == "array0" and not isinstance(v, (Tracer, np.ndarray)):
            return np.asarray(v)
        if template.kind == "scalar" and type(v) is np.ndarray:
            return v[()]
        if template.kind == "complex" and not isinstance(v, Tracer):
            return complex(v)
        return v
    if isinstance(template, dict):
        return {k: fill(v, values) for k, v in template.items()}
    if isinstance(template, tuple) and hasattr(type(template), "_fields"):
        return type(template)(*[fill(v, values) for v in template])
    if isinstance(template, (list, tuple)):
        return type(template)(fill(v, values) for v in template)
    if isinstance(template, _Obj):
        return tree.unflatten_like(template.obj, [fill(s, values) for s in template.slots])
    return template


def filler(template):
    """`fill(template, values)` as one generated function of `values` (`tg.jit` fills its
    result on every call: the generic walk took 4 us for `(value, (g0, g1, g2, g3))`, the
    generated tuple 0.2 us). Templates other than Slots, tuples, lists and dicts with
    str/int keys, and Slots that convert, keep the generic `fill` for that part."""
    g = {"_fill": fill}

    def expr(t):
        if isinstance(t, Slot) and t.kind == "array":
            return f"o[{t.k}]"
        if type(t) is tuple:
            return "(" + "".join(expr(x) + ", " for x in t) + ")"
        if type(t) is list:
            return "[" + ", ".join(map(expr, t)) + "]"
        if type(t) is dict and all(type(k) in (str, int) for k in t):
            return "{" + ", ".join(f"{k!r}: {expr(v)}" for k, v in t.items()) + "}"
        name = f"_t{len(g)}"
        g[name] = t
        return f"_fill({name}, o)"

    return eval(f"lambda o: {expr(template)}", g)  # noqa: S307  (our own expression)


class _Obj:
    """An output object (dataclass, plain object) whose leaves are output slots."""

    def __init__(self, obj, slots):
        self.obj, self.slots = obj, slots


class Traced:
    """What `trace_call` leaves behind: the live trace and where things are on it."""

    def __init__(self, trace, args, arg_paths, arg_leaves, arg_trees, in_tracers):
        self.trace = trace
        self.args = args
        self.arg_paths = arg_paths
        self.arg_leaves = arg_leaves
        self.arg_trees = arg_trees
        self.in_tracers = in_tracers  # per argument, list of leaf Tracers


def bind_inputs(trace: Trace, args, share=True) -> Traced:
    paths, leaves, trees, tracers, traced_args = [], [], [], [], []
    for a in args:
        p, lv, t = tree.flatten(a, share)
        ts = [trace.new_input(x) for x in lv]
        paths.append(p)
        leaves.append(lv)
        trees.append(t)
        tracers.append(ts)
        traced_args.append(tree.unflatten_like(a, ts, share))
    trace.tape.in_tree = tuple(trees)
    # NumPy scalars among the float/complex leaves (np.float64 is a float, but promotes as a
    # float64 array where a Python float adapts: x32 * 2.5 is float32, x32 * np.float64(2.5)
    # float64): replays pass each the kind it was traced with (`api.flat_inputs`)
    strong = frozenset(k for k, x in enumerate(x for lv in leaves for x in lv)
                       if isinstance(x, (float, complex)) and type(x) not in (float, complex))
    if strong:
        trace.tape.meta["strong_scalars"] = strong
    keep_example(trace.tape, leaves)  # TAPEGRAD_DEBUG only
    return Traced(trace, traced_args, paths, leaves, trees, tracers)


def output_template(trace: Trace, out, outputs: list):
    """Replace each leaf of `out` by a Slot, appending its atom to `outputs`."""
    if isinstance(out, Tracer) or tree.is_leaf(out):
        outputs.append(as_atom(trace, out))
        return Slot(len(outputs) - 1, _traced_kind(out) if isinstance(out, Tracer) else tree._leaf_kind(out))
    if isinstance(out, dict):
        return {k: output_template(trace, v, outputs) for k, v in out.items()}
    if isinstance(out, tuple) and hasattr(type(out), "_fields"):
        return type(out)(*[output_template(trace, v, outputs) for v in out])
    if isinstance(out, (list, tuple)):
        return type(out)(output_template(trace, v, outputs) for v in out)
    kids = tree.children(out)
    if kids is not None and not isinstance(out, (str, bytes)):
        _, lv, _ = tree.flatten(out)
        return _Obj(out, [output_template(trace, x, outputs) for x in lv])
    return out


def _traced_kind(t) -> str:
    """The slot kind of a traced output: a 0-d result stays what NumPy made of it, a NumPy
    scalar (`x[0]`, `np.sum(x)`) or a 0-d array (`np.array(s)`), on replays too (the
    interpreter and compiled code can give the other one)."""
    v = t.value
    if type(v) is Tracer or t.shape != ():
        return "array"
    if isinstance(v, np.generic):
        return "scalar"
    if isinstance(v, np.ndarray):
        return "array0"
    return "float" if type(v) is float else "array"  # a traced Python float, returned as is


def as_atom(trace: Trace, x):
    if isinstance(x, Tracer):
        if x.stale:
            from .inplace import _stale_error

            raise _stale_error(x)
        if x._trace is trace:
            return x.node
        return trace.atom(x)
    if isinstance(x, (float, complex, int, np.generic)):
        return Const(x)
    return trace.atom(np.asarray(x))


def value_of(trace: Trace, atom):
    return atom.value if isinstance(atom, Const) else trace.values[atom.id]


_CONST = _P.const


def snapshot_consts(tape) -> None:
    """Give `tape` its own copy of every array constant it captured (a global or closure
    array NumPy code read): a tape that outlives its trace is replayed, optimised and
    compiled later, and must compute with the values of trace time, as JAX's jit does.
    Referenced instead, replay saw a later write to the global while folding and compiling
    had baked the old values: the interpreter and the compiled tape disagreed. The ops
    are replaced (new list); the trace's own ops and values are left as they are."""
    ops = tape.ops
    for k, op in enumerate(ops):
        if op.prim is _CONST:
            av = op.kw.get("value")
            arr = getattr(av, "array", None)
            if isinstance(arr, np.ndarray) and arr.size:
                if ops is tape.ops:
                    ops = list(ops)
                ops[k] = op.replace(params=tuple((n, ArrayValue(own_copy(arr)) if n == "value" else v)
                                                 for n, v in op.params))
    tape.ops = ops


def trace_call(f, args, kwargs=None, own=False):
    """Trace `f(*args, **kwargs)`. -> (result with concrete values, Tape).

    `own`: the result's arrays are fresh, as a replay of the tape gives them (`tg.jit`'s
    first call): an output that is an argument or a view of one, a captured array, a
    read-only broadcast, or shares memory with an earlier output is copied. Otherwise
    the result is what `f` returned, as NumPy gave it."""
    with new_trace(f) as tr:
        t = bind_inputs(tr, args)
        out = f(*t.args, **(kwargs or {}))
        outputs = []
        template = output_template(tr, out, outputs)
        tr.tape.outputs = outputs
        tr.tape.out_tree = template
        tr.tape.meta["name"] = getattr(f, "__name__", "f")
        vals = [value_of(tr, a) for a in outputs]
        if own:
            vals = owned_values(tr, vals, [x for lv in t.arg_leaves for x in lv])
        val = fill(template, vals)
    if not _stack():  # a top-level tape is handed out: its constants are its own
        snapshot_consts(tr.tape)
    return val, tr.tape


def check_scalar_output(out, what="grad"):
    if out is None:
        raise TypeError(f"{what}: the function returned None (a missing `return`?); it must "
                        "return a scalar")
    if not isinstance(out, (Tracer, np.ndarray, np.generic, float, int, complex)):
        raise TypeError(f"{what} needs a scalar output, got a {type(out).__name__}: return "
                        "the scalar alone (tg.jacobian differentiates array outputs)")
    dtype = out.dtype if isinstance(out, Tracer) else np.result_type(out)
    shape = out.shape if isinstance(out, Tracer) else np.shape(out)
    if shape != ():
        raise TypeError(f"{what} needs a scalar output, got shape {tuple(shape)}: use "
                        "tg.jacobian or tg.elementwise_grad for non-scalar outputs")
    if dtype.kind == "c":
        raise TypeError(f"{what} of a complex output ({dtype}) is not defined: use "
                        "tg.holomorphic_grad, or differentiate np.real/np.abs of it")
    if dtype.kind == "b":
        raise TypeError(f"{what} of a boolean output is not defined")
    if dtype.kind not in "f":
        raise TypeError(f"{what} needs a floating-point output, got {dtype}")


def differentiable_leaf(x) -> bool:
    if isinstance(x, (Tracer, np.ndarray)):
        return x.dtype.kind in "fc"
    if isinstance(x, (float, complex)):
        return True
    return np.result_type(x).kind in "fc"


def grad_call(f, args, kwargs=None, argnums=None, scalar_check="grad", build=True, share=True):
    """Trace `f`, run the reverse pass w.r.t. the leaves of `args[argnums]`.

    -> (value, grads, tape) where grads[i] is a list (per leaf of arg i) of gradient
    values, or None for non-differentiable leaves and arguments not in `argnums`.
    """
    argnums = range(len(args)) if argnums is None else argnums
    with new_trace(f) as tr:
        t = bind_inputs(tr, args, share)
        out = f(*t.args, **(kwargs or {}))
        if scalar_check:
            check_scalar_output(out, scalar_check)
        out_atom = as_atom(tr, out)
        wrt, where = [], []
        for i in argnums:
            for j, (leaf, tc) in enumerate(zip(t.arg_leaves[i], t.in_tracers[i])):
                if differentiable_leaf(leaf):
                    wrt.append(tc.node)
                    where.append((i, j))
        cts = backward(tr, out_atom, wrt) if isinstance(out_atom, Var) else [None] * len(wrt)
        grads = [None] * len(args)
        for i in argnums:
            grads[i] = [None] * len(t.arg_leaves[i])
        grad_atoms = []
        used = [c is not None for c in cts]
        cts = owned(tr, [c if c is not None else zeros_like_var(tr, w) for c, w in zip(cts, wrt)],
                    [x for lv in t.arg_leaves for x in lv])
        for (i, j), c in zip(where, cts):
            grads[i][j] = c.value
            grad_atoms.append(c.node)
        tape = tr.tape
        tape.outputs = [out_atom] + grad_atoms
        tape.meta.update(name=getattr(f, "__name__", "f"), wrt=where, used=used)
        val = value_of(tr, out_atom)
    if not _stack():
        snapshot_consts(tape)
    return val, grads, tape, t, used


class LazyGrads:
    """The Yota form's gradients, computed per argument on first use.

    `grad(loss, model, X, y)` must offer `g[1]` (the gradient for the data X), but most
    callers only read `g[0]`: running the reverse pass for X would cost a full extra
    matmul per layer. So the forward trace is kept and re-entered on demand; each
    `g[i]` runs the reverse pass w.r.t. that argument's leaves only, and `g.tape` runs
    it w.r.t. every leaf. Only used at the top level (no enclosing trace): nested calls
    are eager, since the enclosing trace may be gone by the time `g[i]` is read.
    """

    def __init__(self, f, args, kwargs, share=True):
        with new_trace(f) as tr:
            self.t = bind_inputs(tr, args, share)
            out = f(*self.t.args, **(kwargs or {}))
            check_scalar_output(out, "grad")
            self.out_atom = as_atom(tr, out)
            self.val = value_of(tr, self.out_atom)
        # large forward values no rule reads are freed now, before the reverse pass
        reads = release_unread(tr, [self.out_atom.id] if isinstance(self.out_atom, Var) else ())
        own_inputs(tr, reads=reads)  # `g[i]` runs later: a caller may write its arrays meanwhile
        self.trace = tr
        self.args = args
        self.name = getattr(f, "__name__", "f")
        self.n_forward_ops = len(tr.tape.ops)
        self.bw_state = {"ops": list(tr.tape.ops)}  # shared by the per-argument passes
        self.pending = set(self.leaves(range(len(args))))  # differentiable leaves not yet asked
        # the same for the passes on values (`values`)
        self.value_state = {"ops": self.bw_state["ops"], "pending": set(self.pending)}
        self.lock = threading.Lock()

    def leaves(self, argnums):
        t = self.t
        return [(i, j) for i in argnums for j, leaf in enumerate(t.arg_leaves[i])
                if differentiable_leaf(leaf)]

    def run(self, where, zeros=True):
        """Reverse pass w.r.t. the leaves `where`: -> (cotangent Tracers or None, used)."""
        tr, t = self.trace, self.t
        if _stack():
            raise TraceError("a lazy gradient was read inside another trace; read g[i] outside it")
        with self.lock, reopened(tr):
            self.pending -= {w for w in where}
            # keep cotangents for a later pass only while leaves remain to be asked for:
            # the last pass frees them as it goes (big arrays: memory, not just time)
            self.bw_state["keep"] = bool(self.pending)
            wrt = [t.in_tracers[i][j].node for i, j in where]
            cts = (backward(tr, self.out_atom, wrt, state=self.bw_state)
                   if isinstance(self.out_atom, Var) else [None] * len(wrt))
            used = [c is not None for c in cts]
            if zeros:
                cts = [c if c is not None else zeros_like_var(tr, w) for c, w in zip(cts, wrt)]
            cts = owned(tr, cts, [x for lv in t.arg_leaves for x in lv])
        return cts, used

    def values(self, where, zeros=True, last=False):
        """Reverse pass w.r.t. the leaves `where`: -> (gradient values or None, used).

        Runs the rules on values (`backward_values`: nothing recorded, as HIPS autograd
        does). The recorded pass (`run`) stays the reference: it serves `tg.debug_nans()`
        (which checks each backward op), and any pass where a rule fails on plain values
        (rules are written for traced values: an error there is raised, or not, as the
        recorded pass decides), from then on. `last`: no pass on values follows (its
        cotangents are freed as it goes)."""
        if not DEBUG_NANS[0] and not self.value_state.get("failed"):
            t = self.t
            if _stack():
                raise TraceError("a lazy gradient was read inside another trace; read g[i] outside it")
            with self.lock:
                state = self.value_state
                try:
                    wrt = [t.in_tracers[i][j].node for i, j in where]
                    state["keep"] = not last and bool(state["pending"] - set(where))
                    cts = (backward_values(self.trace, self.out_atom, wrt, state=state)
                           if isinstance(self.out_atom, Var) else [None] * len(wrt))
                except BaseException as e:
                    state.clear()
                    state["failed"] = True  # its cotangents are partial: not used again
                    if not isinstance(e, Exception):
                        raise  # KeyboardInterrupt and the like
                else:
                    state["pending"] -= set(where)
                    used = [c is not None for c in cts]
                    if zeros:
                        cts = [c if c is not None else np.full(w.shape, 0, dtype=w.dtype)
                               for c, w in zip(cts, wrt)]
                    leaves = [x for lv in t.arg_leaves for x in lv]
                    return owned_values(self.trace, cts, leaves), used
        cts, used = self.run(where, zeros)
        return [None if c is None else c.value for c in cts], used

    def full_tape(self):
        """The gradient tape w.r.t. every leaf: forward ops plus one full reverse pass."""
        where = self.leaves(range(len(self.t.args)))
        cts, used = self.run(where)
        # earlier g[i] passes hold cotangents this one reuses; ops no output needs go in dce
        tape = self.trace.tape.derive(outputs=[self.out_atom] + [c.node for c in cts])
        tape.meta.update(name=self.name, wrt=where, used=used)
        snapshot_consts(tape)  # g.tape outlives the call (the values passes need not)
        return tape, where, used


@contextmanager
def reopened(tr: Trace):
    """Make a finished trace current again (in this thread), to append more ops to it. The
    caller checks that the traces it was made under are the current stack."""
    stack = _stack()
    tr.closed = False
    tr.thread = threading.get_ident()
    stack.append(tr)
    try:
        yield tr
    finally:
        stack.pop()
        tr.closed = True
