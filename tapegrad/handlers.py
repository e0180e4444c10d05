"""How NumPy calls on traced values become primitives.

`handle_ufunc` serves `__array_ufunc__`; `HANDLERS` maps each supported NumPy function
to code that expresses it in primitives (`sum`, `reshape`, `getitem`, ...), following
NumPy's own semantics for axis, keepdims, broadcasting and dtypes.
"""

from __future__ import annotations

import string

import numpy as np

from .errors import TraceError
from .ir import prims as P
from .trace import Tracer, bind, user_loc

HANDLERS: dict = {}


def handles(*funcs):
    def deco(fn):
        for f in funcs:
            HANDLERS[f] = fn
        return fn

    return deco


def _shape(x):
    return x.shape if isinstance(x, Tracer) else np.shape(x)


def _ndim(x):
    return len(_shape(x))


def _dtype(x):
    return x.dtype if isinstance(x, Tracer) else np.result_type(x)


def _check_out(out, what):
    if out is not None:
        raise TraceError(f"{what}(..., out=...) writes in place, which tracing cannot record "
                         f"(at {user_loc()}); use the returned value instead")


# -- ufuncs ---------------------------------------------------------------------------------

_REDUCE = {np.add: "sum", np.multiply: "prod", np.maximum: "max", np.minimum: "min",
           np.logical_and: "all", np.logical_or: "any"}


def handle_ufunc(ufunc, method, inputs, kwargs):
    out = kwargs.pop("out", None)
    if out is not None and any(o is not None for o in (out if isinstance(out, tuple) else (out,))):
        raise TraceError(f"np.{ufunc.__name__}(..., out=...) on a traced value writes in place "
                         f"(at {user_loc()}); use the returned value instead")
    dtype = kwargs.pop("dtype", None)
    if kwargs.get("where", True) is not True:
        raise TraceError(f"np.{ufunc.__name__}(..., where=...) is not supported on traced values")
    kwargs.pop("where", None)
    kwargs.pop("casting", None)
    if method == "__call__":
        if kwargs:
            raise TraceError(f"np.{ufunc.__name__} keyword(s) {sorted(kwargs)} are not supported "
                             "on traced values")
        if dtype is not None:
            inputs = [astype(x, dtype) for x in inputs]
        if ufunc is np.positive:
            return inputs[0]
        if ufunc is np.matmul:
            return _matmul(*inputs)
        if ufunc is np.true_divide:
            ufunc = np.divide
        return bind(P.ufunc_prim(ufunc), *inputs)
    if method == "reduce" and ufunc in _REDUCE:
        (x,) = inputs
        extra = set(kwargs) - {"axis", "keepdims", "initial"}
        if extra:
            raise TraceError(f"np.{ufunc.__name__}.reduce keyword(s) {sorted(extra)} are not "
                             "supported on traced values")
        return _reduction(_REDUCE[ufunc], x, kwargs.get("axis", 0), kwargs.get("keepdims", False), dtype,
                          initial=kwargs.get("initial"))
    if method == "accumulate" and ufunc in (np.add, np.multiply):
        fn = np.cumsum if ufunc is np.add else np.cumprod
        return fn(inputs[0], axis=kwargs.get("axis", 0))
    if method == "outer":
        a, b = inputs
        a = reshape(a, tuple(_shape(a)) + (1,) * _ndim(b))
        return getattr(ufunc, "__call__")(a, b)
    if method == "at":
        raise TraceError(f"np.{ufunc.__name__}.at writes in place, which tracing cannot record "
                         f"(at {user_loc()})")
    raise TraceError(f"np.{ufunc.__name__}.{method} is not supported on traced values")


def _matmul(a, b):
    if _ndim(a) == 0 or _ndim(b) == 0:
        raise ValueError("matmul: Input operand does not have enough dimensions")
    return bind(P.matmul, a, b)


# -- shapes ---------------------------------------------------------------------------------


def norm_axis(axis, ndim):
    if axis is None:
        return None
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < max(ndim, 1):
            raise np.exceptions.AxisError(a, ndim)
        out.append(a % ndim if ndim else 0)
    return tuple(sorted(out))


