"""Every derivative rule against central finite differences, generated from the rule table.

`CASES` is a small table of NumPy callables and input generators. Each case is traced
once to learn which primitives it exercises; `test_every_rule_has_a_case` fails when a
primitive that has a rule (`rules.VJPS`, `rules.VJPS_ALL`) appears in no case, so adding
a rule means adding a case (one line), here or in a `tests/rule_cases_*.py` file. Each case checks reverse mode with random
projections: `<u, J v>` from the gradient of `<u, f(x)>` against the central difference
of `<u, f(x + eps v)>`, per differentiable argument, and, where the case is twice
differentiable, the gradient of the projected gradient `<grad <u, f>, w>` the same way.
"""

from __future__ import annotations

import dataclasses
import pathlib
import zlib
from typing import Callable

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.ir import PRIMS
from tapegrad.ir import prims as P
from tapegrad.rules import VJPS, VJPS_ALL
from tapegrad.trace import bind

# -- input generators (domain overrides live here) ---------------------------------------------


def R(*shape, lo=-2.0, hi=2.0):
    """Uniform floats in [lo, hi)."""
    return lambda rng: rng.uniform(lo, hi, shape)


def Pos(*shape):
    """Positive, away from 0 (log, sqrt, ...)."""
    return R(*shape, lo=0.5, hi=2.0)


def Unit(*shape):
    """|x| < 1, away from +-1 (arcsin, arccos, arctanh)."""
    return R(*shape, lo=-0.8, hi=0.8)


def NonZero(*shape):
    """|x| in [0.5, 2], random sign (divisors, cbrt, hypot, copysign)."""
    return lambda rng: rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


def Distinct(*shape):
    """Values at least 0.1 apart (max, min, sort: no ties, no FD step crossing)."""
    n = int(np.prod(shape))
    return lambda rng: (rng.permutation(n) * 0.25 - n * 0.1 + rng.uniform(0, 0.05, n)).reshape(shape)


def Const(value):
    """A fixed, non-differentiated argument (indices, masks, conditions)."""
    return lambda rng: value


def Mask(*shape):
    return lambda rng: rng.uniform(size=shape) < 0.5


@dataclasses.dataclass
class Case:
    name: str
    fn: Callable
    args: tuple
    order: int = 2          # 2: also check the second derivative
    nondiff: tuple = ()     # argument indices that are not differentiated

    def __repr__(self):
        return self.name


CASES: list[Case] = []


def case(name, fn, *args, order=2, nondiff=()):
    CASES.append(Case(name, fn, tuple(args), order, tuple(nondiff)))


# -- elementwise unary -----------------------------------------------------------------------

for _f, _gen in [
    (np.negative, R), (np.absolute, NonZero), (np.sqrt, Pos), (np.cbrt, NonZero),
    (np.square, R), (np.reciprocal, NonZero), (np.exp, R), (np.exp2, R), (np.expm1, R),
    (np.log, Pos), (np.log2, Pos), (np.log10, Pos), (np.log1p, Pos),
    (np.sin, R), (np.cos, R), (np.tan, Unit), (np.arcsin, Unit), (np.arccos, Unit),
    (np.arctan, R), (np.sinh, R), (np.cosh, R), (np.tanh, R), (np.arcsinh, R),
    (np.arctanh, Unit), (np.deg2rad, R), (np.rad2deg, R), (np.conjugate, R),
]:
    case(_f.__name__, _f, _gen(3, 4))
case("arccosh", np.arccosh, R(3, 4, lo=1.5, hi=3.0))
case("abs builtin", abs, NonZero(5))
case("positive (primitive)", lambda x: bind(P.PRIMS["positive"], x), R(3))
case("unary on 0-d", np.tanh, R())
case("unary on python float", lambda x: np.exp(x) * np.sin(x), lambda rng: float(rng.uniform(-1, 1)))

# piecewise-constant ops: gradient zero (the `x * x` keeps the output differentiable)
for _f in (np.sign, np.floor, np.ceil, np.trunc, np.rint):
    case(f"{_f.__name__} (zero)", (lambda f: lambda x: f(x) * x + x * x)(_f), R(3, 4))
case("round (zero)", lambda x: np.round(x, 1) * x, R(5))

# -- elementwise binary, with broadcasting ------------------------------------------------------

