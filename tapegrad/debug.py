"""Debugging switches: `tg.debug_nans()` names the first op that produces a NaN."""

from __future__ import annotations

from .trace import DEBUG_NANS


class debug_nans:
    """`with tg.debug_nans(): ...` (or `tg.debug_nans(True)` to switch it on for good):
    tracing and `play` raise FloatingPointError at the first op, forward or backward,
    whose output has a NaN while its inputs have none, naming the op and its line."""

    def __init__(self, on: bool = True):
        self._old = DEBUG_NANS[0]
        DEBUG_NANS[0] = on

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        DEBUG_NANS[0] = self._old
        return False
