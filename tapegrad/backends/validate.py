"""Input checks in front of compiled code: nothing reaches a Numba kernel unchecked.

Kernels index their arguments without bounds checks, with the loop bounds taken from one
argument's shape, so a wrong shape could read out of bounds. `check_leaves` is what
`CompiledTape.run(leaves)` and the driver's slow entry run first: every leaf must have
the traced shape and dtype (native byte order included) or it is a `ValueError` naming
the input, expected vs got. Arrays Numba's C-layout kernels would refuse (strided or
negative-stride views, read-only or unaligned buffers) are copied C-contiguous here, so
they run compiled instead of failing over to the interpreter.
"""

from __future__ import annotations

import numpy as np

_SCALARS = (float, int, bool, complex, np.generic)


def describe(dtype, shape) -> str:
    return f"{np.dtype(dtype)}[{','.join(map(str, shape))}]"


def _got(x) -> str:
    if isinstance(x, np.ndarray):
        return describe(x.dtype, x.shape)
    if isinstance(x, np.generic):
        return describe(x.dtype, ())
    return type(x).__name__


_F64 = np.dtype(np.float64)


def check_leaves(tape, leaves, names=None) -> list:
    """-> `leaves`, each checked against `tape.inputs` (ValueError naming the input) and
    made safe for C-layout kernels. `names[k]` names input k in messages."""
    inputs = tape.inputs
    if type(leaves) is list and len(leaves) == len(inputs):  # fast path: ~0.2 us a leaf
        for v, x in zip(inputs, leaves):
            if type(x) is np.ndarray:
                if x.shape != v.shape or x.dtype != v.dtype:
                    break
                f = x.flags
                if not (f.c_contiguous and f.writeable and f.aligned):
                    break
            elif type(x) is not float or v.shape != () or v.dtype != _F64:
                break
        else:
            return leaves
    return _check_slow(tape, leaves, names)


def _check_slow(tape, leaves, names):
    from ..trace import Tracer

    inputs = tape.inputs
    if not isinstance(leaves, (list, tuple)):
        raise ValueError(f"expected a list of {len(inputs)} input values, got "
                         f"{type(leaves).__name__}")
    if len(leaves) != len(inputs):
        raise ValueError(f"tape takes {len(inputs)} inputs, got {len(leaves)}")
    out = list(leaves)
    for k, (v, x) in enumerate(zip(inputs, leaves)):
        if type(x) is np.ndarray:
            dtype, shape = x.dtype, x.shape
        elif isinstance(x, Tracer):
            dtype, shape = x.dtype, tuple(x.shape)
        elif isinstance(x, np.memmap):  # plain data in a file: read as an ndarray
            x = out[k] = np.asarray(x)
            dtype, shape = x.dtype, x.shape
        elif isinstance(x, np.ndarray):  # subclasses (np.matrix, masked): their own semantics
            raise ValueError(subclass_message(_name(names, k, v), v, x))
        elif isinstance(x, _SCALARS):
            a = np.asarray(x)
            dtype, shape = a.dtype, a.shape
        else:
            raise ValueError(f"{_name(names, k, v)}: expected {describe(v.dtype, v.shape)}, "
                             f"got {_got(x)}")
        if dtype == object:
            raise ValueError(f"{_name(names, k, v)}: object arrays are not supported")
        if tuple(shape) != v.shape:
            raise ValueError(f"{_name(names, k, v)}: expected shape {v.shape}, got {tuple(shape)}")
        if dtype != v.dtype:
            hint = ""
            if dtype.newbyteorder("=") == v.dtype:
                hint = " (byte order differs: pass x.astype(x.dtype.newbyteorder('=')))"
            raise ValueError(f"{_name(names, k, v)}: expected dtype {v.dtype}, got {dtype}{hint}")
        if type(x) is np.ndarray and not _kernel_layout(x):
            out[k] = np.array(x, order="C", copy=True)
    return out


def subclass_message(name, v, x) -> str:
    """The error for an ndarray subclass other than np.memmap (the interpreter and the
    compiled tape both refuse them: a tape replays plain-ndarray semantics, and np.matrix
    or a masked array would silently mean something else)."""
    return (f"{name}: expected a plain numpy.ndarray {describe(v.dtype, v.shape)}, got "
            f"{type(x).__name__} (a subclass with semantics of its own: pass np.asarray(x))")


def _kernel_layout(x) -> bool:
    f = x.flags
    return f.c_contiguous and f.aligned and f.writeable


def _name(names, k, v) -> str:
    if names is not None:
        return names[k]
    return f"input {k} (%{v.id})"
