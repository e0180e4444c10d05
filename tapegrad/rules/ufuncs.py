"""VJP rules for elementwise ufuncs, `where`, `astype` and `stop_gradient`."""

import numpy as np

from . import nondiff, vjp

vjp(np.negative, lambda g, ans, x: -g)
vjp(np.positive, lambda g, ans, x: g)
vjp(np.add, lambda g, ans, x, y: g, lambda g, ans, x, y: g)
vjp(np.subtract, lambda g, ans, x, y: g, lambda g, ans, x, y: -g)
vjp(np.multiply, lambda g, ans, x, y: g * y, lambda g, ans, x, y: g * x)
vjp(np.divide, lambda g, ans, x, y: g / y, lambda g, ans, x, y: -g * ans / y)


def _power_x(g, ans, x, y):
    if not np.isscalar(y):
        return g * y * x ** np.where(y, y - 1, 1.0)
    if y == 0:
        return None
    if y == 1:
        return g
    if y == 2:
        return g * (2 * x)  # no x ** 1: a full-size pow call on large arrays
    return g * y * x ** (y - 1)


vjp(np.power, _power_x,
    lambda g, ans, x, y: g * np.where(x, ans * np.log(np.where(x, x, 1.0)), 0.0))
vjp(np.float_power,
    lambda g, ans, x, y: g * y * np.float_power(x, y - 1),
    lambda g, ans, x, y: g * np.where(x, ans * np.log(np.where(x, x, 1.0)), 0.0))
# complex z: autograd's convention, the cotangent of |z| is g * conj(z) / |z| (0 at z = 0)
vjp(np.absolute, lambda g, ans, x: (g * np.conj(x) / np.where(ans == 0, 1.0, ans)
                                    if _complex(x) else g * np.sign(x)))
vjp(np.sqrt, lambda g, ans, x: g * 0.5 / ans)
vjp(np.cbrt, lambda g, ans, x: g / (3.0 * ans * ans))
vjp(np.square, lambda g, ans, x: g * 2.0 * x)
vjp(np.reciprocal, lambda g, ans, x: -g * ans * ans)
vjp(np.exp, lambda g, ans, x: g * ans)
vjp(np.exp2, lambda g, ans, x: g * ans * np.log(2.0))
vjp(np.expm1, lambda g, ans, x: g * (ans + 1.0))
vjp(np.log, lambda g, ans, x: g / x)
vjp(np.log2, lambda g, ans, x: g / (x * np.log(2.0)))
vjp(np.log10, lambda g, ans, x: g / (x * np.log(10.0)))
vjp(np.log1p, lambda g, ans, x: g / (x + 1.0))
vjp(np.sin, lambda g, ans, x: g * np.cos(x))
vjp(np.cos, lambda g, ans, x: -g * np.sin(x))
vjp(np.tan, lambda g, ans, x: g * (1.0 + ans * ans))
vjp(np.arcsin, lambda g, ans, x: g / np.sqrt(1.0 - x * x))
vjp(np.arccos, lambda g, ans, x: -g / np.sqrt(1.0 - x * x))
vjp(np.arctan, lambda g, ans, x: g / (1.0 + x * x))
vjp(np.sinh, lambda g, ans, x: g * np.cosh(x))
vjp(np.cosh, lambda g, ans, x: g * np.sinh(x))
vjp(np.tanh, lambda g, ans, x: g * (1.0 - ans * ans))  # reuse ans: tanh' = 1 - tanh^2
vjp(np.arcsinh, lambda g, ans, x: g / np.sqrt(x * x + 1.0))
vjp(np.arccosh, lambda g, ans, x: g / np.sqrt(x * x - 1.0))
vjp(np.arctanh, lambda g, ans, x: g / (1.0 - x * x))
vjp(np.deg2rad, lambda g, ans, x: g * (np.pi / 180.0))
vjp(np.rad2deg, lambda g, ans, x: g * (180.0 / np.pi))
vjp(np.arctan2, lambda g, ans, y, x: g * x / (x * x + y * y),
    lambda g, ans, y, x: -g * y / (x * x + y * y))
vjp(np.hypot, lambda g, ans, x, y: g * x / ans, lambda g, ans, x, y: g * y / ans)
# ties split the gradient evenly, as HIPS autograd does
vjp(np.maximum, lambda g, ans, x, y: g * _balanced_eq(x, ans, y),
    lambda g, ans, x, y: g * _balanced_eq(y, ans, x))
vjp(np.minimum, lambda g, ans, x, y: g * _balanced_eq(x, ans, y),
    lambda g, ans, x, y: g * _balanced_eq(y, ans, x))
vjp(np.fmax, lambda g, ans, x, y: g * _balanced_eq(x, ans, y),
    lambda g, ans, x, y: g * _balanced_eq(y, ans, x))
vjp(np.fmin, lambda g, ans, x, y: g * _balanced_eq(x, ans, y),
    lambda g, ans, x, y: g * _balanced_eq(y, ans, x))
vjp(np.logaddexp, lambda g, ans, x, y: g * np.exp(x - ans), lambda g, ans, x, y: g * np.exp(y - ans))
vjp(np.logaddexp2, lambda g, ans, x, y: g * 2.0 ** (x - ans), lambda g, ans, x, y: g * 2.0 ** (y - ans))
vjp(np.remainder, lambda g, ans, x, y: g, lambda g, ans, x, y: -g * np.floor_divide(x, y))
vjp(np.fmod, lambda g, ans, x, y: g, lambda g, ans, x, y: -g * np.trunc(x / y))
vjp(np.copysign, lambda g, ans, x, y: g * np.sign(x) * np.sign(ans), None)
vjp(np.conjugate, lambda g, ans, x: np.conj(g))
vjp("real", lambda g, ans, x: g)
vjp("imag", lambda g, ans, x: -1j * g)
vjp("where", None, lambda g, ans, c, x, y: np.where(c, g, 0.0),
    lambda g, ans, c, x, y: np.where(c, 0.0, g))
vjp("astype", lambda g, ans, x, dtype: g)
vjp("copy", lambda g, ans, x: g)
nondiff(np.sign, np.floor, np.ceil, np.trunc, np.rint, np.floor_divide, "round", "stop_gradient")


def _balanced_eq(x, z, y):
    # masks in the result's dtype: a bool / float division would promote float32
    return (x == z).astype(z.dtype) / ((x == y).astype(z.dtype) + 1.0)


def _complex(x) -> bool:
    return (x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype).kind == "c"