def reshape(x, shape, order="C"):
    if order != "C":
        raise TraceError("reshape with order other than 'C' is not supported on traced values")
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    shape = tuple(int(s) for s in shape)
    size = int(np.prod(_shape(x), dtype=np.int64))
    if -1 in shape:
        known = int(np.prod([s for s in shape if s != -1], dtype=np.int64))
        shape = tuple(size // known if s == -1 and known else s for s in shape)
    if shape == tuple(_shape(x)):
        return x
    if int(np.prod(shape, dtype=np.int64)) != size:
        raise ValueError(f"cannot reshape array of size {size} into shape {shape}")
    return bind(P.reshape, x, shape=shape)


def transpose(x, axes=None):
    n = _ndim(x)
    axes = tuple(range(n))[::-1] if axes is None else tuple(int(a) % n for a in axes)
    if axes == tuple(range(n)):
        return x
    return bind(P.transpose, x, axes=axes)


def astype(x, dtype, copy=True, **_):
    dtype = np.dtype(dtype)
    if _dtype(x) == dtype:
        return x
    return bind(P.astype, x, dtype=dtype)


def broadcast_to(x, shape, subok=False):
    shape = tuple(int(s) for s in ((shape,) if np.isscalar(shape) else shape))
    if tuple(_shape(x)) == shape:
        return x
    return bind(P.broadcast_to, x, shape=shape)


handles(np.reshape)(lambda a, shape=None, order="C", newshape=None, copy=None:
                    reshape(a, shape if shape is not None else newshape, order))
handles(np.transpose)(lambda a, axes=None: transpose(a, axes))
handles(np.broadcast_to)(broadcast_to)
handles(np.ravel)(lambda a, order="C": reshape(a, (-1,), order))
handles(np.shape)(lambda a: tuple(_shape(a)))
handles(np.ndim)(lambda a: _ndim(a))
handles(np.size)(lambda a, axis=None: int(np.prod(_shape(a))) if axis is None else _shape(a)[axis])
handles(np.copy)(lambda a, order="K", subok=False: a)
handles(np.asarray, np.asanyarray, np.ascontiguousarray)(lambda a, dtype=None, **k:
                                                         a if dtype is None else astype(a, dtype))


@handles(np.swapaxes)
def swapaxes(a, axis1, axis2):
    axes = list(range(_ndim(a)))
    i, j = axis1 % len(axes), axis2 % len(axes)
    axes[i], axes[j] = axes[j], axes[i]
    return transpose(a, axes)


@handles(np.moveaxis)
def moveaxis(a, source, destination):
    n = _ndim(a)
    src = [s % n for s in np.atleast_1d(source)]
    dst = [d % n for d in np.atleast_1d(destination)]
    order = [i for i in range(n) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(a, order)


@handles(np.expand_dims)
def expand_dims(a, axis):
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    n = _ndim(a) + len(axes)
    axes = sorted(ax % n for ax in axes)
    shape = list(_shape(a))
    for ax in axes:
        shape.insert(ax, 1)
    return reshape(a, shape)


@handles(np.squeeze)
def squeeze(a, axis=None):
    shape = _shape(a)
    if axis is None:
        keep = [s for s in shape if s != 1]
    else:
        axes = norm_axis(axis, len(shape))
        for ax in axes:
            if shape[ax] != 1:
                raise ValueError("cannot select an axis to squeeze out which has size not equal to one")
        keep = [s for i, s in enumerate(shape) if i not in axes]
    return reshape(a, keep)


@handles(np.atleast_1d)
def atleast_1d(*arys):
    res = [reshape(a, (1,)) if _ndim(a) == 0 else a for a in arys]
    return res[0] if len(res) == 1 else res


@handles(np.atleast_2d)
def atleast_2d(*arys):
    res = []
    for a in arys:
        n = _ndim(a)
        res.append(reshape(a, (1, 1)) if n == 0 else reshape(a, (1,) + tuple(_shape(a))) if n == 1 else a)
    return res[0] if len(res) == 1 else res


# -- reductions -------------------------------------------------------------------------------


def _reduction(name, x, axis, keepdims, dtype=None, out=None, initial=None, where=None):
    _check_out(out, name)
    if initial is not None or (where is not None and where is not True):
        raise TraceError(f"np.{name}(..., initial=/where=) is not supported on traced values")
    if dtype is not None:
        x = astype(x, dtype)
    if not isinstance(x, Tracer):
        x = np.asarray(x)
    ax = norm_axis(axis, _ndim(x))
    if name in ("sum", "prod") and _dtype(x).kind in "bu" or (name in ("sum", "prod") and _dtype(x).kind == "i"
                                                              and _dtype(x).itemsize < 8):
        x = astype(x, np.int64 if _dtype(x).kind != "u" else np.uint64)
    if ax == () and not keepdims:
        return x
    return bind(P.PRIMS[name], x, axis=ax, keepdims=bool(keepdims))


@handles(np.sum)
def sum_(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    return _reduction("sum", a, axis, keepdims, dtype, out, initial, where)


@handles(np.prod)
def prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    return _reduction("prod", a, axis, keepdims, dtype, out, initial, where)


@handles(np.max, np.amax)
def max_(a, axis=None, out=None, keepdims=False, initial=None, where=None):
    return _reduction("max", a, axis, keepdims, None, out, initial, where)


@handles(np.min, np.amin)
def min_(a, axis=None, out=None, keepdims=False, initial=None, where=None):
    return _reduction("min", a, axis, keepdims, None, out, initial, where)


@handles(np.any)
def any_(a, axis=None, out=None, keepdims=False, where=None):
    return _reduction("any", a, axis, keepdims, None, out, None, where)


@handles(np.all)
def all_(a, axis=None, out=None, keepdims=False, where=None):
    return _reduction("all", a, axis, keepdims, None, out, None, where)


def _count(a, axis):
    shape = _shape(a)
    ax = norm_axis(axis, len(shape))
    return int(np.prod([shape[i] for i in (range(len(shape)) if ax is None else ax)], dtype=np.int64))


@handles(np.mean)
def mean(a, axis=None, dtype=None, out=None, keepdims=False, where=None):
    _check_out(out, "mean")
    if dtype is None and _dtype(a).kind in "iub":
        dtype = np.float64
    return sum_(a, axis, dtype, None, keepdims, None, where) / _count(a, axis)


@handles(np.var)
def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, where=None, mean=None,
        correction=None):
    _check_out(out, "var")
    if correction is not None:
        ddof = correction
    if dtype is None and _dtype(a).kind in "iub":
        dtype = np.float64
    if dtype is not None:
        a = astype(a, dtype)
    d = a - HANDLERS[np.mean](a, axis, keepdims=True)
    sq = np.real(d * np.conj(d)) if _dtype(a).kind == "c" else d * d
    return sum_(sq, axis, keepdims=keepdims) / max(_count(a, axis) - ddof, 0)


@handles(np.std)
def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, where=None, mean=None,
        correction=None):
    return np.sqrt(var(a, axis, dtype, out, ddof, keepdims, where, mean, correction))


@handles(np.cumsum)
def cumsum(a, axis=None, dtype=None, out=None):
    _check_out(out, "cumsum")
    if dtype is not None:
        a = astype(a, dtype)
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    return bind(P.cumsum, a, axis=int(axis) % max(_ndim(a), 1))


@handles(np.cumprod)
def cumprod(a, axis=None, dtype=None, out=None):
    _check_out(out, "cumprod")
    if dtype is not None:
        a = astype(a, dtype)
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    return bind(P.cumprod, a, axis=int(axis) % max(_ndim(a), 1))


@handles(np.argmax)
def argmax(a, axis=None, out=None, keepdims=False):
    _check_out(out, "argmax")
    r = bind(P.argmax, a, axis=None if axis is None else int(axis) % _ndim(a))
    return expand_dims(r, axis) if keepdims and axis is not None else r


@handles(np.argmin)
def argmin(a, axis=None, out=None, keepdims=False):
    _check_out(out, "argmin")
    r = bind(P.argmin, a, axis=None if axis is None else int(axis) % _ndim(a))
    return expand_dims(r, axis) if keepdims and axis is not None else r


@handles(np.sort)
def sort(a, axis=-1, kind=None, order=None, stable=None):
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    return bind(P.sort, a, axis=int(axis) % _ndim(a))


@handles(np.argsort)
def argsort(a, axis=-1, kind=None, order=None, stable=None):
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    return bind(P.argsort, a, axis=int(axis) % _ndim(a))


# -- products -------------------------------------------------------------------------------


@handles(np.dot)
def dot(a, b, out=None):
    _check_out(out, "dot")
    na, nb = _ndim(a), _ndim(b)
    if na == 0 or nb == 0:
        return np.multiply(a, b)
    if nb <= 2:
        return _matmul(a, b)
    return tensordot(a, b, axes=([na - 1], [nb - 2]))


handles(np.matmul)(lambda a, b, **k: _matmul(a, b))


@handles(np.vdot)
def vdot(a, b):
    return sum_(np.conj(reshape(a, (-1,))) * reshape(b, (-1,)))


@handles(np.inner)
def inner(a, b):
    if _ndim(a) == 0 or _ndim(b) == 0:
        return np.multiply(a, b)
    return tensordot(a, b, axes=([_ndim(a) - 1], [_ndim(b) - 1]))


@handles(np.outer)
def outer(a, b, out=None):
    _check_out(out, "outer")
    return reshape(a, (-1, 1)) * reshape(b, (1, -1))


@handles(np.tensordot)
def tensordot(a, b, axes=2):
    na, nb = _ndim(a), _ndim(b)
    if isinstance(axes, (int, np.integer)):
        ax_a, ax_b = list(range(na - axes, na)), list(range(axes))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, (int, np.integer)) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, (int, np.integer)) else list(ax_b)
        ax_a, ax_b = [i % na for i in ax_a], [i % nb for i in ax_b]
    letters = iter(string.ascii_letters)
    sa = [next(letters) for _ in range(na)]
    sb = [next(letters) for _ in range(nb)]
    for i, j in zip(ax_a, ax_b):
        sb[j] = sa[i]
    out = [c for i, c in enumerate(sa) if i not in ax_a] + [c for j, c in enumerate(sb) if j not in ax_b]
    return einsum(f"{''.join(sa)},{''.join(sb)}->{''.join(out)}", a, b)


