"""The reverse pass: append backward ops to a tape, from the rule table.

`backward` walks the ops of a live Trace in reverse and calls each VJP rule on Tracers
of that same trace, so the rules' NumPy calls are recorded as new ops of the tape
(noted `d%out/d%in`). Symbolic zeros (None) skip dead branches; unbroadcasting,
accumulation of cotangents for values used many times, and dtype casts happen here
and nowhere else. Because the rules are traced like user code, tracing through
`backward` at an outer level gives second and higher derivatives.
"""

from __future__ import annotations

import operator

import numpy as np

from ..errors import NoDerivativeError
from ..ir import Const, Var, format_op
from ..rules import VJPS, VJPS_ALL
from ..trace import Trace, Tracer, bind
from ..trace import concrete as _concrete
from ..ir import prims as P


def active_vars(ops, wrt_ids) -> set:
    """Ids of vars that depend on any of `wrt_ids` through inexact values."""
    active = set(wrt_ids)
    add = active.add
    for op in ops:
        for a in op.inputs:
            if a.__class__ is Var and a.id in active:
                for v in op.outputs:
                    if v.dtype.kind in "fc":
                        add(v.id)
                break
    return active


def unbroadcast(trace: Trace, c, var):
    """Sum a cotangent back to `var`'s shape and cast it to `var`'s dtype."""
    shape = var.shape
    if type(c) is Tracer:
        node = c.node
        if node.shape == shape and node.dtype == var.dtype:
            return c  # the common case: nothing to do
    else:
        c = Tracer(trace, trace.atom(np.asarray(c)), np.asarray(c))
    return _unbroadcast_value(c, var)  # NumPy calls on a Tracer: recorded


def _pass_setup(trace: Trace, out, wrt: list, state, seed):
    """What a reverse pass (recorded or on values) starts from: -> (ops, wrt ids, their
    set, active var ids, cotangents, vars done by an earlier call, how cotangents are
    taken), or None where `out` does not depend on `wrt`. With `state` (see `backward`)
    successive calls share the op list, the cotangents and the vars already done."""
    if state is not None:
        ops = state.setdefault("ops", list(trace.tape.ops))
    else:
        ops = list(trace.tape.ops)
    wrt_ids = [w.id for w in wrt]
    active = active_vars(ops, wrt_ids)
    if not isinstance(out, Var) or out.id not in active:
        return None
    if state is None:
        ct, done, take = {out.id: seed}, (), dict.pop
    else:
        ct = state.setdefault("ct", {out.id: seed})
        done = state.setdefault("done", set())
        # cotangents stay for a later call, unless the caller says this is the last one
        take = dict.get if state.get("keep", True) else dict.pop
    return ops, wrt_ids, set(wrt_ids), active, ct, done, take


