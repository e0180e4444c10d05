"""The public surface (see shared/API.md). Thin: the work is in core, passes, backends."""

from __future__ import annotations

import functools
import operator

import numpy as np

from . import tree
from .backends import interpret
from .backends.validate import subclass_message
from .core import (LazyGrads, Slot, as_kind_of, check_scalar_output, differentiable_leaf, fill, grad_call,
                   slot_kind, trace_call)
from .ir import Primitive, Tape
from .ir import prims as P
from .rules import VJPS
from .trace import DEBUG_NANS, Tracer, _stack, bind, is_traced  # noqa: F401  (re-exported)

# -- results --------------------------------------------------------------------------------


class GradResult:
    """Gradients from the Yota-style `grad(f, *args)`: `g[i]` for argument i, `g.tape`.

    Built either from computed gradients and a tape, or from a `core.LazyGrads` that
    runs the reverse pass for argument i when `g[i]` is first read (so gradients for
    data arguments nobody reads cost nothing), and optimises `g.tape` when first read.
    """

    def __init__(self, grads, tape=None, lazy=None):
        self._lazy = lazy
        self._grads = list(grads) if grads is not None else [_MISSING] * len(lazy.t.args)
        self._tape = tape

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(len(self._grads))[i]]
        n = len(self._grads)
        k = operator.index(i)
        if not -n <= k < n:
            raise IndexError(f"gradient index {i} out of range: the function has {n} arguments")
        k %= n
        g = self._grads[k]
        if g is _MISSING:
            g = self._grads[k] = self._lazy_arg(k)
        return g

    def _lazy_arg(self, i):
        lz = self._lazy
        t = lz.t
        where = lz.leaves([i])
        if _is_plain_leaf(t.args[i]):  # what _yota_format gives a plain leaf, without lists
            cts, _ = lz.values(where, zeros=True)
            g = cts[0] if cts else None
            return as_kind_of(g, lz.args[i])
        cts, used = lz.values(where, zeros=False)
        grads = [None] * len(lz.t.arg_leaves)
        grads[i] = [None] * len(t.arg_leaves[i])
        used_by_leaf = [[False] * len(lv) for lv in t.arg_leaves]
        for (a, j), c, u in zip(where, cts, used):
            grads[a][j] = c
            used_by_leaf[a][j] = u
        return _yota_format([lz.args[k] if k == i else None for k in range(len(t.args))],
                            grads, t.arg_paths, used_by_leaf, leaves=t.arg_leaves)[i]

    @property
    def tape(self):
        if callable(self._tape) and not isinstance(self._tape, Tape):
            self._tape = self._tape()  # built on first read
        if self._tape is None:
            from .passes import optimize

            lz = self._lazy
            tape, where, used = lz.full_tape()
            t = lz.t
            used_by_leaf = [[False] * len(lv) for lv in t.arg_leaves]
            slot_grads = [[None] * len(lv) for lv in t.arg_leaves]
            for k, ((i, j), u) in enumerate(zip(where, used)):
                used_by_leaf[i][j] = u
                slot_grads[i][j] = Slot(k + 1, slot_kind(t.arg_leaves[i][j]))
            slot_grads = [s if any(x is not None for x in s) else None for s in slot_grads]
            tape.out_tree = (Slot(0, "float" if type(lz.val) is float else "array"),
                             _yota_format(lz.args, slot_grads, t.arg_paths, used_by_leaf, slots=True))
            self._tape = optimize(tape)
        return self._tape

    @tape.setter
    def tape(self, value):
        self._tape = value

    def __len__(self):
        return len(self._grads)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def nodes(self, *args):
        """Value, gradient and parents per node (AutoGrad.jl's `[J]`): `tg.inspect(g, file=None)`."""
        from .inspect import inspect

        return inspect(self, *args, file=None)

    def __repr__(self):
        return f"GradResult({[self[i] for i in range(len(self))]!r})"


_MISSING = object()


def _is_plain_leaf(a) -> bool:
    return isinstance(a, Tracer) or tree.is_leaf(a)


def _yota_format(args, grads, paths, used_by_leaf, slots=False, leaves=None):
    """Per argument: array/float gradient, {path: grad} dict for structures, or None.
    Values (not `slots`) come back in their leaf's kind (`as_kind_of`; `leaves`: the
    arguments' flat leaves)."""
    out = []
    for i, a in enumerate(args):
        gi = grads[i]
        if _is_plain_leaf(a):
            g = gi[0] if gi else None
            out.append(g if slots else as_kind_of(g, a))
        elif not gi:  # None, or a structure without differentiable leaves (int, str, bool)
            out.append(None)
        else:
            kinds = leaves[i] if leaves is not None and not slots else [None] * len(gi)
            out.append({p: g if x is None else as_kind_of(g, x)
                        for p, g, u, x in zip(paths[i], gi, used_by_leaf[i], kinds) if g is not None and u})
    return tuple(out)