_BINARY = [
    (np.add, R, R), (np.subtract, R, R), (np.multiply, R, R), (np.divide, R, NonZero),
    (np.power, Pos, R), (np.float_power, Pos, R), (np.arctan2, NonZero, NonZero),
    (np.hypot, NonZero, NonZero), (np.maximum, Distinct, Distinct),
    (np.minimum, Distinct, Distinct), (np.fmax, Distinct, Distinct),
    (np.fmin, Distinct, Distinct), (np.logaddexp, R, R), (np.logaddexp2, R, R),
    (np.copysign, NonZero, NonZero), (np.remainder, R, Pos), (np.fmod, R, NonZero),
]
for _f, _gx, _gy in _BINARY:
    name = _f.__name__
    if _gx is Distinct:  # max/min: operands must not be near-equal anywhere
        case(name, _f, Const(np.arange(12.0).reshape(3, 4) * 0.3),
             lambda rng: np.arange(12.0).reshape(3, 4)[::-1] * 0.3 + 0.05 + rng.uniform(0, .01, (3, 4)))
        case(f"{name} broadcast (3,1)x(4)", _f, lambda rng: np.array([[0.1], [1.3], [2.4]]),
             lambda rng: np.array([0.55, 1.05, 1.95, 2.9]) + rng.uniform(0, .01, 4))
        continue
    case(name, _f, _gx(3, 4), _gy(3, 4))
    case(f"{name} broadcast (3,1)x(4)", _f, _gx(3, 1), _gy(4))
    case(f"{name} broadcast ()x(2,3)", _f, _gx(), _gy(2, 3))
    case(f"{name} with python scalar", (lambda f: lambda x: f(x, 1.7) + f(1.3, x))(_f), _gx(3))
