"""QA: dtypes, special values and higher-order derivatives across the backends.

Every case runs NumPy itself, the trace (`tg.trace`'s value), the interpreter (`tg.play`)
and the Numba backend (`tg.play(tg.compile(tape, wait=True))`): same dtype and shape,
values allclose (1e-12 float64, 1e-5 float32, exact for ints and bools), NaNs where NumPy
has them. Higher derivatives are checked against closed forms and finite differences of
the lower-order results.

TAPEGRAD_QA_SWEEP=1 runs the long random-expression sweeps (more seeds, a 1300-wide shape
that takes the chunked sums and the vectorised sin/cos).
"""

import os
import warnings

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import tree

SWEEP = os.environ.get("TAPEGRAD_QA_SWEEP", "") not in ("", "0")


def _same(want, got, where="", tol=None):
    w, g = np.asarray(want), np.asarray(got)
    assert w.dtype == g.dtype, f"{where}: dtype {w.dtype} (NumPy) vs {g.dtype}"
    assert w.shape == g.shape, f"{where}: shape {w.shape} (NumPy) vs {g.shape}"
    if w.dtype.kind in "fc":
        if tol is None:
            tol = 1e-5 if w.dtype in (np.float32, np.complex64) else 1e-12
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol, equal_nan=True, err_msg=where)
    else:
        np.testing.assert_array_equal(g, w, err_msg=where)


