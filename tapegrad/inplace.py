"""In-place writes on traced arrays, functionalised: `x[idx] = v`, `x[mask] *= 2`, `x += v`.

A write records a pure op (`index_update` for `x[idx] = v`, the ufunc itself for `x += v`)
and rebinds the written Tracer object (`node`, `value`) to its result, so every Python name
bound to that object sees the new value, as with NumPy.

Views. NumPy's views share memory with their base; ours are separate values. We record
which user-visible tracers are views: the result of a NumPy call or index whose op chain
back to an argument is only view ops (basic `getitem`, `reshape`, `transpose`,
`broadcast_to`, `real`, `imag`, `flip`) and whose concrete value really shares memory
with the argument's (so `x.T.reshape(-1)`, a copy in NumPy, is not a view here either).
Writing to a base re-derives its live views from the new base (their chain is replayed);
writing to a view writes through to its base (the chain inverted: `index_update`,
inverse `reshape`/`transpose`), then re-derives the base's other views. Read-only NumPy
views (`broadcast_to`) refuse writes with NumPy's ValueError.

Refused with TraceError rather than silently different: writes to a traced *input* of the
function (the transforms differentiate w.r.t. the input node; copy it first), writes to a
value of an enclosing trace from inside an inner one, and a plain ndarray assigned a traced
value (`B[:2, :2] = A` with `B = np.zeros(...)`: NumPy converts `A` to a plain array, there
is no hook), where the message suggests `np.zeros(..., like=A)`, which makes `B` traced.
`x += v` on an input without live views keeps the old meaning: the name is rebound.
"""

from __future__ import annotations

import bisect
import dis
import sys
import weakref

import numpy as np

from . import handlers as H
from .errors import TraceError
from .ir import prims as P
from .rules.index_update import index_update
from .trace import _PKG_DIR, Tracer, _stack, bind, user_loc
from .trace import concrete as _concrete

_VIEW_PRIMS = {"getitem", "reshape", "transpose", "broadcast_to", "real", "imag", "flip"}
_READ_ONLY = {"broadcast_to"}

# Keyed by id(): a Tracer's == is np.equal, so weak dictionaries (which compare keys) can't
# hold them. Weakref callbacks drop an entry when its Tracer dies.
_view_of: dict = {}  # id(view) -> (ref(view), ref(root), chain from root)
_views: dict = {}  # id(root) -> (ref(root), [ref(view)])


def _view_entry(t):
    e = _view_of.get(id(t))
    return e if e is not None and e[0]() is t else None


def _views_of(t) -> list:
    e = _views.get(id(t))
    return e[1] if e is not None and e[0]() is t else []


def fresh(t):
    """A copy of `t`, as far as later writes go: a new Tracer object, on the innermost trace
    (writable there), with a node of its own when `t` is an input (inputs are not written)."""
    if not isinstance(t, Tracer):
        return t
    stack = _stack()
    if stack and t._trace is not stack[-1] and not t._trace.closed:
        inner = stack[-1]
        return Tracer(inner, inner.atom(t), t)
    if t.node in t._trace.tape.inputs:
        return bind(P.astype, t, dtype=t.dtype)
    return Tracer(t._trace, t.node, t.value)


# -- recording views -----------------------------------------------------------------------------


def _producer(tape, var):
    # ops are appended in order of their (increasing) output ids, so the producer is found
    # by bisection: a view of an input would otherwise walk the whole tape, per view traced
    ops = tape.ops
    i = len(ops)
    if i and _first_id(ops[-1]) > var.id:
        i = bisect.bisect_right(ops, var.id, key=_first_id)
    while i > 0:
        i -= 1
        op = ops[i]
        if op.outputs and op.outputs[0].id <= var.id:
            return op if var in op.outputs else None
    return None


def _first_id(op):
    return op.outputs[0].id if op.outputs else -1


def _chain(r, bases):
    """(base, [(prim, params)]) if `r` is a view of one of `bases` through view ops, else None."""
    tape, node, chain = r._trace.tape, r.node, []
    while True:
        for b in bases:
            if b._trace is r._trace and b.node == node:
                return (b, chain[::-1]) if chain else None
        op = _producer(tape, node)
        if op is None or op.prim.name not in _VIEW_PRIMS or len(op.inputs) != 1:
            return None  # getitem with index arrays is advanced indexing: a copy
        chain.append((op.prim, op.kw))
        node = op.inputs[0]
        if not hasattr(node, "id"):
            return None


