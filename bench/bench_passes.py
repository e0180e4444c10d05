"""Optimisation passes on the gradient tape of a 2-layer MLP (784-256-10, tanh,
logsumexp cross-entropy, batch 128, float32), and on a long elementwise chain over a
256x1024 float64 array (a `tg.jit`-style forward tape).

The MLP's total peak (returned gradients included) is its last op, dW1 = X.T @ dpre:
the gradients it returns (814,120 B) plus dpre (131,072 B), which every tape computing
these gradients must hold at once; the raw tape already sits at that floor. What a
plan controls is the workspace (temporaries, the returned gradients excluded), which
`stats()["workspace_peak_bytes"]` reports and this benchmark checks.

Run: OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \
     python -m pytest bench/bench_passes.py -s --benchmark-enable
Prints op counts, planned peak/workspace/allocated bytes and tracemalloc peaks before/after.
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


def chain(x):
    y = np.tanh(x) * 1.5 + 0.25
    y = np.sin(y) * 2.0 - y
    return np.exp(-y * y) + np.cos(y)


CHAIN_X = np.random.default_rng(0).normal(size=(256, 1024))
CHAIN_RAW = tg.trace(chain, CHAIN_X)[1]
CHAIN_NO_REUSE = optimize(CHAIN_RAW, [p for p in PIPELINE if p is not reuse_buffers])
CHAIN_OPT = optimize(CHAIN_RAW)


def _traced_peak(tape, args=ARGS):
    run(tape, list(args))
    tracemalloc.start()
    run(tape, list(args))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def _before_last(tape):
    """`tape` without its last op (dW1's GEMM), returning that op's inputs instead of its
    result: tracemalloc of its play is the peak of the backward before the floor op."""
    last = tape.ops[-1]
    outs = [a for a in tape.outputs if a not in last.outputs] + list(last.inputs)
    return tape.derive(ops=tape.ops[:-1], outputs=outs)


def test_report():
    raw, opt = RAW.stats(), OPT.stats()
    got, want = run(OPT, list(ARGS)), by_hand(*ARGS)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-5)
    print("\nMLP gradient tape (float32):")
    print(f"  ops          {raw['ops']:>9} -> {opt['ops']:>9}  ({1 - opt['ops'] / raw['ops']:.0%} fewer)")
    for k in ("workspace_peak_bytes", "peak_bytes", "alloc_bytes", "allocations"):
        print(f"  {k:<20} {raw[k]:>9} -> {opt[k]:>9}  ({1 - opt[k] / raw[k]:.0%} lower)")
    grads = sum(a.nbytes for a in want[1:])
    floor = grads + ARGS[4].shape[0] * ARGS[0].shape[1] * 4  # + dpre, float32[128,256]
    print(f"  total peak floor: returned gradients {grads} + dpre = {floor}")
    print(f"  fusion groups {opt['fusion_groups']}")
    t_raw, t_nr, t_opt = _traced_peak(RAW), _traced_peak(NO_REUSE), _traced_peak(OPT)
    print(f"  tracemalloc peak of play: raw {t_raw}, optimised without reuse {t_nr}, "
          f"with reuse {t_opt} ({1 - t_opt / t_nr:.0%} lower than without, "
          f"{1 - t_opt / t_raw:.0%} lower than raw)")
    b_raw, b_nr, b_opt = (_traced_peak(_before_last(t)) for t in (RAW, NO_REUSE, OPT))
    print(f"  tracemalloc peak of everything before dW1's GEMM: raw {b_raw}, optimised without "
          f"reuse {b_nr}, with reuse {b_opt} ({1 - b_opt / b_raw:.0%} lower than raw)")
    assert raw["peak_bytes"] == opt["peak_bytes"] == floor
    assert opt["ops"] <= 0.7 * raw["ops"]
    assert opt["workspace_peak_bytes"] <= 0.7 * raw["workspace_peak_bytes"]
    assert opt["alloc_bytes"] < raw["alloc_bytes"]
    raw, nr, opt = CHAIN_RAW.stats(), CHAIN_NO_REUSE.stats(), CHAIN_OPT.stats()
    np.testing.assert_array_equal(tg.play(CHAIN_OPT, CHAIN_X), chain(CHAIN_X))
    print("elementwise chain, float64[256,1024] (2 MiB per array):")
    print(f"  ops          {raw['ops']:>9} -> {opt['ops']:>9}")
    for k in ("peak_bytes", "alloc_bytes", "allocations"):
        print(f"  {k:<12} {raw[k]:>9} -> {nr[k]:>9} without reuse -> {opt[k]:>9} with reuse "
              f"({1 - opt[k] / raw[k]:.0%} lower than raw)")
    t_raw, t_nr, t_opt = (_traced_peak(t, (CHAIN_X,))
                          for t in (CHAIN_RAW, CHAIN_NO_REUSE, CHAIN_OPT))
    print(f"  tracemalloc peak of play: raw {t_raw}, optimised without reuse {t_nr}, "
          f"with reuse {t_opt} ({1 - t_opt / t_nr:.0%} lower than without)")
    assert opt["peak_bytes"] <= 0.7 * raw["peak_bytes"] and t_opt <= 0.7 * t_nr


@pytest.mark.parametrize("which", ["raw", "optimised", "optimised_no_reuse"])
def test_play(benchmark, which):
    tape = {"raw": RAW, "optimised": OPT, "optimised_no_reuse": NO_REUSE}[which]
    benchmark.group = "mlp-grad"
    benchmark(tg.play, tape, *ARGS)


def test_by_hand(benchmark):
    benchmark.group = "mlp-grad"
    benchmark(by_hand, *ARGS)


@pytest.mark.parametrize("which", ["raw", "optimised", "optimised_no_reuse"])
def test_play_chain(benchmark, which):
    tape = {"raw": CHAIN_RAW, "optimised": CHAIN_OPT, "optimised_no_reuse": CHAIN_NO_REUSE}[which]
    benchmark.group = "chain"
    benchmark(tg.play, tape, CHAIN_X)


def test_chain_numpy(benchmark):
    benchmark.group = "chain"
    benchmark(chain, CHAIN_X)


def test_optimize_time(benchmark):
    benchmark.group = "passes"
    benchmark(optimize, RAW)
