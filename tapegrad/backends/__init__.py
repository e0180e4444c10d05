"""Backends: the NumPy interpreter (reference semantics) and Numba lowering."""
