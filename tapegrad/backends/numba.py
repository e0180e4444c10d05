"""Numba lowering: a tape becomes a Python driver calling disk-cached loop kernels.

Segmented execution (shared/research/numba-feasibility.md): `kernels.plan` cuts the tape
into fusion regions and single ops. Each region in loop mode is one `@njit(cache=True)`
kernel, identified by its canonically renamed source and argument types, so equal
regions share one compiled kernel per machine. Small 2-D matmuls join the loop after
them in a block kernel (`np.dot` calls BLAS from inside Numba: one call per RNN step), and
runs of small loops, one-op regions and max/min/sum reductions join in a chain block (W3's
softmax / cross-entropy: one call). Transcendental ufuncs on arrays large enough run as
NumPy's SIMD loops between kernels (`kernels.SIMD_SAVING_NS`), except sin/cos, which long
loops compute with vectorisable polynomials. Large matmuls, large reductions, indexing
and anything else run as NumPy calls in the driver, as the interpreter runs them, reusing dead
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

from ..trace import DEBUG_NANS
from . import diskcache
from .validate import check_leaves
from .blocks import Block, block_source, form_blocks
from .driver import _Emitter, _NoInline, _sc
from .kernels import Region, kernel_source, plan
from .lower import expand_gemm

KERNEL_FORMAT = "1"  # bump when generated kernels change meaning
STATS = {"compiled": 0, "loaded": 0, "memory_hits": 0, "failed": 0, "compile_seconds": 0.0}
_KERNELS: dict = {}  # key -> Kernel, for this process
_registry_lock = threading.Lock()
_executor = None


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
    src, args, _ = kernel_source(r, consts, uniform, canonical=True)
    return _registered(_module_source(src), tuple((a.dtype, len(a.shape)) for a in args))


def kernel_for_block(b: Block, consts, uniform) -> Kernel:
    text = _block_module_source(*block_source(b, consts, uniform, canonical=True))
    return _registered(text, tuple((a.dtype, len(a.shape)) for a in b.inputs))


def _registered(text: str, argtypes: tuple) -> Kernel:
    """The process's one Kernel for this source and argument types (structural dedup)."""
    global _VERSIONS
    if _VERSIONS is None:
        _VERSIONS = _versions()
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


class CompiledTape:
    """A tape lowered to Numba. `play(*args)` gives what `tg.play(tape, *args)` gives.

    Until the kernels are ready `play` is the interpreter; `wait()` blocks until the
    compiled driver is in place. `source` is the generated Python (driver and kernels)."""

    def __init__(self, tape):
        tape = expand_gemm(tape)
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
        except _NoInline:  # each flat output as the inlined form gives it (folded constants
            # copied, kernel scalars as NumPy scalars), then the generic fill
            e.g["_fill"], e.g["_tmpl"] = fill, tape.out_tree
            ret = f"_fill(_tmpl, ({''.join(e.fill_expr(Slot(k), tape.outputs) + ', ' for k in range(len(tape.outputs)))}))"
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
        # fast entry: arguments that are array/float leaves, or tuples/lists/dicts/namedtuples
        # of them -> unpack, check each leaf's type, shape and dtype, run; anything else (and
        # any failed check) goes the slow way, which flattens and names the problem
        unpack = _fast_unpack(tape.in_tree or (), tape.inputs, g)
        if unpack is not None:
            args_s = ", ".join(f"a{i}" for i in range(len(tape.in_tree)))
            entry = ([f"def entry({args_s}):"] +
                     [f"    {ln}".replace("_SLOW", f"return _slow({args_s})") for ln in unpack] +
                     ["    try:"] + ["    " + ln for ln in body] +
                     ["    except TypeError:", f"        return _slow({args_s})"])
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


def _fast_unpack(trees, inputs, g):
    """Lines of the driver's fast entry that unpack arguments `a0, a1, ...` into the
    tape's input names and check them (`_SLOW` stands for the fallback statement), or None
    where a tree has something the entry does not unpack (statics, objects, a leaf at two
    paths, complex leaves). Flattening a tuple of four arrays took `play` 20 us a call."""
    lines, checks = [], []
    it = iter(inputs)
    n = [0]

    def leaf(expr, kind):
        v = next(it, None)
        if v is None:
            raise _NoFast
        name = f"v{v.id}"
        lines.append(f"{name} = {expr}")
        if kind == "float":
            checks.append(f"type({name}) is not float")
        elif kind == "array":
            g[f"_d{v.id}"] = v.dtype
            checks.append(f"type({name}) is not _nd or {name}.shape != {v.shape!r} "
                          f"or {name}.dtype is not _d{v.id}")
        else:
            raise _NoFast
        return name

    def walk(expr, t, arrays, seen):
        if t[0] == "leaf":
            if t[1] != len(seen):  # a leaf met twice (tied weights): the slow way
                raise _NoFast
            seen.append(t[1])
            arrays.append(leaf(expr, t[2]))  # floats too: flatten shares any leaf met twice
            return
        typ, kids = t
        if not isinstance(typ, type) or not kids:
            raise _NoFast
        n[0] += 1
        tn = f"_T{n[0]}"
        g[tn] = typ
        if typ in (tuple, list) or (issubclass(typ, tuple) and hasattr(typ, "_fields")):
            lines.extend([f"if type({expr}) is not {tn} or len({expr}) != {len(kids)}:", "    _SLOW"])
            keys = [k for k, _ in kids]
            if keys != list(range(len(kids))) and typ in (tuple, list):
                raise _NoFast
            sub = [f"{expr}[{j}]" for j in range(len(kids))]
        elif typ is dict:
            keys = tuple(k for k, _ in kids)
            if not all(type(k) in (str, int) for k in keys):
                raise _NoFast
            g[f"_K{n[0]}"] = keys
            lines.extend([f"if type({expr}) is not dict or tuple({expr}) != _K{n[0]}:", "    _SLOW"])
            sub = [f"{expr}[{k!r}]" for k in keys]
        else:
            raise _NoFast
        for j, ((_, kt), se) in enumerate(zip(kids, sub)):
            if kt[0] == "leaf":
                walk(se, kt, arrays, seen)
            else:
                tmp = f"_t{n[0]}_{j}"
                lines.append(f"{tmp} = {se}")
                walk(tmp, kt, arrays, seen)

    try:
        for i, t in enumerate(trees):
            if not isinstance(t, tuple):
                return None
            arrays = []
            walk(f"a{i}", t, arrays, [])
            if len(arrays) > 1:  # one object passed at two places: flattening sees a new tree
                checks.append(f"len({{{', '.join(f'id({a})' for a in arrays)}}}) != {len(arrays)}")
        if next(it, None) is not None:
            return None
    except _NoFast:
        return None
    return lines + [f"if {' or '.join(checks) or 'False'}:", "    _SLOW"]


class _NoFast(Exception):
    pass
