"""More of the ndarray surface on Tracer: `repeat`, `compress`, `nonzero`, `searchsorted`,
`mT`, `nbytes`, `itemsize`, `round(x)`; every other ndarray attribute that Tracer lacks
(`view`, `fill`, `put`, `flat`, ...) raises `TraceError` naming it, instead of a bare
AttributeError."""

from __future__ import annotations

import numpy as np

from ..errors import TraceError
from ..trace import Tracer, user_loc
from .shape import swapaxes


class UnsupportedAttributeError(TraceError, AttributeError):
    """An ndarray attribute that traced values do not support. Also an AttributeError, so
    `hasattr`/`getattr(x, name, default)` probes keep working."""


def _mT(self):
    if self.ndim < 2:
        raise ValueError("matrix transpose with ndim < 2 is undefined")
    return swapaxes(self, -1, -2)


def _compress(self, condition, axis=None, out=None):
    return np.compress(condition, self, axis, out)


def _searchsorted(self, v, side="left", sorter=None):
    return np.searchsorted(self, v, side, sorter)


Tracer.repeat = lambda self, repeats, axis=None: np.repeat(self, repeats, axis)
Tracer.compress = _compress
Tracer.nonzero = lambda self: np.nonzero(self)
Tracer.searchsorted = _searchsorted
Tracer.mT = property(_mT)
Tracer.nbytes = property(lambda self: self.size * self.dtype.itemsize)
Tracer.itemsize = property(lambda self: self.dtype.itemsize)
Tracer.__round__ = lambda self, ndigits=None: np.round(self, 0 if ndigits is None else ndigits)

_HINTS = {
    "fill": "use np.full_like(x, value), or x[...] = value",
    "put": "use x.reshape(-1)[indices] = values",
    "flat": "use x.ravel() (x.reshape(-1)[i] = v to write)",
    "view": "use x.astype(dtype) to convert values",
    "resize": "use np.resize or np.reshape",
    "partition": "use np.sort",
    "argpartition": "use np.argsort",
    "choose": "use np.take_along_axis or np.where",
}
# public ndarray attributes (not dunders: NumPy and other libraries probe those with hasattr)
_NDARRAY_ONLY = frozenset(n for n in dir(np.ndarray) if not n.startswith("_"))


def _missing(self, name):
    if name in _NDARRAY_ONLY:
        hint = _HINTS.get(name)
        raise UnsupportedAttributeError(
            f"ndarray.{name} is not supported on traced values (at {user_loc() or 'unknown line'})"
            + (f"; {hint}" if hint else ""))
    raise AttributeError(f"'Tracer' object has no attribute {name!r}")


Tracer.__getattr__ = _missing
