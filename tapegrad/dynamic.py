"""The dynamic cache: reuse tapes while the control-flow signature holds (`tg.jit`,
`tg.grad(f, *args, dynamic=True)`).

A tape records one execution. Tracing records a `Guard` wherever Python looked at a
traced value (`if x.sum() > 0`, `range(int(n))`, `.item()`, `np.any(...)` in an `if`),
and this module adds a `shape` guard after each boolean-mask `getitem`, whose result
shape depends on the data. On a call:

1. the cheap input signature (per argument: the `tree.flatten` treedef, which holds the
   structure and the static values -- ints, bools, strings, None -- plus leaf shapes
   and dtypes) selects the candidate entries, most recently used first;
2. each candidate's tape is replayed; its guards are checked as their values are
   computed (`backends/interpret.py`), so a candidate whose path differs raises
   `GuardError` before anything is returned;
3. when no candidate holds, `f` is traced again and the new tape added. The cache is
   a bounded LRU over entries; a lock keeps it consistent under threads (tracing and
   replay run outside the lock).

Statistics: `hits + misses == calls`; `retraces` counts the misses where the signature
was known but every entry's guards failed; `entries` is the current size.

Baked-in constants: only the arguments are inputs. Globals, closure cells, keyword
defaults and any Python value reached other than through an argument are read once,
at trace time, and frozen into the tape (scalars as literals, arrays as `const` ops).
Changing them later does not re-trace: call `jf.cache_clear()` or pass them as
arguments. Keyword arguments of a call are treated as one extra (dict) argument.
Calls with traced arguments (a `tg.jit` function inside `grad`) are traced through
directly, never replayed from the cache.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
import warnings
import weakref
from collections import namedtuple

import numpy as np

from . import tree
from .backends import interpret
from .core import Slot, filler, grad_call, slot_kind, trace_call
from .passes.own_outputs import own_outputs
from .errors import GuardError
from .ir import Guard, Var
from .trace import Tracer

CacheInfo = namedtuple("CacheInfo", "hits misses retraces entries maxsize")

_FLOAT_KEY = ("float",)


# -- signature ------------------------------------------------------------------------------


def signature(args):
    """-> (key, flat leaves, traced?) for positional `args`; `key` is hashable."""
    key, leaves, traced = [], [], False
    for a in args:
        t = type(a)
        if t is np.ndarray:
            key.append((a.shape, a.dtype))
            leaves.append(a)
        elif t is float:
            key.append(_FLOAT_KEY)
            leaves.append(a)
        elif a is None or t is int or t is bool or t is str:
            key.append(("static", t, a))
        else:
            _, lv, td = tree.flatten(a)
            avals = []
            for x in lv:
                if isinstance(x, Tracer):
                    traced = True
                    avals.append((x.shape, x.dtype))
                elif isinstance(x, (np.ndarray, np.generic)):
                    avals.append((x.shape, x.dtype))
                else:
                    avals.append(type(x))
            key.append((td, tuple(avals)))
            leaves.extend(lv)
    return tuple(key), leaves, traced


def add_shape_guards(tape) -> None:
    """Guard the result shape of every op whose shape depends on data (boolean masks)."""
    have = {(g.kind, g.var.id) for g in tape.guards}
    for op in tape.ops:
        p = op.prim
        if not p.data_dependent_shape or p.name == "untake":
            continue
        if p.name == "getitem" and not any(isinstance(a, Var) and a.dtype == np.bool_ and a.shape
                                           for a in op.inputs[1:]):
            continue
        for v in op.outputs:
            if ("shape", v.id) not in have:
                tape.guards.append(Guard("shape", v, v.shape, loc=op.loc))


# -- cache ------------------------------------------------------------------------------------


class _Entry:
    __slots__ = ("key", "tape", "runner", "compiled", "path", "last", "pending", "filled")

    def __init__(self, key, tape, runner_and_compiled):
        self.key, self.tape = key, tape
        self.runner, self.compiled = runner_and_compiled
        self.path = tuple((g.kind, g.var.id, g.expected) for g in tape.guards)
        self.last = 0
        self.pending = None  # the background job that optimises and compiles the tape
        self.filled = (None, None)  # (out_tree, its `filler`)

    def fill(self, outs):
        """The result from flat outputs: `core.filler` of the tape's output template (made
        again when the background upgrade swaps the tape)."""
        tmpl, fn = self.filled
        if tmpl is not self.tape.out_tree:
            tmpl = self.tape.out_tree
            fn = filler(tmpl)
            self.filled = (tmpl, fn)
        return fn(outs)

    def upgrade(self) -> None:
        """Optimise the raw tape and compile it, then swap both in (each swap is one
        attribute store: callers use the old or the new runner, both correct)."""
        from .passes import optimize

        try:
            tape = optimize(self.tape)
        except Exception:  # noqa: BLE001  keep replaying the raw tape: it is correct
            return
        runner, compiled = _runner(tape, True)
        self.tape, self.compiled = tape, compiled
        self.runner = runner


_upgrades = None


def _upgrade_pool():
    global _upgrades
    if _upgrades is None:
        from concurrent.futures import ThreadPoolExecutor

        _upgrades = ThreadPoolExecutor(1, thread_name_prefix="tapegrad-jit")
    return _upgrades


class GuardedCache:
    """Entries grouped by input signature, evicted least-recently-used first.

    The hit path takes no lock: `candidates` reads an immutable tuple, and the hit
    counter and the recency clock are `itertools.count`s, whose `next` is atomic under
    the GIL. Adding, evicting and reordering take the lock.
    """

    def __init__(self, maxsize: int = 64):
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._lock = threading.Lock()
        self._by_key: dict = {}  # key -> (entry, ...), most recently used first
        self._n = 0
        self._clock = itertools.count(1)
        self._hits = itertools.count()
        self._reads = 0  # each read of the hit counter consumes one
        self.misses = self.retraces = 0

    def candidates(self, key) -> tuple:
        return self._by_key.get(key, ())

    def hit(self, entry, cands) -> None:
        next(self._hits)
        entry.last = next(self._clock)
        if cands[0] is not entry:  # alternating paths: try the latest first next time
            with self._lock:
                lst = self._by_key.get(entry.key, ())
                if entry in lst:
                    self._by_key[entry.key] = (entry,) + tuple(e for e in lst if e is not entry)

    def add(self, entry, retrace: bool, broken=()) -> list:
        """Add `entry`; an entry of `broken` (it raised, yet the fresh trace took its very
        path) is replaced by it. -> the entries replaced."""
        with self._lock:
            self.misses += 1
            self.retraces += retrace
            lst = self._by_key.get(entry.key, ())
            replaced = [e for e in lst if e.path == entry.path and any(e is b for b in broken)]
            if replaced:
                lst = tuple(e for e in lst if not any(e is r for r in replaced))
                self._by_key[entry.key] = lst
                self._n -= len(replaced)
            if any(e.path == entry.path for e in lst):  # another thread traced it meanwhile
                return replaced
            entry.last = next(self._clock)
            self._by_key[entry.key] = (entry,) + lst
            self._n += 1
            while self._n > self.maxsize:
                old = min((e for es in self._by_key.values() for e in es), key=lambda e: e.last)
                rest = tuple(e for e in self._by_key[old.key] if e is not old)
                if rest:
                    self._by_key[old.key] = rest
                else:
                    del self._by_key[old.key]
                self._n -= 1
        return replaced

    def info(self) -> CacheInfo:
        with self._lock:
            hits = next(self._hits) - self._reads
            self._reads += 1
            return CacheInfo(hits, self.misses, self.retraces, self._n, self.maxsize)

    def clear(self) -> None:
        with self._lock:
            self._by_key.clear()
            self._n = 0
            self._hits = itertools.count()
            self._reads = self.misses = self.retraces = 0

    def entries(self) -> list:
        """The cached entries, least recently used first."""
        with self._lock:
            return sorted((e for es in self._by_key.values() for e in es), key=lambda e: e.last)


def _runner(tape, compile: bool):
    """-> (flat leaves -> flat outputs, compiled tape or None): the compiled tape when
    asked for and able to check guards (else, or when compiling fails, the interpreter).
    `tg.compile` builds in the background and runs interpreted meanwhile."""
    if compile:
        try:
            from .compile import compile as tg_compile

            ctape = tg_compile(tape)
        except Exception:  # noqa: BLE001  (no Numba, or a tape it cannot lower: interpret)
            ctape = None
        run = getattr(ctape, "run", None)
        if run is not None and (not tape.guards or getattr(ctape, "checks_guards", False)):
            return _check_input_guards(tape, run), ctape
    return functools.partial(interpret.run, tape), None


def _check_input_guards(tape, run):
    """Guards on tape inputs (`range(n)` on a 0-d int argument), checked before `run`."""
    at = {v.id: k for k, v in enumerate(tape.inputs)}
    checks = [(at[g.var.id], g) for g in tape.guards if g.var.id in at]
    if not checks:
        return run

    def checked(leaves):
        for k, g in checks:
            if not g.holds(leaves[k]):
                raise GuardError(f"guard failed: {g.kind}(%{g.var.id}) was {g.expected!r} "
                                 f"when traced ({g.loc})")
        return run(leaves)

    return checked


class _Cached:
    """Shared call logic: signature -> replay a candidate -> else trace and add."""

    def __init__(self, f, maxsize=64, compile=False):
        self.f = f
        self.compile = compile
        self.cache = GuardedCache(maxsize)

    def __call__(self, *args, **kwargs):
        if kwargs:
            fn = _with_kwargs(self.f, sorted(kwargs))
            call_args = args + (dict(sorted(kwargs.items())),)
        else:
            fn, call_args = self.f, args
        key, leaves, traced = signature(call_args)
        if traced:
            return self._direct(fn, call_args, len(args))
        cands = self.cache.candidates(key)
        broken = []
        for entry in cands:
            try:
                outs = entry.runner(leaves)
            except GuardError:
                continue
            except Exception as e:  # noqa: BLE001  an op the optimised tape ran ahead of a
                broken.append((entry, e))  # failing guard, or a broken tape: the trace decides
                continue
            self.cache.hit(entry, cands)
            return self._finish(entry, outs)
        if self.compile:
            # first result at tracing speed: replay the raw tape interpreted until the
            # optimised, compiled one is ready (built in the background)
            result, tape = self._trace(fn, call_args, len(args), optimized=False)
            add_shape_guards(tape)
            # the raw tape's outputs may be inputs, views, one array twice: copied, as the
            # optimised tape (`own_outputs`) and the first call give them
            entry = _Entry(key, tape, (functools.partial(interpret.run, own_outputs(tape)), None))
            entry.pending = _upgrade_pool().submit(entry.upgrade)
        else:
            result, tape = self._trace(fn, call_args, len(args))
            add_shape_guards(tape)
            entry = _Entry(key, tape, _runner(tape, False))
        replaced = self.cache.add(entry, retrace=bool(cands), broken=[b for b, _ in broken])
        for b, e in broken:
            if any(b is r for r in replaced):  # same path, so no guard explains the error
                warnings.warn(f"tg.jit: a cached tape of {getattr(self.f, '__name__', 'f')} "
                              f"raised {type(e).__name__}: {e} although its guards held; it "
                              "was replaced by a fresh trace", RuntimeWarning, stacklevel=2)
        return result

    # -- statistics ----------------------------------------------------------------------
    def cache_info(self) -> CacheInfo:
        """(hits, misses, retraces, entries, maxsize); hits + misses == calls."""
        return self.cache.info()

    @property
    def stats(self) -> dict:
        return self.cache.info()._asdict()

    def cache_clear(self) -> None:
        self.cache.clear()

    @property
    def tapes(self) -> list:
        """The cached tapes, least recently used first (print one to see its guards)."""
        return [e.tape for e in self.cache.entries()]

    def wait(self) -> "_Cached":
        """With `compile=True`: block until every cached tape's kernels are compiled."""
        for e in self.cache.entries():
            if e.pending is not None:
                e.pending.result()
            if e.compiled is not None:
                e.compiled.wait()
        return self


