"""Buffer reuse: a storage plan from liveness, and the checker that verifies it.

Every array value gets a storage root: a buffer id for the fresh arrays ops allocate
(`Op.buffers`, printed `-> buf3`), the source's root for views (reshape, transpose,
broadcast_to, ...), or a fixed root for tape inputs and constants. A ufunc op (the
elementwise ones and matmul) may write into a buffer whose contents are dead: not read
by any later op, not a tape output, not a view still in use. Elementwise ufuncs may
even overwrite an input they read last (NumPy ufuncs handle the overlap). The
interpreter honours the plan with `out=`.
"""

from __future__ import annotations

import numpy as np

from ..ir import Tape, Var
from .graph import last_uses

# ops whose array result is always a fresh array the op owns
FRESH = {"matmul", "gemm", "sum", "prod", "max", "min", "cumsum", "cumprod", "any", "all", "argmax",
         "argmin", "concatenate", "untake", "where", "astype", "full", "sort", "argsort",
         "round"}


def writes_out(op) -> bool:
    """Whether the interpreter can compute `op` into a given array (`out=`)."""
    return isinstance(op.prim.impl, np.ufunc) and len(op.outputs) == 1


def fresh(op) -> bool:
    return writes_out(op) or op.prim.name in FRESH


def storage(tape: Tape) -> dict:
    """var id -> frozenset of the storage roots its value may live in: ("buf", b),
    ("in", id) for inputs, ("const", id) for constants, ("own", id) for fresh arrays
    without a buffer. Views and unknown ops share their inputs' roots."""
    roots = {v.id: frozenset({("in", v.id)}) for v in tape.inputs}
    for op in tape.ops:
        bufs = op.buffers or (None,) * len(op.outputs)
        shared = frozenset().union(*[roots.get(a.id, frozenset()) for a in op.inputs
                                     if isinstance(a, Var)])
        for v, b in zip(op.outputs, bufs):
            if op.prim.name == "const":
                roots[v.id] = frozenset({("const", v.id)})
            elif b is not None:
                roots[v.id] = frozenset({("buf", b)})
            elif fresh(op):
                roots[v.id] = frozenset({("own", v.id)})
            else:
                roots[v.id] = shared | {("own", v.id)}
    return roots


def reuse_buffers(tape: Tape) -> Tape:
    """Assign buffers so that dead arrays' storage is written again by later ufunc ops.

    Preserves: play(result, *args) == play(tape, *args); `check_buffers(result)` holds:
    no buffer is overwritten while a value in it (or a view of one) is still read, tape
    inputs, constants and outputs are never overwritten. Op order is unchanged.
    """
    n = len(tape.ops)
    last = last_uses(tape)
    # a fresh value's storage is needed as long as it or any view of it is read
    plain = storage(tape.derive(ops=[op.replace(buffers=None) for op in tape.ops]))
    need = {}
    for vid, rs in plain.items():
        for r in rs:
            if r[0] == "own":
                need[r[1]] = max(need.get(r[1], -1), last.get(vid, n))
    free = {}  # (dtype, shape) -> buffer ids whose contents are dead
    busy = []  # (frees after op index, buffer id, key)
    ops, nbuf = [], 0
    for i, op in enumerate(tape.ops):
        # buffers whose contents die at this op may take its result in place
        for end, b, key in [x for x in busy if x[0] < i or (x[0] == i and writes_out(op)
                                                            and op.prim.elementwise)]:
            busy.remove((end, b, key))
            free.setdefault(key, []).append(b)
        bufs = []
        for v in op.outputs:
            if not fresh(op) or v.shape == () or op.prim.name == "const":
                bufs.append(None)
                continue
            key = (v.dtype, v.shape)
            if writes_out(op) and free.get(key):
                b = free[key].pop()
            else:
                nbuf += 1
                b = nbuf
            bufs.append(b)
            busy.append((need.get(v.id, n), b, key))
        ops.append(op.replace(buffers=tuple(bufs)) if any(b is not None for b in bufs)
                   else op.replace(buffers=None))
        # values dying here free their buffers for later ops
        for x in [x for x in busy if x[0] <= i]:
            busy.remove(x)
            free.setdefault(x[2], []).append(x[1])
    return tape.derive(ops=ops)


class BufferError(AssertionError):
    pass


def check_buffers(tape: Tape) -> None:
    """Verify a buffer plan: a buffer is written again only when nothing living in it (a
    value or a view of one) is read later, except that an elementwise ufunc may overwrite
    what it reads last; only ops that allocate get buffers, only ufunc ops reuse one;
    values sharing a buffer share dtype and shape. Inputs, constants and outputs are
    never overwritten (outputs are read "at the end")."""
    roots = storage(tape)
    last = last_uses(tape)
    living = {}  # buffer id -> var ids defined so far whose value lives in it
    kind = {}
    for i, op in enumerate(tape.ops):
        for v, b in zip(op.outputs, op.buffers or (None,) * len(op.outputs)):
            if b is None:
                continue
            if not fresh(op) or op.prim.name == "const":
                raise BufferError(f"buf{b} given to %{v.id}, whose op does not allocate")
            if kind.setdefault(b, (v.dtype, v.shape)) != (v.dtype, v.shape):
                raise BufferError(f"buf{b} holds {kind[b]} and %{v.id}::{v.type_str}")
            if b in living:
                if not writes_out(op):
                    raise BufferError(f"%{v.id}: only ufunc ops may write into buf{b}")
                for w in living[b]:
                    end = last.get(w, i)
                    if end > i or (end == i and not op.prim.elementwise):
                        raise BufferError(
                            f"%{v.id} overwrites buf{b} at op {i} while %{w} living in it is "
                            f"read at op {end}" + (" (an output)" if end == len(tape.ops) else ""))
                living[b] = []  # the old contents are gone
        for v in op.outputs:
            for r in roots.get(v.id, ()):
                if r[0] == "buf":
                    living.setdefault(r[1], []).append(v.id)
