"""The AutoGrad.jl interface: `Param`, `diff`, `value`, `grad(result, param)`.

A Param behaves like its value outside `diff`. Inside `diff`, the first NumPy use of a
Param makes it an input of the trace, so `grad(result, param)` can look it up.
"""

from __future__ import annotations

import threading

import numpy as np

from .passes.reverse import backward, owned
from .trace import Tracer, new_trace

_active = threading.local()


class Param:
    """A differentiable parameter, AutoGrad.jl style: `x = tg.Param(np.array([1., 2.]))`."""

    __array_priority__ = 2000

    def __init__(self, value):
        self.value = np.asarray(value, dtype=float) if not isinstance(value, np.ndarray) else value

    def _current(self):
        tr = getattr(_active, "trace", None)
        if tr is None or tr.closed:
            return self.value
        t = tr.params.get(id(self))
        if t is None:
            t = tr.params[id(self)] = (self, tr.new_input(self.value))
        return t[1]

    def __array__(self, dtype=None, copy=None):
        if getattr(_active, "trace", None) is not None:
            return self._current().__array__()
        return np.asarray(self.value, dtype=dtype)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = [x._current() if isinstance(x, Param) else x for x in inputs]
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        def conv(a):
            if isinstance(a, Param):
                return a._current()
            if isinstance(a, (list, tuple)):
                return type(a)(conv(x) for x in a)
            return a

        return func(*conv(args), **{k: conv(v) for k, v in kwargs.items()})

    def __getitem__(self, key):
        return self._current()[key]

    def __getattr__(self, name):
        if name == "value":
            raise AttributeError(name)
        return getattr(self._current(), name)

    def __len__(self):
        return len(self.value)

    def __repr__(self):
        return f"Param({self.value!r})"


def _binop(ufunc):
    return (lambda self, other: ufunc(self, other), lambda self, other: ufunc(other, self))


for _n, _u in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("truediv", np.divide),
               ("pow", np.power), ("matmul", np.matmul)]:
    _f, _r = _binop(_u)
    setattr(Param, f"__{_n}__", _f)
    setattr(Param, f"__r{_n}__", _r)
Param.__neg__ = lambda self: np.negative(self)


def _inplace(ufunc):
    def op(self, other):  # `W -= lr * g` updates the value in place, as `W.value -= lr * g`
        ufunc(self.value, other.value if isinstance(other, Param) else other, out=self.value)
        return self

    return op


for _n, _u in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("truediv", np.divide),
               ("pow", np.power), ("matmul", np.matmul)]:
    setattr(Param, f"__i{_n}__", _inplace(_u))


class DiffResult:
    """What `diff` returns: the value and the gradients of every Param it touched."""

    def __init__(self, value, grads):
        self._value = value
        self._grads = grads

    def grad(self, param):
        if not isinstance(param, Param):
            raise TypeError("grad(result, x) needs a tg.Param as x")
        g = self._grads.get(id(param))
        return np.zeros_like(param.value) if g is None else g

    def __repr__(self):
        return f"DiffResult({self._value!r})"


def diff(fn) -> DiffResult:
    """AutoGrad.jl's @diff: evaluate `fn()` and differentiate it w.r.t. every Param it uses."""
    from .core import as_atom, check_scalar_output

    prev = getattr(_active, "trace", None)
    with new_trace(fn) as tr:
        tr.params = {}
        _active.trace = tr
        try:
            out = fn()
        finally:
            _active.trace = prev
        check_scalar_output(out, "diff")
        params = list(tr.params.values())
        atom = as_atom(tr, out)
        cts = backward(tr, atom, [t.node for _, t in params]) if isinstance(out, Tracer) else [None] * len(params)
        # fresh arrays, as `grad` gives: d(W*b)/db is W's own array, which a caller then
        # updating W in place (`W.value -= lr * g`) would change under the gradient of b
        kept = [c for c in cts if c is not None]
        kept = iter(owned(tr, kept, [t.value for _, t in params]) if kept else ())
        cts = [None if c is None else next(kept) for c in cts]
        grads = {id(p): c.value for (p, _), c in zip(params, cts) if c is not None}
        val = out.value if isinstance(out, Tracer) else out
    return DiffResult(val, grads)


def value(result):
    """The value of a `diff` result (or of a Param)."""
    if isinstance(result, DiffResult):
        return result._value
    if isinstance(result, Param):
        return result.value
    return result
