"""Numba lowering: a tape becomes a Python driver calling disk-cached loop kernels.

Segmented execution (shared/research/numba-feasibility.md): `kernels.plan` cuts the tape
into fusion regions and single ops. Each region in loop mode is one `@njit(cache=True)`
kernel, identified by its canonically renamed source and argument types, so equal
regions share one compiled kernel per machine. Small 2-D matmuls join the loop after
them in a block kernel (`np.dot` calls BLAS from inside Numba: one call per RNN step).
Transcendental ufuncs on arrays large enough run as NumPy's SIMD loops between kernels
(`kernels.SIMD_SAVING_NS`). Large matmuls, keepdims reductions, indexing and anything
else run as NumPy calls in the driver, exactly as the interpreter runs them, reusing dead
driver-allocated buffers through `out=`; a kernel Numba refuses to type drops its region
(or block) to NumPy (memoised).

`CompiledTape.play` starts as the interpreter; a background thread compiles (or loads)
the kernels, then swaps in the generated driver. The driver is plain Python with the
argument check inlined, so a call costs a few attribute reads plus the kernel calls.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import GuardError
from ..ir import Const
from ..trace import DEBUG_NANS
from . import diskcache
from .validate import check_leaves
from .kernels import (SIMD_SAVING_NS, VIEWS, Block, Region, block_source, elementwise_kind,
                      form_blocks, kernel_source, plan)

KERNEL_FORMAT = "1"  # bump when generated kernels change meaning
STATS = {"compiled": 0, "loaded": 0, "memory_hits": 0, "failed": 0, "compile_seconds": 0.0}
_KERNELS: dict = {}  # key -> Kernel, for this process
_registry_lock = threading.Lock()
_executor = None
# producers whose arrays may be views with any strides: copied C-contiguous before a kernel
_VIEW_PRODUCERS = {"transpose", "broadcast_to", "getitem", "flip", "einsum", "real", "imag",
                   "reshape", "stop_gradient", "astype", "capture"}


class Kernel:
    """One distinct loop kernel: its module source, argument types and dispatcher."""

    def __init__(self, key, source, argtypes):
        self.key = key
        self.name = "tgk_" + key
        self.source = source
        self.argtypes = argtypes  # (dtype, ndim) per argument; ndim 0 = scalar
        self.dispatcher = None
        self.error = None
        self.seconds = 0.0
        self.from_disk = False
        self.lock = threading.Lock()

    @property
    def done(self):
        return self.dispatcher is not None or self.error is not None

    def build(self):
        with self.lock:
            if self.done:
                return
            t0 = time.perf_counter()
            try:
                import numba

                with diskcache.kernel_files(self.name, self.source) as mod:  # checked, locked
                    disp = mod.kernel
                    sig = tuple(numba.from_dtype(dt) if nd == 0 else
                                numba.types.Array(numba.from_dtype(dt), nd, "C")
                                for dt, nd in self.argtypes)
                    disp.compile(sig)
                self.from_disk = sum(disp.stats.cache_hits.values()) > 0
                disp.disable_compile()  # other types raise TypeError: the driver falls back
                self.dispatcher = disp
                STATS["loaded" if self.from_disk else "compiled"] += 1
            except Exception as e:  # TypingError and friends: that region runs in NumPy
                self.error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                STATS["failed"] += 1
            self.seconds = time.perf_counter() - t0
            STATS["compile_seconds"] += self.seconds


def _module_source(body: str) -> str:
    return ("# tapegrad fusion kernel (generated; tg.cache_clear() removes it)\n"
            "import numpy as np\nimport numba\n\n\n"
            '@numba.njit(cache=True, error_model="numpy", nogil=True)\n' + body)


def _block_module_source(funcs, main) -> str:
    deco = '@numba.njit(cache=True, error_model="numpy", nogil=True)\n'
    return ("# tapegrad block kernel: loops and BLAS matmuls (generated; tg.cache_clear() removes it)\n"
            "import numpy as np\nimport numba\n\n\n" +
            "\n\n".join(deco + f for f in funcs + [main]))


def _versions() -> str:
    from importlib.metadata import version

    try:
        nbv = version("numba")
    except Exception:
        nbv = "?"
    return f"{KERNEL_FORMAT}|np{np.__version__}|nb{nbv}"


_VERSIONS = None


def kernel_for(r: Region, consts, uniform) -> Kernel:
    global _VERSIONS
    if _VERSIONS is None:
        _VERSIONS = _versions()
    src, args, _ = kernel_source(r, consts, uniform, canonical=True)
    argtypes = tuple((a.dtype, len(a.shape)) for a in args)
    text = _module_source(src)
    key = hashlib.sha256(f"{text}|{argtypes}|{_VERSIONS}".encode()).hexdigest()[:24]
    with _registry_lock:
        k = _KERNELS.get(key)
        if k is None:
            k = _KERNELS[key] = Kernel(key, text, argtypes)
        else:
            STATS["memory_hits"] += 1
    return k


def kernel_for_block(b: Block, consts, uniform) -> Kernel:
    global _VERSIONS
    if _VERSIONS is None:
        _VERSIONS = _versions()
    text = _block_module_source(*block_source(b, consts, uniform, canonical=True))
    argtypes = tuple((a.dtype, len(a.shape)) for a in b.inputs)
    key = hashlib.sha256(f"{text}|{argtypes}|{_VERSIONS}".encode()).hexdigest()[:24]
    with _registry_lock:
        k = _KERNELS.get(key)
        if k is None:
            k = _KERNELS[key] = Kernel(key, text, argtypes)
        else:
            STATS["memory_hits"] += 1
    return k


def _pool():
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(1, thread_name_prefix="tapegrad-compile")
    return _executor


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

    def assign(self, outs, expr):
        self.lines.append(f"{', '.join(f'v{v.id}' for v in outs)} = {expr}")

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
        self.assign(op.outputs, self.numpy_call(op, out=out))
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
            self.assign(op.outputs, self.numpy_call(op, out=out))
            self.producer[v.id] = op.prim.name
            if v.id not in outs and v.shape and op.prim.name not in VIEWS and \
                    isinstance(op.prim.impl, np.ufunc):
                owned.add(v.id)

    def emit_kernel_region(self, r: Region, k: Kernel):
        _, args, outs = kernel_source(r, self.ct.consts, self.ct.uniform, canonical=True)
        kname = self.glob(k.dispatcher, "_kern")
        arg_s = []
        for a in args:
            n = self.name(a)
            if not a.shape and a.id not in self.scalar_ok:
                n = f"_sc({n})"
            elif a.shape and self.producer.get(a.id, "input") in _VIEW_PRODUCERS:
                n = f"np.ascontiguousarray({n})"
            arg_s.append(n)
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

    def emit_kernel_block(self, b: Block, k: Kernel):
        arg_s = []
        for a in b.inputs:
            n = self.name(a)
            if not a.shape and a.id not in self.scalar_ok:
                n = f"_sc({n})"
            elif a.shape and self.producer.get(a.id, "input") in _VIEW_PRODUCERS:
                n = f"np.ascontiguousarray({n})"
            arg_s.append(n)
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


class CompiledTape:
    """A tape lowered to Numba. `play(*args)` gives what `tg.play(tape, *args)` gives.

    Until the kernels are ready `play` is the interpreter; `wait()` blocks until the
    compiled driver is in place. `source` is the generated Python (driver and kernels)."""

    def __init__(self, tape):
        self.tape = tape
        self.steps, self.consts, self.uniform = plan(tape)
        for kind, r in self.steps:
            if kind == "region":
                r.choose_mode()
        self.steps = form_blocks(self.steps, tape, self.uniform)
        self.blocks = [x for kind, x in self.steps if kind == "block"]
        self.regions = [x for kind, x in self.steps if kind == "region"] + \
            [r for b in self.blocks for r in b.regions()]
        self.guards_of = {}
        for g in tape.guards:
            self.guards_of.setdefault(g.var.id, []).append(g)
        self.used_by_numpy = set()
        for kind, x in self.steps:
            if kind == "op":
                self.used_by_numpy.update(a.id for a in x.inputs if hasattr(a, "id"))
            elif kind == "region" and x.mode == "numpy":
                self.used_by_numpy.update(a.id for op in x.ops for a in op.inputs if hasattr(a, "id"))
        self.used_by_numpy.update(g.var.id for g in tape.guards)
        self.kernels = {x.index: (kernel_for if kind == "region" else kernel_for_block)(
            x, self.consts, self.uniform) for kind, x in self.steps
            if kind in ("region", "block") and x.mode == "loop"}
        self.ready = threading.Event()
        self.compile_seconds = None
        self._source = None
        self.play = self._interpreted
        self._flat = self._interpreted_flat
        self._future = None

    checks_guards = True  # the driver checks every guard, like the interpreter

    def run(self, leaves) -> list:
        """Flat leaves -> flat outputs (`tg.jit`'s cache calls this). Leaves are checked
        against the tape's inputs first (`validate.check_leaves`: ValueError naming the
        input), since kernels index without bounds checks."""
        leaves = check_leaves(self.tape, leaves)
        if DEBUG_NANS[0]:  # tg.debug_nans(): the interpreter names the op that made a NaN
            return self._interpreted_flat(*leaves)
        return self._flat(*leaves)

    def _interpreted_flat(self, *leaves):
        from . import interpret

        return interpret.run(self.tape, list(leaves))

    # -- calling -----------------------------------------------------------------------
    def _interpreted(self, *args):
        from ..api import play

        return play(self.tape, *args)

    def __call__(self, *args):
        return self.play(*args)

    def wait(self, timeout=None) -> "CompiledTape":
        if not self.ready.is_set():
            self._finish()
        self.ready.wait(timeout)
        return self

    # -- building ----------------------------------------------------------------------
    def start(self, wait: bool):
        if wait:
            self._finish()
        else:
            self._future = _pool().submit(self._finish)
        return self

    def _finish(self):
        t0 = time.perf_counter()
        for k in self.kernels.values():
            k.build()
        src, g = self._driver()
        code = compile(src, f"<tapegrad driver {self.tape.meta.get('name', 'f')}>", "exec")
        exec(code, g)
        self._source = src
        self.compile_seconds = time.perf_counter() - t0
        self._flat = g["flat"]
        self.play = g["entry"]
        self.ready.set()

    def _driver(self):
        from ..api import flat_inputs
        from ..backends import interpret
        from ..core import Slot, fill
        from ..trace import Tracer

        tape = self.tape
        for kind, x in self.steps:  # modes first: buffer lifetimes depend on them
            k = self.kernels.get(x.index) if kind in ("region", "block") else None
            if k is not None and k.dispatcher is None:
                x.mode, x.why = "numpy", f"Numba refused the loop: {k.error}"
                for r in (x.regions() if kind == "block" else ()):
                    r.mode, r.why = "numpy", f"its block failed to compile: {k.error}"
        e = _Emitter(self)
        e.g["_sc"] = _sc
        e.guards(tape.inputs)  # `range(int(n))` on a 0-d int input: checked before any kernel
        for e.step, (kind, x) in enumerate(self.steps):
            if kind == "fold":
                continue
            if kind == "op":
                e.emit_op(x)
                e.guards(x.outputs)
                continue
            k = self.kernels.get(x.index)
            if kind == "block":
                if x.mode == "loop":
                    e.emit_kernel_block(x, k)
                else:
                    for kind2, y in x.items:
                        (e.emit_op if kind2 == "op" else e.emit_numpy_region)(y)
                e.guards(x.outputs)
                continue
            if x.mode == "loop":
                e.emit_kernel_region(x, k)
            else:
                e.emit_numpy_region(x)
            e.guards(x.outputs)
        params = [f"v{v.id}" for v in tape.inputs]
        try:
            ret = e.fill_expr(tape.out_tree, tape.outputs)
        except _NoInline:
            e.g["_fill"], e.g["_tmpl"] = fill, tape.out_tree
            ret = f"_fill(_tmpl, ({''.join(e.name(a) + ', ' for a in tape.outputs)}))"
        body = ["    " + ln for ln in e.lines] + [f"    return {ret}"]
        run = [f"def run({', '.join(params)}):"] + body
        flat_ret = "[" + ", ".join(e.fill_expr(Slot(k), tape.outputs)
                                   for k in range(len(tape.outputs))) + "]"
        flat = ([f"def flat({', '.join(params)}):", "    try:"] + ["        " + ln for ln in e.lines] +
                [f"        return {flat_ret}", "    except TypeError:",
                 f"        return _interp_flat([{', '.join(params)}])"])
        e.g["_interp_flat"] = functools.partial(interpret.run, tape)

        def slow(*args):
            leaves = check_leaves(tape, flat_inputs(tape, args))
            if any(isinstance(x, Tracer) for x in leaves):
                return fill(tape.out_tree, interpret.run(tape, leaves))
            try:
                return g["run"](*leaves)
            except TypeError:
                return fill(tape.out_tree, interpret.run(tape, leaves))

        g = e.g
        g["_slow"] = slow
        g["_nd"] = np.ndarray
        # fast entry: every argument a single array/float leaf -> check type, shape, dtype
        trees = tape.in_tree or ()
        fast = all(isinstance(t, tuple) and len(t) == 3 and t[0] == "leaf" and t[2] in ("array", "float")
                   for t in trees) and len(trees) == len(tape.inputs)
        if fast:
            checks = []
            for i, (v, t) in enumerate(zip(tape.inputs, trees)):
                if t[2] == "float":
                    checks.append(f"type(v{v.id}) is not float")
                else:
                    g[f"_d{i}"] = v.dtype
                    checks.append(f"type(v{v.id}) is not _nd or v{v.id}.shape != {v.shape!r} "
                                  f"or v{v.id}.dtype is not _d{i}")
            cond = " or ".join(checks) or "False"
            entry = ([f"def entry({', '.join(params)}):",
                      f"    if {cond}:", f"        return _slow({', '.join(params)})",
                      "    try:"] + ["    " + ln for ln in body] +
                     ["    except TypeError:", f"        return _slow({', '.join(params)})"])
        else:
            entry = ["def entry(*args):", "    return _slow(*args)"]
        src = "\n".join(run) + "\n\n\n" + "\n".join(entry) + "\n\n\n" + "\n".join(flat) + "\n"
        return src, g

    # -- reading -----------------------------------------------------------------------
    @property
    def source(self) -> str:
        """The generated driver (`run`) and, after it, each fusion kernel, named after
        the tape's vars."""
        if self._source is None:
            drv, _ = self._driver_preview()
        else:
            drv = self._source.split("\n\n\ndef entry")[0] + "\n"
        parts = [drv]
        shown = {}
        for r in self.regions:
            if r.mode == "loop" and r.index in self.kernels:
                k = self.kernels[r.index]
                if k.key in shown:
                    shown[k.key].append(f"g{r.index}")
                    continue
                shown[k.key] = [f"g{r.index}"]
                src, _, _ = kernel_source(r, self.consts, self.uniform, canonical=False,
                                          fname=f"g{r.index}")
                parts.append(f"# {k.name} ({len(r.ops)} ops, {r.why})\n{src}")
        for b in self.blocks:
            if b.mode == "loop":
                k = self.kernels[b.index]
                if k.key in shown:
                    shown[k.key].append(b.index)
                    continue
                shown[k.key] = [b.index]
                funcs, main = block_source(b, self.consts, self.uniform, canonical=False,
                                           fname=b.index)
                parts.append(f"# {k.name} (block of {len(b.ops)} ops)\n" + "\n".join(funcs + [main]))
        for i, (key, gs) in enumerate(shown.items()):
            if len(gs) > 1:
                parts[i + 1] = f"# also runs {', '.join(gs[1:])}\n" + parts[i + 1]
        return "\n\n".join(parts)

    def _driver_preview(self):
        saved = self.kernels
        self.kernels = {i: (k if k.done else _PendingKernel(k))
                        for i, k in saved.items()}
        try:
            src, g = self._driver()
        finally:
            self.kernels = saved
        return src.split("\n\n\ndef entry")[0] + "\n", g

    def stats(self) -> dict:
        loops = [r for r in self.regions if r.mode == "loop"]
        return {
            "ops": len(self.tape.ops),
            "regions": len(self.regions),
            "loop_regions": len(loops),
            "numpy_regions": len(self.regions) - len(loops),
            "blocks": sum(1 for b in self.blocks if b.mode == "loop"),
            "kernels": len({k.key for k in self.kernels.values()}),
            "kernels_from_disk": sum(1 for k in {k.key: k for k in self.kernels.values()}.values()
                                     if k.from_disk),
            "kernel_seconds": sum(k.seconds for k in {k.key: k for k in self.kernels.values()}.values()),
            "ready": self.ready.is_set(),
            "compile_seconds": self.compile_seconds,
        }

    def __repr__(self):
        s = self.stats()
        return (f"<CompiledTape {s['ops']} ops, {s['loop_regions']} loops "
                f"({s['kernels']} kernels), {'ready' if s['ready'] else 'compiling'}>")


class _PendingKernel:
    def __init__(self, k):
        self.dispatcher = "<pending>"
        self.name = k.name
        self.error = k.error


def compile_tape(tape, wait: bool = False) -> CompiledTape:
    return CompiledTape(tape).start(wait)


def cache_info() -> dict:
    return dict(STATS, dir=diskcache.cache_dir(), kernels_in_memory=len(_KERNELS),
                files=len([f for f in diskcache.files() if f.endswith(".py")]))
