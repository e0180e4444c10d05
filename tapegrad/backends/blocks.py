"""Blocks: several planned steps as one deduplicated kernel, so the driver makes one call
where it made several (each NumPy call or kernel call costs 1-25 us on small arrays).

Two kinds, both formed by `form_blocks`:
- matmul blocks: small 2-D matmuls (`np.dot` calls BLAS from inside Numba), the transposes
  they read and the loop region after them (W5: one call per RNN step);
- chain blocks: a run of small loop regions, one-op regions and `max`/`min`/`sum`
  reductions (`small_reduce`), plus later small regions reading only the chain's values
  (W3: the whole softmax / cross-entropy forward and backward over [128, 10], 25 ops, one
  call instead of 12).
`block_source` writes one function: each region or reduction inlined as its own loop nest
(one Numba function compiles much faster than one per nest), matmuls as `np.dot`."""

from __future__ import annotations

import re

import numpy as np

from .kernels import FAST_TRIG_SOURCE, _is_var, kernel_source, reduce_source

# -- blocks: small matmuls and the loop after them in one kernel ------------------------------

BLOCK_MATMUL_MAX = 1 << 18  # m*k*n: above this BLAS time dwarfs a call (~2 us) and stays in NumPy
_FLOATS = (np.dtype("float32"), np.dtype("float64"))


def small_matmul(op) -> bool:
    if op.prim.name != "matmul" or len(op.inputs) != 2 or not all(map(_is_var, op.inputs)):
        return False
    a, b = op.inputs
    v = op.outputs[0]
    return (len(a.shape) == 2 and len(b.shape) == 2 and a.dtype == b.dtype == v.dtype
            and v.dtype in _FLOATS and 0 < a.shape[0] * a.shape[1] * b.shape[1] <= BLOCK_MATMUL_MAX)


CHAIN_MAX_SIZE = 1 << 14  # elements: larger regions and reductions run alone (NumPy or loop)
CHAIN_MAX_OPS = 16  # a region with more ops runs as its own kernel
_REDUCE_DTYPES = {np.dtype(t) for t in ("float32", "float64", "int32", "int64")}


def small_reduce(op) -> bool:
    """A `max`/`min`/`sum` over a small array that a chain block runs as a loop (NumPy's
    reduction set-up costs 5-25 us: W3's max over [128, 10] took 23 us)."""
    if op.prim.name not in ("max", "min", "sum") or len(op.inputs) != 1 or \
            len(op.outputs) != 1 or not _is_var(op.inputs[0]) or set(op.kw) - {"axis", "keepdims"}:
        return False
    a, v = op.inputs[0], op.outputs[0]
    if not a.shape or a.dtype not in _REDUCE_DTYPES or v.dtype not in _REDUCE_DTYPES:
        return False
    if op.prim.name != "sum" and (v.dtype != a.dtype or 0 in a.shape):
        return False
    return int(np.prod(a.shape)) <= CHAIN_MAX_SIZE


def chainable(r) -> bool:
    """A region a chain block may run: a loop of a few ops, or a one-op NumPy region, on a
    small array. Long loops stay alone: a call saves ~2 us, while joining W5's two 50-op
    loops into one kernel took 4.1 s to compile against 2.6 s for the two."""
    if r.size > CHAIN_MAX_SIZE or r.n_compute() > CHAIN_MAX_OPS:
        return False
    return r.mode == "loop" or (r.n_compute() == 1 and not r.reds)


def transpose2(op) -> bool:
    return (op.prim.name == "transpose" and _is_var(op.inputs[0]) and len(op.inputs[0].shape) == 2
            and tuple(op.kw["axes"]) == (1, 0) and op.inputs[0].dtype in _FLOATS)


class Block:
    """Small 2-D matmuls (`np.dot` inside Numba calls BLAS directly), the transposes they
    read and the loop region after them, as one kernel: W5's backward step (a loop and
    three matmuls) is one call instead of six. `items`: ("op", op) | ("region", Region)."""

    def __init__(self, index):
        self.index = index
        self.items = []
        self.inputs = []
        self.outputs = []
        self.mode = "loop"
        self.why = ""
        self.private = set()  # transposes computed outside too: recomputed here

    @property
    def ops(self):
        return [op for kind, x in self.items for op in ((x,) if kind == "op" else x.ops)]

    def regions(self):
        return [x for kind, x in self.items if kind == "region"]


