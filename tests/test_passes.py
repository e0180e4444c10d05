"""Optimisation passes: semantics kept on many gradient tapes, targeted rewrites, plans."""

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.core import grad_call
from tapegrad.ir import verify
from tapegrad.passes import PIPELINE, optimize
from tapegrad.passes.cse import cse
from tapegrad.passes.dce import dce
from tapegrad.passes.fold import fold
from tapegrad.passes.fuse import fuse
from tapegrad.passes.reuse_buffers import BufferError, check_buffers, reuse_buffers

rng = np.random.default_rng(0)


def _mlp(W1, b1, W2, b2, X, Y):
    h = np.tanh(X @ W1 + b1)
    z = h @ W2 + b2
    m = np.max(z, axis=1, keepdims=True)
    lse = m + np.log(np.sum(np.exp(z - m), axis=1, keepdims=True))
    return -np.mean(np.sum(Y * (z - lse), axis=1))


def _mlp_args(dtype=np.float64):
    r = np.random.default_rng(1)
    Y = np.eye(4)[r.integers(0, 4, 6)].astype(dtype)
    return tuple(a.astype(dtype) for a in (r.normal(size=(5, 7)), r.normal(size=7),
                                           r.normal(size=(7, 4)), r.normal(size=4),
                                           r.normal(size=(6, 5)))) + (Y,)


def _logreg(w, b, X, y):
    z = X @ w + b
    p = 1 / (1 + np.exp(-z))
    return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))


CASES = {
    "mlp": (_mlp, _mlp_args()),
    "mlp32": (_mlp, _mlp_args(np.float32)),
    "logreg": (_logreg, (rng.normal(size=3), 0.5, rng.normal(size=(8, 3)),
                         (rng.random(8) > 0.5).astype(float))),
    "broadcast": (lambda x, y: np.sum(np.sin(x[:, None] * y) + x[:, None] ** 2),
                  (rng.normal(size=4), rng.normal(size=(4, 3)))),
    "indexing": (lambda x: np.sum(x[1:, ::2] ** 2) + np.sum(x[np.array([0, 2, 2])] * 3.0),
                 (rng.normal(size=(4, 5)),)),
    "reductions": (lambda x: np.max(x, axis=0).sum() + np.prod(x[0]) + np.mean(x) * np.std(x),
                   (rng.normal(size=(3, 4)),)),
    "mean_of_broadcast": (lambda x: np.mean(np.broadcast_to(x, (5, 3))) + np.sum(x * 1.0 + 0.0),
                          (rng.normal(size=3),)),
    "float32": (lambda x, w: np.sum(np.tanh(x * w) * 2.0 - x / 3),
                (rng.normal(size=6).astype(np.float32), rng.normal(size=6).astype(np.float32))),
    "scalar": (lambda a, b: a * b + np.sin(a) / b - (-(-a)), (0.7, 1.9)),
    "transposes": (lambda x: np.sum(np.exp(x.T.T) * x.T.T.T.sum(axis=0)),
                   (rng.normal(size=(3, 3)),)),
    "reshapes": (lambda x: np.sum(x.reshape(2, 6).reshape(3, 4).reshape(12) ** 3),
                 (rng.normal(size=(3, 4)),)),
    "unused": (lambda x, y: np.sum(x * x), (rng.normal(size=3), rng.normal(size=2))),
}


def raw_tape(name):
    f, args = CASES[name]
    return grad_call(f, args)[2], args


def assert_same(a, b, rtol=1e-12):
    fa, fb = tg.tree.flatten(a)[1], tg.tree.flatten(b)[1]
    assert len(fa) == len(fb)
    for x, y in zip(fa, fb):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        tol = rtol if x.dtype != np.float32 else 1e-5
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol * 1e-2)


PASSES = {p.__name__: p for p in PIPELINE}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("pipeline", ["all"] + sorted(PASSES))
def test_semantics_preserved(name, pipeline):
    tape, args = raw_tape(name)
    before = str(tape)
    opt = optimize(tape, None if pipeline == "all" else [PASSES[pipeline]], check=True)
    assert str(tape) == before  # passes never mutate their input
    verify(opt)
    check_buffers(opt)
    check_buffers(reuse_buffers(opt))
    assert_same(tg.play(reuse_buffers(opt), *args), tg.play(tape, *args))
    assert_same(tg.play(opt, *args), tg.play(tape, *args))
    assert len(dce(opt)) <= len(tape)  # fold leaves what it orphans to dce