def backward(trace: Trace, out, wrt: list, seed=None, state: dict | None = None) -> list:
    """Cotangents of `wrt` (Vars of `trace`) for output `out` (a Var or Const), as Tracers
    of `trace` or None where the output does not depend on them. Appends the backward
    ops to `trace.tape`.

    `state` (a dict kept by the caller) lets successive calls for the same `out` and
    seed share work: a var's cotangent d out/d var does not depend on `wrt`, so a var
    made active by an earlier call already has its final cotangent, and a later call
    only adds what flows into the vars new to it (`g[1]` after `g[0]` in the Yota form)."""
    if seed is None and isinstance(out, Var):
        seed = Tracer(trace, Const(out.dtype.type(1)), out.dtype.type(1))
    setup = _pass_setup(trace, out, wrt, state, seed)
    if setup is None:
        return [None] * len(wrt)
    ops, wrt_ids, wrt_set, active, ct, done, take = setup
    values = trace.values
    d_out = f"d%{out.id}/d"
    saved = trace.note, trace.loc
    try:  # notes and lines are set directly: a context manager per rule costs microseconds
        for op in reversed(ops):
            outputs = op.outputs
            # a wrt var made by an op keeps its cotangent: differentiated as if independent
            if len(outputs) == 1:
                v = outputs[0]
                g = None if v.id in wrt_set else take(ct, v.id, None)
                if g is None:
                    continue
            else:
                gs = [None if v.id in wrt_set else take(ct, v.id, None) for v in outputs]
                if all(g is None for g in gs):
                    continue
            inputs = op.inputs
            todo = [i for i, a in enumerate(inputs)
                    if type(a) is Var and a.id in active and a.id not in done]
            if not todo:
                continue
            trace.loc = op.loc
            args = [a.value if type(a) is Const else Tracer(trace, a, values[a.id]) for a in inputs]
            if op.prim.multiple_results:
                g = tuple(g if g is not None else zeros_like_var(trace, v)
                          for g, v in zip(gs, outputs))
                ans = tuple([Tracer(trace, v, values[v.id]) for v in outputs])
            else:
                ans = Tracer(trace, v, values[v.id])
            params = dict(op.params) if op.params else _NO_PARAMS
            for i, c in _cotangents(op, todo, g, ans, args, params, trace, d_out):
                a = inputs[i]
                trace.note = f"{d_out}%{a.id}"
                if type(c) is not Tracer or c.node.shape != a.shape or c.node.dtype != a.dtype:
                    c = unbroadcast(trace, c, a)
                prev = ct.get(a.id)
                ct[a.id] = c if prev is None else prev + c
    finally:
        trace.note, trace.loc = saved
    if state is not None:
        done |= active
    return [ct.get(i) for i in wrt_ids]


_NO_PARAMS: dict = {}  # never written: `**params` makes a fresh dict per call


def _maker(op, makers, i):
    """The VJP maker for argument i of `op` (`makers`: its primitive's entry in VJPS), None
    where the rule declares no gradient through it; NoDerivativeError where it has none."""
    if makers is not None and i < len(makers):
        return makers[i]
    raise NoDerivativeError(
        f"no derivative rule for primitive '{op.prim.name}' (argument {i}), needed at "
        f"{format_op(op)}" + (f" ({op.loc})" if op.loc else ""))


def _cotangents(op, todo, g, ans, args, params, trace, d_out):
    prim = op.prim
    if prim in VJPS_ALL:
        trace.note = f"{d_out}({', '.join(repr(op.inputs[i]) for i in todo)})"
        cs = VJPS_ALL[prim](g, ans, *args, **params)
        for i in todo:
            if cs[i] is not None:
                yield i, cs[i]
        return
    makers = VJPS.get(prim)
    for i in todo:
        maker = _maker(op, makers, i)
        if maker is None:
            continue  # declared: no gradient through this argument
        trace.note = f"{d_out}{op.inputs[i]!r}"
        c = maker(g, ans, *args, **params)
        if c is not None:
            yield i, c


