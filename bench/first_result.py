"""Time to first result for W3 (MLP 784-256-10 f32), each in a fresh process with an empty
kernel cache: `python bench/first_result.py compile` (grad(..., compile=True): optimising
and compiling go to the background) vs `python bench/first_result.py eager_play` (eager
tg.grad, its optimised tape, one interpreted play). Issue 4's goal: compile <= eager_play."""
import os, sys, time, tempfile
os.environ["TAPEGRAD_CACHE_DIR"] = tempfile.mkdtemp()
import numpy as np
t0 = time.perf_counter()
import tapegrad as tg
DT = np.float32
def loss(W1, b1, W2, b2, X, Y):
    h = np.tanh(X @ W1 + b1)
    z = h @ W2 + b2
    m = np.max(z, axis=1, keepdims=True)
    lse = m + np.log(np.sum(np.exp(z - m), axis=1, keepdims=True))
    return -np.mean(np.sum(Y * (z - lse), axis=1))
r = np.random.default_rng(0)
args = (r.normal(size=(784, 256)).astype(DT) * DT(0.05), np.zeros(256, DT),
        r.normal(size=(256, 10)).astype(DT) * DT(0.1), np.zeros(10, DT),
        r.normal(size=(128, 784)).astype(DT), np.eye(10, dtype=DT)[r.integers(0, 10, 128)])
mode = sys.argv[1]
t = time.perf_counter()
if mode == "compile":
    v, g = tg.grad(loss, *args, compile=True); g[0]
elif mode == "eager_play":
    v, g = tg.grad(loss, *args); tape = g.tape
    tg.play(tape, *args)
print(mode, "first result ms", round((time.perf_counter() - t) * 1e3, 1))