def agree_all(f, *args, compile=True, tol=None):
    """NumPy == trace == interpreter == compiled, leaf by leaf (`tol`: float64 results
    computed through float32, where NumPy's SIMD float32 and Numba's differ by an ulp)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        want = f(*args)
        val, tape = tg.trace(f, *args)
        runs = {"trace": val, "play": tg.play(tape, *args)}
        if compile:
            runs["compiled"] = tg.play(tg.compile(tape, wait=True), *args)
    _, wl, wt = tree.flatten(want)
    for name, got in runs.items():
        _, gl, gt = tree.flatten(got)
        assert len(gl) == len(wl), name
        for w, g in zip(wl, gl):
            _same(w, g, name, tol)
    return runs


rng = np.random.default_rng(0)
F32 = rng.standard_normal(6).astype(np.float32)
F64 = rng.standard_normal(6)
I32 = np.array([-7, -3, 0, 2, 5, 9], np.int32)
I64 = I32.astype(np.int64)
U8 = np.array([0, 1, 2, 200, 250, 255], np.uint8)
I8 = np.array([-128, -1, 0, 1, 100, 127], np.int8)
B = np.array([True, False, True, True, False, False])
SP = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1.5, -2.0, 3.0])
Z2 = np.array([0.0, -0.0, np.nan, 1.0, -0.0, -1.0, 0.0, np.nan])
M = rng.standard_normal((4, 3))

# -- 1. dtype promotion in fused loops ---------------------------------------------------------

MIXED = {
    "f32*2.0 stays f32": (lambda a: np.tanh(a * 2.0) + 1, F32),
    "f32*int stays f32": (lambda a: np.exp(a * 3) - 1, F32),
    "f32+i32 -> f64": (lambda a, c: np.tanh(a + c) * a, F32, I32),
    "f32+u8": (lambda a, c: np.tanh(a + c) * a, F32, U8),
    "f32*bool": (lambda a, c: np.tanh(a * c) * a, F32, B),
    "f64-i32": (lambda a, c: np.exp(a - c) * 2, F64, I32),
    "i32/i32": (lambda a, c: (a / (c + 10)) * 2 + 1, I32, I32),
    "i32//-3, %-3": (lambda a: (a // -3) * 2 + (a % -3), I32),
    "f64%-1.5": (lambda a: np.exp(a % -1.5) * 2, F64),
    "f32//0.7": (lambda a: np.exp(a // 0.7) * 2, F32),
    "i32//i32 %": (lambda a, c: (a // c) * 2 + a % c, I32, np.array([2, -2, 3, -3, 4, -4], np.int32)),
    "i32**2": (lambda a: a ** 2 + a, I32),
    "f64**i32": (lambda a, c: np.exp(a) ** c + 1, F64, np.array([0, 1, 2, -1, -2, 3], np.int32)),
    "f32**-2": (lambda a: (a ** -2) * 2, F32),
    "i64**i64": (lambda a, c: np.power(a, c) + 1, I64, np.arange(6, dtype=np.int64)),
    "bool arithmetic": (lambda a: (a > 0) * a + (a < 0.5), F32),
    "where f32/i32": (lambda a, c: np.where(a > 0, a, c) * 2, F32, I32),
    "where f32/0": (lambda a: np.where(a > 0, a, 0) * 2, F32),
    "astype i32": (lambda a: (a * 3).astype(np.int32) + 1, F64),
    "astype f32": (lambda a: np.tanh(a.astype(np.float32)) * 2, F64),
    "i8 wraps": (lambda a: a * 2 + 1, I8),
    "i32 wraps": (lambda a: a * 1000000 * 1000 + 1, I32),
    "u8 subtraction wraps": (lambda a, c: (a - c) * 1, U8, U8[::-1].copy()),
    "bool*2.5": (lambda a: a * 2.5 + 1, B),
    "maximum i32 f32": (lambda a, c: np.maximum(a, c) * 2, I32, F32),
    "sqrt i32": (lambda a: np.sqrt(np.abs(a)) * 2, I32),
    "f32 * 0-d f64": (lambda a, s: a * s + 1, F32, np.array(2.5)),
    "f32 * np.float64": (lambda a, s: a * s + 1, F32, np.float64(2.5)),
    "f32 * python float": (lambda a, s: np.tanh(a * s) + s, F32, 2.5),
    "i32 * python float": (lambda a, s: a * s + s, I32, 2.5),
}


@pytest.mark.parametrize("case", sorted(MIXED))
def test_mixed_dtypes_fused(case):
    f, *args = MIXED[case]
    agree_all(f, *args)


# -- 2. special values, reductions, empty arrays -----------------------------------------------

SPECIAL = {
    "nan/inf arithmetic": (lambda a, b: (a / b) * 1 + a * 0.0, SP, Z2),
    "max/min nan": (lambda a, b: np.maximum(a, b) + np.minimum(a, b) * 2, SP, Z2),
    "fmax nan": (lambda a, b: np.fmax(a, b) * 1.0, SP, Z2),
    "powers at 0, inf, nan": (lambda a: a ** 0.5 + a ** -1 + a ** 3 + np.power(a, 0), SP),
    "comparisons with nan": (lambda a, b: ((a > b) | (a == b)) * 1.0 + (a != b), SP, Z2),
    "where on nan": (lambda a: np.where(a, 1.0, 2.0) * a, SP),
    "transcendentals at inf": (lambda a: np.tanh(a) + np.exp(a) * np.log(a + 0.0), SP),
    "i32 / 0": (lambda a, b: a / b * 1, I32, np.zeros(6, np.int32)),
    "reduce max/min nan": (lambda a: np.max(a * 2) + np.min(a * 2), np.array([1.0, np.nan, 3.0, -1.0])),
    "reduce max axis nan": (lambda a: np.max(a * 2, axis=0) + np.min(a * 2, axis=1, keepdims=True),
                            np.array([[1.0, np.nan, 3.0], [-1.0, 2.0, 0.0]])),
    "argmax nan": (lambda a: np.argmax(a * 2) + np.argmin(a * 2), np.array([1.0, np.nan, 3.0, -1.0])),
    "max of +-inf": (lambda a: np.max(a * 1.0) - np.min(a), np.array([-np.inf, np.inf, 0.0])),
    "sum f32 (float64 accumulator)": (lambda a: np.sum(a * 2 + 1), rng.standard_normal(5000).astype(np.float32)),
    "sum f32 axis 0": (lambda a: np.sum(a * 2 + 1, axis=0), rng.standard_normal((3000, 3)).astype(np.float32)),
    "sum i32 -> i64, no wrap": (lambda a: np.sum(a * 2 + 1), np.full(10, 2 ** 29, np.int32)),
    "sum bool": (lambda a: np.sum(a > 0) * 1.0 + np.sum(a < 0.5, axis=0), M),
    "mean int": (lambda a: np.mean(a * 2 + 1) + np.mean(a, axis=0), np.arange(12, dtype=np.int64).reshape(4, 3)),
    "mean f32": (lambda a: np.mean(a * 2 + 1), F32),
    "empty (0,)": (lambda a: (np.tanh(a * 2) + 1, np.sum(a * 2)), np.zeros(0)),
    "empty (3, 0)": (lambda a: (np.tanh(a * 2) + 1, np.sum(a * 2 + 1, axis=1), np.sum(a * 2, axis=0)),
                     np.zeros((3, 0))),
    "empty f32 sum": (lambda a: np.sum(a * 2 + 1), np.zeros(0, np.float32)),
    "empty mean": (lambda a: np.mean(a * 2 + 1), np.zeros(0)),
}


@pytest.mark.parametrize("case", sorted(SPECIAL))
def test_special_values(case):
    f, *args = SPECIAL[case]
    agree_all(f, *args)


def test_float32_sum_accumulates_wider():
    """A float32 sum comes back float32 from every backend; NumPy's pairwise float32 sum
    and the loops' float64 accumulator differ by rounding only (relative 1e-6 here)."""
    x = (rng.standard_normal(100_000) + 0.1).astype(np.float32)
    f = lambda a: np.sum(a * 1.5 + 0.25)  # noqa: E731
    want = f(x)
    _, tape = tg.trace(f, x)
    exact = np.sum(x.astype(np.float64) * 1.5 + 0.25)
    for got in (tg.play(tape, x), tg.play(tg.compile(tape, wait=True), x)):
        assert np.asarray(got).dtype == np.float32
        assert abs(float(got) - exact) <= 1e-6 * np.sum(np.abs(x * 1.5 + 0.25))
        assert abs(float(got) - float(want)) <= 1e-6 * np.sum(np.abs(x * 1.5 + 0.25))


