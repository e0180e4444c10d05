"""Fusion regions and their loop kernels: the Numba-facing half of the backend.

`plan(tape)` walks the ops once and returns steps: folded constants, single NumPy ops
(run by the Python driver) and `Region`s. A region is a set of elementwise ops with one
iteration shape (inputs broadcast into it) plus trailing `sum` reductions over any axes;
it becomes one loop nest. Ops join the open region of their shape (the passes' `Op.group`
is not used: a group closes at its reduction, while a region keeps going past one, so
W2's forward, sum and backward are one loop instead of two); a region is flushed to the
step list just before the first op outside it reads one of its values, so every region
input exists when it runs.

`kernel_source(region, ...)` writes the loop as Python for `numba.njit`: one line per
op, on scalars, with every value cast to the dtype NumPy would compute in, so float32
stays float32 (`np.float32(2.0)`, never a float64 literal). The same generator renders
tape names (`v7`, for `ctape.source`) and canonical names (`a0`, `t3`: the dedup key).

An elementwise transcendental op on enough elements is not put in a region but left to
the driver as a NumPy ufunc (`numpy_simd_pays`): NumPy's SIMD exp/tanh/log are 4-15x faster
per element than the scalar libm calls a Numba loop makes here. sin/cos are the exception:
loops of FAST_TRIG_MIN elements or more call `_tg_sin`/`_tg_cos`, branch-free polynomials
LLVM vectorises (NumPy has no SIMD float64 sin/cos here either). For the same reason a float
sum to a scalar over a long last axis runs in chunks summed in 4 lanes, and a sum over
leading axes of a stored value is added from the stored row after it: a running float sum
in the loop would keep the whole loop scalar. `blocks.form_blocks` then groups small
matmuls and runs of small regions and reductions into block kernels.
"""

from __future__ import annotations

import numpy as np

# dtypes a kernel may touch: Numba's scalar types for these match NumPy's exactly
KERNEL_DTYPES = {np.dtype(t) for t in ("float32", "float64", "int32", "int64", "bool")}

# float ufuncs written as np.<name>(...) on scalars (Numba implements these for scalars)
FLOAT_CALLS = {
    "absolute": "np.abs", "sqrt": "np.sqrt", "exp": "np.exp", "exp2": "np.exp2",
    "expm1": "np.expm1", "log": "np.log", "log2": "np.log2", "log10": "np.log10",
    "log1p": "np.log1p", "sin": "np.sin", "cos": "np.cos", "tan": "np.tan",
    "arcsin": "np.arcsin", "arccos": "np.arccos", "arctan": "np.arctan", "sinh": "np.sinh",
    "cosh": "np.cosh", "tanh": "np.tanh", "arcsinh": "np.arcsinh", "arccosh": "np.arccosh",
    "arctanh": "np.arctanh", "deg2rad": "np.deg2rad", "rad2deg": "np.rad2deg",
    "sign": "np.sign", "floor": "np.floor", "ceil": "np.ceil", "trunc": "np.trunc",
    "rint": "np.rint", "power": "np.power", "arctan2": "np.arctan2", "hypot": "np.hypot",
    "maximum": "np.maximum", "minimum": "np.minimum", "fmax": "np.fmax", "fmin": "np.fmin",
    "logaddexp": "np.logaddexp", "logaddexp2": "np.logaddexp2", "copysign": "np.copysign",
}
# these also take integer operands with NumPy's integer semantics
INT_OK = {"negative", "positive", "absolute", "square", "add", "subtract", "multiply",
          "divide", "maximum", "minimum", "sign"}
OPERATORS = {"add": "{0} + {1}", "subtract": "{0} - {1}", "multiply": "{0} * {1}",
             "divide": "{0} / {1}", "negative": "-{0}", "positive": "{0}", "square": "{0} * {0}"}
PREDICATES = {"greater": "{0} > {1}", "greater_equal": "{0} >= {1}", "less": "{0} < {1}",
              "less_equal": "{0} <= {1}", "equal": "{0} == {1}", "not_equal": "{0} != {1}",
              "isnan": "np.isnan({0})", "isinf": "np.isinf({0})", "isfinite": "np.isfinite({0})"}
LOGICAL = {"logical_and": "({0} and {1})", "logical_or": "({0} or {1})",
           "logical_xor": "({0} != {1})", "logical_not": "(not {0})"}
