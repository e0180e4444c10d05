"""Benchmark set-up: one BLAS/OpenMP thread, peers imported when installed.

Run with `pytest bench/ --benchmark-enable` (see bench/README.md); thread variables are
also set here in case the caller forgot, but only take effect if NumPy is not yet loaded.
"""

import importlib.util
import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")


def _pin_one_cpu():
    """Pin this process (and every thread it starts later) to one CPU.

    The thread variables above do not bind JAX 0.10's XLA runtime: measured here, its
    jitted 128x784 @ 784x256 f32 GEMM used 1.6 CPU-seconds per wall-second with them
    set, so 'JAX jit' timings were two-core timings against one-core NumPy/Numba ones.
    Pinned, XLA's GEMM and OpenBLAS's take the same time. TG_BENCH_CPU picks the CPU
    (default: the last one this process may use); TG_BENCH_CPU=none leaves it unpinned.
    """
    want = os.environ.get("TG_BENCH_CPU", "")
    if want == "none" or not hasattr(os, "sched_setaffinity"):
        return None
    cpu = int(want) if want else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


PINNED_CPU = _pin_one_cpu()

import pytest  # noqa: E402


def have(mod: str) -> bool:
    return importlib.util.find_spec(mod) is not None


def pytest_report_header(config):
    import numpy as np

    peers = ", ".join(f"{m}={'yes' if have(m) else 'no'}" for m in ("autograd", "jax", "torch"))
    return [f"tapegrad bench: numpy {np.__version__}; peers: {peers}; "
            f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}; "
            f"pinned to CPU {PINNED_CPU}"]


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record library versions in the JSON (bench/report.py prints them)."""
    from importlib.metadata import PackageNotFoundError, version

    vs = {}
    for m in ("numpy", "numba", "tapegrad", "autograd", "jax", "jaxlib", "torch"):
        try:
            vs[m] = version(m)
        except PackageNotFoundError:
            pass
    machine_info["versions"] = vs
    machine_info["pinned_cpu"] = PINNED_CPU
