"""Primitives: the op vocabulary of the Tape IR, with the facts passes need about each.

A primitive is a NumPy-level function with static keyword params. `impl` runs it on
concrete NumPy values (the interpreter's semantics). Facts: `elementwise` (output[i]
depends on inputs[i] only, with broadcasting), `linear` (linear in every array input),
`pure` (no randomness or effects), `multiple_results`, `data_dependent_shape`.
"""

from __future__ import annotations

import numpy as np


class Primitive:
    __slots__ = ("name", "impl", "elementwise", "linear", "pure", "multiple_results",
                 "data_dependent_shape", "commutative", "user")

    def __init__(self, name, impl, *, elementwise=False, linear=False, pure=True,
                 multiple_results=False, data_dependent_shape=False, commutative=False,
                 user=False):
        self.name = name
        self.impl = impl
        self.elementwise = elementwise
        self.linear = linear
        self.pure = pure
        self.multiple_results = multiple_results
        self.data_dependent_shape = data_dependent_shape
        self.commutative = commutative
        self.user = user

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


PRIMS: dict[str, Primitive] = {}


def defprim(name, impl, **facts) -> Primitive:
    p = Primitive(name, impl, **facts)
    PRIMS[name] = p
    return p


# -- elementwise ufuncs ------------------------------------------------------------------

UNARY_UFUNCS = [
    np.negative, np.positive, np.absolute, np.sqrt, np.cbrt, np.square, np.reciprocal,
    np.exp, np.exp2, np.expm1, np.log, np.log2, np.log10, np.log1p,
    np.sin, np.cos, np.tan, np.arcsin, np.arccos, np.arctan,
    np.sinh, np.cosh, np.tanh, np.arcsinh, np.arccosh, np.arctanh,
    np.deg2rad, np.rad2deg, np.conjugate,
    np.sign, np.floor, np.ceil, np.trunc, np.rint, np.signbit,
    np.isnan, np.isinf, np.isfinite, np.logical_not, np.invert,
]
BINARY_UFUNCS = [
    np.add, np.subtract, np.multiply, np.divide, np.power, np.float_power,
    np.arctan2, np.hypot, np.maximum, np.minimum, np.fmax, np.fmin,
    np.logaddexp, np.logaddexp2, np.copysign, np.remainder, np.fmod, np.floor_divide,
    np.greater, np.greater_equal, np.less, np.less_equal, np.equal, np.not_equal,
    np.logical_and, np.logical_or, np.logical_xor, np.bitwise_and, np.bitwise_or, np.bitwise_xor,
]
LINEAR_UFUNCS = {"negative", "positive", "add", "subtract", "conjugate", "deg2rad", "rad2deg"}
COMMUTATIVE_UFUNCS = {"add", "multiply", "maximum", "minimum", "fmax", "fmin", "hypot",
                      "logaddexp", "logaddexp2", "equal", "not_equal", "logical_and",
                      "logical_or", "logical_xor"}

UFUNC_PRIMS: dict = {}
ON_NEW_UFUNC: list = []  # callbacks(ufunc) for a ufunc not from NumPy (rules load SciPy's lazily)


def ufunc_prim(ufunc) -> Primitive:
    """The primitive for a NumPy (or SciPy) ufunc, created on first use."""
    p = UFUNC_PRIMS.get(ufunc)
    if p is None:
        name = ufunc.__name__
        if name in PRIMS and PRIMS[name].impl is not ufunc:
            name = f"{getattr(ufunc, '__module__', None) or 'ufunc'}.{name}"
        p = defprim(name, ufunc, elementwise=True, linear=name in LINEAR_UFUNCS,
                    commutative=name in COMMUTATIVE_UFUNCS)
        UFUNC_PRIMS[ufunc] = p
        if getattr(np, ufunc.__name__, None) is not ufunc:
            for hook in ON_NEW_UFUNC:
                hook(ufunc)
    return p


for _u in UNARY_UFUNCS + BINARY_UFUNCS:
    ufunc_prim(_u)
matmul = defprim("matmul", np.matmul)
UFUNC_PRIMS[np.matmul] = matmul


def _gemm(a, b, *, ta=False, tb=False):
    """op(a) @ op(b) for 2-D a and b, op a transpose where its flag is set: BLAS gemm's
    transpose arguments (XLA's dot_general names the contracting axes the same way), so
    a transpose feeding a matmul is not an op of its own. `passes.fold` makes it from
    matmul(transpose(x), y); the flags are given only when set."""
    return np.matmul(a.T if ta else a, b.T if tb else b)


gemm = defprim("gemm", _gemm)


def gemm_params(ta: bool, tb: bool) -> tuple:
    """The canonical params of a gemm op (set flags only), so CSE sees one form."""
    return tuple((k, True) for k, f in (("ta", ta), ("tb", tb)) if f)


# -- index templates ----------------------------------------------------------------------
# An index is stored as a hashable template; array entries refer to extra op inputs.
#   ("s", start, stop, step) slice | int | None | Ellipsis | ("a", k) k-th array input


def decode_index(template, arrays):
    out = []
    for t in template:
        if isinstance(t, tuple):
            out.append(slice(t[1], t[2], t[3]) if t[0] == "s" else arrays[t[1]])
        else:
            out.append(t)
    return tuple(out)