# -- Yota-style and function-transform grad ------------------------------------------------


def grad(f, *args, argnum=None, dynamic=False, compile=False, **kwargs):
    """Gradient of a scalar function.

    - `grad(f, *args)` (Yota form): evaluate; returns `(value, GradResult)`.
    - `grad(f)` / `grad(f, argnum=k)` / `grad(f, argnum=(0, 2))`: return a function giving
      the gradient w.r.t. those arguments, with the argument's structure (autograd form).
    - `grad(result, param)`: the AutoGrad.jl form, for a result of `tg.diff`.
    """
    if isinstance(f, _diff_result()):
        return f.grad(*args)
    if args:
        if dynamic or compile:
            from .dynamic import dynamic_grad

            return dynamic_grad(f, compile=compile)(*args, **kwargs)
        return _yota_grad(f, args, kwargs)
    argnum = 0 if argnum is None else argnum
    return _grad_transform(f, argnum, with_value=False)


_DIFF_RESULT = []


def _diff_result():
    if not _DIFF_RESULT:  # imported on first use (param.py builds on this module's peers)
        from .param import DiffResult

        _DIFF_RESULT.append(DiffResult)
    return _DIFF_RESULT[0]


def _yota_grad(f, args, kwargs):
    if not _stack():  # top level
        lz = LazyGrads(f, args, kwargs)
        val = lz.val
        if isinstance(val, np.ndarray) and val.ndim == 0:
            val = val[()]
        return val, GradResult(None, lazy=lz)
    return _eager_yota_grad(f, args, kwargs)


def _eager_yota_grad(f, args, kwargs):
    from .passes import optimize

    val, grads, tape, t, used = grad_call(f, args, kwargs)
    used_by_leaf = [[False] * len(lv) for lv in t.arg_leaves]
    k = 1
    slot_grads = [None if g is None else [None] * len(g) for g in grads]
    for (i, j), u in zip(tape.meta["wrt"], used):
        used_by_leaf[i][j] = u
        slot_grads[i][j] = Slot(k, slot_kind(t.arg_leaves[i][j]))
        k += 1
    gtuple = _yota_format(args, grads, t.arg_paths, used_by_leaf, leaves=t.arg_leaves)
    tape.out_tree = (Slot(0, "float" if type(val) is float else "array"),
                     _yota_format(args, slot_grads, t.arg_paths, used_by_leaf, slots=True))
    tape = optimize(tape)
    if isinstance(val, np.ndarray) and val.ndim == 0:
        val = val[()]
    return val, GradResult(gtuple, tape)


def _grad_transform(f, argnum, with_value):
    multi = isinstance(argnum, (tuple, list))
    argnums = tuple(argnum) if multi else (argnum,)

    @functools.wraps(f)
    def gradfun(*args, **kwargs):
        for k in argnums:
            if k >= len(args):
                raise TypeError(f"grad: argnum {k} but only {len(args)} positional arguments given")
        # share=False: an array at two places of a structure gets each place's partial
        # gradient, as in autograd and JAX (the Yota form counts a shared leaf once)
        if _stack():  # inside another trace: recorded there (higher derivatives)
            val, grads, tape, t, used = grad_call(f, args, kwargs, argnums, share=False)
        else:  # top level: gradients on values (as `g[i]` of the Yota form)
            lz = LazyGrads(f, args, kwargs, share=False)
            val, t = lz.val, lz.t
            where = lz.leaves(argnums)
            cts, _ = lz.values(where, last=True)
            grads = [None] * len(args)
            for k in argnums:
                grads[k] = [None] * len(t.arg_leaves[k])
            for (i, j), c in zip(where, cts):
                grads[i][j] = c
        res = []
        for k in argnums:
            a = args[k]
            gl = [g if g is not None else None for g in grads[k]]
            if _is_plain_leaf(a):
                g = gl[0] if gl else None
                if g is None:
                    raise TypeError(f"grad: argument {k} ({type(a).__name__}) is not differentiable "
                                    "(integer or boolean)")
                res.append(as_kind_of(g, a))
            else:
                if not any(differentiable_leaf(x) for x in t.arg_leaves[k]):
                    raise TypeError(f"grad: argument {k} ({type(a).__name__}) has nothing to "
                                    "differentiate: no float or complex array or number in it")
                res.append(tree.unflatten_like(
                    a, [as_kind_of(g, x) for g, x in zip(gl, t.arg_leaves[k])], share=False))
        g = tuple(res) if multi else res[0]
        return (val, g) if with_value else g

    return gradfun


