"""`scipy.signal.convolve` drop-in (modes full/valid/same), any number of dimensions."""

from __future__ import annotations

from ..handlers_extra import convolve_nd
from ..trace import Tracer


def convolve(in1, in2, mode="full", method="auto"):
    if not isinstance(in1, Tracer) and not isinstance(in2, Tracer):
        import scipy.signal

        return scipy.signal.convolve(in1, in2, mode=mode, method=method)
    return convolve_nd(in1, in2, mode)


__all__ = ["convolve"]
