"""A character-level tanh RNN on a public-domain paragraph shipped in the repository.

    python -m examples.rnn_text

The text is the opening of Lewis Carroll's "Alice's Adventures in Wonderland" (1865,
public domain), in `examples/data/alice.txt`. The loss is an ordinary Python loop over
time steps; tapegrad records every step on the tape (the tape grows with the sequence).
Parameters live in a dict, gradients come back keyed by field path, Adam is plain NumPy.
`tg.grad(..., dynamic=True)` traces once and replays the cached gradient tape afterwards.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import tapegrad as tg

TEXT = Path(__file__).with_name("data") / "alice.txt"


def init(vocab: int, hidden: int, rng: np.random.Generator) -> dict:
    return {"Wxh": 0.1 * rng.standard_normal((vocab, hidden)),
            "Whh": 0.1 * rng.standard_normal((hidden, hidden)),
            "bh": np.zeros(hidden),
            "Why": 0.1 * rng.standard_normal((hidden, vocab)),
            "by": np.zeros(vocab)}


def loss(p: dict, X, Y):
    """Mean cross-entropy of next-character predictions. X, Y: one-hot (T, batch, vocab)."""
    T, B, _ = X.shape
    h = np.zeros((B, p["Whh"].shape[0]))
    total = 0.0
    for t in range(T):
        h = np.tanh(X[t] @ p["Wxh"] + h @ p["Whh"] + p["bh"])
        z = h @ p["Why"] + p["by"]
        zmax = np.max(z, axis=1, keepdims=True)
        logp = z - zmax - np.log(np.sum(np.exp(z - zmax), axis=1, keepdims=True))
        total = total - np.sum(logp * Y[t])
    return total / (T * B)


def sample(p: dict, chars: list, start: str, n: int, rng: np.random.Generator) -> str:
    ix = {c: i for i, c in enumerate(chars)}
    h = np.zeros(p["Whh"].shape[0])
    out, c = [start], start
    for _ in range(n):
        h = np.tanh(p["Wxh"][ix[c]] + h @ p["Whh"] + p["bh"])
        z = h @ p["Why"] + p["by"]
        prob = np.exp(z - z.max())
        c = chars[rng.choice(len(chars), p=prob / prob.sum())]
        out.append(c)
    return "".join(out)


def main(steps: int = 300, seq: int = 25, batch: int = 16, hidden: int = 64, lr: float = 0.01,
         seed: int = 0, verbose: bool = True) -> dict:
    text = TEXT.read_text()
    chars = sorted(set(text))
    V = len(chars)
    data = np.array([chars.index(c) for c in text])
    eye = np.eye(V)
    rng = np.random.default_rng(seed)
    p = init(V, hidden, rng)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    s = {k: np.zeros_like(v) for k, v in p.items()}
    if verbose:
        print(f"{len(text)} characters, vocabulary {V}; RNN hidden {hidden}, "
              f"{seq} steps x batch {batch}, Adam lr={lr}")
    losses, t0 = [], time.perf_counter()
    for step in range(1, steps + 1):
        starts = rng.integers(0, len(data) - seq - 1, batch)
        idx = starts[None, :] + np.arange(seq)[:, None]
        # dynamic=True: trace once, replay the cached gradient tape while the guards hold
        val, g = tg.grad(loss, p, eye[data[idx]], eye[data[idx + 1]], dynamic=True)
        for (k,), gk in g[0].items():  # Adam
            m[k] = 0.9 * m[k] + 0.1 * gk
            s[k] = 0.999 * s[k] + 0.001 * gk * gk
            p[k] -= lr * (m[k] / (1 - 0.9 ** step)) / (np.sqrt(s[k] / (1 - 0.999 ** step)) + 1e-8)
        losses.append(float(val))
        if verbose and (step % max(1, steps // 6) == 0 or step == 1):
            print(f"step {step:4d}  loss {np.mean(losses[-20:]):.3f} nats/char")
    if verbose:
        print(f"{time.perf_counter() - t0:.1f} s; uniform guess would be {np.log(V):.3f} nats/char")
        print("sample:", repr(sample(p, chars, "A", 120, rng)))
    return {"losses": losses, "vocab": V, "params": p}


if __name__ == "__main__":
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--steps", type=int, default=300)
    main(steps=a.parse_args().steps)