@handles(np.einsum)
def einsum(subscripts, *operands, optimize=False, out=None, dtype=None, **kw):
    _check_out(out, "einsum")
    if not isinstance(subscripts, str):
        raise TraceError("einsum on traced values needs the subscripts-string form")
    subscripts = subscripts.replace(" ", "")
    if "->" not in subscripts:
        ins = subscripts.split(",")
        letters = "".join(ins).replace(".", "")
        outs = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
        subscripts = f"{subscripts}->{'...' if '...' in subscripts else ''}{outs}"
    return bind(P.einsum, *operands, subscripts=subscripts)


# -- joining and selecting --------------------------------------------------------------------


@handles(np.concatenate)
def concatenate(arrays, axis=0, out=None, dtype=None, casting=None):
    _check_out(out, "concatenate")
    arrays = list(arrays)
    if axis is None:
        arrays, axis = [reshape(a, (-1,)) for a in arrays], 0
    if dtype is not None:
        arrays = [astype(a, dtype) for a in arrays]
    if len(arrays) == 1:
        return arrays[0]
    return bind(P.concatenate, *arrays, axis=int(axis) % _ndim(arrays[0]))


@handles(np.stack)
def stack(arrays, axis=0, out=None, dtype=None, casting=None):
    arrays = list(arrays)
    n = _ndim(arrays[0]) + 1
    return concatenate([expand_dims(a, axis % n) for a in arrays], axis % n, out, dtype)