case("maximum ties split", np.maximum, Const(np.array([1.0, 2.0])), Const(np.array([1.0, 3.0])), order=1)
case("x ** 2 (int const)", lambda x: x ** 2, R(4))
case("x ** 3 negative base", lambda x: x ** 3, NonZero(4))
case("x ** 0", lambda x: x ** 0 + x, R(4))
case("x ** 0.5", lambda x: x ** 0.5, Pos(4))
case("2.0 ** x", lambda x: 2.0 ** x, R(4))
case("x ** y (0-d y)", lambda x, y: x ** y, Pos(4), Pos())
case("division by int", lambda x: x / 3 + 2 / x, NonZero(3))
case("floor_divide (zero)", lambda x, y: np.floor_divide(x, y) * x + y * y, R(3, 4), Pos(3, 4))
case("x // y (zero)", lambda x, y: (x // y) * y, R(3, 4), Pos(4))
case("x % y", lambda x, y: x % y, R(3, 4), Pos(4))

# comparisons and logic: boolean outputs carry no gradient; they select
case("comparisons", lambda x, y: (x > y) * x + (x <= y) * y + (x < y) * (x >= y) * 3.0
     + (x == y) * x + (x != y) * y, R(3, 4), R(4))
case("logical ops", lambda x, y: np.where(np.logical_and(x > 0, y < 0) | np.logical_xor(x > 1, y > 1)
                                          | ~(x < -1), x * y, x + y), R(3, 4), R(3, 4))
case("isfinite/isnan/isinf/signbit", lambda x: np.where(np.isfinite(x) & ~np.isnan(x) & ~np.isinf(x)
                                                        & ~np.signbit(x), x * x, -x), R(6))

# -- where, clip, astype, complex -----------------------------------------------------------------

case("where", np.where, Mask(3, 4), R(3, 4), R(3, 4), nondiff=(0,))
case("where broadcast", np.where, Mask(3, 1), R(4), R(3, 4), nondiff=(0,))
case("where scalar branch", lambda c, x: np.where(c, x, 0.0) + np.where(c, 1.0, x), Mask(5), R(5),
     nondiff=(0,))
case("where from comparison", lambda x: np.where(x > 0, np.sqrt(np.abs(x)), x ** 2), NonZero(6))
case("clip scalars", lambda x: np.clip(x, -0.5, 0.7), R(10))
case("clip arrays", lambda x, lo, hi: np.clip(x, lo, hi), R(3, 4), R(4, lo=-2, hi=-1), R(3, 1, lo=1, hi=2))
case("clip method one-sided", lambda x: x.clip(min=0.1) + x.clip(max=-0.1), NonZero(5))
case("copy", lambda x: np.sin(bind(P.copy, x)), R(3, 2))
case("astype complex", lambda x: np.real(x.astype(np.complex128) * (1 + 2j)), R(4))
case("real/imag/conj of complex", lambda x, y: np.real((x + 1j * y) ** 2) * np.imag(np.conj(x + 1j * y)),
     R(4), R(4))

# -- reductions -------------------------------------------------------------------------------------

for _name, _f, _gen in [("sum", np.sum, R), ("prod", np.prod, NonZero), ("max", np.max, Distinct),
                        ("min", np.min, Distinct), ("mean", np.mean, R)]:
    for _axis in (None, 0, 1, -1, (0, 2)):
        for _kd in (False, True):
            case(f"{_name} axis={_axis} keepdims={_kd}",
                 (lambda f, a, k: lambda x: f(x, axis=a, keepdims=k))(_f, _axis, _kd), _gen(2, 3, 4))
case("prod with one zero", lambda x: np.prod(x, axis=1), Const(np.array([[1.5, 0.0, 2.0], [0.5, 3.0, -1.0]])),
     order=1)
case("prod with two zeros", np.prod, Const(np.array([0.0, 2.0, 0.0])), order=1)
case("sum method", lambda x: x.sum(0) + x.sum(axis=1, keepdims=True), R(3, 3))
case("max ties split", lambda x: np.max(x), Const(np.array([1.0, 3.0, 3.0])), order=1)
case("min ties along axis", lambda x: np.min(x, axis=1), Const(np.array([[1.0, 1.0], [2.0, 0.5]])),
     order=1)
for _ddof in (0, 1):
    for _axis in (None, 0, (1, 2)):
        case(f"var ddof={_ddof} axis={_axis}", (lambda d, a: lambda x: np.var(x, axis=a, ddof=d))(_ddof, _axis),
             R(2, 3, 4))
        case(f"std ddof={_ddof} axis={_axis}", (lambda d, a: lambda x: np.std(x, axis=a, ddof=d))(_ddof, _axis),
             R(2, 3, 4))
case("var keepdims method", lambda x: x.var(axis=0, keepdims=True) + x.std(), R(4, 3))
for _axis in (None, 0, 1, -1):
    case(f"cumsum axis={_axis}", (lambda a: lambda x: np.cumsum(x, axis=a))(_axis), R(3, 4))
    case(f"cumprod axis={_axis}", (lambda a: lambda x: np.cumprod(x, axis=a))(_axis), NonZero(3, 4))
case("sort", lambda x: np.sort(x, axis=-1), Distinct(3, 4))
case("sort axis 0", lambda x: np.sort(x, axis=0), Distinct(3, 4))
case("argmax/argmin index", lambda x: x[np.argmax(x)] * x[np.argmin(x)], Distinct(5))
case("argmax along axis", lambda x: np.take_along_axis(x, np.argmax(x, axis=1)[:, None], axis=1), Distinct(3, 4))
case("argsort gather", lambda x: x[np.argsort(x)] * np.arange(5.0), Distinct(5))
case("any/all select", lambda x: np.where(np.any(x > 0, axis=0), x, 2 * x) + np.where(np.all(x > -5), x, 0.0),
     R(3, 4))

# -- products ---------------------------------------------------------------------------------------

case("dot 1-D 1-D", np.dot, R(4), R(4))
case("dot 2-D 1-D", np.dot, R(3, 4), R(4))
case("dot 1-D 2-D", np.dot, R(3), R(3, 4))
case("dot 2-D 2-D", np.dot, R(3, 4), R(4, 2))
case("dot 3-D 2-D", np.dot, R(2, 3, 4), R(4, 2))
case("dot 2-D 3-D", np.dot, R(3, 4), R(2, 4, 5))
case("dot scalar", np.dot, R(), R(3))
case("dot method", lambda x, y: x.dot(y), R(3, 4), R(4))
case("matmul 2-D", np.matmul, R(3, 4), R(4, 2))
case("matmul @ 1-D 1-D", lambda x, y: x @ y, R(4), R(4))
case("matmul 1-D 2-D", np.matmul, R(3), R(3, 4))
case("matmul 2-D 1-D", np.matmul, R(3, 4), R(4))
case("matmul batched", np.matmul, R(2, 3, 4), R(2, 4, 5))
case("matmul batch broadcast", np.matmul, R(2, 1, 3, 4), R(5, 4, 2))
case("matmul batched x 2-D", np.matmul, R(2, 3, 4), R(4, 2))
case("matmul 1-D x batched", np.matmul, R(3), R(2, 3, 4))
case("matmul batched x 1-D", np.matmul, R(2, 3, 4), R(4))
case("matmul with const", lambda x: np.ones((2, 3)) @ x @ np.arange(4.0), R(3, 4))
case("gemm", lambda a, b: bind(P.gemm, a, b), R(3, 4), R(4, 2))
case("gemm ta", lambda a, b: bind(P.gemm, a, b, ta=True), R(4, 3), R(4, 2))
case("gemm tb", lambda a, b: bind(P.gemm, a, b, tb=True), R(3, 4), R(2, 4))
case("gemm ta tb", lambda a, b: bind(P.gemm, a, b, ta=True, tb=True), R(4, 3), R(2, 4))
case("outer", np.outer, R(3), R(4))
case("outer of 2-D", np.outer, R(2, 2), R(3))
case("inner", np.inner, R(2, 4), R(3, 4))
case("vdot", np.vdot, R(2, 3), R(3, 2))
case("tensordot axes=1", lambda x, y: np.tensordot(x, y, axes=1), R(2, 3), R(3, 4))
case("tensordot axes=2", lambda x, y: np.tensordot(x, y), R(2, 3, 4), R(3, 4, 2))
case("tensordot axes=lists", lambda x, y: np.tensordot(x, y, axes=([1, 0], [0, 2])), R(3, 2, 4), R(2, 5, 3))
case("tensordot axes=0", lambda x, y: np.tensordot(x, y, axes=0), R(2), R(3))
for _spec, _shapes in [("ij,jk->ik", [(2, 3), (3, 4)]), ("ij,jk", [(2, 3), (3, 4)]), ("ij->", [(2, 3)]),
                       ("i,i->", [(4,), (4,)]), ("ijk,ik->j", [(2, 3, 4), (2, 4)]), ("ij->ji", [(2, 3)]),
                       ("...ij,...jk->...ik", [(5, 2, 3), (5, 3, 4)]), ("ij,k->ik", [(2, 3), (4,)]),
                       ("i,j,k->ijk", [(2,), (3,), (4,)]), ("bij,bjk,k->bi", [(2, 3, 4), (2, 4, 5), (5,)]),
                       ("...i->...", [(2, 3, 4)]), ("i...->...", [(2, 3, 4)]), ("ii->", [(3, 3)]),
                       ("ii", [(3, 3)]), ("ii->i", [(3, 3)]), ("iji->ij", [(2, 3, 2)]),
                       ("ij,jj->i", [(2, 3), (3, 3)]), ("...ii->...i", [(2, 3, 3)]),
                       ("ij...,k->i...", [(2, 3, 4), (5,)]), ("...ij,...jk->...ik", [(1, 2, 3), (5, 3, 4)])]:
    case(f"einsum {_spec}", (lambda s: lambda *xs: np.einsum(s, *xs))(_spec), *[R(*s) for s in _shapes])

# -- shapes -----------------------------------------------------------------------------------------

case("reshape -1", lambda x: np.reshape(x, (4, -1)), R(2, 3, 2))
case("reshape method", lambda x: x.reshape(3, 4) + x.reshape((3, 4)), R(12))
case("ravel/flatten", lambda x: np.ravel(x) * x.flatten(), R(3, 4))
case("transpose", np.transpose, R(2, 3, 4))
case("transpose axes", lambda x: np.transpose(x, (1, 2, 0)), R(2, 3, 4))
case("transpose negative axes", lambda x: x.transpose(-1, 0, 1), R(2, 3, 4))
case(".T", lambda x: x.T @ x, R(3, 2))
case("swapaxes", lambda x: np.swapaxes(x, 0, -1), R(2, 3, 4))
case("moveaxis", lambda x: np.moveaxis(x, 0, -1), R(2, 3, 4))
case("expand_dims", lambda x: np.expand_dims(x, 1), R(3, 4))
case("expand_dims tuple", lambda x: np.expand_dims(x, (0, -1)), R(3, 4))
case("squeeze", np.squeeze, R(1, 3, 1, 4))
case("squeeze axis", lambda x: np.squeeze(x, axis=2), R(1, 3, 1, 4))
case("broadcast_to", lambda x: np.broadcast_to(x, (2, 3, 4)), R(3, 1))
case("atleast_2d", lambda x: np.atleast_2d(x) * np.atleast_1d(x.sum()), R(3))
case("flip", lambda x: np.flip(x, 1), R(3, 4))
case("flip all", np.flip, R(3, 4))
case("flip (primitive)", lambda x: bind(PRIMS["flip"], x, axis=(0,)), R(3, 4))
case("concatenate axis 0", lambda x, y: np.concatenate([x, y]), R(2, 3), R(4, 3))
case("concatenate axis 1 three", lambda x, y, z: np.concatenate((x, y, z), axis=1), R(2, 3), R(2, 1), R(2, 2))
case("concatenate axis -1", lambda x, y: np.concatenate([x, y], axis=-1), R(2, 3, 2), R(2, 3, 1))
case("concatenate axis None", lambda x, y: np.concatenate([x, y], axis=None), R(2, 3), R(4))
case("concatenate with const", lambda x: np.concatenate([np.ones(2), x, x]), R(3))
case("stack", lambda x, y: np.stack([x, y]), R(2, 3), R(2, 3))
case("stack axis -1", lambda x, y: np.stack([x, y, x], axis=-1), R(2, 3), R(2, 3))
case("stack axis 1", lambda x, y: np.stack((x, y), axis=1), R(4), R(4))
case("hstack 1-D", lambda x, y: np.hstack([x, y]), R(2), R(3))
case("hstack 2-D", lambda x, y: np.hstack([x, y]), R(2, 2), R(2, 3))
case("vstack 1-D", lambda x, y: np.vstack([x, y]), R(3), R(3))
case("vstack 2-D", lambda x, y: np.vstack([x, y]), R(2, 3), R(1, 3))
case("column_stack", lambda x, y: np.column_stack([x, y]), R(3), R(3, 2))

# -- indexing ---------------------------------------------------------------------------------------

for _key in [1, -1, (1, 2), slice(1, 3), slice(None, None, -1), (slice(None, None, -2), 1),
             (None, slice(None), 1), (Ellipsis, 0), (1, Ellipsis, None), (slice(-3, None), slice(1, -1)),
             np.array([0, 2, 2]), (np.array([[0, 1], [2, 2]]),), (np.array([0, 1]), np.array([3, 3])),
             (slice(None), np.array([1, 1, 0])), (np.array([0, 2]), slice(None, 2), None),
             np.array([True, False, True]), (slice(None), np.array([True, False, True, True])),
             np.array([[True, False, True, False]] * 3), (np.array([2, 0]), Ellipsis, np.array([1, 0]))]:
    case(f"getitem {_key!r}".replace("\n", ""), (lambda k: lambda x: x[k])(_key), R(3, 4))
case("getitem 3-D mixed", lambda x: x[1:, np.array([0, 2]), ::-1], R(3, 3, 4))
case("getitem list", lambda x: x[[0, 0, 2]], R(3, 4))
case("getitem traced int index array", lambda x, i: x[i] * 2.0, R(5), Const(np.array([4, 0, 4, 1])), nondiff=(1,))
case("getitem traced mask", lambda x, m: x[m], R(6), Const(np.array([1, 0, 1, 1, 0, 0], bool)), nondiff=(1,))
case("getitem empty slice", lambda x: np.sum(x[3:1]) + x[0], R(4))
case("iteration over first axis", lambda x: sum(r * r for r in x), R(3, 4))
case("take", lambda x: np.take(x, [0, 3, 3, 5]), R(2, 3))
case("take axis", lambda x: np.take(x, np.array([[1, 0], [1, 1]]), axis=1), R(3, 4))
case("take mode=clip", lambda x: np.take(x, [-1, 5, 2], mode="clip"), R(4))
case("take mode=wrap", lambda x: np.take(x, np.array([-1, 5, 2]), axis=1, mode="wrap"), R(2, 4))
case("add.reduce / maximum.reduce", lambda x: np.add.reduce(x, axis=1) * np.maximum.reduce(x, axis=1), Distinct(3, 4))
case("add.accumulate / multiply.outer", lambda x: np.add.accumulate(x) * np.multiply.outer(x, x)[0], R(4))
case("take method", lambda x: x.take([2, 0], axis=0), R(3, 4))
case("take_along_axis", lambda x: np.take_along_axis(x, np.array([[0, 0], [3, 1], [2, 2]]), axis=1), R(3, 4))
case("diag of matrix", np.diag, R(4, 4))
case("diag offset", lambda x: np.diag(x, 1) + np.diag(x, -1)[:-1], R(3, 4))
case("diag of vector", np.diag, R(3))
case("diag of vector offset", lambda x: np.diag(x, -2) + np.diag(x, 2), R(3))
case("diagonal", lambda x: np.diagonal(x, 0, 1, 2), R(2, 3, 3))
case("trace", np.trace, R(3, 3))
case("trace offset method", lambda x: x.trace(1), R(3, 4))
case("triu", np.triu, R(3, 4))
case("tril k", lambda x: np.tril(x, -1) + np.triu(x, 2), R(4, 4))
case("triu batched", np.triu, R(2, 3, 3))

# -- linalg.norm ------------------------------------------------------------------------------------

def _away_from_zero(rng):
    """Distinct magnitudes >= 0.3: |x|**p for p < 1 is too steep near 0 for finite differences."""
    return (rng.permutation(5) * 0.25 + 0.3) * rng.choice([-1.0, 1.0], 5)


for _ord in (None, 2, 1, np.inf, -np.inf, 3, 0.5):
    case(f"norm vector ord={_ord}", (lambda o: lambda x: np.linalg.norm(x, ord=o))(_ord),
         _away_from_zero if _ord == 0.5 else Distinct(5))
case("norm vector axis keepdims", lambda x: np.linalg.norm(x, axis=1, keepdims=True), R(3, 4))
case("norm all entries keepdims", lambda x: np.linalg.norm(x, keepdims=True), R(3, 4))
for _ord in (None, "fro", 1, -1, np.inf, -np.inf):
    case(f"norm matrix ord={_ord}", (lambda o: lambda x: np.linalg.norm(x, ord=o))(_ord), Distinct(3, 4))
for _ord in (1, -1, np.inf, -np.inf):
    case(f"norm matrix ord={_ord} axis=(1, 0)", (lambda o: lambda x: np.linalg.norm(x, ord=o, axis=(1, 0)))(_ord),
         Distinct(3, 4))
case("norm matrix ord=1 axis=(2, 0) keepdims", lambda x: np.linalg.norm(x, 1, axis=(2, 0), keepdims=True),
     Distinct(2, 3, 4))
case("norm matrix axes", lambda x: np.linalg.norm(x, ord="fro", axis=(0, 2)), R(2, 3, 4))
case("norm ord=0 (zero)", lambda x: np.linalg.norm(x, ord=0) * x, NonZero(4))

# -- composites -------------------------------------------------------------------------------------

case("softmax", lambda x: np.exp(x - np.max(x, axis=1, keepdims=True))
     / np.sum(np.exp(x - np.max(x, axis=1, keepdims=True)), axis=1, keepdims=True), R(3, 4))
case("logsumexp", lambda x: np.log(np.sum(np.exp(x))), R(5))
case("mlp layer", lambda W, x, b: np.tanh(W @ x + b[:, None]), R(4, 3), R(3, 5), R(4))
case("used twice", lambda x: x * np.sin(x) + x, R(3))


# -- cases for rules in other files: tests/rule_cases_*.py, run with this table's helpers -------------
# (e.g. tests/rule_cases_special.py: `case("erf", scipy.special.erf, R(3, 4))`)

for _path in sorted(pathlib.Path(__file__).parent.glob("rule_cases_*.py")):
    exec(compile(_path.read_text(), str(_path), "exec"),
         dict(case=case, R=R, Pos=Pos, Unit=Unit, NonZero=NonZero, Distinct=Distinct, Const=Const,
              Mask=Mask, np=np, tg=tg, bind=bind, PRIMS=PRIMS, __name__=_path.stem))

# ====================================================================================================
# the checker

EPS = 1e-5


def _draw(c: Case, rng, dtype=np.float64):
    args = []
    for gen in c.args:
        a = gen(rng)
        if isinstance(a, np.ndarray) and a.dtype == np.float64 and dtype != np.float64:
            a = a.astype(dtype)
        args.append(a)
    return args


def _diff_args(c: Case, args):
    return tuple(i for i, a in enumerate(args)
                 if i not in c.nondiff and np.result_type(a).kind == "f")


def _perturb(args, i, delta):
    out = list(args)
    out[i] = args[i] + delta if not isinstance(args[i], float) else float(args[i] + delta)
    return out


def _fd_check(fun, args, argnums, grads, rng, what):
    """Compare `<grads[k], v>` with the central difference of `fun` along `v`, per argument."""
    f0 = fun(*args)
    for i, g in zip(argnums, grads):
        a = args[i]
        assert np.shape(g) == np.shape(a), f"{what}: grad of arg {i} has shape {np.shape(g)}"
        if isinstance(a, float):
            assert isinstance(g, float), f"{what}: grad of a Python float arg is {type(g)}"
        else:
            assert np.result_type(g) == a.dtype, f"{what}: grad dtype {np.result_type(g)} != {a.dtype}"
        v = rng.standard_normal(np.shape(a))
        fd = (fun(*_perturb(args, i, EPS * v)) - fun(*_perturb(args, i, -EPS * v))) / (2 * EPS)
        an = float(np.sum(np.asarray(g) * v))
        tol = 1e-6 * (1.0 + abs(fd) + abs(f0))
        assert abs(an - fd) <= tol, f"{what}: arg {i}: <grad, v> = {an!r}, finite difference {fd!r}"


def _projection(c: Case, u):
    def L(*a):
        return np.sum(u * c.fn(*a))

    return L


@pytest.mark.parametrize("c", CASES, ids=repr)
def test_rule(c: Case):
    rng = np.random.default_rng(zlib.crc32(c.name.encode()))  # same inputs every run
    args = _draw(c, rng)
    argnums = _diff_args(c, args)
    assert argnums, "case has no differentiable argument"
    out = c.fn(*args)
    u = rng.standard_normal(np.shape(out))
    L = _projection(c, u)
    grads = tg.grad(L, argnum=argnums)(*args)
    _fd_check(L, args, argnums, grads, rng, "first order")
    if c.order >= 2:
        w = [rng.standard_normal(np.shape(args[i])) for i in argnums]

        def H(*a):  # <grad L, w>: grad of it is a Hessian-vector product
            gs = tg.grad(L, argnum=argnums)(*a)
            return sum(np.sum(g * wk) for g, wk in zip(gs, w))

        hgrads = tg.grad(H, argnum=argnums)(*args)
        _fd_check(H, args, argnums, hgrads, rng, "second order")


@pytest.mark.parametrize("c", CASES, ids=repr)
def test_gradient_tape_replays(c: Case):
    """`play(g.tape, *new_args)` (the optimised gradient tape) equals a fresh `grad`."""
    rng = np.random.default_rng(7)
    args = _draw(c, rng)
    u = rng.standard_normal(np.shape(c.fn(*args)))
    fixed = {i: args[i] for i in c.nondiff}  # not differentiated: closed over, kept for the replay
    n = len(args)

    def L(*a):
        it = iter(a)
        return np.sum(u * c.fn(*[fixed[i] if i in fixed else next(it) for i in range(n)]))

    args = [a for i, a in enumerate(args) if i not in fixed]
    argnums = [i for i, a in enumerate(args) if np.result_type(a).kind == "f"]
    _, g = tg.grad(L, *args)
    new = [a for i, a in enumerate(_draw(c, rng)) if i not in fixed]
    try:
        val, grads = tg.play(g.tape, *new)
    except tg.GuardError:  # the new inputs take another path (argmax, comparisons): re-trace
        return
    val2, g2 = tg.grad(L, *new)
    np.testing.assert_allclose(val, val2, rtol=1e-13, atol=1e-13)
    for i in argnums:
        np.testing.assert_allclose(grads[i], g2[i], rtol=1e-12, atol=1e-13, err_msg=f"arg {i}")


def test_value_matches_numpy():
    """The traced value of every case is NumPy's value (so the FD baseline is meaningful)."""
    rng = np.random.default_rng(0)
    for c in CASES:
        args = _draw(c, rng)
        want = c.fn(*args)
        got, _ = tg.trace(c.fn, *args)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=c.name)
        assert np.shape(got) == np.shape(want), c.name


# -- coverage: generated from the rule table ---------------------------------------------------------

# primitives that have a rule but need no case here, with the reason
NO_CASE = {
    "stop_gradient": "finite differences cannot see it: checked against a closed form below",
    "integrate.odeint_vjp": "the adjoint solve of odeint (issue 6): first order only, its rule raises",
}
# primitives with no rule at all, with the reason (anything else without a rule is a gap)
NO_RULE = {
    "capture": "a value of an enclosing trace: a constant of the inner tape",
    "const": "array constant: no inputs",
    "full": "filled constant: no array inputs",
    **{n: "boolean output: never on a gradient path" for n in (
        "equal", "not_equal", "greater", "greater_equal", "less", "less_equal", "logical_and",
        "logical_or", "logical_xor", "logical_not", "isnan", "isinf", "isfinite", "signbit")},
    **{n: "integer or boolean output: never on a gradient path" for n in (
        "bitwise_and", "bitwise_or", "bitwise_xor", "invert")},
}


def _covered() -> set:
    """Primitives on some case's forward tape, plus those that only appear in the backward
    ops of a case checked to second order (its second-order check runs their rules)."""
    from tapegrad.core import grad_call

    rng = np.random.default_rng(0)
    seen = set()
    for c in CASES:
        args = _draw(c, rng)
        _, tape = tg.trace(c.fn, *args)
        seen.update(op.prim.name for op in tape.ops)
        if c.order >= 2:
            L = _projection(c, np.ones(np.shape(c.fn(*args))))
            tape = grad_call(L, args, argnums=_diff_args(c, args))[2]
            seen.update(op.prim.name for op in tape.ops)
    return seen


def _builtin(p) -> bool:
    return not p.user


def test_every_rule_has_a_case():
    covered = _covered()
    ruled = {p.name for p in list(VJPS) + list(VJPS_ALL) if _builtin(p)}
    missing = sorted(ruled - covered - set(NO_CASE))
    assert not missing, f"primitives with a rule but no case in tests/test_rules.py: {missing}"


def test_every_primitive_has_a_rule_or_a_reason():
    ruled = {p.name for p in list(VJPS) + list(VJPS_ALL)}
    missing = sorted(n for n, p in PRIMS.items() if _builtin(p) and n not in ruled and n not in NO_RULE)
    assert not missing, f"primitives with neither a rule nor a NO_RULE reason: {missing}"


def test_no_rule_entries_are_really_rule_free():
    stale = sorted(n for n in NO_RULE if n in PRIMS and (PRIMS[n] in VJPS or PRIMS[n] in VJPS_ALL))
    assert not stale, f"NO_RULE lists primitives that now have a rule: {stale}"


# -- float32 keeps float32 ---------------------------------------------------------------------------

F32 = ["tanh", "divide broadcast (3,1)x(4)", "matmul batched", "sum axis=1 keepdims=True",
       "mean axis=None keepdims=False", "getitem array([0, 2, 2])", "std ddof=1 axis=None",
       "einsum ij,jk->ik", "concatenate axis 1 three", "where broadcast", "norm matrix ord=fro",
       "x ** 2 (int const)", "division by int", "cumsum axis=1", "power broadcast (3,1)x(4)",
       "softmax", "max axis=(0, 2) keepdims=False", "clip scalars", "diag of vector offset"]


@pytest.mark.parametrize("name", F32)
def test_float32_gradients_stay_float32(name):
    (c,) = [c for c in CASES if c.name == name]
    rng = np.random.default_rng(1)
    args64 = _draw(c, rng)
    args32 = [a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype == np.float64 else a
              for a in args64]
    argnums = _diff_args(c, args32)
    out = c.fn(*args64)
    u = rng.standard_normal(np.shape(out))
    g32 = tg.grad(_projection(c, u.astype(np.float32)), argnum=argnums)(*args32)
    g64 = tg.grad(_projection(c, u), argnum=argnums)(*args64)
    for i, a, b in zip(argnums, g32, g64):
        assert a.dtype == np.float32, f"arg {i}: {a.dtype}"
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4)