def note_views(out, args) -> None:
    """Register the Tracers in `out` that NumPy would make views of a Tracer in `args`."""
    if type(out) is Tracer:
        ops = out._trace.tape.ops
        last = ops[-1] if ops else None
        if (last is not None and last.outputs and last.outputs[0] is out.node
                and last.prim.name not in _VIEW_PRIMS):
            return  # just made by a copying op (the common case): no view of anything
    outs = out if isinstance(out, (list, tuple)) else (out,)
    outs = [o for o in outs if type(o) is Tracer]
    if not outs:
        return
    bases = []
    for a in args:
        if type(a) is Tracer:
            bases.append(a)
        elif isinstance(a, (list, tuple)):
            bases.extend(b for b in a if type(b) is Tracer)
    if not bases:
        return
    for r in outs:
        if any(r is b for b in bases):
            continue
        found = _chain(r, bases)
        if found is None:
            continue
        base, chain = found
        if not np.may_share_memory(_concrete(r.value), _concrete(base.value)):
            continue  # NumPy would copy here (e.g. reshape of a transpose)
        entry = _view_entry(base)
        root = entry[1]() if entry else None
        if root is not None:
            chain = entry[2] + chain
        else:
            root = base
        _view_of[id(r)] = (weakref.ref(r, lambda _, k=id(r): _view_of.pop(k, None)),
                           weakref.ref(root), chain)
        if not _views_of(root):
            _views[id(root)] = (weakref.ref(root, lambda _, k=id(root): _views.pop(k, None)), [])
        refs = _views[id(root)][1]
        refs.append(weakref.ref(r))
        if len(refs) > 32:
            refs[:] = [w for w in refs if w() is not None]


def _tracking(fn):
    def wrapped(*args, **kwargs):
        out = fn(*args, **kwargs)
        note_views(out, args)
        return out

    wrapped.__name__ = getattr(fn, "__name__", "wrapped")
    wrapped.__doc__ = getattr(fn, "__doc__", None)
    return wrapped


# NumPy functions that may hand back their argument itself (a view or the same array);
# any other function returning an argument object returns a copy in NumPy.
_SAME_OK = {np.reshape, np.ravel, np.transpose, np.squeeze, np.expand_dims, np.asarray,
            np.asanyarray, np.ascontiguousarray, np.atleast_1d, np.atleast_2d, np.atleast_3d,
            np.swapaxes, np.moveaxis, np.real, np.imag, np.broadcast_to, np.shape, np.ndim,
            np.size}


def _install() -> None:
    array_function = Tracer.__array_function__

    def _array_function(self, func, types, args, kwargs):
        if func in _LIKE:  # np.zeros(shape, like=traced): NEP 35 hands the call to us
            arr = func(*args, **kwargs)
            trace = _stack()[-1]
            return Tracer(trace, trace.atom(arr), arr)
        out = array_function(self, func, types, args, kwargs)
        if type(out) is Tracer and func not in _SAME_OK:
            for a in args:  # a loop, not any(genexpr): this runs on every traced call
                if out is a:
                    return fresh(out)
        note_views(out, args)
        return out

    Tracer.__array_function__ = _array_function
    # ufuncs: handlers' __array_ufunc__ hands back a `fresh` Tracer itself where a ufunc
    # returns an input (np.positive): a wrapper here costs a call per traced op
    Tracer.__getitem__ = _tracking(Tracer.__getitem__)
    Tracer.reshape = _tracking(Tracer.reshape)
    Tracer.transpose = _tracking(Tracer.transpose)
    for name in ("T", "real", "imag"):
        prop = getattr(Tracer, name)
        setattr(Tracer, name, property(_tracking(prop.fget)))
    for name in ("__float__", "__complex__"):
        setattr(Tracer, name, _refusing_store(getattr(Tracer, name)))
    Tracer.copy = lambda self, order="C": fresh(self)
    Tracer.flatten = lambda self, order="C": fresh(H.reshape(self, (-1,), order))  # a copy
    Tracer.__pos__ = fresh
    astype = Tracer.astype
    Tracer.astype = lambda self, dtype, *a, copy=True, **k: (
        fresh(self) if copy and np.dtype(dtype) == self.dtype else astype(self, dtype, *a, **k))
    Tracer.__setitem__ = setitem
    Tracer.__array__ = _array
    Tracer.stale = False  # see _Stale
    for name, ufunc in _AUGMENTED.items():
        setattr(Tracer, f"__i{name}__", _augmented(ufunc))


# -- writing ------------------------------------------------------------------------------------


def _check_writable(t, what: str) -> None:
    trace = t._trace
    stack = _stack()
    if trace.closed or not stack or stack[-1] is not trace:
        raise TraceError(f"{what} on a value of an enclosing trace inside an inner one (at "
                         f"{user_loc()}); write to a value made inside the inner function instead")
    if t.node in trace.tape.inputs:
        raise TraceError(f"{what} on a traced input of the function (at {user_loc()}): the "
                         "derivative is taken w.r.t. the input itself; write to a copy "
                         "(x = x.copy()) instead")


