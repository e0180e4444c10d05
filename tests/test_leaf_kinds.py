"""Each gradient comes back in its argument's kind (API contract: "Array argument ->
ndarray of the same shape and dtype. Python float -> float"), on every path: a 0-d
ndarray argument gets a 0-d ndarray, though NumPy's ufuncs turn 0-d arrays into scalars."""

import numpy as np
import pytest

import tapegrad as tg


def f(x):
    return np.sin(x) * x


def df(x):
    return np.cos(x) * x + np.sin(x)


def paths():
    def yota(a):
        return tg.grad(f, a)[1][0]

    def tape(a):
        return tg.play(tg.grad(f, a)[1].tape, a)[1][0]

    def compiled(a):
        return tg.play(tg.compile(tg.grad(f, a)[1].tape, wait=True), a)[1][0]

    return {"yota": yota, "tape": tape, "compiled": compiled,
            "compile=True": lambda a: tg.grad(f, a, compile=True)[1][0],
            "dynamic": lambda a: tg.grad(f, a, dynamic=True)[1][0],
            "function": lambda a: tg.grad(f)(a),
            "value_and_grad": lambda a: tg.value_and_grad(f)(a)[1]}


@pytest.mark.parametrize("path", list(paths()))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_0d_array_argument_gets_0d_array(path, dtype):
    a = np.array(0.7, dtype)
    g = paths()[path](a)
    assert type(g) is np.ndarray and g.shape == () and g.dtype == np.dtype(dtype)
    np.testing.assert_allclose(g, df(0.7), rtol=1e-6 if dtype == "float32" else 1e-14)


@pytest.mark.parametrize("path", list(paths()))
def test_python_float_argument_gets_float(path):
    g = paths()[path](0.7)
    assert type(g) is float
    assert g == pytest.approx(df(0.7), rel=1e-14)


@pytest.mark.parametrize("form", ["yota", "tape", "function"])
def test_struct_leaves_keep_their_kinds(form):
    d = {"a": np.array(2.0), "b": 1.5, "c": np.ones(3)}

    def h(d):
        return d["a"] * d["b"] + np.sum(d["c"] ** 2) * d["a"]

    if form == "function":
        g = {(k,): v for k, v in tg.grad(h)(d).items()}
    else:
        v, gr = tg.grad(h, d)
        g = gr[0] if form == "yota" else tg.play(gr.tape, d)[1][0]
    assert type(g[("a",)]) is np.ndarray and g[("a",)].shape == ()
    assert type(g[("b",)]) is float
    assert g[("c",)].shape == (3,)
    assert float(g[("a",)]) == pytest.approx(1.5 + 3.0)
    assert g[("b",)] == pytest.approx(2.0)
    np.testing.assert_allclose(g[("c",)], 2 * 2.0 * np.ones(3))


def test_jit_0d_outputs_keep_the_traced_kind_on_every_call():
    """A 0-d output comes back as the trace saw it (a NumPy scalar for `x[0]` and
    `np.sum`), on the first (tracing) call and on interpreted and compiled replays alike;
    the replays used to give 0-d arrays where the first call gave scalars."""
    def f(x):
        return x[0], np.sum(x * x), x[1:2] * 2.0

    x = np.arange(3.0)
    for compile_ in (False, True):
        jf = tg.jit(f, compile=compile_)
        results = [jf(x), jf(x)]
        jf.wait()
        results.append(jf(x))
        for r in results:
            assert type(r[0]) is np.float64 and type(r[1]) is np.float64
            assert r[0] == 0.0 and r[1] == 5.0
            assert type(r[2]) is np.ndarray and r[2].shape == (1,)
    _, tape = tg.trace(f, x)
    for out in (tg.play(tape, x), tg.play(tg.compile(tape, wait=True), x)):
        assert type(out[0]) is np.float64 and type(out[1]) is np.float64 and out[1] == 5.0


@pytest.mark.parametrize("compile_", [False, True])
def test_jit_gradient_kinds_match_eager(compile_):
    """Under tg.jit the gradient of a 0-d array is a 0-d array of its dtype and that of a
    Python float a float, on the tracing call and on every replay (they were np.float64);
    a traced float returned as is stays a float."""
    for a, kind in ((np.array(0.7), np.ndarray), (np.array(0.7, np.float32), np.ndarray), (0.7, float)):
        jf = tg.jit(tg.value_and_grad(f), compile=compile_)
        got = [jf(a), jf(a)]
        jf.wait()
        got.append(jf(a))
        for v, g in got:
            assert type(g) is kind and np.ndim(g) == 0
            assert getattr(g, "dtype", None) == getattr(a, "dtype", None)
            assert float(g) == pytest.approx(df(0.7), rel=1e-6)
    ident = tg.jit(lambda x: x, compile=compile_)
    assert [type(ident(1.5)) for _ in range(3)] == [float] * 3


@pytest.mark.parametrize("traced, replayed", [(2.5, np.float64(2.5)), (np.float64(2.5), 2.5)])
def test_replay_passes_scalars_as_traced(traced, replayed):
    """np.float64 is a float but promotes like a float64 array, where a Python float adapts
    (x32 * 2.5 is float32, x32 * np.float64(2.5) float64). A tape replays each scalar as
    the kind it was traced with, so the interpreter and the compiled tape give the tape's
    dtype: the interpreter followed the replayed value's kind (QA)."""
    x32 = np.linspace(0.1, 1.0, 6).astype(np.float32)

    def f(a, s):
        return np.tanh(a * s) + s

    v, tape = tg.trace(f, x32, traced)
    ct = tg.compile(tape, wait=True)
    got_i, got_c = tg.play(tape, x32, replayed), tg.play(ct, x32, replayed)
    assert got_i.dtype == got_c.dtype == v.dtype == f(x32, traced).dtype
    np.testing.assert_allclose(got_i, v, rtol=1e-6)
    np.testing.assert_allclose(got_c, v, rtol=1e-6)
