"""Public glue for the compiled path: `compile`, `simplegrad`, `cache_clear`, `cache_info`.

The work is in `backends/numba.py` (driver and kernels), `backends/kernels.py` (fusion
regions, loop source) and `backends/diskcache.py` (files Numba caches machine code for).
"""

from __future__ import annotations

from .ir import Tape


def compile(tape: Tape, wait: bool = False):
    """Lower `tape` to Numba. Returns a `CompiledTape` at once: `tg.play(ctape, *args)`
    runs interpreted until its kernels are compiled in a background thread (or loaded
    from the disk cache), then runs the compiled driver. `wait=True` blocks until then."""
    from .backends.numba import CompiledTape

    if isinstance(tape, CompiledTape):
        return tape.wait() if wait else tape
    if not isinstance(tape, Tape):
        raise TypeError(f"compile needs a Tape (from tg.trace or grad(...)[1].tape), got "
                        f"{type(tape).__name__}")
    return CompiledTape(tape).start(wait)


class SimpleGrad:
    """A standalone gradient function `gfun(*args) -> (value, *grads)` (`tg.simplegrad`)."""

    def __init__(self, ctape, name):
        self.ctape = ctape
        self.__name__ = f"grad_{name}"

    def __call__(self, *args):
        return self.ctape.play(*args)

    @property
    def source(self) -> str:
        return self.ctape.source

    @property
    def tape(self) -> Tape:
        return self.ctape.tape

    def __repr__(self):
        return f"<simplegrad {self.__name__}: {self.ctape!r}>"


def simplegrad(f, *args, wait: bool = True, **kwargs) -> SimpleGrad:
    """Trace `f(*args)` and its gradient once and return a compiled function giving
    `(value, grad_arg0, grad_arg1, ...)` for new arguments of the same types, with the
    generated code in `.source`. Gradients have `tg.grad`'s Yota form (arrays, floats,
    field-path dicts, None)."""
    from .api import grad

    _, g = grad(f, *args, **kwargs)
    tape = g.tape.derive()
    val_t, grads_t = tape.out_tree
    tape.out_tree = (val_t, *grads_t)
    return SimpleGrad(compile(tape, wait=wait), getattr(f, "__name__", "f"))


def cache_clear() -> int:
    """Empty the on-disk kernel cache (`TAPEGRAD_CACHE_DIR`, default ~/.cache/tapegrad).
    Returns the number of files removed."""
    from .backends import diskcache

    return diskcache.clear()


def cache_info() -> dict:
    """Kernel cache statistics for this process: kernels compiled, loaded from disk,
    memory hits (structurally equal regions), failures; plus the directory."""
    from .backends.numba import cache_info

    return cache_info()