@handles(np.vstack, np.row_stack) if hasattr(np, "row_stack") else handles(np.vstack)
def vstack(tup, dtype=None, casting=None):
    return concatenate([atleast_2d(a) for a in tup], 0, dtype=dtype)


@handles(np.hstack)
def hstack(tup, dtype=None, casting=None):
    arrs = [atleast_1d(a) for a in tup]
    return concatenate(arrs, 0 if _ndim(arrs[0]) == 1 else 1, dtype=dtype)


@handles(np.column_stack)
def column_stack(tup):
    return concatenate([reshape(a, (-1, 1)) if _ndim(a) < 2 else a for a in tup], 1)


@handles(np.where)
def where(condition, x=None, y=None):
    if x is None and y is None:
        raise TraceError("np.where(condition) with one argument gives data-dependent indices; "
                         "use np.nonzero outside the traced function")
    return bind(P.where, condition, x, y)


@handles(np.clip)
def clip(a, a_min=None, a_max=None, out=None, min=None, max=None, **kw):
    _check_out(out, "clip")
    lo = a_min if a_min is not None else min
    hi = a_max if a_max is not None else max
    if lo is not None:
        a = np.maximum(a, lo)
    if hi is not None:
        a = np.minimum(a, hi)
    return a


def encode_index(key):
    """-> (template, arrays) for `P.getitem`."""
    if not isinstance(key, tuple):
        key = (key,)
    template, arrays = [], []
    for k in key:
        if isinstance(k, slice):
            template.append(("s", _static_int(k.start), _static_int(k.stop), _static_int(k.step)))
        elif k is None or k is Ellipsis:
            template.append(k)
        elif isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)):
            template.append(int(k))
        elif isinstance(k, Tracer) or isinstance(k, (np.ndarray, list, bool, np.bool_)):
            if not isinstance(k, Tracer):
                k = np.asarray(k)
                if k.dtype.kind not in "iub":
                    raise IndexError("arrays used as indices must be of integer (or boolean) type")
            elif k.dtype.kind not in "iub":
                raise IndexError("arrays used as indices must be of integer (or boolean) type")
            template.append(("a", len(arrays)))
            arrays.append(k)
        else:
            raise IndexError(f"unsupported index {k!r} on a traced value")
    return tuple(template), arrays