POWER_SHORTCUTS = {2: "{0} * {0}", 1: "{0}", 0.5: "np.sqrt({0})", -1: "{1} / {0}",
                   3: "{0} * {0} * {0}"}
TRANSCENDENTAL = {"exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan",
                  "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "arcsinh", "arccosh",
                  "arctanh", "power", "arctan2", "logaddexp", "logaddexp2"}
# a region closes at this many ops. Numba's compile time grows faster than linearly in a
# function's length: a 500-op scalar chain compiles in 1.3 s as one kernel, 5,000 ops in
# 19 s, 10,000 in 81 s. The chunks of a long repeated chain are the same kernel after
# canonical renaming, so they compile once: 5,000 or 25,000 ops take about 9 s. Values
# crossing a cut become kernel arguments (about 0.4 us each per call), so the cap stays
# well above ordinary regions: a 128 cap made W6's 300-op region 3 kernels passing 100
# forward values, 10 -> 54 us a call.
MAX_REGION_OPS = 512
VIEWS = {"broadcast_to", "reshape", "stop_gradient", "positive", "astype"}  # no arithmetic
# ns saved per element (float64, float32) by NumPy's SIMD ufunc loop over Numba's scalar libm
# call, measured on this machine (AVX2, llvmlite without SVML; 1 thread, 1e3-3e5 elements).
# float64 sin/cos are not vectorised by NumPy here (no gain); sqrt and arithmetic inline.
SIMD_SAVING_NS = {
    "exp": (4.4, 2.8), "exp2": (2.3, 4.7), "expm1": (4.6, 5.0), "log": (3.8, 3.0),
    "log2": (2.8, 5.7), "log10": (6.2, 8.4), "log1p": (5.2, 5.3), "sin": (0.0, 2.6),
    "cos": (0.0, 2.5), "tan": (3.5, 6.3), "arcsin": (5.8, 5.8), "arccos": (4.7, 5.9),
    "arctan": (3.6, 4.8), "sinh": (8.3, 8.4), "cosh": (6.0, 5.4), "tanh": (8.0, 8.6),
    "arcsinh": (16.0, 18.7), "arccosh": (11.5, 13.0), "arctanh": (12.2, 14.1),
    "arctan2": (9.5, 9.9), "power": (8.6, 4.1),
}
SPLIT_MIN_NS = 2000  # an op taken out of a loop costs an extra call or two plus a round trip

# sin/cos in a loop: libm's scalar calls (~10 ns, no SVML here) stop LLVM vectorising the
# loop; these branch-free versions vectorise (W4: sin and cos of 1e6 float64 in 2.3 ms
# instead of 13). Cody-Waite reduction by pi/2 in three 33-bit parts (exact products for
# |x| < FAST_TRIG_MAX), then fdlibm's __kernel_sin/__kernel_cos polynomials on
# [-pi/4, pi/4] and the quadrant picked by a select (LLVM vectorises it as a blend; an
# arithmetic blend s*(1-b) + c*b turned sin(-0.0) into +0.0): within 2 ulp of libm.
# A loop that meets |x| > FAST_TRIG_MAX (or inf) runs again with libm (`kernel_source`);
# loops over fewer than FAST_TRIG_MIN elements keep libm.
CHUNK, CHUNK_MIN = 512, 1024  # chunked scalar sums (`kernel_source`): chunk length, shortest last axis
FAST_TRIG = {"sin", "cos"}
FAST_TRIG_MAX = 1e5
FAST_TRIG_MIN = 1024  # elements: on fewer, nothing to vectorise (W6: 100 chained sin on 5
# elements, each step waiting for the last, runs 9 us on libm and 13 us on the polynomials)
_H = float.fromhex
_TRIG_C = {  # fdlibm k_sin.c / k_cos.c and the pi/2 split of e_rem_pio2.c, from their hex words
    "S": [_H("-0x1.5555555555549p-3"), _H("0x1.111111110f8a6p-7"), _H("-0x1.a01a019c161d5p-13"),
          _H("0x1.71de357b1fe7dp-19"), _H("-0x1.ae5e68a2b9cebp-26"), _H("0x1.5d93a5acfd57cp-33")],
    "C": [_H("0x1.555555555554cp-5"), _H("-0x1.6c16c16c15177p-10"), _H("0x1.a01a019cb159p-16"),
          _H("-0x1.27e4f809c52adp-22"), _H("0x1.1ee9ebdb4b1c4p-29"), _H("-0x1.8fae9be8838d4p-37")],
    "P": [_H("0x1.921fb544p+0"), _H("0x1.0b4611a6p-34"), _H("0x1.3198a2ep-69")],
}