def form_blocks(steps, tape, uniform):
    """Group runs of small matmuls / transposes ending in a loop region, and runs of small
    regions and reductions (chains), into Blocks. Pure steps independent of the open block
    run before it. Transposes also read outside their block are re-emitted after it (views
    cost nothing)."""
    out = []
    cur = []
    counter = [0]

    def close():
        regions = [x for kind, x in cur if kind == "region"]
        work = len(regions) + sum(1 for kind, x in cur if kind == "op" and x.prim.name != "transpose")
        if regions and (has_mm() or work >= 2):
            for r in regions:
                if r.mode != "loop":
                    r.mode, r.why = "loop", "one op, in a chain block"
            b = Block(f"b{counter[0]}")
            counter[0] += 1
            b.items = list(cur)
            out.append(("block", b))
        else:
            out.extend(cur)
        cur.clear()

    pending = set()  # vars computed by the open block

    def has_mm():
        return any(kind == "op" and x.prim.name == "matmul" for kind, x in cur)

    steps = list(steps)
    taken = set()  # indices of steps pulled forward into a chain
    inputs = {v.id for v in tape.inputs}

    def pull_ready(start):
        """Before a chain closes: later small regions reading only the chain's values (and
        the tape's inputs) join it (W3's scalar loss scaling: one kernel call fewer)."""
        if not cur or has_mm():
            return
        grew = True
        while grew:
            grew = False
            for j in range(start, len(steps)):
                kind2, y = steps[j]
                if j in taken or kind2 != "region" or not chainable(y):
                    continue
                if all(a.id in pending or a.id in inputs for a in y.inputs):
                    taken.add(j)
                    cur.append((kind2, y))
                    pending.update(v.id for op in y.ops for v in op.outputs)
                    grew = True

    for i, (kind, x) in enumerate(steps):
        if i in taken:
            continue
        if kind == "op" and small_matmul(x) and cur and not has_mm() and any(
                kind2 == "region" or small_reduce(y) for kind2, y in cur):
            close()  # a chain (loops, reductions) ends where a matmul block starts
            pending.clear()
        if kind == "op" and (small_matmul(x) or transpose2(x) or small_reduce(x)):
            cur.append((kind, x))
            pending.update(v.id for v in x.outputs)
            continue
        if kind == "region" and cur and has_mm():
            if x.mode == "loop":  # small matmuls and the loop after them
                cur.append((kind, x))
                close()
                pending.clear()
                continue
            close()
            pending.clear()
        if kind == "region" and chainable(x):  # a chain of small loops and reductions
            cur.append((kind, x))
            pending.update(v.id for op in x.ops for v in op.outputs)
            continue
        if cur and (kind == "fold" or (kind == "op" and x.prim.pure and not any(
                _is_var(a) and a.id in pending for a in x.inputs))):
            out.append((kind, x))  # independent of the open block (xs[t]): runs before it
            continue
        if cur:
            pull_ready(i + 1)
            close()
            pending.clear()
        out.append((kind, x))
    if cur:
        close()
    # a block reading W.T computed outside takes W and transposes it itself (no copy to C order)
    tmap = {op.outputs[0].id: op for kind, x in out if kind in ("op", "block")
            for op in (x.ops if kind == "block" else (x,)) if transpose2(op)}
    for kind, x in out:
        if kind == "block":
            made = {v.id for op in x.ops for v in op.outputs}
            need = [a for op in x.ops for a in op.inputs if _is_var(a) and a.id in tmap
                    and a.id not in made]
            private = list({a.id: ("op", tmap[a.id]) for a in need}.values())
            x.items = private + x.items
            x.private = {op.outputs[0].id for _, op in private}
    # inputs and outputs of each block
    read_at = {}
    for i, (kind, x) in enumerate(out):
        ops = x.ops if kind in ("region", "block") else (x,) if kind == "op" else ()
        for op in ops:
            for a in op.inputs:
                if _is_var(a):
                    read_at.setdefault(a.id, set()).add(i)
    final = []
    for i, (kind, x) in enumerate(out):
        if kind != "block":
            final.append((kind, x))
            continue
        made = {}
        for op in x.ops:
            for v in op.outputs:
                made[v.id] = v
        returned = {a.id for a in tape.outputs if _is_var(a)} | {g.var.id for g in tape.guards}
        outside = {vid for vid in made if vid not in x.private and (
            vid in returned or read_at.get(vid, {i}) - {i})}
        after = []
        for kind2, y in x.items:  # transposes read outside: re-emitted after the block
            if kind2 == "op" and y.prim.name == "transpose" and y.outputs[0].id in outside:
                outside.discard(y.outputs[0].id)
                after.append(("op", y))
                if y.inputs[0].id in made:
                    outside.add(y.inputs[0].id)
        seen = set()
        for kind2, y in x.items:
            ins = y.inputs if kind2 == "region" else [a for a in y.inputs if _is_var(a)]
            for a in ins:
                if a.id not in made and a.id not in seen:
                    seen.add(a.id)
                    x.inputs.append(a)
        x.outputs = [made[vid] for vid in made if vid in outside]
        final.append((kind, x))
        final.extend(after)
    return final


