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