def _static_int(v):
    return None if v is None else int(v)


def getitem(x, key):
    template, arrays = encode_index(key)
    if not arrays and all(t == ("s", None, None, None) or t is None for t in template):
        if None not in template:
            return x
        return _expand_none(x, template)
    out = bind(P.getitem, x, *arrays, index=template)
    if isinstance(out, Tracer) and any(_dtype(a) == np.bool_ and _ndim(a) for a in arrays):
        # a boolean mask makes the result's shape depend on data: guard it
        out._trace.guard("shape", out, tuple(out.shape))
    return out


def _expand_none(x, template):
    """x[:, None] and friends are reshapes: record them as such."""
    shape = list(_shape(x))
    out, k = [], 0
    n_full = sum(1 for t in template if t is not None)
    if n_full > len(shape):
        raise IndexError("too many indices for array")
    for t in template:
        if t is None:
            out.append(1)
        else:
            out.append(shape[k])
            k += 1
    return reshape(x, out + shape[k:])


Tracer.__getitem__ = getitem


@handles(np.take)
def take(a, indices, axis=None, out=None, mode="raise"):
    _check_out(out, "take")
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    axis = axis % _ndim(a)
    if mode != "raise":  # NumPy's out-of-range policies, applied to the indices first
        n = _shape(a)[axis]
        indices = np.mod(indices, n) if mode == "wrap" else np.clip(indices, 0, n - 1)
    return getitem(a, (slice(None),) * axis + (indices,))


@handles(np.take_along_axis)
def take_along_axis(arr, indices, axis):
    shape = _shape(arr)
    axis = axis % len(shape)
    idx = []
    for d in range(len(shape)):
        if d == axis:
            idx.append(indices)
        else:
            s = [1] * len(shape)
            s[d] = shape[d]
            idx.append(np.arange(shape[d]).reshape(s))
    return getitem(arr, tuple(idx))


