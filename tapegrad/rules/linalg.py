"""VJP rules for products: matmul and einsum."""

import numpy as np

from ..ir import prims as P
from ..trace import bind
from . import vjp, vjp_all


def _matmul_x(g, ans, x, y):
    if np.ndim(y) == 1:
        return np.expand_dims(g, -1) * y
    if np.ndim(x) == 1:
        return np.squeeze(np.matmul(y, np.expand_dims(g, -1)), -1)
    return np.matmul(g, np.swapaxes(y, -1, -2))


def _matmul_y(g, ans, x, y):
    if np.ndim(x) == 1:
        if np.ndim(y) == 1:
            return g * x
        return np.expand_dims(x, -1) * np.expand_dims(g, -2)
    if np.ndim(y) == 1:
        return np.squeeze(np.matmul(np.swapaxes(x, -1, -2), np.expand_dims(g, -1)), -1)
    return np.matmul(np.swapaxes(x, -1, -2), g)


vjp("matmul", _matmul_x, _matmul_y)


def gemm(a, b, ta=False, tb=False):
    return bind(P.gemm, a, b, **dict(P.gemm_params(ta, tb)))


# C = op(A) op(B): dop(A) = g op(B)^T and dop(B) = op(A)^T g, transposed back where the
# flag is set, each one gemm again (so second order stays gemm)
vjp("gemm",
    lambda g, ans, a, b, ta=False, tb=False: gemm(b, g, tb, True) if ta else gemm(g, b, False, not tb),
    lambda g, ans, a, b, ta=False, tb=False: gemm(g, a, True, ta) if tb else gemm(a, g, not ta, False))


def _einsum_vjp(g, ans, *xs, subscripts):
    ins, out = subscripts.split("->")
    ins = ins.split(",")
    res = []
    for i, s in enumerate(ins):
        others = [x for j, x in enumerate(xs) if j != i]
        other_s = [t for j, t in enumerate(ins) if j != i]
        present = set(out + "".join(other_s))
        # operand i's subscripts in their own order (the ellipsis where `s` has it), each
        # distinct letter once; letters found nowhere else were summed out
        flat, target = s.replace("...", "*"), ""
        for c in flat:
            if c == "*" or (c in present and c not in target):
                target += c
        target = target.replace("*", "...")
        r = np.einsum(",".join([out] + other_s) + "->" + target, g, *others)
        if target != s:
            r = _spread(r, s, target.replace("...", ""), np.shape(xs[i]))
        res.append(r)
    return res


def _spread(r, s, keep, shape):
    """From `r` (subscripts: `s` with only the letters in `keep`, each once, the ellipsis in
    place) to operand shape `shape` (subscripts `s`): broadcast along summed-out letters and
    put repeated letters (`ii`) on their diagonal."""
    flat = s.replace("...", "*")
    nell = len(shape) - len(flat) + ("*" in flat)
    extra = np.ndim(r) - len(keep) - nell  # r's ellipsis has the output's (broadcast) rank
    if extra > 0:
        at = sum(1 for k, c in enumerate(flat[:flat.index("*")]) if c in keep and c not in flat[:k])
        r = np.sum(r, axis=tuple(range(at, at + extra)))
    rshape, full, pos, seen, diag = list(np.shape(r)), [], 0, "", {}
    k = 0
    for c in flat:
        if c == "*":
            full += rshape[k:k + nell]
            k += nell
            pos += nell
            continue
        if c in keep and c not in seen:
            full.append(rshape[k])
            k += 1
        else:
            full.append(1)
        diag.setdefault(c, []).append(pos)
        seen += c
        pos += 1
    bshape = tuple(shape[p] if full[p] == 1 else full[p] for p in range(len(full)))
    r = np.broadcast_to(np.reshape(r, full), bshape)
    for c, ps in diag.items():
        if len(ps) > 1:  # keep r[..., i, ..., i, ...] only: a constant diagonal mask
            n = shape[ps[0]]
            m = np.ones((n,) * len(ps), bool)
            grids = np.indices(m.shape, sparse=True)
            for gr in grids[1:]:
                m = m & (gr == grids[0])
            mshape = [1] * len(shape)
            for p in ps:
                mshape[p] = n
            r = r * np.reshape(m, mshape)
    return r


vjp_all("einsum", _einsum_vjp)
