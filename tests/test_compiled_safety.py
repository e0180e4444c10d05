"""The compiled path never trusts its input: guards on tape inputs, shapes, dtypes, byte
order, layouts and leaf types are checked before Numba code runs; NaN/inf propagate as in
NumPy; caches do not keep tapes or values alive beyond their bound.

Kernels share tests/.numba_cache with tests/test_numba.py, so they compile once per machine.
"""

import gc
import os
import weakref

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.backends.numba import CompiledTape

CACHE = os.environ["TAPEGRAD_CACHE_DIR"]  # shared by the suite: see conftest.py


def loop_n(x, n):
    for _ in range(int(n)):
        x = np.tanh(x) * 2.0
    return np.sum(x)


X = np.linspace(0.1, 1.0, 5)


# -- guards on inputs --------------------------------------------------------------------


def test_guard_on_input_holds_in_compiled_driver():
    _, tape = tg.trace(loop_n, X, np.array(1))
    ct = tg.compile(tape, wait=True)
    assert ct.ready.is_set() and any(k.dispatcher is not None for k in ct.kernels.values())
    assert tg.play(ct, X, np.array(1)) == pytest.approx(loop_n(X, 1), rel=1e-12)
    assert loop_n(X, 2) == pytest.approx(6.572712464732512, rel=1e-12)  # the other path
    with pytest.raises(tg.GuardError, match=r"int\(%2\) was 1"):
        tg.play(ct, X, np.array(2))
    with pytest.raises(tg.GuardError, match=r"int\(%2\) was 1"):
        ct.run([X, np.array(2)])
    with pytest.raises(tg.GuardError):  # the interpreter agrees
        tg.play(tape, X, np.array(2))


def test_guard_on_input_through_grad_and_jit_compile():
    _, g = tg.grad(loop_n, X, np.array(3))
    ct = tg.compile(g.tape, wait=True)
    val, grads = tg.play(ct, X, np.array(3))
    assert val == pytest.approx(loop_n(X, 3), rel=1e-12)
    with pytest.raises(tg.GuardError):
        tg.play(ct, X, np.array(1))
    jf = tg.jit(loop_n, compile=True)
    for n in (1, 2, 1, 3):
        assert jf(X, np.array(n)) == pytest.approx(loop_n(X, n), rel=1e-12)
    jf.wait()
    for n in (1, 2, 3, 2):  # compiled entries now: each still picks its own path
        assert jf(X, np.array(n)) == pytest.approx(loop_n(X, n), rel=1e-12)
    info = jf.cache_info()
    assert (info.hits, info.misses, info.entries) == (5, 3, 3)


# -- shapes, dtypes, layouts, leaf types -----------------------------------------------------


def two(x, y):
    return np.sum(np.tanh(x) * y + np.maximum(x, y))


Y = np.linspace(-1.0, 2.0, 6)
X6 = np.linspace(0.1, 1.0, 6)


@pytest.fixture(scope="module")
def ct2():
    _, tape = tg.trace(two, X6, Y)
    ct = tg.compile(tape, wait=True)
    assert ct.stats()["loop_regions"] == 1 and ct.kernels[next(iter(ct.kernels))].dispatcher
    return ct


def test_wrong_shape_never_reaches_the_kernel(ct2):
    # The kernel takes its loop bound from x: a short y would be read out of bounds.
    for call in (lambda y: tg.play(ct2, X6, y), lambda y: ct2.run([X6, y])):
        with pytest.raises(ValueError, match=r"expected shape \(6,\), got \(3,\)"):
            call(Y[:3])
        with pytest.raises(ValueError, match=r"expected shape \(6,\), got \(1,\)"):
            call(np.ones(1))  # would broadcast in NumPy: still refused
        with pytest.raises(ValueError, match=r"(expected shape \(6,\), got \(\))|structure"):
            call(np.float64(1.0))


@pytest.mark.parametrize("bad,msg", [
    (Y.astype(np.float32), "expected dtype float64, got float32"),
    (Y.astype(np.int64), "expected dtype float64, got int64"),
    (Y > 0, "expected dtype float64, got bool"),
    (Y.astype(complex), "expected dtype float64, got complex128"),
    (Y.astype(">f8"), "expected dtype float64, got >f8"),
    (Y.astype(object), "object arrays"),
])
def test_wrong_dtype_names_input(ct2, bad, msg):
    with pytest.raises(ValueError, match=msg):
        tg.play(ct2, X6, bad)
    with pytest.raises(ValueError, match=r"input 1 \(%\d+\): " + msg):
        ct2.run([X6, bad])


def test_byte_order_hint(ct2):
    with pytest.raises(ValueError, match=r"byte order differs: pass x.astype"):
        ct2.run([X6, Y.astype(">f8")])


@pytest.mark.parametrize("bad", [None, list(Y), "abc", {"a": Y}])
def test_wrong_leaf_type(ct2, bad):
    with pytest.raises((ValueError, TypeError)):
        tg.play(ct2, X6, bad)
    with pytest.raises(ValueError, match="input 1"):
        ct2.run([X6, bad])