def body(tape) -> str:
    """The printed tape without source-line comments (stable under edits)."""
    return "\n".join(line.split("#")[0].rstrip() for line in str(tape).splitlines())


def test_fold_simplifies_algebra():
    f = lambda x: np.sum(-(-((x * 1.0 + 0.0).T.T.reshape(3, 2).reshape(2, 3))) / 1)  # noqa: E731
    x = rng.normal(size=(2, 3))
    _, tape = tg.trace(f, x)
    opt = optimize(tape, [fold, dce])
    assert len(tape) == 10 and len(opt) == 1
    assert body(opt) == "tape(%1::float64[2,3]) -> %11\n  %11 = sum(%1)::float64[]"
    assert_same(tg.play(opt, x), tg.play(tape, x))


def test_fold_keeps_dtype():
    x = rng.normal(size=3).astype(np.float32)
    _, weak = tg.trace(lambda x: x * 1.0, x)  # weak Python scalar: stays float32
    _, strong = tg.trace(lambda x: x * np.float64(1.0), x)  # promotes to float64
    assert len(dce(fold(weak))) == 0
    assert body(dce(fold(strong))) == (
        "tape(%1::float32[3]) -> %2\n  %2 = multiply(%1, 1.0)::float64[3]")


def test_fold_constants_and_broadcasts():
    # the reverse pass seeds mean's gradient as broadcast_to(reshape(-1/n)) * g
    x = rng.normal(size=(4, 3))
    tape, args = grad_call(lambda x: -np.mean(x * x), (x,))[2], (x,)
    opt = optimize(tape, [fold, cse, dce])
    assert (len(tape), len(opt)) == (11, 5)
    assert body(opt) == """\
tape(%1::float64[4,3]) -> (%5, %12)
  %2 = multiply(%1, %1)::float64[4,3]
  %3 = sum(%2)::float64[]
  %5 = divide(%3, -12)::float64[]
  %10 = multiply(-0.08333333333333333, %1)::float64[4,3]
  %12 = add(%10, %10)::float64[4,3]"""
    assert_same(tg.play(opt, *args), tg.play(tape, *args))


def test_sum_of_broadcast_is_a_scaled_source():
    x = rng.normal(size=3)
    _, tape = tg.trace(lambda x: np.sum(np.broadcast_to(x, (5, 3)), axis=0), x)
    opt = optimize(tape, [fold, dce])
    assert body(opt) == "tape(%1::float64[3]) -> %4\n  %4 = multiply(%1, 5)::float64[3]"
    assert_same(tg.play(opt, x), tg.play(tape, x))


def test_cse_merges_and_normalises_commutative_ops():
    x, y = rng.normal(size=3), rng.normal(size=3)
    _, tape = tg.trace(lambda x, y: np.sin(x) * y + y * np.sin(x), x, y)
    opt = optimize(tape, [cse, dce])
    assert (len(tape), len(opt)) == (5, 3)
    assert body(opt) == """\
tape(%1::float64[3], %2::float64[3]) -> %7
  %3 = sin(%1)::float64[3]
  %4 = multiply(%3, %2)::float64[3]
  %7 = add(%4, %4)::float64[3]"""
    _, tape = tg.trace(lambda x: x * 0.0 + x * -0.0, x)
    assert len(cse(tape)) == 3  # 0.0 and -0.0 are different constants


def test_dce_drops_unused_work():
    x = rng.normal(size=3)
    _, tape = tg.trace(lambda x: (np.exp(x), np.sum(np.cos(x)))[1], x)
    assert (len(tape), len(dce(tape))) == (3, 2)