def _rebind(t, new) -> None:
    t.node, t.value = new.node, new.value


def _replay(x, chain):
    for prim, kw in chain:
        x = bind(prim, x, **kw)
    return x


def _refresh(root, skip=None) -> None:
    """Re-derive every live view of `root` from its new value."""
    refs = _views_of(root)
    if not refs:
        return
    alive = []
    for ref in refs:
        w = ref()
        if w is None:
            continue
        alive.append(ref)
        if w is not skip:
            _rebind(w, _replay(root, _view_entry(w)[2]))
    refs[:] = alive


def _write_through(root, chain, new):
    """The root after its view (root -> chain) took the value `new`."""
    vals = [root]
    for prim, kw in chain[:-1]:
        vals.append(bind(prim, vals[-1], **kw))
    for (prim, kw), base in zip(reversed(chain), reversed(vals)):
        name = prim.name
        if name in _READ_ONLY:
            raise ValueError("assignment destination is read-only")
        if name == "getitem":
            new = bind(index_update, base, new, index=kw["index"])
        elif name == "reshape":
            new = bind(P.reshape, new, shape=tuple(base.shape))
        elif name == "transpose":
            new = bind(P.transpose, new, axes=tuple(int(i) for i in np.argsort(kw["axes"])))
        elif name == "flip":
            new = bind(P.flip, new, **kw)
        elif name == "real":
            new = new + 1j * np.imag(base) if base.dtype.kind == "c" else new
        elif name == "imag":
            if base.dtype.kind != "c":
                raise ValueError("assignment destination is read-only")
            new = np.real(base) + 1j * new
        if new.dtype != base.dtype:
            new = new.astype(base.dtype)
    return new


def assign(t, new) -> None:
    """Make the Tracer object `t` hold `new` (same shape and dtype), keeping aliases in step."""
    entry = _view_entry(t)
    root = entry[1]() if entry else None
    if root is not None:
        _check_writable(root, "a write through a view")
        _rebind(root, _write_through(root, entry[2], new))
        _rebind(t, _replay(root, entry[2]))
        _refresh(root, skip=t)
    else:
        _rebind(t, new)
        _refresh(t)


def setitem(self, key, value):
    """`x[key] = value` on a traced x: records `index_update` and rebinds x (and its aliases)."""
    _check_writable(self, "index assignment (x[...] = v)")
    template, arrays = H.encode_index(key)
    new = bind(index_update, self, value, *arrays, index=template)
    if new._trace is not self._trace:
        raise TraceError(f"index assignment of a value of an inner trace into a value of an "
                         f"enclosing one (at {user_loc()}) cannot be recorded")
    assign(self, new)


_AUGMENTED = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "truediv": np.divide,
              "floordiv": np.floor_divide, "mod": np.remainder, "pow": np.power,
              "matmul": np.matmul}


def _augmented(ufunc):
    def op(self, other):
        new = ufunc(self, other)
        if not isinstance(new, Tracer):
            return NotImplemented
        if tuple(new.shape) != tuple(self.shape):
            raise ValueError(f"non-broadcastable output operand with shape {tuple(self.shape)} "
                             f"doesn't match the broadcast shape {tuple(new.shape)}")
        if new.dtype != self.dtype:
            if not np.can_cast(new.dtype, self.dtype, "same_kind"):
                raise TypeError(f"Cannot cast ufunc '{ufunc.__name__}' output from {new.dtype!r} "
                                f"to {self.dtype!r} with casting rule 'same_kind'")
            new = new.astype(self.dtype)
        trace = self._trace
        if self.node in trace.tape.inputs and not _views_of(self) and _view_entry(self) is None:
            # an input without views: rebind the name (the input stays the input, as in
            # autograd and JAX). Other names still holding the input (aliases, dict entries,
            # attributes) would see its old value where NumPy shows the new one: they go
            # stale, and using one raises
            stale(self, f"x {_SYMBOL[ufunc]}= v at {user_loc() or 'unknown line'}")
            return new
        if new._trace is not trace:
            raise TraceError(f"in-place update of a value of an enclosing trace with a value of "
                             f"an inner one (at {user_loc()}) cannot be recorded")
        _check_writable(self, f"in-place {ufunc.__name__} (x {_SYMBOL[ufunc]}= v)")
        assign(self, new)
        return self

    return op


