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
