"""Tape -> Tape rewrites. `PIPELINE` is the default order; `optimize` runs it."""

from __future__ import annotations

import os

from ..ir import Tape, verify
from .cse import cse
from .dce import dce
from .fold import fold
from .fuse import fuse
from .reuse_buffers import check_buffers, reuse_buffers

PIPELINE = [cse, fold, cse, dce, fuse, reuse_buffers]
"""The default order. `cse` first, so `fold` sees each value once (single-use checks
are exact); `fold` exposes new duplicates (two broadcasts of one scalar become one
`Const`), hence `cse` again; `dce` then drops everything the rewrites orphaned. `fuse`
needs the final op set and reorders ops, so it comes after; `reuse_buffers` plans
storage from liveness, which depends on the final order, so it runs last."""


def optimize(tape: Tape, pipeline=None, check: bool | None = None) -> Tape:
    """Run `pipeline` (default `PIPELINE`); with `check` (or TAPEGRAD_DEBUG) verify the tape
    after every pass and name the pass that broke it."""
    check = bool(os.environ.get("TAPEGRAD_DEBUG")) if check is None else check
    for p in PIPELINE if pipeline is None else pipeline:
        tape = p(tape)
        if check:
            try:
                verify(tape)
            except AssertionError as e:
                raise AssertionError(f"pass {p.__name__} broke the tape: {e}") from e
    return tape
