"""tapegrad: automatic differentiation of plain NumPy code, through a typed Tape IR."""

from . import handlers as _handlers  # noqa: F401  (installs NumPy dispatch on Tracer)
from .api import (GradResult, defjvp, defvjp, diffrule, grad, nodiff, play, primitive,
                  stop_gradient, trace, update, value_and_grad)
from .compile import cache_clear, cache_info, compile, simplegrad  # noqa: A004
from .debug import debug_nans
from .draw import draw
from .dynamic import jit
from .errors import GuardError, NoDerivativeError, TraceError
from .ir import Tape
from .param import Param, diff, value
from .inspect import inspect
from .profile import profile
from .trace import is_traced
from . import handlers_extra as _handlers_extra  # noqa: F401,E402  (linalg, fft, pad, ...)
from .transforms import (check_grads, elementwise_grad, hessian, hessian_vector_product,  # noqa: E402
                         holomorphic_grad, jacobian, make_jvp, make_vjp)

__version__ = "0.1.0"

__all__ = ["GradResult", "GuardError", "debug_nans", "Param", "diff", "value", "NoDerivativeError", "Tape", "TraceError", "defjvp",
           "defvjp", "diffrule", "grad", "is_traced", "jit", "nodiff", "play", "primitive",
           "stop_gradient", "trace", "update", "value_and_grad", "profile", "draw",
           "check_grads", "elementwise_grad", "hessian", "hessian_vector_product", "holomorphic_grad",
           "jacobian", "make_jvp", "make_vjp", "compile", "simplegrad", "cache_clear", "cache_info"]