def test_fuse_marks_groups_and_prints_them():
    x = rng.normal(size=(2, 3))
    _, tape = tg.trace(lambda x: np.sum(np.tanh(x) * 2.0 + x, axis=1) @ np.ones(2), x)
    opt = optimize(tape, [fuse])
    assert body(opt) == """\
tape(%1::float64[2,3]) -> %7
  %2 = tanh(%1)::float64[2,3] [g1]
  %3 = multiply(%2, 2.0)::float64[2,3] [g1]
  %4 = add(%3, %1)::float64[2,3] [g1]
  %5 = sum(%4, axis=(1,))::float64[2] [g1]
  %6 = const float64[2]
  %7 = matmul(%5, %6)::float64[]"""
    assert [op.group for op in opt.ops].count(1) == 4 and opt.stats()["fusion_groups"] == 1


def test_reuse_buffers_plan_and_checker():
    x = rng.normal(size=(4, 5))
    _, tape = tg.trace(lambda x: np.sum(np.exp(np.sin(np.tanh(x) * 3.0) + 1.0)), x)
    opt = reuse_buffers(tape)
    assert body(opt) == """\
tape(%1::float64[4,5]) -> %7
  %2 = tanh(%1)::float64[4,5] -> buf1
  %3 = multiply(%2, 3.0)::float64[4,5] -> buf1
  %4 = sin(%3)::float64[4,5] -> buf1
  %5 = add(%4, 1.0)::float64[4,5] -> buf1
  %6 = exp(%5)::float64[4,5] -> buf1
  %7 = sum(%6)::float64[]"""
    check_buffers(opt)
    s0, s1 = tape.stats(), opt.stats()
    assert (s0["allocations"], s1["allocations"]) == (5, 1)
    assert (s0["peak_bytes"], s1["peak_bytes"]) == (2 * 160, 160)
    assert_same(tg.play(opt, x), tg.play(tape, x))
    # a plan that overwrites a value still read later is refused
    _, tape2 = tg.trace(lambda x: np.sin(x) + np.cos(x), x)
    ops = [op.replace(buffers=(1,)) for op in tape2.ops]
    with pytest.raises(BufferError, match="overwrites buf1"):
        check_buffers(tape2.derive(ops=ops))
    # tape inputs are never written: the outputs of the interpreter leave x alone
    x0 = x.copy()
    tg.play(opt, x)
    assert np.array_equal(x, x0)


def test_optimize_names_the_broken_pass():
    x = rng.normal(size=3)
    _, tape = tg.trace(lambda x: np.sin(x) * 2.0, x)

    def broken(t):
        return t.derive(ops=t.ops[1:])

    with pytest.raises(AssertionError, match="pass broken broke the tape"):
        optimize(tape, [cse, broken], check=True)


def test_stats_and_grad_uses_pipeline():
    f, args = CASES["mlp"]
    val, g = tg.grad(f, *args)
    s = g.tape.stats()
    assert set(s) >= {"ops", "by_prim", "peak_bytes", "allocations", "fusion_groups"}
    raw = raw_tape("mlp")[0].stats()
    assert s["ops"] < raw["ops"] and s["allocations"] < raw["allocations"]
    check_buffers(g.tape)
    assert any(op.buffers for op in g.tape.ops) and s["fusion_groups"] > 0


def test_checking_replays_each_pass_on_the_example_inputs():
    # tests/conftest.py sets TAPEGRAD_DEBUG: tracing keeps the inputs (weakly) for optimize
    from tapegrad.passes import checking

    assert checking()
    x = rng.normal(size=3)
    _, tape = tg.trace(lambda x: np.sin(x) * 2.0, x)
    assert tape.meta["example"][0]() is x

    def cos_for_sin(t):  # well-typed, so verify() passes: only the replay sees it
        return t.derive(ops=[op.replace(prim=tg.ir.PRIMS["cos"]) if op.prim.name == "sin"
                             else op for op in t.ops])

    with pytest.raises(AssertionError, match="(?s)pass cos_for_sin broke the tape.*output 0"):
        optimize(tape, [cse, cos_for_sin], check=True)
    optimize(tape, [cse, cos_for_sin], check=False)  # unchecked: no replay

    def nan_to_zero(t):  # NaN must propagate exactly: a pass hiding it is caught
        return t.derive(ops=[op.replace(prim=tg.ir.PRIMS["fmax"]) if op.prim.name == "maximum"
                             else op for op in t.ops])

    y = np.array([1.0, np.nan, -1.0])
    _, tape = tg.trace(lambda y: np.maximum(y, 0.0), y)
    with pytest.raises(AssertionError, match="pass nan_to_zero broke the tape"):
        optimize(tape, [nan_to_zero], check=True)