def _horner(z, cs):
    expr = repr(cs[-1])
    for c in reversed(cs[:-1]):
        expr = f"({c!r} + {z} * {expr})"
    return expr


def _fast_trig_source() -> str:
    P = _TRIG_C["P"]
    red = (f"    k = np.rint(x * {2 / np.pi!r})\n"
           f"    r = ((x - k * {P[0]!r}) - k * {P[1]!r}) - k * {P[2]!r}\n"
           f"    z = r * r\n"
           f"    s = r + r * z * {_horner('z', _TRIG_C['S'])}\n"
           f"    c = 1.0 - (0.5 * z - z * z * {_horner('z', _TRIG_C['C'])})\n"
           f"    q = np.int64(k)\n"
           f"    b = np.float64(q & 1)\n")
    deco = '@numba.njit(inline="always", error_model="numpy", nogil=True)\n'
    return (f"{deco}def _tg_sin(x):\n{red}"
            f"    y = (c if b != 0.0 else s) * (1.0 - 2.0 * np.float64((q >> 1) & 1))\n"
            f"    return x if x == 0.0 else y  # sin(-0.0) is -0.0 (the reduction gives +0.0)\n\n\n"
            f"{deco}def _tg_cos(x):\n{red}"
            f"    return (s if b != 0.0 else c) * (1.0 - 2.0 * np.float64(((q + 1) >> 1) & 1))\n")


FAST_TRIG_SOURCE = _fast_trig_source()


def fast_trig(op) -> bool:
    return op.prim.name in FAST_TRIG and op.outputs[0].dtype in (np.dtype("float64"), np.dtype("float32"))


def _strip1(shape):
    i = 0
    while i < len(shape) and shape[i] == 1:
        i += 1
    return tuple(shape[i:])


def elementwise_kind(op) -> bool:
    """Can `op` be one line of a loop body?"""
    name = op.prim.name
    out = op.outputs[0] if op.outputs else None
    if out is None or len(op.outputs) != 1 or out.dtype not in KERNEL_DTYPES:
        return False
    if any(a.dtype not in KERNEL_DTYPES for a in op.inputs):
        return False
    if name in ("broadcast_to", "stop_gradient", "where", "astype"):
        return True
    if name == "reshape":  # only if right-aligned broadcasting is unchanged
        return _strip1(op.inputs[0].shape) == _strip1(out.shape)
    if not isinstance(op.prim.impl, np.ufunc) or op.prim.impl.__name__ != name:
        return False
    if name in PREDICATES or name in LOGICAL:
        if name in ("isnan", "isinf", "isfinite"):
            return op.inputs[0].dtype.kind == "f"
        return True
    if out.dtype.kind == "b":
        return False
    if out.dtype.kind == "f":
        return name in OPERATORS or name in FLOAT_CALLS or name == "reciprocal"
    return name in INT_OK and name != "divide"


def numpy_simd_pays(op, feeds_sum=False) -> bool:
    """Should this elementwise transcendental op run as a NumPy ufunc between loops? Yes
    when NumPy's SIMD loop saves more than an extra call costs (W5: tanh on 16x64 takes
    13 us as a Numba loop, 1.7 us in NumPy). An op read by a `sum` must save 4x as much:
    the split leaves that sum to NumPy, slow on short rows (W3: exp on 128x10, then
    sum(axis=1) 6.5 us in NumPy, fused 1 us)."""
    name = op.prim.name
    out = op.outputs[0]
    if name not in SIMD_SAVING_NS or out.dtype not in (np.dtype("float64"), np.dtype("float32")):
        return False
    if any(a.dtype != out.dtype for a in op.inputs if _is_var(a)):
        return False
    if name == "power" and not _is_var(op.inputs[1]) and op.inputs[1].value in POWER_SHORTCUTS:
        return False
    saving = SIMD_SAVING_NS[name][0 if out.dtype == np.float64 else 1]
    return saving * int(np.prod(out.shape, dtype=np.int64)) >= SPLIT_MIN_NS * (4 if feeds_sum else 1)