class _Stale(Tracer):
    """A traced input after `x op= v` rebound the name `x` to the result."""

    __slots__ = ()
    stale = True
    _INTERNAL = frozenset({"_trace", "node", "value", "stale", "why", "shape", "dtype", "ndim",
                           "size", "__class__", "__dict__", "__slots__", "_INTERNAL"})

    def __getattribute__(self, name):
        if name in _Stale._INTERNAL:
            return object.__getattribute__(self, name)
        raise _stale_error(self)

    def __repr__(self):
        return f"<stale traced input %{object.__getattribute__(self, 'node').id}>"


_WHY: dict = {}  # id(stale tracer) -> where its name was rebound (weak by id: short-lived)


def _stale_error(t) -> TraceError:
    where = _WHY.get(id(t), "an in-place update")
    return TraceError(
        f"this traced input was updated in place ({where}), which rebinds that name to a "
        "new value and leaves the input as it was; this other reference to it (an alias, a "
        "dict entry or attribute) would see the old value where NumPy shows the new one. "
        "Write x = x.copy() before updating it, or use the updated name")


def _raiser(name):
    def method(self, *args, **kwargs):
        raise _stale_error(self)

    method.__name__ = name
    return method


def stale(t, why: str) -> None:
    """Make the Tracer object `t` refuse every use (its dunders and attributes raise),
    keeping `node`/`value` for tapegrad's own bookkeeping (the gradient is still taken
    with respect to this input)."""
    if not _STALE_READY:
        _install_stale()
    if len(_WHY) > 1000:
        _WHY.clear()
    _WHY[id(t)] = why
    t.__class__ = _Stale


_STALE_READY = []


def _install_stale() -> None:
    """Give `_Stale` a raising version of every special method Tracer has (run once, on
    first use: handlers install some of Tracer's after this module is imported)."""
    _STALE_READY.append(True)
    keep = {"__init__", "__new__", "__getattribute__", "__setattr__", "__delattr__", "__repr__",
            "__hash__", "__eq__", "__ne__", "__class__", "__init_subclass__", "__subclasshook__",
            "__reduce__", "__reduce_ex__", "__sizeof__", "__dir__", "__format__", "__str__",
            "__weakref__", "__slots__", "__doc__", "__module__", "__array_priority__"}
    for klass in Tracer.__mro__[:-1]:
        for name, attr in vars(klass).items():
            if name.startswith("__") and name.endswith("__") and name not in keep \
                    and callable(attr) and name not in vars(_Stale):
                setattr(_Stale, name, _raiser(name))
    for name in ("__eq__", "__ne__", "__str__", "__format__"):
        setattr(_Stale, name, _raiser(name))
    _Stale.__hash__ = object.__hash__


_SYMBOL = {np.add: "+", np.subtract: "-", np.multiply: "*", np.divide: "/", np.floor_divide: "//",
           np.remainder: "%", np.power: "**", np.matmul: "@"}


# -- plain arrays given traced values -----------------------------------------------------------

_STORE = {dis.opmap[n] for n in ("STORE_SUBSCR", "STORE_SLICE") if n in dis.opmap}
_plain_array = Tracer.__array__


def _storing_subscript() -> bool:
    """Is the innermost user frame executing `a[...] = ...` right now?"""
    f = sys._getframe(2)
    while f is not None and (f.f_code.co_filename.startswith(_PKG_DIR)
                             or "numpy" in f.f_code.co_filename):
        f = f.f_back
    try:
        return f is not None and f.f_code.co_code[f.f_lasti] in _STORE
    except (IndexError, AttributeError):
        return False


def _store_error() -> TraceError:
    return TraceError(
        f"a traced value was assigned into a plain ndarray at {user_loc() or 'unknown line'} "
        "(B[...] = traced): NumPy would copy its numbers and drop the gradient. Make B "
        "traced first, e.g. B = np.zeros(shape, like=A) with A a traced value, then "
        "B[...] = A is recorded")


def _array(self, dtype=None, copy=None):
    if self.is_constant():
        return _plain_array(self, dtype, copy)
    if _storing_subscript():
        raise _store_error()
    return _plain_array(self, dtype, copy)


def _refusing_store(conv):
    """float()/complex() of a traced scalar, refused where NumPy calls it to store the
    number into a plain array (`B[i] = x[0]`): the gradient would be dropped silently."""
    def method(self):
        if self.dtype.kind in "fc" and not self.is_constant() and _storing_subscript():
            # NumPy reports any error raised here as "setting an array element with a
            # sequence"; the trace re-raises this one as it closes (`new_trace.__exit__`)
            self._trace.dropped = err = _store_error()
            raise err
        return conv(self)

    method.__name__ = conv.__name__
    return method


_LIKE = {np.zeros, np.ones, np.empty, np.full, np.eye, np.identity}


_install()