def _with_kwargs(f, names):
    def call(*args):
        return f(*args[:-1], **args[-1])

    call.__name__ = getattr(f, "__name__", "f")
    return call


class Jit(_Cached):
    """`tg.jit(f)`: `f`'s results, from a cached tape while its guards hold."""

    def __init__(self, f, maxsize=64, compile=False):
        super().__init__(f, maxsize, compile)
        functools.update_wrapper(self, f)

    def __get__(self, obj, objtype=None):
        """As a method decorator: the instance is the first argument (its array
        attributes are leaves, its other attributes part of the signature)."""
        return self if obj is None else functools.partial(self, obj)

    def _direct(self, fn, args, n):
        return fn(*args)

    def _trace(self, fn, args, n, optimized=True):
        from .passes import optimize

        val, tape = trace_call(fn, args, own=True)  # fresh arrays, as later calls give
        return val, optimize(tape) if optimized else tape

    def _finish(self, entry, outs):
        return entry.fill(outs)


def default_jit_compile() -> bool:
    """`tg.jit` compiles with Numba unless TAPEGRAD_JIT_COMPILE=0 (the test suite sets it,
    so that only the tests that ask for compiled code pay Numba's compile time)."""
    return os.environ.get("TAPEGRAD_JIT_COMPILE", "1") not in ("0", "", "false", "no")