def backward_values(trace: Trace, out, wrt: list, state: dict | None = None) -> list:
    """`backward` on concrete values: the same rules, in the same order, called on the
    values the trace holds instead of its Tracers, so nothing is recorded (HIPS autograd's
    way). -> cotangent values of `wrt`, or None where the output does not depend on them.

    For a finished top-level trace whose gradients are wanted as values (`g[i]` of the
    Yota form): recording every backward op costs microseconds per op, and nothing reads
    those ops (`g.tape` runs its own recorded pass). Rules see 0-d arrays where a trace
    holds NumPy scalars, as they would see 0-d Tracers. `state` as for `backward`."""
    setup = _pass_setup(trace, out, wrt, state, out.dtype.type(1) if isinstance(out, Var) else None)
    if setup is None:
        return [None] * len(wrt)
    ops, wrt_ids, wrt_set, active, ct, done, take = setup
    values = trace.values
    generic, ndarray = np.generic, np.ndarray
    for op in reversed(ops):
        outputs = op.outputs
        if len(outputs) == 1:
            v = outputs[0]
            if v.id in wrt_set:
                continue
            g = take(ct, v.id, None)
            if g is None:
                continue
        else:
            gs = [None if v.id in wrt_set else take(ct, v.id, None) for v in outputs]
            if all(g is None for g in gs):
                continue
        inputs = op.inputs
        # rules see 0-d arrays for NumPy scalars (see `_array`)
        if len(inputs) == 1:  # the common case, without the loop
            a = inputs[0]
            if type(a) is Const or a.id not in active or a.id in done:
                continue
            x = values[a.id]
            if x.__class__ is not ndarray and isinstance(x, generic):
                x = np.asarray(x)
            args = [x]
            todo = _FIRST
        else:
            todo = []
            args = []
            for i, a in enumerate(inputs):
                if type(a) is Const:
                    args.append(a.value)
                    continue
                x = values[a.id]
                args.append(np.asarray(x) if isinstance(x, generic) else x)
                if a.id in active and a.id not in done:
                    todo.append(i)
            if not todo:
                continue
        prim = op.prim
        if prim.multiple_results:
            g = tuple(_array(g) if g is not None else np.full(v.shape, 0, dtype=v.dtype)
                      for g, v in zip(gs, outputs))
            ans = tuple([_array(values[v.id]) for v in outputs])
        else:
            if g.__class__ is not ndarray and isinstance(g, generic):
                g = np.asarray(g)
            ans = values[v.id]
            if ans.__class__ is not ndarray and isinstance(ans, generic):
                ans = np.asarray(ans)
            if prim is _MULTIPLY and VJPS.get(prim) is _MULTIPLY_RULES and _is_ones(g):
                # the rules are g * y and g * x, and `ones * y` is exactly y (as in
                # trace._times_one): no full-size multiply by the seed of a sum
                for i in todo:
                    y = args[1 - i]
                    if (isinstance(y, np.ndarray) and y.shape == v.shape
                            and np.result_type(g.dtype, y.dtype) == y.dtype):
                        _accumulate(ct, inputs[i], y)
                    else:
                        _accumulate(ct, inputs[i], _MULTIPLY_RULES[i](g, ans, *args))
                continue
        params = dict(op.params) if op.params else _NO_PARAMS
        rule = VJPS_ALL.get(prim)
        if rule is not None:
            cs = rule(g, ans, *args, **params)
            for i in todo:
                if cs[i] is not None:
                    _accumulate(ct, inputs[i], cs[i])
            continue
        makers = VJPS.get(prim)
        for i in todo:
            maker = _maker(op, makers, i)
            if maker is None:
                continue  # declared: no gradient through this argument
            c = maker(g, ans, *args, **params) if params else maker(g, ans, *args)
            if c is None:
                continue
            a = inputs[i]
            if (c.__class__ is not ndarray or c.shape != a.shape or c.dtype != a.dtype):
                _accumulate(ct, a, c)  # not an array of a's type: converted there
                continue
            prev = ct.get(a.id)
            ct[a.id] = c if prev is None else prev + c
    if state is not None:
        done |= active
    return [ct.get(i) for i in wrt_ids]


_FIRST = (0,)
_MULTIPLY = P.ufunc_prim(np.multiply)
_MULTIPLY_RULES = VJPS.get(_MULTIPLY)


def _array(v):
    """A NumPy scalar as a 0-d array: what a rule sees of a 0-d Tracer (np.isscalar is
    False, it is no Python float)."""
    return np.asarray(v) if isinstance(v, np.generic) else v


def _is_ones(g) -> bool:
    """Whether the array `g` is all ones, seen cheaply: one value broadcast (all strides 0)."""
    return (isinstance(g, np.ndarray) and g.size > 1 and not any(g.strides)
            and g.dtype.kind not in "bO" and g.flat[0] == 1)


