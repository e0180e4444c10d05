"""Optimisation passes on the gradient tape of a 2-layer MLP (784-256-10, tanh,
logsumexp cross-entropy, batch 128, float32).

Run: OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \
     python -m pytest bench/bench_passes.py -s --benchmark-only
Prints op counts, planned peak/allocated bytes and tracemalloc peaks before/after.
"""

import tracemalloc

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.backends.interpret import run
from tapegrad.core import grad_call
from tapegrad.passes import PIPELINE, optimize
from tapegrad.passes.reuse_buffers import reuse_buffers

DT = np.float32


def loss(W1, b1, W2, b2, X, Y):
    h = np.tanh(X @ W1 + b1)
    z = h @ W2 + b2
    m = np.max(z, axis=1, keepdims=True)
    lse = m + np.log(np.sum(np.exp(z - m), axis=1, keepdims=True))
    return -np.mean(np.sum(Y * (z - lse), axis=1))


def by_hand(W1, b1, W2, b2, X, Y):
    h = np.tanh(X @ W1 + b1)
    z = h @ W2 + b2
    m = np.max(z, axis=1, keepdims=True)
    e = np.exp(z - m)
    s = np.sum(e, axis=1, keepdims=True)
    lse = m + np.log(s)
    n = X.shape[0]
    val = -np.sum(Y * (z - lse)) / n
    dz = (e / s * np.sum(Y, axis=1, keepdims=True) - Y) / n
    dW2 = h.T @ dz
    db2 = dz.sum(axis=0)
    dh = dz @ W2.T
    dpre = dh * (1 - h * h)
    return val, X.T @ dpre, dpre.sum(axis=0), dW2, db2


def _args():
    r = np.random.default_rng(0)
    return (r.normal(size=(784, 256)).astype(DT) * DT(0.05), np.zeros(256, DT),
            r.normal(size=(256, 10)).astype(DT) * DT(0.1), np.zeros(10, DT),
            r.normal(size=(128, 784)).astype(DT), np.eye(10, dtype=DT)[r.integers(0, 10, 128)])


ARGS = _args()
RAW = grad_call(loss, ARGS, argnums=(0, 1, 2, 3))[2]
NO_REUSE = optimize(RAW, [p for p in PIPELINE if p is not reuse_buffers])
OPT = optimize(RAW)


def _traced_peak(tape):
    tg.play(tape, *ARGS)
    tracemalloc.start()
    tg.play(tape, *ARGS)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_report():
    raw, opt = RAW.stats(), OPT.stats()
    got, want = run(OPT, list(ARGS)), by_hand(*ARGS)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-5)
    print("\nMLP gradient tape (float32):")
    print(f"  ops          {raw['ops']:>9} -> {opt['ops']:>9}  ({1 - opt['ops'] / raw['ops']:.0%} fewer)")
    for k in ("peak_bytes", "alloc_bytes", "allocations"):
        print(f"  {k:<12} {raw[k]:>9} -> {opt[k]:>9}  ({1 - opt[k] / raw[k]:.0%} lower)")
    print(f"  fusion groups {opt['fusion_groups']}")
    t_raw, t_nr, t_opt = _traced_peak(RAW), _traced_peak(NO_REUSE), _traced_peak(OPT)
    print(f"  tracemalloc peak of play: raw {t_raw}, optimised without reuse {t_nr}, "
          f"with reuse {t_opt} ({1 - t_opt / t_nr:.0%} lower than without, "
          f"{1 - t_opt / t_raw:.0%} lower than raw)")
    assert opt["ops"] < raw["ops"] and opt["alloc_bytes"] < raw["alloc_bytes"]


@pytest.mark.parametrize("which", ["raw", "optimised", "optimised_no_reuse"])
def test_play(benchmark, which):
    tape = {"raw": RAW, "optimised": OPT, "optimised_no_reuse": NO_REUSE}[which]
    benchmark.group = "mlp-grad"
    benchmark(tg.play, tape, *ARGS)


def test_by_hand(benchmark):
    benchmark.group = "mlp-grad"
    benchmark(by_hand, *ARGS)


def test_optimize_time(benchmark):
    benchmark.group = "passes"
    benchmark(optimize, RAW)