def reduction_kind(op) -> bool:
    return (op.prim.name == "sum" and op.outputs[0].dtype in KERNEL_DTYPES
            and op.inputs[0].dtype in KERNEL_DTYPES)


class Region:
    """One loop nest: elementwise `ops` over `shape`, with `sum` ops at the end."""

    def __init__(self, key, index):
        self.key = key
        self.shape = key[0]
        self.index = index
        self.ops = []
        self.members = {}  # var id -> Var computed in the loop body
        self.reds = {}  # var id -> Var produced by a reduction
        self.inputs = []  # external Vars, in first-use order
        self.outputs = []  # Vars the rest of the program reads
        self.mode = "loop"
        self.why = ""

    def add(self, op, uniform):
        self.ops.append(op)
        for a in op.inputs:
            if _is_var(a) and a.id not in self.members and a.id not in uniform \
                    and all(a.id != x.id for x in self.inputs):
                self.inputs.append(a)
        if op.prim.name == "sum":
            self.reds[op.outputs[0].id] = op.outputs[0]
        else:
            self.members[op.outputs[0].id] = op.outputs[0]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def n_compute(self) -> int:
        return sum(1 for op in self.ops if op.prim.name not in VIEWS)

    def choose_mode(self, big=1 << 14):
        """Loop, or NumPy ufuncs (`out=` buffers): NumPy's SIMD exp/tanh/sin beat the
        scalar libm calls a Numba loop makes (no SVML) once arrays are large, unless the
        loop saves enough memory traffic: W4 (4 transcendentals in 26 ops, 1e6 elements)
        runs 1.5-2x faster as one loop than as 26 NumPy calls on this machine."""
        n = self.n_compute()
        trans = sum(1 for op in self.ops if op.prim.name in TRANSCENDENTAL and not fast_trig(op)
                    and not (op.prim.name == "power" and not _is_var(op.inputs[1])
                             and op.inputs[1].value in POWER_SHORTCUTS))
        if n < 2 and not (self.reds and n >= 1):
            self.mode, self.why = "numpy", "one op: a kernel call would not pay"
        elif trans >= 0.25 * n and self.size >= big:
            self.mode, self.why = "numpy", (f"{trans} transcendental ops on {self.size} elements:"
                                            " NumPy SIMD beats scalar libm")
        else:
            self.mode, self.why = "loop", f"{n} ops fused"


def _is_var(a) -> bool:
    return hasattr(a, "id")


def is_uniform(value) -> bool:
    a = np.asarray(value)
    return a.size > 0 and a.dtype in KERNEL_DTYPES and bool(np.all(a == a.flat[0]))


def plan(tape):
    """-> (steps, consts, uniform). Steps: ("fold", op) | ("op", op) | ("region", Region).
    `consts[var id]` holds folded values (ops whose inputs are all constants); `uniform`
    names those whose elements are all equal, which a loop reads as one scalar."""
    consts = {}
    uniform = set()
    steps = []
    open_ = {}  # key -> Region
    owner = {}  # var id -> open Region that computes it
    counter = [0]
    summed = {op.inputs[0].id for op in tape.ops if op.prim.name == "sum" and op.inputs
              and _is_var(op.inputs[0])}

    def flush(r):
        if open_.get(r.key) is r:
            del open_[r.key]
            for vid in list(r.members) + list(r.reds):
                owner.pop(vid, None)
            steps.append(("region", r))

    for op in tape.ops:
        vins = [a for a in op.inputs if _is_var(a)]
        if op.prim.pure and op.prim.name != "capture" and not op.prim.multiple_results \
                and all(a.id in consts for a in vins):
            vals = [consts[a.id] if _is_var(a) else a.value for a in op.inputs]
            try:
                with np.errstate(all="ignore"):
                    consts[op.outputs[0].id] = op.prim.impl(*vals, **op.kw)
                if is_uniform(consts[op.outputs[0].id]):
                    uniform.add(op.outputs[0].id)
                steps.append(("fold", op))
                continue
            except Exception:
                pass
        if elementwise_kind(op) and not numpy_simd_pays(op, op.outputs[0].id in summed):
            key = (op.outputs[0].shape, None)  # passes' groups close at a reduction: ours don't
            for a in vins:
                r = owner.get(a.id)
                if r is not None and (r.key != key or a.id in r.reds):
                    flush(r)
            r = open_.get(key)
            if r is None:
                r = open_[key] = Region(key, counter[0])
                counter[0] += 1
            r.add(op, uniform)
            owner[op.outputs[0].id] = r
            if len(r.ops) >= MAX_REGION_OPS:
                flush(r)
            continue
        if reduction_kind(op) and vins and owner.get(vins[0].id) is not None \
                and vins[0].id in owner[vins[0].id].members:
            r = owner[vins[0].id]
            r.add(op, uniform)
            owner[op.outputs[0].id] = r
            continue
        for a in vins:
            r = owner.get(a.id)
            if r is not None:
                flush(r)
        steps.append(("op", op))
    for r in sorted(open_.values(), key=lambda r: r.index):
        flush(r)
    # region outputs: values read outside their region (or returned, or guarded)
    read_outside = {a.id for a in tape.outputs if _is_var(a)} | {g.var.id for g in tape.guards}
    where = {}
    for i, (kind, x) in enumerate(steps):
        if kind == "region":
            for op in x.ops:
                for a in op.inputs:
                    if _is_var(a) and where.get(a.id) != i:
                        read_outside.add(a.id)
                for v in op.outputs:
                    where[v.id] = i
        else:
            read_outside.update(a.id for a in x.inputs if _is_var(a))
    for kind, x in steps:
        if kind == "region":
            x.outputs = [v for op in x.ops for v in op.outputs if v.id in read_outside
                         or v.id in x.reds]
    return steps, consts, uniform