def _accumulate(ct: dict, var: Var, c) -> None:
    """Add cotangent value `c` for `var` into `ct`, unbroadcast and cast to var's type."""
    if not isinstance(c, (np.ndarray, np.generic)):
        c = np.asarray(c)
    if c.shape != var.shape or c.dtype != var.dtype:
        c = _unbroadcast_value(c, var)
    prev = ct.get(var.id)
    ct[var.id] = c if prev is None else prev + c


def _unbroadcast_value(c, var):
    """Sum `c` (a value, or a Tracer for `unbroadcast`) back to `var`'s shape and cast it."""
    shape = var.shape
    cshape = c.shape
    if len(cshape) < len(shape):  # a rule may return a cotangent that broadcasts up
        c = np.broadcast_to(c, np.broadcast_shapes(tuple(cshape), tuple(shape)))
        cshape = c.shape
    if tuple(cshape) != tuple(shape):
        lead = len(cshape) - len(shape)
        axes = tuple(range(lead)) + tuple(
            i + lead for i, s in enumerate(shape) if s == 1 and cshape[i + lead] != 1)
        if axes:
            c = np.sum(c, axis=axes, keepdims=False)
        if tuple(np.shape(c)) != tuple(shape):
            c = np.reshape(c, shape)
    return cast_like(c, var)


def cast_like(c, var):
    """`c` (a value or Tracer) in `var`'s dtype; a complex `c` for a real var keeps its
    real part (autograd's convention)."""
    if c.dtype != var.dtype:
        if c.dtype.kind == "c" and var.dtype.kind != "c":
            c = np.real(c)
        if c.dtype != var.dtype:
            c = c.astype(var.dtype)
    return c


def captured_arrays(trace: Trace) -> list:
    """The arrays `trace` captured as constants (globals, closures), as the user's code holds
    them: a cotangent may be one (d/dx sum(x * C) is C itself)."""
    return [x for _, x in trace._consts.values()]


def owned_values(trace: Trace, cts: list, inputs: list) -> list:
    """`owned` on values: a gradient sharing memory with an input leaf, an array `trace`
    captured, or another gradient, or read-only, is copied."""
    arrays = [a for a in inputs if isinstance(a, np.ndarray)] + captured_arrays(trace)
    out = []
    for v in cts:
        if isinstance(v, np.ndarray) and (not v.flags.writeable or any(
                np.may_share_memory(v, a) for a in arrays)):
            v = np.array(v, copy=True)
        if isinstance(v, np.ndarray):
            arrays.append(v)
        out.append(v)
    return out


_READS: dict = {}  # rule -> (reads ans, input positions read or None for all)
_ALL = (True, None)
_FRAME_NAMES = frozenset({"locals", "vars", "eval", "exec", "sys", "inspect"})


def rule_reads(fn) -> tuple:
    """Which of its arguments a VJP rule can read: (`ans`?, input positions read, or None
    for all). Read off the rule's bytecode: a parameter the code never loads (nor a nested
    function captures) is never read. Anything but a plain function, a `*args` that is
    loaded, or a look at the frame (`locals()`, ...) counts as reading everything."""
    try:
        return _READS[fn]
    except KeyError:
        pass
    except TypeError:
        return _ALL
    r = _ALL
    code = getattr(fn, "__code__", None)
    if type(fn) is _FUNCTION and code is not None and code.co_argcount >= 2 and not (
            _FRAME_NAMES & set(code.co_names)):
        import dis

        read = set(code.co_cellvars)
        for ins in dis.get_instructions(code):
            if ins.opname.startswith("LOAD_") or ins.opname.startswith("DELETE_"):
                val = ins.argval
                if isinstance(val, str):
                    read.add(val)
                elif isinstance(val, tuple):
                    read.update(x for x in val if isinstance(x, str))
        names = code.co_varnames[:code.co_argcount]
        star = code.co_varnames[code.co_argcount + code.co_kwonlyargcount] if (
            code.co_flags & _CO_VARARGS) else None
        if star is None or star not in read:
            shape_only = getattr(fn, "shape_only", ())
            r = (names[1] in read, frozenset(i for i, n in enumerate(names[2:])
                                             if n in read and i not in shape_only))
    _READS[fn] = r
    return r


