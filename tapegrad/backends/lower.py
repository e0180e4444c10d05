"""Lowering rewrites the backends apply before planning kernels."""

from __future__ import annotations

from ..ir import Op, Tape
from ..ir import prims as P


def expand_gemm(tape: Tape) -> Tape:
    """gemm(a, b, ta, tb) -> matmul(transpose(a), transpose(b)) where flagged: the Numba
    backend emits `a.T.dot(b)` (a free view into BLAS) and merges small matmuls and the
    transposes they read into block kernels; it knows matmul and 2-D transpose, so it is
    handed those. Same values, same dtypes; the tape is returned as is without gemm ops."""
    if not any(op.prim is P.gemm for op in tape.ops):
        return tape
    out = tape.derive(ops=[])
    for op in tape.ops:
        if op.prim is not P.gemm:
            out.ops.append(op)
            continue
        ins = []
        for a, flag in zip(op.inputs, (op.kw.get("ta", False), op.kw.get("tb", False))):
            if flag:
                t = out.new_var(a.dtype, a.shape[::-1])
                out.ops.append(Op(P.transpose, (a,), (t,), (("axes", (1, 0)),),
                                  loc=op.loc, note=op.note))
                a = t
            ins.append(a)
        out.ops.append(op.replace(prim=P.matmul, inputs=tuple(ins), params=()))
    return out