def _getitem(x, *arrays, index):
    return x[decode_index(index, arrays)]


def _untake(g, *arrays, index, shape):
    """zeros(shape) with g added at index (np.add.at semantics): the adjoint of getitem."""
    out = np.zeros(shape, dtype=np.result_type(g))
    if not arrays:  # basic indexing selects each element at most once
        out[decode_index(index, arrays)] = g
        return out
    idx = tuple(np.nonzero(a)[0] if getattr(a, "dtype", None) == bool and a.ndim == 1 else a
                for a in decode_index(index, arrays))
    if any(isinstance(i, np.ndarray) and i.dtype == bool for i in idx):
        out[idx] += g  # multi-dimensional masks select each element at most once
    else:
        np.add.at(out, idx, g)
    return out


# -- array primitives ---------------------------------------------------------------------

_add_reduce = np.add.reduce


def _sum(x, axis=None, keepdims=False):
    # np.sum of an ndarray is np.add.reduce (`_wrapreduction`: same dtype rules, result
    # type, axis tuples, 0-d), without its Python wrapper (about 1.5 us a call)
    if x.__class__ is np.ndarray and (axis is None or axis.__class__ is int or axis.__class__ is tuple):
        return _add_reduce(x, axis, None, None, keepdims)  # (axis, dtype, out, keepdims)
    return np.sum(x, axis=axis, keepdims=keepdims)


sum_ = defprim("sum", _sum, linear=True)
prod = defprim("prod", lambda x, axis=None, keepdims=False: np.prod(x, axis=axis, keepdims=keepdims))
max_ = defprim("max", lambda x, axis=None, keepdims=False: np.max(x, axis=axis, keepdims=keepdims))
min_ = defprim("min", lambda x, axis=None, keepdims=False: np.min(x, axis=axis, keepdims=keepdims))
cumsum = defprim("cumsum", lambda x, axis: np.cumsum(x, axis=axis), linear=True)
cumprod = defprim("cumprod", lambda x, axis: np.cumprod(x, axis=axis))
any_ = defprim("any", lambda x, axis=None, keepdims=False: np.any(x, axis=axis, keepdims=keepdims))
all_ = defprim("all", lambda x, axis=None, keepdims=False: np.all(x, axis=axis, keepdims=keepdims))
argmax = defprim("argmax", lambda x, axis=None: np.argmax(x, axis=axis))
argmin = defprim("argmin", lambda x, axis=None: np.argmin(x, axis=axis))
einsum = defprim("einsum", lambda *xs, subscripts: np.einsum(subscripts, *xs, optimize=True))
reshape = defprim("reshape", lambda x, shape: np.reshape(x, shape), linear=True)
transpose = defprim("transpose", lambda x, axes: np.transpose(x, axes), linear=True)
broadcast_to = defprim("broadcast_to", lambda x, shape: np.broadcast_to(x, shape), linear=True)
concatenate = defprim("concatenate", lambda *xs, axis: np.concatenate(xs, axis=axis), linear=True)
getitem = defprim("getitem", _getitem, linear=True, data_dependent_shape=True)
untake = defprim("untake", _untake, linear=True, data_dependent_shape=True)
where = defprim("where", np.where, elementwise=True)
astype = defprim("astype", lambda x, dtype: np.asarray(x).astype(dtype), elementwise=True, linear=True)
full = defprim("full", lambda shape, dtype, fill: np.full(shape, fill, dtype=dtype))
const = defprim("const", lambda value: value.array)
# A fresh, writable array: gradients handed to users never alias an input, each other or a
# read-only broadcast. Impure so that no pass merges two copies or drops one as identity.
copy = defprim("copy", lambda x: np.array(x, copy=True), elementwise=True, pure=False)
stop_gradient = defprim("stop_gradient", lambda x: x, elementwise=True)
sort = defprim("sort", lambda x, axis: np.sort(x, axis=axis))
argsort = defprim("argsort", lambda x, axis: np.argsort(x, axis=axis))
flip = defprim("flip", lambda x, axis: np.flip(x, axis=axis), linear=True)
real = defprim("real", np.real, elementwise=True, linear=True)
imag = defprim("imag", np.imag, elementwise=True, linear=True)
def _capture(level):
    raise RuntimeError("a tape that captured a value of an enclosing trace cannot be replayed alone")


capture = defprim("capture", _capture, pure=False)
round_ = defprim("round", lambda x, decimals=0: np.round(x, decimals), elementwise=True)


class ArrayValue:
    """A hashable wrapper for an array constant (the `value` param of a `const` op)."""

    __slots__ = ("array", "_hash")

    def __init__(self, array):
        self.array = array
        self._hash = None

    def __hash__(self):
        if self._hash is None:
            a = np.ascontiguousarray(self.array)
            self._hash = hash((a.shape, a.dtype.str, a.tobytes() if a.nbytes <= 1 << 16 else id(self.array)))
        return self._hash

    def __eq__(self, other):
        if not isinstance(other, ArrayValue):
            return False
        if self.array is other.array:
            return True
        a, b = self.array, other.array
        return (a.shape == b.shape and a.dtype == b.dtype and a.nbytes <= 1 << 16
                and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))

    def __repr__(self):
        return f"array{list(self.array.shape)}"