def test_sink_negation_carries_the_sign_to_readers():
    from tapegrad.passes.negation import sink_negation

    x, y = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    f = lambda x, y: (y - np.sum(-x * y, axis=1, keepdims=True) / 2.0,  # noqa: E731
                      x + -np.sin(y) * x)
    _, tape = tg.trace(f, x, y)
    opt = optimize(tape, [sink_negation, dce], check=True)
    assert (len(tape), len(opt)) == (9, 7)
    assert body(opt) == """\
tape(%1::float64[2,3], %2::float64[2,3]) -> (%7, %11)
  %12 = multiply(%1, %2)::float64[2,3]
  %13 = sum(%12, axis=(1,), keepdims=True)::float64[2,1]
  %14 = divide(%13, 2.0)::float64[2,1]
  %7 = add(%2, %14)::float64[2,3]
  %8 = sin(%2)::float64[2,3]
  %15 = multiply(%8, %1)::float64[2,3]
  %11 = subtract(%1, %15)::float64[2,3]"""
    got, want = tg.play(opt, x, y), tg.play(tape, x, y)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)  # exact: negation commutes with * / and rounding
    # a negated value read as an output, or by an op that cannot take the sign: unchanged
    _, keep = tg.trace(lambda x: (-x, np.exp(-x)), x)
    assert len(sink_negation(keep)) == len(keep)


def test_mlp_gradient_tape_op_count():
    f, args = CASES["mlp32"]
    raw = raw_tape("mlp32")[0]  # this one also differentiates w.r.t. X and Y
    opt = optimize(raw)
    assert (len(raw), len(opt)) == (57, 38)  # 4 transposes folded into gemm flags
    assert "negative" not in {op.prim.name for op in opt.ops}
    assert_same(tg.play(opt, *args), tg.play(raw, *args))


def test_uniform_matmul_becomes_column_sums_and_outputs_are_owned():
    # sum(W @ x): the reverse pass multiplies a broadcast 1 into two matmuls
    from tapegrad.backends.interpret import run
    from tapegrad.passes import own_outputs

    r = np.random.default_rng(3)
    W, x = r.standard_normal((5, 4)), r.standard_normal((4, 3))
    raw = grad_call(lambda W, x: np.sum(W @ x), (W, x))[2]
    opt = optimize(raw)
    assert sum(op.prim.name == "matmul" for op in raw.ops) == 3
    assert sum(op.prim.name == "matmul" for op in opt.ops) == 1  # only the forward one
    want, got = run(raw, [W, x]), run(opt, [W, x])
    for a, b in zip(want, got):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[1], np.ones((5, 3)) @ x.T, rtol=1e-12)
    # the rewrite leaves broadcast views; own_outputs copies them for the caller
    assert [op.prim.name for op in opt.ops[-2:]] == ["copy", "copy"]
    for g in got[1:]:
        assert g.flags.writeable and g.flags.owndata
    # an output that is already fresh gets no copy
    assert own_outputs(own_outputs(opt)).ops == own_outputs(opt).ops


def test_transpose_feeding_matmul_becomes_gemm_flag():
    from tapegrad.backends.lower import expand_gemm

    r = np.random.default_rng(4)
    a, b = r.standard_normal((4, 3)), r.standard_normal((5, 4))
    _, tape = tg.trace(lambda a, b: np.sum(np.tanh(a.T @ b.T)) + np.sum(a.T @ a), a, b)
    opt = optimize(tape, [fold, cse, dce])
    names = [op.prim.name for op in opt.ops]
    assert "transpose" not in names and names.count("gemm") == 2
    assert "%5 = gemm(%1, %2, ta=True, tb=True)::float64[3,5]" in body(opt)
    assert "%9 = gemm(%1, %1, ta=True)::float64[3,3]" in body(opt)
    assert_same(tg.play(opt, a, b), tg.play(tape, a, b))
    # the gradient tape of a layer: both backward matmuls read a transpose
    W, x = r.standard_normal((3, 4)), r.standard_normal((5, 3))
    raw = grad_call(lambda W, x: np.sum(np.sin(x @ W)), (W, x))[2]
    opt = optimize(raw)
    assert sum(op.prim.name == "transpose" for op in raw.ops) == 2
    assert sum(op.prim.name == "gemm" for op in opt.ops) == 2
    assert "transpose" not in {op.prim.name for op in opt.ops}
    from tapegrad.backends.interpret import run

    for want, got in zip(run(raw, [W, x]), run(opt, [W, x])):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # lowering for Numba turns the flags back into transposes, same values
    low = expand_gemm(opt)
    assert "gemm" not in {op.prim.name for op in low.ops}
    verify(low)
    for want, got in zip(run(opt, [W, x]), run(low, [W, x])):
        np.testing.assert_array_equal(got, want)


