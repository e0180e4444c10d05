"""Index-valued primitives (`nonzero`, `searchsorted`) and two ufuncs without a rule of their
own elsewhere (`fabs`, `heaviside`), with their VJP and JVP rules.

`nonzero` has a data-dependent shape (one row of indices per dimension, as many columns as
nonzero elements): its handler guards the shape, as a boolean-mask `getitem` does, and
`dynamic.add_shape_guards` does the same for cached tapes. Integer outputs carry no
gradient, so both index primitives are `nondiff`; their values are recomputed on replay.
"""

from __future__ import annotations

import numpy as np

from ..ir import defprim, ufunc_prim
from . import nondiff, vjp
from .jvp import jvp, jvp_nondiff

# np.nonzero's index arrays stacked, shape (ndim, count): one output (the handler splits it)
nonzero = defprim("nonzero", lambda x: np.array(np.nonzero(x)), data_dependent_shape=True)
searchsorted = defprim("searchsorted", lambda a, v, side="left": np.searchsorted(a, v, side=side))
heaviside = ufunc_prim(np.heaviside)
fabs = ufunc_prim(np.fabs)

nondiff(nonzero, searchsorted, heaviside)
jvp_nondiff(nonzero, searchsorted, heaviside)

# like absolute on reals: sign(0) = 0 at the kink
vjp(fabs, lambda g, ans, x: g * np.sign(x))
jvp(fabs, lambda g, ans, x: g * np.sign(x))