# -- kernel source -----------------------------------------------------------------------


def literal(value, dtype) -> str:
    """`value` as a Python literal of exactly `dtype` inside a Numba function."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return repr(bool(value))
    if dtype.kind in "iu":
        s = repr(int(value))
        return s if dtype == np.int64 else f"np.{dtype.name}({s})"
    v = float(value)
    s = "np.nan" if v != v else ("np.inf" if v == np.inf else "-np.inf" if v == -np.inf else repr(v))
    return s if dtype == np.float64 else f"np.{dtype.name}({s})"


def cast(expr: str, src, dst) -> str:
    src, dst = np.dtype(src), np.dtype(dst)
    if src == dst:
        return expr
    if dst.kind == "b":
        return f"({expr} != 0)"
    return f"np.{dst.name}({expr})"


def _const_dtype(value):
    return np.asarray(value).dtype


def scalar_line(op, arg, fast=False) -> str:
    """The loop-body expression of elementwise `op`; `arg(i, dtype)` renders input i cast to
    `dtype`. Returns the expression already of the output dtype. `fast`: sin/cos by the
    vectorisable `_tg_sin`/`_tg_cos` (in float64) instead of libm."""
    name = op.prim.name
    out = op.outputs[0]
    ins = op.inputs
    if name in ("broadcast_to", "reshape", "stop_gradient", "positive", "astype"):
        return arg(0, out.dtype)
    if name == "where":
        return f"({arg(1, out.dtype)} if {arg(0, np.bool_)} else {arg(2, out.dtype)})"
    if name in LOGICAL:
        return LOGICAL[name].format(*[arg(i, np.bool_) for i in range(len(ins))])
    if name in PREDICATES:
        ct = np.result_type(*[a.value if not _is_var(a) else a.dtype for a in ins])
        return PREDICATES[name].format(*[arg(i, ct) for i in range(len(ins))])
    ct = out.dtype
    args = [arg(i, ct) for i in range(len(ins))]
    if name == "reciprocal":
        expr = f"{literal(1, ct)} / {args[0]}"
    elif name == "power" and not _is_var(ins[1]) and ct.kind == "f" and \
            ins[1].value in POWER_SHORTCUTS:  # libm pow costs ~30 ns: NumPy special-cases these too
        expr = POWER_SHORTCUTS[ins[1].value].format(args[0], literal(1, ct))
    elif name in OPERATORS:
        expr = OPERATORS[name].format(*args)
    elif fast and fast_trig(op):
        expr = f"_tg_{name}({cast(args[0], ct, np.float64)})"
    else:
        expr = f"{FLOAT_CALLS[name]}({', '.join(args)})"
    if ct in (np.dtype(np.float64), np.dtype(np.int64)):
        return expr
    return f"np.{ct.name}({expr})"  # int32 and float32 arithmetic widen in Numba


def red_axes(op, ndim):
    axis = op.kw.get("axis")
    if axis is None:
        return tuple(range(ndim))
    axis = (axis,) if isinstance(axis, int) else axis
    return tuple(sorted(a % ndim for a in axis))


def acc_dtype(dtype):
    return np.dtype(np.float64) if np.dtype(dtype).kind == "f" else np.dtype(np.int64)


def kernel_source(r: Region, consts, uniform, canonical: bool, fname="kernel",
                  helpers=True) -> tuple:
    """Source of the loop kernel for region `r`. -> (source, arg Vars, output Vars).
    With sin/cos, `FAST_TRIG_SOURCE` follows the function (unless not `helpers`).

    With `canonical`, names depend only on structure (a0, t3, ...), so structurally equal
    regions give equal source: the kernel's identity for dedup and the disk cache."""
    S = r.shape
    d = len(S)
    names = {}
    ext = r.inputs
    counters = {"t": 0}

    def arr(v):  # array argument
        return f"a{ext.index(v)}" if canonical else f"v{v.id}"

    def elem(v):  # scalar element (loaded from an argument or computed)
        if v.id not in names:
            if canonical:
                names[v.id] = f"t{counters['t']}"
                counters["t"] += 1
            else:
                names[v.id] = f"v{v.id}" if v in r.members.values() else f"v{v.id}_i"
        return names[v.id]

    def oname(k, v):
        return f"o{k}" if canonical else f"v{v.id}_out"

    lines = []
    ind = "    "
    # loop bounds: from an argument that is full along that dim, else the traced size
    bounds = []
    for k in range(d):
        if S[k] == 1:
            bounds.append("1")
            continue
        for v in ext:
            off = d - len(v.shape)
            if k >= off and v.shape[k - off] == S[k]:
                bounds.append(f"{arr(v)}.shape[{k - off}]")
                break
        else:
            bounds.append(repr(S[k]))
    for k, b in enumerate(bounds):
        lines.append(f"{ind}n{k} = {b}")
    idx = ", ".join(f"i{k}" for k in range(d))
    outs = r.outputs
    red_ops = {op.outputs[0].id: op for op in r.ops if op.prim.name == "sum"}
    for k, v in enumerate(outs):
        if v.id in red_ops:
            op = red_ops[v.id]
            axes = red_axes(op, d)
            full = len(axes) == d and v.shape == ()
            ad = acc_dtype(v.dtype)
            if full:
                lines.append(f"{ind}{oname(k, v)} = {literal(0, ad)}")
            else:
                shp = ", ".join("1" if (j in axes) else f"n{j}" for j in range(d)
                                if j not in axes or op.kw.get("keepdims"))
                lines.append(f"{ind}{oname(k, v)} = np.zeros(({shp},), np.{ad.name})")
        elif v.id in r.members and d:
            lines.append(f"{ind}{oname(k, v)} = np.empty(({', '.join(f'n{j}' for j in range(d))},)"
                         f", np.{v.dtype.name})")
    body = []
    bi = ind * (d + 1)
    loaded = set()
    # float sums to a scalar: a running `o += x` is a loop-carried float add that LLVM will
    # not reorder, so the whole loop stays scalar. Over a long last axis the loop runs in
    # chunks instead: values go to a small buffer, summed after each chunk in 4 lanes.
    chunked = [k for k, v in enumerate(outs) if v.id in red_ops and v.shape == ()
               and len(red_axes(red_ops[v.id], d)) == d and acc_dtype(v.dtype).kind == "f"]
    if not (d and S[-1] >= CHUNK_MIN):
        chunked = []
    for k in chunked:
        lines.append(f"{ind}p{k} = np.empty({CHUNK}, np.float64)")
    # sums over leading axes of a value the loop also stores (W3's bias gradients): `o[i1] +=
    # x` beside the store keeps LLVM from vectorising the row (10.9 us on [128, 256]); added
    # from the stored row in a loop of its own after it, both vectorise (7.2 us). A row
    # buffer instead does not help (a second store in the loop: 11-14 us).
    stored = {v.id: k for k, v in enumerate(outs) if v.id in r.members and v.shape == S}
    rowbuf = {k: stored[red_ops[v.id].inputs[0].id] for k, v in enumerate(outs)
              if v.id in red_ops and d >= 2 and S[-1] >= 8
              and d - 1 not in red_axes(red_ops[v.id], d)
              and _is_var(red_ops[v.id].inputs[0]) and red_ops[v.id].inputs[0].id in stored}

    def arg_of(op):
        def arg(i, dtype):
            a = op.inputs[i]
            if not _is_var(a):
                return literal(a.value, dtype)
            if a.id in uniform:
                return literal(np.asarray(consts[a.id]).flat[0], dtype)
            if a.id not in r.members and a.id not in loaded:
                loaded.add(a.id)
                if a.shape:
                    off = d - len(a.shape)
                    ix = ", ".join(f"i{off + j}" if (off + j >= 0 and s == S[off + j] and s != 1)
                                   else "0" for j, s in enumerate(a.shape))  # off < 0: reshape
                    # to fewer dims drops leading 1s
                    body.append(f"{bi}{elem(a)} = {arr(a)}[{ix}]")
                else:
                    names[a.id] = arr(a)
            return cast(elem(a), a.dtype, dtype)
        return arg

    trig = r.size >= FAST_TRIG_MIN and any(fast_trig(op) for op in r.ops)

    def emit_body(fast):
        nonlocal bi
        body.clear()
        loaded.clear()
        for k in range(d - 1 if chunked else d):
            body.append(ind * (k + 1) + f"for i{k} in range(n{k}):")
        if chunked:
            h, e = ind * d, d - 1
            body.extend([f"{h}for c{e} in range(0, n{e}, {CHUNK}):",
                         f"{h}{ind}m{e} = min({CHUNK}, n{e} - c{e})",
                         f"{h}{ind}for j in range(m{e}):",
                         f"{h}{ind * 2}i{e} = c{e} + j"])
            bi = ind * (d + 2)
        for op in r.ops:
            v = op.outputs[0]
            if op.prim.name == "sum":
                continue
            expr = scalar_line(op, arg_of(op), fast=fast)
            if fast and fast_trig(op):  # counts arguments the fast sin/cos cannot reduce
                big = f"{bi}nbig += abs({arg_of(op)(0, np.float64)}) > {FAST_TRIG_MAX!r}"
                if big not in body:
                    body.append(big)
            body.append(f"{bi}{elem(v)} = {expr}")
        emit_stores()
        return list(body)

    def emit_stores():
        for k, v in enumerate(outs):
            if v.id in red_ops:
                op = red_ops[v.id]
                axes = red_axes(op, d)
                x = op.inputs[0]
                ad = acc_dtype(v.dtype)
                val = cast(elem(x), x.dtype, ad)
                if k in chunked:
                    body.append(f"{bi}p{k}[j] = {val}")
                elif k in rowbuf:
                    pass
                elif len(axes) == d and v.shape == ():
                    body.append(f"{bi}{oname(k, v)} += {val}")
                else:
                    ix = ", ".join("0" if j in axes else f"i{j}" for j in range(d)
                                   if j not in axes or op.kw.get("keepdims"))
                    body.append(f"{bi}{oname(k, v)}[{ix}] += {val}")
            elif d:
                body.append(f"{bi}{oname(k, v)}[{idx}] = {elem(v)}")
        h, e = ind * (d + 1), d - 1
        for k in chunked:  # the chunk's values summed in 4 lanes, then added on
            q = [f"q{k}_{lane}" for lane in range(4)]
            body.extend([f"{h}{' = '.join(q)} = 0.0",
                         f"{h}for j in range(0, m{e} - 3, 4):"] +
                        [f"{h}{ind}{q[lane]} += p{k}[j + {lane}]" for lane in range(4)] +
                        [f"{h}for j in range(m{e} - m{e} % 4, m{e}):",
                         f"{h}{ind}{q[0]} += p{k}[j]",
                         f"{h}{oname(k, outs[k])} += ({q[0]} + {q[1]}) + ({q[2]} + {q[3]})"])
        for k, ks in rowbuf.items():
            op = red_ops[outs[k].id]
            axes = red_axes(op, d)
            ix = ", ".join("0" if j in axes else f"i{j}" for j in range(d)
                           if j not in axes or op.kw.get("keepdims"))
            val = cast(f"{oname(ks, outs[ks])}[{idx}]", outs[ks].dtype, acc_dtype(outs[k].dtype))
            body.extend([f"{ind * d}for i{d - 1} in range(n{d - 1}):",
                         f"{ind * (d + 1)}{oname(k, outs[k])}[{ix}] += {val}"])

    if trig:  # vectorised sin/cos; the rare loop meeting |x| > FAST_TRIG_MAX runs again on libm
        fast_body = emit_body(True)
        again = [ind + ln for ln in lines + emit_body(False)]
        body[:] = [f"{ind}nbig = 0"] + lines + fast_body + [f"{ind}if nbig != 0:"] + again
        lines = []
    else:
        emit_body(False)
    rets = []
    for k, v in enumerate(outs):
        if v.id in red_ops:
            ad = acc_dtype(v.dtype)
            if v.shape == () and len(red_axes(red_ops[v.id], d)) == d:
                rets.append(cast(oname(k, v), ad, v.dtype))
            elif ad != v.dtype:
                rets.append(f"{oname(k, v)}.astype(np.{v.dtype.name})")
            else:
                rets.append(oname(k, v))
        elif d:
            rets.append(oname(k, v))
        else:
            rets.append(elem(v))
    params = ", ".join(arr(v) if v.shape else (f"a{ext.index(v)}" if canonical else f"v{v.id}")
                       for v in ext)
    src = [f"def {fname}({params}):"] + lines + body + [f"{ind}return ({', '.join(rets)},)"]
    if trig and helpers:
        src += ["", "", FAST_TRIG_SOURCE]
    return "\n".join(src) + "\n", list(ext), list(outs)


