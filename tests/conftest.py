"""Suite-wide setup: every `optimize` call checks each pass (TAPEGRAD_DEBUG).

Set at import, before any test module imports tapegrad: tracing then keeps its example
inputs in `tape.meta["example"]`, and `optimize` runs `verify`, `check_buffers` and a
replay against the pass's input tape after every pass, naming the pass that broke it.
Run with TAPEGRAD_DEBUG=0 to time the suite without the checks.
"""

import os

os.environ.setdefault("TAPEGRAD_DEBUG", "1")
# tg.jit compiles in the background by default; only the tests that ask for compiled code
# (compile=True, tg.compile) pay Numba's compile time, so the suite stays fast on 2 cores
os.environ.setdefault("TAPEGRAD_JIT_COMPILE", "0")
# every test that compiles shares one kernel cache, so each distinct kernel compiles once
os.environ.setdefault("TAPEGRAD_CACHE_DIR", os.path.join(os.path.dirname(__file__), ".numba_cache"))
