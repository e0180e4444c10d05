"""Per-primitive time and allocation profile of a tape (AutoGrad.jl's TimerOutputs view).

`profile(f, *args)` builds the gradient tape of `f` at `args` (`tg.grad`), replays it op by
op with the NumPy interpreter, and prints one row per primitive: forward ops under their
primitive name (`tanh`), backward ops under the forward primitive and the (1-based)
argument whose cotangent they compute (`tanh[1]`, `matmul[2]`), as in AutoGrad.jl.
`profile(tape, *args)` profiles a tape you already have (from `tg.trace` or `g.tape`).

Times are the minimum over repeats of each op (the uncontended cost on a shared machine);
an allocation is an array an op returns that owns its memory (views count nothing).
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .ir import Const, Tape

_NOTE = re.compile(r"d%\d+/d\(?%(\d+)")


@dataclass
class Row:
    """One line of the profile: a primitive (forward) or `prim[k]` (backward)."""

    name: str
    phase: str  # "forward" | "backward"
    calls: int = 0
    seconds: float = 0.0
    allocs: int = 0
    nbytes: int = 0


@dataclass
class Profile:
    """The result of `tg.profile`: `rows`, totals, and the table as `str(profile)`."""

    rows: list = field(default_factory=list)
    repeat: int = 1
    n_ops: int = 0

    def total(self, phase: str | None = None, attr: str = "seconds"):
        return sum(getattr(r, attr) for r in self.rows if phase is None or r.phase == phase)

    def __getitem__(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def __contains__(self, name: str) -> bool:
        return any(r.name == name for r in self.rows)

    def __str__(self) -> str:
        return format_profile(self)

    __repr__ = __str__


def backward_labels(tape: Tape) -> list:
    """Per op: (phase, label). Backward ops are labelled by the forward op they differentiate.

    The reverse pass handles forward ops in reverse order and, within one op, its arguments
    in order, noting the variable whose cotangent it computes (`d%out/d%in`). A cursor
    walking the forward ops backwards finds the op that reads `%in`; its position gives `[k]`.
    Two uses of one variable by the same op (`x * x`) share the first position's label.
    """
    ops = tape.ops
    first_bwd = next((i for i, op in enumerate(ops) if op.note.startswith("d%")), len(ops))
    labels = [("forward", op.prim.name) for op in ops[:first_bwd]]
    cursor, pos, last_vid, current = first_bwd, -1, None, None
    for op in ops[first_bwd:]:
        m = _NOTE.match(op.note)
        vid = int(m.group(1)) if m else None
        if vid is not None and vid != last_vid:
            found = (_find_reader(ops, cursor, pos, vid, op.loc)
                     or _find_reader(ops, first_bwd, -1, vid, op.loc))
            if found is not None:
                cursor, pos = found
                current = f"{ops[cursor].prim.name}[{pos + 1}]"
            else:
                current = None
            last_vid = vid
        labels.append(("backward", current or f"{op.prim.name}[?]"))
    return labels


def _find_reader(ops, cursor: int, pos: int, vid: int, loc: str = ""):
    """The first (op index, argument) reading `%vid`: in op `cursor` after argument `pos`,
    then in the ops before it, latest first. Where optimisation passes have merged or
    reordered backward ops, a reader on the backward op's source line is preferred."""
    cands = []
    if cursor < len(ops):
        cands += [(cursor, k) for k, a in enumerate(ops[cursor].inputs)
                  if k > pos and not isinstance(a, Const) and a.id == vid]
    for i in range(min(cursor, len(ops)) - 1, -1, -1):
        cands += [(i, k) for k, a in enumerate(ops[i].inputs)
                  if not isinstance(a, Const) and a.id == vid]
    if not cands:
        return None
    if loc:
        for c in cands:
            if ops[c[0]].loc == loc:
                return c
    return cands[0]


def _run_timed(tape: Tape, leaves: list, times: list, allocs: list) -> None:
    env = {v.id: x for v, x in zip(tape.inputs, leaves)}
    clock = time.perf_counter
    for i, op in enumerate(tape.ops):
        vals = [a.value if isinstance(a, Const) else env[a.id] for a in op.inputs]
        kw = op.kw
        t0 = clock()
        out = op.prim.impl(*vals, **kw)
        dt = clock() - t0
        if dt < times[i]:
            times[i] = dt
        outs = out if op.prim.multiple_results else (out,)
        if allocs[i] is None:
            allocs[i] = [(1, o.nbytes) for o in outs if isinstance(o, np.ndarray) and o.base is None]
        for v, o in zip(op.outputs, outs):
            env[v.id] = o