def test_mlp_784_256_10_pass_goals():
    # issue 3's model: 30% fewer ops and a 30% lower workspace peak than the raw tape;
    # the total peak is the returned gradients plus dpre (dW1 = X.T @ dpre) for both
    r = np.random.default_rng(0)
    f32 = np.float32
    args = (r.normal(size=(784, 256)).astype(f32), np.zeros(256, f32),
            r.normal(size=(256, 10)).astype(f32), np.zeros(10, f32),
            r.normal(size=(128, 784)).astype(f32), np.eye(10, dtype=f32)[r.integers(0, 10, 128)])
    raw = grad_call(_mlp, args, argnums=(0, 1, 2, 3))[2]
    opt = optimize(raw)
    s0, s1 = raw.stats(), opt.stats()
    assert (s0["ops"], s1["ops"]) == (54, 36)
    assert (s0["workspace_peak_bytes"], s1["workspace_peak_bytes"]) == (3 * 128 * 256 * 4, 267264)
    floor = (784 * 256 + 256 + 256 * 10 + 10) * 4 + 128 * 256 * 4
    assert s0["peak_bytes"] == s1["peak_bytes"] == floor
    check_buffers(opt)
    from tapegrad.backends.interpret import run

    for want, got in zip(run(raw, list(args)), run(opt, list(args))):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_fuse_puts_backward_work_with_its_consumer():
    # tanh's derivative (1 - h*h) joins the group that multiplies it by dh, after dh's
    # GEMM, not the forward tanh (which would keep 1 - h*h alive across the backward)
    r = np.random.default_rng(5)
    W, x, V = r.normal(size=(3, 4)), r.normal(size=(2, 3)), r.normal(size=(4, 2))
    raw = grad_call(lambda W, x, V: np.sum((np.tanh(x @ W) @ V) ** 2), (W, x, V), argnums=(0,))[2]
    opt = optimize(raw, [cse, fold, cse, dce, fuse])
    assert body(opt) == """\
tape(%1::float64[3,4], %2::float64[2,3], %3::float64[4,2]) -> (%8, %18)
  %4 = matmul(%2, %1)::float64[2,4]
  %5 = tanh(%4)::float64[2,4]
  %6 = matmul(%5, %3)::float64[2,2]
  %7 = power(%6, 2)::float64[2,2] [g1]
  %8 = sum(%7)::float64[] [g1]
  %11 = multiply(2, %6)::float64[2,2]
  %13 = gemm(%11, %3, tb=True)::float64[2,4]
  %14 = multiply(%5, %5)::float64[2,4] [g2]
  %15 = subtract(1.0, %14)::float64[2,4] [g2]
  %16 = multiply(%13, %15)::float64[2,4] [g2]
  %18 = gemm(%2, %16, ta=True)::float64[3,4]"""
    from tapegrad.backends.interpret import run

    for want, got in zip(run(raw, [W, x, V]), run(opt, [W, x, V])):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_uniform_matmul_rewrite_keeps_the_wider_sum():
    # ones(float64) @ x(float32) sums x in float64; column sums of x would sum in float32
    x = np.random.default_rng(6).uniform(-2, 2, (3, 4)).astype(np.float32)
    _, tape = tg.trace(lambda x: np.ones((2, 3)) @ x, x)
    opt = optimize(tape, [fold, dce])
    np.testing.assert_array_equal(tg.play(opt, x), np.ones((2, 3)) @ x)
