"""A character-level LSTM on the public-domain paragraph shipped in the repository.

    python -m examples.lstm_text

Same data and training loop as `examples/rnn_text.py` (the opening of "Alice's Adventures
in Wonderland", `examples/data/alice.txt`), with an LSTM cell: the four gates come from one
matmul each for input and state, split by slicing; sigmoid is `0.5 * (tanh(z / 2) + 1)`
(no overflow). The loop over time steps is plain Python; `tg.grad(..., dynamic=True)`
traces it once and replays the cached gradient tape for every later batch.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import tapegrad as tg

TEXT = Path(__file__).with_name("data") / "alice.txt"


def init(vocab: int, hidden: int, rng: np.random.Generator) -> dict:
    H = hidden
    b = np.zeros(4 * H)
    b[H:2 * H] = 1.0  # forget-gate bias 1: remember by default
    return {"Wx": rng.normal(0.0, 1.0 / np.sqrt(vocab), (vocab, 4 * H)),
            "Wh": rng.normal(0.0, 1.0 / np.sqrt(H), (H, 4 * H)),
            "b": b,
            "Why": rng.normal(0.0, 1.0 / np.sqrt(H), (H, vocab)),
            "by": np.zeros(vocab)}


def sigmoid(z):
    return 0.5 * (np.tanh(0.5 * z) + 1.0)


def cell(p: dict, x, h, c):
    """One LSTM step: gates input, forget, output, candidate."""
    H = h.shape[-1]
    z = x @ p["Wx"] + h @ p["Wh"] + p["b"]
    i, f, o = sigmoid(z[..., :H]), sigmoid(z[..., H:2 * H]), sigmoid(z[..., 2 * H:3 * H])
    c = f * c + i * np.tanh(z[..., 3 * H:])
    return o * np.tanh(c), c


def loss(p: dict, X, Y):
    """Mean cross-entropy of next-character predictions. X, Y: one-hot (T, batch, vocab)."""
    T, B, _ = X.shape
    h = c = np.zeros((B, p["Wh"].shape[0]))
    total = 0.0
    for t in range(T):
        h, c = cell(p, X[t], h, c)
        z = h @ p["Why"] + p["by"]
        zmax = np.max(z, axis=1, keepdims=True)
        logp = z - zmax - np.log(np.sum(np.exp(z - zmax), axis=1, keepdims=True))
        total = total - np.sum(logp * Y[t])
    return total / (T * B)


def sample(p: dict, chars: list, start: str, n: int, rng: np.random.Generator) -> str:
    eye = np.eye(len(chars))
    h = c = np.zeros(p["Wh"].shape[0])
    out, ch = [start], start
    for _ in range(n):
        h, c = cell(p, eye[chars.index(ch)], h, c)
        z = h @ p["Why"] + p["by"]
        prob = np.exp(z - z.max())
        ch = chars[rng.choice(len(chars), p=prob / prob.sum())]
        out.append(ch)
    return "".join(out)


def main(steps: int = 300, seq: int = 25, batch: int = 16, hidden: int = 64, lr: float = 0.01,
         seed: int = 0, verbose: bool = True) -> dict:
    text = TEXT.read_text()
    chars = sorted(set(text))
    V = len(chars)
    data = np.array([chars.index(ch) for ch in text])
    eye = np.eye(V)
    rng = np.random.default_rng(seed)
    p = init(V, hidden, rng)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    s = {k: np.zeros_like(v) for k, v in p.items()}
    if verbose:
        print(f"{len(text)} characters, vocabulary {V}; LSTM hidden {hidden}, "
              f"{seq} steps x batch {batch}, Adam lr={lr}")
    losses, t0 = [], time.perf_counter()
    for step in range(1, steps + 1):
        starts = rng.integers(0, len(data) - seq - 1, batch)
        idx = starts[None, :] + np.arange(seq)[:, None]
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