def jit(f=None, *, maxsize: int = 64, compile: bool | None = None):
    """A cached callable for `f` (values, or gradients: `jit(value_and_grad(loss))`).

    Usable as `@tg.jit` or `@tg.jit(maxsize=8)`. See the module docstring for what is
    guarded and what is baked in. `jf.cache_info()` gives the statistics. Cached tapes
    are compiled with Numba in the background (`compile=False` keeps the interpreter);
    calls run interpreted until their kernels are ready (`jf.wait()` blocks for them).
    """
    if compile is None:
        compile = default_jit_compile()
    if f is None:
        return lambda f: Jit(f, maxsize=maxsize, compile=compile)
    return Jit(f, maxsize=maxsize, compile=compile)


class DynamicGrad(_Cached):
    """The Yota form `grad(f, *args)` -> `(value, GradResult)` through the cache."""

    def _direct(self, fn, args, n):
        return _grad_result(fn, args, n)[0]

    def _trace(self, fn, args, n, optimized=True):
        return _grad_result(fn, args, n, optimized)

    def _finish(self, entry, outs):
        from .api import GradResult

        val, grads = entry.fill(outs)
        if isinstance(val, np.ndarray) and val.ndim == 0:
            val = val[()]
        return val, GradResult(grads, entry.tape)


