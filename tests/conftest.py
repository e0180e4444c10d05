"""Suite-wide setup: every `optimize` call checks each pass (TAPEGRAD_DEBUG).

Set at import, before any test module imports tapegrad: tracing then keeps its example
inputs in `tape.meta["example"]`, and `optimize` runs `verify`, `check_buffers` and a
replay against the pass's input tape after every pass, naming the pass that broke it.
Run with TAPEGRAD_DEBUG=0 to time the suite without the checks.
"""

import os

os.environ.setdefault("TAPEGRAD_DEBUG", "1")
