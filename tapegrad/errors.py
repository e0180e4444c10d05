"""The exceptions tapegrad raises on bad input."""


class TraceError(RuntimeError):
    """Tracing met something it cannot record faithfully (in-place writes, escaped values...)."""


class NoDerivativeError(TypeError):
    """An op on the path from an input to the output has no derivative rule."""


class GuardError(RuntimeError):
    """A tape was replayed on inputs that take another control-flow path than when traced."""
