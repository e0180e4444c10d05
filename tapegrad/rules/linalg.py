"""VJP rules for products: matmul and einsum."""

import numpy as np

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


def _einsum_vjp(g, ans, *xs, subscripts):
    ins, out = subscripts.split("->")
    ins = ins.split(",")
    res = []
    for i, s in enumerate(ins):
        if len(set(s.replace("...", ""))) != len(s.replace("...", "")):
            from ..errors import NoDerivativeError

            raise NoDerivativeError(f"einsum {subscripts!r}: no derivative rule for an operand "
                                    "with a repeated index")
        others = [x for j, x in enumerate(xs) if j != i]
        other_s = [t for j, t in enumerate(ins) if j != i]
        # letters of operand i missing from everything else are summed out: restore with ones
        present = set(out + "".join(other_s))
        missing = [c for c in s.replace("...", "") if c not in present]
        target = s
        if missing:
            target = "".join(c for c in s if c not in missing)
        spec = ",".join([out] + other_s) + "->" + target
        r = np.einsum(spec, g, *others)
        if missing:
            shape = [1 if c in missing else None for c in s.replace("...", "")]
            r = _restore(r, s, missing, np.shape(xs[i]))
        res.append(r)
    return res


def _restore(r, s, missing, shape):
    ell = "..." in s
    letters = s.replace("...", "")
    nell = len(shape) - len(letters)
    full = list(letters[: s.index("...")] if ell else letters)
    expand_shape = []
    pos = 0
    flat = list(s.replace("...", "*"))
    for c in flat:
        if c == "*":
            expand_shape += list(shape[pos:pos + nell])
            pos += nell
        elif c in missing:
            expand_shape.append(1)
            pos += 1
        else:
            expand_shape.append(shape[pos])
            pos += 1
    del full
    return np.broadcast_to(np.reshape(r, expand_shape), shape)


vjp_all("einsum", _einsum_vjp)