def test_stop_gradient_against_closed_form():
    x = np.array([0.5, -1.0, 2.0])
    g = tg.grad(lambda x: np.sum(tg.stop_gradient(x * x) * x))(x)
    np.testing.assert_allclose(g, x * x)  # not 3 x^2
    gg = tg.grad(lambda x: np.sum(tg.grad(lambda y: np.sum(tg.stop_gradient(y) * y * y))(x)))(x)
    np.testing.assert_allclose(gg, 2 * x)  # d/dx sum(2 sg(x) x) = 2 x


def test_value_only_handlers_match_numpy():
    a = np.array([1.0, np.inf, np.nan, -np.inf, 1.0, 2.0])
    b = np.array([1.0, np.inf, np.nan, np.inf, np.inf, 2.0 + 1e-9])
    for equal_nan in (False, True):
        got, _ = tg.trace(lambda a: np.isclose(a, b, equal_nan=equal_nan), a)
        np.testing.assert_array_equal(got, np.isclose(a, b, equal_nan=equal_nan))
        got, _ = tg.trace(lambda a: np.allclose(a[:3], b[:3], equal_nan=equal_nan), a)
        assert got == np.allclose(a[:3], b[:3], equal_nan=equal_nan)


def test_multiple_output_ufuncs():
    x = np.array([1.5, -2.3, np.inf, -np.inf, np.nan, -0.0, 0.7, -2.0])
    y = np.array([0.7, -0.7, 0.7, 0.7, 0.7, 0.7, -0.7, 0.3])
    with np.errstate(all="ignore"):
        for fn, args in ((np.modf, (x,)), (np.divmod, (x, y)), (np.modf, (x.astype(np.float32),))):
            got, _ = tg.trace(lambda *a: fn(*a), *args)
            for a, b in zip(got, fn(*args)):
                assert a.dtype == b.dtype
                np.testing.assert_array_equal(a, b)
                np.testing.assert_array_equal(np.signbit(a), np.signbit(b))
    xs = np.array([1.5, 2.3, -0.4])
    np.testing.assert_allclose(tg.grad(lambda x: np.sum(np.modf(x)[0] * x))(xs),
                               2 * xs - np.trunc(xs))
    np.testing.assert_allclose(tg.grad(lambda x: np.sum(np.divmod(x, 0.7)[1] ** 2))(xs),
                               2 * np.remainder(xs, 0.7))
    with pytest.raises(tg.TraceError, match="np.frexp returns 2 arrays"):
        tg.grad(lambda x: np.sum(np.frexp(x)[0]))(xs)