_FUNCTION = type(rule_reads)
_CO_VARARGS = 0x04
_RELEASE_BYTES = 1 << 18  # only arrays this big are worth dropping early
_NBYTES = operator.attrgetter("nbytes")


def release_unread(trace: Trace, keep):
    """Drop (set to None) the values of `trace` that no VJP rule can read, so a large
    forward intermediate nobody will look at again is freed before the reverse pass
    allocates its own arrays (as HIPS autograd's closures keep only what a rule uses).

    For a finished top-level trace (`core.LazyGrads`). `keep`: ids to keep whatever the
    rules read (the output). Inputs are always kept; so is everything an op without a
    rule touches. An op with no inexact output never gets a cotangent, so its rule never
    runs. A rule is called with None for a dropped value it does not read.
    -> the `rule_read_ids` analysis where it made one (for `own_inputs`), else None."""
    values = trace.values
    try:  # a C loop first: a long trace of small arrays (an RNN) pays microseconds
        if max(map(_NBYTES, values.values()), default=0) < _RELEASE_BYTES:
            return None
    except AttributeError:  # a Python scalar
        pass
    big = [k for k, x in values.items()
           if x.__class__ is np.ndarray and x.nbytes >= _RELEASE_BYTES]
    if not big:
        return None
    reads = rule_read_ids(trace)
    need, shaped = set(reads[0]), reads[1]
    need.update(keep)
    need.update(v.id for v in trace.tape.inputs)
    for k in big:
        if k not in need:
            x = values[k]
            # a rule that reads only the shape gets a stand-in of no memory
            values[k] = (np.broadcast_to(np.zeros((), x.dtype), x.shape) if k in shaped
                         else None)
    return reads


_OWN_ALL_BYTES = 1 << 20  # input-rooted values up to this much in all: copied without analysis


def own_inputs(trace: Trace, consts: bool = False, reads=None) -> None:
    """Give a finished top-level trace its own copies of the input arrays (and views of
    them) that VJP rules may read. `g[i]` of the Yota form runs its reverse pass when read,
    and a training loop writes its parameters in place in between (`W -= lr * g[0]`, then
    `g[1]`, or weight decay before reading `g`): rules reading the caller's arrays then
    gave gradients of other weights, silently. Up to `_OWN_ALL_BYTES` all such values are
    copied; above it, only those `rule_read_ids` says a rule may read (W3: X, W1, W2 and
    y, about 75 us against ~1.1 ms for the call). Captured globals are copied only with
    `consts` (`make_vjp`/`make_jvp`, whose functions run later, as JAX keeps residuals).
    `reads`: the trace's `rule_read_ids`, where the caller has it (`release_unread`)."""
    tape = trace.tape
    values = trace.values
    roots = {}  # the arrays owning the inputs' memory (an input may be a view itself)
    owners = [v.id for v in tape.inputs]
    if consts:
        owners += [op.outputs[0].id for op in tape.ops if op.prim is P.const]
    for k in owners:
        x = values.get(k)
        if isinstance(x, np.ndarray):
            r = _owner(x)
            roots[id(r)] = r
    if not roots:
        return
    rooted = []
    total = 0
    inputs = set(owners)
    for k, x in values.items():  # the inputs, and views (a fresh result has no base)
        if (isinstance(x, np.ndarray) and x.nbytes and (x.base is not None or k in inputs)
                and id(_owner(x)) in roots):
            rooted.append(k)
            total += x.nbytes
    if not rooted:
        return
    if total > _OWN_ALL_BYTES:
        need = (reads or rule_read_ids(trace))[0]
        rooted = [k for k in rooted if k in need]
    for k in rooted:
        values[k] = own_copy(values[k])