def value_and_grad(f, argnum=0):
    """A function returning `(f(*args), gradient w.r.t. argnum)`."""
    return _grad_transform(f, argnum, with_value=True)


# -- trace / play / update ------------------------------------------------------------------


def trace(f, *args, **kwargs):
    """Record `f(*args)` as a Tape. -> (value, tape)."""
    return trace_call(f, args, kwargs)


def play(tape, *args):
    """Run a tape (or a compiled tape) on new arguments of the same structure."""
    if not isinstance(tape, Tape) and hasattr(tape, "play"):
        if DEBUG_NANS[0] and isinstance(getattr(tape, "tape", None), Tape):
            tape = tape.tape  # tg.debug_nans(): the interpreter names the op that made a NaN
        else:
            try:
                return tape.play(*args)
            except TypeError:
                inner = getattr(tape, "tape", None)
                if isinstance(inner, Tape):
                    flat_inputs(inner, args)  # names a wrong argument count or structure
                raise
    leaves = flat_inputs(tape, args)
    outs = interpret.run(tape, leaves)
    return fill(tape.out_tree, outs)


def flat_inputs(tape, args) -> list:
    """Flatten `args` and check them against the tape's inputs (ValueError naming the input)."""
    trees = tape.in_tree or ()
    if len(args) != len(trees):
        raise ValueError(f"tape takes {len(trees)} arguments, got {len(args)}")
    leaves = []
    for i, (a, t) in enumerate(zip(args, trees)):
        paths, lv, tr = tree.flatten(a)
        if tr != t and _float_tracers(tr, lv) == t:  # play inside grad w.r.t. a float
            tr = t
        if tr != t:
            _shared_leaf_error(i, a, t)
            raise ValueError(f"argument {i}: structure {_short(tr)} differs from the traced "
                             f"{_short(t)} (fields, static values or leaf kinds changed): re-trace")
        leaves.extend((i, p, x) for p, x in zip(paths, lv))
    out = []
    strong = tape.meta.get("strong_scalars", ())
    for k, (v, (i, p, x)) in enumerate(zip(tape.inputs, leaves)):
        if type(x) is np.ndarray and x.shape == v.shape and x.dtype == v.dtype:  # the common case
            out.append(x)
            continue
        if isinstance(x, (float, complex)) and not isinstance(x, Tracer):
            # the scalar kind the tape was traced with: a Python float promotes weakly, a
            # NumPy scalar as an array (see core.bind_inputs); the interpreter follows NumPy
            if k in strong:
                if type(x) in (float, complex):
                    x = v.dtype.type(x)
            elif type(x) not in (float, complex):
                x = float(x) if isinstance(x, float) else complex(x)
        name = f"argument {i}" + (f" field {p}" if p else "")
        if isinstance(x, np.memmap):
            x = np.asarray(x)
        elif isinstance(x, np.ndarray) and type(x) is not np.ndarray:
            raise ValueError(subclass_message(name, v, x))
        if isinstance(x, Tracer):
            dtype, shape = x.dtype, x.shape
        else:
            if isinstance(x, np.ndarray) and x.dtype.kind == "O":
                raise ValueError(f"{name}: object arrays are not supported")
            a = np.asarray(x) if not isinstance(x, float) else None
            dtype, shape = (np.dtype(np.float64), ()) if a is None else (a.dtype, a.shape)
        if tuple(shape) != v.shape:
            raise ValueError(f"{name}: expected shape {v.shape}, got {tuple(shape)}")
        if dtype != v.dtype:
            raise ValueError(f"{name}: expected dtype {v.dtype}, got {dtype}")
        out.append(x)
    return out


def _float_tracers(t, leaves):
    """Treedef `t` with each 0-d float64 Tracer leaf marked as a Python float: a tape traced
    on a float is replayed inside a trace where that float is traced (`grad` w.r.t. it)."""
    if t[0] == "leaf":
        x = leaves[t[1]]
        if t[2] == "array" and isinstance(x, Tracer) and x.shape == () and x.dtype == np.float64:
            return ("leaf", t[1], "float")
        return t
    if t[0] == "static":
        return t
    return (t[0], tuple((k, _float_tracers(c, leaves)) for k, c in t[1]))