@handles(np.flip)
def flip(m, axis=None):
    n = _ndim(m)
    axes = range(n) if axis is None else norm_axis(axis, n)
    key = tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(n))
    return getitem(m, key)


@handles(np.diagonal)
def diagonal(a, offset=0, axis1=0, axis2=1):
    n = _ndim(a)
    a = moveaxis(a, (axis1 % n, axis2 % n), (n - 2, n - 1))
    r, c = _shape(a)[-2:]
    i = np.arange(max(0, -offset), min(r, c - offset) if offset >= 0 else min(r, c - offset))
    i = i[(i + offset >= 0) & (i + offset < c) & (i < r)]
    return getitem(a, (Ellipsis, i, i + offset))


@handles(np.diag)
def diag(v, k=0):
    if _ndim(v) == 2:
        return diagonal(v, k)
    if _ndim(v) != 1:
        raise ValueError("Input must be 1- or 2-d.")
    n = _shape(v)[0] + abs(k)
    i = np.arange(_shape(v)[0])
    rows, cols = (i, i + k) if k >= 0 else (i - k, i)
    return bind(P.untake, v, rows, cols, index=(("a", 0), ("a", 1)), shape=(n, n))


@handles(np.trace)
def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    _check_out(out, "trace")
    return sum_(diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype)


@handles(np.triu)
def triu(m, k=0):
    shape = _shape(m)
    return np.where(np.triu(np.ones(shape[-2:], dtype=bool), k), m, np.zeros((), _dtype(m)))


@handles(np.tril)
def tril(m, k=0):
    shape = _shape(m)
    return np.where(np.tril(np.ones(shape[-2:], dtype=bool), k), m, np.zeros((), _dtype(m)))


@handles(np.zeros_like, np.ones_like, np.empty_like, np.full_like)
def _like(a, fill_value=None, dtype=None, order="K", subok=True, shape=None, **kw):
    shape = tuple(_shape(a)) if shape is None else shape
    dtype = np.dtype(dtype or _dtype(a))
    return np.full(shape, 0 if fill_value is None else fill_value, dtype=dtype)


# np.zeros_like and friends take their fill from their own name
for _f, _v in [(np.zeros_like, 0), (np.ones_like, 1), (np.empty_like, 0)]:
    HANDLERS[_f] = (lambda v: lambda a, dtype=None, order="K", subok=True, shape=None:
                    _like(a, v, dtype, shape=shape))(_v)


@handles(np.real)
def real(val):
    return bind(P.real, val) if _dtype(val).kind == "c" else val


@handles(np.imag)
def imag(val):
    return bind(P.imag, val) if _dtype(val).kind == "c" else np.zeros(_shape(val), _dtype(val))


@handles(np.round, np.around)
def round_(a, decimals=0, out=None):
    _check_out(out, "round")
    return bind(P.round_, a, decimals=int(decimals))


@handles(np.isclose)
def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    # as NumPy: the tolerance applies to finite pairs, infinities must be equal, nan only with equal_nan
    close = np.where(np.isfinite(a) & np.isfinite(b), np.less_equal(np.abs(a - b), atol + rtol * np.abs(b)),
                     np.equal(a, b))
    return close | (np.isnan(a) & np.isnan(b)) if equal_nan else close


@handles(np.allclose)
def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    return all_(isclose(a, b, rtol, atol, equal_nan))