def profile(f, *args, repeat: int | None = None, min_time: float = 0.2, file=sys.stdout,
            **kwargs) -> Profile:
    """Profile the gradient tape of `f` at `args` (or a given `Tape`) per primitive.

    Prints the table to `file` (pass `file=None` to only return it) and returns a
    `Profile`. `repeat` runs of the whole tape (default: as many as fit in `min_time`
    seconds, at least 3 and at most 1000); each op's time is its minimum over runs.
    """
    from .api import flat_inputs
    from .api import grad as _grad

    if isinstance(f, Tape):
        tape = f
    elif hasattr(f, "tape") and isinstance(getattr(f, "tape"), Tape) and not callable(f):
        tape = f.tape  # a GradResult
    else:
        _, g = _grad(f, *args, **kwargs)
        tape = g.tape
    leaves = flat_inputs(tape, args)
    n = len(tape.ops)
    times, allocs = [float("inf")] * n, [None] * n
    t0 = time.perf_counter()
    _run_timed(tape, leaves, times, allocs)  # also warms caches
    runs = 1
    if repeat is None:
        one = max(time.perf_counter() - t0, 1e-7)
        repeat = int(min(1000, max(3, min_time / one)))
    times = [float("inf")] * n
    for _ in range(repeat):
        _run_timed(tape, leaves, times, allocs)
        runs += 1
    rows: dict = {}
    for op, (phase, label), dt, al in zip(tape.ops, backward_labels(tape), times, allocs):
        r = rows.get((phase, label))
        if r is None:
            r = rows[(phase, label)] = Row(label, phase)
        r.calls += 1
        r.seconds += dt
        r.allocs += sum(a for a, _ in al or ())
        r.nbytes += sum(b for _, b in al or ())
    prof = Profile(sorted(rows.values(), key=lambda r: (r.phase != "forward", -r.seconds)),
                   repeat=repeat, n_ops=n)
    if file is not None:
        print(prof, file=file)
    return prof


def _fmt_time(s: float) -> str:
    if s >= 1:
        return f"{s:.2f}s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f}ms"
    return f"{s * 1e6:.1f}µs"


def _fmt_bytes(b: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if b < 1024 or unit == "GiB":
            return f"{b:.0f}{unit}" if unit == "B" else f"{b:.1f}{unit}"
        b /= 1024
    return ""


def format_profile(p: Profile) -> str:
    tot_t = p.total() or 1e-300
    tot_b = p.total(attr="nbytes") or 1
    w = max([len(r.name) for r in p.rows] + [10]) + 2
    head = (f"{'primitive':<{w}}{'calls':>6}{'time':>11}{'%tot':>7}{'avg':>11}"
            f"{'allocs':>8}{'bytes':>11}{'%tot':>7}")
    bar = "─" * len(head)
    lines = [f"tapegrad profile: {p.n_ops} ops, min over {p.repeat} runs", bar, head, bar]
    for phase in ("forward", "backward"):
        rs = [r for r in p.rows if r.phase == phase]
        if not rs:
            continue
        t, b = p.total(phase), p.total(phase, "nbytes")
        lines.append(f"{phase:<{w}}{sum(r.calls for r in rs):>6}{_fmt_time(t):>11}"
                     f"{100 * t / tot_t:>6.1f}%{'':>11}{sum(r.allocs for r in rs):>8}"
                     f"{_fmt_bytes(b):>11}{100 * b / tot_b:>6.1f}%")
        for r in rs:
            lines.append(f"  {r.name:<{w - 2}}{r.calls:>6}{_fmt_time(r.seconds):>11}"
                         f"{100 * r.seconds / tot_t:>6.1f}%{_fmt_time(r.seconds / r.calls):>11}"
                         f"{r.allocs:>8}{_fmt_bytes(r.nbytes):>11}{100 * r.nbytes / tot_b:>6.1f}%")
    lines.append(bar)
    lines.append(f"{'total':<{w}}{p.n_ops:>6}{_fmt_time(p.total()):>11}{100.0:>6.1f}%{'':>11}"
                 f"{p.total(attr='allocs'):>8}{_fmt_bytes(p.total(attr='nbytes')):>11}{100.0:>6.1f}%")
    return "\n".join(lines)
