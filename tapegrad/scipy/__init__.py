"""Differentiable drop-ins for SciPy functions that do not dispatch on traced values
(issue 6): `from tapegrad.scipy import stats, linalg, signal, integrate, special`.

Each function behaves like its SciPy namesake on plain arrays and is expressed in
differentiable NumPy (or a primitive with rules) on traced ones.
"""

from . import integrate, linalg, signal, special, stats  # noqa: F401

__all__ = ["integrate", "linalg", "signal", "special", "stats"]