@handles(np.linalg.norm)
def norm(x, ord=None, axis=None, keepdims=False):
    nd = _ndim(x)
    if axis is None and ord is None:
        x2 = np.real(x * np.conj(x)) if _dtype(x).kind == "c" else x * x
        r = np.sqrt(sum_(x2))
        return reshape(r, (1,) * nd) if keepdims else r
    if axis is None:
        axis = tuple(range(nd))
    axes = norm_axis(axis, nd)
    if len(axes) == 1:
        ax = axes
        if ord is None or ord == 2:
            return np.sqrt(sum_(np.abs(x) ** 2 if _dtype(x).kind == "c" else x * x, ax, keepdims=keepdims))
        if ord == np.inf:
            return max_(np.abs(x), ax, keepdims=keepdims)
        if ord == -np.inf:
            return min_(np.abs(x), ax, keepdims=keepdims)
        if ord == 1:
            return sum_(np.abs(x), ax, keepdims=keepdims)
        if ord == 0:
            return sum_(astype(np.not_equal(x, 0), _dtype(x).type(0).real.dtype), ax, keepdims=keepdims)
        return sum_(np.abs(x) ** ord, ax, keepdims=keepdims) ** (1.0 / ord)
    if len(axes) == 2:
        r0, r1 = (int(a) % nd for a in axis)  # in the caller's order: (1, 0) transposes ord
        if ord in (None, "fro"):
            return np.sqrt(sum_(np.abs(x) ** 2 if _dtype(x).kind == "c" else x * x, axes, keepdims=keepdims))
        if ord in (1, -1):
            s = sum_(np.abs(x), r0, keepdims=True)
            r = (max_ if ord == 1 else min_)(s, r1, keepdims=True)
        elif ord in (np.inf, -np.inf):
            s = sum_(np.abs(x), r1, keepdims=True)
            r = (max_ if ord == np.inf else min_)(s, r0, keepdims=True)
        else:
            raise TraceError(f"linalg.norm(ord={ord!r}) on traced matrices is not supported yet")
        return r if keepdims else squeeze(r, axes)
    raise ValueError("Improper number of dimensions to norm.")


# -- methods on Tracer: one path, through the handlers above --------------------------------

_METHODS = {
    "sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min, "mean": np.mean,
    "var": np.var, "std": np.std, "cumsum": np.cumsum, "cumprod": np.cumprod,
    "any": np.any, "all": np.all, "argmax": np.argmax, "argmin": np.argmin,
    "dot": np.dot, "clip": np.clip, "swapaxes": np.swapaxes, "squeeze": np.squeeze,
    "ravel": np.ravel, "flatten": np.ravel, "diagonal": np.diagonal, "trace": np.trace,
    "round": np.round, "take": np.take, "sort": None, "argsort": np.argsort,
    "conj": np.conjugate, "conjugate": np.conjugate, "copy": np.copy,
}
for _m, _f in _METHODS.items():
    if _f is not None:
        setattr(Tracer, _m, (lambda f: lambda self, *a, **k: f(self, *a, **k))(_f))


def _reshape_method(self, *shape, order="C"):
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        shape = shape[0]
    return reshape(self, shape, order)


def _transpose_method(self, *axes):
    if len(axes) == 1 and not isinstance(axes[0], (int, np.integer)):
        axes = axes[0]
    return transpose(self, axes or None)


Tracer.reshape = _reshape_method
Tracer.transpose = _transpose_method
Tracer.astype = astype
Tracer.T = property(lambda self: transpose(self))
Tracer.real = property(real)
Tracer.imag = property(imag)
Tracer.sort = lambda self, *a, **k: (_ for _ in ()).throw(
    TraceError(f"x.sort() sorts in place (at {user_loc()}); use np.sort(x)"))


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    # NEP 13: defer to operands with their own __array_ufunc__ (tg.Param), so `tracer + param` works
    if any(not isinstance(x, (Tracer, np.ndarray)) and hasattr(type(x), "__array_ufunc__")
           for x in inputs):
        return NotImplemented
    return handle_ufunc(ufunc, method, inputs, kwargs)


def _array_function(self, func, types, args, kwargs):
    h = HANDLERS.get(func)
    if h is None:
        name = getattr(func, "__module__", "numpy") + "." + getattr(func, "__name__", str(func))
        raise TraceError(f"{name} is not supported on traced values yet (at {user_loc()})")
    return h(*args, **kwargs)


Tracer.__array_ufunc__ = _array_ufunc
Tracer.__array_function__ = _array_function
