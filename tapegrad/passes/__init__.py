"""Tape -> Tape rewrites. `PIPELINE` is the default order; `optimize` runs it."""

from __future__ import annotations

import os
import weakref

import numpy as np

from ..ir import Tape, verify
from .cse import cse
from .dce import dce
from .fold import fold
from .fuse import fuse
from .negation import sink_negation
from .own_outputs import own_outputs
from .reuse_buffers import check_buffers, reuse_buffers

PIPELINE = [cse, fold, cse, sink_negation, dce, own_outputs, fuse, reuse_buffers]
"""The default order. `cse` first, so `fold` sees each value once (single-use checks
are exact); `fold` exposes new duplicates (two broadcasts of one scalar become one
`Const`), hence `cse` again; `sink_negation` drops the `negative` ops `fold` moved
onto small arrays when their readers can take the sign; `dce` then drops everything the
rewrites orphaned; `own_outputs` copies an output that the rewrites left as a view of an
input, a constant or a read-only broadcast, or shared with another output. `fuse`
needs the final op set and reorders ops, so it comes after; `reuse_buffers` plans
storage from liveness, which depends on the final order, so it runs last."""


def checking() -> bool:
    """Whether `optimize` checks every pass by default (env TAPEGRAD_DEBUG set, not 0).

    Read on every call (tests set and unset it), from the mapping behind `os.environ`
    where there is one: `os.environ.get` encodes the key and decodes the value, about a
    microsecond on every trace."""
    env = os.environ
    if env is _ENVIRON and _ENV_DATA is not None:
        v = _ENV_DATA.get(_DEBUG_KEY)
        return v is not None and v not in _OFF
    return env.get("TAPEGRAD_DEBUG", "") not in ("", "0")


_ENVIRON = os.environ
_ENV_DATA = getattr(os.environ, "_data", None)  # CPython's os._Environ: encoded keys/values
try:
    _DEBUG_KEY = os.environ.encodekey("TAPEGRAD_DEBUG")
except AttributeError:  # not CPython's os._Environ: always os.environ.get
    _ENV_DATA = None
_OFF = (b"", b"0", "", "0")


def optimize(tape: Tape, pipeline=None, check: bool | None = None) -> Tape:
    """Run `pipeline` (default `PIPELINE`). With `check` (default: `checking()`), after
    every pass: `verify` the tape, `check_buffers` its plan, and replay it on the tape's
    recorded example inputs (`meta["example"]`, kept by tracing under TAPEGRAD_DEBUG)
    against the pass's input tape; a failure names the pass."""
    check = checking() if check is None else check
    leaves = _example(tape) if check else None
    want = _replay(tape, leaves)
    for p in PIPELINE if pipeline is None else pipeline:
        new = p(tape)
        if check:
            try:
                verify(new)
                check_buffers(new)
                if want is not None:
                    got = _replay(new, leaves, strict=True)
                    assert_same_results(got, want)
                    want = got
            except AssertionError as e:
                raise AssertionError(f"pass {p.__name__} broke the tape: {e}") from e
        tape = new
    return tape


def keep_example(tape: Tape, leaves_per_arg: list) -> None:
    """Under `checking()`, remember the inputs a tape was traced on (flat leaves, per
    argument), for `optimize` to replay. Arrays are held by weak reference: a tape never
    keeps user data alive."""
    if not checking():
        return
    from ..trace import Tracer

    leaves = [x for lv in leaves_per_arg for x in lv]

    if any(isinstance(x, Tracer) for x in leaves):
        return  # traced values of an enclosing trace: nothing concrete to replay
    tape.meta["example"] = [weakref.ref(x) if isinstance(x, np.ndarray) else (lambda x=x: x)
                            for x in leaves]


def _example(tape: Tape):
    """The tape's example inputs, or None (none kept, an array since freed, a count
    mismatch, impure ops)."""
    refs = tape.meta.get("example")
    if refs is None or len(refs) != len(tape.inputs):
        return None
    leaves = [r() for r in refs]
    if any(x is None for x in leaves) or not all(op.prim.pure for op in tape.ops):
        return None
    return leaves


def _replay(tape: Tape, leaves, strict: bool = False):
    """The tape's flat outputs on `leaves`; None when the unoptimised tape cannot run on
    them (a guard fails on inputs mutated since tracing): nothing to compare against."""
    if leaves is None:
        return None
    from ..backends.interpret import run

    try:
        with np.errstate(all="ignore"):
            return run(tape, leaves)
    except Exception as e:
        if strict:
            raise AssertionError(f"the tape no longer runs on its example inputs: {e}") from e
        return None


def _tolerance(dtype: np.dtype) -> float:
    """Relative tolerance for reassociated sums: 1e-12 in float64, looser in narrower."""
    if dtype.kind not in "fc":
        return 0.0
    return {8: 1e-12, 4: 1e-4, 2: 1e-2}.get(np.finfo(dtype).dtype.itemsize, 1e-12)


def assert_same_results(got: list, want: list) -> None:
    """Same count, dtypes and shapes; NaN and inf in the same places; finite values equal
    up to `_tolerance` (relative to each output's largest magnitude); others exact."""
    assert len(got) == len(want), f"{len(got)} outputs, expected {len(want)}"
    for k, (g, w) in enumerate(zip(got, want)):
        g, w = np.asarray(g), np.asarray(w)
        if g.dtype != w.dtype or g.shape != w.shape:
            raise AssertionError(f"output {k} is {g.dtype}{list(g.shape)}, "
                                 f"expected {w.dtype}{list(w.shape)}")
        tol = _tolerance(w.dtype)
        if tol == 0.0:
            if not np.array_equal(g, w):
                raise AssertionError(f"output {k} differs: {g!r} != {w!r}")
            continue
        fin = np.isfinite(w)
        scale = float(np.max(np.abs(w[fin]), initial=1.0))
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol * scale, equal_nan=True,
                                   err_msg=f"output {k}")


__all__ = ["PIPELINE", "optimize", "checking", "keep_example", "assert_same_results", "cse", "dce", "fold",
           "fuse", "reuse_buffers", "check_buffers", "sink_negation", "own_outputs"]
