"""Structured arguments: find array leaves in any nesting of objects, dataclasses, dicts,
lists, tuples and namedtuples, name them by field paths, and rebuild copies.

Leaves are ndarrays, NumPy scalars, Python floats/complex and traced values. Python
ints, bools, strings, None, callables and modules are static: part of the structure.
The same object reachable by two paths is one leaf, named by the first path found.
"""

from __future__ import annotations

import copy
import dataclasses
import types

import numpy as np

_STATIC_TYPES = (int, bool, str, bytes, type(None), type, types.FunctionType, types.ModuleType,
                 types.BuiltinFunctionType, types.MethodType, slice, type(Ellipsis), range)


def is_leaf(x) -> bool:
    t = type(x)
    if t is np.ndarray or t is float:  # the common cases first
        return True
    if isinstance(x, bool) or (isinstance(x, int) and not isinstance(x, np.generic)):
        return False
    return isinstance(x, (np.ndarray, np.generic, float, complex, _tracer_type()))


_TRACER = []


def _tracer_type():
    if not _TRACER:  # imported on first use: trace.py is above this module
        from .trace import Tracer

        _TRACER.append(Tracer)
    return _TRACER[0]


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def children(x):
    """(key, child) pairs of a container, or None for a leaf or static value."""
    if isinstance(x, dict):
        return list(x.items())
    if _is_namedtuple(x):
        return list(zip(x._fields, x))
    if isinstance(x, (list, tuple)):
        return list(enumerate(x))
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return [(f.name, getattr(x, f.name)) for f in dataclasses.fields(x)]
    if isinstance(x, _STATIC_TYPES) or callable(x) and not hasattr(x, "__dict__"):
        return None
    d = getattr(x, "__dict__", None)
    if d is not None and not isinstance(x, type):
        return [(k, v) for k, v in d.items() if not k.startswith("__")]
    slots = getattr(type(x), "__slots__", None)
    if slots:
        return [(k, getattr(x, k)) for k in slots if hasattr(x, k)]
    return None


def flatten(x, share=True):
    """-> (paths, leaves, treedef). `treedef` is hashable and describes the structure,
    including the static values, so two calls with equal treedefs line up leaf by leaf.
    `share`: one leaf stands for an object found at several paths (tied weights: the Yota
    form's gradient counts it once); without, each path is its own leaf (as JAX and
    autograd treat pytrees: per-slot partial gradients)."""
    if is_leaf(x):  # a plain array or scalar: what `walk` gives, without the walk
        return [()], [x], ("leaf", 0, _leaf_kind(x))
    t = type(x)
    if (t is tuple or t is list) and x:  # a flat tuple/list of distinct arrays: what `walk`
        for e in x:  # gives, from a cache (tg.jit and play flatten parameters every call)
            if type(e) is not np.ndarray:
                break
        else:
            n = len(x)
            if not share or len({id(e) for e in x}) == n:
                hit = _FLAT_SEQ.get((t, n))
                if hit is None:
                    hit = _FLAT_SEQ[(t, n)] = ([(i,) for i in range(n)], (t, tuple(
                        (i, ("leaf", i, "array")) for i in range(n))))
                return list(hit[0]), list(x), hit[1]
    paths, leaves, seen = [], [], {}

    def walk(obj, path, active):
        if is_leaf(obj):
            k = seen.get(id(obj)) if share else None
            if k is None:
                k = seen[id(obj)] = len(leaves)
                paths.append(path)
                leaves.append(obj)
            return ("leaf", k, _leaf_kind(obj))
        kids = children(obj)
        if kids is None:
            return ("static", _static_key(obj))
        if id(obj) in active:
            raise ValueError(f"argument structure has a cycle at field path {path}")
        active = active | {id(obj)}
        return (type(obj), tuple((k, walk(v, path + (k,), active)) for k, v in kids))

    tree = walk(x, (), frozenset())
    walk = None  # break the closure's self-reference: leaves (Tracers) free by refcount
    return paths, leaves, tree


_FLAT_SEQ: dict = {}  # (tuple or list, length) -> (paths, treedef) of a flat sequence of arrays


def _leaf_kind(x):
    if isinstance(x, float):
        return "float"
    if isinstance(x, complex):
        return "complex"
    return "array"


def _static_key(x):
    try:
        hash(x)
        # the type is part of the key: True == 1 == 1.0 must not select the same trace
        return (type(x), x)
    except TypeError:
        return ("id", id(x))


def unflatten_like(x, leaves, share=True):
    """A copy of structure `x` with its leaves replaced, in `flatten(x, share)` order."""
    if is_leaf(x):
        return next(iter(leaves))
    seen = {}
    it = iter(leaves)

    def build(obj):
        if is_leaf(obj):
            if not share:
                return next(it)
            if id(obj) not in seen:
                seen[id(obj)] = next(it)
            return seen[id(obj)]
        kids = children(obj)
        if kids is None:
            return obj
        new = {k: build(v) for k, v in kids}
        return rebuild(obj, new)

    try:
        return build(x)
    finally:
        build = None  # break the closure's self-reference: values free by refcount


def rebuild(obj, new: dict):
    if isinstance(obj, dict):
        out = copy.copy(obj)
        out.update(new)
        return out
    if _is_namedtuple(obj):
        return type(obj)(**new)
    if isinstance(obj, tuple):
        return type(obj)(new[i] for i in range(len(obj)))
    if isinstance(obj, list):
        out = copy.copy(obj)
        out[:] = [new[i] for i in range(len(obj))]
        return out
    out = copy.copy(obj)
    for k, v in new.items():
        object.__setattr__(out, k, v)
    return out


def get_path(obj, path):
    for k in path:
        obj = obj[k] if isinstance(obj, (dict, list)) or (isinstance(obj, tuple) and isinstance(k, int)) \
            else getattr(obj, k)
    return obj


def path_setter(obj, path, value):
    """A function writing `value` at `path` inside `obj` (in place into an array leaf
    where possible). Whether the write can happen is checked now, so a caller can check
    every path before writing any."""
    parent = get_path(obj, path[:-1])
    k = path[-1]
    old = parent[k] if isinstance(parent, (dict, list)) or (
        isinstance(parent, tuple) and isinstance(k, int)) else getattr(parent, k)
    if isinstance(old, np.ndarray) and old.flags.writeable and np.shape(value) == old.shape:
        return lambda: old.__setitem__(Ellipsis, value)
    if isinstance(parent, (dict, list)):
        return lambda: parent.__setitem__(k, value)
    if isinstance(parent, tuple):
        raise TypeError(f"cannot update field path {path}: it sits in an immutable tuple "
                        "and its leaf is not a writable array")
    return lambda: object.__setattr__(parent, k, value)


def describe(treedef) -> str:
    if treedef[0] == "leaf":
        return treedef[2]
    if treedef[0] == "static":
        return repr(treedef[1])
    return getattr(treedef[0], "__name__", str(treedef[0]))