def own_copy(a):
    """A copy of array `a` that keeps its zero strides: a broadcast (a sum's cotangent, a
    `broadcast_to` of an input) copies its distinct elements only and stays a broadcast,
    which `fold` reads as one uniform value (a uniform matrix times y -> column sums)."""
    if a.size > 1 and 0 in a.strides:
        idx = tuple(slice(0, 1) if st == 0 else slice(None) for st in a.strides)
        return np.broadcast_to(a[idx].copy(), a.shape)
    return np.array(a, copy=True)


def _owner(x):
    """The ndarray at the end of `x`'s chain of bases (NumPy points a view at the array
    owning the memory; one wrapping a foreign buffer ends the chain)."""
    while isinstance(x.base, np.ndarray):
        x = x.base
    return x


def rule_read_ids(trace: Trace) -> tuple:
    """-> (ids of the values some VJP rule of `trace` may read, ids some rule reads only the
    shape of), from the rules' bytecode (`rule_reads`)."""
    inputs_ids = {v.id for v in trace.tape.inputs}
    need = set()
    shaped = set()  # ids some rule reads the shape of (`shape_only`: positions, on the rule)
    for op in trace.tape.ops:
        outputs = op.outputs
        for v in outputs:
            if v.dtype.kind in "fc":
                break
        else:
            continue
        prim = op.prim
        fn = VJPS_ALL.get(prim)
        shape_only = ()
        if fn is not None:
            ans, pos = rule_reads(fn)
        else:
            makers = VJPS.get(prim)
            if makers is None:
                ans, pos = _ALL
            else:
                ans, pos = False, frozenset()
                inputs = op.inputs
                for i, m in enumerate(makers):
                    if m is None or i >= len(inputs):
                        continue
                    x = inputs[i]  # a maker runs only for an argument that can be active
                    if type(x) is not Var or (x.dtype.kind not in "fc" and x.id not in inputs_ids):
                        continue
                    reads_ans, p = rule_reads(m)
                    shape_only += tuple(getattr(m, "shape_only", ()))
                    ans = ans or reads_ans
                    pos = None if pos is None or p is None else pos | p
        if ans:
            need.update(v.id for v in outputs)
        for i, a in enumerate(op.inputs):
            if type(a) is Var:
                if pos is None or i in pos:
                    need.add(a.id)
                elif shape_only and i in shape_only:
                    shaped.add(a.id)
    return need, shaped


def zeros_like_var(trace: Trace, var) -> Tracer:
    """An explicit zero gradient, recorded as a `full` op."""
    out = np.full(var.shape, 0, dtype=var.dtype)
    v = trace._record(P.full, (), (("dtype", var.dtype), ("fill", 0), ("shape", var.shape)), [out])[0]
    return Tracer(trace, v, out)


def owned(trace: Trace, cts: list, inputs: list) -> list:
    """Gradients as users get them: fresh, writable arrays. A cotangent that is an input
    (d/dx of x*y is y itself), a read-only broadcast, or shared with another gradient
    gets an explicit `copy` op: `tg.update` writes leaves in place, and an aliased
    gradient would then change under it. So does one that is a captured global (d/dx of
    sum(x * C) is C itself: `g *= 0.5` wrote the user's C)."""
    arrays = [a for a in (_concrete(x) for x in inputs) if isinstance(a, np.ndarray)]
    arrays += captured_arrays(trace)
    out = []
    for c in cts:
        v = _concrete(c.value) if c is not None else None
        if isinstance(v, np.ndarray) and (not v.flags.writeable or any(
                np.may_share_memory(v, a) for a in arrays)):
            saved = trace.note
            trace.note = "a fresh array for the caller"
            try:
                c = bind(P.copy, c)
            finally:
                trace.note = saved
            v = _concrete(c.value)
        if isinstance(v, np.ndarray):
            arrays.append(v)
        out.append(c)
    return out