# np.sum / np.prod / np.mean with an integer dtype= came back int64 (the 64-bit widening
# of small ints also applied when the caller named the dtype); np.mean(x, dtype=np.int32)
# came back float64
REDUCE_DTYPES = [np.int32, np.int8, np.uint8, np.int16, np.uint32, np.int64, np.float32, bool]


@pytest.mark.parametrize("dt", REDUCE_DTYPES, ids=lambda d: np.dtype(d).name)
def test_reduction_dtype_argument(dt):
    x = np.arange(6.0) * 50
    xi = np.arange(12, dtype=np.int32).reshape(4, 3) * 100_000_000
    agree_all(lambda a: np.sum(a * 1.0, dtype=dt), x, compile=False)
    agree_all(lambda a: np.prod(a * 1.0 + 1, dtype=dt), x / 50, compile=False)
    agree_all(lambda a: np.sum(a * 1, axis=0, dtype=dt), xi, compile=False)
    agree_all(lambda a: np.sum(a * 1, axis=(), dtype=dt), xi, compile=False)
    agree_all(lambda a: (a * 2).sum(axis=1, keepdims=True, dtype=dt), xi, compile=False)


def test_reduction_dtype_argument_compiled():
    xi = np.arange(12, dtype=np.int32).reshape(4, 3) * 100_000_000
    agree_all(lambda a: (np.sum(a * 2 + 1, axis=0, dtype=np.int32), np.sum(a > 3, dtype=np.int32)), xi)


def test_mean_integer_dtype():
    xi = np.arange(12, dtype=np.int32).reshape(4, 3) * 100_000_000
    agree_all(lambda a: np.mean(a * 1, dtype=np.int32), xi, compile=False)
    agree_all(lambda a: np.mean(a * 1, axis=0, dtype=np.int64), xi, compile=False)
    agree_all(lambda a: np.mean(a * 1, dtype=np.float32), xi, compile=False)


def test_sum_dtype_gradient():
    g = tg.grad(lambda a: np.sum(a * a, dtype=np.float32))(np.arange(3.0))
    np.testing.assert_allclose(g, [0.0, 2.0, 4.0])


# signed zeros
def test_fast_sin_keeps_negative_zero():
    """The fast (vectorised) sin/cos of loops of 1024+ elements keep the sign of zero, as
    libm and NumPy do (sin(-0.0) was +0.0 through an arithmetic blend; QA)."""
    x = np.concatenate([np.full(1100, -0.0), np.ones(10)])
    _, tape = tg.trace(lambda a: np.sin(a) * 1.0, x)
    got = tg.play(tg.compile(tape, wait=True), x)
    assert np.signbit(got[:1100]).all()