_LOCAL_NAME = re.compile(r"\b(?:[atopq]\d+(?:_\d)?|x|m|o|nbig|v\d+(?:_i|_out)?)\b")  # v7: tape names


def _inline(src: str, arg_names, lhs: str, tag: str) -> list:
    """The body of generated loop function `src` as lines of the block's function: its
    locals renamed `<tag>_<name>` (loop nests share only their integer bounds and indices
    `n0`, `i0`), its parameters
    bound to `arg_names`, its `return (...)` assigned to `lhs`. One function of several
    loop nests compiles several times faster in Numba than one function per nest (W3's
    chain of 11: 0.7 s against 4 s)."""
    lines = src.rstrip("\n").split("\n")
    head, body, ret = lines[0], lines[1:-1], lines[-1].strip()
    params = [p.strip() for p in head[head.index("(") + 1:head.rindex(")")].split(",") if p.strip()]

    def ren(text):
        return _LOCAL_NAME.sub(lambda mt: f"{tag}_{mt.group(0)}", text)

    out = [f"    {ren(p)} = {a}" for p, a in zip(params, arg_names)]
    out += [ren(ln) for ln in body]
    out.append(f"    {lhs}, = {ren(ret[len('return '):])}")
    return out


def block_source(b: Block, consts, uniform, canonical: bool, fname="kernel") -> str:
    """Module body for block `b`: one function running its items in order, each loop
    region and reduction inlined as its own loop nest, matmuls as `np.dot`. Canonical
    names (a0, t3, r0_t1) make equal blocks equal text."""
    names = {}
    for k, a in enumerate(b.inputs):
        names[a.id] = f"a{k}" if canonical else f"v{a.id}"
    counter = [0]

    def local(v):
        if v.id not in names:
            names[v.id] = f"t{counter[0]}" if canonical else f"v{v.id}"
            counter[0] += 1
        return names[v.id]

    nests = [0]
    body = []
    trig = False
    for kind, x in b.items:
        tag = f"r{nests[0]}"
        if kind == "op":
            v = x.outputs[0]
            if x.prim.name == "matmul":
                body.append(f"    {local(v)} = np.dot({names[x.inputs[0].id]}, {names[x.inputs[1].id]})")
            elif x.prim.name != "transpose":  # a reduction
                nests[0] += 1
                src, _, _ = reduce_source(x, canonical=canonical)
                if not canonical:
                    body.append(f"    # {x.prim.name} over {list(x.inputs[0].shape)}")
                body += _inline(src, [names[x.inputs[0].id]], local(v), tag)
            else:
                body.append(f"    {local(v)} = {names[x.inputs[0].id]}.T")
            continue
        nests[0] += 1
        src, args, outs = kernel_source(x, consts, uniform, canonical=canonical, helpers=False)
        trig = trig or "_tg_" in src
        if not canonical:
            body.append(f"    # g{x.index}: {len(x.ops)} ops over {list(x.shape)}")
        lhs = ", ".join(local(v) for v in outs)
        body += _inline(src, [names[a.id] for a in args], lhs, tag)
    params = ", ".join(names[a.id] for a in b.inputs)
    ret = "".join(names[v.id] + ", " for v in b.outputs)
    main = f"def {fname}({params}):\n" + "\n".join(body) + f"\n    return ({ret})\n"
    if trig:
        main += "\n\n" + FAST_TRIG_SOURCE
    return [], main