def test_run_checks_count(ct2):
    with pytest.raises(ValueError, match="takes 2 inputs, got 1"):
        ct2.run([X6])
    with pytest.raises(ValueError, match="takes 2 inputs, got 3"):
        ct2.run([X6, Y, Y])


def _layouts():
    base = np.linspace(-1.0, 2.0, 12)
    ro = Y.copy()
    ro.flags.writeable = False
    raw = np.zeros(6 * 8 + 1, np.uint8)[1:]
    unaligned = raw.view(np.float64)
    unaligned[:] = Y
    return {"strided": base[::2], "negative": Y[::-1].copy()[::-1], "readonly": ro,
            "broadcast": np.broadcast_to(np.float64(0.5), (6,)), "unaligned": unaligned}


@pytest.mark.parametrize("kind", sorted(_layouts()))
def test_views_and_odd_buffers_give_numpy_answer(ct2, kind):
    y = _layouts()[kind]
    want = two(X6, y)
    before = y.copy()
    assert tg.play(ct2, X6, y) == pytest.approx(want, rel=1e-13)
    assert ct2.run([X6, y])[0] == pytest.approx(want, rel=1e-13)
    np.testing.assert_array_equal(y, before)  # inputs never written


def test_layout_copy_keeps_kernels_in_use(ct2):
    from tapegrad.backends.validate import check_leaves

    y = _layouts()["strided"]
    a, b = check_leaves(ct2.tape, [X6, y])
    assert a is X6 and b is not y and b.flags.c_contiguous and np.array_equal(b, y)


# -- NaN / inf propagate exactly as in NumPy ------------------------------------------------

SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e308, -1e-310, 2.5])


def elementwise(x, y):
    a = np.tanh(x) * y + np.exp(x) - np.log(np.abs(y))
    b = np.maximum(x, y) + np.minimum(x, y) * np.sqrt(np.abs(x)) / y
    return a, b + x ** 2 - 1.0 / x + np.sign(y) * np.log1p(np.abs(x)) + x ** 0.5


def nansum_like(x, y):
    return np.sum(np.exp(x) * y + np.maximum(x, y) / (y - 1.0))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_nan_inf_elementwise_exact(dtype):
    with np.errstate(all="ignore"):  # 1e308 -> inf in float32
        x = SPECIAL.astype(dtype)
        y = np.roll(SPECIAL, 3).astype(dtype)
        _, tape = tg.trace(elementwise, x, y)
        ct = tg.compile(tape, wait=True)
        assert ct.stats()["loop_regions"] >= 1
        want = elementwise(x, y)
        got_i = tg.play(tape, x, y)
        got_c = tg.play(ct, x, y)
    assert np.isnan(want[1]).sum() >= 3 and np.isinf(want[0]).sum() >= 1
    for w, gi, gc_ in zip(want, got_i, got_c):
        assert gc_.dtype == w.dtype
        np.testing.assert_array_equal(gi, w)  # NaN positions, signs of inf, values
        tol = 0 if dtype == np.float64 else 2e-7
        np.testing.assert_allclose(gc_, w, rtol=tol, atol=0, equal_nan=True)
        np.testing.assert_array_equal(np.isnan(gc_), np.isnan(w))
        np.testing.assert_array_equal(np.isposinf(gc_), np.isposinf(w))
        np.testing.assert_array_equal(np.isneginf(gc_), np.isneginf(w))


def test_nan_inf_in_reductions_and_gradients():
    x = np.array([0.5, np.inf, 1.0])
    y = np.array([2.0, 3.0, 4.0])
    with np.errstate(all="ignore"):
        _, g = tg.grad(nansum_like, x, y)
        ct = tg.compile(g.tape, wait=True)
        want_v, (wx, wy) = tg.play(g.tape, x, y)
        got_v, (gx, gy) = tg.play(ct, x, y)
        assert np.isposinf(want_v) and np.isposinf(got_v)
        np.testing.assert_array_equal(gx, wx)
        np.testing.assert_array_equal(gy, wy)
        xn = np.array([0.5, np.nan, 1.0])
        v1, (g1x, _) = tg.play(ct, xn, y)
        v2, (g2x, _) = tg.play(g.tape, xn, y)
    assert np.isnan(v1) and np.isnan(v2)
    np.testing.assert_array_equal(np.isnan(g1x), [False, True, False])
    np.testing.assert_allclose(g1x, g2x, rtol=1e-14, equal_nan=True)


def test_no_fastmath_in_kernels(ct2):
    for k in ct2.kernels.values():
        assert "fastmath" not in k.source and 'error_model="numpy"' in k.source
        assert not k.dispatcher.targetoptions.get("fastmath")


# -- caches are bounded and let go -------------------------------------------------------------


def test_jit_cache_bounded_and_releases_tapes():
    jf = tg.jit(lambda x: np.sum(np.sin(x) * x), maxsize=2)
    refs = []
    for n in range(1, 7):
        x = np.linspace(0, 1, n)
        assert jf(x) == pytest.approx(np.sum(np.sin(x) * x), rel=1e-12)
        refs.append(weakref.ref(jf.tapes[-1]))
    gc.collect()
    alive = [r() is not None for r in refs]
    assert alive == [False] * 4 + [True] * 2
    assert jf.cache_info().entries == 2