# -- 3. higher-order derivatives --------------------------------------------------------------

def _d3_tanh(x):
    t = np.tanh(x)
    return -2 * (1 - t ** 2) * (1 - 3 * t ** 2)


THIRD = {
    "tanh": (np.tanh, _d3_tanh),
    "sin": (np.sin, lambda x: -np.cos(x)),
    "exp": (np.exp, np.exp),
    "log": (np.log, lambda x: 2 / x ** 3),
    "sqrt": (np.sqrt, lambda x: 3 / 8 * x ** -2.5),
    "1/x": (lambda x: 1 / x, lambda x: -6 / x ** 4),
    "x**-2": (lambda x: x ** -2, lambda x: -24 * x ** -5),
    "x**2.5": (lambda x: x ** 2.5, lambda x: 2.5 * 1.5 * 0.5 * x ** -0.5),
    "arctan": (np.arctan, lambda x: (6 * x ** 2 - 2) / (1 + x ** 2) ** 3),
    "log1p": (np.log1p, lambda x: 2 / (1 + x) ** 3),
    "cbrt": (np.cbrt, lambda x: 10 / 27 * x ** (-8 / 3)),
    "exp2": (np.exp2, lambda x: np.log(2) ** 3 * 2 ** x),
    "where": (lambda x: np.where(x > 0, x ** 4, x), lambda x: 24 * x),
    "maximum": (lambda x: np.maximum(x, 0.1) ** 3, lambda x: 6.0),
}


def _nd(f, x, h=1e-4):
    return (f(x + h) - f(x - h)) / (2 * h)