def _shared_leaf_error(i, a, traced):
    """Raise the clear error where `a` differs from the traced structure only in one
    object sitting at two places (flattening counts it once: tied weights)."""
    paths, lv, tr = tree.flatten(a, share=False)
    if tr != traced:
        return
    first = {}
    for p, x in zip(paths, lv):
        if id(x) in first:
            raise ValueError(f"argument {i}: structure differs from the traced one: the same "
                             f"object is passed at field paths {first[id(x)]} and {p}, where the "
                             "tape was traced with distinct values (flattening counts a shared "
                             "object once): pass a copy, or trace with the shared object")
        first[id(x)] = p


def _short(t):
    s = repr(t)
    return s if len(s) < 120 else s[:117] + "..."


def update(model, g, fn):
    """Yota's update!: write fn(x, gx) back for every leaf named in `g`, in place."""
    if isinstance(g, dict):  # every new value computed and every path checked, then written
        writes = [tree.path_setter(model, path, fn(tree.get_path(model, path), gx))
                  for path, gx in g.items() if gx is not None]
        for write in writes:
            write()
        return model
    if isinstance(model, np.ndarray) and g is not None:
        model[...] = fn(model, g)
        return model
    raise TypeError("update needs a field-path dict from grad (g[i] of a structured argument) "
                    "or an array model with an array gradient")


# -- extending --------------------------------------------------------------------------------


class PrimitiveFunction:
    """A user function recorded as one op (`@tg.primitive`)."""

    def __init__(self, fn):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.prim = P.defprim(getattr(fn, "__name__", "primitive"), fn, user=True)
        self.prim.pure = True

    def __call__(self, *args, **kwargs):
        if any(isinstance(a, Tracer) for a in args):
            return bind(self.prim, *args, **kwargs)
        return self.fn(*args, **kwargs)


def primitive(fn) -> PrimitiveFunction:
    """Record calls of `fn` on traced values as one op named after it (HIPS autograd's
    `@primitive`); give it rules with `tg.defvjp` / `tg.defjvp` / `tg.diffrule`."""
    return PrimitiveFunction(fn)


def _prim_of(fn) -> Primitive:
    if isinstance(fn, PrimitiveFunction):
        return fn.prim
    if isinstance(fn, Primitive):
        return fn
    if isinstance(fn, np.ufunc):
        return P.ufunc_prim(fn)
    name = getattr(fn, "__name__", None)
    if name in P.PRIMS:
        return P.PRIMS[name]
    raise TypeError(f"{fn!r} is not a primitive: decorate it with @tg.primitive first")


def defvjp(fn, *makers, argnums=None):
    """HIPS autograd's defvjp: one curried maker `(ans, *args) -> (g -> cotangent)` per argument."""
    prim = _prim_of(fn)
    argnums = range(len(makers)) if argnums is None else argnums
    table = list(VJPS.get(prim, ()))
    for k, m in zip(argnums, makers):
        while len(table) <= k:
            table.append(None)
        table[k] = None if m is None else (lambda m: lambda g, ans, *a, **kw: m(ans, *a, **kw)(g))(m)
    VJPS[prim] = tuple(table)


def defjvp(fn, *makers):
    """Forward rule(s) `(g, ans, *args) -> tangent of ans`, one per argument."""
    from .rules import JVPS

    JVPS[_prim_of(fn)] = makers


def diffrule(fn, argnum=0):
    """Yota's @diffrule: `rule(ds, ans, *args)` gives the cotangent of argument `argnum`."""

    def deco(rule):
        prim = _prim_of(fn)
        table = list(VJPS.get(prim, ()))
        while len(table) <= argnum:
            table.append(None)
        table[argnum] = lambda g, ans, *a, **kw: rule(g, ans, *a, **kw)
        VJPS[prim] = tuple(table)
        return rule

    return deco


def nodiff(fn, argnum):
    """Yota's @nodiff: no gradient flows through argument `argnum` of `fn`."""
    prim = _prim_of(fn)
    table = list(VJPS.get(prim, ()))
    while len(table) <= argnum:
        table.append(None)
    table[argnum] = lambda *a, **kw: None
    VJPS[prim] = tuple(table)


def stop_gradient(x):
    """`x`, with no gradient flowing back through it."""
    if isinstance(x, Tracer):
        return bind(P.stop_gradient, x)
    return x


__all__ = ["grad", "value_and_grad", "trace", "play", "update", "primitive", "defvjp",
           "defjvp", "diffrule", "nodiff", "stop_gradient", "GradResult", "is_traced",
           "check_scalar_output"]