def reduce_source(op, canonical: bool, fname="kernel") -> tuple:
    """Source of a loop function for a standalone `max`/`min`/`sum` over any axes (a block
    item, `blocks.small_reduce`). -> (source, arg Vars, output Vars). Max/min propagate NaN
    like NumPy (`x > m or x != x`) and start from the first element along the reduced axes;
    sums accumulate in float64/int64 like region sums."""
    a = op.inputs[0]
    v = op.outputs[0]
    name = op.prim.name
    d = len(a.shape)
    axes = red_axes(op, d)
    keep = bool(op.kw.get("keepdims"))
    src = "a0" if canonical else f"v{a.id}"
    ind = "    "
    lines = [f"def {fname}({src}):"] + [f"{ind}n{k} = {src}.shape[{k}]" for k in range(d)]
    full = v.shape == ()
    oix = ", ".join("0" if j in axes else f"i{j}" for j in range(d) if j not in axes or keep)
    o = "o" if full else f"o[{oix}]"
    kept = [k for k in range(d) if k not in axes]
    ad = acc_dtype(v.dtype) if name == "sum" else v.dtype
    if not full:
        shp = ", ".join("1" if j in axes else f"n{j}" for j in range(d) if j not in axes or keep)
        alloc = "np.zeros" if name == "sum" else "np.empty"
        lines.append(f"{ind}o = {alloc}(({shp},), np.{ad.name})")
    if name == "sum":
        if full:
            lines.append(f"{ind}o = {literal(0, ad)}")
    else:  # start from the element at index 0 of every reduced axis
        for depth, k in enumerate(kept):
            lines.append(ind * (depth + 1) + f"for i{k} in range(n{k}):")
        first = ", ".join("0" if j in axes else f"i{j}" for j in range(d))
        lines.append(ind * (len(kept) + 1) + f"{o} = {src}[{first}]")
    for k in range(d):
        lines.append(ind * (k + 1) + f"for i{k} in range(n{k}):")
    bi = ind * (d + 1)
    lines.append(f"{bi}x = {src}[{', '.join(f'i{k}' for k in range(d))}]")
    if name == "sum":
        lines.append(f"{bi}{o} += {cast('x', a.dtype, ad)}")
    else:
        cmp = ">" if name == "max" else "<"
        lines.append(f"{bi}m = {o}")
        lines.append(f"{bi}if x {cmp} m or x != x:")
        lines.append(f"{bi}{ind}{o} = x")
    if full:
        ret = cast("o", ad, v.dtype) if name == "sum" else "o"
    else:
        ret = f"o.astype(np.{v.dtype.name})" if ad != v.dtype else "o"
    lines.append(f"{ind}return ({ret},)")
    return "\n".join(lines) + "\n", [a], [v]