@pytest.mark.parametrize("name", sorted(THIRD))
def test_third_derivative(name):
    f, d3 = THIRD[name]
    d2 = tg.grad(tg.grad(f))
    g3 = tg.grad(d2)
    for x in (0.37, 1.9):
        v = g3(x)
        assert isinstance(v, float)
        np.testing.assert_allclose(v, d3(x), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(v, _nd(d2, x), rtol=1e-6, atol=1e-7)
    xa = np.array([0.37, 0.8, 1.9])
    e3 = tg.elementwise_grad(tg.elementwise_grad(tg.elementwise_grad(f)))(xa)
    np.testing.assert_allclose(e3, [d3(t) for t in xa], rtol=1e-10, atol=1e-12)
    H = tg.hessian(lambda x: np.sum(f(x)))(xa)
    np.testing.assert_allclose(H, np.diag([d2(float(t)) for t in xa]), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["tanh", "exp", "sin", "log", "sqrt"])
def test_third_derivative_float32(name):
    f, d3 = THIRD[name]
    v = tg.grad(tg.grad(tg.grad(f)))(np.float32(0.37))
    assert np.asarray(v).dtype == np.float32
    np.testing.assert_allclose(v, d3(0.37), rtol=2e-6)


def _lse(x):
    m = np.max(x)
    return m + np.log(np.sum(np.exp(x - m)))


def test_logsumexp_second_and_third():
    x = np.array([0.3, -1.2, 0.8, 2.0])
    p = np.exp(x - _lse(x))
    H = np.diag(p) - np.outer(p, p)
    np.testing.assert_allclose(tg.hessian(_lse)(x), H, atol=1e-15)
    np.testing.assert_allclose(tg.jacobian(tg.grad(_lse))(x), H, atol=1e-15)
    v = np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(tg.hessian_vector_product(_lse)(x, v), H @ v, atol=1e-14)
    T = tg.jacobian(tg.hessian(_lse))(x)
    Tx = (np.einsum("ij,ik->ijk", np.eye(4), H) - np.einsum("ik,j->ijk", H, p)
          - np.einsum("i,jk->ijk", p, H))
    np.testing.assert_allclose(T, Tx, atol=1e-15)


def _f(x):
    return np.sum(np.tanh(x) * np.exp(-x ** 2)) + _lse(x * 2)


def _nd_jac(g, x, h=1e-5):
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        cols.append((g(x + e) - g(x - e)) / (2 * h))
    return np.stack(cols, -1)


@pytest.mark.parametrize("compile", [False, True], ids=["interp", "compiled"])
def test_nested_derivatives_in_jit(compile):
    x = np.array([0.3, -1.2, 0.8, 2.0])
    H = tg.hessian(_f)(x)
    np.testing.assert_allclose(H, _nd_jac(tg.grad(_f), x), atol=1e-8)
    v = np.array([1.0, -1.0, 0.5, 2.0])
    jh = tg.jit(tg.hessian(_f), compile=compile)
    jv = tg.jit(tg.hessian_vector_product(_f), compile=compile)
    jg = tg.jit(tg.grad(lambda x: np.sum(tg.grad(_f)(x) ** 2)), compile=compile)
    j3 = tg.jit(tg.grad(tg.grad(tg.grad(np.tanh))), compile=compile)
    for j, a in ((jh, (x,)), (jv, (x, v)), (jg, (x,)), (j3, (0.37,))):
        j(*a)
        if compile:
            j.wait()
    for _ in range(2):  # the second call replays the cached (compiled) tape
        np.testing.assert_allclose(jh(x), H, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(jh(x * 0.5), tg.hessian(_f)(x * 0.5), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(jv(x, v), H @ v, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(jg(x), 2 * H @ tg.grad(_f)(x), rtol=1e-12, atol=1e-14)
        r = j3(0.5)
        assert isinstance(r, float)
        np.testing.assert_allclose(r, _d3_tanh(0.5), rtol=1e-12)
    x32 = x.astype(np.float32)
    j32 = tg.jit(tg.hessian(_f), compile=compile)
    j32(x32)
    if compile:
        j32.wait()
    h32 = j32(x32)
    assert h32.dtype == np.float32
    np.testing.assert_allclose(h32, H, atol=1e-5)


def test_yota_grad_of_function_calling_grad():
    x = np.array([0.3, -1.2, 0.8, 2.0])
    w = np.array([1.0, 2.0, 3.0, 4.0])

    def g(x, w):
        return np.sum(tg.grad(_f)(x * w) * w)

    val, gg = tg.grad(g, x, w)
    assert val == g(x, w)
    np.testing.assert_allclose(gg[0], _nd_jac(lambda t: np.array([g(t, w)]), x)[0], atol=1e-8)
    np.testing.assert_allclose(gg[1], _nd_jac(lambda t: np.array([g(x, t)]), w)[0], atol=1e-8)
    for out in (tg.play(gg.tape, x, w), tg.play(tg.compile(gg.tape, wait=True), x, w)):
        assert out[0] == pytest.approx(val, rel=1e-14)
        np.testing.assert_allclose(out[1][0], gg[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(out[1][1], gg[1], rtol=1e-12, atol=1e-14)


# -- 4. 0-d inputs, broadcasting, strides in compiled tapes ------------------------------------

EDGES = {
    "python float only": (lambda s: np.tanh(s) * s + 1, 0.3),
    "0-d only": (lambda s: np.tanh(s) * s + 1, np.array(0.3)),
    "0-d f32 only": (lambda s: np.tanh(s) * s + 1, np.array(0.3, np.float32)),
    "two 0-d": (lambda s, t: np.tanh(s) * t + s * t, np.array(0.3), np.array(0.7)),
    "output is input": (lambda a: (a, a * 2 + 1), F64),
    "(1,) broadcast": (lambda a, b: np.exp(a * b) + b, F64, np.array([2.0])),
    "(n,1) broadcast": (lambda a, b: np.exp(a * b) + b, M, np.arange(4.0).reshape(4, 1)),
    "(n,1)x(1,m)": (lambda a, b: np.tanh(a * b) + a, np.arange(4.0).reshape(4, 1), np.arange(3.0).reshape(1, 3)),
    "transposed input": (lambda a: np.tanh(a * 2) + a, M.T),
    "strided input": (lambda a: np.tanh(a * 2) + a, F64[::2]),
    "transpose in tape": (lambda a: np.tanh(a.T * 2) + 1, M),
    "sum axis keepdims": (lambda a: np.sum(a * 2 + 1, axis=1, keepdims=True) * a, M),
}


@pytest.mark.parametrize("case", sorted(EDGES))
def test_shapes_and_scalars_compiled(case):
    f, *args = EDGES[case]
    agree_all(f, *args)


@pytest.mark.parametrize("case", ["python float only", "0-d only", "two 0-d", "(n,1) broadcast",
                                  "(n,1)x(1,m)", "transposed input", "strided input"])
def test_gradients_shapes_and_scalars_compiled(case):
    f, *args = EDGES[case]
    loss = lambda *a: np.sum(f(*a) * 1.0)  # noqa: E731
    val, g = tg.grad(loss, *args)
    ctape = tg.compile(g.tape, wait=True)
    for out in (tg.play(g.tape, *args), tg.play(ctape, *args)):
        for i, a in enumerate(args):
            _same(g[i], out[1][i], f"grad {i}")
            assert np.shape(g[i]) == np.shape(a)
            assert np.asarray(g[i]).dtype == np.asarray(a).dtype


def test_python_float_argument_with_float32_array_gradient_tape():
    """`tg.grad(f, x32, 2.5)`: the Python float is a float64[] input that NumPy promotes
    as a weak scalar (x32 * 2.5 is float32); TAPEGRAD_DEBUG's verify (set by conftest)
    inferred float64 from a 0-d float64 dummy and failed `g.tape` ("pass cse broke the
    tape"). The compiled tape's gradients agree to float32 precision."""
    x = np.linspace(-1, 1, 6).astype(np.float32)

    def f(a, s):
        return np.sum((np.tanh(a * s) + s) * 1.0)

    val, g = tg.grad(f, x, 2.5)
    tape = g.tape
    assert isinstance(g[1], float) and g[0].dtype == np.float32
    out = tg.play(tg.compile(tape, wait=True), x, 2.5)
    np.testing.assert_allclose(out[1][0], g[0], rtol=1e-5)
    np.testing.assert_allclose(out[1][1], g[1], rtol=1e-5)
    assert g[1] == pytest.approx(6.0, rel=1e-6)  # odd in x: the tanh part sums to 0


# -- 5. random mixed-dtype expressions ---------------------------------------------------------

_DT = [np.float32, np.float64, np.int32, np.int64, np.bool_]
_UN = ["neg", "abs", "tanh", "exp", "sqrtabs", "square", "sign", "pow2", "pow3", "powm1",
       "pow05", "astype32", "astype64", "astypei", "cmp0", "sin", "log1pabs", "recip1"]
_BIN = ["add", "sub", "mul", "div", "max", "min", "where", "ge", "addc", "mulc", "subc",
        "rsubc", "fmax", "hypot"]
_CONSTS = [2, -3, 0.5, 2.5, True, 1e-3]
_SHAPES = [[(4, 3), (3,), (4, 1), ()], [(5,), (5,), (1,), ()], [(2, 1300), (1300,), (2, 1), ()]]


def _inputs(r, shapes):
    xs = []
    for s in shapes:
        dt = _DT[r.integers(len(_DT))]
        if dt is np.bool_:
            x = r.random(s) > 0.5
        elif np.dtype(dt).kind == "i":
            x = r.integers(-5, 6, s).astype(dt)
        else:
            x = (r.standard_normal(s) * 2).astype(dt)
        x = np.asarray(x)
        if not s and r.random() < 0.5:
            x = x[()]  # a NumPy scalar, not a 0-d array
        xs.append(x)
    return xs


def _isbool(x):
    d = getattr(x, "dtype", None)
    return d == bool if d is not None else isinstance(x, bool)


def _program(r, nin, nops):
    prog = []
    for k in range(nops):
        n = nin + k
        if r.random() < 0.45:
            prog.append((_UN[r.integers(len(_UN))], int(r.integers(n)), None, None))
        else:
            prog.append((_BIN[r.integers(len(_BIN))], int(r.integers(n)), int(r.integers(n)),
                         _CONSTS[r.integers(len(_CONSTS))]))
    red = int(r.integers(4))

    def f(*xs):
        v = list(xs)
        for op, i, j, c in prog:
            x = v[i]
            y = v[j] if j is not None else None
            xf = x * 1 if _isbool(x) else x
            yf = y * 1 if y is not None and _isbool(y) else y
            ops = {
                "neg": lambda: -xf, "abs": lambda: np.abs(x), "tanh": lambda: np.tanh(x),
                "exp": lambda: np.exp(np.tanh(x)), "sqrtabs": lambda: np.sqrt(np.abs(x)),
                "square": lambda: np.square(xf), "sign": lambda: np.sign(xf),
                "pow2": lambda: xf ** 2, "pow3": lambda: np.tanh(x) ** 3,
                "powm1": lambda: (np.abs(x) + 1) ** -1, "pow05": lambda: np.abs(x) ** 0.5,
                "astype32": lambda: np.asarray(x).astype(np.float32) if not hasattr(x, "astype") else x.astype(np.float32),
                "astype64": lambda: np.asarray(x).astype(np.float64) if not hasattr(x, "astype") else x.astype(np.float64),
                "astypei": lambda: (np.tanh(x) * 3).astype(np.int32),
                "cmp0": lambda: x > 0, "sin": lambda: np.sin(x),
                "log1pabs": lambda: np.log1p(np.abs(x)), "recip1": lambda: 1 / (np.abs(x) + 1),
                "add": lambda: xf + yf, "sub": lambda: xf - yf, "mul": lambda: x * y,
                "div": lambda: x / (np.abs(y) + 1), "max": lambda: np.maximum(x, y),
                "min": lambda: np.minimum(x, y), "where": lambda: np.where(x > 0, x, y),
                "ge": lambda: x >= y, "addc": lambda: xf + c, "mulc": lambda: x * c,
                "subc": lambda: xf - c, "rsubc": lambda: c - xf,
                "fmax": lambda: np.fmax(xf, yf), "hypot": lambda: np.hypot(x, y),
            }
            v.append(ops[op]())
        out = v[-1]
        if red == 0:
            return out, np.sum(out)
        if red == 1 and np.ndim(out) >= 1:
            return np.sum(out * 1.0, axis=-1), out
        if red == 2:
            return np.mean(out)
        return out * 1

    f.prog = prog
    return f


def _random_case(seed, shapes):
    r = np.random.default_rng(seed)
    xs = _inputs(r, shapes)
    return _program(r, len(xs), int(r.integers(3, 9))), xs


def _check_random(seed, shapes, grads):
    f, xs = _random_case(seed, shapes)
    try:
        with np.errstate(all="ignore"):
            f(*xs)
    except (TypeError, ValueError):  # e.g. an integer to a negative integer power
        pytest.skip("NumPy rejects this program")
    tol = 1e-5 if any(x.dtype == np.float32 for x in xs) or any(p[0] == "astype32" for p in f.prog) \
        else None
    agree_all(f, *xs, tol=tol)
    floats = [i for i, x in enumerate(xs) if x.dtype.kind == "f"]
    if not grads or not floats:
        return

    def loss(*a):
        out = f(*a)
        return sum(np.sum(t * 1.0) for t in (out if isinstance(out, tuple) else (out,)))

    with np.errstate(all="ignore"):
        val, g = tg.grad(loss, *xs)
        outs = [tg.play(g.tape, *xs), tg.play(tg.compile(g.tape, wait=True), *xs)]
    for i in floats:
        assert np.shape(g[i]) == np.shape(xs[i]) and np.asarray(g[i]).dtype == xs[i].dtype
        for out in outs:
            _same(g[i], out[1][i], f"seed {seed} grad {i}", tol)


@pytest.mark.parametrize("seed", range(12))
def test_random_expressions(seed):
    _check_random(seed, _SHAPES[seed % 2], grads=seed % 3 == 0)


@pytest.mark.parametrize("seed", range(12, 400) if SWEEP else [])  # one skip line, not 388
def test_random_expressions_sweep(seed):
    _check_random(seed, _SHAPES[seed % 3], grads=True)


@pytest.mark.parametrize("case", sorted(MIXED) if SWEEP else [])
def test_mixed_dtype_gradients_sweep(case):
    f, *args = MIXED[case]
    floats = [i for i, a in enumerate(args) if np.asarray(a).dtype.kind == "f"]
    if not floats:
        pytest.skip("no float argument")
    loss = lambda *a: np.sum(f(*a) * 1.0)  # noqa: E731
    with np.errstate(all="ignore"):
        _, g = tg.grad(loss, *args)
        out = tg.play(tg.compile(g.tape, wait=True), *args)
    tol = 1e-5 if "f32" in case else None  # float64 gradients computed through float32
    for i in floats:
        _same(g[i], out[1][i], f"grad {i}", tol)