def _grad_result(fn, args, n, optimized=True):
    """Trace the gradient of `fn` w.r.t. `args[:n]` (the rest: keyword arguments).
    -> ((value, GradResult), tape) with the tape's outputs laid out as `(value, grads)`."""
    from .api import GradResult, _yota_format
    from .passes import optimize

    val, grads, tape, t, used = grad_call(fn, args, None, range(n))
    used_by_leaf = [[False] * len(lv) for lv in t.arg_leaves[:n]]
    slot_grads = [None if g is None else [None] * len(g) for g in grads[:n]]
    for k, ((i, j), u) in enumerate(zip(tape.meta["wrt"], used), start=1):
        used_by_leaf[i][j] = u
        slot_grads[i][j] = Slot(k, slot_kind(t.arg_leaves[i][j]))
    a, paths = args[:n], t.arg_paths[:n]
    gtuple = _yota_format(a, grads[:n], paths, used_by_leaf, leaves=t.arg_leaves)
    tape.out_tree = (Slot(0, "float" if type(val) is float else "array"),
                     _yota_format(a, slot_grads, paths, used_by_leaf, slots=True))
    if optimized:
        tape = optimize(tape)
        shown = tape
    else:  # g.tape (optimised) is built when first read
        shown = functools.partial(optimize, tape)
    if isinstance(val, np.ndarray) and val.ndim == 0:
        val = val[()]
    return (val, GradResult(gtuple, shown)), tape


_grad_caches: dict = {False: weakref.WeakKeyDictionary(), True: weakref.WeakKeyDictionary()}
_grad_lock = threading.Lock()


def dynamic_grad(f, compile: bool = False, maxsize: int = 64) -> DynamicGrad:
    """The per-function cache behind `tg.grad(f, *args, dynamic=True)`.

    Held weakly: a cache lives as long as its function (for a bound method, as long as
    both the function and the instance). A function that cannot be weakly referenced
    gets a fresh cache each call (always correct, never reused)."""
    caches = _grad_caches[bool(compile)]
    owner, fn = getattr(f, "__self__", None), getattr(f, "__func__", None)
    try:
        with _grad_lock:
            if fn is not None and owner is not None:
                per = caches.get(fn)
                if per is None:
                    per = caches[fn] = weakref.WeakKeyDictionary()
                dg = per.get(owner)
                if dg is None:
                    dg = per[owner] = DynamicGrad(_weak_method(fn, owner), maxsize, compile)
                return dg
            dg = caches.get(f)
            if dg is None:
                dg = caches[f] = DynamicGrad(_weak_function(f), maxsize, compile)
            return dg
    except TypeError:  # not weakly referenceable or not hashable
        return DynamicGrad(f, maxsize, compile)


def _weak_function(f):
    ref = weakref.ref(f)

    def call(*args, **kwargs):
        return ref()(*args, **kwargs)

    call.__name__ = getattr(f, "__name__", "f")
    return call


def _weak_method(fn, owner):
    rf, ro = weakref.ref(fn), weakref.ref(owner)

    def call(*args, **kwargs):
        return rf()(ro(), *args, **kwargs)

    call.__name__ = getattr(fn, "__name__", "f")
    return call
