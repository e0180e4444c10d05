"""Typed Tape IR. Imports nothing else from tapegrad."""

from .core import (Const, Guard, Op, Tape, Var, VerifyError, format_op, format_tape, is_view,
                   peak_bytes, verify)
from .prims import PRIMS, ArrayValue, Primitive, decode_index, defprim, ufunc_prim

__all__ = ["Const", "Guard", "Op", "Tape", "Var", "VerifyError", "format_op", "format_tape", "is_view",
           "peak_bytes", "verify", "PRIMS", "ArrayValue", "Primitive", "decode_index", "defprim",
           "ufunc_prim"]
