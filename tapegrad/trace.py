"""The tracer: runs user NumPy code on Tracer values and records primitive ops.

Tracing is eager: every Tracer holds its concrete value, so Python control flow works,
and each primitive call is both computed and appended to the innermost active Trace.
Nesting (grad of grad) works by boxing: the value of a level-2 Tracer may itself be a
level-1 Tracer, so one call records at every level at once (HIPS autograd's scheme,
with a typed tape at each level). A tracer of an enclosing trace met by an inner one
is captured as an input of the inner tape, never confused with the inner variable.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager

import numpy as np

from .errors import TraceError
from .ir import ArrayValue, Const, Guard, Op, Tape, Var
from .ir import prims as P

_state = threading.local()
_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_NUMPY_DIR = os.path.dirname(os.path.abspath(np.__file__))


def _stack() -> list:
    s = getattr(_state, "stack", None)
    if s is None:
        s = _state.stack = []
    return s


# id(code object) -> (basename, or None for tapegrad/numpy internals; the code object;
# for user code, `file:line` per instruction offset seen). Keyed by id: hashing a code
# object hashes its bytecode and constants (a microsecond for a big function, per frame
# walked, per op traced). The entry keeps its code object alive, so the id is never
# reused for another (as a dict keyed by code objects would keep it).
_INTERNAL: dict = {}


def _classify(code):
    fn = code.co_filename
    internal = fn.startswith(_PKG_DIR) or fn.startswith(_NUMPY_DIR) or fn.startswith("<__array")
    entry = _INTERNAL[id(code)] = (None if internal else os.path.basename(fn), code, {})
    return entry


def user_loc(depth: int = 2) -> str:
    """`file.py:line` of the innermost frame outside tapegrad and numpy (from `depth`
    frames up: the caller of user_loc's caller by default)."""
    f = sys._getframe(depth)
    internal = _INTERNAL
    while f is not None:
        code = f.f_code
        try:
            entry = internal[id(code)]
        except KeyError:
            entry = _classify(code)
        if entry[0] is not None:
            locs = entry[2]  # an instruction offset is on one line: its text is kept
            lasti = f.f_lasti
            loc = locs.get(lasti)
            if loc is None:
                loc = locs[lasti] = f"{entry[0]}:{f.f_lineno}"
            return loc
        f = f.f_back
    return ""


class Trace:
    """One level of tracing: a Tape being recorded plus the values of its vars."""

    def __init__(self, level: int):
        self.level = level
        self.tape = Tape()
        self.values: dict = {}
        self.closed = False
        self.note = ""
        self.loc = None  # set while the reverse pass runs a rule: the forward op's line
        self._consts: dict = {}
        self._captured: dict = {}
        self.const_ids: set = set()  # vars that depend on no input (see Tracer.is_constant)
        self.ones: set = set()  # ids of vars known to be all ones (see `_times_one`)
        self.dropped = None  # a TraceError to raise when the trace closes
        self.thread = threading.get_ident()

    # -- atoms --------------------------------------------------------------------------
    def new_input(self, value) -> "Tracer":
        if isinstance(value, np.ndarray) and value.dtype.kind == "O":  # as `play` refuses them
            raise TypeError("object arrays cannot be traced: pass a numeric array "
                            "(x.astype(float)) or put the values in a structure")
        tape = self.tape
        if type(value) is np.ndarray:
            var = Var(tape.next_id, value.dtype, value.shape)
            tape.next_id += 1
        else:
            var = tape.new_var(*aval(value))
        tape.inputs.append(var)
        self.values[var.id] = value
        return Tracer(self, var, value)

    def atom(self, x):
        """The Var or Const standing for `x` on this tape, recording consts as needed."""
        if isinstance(x, Tracer):
            if x._trace is self:
                return x.node
            return self._capture(x)
        if isinstance(x, (bool, int, float, complex, np.generic)):
            return Const(x)
        if isinstance(x, np.ndarray):
            hit = self._consts.get(id(x))
            if hit is not None and hit[1] is x:
                return hit[0]
            var = self._record(P.const, (), (("value", ArrayValue(x)),), [x])[0]
            self._consts[id(x)] = (var, x)
            return var
        if isinstance(x, (list, tuple)):
            return self.atom(np.asarray(x))
        raise TraceError(f"cannot use {type(x).__name__} {x!r} as an array operand")

    def _capture(self, x: "Tracer") -> Var:
        if x._trace.closed or x._trace.level >= self.level:
            raise TraceError(escaped_message(x))
        hit = self._captured.get(id(x))
        if hit is not None and hit[1] is x:
            return hit[0]
        var = self.tape.new_var(x.dtype, x.shape)
        self.tape.ops.append(Op(P.PRIMS["capture"], (), (var,), (("level", x._trace.level),),
                                loc=user_loc()))
        self.values[var.id] = x
        self._captured[id(x)] = (var, x)
        return var

    def _record(self, prim, inputs, params, outs):
        tape = self.tape
        out_vars = []
        for o in outs:
            if isinstance(o, (np.ndarray, np.generic)):
                out_vars.append(Var(tape.next_id, o.dtype, o.shape))
                tape.next_id += 1
            else:
                out_vars.append(tape.new_var(*aval(o)))
        out_vars = tuple(out_vars)
        op = Op(prim, tuple(inputs), out_vars, params,
                self.loc if self.loc is not None else user_loc(), self.note)
        tape.ops.append(op)
        if prim.pure and _all_constant(self.const_ids, inputs):
            self.const_ids.update(v.id for v in out_vars)
        values = self.values
        for v, o in zip(out_vars, outs):
            values[v.id] = o
        if DEBUG_NANS[0]:
            check_nans(op, [a.value if type(a) is Const else values[a.id] for a in inputs], outs)
        return out_vars

    def _record1(self, prim, inputs: tuple, params: tuple, out, depth: int = 3) -> Var:
        """`_record` for one output (the common case, kept lean: it runs once per op).
        `depth`: frames up to the caller of `bind`, where the user's line is sought."""
        tape = self.tape
        vid = tape.next_id
        if isinstance(out, (np.ndarray, np.generic)):
            var = Var(vid, out.dtype, out.shape)
            tape.next_id = vid + 1
        else:
            var = tape.new_var(*aval(out))
        loc = self.loc
        op = Op(prim, inputs, (var,), params, user_loc(depth) if loc is None else loc, self.note)
        tape.ops.append(op)
        if prim.pure:
            const_ids = self.const_ids
            for a in inputs:
                if type(a) is not Const and a.id not in const_ids:
                    break
            else:
                const_ids.add(var.id)
        self.values[var.id] = out
        if DEBUG_NANS[0]:
            check_nans(op, [a.value if type(a) is Const else self.values[a.id] for a in inputs], (out,))
        return var

    def tracer(self, atom) -> "Tracer | object":
        """A Tracer (or plain constant) for an atom of this tape, for use in rules."""
        if isinstance(atom, Const):
            return atom.value
        return Tracer(self, atom, self.values[atom.id])

    def guard(self, kind, tracer, expected):
        self.tape.guards.append(Guard(kind, tracer.node, expected, loc=user_loc()))

    @contextmanager
    def noting(self, note: str, loc: str | None = None):
        old = self.note, self.loc
        self.note = note
        if loc is not None:
            self.loc = loc
        try:
            yield
        finally:
            self.note, self.loc = old


DEBUG_NANS = [False]


def concrete(x):
    """The plain value under any number of tracing levels."""
    while isinstance(x, Tracer):
        x = x.value
    return x


def _has_nan(x) -> bool:
    x = concrete(x)
    try:
        a = np.asarray(x)
    except TraceError:
        return False
    return a.dtype.kind in "fc" and bool(np.isnan(a).any())


def check_nans(op, ins, outs) -> None:
    """Under `tg.debug_nans()`: raise at the first op that makes a NaN from NaN-free inputs."""
    if any(_has_nan(o) for o in outs) and not any(_has_nan(i) for i in ins):
        from .ir import format_op

        where = "backward" if op.note else "forward"
        raise FloatingPointError(f"NaN first produced in the {where} pass by {format_op(op)}")


def escaped_message(x) -> str:
    return (f"a traced value (%{x.node.id if isinstance(x.node, Var) else '?'}) was used outside the "
            "trace that made it: it escaped through a global, closure or attribute; "
            "return it from the traced function instead")


def aval(x):
    """(dtype, shape) of a value or Tracer."""
    if isinstance(x, Tracer):
        return x.dtype, x.shape
    if isinstance(x, float):
        return np.dtype(np.float64), ()
    if isinstance(x, complex):
        return np.dtype(np.complex128), ()
    a = np.asarray(x)
    return a.dtype, a.shape


class new_trace:
    """A new innermost trace for this thread (a context manager giving the Trace). With
    `fn` (the user function about to be traced), its module's `np` resolves to tapegrad's
    NumPy proxy meanwhile (see `constructors.py`), so `np.array([t, ...])` and
    `np.zeros(...)` there are traced. (A class: a generator context manager costs more,
    and this one runs on every `tg.grad` call.)"""

    __slots__ = ("fn", "trace", "numpy")

    def __init__(self, fn=None):
        self.fn = fn

    def __enter__(self) -> Trace:
        stack = _stack()
        t = self.trace = Trace(len(stack) + 1)
        stack.append(t)
        try:
            self.numpy = _user_numpy(self.fn)
            self.numpy.__enter__()
        except BaseException:
            t.closed = True
            stack.pop()
            raise
        return t

    def __exit__(self, *exc):
        try:
            return self.numpy.__exit__(*exc)
        finally:
            self.trace.closed = True
            _stack().pop()
            if self.trace.dropped is not None:  # a gradient NumPy would drop (see inplace)
                raise self.trace.dropped


def _user_numpy(fn):
    global _USER_NUMPY
    if _USER_NUMPY is None:
        from .constructors import user_numpy

        _USER_NUMPY = user_numpy
    return _USER_NUMPY(fn)


_USER_NUMPY = None


def current_level() -> int:
    return len(_stack())


def _top_trace(args):
    top = None
    for a in args:
        if isinstance(a, Tracer):
            t = a._trace
            if t.closed or t.thread != threading.get_ident():
                raise TraceError(escaped_message(a))
            if top is None or t.level > top.level:
                top = t
    return top


def _all_constant(const_ids, inputs) -> bool:
    """Whether every input atom depends on no input of the trace (see `Trace.const_ids`)."""
    for a in inputs:
        if type(a) is not Const and a.id not in const_ids:
            return False
    return True


def bind(prim, *args, **params):
    """Apply `prim` to `args`, recording it on the innermost trace among them."""
    n = len(args)
    if n == 1:
        if type(args[0]) is Tracer and type(args[0].value) is not Tracer:
            return _bind_unary(prim, args[0], params)  # the most common case, kept short
    elif n == 2 and not params:
        out = _bind_binary(prim, args[0], args[1])  # the next most common (operators)
        if out is not None:
            return out
    trace = None
    for a in args:
        if isinstance(a, Tracer):
            t = a._trace
            if t is not trace:
                if t.closed or t.thread != threading.get_ident():
                    raise TraceError(escaped_message(a))
                if trace is None or t.level > trace.level:
                    trace = t
    if trace is None:
        return prim.impl(*args, **params)
    vals = []
    nested = False
    plain = True  # every argument a Tracer of `trace`: no atoms to make
    for a in args:
        if type(a) is Tracer and a._trace is trace:
            a = a.value
        else:
            plain = False
        if type(a) is Tracer:
            nested = True
        vals.append(a)
    if trace.ones and prim is _MULTIPLY:
        kept = _times_one(trace, args)
        if kept is not None:
            return kept
    out = bind(prim, *vals, **params) if nested else prim.impl(*vals, **params)
    if plain:
        inputs = tuple([a.node for a in args])
    else:
        inputs = tuple([a.node if type(a) is Tracer and a._trace is trace else trace.atom(a)
                        for a in args])
    params = _op_params(params) if params else ()
    if not prim.multiple_results:
        var = trace._record1(prim, inputs, params, out)
        if prim in _SPREAD and _is_one(trace, inputs[0]):
            trace.ones.add(var.id)
        return Tracer(trace, var, out)
    outs = list(out)
    out_vars = trace._record(prim, inputs, params, outs)
    return tuple(Tracer(trace, v, o) for v, o in zip(out_vars, outs))


def _op_params(params: dict) -> tuple:
    """Keyword parameters as an op keeps them: (name, value) pairs sorted by name. Called
    only where there are some: most ops have none, and this runs once per traced op."""
    items = tuple(params.items())
    return items if len(items) == 1 else tuple(sorted(items))


def _bind_unary(prim, a, params, sorted_params=None):
    """`bind` of one Tracer whose value is concrete (no enclosing level to record at).
    `sorted_params`: `params` as the sorted pairs an op keeps, where the caller has them."""
    trace = a._trace
    if trace.closed or trace.thread != threading.get_ident():
        raise TraceError(escaped_message(a))
    out = prim.impl(a.value, **params)
    if sorted_params is not None:
        params = sorted_params
    else:
        params = _op_params(params) if params else ()
    node = a.node
    if not prim.multiple_results:
        var = trace._record1(prim, (node,), params, out, 4)
        if prim in _SPREAD and _is_one(trace, node):
            trace.ones.add(var.id)
        return Tracer(trace, var, out)
    outs = list(out)
    out_vars = trace._record(prim, (node,), params, outs)
    return tuple(Tracer(trace, v, o) for v, o in zip(out_vars, outs))


def _bind_binary(prim, a, b):
    """`bind` of two operands, each a Tracer of one trace with a concrete value or a
    Python float/int (a Const), and no params; None where the general path is needed."""
    ta, tb = type(a), type(b)
    if ta is Tracer:
        trace = a._trace
        if tb is Tracer:
            if b._trace is not trace:
                return None
            bv, bn = b.value, b.node
            if type(bv) is Tracer:
                return None
        elif tb is float or tb is int:
            bv, bn = b, Const(b)
        else:
            return None
        av, an = a.value, a.node
        if type(av) is Tracer:
            return None
    elif tb is Tracer and (ta is float or ta is int):
        trace = b._trace
        bv, bn = b.value, b.node
        if type(bv) is Tracer:
            return None
        av, an = a, Const(a)
    else:
        return None
    if trace.closed or trace.thread != threading.get_ident():
        return None  # the general path raises
    if trace.ones and prim is _MULTIPLY:
        return None  # the general path may skip it (`_times_one`)
    out = prim.impl(av, bv)
    if prim.multiple_results:
        outs = list(out)
        out_vars = trace._record(prim, (an, bn), (), outs)
        return tuple(Tracer(trace, v, o) for v, o in zip(out_vars, outs))
    return Tracer(trace, trace._record1(prim, (an, bn), (), out, 4), out)


# Eager peephole: the reverse pass seeds `sum` with a broadcast 1, and rules multiply by it.
# `x * ones` is exactly x (NaN, inf and -0.0 included) when the shape and dtype are x's,
# so it is not computed nor recorded: the eager gradient skips a full-size multiply per use.
_MULTIPLY = P.ufunc_prim(np.multiply)
_SPREAD = (P.reshape, P.broadcast_to)


def _is_one(trace, atom) -> bool:
    if isinstance(atom, Const):
        v = atom.value
        return type(v) is not bool and not isinstance(v, np.bool_) and v == 1
    return atom.id in trace.ones


def _times_one(trace, args):
    a, b = args
    for one, x in ((a, b), (b, a)):
        if (type(one) is Tracer and one._trace is trace and type(one.node) is Var
                and one.node.id in trace.ones
                and type(x) is Tracer and x._trace is trace
                and np.broadcast_shapes(one.shape, x.shape) == x.shape
                and np.result_type(one.dtype, x.dtype) == x.dtype):
            return x
    return None


def is_traced(x) -> bool:
    """Whether `x` is a value being traced (inside `grad`, `trace`, `jit`, ...)."""
    return isinstance(x, Tracer)


class Tracer:
    """A value under tracing. Behaves like the ndarray it holds; records what is done to it."""

    __slots__ = ("_trace", "node", "value", "__weakref__")
    __array_priority__ = 1000

    def __init__(self, trace, var, value):
        self._trace = trace
        self.node = var
        self.value = value

    # -- static facts -------------------------------------------------------------------
    @property
    def shape(self):
        return self.node.shape

    @property
    def dtype(self):
        return self.node.dtype

    @property
    def ndim(self):
        return len(self.node.shape)

    @property
    def size(self):
        return int(np.prod(self.node.shape, dtype=np.int64))

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of unsized object (a 0-d traced value)")
        return self.shape[0]

    def __iter__(self):
        if not self.shape:
            raise TypeError("iteration over a 0-d traced value")
        return (self[i] for i in range(self.shape[0]))

    def __repr__(self):
        return f"Traced<{self.dtype}[{','.join(map(str, self.shape))}] %{getattr(self.node, 'id', '?')}>({self.value!r})"

    def __format__(self, spec):
        return format(concrete(self.value), spec)

    __hash__ = object.__hash__

    # -- Python looking at the value: concrete results, recorded as guards --------------
    def _concrete(self, kind, conv):
        result = conv(self.value)
        if isinstance(self.node, Var) and not self._trace.closed:
            self._trace.guard(kind, self, result)
        return result

    def __bool__(self):
        return self._concrete("bool", bool)

    def __int__(self):
        return self._concrete("int", int)

    def __float__(self):
        return self._concrete("float", float)

    def __complex__(self):
        return self._concrete("complex", complex)

    def __index__(self):
        if self.dtype.kind not in "iub" or self.shape:
            raise TypeError("only integer scalar traced values can be used as an index")
        return self._concrete("index", lambda v: int(v.__index__()) if not isinstance(v, Tracer)
                              else v.__index__())

    def item(self, *args):
        if args:
            return self[args if len(args) > 1 else args[0]].item()
        return self._concrete("item", lambda v: v.item())

    def tolist(self):
        return self._concrete("item", lambda v: v.tolist())

    def is_constant(self) -> bool:
        """True when the value depends on no input of its trace (a traced constant)."""
        node = self.node
        return isinstance(node, Const) or node.id in self._trace.const_ids

    def __array__(self, dtype=None, copy=None):
        if self.is_constant():  # nothing to drop: hand out the value
            return np.asarray(self.value, dtype=dtype)
        raise TraceError(
            f"a traced value was converted to a plain array at {user_loc() or 'unknown line'} "
            "(np.asarray/np.array/ndarray assignment), which would drop its gradient; keep it "
            "traced (use NumPy functions on it) or wrap it in tg.stop_gradient explicitly")

    # -- NEP 13 / 18 ----------------------------------------------------------------------
    # __array_ufunc__ and __array_function__ are installed by `handlers.py`.

    # -- in-place writes --------------------------------------------------------------------
    # __setitem__ and the augmented operators (x += v) are installed by `inplace.py`: they
    # record a pure op and rebind `node`/`value` of this object (and of its live views).


_PLAIN = (np.ndarray, np.generic, float, int, bool, complex)


def _binop(ufunc):
    prim = P.ufunc_prim(ufunc) if ufunc is not np.matmul else None

    # Operators on plain operands bind directly (NumPy's ufunc override machinery costs
    # microseconds per op); anything else goes through the ufunc and NEP 13 dispatch.
    def op(self, other):
        if prim is not None and (type(other) is Tracer or isinstance(other, _PLAIN)):
            return bind(prim, self, other)
        return ufunc(self, other)

    def rop(self, other):
        if prim is not None and isinstance(other, _PLAIN):
            return bind(prim, other, self)
        return ufunc(other, self)

    return op, rop


for _name, _uf in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
                   ("truediv", np.divide), ("pow", np.power), ("matmul", np.matmul),
                   ("mod", np.remainder), ("floordiv", np.floor_divide),
                   ("and", np.bitwise_and), ("or", np.bitwise_or), ("xor", np.bitwise_xor)]:
    _op, _rop = _binop(_uf)
    setattr(Tracer, f"__{_name}__", _op)
    setattr(Tracer, f"__r{_name}__", _rop)
for _name, _uf in [("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
                   ("ge", np.greater_equal), ("eq", np.equal), ("ne", np.not_equal)]:
    setattr(Tracer, f"__{_name}__", _binop(_uf)[0])
_NEGATIVE, _ABSOLUTE = P.ufunc_prim(np.negative), P.ufunc_prim(np.absolute)
Tracer.__neg__ = lambda self: bind(_NEGATIVE, self)  # what np.negative(self) records
Tracer.__pos__ = lambda self: self
Tracer.__abs__ = lambda self: bind(_ABSOLUTE, self)
Tracer.__invert__ = lambda self: np.logical_not(self) if self.dtype == bool else np.invert(self)