def test_jit_does_not_keep_arguments_or_results():
    jf = tg.jit(lambda x: np.tanh(x) * 2.0, maxsize=4)
    x = np.linspace(0, 1, 7)
    jf(x)  # traced
    x2 = np.linspace(0, 1, 7) + 1.0
    out = jf(x2)  # replayed
    rx, rx2, rout = weakref.ref(x), weakref.ref(x2), weakref.ref(out)
    del x, x2, out
    gc.collect()
    assert rx2() is None and rout() is None  # replayed calls keep nothing
    jf.cache_clear()  # the traced call's tape may hold its example (TAPEGRAD_DEBUG)
    gc.collect()
    assert rx() is None


def test_jit_compile_cache_releases_compiled_tapes():
    jf = tg.jit(lambda x: np.sum(np.tanh(x) * x), maxsize=1, compile=True)
    jf(np.ones(3))
    jf.wait()
    first = [e.compiled for e in jf.cache.entries()]
    assert isinstance(first[0], CompiledTape)
    r = weakref.ref(first[0])
    del first
    jf(np.ones(4))  # evicts the (3,) entry
    jf.wait()
    gc.collect()
    assert r() is None and jf.cache_info().entries == 1


def test_compiled_tape_not_kept_by_kernel_memo():
    _, tape = tg.trace(two, X6, Y)
    ct = tg.compile(tape, wait=True)
    rc, rt = weakref.ref(ct), weakref.ref(tape)
    n_kernels = tg.cache_info()["kernels_in_memory"]
    del ct, tape
    gc.collect()
    assert rc() is None and rt() is None
    _, tape = tg.trace(two, X6, Y)  # same structure: the kernel is reused, not rebuilt
    tg.compile(tape, wait=True)
    assert tg.cache_info()["kernels_in_memory"] == n_kernels


def test_debug_nans_names_the_op_on_compiled_tapes():
    f = lambda x: np.sum(np.log(x) * 0.0 + x)  # noqa: E731
    _, g = tg.grad(f, np.array([1.0, 2.0]))
    ct = tg.compile(g.tape, wait=True)
    with np.errstate(all="ignore"):
        assert np.isnan(tg.play(ct, np.array([-1.0, 2.0]))[0])  # NumPy semantics
        with pytest.raises(FloatingPointError, match="= log"), tg.debug_nans():
            tg.play(ct, np.array([-1.0, 2.0]))
        with pytest.raises(FloatingPointError, match="= log"), tg.debug_nans():
            ct.run([np.array([-1.0, 2.0])])


def test_single_output_multiple_results_primitive_compiles():
    """A primitive declared with multiple results that returns a 1-tuple: the compiled
    driver unpacks it (`v5, = ...`) as the interpreter does, instead of binding the tuple."""
    from tapegrad.ir import defprim
    from tapegrad.trace import bind

    halves = defprim("test.halves1", lambda a: (a * 0.5,), multiple_results=True, user=True)

    def f(x):
        (h,) = bind(halves, np.tanh(x))
        return np.sum(h * h) + np.sum(x)

    _, tape = tg.trace(f, X)
    ct = tg.compile(tape, wait=True)
    assert "halves1" in ct.source

    def refuse(*args):  # the driver falls back to the interpreter on a TypeError
        raise AssertionError("compiled driver fell back")

    slow = ct.play.__globals__["_slow"]
    ct.play.__globals__["_slow"] = refuse
    try:
        compiled_val = tg.play(ct, X)
    finally:
        ct.play.__globals__["_slow"] = slow
    assert compiled_val == pytest.approx(tg.play(tape, X), rel=1e-12)
    assert tg.play(ct, X) == pytest.approx(tg.play(tape, X), rel=1e-12)
    assert tg.play(ct, X) == pytest.approx(np.sum((0.5 * np.tanh(X)) ** 2) + np.sum(X), rel=1e-12)


def test_ndarray_subclasses_same_answer_in_interpreter_and_compiled(tmp_path):
    """np.memmap (plain data in a file) is read as an ndarray by both replays; np.matrix and
    masked arrays, whose operators and reductions mean something else, are refused by both
    with the same message (the interpreter used to run them, the compiled tape refused)."""
    _, tape = tg.trace(lambda x: np.sum(np.sin(x) * 2.0), X)
    ct = tg.compile(tape, wait=True)
    m = np.memmap(tmp_path / "x.dat", dtype=np.float64, mode="w+", shape=X.shape)
    m[:] = X
    want = 2.0 * np.sum(np.sin(X))
    assert tg.play(tape, m) == pytest.approx(want, rel=1e-12)
    assert tg.play(ct, m) == pytest.approx(want, rel=1e-12)
    masked = np.ma.masked_array(X, mask=[0, 1, 0, 0, 0])
    for t in (tape, ct):
        with pytest.raises(ValueError, match="got MaskedArray .*np.asarray"):
            tg.play(t, masked)
        with pytest.raises(ValueError, match="got matrix"):
            tg.play(t, np.asmatrix(X))
